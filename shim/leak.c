/*
 * The leak check (MEMPROF_LEAK_CHECK=1): at exit, find the live blocks that
 * nothing reachable points to, as LeakSanitizer does, and have the collector
 * (which knows every block's stack) turn them into a report.
 *
 * Roots: the writable segments of every loaded object but ours, the stacks
 * (from the stack pointer up) and registers of every thread, each thread's
 * static TLS, and blocks allocated by the dynamic linker (dynamic TLS and
 * the like). A block reached from a root, directly or through other blocks,
 * is not a leak. Of the rest, those another leaked block points to are
 * indirect leaks, the others direct.
 *
 * Other threads are stopped with a signal for the duration, and the whole
 * check runs inside a dl_iterate_phdr callback: holding the loader's lock
 * means no stopped thread can be holding it (LSan does the same). After
 * the threads are stopped nothing here calls malloc: a stopped thread may
 * hold malloc's locks. All memory comes from mmap.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <asm/prctl.h>

#include "shim.h"

#define MAX_THREADS 4096
#define MAX_VMAS 65536
#define STOP_WAIT_MS 2000

enum { TAG_UNREACHED = 0, TAG_REACHABLE = 1, TAG_INDIRECT = 2 };
enum { T_REQUESTED = 1, T_STOPPED = 2, T_DONE = 3 };

struct stopped {
	pid_t tid;
	_Atomic int state;
	uint64_t sp, fs;
	uint64_t regs[NGREG];
};

struct vma {
	uint64_t start, end;
	bool readable;
};

static struct stopped *threads;
static int nthreads;
static _Atomic uint32_t release_word;
static int stop_signal;

static struct vma *vmas;
static size_t nvmas;

static struct mp_block *blocks;
static size_t nblocks;
static uint64_t *frontier;
static size_t nfrontier, cap_frontier;

static uint64_t linker_lo, linker_hi;
static uint64_t static_tls_bytes; /* PT_TLS sizes of every object, summed */

#define MAX_EXCLUDED 1024
static struct mp_range *excluded;
static size_t nexcluded;

