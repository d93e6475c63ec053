/*
 * Which files are loaded where: one MP_REC_MAPPING wire record per
 * executable segment, queued on the event ring so that it reaches the
 * collector before any stack that points into it. dl_iterate_phdr's
 * adds/subs counters tell cheaply whether anything was loaded or unloaded
 * since the last look.
 *
 * All state here is touched only inside the dl_iterate_phdr callback, which
 * glibc runs under its loader lock; that lock serialises concurrent checks.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"
#include "unwind.h"

uintptr_t mp_self_lo, mp_self_hi;

#define MAX_SENT 2048

struct sent {
	uint64_t start, limit, offset, bias, path_hash;
};

static struct sent sent[MAX_SENT];
static size_t n_sent;
static unsigned long long last_adds = ~0ULL, last_subs = ~0ULL;
static bool unloaded; /* something was unloaded since the last check */
static char exe_path[1024];

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static size_t build_id_of(const struct dl_phdr_info *info, uint8_t *out)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
		const unsigned char *end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
			const unsigned char *name = p + sizeof(*n);
			const unsigned char *desc = name + ((n->n_namesz + 3) & ~3U);
			const unsigned char *next = desc + ((n->n_descsz + 3) & ~3U);
			if (next > end)
				break;
			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
			    memcmp(name, "GNU", 4) == 0) {
				size_t len = n->n_descsz < MP_MAX_BUILD_ID ? n->n_descsz
									   : MP_MAX_BUILD_ID;
				memcpy(out, desc, len);
				return len;
			}
			p = next;
		}
	}
	return 0;
}

static const char *path_of(const struct dl_phdr_info *info)
{
	/* pprof's name for the kernel's vDSO, which is no file. */
	if (info->dlpi_name && strncmp(info->dlpi_name, "linux-vdso", 10) == 0)
		return "[vdso]";
	if (info->dlpi_name && info->dlpi_name[0])
		return info->dlpi_name;
	return exe_path[0] ? exe_path : "[main]";
}

static bool was_sent(const struct sent *m)
{
	for (size_t i = 0; i < n_sent; i++)
		if (sent[i].start == m->start && sent[i].limit == m->limit &&
		    sent[i].bias == m->bias && sent[i].path_hash == m->path_hash)
			return true;
	return false;
}

/* Queues one mapping record; false if the ring had no room (the caller
 * forgets the counters so that the next check tries again). */
static bool queue_mapping(const struct sent *m, const char *path,
			  const uint8_t *build_id, size_t build_id_len)
{
	size_t path_len = strlen(path);
	if (path_len > 4096)
		path_len = 4096;
	uint32_t len = (uint32_t)(sizeof(struct mp_rec_hdr) + sizeof(struct mp_mapping) +
				  build_id_len + path_len);
	unsigned char *rec = mp_ring_reserve(MP_EV_WIRE, len);
	if (!rec)
		return false;
	struct mp_rec_hdr hdr = { MP_REC_MAPPING, len - (uint32_t)sizeof(hdr) };
	struct mp_mapping mm = {
		.start = m->start,
		.limit = m->limit,
		.offset = m->offset,
		.load_bias = m->bias,
		.build_id_len = (uint32_t)build_id_len,
		.path_len = (uint32_t)path_len,
	};
	unsigned char *p = rec;
	memcpy(p, &hdr, sizeof(hdr));
	p += sizeof(hdr);
	memcpy(p, &mm, sizeof(mm));
	p += sizeof(mm);
	memcpy(p, build_id, build_id_len);
	p += build_id_len;
	memcpy(p, path, path_len);
	mp_ring_commit(rec);
	return true;
}

static int check_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	bool *started = arg;
	(void)size;
	if (!*started) {
		if (info->dlpi_adds == last_adds && info->dlpi_subs == last_subs)
			return 1; /* nothing changed: stop at the first object */
		*started = true;
		if (info->dlpi_subs != last_subs)
			unloaded = true;
		last_adds = info->dlpi_adds;
		last_subs = info->dlpi_subs;
	}
	const char *path = path_of(info);
	uint64_t path_hash = hash_str(path);
	uint8_t build_id[MP_MAX_BUILD_ID];
	size_t build_id_len = 0;
	bool have_build_id = false;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
			continue;
		/* The loader maps segments at page granularity. */
		uint64_t vstart = info->dlpi_addr + ph->p_vaddr;
		uint64_t lo = vstart & ~4095ULL;
		struct sent m = {
			.start = lo,
			.limit = vstart + ph->p_memsz,
			.offset = ph->p_offset - (vstart - lo),
			.bias = info->dlpi_addr,
			.path_hash = path_hash,
		};
		if (was_sent(&m))
			continue;
		if (!have_build_id) {
			build_id_len = build_id_of(info, build_id);
			have_build_id = true;
		}
		if (!queue_mapping(&m, path, build_id, build_id_len)) {
			last_adds = last_subs = ~0ULL;
			continue;
		}
		if (n_sent == MAX_SENT)
			n_sent = 0; /* forget: the collector ignores repeats */
		sent[n_sent++] = m;
	}
	return 0;
}

void mp_mappings_check(void)
{
	bool started = false;
	dl_iterate_phdr(check_cb, &started);
	/* The unwinder caches what it learnt about each address; after a
	 * dlclose another library may sit there, so forget it all. */
	if (unloaded) {
		unloaded = false;
		mp_unwind_flush();
	}
}

/* Stack samples are checked against the loaded objects only when the
 * unwinder meets an address it has no cached rule for (sample.c); after a
 * dlclose another object may be loaded where this one was, and its
 * addresses must not find this one's rules. */
__attribute__((visibility("default"))) int dlclose(void *handle)
{
	if (!mp_real.dlclose) {
		mp_init();
		if (!mp_real.dlclose) {
			errno = ENOSYS;
			return -1;
		}
	}
	int rc = mp_real.dlclose(handle);
	mp_unwind_flush();
	return rc;
}

void mp_mappings_reset(void)
{
	n_sent = 0;
	last_adds = last_subs = ~0ULL;
}

static int self_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t me = (uintptr_t)arg;
	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && me >= lo &&
		    me < lo + ph->p_memsz) {
			mp_self_lo = lo;
			mp_self_hi = lo + ph->p_memsz;
			return 1;
		}
	}
	return 0;
}

int mp_mappings_init(void)
{
	ssize_t n = readlink("/proc/self/exe", exe_path, sizeof(exe_path) - 1);
	exe_path[n > 0 ? n : 0] = '\0';
	dl_iterate_phdr(self_cb, (void *)(uintptr_t)&mp_mappings_init);
	return mp_self_hi ? 0 : -1;
}
