/*
 * Leak reports for leak-checked processes (see leak.c).
 */
#ifndef MEMPROF_COLLECTOR_LEAK_H
#define MEMPROF_COLLECTOR_LEAK_H

#include "collector.h"

/* MP_REC_LEAKS: adds the blocks to the process's list. 0 or -1 (*why). */
int leak_add(struct proc *p, const void *payload, uint32_t len, const char **why);
/* MP_REC_LEAK_END: writes the report back to the process, the leak
 * profile and the other profiles to files. 0 or -1 (*why). */
int leak_finish(struct conn *c, const void *payload, uint32_t len, const char **why);

#endif /* MEMPROF_COLLECTOR_LEAK_H */
