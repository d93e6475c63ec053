/*
 * Exec notices (MP_REC_EXEC): which process is about to become which
 * program. A notice is settled when the new image says hello (same pid, a
 * start not earlier than the notice) or when the exec fails; the rest name
 * processes memprof never saw, each with a one-word reason found by
 * looking at the program file. This module owns the pending notices and a
 * bounded record of recent hellos; it writes `unchecked` report lines and
 * knows nothing of connections.
 */
#ifndef MEMPROF_COLLECTOR_EXECS_H
#define MEMPROF_COLLECTOR_EXECS_H

#include <stdbool.h>
#include <stdint.h>

/* Takes a notice from a client (any client: a vfork child's comes through
 * its parent's connection). 0, or -1 with *why set if it is malformed. */
int execs_notice(const void *payload, uint32_t len, const char **why);

/* Process pid started an image at start_ns (its hello): settles what it
 * was announced as. */
void execs_hello(uint32_t pid, uint64_t start_ns);

/* The start of pid's latest image that said hello (0: none known). */
uint64_t execs_latest_hello(uint32_t pid);

/* Is a hello still to be expected for some notice: one received less than
 * grace_ns ago (now_ns, both CLOCK_MONOTONIC) whose process still exists? */
bool execs_waiting(uint64_t now_ns, uint64_t grace_ns);

/* Writes "unchecked PID REASON PATH" for every notice never settled (and,
 * with --verbose, says so on stderr), then forgets them. */
void execs_report(void);

#endif /* MEMPROF_COLLECTOR_EXECS_H */
