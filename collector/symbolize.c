/*
 * symbolize.c: (ELF file, link-time address) -> pprof Lines for the collector.
 * Owns one Dwfl per opened file, the per-(file, address) result cache and the
 * interned strings handed out in struct sym_line. DWARF parsing and debug file
 * lookup are libdw's; demangling is libiberty's; mapping runtime addresses to
 * files is the caller's.
 */
#include "symbolize.h"
#include "debug_cache.h"
#include "dwarf_index.h"
#include "util.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <inttypes.h>
#include <libiberty/demangle.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYM_MAX_FRAMES 64 /* deepest inline chain kept per address */
#define SYM_MAP_MIN_CAP 64

/*
 * Open-addressing hash table with linear probing, kept at most half full.
 * Entries are only ever removed all at once (sym_shutdown), so there are no
 * tombstones. The full hash is stored so that growing never rehashes keys.
 */
struct sym_slot {
	uint64_t hash;
	void *entry; /* NULL: empty slot */
};

struct sym_map {
	struct sym_slot *slots;
	size_t cap; /* 0 or a power of two */
	size_t count;
};

/* An interned, NUL-terminated string. */
struct sym_str {
	const char *demangled; /* function name when this is a system name; NULL until asked */
	size_t len;
	char s[];
};

/* A function symbol from the ELF symbol tables, in module addresses. */
struct sym_elfsym {
	GElf_Addr start;
	GElf_Addr end;
	const char *name; /* libdw's, valid until dwfl_end */
	int rank;         /* binding preference among aliases: global > weak > local */
};

/* One opened ELF file (with its separate debug file, found by libdw). */
struct sym_obj {
	struct sym_obj *next;
	const char *path; /* interned */
	Dwfl *dwfl;
	Dwfl_Module *mod;
	GElf_Addr bias; /* module address = link-time vaddr + bias */
	uint8_t *build_id;
	size_t build_id_len;
	struct sym_elfsym *syms; /* sorted by start, then rank; built on first use */
	size_t nsyms;
	bool syms_loaded;
	struct dw_index *index; /* its units' functions, as they are looked into */
};

/* A file as callers name it: (path, build id they expect). */
struct sym_file {
	const char *path; /* interned */
	const char *base; /* interned basename, for fallback names */
	uint8_t *build_id;
	size_t build_id_len;
	struct sym_obj *obj; /* NULL: no symbol from this file is trusted */
	bool warned;         /* the one stderr line for this path was printed */
	bool prepared;       /* its debug information is loaded */
	struct sym_file *next_to_prepare;
};

struct sym_result {
	const struct sym_file *file;
	uint64_t vaddr;
	int n;
	struct sym_line lines[];
};

/* A frame while it is being resolved; its strings are libdw's or interned. */
struct sym_frame {
	const char *sys;  /* linkage or ELF symbol name; NULL when unknown */
	const char *func; /* display name when demangling sys cannot give it; else NULL */
	const char *file; /* NULL when unknown */
	int64_t line;
	int64_t start_line;
	Dwarf_Addr entry; /* module address of a C++ function without linkage name, else 0 */
	Dwarf_Addr phys_entry; /* module address where the DW_TAG_subprogram starts, else 0 */
};

struct file_key {
	const char *path;
	const uint8_t *build_id;
	size_t build_id_len;
};

struct result_key {
	const struct sym_file *file;
	uint64_t vaddr;
};

struct str_key {
	const char *s;
	size_t len;
};

/* qualify()'s answers, by DIE: working one out walks the unit from its root. */
struct qual {
	const void *dbg;
	Dwarf_Off off;
	const char *q; /* interned, or NULL: keep the bare name */
};

static struct {
	struct sym_map quals;   /* struct qual */
	struct sym_map strings; /* struct sym_str */
	struct sym_map files;   /* struct sym_file */
	struct sym_map results; /* struct sym_result */
	struct sym_obj *objs;
	struct sym_file *to_prepare; /* sym_prepare_later's queue */
} sym;

/* NULL selects elfutils' default ":.debug:/usr/lib/debug". */
static char *sym_debuginfo_path;

static const Dwfl_Callbacks sym_callbacks = {
	.find_elf = dwfl_build_id_find_elf,
	.find_debuginfo = debug_cache_find_debuginfo,
	.section_address = dwfl_offline_section_address,
	.debuginfo_path = &sym_debuginfo_path,
};

/* Returned only when memory runs out: it needs no allocation. */
static const struct sym_line sym_oom_line = {
	.function = "[unsymbolized]",
	.system_name = "",
	.file = "",
};

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * FNV_PRIME;
	return h;
}

