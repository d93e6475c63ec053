/*
 * The allocator entry points the host program calls, and the bootstrap that
 * finds the real ones. Each wrapper does one subtraction and one compare
 * and tail-calls the real function through mp_real; free() compares the
 * word before the block with a marker (see "Sampled blocks" below). Until
 * the real functions are known,
 * mp_real points at the boot_* functions below, so the fast path needs no
 * "are we ready" test. Sampling, reporting and everything else is in
 * sample.c.
 */
#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

#define MP_EXPORT __attribute__((visibility("default")))


/*
 * dlsym() may allocate (glibc's dlerror state uses calloc) before we know
 * where the real calloc is. Those few early requests come from this arena;
 * free() ignores its pointers, realloc() copies out. Each block is preceded
 * by its size (so that realloc knows how much to copy) and the sampled
 * blocks' marker, and is marked in the live filter for good, so that free()
 * need not test for them on its fast path whichever test it uses (glibc
 * 2.36's dlsym allocates nothing: usually the arena stays empty and costs
 * nothing at all).
 */
#define EARLY_ARENA_BYTES (64 * 1024)
static _Alignas(64) unsigned char early_arena[EARLY_ARENA_BYTES];
static _Atomic size_t early_used;

static inline bool is_early(const void *p)
{
	return (uintptr_t)p - (uintptr_t)early_arena < EARLY_ARENA_BYTES;
}

static void *early_alloc(size_t size, size_t align)
{
	if (align < 16)
		align = 16;
	if (size > EARLY_ARENA_BYTES)
		return NULL;
	size_t cur = atomic_load(&early_used), start;
	do {
		start = (cur + 16 + align - 1) & ~(align - 1);
		if (start + size > EARLY_ARENA_BYTES)
			return NULL;
	} while (!atomic_compare_exchange_weak(&early_used, &cur, start + size));
	uint64_t mark = MP_HDR_MARK;
	memcpy(early_arena + start - 16, &size, sizeof(size));
	memcpy(early_arena + start - 8, &mark, sizeof(mark));
	mp_live_mark_forever(early_arena + start);
	return early_arena + start; /* static storage: already zeroed */
}

static size_t early_size(const void *p)
{
	size_t size;
	memcpy(&size, (const unsigned char *)p - 16, sizeof(size));
	return size;
}

/* ---- before the real allocator is known ------------------------------- */

/* Resolve (or learn that this thread is resolving right now: dlsym calling
 * calloc), then serve from the real allocator or the early arena. */
static bool boot(void)
{
	mp_init();
	return atomic_load_explicit(&mp_real_ready, memory_order_acquire);
}

static void *boot_malloc(size_t size)
{
	return boot() ? mp_real.malloc(size) : early_alloc(size, 16);
}

static void *boot_calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return boot() ? mp_real.calloc(n, size) : early_alloc(total, 16);
}

static void *boot_realloc(void *old, size_t size)
{
	if (boot())
		return mp_real.realloc(old, size);
	void *p = early_alloc(size, 16);
	if (p && old)
		memcpy(p, old, early_size(old) < size ? early_size(old) : size);
	return p;
}

static void boot_free(void *p)
{
	if (boot())
		mp_real.free(p);
	/* else: it can only be an early block, which is never reused */
}

static int boot_posix_memalign(void **out, size_t align, size_t size)
{
	if (boot())
		return mp_real.posix_memalign(out, align, size);
	return (*out = early_alloc(size, align)) ? 0 : ENOMEM;
}

static void *boot_memalign(size_t align, size_t size)
{
	return boot() ? mp_real.memalign(align, size) : early_alloc(size, align);
}

static void *boot_aligned_alloc(size_t align, size_t size)
{
	return boot() ? mp_real.aligned_alloc(align, size) : early_alloc(size, align);
}

static void *boot_valloc(size_t size)
{
	return boot() ? mp_real.valloc(size) : early_alloc(size, 4096);
}

static void *boot_pvalloc(size_t size)
{
	return boot() ? mp_real.pvalloc(size) : early_alloc((size + 4095) & ~(size_t)4095, 4096);
}

