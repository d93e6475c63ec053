/*
 * CPU of known shape. Modes:
 *   split SECONDS  two threads, each spending 3/4 of its CPU in burn_a and
 *                  1/4 in burn_b; prints the process's user+system time
 *   sleep SECONDS  mostly sleeps
 *   fork SECONDS   parent burns in parent_burn, its child in child_burn
 *   own-sigprof    installs its own SIGPROF handler and ITIMER_PROF, counts
 *                  its ticks over 1 s of CPU and checks the count
 *   reset-sigprof  sets SIGPROF to its default (as programs do between fork
 *                  and exec): no handler of its own
 *   handler-only   installs a SIGPROF handler but arms no timer (sort does,
 *                  to clean up), burns 1 s in burn_a, sends itself SIGPROF
 *                  three times and prints how many its handler saw (3)
 *   dfl-sigprof    sends itself SIGPROF with the default disposition: it
 *                  dies of it
 *   own-usr2       installs a SIGUSR2 handler, says ready, and prints
 *                  "got usr2" when one arrives (then exits)
 *   retitle        overwrites argv[0] with a status line, as servers do,
 *                  then forks a child that burns a little CPU
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile unsigned long sink;

static double thread_cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Spins for about `seconds` of this thread's CPU time. */
static void spin(double seconds)
{
	double end = thread_cpu_seconds() + seconds;
	unsigned long x = sink;
	while (thread_cpu_seconds() < end)
		for (int i = 0; i < 20000; i++)
			x = x * 6364136223846793005UL + 1442695040888963407UL;
	sink = x;
}

__attribute__((noinline)) static void burn_a(double s) { spin(s); }
__attribute__((noinline)) static void burn_b(double s) { spin(s); }
__attribute__((noinline)) static void parent_burn(double s) { spin(s); }
__attribute__((noinline)) static void child_burn(double s) { spin(s); }

static void *split_worker(void *arg)
{
	double seconds = *(double *)arg;
	/* Interleave, so that both functions see the same conditions. */
	for (int i = 0; i < 20; i++) {
		burn_a(seconds * 0.75 / 20);
		burn_b(seconds * 0.25 / 20);
	}
	return NULL;
}

static void print_rusage(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	long long ns = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
		       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
	printf("cpu_ns %lld\n", ns);
}

static volatile sig_atomic_t ticks;
static void on_prof(int sig)
{
	(void)sig;
	ticks++;
}

static volatile sig_atomic_t got_usr2;
static void on_usr2(int sig)
{
	(void)sig;
	got_usr2 = 1;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "split";
	double seconds = argc > 2 ? atof(argv[2]) : 1.0;
	if (strcmp(mode, "split") == 0) {
		pthread_t t[2];
		for (int i = 0; i < 2; i++)
			pthread_create(&t[i], NULL, split_worker, &seconds);
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		print_rusage();
	} else if (strcmp(mode, "sleep") == 0) {
		struct timespec ts = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };
		nanosleep(&ts, NULL);
		print_rusage();
	} else if (strcmp(mode, "fork") == 0) {
		pid_t pid = fork();
		if (pid == 0) {
			child_burn(seconds);
			printf("child %d\n", (int)getpid());
			return 0;
		}
		parent_burn(seconds);
		int status;
		waitpid(pid, &status, 0);
		printf("parent %d\n", (int)getpid());
	} else if (strcmp(mode, "own-sigprof") == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_prof;
		sa.sa_flags = SA_RESTART;
		sigaction(SIGPROF, &sa, NULL);
		struct itimerval it = { { 0, 10000 }, { 0, 10000 } };
		setitimer(ITIMER_PROF, &it, NULL);
		spin(1.0);
		it = (struct itimerval){ { 0, 0 }, { 0, 0 } };
		setitimer(ITIMER_PROF, &it, NULL);
		/* 100 ticks a CPU-second; a second timer would double them. */
		printf("%s: %d ticks\n", ticks >= 80 && ticks <= 120 ? "ok" : "WRONG", (int)ticks);
		return ticks >= 80 && ticks <= 120 ? 0 : 1;
	} else if (strcmp(mode, "handler-only") == 0) {
		struct sigaction sa, old;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_prof;
		sigaction(SIGPROF, &sa, NULL);
		sigaction(SIGPROF, NULL, &old);
		burn_a(seconds);
		for (int i = 0; i < 3; i++)
			kill(getpid(), SIGPROF);
		printf("handler %s, %d signals\n", old.sa_handler == on_prof ? "kept" : "LOST",
		       (int)ticks);
	} else if (strcmp(mode, "dfl-sigprof") == 0) {
		burn_a(0.1);
		kill(getpid(), SIGPROF);
		printf("survived SIGPROF\n");
		return 1;
	} else if (strcmp(mode, "own-usr2") == 0) {
		signal(SIGUSR2, on_usr2);
		printf("ready %d\n", (int)getpid());
		fflush(stdout);
		for (int i = 0; i < 1000 && !got_usr2; i++)
			usleep(10000);
		printf("%s\n", got_usr2 ? "got usr2" : "no usr2");
	} else if (strcmp(mode, "reset-sigprof") == 0) {
		signal(SIGPROF, SIG_DFL);
		printf("reset\n");
	} else if (strcmp(mode, "retitle") == 0) {
		memset(argv[0], 0, strlen(argv[0]));
		strncpy(argv[0], "worker: busy", strlen(argv[0]));
		pid_t pid = fork();
		if (pid == 0) {
			child_burn(0.2);
			return 0;
		}
		waitpid(pid, NULL, 0);
		printf("retitled %d\n", (int)pid);
	} else {
		fprintf(stderr, "unknown mode %s\n", mode);
		return 2;
	}
	return 0;
}
