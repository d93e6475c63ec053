/*
 * Unit tests for what a client can make the collector hold and report,
 * without sockets: leak grouping, suppression and formatting (leak.c),
 * the per-process limits and the matching of frees to allocations
 * (proc.c), and the one number parser and the
 * --mode rule (util.c, options.c).
 */
#include <stdlib.h>
#include <string.h>

#include "leak.h"
#include "options.h"
#include "proc.h"
#include "strbuf.h"
#include "suppress.h"
#include "test.h"
#include "util.h"

static struct proc *new_proc(void)
{
	static const char name[] = "unit";
	unsigned char buf[sizeof(struct mp_hello) + sizeof(name)];
	struct mp_hello h = { .magic = MP_WIRE_MAGIC, .version = MP_WIRE_VERSION, .pid = 42,
			      .rate = 1, .name_len = sizeof(name) - 1 };
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), name, sizeof(name) - 1);
	const char *why = NULL;
	struct proc *p = proc_new(buf, (uint32_t)(sizeof(h) + sizeof(name) - 1), 0, &why);
	CHECK(p != NULL);
	return p;
}

/* Stack id (1, 2, ...) of one frame at pc; 0 or -1 as proc_apply. */
static int add_stack(struct proc *p, uint32_t id, uint64_t pc)
{
	unsigned char buf[sizeof(struct mp_stack) + sizeof(uint64_t)];
	struct mp_stack s = { id, 1 };
	memcpy(buf, &s, sizeof(s));
	memcpy(buf + sizeof(s), &pc, sizeof(pc));
	const char *why;
	return proc_apply(p, MP_REC_STACK, buf, sizeof(buf), &why);
}

static int add_alloc(struct proc *p, uint64_t addr, uint64_t size, uint32_t stack_id)
{
	struct mp_alloc a = { addr, size, stack_id, 0 };
	const char *why;
	return proc_apply(p, MP_REC_ALLOC, &a, sizeof(a), &why);
}

static int add_alloc_id(struct proc *p, uint64_t addr, uint64_t size, uint32_t stack_id, uint64_t id)
{
	struct mp_alloc a = { addr, size, stack_id, 0, id };
	const char *why;
	return proc_apply(p, MP_REC_ALLOC, &a, sizeof(a), &why);
}

static int add_free(struct proc *p, uint64_t addr, uint64_t id)
{
	struct mp_free f = { addr, id };
	const char *why;
	return proc_apply(p, MP_REC_FREE, &f, sizeof(f), &why);
}

/* Events with ids come in any order: a free before its allocation cancels
 * it, and an address reused while its first block's free is still on its
 * way is two blocks, not one. */
static void test_ids_in_any_order(void)
{
	struct proc *p = new_proc();
	CHECK_INT_EQ(add_stack(p, 1, 0x401000), 0);
	/* In order. */
	CHECK_INT_EQ(add_alloc_id(p, 0x1000, 64, 1, 7), 0);
	CHECK_INT_EQ(add_free(p, 0x1000, 7), 0);
	CHECK_INT_EQ(live_count(&p->live), 0);
	/* The free first: nothing stays live, and the allocation counts. */
	CHECK_INT_EQ(add_free(p, 0x2000, 8), 0);
	CHECK_INT_EQ(p->freed_first, 1);
	CHECK_INT_EQ(add_alloc_id(p, 0x2000, 64, 1, 8), 0);
	CHECK_INT_EQ(live_count(&p->live), 0);
	CHECK_INT_EQ(p->freed_first, 0);
	/* 0x3000 made (id 9), freed, and made again (id 10) by another
	 * thread, whose allocation comes before the first one's free. */
	CHECK_INT_EQ(add_alloc_id(p, 0x3000, 64, 1, 9), 0);
	CHECK_INT_EQ(add_alloc_id(p, 0x3000, 64, 1, 10), 0);
	CHECK_INT_EQ(add_free(p, 0x3000, 9), 0);
	CHECK_INT_EQ(live_count(&p->live), 1);
	CHECK_INT_EQ(p->nbuckets, 1);
	CHECK_INT_EQ(p->buckets[0].alloc_samples, 4);
	CHECK_INT_EQ(p->buckets[0].inuse_samples, 1);
	/* Without ids, an address is the key and order is trusted. */
	CHECK_INT_EQ(add_alloc(p, 0x4000, 64, 1), 0);
	CHECK_INT_EQ(add_free(p, 0x4000, 0), 0);
	CHECK_INT_EQ(p->buckets[0].inuse_samples, 1);
	CHECK_INT_EQ(p->buckets[0].alloc_samples, 5);
	proc_free(p);
}

