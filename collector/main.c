/*
 * memprof-collector: the event loop. One thread, one epoll set: the
 * listening socket, the clients, a signalfd (USR2 = dump every process,
 * TERM/INT = final dumps and exit) and timerfds (periodic dumps; in private
 * mode, noticing that every process has gone). Everything else is in the
 * modules: conn.c (records), proc.c (state), dump.c and pprof.c (files),
 * http.c (the /debug/pprof/ server, whose descriptors have tags of its own).
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
#include "http.h"
#include "pprof_builder.h"
#include "symbolize.h"
#include "util.h"
#include "vdso.h"



static int epfd = -1;
static unsigned nconns;
static bool ever_connected;
static uint64_t idle_since_ns; /* private mode: when the last client left */

/* Tags for epoll_event.data.u64 other than connections (which use the
 * pointer). */
enum { TAG_LISTEN = 1, TAG_SIGNAL = 2, TAG_INTERVAL = 3, TAG_IDLE = 4 };

#define PRIVATE_GRACE_NS (2ULL * 1000000000ULL)    /* a gap across exec */
#define PRIVATE_NOBODY_NS (60ULL * 1000000000ULL) /* no client ever came */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: memprof-collector [--socket PATH] [--dir DIR] [--interval SEC]\n"
		"                         [--http ADDR:PORT] [--verbose]\n"
		"\n"
		"Collects heap and CPU samples from programs run with\n"
		"  MEMPROF_SOCKET=PATH LD_PRELOAD=/path/to/libmemprof.so program ...\n"
		"and writes pprof profiles DIR/<prog>.<pid>.<seq>.heap.pb.gz on kill -USR2 of a\n"
		"program (that program) or of the collector (every program), every SEC seconds,\n"
		"and when a program exits. TERM or INT: final profiles, then exit.\n"
		"\n"
		"  --socket PATH    where to listen (default $XDG_RUNTIME_DIR/memprof.sock,\n"
		"                   else /tmp/memprof-$UID/sock)\n"
		"  --dir DIR        where profiles go (default ./memprof-out)\n"
		"  --interval SEC   also dump every SEC seconds (default 0: off)\n"
		"  --http ADDR:PORT serve Go's /debug/pprof/ endpoints there (ADDR: an IP\n"
		"                   address or localhost; 127.0.0.1 if left out; PORT 0:\n"
		"                   any free port, printed at startup)\n"
		"  --verbose        say what connects and which files are written\n");
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

static void accept_clients(int lfd)
{
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_msg("accept: %s", strerror(errno));
			return;
		}
		struct ucred cred;
		socklen_t clen = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 ||
		    (cred.uid != getuid() && cred.uid != 0)) {
			log_msg("refusing a client of another user (uid %d)",
				clen == sizeof(cred) ? (int)cred.uid : -1);
			close(fd);
			continue;
		}
		struct conn *c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->peer_pid = (uint32_t)cred.pid;
		c->next = conns;
		conns = c;
		nconns++;
		ever_connected = true;
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
	}
}

