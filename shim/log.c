/*
 * Messages from inside the host program: a tiny printf subset that formats
 * into a caller's buffer, and mp_log, which writes one line to stderr.
 * No stdio and no malloc, so both may run inside malloc, after fork and in
 * signal handlers.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

struct out {
	char *buf;
	size_t size;
	size_t len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_str(struct out *o, const char *s)
{
	if (!s)
		s = "(null)";
	while (*s)
		put(o, *s++);
}

static void put_num(struct out *o, unsigned long long v, unsigned base, bool neg)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		put(o, '-');
	while (n)
		put(o, tmp[--n]);
}

int mp_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = { buf, size, 0 };
	for (const char *f = fmt; *f; f++) {
		if (*f != '%') {
			put(&o, *f);
			continue;
		}
		f++;
		int longs = 0;
		bool size_t_arg = false;
		while (*f == 'l') {
			longs++;
			f++;
		}
		if (*f == 'z') {
			size_t_arg = true;
			f++;
		}
		switch (*f) {
		case 's':
			put_str(&o, va_arg(ap, const char *));
			break;
		case 'd': {
			long long v = longs ? va_arg(ap, long) : va_arg(ap, int);
			put_num(&o, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v, 10,
				v < 0);
			break;
		}
		case 'u':
		case 'x': {
			unsigned long long v = size_t_arg ? va_arg(ap, size_t)
				: longs ? va_arg(ap, unsigned long)
				: va_arg(ap, unsigned);
			put_num(&o, v, *f == 'x' ? 16 : 10, false);
			break;
		}
		case '%':
			put(&o, '%');
			break;
		case '\0':
			f--;
			break;
		default:
			put(&o, '%');
			put(&o, *f);
		}
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int mp_format(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = mp_vformat(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

bool mp_quiet;
__thread bool mp_log_to_keeper __attribute__((tls_model("initial-exec")));

void mp_log(const char *fmt, ...)
{
	if (mp_quiet)
		return;
	int saved = errno;
	char line[512] = "memprof: ";
	size_t pre = strlen(line);
	va_list ap;
	va_start(ap, fmt);
	int n = mp_vformat(line + pre, sizeof(line) - pre - 1, fmt, ap);
	va_end(ap);
	size_t len = pre + ((size_t)n < sizeof(line) - pre - 1 ? (size_t)n : sizeof(line) - pre - 2);
	line[len++] = '\n';
	/* The writer's table has no stderr: the keeper prints for it. */
	if (mp_log_to_keeper && mp_keeper_log(line, len)) {
		errno = saved;
		return;
	}
	mp_write_stderr(line, len);
	errno = saved;
}

void mp_write_stderr(const char *p, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t w = write(STDERR_FILENO, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}
