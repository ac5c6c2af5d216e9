/*
 * mock_upstream: a simulated Anthropic Messages API for tests and demos.
 *
 *   mock_upstream -l 127.0.0.1:PORT [-r RECORD_DIR] [-k EXPECTED_KEY] [-n NAME] [-v]
 *
 * One thread, one libev loop, HTTP/1.1 with keep-alive and pipelining,
 * request bodies framed by Content-Length or chunked. Answers
 * POST /v1/messages (JSON or SSE), POST /v1/messages/count_tokens and
 * GET /v1/models with deterministic usage; x-mock-* request headers inject
 * faults (status, early close, stall, mid-stream error, delays), the /mock/ control
 * endpoints inject failures and expose counters. See tests/tools/README.md.
 *
 * Layout: limits, buffers, the JSON root scanner, the HTTP request reader
 * (head + chunked decoder, pure functions over the connection's buffer),
 * response builders, the stream generator, then the libev shell.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

/* ------------------------------------------------------------------ */
/* Limits: each with what a peer gets when it crosses it.             */
/* ------------------------------------------------------------------ */

#define MU_HEAD_MAX        (64 * 1024)             /* request head: 431, close */
#define MU_BODY_MAX        (64ULL * 1024 * 1024)   /* request body: 413, close */
#define MU_CHUNK_LINE_MAX  1024                    /* chunk-size line: 400, close */
#define MU_IN_SLACK        (256 * 1024)            /* pipelined bytes kept beyond one request */
#define MU_IN_MAX          (MU_HEAD_MAX + MU_BODY_MAX + MU_IN_SLACK) /* reading pauses */
#define MU_OUT_HIGH        (256 * 1024)            /* unsent bytes before the stream waits */
#define MU_MODEL_MAX       256                     /* "model" string: 400 */
#define MU_DELTAS_MAX      1000000UL               /* x-mock-deltas: 400 */
#define MU_DELTA_BYTES_MAX (1024UL * 1024)         /* x-mock-delta-bytes: 400 */
#define MU_TEXT_MAX        (64ULL * 1024 * 1024)   /* non-streaming text: 400 */
#define MU_DELAY_MAX_MS    600000UL                /* x-mock-*-ms: 400 */
#define MU_IDLE_S          120.0  /* keep-alive idle, or a peer not reading: close */
#define MU_STALL_S         120.0  /* x-mock-stall-after hold time: close */
#define MU_LINGER_S        2.0    /* drain after our FIN before closing */
#define MU_ACCEPT_BURST    64     /* accepts per wakeup */
#define MU_READ_BURST      16     /* recv calls per wakeup */
#define MU_PIPELINE_BURST  64     /* requests served per wakeup, then yield */
#define MU_DEFAULT_DELTAS  3
#define MU_DEFAULT_DBYTES  16

/* ------------------------------------------------------------------ */
/* Types                                                              */
/* ------------------------------------------------------------------ */

struct buf {
	char *p;
	size_t len, cap;
};

struct mu_usage {
	unsigned long long in, out, cw5, cw1, cr, ws;
};

enum { M_OTHER, M_GET, M_POST };
enum { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER };
enum { LIM_NONE, LIM_CLOSE, LIM_STALL };

/* Connection states. */
enum {
	ST_READ,     /* reading a request (or idle between requests) */
	ST_FIRST,    /* response planned, waiting x-mock-first-byte-delay-ms */
	ST_SEND,     /* stream: generating events as the socket takes them */
	ST_GAP,      /* stream: waiting x-mock-delay-ms before the next event */
	ST_STALL,    /* x-mock-stall-after reached: silent until the peer leaves */
	ST_CLOSING,  /* flushing the last bytes, then close */
	ST_LINGER,   /* FIN sent, discarding input until the peer's FIN */
};

/* usage header keys, in x-mock-usage order */
#define U_IN  0x01
#define U_OUT 0x02
#define U_CW5 0x04
#define U_CW1 0x08
#define U_CR  0x10
#define U_WS  0x20

/* One request. Offsets point into conn.in, which may move while reading. */
struct mu_req {
	size_t head_len;          /* request line..blank line; 0 until complete */
	size_t scan_off;          /* where the blank-line search resumes */
	int method;
	size_t path_off, path_len; /* without the query string */
	int http10, keep_alive, chunked;
	long long clen;           /* -1: no Content-Length */
	int expect_continue, sent_continue;
	size_t key_off, key_len, auth_off, auth_len;
	int n_key, n_auth;
	int oauth_beta;           /* anthropic-beta holds an oauth-* value */
	int no_usage;             /* x-mock-no-usage: a JSON answer without usage */
	size_t say_model_off, say_model_len;   /* x-mock-model: the model to report */
	const char *bad_hdr;      /* first x-mock-* header with a bad value */
	long status, retry_after, error_after, close_after, stall_after;
	long fb_delay, delay, deltas, delta_bytes;   /* -1: absent */
	unsigned usage_mask;
	struct mu_usage usage;
	int has_seed;
	unsigned long long seed;
	/* body */
	int ch_state;
	unsigned long long ch_left;
	size_t ch_trailer;
	size_t body_end;          /* end of the (de-chunked) body */
	size_t raw_end;           /* end of this request's bytes */
};

/* What the current response sends, and where it stops. */
struct mu_plan {
	int status;
	int control;              /* a /mock/ endpoint or a framing error: no faults */
	int counted;              /* goes to /mock/stats by_status */
	int is_msg;               /* POST /v1/messages: x-mock-usage, usage sums */
	int stream;
	unsigned long total;      /* pieces: 2 for a fixed response, events for a stream */
	unsigned long limit;      /* pieces sent before at_limit happens */
	unsigned long sent;
	int at_limit;
	unsigned long fb_delay_ms, delay_ms;
	unsigned long deltas, delta_bytes, error_at;  /* error_at: ULONG_MAX none */
	struct mu_usage u;        /* final usage */
	struct mu_usage rep;      /* what the client actually gets reported */
	unsigned long long msg_no;
	size_t model_len;
	char model[MU_MODEL_MAX + 1];
};

struct conn {
	int fd;
	int state, dead, rd_stopped, peer_eof, graceful;
	ev_io rio, wio;
	ev_timer tmr;
	struct conn *prev, *next;
	struct buf in;            /* received bytes */
	struct buf out;           /* bytes to send; out_off already sent */
	size_t out_off;
	struct buf pend;          /* fixed response, or a stream's head */
	size_t pend_half;         /* fixed: head + half the body (piece 1) */
	struct buf ev;            /* scratch: one event or one body */
	struct mu_req rq;
	struct mu_plan pl;
};

struct mu_stats {
	unsigned long long requests, messages, count_tokens;
	unsigned long long by_status[600];
	struct mu_usage usage;
};

static struct {
	struct ev_loop *loop;
	const char *name, *key, *rec_dir;
	const char *prefix;           /* -p: served under this path ("" none) */
	int verbose;
	int lfd;
	ev_io lio;
	ev_timer accept_retry;
	ev_signal sigterm, sigint;
	struct conn *conns;
	unsigned long nconns;
	struct mu_stats st;
	int fail_status;
	unsigned long fail_count;
	int refuse_key;           /* /mock/auth: every /v1/ request gets 401 */
	long fail_close_after, fail_stall_after;   /* -1: none */
	unsigned long long rec_seq, resp_seq;
} g;

static void conn_process(struct conn *c);
static void pump(struct conn *c);

/* ------------------------------------------------------------------ */
/* Buffers. A test tool: running out of memory aborts with a message. */
/* ------------------------------------------------------------------ */

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);

	if (!q) {
		fprintf(stderr, "mock_upstream: out of memory (%zu bytes)\n", n);
		abort();
	}
	return q;
}

