/*
 * A program that dup2s its own file over descriptors 3 and 4 (issue 10,
 * item 1), then allocates heavily (every allocation a heap sample at
 * MEMPROF_RATE=1) while writing known bytes through descriptor 3. Harm it
 * provokes: a descriptor the profiler or a library it calls (libunwind's
 * memory-validation pipe, opened on the lowest free numbers) had on 3 or 4
 * is silently replaced; writes meant for it go into the program's file
 * (extra bytes), reads take bytes from it, or a "repair" closes the
 * program's descriptors (lost output).
 *   target_fd_dup2 OUT [pipe] [ROUNDS]
 * Default: OUT on both 3 and 4. With "pipe": OUT on 3 and the write end of
 * a pipe on 4; at the end it prints how many bytes it found in the pipe
 * (0 bare). OUT must end up exactly ROUNDS/10 lines "line NNNNN ...".
 * Prints what it did; checks nothing.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KEEP 128

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
	unsigned slot = (round * 40503u) % KEEP;
	size_t size = 8 + (round * 104729u) % 30000;
	if (round % 5 == 0) {
		kept[slot] = realloc(kept[slot], size);
	} else {
		free(kept[slot]);
		kept[slot] = alloc_deep((int)(round % 7), size);
	}
	memset(kept[slot], (int)round, size);
}

/* The same open file on a descriptor of 100 or more; closes the old one. */
static int move_high(int fd)
{
	int high = fcntl(fd, F_DUPFD, 100);
	close(fd);
	return high;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s OUT [pipe] [ROUNDS]\n", argv[0]);
		return 2;
	}
	int use_pipe = argc > 2 && strcmp(argv[2], "pipe") == 0;
	unsigned rounds = argc > 2 + use_pipe ? (unsigned)atoi(argv[2 + use_pipe]) : 20000;

	for (unsigned i = 0; i < 100; i++) /* sampled before the dup2s */
		churn(i);
	/* Park our own descriptors high first, so that the dup2s below
	 * replace only what may be on 3 and 4 and never one of ours. */
	int p[2] = { -1, -1 };
	if (use_pipe) {
		if (pipe(p) != 0) {
			perror("pipe");
			return 1;
		}
		p[0] = move_high(p[0]);
		p[1] = move_high(p[1]);
	}
	int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	fd = move_high(fd);
	dup2(fd, 3);
	dup2(use_pipe ? p[1] : fd, 4);
	close(fd);
	if (use_pipe)
		close(p[1]);
	for (unsigned i = 0; i < rounds; i++) {
		churn(i);
		if (i % 10 == 0)
			dprintf(3, "line %05u sphinx of black quartz, judge my vow\n", i / 10);
	}
	close(3);
	close(4);
	long stray = 0;
	if (use_pipe) {
		char buf[4096];
		ssize_t n;
		fcntl(p[0], F_SETFL, O_NONBLOCK);
		while ((n = read(p[0], buf, sizeof buf)) > 0)
			stray += n;
		close(p[0]);
	}
	for (unsigned i = 0; i < KEEP; i++)
		free(kept[i]);
	printf("file on 3 and %s on 4, %u rounds, %u lines", use_pipe ? "a pipe" : "the file",
	       rounds, (rounds + 9) / 10);
	if (use_pipe)
		printf(", %ld bytes found in the pipe", stray);
	printf("\n");
	return 0;
}
