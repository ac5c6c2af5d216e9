/*
 * Admission (contract in realms/admit.h). The script, its argument vector
 * and the reading of its answer are pure; admit_start(), admit_release()
 * and admit_heartbeat() send them through an rdb.
 *
 * Keys (docs/redis.md):
 *   realms:rpm:<token>             ZSET rid -> ms of admission (last 60 s)
 *   realms:inflight:<token>        HASH rid -> "<gw> <expiry ms>"
 *   realms:spend:t:<token>:<win>   spend of a calendar window (STRING,
 *                                  nano-USD); ":5h" is a HASH of minute
 *                                  buckets -> nano-USD
 *   realms:spend:g:<group>:<win>   the same for a group's totals
 *   realms:resv:t:<token>          HASH rid -> "<nano-USD> <gw> <expiry ms>"
 *   realms:resv:g:<group>          the same for a group
 *   realms:gw:<gw>                 a gateway's heartbeat (PX ADMIT_GW_TTL_MS)
 * The spend counters are written by the usage record's commit (record.c),
 * in the windows of the request's start.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <ev.h>
#include <openssl/sha.h>

#include <realms/admit.h>
#include <realms/budget.h>
#include <realms/config.h>
#include <realms/clock.h>
#include <realms/limits.h>
#include <realms/log.h>
#include <realms/rdb.h>
#include <realms/record.h>
#include <realms/rkeys.h>
#include <realms/state.h>
#include <realms/worker.h>

/* KEYS: [1] rpm zset, [2] in-flight hash, then per budget b its spend key
 * (2 + 2b - 1) and its scope's reservation hash (2 + 2b).
 * ARGV: [1] rid, [2] gateway, [3] heartbeat key prefix, [4] reservation,
 * [5] lease ms, [6] rpm limit (0: none), [7] concurrency limit (0: none),
 * [8] budgets, then per budget: its window ("5h" or "cal") and limit.
 * Replies: {0} admitted; {1, b, spent, reset_ms} budget b spent; {2, b,
 * spent} its rest held by reservations; {3, retry_after_s} rpm; {4}
 * concurrency. Each call refreshes the calling gateway's heartbeat. Every reservation and slot names its gateway and lease end;
 * one whose gateway's heartbeat is gone, or whose lease ended, is dropped
 * when met. Lua numbers are doubles: sums stay exact below 2^53 nano-USD
 * ($9M), far above any budget. */
