/*
 * malloc_loop: the allocation-heavy workload of bench/run. Each thread (2
 * unless given) keeps a small window of live blocks and, per iteration, frees
 * one block chosen at random and allocates a new one in its place, writes to
 * it, and later reads it back. Sizes are mostly 16-512 bytes, 1 in 16 is
 * 512-4096.
 * A fixed amount of work (iterations per thread from argv) and a printed
 * checksum that depends only on the work done, never on addresses, so every
 * allocator and profiler must print the same line.
 *
 * usage: malloc_loop [ITERATIONS_PER_THREAD [WINDOW [THREADS]]]
 * THREADS (1 to 64, default 2) is for bench/run's full-trace part, which
 * scales the thread count at a fixed total; with 2, the output is what it
 * was before THREADS could be given.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_THREADS 2
#define MAX_THREADS 64
#define DEFAULT_ITERATIONS 10000000UL
#define DEFAULT_WINDOW 256 /* live blocks per thread: a few hot data structures */
#define MAX_WINDOW 65536

struct worker {
	pthread_t tid;
	uint64_t seed;
	unsigned long iterations;
	unsigned window;
	uint64_t checksum;
} __attribute__((aligned(64))); /* no false sharing between the threads */

struct block {
	unsigned char *p;
	uint32_t size;
	uint32_t tag;
};

/* xorshift64*: cheap enough not to hide the allocator's cost. */
static inline uint64_t next_random(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* Mostly small objects (strings, list nodes, small structs), now and then a
 * buffer of a few KiB: 15 in 16 uniform in [16, 512], 1 in 16 in [512, 4096]. */
static inline uint32_t pick_size(uint64_t r)
{
	if ((r & 15) != 0)
		return 16 + (uint32_t)((r >> 8) % 497);
	return 512 + (uint32_t)((r >> 8) % 3585);
}

/* What a program does with a fresh block: initialise a header, touch every
 * cache line of the body (so the allocator's memory is really used, without
 * a full memset dominating the loop), and a trailer. */
static inline void fill(struct block *b)
{
	unsigned char *p = b->p;
	memcpy(p, &b->tag, sizeof(b->tag));
	for (uint32_t off = 64; off < b->size; off += 64)
		p[off] = (unsigned char)b->tag;
	memcpy(p + b->size - sizeof(b->tag), &b->tag, sizeof(b->tag));
}

/* Reads back what fill wrote before the block is freed. */
static inline uint64_t consume(const struct block *b)
{
	uint32_t head, tail;
	memcpy(&head, b->p, sizeof(head));
	memcpy(&tail, b->p + b->size - sizeof(tail), sizeof(tail));
	uint64_t sum = head ^ ((uint64_t)tail << 1);
	for (uint32_t off = 64; off < b->size; off += 64)
		sum += b->p[off];
	return sum + b->size;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	struct block *win = calloc(w->window, sizeof(*win));
	if (!win) {
		perror("calloc");
		exit(1);
	}
	uint64_t s = w->seed, sum = 0;
	for (unsigned long i = 0; i < w->iterations; i++) {
		uint64_t r = next_random(&s);
		/* The slot to replace is random, so blocks die in an order
		 * unrelated to the order they were born in. */
		struct block *b = &win[(r >> 40) % w->window];
		if (b->p) {
			sum += consume(b);
			free(b->p);
		}
		b->size = pick_size(r);
		b->tag = (uint32_t)i;
		b->p = malloc(b->size);
		if (!b->p) {
			perror("malloc");
			exit(1);
		}
		fill(b);
	}
	for (unsigned j = 0; j < w->window; j++) {
		if (win[j].p) {
			sum += consume(&win[j]);
			free(win[j].p);
		}
	}
	free(win);
	w->checksum = sum;
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long iterations = DEFAULT_ITERATIONS;
	unsigned long window = DEFAULT_WINDOW;
	char *end;
	if (argc > 1) {
		iterations = strtoul(argv[1], &end, 10);
		if (*end || iterations == 0) {
			fprintf(stderr, "usage: %s [ITERATIONS_PER_THREAD [WINDOW [THREADS]]]\n",
				argv[0]);
			return 2;
		}
	}
	if (argc > 2) {
		window = strtoul(argv[2], &end, 10);
		if (*end || window == 0 || window > MAX_WINDOW) {
			fprintf(stderr, "%s: WINDOW must be 1 to %d\n", argv[0], MAX_WINDOW);
			return 2;
		}
	}

	unsigned long threads = DEFAULT_THREADS;
	if (argc > 3) {
		threads = strtoul(argv[3], &end, 10);
		if (*end || threads == 0 || threads > MAX_THREADS) {
			fprintf(stderr, "%s: THREADS must be 1 to %d\n", argv[0], MAX_THREADS);
			return 2;
		}
	}

	static struct worker workers[MAX_THREADS];
	for (int t = 0; t < (int)threads; t++) {
		workers[t].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(t + 1);
		workers[t].iterations = iterations;
		workers[t].window = (unsigned)window;
		if (pthread_create(&workers[t].tid, NULL, work, &workers[t]) != 0) {
			fprintf(stderr, "%s: pthread_create failed\n", argv[0]);
			return 1;
		}
	}
	uint64_t checksum = 0;
	for (int t = 0; t < (int)threads; t++) {
		pthread_join(workers[t].tid, NULL);
		checksum ^= workers[t].checksum * (uint64_t)(2 * t + 1);
	}
	printf("malloc_loop threads=%lu iterations=%lu window=%lu pairs=%lu checksum=%016llx\n",
	       threads, iterations, window, threads * iterations,
	       (unsigned long long)checksum);
	return 0;
}
