/*
 * The kernel's vDSO as a file the symbolizer and unwinder can open. Every
 * process on this kernel maps the same vDSO image, so the collector's own
 * copy (found through AT_SYSINFO_EHDR) stands in for the profiled
 * processes', when the build ids agree.
 */
#ifndef MEMPROF_COLLECTOR_VDSO_H
#define MEMPROF_COLLECTOR_VDSO_H

#include <stddef.h>
#include <stdint.h>

/* The path of a file holding the vDSO whose build id is given (any, when
 * build_id_len is 0), or NULL if this kernel's is another one. The file is
 * written on first use. */
const char *vdso_file(const uint8_t *build_id, size_t build_id_len);
/* Closes the file. */
void vdso_cleanup(void);

#endif /* MEMPROF_COLLECTOR_VDSO_H */
