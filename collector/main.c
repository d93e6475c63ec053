/*
 * memprof-collector: the event loop. One thread, one epoll set: the
 * listening socket, the clients, a signalfd (USR2 = dump every process,
 * USR1 = leave once nobody is left, HUP = the front end has gone, TERM/INT
 * = final dumps and exit) and timerfds (periodic dumps; noticing that
 * every process has gone). Everything else is in the modules: conn.c
 * (records), proc.c (state), execs.c (exec notices), dump.c and pprof.c
 * (files), http.c (the /debug/pprof/ server, whose descriptors have tags of
 * its own).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "collector.h"
#include "execs.h"
#include "inspect.h"
#include "http.h"
#include "pprof_builder.h"
#include "symbolize.h"
#include "ui.h"
#include "util.h"
#include "vdso.h"

static int epfd = -1;

/* Tags for epoll_event.data.u64 other than connections (which use the
 * pointer). */
enum { TAG_LISTEN = 1, TAG_SIGNAL = 2, TAG_INTERVAL = 3, TAG_IDLE = 4 };

/* Private mode: how long nobody must be connected before we leave. An
 * exec does not leave a gap (the old image's connection stays, detached,
 * until the new one says hello: conn.c), nor does a fork (the child
 * connects before fork returns); this covers a child still on its way. */
#define PRIVATE_GRACE_NS (100ULL * 1000000ULL)
/* How long a process that exec'd or was spawned from a notice, and still
 * runs, may take to say hello before we stop waiting for it. */
#define EXEC_WAIT_NS (10ULL * 1000000000ULL)
#define TICK_MS 100
#define PRIVATE_NOBODY_NS (60ULL * 1000000000ULL) /* no client ever came */
/* After USR1: how long nobody must be connected before we leave. A fork
 * child connects from the child, so a parent that forks and exits at once
 * (a daemon) may be gone before its child has connected. */
#define LEAVE_SETTLE_NS (30ULL * 1000000ULL)
#define LEAVE_TICK_MS 10

