/*
 * Usage extraction: every field of message_start, missing and malformed
 * fields, the cache split, cumulative message_delta counts, iterations,
 * unnamed events, the reported model, non-streamed bodies (large, nested
 * at any depth, truncated at every offset, split at every offset and fed
 * byte by byte, malformed, a usage object too big), the meter's three
 * outcomes for a JSON answer, and other threads.
 *
 * Every input is handed over in a heap copy of exactly its size, so that
 * ASan catches any read past it.
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

#include <realms/limits.h>
#include <realms/meter.h>
#include <realms/json.h>
#include <realms/usage.h>

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static int ev_n(struct usage *u, const char *name, const char *data, size_t len)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, data, len);
	rc = usage_on_sse_event(u, name, copy, len);
	free(copy);
	return rc;
}

static int ev(struct usage *u, const char *name, const char *data)
{
	return ev_n(u, name, data, strlen(data));
}

static int body_n(struct usage *u, const char *s, size_t len)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, s, len);
	rc = usage_from_json(u, copy, len);
	free(copy);
	return rc;
}

static int body(struct usage *u, const char *s)
{
	return body_n(u, s, strlen(s));
}

/* message_delta data around a usage object's inside. */
static int delta(struct usage *u, const char *usage_inside)
{
	char buf[4096];

	snprintf(buf, sizeof(buf),
	         "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
	         "\"stop_sequence\":null},\"usage\":{%s}}", usage_inside);
	return ev(u, "message_delta", buf);
}

/* message_start data around a usage object's inside. */
static int start(struct usage *u, const char *usage_inside)
{
	char buf[4096];

	snprintf(buf, sizeof(buf),
	         "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\","
	         "\"role\":\"assistant\",\"content\":[],\"model\":\"claude-opus-4-5\","
	         "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{%s}}}", usage_inside);
	return ev(u, "message_start", buf);
}

static void usage_is(const struct usage *u, uint64_t in, uint64_t out, uint64_t w5,
                     uint64_t w1, uint64_t rd, uint64_t web)
{
	assert_int_equal(u->input, in);
	assert_int_equal(u->output, out);
	assert_int_equal(u->cache_write_5m, w5);
	assert_int_equal(u->cache_write_1h, w1);
	assert_int_equal(u->cache_read, rd);
	assert_int_equal(u->web_search, web);
}

/* ------------------------------------------------------------------------ */
/* message_start                                                            */
/* ------------------------------------------------------------------------ */

static void test_start_every_field(void **state)
{
	struct usage u;

	usage_init(&u);
	assert_int_equal(start(&u,
		"\"input_tokens\":11,\"cache_creation_input_tokens\":30,"
		"\"cache_read_input_tokens\":40,"
		"\"cache_creation\":{\"ephemeral_5m_input_tokens\":10,\"ephemeral_1h_input_tokens\":20},"
		"\"output_tokens\":1,\"server_tool_use\":{\"web_search_requests\":3},"
		"\"service_tier\":\"priority\""), 1);
	usage_is(&u, 11, 1, 10, 20, 40, 3);
	assert_string_equal(u.service_tier, "priority");
	assert_int_equal(u.flags, USAGE_FL_START);
}

static void test_start_missing_fields(void **state)
{
	struct usage u;

	usage_init(&u);
	assert_int_equal(start(&u, ""), 1);
	usage_is(&u, 0, 0, 0, 0, 0, 0);
	assert_string_equal(u.service_tier, "");
	assert_int_equal(u.flags, USAGE_FL_START);

	/* No usage object, no message object at all, usage of another type. */
	usage_init(&u);
	assert_int_equal(ev(&u, "message_start", "{\"type\":\"message_start\",\"message\":{}}"), 1);
	assert_int_equal(ev(&u, "message_start", "{\"type\":\"message_start\"}"), 1);
	assert_int_equal(ev(&u, "message_start",
	                    "{\"message\":{\"usage\":[1,2]},\"usage\":{\"input_tokens\":5}}"), 1);
	usage_is(&u, 0, 0, 0, 0, 0, 0);
	assert_int_equal(u.flags, USAGE_FL_START);

	/* Only some fields; null where a number or object is expected. */
	usage_init(&u);
	start(&u, "\"input_tokens\":5,\"output_tokens\":null,\"cache_creation\":null,"
	          "\"cache_creation_input_tokens\":null,\"server_tool_use\":null,"
	          "\"service_tier\":null");
	usage_is(&u, 5, 0, 0, 0, 0, 0);
	assert_string_equal(u.service_tier, "");
}

static void test_cache_split(void **state)
{
	struct usage u;

	/* Present: its numbers, even if the total disagrees. */
	usage_init(&u);
	start(&u, "\"cache_creation_input_tokens\":100,"
	          "\"cache_creation\":{\"ephemeral_5m_input_tokens\":30,\"ephemeral_1h_input_tokens\":70}");
	usage_is(&u, 0, 0, 30, 70, 0, 0);
	usage_init(&u);
	start(&u, "\"cache_creation\":{\"ephemeral_1h_input_tokens\":7},"
	          "\"cache_creation_input_tokens\":999");
	usage_is(&u, 0, 0, 0, 7, 0, 0);

	/* Absent: all of the total is 5-minute writes. */
	usage_init(&u);
	start(&u, "\"cache_creation_input_tokens\":100");
	usage_is(&u, 0, 0, 100, 0, 0, 0);

	/* A delta repeating the total without the split keeps the split. */
	usage_init(&u);
	start(&u, "\"cache_creation_input_tokens\":100,"
	          "\"cache_creation\":{\"ephemeral_5m_input_tokens\":30,\"ephemeral_1h_input_tokens\":70}");
	delta(&u, "\"cache_creation_input_tokens\":100,\"output_tokens\":5");
	usage_is(&u, 0, 5, 30, 70, 0, 0);
	/* A larger total without a split: the growth is 5-minute writes. */
	delta(&u, "\"cache_creation_input_tokens\":150");
	usage_is(&u, 0, 5, 80, 70, 0, 0);
	/* A smaller one clamps the 1-hour part. */
	delta(&u, "\"cache_creation_input_tokens\":50");
	usage_is(&u, 0, 5, 0, 50, 0, 0);
	/* A new split replaces the old one. */
	delta(&u, "\"cache_creation\":{\"ephemeral_5m_input_tokens\":1,\"ephemeral_1h_input_tokens\":2}");
	usage_is(&u, 0, 5, 1, 2, 0, 0);
}

/* ------------------------------------------------------------------------ */
/* message_delta, message_stop, error                                       */
/* ------------------------------------------------------------------------ */

