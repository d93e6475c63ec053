/*
 * Signals memprof shares with the program: SIGPROF (CPU samples) and the
 * dump signal (SIGUSR2 unless MEMPROF_DUMP_SIGNAL says otherwise). The
 * program keeps its own view of each: sigaction and signal (wrapped here)
 * read and write that view, and the real disposition follows a policy:
 *
 * - SIGPROF (MP_SIG_FORWARD): memprof's handler stays installed. Signals
 *   from memprof's own timers are samples; every other SIGPROF (kill,
 *   sigqueue, a timer memprof does not know of) is delivered to what the
 *   program asked for, as the kernel would have: its handler with its mask
 *   and flags, nothing if it ignores it, the end of the process if it left
 *   the default. So a program that only installs a handler (sort does, to
 *   clean up) keeps it, and memprof keeps its samples. A program that arms
 *   a profiling timer of its own (setitimer ITIMER_PROF, or timer_create
 *   with SIGPROF, both wrapped here) is profiling itself: memprof stops its
 *   timers and hands SIGPROF back (mp_cpu_step_aside).
 * - The dump signal (MP_SIG_YIELD): memprof's handler is installed only
 *   while the program leaves the signal at its default. A handler of the
 *   program's takes it over (memprof says so once), ignoring it makes it
 *   ignored, and setting the default back gives it back to memprof.
 *
 * Everything here may run in a signal handler: no locks, no allocation.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define MP_EXPORT __attribute__((visibility("default")))
#define VIEWS 4

struct shared_sig {
	int sig;
	enum mp_sig_policy policy;
	void (*ours)(int, siginfo_t *, void *);
	_Atomic bool managed;  /* memprof shares it now */
	bool said;             /* the one-line notice was given */
	/* The program's view: writers fill the next slot and publish its
	 * index, so a handler never reads a half-written one. */
	struct sigaction view[VIEWS];
	_Atomic unsigned cur, next;
};

static struct shared_sig shared[2];

static struct shared_sig *find(int sig)
{
	for (int i = 0; i < 2; i++)
		if (shared[i].sig == sig && atomic_load_explicit(&shared[i].managed, memory_order_acquire))
			return &shared[i];
	return NULL;
}

static void read_view(struct shared_sig *s, struct sigaction *out)
{
	*out = s->view[atomic_load_explicit(&s->cur, memory_order_acquire) % VIEWS];
}

static void write_view(struct shared_sig *s, const struct sigaction *a)
{
	unsigned slot = atomic_fetch_add(&s->next, 1) % VIEWS;
	s->view[slot] = *a;
	atomic_store_explicit(&s->cur, slot, memory_order_release);
}

static bool is_default(const struct sigaction *a)
{
	return !(a->sa_flags & SA_SIGINFO) && a->sa_handler == SIG_DFL;
}

static bool is_handler(const struct sigaction *a)
{
	return (a->sa_flags & SA_SIGINFO) ||
	       (a->sa_handler != SIG_DFL && a->sa_handler != SIG_IGN);
}

static int install_ours(struct shared_sig *s)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = s->ours;
	/* SA_RESTART: a sample must never make the program's read() fail. */
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	return mp_real.sigaction(s->sig, &sa, NULL);
}

/* "USR2" for SIGUSR2, as kill -l names it; a number for the others. */
static void sig_label(int sig, char *buf, size_t size)
{
	static const struct {
		int sig;
		const char *name;
	} names[] = { { SIGUSR1, "USR1" }, { SIGUSR2, "USR2" }, { SIGHUP, "HUP" },
		      { SIGWINCH, "WINCH" }, { SIGURG, "URG" }, { SIGPWR, "PWR" } };
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].sig == sig) {
			mp_format(buf, size, "%s", names[i].name);
			return;
		}
	mp_format(buf, size, "%d", sig);
}

/* MP_SIG_YIELD: the real disposition follows the program's view. */
static void apply_yield(struct shared_sig *s, const struct sigaction *view)
{
	if (is_default(view)) {
		install_ours(s);
		return;
	}
	mp_real.sigaction(s->sig, view, NULL);
	if (is_handler(view) && !s->said) {
		char name[16];
		s->said = true;
		sig_label(s->sig, name, sizeof(name));
		mp_log("the program handles signal %s itself: kill -%s goes to it, not to memprof "
		       "(dump with kill -USR2 <collector pid>, or choose MEMPROF_DUMP_SIGNAL)",
		       name, name);
	}
}

int mp_signal_take(int sig, void (*handler)(int, siginfo_t *, void *), enum mp_sig_policy policy)
{
	struct shared_sig *s = NULL;
	for (int i = 0; i < 2 && !s; i++)
		if (!shared[i].sig || shared[i].sig == sig)
			s = &shared[i];
	if (!s)
		return -1;
	struct sigaction old;
	if (mp_real.sigaction(sig, NULL, &old) != 0)
		return -1;
	s->sig = sig;
	s->policy = policy;
	s->ours = handler;
	write_view(s, &old);
	if (policy == MP_SIG_YIELD) {
		/* Whoever set it before us (an earlier constructor, or a
		 * parent that ignored it for its children) decided what it
		 * means. */
		if (!is_default(&old)) {
			apply_yield(s, &old);
			atomic_store(&s->managed, true);
			return 0;
		}
	}
	if (install_ours(s) != 0)
		return -1;
	atomic_store_explicit(&s->managed, true, memory_order_release);
	return 0;
}

void mp_signal_release(int sig)
{
	struct shared_sig *s = find(sig);
	if (!s)
		return;
	atomic_store(&s->managed, false);
	struct sigaction view;
	read_view(s, &view);
	mp_real.sigaction(sig, &view, NULL);
}

