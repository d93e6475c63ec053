/*
 * Unwinding the calling thread in-process, for heap samples, with the DWARF
 * call frame information every x86-64 object carries in .eh_frame (found
 * through its .eh_frame_hdr index, which _dl_find_object hands out without
 * a lock). This replaced libunwind in the shim: libunwind validated memory
 * by writing it into a pipe it opened inside the program, on the program's
 * own low descriptor numbers, and a program that closed or reused those
 * found stack bytes in its files. Here the only memory read is the thread's
 * stack, between the stack pointer and a bound the caller gives, and the
 * objects' read-only tables; a frame that would lead anywhere else ends
 * the walk.
 *
 * On x86-64 a frame needs little: its CFA (the caller's stack pointer) is
 * rsp or rbp plus an offset, the return address is saved at a fixed offset
 * from the CFA, and so is rbp if the function saved it. That rule is worked
 * out once per return address by running the FDE's CFA program (DWARF 5,
 * section 6.4) and kept in a cache that threads share without locks.
 * Signal frames (glibc's __restore_rt, marked 'S' in its CIE) are walked
 * through the ucontext the kernel saved on the stack.
 */
#include <dlfcn.h>
#include <link.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "unwind.h"

/* DWARF register numbers on x86-64. */
enum { DW_RBP = 6, DW_RSP = 7, DW_RA = 16 };

/* .eh_frame pointer encodings (LSB 4.0, "DWARF Extensions"). */
enum {
	PE_ABSPTR = 0x00, PE_ULEB128 = 0x01, PE_UDATA2 = 0x02, PE_UDATA4 = 0x03,
	PE_UDATA8 = 0x04, PE_SLEB128 = 0x09, PE_SDATA2 = 0x0a, PE_SDATA4 = 0x0b,
	PE_SDATA8 = 0x0c, PE_PCREL = 0x10, PE_DATAREL = 0x30, PE_INDIRECT = 0x80,
	PE_OMIT = 0xff,
};

/* ---- the rule of one frame ------------------------------------------------- */

enum { FRAME_NORMAL = 1, FRAME_SIGNAL = 2, FRAME_END = 3, FRAME_NO_FDE = 4 };
#define RBP_SAME INT16_MIN       /* the caller's rbp is this frame's */
#define RBP_LOST (INT16_MIN + 1) /* somewhere we do not follow */

struct rule {
	int32_t cfa_off;
	int16_t rbp_off; /* caller's rbp at CFA + rbp_off, or RBP_* */
	int8_t ra_off;   /* return address at CFA + ra_off */
	uint8_t type : 4, cfa_rbp : 4; /* FRAME_*; CFA from rbp (else rsp) */
};

_Static_assert(sizeof(struct rule) == 8, "a rule packs into one word");

static uint64_t pack(struct rule r)
{
	uint64_t w;
	memcpy(&w, &r, sizeof(w));
	return w;
}

static struct rule unpack(uint64_t w)
{
	struct rule r;
	memcpy(&r, &w, sizeof(r));
	return r;
}

/* ---- reading .eh_frame ------------------------------------------------------- */

static uint64_t uleb(const uint8_t **pp, const uint8_t *end)
{
	uint64_t v = 0;
	unsigned shift = 0;
	const uint8_t *p = *pp;
	while (p < end) {
		uint8_t b = *p++;
		if (shift < 64)
			v |= (uint64_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80))
			break;
	}
	*pp = p;
	return v;
}

static int64_t sleb(const uint8_t **pp, const uint8_t *end)
{
	int64_t v = 0;
	unsigned shift = 0;
	uint8_t b = 0;
	const uint8_t *p = *pp;
	while (p < end) {
		b = *p++;
		if (shift < 64)
			v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
		shift += 7;
		if (!(b & 0x80))
			break;
	}
	if (shift < 64 && (b & 0x40))
		v |= -(int64_t)((uint64_t)1 << shift);
	*pp = p;
	return v;
}

/* Fixed-size little-endian loads from unaligned table bytes. */
#define LOAD(type, p) ({ type v_; memcpy(&v_, (p), sizeof(v_)); v_; })

/* Reads a pointer in encoding enc; datarel is the base for PE_DATAREL.
 * false for an encoding we do not handle or a read past end. */
