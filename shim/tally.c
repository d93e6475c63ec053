/*
 * Full trace without an event per allocation: tallies kept in the program.
 *
 * At MEMPROF_RATE=1 every allocation and every free used to be an event:
 * written into the thread's ring, read by the writer on another core,
 * copied into the socket and read again by the collector. Each crossed
 * cores twice, and that traffic, not any one function, held the
 * two-thread malloc loop at 2.7x the CPU of a bare run (bench/RESULTS.md,
 * issue 11). A heap profile needs no more than counts per stack:
 * allocations and frees and their bytes, from which the in-use figures
 * follow. So in full trace each thread counts them in a table of its own,
 * per stack and size class (a power of two: struct mp_tally), and the
 * writer adds the tables up a few times a second and sends the totals.
 *
 *  - Stacks get a process-wide number (gid) from a lock-free table that
 *    only ever grows: the first allocation from a stack inserts it, later
 *    ones find it, usually without a lookup at all (the unwinder's memo
 *    entry keeps the gid its walk had: struct mp_memo_ref's tag).
 *  - The block's header (preload.c) keeps gid and size, so that free()
 *    knows what to count without a table: MP_HDR_TALLIED.
 *  - Each thread that allocates or frees holds a slot: an open-addressing
 *    table (gid, class) -> (allocations, frees, their bytes), written by
 *    that thread alone, read by the writer (mp_tally_sum in tally_sum.c).
 *    The counts only grow, so whatever the writer reads is a state the
 *    table was in. A slot outlives its thread, keeping its counts, for
 *    the next thread.
 *  - The slot's dirty flag tells the writer which tables changed. The
 *    owner stores it after its counts; the writer clears it with an
 *    exchange (a full barrier) before it reads them: a count it missed was
 *    stored after the exchange, so the flag is set again behind it.
 *
 * What does not fit goes the old way, as events: a size of 4 GiB or more,
 * a stack once the table is full, a thread with no slot (all taken, or its
 * thread-end destructor ran). A free of a tallied block by such a thread
 * is an MP_EV_TALLY_FREE event, which the writer counts in its own table.
 *
 * No locks, no malloc: tables come from mmap; an allocation that finds
 * its table full grows it (a new table, copied; the old one is left for
 * the writer to unmap, since it may be reading it).
 */
#include <string.h>
#include <sys/mman.h>

#include "shim.h"

bool mp_tally_on;
_Atomic uint64_t mp_tally_step = MP_TALLY_STEP_MIN;

/* ---- stacks and their gids ------------------------------------------------ */

#define STACK_GIDS MP_TALLY_GIDS
/* At most half full. */
#define STACK_INDEX_SIZE (2 * STACK_GIDS)
#define STACK_ARENA_BYTES (32U << 20)
_Static_assert(STACK_GIDS <= MP_TALLY_GID_MAX, "a gid fits in the header");

/* Index slot: the stack's hash above, its gid below; 0 = empty. */
static _Atomic uint64_t *stack_index;
/* gid -> offset of its record in the arena, in words. */
static _Atomic uint32_t *stack_off;
/* Records: depth, then the pcs. */
static uint64_t *stack_arena;
static _Atomic uint32_t stacks_made; /* gids 1 .. stacks_made are taken */
static _Atomic uint64_t arena_used;  /* words */

