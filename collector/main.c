/*
 * memprof-collector: the event loop. One thread, one epoll set: the
 * listening socket, the clients, a signalfd (USR2 = dump every process,
 * USR1 = leave once nobody is left, HUP = the front end has gone, TERM/INT
 * = final dumps and exit) and timerfds (periodic dumps; noticing that
 * every process has gone); start-up in that order, and teardown.
 * Everything else is in the modules: options.c (the command line),
 * setup.c (profile directory and socket), conn.c (accepting, records,
 * replies, closing), proc.c (state), execs.c (exec notices), dump.c and
 * pprof.c (files), http.c (the /debug/pprof/ server, whose descriptors have
 * tags of its own).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "collector.h"
#include "execs.h"
#include "http.h"
#include "http_server.h"
#include "inspect.h"
#include "options.h"
#include "pprof_builder.h"
#include "setup.h"
#include "symbolize.h"
#include "ui.h"
#include "util.h"
#include "vdso.h"

static int epfd = -1;

/* Tags for epoll_event.data.u64 other than connections (which use the
 * pointer). */
enum { TAG_LISTEN = CONN_LISTEN_TAG, TAG_SIGNAL = 2, TAG_INTERVAL = 3, TAG_IDLE = 4, TAG_READY = 5 };

/* Private mode: how long nobody must be connected before we leave. An
 * exec does not leave a gap (the old image's connection stays, detached,
 * until the new one says hello: conn.c), nor does a fork (the child
 * connects before fork returns); this covers a child still on its way.
 * Issue 11 wants a private collector gone within 100 ms of its last
 * process; the idle timer is set for the moment this runs out (update_tick),
 * not left to the next TICK_MS tick, which made it 100-200 ms. */
#define PRIVATE_GRACE_NS (50ULL * 1000000ULL)
/* How long a process that exec'd or was spawned from a notice, and still
 * runs, may take to say hello before we stop waiting for it. */
#define EXEC_WAIT_NS (10ULL * 1000000000ULL)
#define TICK_MS 100
#define PRIVATE_NOBODY_NS (60ULL * 1000000000ULL) /* no client ever came */
/* After USR1: how long nobody must be connected before we leave. A fork
 * child that has not connected yet is waited for through its parent's
 * fork notice (execs.c); this covers a child made without fork() (clone,
 * vfork without exec), whose new image connects a moment after the last
 * connection it shared closed. `memprof run -- true` waits for this, and
 * only this: the idle timer is set for the moment it runs out. */
#define LEAVE_SETTLE_NS (4ULL * 1000000ULL)
#define LEAVE_TICK_MS 2

/* What the collector is waiting for before it leaves, and who cleans up. */
static struct {
	int lfd, sfd, interval_fd, idle_fd;
	uint64_t started;       /* CLOCK_MONOTONIC at startup */
	bool stop;              /* leave now */
	bool leaving;           /* USR1: leave once nobody is left */
	uint64_t leave_asked;   /* when USR1 came */
	bool front_gone;        /* HUP: the front end left without us */
	const char *own_dir;    /* --own-dir: removed when we leave */
	const char *socket;     /* the socket path, if we listen on a path (setup.c) */
	int ready_fd;           /* --ready-fd once we have said so, else -1 */
	uint64_t leave_armed;   /* the deadline the idle timer is set for, 0 = none */
} life = { -1, -1, -1, -1, 0, false, false, 0, false, NULL, NULL, -1, 0 };

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

/*
 * The idle timer runs only while on_tick has something to look at: a
 * process detached or accepting paused (conn.c), nobody connected to a
 * private collector (its grace and its wait for a first client), or a
 * leave asked for (USR1). A shared collector with nothing of that kind
 * sleeps in epoll_wait until something happens, rather than waking ten
 * times a second (issue 11). Dump intervals and the HTTP server have
 * timers of their own.
 */
static unsigned tick_ms; /* what idle_fd is set to; 0: disarmed */

static void set_tick(unsigned ms)
{
	if (ms == tick_ms || life.idle_fd < 0)
		return;
	struct itimerspec its = {
		.it_interval = { ms / 1000, (long)(ms % 1000) * 1000000L },
		.it_value = { ms / 1000, (long)(ms % 1000) * 1000000L },
	};
	if (timerfd_settime(life.idle_fd, 0, &its, NULL) == 0)
		tick_ms = ms;
}

/* Before every wait for events: the ticks on_tick needs, and, once nobody
 * is connected, the first of them set for the moment we may leave
 * (leave_deadline, defined below), not up to a tick later (2 ms of every
 * `memprof run`, 100 ms of a private collector's). A system call only when
 * the period or the deadline has moved. */
