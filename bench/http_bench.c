/*
 * http_bench: an HTTP/1.1 load generator that measures time to first byte.
 *
 * It opens C keep-alive connections and keeps one request in flight on each:
 * the same request every time (method, path, headers, and the body of a
 * file); with --rate, requests start at most R per second in all. Each response is read to its end, whatever its framing
 * (Content-Length, chunked, as server-sent events, or until the server
 * closes), and timed twice from the moment the request's first byte is
 * handed to the kernel: to the first response byte (TTFB) and to the last.
 * Any answer outside 2xx, any connection error, malformed response or
 * stalled request counts as an error and makes the exit status 1.
 *
 * One thread, one epoll loop, like spop_bench: the client copies the request
 * and parses framing, nothing more; its own CPU use is reported so that can
 * be checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <realms/netaddr.h>

#include "bench.h"

#define BENCH_DEF_CONNS       8
#define BENCH_DEF_SECONDS     10.0
#define BENCH_DEF_TIMEOUT     10.0
#define BENCH_MAX_CONNS       65536
/* Descriptors kept beside the connections (stdio, epoll, the body file). */
#define BENCH_FD_SPARE        16
#define BENCH_MAX_HEADERS     64
/* Input buffer per connection; a response head must fit in it. */
#define BENCH_RBUF            (256u * 1024u)
#define BENCH_HEAD_MAX        (64u * 1024u)
/* Body bytes kept for --expect (the end) and for error reports (the start). */
#define BENCH_TAIL            256u
#define BENCH_SNIP            200u
/* Connection-level errors before the run is abandoned (each one reconnects). */
#define BENCH_MAX_ERRORS      100
/* epoll_wait timeout: deadlines are checked at least this often. */
#define BENCH_TICK_MS         50

/* Exit statuses. */
#define BENCH_EXIT_OK     0
#define BENCH_EXIT_FAIL   1   /* a non-2xx answer, an error or a stall */
#define BENCH_EXIT_USAGE  2   /* bad arguments or setup failure */

enum cstate {
	C_IDLE,        /* no request: the run is over for this connection */
	C_WAIT,        /* open, waiting for its turn (--rate) */
	C_CONNECTING,
	C_SENDING,     /* request bytes left to send (the answer may start) */
	C_READING,     /* request sent, answer not complete */
};

enum pstate {
	P_HEAD,        /* status line and headers */
	P_BODY,        /* Content-Length bytes */
	P_CHUNK_SIZE,
	P_CHUNK_DATA,
	P_CHUNK_CRLF,
	P_TRAILER,
	P_EOF,         /* no framing: the body ends when the server closes */
	P_DONE,
};

struct conn {
	int fd;
	int id;
	enum cstate state;
	int want_out;                /* EPOLLOUT registered */
	size_t woff;                 /* request bytes sent */
	char *rbuf;
	size_t rlen;
	/* the answer being read */
	enum pstate ps;
	int status;
	int close_after;             /* the server will close after this answer */
	uint64_t left;               /* body or chunk bytes still to come */
	uint64_t body_bytes, wire_bytes;
	char tail[BENCH_TAIL];       /* last body bytes (for --expect) */
	size_t tail_len;
	char snip[BENCH_SNIP];       /* first body bytes (for error reports) */
	size_t snip_len;
	int got_first;
	uint64_t t_start, t_first, t_progress;
};

static struct {
	struct netaddr addr;
	const char *method;
	const char *path;
	const char *headers[BENCH_MAX_HEADERS];
	int nb_headers;
	const char *body_file;
	int nb_conns;
	double seconds;              /* 0: no time limit */
	uint64_t requests;           /* 0: no count limit */
	double timeout;
	double rate;                 /* requests started per second; 0: no limit */
	const char *expect;
	int json;

	char *req;                   /* the whole request, built once */
	size_t req_len, body_len;
} cfg = {
	.nb_conns = BENCH_DEF_CONNS,
	.timeout = BENCH_DEF_TIMEOUT,
};

static struct {
	uint64_t started;            /* requests whose first byte was sent */
	uint64_t done;               /* answers read to the end, any status */
	uint64_t done_window;        /* ... inside the measurement window */
	uint64_t ok;                 /* 2xx answers */
	uint64_t non2xx;
	uint64_t errors;             /* connection, framing, stall, --expect */
	uint64_t reconnects;
	uint64_t body_bytes, wire_bytes;   /* sums over 2xx answers */
	struct bench_series ttfb, total;   /* ns */
	uint64_t t_start, t_end;     /* measurement window */
} st;

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

/* One line per error; the count decides the exit status. Only the first
 * ones are printed: a broken server could produce millions. */
