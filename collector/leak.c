/*
 * Leak reports. At exit a leak-checked process sends the blocks nothing
 * reachable points to (MP_REC_LEAKS) and asks for its report
 * (MP_REC_LEAK_END). Here they are grouped by allocation stack, filtered
 * through the suppressions, written up as LeakSanitizer writes its reports
 * (largest first, direct leaks before indirect ones) and sent back for the
 * process to print; a pprof leak profile goes beside the other profiles.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "leak.h"
#include "pprof_builder.h"
#include "suppress.h"
#include "util.h"

#define UNKNOWN_STACK UINT32_MAX

struct group {
	uint32_t stack; /* index into proc.stacks, or UNKNOWN_STACK */
	uint32_t kind;  /* MP_LEAK_* */
	uint64_t bytes, count;
	bool suppressed;
};

struct text {
	char *s;
	size_t len, cap;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (t->s && t->len + (size_t)n < t->cap) {
			t->len += (size_t)n;
			return;
		}
		t->cap = (t->cap + (size_t)n + 1) * 2;
		t->s = xrealloc(t->s, t->cap);
	}
}

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
	const struct group *x = a, *y = b;
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

static void print_stack(struct text *t, struct proc *p, uint32_t stack)
{
	if (stack == UNKNOWN_STACK) {
		add(t, "    #0 (allocation stack unknown: the event was lost)\n");
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
				add(t, "    #%d 0x%" PRIx64 " in %s %s:%" PRId64 "\n", frame++, shown,
				    l->function, l->file, l->line);
			} else if (loc->mapping >= 0) {
				const struct mapping *m = &p->maps[loc->mapping];
				add(t, "    #%d 0x%" PRIx64 " in %s (%s+0x%" PRIx64 ")\n", frame++, shown,
				    l->function, m->path, loc->addr - m->load_bias);
			} else {
				add(t, "    #%d 0x%" PRIx64 " in %s\n", frame++, shown, l->function);
			}
		}
	}
}

static unsigned char *leak_profile(struct proc *p, const struct group *g, size_t n, size_t *len)
{
	static const char *const types[] = { "leaked_objects", "count", "leaked_space", "bytes" };
	struct pb b;
	pb_init(&b, p);
	pb_sample_types(&b, types, 2);
	pb_period(&b, "space", "bytes", 1);
	b.prof.default_sample_type = pb_string(&b, "leaked_space");
	b.prof.time_nanos = (int64_t)now_realtime_ns();
	pb_process_comments(&b, "leak");
	for (size_t i = 0; i < n; i++) {
		if (g[i].suppressed || g[i].stack == UNKNOWN_STACK)
			continue;
		int64_t v[2] = { (int64_t)g[i].count, (int64_t)g[i].bytes };
		Perftools__Profiles__Sample *sm = pb_sample(&b, g[i].stack, v);
		pb_label_str(&b, sm, "kind", g[i].kind == MP_LEAK_DIRECT ? "direct" : "indirect");
	}
	unsigned char *out = pb_finish(&b, len);
	pb_free(&b);
	return out;
}

/* Writes the reply on the client's (non-blocking) socket, waiting for room
 * at most a few seconds: the process is waiting to read it. */
static int send_reply(int fd, const struct mp_leak_report *r, const char *text)
{
	struct mp_rec_hdr h = { MP_REC_LEAK_REPORT, (uint32_t)(sizeof(*r) + r->text_len) };
	const void *parts[] = { &h, r, text };
	size_t sizes[] = { sizeof(h), sizeof(*r), r->text_len };
	uint64_t deadline = now_monotonic_ns() + 10ULL * 1000000000ULL;
	for (int i = 0; i < 3; i++) {
		const unsigned char *q = parts[i];
		size_t left = sizes[i];
		while (left) {
			ssize_t n = write(fd, q, left);
			if (n > 0) {
				q += n;
				left -= (size_t)n;
				continue;
			}
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -1;
			struct pollfd pfd = { fd, POLLOUT, 0 };
			if (now_monotonic_ns() > deadline || poll(&pfd, 1, 100) < 0)
				return -1;
		}
	}
	return 0;
}

