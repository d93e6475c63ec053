/*
 * target_alloc_api: every allocator entry point the shim wraps, used the
 * way the C library documents them, with the program checking what it
 * gets: alignment, zeroed memory from calloc, contents kept by realloc
 * (growing, shrinking, to and from NULL, to zero bytes), malloc_usable_size
 * at least what was asked and all of it writable. Run at MEMPROF_RATE=1
 * every block is a sampled one, so this is what the shim's sampled blocks
 * must look like to a program.
 *
 * Prints "ok BYTES" (BYTES: the bytes round_of asked for in all, every
 * allocating call counted at the size it asked for, reallocs included) and
 * exits 0, or names the first check that failed and exits 1. round_of
 * frees everything it allocates; given "leak", main keeps LEAK_BYTES in one
 * malloc, so that a profile's in-use figures at exit are exactly known.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LEAK_BYTES 40000
#define ROUNDS 200

static unsigned long asked; /* by round_of */
void *volatile held; /* the block left live on purpose */

static __attribute__((noreturn)) void fail(const char *what, size_t a, size_t b)
{
	printf("FAILED: %s (%zu, %zu)\n", what, a, b);
	exit(1);
}

/* Fills p with a pattern from seed, then checks it is still there. */
static void fill(void *p, size_t n, unsigned seed)
{
	unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		c[i] = (unsigned char)(seed + i * 7);
}

static void expect(const void *p, size_t n, unsigned seed, const char *what)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		if (c[i] != (unsigned char)(seed + i * 7))
			fail(what, i, n);
}

/* What a caller may do with malloc_usable_size: use every byte of it. */
static void use_all(void *p, size_t asked_for)
{
	size_t usable = malloc_usable_size(p);
	if (usable < asked_for)
		fail("malloc_usable_size below the size asked for", usable, asked_for);
	memset(p, 0xa5, usable);
}

static void aligned(const void *p, size_t align, const char *what)
{
	if (!p || (uintptr_t)p % align != 0)
		fail(what, (uintptr_t)p, align);
}

static void round_of(unsigned r)
{
	size_t n = 1 + (r * 37) % 3000;
	unsigned char *m = malloc(n);
	if (!m)
		fail("malloc", n, 0);
	asked += n;
	fill(m, n, r);
	aligned(m, n < 16 ? 8 : 16, "malloc alignment");

	/* realloc: grow, shrink, keep what fits. */
	m = realloc(m, n * 3);
	asked += n * 3;
	if (!m)
		fail("realloc up", n, 3);
	expect(m, n, r, "realloc up kept the contents");
	m = realloc(m, n / 2 + 1);
	asked += n / 2 + 1;
	if (!m)
		fail("realloc down", n, 2);
	expect(m, n / 2 + 1, r, "realloc down kept the contents");
	use_all(m, n / 2 + 1);
	free(m);

	/* realloc from NULL is malloc; to zero bytes frees. */
	void *z = realloc(NULL, n);
	if (!z)
		fail("realloc(NULL)", n, 0);
	asked += n;
	z = realloc(z, 0);
	free(z);

	size_t k = 1 + r % 50, each = 1 + r % 200;
	unsigned char *c = calloc(k, each);
	if (!c)
		fail("calloc", k, each);
	asked += k * each;
	for (size_t i = 0; i < k * each; i++)
		if (c[i])
			fail("calloc memory is zero", i, k * each);
	use_all(c, k * each);
	free(c);

	unsigned char *ra = reallocarray(NULL, k, each);
	if (!ra)
		fail("reallocarray", k, each);
	asked += k * each;
	fill(ra, k * each, r + 1);
	ra = reallocarray(ra, k, each * 2);
	asked += k * each * 2;
	if (!ra)
		fail("reallocarray up", k, each);
	expect(ra, k * each, r + 1, "reallocarray kept the contents");
	free(ra);

	size_t align = (size_t)8 << (r % 11); /* 8 .. 8192 */
	void *pm = NULL;
	if (posix_memalign(&pm, align, n) != 0)
		fail("posix_memalign", align, n);
	asked += n;
	aligned(pm, align, "posix_memalign alignment");
	use_all(pm, n);
	pm = realloc(pm, n + 100);
	asked += n + 100;
	if (!pm)
		fail("realloc of an aligned block", n, 100);
	free(pm);

	void *aa = aligned_alloc(align, n);
	aligned(aa, align, "aligned_alloc alignment");
	asked += n;
	use_all(aa, n);
	free(aa);

	void *ma = memalign(align, n);
	aligned(ma, align, "memalign alignment");
	asked += n;
	use_all(ma, n);
	free(ma);

	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	if (r % 10 == 0) {
		void *v = valloc(n);
		aligned(v, page, "valloc alignment");
		asked += n;
		use_all(v, n);
		free(v);
		void *pv = pvalloc(n);
		aligned(pv, page, "pvalloc alignment");
		asked += n;
		if (malloc_usable_size(pv) < (n + page - 1) / page * page)
			fail("pvalloc gives whole pages", malloc_usable_size(pv), n);
		use_all(pv, n);
		free(pv);
	}

	/* The odd requests: nothing, and alignments glibc refuses. */
	free(NULL);
	if (posix_memalign(&pm, 3, 16) == 0)
		fail("posix_memalign accepts alignment 3", 3, 16);
	void *zero = malloc(0);
	free(zero);
}

int main(int argc, char **argv)
{
	for (unsigned r = 0; r < ROUNDS; r++)
		round_of(r);
	if (argc > 1 && strcmp(argv[1], "leak") == 0) {
		void *keep = malloc(LEAK_BYTES);
		memset(keep, 1, LEAK_BYTES);
		held = keep;
	}
	printf("ok %lu\n", asked);
	return 0;
}