static const char script[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local rid, gw, gwp = ARGV[1], ARGV[2], ARGV[3]\n"
	"local reserve, lease = ARGV[4], tonumber(ARGV[5])\n"
	"local rpm, conc, nb = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])\n"
	"redis.call('SET', gwp .. gw, '1', 'PX', " LIMIT_STR(ADMIT_GW_TTL_MS) ")\n"
	"local alive = {}\n"
	"local function gw_alive(g)\n"
	"  if alive[g] == nil then alive[g] = redis.call('EXISTS', gwp .. g) == 1 end\n"
	"  return alive[g]\n"
	"end\n"
	"local function live(key, amounts)\n"
	"  local h = redis.call('HGETALL', key)\n"
	"  local sum, n = 0, 0\n"
	"  for i = 1, #h, 2 do\n"
	"    local f = {}\n"
	"    for w in string.gmatch(h[i + 1], '%S+') do f[#f + 1] = w end\n"
	"    local o = amounts and 1 or 0\n"
	"    local exp = tonumber(f[o + 2])\n"
	"    if exp and exp > now and f[o + 1] and gw_alive(f[o + 1]) then\n"
	"      n = n + 1\n"
	"      if amounts then sum = sum + tonumber(f[1]) end\n"
	"    else\n"
	"      redis.call('HDEL', key, h[i])\n"
	"    end\n"
	"  end\n"
	"  return sum, n\n"
	"end\n"
	"local cur = math.floor(now / 60000)\n"
	"local spent = {}\n"
	"for b = 1, nb do\n"
	"  local kind, limit = ARGV[7 + 2 * b], tonumber(ARGV[8 + 2 * b])\n"
	"  local sk, s = KEYS[1 + 2 * b], 0\n"
	"  if kind == '5h' then\n"
	"    local h = redis.call('HGETALL', sk)\n"
	"    local bs = {}\n"
	"    for i = 1, #h, 2 do\n"
	"      local bk = tonumber(h[i])\n"
	"      if bk > cur - " LIMIT_STR(BUDGET_5H_BUCKETS) " then\n"
	"        s = s + tonumber(h[i + 1])\n"
	"        bs[#bs + 1] = {bk, tonumber(h[i + 1])}\n"
	"      else\n"
	"        redis.call('HDEL', sk, h[i])\n"
	"      end\n"
	"    end\n"
	"    if s >= limit then\n"
	"      table.sort(bs, function(x, y) return x[1] < y[1] end)\n"
	"      local left = s\n"
	"      for _, e in ipairs(bs) do\n"
	"        left = left - e[2]\n"
	"        if left < limit then return {1, b, string.format('%.0f', s), (e[1] + " LIMIT_STR(BUDGET_5H_BUCKETS) ") * 60000} end\n"
	"      end\n"
	"    end\n"
	"  else\n"
	"    s = tonumber(redis.call('GET', sk) or '0')\n"
	"    if s >= limit then return {1, b, string.format('%.0f', s), 0} end\n"
	"  end\n"
	"  spent[b] = s\n"
	"end\n"
	"local held = {}\n"
	"for b = 1, nb do\n"
	"  local rk = KEYS[2 + 2 * b]\n"
	"  if held[rk] == nil then held[rk] = live(rk, true) end\n"
	"  if spent[b] + held[rk] >= tonumber(ARGV[8 + 2 * b]) then\n"
	"    return {2, b, string.format('%.0f', spent[b])}\n"
	"  end\n"
	"end\n"
	"if rpm > 0 then\n"
	"  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 60000)\n"
	"  if redis.call('ZCARD', KEYS[1]) >= rpm then\n"
	"    local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
	"    return {3, math.ceil((tonumber(first[2]) + 60000 - now) / 1000)}\n"
	"  end\n"
	"end\n"
	"if conc > 0 then\n"
	"  local _, n = live(KEYS[2], false)\n"
	"  if n >= conc then return {4} end\n"
	"end\n"
	"local exp = now + lease\n"
	"if rpm > 0 then\n"
	"  redis.call('ZADD', KEYS[1], now, rid)\n"
	"  redis.call('PEXPIRE', KEYS[1], 61000)\n"
	"end\n"
	"if conc > 0 then\n"
	"  redis.call('HSET', KEYS[2], rid, gw .. ' ' .. exp)\n"
	"  redis.call('PEXPIRE', KEYS[2], lease)\n"
	"end\n"
	"local done = {}\n"
	"for b = 1, nb do\n"
	"  local rk = KEYS[2 + 2 * b]\n"
	"  if not done[rk] then\n"
	"    done[rk] = true\n"
	"    redis.call('HSET', rk, rid, reserve .. ' ' .. gw .. ' ' .. exp)\n"
	"    redis.call('PEXPIRE', rk, lease)\n"
	"  end\n"
	"end\n"
	"return {0}\n";

const char *admit_script(size_t *len)
{
	if (len)
		*len = sizeof(script) - 1;
	return script;
}

const char *admit_script_sha(void)
{
	static char hex[41];

	if (!hex[0]) {
		unsigned char d[SHA_DIGEST_LENGTH];

		SHA1((const unsigned char *)script, sizeof(script) - 1, d);
		for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
			snprintf(hex + 2 * i, 3, "%02x", d[i]);
	}
	return hex;
}

int admit_needed(const struct admit_req *q)
{
	return q->limits.set != 0 || q->total.set != 0;
}

/* The budgets of q in the script's order: the token's usd/ kinds, then
 * its group's totals. Returns how many; kind and scope of each in out. */
struct budget_ref {
	enum budget_kind kind;
	int group;
	uint64_t limit;
};

static int budgets_of(const struct admit_req *q, struct budget_ref out[2 * BUDGET_USD_KINDS])
{
	int n = 0;

	for (int k = 0; k < BUDGET_USD_KINDS; k++)
		if (q->limits.set & (1u << k))
			out[n++] = (struct budget_ref){ (enum budget_kind)k, 0, q->limits.v[k] };
	for (int k = 0; k < BUDGET_USD_KINDS; k++)
		if (q->total.set & (1u << k))
			out[n++] = (struct budget_ref){ (enum budget_kind)k, 1, q->total.v[k] };
	return n;
}

int admit_argv(const struct admit_req *q, const char *gw, const char *sha,
               struct rargv *out)
{
	char tok[RECORD_SEG_MAX], grp[RECORD_SEG_MAX];
	struct budget_ref b[2 * BUDGET_USD_KINDS];
	struct budget_window w;
	int nb = budgets_of(q, b);
	int64_t now = clock_unix_s() * 1000;

	rargv_init(out);
	if (record_seg_encode(q->token, tok, sizeof(tok)) < 0 ||
	    record_seg_encode(q->group, grp, sizeof(grp)) < 0)
		return -1;
	if (sha) {
		rargv_add(out, "EVALSHA");
		rargv_add(out, "%s", sha);
	} else {
		rargv_add(out, "EVAL");
		rargv_ref(out, script, sizeof(script) - 1);
	}
	rargv_add(out, "%d", 2 + 2 * nb);
	rargv_add(out, "%s%s", RKEY_RPM_PREFIX, tok);
	rargv_add(out, "%s%s", RKEY_INFLIGHT_PREFIX, tok);
	for (int i = 0; i < nb; i++) {
		/* The calendar window at admission is the agent's clock's:
		 * a few ms of skew between gateways only moves the instant a
		 * window turns. */
		if (budget_window(b[i].kind, now, q->tz_min, &w) < 0)
			return -1;
		rargv_add(out, "%s%s:%s:%s", RKEY_SPEND_PREFIX, b[i].group ? "g" : "t",
		          b[i].group ? grp : tok, w.id);
		rargv_add(out, "%s%s:%s", RKEY_RESV_PREFIX, b[i].group ? "g" : "t",
		          b[i].group ? grp : tok);
	}
	rargv_add(out, "%s", q->rid);
	rargv_add(out, "%s", gw);
	rargv_add(out, "%s", RKEY_GW_PREFIX);
	rargv_add(out, "%" PRIu64, q->reserve_nusd);
	rargv_add(out, "%lld", (long long)ADMIT_LEASE_MS);
	rargv_add(out, "%" PRIu64, (q->limits.set & (1u << BUDGET_RPM)) ? q->limits.v[BUDGET_RPM] : 0);
	rargv_add(out, "%" PRIu64, (q->limits.set & (1u << BUDGET_CONCURRENCY)) ?
	          q->limits.v[BUDGET_CONCURRENCY] : 0);
	rargv_add(out, "%d", nb);
	for (int i = 0; i < nb; i++) {
		rargv_add(out, "%s", b[i].kind == BUDGET_USD_5H ? "5h" : "cal");
		rargv_add(out, "%" PRIu64, b[i].limit);
	}
	return out->argc < 0 ? -1 : 0;
}

static uint64_t reply_u64(const redisReply *r)
{
	if (r->type == REDIS_REPLY_INTEGER)
		return r->integer > 0 ? (uint64_t)r->integer : 0;
	if (r->type == REDIS_REPLY_STRING)
		return strtoull(r->str, NULL, 10);
	return 0;
}

void admit_parse(const struct admit_req *q, const redisReply *rep, struct admit_answer *a)
{
	struct budget_ref b[2 * BUDGET_USD_KINDS];
	int nb = budgets_of(q, b);
	long long code, bi;

	memset(a, 0, sizeof(*a));
	a->result = ADMIT_UNAVAILABLE;
	if (!rep || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
	    rep->element[0]->type != REDIS_REPLY_INTEGER)
		return;
	code = rep->element[0]->integer;
	switch (code) {
	case 0:
		a->result = ADMIT_OK;
		return;
	case 1:
	case 2:
		if (rep->elements < 3 || rep->element[1]->type != REDIS_REPLY_INTEGER)
			return;
		bi = rep->element[1]->integer;
		if (bi < 1 || bi > nb)
			return;
		a->result = code == 1 ? ADMIT_SPENT : ADMIT_RESERVED;
		a->kind = b[bi - 1].kind;
		a->group_total = b[bi - 1].group;
		a->limit = b[bi - 1].limit;
		a->spent = reply_u64(rep->element[2]);
		if (code == 1 && rep->elements >= 4)
			a->reset_ms = (int64_t)reply_u64(rep->element[3]);
		a->retry_after_s = ADMIT_RESERVED_RETRY_S;
		return;
	case 3:
		a->result = ADMIT_RPM;
		a->retry_after_s = rep->elements >= 2 ? (int)reply_u64(rep->element[1]) : 60;
		if (a->retry_after_s < 1)
			a->retry_after_s = 1;
		if (a->retry_after_s > 60)
			a->retry_after_s = 60;
		return;
	case 4:
		a->result = ADMIT_CONCURRENCY;
		a->retry_after_s = ADMIT_CONCURRENCY_RETRY_S;
		return;
	}
}

int admit_release_argv(const char *token, const char *group, const char *rid,
                       struct rargv *out)
{
	char tok[RECORD_SEG_MAX], grp[RECORD_SEG_MAX];

	rargv_init(out);
	if (record_seg_encode(token, tok, sizeof(tok)) < 0 ||
	    record_seg_encode(group, grp, sizeof(grp)) < 0)
		return -1;
	/* Three HDELs in one MULTI would need three replies; one script-free
	 * way: each hash gets its own HDEL, sent without waiting. */
	rargv_add(out, "%s%s", RKEY_INFLIGHT_PREFIX, tok);
	rargv_add(out, "%s%s:%s", RKEY_RESV_PREFIX, "t", tok);
	rargv_add(out, "%s%s:%s", RKEY_RESV_PREFIX, "g", grp);
	rargv_add(out, "%s", rid);
	return out->argc < 0 ? -1 : 0;
}

/* ---------------------------------------------------------------------- */
/* I/O                                                                    */
/* ---------------------------------------------------------------------- */

const char *admit_gateway(void)
{
	static char id[17];

	if (!id[0]) {
		unsigned char r[8] = { 0 };

		if (getrandom(r, sizeof(r), 0) != sizeof(r))
			for (size_t i = 0; i < sizeof(r); i++)
				r[i] = (unsigned char)((uintptr_t)&r >> (i * 3) ^ clock_mono_ms() >> i);
		for (int i = 0; i < 8; i++)
			snprintf(id + 2 * i, 3, "%02x", r[i]);
	}
	return id;
}

struct admit_call {
	struct admit_req q;
	char token[128], group[128], rid[128];
	admit_cb cb;
	void *arg;
	int tried_eval;
};

/* Per worker: a Redis connection for admissions and releases; worker 0
 * also keeps this gateway's heartbeat. */
struct admit_worker {
	struct rdb *rdb;
	struct ev_loop *loop;
	ev_timer beat;
};

static int admit_module = -1;

static void heartbeat(struct rdb *r)
{
	rdb_command(r, NULL, NULL, "SET %s%s 1 PX %d", RKEY_GW_PREFIX, admit_gateway(),
	            ADMIT_GW_TTL_MS);
}

static void beat_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct admit_worker *aw = t->data;

	heartbeat(aw->rdb);
}

