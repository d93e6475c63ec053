/*
 * Leak reports. At exit a leak-checked process sends the blocks nothing
 * reachable points to (MP_REC_LEAKS) and asks for its report
 * (MP_REC_LEAK_END). Here they are grouped by allocation stack, filtered
 * through the suppressions, written up as LeakSanitizer writes its reports
 * (largest first, direct leaks before indirect ones) and queued for the
 * process to read (conn_send: never a wait in the event loop, however
 * slowly it reads); a pprof leak profile goes beside the other profiles.
 * Grouping, suppressing and formatting are separate steps (leak.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "leak.h"
#include "pprof_builder.h"
#include "strbuf.h"
#include "suppress.h"
#include "util.h"

int leak_add(struct proc *p, const void *payload, uint32_t len, const char **why)
{
	struct mp_leaks h;
	if (len < sizeof(h)) {
		*why = "malformed leak list";
		return -1;
	}
	memcpy(&h, payload, sizeof(h));
	if ((uint64_t)h.count * sizeof(struct mp_leak) != len - sizeof(h)) {
		*why = "leak list length does not match its count";
		return -1;
	}
	GROW(p->leaks, p->cap_leaks, p->nleaks + h.count);
	memcpy(p->leaks + p->nleaks, (const unsigned char *)payload + sizeof(h),
	       (size_t)h.count * sizeof(struct mp_leak));
	p->nleaks += h.count;
	return 0;
}

static int by_size(const void *a, const void *b)
{
	const struct leak_group *x = a, *y = b;
	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->bytes != y->bytes)
		return x->bytes > y->bytes ? -1 : 1;
	return x->count > y->count ? -1 : x->count < y->count;
}

static const char *module_of(const struct proc *p, const struct location *loc)
{
	return loc->mapping >= 0 ? p->maps[loc->mapping].path : "";
}

/* Does any frame of the stack match pattern by function, file or module? */
static bool stack_matches(struct proc *p, uint32_t stack, const char *pattern)
{
	const struct stack *s = &p->stacks[stack];
	for (uint32_t i = 0; i < s->depth; i++) {
		struct location *loc = &p->locs[s->locs[i]];
		proc_symbolize(p, loc);
		if (suppress_match(pattern, module_of(p, loc)))
			return true;
		for (uint16_t j = 0; j < loc->nlines; j++)
			if (suppress_match(pattern, loc->lines[j].function) ||
			    suppress_match(pattern, loc->lines[j].file))
				return true;
	}
	return false;
}

static void print_stack(struct strbuf *t, struct proc *p, uint32_t stack)
{
	if (stack == LEAK_UNKNOWN_STACK) {
		sb_printf(t, "    #0 (allocation stack unknown: the event was lost)\n");
		return;
	}
	const struct stack *s = &p->stacks[stack];
	int frame = 0;
	for (uint32_t i = 0; i < s->depth; i++) {
		struct location *loc = &p->locs[s->locs[i]];
		proc_symbolize(p, loc);
		/* Frames hold return addresses minus one; show the return address,
		 * as LeakSanitizer does. */
		uint64_t shown = loc->addr + 1;
		for (uint16_t j = 0; j < loc->nlines; j++) {
			const struct sym_line *l = &loc->lines[j];
			if (l->file[0]) {
				sb_printf(t, "    #%d 0x%" PRIx64 " in %s %s:%" PRId64 "\n", frame++, shown,
				    l->function, l->file, l->line);
			} else if (loc->mapping >= 0) {
				const struct mapping *m = &p->maps[loc->mapping];
				sb_printf(t, "    #%d 0x%" PRIx64 " in %s (%s+0x%" PRIx64 ")\n", frame++, shown,
				    l->function, m->path, loc->addr - m->load_bias);
			} else {
				sb_printf(t, "    #%d 0x%" PRIx64 " in %s\n", frame++, shown, l->function);
			}
		}
	}
}

