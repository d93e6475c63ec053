/*
 * Go's /debug/pprof/ endpoints over the collector's processes: choosing the
 * process a request is for (?pid=), heap and allocs (profile.proto, or the
 * legacy text with ?debug=1), cmdline, the index, and CPU profiles of the
 * next N seconds (profile?seconds=N), which are counted apart from the dump
 * windows (each diffs the process's cumulative counts against a snapshot
 * of its own) so that USR2 and interval dumps do not cut them short. The HTTP
 * side is http.c's; the text pages are pprof_text.c's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "http.h"
#include "http_server.h"
#include "map.h"
#include "pprof.h"
#include "pprof_text.h"
#include "strbuf.h"
#include "ui.h"
#include "util.h"

#define PROFILE_DEFAULT_SECONDS 30 /* Go's */
#define PROFILE_MAX_SECONDS 3600
/*
 * A CPU profile holds its connection for its seconds. Without a limit, 64
 * requests for an hour's profile took every connection the server has
 * (HTTP_MAX_CONNS) and every other request, the index included, was told
 * 503 (issue 12). At most this many at once from one address, and in all,
 * which leaves most connections to everything else.
 */
#define PROFILE_MAX_PER_CLIENT 4
#define PROFILE_MAX_TOTAL 16

/* A CPU profile being taken for a client. */
struct window {
	struct http_conn *c;
	struct proc *p;         /* valid until http_proc_gone(p) */
	uint64_t since_ns;      /* CLOCK_REALTIME at the start */
	uint64_t start_ns, end_ns; /* CLOCK_MONOTONIC */
	struct map base;        /* p->cpu when the window began */
	char peer[48];          /* the client's address (PROFILE_MAX_PER_CLIENT) */
	struct window *next;
};

static struct window *windows;

/* A ?debug=1 page waiting for the process's malloc statistics: read only
 * when asked for, since reading them costs the process in proportion to
 * its heap. */
struct stats_wait {
	struct http_conn *c;
	struct proc *p;
	uint32_t seq;     /* p->malloc_stats_seq when asked */
	uint64_t end_ns;  /* CLOCK_MONOTONIC: answer with what there is then */
	struct stats_wait *next;
};

static struct stats_wait *stats_waits;
/* The writer thread looks for requests every 20 ms while the program
 * allocates, every 200 ms when it is idle. */
#define STATS_WAIT_NS (300ULL * 1000000ULL)
#define STATS_POLL_NS (5ULL * 1000000ULL)

/* ---- the query ---------------------------------------------------------------- */

#define PARAM_MAX 24

struct param {
	bool present;
	char value[PARAM_MAX]; /* decoded; "(too long)" if it did not fit */
};

struct params {
	struct param pid, seconds, debug, peak;
};

/* Splits the query into the parameters we know; the first of each counts,
 * as with Go's FormValue, and unknown ones are ignored (Go's gc=1, say). */
static int parse_query(const char *query, struct params *out)
{
	memset(out, 0, sizeof(*out));
	for (const char *s = query; *s;) {
		size_t n = strcspn(s, "&");
		const char *eq = memchr(s, '=', n);
		size_t klen = eq ? (size_t)(eq - s) : n;
		char key[PARAM_MAX], value[PARAM_MAX];
		int kr = http_query_decode(s, klen, key, sizeof(key));
		int vr = eq ? http_query_decode(eq + 1, n - klen - 1, value, sizeof(value)) : 0;
		if (!eq)
			value[0] = '\0';
		if (kr < 0 || vr < 0 || memchr(s, ';', n))
			return -1;
		struct param *p = NULL;
		if (kr == 0 && strcmp(key, "pid") == 0)
			p = &out->pid;
		else if (kr == 0 && strcmp(key, "seconds") == 0)
			p = &out->seconds;
		else if (kr == 0 && strcmp(key, "debug") == 0)
			p = &out->debug;
		else if (kr == 0 && strcmp(key, "peak") == 0)
			p = &out->peak;
		if (p && !p->present) {
			p->present = true;
			strcpy(p->value, vr ? "(too long)" : value);
		}
		s += n;
		if (*s == '&')
			s++;
	}
	return 0;
}

/* ---- which process -------------------------------------------------------------- */

static struct proc *proc_by_pid(uint32_t pid)
{
	/* Newest first: after an exec, the old image's connection may linger
	 * for a moment beside the new one's. */
	for (struct conn *k = conns; k; k = k->next)
		if (k->proc && k->proc->pid == pid)
			return k->proc;
	return NULL;
}

/* The process the request names, or the only one; NULL after answering
 * the error. */
