/*
 * unit_symbolize.c: checks collector/symbolize.c on addresses in this very
 * program (built -g -O1), in the C++ fixture library (tests/c/fixture_cxx.cpp
 * built -g -O2, dlopened), in copies of it without debug info, in libc, and
 * in files that are missing, not ELF or of another build.
 * Usage: build/unit_symbolize [fixture.so], by default libfixture_cxx.so in
 * the directory of the program itself.
 */
#include "symbolize.h"
#include "test.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINES 8

/* Where an address lives in this process, found with dl_iterate_phdr. */
struct object {
	uintptr_t addr;
	bool found;
	uintptr_t bias;
	char path[PATH_MAX];
	uint8_t build_id[64];
	size_t build_id_len;
};

static void read_build_id(const struct dl_phdr_info *info, const ElfW(Phdr) *ph,
			  struct object *obj)
{
	const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
	const unsigned char *end = p + ph->p_memsz;

	while (p + sizeof(ElfW(Nhdr)) <= end) {
		const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
		const unsigned char *name = p + sizeof(*nh);
		const unsigned char *desc = name + ((nh->n_namesz + 3) & ~3U);

		if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
		    memcmp(name, "GNU", 4) == 0 && nh->n_descsz <= sizeof(obj->build_id)) {
			memcpy(obj->build_id, desc, nh->n_descsz);
			obj->build_id_len = nh->n_descsz;
			return;
		}
		p = desc + ((nh->n_descsz + 3) & ~3U);
	}
}

static int find_object_cb(struct dl_phdr_info *info, size_t size, void *data)
{
	struct object *obj = data;
	bool inside = false;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && obj->addr >= start && obj->addr < start + ph->p_memsz)
			inside = true;
	}
	if (!inside)
		return 0;
	obj->found = true;
	obj->bias = info->dlpi_addr;
	/* The main program has an empty name. */
	if (!info->dlpi_name[0] || !realpath(info->dlpi_name, obj->path))
		snprintf(obj->path, sizeof(obj->path), "%s",
			 info->dlpi_name[0] ? info->dlpi_name : "/proc/self/exe");
	for (int i = 0; i < info->dlpi_phnum; i++)
		if (info->dlpi_phdr[i].p_type == PT_NOTE && !obj->build_id_len)
			read_build_id(info, &info->dlpi_phdr[i], obj);
	return 1;
}

static struct object find_object(uintptr_t addr)
{
	struct object obj = { .addr = addr };

	dl_iterate_phdr(find_object_cb, &obj);
	return obj;
}

/* Symbolizes a runtime address the way the collector does, with its build id. */
static int lookup(uintptr_t addr, struct sym_line *out, int max)
{
	struct object obj = find_object(addr);

	if (!CHECK(obj.found))
		return 0;
	return sym_lookup(obj.path, obj.build_id, obj.build_id_len, addr - obj.bias, out, max);
}

/*
 * stderr of the code under test goes to a file between capture_begin() and
 * capture_end(), which returns what was written (NUL-terminated, truncated).
 */
static int capture_saved = -1;
static char capture_path[PATH_MAX];

static bool capture_begin(const char *dir)
{
	int fd;

	snprintf(capture_path, sizeof(capture_path), "%s/stderr.log", dir);
	fflush(stderr);
	capture_saved = dup(2);
	fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (capture_saved < 0 || fd < 0)
		return false;
	dup2(fd, 2);
	close(fd);
	return true;
}

static void capture_end(char *text, size_t size)
{
	ssize_t got;
	int fd;

	fflush(stderr);
	dup2(capture_saved, 2);
	close(capture_saved);
	fd = open(capture_path, O_RDONLY);
	got = fd >= 0 ? read(fd, text, size - 1) : -1;
	text[got > 0 ? got : 0] = '\0';
	if (fd >= 0)
		close(fd);
	unlink(capture_path);
}

