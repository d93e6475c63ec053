/*
 * What a CPU sample's unwinding needs of each code address, taken once from
 * libdw's call frame information and kept: x86-64 code compiled by gcc or
 * clang unwinds almost everywhere by "the caller's stack pointer (the CFA)
 * is rsp or rbp plus n, the return address is at CFA - 8, rbp is where it
 * was or saved at CFA + m". With that cached per address a frame is a hash
 * lookup and two loads, where libdw interprets the CIE and FDE programs and
 * evaluates all 17 registers' rules again for every frame of every sample
 * (a fifth of the collector's time beside a program at the defaults).
 *
 * Any other rule (an expression, as in PLT stubs; a signal frame; no FDE)
 * is cached as RULE_LIBDW, and the sample is unwound by libdw after all,
 * so that what is cached never changes a stack: see unwind.c.
 */
#ifndef MEMPROF_COLLECTOR_UNWIND_RULES_H
#define MEMPROF_COLLECTOR_UNWIND_RULES_H

#include <elfutils/libdwfl.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"

/* DWARF's numbers of the x86-64 registers the cached rules use. */
#define DW_REG_RBP 6
#define DW_REG_RSP 7
#define DW_REG_RIP 16

enum rule_kind {
	RULE_STEP,  /* the rule below */
	RULE_END,   /* the return address is undefined: the outermost frame */
	RULE_LIBDW, /* anything else: libdw unwinds this sample */
};

enum rbp_rule {
	RBP_SAME,  /* the caller's rbp is this frame's */
	RBP_SAVED, /* at CFA + rbp_off */
	RBP_LOST,  /* undefined: the caller's rbp is not known */
};

struct unwind_rule {
	int32_t cfa_off; /* CFA = cfa_reg + cfa_off */
	int32_t ra_off;  /* return address at CFA + ra_off */
	int32_t rbp_off;
	uint8_t kind;    /* enum rule_kind */
	uint8_t cfa_reg; /* DW_REG_RSP or DW_REG_RBP */
	uint8_t rbp;     /* enum rbp_rule */
};

/* The rule for addr in the process whose files dwfl has, from the cache
 * rules (addresses to rules packed in a word; see unwind_rules.c), or
 * computed through dwfl and put there. The cache starts over past a
 * bound, so that a process running through ever new code (a JIT) keeps
 * a bounded table; map_free() empties it. */
struct unwind_rule rules_get(struct map *rules, Dwfl *dwfl, uint64_t addr);

#endif /* MEMPROF_COLLECTOR_UNWIND_RULES_H */
