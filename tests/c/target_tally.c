/*
 * Full trace's tallies (shim/tally.c) where they are hardest to keep exact:
 *  - more threads at once than there are tally slots (256), so that some
 *    count by events instead, each freeing half its blocks and leaving the
 *    rest to main, which frees them after the threads have ended;
 *  - threads ending and new ones taking their slots, with counts that must
 *    carry on;
 *  - threads without a slot freeing blocks main counted;
 *  - one stack allocating many sizes;
 *  - a fork child, which inherits the counts with the heap, frees some of
 *    its parent's blocks and makes its own.
 * Every count is known, and printed: a test compares the profiles with it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline, noipa))

#define WAVE_THREADS 300
#define PER_THREAD 10
#define SIZES 500
#define KEPT 1000

static void *volatile sink;
static pthread_barrier_t all_started;
static void *handed[2][WAVE_THREADS][PER_THREAD / 2];
static void *given[2][WAVE_THREADS][2];

NOINLINE static void *in_wave(size_t size)
{
	return malloc(size);
}

struct wave_arg {
	int wave, i;
};

static void *wave_thread(void *p)
{
	struct wave_arg *a = p;
	void *mine[PER_THREAD];
	/* The first allocation takes a slot; then every thread waits for all
	 * the others, so that more threads than slots want one together. */
	mine[0] = in_wave(80);
	pthread_barrier_wait(&all_started);
	for (int j = 1; j < PER_THREAD; j++)
		mine[j] = in_wave(80);
	for (int j = 0; j < PER_THREAD / 2; j++) {
		free(mine[j]);
		handed[a->wave][a->i][j] = mine[PER_THREAD / 2 + j];
	}
	/* Blocks main made: a thread without a slot frees a tallied block. */
	free(given[a->wave][a->i][0]);
	free(given[a->wave][a->i][1]);
	return NULL;
}

static void wave(int w)
{
	pthread_t t[WAVE_THREADS];
	struct wave_arg args[WAVE_THREADS];
	pthread_barrier_init(&all_started, NULL, WAVE_THREADS);
	for (int i = 0; i < WAVE_THREADS; i++) {
		args[i] = (struct wave_arg){ w, i };
		if (pthread_create(&t[i], NULL, wave_thread, &args[i]) != 0) {
			perror("pthread_create");
			exit(1);
		}
	}
	for (int i = 0; i < WAVE_THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&all_started);
}

NOINLINE static void *to_give(void)
{
	return malloc(24);
}

NOINLINE static void *sized(size_t size)
{
	return malloc(size);
}

NOINLINE static void *kept(void)
{
	return malloc(48);
}

NOINLINE static void *in_child(void)
{
	return malloc(64);
}

int main(void)
{
	static void *keep[KEPT];
	for (int i = 0; i < KEPT; i++)
		keep[i] = kept();
	for (int w = 0; w < 2; w++)
		for (int i = 0; i < WAVE_THREADS; i++)
			given[w][i][0] = to_give(), given[w][i][1] = to_give();
	/* Two waves: the second's threads take the slots the first's left. */
	wave(0);
	wave(1);
	for (int w = 0; w < 2; w++)
		for (int i = 0; i < WAVE_THREADS; i++)
			for (int j = 0; j < PER_THREAD / 2; j++)
				free(handed[w][i][j]);
	/* 500 sizes from one stack, each allocated twice, the second kept. */
	static void *by_size[SIZES];
	for (int i = 0; i < SIZES; i++) {
		sink = sized(16 + (size_t)i * 8);
		free(sink);
		by_size[i] = sized(16 + (size_t)i * 8);
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		/* The child frees a tenth of what it inherited and makes 7. */
		for (int i = 0; i < KEPT / 10; i++)
			free(keep[i]);
		static void *own[7];
		for (int i = 0; i < 7; i++)
			own[i] = in_child();
		sink = own;
		_exit(0);
	}
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return 1;
	printf("kept %d in_wave %d in_use %d to_give %d sized %d in_use %d child_kept %d in_child 7\n", KEPT,
	       2 * WAVE_THREADS * PER_THREAD, 0, 4 * WAVE_THREADS, 2 * SIZES, SIZES, KEPT - KEPT / 10);
	sink = keep;
	sink = by_size;
	return 0;
}