/* splitmix64's finalizer: spreads nearby addresses over the whole table. */
static uint64_t hash_mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static void *map_find(const struct sym_map *m, uint64_t hash,
		      bool (*match)(const void *entry, const void *key),
		      const void *key)
{
	if (m->count == 0)
		return NULL;
	for (size_t i = hash & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		const struct sym_slot *s = &m->slots[i];

		if (!s->entry)
			return NULL;
		if (s->hash == hash && match(s->entry, key))
			return s->entry;
	}
}

static void map_place(struct sym_slot *slots, size_t cap, uint64_t hash, void *entry)
{
	size_t i = hash & (cap - 1);

	while (slots[i].entry)
		i = (i + 1) & (cap - 1);
	slots[i].hash = hash;
	slots[i].entry = entry;
}

static int map_insert(struct sym_map *m, uint64_t hash, void *entry)
{
	if ((m->count + 1) * 2 > m->cap) {
		size_t cap = m->cap ? m->cap * 2 : SYM_MAP_MIN_CAP;
		struct sym_slot *slots = calloc(cap, sizeof(*slots));

		if (!slots)
			return -1;
		for (size_t i = 0; i < m->cap; i++)
			if (m->slots[i].entry)
				map_place(slots, cap, m->slots[i].hash, m->slots[i].entry);
		free(m->slots);
		m->slots = slots;
		m->cap = cap;
	}
	map_place(m->slots, m->cap, hash, entry);
	m->count++;
	return 0;
}

/* Frees every entry with free(3) and empties the map. */
static void map_clear(struct sym_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].entry);
	free(m->slots);
	*m = (struct sym_map){ 0 };
}

static bool str_match(const void *entry, const void *key)
{
	const struct sym_str *e = entry;
	const struct str_key *k = key;

	return e->len == k->len && memcmp(e->s, k->s, k->len) == 0;
}

static struct sym_str *intern_n(const char *s, size_t len)
{
	struct str_key key = { s, len };
	uint64_t hash = hash_bytes(FNV_OFFSET, s, len);
	struct sym_str *e = map_find(&sym.strings, hash, str_match, &key);

	if (e)
		return e;
	e = malloc(sizeof(*e) + len + 1);
	if (!e)
		return NULL;
	e->demangled = NULL;
	e->len = len;
	memcpy(e->s, s, len);
	e->s[len] = '\0';
	if (map_insert(&sym.strings, hash, e) < 0) {
		free(e);
		return NULL;
	}
	return e;
}

static struct sym_str *intern(const char *s)
{
	return intern_n(s, strlen(s));
}

/*
 * pprof's default display drops parameter lists, so demangle without
 * DMGL_PARAMS: "_ZN2ns5Class6methodEi" -> "ns::Class::method". Template
 * arguments and "(anonymous namespace)" are kept; clone suffixes such as
 * ".constprop.0" are dropped. Only names that look mangled are passed to
 * libiberty so that C names stay untouched. DMGL_RUST is tried alone first:
 * combined with DMGL_GNU_V3, libiberty gives up after the Rust attempt. It
 * turns "_R..." and legacy Rust "_ZN...17h<hash>E" into paths without hash.
 */
static bool is_mangled(const char *name)
{
	return name[0] == '_' && (name[1] == 'Z' || name[1] == 'R');
}

static const char *function_name(struct sym_str *sys)
{
	const char *name = sys->s;

	if (sys->demangled)
		return sys->demangled;
	if (is_mangled(name)) {
		char *d = cplus_demangle(name, DMGL_RUST);

		if (!d && name[1] == 'Z')
			d = cplus_demangle(name, DMGL_GNU_V3);
		if (d && d[0]) {
			struct sym_str *e = intern(d);

			if (e)
				name = e->s;
		}
		free(d);
	}
	sys->demangled = name;
	return name;
}

static bool ids_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void warn_once(struct sym_file *file, const char *why)
{
	for (size_t i = 0; i < sym.files.cap; i++) {
		const struct sym_file *f = sym.files.slots[i].entry;

		if (f && f->path == file->path && f->warned)
			return;
	}
	file->warned = true;
	/* Same prefix as the collector's log_msg(), without depending on util.c. */
	fprintf(stderr, "memprof-collector: no symbols from %s: %s\n", file->path, why);
}

static void close_obj(struct sym_obj *obj)
{
	dw_index_free(obj->index);
	dwfl_end(obj->dwfl);
	free(obj->syms);
	free(obj->build_id);
	free(obj);
}

