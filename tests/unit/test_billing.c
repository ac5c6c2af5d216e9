/*
 * Billing: each model class of the default table (Sonnet below and above
 * its long-context threshold), every kind of token, web searches, rounding
 * per kind, huge counts, saturation, tiers, a missing price.
 *
 * Expected values are worked out by hand: a rate of R USD per million
 * tokens is R * 1000 nano-USD per token.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <realms/billing.h>
#include <realms/prices.h>
#include <realms/usage.h>

static const struct price *model(const char *name)
{
	const struct price *p = price_default(name, strlen(name));

	assert_non_null(p);
	return p;
}

static struct usage mk(uint64_t in, uint64_t out, uint64_t w5, uint64_t w1, uint64_t rd,
                       uint64_t web)
{
	struct usage u;

	usage_init(&u);
	u.input = in;
	u.output = out;
	u.cache_write_5m = w5;
	u.cache_write_1h = w1;
	u.cache_read = rd;
	u.web_search = web;
	return u;
}

/* One rate for every kind, no long context. */
static struct price flat(double usd, double web_per_1k)
{
	struct price p;

	memset(&p, 0, sizeof(p));
	p.base.input = p.base.output = p.base.cache_write_5m = usd;
	p.base.cache_write_1h = p.base.cache_read = usd;
	p.web_search_per_1k = web_per_1k;
	return p;
}

static void test_opus_4_5(void **state)
{
	struct usage u = mk(1000, 2000, 3000, 4000, 5000, 3);

	/* 1000*5000 + 2000*25000 + 3000*6250 + 4000*10000 + 5000*500 nusd,
	 * and 3 searches at $10 per 1000 = 1e7 nusd each. */
	assert_int_equal(billing_cost_nusd(model("claude-opus-4-5"), &u),
	                 5000000ULL + 50000000ULL + 18750000ULL + 40000000ULL +
	                 2500000ULL + 30000000ULL);
	assert_int_equal(billing_cost_nusd(model("claude-opus-4-5-20251101"), &u), 146250000ULL);
}

static void test_sonnet_4_5_long_context(void **state)
{
	const struct price *p = model("claude-sonnet-4-5-20250929");
	struct usage u;

	/* Exactly 200000 input tokens in all: base rates. */
	u = mk(100000, 1000, 50000, 30000, 20000, 0);
	assert_int_equal(billing_cost_nusd(p, &u),
	                 300000000ULL + 15000000ULL + 187500000ULL + 180000000ULL + 6000000ULL);

	/* One more cache read: every kind at the long-context rates,
	 * output included. */
	u = mk(100000, 1000, 50000, 30000, 20001, 0);
	assert_int_equal(billing_cost_nusd(p, &u),
	                 600000000ULL + 22500000ULL + 375000000ULL + 360000000ULL + 12000600ULL);

	/* Each input kind counts toward the threshold. */
	u = mk(200001, 1, 0, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(p, &u), 200001ULL * 6000 + 22500);
	u = mk(0, 1, 200001, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(p, &u), 200001ULL * 7500 + 22500);
	u = mk(0, 1, 0, 200001, 0, 0);
	assert_int_equal(billing_cost_nusd(p, &u), 200001ULL * 12000 + 22500);
	u = mk(0, 1, 0, 0, 200001, 0);
	assert_int_equal(billing_cost_nusd(p, &u), 200001ULL * 600 + 22500);
	/* Output does not. */
	u = mk(0, 300000, 0, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(p, &u), 300000ULL * 15000);
	/* Web searches are not token-priced: same with long context. */
	u = mk(200001, 0, 0, 0, 0, 1);
	assert_int_equal(billing_cost_nusd(p, &u), 200001ULL * 6000 + 10000000ULL);
}

