/*
 * dash: the operator dashboard on the admin listener.
 *
 * Routes (GET only; anything else under them gets 405 or 404):
 *   /dashboard, /dashboard/          the page (embedded, holds no data)
 *   /dashboard/dash.js, dash.css,    its script, style and icon (embedded)
 *   /dashboard/favicon.svg
 *   /dashboard/chart.js              Debian's Chart.js, one fixed file
 *   /api/admin/usage?since=&until=   sums per day, token, model, channel,
 *                                    and the budgets of the tokens
 *   /api/admin/events?count=         the last records of the events stream
 *
 * All of it answers 404 unless agent.admin_token is configured; the API
 * wants that credential ("Authorization: Bearer"). The page, script and
 * style are the same for everyone and hold no data, so they need none:
 * the script asks for the credential and sends it with each fetch.
 *
 * A request walks Redis in stages through the module's own rdb (never a
 * blocking call): ZRANGEBYSCORE of the days, SMEMBERS of each day's
 * tokens, models and channels, HGETALL of each counter hash, then the
 * budgets of the tokens (name index, record, spend counters). Every
 * command holds one count in `pending`; the stage moves on when it drops
 * to 0. A request that is answered early (timeout, Redis down) or closed
 * stays allocated until its last callback has come back, because rdb
 * calls each exactly once.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <realms/budget.h>
#include <realms/clock.h>
#include <realms/config.h>
#include <realms/dash.h>
#include <realms/limits.h>
#include <realms/log.h>
#include <realms/rdb.h>
#include <realms/record.h>
#include <realms/rkeys.h>
#include <realms/selfusage.h>
#include <realms/state.h>

/* The embedded page files (generated from agent/www by cmake/dash_assets.cmake). */
struct dash_asset {
	const char *path;
	const char *ctype;
	const unsigned char *data;
	size_t len;
};
extern const struct dash_asset dash_assets[];
extern const size_t dash_n_assets;

/* Debian's Chart.js, the first of these that exists: the UMD build of
 * Chart.js 4 (chart.umd.js; Debian 13 and later), then Chart.js 3's
 * (chart.min.js, Debian 12's 3.9.1) and its capitalised alias. Never
 * chart.js itself: in Chart.js 4 that is an ES module, which a classic
 * script tag cannot load. Fixed paths only: nothing from a request ever
 * becomes a file name. */
static const char *const chartjs_paths[] = {
	"/usr/share/javascript/chart.js/chart.umd.min.js",
	"/usr/share/javascript/chart.js/chart.umd.js",
	"/usr/share/javascript/chart.js/chart.min.js",
	"/usr/share/javascript/chart.js/Chart.min.js",
	NULL
};

/* Every answer's headers: no script but our own files, no framing, no
 * sniffing, nothing cached, no CORS header (other origins cannot read). */
#define DASH_SEC_HEADERS \
	"Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; " \
	"img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; " \
	"frame-ancestors 'none'\r\n" \
	"X-Content-Type-Options: nosniff\r\n" \
	"X-Frame-Options: DENY\r\n" \
	"Referrer-Policy: no-referrer\r\n" \
	"Cross-Origin-Resource-Policy: same-origin\r\n" \
	"Cache-Control: no-store\r\n"

/* ---------------------------------------------------------------------- */
/* Request heads (pure)                                                   */
/* ---------------------------------------------------------------------- */

static int ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	return alen == blen && strncasecmp(a, b, blen) == 0;
}

int dash_http_parse(const char *req, size_t len, struct dash_http *h)
{
	const char *p = req, *end = req + len, *sp, *eol, *t;

	memset(h, 0, sizeof(*h));
	sp = memchr(p, ' ', (size_t)(end - p));
	if (!sp)
		return -1;
	h->is_get = sp - p == 3 && memcmp(p, "GET", 3) == 0;
	p = sp + 1;
	eol = memchr(p, '\n', (size_t)(end - p));
	if (!eol)
		return -1;
	sp = memchr(p, ' ', (size_t)(eol - p));
	if (!sp || *p != '/' || eol - sp < 9 || memcmp(sp + 1, "HTTP/1.", 7) != 0)
		return -1;
	h->path = p;
	t = memchr(p, '?', (size_t)(sp - p));
	h->path_len = (size_t)((t ? t : sp) - p);
	if (t) {
		h->query = t + 1;
		h->query_len = (size_t)(sp - t - 1);
	}
	/* Headers: "Name: value" lines up to the empty one. */
	for (p = eol + 1; p < end; p = eol + 1) {
		const char *colon, *v, *ve;

		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		ve = eol > p && eol[-1] == '\r' ? eol - 1 : eol;
		if (ve == p)
			break;
		colon = memchr(p, ':', (size_t)(ve - p));
		if (!colon || !ieq(p, (size_t)(colon - p), "authorization"))
			continue;
		h->auth_count++;
		for (v = colon + 1; v < ve && (*v == ' ' || *v == '\t'); v++)
			;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		if (ve - v > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
			for (v += 7; v < ve && *v == ' '; v++)
				;
			h->bearer = v;
			h->bearer_len = (size_t)(ve - v);
		} else {
			h->bearer = NULL;
			h->bearer_len = 0;
		}
	}
	return 0;
}

static int under(const char *path, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && memcmp(path, prefix, n) == 0 && (len == n || path[n] == '/');
}

int dash_path_is_ours(const char *path, size_t len)
{
	return under(path, len, "/dashboard") || under(path, len, "/api/admin");
}

int dash_query_param(const char *q, size_t qlen, const char *name, const char **v,
                     size_t *vlen)
{
	const char *p = q, *end, *amp, *eq;
	size_t n = strlen(name);
	int found = 0;

	if (!q)
		return 0;
	end = q + qlen;
	while (p < end) {
		amp = memchr(p, '&', (size_t)(end - p));
		if (!amp)
			amp = end;
		eq = memchr(p, '=', (size_t)(amp - p));
		if ((size_t)((eq ? eq : amp) - p) == n && memcmp(p, name, n) == 0) {
			if (found)
				return -1;
			found = 1;
			*v = eq ? eq + 1 : amp;
			*vlen = (size_t)(amp - *v);
		}
		p = amp + 1;
	}
	return found;
}