static int count_matches(const char *text, const char *needle)
{
	int count = 0;

	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		count++;
	return count;
}

static uintptr_t self_ret_pc;
static int self_ret_line;

static __attribute__((noipa)) void note_return(int line)
{
	self_ret_pc = (uintptr_t)__builtin_return_address(0);
	self_ret_line = line;
}

enum { SELF_TARGET_DECL_LINE = __LINE__ + 1 };
static __attribute__((noipa)) int self_target(int x)
{
	note_return(__LINE__);
	return x + 1;
}

static void test_self(void)
{
	struct sym_line a[MAX_LINES], b[MAX_LINES];
	struct object obj;
	uint8_t id[64];
	size_t id_len;
	int n;

	self_target(1);
	/* A few bytes into the function, as a sampled pc would be. */
	n = lookup((uintptr_t)&self_target + 4, a, MAX_LINES);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(a[0].function, "self_target");
	CHECK_STR_EQ(a[0].system_name, "self_target");
	CHECK_STR_ENDS_WITH(a[0].file, "tests/c/unit_symbolize.c");
	CHECK_INT_EQ(a[0].start_line, SELF_TARGET_DECL_LINE);
	CHECK(a[0].line >= SELF_TARGET_DECL_LINE && a[0].line <= self_ret_line + 1);

	/* A return address minus one lies on the line of the call. */
	n = lookup(self_ret_pc - 1, a, MAX_LINES);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(a[0].function, "self_target");
	CHECK_INT_EQ(a[0].line, self_ret_line);

	/* Cached: the very same strings come back. */
	n = lookup(self_ret_pc - 1, b, MAX_LINES);
	CHECK_INT_EQ(n, 1);
	CHECK(a[0].function == b[0].function && a[0].file == b[0].file);

	obj = find_object((uintptr_t)&self_target);
	id_len = sym_file_build_id("/proc/self/exe", id, sizeof(id));
	CHECK(obj.build_id_len > 0);
	CHECK_INT_EQ(id_len, obj.build_id_len);
	CHECK(id_len == obj.build_id_len && memcmp(id, obj.build_id, id_len) == 0);
	CHECK_INT_EQ(sym_file_build_id("/proc/self/exe", id, 4), 0);
	CHECK_INT_EQ(sym_file_build_id("/nonexistent/nosuch.so", id, sizeof(id)), 0);
}

struct fixture {
	uintptr_t (*pc)(const char *name);
	int (*line)(const char *name);
	char path[PATH_MAX];
};

static void test_fixture_names(const struct fixture *fx)
{
	struct sym_line l[MAX_LINES];
	int n;

	n = lookup(fx->pc("method") - 1, l, MAX_LINES);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(l[0].function, "ns::Class::method");
	CHECK_STR_EQ(l[0].system_name, "_ZN2ns5Class6methodEi");
	CHECK_STR_ENDS_WITH(l[0].file, "tests/c/fixture_cxx.cpp");
	CHECK_INT_EQ(l[0].line, fx->line("method"));
	CHECK_INT_EQ(l[0].start_line, fx->line("method_decl"));

	n = lookup(fx->pc("template") - 1, l, MAX_LINES);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(l[0].function, "ns::twice<int>");
	CHECK_STR_EQ(l[0].system_name, "_ZN2ns5twiceIiEET_S1_");
	CHECK_STR_ENDS_WITH(l[0].file, "fixture_cxx.cpp");
	CHECK_INT_EQ(l[0].line, fx->line("template"));
	CHECK_INT_EQ(l[0].start_line, fx->line("template_decl"));

	/* No DW_AT_linkage_name for it: the ELF symbol at the same start gives it. */
	n = lookup(fx->pc("anon") - 1, l, MAX_LINES);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(l[0].function, "(anonymous namespace)::helper");
	CHECK_STR_EQ(l[0].system_name, "_ZN12_GLOBAL__N_16helperEi");
	CHECK_INT_EQ(l[0].line, fx->line("anon"));
}