static void buf_reserve(struct buf *b, size_t extra)
{
	size_t cap;

	if (b->len + extra <= b->cap)
		return;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + extra)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (!n)
		return;
	buf_reserve(b, n);
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void buf_adds(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void buf_addf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	buf_reserve(b, 256);
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

static void buf_free(struct buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* Drops a big buffer's memory once a large request or response is done. */
static void buf_shrink(struct buf *b)
{
	if (b->len == 0 && b->cap > 1024 * 1024)
		buf_free(b);
}

/* ------------------------------------------------------------------ */
/* JSON root scanner: walks only the root object's own keys, skipping */
/* values by quote and bracket depth (no allocation, no full parse).  */
/* ------------------------------------------------------------------ */

struct js_field {
	const char *name;
	const char *v, *ve;       /* value bytes of the last occurrence */
};

static const char *js_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p at '"'. Returns the byte after the closing quote, NULL if unterminated. */
static const char *js_str(const char *p, const char *end)
{
	p++;
	while (p < end) {
		const char *q = memchr(p, '"', (size_t)(end - p));
		const char *b;

		if (!q)
			return NULL;
		for (b = q; b > p && b[-1] == '\\'; b--)
			;
		if (((q - b) & 1) == 0)
			return q + 1;
		p = q + 1;
	}
	return NULL;
}

/* p at a value. Returns the byte after it, NULL if malformed or cut: a
 * scalar touching the end of the buffer is unknown, not a value. */
static const char *js_skip(const char *p, const char *end)
{
	const char *s = p;

	if (p >= end)
		return NULL;
	if (*p == '"')
		return js_str(p, end);
	if (*p == '{' || *p == '[') {
		unsigned long depth = 0;

		while (p < end) {
			switch (*p) {
			case '"':
				p = js_str(p, end);
				if (!p)
					return NULL;
				continue;
			case '{': case '[':
				depth++;
				break;
			case '}': case ']':
				if (--depth == 0)
					return p + 1;
				break;
			}
			p++;
		}
		return NULL;
	}
	while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' &&
	       *p != '\t' && *p != '\r' && *p != '\n')
		p++;
	if (p == s || p == end)
		return NULL;
	return p;
}

/* Walks the root object of [p, end). For each f[i].name found as a root
 * key, sets f[i].v/ve to the value's bytes (last duplicate wins, like the
 * upstream). Returns 0, or -1 if the buffer is not one JSON object. Keys
 * are compared raw: an escaped key never matches. */
static int js_root(const char *p, const char *end, struct js_field *f, size_t nf)
{
	p = js_ws(p, end);
	if (p >= end || *p != '{')
		return -1;
	p = js_ws(p + 1, end);
	if (p < end && *p == '}')
		return js_ws(p + 1, end) == end ? 0 : -1;
	while (p < end) {            /* every turn moves p past one member */
		const char *k, *ke, *v;
		size_t i;

		if (*p != '"')
			return -1;
		k = p + 1;
		p = js_str(p, end);
		if (!p)
			return -1;
		ke = p - 1;
		p = js_ws(p, end);
		if (p >= end || *p != ':')
			return -1;
		v = js_ws(p + 1, end);
		p = js_skip(v, end);
		if (!p)
			return -1;
		for (i = 0; i < nf; i++) {
			if (strlen(f[i].name) == (size_t)(ke - k) &&
			    !memcmp(f[i].name, k, (size_t)(ke - k))) {
				f[i].v = v;
				f[i].ve = p;
			}
		}
		p = js_ws(p, end);
		if (p < end && *p == ',') {
			p = js_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == '}')
			return js_ws(p + 1, end) == end ? 0 : -1;
		return -1;
	}
	return -1;
}

/* Decimal digits only, at most 20, value <= max. Returns 0 or -1. */
static int parse_u64(const char *s, size_t n, unsigned long long max,
		     unsigned long long *out)
{
	unsigned long long v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -1;
		d = (unsigned)(s[i] - '0');
		if (v > (ULLONG_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* ------------------------------------------------------------------ */
/* HTTP request reader: no I/O, works on conn.in.                     */
/* ------------------------------------------------------------------ */

static void rq_reset(struct mu_req *rq)
{
	memset(rq, 0, sizeof(*rq));
	rq->clen = -1;
	rq->status = rq->retry_after = rq->error_after = -1;
	rq->close_after = rq->stall_after = rq->fb_delay = -1;
	rq->delay = rq->deltas = rq->delta_bytes = -1;
}

static int hname_is(const char *n, size_t nlen, const char *want)
{
	return strlen(want) == nlen && !strncasecmp(n, want, nlen);
}

static int has_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok), i = 0;

	while (i < n) {             /* comma-separated list, every turn advances */
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

/* "in=1,out=2,cw5=3,cw1=4,cr=5,ws=6", any subset. Returns 0 or -1. */
static int parse_usage_hdr(const char *v, size_t n, struct mu_usage *u, unsigned *mask)
{
	static const struct { const char *k; unsigned bit; } keys[] = {
		{ "in", U_IN }, { "out", U_OUT }, { "cw5", U_CW5 },
		{ "cw1", U_CW1 }, { "cr", U_CR }, { "ws", U_WS },
	};
	size_t i = 0;

	while (i < n) {             /* every turn consumes one item */
		size_t s, e, eq, k;
		unsigned long long x;
		int found = 0;

		while (i < n && (v[i] == ' ' || v[i] == ','))
			i++;
		if (i >= n)
			break;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && v[e - 1] == ' ')
			e--;
		for (eq = s; eq < e && v[eq] != '='; eq++)
			;
		if (eq == e)
			return -1;
		if (parse_u64(v + eq + 1, e - eq - 1, 1000000000000ULL, &x) < 0)
			return -1;
		for (k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
			if (strlen(keys[k].k) == eq - s && !memcmp(keys[k].k, v + s, eq - s)) {
				unsigned long long *dst[] = { &u->in, &u->out, &u->cw5,
							      &u->cw1, &u->cr, &u->ws };
				*dst[k] = x;
				*mask |= keys[k].bit;
				found = 1;
			}
		}
		if (!found)
			return -1;
	}
	return 0;
}

/* Reads one x-mock-* integer header into *dst; a bad value is remembered
 * (answered with 400 once the request is complete). */
static void mock_int(struct mu_req *rq, const char *hname, const char *v, size_t n,
		     unsigned long long min, unsigned long long max, long *dst)
{
	unsigned long long x;

	if (parse_u64(v, n, max, &x) < 0 || x < min) {
		if (!rq->bad_hdr)
			rq->bad_hdr = hname;
		return;
	}
	*dst = (long)x;
}

static void head_field(struct mu_req *rq, const char *base, const char *n, size_t nl,
		       const char *v, size_t vl, const char **why)
{
	unsigned long long x;

	if (hname_is(n, nl, "content-length")) {
		if (parse_u64(v, vl, ULLONG_MAX / 2, &x) < 0 ||
		    (rq->clen >= 0 && (unsigned long long)rq->clen != x))
			*why = "bad content-length";
		else
			rq->clen = (long long)x;
	} else if (hname_is(n, nl, "transfer-encoding")) {
		if (vl == 7 && !strncasecmp(v, "chunked", 7) && !rq->chunked)
			rq->chunked = 1;
		else
			*why = "unsupported transfer-encoding";
	} else if (hname_is(n, nl, "connection")) {
		if (has_token(v, vl, "close"))
			rq->keep_alive = 0;
		else if (has_token(v, vl, "keep-alive"))
			rq->keep_alive = 1;
	} else if (hname_is(n, nl, "expect")) {
		if (vl == 12 && !strncasecmp(v, "100-continue", 12))
			rq->expect_continue = 1;
	} else if (hname_is(n, nl, "x-api-key")) {
		rq->key_off = (size_t)(v - base);
		rq->key_len = vl;
		rq->n_key++;
	} else if (hname_is(n, nl, "authorization")) {
		rq->auth_off = (size_t)(v - base);
		rq->auth_len = vl;
		rq->n_auth++;
	} else if (hname_is(n, nl, "x-mock-no-usage")) {
		rq->no_usage = 1;
	} else if (hname_is(n, nl, "x-mock-model")) {
		/* A provider that says it used another model. */
		if (vl == 0 || vl > MU_MODEL_MAX || memchr(v, '"', vl) || memchr(v, '\\', vl))
			rq->bad_hdr = "x-mock-model";
		rq->say_model_off = (size_t)(v - base);
		rq->say_model_len = vl;
	} else if (hname_is(n, nl, "anthropic-beta")) {
		/* As Anthropic does: an OAuth beta makes the Bearer an OAuth
		 * token, which an API key is not. */
		for (size_t i = 0; i + 6 <= vl; i++)
			if ((i == 0 || v[i - 1] == ',' || v[i - 1] == ' ') &&
			    !strncasecmp(v + i, "oauth-", 6))
				rq->oauth_beta = 1;
	} else if (nl > 7 && !strncasecmp(n, "x-mock-", 7)) {
		if (hname_is(n, nl, "x-mock-status"))
			mock_int(rq, "x-mock-status", v, vl, 200, 599, &rq->status);
		else if (hname_is(n, nl, "x-mock-retry-after"))
			mock_int(rq, "x-mock-retry-after", v, vl, 0, 86400, &rq->retry_after);
		else if (hname_is(n, nl, "x-mock-error-after"))
			mock_int(rq, "x-mock-error-after", v, vl, 0, MU_DELTAS_MAX, &rq->error_after);
		else if (hname_is(n, nl, "x-mock-close-after"))
			mock_int(rq, "x-mock-close-after", v, vl, 0, MU_DELTAS_MAX + 8, &rq->close_after);
		else if (hname_is(n, nl, "x-mock-stall-after"))
			mock_int(rq, "x-mock-stall-after", v, vl, 0, MU_DELTAS_MAX + 8, &rq->stall_after);
		else if (hname_is(n, nl, "x-mock-first-byte-delay-ms"))
			mock_int(rq, "x-mock-first-byte-delay-ms", v, vl, 0, MU_DELAY_MAX_MS, &rq->fb_delay);
		else if (hname_is(n, nl, "x-mock-delay-ms"))
			mock_int(rq, "x-mock-delay-ms", v, vl, 0, MU_DELAY_MAX_MS, &rq->delay);
		else if (hname_is(n, nl, "x-mock-deltas"))
			mock_int(rq, "x-mock-deltas", v, vl, 0, MU_DELTAS_MAX, &rq->deltas);
		else if (hname_is(n, nl, "x-mock-delta-bytes"))
			mock_int(rq, "x-mock-delta-bytes", v, vl, 0, MU_DELTA_BYTES_MAX, &rq->delta_bytes);
		else if (hname_is(n, nl, "x-mock-usage")) {
			if (parse_usage_hdr(v, vl, &rq->usage, &rq->usage_mask) < 0 && !rq->bad_hdr)
				rq->bad_hdr = "x-mock-usage";
		} else if (hname_is(n, nl, "x-mock-random-usage")) {
			if (parse_u64(v, vl, ULLONG_MAX, &rq->seed) < 0) {
				if (!rq->bad_hdr)
					rq->bad_hdr = "x-mock-random-usage";
			} else {
				rq->has_seed = 1;
			}
		}
	}
}

static int tchar(unsigned char ch)
{
	return ch > 0x20 && ch < 0x7f && !strchr("\"(),/:;<=>?@[\\]{}", ch);
}

/* Parses the head [0, head_len) of conn.in. Returns 0, or -1 with *why. */
static int head_parse(struct conn *c, const char **why)
{
	struct mu_req *rq = &c->rq;
	char *base = c->in.p, *p = base;
	char *hend = base + rq->head_len - 2;    /* the blank line's CRLF */
	char *eol = memmem(p, (size_t)(hend + 2 - p), "\r\n", 2);
	char *sp1, *sp2, *q;

	*why = "malformed request line";
	sp1 = memchr(p, ' ', (size_t)(eol - p));
	if (!sp1 || sp1 == p)
		return -1;
	for (q = p; q < sp1; q++)
		if (!tchar((unsigned char)*q))
			return -1;
	if (sp1 - p == 3 && !memcmp(p, "GET", 3))
		rq->method = M_GET;
	else if (sp1 - p == 4 && !memcmp(p, "POST", 4))
		rq->method = M_POST;
	else
		rq->method = M_OTHER;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (!sp2 || sp1[1] != '/' || eol - sp2 != 9)
		return -1;
	if (!memcmp(sp2 + 1, "HTTP/1.1", 8))
		rq->http10 = 0;
	else if (!memcmp(sp2 + 1, "HTTP/1.0", 8))
		rq->http10 = 1;
	else
		return -1;
	for (q = sp1 + 1; q < sp2; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			return -1;
	rq->keep_alive = !rq->http10;
	rq->path_off = (size_t)(sp1 + 1 - base);
	q = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
	rq->path_len = (size_t)((q ? q : sp2) - (sp1 + 1));

	*why = NULL;
	for (p = eol + 2; p < hend; p = eol + 2) {   /* one header line per turn */
		char *colon, *v, *ve;

		eol = memmem(p, (size_t)(hend + 2 - p), "\r\n", 2);
		if (*p == ' ' || *p == '\t') {
			*why = "obsolete header folding";
			return -1;
		}
		for (q = p; q < eol; q++) {
			if (*q == '\n' || *q == '\r' || *q == '\0') {
				*why = "control character in header";
				return -1;
			}
		}
		colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p) {
			*why = "malformed header line";
			return -1;
		}
		for (q = p; q < colon; q++) {
			if (!tchar((unsigned char)*q)) {
				*why = "malformed header name";
				return -1;
			}
		}
		v = colon + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		ve = eol;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		head_field(rq, base, p, (size_t)(colon - p), v, (size_t)(ve - v), why);
		if (*why)
			return -1;
	}
	if (rq->chunked && rq->clen >= 0) {
		*why = "both content-length and transfer-encoding";
		return -1;
	}
	return 0;
}

/* Decodes the chunked body in place: data moves down to body_end, framing
 * is dropped, then the undecoded tail is compacted onto body_end. Returns
 * 1 when the last chunk and trailers are in, 0 for more, -1 malformed,
 * -2 over MU_BODY_MAX. */
static int chunk_decode(struct conn *c)
{
	struct mu_req *rq = &c->rq;
	char *b = c->in.p;
	size_t guard, limit = c->in.len - rq->raw_end + 4;
	int r = 0;

	/* every turn consumes at least one byte or leaves */
	for (guard = 0; guard < limit && r == 0; guard++) {
		size_t avail = c->in.len - rq->raw_end;
		char *p = b + rq->raw_end, *nl, *q;
		unsigned long long sz = 0;
		size_t n;

		switch (rq->ch_state) {
		case CH_SIZE:
			nl = memchr(p, '\n', avail);
			if (!nl || nl - p > MU_CHUNK_LINE_MAX) {
				if (nl || avail > MU_CHUNK_LINE_MAX)
					r = -1;
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
				if (sz > MU_BODY_MAX) {
					r = -2;
					goto out;
				}
				sz = sz * 16 + (unsigned)d;
			}
			if (q == p || (*q != ';' && *q != '\r' && *q != ' ' && *q != '\t') ||
			    nl[-1] != '\r') {
				r = -1;
				goto out;
			}
			rq->raw_end += (size_t)(nl + 1 - p);
			if (sz == 0) {
				rq->ch_state = CH_TRAILER;
			} else if (rq->body_end - rq->head_len + sz > MU_BODY_MAX) {
				r = -2;
			} else {
				rq->ch_left = sz;
				rq->ch_state = CH_DATA;
			}
			break;
		case CH_DATA:
			n = avail < rq->ch_left ? avail : (size_t)rq->ch_left;
			if (n == 0)
				goto out;
			if (b + rq->body_end != p)
				memmove(b + rq->body_end, p, n);
			rq->body_end += n;
			rq->raw_end += n;
			rq->ch_left -= n;
			if (rq->ch_left)
				goto out;
			rq->ch_state = CH_DATA_END;
			break;
		case CH_DATA_END:
			if (avail < 2)
				goto out;
			if (p[0] != '\r' || p[1] != '\n') {
				r = -1;
				goto out;
			}
			rq->raw_end += 2;
			rq->ch_state = CH_SIZE;
			break;
		case CH_TRAILER:
			nl = memchr(p, '\n', avail);
			if (!nl) {
				if (avail > MU_CHUNK_LINE_MAX)
					r = -1;
				goto out;
			}
			n = (size_t)(nl + 1 - p);
			rq->ch_trailer += n;
			if (rq->ch_trailer > MU_HEAD_MAX || nl == p || nl[-1] != '\r') {
				r = -1;
				goto out;
			}
			rq->raw_end += n;
			if (n == 2)
				r = 1;
			break;
		}
	}
out:
	if (rq->raw_end > rq->body_end) {
		memmove(b + rq->body_end, b + rq->raw_end, c->in.len - rq->raw_end);
		c->in.len -= rq->raw_end - rq->body_end;
		rq->raw_end = rq->body_end;
	}
	return r;
}

/* ------------------------------------------------------------------ */
/* Responses                                                          */
/* ------------------------------------------------------------------ */

static const char *status_text(int st)
{
	switch (st) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Payload Too Large";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 529: return "Overloaded";
	}
	return "Status";
}

/* The Anthropic error type for a status. */
static const char *err_type(int st)
{
	switch (st) {
	case 400: return "invalid_request_error";
	case 401: return "authentication_error";
	case 403: return "permission_error";
	case 404: return "not_found_error";
	case 413: return "request_too_large";
	case 429: return "rate_limit_error";
	case 500: return "api_error";
	case 503: case 529: return "overloaded_error";
	}
	return st >= 500 ? "api_error" : "invalid_request_error";
}

static void usage_hdr(struct buf *b, const struct mu_usage *u)
{
	buf_addf(b, "x-mock-usage: in=%llu,out=%llu,cw5=%llu,cw1=%llu,cr=%llu,ws=%llu\r\n",
		 u->in, u->out, u->cw5, u->cw1, u->cr, u->ws);
}

/* Starts a response head in c->pend (status line and common headers). */
static void head_begin(struct conn *c, int status, const char *ctype)
{
	c->pend.len = 0;
	c->pl.status = status;
	/* Like Anthropic's, the answer names the account behind the key and
	 * its limits: a gateway must not pass these on. */
	buf_addf(&c->pend, "HTTP/1.1 %d %s\r\ncontent-type: %s\r\n"
		 "request-id: req_mock_%llu\r\nx-mock-name: %s\r\n"
		 "anthropic-organization-id: org-mock-%s\r\n"
		 "anthropic-ratelimit-requests-limit: 4000\r\n",
		 status, status_text(status), ctype, ++g.resp_seq, g.name, g.name);
	if (!c->rq.keep_alive)
		buf_adds(&c->pend, "connection: close\r\n");
	else if (c->rq.http10)
		buf_adds(&c->pend, "connection: keep-alive\r\n");
	if (c->pl.is_msg)
		usage_hdr(&c->pend, &c->pl.rep);
}

/* Ends the head and appends c->ev as the body. */
static void fixed_body(struct conn *c)
{
	size_t head;

	buf_addf(&c->pend, "content-length: %zu\r\n\r\n", c->ev.len);
	head = c->pend.len;
	buf_add(&c->pend, c->ev.p, c->ev.len);
	c->pend_half = head + c->ev.len / 2;
	c->ev.len = 0;
	buf_shrink(&c->ev);
}

/* Sets limit/at_limit/delays from the request's x-mock-* headers. */
static void plan_faults(struct conn *c)
{
	struct mu_plan *pl = &c->pl;
	struct mu_req *rq = &c->rq;

	pl->limit = pl->total;
	pl->at_limit = LIM_NONE;
	pl->sent = 0;
	if (pl->control)
		return;
	if (rq->close_after >= 0 && (unsigned long)rq->close_after < pl->limit) {
		pl->limit = (unsigned long)rq->close_after;
		pl->at_limit = LIM_CLOSE;
	}
	if (rq->stall_after >= 0 && (unsigned long)rq->stall_after < pl->limit) {
		pl->limit = (unsigned long)rq->stall_after;
		pl->at_limit = LIM_STALL;
	}
	pl->fb_delay_ms = rq->fb_delay > 0 ? (unsigned long)rq->fb_delay : 0;
	pl->delay_ms = rq->delay > 0 ? (unsigned long)rq->delay : 0;
}

/* ------------------------------------------------------------------ */
/* Connection plumbing                                                */
/* ------------------------------------------------------------------ */

static void tmr_set(struct conn *c, double s)
{
	ev_timer_stop(g.loop, &c->tmr);
	ev_timer_set(&c->tmr, s, 0.);
	ev_timer_start(g.loop, &c->tmr);
}

/* Stops everything and closes the socket; memory is freed by the callback
 * that is running (conn_free), never from inside a nested call. */
static void conn_kill(struct conn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	ev_io_stop(g.loop, &c->rio);
	ev_io_stop(g.loop, &c->wio);
	ev_timer_stop(g.loop, &c->tmr);
	ev_clear_pending(g.loop, &c->rio);
	ev_clear_pending(g.loop, &c->wio);
	ev_clear_pending(g.loop, &c->tmr);
	close(c->fd);
	c->fd = -1;
}

static void conn_free(struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		g.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	g.nconns--;
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->pend);
	buf_free(&c->ev);
	free(c);
}

/* Sends what it can. Returns 1 when everything is out, 0 if the write
 * watcher will go on, -1 if the connection died. */
static int conn_flush(struct conn *c)
{
	while (c->out_off < c->out.len) {   /* each turn sends bytes or leaves */
		ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL);

		if (n > 0) {
			c->out_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!ev_is_active(&c->wio))
				ev_io_start(g.loop, &c->wio);
			return 0;
		}
		conn_kill(c);
		return -1;
	}
	c->out.len = c->out_off = 0;
	buf_shrink(&c->out);
	if (ev_is_active(&c->wio))
		ev_io_stop(g.loop, &c->wio);
	return 1;
}