static bool read_ptr(const uint8_t **pp, const uint8_t *end, uint8_t enc, uint64_t datarel,
		     uint64_t *out)
{
	const uint8_t *p = *pp;
	uint64_t base, v;
	if (enc == PE_OMIT)
		return false;
	switch (enc & 0x70) {
	case 0: base = 0; break;
	case PE_PCREL: base = (uint64_t)(uintptr_t)p; break;
	case PE_DATAREL: base = datarel; break;
	default: return false;
	}
	size_t need = 0;
	switch (enc & 0x0f) {
	case PE_ABSPTR: case PE_UDATA8: case PE_SDATA8: need = 8; break;
	case PE_UDATA4: case PE_SDATA4: need = 4; break;
	case PE_UDATA2: case PE_SDATA2: need = 2; break;
	case PE_ULEB128: case PE_SLEB128: break;
	default: return false;
	}
	if ((size_t)(end - p) < need)
		return false;
	switch (enc & 0x0f) {
	case PE_ABSPTR: case PE_UDATA8: case PE_SDATA8: v = LOAD(uint64_t, p); break;
	case PE_UDATA4: v = LOAD(uint32_t, p); break;
	case PE_SDATA4: v = (uint64_t)(int64_t)LOAD(int32_t, p); break;
	case PE_UDATA2: v = LOAD(uint16_t, p); break;
	case PE_SDATA2: v = (uint64_t)(int64_t)LOAD(int16_t, p); break;
	case PE_ULEB128: v = uleb(&p, end); break;
	default: v = (uint64_t)sleb(&p, end); break;
	}
	p += need;
	v += base;
	if (enc & PE_INDIRECT)
		v = LOAD(uint64_t, (const void *)(uintptr_t)v);
	*pp = p;
	*out = v;
	return true;
}

/* Reads an entry's length; its contents are [*pp, *end). */
static bool entry_bounds(const uint8_t **pp, const uint8_t **end)
{
	const uint8_t *p = *pp;
	uint64_t len = LOAD(uint32_t, p);
	p += 4;
	if (len == 0xffffffffu) {
		len = LOAD(uint64_t, p);
		p += 8;
	}
	if (len == 0 || len > (1u << 30))
		return false;
	*pp = p;
	*end = p + len;
	return true;
}

struct cie {
	uint64_t code_align;
	int64_t data_align;
	uint64_t ra_reg;
	uint8_t fde_enc;
	bool has_z, signal;
	const uint8_t *insns, *end;
};

static bool parse_cie(const uint8_t *p, struct cie *c)
{
	const uint8_t *end;
	if (!entry_bounds(&p, &end) || LOAD(uint32_t, p) != 0)
		return false;
	p += 4;
	uint8_t version = *p++;
	if (version != 1 && version != 3)
		return false;
	const char *aug = (const char *)p;
	size_t aug_len = strnlen(aug, (size_t)(end - p));
	p += aug_len + 1;
	memset(c, 0, sizeof(*c));
	c->fde_enc = PE_ABSPTR;
	c->code_align = uleb(&p, end);
	c->data_align = sleb(&p, end);
	c->ra_reg = version == 1 ? *p++ : uleb(&p, end);
	const uint8_t *aug_end = NULL;
	for (size_t i = 0; i < aug_len; i++) {
		switch (aug[i]) {
		case 'z': {
			uint64_t n = uleb(&p, end);
			if (i != 0 || n > (uint64_t)(end - p))
				return false;
			c->has_z = true;
			aug_end = p + n;
			break;
		}
		case 'R':
			c->fde_enc = *p++;
			break;
		case 'L':
			p++;
			break;
		case 'P': {
			uint64_t ignored;
			uint8_t enc = *p++;
			/* Not followed: only its size matters here. */
			if (!read_ptr(&p, end, enc & 0x7f, 0, &ignored))
				return false;
			break;
		}
		case 'S':
			c->signal = true;
			break;
		default:
			/* Unknown letters are skippable only with 'z'. */
			if (!c->has_z)
				return false;
			i = aug_len;
			break;
		}
	}
	if (aug_end)
		p = aug_end;
	if (p > end)
		return false;
	c->insns = p;
	c->end = end;
	return true;
}

