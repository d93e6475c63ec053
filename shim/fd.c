/*
 * The shim's descriptors. The program owns the descriptor table: it may
 * close what it did not open (closefrom(3)), dup2 over low numbers, or
 * count what it has (a test suite checking that a child inherited nothing).
 * So memprof's connection to the collector lives in the writer thread's own
 * table (writer.c), and in the program's only where unshare is refused:
 * then as one descriptor, high up and close-on-exec, checked before every
 * use. In the writer's table it is moved high as well, so that nothing
 * written to descriptors 0-2 from that thread can reach it. Every other
 * descriptor the shim opens in the program's table lives for a few system
 * calls:
 *   /proc/self/task and /proc/self/maps  during a leak check at exit
 *                                        (leak.c), moved up at once
 *   /proc/self/stat                      once no thread of the program's
 *                                        is left (keeper.c)
 *   the private collector's socket       in the constructor (spawn.c),
 *                                        before the program runs
 * The shim links nothing that opens descriptors of its own.
 */
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
	struct stat before, after;
	if (fstat(fd, &before) != 0)
		return fd;
	int high = fcntl(fd, F_DUPFD_CLOEXEC, floor);
	if (high < 0)
		return fd;
	/* The program may have closed fd and opened a file of its own under
	 * the number meanwhile (closefrom in another thread): then the copy
	 * is of its file, and fd is not ours to close. */
	if (fstat(high, &after) != 0 || after.st_dev != before.st_dev ||
	    after.st_ino != before.st_ino) {
		close(high);
		return -1;
	}
	close(fd);
	return high;
}
