/*
 * What the collector knows about one profiled process image (one
 * connection): its mappings, its stacks, the live sampled blocks and the
 * per-(stack, size) totals (per (stack, size class) in full trace) a heap
 * profile is made of. It applies decoded records; it neither reads
 * sockets (conn.c) nor encodes pprof (pprof.c).
 */
#ifndef MEMPROF_COLLECTOR_PROC_H
#define MEMPROF_COLLECTOR_PROC_H

#include <stdbool.h>
#include <stdint.h>

#include "live.h"
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
	uint32_t last_bucket; /* + 1: the bucket it last allocated into, 0 none */
	uint32_t *locs; /* indices into proc.locs, leaf first */
};

/* Samples of one call stack allocating one size: Go's bucket. Or, in
 * full trace (MP_REC_TALLY), every block of one stack with sizes in one
 * size class, counted and their bytes added up exactly in the program:
 * then `by_class` is set, `size` is the class and the bytes are in the
 * *_bytes fields, not (samples x size). */
struct bucket {
	uint32_t stack;
	bool by_class;
	uint64_t size;
	uint64_t alloc_samples;
	uint64_t inuse_samples;
	uint64_t unit;        /* bytes one sample stands for (peak.h); 0 by class */
	uint64_t peak_gen;    /* see peak.h: when peak_* were saved */
	uint64_t peak_inuse, peak_alloc;
	/* by_class: */
	uint64_t alloc_bytes, inuse_bytes;
	uint64_t peak_inuse_bytes, peak_alloc_bytes;
	/* The last totals from the shim's tallies (struct mp_tally). */
	uint64_t tally_allocs, tally_frees, tally_alloc_bytes, tally_free_bytes;
};

/* A bucket's bytes allocated and in use, as its counts are now. */
static inline uint64_t bucket_alloc_bytes(const struct bucket *b)
{
	return b->by_class ? b->alloc_bytes : b->alloc_samples * b->size;
}

static inline uint64_t bucket_inuse_bytes(const struct bucket *b)
{
	return b->by_class ? b->inuse_bytes : b->inuse_samples * b->size;
}

/*
 * What one process may make the collector keep (issue 12: 400,000 distinct
 * stacks from one client took 450 MB). Past a limit, new stacks and the
 * samples that name them, new (stack, size) buckets and live samples are
 * not kept but counted (proc.over_limit_*), and the count is said in the
 * profiles' comments and on the /debug/pprof/ page. Real programs stay far
 * below: a compiler under a leak check makes some 20,000 stacks.
 */
#define PROC_MAX_STACKS 200000      /* distinct call stacks */
#define PROC_MAX_LOCATIONS 1000000  /* distinct frame addresses */
#define PROC_MAX_BUCKETS 1000000    /* (stack, size) and (stack, class) pairs */
#define PROC_MAX_LIVE 4000000       /* live sampled blocks (~200 MB) */
#define PROC_STACK_OVER_LIMIT UINT32_MAX /* a stack that was not kept */

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
	uint64_t over_limit_stacks;  /* stacks not kept (PROC_MAX_*) */
	uint64_t over_limit_samples; /* heap and CPU samples not kept (PROC_MAX_*) */
	uint64_t cpu_samples; /* CPU samples received, since the process began */
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
	uint32_t *wire_stacks;   /* the shim's stack id - 1 -> index into stacks,
				  * for the first nwire_stacks_kept ids */
	size_t nwire_stacks;     /* ids the shim has defined */
	size_t nwire_stacks_kept, cap_wire_stacks;
	struct map stack_by_hash; /* hash of locs -> index into stacks */
	struct bucket *buckets;
	size_t nbuckets, cap_buckets;
	struct map bucket_by_key; /* (stack + 1, size) -> index into buckets */
	struct live live;         /* address or id -> index into buckets (proc.c) */
	uint64_t freed_first;     /* frees in live waiting for their allocation */
	/* CPU time by stack, cumulative: stack + 1 -> timer periods since the
	 * process began. Nothing here knows of windows: a dump's CPU profile
	 * and an HTTP profile?seconds=N each diff against a snapshot of their
	 * own (cpu_dumped below; the endpoints' windows). */
	struct map cpu;
	struct map cpu_dumped;    /* dump.c's: cpu as of the last CPU profile file */
	uint64_t cpu_dumped_ns;   /* dump.c's: when that was (CLOCK_REALTIME) */
	uint64_t peak_dumped[5];  /* dump.c's: what the peak file was written from */
	struct unwinder *unwinder;
	/* leak check */
	struct mp_leak *leaks;    /* what the process reported unreachable */
	size_t nleaks, cap_leaks;
	unsigned char *leak_profile; /* gzipped, written with the next dump */
	size_t leak_profile_len;
	bool checked;             /* its final profiles went out with the report */
};

/*
 * Creates the record for a process from its hello; NULL with *why set if
 * the hello is malformed. peer_pid is the pid SO_PEERCRED gave for the
 * connection, and it wins over the hello's: it is the kernel's word, in the
 * collector's pid namespace, where /proc, kill -USR2 and ?pid= live, so a
 * client cannot pass for another process. A client in a pid namespace of
 * its own (a container) legitimately knows itself by another number; it is
 * known here by ours, and its parent is read from our /proc. Only when the
 * kernel cannot name the peer in our namespace (peer_pid 0: it runs in an
 * ancestor namespace) is the hello taken at its word.
 */
struct proc *proc_new(const void *payload, uint32_t len, uint32_t peer_pid, const char **why);
void proc_free(struct proc *p);

/* A fork child starts with its parent's heap: copies the parent's mappings,
 * stacks and live blocks (not its stack ids, CPU samples or totals). child
 * must be fresh from proc_new. */
void proc_inherit(struct proc *child, const struct proc *parent);

/* Apply one record; 0, or -1 with *why naming what was wrong with it. */
int proc_apply(struct proc *p, uint32_t type, const void *payload, uint32_t len,
	       const char **why);

/* Interns a stack of locations (addresses already adjusted); returns its
 * index in p->stacks, or PROC_STACK_OVER_LIMIT (counted) when a new stack
 * or location would pass PROC_MAX_STACKS or PROC_MAX_LOCATIONS. */
uint32_t proc_intern_stack(struct proc *p, const uint64_t *addrs, uint32_t depth);

/* Symbolizes a location if that has not been done yet. */
void proc_symbolize(struct proc *p, struct location *loc);

/* Go's unsampling: how many allocations one sample of size bytes stands
 * for at this process's rate. */
double proc_sample_weight(const struct proc *p, uint64_t size);

#endif /* MEMPROF_COLLECTOR_PROC_H */
