/*
 * The response mirror listener: frames from lua-shim's realms-tap in,
 * acknowledgements out. See mirror.h for the wire format.
 *
 * Body bytes are never buffered here: each D frame's payload is handed to
 * the request's meter as it arrives, so a long stream costs the meter's
 * state, not its size. A connection's requests live in a small hash table
 * keyed by request id; a request ends with its E frame, after which its
 * record goes to records_commit() and, once durable, its id is
 * acknowledged on the same connection if that connection still exists.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include <realms/clock.h>
#include <realms/health.h>
#include <realms/limits.h>
#include <realms/log.h>
#include <realms/meter.h>
#include <realms/mirror.h>
#include <realms/records.h>
#include <realms/worker.h>

#define MIRROR_BUCKETS       256
#define MIRROR_READ_CHUNK    65536

static struct {
	_Atomic unsigned long long conns, requests, bytes, acked, proto_errors, outcomes,
	                           gaps, skipped;
	_Atomic unsigned long long partial[USAGE_PARTIAL_KINDS];
} mstats;

void mirror_stats_get(struct mirror_stats *o)
{
	o->conns = atomic_load(&mstats.conns);
	o->requests = atomic_load(&mstats.requests);
	o->bytes = atomic_load(&mstats.bytes);
	o->acked = atomic_load(&mstats.acked);
	o->proto_errors = atomic_load(&mstats.proto_errors);
	o->outcomes = atomic_load(&mstats.outcomes);
	o->gaps = atomic_load(&mstats.gaps);
	o->skipped = atomic_load(&mstats.skipped);
	for (int i = 0; i < USAGE_PARTIAL_KINDS; i++)
		o->partial[i] = atomic_load(&mstats.partial[i]);
}

struct mreq {
	char rid[MIRROR_RID_MAX + 1];
	struct meter *meter;
	struct usage_record rec;     /* meta from B, completed at E */
	struct mreq *next;
};

enum mstate { MS_HDR, MS_META, MS_DATA, MS_SKIP };

struct mconn {
	int fd;
	struct worker *w;
	struct ev_loop *loop;
	ev_io rio, wio;
	unsigned int refs;           /* the socket (1) + commits in flight */
	int dead;

	enum mstate st;
	char hdr[MIRROR_HDR_MAX];
	size_t hdr_len;
	char kind;
	char rid[MIRROR_RID_MAX + 1];
	char server[MIRROR_SERVER_MAX + 1];   /* O frames */
	size_t remain;               /* payload bytes still to come */
	char meta[MIRROR_META_MAX];
	size_t meta_len;
	struct mreq *cur;            /* D frame target */

	char *out;
	size_t out_len, out_cap;
	struct mreq *bucket[MIRROR_BUCKETS];
	struct mconn **list;         /* this worker's list head, for stopping */
	struct mconn *prev, *next;
};

/* Per worker: its mirror connections, closed when the worker stops (the
 * shim sends what was not acknowledged to the next agent). */
static int mirror_module = -1;

static void *mirror_worker_init(struct worker *w, struct ev_loop *loop)
{
	return calloc(1, sizeof(struct mconn *));
}

static void conn_close(struct mconn *c);

static void mirror_worker_fini(struct worker *w, void *ctx)
{
	struct mconn **head = ctx;

	while (head && *head)
		conn_close(*head);
	free(head);
}

static const struct worker_module mirror_worker_module = {
	.name = "mirror",
	.init = mirror_worker_init,
	.fini = mirror_worker_fini,
};

static void mirror_adopt(struct worker *w, int fd);

/* Mirror connections do not hold a stopping worker: the tap resends what
 * was not acknowledged, so they are simply closed with the worker (fini). */
static const struct worker_kind mirror_kind = {
	.name = "mirror",
	.adopt = mirror_adopt,
};

int mirror_init(void)
{
	mirror_module = worker_module_register(&mirror_worker_module);
	if (mirror_module < 0)
		return -1;
	return worker_kind_register(WORKER_CONN_MIRROR, &mirror_kind);
}

/* ---------------------------------------------------------------------- */
/* Requests                                                               */
/* ---------------------------------------------------------------------- */

static unsigned int rid_hash(const char *rid)
{
	unsigned int h = 2166136261u;

	for (; *rid; rid++)
		h = (h ^ (unsigned char)*rid) * 16777619u;
	return h % MIRROR_BUCKETS;
}

static struct mreq **req_slot(struct mconn *c, const char *rid)
{
	struct mreq **pp = &c->bucket[rid_hash(rid)];

