/*
 * The set of live sampled blocks: what free() reports, and what the leak
 * check and a fork child's profile start from. Two levels:
 *  - a filter (one bit per 16-byte granule, see shim.h) that free() reads
 *    without a lock when the allocator is not glibc's (under glibc, sampled
 *    blocks carry a header instead: preload.c), with a count of live blocks
 *    per bit, which free() never reads, to say when a bit may be cleared;
 *  - 64 stripes of open-addressing tables (address -> size), each behind a
 *    spinlock held for a few instructions. A block's stripe is chosen by
 *    its filter word, so the stripe's lock also guards that word.
 * Storage comes from mmap, never from the host's malloc.
 */
#include <sched.h>
#include <string.h>
#include <sys/mman.h>

#include "shim.h"

#define STRIPES 64
#define FILTER_SIZE (1U << MP_LIVE_FILTER_BITS)
#define FILTER_STUCK 255 /* a saturated count never goes down again */

struct slot {
	uintptr_t addr; /* 0 = empty */
	uint64_t size;
	uint64_t caller; /* return address into the allocating function */
};

struct stripe {
	atomic_flag lock;
	uint32_t count;
	uint32_t cap; /* power of two, or 0 before the first insert */
	struct slot *slots;
} __attribute__((aligned(64)));

static struct stripe stripes[STRIPES];
_Atomic bool mp_live_used;
/* In .bss: pages the program never frees near cost nothing, and free()
 * reads it without first loading a pointer to it. */
_Atomic uint64_t mp_live_filter[FILTER_SIZE / 64];
static uint8_t bucket_count[FILTER_SIZE];

static inline uint64_t mix(uintptr_t a)
{
	uint64_t x = a;
	x ^= x >> 31;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 29;
	return x;
}

static void lock(struct stripe *s)
{
	while (atomic_flag_test_and_set_explicit(&s->lock, memory_order_acquire))
		sched_yield();
}

static void unlock(struct stripe *s)
{
	atomic_flag_clear_explicit(&s->lock, memory_order_release);
}

