/*
 * Reading profile.proto for the page and `memprof top` (see ui_prof.h).
 * The figures follow google/pprof's, which go tool pprof prints: frames
 * are functions (pprof's default granularity), inlined calls are frames of
 * their own, drop_frames is applied as Profile.Prune does, cum counts a
 * function once per sample however often it recurs, and the table's
 * cutoff, order, units and percentages are those of internal/report and
 * internal/measurement.
 */
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "profile.pb-c.h"
#include "ui_prof.h"
#include "util.h"

#define UI_MAX_PROFILE (512u << 20) /* decompressed bytes we accept */

/* ---- decoding -------------------------------------------------------------- */

/* Inflates a gzip stream into a malloc'd buffer; NULL if it is not one. */
static unsigned char *gunzip(const unsigned char *in, size_t len, size_t *out_len)
{
	z_stream z = { 0 };
	if (inflateInit2(&z, 15 + 32) != Z_OK)
		return NULL;
	size_t cap = len * 4 + 1024, n = 0;
	unsigned char *out = xmalloc(cap);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	int rc;
	do {
		if (n == cap) {
			if (cap >= UI_MAX_PROFILE)
				break;
			cap *= 2;
			out = xrealloc(out, cap);
		}
		z.next_out = out + n;
		z.avail_out = (uInt)(cap - n);
		rc = inflate(&z, Z_NO_FLUSH);
		n = cap - z.avail_out;
	} while (rc == Z_OK);
	inflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(out);
		return NULL;
	}
	*out_len = n;
	return out;
}

static uint32_t intern(struct ui_prof *pr, const char *s)
{
	uint64_t h = hash_bytes(s, strlen(s)) | 1;
	uint64_t probe = 0;
	for (uint64_t *v; (v = map_find(&pr->name_ids, h, probe)); probe++)
		if (strcmp(pr->names[*v], s) == 0)
			return (uint32_t)*v;
	GROW(pr->names, pr->cap_names, pr->nnames + 1);
	pr->names[pr->nnames] = xstrndup(s, strlen(s));
	map_put(&pr->name_ids, h, probe, pr->nnames);
	return (uint32_t)pr->nnames++;
}

static const char *str_at(const Perftools__Profiles__Profile *p, int64_t i)
{
	return i >= 0 && (size_t)i < p->n_string_table ? p->string_table[i] : "";
}

/* What pprof's Prune decides for one location: frames to skip at the leaf
 * end of the location's lines, and whether the location is dropped whole
 * (prune) or is where a sample's kept part ends (beneath). */
struct loc_info {
	uint32_t first;      /* index of the first name in names[] */
	uint32_t n;          /* lines kept */
	bool prune, beneath;
};

/* pprof's simplifyFunc: the name up to its argument list. */
static void simplify(const char *name, char *out, size_t size)
{
	if (name[0] == '.')
		name++;
	snprintf(out, size, "%s", name);
	for (char *p = out; (p = strchr(p, '('));) {
		if (p >= out + 19 && strncmp(p - 19, "(anonymous namespace)", 21) == 0) {
			p++;
			continue;
		}
		if (strncmp(p, "(anonymous namespace)", 21) == 0) {
			p += 21;
			continue;
		}
		if (p >= out + 8 && strncmp(p - 8, "operator()", 10) == 0) {
			p += 2;
			continue;
		}
		*p = '\0';
		break;
	}
}

