/*
 * /debug/pprof/ui/: the page's assets and its JSON (see ui.h). Live, the
 * data of a process is the profile pprof.c encodes for the files and for
 * /debug/pprof/heap, read back by ui_prof.c; CPU is taken from samples
 * kept per second once the page has listed the process; a growth baseline
 * is a heap profile kept in memory ("now") or a dump in the profile
 * directory. In view mode (ui_set_view) the data are files on disk.
 * The HTTP server is http.c's; the route to here is in pprof_http.c.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "collector.h"
#include "map.h"
#include "pprof.h"
#include "strbuf.h"
#include "ui.h"
#include "ui_prof.h"
#include "util.h"


#define UI_PREFIX "/debug/pprof/ui"
#define UI_CPU_SLOTS 61          /* one per second: "the last N s", N <= 60 */
#define UI_CPU_DEFAULT_SECONDS 10
#define UI_MAX_BASELINES 8       /* "now" baselines kept per process */

/* ---- assets (ui_assets.S) ------------------------------------------------------- */

#define ASSET(sym)                                               \
	extern const unsigned char ui_asset_##sym[];             \
	extern const unsigned char ui_asset_##sym##_end[];
ASSET(index_html)
ASSET(app_js)
ASSET(app_css)
ASSET(d3_js)
ASSET(flamegraph_js)
ASSET(flamegraph_css)
ASSET(license_d3)
ASSET(license_flamegraph)
ASSET(versions)

static const struct asset {
	const char *path; /* after UI_PREFIX "/" */
	const char *type;
	const unsigned char *start, *end;
} assets[] = {
	{ "", "text/html; charset=utf-8", ui_asset_index_html, ui_asset_index_html_end },
	{ "index.html", "text/html; charset=utf-8", ui_asset_index_html, ui_asset_index_html_end },
	{ "app.js", "text/javascript; charset=utf-8", ui_asset_app_js, ui_asset_app_js_end },
	{ "app.css", "text/css; charset=utf-8", ui_asset_app_css, ui_asset_app_css_end },
	{ "vendor/d3.min.js", "text/javascript; charset=utf-8", ui_asset_d3_js, ui_asset_d3_js_end },
	{ "vendor/d3-flamegraph.min.js", "text/javascript; charset=utf-8", ui_asset_flamegraph_js,
	  ui_asset_flamegraph_js_end },
	{ "vendor/d3-flamegraph.css", "text/css; charset=utf-8", ui_asset_flamegraph_css,
	  ui_asset_flamegraph_css_end },
	{ "vendor/LICENSE.d3", "text/plain; charset=utf-8", ui_asset_license_d3,
	  ui_asset_license_d3_end },
	{ "vendor/LICENSE.d3-flame-graph", "text/plain; charset=utf-8", ui_asset_license_flamegraph,
	  ui_asset_license_flamegraph_end },
	{ "vendor/VERSIONS", "text/plain; charset=utf-8", ui_asset_versions, ui_asset_versions_end },
};

/* ---- per-process state ------------------------------------------------------------ */

struct baseline {
	unsigned id;
	uint64_t time_ns; /* CLOCK_REALTIME */
	unsigned char *data;
	size_t len;
};

/* Kept for a process once the page has listed it; only this module
 * touches it, freed by ui_proc_gone. */
struct ui_state {
	const struct proc *p;
	struct {
		uint64_t sec; /* CLOCK_MONOTONIC second this slot counts */
		struct map counts; /* stack + 1 -> timer periods */
	} cpu[UI_CPU_SLOTS];
	uint64_t since_ns; /* CLOCK_MONOTONIC: recording began */
	struct baseline base[UI_MAX_BASELINES];
	unsigned nbase, next_id;
	struct ui_state *next;
};

static struct ui_state *states;

static struct {
	bool on;
	char **files;
	int nfiles;
	const char *base;
} view;

static struct ui_state *state_of(const struct proc *p, bool create)
{
	for (struct ui_state *s = states; s; s = s->next)
		if (s->p == p)
			return s;
	if (!create)
		return NULL;
	struct ui_state *s = xcalloc(1, sizeof(*s));
	s->p = p;
	s->since_ns = now_monotonic_ns();
	s->next_id = 1;
	s->next = states;
	states = s;
	return s;
}

