/*
 * Client connections: accepting them (same user only), framing the byte
 * stream into records, checking each record's header, handing records to
 * the process they belong to, and ending them. A client that breaks the
 * protocol is named in one message and dropped; the collector goes on
 * serving everyone else.
 *
 * A connection that ends without a goodbye while its process still runs
 * is kept, detached: the process has either exec'd (its new image will say
 * hello) or closed descriptors it did not open (a daemon's closefrom),
 * after which the shim connects again with a resuming hello and the
 * process's profile goes on where it was. A detached process whose new
 * image says hello, or which ends, gets its final profile then.
 *
 * A client with a shared ring (MP_HELLO_SHARED_RING) closes its socket
 * after the hello on purpose: it is detached from the start, its records
 * are taken from the ring on the loop's ticks (and before anything is
 * served or dumped), and a pidfd says when its process has ended.
 */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "collector.h"
#include "execs.h"
#include "leak.h"
#include "sring.h"
#include "strbuf.h"
#include "util.h"

struct conn *conns;
static int epfd = -1, listen_fd = -1;
static void (*gone_hook)(struct proc *p); /* conn_setup's proc_gone, or NULL */
static unsigned nconns;         /* connected or detached */
static unsigned ndetached;      /* detached (fd < 0), not ended yet */
static uint64_t idle_since_ns;  /* when nconns last fell to 0; 0: never had one */
static bool ever_connected;
/* Ended connections, kept until the event loop's batch that may still
 * point to them is over (conn_free_ended). */
static struct conn *ended;
static uint64_t list_changes; /* bumped whenever a connection leaves conns */
static unsigned nrings;         /* connections with a shared ring */

/* How often the rings are looked at (pace_rings): every RING_TICK_MAX_MS
 * while each look finds every ring less than a sixteenth full, more often
 * (halving, down to RING_TICK_MIN_MS) while one is found a quarter full.
 * A wake-up of ours costs 30-60 us of CPU on a virtual machine, so at a
 * fixed 20 ms the looks alone were about half of the collector's time
 * beside sqlite3 (bench/RESULTS.md); a program at the defaults fills its ring by 20-200 KiB in
 * 100 ms. What a program did is in the collector within a tick, and a
 * dump it asked for is written as soon. */
#define RING_TICK_MAX_MS 100
#define RING_TICK_MIN_MS 10
static unsigned ring_tick_ms = RING_TICK_MAX_MS;

/* Accepting paused (pause_accepting): until when (CLOCK_MONOTONIC; 0 =
 * accepting), when we last said so, and how many pauses since. */
static uint64_t accept_paused_until, accept_last_said;
static unsigned accept_unsaid;
#define ACCEPT_PAUSE_MS 100

/* Bytes read from one client per wake-up, so that one busy client cannot
 * starve the others or the signals. */
#define READ_BUDGET (1U << 20)

/* How long a process that closed its connection and has gone stays
 * detached, for a resuming hello read late (conn_close). */
#define DETACHED_GRACE_NS (50ULL * 1000000ULL)

static void reject(struct conn *c, const char *why)
{
	c->dropped = true;
	if (c->proc)
		log_msg("dropping pid %u (%s): %s", c->proc->pid, c->proc->name, why);
	else
		log_msg("dropping a client (pid %u): %s", c->peer_pid, why);
}

/* conn_read until c has nothing more for now (0) or has ended (-1). */
static int read_all(struct conn *c)
{
	int rc;
	while ((rc = conn_read(c)) == 1)
		;
	return rc;
}

/* A fork child's heap starts as its parent's. The parent flushed what it
 * had sent before forking, so take in what its socket holds first (a read
 * that ends the parent's connection is left for the event loop to see
 * again and close). */
static void inherit_from_parent(struct conn *child)
{
	for (struct conn *c = conns; c; c = c->next) {
		if (c == child || !c->proc || c->proc->pid != child->proc->ppid)
			continue;
		read_all(c);
		if (c->proc) /* a bad record may have dropped it */
			proc_inherit(child->proc, c->proc);
		return;
	}
}