/* What the collector is waiting for before it leaves, and who cleans up. */
static struct {
	int lfd, sfd, interval_fd, idle_fd;
	uint64_t started;       /* CLOCK_MONOTONIC at startup */
	bool stop;              /* leave now */
	bool leaving;           /* USR1: leave once nobody is left */
	uint64_t leave_asked;   /* when USR1 came */
	bool front_gone;        /* HUP: the front end left without us */
	const char *own_dir;    /* --own-dir: removed after a HUP */
	const char *socket;     /* the socket path, if we listen on a path */
} life = { -1, -1, -1, -1, 0, false, false, 0, false, NULL, NULL };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: memprof-collector [--socket PATH] [--dir DIR] [--interval SEC]\n"
		"                         [--http ADDR:PORT] [--verbose]\n"
		"       memprof-collector --view [--http ADDR:PORT] [--base FILE] FILE...\n"
		"       memprof-collector --top [-cum] [-nodecount N] [-sample_index NAME] FILE...\n"
		"       memprof-collector --version\n"
		"\n"
		"Collects heap and CPU samples from programs run with\n"
		"  MEMPROF_SOCKET=PATH LD_PRELOAD=/path/to/libmemprof.so program ...\n"
		"and writes pprof profiles DIR/<prog>.<pid>.<seq>.heap.pb.gz on kill -USR2 of a\n"
		"program (that program) or of the collector (every program), every SEC seconds,\n"
		"and when a program exits.\n"
		"\n"
		"  --socket PATH    where to listen (default $XDG_RUNTIME_DIR/memprof.sock,\n"
		"                   else /tmp/memprof-$UID/sock)\n"
		"  --dir DIR        where profiles go (default ./memprof-out)\n"
		"  --interval SEC   also dump every SEC seconds (default 0: off)\n"
		"  --http ADDR:PORT serve Go's /debug/pprof/ endpoints there (ADDR: an IP\n"
		"                   address or localhost; 127.0.0.1 if left out; PORT 0:\n"
		"                   any free port, printed at startup)\n"
		"  --verbose        say what connects and which files are written, and which\n"
		"                   processes ran programs memprof cannot see\n"
		"\n"
		"Signals:\n"
		"  USR2      write every process's profiles now\n"
		"  USR1      leave once no process is connected and no exec is still to\n"
		"            be heard of (sent by memprof run/check when their command exits)\n"
		"  HUP       the front end has left: let go of stdin, stdout and stderr, and\n"
		"            remove its --own-dir on leaving\n"
		"  TERM/INT  final profiles now, then exit; a process still connected is\n"
		"            reported as not checked (\"unchecked PID running EXE\")\n"
		"\n"
		"For the front end: --report FILE (what was seen, one line per event),\n"
		"--own-dir DIR (the front end's directory of socket and report), --inspect PATH\n"
		"(print why memprof cannot see a program: static, setuid, 32-bit, not-found or\n"
		"unknown), --private and --listen-fd FD (a collector started by the shim).\n");
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max || s[0] == '-')
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, mode) != 0 && errno != EEXIST)
		return -1;
	struct stat st;
	if (stat(tmp, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

static void default_socket(char *out, size_t size)
{
	const char *run = getenv("XDG_RUNTIME_DIR");
	if (run && *run && strlen(run) < 80) {
		snprintf(out, size, "%s/memprof.sock", run);
		return;
	}
	char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/memprof-%u", (unsigned)getuid());
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		log_msg("cannot create %s: %s", dir, strerror(errno));
	snprintf(out, size, "%s/sock", dir);
}

/* Binds path, replacing a stale socket but never a live collector's. */
static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_msg("socket path too long (%zu bytes, at most %zu): %s", strlen(path),
			sizeof(sa.sun_path) - 1, path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		log_msg("another collector is already listening on %s", path);
		close(fd);
		return -1;
	}
	close(fd);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	mode_t old = umask(0177); /* the socket is for our own user only */
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0 || listen(fd, 512) != 0) {
		log_msg("cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void watch(int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		log_msg("epoll_ctl: %s", strerror(errno));
		exit(1);
	}
}

/* Before final dumps: take in whatever the clients already sent. */
static void drain_all(void)
{
	conn_drain_all();
}

static int make_timer(unsigned period_ms)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return -1;
	struct itimerspec its = {
		.it_interval = { period_ms / 1000, (long)(period_ms % 1000) * 1000000L },
		.it_value = { period_ms / 1000, (long)(period_ms % 1000) * 1000000L },
	};
	timerfd_settime(fd, 0, &its, NULL);
	return fd;
}

/* Detaches from the process that started us (a shim): its first process
 * exits at once so that the shim's waitpid returns, and the collector is
 * never the profiled program's child. Nor does it keep the program's
 * stderr: whoever reads that pipe waits for every writer to close it. */
static void detach(void)
{
	pid_t pid = fork();
	if (pid < 0) {
		log_msg("fork: %s", strerror(errno));
		exit(1);
	}
	if (pid > 0)
		_exit(0);
	setsid();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		close(null);
	}
}

/* ---- leaving ------------------------------------------------------------------ */

/* USR1: the front end's command has exited. Whoever is still connected is
 * named ("running" lines, and for every process that connects from now
 * on), and we leave once nobody is (on_tick). */
static void ask_to_leave(void)
{
	drain_all();
	if (!life.leaving)
		for (struct conn *c = conns; c; c = c->next)
			if (c->proc && !c->proc->bye)
				report_line("running %u %s", c->proc->pid, c->proc->name);
	life.leaving = true;
	life.leave_asked = now_monotonic_ns();
	cfg.announce_running = true;
	if (life.idle_fd < 0) {
		life.idle_fd = make_timer(LEAVE_TICK_MS);
		if (life.idle_fd >= 0)
			watch(life.idle_fd, TAG_IDLE);
	} else {
		struct itimerspec its = {
			.it_interval = { 0, LEAVE_TICK_MS * 1000000L },
			.it_value = { 0, LEAVE_TICK_MS * 1000000L },
		};
		timerfd_settime(life.idle_fd, 0, &its, NULL);
	}
}

