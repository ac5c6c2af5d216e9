/*
 * Budgets and limits: types. A token (or a group, for its defaults and
 * shared totals) may have a limit of each kind; amounts are integer
 * nano-USD, like every cost in Realms.
 */
#ifndef REALMS_BUDGET_T_H
#define REALMS_BUDGET_T_H

#include <stdint.h>

enum budget_kind {
	BUDGET_USD_5H = 0,       /* rolling five hours, minute buckets */
	BUDGET_USD_DAY,          /* calendar day in the configured offset */
	BUDGET_USD_WEEK,         /* calendar week, Monday first */
	BUDGET_USD_MONTH,        /* calendar month */
	BUDGET_RPM,              /* requests in the last 60 s */
	BUDGET_CONCURRENCY,      /* requests in flight (streams until their end) */
	BUDGET_KINDS,
};

/* Whether a kind is an amount of money (the four usd/ windows). */
#define BUDGET_IS_USD(k)  ((k) <= BUDGET_USD_MONTH)
/* The usd/ kinds, for loops over windows. */
#define BUDGET_USD_KINDS  (BUDGET_USD_MONTH + 1)

/* A set of limits: v[k] is meaningful when bit k of `set` is. */
struct budget_limits {
	uint64_t v[BUDGET_KINDS];   /* nano-USD for usd/ kinds, a count else */
	unsigned int set;
};

/* A window of time: [start_ms, end_ms), and the id its spend counter is
 * kept under ("d20261206", "w20261130" (its Monday), "m202612"; "5h"
 * for the rolling window, whose counter holds minute buckets). */
struct budget_window {
	int64_t start_ms;
	int64_t end_ms;
	char id[16];
};

#endif /* REALMS_BUDGET_T_H */