static void bench_err(const struct conn *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void bench_err(const struct conn *c, const char *fmt, ...)
{
	va_list ap;

	if (st.errors + st.non2xx > 20)
		return;
	fprintf(stderr, "http_bench: conn %d: ", c ? c->id : -1);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void usage(FILE *f)
{
	fprintf(f,
"NAME\n"
"    http_bench - HTTP/1.1 keep-alive load generator with time to first byte\n"
"\n"
"SYNOPSIS\n"
"    http_bench -a ADDR [-P PATH] [-m METHOD] [-H 'Name: value']... [-b FILE]\n"
"               [OPTIONS]\n"
"    http_bench -h | --help\n"
"\n"
"DESCRIPTION\n"
"    Opens C keep-alive connections to ADDR and keeps one request in\n"
"    flight on each, the same request every time. Reads every response to\n"
"    its end (Content-Length, chunked or server-sent events, or until the\n"
"    server closes) and times it from the request's first byte sent: to\n"
"    the first response byte (TTFB) and to the last (total). A connection\n"
"    the server closes is opened again.\n"
"\n"
"OPTIONS\n"
"    -a, --addr ADDR      server: HOST:PORT, [V6]:PORT or unix:PATH\n"
"    -P, --path PATH      request target (default /)\n"
"    -m, --method M       request method (default POST with -b, else GET)\n"
"    -H, --header H       a request header, 'Name: value' (up to %d);\n"
"                         Host is added unless given, Content-Length is\n"
"                         always computed (do not pass it)\n"
"    -b, --body FILE      request body: the whole file\n"
"    -c, --conns C        connections (default %d, at most %d); the soft\n"
"                         limit on open files is raised to fit them, up\n"
"                         to the hard limit\n"
"    -s, --seconds S      run for S seconds (default %.0f unless -n given)\n"
"    -n, --requests N     send N requests (with -s: whichever ends first)\n"
"    -t, --timeout S      a request without progress for S seconds is an\n"
"                         error (default %.0f)\n"
"    -r, --rate R         start at most R requests per second in all (one\n"
"                         every 1/R s); without it each connection sends\n"
"                         its next request as soon as the answer is in\n"
"    -e, --expect STR     every 2xx body must contain STR in its last %u\n"
"                         bytes (e.g. message_stop: the stream was whole)\n"
"    -j, --json           print the result as one JSON object\n"
"    -h, --help           this text\n"
"\n"
"OUTPUT\n"
"    One line (or JSON object) on stdout: requests completed inside the\n"
"    run and requests/s; TTFB and total time p50/p90/p99/max in\n"
"    microseconds; the mean body and wire size of the 2xx answers; non-2xx\n"
"    answers, errors, reconnections; the client's own CPU use (%% of one\n"
"    core). Requests in flight when the time is up are completed and\n"
"    timed, but not counted in the rate.\n"
"\n"
"EXIT STATUS\n"
"    0 when every answer was 2xx and whole, 1 on any non-2xx answer, error\n"
"    or stall, 2 on a usage or setup error.\n",
	BENCH_MAX_HEADERS, BENCH_DEF_CONNS, BENCH_MAX_CONNS, BENCH_DEF_SECONDS,
	BENCH_DEF_TIMEOUT, BENCH_TAIL);
}

/* ---------------------------------------------------------------------- */
/* The request                                                            */
/* ---------------------------------------------------------------------- */

static int header_is(const char *h, const char *name)
{
	size_t n = strlen(name);

	return !strncasecmp(h, name, n) && h[n] == ':';
}

/* Builds cfg.req: request line, headers, Content-Length, body. */
static int request_build(void)
{
	struct stat sb;
	char line[512], host[96];
	size_t size, len = 0;
	int have_host = 0, n;
	FILE *f = NULL;

	cfg.body_len = 0;
	if (cfg.body_file) {
		f = fopen(cfg.body_file, "rb");
		if (!f || fstat(fileno(f), &sb) < 0) {
			fprintf(stderr, "http_bench: %s: %s\n", cfg.body_file, strerror(errno));
			if (f)
				fclose(f);
			return -1;
		}
		cfg.body_len = (size_t)sb.st_size;
	}
	size = strlen(cfg.method) + strlen(cfg.path) + 256 + cfg.body_len;
	for (int i = 0; i < cfg.nb_headers; i++) {
		size += strlen(cfg.headers[i]) + 2;
		if (header_is(cfg.headers[i], "host"))
			have_host = 1;
	}
	cfg.req = malloc(size);
	if (!cfg.req) {
		if (f)
			fclose(f);
		return -1;
	}
	n = snprintf(line, sizeof(line), "%s %s HTTP/1.1\r\n", cfg.method, cfg.path);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		fprintf(stderr, "http_bench: request line too long\n");
		if (f)
			fclose(f);
		return -1;
	}
	memcpy(cfg.req, line, (size_t)n);
	len = (size_t)n;
	if (!have_host) {
		if (cfg.addr.family == AF_UNIX)
			snprintf(host, sizeof(host), "localhost");
		else if (cfg.addr.family == AF_INET6)
			snprintf(host, sizeof(host), "[%s]:%d", cfg.addr.host, cfg.addr.port);
		else
			snprintf(host, sizeof(host), "%s:%d", cfg.addr.host, cfg.addr.port);
		len += (size_t)sprintf(cfg.req + len, "Host: %s\r\n", host);
	}
	for (int i = 0; i < cfg.nb_headers; i++)
		len += (size_t)sprintf(cfg.req + len, "%s\r\n", cfg.headers[i]);
	if (cfg.body_file || !strcmp(cfg.method, "POST") || !strcmp(cfg.method, "PUT"))
		len += (size_t)sprintf(cfg.req + len, "Content-Length: %zu\r\n", cfg.body_len);
	len += (size_t)sprintf(cfg.req + len, "\r\n");
	if (f) {
		if (fread(cfg.req + len, 1, cfg.body_len, f) != cfg.body_len) {
			fprintf(stderr, "http_bench: %s: short read\n", cfg.body_file);
			fclose(f);
			return -1;
		}
		fclose(f);
		len += cfg.body_len;
	}
	cfg.req_len = len;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Response parsing: no I/O, works on c->rbuf                             */
/* ---------------------------------------------------------------------- */

static void body_take(struct conn *c, const char *p, size_t n)
{
	c->body_bytes += n;
	if (c->snip_len < BENCH_SNIP) {
		size_t k = BENCH_SNIP - c->snip_len < n ? BENCH_SNIP - c->snip_len : n;

		memcpy(c->snip + c->snip_len, p, k);
		c->snip_len += k;
	}
	if (n >= BENCH_TAIL) {
		memcpy(c->tail, p + n - BENCH_TAIL, BENCH_TAIL);
		c->tail_len = BENCH_TAIL;
	} else {
		size_t keep = c->tail_len + n > BENCH_TAIL ? BENCH_TAIL - n : c->tail_len;

		memmove(c->tail, c->tail + c->tail_len - keep, keep);
		memcpy(c->tail + keep, p, n);
		c->tail_len = keep + n;
	}
}

/* A token in a comma-separated header value, case-insensitive. */
static int has_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok), i = 0;

	while (i < n) {              /* every turn advances */
		size_t s, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && !strncasecmp(v + s, tok, tl))
			return 1;
	}
	return 0;
}

