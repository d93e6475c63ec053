/*
 * A heap of known shape: churns 256 MiB through malloc/free, then keeps
 * 48 MiB live in 4 KiB blocks (hold_big) and 16 MiB in 64-byte blocks
 * (hold_small). Prints "ready" and waits for SIGUSR1, then frees it all.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MiB (1024L * 1024)
#define BIG_BLOCK 4096
#define BIG_COUNT (48 * MiB / BIG_BLOCK)
#define SMALL_BLOCK 64
#define SMALL_COUNT (16 * MiB / SMALL_BLOCK)

static void *big[BIG_COUNT];
static void *small[SMALL_COUNT];

/* 256 MiB in a mix of sizes, each block freed at once. */
__attribute__((noinline)) static void churn(void)
{
	static const size_t sizes[] = { 100, 1000, 4096, 10000, 65536, 200000 };
	long total = 0;
	for (unsigned i = 0; total < 256 * MiB; i++) {
		size_t n = sizes[i % 6];
		if (total + (long)n > 256 * MiB)
			n = (size_t)(256 * MiB - total);
		char *p = malloc(n);
		p[0] = (char)i;
		/* Let the pointer escape, or the compiler drops the pair. */
		__asm__ volatile("" : : "r"(p) : "memory");
		free(p);
		total += (long)n;
	}
}

__attribute__((noinline)) static void hold_big(void)
{
	for (long i = 0; i < BIG_COUNT; i++)
		memset(big[i] = malloc(BIG_BLOCK), 1, 8);
}

__attribute__((noinline)) static void hold_small(void)
{
	for (long i = 0; i < SMALL_COUNT; i++)
		memset(small[i] = malloc(SMALL_BLOCK), 2, 8);
}

int main(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	churn();
	hold_big();
	hold_small();
	printf("ready %d %ld %ld\n", (int)getpid(), (long)BIG_COUNT, (long)SMALL_COUNT);
	fflush(stdout);
	int sig;
	sigwait(&set, &sig);
	for (long i = 0; i < BIG_COUNT; i++)
		free(big[i]);
	for (long i = 0; i < SMALL_COUNT; i++)
		free(small[i]);
	return 0;
}
