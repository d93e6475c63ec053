/*
 * Start-up of what the collector listens on and writes into: the profile
 * directory and the clients' socket (setup.c). Both are private unless the
 * user says otherwise (--mode); a socket directory someone else could have
 * made is refused, never used.
 */
#ifndef MEMPROF_COLLECTOR_SETUP_H
#define MEMPROF_COLLECTOR_SETUP_H

#include <stdbool.h>

#include "options.h"

/* Makes cfg.dir absolute and creates it (and missing parents) with
 * cfg.dir_mode, whatever the umask; an existing directory is used as it
 * is. 0, or -1 after a message. */
int setup_profile_dir(void);

/* The listening socket: the shim's descriptor (o->listen_fd), the path
 * given, or our default path, in a directory that must be ours and 0700.
 * *path is set to the socket's path (NULL if none is known), *chose when
 * it is the default. The descriptor, or -1 after a message. */
int setup_listener(const struct options *o, const char **path, bool *chose);

/* --make-own-dir PARENT: makes PARENT/memprof.XXXXXX (mode 0700, a name
 * nobody had) and points o->own_dir, o->socket_path and cfg.report at it
 * and its files sock and report. 0, or -1 after a message. */
int setup_own_dir(struct options *o);

#endif /* MEMPROF_COLLECTOR_SETUP_H */
