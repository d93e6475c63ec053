/*
 * The writer: the only place the shim talks to the collector. It drains
 * the event ring, turns captured stacks into stack ids (each distinct stack
 * crosses to the collector once), batches wire records and sends them.
 *
 * At the defaults it has no thread (see sring.c for why): the records go
 * into a ring shared with the collector, appended by whichever program
 * thread reaches a pump point first (after a sampled allocation or free,
 * memprof's signal handlers, exec, fork, exit), never waiting for room.
 * At rate 1, where this work is most of memprof's, it is a thread of its
 * own that sends over a socket; program threads never wait for it, except
 * when the ring is full (see ring.c).
 *
 * The connection lives in a descriptor table of the writer's own
 * (unshare(CLONE_FILES) before it connects): the program can neither close
 * it nor see a number of ours, and it never needs to be made again while
 * the program opens files (a new socket takes the lowest free number for
 * an instant). The keeper thread (keeper.c) does what needs the program's
 * table. Where unshare or the keeper is not to be had, the socket is in
 * the program's table, high up, checked before every use and made again
 * if the program closed it.
 */
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <linux/futex.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"
#include "unwind.h"

extern char *program_invocation_short_name;

static int sock_fd = -1;
static bool private_fds; /* sock_fd is in the writer's own table */
static dev_t sock_dev;
static ino_t sock_ino;
static bool sock_broken;

static pthread_t writer_thread;
static _Atomic bool alive;
static _Atomic uint32_t wake_word;   /* futex: bumped to wake the writer */
/* futex: FINISH_BYE or FINISH_PARK asked, FINISH_DONE done */
static _Atomic uint32_t finish_word;
enum { FINISH_NO = 0, FINISH_BYE = 1, FINISH_DONE = 2, FINISH_PARK = 3 };
static _Atomic pid_t writer_tid;
static bool parked;   /* the writer has gone; its caller owns the socket */
static bool forked;   /* this connection is a fork child's */
static pid_t owner_pid; /* the process the writer speaks for */
static _Atomic uint32_t sync_req, sync_done; /* futexes, see mp_writer_sync */
static bool said_bye;
static _Atomic bool dump_req;
static uint64_t drops_sent, cpu_drops, cpu_drops_sent;
static _Atomic uint64_t bytes_sent; /* progress, watched by mp_writer_finish */
/* The start: the writer connects, then says how that went (futex). */
enum { CONNECT_PENDING = 0, CONNECT_OK = 1, CONNECT_FAILED = 2 };
static _Atomic uint32_t connect_word;
static int connect_errno;
/* With a private table, the program's threads cannot use the socket: the
 * leak check's exchange is done by the writer for them (exchange_word),
 * with allocator statistics left alone while their world is stopped. */
static _Atomic bool world_stopped;
static _Atomic uint32_t exchange_req, exchange_done; /* futexes: asked, and answered */

/* The writer sleeps two ways. For a second after the ring last had
 * something it naps BUSY_POLL_MS at a time, so what the program did is in
 * the collector within milliseconds (an HTTP fetch sees it) while records
 * still go out in batches. After that it sleeps IDLE_POLL_MS at a time, so
 * an idle program is not woken often, and the first record committed wakes
 * it (mp_writer_sleeping). Besides: producers wake it when the ring is a
 * quarter full, CPU slots when half full, dump requests at once. */
#define BUSY_POLL_MS 20
#define GATHER_MS 1 /* at most this long between a round's events and their send */
#define BUSY_LINGER_NS 1000000000u
#define IDLE_POLL_MS 200
/* Tallies (tally.c) are added up and sent this often, and before a dump,
 * an exec, a fork or the goodbye: the collector's figures trail the
 * program's by at most this much. */
#define TALLY_MS 100
_Atomic bool mp_writer_sleeping;

static unsigned char outbuf[64 * 1024];
static size_t outlen;

/* With a shared ring (sring.c) there is no writer thread: whichever thread
 * reaches a pump point first sends what all have queued (pumping), and one
 * that finds it taken leaves a note (pump_wanted) that makes the other go
 * round once more. */
bool mp_writer_threadless;
static _Atomic bool pumping, pump_wanted;
static uint32_t stats_seen; /* the collector's last stats_asked answered */

/* ---- futex helpers: no fds, so a program that closes every fd cannot make
 * us write into one of its files ---------------------------------------- */

void mp_futex_wake(_Atomic uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void mp_futex_wait(_Atomic uint32_t *w, uint32_t seen, long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, seen, ms < 0 ? NULL : &ts, NULL, 0);
}

pid_t mp_await_tid(_Atomic pid_t *tid, bool (*running)(void))
{
	/* Up to a second, in waits the thread ends when it stores its id and
	 * wakes the futex. */
	for (int i = 0; i < 100 && running() && !atomic_load(tid); i++)
		mp_futex_wait((_Atomic uint32_t *)tid, 0, 10);
	return atomic_load(tid);
}

void mp_writer_wake(void)
{
	if (mp_writer_threadless) {
		atomic_store(&pump_wanted, true);
		return;
	}
	atomic_fetch_add_explicit(&wake_word, 1, memory_order_release);
	mp_futex_wake(&wake_word);
}

void mp_writer_request_dump(void)
{
	atomic_store(&dump_req, true);
	if (mp_writer_threadless)
		mp_writer_pump_from_signal();
	else
		mp_writer_wake();
}

bool mp_writer_alive(void)
{
	return atomic_load_explicit(&alive, memory_order_relaxed);
}

/* ---- the socket ----------------------------------------------------------- */

/* Is sock_fd still the socket we opened? A program may close descriptors it
 * does not know about and reuse the number for a file of its own. */
static bool sock_is_ours(void)
{
	if (private_fds)
		return sock_fd >= 0;
	struct stat st;
	return fstat(sock_fd, &st) == 0 && st.st_dev == sock_dev && st.st_ino == sock_ino;
}

static void lose_collector(const char *why, int err)
{
	if (!sock_broken) {
		char msg[160];
		mp_format(msg, sizeof(msg), "%s (%s)", why, strerror(err));
		mp_disable(msg);
	}
	sock_broken = true;
}

/* The ring cannot take what must go now: the collector has stopped
 * reading. Records cannot be left out of the stream one by one (a stack
 * must come before what names it), so the stream ends here. */
static void ring_overflow(void)
{
	if (!sock_broken)
		mp_disable("the collector has taken nothing for a while (its ring is full); "
			   "profiling stopped");
	sock_broken = true;
}

