/*
 * Admission: a request against its token's budgets, requests per minute
 * and requests in flight, and its group's shared totals, decided by one
 * script in Redis, atomically, so that every gateway on one Redis enforces
 * one limit. The script reserves the request's worst-case cost; the usage
 * record's commit replaces the reservation with the real cost (record.c),
 * and a request that ends without an answer releases it (admit_release).
 * Reservations and in-flight slots belong to a gateway whose heartbeat
 * (realms:gw:<id>, refreshed by admit_heartbeat) must be alive: those of a
 * gateway that died are dropped within ADMIT_GW_TTL_MS.
 *
 * The argument vectors and the reading of the answers are pure (tested in
 * test_admit); the rest sends them through an rdb (I/O).
 */
#ifndef REALMS_ADMIT_H
#define REALMS_ADMIT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include <realms/budget-t.h>
#include <realms/rargv.h>

struct worker;

/* One request to admit. Strings are borrowed for the call. */
struct admit_req {
	const char *token;              /* its name */
	const char *group;
	const char *rid;                /* the request id */
	struct budget_limits limits;    /* the token's, over its group's defaults */
	struct budget_limits total;     /* the group's shared totals (usd/ only) */
	uint64_t reserve_nusd;          /* the most it may cost */
	int tz_min;                     /* the configuration's UTC offset */
};

enum admit_result {
	ADMIT_OK = 0,
	ADMIT_SPENT,             /* a budget is spent: 403 */
	ADMIT_RESERVED,          /* requests in flight hold the rest: 429 */
	ADMIT_RPM,               /* requests per minute reached: 429 */
	ADMIT_CONCURRENCY,       /* requests in flight reached: 429 */
	ADMIT_UNAVAILABLE,       /* Redis could not answer */
};

struct admit_answer {
	enum admit_result result;
	enum budget_kind kind;   /* SPENT, RESERVED: the budget */
	int group_total;         /* SPENT, RESERVED: the group's total, not the token's */
	uint64_t limit;          /* SPENT, RESERVED: its amount (nano-USD) */
	uint64_t spent;          /* SPENT, RESERVED: settled in its window */
	int64_t reset_ms;        /* SPENT, usd/5h: when enough of it ages out */
	int retry_after_s;       /* 429s: seconds, 1 to 60 */
};

/* Whether q has anything to check (tokens without limits need no Redis
 * round trip). */
int admit_needed(const struct admit_req *q);

/* The script's text (static) and its SHA-1 in hex (computed once). */
const char *admit_script(size_t *len);
const char *admit_script_sha(void);

/* The EVALSHA (sha non-NULL) or EVAL call for q, from gateway gw. Returns
 * 0, or -1 if it does not fit. Pure. */
int admit_argv(const struct admit_req *q, const char *gw, const char *sha,
               struct rargv *out);

/* Reads the script's reply into *a (ADMIT_UNAVAILABLE for NULL or an
 * error). Pure. */
void admit_parse(const struct admit_req *q, const redisReply *rep, struct admit_answer *a);

/* What releases a request's holds (no answer came back): out gets the
 * in-flight hash, the token's and the group's reservation hashes, then
 * the rid, each an HDEL of the rid away. Pure. */
int admit_release_argv(const char *token, const char *group, const char *rid,
                       struct rargv *out);

/* ---- I/O ------------------------------------------------------------ */

typedef void (*admit_cb)(void *arg, const struct admit_answer *a);

/* This gateway's id, random per start (16 hex digits). */
const char *admit_gateway(void);

/* Registers the worker module that holds each worker's Redis connection
 * for admissions and worker 0's heartbeat timer (every ADMIT_GW_BEAT_MS).
 * Before the workers start; idempotent. Returns 0 or -1. */
int admit_register(void);

/* Admits q on worker w's connection; cb fires exactly once
 * (ADMIT_UNAVAILABLE when Redis cannot answer), possibly before this
 * returns. */
void admit_start(struct worker *w, const struct admit_req *q, admit_cb cb, void *arg);

/* Releases what a request holds (it ended without an answer); fire and
 * forget, on worker w's connection. */
void admit_release(struct worker *w, const char *token, const char *group, const char *rid);

#endif /* REALMS_ADMIT_H */
