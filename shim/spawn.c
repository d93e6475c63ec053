/*
 * A private collector for `LD_PRELOAD=libmemprof.so ./app` with no
 * MEMPROF_SOCKET: the shim binds the socket itself (so there is no window in
 * which the app could connect before the collector listens), hands the
 * listening descriptor to memprof-collector, and exports MEMPROF_SOCKET so
 * that the app's children report to the same collector. The collector
 * detaches (it is not the app's child, so it never shows up in wait()) and
 * exits once no process has been connected for a short while.
 *
 * It gets none of the program's descriptors: a pipe of the program's held
 * open by a collector that outlives it would keep whoever reads that pipe
 * (`app | cat`) waiting. It has the listening socket as descriptor 3,
 * /dev/null as its input and output, and the program's stderr only until
 * it detaches, so that a collector that cannot start says why.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim.h"

extern char **environ;

/* The listening socket's number in the collector. */
#define COLLECTOR_LISTEN_FD 3

/* memprof-collector beside libmemprof.so (the build tree and the install
 * layout alike), unless MEMPROF_COLLECTOR names it. */
static int collector_path(char *out, size_t size)
{
	const char *env = getenv("MEMPROF_COLLECTOR");
	if (env && *env) {
		mp_format(out, size, "%s", env);
		return 0;
	}
	Dl_info info;
	if (!dladdr((void *)collector_path, &info) || !info.dli_fname)
		return -1;
	const char *slash = strrchr(info.dli_fname, '/');
	mp_format(out, size, "%s", slash ? info.dli_fname : ".");
	if (slash && (size_t)(slash - info.dli_fname) < size)
		out[slash - info.dli_fname] = '\0';
	size_t n = strlen(out);
	mp_format(out + n, size - n, "/memprof-collector");
	return 0;
}

static int listen_private(char *dir, size_t dir_size)
{
	const char *tmp = getenv("TMPDIR");
	if (!tmp || !*tmp || strlen(tmp) > 60)
		tmp = "/tmp";
	mp_format(dir, dir_size, "%s/memprof-XXXXXX", tmp);
	if (!mkdtemp(dir))
		return -1;
	mp_format(mp_cfg.socket, sizeof(mp_cfg.socket), "%s/sock", dir);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mp_format(sa.sun_path, sizeof(sa.sun_path), "%s", mp_cfg.socket);
	mode_t old = umask(077);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0 || listen(fd, 128) != 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int mp_spawn_collector(void)
{
	char exe[PATH_MAX], dir[128], out_dir[PATH_MAX + 32], fd_arg[16], interval_arg[16];
	if (collector_path(exe, sizeof(exe)) != 0 || access(exe, X_OK) != 0) {
		mp_log("cannot find memprof-collector (looked for %s; set MEMPROF_COLLECTOR); "
		       "profiling is off", exe);
		return -1;
	}
	int fd = listen_private(dir, sizeof(dir));
	if (fd < 0) {
		mp_log("cannot create the collector socket (%s); profiling is off", strerror(errno));
		return -1;
	}
	if (mp_cfg.dir[0] == '/') {
		mp_format(out_dir, sizeof(out_dir), "%s", mp_cfg.dir);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			mp_format(cwd, sizeof(cwd), ".");
		mp_format(out_dir, sizeof(out_dir), "%s/%s", cwd,
			  mp_cfg.dir[0] ? mp_cfg.dir : "memprof-out");
	}
	mp_format(fd_arg, sizeof(fd_arg), "%d", COLLECTOR_LISTEN_FD);
	mp_format(interval_arg, sizeof(interval_arg), "%u", mp_cfg.interval);
	char *argv[] = {
		exe, "--private", "--listen-fd", fd_arg, "--socket", mp_cfg.socket,
		"--dir", out_dir, "--interval", interval_arg, NULL, NULL, NULL,
	};
	if (mp_cfg.mode[0]) {
		argv[10] = "--mode";
		argv[11] = mp_cfg.mode;
	}
	/* The collector must not itself be profiled; of the settings, it
	 * reads which processes get files and where its cache of debug
	 * files is (the rest are options). */
	static const char *const pass[] = { "MEMPROF_ALL", "MEMPROF_ONLY", "MEMPROF_CACHE_DIR",
					    "XDG_CACHE_HOME", "HOME" };
	static char env_buf[5][1100];
	char *env[7] = { "PATH=/usr/bin:/bin" };
	int nenv = 1;
	for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
		const char *v = getenv(pass[i]);
		if (v && *v && strlen(v) < 1024) {
			mp_format(env_buf[i], sizeof(env_buf[i]), "%s=%s", pass[i], v);
			env[nenv++] = env_buf[i];
		}
	}
	pid_t pid;
	posix_spawn_file_actions_t fa;
	int rc = posix_spawn_file_actions_init(&fa);
	if (rc == 0) {
		/* fd is close-on-exec and never COLLECTOR_LISTEN_FD (a program
		 * starting with 0-2 open gets 3 or more from socket(), and 3 is
		 * what dup2 makes): the copy the collector gets is inheritable. */
		if (fd == COLLECTOR_LISTEN_FD) {
			int moved = fcntl(fd, F_DUPFD_CLOEXEC, COLLECTOR_LISTEN_FD + 1);
			close(fd);
			fd = moved;
		}
		if (fd < 0 ||
		    (rc = posix_spawn_file_actions_adddup2(&fa, fd, COLLECTOR_LISTEN_FD)) != 0 ||
		    (rc = posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0)) != 0 ||
		    (rc = posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0)) != 0 ||
		    (rc = posix_spawn_file_actions_addclosefrom_np(&fa, COLLECTOR_LISTEN_FD + 1)) != 0)
			rc = rc ? rc : EBADF;
		else
			rc = posix_spawn(&pid, exe, &fa, NULL, argv, env);
		posix_spawn_file_actions_destroy(&fa);
	}
	if (fd >= 0)
		close(fd);
	if (rc != 0) {
		mp_log("cannot start %s (%s); profiling is off", exe, strerror(rc));
		return -1;
	}
	/* The collector forks and its first process exits at once; reap it. */
	/* A program started with SIGCHLD ignored has its children reaped for
	 * it (ECHILD): then only the socket can tell, when we connect. */
	int status = 0, rc2;
	while ((rc2 = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (rc2 == pid && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		mp_log("%s failed to start; profiling is off", exe);
		return -1;
	}
	setenv("MEMPROF_SOCKET", mp_cfg.socket, 1);
	return 0;
}
