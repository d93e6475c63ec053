/*
 * A process's live sampled blocks; see live.h.
 */
#include <stdlib.h>
#include <string.h>

#include "live.h"
#include "util.h"

#define PAGE_SLOTS 1024U
#define ID_SHIFT 10   /* an id's page: id / PAGE_SLOTS */
#define ADDR_GRAIN 4  /* an address's slot: its 16-byte granule */
#define ADDR_SHIFT 14 /* an address's page: 16 KB of address space */
/* Pages a process may have beyond one per PAGED_PER_PAGE keys in them,
 * counted when a page is made: 4 KB each, so at most ~256 KB plus 128
 * bytes per key of the most there ever were in pages (a page outlives
 * most of its keys until it is empty or sparse, below). */
#define FREE_PAGES 64
#define PAGED_PER_PAGE 32
/* A page that has had at least half as many keys as it has slots is
 * released once fewer than one in 32 of those is live, its live ones
 * moved to `other`: few enough that a program freeing most of what it
 * made does not fill the table it moves them to (RSS grew by a third at
 * one in 8), and many enough that pages that stay cost at most 128 bytes
 * per live key. */
#define SPARSE(pg) ((pg)->filled >= PAGE_SLOTS / 2 && (pg)->live * 32 < (pg)->filled)

/* A slot holds the value + 1 (0: empty), or NOT_KEPT_SLOT for UINT64_MAX;
 * other values do not fit, and go to `other`. */
#define NOT_KEPT_SLOT UINT32_MAX
#define SLOT_MAX (UINT32_MAX - 2ULL)

struct live_page {
	uint32_t live;   /* nonzero slots */
	uint32_t filled; /* times an empty slot was written, up to PAGE_SLOTS */
	uint32_t slot[PAGE_SLOTS];
};

/* Where (key, kind) would be paged: false if it never is. */
static inline __attribute__((always_inline)) bool place(uint64_t key, uint64_t kind, uint64_t *page,
						      uint32_t *slot)
{
	if (kind == LIVE_BY_ID) {
		*page = key >> ID_SHIFT;
		*slot = (uint32_t)(key & (PAGE_SLOTS - 1));
		return true;
	}
	if (kind == LIVE_BY_ADDR && !(key & ((1U << ADDR_GRAIN) - 1))) {
		*page = key >> ADDR_SHIFT;
		*slot = (uint32_t)(key >> ADDR_GRAIN) & (PAGE_SLOTS - 1);
		return true;
	}
	return false;
}

static uint64_t key_at(uint64_t page, uint32_t slot, uint64_t kind)
{
	return kind == LIVE_BY_ID ? page << ID_SHIFT | slot
				  : page << ADDR_SHIFT | (uint64_t)slot << ADDR_GRAIN;
}

static size_t recent_of(uint64_t page)
{
	/* An id's page number has its ring's number in its high bits. */
	return (size_t)(page ^ page >> 30) & 3;
}

static struct live_page *page_lookup(const struct live *l, uint64_t page, uint64_t kind)
{
	uint64_t *v = map_find(&l->pages, page + 1, kind);
	return v ? (struct live_page *)(uintptr_t)*v : NULL;
}

static inline __attribute__((always_inline)) struct live_page *page_of(struct live *l, uint64_t page,
								     uint64_t kind)
{
	size_t r = recent_of(page);
	if (l->recent[r].pg && l->recent[r].page == page && l->recent[r].kind == kind)
		return l->recent[r].pg;
	struct live_page *pg = page_lookup(l, page, kind);
	if (!pg)
		return NULL;
	l->recent[r].page = page;
	l->recent[r].kind = kind;
	l->recent[r].pg = pg;
	return pg;
}

static uint64_t slot_value(uint32_t s)
{
	return s == NOT_KEPT_SLOT ? UINT64_MAX : s - 1ULL;
}

size_t live_count(const struct live *l)
{
	return l->other.count + l->paged;
}

