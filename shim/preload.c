/*
 * The allocator entry points the host program calls, and the bootstrap that
 * finds the real ones. Each wrapper calls the real function and then does one
 * subtraction and one compare (mp_note_alloc); free() does one load
 * (mp_live_maybe). Sampling, reporting and everything else is in sample.c.
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

struct mp_real_fns mp_real;
_Atomic int mp_real_ready;

/*
 * dlsym() may allocate (glibc's dlerror state uses calloc) before we know
 * where the real calloc is. Those few early requests come from this arena;
 * free() recognises its pointers and ignores them, realloc() copies out.
 * Each block is preceded by its size so that realloc knows how much to copy.
 */
#define EARLY_ARENA_BYTES (64 * 1024)
static _Alignas(64) unsigned char early_arena[EARLY_ARENA_BYTES];
static _Atomic size_t early_used;

static bool is_early(const void *p)
{
	return (const unsigned char *)p >= early_arena &&
	       (const unsigned char *)p < early_arena + EARLY_ARENA_BYTES;
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
	return early_arena + start; /* static storage: already zeroed */
}

static size_t early_size(const void *p)
{
	size_t size;
	memcpy(&size, (const unsigned char *)p - 8, sizeof(size));
	return size;
}

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

static void use_libc_fallbacks(void)
{
	mp_real.malloc = __libc_malloc;
	mp_real.free = __libc_free;
	mp_real.calloc = __libc_calloc;
	mp_real.realloc = __libc_realloc;
	mp_real.posix_memalign = libc_posix_memalign;
	mp_real.aligned_alloc = __libc_memalign;
	mp_real.memalign = __libc_memalign;
	mp_real.valloc = __libc_valloc;
	mp_real.pvalloc = __libc_pvalloc;
}

int mp_resolve_real(void)
{
	int rc = 0;
#define RESOLVE(name)                                                             \
	do {                                                                      \
		*(void **)&mp_real.name = dlsym(RTLD_NEXT, #name);                \
		if (!mp_real.name)                                                \
			rc = -1;                                                  \
	} while (0)
	/* The order matters: dlsym may call calloc, so calloc comes first
	 * among the functions the arena stands in for. */
	RESOLVE(calloc);
	RESOLVE(malloc);
	RESOLVE(free);
	RESOLVE(realloc);
	RESOLVE(posix_memalign);
	RESOLVE(aligned_alloc);
	RESOLVE(memalign);
	RESOLVE(valloc);
	RESOLVE(pvalloc);
	RESOLVE(pthread_create);
#undef RESOLVE
	if (rc != 0 || !mp_real.malloc || !mp_real.free)
		use_libc_fallbacks();
	atomic_store_explicit(&mp_real_ready, 1, memory_order_release);
	return rc;
}

/* Until mp_real is complete, allocations come from the early arena. */
static inline bool ready(void)
{
	return MP_LIKELY(atomic_load_explicit(&mp_real_ready, memory_order_acquire));
}

static void *slow_alloc(size_t size, size_t align)
{
	mp_init();
	if (ready())
		return NULL; /* caller retries with the real allocator */
	return early_alloc(size, align);
}

MP_EXPORT void *malloc(size_t size)
{
	if (!ready()) {
		void *p = slow_alloc(size, 16);
		if (p || !ready())
			return p;
	}
	void *p = mp_real.malloc(size);
	if (MP_LIKELY(p))
		mp_note_alloc(p, size);
	return p;
}

MP_EXPORT void free(void *p)
{
	if (MP_UNLIKELY(!p || is_early(p)))
		return;
	if (MP_UNLIKELY(!ready())) {
		mp_init();
		if (!ready())
			return; /* cannot be ours to free; leaking beats crashing */
	}
	if (MP_UNLIKELY(mp_live_maybe(p)))
		mp_sample_free(p);
	mp_real.free(p);
}

MP_EXPORT void *calloc(size_t n, size_t size)
{
	size_t total;
	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if (!ready()) {
		void *p = slow_alloc(total, 16);
		if (p || !ready())
			return p;
	}
	void *p = mp_real.calloc(n, size);
	if (MP_LIKELY(p))
		mp_note_alloc(p, total);
	return p;
}

MP_EXPORT void *realloc(void *old, size_t size)
{
	if (!ready() || MP_UNLIKELY(old && is_early(old))) {
		mp_init();
		void *p = ready() ? malloc(size) : early_alloc(size, 16);
		if (p && old) {
			size_t n = early_size(old);
			memcpy(p, old, n < size ? n : size);
		}
		return p;
	}
	/* Report the free first: once the real realloc returns, another thread
	 * may be handed the old address. */
	if (old && MP_UNLIKELY(mp_live_maybe(old)))
		mp_sample_free(old);
	void *p = mp_real.realloc(old, size);
	if (MP_LIKELY(p))
		mp_note_alloc(p, size);
	return p;
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
	if (!ready()) {
		void *p = slow_alloc(size, align);
		if (p || !ready()) {
			if (!p)
				return ENOMEM;
			*out = p;
			return 0;
		}
	}
	int rc = mp_real.posix_memalign(out, align, size);
	if (MP_LIKELY(rc == 0))
		mp_note_alloc(*out, size);
	return rc;
}

/* The remaining aligned allocators share one shape: call the real function,
 * then account for the block. */
#define ALIGNED_WRAPPER(name, params, args, size_expr, early_align)              \
	MP_EXPORT void *name params                                               \
	{                                                                         \
		if (!ready()) {                                                   \
			void *p = slow_alloc(size_expr, early_align);             \
			if (p || !ready())                                        \
				return p;                                         \
		}                                                                 \
		void *p = mp_real.name args;                                      \
		if (MP_LIKELY(p))                                                 \
			mp_note_alloc(p, size_expr);                              \
		return p;                                                         \
	}

ALIGNED_WRAPPER(aligned_alloc, (size_t align, size_t size), (align, size), size, align)
ALIGNED_WRAPPER(memalign, (size_t align, size_t size), (align, size), size, align)
ALIGNED_WRAPPER(valloc, (size_t size), (size), size, 4096)
ALIGNED_WRAPPER(pvalloc, (size_t size), (size), size, 4096)
