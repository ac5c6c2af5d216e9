/*
 * "realms-request" and "realms-attempt": the gateway's verdicts over SPOP.
 *
 * realms-request runs the verdict (verdict.c). The token record comes from
 * the token cache or, on a miss, from Redis through this worker's async
 * client; the NOTIFY is then held (SPOA_HDL_PENDING) and answered from the
 * Redis callback. What the verdict needs after the lookup is copied out of
 * the NOTIFY first, since its arguments live only during the handler call.
 *
 * realms-attempt tells the relay, for the credential HAProxy picked for this
 * attempt, which upstream backend to use, which key to inject, and how to
 * rewrite the body's model.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <ev.h>

#include <realms/clock.h>
#include <realms/admit.h>
#include <realms/budget.h>
#include <realms/config.h>
#include <realms/handlers.h>
#include <realms/health.h>
#include <realms/inspect.h>
#include <realms/limits.h>
#include <realms/log.h>
#include <realms/rdb.h>
#include <realms/rkeys.h>
#include <realms/selfusage.h>
#include <realms/spoa.h>
#include <realms/spop.h>
#include <realms/state.h>
#include <realms/tokcache.h>
#include <realms/token.h>
#include <realms/tried.h>
#include <realms/usage-t.h>
#include <realms/verdict.h>
#include <realms/worker.h>

_Static_assert(TOKCACHE_KEY_LEN == TOKEN_HASH_LEN, "the cache is keyed by token hashes");


/* ---------------------------------------------------------------------- */
/* Per-worker context                                                     */
/* ---------------------------------------------------------------------- */

struct req_worker {
	struct rdb *rdb;        /* commands */
	struct rdb *sub;        /* token invalidations (worker 0 only) */
	uint64_t rng;           /* xorshift64* state, seeded from the OS */
};

static int req_module = -1;

static uint64_t rng_next(void *arg)
{
	uint64_t *s = arg;

	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* A revoke published by realmsctl: forget that token now. */
static void on_token_event(struct rdb *r, redisReply *rep, void *arg)
{
	uint8_t h[TOKCACHE_KEY_LEN];

	if (!rep) {
		/* Subscription lost: events may be missed until it is back, so
		 * everything cached is suspect. Entries stay usable as stale if
		 * Redis is down for lookups too. */
		return;
	}
	if (rep->element[2]->type == REDIS_REPLY_STRING &&
	    token_hex_decode(rep->element[2]->str, rep->element[2]->len, h) == 0)
		tokcache_invalidate(h);
}

static void on_sub_connect(struct rdb *r, void *arg)
{
	/* We may have missed revocations while disconnected. */
	tokcache_clear();
}

static void *req_worker_init(struct worker *w, struct ev_loop *loop)
{
	struct req_worker *rw = calloc(1, sizeof(*rw));
	struct realms_config *cfg = state_config();

	if (!rw || !cfg) {
		free(rw);
		config_unref(cfg);
		return NULL;
	}
	if (getrandom(&rw->rng, sizeof(rw->rng), 0) != sizeof(rw->rng) || !rw->rng)
		rw->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)rw;
	rw->rdb = rdb_new(loop, state_redis(cfg), "tokens", NULL, NULL);
	if (worker_id(w) == 0) {
		rw->sub = rdb_new(loop, state_redis(cfg), "token-events", on_sub_connect, NULL);
		if (rw->sub)
			rdb_subscribe(rw->sub, RKEY_TOKEN_EVENTS, on_token_event, NULL);
	}
	config_unref(cfg);
	return rw;
}

static void req_worker_fini(struct worker *w, void *ctx)
{
	struct req_worker *rw = ctx;

	if (!rw)
		return;
	rdb_free(rw->rdb);
	rdb_free(rw->sub);
	free(rw);
}

static const struct worker_module req_worker_module = {
	.name = "request",
	.init = req_worker_init,
	.fini = req_worker_fini,
};

/* ---------------------------------------------------------------------- */
/* Arguments                                                              */
/* ---------------------------------------------------------------------- */

static struct vslice arg_str(const struct spop_msg *msg, const char *name)
{
	const struct spop_kv *kv = spop_msg_arg(msg, name);
	struct vslice s = { "", 0 };

	if (kv && (kv->value.type == SPOP_DATA_T_STR || kv->value.type == SPOP_DATA_T_BIN)) {
		s.p = kv->value.u.str.ptr;
		s.len = kv->value.u.str.len;
	}
	return s;
}

