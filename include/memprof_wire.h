/*
 * memprof wire protocol: the byte stream a profiled process (the shim) sends
 * to the collector over a Unix stream socket. Both sides include this file.
 *
 * Conventions
 * - Every record is a struct mp_rec_hdr followed by hdr.len payload bytes.
 *   hdr.len never exceeds MP_REC_MAX_PAYLOAD; the collector drops a client
 *   that sends a longer one, an unknown type, or a payload shorter than the
 *   fixed part of its type.
 * - Integers are little-endian (the shim and the collector run on the same
 *   little-endian machine; the structs below are laid out with explicit
 *   padding so that their layout does not depend on the compiler).
 * - The first record on a connection is MP_REC_HELLO; anything else first
 *   is a protocol error. One connection is one process image: a fork or an
 *   exec starts a new connection.
 * - Stack ids are chosen by the shim: 1, 2, 3, ... in the order their
 *   MP_REC_STACK records are sent. An MP_REC_ALLOC may only name a stack id
 *   already defined on that connection.
 * - Mappings are sent before any stack whose addresses fall in them. When
 *   two mappings overlap (a library was closed and another loaded at the
 *   same address), the one sent last wins for stacks sent after it.
 * - Strings carry their length; they are not NUL-terminated on the wire.
 */
#ifndef MEMPROF_WIRE_H
#define MEMPROF_WIRE_H

#include <stdint.h>

#define MP_WIRE_MAGIC 0x4f52504dU /* "MPRO" read as little-endian bytes */
/* 2: allocation ids; 3: tallies; 4: shared rings; 5: tallies per size class */
#define MP_WIRE_VERSION 5U
#define MP_REC_MAX_PAYLOAD (1U << 20)
#define MP_MAX_FRAMES 128     /* deepest stack the shim sends */
#define MP_MAX_BUILD_ID 64    /* longest build id kept, in bytes */
#define MP_CPU_REGS 17        /* x86-64 DWARF registers 0..16 (rip last) */
#define MP_CPU_STACK_MAX (16 * 1024) /* stack bytes copied per CPU sample */

enum mp_rec_type {
	MP_REC_HELLO = 1,   /* struct mp_hello, then exe, then name, then cmdline */
	MP_REC_MAPPING = 2, /* struct mp_mapping, then build id, then path */
	MP_REC_STACK = 3,   /* struct mp_stack, then depth uint64_t pcs */
	MP_REC_ALLOC = 4,   /* struct mp_alloc */
	MP_REC_FREE = 5,    /* struct mp_free */
	MP_REC_DUMP = 6,    /* no payload: write this process's profiles now */
	MP_REC_DROPS = 7,   /* struct mp_drops */
	MP_REC_BYE = 8,     /* no payload: the process is exiting normally */
	MP_REC_CPU = 9,     /* struct mp_cpu_sample, then stack_len stack bytes */
	MP_REC_MALLOC_STATS = 10, /* struct mp_malloc_stats */
	MP_REC_LEAKS = 11,  /* struct mp_leaks, then count struct mp_leak */
	MP_REC_LEAK_END = 12, /* struct mp_leak_end, then the suppressions path */
	MP_REC_EXEC = 13,   /* struct mp_exec, then the program's path */
	MP_REC_TALLY = 14,  /* struct mp_tally */
	MP_REC_TYPE_MAX = 14,
	/* Records that go the other way, collector to shim: */
	MP_REC_LEAK_REPORT = 100, /* in reply to MP_REC_LEAK_END: struct
				   * mp_leak_report, then the text */
	MP_REC_STATS_REQUEST = 101, /* no payload: send MP_REC_MALLOC_STATS
				     * (the shim reads them only when asked) */
};

struct mp_rec_hdr {
	uint32_t type; /* enum mp_rec_type */
	uint32_t len;  /* payload bytes that follow this header */
};

/* Flags in mp_hello.flags. */
#define MP_HELLO_FULL_TRACE 1U /* every allocation is reported (rate 1) */
#define MP_HELLO_FORKED 2U     /* a fork child: it starts with its parent's
				* heap, which the collector copies from the
				* parent's connection (ppid) */
#define MP_HELLO_MALLOC_STATS 8U /* the process's malloc is glibc's: it
				  * answers MP_REC_STATS_REQUEST */
#define MP_HELLO_SHARED_RING 16U /* every record after the hello comes
				  * through a shared ring (struct
				  * mp_sring_hdr), whose memfd rides with the
				  * hello (SCM_RIGHTS); the connection itself
				  * closes after the hello. The process's end
				  * is its pid's, not the connection's. */
