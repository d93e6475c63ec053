/*
 * dwarf_index: which functions (and inlined calls) of a compilation unit
 * contain an address, answered from an index built once per unit.
 *
 * libdw's dwarf_getscopes answers the same question by walking the unit's
 * whole DIE tree from its root on every call: for a unit of 10,000
 * functions, symbolizing each of its addresses once is quadratic (seconds
 * of collector CPU for one profile). The index walks a unit once, the first
 * time one of its addresses is looked up, and keeps, for each function and
 * each inlined call, its address ranges sorted under its parent; a lookup is
 * a binary search per level of inlining.
 */
#ifndef MEMPROF_COLLECTOR_DWARF_INDEX_H
#define MEMPROF_COLLECTOR_DWARF_INDEX_H

#include <elfutils/libdw.h>

struct dw_index; /* one per Dwarf (file): the units looked into so far */

struct dw_index *dw_index_new(void);
void dw_index_free(struct dw_index *ix);

/*
 * The compilation unit whose .debug_aranges entries cover addr (a DWARF
 * address), read by us rather than by libdw's dwarf_getaranges: that one
 * reads every unit's header, for every set, to turn unit offsets into DIE
 * offsets, which makes a mapped debug file's whole .debug_info resident
 * (libc's: 5.6 MB of a private collector's 14 MB, issue 11) when a few
 * units are wanted. Here a set's unit header is read when an address falls
 * in it. Returns 1 with *cu filled, 0 if no set covers addr (libdw, which
 * looks only at .debug_aranges too, finds none either), -1 if the file has
 * no .debug_aranges this can read (ask libdw).
 */
int dw_index_unit(struct dw_index *ix, Dwarf *dbg, Dwarf_Addr addr, Dwarf_Die *cu);

/*
 * Fills dies[0..n) with the DW_TAG_subprogram and DW_TAG_inlined_subroutine
 * DIEs of unit cu whose ranges contain addr (a DWARF address: the module
 * address minus the unit's bias), innermost first, outermost last; returns
 * n, 0 if no function of the unit contains addr. At most max are returned:
 * when the chain is deeper, its innermost max - 1 and its outermost.
 */
int dw_index_lookup(struct dw_index *ix, Dwarf_Die *cu, Dwarf_Addr addr, Dwarf_Die *dies, int max);

#endif /* MEMPROF_COLLECTOR_DWARF_INDEX_H */