static void on_admit_connect(struct rdb *r, void *arg)
{
	heartbeat(r);
}

static void *admit_worker_init(struct worker *w, struct ev_loop *loop)
{
	struct admit_worker *aw = calloc(1, sizeof(*aw));
	struct realms_config *cfg = state_config();

	if (!aw || !cfg) {
		free(aw);
		config_unref(cfg);
		return NULL;
	}
	aw->loop = loop;
	aw->rdb = rdb_new(loop, state_redis(cfg), "admission",
	                  worker_id(w) == 0 ? on_admit_connect : NULL, NULL);
	config_unref(cfg);
	if (worker_id(w) == 0) {
		ev_timer_init(&aw->beat, beat_cb, ADMIT_GW_BEAT_MS / 1000., ADMIT_GW_BEAT_MS / 1000.);
		aw->beat.data = aw;
		ev_timer_start(loop, &aw->beat);
	}
	return aw;
}

static void admit_worker_fini(struct worker *w, void *ctx)
{
	struct admit_worker *aw = ctx;

	if (!aw)
		return;
	ev_timer_stop(aw->loop, &aw->beat);
	rdb_free(aw->rdb);
	free(aw);
}

static const struct worker_module admit_worker_module = {
	.name = "admission",
	.init = admit_worker_init,
	.fini = admit_worker_fini,
};