static void test_haiku(void **state)
{
	struct usage one = mk(1, 1, 1, 1, 1, 0);

	/* Haiku 4.5: 1, 5, 1.25, 2, 0.1. */
	assert_int_equal(billing_cost_nusd(model("claude-haiku-4-5"), &one),
	                 1000 + 5000 + 1250 + 2000 + 100);
	/* Haiku 3: 0.25, 1.25, 0.3, 0.5, 0.03. */
	assert_int_equal(billing_cost_nusd(model("claude-3-haiku-20240307"), &one),
	                 250 + 1250 + 300 + 500 + 30);
	/* Haiku 3.5: 0.8, 4, 1, 1.6, 0.08. */
	assert_int_equal(billing_cost_nusd(model("claude-3-5-haiku-latest"), &one),
	                 800 + 4000 + 1000 + 1600 + 80);
}

/* Each kind on its own, at rates that are not whole dollars. */
static void test_kinds(void **state)
{
	const struct price *s = model("claude-sonnet-4-5");
	const struct price *h35 = model("claude-3-5-haiku");
	struct usage u;

	u = mk(0, 0, 0, 0, 1, 0);
	assert_int_equal(billing_cost_nusd(h35, &u), 80);       /* $0.08/Mtok */
	u = mk(0, 0, 1, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(s, &u), 3750);       /* $3.75/Mtok */
	u = mk(0, 0, 0, 1, 0, 0);
	assert_int_equal(billing_cost_nusd(s, &u), 6000);
	u = mk(0, 0, 0, 0, 1, 0);
	assert_int_equal(billing_cost_nusd(s, &u), 300);
	u = mk(0, 0, 0, 0, 200000, 0);
	assert_int_equal(billing_cost_nusd(s, &u), 60000000);   /* $0.06 */
	u = mk(0, 1000000, 0, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(s, &u), 15000000000ULL);
	u = mk(0, 0, 0, 0, 0, 1);
	assert_int_equal(billing_cost_nusd(s, &u), 10000000);   /* $0.01 */
	u = mk(0, 0, 0, 0, 0, 1000);
	assert_int_equal(billing_cost_nusd(s, &u), 10000000000ULL);
	u = mk(0, 0, 0, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(s, &u), 0);
}

/* Half up, per kind. */
static void test_rounding(void **state)
{
	/* $0.0000005/Mtok = 500 nusd per Mtok = 0.0005 nusd per token. */
	struct price p = flat(0.0000005, 0.0000015);
	struct usage u;

	u = mk(1, 0, 0, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(&p, &u), 0);
	u = mk(999, 0, 0, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(&p, &u), 0);      /* 0.4995 */
	u = mk(1000, 0, 0, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(&p, &u), 1);      /* 0.5 */
	u = mk(2500, 0, 0, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(&p, &u), 1);      /* 1.25 */
	u = mk(3000, 0, 0, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(&p, &u), 2);      /* 1.5 */
	/* Each kind is rounded before the sum: 5 x 0.5 -> 5, not 2.5 -> 3. */
	u = mk(1000, 1000, 1000, 1000, 1000, 0);
	assert_int_equal(billing_cost_nusd(&p, &u), 5);
	/* $0.0000015 per 1000 searches: 1500 nusd per 1000, 1.5 each. */
	u = mk(0, 0, 0, 0, 0, 1);
	assert_int_equal(billing_cost_nusd(&p, &u), 2);
	/* $0.000000001 per 1000 (the finest price: 9 decimals): 1 nusd per
	 * 1000, 0.001 each. */
	p.web_search_per_1k = 0.000000001;
	u = mk(0, 0, 0, 0, 0, 499);
	assert_int_equal(billing_cost_nusd(&p, &u), 0);      /* 0.499 */
	u = mk(0, 0, 0, 0, 0, 500);
	assert_int_equal(billing_cost_nusd(&p, &u), 1);      /* 0.5 */
	u = mk(0, 0, 0, 0, 0, 2500);
	assert_int_equal(billing_cost_nusd(&p, &u), 3);      /* 2.5 */
}