/*
 * Open path as a Dwfl module placed at its link-time addresses. Returns NULL
 * and sets *why when the file is unusable.
 */
static struct sym_obj *open_obj(const char *path, const char **why)
{
	struct sym_obj *obj;
	const unsigned char *bits;
	GElf_Addr bits_vaddr;
	int len;

	/* A client names the path: a FIFO or a device would block or make no
	 * sense. Opened here, checked, and handed to libdw (which owns the
	 * descriptor once it has made the module), so that the file checked
	 * is the file read. */
	int fd = open_regular_file(path, why);
	if (fd < 0)
		return NULL;
	obj = calloc(1, sizeof(*obj));
	if (!obj) {
		*why = strerror(ENOMEM);
		close(fd);
		return NULL;
	}
	obj->path = path;
	obj->dwfl = dwfl_begin(&sym_callbacks);
	if (!obj->dwfl) {
		*why = dwfl_errmsg(-1);
		close(fd);
		goto fail_obj;
	}
	dwfl_report_begin(obj->dwfl);
	/*
	 * base 0 with add_p_vaddr places the first PT_LOAD at its own p_vaddr,
	 * so module addresses are link-time addresses even for prelinked
	 * libraries; ET_EXEC ignores both. The bias read back below covers
	 * anything else.
	 */
	obj->mod = dwfl_report_elf(obj->dwfl, path, path, fd, 0, true);
	if (!obj->mod)
		close(fd); /* still ours: libdw took it only with the module */
	if (!obj->mod || dwfl_report_end(obj->dwfl, NULL, NULL) != 0)
		goto fail_dwfl;
	if (!dwfl_module_getelf(obj->mod, &obj->bias))
		goto fail_dwfl;
	len = dwfl_module_build_id(obj->mod, &bits, &bits_vaddr);
	if (len > 0) {
		obj->build_id = malloc((size_t)len);
		if (!obj->build_id) {
			*why = strerror(ENOMEM);
			goto fail_close;
		}
		memcpy(obj->build_id, bits, (size_t)len);
		obj->build_id_len = (size_t)len;
	}
	return obj;

fail_dwfl:
	*why = dwfl_errmsg(-1);
	if (!*why)
		*why = "not a usable ELF file";
fail_close:
	dwfl_end(obj->dwfl);
fail_obj:
	free(obj);
	return NULL;
}

/* Find or open the object file for a new sym_file; NULL when untrusted. */
static struct sym_obj *obj_for(struct sym_file *file)
{
	struct sym_obj *obj;
	const char *why = NULL;

	/* "[vdso]", "[unknown]", "": pseudo-paths name no file; nothing to warn about. */
	if (file->path[0] == '[' || file->path[0] == '\0')
		return NULL;
	for (obj = sym.objs; obj; obj = obj->next)
		if (obj->path == file->path &&
		    (file->build_id_len == 0 ||
		     ids_equal(obj->build_id, obj->build_id_len, file->build_id, file->build_id_len)))
			return obj;

	/* Not open, or open with another build id: the file may have changed since. */
	obj = open_obj(file->path, &why);
	if (!obj) {
		warn_once(file, why ? why : "cannot open");
		return NULL;
	}
	for (struct sym_obj *o = sym.objs; o; o = o->next) {
		if (o->path == obj->path &&
		    ids_equal(o->build_id, o->build_id_len, obj->build_id, obj->build_id_len)) {
			close_obj(obj);
			obj = o;
			goto check_id;
		}
	}
	/* Kept even on a mismatch: other processes may have loaded this version. */
	obj->next = sym.objs;
	sym.objs = obj;
check_id:
	if (file->build_id_len &&
	    !ids_equal(obj->build_id, obj->build_id_len, file->build_id, file->build_id_len)) {
		warn_once(file, "build id differs from the one loaded (file replaced?)");
		return NULL;
	}
	return obj;
}

static uint64_t file_hash(const struct file_key *k)
{
	return hash_bytes(hash_bytes(FNV_OFFSET, k->path, strlen(k->path) + 1),
			  k->build_id, k->build_id_len);
}

static bool file_match(const void *entry, const void *key)
{
	const struct sym_file *f = entry;
	const struct file_key *k = key;

	return strcmp(f->path, k->path) == 0 &&
	       ids_equal(f->build_id, f->build_id_len, k->build_id, k->build_id_len);
}

static struct sym_file *get_file(const struct file_key *key)
{
	uint64_t hash = file_hash(key);
	struct sym_file *file = map_find(&sym.files, hash, file_match, key);
	struct sym_str *path, *base;
	const char *slash;

