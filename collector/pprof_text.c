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
#include "debuginfo.h"
#include "pprof_text.h"
#include "strbuf.h"
#include "symbolize.h"
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
 * Go writes the text through text/tabwriter (minwidth 1, tabwidth 8,
 * padding 1, padchar '\t'). A line is cells ended by tabs, then a last
 * cell that is not aligned. A column block is a run of consecutive lines
 * that all have a tab-ended cell in that column; each cell of it is padded
 * with tabs to the widest cell of the block plus one, rounded up to a
 * multiple of 8. Blocks nest: the next column's blocks are found within
 * the lines of this one (tabwriter.go, format). A record's frame lines are
 * what is aligned here (the record line before them has no tab, the blank
 * line after them ends them).
 */
#define TW_CELLS 4

struct tw_line {
	const char *cell[TW_CELLS]; /* cell[ncells - 1] is the unaligned last */
	int ncells;
};

static void tw_write_lines(struct strbuf *b, const struct tw_line *lines, size_t from,
			   size_t to, const size_t *widths, int nwidths)
{
	for (size_t i = from; i < to; i++) {
		const struct tw_line *l = &lines[i];
		for (int j = 0; j < l->ncells; j++) {
			sb_adds(b, l->cell[j]);
			if (j == l->ncells - 1)
				break;
			/* A tab-ended cell beyond the known widths cannot
			 * happen: format() found a block for each. */
			size_t cellw = j < nwidths ? widths[j] : 0;
			size_t textw = text_width(l->cell[j]);
			cellw = (cellw + 7) / 8 * 8;
			size_t n = cellw > textw ? (cellw - textw + 7) / 8 : 0;
			if (n == 0)
				n = 1; /* tabwriter always ends a cell with its tab */
			while (n--)
				sb_add(b, "\t", 1);
		}
		sb_add(b, "\n", 1);
	}
}

static void tw_format(struct strbuf *b, const struct tw_line *lines, size_t line0, size_t line1,
		      size_t *widths, int nwidths)
{
	int column = nwidths;
	for (size_t this = line0; this < line1; this++) {
		if (column >= lines[this].ncells - 1)
			continue;
		tw_write_lines(b, lines, line0, this, widths, nwidths);
		line0 = this;
		size_t width = 1; /* minwidth */
		for (; this < line1 && column < lines[this].ncells - 1; this++) {
			size_t w = text_width(lines[this].cell[column]) + 1; /* padding */
			if (w > width)
				width = w;
		}
		widths[nwidths] = width;
		tw_format(b, lines, line0, this, widths, nwidths + 1);
		line0 = this;
		this--; /* the loop's increment looks at the line that ended the block */
	}
	tw_write_lines(b, lines, line0, line1, widths, nwidths);
}

/*
 * One line per frame, inlined ones included, innermost first, as Go's
 * printStackRecord writes them: "#", the pc (inside the call), the
 * function with the offset of the pc from the start of the function the
 * code physically belongs to (for an inlined frame too, as Go's
 * Frame.Entry), and file:line. Where nothing names the address, Go's form
 * for a frame without a function: "#" and the pc alone. pprof reads none
 * of this (it is a comment); people and tools that parse Go's text do.
 */