static int add_decoded(struct ui_prof *pr, const Perftools__Profiles__Profile *p, bool base,
		       const char **why)
{
	/* The sample types: the first profile's, or the same again. */
	size_t *vmap = xcalloc(p->n_sample_type ? p->n_sample_type : 1, sizeof(*vmap));
	if (!pr->ntypes) {
		pr->ntypes = p->n_sample_type;
		pr->type = xcalloc(pr->ntypes + 1, sizeof(char *));
		pr->unit = xcalloc(pr->ntypes + 1, sizeof(char *));
		for (size_t i = 0; i < pr->ntypes; i++) {
			const char *t = str_at(p, p->sample_type[i]->type);
			const char *u = str_at(p, p->sample_type[i]->unit);
			pr->type[i] = xstrndup(t, strlen(t));
			pr->unit[i] = xstrndup(u, strlen(u));
			vmap[i] = i;
		}
		pr->default_index = pr->ntypes ? pr->ntypes - 1 : 0;
		const char *def = str_at(p, p->default_sample_type);
		for (size_t i = 0; *def && i < pr->ntypes; i++)
			if (strcmp(pr->type[i], def) == 0)
				pr->default_index = i;
		pr->time_ns = p->time_nanos;
		pr->duration_ns = p->duration_nanos;
		pr->comments = xcalloc(p->n_comment + 1, sizeof(char *));
		for (size_t i = 0; i < p->n_comment; i++) {
			const char *c = str_at(p, p->comment[i]);
			pr->comments[pr->ncomments++] = xstrndup(c, strlen(c));
		}
		if (p->n_mapping) {
			const char *f = str_at(p, p->mapping[0]->filename);
			const char *b = str_at(p, p->mapping[0]->build_id);
			pr->file = xstrndup(f, strlen(f));
			pr->build_id = xstrndup(b, strlen(b));
		}
	} else {
		if (p->n_sample_type != pr->ntypes) {
			free(vmap);
			*why = "the profiles have different sample types";
			return -1;
		}
		for (size_t i = 0; i < pr->ntypes; i++) {
			int k = ui_prof_index(pr, str_at(p, p->sample_type[i]->type));
			if (k < 0) {
				free(vmap);
				*why = "the profiles have different sample types";
				return -1;
			}
			vmap[i] = (size_t)k;
		}
		if (!base) {
			pr->duration_ns += p->duration_nanos;
			pr->comments = xrealloc(pr->comments,
						(pr->ncomments + p->n_comment + 1) * sizeof(char *));
			for (size_t i = 0; i < p->n_comment; i++) {
				const char *c = str_at(p, p->comment[i]);
				size_t k = 0;
				while (k < pr->ncomments && strcmp(pr->comments[k], c) != 0)
					k++;
				if (k == pr->ncomments) /* pprof's merge keeps one of each */
					pr->comments[pr->ncomments++] = xstrndup(c, strlen(c));
			}
		}
	}

	regex_t drop;
	bool have_drop = false;
	const char *df = str_at(p, p->drop_frames);
	if (*df) {
		size_t n = strlen(df) + 8;
		char *rx = xmalloc(n);
		snprintf(rx, n, "^(%s)$", df);
		have_drop = regcomp(&drop, rx, REG_EXTENDED | REG_NOSUB) == 0;
		free(rx);
	}

	/* Functions and mappings by id, then each location's frames. */
	struct map fn_ids = { 0 }, map_ids = { 0 }, loc_ids = { 0 };
	for (size_t i = 0; i < p->n_function; i++)
		map_put(&fn_ids, p->function[i]->id + 1, 0, i);
	for (size_t i = 0; i < p->n_mapping; i++)
		map_put(&map_ids, p->mapping[i]->id + 1, 0, i);
	struct loc_info *li = xcalloc(p->n_location + 1, sizeof(*li));
	uint32_t *lnames = NULL;
	size_t nlnames = 0, cap_lnames = 0;
	for (size_t i = 0; i < p->n_location; i++) {
		const Perftools__Profiles__Location *l = p->location[i];
		map_put(&loc_ids, l->id + 1, 0, i);
		li[i].first = (uint32_t)nlnames;
		GROW(lnames, cap_lnames, nlnames + l->n_line + 1);
		if (!l->n_line) {
			/* pprof's NodeInfo of an unsymbolized address. */
			const char *obj = "";
			uint64_t *m = map_find(&map_ids, l->mapping_id + 1, 0);
			if (m)
				obj = str_at(p, p->mapping[*m]->filename);
			const char *slash = strrchr(obj, '/');
			char name[600];
			snprintf(name, sizeof(name), "%016llx [%.500s]", (unsigned long long)l->address,
				 slash ? slash + 1 : obj);
			lnames[nlnames++] = intern(pr, name);
			li[i].n = 1;
			continue;
		}
		/* Lines are innermost first; pprof prunes from the caller's end:
		 * the outermost dropped frame and everything inlined into it. */
		size_t skip = 0;
		for (size_t j = l->n_line; j-- > 0;) {
			uint64_t *f = map_find(&fn_ids, l->line[j]->function_id + 1, 0);
			const char *fname = f ? str_at(p, p->function[*f]->name) : "";
			if (have_drop && *fname) {
				char simple[1024];
				simplify(fname, simple, sizeof(simple));
				if (regexec(&drop, simple, 0, NULL, 0) == 0) {
					li[i].beneath = true;
					if (j == l->n_line - 1)
						li[i].prune = true;
					else
						skip = j + 1;
					break;
				}
			}
		}
		for (size_t j = skip; j < l->n_line; j++) {
			uint64_t *f = map_find(&fn_ids, l->line[j]->function_id + 1, 0);
			const char *fname = f ? str_at(p, p->function[*f]->name) : "";
			lnames[nlnames++] = intern(pr, *fname ? fname : "<unknown>");
		}
		li[i].n = (uint32_t)(l->n_line - skip);
	}
	if (have_drop)
		regfree(&drop);

	for (size_t i = 0; i < p->n_sample; i++) {
		const Perftools__Profiles__Sample *s = p->sample[i];
		/* Prune: scan from the root for the first dropped location
		 * after a kept one. */
		size_t from = 0; /* first location (leaf end) kept */
		bool user = false;
		for (size_t k = s->n_location_id; k-- > 0;) {
			uint64_t *x = map_find(&loc_ids, s->location_id[k] + 1, 0);
			if (!x)
				continue;
			const struct loc_info *L = &li[*x];
			if (!L->prune && !L->beneath) {
				user = true;
				continue;
			}
			if (!user)
				continue;
			from = L->prune ? k + 1 : k;
			break;
		}
		struct ui_sample sm = { 0 };
		size_t cap = 0;
		for (size_t k = from; k < s->n_location_id; k++) {
			uint64_t *x = map_find(&loc_ids, s->location_id[k] + 1, 0);
			if (!x)
				continue;
			const struct loc_info *L = &li[*x];
			/* prune without a user frame above: kept whole (pprof
			 * keeps the lines of a location it prunes whole). */
			GROW(sm.frames, cap, sm.depth + L->n + 1);
			for (uint32_t j = 0; j < L->n; j++)
				sm.frames[sm.depth++] =
					lnames[L->first + j] | (j + 1 < L->n ? UI_INLINED : 0);
		}
		sm.values = xcalloc(pr->ntypes + 1, sizeof(int64_t));
		for (size_t k = 0; k < s->n_value && k < p->n_sample_type; k++)
			sm.values[vmap[k]] = base ? -s->value[k] : s->value[k];
		sm.base = base;
		GROW(pr->samples, pr->cap_samples, pr->nsamples + 1);
		pr->samples[pr->nsamples++] = sm;
	}
	if (base)
		pr->has_base = true;
	free(li);
	free(lnames);
	free(vmap);
	map_free(&fn_ids);
	map_free(&map_ids);
	map_free(&loc_ids);
	return 0;
}

