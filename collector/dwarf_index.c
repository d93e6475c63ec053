/*
 * dwarf_index.c: per compilation unit, the address ranges of its functions
 * and inlined calls as a tree (see dwarf_index.h for why). Built on first
 * use of a unit and kept until the file is closed; the DIEs themselves are
 * libdw's, found again by offset.
 */
#include "dwarf_index.h"

#include <dwarf.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <gelf.h>
#include <stdio.h>
#include <string.h>
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

/* One address range of .debug_aranges, and the unit it is in. */
struct arange {
	Dwarf_Addr lo, hi;
	Dwarf_Off unit; /* the unit's offset in .debug_info (its header) */
};

struct dw_index {
	struct map units; /* unit DIE offset + 1 -> struct unit * */
	struct arange *aranges; /* sorted by lo */
	size_t naranges;
	int aranges_state; /* 0: not read yet, 1: read, -1: none we can read */
	Dwarf_Off walked;  /* libdw knows every unit before this offset */
	/* .debug_info, if it lies in a private file mapping (walk_units_to):
	 * looked for once per file, not once per unit. */
	int info_state;    /* 0: not looked for yet, 1: it does, -1: it does not */
	const unsigned char *info;
	size_t info_size;
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
	free(ix->aranges);
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

/* ---- units by address ---------------------------------------------------------- */

/* An unsigned of n bytes (2, 4 or 8) in the file's byte order. */
static uint64_t get_u(const unsigned char *p, unsigned n, bool msb)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[msb ? n - 1 - i : i] << (8 * i);
	return v;
}

/* The contents of section name of elf, uncompressed, or NULL. */
static Elf_Data *section_data(Elf *elf, const char *name)
{
	size_t shstrndx;
	if (!elf || elf_getshdrstrndx(elf, &shstrndx) != 0)
		return NULL;
	for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn));) {
		GElf_Shdr sh;
		const char *n;
		if (!gelf_getshdr(scn, &sh) || !(n = elf_strptr(elf, shstrndx, sh.sh_name)) ||
		    strcmp(n, name) != 0)
			continue;
		/* libdw uncompresses the sections it loads in place; one still
		 * compressed is left to it. */
		if ((sh.sh_flags & SHF_COMPRESSED) || sh.sh_type == SHT_NOBITS)
			return NULL;
		return elf_getdata(scn, NULL);
	}
	return NULL;
}

static int by_lo(const void *a, const void *b)
{
	const struct arange *x = a, *y = b;
	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Reads .debug_aranges (DWARF 2-5 all write version 2 sets); 0, or -1 if
 * it is missing or malformed anywhere (then libdw answers, as before). */
static int read_aranges(struct dw_index *ix, Dwarf *dbg)
{
	Elf *elf = dwarf_getelf(dbg);
	GElf_Ehdr eh;
	Elf_Data *d = section_data(elf, ".debug_aranges");
	if (!d || !d->d_buf || !gelf_getehdr(elf, &eh))
		return -1;
	bool msb = eh.e_ident[EI_DATA] == ELFDATA2MSB;
	const unsigned char *p = d->d_buf, *end = p + d->d_size;
	size_t cap = 0;
	while (end - p >= 4) {
		const unsigned char *set = p;
		uint64_t len = get_u(p, 4, msb);
		unsigned osize = 4;
		p += 4;
		if (len == 0xffffffff) {
			if (end - p < 8)
				return -1;
			len = get_u(p, 8, msb);
			p += 8;
			osize = 8;
		} else if (len >= 0xfffffff0) {
			return -1;
		}
		if (len > (uint64_t)(end - p) || len < 2 + osize + 2)
			return -1;
		const unsigned char *next = p + len;
		if (get_u(p, 2, msb) != 2)
			return -1;
		Dwarf_Off unit = get_u(p + 2, osize, msb);
		unsigned asize = p[2 + osize], ssize = p[3 + osize];
		p += 4 + osize;
		if ((asize != 4 && asize != 8) || ssize != 0)
			return -1;
		/* The tuples start at a multiple of their size from the set's start. */
		size_t tuple = 2 * asize, hdr = (size_t)(p - set);
		p += (tuple - hdr % tuple) % tuple;
		while (next - p >= (ptrdiff_t)tuple) {
			Dwarf_Addr lo = get_u(p, asize, msb), n = get_u(p + asize, asize, msb);
			p += tuple;
			if (lo == 0 && n == 0)
				break;
			if (n == 0 || lo + n < lo)
				continue;
			if (ix->naranges == cap) {
				cap = cap ? 2 * cap : 256;
				ix->aranges = xrealloc(ix->aranges, cap * sizeof(*ix->aranges));
			}
			ix->aranges[ix->naranges++] = (struct arange){ lo, lo + n, unit };
		}
		p = next;
	}
	qsort(ix->aranges, ix->naranges, sizeof(*ix->aranges), by_lo);
	return 0;
}

/*
 * libdw finds a unit by offset (dwarf_offdie) by reading every unit header
 * before it, in file order, the first time: for a unit near the end of
 * libc's debug file that makes 4 MB of its mapped .debug_info resident at
 * once, when a private collector is 8 MB without it (issue 11). The same
 * walk is done here in steps of WALK_STEP bytes, and after each step the
 * pages walked over are given back (MADV_DONTNEED): libdw keeps offsets,
 * not the bytes, and whatever it reads there again comes back from the
 * page cache. Only pages still backed by the file are given back (a page
 * written to, were libdw ever to write, would lose its contents), and only
 * in a private file mapping (/proc/self/pagemap and maps say so).
 */
#define WALK_STEP (512 * 1024)

/* Whether [p, p + n) is in one private mapping of a file. */
static bool in_private_file_map(const void *p, size_t n)
{
	FILE *f = fopen("/proc/self/maps", "re");
	if (!f)
		return false;
	char line[512];
	bool ok = false;
	uintptr_t a = (uintptr_t)p;
	while (fgets(line, sizeof(line), f)) {
		unsigned long lo, hi, ino;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s %*s %*s %lu", &lo, &hi, perms, &ino) != 4)
			continue;
		if (a >= lo && a < hi) {
			ok = a + n <= hi && perms[3] == 'p' && ino != 0;
			break;
		}
	}
	fclose(f);
	return ok;
}

/* Gives back the pages wholly inside [from, to) that are the file's. */
static void give_back(const unsigned char *from, const unsigned char *to)
{
	long psz = sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)from + (uintptr_t)psz - 1) & ~((uintptr_t)psz - 1);
	uintptr_t hi = (uintptr_t)to & ~((uintptr_t)psz - 1);
	if (lo >= hi)
		return;
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (pm < 0)
		return;
	uint64_t e[64];
	uintptr_t run = 0; /* start of a run of file pages, or 0 */
	for (uintptr_t a = lo; a < hi;) {
		size_t n = (hi - a) / (uintptr_t)psz;
		if (n > 64)
			n = 64;
		ssize_t got = pread(pm, e, n * 8, (off_t)(a / (uintptr_t)psz * 8));
		if (got < (ssize_t)(n * 8))
			break;
		for (size_t i = 0; i < n; i++, a += (uintptr_t)psz) {
			/* bit 63: present; bit 61: a file page (not an anonymous
			 * copy made by a write). Absent pages are left alone. */
			bool file_page = (e[i] >> 63 & 1) && (e[i] >> 61 & 1);
			if (file_page && !run) {
				run = a;
			} else if (!file_page && run) {
				madvise((void *)run, a - run, MADV_DONTNEED);
				run = 0;
			}
		}
	}
	if (run)
		madvise((void *)run, hi - run, MADV_DONTNEED);
	close(pm);
}

