/*
 * JSON scanner and helpers: valid and invalid documents with the offset and
 * kind of each error, every split point and one byte at a time, prefixes
 * (truncated, never invalid), cut-off numbers and literals, the cursor at
 * event boundaries (a member kept from the bytes consumed), nesting a
 * million deep, Unicode checks, json_each, key sets, unescaping, counts.
 *
 * Every feed is handed over in a heap copy of exactly its size, so that
 * ASan catches any read past it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <realms/json.h>

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* What a scan saw: its events serialised, how it ended. */
struct scan_log {
	char *log;
	size_t len, size;
	int rc;                     /* last json_scan() return: 0 or -1 */
	enum json_status status;
	enum json_err err;
	uint64_t err_off;
	size_t depth_max;
};

static void log_add(struct scan_log *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void log_add(struct scan_log *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	assert_true(n >= 0);
	if (l->len + (size_t)n + 1 > l->size) {
		l->size = (l->len + (size_t)n + 1) * 2;
		l->log = realloc(l->log, l->size);
		assert_non_null(l->log);
	}
	va_start(ap, fmt);
	vsnprintf(l->log + l->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	l->len += (size_t)n;
}

static void log_ev(struct scan_log *l, int r, const struct json_ev *ev)
{
	switch (r) {
	case JSON_EV_ROOT:
		log_add(l, "R%d@%llu ", ev->type, (unsigned long long)ev->start);
		break;
	case JSON_EV_BEGIN:
		log_add(l, "B%c%d@%llu ", ev->key ? 'k' : 'v', ev->type,
		        (unsigned long long)ev->start);
		break;
	case JSON_EV_KEY:
		log_add(l, "K%d@%llu-%llu ", ev->esc, (unsigned long long)ev->start,
		        (unsigned long long)ev->end);
		break;
	case JSON_EV_VALUE:
		log_add(l, "V%d.%d@%llu-%llu ", ev->type, ev->esc,
		        (unsigned long long)ev->start, (unsigned long long)ev->end);
		break;
	case JSON_EV_END:
		log_add(l, "E%d@%llu-%llu ", ev->type, (unsigned long long)ev->start,
		        (unsigned long long)ev->end);
		break;
	default:
		fail_msg("event %d", r);
	}
}

/* Scans s[0..n) cut at cuts[0..ncuts), each piece from an exactly-sized
 * heap copy. */
static void scan_cuts(const char *s, size_t n, const size_t *cuts, size_t ncuts,
                      unsigned int flags, struct scan_log *l)
{
	struct json_scanner js;
	struct json_ev ev;
	size_t i, at = 0, to;
	int r = 0;

	memset(l, 0, sizeof(*l));
	log_add(l, "%s", "");
	json_scan_init(&js, flags);
	for (i = 0; i <= ncuts && r >= 0; i++) {
		char *copy;
		const char *p, *end;

		to = i < ncuts ? cuts[i] : n;
		copy = malloc(to - at ? to - at : 1);
		assert_non_null(copy);
		memcpy(copy, s + at, to - at);
		p = copy;
		end = copy + (to - at);
		while ((r = json_scan(&js, &p, end, &ev)) > 0) {
			log_ev(l, r, &ev);
			assert_int_equal(json_scan_offset(&js), at + (size_t)(p - copy));
		}
		if (r == 0)
			assert_ptr_equal(p, end);
		free(copy);
		at = to;
	}
	l->rc = r;
	l->status = json_scan_status(&js);
	l->err = js.err;
	l->err_off = js.err_off;
	l->depth_max = js.depth_max;
	json_scan_release(&js);
}

static void scan_whole(const char *s, size_t n, unsigned int flags, struct scan_log *l)
{
	scan_cuts(s, n, NULL, 0, flags, l);
}

static void log_same(const struct scan_log *a, const struct scan_log *b)
{
	assert_string_equal(a->log, b->log);
	assert_int_equal(a->rc, b->rc);
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->err, b->err);
	assert_int_equal(a->err_off, b->err_off);
	assert_int_equal(a->depth_max, b->depth_max);
}

static enum json_status status_of(const char *s, size_t n, unsigned int flags)
{
	struct scan_log l;

	scan_whole(s, n, flags, &l);
	free(l.log);
	return l.status;
}

/* ------------------------------------------------------------------------ */
/* documents                                                                */
/* ------------------------------------------------------------------------ */

static const char *const valid[] = {
	"{}", " { } ", "[]", "\"\"", "0", "-0", "12", "-1.5e+3", "1E9", "0.25", "true",
	"false", "null", " \r\n\t7 \n",
	"{\"a\":[1,2.5,-0,0,1e10,1E-2,0.0e+1,-12.50E007,true,false,null,\"s\",{},[[]]]}",
	"{\"a\":{\"b\":{\"c\":[{\"d\":null}]}},\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\"}",
	"{\n\t\"a\"\r\n:\n1\n,\n\"b\" : [ 1 , 2 ] \n}\n",
	"{\"a\":\"\x7f\xff\xc3\xa9\"}",        /* bytes are not checked without the flag */
	"{\"\\ud800\":\"\\udfff\\ud83d\\ude00\"}",
	"[\"model\",{\"model\":[\"x\"]},\"\\u00e9\"]",
	"{\"\":\"\",\"k\":{\"\":[\"\"]}}",
};

static void test_valid(void **state)
{
	for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
		if (status_of(valid[i], strlen(valid[i]), 0) != JSON_COMPLETE)
			fail_msg("case %zu: %s", i, valid[i]);
		assert_int_not_equal(json_valid(valid[i], strlen(valid[i])), JSON_T_NONE);
	}
	assert_int_equal(json_valid("{}", 2), JSON_T_OBJECT);
	assert_int_equal(json_valid(" [1] ", 5), JSON_T_ARRAY);
	assert_int_equal(json_valid("\"x\"", 3), JSON_T_STRING);
	assert_int_equal(json_valid("-1", 2), JSON_T_NUMBER);
	assert_int_equal(json_valid("null", 4), JSON_T_NULL);
	assert_int_equal(json_valid("", 0), JSON_T_NONE);
	assert_int_equal(json_valid("{", 1), JSON_T_NONE);
}

