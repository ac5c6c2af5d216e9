/*
 * A token's own usage, as GET /api/usage answers it on the client frontend
 * (docs/api.md): its limits, its spend in each budget window, what remains
 * and when each window resets, and today's requests, tokens and cost by
 * model. The JSON is built from a struct filled from Redis: the building
 * and the reading of replies are pure (tested in test_selfusage); the
 * gathering sends its commands through an rdb (I/O), two rounds at most.
 */
#ifndef REALMS_SELFUSAGE_H
#define REALMS_SELFUSAGE_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include <realms/budget-t.h>
#include <realms/limits.h>
#include <realms/tokcache-t.h>

struct rdb;

struct selfusage_model {
	char name[257];
	uint64_t requests, cost_nusd;
};

/* Spend of one scope (the token, or its group's total) per usd/ window. */
struct selfusage_spend {
	uint64_t spent[BUDGET_USD_KINDS];
	int64_t reset_ms[BUDGET_USD_KINDS];   /* 0: unknown (an empty 5h window) */
};

struct selfusage {
	char token[TOKEN_FIELD_MAX + 1];
	char group[TOKEN_FIELD_MAX + 1];
	struct budget_limits limits;          /* the token's over its group's */
	struct budget_limits total;           /* the group's shared totals */
	struct selfusage_spend mine, group_spend;
	int64_t now_ms;
	int tz_min;
	char day[11];                         /* today (UTC, as usage records) */
	uint64_t requests, input, output, cache_read, cache_write, cost_nusd;
	struct selfusage_model models[SELFUSAGE_MODELS_MAX];
	size_t n_models;
	int models_cut;                       /* more models than shown */
};

/* The JSON answer for u into out. Returns its length, or -1 if size is
 * too small. Pure. */
long selfusage_json(const struct selfusage *u, char *out, size_t size);

/* Reads a 5h spend hash (HGETALL reply: minute bucket -> nano-USD) at
 * now_ms: the spend of the buckets in the window, and when its oldest
 * leaves it. Pure. */
void selfusage_read_5h(const redisReply *rep, int64_t now_ms, uint64_t *spent,
                       int64_t *reset_ms);

/* Adds a day hash of usage counters (HGETALL reply) into u's today, or
 * into model m when m is not NULL. Pure. */
void selfusage_read_day(const redisReply *rep, struct selfusage *u, struct selfusage_model *m);

/* ---- I/O ------------------------------------------------------------ */

/* cb fires exactly once: with u filled (ok 1), or ok 0 when Redis could
 * not answer. */
typedef void (*selfusage_cb)(void *arg, const struct selfusage *u, int ok);

/* Gathers u's spend and today's usage through r; u arrives with token,
 * group, limits, total, now_ms, tz_min and day set. cb may fire before
 * this returns. */
void selfusage_start(struct rdb *r, const struct selfusage *u, selfusage_cb cb, void *arg);

#endif /* REALMS_SELFUSAGE_H */
