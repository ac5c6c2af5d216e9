/*
 * Body inspection: the Claude Code fixtures whole and cut at every byte,
 * nested and duplicated keys (escaped, and after content nested 100000
 * deep), escapes, malformed JSON and prefixes, every prefix of a few bodies
 * against the whole, metadata.user_id, max_tokens, bodies of any size and
 * depth, json_quote.
 *
 * Every body is handed over in a heap copy of exactly its size (or at the
 * very end of one), so that ASan catches any read past the prefix.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <realms/inspect.h>
#include <realms/json.h>

#ifndef FIXTURES_DIR
#error "FIXTURES_DIR must name tests/fixtures/claude-code"
#endif

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static char *load_fixture(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", FIXTURES_DIR, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	buf = malloc(n);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* Inspects the first len bytes of s from an exactly-sized heap copy. */
static enum inspect_status inspect_n(const char *s, size_t len, size_t body_len,
                                     struct inspect_result *res)
{
	char *copy = malloc(len ? len : 1);
	enum inspect_status st;

	assert_non_null(copy);
	memcpy(copy, s, len);
	st = inspect_body(copy, len, body_len, res);
	free(copy);
	assert_int_equal(st, res->status);
	return st;
}

/* A whole body given as a C string. */
static enum inspect_status inspect_s(const char *s, struct inspect_result *res)
{
	return inspect_n(s, strlen(s), strlen(s), res);
}

/* A C string as a prefix of a longer body. */
static enum inspect_status inspect_cut(const char *s, struct inspect_result *res)
{
	return inspect_n(s, strlen(s), strlen(s) + 100, res);
}

/* The model token at model_off/model_tok_len is `tok` in `body`. */
static void assert_model_tok(const char *body, const struct inspect_result *res,
                             const char *tok)
{
	assert_int_equal(res->model_state, INSPECT_KEY_PRESENT);
	assert_int_equal(res->model_tok_len, strlen(tok));
	assert_memory_equal(body + res->model_off, tok, strlen(tok));
}

static void assert_model(const struct inspect_result *res, const char *model, size_t len)
{
	assert_int_equal(res->model_state, INSPECT_KEY_PRESENT);
	assert_int_equal(res->model_len, len);
	assert_memory_equal(res->model, model, len);
	assert_int_equal(res->model[len], 0);
	assert_int_equal(res->model_too_long, 0);
}

/* ------------------------------------------------------------------------ */
/* fixtures                                                                 */
/* ------------------------------------------------------------------------ */

struct fixture {
	const char *file;
	const char *model;
	const char *session;     /* in metadata.user_id */
	uint64_t max_tokens;
};

static const struct fixture fixtures[] = {
	{ "messages-1.json", "claude-sonnet-4-5", "b9bcf3bd-9fde-4a09-aba9-441d0a1b493d", 32000 },
	{ "messages-2.json", "claude-opus-5-5", "2a5b7726-314f-4255-b485-c29814c3bcb0", 128000 },
};

static void test_fixture_whole(void **state)
{
	struct inspect_result res;
	char tok[64], uid[256];
	size_t i, len;
	char *buf;

	for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		buf = load_fixture(fixtures[i].file, &len);
		snprintf(tok, sizeof(tok), "\"%s\"", fixtures[i].model);
		assert_int_equal(inspect_body(buf, len, len, &res), INSPECT_OK);
		assert_int_equal(res.complete, 1);
		assert_model(&res, fixtures[i].model, strlen(fixtures[i].model));
		assert_model_tok(buf, &res, tok);
		assert_int_equal(res.model_off, strlen("{\"model\":"));
		assert_int_equal(res.stream_state, INSPECT_KEY_PRESENT);
		assert_int_equal(res.stream, 1);
		assert_int_equal(res.max_tokens_state, INSPECT_KEY_PRESENT);
		assert_int_equal(res.max_tokens, fixtures[i].max_tokens);
		snprintf(uid, sizeof(uid), "{\"device_id\":\"%064d\",\"account_uuid\":\"\","
		         "\"session_id\":\"%s\"}", 0, fixtures[i].session);
		memset(uid + strlen("{\"device_id\":\""), 'f', 64);
		assert_int_equal(res.user_id_len, strlen(uid));
		assert_string_equal(res.user_id, uid);
		/* A body longer than it says is read up to body_len. */
		assert_int_equal(inspect_body(buf, len, len - 1, &res), INSPECT_INVALID);
		free(buf);
	}
}

/* Cut at every offset of the first 300 bytes: the model appears exactly
 * when its closing quote is in; "stream", the last key, never does. */
static void test_fixture_prefixes(void **state)
{
	struct inspect_result res;
	size_t i, n, len, off, end;
	char tok[64];
	char *buf;

	for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		buf = load_fixture(fixtures[i].file, &len);
		snprintf(tok, sizeof(tok), "\"%s\"", fixtures[i].model);
		off = strlen("{\"model\":");
		assert_memory_equal(buf, "{\"model\":", off);
		end = off + strlen(tok);   /* prefix length holding the closing quote */
		for (n = 0; n <= 300; n++) {
			assert_int_equal(inspect_n(buf, n, len, &res), INSPECT_OK);
			assert_int_equal(res.complete, 0);
			assert_int_equal(res.stream_state, INSPECT_KEY_ABSENT);
			assert_int_equal(res.user_id_len, 0);
			if (n < end) {
				assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
				continue;
			}
			assert_model(&res, fixtures[i].model, strlen(fixtures[i].model));
			assert_int_equal(res.model_off, off);
			assert_model_tok(buf, &res, tok);
		}
		free(buf);
	}
}

static void test_fixture_64k(void **state)
{
	struct inspect_result res;
	size_t len;
	char *buf = load_fixture("messages-1.json", &len);

	assert_true(len > 65536);
	assert_int_equal(inspect_n(buf, 65536, len, &res), INSPECT_OK);
	assert_int_equal(res.complete, 0);
	assert_model(&res, "claude-sonnet-4-5", strlen("claude-sonnet-4-5"));
	assert_int_equal(res.stream_state, INSPECT_KEY_ABSENT);
	assert_int_equal(res.user_id_len, 0);   /* metadata is near the end */
	free(buf);

	/* messages-2 is smaller than 64 KB: a 64 KB prefix is all of it. */
	buf = load_fixture("messages-2.json", &len);
	assert_true(len < 65536);
	assert_int_equal(inspect_n(buf, len, len, &res), INSPECT_OK);
	assert_int_equal(res.stream_state, INSPECT_KEY_PRESENT);
	free(buf);
}

/* Several threads at once: thread-local scratch, freed at thread exit
 * (LeakSanitizer would report otherwise). */
struct thr_arg {
	const char *buf;
	size_t len;
	int ok;
};