/* Once a second, for each process the page has listed: a copy of its
 * cumulative CPU counts (proc.h's cpu), so that "the last N seconds" is the
 * difference from the copy taken N seconds ago. Driven by the HTTP
 * server's timer (ui_next_snapshot): nothing on the sample path. */
static void snapshot_one(struct ui_state *s, uint64_t sec)
{
	unsigned slot = (unsigned)(sec % UI_CPU_SLOTS);
	if (s->cpu[slot].sec == sec && s->cpu[slot].counts.cap)
		return;
	map_clear(&s->cpu[slot].counts);
	map_copy(&s->cpu[slot].counts, &s->p->cpu);
	s->cpu[slot].sec = sec;
}

void ui_snapshot(uint64_t now_ns)
{
	for (struct ui_state *s = states; s; s = s->next)
		snapshot_one(s, now_ns / 1000000000ULL);
}

uint64_t ui_next_snapshot(void)
{
	if (!states)
		return 0;
	return (now_monotonic_ns() / 1000000000ULL + 1) * 1000000000ULL;
}

void ui_proc_gone(const struct proc *p)
{
	for (struct ui_state **pp = &states, *s; (s = *pp); pp = &s->next) {
		if (s->p != p)
			continue;
		*pp = s->next;
		for (unsigned i = 0; i < UI_CPU_SLOTS; i++)
			map_free(&s->cpu[i].counts);
		for (unsigned i = 0; i < s->nbase; i++)
			free(s->base[i].data);
		free(s);
		return;
	}
}

void ui_set_view(char **files, int nfiles, const char *base)
{
	view.on = true;
	view.files = files;
	view.nfiles = nfiles;
	view.base = base;
}

/* ---- the query ---------------------------------------------------------------------- */

/* The decoded value of key in query (the first one), or NULL. */
static const char *param(const char *query, const char *key, char *buf, size_t size)
{
	size_t klen = strlen(key);
	for (const char *s = query; *s;) {
		size_t n = strcspn(s, "&");
		if (n > klen && strncmp(s, key, klen) == 0 && s[klen] == '=')
			return http_query_decode(s + klen + 1, n - klen - 1, buf, size) < 0 ? NULL
											: buf;
		s += n;
		if (*s == '&')
			s++;
	}
	return NULL;
}

static bool num(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > max)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

/* The process the query names (?pid=), or the only one; NULL after an
 * error answer. */
static struct proc *pick(struct http_conn *c, const char *query)
{
	char buf[32];
	const char *pid_s = param(query, "pid", buf, sizeof(buf));
	uint64_t pid = 0;
	if (pid_s && !num(pid_s, UINT32_MAX, &pid)) {
		http_error(c, 400, "pid wants a process id, not '%s'", pid_s);
		return NULL;
	}
	struct proc *only = NULL;
	unsigned n = 0;
	for (struct conn *k = conns; k; k = k->next) {
		if (!k->proc)
			continue;
		if (pid_s && k->proc->pid == pid)
			return k->proc;
		if (!only || only->pid != k->proc->pid)
			n++;
		if (!only)
			only = k->proc;
	}
	if (pid_s)
		http_error(c, 404, "no process with pid %llu", (unsigned long long)pid);
	else if (n != 1)
		http_error(c, n ? 400 : 404, n ? "pid is required" : "no process is being profiled");
	else
		return only;
	return NULL;
}

static void json_reply(struct http_conn *c, struct strbuf *b)
{
	size_t len;
	char *body = sb_take(b, &len);
	http_respond(c, 200, "application/json", "Cache-Control: no-store\r\n", body, len);
}

static void clock_label(uint64_t realtime_ns, char *buf, size_t size)
{
	time_t sec = (time_t)(realtime_ns / 1000000000ULL);
	struct tm tm;
	localtime_r(&sec, &tm);
	strftime(buf, size, "%H:%M:%S", &tm);
}

