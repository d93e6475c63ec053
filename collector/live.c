/*
 * A process's live sampled blocks; see live.h.
 */
#include <stdlib.h>
#include <string.h>

#include "live.h"
#include "util.h"

#define PAGE_SHIFT 10
#define PAGE_IDS (1U << PAGE_SHIFT)
/* Pages a process may have beyond one per PAGED_PER_PAGE live ids in them:
 * 4 KB each, so at most ~256 KB plus 128 bytes per live id. */
#define FREE_PAGES 64
#define PAGED_PER_PAGE 32
/* A page that has had at least half its ids is released once fewer than
 * one in 32 of those is live, its live ones moved to `other`: few enough
 * that a program freeing most of what it made does not fill the table it
 * moves them to (RSS grew by a third at one in 8), and many enough that
 * pages that stay cost at most 128 bytes per live id. */
#define SPARSE(pg) ((pg)->filled >= PAGE_IDS / 2 && (pg)->live * 32 < (pg)->filled)

/* A slot holds the value + 1 (0: empty), or NOT_KEPT_SLOT for UINT64_MAX;
 * other values do not fit, and go to `other`. */
#define NOT_KEPT_SLOT UINT32_MAX
#define SLOT_MAX (UINT32_MAX - 2ULL)

struct live_page {
	uint32_t live;   /* nonzero slots */
	uint32_t filled; /* slots ever written */
	uint32_t slot[PAGE_IDS];
};

static struct live_page *page_of(const struct live *l, uint64_t id)
{
	uint64_t *v = map_find(&l->pages, (id >> PAGE_SHIFT) + 1, 0);
	return v ? (struct live_page *)(uintptr_t)*v : NULL;
}

static uint64_t slot_value(uint32_t s)
{
	return s == NOT_KEPT_SLOT ? UINT64_MAX : s - 1ULL;
}

size_t live_count(const struct live *l)
{
	return l->other.count + l->paged;
}

static void release_page(struct live *l, uint64_t id, struct live_page *pg)
{
	uint64_t base = id & ~(uint64_t)(PAGE_IDS - 1);
	for (uint32_t i = 0; i < PAGE_IDS; i++)
		if (pg->slot[i])
			map_put(&l->other, base + i, LIVE_ID_KIND, slot_value(pg->slot[i]));
	l->paged -= pg->live;
	map_remove(&l->pages, (id >> PAGE_SHIFT) + 1, 0, NULL);
	l->npages--;
	free(pg);
}

void live_put_id(struct live *l, uint64_t id, uint64_t val)
{
	if (val > SLOT_MAX && val != UINT64_MAX) {
		map_put(&l->other, id, LIVE_ID_KIND, val);
		return;
	}
	struct live_page *pg = page_of(l, id);
	if (!pg) {
		if (l->npages >= FREE_PAGES + l->paged / PAGED_PER_PAGE) {
			map_put(&l->other, id, LIVE_ID_KIND, val);
			return;
		}
		pg = xcalloc(1, sizeof(*pg));
		map_put(&l->pages, (id >> PAGE_SHIFT) + 1, 0, (uint64_t)(uintptr_t)pg);
		l->npages++;
	}
	uint32_t *s = &pg->slot[id & (PAGE_IDS - 1)];
	if (!*s) {
		pg->live++;
		pg->filled += pg->filled < PAGE_IDS;
		l->paged++;
	}
	*s = val == UINT64_MAX ? NOT_KEPT_SLOT : (uint32_t)(val + 1);
}

bool live_take_id(struct live *l, uint64_t id, uint64_t *val)
{
	struct live_page *pg = page_of(l, id);
	uint32_t *s = pg ? &pg->slot[id & (PAGE_IDS - 1)] : NULL;
	if (!s || !*s)
		return map_remove(&l->other, id, LIVE_ID_KIND, val);
	if (val)
		*val = slot_value(*s);
	*s = 0;
	pg->live--;
	l->paged--;
	if (SPARSE(pg))
		release_page(l, id, pg);
	return true;
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
	dst->npages = src->npages;
	dst->paged = src->paged;
}

void live_free(struct live *l)
{
	for (size_t i = 0; i < l->pages.cap; i++)
		if (l->pages.slots[i].k1)
			free((void *)(uintptr_t)l->pages.slots[i].val);
	map_free(&l->other);
	map_free(&l->pages);
	*l = (struct live){ 0 };
}
