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
#include <stddef.h>
#include <stdint.h>

struct suppression {
	char *pattern;          /* as written after "leak:" */
	uint64_t hits, bytes;   /* leaks it hid */
};

struct suppressions {
	struct suppression *items;
	size_t n, cap;
};

/* A suppressions file larger than this is refused: LSan's own are a few
 * KiB, and the file is read inside the collector's event loop. */
#define SUPPRESS_MAX_BYTES (1U << 20)

/* Reads path (named by a client: a FIFO, a device or a huge file is
 * refused, never waited for). Unusable lines are reported (one message
 * each) and skipped. 0, or -1 with *why saying why the file was not read. */
int suppress_load(struct suppressions *s, const char *path, const char **why);
void suppress_free(struct suppressions *s);

/* Does pattern match name (LSan's template rules above)? */
bool suppress_match(const char *pattern, const char *name);

#endif /* MEMPROF_COLLECTOR_SUPPRESS_H */
