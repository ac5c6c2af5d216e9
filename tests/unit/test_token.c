/*
 * Client tokens: base62 vectors, generation, shape check, SHA-256, names,
 * expiry parsing with an injected now. Expected values were computed
 * independently (Python: int.from_bytes + divmod, hashlib, calendar.timegm).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <realms/token.h>

/* 2023-11-14T22:13:20Z: an arbitrary fixed "now". */
#define NOW 1700000000LL

/* ---- base62 ---------------------------------------------------------- */

static void test_b62_zero(void **state)
{
	uint8_t in[32] = { 0 };
	char out[TOKEN_B62_LEN + 1];

	assert_int_equal(token_base62(in, sizeof(in), out, TOKEN_B62_LEN), 0);
	assert_string_equal(out, "0000000000000000000000000000000000000000000");
	assert_int_equal(strlen(out), TOKEN_B62_LEN);
}

static void test_b62_ff(void **state)
{
	uint8_t in[32];
	char out[TOKEN_B62_LEN + 1];

	memset(in, 0xff, sizeof(in));
	assert_int_equal(token_base62(in, sizeof(in), out, TOKEN_B62_LEN), 0);
	/* 2^256 - 1 needs all 43 digits: the width is right and tight */
	assert_string_equal(out, "yhjskwdA6OZ1AL1YmHWZWm8LLG7HjnuCA2j5rOw8Xp1");
	assert_int_equal(token_base62(in, sizeof(in), out, TOKEN_B62_LEN - 1), -1);
	assert_string_equal(out, "");
}

static void test_b62_pattern(void **state)
{
	uint8_t in[32];
	char out[TOKEN_B62_LEN + 1];
	size_t i;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	assert_int_equal(token_base62(in, sizeof(in), out, TOKEN_B62_LEN), 0);
	/* leading zero bytes give leading '0' digits, not a shorter string */
	assert_string_equal(out, "003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf");
}

static void test_b62_small(void **state)
{
	static const uint8_t one[] = { 1 }, d61[] = { 61 }, d62[] = { 62 };
	static const uint8_t beef[] = { 0xde, 0xad, 0xbe, 0xef };
	char out[16];

	assert_int_equal(token_base62(one, 1, out, 3), 0);
	assert_string_equal(out, "001");
	assert_int_equal(token_base62(d61, 1, out, 1), 0);
	assert_string_equal(out, "z");
	assert_int_equal(token_base62(d62, 1, out, 2), 0);
	assert_string_equal(out, "10");
	assert_int_equal(token_base62(d62, 1, out, 1), -1);
	assert_int_equal(token_base62(beef, 4, out, 6), 0);
	assert_string_equal(out, "44pZgF");
	assert_int_equal(token_base62(beef, 4, out, 5), -1);
	/* the input is not modified */
	assert_int_equal(beef[0], 0xde);
}

/* ---- tokens ---------------------------------------------------------- */

static void test_format(void **state)
{
	uint8_t in[32];
	char tok[TOKEN_MAX];
	size_t i;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	token_format(in, tok);
	assert_string_equal(tok, "sk-realms-003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf");
	assert_int_equal(strlen(tok), TOKEN_LEN);
	assert_int_equal(TOKEN_LEN, 53);
	assert_true(token_looks_valid(tok, strlen(tok)));

	memset(in, 0, sizeof(in));
	token_format(in, tok);
	assert_int_equal(strlen(tok), TOKEN_LEN);
	assert_true(token_looks_valid(tok, strlen(tok)));
}

static void test_generate(void **state)
{
	char a[TOKEN_MAX], b[TOKEN_MAX];
	int i;

	for (i = 0; i < 64; i++) {
		assert_int_equal(token_generate(a), 0);
		assert_int_equal(token_generate(b), 0);
		assert_int_equal(strlen(a), TOKEN_LEN);
		assert_true(token_looks_valid(a, strlen(a)));
		assert_true(token_looks_valid(b, strlen(b)));
		assert_string_not_equal(a, b);
		assert_memory_equal(a, TOKEN_PREFIX, TOKEN_PREFIX_LEN);
	}
}

