/*
 * pprof encoding: a builder that gives each mapping, location, function and
 * string referenced by the samples of one profile its id in that profile
 * (ids start at 1; string 0 is ""), then packs, gzips and writes the result.
 * What goes into the samples is decided by the callers (heap here, CPU in
 * cpu.c); symbolization happens on demand, for referenced locations only.
 */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "debuginfo.h"
#include "peak.h"
#include "pprof.h"
#include "pprof_builder.h"
#include "profile.pb-c.h"
#include "util.h"

mode_t pprof_file_mode = 0644;

/* ---- the builder ---------------------------------------------------------- */

static uint64_t mapping_id(struct pb *b, int32_t idx);

void pb_init(struct pb *b, struct proc *p)
{
	memset(b, 0, sizeof(*b));
	b->p = p;
	perftools__profiles__profile__init(&b->prof);
	pb_string(b, "");
	/* pprof takes the first mapping for the program ("File:", the name
	 * of the copies go tool pprof saves): let it be the executable, not
	 * whatever the first sample happened to run in (often the vDSO). */
	for (size_t i = 0; i < p->nmaps; i++) {
		if (strcmp(p->maps[i].path, p->exe) == 0) {
			mapping_id(b, (int32_t)i);
			break;
		}
	}
}

int64_t pb_string(struct pb *b, const char *s)
{
	size_t n = strlen(s);
	uint64_t h = hash_bytes(s, n);
	uint64_t probe = 0;
	for (uint64_t *v; (v = map_find(&b->string_index, h, probe)); probe++)
		if (strcmp(b->strings[*v], s) == 0)
			return (int64_t)*v;
	GROW(b->strings, b->cap_strings, b->nstrings + 1);
	b->strings[b->nstrings] = xstrndup(s, n);
	map_put(&b->string_index, h, probe, b->nstrings);
	return (int64_t)b->nstrings++;
}

/* Appends ptr to a growing array of message pointers. */
#define PUSH(arr, n, cap, ptr)                          \
	do {                                            \
		GROW(arr, cap, (n) + 1);                \
		(arr)[(n)++] = (ptr);                   \
	} while (0)

static uint64_t mapping_id(struct pb *b, int32_t idx)
{
	if (idx < 0)
		return 0;
	uint64_t *v = map_find(&b->mapping_ids, (uint64_t)idx + 1, 0);
	if (v)
		return *v;
	const struct mapping *m = &b->p->maps[idx];
	Perftools__Profiles__Mapping *pm = xmalloc(sizeof(*pm));
	perftools__profiles__mapping__init(pm);
	pm->id = b->nmappings + 1;
	pm->memory_start = m->start;
	pm->memory_limit = m->limit;
	pm->file_offset = m->offset;
	pm->filename = pb_string(b, m->path);
	char hex[2 * MP_MAX_BUILD_ID + 1];
	for (uint32_t i = 0; i < m->build_id_len; i++)
		snprintf(hex + 2 * i, 3, "%02x", m->build_id[i]);
	hex[2 * m->build_id_len] = '\0';
	pm->build_id = pb_string(b, hex);
	pm->has_functions = pm->has_filenames = pm->has_line_numbers = pm->has_inline_frames = 1;
	PUSH(b->mappings, b->nmappings, b->cap_mappings, pm);
	map_put(&b->mapping_ids, (uint64_t)idx + 1, 0, pm->id);
	return pm->id;
}

static uint64_t function_id(struct pb *b, const struct sym_line *l)
{
	int64_t name = pb_string(b, l->function);
	int64_t sys = pb_string(b, l->system_name[0] ? l->system_name : l->function);
	int64_t file = pb_string(b, l->file);
	uint64_t k1 = ((uint64_t)name << 32 | (uint64_t)sys) + 1;
	uint64_t k2 = (uint64_t)file << 32 | (uint64_t)(l->start_line & 0xffffffff);
	uint64_t *v = map_find(&b->function_ids, k1, k2);
	if (v)
		return *v;
	Perftools__Profiles__Function *f = xmalloc(sizeof(*f));
	perftools__profiles__function__init(f);
	f->id = b->nfunctions + 1;
	f->name = name;
	f->system_name = sys;
	f->filename = file;
	f->start_line = l->start_line;
	PUSH(b->functions, b->nfunctions, b->cap_functions, f);
	map_put(&b->function_ids, k1, k2, f->id);
	return f->id;
}

