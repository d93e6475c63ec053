/*
 * The page at /debug/pprof/ui/: its assets (embedded in the binary from
 * ui/, see ui_assets.S), the JSON it reads (built with ui_prof.c from the
 * profiles pprof.c encodes), the state it keeps per process (CPU samples
 * of the last seconds, growth baselines), and the same page over files
 * on disk (memprof-collector --view, ui_view.c).
 */
#ifndef MEMPROF_COLLECTOR_UI_H
#define MEMPROF_COLLECTOR_UI_H

#include <stdbool.h>
#include <stdint.h>

#include "http_server.h"
#include "proc.h"

/* Whether path (without the query) is the page's: /debug/pprof/ui[/...]. */
bool ui_owns_path(const char *path);
/* Answers a request for one of the page's paths. */
void ui_serve(struct http_conn *c, const struct http_request *rq);

/* The HTTP server's timer: the next time ui_snapshot wants to run (0:
 * never, the page has listed no process), and the run, which copies each
 * watched process's cumulative CPU counts once a second. */
uint64_t ui_next_snapshot(void);
void ui_snapshot(uint64_t now_ns);
/* A process about to be freed. */
void ui_proc_gone(const struct proc *p);


/* View mode: the page serves these files (merged, less base) instead of
 * live processes. The strings must outlive the server. */
void ui_set_view(char **files, int nfiles, const char *base);

/* memprof-collector --view ... and --top ...: whole programs (ui_view.c);
 * argv[0] is the option itself. Return the exit status. */
int ui_view_main(int argc, char **argv);
int ui_top_main(int argc, char **argv);

#endif /* MEMPROF_COLLECTOR_UI_H */