/* Parses the head in rbuf[0, hlen). Returns 0 or -1 with *why. */
static int head_parse(struct conn *c, size_t hlen, const char **why)
{
	const char *p = c->rbuf, *end = c->rbuf + hlen - 2, *eol;
	int http10, chunked = 0, ka = -1;
	int64_t clen = -1;

	*why = "malformed status line";
	eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
	if (eol - p < 12 || memcmp(p, "HTTP/1.", 7) || (p[7] != '0' && p[7] != '1') ||
	    p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
	    p[11] < '0' || p[11] > '9' || (eol - p > 12 && p[12] != ' '))
		return -1;
	http10 = p[7] == '0';
	c->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	*why = "malformed header";
	for (p = eol + 2; p < end; p = eol + 2) {     /* one header line per turn */
		const char *colon, *v, *ve;
		size_t nl;

		eol = memmem(p, (size_t)(end + 2 - p), "\r\n", 2);
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p)
			return -1;
		nl = (size_t)(colon - p);
		v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		ve = eol;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (nl == 14 && !strncasecmp(p, "content-length", nl)) {
			char num[24];
			char *e;

			if (ve - v < 1 || ve - v > 19)
				return -1;
			memcpy(num, v, (size_t)(ve - v));
			num[ve - v] = '\0';
			errno = 0;
			clen = strtoll(num, &e, 10);
			if (errno || *e || clen < 0)
				return -1;
		} else if (nl == 17 && !strncasecmp(p, "transfer-encoding", nl)) {
			chunked = has_token(v, (size_t)(ve - v), "chunked");
		} else if (nl == 10 && !strncasecmp(p, "connection", nl)) {
			if (has_token(v, (size_t)(ve - v), "close"))
				ka = 0;
			else if (has_token(v, (size_t)(ve - v), "keep-alive"))
				ka = 1;
		}
	}
	c->close_after = ka == 0 || (http10 && ka != 1);
	if (c->status == 204 || c->status == 304 || !strcmp(cfg.method, "HEAD")) {
		c->ps = P_DONE;
	} else if (chunked) {
		c->ps = P_CHUNK_SIZE;
	} else if (clen >= 0) {
		c->left = (uint64_t)clen;
		c->ps = clen ? P_BODY : P_DONE;
	} else {
		c->ps = P_EOF;
		c->close_after = 1;
	}
	return 0;
}