static void finish_conn(struct conn *c);

static void unlink_conn(struct conn *c)
{
	for (struct conn **pp = &conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->fd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
		c->fd = -1;
	} else {
		ndetached--;
	}
	if (c->pidfd >= 0) {
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->pidfd, NULL);
		close(c->pidfd);
		c->pidfd = -1;
	}
	if (c->ring_fd >= 0) {
		close(c->ring_fd);
		c->ring_fd = -1;
	}
	if (c->ring) {
		sring_unmap(c->ring);
		c->ring = NULL;
		nrings--;
	}
	c->dropped = true; /* a stale pointer to it reads nothing */
	c->next = ended;
	ended = c;
	list_changes++;
	if (--nconns == 0)
		idle_since_ns = now_monotonic_ns();
}

/* The connection whose process is pid, started at start_ns (any start if
 * start_ns is 0), other than c. */
static struct conn *find_image(const struct conn *c, uint32_t pid, uint64_t start_ns)
{
	for (struct conn *d = conns; d; d = d->next)
		if (d != c && d->proc && d->proc->pid == pid &&
		    (!start_ns || d->proc->start_ns == start_ns))
			return d;
	return NULL;
}

/* A resuming hello (MP_HELLO_RESUMED): the process lost its connection
 * without ending (it closed the descriptor) and carries on here. Whatever
 * the old connection still holds is taken in first, then c takes over its
 * process, stack ids and all. 0, or -1 with *why set. */
static int resume(struct conn *c, const struct mp_hello *h, const char **why)
{
	/* The process is the one the kernel names (proc_new). */
	uint32_t pid = c->peer_pid ? c->peer_pid : h->pid;
	struct conn *old = find_image(c, pid, h->start_ns);
	if (!old) {
		/* The old connection may hold the hello still unread: this one
		 * can be read first when both become readable at once. */
		for (struct conn *d = conns; d; d = d->next)
			if (d != c && !d->proc && d->fd >= 0 && d->peer_pid == c->peer_pid)
				while (!d->proc && conn_read(d) == 1)
					;
		old = find_image(c, pid, h->start_ns);
	}
	if (!old) {
		*why = "resuming a process this collector does not know";
		return -1;
	}
	if (old->fd >= 0)
		read_all(old);
	if (!old->proc) {
		*why = "resuming a process whose connection was dropped";
		return -1;
	}
	if (old->len)
		log_debug("pid %u: %zu bytes of a record lost with its old connection",
			  old->proc->pid, old->len);
	c->proc = old->proc;
	old->proc = NULL;
	unlink_conn(old);
	log_debug("pid %u (%s) reconnected", c->proc->pid, c->proc->name);
	return 0;
}

/* MP_REC_LEAK_END: the report is made (leak.c) and queued here. */
static int send_leak_report(struct conn *c, const void *payload, uint32_t len,
			    const char **why)
{
	struct strbuf reply = { 0 };
	int rc = leak_finish(c, payload, len, &reply, why);
	if (rc == 0 && reply.len && conn_send(c, reply.s, reply.len) != 0)
		log_msg("pid %u (%s): could not send the leak report: %s", c->proc->pid,
			c->proc->name, strerror(errno));
	sb_free(&reply);
	return rc;
}