static void send_all(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	if (sock_broken)
		return;
	if (mp_writer_threadless) {
		if (mp_sring_room() < len)
			ring_overflow();
		else
			mp_sring_put(buf, len);
		return;
	}
	if (!sock_is_ours()) {
		/* Gone in the middle of a record (flush reconnects between
		 * records). Quietly: see reconnect. */
		sock_broken = true;
		mp_disable(NULL);
		return;
	}
	while (len) {
		ssize_t n = send(sock_fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			lose_collector("lost the collector; profiling stopped", errno);
			return;
		}
		p += n;
		len -= (size_t)n;
		atomic_fetch_add_explicit(&bytes_sent, (uint64_t)n, memory_order_relaxed);
	}
}

static int reconnect(void);

static void flush(void)
{
	if (mp_writer_threadless) {
		/* What does not fit waits at the front of outbuf. */
		size_t n = sock_broken ? outlen : mp_sring_put(outbuf, outlen);
		memmove(outbuf, outbuf + n, outlen - n);
		outlen -= n;
		return;
	}
	/* The program closed (or reused) our descriptor: a daemon's
	 * closefrom, or a subprocess module closing everything between fork
	 * and exec. Connect again and go on, between two records. Quietly
	 * if that fails: a line on a stderr the parent may be reading would
	 * be ours in its output. */
	if (outlen && !sock_broken && !sock_is_ours() && reconnect() != 0) {
		sock_broken = true;
		mp_disable(NULL);
	}
	send_all(outbuf, outlen);
	outlen = 0;
}

/* Room for a record of len payload bytes at the end of outbuf (which has
 * it: put_record sends longer ones itself), its header written: as one
 * word, since two 32-bit stores read back as one 64-bit load stall store
 * forwarding. Returns where the payload goes. */
static inline unsigned char *put_room(uint32_t type, uint32_t len)
{
	if (outlen + sizeof(struct mp_rec_hdr) + len > sizeof(outbuf)) {
		flush();
		if (outlen + sizeof(struct mp_rec_hdr) + len > sizeof(outbuf)) {
			ring_overflow(); /* only a full ring leaves outbuf full */
			outlen = 0;
		}
	}
	unsigned char *o = outbuf + outlen;
	uint64_t hdr = type | (uint64_t)len << 32;
	memcpy(o, &hdr, sizeof(hdr));
	outlen += sizeof(struct mp_rec_hdr) + len;
	return o + sizeof(struct mp_rec_hdr);
}

static inline void put_u64(unsigned char *o, uint64_t v)
{
	memcpy(o, &v, sizeof(v));
}

_Static_assert(offsetof(struct mp_alloc, reserved) == offsetof(struct mp_alloc, stack_id) + 4,
	       "stack_id and reserved are written as one word");

struct piece {
	const void *p;
	size_t n;
};

/* Appends a record whose payload is the concatenation of the pieces. */
static void put_record(uint32_t type, const struct piece *pc, int npc)
{
	size_t payload = 0;
	for (int i = 0; i < npc; i++)
		payload += pc[i].n;
	if (sizeof(struct mp_rec_hdr) + payload > sizeof(outbuf)) {
		struct mp_rec_hdr hdr = { type, (uint32_t)payload };
		flush();
		send_all(&hdr, sizeof(hdr));
		for (int i = 0; i < npc; i++)
			send_all(pc[i].p, pc[i].n);
		return;
	}
	unsigned char *o = put_room(type, (uint32_t)payload);
	for (int i = 0; i < npc; i++) {
		if (pc[i].n)
			memcpy(o, pc[i].p, pc[i].n);
		o += pc[i].n;
	}
}

static void put_simple(uint32_t type, const void *p, size_t n)
{
	struct piece pc = { p, n };
	put_record(type, &pc, 1);
}

static int connect_collector(void)
{
	/* Out of the low numbers programs expect to get from open() at once,
	 * before connect and the peer check: a program that closes every
	 * descriptor (closefrom) while this runs could otherwise close the
	 * new socket and open a file of its own under its number, which
	 * connect, the check or the move would then close. */
	int fd = mp_fd_high(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	if (fd < 0)
		return -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, mp_cfg.socket, strlen(mp_cfg.socket) + 1);
	int rc;
	do
		rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	/* Nothing is sent before we know who listens: whoever binds the path
	 * first (another user, in a shared directory) would otherwise get
	 * our command line, addresses and stack copies, and could answer a
	 * leak check (issue 12). The kernel says who called listen(). */
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 || clen != sizeof(cred) ||
	    cred.uid != geteuid()) {
		static bool said;
		if (!said)
			mp_log("the collector at %s runs as uid %u, not as you (uid %u); "
			       "nothing is sent to it", mp_cfg.socket,
			       clen == sizeof(cred) ? (unsigned)cred.uid : ~0U, (unsigned)geteuid());
		said = true;
		close(fd);
		errno = EACCES;
		return -1;
	}
	struct stat st;
	fstat(fd, &st);
	sock_dev = st.st_dev;
	sock_ino = st.st_ino;
	sock_fd = fd;
	sock_broken = false;
	return 0;
}

/* ---- HELLO ---------------------------------------------------------------- */

/* The program's name as it will appear in file names: argv[0]'s basename
 * as it was when the program started (servers such as nginx overwrite
 * argv with a status line later), with anything but [A-Za-z0-9._+-]
 * replaced. A fork child inherits its parent's. */
static char start_name[80];

/* Where argv's strings lie, one after another, as the kernel placed them:
 * the command line is read from there when a hello is sent, as
 * /proc/self/cmdline would give it (a server's retitled fork children show
 * their new titles) but with no descriptor opened inside the program. */
static const char *args_start, *args_end;

static uint64_t realtime_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* When this image began (the constructor; a fork child: the fork). The
 * collector settles an exec notice with a hello that started later, so it
 * must be this, not when the hello happened to be sent: a shell that execs
 * before its writer first connected sends its hello after its notice. */
static uint64_t image_start_ns;

void mp_writer_note_start(int argc, char **argv)
{
	image_start_ns = realtime_now_ns();
	const char *s = program_invocation_short_name;
	size_t n = s ? strlen(s) : 0;
	if (n >= sizeof(start_name))
		n = sizeof(start_name) - 1;
	memcpy(start_name, s ? s : "", n);
	start_name[n] = '\0';
	if (argc > 0 && argv && argv[0] && argv[argc - 1]) {
		args_start = argv[0];
		args_end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
		if (args_end < args_start)
			args_start = args_end = NULL;
	}
}

static size_t command_line(char *out, size_t size)
{
	size_t n = args_start ? (size_t)(args_end - args_start) : 0;
	if (n > size)
		n = size;
	if (n)
		memcpy(out, args_start, n);
	return n;
}