static void test_looks_valid(void **state)
{
	const char *good = "sk-realms-003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf";
	char buf[TOKEN_MAX + 8];

	assert_true(token_looks_valid(good, strlen(good)));
	/* length: one short, one long, empty, NULL */
	assert_false(token_looks_valid(good, strlen(good) - 1));
	snprintf(buf, sizeof(buf), "%sx", good);
	assert_false(token_looks_valid(buf, strlen(buf)));
	assert_false(token_looks_valid("", 0));
	assert_false(token_looks_valid(NULL, 0));
	assert_false(token_looks_valid("sk-realms-", 10));
	/* prefix */
	strcpy(buf, good);
	buf[0] = 'S';
	assert_false(token_looks_valid(buf, strlen(buf)));
	strcpy(buf, good);
	buf[9] = '_';
	assert_false(token_looks_valid(buf, strlen(buf)));
	memcpy(buf, "sk-ant-api", 10);
	assert_false(token_looks_valid(buf, strlen(buf)));
	/* charset after the prefix: '-', '_', '+', '/', '=', NUL, high bytes */
	{
		static const char bad[] = { '-', '_', '+', '/', '=', ' ', '\0', (char)0xc3 };
		size_t i;

		for (i = 0; i < sizeof(bad); i++) {
			strcpy(buf, good);
			buf[TOKEN_LEN - 1 - i] = bad[i];
			assert_false(token_looks_valid(buf, TOKEN_LEN));
		}
	}
	/* the length given counts, not the NUL */
	strcpy(buf, good);
	assert_true(token_looks_valid(buf, TOKEN_LEN));
	buf[TOKEN_LEN] = 'x';
	assert_true(token_looks_valid(buf, TOKEN_LEN));
}

/* ---- hashing --------------------------------------------------------- */

