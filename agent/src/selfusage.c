/*
 * A token's own usage for GET /api/usage (contract in realms/selfusage.h).
 * The JSON and the reading of replies are pure; selfusage_start() gathers
 * through an rdb: round 1 reads the token's (and its group's) spend
 * counters, today's token hash and the day's combination index; round 2
 * reads the token's combinations of today, summed by model.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <realms/budget.h>
#include <realms/json.h>
#include <realms/log.h>
#include <realms/rdb.h>
#include <realms/record.h>
#include <realms/rkeys.h>
#include <realms/sbuf.h>
#include <realms/selfusage.h>

/* ---------------------------------------------------------------------- */
/* JSON                                                                   */
/* ---------------------------------------------------------------------- */


static void put_str(struct sbuf *w, const char *s)
{
	char q[2 * 256 * 3 + 8];
	long n = json_quote(s, strlen(s), q, sizeof(q));

	if (n < 0)
		w->full = true;
	else
		sbuf_printf(w, "%.*s", (int)n, q);
}

static void put_usd(struct sbuf *w, uint64_t nusd)
{
	char a[40];

	budget_usd_str(nusd, a, sizeof(a));
	sbuf_printf(w, "%s", a);
}

static void put_time(struct sbuf *w, int64_t ms, int tz_min)
{
	char t[40];

	if (ms && budget_time_str(ms, tz_min, t, sizeof(t)))
		sbuf_printf(w, "\"%s\"", t);
	else
		sbuf_printf(w, "null");
}

static const char *const window_key[BUDGET_USD_KINDS] = { "5h", "day", "week", "month" };

/* "limits", "spent_usd", "remaining_usd", "resets" of one scope. */
static void put_scope(struct sbuf *w, const struct budget_limits *l,
                      const struct selfusage_spend *s, int tz_min)
{
	int first = 1;

	sbuf_printf(w, "\"spent_usd\": {");
	for (int k = 0; k < BUDGET_USD_KINDS; k++) {
		sbuf_printf(w, "%s\"%s\": ", k ? ", " : "", window_key[k]);
		put_usd(w, s->spent[k]);
	}
	sbuf_printf(w, "}, \"limits\": {");
	for (int k = 0; k < BUDGET_KINDS; k++) {
		if (!(l->set & (1u << k)))
			continue;
		sbuf_printf(w, "%s\"%s\": ", first ? "" : ", ", budget_kind_name((enum budget_kind)k));
		if (BUDGET_IS_USD(k))
			put_usd(w, l->v[k]);
		else
			sbuf_printf(w, "%" PRIu64, l->v[k]);
		first = 0;
	}
	sbuf_printf(w, "}, \"remaining_usd\": {");
	first = 1;
	for (int k = 0; k < BUDGET_USD_KINDS; k++) {
		if (!(l->set & (1u << k)))
			continue;
		sbuf_printf(w, "%s\"%s\": ", first ? "" : ", ", budget_kind_name((enum budget_kind)k));
		put_usd(w, s->spent[k] < l->v[k] ? l->v[k] - s->spent[k] : 0);
		first = 0;
	}
	sbuf_printf(w, "}, \"resets\": {");
	first = 1;
	for (int k = 0; k < BUDGET_USD_KINDS; k++) {
		if (!(l->set & (1u << k)))
			continue;
		sbuf_printf(w, "%s\"%s\": ", first ? "" : ", ", budget_kind_name((enum budget_kind)k));
		put_time(w, s->reset_ms[k], tz_min);
		first = 0;
	}
	sbuf_printf(w, "}");
}

long selfusage_json(const struct selfusage *u, char *out, size_t size)
{
	struct sbuf w = { out, size, 0, 0 };

	sbuf_printf(&w, "{\"token\": ");
	put_str(&w, u->token);
	sbuf_printf(&w, ", \"group\": ");
	put_str(&w, u->group);
	sbuf_printf(&w, ", ");
	put_scope(&w, &u->limits, &u->mine, u->tz_min);
	if (u->total.set) {
		sbuf_printf(&w, ", \"group_total\": {");
		put_scope(&w, &u->total, &u->group_spend, u->tz_min);
		sbuf_printf(&w, "}");
	}
	sbuf_printf(&w, ", \"today\": {\"day\": \"%s\", \"requests\": %" PRIu64 ", \"input\": %" PRIu64
	    ", \"output\": %" PRIu64 ", \"cache_read\": %" PRIu64 ", \"cache_write\": %" PRIu64
	    ", \"cost_usd\": ", u->day, u->requests, u->input, u->output, u->cache_read,
	    u->cache_write);
	put_usd(&w, u->cost_nusd);
	sbuf_printf(&w, ", \"by_model\": {");
	for (size_t i = 0; i < u->n_models; i++) {
		sbuf_printf(&w, "%s", i ? ", " : "");
		put_str(&w, u->models[i].name);
		sbuf_printf(&w, ": {\"requests\": %" PRIu64 ", \"cost_usd\": ", u->models[i].requests);
		put_usd(&w, u->models[i].cost_nusd);
		sbuf_printf(&w, "}");
	}
	sbuf_printf(&w, "}%s}}", u->models_cut ? ", \"by_model_cut\": true" : "");
	return w.full ? -1 : (long)w.off;
}

