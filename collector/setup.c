/*
 * The profile directory and the listening socket, made at start-up (see
 * setup.h). Issue 12: the default socket directory in /tmp could be made
 * first by another user, who would then receive every client's command
 * line and stacks; and profiles were world-readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "setup.h"
#include "util.h"

/* Creates path and its missing parents with mode (exactly: the umask
 * could otherwise take away the owner's own bits). */
static int mkdir_p(char *path, mode_t mode)
{
	for (char *p = path + 1;; p++) {
		if (*p && *p != '/')
			continue;
		char saved = *p;
		*p = '\0';
		int rc = mkdir(path, mode);
		if (rc == 0)
			rc = chmod(path, mode);
		else if (errno == EEXIST)
			rc = 0;
		*p = saved;
		if (rc != 0)
			return -1;
		if (!saved)
			break;
	}
	struct stat st;
	if (stat(path, &st) != 0)
		return -1;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

int setup_profile_dir(void)
{
	static char abs[PATH_MAX];
	if (cfg.dir[0] == '/') {
		snprintf(abs, sizeof(abs), "%s", cfg.dir);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd))) {
			log_msg("getcwd: %s", strerror(errno));
			return -1;
		}
		if ((size_t)snprintf(abs, sizeof(abs), "%s/%s", cwd, cfg.dir) >= sizeof(abs)) {
			log_msg("profile directory path too long");
			return -1;
		}
	}
	if (mkdir_p(abs, cfg.dir_mode) != 0) {
		log_msg("cannot create the profile directory %s: %s", abs, strerror(errno));
		return -1;
	}
	cfg.dir = abs;
	return 0;
}

/* The directory of a socket we choose must be ours and closed to others:
 * lstat, so that a symbolic link planted there is not followed. */
static int check_private_dir(const char *dir)
{
	struct stat st;
	if (lstat(dir, &st) != 0) {
		log_msg("cannot use the socket directory %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_msg("refusing the socket directory %s: not a directory", dir);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		log_msg("refusing the socket directory %s: it belongs to uid %u, not to you "
			"(uid %u); remove it or give --socket", dir, (unsigned)st.st_uid,
			(unsigned)geteuid());
		return -1;
	}
	if ((st.st_mode & 07777) != 0700) {
		log_msg("refusing the socket directory %s: mode %04o, not 0700; remove it, "
			"chmod 700 it or give --socket", dir, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* $XDG_RUNTIME_DIR/memprof.sock, else ${TMPDIR:-/tmp}/memprof-$UID/sock;
 * -1 (said) when that directory is not private to us. */
static int default_socket(char *out, size_t size)
{
	char dir[PATH_MAX];
	const char *run = getenv("XDG_RUNTIME_DIR");
	const char *name = "memprof.sock";
	if (run && *run && strlen(run) < 80) {
		snprintf(dir, sizeof(dir), "%s", run);
	} else {
		const char *tmp = getenv("TMPDIR");
		if (!tmp || !*tmp || strlen(tmp) > 60)
			tmp = "/tmp";
		snprintf(dir, sizeof(dir), "%s/memprof-%u", tmp, (unsigned)geteuid());
		if (mkdir(dir, 0700) == 0)
			chmod(dir, 0700); /* whatever the umask */
		else if (errno != EEXIST)
			log_msg("cannot create %s: %s", dir, strerror(errno));
		name = "sock";
	}
	if (check_private_dir(dir) != 0)
		return -1;
	if ((size_t)snprintf(out, size, "%s/%s", dir, name) >= size) {
		log_msg("socket path too long: %s/%s", dir, name);
		return -1;
	}
	return 0;
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
	/* Bound under another name and renamed into place once listening:
	 * whoever waits for the path to appear (memprof run) and connects at
	 * once would otherwise find it bound but not yet listening, and be
	 * refused (ECONNREFUSED). */
	struct sockaddr_un tmp = sa;
	bool renamed = strlen(path) + 1 < sizeof(tmp.sun_path);
	if (renamed)
		strcat(tmp.sun_path, "~");
	unlink(tmp.sun_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	mode_t old = umask(0177); /* the socket is for our own user only */
	int rc = bind(fd, (struct sockaddr *)&tmp, sizeof(tmp));
	umask(old);
	if (rc != 0 || listen(fd, 512) != 0 || (renamed && rename(tmp.sun_path, path) != 0)) {
		log_msg("cannot listen on %s: %s", path, strerror(errno));
		close(fd);
		if (renamed)
			unlink(tmp.sun_path);
		return -1;
	}
	return fd;
}

int setup_listener(const struct options *o, const char **path, bool *chose)
{
	static char buf[PATH_MAX];
	*chose = false;
	if (o->listen_fd >= 0) {
		int fd = o->listen_fd;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		/* The shim made the socket; its path is ours to remove. */
		*path = o->socket_path;
		return fd;
	}
	*path = o->socket_path;
	if (!*path) {
		if (default_socket(buf, sizeof(buf)) != 0)
			return -1;
		*path = buf;
		*chose = true;
	}
	return listen_on(*path);
}

int setup_own_dir(struct options *o)
{
	/* Room left in sock and report for the file names. */
	static char dir[PATH_MAX - 16], sock[PATH_MAX], report[PATH_MAX];
	if ((size_t)snprintf(dir, sizeof(dir), "%s/memprof.XXXXXX", o->make_own_dir) >= sizeof(dir)) {
		log_msg("directory path too long: %s", o->make_own_dir);
		return -1;
	}
	/* mkdtemp: a name nobody had (never one planted by someone else),
	 * made mode 0700, as mktemp -d does. */
	if (!mkdtemp(dir)) {
		log_msg("cannot create a directory in %s: %s", o->make_own_dir, strerror(errno));
		return -1;
	}
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	snprintf(report, sizeof(report), "%s/report", dir);
	o->own_dir = dir;
	o->socket_path = sock;
	cfg.report = report;
	return 0;
}