int ui_prof_add(struct ui_prof *pr, const void *data, size_t len, bool base, const char **why)
{
	const unsigned char *d = data;
	unsigned char *raw = NULL;
	size_t rlen = len;
	if (len >= 2 && d[0] == 0x1f && d[1] == 0x8b) {
		raw = gunzip(d, len, &rlen);
		if (!raw) {
			*why = "not a valid gzip stream";
			return -1;
		}
		d = raw;
	}
	Perftools__Profiles__Profile *p = perftools__profiles__profile__unpack(NULL, rlen, d);
	free(raw);
	if (!p) {
		*why = "not a profile.proto (pprof) profile";
		return -1;
	}
	int rc = add_decoded(pr, p, base, why);
	perftools__profiles__profile__free_unpacked(p, NULL);
	return rc;
}

int ui_prof_add_file(struct ui_prof *pr, const char *path, bool base, char *why, size_t size)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		return -1;
	}
	size_t cap = 1 << 16, n = 0;
	unsigned char *buf = xmalloc(cap);
	size_t got;
	while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
		n += got;
		if (n == cap) {
			if (cap >= UI_MAX_PROFILE)
				break;
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
	}
	bool err = ferror(f);
	fclose(f);
	const char *w = "read error";
	int rc = err ? -1 : ui_prof_add(pr, buf, n, base, &w);
	free(buf);
	if (rc != 0)
		snprintf(why, size, "%s: %s", path, w);
	return rc;
}