/* Makes libdw know every unit up to the one at target, a step at a time. */
static void walk_units_to(struct dw_index *ix, Dwarf *dbg, Dwarf_Off target)
{
	if (target <= ix->walked)
		return;
	if (ix->info_state == 0) {
		Elf_Data *d = section_data(dwarf_getelf(dbg), ".debug_info");
		bool ok = d && d->d_buf && in_private_file_map(d->d_buf, d->d_size);
		ix->info_state = ok ? 1 : -1;
		if (ok) {
			ix->info = d->d_buf;
			ix->info_size = d->d_size;
		}
	}
	bool mapped = ix->info_state > 0 && target < ix->info_size;
	Dwarf_Off off = ix->walked, step_start = off, next;
	size_t hsize;
	while (mapped && off < target &&
	       dwarf_next_unit(dbg, off, &next, &hsize, NULL, NULL, NULL, NULL, NULL, NULL) == 0 &&
	       next > off) {
		if (next - step_start >= WALK_STEP || next >= target) {
			Dwarf_Die die;
			if (!dwarf_offdie(dbg, off + hsize, &die))
				break;
			give_back(ix->info + step_start, ix->info + off);
			step_start = off;
		}
		off = next;
	}
	ix->walked = target;
}

int dw_index_unit(struct dw_index *ix, Dwarf *dbg, Dwarf_Addr addr, Dwarf_Die *cu)
{
	if (ix->aranges_state == 0) {
		ix->aranges_state = read_aranges(ix, dbg) == 0 ? 1 : -1;
		if (ix->aranges_state < 0) {
			free(ix->aranges);
			ix->aranges = NULL;
			ix->naranges = 0;
		}
	}
	if (ix->aranges_state < 0)
		return -1;
	size_t lo = 0, hi = ix->naranges;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ix->aranges[mid].lo <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/* Ranges of different units should not overlap; where a producer made
	 * them, a few earlier ones are looked at too. */
	for (size_t i = lo, steps = 0; i-- > 0 && steps < 8; steps++) {
		if (addr >= ix->aranges[i].hi)
			continue;
		Dwarf_Off unit = ix->aranges[i].unit, next;
		size_t hsize;
		walk_units_to(ix, dbg, unit);
		if (dwarf_next_unit(dbg, unit, &next, &hsize, NULL, NULL, NULL, NULL, NULL,
				    NULL) != 0 ||
		    !dwarf_offdie(dbg, unit + hsize, cu))
			return 0;
		return 1;
	}
	return 0;
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