static uint64_t leave_deadline(void);

static void update_tick(void)
{
	unsigned ms = 0;
	if (life.leaving)
		ms = LEAVE_TICK_MS;
	else if (!(ms = conn_tick_ms()) && cfg.private_mode && !conn_count())
		ms = TICK_MS;
	uint64_t deadline = ms && !conn_count() ? leave_deadline() : 0;
	if (!deadline) {
		if (life.leave_armed) {
			life.leave_armed = 0;
			tick_ms = (unsigned)-1; /* whatever it is, set it anew */
		}
		set_tick(ms);
		return;
	}
	if (life.idle_fd < 0 || (deadline == life.leave_armed && ms == tick_ms))
		return;
	uint64_t now = now_monotonic_ns();
	uint64_t wait = deadline > now ? deadline - now : 1;
	struct itimerspec its = {
		.it_interval = { ms / 1000, (long)(ms % 1000) * 1000000L },
		.it_value = { (time_t)(wait / 1000000000ULL), (long)(wait % 1000000000ULL) },
	};
	if (timerfd_settime(life.idle_fd, 0, &its, NULL) == 0) {
		life.leave_armed = deadline;
		tick_ms = ms;
	}
}

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
	life.leave_armed = 0; /* the ticks are set anew here */
	cfg.announce_running = true;
	if (life.idle_fd < 0) {
		life.idle_fd = make_timer(LEAVE_TICK_MS);
		if (life.idle_fd >= 0) {
			tick_ms = LEAVE_TICK_MS;
			watch(life.idle_fd, TAG_IDLE);
		}
	}
	update_tick();
}

/* HUP: the front end has left without waiting for us. Its pipes must not
 * stay open because of us (`memprof run -- daemon | cat` would wait for
 * our end), and its directory is ours to remove when we go. */
static void front_end_gone(void)
{
	life.front_gone = true;
	if (life.ready_fd >= 0) {
		close(life.ready_fd); /* and out of the epoll set */
		life.ready_fd = -1;
	}
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 0)
		return;
	dup2(null, STDIN_FILENO);
	dup2(null, STDOUT_FILENO);
	dup2(null, STDERR_FILENO);
	close(null);
}

/* When we leave if nobody comes (CLOCK_MONOTONIC), or 0 if we stay or
 * only the idle ticks tell (a private collector nobody connected to yet,
 * PRIVATE_NOBODY_NS). After USR1, nobody must have been connected for
 * LEAVE_SETTLE_NS, counted from the later of USR1 and the last close; in
 * private mode, for PRIVATE_GRACE_NS since the last close. */
static uint64_t leave_deadline(void)
{
	uint64_t idle_since = conn_idle_since();
	if (life.leaving) {
		uint64_t since = life.leave_asked > idle_since ? life.leave_asked : idle_since;
		return since + LEAVE_SETTLE_NS;
	}
	if (cfg.private_mode && idle_since)
		return idle_since + PRIVATE_GRACE_NS;
	return 0;
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
	conn_tick(now);
	conn_reap_detached();
	if (conn_count())
		return;
	conn_accept(); /* one in the backlog is connected */
	if (conn_count() || execs_waiting(now, EXEC_WAIT_NS))
		return;
	uint64_t deadline = leave_deadline();
	if (deadline && now >= deadline)
		life.stop = true;
	else if (cfg.private_mode && !conn_idle_since() && now - life.started > PRIVATE_NOBODY_NS)
		life.stop = true;
}

/* The --ready-fd pipe has no reader any more: the front end has gone
 * without a word (killed). As after its HUP and USR1: its pipes are let
 * go of, and we leave once the tree has gone, rather than never. */
static void on_front_end_lost(void)
{
	front_end_gone();
	if (!life.leaving)
		ask_to_leave();
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
	/* The front end reads the report through a descriptor it opened
	 * before telling us to go, and leaves the directory to us. */
	if (life.own_dir) {
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
 * stdout, stderr, the listening socket the shim handed us and the front
 * end's --ready-fd are kept (keep: those two, -1 if not given). */
static void close_inherited(const int keep[2])
{
	int lo = keep[0] < keep[1] ? keep[0] : keep[1];
	int hi = keep[0] < keep[1] ? keep[1] : keep[0];
	unsigned from = 3;
	bool ok = true;
	for (int k = 0; k < 2; k++) {
		int fd = k ? hi : lo;
		if (fd < (int)from)
			continue;
		if (fd > (int)from)
			ok = ok && close_range(from, (unsigned)fd - 1, 0) == 0;
		from = (unsigned)fd + 1;
	}
	if (ok && close_range(from, ~0U, 0) == 0)
		return;
	for (int fd = 3; fd < 1024; fd++) /* a kernel before 5.9 */
		if (fd != keep[0] && fd != keep[1])
			close(fd);
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
		update_tick();
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
				conn_accept();
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
			} else if (tag == TAG_READY) {
				on_front_end_lost();
				break;
			} else {
				struct conn *c = evs[i].data.ptr;
				if (conn_event(c, evs[i].events) < 0)
					conn_close(c);
			}
		}
	}
}

