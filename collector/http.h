/*
 * Go's /debug/pprof/ endpoints, served by the collector (--http ADDR:PORT).
 * This is what the event loop (main.c) and the connections (conn.c) see
 * of it (the process state, proc.c, sees nothing of it); the server itself is http.c, the endpoints pprof_http.c, the text
 * pages pprof_text.c. Nothing here blocks: sockets are non-blocking, every
 * client is bounded in size, time and number.
 */
#ifndef MEMPROF_COLLECTOR_HTTP_H
#define MEMPROF_COLLECTOR_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proc.h"

/*
 * epoll tags (epoll_event.data.u64) of the server's descriptors: the
 * listening socket, its timer and one per connection. main.c tells them
 * from its own small tags and from its connection pointers (heap pointers
 * are never below 64 KiB: vm.mmap_min_addr) with http_owns_tag().
 */
#define HTTP_TAG_BASE 0x100
#define HTTP_MAX_CONNS 64

/* Checks an --http value: "PORT", ":PORT" (loopback), "HOST:PORT" with an
 * IPv4 address, "localhost" or a bracketed IPv6 address. PORT 0 lets the
 * kernel choose. 0, or -1 with *why saying what is wrong. */
int http_check_addr(const char *spec, const char **why);

/* Listens on spec (already checked), registers with epfd, and hands every
 * request to h (pprof_http_handler). Says where on
 * stderr when verbose or when the port was chosen by the kernel
 * ("http: listening on 127.0.0.1:PORT ..."). 0, or -1 after a message. */
struct http_handler; /* http_server.h */
int http_start(const char *spec, int epfd, const struct http_handler *h, bool verbose);

bool http_owns_tag(uint64_t tag);

/* Where the server listens, as "127.0.0.1:PORT" or "[::1]:PORT"; 0, or
 * -1 if it does not. */
int http_local_addr(char *buf, size_t size);

/* Handles one epoll event for an http tag. Returns true when it closed a
 * connection other than the one the event was for: later entries of the
 * same epoll batch may then be stale, and the caller must start over. */
bool http_event(uint64_t tag, uint32_t events);

/* At exit: writes what can be written without waiting, closes everything. */
void http_stop(void);

/*
 * http_proc_gone: p is about to be freed (conn.c, when its connection
 * ends). Pending profile requests for p are answered now with what was
 * collected. Safe to call when --http is off.
 */
void http_proc_gone(struct proc *p);

#endif /* MEMPROF_COLLECTOR_HTTP_H */