int dash_token_ok(const char *got, size_t got_len, const char *want, size_t want_len)
{
	unsigned char a[SHA256_DIGEST_LENGTH], b[SHA256_DIGEST_LENGTH];
	int eq;

	if (!got || !want)
		return 0;
	SHA256((const unsigned char *)got, got_len, a);
	SHA256((const unsigned char *)want, want_len, b);
	eq = CRYPTO_memcmp(a, b, sizeof(a)) == 0;
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return eq;
}

int dash_json_str(char *out, size_t size, size_t *off, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = *off;

	if (o >= size)
		return -1;
	out[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == '<' || c == '>' || c == '&' || c == 0x7f) {
			if (size - o < 6)
				return -1;
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[c >> 4];
			out[o + 5] = hex[c & 15];
			o += 6;
		} else if (c == '"' || c == '\\') {
			if (size - o < 2)
				return -1;
			out[o++] = '\\';
			out[o++] = (char)c;
		} else {
			if (size - o < 1)
				return -1;
			out[o++] = (char)c;
		}
	}
	if (size - o < 1)
		return -1;
	out[o++] = '"';
	*off = o;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Output buffer                                                          */
/* ---------------------------------------------------------------------- */

/* A growing buffer with a sticky error: once a write fails (out of memory,
 * past DASH_OUT_MAX), the rest are no-ops and the answer becomes a 500. */
struct dbuf {
	char *p;
	size_t len, cap;
	int err;
};

static int dbuf_room(struct dbuf *b, size_t n)
{
	size_t cap;
	char *np;

	if (b->err)
		return -1;
	if (b->cap - b->len >= n)
		return 0;
	if (n > DASH_OUT_MAX - b->len) {
		b->err = 1;
		return -1;
	}
	cap = b->cap ? b->cap : 4096;
	while (cap - b->len < n)
		cap *= 2;
	if (cap > DASH_OUT_MAX)
		cap = DASH_OUT_MAX;
	np = realloc(b->p, cap);
	if (!np) {
		b->err = 1;
		return -1;
	}
	b->p = np;
	b->cap = cap;
	return 0;
}