/* After the last byte is out: an abrupt close, or FIN and drain. */
static void finish_close(struct conn *c)
{
	if (!c->graceful || c->peer_eof) {
		conn_kill(c);
		return;
	}
	shutdown(c->fd, SHUT_WR);
	c->state = ST_LINGER;
	tmr_set(c, MU_LINGER_S);
}

static void conn_closing(struct conn *c)
{
	c->state = ST_CLOSING;
	if (c->out_off >= c->out.len)
		finish_close(c);
	else
		tmr_set(c, MU_IDLE_S);
}

/* The response is complete: next request, or close. */
static void resp_done(struct conn *c)
{
	struct mu_req *rq = &c->rq;

	if (!rq->keep_alive || c->peer_eof) {
		c->graceful = 1;
		conn_closing(c);
		return;
	}
	memmove(c->in.p, c->in.p + rq->raw_end, c->in.len - rq->raw_end);
	c->in.len -= rq->raw_end;
	if (c->in.cap > 1024 * 1024 && c->in.len < 64 * 1024) {
		c->in.p = xrealloc(c->in.p, 64 * 1024);
		c->in.cap = 64 * 1024;
	}
	rq_reset(rq);
	c->pend.len = 0;
	buf_shrink(&c->pend);
	c->state = ST_READ;
	tmr_set(c, MU_IDLE_S);
	if (c->rd_stopped) {
		c->rd_stopped = 0;
		ev_io_start(g.loop, &c->rio);
	}
}