static size_t program_name(char *out, size_t size)
{
	const char *s = start_name;
	size_t n = 0;
	for (; s && s[n] && n < size - 1 && n < 64; n++) {
		char c = s[n];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '+' || c == '-';
		out[n] = ok ? c : '_';
	}
	if (n == 0 || out[0] == '.')
		n = (size_t)mp_format(out, size, "prog");
	return n;
}

/* CLOCK_REALTIME at the hello: with the pid, what names this image to the
 * collector when it connects again. */
static uint64_t hello_start_ns;
static bool hello_delivered; /* the first hello has been sent */
static unsigned reconnects;
#define MAX_RECONNECTS 100 /* a program that closes our socket in a loop */

static int connect_collector(void);

/* The fixed part of a hello for this image; the strings' lengths are the
 * caller's to fill in. */
static struct mp_hello hello_of(uint32_t flags)
{
	return (struct mp_hello){
		.magic = MP_WIRE_MAGIC,
		.version = MP_WIRE_VERSION,
		.pid = (uint32_t)getpid(),
		.ppid = (uint32_t)getppid(),
		.rate = mp_cfg.rate,
		.cpu_hz = mp_cfg.cpu_hz,
		.flags = flags | (mp_cfg.full_trace ? MP_HELLO_FULL_TRACE : 0) |
			 (forked ? MP_HELLO_FORKED : 0) |
			 (mp_malloc_is_glibc ? MP_HELLO_MALLOC_STATS : 0),
		.start_ns = hello_start_ns,
	};
}

/* A new connection for the same image: a resuming hello, and the stream
 * goes on where the old connection ended (stack ids and all). */
static int reconnect(void)
{
	if (!hello_start_ns || reconnects >= MAX_RECONNECTS || connect_collector() != 0)
		return -1;
	reconnects++;
	/* Closed before the first hello went out (a fork child's program
	 * closing every descriptor at once): the hello, still at the head of
	 * what is queued, goes out on the new connection instead. */
	if (!hello_delivered)
		return 0;
	struct mp_hello h = hello_of(MP_HELLO_RESUMED);
	struct mp_rec_hdr hdr = { MP_REC_HELLO, sizeof(h) };
	unsigned char rec[sizeof(hdr) + sizeof(h)];
	memcpy(rec, &hdr, sizeof(hdr));
	memcpy(rec + sizeof(hdr), &h, sizeof(h));
	send_all(rec, sizeof(rec));
	return sock_broken ? -1 : 0;
}

static void send_hello(uint32_t flags)
{
	static char exe[1024], name[80], cmdline[4096];
	ssize_t exe_len = readlink("/proc/self/exe", exe, sizeof(exe));
	if (exe_len < 0)
		exe_len = 0;
	size_t name_len = program_name(name, sizeof(name));
	size_t cmd_len = command_line(cmdline, sizeof(cmdline));
	hello_start_ns = image_start_ns;
	reconnects = 0;
	struct mp_hello h = hello_of(flags);
	h.exe_len = (uint32_t)exe_len;
	h.name_len = (uint32_t)name_len;
	h.cmdline_len = (uint32_t)cmd_len;
	struct piece pc[] = {
		{ &h, sizeof(h) }, { exe, (size_t)exe_len }, { name, name_len }, { cmdline, cmd_len },
	};
	put_record(MP_REC_HELLO, pc, 4);
}

/* ---- stack interning ------------------------------------------------------ */

struct stack_slot {
	uint64_t hash;
	uint32_t id; /* 0 = empty */
	uint32_t depth;
	uint64_t off; /* index of the first pc in pcs[] */
};

static struct stack_slot *stack_tab;
static uint32_t stack_cap, stack_count;
static uint64_t *pcs_arena;
static uint64_t pcs_used, pcs_cap;

static int stack_grow(void)
{
	uint32_t ncap = stack_cap ? stack_cap * 2 : 4096;
	struct stack_slot *nt = mp_map_zeroed(ncap * sizeof(*nt));
	if (!nt)
		return -1;
	for (uint32_t i = 0; i < stack_cap; i++) {
		if (!stack_tab[i].id)
			continue;
		uint32_t j = (uint32_t)stack_tab[i].hash & (ncap - 1);
		while (nt[j].id)
			j = (j + 1) & (ncap - 1);
		nt[j] = stack_tab[i];
	}
	if (stack_tab)
		munmap(stack_tab, stack_cap * sizeof(*stack_tab));
	stack_tab = nt;
	stack_cap = ncap;
	return 0;
}

/* The id of this stack, sending its definition first if it is new; 0 if
 * out of memory. */
static uint32_t intern_stack(const uint64_t *pcs, uint32_t depth)
{
	uint64_t h = mp_hash_pcs(pcs, depth);
	if (stack_cap == 0 && stack_grow() != 0)
		return 0;
	uint32_t j = (uint32_t)h & (stack_cap - 1);
	for (; stack_tab[j].id; j = (j + 1) & (stack_cap - 1)) {
		struct stack_slot *s = &stack_tab[j];
		if (s->hash == h && s->depth == depth &&
		    memcmp(pcs_arena + s->off, pcs, depth * sizeof(uint64_t)) == 0)
			return s->id;
	}
	if (pcs_used + depth > pcs_cap) {
		uint64_t ncap = pcs_cap ? pcs_cap * 2 : 65536;
		while (ncap < pcs_used + depth)
			ncap *= 2;
		uint64_t *na = pcs_arena ? mremap(pcs_arena, pcs_cap * sizeof(uint64_t),
						   ncap * sizeof(uint64_t), MREMAP_MAYMOVE)
					 : mp_map_zeroed(ncap * sizeof(uint64_t));
		if (!na || na == MAP_FAILED)
			return 0;
		pcs_arena = na;
		pcs_cap = ncap;
	}
	if ((stack_count + 1) * 2 > stack_cap) {
		if (stack_grow() != 0)
			return 0;
		j = (uint32_t)h & (stack_cap - 1);
		while (stack_tab[j].id)
			j = (j + 1) & (stack_cap - 1);
	}
	memcpy(pcs_arena + pcs_used, pcs, depth * sizeof(uint64_t));
	struct stack_slot *s = &stack_tab[j];
	s->hash = h;
	s->id = ++stack_count;
	s->depth = depth;
	s->off = pcs_used;
	pcs_used += depth;
	struct mp_stack st = { s->id, depth };
	struct piece pc[] = { { &st, sizeof(st) }, { pcs, depth * sizeof(uint64_t) } };
	put_record(MP_REC_STACK, pc, 2);
	return s->id;
}

/*
 * Stacks left out of events (MP_EV_SAME_STACK): for each thread's ring,
 * the stack id each of the unwinder's memo entries last gave, as the
 * ring's last full event from that entry carried it (0: none). Mapped per
 * ring at its first full event from a memo entry.
 */
