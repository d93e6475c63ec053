/*
 * The collector's command line: options, their defaults (options.h) and
 * the usage text that states them. Directories and sockets are set up
 * elsewhere (setup.c); this only checks and records what was asked.
 */
#include <getopt.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "http.h"
#include "keep.h"
#include "options.h"
#include "util.h"

struct collector_cfg cfg = {
	.dir = OPT_DEFAULT_DIR,
	.file_mode = OPT_DEFAULT_MODE,
	.dir_mode = 0700,
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: memprof-collector [--socket PATH] [--dir DIR] [--interval SEC]\n"
		"                         [--http ADDR:PORT] [--mode MODE] [--all]\n"
		"                         [--only NAME[,NAME...]] [--verbose]\n"
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
		"                   else ${TMPDIR:-/tmp}/memprof-$UID/sock; that directory must\n"
		"                   be yours and mode 0700, or it is refused)\n"
		"  --dir DIR        where profiles go (default ./" OPT_DEFAULT_DIR "; made mode 0700\n"
		"                   if it does not exist, used as it is if it does)\n"
		"  --interval SEC   also dump every SEC seconds (default 0: off)\n"
		"  --http ADDR:PORT serve Go's /debug/pprof/ endpoints there (ADDR: an IP\n"
		"                   address or localhost; 127.0.0.1 if left out; PORT 0:\n"
		"                   any free port, printed at startup)\n"
		"  --mode MODE      file mode of profiles and reports (default 0%o: yours\n"
		"                   only); 0640 or 0644 shares them, and a directory we make\n"
		"                   gets x wherever MODE has r\n"
		"  --all            write files for processes that recorded nothing too\n"
		"                   (default $MEMPROF_ALL, else 0: only those with samples)\n"
		"  --only NAMES     write files only for these programs (comma separated\n"
		"                   program names; default $MEMPROF_ONLY, else every one)\n"
		"  --verbose        say what connects and which files are written, and which\n"
		"                   processes ran programs memprof cannot see\n"
		"\n"
		"Signals:\n"
		"  USR2      write every process's profiles now\n"
		"  USR1      leave once no process is connected and no exec is still to\n"
		"            be heard of (sent by memprof run/check when their command exits)\n"
		"  HUP       the front end has left: let go of stdin, stdout and stderr (and\n"
		"            --ready-fd), and remove its --own-dir on leaving\n"
		"  TERM/INT  final profiles now, then exit; a process still connected is\n"
		"            reported as not checked (\"unchecked PID running EXE\")\n"
		"\n"
		"For the front end: --report FILE (what was seen, one line per event),\n"
		"--own-dir DIR (the front end's directory of socket and report), --make-own-dir\n"
		"PARENT (make that directory, PARENT/memprof.XXXXXX, mode 0700, and use its\n"
		"files sock and report), --ready-fd FD (once listening, write the --own-dir or\n"
		"else the socket path and a newline to FD, and keep FD open until we exit: its\n"
		"end tells the front end we have gone; once nobody reads it, as HUP and USR1),\n"
		"--inspect PATH\n"
		"(print why memprof cannot see a program: static, setuid, 32-bit, not-found or\n"
		"unknown), --private and --listen-fd FD (a collector started by the shim).\n"
		"For memprof's tests: --check-unwinding (unwind every CPU sample with libdw's\n"
		"walk as well as with the cached rules, and say for each process how many\n"
		"stacks differed).\n",
		OPT_DEFAULT_MODE);
}

int options_parse_mode(const char *s, mode_t *out)
{
	unsigned v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 4)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '7')
			return -1;
		v = v * 8 + (unsigned)(s[i] - '0');
	}
	/* No x, setuid or sticky bits on a data file; and a file its owner
	 * cannot read back is no use. */
	if ((v & ~0666U) || (v & 0600U) != 0600U)
		return -1;
	*out = (mode_t)v;
	return 0;
}

/* The directory's mode for a file mode: searchable wherever readable. */
static mode_t dir_mode_for(mode_t file_mode)
{
	return file_mode | ((file_mode & 0444) >> 2);
}

/* A descriptor number from min on, for the option name: 0, or -1 after a
 * message. */
static int parse_fd(const char *name, const char *arg, int min, int *out)
{
	uint64_t n;
	if (parse_u64(arg, (uint64_t)min, INT_MAX, &n) != 0) {
		if (min > 0)
			log_msg("%s wants a descriptor number from %d on, not '%s'", name, min, arg);
		else
			log_msg("%s wants a descriptor number, not '%s'", name, arg);
		return -1;
	}
	*out = (int)n;
	return 0;
}

int options_parse(int argc, char **argv, struct options *o)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "interval", required_argument, NULL, 'i' },
		{ "http", required_argument, NULL, 'H' },
		{ "mode", required_argument, NULL, 'M' },
		{ "listen-fd", required_argument, NULL, 'L' },
		{ "private", no_argument, NULL, 'P' },
		{ "report", required_argument, NULL, 'R' },
		{ "own-dir", required_argument, NULL, 'O' },
		{ "make-own-dir", required_argument, NULL, 'm' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "inspect", required_argument, NULL, 'I' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "all", no_argument, NULL, 'A' },
		{ "only", required_argument, NULL, 'N' },
		{ "check-unwinding", no_argument, NULL, 'U' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	o->listen_fd = -1;
	o->ready_fd = -1;
	keep_from_env(); /* the options, read next, override it */
	int c;
	uint64_t n;
	while ((c = getopt_long(argc, argv, "s:d:i:vh", opts, NULL)) != -1) {
		switch (c) {
		case 's': o->socket_path = optarg; break;
		case 'd': cfg.dir = optarg; break;
		case 'i':
			if (parse_u64(optarg, 0, OPT_MAX_INTERVAL, &n) != 0) {
				log_msg("--interval wants a number of seconds, not '%s'", optarg);
				return 2;
			}
			cfg.interval = (unsigned)n;
			break;
		case 'L':
			if (parse_fd("--listen-fd", optarg, 0, &o->listen_fd) != 0)
				return 2;
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
		case 'M':
			if (options_parse_mode(optarg, &cfg.file_mode) != 0) {
				log_msg("--mode wants an octal file mode with rw for the owner and "
					"no x bits (0600, 0640, 0644), not '%s'", optarg);
				return 2;
			}
			cfg.dir_mode = dir_mode_for(cfg.file_mode);
			break;
		case 'P': cfg.private_mode = true; break;
		case 'R': cfg.report = optarg; break;
		case 'O': o->own_dir = optarg; break;
		case 'm': o->make_own_dir = optarg; break;
		case 'r':
			/* Not 0-2: stdin, stdout and stderr are let go of on HUP. */
			if (parse_fd("--ready-fd", optarg, 3, &o->ready_fd) != 0)
				return 2;
			break;
		case 'I': o->inspect = optarg; break;
		case 'v': log_verbose = 1; break;
		case 'A': cfg.all = true; break;
		case 'N': cfg.only = optarg; break;
		case 'U': cfg.check_unwinding = true; break;
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