/* Consumes what it can of rbuf. Returns 1 when the answer is complete, 0 for
 * more bytes, -1 on a framing error (with a reason on stderr). */
static int resp_parse(struct conn *c)
{
	size_t off = 0;
	int r = 0;

	while (r == 0 && off < c->rlen) {   /* every turn consumes or leaves */
		char *p = c->rbuf + off, *nl;
		size_t avail = c->rlen - off, n;
		const char *why;

		switch (c->ps) {
		case P_HEAD:
			nl = memmem(p, avail, "\r\n\r\n", 4);
			if (!nl) {
				if (avail > BENCH_HEAD_MAX) {
					bench_err(c, "response head larger than %u bytes", BENCH_HEAD_MAX);
					r = -1;
				}
				goto out;
			}
			n = (size_t)(nl + 4 - p);
			if (off) {   /* head_parse wants the head at rbuf[0] */
				memmove(c->rbuf, p, avail);
				c->rlen = avail;
				off = 0;
				p = c->rbuf;
			}
			if (head_parse(c, n, &why) < 0) {
				bench_err(c, "%s: %.*s", why, (int)(n > 120 ? 120 : n), p);
				r = -1;
				goto out;
			}
			off += n;
			if (c->status >= 100 && c->status < 200) {
				c->ps = P_HEAD;   /* interim answer: the real one follows */
				break;
			}
			if (c->ps == P_DONE)
				r = 1;
			break;
		case P_BODY:
			n = avail < c->left ? avail : (size_t)c->left;
			body_take(c, p, n);
			off += n;
			c->left -= n;
			if (!c->left) {
				c->ps = P_DONE;
				r = 1;
			}
			break;
		case P_CHUNK_SIZE: {
			uint64_t sz = 0;
			const char *q;

			nl = memmem(p, avail, "\r\n", 2);
			if (!nl) {
				if (avail > 1024) {
					bench_err(c, "chunk size line too long");
					r = -1;
				}
				goto out;
			}
			for (q = p; q < nl; q++) {
				int d;

				if (*q >= '0' && *q <= '9')
					d = *q - '0';
				else if ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'f')
					d = (*q | 0x20) - 'a' + 10;
				else
					break;
				if (sz >> 56) {
					bench_err(c, "chunk size overflow");
					r = -1;
					goto out;
				}
				sz = sz * 16 + (uint64_t)d;
			}
			if (q == p || (q < nl && *q != ';' && *q != ' ' && *q != '\t')) {
				bench_err(c, "malformed chunk size");
				r = -1;
				goto out;
			}
			off += (size_t)(nl + 2 - p);
			c->left = sz;
			c->ps = sz ? P_CHUNK_DATA : P_TRAILER;
			break;
		}
		case P_CHUNK_DATA:
			n = avail < c->left ? avail : (size_t)c->left;
			body_take(c, p, n);
			off += n;
			c->left -= n;
			if (!c->left)
				c->ps = P_CHUNK_CRLF;
			break;
		case P_CHUNK_CRLF:
			if (avail < 2)
				goto out;
			if (p[0] != '\r' || p[1] != '\n') {
				bench_err(c, "chunk not followed by CRLF");
				r = -1;
				goto out;
			}
			off += 2;
			c->ps = P_CHUNK_SIZE;
			break;
		case P_TRAILER:
			nl = memmem(p, avail, "\r\n", 2);
			if (!nl)
				goto out;
			off += (size_t)(nl + 2 - p);
			if (nl == p) {
				c->ps = P_DONE;
				r = 1;
			}
			break;
		case P_EOF:
			body_take(c, p, avail);
			off += avail;
			break;
		case P_DONE:
			/* bytes after a complete answer we did not ask for */
			bench_err(c, "%zu unexpected bytes after the response", avail);
			r = -1;
			goto out;
		}
	}
out:
	if (off) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	return r;
}

/* ---------------------------------------------------------------------- */
/* Connections                                                            */
/* ---------------------------------------------------------------------- */

static int running(uint64_t now, uint64_t deadline)
{
	if (deadline && now >= deadline)
		return 0;
	if (cfg.requests && st.started >= cfg.requests)
		return 0;
	return st.errors < BENCH_MAX_ERRORS;
}

