/*
 * Unwinding CPU samples: the shim's SIGPROF handler sends the interrupted
 * registers and a copy of the top of the stack; here libdw walks that copy
 * with the call frame information of the files the process has mapped, as
 * perf does for --call-graph dwarf. One Dwfl per process, rebuilt when the
 * process reports new mappings.
 */
#include <elfutils/libdwfl.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "unwind.h"
#include "util.h"

struct unwinder {
	Dwfl *dwfl;
	size_t nmaps;  /* mappings known when the Dwfl was built */
	bool attached;
	/* the sample being unwound */
	pid_t tid;
	const struct mp_cpu_sample *sample;
	const unsigned char *stack;
	uint64_t *out;
	uint32_t depth, max;
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
static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct unwinder *u = arg;
	(void)dwfl;
	uint64_t sp = u->sample->regs[7];
	if (addr < sp || addr - sp > u->sample->stack_len ||
	    u->sample->stack_len - (addr - sp) < sizeof(*result))
		return false;
	memcpy(result, u->stack + (addr - sp), sizeof(*result));
	return true;
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

uint32_t unwind_sample(struct proc *p, const struct mp_cpu_sample *s, const unsigned char *stack,
		       uint64_t *out, uint32_t max)
{
	if (!p->unwinder)
		p->unwinder = xcalloc(1, sizeof(*p->unwinder));
	struct unwinder *u = p->unwinder;
	if ((!u->dwfl || u->nmaps != p->nmaps) && build(u, p) != 0)
		u->attached = false;
	u->tid = (pid_t)s->tid;
	u->sample = s;
	u->stack = stack;
	u->out = out;
	u->depth = 0;
	u->max = max;
	if (u->attached)
		dwfl_getthread_frames(u->dwfl, u->tid, on_frame, u);
	if (u->depth == 0 && max)
		out[u->depth++] = s->regs[16]; /* at least where it was */
	return u->depth;
}

void unwind_free(struct unwinder *u)
{
	if (!u)
		return;
	if (u->dwfl)
		dwfl_end(u->dwfl);
	free(u);
}