static void add_frames(struct strbuf *b, struct proc *p, const struct stack *s)
{
	size_t n = 0, cap = 0;
	struct tw_line *lines = NULL;
	struct strbuf text = { 0 }; /* the cells, NUL-separated */
	size_t *offs = NULL, noffs = 0, cap_offs = 0;
	for (uint32_t i = 0; i < s->depth; i++) {
		struct location *loc = &p->locs[s->locs[i]];
		proc_symbolize(p, loc);
		uint64_t bias = loc->mapping >= 0 ? p->maps[loc->mapping].load_bias : 0;
		for (uint16_t j = 0; j < loc->nlines; j++) {
			const struct sym_line *l = &loc->lines[j];
			GROW(lines, cap, n + 1);
			GROW(offs, cap_offs, noffs + 3);
			struct tw_line *tl = &lines[n++];
			tl->cell[0] = "#";
			offs[noffs++] = text.len;
			sb_printf(&text, "0x%" PRIx64, loc->addr);
			sb_add(&text, "", 1);
			if (!l->entry || loc->addr - bias < l->entry) {
				tl->ncells = 2;
				break; /* Go prints such a frame once */
			}
			offs[noffs++] = text.len;
			sb_printf(&text, "%s+0x%" PRIx64, l->function, loc->addr - bias - l->entry);
			sb_add(&text, "", 1);
			offs[noffs++] = text.len;
			sb_printf(&text, "%s:%" PRId64, l->file, l->line);
			sb_add(&text, "", 1);
			tl->ncells = 4;
		}
	}
	/* The cells' addresses only now, the buffer having stopped moving. */
	for (size_t i = 0, k = 0; i < n; i++)
		for (int j = 1; j < lines[i].ncells; j++)
			lines[i].cell[j] = text.s + offs[k++];
	size_t widths[TW_CELLS];
	tw_format(b, lines, 0, n, widths, 0);
	sb_add(b, "\n", 1);
	sb_free(&text);
	free(offs);
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
 * glibc's arenas: the main one, plus one per thread arena. mallinfo2 does
 * not count them; /proc/PID/maps shows them, as each thread arena lives in
 * "heaps" of HEAP_MAX_SIZE (64 MiB on 64-bit systems), anonymous and
 * aligned to that size: a rw-p part and the ---p reserve after it, or all
 * rw-p once grown. An arena past 64 MiB has more than one heap and is
 * counted once per heap. 0 if /proc does not say.
 */
static unsigned count_arenas(uint32_t pid)
{
	const uint64_t heap_max = 64ULL << 20;
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/%u/maps", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	unsigned n = 1;
	uint64_t open_start = 0, open_end = 0; /* a rw-p heap start seen last */
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, inode;
		char perms[8];
		int name = 0;
		if (sscanf(line, "%llx-%llx %7s %*s %*s %llu %n", &start, &end, perms, &inode,
			   &name) < 4 || inode != 0 || (line[name] != '\n' && line[name] != '\0')) {
			open_end = 0;
			continue;
		}
		if (strcmp(perms, "rw-p") == 0 && start % heap_max == 0) {
			if (end - start == heap_max) {
				n++;
				open_end = 0;
			} else {
				open_start = start;
				open_end = end;
			}
			continue;
		}
		if (open_end && start == open_end && strcmp(perms, "---p") == 0 &&
		    end - open_start == heap_max)
			n++;
		open_end = 0;
	}
	fclose(f);
	return n;
}

/*
 * Go's "# runtime.MemStats" block, headed and laid out as Go writes it
 * ("# Name = value" lines, which pprof skips as comments), filled with
 * what the process's allocator says of itself: glibc's mallinfo2, which
 * the shim reads only when this page is asked for (it takes every arena's
 * lock). Go's names where glibc has the same figure (Alloc, Sys,
 * HeapAlloc, HeapSys, HeapIdle, HeapInuse), glibc's own after them, then
 * the kernel's RSS and what memprof saw.
 */
static void add_stats(struct strbuf *b, const struct proc *p)
{
	sb_printf(b, "\n# runtime.MemStats\n");
	if (p->have_malloc_stats) {
		const struct mp_malloc_stats *m = &p->malloc_stats;
		/* in use; obtained from the system (arenas and mmapped blocks) */
		sb_printf(b, "# Alloc = %" PRIu64 "\n", m->uordblks);
		sb_printf(b, "# Sys = %" PRIu64 "\n", m->arena + m->hblkhd);
		sb_printf(b, "# HeapAlloc = %" PRIu64 "\n", m->uordblks);
		sb_printf(b, "# HeapSys = %" PRIu64 "\n", m->arena);
		sb_printf(b, "# HeapIdle = %" PRIu64 "\n", m->fordblks);
		sb_printf(b, "# HeapInuse = %" PRIu64 "\n", m->uordblks);
		/* glibc's: free in the arenas, the top pad malloc_trim could
		 * give back (keepcost), mmapped blocks, free chunks */
		sb_printf(b, "# MallocFree = %" PRIu64 "\n", m->fordblks);
		sb_printf(b, "# MallocTopPad = %" PRIu64 "\n", m->keepcost);
		sb_printf(b, "# MallocMmapped = %" PRIu64 "\n", m->hblkhd);
		sb_printf(b, "# MallocFreeChunks = %" PRIu64 "\n", m->ordblks);
		unsigned arenas = count_arenas(p->pid);
		if (arenas)
			sb_printf(b, "# MallocArenas = %u\n", arenas);
	} else if ((p->flags & MP_HELLO_MALLOC_STATS) && (p->flags & MP_HELLO_SHARED_RING) &&
		   !p->bye) {
		/* Without a writer thread, only the program's own threads can
		 * read them, and only where no malloc lock can be held: at
		 * a sampled allocation or free. An idle program makes none. */
		sb_printf(b, "# Malloc statistics: none yet (the program reads them at its next "
			     "sampled allocation or free after a page asks, and has made none "
			     "since; reload to see them)\n");
	} else if (p->flags & MP_HELLO_MALLOC_STATS) {
		/* Read only while this page waits for them (a walk of the
		 * whole heap): a process that has ended was not asked. */
		sb_printf(b, "# Malloc statistics: none (the process ended before this page "
			     "asked for them)\n");
	} else {
		sb_printf(b, "# Malloc statistics: none (the program's malloc is not glibc's)\n");
	}
	uint64_t rss, peak;
	if (read_rss(p->pid, &rss, &peak)) {
		sb_printf(b, "# RSS = %" PRIu64 "\n", rss);
		sb_printf(b, "# MaxRSS = %" PRIu64 "\n", peak);
	}
	sb_printf(b, "# Pid = %u\n", p->pid);
	sb_printf(b, "# HeapSamples = %" PRIu64 "\n", p->samples);
	sb_printf(b, "# SampleRate = %" PRIu64 "\n", p->rate);
	sb_printf(b, "# PeakInuse = %" PRIu64 "\n", p->peak_est);
	sb_printf(b, "# DroppedEvents = %" PRIu64 "\n", p->drops);
	sb_printf(b, "# DroppedCPUSamples = %" PRIu64 "\n", p->cpu_drops);
	sb_printf(b, "# OverLimitStacks = %" PRIu64 "\n", p->over_limit_stacks);
	sb_printf(b, "# OverLimitSamples = %" PRIu64 "\n", p->over_limit_samples);
}

