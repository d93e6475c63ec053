/*
 * The event ring: many producers (every thread that samples an allocation or
 * frees a sampled block), one consumer (the writer thread). Lock-free: a
 * producer reserves space with a compare-and-swap on head, fills it in and
 * publishes it by storing the record's commit word; the consumer reads
 * records in reservation order, stops at the first unpublished one, zeroes
 * what it consumed and advances tail.
 *
 * Records never wrap: one that does not fit before the end of the buffer is
 * preceded by a padding record that fills the rest.
 */
#include <string.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

#include "shim.h"

#define REC_ALIGN 16
#define EV_PAD 0xffffu

struct rec {
	_Atomic uint32_t committed; /* 0 until the producer publishes */
	uint32_t type;
	uint32_t len;  /* payload bytes */
	uint32_t size; /* whole record, header included, REC_ALIGN multiple */
	unsigned char payload[];
};

/* Each on a cache line of its own: every producer's compare-and-swap moves
 * head's line between cores, and the writer's stores to tail would drag
 * it along (and the read-only ring, cap and mask with it) if they shared. */
struct line {
	_Alignas(64) _Atomic uint64_t v;
	char pad[56];
};
static _Alignas(64) unsigned char *ring;
static uint64_t cap, mask;
static struct line head_line, tail_line;

_Atomic uint64_t mp_dropped;

/* In full-trace mode a producer waits for space; it gives up (and counts a
 * drop) only if the writer makes no progress for this long, which means the
 * collector has stopped reading or the writer cannot run. */
#define STALL_LIMIT_NS (10ULL * 1000 * 1000 * 1000)

int mp_ring_setup(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	ring = p;
	cap = bytes;
	mask = bytes - 1;
	atomic_store(&head_line.v, 0);
	atomic_store(&tail_line.v, 0);
	return 0;
}

/* In a fork child: what the parent had queued but not sent is the parent's
 * to send, and a record reserved by a thread that does not exist here will
 * never be committed. Only that stretch needs clearing (the consumer
 * zeroes what it consumes), which keeps a fork from touching, and so
 * copying, the whole ring. */
void mp_ring_reset(void)
{
	if (!ring)
		return;
	uint64_t t = atomic_load(&tail_line.v), h = atomic_load(&head_line.v);
	if (h - t >= cap) {
		memset(ring, 0, cap);
	} else if (h != t) {
		uint64_t from = t & mask, to = h & mask;
		if (from < to) {
			memset(ring + from, 0, to - from);
		} else {
			memset(ring + from, 0, cap - from);
			memset(ring, 0, to);
		}
	}
	atomic_store(&tail_line.v, h);
}

size_t mp_ring_regions(struct mp_range *out, size_t max)
{
	if (!ring || !max)
		return 0;
	out[0] = (struct mp_range){ (uint64_t)(uintptr_t)ring, (uint64_t)(uintptr_t)ring + cap };
	return 1;
}

bool mp_ring_empty(void)
{
	return atomic_load(&head_line.v) == atomic_load(&tail_line.v);
}

bool mp_ring_ready(void)
{
	if (!ring)
		return false;
	uint64_t t = atomic_load_explicit(&tail_line.v, memory_order_relaxed);
	if (atomic_load_explicit(&head_line.v, memory_order_acquire) == t)
		return false;
	const struct rec *r = (const struct rec *)(ring + (t & mask));
	return atomic_load_explicit(&r->committed, memory_order_acquire);
}

uint64_t mp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

bool mp_ring_wait_for_room(uint64_t t, uint64_t *stall_start, uint64_t *seen_tail,
			   _Atomic uint32_t *word)
{
	if (!mp_cfg.full_trace || !mp_writer_alive())
		return false;
	uint64_t now = mp_now_ns();
	if (*stall_start == 0 || t != *seen_tail) {
		*stall_start = now;
		*seen_tail = t;
	} else if (now - *stall_start > STALL_LIMIT_NS) {
		return false;
	}
	mp_writer_wake();
	if (word) {
		/* Until the writer hands back part of the ring: one wake-up
		 * per eighth of it, where 50 us naps were one per nap (with 8
		 * threads on 2 CPUs, 86% of all context switches). The timeout
		 * only bounds a wake-up that went astray. */
		struct timespec limit = { 0, 2 * 1000 * 1000 };
		syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, (uint32_t)t, &limit, NULL, 0);
	} else {
		struct timespec pause = { 0, 50 * 1000 };
		nanosleep(&pause, NULL);
	}
	return true;
}

