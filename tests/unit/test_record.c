/*
 * Usage records: UTC days (midnight, leap days), key segments, validation,
 * the exact EVALSHA/EVAL argv of known records, spool lines (exact bytes,
 * round trips of weird and random records, every truncation, every
 * single-byte corruption, crafted lines with a valid CRC but bad content).
 * Expected timestamps and CRCs were computed independently (Python:
 * calendar.timegm, zlib.crc32).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <realms/record.h>
#include <realms/rkeys.h>

#define SHA "0123456789abcdef0123456789abcdef01234567"

/* ---- Fixtures ------------------------------------------------------- */

/* A plain streamed request, 2024-02-29T23:59:59.999Z. */
static void rec_plain(struct usage_record *r)
{
	memset(r, 0, sizeof(*r));
	strcpy(r->req_id, "hap-0001:abc.DEF_9");
	strcpy(r->token, "alice");
	strcpy(r->token_id, "0123456789ab");
	strcpy(r->group, "default");
	strcpy(r->model, "claude-sonnet-4-5");
	strcpy(r->upstream_model, "claude-sonnet-4-5-20250929");
	strcpy(r->channel, "anthropic");
	strcpy(r->server, "anthropic--k1");
	r->status = 200;
	r->stream = 1;
	r->partial = USAGE_COMPLETE;
	r->u.input = 1200;
	r->u.output = 345;
	r->u.cache_write_5m = 100;
	r->u.cache_write_1h = 50;
	r->u.cache_read = 4000;
	r->u.web_search = 2;
	strcpy(r->u.service_tier, "standard");
	r->u.flags = USAGE_FL_START | USAGE_FL_DELTA | USAGE_FL_STOP;
	r->cost_nusd = 8250000;
	r->ttfb_ms = 812;
	r->duration_ms = 4521;
	r->ts_ms = 1709251199999LL;
}

/* Odd names everywhere, an upstream error after the 200: partial, 529,
 * no channel. 2024-02-29T00:00:00.000Z. */
static void rec_weird(struct usage_record *r)
{
	memset(r, 0, sizeof(*r));
	strcpy(r->req_id, "r.2");
	strcpy(r->token, "bob:the builder");
	strcpy(r->group, "g\twith\ttabs");
	strcpy(r->model, "vendor/model[1m]");
	strcpy(r->upstream_model, "up\\stream\nmodel\r");
	strcpy(r->server, "srv \xc3\xa9");
	r->status = 529;
	r->stream = 0;
	r->partial = USAGE_PARTIAL_UPSTREAM_ERROR;
	r->u.output = 1;
	r->u.flags = USAGE_FL_START | USAGE_FL_ERROR;
	r->ts_ms = 1709164800000LL;
}

static void assert_rec_equal(const struct usage_record *a, const struct usage_record *b)
{
	assert_string_equal(a->req_id, b->req_id);
	assert_string_equal(a->token, b->token);
	assert_string_equal(a->token_id, b->token_id);
	assert_string_equal(a->group, b->group);
	assert_string_equal(a->model, b->model);
	assert_string_equal(a->upstream_model, b->upstream_model);
	assert_string_equal(a->channel, b->channel);
	assert_string_equal(a->server, b->server);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->stream, b->stream);
	assert_int_equal(a->partial, b->partial);
	assert_true(a->u.input == b->u.input);
	assert_true(a->u.output == b->u.output);
	assert_true(a->u.cache_write_5m == b->u.cache_write_5m);
	assert_true(a->u.cache_write_1h == b->u.cache_write_1h);
	assert_true(a->u.cache_read == b->u.cache_read);
	assert_true(a->u.web_search == b->u.web_search);
	assert_string_equal(a->u.service_tier, b->u.service_tier);
	assert_int_equal(a->u.flags, b->u.flags);
	assert_true(a->cost_nusd == b->cost_nusd);
	assert_true(a->ttfb_ms == b->ttfb_ms);
	assert_true(a->duration_ms == b->duration_ms);
	assert_true(a->ts_ms == b->ts_ms);
}

/* An independent CRC-32 (table-driven) for crafting lines. */
static uint32_t t_crc32(const char *p, size_t n)
{
	static uint32_t tab[256];
	uint32_t c;
	size_t i;
	int k;

	if (!tab[1]) {
		for (i = 0; i < 256; i++) {
			c = (uint32_t)i;
			for (k = 0; k < 8; k++)
				c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
			tab[i] = c;
		}
	}
	c = 0xFFFFFFFFu;
	for (i = 0; i < n; i++)
		c = tab[(c ^ (unsigned char)p[i]) & 0xff] ^ (c >> 8);
	return ~c;
}

/* body + TAB + its CRC + LF into out. Returns the length. */
static size_t craft(const char *body, char *out, size_t size)
{
	int n = snprintf(out, size, "%s\t%08x\n", body, t_crc32(body, strlen(body)));

	assert_true(n > 0 && (size_t)n < size);
	return (size_t)n;
}

/* Decodes exactly len bytes from a heap copy (no NUL after it: ASan sees
 * any read past the end). */
static int decode_exact(const char *line, size_t len, struct usage_record *r)
{
	char *copy = malloc(len ? len : 1);
	int rc;

	assert_non_null(copy);
	memcpy(copy, line, len);
	rc = record_spool_decode(copy, len, r);
	free(copy);
	return rc;
}

/* Deterministic PRNG (xorshift64*). */
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

/* ---- Days ------------------------------------------------------------ */

