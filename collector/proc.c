/*
 * One profiled process: applying its records and keeping its heap totals.
 * Every length and every index in a record is checked here against what
 * the process has sent before; a bad record is an error for this process
 * only (conn.c then drops its connection).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peak.h"
#include "proc.h"
#include "unwind.h"
#include "util.h"
#include "vdso.h"

static bool take(const unsigned char **p, uint32_t *left, void *out, size_t n)
{
	if (*left < n)
		return false;
	memcpy(out, *p, n);
	*p += n;
	*left -= (uint32_t)n;
	return true;
}

/* argv as one line: NULs become spaces. */
static char *join_cmdline(const char *s, size_t n)
{
	while (n && s[n - 1] == '\0')
		n--;
	char *d = xstrndup(s, n);
	for (size_t i = 0; i < n; i++)
		if (d[i] == '\0')
			d[i] = ' ';
	return d;
}

static bool safe_name(const char *s, size_t n)
{
	if (n == 0 || n > 64 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '+' || c == '-'))
			return false;
	}
	return true;
}

/* The parent of pid as our /proc sees it; 0 if it cannot tell. */
static uint32_t ppid_of(uint32_t pid)
{
	char path[64], stat[512];
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, stat, sizeof(stat) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	stat[n] = '\0';
	/* "pid (comm) state ppid ...": comm may hold spaces and parentheses. */
	char *paren = strrchr(stat, ')');
	unsigned ppid;
	if (!paren || sscanf(paren + 1, " %*c %u", &ppid) != 1)
		return 0;
	return ppid;
}

struct proc *proc_new(const void *payload, uint32_t len, uint32_t peer_pid, const char **why)
{
	struct mp_hello h;
	const unsigned char *p = payload;
	if (!take(&p, &len, &h, sizeof(h))) {
		*why = "short hello";
		return NULL;
	}
	if (h.magic != MP_WIRE_MAGIC) {
		*why = "not a memprof client (bad magic)";
		return NULL;
	}
	if (h.version != MP_WIRE_VERSION) {
		*why = "unsupported protocol version (shim and collector from different builds?)";
		return NULL;
	}
	if ((uint64_t)h.exe_len + h.name_len + h.cmdline_len != len) {
		*why = "hello lengths do not add up";
		return NULL;
	}
	const char *exe = (const char *)p, *name = exe + h.exe_len, *cmd = name + h.name_len;
	if (!safe_name(name, h.name_len)) {
		*why = "program name unusable in a file name";
		return NULL;
	}
	struct proc *pr = xcalloc(1, sizeof(*pr));
	pr->pid = h.pid;
	pr->ppid = h.ppid;
	/* The kernel's word for who this is, not the client's (see proc.h). */
	if (peer_pid && peer_pid != h.pid) {
		log_debug("a client says it is pid %u, the kernel says %u (another pid "
			  "namespace?): it is known as %u", h.pid, peer_pid, peer_pid);
		pr->pid = peer_pid;
		pr->ppid = ppid_of(peer_pid);
	}
	pr->rate = h.rate;
	pr->cpu_hz = h.cpu_hz;
	pr->flags = h.flags;
	pr->start_ns = h.start_ns;
	pr->exe = xstrndup(exe, h.exe_len);
	pr->name = xstrndup(name, h.name_len);
	pr->cmdline = join_cmdline(cmd, h.cmdline_len);
	pr->cpu_dumped_ns = now_realtime_ns();
	return pr;
}

void proc_free(struct proc *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nmaps; i++)
		free(p->maps[i].path);
	for (size_t i = 0; i < p->nlocs; i++)
		free(p->locs[i].lines);
	for (size_t i = 0; i < p->nstacks; i++)
		free(p->stacks[i].locs);
	free(p->maps);
	free(p->locs);
	free(p->stacks);
	free(p->wire_stacks);
	free(p->buckets);
	map_free(&p->loc_by_addr);
	map_free(&p->stack_by_hash);
	map_free(&p->bucket_by_key);
	live_free(&p->live);
	map_free(&p->cpu);
	map_free(&p->cpu_dumped);
	unwind_free(p->unwinder);
	free(p->leaks);
	free(p->leak_profile);
	free(p->exe);
	free(p->name);
	free(p->cmdline);
	free(p);
}