/* --ready-fd: tells the front end that clients can connect, and where
 * (the own directory, else the socket). The descriptor stays open until
 * we exit (or HUP): its end tells the front end we have gone, which it
 * can wait for without polling. */
static void say_ready(int fd)
{
	if (fd < 0)
		return;
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	const char *where = life.own_dir ? life.own_dir : life.socket ? life.socket : "";
	if (dprintf(fd, "%s\n", where) < 0)
		log_msg("cannot write to --ready-fd %d: %s", fd, strerror(errno));
	life.ready_fd = fd;
	/* No events asked for: a pipe's writer is told EPOLLERR, always
	 * reported, once nobody can read it (on_front_end_lost). */
	struct epoll_event ev = { .events = 0, .data.u64 = TAG_READY };
	epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Everything the loop needs, in the order that makes a failure harmless:
 * the directory and the HTTP port before the socket exists (whoever waits
 * for it to appear, memprof run, must not find a collector that is about
 * to fail). 0, or -1 after a message. */
static int start_up(struct options *o)
{
	close_inherited((int[2]){ o->listen_fd, o->ready_fd });
	/* Symbolization must not go to the network or be profiled itself. */
	unsetenv("DEBUGINFOD_URLS");
	unsetenv("LD_PRELOAD");
	pprof_file_mode = cfg.file_mode;
	if (setup_profile_dir() != 0)
		return -1;
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0) {
		log_msg("cannot set up the event loop: %s", strerror(errno));
		return -1;
	}
	if (o->http_addr && http_start(o->http_addr, epfd, &pprof_http_handler, log_verbose) != 0)
		return -1;
	if (o->make_own_dir && setup_own_dir(o) != 0)
		return -1;
	life.own_dir = o->own_dir;
	bool chose_socket;
	life.lfd = setup_listener(o, &life.socket, &chose_socket);
	if (life.lfd < 0)
		return -1;
	if (cfg.private_mode)
		detach();
	conn_setup(epfd, life.lfd, o->http_addr ? http_proc_gone : NULL);
	life.sfd = setup_signals();
	if (life.sfd < 0) {
		log_msg("cannot set up the event loop: %s", strerror(errno));
		return -1;
	}
	watch(life.lfd, TAG_LISTEN);
	watch(life.sfd, TAG_SIGNAL);
	if (cfg.interval && (life.interval_fd = make_timer(cfg.interval * 1000)) >= 0)
		watch(life.interval_fd, TAG_INTERVAL);
	/* Also for a shared collector: detached processes are looked at
	 * (update_tick stops it while there is nothing to look at). */
	if ((life.idle_fd = make_timer(TICK_MS)) >= 0) {
		tick_ms = TICK_MS;
		watch(life.idle_fd, TAG_IDLE);
	}
	life.started = now_monotonic_ns();
	/* Whoever named the socket knows it; otherwise say where we are. */
	if (chose_socket || log_verbose)
		log_msg("listening on %s, writing profiles to %s", life.socket, cfg.dir);
	say_ready(o->ready_fd);
	return 0;
}

int main(int argc, char **argv)
{
	/* Reading files rather than collecting: ui_view.c. */
	if (argc > 1 && strcmp(argv[1], "--view") == 0)
		return ui_view_main(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "--top") == 0)
		return ui_top_main(argc - 1, argv + 1);
	struct options o = { 0 };
	int rc = options_parse(argc, argv, &o);
	if (rc >= 0)
		return rc;
	if (o.inspect) {
		printf("%s\n", inspect_program(o.inspect, false));
		return 0;
	}
	if (start_up(&o) != 0) {
		/* A directory we made is ours to remove (the front end never
		 * learnt its name). */
		if (o.make_own_dir && o.own_dir) {
			remove_in(o.own_dir, life.socket);
			rmdir(o.own_dir);
		}
		return 1;
	}
	event_loop();
	finish();
	return 0;
}
