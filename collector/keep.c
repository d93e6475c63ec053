/*
 * Which processes get files: only those that recorded something (a heap
 * or CPU sample, a leak report), unless asked for all (--all,
 * MEMPROF_ALL=1); and of those, only the programs named by --only
 * (MEMPROF_ONLY), if given. The HTTP pages show every process regardless.
 */
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "keep.h"
#include "util.h"

void keep_from_env(void)
{
	const char *all = getenv("MEMPROF_ALL");
	if (all && *all) {
		if (strcmp(all, "1") == 0 || strcmp(all, "0") == 0)
			cfg.all = all[0] == '1';
		else
			log_msg("MEMPROF_ALL=%s is not 0 or 1; using 0", all);
	}
	const char *only = getenv("MEMPROF_ONLY");
	if (only && *only)
		cfg.only = only;
}

/* name is one of the comma-separated names in list. */
static bool listed(const char *list, const char *name)
{
	size_t n = strlen(name);
	for (const char *s = list; *s;) {
		size_t len = strcspn(s, ",");
		if (len == n && memcmp(s, name, n) == 0)
			return true;
		s += len;
		if (*s == ',')
			s++;
	}
	return false;
}

bool keep_files(const struct proc *p)
{
	if (cfg.only && !listed(cfg.only, p->name))
		return false;
	return cfg.all || p->samples || p->cpu_samples || p->leak_profile || p->nleaks;
}
