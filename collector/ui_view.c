/*
 * Reading profiles on disk without Go: memprof-collector --top prints
 * pprof's -top table (ui_prof.c), --view serves the page of ui.c over the
 * files until interrupted. Both are whole programs that main.c hands
 * over to before it sets anything up; they share only http.c with the
 * collector proper.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "http.h"
#include "http_server.h"
#include "strbuf.h"
#include "ui.h"
#include "ui_prof.h"
#include "util.h"

/* The value of an option given as "-opt V", "-opt=V", "--opt V" or
 * "--opt=V"; advances *i past what it used. NULL if argv[*i] is not it. */
static const char *opt_value(int argc, char **argv, int *i, const char *name, bool *missing)
{
	const char *a = argv[*i];
	if (a[0] != '-')
		return NULL;
	a += a[1] == '-' ? 2 : 1;
	size_t n = strlen(name);
	if (strncmp(a, name, n) != 0)
		return NULL;
	if (a[n] == '=')
		return a + n + 1;
	if (a[n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		*missing = true;
		return NULL;
	}
	return argv[++*i];
}

static bool is_flag(const char *a, const char *name)
{
	if (a[0] != '-')
		return false;
	a += a[1] == '-' ? 2 : 1;
	return strcmp(a, name) == 0;
}

int ui_top_main(int argc, char **argv)
{
	struct ui_top_opts o = { 0, false, 0, 0.005 };
	const char *index = NULL;
	char **files = xcalloc((size_t)argc + 1, sizeof(char *));
	int nfiles = 0;
	for (int i = 1; i < argc; i++) {
		bool missing = false;
		const char *v;
		if (is_flag(argv[i], "cum")) {
			o.cum = true;
		} else if (is_flag(argv[i], "flat")) {
			o.cum = false;
		} else if ((v = opt_value(argc, argv, &i, "nodecount", &missing))) {
			char *end;
			long n = strtol(v, &end, 10);
			if (*end || end == v || n < 0 || n > 1000000) {
				log_msg("-nodecount wants a number, not '%s'", v);
				return 2;
			}
			o.nodecount = (int)n;
		} else if ((v = opt_value(argc, argv, &i, "sample_index", &missing))) {
			index = v;
		} else if ((v = opt_value(argc, argv, &i, "nodefraction", &missing))) {
			char *end;
			o.nodefraction = strtod(v, &end);
			if (*end || end == v || o.nodefraction < 0 || o.nodefraction > 1) {
				log_msg("-nodefraction wants a fraction from 0 to 1, not '%s'", v);
				return 2;
			}
		} else if (missing) {
			log_msg("%s wants a value", argv[i]);
			return 2;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			log_msg("unknown option %s (top takes -cum, -nodecount N, -sample_index NAME, "
				"-nodefraction F)", argv[i]);
			return 2;
		} else {
			files[nfiles++] = argv[i];
		}
	}
	if (!nfiles) {
		fprintf(stderr, "usage: memprof top [-cum] [-nodecount N] [-sample_index NAME] "
				"FILE...\n");
		return 2;
	}
	struct ui_prof pr = { 0 };
	char why[4400];
	for (int i = 0; i < nfiles; i++) {
		if (ui_prof_add_file(&pr, files[i], false, why, sizeof(why)) != 0) {
			log_msg("%s", why);
			return 1;
		}
	}
	o.index = pr.default_index;
	if (index) {
		char *end;
		long n = strtol(index, &end, 10);
		int k = ui_prof_index(&pr, index);
		if (k < 0 && *index && !*end && n >= 0 && (size_t)n < pr.ntypes)
			k = (int)n;
		if (k < 0) {
			struct strbuf b = { 0 };
			for (size_t t = 0; t < pr.ntypes; t++)
				sb_printf(&b, "%s%s", t ? ", " : "", pr.type[t]);
			log_msg("no sample type '%s' in the profile (it has %s)", index,
				b.s ? b.s : "none");
			sb_free(&b);
			return 2;
		}
		o.index = (size_t)k;
	}
	struct strbuf out = { 0 };
	ui_top_text(&pr, &o, &out);
	fwrite(out.s, 1, out.len, stdout);
	sb_free(&out);
	ui_prof_free(&pr);
	free(files);
	return fflush(stdout) == 0 ? 0 : 1;
}

int ui_view_main(int argc, char **argv)
{
	const char *http = "127.0.0.1:0", *base = NULL;
	char **files = xcalloc((size_t)argc + 1, sizeof(char *));
	int nfiles = 0;
	for (int i = 1; i < argc; i++) {
		bool missing = false;
		const char *v;
		if ((v = opt_value(argc, argv, &i, "http", &missing))) {
			const char *why;
			if (http_check_addr(v, &why) != 0) {
				log_msg("--http wants [ADDR:]PORT, not '%s': %s", v, why);
				return 2;
			}
			http = v;
		} else if ((v = opt_value(argc, argv, &i, "base", &missing))) {
			base = v;
		} else if (missing) {
			log_msg("%s wants a value", argv[i]);
			return 2;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			log_msg("unknown option %s (view takes --http ADDR:PORT, --base FILE)", argv[i]);
			return 2;
		} else {
			files[nfiles++] = argv[i];
		}
	}
	if (!nfiles) {
		fprintf(stderr, "usage: memprof view [--http ADDR:PORT] [--base FILE] FILE...\n");
		return 2;
	}
	/* Read them once now, so that a bad file is said at once. */
	struct ui_prof pr = { 0 };
	char why[4400];
	for (int i = 0; i <= nfiles; i++) {
		const char *f = i < nfiles ? files[i] : base;
		if (f && ui_prof_add_file(&pr, f, i == nfiles, why, sizeof(why)) != 0) {
			log_msg("%s", why);
			return 1;
		}
	}
	ui_prof_free(&pr);
	ui_set_view(files, nfiles, base);

	/* Ctrl-C ends it even when started in the background of a script
	 * (which leaves SIGINT ignored). */
	signal(SIGINT, SIG_DFL);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	signal(SIGPIPE, SIG_IGN);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	int epfd = epoll_create1(EPOLL_CLOEXEC);
	if (sfd < 0 || epfd < 0) {
		log_msg("cannot set up the event loop: %s", strerror(errno));
		return 1;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 1 };
	epoll_ctl(epfd, EPOLL_CTL_ADD, sfd, &ev);
	/* http_start says "listening on ... go tool pprof ..." for a port the
	 * kernel chose, which is the wrong advice here: our own line says
	 * where the page is. Its reasons for failing are said on a second
	 * try. */
	int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (saved >= 0 && null >= 0)
		dup2(null, STDERR_FILENO);
	int rc = http_start(http, epfd, &pprof_http_handler, false);
	if (saved >= 0 && null >= 0)
		dup2(saved, STDERR_FILENO);
	if (saved >= 0)
		close(saved);
	if (null >= 0)
		close(null);
	if (rc != 0 && http_start(http, epfd, &pprof_http_handler, false) != 0)
		return 1;
	char where[128];
	if (http_local_addr(where, sizeof(where)) != 0)
		snprintf(where, sizeof(where), "%s", http);
	printf("memprof: serving %d profile%s%s at http://%s/debug/pprof/ui/ (Ctrl-C to stop)\n",
	       nfiles, nfiles > 1 ? "s" : "", base ? " less the base" : "", where);
	fflush(stdout);
	for (;;) {
		struct epoll_event evs[32];
		int n = epoll_wait(epfd, evs, 32, -1);
		if (n < 0 && errno != EINTR) {
			log_msg("epoll_wait: %s", strerror(errno));
			break;
		}
		bool stop = false;
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == 1) {
				stop = true;
			} else if (http_owns_tag(evs[i].data.u64)) {
				if (http_event(evs[i].data.u64, evs[i].events))
					break;
			}
		}
		if (stop)
			break;
	}
	http_stop();
	free(files);
	return 0;
}
