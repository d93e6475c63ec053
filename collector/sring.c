/*
 * Reading a shared ring. Everything in the mapping is the client's to
 * change at any moment: the size is read once, at the start, and kept;
 * our own count of bytes taken is the one that counts (the copy in the
 * header is only for the client); bytes are copied out before they are
 * parsed, so a record cannot change between its checks and its use.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "memprof_wire.h"
#include "sring.h"
#include "util.h"

struct sring {
	struct mp_sring_hdr *hdr;
	size_t map_len;
	const unsigned char *data;
	uint32_t size; /* data bytes, a power of two */
	uint64_t tail; /* bytes taken */
};

struct sring *sring_map(int fd, const char **why)
{
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		*why = "the shared ring is not a memory file";
		return NULL;
	}
	int seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK)) {
		*why = "the shared ring can shrink (not sealed)";
		return NULL;
	}
	if (st.st_size < (off_t)(MP_SRING_DATA_OFF + 4096) ||
	    st.st_size > (off_t)(MP_SRING_DATA_OFF + MP_SRING_MAX_DATA)) {
		*why = "the shared ring has an impossible size";
		return NULL;
	}
	size_t len = (size_t)st.st_size;
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		*why = "the shared ring cannot be mapped";
		return NULL;
	}
	struct mp_sring_hdr *h = m;
	uint32_t size = __atomic_load_n(&h->data_size, __ATOMIC_RELAXED);
	if (__atomic_load_n(&h->magic, __ATOMIC_RELAXED) != MP_SRING_MAGIC || size < 4096 ||
	    (size & (size - 1)) || size > len - MP_SRING_DATA_OFF) {
		munmap(m, len);
		*why = "the shared ring's header is malformed";
		return NULL;
	}
	struct sring *r = xcalloc(1, sizeof(*r));
	*r = (struct sring){ h, len, (const unsigned char *)m + MP_SRING_DATA_OFF, size, 0 };
	__atomic_store_n(&h->tail, 0, __ATOMIC_RELEASE);
	return r;
}

void sring_unmap(struct sring *r)
{
	if (!r)
		return;
	munmap(r->hdr, r->map_len);
	free(r);
}

/* The bytes appended and not taken yet; false if the client's counter
 * says more than the ring holds, or less than we took. */
static bool backlog(const struct sring *r, size_t *n)
{
	uint64_t head = __atomic_load_n(&r->hdr->head, __ATOMIC_ACQUIRE);
	if (head < r->tail || head - r->tail > r->size)
		return false;
	*n = (size_t)(head - r->tail);
	return true;
}

size_t sring_take(struct sring *r, unsigned char *out, size_t max, const char **why)
{
	size_t n;
	if (!backlog(r, &n)) {
		*why = "its shared ring's write counter is out of range";
		return 0;
	}
	if (n > max)
		n = max;
	size_t off = (size_t)(r->tail & (r->size - 1)), first = r->size - off;
	if (first > n)
		first = n;
	memcpy(out, r->data + off, first);
	memcpy(out + first, r->data, n - first);
	r->tail += n;
	__atomic_store_n(&r->hdr->tail, r->tail, __ATOMIC_RELEASE);
	return n;
}

unsigned sring_fill16(const struct sring *r)
{
	size_t n;
	if (!backlog(r, &n))
		return 16; /* nonsense: sring_take will say so */
	return (unsigned)(n * 16 / r->size);
}

void sring_ask_stats(struct sring *r)
{
	__atomic_fetch_add(&r->hdr->stats_asked, 1, __ATOMIC_RELEASE);
}