/* Each with the error and the offset of the byte that shows it. */
static const struct {
	const char *s;
	size_t n;             /* 0: strlen */
	enum json_err err;
	size_t off;
} invalid[] = {
	{ "{\"a\":1,}", 0, JSON_ERR_TRAILING, 7 },
	{ "[1,]", 0, JSON_ERR_TRAILING, 3 },
	{ "{\"a\":1,,\"b\":2}", 0, JSON_ERR_KEY, 7 },
	{ "{,\"a\":1}", 0, JSON_ERR_KEY, 1 },
	{ "{\"a\"}", 0, JSON_ERR_COLON, 4 },
	{ "{\"a\":}", 0, JSON_ERR_VALUE, 5 },
	{ "{\"a\"::1}", 0, JSON_ERR_VALUE, 5 },
	{ "{\"a\" \"b\"}", 0, JSON_ERR_COLON, 5 },
	{ "{\"a\":1 \"b\":2}", 0, JSON_ERR_OBJ_NEXT, 7 },
	{ "[1 2]", 0, JSON_ERR_ARR_NEXT, 3 },
	{ "[1}", 0, JSON_ERR_ARR_NEXT, 2 },
	{ "{\"a\":1]", 0, JSON_ERR_OBJ_NEXT, 6 },
	{ "[,1]", 0, JSON_ERR_VALUE, 1 },
	{ "{1:2}", 0, JSON_ERR_KEY, 1 },
	{ "{'a':1}", 0, JSON_ERR_KEY, 1 },
	{ "01", 0, JSON_ERR_NUMBER, 1 },
	{ "-01", 0, JSON_ERR_NUMBER, 2 },
	{ "1.", 2, JSON_ERR_NONE, 0 },      /* cut, not wrong: see test_truncated */
	{ "[1.]", 0, JSON_ERR_NUMBER, 3 },
	{ "[.5]", 0, JSON_ERR_VALUE, 1 },
	{ "[-]", 0, JSON_ERR_NUMBER, 2 },
	{ "[1e]", 0, JSON_ERR_NUMBER, 3 },
	{ "[1e+]", 0, JSON_ERR_NUMBER, 4 },
	{ "[+1]", 0, JSON_ERR_VALUE, 1 },
	{ "[1.5.2]", 0, JSON_ERR_NUMBER, 4 },
	{ "[0x1]", 0, JSON_ERR_NUMBER, 2 },
	{ "[1a]", 0, JSON_ERR_NUMBER, 2 },
	{ "[tru]", 0, JSON_ERR_LITERAL, 4 },
	{ "[truex]", 0, JSON_ERR_LITERAL, 5 },
	{ "[nulll]", 0, JSON_ERR_LITERAL, 5 },
	{ "[True]", 0, JSON_ERR_LITERAL, 1 },
	{ "[NaN]", 0, JSON_ERR_LITERAL, 1 },
	{ "[undefined]", 0, JSON_ERR_LITERAL, 1 },
	{ "[\"x\ty\"]", 0, JSON_ERR_CTL, 3 },
	{ "[\"x\x01\"]", 0, JSON_ERR_CTL, 3 },
	{ "[\"x\x1f\"]", 0, JSON_ERR_CTL, 3 },
	{ "[\"a\\x\"]", 0, JSON_ERR_ESCAPE, 4 },
	{ "[\"\\'\"]", 0, JSON_ERR_ESCAPE, 3 },
	{ "[\"\\U0041\"]", 0, JSON_ERR_ESCAPE, 3 },
	{ "[\"\\u12\"]", 0, JSON_ERR_UESCAPE, 6 },
	{ "[\"\\u12g4\"]", 0, JSON_ERR_UESCAPE, 6 },
	{ "{}x", 0, JSON_ERR_AFTER, 2 },
	{ "{} {}", 0, JSON_ERR_AFTER, 3 },
	{ "1 2", 0, JSON_ERR_AFTER, 2 },
	{ "{}}", 0, JSON_ERR_AFTER, 2 },
	{ "}", 0, JSON_ERR_VALUE, 0 },
	{ "]", 0, JSON_ERR_VALUE, 0 },
	{ "x", 0, JSON_ERR_LITERAL, 0 },
	{ "{}\0", 3, JSON_ERR_AFTER, 2 },
	{ "\0{}", 3, JSON_ERR_VALUE, 0 },
	{ "[\"b\0c\"]", 7, JSON_ERR_CTL, 3 },
	{ "[1\0]", 4, JSON_ERR_ARR_NEXT, 2 },
	{ "{\"a\0\":1}", 8, JSON_ERR_CTL, 3 },
	{ "\xef\xbb\xbf{}", 0, JSON_ERR_VALUE, 0 },   /* no BOM in JSON */
};

