/*
 * Budgets, the pure part: limit specs and their stored form, exact dollar
 * amounts, UTC offsets, and the windows a moment falls in: the rolling
 * five hours, calendar days, weeks (Monday first) and months at positive
 * and negative offsets, month ends, 29 February, and spend attributed to
 * the window its request started in when it settles in a later one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <realms/budget.h>
#include <realms/prices.h>

#define MIN  60000LL
#define HOUR (60 * MIN)
#define DAY  (24 * HOUR)

/* Unix ms of a UTC date and time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
	/* days_from_civil, independently: count days year by year. */
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int64_t days = 0;

	for (int yy = 1970; yy < y; yy++)
		days += (yy % 4 == 0 && (yy % 100 != 0 || yy % 400 == 0)) ? 366 : 365;
	for (int mm = 1; mm < mo; mm++)
		days += mdays[mm - 1] + (mm == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0));
	days += d - 1;
	return days * DAY + h * HOUR + mi * MIN;
}

static void window_is(enum budget_kind k, int64_t t, int tz, const char *id,
                      int64_t start, int64_t end)
{
	struct budget_window w;

	assert_int_equal(budget_window(k, t, tz, &w), 0);
	assert_string_equal(w.id, id);
	assert_int_equal(w.start_ms, start);
	assert_int_equal(w.end_ms, end);
	assert_true(t >= w.start_ms && t < w.end_ms);
}

static void test_days(void **state)
{
	/* 2026-12-06 23:30 UTC is already the 7th at +08:00, still the 6th
	 * at -05:00 (18:30). */
	int64_t t = utc(2026, 12, 6, 23, 30);

	window_is(BUDGET_USD_DAY, t, 0, "d20261206", utc(2026, 12, 6, 0, 0), utc(2026, 12, 7, 0, 0));
	window_is(BUDGET_USD_DAY, t, 480, "d20261207", utc(2026, 12, 6, 16, 0), utc(2026, 12, 7, 16, 0));
	window_is(BUDGET_USD_DAY, t, -300, "d20261206", utc(2026, 12, 6, 5, 0), utc(2026, 12, 7, 5, 0));
	/* The last millisecond of a local day, the first of the next. */
	window_is(BUDGET_USD_DAY, utc(2026, 12, 6, 16, 0) - 1, 480, "d20261206",
	          utc(2026, 12, 5, 16, 0), utc(2026, 12, 6, 16, 0));
	window_is(BUDGET_USD_DAY, utc(2026, 12, 6, 16, 0), 480, "d20261207",
	          utc(2026, 12, 6, 16, 0), utc(2026, 12, 7, 16, 0));
	/* Half-hour offsets. */
	window_is(BUDGET_USD_DAY, utc(2026, 1, 1, 0, 0), 330, "d20260101",
	          utc(2025, 12, 31, 18, 30), utc(2026, 1, 1, 18, 30));
	window_is(BUDGET_USD_DAY, utc(2026, 1, 1, 0, 0), -210, "d20251231",
	          utc(2025, 12, 31, 3, 30), utc(2026, 1, 1, 3, 30));
}

static void test_weeks(void **state)
{
	/* 2026-12-06 is a Sunday: its week began Monday 2026-11-30. */
	window_is(BUDGET_USD_WEEK, utc(2026, 12, 6, 12, 0), 0, "w20261130",
	          utc(2026, 11, 30, 0, 0), utc(2026, 12, 7, 0, 0));
	/* At +08:00, Sunday 20:00 UTC is Monday 04:00: a new week. */
	window_is(BUDGET_USD_WEEK, utc(2026, 12, 6, 20, 0), 480, "w20261207",
	          utc(2026, 12, 6, 16, 0), utc(2026, 12, 13, 16, 0));
	/* At -05:00, Monday 03:00 UTC is still Sunday. */
	window_is(BUDGET_USD_WEEK, utc(2026, 12, 7, 3, 0), -300, "w20261130",
	          utc(2026, 11, 30, 5, 0), utc(2026, 12, 7, 5, 0));
	/* A Monday, and a week across a year and a month end. */
	window_is(BUDGET_USD_WEEK, utc(2026, 11, 30, 0, 0), 0, "w20261130",
	          utc(2026, 11, 30, 0, 0), utc(2026, 12, 7, 0, 0));
	window_is(BUDGET_USD_WEEK, utc(2027, 1, 1, 9, 0), 0, "w20261228",
	          utc(2026, 12, 28, 0, 0), utc(2027, 1, 4, 0, 0));
	/* 1970-01-01 was a Thursday. */
	window_is(BUDGET_USD_WEEK, utc(1970, 1, 5, 0, 0), 0, "w19700105",
	          utc(1970, 1, 5, 0, 0), utc(1970, 1, 12, 0, 0));
}