static void test_day_vectors(void **state)
{
	static const struct { int64_t ts; const char *day; } v[] = {
		{ 0, "19700101" },
		{ 86399999, "19700101" },
		{ 86400000, "19700102" },
		{ 68169600000LL, "19720229" },          /* first leap day */
		{ 951825600000LL, "20000229" },         /* 2000: divisible by 400 */
		{ 1704067199999LL, "20231231" },        /* year end, last ms */
		{ 1704067200000LL, "20240101" },
		{ 1709164799999LL, "20240228" },
		{ 1709164800000LL, "20240229" },        /* leap day, first ms */
		{ 1709251199999LL, "20240229" },        /* leap day, last ms */
		{ 1709251200000LL, "20240301" },
		{ 4107542399999LL, "21000228" },        /* 2100 is not leap */
		{ 4107542400000LL, "21000301" },
		{ 1762348455016LL, "20251105" },
		{ 253402300799999LL, "99991231" },      /* RECORD_TS_MAX_MS */
	};
	char day[RECORD_DAY_LEN + 1];
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(record_day(v[i].ts, day), 0);
		assert_string_equal(day, v[i].day);
	}
	assert_int_equal(record_day(-1, day), -1);
	assert_string_equal(day, "");
	assert_int_equal(record_day(RECORD_TS_MAX_MS + 1, day), -1);
	assert_int_equal(record_day(INT64_MIN, day), -1);
}

static void test_day_every_midnight(void **state)
{
	/* 1970..2400 day by day: the day after midnight differs from the one
	 * before it and equals what record_day_parse makes of its ISO form */
	char a[RECORD_DAY_LEN + 1], b[RECORD_DAY_LEN + 1], p[RECORD_DAY_LEN + 1], iso[16];
	int64_t d;

	for (d = 1; d < 157000; d++) {
		assert_int_equal(record_day(d * 86400000 - 1, a), 0);
		assert_int_equal(record_day(d * 86400000, b), 0);
		assert_true(strcmp(a, b) < 0);
		snprintf(iso, sizeof(iso), "%.4s-%.2s-%.2s", b, b + 4, b + 6);
		assert_int_equal(record_day_parse(iso, p), 0);
		assert_string_equal(p, b);
	}
}

static void test_day_parse(void **state)
{
	static const char *good[][2] = {
		{ "2024-02-29", "20240229" }, { "2000-02-29", "20000229" },
		{ "1970-01-01", "19700101" }, { "9999-12-31", "99991231" },
		{ "2025-04-30", "20250430" },
	};
	static const char *bad[] = {
		"2023-02-29", "2100-02-29", "1900-02-29", "1969-12-31", "2024-13-01",
		"2024-00-10", "2024-04-31", "2024-01-00", "2024-2-29", "2024-02-290",
		"2024/02/29", "20240229", "", "2024-02-2", " 2024-02-29", "2024-02-29 ",
		"+024-02-29",
	};
	char out[RECORD_DAY_LEN + 1];
	size_t i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(record_day_parse(good[i][0], out), 0);
		assert_string_equal(out, good[i][1]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(record_day_parse(bad[i], out), -1);
		assert_string_equal(out, "");
	}
}

/* ---- Key segments ---------------------------------------------------- */

static void test_seg_vectors(void **state)
{
	static const char *v[][2] = {
		{ "alice", "alice" },
		{ "claude-sonnet-4-5", "claude-sonnet-4-5" },
		{ "vendor/model@2025+x_y.z", "vendor/model@2025+x_y.z" },
		{ "", RKEY_USAGE_NONE },
		{ "(none)", "%28none%29" },
		{ "a:b c", "a%3Ab%20c" },
		{ "m[1m]", "m%5B1m%5D" },
		{ "100%", "100%25" },
		{ "caf\xc3\xa9", "caf%C3%A9" },
		{ "t\tn\n*", "t%09n%0A%2A" },
	};
	char out[RECORD_SEG_MAX], back[300];
	size_t i;
	int n;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		n = record_seg_encode(v[i][0], out, sizeof(out));
		assert_int_equal(n, (int)strlen(v[i][1]));
		assert_string_equal(out, v[i][1]);
		assert_null(strchr(out, ':'));
		n = record_seg_decode(out, strlen(out), back, sizeof(back));
		assert_int_equal(n, (int)strlen(v[i][0]));
		assert_string_equal(back, v[i][0]);
	}
	/* every byte alone: encoded without ':' or whitespace, and back */
	for (i = 1; i < 256; i++) {
		char name[2] = { (char)i, 0 };
		const char *q;

		n = record_seg_encode(name, out, sizeof(out));
		assert_true(n == 1 || n == 3);
		for (q = out; *q; q++)
			assert_true(*q > 0x20 && *q < 0x7f && *q != ':');
		assert_int_equal(record_seg_decode(out, (size_t)n, back, sizeof(back)), 1);
		assert_int_equal((unsigned char)back[0], i);
	}
}

static void test_seg_limits(void **state)
{
	char name[257], out[RECORD_SEG_MAX], small[8];

	memset(name, 0xff, 256);
	name[256] = '\0';
	assert_int_equal(record_seg_encode(name, out, sizeof(out)), 768);
	assert_int_equal(record_seg_encode(name, out, sizeof(out) - 1), -1);
	assert_int_equal(record_seg_encode("abcdefg", small, sizeof(small)), 7);
	assert_int_equal(record_seg_encode("abcdefgh", small, sizeof(small)), -1);
	assert_int_equal(record_seg_encode("abcdef:", small, sizeof(small)), -1);
	assert_int_equal(record_seg_encode("", small, 6), -1);      /* "(none)" + NUL */
	assert_int_equal(record_seg_encode("", small, 7), 6);
}

static void test_seg_decode_rejects(void **state)
{
	static const char *bad[] = {
		"", "%3a", "%41", "%2E", "%00", "%2", "%", "%zz", "a b", "a:b",
		"(none", "x(none)", "a%", "tab\t", "caf\xc3\xa9",
	};
	char out[64];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(record_seg_decode(bad[i], strlen(bad[i]), out, sizeof(out)), -1);
	assert_int_equal(record_seg_decode("abcd", 4, out, 4), -1);     /* no room */
	assert_int_equal(record_seg_decode("abcd", 4, out, 5), 4);
	assert_int_equal(record_seg_decode("abcd", 2, out, 5), 2);      /* len, not NUL */
	assert_string_equal(out, "ab");
}

/* ---- Validation ------------------------------------------------------ */