static void *map(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static pid_t gettid_raw(void)
{
	return (pid_t)syscall(SYS_gettid);
}

/* ---- stopping the world ------------------------------------------------------- */

static void on_stop_signal(int sig, siginfo_t *si, void *ucv)
{
	(void)sig;
	(void)si;
	int saved = errno;
	pid_t me = gettid_raw();
	struct stopped *t = NULL;
	for (int i = 0; i < nthreads; i++)
		if (threads[i].tid == me)
			t = &threads[i];
	if (t && atomic_load(&t->state) == T_REQUESTED) {
		const ucontext_t *uc = ucv;
		for (int i = 0; i < NGREG; i++)
			t->regs[i] = (uint64_t)uc->uc_mcontext.gregs[i];
		t->sp = (uint64_t)uc->uc_mcontext.gregs[REG_RSP];
		unsigned long fs = 0;
		syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
		t->fs = fs;
		atomic_store(&t->state, T_STOPPED);
		while (!atomic_load(&release_word))
			syscall(SYS_futex, &release_word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	}
	errno = saved;
}

/* A real-time signal nobody uses, for stopping threads. */
static int pick_signal(void)
{
	for (int sig = SIGRTMAX; sig >= SIGRTMIN + 4; sig--) {
		struct sigaction old;
		if (sigaction(sig, NULL, &old) == 0 && !(old.sa_flags & SA_SIGINFO) &&
		    old.sa_handler == SIG_DFL) {
			struct sigaction sa;
			memset(&sa, 0, sizeof(sa));
			sa.sa_sigaction = on_stop_signal;
			sa.sa_flags = SA_SIGINFO | SA_RESTART;
			sigfillset(&sa.sa_mask);
			if (sigaction(sig, &sa, NULL) == 0)
				return sig;
		}
	}
	return 0;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Asks every thread not yet asked to stop; returns how many were new. */
static int stop_new_threads(pid_t self, pid_t writer, pid_t keeper)
{
	/* Other threads still run: out of their way at once (fd.c). */
	int fd = mp_fd_high(open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (fd < 0)
		return 0;
	int added = 0;
	char buf[4096];
	long n;
	while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
			off += d->d_reclen;
			pid_t tid = (pid_t)atoi(d->d_name);
			if (tid <= 0 || tid == self || tid == writer || tid == keeper)
				continue;
			/* The initial thread after its pthread_exit: a zombie,
			 * with no stack in use to scan, that no signal reaches. */
			char state = 0;
			long nthr;
			if (tid == getpid() && mp_self_stat(&state, &nthr) == 1 && state == 'Z')
				continue;
			bool known = false;
			for (int i = 0; i < nthreads && !known; i++)
				known = threads[i].tid == tid;
			if (known || nthreads == MAX_THREADS)
				continue;
			struct stopped *t = &threads[nthreads];
			t->tid = tid;
			atomic_store(&t->state, T_REQUESTED);
			nthreads++; /* the handler looks the thread up: count it first */
			syscall(SYS_tgkill, getpid(), tid, stop_signal);
			added++;
		}
	}
	close(fd);
	return added;
}

static long elapsed_ms(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Stops every other thread but memprof's; returns how many could not be
 * stopped (they block the signal, or are stuck in the kernel). */
static int stop_the_world(void)
{
	pid_t self = gettid_raw(), writer = mp_writer_tid(), keeper = mp_keeper_tid();
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	/* Threads can start threads until they are stopped: list again until
	 * a listing finds nobody new. */
	while (stop_new_threads(self, writer, keeper) > 0) {
		for (;;) {
			int waiting = 0;
			for (int i = 0; i < nthreads; i++)
				waiting += atomic_load(&threads[i].state) == T_REQUESTED;
			if (!waiting || elapsed_ms(&start) > STOP_WAIT_MS)
				break;
			struct timespec ts = { 0, 200 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (elapsed_ms(&start) > STOP_WAIT_MS)
			break;
	}
	int unstopped = 0;
	for (int i = 0; i < nthreads; i++)
		unstopped += atomic_load(&threads[i].state) != T_STOPPED;
	return unstopped;
}

static void restart_the_world(void)
{
	for (int i = 0; i < nthreads; i++)
		atomic_store(&threads[i].state, T_DONE);
	atomic_store(&release_word, 1);
	syscall(SYS_futex, &release_word, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* ---- memory map ---------------------------------------------------------------- */

static uint64_t hex(const char **s)
{
	uint64_t v = 0;
	for (;; (*s)++) {
		char c = **s;
		if (c >= '0' && c <= '9')
			v = v * 16 + (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = v * 16 + (uint64_t)(c - 'a' + 10);
		else
			return v;
	}
}

/* /proc/self/maps, read with plain syscalls into an mmap'd table. */
static void read_vmas(void)
{
	int fd = mp_fd_high(open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
	if (fd < 0)
		return;
	char buf[8192];
	size_t have = 0;
	for (;;) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		size_t line_start = 0;
		for (size_t i = 0; i < have; i++) {
			if (buf[i] != '\n')
				continue;
			const char *s = buf + line_start;
			uint64_t lo = hex(&s);
			s++;
			uint64_t hi = hex(&s);
			if (nvmas < MAX_VMAS && *s == ' ')
				vmas[nvmas++] = (struct vma){ lo, hi, s[1] == 'r' };
			line_start = i + 1;
		}
		memmove(buf, buf + line_start, have - line_start);
		have -= line_start;
	}
	close(fd);
}

static const struct vma *vma_of(uint64_t addr)
{
	for (size_t i = 0; i < nvmas; i++)
		if (addr >= vmas[i].start && addr < vmas[i].end)
			return &vmas[i];
	return NULL;
}

/* ---- marking ---------------------------------------------------------------------- */

/* Heapsort by address: qsort may call malloc, which a stopped thread may
 * have locked. */
static void sift_down(struct mp_block *a, size_t root, size_t n)
{
	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= n)
			return;
		if (child + 1 < n && a[child + 1].addr > a[child].addr)
			child++;
		if (a[root].addr >= a[child].addr)
			return;
		struct mp_block t = a[root];
		a[root] = a[child];
		a[child] = t;
		root = child;
	}
}

static void sort_blocks(struct mp_block *a, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(a, i, n);
	for (size_t end = n; end-- > 1;) {
		struct mp_block t = a[0];
		a[0] = a[end];
		a[end] = t;
		sift_down(a, 0, end);
	}
}

/* The block p points into (interior pointers count, as in LSan), or -1. */
static long find_block(uint64_t p)
{
	size_t lo = 0, hi = nblocks;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (blocks[mid].addr <= p)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return -1;
	const struct mp_block *b = &blocks[lo - 1];
	if (p < b->addr + b->size || p == b->addr)
		return (long)(lo - 1);
	return -1;
}

static void push(size_t i)
{
	if (nfrontier == cap_frontier) {
		size_t ncap = cap_frontier ? cap_frontier * 2 : 65536;
		void *n = frontier ? mremap(frontier, cap_frontier * sizeof(*frontier),
					    ncap * sizeof(*frontier), MREMAP_MAYMOVE)
				   : map(ncap * sizeof(*frontier));
		if (!n || n == MAP_FAILED) {
			mp_log("out of memory in the leak check: some leaks may go unreported");
			return;
		}
		frontier = n;
		cap_frontier = ncap;
	}
	frontier[nfrontier++] = i;
}

/* Marks every block a word of [lo, hi) points into with tag; reachable
 * ones also go on the frontier. A block's pointer to itself does not
 * count (self is its index, or -1). */
static void scan_words(uint64_t lo, uint64_t hi, uint64_t tag, long self)
{
	lo = (lo + 7) & ~7ULL;
	for (uint64_t p = lo; p + 8 <= hi; p += 8) {
		uint64_t v = *(const uint64_t *)p;
		if (v < 16384 || (v >> 47) != 0 || v < blocks[0].addr)
			continue;
		long i = find_block(v);
		if (i < 0 || i == self || blocks[i].tag != TAG_UNREACHED)
			continue;
		blocks[i].tag = tag;
		if (tag == TAG_REACHABLE)
			push((size_t)i);
	}
}

/* A root range, less the shim's own memory in it. */
static void scan_root(uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < nexcluded && lo < hi; i++) {
		const struct mp_range *x = &excluded[i];
		if (x->hi <= lo || x->lo >= hi)
			continue;
		if (x->lo > lo)
			scan_root(lo, x->lo);
		lo = x->hi;
	}
	if (lo < hi)
		scan_words(lo, hi, TAG_REACHABLE, -1);
}

static void collect_exclusions(void)
{
	nexcluded = 0;
	nexcluded += mp_ring_regions(excluded + nexcluded, MAX_EXCLUDED - nexcluded);
	nexcluded += mp_live_regions(excluded + nexcluded, MAX_EXCLUDED - nexcluded);
	nexcluded += mp_cpu_regions(excluded + nexcluded, MAX_EXCLUDED - nexcluded);
	struct mp_range ours[] = {
		{ (uint64_t)(uintptr_t)blocks, (uint64_t)(uintptr_t)(blocks + nblocks) },
		{ (uint64_t)(uintptr_t)frontier, (uint64_t)(uintptr_t)(frontier + cap_frontier) },
		{ (uint64_t)(uintptr_t)threads, (uint64_t)(uintptr_t)(threads + MAX_THREADS) },
	};
	for (size_t i = 0; i < 3 && nexcluded < MAX_EXCLUDED; i++)
		excluded[nexcluded++] = ours[i];
}

static void flood(void)
{
	while (nfrontier) {
		size_t i = frontier[--nfrontier];
		scan_words(blocks[i].addr, blocks[i].addr + blocks[i].size, TAG_REACHABLE, (long)i);
	}
}

static int globals_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uint64_t lo = info->dlpi_addr + ph->p_vaddr;
		bool ours = false;
		for (int j = 0; j < info->dlpi_phnum; j++) {
			const ElfW(Phdr) *x = &info->dlpi_phdr[j];
			uint64_t xlo = info->dlpi_addr + x->p_vaddr;
			ours |= x->p_type == PT_LOAD && mp_self_lo >= xlo && mp_self_lo < xlo + x->p_memsz;
		}
		/* Our own tables hold the address of every sampled block. */
		if (ours)
			return 0;
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W) && ph->p_memsz)
			scan_root(lo, lo + ph->p_memsz);
		if (ph->p_type == PT_TLS)
			static_tls_bytes += (ph->p_memsz + ph->p_align) & ~(ph->p_align ? ph->p_align - 1 : 0);
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) &&
		    info->dlpi_addr == getauxval(AT_BASE) && getauxval(AT_BASE)) {
			linker_lo = lo;
			linker_hi = lo + ph->p_memsz;
		}
	}
	return 0;
}

