/*
 * A growable byte buffer for text the collector composes (HTTP headers,
 * pages, the legacy heap format): append formatted text, take the bytes.
 */
#ifndef MEMPROF_COLLECTOR_STRBUF_H
#define MEMPROF_COLLECTOR_STRBUF_H

#include <stddef.h>

struct strbuf {
	char *s;     /* NUL-terminated once anything was added, else NULL */
	size_t len, cap;
};

/* Appends formatted text (out of memory is fatal, as with xmalloc). */
void sb_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_add(struct strbuf *b, const void *data, size_t n);
void sb_adds(struct strbuf *b, const char *s);
/* Appends s with &, <, >, " and ' replaced by HTML entities. */
void sb_add_html(struct strbuf *b, const char *s);
/* Hands the bytes to the caller (never NULL, even if empty) and empties b. */
char *sb_take(struct strbuf *b, size_t *len);
void sb_free(struct strbuf *b);

#endif /* MEMPROF_COLLECTOR_STRBUF_H */
