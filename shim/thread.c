/*
 * The program's own threads, as memprof sees them. Every thread the program
 * creates starts in memprof_thread_start (the pthread_create wrapper below),
 * which notes the bounds of its stack (the unwinder reads nothing outside
 * them), starts its CPU timer (cpu.c) and counts it; a thread-specific key's
 * destructor counts it out when it ends.
 *
 * The count is what keeps memprof from outliving the program. glibc ends a
 * process when its last thread exits (pthread_exit from main once the
 * others have returned, or a fork child's only thread returning), but it
 * counts memprof's threads (writer.c, keeper.c) as the process's, so
 * without help such a process would never end. When the count falls to
 * zero the keeper is told (mp_threads_orphaned; the writer, where there is
 * no keeper); once the last thread has really gone it ends the process as
 * glibc would have, with exit(0).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "shim.h"
#include "unwind.h"

#define MP_EXPORT __attribute__((visibility("default")))

/* The initial thread's stack ends just above the arguments and environment
 * the kernel put there; ld.so exports where they begin. */
extern void *__libc_stack_end;

/* Threads of the program's that have started and not yet ended. Only the
 * threads that hold a value for key are counted, each exactly once. */
static _Atomic long live;
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static _Atomic bool key_ok;
static pthread_t main_thread;
/* The program's signal mask when memprof started, given back to the thread
 * that ends the process for it. */
static sigset_t start_mask;

static void thread_end(void *value);

static void make_key(void)
{
	if (pthread_key_create(&key, thread_end) == 0)
		atomic_store(&key_ok, true);
}

/* The calling thread's stack, into its mp_tls. The initial thread's comes
 * from __libc_stack_end: pthread_getattr_np would read /proc/self/maps for
 * it, with a descriptor of the program's own numbering and a FILE. Other
 * threads' come from their descriptors; glibc allocates while answering,
 * which the busy flag keeps out of the profile. */
void mp_thread_learn_stack(struct mp_tls *t)
{
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
	if (main_thread && pthread_equal(pthread_self(), main_thread)) {
		long page = sysconf(_SC_PAGESIZE);
		uintptr_t top = (uintptr_t)__libc_stack_end;
		if (page > 0)
			top = (top + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
		if (sp < top) {
			t->stack_hi = top;
			/* The initial stack grows on demand; only stack pointers
			 * coming back from a signal frame are tested against it. */
			t->stack_lo = top > (1UL << 30) ? top - (1UL << 30) : 0;
			return;
		}
	}
	pthread_attr_t attr;
	void *addr;
	size_t size;
	t->busy++;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		if (pthread_attr_getstack(&attr, &addr, &size) == 0 && (uintptr_t)addr < sp &&
		    sp < (uintptr_t)addr + size) {
			t->stack_lo = (uintptr_t)addr;
			t->stack_hi = (uintptr_t)addr + size;
		}
		pthread_attr_destroy(&attr);
	}
	t->busy--;
	if (!t->stack_hi)
		t->stack_hi = 1; /* unknown, and not worth asking again */
}


/* Counts the calling thread in, once. */
static void count_in(void)
{
	pthread_once(&key_once, make_key);
	if (!atomic_load(&key_ok) || pthread_getspecific(key))
		return;
	atomic_fetch_add(&live, 1);
	pthread_setspecific(key, (void *)1);
}

/* Key destructor: the thread is ending (returned from its start routine or
 * called pthread_exit). Other keys' destructors may still run after this
 * one, which is why the keeper waits for the thread to be gone for real. */
static void thread_end(void *value)
{
	(void)value;
	mp_cpu_thread_end();
	mp_tring_thread_end();
	mp_tally_thread_end();
	mp_unwind_thread_end();
	if (atomic_fetch_sub(&live, 1) == 1) {
		mp_writer_wake();
		mp_keeper_wake();
	}
}

bool mp_threads_orphaned(void)
{
	return atomic_load(&live) <= 0 && atomic_load(&key_ok);
}

void mp_exit_for_program(void)
{
	/* Its atexit handlers and stdio flushes run as on the program's own
	 * threads: no shim work counted as the program's, its signal mask. */
	mp_tls.busy = 0;
	sigset_t mask;
	mp_threads_start_mask(&mask);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	exit(0);
}

int mp_start_own_thread(pthread_t *t, void *(*fn)(void *), const char *name)
{
	/* Every signal blocked from its first instruction on, so that the
	 * program's signals always go to the program's own threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = mp_real.pthread_create ? mp_real.pthread_create(t, NULL, fn, NULL) : ENOSYS;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0) {
		pthread_setname_np(*t, name);
		pthread_detach(*t);
	}
	return rc;
}

void mp_threads_start_mask(sigset_t *out)
{
	*out = start_mask;
}

void mp_threads_init(void)
{
	main_thread = pthread_self();
	pthread_sigmask(SIG_SETMASK, NULL, &start_mask);
	count_in();
	mp_thread_stack(&(uintptr_t){ 0 }, &(uintptr_t){ 0 });
}

void mp_threads_fork_child(void)
{
	/* Only the thread that forked exists here, and it is the program's. */
	atomic_store(&live, 0);
	if (atomic_load(&key_ok))
		pthread_setspecific(key, NULL);
	count_in();
}

struct start {
	void *(*fn)(void *);
	void *arg;
};

/* Every thread the program creates starts here (a frame named so in its
 * stacks, between start_thread and the program's own start routine). */
static void *memprof_thread_start(void *p)
{
	struct start s = *(struct start *)p;
	mp_real.free(p);
	count_in();
	mp_thread_stack(&(uintptr_t){ 0 }, &(uintptr_t){ 0 });
	mp_cpu_thread_begin();
	return s.fn(s.arg);
}

MP_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *),
			     void *arg)
{
	if (!mp_real.pthread_create)
		mp_init();
	if (!mp_real.pthread_create)
		return ENOSYS;
	struct start *s = mp_real.malloc(sizeof(*s));
	if (!s)
		return mp_real.pthread_create(thread, attr, fn, arg);
	s->fn = fn;
	s->arg = arg;
	int rc = mp_real.pthread_create(thread, attr, memprof_thread_start, s);
	if (rc != 0)
		mp_real.free(s);
	return rc;
}