static void test_fixture_inline(const struct fixture *fx)
{
	struct sym_line l[MAX_LINES];
	int n;

	/* ns::inner is static: its qualified name comes from its DWARF scopes. */
	n = lookup(fx->pc("inner") - 1, l, MAX_LINES);
	CHECK_INT_EQ(n, 2);
	CHECK_STR_EQ(l[0].function, "ns::inner");
	CHECK_STR_ENDS_WITH(l[0].file, "fixture_cxx.cpp");
	CHECK_INT_EQ(l[0].line, fx->line("inner"));
	CHECK(l[0].start_line > 0 && l[0].start_line < l[0].line);
	if (n < 2)
		return;
	CHECK_STR_EQ(l[1].function, "ns::outer");
	CHECK_STR_EQ(l[1].system_name, "_ZN2ns5outerEi");
	CHECK_STR_ENDS_WITH(l[1].file, "fixture_cxx.cpp");
	CHECK_INT_EQ(l[1].line, fx->line("outer_call"));
	CHECK(l[1].start_line > l[0].line && l[1].start_line < l[1].line);

	/* Too little room: the physical function wins. */
	n = lookup(fx->pc("inner") - 1, l, 1);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(l[0].function, "ns::outer");
}

static void test_fixture_fallbacks(const struct fixture *fx, const char *dir)
{
	struct object obj = find_object(fx->pc("method"));
	uint8_t wrong[20];
	struct sym_line l[MAX_LINES];
	uint64_t vaddr = fx->pc("method") - 1 - obj.bias;
	char want[64], text[4096];
	int n;

	/* The file on disk is not the one loaded: nothing from it is trusted. */
	memset(wrong, 0xab, sizeof(wrong));
	if (!CHECK(capture_begin(dir)))
		return;
	n = sym_lookup(obj.path, wrong, sizeof(wrong), vaddr, l, MAX_LINES);
	sym_lookup(obj.path, wrong, sizeof(wrong), vaddr + 1, l + 1, MAX_LINES - 1);
	capture_end(text, sizeof(text));
	CHECK_INT_EQ(count_matches(text, "libfixture_cxx.so"), 1);
	CHECK(strstr(text, "build id") != NULL);
	snprintf(want, sizeof(want), "libfixture_cxx.so+0x%" PRIx64, vaddr);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(l[0].function, want);
	CHECK_STR_EQ(l[0].system_name, "");
	CHECK_STR_EQ(l[0].file, "");
	CHECK_INT_EQ(l[0].line, 0);

	/* Without a build id the file is trusted as it is. */
	n = sym_lookup(obj.path, NULL, 0, vaddr, l, MAX_LINES);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(l[0].function, "ns::Class::method");

	/* Beyond every segment. */
	n = sym_lookup(obj.path, obj.build_id, obj.build_id_len, 0x7fff0000, l, MAX_LINES);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(l[0].function, "libfixture_cxx.so+0x7fff0000");
}

