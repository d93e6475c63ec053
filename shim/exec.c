/*
 * exec and posix_spawn: the wrappers send what the writer has not sent yet
 * before the process image is replaced, and tell the collector which
 * program each process is about to become (an exec notice, MP_REC_EXEC in
 * memprof_wire.h). Without the first, the samples of the last moments
 * before an exec die with the image, and a program that allocates and then
 * execs, as shells and launchers do, shows a profile with nothing in it.
 * Without the second, a process that becomes a program the shim cannot
 * enter (statically linked, setuid, LD_PRELOAD cleared) simply vanishes,
 * and `memprof check` would pass a tree it never checked.
 *
 * glibc's own exec family calls its internal execve directly, so every
 * variant is wrapped, each forwarding to the real execve, execvpe, fexecve
 * or execveat as glibc would. exec is async-signal-safe and may be called
 * from a vfork child: the wrappers never allocate, take a lock or open a
 * descriptor (the program's descriptors are the program's: see the path
 * rules below), the real functions are found at initialisation, and the
 * writer is not asked from a vfork child (mp_writer_sync checks). A vfork
 * child's notice goes into its parent's ring, which it shares, and the
 * parent's writer sends it: the collector matches notices by pid, not by
 * connection.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define MP_EXPORT __attribute__((visibility("default")))

/* A collector that takes nothing for this long does not hold up the exec. */
#define EXEC_STALL_MS 50

extern char **environ;

/* The real function, or, if exec comes before initialisation (from an
 * earlier constructor), looked up now. */
#define REAL(name) (mp_real.name ? mp_real.name : (__typeof__(mp_real.name))mp_real_symbol(#name))

/* For a real function that could not be found. */
static int no_real(void)
{
	errno = ENOSYS;
	return -1;
}

static bool recording(void)
{
	return atomic_load_explicit(&mp_state, memory_order_acquire) == MP_STATE_ON;
}

/* ---- the shim's own path, to recognise it in LD_PRELOAD -------------------- */

/* Written once by the constructor below, read-only afterwards: the name the
 * loader knows us by (as LD_PRELOAD gave it, perhaps relative) and its
 * canonical form. Empty if unknown, and then no notice claims that the
 * preload was lost. */
static char self_name[PATH_MAX], self_real[PATH_MAX];

__attribute__((constructor(102))) static void exec_init(void)
{
	Dl_info info;
	if (!dladdr((void *)exec_init, &info) || !info.dli_fname || !info.dli_fname[0] ||
	    strlen(info.dli_fname) >= sizeof(self_name))
		return;
	mp_tls.busy++; /* realpath may allocate: that is ours, not the program's */
	memcpy(self_name, info.dli_fname, strlen(info.dli_fname) + 1);
	if (!realpath(self_name, self_real))
		self_real[0] = '\0';
	mp_tls.busy--;
}

/* Does this entry of LD_PRELOAD (len bytes at s) name us? */
static bool names_us(const char *s, size_t len)
{
	return (self_name[0] && strlen(self_name) == len && memcmp(s, self_name, len) == 0) ||
	       (self_real[0] && strlen(self_real) == len && memcmp(s, self_real, len) == 0);
}

/* Will the new image load us? Only LD_PRELOAD in the environment it is
 * given says so (entries separated by spaces or colons, as ld.so reads
 * them). When we do not know our own name, we do not claim it was lost. */
static bool env_preloads_us(char *const envp[])
{
	if (!self_name[0])
		return true;
	for (char *const *e = envp; e && *e; e++) {
		if (strncmp(*e, "LD_PRELOAD=", 11) != 0)
			continue;
		for (const char *s = *e + 11; *s;) {
			size_t n = strcspn(s, " :");
			if (n && names_us(s, n))
				return true;
			s += n;
			if (*s)
				s++;
		}
	}
	return false;
}

/* ---- which program: absolute paths without malloc or descriptors -------- */

/* Appends a, then b, to out (size bytes, NUL-terminated); false if it does
 * not fit. */
static bool join(char *out, size_t size, const char *a, const char *b)
{
	size_t na = strlen(a), nb = strlen(b);
	if (na + nb + 2 > size)
		return false;
	memmove(out, a, na);
	size_t n = na;
	if (n && out[n - 1] != '/' && nb)
		out[n++] = '/';
	memcpy(out + n, b, nb);
	out[n + nb] = '\0';
	return true;
}

/* The working directory, by the system call itself: glibc's getcwd falls
 * back to walking the tree with open directories when the path is long,
 * which would put descriptors in the program. */
static bool cwd(char *out, size_t size)
{
	long n = syscall(SYS_getcwd, out, size);
	return n > 0 && out[0] == '/';
}

