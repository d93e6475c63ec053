/*
 * A hostile or careless memprof client, speaking the wire protocol
 * directly (no shim), for the collector's hardening tests:
 *   probe_client SOCK pid N      says hello as pid N, one sample, a dump, bye
 *   probe_client SOCK stacks N   N distinct stacks, one live sample each;
 *                                prints "sent", then waits for stdin to close
 *   probe_client SOCK leaks N    a leak check of N leaks, one stack each,
 *                                then never reads the report (sleeps)
 *   probe_client SOCK hold N     N connections that say nothing (sleeps)
 *   probe_client SOCK file PATH  a mapping of PATH (a FIFO, a device...), a
 *                                heap and a CPU sample in it, a dump, bye
 * It prints its pid first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "memprof_wire.h"

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		perror("probe_client: connect");
		exit(1);
	}
	return fd;
}

/* Records are gathered in a buffer and written in large pieces. */
static unsigned char buf[1 << 16];
static size_t buf_len;
static int sock;

static void flush_buf(void)
{
	size_t off = 0;
	while (off < buf_len) {
		ssize_t n = write(sock, buf + off, buf_len - off);
		if (n <= 0) {
			perror("probe_client: write");
			exit(1);
		}
		off += (size_t)n;
	}
	buf_len = 0;
}

static void rec(uint32_t type, const void *a, size_t alen, const void *b, size_t blen)
{
	struct mp_rec_hdr h = { type, (uint32_t)(alen + blen) };
	if (buf_len + sizeof(h) + alen + blen > sizeof(buf))
		flush_buf();
	memcpy(buf + buf_len, &h, sizeof(h));
	if (alen)
		memcpy(buf + buf_len + sizeof(h), a, alen);
	if (blen)
		memcpy(buf + buf_len + sizeof(h) + alen, b, blen);
	buf_len += sizeof(h) + alen + blen;
}

static void hello(uint32_t pid, uint32_t flags)
{
	static const char name[] = "probe";
	struct mp_hello h = { .magic = MP_WIRE_MAGIC, .version = MP_WIRE_VERSION,
			      .pid = pid, .ppid = (uint32_t)getppid(), .rate = 1,
			      .flags = flags, .name_len = sizeof(name) - 1 };
	rec(MP_REC_HELLO, &h, sizeof(h), name, sizeof(name) - 1);
}

/* Stack i (id i + 1): one frame of its own; a live 64-byte block. */
static void stack_and_block(uint32_t i)
{
	struct mp_stack s = { i + 1, 1 };
	uint64_t pc = 0x400000 + (uint64_t)i * 16;
	rec(MP_REC_STACK, &s, sizeof(s), &pc, sizeof(pc));
	struct mp_alloc a = { 0x10000000 + (uint64_t)i * 64, 64, i + 1, 0 };
	rec(MP_REC_ALLOC, &a, sizeof(a), NULL, 0);
}

/* Asks for a dump, says goodbye, and stays until the collector has read it
 * all: it ends the connection when we close ours. */
static int dump_bye_and_wait(void)
{
	rec(MP_REC_DUMP, NULL, 0, NULL, 0);
	rec(MP_REC_BYE, NULL, 0, NULL, 0);
	flush_buf();
	char c;
	shutdown(sock, SHUT_WR);
	while (read(sock, &c, 1) > 0)
		;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: probe_client SOCK pid|stacks|leaks|hold N, or SOCK file PATH\n");
		return 2;
	}
	const char *mode = argv[2];
	unsigned long n = strtoul(argv[3], NULL, 10);
	printf("%d\n", (int)getpid());
	fflush(stdout);
	if (strcmp(mode, "hold") == 0) {
		for (unsigned long i = 0; i < n; i++)
			connect_to(argv[1]);
		printf("sent\n");
		fflush(stdout);
		pause();
		return 0;
	}
	sock = connect_to(argv[1]);
	if (strcmp(mode, "file") == 0) {
		struct mp_hello h = { .magic = MP_WIRE_MAGIC, .version = MP_WIRE_VERSION,
				      .pid = (uint32_t)getpid(), .ppid = (uint32_t)getppid(),
				      .rate = 1, .cpu_hz = 100, .name_len = 5 };
		rec(MP_REC_HELLO, &h, sizeof(h), "probe", 5);
		struct mp_mapping m = { 0x400000, 0x500000, 0, 0, 0, (uint32_t)strlen(argv[3]) };
		rec(MP_REC_MAPPING, &m, sizeof(m), argv[3], strlen(argv[3]));
		stack_and_block(0);
		struct {
			struct mp_cpu_sample s;
			uint64_t stack[4];
		} cpu = { .s = { .tid = (uint32_t)getpid(), .weight = 1,
				 .stack_len = sizeof(cpu.stack) } };
		cpu.s.regs[7] = (uint64_t)(uintptr_t)&cpu.stack; /* rsp */
		cpu.s.regs[16] = 0x400100;                         /* rip */
		rec(MP_REC_CPU, &cpu, sizeof(cpu), NULL, 0);
		return dump_bye_and_wait();
	}
	if (strcmp(mode, "pid") == 0) {
		hello((uint32_t)n, 0);
		stack_and_block(0);
		return dump_bye_and_wait();
	}
	hello((uint32_t)getpid(), strcmp(mode, "leaks") == 0 ? MP_HELLO_FULL_TRACE : 0);
	for (uint32_t i = 0; i < n; i++)
		stack_and_block(i);
	if (strcmp(mode, "leaks") == 0) {
		struct mp_leaks lh = { 0, 0 };
		struct mp_leak l[256];
		for (uint32_t i = 0; i < n;) {
			lh.count = 0;
			for (; i < n && lh.count < 256; i++, lh.count++)
				l[lh.count] = (struct mp_leak){ 0x10000000 + (uint64_t)i * 64, 64,
								MP_LEAK_DIRECT, 0 };
			rec(MP_REC_LEAKS, &lh, sizeof(lh), l, lh.count * sizeof(l[0]));
		}
		struct mp_leak_end end = { 0, 0, 0, 0 };
		rec(MP_REC_LEAK_END, &end, sizeof(end), NULL, 0);
		flush_buf();
		printf("sent\n");
		fflush(stdout);
		pause(); /* and never read the report */
		return 0;
	}
	flush_buf();
	printf("sent\n");
	fflush(stdout);
	char c;
	while (read(0, &c, 1) > 0)
		;
	rec(MP_REC_BYE, NULL, 0, NULL, 0);
	flush_buf();
	return 0;
}