static void test_invalid(void **state)
{
	struct scan_log l;

	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		size_t n = invalid[i].n ? invalid[i].n : strlen(invalid[i].s);

		scan_whole(invalid[i].s, n, 0, &l);
		if (invalid[i].err == JSON_ERR_NONE) {
			assert_int_equal(l.status, JSON_TRUNCATED);
		} else if (l.status != JSON_INVALID || l.err != invalid[i].err ||
		           l.err_off != invalid[i].off) {
			fail_msg("case %zu (%s): status %d err %d at %llu", i, invalid[i].s,
			         l.status, l.err, (unsigned long long)l.err_off);
		}
		assert_int_equal(l.rc, invalid[i].err ? -1 : 0);
		assert_int_equal(json_valid(invalid[i].s, n), JSON_T_NONE);
		free(l.log);
	}
}

/* Errors are sticky: no event after one, whatever is fed. */
static void test_error_sticky(void **state)
{
	struct json_scanner js;
	struct json_ev ev;
	const char *bad = "[1,]", *more = "{}", *p = bad;

	json_scan_init(&js, 0);
	while (json_scan(&js, &p, bad + 4, &ev) > 0)
		;
	assert_int_equal(js.err, JSON_ERR_TRAILING);
	assert_ptr_equal(p, bad + 3);
	p = more;
	assert_int_equal(json_scan(&js, &p, more + 2, &ev), -1);
	assert_ptr_equal(p, more);
	assert_int_equal(json_scan_status(&js), JSON_INVALID);
	assert_int_equal(json_scan_cut(&js, NULL), JSON_CUT_NONE);
	json_scan_release(&js);
}

/* ------------------------------------------------------------------------ */
/* splits                                                                   */
/* ------------------------------------------------------------------------ */

static const char *const split_docs[] = {
	"{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":32000,\"messages\":[{\"role\":"
	"\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello \\\"world\\\"\\n\\u00e9"
	"\\ud83d\\ude00 and a longer run of plain text to skip eight bytes at a time\"}]}],"
	"\"metadata\":{\"user_id\":\"u\"},\"temperature\":-0.5E-10,\"stream\":true,"
	"\"mod\\u0065l\":null,\"t\":[true,false,null,0,[],{}]}",
	"[1,-2.5e+3,\"a\\\\\",{\"k\":[[[]]]},true,null] ",
	"  \"just a string with \\/ escapes\\t\"  ",
	"-12.5e-7",
	"{\"a\":[1 2]}",
	"{\"a\":\"x\\u12g\"}",
	"{\"a\":{\"b\":[1,2,{\"c\":\"d\"}]},\"e\":tru",
};

/* Split in two at every byte, and one byte at a time: all the same. */
static void test_every_split(void **state)
{
	for (size_t i = 0; i < sizeof(split_docs) / sizeof(split_docs[0]); i++) {
		const char *s = split_docs[i];
		size_t n = strlen(s), k, *cuts;
		struct scan_log ref, l;

		for (unsigned int flags = 0; flags <= JSON_FL_UNICODE; flags += JSON_FL_UNICODE) {
			scan_whole(s, n, flags, &ref);
			for (k = 0; k <= n; k++) {
				scan_cuts(s, n, &k, 1, flags, &l);
				log_same(&ref, &l);
				free(l.log);
			}
			cuts = malloc(n * sizeof(*cuts));
			assert_non_null(cuts);
			for (k = 0; k < n; k++)
				cuts[k] = k + 1;
			scan_cuts(s, n, cuts, n - 1, flags, &l);
			log_same(&ref, &l);
			free(l.log);
			free(cuts);
			free(ref.log);
		}
	}
}