/* ---- finding the FDE --------------------------------------------------------- */

/* The FDE covering pc, through the binary search table in .eh_frame_hdr
 * (every linker writes it as datarel sdata4 pairs, sorted). */
static const uint8_t *find_fde(uint64_t pc)
{
	struct dl_find_object dlfo;
	if (_dl_find_object((void *)(uintptr_t)pc, &dlfo) != 0 || !dlfo.dlfo_eh_frame)
		return NULL;
	const uint8_t *hdr = dlfo.dlfo_eh_frame, *p = hdr + 4;
	const uint8_t *limit = hdr + 4 + 16; /* the fixed part we read */
	uint64_t base = (uint64_t)(uintptr_t)hdr, eh_frame, count;
	if (hdr[0] != 1 || hdr[3] != (PE_DATAREL | PE_SDATA4) ||
	    !read_ptr(&p, limit, hdr[1], base, &eh_frame) ||
	    !read_ptr(&p, limit, hdr[2], base, &count) || count == 0)
		return NULL;
	const int32_t *table = (const int32_t *)(const void *)p;
	size_t lo = 0, hi = count;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (base + (uint64_t)(int64_t)LOAD(int32_t, &table[2 * mid]) <= pc)
			lo = mid;
		else
			hi = mid;
	}
	if (base + (uint64_t)(int64_t)LOAD(int32_t, &table[2 * lo]) > pc)
		return NULL;
	return (const uint8_t *)(uintptr_t)(base + (uint64_t)(int64_t)LOAD(int32_t, &table[2 * lo + 1]));
}

/* ---- running the CFA program ------------------------------------------------- */

enum { R_SAME = 0, R_OFFSET, R_UNDEF, R_OTHER };

struct reg_rule {
	uint8_t kind;
	int64_t off;
};

struct row {
	uint64_t cfa_reg;
	int64_t cfa_off;
	bool cfa_expr;
	struct reg_rule rbp, ra;
};

#define STATE_STACK 16

struct cfa_vm {
	const struct cie *cie;
	struct row row, initial;
	struct row saved[STATE_STACK];
	int nsaved;
};

static struct reg_rule *reg_of(struct cfa_vm *vm, struct row *r, uint64_t reg)
{
	if (reg == DW_RBP)
		return &r->rbp;
	if (reg == vm->cie->ra_reg)
		return &r->ra;
	return NULL;
}

static void set_rule(struct cfa_vm *vm, uint64_t reg, uint8_t kind, int64_t off)
{
	struct reg_rule *rr = reg_of(vm, &vm->row, reg);
	if (rr) {
		rr->kind = kind;
		rr->off = off;
	}
}

static void restore_rule(struct cfa_vm *vm, uint64_t reg)
{
	struct reg_rule *rr = reg_of(vm, &vm->row, reg);
	if (rr)
		*rr = *reg_of(vm, &vm->initial, reg);
}

/* Runs instructions [p, end) from location loc until the row for target is
 * complete. false on an instruction it does not know. */
