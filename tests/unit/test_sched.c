/*
 * Channel choice: tiers, weights over many seeded draws, cooldown skipping,
 * stickiness.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <realms/sched.h>

/* xorshift64*: a seeded generator, so every run draws the same numbers. */
static uint64_t xs_next(void *arg)
{
	uint64_t *s = arg;

	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static uint64_t cooling;   /* bit i: credential i is cooling down */

static int avail(int cred_id, void *arg)
{
	return !(cooling & (1ULL << cred_id));
}

static struct sched_env env_with(uint64_t *seed)
{
	struct sched_env e = { .available = avail, .rand = xs_next, .rand_arg = seed };

	return e;
}

static void test_highest_priority_first(void **state)
{
	const struct sched_cand c[] = {
		{ 0, 0, 1 }, { 1, 10, 1 }, { 2, 5, 1 },
	};
	uint64_t seed = 42;
	struct sched_env e = env_with(&seed);

	cooling = 0;
	for (int i = 0; i < 100; i++)
		assert_int_equal(sched_pick(c, 3, NULL, 0, &e), 1);
	/* Top tier cooling down: the next tier takes over. */
	cooling = 1ULL << 1;
	for (int i = 0; i < 100; i++)
		assert_int_equal(sched_pick(c, 3, NULL, 0, &e), 2);
	cooling = (1ULL << 1) | (1ULL << 2);
	assert_int_equal(sched_pick(c, 3, NULL, 0, &e), 0);
	cooling = 7;
	assert_int_equal(sched_pick(c, 3, NULL, 0, &e), -1);
	cooling = 0;
	assert_int_equal(sched_pick(c, 0, NULL, 0, &e), -1);
}

static void test_weights_over_many_draws(void **state)
{
	const struct sched_cand c[] = {
		{ 0, 1, 1 }, { 1, 1, 3 }, { 2, 1, 6 }, { 3, 0, 100 },
	};
	uint64_t seed = 0x1234567;
	struct sched_env e = env_with(&seed);
	int counts[4] = { 0 };
	const int draws = 100000;

	cooling = 0;
	for (int i = 0; i < draws; i++)
		counts[sched_pick(c, 4, NULL, 0, &e)]++;
	/* Expected 10 % / 30 % / 60 %, lower tier never; +-1.5 points. */
	assert_in_range(counts[0], 8500, 11500);
	assert_in_range(counts[1], 28500, 31500);
	assert_in_range(counts[2], 58500, 61500);
	assert_int_equal(counts[3], 0);
}

static void test_weight_zero_is_drained(void **state)
{
	const struct sched_cand c[] = { { 0, 1, 0 }, { 1, 1, 1 } };
	uint64_t seed = 7;
	struct sched_env e = env_with(&seed);

	cooling = 0;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(sched_pick(c, 2, NULL, 0, &e), 1);
	assert_int_equal(sched_pick(c, 2, "s", 1, &e), 1);
	/* All drained: nobody. */
	cooling = 2;
	assert_int_equal(sched_pick(c, 2, NULL, 0, &e), -1);
	cooling = 0;
}

static void test_cooldown_skipped(void **state)
{
	const struct sched_cand c[] = { { 0, 0, 1 }, { 1, 0, 1 }, { 2, 0, 1 } };
	uint64_t seed = 99;
	struct sched_env e = env_with(&seed);

	cooling = 1ULL << 1;
	for (int i = 0; i < 2000; i++)
		assert_int_not_equal(sched_pick(c, 3, NULL, 0, &e), 1);
	cooling = 0;
}

static void test_session_sticky(void **state)
{
	const struct sched_cand c[] = { { 0, 0, 1 }, { 1, 0, 1 }, { 2, 0, 1 }, { 3, 0, 1 } };
	uint64_t seed = 5;
	struct sched_env e = env_with(&seed);
	const char *sid = "b9bcf3bd-9fde-4a09-aba9-441d0a1b493d";
	int first, again, moved;

	cooling = 0;
	first = sched_pick(c, 4, sid, strlen(sid), &e);
	assert_in_range(first, 0, 3);
	for (int i = 0; i < 100; i++)
		assert_int_equal(sched_pick(c, 4, sid, strlen(sid), &e), first);

	/* Its credential cools down: it moves, and always to the same one. */
	cooling = 1ULL << c[first].cred_id;
	moved = sched_pick(c, 4, sid, strlen(sid), &e);
	assert_int_not_equal(moved, first);
	for (int i = 0; i < 20; i++)
		assert_int_equal(sched_pick(c, 4, sid, strlen(sid), &e), moved);
	/* Healthy again: back home. */
	cooling = 0;
	again = sched_pick(c, 4, sid, strlen(sid), &e);
	assert_int_equal(again, first);
}

/* Removing one candidate moves only the sessions it had, and sessions spread
 * in proportion to weight. */
static void test_session_spread_and_stability(void **state)
{
	const struct sched_cand c[] = { { 0, 0, 1 }, { 1, 0, 1 }, { 2, 0, 2 } };
	struct sched_env e = { .available = avail, .rand = xs_next };
	int counts[3] = { 0 }, before[2000];
	char sid[32];

	cooling = 0;
	for (int i = 0; i < 2000; i++) {
		int n = snprintf(sid, sizeof(sid), "session-%d", i);

		before[i] = sched_pick(c, 3, sid, (size_t)n, &e);
		counts[before[i]]++;
	}
	assert_in_range(counts[0], 400, 600);    /* 25 % */
	assert_in_range(counts[1], 400, 600);    /* 25 % */
	assert_in_range(counts[2], 900, 1100);   /* 50 % */

	cooling = 1ULL << 0;
	for (int i = 0; i < 2000; i++) {
		int n = snprintf(sid, sizeof(sid), "session-%d", i);
		int now = sched_pick(c, 3, sid, (size_t)n, &e);

		if (before[i] != 0)
			assert_int_equal(now, before[i]);
		else
			assert_int_not_equal(now, 0);
	}
	cooling = 0;
}

static void test_hash_stable(void **state)
{
	/* The mapping must not change between releases or nodes. */
	assert_int_equal(sched_hash("abc", 3, 1), sched_hash("abc", 3, 1));
	assert_int_not_equal(sched_hash("abc", 3, 1), sched_hash("abc", 3, 2));
	assert_int_not_equal(sched_hash("abc", 3, 1), sched_hash("abd", 3, 1));
}

/* A breaker that changes state while the scheduler looks: available on
 * the first question, not on any later one. Before availability was read
 * once per candidate, the second pass found a tier with no weight and
 * divided by zero (SIGFPE killed the agent). */
static int flip_calls;

static int avail_flips(int cred_id, void *arg)
{
	return flip_calls++ == 0;
}

static void test_availability_read_once(void **state)
{
	const struct sched_cand c[] = { { 0, 0, 1 } };
	struct sched_cand many[100];
	uint64_t seed = 7;
	struct sched_env e = { .available = avail_flips, .rand = xs_next, .rand_arg = &seed };

	flip_calls = 0;
	assert_int_equal(sched_pick(c, 1, NULL, 0, &e), 0);
	assert_int_equal(flip_calls, 1);
	flip_calls = 0;
	assert_int_equal(sched_pick(c, 1, "sess", 4, &e), 0);
	assert_int_equal(flip_calls, 1);
	/* More candidates than the stack holds: the heap path. */
	for (int i = 0; i < 100; i++)
		many[i] = (struct sched_cand){ i, 0, 1 };
	flip_calls = 0;
	assert_int_equal(sched_pick(many, 100, NULL, 0, &e), 0);
	assert_int_equal(flip_calls, 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_highest_priority_first),
		cmocka_unit_test(test_weights_over_many_draws),
		cmocka_unit_test(test_weight_zero_is_drained),
		cmocka_unit_test(test_cooldown_skipped),
		cmocka_unit_test(test_session_sticky),
		cmocka_unit_test(test_session_spread_and_stability),
		cmocka_unit_test(test_hash_stable),
		cmocka_unit_test(test_availability_read_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