static size_t boot_malloc_usable_size(void *p)
{
	if (boot())
		return mp_real.malloc_usable_size(p);
	return p && is_early(p) ? early_size(p) : 0;
}

struct mp_real_fns mp_real = {
	.malloc = boot_malloc,
	.free = boot_free,
	.calloc = boot_calloc,
	.realloc = boot_realloc,
	.posix_memalign = boot_posix_memalign,
	.aligned_alloc = boot_aligned_alloc,
	.memalign = boot_memalign,
	.valloc = boot_valloc,
	.pvalloc = boot_pvalloc,
	.malloc_usable_size = boot_malloc_usable_size,
};
_Atomic int mp_real_ready;
bool mp_malloc_is_glibc;
bool mp_headed;
static size_t page_size = 4096;

/* glibc's own names for its allocator, the fallback if dlsym fails. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);
extern size_t malloc_usable_size(void *);

static int libc_posix_memalign(void **out, size_t align, size_t size)
{
	if (align < sizeof(void *) || (align & (align - 1)))
		return EINVAL;
	void *p = __libc_memalign(align, size);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

/* glibc's, found by dlsym(RTLD_NEXT) from here: the shim's own
 * malloc_usable_size is the one the program sees. */
static size_t libc_malloc_usable_size(void *p)
{
	static size_t (*fn)(void *);
	if (!fn)
		*(void **)&fn = dlsym(RTLD_NEXT, "malloc_usable_size");
	return fn ? fn(p) : 0;
}

/* Where glibc's libc.so is loaded: its PT_LOAD ranges, found once by the
 * object that holds malloc. Not dladdr per function: glibc's dladdr walks
 * every symbol of libc to name the nearest one, and the eight calls it
 * took were 5% of the CPU of a shell loop running /bin/true under the
 * shim (perf, _dl_addr). */
#define LIBC_RANGES 8

struct libc_ranges {
	const void *probe;
	int n;
	uintptr_t lo[LIBC_RANGES], hi[LIBC_RANGES];
};

static int libc_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct libc_ranges *lr = arg;
	uintptr_t probe = (uintptr_t)lr->probe;
	(void)size;
	bool holds = false;
	for (int i = 0; i < info->dlpi_phnum && !holds; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		holds = ph->p_type == PT_LOAD && probe >= lo && probe < lo + ph->p_memsz;
	}
	if (!holds)
		return 0;
	const char *name = info->dlpi_name ? info->dlpi_name : "";
	const char *base = strrchr(name, '/');
	if (strncmp(base ? base + 1 : name, "libc.so", 7) != 0)
		return 1; /* found, and not libc */
	for (int i = 0; i < info->dlpi_phnum && lr->n < LIBC_RANGES; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD)
			continue;
		lr->lo[lr->n] = info->dlpi_addr + ph->p_vaddr;
		lr->hi[lr->n] = lr->lo[lr->n] + ph->p_memsz;
		lr->n++;
	}
	return 1;
}

/* Whether fn lives in the libc.so of lr (empty if malloc's object is not
 * glibc's libc.so). */
static bool in_libc(const struct libc_ranges *lr, void *fn)
{
	for (int i = 0; fn && i < lr->n; i++)
		if ((uintptr_t)fn >= lr->lo[i] && (uintptr_t)fn < lr->hi[i])
			return true;
	return false;
}