static bool run(struct cfa_vm *vm, const uint8_t *p, const uint8_t *end, uint64_t loc,
		uint64_t target)
{
	const struct cie *c = vm->cie;
	while (p < end) {
		uint8_t op = *p++;
		uint64_t reg, delta;
		switch (op & 0xc0) {
		case 0x40: /* advance_loc */
			loc += (op & 0x3f) * c->code_align;
			if (loc > target)
				return true;
			continue;
		case 0x80: /* offset */
			set_rule(vm, op & 0x3f, R_OFFSET, (int64_t)uleb(&p, end) * c->data_align);
			continue;
		case 0xc0: /* restore */
			restore_rule(vm, op & 0x3f);
			continue;
		}
		switch (op) {
		case 0x00: /* nop */
			break;
		case 0x01: /* set_loc */
			if (!read_ptr(&p, end, c->fde_enc, 0, &loc))
				return false;
			if (loc > target)
				return true;
			break;
		case 0x02: case 0x03: case 0x04: /* advance_loc1, 2, 4 */
			if (op == 0x02) {
				delta = *p;
				p += 1;
			} else if (op == 0x03) {
				delta = LOAD(uint16_t, p);
				p += 2;
			} else {
				delta = LOAD(uint32_t, p);
				p += 4;
			}
			loc += delta * c->code_align;
			if (loc > target)
				return true;
			break;
		case 0x05: /* offset_extended */
			reg = uleb(&p, end);
			set_rule(vm, reg, R_OFFSET, (int64_t)uleb(&p, end) * c->data_align);
			break;
		case 0x06: /* restore_extended */
			restore_rule(vm, uleb(&p, end));
			break;
		case 0x07: /* undefined */
			set_rule(vm, uleb(&p, end), R_UNDEF, 0);
			break;
		case 0x08: /* same_value */
			set_rule(vm, uleb(&p, end), R_SAME, 0);
			break;
		case 0x09: /* register */
			reg = uleb(&p, end);
			uleb(&p, end);
			set_rule(vm, reg, R_OTHER, 0);
			break;
		case 0x0a: /* remember_state */
			if (vm->nsaved == STATE_STACK)
				return false;
			vm->saved[vm->nsaved++] = vm->row;
			break;
		case 0x0b: /* restore_state */
			if (vm->nsaved == 0)
				return false;
			vm->row = vm->saved[--vm->nsaved];
			break;
		case 0x0c: /* def_cfa */
			vm->row.cfa_reg = uleb(&p, end);
			vm->row.cfa_off = (int64_t)uleb(&p, end);
			vm->row.cfa_expr = false;
			break;
		case 0x0d: /* def_cfa_register */
			vm->row.cfa_reg = uleb(&p, end);
			vm->row.cfa_expr = false;
			break;
		case 0x0e: /* def_cfa_offset */
			vm->row.cfa_off = (int64_t)uleb(&p, end);
			break;
		case 0x0f: /* def_cfa_expression */
			delta = uleb(&p, end);
			p += delta;
			vm->row.cfa_expr = true;
			break;
		case 0x10: case 0x16: /* expression, val_expression */
			reg = uleb(&p, end);
			delta = uleb(&p, end);
			p += delta;
			set_rule(vm, reg, R_OTHER, 0);
			break;
		case 0x11: /* offset_extended_sf */
			reg = uleb(&p, end);
			set_rule(vm, reg, R_OFFSET, sleb(&p, end) * c->data_align);
			break;
		case 0x12: /* def_cfa_sf */
			vm->row.cfa_reg = uleb(&p, end);
			vm->row.cfa_off = sleb(&p, end) * c->data_align;
			vm->row.cfa_expr = false;
			break;
		case 0x13: /* def_cfa_offset_sf */
			vm->row.cfa_off = sleb(&p, end) * c->data_align;
			break;
		case 0x14: case 0x15: /* val_offset, val_offset_sf */
			reg = uleb(&p, end);
			if (op == 0x14)
				uleb(&p, end);
			else
				sleb(&p, end);
			set_rule(vm, reg, R_OTHER, 0);
			break;
		case 0x2e: /* GNU_args_size */
			uleb(&p, end);
			break;
		case 0x2f: /* GNU_negative_offset_extended */
			reg = uleb(&p, end);
			set_rule(vm, reg, R_OFFSET, -(int64_t)uleb(&p, end) * c->data_align);
			break;
		default:
			return false;
		}
	}
	return true;
}