static void test_validate(void **state)
{
	struct usage_record r;
	const char *why = NULL;

	rec_plain(&r);
	assert_int_equal(record_validate(&r, &why), 0);
	rec_weird(&r);
	assert_int_equal(record_validate(&r, NULL), 0);

#define BAD(stmt) do {                                              \
		rec_plain(&r);                                      \
		stmt;                                               \
		why = NULL;                                         \
		assert_int_equal(record_validate(&r, &why), -1);    \
		assert_non_null(why);                               \
	} while (0)
	BAD(r.req_id[0] = '\0');
	BAD(strcpy(r.req_id, "has space"));
	BAD(strcpy(r.req_id, "a/b"));
	BAD(strcpy(r.req_id, "a\tb"));
	BAD(strcpy(r.req_id, "a*"));
	BAD(memset(r.req_id, 'a', sizeof(r.req_id)));       /* no NUL */
	BAD(memset(r.model, 'm', sizeof(r.model)));
	BAD(memset(r.u.service_tier, 's', sizeof(r.u.service_tier)));
	BAD(strcpy(r.token_id, "0123456789AB"));
	BAD(strcpy(r.token_id, "0123"));
	BAD(r.status = -1);
	BAD(r.status = 1000);
	BAD(r.stream = 2);
	BAD(r.partial = (enum usage_partial)6);
	BAD(r.u.input = RECORD_COUNT_MAX + 1);
	BAD(r.u.web_search = UINT64_MAX);
	BAD(r.cost_nusd = RECORD_COUNT_MAX + 1);
	BAD(r.duration_ms = RECORD_COUNT_MAX + 1);
	BAD(r.ts_ms = -1);
	BAD(r.ts_ms = RECORD_TS_MAX_MS + 1);
#undef BAD

	/* limits themselves are fine; names take any byte */
	rec_plain(&r);
	memset(r.req_id, 'a', sizeof(r.req_id) - 1);
	r.req_id[sizeof(r.req_id) - 1] = '\0';
	r.u.input = RECORD_COUNT_MAX;
	r.ts_ms = RECORD_TS_MAX_MS;
	r.status = 0;
	strcpy(r.token, "a:b c\x01");
	r.token_id[0] = '\0';
	assert_int_equal(record_validate(&r, NULL), 0);
}

static void test_partial_names(void **state)
{
	enum usage_partial p;

	assert_string_equal(record_partial_name(USAGE_COMPLETE), "");
	assert_string_equal(record_partial_name(USAGE_PARTIAL_CLIENT_GONE), "client_gone");
	assert_string_equal(record_partial_name(USAGE_PARTIAL_UPSTREAM_ERROR), "upstream_error");
	assert_string_equal(record_partial_name(USAGE_PARTIAL_TRUNCATED), "truncated");
	assert_string_equal(record_partial_name(USAGE_PARTIAL_UNPARSED), "unparsed");
	assert_string_equal(record_partial_name(USAGE_PARTIAL_TAP_OVERFLOW), "tap_overflow");
	assert_null(record_partial_name((enum usage_partial)6));
	assert_null(record_partial_name((enum usage_partial)-1));
	assert_int_equal(record_partial_parse("truncated", 9, &p), 0);
	assert_int_equal(p, USAGE_PARTIAL_TRUNCATED);
	assert_int_equal(record_partial_parse("", 0, &p), 0);
	assert_int_equal(p, USAGE_COMPLETE);
	assert_int_equal(record_partial_parse("truncate", 8, &p), -1);
	assert_int_equal(record_partial_parse("truncatedx", 10, &p), -1);
}

/* ---- Script argv ----------------------------------------------------- */

static void assert_argv(const struct rargv *a, const char *const *want, int n)
{
	int i;

	assert_int_equal(a->argc, n);
	for (i = 0; i < n; i++) {
		if (!want[i])
			continue;       /* checked by the caller */
		assert_int_equal(a->argvlen[i], strlen(want[i]));
		assert_string_equal(a->argv[i], want[i]);
	}
}

static void test_argv_plain(void **state)
{
	static const char *const want[] = {
		"EVALSHA", SHA, "22",
		/* KEYS */
		"realms:usage:seen:hap-0001:abc.DEF_9",
		"realms:usage:token:alice:20240229",
		"realms:usage:model:claude-sonnet-4-5:20240229",
		"realms:usage:channel:anthropic:20240229",
		"realms:usage:combo:alice:claude-sonnet-4-5:anthropic:20240229",
		"realms:usage:days",
		"realms:usage:tokens:20240229",
		"realms:usage:models:20240229",
		"realms:usage:channels:20240229",
		"realms:usage:combos:20240229",
		"realms:usage:events",
		"realms:spend:t:alice:5h", "realms:spend:t:alice:d20240229",
		"realms:spend:t:alice:w20240226", "realms:spend:t:alice:m202402",
		"realms:spend:g:default:5h", "realms:spend:g:default:d20240229",
		"realms:spend:g:default:w20240226", "realms:spend:g:default:m202402",
		"realms:resv:t:alice", "realms:resv:g:default", "realms:inflight:alice",
		/* ARGV: one record, then its section */
		"1",
		"1709251199999", "2419200000", "2592000", "20240229",
		"alice", "claude-sonnet-4-5", "anthropic",
		"alice:claude-sonnet-4-5:anthropic", "1000000",
		/* settlement: cost, 5h bucket and lifetime, day, week and month
		 * ends plus an hour, the request id */
		"8250000", "28487519", "18060000",
		"1709254800000", "1709514000000", "1709254800000",
		"hap-0001:abc.DEF_9",
		/* the counters: requests errors partial estimated input output
		 * cache_write_5m cache_write_1h cache_read web_search cost_nusd */
		"1", "0", "0", "0", "1200", "345", "100", "50", "4000", "2", "8250000",
		/* the rest of the event */
		"alice", "0123456789ab", "default", "claude-sonnet-4-5",
		"claude-sonnet-4-5-20250929", "anthropic", "anthropic--k1",
		"200", "1", "", "standard", "812", "4521",
	};
	struct usage_record r;
	static struct rargv a;
	int n = (int)(sizeof(want) / sizeof(want[0]));

	rec_plain(&r);
	assert_int_equal(record_redis_argv(&r, SHA, RECORD_MAX_AGE_MS, 0, &a), 0);
	assert_argv(&a, want, n);
	assert_string_equal(a.argv[RECORD_ARGV_KEYS], "realms:usage:seen:hap-0001:abc.DEF_9");
	assert_string_equal(a.argv[RECORD_ARGV_REC], "1709251199999");
	/* numkeys says where ARGV starts */
	assert_int_equal(atoi(a.argv[2]), RECORD_NKEYS);
	/* the pointers are into a.buf, not into r */
	memset(&r, 0, sizeof(r));
	assert_string_equal(a.argv[4], "realms:usage:token:alice:20240229");
}