static uint32_t *same_ids[MP_TRING_MAX];

static uint32_t *same_id_of(uint16_t ring, uint8_t way, bool make)
{
	if (ring == 0 || ring > MP_TRING_MAX || way >= MP_MEMO_WAYS)
		return NULL;
	uint32_t **set = &same_ids[ring - 1];
	if (!*set && make)
		*set = mp_map_zeroed(sizeof(uint32_t) * MP_MEMO_WAYS);
	return *set ? &(*set)[way] : NULL;
}

/* The stack id of an allocation event; 0 to skip it (counted as a drop
 * if the stack could not be had). */
static uint32_t stack_of(const struct mp_ev_alloc *ev, uint32_t len)
{
	uint32_t id = 0, *same;
	if (ev->flags & MP_EV_SAME_STACK) {
		/* Only after a full event of the same ring and entry (in
		 * this process: a fork child's first events are full). */
		same = same_id_of(ev->ring, ev->way, false);
		id = same ? *same : 0;
	} else {
		if (ev->depth == 0 || len < sizeof(*ev) + ev->depth * sizeof(uint64_t))
			return 0;
		id = intern_stack(ev->pcs, ev->depth);
		/* Even when it failed (0): an entry must never give the stack
		 * of an earlier event for a later one's. */
		if (ev->ring && (same = same_id_of(ev->ring, ev->way, true)))
			*same = id;
	}
	if (!id)
		atomic_fetch_add_explicit(&mp_dropped, 1, memory_order_relaxed);
	return id;
}

/* ---- tallies --------------------------------------------------------------- */

/* The wire stack id of each gid (tally.c), 0 = not yet sent; mapped at the
 * first tally. */
static uint32_t *tally_wire;
static uint64_t tally_last_ns;
static _Atomic bool tally_soon;

void mp_writer_send_tallies_soon(void)
{
	atomic_store_explicit(&tally_soon, true, memory_order_relaxed);
	mp_writer_wake();
}

static void emit_tally(uint32_t gid, const struct mp_tally *totals)
{
	if (gid > MP_TALLY_GIDS)
		return;
	if (!tally_wire && !(tally_wire = mp_map_zeroed((MP_TALLY_GIDS + 1) * sizeof(uint32_t))))
		return;
	if (!tally_wire[gid]) {
		uint32_t depth;
		const uint64_t *pcs = mp_tally_stack(gid, &depth);
		if (!pcs || !(tally_wire[gid] = intern_stack(pcs, depth)))
			return;
	}
	struct mp_tally t = *totals;
	t.stack_id = tally_wire[gid];
	memcpy(put_room(MP_REC_TALLY, sizeof(t)), &t, sizeof(t));
}

/* Sends the totals that changed, every TALLY_MS or at once (now).
 * gid_limit: the gids made before the shared ring, which carries their
 * mappings, was drained. */
static void send_tallies(bool now, uint32_t gid_limit)
{
	uint64_t t = mp_now_ns();
	now |= atomic_exchange_explicit(&tally_soon, false, memory_order_relaxed);
	if (!now && t - tally_last_ns < TALLY_MS * 1000000ull)
		return;
	tally_last_ns = t;
	mp_tally_sum(gid_limit, emit_tally);
	/* A free read before its allocation can leave the sum "below 0"
	 * for a round. */
	uint64_t inuse = mp_tally_sum_inuse(), step = inuse >> 62 ? 0 : inuse / 32;
	atomic_store_explicit(&mp_tally_step, step > MP_TALLY_STEP_MIN ? step : MP_TALLY_STEP_MIN,
			      memory_order_relaxed);
}

static void stack_reset(void)
{
	/* After fork the parent's tables may have been mid-update; abandon
	 * them (copies in the child's memory) rather than trust them. */
	stack_tab = NULL;
	stack_cap = stack_count = 0;
	pcs_arena = NULL;
	pcs_used = pcs_cap = 0;
	/* The same goes for the same-stack ids (their copies stay mapped:
	 * the parent's writer may have been changing them). A fork child's
	 * first event from each memo entry carries its stack again
	 * (mp_sample_fork_child). */
	memset(same_ids, 0, sizeof(same_ids));
	/* Tallies: every total is sent again, as the child's. */
	tally_wire = NULL;
	tally_last_ns = 0;
	mp_tally_sum_reset();
}

/* ---- the thread ----------------------------------------------------------- */

/* outbuf holds what must not wait for more (see writer_main's gather): a
 * dump request, or an exec notice, which the collector must have before
 * the new image runs (a vfork child's parent may not sync before it). */
static bool send_now;

static void on_event(uint32_t type, const void *payload, uint32_t len)
{
	switch (type) {
	case MP_EV_ALLOC: {
		const struct mp_ev_alloc *ev = payload;
		uint32_t id = stack_of(ev, len);
		if (!id)
			return;
		unsigned char *o = put_room(MP_REC_ALLOC, sizeof(struct mp_alloc));
		put_u64(o + offsetof(struct mp_alloc, addr), ev->addr);
		put_u64(o + offsetof(struct mp_alloc, size), ev->size);
		/* stack_id and reserved, one word */
		put_u64(o + offsetof(struct mp_alloc, stack_id), id);
		put_u64(o + offsetof(struct mp_alloc, id), ev->id);
		break;
	}
	case MP_EV_FREE:
		memcpy(put_room(MP_REC_FREE, sizeof(struct mp_free)), payload, sizeof(struct mp_free));
		break;
	case MP_EV_TALLY_FREE: {
		uint64_t word;
		memcpy(&word, payload, sizeof(word));
		mp_tally_sum_loose_free(word);
		break;
	}
	case MP_EV_WIRE: {
		const struct mp_rec_hdr *h = payload;
		put_simple(h->type, h + 1, h->len);
		send_now |= h->type == MP_REC_EXEC;
		break;
	}
	}
}

static void send_drops(void)
{
	uint64_t d = atomic_load(&mp_dropped);
	if (d != drops_sent || cpu_drops != cpu_drops_sent) {
		struct mp_drops r = { d, cpu_drops };
		put_simple(MP_REC_DROPS, &r, sizeof(r));
		drops_sent = d;
		cpu_drops_sent = cpu_drops;
	}
}

/* mallinfo2 takes every arena's lock and walks every free list: its cost
 * grows with the heap (a fifth of perl's cycles when it was read once a
 * second; 62 ms at the exit of a 1.6-1.9 s std::map churn, whose
 * fastbins held 424,000 chunks), so it is read only when the collector asks, for
 * the ?debug=1 page: not for dumps, whose files do not carry it, and not
 * at exit. Only from this thread (or the one that owns the connection),
 * never while the program's threads are stopped. */
