/*
 * Text pages for /debug/pprof/: the index of processes (HTML, laid out as
 * Go's net/http/pprof index) and the legacy text heap profile of ?debug=1,
 * written as Go's runtime/pprof writeHeapInternal writes it, followed by a
 * summary of the process's memory in the place of Go's runtime.MemStats.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "pprof_text.h"
#include "strbuf.h"
#include "util.h"

/* ---- the legacy heap format --------------------------------------------------- */

struct record {
	uint64_t inuse_bytes, alloc_bytes;
	size_t bucket;
};

/* Go sorts by in-use bytes, most first; ties here by allocated bytes and
 * then bucket, so that the page is the same each time. */
static int by_inuse(const void *a, const void *b)
{
	const struct record *x = a, *y = b;
	if (x->inuse_bytes != y->inuse_bytes)
		return x->inuse_bytes > y->inuse_bytes ? -1 : 1;
	if (x->alloc_bytes != y->alloc_bytes)
		return x->alloc_bytes > y->alloc_bytes ? -1 : 1;
	return x->bucket < y->bucket ? -1 : x->bucket > y->bucket;
}

/* Width in characters (UTF-8 code points), as text/tabwriter counts. */
static size_t text_width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

/*
 * Go writes the frames through text/tabwriter (minwidth 1, tabwidth 8,
 * padding 1, padchar '\t'): each column of a block of lines is as wide as
 * its widest cell plus one, rounded up to a multiple of 8, and cells are
 * padded with as many tabs as reach that width. A record's frame lines are
 * one block (the record line before it has no tab, the blank line after it
 * ends it).
 */
static size_t tab_column(size_t widest)
{
	return (widest + 1 + 7) / 8 * 8;
}

static void add_tabs(struct strbuf *b, size_t textw, size_t cellw)
{
	for (size_t n = (cellw - textw + 7) / 8; n > 0; n--)
		sb_add(b, "\t", 1);
}

struct frame_line {
	char pc[24];
	const char *function;
	const struct sym_line *line;
};

/*
 * One line per frame, inlined ones included, innermost first, as Go's
 * printStackRecord writes them: "#", the pc (inside the call), the function
 * and file:line. Go writes the function as name+offset; the symbolizer
 * does not tell where a function starts, so memprof writes the name alone.
 * pprof reads none of this (it is a comment), people do.
 */
static void add_frames(struct strbuf *b, struct proc *p, const struct stack *s)
{
	size_t n = 0, cap = 0;
	struct frame_line *lines = NULL;
	size_t pcw = 0, fnw = 0;
	for (uint32_t i = 0; i < s->depth; i++) {
		struct location *loc = &p->locs[s->locs[i]];
		proc_symbolize(p, loc);
		for (uint16_t j = 0; j < loc->nlines; j++) {
			GROW(lines, cap, n + 1);
			struct frame_line *fl = &lines[n++];
			snprintf(fl->pc, sizeof(fl->pc), "0x%" PRIx64, loc->addr);
			fl->line = &loc->lines[j];
			size_t w = strlen(fl->pc);
			if (w > pcw)
				pcw = w;
			w = text_width(fl->line->function);
			if (w > fnw)
				fnw = w;
		}
	}
	size_t pc_cell = tab_column(pcw), fn_cell = tab_column(fnw);
	for (size_t i = 0; i < n; i++) {
		sb_add(b, "#\t", 2); /* "#" in a column of width 8: one tab */
		sb_adds(b, lines[i].pc);
		add_tabs(b, strlen(lines[i].pc), pc_cell);
		sb_adds(b, lines[i].line->function);
		add_tabs(b, text_width(lines[i].line->function), fn_cell);
		sb_printf(b, "%s:%" PRId64 "\n", lines[i].line->file, lines[i].line->line);
	}
	sb_add(b, "\n", 1);
	free(lines);
}

/* VmRSS and VmHWM of pid in bytes; false if /proc does not say. */
static bool read_rss(uint32_t pid, uint64_t *rss, uint64_t *peak)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%u/status", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	int found = 0;
	unsigned long long kb;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1) {
			*rss = kb * 1024;
			found |= 1;
		} else if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) {
			*peak = kb * 1024;
			found |= 2;
		}
	}
	fclose(f);
	return found == 3;
}

/*
 * In the place of Go's runtime.MemStats: what the kernel and the process's
 * own malloc (mallinfo2, sent by the shim) say, and what memprof saw. Like
 * Go's, these are comment lines, which pprof skips.
 */