static void test_argv_weird_eval(void **state)
{
	static const char *const want[] = {
		"EVAL", NULL, "22",
		"realms:usage:seen:r.2",
		"realms:usage:token:bob%3Athe%20builder:20240229",
		"realms:usage:model:vendor/model%5B1m%5D:20240229",
		"realms:usage:channel:(none):20240229",
		"realms:usage:combo:bob%3Athe%20builder:vendor/model%5B1m%5D:(none):20240229",
		"realms:usage:days",
		"realms:usage:tokens:20240229",
		"realms:usage:models:20240229",
		"realms:usage:channels:20240229",
		"realms:usage:combos:20240229",
		"realms:usage:events",
		"realms:spend:t:bob%3Athe%20builder:5h",
		"realms:spend:t:bob%3Athe%20builder:d20240229",
		"realms:spend:t:bob%3Athe%20builder:w20240226",
		"realms:spend:t:bob%3Athe%20builder:m202402",
		"realms:spend:g:g%09with%09tabs:5h", "realms:spend:g:g%09with%09tabs:d20240229",
		"realms:spend:g:g%09with%09tabs:w20240226", "realms:spend:g:g%09with%09tabs:m202402",
		"realms:resv:t:bob%3Athe%20builder", "realms:resv:g:g%09with%09tabs",
		"realms:inflight:bob%3Athe%20builder",
		"1",
		"1709164800000", "0", "2592000", "20240229",
		"bob%3Athe%20builder", "vendor/model%5B1m%5D", "(none)",
		"bob%3Athe%20builder:vendor/model%5B1m%5D:(none)", "1000000",
		"0", "28486080", "18060000",
		"1709254800000", "1709514000000", "1709254800000", "r.2",
		"1", "1", "1", "0", "0", "1", "0", "0", "0", "0", "0",
		"bob:the builder", "", "g\twith\ttabs", "vendor/model[1m]",
		"up\\stream\nmodel\r", "", "srv \xc3\xa9",
		"529", "0", "upstream_error", "", "0", "0",
	};
	struct usage_record r;
	static struct rargv a;
	size_t slen;
	const char *s = record_script(&slen);

	rec_weird(&r);
	assert_int_equal(record_redis_argv(&r, NULL, 0, 0, &a), 0);
	assert_argv(&a, want, (int)(sizeof(want) / sizeof(want[0])));
	assert_ptr_equal(a.argv[1], s);
	assert_int_equal(a.argvlen[1], slen);
	assert_int_equal(strlen(s), slen);
	assert_non_null(strstr(s, "XADD"));
}

/* Settlement keys are the windows of the request's start at the offset:
 * a stream started at 23:59:59.999 local settles in that day, week and
 * month whenever its record commits (the argv has no clock). */
static void test_argv_settles_in_start_window(void **state)
{
	struct usage_record r;
	static struct rargv a;

	rec_plain(&r);
	/* 2024-02-29T23:59:59.999Z: 2024-03-01T07:59:59.999+08:00, a Friday;
	 * 2024-02-29T18:59:59.999-05:00, a Thursday. */
	assert_int_equal(record_redis_argv(&r, SHA, 0, 8 * 60, &a), 0);
	assert_string_equal(a.argv[RECORD_ARGV_KEYS + 12], "realms:spend:t:alice:d20240301");
	assert_string_equal(a.argv[RECORD_ARGV_KEYS + 13], "realms:spend:t:alice:w20240226");
	assert_string_equal(a.argv[RECORD_ARGV_KEYS + 14], "realms:spend:t:alice:m202403");
	assert_string_equal(a.argv[RECORD_ARGV_KEYS + 16], "realms:spend:g:default:d20240301");
	/* the day ends at 2024-03-02T00:00+08:00, plus the hour of grace */
	assert_string_equal(a.argv[RECORD_ARGV_REC + 12], "1709312400000");
	assert_int_equal(record_redis_argv(&r, SHA, 0, -5 * 60, &a), 0);
	assert_string_equal(a.argv[RECORD_ARGV_KEYS + 12], "realms:spend:t:alice:d20240229");
	assert_string_equal(a.argv[RECORD_ARGV_KEYS + 14], "realms:spend:t:alice:m202402");
	/* 2024-03-01T00:00-05:00 + 1 h */
	assert_string_equal(a.argv[RECORD_ARGV_REC + 12], "1709272800000");
	/* the 5h bucket does not depend on the offset */
	assert_string_equal(a.argv[RECORD_ARGV_REC + 10], "28487519");
}

static void test_argv_errors_and_status(void **state)
{
	struct usage_record r;
	static struct rargv a;

	/* errors = status >= 400 or partial; partial only for a partial */
	rec_plain(&r);
	r.status = 400;
	assert_int_equal(record_redis_argv(&r, SHA, 0, 0, &a), 0);
	assert_string_equal(a.argv[RECORD_ARGV_COUNTERS], "1");
	assert_string_equal(a.argv[RECORD_ARGV_COUNTERS + 1], "1");
	assert_string_equal(a.argv[RECORD_ARGV_COUNTERS + 2], "0");
	r.status = 399;
	assert_int_equal(record_redis_argv(&r, SHA, 0, 0, &a), 0);
	assert_string_equal(a.argv[RECORD_ARGV_COUNTERS + 1], "0");
	r.partial = USAGE_PARTIAL_CLIENT_GONE;
	assert_int_equal(record_redis_argv(&r, SHA, 0, 0, &a), 0);
	assert_string_equal(a.argv[RECORD_ARGV_COUNTERS + 1], "1");
	assert_string_equal(a.argv[RECORD_ARGV_COUNTERS + 2], "1");
}

