/*
 * fuzz_wire.c: libFuzzer harness for the collector's wire decoder, driven
 * through the collector's own connection code (collector/conn.c conn_read,
 * proc.c, leak.c, execs.c, and the pprof encoding of the final dumps), the
 * objects `make fuzz` links, not a copy of them.
 *
 * An input is what clients send: one connection's byte stream, or several
 * separated by FUZZ_CONN_SEP (a fork child after its parent, a process that
 * reconnects). Each stream is written into one end of a socketpair whose
 * other end is a struct conn, exactly as the event loop would read it; all
 * connections stay open until every stream is in (a fork child finds its
 * parent), then each ends (EOF) and is closed as the event loop closes it.
 * Replies the collector writes back (leak reports) are read and thrown away
 * by a thread per connection, as a waiting shim would read them. Before
 * the ends, the index and heap text pages (?debug=1) are made as well.
 *
 * The peer pid (SO_PEERCRED in the collector) is taken to be the pid the
 * stream's hello claims, so that reconnection can be reached; profiles go
 * to a directory that cannot exist, so dumps are encoded but not written.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "collector.h"
#include "memprof_wire.h"
#include "pprof_text.h"

#define FUZZ_CONN_SEP "\xffMPCONN\xff" /* 8 bytes between connections */
#define FUZZ_SEP_LEN 8
#define FUZZ_MAX_CONNS 4

struct fuzz_conn {
	int fd;             /* our end */
	struct conn *c;     /* the collector's end */
	pthread_t drainer;
	const uint8_t *data;
	size_t len, off;
};

static void *drain(void *arg)
{
	int fd = *(int *)arg;
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0 || (n < 0 && errno == EINTR))
			continue;
		return NULL;
	}
}

/* The pid a stream's hello claims, or 0. */
static uint32_t hello_pid(const uint8_t *d, size_t n)
{
	struct mp_rec_hdr h;
	struct mp_hello hello;
	if (n < sizeof(h) + sizeof(hello))
		return 0;
	memcpy(&h, d, sizeof(h));
	memcpy(&hello, d + sizeof(h), sizeof(hello));
	return h.type == MP_REC_HELLO ? hello.pid : 0;
}

/* Writes what the socket takes and lets the collector read it, until the
 * whole stream is in or the collector has dropped the connection. */
static void feed(struct fuzz_conn *f)
{
	while (f->off < f->len && !f->c->dropped && f->c->fd >= 0) {
		ssize_t n = send(f->fd, f->data + f->off, f->len - f->off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0)
			f->off += (size_t)n;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			return;
		int rc;
		while ((rc = conn_read(f->c)) == 1)
			;
		if (rc < 0)
			return;
	}
}

static bool still_listed(const struct conn *c)
{
	for (const struct conn *d = conns; d; d = d->next)
		if (d == c)
			return true;
	return false;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* ENOTDIR for every profile: encoded, never written. */
	cfg.dir = "/dev/null/memprof-fuzz";
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_conn fc[FUZZ_MAX_CONNS];
	int nfc = 0;
	conn_setup(-1, -1, NULL); /* epoll_ctl on -1 fails harmlessly */

	/* Split into streams. */
	const uint8_t *p = data, *end = data + size;
	while (nfc < FUZZ_MAX_CONNS) {
		const uint8_t *sep = nfc + 1 < FUZZ_MAX_CONNS
					     ? memmem(p, (size_t)(end - p), FUZZ_CONN_SEP, FUZZ_SEP_LEN)
					     : NULL;
		struct fuzz_conn *f = &fc[nfc];
		memset(f, 0, sizeof(*f));
		f->data = p;
		f->len = sep ? (size_t)(sep - p) : (size_t)(end - p);
		nfc++;
		if (!sep)
			break;
		p = sep + FUZZ_SEP_LEN;
	}

	for (int i = 0; i < nfc; i++) {
		struct fuzz_conn *f = &fc[i];
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
			abort();
		f->fd = sv[0];
		/* As conn_accept makes it (but for its connection count, which
		 * only the private collector's idle timer reads). */
		struct conn *c = calloc(1, sizeof(*c));
		c->fd = sv[1];
		c->peer_pid = hello_pid(f->data, f->len);
		c->next = conns;
		conns = c;
		f->c = c;
		if (pthread_create(&f->drainer, NULL, drain, &f->fd) != 0)
			abort();
		/* conn_read expects a non-blocking socket. */
		fcntl(sv[1], F_SETFL, O_NONBLOCK);
		feed(f);
	}
	/* What the HTTP pages make of it: the index and each process's
	 * ?debug=1 heap page (client names, sizes and counts in text). */
	size_t len;
	free(pprof_text_index(&len));
	for (struct conn *c = conns; c; c = c->next)
		if (c->proc)
			free(pprof_text_heap(c->proc, &len));
	/* Every stream ends, in order; the event loop closes each. */
	for (int i = 0; i < nfc; i++) {
		struct fuzz_conn *f = &fc[i];
		shutdown(f->fd, SHUT_WR);
		if (!still_listed(f->c))
			continue; /* taken over by a reconnection, or ended */
		while (conn_read(f->c) == 1)
			;
		conn_close(f->c);
		conn_free_ended();
	}
	/* The collector's exit: final dumps of whatever is left (detached). */
	conn_finish_all();
	for (int i = 0; i < nfc; i++) {
		pthread_join(fc[i].drainer, NULL);
		close(fc[i].fd);
	}
	return 0;
}