/* The first document's events, as a reader of the root would use them. */
static void test_events(void **state)
{
	static const struct {
		const char *s, *log;
	} others[] = {
		/* A root array reports its elements, without keys. */
		{ "[\"x\",2]", "R2@0 Bv3@1 V3.0@1-4 Bv4@5 V4.0@5-6 E2@0-7 " },
		/* A root scalar: ROOT, then END once it is known to be whole
		 * (a number touching the end is whole, but no END came). */
		{ "\"s\"", "R3@0 E3@0-3 " },
		{ "12 ", "R4@0 E4@0-2 " },
		{ "12", "R4@0 " },
		{ " null", "R7@1 " },
	};
	struct scan_log l;
	const char *s = "{\"a\":1,\"b\\n\":\"x\\\"\",\"c\":[{}],\"d\":{\"e\":[1]}} ";

	scan_whole(s, strlen(s), 0, &l);
	assert_string_equal(l.log,
		"R1@0 "
		"Bk3@1 K0@1-4 Bv4@5 V4.0@5-6 "
		"Bk3@7 K1@7-12 Bv3@13 V3.1@13-18 "
		"Bk3@19 K0@19-22 Bv2@23 V2.0@23-27 "
		"Bk3@28 K0@28-31 Bv1@32 V1.0@32-41 "
		"E1@0-42 ");
	assert_int_equal(l.status, JSON_COMPLETE);
	assert_int_equal(l.depth_max, 3);
	free(l.log);

	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		scan_whole(others[i].s, strlen(others[i].s), 0, &l);
		assert_string_equal(l.log, others[i].log);
		assert_int_equal(l.status, JSON_COMPLETE);
		free(l.log);
	}
}

/* The bytes consumed between BEGIN and VALUE are the value: a member is
 * kept whole from a document fed one byte at a time and never held. */
static void test_keep_member(void **state)
{
	const char *s = split_docs[0];
	const char *want = "{\"user_id\":\"u\"}";
	size_t n = strlen(s), kept = 0;
	char keep[64], key[64];
	size_t klen = 0;
	int capturing = 0, found = 0, is_key = 0, r;
	struct json_scanner js;
	struct json_ev ev;

	json_scan_init(&js, 0);
	for (size_t i = 0; i < n; i++) {
		char *b = malloc(1);
		const char *p = b, *q;

		assert_non_null(b);
		*b = s[i];
		do {
			q = p;
			r = json_scan(&js, &p, b + 1, &ev);
			assert_true(r >= 0);
			if (capturing && p > q) {
				char *dst = is_key ? key + klen : keep + kept;

				memcpy(dst, q, (size_t)(p - q));
				if (is_key)
					klen += (size_t)(p - q);
				else
					kept += (size_t)(p - q);
			}
			if (r == JSON_EV_BEGIN) {
				is_key = ev.key;
				capturing = ev.key || (klen == 10 && !memcmp(key, "\"metadata\"", 10));
				if (ev.key)
					klen = 0;
				else
					kept = 0;
			} else if (r == JSON_EV_KEY || r == JSON_EV_VALUE) {
				if (r == JSON_EV_VALUE && capturing) {
					assert_int_equal(kept, ev.end - ev.start);
					assert_memory_equal(keep, want, strlen(want));
					found = 1;
				}
				capturing = 0;
			}
		} while (r > 0);
		free(b);
	}
	assert_true(found);
	json_scan_release(&js);
}

/* ------------------------------------------------------------------------ */
/* prefixes                                                                 */
/* ------------------------------------------------------------------------ */

/* Every proper prefix of a valid document is truncated, never invalid, and
 * reports nothing the whole does not; a number or literal touching the end
 * is not reported. */
static void test_truncated(void **state)
{
	static const struct {
		const char *s;
		const char *has, *lacks;   /* in the event log */
	} cut_off[] = {
		{ "{\"a\":12", "Bv4@5 ", "V" },
		{ "{\"a\":true", "Bv5@5 ", "V" },
		{ "{\"a\":true,", "V5.0@5-9 ", NULL },
		{ "{\"a\":12}", "V4.0@5-7 ", NULL },
		{ "{\"a\":\"x", "Bv3@5 ", "V" },
		{ "{\"a\"", "K0@1-4 ", "Bv" },
		{ "[nul", "Bv7@1 ", "V" },
	};
	const char *s = split_docs[0];
	size_t n = strlen(s), k;
	struct scan_log whole, l;

	scan_whole(s, n, 0, &whole);
	assert_int_equal(whole.status, JSON_COMPLETE);
	for (k = 0; k < n; k++) {
		scan_whole(s, k, 0, &l);
		assert_int_equal(l.status, JSON_TRUNCATED);
		assert_int_equal(l.rc, 0);
		/* The prefix's events begin the whole one's. */
		assert_memory_equal(l.log, whole.log, l.len);
		free(l.log);
	}
	free(whole.log);

	/* A value is reported once whole: a number or literal with the byte
	 * after it. */
	for (k = 0; k < sizeof(cut_off) / sizeof(cut_off[0]); k++) {
		scan_whole(cut_off[k].s, strlen(cut_off[k].s), 0, &l);
		if (!strstr(l.log, cut_off[k].has) || (cut_off[k].lacks && strstr(l.log, cut_off[k].lacks)))
			fail_msg("case %zu (%s): %s", k, cut_off[k].s, l.log);
		free(l.log);
	}

	/* Prefixes of a root number or literal are whole if they end there. */
	assert_int_equal(status_of("1", 1, 0), JSON_COMPLETE);
	assert_int_equal(status_of("1.", 2, 0), JSON_TRUNCATED);
	assert_int_equal(status_of("1e", 2, 0), JSON_TRUNCATED);
	assert_int_equal(status_of("-", 1, 0), JSON_TRUNCATED);
	assert_int_equal(status_of("tr", 2, 0), JSON_TRUNCATED);
	assert_int_equal(status_of("", 0, 0), JSON_TRUNCATED);
	assert_int_equal(status_of("  ", 2, 0), JSON_TRUNCATED);
}