/* ---------------------------------------------------------------------- */
/* Replies                                                                */
/* ---------------------------------------------------------------------- */

static uint64_t num(const redisReply *r)
{
	if (!r || r->type != REDIS_REPLY_STRING || !r->len || r->str[0] < '0' || r->str[0] > '9')
		return 0;
	return strtoull(r->str, NULL, 10);
}

void selfusage_read_5h(const redisReply *rep, int64_t now_ms, uint64_t *spent,
                       int64_t *reset_ms)
{
	int64_t cur = budget_bucket(now_ms), oldest = INT64_MAX;

	*spent = 0;
	*reset_ms = 0;
	if (!rep || rep->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		int64_t b = (int64_t)num(rep->element[i]);

		if (b > cur - BUDGET_5H_BUCKETS && b <= cur) {
			*spent += num(rep->element[i + 1]);
			if (b < oldest)
				oldest = b;
		}
	}
	if (oldest != INT64_MAX)
		*reset_ms = (oldest + BUDGET_5H_BUCKETS) * 60000;
}

void selfusage_read_day(const redisReply *rep, struct selfusage *u, struct selfusage_model *m)
{
	if (!rep || rep->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i + 1 < rep->elements; i += 2) {
		const redisReply *k = rep->element[i];
		uint64_t v = num(rep->element[i + 1]);

		if (k->type != REDIS_REPLY_STRING)
			continue;
		if (m) {
			if (!strcmp(k->str, RKEY_UF_REQUESTS))
				m->requests += v;
			else if (!strcmp(k->str, RKEY_UF_COST_NUSD))
				m->cost_nusd += v;
			continue;
		}
		if (!strcmp(k->str, RKEY_UF_REQUESTS))
			u->requests += v;
		else if (!strcmp(k->str, RKEY_UF_INPUT))
			u->input += v;
		else if (!strcmp(k->str, RKEY_UF_OUTPUT))
			u->output += v;
		else if (!strcmp(k->str, RKEY_UF_CACHE_READ))
			u->cache_read += v;
		else if (!strcmp(k->str, RKEY_UF_CACHE_WRITE_5M) ||
		         !strcmp(k->str, RKEY_UF_CACHE_WRITE_1H))
			u->cache_write += v;
		else if (!strcmp(k->str, RKEY_UF_COST_NUSD))
			u->cost_nusd += v;
	}
}

/* ---------------------------------------------------------------------- */
/* I/O                                                                    */
/* ---------------------------------------------------------------------- */

/* One gathering: its commands in flight, what they filled. */
struct su_call {
	struct selfusage u;
	struct rdb *r;
	selfusage_cb cb;
	void *arg;
	int pending;
	int failed;
	int round;
	char tseg[RECORD_SEG_MAX], gseg[RECORD_SEG_MAX], daykey[RECORD_DAY_LEN + 1];
};

/* What one command fills. */
enum su_what {
	SU_SPEND,       /* idx: the window; scope: 0 token, 1 group */
	SU_TODAY,
	SU_COMBOS,
	SU_COMBO,       /* idx: the model */
};

struct su_op {
	struct su_call *c;
	enum su_what what;
	int idx, scope;
};

static void su_done(struct su_call *c);
static void su_round2(struct su_call *c, const redisReply *members);

static void on_reply(struct rdb *r, redisReply *rep, void *arg)
{
	struct su_op *op = arg;
	struct su_call *c = op->c;
	struct selfusage_spend *s = op->scope ? &c->u.group_spend : &c->u.mine;

	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		if (rep)
			rlog(LOG_LVL_ERR, "usage of token %s: Redis error: %s", c->u.token, rep->str);
		c->failed = 1;
	} else {
		switch (op->what) {
		case SU_SPEND:
			if (op->idx == BUDGET_USD_5H)
				selfusage_read_5h(rep, c->u.now_ms, &s->spent[op->idx],
				                  &s->reset_ms[op->idx]);
			else
				s->spent[op->idx] = num(rep);
			break;
		case SU_TODAY:
			selfusage_read_day(rep, &c->u, NULL);
			break;
		case SU_COMBOS:
			su_round2(c, rep);
			break;
		case SU_COMBO:
			selfusage_read_day(rep, &c->u, &c->u.models[op->idx]);
			break;
		}
	}
	free(op);
	if (--c->pending == 0)
		su_done(c);
}