/* An integer argument; -1 when absent or not an integer. */
static int64_t arg_int(const struct spop_msg *msg, const char *name)
{
	const struct spop_kv *kv = spop_msg_arg(msg, name);

	if (!kv)
		return -1;
	switch (kv->value.type) {
	case SPOP_DATA_T_INT32:  return kv->value.u.s32;
	case SPOP_DATA_T_UINT32: return kv->value.u.u32;
	case SPOP_DATA_T_INT64:  return kv->value.u.s64;
	case SPOP_DATA_T_UINT64: return kv->value.u.u64 > INT64_MAX ? -1 : (int64_t)kv->value.u.u64;
	case SPOP_DATA_T_STR: {
		/* A header fetched as a string, e.g. content-length. */
		char buf[24];
		char *end;
		long long v;

		if (!kv->value.u.str.len || kv->value.u.str.len >= sizeof(buf))
			return -1;
		memcpy(buf, kv->value.u.str.ptr, kv->value.u.str.len);
		buf[kv->value.u.str.len] = '\0';
		v = strtoll(buf, &end, 10);
		return *end || v < 0 ? -1 : v;
	}
	default:
		return -1;
	}
}

static void read_args(const struct spop_msg *msg, const struct realms_config *cfg,
                      struct verdict_in *in)
{
	struct vslice body = arg_str(msg, "body");
	int64_t size = arg_int(msg, "body_size");
	int64_t chunked = arg_int(msg, "chunked");
	int64_t clen_n = arg_int(msg, "clen_n");

	memset(in, 0, sizeof(*in));
	in->method = arg_str(msg, "method");
	in->path = arg_str(msg, "path");
	in->auth = arg_str(msg, "auth");
	in->apikey = arg_str(msg, "apikey");
	in->session = arg_str(msg, "session");
	in->ctype = arg_str(msg, "ctype");
	in->body = body.p;
	in->body_len = body.len;
	/* A chunked body's size is what has arrived: complete only if HAProxy
	 * says the message ended, which SPOE cannot tell us; treat as cut. */
	/* Over HTTP/2 a body may come without Content-Length: its size is
	 * then what has arrived. Only a Content-Length makes it known. */
	in->body_size_known = size >= 0 && chunked <= 0 && clen_n > 0;
	in->body_size = size >= 0 ? (uint64_t)size : 0;
	in->body_prefix = cfg->agent.body_prefix;
	in->max_body = cfg->agent.max_body;
	in->beta = arg_str(msg, "beta");
	in->rid = arg_str(msg, "rid");
	in->beta_count = (int)arg_int(msg, "beta_n");
}

/* ---------------------------------------------------------------------- */
/* Answers                                                                */
/* ---------------------------------------------------------------------- */

static void set_str(struct spoa_req *req, const char *name, const char *s)
{
	spoa_set_str(req, SPOP_SCOPE_TXN, name, s, strlen(s));
}

static void answer_refusal(struct spoa_req *req, const struct verdict *v)
{
	char body[2048];
	long n = verdict_error_body(v, body, sizeof(body));

	set_str(req, "verdict", "deny");
	spoa_set_int(req, SPOP_SCOPE_TXN, "status", v->status);
	if (v->retry_after_s > 0)
		spoa_set_int(req, SPOP_SCOPE_TXN, "retry_after", v->retry_after_s);
	if (n > 0)
		spoa_set_str(req, SPOP_SCOPE_TXN, "err_body", body, (size_t)n);
	rlog(LOG_LVL_DEBUG, "request refused: %d %s: %s", v->status, v->err_type, v->err_msg);
}

/* What up_<channel> needs to send an attempt (both for the relay's
 * attempts and for the requests that go straight to their channel). */
static void answer_attempt(struct spoa_req *req, const struct attempt *a)
{
	set_str(req, "backend", a->backend);
	spoa_set_str(req, SPOP_SCOPE_TXN, "server", a->cred->server, a->cred->server_len);
	/* The key goes into a request-scoped var that up_<channel> unsets
	 * right after injecting it; it is never logged. */
	spoa_set_str(req, SPOP_SCOPE_TXN, "key", a->cred->key, a->cred->key_len);
	if (a->rewrite) {
		spoa_set_str(req, SPOP_SCOPE_TXN, "model_new", a->model_new, a->model_new_len);
		if (a->clen_new >= 0)
			spoa_set_int(req, SPOP_SCOPE_TXN, "clen", a->clen_new);
	}
	/* The channel's own headers (their values may be secrets: like the
	 * key, each var is unset as soon as up_<channel> has used it). */
	for (size_t i = 0; i < a->cred->channel->n_headers; i++) {
		static const char *const var[CFG_MAX_HEADERS] = {
			"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7"
		};
		const struct cfg_header *h = &a->cred->channel->headers[i];

		spoa_set_str(req, SPOP_SCOPE_TXN, var[i], h->value, h->value_len);
	}
}

