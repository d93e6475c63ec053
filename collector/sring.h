/*
 * The collector's side of a shared ring (include/memprof_wire.h, struct
 * mp_sring_hdr): a client that has no thread of its own appends its
 * records there, and the collector takes them when it looks.
 */
#ifndef MEMPROF_SRING_H
#define MEMPROF_SRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sring;

/* Maps the memfd a client sent with its hello, after checking that it is
 * one that cannot shrink under us (a read past its end would kill the
 * collector with SIGBUS) and that its header makes sense. The descriptor
 * stays the caller's. NULL with *why set if not. */
struct sring *sring_map(int fd, const char **why);
void sring_unmap(struct sring *r);
/* Copies up to max bytes the client has appended into out and gives the
 * room back; the number copied, or 0 with *why set if the client's
 * counter is nonsense. */
size_t sring_take(struct sring *r, unsigned char *out, size_t max, const char **why);
/* How full the ring is, in sixteenths (0: less than one, up to 16). */
unsigned sring_fill16(const struct sring *r);
/* Asks the client for its malloc statistics. */
void sring_ask_stats(struct sring *r);

#endif
