/*
 * A daemon in the classic style (issue 10, "Daemons" and item 1): it closes
 * every descriptor from 3 up (closefrom), puts /dev/null on stdin and
 * stdout, forks (the original process exits 0 at once), calls setsid, forks
 * again, and the grandchild writes its own log while allocating, then
 * exits 0. Harms it provokes: profiler descriptors closed or replaced under
 * the profiler's feet (libunwind's pipe, the socket), bytes in the log that
 * the program never wrote, and a front end that stops profiling (or waits
 * for ever) when the first process exits while the grandchild goes on.
 *   target_daemon LOG PIDFILE [ROUNDS]
 * LOG must end up exactly ROUNDS/10 lines "daemon NNNNN ...". When the log
 * is complete and closed, the grandchild writes its pid to PIDFILE (made
 * whole by a rename, so a reader never sees it half written) and exits: a
 * test waits for PIDFILE, then for that pid to be gone. It does not chdir
 * to "/", so that relative paths keep working.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEEP 64

static void *kept[KEEP];

__attribute__((noinline)) static void *alloc_deep(int depth, size_t size)
{
	void *p;
	if (depth > 0)
		p = alloc_deep(depth - 1, size);
	else
		p = malloc(size);
	__asm__ volatile("" ::: "memory");
	return p;
}

__attribute__((noinline)) static void churn(unsigned round)
{
	unsigned slot = (round * 2246822519u) % KEEP;
	size_t size = 32 + (round * 3266489917u) % 12000;
	free(kept[slot]);
	kept[slot] = alloc_deep((int)(round % 6), size);
	memset(kept[slot], (int)round, size);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s LOG PIDFILE [ROUNDS]\n", argv[0]);
		return 2;
	}
	unsigned rounds = argc > 3 ? (unsigned)atoi(argv[3]) : 20000;

	for (unsigned i = 0; i < 100; i++) /* sampled before the descriptors go */
		churn(i);
	closefrom(3);
	int null = open("/dev/null", O_RDWR);
	if (null < 0) {
		perror("/dev/null");
		return 1;
	}
	dup2(null, 0);
	dup2(null, 1);
	if (null > 2)
		close(null);

	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid > 0)
		return 0; /* the original process: done at once */
	setsid();
	pid = fork();
	if (pid < 0) {
		perror("fork");
		_exit(1);
	}
	if (pid > 0)
		_exit(0); /* the session leader: gone, so no terminal comes back */

	/* The grandchild: the daemon proper. */
	int log = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (log < 0) {
		perror(argv[1]);
		return 1;
	}
	for (unsigned i = 0; i < rounds; i++) {
		churn(i);
		if (i % 10 == 0)
			dprintf(log, "daemon %05u how vexingly quick daft zebras jump\n", i / 10);
	}
	close(log);
	for (unsigned i = 0; i < KEEP; i++)
		free(kept[i]);

	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", argv[2]);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", (int)getpid()) < 0 || fclose(f) != 0 || rename(tmp, argv[2]) != 0) {
		perror(argv[2]);
		return 1;
	}
	return 0;
}