static void answer(struct spoa_req *req, const struct realms_config *cfg,
                   const struct verdict *v, const struct tok_info *tok,
                   const char *token_id)
{
	if (v->status) {
		answer_refusal(req, v);
		return;
	}
	set_str(req, "token", tok->name);
	set_str(req, "token_id", token_id);
	set_str(req, "group", tok->group);
	if (v->route == ROUTE_MODELS) {
		char *body = malloc(REQ_BODY_VAR_MAX);
		long n = body ? verdict_models_body(cfg, config_group_index(cfg, tok->group,
		                                    strlen(tok->group)), tok->models, body,
		                                    REQ_BODY_VAR_MAX) : -1;

		if (n < 0) {
			struct verdict e = *v;

			e.status = 500;
			e.err_type = "api_error";
			snprintf(e.err_msg, sizeof(e.err_msg), "the model list is too large");
			answer_refusal(req, &e);
		} else {
			set_str(req, "verdict", "models");
			spoa_set_str(req, SPOP_SCOPE_TXN, "models_body", body, (size_t)n);
		}
		free(body);
		return;
	}
	set_str(req, "verdict", "allow");
	if (v->retry) {
		set_str(req, "pool", VERDICT_POOL);
		spoa_set_str(req, SPOP_SCOPE_TXN, "server", v->cred->server, v->cred->server_len);
	} else {
		set_str(req, "pool", v->first.backend);
		answer_attempt(req, &v->first);
	}
	spoa_set_str(req, SPOP_SCOPE_TXN, "model", v->insp.model, v->insp.model_len);
	spoa_set_int(req, SPOP_SCOPE_TXN, "model_off", (int64_t)v->insp.model_off);
	spoa_set_int(req, SPOP_SCOPE_TXN, "model_len", (int64_t)v->insp.model_tok_len);
	if (v->insp.stream_state == INSPECT_KEY_PRESENT)
		spoa_set_int(req, SPOP_SCOPE_TXN, "stream", v->insp.stream);
	if (v->session[0])
		set_str(req, "session", v->session);
	if (v->beta[0])
		set_str(req, "beta", v->beta);
	/* The body guard (lua-shim) reads what the inspection could not:
	 * "whole" when the agent read all of the body, else its limit. */
	if (v->insp.complete)
		spoa_set_int(req, SPOP_SCOPE_TXN, "whole", 1);
	spoa_set_int(req, SPOP_SCOPE_TXN, "body_max", (int64_t)cfg->agent.max_body);
}

static int avail(int cred_id, void *arg)
{
	return health_available(arg, cred_id, clock_mono_ms());
}

static int preferred(int cred_id, void *arg)
{
	return health_preferred(arg, cred_id, clock_mono_ms());
}

/* The scheduler's environment of a verdict or attempt: breakers, avoided
 * credentials, this worker's generator, the session table. */
static struct sched_env sched_env_of(struct realms_config *cfg, struct req_worker *rw,
                                     uint64_t *fallback)
{
	return (struct sched_env){
		.available = avail, .avail_arg = cfg,
		.rand = rng_next, .rand_arg = rw ? &rw->rng : fallback,
		.preferred = preferred, .pref_arg = cfg,
		.stick = 1, .now_ms = clock_mono_ms(),
	};
}

/* ---------------------------------------------------------------------- */
/* Admission (budgets, rpm, concurrency)                                  */
/* ---------------------------------------------------------------------- */

/* What a request waiting for its admission keeps. */
struct admission {
	struct spoa_req *req;
	struct realms_config *cfg;
	struct verdict v;
	struct tok_info tok;
	char token_id[TOKEN_ID_SIZE];
	int tz_min;
	/* While admission_start() waits for admit_start() to return: set to 1
	 * when the answer came first. NULL once the answer is asynchronous. */
	int *answered;
};