static void close_conn(struct conn *c)
{
	if (c->proc)
		log_debug("pid %u (%s) %s", c->proc->pid, c->proc->name,
			  c->proc->bye ? "exited" : "disconnected");
	dump_proc(c, true);
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	for (struct conn **pp = &conns; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	if (c->proc)
		http_proc_gone(c->proc);
	proc_free(c->proc);
	free(c->buf);
	free(c);
	if (--nconns == 0)
		idle_since_ns = now_monotonic_ns();
}

/* Before final dumps: take in whatever the clients already sent. */
static void drain_all(void)
{
	for (struct conn *c = conns, *next; c; c = next) {
		next = c->next;
		int rc;
		while ((rc = conn_read(c)) == 1)
			;
		if (rc < 0)
			close_conn(c);
	}
}

static int make_timer(unsigned period_s, unsigned period_ms)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0)
		return -1;
	struct itimerspec its = {
		.it_interval = { period_s, (long)period_ms * 1000000L },
		.it_value = { period_s, (long)period_ms * 1000000L },
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "interval", required_argument, NULL, 'i' },
		{ "http", required_argument, NULL, 'H' },
		{ "listen-fd", required_argument, NULL, 'L' },
		{ "private", no_argument, NULL, 'P' },
		{ "report", required_argument, NULL, 'R' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = NULL, *dir = "memprof-out", *http_addr = NULL;
	unsigned listen_fd = 0;
	bool have_listen_fd = false;
	int o;
	while ((o = getopt_long(argc, argv, "s:d:i:vh", opts, NULL)) != -1) {
		switch (o) {
		case 's': socket_path = optarg; break;
		case 'd': dir = optarg; break;
		case 'i':
			if (parse_uint(optarg, 86400 * 365, &cfg.interval) != 0) {
				log_msg("--interval wants a number of seconds, not '%s'", optarg);
				return 2;
			}
			break;
		case 'L':
			if (parse_uint(optarg, INT_MAX, &listen_fd) != 0) {
				log_msg("--listen-fd wants a descriptor number, not '%s'", optarg);
				return 2;
			}
			have_listen_fd = true;
			break;
		case 'H': {
			const char *why;
			if (http_check_addr(optarg, &why) != 0) {
				log_msg("--http wants [ADDR:]PORT, not '%s': %s", optarg, why);
				return 2;
			}
			http_addr = optarg;
			break;
		}
		case 'P': cfg.private_mode = true; break;
		case 'R': cfg.report = optarg; break;
		case 'v': log_verbose = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	/* Symbolization must not go to the network or be profiled itself. */
	unsetenv("DEBUGINFOD_URLS");
	unsetenv("LD_PRELOAD");
	mode_t um = umask(0);
	umask(um);
	pprof_file_mode = 0666 & ~um;

	char abs_dir[PATH_MAX];
	if (dir[0] == '/') {
		snprintf(abs_dir, sizeof(abs_dir), "%s", dir);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd))) {
			log_msg("getcwd: %s", strerror(errno));
			return 1;
		}
		if ((size_t)snprintf(abs_dir, sizeof(abs_dir), "%s/%s", cwd, dir) >= sizeof(abs_dir)) {
			log_msg("profile directory path too long");
			return 1;
		}
	}
	if (mkdir_p(abs_dir, 0755) != 0) {
		log_msg("cannot create the profile directory %s: %s", abs_dir, strerror(errno));
		return 1;
	}
	cfg.dir = abs_dir;

	/* Before the socket exists: whoever waits for it to appear (memprof
	 * run) must not find a collector that is about to fail. */
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		log_msg("cannot set up the event loop: %s", strerror(errno));
		return 1;
	}
	if (http_addr && http_start(http_addr, epfd, log_verbose) != 0)
		return 1;

	char sock_buf[PATH_MAX];
	bool chose_socket = false;
	int lfd;
	if (have_listen_fd) {
		lfd = (int)listen_fd;
		fcntl(lfd, F_SETFD, FD_CLOEXEC);
		fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	} else {
		if (!socket_path) {
			default_socket(sock_buf, sizeof(sock_buf));
			socket_path = sock_buf;
			chose_socket = true;
		}
		lfd = listen_on(socket_path);
		if (lfd < 0)
			return 1;
	}
	if (cfg.private_mode)
		detach();

	/* Signals arrive through a signalfd. An INT that was ignored when we
	 * started (we run in the background of a shell script) stays ignored. */
	sigset_t mask;
	sigemptyset(&mask);
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
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

	if (sfd < 0) {
		log_msg("cannot set up the event loop: %s", strerror(errno));
		return 1;
	}
	watch(lfd, TAG_LISTEN);
	watch(sfd, TAG_SIGNAL);
	int interval_fd = -1;
	if (cfg.interval) {
		interval_fd = make_timer(cfg.interval, 0);
		if (interval_fd >= 0)
			watch(interval_fd, TAG_INTERVAL);
	}
	int idle_fd = -1;
	if (cfg.private_mode) {
		idle_fd = make_timer(0, 250);
		watch(idle_fd, TAG_IDLE);
	}
	uint64_t started = now_monotonic_ns();
	/* Whoever named the socket knows it; otherwise say where we are. */
	if (chose_socket || log_verbose)
		log_msg("listening on %s, writing profiles to %s", socket_path, abs_dir);

	bool stop = false;
	while (!stop) {
		struct epoll_event evs[64];
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
			break;
		}
		for (int i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64;
			/* Signals and timers may close connections that later
			 * entries of evs point to: handle them last in a batch and
			 * start over (epoll is level-triggered, nothing is lost). */
			if (tag == TAG_LISTEN) {
				accept_clients(lfd);
			} else if (tag == TAG_SIGNAL) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGUSR2) {
						drain_all();
						dump_all(false);
					} else if (si.ssi_signo != SIGHUP) {
						stop = true;
					}
				}
				break;
			} else if (tag == TAG_INTERVAL) {
				uint64_t ticks;
				if (read(interval_fd, &ticks, sizeof(ticks)) == sizeof(ticks)) {
					drain_all();
					dump_all(false);
				}
				break;
			} else if (http_owns_tag(tag)) {
				if (http_event(tag, evs[i].events))
					break;
			} else if (tag == TAG_IDLE) {
				uint64_t ticks, now = now_monotonic_ns();
				if (read(idle_fd, &ticks, sizeof(ticks)) == sizeof(ticks) && nconns == 0 &&
				    ((ever_connected && now - idle_since_ns > PRIVATE_GRACE_NS) ||
				     (!ever_connected && now - started > PRIVATE_NOBODY_NS)))
					stop = true;
			} else {
				struct conn *c = evs[i].data.ptr;
				if (conn_read(c) < 0)
					close_conn(c);
			}
		}
	}
	drain_all();
	while (conns)
		close_conn(conns);
	http_stop();
	if (socket_path && !have_listen_fd)
		unlink(socket_path);
	if (cfg.private_mode && socket_path) {
		/* The shim made a private directory for the socket. */
		unlink(socket_path);
		char d[PATH_MAX];
		snprintf(d, sizeof(d), "%s", socket_path);
		char *slash = strrchr(d, '/');
		if (slash) {
			*slash = '\0';
			rmdir(d);
		}
	}
	sym_shutdown();
	vdso_cleanup();
	return 0;
}
