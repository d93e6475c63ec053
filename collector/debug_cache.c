/*
 * Separate debug files with compressed sections (Debian's libc6-dbg and
 * -dbgsym packages) cost every collector that opens one the inflation of
 * all of its DWARF: libdw decompresses each section whole when it opens the
 * file. For libc that is ~40 ms of CPU and ~10 MB of private memory, in
 * every `memprof run`. So the first collector to need such a file writes a
 * decompressed copy into a per-user cache, named by build ID; the next
 * ones map that copy, and the kernel's page cache shares it between them.
 *
 * The cache directory is $MEMPROF_CACHE_DIR, else $XDG_CACHE_HOME/memprof,
 * else ~/.cache/memprof; MEMPROF_CACHE_DIR=off (or empty) turns it off.
 * It must be ours and closed to others (made 0700 when it is made here),
 * and a file in it is used only if it is a regular file of ours that
 * others cannot write, whose build ID is the one asked for.
 */
#include "debug_cache.h"
#include "util.h"

#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A copy larger than this is not worth the disk: decompress in memory. */
#define MAX_COPY_BYTES (1ULL << 30)

static char cache_dir[PATH_MAX];
static int cache_state; /* 0: not looked at yet, 1: usable, -1: off */

/* mkdir -m 0700 PATH unless it exists; true if PATH is then a directory
 * of ours that nobody else can write into. */
static bool own_dir(const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return false;
	struct stat st;
	return lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == getuid() &&
	       !(st.st_mode & 022);
}

static bool pick_dir(void)
{
	const char *env = getenv("MEMPROF_CACHE_DIR");
	if (env && (!env[0] || strcmp(env, "off") == 0))
		return false;
	int n;
	if (env) {
		n = snprintf(cache_dir, sizeof(cache_dir), "%s", env);
	} else {
		const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
		char parent[PATH_MAX];
		if (xdg && xdg[0] == '/')
			n = snprintf(parent, sizeof(parent), "%s", xdg);
		else if (home && home[0] == '/')
			n = snprintf(parent, sizeof(parent), "%s/.cache", home);
		else
			return false;
		if (n < 0 || (size_t)n >= sizeof(parent) || !own_dir(parent))
			return false;
		n = snprintf(cache_dir, sizeof(cache_dir), "%s/memprof", parent);
	}
	if (n < 0 || (size_t)n >= sizeof(cache_dir) - 64)
		return false;
	if (!own_dir(cache_dir)) {
		log_msg("not caching decompressed debug files in %s: it must be a directory of "
			"this user's that others cannot write to",
			cache_dir);
		return false;
	}
	return true;
}

static bool cache_on(void)
{
	if (cache_state == 0)
		cache_state = pick_dir() ? 1 : -1;
	return cache_state > 0;
}

/* Whether the ELF file on fd has a compressed section. */
static bool has_compressed(int fd)
{
	Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!e)
		return false;
	bool found = false;
	for (Elf_Scn *s = NULL; !found && (s = elf_nextscn(e, s));) {
		GElf_Shdr sh;
		found = gelf_getshdr(s, &sh) && (sh.sh_flags & SHF_COMPRESSED);
	}
	elf_end(e);
	return found;
}

/* fd, if it is a file of ours others cannot write to, holding an ELF file
 * whose build ID is id; else closes fd and returns -1. */
static int check_copy(int fd, const uint8_t *id, size_t id_len)
{
	struct stat st;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() ||
	    (st.st_mode & 022) || (uint64_t)st.st_size > MAX_COPY_BYTES) {
		close(fd);
		return -1;
	}
	Elf *e = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	const void *bits = NULL;
	ssize_t n = e ? dwelf_elf_gnu_build_id(e, &bits) : -1;
	bool same = n > 0 && (size_t)n == id_len && memcmp(bits, id, id_len) == 0;
	if (e)
		elf_end(e);
	if (!same) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Writes the ELF file on fd to out with every compressed section
 * decompressed; 0 or -1. Section order, headers and names stay as they
 * are, so indices (links, the section name table) stay valid. */