void ui_prof_free(struct ui_prof *pr)
{
	for (size_t i = 0; i < pr->ntypes; i++) {
		free(pr->type[i]);
		free(pr->unit[i]);
	}
	free(pr->type);
	free(pr->unit);
	free(pr->file);
	free(pr->build_id);
	for (size_t i = 0; i < pr->ncomments; i++)
		free(pr->comments[i]);
	free(pr->comments);
	for (size_t i = 0; i < pr->nnames; i++)
		free(pr->names[i]);
	free(pr->names);
	map_free(&pr->name_ids);
	for (size_t i = 0; i < pr->nsamples; i++) {
		free(pr->samples[i].frames);
		free(pr->samples[i].values);
	}
	free(pr->samples);
	memset(pr, 0, sizeof(*pr));
}

int ui_prof_index(const struct ui_prof *pr, const char *type)
{
	for (size_t i = 0; i < pr->ntypes; i++)
		if (strcmp(pr->type[i], type) == 0)
			return (int)i;
	return -1;
}

/* ---- units, as internal/measurement ------------------------------------------- */

struct unit_def {
	const char *name;
	const char *aliases[4];
	double factor;
};

static const struct unit_def mem_units[] = {
	{ "B", { "b", "byte" }, 1 },
	{ "kB", { "kb", "kbyte", "kilobyte" }, 1024.0 },
	{ "MB", { "mb", "mbyte", "megabyte" }, 1048576.0 },
	{ "GB", { "gb", "gbyte", "gigabyte" }, 1073741824.0 },
	{ "TB", { "tb", "tbyte", "terabyte" }, 1099511627776.0 },
	{ "PB", { "pb", "pbyte", "petabyte" }, 1125899906842624.0 },
	{ NULL, { NULL }, 0 },
};
static const struct unit_def time_units[] = {
	{ "ns", { "ns", "nanosecond" }, 1 },
	{ "us", { "\xce\xbcs", "us", "microsecond" }, 1e3 },
	{ "ms", { "ms", "millisecond" }, 1e6 },
	{ "s", { "s", "sec", "second" }, 1e9 },
	{ "hrs", { "hour", "hr" }, 3600e9 },
	{ NULL, { NULL }, 0 },
};
/* Each type with the index of its default unit. */
static const struct {
	const struct unit_def *units;
	int def;
} unit_types[] = { { mem_units, 0 }, { time_units, 3 } };

static const struct unit_def *sniff(const struct unit_def *units, const char *unit)
{
	char u[64];
	size_t n = strlen(unit);
	if (n >= sizeof(u))
		return NULL;
	for (size_t i = 0; i <= n; i++)
		u[i] = (char)((unit[i] >= 'A' && unit[i] <= 'Z') ? unit[i] + 32 : unit[i]);
	if (n > 2 && u[n - 1] == 's')
		u[n - 1] = '\0';
	for (const struct unit_def *d = units; d->name; d++)
		for (int a = 0; a < 4 && d->aliases[a]; a++)
			if (strcmp(u, d->aliases[a]) == 0)
				return d;
	return NULL;
}

/* measurement.Scale: value in from_unit expressed in to_unit ("minimum"
 * or "auto" to choose); *out the unit's name, "" if uninteresting. */
static double scale(int64_t value, const char *from, const char *to, const char **out)
{
	if (value < 0 && -value > 0) {
		double v = scale(-value, from, to, out);
		return -v;
	}
	for (size_t t = 0; t < sizeof(unit_types) / sizeof(unit_types[0]); t++) {
		const struct unit_def *units = unit_types[t].units;
		const struct unit_def *fu = sniff(units, from);
		if (!fu)
			continue;
		double v = (double)value * fu->factor;
		if (strcmp(to, "minimum") == 0 || strcmp(to, "auto") == 0) {
			const struct unit_def *best = NULL;
			for (const struct unit_def *d = units; d->name; d++)
				if ((!best || d->factor >= best->factor) && v / d->factor >= 1.0)
					best = d;
			if (!best)
				best = &units[unit_types[t].def];
			*out = best->name;
			return v / best->factor;
		}
		const struct unit_def *tu = sniff(units, to);
		if (!tu)
			tu = &units[unit_types[t].def];
		*out = tu->name;
		return v / tu->factor;
	}
	if (!strcmp(to, "count") || !strcmp(to, "sample") || !strcmp(to, "unit") ||
	    !strcmp(to, "minimum") || !strcmp(to, "auto"))
		*out = "";
	else
		*out = to;
	return (double)value;
}

