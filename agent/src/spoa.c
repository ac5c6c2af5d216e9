/*
 * The agent side of SPOP 2.0: HELLO negotiation, NOTIFY dispatch to message
 * handlers, ACKs in any order (pipelining), DISCONNECT both ways.
 *
 * No system calls here: bytes come in through the input buffer and go out
 * through the output buffer; worker.c moves them to and from sockets.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <realms/limits.h>
#include <realms/log.h>
#include <realms/spoa.h>
#include <realms/spop.h>

/* ---------------------------------------------------------------------- */
/* Counters                                                               */
/* ---------------------------------------------------------------------- */

static struct {
	_Atomic uint64_t conns, hellos, healthchecks, notifies, acks, messages,
		unknown_messages, proto_errors, ack_overflows;
} stats;

#define STAT_INC(f) atomic_fetch_add_explicit(&stats.f, 1, memory_order_relaxed)

void spoa_stats_get(struct spoa_stats *o)
{
	o->conns = atomic_load_explicit(&stats.conns, memory_order_relaxed);
	o->hellos = atomic_load_explicit(&stats.hellos, memory_order_relaxed);
	o->healthchecks = atomic_load_explicit(&stats.healthchecks, memory_order_relaxed);
	o->notifies = atomic_load_explicit(&stats.notifies, memory_order_relaxed);
	o->acks = atomic_load_explicit(&stats.acks, memory_order_relaxed);
	o->messages = atomic_load_explicit(&stats.messages, memory_order_relaxed);
	o->unknown_messages = atomic_load_explicit(&stats.unknown_messages, memory_order_relaxed);
	o->proto_errors = atomic_load_explicit(&stats.proto_errors, memory_order_relaxed);
	o->ack_overflows = atomic_load_explicit(&stats.ack_overflows, memory_order_relaxed);
}

/* ---------------------------------------------------------------------- */
/* Handler registry                                                       */
/* ---------------------------------------------------------------------- */

static struct {
	const char *name;
	size_t len;
	spoa_handler_fn fn;
} handlers[SPOA_MAX_HANDLERS];
static int nb_handlers;

int spoa_register(const char *name, spoa_handler_fn fn)
{
	if (nb_handlers == SPOA_MAX_HANDLERS || spoa_handler_find(name, strlen(name)))
		return -1;
	handlers[nb_handlers].name = name;
	handlers[nb_handlers].len = strlen(name);
	handlers[nb_handlers].fn = fn;
	nb_handlers++;
	return 0;
}

spoa_handler_fn spoa_handler_find(const char *name, size_t len)
{
	for (int i = 0; i < nb_handlers; i++)
		if (handlers[i].len == len && memcmp(handlers[i].name, name, len) == 0)
			return handlers[i].fn;
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Buffers                                                                */
/* ---------------------------------------------------------------------- */

/* Makes room for `need` more bytes after len, growing up to `ceiling`.
 * Consumed bytes at the front are reclaimed first. Returns 0 or -1. */
static int buf_reserve(struct spoa_buf *b, size_t need, size_t ceiling)
{
	size_t ncap;
	uint8_t *nd;

	if (b->off && b->len + need > b->cap) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->len + need <= b->cap)
		return 0;
	if (b->len + need > ceiling)
		return -1;
	ncap = b->cap ? b->cap : SPOA_BUF_INIT;
	while (ncap < b->len + need)
		ncap *= 2;
	if (ncap > ceiling)
		ncap = ceiling;
	nd = realloc(b->data, ncap);
	if (!nd)
		return -1;
	b->data = nd;
	b->cap = ncap;
	return 0;
}

