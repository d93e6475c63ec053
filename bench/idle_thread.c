/*
 * bench/idle_thread.c: a preloadable library that starts one thread which
 * does nothing, for bench/instructions' "idle thread" column.
 *
 * The shim's writer thread costs a single-threaded program more than its
 * own work: once a process has a second thread, glibc's malloc leaves its
 * single-thread fast paths (SINGLE_THREAD_P) and takes the arena lock,
 * and pushes to the fastbins with compare-and-exchange, on every call the
 * thread cache does not serve. That part of the shim's cost is owed to
 * there being a thread at all, and this library measures it alone.
 */
#include <pthread.h>
#include <unistd.h>

static void *idle(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

__attribute__((constructor)) static void start_idle_thread(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, idle, NULL) == 0)
		pthread_detach(t);
}