/* "daily", "weekly", ... for refusal messages. */
static const char *window_label(enum budget_kind k)
{
	switch (k) {
	case BUDGET_USD_5H:    return "5-hour";
	case BUDGET_USD_DAY:   return "daily";
	case BUDGET_USD_WEEK:  return "weekly";
	default:               return "monthly";
	}
}

/* The refusal for an answer other than ADMIT_OK, into v. */
static void admission_refusal(const struct admission *ad, const struct admit_answer *a,
                              struct verdict *v)
{
	char lim[32], spent[32], when[40], who[TOKEN_FIELD_MAX + 16];
	struct budget_window w;
	int64_t reset = a->reset_ms;

	budget_usd_str(a->limit, lim, sizeof(lim));
	budget_usd_str(a->spent, spent, sizeof(spent));
	if (a->group_total)
		snprintf(who, sizeof(who), "group %s's ", ad->tok.group);
	else
		who[0] = '\0';
	v->status = 429;
	v->err_type = "rate_limit_error";
	v->retry_after_s = a->retry_after_s;
	switch (a->result) {
	case ADMIT_SPENT:
		/* Not 429: a spent budget does not come back in minutes, and
		 * Claude Code retries a 429 for minutes. */
		if (a->kind != BUDGET_USD_5H &&
		    budget_window(a->kind, clock_unix_s() * 1000, ad->tz_min, &w) == 0)
			reset = w.end_ms;
		budget_time_str(reset, ad->tz_min, when, sizeof(when));
		v->status = 403;
		v->err_type = "permission_error";
		v->retry_after_s = 0;
		snprintf(v->err_msg, sizeof(v->err_msg), "%s%s budget of $%s spent ($%s); resets %s",
		         who, window_label(a->kind), lim, spent, when);
		break;
	case ADMIT_RESERVED:
		snprintf(v->err_msg, sizeof(v->err_msg), "%s%s budget of $%s is held by requests "
		         "in flight ($%s spent); retry when they finish", who,
		         window_label(a->kind), lim, spent);
		break;
	case ADMIT_RPM:
		snprintf(v->err_msg, sizeof(v->err_msg), "rate limit of %" PRIu64 " requests per "
		         "minute reached; retry in %d s", ad->tok.limits.v[BUDGET_RPM] ?
		         ad->tok.limits.v[BUDGET_RPM] : 0, a->retry_after_s);
		break;
	case ADMIT_CONCURRENCY:
		snprintf(v->err_msg, sizeof(v->err_msg), "limit of requests in flight reached; "
		         "retry when one finishes");
		break;
	default:
		v->status = 503;
		v->err_type = "api_error";
		v->retry_after_s = 0;
		snprintf(v->err_msg, sizeof(v->err_msg), "the gateway cannot check this API "
		         "token's limits right now (limits store unreachable); retry in a few "
		         "seconds");
		break;
	}
}

static void on_admitted(void *arg, const struct admit_answer *a)
{
	struct admission *ad = arg;

	if (ad->answered)
		*ad->answered = 1;

	if (a->result != ADMIT_OK) {
		admission_refusal(ad, a, &ad->v);
		rlog(LOG_LVL_INFO, "request of token %s refused: %s", ad->token_id, ad->v.err_msg);
	} else {
		/* Redis holds a reservation or slot under the request id: the
		 * tap releases it if the request ends without an answer (its
		 * record, when one comes, settles it instead). */
		spoa_set_int(ad->req, SPOP_SCOPE_TXN, "held", 1);
	}
	answer(ad->req, ad->cfg, &ad->v, &ad->tok, ad->token_id);
	spoa_req_release(ad->req);
	config_unref(ad->cfg);
	free(ad);
}

/* The limits a request of this token is held to: its own over its
 * group's defaults, and its group's totals. */
static void request_limits(const struct realms_config *cfg, const struct tok_info *tok,
                           struct admit_req *q)
{
	int g = config_group_index(cfg, tok->group, strlen(tok->group));

	budget_limits_merge(&q->limits, &tok->limits, g >= 0 ? &cfg->group_limits[g] : NULL);
	if (g >= 0)
		q->total = cfg->group_totals[g];
}

/* Starts the admission of an allowed message when the token has limits.
 * Returns 1 when the request went pending (it will be answered from the
 * callback, which holds it until then), 0 when there is nothing to check
 * (the caller answers), -1 when it is answered already: admit_start()
 * answered before returning (Redis down), or out of memory. */
