/*
 * Profiles as the page and `memprof top` read them: decoded from
 * profile.proto (gzipped or not) into samples of function names, merged,
 * diffed against a base, and turned into pprof's -top table or a flame
 * graph tree. Live profiles come here through the same encoder the files
 * do (pprof.c), so the page, the files and go tool pprof agree. Knows
 * nothing of HTTP (ui.c) or of processes (proc.c).
 */
#ifndef MEMPROF_COLLECTOR_UI_PROF_H
#define MEMPROF_COLLECTOR_UI_PROF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "strbuf.h"

/* A frame: a name id, with UI_INLINED when it was inlined into its caller
 * (not the outermost line of its location). */
#define UI_INLINED 0x80000000u
#define UI_FRAME(f) ((f) & ~UI_INLINED)

struct ui_sample {
	uint32_t depth;
	uint32_t *frames; /* leaf first (after pprof's drop_frames) */
	int64_t *values;  /* one per sample type; negated for a base's samples */
	bool base;
};

struct ui_prof {
	size_t ntypes;
	char **type, **unit;   /* sample types, as in the first profile added */
	size_t default_index;
	char *file, *build_id; /* the first profile's first mapping */
	char **comments;
	size_t ncomments;
	int64_t time_ns, duration_ns;
	char **names;          /* frame names, by id */
	size_t nnames, cap_names;
	struct map name_ids;   /* hash of name -> id */
	struct ui_sample *samples;
	size_t nsamples, cap_samples;
	bool has_base;
};

/* Adds the samples of one encoded profile (gzip or plain protobuf). The
 * first profile sets the sample types; later ones must have the same. A
 * base's values are subtracted, as pprof -diff_base does. 0, or -1 with
 * *why set (static text). */
int ui_prof_add(struct ui_prof *pr, const void *data, size_t len, bool base, const char **why);
/* Reads FILE and adds it; -1 with a message in why (size bytes). */
int ui_prof_add_file(struct ui_prof *pr, const char *path, bool base, char *why, size_t size);
void ui_prof_free(struct ui_prof *pr);

/* The index of a sample type by name, or -1. */
int ui_prof_index(const struct ui_prof *pr, const char *type);

/* pprof -top's options. */
struct ui_top_opts {
	size_t index;        /* sample type */
	bool cum;            /* sort by cum rather than flat */
	int nodecount;       /* at most this many rows; <= 0: all */
	double nodefraction; /* drop rows whose cum is below this share (0.005) */
};

/* The whole text of `pprof -top`: header lines and the table. */
void ui_top_text(const struct ui_prof *pr, const struct ui_top_opts *o, struct strbuf *out);

/* JSON for the page: sample types, comments, total, the top table (all
 * rows over the cutoff, formatted as -top does) and the flame graph tree
 * ({"name","value","children"} as d3-flame-graph reads it). When a base
 * was subtracted the tree shows only what grew: stacks whose net is
 * positive. */
void ui_prof_json(const struct ui_prof *pr, size_t index, struct strbuf *out);

/* s as a JSON string, quotes included. */
void ui_json_str(struct strbuf *b, const char *s);

#endif /* MEMPROF_COLLECTOR_UI_PROF_H */
