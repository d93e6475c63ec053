/*
 * When and where profiles are written: DIR/<prog>.<pid>.<seq>.heap.pb.gz,
 * with <seq> counting the dumps of one program name and pid (it survives
 * the connection, so an exec of the same program keeps counting).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "keep.h"
#include "map.h"
#include "pprof.h"
#include "util.h"

static struct map seqs; /* (hash of name, pid) -> last seq */

static unsigned next_seq(const struct proc *p)
{
	uint64_t k1 = hash_bytes(p->name, strlen(p->name));
	uint64_t *v = map_find(&seqs, k1, p->pid);
	unsigned seq = v ? (unsigned)*v + 1 : 1;
	map_put(&seqs, k1, p->pid, seq);
	return seq;
}

/* Writes and frees data (NULL: it could not be encoded); 0 if written. */
static int write_profile(const char *path, unsigned char *data, size_t len)
{
	int rc = -1;
	if (!data) {
		log_msg("could not encode %s", path);
		return -1;
	}
	if (pprof_write_file(path, data, len) != 0) {
		log_msg("cannot write %s: %s", path, strerror(errno));
	} else {
		log_debug("wrote %s (%zu bytes)", path, len);
		rc = 0;
	}
	free(data);
	return rc;
}

void dump_proc(struct conn *c, bool final)
{
	struct proc *p = c->proc;
	if (!p)
		return;
	/* An image that did nothing and ended in an exec is the short life of
	 * a fork child before it became another program: not worth a file. A
	 * process that ended without a goodbye (_exit, a signal) gets one. */
	if (final && !p->active && !p->bye && pid_alive(c->peer_pid))
		return;
	/* A leak-checked process's last profiles went out with its report. */
	if (final && p->checked)
		return;
	if (!keep_files(p))
		return;
	unsigned seq = next_seq(p);
	char path[4096];
	size_t len;
	snprintf(path, sizeof(path), "%s/%s.%u.%04u.heap.pb.gz", cfg.dir, p->name, p->pid, seq);
	unsigned char *heap = pprof_heap(p, "inuse_space", &len);
	write_profile(path, heap, len);
	/* The peak so far, under one name that each dump brings up to date.
	 * A file already written from the same peak (no new high, the same
	 * counts of what was lost) would be written again byte for byte but
	 * its time stamp: it is left as it is, which halves the cost of a dump
	 * of a process that is past its peak (issue 11: the second dump of the
	 * 10,000 call-site bench). */
	if (p->peak_est) {
		snprintf(path, sizeof(path), "%s/%s.%u.peak.heap.pb.gz", cfg.dir, p->name, p->pid);
		uint64_t from[5] = { p->peak_gen, p->drops, p->cpu_drops, p->over_limit_stacks,
				     p->over_limit_samples };
		if (memcmp(from, p->peak_dumped, sizeof(from)) != 0 || access(path, F_OK) != 0) {
			unsigned char *peak = pprof_heap_peak(p, "inuse_space", &len);
			if (write_profile(path, peak, len) == 0)
				memcpy(p->peak_dumped, from, sizeof(from));
		}
	}
	if (p->cpu_hz) {
		snprintf(path, sizeof(path), "%s/%s.%u.%04u.cpu.pb.gz", cfg.dir, p->name, p->pid,
			 seq);
		uint64_t now = now_realtime_ns();
		unsigned char *cpu = pprof_cpu_since(p, &p->cpu_dumped, p->cpu_dumped_ns,
						     now - p->cpu_dumped_ns, &len);
		write_profile(path, cpu, len);
		/* Each CPU profile covers the time since the previous one. */
		map_copy(&p->cpu_dumped, &p->cpu);
		p->cpu_dumped_ns = now;
	}
	if (p->leak_profile) {
		snprintf(path, sizeof(path), "%s/%s.%u.%04u.leak.pb.gz", cfg.dir, p->name, p->pid,
			 seq);
		write_profile(path, p->leak_profile, p->leak_profile_len);
		p->leak_profile = NULL; /* write_profile freed it */
	}
}

void report_line(const char *fmt, ...)
{
	if (!cfg.report)
		return;
	char line[4096 + 256]; /* a whole path fits */
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	/* Paths in it come from clients: one line must stay one line. */
	for (int i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[n++] = '\n';
	int fd = open(cfg.report, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		log_msg("cannot write %s: %s", cfg.report, strerror(errno));
	if (fd >= 0)
		close(fd);
}

void dump_all(bool final)
{
	for (struct conn *c = conns; c; c = c->next)
		dump_proc(c, final);
}
