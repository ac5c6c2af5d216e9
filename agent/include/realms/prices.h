/*
 * Model prices: the struct the configuration and billing share, and the
 * default table shipped with the product (list prices at the time of
 * writing; a model's "price" in the configuration overrides its entry).
 *
 * The type lives here rather than in a prices-t.h because the table is its
 * only other user; config-t.h includes this header.
 */
#ifndef REALMS_PRICES_H
#define REALMS_PRICES_H

#include <stddef.h>
#include <stdint.h>

/* USD per million tokens, per kind of token. */
struct price_rates {
	double input;            /* uncached input tokens */
	double output;           /* output tokens */
	double cache_write_5m;   /* cache writes with the default 5-minute TTL */
	double cache_write_1h;   /* cache writes with the 1-hour TTL */
	double cache_read;       /* cache hits */
};

struct price {
	struct price_rates base;
	/* A request whose total input (input + cache writes + cache reads)
	 * exceeds long_threshold tokens is priced entirely at long_ctx rates,
	 * output included. 0: the model has no long-context tier. */
	uint64_t long_threshold;
	struct price_rates long_ctx;
	double web_search_per_1k;  /* USD per 1000 server-side web searches */
};

struct price_entry {
	const char *model;         /* base name, e.g. "claude-sonnet-4-5" */
	struct price price;
};

/* The default price of a model, or NULL. `model` (len bytes, need not be
 * NUL-terminated) matches an entry exactly, or as a dated or aliased variant
 * of it: the entry's name followed by "-YYYYMMDD", "@YYYYMMDD" or "-latest"
 * (so "claude-sonnet-4-5-20250929" gets "claude-sonnet-4-5", while
 * "claude-opus-4-1" never falls back to "claude-opus-4"). The pointer is to
 * static data, valid forever. */
const struct price *price_default(const char *model, size_t len);

/* The whole default table (for listings and docs); *n gets its length. */
const struct price_entry *price_table(size_t *n);

/* USD per million tokens to integer nano-USD per million tokens, rounded to
 * the nearest (0.3 -> 300000000, 0.08 -> 80000000). Exact for any price with
 * at most 9 decimals up to PRICE_MAX_USD_PER_MTOK; negative or NaN gives 0,
 * larger values are clamped to PRICE_MAX_USD_PER_MTOK. */
uint64_t price_nusd_per_mtok(double usd);

/* The rates that apply to a request with `input_total` input tokens (input
 * + cache writes + cache reads). */
static inline const struct price_rates *price_rates_for(const struct price *p,
                                                        uint64_t input_total)
{
	if (p->long_threshold && input_total > p->long_threshold)
		return &p->long_ctx;
	return &p->base;
}

#endif /* REALMS_PRICES_H */