/* path (relative to the working directory unless absolute) made absolute
 * in out; "./" prefixes are dropped. False if it cannot be. */
static bool absolute(const char *path, char *out, size_t size)
{
	if (path[0] == '/')
		return join(out, size, path, "");
	while (path[0] == '.' && path[1] == '/')
		path += 2;
	char dir[PATH_MAX];
	return cwd(dir, sizeof(dir)) && join(out, size, dir, path);
}

/* What a descriptor refers to, from /proc/self/fd (readlink opens nothing). */
static bool fd_path(int fd, char *out, size_t size)
{
	char link[40];
	mp_format(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, out, size - 1);
	if (n <= 0)
		return false;
	out[n] = '\0';
	return out[0] == '/';
}

/* file looked up in PATH as execvp does (the caller's PATH, glibc's default
 * when unset, an empty entry meaning the working directory): the first
 * regular file we may execute. A name with a slash is a path. Candidates
 * are built in out itself, to keep a vfork child's use of the stack small. */
static bool search_path(const char *file, char *out, size_t size)
{
	if (strchr(file, '/'))
		return absolute(file, out, size);
	const char *p = getenv("PATH");
	if (!p)
		p = "/bin:/usr/bin";
	size_t nf = strlen(file);
	for (;;) {
		size_t n = strcspn(p, ":");
		struct stat st;
		if (n + nf + 3 <= size) {
			memcpy(out, n ? p : ".", n ? n : 1);
			out[n ? n : 1] = '\0';
			if (join(out, size, out, file) && access(out, X_OK) == 0 &&
			    stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
				if (out[0] == '/')
					return true;
				char rel[PATH_MAX];
				memcpy(rel, out, strlen(out) + 1);
				return absolute(rel, out, size);
			}
		}
		if (!p[n])
			return false;
		p += n + 1;
	}
}

/* ---- the notices ------------------------------------------------------------ */

struct notice {
	bool recording;   /* before_exec ran: undo what it did on failure */
	bool queued;      /* a notice went out: a failure must cancel it */
	pid_t pid;
	char path[PATH_MAX];
};

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Queues one MP_REC_EXEC wire record on the event ring, as mappings.c does
 * for mappings; false if the ring had no room. */
static bool queue_notice(pid_t pid, uint32_t flags, uint64_t time_ns, const char *path)
{
	size_t path_len = strlen(path);
	uint32_t len = (uint32_t)(sizeof(struct mp_rec_hdr) + sizeof(struct mp_exec) + path_len);
	unsigned char *rec = mp_ring_reserve(MP_EV_WIRE, len);
	if (!rec)
		return false;
	struct mp_rec_hdr hdr = { MP_REC_EXEC, len - (uint32_t)sizeof(hdr) };
	struct mp_exec ex = {
		.pid = (uint32_t)pid,
		.flags = flags,
		.time_ns = time_ns,
		.path_len = (uint32_t)path_len,
	};
	memcpy(rec, &hdr, sizeof(hdr));
	memcpy(rec + sizeof(hdr), &ex, sizeof(ex));
	memcpy(rec + sizeof(hdr) + sizeof(ex), path, path_len);
	mp_ring_commit(rec);
	/* The writer may be napping: a vfork child's parent, or posix_spawn's
	 * caller, may _exit soon (dash does), before its next look. Without
	 * a writer, this thread sends it (fork may be called from a signal
	 * handler: as from one). */
	mp_writer_wake();
	mp_writer_pump_from_signal();
	return true;
}

/* Before an exec by this process (a vfork child included): says which
 * program it becomes (n->path, already resolved, or "" when it could not
 * be) and whether that image will load us. */
static void notice_exec(struct notice *n, char *const envp[])
{
	n->pid = (pid_t)syscall(SYS_getpid); /* a vfork child's own pid */
	uint32_t flags = env_preloads_us(envp) ? 0 : MP_EXEC_NO_PRELOAD;
	n->queued = queue_notice(n->pid, flags, realtime_ns(), n->path);
}

/* After an exec that returned: the process runs on as it was. */
static void notice_failed(const struct notice *n)
{
	if (!n->recording)
		return;
	int saved = errno;
	mp_signals_after_exec();
	if (n->queued)
		queue_notice(n->pid, MP_EXEC_FAILED, realtime_ns(), n->path);
	errno = saved;
}

/* Sends what is queued, and gives the new image the signal dispositions
 * it would inherit without memprof (signals.c). */
static void before_exec(struct notice *n)
{
	int saved = errno;
	n->recording = true;
	mp_writer_sync(EXEC_STALL_MS);
	mp_signals_before_exec();
	errno = saved;
}

/* ---- the exec family -------------------------------------------------------- */

/* What every wrapper does: say what the process becomes, send what is
 * queued, exec with the path as given (exec_path) or searched for in PATH
 * (exec_file); if the exec returns, say so. */
