/*
 * More distinct stacks than full trace's tally table holds (MP_TALLY_GIDS,
 * 131,072 in shim/shim.h), fewer than the collector keeps (PROC_MAX_STACKS,
 * 200,000): past the table the shim sends each allocation from a new stack
 * as an event, and every count must still come out exact.
 *
 * Each allocation's path is a number whose bits choose, level by level, one
 * of two call sites (via_zero, via_one), so that STACKS numbers make STACKS
 * stacks. Every block is made before any is freed (a stack's count outlives
 * its first free), then the odd ones go.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline, noipa))

#define LEVELS 18 /* 2^18 paths, more than STACKS */
#define STACKS 150000
#define SIZE 16

static void *blocks[STACKS];

NOINLINE static void *leaf_alloc(void)
{
	return malloc(SIZE);
}

NOINLINE static void descend(int level, uint32_t path, void **out);

/* The empty asm after each call keeps it from being a tail call, which
 * would leave this frame, and its return address, off the stack. */
NOINLINE static void via_zero(int level, uint32_t path, void **out)
{
	descend(level, path, out);
	__asm__ volatile("" ::: "memory");
}

NOINLINE static void via_one(int level, uint32_t path, void **out)
{
	descend(level, path, out);
	__asm__ volatile("" ::: "memory");
}

NOINLINE static void descend(int level, uint32_t path, void **out)
{
	if (level == 0)
		*out = leaf_alloc();
	else if (path & 1)
		via_one(level - 1, path >> 1, out);
	else
		via_zero(level - 1, path >> 1, out);
	__asm__ volatile("" ::: "memory");
}

int main(void)
{
	for (uint32_t p = 0; p < STACKS; p++) {
		descend(LEVELS, p, &blocks[p]);
		if (!blocks[p])
			return 1;
	}
	size_t kept = 0;
	for (uint32_t p = 0; p < STACKS; p++) {
		if (p & 1)
			free(blocks[p]);
		else
			kept++;
	}
	printf("stacks %d kept %zu\n", STACKS, kept);
	return 0;
}