/* ---- the JSON ------------------------------------------------------------------------- */

/* Every live process has a peak (peak.h keeps it as it goes). */
static bool has_peak(const struct proc *p)
{
	(void)p;
	return true;
}
static void serve_procs(struct http_conn *c)
{
	struct strbuf b = { 0 };
	if (view.on) {
		sb_adds(&b, "{\"mode\":\"view\",\"files\":[");
		for (int i = 0; i < view.nfiles; i++) {
			sb_adds(&b, i ? "," : "");
			ui_json_str(&b, view.files[i]);
		}
		sb_adds(&b, "],\"base\":");
		if (view.base)
			ui_json_str(&b, view.base);
		else
			sb_adds(&b, "null");
		sb_adds(&b, "}");
		json_reply(c, &b);
		return;
	}
	sb_adds(&b, "{\"mode\":\"live\",\"procs\":[");
	struct map seen = { 0 };
	bool first = true;
	for (struct conn *k = conns; k; k = k->next) {
		struct proc *p = k->proc;
		if (!p || map_find(&seen, (uint64_t)p->pid + 1, 0))
			continue;
		map_put(&seen, (uint64_t)p->pid + 1, 0, 1);
		state_of(p, true); /* from now on its CPU samples are kept */
		sb_printf(&b, "%s{\"pid\":%u,\"name\":", first ? "" : ",", p->pid);
		ui_json_str(&b, p->name);
		sb_adds(&b, ",\"cmdline\":");
		ui_json_str(&b, p->cmdline[0] ? p->cmdline : p->exe);
		sb_printf(&b, ",\"cpu\":%s,\"peak\":%s,\"samples\":%llu}", p->cpu_hz ? "true" : "false",
			  has_peak(p) ? "true" : "false", (unsigned long long)p->samples);
		first = false;
	}
	map_free(&seen);
	sb_adds(&b, "]}");
	json_reply(c, &b);
}

static int dump_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The baselines of p: kept in memory, then the heap dumps in the profile
 * directory (DIR/<name>.<pid>.<seq>.heap.pb.gz). */
static void serve_baselines(struct http_conn *c, struct proc *p)
{
	struct strbuf b = { 0 };
	struct ui_state *s = state_of(p, true);
	char when[32];
	sb_adds(&b, "{\"baselines\":[");
	bool first = true;
	for (unsigned i = 0; i < s->nbase; i++) {
		clock_label(s->base[i].time_ns, when, sizeof(when));
		sb_printf(&b, "%s{\"id\":\"m%u\",\"label\":\"now at %s\"}", first ? "" : ",",
			  s->base[i].id, when);
		first = false;
	}
	char prefix[300];
	int plen = snprintf(prefix, sizeof(prefix), "%s.%u.", p->name, p->pid);
	DIR *d = cfg.dir ? opendir(cfg.dir) : NULL;
	char **names = NULL;
	size_t n = 0, cap = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		size_t len = strlen(e->d_name);
		if (strncmp(e->d_name, prefix, (size_t)plen) != 0 || len != (size_t)plen + 15 ||
		    strcmp(e->d_name + plen + 4, ".heap.pb.gz") != 0)
			continue;
		GROW(names, cap, n + 1);
		names[n++] = xstrndup(e->d_name + plen, 4);
	}
	if (d)
		closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), dump_cmp);
	for (size_t i = 0; i < n; i++) {
		sb_printf(&b, "%s{\"id\":\"d%s\",\"label\":\"dump %s\"}", first ? "" : ",", names[i],
			  names[i]);
		first = false;
		free(names[i]);
	}
	free(names);
	sb_adds(&b, "]}");
	json_reply(c, &b);
}

