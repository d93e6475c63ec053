/*
 * LeakSanitizer-style suppressions: a file of `leak:PATTERN` lines (`#`
 * starts a comment), each pattern matched against the function, source file
 * and module of every frame of a leak's stack. `*` matches any run of
 * characters; a pattern matches anywhere in the name unless anchored with a
 * leading `^` or a trailing `$`.
 */
#ifndef MEMPROF_COLLECTOR_SUPPRESS_H
#define MEMPROF_COLLECTOR_SUPPRESS_H

#include <stdbool.h>
#include <stdint.h>

struct suppression {
	char *pattern;          /* as written after "leak:" */
	uint64_t hits, bytes;   /* leaks it hid */
};

struct suppressions {
	struct suppression *items;
	size_t n, cap;
};

/* Reads path; unusable lines are reported (one message each) and skipped.
 * 0, or -1 if the file cannot be read (reported). */
int suppress_load(struct suppressions *s, const char *path);
void suppress_free(struct suppressions *s);

/* Does pattern match name (LSan's template rules above)? */
bool suppress_match(const char *pattern, const char *name);

#endif /* MEMPROF_COLLECTOR_SUPPRESS_H */
