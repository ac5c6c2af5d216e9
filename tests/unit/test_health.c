/*
 * Credential breakers: consecutive failures open, the cooldown leads to
 * half-open with exactly one probe, the probe's result closes or reopens,
 * 429 honours retry-after, 401/403 revoke until a reload, a reload keeps
 * the rest of the state, and the agent-check answers follow the state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <realms/config.h>
#include <realms/health.h>

/* Credential ids: a--k 0, b--k 1. */
static const char CFG[] =
	"{\"models\": [\"m\"],"
	" \"failover\": {\"failures\": 3, \"cooldown\": 10},"
	" \"channels\": ["
	"  {\"name\": \"a\", \"base_url\": \"https://a.example\","
	"   \"credentials\": [{\"name\": \"k\", \"key\": \"sk-a\"}], \"models\": {\"m\": \"m\"}},"
	"  {\"name\": \"b\", \"base_url\": \"https://b.example\","
	"   \"credentials\": [{\"name\": \"k\", \"key\": \"sk-b\"}], \"models\": {\"m\": \"m\"}}]}";

static struct realms_config *cfg;

static int setup(void **state)
{
	struct cfg_diag d;

	cfg_diag_init(&d);
	cfg = config_parse(CFG, strlen(CFG), "t.json", &d);
	if (!cfg)
		cfg_diag_print(&d, stderr);
	cfg_diag_free(&d);
	if (!cfg || health_sync(cfg) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	config_unref(cfg);
	return 0;
}

#define A "a--k", 4
#define B "b--k", 4

static void report(const char *s, size_t len, int status, int64_t ra, uint64_t now)
{
	struct health_outcome o = { status, ra };

	assert_int_equal(health_report(s, len, &o, now), 0);
}

static void check_line(const char *s, size_t len, uint64_t now, const char *prefix)
{
	char line[160];
	int n = health_check_answer(s, len, now, line, sizeof(line));

	assert_true(n > 0);
	assert_int_equal(line[n - 1], '\n');
	if (strncmp(line, prefix, strlen(prefix)) != 0)
		fail_msg("check answer '%s', want prefix '%s'", line, prefix);
}

static void test_failures_open_then_probe_closes(void **state)
{
	uint64_t t = 1000000;

	health_cooldown(A, 0);
	assert_int_equal(health_state(A, t, NULL), HEALTH_CLOSED);
	check_line(A, t, "up 100%");
	/* Two failures and a success: the count starts over. */
	report(A, 503, -1, t);
	report(A, 0, -1, t);
	report(A, 200, -1, t);
	report(A, 500, -1, t);
	report(A, 529, -1, t);
	assert_int_equal(health_state(A, t, NULL), HEALTH_CLOSED);
	assert_true(health_available(cfg, 0, t));
	/* A client error is not the credential's fault. */
	report(A, 400, -1, t);
	report(A, 502, -1, t);
	report(A, 502, -1, t);
	assert_int_equal(health_state(A, t, NULL), HEALTH_CLOSED);
	report(A, 504, -1, t);
	assert_int_equal(health_state(A, t, NULL), HEALTH_OPEN);
	assert_false(health_available(cfg, 0, t));
	assert_false(health_available(cfg, 0, t + 9999));
	check_line(A, t + 5000, "down #breaker open");
	/* A straggler's success while open changes nothing. */
	report(A, 200, -1, t + 1);
	assert_int_equal(health_state(A, t + 2, NULL), HEALTH_OPEN);

	/* Half-open: available until one verdict claims the probe. */
	t += 10000;
	assert_int_equal(health_state(A, t, NULL), HEALTH_HALF_OPEN);
	check_line(A, t, "up 100%");
	assert_true(health_available(cfg, 0, t));
	assert_true(health_claim(cfg, 0, t));
	assert_false(health_available(cfg, 0, t + 1));
	assert_false(health_claim(cfg, 0, t + 1));
	/* The probe answers: closed. */
	report(A, 200, -1, t + 50);
	assert_int_equal(health_state(A, t + 50, NULL), HEALTH_CLOSED);
	assert_true(health_available(cfg, 0, t + 51));
	/* Claims on a closed credential always stand. */
	assert_true(health_claim(cfg, 0, t + 52));
	assert_true(health_claim(cfg, 0, t + 53));
}

static void test_failed_probe_reopens(void **state)
{
	uint64_t t = 5000000, until = 0;

	health_cooldown(A, 0);
	for (int i = 0; i < 3; i++)
		report(A, 503, -1, t);
	t += 10000;
	assert_true(health_claim(cfg, 0, t));
	report(A, 0, -1, t + 10);
	assert_int_equal(health_state(A, t + 10, &until), HEALTH_OPEN);
	assert_int_equal(until, t + 10 + 10000);
	/* A probe that never reports frees itself after a cooldown. */
	t = until;
	assert_true(health_claim(cfg, 0, t));
	assert_false(health_available(cfg, 0, t + 9999));
	assert_true(health_available(cfg, 0, t + 10000));
	assert_true(health_claim(cfg, 0, t + 10000));
	health_cooldown(A, 0);
}

static void test_429_retry_after(void **state)
{
	uint64_t t = 9000000, until = 0;

	health_cooldown(B, 0);
	report(B, 429, 4, t);
	assert_int_equal(health_state(B, t, &until), HEALTH_OPEN);
	assert_int_equal(until, t + 4000);
	assert_false(health_available(cfg, 1, t + 3999));
	assert_true(health_available(cfg, 1, t + 4000));
	/* Without retry-after: the cooldown. */
	health_cooldown(B, 0);
	report(B, 429, -1, t);
	health_state(B, t, &until);
	assert_int_equal(until, t + 10000);
	/* An absurd retry-after is capped at an hour. */
	health_cooldown(B, 0);
	report(B, 429, 999999, t);
	health_state(B, t, &until);
	assert_int_equal(until, t + 3600u * 1000u);
	health_cooldown(B, 0);
}

static void test_revoked_until_reload(void **state)
{
	uint64_t t = 20000000;
	struct health_stats before, after;

	health_stats_get(&before);
	health_cooldown(A, 0);
	health_cooldown(B, 0);
	report(A, 401, -1, t);
	report(B, 503, -1, t);   /* one failure on b, kept by the reload */
	report(B, 503, -1, t);
	assert_int_equal(health_state(A, t, NULL), HEALTH_REVOKED);
	check_line(A, t, "down #key refused");
	/* Nothing brings it back but a reload: not time, not successes. */
	report(A, 200, -1, t + 1);
	assert_int_equal(health_state(A, t + 86400000, NULL), HEALTH_REVOKED);
	assert_false(health_available(cfg, 0, t + 86400000));
	health_stats_get(&after);
	assert_int_equal(after.revoked, before.revoked + 1);

	assert_int_equal(health_sync(cfg), 0);
	assert_int_equal(health_state(A, t, NULL), HEALTH_CLOSED);
	/* b's two failures survived the reload: a third opens it. */
	report(B, 503, -1, t);
	assert_int_equal(health_state(B, t, NULL), HEALTH_OPEN);
	report(A, 403, -1, t);
	assert_int_equal(health_state(A, t, NULL), HEALTH_REVOKED);
	health_sync(cfg);
	health_cooldown(B, 0);
}

static void test_unknown_servers(void **state)
{
	struct health_outcome o = { 503, -1 };

	assert_int_equal(health_report("x--y", 4, &o, 1), -1);
	assert_int_equal(health_state("x--y", 4, 1, NULL), HEALTH_CLOSED);
	check_line("x--y", 4, 1, "up 100%");
	/* A prefix of a known name is not that name. */
	assert_int_equal(health_report("a--", 3, &o, 1), -1);
	assert_true(health_available(cfg, -1, 1));
	assert_true(health_available(cfg, 99, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_failures_open_then_probe_closes),
		cmocka_unit_test(test_failed_probe_reopens),
		cmocka_unit_test(test_429_retry_after),
		cmocka_unit_test(test_revoked_until_reload),
		cmocka_unit_test(test_unknown_servers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
