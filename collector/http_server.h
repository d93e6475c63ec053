/*
 * The contract between the HTTP server (http.c: sockets, parsing, limits)
 * and the endpoints it serves (pprof_http.c). The server hands over each
 * complete, well-formed GET or HEAD request; the endpoint answers it with
 * http_respond() at once or later (a CPU profile answers after its
 * seconds), and is told (cancel) when a connection it has not answered
 * goes away.
 */
#ifndef MEMPROF_COLLECTOR_HTTP_SERVER_H
#define MEMPROF_COLLECTOR_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http_conn; /* opaque outside http.c */

struct http_request {
	const char *path;  /* as sent, starting with '/', without the query */
	const char *query; /* after '?', not decoded; "" if none */
	const char *peer;  /* the client's IP address, for per-client limits */
	bool post;         /* POST (only /debug/pprof/symbol takes one) */
	const char *body;  /* a POST's body, NUL-terminated, valid during the
			    * call only; "" for GET and HEAD */
	size_t body_len;
};

/* ---- provided by http.c --------------------------------------------------- */

/*
 * Answers c's request: status line, Content-Type, Content-Length,
 * Connection: close, the extra header lines in headers (each ending in
 * "\r\n"; NULL for none), then body unless the request was HEAD. Takes
 * ownership of body (malloc'd; NULL when len is 0). Only once per request;
 * never closes c (a write error is noticed by the event loop later), so the
 * caller may go on using c until it returns.
 */
void http_respond(struct http_conn *c, int status, const char *content_type,
		  const char *headers, char *body, size_t len);

/* An error as Go's net/http/pprof serveError writes it: text/plain, the
 * message and a newline, and X-Go-Pprof: 1, which makes go tool pprof show
 * the message rather than only the status. */
void http_error(struct http_conn *c, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Arms the server's timer for the earliest deadline, the endpoints'
 * included: to be called when the endpoints change theirs outside a call
 * from the server (http_proc_gone). */
void http_rearm(void);

/* ---- provided by the endpoints (pprof_http.c) ------------------------------ */

/*
 * What the server calls, given to http_start() as a pointer so that the
 * server calls nothing of the endpoints by name (they call http_respond:
 * with names both ways, the two would be one module).
 */
struct http_handler {
	/* A complete, well-formed GET or HEAD request. */
	void (*serve)(struct http_conn *c, const struct http_request *rq);
	/* c goes away before it was answered. */
	void (*cancel)(struct http_conn *c);
	/* The earliest CLOCK_MONOTONIC time (ns) at which tick has something
	 * to do; 0 if none. */
	uint64_t (*next_deadline)(void);
	/* Answers what is due at now_ns (CPU profiles whose time is up). */
	void (*tick)(uint64_t now_ns);
};

/* pprof_http.c's endpoints. */
extern const struct http_handler pprof_http_handler;

/* Decodes s[0, n) of a query (percent escapes, '+' for space) into out, of
 * size bytes; -1 if an escape is malformed or the text holds a NUL, 1 if it
 * did not fit (out then holds what did), else 0. */
int http_query_decode(const char *s, size_t n, char *out, size_t size);

#endif /* MEMPROF_COLLECTOR_HTTP_SERVER_H */