/* A path the memory map can carry: absolute, one field. */
static bool is_plain_path(const char *path)
{
	return path && path[0] == '/' && !strpbrk(path, " \t\r\n");
}

/*
 * The mappings, in the brief form google/pprof's legacy parser reads after
 * this sentinel (as in gperftools' heap profiles), so that go tool pprof can
 * symbolize the text profile from the binaries. Go's own text has none
 * (go tool pprof then needs the binary named on its command line); readers
 * of Go's format stop before it.
 *
 * go tool pprof names an address only from the DWARF of the file a mapping
 * names (cmd/pprof's objTool: .gopclntab, then debug/dwarf; no symbol
 * table, no search for separate debug files, whatever PPROF_BINARY_PATH
 * says of file names). So where the DWARF is in a separate file (libc's in
 * libc6-dbg's /usr/lib/debug/.build-id/...), the mapping names that file:
 * it has the same build id and program headers, so addresses land where
 * they do in the library, and pprof names glibc's internal functions as the
 * binary profile does. The cost: what pprof still cannot name shows as
 * [<build id>.debug] rather than [libc.so.6].
 */
static void add_memory_map(struct strbuf *b, const struct proc *p)
{
	sb_adds(b, "\n--- Memory map: ---\n");
	for (size_t i = 0; i < p->nmaps; i++) {
		const struct mapping *m = &p->maps[i];
		if (!is_plain_path(m->path))
			continue;
		const char *debug_file = sym_separate_debug_file(m->file ? m->file : m->path,
								 m->build_id, m->build_id_len);
		const char *file = is_plain_path(debug_file) ? debug_file : m->path;
		sb_printf(b, "0x%" PRIx64 "-0x%" PRIx64 " %s (@%" PRIx64 ")", m->start, m->limit,
			  file, m->offset);
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
		recs[n] = (struct record){ bucket_inuse_bytes(bk), bucket_alloc_bytes(bk), i };
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
	 * record is a bucket, one stack allocating one size, so that mean
	 * size is exact and the reader's figures match the profile.proto
	 * ones (in full trace, one stack's sizes in one class: nothing is
	 * sampled, and the counts are exact). The header carries twice the
	 * rate because the first C++ heap profiler did and pprof halves it
	 * for "heap/".
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
			  "<td>%" PRIu64 " heap, %" PRIu64 " CPU; %" PRIu64 " stacks and %"
			  PRIu64 " samples over the limits</td></tr>\n",
			  p->pid, p->samples, p->drops, p->cpu_drops, p->over_limit_stacks,
			  p->over_limit_samples);
	}
	map_free(&seen);
	sb_adds(&b, "</table>\n");
	/* Once for the page: the files whose names are partial. */
	struct strbuf list = { 0 };
	struct map files = { 0 };
	for (struct conn *k = conns; k; k = k->next)
		if (k->proc)
			debuginfo_missing(k->proc, NULL, NULL, &list, &files);
	if (list.len) {
		sb_adds(&b, "<p>No debug information for ");
		sb_add_html(&b, list.s);
		sb_adds(&b, ": ");
		sb_add_html(&b, debuginfo_advice);
		sb_adds(&b, ".</p>\n");
	}
	sb_free(&list);
	map_free(&files);
	sb_adds(&b, "<br>\n<p>\nProfile Descriptions:\n<ul>\n"
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