/* measurement.ScaledLabel. */
static void scaled_label(int64_t value, const char *from, const char *to, char *buf, size_t size)
{
	const char *u;
	double v = scale(value, from, to, &u);
	char num[64];
	snprintf(num, sizeof(num), "%.2f", v);
	size_t n = strlen(num);
	if (n > 3 && strcmp(num + n - 3, ".00") == 0)
		num[n - 3] = '\0';
	if (strcmp(num, "0") == 0 || strcmp(num, "-0") == 0)
		snprintf(buf, size, "0");
	else
		snprintf(buf, size, "%s%s", num, u);
}

/* A share as pprof prints it ("97.47%", "  100%", " 0.5%"). */
static void ui_percent(int64_t v, int64_t total, char *buf, size_t size)
{
	double r = total ? fabs((double)v / (double)total) * 100 : 0;
	if (r >= 99.95 && r <= 100.05)
		snprintf(buf, size, "  100%%");
	else if (r >= 1.0)
		snprintf(buf, size, "%5.2f%%", r);
	else
		snprintf(buf, size, "%5.2g%%", r);
}

/* ---- the -top table ------------------------------------------------------------ */

struct ui_top_row {
	uint32_t name;
	int64_t flat, cum;
	unsigned char how; /* 1: only ever called inlined, 2: never, 3: both */
};

struct ui_top {
	struct ui_top_row *rows;
	size_t nrows;
	int64_t total;       /* as pprof's: the sum of |value| (of the base when diffing) */
	int64_t shown;       /* the sum of the rows' flat values */
	size_t dropped;      /* rows under the cutoff */
	int64_t cutoff;
	size_t before_count; /* rows over the cutoff, before nodecount */
	char unit[16];       /* the unit values are shown in ("MB", "ms", "") */
};

static int64_t abs64(int64_t v)
{
	return v < 0 ? -v : v;
}

static const struct ui_prof *sort_prof;
static bool sort_cum;

static int row_cmp(const void *a, const void *b)
{
	const struct ui_top_row *l = a, *r = b;
	int64_t l1 = abs64(sort_cum ? l->cum : l->flat), r1 = abs64(sort_cum ? r->cum : r->flat);
	if (l1 != r1)
		return l1 > r1 ? -1 : 1;
	int c = strcmp(sort_prof->names[l->name], sort_prof->names[r->name]);
	if (c)
		return c;
	int64_t l2 = abs64(sort_cum ? l->flat : l->cum), r2 = abs64(sort_cum ? r->flat : r->cum);
	if (l2 != r2)
		return l2 > r2 ? -1 : 1;
	return 0;
}

/* The rows of the table, as pprof's newTrimmedGraph and TextItems make
 * them. */