static unsigned char *leak_profile(struct proc *p, const struct leak_group *g, size_t n, size_t *len)
{
	static const char *const types[] = { "leaked_objects", "count", "leaked_space", "bytes" };
	struct pb b;
	pb_init(&b, p);
	pb_sample_types(&b, types, 2);
	pb_period(&b, "space", "bytes", 1);
	b.default_sample_type = pb_string(&b, "leaked_space");
	b.time_nanos = (int64_t)now_realtime_ns();
	pb_process_comments(&b, "leak");
	for (size_t i = 0; i < n; i++) {
		if (g[i].suppressed || g[i].stack == LEAK_UNKNOWN_STACK)
			continue;
		int64_t v[2] = { (int64_t)g[i].count, (int64_t)g[i].bytes };
		pb_sample(&b, g[i].stack, v);
		pb_label_str(&b, "kind", g[i].kind == MP_LEAK_DIRECT ? "direct" : "indirect");
	}
	unsigned char *out = pb_finish(&b, len);
	pb_free(&b);
	return out;
}

size_t leak_group(const struct proc *p, struct leak_group **out)
{
	struct map index = { 0 };
	struct leak_group *g = NULL;
	size_t ng = 0, cap = 0;
	for (size_t i = 0; i < p->nleaks; i++) {
		const struct mp_leak *l = &p->leaks[i];
		uint64_t b;
		uint32_t stack = live_find(&p->live, l->addr, LIVE_BY_ADDR, &b) && b < p->nbuckets
					 ? p->buckets[b].stack
					 : LEAK_UNKNOWN_STACK;
		uint64_t *gi = map_find(&index, (uint64_t)stack + 1, l->kind);
		if (!gi) {
			GROW(g, cap, ng + 1);
			g[ng] = (struct leak_group){ stack, l->kind, 0, 0, false };
			map_put(&index, (uint64_t)stack + 1, l->kind, ng);
			gi = map_find(&index, (uint64_t)stack + 1, l->kind);
			ng++;
		}
		g[*gi].bytes += l->size;
		g[*gi].count++;
	}
	map_free(&index);
	*out = g;
	return ng;
}

void leak_suppress(struct proc *p, struct leak_group *g, size_t ng, struct suppressions *sup,
		   struct mp_leak_report *r)
{
	for (size_t i = 0; i < ng; i++) {
		for (size_t k = 0; k < sup->n && g[i].stack != LEAK_UNKNOWN_STACK; k++) {
			if (stack_matches(p, g[i].stack, sup->items[k].pattern)) {
				g[i].suppressed = true;
				sup->items[k].hits += g[i].count;
				sup->items[k].bytes += g[i].bytes;
				break;
			}
		}
		if (g[i].suppressed) {
			r->suppressed_bytes += g[i].bytes;
			r->suppressed_count += g[i].count;
		} else {
			r->leaked_bytes += g[i].bytes;
			r->leaked_count += g[i].count;
		}
	}
	if (ng) /* g is NULL when nothing leaked, and qsort's may not be */
		qsort(g, ng, sizeof(*g), by_size);
}

void leak_format(struct strbuf *t, struct proc *p, const struct leak_group *g, size_t ng,
		 const struct suppressions *sup, const struct mp_leak_report *r,
		 const char *notes)
{
	if (r->leaked_count) {
		sb_adds(t, "\n=================================================================\n");
		sb_printf(t, "==%u==ERROR: memprof: detected memory leaks in %s (pid %u)\n", p->pid,
			  p->name, p->pid);
		for (size_t i = 0; i < ng; i++) {
			if (g[i].suppressed)
				continue;
			sb_printf(t, "\n%s leak of %" PRIu64 " byte(s) in %" PRIu64
				  " object(s) allocated from:\n",
				  g[i].kind == MP_LEAK_DIRECT ? "Direct" : "Indirect", g[i].bytes,
				  g[i].count);
			print_stack(t, p, g[i].stack);
		}
		sb_adds(t, "\n");
	}
	if (r->suppressed_count) {
		sb_adds(t, "-----------------------------------------------------\n");
		sb_adds(t, "Suppressions used:\n  count      bytes template\n");
		for (size_t k = 0; k < sup->n; k++)
			if (sup->items[k].hits)
				sb_printf(t, "%7" PRIu64 " %10" PRIu64 " %s\n", sup->items[k].hits,
					  sup->items[k].bytes, sup->items[k].pattern);
		sb_adds(t, "-----------------------------------------------------\n");
		sb_printf(t, "Suppressed: %" PRIu64 " byte(s) in %" PRIu64 " allocation(s).\n",
			  r->suppressed_bytes, r->suppressed_count);
	}
	if (notes)
		sb_adds(t, notes);
	if (r->leaked_count)
		sb_printf(t, "SUMMARY: memprof: %" PRIu64 " byte(s) leaked in %" PRIu64
			  " allocation(s).\n", r->leaked_bytes, r->leaked_count);
}

