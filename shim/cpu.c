/*
 * CPU profiling: one POSIX timer per thread on the thread's own CPU clock,
 * delivering SIGPROF to that thread, and a handler that only copies the
 * interrupted registers and the top of the stack into the thread's
 * preallocated slots. The collector unwinds those copies, so the handler
 * never reaches libunwind, dl_iterate_phdr or the loader lock, the road by
 * which in-process unwinding from signal handlers deadlocks (gperftools
 * #1583, #1188, #775; libunwind #16). The writer ships the copies: its
 * thread, or, without one, the handler itself (writer.c).
 *
 * The timer is one-shot, re-armed by the handler at an absolute time on the
 * thread's CPU clock a uniformly random interval in [P/2, 3P/2) after the
 * expiry that just fired. A fixed period would lock onto any work that
 * repeats with the period or a multiple of it (a 100 Hz loop sampled at
 * 100 Hz shows one phase of its cycle and never the others); the random
 * intervals sample every phase alike. Absolute times keep the mean rate
 * exact however late a signal is delivered (expiry is only noticed at the
 * scheduler tick), and intervals that passed meanwhile count in the
 * sample's weight, as timer overruns would.
 *
 * SIGPROF is shared with the program (signals.c): signals from these
 * timers (SI_TIMER) are samples, any other SIGPROF is the program's. A
 * program that arms a profiling timer of its own makes this module step
 * aside (mp_cpu_step_aside).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "shim.h"

#define SLOTS 16 /* per thread; the writer drains them every few ms */
#define PUMP_EVERY_NS 10000000u /* see on_sigprof */

struct cpu_slot {
	uint32_t weight; /* timer expirations this sample stands for */
	uint32_t stack_len;
	uint64_t regs[MP_CPU_REGS];
	unsigned char stack[MP_CPU_STACK_MAX];
};

struct mp_thread {
	struct mp_thread *next; /* registry, pushed at the head */
	pid_t tid;
	_Atomic bool dead;      /* the thread has gone; the writer frees us */
	_Atomic bool has_timer;
	timer_t timer;
	uint64_t period;        /* ns of CPU time, the mean interval */
	uint64_t due;           /* next expiry, ns on this thread's CPU clock */
	uint64_t rng;           /* xorshift state for the intervals */
	uintptr_t stack_lo, stack_hi;
	_Atomic uint32_t head;  /* written by the handler */
	_Atomic uint32_t tail;  /* written by the writer */
	_Atomic uint32_t dropped;
	struct cpu_slot slots[SLOTS];
};

static _Atomic(struct mp_thread *) threads;
/* Held by the writer while it unlinks and unmaps a thread's record, and by
 * mp_cpu_step_aside while it walks the list; never in a signal handler. */
static atomic_flag list_lock = ATOMIC_FLAG_INIT;
static _Atomic bool cpu_on;
static _Atomic bool said_step_aside;
static __thread struct mp_thread *self __attribute__((tls_model("initial-exec")));

/* ---- the signal handler ---------------------------------------------------- */