/* Works out the rule for the frame whose code is at pc. */
static struct rule compute_rule(uint64_t pc)
{
	struct rule end = { .type = FRAME_END };
	const uint8_t *fde = find_fde(pc), *fde_end;
	if (!fde)
		return (struct rule){ .type = FRAME_NO_FDE };
	if (!entry_bounds(&fde, &fde_end))
		return end;
	uint32_t cie_off = LOAD(uint32_t, fde);
	if (cie_off == 0)
		return end; /* a CIE, not an FDE */
	struct cie c;
	if (!parse_cie(fde - cie_off, &c))
		return end;
	const uint8_t *p = fde + 4;
	uint64_t start, range;
	if (!read_ptr(&p, fde_end, c.fde_enc, 0, &start) ||
	    !read_ptr(&p, fde_end, c.fde_enc & 0x0f, 0, &range))
		return end;
	if (pc < start || pc - start >= range) /* between two functions */
		return (struct rule){ .type = FRAME_NO_FDE };
	if (c.has_z) {
		uint64_t n = uleb(&p, fde_end);
		p += n;
	}
	if (p > fde_end)
		return end;
	struct cfa_vm vm;
	memset(&vm, 0, sizeof(vm));
	vm.cie = &c;
	/* Registers no instruction mentions keep their values. */
	if (!run(&vm, c.insns, c.end, 0, UINT64_MAX))
		return end;
	vm.initial = vm.row;
	vm.nsaved = 0;
	if (!run(&vm, p, fde_end, start, pc))
		return end;
	if (c.signal)
		return (struct rule){ .type = FRAME_SIGNAL };
	const struct row *r = &vm.row;
	if (r->cfa_expr || (r->cfa_reg != DW_RSP && r->cfa_reg != DW_RBP) || r->cfa_off < INT32_MIN ||
	    r->cfa_off > INT32_MAX || r->ra.kind != R_OFFSET || r->ra.off < INT8_MIN ||
	    r->ra.off > INT8_MAX)
		return end;
	struct rule out = {
		.cfa_off = (int32_t)r->cfa_off,
		.ra_off = (int8_t)r->ra.off,
		.type = FRAME_NORMAL,
		.cfa_rbp = r->cfa_reg == DW_RBP,
		.rbp_off = RBP_SAME,
	};
	if (r->rbp.kind == R_OFFSET && r->rbp.off > RBP_LOST && r->rbp.off <= INT16_MAX)
		out.rbp_off = (int16_t)r->rbp.off;
	else if (r->rbp.kind == R_OFFSET || r->rbp.kind == R_OTHER)
		out.rbp_off = RBP_LOST;
	return out;
}

/* ---- the cache ----------------------------------------------------------------- */

/*
 * Direct-mapped, shared by every thread, lock-free: each slot is guarded by
 * a sequence number a writer makes odd while it fills the slot, so a reader
 * that sees it change (or odd) takes a miss instead of a torn rule. A
 * writer that finds a slot busy just does not cache. Flushing bumps the
 * epoch that a valid slot must carry.
 */
#define CACHE_BITS 14

struct slot {
	_Atomic uint32_t seq;
	_Atomic uint32_t epoch;
	_Atomic uint64_t pc;
	_Atomic uint64_t rule;
};

static struct slot *cache;
static _Atomic uint32_t epoch = 1; /* never 0, which marks an empty memo */
static void (*miss_hook)(void);

void mp_unwind_set_miss_hook(void (*hook)(void))
{
	miss_hook = hook;
}

int mp_unwind_init(void)
{
	if (cache)
		return 0;
	void *p = mmap(NULL, sizeof(struct slot) << CACHE_BITS, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	cache = p;
	return 0;
}

void mp_unwind_flush(void)
{
	if (atomic_fetch_add(&epoch, 1) == UINT32_MAX)
		atomic_fetch_add(&epoch, 1);
}

static struct slot *slot_of(uint64_t pc)
{
	return &cache[(pc * 0x9e3779b97f4a7c15ULL) >> (64 - CACHE_BITS)];
}

static void note_miss(bool *missed)
{
	if (!*missed) {
		*missed = true;
		if (miss_hook)
			miss_hook();
	}
}

static struct rule lookup(uint64_t pc, bool *missed)
{
	if (!cache) {
		note_miss(missed);
		return compute_rule(pc);
	}
	struct slot *s = slot_of(pc);
	uint32_t e = atomic_load_explicit(&epoch, memory_order_relaxed);
	uint32_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
	if (!(seq & 1) && atomic_load_explicit(&s->pc, memory_order_relaxed) == pc &&
	    atomic_load_explicit(&s->epoch, memory_order_relaxed) == e) {
		uint64_t w = atomic_load_explicit(&s->rule, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&s->seq, memory_order_relaxed) == seq)
			return unpack(w);
	}
	note_miss(missed);
	struct rule r = compute_rule(pc);
	if (!(seq & 1) &&
	    atomic_compare_exchange_strong_explicit(&s->seq, &seq, seq + 1, memory_order_acquire,
						    memory_order_relaxed)) {
		atomic_thread_fence(memory_order_release);
		atomic_store_explicit(&s->pc, pc, memory_order_relaxed);
		atomic_store_explicit(&s->rule, pack(r), memory_order_relaxed);
		atomic_store_explicit(&s->epoch, e, memory_order_relaxed);
		atomic_store_explicit(&s->seq, seq + 2, memory_order_release);
	}
	return r;
}