static void test_cut(void **state)
{
	static const struct {
		const char *s;
		enum json_cut cut;
		uint64_t start;
	} cases[] = {
		{ "", JSON_CUT_VALUE, 0 },
		{ "  ", JSON_CUT_VALUE, 0 },
		{ "{\"a\":", JSON_CUT_VALUE, 0 },
		{ "[1,", JSON_CUT_VALUE, 0 },
		{ "[", JSON_CUT_CONTAINER, 0 },
		{ "{", JSON_CUT_CONTAINER, 0 },
		{ "{\"a\"", JSON_CUT_CONTAINER, 0 },
		{ "{\"a\":1,", JSON_CUT_CONTAINER, 0 },
		{ "[{}", JSON_CUT_CONTAINER, 0 },
		{ "{\"a\":\"xy", JSON_CUT_STRING, 5 },
		{ "{\"ab", JSON_CUT_STRING, 1 },
		{ "[12", JSON_CUT_SCALAR, 1 },
		{ "[nu", JSON_CUT_SCALAR, 1 },
		{ "{}", JSON_CUT_NONE, 0 },
		{ "1", JSON_CUT_NONE, 0 },
		{ "[1,]", JSON_CUT_NONE, 0 },
	};
	struct json_scanner js;
	struct json_ev ev;
	uint64_t start;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *p = cases[i].s, *end = p + strlen(p);

		json_scan_init(&js, 0);
		while (json_scan(&js, &p, end, &ev) > 0)
			;
		start = 0;
		assert_int_equal(json_scan_cut(&js, &start), cases[i].cut);
		assert_int_equal(start, cases[i].start);
		json_scan_release(&js);
	}
}

/* ------------------------------------------------------------------------ */
/* depth                                                                    */
/* ------------------------------------------------------------------------ */

/* A million levels, objects and arrays mixed, in linear time; the heap
 * stack is freed by json_scan_release() (LeakSanitizer would say). */
static void test_deep(void **state)
{
	const size_t depth = 1000000;
	size_t n = 0, i;
	char *s = malloc(depth * 6 + 64);
	struct scan_log l;
	clock_t t0;

	assert_non_null(s);
	n += (size_t)sprintf(s, "{\"a\":");
	for (i = 0; i < depth; i++) {
		if (i % 2) {
			memcpy(s + n, "{\"k\":", 5);
			n += 5;
		} else {
			s[n++] = '[';
		}
	}
	s[n++] = '1';
	for (i = depth; i-- > 0; )
		s[n++] = i % 2 ? '}' : ']';
	n += (size_t)sprintf(s + n, ",\"b\":2}");
	t0 = clock();
	scan_whole(s, n, 0, &l);
	assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
	assert_int_equal(l.status, JSON_COMPLETE);
	assert_int_equal(l.depth_max, depth + 1);
	assert_non_null(strstr(l.log, "K0@1-4 "));
	assert_non_null(strstr(l.log, "V4.0@"));
	free(l.log);

	/* A wrong bracket a million deep is found. */
	s[n - 9] = ']';
	scan_whole(s, n, 0, &l);
	assert_int_equal(l.err, JSON_ERR_OBJ_NEXT);
	assert_int_equal(l.err_off, n - 9);
	free(l.log);

	/* Unclosed: truncated, at any depth. */
	scan_whole(s, n / 2, 0, &l);
	assert_int_equal(l.status, JSON_TRUNCATED);
	free(l.log);
	free(s);
}

/* ------------------------------------------------------------------------ */
/* Unicode                                                                  */
/* ------------------------------------------------------------------------ */