	if (file)
		return file;
	path = intern(key->path);
	if (!path)
		return NULL;
	slash = strrchr(path->s, '/');
	base = intern(slash && slash[1] ? slash + 1 : path->s[0] ? path->s : "[unknown]");
	file = calloc(1, sizeof(*file));
	if (!base || !file)
		goto fail_file;
	file->path = path->s;
	file->base = base->s;
	if (key->build_id_len) {
		file->build_id = malloc(key->build_id_len);
		if (!file->build_id)
			goto fail_file;
		memcpy(file->build_id, key->build_id, key->build_id_len);
		file->build_id_len = key->build_id_len;
	}
	file->obj = obj_for(file);
	if (map_insert(&sym.files, hash, file) < 0)
		goto fail_id;
	return file;

fail_id:
	free(file->build_id);
fail_file:
	free(file);
	return NULL;
}

static const char *die_string(Dwarf_Die *die, int name)
{
	Dwarf_Attribute attr;
	/* _integrate follows DW_AT_abstract_origin and DW_AT_specification. */
	const char *s = dwarf_formstring(dwarf_attr_integrate(die, name, &attr));

	return s && s[0] ? s : NULL;
}

static bool is_cplusplus(Dwarf_Die *die)
{
	Dwarf_Die cu;

	if (!dwarf_diecu(die, &cu, NULL, NULL))
		return false;
	switch (dwarf_srclang(&cu)) {
	case DW_LANG_C_plus_plus:
	case DW_LANG_C_plus_plus_03:
	case DW_LANG_C_plus_plus_11:
	case DW_LANG_C_plus_plus_14:
		return true;
	default:
		return false;
	}
}

/*
 * "ns::(anonymous namespace)::Class::name" from the namespaces, classes and
 * functions around the function's declaration. Needed because GCC gives no
 * DW_AT_linkage_name to functions with internal linkage (static, anonymous
 * namespace), whose inlined copies then have no other qualified name.
 * Returns an interned string, or NULL to keep the bare name.
 */
static const char *qualify_walk(Dwarf_Die *die, const char *name);

static bool qual_match(const void *entry, const void *key)
{
	const struct qual *e = entry, *k = key;
	return e->dbg == k->dbg && e->off == k->off;
}

static const char *qualify(Dwarf_Die *die, const char *name)
{
	struct qual key = { dwarf_cu_getdwarf(die->cu), dwarf_dieoffset(die), NULL };
	uint64_t hash = hash_mix((uint64_t)(uintptr_t)key.dbg ^ hash_mix(key.off));
	struct qual *e = map_find(&sym.quals, hash, qual_match, &key);
	if (e)
		return e->q;
	key.q = qualify_walk(die, name);
	e = malloc(sizeof(*e));
	if (e) {
		*e = key;
		if (map_insert(&sym.quals, hash, e) < 0)
			free(e);
	}
	return key.q;
}

static const char *qualify_walk(Dwarf_Die *die, const char *name)
{
	Dwarf_Die decl = *die, ref, *scopes = NULL;
	Dwarf_Attribute attr;
	char buf[1024];
	size_t len = 0;
	int nscopes;
	struct sym_str *q = NULL;

	/* The definition may sit at CU level; its declaration has the real parents. */
	for (int i = 0; i < 8; i++) {
		if (!dwarf_formref_die(dwarf_attr(&decl, DW_AT_abstract_origin, &attr), &ref) &&
		    !dwarf_formref_die(dwarf_attr(&decl, DW_AT_specification, &attr), &ref))
			break;
		decl = ref;
	}
	nscopes = dwarf_getscopes_die(&decl, &scopes);
	/* scopes[0] is the function itself, scopes[nscopes - 1] its CU. */
	for (int i = nscopes - 2; i >= 1; i--) {
		const char *part = dwarf_diename(&scopes[i]), *linkage;
		struct sym_str *sys;
		int n;

		switch (dwarf_tag(&scopes[i])) {
		case DW_TAG_namespace:
			if (!part)
				part = "(anonymous namespace)";
			break;
		case DW_TAG_class_type:
		case DW_TAG_structure_type:
		case DW_TAG_union_type:
			if (!part)
				part = "(anonymous class)";
			break;
		case DW_TAG_subprogram:
			/*
			 * A local class, e.g. a lambda's closure type. The function's
			 * own definition often sits at CU level, outside its
			 * namespaces: its demangled linkage name says it all.
			 */
			if ((linkage = die_string(&scopes[i], DW_AT_linkage_name)) &&
			    is_mangled(linkage) && (sys = intern(linkage))) {
				part = function_name(sys);
				len = 0;
			}
			if (!part)
				continue;
			break;
		default:
			continue;
		}
		n = snprintf(buf + len, sizeof(buf) - len, "%s::", part);
		if (n < 0 || (size_t)n >= sizeof(buf) - len)
			goto out;
		len += (size_t)n;
	}
	if (len > 0 && snprintf(buf + len, sizeof(buf) - len, "%s", name) < (int)(sizeof(buf) - len))
		q = intern(buf);
out:
	free(scopes);
	return q ? q->s : NULL;
}