/* Applies one record; -1 if the client must be dropped. */
static int apply(struct conn *c, uint32_t type, const unsigned char *payload, uint32_t len)
{
	const char *why = NULL;
	if (!c->proc) {
		if (type != MP_REC_HELLO) {
			reject(c, "did not start with a hello");
			return -1;
		}
		struct mp_hello h;
		if (len >= sizeof(h)) {
			memcpy(&h, payload, sizeof(h));
			if (h.magic == MP_WIRE_MAGIC && (h.flags & MP_HELLO_RESUMED)) {
				if (resume(c, &h, &why) != 0) {
					reject(c, why);
					return -1;
				}
				return 0;
			}
		}
		c->proc = proc_new(payload, len, c->peer_pid, &why);
		if (!c->proc) {
			reject(c, why);
			return -1;
		}
		if (c->proc->flags & MP_HELLO_SHARED_RING) {
			if (c->ring_fd < 0) {
				reject(c, "a shared ring was announced but none came with the hello");
				return -1;
			}
			c->ring = sring_map(c->ring_fd, &why);
			close(c->ring_fd);
			c->ring_fd = -1;
			if (!c->ring) {
				reject(c, why);
				return -1;
			}
			nrings++;
		}
		log_debug("pid %u (%s) connected: %s", c->proc->pid, c->proc->name,
			  c->proc->cmdline);
		report_line("process %u %s", c->proc->pid, c->proc->name);
		/* Once the front end's command has exited, whoever still comes
		 * is one it waits for. */
		if (cfg.announce_running)
			report_line("running %u %s", c->proc->pid, c->proc->name);
		execs_hello(c->proc->pid, c->proc->start_ns);
		/* A new image of a detached process: the old one is over. */
		struct conn *old = find_image(c, c->proc->pid, 0);
		if (old && old->fd < 0)
			finish_conn(old);
		if (c->proc->flags & MP_HELLO_FORKED)
			inherit_from_parent(c);
		return 0;
	}
	if (type == MP_REC_DUMP) {
		if (len != 0) {
			reject(c, "malformed dump request");
			return -1;
		}
		c->proc->active = true;
		dump_proc(c, false);
		return 0;
	}
	int rc;
	/* Not the process's own activity: a notice says nothing of its heap. */
	if (type == MP_REC_EXEC)
		rc = execs_notice(payload, len, &why);
	else if (type == MP_REC_LEAKS)
		rc = leak_add(c->proc, payload, len, &why);
	else if (type == MP_REC_LEAK_END)
		rc = send_leak_report(c, payload, len, &why);
	else
		rc = proc_apply(c->proc, type, payload, len, &why);
	if (rc != 0) {
		reject(c, why);
		return -1;
	}
	return 0;
}

/* Applies every complete record in the buffer; -1 to drop the client. */
static int apply_buffered(struct conn *c)
{
	size_t off = 0;
	while (c->len - off >= sizeof(struct mp_rec_hdr)) {
		struct mp_rec_hdr h;
		memcpy(&h, c->buf + off, sizeof(h));
		if (h.type == 0 || h.type > MP_REC_TYPE_MAX) {
			reject(c, "unknown record type");
			return -1;
		}
		if (h.len > MP_REC_MAX_PAYLOAD) {
			reject(c, "record too long");
			return -1;
		}
		if (c->len - off - sizeof(h) < h.len)
			break;
		if (apply(c, h.type, c->buf + off + sizeof(h), h.len) != 0)
			return -1;
		off += sizeof(h) + h.len;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
	return 0;
}

/* Room for at least 64 KiB more in c's buffer, within the longest record. */
static void grow_buf(struct conn *c)
{
	if (c->cap - c->len >= 64 * 1024)
		return;
	size_t ncap = c->cap ? c->cap * 2 : 128 * 1024;
	if (ncap > MP_REC_MAX_PAYLOAD + 256 * 1024)
		ncap = MP_REC_MAX_PAYLOAD + 256 * 1024;
	if (ncap > c->cap) {
		c->buf = xrealloc(c->buf, ncap);
		c->cap = ncap;
	}
}

/* recv, keeping the one descriptor a client may send: a shared ring's
 * memfd, with the hello. Any other is closed at once (a client must not
 * be able to fill our table). */
static ssize_t recv_keeping_ring(struct conn *c, void *buf, size_t len)
{
	union {
		struct cmsghdr h;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct iovec iov = { buf, len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
			      .msg_controllen = sizeof(ctl.b) };
	ssize_t n = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
	if (n < 0 || msg.msg_controllen == 0)
		return n;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(fd));
			if (c->ring_fd < 0 && !c->proc && !c->ring)
				c->ring_fd = fd;
			else
				close(fd);
		}
	}
	return n;
}