static void conn_set_out(int ep, struct conn *c, int want)
{
	struct epoll_event ev = { .events = EPOLLIN | (want ? EPOLLOUT : 0),
	                          .data.ptr = c };

	if (c->want_out == want)
		return;
	c->want_out = want;
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void conn_close(int ep, struct conn *c)
{
	if (c->fd >= 0) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
		close(c->fd);
	}
	c->fd = -1;
	c->state = C_IDLE;
	c->rlen = 0;
}

static void conn_open(int ep, struct conn *c, uint64_t now);

/* A connection-level error: counted, the socket closed, and (while the run
 * goes on) a new one opened in its place. */
static void conn_fail(int ep, struct conn *c, uint64_t now, uint64_t deadline)
{
	st.errors++;
	conn_close(ep, c);
	if (running(now, deadline)) {
		st.reconnects++;
		conn_open(ep, c, now);
	}
}

/* Sends what it can of the request. Returns 0, or -1 on error. */
static int conn_send(int ep, struct conn *c)
{
	while (c->woff < cfg.req_len) {
		ssize_t n = send(c->fd, cfg.req + c->woff, cfg.req_len - c->woff,
		                 MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			bench_err(c, "send: %s", strerror(errno));
			return -1;
		}
		c->woff += (size_t)n;
		c->t_progress = bench_now_ns();
	}
	if (c->woff == cfg.req_len && c->state == C_SENDING)
		c->state = C_READING;
	conn_set_out(ep, c, c->woff < cfg.req_len);
	return 0;
}

/* Starts the next request on an open connection, or leaves it idle. */
/* With --rate, when the next request may start. */
static uint64_t next_slot(void)
{
	return st.t_start + (uint64_t)((double)st.started * 1e9 / cfg.rate);
}

static int request_start(int ep, struct conn *c, uint64_t now, uint64_t deadline)
{
	if (!running(now, deadline)) {
		c->state = C_IDLE;
		conn_set_out(ep, c, 0);
		return 0;
	}
	if (cfg.rate > 0 && now < next_slot()) {
		c->state = C_WAIT;
		conn_set_out(ep, c, 0);
		return 0;
	}
	st.started++;
	c->woff = 0;
	c->ps = P_HEAD;
	c->status = 0;
	c->close_after = 0;
	c->left = 0;
	c->body_bytes = c->wire_bytes = 0;
	c->tail_len = c->snip_len = 0;
	c->got_first = 0;
	c->state = C_SENDING;
	c->t_start = c->t_progress = bench_now_ns();
	return conn_send(ep, c);
}

static void conn_open(int ep, struct conn *c, uint64_t now)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	int one = 1;

	c->fd = socket(cfg.addr.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		bench_err(c, "socket: %s", strerror(errno));
		st.errors++;
		c->state = C_IDLE;
		return;
	}
	if (cfg.addr.family != AF_UNIX)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->state = C_CONNECTING;
	c->t_progress = now;
	c->want_out = 1;
	c->rlen = 0;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		bench_err(c, "epoll_ctl: %s", strerror(errno));
		st.errors++;
		conn_close(ep, c);
		return;
	}
	if (connect(c->fd, (struct sockaddr *)&cfg.addr.ss, cfg.addr.len) < 0 &&
	    errno != EINPROGRESS) {
		bench_err(c, "connect: %s", strerror(errno));
		st.errors++;
		conn_close(ep, c);
	}
	/* completion (or failure) shows as EPOLLOUT */
}

/* The answer is complete: checks it, records it, and goes on. */
static void resp_done(int ep, struct conn *c, uint64_t now, uint64_t deadline)
{
	int in_window = !deadline || now <= deadline;

	st.done++;
	if (in_window)
		st.done_window++;
	bench_series_add(&st.ttfb, c->t_first - c->t_start);
	bench_series_add(&st.total, now - c->t_start);
	if (c->status < 200 || c->status > 299) {
		st.non2xx++;
		bench_err(c, "HTTP %d: %.*s", c->status, (int)c->snip_len, c->snip);
	} else if (cfg.expect && !memmem(c->tail, c->tail_len, cfg.expect,
	                                 strlen(cfg.expect))) {
		st.errors++;
		bench_err(c, "HTTP %d, %" PRIu64 " body bytes, without \"%s\" at the end",
		          c->status, c->body_bytes, cfg.expect);
	} else {
		st.ok++;
		st.body_bytes += c->body_bytes;
		st.wire_bytes += c->wire_bytes;
	}
	if (c->close_after || c->woff < cfg.req_len || c->rlen) {
		/* the server closes (or answered before reading all): reconnect */
		if (c->rlen) {
			st.errors++;
			bench_err(c, "%zu unexpected bytes after the response", c->rlen);
		}
		conn_close(ep, c);
		if (running(now, deadline)) {
			st.reconnects++;
			conn_open(ep, c, now);
		}
		return;
	}
	if (request_start(ep, c, now, deadline) < 0)
		conn_fail(ep, c, now, deadline);
}