static void test_leak_report(void)
{
	struct proc *p = new_proc();
	CHECK_INT_EQ(add_stack(p, 1, 0x401000), 0);
	CHECK_INT_EQ(add_stack(p, 2, 0x402000), 0);
	/* Three blocks from stack 1, one from stack 2, one never heard of. */
	struct mp_leak leaks[] = {
		{ 0x10000, 100, MP_LEAK_DIRECT, 0 }, { 0x20000, 100, MP_LEAK_DIRECT, 0 },
		{ 0x30000, 50, MP_LEAK_INDIRECT, 0 }, { 0x40000, 1000, MP_LEAK_DIRECT, 0 },
		{ 0x50000, 7, MP_LEAK_DIRECT, 0 },
	};
	CHECK_INT_EQ(add_alloc(p, 0x10000, 100, 1), 0);
	CHECK_INT_EQ(add_alloc(p, 0x20000, 100, 1), 0);
	CHECK_INT_EQ(add_alloc(p, 0x30000, 50, 1), 0);
	CHECK_INT_EQ(add_alloc(p, 0x40000, 1000, 2), 0);
	p->leaks = malloc(sizeof(leaks));
	memcpy(p->leaks, leaks, sizeof(leaks));
	p->nleaks = p->cap_leaks = 5;

	struct leak_group *g;
	size_t ng = leak_group(p, &g);
	CHECK_INT_EQ(ng, 4); /* (1, direct), (1, indirect), (2, direct), (unknown, direct) */
	CHECK_INT_EQ(g[0].stack, 0);
	CHECK_INT_EQ(g[0].bytes, 200);
	CHECK_INT_EQ(g[0].count, 2);
	CHECK_INT_EQ(g[3].stack, LEAK_UNKNOWN_STACK);

	/* Frames are kept as return addresses minus one: stack 2's is named
	 * "[unknown]+0x401fff". Suppress it. */
	struct suppressions sup = { 0 };
	GROW(sup.items, sup.cap, 1);
	sup.items[sup.n++] = (struct suppression){ xstrndup("*0x401fff", 9), 0, 0 };
	struct mp_leak_report r = { 0 };
	leak_suppress(p, g, ng, &sup, &r);
	CHECK_INT_EQ(r.suppressed_bytes, 1000);
	CHECK_INT_EQ(r.suppressed_count, 1);
	CHECK_INT_EQ(r.leaked_bytes, 257);
	CHECK_INT_EQ(r.leaked_count, 4);
	CHECK_INT_EQ(sup.items[0].hits, 1);
	/* Sorted: direct before indirect, largest first. */
	CHECK_INT_EQ(g[0].kind, MP_LEAK_DIRECT);
	CHECK_INT_EQ(g[0].bytes, 1000);
	CHECK_INT_EQ(g[ng - 1].kind, MP_LEAK_INDIRECT);

	struct strbuf t = { 0 };
	leak_format(&t, p, g, ng, &sup, &r, "a note\n");
	CHECK(strstr(t.s, "ERROR: memprof: detected memory leaks in unit (pid 42)") != NULL);
	CHECK(strstr(t.s, "Direct leak of 200 byte(s) in 2 object(s) allocated from:\n"
			  "    #0 0x401000 in [unknown]+0x400fff\n") != NULL);
	CHECK(strstr(t.s, "#0 (allocation stack unknown: the event was lost)") != NULL);
	CHECK(strstr(t.s, "Direct leak of 1000") == NULL);
	CHECK(strstr(t.s, "      1       1000 *0x401fff\n") != NULL);
	CHECK_STR_ENDS_WITH(t.s, "a note\nSUMMARY: memprof: 257 byte(s) leaked in 4 allocation(s).\n");
	sb_free(&t);
	suppress_free(&sup);
	free(g);
	proc_free(p);
}