static void *thr_main(void *p)
{
	struct thr_arg *a = p;
	struct inspect_result res;
	int i;

	a->ok = 1;
	for (i = 0; i < 50; i++) {
		if (inspect_body(a->buf, a->len, a->len, &res) != INSPECT_OK ||
		    res.model_state != INSPECT_KEY_PRESENT || res.stream != 1)
			a->ok = 0;
		if (inspect_body(a->buf, a->len / 2, a->len, &res) != INSPECT_OK ||
		    res.model_state != INSPECT_KEY_PRESENT)
			a->ok = 0;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct thr_arg args[4];
	pthread_t th[4];
	size_t len;
	char *buf = load_fixture("messages-1.json", &len);
	int i;

	for (i = 0; i < 4; i++) {
		args[i].buf = buf;
		args[i].len = len;
		assert_int_equal(pthread_create(&th[i], NULL, thr_main, &args[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_true(args[i].ok);
	}
	free(buf);
}

/* ------------------------------------------------------------------------ */
/* keys                                                                     */
/* ------------------------------------------------------------------------ */

static void test_nested_model(void **state)
{
	struct inspect_result res;
	const char *only_nested =
		"{\"messages\":[{\"role\":\"user\",\"model\":\"m1\"}],"
		"\"tools\":[{\"name\":\"t\",\"model\":\"m2\",\"input_schema\":{\"model\":\"m3\"}}],"
		"\"metadata\":{\"model\":\"m4\",\"stream\":true},\"x\":[\"model\",\"stream\"]}";
	const char *both =
		"{\"metadata\":{\"model\":\"inner\"},\"messages\":[{\"model\":\"m\"}],"
		"\"model\":\"outer\",\"tools\":[{\"model\":\"t\"}]}";
	const char *spaced = " \r\n\t{ \"a\" : [ 1 , { } ] ,\n \"model\" :\t\"x y\" } \n";

	assert_int_equal(inspect_s(only_nested, &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(res.stream_state, INSPECT_KEY_ABSENT);

	assert_int_equal(inspect_s(both, &res), INSPECT_OK);
	assert_model(&res, "outer", 5);
	assert_model_tok(both, &res, "\"outer\"");

	/* Cut inside a nested object: still nothing at the root. */
	assert_int_equal(inspect_cut("{\"metadata\":{\"model\":\"inner\"", &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(inspect_cut("{\"metadata\":{\"model\":\"inner\"},\"model\":\"x\"", &res),
	                 INSPECT_OK);
	assert_model(&res, "x", 1);
	/* A nested duplicate is not a top-level one. */
	assert_int_equal(inspect_s("{\"m\":{\"a\":1,\"a\":2},\"model\":\"x\"}", &res), INSPECT_OK);
	assert_model(&res, "x", 1);
	/* Whitespace everywhere, model not first. */
	assert_int_equal(inspect_s(spaced, &res), INSPECT_OK);
	assert_model(&res, "x y", 3);
	assert_int_equal(res.model_off, (size_t)(strstr(spaced, "\"x y\"") - spaced));
	assert_int_equal(res.model_tok_len, 5);
}

static void test_duplicate_keys(void **state)
{
	static const char *dups[] = {
		"{\"model\":\"a\",\"model\":\"b\"}",
		"{\"model\":\"a\",\"stream\":true,\"model\":1}",
		"{\"a\":1,\"model\":\"x\",\"a\":[2]}",
		"{\"model\":\"a\",\"mod\\u0065l\":\"b\"}",
		"{\"\\u006d\\u006F\\u0064\\u0065\\u006c\":\"a\",\"model\":\"b\"}",
		"{\"caf\\u00e9\":1,\"caf\xc3\xa9\":2}",
		"{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}",
		"{\"a\\/b\":1,\"a/b\":2}",
		"{\"\\ud800\":1,\"\\uD800\":2}",   /* lone surrogates compare too */
		"{\"\":1,\"\":2}",
		"{\"stream\":true,\"stream\":false}",
	};
	struct inspect_result res;
	size_t i;

	for (i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
		assert_int_equal(inspect_s(dups[i], &res), INSPECT_DUPLICATE_KEY);
	}
	/* The last one is reported (it is what upstream would use). */
	assert_int_equal(inspect_s(dups[0], &res), INSPECT_DUPLICATE_KEY);
	assert_model(&res, "b", 1);

	/* Near misses are not duplicates. */
	assert_int_equal(inspect_s("{\"a\":1,\"A\":2,\"ab\":3,\"a\\u0000\":4,\"\":5}", &res),
	                 INSPECT_OK);
	assert_int_equal(inspect_s("{\"model\":\"a\",\"models\":\"b\",\"mode\":\"c\"}", &res),
	                 INSPECT_OK);
	assert_model(&res, "a", 1);

	/* Seen in a prefix: a key whose value is not in yet counts. */
	assert_int_equal(inspect_cut("{\"model\":\"a\",\"model\"", &res), INSPECT_DUPLICATE_KEY);
	assert_int_equal(inspect_cut("{\"model\":\"a\",\"model\":\"b", &res), INSPECT_DUPLICATE_KEY);
	assert_int_equal(inspect_cut("{\"model\":\"a\",\"mode", &res), INSPECT_OK);
}

/* Thousands of root keys: sorted, not compared pairwise. */
static void test_many_keys(void **state)
{
	const size_t nkeys = 20000;
	struct inspect_result res;
	size_t n, cap = nkeys * 16 + 64;
	char *buf = malloc(cap);
	size_t i;

	assert_non_null(buf);
	n = 0;
	buf[n++] = '{';
	for (i = 0; i < nkeys; i++)
		n += snprintf(buf + n, cap - n, "\"k%zu\":%zu,", i * 7919 % 100003, i);
	n += snprintf(buf + n, cap - n, "\"model\":\"m\"}");
	assert_int_equal(inspect_n(buf, n, n, &res), INSPECT_OK);
	assert_model(&res, "m", 1);

	/* The same with one key repeated at the end. */
	n -= strlen("\"model\":\"m\"}");
	n += snprintf(buf + n, cap - n, "\"k%zu\":0}", (size_t)(1234 * 7919 % 100003));
	assert_int_equal(inspect_n(buf, n, n, &res), INSPECT_DUPLICATE_KEY);
	free(buf);
}

/* ------------------------------------------------------------------------ */
/* escapes                                                                  */
/* ------------------------------------------------------------------------ */

static void test_escaped_model(void **state)
{
	static const struct {
		const char *body;
		const char *model;   /* decoded, NULL: WRONG_TYPE */
		size_t len;
	} cases[] = {
		{ "{\"model\":\"a\\\"b\"}",                    "a\"b", 3 },
		{ "{\"model\":\"a\\\\b\"}",                    "a\\b", 3 },
		{ "{\"model\":\"a\\/b\"}",                     "a/b", 3 },
		{ "{\"model\":\"caf\\u00e9\"}",                "caf\xc3\xa9", 5 },
		{ "{\"model\":\"caf\\u00E9\"}",                "caf\xc3\xa9", 5 },
		{ "{\"model\":\"\\u20ac\"}",                   "\xe2\x82\xac", 3 },
		{ "{\"model\":\"\\u0041\"}",                   "A", 1 },
		{ "{\"model\":\"x\\ud83d\\ude00y\"}",          "x\xf0\x9f\x98\x80y", 6 },
		{ "{\"model\":\"\xe2\x82\xac raw\"}",          "\xe2\x82\xac raw", 7 },
		{ "{\"model\":\"\"}",                          "", 0 },
		{ "{\"model\":\"\\ud83d\"}",                   NULL, 0 },
		{ "{\"model\":\"\\ud83dx\"}",                  NULL, 0 },
		{ "{\"model\":\"\\ud83d\\u0041\"}",            NULL, 0 },
		{ "{\"model\":\"\\ud83d\\ud83d\"}",            NULL, 0 },
		{ "{\"model\":\"\\ude00\"}",                   NULL, 0 },
		{ "{\"model\":\"a\\u0000b\"}",                 NULL, 0 },
		{ "{\"model\":\"a\\u001fb\"}",                 NULL, 0 },
		{ "{\"model\":\"a\\nb\"}",                     NULL, 0 },
		{ "{\"model\":\"a\\tb\"}",                     NULL, 0 },
	};
	struct inspect_result res;
	size_t i;
	const char *tok;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(inspect_s(cases[i].body, &res), INSPECT_OK);
		if (!cases[i].model) {
			assert_int_equal(res.model_state, INSPECT_KEY_WRONG_TYPE);
			assert_int_equal(res.model_too_long, 0);
			continue;
		}
		assert_model(&res, cases[i].model, cases[i].len);
		/* The token is the raw value, escapes and all. */
		tok = cases[i].body + strlen("{\"model\":");
		assert_int_equal(res.model_off, strlen("{\"model\":"));
		assert_int_equal(res.model_tok_len, strlen(tok) - 1);
		assert_memory_equal(cases[i].body + res.model_off, tok, strlen(tok) - 1);
	}
}

static void test_escaped_keys(void **state)
{
	struct inspect_result res;

	assert_int_equal(inspect_s("{\"mod\\u0065l\":\"x\"}", &res), INSPECT_OK);
	assert_model(&res, "x", 1);
	assert_int_equal(inspect_s("{\"\\u006d\\u006f\\u0064\\u0065\\u006c\":\"x\"}", &res),
	                 INSPECT_OK);
	assert_model(&res, "x", 1);
	assert_int_equal(inspect_s("{\"str\\u0065am\":false}", &res), INSPECT_OK);
	assert_int_equal(res.stream_state, INSPECT_KEY_PRESENT);
	assert_int_equal(res.stream, 0);
	/* Not model: decoded, these differ from it. */
	assert_int_equal(inspect_s("{\"model\\u0000\":\"x\",\"\\u0000model\":\"y\"}", &res),
	                 INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(inspect_s("{\"model\\\"\":\"x\",\"mode\\\\l\":\"y\",\"\\ud83d\":\"z\"}", &res),
	                 INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(inspect_s("{\"Model\":\"x\",\"MODEL\":\"y\",\"model \":\"z\"}", &res),
	                 INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	/* Raw control characters in a key make the body invalid. */
	assert_int_equal(inspect_s("{\"mod\nel\":\"x\"}", &res), INSPECT_INVALID);
}

/* ------------------------------------------------------------------------ */
/* shapes                                                                   */
/* ------------------------------------------------------------------------ */

static void test_not_object(void **state)
{
	static const char *whole[] = {
		"[]", "[1,2]", " [ {\"model\":\"x\"} ] ", "\"model\"", "\"\"", "42", "-1.5e3",
		"0", "true", "false", "null", "  null\n", "\t7 ",
	};
	static const char *cut[] = {
		"[", "[{\"model\":\"x\"}", "\"mod", "4", "tr", "n", " [1,", "x", "}",
	};
	static const char *bad_whole[] = {
		"[1,", "[1,]", "\"abc", "tru", "01", "1.", "-", "x", "}", "]", "nulll",
		"1 2", "[] []", "\"a\" \"b\"", "[1}",
	};
	struct inspect_result res;
	size_t i;

	for (i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		assert_int_equal(inspect_s(whole[i], &res), INSPECT_NOT_OBJECT);
		assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	}
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++)
		assert_int_equal(inspect_cut(cut[i], &res), INSPECT_NOT_OBJECT);
	for (i = 0; i < sizeof(bad_whole) / sizeof(bad_whole[0]); i++)
		assert_int_equal(inspect_s(bad_whole[i], &res), INSPECT_INVALID);
}

static void test_empty(void **state)
{
	struct inspect_result res;

	assert_int_equal(inspect_n("", 0, 0, &res), INSPECT_EMPTY);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(inspect_n("{}", 2, 0, &res), INSPECT_EMPTY);
	assert_int_equal(inspect_body(NULL, 0, 0, &res), INSPECT_EMPTY);

	/* Nothing yet of a longer body. */
	assert_int_equal(inspect_n("", 0, 100, &res), INSPECT_OK);
	assert_int_equal(res.complete, 0);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(res.stream_state, INSPECT_KEY_ABSENT);
	assert_int_equal(inspect_cut("  \n", &res), INSPECT_OK);

	/* A blank body is no object. */
	assert_int_equal(inspect_s(" ", &res), INSPECT_INVALID);
	assert_int_equal(inspect_s("\r\n\t ", &res), INSPECT_INVALID);

	assert_int_equal(inspect_s("{}", &res), INSPECT_OK);
	assert_int_equal(res.complete, 1);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
}

static void test_valid(void **state)
{
	static const char *ok[] = {
		"{}",
		" { } ",
		"{\"a\":[]}",
		"{\"a\":{}}",
		"{\"a\":[1,2.5,-0,0,1e10,1E-2,0.0e+1,-12.50E007,true,false,null,\"s\",{},[[]]]}",
		"{\"a\":{\"b\":{\"c\":[{\"d\":null}]}},\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\"}",
		"{\n\t\"a\"\r\n:\n1\n,\n\"b\" : [ 1 , 2 ] \n}\n",
		"{\"a\":\"\x7f\xff\xc3\xa9\"}",  /* UTF-8 is not checked */
	};
	struct inspect_result res;
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(inspect_s(ok[i], &res), INSPECT_OK);
		assert_int_equal(res.complete, 1);
	}
}

static void test_invalid(void **state)
{
	static const struct {
		const char *s;
		size_t n;          /* 0: strlen */
	} bad[] = {
		{ "{\"a\":1,}", 0 }, { "{\"a\":1,,\"b\":2}", 0 }, { "{,\"a\":1}", 0 },
		{ "{,}", 0 }, { "{\"a\"}", 0 }, { "{\"a\":}", 0 }, { "{\"a\"::1}", 0 },
		{ "{\"a\" 1}", 0 }, { "{\"a\" \"b\"}", 0 }, { "{\"a\":1 \"b\":2}", 0 },
		{ "{\"a\":\"b\":\"c\"}", 0 }, { "{\"a\":1,\"b\"}", 0 },
		{ "{\"a\":1 , }", 0 }, { "{:1}", 0 }, { "{\"a\",1}", 0 },
		{ "{\"a\":[1 2]}", 0 }, { "{\"a\":[\"x\" \"y\"]}", 0 },
		{ "{\"a\":[1,]}", 0 }, { "{\"a\":[,1]}", 0 }, { "{\"a\":[1,,2]}", 0 },
		{ "{\"a\":[1:2]}", 0 }, { "{\"a\":{}{}}", 0 }, { "{\"a\":[][]}", 0 },
		{ "{\"a\":01}", 0 }, { "{\"a\":1.}", 0 }, { "{\"a\":.5}", 0 },
		{ "{\"a\":-}", 0 }, { "{\"a\":1e}", 0 }, { "{\"a\":1e+}", 0 },
		{ "{\"a\":+1}", 0 }, { "{\"a\":-01}", 0 }, { "{\"a\":1.5.2}", 0 },
		{ "{\"a\":0x1}", 0 }, { "{\"a\":1\xc3\xa9}", 0 }, { "{\"a\":tru}", 0 },
		{ "{\"a\":truex}", 0 }, { "{\"a\":nul}", 0 }, { "{\"a\":True}", 0 },
		{ "{\"a\":undefined}", 0 }, { "{\"a\":NaN}", 0 }, { "{\"a\":'x'}", 0 },
		{ "{\"a\":1\"b\"}", 0 }, { "{\"a\":\"x\ty\"}", 0 },
		{ "{\"a\":\"x\x01\"}", 0 }, { "{\"a\":\"x\x1f\"}", 0 },
		{ "{\"a\\n\x02\":1}", 0 }, { "{\"a\":\"\\x\"}", 0 },
		{ "{\"a\":\"\\u12\"}", 0 }, { "{\"a\":\"\\u12g4\"}", 0 },
		{ "{\"a\":\"\\U0041\"}", 0 }, { "{\"a\":\"\\'\"}", 0 }, { "{1:2}", 0 },
		{ "{{}:1}", 0 }, { "{[]:1}", 0 }, { "{true:1}", 0 }, { "{\"a\":1}x", 0 },
		{ "{\"a\":1}{}", 0 }, { "{\"a\":1} 1", 0 }, { "{\"a\":1}}", 0 },
		{ "{\"a\":1}]", 0 }, { "{\"a\":1},", 0 }, { "{\"a\":1} \"x\"", 0 },
		{ "{} []", 0 }, { "{\"a\":1]", 0 }, { "{\"a\":[}", 0 },
		{ "{\"a\":{]}", 0 }, { "{\"a\":[1}]", 0 }, { "{\"a\":1", 0 },
		{ "{\"a\":\"x", 0 }, { "{", 0 }, { "{\"a\"", 0 }, { "{\"a\":", 0 },
		{ "{\"a\":[1,2", 0 }, { "{\"a\":tr", 0 }, { "{}\0", 3 },
		{ "{\"a\":\"b\0c\"}", 11 }, { "{\0}", 3 }, { "{\"a\":1\0}", 8 },
		{ "\0{}", 3 }, { "{\"a\":[\0]}", 9 }, { "{\"a\0\":1}", 8 },
	};
	struct inspect_result res;
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = bad[i].n ? bad[i].n : strlen(bad[i].s);
		if (inspect_n(bad[i].s, n, n, &res) != INSPECT_INVALID)
			fail_msg("case %zu (%s): %s", i, bad[i].s, inspect_status_str(res.status));
		assert_int_equal(res.complete, 0);
		assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	}
	/* Invalid wins over what was found before the fault. */
	assert_int_equal(inspect_s("{\"model\":\"x\",\"stream\":true,}", &res), INSPECT_INVALID);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(res.stream_state, INSPECT_KEY_ABSENT);
	assert_int_equal(inspect_s("{\"model\":\"x\",\"model\":\"y\",}", &res), INSPECT_INVALID);
}

/* A prefix that no continuation can make valid is invalid too. */
static void test_invalid_prefix(void **state)
{
	static const struct {
		const char *s;
		size_t n;
	} bad[] = {
		{ "{\"a\":1,,", 0 }, { "{\"a\" 1", 0 }, { "{\"a\":tx", 0 },
		{ "{\"a\":01", 0 }, { "{\"a\":1." "x", 0 }, { "{\"a\":\"x\x01", 0 },
		{ "{\"a\":1}x", 0 }, { "{\"a\":1} 2", 0 }, { "{\"a\":1}\"", 0 },
		{ "{\"a\":\"b\0", 8 }, { "{\"a\":1\0", 7 }, { "{}\0", 3 },
		{ "{\"a\":\0", 6 }, { "{\"a\" \"", 0 }, { "{\"a\":1 \"", 0 },
		{ "{\"a\":[1 2", 0 }, { "{\"a\":[1," "]", 0 }, { "{\"a\":\"\\x", 0 },
		{ "{\"a\":\"\\u12x", 0 }, { "{:", 0 }, { "{\"a\",", 0 },
		{ "{\"a\":nu1", 0 }, { "{\"a\":-x", 0 }, { "{\"a\":1e+e", 0 }, { "{1", 0 },
		{ "{\"a\":}", 0 },
	};
	struct inspect_result res;
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = bad[i].n ? bad[i].n : strlen(bad[i].s);
		if (inspect_n(bad[i].s, n, n + 50, &res) != INSPECT_INVALID)
			fail_msg("case %zu (%s): %s", i, bad[i].s, inspect_status_str(res.status));
	}
}

/* Every prefix of a valid body is fine, and says only what it holds. */
static void test_every_prefix(void **state)
{
	const char *body =
		"{\"metadata\":{\"model\":\"no\",\"a\":[1,-2.5e+3,true,null,\"\\u00e9\\\"\"]},"
		" \"model\" : \"cl\\u00e9\\ud83d\\ude00\\\\\" ,\"n\":-0.5E-10,"
		"\"stream\":false }  ";
	const char *tok = "\"cl\\u00e9\\ud83d\\ude00\\\\\"";
	const char *mtok = strstr(body, tok);
	const char *stok = strstr(body, "false");
	struct inspect_result res;
	size_t n, len = strlen(body);

	for (n = 0; n <= len; n++) {
		assert_int_equal(inspect_n(body, n, len, &res), INSPECT_OK);
		assert_int_equal(res.complete, n == len);
		if (n < (size_t)(mtok - body) + strlen(tok)) {
			assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
		} else {
			assert_model(&res, "cl\xc3\xa9\xf0\x9f\x98\x80\\", 9);
			assert_int_equal(res.model_off, (size_t)(mtok - body));
			assert_int_equal(res.model_tok_len, strlen(tok));
		}
		/* "false" needs a delimiter after it to be whole. */
		if (n <= (size_t)(stok - body) + 5)
			assert_int_equal(res.stream_state, INSPECT_KEY_ABSENT);
		else
			assert_int_equal(res.stream_state, INSPECT_KEY_PRESENT);
	}
}

/* ------------------------------------------------------------------------ */
/* values                                                                   */
/* ------------------------------------------------------------------------ */

static void test_model_types(void **state)
{
	static const char *wrong[] = {
		"{\"model\":1}", "{\"model\":-1.5}", "{\"model\":{}}", "{\"model\":{\"a\":\"b\"}}",
		"{\"model\":[]}", "{\"model\":[\"claude\"]}", "{\"model\":null}", "{\"model\":true}",
	};
	struct inspect_result res;
	size_t i;

	for (i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
		assert_int_equal(inspect_s(wrong[i], &res), INSPECT_OK);
		assert_int_equal(res.model_state, INSPECT_KEY_WRONG_TYPE);
		assert_int_equal(res.model_too_long, 0);
		assert_int_equal(res.model_len, 0);
	}
	/* An unfinished container is of a known type; a string or a number
	 * is not in until it ends. */
	assert_int_equal(inspect_cut("{\"model\":{\"a\":", &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_WRONG_TYPE);
	assert_int_equal(inspect_cut("{\"model\":[", &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_WRONG_TYPE);
	assert_int_equal(inspect_cut("{\"model\":\"claude", &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(inspect_cut("{\"model\":\"claude\\", &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(inspect_cut("{\"model\":\"claude\\u00", &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(inspect_cut("{\"model\":12", &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(inspect_cut("{\"model\":12 ", &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_WRONG_TYPE);
	assert_int_equal(inspect_cut("{\"model\":", &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	assert_int_equal(inspect_cut("{\"model\"", &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
}

static void test_model_too_long(void **state)
{
	char body[2048], want[INSPECT_MODEL_MAX + 1];
	struct inspect_result res;
	size_t n, i;

	memset(want, 'a', INSPECT_MODEL_MAX);
	/* Exactly the limit: fine. */
	n = snprintf(body, sizeof(body), "{\"model\":\"%.*s\"}", INSPECT_MODEL_MAX, want);
	assert_int_equal(inspect_n(body, n, n, &res), INSPECT_OK);
	assert_model(&res, want, INSPECT_MODEL_MAX);
	assert_int_equal(res.model_tok_len, INSPECT_MODEL_MAX + 2);

	/* One more byte. */
	n = snprintf(body, sizeof(body), "{\"model\":\"%.*sb\"}", INSPECT_MODEL_MAX, want);
	assert_int_equal(inspect_n(body, n, n, &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_WRONG_TYPE);
	assert_int_equal(res.model_too_long, 1);
	assert_int_equal(res.model_len, 0);
	assert_int_equal(res.model[0], 0);

	/* Over the limit only once decoded. */
	n = snprintf(body, sizeof(body), "{\"model\":\"%.*s\\u00e9\"}", INSPECT_MODEL_MAX - 1, want);
	assert_int_equal(inspect_n(body, n, n, &res), INSPECT_OK);
	assert_int_equal(res.model_state, INSPECT_KEY_WRONG_TYPE);
	assert_int_equal(res.model_too_long, 1);

	/* Long in JSON, short decoded. */
	n = snprintf(body, sizeof(body), "{\"model\":\"");
	for (i = 0; i < INSPECT_MODEL_MAX; i++)
		n += snprintf(body + n, sizeof(body) - n, "\\u0061");
	n += snprintf(body + n, sizeof(body) - n, "\"}");
	assert_int_equal(inspect_n(body, n, n, &res), INSPECT_OK);
	assert_model(&res, want, INSPECT_MODEL_MAX);
	assert_int_equal(res.model_tok_len, INSPECT_MODEL_MAX * 6 + 2);

	/* A later good model after a too-long one: duplicate, last wins. */
	n = snprintf(body, sizeof(body), "{\"model\":\"%.*sb\",\"model\":\"x\"}",
	             INSPECT_MODEL_MAX, want);
	assert_int_equal(inspect_n(body, n, n, &res), INSPECT_DUPLICATE_KEY);
	assert_model(&res, "x", 1);
}

static void test_stream(void **state)
{
	static const struct {
		const char *s;
		int whole;
		enum inspect_key_state st;
		int val;
	} cases[] = {
		{ "{\"stream\":true}",          1, INSPECT_KEY_PRESENT, 1 },
		{ "{\"stream\":false}",         1, INSPECT_KEY_PRESENT, 0 },
		{ "{\"stream\" : true }",       1, INSPECT_KEY_PRESENT, 1 },
		{ "{\"stream\":\"yes\"}",       1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"stream\":\"true\"}",      1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"stream\":1}",             1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"stream\":0}",             1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"stream\":null}",          1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"stream\":{}}",            1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"stream\":[true]}",        1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"a\":{\"stream\":true}}",  1, INSPECT_KEY_ABSENT, 0 },
		{ "{\"stream\":tru",            0, INSPECT_KEY_ABSENT, 0 },
		{ "{\"stream\":true",           0, INSPECT_KEY_ABSENT, 0 },
		{ "{\"stream\":fals",           0, INSPECT_KEY_ABSENT, 0 },
		{ "{\"stream\":true,",          0, INSPECT_KEY_PRESENT, 1 },
		{ "{\"stream\":true ",          0, INSPECT_KEY_PRESENT, 1 },
		{ "{\"stream\":false}",         0, INSPECT_KEY_PRESENT, 0 },
		{ "{\"stream\":\"ye",           0, INSPECT_KEY_ABSENT, 0 },
		{ "{\"stream\":[",              0, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"stream\":",               0, INSPECT_KEY_ABSENT, 0 },
	};
	struct inspect_result res;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].whole)
			assert_int_equal(inspect_s(cases[i].s, &res), INSPECT_OK);
		else
			assert_int_equal(inspect_cut(cases[i].s, &res), INSPECT_OK);
		assert_int_equal(res.stream_state, cases[i].st);
		assert_int_equal(res.stream, cases[i].val);
	}
}

static void test_user_id(void **state)
{
	static const struct {
		const char *s;
		int whole;
		const char *uid;     /* NULL: none */
	} cases[] = {
		{ "{\"metadata\":{\"user_id\":\"abc\"}}",                     1, "abc" },
		{ "{\"metadata\":{\"a\":[{\"user_id\":\"x\"}],\"user_id\":\"u\",\"b\":{}}}", 1, "u" },
		{ "{\"metadata\":{\"user_id\":\"{\\\"session_id\\\":\\\"s\\\"}\"}}", 1, "{\"session_id\":\"s\"}" },
		{ "{\"metadata\":{\"user\\u005fid\":\"caf\\u00e9\"}}",          1, "caf\xc3\xa9" },
		{ "{\"metadata\":{\"user_id\":\"a\",\"user_id\":\"b\"}}",        1, "b" },
		{ "{\"metadata\":{\"user_id\":\"a\",\"user_id\":1}}",             1, NULL },
		{ "{\"metadata\":{\"user_id\":\"\"}}",                        1, NULL },
		{ "{\"metadata\":{\"user_id\":1}}",                           1, NULL },
		{ "{\"metadata\":{\"user_id\":{\"a\":\"b\"}}}",                 1, NULL },
		{ "{\"metadata\":{\"user_id\":\"a\\u0000\"}}",                 1, NULL },
		{ "{\"metadata\":{\"user_id\":\"\\udc00\"}}",                  1, NULL },
		{ "{\"metadata\":{\"x\":{\"user_id\":\"a\"}}}",                 1, NULL },
		{ "{\"metadata\":[{\"user_id\":\"a\"}]}",                     1, NULL },
		{ "{\"metadata\":\"user_id\"}",                               1, NULL },
		{ "{\"user_id\":\"a\"}",                                     1, NULL },
		{ "{\"x\":{\"metadata\":{\"user_id\":\"a\"}}}",                 1, NULL },
		{ "{\"metadata\":{\"user_id\":\"abc\"},\"max_tokens\":1",          0, "abc" },
		{ "{\"metadata\":{\"user_id\":\"abc\"}",                       0, "abc" },
		{ "{\"metadata\":{\"user_id\":\"abc\"",                        0, NULL },
		{ "{\"metadata\":{\"user_id\":\"abc\",",                       0, NULL },
		{ "{\"metadata\":{\"user_id\":\"ab",                           0, NULL },
		{ "{\"metadata\":{\"user_id\":\"abc\"},}",                     1, NULL },  /* invalid */
	};
	char body[2048], want[INSPECT_USER_ID_MAX + 1];
	struct inspect_result res;
	size_t i, n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].whole)
			inspect_s(cases[i].s, &res);
		else
			inspect_cut(cases[i].s, &res);
		if (!cases[i].uid) {
			if (res.user_id_len != 0)
				fail_msg("case %zu: got %s", i, res.user_id);
			assert_int_equal(res.user_id[0], 0);
			continue;
		}
		assert_int_equal(res.status, INSPECT_OK);
		assert_int_equal(res.user_id_len, strlen(cases[i].uid));
		assert_string_equal(res.user_id, cases[i].uid);
	}

	/* At the limit, and one over. */
	memset(want, 'u', INSPECT_USER_ID_MAX);
	n = snprintf(body, sizeof(body), "{\"metadata\":{\"user_id\":\"%.*s\"}}",
	             INSPECT_USER_ID_MAX, want);
	assert_int_equal(inspect_n(body, n, n, &res), INSPECT_OK);
	assert_int_equal(res.user_id_len, INSPECT_USER_ID_MAX);
	assert_memory_equal(res.user_id, want, INSPECT_USER_ID_MAX);
	assert_int_equal(res.user_id[INSPECT_USER_ID_MAX], 0);
	n = snprintf(body, sizeof(body), "{\"metadata\":{\"user_id\":\"%.*sv\"}}",
	             INSPECT_USER_ID_MAX, want);
	assert_int_equal(inspect_n(body, n, n, &res), INSPECT_OK);
	assert_int_equal(res.user_id_len, 0);

	/* A duplicated metadata: refused, the last one is reported. */
	assert_int_equal(inspect_s("{\"metadata\":{\"user_id\":\"a\"},\"metadata\":{}}", &res),
	                 INSPECT_DUPLICATE_KEY);
	assert_int_equal(res.user_id_len, 0);
}

/* ------------------------------------------------------------------------ */
/* size and depth                                                           */
/* ------------------------------------------------------------------------ */

/* {"model":"m","<key>":[0,0,...],"stream":true}, for many zeros. */
static char *big_array(size_t zeros, const char *key, size_t *len)
{
	size_t n = 0, cap = zeros * 2 + 64 + strlen(key);
	char *buf = malloc(cap);
	size_t i;

	assert_non_null(buf);
	n += snprintf(buf, cap, "{\"model\":\"m\",\"%s\":[", key);
	for (i = 0; i < zeros; i++) {
		buf[n++] = '0';
		buf[n++] = ',';
	}
	n--;
	n += snprintf(buf + n, cap - n, "],\"stream\":true}");
	*len = n;
	return buf;
}

/* {"model":"m","a":[[[...]]],"stream":true}, depth levels. */
static char *nested(size_t depth, size_t *len)
{
	char *buf = malloc(2 * depth + 64);
	size_t n, i;

	assert_non_null(buf);
	n = sprintf(buf, "{\"model\":\"m\",\"a\":");
	for (i = 0; i < depth; i++)
		buf[n++] = '[';
	for (i = 0; i < depth; i++)
		buf[n++] = ']';
	n += sprintf(buf + n, ",\"stream\":true}");
	*len = n;
	return buf;
}

/* There is no token or depth budget any more: every body is read whole,
 * or as a valid prefix, or refused. These bodies were past the old budgets
 * (65536 tokens, 64 levels) and came back "too complex", then routed by
 * what had been read. */
static void test_size_and_depth(void **state)
{
	struct inspect_result res;
	size_t len, n;
	char *buf;

	/* Many tokens: validated whole. */
	buf = big_array(70000, "a", &len);
	assert_int_equal(inspect_n(buf, len, len, &res), INSPECT_OK);
	assert_int_equal(res.complete, 1);
	assert_model(&res, "m", 1);
	assert_int_equal(res.stream_state, INSPECT_KEY_PRESENT);
	assert_int_equal(inspect_n(buf, len, len + 1, &res), INSPECT_OK);
	assert_int_equal(res.complete, 0);
	assert_model(&res, "m", 1);
	/* Garbage anywhere is seen, at the end as at the start. */
	buf[len - 1] = ']';
	assert_int_equal(inspect_n(buf, len, len, &res), INSPECT_INVALID);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	buf[len - 1] = '}';
	buf[len / 2] = ':';
	assert_int_equal(inspect_n(buf, len, len, &res), INSPECT_INVALID);
	assert_int_equal(inspect_n(buf, len, len + 1, &res), INSPECT_INVALID);
	free(buf);

	/* Any depth: 50, 200, 70000 levels. */
	static const size_t depths[] = { 50, 200, 70000 };
	for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
		buf = nested(depths[i], &n);
		assert_int_equal(inspect_n(buf, n, n, &res), INSPECT_OK);
		assert_int_equal(res.complete, 1);
		assert_model(&res, "m", 1);
		assert_int_equal(res.stream_state, INSPECT_KEY_PRESENT);
		assert_int_equal(inspect_n(buf, n, n + 10, &res), INSPECT_OK);
		assert_int_equal(res.complete, 0);
		/* Cut inside the nesting: a valid prefix, stream not in yet. */
		assert_int_equal(inspect_n(buf, n / 2, n, &res), INSPECT_OK);
		assert_model(&res, "m", 1);
		assert_int_equal(res.stream_state, INSPECT_KEY_ABSENT);
		free(buf);
	}

	/* A prefix is read to its very end at any depth: garbage 80 levels
	 * down is invalid in a prefix as in the whole (the fuzzer once found a
	 * longer prefix looking better than a shorter one under the old depth
	 * cap; with no cap the question does not arise). */
	buf = nested(80, &n);
	memcpy(buf + strlen("{\"model\":\"m\",\"a\":") + 80, "0.4r", 4);
	n = strlen("{\"model\":\"m\",\"a\":") + 84;
	assert_int_equal(inspect_n(buf, n, n + 100, &res), INSPECT_INVALID);
	assert_int_equal(inspect_n(buf, n - 1, n + 100, &res), INSPECT_OK);
	assert_model(&res, "m", 1);
	assert_int_equal(inspect_n(buf, n, n, &res), INSPECT_INVALID);
	free(buf);

	/* A non-object root is validated whole, then called so. */
	buf = big_array(70000, "a", &len);
	memcpy(buf, "[\"model\",\"m\",\"a\",[", 18);   /* for {"model":"m","a":[ */
	memcpy(buf + len - 14, "\"stream\",true]", 14);   /* for "stream":true} */
	assert_int_equal(inspect_n(buf, len, len, &res), INSPECT_NOT_OBJECT);
	assert_int_equal(res.complete, 1);
	assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
	/* Garbage in it is still garbage. */
	buf[len - 1] = '}';
	assert_int_equal(inspect_n(buf, len, len, &res), INSPECT_INVALID);
	free(buf);

	/* A duplicate after many tokens is found. */
	buf = big_array(70000, "model", &len);
	assert_int_equal(inspect_n(buf, len, len, &res), INSPECT_DUPLICATE_KEY);
	free(buf);
}

/* {"model":"cheap",<pre>"tools":[ depth levels ],"model":"expensive"<post>}
 * with the nesting built from objects and arrays. */
static char *deep_twice(size_t depth, const char *second, const char *post, size_t *len,
                        size_t *second_end)
{
	size_t cap = depth * 8 + strlen(second) + strlen(post) + 128, n = 0, i;
	char *buf = malloc(cap);

	assert_non_null(buf);
	n += (size_t)sprintf(buf, "{\"model\":\"cheap\",\"tools\":");
	for (i = 0; i < depth; i++) {
		if (i % 3 == 2) {
			memcpy(buf + n, "{\"model\":", 9);   /* nested look-alikes */
			n += 9;
		} else {
			buf[n++] = '[';
		}
	}
	buf[n++] = '1';
	for (i = depth; i-- > 0; )
		buf[n++] = i % 3 == 2 ? '}' : ']';
	n += (size_t)sprintf(buf + n, ",%s:\"expensive\"", second);
	*second_end = n;
	n += (size_t)sprintf(buf + n, "%s}", post);
	*len = n;
	return buf;
}

/* The attack the old token budget let through: "model":"cheap", a tool
 * schema nested 100000 deep, then a second "model":"expensive", which is
 * the one the upstream keeps. Refused as soon as both are in the prefix,
 * whatever the nesting before and after, and however the key is escaped. */
static void test_deep_duplicate(void **state)
{
	static const struct {
		const char *second;
		const char *post;
	} cases[] = {
		{ "\"model\"", "" },
		{ "\"mod\\u0065l\"", "" },
		{ "\"\\u006d\\u006f\\u0064\\u0065\\u006c\"", ",\"x\":[[[[{\"model\":\"y\"}]]]]" },
		{ "\"model\"", ",\"more\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]" },
	};
	struct inspect_result res;
	size_t len, second_end;
	char *buf;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf = deep_twice(100000, cases[i].second, cases[i].post, &len, &second_end);
		assert_int_equal(inspect_n(buf, len, len, &res), INSPECT_DUPLICATE_KEY);
		assert_model(&res, "expensive", 9);
		/* As a prefix holding both: the same. */
		assert_int_equal(inspect_n(buf, second_end, len, &res), INSPECT_DUPLICATE_KEY);
		assert_model(&res, "expensive", 9);
		assert_int_equal(inspect_n(buf, len, len + 1000, &res), INSPECT_DUPLICATE_KEY);
		/* The second key whole, its value not yet: still two keys. */
		assert_int_equal(inspect_n(buf, second_end - strlen("\"expensive\""), len, &res),
		                 INSPECT_DUPLICATE_KEY);
		assert_int_equal(res.model_state, INSPECT_KEY_ABSENT);
		/* A prefix ending before the second key only knows the first. */
		assert_int_equal(inspect_n(buf, second_end - strlen(":\"expensive\"") - 1, len,
		                           &res), INSPECT_OK);
		assert_model(&res, "cheap", 5);
		assert_int_equal(res.complete, 0);
		free(buf);
	}

	/* The deep content alone, with one model: fine. */
	buf = deep_twice(100000, "\"other\"", "", &len, &second_end);
	assert_int_equal(inspect_n(buf, len, len, &res), INSPECT_OK);
	assert_model(&res, "cheap", 5);
	assert_int_equal(res.complete, 1);
	free(buf);
}

/* Every prefix of a few bodies, against the whole: the status stays valid,
 * and what a prefix reports is what the whole reports, or not known yet. */
static void test_every_split(void **state)
{
	static const char *const bodies[] = {
		"{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":32000,\"messages\":[{\"role\":"
		"\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a \\\"quoted\\\" \\u00e9\"}]}],"
		"\"metadata\":{\"user_id\":\"s\\u0031\"},\"stream\":false}",
		" {\"tools\":[{\"input_schema\":{\"type\":\"object\",\"properties\":{\"model\":"
		"{\"type\":\"string\"}}}}],\"str\\u0065am\":true,\"mod\\u0065l\":\"x\\/y\","
		"\"max_tokens\":0 } ",
		"{\"metadata\":{\"user_id\":\"u\",\"x\":[1,2]},\"max_tokens\":1.5,\"model\":[\"m\"]}",
	};
	struct inspect_result whole, res;

	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		const char *b = bodies[i];
		size_t n = strlen(b), k;

		assert_int_equal(inspect_s(b, &whole), INSPECT_OK);
		for (k = 0; k <= n; k++) {
			assert_int_equal(inspect_n(b, k, n, &res), INSPECT_OK);
			assert_int_equal(res.complete, k == n);
			if (res.model_state != INSPECT_KEY_ABSENT) {
				assert_int_equal(res.model_state, whole.model_state);
				assert_int_equal(res.model_len, whole.model_len);
				assert_memory_equal(res.model, whole.model, whole.model_len + 1);
				assert_int_equal(res.model_off, whole.model_off);
				assert_int_equal(res.model_tok_len, whole.model_tok_len);
			}
			if (res.stream_state != INSPECT_KEY_ABSENT) {
				assert_int_equal(res.stream_state, whole.stream_state);
				assert_int_equal(res.stream, whole.stream);
			}
			if (res.max_tokens_state != INSPECT_KEY_ABSENT) {
				assert_int_equal(res.max_tokens_state, whole.max_tokens_state);
				assert_int_equal(res.max_tokens, whole.max_tokens);
			}
			if (res.user_id_len)
				assert_string_equal(res.user_id, whole.user_id);
		}
		/* The whole body in a prefix says all the whole says. */
		assert_int_equal(inspect_n(b, n, n + 1, &res), INSPECT_OK);
		assert_int_equal(res.model_state, whole.model_state);
		assert_int_equal(res.max_tokens_state, whole.max_tokens_state);
		assert_string_equal(res.user_id, whole.user_id);
	}
	assert_int_equal(inspect_s(bodies[0], &whole), INSPECT_OK);
	assert_int_equal(whole.max_tokens, 32000);
	assert_string_equal(whole.user_id, "s1");
	assert_int_equal(inspect_s(bodies[1], &whole), INSPECT_OK);
	assert_model(&whole, "x/y", 3);
	assert_int_equal(whole.stream, 1);
	assert_int_equal(whole.max_tokens_state, INSPECT_KEY_PRESENT);
	assert_int_equal(whole.max_tokens, 0);
	assert_int_equal(inspect_s(bodies[2], &whole), INSPECT_OK);
	assert_int_equal(whole.model_state, INSPECT_KEY_WRONG_TYPE);
	assert_int_equal(whole.max_tokens_state, INSPECT_KEY_WRONG_TYPE);
	assert_string_equal(whole.user_id, "u");
}

/* The fixture cut at every byte: always a valid prefix, each key known
 * exactly once its value is whole (a number or literal needs the byte
 * after it), metadata.user_id once its object closes. */
static void test_fixture_every_byte(void **state)
{
	struct inspect_result res;
	size_t len, n, model_end, meta_end, max_end, stream_end;
	char *buf = load_fixture("messages-1.json", &len), *tail;
	const char *meta = strstr(buf, ",\"metadata\":");
	const char *max = strstr(buf, ",\"max_tokens\":32000");
	const char *stream = strstr(buf, ",\"stream\":true}");

	assert_non_null(meta);
	assert_non_null(max);
	assert_non_null(stream);
	model_end = strlen("{\"model\":\"claude-sonnet-4-5\"");
	meta_end = (size_t)(max - buf);              /* the '}' closing metadata is right before */
	max_end = (size_t)(max - buf) + strlen(",\"max_tokens\":32000");
	stream_end = (size_t)(stream - buf) + strlen(",\"stream\":true");
	assert_int_equal(stream_end + 1, len);
	/* One buffer of exactly len bytes, each prefix copied to its end: ASan
	 * still sees a read past the prefix, without 85,000 allocations. */
	tail = malloc(len);
	assert_non_null(tail);
	for (n = 0; n <= len; n++) {
		memcpy(tail + len - n, buf, n);
		assert_int_equal(inspect_body(tail + len - n, n, len, &res), INSPECT_OK);
		assert_int_equal(res.complete, n == len);
		assert_int_equal(res.model_state,
		                 n >= model_end ? INSPECT_KEY_PRESENT : INSPECT_KEY_ABSENT);
		assert_int_equal(res.user_id_len != 0, n >= meta_end);
		/* "32000" is whole only with the ',' after it. */
		assert_int_equal(res.max_tokens_state,
		                 n > max_end ? INSPECT_KEY_PRESENT : INSPECT_KEY_ABSENT);
		/* "true" is whole with the final '}', which is the whole body. */
		assert_int_equal(res.stream_state,
		                 n > stream_end ? INSPECT_KEY_PRESENT : INSPECT_KEY_ABSENT);
	}
	free(tail);
	free(buf);
}

/* max_tokens: a count, else the wrong type; the last one wins. */
static void test_max_tokens(void **state)
{
	static const struct {
		const char *s;
		int whole;
		enum inspect_key_state st;
		uint64_t val;
	} cases[] = {
		{ "{\"max_tokens\":1024}", 1, INSPECT_KEY_PRESENT, 1024 },
		{ "{\"max_tokens\":0}", 1, INSPECT_KEY_PRESENT, 0 },
		{ "{\"max_tokens\":18446744073709551615}", 1, INSPECT_KEY_PRESENT, UINT64_MAX },
		{ "{\"max_tokens\":18446744073709551616}", 1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"max_tokens\":-1}", 1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"max_tokens\":1.5}", 1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"max_tokens\":1e3}", 1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"max_tokens\":-0}", 1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"max_tokens\":\"1024\"}", 1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"max_tokens\":null}", 1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"max_tokens\":[1]}", 1, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"max_\\u0074okens\":7}", 1, INSPECT_KEY_PRESENT, 7 },
		{ "{\"a\":{\"max_tokens\":7}}", 1, INSPECT_KEY_ABSENT, 0 },
		{ "{\"max_tokens\":10", 0, INSPECT_KEY_ABSENT, 0 },
		{ "{\"max_tokens\":10,", 0, INSPECT_KEY_PRESENT, 10 },
		{ "{\"max_tokens\":10 ", 0, INSPECT_KEY_PRESENT, 10 },
		{ "{\"max_tokens\":{", 0, INSPECT_KEY_WRONG_TYPE, 0 },
		{ "{\"max_tokens\":", 0, INSPECT_KEY_ABSENT, 0 },
	};
	struct inspect_result res;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].whole)
			assert_int_equal(inspect_s(cases[i].s, &res), INSPECT_OK);
		else
			assert_int_equal(inspect_cut(cases[i].s, &res), INSPECT_OK);
		if (res.max_tokens_state != cases[i].st || res.max_tokens != cases[i].val)
			fail_msg("case %zu (%s): state %d value %llu", i, cases[i].s,
			         res.max_tokens_state, (unsigned long long)res.max_tokens);
	}
	assert_int_equal(inspect_s("{\"max_tokens\":5,\"max_tokens\":6}", &res),
	                 INSPECT_DUPLICATE_KEY);
	assert_int_equal(res.max_tokens, 6);
	assert_int_equal(inspect_s("{\"max_tokens\":5,\"max_tokens\":\"x\"}", &res),
	                 INSPECT_DUPLICATE_KEY);
	assert_int_equal(res.max_tokens_state, INSPECT_KEY_WRONG_TYPE);
}

/* ------------------------------------------------------------------------ */
/* json_quote and names                                                     */
/* ------------------------------------------------------------------------ */

static void test_json_quote(void **state)
{
	static const struct {
		const char *in;
		size_t n;
		const char *out;
	} cases[] = {
		{ "claude-sonnet-4-5", 17, "\"claude-sonnet-4-5\"" },
		{ "", 0, "\"\"" },
		{ "a\"b", 3, "\"a\\\"b\"" },
		{ "a\\b", 3, "\"a\\\\b\"" },
		{ "a/b", 3, "\"a/b\"" },
		{ "\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"" },
		{ "\x01\x1f\0", 3, "\"\\u0001\\u001f\\u0000\"" },
		{ "\x7f", 1, "\"\x7f\"" },
		{ "caf\xc3\xa9 \xf0\x9f\x98\x80", 10, "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"" },
	};
	struct inspect_result res;
	char out[64], body[128];
	size_t i, size, want;
	long n;
	char *small;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		want = strlen(cases[i].out);
		n = json_quote(cases[i].in, cases[i].n, out, sizeof(out));
		assert_int_equal(n, want);
		assert_memory_equal(out, cases[i].out, want);

		/* Too small at every size: refused, nothing written past it. */
		for (size = 0; size <= want; size++) {
			small = malloc(size ? size : 1);
			assert_non_null(small);
			n = json_quote(cases[i].in, cases[i].n, small, size);
			assert_int_equal(n, size == want ? (long)want : -1);
			free(small);
		}

		/* What it writes reads back as the same string, unless it
		 * holds a control char (valid JSON, but not a model name). */
		n = snprintf(body, sizeof(body), "{\"model\":%.*s}", (int)want, cases[i].out);
		assert_int_equal(inspect_n(body, n, n, &res), INSPECT_OK);
		for (size = 0; size < cases[i].n; size++)
			if ((unsigned char)cases[i].in[size] < 0x20)
				break;
		if (size < cases[i].n)
			assert_int_equal(res.model_state, INSPECT_KEY_WRONG_TYPE);
		else
			assert_model(&res, cases[i].in, cases[i].n);
	}
}

static void test_status_str(void **state)
{
	assert_string_equal(inspect_status_str(INSPECT_OK), "ok");
	assert_string_equal(inspect_status_str(INSPECT_EMPTY), "empty");
	assert_string_equal(inspect_status_str(INSPECT_NOT_OBJECT), "not_object");
	assert_string_equal(inspect_status_str(INSPECT_INVALID), "invalid");
	assert_string_equal(inspect_status_str(INSPECT_DUPLICATE_KEY), "duplicate_key");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_whole),
		cmocka_unit_test(test_fixture_prefixes),
		cmocka_unit_test(test_fixture_64k),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_nested_model),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_escaped_model),
		cmocka_unit_test(test_escaped_keys),
		cmocka_unit_test(test_not_object),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_invalid_prefix),
		cmocka_unit_test(test_every_prefix),
		cmocka_unit_test(test_model_types),
		cmocka_unit_test(test_model_too_long),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_user_id),
		cmocka_unit_test(test_size_and_depth),
		cmocka_unit_test(test_deep_duplicate),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_fixture_every_byte),
		cmocka_unit_test(test_max_tokens),
		cmocka_unit_test(test_json_quote),
		cmocka_unit_test(test_status_str),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