static void test_delta_cumulative(void **state)
{
	struct usage u;

	usage_init(&u);
	start(&u, "\"input_tokens\":100,\"output_tokens\":1,\"cache_read_input_tokens\":7");
	assert_int_equal(delta(&u, "\"output_tokens\":10"), 1);
	assert_int_equal(delta(&u, "\"output_tokens\":25"), 1);
	usage_is(&u, 100, 25, 0, 0, 7, 0);   /* 25, not 35 */
	assert_int_equal(u.flags, USAGE_FL_START | USAGE_FL_DELTA);

	/* A delta repeating input and cache fields overrides them. */
	delta(&u, "\"input_tokens\":120,\"cache_read_input_tokens\":9,\"output_tokens\":30,"
	          "\"server_tool_use\":{\"web_search_requests\":2}");
	usage_is(&u, 120, 30, 0, 0, 9, 2);
	delta(&u, "\"server_tool_use\":{\"web_search_requests\":4},\"output_tokens\":31");
	usage_is(&u, 120, 31, 0, 0, 9, 4);

	/* A delta without usage: no FL_DELTA, nothing changes. */
	usage_init(&u);
	assert_int_equal(ev(&u, "message_delta", "{\"type\":\"message_delta\",\"delta\":{}}"), 1);
	assert_int_equal(u.flags, 0);
	usage_is(&u, 0, 0, 0, 0, 0, 0);
	/* A delta before any message_start still counts. */
	delta(&u, "\"output_tokens\":3");
	assert_int_equal(u.output, 3);
	assert_int_equal(u.flags, USAGE_FL_DELTA);
}

static void test_stop_and_error(void **state)
{
	struct usage u;

	usage_init(&u);
	start(&u, "\"input_tokens\":3,\"output_tokens\":1");
	delta(&u, "\"output_tokens\":8");
	/* Their data is not even parsed. */
	assert_int_equal(ev(&u, "error", "not json"), 1);
	assert_int_equal(u.flags, USAGE_FL_START | USAGE_FL_DELTA | USAGE_FL_ERROR);
	usage_is(&u, 3, 8, 0, 0, 0, 0);
	assert_int_equal(ev(&u, "message_stop", ""), 1);
	assert_int_equal(u.flags, USAGE_FL_START | USAGE_FL_DELTA | USAGE_FL_ERROR | USAGE_FL_STOP);
}

static void test_other_events(void **state)
{
	static const char *const names[] = {
		"ping", "content_block_start", "content_block_delta", "content_block_stop",
		"message", "Message_start", "message_start ", "message_star", "errors",
	};
	struct usage u, zero;

	usage_init(&u);
	usage_init(&zero);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_int_equal(ev(&u, names[i],
		                    "{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}"), 0);
	assert_memory_equal(&u, &zero, sizeof(u));
}

/* No event name: the data's type decides. */
static void test_unnamed(void **state)
{
	struct usage u;

	usage_init(&u);
	assert_int_equal(ev(&u, "", "{\"type\":\"message_start\",\"message\":{\"usage\":"
	                            "{\"input_tokens\":4}}}"), 1);
	assert_int_equal(ev(&u, NULL, "{\"usage\":{\"output_tokens\":6},\"type\":\"message_delta\"}"), 1);
	assert_int_equal(ev(&u, "", "{\"type\":\"ping\"}"), 0);
	assert_int_equal(ev(&u, "", "{\"type\":5}"), 0);
	assert_int_equal(ev(&u, "", "{}"), 0);
	assert_int_equal(ev(&u, "", "not json"), 0);
	usage_is(&u, 4, 6, 0, 0, 0, 0);
	assert_int_equal(ev(&u, "", "{\"type\":\"error\",\"error\":{}}"), 1);
	assert_int_equal(ev(&u, "", "{\"type\":\"message_stop\"}"), 1);
	assert_int_equal(u.flags, USAGE_FL_START | USAGE_FL_DELTA | USAGE_FL_ERROR | USAGE_FL_STOP);
}

/* Malformed data of a usage event: -1 and nothing changes. */
static void test_malformed_event(void **state)
{
	static const char *const bad[] = {
		"", "   ", "{", "{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}",
		"{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":5}}}",
		"{\"usage\":{\"output_tokens\":5}} x", "[]", "\"s\"", "5",
		"{\"usage\":{\"output_tokens\":5,}}x", "{\"usage\":{\"output_tokens\":tru}}",
		"{\"a\":\"\\x\"}", "{\"a\":1}{\"b\":2}",
	};
	struct usage u, before;

	usage_init(&u);
	start(&u, "\"input_tokens\":3,\"output_tokens\":1");
	before = u;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ev(&u, "message_delta", bad[i]), -1);
		assert_int_equal(ev(&u, "message_start", bad[i]), -1);
		assert_memory_equal(&u, &before, sizeof(u));
	}
	/* A NUL after the object, or inside it. */
	assert_int_equal(ev_n(&u, "message_delta", "{\"usage\":{}}\0", 13), -1);
	assert_int_equal(ev_n(&u, "message_delta", "{\"usage\":{\0}}", 13), -1);
	/* Whitespace around is fine. */
	assert_int_equal(ev(&u, "message_delta", " \r\n\t{\"usage\":{\"output_tokens\":5}} \n"), 1);
	assert_int_equal(u.output, 5);
}

/* Numbers: non-negative JSON integers fitting 64 bits, else absent. */
static void test_numbers(void **state)
{
	static const char *const absent[] = {
		"-1", "1.0", "1e3", "1E3", "0.5", "01", "-0", "true", "false", "null", "\"5\"",
		"18446744073709551616", "99999999999999999999999", "{}", "[5]",
	};
	char buf[128];
	struct usage u;

	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		usage_init(&u);
		start(&u, "\"output_tokens\":7");
		snprintf(buf, sizeof(buf), "\"output_tokens\":%s", absent[i]);
		delta(&u, buf);
		/* The last occurrence is bad: the field is absent there. */
		assert_int_equal(u.output, 7);
	}
	usage_init(&u);
	delta(&u, "\"output_tokens\":18446744073709551615,\"input_tokens\":0");
	assert_int_equal(u.output, UINT64_MAX);
	assert_int_equal(u.input, 0);
}

static void test_duplicate_keys(void **state)
{
	struct usage u;

	/* The last occurrence wins, as the client's parser would see it. */
	usage_init(&u);
	delta(&u, "\"output_tokens\":5,\"output_tokens\":9");
	assert_int_equal(u.output, 9);
	usage_init(&u);
	delta(&u, "\"output_tokens\":5,\"output_tokens\":null");
	assert_int_equal(u.output, 0);
	usage_init(&u);
	assert_int_equal(ev(&u, "message_delta",
	                    "{\"usage\":{\"output_tokens\":1},\"usage\":{\"output_tokens\":2}}"), 1);
	assert_int_equal(u.output, 2);
	usage_init(&u);
	assert_int_equal(ev(&u, "message_delta",
	                    "{\"usage\":{\"output_tokens\":1},\"usage\":null}"), 1);
	assert_int_equal(u.output, 0);
	assert_int_equal(u.flags, 0);
	usage_init(&u);
	start(&u, "\"cache_creation\":{\"ephemeral_5m_input_tokens\":4},\"cache_creation\":null,"
	          "\"cache_creation_input_tokens\":9");
	usage_is(&u, 0, 0, 9, 0, 0, 0);
}