static void send_malloc_stats(void)
{
	if (!mp_malloc_is_glibc)
		return; /* mallinfo2 would describe glibc's idle arena */
	struct mallinfo2 mi = mallinfo2();
	struct mp_malloc_stats st = {
		mi.arena, mi.hblkhd, mi.uordblks, mi.fordblks, mi.keepcost, mi.ordblks,
	};
	put_simple(MP_REC_MALLOC_STATS, &st, sizeof(st));
}

/* Requests from the collector, read without waiting on each of the
 * writer's rounds. A record the shim does not know is skipped. */
static bool stats_asked(void)
{
	if (mp_writer_threadless)
		return mp_sring_stats_asked(&stats_seen);
	bool asked = false;
	struct mp_rec_hdr h;
	while (!sock_broken && sock_is_ours() &&
	       recv(sock_fd, &h, sizeof(h), MSG_DONTWAIT | MSG_PEEK) == (ssize_t)sizeof(h) &&
	       h.len == 0 && recv(sock_fd, &h, sizeof(h), MSG_DONTWAIT) == (ssize_t)sizeof(h))
		asked |= h.type == MP_REC_STATS_REQUEST;
	return asked;
}

static void on_cpu_sample(pid_t tid, uint32_t weight, const uint64_t *regs, const void *stack,
			  uint32_t stack_len)
{
	struct mp_cpu_sample s = { (uint32_t)tid, weight, stack_len, 0, { 0 } };
	memcpy(s.regs, regs, sizeof(s.regs));
	struct piece pc[] = { { &s, sizeof(s) }, { stack, stack_len } };
	put_record(MP_REC_CPU, pc, 2);
}

/* CPU samples point into whatever was loaded when they were taken: with
 * samples waiting, queues the mappings of anything new, to be sent before
 * them; false to leave the samples for next time:
 *  - a fork in progress may be waiting for this very thread to send what
 *    is queued (mp_writer_sync): not at the gate;
 *  - a signal handler may have interrupted the loader, whose list of
 *    objects is then half made (r_state says so). */
static bool mappings_before_cpu(void)
{
	if (!mp_cpu_pending() || _r_debug.r_state != RT_CONSISTENT || !mp_gate_try_enter())
		return false;
	mp_mappings_check();
	mp_gate_leave();
	return true;
}

/* The mappings, then the samples. */
static size_t drain_cpu(void)
{
	if (!mappings_before_cpu())
		return 0;
	size_t n = mp_ring_drain(on_event), all = SIZE_MAX;
	cpu_drops += mp_cpu_drain(on_cpu_sample, &all);
	return n + 1;
}

static void writer_sleep(uint32_t seen, uint64_t last_busy)
{
	if (mp_now_ns() - last_busy < BUSY_LINGER_NS) {
		mp_futex_wait(&wake_word, seen, BUSY_POLL_MS);
		return;
	}
	/* Say so, then look once more: a record committed before the flag was
	 * visible is seen here, one committed after sees the flag (the fence
	 * in mp_ring_commit) and wakes us. */
	atomic_store(&mp_writer_sleeping, true);
	atomic_thread_fence(memory_order_seq_cst);
	if (!mp_ring_ready() && !(mp_trings_on && mp_trings_ready()))
		mp_futex_wait(&wake_word, seen, mp_tally_on ? TALLY_MS : IDLE_POLL_MS);
	atomic_store(&mp_writer_sleeping, false);
}

/* Sends what is queued: events, CPU samples, a dump request. Returns how
 * many records (and CPU batches) it handled, the ring's in *ring_n. stats:
 * allocator statistics may be read (not while the program's threads are
 * stopped: mallinfo2 takes locks they may hold). Run by the writer, or by
 * the thread that owns the connection once the writer has stopped. */

static size_t pump(size_t *ring_n, bool stats)
{
	/* The shared ring holds the mappings that the stacks in the
	 * per-thread rings may need: a record committed in a thread's ring
	 * before the snapshot had its mapping committed before it, and goes
	 * only once the shared ring has been drained past that point. */
	uint32_t gid_limit = mp_tally_on ? mp_tally_stacks_made() : 0;
	if (mp_trings_on)
		mp_trings_snapshot();
	*ring_n = mp_ring_drain(on_event);
	if (mp_trings_on && !mp_ring_blocked())
		*ring_n += mp_trings_drain(on_event);
	size_t n = *ring_n + drain_cpu();
	if (stats && stats_asked())
		send_malloc_stats();
	/* Before the dump record, which asks for profiles with them in. */
	if (mp_tally_on)
		send_tallies(atomic_load(&dump_req) || atomic_load(&finish_word) != FINISH_NO ||
				     atomic_load(&sync_req) != atomic_load(&sync_done),
			     gid_limit);
	if (atomic_exchange(&dump_req, false)) {
		send_drops();
		put_simple(MP_REC_DUMP, NULL, 0);
		send_now = true;
	}
	return n;
}

/* On a parked connection: everything queued, sent from the calling thread. */
static void pump_parked(void)
{
	size_t ring_n;
	while (pump(&ring_n, false))
		;
	flush();
}

/* ---- without a thread: the shared ring ---------------------------------------- */

/* Room each batch may need in the ring: an event is at most a stack (128
 * frames) and its allocation, or a wire record (a mapping's path); a CPU
 * sample is at most its registers and 16 KiB of stack. Whatever finds no
 * room stays queued, where the drops are counted if the queue fills. */
#define EVENT_BATCH 32
#define EVENT_BATCH_ROOM (EVENT_BATCH * 8192)
#define CPU_BATCH 4
#define CPU_BATCH_ROOM (CPU_BATCH * (sizeof(struct mp_rec_hdr) + sizeof(struct mp_cpu_sample) + \
				    MP_CPU_STACK_MAX))

static bool ring_room_for(size_t need)
{
	flush();
	return !sock_broken && mp_sring_room() >= outlen + need;
}

/* The events queued so far, as far as the ring has room; false if some
 * stay queued. */
static bool ring_drain_events(void)
{
	for (;;) {
		if (!ring_room_for(EVENT_BATCH_ROOM))
			return false;
		if (mp_ring_drain_max(on_event, EVENT_BATCH) < EVENT_BATCH)
			return !mp_ring_blocked();
	}
}

/* The mappings, then as many samples as the ring has room for. */
static void ring_drain_cpu(void)
{
	if (!mappings_before_cpu() || !ring_drain_events())
		return;
	for (size_t n = CPU_BATCH; n == CPU_BATCH && ring_room_for(CPU_BATCH_ROOM);)
		cpu_drops += mp_cpu_drain(on_cpu_sample, &n);
}

