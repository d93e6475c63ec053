/*
 * Small helpers every collector module uses: messages, allocation that
 * cannot fail silently, and clocks.
 */
#ifndef MEMPROF_COLLECTOR_UTIL_H
#define MEMPROF_COLLECTOR_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "memprof-collector: " + message + newline on stderr. */
void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Only with --verbose. */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern int log_verbose;

/* Allocation for the collector's own bookkeeping: out of memory is fatal
 * (the message says so) because there is no partial state worth keeping. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrndup(const char *s, size_t n);

/* Grows *arr (of elements of size elem) so that it holds at least need. */
void grow_array(void **arr, size_t *cap, size_t need, size_t elem);
#define GROW(arr, cap, need) grow_array((void **)&(arr), &(cap), (need), sizeof(*(arr)))

/* Whether process pid runs; a zombie counts as gone (it will never send
 * anything again, and a parent that does not reap it must not hold us up). */
bool pid_alive(uint32_t pid);

uint64_t now_realtime_ns(void);
uint64_t now_monotonic_ns(void);

#endif /* MEMPROF_COLLECTOR_UTIL_H */
