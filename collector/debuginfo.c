/*
 * Which files lack debug information, and the advice on getting it
 * (debuginfo.h). Whether a file has it is the symbolizer's answer.
 */
#include <stdlib.h>
#include <string.h>

#include "debuginfo.h"
#include "symbolize.h"
#include "util.h"

const char debuginfo_advice[] =
	"names there come from the symbol tables only (exported functions where the file is "
	"stripped), and addresses nothing names show as file+0xoffset. To get the rest, "
	"install the debug symbols (on Debian the -dbgsym package of each file's package, "
	"from the debian-debug archive: dpkg -S FILE names the package), or set "
	"DEBUGINFOD_URLS (e.g. https://debuginfod.debian.net) for memprof-collector, which "
	"then fetches them";

unsigned debuginfo_missing(struct proc *p, bool (*used)(size_t i, void *arg), void *arg,
			   struct strbuf *list, struct map *seen)
{
	unsigned n = 0;
	bool *mark = NULL;
	if (!used) {
		mark = xcalloc(p->nmaps ? p->nmaps : 1, sizeof(*mark));
		for (size_t i = 0; i < p->nlocs; i++)
			if (p->locs[i].mapping >= 0)
				mark[p->locs[i].mapping] = true;
	}
	for (size_t i = 0; i < p->nmaps; i++) {
		const struct mapping *m = &p->maps[i];
		if (used ? !used(i, arg) : !mark[i])
			continue;
		/* Real files only: not the vDSO (the collector's copy of it
		 * has no DWARF to get) nor anonymous code. */
		if (m->path[0] != '/' || !m->file)
			continue;
		uint64_t h = hash_bytes(m->path, strlen(m->path)) | 1; /* 0 is no key */
		if (map_find(seen, h, 0))
			continue;
		map_put(seen, h, 0, 1);
		if (sym_debuginfo(m->file, m->build_id, m->build_id_len) != 0)
			continue;
		sb_printf(list, "%s%s", list->len ? ", " : "", m->path);
		n++;
	}
	free(mark);
	return n;
}