/* Only the usage object's own keys: nested look-alikes do not count. */
static void test_nested_lookalikes(void **state)
{
	struct usage u;

	usage_init(&u);
	assert_int_equal(ev(&u, "message_delta",
		"{\"delta\":{\"usage\":{\"output_tokens\":99}},"
		"\"x\":[{\"usage\":{\"output_tokens\":98}}],"
		"\"usage\":{\"extra\":{\"output_tokens\":97},\"output_tokens\":5,"
		"\"list\":[\"output_tokens\",96]}}"), 1);
	assert_int_equal(u.output, 5);
	/* A key named like a value elsewhere. */
	usage_init(&u);
	assert_int_equal(ev(&u, "message_delta",
		"{\"a\":\"usage\",\"b\":{\"c\":\"output_tokens\"},\"usage\":{\"input_tokens\":2}}"), 1);
	usage_is(&u, 2, 0, 0, 0, 0, 0);
}

static void test_service_tier(void **state)
{
	struct usage u;

	usage_init(&u);
	start(&u, "\"service_tier\":\"standard\"");
	assert_string_equal(u.service_tier, "standard");
	delta(&u, "\"service_tier\":\"batch\"");
	assert_string_equal(u.service_tier, "batch");
	/* 23 bytes fit, 24 do not; escapes and non-strings are ignored. */
	delta(&u, "\"service_tier\":\"abcdefghijklmnopqrstuvw\"");
	assert_string_equal(u.service_tier, "abcdefghijklmnopqrstuvw");
	delta(&u, "\"service_tier\":\"abcdefghijklmnopqrstuvwx\"");
	assert_string_equal(u.service_tier, "abcdefghijklmnopqrstuvw");
	delta(&u, "\"service_tier\":\"a\\u0000b\"");
	delta(&u, "\"service_tier\":\"\xc3\xa9\"");
	delta(&u, "\"service_tier\":7");
	assert_string_equal(u.service_tier, "abcdefghijklmnopqrstuvw");
	delta(&u, "\"service_tier\":\"\"");
	assert_string_equal(u.service_tier, "");
}

/* ------------------------------------------------------------------------ */
/* iterations                                                               */
/* ------------------------------------------------------------------------ */

static void test_iterations(void **state)
{
	struct usage u;

	/* The sums replace the top-level counts (those of the last
	 * iteration); cache split per iteration. */
	usage_init(&u);
	start(&u, "\"input_tokens\":1000,\"output_tokens\":1");
	delta(&u,
		"\"input_tokens\":200,\"output_tokens\":50,\"cache_read_input_tokens\":10,"
		"\"cache_creation_input_tokens\":5,"
		"\"server_tool_use\":{\"web_search_requests\":2},"
		"\"iterations\":["
		"{\"type\":\"compaction\",\"input_tokens\":1000,\"output_tokens\":300,"
		"\"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":40},"
		"{\"type\":\"message\",\"input_tokens\":200,\"output_tokens\":50,"
		"\"cache_read_input_tokens\":10,\"cache_creation_input_tokens\":5,"
		"\"cache_creation\":{\"ephemeral_5m_input_tokens\":2,\"ephemeral_1h_input_tokens\":3}}"
		"]");
	/* input 1200, output 350, 5m 40+2, 1h 3, read 10; web from the top. */
	usage_is(&u, 1200, 350, 42, 3, 10, 2);

	/* A later delta with iterations again: replaced, never added. */
	delta(&u, "\"output_tokens\":60,\"iterations\":["
	          "{\"input_tokens\":1000,\"output_tokens\":300},"
	          "{\"input_tokens\":200,\"output_tokens\":60}]");
	usage_is(&u, 1200, 360, 42, 3, 10, 2);

	/* Kinds in no iteration keep the top-level count; an empty array or
	 * junk elements change nothing. */
	usage_init(&u);
	delta(&u, "\"input_tokens\":7,\"output_tokens\":8,\"iterations\":[]");
	usage_is(&u, 7, 8, 0, 0, 0, 0);
	delta(&u, "\"input_tokens\":7,\"output_tokens\":8,"
	          "\"iterations\":[1,null,\"x\",[{\"output_tokens\":100}],"
	          "{\"output_tokens\":4},{\"output_tokens\":5,\"iterations\":[{\"output_tokens\":1000}]}]");
	usage_is(&u, 7, 9, 0, 0, 0, 0);
	/* Web searches per iteration are summed too. */
	delta(&u, "\"iterations\":[{\"server_tool_use\":{\"web_search_requests\":1}},"
	          "{\"server_tool_use\":{\"web_search_requests\":2}}]");
	assert_int_equal(u.web_search, 3);
	/* Not an array: ignored. */
	delta(&u, "\"output_tokens\":11,\"iterations\":{\"output_tokens\":500}");
	assert_int_equal(u.output, 11);
	/* Sums saturate. */
	delta(&u, "\"iterations\":[{\"output_tokens\":18446744073709551615},{\"output_tokens\":2}]");
	assert_int_equal(u.output, UINT64_MAX);
}

/* ------------------------------------------------------------------------ */
/* JSON bodies                                                              */
/* ------------------------------------------------------------------------ */

/* A non-streamed answer: big text, a tool_use with nested input, usage
 * last. */
static char *big_body(size_t text_len, size_t *len)
{
	static const char head[] =
		"{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\","
		"\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[{\"type\":\"text\",\"text\":\"";
	static const char mid[] =
		"\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"Edit\",\"input\":"
		"{\"usage\":{\"input_tokens\":666},\"list\":[1,2,3,{\"a\":[[[]]]}]}}],"
		"\"stop_reason\":\"tool_use\",\"stop_sequence\":null,"
		"\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":200,"
		"\"cache_read_input_tokens\":3000,\"cache_creation\":"
		"{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":200},"
		"\"output_tokens\":4567,\"service_tier\":\"standard\","
		"\"server_tool_use\":{\"web_search_requests\":0}}}\n";
	size_t hl = sizeof(head) - 1, ml = sizeof(mid) - 1;
	char *s = malloc(hl + text_len + ml);

	assert_non_null(s);
	memcpy(s, head, hl);
	for (size_t i = 0; i < text_len; i++)
		s[hl + i] = (i % 64 == 63) ? ' ' : (i % 97 == 0 ? '\\' : 'a' + i % 26);
	/* Keep escapes whole: a backslash is always followed by 'n'. */
	for (size_t i = 0; i < text_len; i++)
		if (s[hl + i] == '\\') {
			if (i + 1 < text_len)
				s[hl + i + 1] = 'n';
			else
				s[hl + i] = 'z';
		}
	memcpy(s + hl + text_len, mid, ml);
	*len = hl + text_len + ml;
	return s;
}