static void buf_free(struct spoa_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---------------------------------------------------------------------- */
/* Connections                                                            */
/* ---------------------------------------------------------------------- */

struct spoa_conn *spoa_conn_new(uint32_t our_max, const struct spoa_conn_ops *ops,
                                void *owner, void *worker, uint64_t id)
{
	struct spoa_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->state = SPOA_ST_HELLO;
	c->max_frame = our_max;
	c->refs = 1;
	c->ops = ops;
	c->owner = owner;
	c->worker = worker;
	c->id = id;
	STAT_INC(conns);
	return c;
}

static void conn_unref(struct spoa_conn *c)
{
	if (--c->refs)
		return;
	if (c->ops && c->ops->released)
		c->ops->released(c);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

void spoa_conn_close(struct spoa_conn *c)
{
	c->flags |= SPOA_FL_DEAD;
	conn_unref(c);
}

uint8_t *spoa_conn_rspace(struct spoa_conn *c, size_t *room)
{
	/* Read in chunks of at least 16 KB when the frame size allows, so a
	 * 64 KB body prefix arrives in few reads. */
	size_t want = 16384;
	size_t ceiling = (size_t)c->max_frame + 4;

	if (c->in.len - c->in.off >= ceiling)
		return NULL;   /* a whole frame is in: process it first */
	if (want > ceiling - (c->in.len - c->in.off))
		want = ceiling - (c->in.len - c->in.off);
	if (buf_reserve(&c->in, want, ceiling) < 0 &&
	    buf_reserve(&c->in, 1, ceiling) < 0)
		return NULL;
	*room = c->in.cap - c->in.len;
	return c->in.data + c->in.len;
}

void spoa_conn_rcommit(struct spoa_conn *c, size_t n)
{
	c->in.len += n;
}

const uint8_t *spoa_conn_wdata(const struct spoa_conn *c, size_t *len)
{
	*len = c->out.len - c->out.off;
	return c->out.data ? c->out.data + c->out.off : NULL;
}

void spoa_conn_wconsume(struct spoa_conn *c, size_t n)
{
	c->out.off += n;
	if (c->out.off == c->out.len)
		c->out.off = c->out.len = 0;
}

int spoa_conn_can_read(const struct spoa_conn *c)
{
	return c->state != SPOA_ST_CLOSING &&
	       c->inflight < SPOA_MAX_INFLIGHT &&
	       c->out.len - c->out.off < SPOA_WBUF_HIGH;
}

/* Queues a frame built by `build` (one of the spop_build_* helpers' shape). */
static int out_put_frame(struct spoa_conn *c, const uint8_t *frame, size_t len)
{
	if (buf_reserve(&c->out, len, SPOA_OUT_CEILING) < 0)
		return -1;
	memcpy(c->out.data + c->out.len, frame, len);
	c->out.len += len;
	return 0;
}

void spoa_conn_disconnect(struct spoa_conn *c, enum spop_err status,
                          const char *message)
{
	uint8_t frame[512];
	ssize_t n;

	if (c->state == SPOA_ST_CLOSING)
		return;
	if (status != SPOP_ERR_NONE) {
		STAT_INC(proto_errors);
		rlog(LOG_LVL_WARN, "spop conn %llu: disconnecting, status %u (%s): %s",
		     (unsigned long long)c->id, status, spop_err_str(status), message);
	} else {
		rlog(LOG_LVL_DEBUG, "spop conn %llu: disconnecting: %s",
		     (unsigned long long)c->id, message);
	}
	n = spop_build_agent_disconnect(frame, sizeof(frame), status, message);
	if (n > 0)
		out_put_frame(c, frame, (size_t)n);
	c->state = SPOA_ST_CLOSING;
}

/* ---------------------------------------------------------------------- */
/* Requests and ACKs                                                      */
/* ---------------------------------------------------------------------- */

/* Room left for actions in this connection's ACK frames. */
static size_t req_act_ceiling(const struct spoa_req *req)
{
	return req->conn->max_frame + 4 - SPOA_ACK_HDR_MAX;
}

/* Encodes one action with `encode` into the request's action buffer,
 * growing it as needed up to the frame ceiling. */
static int req_put_action(struct spoa_req *req, enum spop_act_type type,
                          enum spop_scope scope, const char *name,
                          const struct spop_data *value)
{
	size_t nlen = strlen(name);
	/* type, nb-args, scope, name (varint + bytes), value (type + varint + bytes) */
	size_t need = 3 + 10 + nlen + 1 + 10 + 16 +
	              (value && (value->type == SPOP_DATA_T_STR ||
	                         value->type == SPOP_DATA_T_BIN) ? value->u.str.len : 0);
	struct spop_wr w;

	if (buf_reserve(&req->act, need, req_act_ceiling(req)) < 0)
		goto overflow;
	spop_wr_init(&w, req->act.data + req->act.len, req->act.cap - req->act.len);
	if (type == SPOP_ACT_T_SET_VAR)
		spop_put_set_var(&w, scope, name, nlen, value);
	else
		spop_put_unset_var(&w, scope, name, nlen);
	if (w.overflow)
		goto overflow;
	req->act.len += (size_t)(w.p - w.start);
	return 0;
overflow:
	if (!req->overflow)
		rlog(LOG_LVL_ERR, "spop conn %llu: ACK for stream %llu exceeds the frame size; "
		     "dropping var %s", (unsigned long long)req->conn->id,
		     (unsigned long long)req->stream_id, name);
	req->overflow = 1;
	STAT_INC(ack_overflows);
	return -1;
}

int spoa_set_var(struct spoa_req *req, enum spop_scope scope, const char *name,
                 const struct spop_data *value)
{
	return req_put_action(req, SPOP_ACT_T_SET_VAR, scope, name, value);
}

int spoa_set_str(struct spoa_req *req, enum spop_scope scope, const char *name,
                 const char *s, size_t len)
{
	struct spop_data d = spop_str(s, len);

	return req_put_action(req, SPOP_ACT_T_SET_VAR, scope, name, &d);
}

int spoa_set_int(struct spoa_req *req, enum spop_scope scope, const char *name,
                 int64_t v)
{
	struct spop_data d = spop_sint(v);

	return req_put_action(req, SPOP_ACT_T_SET_VAR, scope, name, &d);
}

int spoa_unset_var(struct spoa_req *req, enum spop_scope scope, const char *name)
{
	return req_put_action(req, SPOP_ACT_T_UNSET_VAR, scope, name, NULL);
}

void spoa_req_hold(struct spoa_req *req)
{
	req->holds++;
}

void *spoa_req_worker(const struct spoa_req *req)
{
	return req->conn->worker;
}

/* Queues the ACK of a finished request. Returns 0 or -1 (no memory). */
static int req_send_ack(struct spoa_req *req)
{
	struct spoa_conn *c = req->conn;
	size_t need = SPOA_ACK_HDR_MAX + req->act.len;
	struct spop_wr w;
	ssize_t n;

	if (buf_reserve(&c->out, need, SPOA_OUT_CEILING) < 0)
		return -1;
	spop_wr_init(&w, c->out.data + c->out.len, c->out.cap - c->out.len);
	spop_frame_begin(&w, SPOP_FRM_T_AGENT_ACK, SPOP_FRM_FL_FIN,
	                 req->stream_id, req->frame_id);
	if (!w.overflow && (size_t)(w.end - w.p) >= req->act.len) {
		if (req->act.len)
			memcpy(w.p, req->act.data, req->act.len);
		w.p += req->act.len;
	} else {
		w.overflow = 1;
	}
	n = spop_frame_end(&w);
	if (n < 0)
		return -1;
	c->out.len += (size_t)n;
	STAT_INC(acks);
	return 0;
}

/* Ends a request: sends its ACK unless the connection is gone, frees it.
 * `async` says whether this happens outside spoa_conn_process() (then the
 * I/O layer must be told there is something to write). */
static void req_finish(struct spoa_req *req, int async)
{
	struct spoa_conn *c = req->conn;

	if (!(c->flags & SPOA_FL_DEAD) && c->state != SPOA_ST_CLOSING) {
		if (req_send_ack(req) < 0)
			spoa_conn_disconnect(c, SPOP_ERR_RES, "out of memory queueing an ACK");
		if (async && c->ops && c->ops->want_write)
			c->ops->want_write(c);
	}
	c->inflight--;
	buf_free(&req->act);
	free(req);
	conn_unref(c);
}

void spoa_req_release(struct spoa_req *req)
{
	if (--req->holds == 0)
		req_finish(req, 1);
}

/* ---------------------------------------------------------------------- */
/* Frame handling                                                         */
/* ---------------------------------------------------------------------- */

static void handle_hello(struct spoa_conn *c, const struct spop_frame *f)
{
	struct spop_hello h;
	enum spop_err err;
	uint8_t frame[256];
	ssize_t n;

	if (f->type != SPOP_FRM_T_HAPROXY_HELLO) {
		spoa_conn_disconnect(c, SPOP_ERR_INVALID, "expected HAPROXY-HELLO");
		return;
	}
	if (!(f->flags & SPOP_FRM_FL_FIN)) {
		spoa_conn_disconnect(c, SPOP_ERR_FRAG_NOT_SUPP, "fragmented HELLO");
		return;
	}
	if (spop_hello_parse(f->payload, f->payload_len, &h, &err) < 0) {
		spoa_conn_disconnect(c, err, spop_err_str(err));
		return;
	}
	if (h.max_frame_size < c->max_frame)
		c->max_frame = h.max_frame_size;
	n = spop_build_agent_hello(frame, sizeof(frame), c->max_frame);
	if (n < 0 || out_put_frame(c, frame, (size_t)n) < 0) {
		spoa_conn_disconnect(c, SPOP_ERR_RES, "cannot build AGENT-HELLO");
		return;
	}
	if (h.healthcheck) {
		/* Health check: answer and close, no DISCONNECT needed. */
		STAT_INC(healthchecks);
		c->flags |= SPOA_FL_HEALTHCHK;
		c->state = SPOA_ST_CLOSING;
		return;
	}
	STAT_INC(hellos);
	c->state = SPOA_ST_READY;
	rlog(LOG_LVL_DEBUG, "spop conn %llu: hello, max-frame-size %u%s",
	     (unsigned long long)c->id, c->max_frame,
	     h.pipelining ? ", pipelining" : "");
}

/* The handler contract: a handler answers SPOA_HDL_DONE when it holds
 * nothing on return (a hold taken and released within the call counts as
 * done), SPOA_HDL_PENDING when it left at least one hold, to be released
 * later from a callback. `before` and `after` are the request's holds
 * around the call (the dispatcher's own keeps them above 0). An answer the
 * holds contradict is a bug of the agent, not of the peer: a pending
 * answer without a hold, or a hold the handler forgot to announce, would
 * lose or delay the ACK silently. Like HAProxy's BUG_ON, it is logged and
 * the process aborts, in every build. */
static void hdl_contract_check(const struct spoa_conn *c, const struct spop_msg *msg,
                               enum spoa_hdl_ret ret, unsigned int before,
                               unsigned int after)
{
	int ok = ret == SPOA_HDL_DONE ? after == before :
	         ret == SPOA_HDL_PENDING ? after > before : 0;

	if (ok)
		return;
	rlog(LOG_LVL_ERR, "BUG: spop conn %llu: handler of message '%.*s' answered %s "
	     "but left %d holds; aborting", (unsigned long long)c->id,
	     (int)(msg->name.len > 64 ? 64 : msg->name.len), msg->name.ptr,
	     ret == SPOA_HDL_DONE ? "done" : ret == SPOA_HDL_PENDING ? "pending" : "an unknown value",
	     (int)after - (int)before);
	abort();
}

static void handle_notify(struct spoa_conn *c, const struct spop_frame *f)
{
	const uint8_t *p = f->payload, *end = f->payload + f->payload_len;
	struct spoa_req *req;
	struct spop_msg *msg;
	int r;

	if (!(f->flags & SPOP_FRM_FL_FIN)) {
		/* We never announce "fragmentation". */
		spoa_conn_disconnect(c, SPOP_ERR_FRAG_NOT_SUPP,
		                     "fragmented NOTIFY (fragmentation is not supported)");
		return;
	}
	if (f->stream_id == 0 && f->frame_id == 0) {
		spoa_conn_disconnect(c, SPOP_ERR_INVALID, "NOTIFY without stream and frame ids");
		return;
	}
	req = calloc(1, sizeof(*req));
	msg = malloc(sizeof(*msg));
	if (!req || !msg) {
		free(req);
		free(msg);
		spoa_conn_disconnect(c, SPOP_ERR_RES, "out of memory");
		return;
	}
	STAT_INC(notifies);
	req->conn = c;
	req->stream_id = f->stream_id;
	req->frame_id = f->frame_id;
	req->holds = 1;           /* the dispatcher's own, released below */
	c->refs++;
	c->inflight++;

	while ((r = spop_msg_next(&p, end, msg)) == 1) {
		spoa_handler_fn fn = spoa_handler_find(msg->name.ptr, msg->name.len);
		unsigned int before;
		enum spoa_hdl_ret ret;

		STAT_INC(messages);
		if (!fn) {
			STAT_INC(unknown_messages);
			rlog(LOG_LVL_DEBUG, "spop conn %llu: no handler for message '%.*s'",
			     (unsigned long long)c->id, (int)(msg->name.len > 64 ? 64 : msg->name.len),
			     msg->name.ptr);
			continue;
		}
		/* Two statements: the order in which a call's arguments are
		 * evaluated is unspecified (gcc reads them right to left), and
		 * the holds must be read after the handler returns. */
		before = req->holds;
		ret = fn(req, msg);
		hdl_contract_check(c, msg, ret, before, req->holds);
	}
	free(msg);
	if (r < 0) {
		spoa_conn_disconnect(c, SPOP_ERR_INVALID, "malformed NOTIFY payload");
		/* Handlers still holding it finish into a closing connection. */
	}
	if (--req->holds == 0)
		req_finish(req, 0);
}

static void handle_haproxy_disconnect(struct spoa_conn *c, const struct spop_frame *f)
{
	uint32_t status = SPOP_ERR_UNKNOWN;
	struct spop_slice msg = { "", 0 };

	if (spop_disconnect_parse(f->payload, f->payload_len, &status, &msg) < 0) {
		spoa_conn_disconnect(c, SPOP_ERR_INVALID, "malformed HAPROXY-DISCONNECT");
		return;
	}
	/* Status 2 (timeout) is HAProxy closing an idle connection after the
	 * .spoe file's "timeout idle": routine, not a warning. */
	rlog(status == SPOP_ERR_NONE ? LOG_LVL_DEBUG :
	     status == SPOP_ERR_TOUT ? LOG_LVL_INFO : LOG_LVL_WARN,
	     "spop conn %llu: HAProxy disconnects, status %u (%s): %.*s",
	     (unsigned long long)c->id, status, spop_err_str(status),
	     (int)(msg.len > 200 ? 200 : msg.len), msg.ptr);
	/* Answer with our own DISCONNECT, status normal, then close. */
	spoa_conn_disconnect(c, SPOP_ERR_NONE, "bye");
}

static void handle_frame(struct spoa_conn *c, const struct spop_frame *f)
{
	if (c->state == SPOA_ST_HELLO) {
		handle_hello(c, f);
		return;
	}
	switch (f->type) {
	case SPOP_FRM_T_HAPROXY_NOTIFY:
		handle_notify(c, f);
		break;
	case SPOP_FRM_T_HAPROXY_DISCON:
		handle_haproxy_disconnect(c, f);
		break;
	case SPOP_FRM_T_UNSET:
		spoa_conn_disconnect(c, SPOP_ERR_FRAG_NOT_SUPP,
		                     "fragment received (fragmentation is not supported)");
		break;
	case SPOP_FRM_T_HAPROXY_HELLO:
		spoa_conn_disconnect(c, SPOP_ERR_INVALID, "second HAPROXY-HELLO");
		break;
	default:
		/* SPOE.txt: unknown frames may be silently skipped. */
		break;
	}
}

/* Disconnects a draining connection once nothing is left to answer. */
static void drain_check(struct spoa_conn *c)
{
	if ((c->flags & SPOA_FL_DRAINING) && c->state != SPOA_ST_CLOSING &&
	    c->inflight == 0 && c->in.len == c->in.off)
		spoa_conn_disconnect(c, SPOP_ERR_NONE, "agent is shutting down");
}

enum spoa_io spoa_conn_process(struct spoa_conn *c)
{
	struct spop_frame f;
	enum spop_err err;
	ssize_t n;

	while (c->state != SPOA_ST_CLOSING && c->inflight < SPOA_MAX_INFLIGHT &&
	       c->out.len - c->out.off < SPOA_WBUF_HIGH) {
		n = spop_frame_parse(c->in.data + c->in.off, c->in.len - c->in.off,
		                     c->max_frame, &f, &err);
		if (n == 0)
			break;
		if (n < 0) {
			spoa_conn_disconnect(c, err, err == SPOP_ERR_TOO_BIG ?
			                     "frame length above max-frame-size" :
			                     "malformed frame");
			break;
		}
		handle_frame(c, &f);
		c->in.off += (size_t)n;
	}
	if (c->in.off == c->in.len)
		c->in.off = c->in.len = 0;
	drain_check(c);
	return c->state == SPOA_ST_CLOSING ? SPOA_IO_CLOSE : SPOA_IO_CONTINUE;
}

enum spoa_io spoa_conn_drain(struct spoa_conn *c)
{
	c->flags |= SPOA_FL_DRAINING;
	if (c->state == SPOA_ST_HELLO) {
		spoa_conn_disconnect(c, SPOP_ERR_NONE, "agent is shutting down");
		return SPOA_IO_CLOSE;
	}
	return spoa_conn_process(c);
}