static void test_argv_rejects(void **state)
{
	struct usage_record r;
	static struct rargv a;

	rec_plain(&r);
	strcpy(r.req_id, "bad id");
	assert_int_equal(record_redis_argv(&r, SHA, 0, 0, &a), -1);
	assert_int_equal(a.argc, 0);
	rec_plain(&r);
	assert_int_equal(record_redis_argv(&r, "abc", 0, 0, &a), -1);
	assert_int_equal(record_redis_argv(&r, SHA "0", 0, 0, &a), -1);
	assert_int_equal(record_redis_argv(&r, "g123456789abcdef0123456789abcdef01234567", 0, 0, &a), -1);
	assert_int_equal(record_redis_argv(&r, SHA, -1, 0, &a), -1);
	assert_int_equal(a.argc, 0);
}

/* Every string of r at its longest, every name byte needing %XX. */
static void rec_largest(struct usage_record *r)
{
	rec_plain(r);
	memset(r->req_id, ':', sizeof(r->req_id) - 1);
	memset(r->token, 0xff, sizeof(r->token) - 1);
	memset(r->group, '\t', sizeof(r->group) - 1);
	memset(r->model, ' ', sizeof(r->model) - 1);
	memset(r->upstream_model, 'u', sizeof(r->upstream_model) - 1);
	memset(r->channel, '%', sizeof(r->channel) - 1);
	memset(r->server, '\\', sizeof(r->server) - 1);
	memset(r->u.service_tier, 'x', sizeof(r->u.service_tier) - 1);
}

static void test_argv_largest(void **state)
{
	/* every string at its longest, every name byte needing %XX: fits */
	struct usage_record r;
	static struct rargv a;

	rec_largest(&r);
	r.u.input = r.u.output = r.u.cache_write_5m = r.u.cache_write_1h =
		r.u.cache_read = r.u.web_search = r.cost_nusd = r.ttfb_ms =
		r.duration_ms = RECORD_COUNT_MAX;
	r.status = 999;
	r.partial = USAGE_PARTIAL_UPSTREAM_ERROR;
	r.ts_ms = RECORD_TS_MAX_MS;
	assert_int_equal(record_redis_argv(&r, SHA, INT64_MAX, 0, &a), 0);
	/* header, keys, the number of records, the section */
	assert_int_equal(a.argc, 3 + RECORD_NKEYS + 1 + RECORD_SECTION_ARGS);
	assert_true(a.used <= sizeof(a.buf));
	assert_int_equal(a.argvlen[RECORD_ARGV_KEYS + 4],
	                 strlen(RKEY_USAGE_COMBO_PREFIX) + 3 * 64 + 1 + 3 * 256 + 1 + 3 * 64 + 1 + 8);
}

/* ---- Argument vectors ------------------------------------------------ */

/* rargv_add() writes the builders' formats itself: the same bytes as
 * snprintf, for every conversion it knows and the ones it hands over. */
static void test_rargv_formats(void **state)
{
	static struct rargv a;
	static const int64_t s64[] = { 0, 1, -1, 9, 10, -10, 1709251199999, INT64_MAX, INT64_MIN };
	static const uint64_t u64[] = { 0, 1, 10, 99, 100, UINT64_MAX, RECORD_COUNT_MAX };
	char want[128];
	size_t i;

#define SAME(...) do { \
		rargv_init(&a); \
		rargv_add(&a, __VA_ARGS__); \
		snprintf(want, sizeof(want), __VA_ARGS__); \
		assert_int_equal(a.argc, 1); \
		assert_string_equal(a.argv[0], want); \
		assert_int_equal(a.argvlen[0], strlen(want)); \
	} while (0)
	for (i = 0; i < sizeof(s64) / sizeof(s64[0]); i++) {
		SAME("%" PRId64, s64[i]);
		SAME("x%" PRId64 "y", s64[i]);
		SAME("%d", (int)s64[i]);
		SAME("%lld", (long long)s64[i]);
	}
	for (i = 0; i < sizeof(u64) / sizeof(u64[0]); i++) {
		SAME("%" PRIu64, u64[i]);
		SAME("%u", (unsigned)u64[i]);
		SAME("%llu", (unsigned long long)u64[i]);
	}
	SAME("%d", INT32_MIN);
	SAME("%s", "");
	SAME("%s%s:%s:%s", "realms:spend:", "t", "alice", "d20240229");
	SAME("EVALSHA");
	SAME("100%%");                  /* handed over */
	SAME("%05d", 42);
	SAME("%.3s", "abcdef");
	SAME("%x", 255);
#undef SAME
	/* no room: the vector fails, whichever writes */
	rargv_init(&a);
	a.used = sizeof(a.buf) - 3;
	rargv_add(&a, "%s", "abc");
	assert_int_equal(a.argc, -1);
	rargv_init(&a);
	a.used = sizeof(a.buf) - 3;
	rargv_add(&a, "%" PRIu64, (uint64_t)123);
	assert_int_equal(a.argc, -1);
	rargv_init(&a);
	a.used = sizeof(a.buf) - 3;
	rargv_add(&a, "%" PRIu64, (uint64_t)12);
	assert_int_equal(a.argc, 1);
	assert_string_equal(a.argv[0], "12");
}

/* ---- Batches --------------------------------------------------------- */

/* A batch is its records' single calls laid side by side: every key block,
 * then their number, then every section, in the order added. */