/* A thread's roots: registers, the stack from sp up, and its static TLS,
 * which lies just below the thread pointer (for threads other than the
 * first, at the top of the stack mapping, already scanned), followed by
 * the thread descriptor. */
static void scan_thread(const uint64_t *regs, int nregs, uint64_t sp, uint64_t fs)
{
	scan_root((uint64_t)(uintptr_t)regs, (uint64_t)(uintptr_t)(regs + nregs));
	const struct vma *st = vma_of(sp);
	if (st && st->readable)
		scan_root(sp, st->end);
	const struct vma *tls = vma_of(fs);
	if (tls && tls != st && tls->readable) {
		/* Room for the surplus glibc keeps for later dlopens, too. */
		uint64_t below = static_tls_bytes + 4096, above = 4096;
		uint64_t lo = fs - tls->start > below ? fs - below : tls->start;
		uint64_t hi = tls->end - fs > above ? fs + above : tls->end;
		scan_root(lo, hi);
	}
}

__attribute__((noinline)) static void mark_all(int unstopped)
{
	/* Spill this thread's registers onto its stack, which is scanned. */
	__builtin_unwind_init();
	(void)unstopped;
	collect_exclusions();
	static_tls_bytes = 0;
	dl_iterate_phdr(globals_cb, NULL);
	/* What the dynamic linker allocates (dynamic TLS, its own tables) is
	 * reachable through structures we do not scan: LSan counts it as
	 * reachable too. */
	for (size_t i = 0; i < nblocks; i++)
		if (blocks[i].caller >= linker_lo && blocks[i].caller < linker_hi &&
		    blocks[i].tag == TAG_UNREACHED) {
			blocks[i].tag = TAG_REACHABLE;
			push(i);
		}
	uint64_t self_regs[1] = { 0 }, sp;
	unsigned long fs = 0;
	syscall(SYS_arch_prctl, ARCH_GET_FS, &fs);
	/* From the stack pointer itself, so that the registers spilled above
	 * are scanned too. */
	__asm__ volatile("mov %%rsp, %0" : "=r"(sp));
	scan_thread(self_regs, 0, sp, fs);
	for (int i = 0; i < nthreads; i++)
		if (atomic_load(&threads[i].state) == T_STOPPED)
			scan_thread(threads[i].regs, NGREG, threads[i].sp, threads[i].fs);
	flood();
	for (size_t i = 0; i < nblocks; i++)
		if (blocks[i].tag == TAG_UNREACHED || blocks[i].tag == TAG_INDIRECT)
			scan_words(blocks[i].addr, blocks[i].addr + blocks[i].size, TAG_INDIRECT, (long)i);
}

