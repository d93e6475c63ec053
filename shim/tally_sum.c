/*
 * The writer's side of the tallies (tally.c): adds up what each thread's
 * table counted and says which (stack, size class) totals changed.
 *
 * Per (slot, gid, class) it keeps the counts it saw last, so that a table
 * that changed adds only its difference to the process's totals; per
 * (gid, class) the totals and what was last sent. Only the writer (or the
 * thread pumping for it once it has stopped) runs this: no locks. Memory
 * from mmap: at a leak check the program's threads may hold malloc's.
 */
#include <string.h>
#include <sys/mman.h>

#include "shim.h"

/* Counts in the order of struct mp_tally's: allocs, frees, alloc_bytes,
 * free_bytes. */
enum { ALLOCS, FREES, ALLOC_BYTES, FREE_BYTES, NCOUNTS };

struct wentry {
	uint64_t key; /* 0 = empty */
	uint64_t v[NCOUNTS];    /* seen: as last read; totals: the sums */
	uint64_t sent[NCOUNTS]; /* totals: as last sent */
	uint64_t listed;        /* totals: in changed[] */
};

struct wmap {
	struct wentry *e;
	uint32_t bits, count;
};

/* seen: (slot << 56 | gid << 8 | class) -> counts as last read.
 * totals: (gid << 8 | class) -> the sums, and what was sent. */
static struct wmap seen, totals;
/* Bytes in use by the totals, modulo 2^64 while a round is under way. */
static uint64_t inuse_bytes;
/* Keys of totals that changed in this round. */
static uint64_t *changed;
static uint32_t nchanged, changed_cap;

_Static_assert(MP_TALLY_SLOTS <= 256 && MP_TALLY_GID_MAX < (1U << 24) && MP_TALLY_CLASSES <= 256,
	       "slot, gid and class fit in one key");

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
	if ((uint32_t)(key >> 8) > gid_limit) {
		/* Its stack's mappings may not have been sent yet: next round. */
		mp_tally_mark_dirty(slot);
		return;
	}
	uint64_t now[NCOUNTS] = {
		atomic_load_explicit(&e->allocs, memory_order_relaxed),
		atomic_load_explicit(&e->frees, memory_order_relaxed),
		atomic_load_explicit(&e->alloc_bytes, memory_order_relaxed),
		atomic_load_explicit(&e->free_bytes, memory_order_relaxed),
	};
	struct wentry *s = wmap_get(&seen, (uint64_t)slot << 56 | key);
	struct wentry *t = s ? wmap_get(&totals, key) : NULL;
	if (!t) {
		mp_tally_mark_dirty(slot); /* out of memory: next round */
		return;
	}
	if (memcmp(now, s->v, sizeof(now)) == 0)
		return;
	/* Counts wrap at 2^32, bytes at 2^64; read this often, they never
	 * wrap twice. */
	t->v[ALLOCS] += (uint32_t)(now[ALLOCS] - s->v[ALLOCS]);
	t->v[FREES] += (uint32_t)(now[FREES] - s->v[FREES]);
	uint64_t more = now[ALLOC_BYTES] - s->v[ALLOC_BYTES], less = now[FREE_BYTES] - s->v[FREE_BYTES];
	t->v[ALLOC_BYTES] += more;
	t->v[FREE_BYTES] += less;
	inuse_bytes += more - less;
	memcpy(s->v, now, sizeof(now));
	note_changed(t);
}

void mp_tally_sum_loose_free(uint64_t word)
{
	uint32_t gid = (uint32_t)(word >> MP_HDR_GID_SHIFT) & MP_TALLY_GID_MAX;
	uint64_t size = (word >> MP_HDR_SIZE_SHIFT) & MP_TALLY_SIZE_MAX;
	struct wentry *t = wmap_get(&totals, mp_tally_key(gid, size));
	if (!t)
		return;
	t->v[FREES]++;
	t->v[FREE_BYTES] += size;
	inuse_bytes -= size;
	note_changed(t);
}

/* The totals a record may say (its stack_id is the writer's to fill in:
 * the key's gid is not the wire's id). A free counted before its
 * allocation was read (another thread's table, read earlier) waits for
 * it: frees and their bytes are held to the allocations'. */
static struct mp_tally to_send(const struct wentry *t)
{
	const uint64_t *v = t->v;
	return (struct mp_tally){
		.size_class = (uint32_t)(t->key & 0xff),
		.allocs = v[ALLOCS],
		.frees = v[FREES] < v[ALLOCS] ? v[FREES] : v[ALLOCS],
		.alloc_bytes = v[ALLOC_BYTES],
		.free_bytes = v[FREE_BYTES] < v[ALLOC_BYTES] ? v[FREE_BYTES] : v[ALLOC_BYTES],
	};
}

static void emit_one(struct wentry *t, const struct mp_tally *m,
		     void (*emit)(uint32_t, const struct mp_tally *))
{
	uint64_t now[NCOUNTS] = { m->allocs, m->frees, m->alloc_bytes, m->free_bytes };
	if (memcmp(now, t->sent, sizeof(now)) != 0)
		emit((uint32_t)(t->key >> 8), m);
	memcpy(t->sent, now, sizeof(now));
}

size_t mp_tally_sum(uint32_t gid_limit, void (*emit)(uint32_t gid, const struct mp_tally *totals))
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
			struct mp_tally m = to_send(t);
			bool shrank = m.alloc_bytes - m.free_bytes <
				      t->sent[ALLOC_BYTES] - t->sent[FREE_BYTES];
			if (shrank == (pass == 0)) {
				emit_one(t, &m, emit);
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
