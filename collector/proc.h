/*
 * What the collector knows about one profiled process image (one
 * connection): its mappings, its stacks, the live sampled blocks and the
 * per-(stack, size) totals a heap profile is made of. It applies decoded
 * records; it neither reads sockets (conn.c) nor encodes pprof (pprof.c).
 */
#ifndef MEMPROF_COLLECTOR_PROC_H
#define MEMPROF_COLLECTOR_PROC_H

#include <stdbool.h>
#include <stdint.h>

#include "map.h"
#include "memprof_wire.h"
#include "symbolize.h"

struct mapping {
	uint64_t start, limit, offset, load_bias;
	char *path;       /* as the process named it */
	const char *file; /* what to read for symbols and unwind tables: path,
			   * or another file with the same contents (the
			   * collector's copy of the vDSO); NULL if none */
	uint8_t build_id[MP_MAX_BUILD_ID];
	uint32_t build_id_len;
};

struct location {
	uint64_t addr;    /* where the frame is: a return address minus one */
	int32_t mapping;  /* index into proc.maps, -1 if in no known mapping */
	uint16_t nlines;  /* 0 until symbolized */
	struct sym_line *lines; /* innermost first */
};

struct stack {
	uint32_t depth;
	uint32_t *locs; /* indices into proc.locs, leaf first */
};

/* Samples of one call stack allocating one size: Go's bucket. */
struct bucket {
	uint32_t stack;
	uint64_t size;
	uint64_t alloc_samples;
	uint64_t inuse_samples;
	uint64_t unit;        /* bytes one sample stands for (peak.h) */
	uint64_t peak_gen;    /* see peak.h: when peak_* were saved */
	uint64_t peak_inuse, peak_alloc;
};

struct unwinder; /* unwind.c */

struct proc {
	uint32_t pid, ppid;
	char *exe, *name;
	char *cmdline; /* argv joined with spaces */
	uint64_t rate;
	uint32_t cpu_hz, flags;
	uint64_t start_ns;
	uint64_t drops;       /* heap events the shim dropped */
	uint64_t cpu_drops;   /* CPU samples the shim dropped */
	uint64_t samples;     /* heap samples received */
	uint64_t cpu_samples; /* CPU samples received since the last CPU profile */
	uint64_t cpu_since_ns; /* start of the current CPU profile's window */
	struct mp_malloc_stats malloc_stats; /* the latest the process sent */
	bool have_malloc_stats;
	uint32_t malloc_stats_seq; /* counts the statistics received */
	bool bye;         /* the process said it is exiting */
	uint64_t inuse_est;   /* sampled in-use bytes, unsampled (peak.h) */
	uint64_t peak_est;    /* its highest so far */
	uint64_t peak_gen;    /* counts new highs (peak.h) */
	bool active;      /* it sent anything beyond its hello */

	struct mapping *maps;
	size_t nmaps, cap_maps;
	struct location *locs;
	size_t nlocs, cap_locs;
	struct map loc_by_addr;  /* addr -> index into locs */
	struct stack *stacks;
	size_t nstacks, cap_stacks;
	uint32_t *wire_stacks;   /* the shim's stack id - 1 -> index into stacks */
	size_t nwire_stacks, cap_wire_stacks;
	struct map stack_by_hash; /* hash of locs -> index into stacks */
	struct bucket *buckets;
	size_t nbuckets, cap_buckets;
	struct map bucket_by_key; /* (stack + 1, size) -> index into buckets */
	struct map live;          /* address -> index into buckets */
	struct map cpu;           /* stack + 1 -> timer periods, this window */
	struct unwinder *unwinder;
	/* leak check */
	struct mp_leak *leaks;    /* what the process reported unreachable */
	size_t nleaks, cap_leaks;
	unsigned char *leak_profile; /* gzipped, written with the next dump */
	size_t leak_profile_len;
	bool checked;             /* its final profiles went out with the report */
};

/* Creates the record for a process from its hello; NULL with *why set if
 * the hello is malformed. */
struct proc *proc_new(const void *payload, uint32_t len, const char **why);
void proc_free(struct proc *p);

/* A fork child starts with its parent's heap: copies the parent's mappings,
 * stacks and live blocks (not its stack ids, CPU samples or totals). child
 * must be fresh from proc_new. */
void proc_inherit(struct proc *child, const struct proc *parent);

/* Apply one record; 0, or -1 with *why naming what was wrong with it. */
int proc_apply(struct proc *p, uint32_t type, const void *payload, uint32_t len,
	       const char **why);

/* Interns a stack of locations (addresses already adjusted); returns its
 * index in p->stacks. */
uint32_t proc_intern_stack(struct proc *p, const uint64_t *addrs, uint32_t depth);

/* Symbolizes a location if that has not been done yet. */
void proc_symbolize(struct proc *p, struct location *loc);

/* Go's unsampling: how many allocations one sample of size bytes stands
 * for at this process's rate. */
double proc_sample_weight(const struct proc *p, uint64_t size);

#endif /* MEMPROF_COLLECTOR_PROC_H */