/* Sends one command; a refusal to queue (Redis down) fails the call. */
__attribute__((format(printf, 5, 6)))
static void su_send(struct su_call *c, enum su_what what, int idx, int scope,
                    const char *fmt, ...)
{
	struct su_op *op = calloc(1, sizeof(*op));
	char cmd[RECORD_SEG_MAX * 3 + 128], *save = NULL;
	const char *argv[4];
	size_t argvlen[4];
	va_list ap;
	int n, argc = 0;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (!op || n < 0 || (size_t)n >= sizeof(cmd)) {
		free(op);
		c->failed = 1;
		return;
	}
	*op = (struct su_op){ c, what, idx, scope };
	/* Keys are made of segments ([A-Za-z0-9._@/+%()-]): never a blank,
	 * so the words of cmd are the arguments. */
	for (char *t = strtok_r(cmd, " ", &save); t && argc < 4; t = strtok_r(NULL, " ", &save)) {
		argv[argc] = t;
		argvlen[argc++] = strlen(t);
	}
	c->pending++;
	if (rdb_command_argv(c->r, on_reply, op, argc, argv, argvlen) < 0) {
		c->pending--;
		c->failed = 1;
		free(op);
	}
}

static void send_spend(struct su_call *c, int scope, const char *seg)
{
	struct budget_window w;

	for (int k = 0; k < BUDGET_USD_KINDS; k++) {
		struct selfusage_spend *s = scope ? &c->u.group_spend : &c->u.mine;

		if (budget_window((enum budget_kind)k, c->u.now_ms, c->u.tz_min, &w) < 0) {
			c->failed = 1;
			return;
		}
		if (k != BUDGET_USD_5H)
			s->reset_ms[k] = w.end_ms;
		su_send(c, SU_SPEND, k, scope, "%s %s%s:%s:%s", k == BUDGET_USD_5H ? "HGETALL" : "GET",
		        RKEY_SPEND_PREFIX, scope ? "g" : "t", seg, w.id);
	}
}

/* Round 2: today's combinations of this token ("<tok>:<model>:<chan>"),
 * summed by model. */
static void su_round2(struct su_call *c, const redisReply *members)
{
	size_t tl = strlen(c->tseg);

	if (members->type != REDIS_REPLY_ARRAY)
		return;
	for (size_t i = 0; i < members->elements; i++) {
		const redisReply *m = members->element[i];
		const char *model, *end;
		char name[sizeof(c->u.models[0].name)];
		size_t j;

		if (m->type != REDIS_REPLY_STRING || m->len <= tl + 1 ||
		    memcmp(m->str, c->tseg, tl) || m->str[tl] != ':')
			continue;
		model = m->str + tl + 1;
		end = memchr(model, ':', m->len - tl - 1);
		if (!end || record_seg_decode(model, (size_t)(end - model), name, sizeof(name)) < 0)
			continue;
		for (j = 0; j < c->u.n_models; j++)
			if (!strcmp(c->u.models[j].name, name))
				break;
		if (j == c->u.n_models) {
			if (j == SELFUSAGE_MODELS_MAX) {
				c->u.models_cut = 1;
				continue;
			}
			snprintf(c->u.models[j].name, sizeof(c->u.models[j].name), "%s", name);
			c->u.n_models++;
		}
		su_send(c, SU_COMBO, (int)j, 0, "HGETALL %s%.*s:%s", RKEY_USAGE_COMBO_PREFIX,
		        (int)m->len, m->str, c->daykey);
	}
}

static void su_done(struct su_call *c)
{
	c->cb(c->arg, &c->u, !c->failed);
	free(c);
}

void selfusage_start(struct rdb *r, const struct selfusage *u, selfusage_cb cb, void *arg)
{
	struct su_call *c = calloc(1, sizeof(*c));

	if (!c || !r || record_seg_encode(u->token, c->tseg, sizeof(c->tseg)) < 0 ||
	    record_seg_encode(u->group, c->gseg, sizeof(c->gseg)) < 0 ||
	    record_day(u->now_ms, c->daykey) < 0) {
		free(c);
		cb(arg, u, 0);
		return;
	}
	c->u = *u;
	snprintf(c->u.day, sizeof(c->u.day), "%.4s-%.2s-%.2s", c->daykey, c->daykey + 4,
	         c->daykey + 6);
	c->r = r;
	c->cb = cb;
	c->arg = arg;
	/* Held while sending, so that replies arriving at once cannot end
	 * the call before every command is out. */
	c->pending = 1;
	send_spend(c, 0, c->tseg);
	if (u->total.set)
		send_spend(c, 1, c->gseg);
	su_send(c, SU_TODAY, 0, 0, "HGETALL %s%s:%s", RKEY_USAGE_TOKEN_PREFIX, c->tseg, c->daykey);
	su_send(c, SU_COMBOS, 0, 0, "SMEMBERS %s%s", RKEY_USAGE_COMBOS_PREFIX, c->daykey);
	if (--c->pending == 0)
		su_done(c);
}
