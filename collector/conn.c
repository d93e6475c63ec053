/*
 * One client connection: framing the byte stream into records, checking
 * each record's header, and handing records to the process they belong to.
 * A client that breaks the protocol is named in one message and dropped;
 * the collector goes on serving everyone else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "execs.h"
#include "leak.h"
#include "util.h"

struct conn *conns;

/* Bytes read from one client per wake-up, so that one busy client cannot
 * starve the others or the signals. */
#define READ_BUDGET (1U << 20)

static void reject(struct conn *c, const char *why)
{
	c->dropped = true;
	if (c->proc)
		log_msg("dropping pid %u (%s): %s", c->proc->pid, c->proc->name, why);
	else
		log_msg("dropping a client (pid %u): %s", c->peer_pid, why);
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
		while (conn_read(c) == 1)
			;
		if (c->proc) /* a bad record may have dropped it */
			proc_inherit(child->proc, c->proc);
		return;
	}
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
		c->proc = proc_new(payload, len, &why);
		if (!c->proc) {
			reject(c, why);
			return -1;
		}
		log_debug("pid %u (%s) connected: %s", c->proc->pid, c->proc->name,
			  c->proc->cmdline);
		report_line("process %u %s", c->proc->pid, c->proc->name);
		/* Once the front end's command has exited, whoever still comes
		 * is one it waits for. */
		if (cfg.announce_running)
			report_line("running %u %s", c->proc->pid, c->proc->name);
		execs_hello(c->proc->pid, c->proc->start_ns);
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
		rc = leak_finish(c, payload, len, &why);
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

int conn_read(struct conn *c)
{
	size_t budget = READ_BUDGET;
	if (c->dropped)
		return -1;
	while (budget) {
		if (c->cap - c->len < 64 * 1024) {
			size_t ncap = c->cap ? c->cap * 2 : 128 * 1024;
			if (ncap > MP_REC_MAX_PAYLOAD + 256 * 1024)
				ncap = MP_REC_MAX_PAYLOAD + 256 * 1024;
			if (ncap > c->cap) {
				c->buf = xrealloc(c->buf, ncap);
				c->cap = ncap;
			}
		}
		size_t room = c->cap - c->len;
		if (room > budget)
			room = budget;
		ssize_t n = read(c->fd, c->buf + c->len, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0) {
			if (n < 0)
				log_debug("read from pid %u: %s", c->peer_pid, strerror(errno));
			/* Apply what arrived before the end. */
			return -1;
		}
		c->len += (size_t)n;
		budget -= (size_t)n;
		if (apply_buffered(c) != 0) {
			c->len = 0;
			return -1;
		}
	}
	return 1;
}
