/*
 * The peak heap profile: each process's in-use heap as it was when its
 * sampled in-use total was at its highest. proc.c calls the hooks below as
 * samples come and go; pprof.c and the writers read the counts at the peak.
 *
 * How it costs nothing to keep: no copy is ever taken. A new high only
 * bumps p->peak_gen, which says "every bucket's counts, as they are now,
 * are its counts at the peak". A bucket about to change saves its counts
 * first, once per high (peak_save), so afterwards its saved counts are the
 * peak's and its live ones have moved on. Reading the peak is then: the
 * saved counts if saved since the latest high, else the live ones. Per
 * event that is one compare, and at most five stores; memory is 48 bytes a
 * bucket. Measured, see README ("Peak heap profile").
 */
#ifndef MEMPROF_COLLECTOR_PEAK_H
#define MEMPROF_COLLECTOR_PEAK_H

#include <stdbool.h>
#include <stddef.h>

#include "proc.h"

/* A new bucket (zero counts) did not exist at the peak. */
static inline void peak_new_bucket(const struct proc *p, struct bucket *b)
{
	/* Sizes and rates come from clients: saturate, as pprof.c's
	 * round_value does (converting an out-of-range double is undefined;
	 * found by fuzz_wire). */
	double unit = proc_sample_weight(p, b->size) * (double)b->size + 0.5;
	b->unit = b->by_class ? 0 : unit >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)unit;
	b->peak_gen = p->peak_gen;
	b->peak_inuse = b->peak_alloc = 0;
	b->peak_inuse_bytes = b->peak_alloc_bytes = 0;
}

/* Before b's counts change. */
static inline void peak_save(const struct proc *p, struct bucket *b)
{
	if (b->peak_gen != p->peak_gen) {
		b->peak_gen = p->peak_gen;
		b->peak_inuse = b->inuse_samples;
		b->peak_alloc = b->alloc_samples;
		b->peak_inuse_bytes = b->inuse_bytes;
		b->peak_alloc_bytes = b->alloc_bytes;
	}
}

/* After one more sample of b is in use. */
static inline void peak_grew(struct proc *p, const struct bucket *b)
{
	p->inuse_est += b->unit;
	if (p->inuse_est > p->peak_est) {
		p->peak_est = p->inuse_est;
		p->peak_gen++;
	}
}

/* After more bytes are in use at once (a tally). */
static inline void peak_grew_bytes(struct proc *p, uint64_t add)
{
	p->inuse_est = add > UINT64_MAX - p->inuse_est ? UINT64_MAX : p->inuse_est + add;
	if (p->inuse_est > p->peak_est) {
		p->peak_est = p->inuse_est;
		p->peak_gen++;
	}
}

/* After bytes are no longer in use. */
static inline void peak_shrank_bytes(struct proc *p, uint64_t less)
{
	p->inuse_est -= less < p->inuse_est ? less : p->inuse_est;
}

/* After one sample of b is no longer in use. */
static inline void peak_shrank(struct proc *p, const struct bucket *b)
{
	p->inuse_est -= b->unit < p->inuse_est ? b->unit : p->inuse_est;
}

/* b's counts at the peak. */
static inline uint64_t peak_inuse(const struct proc *p, const struct bucket *b)
{
	return b->peak_gen == p->peak_gen ? b->peak_inuse : b->inuse_samples;
}

static inline uint64_t peak_alloc(const struct proc *p, const struct bucket *b)
{
	return b->peak_gen == p->peak_gen ? b->peak_alloc : b->alloc_samples;
}

/* A by_class bucket's bytes at the peak. */
static inline uint64_t peak_inuse_bytes(const struct proc *p, const struct bucket *b)
{
	return b->peak_gen == p->peak_gen ? b->peak_inuse_bytes : b->inuse_bytes;
}

static inline uint64_t peak_alloc_bytes(const struct proc *p, const struct bucket *b)
{
	return b->peak_gen == p->peak_gen ? b->peak_alloc_bytes : b->alloc_bytes;
}

/* A fork child's inherited heap is its first peak. */
void peak_inherit(struct proc *child);

#endif /* MEMPROF_COLLECTOR_PEAK_H */