static void release_page(struct live *l, uint64_t page, uint64_t kind, struct live_page *pg)
{
	/* A sparse page's keys move to `other` (an empty page has none). */
	if (pg->live)
		for (uint32_t i = 0; i < PAGE_SLOTS; i++)
			if (pg->slot[i])
				map_put(&l->other, key_at(page, i, kind), kind, slot_value(pg->slot[i]));
	l->paged -= pg->live;
	map_remove(&l->pages, page + 1, kind, NULL);
	if (l->recent[recent_of(page)].pg == pg)
		l->recent[recent_of(page)].pg = NULL;
	/* Kept for the next page: a program that allocates and frees in turn
	 * empties and refills the same page. */
	if (!l->spare) {
		if (pg->live) /* an empty page's slots are all 0 already */
			memset(pg->slot, 0, sizeof(pg->slot));
		pg->live = pg->filled = 0;
		l->spare = pg;
	} else {
		free(pg);
	}
}

void live_put(struct live *l, uint64_t key, uint64_t kind, uint64_t val)
{
	uint64_t page;
	uint32_t i;
	if (!place(key, kind, &page, &i) || (val > SLOT_MAX && val != UINT64_MAX)) {
		map_put(&l->other, key, kind, val);
		return;
	}
	struct live_page *pg = page_of(l, page, kind);
	if (!pg) {
		if (l->pages.count >= FREE_PAGES + l->paged / PAGED_PER_PAGE) {
			map_put(&l->other, key, kind, val);
			return;
		}
		pg = l->spare ? l->spare : xcalloc(1, sizeof(*pg));
		l->spare = NULL;
		map_put(&l->pages, page + 1, kind, (uint64_t)(uintptr_t)pg);
	}
	if (!pg->slot[i]) {
		pg->live++;
		pg->filled += pg->filled < PAGE_SLOTS;
		l->paged++;
	}
	pg->slot[i] = val == UINT64_MAX ? NOT_KEPT_SLOT : (uint32_t)(val + 1);
}

bool live_take(struct live *l, uint64_t key, uint64_t kind, uint64_t *val)
{
	uint64_t page;
	uint32_t i;
	struct live_page *pg = place(key, kind, &page, &i) ? page_of(l, page, kind) : NULL;
	if (!pg || !pg->slot[i])
		return map_remove(&l->other, key, kind, val);
	if (val)
		*val = slot_value(pg->slot[i]);
	pg->slot[i] = 0;
	pg->live--;
	l->paged--;
	if (SPARSE(pg) || !pg->live)
		release_page(l, page, kind, pg);
	return true;
}

bool live_find(const struct live *l, uint64_t key, uint64_t kind, uint64_t *val)
{
	uint64_t page;
	uint32_t i;
	struct live_page *pg = place(key, kind, &page, &i) ? page_lookup(l, page, kind) : NULL;
	if (pg && pg->slot[i]) {
		*val = slot_value(pg->slot[i]);
		return true;
	}
	uint64_t *v = map_find(&l->other, key, kind);
	if (v)
		*val = *v;
	return v != NULL;
}

void live_copy(struct live *dst, const struct live *src)
{
	live_free(dst);
	map_copy(&dst->other, &src->other);
	map_copy(&dst->pages, &src->pages);
	for (size_t i = 0; i < dst->pages.cap; i++)
		if (dst->pages.slots[i].k1) {
			struct live_page *pg = xmalloc(sizeof(*pg));
			memcpy(pg, (void *)(uintptr_t)dst->pages.slots[i].val, sizeof(*pg));
			dst->pages.slots[i].val = (uint64_t)(uintptr_t)pg;
		}
	dst->paged = src->paged;
}

void live_free(struct live *l)
{
	for (size_t i = 0; i < l->pages.cap; i++)
		if (l->pages.slots[i].k1)
			free((void *)(uintptr_t)l->pages.slots[i].val);
	free(l->spare);
	map_free(&l->other);
	map_free(&l->pages);
	*l = (struct live){ 0 };
}
