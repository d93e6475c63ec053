/*
 * A small HTTP/1.1 server inside the collector's event loop, for Go's
 * /debug/pprof/ endpoints (pprof_http.c). It owns the listening socket, the
 * connections and their limits; what a path means is the endpoints' affair.
 *
 * Nothing may stall the loop that takes in events and writes dumps, so:
 * - sockets are non-blocking; a response is composed in memory and written
 *   as the socket takes it (EPOLLOUT);
 * - a request (line and headers) must fit in HTTP_MAX_REQUEST bytes (431
 *   otherwise) and arrive within HTTP_REQUEST_NS of the connection (else it
 *   is closed), the response be taken within HTTP_WRITE_NS;
 * - at most HTTP_MAX_CONNS connections: another one replaces the oldest
 *   that has not sent a whole request (or has had its answer), and is told
 *   503 when every one is busy with a request;
 * - one request per connection (Connection: close), GET and HEAD, and POST
 *   with a Content-Length body that fits in HTTP_MAX_REQUEST with the
 *   headers (Go's /debug/pprof/symbol protocol).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "http_server.h"
#include "strbuf.h"
#include "util.h"

#define HTTP_MAX_REQUEST 8192                     /* request line + headers */
#define HTTP_REQUEST_NS (10ULL * 1000000000ULL)  /* to send a whole request */
#define HTTP_WRITE_NS (60ULL * 1000000000ULL)    /* to take a whole response */
#define HTTP_LINGER_NS (2ULL * 1000000000ULL)    /* see begin_linger */
#define HTTP_DISCARD_MAX (64 * 1024)             /* bytes read and ignored */
#define HTTP_ACCEPT_BUDGET 64                    /* accepts per wake-up */
#define HTTP_ACCEPT_PAUSE_NS (250ULL * 1000000ULL) /* see pause_accepting */

enum { TAG_LISTEN = HTTP_TAG_BASE, TAG_TIMER, TAG_CONN0 };

enum http_state {
	HC_READING,   /* waiting for the request */
	HC_WAITING,   /* handed to the endpoints, not answered yet */
	HC_WRITING,   /* answered; sending */
	HC_LINGERING, /* sent; reading until the client closes (see begin_linger) */
};

struct http_conn {
	int fd;
	unsigned slot;
	enum http_state state;
	bool head;            /* HEAD: headers only */
	uint64_t opened_ns;   /* CLOCK_MONOTONIC, for choosing whom to replace */
	uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */
	size_t discarded;
	char *out;
	size_t out_len, out_off;
	size_t req_len;
	char peer[INET6_ADDRSTRLEN]; /* the client's address, without the port */
	char req[HTTP_MAX_REQUEST + 1];
};

static int epfd = -1, listen_fd = -1, timer_fd = -1;
static const struct http_handler *handler; /* http_start's */
static struct http_conn *slots[HTTP_MAX_CONNS];
static uint64_t accept_paused_until; /* CLOCK_MONOTONIC; 0: accepting */

/* ---- addresses -------------------------------------------------------------- */

struct http_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

static int parse_addr(const char *spec, struct http_addr *a, const char **why)
{
	char host[128];
	const char *colon = strrchr(spec, ':');
	const char *port_s = colon ? colon + 1 : spec;
	size_t hlen = colon ? (size_t)(colon - spec) : 0;
	if (hlen >= sizeof(host)) {
		*why = "the address is too long";
		return -1;
	}
	memcpy(host, spec, hlen);
	host[hlen] = '\0';

	uint64_t port;
	if (parse_u64(port_s, 0, 65535, &port) != 0) {
		*why = "the port must be a number from 0 to 65535";
		return -1;
	}
	memset(a, 0, sizeof(*a));
	if (host[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
		if (hlen < 3 || host[hlen - 1] != ']') {
			*why = "an IPv6 address goes in brackets, as [::1]:6060";
			return -1;
		}
		host[hlen - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &s6->sin6_addr) != 1) {
			*why = "not an IPv6 address";
			return -1;
		}
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		a->len = sizeof(*s6);
		return 0;
	}
	struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)port);
	a->len = sizeof(*s4);
	/* No name lookups: they block. "localhost" is the one name known. */
	if (!host[0] || strcmp(host, "localhost") == 0)
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &s4->sin_addr) != 1) {
		*why = "the address must be an IP address or localhost";
		return -1;
	}
	return 0;
}

