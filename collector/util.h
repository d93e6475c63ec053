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

/* The one number parser of the collector (options, queries, ports): a
 * decimal number of digits only (no sign, no spaces, no suffix) in
 * [min, max]. 0, or -1 if s is anything else. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/*
 * Reads a file someone else named (a client's suppressions): opened
 * non-blocking and without following it into a terminal, so that a FIFO or
 * a device cannot hold the event loop in open(); refused unless fstat says
 * it is a regular file, so that /dev/zero cannot feed it for ever; and at
 * most max bytes. Returns a malloc'd, NUL-terminated copy (*len bytes), or
 * NULL with *why saying what was wrong (errno's text or our own words).
 */
char *read_regular_file(const char *path, size_t max, size_t *len, const char **why);
/* Opens path for reading as read_regular_file does (non-blocking, regular
 * files only): the descriptor, or -1 with *why set. For libraries that
 * would open a path themselves (libdw), so that the file checked is the
 * file read. */
int open_regular_file(const char *path, const char **why);

/* Sends buf[*off .. len) without blocking, as far as the socket takes it,
 * advancing *off: 1 once all is sent, 0 if the socket is full, -1 if the
 * connection is broken. The one loop behind both kinds of client's replies
 * (conn.c, http.c). */
int send_pending(int fd, const void *buf, size_t len, size_t *off);

uint64_t now_realtime_ns(void);
uint64_t now_monotonic_ns(void);

#endif /* MEMPROF_COLLECTOR_UTIL_H */