static void ui_top_make(const struct ui_prof *pr, const struct ui_top_opts *o, struct ui_top *t)
{
	memset(t, 0, sizeof(*t));
	size_t idx = o->index;
	int64_t *flat = xcalloc(pr->nnames + 1, sizeof(int64_t));
	int64_t *cum = xcalloc(pr->nnames + 1, sizeof(int64_t));
	size_t *seen = xcalloc(pr->nnames + 1, sizeof(size_t));
	unsigned char *how = xcalloc(pr->nnames + 1, 1);
	struct map edges = { 0 }; /* (caller + 1, callee) -> 1 inlined, 2 not, 3 both */
	int64_t total = 0, base_total = 0;
	for (size_t i = 0; i < pr->nsamples; i++) {
		const struct ui_sample *s = &pr->samples[i];
		int64_t v = idx < pr->ntypes ? s->values[idx] : 0;
		if (!v)
			continue;
		total += abs64(v);
		if (s->base)
			base_total += abs64(v);
		for (uint32_t k = 0; k < s->depth; k++) {
			uint32_t n = UI_FRAME(s->frames[k]);
			/* How pprof labels a function "(inline)": by the calls
			 * into it, each inlined only if it always was. */
			if (k + 1 < s->depth && UI_FRAME(s->frames[k + 1]) != n) {
				uint64_t key = (uint64_t)UI_FRAME(s->frames[k + 1]) + 1;
				uint64_t bit = (s->frames[k] & UI_INLINED) ? 1 : 2;
				uint64_t *e = map_find(&edges, key, n);
				if (e)
					*e |= bit;
				else
					map_put(&edges, key, n, bit);
			}
			if (seen[n] == i + 1)
				continue;
			seen[n] = i + 1;
			cum[n] += v;
		}
		if (s->depth)
			flat[UI_FRAME(s->frames[0])] += v;
	}
	for (size_t k = 0; k < edges.cap; k++)
		if (edges.slots[k].k1)
			how[edges.slots[k].k2] |= edges.slots[k].val == 1 ? 1 : 2;
	map_free(&edges);
	t->total = base_total ? base_total : total;
	t->cutoff = abs64((int64_t)((double)t->total * o->nodefraction));
	size_t cap_rows = 0;
	for (size_t n = 0; n < pr->nnames; n++) {
		if (!flat[n] && !cum[n])
			continue;
		if (abs64(cum[n]) < t->cutoff) {
			t->dropped++;
			continue;
		}
		GROW(t->rows, cap_rows, t->nrows + 1);
		t->rows[t->nrows++] = (struct ui_top_row){ (uint32_t)n, flat[n], cum[n], how[n] };
	}
	t->before_count = t->nrows;
	sort_prof = pr;
	sort_cum = o->cum;
	if (t->nrows)
		qsort(t->rows, t->nrows, sizeof(*t->rows), row_cmp);
	if (o->nodecount > 0 && (size_t)o->nodecount < t->nrows)
		t->nrows = (size_t)o->nodecount;
	for (size_t i = 0; i < t->nrows; i++)
		t->shown += t->rows[i].flat;
	free(flat);
	free(cum);
	free(seen);
	free(how);

	/* selectOutputUnit: the unit of the smallest figure shown, or of a
	 * hundred times it when the total's unit is larger. */
	const char *sunit = idx < pr->ntypes ? pr->unit[idx] : "";
	int64_t minv = 0;
	for (size_t i = 0; i < t->nrows; i++) {
		int64_t m = abs64(t->rows[i].flat);
		if (!m)
			m = abs64(t->rows[i].cum);
		if (m > 0 && (!minv || m < minv))
			minv = m;
	}
	int64_t maxv = t->total;
	if (!minv)
		minv = maxv;
	const char *unit = sunit;
	if (t->nrows) {
		const char *minu, *maxu;
		scale(minv, sunit, "minimum", &minu);
		scale(maxv, sunit, "minimum", &maxu);
		unit = minu;
		if (strcmp(minu, maxu) != 0 && minv * 100 < maxv)
			scale(100 * minv, sunit, "minimum", &unit);
		if (!*unit)
			unit = sunit;
	} else {
		unit = "minimum";
	}
	snprintf(t->unit, sizeof(t->unit), "%s", unit);
}

static void ui_top_free(struct ui_top *t)
{
	free(t->rows);
	memset(t, 0, sizeof(*t));
}

/* " (inline)", " (partial-inline)" or "", as pprof -top marks a row. */
static const char *ui_inline_label(const struct ui_top_row *r)
{
	return r->how == 1 ? " (inline)" : r->how == 3 ? " (partial-inline)" : "";
}

/* A value as pprof prints it in the report's unit ("1.50MB", "0"). */
static void ui_top_format(const struct ui_prof *pr, const struct ui_top *t, size_t index,
			  int64_t v, char *buf, size_t size)
{
	scaled_label(v, index < pr->ntypes ? pr->unit[index] : "", t->unit, buf, size);
}