static void serve_new_baseline(struct http_conn *c, struct proc *p)
{
	struct ui_state *s = state_of(p, true);
	size_t len;
	unsigned char *data = pprof_heap(p, "inuse_space", &len);
	if (!data) {
		http_error(c, 500, "could not encode the heap profile");
		return;
	}
	if (s->nbase == UI_MAX_BASELINES) {
		free(s->base[0].data);
		memmove(s->base, s->base + 1, (UI_MAX_BASELINES - 1) * sizeof(s->base[0]));
		s->nbase--;
	}
	struct baseline *bl = &s->base[s->nbase++];
	*bl = (struct baseline){ s->next_id++, now_realtime_ns(), data, len };
	char when[32];
	clock_label(bl->time_ns, when, sizeof(when));
	struct strbuf b = { 0 };
	sb_printf(&b, "{\"id\":\"m%u\",\"label\":\"now at %s\"}", bl->id, when);
	json_reply(c, &b);
}

/* Adds the baseline named id to pr as a base; 0, or -1 after an error
 * answer. */
static int add_baseline(struct http_conn *c, struct proc *p, const char *id, struct ui_prof *pr)
{
	const char *why = "unknown baseline";
	uint64_t n;
	if (id[0] == 'm' && num(id + 1, UINT32_MAX, &n)) {
		struct ui_state *s = state_of(p, true);
		for (unsigned i = 0; i < s->nbase; i++)
			if (s->base[i].id == n)
				return ui_prof_add(pr, s->base[i].data, s->base[i].len, true, &why) == 0
					       ? 0
					       : (http_error(c, 500, "baseline: %s", why), -1);
	} else if (id[0] == 'd' && strlen(id) == 5 && num(id + 1, 9999, &n)) {
		char path[4096], err[4400];
		snprintf(path, sizeof(path), "%s/%s.%u.%s.heap.pb.gz", cfg.dir, p->name, p->pid,
			 id + 1);
		if (ui_prof_add_file(pr, path, true, err, sizeof(err)) == 0)
			return 0;
		http_error(c, 404, "baseline: %s", err);
		return -1;
	}
	http_error(c, 404, "%s '%s' (it may have been replaced: pick another)", why, id);
	return -1;
}

/* The CPU samples of p's last seconds, as a profile: the difference from
 * the oldest snapshot no more than that old (the page says how many
 * seconds it covers, from when it first listed the process). */
static unsigned char *recent_cpu(struct proc *p, uint64_t seconds, size_t *len, double *have)
{
	struct ui_state *s = state_of(p, true);
	uint64_t now = now_monotonic_ns();
	uint64_t sec = now / 1000000000ULL;
	snapshot_one(s, sec);
	int best = -1;
	for (unsigned i = 0; i < UI_CPU_SLOTS; i++) {
		if (!s->cpu[i].sec || s->cpu[i].sec > sec || s->cpu[i].sec + seconds < sec)
			continue;
		if (best < 0 || s->cpu[i].sec < s->cpu[best].sec)
			best = (int)i;
	}
	uint64_t from_ns = best >= 0 && s->cpu[best].sec * 1000000000ULL > s->since_ns
				   ? s->cpu[best].sec * 1000000000ULL
				   : s->since_ns;
	uint64_t dur = now > from_ns ? now - from_ns : 0;
	*have = (double)dur / 1e9;
	static const struct map none;
	return pprof_cpu_since(p, best >= 0 ? &s->cpu[best].counts : &none,
			       now_realtime_ns() - dur, dur, len);
}