static void test_body(void **state)
{
	struct usage u;
	size_t len;
	char *s = big_body(400 * 1024, &len);

	usage_init(&u);
	assert_int_equal(body_n(&u, s, len), 1);
	usage_is(&u, 12, 4567, 0, 200, 3000, 0);
	assert_string_equal(u.service_tier, "standard");
	assert_int_equal(u.flags, USAGE_FL_START);
	free(s);

	/* Valid without usage; fields absent keep their values. */
	usage_init(&u);
	u.output = 5;
	assert_int_equal(body(&u, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}"), 0);
	assert_int_equal(u.output, 5);
	assert_int_equal(u.flags, 0);
	assert_int_equal(body(&u, "{\"usage\":{\"input_tokens\":1}}"), 1);
	usage_is(&u, 1, 5, 0, 0, 0, 0);
	/* Iterations in a body. */
	usage_init(&u);
	assert_int_equal(body(&u, "{\"usage\":{\"input_tokens\":1,\"output_tokens\":2,"
	                          "\"iterations\":[{\"input_tokens\":10,\"output_tokens\":20},"
	                          "{\"input_tokens\":1,\"output_tokens\":2}]}}"), 1);
	usage_is(&u, 11, 22, 0, 0, 0, 0);
}

/* Every proper prefix of a body is refused, and leaves *u alone. */
static void test_body_truncated(void **state)
{
	struct usage u, zero;
	size_t len, k, end;
	char *s = big_body(2000, &len);

	usage_init(&zero);
	/* The body ends with "}\n": every cut before the brace fails. */
	end = len - 1;
	for (k = 0; k < end; k++) {
		usage_init(&u);
		assert_int_equal(body_n(&u, s, k), -1);
		assert_memory_equal(&u, &zero, sizeof(u));
	}
	assert_int_equal(body_n(&u, s, end), 1);
	free(s);
}

static void test_body_malformed(void **state)
{
	static const char *const bad[] = {
		"", " ", "null", "[]", "[{\"usage\":{}}]", "\"usage\"", "{\"usage\":{}}}",
		"{\"usage\":{}} {}", "{\"usage\":{}},", "{\"usage\":{\"input_tokens\":1]}",
		"{\"usage\":{\"input_tokens\":01x}}", "{'usage':{}}", "{\"a\":\"\x01\"x}",
		"{\"usage\":{\"input_tokens\":1}", "{\"a\":\"unterminated}",
		/* what jsmn alone lets through */
		"{\"a\" \"b\"}", "{\"a\":1,}", "{\"a\":[1 2]}", "{\"a\"::1}", "{,}",
		"{\"a\":[,1]}", "{\"a\":1 \"b\":2}", "{\"a\":tru}", "{\"a\":01}",
		"{\"a\":1.}", "{\"a\":.5}", "{\"a\":1e}", "{\"a\":-}", "{\"a\":+1}",
		"{\"a\":\"tab\there\"}", "{\"a\":\"nl\nhere\"}", "{\"a\":[1,]}",
	};
	struct usage u, zero;

	usage_init(&zero);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		usage_init(&u);
		assert_int_equal(body(&u, bad[i]), -1);
		assert_memory_equal(&u, &zero, sizeof(u));
	}
	assert_int_equal(body_n(&u, "{\"usage\":{\"input_tokens\":1}}\0", 29), -1);

	/* Every kind of JSON value is fine. */
	usage_init(&u);
	assert_int_equal(body(&u, " {\"a\":[true,false,null,-0.5e+3,0,1E9,-7,2.25E-2,\"x\\\"y\\u00e9\","
	                          "{},[],{\"b\":[[]]}],\"\":\"\",\"usage\":{\"output_tokens\":1}}\r\n"), 1);
	assert_int_equal(u.output, 1);
}

/* No depth or token budget any more: any nesting and any number of tokens
 * read, in linear time. These bodies were refused under the old budgets
 * (128 levels, 262144 tokens), and the usage of such an answer billed 0. */
static const char any_tail[] = "\"usage\":{\"output_tokens\":3}}";

/* Ends the body s[0..o) with any_tail (room was left for it), reads it,
 * expects output_tokens 3, and frees s. */
static void any_read(char *s, size_t o)
{
	struct usage u;

	memcpy(s + o, any_tail, sizeof(any_tail) - 1);
	o += sizeof(any_tail) - 1;
	usage_init(&u);
	assert_int_equal(body_n(&u, s, o), 1);
	assert_int_equal(u.output, 3);
	free(s);
}

static void test_body_any_depth(void **state)
{
	static const size_t depths[] = { 127, 128, 192, 10000, 300000 };
	size_t d, n, o;
	struct usage u;
	char *s;

	for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
		d = depths[i];
		s = malloc(2 * d + 64);
		assert_non_null(s);
		o = 0;
		memcpy(s + o, "{\"x\":", 5);
		o += 5;
		memset(s + o, '[', d);
		o += d;
		memset(s + o, ']', d);
		o += d;
		s[o++] = ',';
		any_read(s, o);
	}

	/* 1 MB of '[': truncated, refused. */
	n = 1024 * 1024;
	s = malloc(n);
	assert_non_null(s);
	memset(s, '[', n);
	s[0] = '{';
	assert_int_equal(body_n(&u, s, n), -1);
	/* 1 MB of nestings 120 deep, with and without strings between them
	 * (the latter was past the token budget): read. */
	free(s);
	for (int strings = 1; strings >= 0; strings--) {
		s = malloc(n);
		assert_non_null(s);
		memcpy(s, "{\"x\":[", 6);
		o = 6;
		while (o + 2 * 128 + 1100 < n) {
			memset(s + o, '[', 120);
			o += 120;
			memset(s + o, ']', 120);
			o += 120;
			s[o++] = ',';
			if (strings) {
				s[o++] = '"';
				memset(s + o, 's', 1000);
				o += 1000;
				s[o++] = '"';
				s[o++] = ',';
			}
		}
		memcpy(s + o, "1],", 3);
		o += 3;
		any_read(s, o);
	}

	/* 300000 tokens. */
	size_t elems = 300000;
	s = malloc(2 * elems + 64);
	assert_non_null(s);
	memcpy(s, "{\"x\":[", 6);
	o = 6;
	for (size_t i = 0; i < elems; i++) {
		s[o++] = '0';
		s[o++] = ',';
	}
	s[o - 1] = ']';
	s[o++] = ',';
	any_read(s, o);
}