int admit_register(void)
{
	if (admit_module < 0)
		admit_module = worker_module_register(&admit_worker_module);
	return admit_module < 0 ? -1 : 0;
}

static struct rdb *worker_rdb(struct worker *w)
{
	struct admit_worker *aw = w && admit_module >= 0 ? worker_module_ctx(w, admit_module) : NULL;

	return aw ? aw->rdb : NULL;
}

static int admit_send(struct rdb *r, struct admit_call *c);

static void on_admit(struct rdb *r, redisReply *rep, void *arg)
{
	struct admit_call *c = arg;
	struct admit_answer a;

	if (rep && rep->type == REDIS_REPLY_ERROR && !c->tried_eval &&
	    !strncmp(rep->str, "NOSCRIPT", 8)) {
		/* Redis restarted or flushed its scripts: EVAL caches it again. */
		c->tried_eval = 1;
		if (admit_send(r, c) == 0)
			return;
		rep = NULL;
	}
	if (rep && rep->type == REDIS_REPLY_ERROR)
		rlog(LOG_LVL_ERR, "admission of %s: Redis error: %s", c->q.rid, rep->str);
	admit_parse(&c->q, rep, &a);
	c->cb(c->arg, &a);
	free(c);
}

static int admit_send(struct rdb *r, struct admit_call *c)
{
	static _Thread_local struct rargv a;

	if (admit_argv(&c->q, admit_gateway(), c->tried_eval ? NULL : admit_script_sha(), &a) < 0)
		return -1;
	return rdb_command_argv(r, on_admit, c, a.argc, a.argv, a.argvlen);
}

