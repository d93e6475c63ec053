/*
 * Unit tests for the live-block index (collector/live.c): the same puts
 * and takes applied to it and to a plain hash map must give the same
 * answers, whether ids come in order from several rings, out of order,
 * are mostly freed (pages released into the hash table), or are what a
 * hostile client picks (pages only while they pay for themselves); and
 * the same for addresses as an allocator hands them out and reuses them,
 * aligned or not, and for keys of other kinds.
 */
#include <stdlib.h>

#include "live.h"
#include "test.h"

static uint64_t rng = 88172645463325252ULL;

static uint64_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* The model: what a single map holds for the same operations. */
struct both {
	struct live live;
	struct map model;
	uint64_t kind; /* of every key: LIVE_BY_ID unless a test says */
	size_t most_paged; /* the largest live.paged so far */
};

/* Pages are made only while there are fewer than 64 + one per 32 keys
 * in pages, and an empty one is released, so there are never more than
 * the most keys ever paged paid for, and none without a key. */
static bool pages_bounded(const struct both *b)
{
	return b->live.pages.count <= 64 + b->most_paged / 32 && b->live.pages.count <= b->live.paged;
}

static void put(struct both *b, uint64_t id, uint64_t val)
{
	live_put(&b->live, id, b->kind, val);
	map_put(&b->model, id, b->kind, val);
	if (b->live.paged > b->most_paged)
		b->most_paged = b->live.paged;
}

static void take(struct both *b, uint64_t id)
{
	uint64_t got = 12345, want = 67890;
	bool in_live = live_take(&b->live, id, b->kind, &got);
	bool in_model = map_remove(&b->model, id, b->kind, &want);
	CHECK(in_live == in_model);
	if (in_live && in_model && got != want) {
		CHECK_INT_EQ(got, want);
		fprintf(stderr, "    id %#llx\n", (unsigned long long)id);
	}
	CHECK_INT_EQ(live_count(&b->live), b->model.count);
}

/* Every id the model holds is in live with its value, and nothing more. */
static void same(struct both *b)
{
	struct live copy = { 0 };
	live_copy(&copy, &b->live);
	for (size_t i = 0; i < b->model.cap; i++)
		if (b->model.slots[i].k1) {
			uint64_t v = 0, f = 1;
			CHECK(live_find(&b->live, b->model.slots[i].k1, b->kind, &f));
			CHECK_INT_EQ(f, b->model.slots[i].val);
			CHECK(live_take(&copy, b->model.slots[i].k1, b->kind, &v));
			CHECK_INT_EQ(v, b->model.slots[i].val);
		}
	CHECK_INT_EQ(live_count(&copy), 0);
	live_free(&copy);
	CHECK_INT_EQ(live_count(&b->live), b->model.count);
}

static void done(struct both *b)
{
	live_free(&b->live);
	map_free(&b->model);
}

/* Four rings allocating in turn (ids are ring << 40 | count), each block
 * freed a random while later: what full trace sends. Values include the
 * ones a page slot cannot hold. */
static void test_rings(void)
{
	struct both b = { .kind = LIVE_BY_ID };
	enum { RINGS = 4, WINDOW = 3000 };
	uint64_t next[RINGS] = { 0 }, window[WINDOW] = { 0 };
	for (int step = 0; step < 400000; step++) {
		int r = (int)(next_rand() % RINGS);
		uint64_t id = ((uint64_t)(r + 1) << 40) | ++next[r];
		uint64_t v = next_rand() % 8;
		uint64_t val = v == 0 ? UINT64_MAX : v == 1 ? UINT32_MAX + 5ULL : v == 2 ? UINT32_MAX - 2ULL : v;
		put(&b, id, val);
		/* Some blocks live for ever, the rest until a later step
		 * pushes them out of the window. */
		if (next_rand() % 50 == 0)
			continue;
		size_t w = next_rand() % WINDOW;
		if (window[w])
			take(&b, window[w]);
		window[w] = id;
	}
	same(&b);
	/* Each page that held mostly freed ids has been released. */
	CHECK(pages_bounded(&b));
	for (size_t w = 0; w < WINDOW; w++)
		if (window[w])
			take(&b, window[w]);
	same(&b);
	done(&b);
}

