/*
 * The keeper thread: the shim's one thread in the program's descriptor
 * table.
 *
 * The writer keeps the connection to the collector in a descriptor table
 * of its own (unshare(CLONE_FILES), writer.c), where the program can
 * neither close it (a daemon's closefrom) nor be handed its number: a
 * socket made again in the program's table took, for an instant, the
 * lowest free number, the one the program's next open() expected. In a
 * table that holds nothing of the program's, the writer cannot do the two
 * things that need the program's descriptors:
 *   - write memprof's lines to the program's stderr: it queues them here;
 *   - end a process whose own threads have all gone (thread.c): exit(0)
 *     runs the program's atexit handlers and flushes its stdio, into its
 *     descriptors; and once the last thread that shares the program's
 *     table has gone, the kernel closes every file in it.
 * The keeper does those and otherwise sleeps: it costs a thread, not
 * work. Like the writer it blocks every signal and is not one of the
 * program's threads (no CPU timer, left running by the leak check).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#define LOG_SLOTS 8
#define LOG_LINE 512

static pthread_t keeper_thread;
static _Atomic uint32_t running; /* futex: 0 once the keeper has ended */
static _Atomic pid_t keeper_tid;
static _Atomic uint32_t keeper_word; /* futex: bumped to wake the keeper */
static _Atomic bool quit;

/* Lines from the writer: it alone fills slots (in order), the keeper alone
 * empties them. */
static char log_lines[LOG_SLOTS][LOG_LINE];
static uint32_t log_lens[LOG_SLOTS];
static _Atomic uint32_t log_head, log_tail;

void mp_keeper_wake(void)
{
	if (!atomic_load_explicit(&running, memory_order_relaxed))
		return;
	atomic_fetch_add_explicit(&keeper_word, 1, memory_order_release);
	mp_futex_wake(&keeper_word);
}

bool mp_keeper_running(void)
{
	return atomic_load(&running) != 0;
}

pid_t mp_keeper_tid(void)
{
	/* It says who it is when it first runs: the leak check, which must
	 * know which thread not to stop, waits for that. */
	return mp_await_tid(&keeper_tid, mp_keeper_running);
}

bool mp_keeper_log(const char *line, size_t len)
{
	if (!atomic_load(&running))
		return false;
	uint32_t h = atomic_load_explicit(&log_head, memory_order_relaxed);
	if (h - atomic_load_explicit(&log_tail, memory_order_acquire) >= LOG_SLOTS)
		return true; /* a burst of lines nobody printed yet: this one is lost */
	if (len > LOG_LINE)
		len = LOG_LINE;
	memcpy(log_lines[h % LOG_SLOTS], line, len);
	log_lens[h % LOG_SLOTS] = (uint32_t)len;
	atomic_store_explicit(&log_head, h + 1, memory_order_release);
	mp_keeper_wake();
	return true;
}

static void print_logs(void)
{
	uint32_t t = atomic_load_explicit(&log_tail, memory_order_relaxed);
	while (t != atomic_load_explicit(&log_head, memory_order_acquire)) {
		mp_write_stderr(log_lines[t % LOG_SLOTS], log_lens[t % LOG_SLOTS]);
		atomic_store_explicit(&log_tail, ++t, memory_order_release);
	}
}

int mp_self_stat(char *state, long *threads)
{
	char buf[1024];
	int fd = mp_fd_high(open("/proc/self/stat", O_RDONLY | O_CLOEXEC));
	if (fd < 0)
		return -1;
	ssize_t len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return 0;
	buf[len] = '\0';
	/* "pid (comm) S ppid ...": comm may hold anything, so count the
	 * fields after its last ')'. State is field 3, num_threads field 20. */
	const char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return 0;
	*state = p[2];
	int field = 3;
	for (p += 2; *p && field < 20; p++)
		if (*p == ' ')
			field++;
	*threads = 0;
	for (; *p >= '0' && *p <= '9'; p++)
		*threads = *threads * 10 + (*p - '0');
	return 1;
}

bool mp_program_gone(uint64_t since)
{
	/* Called only once thread.c counts none of the program's threads, so
	 * none is alive to race with the descriptor this opens for a moment. */
	char state = 0;
	long threads = 0;
	int got = mp_self_stat(&state, &threads);
	if (got < 0) /* no /proc: trust the count, after a pause */
		return mp_now_ns() - since > 100000000u;
	/* Left: the zombie of the initial thread, this one, and the writer
	 * if it runs apart from this one. */
	long ours = mp_keeper_running() && mp_writer_alive() ? 2 : 1;
	return got && state == 'Z' && threads == 1 + ours;
}

long mp_orphan_watch(struct mp_orphan_watch *w)
{
	if (!mp_threads_orphaned()) {
		w->since = 0;
		return -1;
	}
	/* Look often at first (the last thread is usually on its way out),
	 * then less and less (an unknown thread, started before memprof, may
	 * live on). */
	if (!w->since) {
		w->since = mp_now_ns();
		w->nap_ms = 1;
	} else if (w->nap_ms < 100) {
		w->nap_ms *= 2;
	}
	return mp_program_gone(w->since) ? 0 : w->nap_ms;
}

static void *keeper_main(void *arg)
{
	(void)arg;
	mp_tls.busy = 1; /* anything this thread allocates is the shim's */
	atomic_store(&keeper_tid, (pid_t)syscall(SYS_gettid));
	mp_futex_wake((_Atomic uint32_t *)&keeper_tid);
	struct mp_orphan_watch watch = { 0, 0 };
	for (;;) {
		uint32_t seen = atomic_load_explicit(&keeper_word, memory_order_acquire);
		print_logs();
		if (atomic_load(&quit))
			break;
		long nap_ms = mp_orphan_watch(&watch);
		/* The writer, still running, sends what is queued and its
		 * goodbye from the exit handlers (mp_stop). */
		if (nap_ms == 0) {
			print_logs(); /* what came while /proc was read */
			mp_exit_for_program();
		}
		mp_futex_wait(&keeper_word, seen, nap_ms);
	}
	atomic_store(&running, 0);
	mp_futex_wake(&running);
	return NULL;
}

int mp_keeper_start(void)
{
	atomic_store(&quit, false);
	atomic_store(&keeper_tid, 0);
	atomic_store(&log_head, 0);
	atomic_store(&log_tail, 0);
	atomic_store(&running, 1);
	if (mp_start_own_thread(&keeper_thread, keeper_main, "memprof-keeper") != 0) {
		atomic_store(&running, 0);
		return -1;
	}
	return 0;
}

void mp_keeper_stop(bool wait)
{
	if (!atomic_load(&running))
		return;
	atomic_store(&quit, true);
	mp_keeper_wake();
	/* Its last act is to print what it holds: the caller's next line
	 * comes after those. */
	for (int i = 0; wait && i < 100 && atomic_load(&running); i++)
		mp_futex_wait(&running, 1, 10);
}

void mp_keeper_fork_child(void)
{
	/* The parent's keeper did not come along. */
	atomic_store(&running, 0);
	atomic_store(&keeper_tid, 0);
}