void ui_top_text(const struct ui_prof *pr, const struct ui_top_opts *o, struct strbuf *out)
{
	struct ui_top t;
	ui_top_make(pr, o, &t);
	char a[64], b[64], c[80], d[64], e[64];
	if (pr->file && *pr->file) {
		const char *slash = strrchr(pr->file, '/');
		sb_printf(out, "File: %s\n", slash ? slash + 1 : pr->file);
	}
	if (pr->build_id && *pr->build_id)
		sb_printf(out, "Build ID: %s\n", pr->build_id);
	for (size_t i = 0; i < pr->ncomments; i++)
		if (pr->comments[i][0] != '#')
			sb_printf(out, "%s\n", pr->comments[i]);
	if (o->index < pr->ntypes)
		sb_printf(out, "Type: %s\n", pr->type[o->index]);
	if (pr->time_ns) {
		time_t sec = (time_t)(pr->time_ns / 1000000000);
		struct tm tm;
		localtime_r(&sec, &tm);
		char when[80];
		strftime(when, sizeof(when), "%b %-d, %Y at %-I:%M%P (%Z)", &tm);
		sb_printf(out, "Time: %s\n", when);
	}
	if (pr->duration_ns) {
		scaled_label(pr->duration_ns, "nanoseconds", "auto", a, sizeof(a));
		ui_top_format(pr, &t, o->index, t.total, b, sizeof(b));
		const char *u;
		double ns = scale(t.total, o->index < pr->ntypes ? pr->unit[o->index] : "",
				  "nanoseconds", &u);
		c[0] = '\0';
		if (strcmp(u, "ns") == 0 && ns != 0) {
			ui_percent((int64_t)ns, pr->duration_ns, d, sizeof(d));
			snprintf(c, sizeof(c), "(%s)", d);
		}
		sb_printf(out, "Duration: %s, Total samples = %s %s\n", a, b, c);
	}
	ui_top_format(pr, &t, o->index, t.shown, a, sizeof(a));
	ui_percent(t.shown, t.total, b, sizeof(b));
	ui_top_format(pr, &t, o->index, t.total, c, sizeof(c));
	const char *pct = b;
	while (*pct == ' ')
		pct++;
	sb_printf(out, "Showing nodes accounting for %s, %s of %s total\n", a, pct, c);
	if (t.total && t.dropped) {
		ui_top_format(pr, &t, o->index, t.cutoff, a, sizeof(a));
		sb_printf(out, "Dropped %zu node%s (cum <= %s)\n", t.dropped, t.dropped > 1 ? "s" : "",
			  a);
	}
	if (t.total && t.nrows && t.nrows < t.before_count)
		sb_printf(out, "Showing top %zu nodes out of %zu\n", t.nrows, t.before_count);
	sb_printf(out, "%10s %5s%% %5s%% %10s %5s%%\n", "flat", "flat", "sum", "cum", "cum");
	int64_t sum = 0;
	for (size_t i = 0; i < t.nrows; i++) {
		const struct ui_top_row *r = &t.rows[i];
		sum += r->flat;
		ui_top_format(pr, &t, o->index, r->flat, a, sizeof(a));
		ui_percent(r->flat, t.total, b, sizeof(b));
		ui_percent(sum, t.total, c, sizeof(c));
		ui_top_format(pr, &t, o->index, r->cum, d, sizeof(d));
		ui_percent(r->cum, t.total, e, sizeof(e));
		sb_printf(out, "%10s %s %s %10s %s  %s%s\n", a, b, c, d, e, pr->names[r->name],
			  ui_inline_label(r));
	}
	ui_top_free(&t);
}


/* ---- JSON ----------------------------------------------------------------------- */

void ui_json_str(struct strbuf *b, const char *s)
{
	sb_adds(b, "\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			sb_printf(b, "\\%c", *p);
		else if (*p < 0x20)
			sb_printf(b, "\\u%04x", *p);
		else
			sb_add(b, p, 1);
	}
	sb_adds(b, "\"");
}

/* The flame graph: a tree of call paths from the root. */
struct fnode {
	uint32_t name, parent;
	int64_t self, total;
	uint32_t child, sibling; /* first child, next sibling; 0 = none */
};

struct ftree {
	struct fnode *n;
	size_t count, cap;
	struct map kids; /* (parent + 1, name) -> index */
};

static uint32_t fchild(struct ftree *t, uint32_t parent, uint32_t name)
{
	uint64_t *v = map_find(&t->kids, (uint64_t)parent + 1, name);
	if (v)
		return (uint32_t)*v;
	GROW(t->n, t->cap, t->count + 1);
	uint32_t i = (uint32_t)t->count++;
	t->n[i] = (struct fnode){ name, parent, 0, 0, 0, t->n[parent].child };
	t->n[parent].child = i;
	map_put(&t->kids, (uint64_t)parent + 1, name, i);
	return i;
}

