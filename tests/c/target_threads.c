/*
 * Eight threads malloc, fill, check and free blocks of mixed sizes (every
 * allocator entry point, realloc included) while the main thread forks a
 * child that execs this program again ("child" mode) in the middle of it
 * all. Prints a checksum that depends only on the work done, so a run under
 * the shim must print what a bare run prints.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define THREADS 8
#define ROUNDS 200000
#define WINDOW 64

static uint64_t next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *alloc_any(uint64_t r, size_t size)
{
	void *p = NULL;
	switch (r % 7) {
	case 0: return calloc(1, size);
	case 1: return aligned_alloc(64, (size + 63) & ~(size_t)63);
	case 2: return memalign(32, size);
	case 3: return posix_memalign(&p, 128, size) == 0 ? p : NULL;
	case 4: return reallocarray(NULL, size, 1);
	default: return malloc(size);
	}
}

static void *worker(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15ULL + 1, sum = 0;
	struct { unsigned char *p; size_t n; } live[WINDOW] = { { 0 } };
	for (int i = 0; i < ROUNDS; i++) {
		uint64_t r = next(&seed);
		unsigned slot = (unsigned)(r % WINDOW);
		if (live[slot].p) {
			for (size_t k = 0; k < live[slot].n; k += 97)
				if (live[slot].p[k] != (unsigned char)(live[slot].n + k)) {
					fprintf(stderr, "corrupt block\n");
					abort();
				}
			sum += live[slot].n;
			if (r & 0x100) {
				size_t n = live[slot].n / 2 + 1;
				live[slot].p = realloc(live[slot].p, n);
				live[slot].n = n;
				for (size_t k = 0; k < n; k += 97)
					live[slot].p[k] = (unsigned char)(n + k);
				continue;
			}
			free(live[slot].p);
		}
		size_t n = (r >> 20) % ((r & 0x3000) ? 512 : 65536) + 1;
		unsigned char *p = alloc_any(r >> 8, n);
		if (!p) {
			fprintf(stderr, "out of memory\n");
			abort();
		}
		for (size_t k = 0; k < n; k += 97)
			p[k] = (unsigned char)(n + k);
		live[slot].p = p;
		live[slot].n = n;
	}
	for (int i = 0; i < WINDOW; i++)
		free(live[i].p);
	return (void *)(uintptr_t)sum;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "child") == 0) {
		uint64_t sum = (uint64_t)(uintptr_t)worker((void *)99);
		return (int)(sum % 100) + 1;
	}
	pthread_t t[THREADS];
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	pid_t pid = fork();
	if (pid == 0) {
		char *buf = malloc(100); /* the child allocates before its exec */
		snprintf(buf, 100, "%s", "child");
		execl("/proc/self/exe", argv[0], buf, (char *)NULL);
		_exit(127);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	uint64_t total = 0;
	for (int i = 0; i < THREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		total += (uint64_t)(uintptr_t)r;
	}
	printf("checksum %llu child %d\n", (unsigned long long)total,
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}
