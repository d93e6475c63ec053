/*
 * MEMPROF_* settings, read once from the environment at start. A value that
 * does not parse is reported in one line naming the variable and replaced by
 * the default; the variable is then removed from the environment so that the
 * program's children do not repeat the complaint. README.md lists them all.
 */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

struct mp_config mp_cfg;

extern char **environ;

#define DEFAULT_RATE 524288ULL
#define DEFAULT_CPU_HZ 100U
#define MAX_CPU_HZ 10000U

/* Parses a decimal number with an optional binary suffix (k, m, g). */
static int parse_u64(const char *s, uint64_t max, bool suffixes, uint64_t *out)
{
	uint64_t v = 0;
	const char *p = s;
	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (suffixes && *p) {
		unsigned shift = 0;
		switch (*p | 0x20) {
		case 'k': shift = 10; break;
		case 'm': shift = 20; break;
		case 'g': shift = 30; break;
		default: return -1;
		}
		p++;
		if ((*p | 0x20) == 'i' && (p[1] | 0x20) == 'b')
			p += 2;
		else if ((*p | 0x20) == 'b')
			p++;
		if (v > (UINT64_MAX >> shift))
			return -1;
		v <<= shift;
	}
	if (*p || v > max)
		return -1;
	*out = v;
	return 0;
}

static const struct {
	const char *name;
	int num;
} signal_names[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 },
	{ "USR2", SIGUSR2 }, { "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "CONT", SIGCONT },
	{ "TTIN", SIGTTIN }, { "TTOU", SIGTTOU }, { "URG", SIGURG }, { "WINCH", SIGWINCH },
	{ "PWR", SIGPWR },
};

/* A signal that may carry dump requests: not one the kernel sends for a
 * fault, not SIGPROF (the CPU profiler's) and not one that cannot be caught. */
static bool usable_dump_signal(int sig)
{
	switch (sig) {
	case SIGKILL: case SIGSTOP: case SIGSEGV: case SIGBUS: case SIGFPE:
	case SIGILL: case SIGTRAP: case SIGABRT: case SIGSYS: case SIGPROF:
	case SIGCHLD: case SIGPIPE:
		return false;
	}
	return sig > 0 && sig <= SIGRTMAX;
}

static int parse_signal(const char *s, int *out)
{
	uint64_t v;
	if (parse_u64(s, 1000, false, &v) == 0) {
		if (v != 0 && !usable_dump_signal((int)v))
			return -1;
		*out = (int)v;
		return 0;
	}
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (size_t i = 0; i < sizeof(signal_names) / sizeof(signal_names[0]); i++) {
		if (strcmp(s, signal_names[i].name) == 0) {
			*out = signal_names[i].num;
			return 0;
		}
	}
	return -1;
}

/* The collector's --mode rule (collector/options.c): octal, read and write
 * bits only, the owner's among them. */
static bool valid_mode(const char *s)
{
	unsigned v = 0;
	size_t n = strlen(s);
	if (n == 0 || n > 4)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '7')
			return false;
		v = v * 8 + (unsigned)(s[i] - '0');
	}
	return !(v & ~0666U) && (v & 0600U) == 0600U;
}

static void reject(const char *name, const char *value, const char *want, const char *dflt)
{
	mp_log("%s=%s is not %s; using %s", name, value, want, dflt);
	unsetenv(name);
}

static const char *const known[] = {
	"MEMPROF_RATE", "MEMPROF_CPU_HZ", "MEMPROF_DIR", "MEMPROF_INTERVAL",
	"MEMPROF_SOCKET", "MEMPROF_DUMP_SIGNAL", "MEMPROF_SEED",
	"MEMPROF_COLLECTOR", "MEMPROF_QUIET", "MEMPROF_LEAK_CHECK", "MEMPROF_LEAK_EXITCODE",
	"MEMPROF_SUPPRESSIONS", "MEMPROF_MODE", "MEMPROF_CACHE_DIR", "MEMPROF_WRITER",
	"MEMPROF_ALL", "MEMPROF_ONLY", /* read by the collector */
	NULL,
};

/* A misspelt setting silently doing nothing is the worst kind of failure for
 * a profiler; name it. */
static void warn_unknown(void)
{
	for (char **e = environ; e && *e; e++) {
		if (strncmp(*e, "MEMPROF_", 8) != 0)
			continue;
		size_t n = strcspn(*e, "=");
		bool ok = false;
		for (const char *const *k = known; *k; k++)
			ok |= strlen(*k) == n && strncmp(*k, *e, n) == 0;
		if (!ok) {
			char name[64];
			mp_format(name, sizeof(name), "%s", *e);
			name[n < sizeof(name) ? n : sizeof(name) - 1] = '\0';
			mp_log("unknown setting %s ignored (see README.md for the MEMPROF_* list)",
			       name);
		}
	}
}