static void test_months(void **state)
{
	window_is(BUDGET_USD_MONTH, utc(2026, 12, 31, 23, 59), 0, "m202612",
	          utc(2026, 12, 1, 0, 0), utc(2027, 1, 1, 0, 0));
	/* New Year's Eve 23:59 UTC is January at +08:00. */
	window_is(BUDGET_USD_MONTH, utc(2026, 12, 31, 23, 59), 480, "m202701",
	          utc(2026, 12, 31, 16, 0), utc(2027, 1, 31, 16, 0));
	/* and still November at -05:00 on 1 December 02:00 UTC. */
	window_is(BUDGET_USD_MONTH, utc(2026, 12, 1, 2, 0), -300, "m202611",
	          utc(2026, 11, 1, 5, 0), utc(2026, 12, 1, 5, 0));
	/* 29 February: a leap year, a century that is not, one that is. */
	window_is(BUDGET_USD_MONTH, utc(2028, 2, 29, 12, 0), 0, "m202802",
	          utc(2028, 2, 1, 0, 0), utc(2028, 3, 1, 0, 0));
	window_is(BUDGET_USD_DAY, utc(2028, 2, 29, 12, 0), 0, "d20280229",
	          utc(2028, 2, 29, 0, 0), utc(2028, 3, 1, 0, 0));
	window_is(BUDGET_USD_MONTH, utc(2100, 2, 28, 12, 0), 0, "m210002",
	          utc(2100, 2, 1, 0, 0), utc(2100, 3, 1, 0, 0));
	window_is(BUDGET_USD_DAY, utc(2100, 3, 1, 0, 0) - 1, 0, "d21000228",
	          utc(2100, 2, 28, 0, 0), utc(2100, 3, 1, 0, 0));
	window_is(BUDGET_USD_MONTH, utc(2000, 2, 29, 0, 0), 0, "m200002",
	          utc(2000, 2, 1, 0, 0), utc(2000, 3, 1, 0, 0));
	/* Every month of a year has the right length. */
	for (int m = 1; m <= 12; m++) {
		static const int len[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
		struct budget_window w;

		assert_int_equal(budget_window(BUDGET_USD_MONTH, utc(2028, m, 15, 0, 0), 0, &w), 0);
		assert_int_equal(w.end_ms - w.start_ms, len[m - 1] * DAY);
	}
}

static void test_rolling_5h(void **state)
{
	int64_t t = utc(2026, 12, 6, 10, 7) + 42000;   /* 10:07:42 */
	struct budget_window w;

	assert_int_equal(budget_window(BUDGET_USD_5H, t, 480, &w), 0);
	assert_string_equal(w.id, "5h");
	/* 300 minute buckets, the last one holding t: 05:08 to 10:08. */
	assert_int_equal(w.end_ms, utc(2026, 12, 6, 10, 8));
	assert_int_equal(w.start_ms, utc(2026, 12, 6, 5, 8));
	assert_int_equal(budget_bucket(t), utc(2026, 12, 6, 10, 7) / MIN);
	/* The offset does not move a rolling window. */
	assert_int_equal(budget_window(BUDGET_USD_5H, t, -300, &w), 0);
	assert_int_equal(w.end_ms, utc(2026, 12, 6, 10, 8));
}

/* A request starting at 23:59:30 local and settling at 00:00:10 the next
 * day is spent in the day, week and month it started in: the settlement
 * keys come from the start time. */
static void test_settles_in_its_start_window(void **state)
{
	int tz = 480;
	int64_t start = utc(2026, 12, 31, 15, 59) + 30000;   /* 23:59:30 local, 31 Dec */
	int64_t end = start + 40000;                          /* 00:00:10 local, 1 Jan */
	struct budget_window ws, we;

	/* The day and the month change between start and end (the week
	 * does not: Thursday to Friday). */
	for (int k = BUDGET_USD_DAY; k <= BUDGET_USD_MONTH; k++) {
		assert_int_equal(budget_window((enum budget_kind)k, start, tz, &ws), 0);
		assert_int_equal(budget_window((enum budget_kind)k, end, tz, &we), 0);
		if (k == BUDGET_USD_WEEK) {
			assert_string_equal(ws.id, we.id);
			continue;
		}
		assert_string_not_equal(ws.id, we.id);
		assert_true(ws.end_ms <= end);
	}
	assert_int_equal(budget_window(BUDGET_USD_DAY, start, tz, &ws), 0);
	assert_string_equal(ws.id, "d20261231");
	assert_int_equal(budget_window(BUDGET_USD_WEEK, start, tz, &ws), 0);
	assert_string_equal(ws.id, "w20261228");
	assert_int_equal(budget_window(BUDGET_USD_MONTH, start, tz, &ws), 0);
	assert_string_equal(ws.id, "m202612");
	assert_int_not_equal(budget_bucket(start), budget_bucket(end));
}

static void test_window_bounds(void **state)
{
	struct budget_window w;

	assert_int_equal(budget_window(BUDGET_USD_DAY, -1, 0, &w), -1);
	assert_int_equal(budget_window(BUDGET_RPM, 0, 0, &w), -1);
	assert_int_equal(budget_window(BUDGET_USD_DAY, 0, -300, &w), 0);
	assert_string_equal(w.id, "d19691231");
	assert_int_equal(budget_window(BUDGET_USD_MONTH, utc(9999, 12, 31, 23, 0), 0, &w), 0);
	assert_string_equal(w.id, "m999912");
}

static void test_tz(void **state)
{
	static const struct { const char *s; int m; } ok[] = {
		{ "Z", 0 }, { "+00:00", 0 }, { "-00:00", 0 }, { "+08:00", 480 }, { "-05:30", -330 },
		{ "+14:00", 840 }, { "-14:00", -840 }, { "+05:45", 345 },
	};
	static const char *const bad[] = {
		"", "+8:00", "+08", "08:00", "+08:60", "+14:01", "-15:00", "+0a:00", "z", "UTC", "+08:00 ",
	};
	int m;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(budget_tz_parse(ok[i].s, strlen(ok[i].s), &m), 0);
		assert_int_equal(m, ok[i].m);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(budget_tz_parse(bad[i], strlen(bad[i]), &m), -1);
}

static void test_time_str(void **state)
{
	char b[40];

	assert_int_equal(budget_time_str(utc(2026, 12, 6, 16, 0), 480, b, sizeof(b)), 25);
	assert_string_equal(b, "2026-12-07T00:00:00+08:00");
	budget_time_str(utc(2026, 12, 7, 5, 0), -330, b, sizeof(b));
	assert_string_equal(b, "2026-12-06T23:30:00-05:30");
	budget_time_str(utc(2028, 2, 29, 13, 14) + 15000, 0, b, sizeof(b));
	assert_string_equal(b, "2028-02-29T13:14:15Z");
	assert_int_equal(budget_time_str(0, 0, b, 10), 0);
}

static void test_usd(void **state)
{
	static const struct { const char *in; uint64_t nusd; const char *out; } ok[] = {
		{ "10", 10000000000ULL, "10.00" }, { "10.04", 10040000000ULL, "10.04" },
		{ "0.5", 500000000ULL, "0.50" }, { "0.000000001", 1, "0.000000001" },
		{ "12.340000001", 12340000001ULL, "12.340000001" }, { "0", 0, "0.00" },
		{ "1000000000", 1000000000ULL * 1000000000ULL, "1000000000.00" },
	};
	static const char *const bad[] = {
		"", ".5", "5.", "1.0000000001", "-1", "1e3", "1,5", "1000000001", " 1", "0x10",
	};
	uint64_t v;
	char b[32];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(budget_usd_parse(ok[i].in, strlen(ok[i].in), &v), 0);
		assert_int_equal(v, ok[i].nusd);
		assert_true(budget_usd_str(v, b, sizeof(b)) > 0);
		assert_string_equal(b, ok[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(budget_usd_parse(bad[i], strlen(bad[i]), &v), -1);
	assert_int_equal(budget_usd_str(10040000000ULL, b, 5), 0);
}

static void test_specs_and_storage(void **state)
{
	struct budget_limits a, b, eff;
	enum budget_kind k;
	const char *why;
	uint64_t v;
	char s[256];

	assert_int_equal(budget_spec_parse("usd/day=10", 10, &k, &v, &why), 0);
	assert_int_equal(k, BUDGET_USD_DAY);
	assert_int_equal(v, 10000000000ULL);
	assert_int_equal(budget_spec_parse("rpm=30", 6, &k, &v, &why), 0);
	assert_int_equal(k, BUDGET_RPM);
	assert_int_equal(v, 30);
	assert_int_equal(budget_spec_parse("concurrency=2", 13, &k, &v, &why), 0);
	assert_int_equal(budget_spec_parse("rpm=0", 5, &k, &v, &why), -1);
	assert_int_equal(budget_spec_parse("rpm=1.5", 7, &k, &v, &why), -1);
	assert_int_equal(budget_spec_parse("usd/year=1", 10, &k, &v, &why), -1);
	assert_string_equal(why, "unknown limit: use usd/5h, usd/day, usd/week, usd/month, rpm or concurrency");
	assert_int_equal(budget_spec_parse("usd/day", 7, &k, &v, &why), -1);

	memset(&a, 0, sizeof(a));
	a.v[BUDGET_USD_DAY] = 10000000000ULL;
	a.v[BUDGET_RPM] = 30;
	a.set = 1u << BUDGET_USD_DAY | 1u << BUDGET_RPM;
	assert_int_equal(budget_limits_encode(&a, s, sizeof(s)), strlen("usd/day=10000000000,rpm=30"));
	assert_string_equal(s, "usd/day=10000000000,rpm=30");
	assert_int_equal(budget_limits_decode(s, strlen(s), &b), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(budget_limits_decode("", 0, &b), 0);
	assert_int_equal(b.set, 0);
	assert_int_equal(budget_limits_decode("usd/yr=1", 8, &b), -1);
	assert_int_equal(budget_limits_decode("rpm=", 4, &b), -1);
	assert_int_equal(budget_limits_decode("rpm=3x", 6, &b), -1);
	assert_int_equal(budget_limits_decode("rpm=99999999999999999999", 24, &b), -1);
	assert_int_equal(b.set, 0);

	/* The token's own limit replaces the group's of the same kind. */
	memset(&b, 0, sizeof(b));
	b.v[BUDGET_USD_DAY] = 5000000000ULL;
	b.v[BUDGET_CONCURRENCY] = 2;
	b.set = 1u << BUDGET_USD_DAY | 1u << BUDGET_CONCURRENCY;
	budget_limits_merge(&eff, &a, &b);
	assert_int_equal(eff.set, 1u << BUDGET_USD_DAY | 1u << BUDGET_RPM | 1u << BUDGET_CONCURRENCY);
	assert_int_equal(eff.v[BUDGET_USD_DAY], 10000000000ULL);
	assert_int_equal(eff.v[BUDGET_CONCURRENCY], 2);
	budget_limits_merge(&eff, NULL, NULL);
	assert_int_equal(eff.set, 0);
}

static void test_reserve(void **state)
{
	struct price p;

	memset(&p, 0, sizeof(p));
	p.base.input = 3.0;
	p.base.output = 15.0;
	/* 4000 bytes = 1000 input tokens at $3/M, 2000 output at $15/M. */
	assert_int_equal(budget_reserve_nusd(&p, 4000, 2000), 3000000 + 30000000);
	assert_int_equal(budget_reserve_nusd(NULL, 4000, 2000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_days),
		cmocka_unit_test(test_weeks),
		cmocka_unit_test(test_months),
		cmocka_unit_test(test_rolling_5h),
		cmocka_unit_test(test_settles_in_its_start_window),
		cmocka_unit_test(test_window_bounds),
		cmocka_unit_test(test_tz),
		cmocka_unit_test(test_time_str),
		cmocka_unit_test(test_usd),
		cmocka_unit_test(test_specs_and_storage),
		cmocka_unit_test(test_reserve),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