/* One round, by the thread holding pumping. stats: not in a signal
 * handler, and holding none of malloc's locks (mallinfo2 takes them).
 * cpu: not called from inside the shim's own work (whose mappings check
 * may be the one interrupted). */
static void ring_pump(bool stats, bool cpu)
{
	if (ring_drain_events() && cpu)
		ring_drain_cpu();
	if (stats && stats_asked())
		send_malloc_stats();
	if (atomic_exchange(&dump_req, false)) {
		send_drops();
		put_simple(MP_REC_DUMP, NULL, 0);
	}
	flush();
}

static void pump_here(bool normal)
{
	/* Not in a vfork child, nor in a child made by clone without fork's
	 * handlers: the ring is the parent's, and so is what is queued (the
	 * parent sends it at its next pump). */
	if (getpid() != owner_pid)
		return;
	atomic_store(&pump_wanted, true);
	while (atomic_load(&pump_wanted) && !atomic_exchange(&pumping, true)) {
		atomic_store(&pump_wanted, false);
		mp_tls.busy++;
		ring_pump(normal, true);
		mp_tls.busy--;
		atomic_store(&pumping, false);
	}
}

void mp_writer_pump_point(void)
{
	if (mp_writer_threadless && !mp_tls.busy)
		pump_here(true);
}

void mp_writer_pump_from_signal(void)
{
	if (!mp_writer_threadless)
		return;
	/* In the middle of the shim's own work its state is half changed:
	 * the interrupted code pumps when it is done (pump_wanted). */
	if (mp_tls.busy)
		atomic_store(&pump_wanted, true);
	else
		pump_here(false);
}

/* Takes the pump for a caller that must send now, waiting up to stall_ms
 * for the thread that holds it; from inside the shim (a signal handler's
 * _exit) only if it is free, since the holder may be this very thread. */
