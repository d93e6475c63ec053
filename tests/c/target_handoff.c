/*
 * Blocks made in one thread and freed in another, the shape of a
 * producer/consumer queue: PAIRS producer threads each allocate BLOCKS
 * blocks of 100 bytes in make_block and hand them over a small queue to a
 * consumer thread of their own, which frees them (and, for every 16th,
 * first reallocs it to 200 bytes). At rate 1, with each thread's events
 * sent from a ring of its own, a free often reaches the collector before
 * the allocation it undoes; the profile must still end with nothing of
 * make_block in use and every block counted once as allocated.
 *
 * Prints "ready" and waits for SIGUSR1 once everything has been freed, so
 * that a test can dump the profile of that moment; then exits.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAIRS 3
#define BLOCKS 100000
#define QUEUE 64 /* short, so that producer and consumer run side by side */

struct queue {
	void *slot[QUEUE];
	_Atomic unsigned head, tail;
};

static struct queue queues[PAIRS];

static __attribute__((noinline)) void *make_block(unsigned i)
{
	char *p = malloc(100);
	if (p)
		memset(p, (int)(i & 0xff), 100);
	return p;
}

static void *produce(void *arg)
{
	struct queue *q = arg;
	for (unsigned i = 0; i < BLOCKS; i++) {
		void *p = make_block(i);
		while (atomic_load(&q->head) - atomic_load(&q->tail) == QUEUE)
			sched_yield();
		q->slot[atomic_load(&q->head) % QUEUE] = p;
		atomic_fetch_add(&q->head, 1);
	}
	return NULL;
}

static void *consume(void *arg)
{
	struct queue *q = arg;
	for (unsigned i = 0; i < BLOCKS; i++) {
		while (atomic_load(&q->head) == atomic_load(&q->tail))
			sched_yield();
		char *p = q->slot[atomic_load(&q->tail) % QUEUE];
		atomic_fetch_add(&q->tail, 1);
		if (i % 16 == 0) {
			char *r = realloc(p, 200);
			if (r)
				p = r;
		}
		free(p);
	}
	return NULL;
}

static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

int main(void)
{
	/* Blocked until sigsuspend, so that a signal sent early is not lost. */
	sigset_t usr1, waiting;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, &waiting);
	sigdelset(&waiting, SIGUSR1);
	signal(SIGUSR1, on_usr1);
	pthread_t t[2 * PAIRS];
	for (int i = 0; i < PAIRS; i++) {
		pthread_create(&t[2 * i], NULL, produce, &queues[i]);
		pthread_create(&t[2 * i + 1], NULL, consume, &queues[i]);
	}
	for (int i = 0; i < 2 * PAIRS; i++)
		pthread_join(t[i], NULL);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	while (!go)
		sigsuspend(&waiting);
	return 0;
}
