/*
 * Saying where names are missing: which of a process's files have no debug
 * information (their functions are named from the symbol tables alone,
 * exported ones only where the file is stripped, and other addresses as
 * module+0xoff), and how to get it. Used by the profile's comments and the
 * index page.
 */
#ifndef MEMPROF_COLLECTOR_DEBUGINFO_H
#define MEMPROF_COLLECTOR_DEBUGINFO_H

#include "map.h"
#include "proc.h"
#include "strbuf.h"

/* How to get the debug files, in one sentence. */
extern const char debuginfo_advice[];

/* Appends to list (", "-separated) the path of each file of p that a
 * location points into and that has no debug information, unless seen
 * (keyed by the path's hash) already has it; only the mappings for which
 * used(i, arg) is true, or every mapping a location of p points into if
 * used is NULL. Returns how many it appended. */
unsigned debuginfo_missing(struct proc *p, bool (*used)(size_t i, void *arg), void *arg,
			   struct strbuf *list, struct map *seen);

#endif /* MEMPROF_COLLECTOR_DEBUGINFO_H */