static struct proc *pick_proc(struct http_conn *c, const struct params *q)
{
	if (q->pid.present) {
		uint64_t pid;
		if (parse_u64(q->pid.value, 1, UINT32_MAX, &pid) != 0) {
			http_error(c, 400, "pid wants a process id, not '%s'", q->pid.value);
			return NULL;
		}
		struct proc *p = proc_by_pid((uint32_t)pid);
		if (!p)
			http_error(c, 404, "no process with pid %llu; see /debug/pprof/ for the list",
				   (unsigned long long)pid);
		return p;
	}
	struct map seen = { 0 };
	struct strbuf list = { 0 };
	struct proc *only = NULL;
	unsigned n = 0;
	for (struct conn *k = conns; k; k = k->next) {
		if (!k->proc || map_find(&seen, (uint64_t)k->proc->pid + 1, 0))
			continue;
		map_put(&seen, (uint64_t)k->proc->pid + 1, 0, 1);
		if (n < 20)
			sb_printf(&list, "%s%u", n ? ", " : "", k->proc->pid);
		else if (n == 20)
			sb_adds(&list, ", ...");
		only = k->proc;
		n++;
	}
	map_free(&seen);
	if (n != 1) {
		if (n == 0)
			http_error(c, 404, "no process is being profiled; see /debug/pprof/");
		else
			http_error(c, 400,
				   "pid is required: %u processes are profiled (pids %s); "
				   "add ?pid=PID, see /debug/pprof/",
				   n, list.s);
		only = NULL;
	}
	sb_free(&list);
	return only;
}

/* ---- endpoints ------------------------------------------------------------------- */

static void respond_profile(struct http_conn *c, const char *name, unsigned char *data,
			    size_t len)
{
	if (!data) {
		http_error(c, 500, "could not encode the %s profile", name);
		return;
	}
	char disp[128];
	snprintf(disp, sizeof(disp), "Content-Disposition: attachment; filename=\"%s\"\r\n", name);
	http_respond(c, 200, "application/octet-stream", disp, (char *)data, len);
}

static void serve_heap(struct http_conn *c, const struct params *q, const char *name,
		       const char *default_type)
{
	uint64_t debug = 0;
	if (q->debug.present && parse_u64(q->debug.value, 0, 2, &debug) != 0) {
		http_error(c, 400, "debug wants 0 (profile.proto) or 1 (text), not '%s'",
			   q->debug.value);
		return;
	}
	if (q->seconds.present) {
		http_error(c, 400,
			   "seconds is for /debug/pprof/profile: a %s profile is taken at once "
			   "(compare two with go tool pprof -diff_base)", name);
		return;
	}
	uint64_t peak = 0;
	if (q->peak.present && parse_u64(q->peak.value, 0, 1, &peak) != 0) {
		http_error(c, 400, "peak wants 0 (now) or 1 (the in-use heap at its highest), not '%s'",
			   q->peak.value);
		return;
	}
	if (peak && debug) {
		http_error(c, 400, "peak=1 is served as profile.proto only (leave out debug)");
		return;
	}
	struct proc *p = pick_proc(c, q);
	if (!p)
		return;
	size_t len;
	if (peak) {
		unsigned char *data = pprof_heap_peak(p, default_type, &len);
		respond_profile(c, name, data, len);
		return;
	}
	if (debug) {
		if (conn_ask_stats(p) == 0) {
			struct stats_wait *w = xcalloc(1, sizeof(*w));
			*w = (struct stats_wait){ c, p, p->malloc_stats_seq,
						  now_monotonic_ns() + STATS_WAIT_NS, stats_waits };
			stats_waits = w;
			http_rearm();
			return;
		}
		char *text = pprof_text_heap(p, &len);
		http_respond(c, 200, "text/plain; charset=utf-8", NULL, text, len);
		return;
	}
	unsigned char *data = pprof_heap(p, default_type, &len);
	respond_profile(c, name, data, len);
}

static void serve_cmdline(struct http_conn *c, const struct params *q)
{
	struct proc *p = pick_proc(c, q);
	if (!p)
		return;
	/* Go writes os.Args joined with NULs; the collector keeps argv as one
	 * line with spaces (proc.cmdline), which reads better anyway. */
	size_t len = strlen(p->cmdline);
	http_respond(c, 200, "text/plain; charset=utf-8", NULL, xstrndup(p->cmdline, len), len);
}

/* Whether another CPU profile may start for peer; if not, answers 503
 * saying which limit it reached. */
static bool profile_allowed(struct http_conn *c, const char *peer)
{
	unsigned all = 0, theirs = 0;
	for (struct window *w = windows; w; w = w->next) {
		all++;
		theirs += strcmp(w->peer, peer) == 0;
	}
	if (theirs >= PROFILE_MAX_PER_CLIENT) {
		http_error(c, 503,
			   "%u CPU profiles are being taken for %s already (at most %d per "
			   "client); try again when one has ended", theirs, peer,
			   PROFILE_MAX_PER_CLIENT);
		return false;
	}
	if (all >= PROFILE_MAX_TOTAL) {
		http_error(c, 503,
			   "%u CPU profiles are being taken already (at most %d in all); try "
			   "again when one has ended", all, PROFILE_MAX_TOTAL);
		return false;
	}
	return true;
}

