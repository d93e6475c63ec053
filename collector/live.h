/*
 * A process's live sampled blocks: allocation id (or address) -> bucket.
 *
 * In full trace every allocation and every free is an event, and each one
 * looked its block up in one hash table. Once a program keeps a few
 * hundred thousand blocks (a C++ map of 300,000 nodes), that table is
 * tens of megabytes, and every lookup's first load was a cache miss: perf
 * put 73% of the collector's cycles on them, 91% of an insert's on its
 * first load (issue 11). But the shim numbers allocations in order, per
 * ring (tring.c), so ids that arrive together are neighbours: here they
 * index pages of consecutive ids. An allocation writes next to the one
 * before it, and a free touches one slot.
 *
 * Everything else is in the hash table `other`: blocks keyed by address
 * (no ids: sampled mode, the leak check), frees that came before their
 * allocation, and ids no page holds. A page whose ids have mostly been
 * freed moves its few live ones there and is released, and pages are
 * created only while there are few enough for the live ids they hold, so
 * memory stays proportional to the live blocks whatever ids a client
 * sends.
 */
#ifndef MEMPROF_COLLECTOR_LIVE_H
#define MEMPROF_COLLECTOR_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"

struct live {
	struct map other; /* (key, kind) -> value: see proc.c's LIVE_BY_* */
	struct map pages; /* page number + 1 -> struct live_page * */
	size_t npages;
	size_t paged;     /* ids held in pages */
};

/* The key kind ids in `other` have (proc.c's LIVE_BY_ID). */
#define LIVE_ID_KIND 1

/* Live blocks in all: pages and `other`. */
size_t live_count(const struct live *l);
/* Stores val under allocation id (nonzero), replacing any value there. */
void live_put_id(struct live *l, uint64_t id, uint64_t val);
/* Removes id; true (and *val) if it was live. */
bool live_take_id(struct live *l, uint64_t id, uint64_t *val);
/* Makes dst (freed first) a copy of src. */
void live_copy(struct live *dst, const struct live *src);
void live_free(struct live *l);

#endif /* MEMPROF_COLLECTOR_LIVE_H */
