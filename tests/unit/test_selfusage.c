/*
 * GET /api/usage, the pure part: the JSON built from a token's spend and
 * limits (exact decimal amounts, resets at the configured offset, the
 * group's total only when it has one, names escaped), the rolling window
 * read from its minute buckets, and the day hashes summed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <realms/selfusage.h>

/* 2026-12-06T12:00:00Z */
#define NOW_MS  1796558400000LL

static redisReply *str(const char *s)
{
	redisReply *r = calloc(1, sizeof(*r));

	r->type = REDIS_REPLY_STRING;
	r->str = strdup(s);
	r->len = strlen(s);
	return r;
}

/* An HGETALL-like reply of n strings. */
static redisReply *arr(size_t n, const char *const *s)
{
	redisReply *r = calloc(1, sizeof(*r));

	r->type = REDIS_REPLY_ARRAY;
	r->elements = n;
	r->element = calloc(n, sizeof(*r->element));
	for (size_t i = 0; i < n; i++)
		r->element[i] = str(s[i]);
	return r;
}

static void arr_free(redisReply *r)
{
	for (size_t i = 0; i < r->elements; i++) {
		free(r->element[i]->str);
		free(r->element[i]);
	}
	free(r->element);
	free(r);
}

static void base(struct selfusage *u)
{
	memset(u, 0, sizeof(*u));
	strcpy(u->token, "alice");
	strcpy(u->group, "default");
	strcpy(u->day, "2026-12-06");
	u->now_ms = NOW_MS;
	u->tz_min = 8 * 60;
}

static void test_json_exact(void **state)
{
	struct selfusage u;
	char out[4096];
	long n;

	base(&u);
	u.limits.set = (1u << BUDGET_USD_DAY) | (1u << BUDGET_RPM);
	u.limits.v[BUDGET_USD_DAY] = 10000000000ULL;          /* $10 */
	u.limits.v[BUDGET_RPM] = 30;
	u.mine.spent[BUDGET_USD_5H] = 410000000;
	u.mine.spent[BUDGET_USD_DAY] = 1230000001;            /* a nano-dollar past */
	u.mine.spent[BUDGET_USD_WEEK] = 7800000000ULL;
	u.mine.spent[BUDGET_USD_MONTH] = 31400000000ULL;
	u.mine.reset_ms[BUDGET_USD_DAY] = 1796572800000LL;     /* 2026-12-07T00:00+08:00 */
	u.requests = 42;
	u.input = 1000;
	u.output = 200;
	u.cache_read = 3;
	u.cache_write = 4;
	u.cost_nusd = 1230000001;
	strcpy(u.models[0].name, "claude-sonnet-4-5");
	u.models[0].requests = 40;
	u.models[0].cost_nusd = 1100000000;
	strcpy(u.models[1].name, "we\"ird");
	u.models[1].requests = 2;
	u.models[1].cost_nusd = 130000001;
	u.n_models = 2;
	n = selfusage_json(&u, out, sizeof(out));
	assert_true(n > 0);
	assert_string_equal(out,
		"{\"token\": \"alice\", \"group\": \"default\", "
		"\"spent_usd\": {\"5h\": 0.41, \"day\": 1.230000001, \"week\": 7.80, \"month\": 31.40}, "
		"\"limits\": {\"usd/day\": 10.00, \"rpm\": 30}, "
		"\"remaining_usd\": {\"usd/day\": 8.769999999}, "
		"\"resets\": {\"usd/day\": \"2026-12-07T00:00:00+08:00\"}, "
		"\"today\": {\"day\": \"2026-12-06\", \"requests\": 42, \"input\": 1000, "
		"\"output\": 200, \"cache_read\": 3, \"cache_write\": 4, \"cost_usd\": 1.230000001, "
		"\"by_model\": {\"claude-sonnet-4-5\": {\"requests\": 40, \"cost_usd\": 1.10}, "
		"\"we\\\"ird\": {\"requests\": 2, \"cost_usd\": 0.130000001}}}}");
	assert_int_equal(n, (long)strlen(out));
	/* too small: refused, never cut */
	assert_int_equal(selfusage_json(&u, out, (size_t)n), -1);
}