int http_check_addr(const char *spec, const char **why)
{
	struct http_addr a;
	return parse_addr(spec, &a, why);
}

static unsigned port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void format_addr(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
		snprintf(out, size, "[%s]:%u", ip, port_of(ss));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
		snprintf(out, size, "%s:%u", ip, port_of(ss));
	}
}

/* The address alone: per-client limits count a client's connections from
 * any port as one. */
static void format_ip(const struct sockaddr_storage *ss, char *out, size_t size)
{
	snprintf(out, size, "?");
	if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, (socklen_t)size);
	else if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)size);
}

/* ---- epoll and timer ---------------------------------------------------------- */

static void set_events(struct http_conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = TAG_CONN0 + c->slot };
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

void http_rearm(void)
{
	if (timer_fd < 0)
		return;
	uint64_t next = handler->next_deadline();
	if (accept_paused_until && (!next || accept_paused_until < next))
		next = accept_paused_until;
	for (unsigned i = 0; i < HTTP_MAX_CONNS; i++)
		if (slots[i] && slots[i]->deadline_ns &&
		    (!next || slots[i]->deadline_ns < next))
			next = slots[i]->deadline_ns;
	struct itimerspec its = { 0 };
	if (next) {
		its.it_value.tv_sec = (time_t)(next / 1000000000ULL);
		its.it_value.tv_nsec = (long)(next % 1000000000ULL);
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1; /* all zero would disarm it */
	}
	timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

int http_start(const char *spec, int efd, const struct http_handler *h, bool verbose)
{
	handler = h;
	struct http_addr a;
	const char *why;
	if (parse_addr(spec, &a, &why) != 0) {
		log_msg("--http %s: %s", spec, why);
		return -1;
	}
	epfd = efd;
	int fd = socket(a.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_msg("--http %s: socket: %s", spec, strerror(errno));
		return -1;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a.ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a.ss, a.len) != 0 || listen(fd, 128) != 0) {
		log_msg("--http %s: cannot listen: %s", spec, strerror(errno));
		close(fd);
		return -1;
	}
	timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (timer_fd < 0) {
		log_msg("--http: timerfd: %s", strerror(errno));
		close(fd);
		return -1;
	}
	listen_fd = fd;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_LISTEN };
	epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev);
	ev.data.u64 = TAG_TIMER;
	epoll_ctl(epfd, EPOLL_CTL_ADD, timer_fd, &ev);

	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	getsockname(fd, (struct sockaddr *)&bound, &blen);
	char where[INET6_ADDRSTRLEN + 16];
	format_addr(&bound, where, sizeof(where));
	/* With port 0, nobody else can know the port. */
	if (verbose || port_of(&a.ss) == 0)
		log_msg("http: listening on %s (go tool pprof http://%s/debug/pprof/heap)", where,
			where);
	return 0;
}

int http_local_addr(char *buf, size_t size)
{
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	if (listen_fd < 0 || getsockname(listen_fd, (struct sockaddr *)&bound, &blen) != 0)
		return -1;
	format_addr(&bound, buf, size);
	return 0;
}

bool http_owns_tag(uint64_t tag)
{
	return tag >= HTTP_TAG_BASE && tag < TAG_CONN0 + HTTP_MAX_CONNS;
}

/* ---- connections ------------------------------------------------------------- */

static void close_http(struct http_conn *c)
{
	if (c->state == HC_WAITING)
		handler->cancel(c);
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	slots[c->slot] = NULL;
	free(c->out);
	free(c);
}

/* For a connection we will not serve: one try at a short answer (the
 * socket buffer of a new or idle connection has room for it). */
static void send_short(int fd, const char *status, const char *text)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf),
			 "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
			 status, strlen(text), text);
	if (n > 0 && (size_t)n < sizeof(buf) &&
	    send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("http: %s", strerror(errno));
}

/* The connection a newcomer may replace: the oldest that has been answered,
 * else the oldest that has not sent a whole request; NULL if all are busy. */
static struct http_conn *victim(void)
{
	struct http_conn *best = NULL;
	for (unsigned i = 0; i < HTTP_MAX_CONNS; i++) {
		struct http_conn *c = slots[i];
		if (!c || (c->state != HC_READING && c->state != HC_LINGERING))
			continue;
		if (!best || (c->state == HC_LINGERING && best->state == HC_READING) ||
		    (c->state == best->state && c->opened_ns < best->opened_ns))
			best = c;
	}
	return best;
}