static void dbuf_add(struct dbuf *b, const void *s, size_t n)
{
	if (dbuf_room(b, n) == 0) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

static void dbuf_puts(struct dbuf *b, const char *s)
{
	dbuf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void dbuf_printf(struct dbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (dbuf_room(b, 64) < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n >= b->cap - b->len) {
		if (dbuf_room(b, (size_t)n + 1) < 0)
			return;
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
	}
	if (n < 0)
		b->err = 1;
	else
		b->len += (size_t)n;
}

static void dbuf_jstr(struct dbuf *b, const char *s, size_t n)
{
	if (dbuf_room(b, 6 * n + 2) == 0 && dash_json_str(b->p, b->cap, &b->len, s, n) < 0)
		b->err = 1;
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

/* Counters of a day hash, in the order the API writes them. */
#define DASH_NF 11
static const char *const dash_fields[DASH_NF] = {
	RKEY_UF_REQUESTS, RKEY_UF_ERRORS, RKEY_UF_PARTIAL, RKEY_UF_ESTIMATED,
	RKEY_UF_INPUT, RKEY_UF_OUTPUT, RKEY_UF_CACHE_WRITE_5M, RKEY_UF_CACHE_WRITE_1H,
	RKEY_UF_CACHE_READ, RKEY_UF_WEB_SEARCH, RKEY_UF_COST_NUSD,
};

struct dsum {
	uint64_t v[DASH_NF];
};

struct dbucket {
	char *name;
	struct dsum s;
};

struct dgroup {
	struct dbucket *b;
	size_t n, cap;
};

/* The dimensions summed: the index sets and counter hashes of each. */
enum { DIM_DAY, DIM_TOKEN, DIM_MODEL, DIM_CHANNEL, DIM_N };
static const char *const dim_set[DIM_N] = {
	NULL, RKEY_USAGE_TOKENS_PREFIX, RKEY_USAGE_MODELS_PREFIX, RKEY_USAGE_CHANNELS_PREFIX,
};
static const char *const dim_hash[DIM_N] = {
	NULL, RKEY_USAGE_TOKEN_PREFIX, RKEY_USAGE_MODEL_PREFIX, RKEY_USAGE_CHANNEL_PREFIX,
};
static const char *const dim_json[DIM_N] = { "by_day", "by_token", "by_model", "by_channel" };

/* One token's budgets. */
struct dtok {
	const char *name;            /* borrowed from by[DIM_TOKEN] */
	int known;                   /* found in the name index */
	char *group, *status;
	int64_t expires;
	struct budget_limits own;
	int limits_bad;              /* stored limits unreadable */
	uint64_t spent[BUDGET_USD_KINDS];
};

enum dash_kind { DK_STATIC, DK_USAGE, DK_EVENTS };
enum dash_stage { DS_WAIT_UP, DS_USAGE, DS_BUDGETS, DS_EVENTS };

struct dreq {
	struct dreq *next, *prev;
	struct ev_loop *loop;
	int fd;
	ev_io wio;
	ev_timer tmr;                /* the whole request's deadline */
	ev_timer poll;               /* waiting for the Redis connection */
	double wait_end;
	enum dash_kind kind;
	enum dash_stage stage;
	int pending;                 /* Redis callbacks to come */
	int answered;                /* the answer is built (maybe being written) */
	int closed;                  /* fd closed: freed once pending is 0 */
	int status;                  /* sticky failure: its HTTP status, or 0 */
	char err[160];
	struct realms_config *cfg;   /* a reference, for the offset and group limits */
	int64_t now_ms;
	char since[RECORD_DAY_LEN + 1], until[RECORD_DAY_LEN + 1];
	unsigned count;              /* events asked for */
	size_t hashes;               /* HGETALLs sent */
	struct dsum total;
	struct dgroup by[DIM_N];
	struct dtok *toks;
	size_t ntoks;
	int toks_cut;
	struct dbuf body;            /* the events answer, built as it comes */
	char *head;                  /* the answer's head */
	size_t hlen;
	const char *bptr;            /* its body: borrowed (the page's files, a
	                                literal, q->body) or bown */
	size_t blen;
	char *bown;                  /* a body the request owns, or NULL */
	size_t sent;                 /* of head and body */
};

/* What a Redis callback is about. */
enum { W_DAYS, W_SET, W_HASH, W_TOKHASH, W_TOKREC, W_SPEND, W_SPEND5H, W_EVENTS };

struct dop {
	struct dreq *q;
	int what;
	int dim;                     /* W_SET, W_HASH; the window for W_SPEND */
	size_t idx;                  /* a token, for the budget ops */
	char day[RECORD_DAY_LEN + 1];
	char *name;                  /* W_HASH: the decoded name */
};

static struct {
	struct rdb *rdb;
	struct dreq *reqs;
	int nreqs;
	int stopping;
	char *chartjs;               /* read once, kept */
	size_t chartjs_len;
	int chartjs_tried;
	uint64_t refusal_logged_ms;
} D;

static void op_cb(struct rdb *r, redisReply *rep, void *arg);
static void step(struct dreq *q);

static void dgroup_free(struct dgroup *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->b[i].name);
	free(g->b);
	g->b = NULL;
	g->n = g->cap = 0;
}

/* The bucket of name (created empty), or NULL when out of memory. */
static struct dsum *dgroup_get(struct dgroup *g, const char *name)
{
	struct dbucket *nb;

	for (size_t i = 0; i < g->n; i++)
		if (strcmp(g->b[i].name, name) == 0)
			return &g->b[i].s;
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 16;

		nb = realloc(g->b, cap * sizeof(*nb));
		if (!nb)
			return NULL;
		g->b = nb;
		g->cap = cap;
	}
	g->b[g->n].name = strdup(name);
	if (!g->b[g->n].name)
		return NULL;
	memset(&g->b[g->n].s, 0, sizeof(g->b[g->n].s));
	return &g->b[g->n++].s;
}

static int bucket_cmp(const void *a, const void *b)
{
	return strcmp(((const struct dbucket *)a)->name, ((const struct dbucket *)b)->name);
}

static void dsum_add(struct dsum *to, const struct dsum *s)
{
	for (int i = 0; i < DASH_NF; i++)
		to->v[i] += s->v[i];
}

/* A counter as Redis holds it: plain decimal, anything else 0 (the
 * scripts only write integers). */
static uint64_t to_u64(const char *s, size_t n)
{
	uint64_t v = 0;

	if (n == 0 || n > 20)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

static void req_free(struct dreq *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		D.reqs = q->next;
	if (q->next)
		q->next->prev = q->prev;
	D.nreqs--;
	for (int k = 0; k < DIM_N; k++)
		dgroup_free(&q->by[k]);
	for (size_t i = 0; i < q->ntoks; i++) {
		free(q->toks[i].group);
		free(q->toks[i].status);
	}
	free(q->toks);
	free(q->body.p);
	free(q->head);
	free(q->bown);
	config_unref(q->cfg);
	free(q);
}

/* Closes the connection; the request itself goes when no callback is due. */
static void req_close(struct dreq *q)
{
	if (q->closed)
		return;
	q->closed = 1;
	ev_io_stop(q->loop, &q->wio);
	ev_timer_stop(q->loop, &q->tmr);
	ev_timer_stop(q->loop, &q->poll);
	close(q->fd);
	q->fd = -1;
}

static void req_close_maybe_free(struct dreq *q)
{
	req_close(q);
	if (q->pending == 0)
		req_free(q);
}

static void write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct dreq *q = io->data;

	while (q->sent < q->hlen + q->blen) {
		struct iovec iov[2];
		struct msghdr msg = { .msg_iov = iov };
		ssize_t n;

		if (q->sent < q->hlen) {
			iov[msg.msg_iovlen].iov_base = q->head + q->sent;
			iov[msg.msg_iovlen++].iov_len = q->hlen - q->sent;
		}
		if (q->blen) {
			size_t off = q->sent > q->hlen ? q->sent - q->hlen : 0;

			iov[msg.msg_iovlen].iov_base = (char *)q->bptr + off;
			iov[msg.msg_iovlen++].iov_len = q->blen - off;
		}
		n = sendmsg(q->fd, &msg, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;
		q->sent += (size_t)n;
	}
	req_close_maybe_free(q);
}

static const char *reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 422: return "Unprocessable Content";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	default: return "Internal Server Error";
	}
}

/* Answers status with body[0..blen) and starts writing it. The body is
 * borrowed: it must live as long as the request (the page's files, a
 * literal, q->body), unless `own` hands it over (freed with q). Never
 * copied, so a slow reader of Chart.js costs a head, not a copy. */
static void answer_body(struct dreq *q, int status, const char *ctype, const char *extra,
                        const void *body, size_t blen, int own)
{
	char head[1024];
	int hl;

	if (q->answered || q->closed) {
		if (own)
			free((void *)body);
		return;
	}
	if (own)
		q->bown = (char *)body;
	q->answered = 1;
	ev_timer_stop(q->loop, &q->poll);
	hl = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	              "Content-Length: %zu\r\n" DASH_SEC_HEADERS "%sConnection: close\r\n\r\n",
	              status, reason(status), ctype, blen, extra ? extra : "");
	q->head = malloc((size_t)hl);
	if (!q->head) {
		req_close_maybe_free(q);
		return;
	}
	memcpy(q->head, head, (size_t)hl);
	q->hlen = (size_t)hl;
	q->bptr = body;
	q->blen = blen;
	/* The deadline now bounds the writing too. */
	ev_timer_stop(q->loop, &q->tmr);
	ev_timer_set(&q->tmr, DASH_TIMEOUT_S, 0.);
	ev_timer_start(q->loop, &q->tmr);
	ev_io_start(q->loop, &q->wio);
}

