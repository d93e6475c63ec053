/*
 * unit_unwind.c: holds the shim's unwinder (shim/unwind.c) to what glibc's
 * backtrace() (libgcc's unwinder) finds from the same place: plain calls,
 * frames that address their locals from rbp (alloca), frame pointers kept,
 * calls through libc (a qsort comparator), deep recursion, a signal handler
 * on the thread's stack and on an alternate stack, and a second thread;
 * and, where backtrace() stops, through code with no call frame
 * information that keeps a frame pointer.
 * Each case unwinds twice, the second time from the rule cache, and then
 * three times more as the shim's allocator entry points do, from a frame
 * above (mp_unwind_from): the first of those walks and fills the thread's
 * memo, the next two must come from it and agree. Last, the memo must miss
 * where a walk from the same ip and sp would read different return
 * addresses: two callers whose frames are the same size.
 */
#include "test.h"
#include "unwind.h"

#include <alloca.h>
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX 64
/* ASan (make asan): GCC says __SANITIZE_ADDRESS__, clang __has_feature. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifdef UNDER_ASAN
#define EXTRA 8 /* see compare */
#else
#define EXTRA 0
#endif

extern void *__libc_stack_end;

static __thread uintptr_t stack_lo, stack_hi;

static void learn_stack(void)
{
	uintptr_t top = ((uintptr_t)__libc_stack_end + 4095) & ~(uintptr_t)4095;
	if ((uintptr_t)__builtin_frame_address(0) < top &&
	    top - (uintptr_t)__builtin_frame_address(0) < (64u << 20)) {
		stack_lo = top - (64u << 20);
		stack_hi = top;
		return;
	}
	pthread_attr_t attr;
	void *addr;
	size_t size;
	pthread_getattr_np(pthread_self(), &attr);
	pthread_attr_getstack(&attr, &addr, &size);
	pthread_attr_destroy(&attr);
	stack_lo = (uintptr_t)addr;
	stack_hi = (uintptr_t)addr + size;
}

static int cases;

/* Walks from the frame of whoever called this, as the shim's entry points
 * do (preload.c's note_entry): ip, sp and rbp as they are in the caller. */
static __attribute__((noinline)) uint32_t walk_from_caller(uint64_t *pcs, uint32_t max,
							   struct mp_memo_ref *ref)
{
	const uint64_t *fp = __builtin_frame_address(0);
	return mp_unwind_from(fp[1], (uint64_t)(uintptr_t)(fp + 2), fp[0], pcs, max, stack_lo,
			      stack_hi, ref);
}

/* Unwinds from here with both unwinders and compares: frame 0 of each is
 * this function's own call site (they differ), the callers must match. */
/* Whether the memo must keep a case's walk: the walks of 64 frames may read
 * more stack words than it keeps (MEMO_LOADS), as they do under ASan,
 * whose frames all save rbp. */
enum keep { KEPT, NOT_KEPT, MAY_BE_KEPT };

