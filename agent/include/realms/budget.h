/*
 * Budgets and limits: the pure part. Limit specs as operators write them
 * ("usd/day=10", "rpm=30"), their stored form, exact dollar amounts, the
 * configured UTC offset, and the windows a moment falls in. No I/O, no
 * clock: times are passed in (unix milliseconds). The admission and
 * settlement scripts in Redis (admit.c, record.c) use these windows; see
 * docs/budgets.md.
 */
#ifndef REALMS_BUDGET_H
#define REALMS_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include <realms/budget-t.h>

/* ---- Names and specs -------------------------------------------------- */

/* "usd/5h", "usd/day", "usd/week", "usd/month", "rpm", "concurrency". */
const char *budget_kind_name(enum budget_kind k);

/* The kind named s[0..n). Returns 0, or -1 if no kind has that name. */
int budget_kind_parse(const char *s, size_t n, enum budget_kind *k);

/* An amount of US dollars, "10", "0.5", "12.000000001": digits, an
 * optional '.' and at most 9 decimals, into exact nano-USD (at most
 * BUDGET_USD_MAX dollars). Returns 0, or -1. */
int budget_usd_parse(const char *s, size_t n, uint64_t *nusd);

/* nano-USD as dollars with at least two decimals and no trailing zero
 * beyond them ("10.00", "10.04", "0.000000001"), exactly. Returns the
 * length written (NUL-terminated), or 0 if size is too small. */
size_t budget_usd_str(uint64_t nusd, char *out, size_t size);

/* A spec "NAME=VALUE" (what `realmsctl token add --limit` takes): a usd/
 * kind with an amount (budget_usd_parse), rpm or concurrency with an
 * integer from 1 to BUDGET_COUNT_MAX. Returns 0, or -1 with *why set to
 * a static reason. */
int budget_spec_parse(const char *s, size_t n, enum budget_kind *k, uint64_t *v,
                      const char **why);

/* The stored form of a set of limits: "usd/day=10000000000,rpm=30"
 * (amounts in nano-USD, kinds in enum order, "" for none). Returns the
 * length written (NUL-terminated), or 0 if size is too small. */
size_t budget_limits_encode(const struct budget_limits *l, char *out, size_t size);

/* Its inverse; unknown kinds are refused so that a typo never lifts a
 * limit. Returns 0, or -1 (l is then empty). */
int budget_limits_decode(const char *s, size_t n, struct budget_limits *l);

/* A token's limits over its group's defaults: each kind the token sets
 * replaces the group's. */
void budget_limits_merge(struct budget_limits *eff, const struct budget_limits *token,
                         const struct budget_limits *group);

/* ---- Time -------------------------------------------------------------- */

/* A UTC offset "+08:00", "-05:30", "Z" or "+00:00", from -14:00 to
 * +14:00, into minutes. Returns 0, or -1. */
int budget_tz_parse(const char *s, size_t n, int *minutes);

/* The window of kind k (a usd/ kind) that t_ms falls in, at UTC offset
 * tz_min: the calendar day, week (Monday 00:00) or month in local time,
 * or the rolling five hours ending at t_ms (id "5h"). Returns 0, or -1
 * for a time outside 1970..9999 or a kind that has no window. */
int budget_window(enum budget_kind k, int64_t t_ms, int tz_min, struct budget_window *w);

/* The minute bucket of the rolling window that t_ms falls in (minutes
 * since the epoch): spend is added to the bucket of the request's start,
 * and the window at t covers buckets (bucket(t) - BUDGET_5H_BUCKETS,
 * bucket(t)]. */
int64_t budget_bucket(int64_t t_ms);

/* t_ms as "2026-12-07T00:00:00+08:00" at offset tz_min ("Z" for 0).
 * Returns the length written, or 0. */
size_t budget_time_str(int64_t t_ms, int tz_min, char *out, size_t size);

/* ---- Costs -------------------------------------------------------------- */

struct price;

/* The most a request may cost, reserved at admission: its input estimated
 * from its body (body_bytes at USAGE_EST_BYTES_PER_TOKEN a token, at
 * the dearest input rate: plain, or written to the 5m or 1h cache) and max_tokens of output, at the model's prices. 0 without a
 * price. */
uint64_t budget_reserve_nusd(const struct price *p, uint64_t body_bytes, uint64_t max_tokens);

#endif /* REALMS_BUDGET_H */