/* The planned stop: abrupt close, or silence until the peer leaves. */
static void resp_limit(struct conn *c)
{
	if (c->pl.at_limit == LIM_CLOSE) {
		c->graceful = 0;
		conn_closing(c);
	} else {
		c->state = ST_STALL;
		tmr_set(c, MU_STALL_S);
	}
}

static void add_usage(struct mu_usage *a, const struct mu_usage *b)
{
	a->in += b->in;
	a->out += b->out;
	a->cw5 += b->cw5;
	a->cw1 += b->cw1;
	a->cr += b->cr;
	a->ws += b->ws;
}

/* Sends the first piece (after any first-byte delay). */
static void resp_start(struct conn *c)
{
	struct mu_plan *pl = &c->pl;

	ev_timer_stop(g.loop, &c->tmr);
	if (g.verbose)
		fprintf(stderr, "mock_upstream[%s]: %.*s %d%s limit=%lu/%lu\n", g.name,
			(int)(c->rq.path_len > 200 ? 200 : c->rq.path_len),
			c->in.p + c->rq.path_off, pl->status, pl->stream ? " stream" : "",
			pl->limit, pl->total);
	if (pl->limit == 0) {
		resp_limit(c);
		return;
	}
	if (pl->counted && pl->status >= 100 && pl->status < 600) {
		g.st.by_status[pl->status]++;
		if (pl->is_msg && pl->status == 200)
			add_usage(&g.st.usage, &pl->rep);
	}
	if (!pl->stream) {
		if (pl->limit >= pl->total && c->out.len == 0) {
			struct buf t = c->out;    /* hand the response over, no copy */

			c->out = c->pend;
			c->pend = t;
			c->pend.len = 0;
		} else {
			buf_add(&c->out, c->pend.p,
				pl->limit >= pl->total ? c->pend.len : c->pend_half);
		}
		if (conn_flush(c) < 0)
			return;
		pl->sent = pl->limit;
		if (pl->limit >= pl->total)
			resp_done(c);
		else
			resp_limit(c);
		return;
	}
	buf_add(&c->out, c->pend.p, c->pend.len);
	if (conn_flush(c) < 0)
		return;
	c->state = ST_SEND;
	pump(c);
}

static void resp_begin(struct conn *c)
{
	if (c->pl.fb_delay_ms) {
		c->state = ST_FIRST;
		tmr_set(c, (double)c->pl.fb_delay_ms / 1000.);
	} else {
		resp_start(c);
	}
}

/* An Anthropic error body, with the x-mock faults of the request. */
static void reply_error(struct conn *c, int status, const char *msg)
{
	char dflt[64];

	if (!msg) {
		if (status == 529)
			msg = "Overloaded";
		else {
			snprintf(dflt, sizeof(dflt), "mock: injected %d", status);
			msg = dflt;
		}
	}
	memset(&c->pl.rep, 0, sizeof(c->pl.rep));
	c->ev.len = 0;
	buf_addf(&c->ev, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":\"%s\"}}",
		 err_type(status), msg);
	head_begin(c, status, "application/json");
	if (status == 429)
		buf_addf(&c->pend, "retry-after: %ld\r\n",
			 c->rq.retry_after >= 0 ? c->rq.retry_after : 1);
	fixed_body(c);
	c->pl.stream = 0;
	c->pl.total = 2;
	plan_faults(c);
	resp_begin(c);
}

