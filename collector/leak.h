/*
 * Leak reports for leak-checked processes (see leak.c): the records, and
 * the steps of a report, each on its own: grouping the leaked blocks by
 * stack, suppressing, formatting. Sending is conn.c's: leak.c calls
 * nothing of it.
 */
#ifndef MEMPROF_COLLECTOR_LEAK_H
#define MEMPROF_COLLECTOR_LEAK_H

#include "collector.h"
#include "strbuf.h"
#include "suppress.h"

#define LEAK_UNKNOWN_STACK UINT32_MAX /* the block's allocation was not heard of */
#define LEAK_PATH_MAX 4096

/* The leaked blocks of one allocation stack and kind. */
struct leak_group {
	uint32_t stack; /* index into proc.stacks, or LEAK_UNKNOWN_STACK */
	uint32_t kind;  /* MP_LEAK_* */
	uint64_t bytes, count;
	bool suppressed;
};

/* MP_REC_LEAKS: adds the blocks to the process's list. 0 or -1 (*why). */
int leak_add(struct proc *p, const void *payload, uint32_t len, const char **why);
/* MP_REC_LEAK_END: appends the MP_REC_LEAK_REPORT record for the process
 * to reply (the caller, conn.c, sends it), writes the leak profile and the
 * other profiles. 0 or -1 (*why). */
int leak_finish(struct conn *c, const void *payload, uint32_t len, struct strbuf *reply,
		const char **why);

/* p's reported blocks grouped by (stack, kind), in order of first
 * appearance; *out is malloc'd. Returns the number of groups. */
size_t leak_group(const struct proc *p, struct leak_group **out);
/* Marks the groups a suppression matches (counting its hits), totals them
 * into r, and sorts the groups as the report lists them: direct before
 * indirect, largest first. Symbolizes the stacks it looks at. */
void leak_suppress(struct proc *p, struct leak_group *g, size_t ng, struct suppressions *sup,
		   struct mp_leak_report *r);
/* Appends LeakSanitizer's text for the sorted groups to t; notes (or NULL)
 * go just before the summary line. */
void leak_format(struct strbuf *t, struct proc *p, const struct leak_group *g, size_t ng,
		 const struct suppressions *sup, const struct mp_leak_report *r,
		 const char *notes);

#endif /* MEMPROF_COLLECTOR_LEAK_H */