/* ---- the walk ------------------------------------------------------------------ */

struct regs {
	uint64_t ip, sp, bp;
	bool exact;    /* ip is where the frame is, not a return address */
	bool bp_start; /* bp is still the value the walk started with */
};

/* What a walk read from the stack, and whether it used its starting rbp
 * (code built without frame pointers keeps anything in rbp), so that a
 * later walk can tell it would read the same (see the memo below). */
#define MEMO_LOADS 96

struct recorder {
	uint32_t n;
	bool overflow;
	bool bp_used; /* the walk's result depends on its starting rbp */
	uint64_t addr[MEMO_LOADS], val[MEMO_LOADS];
};

struct bounds {
	uint64_t lo, hi;
	struct recorder *rec; /* NULL: not recording */
};

static bool load(const struct bounds *b, uint64_t addr, uint64_t *out)
{
	if (addr < b->lo || addr > b->hi - 8 || (addr & 7))
		return false;
	uint64_t v = *(const uint64_t *)(uintptr_t)addr;
	*out = v;
	struct recorder *rec = b->rec;
	if (rec) {
		if (rec->n < MEMO_LOADS) {
			rec->addr[rec->n] = addr;
			rec->val[rec->n++] = v;
		} else {
			rec->overflow = true;
		}
	}
	return true;
}

/* r's rbp, for a rule that uses it. */
static uint64_t bp_of(const struct regs *r, const struct bounds *b)
{
	if (r->bp_start && b->rec)
		b->rec->bp_used = true;
	return r->bp;
}

/* One step up, from a frame at r to its caller; false at the end. */
static bool step(struct regs *r, struct bounds *b, const struct bounds *thread, bool *missed)
{
	/* A return address is one past the call, which may be the last
	 * instruction of its function: look up the call itself. */
	struct rule rule = lookup(r->exact ? r->ip : r->ip - 1, missed);
	if (rule.type == FRAME_SIGNAL) {
		/* rsp points at the ucontext the kernel saved: rt_sigframe's
		 * return address has been popped. */
		uint64_t uc = r->sp, ip, sp, bp;
		size_t gregs = offsetof(ucontext_t, uc_mcontext.gregs);
		if (!load(b, uc + gregs + 8 * REG_RIP, &ip) || !load(b, uc + gregs + 8 * REG_RSP, &sp) ||
		    !load(b, uc + gregs + 8 * REG_RBP, &bp))
			return false;
		/* Back to the interrupted stack: the thread's own, or give up. */
		if (sp < b->lo || sp >= b->hi) {
			if (sp < thread->lo || sp >= thread->hi)
				return false;
			b->lo = thread->lo;
			b->hi = thread->hi;
		}
		*r = (struct regs){ ip, sp, bp, true, false };
		return ip != 0;
	}
	if (rule.type == FRAME_NO_FDE) {
		/* Code without call frame information (JIT output, assembly
		 * built without it): follow the frame pointer if rbp looks like
		 * one, as libunwind does. A wrong guess reads only the stack. */
		uint64_t ra, bp, fp = bp_of(r, b);
		if (fp < r->sp || (fp & 15) || !load(b, fp + 8, &ra) || !load(b, fp, &bp))
			return false;
		*r = (struct regs){ ra, fp + 16, bp, false, false };
		return ra != 0;
	}
	if (rule.type != FRAME_NORMAL)
		return false;
	uint64_t cfa = (rule.cfa_rbp ? bp_of(r, b) : r->sp) + (uint64_t)(int64_t)rule.cfa_off;
	uint64_t ra, bp = r->bp;
	if (cfa <= r->sp || !load(b, cfa + (uint64_t)(int64_t)rule.ra_off, &ra))
		return false;
	if (rule.rbp_off == RBP_LOST)
		bp = 0;
	else if (rule.rbp_off != RBP_SAME && !load(b, cfa + (uint64_t)(int64_t)rule.rbp_off, &bp))
		return false;
	/* An rbp passed on unchanged is still the starting one. */
	*r = (struct regs){ ra, cfa, bp, false, rule.rbp_off == RBP_SAME && r->bp_start };
	return ra != 0;
}

