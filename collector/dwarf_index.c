/*
 * dwarf_index.c: per compilation unit, the address ranges of its functions
 * and inlined calls as a tree (see dwarf_index.h for why). Built on first
 * use of a unit and kept until the file is closed; the DIEs themselves are
 * libdw's, found again by offset.
 */
#include "dwarf_index.h"

#include <dwarf.h>
#include <stdint.h>
#include <stdlib.h>

#include "map.h"
#include "util.h"

#define NO_PARENT UINT32_MAX

/* One range of a function-like DIE, filed under its parent node. */
struct range {
	Dwarf_Addr lo, hi;
	uint32_t parent; /* node index, or NO_PARENT for the unit's top level */
	uint32_t node;
};

struct node {
	Dwarf_Off off;     /* the DIE */
	uint32_t kids, nkids; /* its children's ranges: ranges[kids .. kids + nkids) */
};

struct unit {
	struct range *ranges; /* sorted by (parent, lo); top level last */
	size_t nranges;
	struct node *nodes;
	size_t nnodes, ntop_first; /* top-level ranges start at ntop_first */
};

struct dw_index {
	struct map units; /* unit DIE offset + 1 -> struct unit * */
};

struct dw_index *dw_index_new(void)
{
	return xcalloc(1, sizeof(struct dw_index));
}

static void free_unit(struct unit *u)
{
	free(u->ranges);
	free(u->nodes);
	free(u);
}

void dw_index_free(struct dw_index *ix)
{
	if (!ix)
		return;
	for (size_t i = 0; i < ix->units.cap; i++)
		if (ix->units.slots[i].k1)
			free_unit((struct unit *)(uintptr_t)ix->units.slots[i].val);
	map_free(&ix->units);
	free(ix);
}

/* ---- building ------------------------------------------------------------------ */

struct builder {
	struct unit *u;
	size_t cap_ranges, cap_nodes;
};

/* Tags under which code (and so functions or inlined calls) can be found. */
static bool may_hold_code(int tag)
{
	switch (tag) {
	case DW_TAG_subprogram:
	case DW_TAG_inlined_subroutine:
	case DW_TAG_lexical_block:
	case DW_TAG_namespace:
	case DW_TAG_class_type:
	case DW_TAG_structure_type:
	case DW_TAG_union_type:
	case DW_TAG_module:
	case DW_TAG_try_block:
	case DW_TAG_catch_block:
		return true;
	default:
		return false;
	}
}

/* Adds die as a node under parent if it has code; returns the parent its
 * own children are to be filed under. */
static uint32_t add_function(struct builder *b, Dwarf_Die *die, uint32_t parent)
{
	struct unit *u = b->u;
	Dwarf_Addr base, lo, hi;
	ptrdiff_t off = 0;
	uint32_t node = NO_PARENT;
	while ((off = dwarf_ranges(die, off, &base, &lo, &hi)) > 0) {
		if (hi <= lo)
			continue;
		if (node == NO_PARENT) {
			if (u->nnodes == b->cap_nodes) {
				b->cap_nodes = b->cap_nodes ? 2 * b->cap_nodes : 256;
				u->nodes = xrealloc(u->nodes, b->cap_nodes * sizeof(*u->nodes));
			}
			node = (uint32_t)u->nnodes++;
			u->nodes[node] = (struct node){ .off = dwarf_dieoffset(die) };
		}
		if (u->nranges == b->cap_ranges) {
			b->cap_ranges = b->cap_ranges ? 2 * b->cap_ranges : 256;
			u->ranges = xrealloc(u->ranges, b->cap_ranges * sizeof(*u->ranges));
		}
		u->ranges[u->nranges++] = (struct range){ lo, hi, parent, node };
	}
	/* An abstract instance (no code) files nothing; its children have none. */
	return node == NO_PARENT ? parent : node;
}