/* Up to len bytes from c's socket or, once that has closed, from its
 * ring: how many, 0 when there is nothing more for now, -1 when the
 * stream has ended (what came before the end is applied) or broken. */
static ssize_t take_bytes(struct conn *c, unsigned char *buf, size_t len)
{
	if (c->fd < 0) {
		const char *why = NULL;
		size_t n = sring_take(c->ring, buf, len, &why);
		if (why) {
			reject(c, why);
			return -1;
		}
		return (ssize_t)n;
	}
	for (;;) {
		ssize_t n = recv_keeping_ring(c, buf, len);
		if (n > 0)
			return n;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			log_debug("read from pid %u: %s", c->peer_pid, strerror(errno));
		return -1;
	}
}

int conn_read(struct conn *c)
{
	if (c->dropped || (c->fd < 0 && !c->ring))
		return -1;
	for (size_t budget = READ_BUDGET; budget;) {
		grow_buf(c);
		size_t room = c->cap - c->len;
		if (room > budget)
			room = budget;
		ssize_t n = take_bytes(c, c->buf + c->len, room);
		if (n <= 0)
			return (int)n;
		c->len += (size_t)n;
		budget -= (size_t)n;
		if (apply_buffered(c) != 0) {
			c->len = 0;
			return -1;
		}
	}
	return 1;
}

/* Sends what the socket takes of c's queue; when all is sent, stops
 * asking for EPOLLOUT. -1 if the connection is broken. */
static int flush_out(struct conn *c)
{
	int sent = send_pending(c->fd, c->out, c->out_len, &c->out_off);
	if (sent < 0)
		return -1;
	bool more = sent == 0;
	if (!more) {
		free(c->out);
		c->out = NULL;
		c->out_len = c->out_off = 0;
	}
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | (more ? EPOLLOUT : 0),
				  .data.ptr = c };
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
	return 0;
}

