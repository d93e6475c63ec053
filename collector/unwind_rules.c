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
#include "util.h"

#define RULES_MIN 1024          /* slots at first */
#define RULES_MAX (1U << 15)    /* entries before the table starts over */

static bool fits_i32(uint64_t v)
{
	int64_t s = (int64_t)v;
	return s >= INT32_MIN && s <= INT32_MAX;
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
	if (!fits_i32(v))
		return false;
	*off = (int32_t)v;
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
	    ops[0].atom != DW_OP_bregx || !fits_i32(ops[0].number2) ||
	    (ops[0].number != DW_REG_RSP && ops[0].number != DW_REG_RBP))
		return;
	r->cfa_reg = (uint8_t)ops[0].number;
	r->cfa_off = (int32_t)ops[0].number2;

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
static void compute(struct unwind_rule *r, Dwfl *dwfl, uint64_t addr)
{
	*r = (struct unwind_rule){ .addr = addr, .kind = RULE_LIBDW };
	Dwfl_Module *mod = dwfl_addrmodule(dwfl, addr);
	Dwarf_Addr bias;
	Dwarf_CFI *cfi = mod ? dwfl_module_eh_cfi(mod, &bias) : NULL;
	Dwarf_Frame *frame;
	if (!cfi || dwarf_cfi_addrframe(cfi, addr - bias, &frame) != 0)
		return;
	read_rule(r, frame);
	free(frame);
}

static size_t slot_of(const struct rule_cache *c, uint64_t addr)
{
	return (size_t)((addr * 0x9e3779b97f4a7c15ULL) >> 32) & c->mask;
}

static void resize(struct rule_cache *c, size_t nslots)
{
	struct unwind_rule *old = c->slots;
	size_t oldn = old ? c->mask + 1 : 0;
	c->slots = xcalloc(nslots, sizeof(*c->slots));
	c->mask = nslots - 1;
	for (size_t i = 0; i < oldn; i++) {
		if (old[i].kind == RULE_EMPTY)
			continue;
		size_t j = slot_of(c, old[i].addr);
		while (c->slots[j].kind != RULE_EMPTY)
			j = (j + 1) & c->mask;
		c->slots[j] = old[i];
	}
	free(old);
}

const struct unwind_rule *rules_get(struct rule_cache *c, Dwfl *dwfl, uint64_t addr)
{
	size_t i;
	if (c->slots)
		for (i = slot_of(c, addr); c->slots[i].kind != RULE_EMPTY; i = (i + 1) & c->mask)
			if (c->slots[i].addr == addr)
				return &c->slots[i];
	if (c->used >= RULES_MAX)
		rules_clear(c);
	if (!c->slots)
		resize(c, RULES_MIN);
	else if ((c->used + 1) * 4 > (c->mask + 1) * 3)
		resize(c, (c->mask + 1) * 2);
	for (i = slot_of(c, addr); c->slots[i].kind != RULE_EMPTY; i = (i + 1) & c->mask)
		;
	compute(&c->slots[i], dwfl, addr);
	c->used++;
	return &c->slots[i];
}

void rules_clear(struct rule_cache *c)
{
	free(c->slots);
	*c = (struct rule_cache){ 0 };
}
