/*
 * The collector's settings: its command-line options, their defaults and
 * limits, and the usage text that states them. Parsed once at start-up
 * (options.c); every other module only reads cfg.
 */
#ifndef MEMPROF_COLLECTOR_OPTIONS_H
#define MEMPROF_COLLECTOR_OPTIONS_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

/* Defaults, the ones the usage text and README.md state. */
#define OPT_DEFAULT_DIR "memprof-out"
#define OPT_DEFAULT_MODE 0600           /* profiles and reports: the user's only */
#define OPT_MAX_INTERVAL (86400U * 365) /* seconds */

struct collector_cfg {
	const char *dir;     /* where profiles go (absolute once set up) */
	unsigned interval;   /* seconds between periodic dumps, 0 = off */
	mode_t file_mode;    /* of profiles and reports (--mode) */
	mode_t dir_mode;     /* of the profile directory, if we make it: file_mode
			      * with x wherever r is */
	bool private_mode;   /* started by a shim: exit when nobody is left */
	const char *report;  /* file the front end reads, or NULL: "process
			      * PID NAME" for each process that connected,
			      * "leaks PID NAME BYTES COUNT" for each leak
			      * check, "running PID NAME" for each process
			      * connected after the front end's USR1 (at it or
			      * later), "unchecked PID REASON PATH" for each
			      * process memprof could not see (execs.c) or
			      * that still ran when told to stop (REASON
			      * "running") */
	bool announce_running; /* write "running" lines for new processes */
	bool all;            /* files for processes that recorded nothing too */
	const char *only;    /* NULL, or the only program names (comma
			      * separated) that get files (keep.c) */
	bool check_unwinding; /* unwind every CPU sample with libdw too, and
			       * say how often the stacks differed (unwind.c) */
};
extern struct collector_cfg cfg;

/* What only start-up needs (main.c). */
struct options {
	const char *socket_path, *http_addr, *inspect;
	const char *own_dir;   /* --own-dir: removed when we leave */
	const char *make_own_dir; /* --make-own-dir PARENT: own_dir made there */
	int listen_fd;         /* --listen-fd, -1 if none */
	int ready_fd;          /* --ready-fd, -1 if none: see main.c's say_ready */
};

/* Fills cfg and o from argv. Returns -1 to go on, or the status to exit
 * with (0 after --help or --version, 2 after a message on a bad option). */
int options_parse(int argc, char **argv, struct options *o);

/* Parses a --mode / MEMPROF_MODE value: octal, read and write bits only,
 * and the owner's read and write among them (0600, 0640, 0644, 0660, ...).
 * 0, or -1 if s is anything else. */
int options_parse_mode(const char *s, mode_t *out);

#endif /* MEMPROF_COLLECTOR_OPTIONS_H */