static struct slot *map_slots(uint32_t cap)
{
	void *p = mmap(NULL, (size_t)cap * sizeof(struct slot), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void put(struct slot *slots, uint32_t cap, const struct slot *s)
{
	uint32_t i = (uint32_t)(mix(s->addr) >> 32) & (cap - 1);
	while (slots[i].addr && slots[i].addr != s->addr)
		i = (i + 1) & (cap - 1);
	slots[i] = *s;
}

static int grow(struct stripe *s)
{
	uint32_t ncap = s->cap ? s->cap * 2 : 64;
	struct slot *ns = map_slots(ncap);
	if (!ns)
		return -1;
	for (uint32_t i = 0; i < s->cap; i++)
		if (s->slots[i].addr)
			put(ns, ncap, &s->slots[i]);
	if (s->slots)
		munmap(s->slots, (size_t)s->cap * sizeof(struct slot));
	s->slots = ns;
	s->cap = ncap;
	return 0;
}

static struct stripe *stripe_of(uint32_t bucket)
{
	return &stripes[(bucket / 64) % STRIPES];
}

/* The filter's bit for bucket follows its count; under the stripe's lock.
 * Only this stripe writes the word, so load and store need not be one
 * atomic step; free() reads the word at any time. */
static void set_bit(uint32_t bucket, bool on)
{
	_Atomic uint64_t *w = &mp_live_filter[bucket / 64];
	uint64_t v = atomic_load_explicit(w, memory_order_relaxed), bit = 1ULL << (bucket % 64);
	atomic_store_explicit(w, on ? v | bit : v & ~bit, memory_order_relaxed);
}

static void count_up(uint32_t bucket)
{
	if (bucket_count[bucket] != FILTER_STUCK && bucket_count[bucket]++ == 0)
		set_bit(bucket, true);
}

static void count_down(uint32_t bucket)
{
	if (bucket_count[bucket] != FILTER_STUCK && bucket_count[bucket] != 0 &&
	    --bucket_count[bucket] == 0)
		set_bit(bucket, false);
}

int mp_live_insert(const void *p, uint64_t size, uint64_t caller)
{
	uintptr_t a = (uintptr_t)p;
	uint32_t bucket = mp_live_bucket(p);
	struct stripe *s = stripe_of(bucket);
	lock(s);
	if ((s->count + 1) * 2 > s->cap && grow(s) != 0) {
		unlock(s);
		return -1;
	}
	struct slot n = { a, size, caller };
	put(s->slots, s->cap, &n);
	s->count++;
	count_up(bucket);
	unlock(s);
	if (MP_UNLIKELY(!atomic_load_explicit(&mp_live_used, memory_order_relaxed)))
		atomic_store(&mp_live_used, true);
	return 0;
}

void mp_live_mark_forever(const void *p)
{
	uint32_t bucket = mp_live_bucket(p);
	struct stripe *s = stripe_of(bucket);
	lock(s);
	if (bucket_count[bucket] == 0)
		count_up(bucket);
	bucket_count[bucket] = FILTER_STUCK;
	unlock(s);
	atomic_store(&mp_live_used, true);
}

/* Backward-shift deletion keeps linear probing correct without tombstones. */
static void delete_at(struct stripe *s, uint32_t i)
{
	uint32_t m = s->cap - 1;
	for (uint32_t j = (i + 1) & m; s->slots[j].addr; j = (j + 1) & m) {
		uint32_t home = (uint32_t)(mix(s->slots[j].addr) >> 32) & m;
		/* Move slot j into the hole at i unless its home lies in (i, j]. */
		if (((j - home) & m) >= ((j - i) & m)) {
			s->slots[i] = s->slots[j];
			i = j;
		}
	}
	s->slots[i] = (struct slot){ 0, 0, 0 };
}

bool mp_live_remove(const void *p)
{
	uintptr_t a = (uintptr_t)p;
	uint32_t bucket = mp_live_bucket(p);
	struct stripe *s = stripe_of(bucket);
	bool found = false;
	lock(s);
	if (s->cap) {
		uint32_t m = s->cap - 1;
		for (uint32_t i = (uint32_t)(mix(a) >> 32) & m; s->slots[i].addr; i = (i + 1) & m) {
			if (s->slots[i].addr == a) {
				delete_at(s, i);
				s->count--;
				count_down(bucket);
				found = true;
				break;
			}
		}
	}
	unlock(s);
	return found;
}

size_t mp_live_total(void)
{
	size_t n = 0;
	for (int i = 0; i < STRIPES; i++)
		n += __atomic_load_n(&stripes[i].count, __ATOMIC_RELAXED);
	return n;
}

size_t mp_live_copy(struct mp_block *out, size_t max)
{
	size_t n = 0;
	for (int i = 0; i < STRIPES; i++) {
		const struct stripe *s = &stripes[i];
		for (uint32_t j = 0; j < s->cap && n < max; j++)
			if (s->slots[j].addr)
				out[n++] = (struct mp_block){ s->slots[j].addr, s->slots[j].size,
							      s->slots[j].caller, 0 };
	}
	return n;
}

size_t mp_live_regions(struct mp_range *out, size_t max)
{
	size_t n = 0;
	for (int i = 0; i < STRIPES && n < max; i++)
		if (stripes[i].slots)
			out[n++] = (struct mp_range){
				(uint64_t)(uintptr_t)stripes[i].slots,
				(uint64_t)(uintptr_t)(stripes[i].slots + stripes[i].cap),
			};
	return n;
}

void mp_live_fork_prepare(void)
{
	for (int i = 0; i < STRIPES; i++)
		lock(&stripes[i]);
}

void mp_live_fork_parent(void)
{
	for (int i = STRIPES - 1; i >= 0; i--)
		unlock(&stripes[i]);
}

void mp_live_fork_child(void)
{
	/* The child's heap is the parent's: it keeps the table (the collector
	 * copies the parent's record of these blocks for the child). */
	mp_live_fork_parent();
}
