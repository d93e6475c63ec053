/*
 * Messages, checked allocation and clocks for the collector.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
