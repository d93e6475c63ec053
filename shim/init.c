/*
 * Bringing the shim up and down: resolving the real allocator on the first
 * call, starting to record in our constructor, following fork, stopping at
 * exit, and the dump signal. Recording starts in the constructor rather than
 * at the first malloc because the first malloc can come from the dynamic
 * loader or libc's own start-up, before threads or sockets are safe to use.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"
#include "unwind.h"

_Atomic int mp_state;
static _Atomic int resolving;

#define RING_BYTES (1U << 20)             /* sampling: events are rare */
#define RING_BYTES_FULL_TRACE (16U << 20) /* every allocation */
/* How long exit waits for a collector that takes nothing at all. */
#define EXIT_STALL_MS 1000
#define EXIT_STALL_MS_FULL_TRACE 10000

void mp_init(void)
{
	if (MP_LIKELY(atomic_load_explicit(&mp_real_ready, memory_order_acquire)))
		return;
	int expected = 0;
	/* Whoever loses the race (including this very thread re-entering
	 * through dlsym's calloc) is served from the early arena meanwhile. */
	if (!atomic_compare_exchange_strong(&resolving, &expected, 1))
		return;
	mp_tls.busy++;
	if (mp_resolve_real() != 0)
		mp_log("dlsym(RTLD_NEXT) could not find the allocator; using glibc's directly");
	mp_tls.busy--;
}

void mp_disable(const char *why)
{
	int prev = atomic_exchange(&mp_state, MP_STATE_OFF);
	if (prev != MP_STATE_OFF && why)
		mp_log("%s", why);
}

static void on_dump_signal(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;
	(void)sig;
	(void)si;
	(void)uc;
	mp_writer_request_dump();
	errno = saved;
}

/* The dump signal is memprof's while the program leaves it at its default
 * (signals.c): a handler of the program's, or its ignoring the signal,
 * comes first. */
static void install_dump_signal(void)
{
	if (mp_cfg.dump_signal)
		mp_signal_take(mp_cfg.dump_signal, on_dump_signal, MP_SIG_YIELD);
}

/* Order matters: threads inside the gate may still take a stripe lock, so
 * the gate closes before the stripes are locked. */
static void fork_prepare(void)
{
	/* The child's heap starts as a copy of ours, which the collector
	 * takes from what we have sent: everything, before the gate closes
	 * (CPU samples go only through the gate). */
	if (mp_writer_threadless && atomic_load(&mp_state) == MP_STATE_ON)
		mp_writer_sync(2000);
	mp_tls.busy++;
	mp_gate_close();
	/* With every allocation recorded (a leak check), the collector must
	 * have the parent's heap complete before the child asks for a copy. */
	if (mp_cfg.full_trace && atomic_load(&mp_state) == MP_STATE_ON)
		mp_writer_sync(2000);
	mp_live_fork_prepare();
}

static void fork_parent(void)
{
	mp_live_fork_parent();
	mp_gate_open();
	mp_tls.busy--;
}

/* The child is a new process to the collector: new connection, new writer,
 * nothing inherited but the settings. */
static void fork_child(void)
{
	mp_live_fork_child();
	mp_gate_reset_child();
	mp_threads_fork_child();
	if (atomic_load(&mp_state) == MP_STATE_ON) {
		mp_ring_reset();
		mp_trings_fork_child();
		if (mp_tally_on)
			mp_tally_fork_child();
		mp_sample_fork_child();
		mp_mappings_reset();
		mp_writer_fork_child();
		if (mp_writer_start() != 0)
			atomic_store(&mp_state, MP_STATE_OFF);
		else
			mp_cpu_fork_child();
	}
	mp_tls.busy--;
}

/* glibc calls constructors with the program's argc, argv and environ. */
__attribute__((constructor(101))) static void mp_start(int argc, char **argv, char **envp)
{
	(void)envp;
	mp_init();
	int expected = MP_STATE_NEW;
	if (!atomic_compare_exchange_strong(&mp_state, &expected, MP_STATE_INITING))
		return;
	mp_tls.busy++;
	mp_config_load();
	int next = MP_STATE_OFF;
	if (mp_cfg.rate == 0 && mp_cfg.cpu_hz == 0)
		goto out; /* nothing asked for */
	if (mp_mappings_init() != 0) {
		mp_log("cannot find the shim's own code; profiling is off");
		goto out;
	}
	mp_trings_on = mp_cfg.full_trace && MP_TRACK_BY_HEADER();
	mp_tally_on = mp_trings_on && mp_tally_init() == 0;
	if (mp_ring_setup(mp_cfg.full_trace ? RING_BYTES_FULL_TRACE : RING_BYTES) != 0) {
		mp_log("cannot map the event ring (%s); profiling is off", strerror(errno));
		goto out;
	}
	if (mp_unwind_init() != 0) {
		mp_log("cannot map the unwinder's cache (%s); profiling is off", strerror(errno));
		goto out;
	}
	mp_unwind_set_miss_hook(mp_sample_note_new_code);
	mp_threads_init();
	mp_writer_note_start(argc, argv);
	if (!mp_cfg.socket[0] && mp_spawn_collector() != 0)
		goto out;
	if (mp_writer_start() != 0)
		goto out;
	install_dump_signal();
	mp_leak_setup();
	if (mp_cpu_start() != 0)
		mp_log("cannot set up CPU profiling (%s); heap profiling goes on", strerror(errno));
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	next = MP_STATE_ON;
out:
	/* Whatever kept this process from profiling will keep its children
	 * from it too; one message is enough. */
	if (next != MP_STATE_ON && !mp_quiet && (mp_cfg.rate || mp_cfg.cpu_hz))
		setenv("MEMPROF_QUIET", "1", 1);
	atomic_store(&mp_state, next);
	mp_tls.busy--;
}

__attribute__((destructor)) static void mp_stop(void)
{
	/* With a leak check, the exit handler (which runs after destructors:
	 * it was registered before libc registered the loader's) finishes. */
	if (mp_cfg.leak_check)
		return;
	int expected = MP_STATE_ON;
	if (!atomic_compare_exchange_strong(&mp_state, &expected, MP_STATE_OFF))
		return;
	mp_tls.busy++;
	mp_writer_finish(mp_cfg.full_trace ? EXIT_STALL_MS_FULL_TRACE : EXIT_STALL_MS);
	mp_tls.busy--;
}