/* {"content":[ 10000 levels of tool input ],"model":..,"usage":{..}} */
static char *deep_answer(size_t depth, size_t *len)
{
	static const char head[] =
		"{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":"
		"[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"x\",\"input\":";
	static const char tail[] =
		"}],\"model\":\"claude-\\u006fpus-4-5\",\"stop_reason\":\"tool_use\","
		"\"usage\":{\"input_tokens\":21,\"output_tokens\":9,"
		"\"cache_creation\":{\"ephemeral_1h_input_tokens\":4}}}";
	size_t n = 0, i;
	char *s = malloc(sizeof(head) + sizeof(tail) + depth * 12);

	assert_non_null(s);
	memcpy(s, head, sizeof(head) - 1);
	n = sizeof(head) - 1;
	for (i = 0; i < depth; i++) {
		/* look-alikes at every level: {"usage":[{"usage":... */
		memcpy(s + n, i % 2 ? "[" : "{\"usage\":", i % 2 ? 1 : 9);
		n += i % 2 ? 1 : 9;
	}
	s[n++] = '0';
	for (i = depth; i-- > 0; )
		s[n++] = i % 2 ? ']' : '}';
	memcpy(s + n, tail, sizeof(tail) - 1);
	n += sizeof(tail) - 1;
	*len = n;
	return s;
}

static void check_deep_answer(const struct usage *u)
{
	usage_is(u, 21, 9, 0, 4, 0, 0);
	assert_int_equal(u->flags, USAGE_FL_START);
	assert_string_equal(u->reported_model, "claude-opus-4-5");
}

/* The usage after content nested 10000 deep: read, in one buffer and fed
 * through the reader in every split, and one byte at a time. */
static void test_body_deep_content(void **state)
{
	struct usage_reader r;
	struct usage u;
	size_t len, k;
	char *s = deep_answer(10000, &len);

	usage_init(&u);
	assert_int_equal(body_n(&u, s, len), 1);
	check_deep_answer(&u);

	for (k = 0; k <= len; k += 1 + k / 64) {
		usage_init(&u);
		usage_reader_init(&r);
		assert_int_equal(usage_reader_feed(&r, s, k), 0);
		assert_int_equal(usage_reader_feed(&r, s + k, len - k), 0);
		assert_int_equal(usage_reader_finish(&r, &u), 1);
		usage_reader_release(&r);
		check_deep_answer(&u);
	}
	usage_init(&u);
	usage_reader_init(&r);
	for (k = 0; k < len; k++) {
		char *b = malloc(1);

		assert_non_null(b);
		*b = s[k];
		assert_int_equal(usage_reader_feed(&r, b, 1), 0);
		free(b);
	}
	assert_int_equal(usage_reader_finish(&r, &u), 1);
	usage_reader_release(&r);
	check_deep_answer(&u);
	free(s);
}

/* A body whose usage object and model fall across two feeds at every
 * byte: the same usage each time; and cut at every byte: unreadable. */
static void test_body_every_split(void **state)
{
	static const char b[] =
		"{\"id\":\"msg_01\",\"type\":\"message\",\"model\":\"claude-sonnet-4-5\","
		"\"content\":[{\"type\":\"text\",\"text\":\"Hi \\\"there\\\" \\ud83d\\ude00\"}],"
		"\"usage\":{\"input_tokens\":12,\"cache_creation_input_tokens\":200,"
		"\"cache_read_input_tokens\":3000,\"cache_creation\":"
		"{\"ephemeral_5m_input_tokens\":0,\"ephemeral_1h_input_tokens\":200},"
		"\"output_tokens\":4567,\"service_tier\":\"standard\","
		"\"server_tool_use\":{\"web_search_requests\":2}}} \n";
	size_t len = sizeof(b) - 1;
	struct usage_reader r;
	struct usage u, zero;

	for (size_t k = 0; k <= len; k++) {
		char *x = malloc(k ? k : 1), *y = malloc(len - k ? len - k : 1);

		assert_non_null(x);
		assert_non_null(y);
		memcpy(x, b, k);
		memcpy(y, b + k, len - k);
		usage_init(&u);
		usage_reader_init(&r);
		assert_int_equal(usage_reader_feed(&r, x, k), 0);
		assert_int_equal(usage_reader_feed(&r, y, len - k), 0);
		assert_int_equal(usage_reader_finish(&r, &u), 1);
		usage_reader_release(&r);
		usage_is(&u, 12, 4567, 0, 200, 3000, 2);
		assert_string_equal(u.service_tier, "standard");
		assert_string_equal(u.reported_model, "claude-sonnet-4-5");

		/* The first k bytes alone: truncated, nothing changes. */
		if (k < len - 2) {
			usage_init(&u);
			usage_init(&zero);
			usage_reader_init(&r);
			usage_reader_feed(&r, x, k);
			assert_int_equal(usage_reader_finish(&r, &u), -1);
			usage_reader_release(&r);
			assert_memory_equal(&u, &zero, sizeof(u));
		}
		free(x);
		free(y);
	}
}

/* A usage object up to USAGE_OBJ_MAX bytes is read; one byte more is
 * unreadable, unless a later "usage" replaces it. */
static void test_body_usage_too_big(void **state)
{
	static const char head[] = "{\"model\":\"m\",\"usage\":{\"pad\":\"";
	static const char mid[] = "\",\"output_tokens\":5}";
	size_t obj_fixed = strlen("{\"pad\":\"") + sizeof(mid) - 1, n, pad;
	struct usage u, zero;
	char *s;

	usage_init(&zero);
	for (int over = 0; over <= 1; over++) {
		pad = USAGE_OBJ_MAX - obj_fixed + (size_t)over;
		s = malloc(sizeof(head) + pad + sizeof(mid) + 64);
		assert_non_null(s);
		n = 0;
		memcpy(s, head, sizeof(head) - 1);
		n += sizeof(head) - 1;
		memset(s + n, 'p', pad);
		n += pad;
		memcpy(s + n, mid, sizeof(mid) - 1);
		n += sizeof(mid) - 1;
		s[n++] = '}';
		usage_init(&u);
		assert_int_equal(body_n(&u, s, n), over ? -1 : 1);
		if (over)
			assert_memory_equal(&u, &zero, sizeof(u));
		else
			assert_int_equal(u.output, 5);

		/* A later, small usage wins. */
		n--;
		n += (size_t)sprintf(s + n, ",\"usage\":{\"output_tokens\":6}}");
		usage_init(&u);
		assert_int_equal(body_n(&u, s, n), 1);
		assert_int_equal(u.output, 6);
		free(s);
	}
}