static void test_batch_layout(void **state)
{
	static struct record_batch b;
	static struct rargv one[3];
	struct usage_record r[3];
	size_t slen;
	const char *s = record_script(&slen);
	int i, j, at;

	rec_plain(&r[0]);
	rec_weird(&r[1]);
	rec_plain(&r[2]);
	strcpy(r[2].req_id, "third");
	r[2].u.input = 0;
	record_batch_init(&b);
	for (i = 0; i < 3; i++) {
		assert_int_equal(record_redis_argv(&r[i], SHA, RECORD_MAX_AGE_MS, 60, &one[i]), 0);
		assert_int_equal(record_batch_add(&b, &r[i], RECORD_MAX_AGE_MS, 60), 0);
	}
	memset(r, 0, sizeof(r));     /* copied, not referenced */
	assert_int_equal(b.n, 3);
	assert_int_equal(record_batch_argv(&b, SHA), 0);
	assert_string_equal(b.argv[0], "EVALSHA");
	assert_string_equal(b.argv[1], SHA);
	assert_string_equal(b.argv[2], "66");
	at = 3;
	for (i = 0; i < 3; i++)
		for (j = RECORD_ARGV_KEYS; j < RECORD_ARGV_ARGS; j++, at++) {
			assert_int_equal(b.argvlen[at], one[i].argvlen[j]);
			assert_memory_equal(b.argv[at], one[i].argv[j], one[i].argvlen[j]);
		}
	assert_string_equal(b.argv[at++], "3");
	for (i = 0; i < 3; i++)
		for (j = RECORD_ARGV_REC; j < one[i].argc; j++, at++) {
			assert_int_equal(b.argvlen[at], one[i].argvlen[j]);
			assert_memory_equal(b.argv[at], one[i].argv[j], one[i].argvlen[j]);
		}
	assert_int_equal(b.argc, at);
	/* the same batch as a plain EVAL */
	assert_int_equal(record_batch_argv(&b, NULL), 0);
	assert_string_equal(b.argv[0], "EVAL");
	assert_ptr_equal(b.argv[1], s);
	assert_int_equal(b.argvlen[1], slen);
	assert_int_equal(b.argc, at);
}

static void test_batch_limits(void **state)
{
	static struct record_batch b;
	struct usage_record r;
	int i;

	record_batch_init(&b);
	assert_int_equal(record_batch_argv(&b, SHA), -1);     /* empty */
	rec_plain(&r);
	for (i = 0; i < RECORD_BATCH_MAX; i++)
		assert_int_equal(record_batch_add(&b, &r, 0, 0), 0);
	assert_int_equal(record_batch_add(&b, &r, 0, 0), 1);  /* full */
	assert_int_equal(b.n, RECORD_BATCH_MAX);
	assert_int_equal(record_batch_argv(&b, "abc"), -1);
	assert_int_equal(record_batch_argv(&b, SHA), 0);
	assert_true(b.argc <= (int)(sizeof(b.argv) / sizeof(b.argv[0])));

	/* an invalid record is refused and leaves the batch as it was */
	record_batch_init(&b);
	assert_int_equal(record_batch_add(&b, &r, 0, 0), 0);
	strcpy(r.req_id, "bad id");
	assert_int_equal(record_batch_add(&b, &r, 0, 0), -1);
	assert_int_equal(b.n, 1);
	assert_int_equal(record_batch_argv(&b, SHA), 0);
	assert_string_equal(b.argv[2], "22");

	/* the largest records: an empty batch always takes one; a full
	 * buffer says so before RECORD_BATCH_MAX */
	rec_largest(&r);
	record_batch_init(&b);
	for (i = 0; record_batch_add(&b, &r, 0, 0) == 0; i++)
		assert_true(i < RECORD_BATCH_MAX);
	assert_true(b.n >= 1);
	assert_true(b.used <= sizeof(b.buf));
	assert_int_equal(record_batch_argv(&b, SHA), 0);
}

/* ---- Spool lines ----------------------------------------------------- */

static const char plain_line[] =
	"v1\thap-0001:abc.DEF_9\t1709251199999\talice\t0123456789ab\tdefault\t"
	"claude-sonnet-4-5\tclaude-sonnet-4-5-20250929\tanthropic\tanthropic--k1\t"
	"200\t1\t\t1200\t345\t100\t50\t4000\t2\tstandard\t7\t8250000\t812\t4521\t"
	"6ea60d0c\n";

static const char weird_line[] =
	"v1\tr.2\t1709164800000\tbob:the builder\t\tg\\twith\\ttabs\t"
	"vendor/model[1m]\tup\\\\stream\\nmodel\\r\t\tsrv \xc3\xa9\t529\t0\t"
	"upstream_error\t0\t1\t0\t0\t0\t0\t\t9\t0\t0\t0\t7ccec596\n";

static void test_spool_exact(void **state)
{
	struct usage_record r, back;
	char buf[RECORD_SPOOL_LINE_MAX];

	rec_plain(&r);
	assert_int_equal(record_spool_encode(&r, buf, sizeof(buf)), (int)strlen(plain_line));
	assert_string_equal(buf, plain_line);
	assert_int_equal(decode_exact(buf, strlen(buf), &back), 0);
	assert_rec_equal(&r, &back);

	rec_weird(&r);
	assert_int_equal(record_spool_encode(&r, buf, sizeof(buf)), (int)strlen(weird_line));
	assert_string_equal(buf, weird_line);
	/* without its final LF too */
	assert_int_equal(decode_exact(buf, strlen(buf) - 1, &back), 0);
	assert_rec_equal(&r, &back);
}

static void test_spool_buffer_size(void **state)
{
	struct usage_record r;
	char buf[RECORD_SPOOL_LINE_MAX];
	size_t n = strlen(plain_line);

	rec_plain(&r);
	assert_int_equal(record_spool_encode(&r, buf, n + 1), (int)n);
	assert_int_equal(record_spool_encode(&r, buf, n), -1);
	assert_string_equal(buf, "");
	assert_int_equal(record_spool_encode(&r, buf, 10), -1);
	assert_int_equal(record_spool_encode(&r, buf, 0), -1);
	strcpy(r.req_id, "");
	assert_int_equal(record_spool_encode(&r, buf, sizeof(buf)), -1);
	assert_string_equal(buf, "");
}