void proc_inherit(struct proc *child, const struct proc *parent)
{
	child->maps = xcalloc(parent->nmaps ? parent->nmaps : 1, sizeof(*child->maps));
	child->nmaps = child->cap_maps = parent->nmaps;
	for (size_t i = 0; i < parent->nmaps; i++) {
		child->maps[i] = parent->maps[i];
		child->maps[i].path = xstrndup(parent->maps[i].path, strlen(parent->maps[i].path));
		if (parent->maps[i].file == parent->maps[i].path)
			child->maps[i].file = child->maps[i].path;
	}
	child->locs = xcalloc(parent->nlocs ? parent->nlocs : 1, sizeof(*child->locs));
	child->nlocs = child->cap_locs = parent->nlocs;
	for (size_t i = 0; i < parent->nlocs; i++) {
		child->locs[i] = parent->locs[i];
		if (parent->locs[i].mapping < 0) {
			/* Its name lives in the parent's block: named again. */
			child->locs[i].lines = NULL;
			child->locs[i].nlines = 0;
		} else if (parent->locs[i].nlines) {
			size_t n = parent->locs[i].nlines * sizeof(struct sym_line);
			child->locs[i].lines = xmalloc(n);
			memcpy(child->locs[i].lines, parent->locs[i].lines, n);
		}
	}
	map_copy(&child->loc_by_addr, &parent->loc_by_addr);
	child->stacks = xcalloc(parent->nstacks ? parent->nstacks : 1, sizeof(*child->stacks));
	child->nstacks = child->cap_stacks = parent->nstacks;
	for (size_t i = 0; i < parent->nstacks; i++) {
		child->stacks[i].depth = parent->stacks[i].depth;
		child->stacks[i].locs = xmalloc(parent->stacks[i].depth * sizeof(uint32_t));
		memcpy(child->stacks[i].locs, parent->stacks[i].locs,
		       parent->stacks[i].depth * sizeof(uint32_t));
	}
	map_copy(&child->stack_by_hash, &parent->stack_by_hash);
	/* Only what is live comes along, counted once as allocated. */
	child->buckets = xcalloc(parent->nbuckets ? parent->nbuckets : 1, sizeof(*child->buckets));
	child->nbuckets = child->cap_buckets = parent->nbuckets;
	for (size_t i = 0; i < parent->nbuckets; i++) {
		child->buckets[i] = parent->buckets[i];
		child->buckets[i].alloc_samples = parent->buckets[i].inuse_samples;
		child->buckets[i].alloc_bytes = parent->buckets[i].inuse_bytes;
	}
	map_copy(&child->bucket_by_key, &parent->bucket_by_key);
	live_copy(&child->live, &parent->live);
	child->freed_first = parent->freed_first;
	child->inuse_est = parent->inuse_est;
	child->peak_gen = parent->peak_gen; /* no bucket's is newer */
	peak_inherit(child);
}

double proc_sample_weight(const struct proc *p, uint64_t size)
{
	if (p->rate <= 1 || size == 0)
		return 1.0;
	/* P(sampled) = 1 - exp(-size/rate); expm1 keeps precision for small
	 * sizes, where 1 - exp(x) would cancel. */
	return -1.0 / expm1(-(double)size / (double)p->rate);
}

/* ---- mappings and locations ---------------------------------------------- */

static int add_mapping(struct proc *p, const void *payload, uint32_t len, const char **why)
{
	struct mp_mapping m;
	const unsigned char *q = payload;
	if (!take(&q, &len, &m, sizeof(m)) || m.build_id_len > MP_MAX_BUILD_ID ||
	    (uint64_t)m.build_id_len + m.path_len != len || m.start >= m.limit) {
		*why = "malformed mapping";
		return -1;
	}
	const char *path = (const char *)q + m.build_id_len;
	for (size_t i = p->nmaps; i-- > 0;) {
		struct mapping *o = &p->maps[i];
		if (o->start == m.start && o->limit == m.limit && o->load_bias == m.load_bias &&
		    strlen(o->path) == m.path_len && memcmp(o->path, path, m.path_len) == 0)
			return 0; /* sent again after a dlclose/dlopen of the same file */
	}
	if (p->nmaps >= 65536) {
		*why = "too many mappings";
		return -1;
	}
	GROW(p->maps, p->cap_maps, p->nmaps + 1);
	struct mapping *n = &p->maps[p->nmaps++];
	n->start = m.start;
	n->limit = m.limit;
	n->offset = m.offset;
	n->load_bias = m.load_bias;
	n->build_id_len = m.build_id_len;
	memcpy(n->build_id, q, m.build_id_len);
	n->path = xstrndup(path, m.path_len);
	if (strcmp(n->path, "[vdso]") == 0)
		n->file = vdso_file(n->build_id, n->build_id_len);
	else if (n->path[0] == '/')
		n->file = n->path;
	return 0;
}