#define MP_HELLO_RESUMED 4U    /* the same image (pid, start_ns) lost its
				* connection (the program closed it) and goes
				* on here: stack ids, mappings and blocks are
				* those of its earlier connection; exe, name
				* and cmdline may be empty */

struct mp_hello {
	uint32_t magic;   /* MP_WIRE_MAGIC */
	uint32_t version; /* MP_WIRE_VERSION */
	uint32_t pid;
	uint32_t ppid;
	uint64_t rate;        /* mean bytes between heap samples; 1 = all */
	uint32_t cpu_hz;      /* SIGPROF samples per CPU-second, 0 = off */
	uint32_t flags;       /* MP_HELLO_* */
	uint64_t start_ns;    /* CLOCK_REALTIME when the image started */
	uint32_t exe_len;     /* bytes of executable path that follow */
	uint32_t name_len;    /* bytes of program name (for file names) */
	uint32_t cmdline_len; /* bytes of NUL-separated argv */
	uint32_t reserved;
};

/*
 * One executable PT_LOAD segment of a loaded object. Runtime address A in
 * [start, limit) is at file virtual address A - load_bias, and at file
 * offset A - start + offset.
 */
struct mp_mapping {
	uint64_t start;
	uint64_t limit;
	uint64_t offset;
	uint64_t load_bias;
	uint32_t build_id_len; /* <= MP_MAX_BUILD_ID */
	uint32_t path_len;
};

/*
 * A call stack, leaf first. pcs[0] is the return address into the function
 * that called malloc (or, for CPU samples, the interrupted pc); the shim's
 * own frames are never included.
 */
struct mp_stack {
	uint32_t id;
	uint32_t depth; /* 1..MP_MAX_FRAMES */
};

/*
 * A sampled allocation and, later, its free. With id 0 the collector keys
 * the block by its address, and relies on order: a block's free comes
 * before the allocation that reuses its address. A nonzero id (unique in
 * the process, the free carries the same one) is the key instead, and the
 * two may come in either order: a shim that sends each thread's events
 * as they come (full trace) cannot tell which of two threads went first.
 */
struct mp_alloc {
	uint64_t addr;
	uint64_t size; /* bytes requested */
	uint32_t stack_id;
	uint32_t reserved;
	uint64_t id;
};

struct mp_free {
	uint64_t addr;
	uint64_t id; /* the allocation's, or 0 */
};

/*
 * Full trace without an event per block: how many blocks this process
 * image has allocated from a stack with sizes in one size class, and
 * freed, and their bytes, in all, since it started (a fork child: since
 * its first ancestor of the same image line started; it inherits the
 * counts with the heap). Class c holds the sizes from 2^(c-1) to 2^c - 1
 * (class 0: size 0), so that a stack's sizes make a handful of tallies
 * rather than one each: a loop allocating 4,000 sizes from one stack
 * spent a third of its full-trace cost missing the cache in a table of
 * them (bench/RESULTS.md). Totals, not additions: a later record for the
 * same (stack, class) replaces an earlier one, so that a fork child's
 * first records are right whatever of its parent's the collector copied.
 * frees <= allocs and free_bytes <= alloc_bytes.
 */
#define MP_TALLY_CLASSES 33 /* sizes below 2^32; larger blocks are events */
struct mp_tally {
	uint32_t stack_id;
	uint32_t size_class;
	uint64_t allocs;
	uint64_t frees;
	uint64_t alloc_bytes;
	uint64_t free_bytes;
};

struct mp_drops {
	uint64_t events;      /* heap events dropped since the process started */
	uint64_t cpu_samples; /* CPU samples dropped since the process started */
};

/*
 * A CPU sample as the SIGPROF handler saw it: the interrupted thread's
 * registers, in x86-64 DWARF numbering (rax rdx rcx rbx rsi rdi rbp rsp
 * r8..r15, then rip), and a copy of its stack from rsp upwards. The
 * collector unwinds it. weight is the number of timer periods it stands for
 * (more than 1 when signals were merged while one was pending).
 */
struct mp_cpu_sample {
	uint32_t tid;
	uint32_t weight;
	uint32_t stack_len; /* <= MP_CPU_STACK_MAX; the stack starts at regs[7] */
	uint32_t reserved;
	uint64_t regs[MP_CPU_REGS];
};

/* What the process's own malloc says about itself (glibc's mallinfo2),
 * sent when the collector asks (MP_REC_STATS_REQUEST), before a dump the
 * process itself asked for, and at exit. mallinfo2 walks every free list
 * of every arena: its cost grows with the heap, so it is never periodic. */
