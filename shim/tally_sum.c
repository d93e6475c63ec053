/*
 * The writer's side of the tallies (tally.c): adds up what each thread's
 * table counted and says which (stack, size) totals changed.
 *
 * Per (slot, gid, size) it keeps the counts it saw last, so that a table
 * that changed adds only its difference to the process's totals; per
 * (gid, size) the totals and what was last sent. Only the writer (or the
 * thread pumping for it once it has stopped) runs this: no locks. Memory
 * from mmap: at a leak check the program's threads may hold malloc's.
 */
#include <string.h>
#include <sys/mman.h>

#include "shim.h"

struct wentry {
	uint64_t key; /* 0 = empty */
	uint64_t v[4];
	uint64_t listed; /* totals: in changed[] */
};

struct wmap {
	struct wentry *e;
	uint32_t bits, count;
};

/* seen: (slot << 56 | gid << 32 | size) -> allocs, frees as last read.
 * totals: (gid << 32 | size) -> allocs, frees, allocs sent, frees sent. */
static struct wmap seen, totals;
/* Bytes in use by the totals (sum of (allocs - frees) * size), modulo
 * 2^64 while a round is under way. */
static uint64_t inuse_bytes;
/* Keys of totals that changed in this round. */
static uint64_t *changed;
static uint32_t nchanged, changed_cap;

_Static_assert(MP_TALLY_SLOTS <= 256 && MP_TALLY_GID_MAX < (1U << 24),
	       "slot, gid and size fit in one key");

void *mp_map_zeroed(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static uint32_t home(uint64_t key, uint32_t bits)
{
	return (uint32_t)((key * 0x9e3779b97f4a7c15ULL) >> (64 - bits));
}

static int wmap_grow(struct wmap *m)
{
	uint32_t bits = m->bits ? m->bits + 1 : 10;
	struct wentry *ne = mp_map_zeroed(sizeof(*ne) << bits);
	if (!ne)
		return -1;
	for (uint32_t i = 0; m->e && i < (1U << m->bits); i++) {
		if (!m->e[i].key)
			continue;
		uint32_t j = home(m->e[i].key, bits);
		while (ne[j].key)
			j = (j + 1) & ((1U << bits) - 1);
		ne[j] = m->e[i];
	}
	if (m->e)
		munmap(m->e, sizeof(*m->e) << m->bits);
	m->e = ne;
	m->bits = bits;
	return 0;
}

/* key's entry, made (zero) if new; NULL if out of memory. */
static struct wentry *wmap_get(struct wmap *m, uint64_t key)
{
	if ((m->count + 1) * 2 > (m->bits ? 1U << m->bits : 0) && wmap_grow(m) != 0)
		return NULL;
	uint32_t mask = (1U << m->bits) - 1, i = home(key, m->bits);
	for (; m->e[i].key; i = (i + 1) & mask)
		if (m->e[i].key == key)
			return &m->e[i];
	m->count++;
	m->e[i].key = key;
	return &m->e[i];
}

static void note_changed(struct wentry *t)
{
	if (t->listed)
		return;
	if (nchanged == changed_cap) {
		uint32_t ncap = changed_cap ? changed_cap * 2 : 1024;
		uint64_t *nc = mp_map_zeroed(ncap * sizeof(*nc));
		if (!nc)
			return; /* sent at a later round */
		if (changed) {
			memcpy(nc, changed, nchanged * sizeof(*nc));
			munmap(changed, changed_cap * sizeof(*changed));
		}
		changed = nc;
		changed_cap = ncap;
	}
	changed[nchanged++] = t->key;
	t->listed = 1;
}

/* arg: the highest gid whose stack may be named yet (uint32_t). */
static void take_entry(uint32_t slot, const struct mp_tally_entry *e, void *arg)
{
	uint32_t gid_limit = *(const uint32_t *)arg;
	uint64_t key = atomic_load_explicit(&e->key, memory_order_relaxed);
	if ((uint32_t)(key >> 32) > gid_limit) {
		/* Its stack's mappings may not have been sent yet: next round. */
		mp_tally_mark_dirty(slot);
		return;
	}
	uint32_t a = atomic_load_explicit(&e->allocs, memory_order_relaxed);
	uint32_t f = atomic_load_explicit(&e->frees, memory_order_relaxed);
	struct wentry *s = wmap_get(&seen, (uint64_t)slot << 56 | key);
	struct wentry *t = s ? wmap_get(&totals, key) : NULL;
	if (!t) {
		mp_tally_mark_dirty(slot); /* out of memory: next round */
		return;
	}
	if (a == s->v[0] && f == s->v[1])
		return;
	/* Counts wrap at 2^32; read this often, they never wrap twice. */
	uint32_t more = a - (uint32_t)s->v[0], fewer = f - (uint32_t)s->v[1];
	t->v[0] += more;
	t->v[1] += fewer;
	inuse_bytes += ((uint64_t)more - fewer) * (key & MP_TALLY_SIZE_MAX);
	s->v[0] = a;
	s->v[1] = f;
	note_changed(t);
}

void mp_tally_sum_loose_free(uint64_t word)
{
	uint32_t gid = (uint32_t)(word >> MP_HDR_GID_SHIFT) & MP_TALLY_GID_MAX;
	uint64_t size = (word >> MP_HDR_SIZE_SHIFT) & MP_TALLY_SIZE_MAX;
	struct wentry *t = wmap_get(&totals, mp_tally_key(gid, size));
	if (!t)
		return;
	t->v[1]++;
	inuse_bytes -= size;
	note_changed(t);
}

/* The frees a total may say: a free counted before its allocation was
 * read (another thread's table, read earlier) waits for it. */
static uint64_t frees_to_send(const struct wentry *t)
{
	return t->v[1] < t->v[0] ? t->v[1] : t->v[0];
}

static void emit_one(struct wentry *t, void (*emit)(uint32_t, uint64_t, uint64_t, uint64_t))
{
	uint64_t frees = frees_to_send(t);
	if (t->v[0] != t->v[2] || frees != t->v[3])
		emit((uint32_t)(t->key >> 32), t->key & MP_TALLY_SIZE_MAX, t->v[0], frees);
	t->v[2] = t->v[0];
	t->v[3] = frees;
}

size_t mp_tally_sum(uint32_t gid_limit,
		    void (*emit)(uint32_t gid, uint64_t size, uint64_t allocs, uint64_t frees))
{
	mp_tally_scan(take_entry, &gid_limit);
	/* What shrank first, then what grew: the collector's peak is taken
	 * as totals arrive, and must not count this round's growth before
	 * its frees. */
	size_t n = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < nchanged; i++) {
			struct wentry *t = wmap_get(&totals, changed[i]);
			if (!t)
				continue;
			bool shrank = t->v[0] - frees_to_send(t) < t->v[2] - t->v[3];
			if (shrank == (pass == 0)) {
				emit_one(t, emit);
				t->listed = 0;
				n++;
			}
		}
	}
	nchanged = 0;
	return n;
}

void mp_tally_sum_reset(void)
{
	/* A fork child's writer starts from nothing; the parent's maps stay
	 * mapped (its writer may have been changing them). */
	seen = totals = (struct wmap){ 0 };
	inuse_bytes = 0;
	changed = NULL;
	nchanged = changed_cap = 0;
}

uint64_t mp_tally_sum_inuse(void)
{
	return inuse_bytes;
}