static void test_unicode(void **state)
{
	static const struct {
		const char *s;
		enum json_err err;     /* with JSON_FL_UNICODE */
		size_t off;
	} cases[] = {
		{ "[\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf\"]", JSON_ERR_NONE, 0 },
		{ "[\"\\ud83d\\ude00\"]", JSON_ERR_NONE, 0 },
		{ "[\"\\uD83D\\uDE00\"]", JSON_ERR_NONE, 0 },
		{ "[\"\xff\"]", JSON_ERR_UTF8, 2 },
		{ "[\"\x80\"]", JSON_ERR_UTF8, 2 },
		{ "[\"\xc0\x80\"]", JSON_ERR_UTF8, 2 },      /* overlong NUL */
		{ "[\"\xc1\xbf\"]", JSON_ERR_UTF8, 2 },
		{ "[\"\xe0\x9f\xbf\"]", JSON_ERR_UTF8, 3 },  /* overlong */
		{ "[\"\xed\xa0\x80\"]", JSON_ERR_UTF8, 3 },  /* a surrogate */
		{ "[\"\xf0\x8f\xbf\xbf\"]", JSON_ERR_UTF8, 3 },
		{ "[\"\xf4\x90\x80\x80\"]", JSON_ERR_UTF8, 3 },  /* past U+10FFFF */
		{ "[\"\xf5\x80\x80\x80\"]", JSON_ERR_UTF8, 2 },
		{ "[\"\xc3\"]", JSON_ERR_UTF8, 3 },
		{ "[\"\xe2\x82\"]", JSON_ERR_UTF8, 4 },
		{ "[\"\\ud800\"]", JSON_ERR_SURROGATE, 8 },
		{ "[\"\\udc00\"]", JSON_ERR_SURROGATE, 5 },
		{ "[\"\\ud800x\"]", JSON_ERR_SURROGATE, 8 },
		{ "[\"\\ud800\\n\"]", JSON_ERR_SURROGATE, 9 },
		{ "[\"\\ud800\\u0041\"]", JSON_ERR_SURROGATE, 11 },
		{ "[\"\\ud800\\ud800\"]", JSON_ERR_SURROGATE, 11 },
		{ "[\"\\ud800\\uDbff\"]", JSON_ERR_SURROGATE, 11 },
		{ "[\"\\ud800\\uDfff\\uDBFF\\uDC00\"]", JSON_ERR_NONE, 0 },
	};
	struct scan_log l;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = strlen(cases[i].s);

		scan_whole(cases[i].s, n, JSON_FL_UNICODE, &l);
		if (l.err != cases[i].err || (l.err && l.err_off != cases[i].off))
			fail_msg("case %zu: err %d at %llu", i, l.err, (unsigned long long)l.err_off);
		free(l.log);
		/* Without the flag, the grammar alone: all valid. */
		assert_int_equal(status_of(cases[i].s, n, 0), JSON_COMPLETE);
	}
	/* A sequence cut by the end of a prefix is not wrong yet. */
	assert_int_equal(status_of("[\"\xf0\x9f", 4, JSON_FL_UNICODE), JSON_TRUNCATED);
	assert_int_equal(status_of("[\"\\ud83d\\u", 10, JSON_FL_UNICODE), JSON_TRUNCATED);
}

/* The string scanner reads runs of plain bytes many at a time: each byte
 * that ends a run is found at every offset in a long string, in both
 * modes, and the bytes around it are read as they are. */
static void test_string_runs(void **state)
{
	static const struct {
		const char *x;           /* put at the offset */
		enum json_err uni, any;  /* with JSON_FL_UNICODE, without */
	} cases[] = {
		{ "\\n", JSON_ERR_NONE, JSON_ERR_NONE },
		{ "\\\"", JSON_ERR_NONE, JSON_ERR_NONE },
		{ "\"x", JSON_ERR_AFTER, JSON_ERR_AFTER },   /* ends the string */
		{ "\x01", JSON_ERR_CTL, JSON_ERR_CTL },
		{ "\x1f", JSON_ERR_CTL, JSON_ERR_CTL },
		{ "\x20", JSON_ERR_NONE, JSON_ERR_NONE },
		{ "\x7f", JSON_ERR_NONE, JSON_ERR_NONE },
		{ "\xc3\xa9", JSON_ERR_NONE, JSON_ERR_NONE },
		{ "\xe2\x82\xac", JSON_ERR_NONE, JSON_ERR_NONE },
		{ "\x80", JSON_ERR_UTF8, JSON_ERR_NONE },
		{ "\xff", JSON_ERR_UTF8, JSON_ERR_NONE },
	};
	char buf[128];
	struct scan_log l;

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		size_t xl = strlen(cases[c].x);

		for (size_t at = 0; at < 40; at++) {
			size_t n = 0;

			buf[n++] = '"';
			memset(buf + n, 'a', at);
			n += at;
			memcpy(buf + n, cases[c].x, xl);
			n += xl;
			memset(buf + n, 'b', 37);
			n += 37;
			buf[n++] = '"';
			for (int u = 0; u < 2; u++) {
				enum json_err want = u ? cases[c].uni : cases[c].any;

				scan_whole(buf, n, u ? JSON_FL_UNICODE : 0, &l);
				if (l.err != want)
					fail_msg("case %zu at %zu (%s): err %d, want %d", c, at,
					         u ? "unicode" : "grammar", l.err, want);
				if (want && l.err_off != 1 + at + (want == JSON_ERR_AFTER))
					fail_msg("case %zu at %zu: error at %llu", c, at,
					         (unsigned long long)l.err_off);
				free(l.log);
			}
		}
	}
}

/* ------------------------------------------------------------------------ */
/* json_each                                                                */
/* ------------------------------------------------------------------------ */

