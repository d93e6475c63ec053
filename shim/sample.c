/*
 * Which allocations are sampled, and what is recorded for them.
 *
 * Go's scheme (runtime/malloc.go, nextSample): each thread counts down the
 * bytes it allocates; the gap between samples is drawn from an exponential
 * distribution of mean R = MEMPROF_RATE. Because the exponential is
 * memoryless, an allocation of s bytes is then sampled with probability
 * p(s) = 1 - exp(-s/R) however the earlier allocations fell, so the
 * collector can unbias each sample by weighting it 1/p(s). R = 1 samples
 * every allocation (full trace); R = 0 samples none.
 */
#include <math.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"
#include "unwind.h"

__thread struct mp_tls mp_tls __attribute__((tls_model("initial-exec")));

static _Atomic uint64_t thread_ordinal;

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t mp_clock_seed(uint64_t salt)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
		     ((uint64_t)syscall(SYS_gettid) << 16) ^ salt;
	return splitmix64(&s) | 1;
}

/* Seeds the thread's generator: from MEMPROF_SEED and the thread's order of
 * arrival when a seed is set (reproducible runs), else from the clock and
 * the thread id. */
static void seed_thread(struct mp_tls *t)
{
	uint64_t ordinal = atomic_fetch_add(&thread_ordinal, 1);
	if (mp_cfg.seed) {
		uint64_t s = mp_cfg.seed + ordinal * 0x9e3779b97f4a7c15ULL;
		t->rng = splitmix64(&s) | 1;
	} else {
		t->rng = mp_clock_seed(ordinal << 48);
	}
	t->seeded = 1;
}