static void serve_profile(struct http_conn *c, const struct params *q, const char *peer)
{
	uint64_t seconds = PROFILE_DEFAULT_SECONDS;
	if (q->seconds.present &&
	    parse_u64(q->seconds.value, 1, PROFILE_MAX_SECONDS, &seconds) != 0) {
		http_error(c, 400, "seconds wants a number from 1 to %d, not '%s'",
			   PROFILE_MAX_SECONDS, q->seconds.value);
		return;
	}
	struct proc *p = pick_proc(c, q);
	if (!p)
		return;
	if (!p->cpu_hz) {
		http_error(c, 400,
			   "pid %u is not CPU-profiled (MEMPROF_CPU_HZ=0, or memprof run --cpu-hz 0)",
			   p->pid);
		return;
	}
	if (!profile_allowed(c, peer))
		return;
	struct window *w = xcalloc(1, sizeof(*w));
	snprintf(w->peer, sizeof(w->peer), "%s", peer);
	w->c = c;
	w->p = p;
	w->since_ns = now_realtime_ns();
	w->start_ns = now_monotonic_ns();
	w->end_ns = w->start_ns + seconds * 1000000000ULL;
	map_copy(&w->base, &p->cpu);
	w->next = windows;
	windows = w;
	log_debug("http: CPU profile of pid %u for %llu s", p->pid, (unsigned long long)seconds);
}

/* ---- /debug/pprof/symbol ------------------------------------------------------- */

/* The name of the function at addr in p, or NULL. As Go's FuncForPC, the
 * innermost function where inlining put several at one address. */
static const char *symbol_of(struct proc *p, uint64_t addr)
{
	for (size_t i = p->nmaps; i-- > 0;) {
		const struct mapping *m = &p->maps[i];
		if (addr < m->start || addr >= m->limit)
			continue;
		struct sym_line lines[16];
		int n = sym_lookup(m->file ? m->file : m->path, m->build_id, m->build_id_len,
				   addr - m->load_bias, lines, 16);
		/* Without even a symbol, the name is the module's fallback,
		 * "file+0xoff": Go has no name then, and says nothing. */
		if (n < 1 || !lines[0].entry)
			return NULL;
		return lines[0].function;
	}
	return NULL;
}

/*
 * Go's protocol (net/http/pprof Symbol): "num_symbols: 1" (pprof only asks
 * whether it is 0), then for each address of the POST body or, for a GET,
 * the query, separated by '+', one "0xADDR name" line for those that have
 * a name. With ?pid= (or one process) the addresses are that process's;
 * otherwise each is looked up in the processes in turn.
 */
static void serve_symbol(struct http_conn *c, const struct http_request *rq,
			 const struct params *q)
{
	struct proc *only = NULL;
	if (q->pid.present && !(only = pick_proc(c, q)))
		return;
	struct strbuf b = { 0 };
	bool any = only != NULL;
	for (struct conn *k = conns; k && !any; k = k->next)
		any = k->proc != NULL;
	sb_printf(&b, "num_symbols: %d\n", any ? 1 : 0);
	const char *in = rq->post ? rq->body : rq->query;
	for (const char *w = in; *w;) {
		size_t n = strcspn(w, "+");
		char word[32];
		if (n < sizeof(word)) {
			memcpy(word, w, n);
			word[n] = '\0';
			char *end;
			uint64_t pc = strtoull(word, &end, 0);
			const char *name = NULL;
			if (pc && end != word && (*end == '\0' || *end == '\n' || *end == '\r')) {
				if (only) {
					name = symbol_of(only, pc);
				} else {
					for (struct conn *k = conns; k && !name; k = k->next)
						if (k->proc)
							name = symbol_of(k->proc, pc);
				}
			}
			if (name)
				sb_printf(&b, "%#" PRIx64 " %s\n", pc, name);
		}
		w += n;
		if (*w == '+')
			w++;
	}
	size_t len;
	char *text = sb_take(&b, &len);
	http_respond(c, 200, "text/plain; charset=utf-8", "X-Content-Type-Options: nosniff\r\n",
		     text, len);
}

