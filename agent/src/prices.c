/*
 * Default prices: data shipped with the product. List prices of the
 * Anthropic API at the time of writing, USD per million tokens; a cache
 * write costs 1.25x input (5-minute TTL) or 2x input (1-hour TTL), a cache
 * read 0.1x input. Operators override any of them with "price" in the
 * configuration, so a price change needs no new release.
 */
#include <math.h>
#include <string.h>

#include <realms/limits.h>
#include <realms/prices.h>

/* Anthropic's price of web search, USD per 1,000 searches: a price, not a
 * limit, so it sits with the price table. */
#define WEB_SEARCH_PER_1K 10.0

#define RATES(in, out, w5m, w1h, rd) { (in), (out), (w5m), (w1h), (rd) }

static const struct price_entry table[] = {
	{ "claude-opus-4-5",   { RATES(5, 25, 6.25, 10, 0.5), 0, RATES(0, 0, 0, 0, 0), WEB_SEARCH_PER_1K } },
	{ "claude-opus-4-1",   { RATES(15, 75, 18.75, 30, 1.5), 0, RATES(0, 0, 0, 0, 0), WEB_SEARCH_PER_1K } },
	{ "claude-opus-4",     { RATES(15, 75, 18.75, 30, 1.5), 0, RATES(0, 0, 0, 0, 0), WEB_SEARCH_PER_1K } },
	/* Sonnet 4 and 4.5: above 200K input tokens (the 1M context window
	 * beta) the whole request is billed at the long-context rates. */
	{ "claude-sonnet-4-5", { RATES(3, 15, 3.75, 6, 0.3), 200000, RATES(6, 22.5, 7.5, 12, 0.6), WEB_SEARCH_PER_1K } },
	{ "claude-sonnet-4",   { RATES(3, 15, 3.75, 6, 0.3), 200000, RATES(6, 22.5, 7.5, 12, 0.6), WEB_SEARCH_PER_1K } },
	{ "claude-3-7-sonnet", { RATES(3, 15, 3.75, 6, 0.3), 0, RATES(0, 0, 0, 0, 0), WEB_SEARCH_PER_1K } },
	{ "claude-haiku-4-5",  { RATES(1, 5, 1.25, 2, 0.1), 0, RATES(0, 0, 0, 0, 0), WEB_SEARCH_PER_1K } },
	{ "claude-3-5-haiku",  { RATES(0.8, 4, 1, 1.6, 0.08), 0, RATES(0, 0, 0, 0, 0), WEB_SEARCH_PER_1K } },
	{ "claude-3-haiku",    { RATES(0.25, 1.25, 0.3, 0.5, 0.03), 0, RATES(0, 0, 0, 0, 0), WEB_SEARCH_PER_1K } },
};

#define TABLE_LEN (sizeof(table) / sizeof(table[0]))

/* Whether the `n` bytes at s are a variant suffix: "-YYYYMMDD",
 * "@YYYYMMDD" or "-latest". */
static int variant_suffix(const char *s, size_t n)
{
	if (n == 7 && memcmp(s, "-latest", 7) == 0)
		return 1;
	if (n != 9 || (s[0] != '-' && s[0] != '@'))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

const struct price *price_default(const char *model, size_t len)
{
	for (size_t i = 0; i < TABLE_LEN; i++) {
		size_t n = strlen(table[i].model);

		if (len < n || memcmp(model, table[i].model, n) != 0)
			continue;
		if (len == n || variant_suffix(model + n, len - n))
			return &table[i].price;
	}
	return NULL;
}

const struct price_entry *price_table(size_t *n)
{
	*n = TABLE_LEN;
	return table;
}

uint64_t price_nusd_per_mtok(double usd)
{
	/* usd * 1e9 is within 0.2 of the exact decimal product for any usd up
	 * to the maximum (relative error 2^-53 on at most 1e14), so rounding
	 * to the nearest integer recovers it for prices with <= 9 decimals. */
	if (!(usd > 0))
		return 0;
	if (usd > PRICE_MAX_USD_PER_MTOK)
		usd = PRICE_MAX_USD_PER_MTOK;
	return (uint64_t)llround(usd * 1e9);
}
