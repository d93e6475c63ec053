/*
 * timeit: the stopwatch of bench/run. Runs a command and writes one line,
 * "WALL_NS CPU_NS STATUS IDLE_NS", to OUTFILE: wall-clock time from
 * CLOCK_MONOTONIC taken around fork and wait; CPU time (user + system) of
 * the command and of every descendant it waited for (so a wrapper's own
 * collector counts); its exit status (128 + N for a signal); and the time
 * all CPUs were idle meanwhile, so that NCPU * WALL_NS - IDLE_NS - CPU_NS
 * tells how much else ran alongside (or was stolen by the hypervisor).
 * The command's own output is left alone; bench/run redirects it. A C
 * helper rather than `date +%s%N` in bash: date reads the realtime clock,
 * and the shell's forks would be timed.
 *
 * usage: timeit OUTFILE COMMAND [ARGS...]
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static int64_t tv_ns(const struct timeval *t)
{
	return (int64_t)t->tv_sec * 1000000000 + (int64_t)t->tv_usec * 1000;
}

/* Idle time of all CPUs so far (idle + iowait), from the first line of
 * /proc/stat, in clock ticks (10 ms). Idle rather than the busy fields:
 * with a tickless kernel the idle time is measured exactly, while user and
 * system time are sampled at ticks, which over-counts a program that keeps
 * sleeping and waking (a contended lock, a pipe): its CPU runs at every
 * tick because the tick stops while it sleeps. -1 if unreadable. */
static int64_t machine_idle_ns(void)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	if (!f)
		return -1;
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
		       &v[3], &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 8)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	unsigned long long ticks = v[3] + v[4];
	return (int64_t)(ticks * (1000000000ULL / (unsigned long long)(hz > 0 ? hz : 100)));
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: timeit OUTFILE COMMAND [ARGS...]\n");
		return 2;
	}
	FILE *out = fopen(argv[1], "w");
	if (!out) {
		fprintf(stderr, "timeit: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}

	struct timespec t0, t1;
	int64_t idle0 = machine_idle_ns();
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "timeit: fork: %s\n", strerror(errno));
		return 2;
	}
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		fprintf(stderr, "timeit: %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	int st;
	struct rusage ru;
	/* wait4's usage of a child includes the descendants it reaped. */
	while (wait4(pid, &st, 0, &ru) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "timeit: wait4: %s\n", strerror(errno));
			return 2;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	int64_t idle1 = machine_idle_ns();

	int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	fprintf(out, "%lld %lld %d %lld\n", (long long)(ns(&t1) - ns(&t0)),
		(long long)(tv_ns(&ru.ru_utime) + tv_ns(&ru.ru_stime)), status,
		(long long)(idle0 < 0 || idle1 < 0 ? -1 : idle1 - idle0));
	if (fclose(out) != 0) {
		fprintf(stderr, "timeit: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	return status;
}