/* HUP: the front end has left without waiting for us. Its pipes must not
 * stay open because of us (`memprof run -- daemon | cat` would wait for
 * our end), and its directory is ours to remove when we go. */
static void front_end_gone(void)
{
	life.front_gone = true;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return;
	dup2(null, STDIN_FILENO);
	dup2(null, STDOUT_FILENO);
	dup2(null, STDERR_FILENO);
	close(null);
}

/* The idle timer: processes that closed our connection but may come back
 * (conn.c) are looked at; in private mode, every process has gone and none
 * is expected; after USR1, nobody has been connected for a moment. Either
 * way an exec that has not said hello yet is waited for. */
static void on_tick(void)
{
	uint64_t ticks, now = now_monotonic_ns();
	if (read(life.idle_fd, &ticks, sizeof(ticks)) != sizeof(ticks))
		return;
	conn_reap_detached();
	if (conn_count())
		return;
	conn_accept(life.lfd); /* one in the backlog is connected */
	if (conn_count() || execs_waiting(now, EXEC_WAIT_NS))
		return;
	uint64_t idle_since = conn_idle_since();
	if (life.leaving) {
		uint64_t since = life.leave_asked > idle_since ? life.leave_asked : idle_since;
		if (now - since >= LEAVE_SETTLE_NS)
			life.stop = true;
	} else if (cfg.private_mode) {
		if ((idle_since && now - idle_since > PRIVATE_GRACE_NS) ||
		    (!idle_since && now - life.started > PRIVATE_NOBODY_NS))
			life.stop = true;
	}
}

static void on_signals(void)
{
	struct signalfd_siginfo si;
	while (read(life.sfd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGUSR2:
			drain_all();
			dump_all(false);
			break;
		case SIGUSR1: ask_to_leave(); break;
		case SIGHUP: front_end_gone(); break;
		default: life.stop = true; break;
		}
	}
}

/* Removes path if it is directly in dir. */
static void remove_in(const char *dir, const char *path)
{
	size_t n = strlen(dir);
	if (path && strncmp(path, dir, n) == 0 && path[n] == '/' && !strchr(path + n + 1, '/'))
		unlink(path);
}

/* Final profiles for everyone, the report's last lines, and what we own
 * removed. */
static void finish(void)
{
	drain_all();
	/* Told to stop (TERM) while processes still ran: their leak checks
	 * (if any) will never reach anyone. */
	for (struct conn *c = conns; c; c = c->next)
		if (c->proc && !c->proc->checked && !c->proc->bye)
			report_line("unchecked %u running %s", c->proc->pid,
				    c->proc->exe[0] ? c->proc->exe : c->proc->name);
	conn_finish_all();
	execs_report();
	http_stop();
	if (life.socket)
		unlink(life.socket);
	if (cfg.private_mode && life.socket) {
		/* The shim made a private directory for the socket. */
		char d[PATH_MAX];
		snprintf(d, sizeof(d), "%s", life.socket);
		char *slash = strrchr(d, '/');
		if (slash) {
			*slash = '\0';
			rmdir(d);
		}
	}
	if (life.front_gone && life.own_dir) {
		remove_in(life.own_dir, life.socket);
		remove_in(life.own_dir, cfg.report);
		rmdir(life.own_dir);
	}
	sym_shutdown();
	vdso_cleanup();
}

/* ---- start-up -------------------------------------------------------------------- */

/* Descriptors we inherited but did not ask for (a shell's pipes, a test
 * harness's) would stay open as long as we run: whoever waits for their
 * end (`memprof run -- daemon | cat`) would wait for us. Only stdin,
 * stdout, stderr and the listening socket the shim handed us are kept. */
