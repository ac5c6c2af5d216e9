/*
 * Credential health: failures of distinct requests open a breaker, the
 * cooldown leads to half-open with exactly one probe, the probe's result
 * closes or reopens, 429 honours retry-after; a 401 only makes the key
 * suspect, a key probe with the key alone decides (401: revoked, 2xx: back,
 * anything else: ask again later); a 403 or any other 4xx changes nothing;
 * a reload keeps the breakers and forgives revoked keys.
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

/* One attempt's result; each call is a request of its own. */
static void report(const char *s, size_t len, int status, int64_t ra, uint64_t now)
{
	static unsigned seq;
	char rid[32];
	int n = snprintf(rid, sizeof(rid), "req_%u", ++seq);
	struct health_outcome o = { status, ra, rid, (size_t)n };

	assert_int_equal(health_report(s, len, &o, now), 0);
}

/* The next due key probe, "" if none. */
static const char *next_probe(uint64_t now)
{
	static char server[64];

	if (!health_probe_next(now, server, sizeof(server)))
		server[0] = '\0';
	return server;
}

static void test_failures_open_then_probe_closes(void **state)
{
	uint64_t t = 1000000;

	health_cooldown(A, 0);
	assert_int_equal(health_state(A, t, NULL), HEALTH_CLOSED);
	/* Two failures and a success: the count starts over. */
	report(A, 503, -1, t);
	report(A, 0, -1, t);
	report(A, 200, -1, t);
	report(A, 500, -1, t);
	report(A, 529, -1, t);
	assert_int_equal(health_state(A, t, NULL), HEALTH_CLOSED);
	assert_true(health_available(cfg, 0, t));
	/* A client error belongs to the request: it neither counts nor
	 * resets the count. */
	report(A, 400, -1, t);
	report(A, 403, -1, t);
	report(A, 404, -1, t);
	assert_int_equal(health_state(A, t, NULL), HEALTH_CLOSED);
	report(A, 504, -1, t);
	assert_int_equal(health_state(A, t, NULL), HEALTH_OPEN);
	assert_false(health_available(cfg, 0, t));
	assert_false(health_available(cfg, 0, t + 9999));
	/* A straggler's success while open changes nothing. */
	report(A, 200, -1, t + 1);
	assert_int_equal(health_state(A, t + 2, NULL), HEALTH_OPEN);

	/* Half-open: available until one verdict claims the probe. */
	t += 10000;
	assert_int_equal(health_state(A, t, NULL), HEALTH_HALF_OPEN);
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

/* One request failing on a credential twice (an attempt beyond the
 * number of credentials) counts once. */
static void test_failures_of_distinct_requests(void **state)
{
	uint64_t t = 15000000;
	struct health_outcome o = { 503, -1, "req_same", 8 };

	health_cooldown(A, 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(health_report(A, &o, t), 0);
	assert_int_equal(health_state(A, t, NULL), HEALTH_CLOSED);
	o.rid = "req_other";
	o.rid_len = 9;
	assert_int_equal(health_report(A, &o, t), 0);
	assert_int_equal(health_state(A, t, NULL), HEALTH_CLOSED);
	o.rid = "req_third";
	assert_int_equal(health_report(A, &o, t), 0);
	assert_int_equal(health_state(A, t, NULL), HEALTH_OPEN);
	/* Without an id, each failure counts. */
	health_cooldown(A, 0);
	o.rid = NULL;
	o.rid_len = 0;
	for (int i = 0; i < 3; i++)
		assert_int_equal(health_report(A, &o, t), 0);
	assert_int_equal(health_state(A, t, NULL), HEALTH_OPEN);
	health_cooldown(A, 0);
}

/* A 401 makes the key suspect, in service; only a probe with the key
 * alone takes it out, and a passing probe puts it back. */
static void test_401_suspect_then_probe(void **state)
{
	uint64_t t = 20000000;
	struct health_stats before, after;

	health_stats_get(&before);
	health_cooldown(A, 0);
	health_cooldown(B, 0);
	assert_string_equal(next_probe(t), "");
	report(A, 401, -1, t);
	assert_int_equal(health_state(A, t, NULL), HEALTH_SUSPECT);
	assert_true(health_available(cfg, 0, t));
	/* More 401s while suspect: still one probe. */
	report(A, 401, -1, t);
	assert_string_equal(next_probe(t), "a--k");
	assert_string_equal(next_probe(t), "");        /* in flight */
	/* Inconclusive (the provider has no /v1/models, or was down): kept in
	 * service, asked again after a cooldown. */
	assert_int_equal(health_probe_result(A, 404, t + 100), 0);
	assert_int_equal(health_state(A, t + 100, NULL), HEALTH_SUSPECT);
	assert_true(health_available(cfg, 0, t + 100));
	assert_string_equal(next_probe(t + 100 + 9999), "");
	assert_string_equal(next_probe(t + 100 + 10000), "a--k");
	/* The key alone gets 401: out, probed again every cooldown. */
	t += 20000;
	assert_int_equal(health_probe_result(A, 401, t), 0);
	assert_int_equal(health_state(A, t, NULL), HEALTH_REVOKED);
	assert_false(health_available(cfg, 0, t));
	/* Successes of attempts started earlier change nothing now. */
	report(A, 200, -1, t + 1);
	assert_int_equal(health_state(A, t + 1, NULL), HEALTH_REVOKED);
	assert_string_equal(next_probe(t + 9999), "");
	assert_string_equal(next_probe(t + 10000), "a--k");
	assert_int_equal(health_probe_result(A, 401, t + 10000), 0);
	assert_int_equal(health_state(A, t + 10000, NULL), HEALTH_REVOKED);
	assert_string_equal(next_probe(t + 20000), "a--k");
	assert_int_equal(health_probe_result(A, 200, t + 20000), 0);
	assert_int_equal(health_state(A, t + 20000, NULL), HEALTH_CLOSED);
	assert_true(health_available(cfg, 0, t + 20000));
	assert_string_equal(next_probe(t + 90000), "");
	health_stats_get(&after);
	assert_int_equal(after.suspected, before.suspected + 1);
	assert_int_equal(after.revoked, before.revoked + 1);
	assert_int_equal(after.restored, before.restored + 1);

	/* A suspect key whose probe passes was fine all along. */
	report(B, 401, -1, t);
	assert_string_equal(next_probe(t), "b--k");
	assert_int_equal(health_probe_result(B, 200, t + 5), 0);
	assert_int_equal(health_state(B, t + 5, NULL), HEALTH_CLOSED);
}

/* No request can take a credential out for everyone: 403s and other 4xx
 * change nothing, however many. */
static void test_4xx_belong_to_the_request(void **state)
{
	uint64_t t = 30000000;
	static const int st[] = { 400, 403, 404, 405, 409, 413, 422 };

	health_cooldown(A, 0);
	for (int i = 0; i < 100; i++)
		report(A, st[i % 7], -1, t);
	assert_int_equal(health_state(A, t, NULL), HEALTH_CLOSED);
	assert_true(health_available(cfg, 0, t));
	assert_string_equal(next_probe(t), "");
}

static void test_reload_forgives_revoked(void **state)
{
	uint64_t t = 40000000;

	health_cooldown(A, 0);
	health_cooldown(B, 0);
	report(A, 401, -1, t);
	assert_string_equal(next_probe(t), "a--k");
	assert_int_equal(health_probe_result(A, 401, t), 0);
	report(B, 503, -1, t);   /* failures on b, kept by the reload */
	report(B, 503, -1, t);
	assert_int_equal(health_state(A, t, NULL), HEALTH_REVOKED);
	assert_int_equal(health_sync(cfg), 0);
	assert_int_equal(health_state(A, t, NULL), HEALTH_CLOSED);
	assert_string_equal(next_probe(t + 86400000), "");
	/* b's two failures survived the reload: a third opens it. */
	report(B, 503, -1, t);
	assert_int_equal(health_state(B, t, NULL), HEALTH_OPEN);
	health_cooldown(B, 0);
}

static void test_unknown_servers(void **state)
{
	struct health_outcome o = { 503, -1, NULL, 0 };

	assert_int_equal(health_report("x--y", 4, &o, 1), -1);
	assert_int_equal(health_state("x--y", 4, 1, NULL), HEALTH_CLOSED);
	assert_int_equal(health_probe_result("x--y", 4, 200, 1), -1);
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
		cmocka_unit_test(test_failures_of_distinct_requests),
		cmocka_unit_test(test_401_suspect_then_probe),
		cmocka_unit_test(test_4xx_belong_to_the_request),
		cmocka_unit_test(test_reload_forgives_revoked),
		cmocka_unit_test(test_unknown_servers),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