int conn_send(struct conn *c, const void *data, size_t len)
{
	if (c->fd < 0) {
		errno = ENOTCONN;
		return -1;
	}
	if (c->out_off) { /* keep the queue at the start of its buffer */
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	c->out = xrealloc(c->out, c->out_len + len);
	memcpy(c->out + c->out_len, data, len);
	c->out_len += len;
	return flush_out(c);
}

int conn_event(struct conn *c, uint32_t events)
{
	if (c->fd < 0) {
		/* The pidfd of a ring's process: it has ended (conn_close
		 * takes in what its ring still holds). */
		c->ended = true;
		return -1;
	}
	if ((events & EPOLLOUT) && c->fd >= 0 && flush_out(c) != 0)
		return -1;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		return conn_read(c) < 0 ? -1 : 0;
	return 0;
}

void conn_setup(int epoll_fd, int lfd, void (*proc_gone)(struct proc *p))
{
	epfd = epoll_fd;
	listen_fd = lfd;
	gone_hook = proc_gone;
}

/* Whether the listening socket is watched (EPOLLIN) or not (events 0). */
static void watch_listener(bool on)
{
	struct epoll_event ev = { .events = on ? EPOLLIN : 0, .data.u64 = CONN_LISTEN_TAG };
	epoll_ctl(epfd, EPOLL_CTL_MOD, listen_fd, &ev);
}

/*
 * Out of descriptors (EMFILE, ENFILE) or kernel memory, accept fails and
 * leaves the client queued; the level-triggered listening socket would
 * wake the loop again at once, for ever (issue 12: 396,206 log lines in
 * 6 s at full CPU). Stop watching it for a moment instead, and say so at
 * most once a second.
 */
static void pause_accepting(int err)
{
	uint64_t now = now_monotonic_ns();
	accept_paused_until = now + ACCEPT_PAUSE_MS * 1000000ULL;
	watch_listener(false);
	if (now - accept_last_said >= 1000000000ULL || !accept_last_said) {
		if (accept_unsaid)
			log_msg("accept: %s; new clients wait (%u more pauses since the last "
				"message)", strerror(err), accept_unsaid);
		else
			log_msg("accept: %s; new clients wait", strerror(err));
		accept_last_said = now;
		accept_unsaid = 0;
	} else {
		accept_unsaid++;
	}
}

/* Reads every connection (rings_only: every ring whose socket has closed)
 * until it has nothing more. Reading one can end others (a resuming hello
 * takes over its old connection): start over whenever the list changed. */
static void drain(bool rings_only)
{
	uint64_t seen;
	do {
		seen = list_changes;
		for (struct conn *c = conns, *next; c && seen == list_changes; c = next) {
			next = c->next;
			if (rings_only && (!c->ring || c->fd >= 0))
				continue;
			if (read_all(c) < 0)
				conn_close(c);
		}
	} while (seen != list_changes);
}

void conn_drain_rings(void)
{
	if (nrings)
		drain(true);
}

/* Sets ring_tick_ms from how full the fullest ring is now, one tick
 * after the last look. Its ring fills at 1 MiB / (16 x this look's
 * interval) or less: twice the interval keeps it under an eighth. */
static void pace_rings(void)
{
	unsigned fullest = 0;
	for (struct conn *c = conns; c; c = c->next)
		if (c->ring && c->fd < 0) {
			unsigned f = sring_fill16(c->ring);
			fullest = f > fullest ? f : fullest;
		}
	if (fullest >= 4)
		ring_tick_ms = ring_tick_ms / 2 > RING_TICK_MIN_MS ? ring_tick_ms / 2 : RING_TICK_MIN_MS;
	else if (fullest == 0)
		ring_tick_ms = ring_tick_ms * 2 < RING_TICK_MAX_MS ? ring_tick_ms * 2 : RING_TICK_MAX_MS;
}

void conn_tick(uint64_t now_ns)
{
	if (accept_paused_until && now_ns >= accept_paused_until) {
		accept_paused_until = 0;
		watch_listener(true);
	}
	if (nrings)
		pace_rings();
	conn_drain_rings();
}

/* Whether conn_tick or conn_reap_detached has anything to wait for: a
 * pause in accepting, a detached process. */
static bool waits_for_time(void)
{
	return accept_paused_until || ndetached;
}

unsigned conn_tick_ms(void)
{
	if (nrings)
		return ring_tick_ms;
	return waits_for_time() ? RING_TICK_MAX_MS : 0;
}

void conn_accept(void)
{
	if (accept_paused_until)
		return;
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				pause_accepting(errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_msg("accept: %s", strerror(errno));
			return;
		}
		struct ucred cred;
		socklen_t clen = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 ||
		    (cred.uid != getuid() && cred.uid != 0)) {
			log_msg("refusing a client of another user (uid %d)",
				clen == sizeof(cred) ? (int)cred.uid : -1);
			close(fd);
			continue;
		}
		struct conn *c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->ring_fd = c->pidfd = -1;
		c->peer_pid = (uint32_t)cred.pid;
		c->next = conns;
		conns = c;
		nconns++;
		ever_connected = true;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
	}
}

/* Ends a process's record: its final profile, then nothing of it is kept. */
static void finish_conn(struct conn *c)
{
	if (c->ring && !c->dropped && c->fd < 0)
		read_all(c);
	if (c->proc)
		log_debug("pid %u (%s) %s", c->proc->pid, c->proc->name,
			  c->proc->bye ? "exited" : "disconnected");
	dump_proc(c, true);
	if (c->proc && gone_hook)
		gone_hook(c->proc);
	/* A process's state is many small blocks; without a trim, what a big
	 * one held stays in the collector's heap after it has gone (issue
	 * 12). malloc_trim walks the whole heap, so not for every small one. */
	bool big = c->proc && c->proc->nstacks + c->proc->nlocs + live_count(&c->proc->live) > 10000;
	proc_free(c->proc);
	c->proc = NULL;
	unlink_conn(c);
	if (big)
		malloc_trim(0);
}

