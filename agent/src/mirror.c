/*
 * The response mirror listener: frames from lua-shim's tap in,
 * acknowledgements out. I/O: sockets and libev watchers on the worker
 * thread that adopted the connection. The wire format and its decoder are
 * mframe.h / mframe.c (pure); this file is the shell around them: the
 * socket, the connection's table of open requests, the meters, the
 * commits and the acknowledgements.
 *
 * Body bytes are never buffered here: each D frame's payload is handed to
 * the request's meter as it arrives, so a long stream costs the meter's
 * state, not its size. Only an incomplete header or meta frame waits in
 * the connection's input buffer (less than MFRAME_PENDING_MAX bytes). A
 * connection's requests live in a small hash table keyed by request id,
 * at most MIRROR_OPEN_MAX of them; a request ends with its E frame, after
 * which its record goes to commit_record() and, once durable, its id is
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

#include <realms/admit.h>
#include <realms/clock.h>
#include <realms/commit.h>
#include <realms/health.h>
#include <realms/limits.h>
#include <realms/log.h>
#include <realms/meter.h>
#include <realms/mframe.h>
#include <realms/mirror.h>
#include <realms/worker.h>

_Static_assert(MIRROR_IN_SIZE >= 2 * MFRAME_PENDING_MAX,
               "a read must always find room behind an incomplete frame");
_Static_assert(sizeof(((struct usage_record *)0)->req_id) == MIRROR_RID_MAX + 1,
               "a request id fits the record's idempotency key");

static struct {
	_Atomic unsigned long long conns, requests, bytes, acked, proto_errors, outcomes, releases,
	                           gaps, skipped;
	_Atomic unsigned long long partial[USAGE_PARTIAL_KINDS];
	_Atomic unsigned long long estimated;
} mstats;

void mirror_stats_get(struct mirror_stats *o)
{
	o->conns = atomic_load(&mstats.conns);
	o->requests = atomic_load(&mstats.requests);
	o->bytes = atomic_load(&mstats.bytes);
	o->acked = atomic_load(&mstats.acked);
	o->proto_errors = atomic_load(&mstats.proto_errors);
	o->outcomes = atomic_load(&mstats.outcomes);
	o->releases = atomic_load(&mstats.releases);
	o->gaps = atomic_load(&mstats.gaps);
	o->skipped = atomic_load(&mstats.skipped);
	for (int i = 0; i < USAGE_PARTIAL_KINDS; i++)
		o->partial[i] = atomic_load(&mstats.partial[i]);
	o->estimated = atomic_load(&mstats.estimated);
}

/* One request open on a connection: B seen, E not yet. */
struct mreq {
	char rid[MIRROR_RID_MAX + 1];
	struct meter *meter;
	struct usage_record rec;     /* meta from B, completed at E */
	struct mreq *next;
};

struct mconn {
	int fd;
	struct worker *w;
	struct ev_loop *loop;
	ev_io rio, wio;
	unsigned int refs;           /* the socket (1) + commits in flight */
	int dead;
	const char *why;             /* why consume() failed, for the log */

	struct mreq *bucket[MIRROR_BUCKETS];
	unsigned int open;           /* requests in bucket[] */
	struct mframe_rd rd;         /* the D payload being streamed */
	struct mreq *cur;            /* and its request, NULL to skip it */

	char *out;
	size_t out_len, out_cap;
	struct mconn **list;         /* this worker's list head, for stopping */
	struct mconn *prev, *next;

	size_t in_len;               /* bytes in in[]: an incomplete frame,
	                                then what the last read brought */
	char in[MIRROR_IN_SIZE];
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
	if (mirror_module < 0 || admit_register() < 0)
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

/* Takes the request *pp out of the table; the caller frees it. */
static struct mreq *req_unlink(struct mconn *c, struct mreq **pp)
{
	struct mreq *r = *pp;