static void answer(struct dreq *q, int status, const char *ctype, const char *extra,
                   const void *body, size_t blen)
{
	answer_body(q, status, ctype, extra, body, blen, 0);
}

/* {"error": {"status": 503, "message": "..."}} */
static void answer_error(struct dreq *q, int status, const char *msg, const char *extra)
{
	struct dbuf b = { 0 };

	dbuf_printf(&b, "{\"error\": {\"status\": %d, \"message\": ", status);
	dbuf_jstr(&b, msg, strlen(msg));
	dbuf_puts(&b, "}}\n");
	if (b.err) {
		free(b.p);
		answer(q, 500, "text/plain", NULL, "", 0);
	} else {
		answer_body(q, status, "application/json", extra, b.p, b.len, 1);
	}
}

__attribute__((format(printf, 3, 4)))
static void fail(struct dreq *q, int status, const char *fmt, ...)
{
	va_list ap;

	if (q->status)
		return;
	q->status = status;
	va_start(ap, fmt);
	vsnprintf(q->err, sizeof(q->err), fmt, ap);
	va_end(ap);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct dreq *q = t->data;

	if (q->answered) {
		req_close_maybe_free(q);   /* a reader too slow to take the answer */
		return;
	}
	fail(q, 504, "Redis did not answer within %.0f s", DASH_TIMEOUT_S);
	answer_error(q, q->status, q->err, NULL);
}

/* Sends one command for q; op is q's from here (freed by op_cb, or here
 * when the command cannot be sent). */
static int q_cmd(struct dreq *q, struct dop *op, int argc, const char **argv)
{
	size_t lens[6];

	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	op->q = q;
	if (rdb_command_argv(D.rdb, op_cb, op, argc, argv, lens) < 0) {
		free(op->name);
		free(op);
		fail(q, 503, "Redis is unreachable");
		return -1;
	}
	q->pending++;
	return 0;
}

static struct dop *op_new(int what)
{
	struct dop *op = calloc(1, sizeof(*op));

	if (op)
		op->what = what;
	return op;
}

/* ---------------------------------------------------------------------- */
/* /api/admin/usage                                                       */
/* ---------------------------------------------------------------------- */

static void on_days(struct dreq *q, const redisReply *rep)
{
	if (rep->type != REDIS_REPLY_ARRAY) {
		fail(q, 503, "Redis: %s is not a sorted set", RKEY_USAGE_DAYS);
		return;
	}
	for (size_t d = 0; d < rep->elements && !q->status; d++) {
		const redisReply *e = rep->element[d];

		if (e->type != REDIS_REPLY_STRING || e->len != RECORD_DAY_LEN)
			continue;
		for (int k = DIM_TOKEN; k < DIM_N && !q->status; k++) {
			char key[64];
			const char *argv[2] = { "SMEMBERS", key };
			struct dop *op = op_new(W_SET);

			if (!op) {
				fail(q, 500, "out of memory");
				return;
			}
			op->dim = k;
			memcpy(op->day, e->str, RECORD_DAY_LEN);
			snprintf(key, sizeof(key), "%s%s", dim_set[k], op->day);
			q_cmd(q, op, 2, argv);
		}
	}
}

static void on_set(struct dreq *q, const struct dop *op, const redisReply *rep)
{
	char name[300], *key = NULL;

	if (rep->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i < rep->elements && !q->status; i++) {
		const redisReply *e = rep->element[i];
		const char *argv[2] = { "HGETALL", NULL };
		struct dop *hop;

		if (e->type != REDIS_REPLY_STRING || e->len >= RECORD_SEG_MAX ||
		    record_seg_decode(e->str, e->len, name, sizeof(name)) < 0)
			continue;           /* not written by the agents: skipped */
		if (++q->hashes > DASH_HASHES_MAX) {
			fail(q, 422, "more than %d counter hashes in this range: narrow it "
			     "(since, until)", DASH_HASHES_MAX);
			return;
		}
		hop = op_new(W_HASH);
		if (!hop || !(hop->name = strdup(name)) ||
		    asprintf(&key, "%s%s:%s", dim_hash[op->dim], e->str, op->day) < 0) {
			if (hop)
				free(hop->name);
			free(hop);
			fail(q, 500, "out of memory");
			return;
		}
		hop->dim = op->dim;
		memcpy(hop->day, op->day, sizeof(hop->day));
		argv[1] = key;
		q_cmd(q, hop, 2, argv);
		free(key);
		key = NULL;
	}
}

static void on_hash(struct dreq *q, const struct dop *op, const redisReply *rep)
{
	struct dsum s = { { 0 } }, *b;
	char iso[11];

	if (rep->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		const redisReply *f = rep->element[i], *v = rep->element[i + 1];

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		for (int k = 0; k < DASH_NF; k++)
			if (f->len == strlen(dash_fields[k]) && !memcmp(f->str, dash_fields[k], f->len))
				s.v[k] = to_u64(v->str, v->len);
	}
	b = dgroup_get(&q->by[op->dim], op->name);
	if (!b) {
		fail(q, 500, "out of memory");
		return;
	}
	dsum_add(b, &s);
	/* Every record counts once in its token's hash: those make the
	 * total and the days (as realmsctl usage's total, from the combos). */
	if (op->dim == DIM_TOKEN) {
		dsum_add(&q->total, &s);
		snprintf(iso, sizeof(iso), "%.4s-%.2s-%.2s", op->day, op->day + 4, op->day + 6);
		b = dgroup_get(&q->by[DIM_DAY], iso);
		if (!b) {
			fail(q, 500, "out of memory");
			return;
		}
		dsum_add(b, &s);
	}
}

/* Sends the budget reads of token i: its name index entry (then its
 * record), and its spend counters of the current windows. */
