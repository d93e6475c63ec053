/*
 * Unwinding the register and stack copies of CPU samples into call stacks.
 */
#ifndef MEMPROF_COLLECTOR_UNWIND_H
#define MEMPROF_COLLECTOR_UNWIND_H

#include <stdint.h>

#include "memprof_wire.h"
#include "proc.h"

/* Fills out[0..n) with the sample's stack, leaf first: the interrupted pc
 * as is, the callers' return addresses minus one (so that they fall inside
 * the call). Returns n >= 1 when max >= 1. */
uint32_t unwind_sample(struct proc *p, const struct mp_cpu_sample *s, const unsigned char *stack,
		       uint64_t *out, uint32_t max);
void unwind_free(struct unwinder *u);

#endif /* MEMPROF_COLLECTOR_UNWIND_H */
