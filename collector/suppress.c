/*
 * Reading suppression files and matching their patterns; see suppress.h.
 */
#include <stdlib.h>
#include <string.h>

#include "suppress.h"
#include "util.h"

/* '*' matches any run; the pattern must match all of name from where it
 * starts (anchors are handled by the caller). */
static bool glob_at(const char *p, const char *s, bool to_end)
{
	for (; *p; p++, s++) {
		if (*p == '*') {
			while (p[1] == '*')
				p++;
			if (!p[1] && !to_end)
				return true;
			for (const char *t = s;; t++) {
				if (glob_at(p + 1, t, to_end))
					return true;
				if (!*t)
					return false;
			}
		}
		if (*s != *p)
			return false;
	}
	return !to_end || !*s;
}

bool suppress_match(const char *pattern, const char *name)
{
	if (!name || !*name)
		return false;
	bool start = pattern[0] == '^';
	const char *p = pattern + start;
	size_t len = strlen(p);
	bool end = len && p[len - 1] == '$';
	char buf[1024];
	if (end) {
		if (len >= sizeof(buf))
			return false;
		memcpy(buf, p, len - 1);
		buf[len - 1] = '\0';
		p = buf;
	}
	if (start)
		return glob_at(p, name, end);
	for (const char *s = name;; s++) {
		if (glob_at(p, s, end))
			return true;
		if (!*s)
			return false;
	}
}

int suppress_load(struct suppressions *s, const char *path, const char **why)
{
	/* The path comes from the client (MEMPROF_SUPPRESSIONS): see
	 * read_regular_file for why it is not simply fopen'd. */
	size_t len;
	char *text = read_regular_file(path, SUPPRESS_MAX_BYTES, &len, why);
	if (!text)
		return -1;
	unsigned lineno = 0;
	for (char *line = text, *next; line < text + len; line = next) {
		next = memchr(line, '\n', (size_t)(text + len - line));
		next = next ? next + 1 : text + len;
		lineno++;
		char *p = line;
		while (p < next && (*p == ' ' || *p == '\t'))
			p++;
		size_t n = (size_t)(next - p);
		while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' ||
			     p[n - 1] == '\t'))
			n--;
		if (!n || *p == '#')
			continue;
		if (n <= 5 || strncmp(p, "leak:", 5) != 0 || memchr(p, '\0', n)) {
			log_msg("%s:%u: not a leak:PATTERN line, ignored: %.*s", path, lineno,
				(int)(n > 200 ? 200 : n), p);
			continue;
		}
		GROW(s->items, s->cap, s->n + 1);
		s->items[s->n++] = (struct suppression){ xstrndup(p + 5, n - 5), 0, 0 };
	}
	free(text);
	return 0;
}

void suppress_free(struct suppressions *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->items[i].pattern);
	free(s->items);
	*s = (struct suppressions){ 0 };
}
