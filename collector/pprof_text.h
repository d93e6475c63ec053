/*
 * The text pages of /debug/pprof/: the HTML index of the processes, and a
 * heap profile in the legacy text format (?debug=1) with a summary of the
 * process's memory after it.
 */
#ifndef MEMPROF_COLLECTOR_PPROF_TEXT_H
#define MEMPROF_COLLECTOR_PPROF_TEXT_H

#include <stddef.h>

#include "proc.h"

/* p's heap as Go's runtime/pprof writes it with debug=1 (symbolizing what
 * it needs). Returns a malloc'd buffer of *len bytes. */
char *pprof_text_heap(struct proc *p, size_t *len);

/* The index: one row per process of the collector. */
char *pprof_text_index(size_t *len);

#endif /* MEMPROF_COLLECTOR_PPROF_TEXT_H */
