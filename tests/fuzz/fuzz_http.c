/*
 * fuzz_http.c: libFuzzer harness for the collector's HTTP server (http.c:
 * request framing, the request line and header parser, limits) and the
 * endpoints behind it (pprof_http.c: the query parser, ?pid=, ?debug=,
 * ?seconds=), linked from the collector's own objects.
 *
 * The server listens on a loopback port of the kernel's choosing, in an
 * epoll set of our own; each input is sent as one client's bytes on a new
 * TCP connection, which then half-closes, and the harness runs the event
 * loop (http_event, as main.c does) until the server has answered and let
 * go. One profiled process, made from wire records at start, gives the heap
 * and CPU endpoints something to encode.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "collector.h"
#include "http.h"
#include "http_server.h"
#include "memprof_wire.h"

#define CLIENT_TAG 1 /* our end's epoll tag: none of the server's */

static int epfd = -1;
static struct sockaddr_in server;

/* The loopback listening socket http_start made (it does not say which). */
static int find_server(void)
{
	for (int fd = 3; fd < 1024; fd++) {
		int on = 0;
		socklen_t len = sizeof(on);
		struct sockaddr_in sa;
		socklen_t salen = sizeof(sa);
		if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on &&
		    getsockname(fd, (struct sockaddr *)&sa, &salen) == 0 &&
		    sa.sin_family == AF_INET) {
			server = sa;
			return 0;
		}
	}
	return -1;
}

static void apply(struct proc *p, uint32_t type, const void *rec, uint32_t len)
{
	const char *why;
	if (proc_apply(p, type, rec, len, &why) != 0) {
		fprintf(stderr, "fuzz_http: setup record %u: %s\n", type, why);
		abort();
	}
}

/* One process with a mapping, a stack, live blocks and a CPU sample, kept
 * as a detached connection (no socket), as the endpoints find processes. */
static void add_process(void)
{
	static const char name[] = "fuzzed";
	struct mp_hello h = { .magic = MP_WIRE_MAGIC, .version = MP_WIRE_VERSION, .pid = 4242,
			      .ppid = 1, .rate = 524288, .cpu_hz = 100, .start_ns = 1,
			      .name_len = sizeof(name) - 1 };
	unsigned char hello[sizeof(h) + sizeof(name) - 1];
	memcpy(hello, &h, sizeof(h));
	memcpy(hello + sizeof(h), name, sizeof(name) - 1);
	const char *why;
	struct proc *p = proc_new(&hello, sizeof(hello), 0, &why);
	if (!p) {
		fprintf(stderr, "fuzz_http: setup hello: %s\n", why);
		abort();
	}
	struct mp_mapping m = { 0x400000, 0x500000, 0, 0, 0, 9 };
	unsigned char map[sizeof(m) + 9];
	memcpy(map, &m, sizeof(m));
	memcpy(map + sizeof(m), "[unknown]", 9);
	apply(p, MP_REC_MAPPING, map, sizeof(map));
	struct {
		struct mp_stack s;
		uint64_t pcs[3];
	} st = { { 1, 3 }, { 0x401000, 0x402000, 0x403000 } };
	apply(p, MP_REC_STACK, &st, sizeof(st));
	for (uint64_t i = 1; i <= 3; i++) {
		struct mp_alloc a = { 0x10000 * i, 100 * i, 1, 0 };
		apply(p, MP_REC_ALLOC, &a, sizeof(a));
	}
	struct mp_drops d = { 2, 1 };
	apply(p, MP_REC_DROPS, &d, sizeof(d));
	struct mp_cpu_sample cs = { .tid = 4242, .weight = 1 };
	cs.regs[16] = 0x401234;
	apply(p, MP_REC_CPU, &cs, sizeof(cs));
	struct conn *c = calloc(1, sizeof(*c));
	c->fd = -1;
	c->peer_pid = p->pid;
	c->proc = p;
	conns = c;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	cfg.dir = "/dev/null/memprof-fuzz";
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0 || http_start("127.0.0.1:0", epfd, &pprof_http_handler, false) != 0 || find_server() != 0) {
		fprintf(stderr, "fuzz_http: cannot start the HTTP server\n");
		abort();
	}
	add_process();
	return 0;
}

/* One pass of the event loop; the number of events handled. */
static int pump(int timeout_ms)
{
	struct epoll_event ev[16];
	int n = epoll_wait(epfd, ev, 16, timeout_ms);
	for (int i = 0; i < n; i++)
		if (http_owns_tag(ev[i].data.u64) && http_event(ev[i].data.u64, ev[i].events))
			break; /* later entries may be stale: wait again */
	return n < 0 ? 0 : n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		abort();
	if (connect(fd, (struct sockaddr *)&server, sizeof(server)) != 0 &&
	    errno != EINPROGRESS)
		abort();
	/* In the loop's set too, so that its answer wakes the loop. */
	struct epoll_event cev = { .events = EPOLLIN | EPOLLRDHUP, .data.u64 = CLIENT_TAG };
	epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev);
	size_t off = 0;
	bool eof = false;
	char buf[65536];
	/* 20 s without an answer and a close is a hang: fail loudly. */
	for (int round = 0; !eof; round++) {
		if (round > 200) {
			fprintf(stderr, "fuzz_http: the server neither answered nor closed\n");
			abort();
		}
		if (off < size) {
			ssize_t n = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				off = size; /* the server has gone away from us */
			if (off == size)
				shutdown(fd, SHUT_WR);
		} else if (size == 0 && round == 0) {
			shutdown(fd, SHUT_WR);
		}
		pump(round ? 100 : 0);
		for (;;) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n > 0)
				continue;
			if (n == 0 || (errno != EAGAIN && errno != EINTR))
				eof = true;
			break;
		}
	}
	close(fd);
	/* Let the server see the close and free the connection. */
	while (pump(0) > 0)
		;
	return 0;
}
