/*
 * A daemon, the classic way: the program's own process exits at once; a
 * child starts a new session and forks again; the grandchild lets go of
 * the terminal and the caller's pipes, holds 8 MiB in daemon_hold, writes
 * its pid to the file named by argv[1], sleeps argv[2] milliseconds
 * (default 1000) and exits normally.
 *   target_daemonize PIDFILE [MS]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

char *held[8]; /* reachable to the end: not a leak */

__attribute__((noinline)) static void daemon_hold(void)
{
	for (int i = 0; i < 8; i++) {
		held[i] = malloc(1 << 20);
		memset(held[i], i, 1 << 20);
	}
}

/* Written to a temporary name and renamed: a reader sees all of it. */
static void write_pid(const char *path)
{
	char tmp[4096], buf[32];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (fd < 0 || write(fd, buf, (size_t)n) != n || close(fd) != 0 || rename(tmp, path) != 0)
		_exit(1);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: target_daemonize PIDFILE [MS]\n");
		return 2;
	}
	long ms = argc > 2 ? atol(argv[2]) : 1000;
	if (fork() != 0)
		return 0; /* the command is done */
	setsid();
	if (fork() != 0)
		return 0;
	/* Let go of whatever the caller handed us, as daemons do (up to 255,
	 * as many do; memprof keeps its own descriptor higher). */
	int null = open("/dev/null", O_RDWR);
	for (int fd = 0; fd < 3; fd++)
		dup2(null, fd);
	for (int fd = 3; fd < 256; fd++)
		close(fd);
	daemon_hold();
	write_pid(argv[1]);
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
	return 0;
}