/* ---- the check ----------------------------------------------------------------------- */

struct check {
	int status;
	int exit_now; /* exit code, or -1 to let the program exit as it wanted */
};

static void report(struct check *c, int unstopped)
{
	size_t nleaks = 0;
	for (size_t i = 0; i < nblocks; i++)
		nleaks += blocks[i].tag != TAG_REACHABLE;
	struct mp_leak *leaks = nleaks ? map(nleaks * sizeof(*leaks)) : NULL;
	size_t n = 0;
	for (size_t i = 0; i < nblocks && leaks; i++)
		if (blocks[i].tag != TAG_REACHABLE)
			leaks[n++] = (struct mp_leak){
				blocks[i].addr, blocks[i].size,
				blocks[i].tag == TAG_INDIRECT ? MP_LEAK_INDIRECT : MP_LEAK_DIRECT, 0,
			};
	struct mp_leak_report r;
	char *text = NULL;
	if (mp_writer_leak_exchange(leaks, n, c->status, (uint32_t)unstopped, mp_cfg.suppressions,
				    &r, &text) != 0) {
		mp_log("could not get the leak report from the collector; %zu block(s) unreachable", n);
		if (n && c->status == 0)
			c->exit_now = mp_cfg.leak_exitcode;
		return;
	}
	for (size_t off = 0; off < r.text_len;) {
		ssize_t w = write(STDERR_FILENO, text + off, r.text_len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	if (r.leaked_count && c->status == 0)
		c->exit_now = mp_cfg.leak_exitcode;
}

static int check_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct check *c = arg;
	(void)info;
	(void)size;
	uint64_t want = mp_live_total() + 1024;
	blocks = map(want * 2 * sizeof(*blocks));
	threads = map(MAX_THREADS * sizeof(*threads));
	vmas = map(MAX_VMAS * sizeof(*vmas));
	excluded = map(MAX_EXCLUDED * sizeof(*excluded));
	if (!blocks || !threads || !vmas || !excluded || !(stop_signal = pick_signal())) {
		mp_log("cannot set up the leak check");
		return 1;
	}
	/* The writer sends what is queued before the world stops: stopped
	 * threads add nothing, and then the socket is ours. */
	mp_live_fork_prepare();
	int unstopped = stop_the_world();
	mp_writer_park(mp_cfg.full_trace ? 10000 : 1000);
	read_vmas();
	nblocks = mp_live_copy(blocks, want * 2);
	sort_blocks(blocks, nblocks);
	if (nblocks)
		mark_all(unstopped);
	report(c, unstopped);
	/* MEMPROF_LEAK_EXITCODE=0 (what memprof check sets) changes nothing:
	 * the process exits as it would, and only the front end's status
	 * says that something leaked. */
	if (c->exit_now >= 0 && c->exit_now != c->status) {
		mp_writer_bye();
		_exit(c->exit_now);
	}
	restart_the_world();
	mp_live_fork_parent();
	return 1;
}

static void leak_check_at_exit(int status, void *arg)
{
	(void)arg;
	int expected = MP_STATE_ON;
	if (!atomic_compare_exchange_strong(&mp_state, &expected, MP_STATE_OFF))
		return;
	mp_tls.busy++;
	/* stdio would flush after this handler, but a leaking process leaves
	 * with _exit: flush now, before any thread is stopped (one might hold
	 * a stream's lock), so the program's output is not lost. */
	fflush(NULL);
	struct check c = { status, -1 };
	dl_iterate_phdr(check_cb, &c);
	mp_writer_bye();
	mp_tls.busy--;
}

void mp_leak_setup(void)
{
	if (mp_cfg.leak_check)
		on_exit(leak_check_at_exit, NULL);
}
