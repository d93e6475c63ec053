/*
 * A program with a SIGPROF handler of its own (issue 10, item 3), as
 * coreutils sort has one (for cleanup) without arming any profiling timer.
 *   target_sigprof_handler          installs a counting handler, arms no
 *       timer, burns about 1 s of CPU in burn_a and burn_b, then sends
 *       itself SIGPROF three times (raise, kill, raise). Bare it prints
 *       "handler calls: 0 during the burn, 3 after three SIGPROFs".
 *   target_sigprof_handler itimer   also arms setitimer(ITIMER_PROF) at
 *       100 Hz itself and prints whether its handler saw ticks ("yes" bare).
 * Harms it provokes: a profiler's timer signals reaching the program's
 * handler (calls during the burn), the program's own signals taken as
 * samples or lost (fewer than 3), or a profiler that turns CPU profiling
 * off for a handler that never arms a timer (an empty CPU profile with
 * burn_a and burn_b missing). Prints what it saw; checks nothing.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t calls;
static volatile unsigned long sink;

static void on_sigprof(int sig)
{
	(void)sig;
	calls++;
}

static double cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static void burn_a(double seconds)
{
	double end = cpu_seconds() + seconds;
	while (cpu_seconds() < end)
		for (int i = 0; i < 20000; i++)
			sink = sink * 6364136223846793005UL + 1442695040888963407UL;
}

__attribute__((noinline)) static void burn_b(double seconds)
{
	double end = cpu_seconds() + seconds;
	while (cpu_seconds() < end)
		for (int i = 0; i < 20000; i++)
			sink = sink * 2862933555777941757UL + 3037000493UL;
}

int main(int argc, char **argv)
{
	int itimer = argc > 1 && strcmp(argv[1], "itimer") == 0;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigprof;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPROF, &sa, NULL) != 0) {
		perror("sigaction");
		return 1;
	}
	struct itimerval it = { { 0, 10000 }, { 0, 10000 } };
	if (itimer && setitimer(ITIMER_PROF, &it, NULL) != 0) {
		perror("setitimer");
		return 1;
	}
	burn_a(0.6);
	burn_b(0.4);
	if (itimer) {
		struct itimerval off = { { 0, 0 }, { 0, 0 } };
		setitimer(ITIMER_PROF, &off, NULL);
		printf("itimer: the handler saw ticks: %s\n", calls >= 10 ? "yes" : "no");
		return 0;
	}
	int during = calls;
	raise(SIGPROF);
	kill(getpid(), SIGPROF);
	raise(SIGPROF);
	/* kill() to ourselves may be taken a moment later by another thread's
	 * scheduling; give it that moment. */
	for (int i = 0; i < 100 && calls - during < 3; i++)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	printf("handler calls: %d during the burn, %d after three SIGPROFs\n", during,
	       (int)calls - during);
	return 0;
}
