/*
 * Exec notices (see execs.h). A notice and the hello that settles it come
 * on different connections in either order: after a fork and exec the
 * notice is sent before the image is replaced, so it usually comes first;
 * a vfork child's or posix_spawn's notice travels in the parent's queue and
 * often comes after the child's hello. So hellos are remembered for a
 * while, by pid, and a notice is checked against them when it arrives.
 * The reason a notice was never settled is looked up when it arrives,
 * while the program is surely still there (a build's test binaries are
 * often deleted a moment later).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "execs.h"
#include "inspect.h"
#include "map.h"
#include "util.h"

/* Notices waiting for their hello; beyond this many, the oldest is
 * reported at once (a client cannot make us hold more). */
#define MAX_PENDING 4096
/* Hellos remembered, most recent first out of mind last. */
#define MAX_HELLOS 65536
#define MAX_PATH 4096

struct pending {
	uint32_t pid, flags;
	uint64_t time_ns;  /* the shim's CLOCK_REALTIME before the exec */
	uint64_t seen_ns;  /* our CLOCK_MONOTONIC when it arrived */
	char *path;
	const char *reason;
};

static struct pending *pend;
static size_t npend, cap_pend;

static struct map hello_by_pid; /* pid -> latest start_ns */
static struct {
	uint32_t pid;
	uint64_t start_ns;
} hello_ring[MAX_HELLOS];
static size_t hello_next, hello_count;

static void drop_pending(size_t i)
{
	free(pend[i].path);
	memmove(&pend[i], &pend[i + 1], (npend - i - 1) * sizeof(*pend));
	npend--;
}

static void report_one(const struct pending *n)
{
	if (n->flags & MP_EXEC_FORKED)
		return; /* a fork child that ended before it connected */
	const char *path = n->path[0] ? n->path : "?";
	log_debug("pid %u ran %s, which memprof could not see (%s)", n->pid, path, n->reason);
	report_line("unchecked %u %s %s", n->pid, n->reason, path);
}

void execs_hello(uint32_t pid, uint64_t start_ns)
{
	for (size_t i = 0; i < npend;) {
		if (pend[i].pid == pid && pend[i].time_ns <= start_ns)
			drop_pending(i);
		else
			i++;
	}
	/* Forget the oldest hello once the ring is full, unless a later
	 * hello of the same pid replaced it in the map already. */
	if (hello_count == MAX_HELLOS) {
		uint64_t *v = map_find(&hello_by_pid, hello_ring[hello_next].pid + 1ULL, 0);
		if (v && *v == hello_ring[hello_next].start_ns)
			map_remove(&hello_by_pid, hello_ring[hello_next].pid + 1ULL, 0, NULL);
	} else {
		hello_count++;
	}
	hello_ring[hello_next].pid = pid;
	hello_ring[hello_next].start_ns = start_ns;
	hello_next = (hello_next + 1) % MAX_HELLOS;
	/* The latest image, not the latest to arrive: an exec'd image's
	 * hello can be read before its old image's connection is. */
	uint64_t *known = map_find(&hello_by_pid, pid + 1ULL, 0);
	if (!known || *known < start_ns)
		map_put(&hello_by_pid, pid + 1ULL, 0, start_ns);
}

uint64_t execs_latest_hello(uint32_t pid)
{
	uint64_t *known = map_find(&hello_by_pid, pid + 1ULL, 0);
	return known ? *known : 0;
}

/* The exec a failure notice is about: the latest of pid's pending notices
 * not later than the failure. */
static void cancel(uint32_t pid, uint64_t time_ns)
{
	size_t best = npend;
	for (size_t i = 0; i < npend; i++)
		if (pend[i].pid == pid && pend[i].time_ns <= time_ns &&
		    (best == npend || pend[i].time_ns >= pend[best].time_ns))
			best = i;
	if (best < npend)
		drop_pending(best);
}

int execs_notice(const void *payload, uint32_t len, const char **why)
{
	struct mp_exec ex;
	if (len < sizeof(ex)) {
		*why = "malformed exec notice";
		return -1;
	}
	memcpy(&ex, payload, sizeof(ex));
	const char *path = (const char *)payload + sizeof(ex);
	if (ex.path_len != len - sizeof(ex) || ex.path_len > MAX_PATH || ex.pid == 0 ||
	    (ex.flags & ~(MP_EXEC_FAILED | MP_EXEC_NO_PRELOAD | MP_EXEC_SPAWNED | MP_EXEC_FORKED)) ||
	    memchr(path, '\0', ex.path_len)) {
		*why = "malformed exec notice";
		return -1;
	}
	if (ex.flags & MP_EXEC_FAILED) {
		cancel(ex.pid, ex.time_ns);
		return 0;
	}
	uint64_t *started = map_find(&hello_by_pid, ex.pid + 1ULL, 0);
	if (started && *started >= ex.time_ns)
		return 0; /* the new image said hello already */
	if (npend == MAX_PENDING) {
		report_one(&pend[0]);
		drop_pending(0);
	}
	GROW(pend, cap_pend, npend + 1);
	struct pending *n = &pend[npend++];
	n->pid = ex.pid;
	n->flags = ex.flags;
	n->time_ns = ex.time_ns;
	n->seen_ns = now_monotonic_ns();
	n->path = xstrndup(path, ex.path_len);
	n->reason = ex.flags & MP_EXEC_FORKED ? "fork child"
					      : inspect_program(n->path, ex.flags & MP_EXEC_NO_PRELOAD);
	return 0;
}

bool execs_waiting(uint64_t now_ns, uint64_t grace_ns)
{
	bool waiting = false;
	for (size_t i = 0; i < npend;) {
		bool alive = pid_alive(pend[i].pid);
		/* A fork child that ended without connecting is nothing to
		 * report: forget it rather than look at it on every tick. */
		if (!alive && (pend[i].flags & MP_EXEC_FORKED)) {
			drop_pending(i);
			continue;
		}
		if (alive && now_ns - pend[i].seen_ns < grace_ns)
			waiting = true;
		i++;
	}
	return waiting;
}

void execs_report(void)
{
	for (size_t i = 0; i < npend; i++) {
		report_one(&pend[i]);
		free(pend[i].path);
	}
	npend = 0;
}