void admit_start(struct worker *w, const struct admit_req *q, admit_cb cb, void *arg)
{
	struct rdb *r = worker_rdb(w);
	struct admit_call *c = calloc(1, sizeof(*c));
	struct admit_answer a = { .result = ADMIT_UNAVAILABLE };

	if (!c) {
		cb(arg, &a);
		return;
	}
	c->q = *q;
	snprintf(c->token, sizeof(c->token), "%s", q->token);
	snprintf(c->group, sizeof(c->group), "%s", q->group);
	snprintf(c->rid, sizeof(c->rid), "%s", q->rid);
	c->q.token = c->token;
	c->q.group = c->group;
	c->q.rid = c->rid;
	c->cb = cb;
	c->arg = arg;
	if (!r || admit_send(r, c) < 0) {
		cb(arg, &a);
		free(c);
	}
}

void admit_release(struct worker *w, const char *token, const char *group, const char *rid)
{
	struct rdb *r = worker_rdb(w);
	static _Thread_local struct rargv a;

	if (!r || admit_release_argv(token, group, rid, &a) < 0)
		return;
	rdb_command(r, NULL, NULL, "HDEL %s %s", a.argv[0], a.argv[3]);
	rdb_command(r, NULL, NULL, "HDEL %s %s", a.argv[1], a.argv[3]);
	rdb_command(r, NULL, NULL, "HDEL %s %s", a.argv[2], a.argv[3]);
}
