/*
 * Looking at a program file to say why memprof could not see a process
 * that ran it: statically linked, setuid, 32-bit. The path comes from a
 * client (an exec notice) or the front end, so it is untrusted: only a
 * regular file is ever opened, without blocking, and only its ELF header
 * and program headers (a few KB) are read, every offset checked.
 */
#ifndef MEMPROF_COLLECTOR_INSPECT_H
#define MEMPROF_COLLECTOR_INSPECT_H

#include <stdbool.h>

/* One word: "static" (an ELF file with no program interpreter),
 * "32-bit" (ELFCLASS32), "setuid" (a set-user-id or set-group-id bit for
 * another user or group than ours: the loader ignores LD_PRELOAD),
 * "no-preload" (if no_preload and nothing above applies), "not-found" (no
 * such file), or "unknown". For a "#!" script, the interpreter named on
 * its first line is what is looked at. */
const char *inspect_program(const char *path, bool no_preload);

#endif /* MEMPROF_COLLECTOR_INSPECT_H */