/* x86-64 DWARF register order: rax rdx rcx rbx rsi rdi rbp rsp r8..r15 rip. */
static void save_regs(uint64_t *r, const mcontext_t *mc)
{
	static const int order[MP_CPU_REGS] = {
		REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI, REG_RBP, REG_RSP, REG_R8,
		REG_R9, REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RIP,
	};
	for (int i = 0; i < MP_CPU_REGS; i++)
		r[i] = (uint64_t)mc->gregs[order[i]];
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Uniform in [P/2, 3P/2): mean P (the modulo's bias is below 2^-40). */
static uint64_t next_interval(struct mp_thread *t)
{
	uint64_t x = t->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	t->rng = x;
	return t->period / 2 + (x >> 11) % t->period;
}

static bool arm(struct mp_thread *t)
{
	struct itimerspec its = { { 0, 0 },
				  { (time_t)(t->due / 1000000000u), (long)(t->due % 1000000000u) } };
	return timer_settime(t->timer, TIMER_ABSTIME, &its, NULL) == 0;
}

/* Schedules the next expiry after the one that fired; returns how many
 * expiries the sample stands for (more than one when the signal came late
 * enough that later ones have passed too). */
static uint32_t rearm(struct mp_thread *t)
{
	uint64_t now = thread_cpu_ns();
	uint32_t n = 1;
	t->due += next_interval(t);
	if (now > t->due + 64 * t->period) { /* far behind: skip ahead in one step */
		n += (uint32_t)((now - t->due) / t->period);
		t->due = now;
	}
	while (t->due <= now) {
		t->due += next_interval(t);
		n++;
	}
	arm(t);
	return n;
}

static void on_sigprof(int sig, siginfo_t *si, void *ucv)
{
	int saved = errno;
	/* Only memprof's timers send SI_TIMER SIGPROFs: one of the program's
	 * own would have made us step aside when it was created. Anything
	 * else is the program's (kill, sigqueue, setitimer). */
	if (si->si_code != SI_TIMER) {
		mp_signal_forward(sig, si, ucv);
		goto out;
	}
	struct mp_thread *t = self;
	/* A timer id is never reused soon (the kernel hands them out in
	 * sequence), so re-arming one that has just been deleted fails
	 * harmlessly; a late signal from it is dropped. */
	if (!t || si->si_value.sival_ptr != t ||
	    !atomic_load_explicit(&t->has_timer, memory_order_relaxed) ||
	    !atomic_load_explicit(&cpu_on, memory_order_relaxed))
		goto out;
	uint32_t weight = rearm(t);
	uint32_t h = atomic_load_explicit(&t->head, memory_order_relaxed);
	uint32_t used = h - atomic_load_explicit(&t->tail, memory_order_acquire);
	if (used >= SLOTS) {
		atomic_fetch_add_explicit(&t->dropped, weight, memory_order_relaxed);
		goto out;
	}
	struct cpu_slot *s = &t->slots[h % SLOTS];
	const ucontext_t *uc = ucv;
	save_regs(s->regs, &uc->uc_mcontext);
	/* Copy from the stack pointer up, within the thread's own stack only
	 * (a signal stack or a coroutine's stack gets just the registers). */
	uintptr_t sp = (uintptr_t)s->regs[7];
	size_t len = 0;
	if (sp >= t->stack_lo && sp < t->stack_hi) {
		len = t->stack_hi - sp;
		if (len > MP_CPU_STACK_MAX)
			len = MP_CPU_STACK_MAX;
		__builtin_memcpy(s->stack, (const void *)sp, len);
	}
	s->stack_len = (uint32_t)len;
	s->weight = weight;
	atomic_store_explicit(&t->head, h + 1, memory_order_release);
	/* Without a writer thread this thread sends it (unless it was in the
	 * middle of the shim's work): each sample at the default 100 Hz, every
	 * fourth at higher rates, where checking the mappings every time
	 * would cost what the samples measure. With one: half full, the
	 * writer should come now rather than at its next tick. */
	if (mp_writer_threadless) {
		if (t->period >= PUMP_EVERY_NS || used + 1 >= SLOTS / 4)
			mp_writer_pump_from_signal();
	} else if (used + 1 == SLOTS / 2) {
		mp_writer_wake();
	}
out:
	errno = saved;
}

/* ---- threads ------------------------------------------------------------------ */

static void lock_list(void)
{
	while (atomic_flag_test_and_set_explicit(&list_lock, memory_order_acquire))
		sched_yield();
}

static void unlock_list(void)
{
	atomic_flag_clear_explicit(&list_lock, memory_order_release);
}

static void stop_timer(struct mp_thread *t)
{
	if (atomic_exchange(&t->has_timer, false))
		timer_delete(t->timer);
}

static void start_timer(struct mp_thread *t)
{
	struct sigevent sev;
	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGPROF;
	sev.sigev_value.sival_ptr = t;
	sev._sigev_un._tid = t->tid;
	if (!mp_real.timer_create ||
	    mp_real.timer_create(CLOCK_THREAD_CPUTIME_ID, &sev, &t->timer) != 0)
		return;
	t->period = 1000000000u / mp_cfg.cpu_hz;
	t->rng = mp_clock_seed((uint64_t)(uintptr_t)t);
	/* The first expiry at a random phase within one period. */
	t->due = thread_cpu_ns() + 1 + next_interval(t) - t->period / 2;
	atomic_store(&t->has_timer, true);
	if (!arm(t))
		stop_timer(t);
}

void mp_cpu_thread_begin(void)
{
	if (!atomic_load(&cpu_on) || self)
		return;
	mp_tls.busy++;
	struct mp_thread *t = mmap(NULL, sizeof(*t), PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (t != MAP_FAILED) {
		t->tid = (pid_t)syscall(SYS_gettid);
		mp_thread_stack(&t->stack_lo, &t->stack_hi);
		t->next = atomic_load(&threads);
		while (!atomic_compare_exchange_weak(&threads, &t->next, t))
			;
		self = t;
		start_timer(t);
	}
	mp_tls.busy--;
}

void mp_cpu_thread_end(void)
{
	struct mp_thread *t = self;
	if (!t)
		return;
	stop_timer(t);
	self = NULL;
	atomic_store(&t->dead, true);
}

void mp_cpu_step_aside(const char *why)
{
	if (!atomic_exchange(&cpu_on, false))
		return;
	lock_list();
	for (struct mp_thread *t = atomic_load(&threads); t; t = t->next)
		stop_timer(t);
	unlock_list();
	mp_signal_release(SIGPROF);
	if (!atomic_exchange(&said_step_aside, true))
		mp_log("%s", why);
}

/* ---- start, fork, drain --------------------------------------------------------- */

int mp_cpu_start(void)
{
	if (!mp_cfg.cpu_hz)
		return 0;
	/* A profiling timer armed before us (by an earlier constructor) means
	 * the program profiles itself. */
	struct itimerval it;
	if (getitimer(ITIMER_PROF, &it) == 0 && (it.it_value.tv_sec || it.it_value.tv_usec)) {
		atomic_store(&said_step_aside, true);
		mp_log("the program runs its own profiling timer (setitimer); CPU profiling is off");
		return 0;
	}
	if (mp_signal_take(SIGPROF, on_sigprof, MP_SIG_FORWARD) != 0)
		return -1;
	atomic_store(&cpu_on, true);
	mp_cpu_thread_begin();
	return 0;
}

void mp_cpu_fork_child(void)
{
	/* Timers are not inherited and the other threads do not exist here:
	 * start over with this thread alone (the parent's records are copies
	 * we may not trust, so they are abandoned, not freed). */
	atomic_store(&threads, NULL);
	self = NULL;
	mp_cpu_thread_begin();
}

size_t mp_cpu_regions(struct mp_range *out, size_t max)
{
	size_t n = 0;
	for (struct mp_thread *t = atomic_load(&threads); t && n < max; t = t->next)
		out[n++] = (struct mp_range){ (uint64_t)(uintptr_t)t,
					      (uint64_t)(uintptr_t)t + sizeof(*t) };
	return n;
}

bool mp_cpu_pending(void)
{
	for (struct mp_thread *t = atomic_load(&threads); t; t = t->next)
		if (atomic_load(&t->head) != atomic_load(&t->tail))
			return true;
	return false;
}

/* Writer side: hands every copied sample to fn, then frees threads that
 * have gone and have nothing left. Only the writer (one caller at a time)
 * removes records, and it never unlinks the head, which pushers may be
 * changing. */
uint64_t mp_cpu_drain(void (*fn)(pid_t tid, uint32_t weight, const uint64_t *regs,
				  const void *stack, uint32_t stack_len),
		      size_t *max)
{
	uint64_t dropped = 0;
	size_t n = 0;
	struct mp_thread *prev = NULL;
	for (struct mp_thread *t = atomic_load(&threads), *next; t; t = next) {
		next = t->next;
		uint32_t tail = atomic_load_explicit(&t->tail, memory_order_relaxed);
		uint32_t head = atomic_load_explicit(&t->head, memory_order_acquire);
		for (; tail != head && n < *max; tail++, n++) {
			const struct cpu_slot *s = &t->slots[tail % SLOTS];
			fn(t->tid, s->weight, s->regs, s->stack, s->stack_len);
			atomic_store_explicit(&t->tail, tail + 1, memory_order_release);
		}
		dropped += atomic_exchange(&t->dropped, 0);
		/* Not waiting for the lock: this may run in a signal handler
		 * that interrupted its holder (mp_cpu_step_aside). The record
		 * is freed next time instead. */
		if (prev && atomic_load(&t->dead) &&
		    atomic_load(&t->head) == atomic_load(&t->tail) &&
		    !atomic_flag_test_and_set_explicit(&list_lock, memory_order_acquire)) {
			prev->next = next;
			unlock_list();
			munmap(t, sizeof(*t));
			continue;
		}
		prev = t;
	}
	*max = n;
	return dropped;
}