/*
 * Names of a DWARF function; *f must be zeroed. A mangled linkage name is
 * both names at once (demangling gives the qualified source name). Otherwise
 * the display name is DW_AT_name: in C a linkage name is only an asm label,
 * such as glibc's "__GI_qsort" for qsort, and is kept as the system name.
 */
static void get_die_names(Dwarf_Die *die, Dwarf_Addr dwbias, struct sym_frame *f)
{
	const char *linkage = die_string(die, DW_AT_linkage_name);
	const char *name;
	Dwarf_Addr entry;

	if (!linkage)
		linkage = die_string(die, DW_AT_MIPS_linkage_name);
	if (linkage && is_mangled(linkage)) {
		f->sys = linkage;
		return;
	}
	name = die_string(die, DW_AT_name);
	f->sys = linkage ? linkage : name;
	f->func = name;
	if (!name || !is_cplusplus(die))
		return;
	f->func = qualify(die, name);
	if (!f->func)
		f->func = name;
	/* Lets resolve() take the mangled name from the ELF symbol table. */
	if (!linkage && dwarf_tag(die) == DW_TAG_subprogram && dwarf_entrypc(die, &entry) == 0)
		f->entry = entry + dwbias;
}

/* The source position an inlined subroutine was expanded from, in its caller. */
static void get_call_site(Dwarf_Die *inlined, struct sym_frame *caller)
{
	Dwarf_Attribute attr;
	Dwarf_Word w;
	Dwarf_Die cu;
	Dwarf_Files *files;
	size_t nfiles;

	if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_line, &attr), &w) == 0)
		caller->line = (int64_t)w;
	if (dwarf_formudata(dwarf_attr(inlined, DW_AT_call_file, &attr), &w) == 0 &&
	    dwarf_diecu(inlined, &cu, NULL, NULL) &&
	    dwarf_getsrcfiles(&cu, &files, &nfiles) == 0 && w < nfiles)
		caller->file = dwarf_filesrc(files, w, NULL, NULL);
}

/*
 * The functions containing addr in the first unit whose ranges hold it, as
 * dw_index_lookup gives them (0 if none), with that unit's bias in *dwbias:
 * for when the unit .debug_aranges named has none. Aranges can be wrong:
 * Debian 12's libc maps clone3.S's code to ttyname_r.c's unit, which has
 * no function there, and the symbol table's alias (clone3) would then name
 * what DWARF calls __clone3. A linear walk over the units, but only for
 * addresses the named unit has no function for, each once (results are
 * cached by the caller).
 */
static int lookup_in_any_unit(struct sym_obj *obj, Dwarf_Addr addr, Dwarf_Addr *dwbias,
			      Dwarf_Die *dies, int max)
{
	Dwarf_Die *cu = NULL;
	Dwarf_Addr bias;

	while ((cu = dwfl_module_nextcu(obj->mod, cu, &bias))) {
		if (dwarf_haspc(cu, addr - bias) != 1)
			continue;
		int n = dw_index_lookup(obj->index, cu, addr - bias, dies, max);
		if (n > 0) {
			*dwbias = bias;
			return n;
		}
	}
	return 0;
}

/*
 * Fill fr[0..n) from the functions and inlined calls containing addr,
 * innermost first, ending with the DW_TAG_subprogram the address physically
 * belongs to. Lines of frame i > 0 come from the call site of frame i - 1;
 * frame 0's line is left to the caller (line table). Returns n, 0 when
 * DWARF knows no function here.
 */
/* The unit an address is in, and how it was found: by our reading of
 * .debug_aranges (dw_index_unit), or by libdw's when that could not be read
 * (then libdw also finds its line). */
struct sym_unit {
	enum { UNIT_LIBDW, UNIT_OURS, UNIT_NONE } how;
	Dwarf_Die die;
	Dwarf_Addr bias;
};