/* exec resets handled signals to their default and keeps ignored ones
 * ignored. A SIGPROF the program ignores is memprof's handler for real, so
 * before an exec it is made ignored again, as the new program would have
 * inherited it; if the exec fails, memprof's handler comes back. May run
 * in a vfork child, whose dispositions are its own. */
static bool ignored_for_exec(struct shared_sig *s)
{
	struct sigaction view;
	if (s->policy != MP_SIG_FORWARD || !atomic_load(&s->managed))
		return false;
	read_view(s, &view);
	return !(view.sa_flags & SA_SIGINFO) && view.sa_handler == SIG_IGN;
}

void mp_signals_before_exec(void)
{
	for (int i = 0; i < 2; i++)
		if (ignored_for_exec(&shared[i])) {
			struct sigaction ign;
			memset(&ign, 0, sizeof(ign));
			ign.sa_handler = SIG_IGN;
			mp_real.sigaction(shared[i].sig, &ign, NULL);
		}
}

void mp_signals_after_exec(void)
{
	for (int i = 0; i < 2; i++)
		if (ignored_for_exec(&shared[i]))
			install_ours(&shared[i]);
}

static pid_t gettid_raw(void)
{
	return (pid_t)syscall(SYS_gettid);
}

void mp_signal_forward(int sig, siginfo_t *si, void *uc)
{
	struct shared_sig *s = find(sig);
	struct sigaction a;
	if (s) {
		read_view(s, &a);
	} else {
		memset(&a, 0, sizeof(a));
		a.sa_handler = SIG_DFL;
	}
	if (!(a.sa_flags & SA_SIGINFO) && a.sa_handler == SIG_IGN)
		return;
	sigset_t mask;
	if (!(a.sa_flags & SA_SIGINFO) && a.sa_handler == SIG_DFL) {
		/* SIGPROF's default is to end the process: let the kernel do
		 * it, with the signal the program would have died of. */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		mp_real.sigaction(sig, &dfl, NULL);
		sigemptyset(&mask);
		sigaddset(&mask, sig);
		syscall(SYS_tgkill, getpid(), gettid_raw(), sig);
		pthread_sigmask(SIG_UNBLOCK, &mask, NULL);
		return;
	}
	if (a.sa_flags & SA_RESETHAND) {
		struct sigaction dfl;
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		if (s)
			write_view(s, &dfl);
	}
	/* The mask the kernel would have applied for the program's handler;
	 * the one in place before the signal comes back at sigreturn. */
	mask = a.sa_mask;
	if (!(a.sa_flags & SA_NODEFER))
		sigaddset(&mask, sig);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	if (a.sa_flags & SA_NODEFER) {
		sigemptyset(&mask);
		sigaddset(&mask, sig);
		pthread_sigmask(SIG_UNBLOCK, &mask, NULL);
	}
	if (a.sa_flags & SA_SIGINFO)
		a.sa_sigaction(sig, si, uc);
	else
		a.sa_handler(sig);
}

/* ---- the program's calls ------------------------------------------------ */

/* sigaction is async-signal-safe and may be called from a handler, where
 * dlsym is not: the real functions are found with the allocator's, at the
 * first malloc (mp_init), and only looked up here if sigaction comes first. */
MP_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
	if (!mp_real.sigaction)
		*(void **)&mp_real.sigaction = mp_real_symbol("sigaction");
	struct shared_sig *s = find(sig);
	if (!s)
		return mp_real.sigaction(sig, act, old);
	struct sigaction prev;
	read_view(s, &prev);
	if (act) {
		write_view(s, act);
		if (s->policy == MP_SIG_YIELD)
			apply_yield(s, act);
	}
	if (old)
		*old = prev;
	return 0;
}

MP_EXPORT sighandler_t signal(int sig, sighandler_t handler)
{
	if (!mp_real.signal)
		*(void **)&mp_real.signal = mp_real_symbol("signal");
	if (!find(sig))
		return mp_real.signal(sig, handler);
	/* What glibc's signal() asks for: BSD semantics. */
	struct sigaction act, old;
	memset(&act, 0, sizeof(act));
	act.sa_handler = handler;
	sigemptyset(&act.sa_mask);
	sigaddset(&act.sa_mask, sig);
	act.sa_flags = SA_RESTART;
	if (sigaction(sig, &act, &old) != 0)
		return SIG_ERR;
	return old.sa_handler;
}

MP_EXPORT int setitimer(__itimer_which_t which, const struct itimerval *value,
			struct itimerval *old)
{
	if (!mp_real.setitimer)
		*(void **)&mp_real.setitimer = mp_real_symbol("setitimer");
	if (which == ITIMER_PROF && value && (value->it_value.tv_sec || value->it_value.tv_usec))
		mp_cpu_step_aside("the program runs its own profiling timer (setitimer); "
				  "CPU profiling is off");
	return mp_real.setitimer(which, value, old);
}

MP_EXPORT int timer_create(clockid_t clock, struct sigevent *sev, timer_t *timer)
{
	if (!mp_real.timer_create)
		*(void **)&mp_real.timer_create = mp_real_symbol("timer_create");
	if (sev && sev->sigev_signo == SIGPROF &&
	    (sev->sigev_notify == SIGEV_SIGNAL || sev->sigev_notify == SIGEV_THREAD_ID))
		mp_cpu_step_aside("the program runs its own SIGPROF timer (timer_create); "
				  "CPU profiling is off");
	return mp_real.timer_create(clock, sev, timer);
}
