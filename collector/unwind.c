/*
 * Unwinding CPU samples: the shim's SIGPROF handler sends the interrupted
 * registers and a copy of the top of the stack; here libdw walks that copy
 * with the call frame information of the files the process has mapped, as
 * perf does for --call-graph dwarf. One Dwfl per process, rebuilt when the
 * process reports new mappings.
 *
 * Most frames are stepped here, with the rules unwind_rules.c has cached
 * for their addresses; a sample with a frame those rules cannot step is
 * unwound by libdw from its start. The collector's --check-unwinding
 * unwinds every sample both ways and says, when each process ends, how
 * many stacks differed (a test's check: none).
 */
#include <elfutils/libdwfl.h>
#include <inttypes.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "unwind.h"
#include "unwind_rules.h"
#include "util.h"

struct unwinder {
	uint32_t pid;
	Dwfl *dwfl;
	size_t nmaps;  /* mappings known when the Dwfl was built */
	bool attached;
	/* the sample being unwound */
	pid_t tid;
	const struct mp_cpu_sample *sample;
	const unsigned char *stack;
	uint64_t *out;
	uint32_t depth, max;
	struct map rules; /* unwind_rules.h */
	/* --check-unwinding: samples unwound both ways, how many of them the
	 * rules could step all the way, and how many stacks differed. */
	uint64_t checked, by_rules, differed;
};

/* libdw's unwinder asks for a module's DWARF (for .debug_frame) before its
 * .eh_frame, and opening a separate debug file inflates all of its DWARF:
 * ~40 ms and ~10 MB for libc's, for nothing, since x86-64 code carries
 * .eh_frame. So separate debug files are not looked for here (a file's
 * own .debug_frame still is). */
static int no_separate_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
				 GElf_Addr base, const char *file_name, const char *debuglink_file,
				 GElf_Word debuglink_crc, char **debuginfo_file_name)
{
	(void)mod, (void)userdata, (void)modname, (void)base, (void)file_name;
	(void)debuglink_file, (void)debuglink_crc, (void)debuginfo_file_name;
	return -1;
}

static char *debuginfo_path;
static const Dwfl_Callbacks dwfl_callbacks = {
	.find_elf = dwfl_build_id_find_elf,
	.find_debuginfo = no_separate_debuginfo,
	.section_address = dwfl_offline_section_address,
	.debuginfo_path = &debuginfo_path,
};

static pid_t next_thread(Dwfl *dwfl, void *arg, void **thread_arg)
{
	struct unwinder *u = arg;
	(void)dwfl;
	if (*thread_arg)
		return 0;
	*thread_arg = u;
	return u->tid;
}

static bool get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_arg)
{
	(void)dwfl;
	(void)tid;
	*thread_arg = arg;
	return true;
}

/* Only the copied stack is readable: anything else ends the walk. */
static bool read_word(const struct unwinder *u, uint64_t addr, uint64_t *result)
{
	uint64_t sp = u->sample->regs[DW_REG_RSP];
	if (addr < sp || addr - sp > u->sample->stack_len ||
	    u->sample->stack_len - (addr - sp) < sizeof(*result))
		return false;
	memcpy(result, u->stack + (addr - sp), sizeof(*result));
	return true;
}

static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	(void)dwfl;
	return read_word(arg, addr, result); /* Dwarf_Word is uint64_t */
}

static bool set_initial_registers(Dwfl_Thread *thread, void *arg)
{
	struct unwinder *u = arg;
	Dwarf_Word regs[MP_CPU_REGS];
	for (int i = 0; i < MP_CPU_REGS; i++)
		regs[i] = u->sample->regs[i];
	return dwfl_thread_state_registers(thread, 0, MP_CPU_REGS, regs);
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
	.next_thread = next_thread,
	.get_thread = get_thread,
	.memory_read = memory_read,
	.set_initial_registers = set_initial_registers,
};

/* A Dwfl with every file the process has mapped, at its load address. When
 * two mappings overlap (a library unloaded and another loaded in its place)
 * the newer one is kept. */
static int build(struct unwinder *u, const struct proc *p)
{
	if (u->dwfl)
		dwfl_end(u->dwfl);
	map_free(&u->rules); /* addresses may name other code now */
	u->dwfl = dwfl_begin(&dwfl_callbacks);
	u->attached = false;
	u->nmaps = p->nmaps;
	if (!u->dwfl)
		return -1;
	dwfl_report_begin(u->dwfl);
	for (size_t i = p->nmaps; i-- > 0;) {
		const struct mapping *m = &p->maps[i];
		if (!m->file)
			continue; /* nothing to read */
		bool seen = false;
		for (size_t j = i + 1; j < p->nmaps && !seen; j++)
			seen = p->maps[j].load_bias == m->load_bias &&
			       strcmp(p->maps[j].path, m->path) == 0;
		if (seen)
			continue;
		const char *base = strrchr(m->path, '/');
		/* The path is a client's: a FIFO there would hold us in open(). */
		const char *why;
		int fd = open_regular_file(m->file, &why);
		if (fd < 0) {
			log_debug("pid %u: not unwinding through %s: %s", p->pid, m->file, why);
			continue;
		}
		/* libdw owns fd once it has made the module. */
		if (!dwfl_report_elf(u->dwfl, base ? base + 1 : m->path, m->file, fd,
				     m->load_bias, false))
			close(fd);
	}
	dwfl_report_end(u->dwfl, NULL, NULL);
	if (!dwfl_attach_state(u->dwfl, NULL, (pid_t)p->pid, &thread_callbacks, u)) {
		log_debug("pid %u: cannot prepare unwinding: %s", p->pid, dwfl_errmsg(-1));
		return -1;
	}
	u->attached = true;
	return 0;
}