	while (*pp && strcmp((*pp)->rid, rid) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void req_free(struct mreq *r)
{
	meter_free(r->meter);
	free(r);
}

/* Copies "value" of "key=value" lines into the record. */
/* A duration from the shim: negative (two clocks a few ms apart) is 0. */
static uint64_t ms_field(const char *v)
{
	long long x = strtoll(v, NULL, 10);

	return x > 0 ? (uint64_t)x : 0;
}

/* The value of `key` in meta lines "key=value\n" (the first line naming
 * it), and its length in *vlen; NULL if no line names it. */
static const char *meta_value(const char *meta, size_t len, const char *key, size_t *vlen)
{
	const char *p = meta, *end = meta + len;
	size_t klen = strlen(key);

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		if ((size_t)(le - p) > klen && !memcmp(p, key, klen) && p[klen] == '=') {
			*vlen = (size_t)(le - p) - klen - 1;
			return p + klen + 1;
		}
		p = le + 1;
	}
	return NULL;
}

/* The whole non-negative decimal number `key` holds in meta lines, or -1
 * (absent, empty, or not such a number). */
static long long meta_num(const char *meta, size_t len, const char *key)
{
	char num[24], *e;
	size_t vlen;
	const char *v = meta_value(meta, len, key, &vlen);
	long long x;

	if (!v || !vlen || vlen >= sizeof(num))
		return -1;
	memcpy(num, v, vlen);
	num[vlen] = '\0';
	x = strtoll(num, &e, 10);
	return *e || x < 0 ? -1 : x;
}

static void meta_apply(struct usage_record *rec, char *meta, size_t len,
                       int *ended, int *lost)
{
	char *line = meta, *end = meta + len;

	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		char *eq;

		if (!nl)
			nl = end;
		*nl = '\0';
		eq = strchr(line, '=');
		if (eq) {
			const char *k = line, *v = eq + 1;

			*eq = '\0';
#define COPY(f) snprintf(rec->f, sizeof(rec->f), "%s", v)
			if (!strcmp(k, "token")) COPY(token);
			else if (!strcmp(k, "token_id")) COPY(token_id);
			else if (!strcmp(k, "group")) COPY(group);
			else if (!strcmp(k, "model")) COPY(model);
			else if (!strcmp(k, "server")) COPY(server);
			else if (!strcmp(k, "status")) rec->status = atoi(v);
			else if (!strcmp(k, "ts_ms")) rec->ts_ms = strtoll(v, NULL, 10);
			else if (!strcmp(k, "ttfb_ms")) rec->ttfb_ms = ms_field(v);
			else if (!strcmp(k, "duration_ms")) rec->duration_ms = ms_field(v);
			else if (!strcmp(k, "reason") && ended) *ended = !strcmp(v, "complete");
			else if (!strcmp(k, "lost") && lost) *lost = atoi(v) != 0;
#undef COPY
		}
		line = nl + 1;
	}
}

/* ---------------------------------------------------------------------- */
/* Connection                                                             */
/* ---------------------------------------------------------------------- */

static void conn_update(struct mconn *c);

static void conn_unref(struct mconn *c)
{
	if (--c->refs)
		return;
	free(c->out);
	free(c);
}

static void conn_close(struct mconn *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	if (c->prev)
		c->prev->next = c->next;
	else if (c->list)
		*c->list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ev_io_stop(c->loop, &c->rio);
	ev_io_stop(c->loop, &c->wio);
	close(c->fd);
	for (int i = 0; i < MIRROR_BUCKETS; i++)
		while (c->bucket[i]) {
			struct mreq *r = c->bucket[i];

			/* Unfinished: the shim sends it again on its next connection. */
			c->bucket[i] = r->next;
			req_free(r);
		}
	conn_unref(c);
}

static int out_put(struct mconn *c, const char *s, size_t n)
{
	if (c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap * 2 : 4096;
		char *nb;

		while (cap < c->out_len + n)
			cap *= 2;
		nb = realloc(c->out, cap);
		if (!nb)
			return -1;
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, s, n);
	c->out_len += n;
	return 0;
}

struct commit_ctx {
	struct mconn *c;
	char rid[MIRROR_RID_MAX + 1];
};

static void on_committed(void *arg, int ok)
{
	struct commit_ctx *cc = arg;
	struct mconn *c = cc->c;
	char line[MIRROR_RID_MAX + 4];
	int n;

	if (!c->dead) {
		if (ok) {
			n = snprintf(line, sizeof(line), "A %s\n", cc->rid);
			if (out_put(c, line, (size_t)n) == 0)
				atomic_fetch_add(&mstats.acked, 1);
			conn_update(c);
		} else {
			/* Neither Redis nor the spool took it: make the shim send it
			 * again later rather than acknowledge a loss. */
			rlog(LOG_LVL_ERR, "mirror: record %s could not be kept; "
			     "dropping the connection so the shim resends it", cc->rid);
			conn_close(c);
		}
	}
	conn_unref(c);
	free(cc);
}

