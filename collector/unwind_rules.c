/*
 * The unwind rule cache (unwind_rules.h): a rule is read off libdw's
 * Dwarf_Frame for an address the way libdwfl's own unwinder reads it
 * (libdwfl/frame_unwind.c, handle_cfi), and kept only when it is one of
 * the few shapes a frame can then be stepped with by hand; anything else
 * says "libdw".
 */
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <stdbool.h>
#include <stdlib.h>

#include "unwind_rules.h"

#define RULES_MAX (1U << 15) /* rules kept before the cache starts over */

/* Offsets are kept in 16 bits so that a rule packs into one word of the
 * collector's map (map.h); a frame with a larger one (a 64 KiB array on
 * the stack) is left to libdw. */
static bool fits_i16(uint64_t v)
{
	int64_t s = (int64_t)v;
	return s >= INT16_MIN && s <= INT16_MAX;
}

/* A register saved "at CFA + off": libdw gives that as DW_OP_call_frame_cfa,
 * then DW_OP_plus_uconst off unless off is 0 (negative offsets wrap). */
static bool saved_at_cfa(const Dwarf_Op *ops, size_t nops, int32_t *off)
{
	if (nops < 1 || nops > 2 || ops[0].atom != DW_OP_call_frame_cfa)
		return false;
	uint64_t v = 0;
	if (nops == 2) {
		if (ops[1].atom != DW_OP_plus_uconst)
			return false;
		v = ops[1].number;
	}
	if (!fits_i16(v))
		return false;
	*off = (int32_t)(int64_t)v;
	return true;
}

/* Fills r from frame, or leaves it RULE_LIBDW. */
static void read_rule(struct unwind_rule *r, Dwarf_Frame *frame)
{
	bool signal;
	if (dwarf_frame_info(frame, NULL, NULL, &signal) != DW_REG_RIP || signal)
		return;
	Dwarf_Op mem[3], *ops;
	size_t nops;
	if (dwarf_frame_register(frame, DW_REG_RIP, mem, &ops, &nops) != 0)
		return;
	if (nops == 0 && ops == mem) {
		r->kind = RULE_END;
		return;
	}
	if (!saved_at_cfa(ops, nops, &r->ra_off))
		return;

	if (dwarf_frame_cfa(frame, &ops, &nops) != 0 || nops != 1 ||
	    ops[0].atom != DW_OP_bregx || !fits_i16(ops[0].number2) ||
	    (ops[0].number != DW_REG_RSP && ops[0].number != DW_REG_RBP))
		return;
	r->cfa_reg = (uint8_t)ops[0].number;
	r->cfa_off = (int32_t)(int64_t)ops[0].number2;

	/* The caller's rsp is the CFA: the ABI's rule, which no FDE changes. */
	if (dwarf_frame_register(frame, DW_REG_RSP, mem, &ops, &nops) != 0 || nops != 2 ||
	    ops[0].atom != DW_OP_call_frame_cfa || ops[1].atom != DW_OP_stack_value)
		return;

	if (dwarf_frame_register(frame, DW_REG_RBP, mem, &ops, &nops) != 0)
		return;
	if (nops == 0)
		r->rbp = ops == mem ? RBP_LOST : RBP_SAME;
	else if (saved_at_cfa(ops, nops, &r->rbp_off))
		r->rbp = RBP_SAVED;
	else
		return;
	r->kind = RULE_STEP;
}

/* As libdwfl looks for a frame: the module's .eh_frame. Without an FDE
 * there, libdwfl goes on to .debug_frame and then to the frame pointer
 * chain, which are left to it. */
static struct unwind_rule compute(Dwfl *dwfl, uint64_t addr)
{
	struct unwind_rule r = { .kind = RULE_LIBDW };
	Dwfl_Module *mod = dwfl_addrmodule(dwfl, addr);
	Dwarf_Addr bias;
	Dwarf_CFI *cfi = mod ? dwfl_module_eh_cfi(mod, &bias) : NULL;
	Dwarf_Frame *frame;
	if (!cfi || dwarf_cfi_addrframe(cfi, addr - bias, &frame) != 0)
		return r;
	read_rule(&r, frame);
	free(frame);
	return r;
}

/* A rule in a word: kind, cfa_reg and rbp in the low byte, the three
 * offsets in 16 bits each above it. */
static uint64_t pack(struct unwind_rule r)
{
	return (uint64_t)r.kind | (uint64_t)(r.cfa_reg == DW_REG_RBP) << 2 | (uint64_t)r.rbp << 3 |
	       (uint64_t)(uint16_t)r.cfa_off << 16 | (uint64_t)(uint16_t)r.ra_off << 32 |
	       (uint64_t)(uint16_t)r.rbp_off << 48;
}

static struct unwind_rule unpack(uint64_t w)
{
	return (struct unwind_rule){
		.kind = (uint8_t)(w & 3),
		.cfa_reg = w & 4 ? DW_REG_RBP : DW_REG_RSP,
		.rbp = (uint8_t)(w >> 3 & 3),
		.cfa_off = (int16_t)(uint16_t)(w >> 16),
		.ra_off = (int16_t)(uint16_t)(w >> 32),
		.rbp_off = (int16_t)(uint16_t)(w >> 48),
	};
}

struct unwind_rule rules_get(struct map *rules, Dwfl *dwfl, uint64_t addr)
{
	if (addr == 0) /* no code there, and not a key the map can hold */
		return (struct unwind_rule){ .kind = RULE_LIBDW };
	const uint64_t *w = map_find(rules, addr, 0);
	if (w)
		return unpack(*w);
	if (rules->count >= RULES_MAX)
		map_free(rules);
	struct unwind_rule r = compute(dwfl, addr);
	map_put(rules, addr, 0, pack(r));
	return r;
}
