/*
 * Billing: what an answer cost, from its usage and its model's price. A
 * pure function, integer arithmetic only.
 */
#ifndef REALMS_BILLING_H
#define REALMS_BILLING_H

#include <stdint.h>

#include <realms/prices.h>
#include <realms/usage-t.h>

/* The cost of usage *u at price *p, in integer nano-USD (1e-9 USD).
 *
 * The rates are price_rates_for(p, input + cache_write_5m + cache_write_1h
 * + cache_read): past the model's long-context threshold every kind,
 * output included, is billed at the long-context rates. Each kind costs
 * tokens * rate / 1e6 (rate in nano-USD per million tokens), web searches
 * count * web_search_per_1k / 1e3; each of these is rounded half up on its
 * own, then they are added. Intermediates are 128-bit; a result past
 * UINT64_MAX (not reachable with real counts) saturates.
 *
 * Only list prices apply: u->service_tier is not looked at, so a batch or
 * priority answer costs what a standard one does (the operator's price
 * table is the place to express a tier's price).
 *
 * p == NULL (a model without a price) or u == NULL costs 0. */
uint64_t billing_cost_nusd(const struct price *p, const struct usage *u);

#endif /* REALMS_BILLING_H */