static void test_sha256(void **state)
{
	const char *tok = "sk-realms-003aUlTJC7tjlCTQj2uNU3MFagCXG9LRKRcwGkBIDlf";
	char hex[TOKEN_HEX_LEN + 1];
	uint8_t raw[TOKEN_HASH_LEN], back[TOKEN_HASH_LEN];

	assert_int_equal(token_hash_hex("abc", 3, hex), 0);
	assert_string_equal(hex,
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(token_hash_hex("", 0, hex), 0);
	assert_string_equal(hex,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(token_hash_hex(tok, strlen(tok), hex), 0);
	assert_string_equal(hex,
		"e2a9b4b03e37377d505684cb69eaab2ec0200b14dfbb55acffe4b5c5614fa38c");

	/* raw and hex agree, and decode round-trips (either case) */
	assert_int_equal(token_hash(tok, strlen(tok), raw), 0);
	assert_int_equal(raw[0], 0xe2);
	assert_int_equal(raw[31], 0x8c);
	assert_int_equal(token_hex_decode(hex, strlen(hex), back), 0);
	assert_memory_equal(raw, back, TOKEN_HASH_LEN);
	assert_int_equal(token_hex_decode(
		"E2A9B4B03E37377D505684CB69EAAB2EC0200B14DFBB55ACFFE4B5C5614FA38C",
		64, back), 0);
	assert_memory_equal(raw, back, TOKEN_HASH_LEN);
	token_hex_encode(raw, hex);
	assert_string_equal(hex,
		"e2a9b4b03e37377d505684cb69eaab2ec0200b14dfbb55acffe4b5c5614fa38c");

	/* decode refuses wrong lengths and non-hex, leaving out untouched */
	memset(back, 0xaa, sizeof(back));
	assert_int_equal(token_hex_decode(hex, 63, back), -1);
	assert_int_equal(token_hex_decode(hex, 65, back), -1);
	hex[63] = 'g';
	assert_int_equal(token_hex_decode(hex, 64, back), -1);
	assert_int_equal(back[0], 0xaa);
}

/* ---- names ----------------------------------------------------------- */

static void test_names(void **state)
{
	char long_name[TOKEN_NAME_MAX + 2];

	assert_true(token_name_valid("alice", 5));
	assert_true(token_name_valid("a", 1));
	assert_true(token_name_valid("bob@example.com", 15));
	assert_true(token_name_valid("ci-bot_2.0", 10));
	assert_false(token_name_valid("", 0));
	assert_false(token_name_valid(NULL, 0));
	assert_false(token_name_valid("a b", 3));
	assert_false(token_name_valid("a:b", 3));
	assert_false(token_name_valid("a/b", 3));
	assert_false(token_name_valid("a\"b", 3));
	assert_false(token_name_valid("caf\xc3\xa9", 5));
	assert_false(token_name_valid("a\0b", 3));

	memset(long_name, 'x', sizeof(long_name));
	assert_true(token_name_valid(long_name, TOKEN_NAME_MAX));
	assert_false(token_name_valid(long_name, TOKEN_NAME_MAX + 1));
}

/* ---- expiries -------------------------------------------------------- */

static int64_t exp_ok(const char *s)
{
	int64_t v = -12345;

	assert_int_equal(token_parse_expiry(s, NOW, &v), 0);
	return v;
}

static void exp_bad(const char *s)
{
	int64_t v = -12345;

	if (token_parse_expiry(s, NOW, &v) != -1)
		fail_msg("accepted \"%s\"", s);
	assert_int_equal(v, -12345);
}

static void test_expiry_dates(void **state)
{
	/* valid through the whole day: the next midnight UTC */
	assert_int_equal(exp_ok("2025-12-31"), 1767225600);   /* 2026-01-01T00:00Z */
	assert_int_equal(exp_ok("2023-03-01"), 1677715200);
	assert_int_equal(exp_ok("1970-01-01"), 86400);
	/* leap days */
	assert_int_equal(exp_ok("2024-02-29"), 1709251200);
	assert_int_equal(exp_ok("2000-02-29"), 951868800);
	exp_bad("2023-02-29");
	exp_bad("1900-02-29");
	exp_bad("2100-02-29");
	/* month lengths */
	exp_bad("2024-04-31");
	exp_bad("2024-13-01");
	exp_bad("2024-00-10");
	exp_bad("2024-01-00");
	exp_bad("2024-01-32");
	exp_bad("1969-12-31");
	/* shape */
	exp_bad("2024-1-01");
	exp_bad("2024/01/01");
	exp_bad("24-01-01");
	exp_bad("2024-01-01 ");
	exp_bad(" 2024-01-01");
	exp_bad("2024-01-0a");
	exp_bad("+024-01-01");
}

static void test_expiry_datetime(void **state)
{
	assert_int_equal(exp_ok("2030-06-15T13:45:30Z"), 1907761530);
	assert_int_equal(exp_ok("9999-12-31T23:59:59Z"), 253402300799LL);
	assert_int_equal(exp_ok("2024-02-29T00:00:00Z"), 1709251200 - 86400);
	exp_bad("2030-06-15T24:00:00Z");
	exp_bad("2030-06-15T23:60:00Z");
	exp_bad("2030-06-15T23:59:60Z");
	exp_bad("2030-06-15T13:45:30");
	exp_bad("2030-06-15T13:45:30+02:00");
	exp_bad("2030-06-15 13:45:30Z");
	exp_bad("2030-06-15t13:45:30Z");
	exp_bad("2030-06-15T13:45Z");
	exp_bad("2023-02-29T10:00:00Z");
	/* the epoch itself would be read as "never" */
	exp_bad("1970-01-01T00:00:00Z");
	assert_int_equal(exp_ok("1970-01-01T00:00:01Z"), 1);
}

static void test_expiry_relative(void **state)
{
	assert_int_equal(exp_ok("30d"), NOW + 30 * 86400);
	assert_int_equal(exp_ok("12h"), NOW + 12 * 3600);
	assert_int_equal(exp_ok("90m"), NOW + 90 * 60);
	assert_int_equal(exp_ok("1m"), NOW + 60);
	assert_int_equal(exp_ok("007d"), NOW + 7 * 86400);
	assert_int_equal(exp_ok("36600d"), NOW + TOKEN_REL_MAX_S);
	exp_bad("36601d");
	exp_bad("99999999999999999999999d");
	exp_bad("0d");
	exp_bad("d");
	exp_bad("30");
	exp_bad("-30d");
	exp_bad("+30d");
	exp_bad("30 d");
	exp_bad("30D");
	exp_bad("30s");
	exp_bad("30w");
	exp_bad("1.5d");
	exp_bad("30dd");
	exp_bad("0x10d");
}

static void test_expiry_misc(void **state)
{
	int64_t v = 5;

	assert_int_equal(exp_ok("never"), 0);
	exp_bad("");
	exp_bad("Never");
	exp_bad("tomorrow");
	exp_bad("1700000000");
	assert_int_equal(token_parse_expiry(NULL, NOW, &v), -1);
	assert_int_equal(v, 5);
	/* relative forms depend on now, absolute ones do not */
	assert_int_equal(token_parse_expiry("1h", 0, &v), 0);
	assert_int_equal(v, 3600);
	assert_int_equal(token_parse_expiry("2024-02-29", 0, &v), 0);
	assert_int_equal(v, 1709251200);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b62_zero),
		cmocka_unit_test(test_b62_ff),
		cmocka_unit_test(test_b62_pattern),
		cmocka_unit_test(test_b62_small),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_generate),
		cmocka_unit_test(test_looks_valid),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_expiry_dates),
		cmocka_unit_test(test_expiry_datetime),
		cmocka_unit_test(test_expiry_relative),
		cmocka_unit_test(test_expiry_misc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