/* The mapping an address belongs to: the newest one that covers it. */
static int32_t find_mapping(const struct proc *p, uint64_t addr)
{
	for (size_t i = p->nmaps; i-- > 0;)
		if (addr >= p->maps[i].start && addr < p->maps[i].limit)
			return (int32_t)i;
	return -1;
}

static uint32_t location_of(struct proc *p, uint64_t addr)
{
	uint64_t *v = map_find(&p->loc_by_addr, addr + 1, 0);
	if (v)
		return (uint32_t)*v;
	GROW(p->locs, p->cap_locs, p->nlocs + 1);
	struct location *l = &p->locs[p->nlocs];
	l->addr = addr;
	l->mapping = find_mapping(p, addr);
	if (l->mapping >= 0) {
		const struct mapping *m = &p->maps[l->mapping];
		if (m->file)
			sym_prepare_later(m->file, m->build_id, m->build_id_len);
	}
	map_put(&p->loc_by_addr, addr + 1, 0, p->nlocs);
	return (uint32_t)p->nlocs++;
}

uint32_t proc_intern_stack(struct proc *p, const uint64_t *addrs, uint32_t depth)
{
	uint32_t locs[MP_MAX_FRAMES * 4];
	if (depth > sizeof(locs) / sizeof(locs[0]))
		depth = sizeof(locs) / sizeof(locs[0]);
	/* Room for every new location this stack may bring, else none is
	 * made: a stack is kept whole or not at all. */
	if (p->nlocs + depth > PROC_MAX_LOCATIONS) {
		for (uint32_t i = 0; i < depth; i++) {
			if (!map_find(&p->loc_by_addr, addrs[i] + 1, 0)) {
				p->over_limit_stacks++;
				return PROC_STACK_OVER_LIMIT;
			}
		}
	}
	for (uint32_t i = 0; i < depth; i++)
		locs[i] = location_of(p, addrs[i]);
	uint64_t h = hash_bytes(locs, depth * sizeof(uint32_t));
	/* Chain on collision: the value is the first index with this hash;
	 * equal stacks are found by comparing, distinct ones get k2 = depth
	 * plus a probe count. */
	for (uint64_t probe = 0;; probe++) {
		uint64_t *v = map_find(&p->stack_by_hash, h, probe);
		if (!v)
			break;
		struct stack *s = &p->stacks[*v];
		if (s->depth == depth && memcmp(s->locs, locs, depth * sizeof(uint32_t)) == 0)
			return (uint32_t)*v;
	}
	if (p->nstacks >= PROC_MAX_STACKS) {
		p->over_limit_stacks++;
		return PROC_STACK_OVER_LIMIT;
	}
	uint64_t probe = 0;
	while (map_find(&p->stack_by_hash, h, probe))
		probe++;
	GROW(p->stacks, p->cap_stacks, p->nstacks + 1);
	struct stack *s = &p->stacks[p->nstacks];
	s->depth = depth;
	s->last_bucket = 0;
	s->locs = xmalloc(depth * sizeof(uint32_t));
	memcpy(s->locs, locs, depth * sizeof(uint32_t));
	map_put(&p->stack_by_hash, h, probe, p->nstacks);
	return (uint32_t)p->nstacks++;
}

void proc_symbolize(struct proc *p, struct location *loc)
{
	if (loc->nlines)
		return;
	struct sym_line lines[16];
	int n;
	if (loc->mapping >= 0) {
		const struct mapping *m = &p->maps[loc->mapping];
		n = sym_lookup(m->file ? m->file : m->path, m->build_id, m->build_id_len,
			       loc->addr - m->load_bias, lines, 16);
	} else {
		/* In no mapping: the name is the address, which a client can
		 * choose at will. It is kept with the location, not in the
		 * symbolizer's collector-wide caches, so that it goes when the
		 * process goes (issue 12). lines is the block's first member. */
		struct unknown_frame {
			struct sym_line line;
			char name[32];
		} *u = xmalloc(sizeof(*u));
		snprintf(u->name, sizeof(u->name), "[unknown]+0x%" PRIx64, loc->addr);
		u->line = (struct sym_line){ .function = u->name, .system_name = "", .file = "" };
		loc->lines = &u->line;
		loc->nlines = 1;
		return;
	}
	if (n < 1)
		n = 0;
	loc->lines = xmalloc((size_t)(n ? n : 1) * sizeof(struct sym_line));
	memcpy(loc->lines, lines, (size_t)n * sizeof(struct sym_line));
	loc->nlines = (uint16_t)n;
}