static int exec_path(const char *path, char *const argv[], char *const envp[])
{
	struct notice n = { 0 };
	if (recording()) {
		if (!path || !absolute(path, n.path, sizeof(n.path)))
			n.path[0] = '\0';
		notice_exec(&n, envp);
		before_exec(&n);
	}
	int rc = mp_real.execve ? mp_real.execve(path, argv, envp)
				: (int)syscall(SYS_execve, path, argv, envp);
	notice_failed(&n);
	return rc;
}

static int exec_file(const char *file, char *const argv[], char *const envp[])
{
	struct notice n = { 0 };
	if (recording()) {
		if (!file || !search_path(file, n.path, sizeof(n.path)))
			n.path[0] = '\0';
		notice_exec(&n, envp);
		before_exec(&n);
	}
	int (*fn)(const char *, char *const[], char *const[]) = REAL(execvpe);
	int rc = fn ? fn(file, argv, envp) : no_real();
	notice_failed(&n);
	return rc;
}

MP_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	return exec_path(path, argv, envp);
}

MP_EXPORT int execv(const char *path, char *const argv[])
{
	return exec_path(path, argv, environ);
}

MP_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return exec_file(file, argv, envp);
}

MP_EXPORT int execvp(const char *file, char *const argv[])
{
	return exec_file(file, argv, environ);
}

MP_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	struct notice n = { 0 };
	if (recording()) {
		if (!fd_path(fd, n.path, sizeof(n.path)))
			n.path[0] = '\0';
		notice_exec(&n, envp);
		before_exec(&n);
	}
	int (*fn)(int, char *const[], char *const[]) = REAL(fexecve);
	int rc = fn ? fn(fd, argv, envp) : no_real();
	notice_failed(&n);
	return rc;
}

/* execveat's path: absolute, or the descriptor itself (AT_EMPTY_PATH), or
 * relative to the working directory or to the directory dirfd names. */
static bool at_path(int dirfd, const char *path, int flags, char *out, size_t size)
{
	if (!path)
		return false;
	if (path[0] == '/')
		return absolute(path, out, size);
	if (!path[0] && (flags & AT_EMPTY_PATH))
		return fd_path(dirfd, out, size);
	if (dirfd == AT_FDCWD)
		return absolute(path, out, size);
	char dir[PATH_MAX];
	return fd_path(dirfd, dir, sizeof(dir)) && join(out, size, dir, path);
}

MP_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		       int flags)
{
	struct notice n = { 0 };
	if (recording()) {
		if (!at_path(dirfd, path, flags, n.path, sizeof(n.path)))
			n.path[0] = '\0';
		notice_exec(&n, envp);
		before_exec(&n);
	}
	int (*fn)(int, const char *, char *const[], char *const[], int) = REAL(execveat);
	int rc = fn ? fn(dirfd, path, argv, envp, flags)
		    : (int)syscall(SYS_execveat, dirfd, path, argv, envp, flags);
	notice_failed(&n);
	return rc;
}

/* The list forms gather their arguments into an array on the stack, as
 * glibc does (no malloc: a vfork child may call them). */
static size_t count_args(const char *first, va_list ap)
{
	size_t n = 1;
	if (first)
		while (va_arg(ap, const char *))
			n++;
	return n;
}

static void gather_args(char **argv, size_t n, const char *first, va_list *ap)
{
	argv[0] = (char *)first;
	for (size_t i = 1; i < n; i++)
		argv[i] = va_arg(*ap, char *);
	argv[n] = NULL;
	if (first)
		(void)va_arg(*ap, char *); /* the terminating NULL */
}

#define LIST_TO_ARGV(argv, first, ap)                                 \
	va_list ap, count_;                                           \
	va_start(ap, first);                                          \
	va_copy(count_, ap);                                          \
	size_t n_ = count_args(first, count_);                        \
	va_end(count_);                                               \
	char *argv[n_ + 1];                                           \
	gather_args(argv, n_, first, &ap)

MP_EXPORT int execl(const char *path, const char *arg, ...)
{
	LIST_TO_ARGV(argv, arg, ap);
	va_end(ap);
	return exec_path(path, argv, environ);
}

MP_EXPORT int execlp(const char *file, const char *arg, ...)
{
	LIST_TO_ARGV(argv, arg, ap);
	va_end(ap);
	return exec_file(file, argv, environ);
}

MP_EXPORT int execle(const char *path, const char *arg, ...)
{
	LIST_TO_ARGV(argv, arg, ap);
	char *const *envp = va_arg(ap, char *const *);
	va_end(ap);
	return exec_path(path, argv, envp);
}

/* ---- posix_spawn -------------------------------------------------------------- */