static uint64_t location_id(struct pb *b, uint32_t idx)
{
	uint64_t *v = map_find(&b->location_ids, (uint64_t)idx + 1, 0);
	if (v)
		return *v;
	struct location *loc = &b->p->locs[idx];
	proc_symbolize(b->p, loc);
	Perftools__Profiles__Location *pl = xmalloc(sizeof(*pl));
	perftools__profiles__location__init(pl);
	pl->id = b->nlocations + 1;
	pl->mapping_id = mapping_id(b, loc->mapping);
	pl->address = loc->addr;
	pl->n_line = loc->nlines;
	pl->line = xcalloc(loc->nlines ? loc->nlines : 1, sizeof(*pl->line));
	for (uint16_t i = 0; i < loc->nlines; i++) {
		Perftools__Profiles__Line *ln = xmalloc(sizeof(*ln));
		perftools__profiles__line__init(ln);
		ln->function_id = function_id(b, &loc->lines[i]);
		ln->line = loc->lines[i].line;
		pl->line[i] = ln;
	}
	PUSH(b->locations, b->nlocations, b->cap_locations, pl);
	map_put(&b->location_ids, (uint64_t)idx + 1, 0, pl->id);
	return pl->id;
}

void pb_sample_types(struct pb *b, const char *const *types, size_t n)
{
	b->prof.n_sample_type = n;
	b->prof.sample_type = xcalloc(n, sizeof(*b->prof.sample_type));
	for (size_t i = 0; i < n; i++) {
		Perftools__Profiles__ValueType *vt = xmalloc(sizeof(*vt));
		perftools__profiles__value_type__init(vt);
		vt->type = pb_string(b, types[2 * i]);
		vt->unit = pb_string(b, types[2 * i + 1]);
		b->prof.sample_type[i] = vt;
	}
	b->nvalues = n;
}

void pb_period(struct pb *b, const char *type, const char *unit, int64_t period)
{
	Perftools__Profiles__ValueType *vt = xmalloc(sizeof(*vt));
	perftools__profiles__value_type__init(vt);
	vt->type = pb_string(b, type);
	vt->unit = pb_string(b, unit);
	b->prof.period_type = vt;
	b->prof.period = period;
}

void pb_comment(struct pb *b, const char *text)
{
	GROW(b->comments, b->cap_comments, b->ncomments + 1);
	b->comments[b->ncomments++] = pb_string(b, text);
}

Perftools__Profiles__Sample *pb_sample(struct pb *b, uint32_t stack, const int64_t *values)
{
	const struct stack *s = &b->p->stacks[stack];
	Perftools__Profiles__Sample *sm = xmalloc(sizeof(*sm));
	perftools__profiles__sample__init(sm);
	sm->n_location_id = s->depth;
	sm->location_id = xmalloc(s->depth * sizeof(uint64_t));
	for (uint32_t i = 0; i < s->depth; i++)
		sm->location_id[i] = location_id(b, s->locs[i]);
	sm->n_value = b->nvalues;
	sm->value = xmalloc(b->nvalues * sizeof(int64_t));
	memcpy(sm->value, values, b->nvalues * sizeof(int64_t));
	PUSH(b->samples, b->nsamples, b->cap_samples, sm);
	return sm;
}

static Perftools__Profiles__Label *add_label(struct pb *b, Perftools__Profiles__Sample *sm,
					     const char *key)
{
	Perftools__Profiles__Label *l = xmalloc(sizeof(*l));
	perftools__profiles__label__init(l);
	l->key = pb_string(b, key);
	sm->label = xrealloc(sm->label, (sm->n_label + 1) * sizeof(*sm->label));
	sm->label[sm->n_label++] = l;
	return l;
}

void pb_label_num(struct pb *b, Perftools__Profiles__Sample *sm, const char *key, int64_t num)
{
	add_label(b, sm, key)->num = num;
}

void pb_label_str(struct pb *b, Perftools__Profiles__Sample *sm, const char *key, const char *str)
{
	add_label(b, sm, key)->str = pb_string(b, str);
}

static bool mapping_in_profile(size_t i, void *arg)
{
	struct pb *b = arg;
	return map_find(&b->mapping_ids, (uint64_t)i + 1, 0) != NULL;
}

/* Says which files of the profile have no debug information, and how to
 * get it. */
static void debuginfo_comment(struct pb *b)
{
	struct strbuf list = { 0 };
	struct map seen = { 0 };
	unsigned n = debuginfo_missing(b->p, mapping_in_profile, b, &list, &seen);
	if (n) {
		struct strbuf line = { 0 };
		sb_printf(&line, "no debug information for %s: %s", list.s, debuginfo_advice);
		pb_comment(b, line.s);
		sb_free(&line);
	}
	sb_free(&list);
	map_free(&seen);
}