/*
 * Out of descriptors, accept fails and leaves the connection queued, and
 * the level-triggered listening socket would wake the loop again at once,
 * for ever: stop watching it for a moment instead.
 */
static void pause_accepting(void)
{
	static bool said_once;
	if (!said_once)
		log_msg("http: out of file descriptors (%s); new connections wait",
			strerror(errno));
	said_once = true;
	struct epoll_event ev = { .events = 0, .data.u64 = TAG_LISTEN };
	epoll_ctl(epfd, EPOLL_CTL_MOD, listen_fd, &ev);
	accept_paused_until = now_monotonic_ns() + HTTP_ACCEPT_PAUSE_NS;
}

static void resume_accepting(void)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_LISTEN };
	epoll_ctl(epfd, EPOLL_CTL_MOD, listen_fd, &ev);
	accept_paused_until = 0;
}

/* Returns true when it closed a connection to make room. */
static bool accept_http(void)
{
	bool replaced = false;
	for (int budget = HTTP_ACCEPT_BUDGET; budget > 0; budget--) {
		struct sockaddr_storage from;
		socklen_t from_len = sizeof(from);
		int fd = accept4(listen_fd, (struct sockaddr *)&from, &from_len,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				/* Make room as when all slots are taken. */
				struct http_conn *v = victim();
				if (v) {
					close_http(v);
					replaced = true;
					continue;
				}
			}
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				pause_accepting();
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_msg("http: accept: %s", strerror(errno));
			break;
		}
		unsigned slot = HTTP_MAX_CONNS;
		for (unsigned i = 0; i < HTTP_MAX_CONNS && slot == HTTP_MAX_CONNS; i++)
			if (!slots[i])
				slot = i;
		if (slot == HTTP_MAX_CONNS) {
			struct http_conn *v = victim();
			if (!v) {
				send_short(fd, "503 Service Unavailable",
					   "too many connections; try again later\n");
				close(fd);
				continue;
			}
			slot = v->slot;
			close_http(v);
			replaced = true;
		}
		struct http_conn *c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->slot = slot;
		c->state = HC_READING;
		c->opened_ns = now_monotonic_ns();
		format_ip(&from, c->peer, sizeof(c->peer));
		c->deadline_ns = c->opened_ns + HTTP_REQUEST_NS;
		slots[slot] = c;
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_CONN0 + slot };
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
	}
	return replaced;
}

/*
 * After the response: half-close, then read until the client closes before
 * closing ourselves. Closing a socket that still has unread input makes
 * the kernel send a reset, which can destroy the response before the client
 * has read it (RFC 9112 section 9.6, "lingering close").
 */
static void begin_linger(struct http_conn *c)
{
	shutdown(c->fd, SHUT_WR);
	c->state = HC_LINGERING;
	c->deadline_ns = now_monotonic_ns() + HTTP_LINGER_NS;
	set_events(c, EPOLLIN);
}

/* Writes what the socket takes; -1 if the connection is broken. */
static int flush_out(struct http_conn *c)
{
	int sent = send_pending(c->fd, c->out, c->out_len, &c->out_off);
	if (sent <= 0)
		return sent;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_off = 0;
	begin_linger(c);
	return 0;
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 301: return "Moved Permanently";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 413: return "Content Too Large";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}

void http_respond(struct http_conn *c, int status, const char *content_type,
		  const char *headers, char *body, size_t len)
{
	if (c->state != HC_READING && c->state != HC_WAITING) {
		free(body);
		return;
	}
	char date[64];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	struct strbuf b = { 0 };
	sb_printf(&b,
		  "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nX-Content-Type-Options: nosniff\r\n"
		  "%sDate: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
		  status, reason(status), content_type, headers ? headers : "", date, len);
	if (!c->head && len)
		sb_add(&b, body, len);
	free(body);
	c->out = sb_take(&b, &c->out_len);
	c->out_off = 0;
	c->state = HC_WRITING;
	c->deadline_ns = now_monotonic_ns() + HTTP_WRITE_NS;
	set_events(c, EPOLLOUT);
	/* Most answers fit in the socket buffer at once. A broken socket is
	 * left for the event loop, which gets EPOLLERR for it. */
	flush_out(c);
}