/*
 * glibc's posix_spawn runs the new program from a child that shares our
 * memory and calls the kernel's execve itself, past every wrapper above.
 * So the caller reports the child, after the fact, with MP_EXEC_SPAWNED:
 * the time is taken before the call, so that the child's hello, whenever
 * it comes, is not earlier than the notice. (system() and popen() use
 * glibc's internal posix_spawn and are not seen; what they run is usually
 * a shell, which is.) The real functions are looked up on first use:
 * mp_real has no room for them, and a spawn is never on a fast path.
 */
typedef int spawn_fn(pid_t *, const char *, const posix_spawn_file_actions_t *,
		     const posix_spawnattr_t *, char *const[], char *const[]);

static spawn_fn *real_spawn(_Atomic(spawn_fn *) *cache, const char *name)
{
	spawn_fn *fn = atomic_load_explicit(cache, memory_order_relaxed);
	if (!fn) {
		fn = (spawn_fn *)mp_real_symbol(name);
		atomic_store_explicit(cache, fn, memory_order_relaxed);
	}
	return fn;
}

static int spawn(spawn_fn *fn, bool search, pid_t *pid, const char *file,
		 const posix_spawn_file_actions_t *actions, const posix_spawnattr_t *attr,
		 char *const argv[], char *const envp[])
{
	if (!fn)
		return ENOSYS;
	if (!recording())
		return fn(pid, file, actions, attr, argv, envp);
	uint64_t t = realtime_ns();
	pid_t child;
	mp_signals_before_exec();
	int rc = fn(&child, file, actions, attr, argv, envp);
	mp_signals_after_exec();
	if (rc != 0)
		return rc;
	if (pid)
		*pid = child;
	int saved = errno;
	char path[PATH_MAX];
	if (!file || !(search ? search_path(file, path, sizeof(path))
			      : absolute(file, path, sizeof(path))))
		path[0] = '\0';
	uint32_t flags = MP_EXEC_SPAWNED | (env_preloads_us(envp) ? 0 : MP_EXEC_NO_PRELOAD);
	queue_notice(child, flags, t, path);
	errno = saved;
	return 0;
}

/* fork: the child connects from its own writer thread, after fork has
 * returned; a parent that exits at once (a daemon) may be gone before that.
 * Its notice, queued before its own goodbye, tells the collector to wait
 * for the child. The time is taken before the fork so that the child's
 * start (taken in the child) is later. Async-signal-safe, as fork is. */
/* _exit and _Exit end the process without exit's handlers, so without
 * memprof's goodbye: what the writer had not sent yet died with it. dash
 * leaves by _exit, and a vfork child's exec notice travels in its parent's
 * queue (see queue_notice): on a busy machine a shell's last command was
 * sometimes never named to the collector. Every fork child that does not
 * exec leaves this way too. So what is queued is sent first, as before an
 * exec; in a vfork child, whose queue is its parent's, nothing is waited
 * for (mp_writer_sync). glibc's exit reaches the kernel by its own path,
 * not through these. */
static _Noreturn void leave_now(int status)
{
	if (recording())
		mp_writer_sync(EXEC_STALL_MS);
	for (;;) {
		syscall(SYS_exit_group, status);
		syscall(SYS_exit, status);
	}
}

MP_EXPORT void _exit(int status)
{
	leave_now(status);
}

MP_EXPORT void _Exit(int status)
{
	leave_now(status);
}

MP_EXPORT pid_t fork(void)
{
	if (!mp_real.fork) {
		mp_init();
		if (!mp_real.fork) {
			errno = ENOSYS;
			return -1;
		}
	}
	if (!recording())
		return mp_real.fork();
	uint64_t t = realtime_ns();
	pid_t pid = mp_real.fork();
	if (pid > 0) {
		int saved = errno;
		queue_notice(pid, MP_EXEC_FORKED, t, "");
		errno = saved;
	}
	return pid;
}

MP_EXPORT int posix_spawn(pid_t *restrict pid, const char *restrict path,
			  const posix_spawn_file_actions_t *actions,
			  const posix_spawnattr_t *restrict attr, char *const argv[restrict],
			  char *const envp[restrict])
{
	static _Atomic(spawn_fn *) real;
	return spawn(real_spawn(&real, "posix_spawn"), false, pid, path, actions, attr, argv,
		     envp);
}

MP_EXPORT int posix_spawnp(pid_t *restrict pid, const char *restrict file,
			   const posix_spawn_file_actions_t *actions,
			   const posix_spawnattr_t *restrict attr, char *const argv[restrict],
			   char *const envp[restrict])
{
	static _Atomic(spawn_fn *) real;
	return spawn(real_spawn(&real, "posix_spawnp"), true, pid, file, actions, attr, argv,
		     envp);
}
