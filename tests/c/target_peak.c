/* A heap that peaks early: 64 MiB in phase_a, all freed, then 16 MiB in
 * phase_b that is still in use at exit. The peak profile must show
 * phase_a's 64 MiB and nothing of phase_b; the exit profile phase_b. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BLOCK (16 * 1024)

static void *a_blocks[64 * 1024 * 1024 / BLOCK];
static void *b_blocks[16 * 1024 * 1024 / BLOCK];

__attribute__((noinline)) static void phase_a(void)
{
	for (size_t i = 0; i < sizeof(a_blocks) / sizeof(a_blocks[0]); i++) {
		a_blocks[i] = malloc(BLOCK);
		memset(a_blocks[i], 1, 64);
	}
	for (size_t i = 0; i < sizeof(a_blocks) / sizeof(a_blocks[0]); i++)
		free(a_blocks[i]);
}

__attribute__((noinline)) static void phase_b(void)
{
	for (size_t i = 0; i < sizeof(b_blocks) / sizeof(b_blocks[0]); i++) {
		b_blocks[i] = malloc(BLOCK);
		memset(b_blocks[i], 2, 64);
	}
}

static volatile sig_atomic_t stop;

static void on_usr1(int sig)
{
	(void)sig;
	stop = 1;
}

/* With an argument, it says "ready PID" after phase_b and waits for USR1. */
int main(int argc, char **argv)
{
	(void)argv;
	signal(SIGUSR1, on_usr1);
	phase_a();
	phase_b();
	if (argc > 1) {
		printf("ready %d\n", (int)getpid());
		fflush(stdout);
		while (!stop)
			pause();
	}
	printf("done\n");
	return 0;
}