static int resolve_dwarf(struct sym_obj *obj, Dwarf_Addr addr, struct sym_frame *fr, int cap,
			 struct sym_unit *unit)
{
	Dwarf_Addr dwbias;
	Dwarf *dbg = dwfl_module_getdwarf(obj->mod, &dwbias);
	Dwarf_Die *cu = NULL;
	Dwarf_Die dies[SYM_MAX_FRAMES];
	Dwarf_Die *callee = NULL;
	int ndies, n = 0;

	unit->how = UNIT_LIBDW;
	if (!dbg)
		return 0;
	if (!obj->index)
		obj->index = dw_index_new();
	int max = cap < SYM_MAX_FRAMES ? cap : SYM_MAX_FRAMES;
	switch (dw_index_unit(obj->index, dbg, addr - dwbias, &unit->die)) {
	case 1:
		unit->how = UNIT_OURS;
		unit->bias = dwbias;
		cu = &unit->die;
		break;
	case 0:
		unit->how = UNIT_NONE;
		break;
	default:
		cu = dwfl_module_addrdie(obj->mod, addr, &dwbias);
		break;
	}
	if (!cu)
		return 0;
	ndies = dw_index_lookup(obj->index, cu, addr - dwbias, dies, max);
	if (ndies == 0) {
		/* The unit the aranges name has no function here (libc6-dbg's
		 * clone3): look in every unit, and take lines as libdw finds
		 * them. */
		ndies = lookup_in_any_unit(obj, addr, &dwbias, dies, max);
		if (ndies)
			unit->how = UNIT_LIBDW;
	}
	for (int i = 0; i < ndies; i++) {
		Dwarf_Die *die = &dies[i];
		int tag = dwarf_tag(die);
		struct sym_frame *f = &fr[n++];
		int decl;

		*f = (struct sym_frame){ 0 };
		get_die_names(die, dwbias, f);
		if (dwarf_decl_line(die, &decl) == 0 && decl > 0)
			f->start_line = decl;
		if (callee)
			get_call_site(callee, f);
		/* A nested function ends the chain: the code is physically its. */
		if (tag == DW_TAG_subprogram) {
			Dwarf_Addr e;
			if (dwarf_entrypc(die, &e) == 0)
				f->phys_entry = e + dwbias;
			break;
		}
		callee = die;
	}
	return n;
}

static int compare_elfsym(const void *a, const void *b)
{
	const struct sym_elfsym *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->rank - y->rank;
}

/*
 * dwfl_module_addrinfo scans every symbol on each call, which costs
 * milliseconds per address in a large stripped binary. Sort the sized
 * function symbols once instead. Sizeless symbols are left out: guessing
 * that an address belongs to the nearest one would invent names.
 */
static void load_symbols(struct sym_obj *obj)
{
	int count = dwfl_module_getsymtab(obj->mod);

	obj->syms_loaded = true;
	if (count <= 0)
		return;
	obj->syms = malloc((size_t)count * sizeof(obj->syms[0]));
	if (!obj->syms)
		return;
	for (int i = 0; i < count; i++) {
		GElf_Sym es;
		GElf_Addr start;
		GElf_Word shndx;
		const char *name = dwfl_module_getsym_info(obj->mod, i, &es, &start, &shndx,
							   NULL, NULL);
		int type = GELF_ST_TYPE(es.st_info), bind = GELF_ST_BIND(es.st_info);
		struct sym_elfsym *e;

		/* shndx is -1 for symbols in non-allocated sections. */
		if (!name || !name[0] || es.st_size == 0 || shndx == SHN_UNDEF ||
		    shndx == (GElf_Word)-1 || (type != STT_FUNC && type != STT_GNU_IFUNC))
			continue;
		e = &obj->syms[obj->nsyms++];
		e->start = start;
		e->end = start + es.st_size;
		e->name = name;
		e->rank = bind == STB_GLOBAL ? 2 : bind == STB_WEAK ? 1 : 0;
	}
	qsort(obj->syms, obj->nsyms, sizeof(obj->syms[0]), compare_elfsym);
}

/* The function symbol containing module address addr, or NULL; *start is its address. */
static const char *find_symbol(struct sym_obj *obj, GElf_Addr addr, GElf_Addr *start)
{
	size_t lo = 0, hi;

	if (!obj->syms_loaded)
		load_symbols(obj);
	hi = obj->nsyms;
	/* lo = number of symbols starting at or before addr. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (obj->syms[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	/*
	 * Walking back, the first symbol that contains addr is the innermost
	 * and, among aliases, the best ranked. Nesting is rare and shallow,
	 * hence the bound.
	 */
	for (size_t i = lo, steps = 0; i-- > 0 && steps < 64; steps++) {
		if (addr < obj->syms[i].end) {
			*start = obj->syms[i].start;
			return obj->syms[i].name;
		}
	}
	return NULL;
}

