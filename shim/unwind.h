/*
 * The shim's in-process stack unwinder (unwind.c): DWARF call frame
 * information from .eh_frame, rules cached per return address. It reads
 * the calling thread's stack between its stack pointer and the bound it is
 * given, and the loaded objects' read-only unwind tables; nothing else.
 * No descriptors, no locks, no allocation once mp_unwind_init has run.
 */
#ifndef MEMPROF_SHIM_UNWIND_H
#define MEMPROF_SHIM_UNWIND_H

#include <stdbool.h>
#include <stdint.h>

/* Maps the rule cache. 0, or -1 (mp_unwind then works uncached). */
int mp_unwind_init(void);

/* mp_unwind_from keeps each thread's last few walks (a memo, MP_MEMO_WAYS
 * of them, of at most MP_MEMO_FRAMES pcs) and copies a walk that would
 * come out the same rather than do it again. ref, if not NULL, says which
 * memo entry gave the pcs: way, and tag, a word the caller may use as it
 * likes, zeroed whenever the entry is filled with another walk (so while
 * it holds what the caller put there, the pcs are the ones they were
 * then). tag NULL: the walk was not kept. */
#define MP_MEMO_WAYS 8
#define MP_MEMO_FRAMES 64

struct mp_memo_ref {
	uint32_t *tag;
	uint32_t way;
};

/* Fills pcs with the return addresses of the calling function's callers,
 * innermost first (pcs[0] is where the caller of mp_unwind returns to),
 * at most max of them; returns how many. stack_lo and stack_hi bound the
 * calling thread's stack; a frame outside them ends the walk. Safe on any
 * thread; not from a signal handler that may have interrupted a dlclose. */
uint32_t mp_unwind(uint64_t *pcs, uint32_t max, uintptr_t stack_lo, uintptr_t stack_hi);
/* The same walk, from a frame of the calling thread above this one: ip is
 * the return address the frame's function will return to, sp and bp the
 * values rsp and rbp have in that function at that point. pcs[0] = ip. */
uint32_t mp_unwind_from(uint64_t ip, uint64_t sp, uint64_t bp, uint64_t *pcs, uint32_t max,
			uintptr_t stack_lo, uintptr_t stack_hi, struct mp_memo_ref *ref);

/* Whether mp_unwind_from with these arguments would copy its walk from
 * a memo entry whose tag is not 0: that tag, else NULL. Nothing is walked
 * or copied: for a caller whose tag says all it needs. */
uint32_t *mp_unwind_memo_tag(uint64_t ip, uint64_t sp, uint64_t bp, uint32_t max,
			    uintptr_t stack_lo, uintptr_t stack_hi);

/* Called once per mp_unwind, before the walk caches its first new rule:
 * a return address the cache has not seen may be in an object loaded since
 * the last call, which the caller must announce (to the collector) before
 * any other thread, finding the rule cached, can use an address in it. */
void mp_unwind_set_miss_hook(void (*hook)(void));

/* The calling thread is ending: its memo of recent walks goes. */
void mp_unwind_thread_end(void);

/* Forgets every cached rule: after a dlclose another object may be loaded
 * where one was. */
void mp_unwind_flush(void);

#endif /* MEMPROF_SHIM_UNWIND_H */