int mp_resolve_real(void)
{
	/* Fill a copy, then publish it field by field: each field goes from
	 * its boot_* function to the real one in a single store, and until all
	 * are set (mp_real_ready) the boot functions keep serving. dlsym may
	 * call calloc meanwhile, which then comes from the early arena. */
	struct mp_real_fns r = { 0 };
	*(void **)&r.calloc = dlsym(RTLD_NEXT, "calloc");
	*(void **)&r.malloc = dlsym(RTLD_NEXT, "malloc");
	*(void **)&r.free = dlsym(RTLD_NEXT, "free");
	*(void **)&r.realloc = dlsym(RTLD_NEXT, "realloc");
	*(void **)&r.posix_memalign = dlsym(RTLD_NEXT, "posix_memalign");
	*(void **)&r.aligned_alloc = dlsym(RTLD_NEXT, "aligned_alloc");
	*(void **)&r.memalign = dlsym(RTLD_NEXT, "memalign");
	*(void **)&r.valloc = dlsym(RTLD_NEXT, "valloc");
	*(void **)&r.pvalloc = dlsym(RTLD_NEXT, "pvalloc");
	*(void **)&r.malloc_usable_size = dlsym(RTLD_NEXT, "malloc_usable_size");
	int rc = 0;
	if (!r.malloc || !r.free || !r.calloc || !r.realloc || !r.posix_memalign ||
	    !r.aligned_alloc || !r.memalign || !r.valloc || !r.pvalloc || !r.malloc_usable_size) {
		r = (struct mp_real_fns){
			.malloc = __libc_malloc,
			.free = __libc_free,
			.calloc = __libc_calloc,
			.realloc = __libc_realloc,
			.posix_memalign = libc_posix_memalign,
			.aligned_alloc = __libc_memalign,
			.memalign = __libc_memalign,
			.valloc = __libc_valloc,
			.pvalloc = __libc_pvalloc,
			.malloc_usable_size = libc_malloc_usable_size,
		};
		rc = -1;
	}
	*(void **)&r.pthread_create = dlsym(RTLD_NEXT, "pthread_create");
	*(void **)&r.sigaction = dlsym(RTLD_NEXT, "sigaction");
	*(void **)&r.signal = dlsym(RTLD_NEXT, "signal");
	*(void **)&r.execve = dlsym(RTLD_NEXT, "execve");
	*(void **)&r.execvpe = dlsym(RTLD_NEXT, "execvpe");
	*(void **)&r.fexecve = dlsym(RTLD_NEXT, "fexecve");
	*(void **)&r.execveat = dlsym(RTLD_NEXT, "execveat");
	*(void **)&r.setitimer = dlsym(RTLD_NEXT, "setitimer");
	*(void **)&r.timer_create = dlsym(RTLD_NEXT, "timer_create");
	*(void **)&r.dlclose = dlsym(RTLD_NEXT, "dlclose");
	*(void **)&r.fork = dlsym(RTLD_NEXT, "fork");
	mp_real = r;
	struct libc_ranges lr = { .probe = *(void **)&r.malloc };
	if (lr.probe)
		dl_iterate_phdr(libc_cb, &lr);
	mp_malloc_is_glibc = in_libc(&lr, *(void **)&r.malloc);
	/* Headers need every function that makes or takes a block to be
	 * glibc's: its chunk layout is what makes the marker unambiguous. */
	void *const block_fns[] = {
		*(void **)&r.free, *(void **)&r.calloc, *(void **)&r.realloc,
		*(void **)&r.memalign, *(void **)&r.aligned_alloc, *(void **)&r.posix_memalign,
		*(void **)&r.malloc_usable_size,
	};
	mp_headed = mp_malloc_is_glibc;
	for (size_t i = 0; i < sizeof(block_fns) / sizeof(block_fns[0]); i++)
		mp_headed = mp_headed && in_libc(&lr, block_fns[i]);
	long ps = sysconf(_SC_PAGESIZE);
	if (ps > 0)
		page_size = (size_t)ps;
	atomic_store_explicit(&mp_real_ready, 1, memory_order_release);
	return rc;
}