static void test_huge_counts(void **state)
{
	const uint64_t t40 = 1ULL << 40;
	struct price big = flat(100000, 100000);
	struct usage u;

	/* 2^40 output tokens at $75/Mtok: no overflow, exact. */
	u = mk(0, t40, 0, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(model("claude-opus-4-1"), &u), t40 * 75000);

	/* 2^40 of everything on Sonnet 4.5: long-context rates, and 2^40
	 * searches at 1e7 nusd each. */
	u = mk(t40, t40, t40, t40, t40, t40);
	assert_int_equal(billing_cost_nusd(model("claude-sonnet-4-5"), &u),
	                 11048552542869913600ULL);

	/* The largest counts at the largest price saturate. */
	u = mk(UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX);
	assert_true(billing_cost_nusd(&big, &u) == UINT64_MAX);
	u = mk(0, UINT64_MAX, 0, 0, 0, 0);
	assert_true(billing_cost_nusd(&big, &u) == UINT64_MAX);
	/* Just below saturation stays exact: 184467 tokens at 1e8 nusd each. */
	u = mk(0, 184467, 0, 0, 0, 0);
	assert_int_equal(billing_cost_nusd(&big, &u), 184467ULL * 100000000ULL);
	/* Input kinds whose sum overflows 64 bits still pick the long rates
	 * (free input, $1/Mtok output there): a wrapped sum would look small
	 * and saturate at base rates instead. */
	big.long_threshold = 1000;
	memset(&big.long_ctx, 0, sizeof(big.long_ctx));
	big.long_ctx.output = 1;
	u = mk(UINT64_MAX, 1000000, 0, 1, 0, 0);
	assert_int_equal(billing_cost_nusd(&big, &u), 1000000000ULL);
	u = mk(0, 1000000, UINT64_MAX / 2 + 1, 0, UINT64_MAX / 2 + 1, 0);
	assert_int_equal(billing_cost_nusd(&big, &u), 1000000000ULL);
}

/* Odd prices: clamped, or free. */
static void test_odd_prices(void **state)
{
	struct price p;
	struct usage u = mk(1, 0, 0, 0, 0, 1);

	p = flat(1e12, 1e12);
	assert_int_equal(billing_cost_nusd(&p, &u), 100000000ULL + 100000000000ULL);
	p = flat(-1, -1);
	assert_int_equal(billing_cost_nusd(&p, &u), 0);
	p = flat(NAN, NAN);
	assert_int_equal(billing_cost_nusd(&p, &u), 0);
	p = flat(0, 0);
	assert_int_equal(billing_cost_nusd(&p, &u), 0);
}

/* Only list prices: the tier changes nothing. */
static void test_tier_ignored(void **state)
{
	const struct price *p = model("claude-opus-4-5");
	struct usage u = mk(1000, 2000, 3000, 4000, 5000, 3);
	uint64_t std;

	strcpy(u.service_tier, "standard");
	std = billing_cost_nusd(p, &u);
	strcpy(u.service_tier, "batch");
	assert_int_equal(billing_cost_nusd(p, &u), std);
	strcpy(u.service_tier, "priority");
	assert_int_equal(billing_cost_nusd(p, &u), std);
}

static void test_null(void **state)
{
	struct usage u = mk(1000, 1000, 0, 0, 0, 1);

	assert_int_equal(billing_cost_nusd(NULL, &u), 0);
	assert_int_equal(billing_cost_nusd(model("claude-haiku-4-5"), NULL), 0);
	assert_null(price_default("claude-unknown-9", 16));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opus_4_5),
		cmocka_unit_test(test_sonnet_4_5_long_context),
		cmocka_unit_test(test_haiku),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_rounding),
		cmocka_unit_test(test_huge_counts),
		cmocka_unit_test(test_odd_prices),
		cmocka_unit_test(test_tier_ignored),
		cmocka_unit_test(test_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