static void serve_profile(struct http_conn *c, const char *query)
{
	char kind_b[16], type_b[64], base_b[32], sec_b[16], note[200] = "";
	const char *kind = param(query, "kind", kind_b, sizeof(kind_b));
	const char *type = param(query, "type", type_b, sizeof(type_b));
	const char *base = param(query, "base", base_b, sizeof(base_b));
	const char *sec_s = param(query, "seconds", sec_b, sizeof(sec_b));
	struct ui_prof pr = { 0 };
	const char *why = "";
	if (view.on) {
		char err[4400];
		for (int i = 0; i < view.nfiles; i++) {
			if (ui_prof_add_file(&pr, view.files[i], false, err, sizeof(err)) != 0) {
				http_error(c, 500, "%s", err);
				goto out;
			}
		}
		if (view.base && ui_prof_add_file(&pr, view.base, true, err, sizeof(err)) != 0) {
			http_error(c, 500, "%s", err);
			goto out;
		}
	} else {
		struct proc *p = pick(c, query);
		if (!p)
			goto out;
		if (!kind)
			kind = "heap";
		unsigned char *data = NULL;
		size_t len = 0;
		if (strcmp(kind, "heap") == 0) {
			data = pprof_heap(p, "inuse_space", &len);
		} else if (strcmp(kind, "cpu") == 0) {
			uint64_t seconds = UI_CPU_DEFAULT_SECONDS;
			if (sec_s && !num(sec_s, UI_CPU_SLOTS - 1, &seconds)) {
				http_error(c, 400, "seconds wants 1 to %d, not '%s'", UI_CPU_SLOTS - 1,
					   sec_s);
				goto out;
			}
			if (!seconds)
				seconds = 1;
			double have;
			data = recent_cpu(p, seconds, &len, &have);
			if (have + 0.5 < (double)seconds)
				snprintf(note, sizeof(note),
					 "CPU samples are kept from when this page first listed the "
					 "process: %.0f s so far", have);
		} else if (strcmp(kind, "peak") == 0) {
			data = pprof_heap_peak(p, "inuse_space", &len);
		} else {
			http_error(c, 400, "kind wants heap, cpu or peak, not '%s'", kind);
			goto out;
		}
		if (data) {
			int rc = ui_prof_add(&pr, data, len, false, &why);
			free(data);
			if (rc != 0) {
				http_error(c, 500, "%s", why);
				goto out;
			}
		} else if (!pr.ntypes) {
			http_error(c, 500, "could not encode the %s profile", kind);
			goto out;
		}
		if (base && *base && add_baseline(c, p, base, &pr) != 0)
			goto out;
	}
	int index = type ? ui_prof_index(&pr, type) : -1;
	if (type && index < 0) {
		http_error(c, 400, "the profile has no sample type '%s'", type);
		goto out;
	}
	struct strbuf b = { 0 };
	sb_adds(&b, "{\"note\":");
	ui_json_str(&b, note);
	sb_adds(&b, ",\"profile\":");
	ui_prof_json(&pr, index < 0 ? pr.default_index : (size_t)index, &b);
	sb_adds(&b, "}");
	json_reply(c, &b);
out:
	ui_prof_free(&pr);
}

/* ---- routing --------------------------------------------------------------------------- */

bool ui_owns_path(const char *path)
{
	size_t n = sizeof(UI_PREFIX) - 1;
	return strncmp(path, UI_PREFIX, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

void ui_serve(struct http_conn *c, const struct http_request *rq)
{
	const char *path = rq->path + sizeof(UI_PREFIX) - 1;
	if (!*path) {
		static const char body[] = "<a href=\"/debug/pprof/ui/\">Moved Permanently</a>.\n";
		http_respond(c, 301, "text/html; charset=utf-8", "Location: " UI_PREFIX "/\r\n",
			     xstrndup(body, sizeof(body) - 1), sizeof(body) - 1);
		return;
	}
	path++;
	for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++) {
		if (strcmp(path, assets[i].path) != 0)
			continue;
		size_t len = (size_t)(assets[i].end - assets[i].start);
		char *body = xmalloc(len ? len : 1);
		memcpy(body, assets[i].start, len);
		http_respond(c, 200, assets[i].type, "Cache-Control: no-cache\r\n", body, len);
		return;
	}
	if (strcmp(path, "api/procs") == 0) {
		serve_procs(c);
		return;
	}
	if (strcmp(path, "api/profile") == 0) {
		serve_profile(c, rq->query);
		return;
	}
	if (strcmp(path, "api/baselines") == 0 || strcmp(path, "api/baseline") == 0) {
		if (view.on) {
			http_error(c, 400, "files on disk have no baselines but --base");
			return;
		}
		struct proc *p = pick(c, rq->query);
		if (!p)
			return;
		if (path[12] == 's')
			serve_baselines(c, p);
		else
			serve_new_baseline(c, p);
		return;
	}
	http_error(c, 404, "404 page not found (the page is at " UI_PREFIX "/)");
}