/* Copies of the fixture without DWARF: names come from the ELF symbol tables. */
static void test_stripped(const struct fixture *fx, const char *dir)
{
	struct object obj = find_object(fx->pc("method"));
	struct sym_line l[MAX_LINES];
	char cmd[3 * PATH_MAX], copy[PATH_MAX];
	int n;

	snprintf(copy, sizeof(copy), "%s/libnodebug.so", dir);
	snprintf(cmd, sizeof(cmd), "objcopy --strip-debug '%s' '%s'", fx->path, copy);
	if (system(cmd) != 0) {
		fprintf(stderr, "note: objcopy failed, stripped-file checks skipped\n");
		return;
	}
	n = sym_lookup(copy, obj.build_id, obj.build_id_len,
		       fx->pc("method") - 1 - obj.bias, l, MAX_LINES);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(l[0].function, "ns::Class::method");
	CHECK_STR_EQ(l[0].system_name, "_ZN2ns5Class6methodEi");
	CHECK_STR_EQ(l[0].file, "");
	CHECK_INT_EQ(l[0].line, 0);
	/* Inlined frames need DWARF: only the physical function is left. */
	n = sym_lookup(copy, obj.build_id, obj.build_id_len,
		       fx->pc("inner") - 1 - obj.bias, l, MAX_LINES);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(l[0].function, "ns::outer");
	n = sym_lookup(copy, obj.build_id, obj.build_id_len,
		       fx->pc("anon") - 1 - obj.bias, l, MAX_LINES);
	CHECK_STR_EQ(l[0].function, "(anonymous namespace)::helper");
	unlink(copy);

	/* Only .dynsym left: exported functions are still named. */
	snprintf(copy, sizeof(copy), "%s/libstripped.so", dir);
	snprintf(cmd, sizeof(cmd), "objcopy --strip-all '%s' '%s'", fx->path, copy);
	if (system(cmd) != 0)
		return;
	n = sym_lookup(copy, obj.build_id, obj.build_id_len,
		       fx->pc("method") - 1 - obj.bias, l, MAX_LINES);
	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(l[0].function, "ns::Class::method");
	unlink(copy);
}

static void test_fixture(const char *path, const char *dir)
{
	struct fixture fx;
	int (*run)(void);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

	if (!CHECK(h != NULL)) {
		fprintf(stderr, "    %s\n", dlerror());
		return;
	}
	run = (int (*)(void))dlsym(h, "fixture_run");
	fx.pc = (uintptr_t (*)(const char *))dlsym(h, "fixture_pc");
	fx.line = (int (*)(const char *))dlsym(h, "fixture_line");
	if (!CHECK(run && fx.pc && fx.line))
		return;
	run();
	if (!CHECK(fx.pc("method") && fx.pc("template") && fx.pc("inner") && fx.pc("anon")))
		return;
	snprintf(fx.path, sizeof(fx.path), "%s", find_object(fx.pc("method")).path);
	test_fixture_names(&fx);
	test_fixture_inline(&fx);
	test_fixture_fallbacks(&fx, dir);
	test_stripped(&fx, dir);
	dlclose(h);
}

/* libc has no DWARF of its own; with libc6-dbg installed it is found by build id. */
static void test_libc(void)
{
	/* libc's own qsort: under ASan (make asan) &qsort is its interceptor. */
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	uintptr_t qsort_pc = (uintptr_t)(libc ? dlsym(libc, "qsort") : NULL);
	if (!qsort_pc)
		qsort_pc = (uintptr_t)&qsort;
	if (libc)
		dlclose(libc);
	struct object obj = find_object(qsort_pc);
	struct sym_line l[MAX_LINES];
	char debug[PATH_MAX];
	size_t len;
	int n;

	n = lookup(qsort_pc, l, MAX_LINES);
	CHECK(n >= 1);
	CHECK_STR_EQ(l[n - 1].function, "qsort");
	len = snprintf(debug, sizeof(debug), "/usr/lib/debug/.build-id/%02x/", obj.build_id[0]);
	for (size_t i = 1; i < obj.build_id_len && len + 3 < sizeof(debug); i++)
		len += snprintf(debug + len, sizeof(debug) - len, "%02x", obj.build_id[i]);
	snprintf(debug + len, sizeof(debug) - len, ".debug");
	if (obj.build_id_len && access(debug, R_OK) == 0) {
		CHECK(l[0].file[0] != '\0');
		CHECK(l[0].line > 0);
	} else {
		fprintf(stderr, "note: no %s, libc line checks skipped\n", debug);
	}
}

