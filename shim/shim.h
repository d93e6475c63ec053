/*
 * Internal declarations of libmemprof.so, the shim preloaded into profiled
 * programs. Everything here is hidden (-fvisibility=hidden); only the libc
 * entry points in shim/exports.map are visible to the host program.
 *
 * Rules for every function declared here, unless its comment says otherwise:
 * it never calls the host's malloc through the public symbols (allocations
 * the shim needs go to mp_real.* with the thread's busy flag raised), never
 * blocks on the collector, and never aborts or exits the host.
 */
#ifndef MEMPROF_SHIM_H
#define MEMPROF_SHIM_H

#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>

#include "memprof_wire.h"

#define MP_LIKELY(x) __builtin_expect(!!(x), 1)
#define MP_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---- the real allocator (preload.c) ------------------------------------ */

struct mp_real_fns {
	void *(*malloc)(size_t);
	void (*free)(void *);
	void *(*calloc)(size_t, size_t);
	void *(*realloc)(void *, size_t);
	int (*posix_memalign)(void **, size_t, size_t);
	void *(*aligned_alloc)(size_t, size_t);
	void *(*memalign)(size_t, size_t);
	void *(*valloc)(size_t);
	void *(*pvalloc)(size_t);
	size_t (*malloc_usable_size)(void *);
	int (*pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	sighandler_t (*signal)(int, sighandler_t);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	int (*execveat)(int, const char *, char *const[], char *const[], int);
	int (*setitimer)(int, const struct itimerval *, struct itimerval *);
	int (*timer_create)(clockid_t, struct sigevent *, timer_t *);
	int (*dlclose)(void *);
	pid_t (*fork)(void);
};
extern struct mp_real_fns mp_real;
extern _Atomic int mp_real_ready; /* mp_real is complete */
extern bool mp_malloc_is_glibc;   /* the real malloc is libc's own */
/* Sampled blocks carry a header (preload.c): the whole real allocator is
 * glibc's. Set once, before anything is sampled. */
extern bool mp_headed;
/* The header's second word, just before the program's pointer; a glibc
 * chunk size there always has bit 3 clear. Sign-extended from 32 bits so
 * that free() compares it with one instruction. */
#define MP_HDR_MARK ((uint64_t)(int64_t)(int32_t)0x8badf00du)
/* The header's first word: the base-2 logarithm of the header's size (a
 * power of two) in its low bits; above them either
 *  - the allocation's id when events carry ids (tring.c), with
 *    MP_HDR_REPORTED, set while the block is reported to the collector
 *    (see mp_sample_free): in full trace that spares the live table's
 *    shared locks on every malloc and free; or
 *  - its stack's gid and its size, with MP_HDR_TALLIED, set while the
 *    block is counted in a tally (tally.c). */
#define MP_HDR_LOG2_MASK 0x3fULL
#define MP_HDR_ID_SHIFT 6
#define MP_HDR_ID_MAX ((1ULL << 55) - 1)
#define MP_HDR_GID_SHIFT 6
#define MP_HDR_SIZE_SHIFT 30
#define MP_HDR_TALLIED (1ULL << 62)
#define MP_HDR_REPORTED (1ULL << 63)

static inline uint64_t *mp_hdr_word(const void *p)
{
	return (uint64_t *)(uintptr_t)((const unsigned char *)p - 16);
}

/* Whether sampled blocks are tracked by their header's flag rather than
 * the live table: under glibc, unless the leak check needs the table's
 * list of every block. */
#define MP_TRACK_BY_HEADER() (mp_headed && !mp_cfg.leak_check)

/* Resolves mp_real with dlsym(RTLD_NEXT); allocations dlsym makes meanwhile
 * are served from a static arena. Returns 0, or -1 if a symbol is missing.
 * Not thread-safe: called once, from mp_init. */
int mp_resolve_real(void);

/* ---- configuration (config.c) ------------------------------------------- */

struct mp_config {
	uint64_t rate;        /* MEMPROF_RATE: mean bytes between samples; 1 = all */
	unsigned cpu_hz;      /* MEMPROF_CPU_HZ */
	unsigned interval;    /* MEMPROF_INTERVAL, passed to a private collector */
	int dump_signal;      /* MEMPROF_DUMP_SIGNAL, 0 = none */
	uint64_t seed;        /* MEMPROF_SEED, 0 = random */
	bool full_trace;      /* rate == 1: nothing may be dropped */
	bool leak_check;      /* MEMPROF_LEAK_CHECK: check for leaks at exit */
	bool writer_thread;   /* MEMPROF_WRITER=thread: a writer thread and a
			       * socket, never the shared ring */
	int leak_exitcode;    /* MEMPROF_LEAK_EXITCODE: exit status when leaking */
	char suppressions[1024]; /* MEMPROF_SUPPRESSIONS: LSan-style file */
	char socket[108];     /* MEMPROF_SOCKET, "" = start a private collector */
	char dir[1024];       /* MEMPROF_DIR, for a private collector */
	char mode[8];         /* MEMPROF_MODE: --mode of a private collector, "" = its default */
};
extern struct mp_config mp_cfg;

/* Reads every MEMPROF_* variable from the environment; a value that does not
 * parse is named in one line on stderr and its default is kept. */
void mp_config_load(void);

/* ---- descriptors (fd.c) --------------------------------------------------- */

/* Moves fd above the numbers programs use (close-on-exec); returns the new
 * number, or fd itself if it could not be moved (or is negative), or -1 if
 * the program put a file of its own under fd's number meanwhile (fd is
 * then the program's, and left alone). */
int mp_fd_high(int fd);

/* ---- messages (log.c) ---------------------------------------------------- */

/* Formats into a stack buffer and write(2)s one line to stderr, prefixed
 * "memprof: ". Async-signal-safe for %s, %d, %u, %lu, %x, %lx, %zu and %%
 * (its own minimal formatter; no stdio, no malloc). */
void mp_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern bool mp_quiet; /* MEMPROF_QUIET: say nothing at all */
/* write(2)s all of p to stderr, as far as it goes. */
void mp_write_stderr(const char *p, size_t len);
/* Set on the writer thread once its descriptor table is its own. */
extern __thread bool mp_log_to_keeper __attribute__((tls_model("initial-exec")));
int mp_vformat(char *buf, size_t size, const char *fmt, va_list ap);
int mp_format(char *buf, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- lifecycle (init.c) -------------------------------------------------- */

enum mp_state {
	MP_STATE_NEW = 0,     /* nothing resolved yet */
	MP_STATE_INITING = 1, /* mp_init is running on some thread */
	MP_STATE_ON = 2,      /* recording */
	MP_STATE_OFF = 3,     /* disabled for good: pass everything through */
};
extern _Atomic int mp_state;

/* Brings the shim up (idempotent, thread-safe). Safe to call from any
 * wrapper; the first call resolves the real allocator. */
void mp_init(void);

/* Turns recording off for good after a failure of our own, saying why once. */
void mp_disable(const char *why);

/* ---- per-thread state ---------------------------------------------------- */

struct mp_tls {
	int64_t countdown; /* bytes until the next heap sample; <= 0: slow path */
	uint32_t busy;     /* > 0 while the shim itself runs on this thread */
	uint16_t seeded;   /* rng below has been initialised */
	uint16_t armed;    /* countdown was drawn at the configured rate */
	uint64_t rng;      /* xorshift64* state */
	/* The thread's stack, learnt once (thread.c): the unwinder reads
	 * nothing outside it. stack_hi == 1: unknown. */
	uintptr_t stack_lo, stack_hi;
	/* The allocator's caller's frame, noted on entry to the sampled path
	 * (preload.c): the unwinder starts there rather than walking the
	 * shim's own frames first. entry_sp == 0: none. */
	uint64_t entry_ip, entry_sp, entry_bp;
};
extern __thread struct mp_tls mp_tls __attribute__((tls_model("initial-exec")));

/* ---- the program's threads (thread.c) ----------------------------------- */

/* Starts one of memprof's threads (not the program's: no CPU timer, not
 * counted), every signal blocked, detached and named; 0 or an errno. */
int mp_start_own_thread(pthread_t *t, void *(*fn)(void *), const char *name);
/* From the constructor, on the initial thread. */
void mp_threads_init(void);
/* In a fork child: the thread that forked is the only one. */
void mp_threads_fork_child(void);
/* The calling thread's stack bounds; false if they are not known (a thread
 * memprof did not see start, on a stack it could not find). Learnt at the
 * first call, which may allocate (busy flag raised): not from a signal
 * handler unless a call before it has returned true. */
void mp_thread_learn_stack(struct mp_tls *t);
/* Inline: full trace asks on every allocation. */
static inline bool mp_thread_stack(uintptr_t *lo, uintptr_t *hi)
{
	struct mp_tls *t = &mp_tls;
	if (MP_UNLIKELY(!t->stack_hi))
		mp_thread_learn_stack(t);
	*lo = t->stack_lo;
	*hi = t->stack_hi;
	return t->stack_hi > 1;
}
/* Every thread of the program's own has ended (or is ending): once only
 * memprof's are left, the keeper (or the writer, without one) must end the
 * process. */
bool mp_threads_orphaned(void);
/* The initial thread's signal mask when memprof started. */
void mp_threads_start_mask(sigset_t *out);
/* exit(0) as the program would have, from a thread of memprof's once the
 * program's own threads have all gone. */
_Noreturn void mp_exit_for_program(void);

/* ---- signals shared with the program (signals.c) -------------------------- */

enum mp_sig_policy {
	MP_SIG_FORWARD, /* ours stays; the program's handler gets the rest */
	MP_SIG_YIELD,   /* ours only while the program leaves the default */
};
/* Starts sharing sig with the program under policy; handler is memprof's.
 * 0 or -1. Not from a signal handler. */
int mp_signal_take(int sig, void (*handler)(int, siginfo_t *, void *), enum mp_sig_policy policy);
/* Gives the program's disposition back for real and stops sharing. */
void mp_signal_release(int sig);
/* From memprof's handler, for a signal that is not memprof's: does what the
 * program's disposition says. Async-signal-safe. */
void mp_signal_forward(int sig, siginfo_t *si, void *uc);
/* Around an exec or posix_spawn: a shared signal the program ignores is
 * ignored for real while the new image starts, as it would have inherited
 * it; after_exec (the exec failed, or posix_spawn returned) puts memprof's
 * handler back. Async-signal-safe; fine in a vfork child. */
void mp_signals_before_exec(void);
void mp_signals_after_exec(void);

/* ---- sampling (sample.c) ------------------------------------------------- */

/* Called when an allocation of size bytes at p has driven the thread's
 * countdown (mp_tls.countdown, taken down by the wrappers in preload.c) to
 * zero or below: decides, records and re-arms. */
void mp_sample_slow(void *p, size_t size);

/* Called by free and realloc for a pointer mp_live_maybe says may have been
 * sampled: removes it and reports (or counts) the free. */
void mp_sample_free(void *p);
/* A free mp_tally_free could not count, as an event (the busy flag up). */
void mp_sample_tally_free_event(uint64_t word);
/* In a fork child: what the parent's writer knew of stacks is not the
 * child's, so no event may leave a stack out for having sent it before. */
void mp_sample_fork_child(void);

/* The unwinder's miss hook (mp_unwind_set_miss_hook): queues the mappings
 * of objects loaded since the last look. */
void mp_sample_note_new_code(void);

/* Around every call into dl_iterate_phdr: keeps fork from
 * happening while another thread holds their locks (see sample.c). Never
 * from a signal handler. */
void mp_gate_enter(void);
/* Enters unless a fork is under way; false (and nothing to leave) then. */
bool mp_gate_try_enter(void);
void mp_gate_leave(void);
/* From the fork handlers: close waits for every thread inside to leave. */
void mp_gate_close(void);
void mp_gate_open(void);
void mp_gate_reset_child(void);

/* ---- live sampled blocks (live.c) --------------------------------------- */

/* Lock-free quick check for free(): false means p is certainly not a live
 * sampled block (the answer for almost every pointer); true means look. */
static inline bool mp_live_maybe(const void *p);
/* Adds p (size bytes, allocated by the function that caller returns
 * into); returns 0, or -1 if the table cannot grow. */
int mp_live_insert(const void *p, uint64_t size, uint64_t caller);
/* Makes mp_live_maybe(p) true for good (the early arena's blocks). */
void mp_live_mark_forever(const void *p);
/* Removes p; returns true if it was there. */
bool mp_live_remove(const void *p);
struct mp_block {
	uint64_t addr, size, caller;
	uint64_t tag; /* for the leak check's marking */
};
/* Copies up to max live blocks, in no order; the caller holds every stripe
 * (mp_live_fork_prepare) so that the table stands still. */
size_t mp_live_copy(struct mp_block *out, size_t max);
void mp_live_fork_prepare(void);
void mp_live_fork_parent(void);
void mp_live_fork_child(void);

/* Set at the first sampled block and never cleared: a program with
 * nothing sampled yet (MEMPROF_RATE=0, say) skips the filter. Not a count
 * of live blocks: each sample would then write the line every free() on
 * every core reads. */
extern _Atomic bool mp_live_used;
/* Live blocks in the table now; a hint, read without locks. */
size_t mp_live_total(void);

/*
 * The filter free() reads when sampled blocks have no header (an allocator
 * other than glibc's): one bit per 16-byte granule of a 4 MiB window of
 * addresses, set while a live sampled block may start in it. Nearby
 * addresses land on nearby bits, so the filter words free() reads are the
 * ones for the part of the heap the program is using anyway: a heap of W
 * bytes keeps W/128 bytes of filter hot. (A hash that scattered addresses
 * over the whole filter made every free() a cache miss once samples had
 * touched it.) Each window is laid over the filter in its own order, from
 * its number, so that arenas a multiple of 4 MiB apart (glibc's thread
 * arenas are 64 MiB apart) do not collide block for block.
 */
#define MP_LIVE_GRANULE_SHIFT 4 /* malloc aligns blocks to 16 bytes */
#define MP_LIVE_FILTER_BITS 18
extern _Atomic uint64_t mp_live_filter[(1U << MP_LIVE_FILTER_BITS) / 64];

static inline uint32_t mp_live_bucket(const void *p)
{
	uint64_t a = (uint64_t)(uintptr_t)p;
	/* XOR with the window's number: a bijection within each window that
	 * keeps aligned runs of granules together, and a different one for
	 * each window. Cheaper than a multiplicative hash on free()'s path. */
	return (uint32_t)((a >> MP_LIVE_GRANULE_SHIFT) ^ (a >> (MP_LIVE_GRANULE_SHIFT + MP_LIVE_FILTER_BITS))) &
	       ((1U << MP_LIVE_FILTER_BITS) - 1);
}

static inline bool mp_live_maybe(const void *p)
{
	if (MP_LIKELY(!atomic_load_explicit(&mp_live_used, memory_order_relaxed)))
		return false;
	uint32_t b = mp_live_bucket(p);
	return (atomic_load_explicit(&mp_live_filter[b / 64], memory_order_relaxed) >> (b % 64)) & 1;
}

/* ---- event ring (ring.c) ------------------------------------------------- */

/*
 * Multi-producer, single-consumer ring of variable-sized records shared by
 * every thread of the process; the writer thread is the consumer. Order of
 * records is the order of mp_ring_reserve calls, so a free reported before
 * the real free() always precedes the allocation that reuses its address.
 */
enum mp_ev_type {
	MP_EV_ALLOC = 1,   /* struct mp_ev_alloc + depth pcs */
	MP_EV_FREE = 2,    /* struct mp_free */
	MP_EV_WIRE = 3,    /* a complete wire record, sent as is */
	MP_EV_TALLY_FREE = 4, /* uint64_t: the header word of a tallied block */
};

struct mp_ev_alloc {
	uint64_t addr;
	uint64_t size;
	uint64_t id;    /* 0: none (events in order, keyed by address) */
	uint32_t depth; /* pcs that follow */
	/* In a thread's own ring (full trace): the ring's number + 1 and the
	 * unwinder's memo entry (struct mp_memo_ref) the stack came from,
	 * and whether the stack is left out because the last event of that
	 * ring and entry carried it (MP_EV_SAME_STACK). ring 0: neither. */
	uint16_t ring;
	uint8_t way;
	uint8_t flags;
	uint64_t pcs[];
};

#define MP_EV_SAME_STACK 1

/* Space for one record of len payload bytes, or NULL if the ring is full
 * (the caller counts a drop) or not set up. In full-trace mode the call
 * waits for space instead, as long as the writer is alive. */
void *mp_ring_reserve(uint32_t type, uint32_t len);
/* Publishes a record obtained from mp_ring_reserve. */
void mp_ring_commit(void *payload);
/* Consumer side: calls fn for each committed record in order, stops at the
 * first uncommitted one or after max records; returns the number of
 * records consumed. */
size_t mp_ring_drain_max(void (*fn)(uint32_t type, const void *payload, uint32_t len), size_t max);
static inline size_t mp_ring_drain(void (*fn)(uint32_t type, const void *payload, uint32_t len))
{
	return mp_ring_drain_max(fn, SIZE_MAX);
}
bool mp_ring_empty(void);
/* The last mp_ring_drain stopped at a record not yet committed, short of
 * the head it had read. */
bool mp_ring_blocked(void);
/* The oldest record is committed: the writer has something to send. */
bool mp_ring_ready(void);
/* CLOCK_MONOTONIC in ns. */
uint64_t mp_now_ns(void);
/* A nonzero random seed from the clock, the thread id and salt. */
uint64_t mp_clock_seed(uint64_t salt);
int mp_ring_setup(size_t bytes);
void mp_ring_reset(void);

extern _Atomic uint64_t mp_dropped;
/* In full trace: waits a little for the writer to move tail t on; false
 * when it is time to give up (no writer, or no progress for ten seconds).
 * word: the low half of tail, if the writer wakes it (futex) when it moves
 * tail and finds a waiter; else the wait is a short sleep. */
bool mp_ring_wait_for_room(uint64_t t, uint64_t *stall_start, uint64_t *seen_tail,
			   _Atomic uint32_t *word);

/* ---- full-trace tallies (tally.c) ------------------------------------------ */

/* Full trace under glibc without a leak check: allocations and frees are
 * counted per (stack, size class) in the program, not sent one by one. Set
 * once, before anything is sampled. */
extern bool mp_tally_on;
#define MP_TALLY_SLOTS 256            /* threads counting at once */
#define MP_TALLY_GID_MAX ((1U << 24) - 1) /* bits for a gid in the header */
#define MP_TALLY_GIDS (1U << 17)          /* distinct stacks tallied at most */
#define MP_TALLY_SIZE_MAX 0xffffffffULL   /* larger blocks are events */
/* A thread whose allocations, less its frees, grow by more than this asks
 * for the totals to be sent at once: the writer sets it to a 32nd of the
 * heap in use (at least MP_TALLY_STEP_MIN), so that the peak the collector
 * sees is within about 3% of the real one, for a few dozen sends per
 * doubling of the heap. */
extern _Atomic uint64_t mp_tally_step;
#define MP_TALLY_STEP_MIN (1ULL << 20)

/* One (stack, size class) of a thread's table (size classes: struct
 * mp_tally). key: gid << 8 | class, 0 = empty. Counts since the process
 * (a fork child: the first of its line) began, modulo 2^32: the writer
 * reads them every TALLY_MS (writer.c) and adds the differences up in 64
 * bits; bytes modulo 2^64. A key per size, as before, made a loop
 * allocating 4,000 sizes at random from one stack look up a 128 KiB table
 * twice a pair, missing the cache a third of its full-trace cost (perf):
 * by class, it is a dozen entries. */
struct mp_tally_entry {
	_Atomic uint64_t key;
	_Atomic uint32_t allocs;
	_Atomic uint32_t frees;
	_Atomic uint64_t alloc_bytes;
	_Atomic uint64_t free_bytes;
};

/* A hash of a stack's pcs: the writer's table of stack ids and the tally
 * table of gids both key stacks by it. */
static inline uint64_t mp_hash_pcs(const uint64_t *pcs, uint32_t depth)
{
	uint64_t h = 0x243f6a8885a308d3ULL ^ depth;
	for (uint32_t i = 0; i < depth; i++) {
		h ^= pcs[i];
		h *= 0x9e3779b97f4a7c15ULL;
		h ^= h >> 32;
	}
	return h;
}

/* Zeroed memory for the shim's own tables, from mmap (never the program's
 * malloc: at a leak check its threads may be stopped holding its locks);
 * NULL if there is none. (tally_sum.c) */
void *mp_map_zeroed(size_t bytes);

/* The size class of size (below 2^32): 0 for 0, else its bit length. */
static inline uint32_t mp_tally_class(uint64_t size)
{
	return size ? 64 - (uint32_t)__builtin_clzll(size) : 0;
}

static inline uint64_t mp_tally_key(uint32_t gid, uint64_t size)
{
	return (uint64_t)gid << 8 | mp_tally_class(size);
}

/* Maps the stack table; 0, or -1 (full trace then sends events). */
int mp_tally_init(void);
/* Counts an allocation of size bytes from the stack pcs, and marks its
 * header (*hdr, the header's first word); false if it cannot be counted
 * (the caller sends an event). tag: the unwinder's memo word for this
 * walk (struct mp_memo_ref), which keeps the gid, or NULL. Busy flag up. */
bool mp_tally_alloc(uint64_t *hdr, size_t size, const uint64_t *pcs, uint32_t depth,
		    uint32_t *tag);
/* Counts the free of a block whose header's first word was word (with
 * MP_HDR_TALLIED; the header is cleared already), or sends it as an
 * MP_EV_TALLY_FREE event if this thread cannot. */
void mp_tally_free(uint64_t word);
void mp_tally_thread_end(void);
void mp_tally_fork_child(void);
/* Writer side. Gids 1 .. mp_tally_stacks_made() may be in tables. */
uint32_t mp_tally_stacks_made(void);
/* The pcs of gid (read-only, for ever), or NULL. */
const uint64_t *mp_tally_stack(uint32_t gid, uint32_t *depth);
/* Calls fn for every entry of every table that changed since the last
 * scan; returns how many. */
size_t mp_tally_scan(void (*fn)(uint32_t slot, const struct mp_tally_entry *e, void *arg), void *arg);
/* Has slot looked at again by the next scan. */
void mp_tally_mark_dirty(uint32_t slot);
/* (tally_sum.c) Reads the tables that changed and calls emit for each
 * (stack, size class) whose totals changed since the last call, those
 * whose bytes in use shrank first; stacks above gid_limit wait for the
 * next call. Returns how many. */
size_t mp_tally_sum(uint32_t gid_limit, void (*emit)(uint32_t gid, const struct mp_tally *totals));
/* A free the thread could not count (MP_EV_TALLY_FREE). */
void mp_tally_sum_loose_free(uint64_t word);
/* In a fork child: the writer's sums start again from nothing. */
void mp_tally_sum_reset(void);
/* Bytes in use by the totals summed so far. */
uint64_t mp_tally_sum_inuse(void);

/* ---- per-thread event rings (tring.c) -------------------------------------- */

/* Full trace under glibc without a leak check: heap events go through
 * per-thread rings and carry ids. Set once, before anything is sampled. */
extern bool mp_trings_on;
#define MP_TRING_MAX 1024 /* rings; later threads share the one ring */
/* Like mp_ring_reserve, in the calling thread's ring (or the shared one
 * when it has none); *id gets a new allocation id if id is not NULL. Only
 * with the busy flag raised: one record at a time per thread. */
void *mp_tring_reserve(uint32_t type, uint32_t len, uint64_t *id);
void mp_tring_commit(void *payload);
/* The calling thread is ending: the writer empties its ring and frees it. */
void mp_tring_thread_end(void);
/* Writer side: notes how far each ring is committed; then, once the
 * shared ring has been drained up to a head read after that (so that the
 * mappings their stacks need have gone first), mp_trings_drain passes the
 * records up to the note to fn, ring by ring. */
void mp_trings_snapshot(void);
size_t mp_trings_drain(void (*fn)(uint32_t type, const void *payload, uint32_t len));
bool mp_trings_ready(void);
void mp_trings_fork_child(void);
/* The calling thread's own ring's number + 1, taking one if it has none
 * yet; 0 if it has none and will get none (its events go through the
 * shared ring). */
uint16_t mp_tring_own(void);

/* ---- the shared ring (sring.c) ------------------------------------------- */

/* Creates, seals and maps this image's ring; its memfd (close-on-exec,
 * high), which goes with the hello and is then closed, or -1. */
int mp_sring_create(void);
/* Unmaps the ring (a fork child's copy of its parent's mapping). */
void mp_sring_forget(void);
/* Bytes that can be appended now without overwriting what the collector
 * has not taken. */
size_t mp_sring_room(void);
/* Appends at most len bytes of buf (as many as there is room for). */
size_t mp_sring_put(const void *buf, size_t len);
/* Whether the collector asked for malloc statistics since *seen. */
bool mp_sring_stats_asked(uint32_t *seen);

/* ---- the writer (writer.c) ------------------------------------------------ */

/* Connects to the collector: hands it a shared ring, or starts the writer
 * thread. 0 or -1. */
int mp_writer_start(void);
/* Remembers the program's name before the program can rewrite argv, and
 * where its arguments are (the constructor's argc and argv). */
void mp_writer_note_start(int argc, char **argv);
/* The writer is in its long sleep; the first record committed wakes it. */
extern _Atomic bool mp_writer_sleeping;
/* Wakes the writer (async-signal-safe). */
void mp_writer_wake(void);
/* Tallies (tally.c): the totals are to go now, not at the next TALLY_MS. */
void mp_writer_send_tallies_soon(void);
/* After a record is published: wakes the writer if it is in its long
 * sleep (one producer does; the others find the flag cleared). */
static inline void mp_writer_wake_if_asleep(void)
{
	if (MP_UNLIKELY(atomic_load_explicit(&mp_writer_sleeping, memory_order_relaxed)) &&
	    atomic_exchange(&mp_writer_sleeping, false))
		mp_writer_wake();
}
/* Asks the writer for a dump of this process (async-signal-safe). */
void mp_writer_request_dump(void);
/* Flushes everything, says goodbye and stops the writer; gives up when the
 * collector has taken nothing for stall_ms. Called at exit. */
void mp_writer_finish(int stall_ms);
/* The writer thread's id (0 if none), so that others can leave it alone. */
pid_t mp_writer_tid(void);
/* Has the writer send everything queued and stop without a goodbye: the
 * calling thread then owns the connection. 0, or -1 if it did not stop
 * (the collector takes nothing) or the connection is gone. */
int mp_writer_park(int stall_ms);
/* Says goodbye on a parked connection, or finishes the writer. */
void mp_writer_bye(void);
/* On a parked connection: sends the leaked blocks and waits for the
 * collector's report (its text in *text, mmap'd). 0 or -1. */
int mp_writer_leak_exchange(const struct mp_leak *leaks, size_t n, int status, uint32_t unscanned,
			    const char *suppressions, struct mp_leak_report *report, char **text);
/* Waits until everything queued so far has been sent, giving up when the
 * writer sends nothing for stall_ms. Does nothing in a vfork child. */
void mp_writer_sync(int stall_ms);
/* In a forked child: forget the parent's connection and thread. */
void mp_writer_fork_child(void);
bool mp_writer_alive(void);
/* Without a writer thread (a shared ring, sring.c), records are sent
 * by the threads that made them, at these points: */
extern bool mp_writer_threadless;
/* After a sampled allocation or free has been recorded, outside the
 * shim's own state (mp_tls.busy is 0). */
void mp_writer_pump_point(void);
/* From a signal handler of the shim's: sends what is queued unless the
 * handler interrupted the shim itself (then the interrupted code does). */
void mp_writer_pump_from_signal(void);

/* ---- the keeper thread (keeper.c) ------------------------------------------ */

/* Futex wake of one waiter, and wait while *w == seen for at most ms
 * (ms < 0: until woken); private to the process (writer.c). */
void mp_futex_wake(_Atomic uint32_t *w);
void mp_futex_wait(_Atomic uint32_t *w, uint32_t seen, long ms);
/* The id a thread of memprof's stores in *tid (and wakes) when it first
 * runs, waited for while running() says it runs, at most a second; 0 if
 * none came. (writer.c) */
pid_t mp_await_tid(_Atomic pid_t *tid, bool (*running)(void));

/* Starts the thread that does, in the program's descriptor table, what the
 * writer cannot from its own: 0, or -1 (then the writer keeps its socket
 * in the program's table). */
int mp_keeper_start(void);
/* Ends it, once it has printed what it holds; wait: until then. */
void mp_keeper_stop(bool wait);
bool mp_keeper_running(void);
/* Wakes it: a line to print, or thread.c counted the last thread out. */
void mp_keeper_wake(void);
/* Its thread id (0 if none), so that the leak check leaves it alone. */
pid_t mp_keeper_tid(void);
/* Queues one line for the program's stderr; false if the keeper is not
 * running. From the writer thread only. */
bool mp_keeper_log(const char *line, size_t len);
/* Whether the program's own threads have all gone for real (/proc/self/stat:
 * only the zombie of the initial thread and memprof's are left); since:
 * when thread.c first counted none. */
bool mp_program_gone(uint64_t since);
/* Watching for the program's last thread to have gone, for a thread of
 * memprof's that calls mp_orphan_watch each time it wakes: it returns how
 * long to sleep before the next look (-1: thread.c counts threads of the
 * program's, no need to look), or 0 once the program has gone and the
 * caller is to end the process (mp_exit_for_program). */
struct mp_orphan_watch {
	uint64_t since; /* when thread.c first counted none, or 0 */
	long nap_ms;
};
long mp_orphan_watch(struct mp_orphan_watch *w);
/* The process's state letter and thread count from /proc/self/stat: 1, 0
 * if it could not be read as such, -1 if it could not be opened. */
int mp_self_stat(char *state, long *threads);
void mp_keeper_fork_child(void);

/* ---- mappings (mappings.c) ----------------------------------------------- */

/* If the set of loaded objects changed since the last call, queues a
 * MP_REC_MAPPING wire record for each executable segment not yet sent.
 * Not async-signal-safe (takes the loader's lock via dl_iterate_phdr). */
void mp_mappings_check(void);
void mp_mappings_reset(void);
/* The shim's own text, to cut its frames off stacks. */
extern uintptr_t mp_self_lo, mp_self_hi;
int mp_mappings_init(void);

/* ---- CPU profiling (cpu.c) ------------------------------------------------- */

/* Takes SIGPROF (shared with the program, signals.c) and starts the calling
 * thread's timer; later threads start theirs in mp_cpu_thread_begin.
 * 0, or -1 on failure. */
int mp_cpu_start(void);
/* The calling thread starts (its timer) and ends (thread.c). */
void mp_cpu_thread_begin(void);
void mp_cpu_thread_end(void);
/* The program profiles itself: stop every timer, give SIGPROF back, say
 * why once. */
void mp_cpu_step_aside(const char *why);
/* In a forked child: the one thread left gets a new timer. */
void mp_cpu_fork_child(void);
/* Writer side: passes pending samples to fn, at most *max of them (*max is
 * set to how many went); returns the samples dropped (slots full) since
 * the last call. */
uint64_t mp_cpu_drain(void (*fn)(pid_t tid, uint32_t weight, const uint64_t *regs,
				  const void *stack, uint32_t stack_len),
		      size_t *max);
bool mp_cpu_pending(void);

/* dlsym(RTLD_NEXT, name), for wrappers of functions other than malloc's. */
void *mp_real_symbol(const char *name);

/* ---- memory of our own that holds heap addresses ------------------------------ */

/* The leak check must not scan what the shim keeps (event ring, sampled
 * block tables, CPU stack copies): it is full of heap addresses that are
 * not references. Each module reports its regions. */
struct mp_range {
	uint64_t lo, hi;
};
size_t mp_ring_regions(struct mp_range *out, size_t max);
size_t mp_live_regions(struct mp_range *out, size_t max);
size_t mp_cpu_regions(struct mp_range *out, size_t max);

/* ---- leak check (leak.c) ---------------------------------------------------- */

/* Arranges the check at exit when MEMPROF_LEAK_CHECK is set. */
void mp_leak_setup(void);

/* ---- private collector (spawn.c) ------------------------------------------ */

/* Starts a collector for this process tree and sets MEMPROF_SOCKET in the
 * environment so that children report to it. 0 or -1. */
int mp_spawn_collector(void);

#endif /* MEMPROF_SHIM_H */
