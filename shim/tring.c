/*
 * Per-thread event rings, for full trace (every allocation recorded).
 *
 * With one ring shared by every thread, each event's compare-and-swap on
 * the ring's head moved that cache line between cores: with two threads
 * allocating, 41% of the program's cycles went to that one instruction
 * (perf, malloc_loop at MEMPROF_RATE=1). Here each thread writes its
 * events into a single-producer ring of its own, and the writer thread,
 * the one consumer, takes them from all of them: a producer touches only
 * lines of its own until the writer moves its tail, an eighth of the ring
 * at a time.
 *
 * The price is order. The shared ring delivers events in the order they
 * happened, which the collector relies on when it keys live blocks by
 * address: a free reported before the real free() precedes the allocation
 * that reuses the address. Across per-thread rings that no longer holds,
 * so every allocation gets an id, kept in its block's header (preload.c)
 * and sent with its free; the collector matches a free to its allocation
 * by id, whichever arrives first. Ids are a ring's number and a count of
 * that ring's own, so taking one costs nothing shared.
 *
 * Used only where headers exist and tell allocations apart (glibc's
 * allocator, no leak check: MP_TRACK_BY_HEADER); otherwise events keep the
 * shared ring and its order.
 *
 * A ring belongs to a thread from its first event until the thread ends
 * (mp_tring_thread_end, from thread.c's key destructor); the writer empties
 * it and hands it to the next thread, with its count of ids running on.
 * A thread that allocates after that, or finds every ring taken, uses the
 * shared ring, with ids from a counter the threads share.
 */
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#define TRING_BYTES (512U * 1024) /* per thread; only touched as it is used */
#define TREC_ALIGN 8
#define TREC_PAD 0xffffu

/* ids: ring number + 1 above this bit, that ring's count below it */
#define ID_RING_SHIFT 40
#define ID_COUNT_MASK ((1ULL << ID_RING_SHIFT) - 1)

enum tring_state {
	TRING_UNMAPPED = 0, /* never taken: no buffer yet */
	TRING_FREE = 1,     /* nobody's; the writer does not look */
	TRING_OWNED = 2,    /* a thread's */
	TRING_RETIRED = 3,  /* its thread has ended: the writer empties it, then frees it */
};

struct trec {
	uint32_t type;
	uint32_t size; /* whole record, header included, TREC_ALIGN multiple */
	unsigned char payload[];
};

struct tring {
	/* Written by the producer at each commit, read by the writer when it
	 * drains: the one line the two share on every record. */
	_Alignas(64) _Atomic uint64_t head;
	/* The producer's alone, so that the writer reading head does not
	 * take from the producer the line it reads on every record. */
	_Alignas(64) uint64_t pending; /* head after the record reserved (or the last) */
	uint64_t next_id;              /* count of ids taken from this ring */
	uint64_t seen_tail;            /* tail as the producer last read it */
	unsigned char *pbuf;           /* buf, on this line */
	/* The writer's line: the producer reads it only when its copy of
	 * tail says the ring is more than a quarter full. */
	_Alignas(64) _Atomic uint64_t tail;
	_Atomic uint32_t state;
	_Atomic uint32_t waiting; /* the producer waits for tail to move (futex) */
	unsigned char *buf;
};

/* The futex word the producer waits on: tail's low half (x86-64 is little
 * endian), so that any move of tail changes it. */
static _Atomic uint32_t *tail_word(struct tring *r)
{
	return (_Atomic uint32_t *)(void *)&r->tail;
}

/* Writer: after moving r's tail, wakes its producer if it waits. The fence
 * pairs with the producer's: it either sees the new tail or is woken. */
static void hand_back(struct tring *r, uint64_t t)
{
	atomic_store_explicit(&r->tail, t, memory_order_release);
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&r->waiting, memory_order_relaxed)) {
		atomic_store_explicit(&r->waiting, 0, memory_order_relaxed);
		syscall(SYS_futex, tail_word(r), FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	}
}

/* State and head at the writer's last snapshot: the writer's alone, kept
 * off the line every producer reads. */
struct tring_seen {
	uint32_t state;
	uint64_t head;
};