static __attribute__((noinline)) void compare(const char *what, int min_depth, enum keep keeps)
{
	uint64_t ours[MAX];
	void *theirs[MAX + EXTRA];
	for (int pass = 0; pass < 2; pass++) {
		uint32_t n = mp_unwind(ours, MAX, stack_lo, stack_hi);
		int m = backtrace(theirs, MAX + EXTRA);
#ifdef UNDER_ASAN
		/* make asan: ASan's backtrace() interceptor adds frames of its
		 * own above this function's: drop them, up to the first near
		 * our own frame 0 (both are return addresses in this function). */
		int skip = 0;
		while (skip < m && (uintptr_t)theirs[skip] - ((uintptr_t)ours[0] - 4096) > 8192)
			skip++;
		if (skip < m) {
			memmove(theirs, theirs + skip, (size_t)(m - skip) * sizeof(*theirs));
			m -= skip;
		}
		if (m > MAX)
			m = MAX;
#endif
		bool same = (int)n == m || (n == MAX && m == MAX);
		for (int i = 1; same && i < m && i < (int)n; i++)
			same = ours[i] == (uint64_t)(uintptr_t)theirs[i];
		if (!CHECK(same && (int)n >= min_depth)) {
			fprintf(stderr, "    %s, pass %d: ours %u frames, backtrace %d\n", what, pass, n, m);
			for (int i = 0; i < MAX && (i < (int)n || i < m); i++)
				fprintf(stderr, "    #%-2d %16lx %16lx\n", i,
					i < (int)n ? (unsigned long)ours[i] : 0UL,
					i < m ? (unsigned long)theirs[i] : 0UL);
		}
	}
	/* From this frame: pcs[0] is the call below (not mp_unwind's), the
	 * callers must be the same as mp_unwind's. */
	uint64_t from[MAX];
	uint32_t n = mp_unwind(ours, MAX, stack_lo, stack_hi);
	/* The caller's tag: zero from a new walk, then as the caller left
	 * it for as long as the memo gives the same walk. */
	struct mp_memo_ref ref = { 0 }, first = { 0 };
	for (int pass = 0; pass < 3; pass++) {
		uint32_t k = walk_from_caller(from, MAX, &ref);
		bool same = k == n;
		for (uint32_t i = 1; same && i < n; i++)
			same = from[i] == ours[i];
		if (!CHECK(same))
			fprintf(stderr, "    %s, from a frame above, pass %d: %u frames, %u before\n",
				what, pass, k, n);
		if (keeps == NOT_KEPT || (keeps == MAY_BE_KEPT && pass == 0 && !ref.tag)) {
			CHECK(ref.tag == NULL);
			keeps = NOT_KEPT;
		} else if (pass == 0) {
			first = ref;
			if (!CHECK(ref.tag && *ref.tag == 0))
				fprintf(stderr, "    %s: not kept\n", what);
			if (ref.tag)
				*ref.tag = 7;
		} else {
			CHECK(ref.tag == first.tag && ref.way == first.way && ref.tag && *ref.tag == 7);
		}
	}
	cases++;
}

/* ---- shapes of frames ---------------------------------------------------- */

static __attribute__((noinline)) void plain3(void)
{
	compare("plain calls", 5, KEPT);
	__asm__ volatile("");
}

static __attribute__((noinline)) void plain2(void)
{
	plain3();
	__asm__ volatile("");
}

static __attribute__((noinline)) void plain1(void)
{
	plain2();
	__asm__ volatile("");
}

/* alloca: the CFA is found from rbp, not rsp. */
static __attribute__((noinline)) void with_alloca(size_t n)
{
	volatile char *p = alloca(n);
	p[0] = 1;
	compare("alloca frame", 3, KEPT);
	p[n - 1] = 2;
}

__attribute__((noinline, optimize("no-omit-frame-pointer"))) static void with_frame_pointer(void)
{
	volatile int x = 1;
	compare("frame pointer kept", 3, KEPT);
	(void)x;
}

/* Code with no call frame information at all, keeping a frame pointer
 * (what JIT compilers emit): the walk follows rbp through it. */
__asm__(".text\n"
	".globl no_cfi_trampoline\n"
	"no_cfi_trampoline:\n"
	"	push %rbp\n"
	"	mov %rsp, %rbp\n"
	"	call *%rdi\n"
	"	pop %rbp\n"
	"	ret\n");
void no_cfi_trampoline(void (*fn)(void));
static void via_no_cfi(void);

static __attribute__((noinline)) void called_from_no_cfi(void)
{
	uint64_t pcs[MAX];
	uint32_t n = mp_unwind(pcs, MAX, stack_lo, stack_hi);
	uint64_t tramp = (uint64_t)(uintptr_t)no_cfi_trampoline;
	uint64_t via = (uint64_t)(uintptr_t)via_no_cfi;
	/* pcs[0]: here; pcs[1]: in the trampoline; pcs[2]: in its caller. */
	CHECK(n >= 4);
	CHECK(n >= 2 && pcs[1] > tramp && pcs[1] <= tramp + 16);
	CHECK(n >= 3 && pcs[2] > via && pcs[2] < via + 64);
	cases++;
}

static __attribute__((noinline)) void via_no_cfi(void)
{
	no_cfi_trampoline(called_from_no_cfi);
	__asm__ volatile("");
}

static __attribute__((noinline)) void recurse(int depth)
{
	if (depth == 0)
		compare("deep recursion, cut at MAX", MAX, MAY_BE_KEPT);
	else
		recurse(depth - 1);
	__asm__ volatile("");
}

static int by_value(const void *a, const void *b)
{
	static bool done;
	if (!done) {
		done = true;
		compare("through libc's qsort", 4, KEPT);
	}
	return *(const int *)a - *(const int *)b;
}

