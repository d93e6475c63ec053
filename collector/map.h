/*
 * An open-addressing hash map from a two-word key to one word, used for
 * every index in the collector (live blocks by address, buckets by stack
 * and size, locations by address, ...). Linear probing with backward-shift
 * deletion, so lookups stay short however many removals there were.
 * A key's first word must not be 0 (that marks an empty slot).
 */
#ifndef MEMPROF_COLLECTOR_MAP_H
#define MEMPROF_COLLECTOR_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct map_slot {
	uint64_t k1, k2, val;
};

struct map {
	struct map_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t count;
};

/* Pointer to the value stored under (k1, k2), or NULL. */
uint64_t *map_find(const struct map *m, uint64_t k1, uint64_t k2);
/* Stores val under (k1, k2), replacing any value there. */
void map_put(struct map *m, uint64_t k1, uint64_t k2, uint64_t val);
/* Removes (k1, k2); true (and *val, if val) if it was there. */
bool map_remove(struct map *m, uint64_t k1, uint64_t k2, uint64_t *val);
void map_clear(struct map *m);
/* Makes dst (freed first) a copy of src. */
void map_copy(struct map *dst, const struct map *src);
void map_free(struct map *m);

/* Iteration: for (size_t i = 0; i < m.cap; i++) if (m.slots[i].k1) ... */

uint64_t hash_bytes(const void *p, size_t n);

#endif /* MEMPROF_COLLECTOR_MAP_H */
