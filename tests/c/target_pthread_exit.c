/*
 * A process whose last thread is not its main thread (issue 10, item 0).
 * main starts a worker and leaves with pthread_exit(0), a common C idiom;
 * the worker allocates a little, sleeps about 50 ms and returns. Bare, the
 * process exits with status 0 as soon as the worker returns (glibc calls
 * exit(0) when the last thread ends). Harm it provokes: a thread of the
 * profiler's own that keeps the process alive (or blocks the signals that
 * would end it) once the program's threads are all gone.
 * Prints what it did; checks nothing.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void *worker(void *arg)
{
	(void)arg;
	size_t total = 0;
	for (int i = 0; i < 64; i++) {
		char *p = malloc(100 + i * 50);
		memset(p, i, 100 + i * 50);
		total += 100 + i * 50;
		free(p);
	}
	nanosleep(&(struct timespec){ .tv_nsec = 50 * 1000 * 1000 }, NULL);
	printf("worker: allocated %zu bytes, returning\n", total);
	fflush(stdout);
	return NULL;
}

int main(void)
{
	pthread_t t;
	printf("main: started a worker, calling pthread_exit\n");
	fflush(stdout);
	if (pthread_create(&t, NULL, worker, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	pthread_exit(0);
}
