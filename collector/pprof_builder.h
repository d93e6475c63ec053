/*
 * The profile builder shared by the heap, CPU and leak encoders: it hands
 * out profile ids for the mappings, locations, functions and strings that
 * the samples added to it reference, and encodes profile.proto straight
 * into byte buffers as it goes (no message structs), then gzips the result.
 */
#ifndef MEMPROF_COLLECTOR_PPROF_BUILDER_H
#define MEMPROF_COLLECTOR_PPROF_BUILDER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "map.h"
#include "proc.h"

/* A growing buffer of encoded protobuf. */
struct pbuf {
	unsigned char *d;
	size_t len, cap;
};

struct pb {
	struct proc *p;
	size_t nvalues;
	/* Scalar fields of the Profile message, set by the callers (string
	 * indices from pb_string where the field is one). */
	int64_t drop_frames, default_sample_type, time_nanos, duration_nanos, period;
	struct pbuf sample_types, period_type;
	struct pbuf samples;  /* encoded Sample fields (Profile.sample) */
	struct pbuf sample;   /* the body of the latest sample, still open for labels */
	struct pbuf scratch;  /* for packed fields and locations */
	bool sample_open;
	struct pbuf mappings, locations, functions;
	/* The string table, encoded (Profile.string_table), and where each
	 * string's bytes are in it, to compare when a hash matches. */
	struct pbuf strtab;
	size_t *str_off;
	uint32_t *str_len;
	size_t nstrings, cap_strings;
	struct map string_index;  /* hash of contents -> string id */
	struct map string_by_ptr; /* a symbolizer string (interned) -> string id */
	struct map function_ids;
	uint64_t nfunctions;
	/* Profile ids by index into p->locs and p->maps; 0: not in it yet.
	 * Locations are symbolized and encoded at pb_finish, in the order of
	 * their first use. */
	uint32_t *loc_ids, *used_locs;
	size_t nused_locs, cap_used_locs;
	uint32_t *map_ids;
	uint64_t nmappings;
	int64_t *comments;
	size_t ncomments, cap_comments;
};

void pb_init(struct pb *b, struct proc *p);
int64_t pb_string(struct pb *b, const char *s);
/* types holds n (type, unit) pairs. */
void pb_sample_types(struct pb *b, const char *const *types, size_t n);
void pb_period(struct pb *b, const char *type, const char *unit, int64_t period);
void pb_comment(struct pb *b, const char *text);
/* The standard comments: which process, and how many events were lost. */
void pb_process_comments(struct pb *b, const char *what);
/* Adds a sample of p->stacks[stack] with nvalues values; labels added
 * next (pb_label_*) are this sample's. */
void pb_sample(struct pb *b, uint32_t stack, const int64_t *values);
void pb_label_num(struct pb *b, const char *key, int64_t num);
void pb_label_str(struct pb *b, const char *key, const char *str);
/* Encodes and gzips; NULL on failure. The builder must still be freed. */
unsigned char *pb_finish(struct pb *b, size_t *out_len);
void pb_free(struct pb *b);

/* Permissions for written profiles (0666 less the umask). */
extern mode_t pprof_file_mode;

#endif /* MEMPROF_COLLECTOR_PPROF_BUILDER_H */