static void close_inherited(int keep)
{
	if (keep < 3) {
		if (close_range(3, ~0U, 0) == 0)
			return;
	} else if (close_range(3, (unsigned)keep - 1, 0) == 0 &&
		   close_range((unsigned)keep + 1, ~0U, 0) == 0) {
		return;
	}
	for (int fd = 3; fd < 1024; fd++) /* a kernel before 5.9 */
		if (fd != keep)
			close(fd);
}

struct options {
	const char *socket_path, *dir, *http_addr, *inspect;
	unsigned listen_fd;
	bool have_listen_fd;
};

/* -1 to go on, or the status to exit with. */
static int parse_options(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "interval", required_argument, NULL, 'i' },
		{ "http", required_argument, NULL, 'H' },
		{ "listen-fd", required_argument, NULL, 'L' },
		{ "private", no_argument, NULL, 'P' },
		{ "report", required_argument, NULL, 'R' },
		{ "own-dir", required_argument, NULL, 'O' },
		{ "inspect", required_argument, NULL, 'I' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	while ((c = getopt_long(argc, argv, "s:d:i:vh", opts, NULL)) != -1) {
		switch (c) {
		case 's': o->socket_path = optarg; break;
		case 'd': o->dir = optarg; break;
		case 'i':
			if (parse_uint(optarg, 86400 * 365, &cfg.interval) != 0) {
				log_msg("--interval wants a number of seconds, not '%s'", optarg);
				return 2;
			}
			break;
		case 'L':
			if (parse_uint(optarg, INT_MAX, &o->listen_fd) != 0) {
				log_msg("--listen-fd wants a descriptor number, not '%s'", optarg);
				return 2;
			}
			o->have_listen_fd = true;
			break;
		case 'H': {
			const char *why;
			if (http_check_addr(optarg, &why) != 0) {
				log_msg("--http wants [ADDR:]PORT, not '%s': %s", optarg, why);
				return 2;
			}
			o->http_addr = optarg;
			break;
		}
		case 'P': cfg.private_mode = true; break;
		case 'R': cfg.report = optarg; break;
		case 'O': life.own_dir = optarg; break;
		case 'I': o->inspect = optarg; break;
		case 'v': log_verbose = 1; break;
		case 'V': printf("memprof-collector %s\n", MEMPROF_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	return -1;
}

/* cfg.dir: dir made absolute (into abs) and created. 0 or -1 (said). */
static int setup_dir(const char *dir, char *abs, size_t size)
{
	if (dir[0] == '/') {
		snprintf(abs, size, "%s", dir);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd))) {
			log_msg("getcwd: %s", strerror(errno));
			return -1;
		}
		if ((size_t)snprintf(abs, size, "%s/%s", cwd, dir) >= size) {
			log_msg("profile directory path too long");
			return -1;
		}
	}
	if (mkdir_p(abs, 0755) != 0) {
		log_msg("cannot create the profile directory %s: %s", abs, strerror(errno));
		return -1;
	}
	cfg.dir = abs;
	return 0;
}

/* The listening socket: the shim's descriptor, the path given, or our
 * default path (said aloud). -1 on failure (said). */
static int setup_listener(const struct options *o, char *buf, size_t size, bool *chose)
{
	if (o->have_listen_fd) {
		int fd = (int)o->listen_fd;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		/* The shim made the socket; its path is ours to remove. */
		life.socket = o->socket_path;
		return fd;
	}
	const char *path = o->socket_path;
	if (!path) {
		default_socket(buf, size);
		path = buf;
		*chose = true;
	}
	life.socket = path;
	return listen_on(path);
}

/* Signals arrive through a signalfd. An INT that was ignored when we
 * started (we run in the background of a shell script) stays ignored. */
