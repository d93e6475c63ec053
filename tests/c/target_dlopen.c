/*
 * Four threads that load and unload a library (argv[1]) over and over,
 * call into it, and malloc/free around it, for argv[2] seconds: the loader
 * lock and malloc are busy all the time, which is when a SIGPROF handler
 * that unwinds in process deadlocks. Prints "ok" and the round count.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *plugin;
static double seconds;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
	long rounds = 0;
	double end = now() + seconds;
	unsigned seed = (unsigned)(uintptr_t)arg;
	while (now() < end) {
		void *h = dlopen(plugin, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			fprintf(stderr, "dlopen: %s\n", dlerror());
			exit(1);
		}
		void **(*alloc)(size_t, size_t) = (void **(*)(size_t, size_t))dlsym(h, "plugin_allocate");
		size_t n = 1 + rand_r(&seed) % 32;
		void **blocks = alloc(n, 16 + rand_r(&seed) % 8192);
		for (size_t i = 0; i < n; i++)
			free(blocks[i]);
		free(blocks);
		dlclose(h);
		for (int i = 0; i < 64; i++)
			free(malloc(1 + rand_r(&seed) % 100000));
		rounds++;
	}
	return (void *)rounds;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s libplugin.so SECONDS\n", argv[0]);
		return 2;
	}
	plugin = argv[1];
	seconds = atof(argv[2]);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1));
	long total = 0;
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		total += (long)r;
	}
	printf("ok %ld rounds\n", total);
	return 0;
}