static void budgets_send(struct dreq *q, size_t i)
{
	char seg[RECORD_SEG_MAX], key[RECORD_SEG_MAX + 64];
	struct budget_window w;

	if (record_seg_encode(q->toks[i].name, seg, sizeof(seg)) < 0)
		return;
	{
		const char *argv[3] = { "HGET", RKEY_TOKENS, q->toks[i].name };
		struct dop *op = op_new(W_TOKHASH);

		if (!op) {
			fail(q, 500, "out of memory");
			return;
		}
		op->idx = i;
		if (q_cmd(q, op, 3, argv) < 0)
			return;
	}
	for (int k = 0; k < BUDGET_USD_KINDS; k++) {
		const char *argv[2] = { k == BUDGET_USD_5H ? "HGETALL" : "GET", key };
		struct dop *op;

		if (budget_window((enum budget_kind)k, q->now_ms, q->cfg->tz_min, &w) < 0)
			continue;
		op = op_new(k == BUDGET_USD_5H ? W_SPEND5H : W_SPEND);
		if (!op) {
			fail(q, 500, "out of memory");
			return;
		}
		op->idx = i;
		op->dim = k;
		snprintf(key, sizeof(key), "%st:%s:%s", RKEY_SPEND_PREFIX, seg, w.id);
		if (q_cmd(q, op, 2, argv) < 0)
			return;
	}
}

static void budgets_start(struct dreq *q)
{
	const struct dgroup *g = &q->by[DIM_TOKEN];
	size_t n = 0;

	q->stage = DS_BUDGETS;
	q->toks = calloc(g->n ? g->n : 1, sizeof(*q->toks));
	if (!q->toks) {
		fail(q, 500, "out of memory");
		return;
	}
	for (size_t i = 0; i < g->n && !q->status; i++) {
		if (!g->b[i].name[0])
			continue;           /* requests refused before they had a token */
		if (n == DASH_TOKENS_MAX) {
			q->toks_cut = 1;
			break;
		}
		q->toks[n].name = g->b[i].name;
		q->ntoks = ++n;
		budgets_send(q, n - 1);
	}
}

static char *rep_strdup(const redisReply *r)
{
	return r && r->type == REDIS_REPLY_STRING ? strndup(r->str, r->len) : NULL;
}

static void on_tokhash(struct dreq *q, const struct dop *op, const redisReply *rep)
{
	char key[RKEY_TOKEN_KEY_MAX];
	const char *argv[2] = { "HGETALL", key };
	struct dop *rop;

	if (rep->type != REDIS_REPLY_STRING || rep->len != 64)
		return;                 /* not in the index (deleted): unknown */
	for (size_t i = 0; i < 64; i++)
		if (!((rep->str[i] >= '0' && rep->str[i] <= '9') ||
		      (rep->str[i] >= 'a' && rep->str[i] <= 'f')))
			return;
	rop = op_new(W_TOKREC);
	if (!rop) {
		fail(q, 500, "out of memory");
		return;
	}
	rop->idx = op->idx;
	snprintf(key, sizeof(key), "%s%.*s", RKEY_TOKEN_PREFIX, 64, rep->str);
	q_cmd(q, rop, 2, argv);
}

static void on_tokrec(struct dreq *q, const struct dop *op, const redisReply *rep)
{
	struct dtok *t = &q->toks[op->idx];

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0)
		return;
	t->known = 1;
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		const redisReply *f = rep->element[i], *v = rep->element[i + 1];

		if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (!strcmp(f->str, RKEY_TF_GROUP) && !t->group) {
			t->group = rep_strdup(v);
		} else if (!strcmp(f->str, RKEY_TF_STATUS) && !t->status) {
			t->status = rep_strdup(v);
		} else if (!strcmp(f->str, RKEY_TF_EXPIRES)) {
			t->expires = (int64_t)to_u64(v->str, v->len);
		} else if (!strcmp(f->str, RKEY_TF_LIMITS) && v->len &&
		           budget_limits_decode(v->str, v->len, &t->own) < 0) {
			t->limits_bad = 1;
		}
	}
}

static void on_spend(struct dreq *q, const struct dop *op, const redisReply *rep)
{
	struct dtok *t = &q->toks[op->idx];

	if (op->what == W_SPEND) {
		if (rep->type == REDIS_REPLY_STRING)
			t->spent[op->dim] = to_u64(rep->str, rep->len);
		return;
	}
	/* The rolling window: the minute buckets it still covers. */
	{
		int64_t reset;

		selfusage_read_5h(rep, q->now_ms, &t->spent[BUDGET_USD_5H], &reset);
	}
}

static void json_dsum(struct dbuf *b, const struct dsum *s)
{
	dbuf_puts(b, "{");
	for (int i = 0; i < DASH_NF; i++)
		dbuf_printf(b, "%s\"%s\": %" PRIu64, i ? ", " : "", dash_fields[i], s->v[i]);
	dbuf_puts(b, "}");
}

static void json_budget(struct dbuf *b, const struct dreq *q, const struct dtok *t)
{
	struct budget_limits eff;
	const char *group = t->group ? t->group : "default";
	const char *status = t->status ? t->status : "";
	int g = config_group_index(q->cfg, group, strlen(group)), first = 1;

	if (!t->known) {
		dbuf_puts(b, "{\"status\": \"unknown\"}");
		return;
	}
	if (!strcmp(status, RKEY_TS_ACTIVE) && t->expires && t->expires * 1000 <= q->now_ms)
		status = "expired";
	budget_limits_merge(&eff, &t->own, g >= 0 ? &q->cfg->group_limits[g] : NULL);
	dbuf_puts(b, "{\"group\": ");
	dbuf_jstr(b, group, strlen(group));
	dbuf_puts(b, ", \"status\": ");
	dbuf_jstr(b, status, strlen(status));
	dbuf_printf(b, ", \"limits_unreadable\": %s, \"limits\": {", t->limits_bad ? "true" : "false");
	for (int k = 0; k < BUDGET_KINDS; k++) {
		if (!(eff.set & (1u << k)))
			continue;
		dbuf_printf(b, "%s\"%s\": %" PRIu64, first ? "" : ", ",
		            budget_kind_name((enum budget_kind)k), eff.v[k]);
		first = 0;
	}
	dbuf_puts(b, "}, \"spent\": {");
	for (int k = 0; k < BUDGET_USD_KINDS; k++)
		dbuf_printf(b, "%s\"%s\": %" PRIu64, k ? ", " : "",
		            budget_kind_name((enum budget_kind)k), t->spent[k]);
	dbuf_puts(b, "}}");
}