static int admission_start(struct spoa_req *req, struct realms_config *cfg,
                           const struct verdict_in *in, const struct verdict *v,
                           const struct tok_info *tok, const char *token_id)
{
	struct admit_req q = { 0 };
	struct admission *ad;
	int answered = 0;
	char rid[sizeof(((struct usage_record *)0)->req_id)];
	uint64_t max_tokens = v->insp.max_tokens_state == INSPECT_KEY_PRESENT ?
	                      v->insp.max_tokens : BUDGET_DEFAULT_MAX_TOKENS;

	if (v->status || v->route != ROUTE_MESSAGES)
		return 0;
	request_limits(cfg, tok, &q);
	if (!admit_needed(&q))
		return 0;
	q.token = tok->name;
	q.group = tok->group;
	/* The id is borrowed from the NOTIFY, not NUL-terminated. */
	snprintf(rid, sizeof(rid), "%.*s", (int)(in->rid.len < sizeof(rid) ? in->rid.len :
	         sizeof(rid) - 1), in->rid.p ? in->rid.p : "");
	q.rid = rid;
	q.tz_min = cfg->tz_min;
	q.reserve_nusd = budget_reserve_nusd(config_price(cfg, v->insp.model, v->insp.model_len),
	                                     in->body_size_known ? in->body_size : in->body_len,
	                                     max_tokens);
	ad = calloc(1, sizeof(*ad));
	if (!ad) {
		struct verdict e = *v;
		struct admit_answer a = { .result = ADMIT_UNAVAILABLE };
		struct admission tmp = { .tok = *tok };

		admission_refusal(&tmp, &a, &e);
		answer(req, cfg, &e, tok, token_id);
		return -1;
	}
	ad->req = req;
	ad->cfg = cfg;
	config_ref(cfg);
	ad->v = *v;
	ad->tok = *tok;
	ad->tz_min = cfg->tz_min;
	snprintf(ad->token_id, sizeof(ad->token_id), "%s", token_id);
	ad->answered = &answered;
	spoa_req_hold(req);
	admit_start(spoa_req_worker(req), &q, on_admitted, ad);
	if (answered)
		return -1;   /* on_admitted ran: answered, released, ad freed */
	ad->answered = NULL;
	return 1;
}

/* ---------------------------------------------------------------------- */
/* GET /api/usage                                                         */
/* ---------------------------------------------------------------------- */

struct usage_call {
	struct spoa_req *req;
	int *fired;              /* set while usage_start() runs */
};

static void on_selfusage(void *arg, const struct selfusage *u, int ok)
{
	struct usage_call *uc = arg;
	char *body = ok ? malloc(REQ_BODY_VAR_MAX) : NULL;
	long n = body ? selfusage_json(u, body, REQ_BODY_VAR_MAX) : -1;

	if (n < 0) {
		struct verdict e = { 0 };

		e.status = 503;
		e.err_type = "api_error";
		snprintf(e.err_msg, sizeof(e.err_msg), "the gateway cannot read this API token's "
		         "usage right now (usage store unreachable); retry in a few seconds");
		answer_refusal(uc->req, &e);
	} else {
		set_str(uc->req, "verdict", "usage");
		spoa_set_str(uc->req, SPOP_SCOPE_TXN, "usage_body", body, (size_t)n);
	}
	free(body);
	spoa_req_release(uc->req);
	if (uc->fired)
		*uc->fired = 1;
	free(uc);
}

/* The token's own usage, read from Redis and answered from the callback:
 * returns 1 (a hold was taken), or 0 when it was answered at once. */
static int usage_start(struct spoa_req *req, struct realms_config *cfg,
                       const struct tok_info *tok)
{
	struct req_worker *rw = worker_module_ctx(spoa_req_worker(req), req_module);
	struct usage_call *uc = calloc(1, sizeof(*uc));
	struct selfusage *u = calloc(1, sizeof(*u));
	struct admit_req q = { 0 };
	int fired = 0;

	if (!uc || !u) {
		struct verdict e = { 0 };

		free(uc);
		free(u);
		e.status = 503;
		e.err_type = "api_error";
		snprintf(e.err_msg, sizeof(e.err_msg), "out of memory; retry in a few seconds");
		answer_refusal(req, &e);
		return 0;
	}
	request_limits(cfg, tok, &q);
	snprintf(u->token, sizeof(u->token), "%s", tok->name);
	snprintf(u->group, sizeof(u->group), "%s", tok->group);
	u->limits = q.limits;
	u->total = q.total;
	u->now_ms = clock_unix_s() * 1000;
	u->tz_min = cfg->tz_min;
	uc->req = req;
	uc->fired = &fired;
	spoa_req_hold(req);
	selfusage_start(rw ? rw->rdb : NULL, u, on_selfusage, uc);
	free(u);
	if (fired)
		return 0;        /* answered and released within the call */
	uc->fired = NULL;
	return 1;
}

