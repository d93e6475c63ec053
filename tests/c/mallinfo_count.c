/*
 * libmallinfo_count.so: preloaded before the shim, it stands in for
 * glibc's mallinfo2 and appends a line to the file named by
 * MALLINFO_COUNT_LOG at every call, then answers with the real one. The
 * shim reads malloc's statistics only for the ?debug=1 page (a walk of the
 * whole heap: 60 ms at the exit of a std::map churn); http.bats counts the
 * calls with it.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

struct mallinfo2 mallinfo2(void)
{
	static struct mallinfo2 (*real)(void);
	const char *log = getenv("MALLINFO_COUNT_LOG");
	if (log) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (fd >= 0) {
			static const char line[] = "mallinfo2\n";
			ssize_t n = write(fd, line, sizeof(line) - 1);
			(void)n;
			close(fd);
		}
	}
	if (!real)
		real = (struct mallinfo2(*)(void))dlsym(RTLD_NEXT, "mallinfo2");
	return real ? real() : (struct mallinfo2){ 0 };
}