static void through_libc(void)
{
	int v[64];
	for (int i = 0; i < 64; i++)
		v[i] = (i * 37) % 64;
	qsort(v, 64, sizeof(v[0]), by_value);
}

/* ---- the memo must miss when what the walk read changed -------------------- */

/* leaf is called from mid_a and from mid_b, which have frames of the same
 * size and are called from the same place in same_sp: so both times the
 * walk starts at the same ip and sp, and only the return address saved
 * in leaf's frame (into mid_a, or into mid_b) tells them apart. */
static uint64_t leaf_pcs[MAX];
static uint32_t leaf_n;
static uint64_t leaf_sp, leaf_ret;

static uint32_t *leaf_tag;

static __attribute__((noinline, noipa)) void leaf(void)
{
	struct mp_memo_ref ref = { 0 };
	leaf_n = walk_from_caller(leaf_pcs, MAX, &ref);
	leaf_tag = ref.tag;
	if (ref.tag)
		(*ref.tag)++;
	leaf_sp = (uint64_t)(uintptr_t)__builtin_frame_address(0);
	leaf_ret = (uint64_t)(uintptr_t)__builtin_return_address(0);
	__asm__ volatile("");
}

/* noipa: identical functions would otherwise be folded into one. */
static __attribute__((noinline, noipa)) void mid_a(void)
{
	leaf();
	__asm__ volatile("nop");
}

static __attribute__((noinline, noipa)) void mid_b(void)
{
	leaf();
	__asm__ volatile("nop; nop");
}

static __attribute__((noinline, noipa)) void same_sp(void (*first)(void), void (*second)(void))
{
	first();
	uint64_t sp1 = leaf_sp, ret1 = leaf_ret;
	uint32_t *tag1 = leaf_tag;
	bool first_ok = leaf_n >= 3 && leaf_pcs[1] == leaf_ret;
	second();
	CHECK(leaf_sp == sp1 && leaf_ret != ret1); /* else the case tests nothing */
	CHECK(first_ok);
	/* The same entry, filled again: its tag starts over (leaf added 1). */
	CHECK(leaf_tag && leaf_tag == tag1 && *leaf_tag == 1);
	if (!CHECK(leaf_n >= 3 && leaf_pcs[1] == leaf_ret))
		fprintf(stderr, "    pcs[1] %lx: the first caller's return address taken for %lx\n",
			(unsigned long)leaf_pcs[1], (unsigned long)leaf_ret);
	cases++;
}

/* ---- signals and threads -------------------------------------------------- */

static const char *handler_case;
static bool handler_on_alt;

static void on_signal(int sig)
{
	(void)sig;
	/* Not kept on the alternate stack: its bounds are not the
	 * thread's, which the memo is keyed on. */
	compare(handler_case, 5, handler_on_alt ? NOT_KEPT : KEPT);
}

static __attribute__((noinline)) void raise_it(int sig)
{
	raise(sig);
	__asm__ volatile("");
}

static void in_handler(bool alt)
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = alt ? SA_ONSTACK : 0 };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	stack_t ss = { .ss_size = 64 * 1024 }, old;
	if (alt) {
		ss.ss_sp = mmap(NULL, ss.ss_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				-1, 0);
		sigaltstack(&ss, &old);
	}
	handler_case = alt ? "signal handler on an alternate stack" : "signal handler";
	handler_on_alt = alt;
	raise_it(SIGUSR1);
	if (alt) {
		sigaltstack(&old, NULL);
		munmap(ss.ss_sp, ss.ss_size);
	}
}

static void *thread_main(void *arg)
{
	(void)arg;
	learn_stack();
	plain1();
	in_handler(false);
	return NULL;
}

int main(int argc, char **argv)
{
	(void)argc;
	CHECK(mp_unwind_init() == 0);
	learn_stack();
	plain1();
	with_alloca(3000);
	with_frame_pointer();
	recurse(200);
	through_libc();
	via_no_cfi();
	in_handler(false);
	in_handler(true);
	pthread_t t;
	pthread_create(&t, NULL, thread_main, NULL);
	pthread_join(t, NULL);
	/* A flush forgets the rules; the next walk works them out again. */
	mp_unwind_flush();
	plain1();
	for (int i = 0; i < 3; i++) {
		same_sp(mid_a, mid_b);
		same_sp(mid_b, mid_a);
	}
	CHECK_INT_EQ(cases, 17);
	return test_summary(argv[0]);
}