static void pprof_http_serve(struct http_conn *c, const struct http_request *rq)
{
	static const char prefix[] = "/debug/pprof/";
	const char *path = rq->path;
	/* Programs without a writer thread's socket: what their rings hold
	 * is part of the answer. */
	conn_drain_rings();
	if (strcmp(path, "/debug/pprof") == 0) {
		static const char body[] = "<a href=\"/debug/pprof/\">Moved Permanently</a>.\n\n";
		http_respond(c, 301, "text/html; charset=utf-8", "Location: /debug/pprof/\r\n",
			     xstrndup(body, sizeof(body) - 1), sizeof(body) - 1);
		return;
	}
	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0) {
		http_error(c, 404, "404 page not found (memprof serves /debug/pprof/)");
		return;
	}
	if (ui_owns_path(path)) {
		ui_serve(c, rq);
		return;
	}
	const char *name = path + sizeof(prefix) - 1;
	struct params q;
	if (parse_query(rq->query, &q) != 0) {
		http_error(c, 400, "malformed query string");
		return;
	}
	if (rq->post && strcmp(name, "symbol") != 0) {
		http_error(c, 405, "method POST not allowed: only GET and HEAD (POST is for "
			   "/debug/pprof/symbol)");
		return;
	}
	size_t len;
	if (!*name) {
		char *page = pprof_text_index(&len);
		http_respond(c, 200, "text/html; charset=utf-8", NULL, page, len);
	} else if (strcmp(name, "heap") == 0) {
		serve_heap(c, &q, "heap", "inuse_space");
	} else if (strcmp(name, "allocs") == 0) {
		serve_heap(c, &q, "allocs", "alloc_space");
	} else if (strcmp(name, "profile") == 0) {
		serve_profile(c, &q, rq->peer);
	} else if (strcmp(name, "cmdline") == 0) {
		serve_cmdline(c, &q);
	} else if (strcmp(name, "symbol") == 0) {
		serve_symbol(c, rq, &q);
	} else {
		http_error(c, 404, "Unknown profile (memprof serves heap, allocs, profile, cmdline and symbol)");
	}
}

/* ---- CPU windows ------------------------------------------------------------------ */

static void unlink_window(struct window *w)
{
	for (struct window **pp = &windows; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	map_free(&w->base);
	free(w);
}

/* Answers w with what it has (its process may be ending early) and drops it. */
static void finish(struct window *w, uint64_t now_ns)
{
	uint64_t until = now_ns < w->end_ns ? now_ns : w->end_ns;
	size_t len;
	unsigned char *data =
		pprof_cpu_since(w->p, &w->base, w->since_ns, until - w->start_ns, &len);
	respond_profile(w->c, "profile", data, len);
	unlink_window(w);
}

/* Answers the statistics waits that are done (stats came, time is up, or
 * all of them when p is ending; p NULL: any process). */
static void answer_stats(uint64_t now_ns, const struct proc *gone)
{
	for (struct stats_wait **pp = &stats_waits, *w; (w = *pp);) {
		if (w->p != gone && w->p->malloc_stats_seq == w->seq && now_ns < w->end_ns) {
			pp = &w->next;
			continue;
		}
		size_t len;
		char *text = pprof_text_heap(w->p, &len);
		http_respond(w->c, 200, "text/plain; charset=utf-8", NULL, text, len);
		*pp = w->next;
		free(w);
	}
}

static void pprof_http_cancel(struct http_conn *c)
{
	for (struct stats_wait **pp = &stats_waits, *w; (w = *pp);) {
		if (w->c == c) {
			*pp = w->next;
			free(w);
		} else {
			pp = &w->next;
		}
	}
	for (struct window *w = windows; w; w = w->next) {
		if (w->c == c) {
			unlink_window(w);
			return;
		}
	}
}

static uint64_t pprof_http_next_deadline(void)
{
	uint64_t next = stats_waits ? now_monotonic_ns() + STATS_POLL_NS : 0;
	uint64_t ui = ui_next_snapshot();
	if (ui && (!next || ui < next))
		next = ui;
	for (struct window *w = windows; w; w = w->next)
		if (!next || w->end_ns < next)
			next = w->end_ns;
	return next;
}

static void pprof_http_tick(uint64_t now_ns)
{
	conn_drain_rings();
	answer_stats(now_ns, NULL);
	ui_snapshot(now_ns);
	for (struct window *w = windows, *next; w; w = next) {
		next = w->next;
		if (w->end_ns <= now_ns)
			finish(w, now_ns);
	}
}

const struct http_handler pprof_http_handler = {
	.serve = pprof_http_serve,
	.cancel = pprof_http_cancel,
	.next_deadline = pprof_http_next_deadline,
	.tick = pprof_http_tick,
};

void http_proc_gone(struct proc *p)
{
	bool any = stats_waits != NULL;
	uint64_t now = now_monotonic_ns();
	ui_proc_gone(p);
	answer_stats(now, p);
	for (struct window *w = windows, *next; w; w = next) {
		next = w->next;
		if (w->p == p) {
			log_debug("http: pid %u ended during its CPU profile; answering with %.1f s",
				  p->pid, (double)(now - w->start_ns) / 1e9);
			finish(w, now);
			any = true;
		}
	}
	if (any)
		http_rearm();
}