void *mp_ring_reserve(uint32_t type, uint32_t len)
{
	if (MP_UNLIKELY(!ring))
		return NULL;
	uint64_t need = (sizeof(struct rec) + len + REC_ALIGN - 1) & ~(uint64_t)(REC_ALIGN - 1);
	if (need > cap / 4)
		return NULL;
	uint64_t stall_start = 0, seen_tail = 0;
	uint64_t h = atomic_load_explicit(&head_line.v, memory_order_relaxed);
	for (;;) {
		uint64_t t = atomic_load_explicit(&tail_line.v, memory_order_acquire);
		uint64_t off = h & mask;
		uint64_t pad = off + need > cap ? cap - off : 0;
		if (h + pad + need - t > cap) {
			if (!mp_ring_wait_for_room(atomic_load(&tail_line.v), &stall_start,
						   &seen_tail, NULL)) {
				atomic_fetch_add_explicit(&mp_dropped, 1, memory_order_relaxed);
				return NULL;
			}
			h = atomic_load_explicit(&head_line.v, memory_order_relaxed);
			continue;
		}
		if (!atomic_compare_exchange_weak_explicit(&head_line.v, &h, h + pad + need,
							   memory_order_relaxed,
							   memory_order_relaxed))
			continue;
		if (pad) {
			struct rec *p = (struct rec *)(ring + off);
			p->type = EV_PAD;
			p->len = 0;
			p->size = (uint32_t)pad;
			atomic_store_explicit(&p->committed, 1, memory_order_release);
		}
		struct rec *r = (struct rec *)(ring + ((h + pad) & mask));
		r->type = type;
		r->len = len;
		r->size = (uint32_t)need;
		/* Wake the writer when this record takes the ring past a quarter
		 * full, so that bursts drain without a wake-up per record. */
		if (h + pad + need - t > cap / 4 && h - t <= cap / 4)
			mp_writer_wake();
		return r->payload;
	}
}

void mp_ring_commit(void *payload)
{
	struct rec *r = (struct rec *)((unsigned char *)payload - sizeof(struct rec));
	atomic_store_explicit(&r->committed, 1, memory_order_release);
	/* A writer in its long sleep is woken by the first record (one
	 * producer wakes it; the others see the flag already cleared). The
	 * fence makes that certain; in full trace, where it would cost every
	 * allocation a full barrier, a wake-up missed in the race with the
	 * writer falling asleep only delays the batch by IDLE_POLL_MS. */
	if (!mp_cfg.full_trace)
		atomic_thread_fence(memory_order_seq_cst);
	mp_writer_wake_if_asleep();
}

static bool blocked; /* the consumer's */

bool mp_ring_blocked(void)
{
	return blocked;
}

size_t mp_ring_drain_max(void (*fn)(uint32_t type, const void *payload, uint32_t len), size_t max)
{
	size_t n = 0;
	blocked = false;
	if (!ring)
		return 0;
	uint64_t t = atomic_load_explicit(&tail_line.v, memory_order_relaxed);
	while (n < max) {
		uint64_t h = atomic_load_explicit(&head_line.v, memory_order_acquire);
		if (t == h)
			break;
		struct rec *r = (struct rec *)(ring + (t & mask));
		if (!atomic_load_explicit(&r->committed, memory_order_acquire)) {
			blocked = true;
			break;
		}
		uint32_t size = r->size;
		if (r->type != EV_PAD) {
			fn(r->type, r->payload, r->len);
			n++;
		}
		memset(r, 0, size);
		t += size;
		/* Producers read tail to find room: give it back in steps of
		 * an eighth of the ring rather than per record, which would
		 * move tail's cache line for every one. */
		if (t - atomic_load_explicit(&tail_line.v, memory_order_relaxed) >= cap / 8)
			atomic_store_explicit(&tail_line.v, t, memory_order_release);
	}
	atomic_store_explicit(&tail_line.v, t, memory_order_release);
	return n;
}