/* ---- heap records ---------------------------------------------------------- */

static int add_stack(struct proc *p, const void *payload, uint32_t len, const char **why)
{
	struct mp_stack s;
	const unsigned char *q = payload;
	if (!take(&q, &len, &s, sizeof(s)) || s.depth == 0 || s.depth > MP_MAX_FRAMES ||
	    len != s.depth * sizeof(uint64_t)) {
		*why = "malformed stack";
		return -1;
	}
	if (s.id != p->nwire_stacks + 1) {
		*why = "stack ids out of sequence";
		return -1;
	}
	uint64_t addrs[MP_MAX_FRAMES];
	memcpy(addrs, q, s.depth * sizeof(uint64_t));
	/* Every frame is a return address: step back into the call. */
	for (uint32_t i = 0; i < s.depth; i++)
		addrs[i] -= 1;
	/* Ids are sequential: once one is not kept, none after it is, and the
	 * table of the shim's ids stops growing with it. */
	uint32_t stack = p->nwire_stacks == p->nwire_stacks_kept
				 ? proc_intern_stack(p, addrs, s.depth) : PROC_STACK_OVER_LIMIT;
	if (stack != PROC_STACK_OVER_LIMIT) {
		GROW(p->wire_stacks, p->cap_wire_stacks, p->nwire_stacks + 1);
		p->wire_stacks[p->nwire_stacks_kept++] = stack;
	} else if (p->nwire_stacks != p->nwire_stacks_kept) {
		p->over_limit_stacks++;
	}
	p->nwire_stacks++;
	return 0;
}

/* Live blocks are keyed (address, LIVE_BY_ADDR) when the shim sends no
 * ids, else (id, LIVE_BY_ID); (id, FREED_FIRST) marks a free that came
 * before its allocation (see struct mp_alloc). A block with an id whose
 * sample was not kept (PROC_MAX_*) is live too, in no bucket (NOT_KEPT),
 * so that its free finds it rather than wait, for ever, as FREED_FIRST. */
enum { FREED_FIRST = LIVE_KIND_PAGED_MAX + 1 };
#define NOT_KEPT UINT64_MAX

static bool release_block(struct proc *p, uint64_t k1, uint64_t k2)
{
	uint64_t b;
	if (!live_take(&p->live, k1, k2, &b))
		return false;
	if (b != NOT_KEPT && p->buckets[b].inuse_samples) {
		peak_save(p, &p->buckets[b]);
		p->buckets[b].inuse_samples--;
		peak_shrank(p, &p->buckets[b]);
	}
	return true;
}

static void add_free(struct proc *p, const struct mp_free *f)
{
	if (!f->id) {
		release_block(p, f->addr, LIVE_BY_ADDR);
		return;
	}
	/* Its allocation is still on its way: cancel it when it comes. */
	if (!release_block(p, f->id, LIVE_BY_ID) && live_count(&p->live) < PROC_MAX_LIVE) {
		live_put(&p->live, f->id, FREED_FIRST, 0);
		p->freed_first++;
	}
}

