/*
 * A process's live sampled blocks: allocation id or address -> bucket.
 *
 * In full trace every allocation and every free is an event, and each one
 * looked its block up in one hash table. Once a program keeps a few
 * hundred thousand blocks (a C++ map of 300,000 nodes), that table is
 * tens of megabytes, and every lookup's first load was a cache miss: perf
 * put 73% of the collector's cycles on them, 91% of an insert's on its
 * first load (issue 11). But keys that arrive together are neighbours:
 * the shim numbers allocations in order, per ring (tring.c), and an
 * allocator hands out addresses near the ones before. So ids index pages
 * of 1024 consecutive ids, and 16-byte-aligned addresses pages of 1024
 * granules (16 KB of address space): an allocation writes next to the
 * one before it, and a free touches one slot.
 *
 * Everything else is in the hash table `other`: other kinds of key (frees
 * that came before their allocation), addresses not 16-byte aligned, and
 * keys no page holds. A page is released once empty, or once it has had
 * many keys but keeps few live (those move to `other`), and pages are made
 * only while there are few for the keys they hold, so memory stays
 * proportional to the most live blocks whatever keys a client sends.
 */
#ifndef MEMPROF_COLLECTOR_LIVE_H
#define MEMPROF_COLLECTOR_LIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"

/* Kinds of key: the second word of `other`'s keys. */
enum { LIVE_BY_ADDR = 0, LIVE_BY_ID = 1, LIVE_KIND_PAGED_MAX = 1 };

struct live {
	struct map other; /* (key, kind) -> value */
	struct map pages; /* (page number + 1, kind) -> struct live_page * */
	size_t paged;     /* keys held in pages */
	struct live_page *spare; /* a released page, zeroed, for the next */
	/* Pages used last, by a hash of their number: each event looked its
	 * page up in `pages` (22% of the collector's samples in map_find at
	 * rate 1, two threads' rings taking turns). */
	struct {
		uint64_t page, kind;
		struct live_page *pg; /* NULL: empty */
	} recent[4];
};

/* Keys held, of every kind. */
size_t live_count(const struct live *l);
/* Stores val under (key, kind); key nonzero. A key already there is
 * replaced if it is in the same place, so put a key again only after
 * taking it (proc.c does: an address is taken before it is put, and an
 * id comes once from an honest client; a dishonest one skews only its
 * own counts). */
void live_put(struct live *l, uint64_t key, uint64_t kind, uint64_t val);
/* Removes (key, kind); true (and *val, if val) if it was there. */
bool live_take(struct live *l, uint64_t key, uint64_t kind, uint64_t *val);
/* Whether (key, kind) is there; its value in *val. */
bool live_find(const struct live *l, uint64_t key, uint64_t kind, uint64_t *val);
/* Makes dst (freed first) a copy of src. */
void live_copy(struct live *dst, const struct live *src);
void live_free(struct live *l);

#endif /* MEMPROF_COLLECTOR_LIVE_H */