static void finish_request(struct mconn *c, struct mreq *r)
{
	int ended = 0, lost = 0;
	struct commit_ctx *cc;

	meta_apply(&r->rec, c->meta, c->meta_len, &ended, &lost);
	meter_finish(r->meter, ended, lost, &r->rec);
	atomic_fetch_add(&mstats.requests, 1);
	if ((unsigned)r->rec.partial < USAGE_PARTIAL_KINDS)
		atomic_fetch_add(&mstats.partial[r->rec.partial], 1);
	cc = malloc(sizeof(*cc));
	if (!cc) {
		conn_close(c);
		return;
	}
	cc->c = c;
	memcpy(cc->rid, r->rid, sizeof(cc->rid));
	c->refs++;
	records_commit(c->w, &r->rec, on_committed, cc);
}

/* An O frame: the result of one attempt on a credential, for its breaker.
 * Meta lines: status=<HTTP status, 0 for no response>, retry_after=<s>. */
static void outcome_apply(struct mconn *c)
{
	struct health_outcome o = { 0, -1 };
	long long v;

	if ((v = meta_num(c->meta, c->meta_len, "status")) >= 0 && v < 1000)
		o.status = (int)v;
	if ((v = meta_num(c->meta, c->meta_len, "retry_after")) >= 0)
		o.retry_after_s = v;
	atomic_fetch_add(&mstats.outcomes, 1);
	health_report(c->server, strlen(c->server), &o, clock_mono_ms());
}

/* A whole B, E or O frame, or the start of a D frame. Returns -1 on a
 * protocol error. */
static int frame_meta_done(struct mconn *c)
{
	struct mreq **pp, *r;

	if (c->kind == 'O') {
		outcome_apply(c);
		return 0;
	}
	pp = req_slot(c, c->rid);
	r = *pp;

	if (c->kind == 'B') {
		if (r) {
			/* Sent again on this connection: start over. */
			*pp = r->next;
			req_free(r);
		}
		r = calloc(1, sizeof(*r));
		if (!r)
			return -1;
		memcpy(r->rid, c->rid, sizeof(r->rid));
		memcpy(r->rec.req_id, c->rid, sizeof(r->rid));
		{
			/* The meta must be read before the meter picks its parser. */
			char ctype[128];
			size_t vlen = 0;
			const char *v = meta_value(c->meta, c->meta_len, "ctype", &vlen);

			snprintf(ctype, sizeof(ctype), "%.*s", v ? (int)vlen : 0, v ? v : "");
			r->meter = meter_new(ctype);
		}
		if (!r->meter) {
			free(r);
			return -1;
		}
		meta_apply(&r->rec, c->meta, c->meta_len, NULL, NULL);
		r->next = c->bucket[rid_hash(c->rid)];
		c->bucket[rid_hash(c->rid)] = r;
		return 0;
	}
	if (c->kind == 'G') {
		/* skipped=<n>: body bytes the tap left out here. */
		long long n = meta_num(c->meta, c->meta_len, "skipped");

		if (n < 0)
			n = 0;
		if (r) {
			meter_gap(r->meter, (unsigned long long)n);
			atomic_fetch_add(&mstats.gaps, 1);
			atomic_fetch_add(&mstats.skipped, (unsigned long long)n);
		}
		return 0;
	}
	if (c->kind == 'E') {
		if (!r)
			return 0;   /* its B went to an earlier connection */
		*pp = r->next;
		finish_request(c, r);
		req_free(r);
		return 0;
	}
	return -1;
}