/* Out of line: the memo's hit (walk_memo) then needs no frame of walk's
 * size, whose register saves were a tenth of a full-trace allocation's
 * instructions. */
static __attribute__((noinline)) uint32_t walk(struct regs r, uint64_t *pcs, uint32_t max,
					       uintptr_t stack_lo, uintptr_t stack_hi,
					       struct recorder *rec)
{
	struct bounds thread = { stack_lo, stack_hi, rec }, b = thread;
	if (r.sp < b.lo || r.sp >= b.hi) {
		/* On a signal stack: its bounds, until a signal frame leads
		 * back to the thread's own stack. On a stack of unknown extent
		 * (a coroutine's): the page the stack pointer is in, which is
		 * certainly there, and usually holds the nearest callers. */
		stack_t ss;
		if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK) &&
		    r.sp >= (uint64_t)(uintptr_t)ss.ss_sp &&
		    r.sp < (uint64_t)(uintptr_t)ss.ss_sp + ss.ss_size)
			b = (struct bounds){ (uint64_t)(uintptr_t)ss.ss_sp,
					     (uint64_t)(uintptr_t)ss.ss_sp + ss.ss_size, rec };
		else
			b = (struct bounds){ r.sp, (r.sp | 4095) + 1, rec };
	}
	uint32_t n = 0;
	bool missed = false;
	r.bp_start = true;
	if (!r.exact && n < max)
		pcs[n++] = r.ip;
	while (n < max && step(&r, &b, &thread, &missed))
		pcs[n++] = r.ip;
	return n;
}

/* ---- the memo -------------------------------------------------------------- */

/*
 * A walk is a function of where it starts (ip, sp, rbp), the thread's
 * stack bounds, the rules (which change only when the cache is flushed:
 * the epoch) and the stack words it loads; nothing else. So a thread that
 * keeps, for a few recent walks, those inputs and the words' addresses and
 * values, and finds all of them unchanged, knows the walk would give the
 * same pcs, and copies them instead: a handful of compares for a loop
 * that allocates from the same place, against a rule lookup and two
 * loads per frame. This is exact, not a guess from the stack pointer:
 * a local variable that changed does not matter unless the walk read it,
 * and one it read that changed is a miss.
 *
 * Walks that start on a stack other than the thread's own (a signal
 * stack, a coroutine's) are not kept: their bounds come from elsewhere.
 * The memo is the thread's own, mapped at its first walk and unmapped when
 * it ends (mp_unwind_thread_end); no other thread reads it.
 */
#define MEMO_WAYS MP_MEMO_WAYS
#define MEMO_FRAMES MP_MEMO_FRAMES

struct memo {
	uint64_t ip, sp, bp, lo, hi; /* bp only if loads.bp_used */
	uint32_t epoch, max;         /* epoch 0: empty */
	uint32_t n;
	uint32_t tag; /* the caller's (struct mp_memo_ref) */
	uint64_t pcs[MEMO_FRAMES];
	struct recorder loads;
};

#define NO_MEMO ((struct memo *)1)
static __thread struct memo *memos __attribute__((tls_model("initial-exec")));