/* Decides, then answers now or once the admission is known. Returns 1
 * when the answer is pending on the admission (a hold was taken). */
static int decide_and_answer(struct spoa_req *req, struct realms_config *cfg,
                             const struct verdict_in *in, struct verdict *v,
                             const struct tok_info *tok, const char *token_id)
{
	struct req_worker *rw = worker_module_ctx(spoa_req_worker(req), req_module);
	uint64_t fallback = 0x2545f4914f6cdd1dULL;
	struct sched_env env = sched_env_of(cfg, rw, &fallback);
	int r;

	/* A half-open credential takes one probe: when another verdict
	 * claimed it between the choice and now, choose again (it is no
	 * longer available). Bounded: each round removes a candidate. */
	for (int round = 0; round < 4; round++) {
		verdict_decide(cfg, in, tok, clock_unix_s(), &env, v);
		if (v->status || !v->cred || health_claim(cfg, v->cred->id, clock_mono_ms()))
			break;
	}
	if (!v->status && v->route == ROUTE_USAGE)
		return usage_start(req, cfg, tok);
	r = admission_start(req, cfg, in, v, tok, token_id);
	if (r == 0)
		answer(req, cfg, v, tok, token_id);
	return r == 1;
}

/* What a pending lookup keeps: the request, its config, and copies of the
 * arguments the verdict reads after the lookup. */
struct lookup {
	struct spoa_req *req;
	struct realms_config *cfg;
	struct verdict_in in;
	struct verdict v;
	uint8_t hash[TOKCACHE_KEY_LEN];
	char token_id[TOKEN_ID_SIZE];
	uint64_t epoch;          /* the token cache's, before the lookup */
	int have_stale;
	struct tok_info stale;
	char *copy;              /* backing store of the copied slices */
};

static struct vslice copy_slice(char **dst, struct vslice s)
{
	struct vslice r = { *dst, s.len };

	memcpy(*dst, s.p, s.len);
	*dst += s.len;
	return r;
}

static struct lookup *lookup_new(struct spoa_req *req, struct realms_config *cfg,
                                 const struct verdict_in *in, const struct verdict *v)
{
	size_t total = in->method.len + in->path.len + in->session.len +
	               in->ctype.len + in->beta.len + in->rid.len + in->body_len + 1;
	struct lookup *lk = calloc(1, sizeof(*lk));
	char *p;

	if (!lk || !(lk->copy = malloc(total))) {
		free(lk);
		return NULL;
	}
	lk->req = req;
	lk->cfg = cfg;
	lk->v = *v;
	lk->in = *in;
	p = lk->copy;
	lk->in.method = copy_slice(&p, in->method);
	lk->in.path = copy_slice(&p, in->path);
	lk->in.session = copy_slice(&p, in->session);
	lk->in.ctype = copy_slice(&p, in->ctype);
	lk->in.beta = copy_slice(&p, in->beta);
	lk->in.rid = copy_slice(&p, in->rid);
	lk->in.body = copy_slice(&p, (struct vslice){ in->body, in->body_len }).p;
	/* The credentials are not needed any more: never keep them. */
	lk->in.auth = (struct vslice){ "", 0 };
	lk->in.apikey = (struct vslice){ "", 0 };
	return lk;
}

static void lookup_free(struct lookup *lk)
{
	config_unref(lk->cfg);
	free(lk->copy);
	free(lk);
}

