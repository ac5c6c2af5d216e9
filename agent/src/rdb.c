/*
 * rdb: asynchronous Redis client with connect and command timeouts.
 *
 * hiredis 0.14 (Debian 12) has neither, so each command carries its own
 * ev_timer. When the timer fires first, the caller is answered NULL and the
 * operation is marked answered; hiredis still calls us later (with the late
 * reply or with NULL when the context goes), and only then is the operation
 * freed. After RDB_MAX_TIMEOUTS timeouts in a row the server is considered
 * stalled and the connection is dropped and made again.
 *
 * With a password, every connection logs in first: AUTH is the first
 * command on the wire, and the connection counts as up (commands accepted,
 * SUBSCRIBE re-sent, on_connect run) only once Redis answered it OK. The
 * connect deadline covers the AUTH too. hiredis 0.14 has no AUTH helper;
 * the command is sent like any other.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <ev.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libev.h>

#include <realms/config.h>
#include <realms/limits.h>
#include <realms/log.h>
#include <realms/rdb.h>

struct rdb {
	struct ev_loop *loop;
	struct cfg_redis ep;       /* our copy: address, user, password */
	char label[32];
	redisAsyncContext *ac;
	int up;                    /* connected, and logged in if need be */
	int authing;               /* connected, AUTH sent, not answered */
	int freeing;
	int timeouts;              /* in a row */
	double backoff;
	ev_timer retry;            /* reconnect, or connect deadline */
	rdb_connect_cb on_connect;
	void *on_connect_arg;
	/* subscription, re-made on every connection */
	char *sub_channel;
	rdb_cb sub_cb;
	void *sub_arg;
};

struct rdb_op {
	struct rdb *r;
	rdb_cb cb;
	void *arg;
	ev_timer timer;
	int answered;
};

static void rdb_connect(struct rdb *r);

/* ---------------------------------------------------------------------- */
/* Connection                                                             */
/* ---------------------------------------------------------------------- */

static void schedule_retry(struct rdb *r)
{
	if (r->freeing)
		return;
	ev_timer_stop(r->loop, &r->retry);
	ev_timer_set(&r->retry, r->backoff, 0.);
	ev_timer_start(r->loop, &r->retry);
	r->backoff *= 2;
	if (r->backoff > RDB_RETRY_MAX_S)
		r->backoff = RDB_RETRY_MAX_S;
}

static void sub_msg_cb(redisAsyncContext *ac, void *reply, void *privdata);

/* The user AUTH logs in as, for messages: requirepass is the "default" one. */
static const char *auth_user(const struct rdb *r)
{
	return r->ep.user ? r->ep.user : "default";
}

/* Connected, and logged in when there is a password: commands may go. */
static void rdb_ready(struct rdb *r)
{
	char buf[96];

	ev_timer_stop(r->loop, &r->retry);
	r->up = 1;
	r->timeouts = 0;
	r->backoff = RDB_RETRY_MIN_S;
	rlog(LOG_LVL_INFO, "redis %s: connected to %s%s%s", r->label,
	     netaddr_str(&r->ep.addr, buf, sizeof(buf)),
	     r->ep.password ? " as user " : "", r->ep.password ? auth_user(r) : "");
	if (r->sub_channel)
		redisAsyncCommand(r->ac, sub_msg_cb, r, "SUBSCRIBE %s", r->sub_channel);
	if (r->on_connect)
		r->on_connect(r, r->on_connect_arg);
}

/* Redis's answer to AUTH. A refusal fails this connection attempt: it is
 * closed and made again after the usual back-off (which a refusal does not
 * reset), so a wrong password costs one logged line per attempt. */
static void auth_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rdb *r = privdata;
	redisReply *rep = reply;
	char buf[96];

	/* NULL: the context is going (connect deadline, rdb_free, server
	 * gone); whoever drops it, or on_disconnect, takes it from here. */
	if (!rep || !ac->data || r->freeing)
		return;
	r->authing = 0;
	if (rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") == 0) {
		rdb_ready(r);
		return;
	}
	/* Redis's message never holds the password (WRONGPASS, NOPERM...). */
	rlog(LOG_LVL_ERR, "redis %s (%s): AUTH as user %s refused: %s", r->label,
	     netaddr_str(&r->ep.addr, buf, sizeof(buf)), auth_user(r),
	     rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
	ev_timer_stop(r->loop, &r->retry);
	/* Deferred by hiredis until this callback returns; on_disconnect
	 * then schedules the next attempt. */
	redisAsyncDisconnect(ac);
}

