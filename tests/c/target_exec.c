/*
 * Allocates, then replaces itself at once: the allocations made just before
 * an exec must still reach the profile of the program that made them.
 *   target_exec HOW PROG [ARGS...]
 * holds 4 MiB (64 blocks of 64 KiB) in hold_before_exec, then execs PROG
 * with HOW one of execv, execvp, execve, execl, execlp, execle, fexecve;
 * or, with HOW vfork, runs PROG in a vfork child (which calls execv in
 * the parent's memory) and prints its status; with HOW spawn or spawnp,
 * runs it with posix_spawn or posix_spawnp and prints its status.
 */
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void *blocks[64];

__attribute__((noinline)) static void hold_before_exec(void)
{
	for (int i = 0; i < 64; i++) {
		blocks[i] = malloc(64 << 10);
		memset(blocks[i], i, 64 << 10);
	}
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: target_exec HOW PROG [ARGS...]\n");
		return 2;
	}
	const char *how = argv[1];
	char **args = argv + 2;
	hold_before_exec();
	if (strcmp(how, "execv") == 0) {
		execv(args[0], args);
	} else if (strcmp(how, "execvp") == 0) {
		execvp(args[0], args);
	} else if (strcmp(how, "execve") == 0) {
		execve(args[0], args, environ);
	} else if (strcmp(how, "execl") == 0) {
		execl(args[0], args[0], args[1], (char *)NULL);
	} else if (strcmp(how, "execlp") == 0) {
		execlp(args[0], args[0], args[1], (char *)NULL);
	} else if (strcmp(how, "execle") == 0) {
		execle(args[0], args[0], args[1], (char *)NULL, environ);
	} else if (strcmp(how, "fexecve") == 0) {
		int fd = open(args[0], O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			fexecve(fd, args, environ);
	} else if (strcmp(how, "vfork") == 0) {
		pid_t pid = vfork();
		if (pid == 0) {
			execv(args[0], args);
			_exit(127);
		}
		int status = 0;
		waitpid(pid, &status, 0);
		printf("vfork child %d: status %d\n", (int)pid, WEXITSTATUS(status));
		return 0;
	} else if (strcmp(how, "spawn") == 0 || strcmp(how, "spawnp") == 0) {
		pid_t pid;
		int rc = how[5] ? posix_spawnp(&pid, args[0], NULL, NULL, args, environ)
				: posix_spawn(&pid, args[0], NULL, NULL, args, environ);
		if (rc != 0) {
			fprintf(stderr, "%s: %s\n", how, strerror(rc));
			return 127;
		}
		int status = 0;
		waitpid(pid, &status, 0);
		printf("%s child %d: status %d\n", how, (int)pid, WEXITSTATUS(status));
		return 0;
	} else {
		fprintf(stderr, "unknown HOW %s\n", how);
		return 2;
	}
	perror("exec");
	return 127;
}