/* Turns an HGETALL reply into a token record. */
static void parse_token(const redisReply *rep, struct tok_info *t)
{
	memset(t, 0, sizeof(*t));
	t->status = TOK_UNKNOWN;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0)
		return;
	t->status = TOK_ACTIVE;
	strcpy(t->group, CFG_GROUP_DEFAULT);
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		const redisReply *k = rep->element[i], *val = rep->element[i + 1];

		if (k->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
			continue;
		if (!strcmp(k->str, "name"))
			snprintf(t->name, sizeof(t->name), "%s", val->str);
		else if (!strcmp(k->str, "group"))
			snprintf(t->group, sizeof(t->group), "%s", val->str);
		else if (!strcmp(k->str, "status") && t->status != TOK_DAMAGED)
			t->status = strcmp(val->str, "active") == 0 ? TOK_ACTIVE : TOK_REVOKED;
		else if (!strcmp(k->str, RKEY_TF_EXPIRES))
			t->expires = strtoll(val->str, NULL, 10);
		else if (!strcmp(k->str, RKEY_TF_LIMITS) &&
		         budget_limits_decode(val->str, val->len, &t->limits) < 0)
			/* Limits we cannot read must not become no limits. */
			t->status = TOK_DAMAGED;
		else if (!strcmp(k->str, RKEY_TF_MODELS)) {
			/* A list cut short could name another model (a prefix
			 * of one of its own): refused, never cut. */
			if (val->len > TOKEN_MODELS_MAX)
				t->status = TOK_DAMAGED;
			else
				snprintf(t->models, sizeof(t->models), "%s", val->str);
		}
	}
}

/* Answers a lookup from the token store's reply (NULL: the store could
 * not answer) and frees it. Returns 1 when the answer is pending on the
 * admission (which took its own hold), 0 when it is given. */
static int lookup_answer(struct lookup *lk, const redisReply *rep)
{
	struct tok_info t;
	int pending = 0;

	if (rep && rep->type != REDIS_REPLY_ERROR) {
		parse_token(rep, &t);
		tokcache_put(lk->hash, &t, clock_mono_ms(), lk->epoch);
		pending = decide_and_answer(lk->req, lk->cfg, &lk->in, &lk->v, &t, lk->token_id);
	} else if (lk->have_stale) {
		rlog(LOG_LVL_WARN, "token store unavailable; serving token %s from cache",
		     lk->token_id);
		pending = decide_and_answer(lk->req, lk->cfg, &lk->in, &lk->v, &lk->stale,
		                            lk->token_id);
	} else {
		verdict_store_down(&lk->v);
		answer_refusal(lk->req, &lk->v);
	}
	lookup_free(lk);
	return pending;
}

/* The token store's reply: answers, then drops the hold hdl_request took
 * for the lookup (an admission keeps its own). */
static void on_token(struct rdb *r, redisReply *rep, void *arg)
{
	struct lookup *lk = arg;
	struct spoa_req *req = lk->req;

	lookup_answer(lk, rep);
	spoa_req_release(req);
}

static enum spoa_hdl_ret hdl_request(struct spoa_req *req, const struct spop_msg *msg)
{
	struct realms_config *cfg = state_config();
	struct req_worker *rw = worker_module_ctx(spoa_req_worker(req), req_module);
	struct verdict_in in;
	struct verdict v;
	struct vslice tok;
	struct tok_info info;
	char hex[TOKEN_HEX_LEN + 1], token_id[TOKEN_ID_SIZE];
	uint8_t hash[TOKCACHE_KEY_LEN];
	enum tokcache_res res;
	struct lookup *lk;
	int pending = 0;

	if (!cfg) {
		set_str(req, "verdict", "deny");
		return SPOA_HDL_DONE;
	}
	read_args(msg, cfg, &in);
	if (verdict_route(&in, &v) == ROUTE_NONE) {
		answer_refusal(req, &v);
		goto done;
	}
	if (v.route == ROUTE_HELLO) {
		set_str(req, "verdict", "hello");
		goto done;
	}
	if (verdict_token(&in, &tok, &v) < 0) {
		answer_refusal(req, &v);
		goto done;
	}
	if (!token_looks_valid(tok.p, tok.len)) {
		/* Not one of ours: no need to ask Redis. */
		memset(&info, 0, sizeof(info));
		pending = decide_and_answer(req, cfg, &in, &v, &info, "");
		goto done;
	}
	if (token_hash(tok.p, tok.len, hash) < 0) {
		/* No hash, no lookup: never one made of what the stack held. */
		verdict_store_down(&v);
		answer_refusal(req, &v);
		goto done;
	}
	token_hex_encode(hash, hex);
	snprintf(token_id, sizeof(token_id), "%.*s", TOKEN_ID_LEN, hex);