/* Reads what is there. Bounded: a few reads per event, so one busy
 * connection cannot starve the others. */
static void conn_read(int ep, struct conn *c, uint64_t deadline)
{
	for (int round = 0; round < 16 && c->fd >= 0; round++) {
		ssize_t n = recv(c->fd, c->rbuf + c->rlen, BENCH_RBUF - c->rlen, 0);
		uint64_t now = bench_now_ns();
		int r;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			bench_err(c, "recv: %s", strerror(errno));
			conn_fail(ep, c, now, deadline);
			return;
		}
		if (n == 0) {
			if (c->state == C_WAIT) {
				/* the server closed an idle connection: open another */
				conn_close(ep, c);
				st.reconnects++;
				conn_open(ep, c, now);
			} else if (c->state != C_IDLE && c->ps == P_EOF) {
				c->ps = P_DONE;
				c->close_after = 1;
				resp_done(ep, c, now, deadline);
			} else if (c->state != C_IDLE) {
				bench_err(c, "the server closed the connection %s",
				          c->got_first ? "in the middle of the response"
				                       : "before answering");
				conn_fail(ep, c, now, deadline);
			} else {
				conn_close(ep, c);   /* idle after the run: fine */
			}
			return;
		}
		if (c->state != C_SENDING && c->state != C_READING) {
			bench_err(c, "%zd bytes nobody asked for", n);
			conn_fail(ep, c, now, deadline);
			return;
		}
		if (!c->got_first) {
			c->got_first = 1;
			c->t_first = now;
		}
		c->t_progress = now;
		c->wire_bytes += (uint64_t)n;
		c->rlen += (size_t)n;
		r = resp_parse(c);
		if (r < 0) {
			conn_fail(ep, c, now, deadline);
			return;
		}
		if (r > 0)
			resp_done(ep, c, now, deadline);
		else if (c->rlen == BENCH_RBUF) {
			bench_err(c, "input buffer full");
			conn_fail(ep, c, now, deadline);
			return;
		}
	}
}

static void conn_writable(int ep, struct conn *c, uint64_t now, uint64_t deadline)
{
	if (c->state == C_CONNECTING) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			bench_err(c, "connect: %s", strerror(err));
			conn_fail(ep, c, now, deadline);
			return;
		}
		if (request_start(ep, c, now, deadline) < 0)
			conn_fail(ep, c, now, deadline);
		return;
	}
	if (c->state == C_SENDING && conn_send(ep, c) < 0)
		conn_fail(ep, c, now, deadline);
	else if (c->state != C_SENDING)
		conn_set_out(ep, c, 0);
}

/* ---------------------------------------------------------------------- */
/* Report                                                                 */
/* ---------------------------------------------------------------------- */

static void report(double cpu)
{
	double secs = (st.t_end - st.t_start) / 1e9;
	double rate = secs > 0 ? st.done_window / secs : 0;
	double body = st.ok ? (double)st.body_bytes / st.ok : 0;
	double wire = st.ok ? (double)st.wire_bytes / st.ok : 0;
	double t[4], l[4];
	char addr[160];

	bench_series_sort(&st.ttfb);
	bench_series_sort(&st.total);
	t[0] = bench_pct_us(&st.ttfb, 0.50);
	t[1] = bench_pct_us(&st.ttfb, 0.90);
	t[2] = bench_pct_us(&st.ttfb, 0.99);
	t[3] = st.ttfb.max / 1000.0;
	l[0] = bench_pct_us(&st.total, 0.50);
	l[1] = bench_pct_us(&st.total, 0.90);
	l[2] = bench_pct_us(&st.total, 0.99);
	l[3] = st.total.max / 1000.0;
	netaddr_str(&cfg.addr, addr, sizeof(addr));

	if (cfg.json) {
		printf("{\"addr\":\"%s\",\"conns\":%d,\"request_bytes\":%zu,"
		       "\"seconds\":%.3f,\"requests\":%" PRIu64 ",\"requests_total\":%" PRIu64 ","
		       "\"req_per_s\":%.1f,"
		       "\"ttfb_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
		       "\"total_us\":{\"p50\":%.1f,\"p90\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
		       "\"body_bytes\":%.0f,\"wire_bytes\":%.0f,\"ok\":%" PRIu64 ","
		       "\"non2xx\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"reconnects\":%" PRIu64 ","
		       "\"client_cpu_pct\":%.1f}\n",
		       addr, cfg.nb_conns, cfg.req_len, secs, st.done_window, st.done, rate,
		       t[0], t[1], t[2], t[3], l[0], l[1], l[2], l[3], body, wire, st.ok,
		       st.non2xx, st.errors, st.reconnects, secs > 0 ? 100.0 * cpu / secs : 0);
	} else {
		printf("http_bench: %s conns=%d request=%zuB requests=%" PRIu64 " in %.2fs "
		       "rate=%.0f/s ttfb_us p50=%.0f p90=%.0f p99=%.0f max=%.0f "
		       "total_us p50=%.0f p90=%.0f p99=%.0f max=%.0f body=%.0fB wire=%.0fB "
		       "ok=%" PRIu64 " non2xx=%" PRIu64 " errors=%" PRIu64
		       " reconnects=%" PRIu64 " client_cpu=%.0f%%\n",
		       addr, cfg.nb_conns, cfg.req_len, st.done_window, secs, rate,
		       t[0], t[1], t[2], t[3], l[0], l[1], l[2], l[3], body, wire, st.ok,
		       st.non2xx, st.errors, st.reconnects, secs > 0 ? 100.0 * cpu / secs : 0);
	}
}

