/*
 * Messages, checked allocation and clocks for the collector.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

int log_verbose;

static void vlog(const char *fmt, va_list ap)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "memprof-collector: ");
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	strcat(line, "\n");
	fputs(line, stderr);
}

void log_msg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void log_debug(const char *fmt, ...)
{
	if (!log_verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

static void *check(void *p, size_t n)
{
	if (!p && n) {
		log_msg("out of memory (wanted %zu bytes)", n);
		abort();
	}
	return p;
}

void *xmalloc(size_t n)
{
	return check(malloc(n), n);
}

void *xcalloc(size_t n, size_t size)
{
	return check(calloc(n, size), n * size);
}

void *xrealloc(void *p, size_t n)
{
	return check(realloc(p, n), n);
}

char *xstrndup(const char *s, size_t n)
{
	char *d = xmalloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

void grow_array(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return;
	size_t ncap = *cap ? *cap : 16;
	while (ncap < need)
		ncap *= 2;
	*arr = xrealloc(*arr, ncap * elem);
	memset((char *)*arr + *cap * elem, 0, (ncap - *cap) * elem);
	*cap = ncap;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t now_realtime_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

uint64_t now_monotonic_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

bool pid_alive(uint32_t pid)
{
	char path[64], target[4096];
	snprintf(path, sizeof(path), "/proc/%u/exe", pid);
	if (readlink(path, target, sizeof(target)) >= 0)
		return true;
	/* No program any more: ended, a zombie, or on its way out (the kernel
	 * drops the memory before it closes the descriptors). */
	if (errno == ENOENT && access("/proc/self/exe", F_OK) == 0)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM; /* no /proc */
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		uint64_t d = (uint64_t)(*s - '0');
		if (v > (UINT64_MAX - d) / 10) /* v * 10 + d would wrap */
			return -1;
		v = v * 10 + d;
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int open_regular_file(const char *path, const char **why)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		*why = strerror(errno);
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		*why = strerror(errno);
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		close(fd);
		return -1;
	}
	return fd;
}

char *read_regular_file(const char *path, size_t max, size_t *len, const char **why)
{
	int fd = open_regular_file(path, why);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		*why = strerror(errno);
		goto fail_fd;
	}
	if ((uint64_t)st.st_size > max) {
		*why = "too large";
		goto fail_fd;
	}
	/* The size may change under us: read at most max + 1 bytes, and a
	 * file that grew past max is refused as one that was too large. */
	char *buf = xmalloc(max + 2);
	size_t got = 0;
	while (got <= max) {
		ssize_t n = read(fd, buf + got, max + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*why = strerror(errno);
			goto fail_buf;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > max) {
		*why = "too large";
		goto fail_buf;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	return buf;
fail_buf:
	free(buf);
fail_fd:
	close(fd);
	return NULL;
}

int send_pending(int fd, const void *buf, size_t len, size_t *off)
{
	while (*off < len) {
		ssize_t n = send(fd, (const char *)buf + *off, len - *off, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		*off += (size_t)n;
	}
	return 1;
}