static int write_decompressed(int fd, int out)
{
	int rc = -1;
	Elf *in = elf_begin(fd, ELF_C_READ, NULL);
	Elf *o = elf_begin(out, ELF_C_WRITE, NULL);
	GElf_Ehdr eh;
	size_t phnum, shstrndx;
	if (!in || !o || !gelf_getehdr(in, &eh) || elf_getphdrnum(in, &phnum) != 0 ||
	    elf_getshdrstrndx(in, &shstrndx) != 0 || shstrndx >= SHN_LORESERVE ||
	    !gelf_newehdr(o, gelf_getclass(in)))
		goto out;
	if (phnum) {
		if (!gelf_newphdr(o, phnum))
			goto out;
		for (size_t i = 0; i < phnum; i++) {
			GElf_Phdr ph;
			if (!gelf_getphdr(in, (int)i, &ph) || !gelf_update_phdr(o, (int)i, &ph))
				goto out;
		}
	}
	uint64_t total = 0;
	for (Elf_Scn *s = NULL; (s = elf_nextscn(in, s));) {
		GElf_Shdr sh;
		if (!gelf_getshdr(s, &sh))
			goto out;
		if ((sh.sh_flags & SHF_COMPRESSED) &&
		    (elf_compress(s, 0, 0) < 0 || !gelf_getshdr(s, &sh)))
			goto out;
		if (sh.sh_type != SHT_NOBITS && (total += sh.sh_size) > MAX_COPY_BYTES)
			goto out;
		Elf_Scn *os = elf_newscn(o);
		if (!os)
			goto out;
		for (Elf_Data *d = NULL; (d = elf_getdata(s, d));) {
			Elf_Data *od = elf_newdata(os);
			if (!od)
				goto out;
			*od = *d;
		}
		if (!gelf_update_shdr(os, &sh))
			goto out;
	}
	eh.e_shstrndx = (GElf_Half)shstrndx;
	if (!gelf_update_ehdr(o, &eh) || elf_update(o, ELF_C_WRITE) < 0)
		goto out;
	rc = 0;
out:
	if (o)
		elf_end(o);
	if (in)
		elf_end(in);
	return rc;
}

/* Writes a decompressed copy of the debug file on fd at path, if it has
 * compressed sections: for the next collector that needs it. */
static void make_copy(int fd, const char *path)
{
	if (!has_compressed(fd))
		return;
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid()) >= (int)sizeof(tmp))
		return;
	int out = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (out < 0)
		return;
	bool ok = write_decompressed(fd, out) == 0 && fsync(out) == 0 && rename(tmp, path) == 0;
	close(out);
	if (ok)
		log_debug("cached a decompressed copy of a debug file as %s", path);
	else
		unlink(tmp);
}

/*
 * The cached copy is looked for first, by the module's build ID: libdw's
 * standard search, once it has found a debug file by build ID, keeps the
 * ELF handle it opened to check it, and would use that (compressed) one
 * whatever this callback returned. Without a copy, the standard search
 * answers, and a copy is made for next time.
 */
int debug_cache_find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
			       GElf_Addr base, const char *file_name, const char *debuglink_file,
			       GElf_Word debuglink_crc, char **debuginfo_file_name)
{
	const unsigned char *id;
	GElf_Addr id_vaddr;
	int id_len = cache_on() ? dwfl_module_build_id(mod, &id, &id_vaddr) : -1;
	char path[PATH_MAX];
	if (id_len > 0 && id_len <= 64) {
		int n = snprintf(path, sizeof(path), "%s/", cache_dir);
		for (int i = 0; i < id_len; i++)
			n += snprintf(path + n, sizeof(path) - (size_t)n, "%02x", id[i]);
		snprintf(path + n, sizeof(path) - (size_t)n, ".debug");
		int c = check_copy(open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), id,
				   (size_t)id_len);
		char *name = c >= 0 ? strdup(path) : NULL;
		if (name) {
			*debuginfo_file_name = name;
			return c;
		}
		if (c >= 0)
			close(c);
	}
	int fd = dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name,
					      debuglink_file, debuglink_crc, debuginfo_file_name);
	if (fd >= 0 && id_len > 0 && id_len <= 64)
		make_copy(fd, path);
	return fd;
}