static void test_spool_weird_roundtrip(void **state)
{
	static const char *odd[] = {
		"", "\\", "\\\\", "\\t", "\\n", "\t", "\n", "\r", "\r\n", "\t\t\t",
		"end\\", "\\start", "a\\tb\tc\\nd\ne", "%09", "v1", "\x01\x02\x1f\x7f",
		"\xff\xfe", "caf\xc3\xa9 \xe2\x98\x83", "(none)", "::::", " ",
	};
	struct usage_record r, back;
	char buf[RECORD_SPOOL_LINE_MAX];
	size_t i;
	int n;

	for (i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		rec_plain(&r);
		strcpy(r.token, odd[i]);
		strcpy(r.group, odd[i]);
		strcpy(r.model, odd[i]);
		strcpy(r.upstream_model, odd[i]);
		strcpy(r.channel, odd[i]);
		strcpy(r.server, odd[i]);
		strcpy(r.u.service_tier, odd[i]);
		n = record_spool_encode(&r, buf, sizeof(buf));
		assert_true(n > 0);
		/* one line: only the final LF, no raw CR */
		assert_ptr_equal(memchr(buf, '\n', (size_t)n), buf + n - 1);
		assert_null(memchr(buf, '\r', (size_t)n));
		assert_int_equal(decode_exact(buf, (size_t)n, &back), 0);
		assert_rec_equal(&r, &back);
	}
}

static void rnd_str(char *dst, size_t size)
{
	size_t n = rnd() % size, i;   /* 0 .. size-1 bytes */

	if (rnd() % 4 == 0)
		n = size - 1;           /* often at the limit */
	for (i = 0; i < n; i++) {
		/* skewed towards the bytes that need escaping */
		switch (rnd() % 8) {
		case 0: dst[i] = "\\\t\n\r"[rnd() % 4]; break;
		default: dst[i] = (char)(1 + rnd() % 255); break;
		}
	}
	dst[n] = '\0';
}

static uint64_t rnd_count(void)
{
	switch (rnd() % 4) {
	case 0: return 0;
	case 1: return RECORD_COUNT_MAX;
	case 2: return rnd() % 100000;
	default: return rnd() % (RECORD_COUNT_MAX + 1);
	}
}

static void rnd_rec(struct usage_record *r)
{
	static const char idc[] = "ABCXYZabcxyz0189._:-";
	size_t n, i;

	memset(r, 0, sizeof(*r));
	n = 1 + rnd() % (sizeof(r->req_id) - 1);
	for (i = 0; i < n; i++)
		r->req_id[i] = idc[rnd() % (sizeof(idc) - 1)];
	rnd_str(r->token, sizeof(r->token));
	if (rnd() % 2)
		for (i = 0; i < 12; i++)
			r->token_id[i] = "0123456789abcdef"[rnd() % 16];
	rnd_str(r->group, sizeof(r->group));
	rnd_str(r->model, sizeof(r->model));
	rnd_str(r->upstream_model, sizeof(r->upstream_model));
	rnd_str(r->channel, sizeof(r->channel));
	rnd_str(r->server, sizeof(r->server));
	r->status = (int)(rnd() % 1000);
	r->stream = (int)(rnd() % 2);
	r->partial = (enum usage_partial)(rnd() % 5);
	r->u.input = rnd_count();
	r->u.output = rnd_count();
	r->u.cache_write_5m = rnd_count();
	r->u.cache_write_1h = rnd_count();
	r->u.cache_read = rnd_count();
	r->u.web_search = rnd_count();
	rnd_str(r->u.service_tier, sizeof(r->u.service_tier));
	r->u.flags = (unsigned)rnd();
	r->cost_nusd = rnd_count();
	r->ttfb_ms = rnd_count();
	r->duration_ms = rnd_count();
	r->ts_ms = (int64_t)(rnd() % ((uint64_t)RECORD_TS_MAX_MS + 1));
}

static void test_spool_random_roundtrip(void **state)
{
	struct usage_record r, back;
	static struct rargv a;
	char buf[RECORD_SPOOL_LINE_MAX];
	int i, n;

	for (i = 0; i < 5000; i++) {
		rnd_rec(&r);
		n = record_spool_encode(&r, buf, sizeof(buf));
		assert_true(n > 0 && n < RECORD_SPOOL_LINE_MAX);
		assert_ptr_equal(memchr(buf, '\n', (size_t)n), buf + n - 1);
		assert_int_equal(decode_exact(buf, (size_t)n - (size_t)(i % 2), &back), 0);
		assert_rec_equal(&r, &back);
		/* every valid record also has an argv */
		assert_int_equal(record_redis_argv(&r, i % 3 ? SHA : NULL, RECORD_MAX_AGE_MS, 0, &a), 0);
	}
}

static void test_spool_truncated(void **state)
{
	struct usage_record r, back;
	char buf[RECORD_SPOOL_LINE_MAX];
	size_t n, len;

	rec_weird(&r);
	n = (size_t)record_spool_encode(&r, buf, sizeof(buf));
	/* every prefix but the whole line and the line without its LF */
	for (len = 0; len + 1 < n; len++) {
		assert_int_equal(decode_exact(buf, len, &back), -1);
		/* a failed decode leaves a zeroed record */
		assert_int_equal(back.req_id[0], 0);
		assert_true(back.ts_ms == 0);
	}
	/* two lines glued together are not one */
	memcpy(buf + n, buf, n);
	assert_int_equal(decode_exact(buf, 2 * n, &back), -1);
}

static void test_spool_corrupt(void **state)
{
	struct usage_record r, back;
	char buf[RECORD_SPOOL_LINE_MAX];
	size_t n, i;
	int bit;

	rec_plain(&r);
	n = (size_t)record_spool_encode(&r, buf, sizeof(buf));
	/* any single-bit flip of any byte before the LF (CRC-32 catches all
	 * of them; a flip in the CRC field makes it mismatch or not hex) */
	for (i = 0; i + 1 < n; i++) {
		for (bit = 0; bit < 8; bit++) {
			buf[i] ^= (char)(1 << bit);
			assert_int_equal(decode_exact(buf, n, &back), -1);
			buf[i] ^= (char)(1 << bit);
		}
	}
	assert_int_equal(decode_exact(buf, n, &back), 0);
	/* an uppercase CRC is not what encode writes */
	for (i = n - 9; i < n - 1; i++)
		if (buf[i] >= 'a' && buf[i] <= 'f')
			buf[i] = (char)(buf[i] - 'a' + 'A');
	assert_int_equal(decode_exact(buf, n, &back), -1);
}

