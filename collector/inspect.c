/*
 * Why a program was not seen, from its file (see inspect.h). Reads at most
 * HEAD_BYTES from the start and the program header table, and never follows
 * a script's interpreter more than one step.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "inspect.h"

#define HEAD_BYTES 4096
#define MAX_PHNUM 256 /* more program headers than any real program has */

enum kind { K_NOT_FOUND, K_UNKNOWN, K_DYNAMIC, K_STATIC, K_32BIT, K_SCRIPT };

struct file_info {
	enum kind kind;
	bool setuid;          /* the loader would run it in secure mode */
	char interp[256];     /* K_SCRIPT: the interpreter's path */
};

static ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* A 64-bit ELF file: static unless a PT_INTERP is among its program
 * headers. Every size and offset is checked against what was read. */
static enum kind elf64_kind(int fd, const unsigned char *head, size_t n)
{
	Elf64_Ehdr eh;
	if (n < sizeof(eh))
		return K_UNKNOWN;
	memcpy(&eh, head, sizeof(eh));
	if ((eh.e_type != ET_EXEC && eh.e_type != ET_DYN) || eh.e_phentsize != sizeof(Elf64_Phdr) ||
	    eh.e_phnum == 0 || eh.e_phnum > MAX_PHNUM || eh.e_phoff > (1U << 30))
		return K_UNKNOWN;
	Elf64_Phdr ph[MAX_PHNUM];
	size_t bytes = (size_t)eh.e_phnum * sizeof(Elf64_Phdr);
	if (eh.e_phoff + bytes <= n)
		memcpy(ph, head + eh.e_phoff, bytes);
	else if (pread_full(fd, ph, bytes, (off_t)eh.e_phoff) != (ssize_t)bytes)
		return K_UNKNOWN;
	for (unsigned i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_INTERP)
			return K_DYNAMIC;
	return K_STATIC;
}

/* "#!INTERP [ARG]": the interpreter's path, if the first line is whole. */
static enum kind script_kind(const unsigned char *head, size_t n, char *interp, size_t size)
{
	size_t i = 2;
	while (i < n && (head[i] == ' ' || head[i] == '\t'))
		i++;
	size_t start = i;
	while (i < n && head[i] != ' ' && head[i] != '\t' && head[i] != '\n' && head[i] != '\0')
		i++;
	if (i == n || i == start || i - start >= size)
		return K_UNKNOWN;
	memcpy(interp, head + start, i - start);
	interp[i - start] = '\0';
	return K_SCRIPT;
}

static bool secure_mode(const struct stat *st)
{
	return ((st->st_mode & S_ISUID) && st->st_uid != getuid()) ||
	       ((st->st_mode & S_ISGID) && st->st_gid != getgid());
}

static void look_at(const char *path, struct file_info *fi)
{
	fi->kind = K_UNKNOWN;
	fi->setuid = false;
	struct stat st, fst;
	/* stat first: opening a device or a FIFO can have effects of its own. */
	if (!path[0] || stat(path, &st) != 0) {
		if (!path[0] || errno == ENOENT || errno == ENOTDIR)
			fi->kind = K_NOT_FOUND;
		return;
	}
	if (!S_ISREG(st.st_mode))
		return;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return;
	/* The same regular file we looked at, not one swapped in since. */
	if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode) || fst.st_dev != st.st_dev ||
	    fst.st_ino != st.st_ino)
		goto out;
	fi->setuid = secure_mode(&fst);
	unsigned char head[HEAD_BYTES];
	ssize_t n = pread_full(fd, head, sizeof(head), 0);
	if (n >= 2 && head[0] == '#' && head[1] == '!')
		fi->kind = script_kind(head, (size_t)n, fi->interp, sizeof(fi->interp));
	else if (n >= EI_NIDENT && memcmp(head, ELFMAG, SELFMAG) == 0 && head[EI_CLASS] == ELFCLASS32)
		fi->kind = K_32BIT;
	else if (n >= EI_NIDENT && memcmp(head, ELFMAG, SELFMAG) == 0 && head[EI_CLASS] == ELFCLASS64)
		fi->kind = elf64_kind(fd, head, (size_t)n);
out:
	close(fd);
}

const char *inspect_program(const char *path, bool no_preload)
{
	struct file_info fi;
	look_at(path, &fi);
	/* The kernel ignores a script's set-id bits; its interpreter is what
	 * the loader runs. One step only: an interpreter that is itself a
	 * script is left unexplained. */
	if (fi.kind == K_SCRIPT) {
		if (fi.interp[0] != '/')
			return no_preload ? "no-preload" : "unknown";
		char interp[sizeof(fi.interp)];
		memcpy(interp, fi.interp, sizeof(interp));
		look_at(interp, &fi);
		if (fi.kind == K_SCRIPT)
			fi.kind = K_UNKNOWN;
	}
	switch (fi.kind) {
	case K_NOT_FOUND: return "not-found";
	case K_STATIC: return "static";
	case K_32BIT: return "32-bit";
	default: break;
	}
	if (fi.setuid)
		return "setuid";
	return no_preload ? "no-preload" : "unknown";
}
