/*
 * fork() from a thread that is not main (issue 10, item 0), as Python's
 * os.fork() inside a threading.Thread does. In the child the forking thread
 * is the only thread; it allocates and returns from its start routine,
 * which ends the child with status 0 at once (glibc: the last thread to
 * return calls exit(0)). The parent waits for the child and prints its
 * status. Harm it provokes: a profiler thread started in the child that
 * keeps it alive after its only thread of its own has returned.
 * Prints what it did; checks nothing.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t child;

static void *forker(void *arg)
{
	(void)arg;
	fflush(stdout); /* nothing buffered is written twice */
	child = fork();
	if (child == 0) {
		size_t total = 0;
		for (int i = 0; i < 100; i++) {
			char *p = malloc(1000 + i * 100);
			memset(p, 1, 1000 + i * 100);
			total += 1000 + i * 100;
			free(p);
		}
		printf("child: allocated %zu bytes, returning from its only thread\n", total);
		fflush(stdout);
	}
	return NULL; /* in the child: the end of the process */
}

int main(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, forker, NULL) != 0) {
		perror("pthread_create");
		return 1;
	}
	pthread_join(t, NULL);
	if (child < 0) {
		perror("fork");
		return 1;
	}
	int status;
	if (waitpid(child, &status, 0) != child) {
		perror("waitpid");
		return 1;
	}
	if (WIFEXITED(status))
		printf("parent: child exited with status %d\n", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		printf("parent: child killed by signal %d\n", WTERMSIG(status));
	return 0;
}