void *mp_real_symbol(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

/* ---- the entry points ---------------------------------------------------- */

/*
 * The countdown is taken down before the real call, so that when no sample
 * is due (almost always) the real function is tail-called: the wrapper adds
 * a TLS subtraction and a compare, and no stack frame. When one is due, the
 * _sampled twin calls the real function and records the block.
 */
static inline bool due(size_t size)
{
	struct mp_tls *t = &mp_tls;
	t->countdown -= (int64_t)size;
	return MP_UNLIKELY(t->countdown <= 0);
}

/* After the real call on the sampled path: records p, or gives the bytes
 * back to the countdown if the allocation failed. */
static void *sampled(void *p, size_t size)
{
	if (MP_LIKELY(p))
		mp_sample_slow(p, size);
	else
		mp_tls.countdown += (int64_t)size;
	return p;
}

/*
 * Sampled blocks. Under glibc's allocator a block taken on the sampled path
 * gets a header: it is allocated hdr (16, or the alignment asked for) bytes
 * longer, and the program is given base + hdr. The 16 bytes before that
 * pointer hold hdr's logarithm (with the flag and id of shim.h's
 * MP_HDR_* beside it) and MP_HDR_MARK. free() compares the word before any
 * pointer with the marker: for a block of glibc's own that word is its
 * chunk's size, a multiple of 16 plus flags in bits 0-2, so bit 3 is clear,
 * and the marker has it set. So the test is exact, reads a word glibc's
 * free reads next anyway, and needs no table. Other allocators promise
 * nothing about the bytes before a block; under them sampled blocks have
 * no header and free() asks the live filter (live.c) instead.
 */
static inline bool has_mark(const void *p)
{
	uint64_t w;
	memcpy(&w, (const unsigned char *)p - 8, sizeof(w));
	return w == MP_HDR_MARK;
}

static inline bool maybe_sampled(const void *p)
{
	if (MP_LIKELY(mp_headed))
		return p && MP_UNLIKELY(has_mark(p));
	return mp_live_maybe(p);
}

static size_t hdr_of(const void *p)
{
	return (size_t)1 << (*mp_hdr_word(p) & MP_HDR_LOG2_MASK);
}

/* Writes the header into the real block base; returns the program's
 * pointer, or NULL if base is. */
static void *put_header(void *base, size_t hdr)
{
	if (!base)
		return NULL;
	unsigned char *p = (unsigned char *)base + hdr;
	uint64_t h = (uint64_t)__builtin_ctzll(hdr), mark = MP_HDR_MARK;
	memcpy(p - 16, &h, sizeof(h));
	memcpy(p - 8, &mark, sizeof(mark));
	return p;
}

/* The header's size for an alignment: at least 16, and a multiple of the
 * alignment so that base + hdr keeps it; 0 if the alignment is not a
 * power of two (the block then goes unsampled: see align_headed). */
static size_t hdr_for(size_t align)
{
	if (align & (align - 1))
		return 0;
	return align > 16 ? align : 16;
}

static bool grow_by(size_t size, size_t hdr, size_t *total)
{
	if (__builtin_add_overflow(size, hdr, total)) {
		errno = ENOMEM;
		return false;
	}
	return true;
}

/* The sampled path of each allocator under glibc: the real function (or
 * memalign, for the aligned ones) with room for the header. */
static void *malloc_headed(size_t size)
{
	size_t total;
	if (!grow_by(size, 16, &total))
		return sampled(NULL, size);
	return sampled(put_header(mp_real.malloc(total), 16), size);
}

static void *calloc_headed(size_t n, size_t size)
{
	size_t bytes, total;
	if (__builtin_mul_overflow(n, size, &bytes)) {
		errno = ENOMEM;
		return sampled(NULL, n * size);
	}
	if (!grow_by(bytes, 16, &total))
		return sampled(NULL, bytes);
	return sampled(put_header(mp_real.calloc(1, total), 16), bytes);
}

/* bytes is what to allocate, size what to record (pvalloc rounds up). An
 * alignment that is not a power of two (which glibc rounds up, or refuses)
 * is left to the real function and not sampled; the countdown stays due,
 * so the next allocation is. */
static void *align_headed(void *(*real)(size_t, size_t), size_t align, size_t size, size_t bytes)
{
	size_t hdr = hdr_for(align), total;
	if (!hdr)
		return real(align, size);
	if (!grow_by(bytes, hdr, &total))
		return sampled(NULL, size);
	return sampled(put_header(mp_real.memalign(align, total), hdr), size);
}

static void *memalign_headed(size_t align, size_t size)
{
	return align_headed(mp_real.memalign, align, size, size);
}

static void *aligned_alloc_headed(size_t align, size_t size)
{
	return align_headed(mp_real.aligned_alloc, align, size, size);
}

static void *valloc_headed(size_t size)
{
	return align_headed(mp_real.memalign, page_size, size, size);
}

static void *pvalloc_headed(size_t size)
{
	/* pvalloc's block is whole pages, and at least one (recorded, as
	 * everywhere, at the size the program asked for). */
	size_t pages = size ? (size + page_size - 1) / page_size : 1;
	if (pages > SIZE_MAX / page_size) {
		errno = ENOMEM;
		return sampled(NULL, size);
	}
	return align_headed(mp_real.memalign, page_size, size, pages * page_size);
}

/* Called first thing in a function the entry point tail-called, with that
 * function's frame pointer (__builtin_frame_address makes the compiler keep
 * one there): the word at fp is the entry point's caller's rbp, the next
 * its return address, and its stack pointer is just above them. The stack
 * walk starts from that frame, and skips the four or five of the shim's
 * (a third of a full-trace unwind). Were the call not a tail call, the walk
 * would start in the entry point, whose frame capture_stack drops. */
static inline void note_entry(const uint64_t *fp)
{
	struct mp_tls *t = &mp_tls;
	t->entry_bp = fp[0];
	t->entry_ip = fp[1];
	t->entry_sp = (uint64_t)(uintptr_t)(fp + 2);
}

/* Each entry point: the tail call when no sample is due; when one is, the
 * _sampled twin takes the headed path under glibc, else records what the
 * real function returns. */
#define ALLOC_WRAPPER(name, params, args, size_expr)                               \
	static __attribute__((noinline)) void *name##_sampled params               \
	{                                                                           \
		note_entry(__builtin_frame_address(0));                             \
		void *p = mp_headed ? name##_headed args                            \
				    : sampled(mp_real.name args, size_expr);        \
		mp_tls.entry_sp = 0;                                                \
		return p;                                                           \
	}                                                                           \
	MP_EXPORT void *name params                                                 \
	{                                                                           \
		if (due(size_expr))                                                 \
			return name##_sampled args;                                 \
		return mp_real.name args;                                           \
	}

/* calloc's product may wrap: the real calloc then fails and the bytes are
 * given back. */
ALLOC_WRAPPER(malloc, (size_t size), (size), size)
ALLOC_WRAPPER(calloc, (size_t n, size_t size), (n, size), n * size)
ALLOC_WRAPPER(aligned_alloc, (size_t align, size_t size), (align, size), size)
ALLOC_WRAPPER(memalign, (size_t align, size_t size), (align, size), size)
ALLOC_WRAPPER(valloc, (size_t size), (size), size)
ALLOC_WRAPPER(pvalloc, (size_t size), (size), size)

/* The real block under a sampled (headed) or early pointer. */
static void *real_block(void *p)
{
	return mp_headed ? (unsigned char *)p - hdr_of(p) : p;
}

static __attribute__((noinline)) void free_slow(void *p)
{
	if (is_early(p))
		return; /* the early arena is never reused */
	/* Full trace's free, with nothing in between that it does not need:
	 * it is every other call the program makes to the allocator. Only
	 * with tallies on is there a header to read (the bytes before a block
	 * of another allocator's may not even be mapped: redis). */
	if (mp_tally_on) {
		uint64_t *w = mp_hdr_word(p), word = *w;
		if ((word & MP_HDR_TALLIED) && !mp_tls.busy) {
			*w = word & MP_HDR_LOG2_MASK;
			mp_tally_free(word);
			mp_real.free((unsigned char *)p - ((size_t)1 << (word & MP_HDR_LOG2_MASK)));
			return;
		}
	}
	mp_sample_free(p);
	mp_real.free(real_block(p));
}

MP_EXPORT void free(void *p)
{
	if (MP_UNLIKELY(maybe_sampled(p))) {
		free_slow(p);
		return;
	}
	mp_real.free(p);
}

/* Bytes the program may use at p, a headed block. */
static size_t headed_size(void *p)
{
	return mp_real.malloc_usable_size(real_block(p)) - hdr_of(p);
}

/* realloc of a block with a header: glibc resizes the real block (in place
 * or by mremap when it can), header and all, so a growing buffer costs
 * what it costs without memprof. The new block keeps its header whether
 * or not it is sampled; one that is not is simply never reported. */
static __attribute__((noinline)) void *realloc_headed(void *old, size_t size)
{
	if (size == 0) {
		free_slow(old); /* glibc frees and returns NULL */
		return NULL;
	}
	size_t hdr = hdr_of(old), total;
	if (!grow_by(size, hdr, &total))
		return NULL;
	/* Report the free first: once the real realloc returns, another
	 * thread may be handed the old address. */
	mp_sample_free(old);
	unsigned char *base = mp_real.realloc((unsigned char *)old - hdr, total);
	if (!base)
		return NULL;
	if (due(size))
		return sampled(base + hdr, size);
	return base + hdr;
}

/* realloc of a block without a header when the new one is to be sampled:
 * it needs one, so the contents move to a new block (once in the block's
 * life: from then on it has a header). old stays valid if that fails. */
static __attribute__((noinline)) void *realloc_to_headed(void *old, size_t size)
{
	if (!old)
		return malloc_headed(size);
	if (size == 0)
		return mp_real.realloc(old, 0);
	void *p = malloc_headed(size);
	if (!p)
		return NULL;
	size_t have = mp_real.malloc_usable_size(old);
	memcpy(p, old, have < size ? have : size);
	mp_real.free(old);
	return p;
}

/* realloc whose new block is to be sampled, the old one not (or no
 * longer: its free is reported). */
static __attribute__((noinline)) void *realloc_due(void *old, size_t size)
{
	if (mp_headed)
		return realloc_to_headed(old, size);
	return sampled(mp_real.realloc(old, size), size);
}

/* realloc of a block that may be sampled or early. */
static __attribute__((noinline)) void *realloc_marked(void *old, size_t size)
{
	if (is_early(old)) {
		void *p = malloc(size);
		if (p)
			memcpy(p, old, early_size(old) < size ? early_size(old) : size);
		return p;
	}
	if (mp_headed)
		return realloc_headed(old, size);
	mp_sample_free(old);
	if (due(size))
		return realloc_due(old, size);
	return mp_real.realloc(old, size);
}

/* Everything but the common case is out of line, so that the common case
 * is a tail call with no frame (sqlite3 reallocs every tenth call). */
MP_EXPORT void *realloc(void *old, size_t size)
{
	if (old && MP_UNLIKELY(maybe_sampled(old)))
		return realloc_marked(old, size);
	if (due(size))
		return realloc_due(old, size);
	return mp_real.realloc(old, size);
}

MP_EXPORT size_t malloc_usable_size(void *p)
{
	if (p && MP_UNLIKELY(maybe_sampled(p))) {
		if (is_early(p))
			return early_size(p);
		if (mp_headed)
			return headed_size(p);
	}
	return mp_real.malloc_usable_size(p);
}

MP_EXPORT void *reallocarray(void *old, size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(old, total);
}

MP_EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
	if (!due(size))
		return mp_real.posix_memalign(out, align, size);
	if (!mp_headed) {
		int rc = mp_real.posix_memalign(out, align, size);
		sampled(rc == 0 ? *out : NULL, size);
		return rc;
	}
	size_t hdr = hdr_for(align), total;
	if (!hdr || align < sizeof(void *)) /* glibc says EINVAL; not sampled */
		return mp_real.posix_memalign(out, align, size);
	if (!grow_by(size, hdr, &total)) {
		sampled(NULL, size);
		return ENOMEM;
	}
	void *base;
	int rc = mp_real.posix_memalign(&base, align, total);
	if (rc != 0) {
		sampled(NULL, size);
		return rc;
	}
	*out = sampled(put_header(base, hdr), size);
	return 0;
}
