/*
 * The collector's hash map; see map.h.
 */
#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "util.h"

static size_t home(const struct map *m, uint64_t k1, uint64_t k2)
{
	uint64_t x = k1 * 0x9e3779b97f4a7c15ULL ^ k2 * 0xc2b2ae3d27d4eb4fULL;
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 32;
	return (size_t)x & (m->cap - 1);
}

uint64_t *map_find(const struct map *m, uint64_t k1, uint64_t k2)
{
	if (!m->cap)
		return NULL;
	for (size_t i = home(m, k1, k2);; i = (i + 1) & (m->cap - 1)) {
		struct map_slot *s = &m->slots[i];
		if (!s->k1)
			return NULL;
		if (s->k1 == k1 && s->k2 == k2)
			return &s->val;
	}
}

static void insert(struct map *m, uint64_t k1, uint64_t k2, uint64_t val)
{
	size_t i = home(m, k1, k2);
	while (m->slots[i].k1 && !(m->slots[i].k1 == k1 && m->slots[i].k2 == k2))
		i = (i + 1) & (m->cap - 1);
	if (!m->slots[i].k1)
		m->count++;
	m->slots[i] = (struct map_slot){ k1, k2, val };
}

/*
 * When a table grows. A lookup's cost is its probe loop: with linear
 * probing a miss takes about (1 + 1/(1 - a)^2) / 2 probes at load a, 2.5 at
 * half full and 8.5 at three quarters, and the branch that ends each loop is
 * mispredicted the more often the longer they run. At rate 1 the collector
 * does three or four lookups per event (live blocks, buckets), most of its
 * time (issue 11). Tables of up to SPARSE_SLOTS slots (1.5 MB) grow at half
 * full, where memory is not worth the probes; larger ones at three quarters,
 * so that the biggest (live blocks up to PROC_MAX_LIVE) stay as they were.
 */
#define SPARSE_SLOTS 65536

static bool too_full(const struct map *m)
{
	if (m->cap < SPARSE_SLOTS)
		return (m->count + 1) * 2 > m->cap;
	return (m->count + 1) * 4 > m->cap * 3;
}

void map_put(struct map *m, uint64_t k1, uint64_t k2, uint64_t val)
{
	if (too_full(m)) {
		struct map old = *m;
		m->cap = old.cap ? old.cap * 2 : 64;
		m->slots = xcalloc(m->cap, sizeof(*m->slots));
		m->count = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.slots[i].k1)
				insert(m, old.slots[i].k1, old.slots[i].k2, old.slots[i].val);
		free(old.slots);
	}
	insert(m, k1, k2, val);
}

bool map_remove(struct map *m, uint64_t k1, uint64_t k2, uint64_t *val)
{
	uint64_t *v = map_find(m, k1, k2);
	if (!v)
		return false;
	if (val)
		*val = *v;
	size_t mask = m->cap - 1;
	size_t i = (size_t)((struct map_slot *)((char *)v - offsetof(struct map_slot, val)) - m->slots);
	for (size_t j = (i + 1) & mask; m->slots[j].k1; j = (j + 1) & mask) {
		size_t h = home(m, m->slots[j].k1, m->slots[j].k2);
		if (((j - h) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i] = (struct map_slot){ 0, 0, 0 };
	m->count--;
	return true;
}

void map_clear(struct map *m)
{
	if (m->slots)
		memset(m->slots, 0, m->cap * sizeof(*m->slots));
	m->count = 0;
}

void map_free(struct map *m)
{
	free(m->slots);
	*m = (struct map){ 0 };
}

uint64_t hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 1099511628211ULL;
	return h | 1; /* never 0: usable as a first key word */
}

void map_copy(struct map *dst, const struct map *src)
{
	map_free(dst);
	dst->cap = src->cap;
	dst->count = src->count;
	if (src->cap) {
		dst->slots = xmalloc(src->cap * sizeof(*src->slots));
		memcpy(dst->slots, src->slots, src->cap * sizeof(*src->slots));
	}
}
