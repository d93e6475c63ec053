/*
 * symbolize: turn (ELF file, link-time address) into pprof Lines, using libdw
 * for DWARF (including inlined frames and separate debug files) and the ELF
 * symbol table as a fallback. Owns the opened files and every string it hands
 * out; knows nothing about processes, mappings or load biases (the caller
 * subtracts the bias) nor about pprof encoding.
 */
#ifndef MEMPROF_SYMBOLIZE_H
#define MEMPROF_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sym_line {
	const char *function;    /* demangled, WITHOUT parameter list (pprof's default "simplified" style, e.g. "ns::Class::method", templates kept); never NULL, never "" */
	const char *system_name; /* the symbol as it appears in the binary (mangled for C++); never NULL, "" when unknown */
	const char *file;        /* source file path from DWARF, "" when unknown */
	int64_t line;            /* source line, 0 when unknown */
	int64_t start_line;      /* declaration line of the function, 0 when unknown */
	uint64_t entry;          /* where the function the code physically belongs to
				  * starts (for an inlined frame too, as Go's
				  * runtime.Frame.Entry), as a file vaddr; 0 when unknown */
};

/*
 * Look up file virtual address `vaddr` (the address as linked in the ELF file at `path`,
 * i.e. runtime address minus load bias) and fill out[0..n): out[0] is the innermost
 * (inlined) frame, out[n-1] the function the code physically belongs to.
 * build_id/build_id_len (may be NULL/0) is compared with the file's NT_GNU_BUILD_ID; when
 * they differ (the file was replaced since the process loaded it) or the file cannot be
 * opened, no symbol from the file is trusted.
 * Always returns n >= 1 (n <= max): when nothing better is known, one line whose function
 * is "<basename of path>+0x<vaddr in hex>" so that no pprof location ever lacks a name.
 * Strings are owned by the symbolizer and stay valid until sym_shutdown().
 *
 * Contract details:
 * - vaddr is looked up exactly as given. For a return address taken from a
 *   stack, pass the address minus 1 so that it falls inside the call
 *   instruction rather than on the next line (or in the next function).
 * - When the inline chain is longer than max, the innermost max-1 frames and
 *   the physical function (last) are returned.
 * - Returns 0 without touching out only when out is NULL or max < 1. If memory
 *   runs out, the single line is a static "[unsymbolized]".
 * - Results are cached per (path, build id, vaddr): repeated lookups are O(1)
 *   and return the same string pointers. A file is opened once per (path,
 *   build id), however many processes map it.
 * - Writes to stderr at most one line per path that cannot be used (missing,
 *   not a regular file, not ELF, build id mismatch). Never writes to stdout.
 * - Not thread-safe: the collector calls it from its single thread.
 * - Separate debug files are found through dwfl_standard_find_debuginfo
 *   (/usr/lib/debug/.build-id/, .gnu_debuglink). Note that elfutils also asks
 *   debuginfod when DEBUGINFOD_URLS is set in the environment, which may
 *   download files over the network on first use of each file.
 */
int sym_lookup(const char *path, const uint8_t *build_id, size_t build_id_len,
	       uint64_t vaddr, struct sym_line *out, int max);

/*
 * Read the NT_GNU_BUILD_ID of the ELF file at path into buf; returns its length, 0 if none or on error.
 * Also returns 0 (and writes nothing) when the id is longer than bufsize.
 * Does not use or fill the lookup caches.
 */
size_t sym_file_build_id(const char *path, uint8_t *buf, size_t bufsize);

/*
 * Whether the file at path has DWARF debug information, its own or in a
 * separate debug file found as sym_lookup finds them: 1 yes, 0 no (names
 * come from the ELF symbol tables only: .symtab, else .dynsym, plus the
 * MiniDebugInfo of .gnu_debugdata, which libdw reads where present), -1 if
 * the file cannot be used at all. Loads the debug information if need be.
 */
int sym_debuginfo(const char *path, const uint8_t *build_id, size_t build_id_len);

/*
 * The separate file the DWARF of the file at path is read from (found as
 * sym_lookup finds it: /usr/lib/debug/.build-id/, .gnu_debuglink, or the
 * collector's decompressed copy of one), so that other readers can be sent
 * there; NULL when the file holds its own DWARF, has none, or cannot be
 * used. Loads the debug information if need be. The string stays valid
 * until sym_shutdown().
 */
const char *sym_separate_debug_file(const char *path, const uint8_t *build_id,
				    size_t build_id_len);

/*
 * Warming up. The first lookup in a file loads its debug information, which
 * for a separate debug file with compressed sections (libc6-dbg) takes tens
 * of milliseconds. The collector queues files as soon as a stack points
 * into them (sym_prepare_later) and, when it has nothing else to do, loads
 * them one at a time (sym_prepare_one, true while more are queued), so
 * that the dump at a process's exit does not wait for it.
 */
void sym_prepare_later(const char *path, const uint8_t *build_id, size_t build_id_len);
bool sym_prepare_one(void);
bool sym_preparing(void);

/*
 * Close every opened file and free every cached result and string: all
 * pointers returned by sym_lookup() become invalid. sym_lookup() may be
 * called again afterwards and starts from empty caches.
 */
void sym_shutdown(void);

#endif /* MEMPROF_SYMBOLIZE_H */
