/*
 * A per-user cache of decompressed separate debug files (debug_cache.c),
 * as a libdwfl find_debuginfo callback.
 */
#ifndef MEMPROF_DEBUG_CACHE_H
#define MEMPROF_DEBUG_CACHE_H

#include <elfutils/libdwfl.h>

/* dwfl_standard_find_debuginfo, except that a debug file with compressed
 * sections is answered with a decompressed copy of it from the cache
 * (written there the first time). */
int debug_cache_find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
			       GElf_Addr base, const char *file_name, const char *debuglink_file,
			       GElf_Word debuglink_crc, char **debuginfo_file_name);

#endif /* MEMPROF_DEBUG_CACHE_H */
