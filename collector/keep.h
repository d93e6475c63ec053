/*
 * Which processes' profiles are written to files (keep.c).
 */
#ifndef MEMPROF_COLLECTOR_KEEP_H
#define MEMPROF_COLLECTOR_KEEP_H

#include <stdbool.h>

#include "proc.h"

/* cfg.all and cfg.only from MEMPROF_ALL and MEMPROF_ONLY (options, parsed
 * later, override them); a bad value is said and ignored. */
void keep_from_env(void);

/* p's dump is worth files: it recorded something (or --all), and its
 * program is among --only's, if given. */
bool keep_files(const struct proc *p);

#endif /* MEMPROF_COLLECTOR_KEEP_H */
