/*
 * cpu_loop: the CPU-bound workload of bench/run's CPU-profiling section.
 * Each thread fills a 4 KiB buffer from a PRNG and hashes it, over and over:
 * pure computation on data that stays in the L1 cache, with no allocation,
 * system call or lock after start-up, so that what a CPU profiler adds (its
 * timer signals, their handler, whatever it runs beside the program) is all
 * that differs between runs. A fixed amount of work (rounds per thread from
 * argv) and a printed checksum that depends only on that work, so every
 * profiler must print the same line.
 *
 * usage: cpu_loop [ROUNDS_PER_THREAD [THREADS]]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define DEFAULT_ROUNDS 830000UL /* ~1.5 s on the bench machine */
#define MAX_THREADS 64
#define BUF_WORDS 512 /* 4 KiB */

struct worker {
	pthread_t tid;
	uint64_t seed;
	unsigned long rounds;
	uint64_t checksum;
} __attribute__((aligned(64))); /* no false sharing between threads */

/* Two functions the compiler may not inline, so that a profile has a call
 * stack with a known split to show (roughly half the time in each). */
static __attribute__((noinline)) void fill_block(uint64_t *b, uint64_t *s)
{
	uint64_t x = *s;
	for (int i = 0; i < BUF_WORDS; i++) {
		/* xorshift64* */
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		b[i] = x * 0x2545f4914f6cdd1dULL;
	}
	*s = x;
}

static __attribute__((noinline)) uint64_t hash_block(const uint64_t *b, uint64_t h)
{
	for (int i = 0; i < BUF_WORDS; i++) {
		h ^= b[i];
		h *= 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
	}
	return h;
}

static void *work(void *arg)
{
	struct worker *w = arg;
	uint64_t buf[BUF_WORDS];
	uint64_t s = w->seed, h = 0;
	for (unsigned long r = 0; r < w->rounds; r++) {
		fill_block(buf, &s);
		h = hash_block(buf, h);
	}
	w->checksum = h;
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long rounds = DEFAULT_ROUNDS, nthreads = 1;
	char *end;
	if (argc > 1) {
		rounds = strtoul(argv[1], &end, 10);
		if (*end || rounds == 0) {
			fprintf(stderr, "usage: %s [ROUNDS_PER_THREAD [THREADS]]\n", argv[0]);
			return 2;
		}
	}
	if (argc > 2) {
		nthreads = strtoul(argv[2], &end, 10);
		if (*end || nthreads == 0 || nthreads > MAX_THREADS) {
			fprintf(stderr, "%s: THREADS must be 1 to %d\n", argv[0], MAX_THREADS);
			return 2;
		}
	}

	/* The main thread is worker 0; one thread runs no pthread_create. */
	static struct worker workers[MAX_THREADS];
	for (unsigned long t = 0; t < nthreads; t++) {
		workers[t].seed = 0x9e3779b97f4a7c15ULL * (uint64_t)(t + 1);
		workers[t].rounds = rounds;
	}
	for (unsigned long t = 1; t < nthreads; t++) {
		if (pthread_create(&workers[t].tid, NULL, work, &workers[t]) != 0) {
			fprintf(stderr, "%s: pthread_create failed\n", argv[0]);
			return 1;
		}
	}
	work(&workers[0]);
	uint64_t checksum = 0;
	for (unsigned long t = 0; t < nthreads; t++) {
		if (t > 0)
			pthread_join(workers[t].tid, NULL);
		checksum ^= workers[t].checksum * (2 * t + 1);
	}
	printf("cpu_loop threads=%lu rounds=%lu checksum=%016llx\n", nthreads, rounds,
	       (unsigned long long)checksum);
	return 0;
}