unsigned char *pb_finish(struct pb *b, size_t *out_len)
{
	Perftools__Profiles__Profile *pr = &b->prof;
	debuginfo_comment(b);
	pr->sample = b->samples;
	pr->n_sample = b->nsamples;
	pr->mapping = b->mappings;
	pr->n_mapping = b->nmappings;
	pr->location = b->locations;
	pr->n_location = b->nlocations;
	pr->function = b->functions;
	pr->n_function = b->nfunctions;
	pr->comment = b->comments;
	pr->n_comment = b->ncomments;
	pr->string_table = b->strings;
	pr->n_string_table = b->nstrings;
	size_t n = perftools__profiles__profile__get_packed_size(pr);
	unsigned char *raw = xmalloc(n ? n : 1);
	perftools__profiles__profile__pack(pr, raw);
	unsigned char *gz = pprof_gzip(raw, n, out_len);
	free(raw);
	return gz;
}

void pb_free(struct pb *b)
{
	Perftools__Profiles__Profile *pr = &b->prof;
	for (size_t i = 0; i < pr->n_sample_type; i++)
		free(pr->sample_type[i]);
	free(pr->sample_type);
	free(pr->period_type);
	for (size_t i = 0; i < b->nsamples; i++) {
		for (size_t j = 0; j < b->samples[i]->n_label; j++)
			free(b->samples[i]->label[j]);
		free(b->samples[i]->label);
		free(b->samples[i]->location_id);
		free(b->samples[i]->value);
		free(b->samples[i]);
	}
	for (size_t i = 0; i < b->nlocations; i++) {
		for (size_t j = 0; j < b->locations[i]->n_line; j++)
			free(b->locations[i]->line[j]);
		free(b->locations[i]->line);
		free(b->locations[i]);
	}
	for (size_t i = 0; i < b->nmappings; i++)
		free(b->mappings[i]);
	for (size_t i = 0; i < b->nfunctions; i++)
		free(b->functions[i]);
	for (size_t i = 0; i < b->nstrings; i++)
		free(b->strings[i]);
	free(b->samples);
	free(b->locations);
	free(b->mappings);
	free(b->functions);
	free(b->strings);
	free(b->comments);
	map_free(&b->string_index);
	map_free(&b->mapping_ids);
	map_free(&b->location_ids);
	map_free(&b->function_ids);
}

/* ---- heap profiles ---------------------------------------------------------- */

void pb_process_comments(struct pb *b, const char *what)
{
	char line[1200];
	snprintf(line, sizeof(line), "memprof %s profile of pid %u: %.1024s", what, b->p->pid,
		 b->p->cmdline[0] ? b->p->cmdline : b->p->exe);
	pb_comment(b, line);
	if (b->p->drops) {
		snprintf(line, sizeof(line),
			 "%llu heap events dropped (the collector could not keep up; "
			 "figures are low by about that many samples)",
			 (unsigned long long)b->p->drops);
		pb_comment(b, line);
	}
	if (b->p->cpu_drops) {
		snprintf(line, sizeof(line),
			 "%llu CPU samples dropped (the writer thread could not keep up)",
			 (unsigned long long)b->p->cpu_drops);
		pb_comment(b, line);
	}
	if (b->p->over_limit_stacks || b->p->over_limit_samples) {
		snprintf(line, sizeof(line),
			 "%llu stacks and %llu samples not kept: the process passed the "
			 "collector's limits (%u stacks, %u locations, %u buckets, %u live "
			 "samples per process)",
			 (unsigned long long)b->p->over_limit_stacks,
			 (unsigned long long)b->p->over_limit_samples, PROC_MAX_STACKS,
			 PROC_MAX_LOCATIONS, PROC_MAX_BUCKETS, PROC_MAX_LIVE);
		pb_comment(b, line);
	}
}

/* Sizes and counts come from clients: a size near 2^64, or unsampling at a
 * huge rate, can stand for more than an int64 holds. Saturate (converting
 * an out-of-range double is undefined behaviour; found by fuzz_wire). */
static int64_t round_value(double v)
{
	if (!(v > 0))
		return 0;
	if (v >= 9223372036854775807.0)
		return INT64_MAX;
	return (int64_t)(v + 0.5);
}