/* Parses "K rid n" (or "S seq") in c->hdr. */
static int frame_header(struct mconn *c)
{
	char *sp1, *sp2, *end;
	unsigned long long n;

	c->hdr[c->hdr_len] = '\0';
	if (c->hdr_len < 3 || c->hdr[1] != ' ')
		return -1;
	c->kind = c->hdr[0];
	if (c->kind == 'S') {
		char line[MIRROR_HDR_MAX + 2];
		int k = snprintf(line, sizeof(line), "%s\n", c->hdr);

		c->st = MS_HDR;
		return out_put(c, line, (size_t)k);
	}
	sp1 = c->hdr + 1;
	sp2 = strchr(sp1 + 1, ' ');
	if (!sp2 || sp2 == sp1 + 1)
		return -1;
	if (c->kind == 'O') {
		if ((size_t)(sp2 - sp1 - 1) > MIRROR_SERVER_MAX)
			return -1;
		memcpy(c->server, sp1 + 1, (size_t)(sp2 - sp1 - 1));
		c->server[sp2 - sp1 - 1] = '\0';
	} else {
		if ((size_t)(sp2 - sp1 - 1) > MIRROR_RID_MAX)
			return -1;
		memcpy(c->rid, sp1 + 1, (size_t)(sp2 - sp1 - 1));
		c->rid[sp2 - sp1 - 1] = '\0';
	}
	n = strtoull(sp2 + 1, &end, 10);
	if (*end || end == sp2 + 1 || n > MIRROR_FRAME_MAX)
		return -1;
	c->remain = (size_t)n;
	c->meta_len = 0;
	switch (c->kind) {
	case 'B':
	case 'E':
	case 'G':
	case 'O':
		if (n > MIRROR_META_MAX)
			return -1;
		c->st = MS_META;
		break;
	case 'D':
		c->cur = *req_slot(c, c->rid);
		c->st = c->cur ? MS_DATA : MS_SKIP;
		break;
	default:
		return -1;
	}
	if (c->remain == 0 && c->st == MS_META) {
		c->st = MS_HDR;
		return frame_meta_done(c);
	}
	if (c->remain == 0)
		c->st = MS_HDR;
	return 0;
}

/* Consumes bytes; returns -1 on a protocol error. */
static int consume(struct mconn *c, const char *p, size_t n)
{
	while (n) {
		size_t k;

		switch (c->st) {
		case MS_HDR: {
			const char *nl = memchr(p, '\n', n);

			k = nl ? (size_t)(nl - p) : n;
			if (c->hdr_len + k >= MIRROR_HDR_MAX)
				return -1;
			memcpy(c->hdr + c->hdr_len, p, k);
			c->hdr_len += k;
			p += k;
			n -= k;
			if (nl) {
				p++;
				n--;
				if (frame_header(c) < 0)
					return -1;
				c->hdr_len = 0;
			}
			break;
		}
		case MS_META:
			k = n < c->remain ? n : c->remain;
			memcpy(c->meta + c->meta_len, p, k);
			c->meta_len += k;
			c->remain -= k;
			p += k;
			n -= k;
			if (!c->remain) {
				c->st = MS_HDR;
				if (frame_meta_done(c) < 0)
					return -1;
				if (c->dead)
					return 0;
			}
			break;
		case MS_DATA:
		case MS_SKIP:
			k = n < c->remain ? n : c->remain;
			if (c->st == MS_DATA) {
				meter_feed(c->cur->meter, p, k);
				atomic_fetch_add(&mstats.bytes, k);
			}
			c->remain -= k;
			p += k;
			n -= k;
			if (!c->remain)
				c->st = MS_HDR;
			break;
		}
	}
	return 0;
}

static void conn_update(struct mconn *c)
{
	ssize_t n;

	while (c->out_len) {
		n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
		if (n > 0) {
			memmove(c->out, c->out + n, c->out_len - (size_t)n);
			c->out_len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		conn_close(c);
		return;
	}
	if (c->out_len)
		ev_io_start(c->loop, &c->wio);
	else
		ev_io_stop(c->loop, &c->wio);
	if (c->out_len < MIRROR_OUT_HIGH)
		ev_io_start(c->loop, &c->rio);
	else
		ev_io_stop(c->loop, &c->rio);
}

static void read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	struct mconn *c = io->data;
	char buf[MIRROR_READ_CHUNK];
	ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	c->refs++;   /* commits may complete synchronously and close c */
	if (consume(c, buf, (size_t)n) < 0 && !c->dead) {
		atomic_fetch_add(&mstats.proto_errors, 1);
		rlog(LOG_LVL_WARN, "mirror: protocol error; closing the connection");
		conn_close(c);
	}
	if (!c->dead)
		conn_update(c);
	conn_unref(c);
}

static void write_cb(struct ev_loop *loop, ev_io *io, int revents)
{
	conn_update(io->data);
}

static void mirror_adopt(struct worker *w, int fd)
{
	struct mconn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->w = w;
	c->loop = worker_loop(w);
	c->refs = 1;
	ev_io_init(&c->rio, read_cb, fd, EV_READ);
	ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
	c->rio.data = c->wio.data = c;
	ev_io_start(c->loop, &c->rio);
	c->list = worker_module_ctx(w, mirror_module);
	if (c->list) {
		c->next = *c->list;
		if (c->next)
			c->next->prev = c;
		*c->list = c;
	}
	atomic_fetch_add(&mstats.conns, 1);
}