static bool take_pump(int stall_ms)
{
	for (int waited = 0; atomic_exchange(&pumping, true); waited++) {
		if (mp_tls.busy || waited >= stall_ms)
			return false;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	atomic_store(&pump_wanted, false);
	return true;
}

/* Everything queued, sent while the collector keeps taking it: gives up
 * after stall_ms without progress. bye: then the goodbye, the last record
 * (other threads may still be sampling while exit runs; nothing of theirs
 * goes after it). Called before an exec, a fork, _exit and at exit, maybe
 * from a signal handler (_exit): malloc's statistics are left for a pump
 * point, and from inside the shim the CPU samples too. */
static void pump_all(int stall_ms, bool bye)
{
	if (said_bye || getpid() != owner_pid)
		return;
	bool cpu = !mp_tls.busy;
	if (!take_pump(stall_ms))
		return;
	mp_tls.busy++;
	uint64_t stall = (uint64_t)stall_ms * 1000000u, progress = mp_now_ns();
	size_t room = mp_sring_room();
	for (;;) {
		ring_pump(false, cpu);
		if (!cpu || sock_broken || (!outlen && mp_ring_empty() && !mp_cpu_pending()))
			break;
		uint64_t now = mp_now_ns();
		size_t r = mp_sring_room();
		if (r > room) /* the collector took some */
			progress = now;
		room = r;
		if (now - progress > stall)
			break;
		struct timespec ts = { 0, 1000000 };
		nanosleep(&ts, NULL);
	}
	if (bye) {
		send_drops();
		put_simple(MP_REC_BYE, NULL, 0);
		flush();
		said_bye = true;
		sock_broken = true;
	}
	mp_tls.busy--;
	atomic_store(&pumping, false);
}

/* Connects, sends the hello with the ring's memfd, and closes the
 * connection: from here on the ring is the way. 0; 1 where a ring cannot
 * be had (the writer thread goes instead); -1 if the collector cannot be
 * reached (errno). */
static int start_threadless(void)
{
	if (mp_cfg.full_trace || mp_cfg.writer_thread)
		return 1;
	if (connect_collector() != 0)
		return -1;
	int rfd = mp_sring_create();
	if (rfd < 0) {
		close(sock_fd);
		sock_fd = -1;
		return 1;
	}
	send_hello(MP_HELLO_SHARED_RING);
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = { outbuf, outlen };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			      .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &rfd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock_fd, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	int e = errno;
	/* The rest of a hello too long for one send goes as plain bytes. */
	if (n > 0 && (size_t)n < outlen)
		send_all(outbuf + n, outlen - (size_t)n);
	close(rfd);
	close(sock_fd);
	sock_fd = -1;
	outlen = 0;
	if (n <= 0 || sock_broken) {
		mp_sring_forget();
		errno = n < 0 ? e : EPIPE;
		return -1;
	}
	hello_delivered = true;
	mp_writer_threadless = true;
	return 0;
}

/* The program has no thread of its own left, so glibc, which counts this
 * one, will not end the process: end it as glibc would have, with
 * exit(0), from here. What is queued goes out first; the goodbye is sent
 * at the very end of exit (mp_stop), after the program's atexit handlers,
 * by this same thread, which owns the connection from now on. */
static void orphan_exit(void)
{
	pump_parked();
	parked = true;
	atomic_store(&alive, false);
	atomic_store(&finish_word, FINISH_DONE);
	mp_exit_for_program();
}

/* Every descriptor of the table this thread now has alone: they are the
 * program's, and a copy held here would keep a pipe from reaching its end
 * of file when the program closes it (a daemon closing its stdout, which
 * the shell that started it reads until then). */
static void close_all_fds(void)
{
	if (syscall(SYS_close_range, 0U, ~0U, 0U) == 0)
		return;
	struct rlimit rl;
	rlim_t max = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 65536;
	if (max == RLIM_INFINITY || max > 65536)
		max = 65536;
	for (rlim_t fd = 0; fd < max; fd++)
		close((int)fd);
}

/* A descriptor table of this thread's own, empty, if the keeper runs to
 * do what needs the program's and the kernel lets us (a container's
 * seccomp filter may refuse unshare). */
static void go_private(void)
{
	if (!mp_keeper_running())
		return;
	if (syscall(SYS_unshare, CLONE_FILES) != 0) {
		mp_keeper_stop(true); /* refused (seccomp): nothing for it to do */
		return;
	}
	close_all_fds();
	private_fds = true;
	mp_log_to_keeper = true;
}

/* A leak exchange asked for by a program thread (mp_writer_leak_exchange). */
static void serve_exchange(void);

static void *writer_main(void *arg)
{
	(void)arg;
	mp_tls.busy = 1; /* everything this thread allocates is the shim's */
	atomic_store(&writer_tid, (pid_t)syscall(SYS_gettid));
	mp_futex_wake((_Atomic uint32_t *)&writer_tid);
	go_private();
	if (connect_collector() != 0) {
		connect_errno = errno;
		atomic_store(&alive, false);
		atomic_store(&connect_word, CONNECT_FAILED);
		mp_futex_wake(&connect_word);
		return NULL;
	}
	atomic_store(&connect_word, CONNECT_OK);
	mp_futex_wake(&connect_word);
	send_hello(0);
	flush();
	hello_delivered = true;
	uint64_t last_busy = mp_now_ns();
	struct mp_orphan_watch watch = { 0, 0 };
	for (;;) {
		uint32_t seen = atomic_load_explicit(&wake_word, memory_order_acquire);
		/* Read before draining: a sync asked for before this drain is
		 * answered once a drain finds nothing more. */
		uint32_t req = atomic_load(&sync_req);
		uint32_t finish = atomic_load(&finish_word);
		size_t ring_n;
		/* Parking is for the leak check, with the program's threads
		 * stopped: mallinfo2 could wait on their locks. */
		size_t n = pump(&ring_n, finish != FINISH_PARK && !atomic_load(&world_stopped));
		if (n == 0 && atomic_load(&exchange_req) != atomic_load(&exchange_done))
			serve_exchange();
		if ((finish == FINISH_BYE || finish == FINISH_PARK) && n == 0) {
			send_drops();
			if (finish == FINISH_BYE) {
				put_simple(MP_REC_BYE, NULL, 0);
				said_bye = true;
			}
			flush();
			atomic_store(&alive, false);
			atomic_store(&finish_word, FINISH_DONE);
			mp_futex_wake(&finish_word);
			return NULL;
		}
		/* A round that found only a little to send, while the program
		 * is producing, waits for more rather than send it at once:
		 * a send (and the collector's read, and their checks) per few
		 * events was most of a single-threaded program's system time
		 * at rate 1 (sqlite3: 23,000 sends for 100,000 inserts). A
		 * producer wakes the writer when its ring is a quarter full;
		 * an idle round, a dump, an exec notice or a full buffer sends
		 * at once. */
		bool gather = ring_n && !send_now && outlen < sizeof(outbuf) / 4;
		if (outlen && !gather) {
			flush();
			send_now = false;
		}
		if (n == 0 && req != atomic_load(&sync_done)) {
			atomic_store(&sync_done, req);
			mp_futex_wake(&sync_done);
		}
		if (ring_n)
			last_busy = mp_now_ns();
		/* Unless the keeper runs: then it is the keeper's to do. */
		long nap_ms = n == 0 && !private_fds ? mp_orphan_watch(&watch) : -1;
		if (nap_ms == 0)
			orphan_exit();
		else if (nap_ms > 0)
			mp_futex_wait(&wake_word, seen, nap_ms);
		else if (n == 0)
			writer_sleep(seen, last_busy);
		else if (gather)
			mp_futex_wait(&wake_word, seen, GATHER_MS);
	}
}

int mp_writer_start(void)
{
	owner_pid = getpid();
	parked = said_bye = false;
	int rc = start_threadless();
	if (rc == 0)
		return 0;
	if (rc < 0) {
		mp_log("cannot reach the collector at %s (%s); profiling is off", mp_cfg.socket,
		       strerror(errno));
		return -1;
	}
	atomic_store(&finish_word, FINISH_NO);
	atomic_store(&writer_tid, 0);
	atomic_store(&connect_word, CONNECT_PENDING);
	atomic_store(&world_stopped, false);
	/* Without the keeper the writer keeps its socket in the program's
	 * table (go_private). */
	mp_keeper_start();
	atomic_store(&alive, true);
	rc = mp_start_own_thread(&writer_thread, writer_main, "memprof-writer");
	if (rc != 0) {
		atomic_store(&alive, false);
		mp_keeper_stop(true);
		mp_log("cannot start the writer thread (%s); profiling is off", strerror(rc));
		return -1;
	}
	/* The program starts once the writer has connected, or not: the
	 * constructor says which (connecting to a Unix socket does not wait
	 * for the collector to accept). */
	uint32_t c;
	while ((c = atomic_load(&connect_word)) == CONNECT_PENDING)
		mp_futex_wait(&connect_word, CONNECT_PENDING, 100);
	if (c == CONNECT_FAILED) {
		/* The keeper prints what the writer said first. */
		mp_keeper_stop(true);
		mp_log("cannot reach the collector at %s (%s); profiling is off", mp_cfg.socket,
		       strerror(connect_errno));
		return -1;
	}
	return 0;
}

static long elapsed_ms(const struct timespec *since)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* Watches the writer's sending: waits are held as long as data gets
 * through, and given up once nothing has been sent for stall_ms. */
struct progress {
	uint64_t seen;  /* bytes_sent when last looked at */
	uint64_t since; /* when it last changed, mp_now_ns */
};

static struct progress progress_start(void)
{
	return (struct progress){ atomic_load(&bytes_sent), mp_now_ns() };
}

static bool progress_stalled(struct progress *p, int stall_ms)
{
	uint64_t sent = atomic_load(&bytes_sent), now = mp_now_ns();
	if (sent != p->seen) {
		p->seen = sent;
		p->since = now;
		return false;
	}
	return now - p->since > (uint64_t)stall_ms * 1000000u;
}

/* Asks the writer to stop (with or without a goodbye) and waits while it
 * makes progress; true once it has stopped. */
static bool stop_writer(uint32_t how, int stall_ms)
{
	if (!mp_writer_alive())
		return atomic_load(&finish_word) == FINISH_DONE;
	atomic_store(&finish_word, how);
	mp_writer_wake();
	/* A collector that takes nothing for stall_ms is not worth holding
	 * the exit for. */
	struct progress p = progress_start();
	while (atomic_load(&finish_word) != FINISH_DONE) {
		mp_futex_wait(&finish_word, how, 20);
		if (progress_stalled(&p, stall_ms))
			break;
	}
	return atomic_load(&finish_word) == FINISH_DONE;
}

void mp_writer_finish(int stall_ms)
{
	if (mp_writer_threadless)
		pump_all(stall_ms, true);
	else if (parked)
		mp_writer_bye();
	else
		stop_writer(FINISH_BYE, stall_ms);
}

pid_t mp_writer_tid(void)
{
	/* The thread says who it is when it first runs, which on a busy
	 * machine may be milliseconds after it was made: the leak check,
	 * which must know which thread not to stop, waits for that here
	 * rather than every program's start. */
	return mp_await_tid(&writer_tid, mp_writer_alive);
}

int mp_writer_park(int stall_ms)
{
	atomic_store(&world_stopped, true);
	if (private_fds) {
		/* The caller cannot reach the socket: the writer stays, sends
		 * what is queued now and does the exchange for it. */
		mp_writer_sync(stall_ms);
		return mp_writer_alive() && !sock_broken ? 0 : -1;
	}
	if (parked) /* the writer ended the process (orphan_exit) */
		pump_parked();
	else
		parked = stop_writer(FINISH_PARK, stall_ms);
	return parked && !sock_broken ? 0 : -1;
}

void mp_writer_bye(void)
{
	if (mp_writer_threadless) {
		pump_all(1000, true);
	} else if (parked && !said_bye) {
		pump_parked();
		send_drops();
		put_simple(MP_REC_BYE, NULL, 0);
		flush();
		said_bye = true;
	} else if (!parked) {
		mp_writer_finish(1000);
	}
}

/* Reads exactly len bytes, waiting at most until deadline_ms has passed. */
static int read_full(void *buf, size_t len, const struct timespec *since, long deadline_ms)
{
	unsigned char *p = buf;
	while (len) {
		long left = deadline_ms - elapsed_ms(since);
		struct pollfd pfd = { sock_fd, POLLIN, 0 };
		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return -1;
		ssize_t n = recv(sock_fd, p, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The exchange, on the thread that can reach the socket. */
static int leak_exchange_here(const struct mp_leak *leaks, size_t n, int status, uint32_t unscanned,
			      const char *suppressions, struct mp_leak_report *report, char **text)
{
	if (sock_broken || !sock_is_ours())
		return -1;
	const size_t per_record = (MP_REC_MAX_PAYLOAD - sizeof(struct mp_leaks)) / sizeof(*leaks);
	for (size_t off = 0; off < n; off += per_record) {
		size_t k = n - off < per_record ? n - off : per_record;
		struct mp_leaks h = { (uint32_t)k, 0 };
		struct piece pc[] = { { &h, sizeof(h) }, { leaks + off, k * sizeof(*leaks) } };
		put_record(MP_REC_LEAKS, pc, 2);
	}
	struct mp_leak_end end = { status, unscanned, (uint32_t)strlen(suppressions), 0 };
	struct piece pc[] = { { &end, sizeof(end) }, { suppressions, end.path_len } };
	put_record(MP_REC_LEAK_END, pc, 2);
	flush();
	if (sock_broken)
		return -1;
	/* Symbolizing every leaked stack can take the collector a while. */
	struct timespec since;
	clock_gettime(CLOCK_MONOTONIC, &since);
	const long deadline = 120000;
	struct mp_rec_hdr h;
	do /* a statistics request may come first */
		if (read_full(&h, sizeof(h), &since, deadline) != 0)
			return -1;
	while (h.type == MP_REC_STATS_REQUEST && h.len == 0);
	if (h.type != MP_REC_LEAK_REPORT ||
	    h.len < sizeof(*report) || read_full(report, sizeof(*report), &since, deadline) != 0 ||
	    report->text_len != h.len - sizeof(*report))
		return -1;
	*text = NULL;
	if (report->text_len) {
		void *m = mmap(NULL, report->text_len, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED || read_full(m, report->text_len, &since, deadline) != 0)
			return -1;
		*text = m;
	}
	return 0;
}

static struct {
	const struct mp_leak *leaks;
	size_t n;
	int status;
	uint32_t unscanned;
	const char *suppressions;
	struct mp_leak_report *report;
	char **text;
	int rc;
} asked;

static void serve_exchange(void)
{
	uint32_t req = atomic_load(&exchange_req);
	asked.rc = leak_exchange_here(asked.leaks, asked.n, asked.status, asked.unscanned,
				      asked.suppressions, asked.report, asked.text);
	atomic_store(&exchange_done, req);
	mp_futex_wake(&exchange_done);
}

int mp_writer_leak_exchange(const struct mp_leak *leaks, size_t n, int status, uint32_t unscanned,
			    const char *suppressions, struct mp_leak_report *report, char **text)
{
	if (!private_fds)
		return parked ? leak_exchange_here(leaks, n, status, unscanned, suppressions, report,
						   text)
			      : -1;
	if (!mp_writer_alive())
		return -1;
	asked = (__typeof__(asked)){ leaks, n, status, unscanned, suppressions, report, text, -1 };
	uint32_t req = atomic_fetch_add(&exchange_req, 1) + 1;
	mp_writer_wake();
	/* The writer waits up to 120 s for the report (leak_exchange_here);
	 * a writer stuck in a send to a collector that takes nothing is
	 * given up on when nothing has moved for as long. */
	struct progress p = progress_start();
	for (uint32_t done; (done = atomic_load(&exchange_done)) != req;) {
		if (!mp_writer_alive() || progress_stalled(&p, 125000))
			return -1;
		mp_futex_wait(&exchange_done, done, 20);
	}
	return asked.rc;
}

void mp_writer_sync(int stall_ms)
{
	if (mp_writer_threadless) {
		pump_all(stall_ms, false);
		return;
	}
	/* A vfork child shares our memory but is not the process the writer
	 * speaks for. */
	if (!mp_writer_alive() || getpid() != owner_pid)
		return;
	uint32_t req = atomic_fetch_add(&sync_req, 1) + 1;
	mp_writer_wake();
	struct progress p = progress_start();
	for (uint32_t done; (done = atomic_load(&sync_done)) != req && (int32_t)(done - req) < 0;) {
		if (progress_stalled(&p, stall_ms))
			return;
		mp_futex_wait(&sync_done, done, 5);
	}
}

void mp_writer_fork_child(void)
{
	forked = true;
	/* The ring is shared with the parent: this process writes its own. */
	mp_sring_forget();
	mp_writer_threadless = false;
	atomic_store(&pumping, false);
	atomic_store(&pump_wanted, false);
	stats_seen = 0;
	image_start_ns = realtime_now_ns();
	hello_start_ns = 0;
	hello_delivered = false;
	/* The parent's connection stays the parent's: close our copy so that
	 * the collector sees the parent's end when the parent exits (unless
	 * the program has put a descriptor of its own under that number). */
	if (!private_fds && sock_fd >= 0 && sock_is_ours())
		close(sock_fd);
	sock_fd = -1;
	private_fds = false; /* that table stayed with the parent's writer */
	mp_keeper_fork_child();
	atomic_store(&alive, false);
	atomic_store(&mp_writer_sleeping, false);
	atomic_store(&dump_req, false);
	outlen = 0;
	drops_sent = cpu_drops = cpu_drops_sent = 0;
	atomic_store(&mp_dropped, 0);
	stack_reset();
}