static void add_stats(struct strbuf *b, const struct proc *p)
{
	sb_printf(b, "\n# memprof process statistics\n");
	sb_printf(b, "# Pid = %u\n", p->pid);
	uint64_t rss, peak;
	if (read_rss(p->pid, &rss, &peak)) {
		sb_printf(b, "# RSS = %" PRIu64 "\n", rss);
		sb_printf(b, "# MaxRSS = %" PRIu64 "\n", peak);
	}
	if (p->have_malloc_stats) {
		const struct mp_malloc_stats *m = &p->malloc_stats;
		sb_printf(b, "# MallocInuse = %" PRIu64 "\n", m->uordblks);
		sb_printf(b, "# MallocFree = %" PRIu64 "\n", m->fordblks);
		sb_printf(b, "# MallocArena = %" PRIu64 "\n", m->arena);
		sb_printf(b, "# MallocMmapped = %" PRIu64 "\n", m->hblkhd);
		sb_printf(b, "# MallocReleasable = %" PRIu64 "\n", m->keepcost);
		sb_printf(b, "# MallocFreeChunks = %" PRIu64 "\n", m->ordblks);
	} else {
		sb_printf(b, "# Malloc statistics: none (the program's malloc is not glibc's)\n");
	}
	sb_printf(b, "# HeapSamples = %" PRIu64 "\n", p->samples);
	sb_printf(b, "# SampleRate = %" PRIu64 "\n", p->rate);
	sb_printf(b, "# DroppedEvents = %" PRIu64 "\n", p->drops);
	sb_printf(b, "# DroppedCPUSamples = %" PRIu64 "\n", p->cpu_drops);
}

/*
 * The mappings, in the brief form google/pprof's legacy parser reads after
 * this sentinel (as in gperftools' heap profiles), so that go tool pprof can
 * symbolize the text profile from the binaries. Go's own text has none;
 * readers of Go's format stop before it.
 */
static void add_memory_map(struct strbuf *b, const struct proc *p)
{
	sb_adds(b, "\n--- Memory map: ---\n");
	for (size_t i = 0; i < p->nmaps; i++) {
		const struct mapping *m = &p->maps[i];
		if (m->path[0] != '/' || strpbrk(m->path, " \t\r\n"))
			continue;
		sb_printf(b, "0x%" PRIx64 "-0x%" PRIx64 " %s (@%" PRIx64 ")", m->start, m->limit,
			  m->path, m->offset);
		if (m->build_id_len) {
			sb_adds(b, " ");
			for (uint32_t j = 0; j < m->build_id_len; j++)
				sb_printf(b, "%02x", m->build_id[j]);
		}
		sb_adds(b, "\n");
	}
}

char *pprof_text_heap(struct proc *p, size_t *len)
{
	struct record *recs = xmalloc((p->nbuckets ? p->nbuckets : 1) * sizeof(*recs));
	size_t n = 0;
	uint64_t inuse_objs = 0, inuse_bytes = 0, alloc_objs = 0, alloc_bytes = 0;
	for (size_t i = 0; i < p->nbuckets; i++) {
		const struct bucket *bk = &p->buckets[i];
		if (!bk->alloc_samples)
			continue;
		recs[n] = (struct record){ bk->inuse_samples * bk->size, bk->alloc_samples * bk->size, i };
		inuse_objs += bk->inuse_samples;
		inuse_bytes += recs[n].inuse_bytes;
		alloc_objs += bk->alloc_samples;
		alloc_bytes += recs[n].alloc_bytes;
		n++;
	}
	qsort(recs, n, sizeof(*recs), by_inuse);

	/*
	 * Values are the samples as taken, not unsampled: Go writes the raw
	 * MemProfileRecord counts and bytes, and the reader unsamples each
	 * record by its mean size at the rate in the header (google/pprof
	 * profile/legacy_profile.go, parseHeapHeader and scaleHeapSample). A
	 * record is a bucket, one stack allocating one size, as Go's are, so
	 * that mean size is exact and the reader's figures match the
	 * profile.proto ones. The header carries twice the rate because the
	 * first C++ heap profiler did and pprof halves it for "heap/".
	 *
	 * Totals where everything allocated is still in use would make pprof
	 * read a two-column profile (objects and space only, no inuse_ or
	 * alloc_ types), so the allocated bytes are nudged by one, as newer
	 * Go releases do; pprof uses the header for nothing else.
	 */
	uint64_t header_alloc = alloc_bytes == inuse_bytes ? alloc_bytes + 1 : alloc_bytes;
	struct strbuf b = { 0 };
	sb_printf(&b, "heap profile: %" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64 "] @ heap/%" PRIu64 "\n",
		  inuse_objs, inuse_bytes, alloc_objs, header_alloc, 2 * p->rate);
	for (size_t i = 0; i < n; i++) {
		const struct bucket *bk = &p->buckets[recs[i].bucket];
		const struct stack *s = &p->stacks[bk->stack];
		sb_printf(&b, "%" PRIu64 ": %" PRIu64 " [%" PRIu64 ": %" PRIu64 "] @",
			  bk->inuse_samples, recs[i].inuse_bytes, bk->alloc_samples, recs[i].alloc_bytes);
		/* Return addresses, as Go's records hold them; the reader
		 * steps each back by one into the call. */
		for (uint32_t j = 0; j < s->depth; j++)
			sb_printf(&b, " 0x%" PRIx64, p->locs[s->locs[j]].addr + 1);
		sb_add(&b, "\n", 1);
		add_frames(&b, p, s);
	}
	free(recs);
	add_stats(&b, p);
	add_memory_map(&b, p);
	return sb_take(&b, len);
}