static int setup_signals(void)
{
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	struct sigaction old_int;
	sigaction(SIGINT, NULL, &old_int);
	if (old_int.sa_handler != SIG_IGN && !cfg.private_mode)
		sigaddset(&mask, SIGINT);
	if (cfg.private_mode)
		signal(SIGINT, SIG_IGN); /* the terminal's ^C is for the program */
	signal(SIGPIPE, SIG_IGN);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	return signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void event_loop(void)
{
	while (!life.stop) {
		struct epoll_event evs[64];
		/* Connections ended during the last batch are freed only now:
		 * later entries of that batch may still have pointed to them. */
		conn_free_ended();
		/* Idle time goes to loading debug information ahead of need. */
		int n = epoll_wait(epfd, evs, 64, sym_preparing() ? 0 : -1);
		if (n == 0) {
			sym_prepare_one();
			continue;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_msg("epoll_wait: %s", strerror(errno));
			return;
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			/* Signals and timers may close connections that later
			 * entries of evs point to: handle them last in a batch and
			 * start over (epoll is level-triggered, nothing is lost). */
			if (tag == TAG_LISTEN) {
				conn_accept(life.lfd);
			} else if (tag == TAG_SIGNAL) {
				on_signals();
				break;
			} else if (tag == TAG_INTERVAL) {
				uint64_t ticks;
				if (read(life.interval_fd, &ticks, sizeof(ticks)) == sizeof(ticks)) {
					drain_all();
					dump_all(false);
				}
				break;
			} else if (http_owns_tag(tag)) {
				if (http_event(tag, evs[i].events))
					break;
			} else if (tag == TAG_IDLE) {
				on_tick();
				break;
			} else {
				struct conn *c = evs[i].data.ptr;
				if (conn_read(c) < 0)
					conn_close(c);
			}
		}
	}
}

int main(int argc, char **argv)
{
	struct options o = { .dir = "memprof-out" };
	/* Reading files rather than collecting: ui_view.c. */
	if (argc > 1 && strcmp(argv[1], "--view") == 0)
		return ui_view_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "--top") == 0)
		return ui_top_main(argc - 1, argv + 1);
	int rc = parse_options(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (o.inspect) {
		printf("%s\n", inspect_program(o.inspect, false));
		return 0;
	}
	close_inherited(o.have_listen_fd ? (int)o.listen_fd : -1);
	/* Symbolization must not go to the network or be profiled itself. */
	unsetenv("DEBUGINFOD_URLS");
	unsetenv("LD_PRELOAD");
	mode_t um = umask(0);
	umask(um);
	pprof_file_mode = 0666 & ~um;

	char abs_dir[PATH_MAX];
	if (setup_dir(o.dir, abs_dir, sizeof(abs_dir)) != 0)
		return 1;
	/* Before the socket exists: whoever waits for it to appear (memprof
	 * run) must not find a collector that is about to fail. */
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		log_msg("cannot set up the event loop: %s", strerror(errno));
		return 1;
	}
	if (o.http_addr && http_start(o.http_addr, epfd, log_verbose) != 0)
		return 1;
	char sock_buf[PATH_MAX];
	bool chose_socket = false;
	life.lfd = setup_listener(&o, sock_buf, sizeof(sock_buf), &chose_socket);
	if (life.lfd < 0)
		return 1;
	if (cfg.private_mode)
		detach();
	conn_setup(epfd);
	life.sfd = setup_signals();
	if (life.sfd < 0) {
		log_msg("cannot set up the event loop: %s", strerror(errno));
		return 1;
	}
	watch(life.lfd, TAG_LISTEN);
	watch(life.sfd, TAG_SIGNAL);
	if (cfg.interval && (life.interval_fd = make_timer(cfg.interval * 1000)) >= 0)
		watch(life.interval_fd, TAG_INTERVAL);
	/* Also for a shared collector: detached processes are looked at. */
	if ((life.idle_fd = make_timer(TICK_MS)) >= 0)
		watch(life.idle_fd, TAG_IDLE);
	life.started = now_monotonic_ns();
	/* Whoever named the socket knows it; otherwise say where we are. */
	if (chose_socket || log_verbose)
		log_msg("listening on %s, writing profiles to %s", life.socket, abs_dir);
	event_loop();
	finish();
	return 0;
}
