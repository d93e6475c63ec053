/*
 * A program that closes descriptors it did not open (issue 10, item 1), as
 * daemons do: after allocating a little, it closes every descriptor from 3
 * up (closefrom), opens its two log files (argv[1], argv[2]; they land on
 * the lowest free descriptors, 3 and 4) and then allocates many blocks of
 * varied sizes from call stacks of varied depth, so that at MEMPROF_RATE=1
 * every allocation is a heap sample, while writing known lines to both
 * logs. Harm it provokes: a descriptor the profiler (or a library it calls,
 * such as libunwind's memory-validation pipe) opened before the closefrom
 * and still believes its own, which now is the program's log: bytes
 * written into it, or the log closed under the program.
 *   target_fd_closefrom LOG_A LOG_B [ROUNDS]
 * Each log must end up exactly: ROUNDS lines "a NNNNN ..." (or "b ...").
 * Prints what it did; checks nothing.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEEP 256

static void *kept[KEEP];

/* Allocation at the bottom of a stack `depth` frames deep, so that the
 * unwinder walks stacks of several shapes. */
__attribute__((noinline)) static void *alloc_deep(int depth, size_t size)
{
	void *p;
	if (depth > 0)
		p = alloc_deep(depth - 1, size);
	else
		p = malloc(size);
	__asm__ volatile("" ::: "memory"); /* no tail call: the frame stays */
	return p;
}

__attribute__((noinline)) static void *alloc_calloc(size_t size)
{
	return calloc(1, size);
}

__attribute__((noinline)) static void churn(unsigned round)
{
	unsigned slot = (round * 2654435761u) % KEEP;
	size_t size = 16 + (round * 7919u) % 20000;
	free(kept[slot]);
	if (round % 3 == 0)
		kept[slot] = alloc_calloc(size);
	else
		kept[slot] = alloc_deep((int)(round % 9), size);
	memset(kept[slot], (int)round, size);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s LOG_A LOG_B [ROUNDS]\n", argv[0]);
		return 2;
	}
	unsigned rounds = argc > 3 ? (unsigned)atoi(argv[3]) : 20000;

	/* Allocate (and so be sampled) before the descriptors go. */
	for (unsigned i = 0; i < 100; i++)
		churn(i);
	closefrom(3);
	int a = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int b = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (a < 0 || b < 0) {
		perror("open");
		return 1;
	}
	for (unsigned i = 0; i < rounds; i++) {
		churn(i);
		if (i % 10 == 0) {
			dprintf(a, "a %05u the quick brown fox jumps over the lazy dog\n", i / 10);
			dprintf(b, "b %05u pack my box with five dozen liquor jugs\n", i / 10);
		}
	}
	close(a);
	close(b);
	for (unsigned i = 0; i < KEEP; i++)
		free(kept[i]);
	printf("closed 3.., logs on %d and %d, %u rounds, %u lines each\n", a, b,
	       rounds, (rounds + 9) / 10);
	return 0;
}
