/*
 * The profile builder shared by the heap and CPU encoders: it hands out
 * profile ids for the mappings, locations, functions and strings that the
 * samples added to it reference, and packs the result.
 */
#ifndef MEMPROF_COLLECTOR_PPROF_BUILDER_H
#define MEMPROF_COLLECTOR_PPROF_BUILDER_H

#include <sys/types.h>

#include "map.h"
#include "proc.h"
#include "profile.pb-c.h"

struct pb {
	struct proc *p;
	Perftools__Profiles__Profile prof;
	size_t nvalues;
	char **strings;
	size_t nstrings, cap_strings;
	struct map string_index;
	Perftools__Profiles__Sample **samples;
	size_t nsamples, cap_samples;
	Perftools__Profiles__Location **locations;
	size_t nlocations, cap_locations;
	struct map location_ids;
	Perftools__Profiles__Mapping **mappings;
	size_t nmappings, cap_mappings;
	struct map mapping_ids;
	Perftools__Profiles__Function **functions;
	size_t nfunctions, cap_functions;
	struct map function_ids;
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
/* A sample of p->stacks[stack] with nvalues values. */
Perftools__Profiles__Sample *pb_sample(struct pb *b, uint32_t stack, const int64_t *values);
void pb_label_num(struct pb *b, Perftools__Profiles__Sample *sm, const char *key, int64_t num);
void pb_label_str(struct pb *b, Perftools__Profiles__Sample *sm, const char *key, const char *str);
/* Packs and gzips; NULL on failure. The builder must still be freed. */
unsigned char *pb_finish(struct pb *b, size_t *out_len);
void pb_free(struct pb *b);

/* Permissions for written profiles (0666 less the umask). */
extern mode_t pprof_file_mode;

#endif /* MEMPROF_COLLECTOR_PPROF_BUILDER_H */