static inline __attribute__((always_inline)) struct memo *memo_of(uint64_t ip, uint64_t sp)
{
	struct memo *m = memos;
	if (__builtin_expect(!m, 0)) {
		void *p = mmap(NULL, sizeof(struct memo) * MEMO_WAYS, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		memos = m = p == MAP_FAILED ? NO_MEMO : p;
	}
	if (m == NO_MEMO)
		return NULL;
	return &m[((ip ^ (sp << 7)) * 0x9e3779b97f4a7c15ULL) >> (64 - 3)];
}

static inline __attribute__((always_inline)) bool memo_holds(const struct memo *m, uint64_t ip,
							     uint64_t sp, uint64_t bp, uint32_t max,
							     uintptr_t lo, uintptr_t hi, uint32_t e)
{
	if (m->epoch != e || m->ip != ip || m->sp != sp || (m->loads.bp_used && m->bp != bp) ||
	    m->lo != lo || m->hi != hi || m->max != max)
		return false;
	for (uint32_t i = 0; i < m->loads.n; i++)
		if (*(const uint64_t *)(uintptr_t)m->loads.addr[i] != m->loads.val[i])
			return false;
	return true;
}

/* Scalars rather than a struct regs: the memo's hit is a few dozen
 * instructions, and a struct built in memory and read back whole stalls
 * store forwarding for longer than some of them. */
static uint32_t walk_memo(uint64_t ip, uint64_t sp, uint64_t bp, uint64_t *pcs, uint32_t max,
			  uintptr_t lo, uintptr_t hi, struct mp_memo_ref *ref)
{
	struct memo *m;
	if (ref)
		ref->tag = NULL;
	if (sp < lo || sp >= hi || !(m = memo_of(ip, sp)))
		return walk((struct regs){ ip, sp, bp, false, false }, pcs, max, lo, hi, NULL);
	uint32_t e = atomic_load_explicit(&epoch, memory_order_relaxed);
	if (memo_holds(m, ip, sp, bp, max, lo, hi, e)) {
		memcpy(pcs, m->pcs, m->n * sizeof(uint64_t));
		if (ref) {
			ref->tag = &m->tag;
			ref->way = (uint32_t)(m - memos);
		}
		return m->n;
	}
	m->epoch = 0;
	m->tag = 0;
	m->loads.n = 0;
	m->loads.overflow = m->loads.bp_used = false;
	uint32_t n = walk((struct regs){ ip, sp, bp, false, false }, pcs, max, lo, hi, &m->loads);
	/* A flush during the walk may have left rules of the old epoch in
	 * it: keep the walk only if none happened. */
	if (n <= MEMO_FRAMES && !m->loads.overflow &&
	    atomic_load_explicit(&epoch, memory_order_relaxed) == e) {
		m->ip = ip;
		m->sp = sp;
		m->bp = bp;
		m->lo = lo;
		m->hi = hi;
		m->max = max;
		m->n = n;
		memcpy(m->pcs, pcs, n * sizeof(uint64_t));
		m->epoch = e;
		if (ref) {
			ref->tag = &m->tag;
			ref->way = (uint32_t)(m - memos);
		}
	}
	return n;
}

uint32_t *mp_unwind_memo_tag(uint64_t ip, uint64_t sp, uint64_t bp, uint32_t max,
			    uintptr_t stack_lo, uintptr_t stack_hi)
{
	struct memo *m = memos;
	if (!m || m == NO_MEMO || sp < stack_lo || sp >= stack_hi)
		return NULL;
	m = memo_of(ip, sp);
	uint32_t e = atomic_load_explicit(&epoch, memory_order_relaxed);
	if (!m->tag || !memo_holds(m, ip, sp, bp, max, stack_lo, stack_hi, e))
		return NULL;
	return &m->tag;
}

void mp_unwind_thread_end(void)
{
	struct memo *m = memos;
	memos = NO_MEMO;
	if (m && m != NO_MEMO)
		munmap(m, sizeof(struct memo) * MEMO_WAYS);
}

__attribute__((noinline)) uint32_t mp_unwind(uint64_t *pcs, uint32_t max, uintptr_t stack_lo,
					      uintptr_t stack_hi)
{
	struct regs r;
	/* Where this function is now; its rule comes from its own CFI, exact
	 * at every instruction (x86-64 objects have asynchronous tables). */
	__asm__ volatile("lea 0(%%rip), %0\n\t"
			 "mov %%rsp, %1\n\t"
			 "mov %%rbp, %2"
			 : "=r"(r.ip), "=r"(r.sp), "=r"(r.bp));
	r.exact = true;
	return walk(r, pcs, max, stack_lo, stack_hi, NULL);
}

uint32_t mp_unwind_from(uint64_t ip, uint64_t sp, uint64_t bp, uint64_t *pcs, uint32_t max,
			uintptr_t stack_lo, uintptr_t stack_hi, struct mp_memo_ref *ref)
{
	return walk_memo(ip, sp, bp, pcs, max, stack_lo, stack_hi, ref);
}