static void test_limits(void)
{
	struct proc *p = new_proc();
	uint32_t id = 1;
	for (; id <= PROC_MAX_STACKS; id++)
		CHECK_INT_EQ(add_stack(p, id, 0x400000 + (uint64_t)id * 16), 0);
	CHECK_INT_EQ(p->nstacks, PROC_MAX_STACKS);
	CHECK_INT_EQ(p->over_limit_stacks, 0);
	/* One more: not kept, counted, and the sequence of ids goes on. */
	CHECK_INT_EQ(add_stack(p, id, 0x300000), 0);
	CHECK_INT_EQ(add_stack(p, id + 1, 0x400010), 0);
	CHECK_INT_EQ(p->nstacks, PROC_MAX_STACKS);
	CHECK_INT_EQ(p->over_limit_stacks, 2);
	CHECK_INT_EQ(add_alloc(p, 0x1000, 8, id), 0);
	CHECK_INT_EQ(add_alloc(p, 0x2000, 8, 1), 0);
	CHECK_INT_EQ(p->over_limit_samples, 1);
	CHECK_INT_EQ(live_count(&p->live), 1);
	/* A block with an id whose sample is not kept: its free finds it,
	 * rather than waiting for an allocation that has come already. */
	CHECK_INT_EQ(add_alloc_id(p, 0x4000, 8, id, 99), 0);
	CHECK_INT_EQ(p->over_limit_samples, 2);
	CHECK_INT_EQ(add_free(p, 0x4000, 99), 0);
	CHECK_INT_EQ(live_count(&p->live), 1);
	CHECK_INT_EQ(p->freed_first, 0);
	/* An id never defined is still a protocol error. */
	CHECK_INT_EQ(add_alloc(p, 0x3000, 8, id + 2), -1);
	proc_free(p);
}

static void test_parsers(void)
{
	uint64_t v = 7;
	CHECK_INT_EQ(parse_u64("0", 0, 10, &v), 0);
	CHECK_INT_EQ(v, 0);
	CHECK_INT_EQ(parse_u64("65535", 0, 65535, &v), 0);
	CHECK_INT_EQ(v, 65535);
	CHECK_INT_EQ(parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
	CHECK(v == UINT64_MAX);
	const char *bad[] = { "", "-1", "+1", " 1", "1 ", "1x", "0x10", "65536",
			      "18446744073709551616" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT_EQ(parse_u64(bad[i], 0, i + 1 == sizeof(bad) / sizeof(bad[0]) ? UINT64_MAX : 65535, &v), -1);
	CHECK_INT_EQ(parse_u64("0", 1, 10, &v), -1);

	mode_t m;
	CHECK_INT_EQ(options_parse_mode("0600", &m), 0);
	CHECK_INT_EQ(m, 0600);
	CHECK_INT_EQ(options_parse_mode("644", &m), 0);
	CHECK_INT_EQ(m, 0644);
	const char *bad_modes[] = { "", "0755", "0400", "0200", "1600", "06000", "0o600", "0608" };
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++)
		CHECK_INT_EQ(options_parse_mode(bad_modes[i], &m), -1);
}

int main(int argc, char **argv)
{
	(void)argc;
	test_leak_report();
	test_limits();
	test_ids_in_any_order();
	test_parsers();
	return test_summary(argv[0]);
}