int leak_finish(struct conn *c, const void *payload, uint32_t len, const char **why)
{
	struct proc *p = c->proc;
	struct mp_leak_end end;
	if (len < sizeof(end)) {
		*why = "malformed leak check end";
		return -1;
	}
	memcpy(&end, payload, sizeof(end));
	if (end.path_len != len - sizeof(end) || end.path_len >= 4096) {
		*why = "malformed leak check end";
		return -1;
	}
	char path[4096];
	memcpy(path, (const char *)payload + sizeof(end), end.path_len);
	path[end.path_len] = '\0';

	/* Group by (stack, kind). */
	struct map index = { 0 };
	struct group *g = NULL;
	size_t ng = 0, cap = 0;
	for (size_t i = 0; i < p->nleaks; i++) {
		const struct mp_leak *l = &p->leaks[i];
		uint64_t *b = map_find(&p->live, l->addr, 0);
		uint32_t stack = b ? p->buckets[*b].stack : UNKNOWN_STACK;
		uint64_t *gi = map_find(&index, (uint64_t)stack + 1, l->kind);
		if (!gi) {
			GROW(g, cap, ng + 1);
			g[ng] = (struct group){ stack, l->kind, 0, 0, false };
			map_put(&index, (uint64_t)stack + 1, l->kind, ng);
			gi = map_find(&index, (uint64_t)stack + 1, l->kind);
			ng++;
		}
		g[*gi].bytes += l->size;
		g[*gi].count++;
	}
	map_free(&index);

	struct suppressions sup = { 0 };
	if (path[0])
		suppress_load(&sup, path);
	/* LeakSanitizer's own standing suppression (glibc bug 12650). */
	GROW(sup.items, sup.cap, sup.n + 1);
	sup.items[sup.n++] = (struct suppression){ xstrndup("*tls_get_addr*", 14), 0, 0 };

	struct mp_leak_report r = { 0 };
	for (size_t i = 0; i < ng; i++) {
		for (size_t k = 0; k < sup.n && g[i].stack != UNKNOWN_STACK; k++) {
			if (stack_matches(p, g[i].stack, sup.items[k].pattern)) {
				g[i].suppressed = true;
				sup.items[k].hits += g[i].count;
				sup.items[k].bytes += g[i].bytes;
				break;
			}
		}
		if (g[i].suppressed) {
			r.suppressed_bytes += g[i].bytes;
			r.suppressed_count += g[i].count;
		} else {
			r.leaked_bytes += g[i].bytes;
			r.leaked_count += g[i].count;
		}
	}
	if (ng) /* g is NULL when nothing leaked, and qsort's may not be */
		qsort(g, ng, sizeof(*g), by_size);

	struct text t = { 0 };
	if (r.leaked_count) {
		add(&t, "\n=================================================================\n");
		add(&t, "==%u==ERROR: memprof: detected memory leaks in %s (pid %u)\n", p->pid,
		    p->name, p->pid);
		for (size_t i = 0; i < ng; i++) {
			if (g[i].suppressed)
				continue;
			add(&t, "\n%s leak of %" PRIu64 " byte(s) in %" PRIu64 " object(s) allocated from:\n",
			    g[i].kind == MP_LEAK_DIRECT ? "Direct" : "Indirect", g[i].bytes, g[i].count);
			print_stack(&t, p, g[i].stack);
		}
		add(&t, "\n");
	}
	if (r.suppressed_count) {
		add(&t, "-----------------------------------------------------\n");
		add(&t, "Suppressions used:\n  count      bytes template\n");
		for (size_t k = 0; k < sup.n; k++)
			if (sup.items[k].hits)
				add(&t, "%7" PRIu64 " %10" PRIu64 " %s\n", sup.items[k].hits,
				    sup.items[k].bytes, sup.items[k].pattern);
		add(&t, "-----------------------------------------------------\n");
		add(&t, "Suppressed: %" PRIu64 " byte(s) in %" PRIu64 " allocation(s).\n",
		    r.suppressed_bytes, r.suppressed_count);
	}
	if (end.unscanned)
		add(&t, "memprof: %u thread(s) could not be stopped and their stacks were not "
			"scanned: what only they hold may be reported as leaked.\n",
		    end.unscanned);
	if (r.leaked_count)
		add(&t, "SUMMARY: memprof: %" PRIu64 " byte(s) leaked in %" PRIu64 " allocation(s).\n",
		    r.leaked_bytes, r.leaked_count);
	r.text_len = (uint32_t)t.len;

	int rc = send_reply(c->fd, &r, t.s);
	if (rc != 0)
		log_msg("pid %u (%s): could not send the leak report: %s", p->pid, p->name,
			strerror(errno));
	report_line("leaks %u %s %" PRIu64 " %" PRIu64, p->pid, p->name, r.leaked_bytes,
		    r.leaked_count);

	free(p->leak_profile);
	p->leak_profile = leak_profile(p, g, ng, &p->leak_profile_len);
	dump_proc(c, false);
	p->checked = true;

	free(t.s);
	free(g);
	suppress_free(&sup);
	free(p->leaks);
	p->leaks = NULL;
	p->nleaks = p->cap_leaks = 0;
	return 0;
}