/* A ring's socket has closed, as it does after the hello: the ring goes
 * on, until the process ends (its pidfd) or a new image says hello. */
static void detach_ring(struct conn *c)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	ndetached++;
	c->detached_ns = now_monotonic_ns();
	c->pidfd = (int)syscall(SYS_pidfd_open, c->proc->pid, 0);
	if (c->pidfd >= 0) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
		epoll_ctl(epfd, EPOLL_CTL_ADD, c->pidfd, &ev);
	} else if (errno == ESRCH) {
		c->ended = true; /* gone already */
	}
	/* Without a pidfd (an old kernel), conn_reap_detached sees the end. */
	conn_read(c);
}

void conn_close(struct conn *c)
{
	if (c->fd < 0) {
		/* Detached: ends only when its ring's process has, or the
		 * ring broke the protocol. */
		if (c->ring && (c->ended || c->dropped))
			finish_conn(c);
		return;
	}
	if (c->ring && !c->dropped && c->proc) {
		detach_ring(c);
		if (c->ended || c->dropped)
			finish_conn(c);
		return;
	}
	/* Not when a later image of the process has said hello already
	 * (read before this connection's end was). */
	/* Kept even when the process has gone already: it may have closed
	 * this connection, resumed on another and exited before we read the
	 * resuming hello (a daemon that closes every descriptor, then forks
	 * and exits); conn_reap_detached waits DETACHED_GRACE_NS for that. */
	bool detach = c->fd >= 0 && c->proc && !c->proc->bye && !c->dropped &&
		      c->proc->pid == c->peer_pid &&
		      execs_latest_hello(c->peer_pid) <= c->proc->start_ns;
	if (!detach) {
		finish_conn(c);
		return;
	}
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	ndetached++;
	c->detached_ns = now_monotonic_ns();
	log_debug("pid %u (%s) closed its connection and runs on", c->proc->pid, c->proc->name);
}

void conn_reap_detached(void)
{
	uint64_t now = now_monotonic_ns();
	for (struct conn *c = conns, *next; c; c = next) {
		next = c->next; /* finish_conn ends only c */
		/* A ring's pidfd says when its process ends. Asking /proc on
		 * every tick instead (a readlink of /proc/PID/exe) was a fifth
		 * of the collector's time beside a busy sqlite3 (perf). */
		if (c->fd < 0 && c->pidfd < 0 && now - c->detached_ns >= DETACHED_GRACE_NS &&
		    !pid_alive(c->peer_pid))
			finish_conn(c);
	}
}

void conn_free_ended(void)
{
	while (ended) {
		struct conn *c = ended;
		ended = c->next;
		free(c->buf);
		free(c->out);
		free(c);
	}
}

void conn_drain_all(void)
{
	drain(false);
}

void conn_finish_all(void)
{
	while (conns)
		finish_conn(conns);
	conn_free_ended();
}

unsigned conn_count(void)
{
	return nconns;
}

uint64_t conn_idle_since(void)
{
	return ever_connected ? idle_since_ns : 0;
}

int conn_ask_stats(const struct proc *p)
{
	if (!(p->flags & MP_HELLO_MALLOC_STATS))
		return -1;
	for (struct conn *c = conns; c; c = c->next) {
		if (c->proc != p)
			continue;
		if (c->ring) {
			sring_ask_stats(c->ring);
			return 0;
		}
		if (c->fd < 0)
			continue;
		struct mp_rec_hdr h = { MP_REC_STATS_REQUEST, 0 };
		/* Behind anything queued for it, as records must not interleave. */
		return conn_send(c, &h, sizeof(h));
	}
	return -1;
}