/* The model the upstream says it used, from a body or message_start. */
static void test_reported_model(void **state)
{
	char body_buf[2048], name[INSPECT_MODEL_MAX + 2];
	struct usage u;

	usage_init(&u);
	assert_int_equal(body(&u, "{\"model\":\"claude-haiku-4-5\",\"usage\":{}}"), 1);
	assert_string_equal(u.reported_model, "claude-haiku-4-5");
	/* Without usage (0), the model is still read; nested ones are not. */
	usage_init(&u);
	assert_int_equal(body(&u, "{\"x\":{\"model\":\"inner\"},\"model\":\"m\\u0031\"}"), 0);
	assert_string_equal(u.reported_model, "m1");
	/* The last one wins; a bad one leaves what was there. */
	usage_init(&u);
	assert_int_equal(body(&u, "{\"model\":\"a\",\"model\":\"b\"}"), 0);
	assert_string_equal(u.reported_model, "b");
	assert_int_equal(body(&u, "{\"model\":\"a\\u0000\"}"), 0);
	assert_string_equal(u.reported_model, "b");
	assert_int_equal(body(&u, "{\"model\":5}"), 0);
	assert_string_equal(u.reported_model, "b");
	/* INSPECT_MODEL_MAX bytes fit, one more does not; escapes count
	 * decoded. */
	memset(name, 'a', sizeof(name));
	name[INSPECT_MODEL_MAX] = 0;
	snprintf(body_buf, sizeof(body_buf), "{\"model\":\"%s\"}", name);
	usage_init(&u);
	assert_int_equal(body(&u, body_buf), 0);
	assert_string_equal(u.reported_model, name);
	name[INSPECT_MODEL_MAX] = 'a';
	name[INSPECT_MODEL_MAX + 1] = 0;
	snprintf(body_buf, sizeof(body_buf), "{\"model\":\"%s\"}", name);
	usage_init(&u);
	assert_int_equal(body(&u, body_buf), 0);
	assert_string_equal(u.reported_model, "");
	/* A failed body changes nothing. */
	usage_init(&u);
	assert_int_equal(body(&u, "{\"model\":\"x\",\"usage\":{}"), -1);
	assert_string_equal(u.reported_model, "");

	/* message_start's message.model. */
	usage_init(&u);
	start(&u, "\"input_tokens\":1");
	assert_string_equal(u.reported_model, "claude-opus-4-5");
	assert_int_equal(ev(&u, "message_start", "{\"message\":{\"model\":\"x\",\"usage\":{}},"
	                                         "\"model\":\"root\"}"), 1);
	assert_string_equal(u.reported_model, "x");
	assert_int_equal(ev(&u, "message_delta", "{\"model\":\"y\",\"usage\":{}}"), 1);
	assert_string_equal(u.reported_model, "x");
}

static void test_model_matches(void **state)
{
	assert_true(usage_model_matches("claude-sonnet-4-5", "claude-sonnet-4-5"));
	assert_true(usage_model_matches("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"));
	assert_true(usage_model_matches("claude-sonnet-4-5", ""));
	assert_false(usage_model_matches("claude-haiku-4-5", "claude-opus-4-5-20251101"));
	assert_false(usage_model_matches("claude-sonnet-4-5", "claude-sonnet-4-5-2025092"));
	assert_false(usage_model_matches("claude-sonnet-4-5", "claude-sonnet-4-5-2025092x"));
	assert_false(usage_model_matches("claude-sonnet-4-5", "claude-sonnet-4-5x20250929"));
	assert_false(usage_model_matches("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"));
}

/* ---- estimates ------------------------------------------------------ */

static const char text_delta[] =
	"{\"type\":\"content_block_delta\",\"index\":0,"
	"\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello, w\\u00f6rld! \\\"x\\\"\"}}";

/* One event given as a literal. */
#define CONTENT(c, lit) usage_content_event(&(c), (lit), sizeof(lit) - 1)

static void test_content_events(void **state)
{
	struct usage_content c = { 0 };

	assert_int_equal(usage_content_event(&c, text_delta, sizeof(text_delta) - 1), 1);
	/* "Hello, wörld! "x"": 18 decoded bytes (ö is two). */
	assert_int_equal(c.text_bytes, 18);
	assert_int_equal(c.event_bytes, sizeof(text_delta) - 1 + 35);
	assert_int_equal(CONTENT(c,
		"{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"abcd\"}}"), 1);
	assert_int_equal(CONTENT(c,
		"{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"a\\\":\"}}"), 1);
	assert_int_equal(c.text_bytes, 18 + 4 + 5);
	/* A signature is not output; other events and broken data are not
	 * counted. */
	assert_int_equal(CONTENT(c,
		"{\"type\":\"content_block_delta\",\"delta\":{\"type\":\"signature_delta\",\"signature\":\"zzzz\"}}"), 1);
	assert_int_equal(c.text_bytes, 27);
	assert_int_equal(CONTENT(c, "{\"type\":\"ping\"}"), 0);
	assert_int_equal(CONTENT(c, "{\"type\":\"content_block_delta\""), 0);
	assert_int_equal(c.text_bytes, 27);
}

/* The general reading of a content event, written again here as the
 * oracle: the root's "type" and "delta", then the delta's text members. */
struct oracle_walk {
	int is_delta;
	const char *delta;
	size_t delta_len;
	uint64_t text;
};

static void oracle_root(void *arg, const struct json_member *m)
{
	struct oracle_walk *w = arg;

	if (!m->key)
		return;
	if (json_str_is(m->key, m->key_len, "type") && m->type == JSON_T_STRING)
		w->is_delta = json_str_is(m->val, m->val_len, "content_block_delta");
	else if (json_str_is(m->key, m->key_len, "delta") && m->type == JSON_T_OBJECT) {
		w->delta = m->val;
		w->delta_len = m->val_len;
	}
}

static void oracle_delta(void *arg, const struct json_member *m)
{
	struct oracle_walk *w = arg;
	unsigned int fl;

	if (m->key && m->type == JSON_T_STRING && m->val_len >= 2 &&
	    (json_str_is(m->key, m->key_len, "text") ||
	     json_str_is(m->key, m->key_len, "thinking") ||
	     json_str_is(m->key, m->key_len, "partial_json")))
		w->text += json_unescape(m->val + 1, m->val_len - 2, NULL, 0, &fl);
}

static int oracle(const char *d, size_t n, uint64_t *text)
{
	struct oracle_walk w = { 0 };

	if (json_each(d, n, oracle_root, &w) != JSON_T_OBJECT || !w.is_delta)
		return 0;
	if (w.delta && json_each(w.delta, w.delta_len, oracle_delta, &w) != JSON_T_OBJECT)
		w.text = 0;
	*text = w.text;
	return 1;
}