void mp_config_load(void)
{
	const char *v;
	uint64_t n;

	if ((v = getenv("MEMPROF_QUIET")) && *v && strcmp(v, "0") != 0)
		mp_quiet = true;
	mp_cfg.rate = DEFAULT_RATE;
	mp_cfg.cpu_hz = DEFAULT_CPU_HZ;
	mp_cfg.dump_signal = SIGUSR2;

	if ((v = getenv("MEMPROF_RATE")) && *v) {
		if (parse_u64(v, 1ULL << 40, true, &n) == 0)
			mp_cfg.rate = n;
		else
			reject("MEMPROF_RATE", v, "a number of bytes (0 = off, 1 = every allocation)",
			       "524288");
	}
	if ((v = getenv("MEMPROF_CPU_HZ")) && *v) {
		if (parse_u64(v, MAX_CPU_HZ, false, &n) == 0)
			mp_cfg.cpu_hz = (unsigned)n;
		else
			reject("MEMPROF_CPU_HZ", v, "a rate from 0 to 10000 per CPU-second", "100");
	}
	if ((v = getenv("MEMPROF_INTERVAL")) && *v) {
		if (parse_u64(v, 86400 * 365, false, &n) == 0)
			mp_cfg.interval = (unsigned)n;
		else
			reject("MEMPROF_INTERVAL", v, "a number of seconds", "0 (off)");
	}
	if ((v = getenv("MEMPROF_DUMP_SIGNAL")) && *v) {
		if (parse_signal(v, &mp_cfg.dump_signal) != 0)
			reject("MEMPROF_DUMP_SIGNAL", v,
			       "a signal number or name such as USR1 (0 = none)", "SIGUSR2");
	}
	if ((v = getenv("MEMPROF_SEED")) && *v) {
		if (parse_u64(v, UINT64_MAX, false, &n) == 0)
			mp_cfg.seed = n;
		else
			reject("MEMPROF_SEED", v, "a number", "a random seed");
	}
	if ((v = getenv("MEMPROF_SOCKET")) && *v) {
		if (strlen(v) < sizeof(mp_cfg.socket))
			memcpy(mp_cfg.socket, v, strlen(v) + 1);
		else
			reject("MEMPROF_SOCKET", v, "a socket path shorter than 108 bytes",
			       "a private collector");
	}
	if ((v = getenv("MEMPROF_DIR")) && *v) {
		if (strlen(v) < sizeof(mp_cfg.dir))
			memcpy(mp_cfg.dir, v, strlen(v) + 1);
		else
			reject("MEMPROF_DIR", v, "a path shorter than 1024 bytes", "./memprof-out");
	}
	if ((v = getenv("MEMPROF_MODE")) && *v) {
		if (valid_mode(v))
			memcpy(mp_cfg.mode, v, strlen(v) + 1);
		else
			reject("MEMPROF_MODE", v, "a file mode such as 0600, 0640 or 0644", "0600");
	}
	if ((v = getenv("MEMPROF_WRITER")) && *v) {
		if (strcmp(v, "thread") == 0 || strcmp(v, "ring") == 0)
			mp_cfg.writer_thread = strcmp(v, "thread") == 0;
		else
			reject("MEMPROF_WRITER", v, "ring or thread", "ring");
	}
	mp_cfg.leak_exitcode = 23;
	if ((v = getenv("MEMPROF_LEAK_CHECK")) && *v) {
		if (parse_u64(v, 1, false, &n) == 0)
			mp_cfg.leak_check = n == 1;
		else
			reject("MEMPROF_LEAK_CHECK", v, "0 or 1", "0 (no leak check)");
	}
	if ((v = getenv("MEMPROF_LEAK_EXITCODE")) && *v) {
		if (parse_u64(v, 255, false, &n) == 0)
			mp_cfg.leak_exitcode = (int)n;
		else
			reject("MEMPROF_LEAK_EXITCODE", v, "an exit status from 0 to 255", "23");
	}
	if ((v = getenv("MEMPROF_SUPPRESSIONS")) && *v) {
		if (strlen(v) < sizeof(mp_cfg.suppressions) && v[0] == '/')
			memcpy(mp_cfg.suppressions, v, strlen(v) + 1);
		else
			reject("MEMPROF_SUPPRESSIONS", v, "an absolute path shorter than 1024 bytes",
			       "no suppressions");
	}
	if (mp_cfg.leak_check) {
		/* Every allocation must be known to tell leaks; CPU samples would
		 * only slow the check down. */
		mp_cfg.rate = 1;
		if (!getenv("MEMPROF_CPU_HZ"))
			mp_cfg.cpu_hz = 0;
	}
	mp_cfg.full_trace = mp_cfg.rate == 1;
	warn_unknown();
}