static void usage_answer(struct dreq *q)
{
	struct dbuf b = { 0 };
	char a[11], c[11];

	for (int k = 0; k < DIM_N; k++)
		if (q->by[k].n)
			qsort(q->by[k].b, q->by[k].n, sizeof(*q->by[k].b), bucket_cmp);
	snprintf(a, sizeof(a), "%.4s-%.2s-%.2s", q->since, q->since + 4, q->since + 6);
	snprintf(c, sizeof(c), "%.4s-%.2s-%.2s", q->until, q->until + 4, q->until + 6);
	dbuf_printf(&b, "{\"since\": \"%s\", \"until\": \"%s\", \"now_ms\": %" PRId64
	            ", \"timezone_min\": %d,\n\"total\": ", a, c, q->now_ms, q->cfg->tz_min);
	json_dsum(&b, &q->total);
	for (int k = 0; k < DIM_N; k++) {
		dbuf_printf(&b, ",\n\"%s\": {", dim_json[k]);
		for (size_t i = 0; i < q->by[k].n; i++) {
			dbuf_puts(&b, i ? ",\n  " : "\n  ");
			dbuf_jstr(&b, q->by[k].b[i].name, strlen(q->by[k].b[i].name));
			dbuf_puts(&b, ": ");
			json_dsum(&b, &q->by[k].b[i].s);
		}
		dbuf_puts(&b, "}");
	}
	dbuf_puts(&b, ",\n\"budgets\": {");
	for (size_t i = 0; i < q->ntoks; i++) {
		dbuf_puts(&b, i ? ",\n  " : "\n  ");
		dbuf_jstr(&b, q->toks[i].name, strlen(q->toks[i].name));
		dbuf_puts(&b, ": ");
		json_budget(&b, q, &q->toks[i]);
	}
	dbuf_printf(&b, "},\n\"budgets_truncated\": %s}\n", q->toks_cut ? "true" : "false");
	if (b.err) {
		free(b.p);
		answer_error(q, 500, "the answer is too large", NULL);
	} else {
		answer_body(q, 200, "application/json", NULL, b.p, b.len, 1);
	}
}

/* ---------------------------------------------------------------------- */
/* /api/admin/events                                                      */
/* ---------------------------------------------------------------------- */

/* XREVRANGE's reply, newest first: [[id, [field, value, ...]], ...]. */
static void on_events(struct dreq *q, const redisReply *rep)
{
	struct dbuf *b = &q->body;
	size_t n = 0;

	if (rep->type != REDIS_REPLY_ARRAY) {
		fail(q, 503, "Redis: %s is not a stream", RKEY_USAGE_EVENTS);
		return;
	}
	dbuf_puts(b, "{\"events\": [");
	for (size_t i = 0; i < rep->elements; i++) {
		const redisReply *e = rep->element[i], *kv;

		if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
		    e->element[0]->type != REDIS_REPLY_STRING ||
		    e->element[1]->type != REDIS_REPLY_ARRAY)
			continue;
		kv = e->element[1];
		dbuf_puts(b, n++ ? ",\n  {\"id\": " : "\n  {\"id\": ");
		dbuf_jstr(b, e->element[0]->str, e->element[0]->len);
		dbuf_puts(b, ", \"fields\": {");
		for (size_t j = 0; j + 1 < kv->elements; j += 2) {
			const redisReply *f = kv->element[j], *v = kv->element[j + 1];

			if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
				continue;
			if (j)
				dbuf_puts(b, ", ");
			dbuf_jstr(b, f->str, f->len);
			dbuf_puts(b, ": ");
			dbuf_jstr(b, v->str, v->len);
		}
		dbuf_puts(b, "}}");
	}
	dbuf_printf(b, "], \"count\": %zu}\n", n);
}

/* ---------------------------------------------------------------------- */
/* Stages                                                                 */
/* ---------------------------------------------------------------------- */

static void op_cb(struct rdb *r, redisReply *rep, void *arg)
{
	struct dop *op = arg;
	struct dreq *q = op->q;

	if (!q->answered && !q->closed && !q->status) {
		if (!rep) {
			fail(q, 503, "Redis did not answer in time, or the connection was lost");
		} else if (rep->type == REDIS_REPLY_ERROR) {
			/* Its message holds no secret (NOPERM ... names a command or key). */
			fail(q, 503, "Redis: %.120s", rep->str);
		} else {
			switch (op->what) {
			case W_DAYS: on_days(q, rep); break;
			case W_SET: on_set(q, op, rep); break;
			case W_HASH: on_hash(q, op, rep); break;
			case W_TOKHASH: on_tokhash(q, op, rep); break;
			case W_TOKREC: on_tokrec(q, op, rep); break;
			case W_SPEND:
			case W_SPEND5H: on_spend(q, op, rep); break;
			case W_EVENTS: on_events(q, rep); break;
			}
		}
	}
	free(op->name);
	free(op);
	if (--q->pending == 0)
		step(q);
}

