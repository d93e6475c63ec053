/*
 * timeit: the stopwatch of bench/run. Runs a command and writes one line,
 * "WALL_NS CPU_NS STATUS IDLE_NS", to OUTFILE: wall-clock time from
 * CLOCK_MONOTONIC taken around fork and wait; CPU time (user + system) of
 * the command and of every descendant it waited for (so a wrapper's own
 * collector counts); its exit status (128 + N for a signal); and the time
 * all CPUs were idle meanwhile, so that NCPU * WALL_NS - IDLE_NS - CPU_NS
 * tells how much else ran alongside (or was stolen by the hypervisor).
 * A fifth field, MAXRSS_KB, is the largest resident set (ru_maxrss) of
 * the command or any descendant it waited for.
 * The command's own output is left alone; bench/run redirects it. A C
 * helper rather than `date +%s%N` in bash: date reads the realtime clock,
 * and the shell's forks would be timed.
 *
 * With -s ORPHANFILE, timeit is also the subreaper of the command's tree
 * (PR_SET_CHILD_SUBREAPER): a process that detaches (memprof's private
 * collector, which forks and lets its first process exit) comes to timeit
 * when its parent dies. After the command has exited (the wall time is
 * taken then), timeit waits up to ORPHAN_WAIT_MS (default 5000) for such
 * processes and writes one line per process to ORPHANFILE: "PID COMM CPU_NS
 * MAXRSS_KB AFTER_NS", its own CPU time and peak resident set from its
 * rusage (measured by the kernel, not sampled) and how long after the
 * command it exited; one still running then is written as "PID COMM -1 -1
 * -1" and left alone. Their CPU is not in the main line's CPU_NS.
 *
 * usage: timeit [-s ORPHANFILE] OUTFILE COMMAND [ARGS...]
 */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/prctl.h>
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

/* The command name of pid (a zombie still has it), or "?". */
static void comm_of(pid_t pid, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "r");
	snprintf(buf, size, "?");
	if (f) {
		if (fgets(buf, (int)size, f))
			buf[strcspn(buf, "\n")] = '\0';
		fclose(f);
	}
	for (char *p = buf; *p; p++)
		if (*p == ' ')
			*p = '_';
}

/* Writes "PID COMM -1 -1 -1" for each child of ours still running. */
static void list_children(FILE *f)
{
	DIR *d = opendir("/proc");
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		char path[300], buf[512];
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
		FILE *sf = fopen(path, "r");
		if (!sf)
			continue;
		size_t n = fread(buf, 1, sizeof buf - 1, sf);
		fclose(sf);
		buf[n] = '\0';
		char *rp = strrchr(buf, ')');
		int ppid;
		if (rp && sscanf(rp + 1, " %*c %d", &ppid) == 1 && ppid == (int)getpid()) {
			char comm[64];
			comm_of((pid_t)atoi(e->d_name), comm, sizeof comm);
			fprintf(f, "%s %s -1 -1 -1\n", e->d_name, comm);
		}
	}
	closedir(d);
}

/* Reaps the processes that came to us as subreaper, waiting up to ms
 * milliseconds in all; writes a line per process to f (see the top). */
static void reap_orphans(FILE *f, const struct timespec *t_end, long ms)
{
	struct timespec now;
	for (;;) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		int rc = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc < 0)
			return; /* ECHILD: none left */
		clock_gettime(CLOCK_MONOTONIC, &now);
		int64_t after = ns(&now) - ns(t_end);
		if (si.si_pid != 0) {
			char comm[64];
			comm_of(si.si_pid, comm, sizeof comm);
			int st;
			struct rusage ru;
			if (wait4(si.si_pid, &st, 0, &ru) == si.si_pid)
				fprintf(f, "%d %s %lld %ld %lld\n", (int)si.si_pid, comm,
					(long long)(tv_ns(&ru.ru_utime) + tv_ns(&ru.ru_stime)),
					ru.ru_maxrss, (long long)after);
			continue;
		}
		if (after > (int64_t)ms * 1000000) {
			/* Still running: named, not waited for. */
			list_children(f);
			return;
		}
		struct timespec nap = { 0, 2000000 };
		nanosleep(&nap, NULL);
	}
}

int main(int argc, char **argv)
{
	const char *orphan_path = NULL;
	if (argc >= 3 && strcmp(argv[1], "-s") == 0) {
		orphan_path = argv[2];
		argv += 2;
		argc -= 2;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: timeit [-s ORPHANFILE] OUTFILE COMMAND [ARGS...]\n");
		return 2;
	}
	FILE *out = fopen(argv[1], "w");
	if (!out) {
		fprintf(stderr, "timeit: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	FILE *orphans = NULL;
	if (orphan_path) {
		orphans = fopen(orphan_path, "w");
		if (!orphans) {
			fprintf(stderr, "timeit: %s: %s\n", orphan_path, strerror(errno));
			return 2;
		}
		if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
			fprintf(stderr, "timeit: PR_SET_CHILD_SUBREAPER: %s\n", strerror(errno));
			return 2;
		}
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

	if (orphans) {
		const char *w = getenv("ORPHAN_WAIT_MS");
		reap_orphans(orphans, &t1, w && *w ? atol(w) : 5000);
		if (fclose(orphans) != 0) {
			fprintf(stderr, "timeit: %s: %s\n", orphan_path, strerror(errno));
			return 2;
		}
	}

	int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	fprintf(out, "%lld %lld %d %lld %ld\n", (long long)(ns(&t1) - ns(&t0)),
		(long long)(tv_ns(&ru.ru_utime) + tv_ns(&ru.ru_stime)), status,
		(long long)(idle0 < 0 || idle1 < 0 ? -1 : idle1 - idle0), ru.ru_maxrss);
	if (fclose(out) != 0) {
		fprintf(stderr, "timeit: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	return status;
}