bool mp_trings_on;
static struct tring rings[MP_TRING_MAX];
static struct tring_seen seen[MP_TRING_MAX];
static _Atomic uint32_t rings_claimed; /* rings[0 .. rings_claimed) have been taken once */
static _Atomic uint64_t shared_ids;    /* ids of events that go through the shared ring */

/* The calling thread's ring; NO_RING once it has none and will get none. */
#define NO_RING ((struct tring *)1)
static __thread struct tring *mine __attribute__((tls_model("initial-exec")));
/* Where the record being written was reserved: its thread's ring, or the
 * shared one. The busy flag keeps one record at a time per thread. */
static __thread bool in_shared __attribute__((tls_model("initial-exec")));

static uint32_t claimed(void)
{
	uint32_t n = atomic_load_explicit(&rings_claimed, memory_order_acquire);
	return n < MP_TRING_MAX ? n : MP_TRING_MAX;
}

/* A ring an ended thread left, or a new one; NULL when none can be had. */
static struct tring *take_ring(void)
{
	uint32_t n = claimed();
	for (uint32_t i = 0; i < n; i++) {
		uint32_t expect = TRING_FREE;
		if (atomic_load_explicit(&rings[i].state, memory_order_relaxed) == TRING_FREE &&
		    atomic_compare_exchange_strong(&rings[i].state, &expect, TRING_OWNED))
			return &rings[i];
	}
	uint32_t i = atomic_fetch_add(&rings_claimed, 1);
	if (i >= MP_TRING_MAX)
		return NULL;
	void *p = mmap(NULL, TRING_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL; /* stays unmapped, and skipped, for good */
	rings[i].buf = rings[i].pbuf = p;
	/* The buffer before the state: the writer reads state first. */
	atomic_store_explicit(&rings[i].state, TRING_OWNED, memory_order_release);
	return &rings[i];
}

static void *reserve_in(struct tring *r, uint32_t type, uint32_t len)
{
	uint64_t need = (sizeof(struct trec) + len + TREC_ALIGN - 1) & ~(uint64_t)(TREC_ALIGN - 1);
	if (need > TRING_BYTES / 4)
		return NULL;
	/* Every record reserved was committed: pending is head. */
	uint64_t h = r->pending;
	uint64_t off = h % TRING_BYTES;
	uint64_t pad = off + need > TRING_BYTES ? TRING_BYTES - off : 0;
	/* The copy of tail is never ahead of tail, so while it says the ring
	 * is at most a quarter full, it is, and there is room without
	 * reading the writer's line. */
	uint64_t t = r->seen_tail;
	if (h + pad + need - t > TRING_BYTES / 4) {
		uint64_t stall_start = 0, stall_tail = 0;
		t = atomic_load_explicit(&r->tail, memory_order_acquire);
		while (h + pad + need - t > TRING_BYTES) {
			/* Say so, then look again: the writer either sees the
			 * flag or has moved tail before this load (hand_back). */
			atomic_store(&r->waiting, 1);
			atomic_thread_fence(memory_order_seq_cst);
			uint64_t now = atomic_load_explicit(&r->tail, memory_order_acquire);
			if (now != t) {
				t = now;
				continue;
			}
			if (!mp_ring_wait_for_room(t, &stall_start, &stall_tail, tail_word(r))) {
				atomic_fetch_add_explicit(&mp_dropped, 1, memory_order_relaxed);
				return NULL;
			}
			t = atomic_load_explicit(&r->tail, memory_order_acquire);
		}
		r->seen_tail = t;
		/* Wake the writer as this record takes the ring past a
		 * quarter full: bursts drain without a wake-up per record. */
		if (h + pad + need - t > TRING_BYTES / 4 && h - t <= TRING_BYTES / 4)
			mp_writer_wake();
	}
	if (pad) {
		struct trec *p = (struct trec *)(r->pbuf + off);
		p->type = TREC_PAD;
		p->size = (uint32_t)pad;
	}
	struct trec *rec = (struct trec *)(r->pbuf + (h + pad) % TRING_BYTES);
	rec->type = type;
	rec->size = (uint32_t)need;
	r->pending = h + pad + need;
	return rec->payload;
}

/* The calling thread's ring, taken at its first record; NO_RING if none
 * could be had. */
static struct tring *my_ring(void)
{
	struct tring *r = mine;
	if (MP_UNLIKELY(!r)) {
		r = take_ring();
		mine = r = r ? r : NO_RING;
	}
	return r;
}

uint16_t mp_tring_own(void)
{
	struct tring *r = my_ring();
	return r == NO_RING ? 0 : (uint16_t)(r - rings + 1);
}

_Static_assert(MP_TRING_MAX < UINT16_MAX, "a ring's number + 1 fits in mp_ev_alloc.ring");

void *mp_tring_reserve(uint32_t type, uint32_t len, uint64_t *id)
{
	struct tring *r = my_ring();
	if (MP_UNLIKELY(r == NO_RING)) {
		in_shared = true;
		if (id)
			*id = atomic_fetch_add_explicit(&shared_ids, 1, memory_order_relaxed) + 1;
		return mp_ring_reserve(type, len);
	}
	in_shared = false;
	void *p = reserve_in(r, type, len);
	if (p && id)
		*id = ((uint64_t)(r - rings + 1) << ID_RING_SHIFT) | (++r->next_id & ID_COUNT_MASK);
	return p;
}

void mp_tring_commit(void *payload)
{
	if (in_shared) {
		mp_ring_commit(payload);
		return;
	}
	struct tring *r = mine;
	atomic_store_explicit(&r->head, r->pending, memory_order_release);
	/* The writer's long sleep: the first record wakes it (the shared
	 * ring's commit explains why no fence is needed in full trace). */
	mp_writer_wake_if_asleep();
}

void mp_tring_thread_end(void)
{
	struct tring *r = mine;
	mine = NO_RING;
	if (r && r != NO_RING)
		atomic_store_explicit(&r->state, TRING_RETIRED, memory_order_release);
}

void mp_trings_snapshot(void)
{
	for (uint32_t i = 0, n = claimed(); i < n; i++) {
		struct tring *r = &rings[i];
		/* State before head: once a ring is seen retired, its head
		 * is final. */
		seen[i].state = atomic_load_explicit(&r->state, memory_order_acquire);
		seen[i].head = atomic_load_explicit(&r->head, memory_order_acquire);
	}
}

size_t mp_trings_drain(void (*fn)(uint32_t type, const void *payload, uint32_t len))
{
	size_t n = 0;
	for (uint32_t i = 0, n_rings = claimed(); i < n_rings; i++) {
		struct tring *r = &rings[i];
		uint32_t st = seen[i].state;
		if (st != TRING_OWNED && st != TRING_RETIRED)
			continue;
		uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed), given = t;
		while (t != seen[i].head) {
			const struct trec *rec = (const struct trec *)(r->buf + t % TRING_BYTES);
			if (rec->type != TREC_PAD) {
				fn(rec->type, rec->payload, rec->size - (uint32_t)sizeof(*rec));
				n++;
			}
			t += rec->size;
			if (t - given >= TRING_BYTES / 8) {
				hand_back(r, t);
				given = t;
			}
		}
		hand_back(r, t);
		if (st == TRING_RETIRED) {
			seen[i].state = TRING_FREE;
			atomic_store_explicit(&r->state, TRING_FREE, memory_order_release);
		}
	}
	return n;
}

bool mp_trings_ready(void)
{
	for (uint32_t i = 0, n = claimed(); i < n; i++) {
		struct tring *r = &rings[i];
		uint32_t st = atomic_load_explicit(&r->state, memory_order_acquire);
		if ((st == TRING_OWNED || st == TRING_RETIRED) &&
		    atomic_load_explicit(&r->head, memory_order_acquire) !=
			    atomic_load_explicit(&r->tail, memory_order_relaxed))
			return true;
	}
	return false;
}

void mp_trings_fork_child(void)
{
	/* What the parent's threads queued is the parent's to send; their
	 * rings are free for the child's threads. The forking thread keeps
	 * its own, emptied, and its count of ids. */
	for (uint32_t i = 0, n = claimed(); i < n; i++) {
		struct tring *r = &rings[i];
		uint32_t st = atomic_load(&r->state);
		atomic_store(&r->tail, atomic_load(&r->head));
		if (st == TRING_RETIRED || (st == TRING_OWNED && r != mine))
			atomic_store(&r->state, TRING_FREE);
	}
}