/* ---------------------------------------------------------------------- */
/* Main                                                                   */
/* ---------------------------------------------------------------------- */

static int parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "addr",     required_argument, NULL, 'a' },
		{ "path",     required_argument, NULL, 'P' },
		{ "method",   required_argument, NULL, 'm' },
		{ "header",   required_argument, NULL, 'H' },
		{ "body",     required_argument, NULL, 'b' },
		{ "conns",    required_argument, NULL, 'c' },
		{ "seconds",  required_argument, NULL, 's' },
		{ "requests", required_argument, NULL, 'n' },
		{ "timeout",  required_argument, NULL, 't' },
		{ "rate",     required_argument, NULL, 'r' },
		{ "expect",   required_argument, NULL, 'e' },
		{ "json",     no_argument,       NULL, 'j' },
		{ "help",     no_argument,       NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long long v;
	char err[128];
	int have_addr = 0, o;

	cfg.path = "/";
	while ((o = getopt_long(argc, argv, "a:P:m:H:b:c:s:n:t:r:e:jh", opts, NULL)) != -1) {
		switch (o) {
		case 'a':
			if (netaddr_parse(optarg, &cfg.addr, err, sizeof(err)) < 0) {
				fprintf(stderr, "http_bench: --addr %s: %s\n", optarg, err);
				return -1;
			}
			have_addr = 1;
			break;
		case 'P':
			if (optarg[0] != '/' || strpbrk(optarg, " \r\n"))
				goto bad;
			cfg.path = optarg;
			break;
		case 'm':
			if (!optarg[0] || strpbrk(optarg, " \r\n"))
				goto bad;
			cfg.method = optarg;
			break;
		case 'H':
			if (cfg.nb_headers == BENCH_MAX_HEADERS || !strchr(optarg, ':') ||
			    optarg[0] == ':' || strpbrk(optarg, "\r\n") ||
			    header_is(optarg, "content-length") ||
			    header_is(optarg, "transfer-encoding"))
				goto bad;
			cfg.headers[cfg.nb_headers++] = optarg;
			break;
		case 'b':
			cfg.body_file = optarg;
			break;
		case 'c':
			if (bench_parse_ulong(optarg, 1, BENCH_MAX_CONNS, &v) < 0)
				goto bad;
			cfg.nb_conns = (int)v;
			break;
		case 's':
			if (bench_parse_pos(optarg, 86400, &cfg.seconds) < 0)
				goto bad;
			break;
		case 'n':
			if (bench_parse_ulong(optarg, 1, UINT64_MAX, &v) < 0)
				goto bad;
			cfg.requests = v;
			break;
		case 't':
			if (bench_parse_pos(optarg, 86400, &cfg.timeout) < 0)
				goto bad;
			break;
		case 'r':
			if (bench_parse_pos(optarg, 1e6, &cfg.rate) < 0)
				goto bad;
			break;
		case 'e':
			if (!optarg[0] || strlen(optarg) > BENCH_TAIL)
				goto bad;
			cfg.expect = optarg;
			break;
		case 'j':
			cfg.json = 1;
			break;
		case 'h':
			usage(stdout);
			exit(BENCH_EXIT_OK);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc || !have_addr) {
		fprintf(stderr, "http_bench: need -a ADDR (see -h)\n");
		return -1;
	}
	if (!cfg.method)
		cfg.method = cfg.body_file ? "POST" : "GET";
	if (!cfg.seconds && !cfg.requests)
		cfg.seconds = BENCH_DEF_SECONDS;
	return 0;
bad:
	fprintf(stderr, "http_bench: bad value for -%c: %s\n", o, optarg);
	return -1;
}

/* Raises the soft limit on open files to fit the connections (many
 * thousands held at once), within the hard limit. */
static int fd_limit_fit(void)
{
	rlim_t need = (rlim_t)cfg.nb_conns + BENCH_FD_SPARE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
		return 0;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
		fprintf(stderr, "http_bench: %d connections need %llu open files, the hard limit "
		        "is %llu (ulimit -Hn)\n", cfg.nb_conns, (unsigned long long)need,
		        (unsigned long long)rl.rlim_max);
		return -1;
	}
	rl.rlim_cur = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		perror("http_bench: setrlimit");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct epoll_event evs[64];
	struct conn *conns;
	uint64_t deadline = 0, timeout_ns;
	double cpu0;
	int ep, rc = BENCH_EXIT_OK, window_closed = 0;

	signal(SIGPIPE, SIG_IGN);
	if (parse_args(argc, argv) < 0 || request_build() < 0)
		return BENCH_EXIT_USAGE;
	timeout_ns = (uint64_t)(cfg.timeout * 1e9);
	if (fd_limit_fit() < 0)
		return BENCH_EXIT_USAGE;

	conns = calloc(cfg.nb_conns, sizeof(*conns));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (!conns || ep < 0) {
		perror("http_bench");
		return BENCH_EXIT_USAGE;
	}
	for (int i = 0; i < cfg.nb_conns; i++) {
		conns[i].id = i;
		conns[i].fd = -1;
		conns[i].rbuf = malloc(BENCH_RBUF);
		if (!conns[i].rbuf) {
			perror("http_bench");
			return BENCH_EXIT_USAGE;
		}
	}

	cpu0 = bench_cpu_seconds();
	st.t_start = bench_now_ns();
	if (cfg.seconds)
		deadline = st.t_start + (uint64_t)(cfg.seconds * 1e9);
	for (int i = 0; i < cfg.nb_conns; i++)
		conn_open(ep, &conns[i], st.t_start);

	/* Bounded: new requests stop at the deadline, the request count or
	 * BENCH_MAX_ERRORS; requests in flight then end, or fail after the
	 * timeout without progress. */
	for (;;) {
		uint64_t now = bench_now_ns();
		int n, busy = 0, waiting = 0, tick = BENCH_TICK_MS;

		/* At the deadline the window closes; with -n alone it closes
		 * when the last answer is in (below). */
		if (!window_closed && deadline && now >= deadline) {
			window_closed = 1;
			st.t_end = deadline;
		}
		for (int i = 0; i < cfg.nb_conns; i++) {
			struct conn *c = &conns[i];

			if (c->state == C_IDLE)
				continue;
			if (c->state == C_WAIT) {
				/* its turn may have come (--rate) */
				if (request_start(ep, c, now, deadline) < 0)
					conn_fail(ep, c, now, deadline);
				waiting |= c->state == C_WAIT;
			} else if (now - c->t_progress > timeout_ns) {
				bench_err(c, "no progress for %.1f s (%s, %" PRIu64
				          " response bytes)", cfg.timeout,
				          c->state == C_CONNECTING ? "connecting" :
				          c->state == C_SENDING ? "sending" : "reading",
				          c->wire_bytes);
				conn_fail(ep, c, now, deadline);
			}
			if (c->state != C_IDLE)
				busy++;
		}
		if (!busy)
			break;
		if (waiting) {
			uint64_t slot = next_slot();

			now = bench_now_ns();
			if (slot <= now)
				tick = 0;
			else if (slot - now < BENCH_TICK_MS * 1000000ull)
				tick = (int)((slot - now + 999999) / 1000000);
		}

		n = epoll_wait(ep, evs, 64, tick);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("http_bench: epoll_wait");
			rc = BENCH_EXIT_FAIL;
			break;
		}
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			int fd = c->fd;

			if (fd < 0)
				continue;
			now = bench_now_ns();
			if (c->state == C_CONNECTING) {
				if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
					conn_writable(ep, c, now, deadline);
				continue;
			}
			if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
				conn_read(ep, c, deadline);
			/* the event was for this socket, not one opened since */
			if (c->fd == fd && (evs[i].events & EPOLLOUT))
				conn_writable(ep, c, bench_now_ns(), deadline);
		}
	}
	if (!window_closed)
		st.t_end = bench_now_ns();

	for (int i = 0; i < cfg.nb_conns; i++) {
		conn_close(ep, &conns[i]);
		free(conns[i].rbuf);
	}
	close(ep);
	report(bench_cpu_seconds() - cpu0);
	free(st.ttfb.v);
	free(st.total.v);
	free(conns);
	free(cfg.req);
	if (st.errors || st.non2xx || !st.done)
		rc = BENCH_EXIT_FAIL;
	return rc;
}
