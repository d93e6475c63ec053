/*
 * Encoding what a struct proc knows as pprof profiles (profile.proto,
 * gzipped with zlib), and writing them so that a reader never
 * sees half a file.
 */
#ifndef MEMPROF_COLLECTOR_PPROF_H
#define MEMPROF_COLLECTOR_PPROF_H

#include <stddef.h>
#include <stdint.h>

#include "proc.h"

/* The heap profile of p: alloc_objects, alloc_space, inuse_objects,
 * inuse_space, unsampled as Go does; default_type is the sample type pprof
 * shows first ("inuse_space" for files and /heap, "alloc_space" for
 * /allocs). Returns a gzipped buffer the caller frees, or NULL. */
unsigned char *pprof_heap(struct proc *p, const char *default_type, size_t *len);

/* The same, with the counts as they were when p's in-use heap was at its
 * highest (peak.h); the allocated figures are those of that moment too. */
unsigned char *pprof_heap_peak(struct proc *p, const char *default_type, size_t *len);

/* The CPU profile of p since the snapshot base of p->cpu was taken (an
 * empty map: since the process began): samples/count and cpu/nanoseconds,
 * period 1e9/HZ, covering duration_ns from since_ns (CLOCK_REALTIME). Dump
 * files and /debug/pprof/profile keep snapshots of their own. */
unsigned char *pprof_cpu_since(struct proc *p, const struct map *base, uint64_t since_ns,
			      uint64_t duration_ns, size_t *len);

/* Writes data to path through a temporary file in the same directory and
 * rename(2). 0, or -1 with errno set; nothing is left behind on failure. */
int pprof_write_file(const char *path, const void *data, size_t len);

/* gzip (RFC 1952) of in; NULL on failure. */
unsigned char *pprof_gzip(const void *in, size_t len, size_t *out_len);

#endif /* MEMPROF_COLLECTOR_PPROF_H */