/* The end record: the exit status, threads not scanned and the
 * suppressions path (into path, NUL-terminated). 0 or -1. */
static int decode_end(const void *payload, uint32_t len, struct mp_leak_end *end,
		      char path[LEAK_PATH_MAX])
{
	if (len < sizeof(*end))
		return -1;
	memcpy(end, payload, sizeof(*end));
	if (end->path_len != len - sizeof(*end) || end->path_len >= LEAK_PATH_MAX)
		return -1;
	memcpy(path, (const char *)payload + sizeof(*end), end->path_len);
	path[end->path_len] = '\0';
	return 0;
}

/* The suppressions a check uses: the file's, if it names one and it can be
 * read (else *error says why), and LeakSanitizer's own standing one for
 * glibc bug 12650. */
static void load_suppressions(struct suppressions *sup, const char *path, const char **error)
{
	*error = NULL;
	if (path[0] && suppress_load(sup, path, error) != 0)
		suppress_free(sup);
	GROW(sup->items, sup->cap, sup->n + 1);
	sup->items[sup->n++] = (struct suppression){ xstrndup("*tls_get_addr*", 14), 0, 0 };
}

int leak_finish(struct conn *c, const void *payload, uint32_t len, struct strbuf *reply,
		const char **why)
{
	struct proc *p = c->proc;
	struct mp_leak_end end;
	char path[LEAK_PATH_MAX];
	if (decode_end(payload, len, &end, path) != 0) {
		*why = "malformed leak check end";
		return -1;
	}
	struct leak_group *g;
	size_t ng = leak_group(p, &g);
	struct suppressions sup = { 0 };
	const char *sup_error;
	load_suppressions(&sup, path, &sup_error);
	if (sup_error)
		log_msg("pid %u (%s): suppressions %s not used: %s", p->pid, p->name, path,
			sup_error);
	struct mp_leak_report r = { 0 };
	leak_suppress(p, g, ng, &sup, &r);

	/* Said in the report too: whoever reads the program's stderr may not
	 * see the collector's. */
	struct strbuf notes = { 0 };
	if (sup_error)
		sb_printf(&notes, "memprof: suppressions %s not used: %s\n", path, sup_error);
	if (end.unscanned)
		sb_printf(&notes, "memprof: %u thread(s) could not be stopped and their stacks "
			  "were not scanned: what only they hold may be reported as leaked.\n",
			  end.unscanned);
	/* The record's header and fixed part first, the text after them;
	 * both are filled in once the text's length is known. */
	struct mp_rec_hdr h = { MP_REC_LEAK_REPORT, 0 };
	size_t start = reply->len;
	sb_add(reply, &h, sizeof(h));
	sb_add(reply, &r, sizeof(r));
	size_t text_at = reply->len;
	leak_format(reply, p, g, ng, &sup, &r, notes.s);
	sb_free(&notes);
	r.text_len = (uint32_t)(reply->len - text_at);
	h.len = (uint32_t)(sizeof(r) + r.text_len);
	memcpy(reply->s + start, &h, sizeof(h));
	memcpy(reply->s + start + sizeof(h), &r, sizeof(r));
	report_line("leaks %u %s %" PRIu64 " %" PRIu64, p->pid, p->name, r.leaked_bytes,
		    r.leaked_count);

	free(p->leak_profile);
	p->leak_profile = leak_profile(p, g, ng, &p->leak_profile_len);
	dump_proc(c, false);
	p->checked = true;

	free(g);
	suppress_free(&sup);
	free(p->leaks);
	p->leaks = NULL;
	p->nleaks = p->cap_leaks = 0;
	return 0;
}