/* A framing error: answered at once, then the connection is closed. */
static int reply_fatal(struct conn *c, int status, const char *msg)
{
	c->rq.keep_alive = 0;
	memset(&c->pl, 0, sizeof(c->pl));
	c->pl.control = 1;
	c->pl.counted = 1;
	g.st.requests++;
	if (g.verbose || status != 400)
		fprintf(stderr, "mock_upstream[%s]: %d %s, closing\n", g.name, status, msg);
	reply_error(c, status, msg);
	return -1;
}

/* A JSON body from c->ev, no faults. */
static void reply_json(struct conn *c, int status)
{
	head_begin(c, status, "application/json");
	fixed_body(c);
	c->pl.total = 2;
	plan_faults(c);
	resp_begin(c);
}

/* ------------------------------------------------------------------ */
/* Messages                                                           */
/* ------------------------------------------------------------------ */

static const char mu_text[] =
	"Hello from the mock upstream. This text is generated, not thought. ";

/* Appends n bytes of the repeating text, starting at offset off. */
static void text_fill(struct buf *b, unsigned long long off, size_t n)
{
	size_t plen = sizeof(mu_text) - 1, o = (size_t)(off % plen);

	buf_reserve(b, n);
	while (n) {                  /* each turn copies at least one byte */
		size_t k = plen - o < n ? plen - o : n;

		memcpy(b->p + b->len, mu_text + o, k);
		b->len += k;
		n -= k;
		o = 0;
	}
}