static void walk(struct builder *b, Dwarf_Die *die, uint32_t parent, int depth)
{
	Dwarf_Die child;
	if (depth > 64 || dwarf_child(die, &child) != 0)
		return;
	do {
		int tag = dwarf_tag(&child);
		if (!may_hold_code(tag))
			continue;
		uint32_t p = parent;
		if (tag == DW_TAG_subprogram || tag == DW_TAG_inlined_subroutine)
			p = add_function(b, &child, parent);
		walk(b, &child, p, depth + 1);
	} while (dwarf_siblingof(&child, &child) == 0);
}

static int by_parent_then_lo(const void *a, const void *b)
{
	const struct range *x = a, *y = b;
	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	/*
	 * Aliases with the same range (glibc's assembly gives __clone3 and
	 * __GI___clone3 each a DW_TAG_subprogram): find() takes the last of
	 * equal starts, so the first in DIE order (the lowest node) is sorted
	 * last. That is the name readers that walk the DIEs in order take, Go's
	 * pprof among them, so that a text profile re-read by it agrees.
	 */
	if (x->node != y->node)
		return x->node > y->node ? -1 : 1;
	return 0;
}

static struct unit *build(Dwarf_Die *cu)
{
	struct builder b = { .u = xcalloc(1, sizeof(struct unit)) };
	struct unit *u = b.u;
	walk(&b, cu, NO_PARENT, 0);
	qsort(u->ranges, u->nranges, sizeof(*u->ranges), by_parent_then_lo);
	/* Each node's children are one run of the sorted ranges. */
	size_t i = 0;
	while (i < u->nranges && u->ranges[i].parent != NO_PARENT) {
		uint32_t p = u->ranges[i].parent;
		size_t j = i;
		while (j < u->nranges && u->ranges[j].parent == p)
			j++;
		u->nodes[p].kids = (uint32_t)i;
		u->nodes[p].nkids = (uint32_t)(j - i);
		i = j;
	}
	u->ntop_first = i;
	return u;
}

/* ---- looking up ------------------------------------------------------------------ */

/* The range of r[0..n) (sorted by lo, not overlapping) containing addr. */
static const struct range *find(const struct range *r, size_t n, Dwarf_Addr addr)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r[mid].lo <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Siblings should not overlap; if a producer made them, look a little
	 * further back. */
	for (size_t i = lo, steps = 0; i-- > 0 && steps < 8; steps++)
		if (addr < r[i].hi)
			return &r[i];
	return NULL;
}

int dw_index_lookup(struct dw_index *ix, Dwarf_Die *cu, Dwarf_Addr addr, Dwarf_Die *dies, int max)
{
	Dwarf_Off cu_off = dwarf_dieoffset(cu);
	uint64_t *slot = map_find(&ix->units, cu_off + 1, 0);
	struct unit *u;
	if (slot) {
		u = (struct unit *)(uintptr_t)*slot;
	} else {
		u = build(cu);
		map_put(&ix->units, cu_off + 1, 0, (uint64_t)(uintptr_t)u);
	}
	Dwarf *dbg = dwarf_cu_getdwarf(cu->cu);
	uint32_t chain[256];
	int depth = 0;
	const struct range *r = u->ranges + u->ntop_first;
	size_t n = u->nranges - u->ntop_first;
	const struct range *hit;
	while (depth < 256 && (hit = find(r, n, addr))) {
		chain[depth++] = hit->node;
		const struct node *nd = &u->nodes[hit->node];
		r = u->ranges + nd->kids;
		n = nd->nkids;
	}
	/* Innermost first; past max, keep the innermost and the outermost. */
	int out = 0;
	for (int i = depth - 1; i >= 0 && out < max; i--) {
		int from = out == max - 1 ? 0 : i;
		if (dwarf_offdie(dbg, u->nodes[chain[from]].off, &dies[out]))
			out++;
		if (from == 0)
			break;
	}
	return out;
}