static void connect_cb(const redisAsyncContext *ac, int status)
{
	struct rdb *r = ac->data;
	const char *argv[3];
	size_t len[3];
	char buf[96];
	int argc;

	if (!r)
		return;
	if (status != REDIS_OK) {
		ev_timer_stop(r->loop, &r->retry);
		/* hiredis frees the context after this callback. */
		rlog(LOG_LVL_WARN, "redis %s (%s): connect failed: %s", r->label,
		     netaddr_str(&r->ep.addr, buf, sizeof(buf)), ac->errstr);
		r->ac = NULL;
		schedule_retry(r);
		return;
	}
	argc = cfg_redis_auth_argv(&r->ep, argv, len);
	if (argc == 0) {
		rdb_ready(r);
		return;
	}
	/* The connect deadline keeps running until AUTH is answered. If the
	 * command cannot even be queued, that deadline drops the context:
	 * freeing it from here would pull it from under hiredis. */
	if (redisAsyncCommandArgv(r->ac, auth_cb, r, argc, argv, len) == REDIS_OK)
		r->authing = 1;
	else
		rlog(LOG_LVL_WARN, "redis %s: cannot queue AUTH", r->label);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rdb *r = ac->data;

	if (!r)
		return;
	/* hiredis frees the context after this callback. */
	r->ac = NULL;
	if (r->up)
		rlog(LOG_LVL_WARN, "redis %s: connection lost%s%s", r->label,
		     status == REDIS_OK ? "" : ": ", status == REDIS_OK ? "" : ac->errstr);
	else if (r->authing)
		rlog(LOG_LVL_WARN, "redis %s: connection lost before AUTH was answered",
		     r->label);
	r->up = 0;
	r->authing = 0;
	if (r->sub_cb && r->sub_channel)
		r->sub_cb(r, NULL, r->sub_arg);
	schedule_retry(r);
}

/* The retry timer: either time to connect again, or a connection attempt
 * that did not finish in time. */
static void retry_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct rdb *r = t->data;

	if (r->ac && !r->up) {
		rlog(LOG_LVL_WARN, "redis %s: %s", r->label,
		     r->authing ? "AUTH not answered in time" : "connect timed out");
		redisAsyncContext *ac = r->ac;

		r->ac = NULL;
		r->authing = 0;
		ac->data = NULL;          /* no callbacks into r from here */
		redisAsyncFree(ac);
		schedule_retry(r);
		return;
	}
	if (!r->ac)
		rdb_connect(r);
}

static void rdb_connect(struct rdb *r)
{
	redisAsyncContext *ac;

	if (r->ep.addr.family == AF_UNIX)
		ac = redisAsyncConnectUnix(r->ep.addr.path);
	else
		ac = redisAsyncConnect(r->ep.addr.host, r->ep.addr.port);
	if (!ac) {
		schedule_retry(r);
		return;
	}
	if (ac->err) {
		rlog(LOG_LVL_WARN, "redis %s: %s", r->label, ac->errstr);
		redisAsyncFree(ac);
		schedule_retry(r);
		return;
	}
	ac->data = r;
	redisLibevAttach(r->loop, ac);
	redisAsyncSetConnectCallback(ac, connect_cb);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	r->ac = ac;
	/* The connect deadline shares the retry timer. */
	ev_timer_set(&r->retry, RDB_CONNECT_TIMEOUT_S, 0.);
	ev_timer_start(r->loop, &r->retry);
}

struct rdb *rdb_new(struct ev_loop *loop, const struct cfg_redis *ep,
                    const char *label, rdb_connect_cb on_connect, void *arg)
{
	struct rdb *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	if (config_redis_copy(&r->ep, ep) < 0) {
		free(r);
		return NULL;
	}
	r->loop = loop;
	snprintf(r->label, sizeof(r->label), "%s", label);
	r->backoff = RDB_RETRY_MIN_S;
	r->on_connect = on_connect;
	r->on_connect_arg = arg;
	ev_init(&r->retry, retry_cb);
	r->retry.data = r;
	rdb_connect(r);
	return r;
}