	res = tokcache_get(hash, &info, clock_mono_ms());
	if (res == TOKCACHE_FRESH) {
		pending = decide_and_answer(req, cfg, &in, &v, &info, token_id);
		goto done;
	}
	lk = lookup_new(req, cfg, &in, &v);
	if (!lk) {
		verdict_store_down(&v);
		answer_refusal(req, &v);
		goto done;
	}
	memcpy(lk->hash, hash, sizeof(hash));
	memcpy(lk->token_id, token_id, sizeof(token_id));
	lk->epoch = tokcache_epoch();
	if (res == TOKCACHE_STALE) {
		lk->have_stale = 1;
		lk->stale = info;
	}
	if (!rw || rdb_command(rw->rdb, on_token, lk, "HGETALL %s%s", RKEY_TOKEN_PREFIX, hex) < 0) {
		/* Redis is down right now: the same outcome as a failed lookup,
		 * answered at once (or pending on the admission, when a stale
		 * entry lets it through to a limit check). */
		return lookup_answer(lk, NULL) ? SPOA_HDL_PENDING : SPOA_HDL_DONE;
	}
	spoa_req_hold(req);
	return SPOA_HDL_PENDING;   /* lk owns the config reference now */
done:
	config_unref(cfg);
	return pending ? SPOA_HDL_PENDING : SPOA_HDL_DONE;
}

/* ---------------------------------------------------------------------- */
/* realms-attempt                                                         */
/* ---------------------------------------------------------------------- */

static void attempt_error(struct spoa_req *req, const char *why)
{
	set_str(req, "attempt_error", why);
	rlog(LOG_LVL_WARN, "attempt refused: %s", why);
}

/* A request's tried list lives as long as its attempts can: each may wait
 * failover.timeout for the upstream. */
static uint64_t tried_ttl_ms(const struct realms_config *cfg)
{
	return (uint64_t)cfg->failover.attempts * (uint64_t)cfg->failover.timeout_s * 1000u +
	       TRIED_SLACK_MS;
}

static enum spoa_hdl_ret hdl_attempt(struct spoa_req *req, const struct spop_msg *msg)
{
	struct realms_config *cfg = state_config();
	struct req_worker *rw = worker_module_ctx(spoa_req_worker(req), req_module);
	uint64_t fallback = 0x2545f4914f6cdd1dULL;
	struct sched_env env;
	struct vslice rid = arg_str(msg, "rid");
	struct attempt_in in;
	struct attempt a;
	struct tried t;
	int rc = -1;

	if (!cfg) {
		attempt_error(req, "no configuration");
		return SPOA_HDL_DONE;
	}
	env = sched_env_of(cfg, rw, &fallback);
	tried_get(rid.p, rid.len, clock_mono_ms(), &t);
	if (t.generation != cfg->generation)
		t.n = 0;   /* ids of another configuration mean nothing here */
	in = (struct attempt_in){
		.primary = arg_str(msg, "server"),
		.model = arg_str(msg, "model"),
		.group = arg_str(msg, "group"),
		.session = arg_str(msg, "session"),
		.off = arg_int(msg, "model_off"),
		.len = arg_int(msg, "model_len"),
		.clen = arg_int(msg, "clen"),
		.tried = &t,
	};
	/* A half-open credential takes one probe: when another request
	 * claimed it first, choose again (it is no longer available).
	 * Bounded: each round removes a candidate. */
	for (int round = 0; round < 4; round++) {
		rc = verdict_attempt(cfg, &in, &env, &a);
		if (rc < 0 || (t.n == 0 && a.cred->server_len == in.primary.len &&
		               !memcmp(a.cred->server, in.primary.p, in.primary.len)))
			break;   /* the verdict's own choice: it claimed any probe */
		if (health_claim(cfg, a.cred->id, clock_mono_ms()))
			break;
	}
	if (rc < 0) {
		attempt_error(req, a.error);
		goto done;
	}
	if (rid.len)
		tried_add(rid.p, rid.len, a.cred->id, cfg->generation, clock_mono_ms(),
		          tried_ttl_ms(cfg));
	rlog(LOG_LVL_DEBUG, "attempt %zu of %.*s: %s", t.n + 1, (int)rid.len, rid.p,
	     a.cred->server);
	answer_attempt(req, &a);
done:
	config_unref(cfg);
	return SPOA_HDL_DONE;
}

int hdl_request_register(void)
{
	req_module = worker_module_register(&req_worker_module);
	if (req_module < 0 || admit_register() < 0)
		return -1;
	if (spoa_register("realms-request", hdl_request) < 0)
		return -1;
	return spoa_register("realms-attempt", hdl_attempt);
}
