/*
 * exec: the wrappers send what the writer has not sent yet before the
 * process image is replaced. Without them the samples (and CPU samples) of
 * the last moments before an exec die with the image, and a program that
 * allocates and then execs, as shells and launchers do, shows a profile
 * with nothing in it.
 *
 * glibc's own exec family calls its internal execve directly, so every
 * variant is wrapped, each forwarding to the real execve, execvpe, fexecve
 * or execveat as glibc would. exec is async-signal-safe and may be called
 * from a vfork child: the wrappers never allocate or take a lock, the real
 * functions are found at initialisation, and the writer is not asked from
 * a vfork child (mp_writer_sync checks).
 */
#include <errno.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim.h"

#define MP_EXPORT __attribute__((visibility("default")))

/* A collector that takes nothing for this long does not hold up the exec. */
#define EXEC_STALL_MS 50

extern char **environ;

static void before_exec(void)
{
	if (atomic_load_explicit(&mp_state, memory_order_acquire) != MP_STATE_ON)
		return;
	int saved = errno;
	mp_writer_sync(EXEC_STALL_MS);
	errno = saved;
}

/* The real function, or, if exec comes before initialisation (from an
 * earlier constructor), looked up now. */
#define REAL(name) (mp_real.name ? mp_real.name : (__typeof__(mp_real.name))mp_real_symbol(#name))

/* For a real function that could not be found. */
static int no_real(void)
{
	errno = ENOSYS;
	return -1;
}

/* What every wrapper does: send what is queued, then exec with the path
 * as given (exec_path) or searched for in PATH (exec_file). */
static int exec_path(const char *path, char *const argv[], char *const envp[])
{
	before_exec();
	if (mp_real.execve)
		return mp_real.execve(path, argv, envp);
	return (int)syscall(SYS_execve, path, argv, envp);
}

static int exec_file(const char *file, char *const argv[], char *const envp[])
{
	before_exec();
	int (*fn)(const char *, char *const[], char *const[]) = REAL(execvpe);
	return fn ? fn(file, argv, envp) : no_real();
}

MP_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	return exec_path(path, argv, envp);
}

MP_EXPORT int execv(const char *path, char *const argv[])
{
	return exec_path(path, argv, environ);
}

MP_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	return exec_file(file, argv, envp);
}

MP_EXPORT int execvp(const char *file, char *const argv[])
{
	return exec_file(file, argv, environ);
}

MP_EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
	before_exec();
	int (*fn)(int, char *const[], char *const[]) = REAL(fexecve);
	return fn ? fn(fd, argv, envp) : no_real();
}

MP_EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[],
		       int flags)
{
	before_exec();
	int (*fn)(int, const char *, char *const[], char *const[], int) = REAL(execveat);
	if (!fn)
		return (int)syscall(SYS_execveat, dirfd, path, argv, envp, flags);
	return fn(dirfd, path, argv, envp, flags);
}

/* The list forms gather their arguments into an array on the stack, as
 * glibc does (no malloc: a vfork child may call them). */
static size_t count_args(const char *first, va_list ap)
{
	size_t n = 1;
	if (first)
		while (va_arg(ap, const char *))
			n++;
	return n;
}

static void gather_args(char **argv, size_t n, const char *first, va_list *ap)
{
	argv[0] = (char *)first;
	for (size_t i = 1; i < n; i++)
		argv[i] = va_arg(*ap, char *);
	argv[n] = NULL;
	if (first)
		(void)va_arg(*ap, char *); /* the terminating NULL */
}

#define LIST_TO_ARGV(argv, first, ap)                                 \
	va_list ap, count_;                                           \
	va_start(ap, first);                                          \
	va_copy(count_, ap);                                          \
	size_t n_ = count_args(first, count_);                        \
	va_end(count_);                                               \
	char *argv[n_ + 1];                                           \
	gather_args(argv, n_, first, &ap)

MP_EXPORT int execl(const char *path, const char *arg, ...)
{
	LIST_TO_ARGV(argv, arg, ap);
	va_end(ap);
	return exec_path(path, argv, environ);
}

MP_EXPORT int execlp(const char *file, const char *arg, ...)
{
	LIST_TO_ARGV(argv, arg, ap);
	va_end(ap);
	return exec_file(file, argv, environ);
}

MP_EXPORT int execle(const char *path, const char *arg, ...)
{
	LIST_TO_ARGV(argv, arg, ap);
	char *const *envp = va_arg(ap, char *const *);
	va_end(ap);
	return exec_path(path, argv, envp);
}