static void *map_lazy(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static bool same_stack(uint32_t gid, const uint64_t *pcs, uint32_t depth)
{
	uint32_t off = atomic_load_explicit(&stack_off[gid], memory_order_acquire);
	const uint64_t *r = stack_arena + off;
	return r[0] == depth && memcmp(r + 1, pcs, depth * sizeof(uint64_t)) == 0;
}

/* The stack's gid, made if it is new; 0 if the table is full. */
static uint32_t stack_gid(const uint64_t *pcs, uint32_t depth)
{
	uint64_t h = mp_hash_pcs(pcs, depth);
	uint64_t tag = h & ~(uint64_t)MP_TALLY_GID_MAX;
	uint32_t i = (uint32_t)(h >> 40) & (STACK_INDEX_SIZE - 1);
	uint32_t mine = 0;
	for (uint32_t probes = 0; probes < STACK_INDEX_SIZE; probes++, i = (i + 1) & (STACK_INDEX_SIZE - 1)) {
		uint64_t v = atomic_load_explicit(&stack_index[i], memory_order_acquire);
		while (v == 0) {
			if (!mine) {
				/* Full: looked at first, so that a program that
				 * goes on meeting new stacks does not run the
				 * count of gids round to ones in use. */
				if (atomic_load_explicit(&stacks_made, memory_order_relaxed) >= STACK_GIDS)
					return 0;
				/* Made before it is offered: a thread that finds
				 * the slot finds the record complete. */
				uint32_t gid = atomic_fetch_add(&stacks_made, 1) + 1;
				uint64_t off = atomic_fetch_add(&arena_used, depth + 1);
				if (gid > STACK_GIDS || off + depth + 1 > STACK_ARENA_BYTES / 8)
					return 0; /* full: gids stay taken, harmlessly */
				stack_arena[off] = depth;
				memcpy(stack_arena + off + 1, pcs, depth * sizeof(uint64_t));
				atomic_store_explicit(&stack_off[gid], (uint32_t)off, memory_order_release);
				mine = gid;
			}
			if (atomic_compare_exchange_strong(&stack_index[i], &v, tag | mine))
				return mine;
		}
		uint32_t gid = (uint32_t)(v & MP_TALLY_GID_MAX);
		if ((v & ~(uint64_t)MP_TALLY_GID_MAX) == tag && same_stack(gid, pcs, depth))
			return gid; /* another thread made it first: ours is wasted */
	}
	return 0;
}

uint32_t mp_tally_stacks_made(void)
{
	uint32_t n = atomic_load_explicit(&stacks_made, memory_order_acquire);
	return n < STACK_GIDS ? n : STACK_GIDS;
}

const uint64_t *mp_tally_stack(uint32_t gid, uint32_t *depth)
{
	if (gid == 0 || gid > mp_tally_stacks_made())
		return NULL;
	uint32_t off = atomic_load_explicit(&stack_off[gid], memory_order_acquire);
	if (off == 0)
		return NULL; /* taken, but its record never written (full) */
	*depth = (uint32_t)stack_arena[off];
	return stack_arena + off + 1;
}

/* ---- each thread's table ------------------------------------------------- */

struct tally_table {
	uint32_t bits;
	uint32_t count;                /* the owner's */
	struct tally_table *retired;   /* the next one the writer is to unmap */
	uint32_t mask, shift;          /* (1 << bits) - 1, 64 - bits */
	struct mp_tally_entry e[];
};

enum { SLOT_UNUSED = 0, SLOT_OWNED = 1, SLOT_FREE = 2 };

struct slot {
	_Alignas(64) _Atomic(struct tally_table *) table;
	_Atomic uint32_t state;
	_Atomic uint32_t dirty;
	/* Bytes this thread's allocations added, less its frees, since it
	 * last asked for the totals to be sent: the owner's. Not kept from
	 * going below 0: a thread that frees as much as it allocates, at
	 * random, would then drift up and ask again and again. */
	int64_t growth;
	/* Tables replaced by bigger ones, for the writer to unmap. */
	_Atomic(struct tally_table *) retired;
};

static struct slot slots[MP_TALLY_SLOTS];
static _Atomic uint32_t slots_claimed;

#define NO_SLOT ((struct slot *)1)
static __thread struct slot *my_slot_p __attribute__((tls_model("initial-exec")));

static size_t table_bytes(uint32_t bits)
{
	return sizeof(struct tally_table) + ((size_t)1 << bits) * sizeof(struct mp_tally_entry);
}

static struct tally_table *table_new(uint32_t bits)
{
	struct tally_table *t = mmap(NULL, table_bytes(bits), PROT_READ | PROT_WRITE,
				     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t == MAP_FAILED)
		return NULL;
	t->bits = bits;
	t->mask = (1U << bits) - 1;
	t->shift = 64 - bits;
	return t;
}

static struct slot *take_slot(void)
{
	uint32_t n = atomic_load(&slots_claimed);
	for (uint32_t i = 0; i < n && i < MP_TALLY_SLOTS; i++) {
		uint32_t expect = SLOT_FREE;
		if (atomic_load_explicit(&slots[i].state, memory_order_relaxed) == SLOT_FREE &&
		    atomic_compare_exchange_strong(&slots[i].state, &expect, SLOT_OWNED))
			return &slots[i];
	}
	uint32_t i = atomic_fetch_add(&slots_claimed, 1);
	if (i >= MP_TALLY_SLOTS)
		return NULL;
	struct tally_table *t = table_new(8);
	if (!t)
		return NULL; /* stays unused, and skipped, for good */
	atomic_store_explicit(&slots[i].table, t, memory_order_relaxed);
	atomic_store_explicit(&slots[i].state, SLOT_OWNED, memory_order_release);
	return &slots[i];
}

/* A slot taken (not none yet, nor NO_SLOT). */
static inline bool slot_usable(const struct slot *s)
{
	return (uintptr_t)s > (uintptr_t)NO_SLOT;
}

static inline struct slot *my_slot(void)
{
	struct slot *s = my_slot_p;
	if (MP_UNLIKELY(!s)) {
		s = take_slot();
		my_slot_p = s = s ? s : NO_SLOT;
	}
	return slot_usable(s) ? s : NULL;
}

static inline uint32_t key_home(uint64_t key, const struct tally_table *t)
{
	return (uint32_t)((key * 0x9e3779b97f4a7c15ULL) >> t->shift);
}

static void put_copy(struct tally_table *t, const struct mp_tally_entry *src)
{
	uint32_t mask = t->mask;
	uint64_t key = atomic_load_explicit(&src->key, memory_order_relaxed);
	uint32_t i = key_home(key, t);
	while (atomic_load_explicit(&t->e[i].key, memory_order_relaxed))
		i = (i + 1) & mask;
#define COPY(field)                                                                          \
	atomic_store_explicit(&t->e[i].field, atomic_load_explicit(&src->field, memory_order_relaxed), \
			      memory_order_relaxed)
	COPY(allocs);
	COPY(frees);
	COPY(alloc_bytes);
	COPY(free_bytes);
#undef COPY
	atomic_store_explicit(&t->e[i].key, key, memory_order_relaxed);
}

/* A table twice the size, with every count; NULL if out of memory. */
static struct tally_table *grow(struct slot *s, struct tally_table *old)
{
	if (old->bits >= 24)
		return NULL;
	struct tally_table *t = table_new(old->bits + 1);
	if (!t)
		return NULL;
	for (uint32_t i = 0; i < (1U << old->bits); i++)
		if (atomic_load_explicit(&old->e[i].key, memory_order_relaxed))
			put_copy(t, &old->e[i]);
	t->count = old->count;
	atomic_store_explicit(&s->table, t, memory_order_release);
	struct tally_table *head = atomic_load(&s->retired);
	do
		old->retired = head;
	while (!atomic_compare_exchange_weak(&s->retired, &head, old));
	return t;
}

/* The calling thread's entry for key if it has one, else NULL. */
static inline struct mp_tally_entry *entry_find(const struct slot *s, uint64_t key)
{
	struct tally_table *t = atomic_load_explicit(&s->table, memory_order_relaxed);
	uint32_t mask = t->mask;
	for (uint32_t i = key_home(key, t);; i = (i + 1) & mask) {
		uint64_t k = atomic_load_explicit(&t->e[i].key, memory_order_relaxed);
		if (k == key)
			return &t->e[i];
		if (k == 0)
			return NULL;
	}
}

/* The calling thread's entry for key, made if new; NULL if none can be. */
static inline struct mp_tally_entry *entry_of(struct slot *s, uint64_t key)
{
	struct mp_tally_entry *found = entry_find(s, key);
	if (found)
		return found;
	struct tally_table *t = atomic_load_explicit(&s->table, memory_order_relaxed);
	if ((t->count + 1) * 4 > (3U << t->bits) && !(t = grow(s, t)))
		return NULL;
	uint32_t mask = t->mask;
	uint32_t i = key_home(key, t);
	while (atomic_load_explicit(&t->e[i].key, memory_order_relaxed))
		i = (i + 1) & mask;
	t->count++;
	/* Counts of a new entry are zero: the key is all there is to publish. */
	atomic_store_explicit(&t->e[i].key, key, memory_order_release);
	return &t->e[i];
}

/* The owner's counts: one writer, so a plain add, stored atomically for
 * the writer thread that reads them. */
static inline void bump(_Atomic uint32_t *c)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

static inline void add_bytes(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static inline void mark_dirty(struct slot *s)
{
	if (!atomic_load_explicit(&s->dirty, memory_order_relaxed))
		atomic_store_explicit(&s->dirty, 1, memory_order_release);
}

/* A heap growing fast is sent as it grows, not only every TALLY_MS: the
 * collector's peak is taken from the totals it is sent, and a compiler's
 * or a batch job's peak may come and go within 100 ms. Returns true, for
 * the callers' tail calls. */
static __attribute__((noinline)) bool grew_past_step(struct slot *s)
{
	s->growth = 0;
	mp_writer_send_tallies_soon();
	return true;
}

static inline uint64_t tallied_word(uint64_t word, uint32_t gid, size_t size)
{
	return (word & MP_HDR_LOG2_MASK) | (uint64_t)gid << MP_HDR_GID_SHIFT |
	       (uint64_t)size << MP_HDR_SIZE_SHIFT | MP_HDR_TALLIED;
}

/* The count, once the thread's entry is found or made; the header says
 * which entry a free is to count in. */
static inline bool count_in(struct slot *s, struct mp_tally_entry *e, uint64_t *hdr, uint32_t gid,
			    size_t size)
{
	bump(&e->allocs);
	add_bytes(&e->alloc_bytes, size);
	mark_dirty(s);
	*hdr = tallied_word(*hdr, gid, size);
	s->growth += (int64_t)size;
	if (MP_UNLIKELY(s->growth >
			(int64_t)atomic_load_explicit(&mp_tally_step, memory_order_relaxed)))
		return grew_past_step(s);
	return true;
}

/* Counts an allocation of size from stack gid (a thread's first, or a
 * (stack, class) new to it: the slot and the entry are made here). */
static __attribute__((noinline)) bool count_alloc_slow(uint64_t *hdr, size_t size, uint32_t gid)
{
	struct slot *s = my_slot();
	struct mp_tally_entry *e;
	if (!s || !(e = entry_of(s, mp_tally_key(gid, size))))
		return false;
	return count_in(s, e, hdr, gid, size);
}

/* The common case, a (stack, class) the thread has counted before, with
 * every other case a tail call: it needs no stack frame. With the rest
 * inlined, each call saved and restored six registers, a fifth of its
 * instructions. */
static inline bool count_alloc(uint64_t *hdr, size_t size, uint32_t gid)
{
	struct slot *s = my_slot_p;
	struct mp_tally_entry *e;
	if (MP_UNLIKELY(!slot_usable(s) || !(e = entry_find(s, mp_tally_key(gid, size)))))
		return count_alloc_slow(hdr, size, gid);
	return count_in(s, e, hdr, gid, size);
}

/* A stack the unwinder's memo did not know: its gid first. */
static __attribute__((noinline)) bool tally_alloc_new_stack(uint64_t *hdr, size_t size,
							    const uint64_t *pcs, uint32_t depth,
							    uint32_t *tag)
{
	uint32_t gid = stack_gid(pcs, depth);
	if (!gid)
		return false;
	if (tag)
		*tag = gid;
	return count_alloc_slow(hdr, size, gid);
}

bool mp_tally_alloc(uint64_t *hdr, size_t size, const uint64_t *pcs, uint32_t depth, uint32_t *tag)
{
	if (MP_UNLIKELY(size > MP_TALLY_SIZE_MAX))
		return false;
	uint32_t gid = tag ? *tag : 0;
	if (MP_UNLIKELY(!gid))
		return tally_alloc_new_stack(hdr, size, pcs, depth, tag);
	return count_alloc(hdr, size, gid);
}

static inline void count_free_in(struct slot *s, struct mp_tally_entry *e, uint64_t size)
{
	bump(&e->frees);
	add_bytes(&e->free_bytes, size);
	mark_dirty(s);
	s->growth -= (int64_t)size;
}

static __attribute__((noinline)) void tally_free_slow(uint64_t word)
{
	struct mp_tls *t = &mp_tls;
	uint32_t gid = (uint32_t)(word >> MP_HDR_GID_SHIFT) & MP_TALLY_GID_MAX;
	uint64_t size = (word >> MP_HDR_SIZE_SHIFT) & MP_TALLY_SIZE_MAX;
	/* Busy: a signal handler's free must not find the table mid-change. */
	t->busy++;
	struct slot *s = my_slot();
	struct mp_tally_entry *e;
	if (MP_LIKELY(s && (e = entry_of(s, mp_tally_key(gid, size)))))
		count_free_in(s, e, size);
	else
		mp_sample_tally_free_event(word);
	t->busy--;
}

/* Split as mp_tally_alloc is. */
void mp_tally_free(uint64_t word)
{
	struct slot *s = my_slot_p;
	if (MP_UNLIKELY(!slot_usable(s))) {
		tally_free_slow(word);
		return;
	}
	struct mp_tls *t = &mp_tls;
	uint32_t gid = (uint32_t)(word >> MP_HDR_GID_SHIFT) & MP_TALLY_GID_MAX;
	uint64_t size = (word >> MP_HDR_SIZE_SHIFT) & MP_TALLY_SIZE_MAX;
	/* Busy: a signal handler's allocation must not grow the table
	 * between the look-up and the count. */
	t->busy++;
	struct mp_tally_entry *e = entry_find(s, mp_tally_key(gid, size));
	if (MP_LIKELY(e)) {
		count_free_in(s, e, size);
		t->busy--;
		return;
	}
	t->busy--;
	tally_free_slow(word);
}

void mp_tally_thread_end(void)
{
	struct slot *s = my_slot_p;
	my_slot_p = NO_SLOT;
	if (s && s != NO_SLOT)
		atomic_store_explicit(&s->state, SLOT_FREE, memory_order_release);
}

int mp_tally_init(void)
{
	stack_index = map_lazy(STACK_INDEX_SIZE * sizeof(*stack_index));
	stack_off = map_lazy((STACK_GIDS + 1) * sizeof(*stack_off));
	stack_arena = map_lazy(STACK_ARENA_BYTES);
	if (!stack_index || !stack_off || !stack_arena)
		return -1;
	/* Offset 0 stays unused: it means "no record" (mp_tally_stack). */
	atomic_store(&arena_used, 1);
	return 0;
}

void mp_tally_fork_child(void)
{
	/* The counts are the child's too: its blocks are copies of the
	 * parent's. The threads that held slots did not come along: their
	 * slots are free, and every slot is looked at once more by the
	 * child's writer, which starts from nothing. */
	for (uint32_t i = 0; i < MP_TALLY_SLOTS; i++) {
		struct slot *s = &slots[i];
		uint32_t st = atomic_load(&s->state);
		if (st == SLOT_UNUSED)
			continue;
		if (s != my_slot_p)
			atomic_store(&s->state, SLOT_FREE);
		atomic_store(&s->dirty, 1);
	}
}

/* ---- the writer's side ----------------------------------------------------- */

size_t mp_tally_scan(void (*fn)(uint32_t slot, const struct mp_tally_entry *e, void *arg), void *arg)
{
	size_t n = 0;
	uint32_t claimed = atomic_load_explicit(&slots_claimed, memory_order_acquire);
	for (uint32_t i = 0; i < claimed && i < MP_TALLY_SLOTS; i++) {
		struct slot *s = &slots[i];
		if (atomic_load_explicit(&s->state, memory_order_acquire) == SLOT_UNUSED)
			continue;
		/* Tables replaced before this scan: nobody reads them now. */
		for (struct tally_table *t = atomic_exchange(&s->retired, NULL), *next; t; t = next) {
			next = t->retired;
			munmap(t, table_bytes(t->bits));
		}
		if (!atomic_exchange(&s->dirty, 0))
			continue;
		struct tally_table *t = atomic_load_explicit(&s->table, memory_order_acquire);
		for (uint32_t j = 0; j < (1U << t->bits); j++) {
			if (atomic_load_explicit(&t->e[j].key, memory_order_acquire)) {
				fn(i, &t->e[j], arg);
				n++;
			}
		}
	}
	return n;
}

void mp_tally_mark_dirty(uint32_t slot)
{
	if (slot < MP_TALLY_SLOTS)
		atomic_store(&slots[slot].dirty, 1);
}