struct mp_malloc_stats {
	uint64_t arena;    /* bytes obtained from the system with brk/sbrk */
	uint64_t hblkhd;   /* bytes in blocks mapped with mmap */
	uint64_t uordblks; /* bytes in use */
	uint64_t fordblks; /* bytes free inside the arenas */
	uint64_t keepcost; /* bytes that could be trimmed from the top */
	uint64_t ordblks;  /* free chunks */
};

/*
 * Leak check (MEMPROF_LEAK_CHECK=1, full-trace mode): at exit the shim finds
 * the live blocks that nothing reachable points to and sends them, in as
 * many MP_REC_LEAKS records as it takes, then MP_REC_LEAK_END. The
 * collector, which knows every block's stack, answers with one
 * MP_REC_LEAK_REPORT: the text to print (empty when nothing leaked) and the
 * totals after suppressions.
 */
#define MP_LEAK_DIRECT 1   /* no other leaked block points to it */
#define MP_LEAK_INDIRECT 2 /* another leaked block points to it */

struct mp_leaks {
	uint32_t count;
	uint32_t reserved;
};

struct mp_leak {
	uint64_t addr;
	uint64_t size;
	uint32_t kind; /* MP_LEAK_* */
	uint32_t reserved;
};

struct mp_leak_end {
	int32_t exit_status;   /* what the program passed to exit() */
	uint32_t unscanned;    /* threads whose stacks could not be scanned */
	uint32_t path_len;     /* bytes of suppressions file path that follow */
	uint32_t reserved;
};

struct mp_leak_report {
	uint64_t leaked_bytes, leaked_count;         /* after suppressions */
	uint64_t suppressed_bytes, suppressed_count;
	uint32_t text_len;                           /* bytes of text that follow */
	uint32_t reserved;
};

/*
 * An exec notice: process pid is about to replace its image with the
 * program at path (absolute when the shim could resolve it), or, with
 * MP_EXEC_SPAWNED, has just been started by posix_spawn to run it. It may
 * come from another process's connection (a vfork child writes into its
 * parent's queue; posix_spawn's caller reports its child). A hello from pid
 * whose start_ns is not earlier than time_ns means the new image is
 * profiled; a notice with MP_EXEC_FAILED cancels the one before it. Any
 * other outcome means pid ran a program memprof could not see (statically
 * linked, setuid, or LD_PRELOAD cleared), which the collector names.
 */
#define MP_EXEC_FAILED 1U     /* the exec returned an error: pid runs on */
#define MP_EXEC_NO_PRELOAD 2U /* the new environment does not preload the shim */
#define MP_EXEC_SPAWNED 4U    /* sent by posix_spawn's caller, after the fact */
/* Sent by fork's caller: pid is its child, which says hello itself unless
 * it ends first. Not an exec: the collector waits for that hello (a daemon
 * that forks and exits at once leaves its child to connect after it has
 * gone) but never reports a fork child as a program it could not see. */
#define MP_EXEC_FORKED 8U

struct mp_exec {
	uint32_t pid;
	uint32_t flags;    /* MP_EXEC_* */
	uint64_t time_ns;  /* CLOCK_REALTIME just before the exec or spawn */
	uint32_t path_len; /* bytes of path that follow */
	uint32_t reserved;
};

/*
 * The shared ring of MP_HELLO_SHARED_RING: a memfd the shim creates, sizes,
 * seals against shrinking and growing (the collector checks, so that no
 * client can make its reads fault) and maps; the collector maps it too.
 * One producer, the shim, appends the same byte stream a socket would
 * carry at data_off + (head mod data_size); one consumer, the collector,
 * takes bytes up to head and says so in tail. Counters only grow; each is
 * written by one side only and read by the other with acquire/release.
 * The collector copies bytes out before it reads them, and drops a client
 * whose head is behind tail or more than data_size ahead of it.
 */
#define MP_SRING_MAGIC 0x474e5253U /* "SRNG" read as little-endian bytes */
#define MP_SRING_DATA_OFF 4096U
#define MP_SRING_MAX_DATA (16U << 20)

struct mp_sring_hdr {
	uint32_t magic;       /* MP_SRING_MAGIC */
	uint32_t data_size;   /* a power of two, <= MP_SRING_MAX_DATA */
	uint64_t pad0[7];
	uint64_t head;        /* bytes the shim has written, ever */
	uint64_t pad1[7];
	uint64_t tail;        /* bytes the collector has taken, ever */
	uint64_t pad2[7];
	uint32_t stats_asked; /* bumped by the collector: send
			       * MP_REC_MALLOC_STATS (instead of
			       * MP_REC_STATS_REQUEST on a socket) */
	uint32_t reserved;
};

#endif /* MEMPROF_WIRE_H */