static void test_spool_crafted(void **state)
{
	/* lines with a correct CRC whose content is wrong */
#define TAIL "\t200\t1\t\t1\t2\t3\t4\t5\t6\tstandard\t7\t8\t9\t10"
#define HEAD "\tid\t1709251199999\talice\t0123456789ab\tdefault\tm\tum\tch\tsrv"
	static const char *bad[] = {
		"v2" HEAD TAIL,                         /* unknown version */
		"v0" HEAD TAIL,
		"V1" HEAD TAIL,
		"" HEAD TAIL,
		"v1" HEAD TAIL "\t11",                  /* a field too many */
		"v1" HEAD "\t200\t1\t\t1\t2\t3\t4\t5\t6\tstandard\t7\t8\t9",  /* too few */
		"v1\tid\t01709251199999\talice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\tid\t-1\talice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\tid\t+1\talice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\tid\t253402300800000\talice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\tid\t\talice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\tid\t1 \talice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\tid\t1709251199999\tal\\ice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\tid\t1709251199999\talice\\\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\tid\t1709251199999\tal\rice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\tid\t1709251199999\tal\nice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\tbad id" "\t1709251199999\talice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\t\t1709251199999\talice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1\tid\t1709251199999\talice\t0123456789AB\tdefault\tm\tum\tch\tsrv" TAIL,
		"v1" HEAD "\t1000\t1\t\t1\t2\t3\t4\t5\t6\tstandard\t7\t8\t9\t10",
		"v1" HEAD "\t200\t2\t\t1\t2\t3\t4\t5\t6\tstandard\t7\t8\t9\t10",
		"v1" HEAD "\t200\t1\tgone\t1\t2\t3\t4\t5\t6\tstandard\t7\t8\t9\t10",
		"v1" HEAD "\t200\t1\t\t9007199254740992\t2\t3\t4\t5\t6\tstandard\t7\t8\t9\t10",
		"v1" HEAD "\t200\t1\t\t18446744073709551616\t2\t3\t4\t5\t6\tstandard\t7\t8\t9\t10",
		"v1" HEAD "\t200\t1\t\t1\t2\t3\t4\t5\t6\tstandard\t4294967296\t8\t9\t10",
		"v1" HEAD "\t200\t1\t\t1\t2\t3\t4\t5\t6\tstandard-tier-name-too-long\t7\t8\t9\t10",
	};
	/* 64 chars of req_id: one too many for its field */
	static const char long_id[] =
		"v1\t0123456789012345678901234567890123456789012345678901234567890123"
		"\t1709251199999\talice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL;
	static const char ok63[] =
		"v1\t012345678901234567890123456789012345678901234567890123456789012"
		"\t1709251199999\talice\t0123456789ab\tdefault\tm\tum\tch\tsrv" TAIL;
	struct usage_record back;
	char line[RECORD_SPOOL_LINE_MAX];
	size_t i, n;

	/* the frame itself is right: the good line decodes */
	n = craft("v1" HEAD TAIL, line, sizeof(line));
	assert_int_equal(decode_exact(line, n, &back), 0);
	assert_string_equal(back.req_id, "id");
	assert_true(back.duration_ms == 10);
	assert_int_equal(back.u.flags, 7);
	n = craft(ok63, line, sizeof(line));
	assert_int_equal(decode_exact(line, n, &back), 0);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = craft(bad[i], line, sizeof(line));
		if (decode_exact(line, n, &back) != -1)
			fail_msg("accepted bad line %zu: %s", i, bad[i]);
	}
	n = craft(long_id, line, sizeof(line));
	assert_int_equal(decode_exact(line, n, &back), -1);

	/* NUL inside a field */
	n = craft("v1" HEAD TAIL, line, sizeof(line));
	line[4] = '\0';
	assert_int_equal(decode_exact(line, n, &back), -1);
	/* no CRC, short CRC, CRC not hex, CRC without its TAB */
	assert_int_equal(decode_exact("v1" HEAD TAIL "\n", strlen("v1" HEAD TAIL "\n"), &back), -1);
	assert_int_equal(decode_exact("", 0, &back), -1);
	assert_int_equal(decode_exact("\n", 1, &back), -1);
	assert_int_equal(decode_exact("\t00000000\n", 10, &back), -1);
	assert_int_equal(decode_exact("v1\tzzzzzzzz\n", 12, &back), -1);
	/* two LFs: the first is a raw LF in the last field */
	n = craft("v1" HEAD TAIL, line, sizeof(line));
	line[n] = '\n';
	assert_int_equal(decode_exact(line, n + 1, &back), -1);
#undef TAIL
#undef HEAD
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_day_vectors),
		cmocka_unit_test(test_day_every_midnight),
		cmocka_unit_test(test_day_parse),
		cmocka_unit_test(test_seg_vectors),
		cmocka_unit_test(test_seg_limits),
		cmocka_unit_test(test_seg_decode_rejects),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_partial_names),
		cmocka_unit_test(test_argv_plain),
		cmocka_unit_test(test_argv_weird_eval),
		cmocka_unit_test(test_argv_settles_in_start_window),
		cmocka_unit_test(test_argv_errors_and_status),
		cmocka_unit_test(test_argv_rejects),
		cmocka_unit_test(test_argv_largest),
		cmocka_unit_test(test_rargv_formats),
		cmocka_unit_test(test_batch_layout),
		cmocka_unit_test(test_batch_limits),
		cmocka_unit_test(test_spool_exact),
		cmocka_unit_test(test_spool_buffer_size),
		cmocka_unit_test(test_spool_weird_roundtrip),
		cmocka_unit_test(test_spool_random_roundtrip),
		cmocka_unit_test(test_spool_truncated),
		cmocka_unit_test(test_spool_corrupt),
		cmocka_unit_test(test_spool_crafted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
