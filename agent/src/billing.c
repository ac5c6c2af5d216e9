/*
 * Billing (contract in realms/billing.h).
 *
 * Prices come as doubles (USD per million tokens) from the configuration;
 * price_nusd_per_mtok() turns each into an exact integer of nano-USD per
 * million tokens, and everything after that is integer arithmetic, so the
 * same usage always costs the same nano-USD on every host.
 */
#include <stdint.h>

#include <realms/billing.h>

/* n units at `per` nano-USD per `scale` units, rounded half up. n < 2^64
 * and per <= PRICE_MAX_USD_PER_MTOK * 1e9 < 2^47, so the product fits in
 * 128 bits; the quotient may not fit in 64 and saturates. */
static uint64_t scaled_cost(uint64_t n, uint64_t per, uint64_t scale)
{
	unsigned __int128 c = (unsigned __int128)n * per;

	c = (c + scale / 2) / scale;
	return c > UINT64_MAX ? UINT64_MAX : (uint64_t)c;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t billing_cost_nusd(const struct price *p, const struct usage *u)
{
	const struct price_rates *r;
	uint64_t in_total, cost;

	if (!p || !u)
		return 0;
	in_total = sat_add(sat_add(u->input, u->cache_write_5m),
	                   sat_add(u->cache_write_1h, u->cache_read));
	r = price_rates_for(p, in_total);

	/* Rates are per million tokens. */
	cost = scaled_cost(u->input, price_nusd_per_mtok(r->input), 1000000);
	cost = sat_add(cost, scaled_cost(u->output, price_nusd_per_mtok(r->output), 1000000));
	cost = sat_add(cost, scaled_cost(u->cache_write_5m,
	                                 price_nusd_per_mtok(r->cache_write_5m), 1000000));
	cost = sat_add(cost, scaled_cost(u->cache_write_1h,
	                                 price_nusd_per_mtok(r->cache_write_1h), 1000000));
	cost = sat_add(cost, scaled_cost(u->cache_read, price_nusd_per_mtok(r->cache_read), 1000000));

	/* price_nusd_per_mtok() only scales USD to nano-USD (x 1e9): applied
	 * to the price of 1000 searches it gives nano-USD per 1000 searches. */
	cost = sat_add(cost, scaled_cost(u->web_search,
	                                 price_nusd_per_mtok(p->web_search_per_1k), 1000));
	return cost;
}