static int on_frame(Dwfl_Frame *state, void *arg)
{
	struct unwinder *u = arg;
	Dwarf_Addr pc;
	bool activation;
	if (u->depth >= u->max || !dwfl_frame_pc(state, &pc, &activation))
		return DWARF_CB_ABORT;
	/* A return address points after the call: step back into it. */
	u->out[u->depth++] = activation ? pc : pc - 1;
	return DWARF_CB_OK;
}

/* The walk libdwfl would make (dwfl_thread_getframes, handle_cfi), frame
 * by frame with cached rules, tracking the only registers those rules
 * use: rsp, rbp (while known) and the pc. False when a frame's rule is
 * not one of them: then nothing of this walk counts. */
static bool walk_by_rules(struct unwinder *u)
{
	const struct mp_cpu_sample *s = u->sample;
	uint64_t sp = s->regs[DW_REG_RSP], bp = s->regs[DW_REG_RBP];
	uint64_t at = s->regs[DW_REG_RIP]; /* the interrupted pc itself */
	bool bp_known = true;
	/* base + a signed offset, wrapping as libdw's DWARF arithmetic does */
#define AT(base, off) ((base) + (uint64_t)(int64_t)(off))
	for (u->depth = 0; u->depth < u->max;) {
		u->out[u->depth++] = at;
		struct unwind_rule r = rules_get(&u->rules, u->dwfl, at);
		if (r.kind == RULE_LIBDW)
			return false;
		if (r.kind == RULE_END)
			break;
		if (r.cfa_reg == DW_REG_RBP && !bp_known)
			break; /* libdw cannot compute the CFA either: it stops */
		uint64_t cfa = AT(r.cfa_reg == DW_REG_RSP ? sp : bp, r.cfa_off);
		uint64_t ra;
		if (!read_word(u, AT(cfa, r.ra_off), &ra) || ra == 0)
			break;
		if (r.rbp == RBP_SAVED)
			bp_known = read_word(u, AT(cfa, r.rbp_off), &bp);
		else if (r.rbp == RBP_LOST)
			bp_known = false;
		sp = cfa;
		/* A return address points after the call: step back into it,
		 * both to name the call and to find its rule. */
		at = ra - 1;
	}
#undef AT
	return true;
}

static void walk_by_libdw(struct unwinder *u)
{
	u->depth = 0;
	if (u->attached)
		dwfl_getthread_frames(u->dwfl, u->tid, on_frame, u);
}

/* --check-unwinding: both walks, compared. */
static void walk_both(struct unwinder *u)
{
	uint64_t mine[MP_MAX_FRAMES];
	uint64_t *out = u->out;
	uint32_t max = u->max < MP_MAX_FRAMES ? u->max : MP_MAX_FRAMES;
	u->out = mine;
	u->max = max;
	bool by_rules = u->attached && walk_by_rules(u);
	uint32_t depth = u->depth;
	u->out = out;
	walk_by_libdw(u);
	u->checked++;
	if (!by_rules)
		return;
	u->by_rules++;
	if (depth == u->depth && memcmp(mine, out, depth * sizeof(*out)) == 0)
		return;
	if (u->differed++ < 5) {
		uint32_t i = 0;
		while (i < depth && i < u->depth && mine[i] == out[i])
			i++;
		log_msg("pid %u: unwind check: the rules' stack of %u frames differs from "
			"libdw's of %u at frame %u (%#" PRIx64 " against %#" PRIx64 ")",
			u->pid, depth, u->depth, i, i < depth ? mine[i] : 0,
			i < u->depth ? out[i] : 0);
	}
}

uint32_t unwind_sample(struct proc *p, const struct mp_cpu_sample *s, const unsigned char *stack,
		       uint64_t *out, uint32_t max)
{
	if (!p->unwinder) {
		p->unwinder = xcalloc(1, sizeof(*p->unwinder));
		p->unwinder->pid = p->pid;
	}
	struct unwinder *u = p->unwinder;
	if ((!u->dwfl || u->nmaps != p->nmaps) && build(u, p) != 0)
		u->attached = false;
	u->tid = (pid_t)s->tid;
	u->sample = s;
	u->stack = stack;
	u->out = out;
	u->max = max;
	if (cfg.check_unwinding)
		walk_both(u);
	else if (!u->attached || !walk_by_rules(u))
		walk_by_libdw(u);
	if (u->depth == 0 && max)
		out[u->depth++] = s->regs[DW_REG_RIP]; /* at least where it was */
	return u->depth;
}

void unwind_free(struct unwinder *u)
{
	if (!u)
		return;
	if (u->checked)
		log_msg("pid %u: unwind check: %" PRIu64 " samples, %" PRIu64
			" stepped by the cached rules, %" PRIu64 " of them differed from libdw",
			u->pid, u->checked, u->by_rules, u->differed);
	if (u->dwfl)
		dwfl_end(u->dwfl);
	map_free(&u->rules);
	free(u);
}