	*pp = r->next;
	c->open--;
	return r;
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
			/* Unfinished: the shim sends it again on its next connection. */
			req_free(req_unlink(c, &c->bucket[i]));
		}
	c->cur = NULL;
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

/* ---------------------------------------------------------------------- */
/* Frames                                                                 */
/* ---------------------------------------------------------------------- */

/* Each returns 0, or -1 with c->why set to close the connection. Any of
 * them may close c (a commit that fails at once): the caller checks
 * c->dead. */

/* B: the request opens (again, if it was open: it starts over). */
static int on_begin(struct mconn *c, const char *rid, const struct mframe *f)
{
	struct mreq **pp = req_slot(c, rid), *r;
	struct mframe_str ct = { "", 0 };
	char ctype[128];

	if (*pp)
		req_free(req_unlink(c, pp));
	if (c->open >= MIRROR_OPEN_MAX) {
		c->why = "too many requests open on one connection (MIRROR_OPEN_MAX); "
		         "the tap sends them again on its next one";
		return -1;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		c->why = "out of memory";
		return -1;
	}
	memcpy(r->rid, rid, sizeof(r->rid));
	memcpy(r->rec.req_id, rid, sizeof(r->rec.req_id));
	/* The meta must be read before the meter picks its parser. */
	mframe_meta_str(f->payload, f->len, "ctype", &ct);
	snprintf(ctype, sizeof(ctype), "%.*s", (int)ct.len, ct.ptr);
	r->meter = meter_new(ctype);
	if (!r->meter) {
		free(r);
		c->why = "out of memory";
		return -1;
	}
	mframe_meta_record(f->payload, f->len, &r->rec);
	r->next = c->bucket[rid_hash(rid)];
	c->bucket[rid_hash(rid)] = r;
	c->open++;
	return 0;
}

/* D: its payload follows in runs (on_body), for this request's meter. */
static int on_data(struct mconn *c, const char *rid)
{
	c->cur = *req_slot(c, rid);
	return 0;
}

/* A run of the D payload: to the meter as it comes, never buffered. */
static int on_body(struct mconn *c, const struct mframe *f)
{
	if (c->cur) {
		meter_feed(c->cur->meter, f->payload, f->len);
		atomic_fetch_add(&mstats.bytes, f->len);
	}
	return 0;
}

/* G: body bytes the tap left out here. */
static int on_gap(struct mconn *c, const char *rid, const struct mframe *f)
{
	struct mreq *r = *req_slot(c, rid);
	uint64_t n = mframe_gap_skipped(f->payload, f->len);

	if (r) {
		meter_gap(r->meter, n);
		atomic_fetch_add(&mstats.gaps, 1);
		atomic_fetch_add(&mstats.skipped, n);
	}
	return 0;
}

/* E: the record is finished and committed; the request leaves the table. */
static int on_end(struct mconn *c, const char *rid, const struct mframe *f)
{
	struct mreq **pp = req_slot(c, rid), *r;
	struct commit_ctx *cc;
	struct mframe_end e;

	if (!*pp)
		return 0;   /* its B went to an earlier connection */
	r = req_unlink(c, pp);
	mframe_meta_record(f->payload, f->len, &r->rec);
	mframe_end_get(f->payload, f->len, &e);
	meter_finish(r->meter, e.complete, e.lost, &r->rec);
	atomic_fetch_add(&mstats.requests, 1);
	if ((unsigned)r->rec.partial < USAGE_PARTIAL_KINDS)
		atomic_fetch_add(&mstats.partial[r->rec.partial], 1);
	if (r->rec.u.flags & USAGE_FL_ESTIMATED)
		atomic_fetch_add(&mstats.estimated, 1);
	cc = malloc(sizeof(*cc));
	if (!cc) {
		conn_close(c);
		req_free(r);
		return 0;
	}
	cc->c = c;
	memcpy(cc->rid, r->rid, sizeof(cc->rid));
	c->refs++;
	/* The record is copied: r goes now, cc when the commit answers. */
	commit_record(c->w, &r->rec, on_committed, cc);
	req_free(r);
	return 0;
}

/* O: the result of one attempt on a credential, for its breaker; o.rid
 * (the attempt's request) makes a request that fails twice on one
 * credential count once. */
static int on_outcome(struct mconn *c, const struct mframe *f)
{
	struct mframe_outcome o;
	struct health_outcome ho;

	mframe_outcome_get(f, &o);
	ho.status = o.status;
	ho.retry_after_s = o.retry_after_s;
	ho.rid = o.rid.ptr;
	ho.rid_len = o.rid.len;
	atomic_fetch_add(&mstats.outcomes, 1);
	health_report(o.server.ptr, o.server.len, &ho, clock_mono_ms());
	return 0;
}

/* X: a request admitted under limits ended without an answer (no
 * record will settle it): drop its reservation and in-flight slot. */
static int on_release(struct mconn *c, const char *rid, const struct mframe *f)
{
	struct mframe_str tok, grp;
	char token[MIRROR_META_NAME_MAX + 1], group[MIRROR_META_NAME_MAX + 1];

	mframe_release_get(f, &tok, &grp);
	if (!tok.len || tok.len > MIRROR_META_NAME_MAX || grp.len > MIRROR_META_NAME_MAX)
		return 0;       /* not a request of ours: ignored */
	memcpy(token, tok.ptr, tok.len);
	token[tok.len] = '\0';
	memcpy(group, grp.ptr, grp.len);
	group[grp.len] = '\0';
	atomic_fetch_add(&mstats.releases, 1);
	admit_release(c->w, token, group, rid);
	return 0;
}

/* S: echoed after the acknowledgements already queued. */
static int on_sync(struct mconn *c, const char *seq)
{
	char line[MIRROR_SEQ_MAX + 4];
	int n = snprintf(line, sizeof(line), "S %s\n", seq);

	if (out_put(c, line, (size_t)n) < 0) {
		c->why = "out of memory";
		return -1;
	}
	return 0;
}

static int frame_apply(struct mconn *c, const struct mframe *f)
{
	/* The id as a C string (request ids key the table); any id is
	 * shorter than its header, a body run has none. */
	char id[MIRROR_HDR_MAX];

	id[0] = '\0';
	if (f->id.len) {
		memcpy(id, f->id.ptr, f->id.len);
		id[f->id.len] = '\0';
	}
	switch (f->kind) {
	case MFRAME_BEGIN:
		return on_begin(c, id, f);
	case MFRAME_DATA:
		return on_data(c, id);
	case MFRAME_GAP:
		return on_gap(c, id, f);
	case MFRAME_END:
		return on_end(c, id, f);
	case MFRAME_OUTCOME:
		return on_outcome(c, f);
	case MFRAME_RELEASE:
		return on_release(c, id, f);
	case MFRAME_SYNC:
		return on_sync(c, id);
	case MFRAME_BODY:
		return on_body(c, f);
	}
	c->why = "protocol error";
	return -1;
}

/* Handles every whole frame in c->in, streams D payloads to their meters,
 * and keeps an incomplete frame at the start of c->in for the next read.
 * Returns 0 (c may have been closed: see c->dead), or -1 with c->why set
 * to close the connection. */
static int consume(struct mconn *c)
{
	const char *p = c->in, *end = c->in + c->in_len;
	struct mframe f;
	int r = 0;

	while (!c->dead && (r = mframe_next(&c->rd, &p, end, &f)) > 0)
		if (frame_apply(c, &f) < 0)
			return -1;
	if (r < 0) {
		c->why = "protocol error";
		return -1;
	}
	if (c->dead)
		return 0;
	/* Less than MFRAME_PENDING_MAX bytes (mframe_next's 0). */
	c->in_len = (size_t)(end - p);
	memmove(c->in, p, c->in_len);
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
	ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c);
		return;
	}
	c->in_len += (size_t)n;
	c->refs++;   /* commits may complete synchronously and close c */
	if (consume(c) < 0 && !c->dead) {
		atomic_fetch_add(&mstats.proto_errors, 1);
		rlog(LOG_LVL_WARN, "mirror: %s; closing the connection", c->why);
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