void http_error(struct http_conn *c, int status, const char *fmt, ...)
{
	struct strbuf b = { 0 };
	va_list ap;
	va_start(ap, fmt);
	char msg[1024];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sb_printf(&b, "%s\n", msg);
	size_t len;
	char *body = sb_take(&b, &len);
	http_respond(c, status, "text/plain; charset=utf-8",
		     status == 405 ? "X-Go-Pprof: 1\r\nAllow: GET, HEAD\r\n" : "X-Go-Pprof: 1\r\n",
		     body, len);
}

/* ---- requests ---------------------------------------------------------------- */

/* End of the header block (just past the blank line), or NULL. Lines may
 * end in CRLF or, leniently, in LF alone. */
static char *header_end(char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\n')
			continue;
		if (s[i + 1] == '\n')
			return s + i + 2;
		if (s[i + 1] == '\r' && i + 2 < len && s[i + 2] == '\n')
			return s + i + 3;
	}
	return NULL;
}

static bool is_token_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* The Content-Length of the request whose headers are s[0, end): 0 if
 * none, -1 if malformed. */
static long body_length(const char *s, size_t end)
{
	static const char name[] = "\ncontent-length:";
	for (size_t i = 0; i + sizeof(name) - 1 < end; i++) {
		if (strncasecmp(s + i, name, sizeof(name) - 1) != 0)
			continue;
		const char *v = s + i + sizeof(name) - 1;
		while (*v == ' ' || *v == '\t')
			v++;
		long n = 0;
		if (*v < '0' || *v > '9')
			return -1;
		for (; *v >= '0' && *v <= '9'; v++) {
			n = n * 10 + (*v - '0');
			if (n > HTTP_MAX_REQUEST)
				return HTTP_MAX_REQUEST + 1;
		}
		return n;
	}
	return 0;
}

/* Checks the request in c->req[0, end) (and its body, body_len bytes
 * after end) and hands it over, or answers the error. Splits the buffer
 * in place. */
static void handle_request(struct http_conn *c, size_t end, size_t body_len)
{
	char body[HTTP_MAX_REQUEST + 1];
	memcpy(body, c->req + end, body_len);
	body[body_len] = '\0';
	char *s = c->req;
	s[end] = '\0';
	if (memchr(s, '\0', end)) {
		http_error(c, 400, "malformed request");
		return;
	}
	char *eol = strchr(s, '\n');
	*eol = '\0';
	if (eol > s && eol[-1] == '\r')
		eol[-1] = '\0';
	/* METHOD SP TARGET SP HTTP-VERSION, single spaces. */
	char *sp1 = strchr(s, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || sp1 == s || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ')) {
		http_error(c, 400, "malformed request line");
		return;
	}
	*sp1 = *sp2 = '\0';
	const char *method = s, *target = sp1 + 1, *version = sp2 + 1;
	for (const char *m = method; *m; m++) {
		if (!is_token_char(*m)) {
			http_error(c, 400, "malformed request line");
			return;
		}
	}
	if (strncmp(version, "HTTP/", 5) != 0) {
		http_error(c, 400, "malformed request line");
		return;
	}
	if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0) {
		http_error(c, 505, "only HTTP/1.0 and HTTP/1.1 are served");
		return;
	}
	/* Header fields: NAME ":" VALUE; their values do not matter here. */
	for (char *line = eol + 1; *line;) {
		char *next = strchr(line, '\n');
		*next = '\0';
		if (next > line && next[-1] == '\r')
			next[-1] = '\0';
		if (*line) {
			char *colon = strchr(line, ':');
			bool ok = colon && colon > line;
			for (char *q = line; ok && q < colon; q++)
				ok = is_token_char(*q);
			if (!ok) {
				http_error(c, 400, "malformed header field");
				return;
			}
		}
		line = next + 1;
	}
	bool get = strcmp(method, "GET") == 0;
	bool post = strcmp(method, "POST") == 0;
	c->head = strcmp(method, "HEAD") == 0;
	if (!get && !c->head && !post) {
		http_error(c, 405, "method %s not allowed: only GET, HEAD and POST", method);
		return;
	}
	if (target[0] != '/') {
		http_error(c, 400, "the request target must be a path, such as /debug/pprof/");
		return;
	}
	char *q = strchr(target, '?');
	if (q)
		*q++ = '\0';
	if (memchr(body, '\0', body_len)) {
		http_error(c, 400, "malformed request body");
		return;
	}
	struct http_request rq = { .path = target, .query = q ? q : "", .peer = c->peer,
				   .post = post, .body = body, .body_len = body_len };
	c->state = HC_WAITING;
	c->deadline_ns = 0; /* the endpoint answers in its own time */
	set_events(c, EPOLLIN);
	handler->serve(c, &rq);
}

