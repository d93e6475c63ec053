/*
 * The shim's descriptors. The program owns the descriptor table: it may
 * close what it did not open (closefrom(3)), dup2 over low numbers, or
 * count what it has (a test suite checking that a child inherited nothing).
 * So memprof keeps exactly one descriptor for as long as the process runs,
 * its connection to the collector, high up and close-on-exec, and checks
 * before every use that the number still names that socket (writer.c).
 * Every other descriptor the shim opens lives for a few system calls:
 *   /proc/self/task and /proc/self/maps  during a leak check at exit
 *                                        (leak.c), moved up at once
 *   /proc/self/stat                      once no thread of the program's
 *                                        is left (writer.c)
 *   the private collector's socket       in the constructor (spawn.c),
 *                                        before the program runs
 * The shim links nothing that opens descriptors of its own.
 */
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "shim.h"

/* The lowest number memprof moves its descriptors to: above what programs
 * get from open() in practice, below the usual 1024 limit. */
#define FD_FLOOR 512

int mp_fd_high(int fd)
{
	if (fd < 0)
		return fd;
	struct rlimit rl;
	int floor = FD_FLOOR;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)floor >= rl.rlim_cur)
		floor = (int)(rl.rlim_cur / 2);
	if (fd >= floor)
		return fd;
	int high = fcntl(fd, F_DUPFD_CLOEXEC, floor);
	if (high < 0)
		return fd;
	close(fd);
	return high;
}