static void test_json_group_total_and_spent(void **state)
{
	struct selfusage u;
	char out[4096];

	base(&u);
	u.limits.set = 1u << BUDGET_USD_5H;
	u.limits.v[BUDGET_USD_5H] = 1000000000;
	u.mine.spent[BUDGET_USD_5H] = 1500000000;             /* over: 0 remains */
	u.total.set = 1u << BUDGET_USD_MONTH;
	u.total.v[BUDGET_USD_MONTH] = 500000000000ULL;
	u.group_spend.spent[BUDGET_USD_MONTH] = 1;
	u.group_spend.reset_ms[BUDGET_USD_MONTH] = 1798732800000LL;  /* 2027-01-01T00:00+08:00 */
	u.models_cut = 1;
	assert_true(selfusage_json(&u, out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "\"remaining_usd\": {\"usd/5h\": 0.00}, "
	                            "\"resets\": {\"usd/5h\": null}"));
	assert_non_null(strstr(out, "\"group_total\": {\"spent_usd\": {\"5h\": 0.00, \"day\": 0.00, "
	                            "\"week\": 0.00, \"month\": 0.000000001}, \"limits\": "
	                            "{\"usd/month\": 500.00}, \"remaining_usd\": {\"usd/month\": "
	                            "499.999999999}, \"resets\": {\"usd/month\": "
	                            "\"2027-01-01T00:00:00+08:00\"}}"));
	assert_non_null(strstr(out, "\"by_model\": {}, \"by_model_cut\": true}}"));
}

static void test_read_5h(void **state)
{
	int64_t cur = NOW_MS / 60000;
	char b[4][24];
	uint64_t spent;
	int64_t reset;

	snprintf(b[0], sizeof(b[0]), "%lld", (long long)(cur - 299));   /* oldest inside */
	snprintf(b[1], sizeof(b[1]), "%lld", (long long)(cur - 300));   /* just out */
	snprintf(b[2], sizeof(b[2]), "%lld", (long long)cur);
	snprintf(b[3], sizeof(b[3]), "%lld", (long long)(cur + 1));     /* a clock ahead */
	{
		const char *const s[] = { b[0], "5", b[1], "100", b[2], "7", b[3], "1000" };
		redisReply *r = arr(8, s);

		selfusage_read_5h(r, NOW_MS, &spent, &reset);
		arr_free(r);
	}
	assert_int_equal(spent, 12);
	assert_int_equal(reset, (cur - 299 + 300) * 60000);
	selfusage_read_5h(NULL, NOW_MS, &spent, &reset);
	assert_int_equal(spent, 0);
	assert_int_equal(reset, 0);
}

static void test_read_day(void **state)
{
	static const char *const s[] = {
		"requests", "3", "input", "10", "output", "20", "cache_read", "5",
		"cache_write_5m", "1", "cache_write_1h", "2", "cost_nusd", "999", "errors", "1",
		"web_search", "x",
	};
	struct selfusage u;
	struct selfusage_model m = { "claude-haiku-4-5", 0, 0 };
	redisReply *r = arr(sizeof(s) / sizeof(s[0]), s);

	base(&u);
	selfusage_read_day(r, &u, NULL);
	selfusage_read_day(r, &u, NULL);
	selfusage_read_day(r, &u, &m);
	arr_free(r);
	assert_int_equal(u.requests, 6);
	assert_int_equal(u.input, 20);
	assert_int_equal(u.output, 40);
	assert_int_equal(u.cache_read, 10);
	assert_int_equal(u.cache_write, 6);
	assert_int_equal(u.cost_nusd, 1998);
	assert_int_equal(m.requests, 3);
	assert_int_equal(m.cost_nusd, 999);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_exact),
		cmocka_unit_test(test_json_group_total_and_spent),
		cmocka_unit_test(test_read_5h),
		cmocka_unit_test(test_read_day),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
