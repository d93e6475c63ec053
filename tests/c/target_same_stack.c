/*
 * Allocations whose stacks look alike to the shim's stack walk: its memo
 * (shim/unwind.c) and, at rate 1, the events that leave out a stack sent
 * before (shim/sample.c) must still tell them apart and count each one.
 *
 * - leaf is called in turn from via_a and via_b, whose frames are the
 *   same size and which main calls from one place: the walk starts at the
 *   same ip and stack pointer each time, and only the return address
 *   saved in leaf's frame says which caller it is. Built without frame
 *   pointers, as most of a distribution's code is.
 * - deep reaches its malloc through recursion of changing depth.
 *
 * Prints how many blocks each function allocated; every block is freed
 * at once.
 */
#include <stdio.h>
#include <stdlib.h>

#define ROUNDS 20000
#define NO_FP __attribute__((noinline, noipa, optimize("omit-frame-pointer")))

static void *volatile sink;

static NO_FP void leaf(void)
{
	sink = malloc(64);
	free(sink);
}

static NO_FP void via_a(void)
{
	leaf();
	__asm__ volatile("nop");
}

static NO_FP void via_b(void)
{
	leaf();
	__asm__ volatile("nop; nop");
}

static __attribute__((noinline, noipa)) void deep(int depth)
{
	if (depth == 0) {
		sink = malloc(32);
		free(sink);
	} else {
		deep(depth - 1);
	}
	__asm__ volatile("");
}

int main(void)
{
	long a = 0, b = 0, d = 0;
	for (int i = 0; i < ROUNDS; i++) {
		via_a();
		a++;
		via_b();
		b++;
		if (i % 2 == 0) {
			via_a();
			a++;
		}
		deep(i % 5);
		d++;
	}
	printf("via_a %ld via_b %ld leaf %ld deep %ld\n", a, b, a + b, d);
	return 0;
}