static void each_log(void *arg, const struct json_member *m)
{
	struct scan_log *l = arg;

	log_add(l, "%.*s%s%d:%.*s%s|", m->key ? (int)m->key_len : 1, m->key ? m->key : "-",
	        m->key_esc ? "*" : "", m->type, (int)m->val_len, m->val, m->val_esc ? "*" : "");
}

static int each(const char *s, struct scan_log *l)
{
	size_t n = strlen(s);
	char *copy = malloc(n ? n : 1);
	int r;

	assert_non_null(copy);
	memcpy(copy, s, n);
	memset(l, 0, sizeof(*l));
	log_add(l, "%s", "");
	r = json_each(copy, n, each_log, l);
	free(copy);
	return r;
}

static void test_each(void **state)
{
	struct scan_log l;

	assert_int_equal(each(" {\"a\":1,\"b\\u0062\":\"x\\n\",\"c\":{\"d\":[2]},\"e\":[]} ", &l),
	                 JSON_T_OBJECT);
	assert_string_equal(l.log, "\"a\"4:1|\"b\\u0062\"*3:\"x\\n\"*|\"c\"1:{\"d\":[2]}|\"e\"2:[]|");
	free(l.log);
	assert_int_equal(each("[{\"a\":1},null,\"s\"]", &l), JSON_T_ARRAY);
	assert_string_equal(l.log, "-1:{\"a\":1}|-7:null|-3:\"s\"|");
	free(l.log);
	assert_int_equal(each("{}", &l), JSON_T_OBJECT);
	assert_string_equal(l.log, "");
	free(l.log);

	/* Not one whole container: -1, though members before the fault were
	 * passed on. */
	assert_int_equal(each("{\"a\":1,", &l), -1);
	assert_string_equal(l.log, "\"a\"4:1|");
	free(l.log);
	assert_int_equal(each("{\"a\":1}x", &l), -1);
	free(l.log);
	assert_int_equal(each("\"s\"", &l), -1);
	free(l.log);
	assert_int_equal(each("5", &l), -1);
	free(l.log);
	assert_int_equal(each("", &l), -1);
	free(l.log);
}

/* ------------------------------------------------------------------------ */
/* key sets                                                                 */
/* ------------------------------------------------------------------------ */

/* Whether the keys of a root object (its KEY events) hold a duplicate. */
static int has_dup(const char *s)
{
	const char *p = s, *end = s + strlen(s);
	struct json_keys k;
	struct json_scanner js;
	struct json_ev ev;
	int r, d;

	json_scan_init(&js, 0);
	json_keys_init(&k);
	while ((r = json_scan(&js, &p, end, &ev)) > 0)
		if (r == JSON_EV_KEY)
			assert_int_equal(json_keys_add(&k, s + ev.start, ev.end - ev.start), 0);
	assert_int_equal(r, 0);
	d = json_keys_dup(&k);
	json_keys_release(&k);
	json_scan_release(&js);
	return d;
}

static void test_keys(void **state)
{
	static const char *dups[] = {
		"{\"model\":\"a\",\"model\":\"b\"}",
		"{\"model\":\"a\",\"mod\\u0065l\":\"b\"}",
		"{\"\\u006d\\u006F\\u0064\\u0065\\u006c\":\"a\",\"model\":\"b\"}",
		"{\"caf\\u00e9\":1,\"caf\xc3\xa9\":2}",
		"{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}",
		"{\"a\\/b\":1,\"a/b\":2}",
		"{\"\\ud800\":1,\"\\uD800\":2}",
		"{\"\":1,\"\":2}",
		"{\"a\\n\":1,\"a\\u000a\":2}",
		"{\"x\":{\"a\":1},\"y\":2,\"x\":3}",
	};
	static const char *distinct[] = {
		"{\"a\":1,\"A\":2,\"ab\":3,\"a\\u0000\":4,\"\":5,\"b\":{\"a\":6,\"a\":7}}",
		"{\"model\":\"a\",\"models\":\"b\",\"mode\":\"c\",\"model \":1}",
		"{\"\\ud800\":1,\"\\udc00\":2,\"\\ud800\\udc00\":3}",
		"{}",
		"{\"only\":1}",
	};

	for (size_t i = 0; i < sizeof(dups) / sizeof(dups[0]); i++)
		if (has_dup(dups[i]) != 1)
			fail_msg("dup case %zu: %s", i, dups[i]);
	for (size_t i = 0; i < sizeof(distinct) / sizeof(distinct[0]); i++)
		if (has_dup(distinct[i]) != 0)
			fail_msg("distinct case %zu: %s", i, distinct[i]);
}

