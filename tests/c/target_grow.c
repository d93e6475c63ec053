/*
 * A running program of known shape for the page's tests: keeps 32 MiB
 * allocated in keep_alpha, 16 MiB in keep_beta and 8 MiB in keep_gamma
 * (4 KiB blocks), and burns CPU in spin_red, spin_green and spin_blue in
 * the shares 3:2:1, about half of one CPU. Prints "ready PID" once the
 * heap is in place. Each SIGUSR1 adds 24 MiB in grow_leak (and prints
 * "grown N"). Exits after SECONDS (default 120), or on SIGTERM.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MiB (1024L * 1024)
#define BLOCK 4096

static volatile sig_atomic_t grow_asked;
static volatile unsigned long sink;

static void on_usr1(int sig)
{
	(void)sig;
	grow_asked++;
}

/* Macros rather than functions, so that the named functions below are
 * the leaves of their stacks (their own flat figures). */
#define KEEP(bytes)                                                   \
	for (long i = 0; i < (bytes) / BLOCK; i++) {                  \
		char *p = malloc(BLOCK);                              \
		memset(p, 1, 16);                                     \
		__asm__ volatile("" : : "r"(p) : "memory");           \
	}
#define SPIN(n)                                                       \
	for (unsigned long i = 0; i < (n); i++)                       \
		sink = sink * 31 + i;

__attribute__((noinline)) static void keep_alpha(void) { KEEP(32 * MiB) }
__attribute__((noinline)) static void keep_beta(void) { KEEP(16 * MiB) }
__attribute__((noinline)) static void keep_gamma(void) { KEEP(8 * MiB) }
__attribute__((noinline)) static void grow_leak(void) { KEEP(24 * MiB) }

__attribute__((noinline)) static void spin_red(void) { SPIN(3000000) }
__attribute__((noinline)) static void spin_green(void) { SPIN(2000000) }
__attribute__((noinline)) static void spin_blue(void) { SPIN(1000000) }

int main(int argc, char **argv)
{
	int seconds = argc > 1 ? atoi(argv[1]) : 120;
	signal(SIGUSR1, on_usr1);
	keep_alpha();
	keep_beta();
	keep_gamma();
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	time_t end = time(NULL) + seconds;
	int grown = 0;
	while (time(NULL) < end) {
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		spin_red();
		spin_green();
		spin_blue();
		clock_gettime(CLOCK_MONOTONIC, &t1);
		/* As long asleep as it burnt: about half a CPU. */
		long ns = (t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec);
		struct timespec nap = { ns / 1000000000L, ns % 1000000000L };
		nanosleep(&nap, NULL);
		while (grown < grow_asked) {
			grow_leak();
			printf("grown %d\n", ++grown);
			fflush(stdout);
		}
	}
	return 0;
}