static int fill_line(struct sym_line *l, const struct sym_frame *f, const char *fallback)
{
	struct sym_str *sys = f->sys ? intern(f->sys) : NULL;
	struct sym_str *func = f->func ? intern(f->func) : NULL;
	struct sym_str *file = f->file ? intern(f->file) : NULL;

	if ((f->sys && !sys) || (f->func && !func) || (f->file && !file))
		return -1;
	l->function = func ? func->s : sys ? function_name(sys) : fallback;
	l->system_name = sys ? sys->s : "";
	l->file = file ? file->s : "";
	l->line = f->line;
	l->start_line = f->start_line;
	return 0;
}

static struct sym_result *resolve(const struct sym_file *file, uint64_t vaddr)
{
	struct sym_frame fr[SYM_MAX_FRAMES];
	struct sym_result *res;
	struct sym_str *fallback;
	char buf[512];
	int n = 0;
	uint64_t entry = 0;

	if (file->obj) {
		Dwfl_Module *mod = file->obj->mod;
		Dwarf_Addr addr = vaddr + file->obj->bias;
		struct sym_unit unit;

		n = resolve_dwarf(file->obj, addr, fr, SYM_MAX_FRAMES, &unit);
		if (n == 0)
			fr[n++] = (struct sym_frame){ 0 };
		GElf_Addr start = 0;
		const char *name = find_symbol(file->obj, addr, &start);
		/* Where the function starts, for Go's name+0xOFF: DWARF's
		 * entry unless the address lies before it (a .cold part, which
		 * has a symbol of its own), else the symbol's. */
		Dwarf_Addr fentry = fr[n - 1].phys_entry;
		if (!fentry || fentry > addr)
			fentry = name ? start : 0;
		if (fentry >= file->obj->bias)
			entry = fentry - file->obj->bias;
		if (!fr[n - 1].sys || fr[n - 1].entry) {
			struct sym_frame *f = &fr[n - 1];

			/*
			 * Without DWARF, the symbol table is all there is. With DWARF
			 * but no linkage name, the symbol is the mangled name, as long
			 * as it starts where the DWARF function does.
			 */
			if (name && (!f->sys || start == f->entry)) {
				f->sys = name;
				/* Mangled, it names lambdas and clones better than DWARF scopes. */
				if (is_mangled(name))
					f->func = NULL;
			}
		}
		const char *src = NULL;
		int lineno = 0;
		if (unit.how == UNIT_OURS) {
			/* What dwfl_module_getsrc does, in the unit found already. */
			Dwarf_Line *line = dwarf_getsrc_die(&unit.die, addr - unit.bias);
			if (line && (src = dwarf_linesrc(line, NULL, NULL)))
				dwarf_lineno(line, &lineno);
		} else if (unit.how == UNIT_LIBDW) {
			Dwfl_Line *line = dwfl_module_getsrc(mod, addr);
			Dwarf_Addr line_addr;
			if (line)
				src = dwfl_lineinfo(line, &line_addr, &lineno, NULL, NULL, NULL);
		}
		if (src && src[0]) {
			fr[0].file = src;
			fr[0].line = lineno > 0 ? lineno : 0;
		}
	} else {
		fr[n++] = (struct sym_frame){ 0 };
	}

	snprintf(buf, sizeof(buf), "%s+0x%" PRIx64, file->base, vaddr);
	fallback = intern(buf);
	res = malloc(sizeof(*res) + (size_t)n * sizeof(res->lines[0]));
	if (!fallback || !res)
		goto fail_res;
	res->file = file;
	res->vaddr = vaddr;
	res->n = n;
	for (int i = 0; i < n; i++) {
		if (fill_line(&res->lines[i], &fr[i], fallback->s) < 0)
			goto fail_res;
		res->lines[i].entry = entry;
	}
	return res;

fail_res:
	free(res);
	return NULL;
}

static bool result_match(const void *entry, const void *key)
{
	const struct sym_result *r = entry;
	const struct result_key *k = key;

	return r->file == k->file && r->vaddr == k->vaddr;
}

static struct sym_result *get_result(const struct sym_file *file, uint64_t vaddr)
{
	struct result_key key = { file, vaddr };
	uint64_t hash = hash_mix((uint64_t)(uintptr_t)file ^ hash_mix(vaddr));
	struct sym_result *res = map_find(&sym.results, hash, result_match, &key);

