/*
 * Token cache: TTLs (positive, negative, stale), invalidation, bounded size.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <realms/limits.h>
#include <realms/tokcache.h>

static void mkhash(uint8_t h[TOKCACHE_KEY_LEN], uint32_t n)
{
	memset(h, 0, TOKCACHE_KEY_LEN);
	/* spread: the first bytes pick the slot */
	uint32_t v = n * 2654435761u;
	memcpy(h, &v, 4);
	memcpy(h + 4, &n, 4);
}

static struct tok_info active(const char *name)
{
	struct tok_info t = { .status = TOK_ACTIVE };

	strcpy(t.name, name);
	strcpy(t.group, "default");
	return t;
}

static int reset(void **state)
{
	tokcache_clear();
	return 0;
}

static void test_positive_ttl_and_stale(void **state)
{
	uint8_t h[TOKCACHE_KEY_LEN];
	struct tok_info t = active("alice"), out;
	const uint64_t t0 = 1000000;

	mkhash(h, 1);
	assert_int_equal(tokcache_get(h, &out, t0), TOKCACHE_MISS);
	tokcache_put(h, &t, t0, tokcache_epoch());
	assert_int_equal(tokcache_get(h, &out, t0 + TOKCACHE_TTL_MS - 1), TOKCACHE_FRESH);
	assert_string_equal(out.name, "alice");
	assert_int_equal(tokcache_get(h, &out, t0 + TOKCACHE_TTL_MS), TOKCACHE_STALE);
	assert_int_equal(tokcache_get(h, &out, t0 + TOKCACHE_TTL_MS + TOKCACHE_STALE_MS - 1),
	                 TOKCACHE_STALE);
	assert_int_equal(tokcache_get(h, &out, t0 + TOKCACHE_TTL_MS + TOKCACHE_STALE_MS),
	                 TOKCACHE_MISS);
}

static void test_negative_ttl(void **state)
{
	uint8_t h[TOKCACHE_KEY_LEN];
	struct tok_info t = { .status = TOK_UNKNOWN }, out;
	const uint64_t t0 = 5000000;

	mkhash(h, 2);
	tokcache_put(h, &t, t0, tokcache_epoch());
	assert_int_equal(tokcache_get(h, &out, t0 + TOKCACHE_NEG_TTL_MS - 1), TOKCACHE_FRESH);
	assert_int_equal(out.status, TOK_UNKNOWN);
	/* Unknown tokens are never served stale: a miss asks Redis again. */
	assert_int_equal(tokcache_get(h, &out, t0 + TOKCACHE_NEG_TTL_MS), TOKCACHE_MISS);
}

static void test_invalidate(void **state)
{
	uint8_t h[TOKCACHE_KEY_LEN], h2[TOKCACHE_KEY_LEN];
	struct tok_info t = active("bob"), out;

	mkhash(h, 3);
	mkhash(h2, 4);
	tokcache_put(h, &t, 10, tokcache_epoch());
	tokcache_put(h2, &t, 10, tokcache_epoch());
	tokcache_invalidate(h);
	assert_int_equal(tokcache_get(h, &out, 11), TOKCACHE_MISS);
	assert_int_equal(tokcache_get(h2, &out, 11), TOKCACHE_FRESH);
	/* Stored again after Redis answers: usable again. */
	tokcache_put(h, &t, 12, tokcache_epoch());
	assert_int_equal(tokcache_get(h, &out, 13), TOKCACHE_FRESH);
	tokcache_clear();
	assert_int_equal(tokcache_get(h2, &out, 13), TOKCACHE_MISS);
	assert_int_equal(tokcache_count(), 0);
}

static void test_bounded(void **state)
{
	uint8_t h[TOKCACHE_KEY_LEN];
	struct tok_info t = active("x"), out;
	int hits = 0;

	for (uint32_t i = 0; i < 4 * TOKCACHE_SLOTS; i++) {
		mkhash(h, 1000 + i);
		tokcache_put(h, &t, 100 + i, tokcache_epoch());
	}
	assert_true(tokcache_count() <= TOKCACHE_SLOTS);
	/* The most recent entries survive. */
	for (uint32_t i = 4 * TOKCACHE_SLOTS - 100; i < 4 * TOKCACHE_SLOTS; i++) {
		mkhash(h, 1000 + i);
		hits += tokcache_get(h, &out, 100 + 4 * TOKCACHE_SLOTS) == TOKCACHE_FRESH;
	}
	assert_int_equal(hits, 100);
}

/* A lookup sent before a revoke, answered after the revoke's event: its
 * "active" must not be cached (before the epoch, it was, for the TTL). */
static void test_lookup_racing_a_revoke(void **state)
{
	uint8_t h[TOKCACHE_KEY_LEN], other[TOKCACHE_KEY_LEN];
	struct tok_info t = active("carol"), out;
	uint64_t e;

	mkhash(h, 5);
	mkhash(other, 6);
	e = tokcache_epoch();          /* HGETALL sent */
	tokcache_invalidate(h);        /* the revoke's event arrives first */
	assert_int_equal(tokcache_put(h, &t, 20, e), 0);   /* then the stale answer */
	assert_int_equal(tokcache_get(h, &out, 21), TOKCACHE_MISS);
	/* Any invalidation counts, a clear too (events may have been lost). */
	e = tokcache_epoch();
	tokcache_clear();
	assert_int_equal(tokcache_put(other, &t, 22, e), 0);
	assert_int_equal(tokcache_get(other, &out, 23), TOKCACHE_MISS);
	/* With no invalidation in between, the answer is cached. */
	e = tokcache_epoch();
	assert_int_equal(tokcache_put(h, &t, 24, e), 1);
	assert_int_equal(tokcache_get(h, &out, 25), TOKCACHE_FRESH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_positive_ttl_and_stale, reset),
		cmocka_unit_test_setup(test_negative_ttl, reset),
		cmocka_unit_test_setup(test_invalidate, reset),
		cmocka_unit_test_setup(test_bounded, reset),
		cmocka_unit_test_setup(test_lookup_racing_a_revoke, reset),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