/* Runs when nothing is pending: the next stage, the answer, or the end. */
static void step(struct dreq *q)
{
	if (q->closed) {
		if (q->pending == 0)
			req_free(q);
		return;
	}
	if (q->answered)
		return;
	if (q->status) {
		answer_error(q, q->status, q->err, NULL);
		return;
	}
	switch (q->stage) {
	case DS_WAIT_UP:
		break;
	case DS_USAGE:
		budgets_start(q);
		if (q->pending == 0)
			step(q);            /* no token, or nothing could be sent */
		break;
	case DS_BUDGETS:
		usage_answer(q);
		break;
	case DS_EVENTS:
		if (q->body.err)
			answer_error(q, 500, "the answer is too large", NULL);
		else
			answer(q, 200, "application/json", NULL, q->body.p, q->body.len);
		break;
	}
}

/* The first command of the request's kind. */
static void begin(struct dreq *q)
{
	struct dop *op;
	int sent;

	if (q->kind == DK_USAGE) {
		const char *argv[4] = { "ZRANGEBYSCORE", RKEY_USAGE_DAYS, q->since, q->until };

		q->stage = DS_USAGE;
		op = op_new(W_DAYS);
		sent = op && q_cmd(q, op, 4, argv) == 0;
	} else {
		char count[16];
		const char *argv[6] = { "XREVRANGE", RKEY_USAGE_EVENTS, "+", "-", "COUNT", count };

		snprintf(count, sizeof(count), "%u", q->count);
		q->stage = DS_EVENTS;
		op = op_new(W_EVENTS);
		sent = op && q_cmd(q, op, 6, argv) == 0;
	}
	if (!sent) {
		if (!q->status)
			fail(q, 500, "out of memory");
		answer_error(q, q->status, q->err, NULL);
	}
}

/* While the Redis connection comes up (the first request after a start). */
static void poll_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct dreq *q = t->data;

	if (rdb_up(D.rdb)) {
		ev_timer_stop(loop, t);
		begin(q);
	} else if (ev_now(loop) >= q->wait_end) {
		ev_timer_stop(loop, t);
		fail(q, 503, "Redis is unreachable");
		answer_error(q, q->status, q->err, NULL);
	}
}

/* ---------------------------------------------------------------------- */
/* Routing                                                                */
/* ---------------------------------------------------------------------- */

/* Days from 1970-01-01 to YYYYMMDD (a valid date). */
static int64_t day_num(const char d[RECORD_DAY_LEN + 1])
{
	int y = (d[0] - '0') * 1000 + (d[1] - '0') * 100 + (d[2] - '0') * 10 + (d[3] - '0');
	unsigned m = (unsigned)((d[4] - '0') * 10 + (d[5] - '0'));
	unsigned dd = (unsigned)((d[6] - '0') * 10 + (d[7] - '0'));
	int era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + dd - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (int64_t)era * 146097 + (int64_t)doe - 719468;
}

/* A "YYYY-MM-DD" parameter into out; 0 absent (out untouched), 1 read,
 * -1 bad. */
static int day_param(const struct dash_http *h, const char *name, char out[RECORD_DAY_LEN + 1])
{
	const char *v;
	size_t n;
	char buf[11];
	int rc = dash_query_param(h->query, h->query_len, name, &v, &n);

	if (rc <= 0)
		return rc;
	if (n != 10)
		return -1;
	memcpy(buf, v, 10);
	buf[10] = '\0';
	return record_day_parse(buf, out) == 0 ? 1 : -1;
}

/* The API's parameters into q. Returns 0, or -1 with the 400's message. */
static int api_params(struct dreq *q, const struct dash_http *h, const char **why)
{
	if (q->kind == DK_EVENTS) {
		const char *v;
		size_t n;
		int rc = dash_query_param(h->query, h->query_len, "count", &v, &n);
		uint64_t c = rc == 1 ? to_u64(v, n) : DASH_EVENTS_DEFAULT;

		if (rc < 0 || c < 1 || c > DASH_EVENTS_MAX) {
			*why = "count must be 1 to " LIMIT_STR(DASH_EVENTS_MAX);
			return -1;
		}
		q->count = (unsigned)c;
		return 0;
	}
	/* As realmsctl usage: until today (UTC), since 30 days before. */
	if (record_day(q->now_ms, q->until) < 0 ||
	    record_day(q->now_ms - 30 * INT64_C(86400000), q->since) < 0) {
		*why = "the clock is outside the years 1970 to 9999";
		return -1;
	}
	if (day_param(h, "since", q->since) < 0 || day_param(h, "until", q->until) < 0) {
		*why = "since and until are days, YYYY-MM-DD, each given once";
		return -1;
	}
	if (strcmp(q->since, q->until) > 0) {
		*why = "since is after until";
		return -1;
	}
	if (day_num(q->until) - day_num(q->since) + 1 > DASH_DAYS_MAX) {
		*why = "the range is longer than " LIMIT_STR(DASH_DAYS_MAX) " days";
		return -1;
	}
	return 0;
}

/* Debian's Chart.js, read at the first request for it and kept (the file
 * is the package's, it changes only with an upgrade: a restart brings it).
 * Returns 0, or -1 when no candidate is a regular file of at most
 * DASH_CHARTJS_MAX bytes. */