/* Unusable files: a fallback name each time, one stderr line per file. */
static void test_bad_files(const char *dir)
{
	struct sym_line l[MAX_LINES];
	char junk[PATH_MAX], text[4096];
	uint8_t id[20] = { 1, 2, 3 };
	FILE *f;
	int n;

	snprintf(junk, sizeof(junk), "%s/junk.so", dir);
	f = fopen(junk, "w");
	if (!CHECK(f != NULL))
		return;
	fputs("not an ELF file\n", f);
	fclose(f);

	if (!CHECK(capture_begin(dir)))
		return;
	n = sym_lookup("/nonexistent/dir/nosuch.so", NULL, 0, 0x1234, l, MAX_LINES);
	sym_lookup("/nonexistent/dir/nosuch.so", NULL, 0, 0x1234, l, MAX_LINES);
	sym_lookup("/nonexistent/dir/nosuch.so", NULL, 0, 0x99, l + 1, MAX_LINES - 1);
	sym_lookup("/nonexistent/dir/nosuch.so", id, sizeof(id), 0x99, l + 2, MAX_LINES - 2);
	sym_lookup(junk, NULL, 0, 0x10, l + 3, MAX_LINES - 3);
	sym_lookup(junk, NULL, 0, 0x20, l + 3, MAX_LINES - 3);
	sym_lookup(dir, NULL, 0, 0x10, l + 4, MAX_LINES - 4);
	sym_lookup(NULL, NULL, 0, 0x10, l + 5, MAX_LINES - 5);
	sym_lookup("/dev/null", NULL, 0, 0x10, l + 6, MAX_LINES - 6);
	sym_lookup("[vdso]", NULL, 0, 0x10, l + 7, MAX_LINES - 7);
	capture_end(text, sizeof(text));

	CHECK_INT_EQ(n, 1);
	CHECK_STR_EQ(l[0].function, "nosuch.so+0x1234");
	CHECK_STR_EQ(l[0].system_name, "");
	CHECK_STR_EQ(l[0].file, "");
	CHECK_INT_EQ(l[0].line, 0);
	CHECK_INT_EQ(l[0].start_line, 0);
	CHECK_STR_EQ(l[1].function, "nosuch.so+0x99");
	CHECK_STR_EQ(l[2].function, "nosuch.so+0x99");
	CHECK_STR_EQ(l[3].function, "junk.so+0x20");
	CHECK(l[4].function && l[4].function[0]);
	CHECK(l[5].function && l[5].function[0]);
	CHECK_STR_EQ(l[6].function, "null+0x10");
	CHECK_STR_EQ(l[7].function, "[vdso]+0x10");
	CHECK_INT_EQ(sym_lookup("x", NULL, 0, 1, l, 0), 0);
	CHECK_INT_EQ(count_matches(text, "nosuch.so"), 1);
	CHECK_INT_EQ(count_matches(text, "junk.so"), 1);
	CHECK_INT_EQ(count_matches(text, "/dev/null"), 1);
	/* Pseudo-paths from /proc/pid/maps are not files: no message at all. */
	CHECK_INT_EQ(count_matches(text, "[vdso]"), 0);
	CHECK_INT_EQ(count_matches(text, "\n"), 4);
	unlink(junk);
}

int main(int argc, char **argv)
{
	char fixture[PATH_MAX], dir[] = "/tmp/unit_symbolize.XXXXXX";
	ssize_t len;

	/* By default the fixture sits next to this program: build/ or build/tests/. */
	if (argc > 1) {
		snprintf(fixture, sizeof(fixture), "%s", argv[1]);
	} else {
		len = readlink("/proc/self/exe", fixture, sizeof(fixture) - 1);
		fixture[len > 0 ? len : 0] = '\0';
		if (strrchr(fixture, '/'))
			strrchr(fixture, '/')[1] = '\0';
		strncat(fixture, "libfixture_cxx.so", sizeof(fixture) - strlen(fixture) - 1);
	}

	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	test_self();
	test_fixture(fixture, dir);
	test_libc();
	test_bad_files(dir);
	sym_shutdown();
	/* Usable again after shutdown. */
	test_self();
	sym_shutdown();
	rmdir(dir);
	return test_summary("unit_symbolize");
}