static unsigned long long splitmix(unsigned long long *x)
{
	unsigned long long z = (*x += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Default usage from the body size and deltas; x-mock-random-usage and
 * x-mock-usage override it in that order. */
static void usage_compute(struct conn *c, size_t blen)
{
	struct mu_usage *u = &c->pl.u, *f = &c->rq.usage;
	unsigned m = c->rq.usage_mask;

	memset(u, 0, sizeof(*u));
	u->in = blen / 4 ? blen / 4 : 1;
	/* About 4 bytes of text a token, as with real models. */
	u->out = ((unsigned long long)c->pl.deltas * c->pl.delta_bytes + 3) / 4;
	if (c->rq.has_seed) {
		unsigned long long x = c->rq.seed ^ (c->pl.msg_no * 0xD6E8FEB86659FD93ULL);

		u->in = 1 + splitmix(&x) % 20000;
		u->out = 1 + splitmix(&x) % 4000;
		u->cw5 = splitmix(&x) % 3 == 0 ? splitmix(&x) % 10000 : 0;
		u->cw1 = splitmix(&x) % 5 == 0 ? splitmix(&x) % 10000 : 0;
		u->cr = splitmix(&x) % 2 == 0 ? splitmix(&x) % 100000 : 0;
		u->ws = splitmix(&x) % 10 == 0 ? 1 + splitmix(&x) % 3 : 0;
	}
	if (m & U_IN) u->in = f->in;
	if (m & U_OUT) u->out = f->out;
	if (m & U_CW5) u->cw5 = f->cw5;
	if (m & U_CW1) u->cw1 = f->cw1;
	if (m & U_CR) u->cr = f->cr;
	if (m & U_WS) u->ws = f->ws;
}

/* The usage object of a message or message_start (full = with the 5m/1h
 * split and service tier). */
static void usage_json(struct buf *b, const struct mu_usage *u, unsigned long long out,
		       int ws)
{
	buf_addf(b, "{\"input_tokens\":%llu,\"cache_creation_input_tokens\":%llu,"
		 "\"cache_read_input_tokens\":%llu,\"cache_creation\":"
		 "{\"ephemeral_5m_input_tokens\":%llu,\"ephemeral_1h_input_tokens\":%llu},"
		 "\"output_tokens\":%llu,\"service_tier\":\"standard\"",
		 u->in, u->cw5 + u->cw1, u->cr, u->cw5, u->cw1, out);
	if (ws && u->ws)
		buf_addf(b, ",\"server_tool_use\":{\"web_search_requests\":%llu}", u->ws);
	buf_adds(b, "}");
}

static void msg_fixed(struct conn *c)
{
	struct mu_plan *pl = &c->pl;

	c->ev.len = 0;
	buf_addf(&c->ev, "{\"id\":\"msg_mock_%llu\",\"type\":\"message\",\"role\":\"assistant\","
		 "\"model\":\"%s\",\"content\":[{\"type\":\"text\",\"text\":\"",
		 pl->msg_no, pl->model);
	text_fill(&c->ev, 0, pl->deltas * pl->delta_bytes);
	if (c->rq.no_usage) {
		/* A provider that says nothing of what it cost. */
		buf_adds(&c->ev, "\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null}");
	} else {
		buf_adds(&c->ev, "\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":");
		usage_json(&c->ev, &pl->u, pl->u.out, 1);
		buf_adds(&c->ev, "}");
	}
	pl->stream = 0;
	pl->total = 2;
	plan_faults(c);
	if (pl->limit >= pl->total)
		pl->rep = pl->u;
	head_begin(c, 200, "application/json");
	fixed_body(c);
	resp_begin(c);
}

static void msg_stream(struct conn *c)
{
	struct mu_plan *pl = &c->pl;

	pl->stream = 1;
	pl->error_at = ULONG_MAX;
	if (c->rq.error_after >= 0)
		pl->error_at = (unsigned long)c->rq.error_after < pl->deltas ?
			       (unsigned long)c->rq.error_after : pl->deltas;
	/* start, block start, ping, deltas, then error or stop/delta/stop */
	pl->total = pl->error_at != ULONG_MAX ? pl->error_at + 4 : pl->deltas + 6;
	plan_faults(c);
	if (pl->error_at == ULONG_MAX && pl->limit > pl->deltas + 4) {
		pl->rep = pl->u;             /* message_delta goes out */
	} else if (pl->limit >= 1) {
		pl->rep = pl->u;             /* only message_start's usage */
		pl->rep.out = 1;
		pl->rep.ws = 0;
	}
	if (c->rq.http10)
		c->rq.keep_alive = 0;        /* no chunked for 1.0: the close ends it */
	head_begin(c, 200, "text/event-stream; charset=utf-8");
	buf_adds(&c->pend, "cache-control: no-cache\r\n");
	if (!c->rq.http10)
		buf_adds(&c->pend, "transfer-encoding: chunked\r\n");
	buf_adds(&c->pend, "\r\n");
	resp_begin(c);
}

/* Appends stream event i to c->out, chunk-framed. */
static void stream_event(struct conn *c, unsigned long i)
{
	struct mu_plan *pl = &c->pl;
	struct buf *e = &c->ev;

	e->len = 0;
	if (i == 0) {
		buf_addf(e, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
			 "{\"id\":\"msg_mock_%llu\",\"type\":\"message\",\"role\":\"assistant\","
			 "\"model\":\"%s\",\"content\":[],\"stop_reason\":null,"
			 "\"stop_sequence\":null,\"usage\":", pl->msg_no, pl->model);
		usage_json(e, &pl->u, 1, 0);
		buf_adds(e, "}}\n\n");
	} else if (i == 1) {
		buf_adds(e, "event: content_block_start\ndata: {\"type\":\"content_block_start\","
			 "\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n");
	} else if (i == 2) {
		buf_adds(e, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
	} else if (pl->error_at != ULONG_MAX && i == 3 + pl->error_at) {
		buf_adds(e, "event: error\ndata: {\"type\":\"error\",\"error\":"
			 "{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
	} else if (i < 3 + pl->deltas) {
		buf_adds(e, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\","
			 "\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"");
		text_fill(e, (unsigned long long)(i - 3) * pl->delta_bytes, pl->delta_bytes);
		buf_adds(e, "\"}}\n\n");
	} else if (i == 3 + pl->deltas) {
		buf_adds(e, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\","
			 "\"index\":0}\n\n");
	} else if (i == 4 + pl->deltas) {
		buf_addf(e, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":"
			 "{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":"
			 "{\"input_tokens\":%llu,\"cache_creation_input_tokens\":%llu,"
			 "\"cache_read_input_tokens\":%llu,\"output_tokens\":%llu",
			 pl->u.in, pl->u.cw5 + pl->u.cw1, pl->u.cr, pl->u.out);
		if (pl->u.ws)
			buf_addf(e, ",\"server_tool_use\":{\"web_search_requests\":%llu}",
				 pl->u.ws);
		buf_adds(e, "}}\n\n");
	} else {
		buf_adds(e, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
	}
	if (c->rq.http10) {
		buf_add(&c->out, e->p, e->len);
	} else {
		buf_addf(&c->out, "%zx\r\n", e->len);
		buf_add(&c->out, e->p, e->len);
		buf_adds(&c->out, "\r\n");
	}
	e->len = 0;
	buf_shrink(e);
}

/* Generates events while the socket takes them; one send per event. */
static void pump(struct conn *c)
{
	struct mu_plan *pl = &c->pl;

	ev_timer_stop(g.loop, &c->tmr);
	while (pl->sent < pl->limit) {    /* bounded by limit */
		if (c->out.len - c->out_off > MU_OUT_HIGH) {
			tmr_set(c, MU_IDLE_S);   /* on_write resumes us */
			return;
		}
		stream_event(c, pl->sent);
		pl->sent++;
		if (conn_flush(c) < 0)
			return;
		if (pl->delay_ms && pl->sent < pl->limit) {
			c->state = ST_GAP;
			tmr_set(c, (double)pl->delay_ms / 1000.);
			return;
		}
	}
	if (pl->limit < pl->total) {
		resp_limit(c);
		return;
	}
	if (!c->rq.http10)
		buf_adds(&c->out, "0\r\n\r\n");
	if (conn_flush(c) < 0)
		return;
	resp_done(c);
}

static void do_messages(struct conn *c)
{
	struct mu_req *rq = &c->rq;
	struct mu_plan *pl = &c->pl;
	struct js_field f[2] = { { "model", NULL, NULL }, { "stream", NULL, NULL } };
	const char *body = c->in.p + rq->head_len;
	size_t blen = rq->body_end - rq->head_len, i;
	int status = 200;

	g.st.messages++;
	pl->msg_no = g.st.messages;
	if (g.fail_count) {
		status = g.fail_status;
		g.fail_count--;
		if (g.fail_close_after >= 0)
			rq->close_after = g.fail_close_after;
		if (g.fail_stall_after >= 0)
			rq->stall_after = g.fail_stall_after;
	} else if (rq->status >= 0) {
		status = (int)rq->status;
	}
	if (status != 200) {
		reply_error(c, status, NULL);
		return;
	}
	if (js_root(body, body + blen, f, 2) < 0) {
		reply_error(c, 400, "mock: body is not a JSON object");
		return;
	}
	if (!f[0].v || *f[0].v != '"' || f[0].ve - f[0].v - 2 > MU_MODEL_MAX) {
		reply_error(c, 400, "model: Field required (a string)");
		return;
	}
	pl->model_len = (size_t)(f[0].ve - f[0].v - 2);
	for (i = 0; i < pl->model_len; i++) {
		if ((unsigned char)f[0].v[1 + i] < 0x20) {
			reply_error(c, 400, "model: control character");
			return;
		}
	}
	memcpy(pl->model, f[0].v + 1, pl->model_len);
	pl->model[pl->model_len] = '\0';
	if (rq->say_model_len && !rq->bad_hdr) {
		pl->model_len = rq->say_model_len;
		memcpy(pl->model, c->in.p + rq->say_model_off, pl->model_len);
		pl->model[pl->model_len] = '\0';
	}
	pl->deltas = rq->deltas >= 0 ? (unsigned long)rq->deltas : MU_DEFAULT_DELTAS;
	pl->delta_bytes = rq->delta_bytes >= 0 ? (unsigned long)rq->delta_bytes
					       : MU_DEFAULT_DBYTES;
	usage_compute(c, blen);
	if (f[1].v && f[1].ve - f[1].v == 4 && !memcmp(f[1].v, "true", 4)) {
		msg_stream(c);
		return;
	}
	if ((unsigned long long)pl->deltas * pl->delta_bytes > MU_TEXT_MAX) {
		reply_error(c, 400, "mock: x-mock-deltas * x-mock-delta-bytes too large");
		return;
	}
	msg_fixed(c);
}

static void do_count_tokens(struct conn *c)
{
	const char *body = c->in.p + c->rq.head_len;
	size_t blen = c->rq.body_end - c->rq.head_len;
	unsigned long long n = blen / 4 ? blen / 4 : 1;

	g.st.count_tokens++;
	if (c->rq.status >= 0 && c->rq.status != 200) {
		reply_error(c, (int)c->rq.status, NULL);
		return;
	}
	if (js_root(body, body + blen, NULL, 0) < 0) {
		reply_error(c, 400, "mock: body is not a JSON object");
		return;
	}
	if (c->rq.usage_mask & U_IN)
		n = c->rq.usage.in;
	c->ev.len = 0;
	buf_addf(&c->ev, "{\"input_tokens\":%llu}", n);
	head_begin(c, 200, "application/json");
	fixed_body(c);
	c->pl.total = 2;
	plan_faults(c);
	resp_begin(c);
}

static void do_models(struct conn *c)
{
	static const char *const m[][3] = {
		{ "claude-opus-4-1-20250805", "Claude Opus 4.1", "2025-08-05" },
		{ "claude-sonnet-4-5-20250929", "Claude Sonnet 4.5", "2025-09-29" },
		{ "claude-3-5-haiku-20241022", "Claude Haiku 3.5", "2024-10-22" },
	};
	size_t i, n = sizeof(m) / sizeof(m[0]);

	if (c->rq.status >= 0 && c->rq.status != 200) {
		reply_error(c, (int)c->rq.status, NULL);
		return;
	}
	c->ev.len = 0;
	buf_adds(&c->ev, "{\"data\":[");
	for (i = 0; i < n; i++)
		buf_addf(&c->ev, "%s{\"type\":\"model\",\"id\":\"%s\",\"display_name\":\"%s\","
			 "\"created_at\":\"%sT00:00:00Z\"}", i ? "," : "", m[i][0], m[i][1],
			 m[i][2]);
	buf_addf(&c->ev, "],\"has_more\":false,\"first_id\":\"%s\",\"last_id\":\"%s\"}",
		 m[0][0], m[n - 1][0]);
	head_begin(c, 200, "application/json");
	fixed_body(c);
	c->pl.total = 2;
	plan_faults(c);
	resp_begin(c);
}

/* ------------------------------------------------------------------ */
/* Control endpoints, recording, routing                              */
/* ------------------------------------------------------------------ */

static void do_control(struct conn *c, const char *path, size_t plen)
{
	const char *body = c->in.p + c->rq.head_len;
	size_t blen = c->rq.body_end - c->rq.head_len;
	struct mu_stats *s = &g.st;
	int i, first = 1;

	c->pl.control = 1;
	c->ev.len = 0;
	if (plen == 11 && !memcmp(path, "/mock/stats", 11)) {
		buf_addf(&c->ev, "{\"requests\":%llu,\"messages\":%llu,\"count_tokens\":%llu,"
			 "\"by_status\":{", s->requests, s->messages, s->count_tokens);
		for (i = 0; i < 600; i++) {
			if (s->by_status[i]) {
				buf_addf(&c->ev, "%s\"%d\":%llu", first ? "" : ",", i,
					 s->by_status[i]);
				first = 0;
			}
		}
		buf_addf(&c->ev, "},\"usage\":{\"in\":%llu,\"out\":%llu,\"cw5\":%llu,"
			 "\"cw1\":%llu,\"cr\":%llu,\"ws\":%llu},\"fail_pending\":%lu,"
			 "\"connections\":%lu}",
			 s->usage.in, s->usage.out, s->usage.cw5, s->usage.cw1, s->usage.cr,
			 s->usage.ws, g.fail_count, g.nconns);
		reply_json(c, 200);
	} else if (plen == 11 && !memcmp(path, "/mock/reset", 11)) {
		memset(s, 0, sizeof(*s));
		g.fail_count = 0;
		g.fail_status = 0;
		g.refuse_key = 0;
		buf_adds(&c->ev, "{\"ok\":true}");
		reply_json(c, 200);
	} else if (plen == 10 && !memcmp(path, "/mock/fail", 10)) {
		struct js_field f[4] = { { "status", NULL, NULL }, { "count", NULL, NULL },
					 { "close_after", NULL, NULL }, { "stall_after", NULL, NULL } };
		unsigned long long st, cnt = 1, ca = 0, sa = 0;

		if (js_root(body, body + blen, f, 4) < 0 || !f[0].v ||
		    parse_u64(f[0].v, (size_t)(f[0].ve - f[0].v), 599, &st) < 0 || st < 200 ||
		    (f[1].v && parse_u64(f[1].v, (size_t)(f[1].ve - f[1].v), 1000000000, &cnt) < 0) ||
		    (f[2].v && parse_u64(f[2].v, (size_t)(f[2].ve - f[2].v), 1000000, &ca) < 0) ||
		    (f[3].v && parse_u64(f[3].v, (size_t)(f[3].ve - f[3].v), 1000000, &sa) < 0)) {
			reply_error(c, 400, "mock: want {\\\"status\\\":200..599,\\\"count\\\":N"
				    "[,\\\"close_after\\\":N][,\\\"stall_after\\\":N]}");
			return;
		}
		g.fail_status = (int)st;
		g.fail_count = (unsigned long)cnt;
		g.fail_close_after = f[2].v ? (long)ca : -1;
		g.fail_stall_after = f[3].v ? (long)sa : -1;
		buf_addf(&c->ev, "{\"ok\":true,\"status\":%llu,\"count\":%llu}", st, cnt);
		reply_json(c, 200);
	} else if (plen == 10 && !memcmp(path, "/mock/auth", 10)) {
		struct js_field f[1] = { { "refuse", NULL, NULL } };

		if (js_root(body, body + blen, f, 1) < 0 || !f[0].v ||
		    !((f[0].ve - f[0].v == 4 && !memcmp(f[0].v, "true", 4)) ||
		      (f[0].ve - f[0].v == 5 && !memcmp(f[0].v, "false", 5)))) {
			reply_error(c, 400, "mock: want {\\\"refuse\\\":true|false}");
			return;
		}
		g.refuse_key = *f[0].v == 't';
		buf_addf(&c->ev, "{\"ok\":true,\"refuse\":%s}", g.refuse_key ? "true" : "false");
		reply_json(c, 200);
	} else {
		reply_error(c, 404, "mock: unknown control endpoint");
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {                  /* each turn writes bytes or fails */
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* DIR/NNNNNN.req: the head as received, then the (de-chunked) body;
 * written under a dot-name, then renamed, so readers see whole files. */
static void record(struct conn *c)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	unsigned long long n = ++g.rec_seq;
	int fd, bad;

	snprintf(path, sizeof(path), "%s/%06llu.req", g.rec_dir, n);
	snprintf(tmp, sizeof(tmp), "%s/.%06llu.req.tmp", g.rec_dir, n);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "mock_upstream[%s]: record %s: %s\n", g.name, tmp, strerror(errno));
		return;
	}
	bad = write_all(fd, c->in.p, c->rq.head_len) < 0 ||
	      write_all(fd, c->in.p + c->rq.head_len, c->rq.body_end - c->rq.head_len) < 0;
	if (close(fd) < 0)
		bad = 1;
	if (bad || rename(tmp, path) < 0) {
		fprintf(stderr, "mock_upstream[%s]: record %s: %s\n", g.name, path, strerror(errno));
		unlink(tmp);
	}
}

/* Compares a header value at (off, len) in c->in with s (prefix + key). */
static int hval_eq(struct conn *c, size_t off, size_t len, const char *pfx, const char *key)
{
	size_t pl = strlen(pfx), kl = strlen(key);

	return len == pl + kl && !memcmp(c->in.p + off, pfx, pl) &&
	       !memcmp(c->in.p + off + pl, key, kl);
}

static int key_ok(struct conn *c)
{
	struct mu_req *rq = &c->rq;

	return rq->n_key == 1 && rq->n_auth == 1 &&
	       hval_eq(c, rq->key_off, rq->key_len, "", g.key) &&
	       hval_eq(c, rq->auth_off, rq->auth_len, "Bearer ", g.key);
}

static int path_is(const char *p, size_t n, const char *want)
{
	return strlen(want) == n && !memcmp(p, want, n);
}

/* Serves one complete request; the response may finish now or later. */
static void dispatch(struct conn *c)
{
	struct mu_req *rq = &c->rq;
	const char *path = c->in.p + rq->path_off;
	size_t plen = rq->path_len;

	memset(&c->pl, 0, sizeof(c->pl));
	if (plen >= 6 && !memcmp(path, "/mock/", 6)) {
		do_control(c, path, plen);
		return;
	}
	c->pl.counted = 1;
	g.st.requests++;
	/* -p: a provider under a path (https://host/prefix/v1/messages). */
	if (*g.prefix) {
		size_t pl = strlen(g.prefix);

		if (plen < pl || memcmp(path, g.prefix, pl) != 0) {
			reply_error(c, 404, "mock: not under the prefix");
			return;
		}
		path += pl;
		plen -= pl;
	}
	if (!(plen >= 3 && !memcmp(path, "/v1", 3) && (plen == 3 || path[3] == '/'))) {
		reply_error(c, 404, "mock: unknown path");
		return;
	}
	c->pl.is_msg = rq->method == M_POST && path_is(path, plen, "/v1/messages");
	if (g.rec_dir)
		record(c);
	if (rq->bad_hdr) {
		char msg[96];

		snprintf(msg, sizeof(msg), "mock: bad %s header", rq->bad_hdr);
		reply_error(c, 400, msg);
		return;
	}
	if ((g.key && !key_ok(c)) || g.refuse_key) {
		reply_error(c, 401, "invalid x-api-key");
		return;
	}
	if (rq->oauth_beta && rq->n_auth) {
		reply_error(c, 401, "OAuth authentication is currently not supported.");
		return;
	}
	if (c->pl.is_msg)
		do_messages(c);
	else if (rq->method == M_POST && path_is(path, plen, "/v1/messages/count_tokens"))
		do_count_tokens(c);
	else if (rq->method == M_GET && path_is(path, plen, "/v1/models"))
		do_models(c);
	else
		reply_error(c, 404, "mock: unknown path");
}

static void maybe_continue(struct conn *c)
{
	if (c->rq.expect_continue && !c->rq.sent_continue) {
		c->rq.sent_continue = 1;
		buf_adds(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
		conn_flush(c);
	}
}

/* Returns 1 when a whole request is in c->in, 0 for more, -1 if it was
 * refused (the answer is queued and the connection closing). */
static int req_parse(struct conn *c)
{
	struct mu_req *rq = &c->rq;

	if (!rq->head_len) {
		size_t from = rq->scan_off > 3 ? rq->scan_off - 3 : 0;
		char *e = c->in.len > from ?
			  memmem(c->in.p + from, c->in.len - from, "\r\n\r\n", 4) : NULL;
		const char *why;

		if (!e) {
			rq->scan_off = c->in.len;
			if (c->in.len > MU_HEAD_MAX)
				return reply_fatal(c, 431, "request header fields too large");
			return 0;
		}
		rq->head_len = (size_t)(e - c->in.p) + 4;
		if (rq->head_len > MU_HEAD_MAX)
			return reply_fatal(c, 431, "request header fields too large");
		if (head_parse(c, &why) < 0)
			return reply_fatal(c, 400, why);
		if (rq->chunked) {
			rq->ch_state = CH_SIZE;
			rq->raw_end = rq->body_end = rq->head_len;
		} else {
			size_t need;

			if (rq->clen < 0)
				rq->clen = 0;
			if ((unsigned long long)rq->clen > MU_BODY_MAX)
				return reply_fatal(c, 413, "request body too large");
			need = rq->head_len + (size_t)rq->clen + 64 * 1024;
			if (need > MU_IN_MAX)
				need = MU_IN_MAX;
			if (c->in.cap < need) {
				c->in.p = xrealloc(c->in.p, need);
				c->in.cap = need;
			}
		}
	}
	if (rq->chunked) {
		int r = chunk_decode(c);

		if (r == -2)
			return reply_fatal(c, 413, "request body too large");
		if (r < 0)
			return reply_fatal(c, 400, "malformed chunked body");
		if (r == 0) {
			maybe_continue(c);
			return 0;
		}
	} else {
		if (c->in.len - rq->head_len < (size_t)rq->clen) {
			maybe_continue(c);
			return 0;
		}
		rq->body_end = rq->raw_end = rq->head_len + (size_t)rq->clen;
	}
	return 1;
}

/* Serves the complete requests in c->in, a bounded number per call. */
static void conn_process(struct conn *c)
{
	int i;

	for (i = 0; i < MU_PIPELINE_BURST; i++) {
		if (c->dead || c->state != ST_READ)
			return;
		if (req_parse(c) <= 0)
			return;
		dispatch(c);
	}
	if (!c->dead && c->state == ST_READ && c->in.len)
		ev_feed_event(g.loop, &c->rio, EV_READ);   /* the rest on the next turn */
}

/* ------------------------------------------------------------------ */
/* libev shell                                                        */
/* ------------------------------------------------------------------ */

static void on_read(EV_P_ ev_io *w, int revents)
{
	struct conn *c = w->data;
	int i;

	for (i = 0; i < MU_READ_BURST && !c->dead; i++) {
		ssize_t n;

		if (c->state == ST_CLOSING || c->state == ST_LINGER) {
			char tmp[16384];      /* nothing more is served: discard */

			n = recv(c->fd, tmp, sizeof(tmp), 0);
			if (n > 0)
				continue;
			if (n == 0) {
				c->peer_eof = 1;
				ev_io_stop(EV_A_ &c->rio);
				c->rd_stopped = 1;
				if (c->state == ST_LINGER)
					conn_kill(c);
			} else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				conn_kill(c);
			}
			break;
		}
		if (c->in.cap - c->in.len < 4096) {
			size_t cap = c->in.cap ? c->in.cap * 2 : 16384;

			if (c->in.cap >= MU_IN_MAX) {
				ev_io_stop(EV_A_ &c->rio);   /* resumed by resp_done */
				c->rd_stopped = 1;
				break;
			}
			if (cap > MU_IN_MAX)
				cap = MU_IN_MAX;
			c->in.p = xrealloc(c->in.p, cap);
			c->in.cap = cap;
		}
		n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len, 0);
		if (n > 0) {
			c->in.len += (size_t)n;
			continue;
		}
		if (n == 0) {
			c->peer_eof = 1;
			ev_io_stop(EV_A_ &c->rio);
			c->rd_stopped = 1;
			break;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			conn_kill(c);
		break;
	}
	if (!c->dead && c->state == ST_READ) {
		tmr_set(c, MU_IDLE_S);
		conn_process(c);
	}
	if (!c->dead && c->peer_eof) {
		/* the peer left: a stall ends, an idle connection closes; a
		 * response in progress finishes, then resp_done closes */
		if (c->state == ST_STALL) {
			conn_kill(c);
		} else if (c->state == ST_READ) {
			c->graceful = 0;
			conn_closing(c);
		}
	}
	if (c->dead)
		conn_free(c);
}

static void on_write(EV_P_ ev_io *w, int revents)
{
	struct conn *c = w->data;

	if (conn_flush(c) > 0) {
		if (c->state == ST_SEND)
			pump(c);
		else if (c->state == ST_CLOSING)
			finish_close(c);
	}
	if (!c->dead && c->state == ST_READ)
		conn_process(c);
	if (c->dead)
		conn_free(c);
}

static void on_timer(EV_P_ ev_timer *w, int revents)
{
	struct conn *c = w->data;

	switch (c->state) {
	case ST_FIRST:
		resp_start(c);
		break;
	case ST_GAP:
		c->state = ST_SEND;
		pump(c);
		break;
	default:        /* idle, stuck sender, stall over, linger over */
		conn_kill(c);
		break;
	}
	if (!c->dead && c->state == ST_READ)
		conn_process(c);
	if (c->dead)
		conn_free(c);
}

static void conn_new(int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c) {
		close(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	rq_reset(&c->rq);
	ev_io_init(&c->rio, on_read, fd, EV_READ);
	ev_io_init(&c->wio, on_write, fd, EV_WRITE);
	ev_timer_init(&c->tmr, on_timer, MU_IDLE_S, 0.);
	c->rio.data = c->wio.data = c->tmr.data = c;
	c->next = g.conns;
	if (g.conns)
		g.conns->prev = c;
	g.conns = c;
	g.nconns++;
	c->state = ST_READ;
	ev_io_start(g.loop, &c->rio);
	ev_timer_start(g.loop, &c->tmr);
}

static void on_accept(EV_P_ ev_io *w, int revents)
{
	int i;

	for (i = 0; i < MU_ACCEPT_BURST; i++) {
		int fd = accept4(g.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			conn_new(fd);
			continue;
		}
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
			/* out of descriptors: pause accepting instead of spinning */
			fprintf(stderr, "mock_upstream[%s]: accept: %s, pausing 100 ms\n",
				g.name, strerror(errno));
			ev_io_stop(EV_A_ &g.lio);
			ev_timer_set(&g.accept_retry, 0.1, 0.);
			ev_timer_start(EV_A_ &g.accept_retry);
		}
		return;
	}
}

static void on_accept_retry(EV_P_ ev_timer *w, int revents)
{
	ev_io_start(EV_A_ &g.lio);
}

static void on_signal(EV_P_ ev_signal *w, int revents)
{
	ev_break(EV_A_ EVBREAK_ALL);
}

/* "HOST:PORT", ":PORT" or "PORT"; HOST an IPv4 literal (default 127.0.0.1). */
static int listen_on(const char *spec)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	char host[64] = "127.0.0.1";
	const char *colon = strrchr(spec, ':'), *port = colon ? colon + 1 : spec;
	unsigned long long p;
	int fd, one = 1;

	if (colon && colon != spec) {
		if ((size_t)(colon - spec) >= sizeof(host))
			return -1;
		memcpy(host, spec, (size_t)(colon - spec));
		host[colon - spec] = '\0';
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	if (parse_u64(port, strlen(port), 65535, &p) < 0 ||
	    inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		fprintf(stderr, "mock_upstream: bad listen address '%s'\n", spec);
		return -1;
	}
	sa.sin_port = htons((uint16_t)p);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		goto fail_fd;
	fprintf(stderr, "mock_upstream[%s]: listening on %s:%u\n", g.name, host,
		ntohs(sa.sin_port));
	return fd;
fail_fd:
	close(fd);
fail:
	fprintf(stderr, "mock_upstream: listen %s: %s\n", spec, strerror(errno));
	return -1;
}

static void usage(FILE *f)
{
	fputs("usage: mock_upstream -l HOST:PORT [-r RECORD_DIR] [-k EXPECTED_KEY]"
	      " [-n NAME] [-p PREFIX] [-v]\n"
	      "A simulated Anthropic Messages API; see tests/tools/README.md.\n", f);
}

int main(int argc, char **argv)
{
	const char *laddr = NULL;
	struct stat sb;
	const char *q;
	int opt;

	g.name = "mock";
	g.prefix = "";
	while ((opt = getopt(argc, argv, "l:r:k:n:p:vh")) != -1) {
		switch (opt) {
		case 'p': g.prefix = optarg; break;
		case 'l': laddr = optarg; break;
		case 'r': g.rec_dir = optarg; break;
		case 'k': g.key = optarg; break;
		case 'n': g.name = optarg; break;
		case 'v': g.verbose = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!laddr || optind != argc) {
		usage(stderr);
		return 2;
	}
	for (q = g.name; *q; q++) {
		if ((unsigned char)*q < 0x21 || (unsigned char)*q > 0x7e) {
			fprintf(stderr, "mock_upstream: -n wants printable characters\n");
			return 2;
		}
	}
	if (g.key && !*g.key) {
		fprintf(stderr, "mock_upstream: -k wants a non-empty key\n");
		return 2;
	}
	if (g.rec_dir && (stat(g.rec_dir, &sb) < 0 || !S_ISDIR(sb.st_mode))) {
		fprintf(stderr, "mock_upstream: -r %s: not a directory\n", g.rec_dir);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	g.loop = ev_default_loop(0);
	if (!g.loop) {
		fprintf(stderr, "mock_upstream: no event loop\n");
		return 1;
	}
	g.lfd = listen_on(laddr);
	if (g.lfd < 0)
		return 1;
	ev_io_init(&g.lio, on_accept, g.lfd, EV_READ);
	ev_io_start(g.loop, &g.lio);
	ev_timer_init(&g.accept_retry, on_accept_retry, 0.1, 0.);
	ev_signal_init(&g.sigterm, on_signal, SIGTERM);
	ev_signal_init(&g.sigint, on_signal, SIGINT);
	ev_signal_start(g.loop, &g.sigterm);
	ev_signal_start(g.loop, &g.sigint);

	ev_run(g.loop, 0);

	while (g.conns) {            /* one connection per turn */
		struct conn *c = g.conns;

		conn_kill(c);
		conn_free(c);
	}
	ev_io_stop(g.loop, &g.lio);
	ev_timer_stop(g.loop, &g.accept_retry);
	ev_signal_stop(g.loop, &g.sigterm);
	ev_signal_stop(g.loop, &g.sigint);
	close(g.lfd);
	ev_loop_destroy(g.loop);
	fprintf(stderr, "mock_upstream[%s]: exiting\n", g.name);
	return 0;
}