/* The bucket of (stack, size), made if new; UINT64_MAX if over a limit. */
static uint64_t bucket_of(struct proc *p, uint32_t stack, uint64_t size)
{
	if (stack == PROC_STACK_OVER_LIMIT)
		return UINT64_MAX;
	/* Most stacks allocate one size over and over: the bucket a stack
	 * used last is tried before the table (a lookup there was a cache
	 * miss per event at rate 1). */
	struct stack *st = &p->stacks[stack];
	uint64_t b = UINT64_MAX, *v;
	if (st->last_bucket && p->buckets[st->last_bucket - 1].size == size &&
	    !p->buckets[st->last_bucket - 1].by_class)
		b = st->last_bucket - 1;
	else if ((v = map_find(&p->bucket_by_key, (uint64_t)stack + 1, size)))
		b = *v;
	if (b == UINT64_MAX) {
		if (p->nbuckets >= PROC_MAX_BUCKETS)
			return UINT64_MAX;
		GROW(p->buckets, p->cap_buckets, p->nbuckets + 1);
		b = p->nbuckets++;
		p->buckets[b] = (struct bucket){ .stack = stack, .size = size };
		peak_new_bucket(p, &p->buckets[b]);
		map_put(&p->bucket_by_key, (uint64_t)stack + 1, size, b);
	}
	st->last_bucket = (uint32_t)b + 1;
	return b;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Class buckets are keyed apart from sized ones: (stack + 1) | CLASS_KEY
 * cannot be a sized bucket's first key, a stack index being 32 bits. */
#define CLASS_KEY (1ULL << 40)

/* The bucket of (stack, size class), made if new; UINT64_MAX if over a
 * limit. */
static uint64_t class_bucket_of(struct proc *p, uint32_t stack, uint32_t size_class)
{
	if (stack == PROC_STACK_OVER_LIMIT)
		return UINT64_MAX;
	uint64_t *v = map_find(&p->bucket_by_key, ((uint64_t)stack + 1) | CLASS_KEY, size_class);
	if (v)
		return *v;
	if (p->nbuckets >= PROC_MAX_BUCKETS)
		return UINT64_MAX;
	GROW(p->buckets, p->cap_buckets, p->nbuckets + 1);
	uint64_t b = p->nbuckets++;
	p->buckets[b] = (struct bucket){ .stack = stack, .size = size_class, .by_class = true };
	peak_new_bucket(p, &p->buckets[b]);
	map_put(&p->bucket_by_key, ((uint64_t)stack + 1) | CLASS_KEY, size_class, b);
	return b;
}

/* What a total adds to a count, which a tally's totals replace. A fork
 * child's first totals meet what it copied of its parent's, which may be
 * later than the fork: totals can go down. In use: up by the difference,
 * or down by it, not below 0. */
static uint64_t more_of(uint64_t now, uint64_t was)
{
	return now > was ? now - was : 0;
}

static void move_inuse(uint64_t *inuse, uint64_t now, uint64_t was)
{
	if (now >= was)
		*inuse = sat_add(*inuse, now - was);
	else
		*inuse -= was - now < *inuse ? was - now : *inuse;
}

/* Totals for a (stack, size class) replace the ones before: what changed
 * is added to the bucket. */
static int add_tally(struct proc *p, const void *payload, uint32_t len, const char **why)
{
	struct mp_tally t;
	if (len != sizeof(t)) {
		*why = "malformed tally";
		return -1;
	}
	memcpy(&t, payload, sizeof(t));
	if (t.stack_id == 0 || t.stack_id > p->nwire_stacks) {
		*why = "tally names an unknown stack";
		return -1;
	}
	if (t.frees > t.allocs || t.free_bytes > t.alloc_bytes) {
		*why = "tally frees more than it allocated";
		return -1;
	}
	if (t.size_class >= MP_TALLY_CLASSES) {
		*why = "tally names no size class";
		return -1;
	}
	uint32_t stack = t.stack_id <= p->nwire_stacks_kept ? p->wire_stacks[t.stack_id - 1]
							   : PROC_STACK_OVER_LIMIT;
	uint64_t b = class_bucket_of(p, stack, t.size_class);
	if (b == UINT64_MAX) {
		p->over_limit_samples += t.allocs; /* a total: an upper bound */
		return 0;
	}
	struct bucket *bk = &p->buckets[b];
	peak_save(p, bk);
	uint64_t more = more_of(t.allocs, bk->tally_allocs);
	bk->alloc_samples = sat_add(bk->alloc_samples, more);
	bk->alloc_bytes = sat_add(bk->alloc_bytes, more_of(t.alloc_bytes, bk->tally_alloc_bytes));
	p->samples = sat_add(p->samples, more);
	move_inuse(&bk->inuse_samples, t.allocs - t.frees, bk->tally_allocs - bk->tally_frees);
	uint64_t was = bk->inuse_bytes;
	move_inuse(&bk->inuse_bytes, t.alloc_bytes - t.free_bytes,
		   bk->tally_alloc_bytes - bk->tally_free_bytes);
	if (bk->inuse_bytes > was)
		peak_grew_bytes(p, bk->inuse_bytes - was);
	else
		peak_shrank_bytes(p, was - bk->inuse_bytes);
	bk->tally_allocs = t.allocs;
	bk->tally_frees = t.frees;
	bk->tally_alloc_bytes = t.alloc_bytes;
	bk->tally_free_bytes = t.free_bytes;
	return 0;
}

static int add_alloc(struct proc *p, const void *payload, uint32_t len, const char **why)
{
	struct mp_alloc a;
	if (len != sizeof(a)) {
		*why = "malformed alloc";
		return -1;
	}
	memcpy(&a, payload, sizeof(a));
	if (a.stack_id == 0 || a.stack_id > p->nwire_stacks || a.addr == 0) {
		*why = "alloc names an unknown stack";
		return -1;
	}
	uint32_t stack = a.stack_id <= p->nwire_stacks_kept ? p->wire_stacks[a.stack_id - 1]
							   : PROC_STACK_OVER_LIMIT;
	/* A block we still think live at this address was freed without us
	 * hearing of it (a dropped event): forget it. */
	if (!a.id)
		release_block(p, a.addr, LIVE_BY_ADDR);
	/* Out of order is rare: no probe at all while nothing waits. */
	bool freed = a.id && p->freed_first && live_take(&p->live, a.id, FREED_FIRST, NULL);
	p->freed_first -= freed;
	uint64_t b = live_count(&p->live) < PROC_MAX_LIVE ? bucket_of(p, stack, a.size) : UINT64_MAX;
	if (b == UINT64_MAX) {
		p->over_limit_samples++;
		if (a.id && !freed && live_count(&p->live) < PROC_MAX_LIVE)
			live_put(&p->live, a.id, LIVE_BY_ID, NOT_KEPT);
		return 0;
	}
	p->samples++;
	peak_save(p, &p->buckets[b]);
	p->buckets[b].alloc_samples++;
	if (freed)
		return 0; /* allocated, and already freed */
	p->buckets[b].inuse_samples++;
	peak_grew(p, &p->buckets[b]);
	if (a.id)
		live_put(&p->live, a.id, LIVE_BY_ID, b);
	else
		live_put(&p->live, a.addr, LIVE_BY_ADDR, b);
	return 0;
}

static int add_cpu_sample(struct proc *p, const void *payload, uint32_t len, const char **why)
{
	struct mp_cpu_sample s;
	const unsigned char *q = payload;
	if (!take(&q, &len, &s, sizeof(s)) || s.stack_len > MP_CPU_STACK_MAX ||
	    s.stack_len != len || s.weight == 0) {
		*why = "malformed CPU sample";
		return -1;
	}
	uint64_t addrs[MP_MAX_FRAMES];
	uint32_t depth = unwind_sample(p, &s, q, addrs, MP_MAX_FRAMES);
	uint32_t stack = proc_intern_stack(p, addrs, depth);
	if (stack == PROC_STACK_OVER_LIMIT) {
		p->over_limit_samples += s.weight;
		return 0;
	}
	uint64_t *v = map_find(&p->cpu, (uint64_t)stack + 1, 0);
	if (v)
		*v += s.weight;
	else
		map_put(&p->cpu, (uint64_t)stack + 1, 0, s.weight);
	p->cpu_samples += s.weight;
	return 0;
}

int proc_apply(struct proc *p, uint32_t type, const void *payload, uint32_t len,
	       const char **why)
{
	p->active = true;
	switch (type) {
	case MP_REC_MAPPING:
		return add_mapping(p, payload, len, why);
	case MP_REC_STACK:
		return add_stack(p, payload, len, why);
	case MP_REC_ALLOC:
		return add_alloc(p, payload, len, why);
	case MP_REC_TALLY:
		return add_tally(p, payload, len, why);
	case MP_REC_FREE: {
		struct mp_free f;
		if (len != sizeof(f)) {
			*why = "malformed free";
			return -1;
		}
		memcpy(&f, payload, sizeof(f));
		add_free(p, &f);
		return 0;
	}
	case MP_REC_DROPS: {
		struct mp_drops d;
		if (len != sizeof(d)) {
			*why = "malformed drop count";
			return -1;
		}
		memcpy(&d, payload, sizeof(d));
		p->drops = d.events;
		p->cpu_drops = d.cpu_samples;
		return 0;
	}
	case MP_REC_CPU:
		return add_cpu_sample(p, payload, len, why);
	case MP_REC_MALLOC_STATS:
		if (len != sizeof(p->malloc_stats)) {
			*why = "malformed malloc statistics";
			return -1;
		}
		memcpy(&p->malloc_stats, payload, sizeof(p->malloc_stats));
		p->have_malloc_stats = true;
		p->malloc_stats_seq++;
		return 0;
	case MP_REC_BYE:
		if (len != 0) {
			*why = "malformed goodbye";
			return -1;
		}
		p->bye = true;
		return 0;
	case MP_REC_HELLO:
		*why = "second hello";
		return -1;
	default:
		*why = "unknown record type";
		return -1;
	}
}