static void flame_json(const struct ui_prof *pr, const struct ftree *t, uint32_t i,
		       int64_t min, struct strbuf *out)
{
	const struct fnode *f = &t->n[i];
	sb_adds(out, "{\"name\":");
	ui_json_str(out, i ? pr->names[f->name] : "root");
	sb_printf(out, ",\"value\":%lld", (long long)f->total);
	bool any = false;
	for (uint32_t k = f->child; k; k = t->n[k].sibling) {
		if (t->n[k].total <= 0 || t->n[k].total < min)
			continue;
		sb_adds(out, any ? "," : ",\"children\":[");
		any = true;
		flame_json(pr, t, k, min, out);
	}
	sb_adds(out, any ? "]}" : "}");
}

void ui_prof_json(const struct ui_prof *pr, size_t index, struct strbuf *out)
{
	sb_adds(out, "{\"types\":[");
	for (size_t i = 0; i < pr->ntypes; i++) {
		sb_adds(out, i ? "," : "");
		sb_adds(out, "{\"type\":");
		ui_json_str(out, pr->type[i]);
		sb_adds(out, ",\"unit\":");
		ui_json_str(out, pr->unit[i]);
		sb_adds(out, "}");
	}
	sb_printf(out, "],\"index\":%zu,\"diff\":%s,\"comments\":[", index,
		  pr->has_base ? "true" : "false");
	for (size_t i = 0; i < pr->ncomments; i++) {
		sb_adds(out, i ? "," : "");
		ui_json_str(out, pr->comments[i]);
	}
	sb_printf(out, "],\"time_ns\":%lld,\"duration_ns\":%lld", (long long)pr->time_ns,
		  (long long)pr->duration_ns);

	struct ui_top_opts o = { index, false, 0, 0.005 };
	struct ui_top t;
	ui_top_make(pr, &o, &t);
	char a[64];
	ui_top_format(pr, &t, index, t.total, a, sizeof(a));
	sb_printf(out, ",\"total\":%lld,\"total_s\":\"%s\",\"dropped\":%zu,\"top\":[",
		  (long long)t.total, a, t.dropped);
	int64_t sum = 0;
	for (size_t i = 0; i < t.nrows; i++) {
		const struct ui_top_row *r = &t.rows[i];
		char f[64], fp[32], sp[32], c[64], cp[32];
		sum += r->flat;
		ui_top_format(pr, &t, index, r->flat, f, sizeof(f));
		ui_top_format(pr, &t, index, r->cum, c, sizeof(c));
		ui_percent(r->flat, t.total, fp, sizeof(fp));
		ui_percent(sum, t.total, sp, sizeof(sp));
		ui_percent(r->cum, t.total, cp, sizeof(cp));
		sb_adds(out, i ? ",{\"name\":" : "{\"name\":");
		ui_json_str(out, pr->names[r->name]);
		sb_printf(out, ",\"inline\":\"%s\"", ui_inline_label(r));
		sb_printf(out,
			  ",\"flat\":%lld,\"cum\":%lld,\"flat_s\":\"%s\",\"flat_pct\":\"%s\","
			  "\"sum_pct\":\"%s\",\"cum_s\":\"%s\",\"cum_pct\":\"%s\"}",
			  (long long)r->flat, (long long)r->cum, f, fp, sp, c, cp);
	}
	sb_adds(out, "]");
	ui_top_free(&t);

	/* The tree: self values at the leaves' nodes, netted; when diffing,
	 * only what grew. */
	struct ftree ft = { 0 };
	GROW(ft.n, ft.cap, 1);
	ft.n[0] = (struct fnode){ 0 };
	ft.count = 1;
	for (size_t i = 0; i < pr->nsamples; i++) {
		const struct ui_sample *s = &pr->samples[i];
		int64_t v = index < pr->ntypes ? s->values[index] : 0;
		if (!v)
			continue;
		uint32_t at = 0;
		for (uint32_t k = s->depth; k-- > 0;)
			at = fchild(&ft, at, UI_FRAME(s->frames[k]));
		ft.n[at].self += v;
	}
	for (size_t i = ft.count; i-- > 0;) {
		struct fnode *f = &ft.n[i];
		f->total += f->self > 0 ? f->self : (pr->has_base ? 0 : f->self);
		if (i)
			ft.n[f->parent].total += f->total;
	}
	/* Frames under 1/5000 of the whole would be under a pixel: left out
	 * to keep the page light. */
	int64_t min = ft.n[0].total / 5000;
	sb_adds(out, ",\"flame\":");
	flame_json(pr, &ft, 0, min, out);
	sb_adds(out, "}");
	free(ft.n);
	map_free(&ft.kids);
}
