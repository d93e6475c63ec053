/*
 * The shared ring (include/memprof_wire.h, struct mp_sring_hdr): how the
 * shim reaches the collector without a thread of its own. The writer's
 * records are appended to a memfd mapped by both sides, and the collector
 * polls it; the socket is only for the hello, which carries the memfd.
 *
 * Why: a second thread, even one that sleeps, puts glibc's malloc and its
 * mutexes on their multi-thread paths for good (sqlite3 3% slower with an
 * idle thread, bench/RESULTS.md), and a thread of ours needs a descriptor
 * table of its own to keep a socket out of the program's. A mapping needs
 * neither: once the hello is sent, nothing of ours is in the program's
 * descriptor table.
 *
 * Appending never waits: the caller checks for room first (mp_sring_room)
 * and leaves in the event ring what does not fit, where drops are counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shim.h"

/* At the defaults a sample is about 100 bytes and a CPU sample at most
 * 16.5 KiB; the collector looks every 100 ms, down to every 10 ms while
 * a ring is found a quarter full (collector/conn.c, pace_rings). */
#define SRING_DATA (1U << 20)

static struct mp_sring_hdr *hdr;
static unsigned char *data;
static uint64_t head; /* ours; published to hdr->head */

int mp_sring_create(void)
{
	size_t total = MP_SRING_DATA_OFF + SRING_DATA;
	int fd = memfd_create("memprof-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	fd = mp_fd_high(fd);
	if (fd < 0)
		return -1;
	void *m = MAP_FAILED;
	if (ftruncate(fd, (off_t)total) != 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0 ||
	    (m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	hdr = m;
	data = (unsigned char *)m + MP_SRING_DATA_OFF;
	head = 0;
	hdr->magic = MP_SRING_MAGIC;
	hdr->data_size = SRING_DATA;
	return fd;
}

void mp_sring_forget(void)
{
	/* A fork child's view of its parent's ring: unmapped here only. */
	if (hdr)
		munmap(hdr, MP_SRING_DATA_OFF + SRING_DATA);
	hdr = NULL;
	data = NULL;
}

size_t mp_sring_room(void)
{
	uint64_t tail = __atomic_load_n(&hdr->tail, __ATOMIC_ACQUIRE);
	/* A collector that wrote nonsense gets nothing written over it. */
	if (tail > head || head - tail > SRING_DATA)
		return 0;
	return SRING_DATA - (size_t)(head - tail);
}

size_t mp_sring_put(const void *buf, size_t len)
{
	size_t room = mp_sring_room();
	if (len > room)
		len = room;
	size_t off = (size_t)(head & (SRING_DATA - 1)), first = SRING_DATA - off;
	if (first > len)
		first = len;
	memcpy(data + off, buf, first);
	memcpy(data, (const unsigned char *)buf + first, len - first);
	head += len;
	__atomic_store_n(&hdr->head, head, __ATOMIC_RELEASE);
	return len;
}

bool mp_sring_stats_asked(uint32_t *seen)
{
	uint32_t asked = __atomic_load_n(&hdr->stats_asked, __ATOMIC_ACQUIRE);
	if (asked == *seen)
		return false;
	*seen = asked;
	return true;
}
