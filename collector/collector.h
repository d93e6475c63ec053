/*
 * The collector's connections and dumps, shared by the event loop (main.c)
 * and the modules that act on connections.
 */
#ifndef MEMPROF_COLLECTOR_H
#define MEMPROF_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "options.h"
#include "proc.h"

struct conn {
	int fd;              /* -1: detached (see conn.c) */
	uint32_t peer_pid;   /* from SO_PEERCRED, for messages */
	unsigned char *buf;  /* bytes received but not yet applied */
	size_t len, cap;
	struct proc *proc;   /* NULL until the hello */
	bool dropped;        /* broke the protocol: read no more from it */
	uint64_t detached_ns; /* when it was detached (CLOCK_MONOTONIC) */
	unsigned char *out;  /* replies not yet taken by the socket (conn_send) */
	size_t out_len, out_off;
	/* MP_HELLO_SHARED_RING: the memfd that came with the hello (until it
	 * is mapped, else -1), the ring, and, once the socket has closed, a
	 * pidfd that tells when the process has ended (-1: none). */
	int ring_fd;
	struct sring *ring;
	int pidfd;
	bool ended;          /* the ring's process has ended (pidfd) */
	struct conn *next;
};

extern struct conn *conns;

/* Reads what the socket has (at most a bounded amount per call) and applies
 * every complete record. Returns 0 when the socket has nothing more for now,
 * 1 when the budget ran out first (call again), -1 when the connection ended
 * (EOF, error, or a malformed record, which is reported). */
int conn_read(struct conn *c);

/* The epoll tag (data.u64) main.c gives the listening socket: conn.c
 * changes its events when it pauses accepting. */
#define CONN_LISTEN_TAG 1

/* Handles an epoll event of c: sends what is queued when the socket has
 * room, reads what came. -1 when the connection has ended (the caller
 * closes it). */
int conn_event(struct conn *c, uint32_t events);

/* Queues bytes for the client and sends what the socket takes now; the
 * rest goes as it drains (EPOLLOUT), so a client that does not read
 * stalls nobody but itself. 0, or -1 (errno) if the connection is gone. */
int conn_send(struct conn *c, const void *data, size_t len);

/* Takes the epoll set new connections are added to, the listening socket
 * (already in that set with its own tag), and who is told that a process
 * is about to be freed (the HTTP endpoints, which may hold requests for
 * it; NULL: nobody). A hook, so that this layer calls nothing above it. */
void conn_setup(int epoll_fd, int listen_fd, void (*proc_gone)(struct proc *p));
/* Accepts every pending client. Out of descriptors, it stops watching the
 * listening socket for ACCEPT_PAUSE_MS (conn_tick resumes). */
void conn_accept(void);
/* Called by the loop's periodic timer: resumes accepting after a pause,
 * and takes in what the shared rings hold. */
void conn_tick(uint64_t now_ns);
/* How often the loop's timer should tick for conn_tick and
 * conn_reap_detached: 0 when nothing waits for time (neither a pause in
 * accepting nor a detached process); shorter while a shared ring has
 * been busy. */
unsigned conn_tick_ms(void);
/* Takes in what every shared ring holds (before a profile is served). */
void conn_drain_rings(void);
/* The connection ended (EOF, error, protocol error, or we are finishing):
 * the process's final profile, unless it runs on and may come back
 * (detached). */
void conn_close(struct conn *c);
/* Asks p's process for its malloc statistics (they come as a record, like
 * any other); 0 if asked, -1 if it cannot answer. */
int conn_ask_stats(const struct proc *p);
/* Takes in what every client has sent, ending connections that ended. */
void conn_drain_all(void);
/* Frees connections that ended, once nothing can point to them. */
void conn_free_ended(void);
/* Final profiles for every process, connected or not. */
void conn_finish_all(void);
/* Final profiles of detached processes that have ended. */
void conn_reap_detached(void);
/* Connections, detached ones included. */
unsigned conn_count(void);
/* When the count last fell to zero (CLOCK_MONOTONIC ns); 0 if no client
 * ever came. */
uint64_t conn_idle_since(void);

/* Writes the heap (and CPU) profile of c's process now. final marks the
 * last dump of a process that has gone. */
void dump_proc(struct conn *c, bool final);

/* Every process. */
void dump_all(bool final);

/* Appends a line to cfg.report, if there is one. */
void report_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* MEMPROF_COLLECTOR_H */
