/*
 * The allocator entry points the host program calls, and the bootstrap that
 * finds the real ones. Each wrapper does one subtraction and one compare
 * and tail-calls the real function through mp_real; free() does one load
 * and compare (mp_live_maybe), and a filter lookup when sampled blocks
 * are live. Until the real functions are known,
 * mp_real points at the boot_* functions below, so the fast path needs no
 * "are we ready" test. Sampling, reporting and everything else is in
 * sample.c.
 */
#include <dlfcn.h>
#include <errno.h>
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
 * by its size so that realloc knows how much to copy. Its blocks are marked
 * in the live filter for good, so that free() need not test for them on
 * its fast path (glibc 2.36's dlsym allocates nothing: usually the arena
 * stays empty and costs nothing at all).
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
	memcpy(early_arena + start - 8, &size, sizeof(size));
	mp_live_mark_forever(early_arena + start);
	return early_arena + start; /* static storage: already zeroed */
}

static size_t early_size(const void *p)
{
	size_t size;
	memcpy(&size, (const unsigned char *)p - 8, sizeof(size));
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
};
_Atomic int mp_real_ready;
bool mp_malloc_is_glibc;

/* glibc's own names for its allocator, the fallback if dlsym fails. */
extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void *__libc_pvalloc(size_t);

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
	int rc = 0;
	if (!r.malloc || !r.free || !r.calloc || !r.realloc || !r.posix_memalign ||
	    !r.aligned_alloc || !r.memalign || !r.valloc || !r.pvalloc) {
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
	mp_real = r;
	Dl_info info;
	const char *lib = dladdr(*(void **)&r.malloc, &info) && info.dli_fname ? info.dli_fname : "";
	const char *base = strrchr(lib, '/');
	mp_malloc_is_glibc = strncmp(base ? base + 1 : lib, "libc.so", 7) == 0;
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

#define ALLOC_WRAPPER(name, params, args, size_expr)                               \
	static __attribute__((noinline)) void *name##_sampled params               \
	{                                                                           \
		return sampled(mp_real.name args, size_expr);                       \
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

static __attribute__((noinline)) void free_slow(void *p)
{
	if (is_early(p))
		return; /* the early arena is never reused */
	mp_sample_free(p);
	mp_real.free(p);
}

MP_EXPORT void free(void *p)
{
	if (MP_UNLIKELY(mp_live_maybe(p))) {
		free_slow(p);
		return;
	}
	mp_real.free(p);
}

MP_EXPORT void *realloc(void *old, size_t size)
{
	if (old && MP_UNLIKELY(mp_live_maybe(old))) {
		if (is_early(old)) {
			void *p = malloc(size);
			if (p)
				memcpy(p, old, early_size(old) < size ? early_size(old) : size);
			return p;
		}
		/* Report the free first: once the real realloc returns,
		 * another thread may be handed the old address. */
		mp_sample_free(old);
	}
	if (due(size))
		return sampled(mp_real.realloc(old, size), size);
	return mp_real.realloc(old, size);
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
	int rc = mp_real.posix_memalign(out, align, size);
	sampled(rc == 0 ? *out : NULL, size);
	return rc;
}