void rdb_free(struct rdb *r)
{
	if (!r)
		return;
	r->freeing = 1;
	ev_timer_stop(r->loop, &r->retry);
	if (r->ac) {
		redisAsyncContext *ac = r->ac;

		/* Pending commands get their NULL callbacks from hiredis now;
		 * our disconnect hook must not touch r any more. */
		r->ac = NULL;
		r->up = 0;
		r->authing = 0;
		r->sub_cb = NULL;
		redisAsyncFree(ac);   /* may call on_disconnect: r is still valid */
	}
	free(r->sub_channel);
	config_redis_release(&r->ep);
	free(r);
}

int rdb_up(const struct rdb *r)
{
	return r && r->up;
}

/* ---------------------------------------------------------------------- */
/* Commands                                                               */
/* ---------------------------------------------------------------------- */

static void op_timeout_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct rdb_op *op = t->data;
	struct rdb *r = op->r;

	op->answered = 1;
	op->cb(r, NULL, op->arg);
	if (++r->timeouts >= RDB_MAX_TIMEOUTS && r->ac && r->up) {
		rlog(LOG_LVL_WARN, "redis %s: %d commands timed out in a row; reconnecting",
		     r->label, r->timeouts);
		r->timeouts = 0;
		/* Not redisAsyncDisconnect(): it would wait for the replies of a
		 * server that does not answer. Freeing fires every pending op's
		 * hiredis callback with NULL (freeing those already answered) and
		 * then on_disconnect, which schedules the reconnection. */
		redisAsyncFree(r->ac);
	}
}

static void op_reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rdb_op *op = privdata;

	if (!op->answered) {
		ev_timer_stop(op->r->loop, &op->timer);
		if (reply)
			op->r->timeouts = 0;
		op->cb(op->r, reply, op->arg);
	}
	free(op);
}

static struct rdb_op *op_new(struct rdb *r, rdb_cb cb, void *arg)
{
	struct rdb_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	op->r = r;
	op->cb = cb;
	op->arg = arg;
	ev_timer_init(&op->timer, op_timeout_cb, RDB_CMD_TIMEOUT_S, 0.);
	op->timer.data = op;
	return op;
}

int rdb_command_argv(struct rdb *r, rdb_cb cb, void *arg, int argc,
                     const char **argv, const size_t *argvlen)
{
	struct rdb_op *op;

	if (!r->ac || !r->up)
		return -1;
	if (!cb)
		return redisAsyncCommandArgv(r->ac, NULL, NULL, argc, argv, argvlen) == REDIS_OK ? 0 : -1;
	op = op_new(r, cb, arg);
	if (!op)
		return -1;
	if (redisAsyncCommandArgv(r->ac, op_reply_cb, op, argc, argv, argvlen) != REDIS_OK) {
		free(op);
		return -1;
	}
	ev_timer_start(r->loop, &op->timer);
	return 0;
}

int rdb_command(struct rdb *r, rdb_cb cb, void *arg, const char *fmt, ...)
{
	struct rdb_op *op = NULL;
	va_list ap;
	int ret;

	if (!r->ac || !r->up)
		return -1;
	if (cb && !(op = op_new(r, cb, arg)))
		return -1;
	va_start(ap, fmt);
	ret = redisvAsyncCommand(r->ac, op ? op_reply_cb : NULL, op, fmt, ap);
	va_end(ap);
	if (ret != REDIS_OK) {
		free(op);
		return -1;
	}
	if (op)
		ev_timer_start(r->loop, &op->timer);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Subscriptions                                                          */
/* ---------------------------------------------------------------------- */

static void sub_msg_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct rdb *r = privdata;
	redisReply *rep = reply;

	if (!ac->data || !r->sub_cb || !rep)
		return;   /* connection going away: on_disconnect reports it */
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
	    rep->element[0]->type == REDIS_REPLY_STRING &&
	    strcmp(rep->element[0]->str, "message") == 0)
		r->sub_cb(r, rep, r->sub_arg);
}

int rdb_subscribe(struct rdb *r, const char *channel, rdb_cb cb, void *arg)
{
	free(r->sub_channel);
	r->sub_channel = strdup(channel);
	if (!r->sub_channel)
		return -1;
	r->sub_cb = cb;
	r->sub_arg = arg;
	if (r->up)
		redisAsyncCommand(r->ac, sub_msg_cb, r, "SUBSCRIBE %s", r->sub_channel);
	return 0;
}