/* ---- the index ------------------------------------------------------------------ */

char *pprof_text_index(size_t *len)
{
	struct strbuf b = { 0 };
	sb_adds(&b, "<html>\n<head>\n<title>/debug/pprof/</title>\n<style>\n"
		    ".profile-name{\n\tdisplay:inline-block;\n\twidth:6rem;\n}\n"
		    "td{\n\tpadding-right:1rem;\n}\n</style>\n</head>\n<body>\n"
		    "/debug/pprof/<br>\n<br>\n"
		    "<p><a href=\"ui/\">Flame graphs, top tables and growth</a> (ui/)</p>\n"
		    "<p>Set debug=1 as a query parameter to export in legacy text format</p>\n"
		    "Processes profiled by memprof:\n<table>\n"
		    "<thead><td>pid</td><td>command line</td><td>profiles</td>"
		    "<td>heap samples</td><td>events dropped</td></thead>\n");
	struct map seen = { 0 };
	for (struct conn *k = conns; k; k = k->next) {
		const struct proc *p = k->proc;
		/* An image that exec'd may linger a moment beside the new one. */
		if (!p || map_find(&seen, (uint64_t)p->pid + 1, 0))
			continue;
		map_put(&seen, (uint64_t)p->pid + 1, 0, 1);
		sb_printf(&b, "<tr><td>%u</td><td>", p->pid);
		sb_add_html(&b, p->cmdline[0] ? p->cmdline : p->exe);
		sb_printf(&b,
			  "</td><td><a href='heap?pid=%u'>heap</a> "
			  "<a href='heap?pid=%u&amp;debug=1'>(text)</a> "
			  "<a href='allocs?pid=%u'>allocs</a> ",
			  p->pid, p->pid, p->pid);
		if (p->cpu_hz)
			sb_printf(&b, "<a href='profile?pid=%u'>profile</a> ", p->pid);
		sb_printf(&b, "<a href='ui/?pid=%u'>ui</a> ", p->pid);
		sb_printf(&b,
			  "<a href='cmdline?pid=%u'>cmdline</a></td><td>%" PRIu64 "</td>"
			  "<td>%" PRIu64 " heap, %" PRIu64 " CPU</td></tr>\n",
			  p->pid, p->samples, p->drops, p->cpu_drops);
	}
	map_free(&seen);
	sb_adds(&b, "</table>\n<br>\n<p>\nProfile Descriptions:\n<ul>\n"
		    "<li><div class=profile-name>allocs: </div> A sampling of all past memory "
		    "allocations</li>\n"
		    "<li><div class=profile-name>cmdline: </div> The command line invocation of "
		    "the process</li>\n"
		    "<li><div class=profile-name>heap: </div> A sampling of memory allocations of "
		    "live objects</li>\n"
		    "<li><div class=profile-name>profile: </div> CPU profile. You can specify the "
		    "duration in the seconds GET parameter. After you get the profile file, use "
		    "the go tool pprof command to investigate the profile.</li>\n"
		    "</ul>\n<p>\nEach takes the pid GET parameter, which may be left out when "
		    "only one process is profiled.\n</p>\n</body>\n</html>\n");
	return sb_take(&b, len);
}