/* Frees of ids never allocated, twice-freed ids and replaced values. */
static void test_odd_sequences(void)
{
	struct both b = { .kind = LIVE_BY_ID };
	take(&b, 5);
	put(&b, 5, 1);
	put(&b, 5, 2); /* replaces */
	CHECK_INT_EQ(live_count(&b.live), 1);
	take(&b, 5);
	take(&b, 5);
	/* A page filled, mostly freed (released), then an id of its range
	 * allocated late: a new page, with the old survivors still found. */
	for (uint64_t id = 1024; id < 2048; id++)
		put(&b, id, id);
	for (uint64_t id = 1024; id < 2000; id++)
		take(&b, id);
	put(&b, 2047 + 1, 7);
	put(&b, 1500, 9);
	same(&b);
	done(&b);
}

/* Ids scattered over the whole range, one per page: pages stop being made
 * and the rest go to the hash table, so memory stays with the count. */
static void test_hostile_ids(void)
{
	struct both b = { .kind = LIVE_BY_ID };
	for (int i = 0; i < 100000; i++)
		put(&b, next_rand() | 1, (uint64_t)i);
	CHECK(pages_bounded(&b));
	CHECK(b.live.pages.count < 4000);
	same(&b);
	/* Taken from a list: taking from the model moves its slots. */
	size_t n = 0;
	uint64_t *ids = malloc(b.model.count * sizeof(*ids));
	for (size_t i = 0; i < b.model.cap; i++)
		if (b.model.slots[i].k1)
			ids[n++] = b.model.slots[i].k1;
	for (size_t i = 0; i < n; i++)
		take(&b, ids[i]);
	free(ids);
	CHECK_INT_EQ(live_count(&b.live), 0);
	done(&b);
}

/* Addresses: a bump allocator with a free list that reuses addresses,
 * sizes from 8 bytes (some not 16-byte aligned) to 8 KB, and a block
 * freed a random while later; then every key kind at once. */
static void test_addresses(void)
{
	struct both b = { .kind = LIVE_BY_ADDR };
	enum { WINDOW = 2000, FREE_LIST = 4096 };
	uint64_t top = 0x555500000000ULL, window[WINDOW] = { 0 }, freed[FREE_LIST];
	size_t nfreed = 0;
	for (int step = 0; step < 300000; step++) {
		uint64_t size = next_rand() % 4 == 0 ? 8 + next_rand() % 8192 : 8 + next_rand() % 64;
		uint64_t addr;
		if (nfreed && next_rand() % 2) {
			addr = freed[--nfreed];
		} else {
			addr = top;
			top += (size + 7) & ~7ULL; /* 8-byte granules: half unaligned */
		}
		put(&b, addr, (uint64_t)step % 100000);
		if (next_rand() % 40 == 0)
			continue;
		size_t w = next_rand() % WINDOW;
		if (window[w]) {
			take(&b, window[w]);
			if (nfreed < FREE_LIST)
				freed[nfreed++] = window[w];
		}
		window[w] = addr;
	}
	same(&b);
	CHECK(pages_bounded(&b));
	done(&b);

	/* Keys of each kind side by side: the same number is three keys. */
	struct live l = { 0 };
	uint64_t v;
	live_put(&l, 0x1000, LIVE_BY_ADDR, 1);
	live_put(&l, 0x1000, LIVE_BY_ID, 2);
	live_put(&l, 0x1000, LIVE_KIND_PAGED_MAX + 1, 3);
	CHECK_INT_EQ(live_count(&l), 3);
	CHECK(live_take(&l, 0x1000, LIVE_BY_ID, &v) && v == 2);
	CHECK(live_take(&l, 0x1000, LIVE_KIND_PAGED_MAX + 1, &v) && v == 3);
	CHECK(!live_take(&l, 0x1000, LIVE_KIND_PAGED_MAX + 1, &v));
	CHECK(live_find(&l, 0x1000, LIVE_BY_ADDR, &v) && v == 1);
	CHECK_INT_EQ(live_count(&l), 1);
	live_free(&l);
}

int main(int argc, char **argv)
{
	(void)argc;
	test_addresses();
	test_rings();
	test_odd_sequences();
	test_hostile_ids();
	return test_summary(argv[0]);
}