/* Reads and ignores input; -1 at its end or when there is too much. */
static int discard_input(struct http_conn *c)
{
	char buf[4096];
	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n <= 0)
			return -1;
		c->discarded += (size_t)n;
		if (c->discarded > HTTP_DISCARD_MAX)
			return -1;
	}
}

static void on_readable(struct http_conn *c)
{
	if (c->state != HC_READING) {
		/* Waiting: the end of input means the client has gone (as Go's
		 * server cancels a request whose client closed). */
		if (discard_input(c) != 0)
			close_http(c);
		return;
	}
	for (;;) {
		size_t room = HTTP_MAX_REQUEST - c->req_len;
		if (room == 0) {
			http_error(c, 431, "request line and headers exceed %d bytes",
				   HTTP_MAX_REQUEST);
			return;
		}
		ssize_t n = recv(c->fd, c->req + c->req_len, room, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			close_http(c);
			return;
		}
		c->req_len += (size_t)n;
		/* From the start: a POST's body may come after its headers. */
		char *end = header_end(c->req, c->req_len);
		if (end) {
			size_t hlen = (size_t)(end - c->req);
			long blen = body_length(c->req, hlen);
			if (blen < 0) {
				http_error(c, 400, "malformed Content-Length");
				return;
			}
			if (hlen + (size_t)blen > HTTP_MAX_REQUEST) {
				http_error(c, 413, "request headers and body exceed %d bytes",
					   HTTP_MAX_REQUEST);
				return;
			}
			if (c->req_len < hlen + (size_t)blen)
				continue; /* the rest of the body is still to come */
			handle_request(c, hlen, (size_t)blen);
			return;
		}
	}
}

static void on_timer(void)
{
	uint64_t ticks;
	if (read(timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
		log_debug("http: timer: %s", strerror(errno));
	uint64_t now = now_monotonic_ns();
	if (accept_paused_until && accept_paused_until <= now)
		resume_accepting();
	handler->tick(now);
	for (unsigned i = 0; i < HTTP_MAX_CONNS; i++) {
		struct http_conn *c = slots[i];
		if (!c || !c->deadline_ns || c->deadline_ns > now)
			continue;
		if (c->state == HC_READING)
			send_short(c->fd, "408 Request Timeout",
				   "no complete request within 10 seconds\n");
		close_http(c);
	}
}

bool http_event(uint64_t tag, uint32_t events)
{
	bool restart = false;
	if (tag == TAG_LISTEN) {
		restart = accept_http();
	} else if (tag == TAG_TIMER) {
		on_timer();
		restart = true;
	} else {
		struct http_conn *c = slots[tag - TAG_CONN0];
		if (!c) {
			/* closed earlier in this batch */
		} else if (events & EPOLLERR) {
			close_http(c);
		} else if (c->state == HC_WRITING) {
			if (flush_out(c) != 0)
				close_http(c);
		} else if (events & (EPOLLIN | EPOLLHUP)) {
			on_readable(c);
		}
	}
	http_rearm();
	return restart;
}

void http_stop(void)
{
	for (unsigned i = 0; i < HTTP_MAX_CONNS; i++) {
		struct http_conn *c = slots[i];
		if (!c)
			continue;
		if (c->state == HC_WRITING)
			flush_out(c);
		close_http(c);
	}
	if (listen_fd >= 0)
		close(listen_fd);
	if (timer_fd >= 0)
		close(timer_fd);
	listen_fd = timer_fd = -1;
}

/* ---- queries -------------------------------------------------------------------- */

static int hex_digit(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int http_query_decode(const char *s, size_t n, char *out, size_t size)
{
	size_t o = 0;
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '%') {
			if (i + 2 >= n || hex_digit(s[i + 1]) < 0 || hex_digit(s[i + 2]) < 0)
				return -1;
			ch = (char)(hex_digit(s[i + 1]) * 16 + hex_digit(s[i + 2]));
			if (ch == '\0')
				return -1;
			i += 2;
		} else if (ch == '+') {
			ch = ' ';
		}
		if (o + 1 < size)
			out[o++] = ch;
		else
			rc = 1;
	}
	out[o] = '\0';
	return rc;
}