static unsigned char *heap_profile(struct proc *p, const char *default_type, bool peak,
				   size_t *len)
{
	static const char *const types[] = {
		"alloc_objects", "count", "alloc_space", "bytes",
		"inuse_objects", "count", "inuse_space", "bytes",
	};
	struct pb b;
	pb_init(&b, p);
	pb_sample_types(&b, types, 4);
	pb_period(&b, "space", "bytes", (int64_t)p->rate);
	/* pprof drops these frames and their callees from the leaf end, so
	 * that the function that wanted the memory is shown as allocating it
	 * rather than operator new or std::allocator (the file keeps them). */
	b.prof.drop_frames = pb_string(&b, "operator new.*|operator delete.*|"
					   "std::__new_allocator<.*>::allocate|"
					   "__gnu_cxx::new_allocator<.*>::allocate|"
					   "std::allocator_traits<.*>::allocate|"
					   "std::allocator<.*>::allocate|"
					   "strn?dup|__strn?dup|wcsdup|asprintf|vasprintf");
	b.prof.default_sample_type = pb_string(&b, default_type);
	b.prof.time_nanos = (int64_t)now_realtime_ns();
	pb_process_comments(&b, peak ? "peak heap" : "heap");
	if (peak) {
		char line[160];
		snprintf(line, sizeof(line),
			 "the in-use heap when it was at its highest: %" PRIu64
			 " bytes (estimated from the samples)", p->peak_est);
		pb_comment(&b, line);
	}
	for (size_t i = 0; i < p->nbuckets; i++) {
		const struct bucket *bk = &p->buckets[i];
		uint64_t alloc = peak ? peak_alloc(p, bk) : bk->alloc_samples;
		uint64_t inuse = peak ? peak_inuse(p, bk) : bk->inuse_samples;
		if (!alloc)
			continue;
		double w = proc_sample_weight(p, bk->size);
		int64_t v[4] = {
			round_value((double)alloc * w),
			round_value((double)alloc * w * (double)bk->size),
			round_value((double)inuse * w),
			round_value((double)inuse * w * (double)bk->size),
		};
		Perftools__Profiles__Sample *sm = pb_sample(&b, bk->stack, v);
		pb_label_num(&b, sm, "bytes", (int64_t)bk->size);
	}
	unsigned char *out = pb_finish(&b, len);
	pb_free(&b);
	return out;
}

unsigned char *pprof_heap(struct proc *p, const char *default_type, size_t *len)
{
	return heap_profile(p, default_type, false, len);
}

unsigned char *pprof_heap_peak(struct proc *p, const char *default_type, size_t *len)
{
	return heap_profile(p, default_type, true, len);
}

/* ---- CPU profiles ----------------------------------------------------------- */

unsigned char *pprof_cpu_since(struct proc *p, const struct map *base, uint64_t since_ns,
			      uint64_t duration_ns, size_t *len)
{
	static const char *const types[] = { "samples", "count", "cpu", "nanoseconds" };
	int64_t period = p->cpu_hz ? 1000000000LL / p->cpu_hz : 10000000LL;
	struct pb b;
	pb_init(&b, p);
	pb_sample_types(&b, types, 2);
	pb_period(&b, "cpu", "nanoseconds", period);
	b.prof.default_sample_type = pb_string(&b, "cpu");
	b.prof.time_nanos = (int64_t)since_ns;
	b.prof.duration_nanos = (int64_t)duration_ns;
	pb_process_comments(&b, "CPU");
	for (size_t i = 0; i < p->cpu.cap; i++) {
		const struct map_slot *s = &p->cpu.slots[i];
		if (!s->k1)
			continue;
		const uint64_t *before = map_find(base, s->k1, s->k2);
		uint64_t d = s->val - (before ? *before : 0);
		if (!d)
			continue;
		/* Weights come from clients: saturate, as round_value does
		 * (a signed overflow otherwise; found by fuzz_wire). */
		int64_t n = d > INT64_MAX ? INT64_MAX : (int64_t)d;
		int64_t v[2] = { n, period && n > INT64_MAX / period ? INT64_MAX : n * period };
		pb_sample(&b, (uint32_t)(s->k1 - 1), v);
	}
	unsigned char *out = pb_finish(&b, len);
	pb_free(&b);
	return out;
}


/* ---- gzip and files --------------------------------------------------------- */

unsigned char *pprof_gzip(const void *in, size_t len, size_t *out_len)
{
	z_stream z = { 0 };
	/* Level 1, as Go's runtime/pprof (newProfileBuilder: gzip.BestSpeed):
	 * on a 10,000-site heap profile (720 KB raw) level 6 took half of the
	 * collector's instructions for 8% fewer bytes (211 KB against 228 KB).
	 * windowBits 15 + 16: a gzip header and trailer rather than zlib's. */
	if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	size_t cap = deflateBound(&z, len) + 64;
	unsigned char *out = xmalloc(cap);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	int rc = deflate(&z, Z_FINISH);
	*out_len = z.total_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(out);
		return NULL;
	}
	return out;
}

int pprof_write_file(const char *path, const void *data, size_t len)
{
	char tmp[4096];
	const char *slash = strrchr(path, '/');
	int dirlen = slash ? (int)(slash - path) : 1;
	snprintf(tmp, sizeof(tmp), "%.*s/.%s.XXXXXX", dirlen, slash ? path : ".",
		 slash ? slash + 1 : path);
	int fd = mkstemp(tmp);
	if (fd < 0)
		return -1;
	const unsigned char *p = data;
	size_t left = len;
	while (left) {
		ssize_t n = write(fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		p += n;
		left -= (size_t)n;
	}
	if (fchmod(fd, pprof_file_mode) != 0 || close(fd) != 0) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, path) != 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:;
	int e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = e ? e : EIO;
	return -1;
}