/* Content deltas of the usual shape take a shorter path: on the shape,
 * every byte changed, cut or added, it counts what the general reading
 * counts. */
static void test_content_same_as_general(void **state)
{
	static const char *const base[] = {
		"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}",
		"{\"type\":\"content_block_delta\",\"index\":12,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"a\\nb \\\"q\\\" \\u00e9\\ud83d\\ude00\"}}",
		"{\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"path\\\": \\\"/x\\\"\"}}",
		"{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQBCkYIBxgCKkB\"}}",
		"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\"}}",
		"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"caf\xc3\xa9 \\\\ \\/ \\b\\f\\r\\t\"}}",
	};
	static const char subst[] = { '"', '\\', '{', '}', ':', ',', ' ', '0', '1', 'u',
	                              'x', 'T', '\x01', '\x1f', '\x7f', '\xc3', '\0' };
	char buf[256];
	long checked = 0;

	for (size_t b = 0; b < sizeof(base) / sizeof(base[0]); b++) {
		size_t n = strlen(base[b]);

		assert_true(n + 1 < sizeof(buf));
		for (size_t i = 0; i <= n; i++) {
			/* cut at i; each byte at i replaced; a byte added at i */
			for (size_t k = 0; k <= sizeof(subst) + 1; k++) {
				struct usage_content c = { 0 };
				uint64_t want = 0;
				size_t len;
				int r, wr;

				memcpy(buf, base[b], n);
				if (k == 0) {
					len = i;
				} else if (k == 1) {
					len = n;       /* unchanged */
				} else if (i < n && k < sizeof(subst) + 2) {
					buf[i] = subst[k - 2];
					len = n;
				} else {
					memmove(buf + i + 1, base[b] + i, n - i);
					buf[i] = ' ';
					len = n + 1;
				}
				r = usage_content_event(&c, buf, len);
				wr = oracle(buf, len, &want);
				if (r != wr || (r && c.text_bytes != want))
					fail_msg("base %zu, byte %zu, change %zu: %d/%llu, general %d/%llu",
					         b, i, k, r, (unsigned long long)c.text_bytes, wr,
					         (unsigned long long)want);
				if (r)
					assert_int_equal(c.event_bytes, len + 35);
				checked++;
			}
		}
	}
	assert_true(checked > 10000);
}

static void test_content_tokens(void **state)
{
	struct usage_content c = { .event_bytes = 1000, .text_bytes = 100 };

	assert_int_equal(usage_content_tokens(&c), 25);
	c.text_bytes = 101;
	assert_int_equal(usage_content_tokens(&c), 26);
	/* Skipped bytes at the share of text seen: 10000 x 101/1000. */
	c.skipped_bytes = 10000;
	assert_int_equal(usage_content_tokens(&c), (101 + 1010 + 3) / 4);
	/* Nothing measured: the typical share. */
	c = (struct usage_content){ .skipped_bytes = 12000 };
	assert_int_equal(usage_content_tokens(&c), 250);
	assert_int_equal(usage_bytes_tokens(0), 0);
	assert_int_equal(usage_bytes_tokens(1), 1);
	assert_int_equal(usage_bytes_tokens(400), 100);
}

/* A stream of n deltas of `text` bytes each, as the mock sends it. */
static char *mock_stream(int n, int text, int with_end, size_t *len)
{
	size_t cap = 4096 + (size_t)n * (size_t)(text + 200), o = 0;
	char *s = malloc(cap);

	assert_non_null(s);
	o += (size_t)snprintf(s + o, cap - o, "event: message_start\ndata: {\"type\":\"message_start\","
		"\"message\":{\"model\":\"m\",\"usage\":{\"input_tokens\":100,\"output_tokens\":1}}}\n\n");
	for (int i = 0; i < n; i++) {
		o += (size_t)snprintf(s + o, cap - o, "event: content_block_delta\ndata: "
			"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
			"\"text\":\"");
		memset(s + o, 'a' + i % 26, (size_t)text);
		o += (size_t)text;
		o += (size_t)snprintf(s + o, cap - o, "\"}}\n\n");
	}
	if (with_end)
		o += (size_t)snprintf(s + o, cap - o, "event: message_delta\ndata: {\"type\":\"message_delta\","
			"\"usage\":{\"output_tokens\":%d}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
			n * text / 4);
	*len = o;
	return s;
}

/* A client hangs up after 130 of 200 deltas: billed what it received,
 * marked estimated; with the tap's head and tail only (a gap), nearly the
 * same; a complete stream is billed what the provider said, no estimate. */
static void test_meter_cut_stream(void **state)
{
	struct usage_record rec;
	struct meter *m;
	size_t len, cut, head = 8192;
	char *s = mock_stream(200, 40, 0, &len);
	uint64_t delivered = 130 * 40 / 4;

	/* Where the 130th delta ends. */
	cut = 0;
	for (int k = 0; k <= 130; k++)
		cut = (size_t)(strstr(s + cut + 1, k == 130 ? "event: content_block_delta" :
		                      "event: content_block_delta") - s);
	m = meter_new("text/event-stream");
	meter_feed(m, s, cut);
	memset(&rec, 0, sizeof(rec));
	rec.status = 200;
	meter_finish(m, 0, 0, &rec);
	meter_free(m);
	assert_int_equal(rec.partial, USAGE_PARTIAL_TRUNCATED);
	assert_int_equal(rec.u.input, 100);
	assert_int_equal(rec.u.output, delivered);
	assert_true(rec.u.flags & USAGE_FL_ESTIMATED);

	/* The tap's view: 8 KB of head, a gap, the last 8 KB. */
	m = meter_new("text/event-stream");
	meter_feed(m, s, head);
	meter_gap(m, cut - 2 * head);
	meter_feed(m, s + cut - head, head);
	memset(&rec, 0, sizeof(rec));
	rec.status = 200;
	meter_finish(m, 0, 0, &rec);
	meter_free(m);
	assert_true(rec.u.flags & USAGE_FL_ESTIMATED);
	assert_true(rec.u.output > delivered * 9 / 10 && rec.u.output < delivered * 11 / 10);
	free(s);

	/* Complete: the provider's count, no estimate. */
	s = mock_stream(200, 40, 1, &len);
	m = meter_new("text/event-stream");
	meter_feed(m, s, len);
	memset(&rec, 0, sizeof(rec));
	rec.status = 200;
	meter_finish(m, 1, 0, &rec);
	meter_free(m);
	assert_int_equal(rec.partial, USAGE_COMPLETE);
	assert_int_equal(rec.u.output, 2000);
	assert_false(rec.u.flags & USAGE_FL_ESTIMATED);
	free(s);

	/* Cut before any content: message_start's count stands, no estimate. */
	s = mock_stream(0, 40, 0, &len);
	m = meter_new("text/event-stream");
	meter_feed(m, s, len);
	memset(&rec, 0, sizeof(rec));
	rec.status = 200;
	meter_finish(m, 0, 0, &rec);
	meter_free(m);
	assert_int_equal(rec.u.output, 1);
	assert_false(rec.u.flags & USAGE_FL_ESTIMATED);
	free(s);
}

