/*
 * The collector's connections and dumps, shared by the event loop (main.c)
 * and the modules that act on connections.
 */
#ifndef MEMPROF_COLLECTOR_H
#define MEMPROF_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proc.h"

struct collector_cfg {
	const char *dir;     /* where profiles go (absolute) */
	unsigned interval;   /* seconds between periodic dumps, 0 = off */
	bool private_mode;   /* started by a shim: exit when nobody is left */
	const char *report;  /* file the front end reads, or NULL: "process
			      * PID NAME" for each process that connected,
			      * "leaks PID NAME BYTES COUNT" for each leak
			      * check, "running PID NAME" for each process
			      * connected after the front end's USR1 (at it or
			      * later), "unchecked PID REASON PATH" for each
			      * process memprof could not see (execs.c) or
			      * that still ran when told to stop (REASON
			      * "running") */
	bool announce_running; /* write "running" lines for new processes */
	bool all;            /* files for processes that recorded nothing too */
	const char *only;    /* NULL, or the only program names (comma
			      * separated) that get files (keep.c) */
};
extern struct collector_cfg cfg;

struct conn {
	int fd;              /* -1: detached (see conn.c) */
	uint32_t peer_pid;   /* from SO_PEERCRED, for messages */
	unsigned char *buf;  /* bytes received but not yet applied */
	size_t len, cap;
	struct proc *proc;   /* NULL until the hello */
	bool dropped;        /* broke the protocol: read no more from it */
	struct conn *next;
};

extern struct conn *conns;

/* Reads what the socket has (at most a bounded amount per call) and applies
 * every complete record. Returns 0 when the socket has nothing more for now,
 * 1 when the budget ran out first (call again), -1 when the connection ended
 * (EOF, error, or a malformed record, which is reported). */
int conn_read(struct conn *c);

/* Takes the epoll set new connections are added to. */
void conn_setup(int epoll_fd);
/* Accepts every pending client of the listening socket lfd. */
void conn_accept(int lfd);
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