/* Many keys, then one repeated: sorted in O(n log n). */
static void test_many_keys(void **state)
{
	const size_t nkeys = 100000;
	struct json_keys k;
	char tok[32];
	int n;

	json_keys_init(&k);
	for (size_t i = 0; i < nkeys; i++) {
		n = snprintf(tok, sizeof(tok), "\"k%zu\"", i * 7919 % 1000003);
		assert_int_equal(json_keys_add(&k, tok, (size_t)n), 0);
	}
	assert_int_equal(json_keys_dup(&k), 0);
	n = snprintf(tok, sizeof(tok), "\"k\\u0030%zu\"", (size_t)0);   /* "k00" */
	assert_int_equal(json_keys_add(&k, tok, (size_t)n), 0);
	assert_int_equal(json_keys_dup(&k), 0);
	n = snprintf(tok, sizeof(tok), "\"\\u006b%zu\"", (size_t)(1234 * 7919 % 1000003));
	assert_int_equal(json_keys_add(&k, tok, (size_t)n), 0);
	assert_int_equal(json_keys_dup(&k), 1);
	json_keys_release(&k);
}

/* ------------------------------------------------------------------------ */
/* strings and numbers                                                      */
/* ------------------------------------------------------------------------ */

static void test_unescape(void **state)
{
	static const struct {
		const char *in;
		const char *out;
		size_t out_len;
		unsigned int flags;
	} cases[] = {
		{ "plain", "plain", 5, 0 },
		{ "", "", 0, 0 },
		{ "a\\\"b\\\\c\\/d", "a\"b\\c/d", 7, 0 },
		{ "\\b\\f\\n\\r\\t", "\b\f\n\r\t", 5, JSON_UNESC_CTL },
		{ "caf\\u00e9", "caf\xc3\xa9", 5, 0 },
		{ "\\u20AC", "\xe2\x82\xac", 3, 0 },
		{ "x\\ud83d\\ude00y", "x\xf0\x9f\x98\x80y", 6, 0 },
		{ "\\u0000", "\0", 1, JSON_UNESC_CTL | JSON_UNESC_NUL },
		{ "\\u001f", "\x1f", 1, JSON_UNESC_CTL },
		{ "\\ud800", "\xed\xa0\x80", 3, JSON_UNESC_SURROGATE },
		{ "\\ude00x", "\xed\xb8\x80x", 4, JSON_UNESC_SURROGATE },
		{ "\\ud83d\\u0041", "\xed\xa0\xbd" "A", 4, JSON_UNESC_SURROGATE },
		{ "raw\x01", "raw\x01", 4, JSON_UNESC_CTL },
		{ "bad\\x", "bad", 3, JSON_UNESC_BAD },
		{ "bad\\u12", "bad", 3, JSON_UNESC_BAD },
		{ "end\\", "end", 3, JSON_UNESC_BAD },
	};
	unsigned int fl;
	char out[32], small[4];
	size_t n;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t in_len = strlen(cases[i].in);

		n = json_unescape(cases[i].in, in_len, out, sizeof(out), &fl);
		assert_int_equal(n, cases[i].out_len);
		assert_memory_equal(out, cases[i].out, n);
		assert_int_equal(fl, cases[i].flags);
		assert_true(n <= in_len);
	}
	/* A short output is filled, the rest counted. */
	memset(small, 'z', sizeof(small));
	n = json_unescape("ab\\u00e9cd", 10, small, 3, &fl);
	assert_int_equal(n, 6);
	assert_memory_equal(small, "ab\xc3z", 4);
}

static void test_str_is(void **state)
{
	assert_true(json_str_is("\"model\"", 7, "model"));
	assert_true(json_str_is("\"mod\\u0065l\"", 12, "model"));
	assert_true(json_str_is("\"\"", 2, ""));
	assert_false(json_str_is("\"model\"", 7, "mode"));
	assert_false(json_str_is("\"models\"", 8, "model"));
	assert_false(json_str_is("\"model\\u0000\"", 13, "model"));
	assert_false(json_str_is("\"Model\"", 7, "model"));
	assert_false(json_str_is("\"\"", 2, "x"));
}

static void test_u64(void **state)
{
	static const char *const bad[] = {
		"-1", "1.0", "1e3", "1E3", "0.5", "01", "-0", "true", "null", "\"5\"", "",
		"18446744073709551616", "99999999999999999999999",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(json_u64(bad[i], strlen(bad[i]), &v), -1);
	assert_int_equal(json_u64("0", 1, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(json_u64("32000", 5, &v), 0);
	assert_int_equal(v, 32000);
	assert_int_equal(json_u64("18446744073709551615", 20, &v), 0);
	assert_int_equal(v, UINT64_MAX);
}

static void test_err_str(void **state)
{
	for (int e = JSON_ERR_NONE; e <= JSON_ERR_NOMEM; e++)
		assert_string_not_equal(json_err_str((enum json_err)e), "unknown error");
	assert_string_equal(json_err_str(JSON_ERR_NUMBER), "invalid number");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_error_sticky),
		cmocka_unit_test(test_every_split),
		cmocka_unit_test(test_events),
		cmocka_unit_test(test_keep_member),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_cut),
		cmocka_unit_test(test_deep),
		cmocka_unit_test(test_unicode),
		cmocka_unit_test(test_string_runs),
		cmocka_unit_test(test_each),
		cmocka_unit_test(test_keys),
		cmocka_unit_test(test_many_keys),
		cmocka_unit_test(test_unescape),
		cmocka_unit_test(test_str_is),
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_err_str),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