static int chartjs_load(void)
{
	if (D.chartjs)
		return 0;
	if (D.chartjs_tried)
		return -1;
	D.chartjs_tried = 1;
	for (int i = 0; chartjs_paths[i]; i++) {
		struct stat st;
		size_t off = 0;
		char *buf;
		int fd = open(chartjs_paths[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);

		if (fd < 0)
			continue;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
		    (uint64_t)st.st_size > DASH_CHARTJS_MAX || !(buf = malloc((size_t)st.st_size))) {
			rlog(LOG_LVL_WARN, "dashboard: %s is not a regular file of at most %u "
			     "bytes; not served", chartjs_paths[i], DASH_CHARTJS_MAX);
			close(fd);
			continue;
		}
		while (off < (size_t)st.st_size) {
			ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		close(fd);
		if (off != (size_t)st.st_size) {
			free(buf);
			continue;
		}
		D.chartjs = buf;
		D.chartjs_len = off;
		return 0;
	}
	rlog(LOG_LVL_WARN, "dashboard: Chart.js not found (install Debian's libjs-chart.js); "
	     "the page shows tables only");
	return -1;
}

static void serve_static(struct dreq *q, const struct dash_http *h)
{
	if (h->path_len == strlen("/dashboard/chart.js") &&
	    !memcmp(h->path, "/dashboard/chart.js", h->path_len)) {
		if (chartjs_load() == 0)
			answer(q, 200, "text/javascript; charset=utf-8", NULL, D.chartjs,
			       D.chartjs_len);
		else
			answer(q, 404, "text/plain", NULL, "not found\n", 10);
		return;
	}
	for (size_t i = 0; i < dash_n_assets; i++) {
		const struct dash_asset *a = &dash_assets[i];

		if (h->path_len == strlen(a->path) && !memcmp(h->path, a->path, h->path_len)) {
			char ctype[64];

			snprintf(ctype, sizeof(ctype), "%s%s", a->ctype,
			         strncmp(a->ctype, "text/", 5) ? "" : "; charset=utf-8");
			answer(q, 200, ctype, NULL, a->data, a->len);
			return;
		}
	}
	answer(q, 404, "text/plain", NULL, "not found\n", 10);
}

/* A wrong credential: one line a minute at most, whatever the rate. */
static void log_refusal(const char *what)
{
	uint64_t now = clock_mono_ms();

	if (D.refusal_logged_ms && now - D.refusal_logged_ms < 60000)
		return;
	D.refusal_logged_ms = now;
	rlog(LOG_LVL_WARN, "admin API: %s (logged at most once a minute)", what);
}

static void route(struct dreq *q, const struct dash_http *h)
{
	const struct realms_config *cfg = q->cfg;
	const char *why;

	if (!cfg || !cfg->agent.admin_token) {
		/* Off: as if nothing were here. */
		answer(q, 404, "text/plain", NULL, "not found\n", 10);
		return;
	}
	if (!h->is_get) {
		answer(q, 405, "text/plain", "Allow: GET\r\n", "method not allowed\n", 19);
		return;
	}
	if (under(h->path, h->path_len, "/dashboard")) {
		q->kind = DK_STATIC;
		serve_static(q, h);
		return;
	}
	if (h->path_len == strlen("/api/admin/usage") &&
	    !memcmp(h->path, "/api/admin/usage", h->path_len))
		q->kind = DK_USAGE;
	else if (h->path_len == strlen("/api/admin/events") &&
	         !memcmp(h->path, "/api/admin/events", h->path_len))
		q->kind = DK_EVENTS;
	else {
		answer_error(q, 404, "no such admin API", NULL);
		return;
	}
	if (h->auth_count > 1) {
		answer_error(q, 400, "more than one Authorization header", NULL);
		return;
	}
	if (!h->bearer) {
		answer_error(q, 401, "the admin credential is missing (Authorization: Bearer)",
		             "WWW-Authenticate: Bearer realm=\"realms admin\"\r\n");
		return;
	}
	if (!dash_token_ok(h->bearer, h->bearer_len, cfg->agent.admin_token,
	                   cfg->agent.admin_token_len)) {
		log_refusal("a request with a wrong admin credential was refused");
		answer_error(q, 403, "the admin credential is wrong", NULL);
		return;
	}
	if (api_params(q, h, &why) < 0) {
		answer_error(q, 400, why, NULL);
		return;
	}
	if (D.nreqs > DASH_REQS_MAX) {
		answer_error(q, 503, "too many admin API requests at once; retry", NULL);
		return;
	}
	if (!D.rdb)
		D.rdb = rdb_new(q->loop, state_redis(cfg), "dashboard", NULL, NULL);
	if (!D.rdb) {
		answer_error(q, 500, "out of memory", NULL);
		return;
	}
	if (rdb_up(D.rdb)) {
		begin(q);
		return;
	}
	q->stage = DS_WAIT_UP;
	q->wait_end = ev_now(q->loop) + DASH_WAIT_UP_S;
	ev_timer_set(&q->poll, 0.05, 0.05);
	ev_timer_start(q->loop, &q->poll);
}

int dash_claim(struct ev_loop *loop, int fd, const char *req, size_t len)
{
	struct dash_http h;
	struct dreq *q;

	if (D.stopping || dash_http_parse(req, len, &h) < 0 ||
	    !dash_path_is_ours(h.path, h.path_len))
		return 0;
	q = calloc(1, sizeof(*q));
	if (!q) {
		close(fd);
		return 1;
	}
	q->loop = loop;
	q->fd = fd;
	q->cfg = state_config();
	q->now_ms = clock_unix_s() * 1000;
	ev_io_init(&q->wio, write_cb, fd, EV_WRITE);
	ev_timer_init(&q->tmr, timeout_cb, DASH_TIMEOUT_S, 0.);
	ev_init(&q->poll, poll_cb);
	q->wio.data = q->tmr.data = q->poll.data = q;
	q->next = D.reqs;
	if (D.reqs)
		D.reqs->prev = q;
	D.reqs = q;
	D.nreqs++;
	ev_timer_start(loop, &q->tmr);
	route(q, &h);
	return 1;
}

void dash_start(struct ev_loop *loop)
{
	struct realms_config *cfg = state_config();

	D.stopping = 0;
	if (cfg && cfg->agent.admin_token && !D.rdb)
		D.rdb = rdb_new(loop, state_redis(cfg), "dashboard", NULL, NULL);
	config_unref(cfg);
}

void dash_stop(struct ev_loop *loop)
{
	struct dreq *q, *next;

	D.stopping = 1;
	for (q = D.reqs; q; q = q->next)
		req_close(q);
	/* Pending callbacks fire now, with NULL; each request is freed at its last. */
	if (D.rdb) {
		rdb_free(D.rdb);
		D.rdb = NULL;
	}
	for (q = D.reqs; q; q = next) {
		next = q->next;
		if (q->pending == 0)
			req_free(q);
	}
	free(D.chartjs);
	D.chartjs = NULL;
	D.chartjs_len = 0;
	D.chartjs_tried = 0;
}
