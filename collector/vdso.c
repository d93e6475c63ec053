/*
 * The collector's own vDSO written out to a file; see vdso.h. The file is
 * a memfd, named by its /proc/self/fd path: nothing on disk, so a
 * collector that is killed leaves nothing behind in TMPDIR.
 */
#include <elf.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

#include "symbolize.h"
#include "util.h"
#include "vdso.h"

static char path[64];
static int fd = -1;
static bool tried;
static uint8_t id[64];
static size_t id_len;

/* The image's size: up to the end of its section headers or its last
 * loaded byte, whichever is further. */
static size_t image_size(const Elf64_Ehdr *eh)
{
	size_t size = eh->e_shoff + (size_t)eh->e_shnum * eh->e_shentsize;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)((const char *)eh + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_offset + ph[i].p_filesz > size)
			size = ph[i].p_offset + ph[i].p_filesz;
	return size;
}

static void write_out(void)
{
	tried = true;
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)getauxval(AT_SYSINFO_EHDR);
	if (!eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64)
		return;
	size_t size = image_size(eh);
	if (size == 0 || size > (1U << 20))
		return;
	fd = memfd_create("memprof-vdso", MFD_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, eh, size) != (ssize_t)size) {
		vdso_cleanup();
		return;
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	id_len = sym_file_build_id(path, id, sizeof(id));
}

const char *vdso_file(const uint8_t *build_id, size_t build_id_len)
{
	if (!tried)
		write_out();
	if (!path[0])
		return NULL;
	if (build_id_len && (build_id_len != id_len || memcmp(build_id, id, id_len) != 0))
		return NULL;
	return path;
}

void vdso_cleanup(void)
{
	if (fd >= 0)
		close(fd);
	fd = -1;
	path[0] = '\0';
}
