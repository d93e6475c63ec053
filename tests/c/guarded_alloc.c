/*
 * libguarded_alloc.so: a malloc replacement, preloaded after memprof, whose
 * every block starts a page right after an inaccessible one. memprof puts
 * no header on another allocator's blocks, and must never read the bytes
 * before one: redis (with its jemalloc) crashed in free() when the shim
 * read a header that was not there from a page that was not mapped.
 *
 * Layout of a block: a page holding its size and mapping, a PROT_NONE
 * page, then the program's bytes from a page boundary (or the alignment
 * asked for). Slow, and meant to be: only tests use it.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096UL
#define EXPORT __attribute__((visibility("default")))

struct info {
	size_t n;    /* bytes asked for */
	char *base;  /* the mapping, for munmap */
	size_t len;
};

static struct info *info_of(void *p)
{
	return (struct info *)((char *)p - 2 * PAGE);
}

static size_t pages_for(size_t n)
{
	return n ? (n + PAGE - 1) / PAGE * PAGE : PAGE;
}

/* A block aligned to align (a power of two, at least PAGE). */
static void *guarded(size_t align, size_t n)
{
	size_t data = pages_for(n), len;
	if (n > SIZE_MAX / 2 || __builtin_add_overflow(data, 2 * PAGE + align, &len)) {
		errno = ENOMEM;
		return NULL;
	}
	char *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	char *p = (char *)(((uintptr_t)m + 2 * PAGE + align - 1) & ~(uintptr_t)(align - 1));
	mprotect(p - PAGE, PAGE, PROT_NONE);
	*info_of(p) = (struct info){ n, m, len };
	return p;
}

EXPORT void *malloc(size_t n)
{
	return guarded(PAGE, n);
}

EXPORT void free(void *p)
{
	if (p)
		munmap(info_of(p)->base, info_of(p)->len);
}

EXPORT void *calloc(size_t a, size_t b)
{
	size_t n;
	if (__builtin_mul_overflow(a, b, &n)) {
		errno = ENOMEM;
		return NULL;
	}
	return malloc(n); /* fresh mappings are zeroed */
}

EXPORT void *realloc(void *p, size_t n)
{
	if (!p)
		return malloc(n);
	if (n == 0) {
		free(p);
		return NULL;
	}
	void *q = malloc(n);
	if (!q)
		return NULL;
	size_t old = info_of(p)->n;
	memcpy(q, p, old < n ? old : n);
	free(p);
	return q;
}

EXPORT void *memalign(size_t align, size_t n)
{
	if (align & (align - 1) || align > (1UL << 30)) {
		errno = EINVAL;
		return NULL;
	}
	return guarded(align > PAGE ? align : PAGE, n);
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
	return memalign(align, n);
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
	void *p = memalign(align, n);
	if (!p)
		return errno;
	*out = p;
	return 0;
}

EXPORT void *valloc(size_t n)
{
	return malloc(n);
}

EXPORT void *pvalloc(size_t n)
{
	return malloc(n);
}

/* The whole pages: pvalloc's contract, and true of every block here. */
EXPORT size_t malloc_usable_size(void *p)
{
	return p ? pages_for(info_of(p)->n) : 0;
}