	if (res)
		return res;
	res = resolve(file, vaddr);
	if (res && map_insert(&sym.results, hash, res) < 0) {
		free(res);
		return NULL;
	}
	return res;
}

int sym_lookup(const char *path, const uint8_t *build_id, size_t build_id_len,
	       uint64_t vaddr, struct sym_line *out, int max)
{
	struct file_key key = { path ? path : "", build_id, build_id ? build_id_len : 0 };
	struct sym_file *file;
	struct sym_result *res = NULL;

	if (!out || max < 1)
		return 0;
	file = get_file(&key);
	if (file)
		res = get_result(file, vaddr);
	if (!res) {
		out[0] = sym_oom_line;
		return 1;
	}
	if (res->n <= max) {
		memcpy(out, res->lines, (size_t)res->n * sizeof(out[0]));
		return res->n;
	}
	/* Keep the innermost frames and the physical function. */
	memcpy(out, res->lines, (size_t)(max - 1) * sizeof(out[0]));
	out[max - 1] = res->lines[res->n - 1];
	return max;
}

void sym_prepare_later(const char *path, const uint8_t *build_id, size_t build_id_len)
{
	struct file_key key = { path ? path : "", build_id, build_id ? build_id_len : 0 };
	struct sym_file *file = get_file(&key);
	if (!file || file->prepared || !file->obj)
		return;
	file->prepared = true; /* queued once */
	file->next_to_prepare = sym.to_prepare;
	sym.to_prepare = file;
}

bool sym_prepare_one(void)
{
	struct sym_file *file = sym.to_prepare;
	if (!file)
		return false;
	sym.to_prepare = file->next_to_prepare;
	Dwarf_Addr bias;
	/* Loading the DWARF (for a separate debug file, inflating compressed
	 * sections) and sorting the symbol table are the bulk of a file's
	 * first lookup. */
	dwfl_module_getdwarf(file->obj->mod, &bias);
	if (!file->obj->syms_loaded)
		load_symbols(file->obj);
	return sym.to_prepare != NULL;
}

bool sym_preparing(void)
{
	return sym.to_prepare != NULL;
}

size_t sym_file_build_id(const char *path, uint8_t *buf, size_t bufsize)
{
	struct stat st;
	const void *id;
	ssize_t len;
	size_t ret = 0;
	Elf *elf;
	int fd;

	if (!path || !buf || elf_version(EV_CURRENT) == EV_NONE)
		return 0;
	/* O_NONBLOCK: opening a FIFO must not hang the collector. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		goto out_fd;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf)
		goto out_fd;
	len = dwelf_elf_gnu_build_id(elf, &id);
	if (len > 0 && (size_t)len <= bufsize) {
		memcpy(buf, id, (size_t)len);
		ret = (size_t)len;
	}
	elf_end(elf);
out_fd:
	close(fd);
	return ret;
}

void sym_shutdown(void)
{
	while (sym.objs) {
		struct sym_obj *next = sym.objs->next;

		close_obj(sym.objs);
		sym.objs = next;
	}
	for (size_t i = 0; i < sym.files.cap; i++) {
		struct sym_file *f = sym.files.slots[i].entry;

		if (f)
			free(f->build_id);
	}
	map_clear(&sym.files);
	map_clear(&sym.results);
	map_clear(&sym.quals);
	map_clear(&sym.strings);
}

int sym_debuginfo(const char *path, const uint8_t *build_id, size_t build_id_len)
{
	struct file_key key = { path ? path : "", build_id, build_id ? build_id_len : 0 };
	struct sym_file *file = get_file(&key);
	Dwarf_Addr bias;

	if (!file || !file->obj)
		return -1;
	/* libdw caches the answer: only the first call per file looks. */
	return dwfl_module_getdwarf(file->obj->mod, &bias) != NULL;
}

const char *sym_separate_debug_file(const char *path, const uint8_t *build_id,
				    size_t build_id_len)
{
	struct file_key key = { path ? path : "", build_id, build_id ? build_id_len : 0 };
	struct sym_file *file = get_file(&key);
	const char *main_file = NULL, *debug_file = NULL;
	Dwarf_Addr bias;
	struct sym_str *name;

	if (!file || !file->obj || !dwfl_module_getdwarf(file->obj->mod, &bias))
		return NULL;
	dwfl_module_info(file->obj->mod, NULL, NULL, NULL, NULL, NULL, &main_file, &debug_file);
	if (!debug_file || (main_file && strcmp(debug_file, main_file) == 0))
		return NULL;
	/* libdw's string lives as long as the module; ours as long as the caches. */
	name = intern(debug_file);
	return name ? name->s : NULL;
}