/* xorshift64*: plenty for choosing sample points. */
static uint64_t next_random(struct mp_tls *t)
{
	uint64_t x = t->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	t->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Bytes until the next sample: -R ln(U), U uniform in (0, 1]. */
static int64_t next_countdown(struct mp_tls *t)
{
	uint64_t rate = mp_cfg.rate;
	if (rate <= 1)
		return rate == 1 ? 0 : INT64_MAX;
	double u = ((double)(next_random(t) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
	double gap = -log(u) * (double)rate;
	if (gap >= (double)INT64_MAX / 2)
		return INT64_MAX / 2;
	return (int64_t)gap + 1;
}

/* Captures the calling thread's stack without the shim's own frames:
 * (*pcs)[0] is the return address into whoever called the allocator.
 * *pcs points into raw, which holds MP_MAX_FRAMES + 8. *ref: the memo
 * entry the pcs came from (unwind.h). */
static uint32_t capture_stack(uint64_t *raw, const uint64_t **pcs, struct mp_memo_ref *ref)
{
	uintptr_t lo, hi;
	mp_thread_stack(&lo, &hi);
	struct mp_tls *t = &mp_tls;
	ref->tag = NULL;
	uint32_t n = t->entry_sp ? mp_unwind_from(t->entry_ip, t->entry_sp, t->entry_bp, raw,
						  MP_MAX_FRAMES + 8, lo, hi, ref)
				 : mp_unwind(raw, MP_MAX_FRAMES + 8, lo, hi);
	uint32_t first = 0;
	while (first < n && raw[first] >= mp_self_lo && raw[first] < mp_self_hi)
		first++;
	*pcs = raw + first;
	n -= first;
	return n < MP_MAX_FRAMES ? n : MP_MAX_FRAMES;
}

/*
 * The fork gate. The loader keeps a mutex of its own (dl_iterate_phdr takes
 * it); a fork while another thread holds it leaves it locked for ever in
 * the child, whose first sample then hangs. So fork waits (mp_gate_close, from the
 * prepare handler) until no thread is between mp_gate_enter and
 * mp_gate_leave, and keeps new ones out until the fork is done.
 */
static _Atomic int fork_gate;
static _Atomic int in_gate;
static __thread int in_gate_here __attribute__((tls_model("initial-exec")));

void mp_gate_enter(void)
{
	for (;;) {
		while (atomic_load(&fork_gate))
			sched_yield();
		atomic_fetch_add(&in_gate, 1);
		if (!atomic_load(&fork_gate))
			break;
		atomic_fetch_sub(&in_gate, 1);
	}
	in_gate_here++;
}

bool mp_gate_try_enter(void)
{
	if (atomic_load(&fork_gate))
		return false;
	atomic_fetch_add(&in_gate, 1);
	if (atomic_load(&fork_gate)) {
		atomic_fetch_sub(&in_gate, 1);
		return false;
	}
	in_gate_here++;
	return true;
}

void mp_gate_leave(void)
{
	in_gate_here--;
	atomic_fetch_sub(&in_gate, 1);
}

void mp_gate_close(void)
{
	atomic_store(&fork_gate, 1);
	/* A fork from a signal handler that interrupted this very thread in
	 * the gate must not wait for itself. */
	while (atomic_load(&in_gate) > in_gate_here)
		sched_yield();
}

void mp_gate_open(void)
{
	atomic_store(&fork_gate, 0);
}

void mp_gate_reset_child(void)
{
	atomic_store(&in_gate, in_gate_here);
	atomic_store(&fork_gate, 0);
}

/* The unwinder's miss hook: an address without a cached rule may be in an
 * object loaded since the last look, whose mapping must be queued before
 * this stack (and before any other thread can use the rule it caches).
 * Only on a miss: dl_iterate_phdr takes the loader's lock, and the gate a
 * counter every thread shares. */
void mp_sample_note_new_code(void)
{
	mp_gate_enter();
	mp_mappings_check();
	mp_gate_leave();
}

static void *reserve(uint32_t type, uint32_t len, uint64_t *id)
{
	if (mp_trings_on)
		return mp_tring_reserve(type, len, id);
	if (id)
		*id = 0;
	return mp_ring_reserve(type, len);
}

static void commit(void *ev)
{
	if (mp_trings_on)
		mp_tring_commit(ev);
	else
		mp_ring_commit(ev);
}

/*
 * Full trace: a thread that allocates in a loop sends the same stack over
 * and over. The unwinder's memo knows when a stack is the one an entry of
 * it gave last time; if that entry's stack already went, in full, through
 * this thread's own ring (tagged with the current generation), the event
 * leaves it out and names the ring and entry instead: the writer, taking
 * the ring's events in order, has it from the earlier event. A fork child
 * starts a new generation (its writer knows nothing the parent's did).
 */
static uint32_t same_stack_gen = 1;

void mp_sample_fork_child(void)
{
	if (++same_stack_gen == 0)
		same_stack_gen = 1;
}

/* Full trace, a stack the unwinder's memo has given before: its entry's
 * tag holds the stack's gid, and the tally needs nothing else (neither a
 * walk nor a copy of its pcs). */
static bool tally_again(void *p, size_t size)
{
	struct mp_tls *t = &mp_tls;
	uintptr_t lo, hi;
	if (!t->entry_sp || !mp_thread_stack(&lo, &hi))
		return false;
	uint32_t *tag = mp_unwind_memo_tag(t->entry_ip, t->entry_sp, t->entry_bp,
					   MP_MAX_FRAMES + 8, lo, hi);
	return tag && mp_tally_alloc(mp_hdr_word(p), size, NULL, 0, tag);
}

static __attribute__((noinline)) void record_alloc_walked(void *p, size_t size)
{
	uint64_t raw[MP_MAX_FRAMES + 8];
	const uint64_t *pcs;
	struct mp_memo_ref ref;
	uint32_t depth = capture_stack(raw, &pcs, &ref);
	if (depth == 0)
		return;
	if (mp_tally_on && mp_tally_alloc(mp_hdr_word(p), size, pcs, depth, ref.tag))
		return;
	/* With tallies on, the memo's tag holds a gid, not a generation. */
	uint16_t ring = ref.tag && mp_trings_on && !mp_tally_on ? mp_tring_own() : 0;
	bool same = ring && *ref.tag == same_stack_gen;
	uint32_t sent = same ? 0 : depth;
	uint64_t id;
	struct mp_ev_alloc *ev = reserve(MP_EV_ALLOC, sizeof(*ev) + sent * sizeof(uint64_t), &id);
	if (!ev)
		return; /* counted as a drop by the ring */
	ev->addr = (uint64_t)(uintptr_t)p;
	ev->size = size;
	ev->id = id;
	ev->depth = sent;
	ev->ring = ring;
	ev->way = ring ? (uint8_t)ref.way : 0;
	ev->flags = same ? MP_EV_SAME_STACK : 0;
	/* A plain loop: stacks are short, and for a few words gcc's inline
	 * rep movsq costs more in start-up than it moves. */
	for (uint32_t i = 0; i < sent; i++)
		ev->pcs[i] = pcs[i];
	if (ring)
		*ref.tag = same_stack_gen;
	/* Mark before publishing: once the program has the pointer it may
	 * free it, and that free must know to report it. */
	if (MP_TRACK_BY_HEADER()) {
		uint64_t *w = mp_hdr_word(p);
		*w = (*w & MP_HDR_LOG2_MASK) | (id & MP_HDR_ID_MAX) << MP_HDR_ID_SHIFT |
		     MP_HDR_REPORTED;
	} else if (mp_live_insert(p, size, pcs[0]) != 0) {
		ev->depth = 0; /* the writer skips it */
		ev->flags = 0;
		atomic_fetch_add(&mp_dropped, 1);
	}
	commit(ev);
}

/* The walk's buffer (a kilobyte of stack) and the event path out of line:
 * a repeated stack in full trace needs neither. */
static inline void record_alloc(void *p, size_t size)
{
	if (!(mp_tally_on && tally_again(p, size)))
		record_alloc_walked(p, size);
}

void mp_sample_slow(void *p, size_t size)
{
	struct mp_tls *t = &mp_tls;
	if (MP_UNLIKELY(!t->seeded))
		seed_thread(t);
	int state = atomic_load_explicit(&mp_state, memory_order_acquire);
	if (state != MP_STATE_ON) {
		/* Before the constructor has read MEMPROF_RATE, come back at the
		 * next allocation; once off for good, stay out of the way. */
		t->countdown = state == MP_STATE_OFF ? INT64_MAX / 2 : 0;
		t->armed = 0;
		return;
	}
	if (!t->armed) {
		/* The thread's first decision: draw the countdown and judge this
		 * allocation the ordinary way. */
		t->armed = 1;
		t->countdown = next_countdown(t) - (int64_t)size;
		if (t->countdown > 0)
			return;
	}
	t->countdown = mp_cfg.full_trace ? 0 : next_countdown(t);
	if (t->busy)
		return; /* the shim's own allocation */
	t->busy++;
	record_alloc(p, size);
	t->busy--;
	mp_writer_pump_point();
}

void mp_sample_tally_free_event(uint64_t word)
{
	uint64_t *ev = reserve(MP_EV_TALLY_FREE, sizeof(word), NULL);
	if (ev) {
		*ev = word;
		commit(ev);
	}
}

void mp_sample_free(void *p)
{
	struct mp_tls *t = &mp_tls;
	if (t->busy)
		return;
	t->busy++;
	bool reported;
	uint64_t id = 0;
	if (MP_TRACK_BY_HEADER()) {
		/* Cleared here, so that a realloc, which carries the header
		 * over to the new block, leaves it unreported. */
		uint64_t *w = mp_hdr_word(p), word = *w;
		*w = word & MP_HDR_LOG2_MASK;
		if (word & MP_HDR_TALLIED) {
			t->busy--;
			mp_tally_free(word);
			return;
		}
		reported = word & MP_HDR_REPORTED;
		id = (word >> MP_HDR_ID_SHIFT) & MP_HDR_ID_MAX;
	} else {
		reported = mp_live_remove(p);
	}
	if (reported) {
		struct mp_free *ev = reserve(MP_EV_FREE, sizeof(*ev), NULL);
		if (ev) {
			ev->addr = (uint64_t)(uintptr_t)p;
			ev->id = id;
			commit(ev);
		}
	}
	t->busy--;
	if (reported)
		mp_writer_pump_point();
}
