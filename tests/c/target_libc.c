/*
 * Memory that glibc allocates on the program's behalf, from a thread, so
 * that every frame above the program's own function is glibc's: 500 FILEs
 * kept open by open_files (each a malloc in libc's __fopen_internal; 500
 * stays under the usual limit of 1024 descriptors) and 500 strings from
 * asprintf in format_names (libc's __vasprintf_internal). Prints "ready
 * PID" and waits for SIGUSR1. The main thread allocates next to nothing
 * itself (it prints with write(2), not through stdout's malloc'd buffer):
 * its stacks end in _start, which has no DWARF for go tool pprof to name.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define COUNT 500

static FILE *files[COUNT];
static char *names[COUNT];

__attribute__((noinline)) static void open_files(void)
{
	for (int i = 0; i < COUNT; i++)
		files[i] = fopen("/dev/null", "r");
}

__attribute__((noinline)) static void format_names(void)
{
	for (int i = 0; i < COUNT; i++)
		if (asprintf(&names[i], "%0200d", i) < 0)
			names[i] = NULL;
}

static void *work(void *arg)
{
	(void)arg;
	open_files();
	format_names();
	return NULL;
}

int main(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	pthread_t t;
	if (pthread_create(&t, NULL, work, NULL) != 0)
		return 1;
	pthread_join(t, NULL);
	char line[32];
	int len = snprintf(line, sizeof(line), "ready %d\n", (int)getpid());
	if (write(STDOUT_FILENO, line, (size_t)len) != len)
		return 1;
	int sig;
	sigwait(&set, &sig);
	for (int i = 0; i < COUNT; i++) {
		if (files[i])
			fclose(files[i]);
		free(names[i]);
	}
	return 0;
}