/* A 2xx answer without readable usage: input from the request's size. */
static void test_meter_unparsed_request_size(void **state)
{
	struct usage_record rec;
	struct meter *m = meter_new("application/json");

	meter_feed(m, "{\"content\":[]}", 14);
	memset(&rec, 0, sizeof(rec));
	rec.status = 200;
	rec.req_bytes = 4001;
	assert_int_equal(meter_finish(m, 1, 0, &rec), METER_JSON_NO_USAGE);
	meter_free(m);
	assert_int_equal(rec.partial, USAGE_PARTIAL_UNPARSED);
	assert_int_equal(rec.u.input, 1001);
	assert_int_equal(rec.u.output, 4);
	assert_true(rec.u.flags & USAGE_FL_ESTIMATED);
}

/* The meter's three outcomes for a JSON answer, fed in chunks. */
static enum meter_json meter_json(const char *s, size_t n, size_t chunk, int status,
                                  struct usage_record *rec)
{
	struct meter *m = meter_new("application/json");
	enum meter_json mj;

	assert_non_null(m);
	for (size_t at = 0; at < n; at += chunk)
		meter_feed(m, s + at, n - at < chunk ? n - at : chunk);
	memset(rec, 0, sizeof(*rec));
	rec->status = status;
	mj = meter_finish(m, 1, 0, rec);
	meter_free(m);
	return mj;
}

static void test_meter_json(void **state)
{
	static const char err[] =
		"{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}";
	struct usage_record rec;
	size_t len;
	char *s = big_body(200000, &len), *big;

	for (size_t chunk = 1; chunk <= len; chunk *= 7) {
		assert_int_equal(meter_json(s, len, chunk, 200, &rec), METER_JSON_USAGE);
		assert_int_equal(rec.partial, USAGE_COMPLETE);
		assert_int_equal(rec.u.output, 4567);
		assert_string_equal(rec.u.reported_model, "claude-sonnet-4-5-20250929");
		assert_false(rec.stream);
	}
	/* An error body: valid, no usage; partial only if it came with a 2xx. */
	assert_int_equal(meter_json(err, sizeof(err) - 1, 16, 529, &rec), METER_JSON_NO_USAGE);
	assert_int_equal(rec.partial, USAGE_COMPLETE);
	assert_int_equal(meter_json(err, sizeof(err) - 1, 16, 200, &rec), METER_JSON_NO_USAGE);
	assert_int_equal(rec.partial, USAGE_PARTIAL_UNPARSED);
	/* Invalid, truncated, empty: unreadable, billed by its size, said to
	 * be an estimate (never silently zero). */
	assert_int_equal(meter_json(s, len - 3, 4096, 200, &rec), METER_JSON_UNREADABLE);
	assert_int_equal(rec.partial, USAGE_PARTIAL_UNPARSED);
	assert_int_equal(rec.u.output, (len - 3 + 3) / 4);
	assert_true(rec.u.flags & USAGE_FL_ESTIMATED);
	/* An error status is not billed by its size. */
	assert_int_equal(meter_json(s, len - 3, 4096, 500, &rec), METER_JSON_UNREADABLE);
	assert_int_equal(rec.u.output, 0);
	assert_false(rec.u.flags & USAGE_FL_ESTIMATED);
	s[len / 2] = '\x01';
	assert_int_equal(meter_json(s, len, 4096, 200, &rec), METER_JSON_UNREADABLE);
	assert_int_equal(meter_json("", 0, 1, 200, &rec), METER_JSON_UNREADABLE);
	assert_int_equal(meter_json("[1]", 3, 1, 200, &rec), METER_JSON_UNREADABLE);
	free(s);

	/* Past the old 8 MB cap: read, in chunks like the tap's. */
	big = big_body(9 * 1024 * 1024, &len);
	assert_int_equal(meter_json(big, len, 16384, 200, &rec), METER_JSON_USAGE);
	assert_int_equal(rec.partial, USAGE_COMPLETE);
	assert_int_equal(rec.u.output, 4567);
	free(big);

	/* An event stream is not a JSON answer. */
	{
		struct meter *m = meter_new("text/event-stream");

		assert_non_null(m);
		memset(&rec, 0, sizeof(rec));
		rec.status = 200;
		assert_int_equal(meter_finish(m, 1, 0, &rec), METER_JSON_NONE);
		assert_true(rec.stream);
		meter_free(m);
	}
}

/* Other threads read bodies at the same time: nothing is shared (and
 * ASan's leak check sees what each one frees). */
static void *thread_main(void *arg)
{
	struct usage *u = arg;
	size_t len;
	char *s = big_body(100000, &len);

	usage_init(u);
	if (usage_from_json(u, s, len) != 1)
		u->flags = 0;
	free(s);
	return NULL;
}

static void test_threads(void **state)
{
	pthread_t th[4];
	struct usage u[4];

	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, thread_main, &u[i]), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(u[i].flags, USAGE_FL_START);
		assert_int_equal(u[i].output, 4567);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start_every_field),
		cmocka_unit_test(test_start_missing_fields),
		cmocka_unit_test(test_cache_split),
		cmocka_unit_test(test_delta_cumulative),
		cmocka_unit_test(test_stop_and_error),
		cmocka_unit_test(test_other_events),
		cmocka_unit_test(test_unnamed),
		cmocka_unit_test(test_malformed_event),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_duplicate_keys),
		cmocka_unit_test(test_nested_lookalikes),
		cmocka_unit_test(test_service_tier),
		cmocka_unit_test(test_iterations),
		cmocka_unit_test(test_body),
		cmocka_unit_test(test_body_truncated),
		cmocka_unit_test(test_body_malformed),
		cmocka_unit_test(test_body_any_depth),
		cmocka_unit_test(test_body_deep_content),
		cmocka_unit_test(test_body_every_split),
		cmocka_unit_test(test_body_usage_too_big),
		cmocka_unit_test(test_reported_model),
		cmocka_unit_test(test_meter_json),
		cmocka_unit_test(test_model_matches),
		cmocka_unit_test(test_content_events),
		cmocka_unit_test(test_content_same_as_general),
		cmocka_unit_test(test_content_tokens),
		cmocka_unit_test(test_meter_cut_stream),
		cmocka_unit_test(test_meter_unparsed_request_size),
		cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
