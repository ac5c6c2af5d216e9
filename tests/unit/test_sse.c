/*
 * SSE parser: a realistic Anthropic stream fed whole, split at every byte
 * and one byte at a time, in every line-ending style; multi-line data,
 * comments and ignored fields, unknown events, a 1 MB content delta that
 * must not be buffered, unnamed and oversized events, a BOM, an error
 * event mid-stream, a callback that stops the parser, and gaps (bytes the
 * tap left out) at many cut points, through the parser and the meter.
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

#include <cmocka.h>

#include <realms/meter.h>
#include <realms/sse.h>
#include <realms/usage.h>

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* What a run saw: every dispatched event serialised, and the usage. */
struct run {
	char *log;
	size_t log_len, log_size;
	struct usage u;
	int want_all;
	int stop_after;     /* on_event returns 1 at this event (1-based), 0 never */
	int seen;
	int usage_rc_min;   /* smallest usage_on_sse_event() return */
};

static void log_add(struct run *r, const char *s, size_t n)
{
	if (r->log_len + n + 1 > r->log_size) {
		r->log_size = (r->log_len + n + 1) * 2;
		r->log = realloc(r->log, r->log_size);
		assert_non_null(r->log);
	}
	memcpy(r->log + r->log_len, s, n);
	r->log_len += n;
	r->log[r->log_len] = 0;
}

static int want_usage(void *arg, const char *name)
{
	struct run *r = arg;

	if (r->want_all)
		return 1;
	return strcmp(name, "message_start") == 0 || strcmp(name, "message_delta") == 0 ||
	       strcmp(name, "message_stop") == 0 || strcmp(name, "error") == 0;
}

static int on_event(void *arg, const char *name, const char *data, size_t len)
{
	struct run *r = arg;
	int rc;

	assert_true(len <= SSE_DATA_MAX);
	assert_int_equal(data[len], 0);
	log_add(r, "<", 1);
	log_add(r, name, strlen(name));
	log_add(r, "|", 1);
	log_add(r, data, len);
	log_add(r, ">", 1);
	rc = usage_on_sse_event(&r->u, name, data, len);
	if (rc < r->usage_rc_min)
		r->usage_rc_min = rc;
	r->seen++;
	return r->stop_after && r->seen == r->stop_after;
}

static void run_init(struct run *r, int want_all)
{
	memset(r, 0, sizeof(*r));
	usage_init(&r->u);
	r->want_all = want_all;
}

static void run_free(struct run *r)
{
	free(r->log);
}

static struct sse_parser *parser_new(struct run *r)
{
	struct sse_parser *p = malloc(sizeof(*p));

	assert_non_null(p);
	sse_init(p, want_usage, on_event, r);
	return p;
}

/* Feeds s[0..n) from an exactly-sized heap copy. */
static long feed(struct sse_parser *p, const char *s, size_t n)
{
	char *copy = malloc(n ? n : 1);
	long rc;

	assert_non_null(copy);
	memcpy(copy, s, n);
	rc = sse_feed(p, copy, n);
	free(copy);
	return rc;
}

/* Feeds a string literal (NULs inside it included). */
#define FEED_LIT(p, lit)  feed((p), (lit), sizeof(lit) - 1)

/* Everything a run produced, for comparing two runs. */
struct outcome {
	char *log;
	struct usage u;
	uint64_t bytes, events, dispatched, skipped, dropped;
	int pending;
};

static void outcome_take(struct outcome *o, struct run *r, const struct sse_parser *p)
{
	o->log = r->log ? r->log : strdup("");
	r->log = NULL;
	o->u = r->u;
	o->bytes = p->bytes;
	o->events = p->events;
	o->dispatched = p->dispatched;
	o->skipped = p->skipped;
	o->dropped = p->dropped;
	o->pending = sse_pending(p);
}

static void outcome_same(const struct outcome *a, const struct outcome *b)
{
	assert_string_equal(a->log, b->log);
	assert_memory_equal(&a->u, &b->u, sizeof(a->u));
	assert_int_equal(a->bytes, b->bytes);
	assert_int_equal(a->events, b->events);
	assert_int_equal(a->dispatched, b->dispatched);
	assert_int_equal(a->skipped, b->skipped);
	assert_int_equal(a->dropped, b->dropped);
	assert_int_equal(a->pending, b->pending);
}

/* The stream fed in the given pieces: cuts[0..ncuts) are split offsets. */
static void run_cuts(const char *s, size_t n, const size_t *cuts, size_t ncuts,
                     int want_all, struct outcome *o)
{
	struct run r;
	struct sse_parser *p;
	size_t i, at = 0, to;

	run_init(&r, want_all);
	p = parser_new(&r);
	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : n;
		assert_int_equal(feed(p, s + at, to - at), (long)(to - at));
		at = to;
	}
	assert_int_equal(r.usage_rc_min, 0);
	outcome_take(o, &r, p);
	free(p);
	run_free(&r);
}

static void run_whole(const char *s, size_t n, int want_all, struct outcome *o)
{
	run_cuts(s, n, NULL, 0, want_all, o);
}

/* Rewrites the \n line ends of s: style 0 \n, 1 \r\n, 2 \r, 3 mixed. */
static char *restyle(const char *s, int style, size_t *out_len)
{
	static const char *const mix[] = { "\n", "\r\n", "\r" };
	size_t n = strlen(s), o = 0, k = 0;
	char *out = malloc(2 * n + 1);
	const char *end;

	assert_non_null(out);
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '\n') {
			out[o++] = s[i];
			continue;
		}
		switch (style) {
		case 0:  end = "\n";   break;
		case 1:  end = "\r\n"; break;
		case 2:  end = "\r";   break;
		default: end = mix[k++ % 3]; break;
		}
		memcpy(out + o, end, strlen(end));
		o += strlen(end);
	}
	out[o] = 0;
	*out_len = o;
	return out;
}

/* ------------------------------------------------------------------------ */
/* the stream                                                               */
/* ------------------------------------------------------------------------ */

/* As the Messages API sends it (one space after the colons, as the API
 * does; ids shortened). The message_delta repeats message_start's input
 * and cache counts without the cache split. */
static const char stream[] =
	"event: message_start\n"
	"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01XFDUDYJg\","
	"\"type\":\"message\",\"role\":\"assistant\",\"content\":[],"
	"\"model\":\"claude-sonnet-4-5-20250929\",\"stop_reason\":null,"
	"\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,"
	"\"cache_creation_input_tokens\":3000,\"cache_read_input_tokens\":12000,"
	"\"cache_creation\":{\"ephemeral_5m_input_tokens\":1000,"
	"\"ephemeral_1h_input_tokens\":2000},\"output_tokens\":2,"
	"\"service_tier\":\"standard\"}}}\n"
	"\n"
	"event: content_block_start\n"
	"data: {\"type\":\"content_block_start\",\"index\":0,"
	"\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
	"\n"
	"event: ping\n"
	"data: {\"type\": \"ping\"}\n"
	"\n"
	"event: content_block_delta\n"
	"data: {\"type\":\"content_block_delta\",\"index\":0,"
	"\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n"
	"\n"
	"event: content_block_delta\n"
	"data: {\"type\":\"content_block_delta\",\"index\":0,"
	"\"delta\":{\"type\":\"text_delta\",\"text\":\", world\\n\\nsecond line\"}}\n"
	"\n"
	"event: content_block_delta\n"
	"data: {\"type\":\"content_block_delta\",\"index\":0,"
	"\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}\n"
	"\n"
	"event: content_block_stop\n"
	"data: {\"type\":\"content_block_stop\",\"index\":0}\n"
	"\n"
	"event: message_delta\n"
	"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
	"\"stop_sequence\":null},\"usage\":{\"input_tokens\":472,"
	"\"cache_creation_input_tokens\":3000,\"cache_read_input_tokens\":12000,"
	"\"output_tokens\":15,\"server_tool_use\":{\"web_search_requests\":1}}}\n"
	"\n"
	"event: message_stop\n"
	"data: {\"type\":\"message_stop\"}\n"
	"\n";

static void check_stream_usage(const struct usage *u)
{
	assert_int_equal(u->input, 472);
	assert_int_equal(u->output, 15);
	assert_int_equal(u->cache_write_5m, 1000);
	assert_int_equal(u->cache_write_1h, 2000);
	assert_int_equal(u->cache_read, 12000);
	assert_int_equal(u->web_search, 1);
	assert_string_equal(u->service_tier, "standard");
	assert_int_equal(u->flags, USAGE_FL_START | USAGE_FL_DELTA | USAGE_FL_STOP);
}

/* ------------------------------------------------------------------------ */
/* tests                                                                    */
/* ------------------------------------------------------------------------ */

static void test_stream_whole(void **state)
{
	struct outcome o;

	run_whole(stream, sizeof(stream) - 1, 0, &o);
	check_stream_usage(&o.u);
	assert_int_equal(o.bytes, sizeof(stream) - 1);
	assert_int_equal(o.events, 9);
	assert_int_equal(o.dispatched, 3);
	assert_int_equal(o.skipped, 6);
	assert_int_equal(o.dropped, 0);
	assert_false(o.pending);
	assert_non_null(strstr(o.log, "<message_start|{\"type\":\"message_start\""));
	assert_non_null(strstr(o.log, "<message_stop|{\"type\":\"message_stop\"}>"));
	assert_null(strstr(o.log, "content_block"));
	free(o.log);

	/* Wanting everything: content comes through intact. */
	run_whole(stream, sizeof(stream) - 1, 1, &o);
	check_stream_usage(&o.u);
	assert_int_equal(o.dispatched, 9);
	assert_non_null(strstr(o.log, "<ping|{\"type\": \"ping\"}>"));
	assert_non_null(strstr(o.log, "\"text\":\", world\\n\\nsecond line\"}}>"));
	free(o.log);
}

/* Every line-ending style, fed whole, split in two at every byte, and one
 * byte at a time, with and without the content wanted: all the same. */
static void test_stream_every_split(void **state)
{
	struct outcome ref, o;
	size_t n, k, *cuts;
	char *s;

	for (int want_all = 0; want_all < 2; want_all++) {
		run_whole(stream, sizeof(stream) - 1, want_all, &ref);
		for (int style = 0; style < 4; style++) {
			s = restyle(stream, style, &n);
			run_whole(s, n, want_all, &o);
			ref.bytes = o.bytes;   /* lengths differ by style */
			outcome_same(&ref, &o);
			free(o.log);

			for (k = 0; k <= n; k++) {
				run_cuts(s, n, &k, 1, want_all, &o);
				outcome_same(&ref, &o);
				free(o.log);
			}

			cuts = malloc(n * sizeof(*cuts));
			assert_non_null(cuts);
			for (k = 0; k < n; k++)
				cuts[k] = k + 1;
			run_cuts(s, n, cuts, n - 1, want_all, &o);
			outcome_same(&ref, &o);
			free(o.log);
			free(cuts);
			free(s);
		}
		check_stream_usage(&ref.u);
		free(ref.log);
	}
}

/* \r then \n in the next feed is one line end; \r\r is two (a blank line). */
static void test_cr_across_feeds(void **state)
{
	struct run r;
	struct sse_parser *p;

	run_init(&r, 1);
	p = parser_new(&r);
	FEED_LIT(p, "event: a\r");
	FEED_LIT(p, "\ndata: 1\r");
	FEED_LIT(p, "\n\r");
	FEED_LIT(p, "\n");
	assert_string_equal(r.log, "<a|1>");
	/* \r\r: the second \r is a blank line. */
	FEED_LIT(p, "data: 2\r\r");
	assert_string_equal(r.log, "<a|1><|2>");
	/* A \n after \r\r is a third line end: another blank line, no event. */
	FEED_LIT(p, "\n");
	assert_int_equal(p->events, 2);
	assert_false(sse_pending(p));
	free(p);
	run_free(&r);
}

static void test_multiline_data(void **state)
{
	static const char s[] =
		"data: first\n"
		"data:second\n"
		"data\n"                 /* no colon: an empty data line */
		"data:\n"
		"data:  two spaces\n"    /* only one space is removed */
		"\n"
		"data: x\r\n"
		"data: y\r"
		"\r\n";
	struct outcome o;

	run_whole(s, sizeof(s) - 1, 1, &o);
	assert_string_equal(o.log, "<|first\nsecond\n\n\n two spaces><|x\ny>");
	assert_int_equal(o.events, 2);
	free(o.log);
}

static void test_comments_and_ignored_fields(void **state)
{
	static const char s[] =
		": this is a comment\n"
		":\n"
		"id: 42\n"
		"retry: 1000\n"
		"event: custom\n"
		": another comment between lines\n"
		"Data: not data (field names are case-sensitive)\n"
		"data : not data either\n"
		"dataX: nor this\n"
		"verylongfieldname: ignored\n"
		"data: value\n"
		"id\n"
		"\n"
		": comment-only block\n"
		"\n"
		"event: lonely\n"       /* a name without data: no event */
		"\n"
		"id: 1\n"
		"\n";
	struct outcome o;

	run_whole(s, sizeof(s) - 1, 1, &o);
	assert_string_equal(o.log, "<custom|value>");
	assert_int_equal(o.events, 1);
	assert_int_equal(o.dispatched, 1);
	free(o.log);
}

/* The last "event:" line of an event names it. */
static void test_event_renamed(void **state)
{
	static const char s[] =
		"event: first\nevent: second\ndata: 1\n\n"
		/* named unwanted after data was buffered: discarded */
		"event: message_start\ndata: {}\nevent: ping\n\n"
		/* unwanted, then wanted after data was skipped: dropped */
		"event: ping\ndata: 2\nevent: message_stop\ndata: 3\n\n"
		/* unwanted, then wanted before any data: dispatched */
		"event: ping\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";
	struct outcome o;

	run_whole(s, sizeof(s) - 1, 0, &o);
	assert_string_equal(o.log, "<message_stop|{\"type\":\"message_stop\"}>");
	assert_int_equal(o.events, 4);
	assert_int_equal(o.skipped, 2);
	assert_int_equal(o.dropped, 1);
	assert_int_equal(o.dispatched, 1);
	assert_int_equal(o.u.flags, USAGE_FL_STOP);
	free(o.log);
}

static void test_unknown_events(void **state)
{
	static const char s[] =
		"event: future_event\ndata: {\"type\":\"future_event\",\"usage\":{\"output_tokens\":9}}\n\n"
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":"
		"{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n"
		"event: content_block_delta\ndata: {\"usage\":{\"output_tokens\":99}}\n\n";
	struct outcome o;

	/* Not wanted: skipped. */
	run_whole(s, sizeof(s) - 1, 0, &o);
	assert_int_equal(o.skipped, 2);
	assert_int_equal(o.u.input, 7);
	assert_int_equal(o.u.output, 1);
	free(o.log);
	/* Wanted: passed on, and usage ignores them. */
	run_whole(s, sizeof(s) - 1, 1, &o);
	assert_int_equal(o.dispatched, 3);
	assert_int_equal(o.u.input, 7);
	assert_int_equal(o.u.output, 1);
	assert_int_equal(o.u.flags, USAGE_FL_START);
	free(o.log);
}

/* A 1 MB content delta is skipped: its data never enters the buffer. */
static void test_big_delta_skipped(void **state)
{
	static const char head[] =
		"event: content_block_delta\n"
		"data: {\"type\":\"content_block_delta\",\"index\":0,"
		"\"delta\":{\"type\":\"text_delta\",\"text\":\"";
	static const char tail[] = "\"}}\n\n";
	size_t big = 1024 * 1024, n, hl = sizeof(head) - 1, tl = sizeof(tail) - 1;
	size_t pre = sizeof(stream) - 1 - strlen(strstr(stream, "event: message_delta"));
	struct run r;
	struct sse_parser *p;
	char *s;

	/* message_start etc., the big delta, message_delta, message_stop. */
	n = pre + hl + big + tl + (sizeof(stream) - 1 - pre);
	s = malloc(n);
	assert_non_null(s);
	memcpy(s, stream, pre);
	memcpy(s + pre, head, hl);
	memset(s + pre + hl, 'a', big);
	memcpy(s + pre + hl + big, tail, tl);
	memcpy(s + pre + hl + big + tl, stream + pre, sizeof(stream) - 1 - pre);

	for (size_t chunk = 1 << 12; chunk <= n; chunk <<= 4) {
		run_init(&r, 0);
		p = parser_new(&r);
		for (size_t at = 0; at < n; at += chunk)
			feed(p, s + at, n - at < chunk ? n - at : chunk);
		check_stream_usage(&r.u);
		assert_int_equal(p->events, 10);
		assert_int_equal(p->skipped, 7);
		assert_int_equal(p->dropped, 0);
		/* Never more than the largest wanted event held at once. */
		assert_true(p->data_hwm < 1024);
		free(p);
		run_free(&r);
	}

	/* Wanting everything, the same delta overflows and is dropped;
	 * the stream goes on. */
	run_init(&r, 1);
	p = parser_new(&r);
	feed(p, s, n);
	check_stream_usage(&r.u);
	assert_int_equal(p->dropped, 1);
	assert_int_equal(p->dispatched, 9);
	assert_true(p->data_hwm <= SSE_DATA_MAX);
	free(p);
	run_free(&r);
	free(s);
}

/* Data before any name is buffered up to SSE_DATA_MAX, then dropped. */
static void test_unnamed_events(void **state)
{
	static const char small[] =
		"data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":33}}\n\n";
	size_t n = SSE_DATA_MAX + 100;
	struct run r;
	struct sse_parser *p;
	char *s;

	run_init(&r, 0);
	p = parser_new(&r);
	feed(p, small, sizeof(small) - 1);
	/* Dispatched with name "", and usage reads the data's type. */
	assert_int_equal(p->dispatched, 1);
	assert_int_equal(r.u.output, 33);
	assert_int_equal(r.u.flags, USAGE_FL_DELTA);

	/* Exactly SSE_DATA_MAX bytes fit. */
	s = malloc(n);
	assert_non_null(s);
	memcpy(s, "data: ", 6);
	memset(s + 6, 'x', SSE_DATA_MAX);
	memcpy(s + 6 + SSE_DATA_MAX, "\n\n", 2);
	feed(p, s, 6 + SSE_DATA_MAX + 2);
	assert_int_equal(p->dispatched, 2);
	assert_int_equal(p->data_hwm, SSE_DATA_MAX);

	/* One more byte does not: dropped, and the next event is fine. */
	memset(s + 6, 'x', SSE_DATA_MAX + 1);
	memcpy(s + 6 + SSE_DATA_MAX + 1, "\n\n", 2);
	feed(p, s, 6 + SSE_DATA_MAX + 3);
	assert_int_equal(p->dispatched, 2);
	assert_int_equal(p->dropped, 1);

	/* Two lines that fit alone but not with the joining \n. */
	memcpy(s, "data: ", 6);
	memset(s + 6, 'y', SSE_DATA_MAX / 2);
	memcpy(s + 6 + SSE_DATA_MAX / 2, "\n", 1);
	feed(p, s, 6 + SSE_DATA_MAX / 2 + 1);
	feed(p, s, 6 + SSE_DATA_MAX / 2 + 1);
	FEED_LIT(p, "\n");
	assert_int_equal(p->dropped, 2);

	feed(p, small, sizeof(small) - 1);
	assert_int_equal(p->dispatched, 3);
	assert_int_equal(p->events, 5);
	assert_true(p->data_hwm <= SSE_DATA_MAX);
	free(s);
	free(p);
	run_free(&r);
}

static void test_name_limits(void **state)
{
	char s[SSE_NAME_MAX + 64];
	struct outcome o;
	int n;

	/* SSE_NAME_MAX bytes: kept. */
	n = snprintf(s, sizeof(s), "event: %0*d\ndata: 1\n\n", (int)SSE_NAME_MAX, 7);
	run_whole(s, (size_t)n, 1, &o);
	assert_int_equal(o.dispatched, 1);
	free(o.log);
	/* One more: dropped. */
	n = snprintf(s, sizeof(s), "event: %0*d\ndata: 1\n\n", (int)SSE_NAME_MAX + 1, 7);
	run_whole(s, (size_t)n, 1, &o);
	assert_int_equal(o.dispatched, 0);
	assert_int_equal(o.dropped, 1);
	free(o.log);
	/* A NUL in the name: dropped (it could not be passed intact). */
	run_whole("event: message_stop\0x\ndata: {}\n\n", 32, 1, &o);
	assert_int_equal(o.dropped, 1);
	assert_int_equal(o.u.flags, 0);
	free(o.log);
	/* A NUL in data is data. */
	run_whole("data: a\0b\n\n", 11, 1, &o);
	assert_memory_equal(o.log, "<|a\0b>", 6);
	free(o.log);
}

/* A mid-stream error keeps what was seen before it. */
static void test_error_midstream(void **state)
{
	static const char err[] =
		"event: error\n"
		"data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
		"\"message\":\"Overloaded\"}}\n\n";
	size_t pre = sizeof(stream) - 1 - strlen(strstr(stream, "event: content_block_stop"));
	struct run r;
	struct sse_parser *p;

	run_init(&r, 0);
	p = parser_new(&r);
	feed(p, stream, pre);
	feed(p, err, sizeof(err) - 1);
	assert_int_equal(r.u.flags, USAGE_FL_START | USAGE_FL_ERROR);
	assert_int_equal(r.u.input, 472);
	assert_int_equal(r.u.output, 2);
	assert_int_equal(r.u.cache_write_5m, 1000);
	assert_int_equal(r.u.cache_write_1h, 2000);
	assert_int_equal(r.u.cache_read, 12000);
	assert_false(sse_pending(p));
	free(p);
	run_free(&r);
}

static void test_bom(void **state)
{
	static const char s[] = "\xef\xbb\xbf" "event: a\ndata: 1\n\n";
	struct outcome ref, o;
	size_t k;

	run_whole(s, sizeof(s) - 1, 1, &ref);
	assert_string_equal(ref.log, "<a|1>");
	for (k = 0; k < sizeof(s); k++) {
		run_cuts(s, sizeof(s) - 1, &k, 1, 1, &o);
		outcome_same(&ref, &o);
		free(o.log);
	}
	free(ref.log);

	/* Only at the start; a broken one is text (here a field name). */
	run_whole("data: 1\n\n\xef\xbb\xbf" "data: 2\n\n", 21, 1, &o);
	assert_string_equal(o.log, "<|1>");
	free(o.log);
	run_whole("\xef\xbb" "data: 1\n\n", 11, 1, &o);
	assert_int_equal(o.events, 0);
	free(o.log);
	run_whole("\xef" "\ndata: 1\n\n", 11, 1, &o);
	assert_string_equal(o.log, "<|1>");
	free(o.log);
}

/* A stream cut before its blank line dispatches nothing more. */
static void test_cut_stream(void **state)
{
	struct run r;
	struct sse_parser *p;

	run_init(&r, 1);
	p = parser_new(&r);
	assert_false(sse_pending(p));
	FEED_LIT(p, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n");
	assert_true(sse_pending(p));
	assert_int_equal(p->events, 0);
	assert_int_equal(r.u.flags, 0);
	free(p);
	run_free(&r);

	run_init(&r, 1);
	p = parser_new(&r);
	FEED_LIT(p, "dat");
	assert_true(sse_pending(p));
	FEED_LIT(p, "a: 1\n\n");
	assert_false(sse_pending(p));
	assert_string_equal(r.log, "<|1>");
	/* Zero bytes is fine. */
	assert_int_equal(sse_feed(p, "", 0), 0);
	free(p);
	run_free(&r);
}

/* on_event returning non-zero stops the parser for good. */
static void test_callback_stop(void **state)
{
	struct run r;
	struct sse_parser *p;

	run_init(&r, 1);
	r.stop_after = 2;
	p = parser_new(&r);
	assert_int_equal(feed(p, stream, sizeof(stream) - 1), -1);
	assert_int_equal(p->dispatched, 2);
	assert_int_equal(FEED_LIT(p, "data: 1\n\n"), -1);
	assert_int_equal(p->dispatched, 2);
	free(p);
	run_free(&r);

	/* No callbacks at all: events are still counted. */
	p = malloc(sizeof(*p));
	assert_non_null(p);
	sse_init(p, NULL, NULL, NULL);
	assert_int_equal(feed(p, stream, sizeof(stream) - 1), (long)sizeof(stream) - 1);
	assert_int_equal(p->events, 9);
	assert_int_equal(p->dispatched, 9);
	free(p);
}

/* ------------------------------------------------------------------------ */
/* gaps (the tap leaves out the middle of long streams)                     */
/* ------------------------------------------------------------------------ */

#define GAP_EVENTS_MAX 16

/* The events of `stream`, in order, and what a gapped run matched. */
struct gap_run {
	size_t nev;
	size_t start[GAP_EVENTS_MAX], end[GAP_EVENTS_MAX];
	char name[GAP_EVENTS_MAX][32];
	char *data[GAP_EVENTS_MAX];
	int seen[GAP_EVENTS_MAX];
	size_t next;            /* events before this one can no longer match */
	struct usage u;
};

/* Every event dispatched after a gap must be one of the stream's events,
 * whole, after the previous one dispatched. */
static int gap_on_event(void *arg, const char *name, const char *data, size_t len)
{
	struct gap_run *g = arg;
	size_t k;

	for (k = g->next; k < g->nev; k++)
		if (!strcmp(g->name[k], name) && strlen(g->data[k]) == len &&
		    !memcmp(g->data[k], data, len))
			break;
	assert_true(k < g->nev);
	g->seen[k] = 1;
	g->next = k + 1;
	usage_on_sse_event(&g->u, name, data, len);
	return 0;
}

/* Splits `stream` into its events (it uses \n line ends and one blank line
 * after each event). */
static void gap_events(struct gap_run *g)
{
	const char *s = stream, *end = stream + sizeof(stream) - 1;

	memset(g, 0, sizeof(*g));
	while (s < end) {
		const char *blank = strstr(s, "\n\n");
		const char *nl = strchr(s, '\n');
		const char *d = strstr(s, "\ndata: ") + 7;

		assert_true(g->nev < GAP_EVENTS_MAX);
		assert_non_null(blank);
		g->start[g->nev] = (size_t)(s - stream);
		g->end[g->nev] = (size_t)(blank + 2 - stream);
		snprintf(g->name[g->nev], sizeof(g->name[0]), "%.*s", (int)(nl - s - 7), s + 7);
		g->data[g->nev] = strndup(d, (size_t)(blank - d));
		g->nev++;
		s = blank + 2;
	}
	assert_int_equal(g->nev, 9);
}

static size_t gap_event(const struct gap_run *g, const char *name)
{
	for (size_t k = 0; k < g->nev; k++)
		if (!strcmp(g->name[k], name))
			return k;
	fail();
	return 0;
}

/* The stream with bytes [a, b) left out, for many a <= b: nothing cut by
 * the gap is dispatched, everything before it is, and as soon as the head
 * holds message_start and the tail starts before content_block_stop (one
 * event of slack before message_delta), the usage is whole. */
static void test_gap_every_cut(void **state)
{
	struct gap_run g, ref;
	struct sse_parser *p = malloc(sizeof(*p));
	size_t n = sizeof(stream) - 1, ms, cbs, md, stop, checked = 0, whole = 0;

	assert_non_null(p);
	gap_events(&ref);
	ms = gap_event(&ref, "message_start");
	cbs = gap_event(&ref, "content_block_stop");
	md = gap_event(&ref, "message_delta");
	stop = gap_event(&ref, "message_stop");
	for (size_t a = 0; a <= n; a += (a < 40 || a > n - 40) ? 1 : 7) {
		for (size_t b = a; b <= n; b += (b - a < 40 || b > n - 40) ? 1 : 5) {
			g = ref;
			memset(g.seen, 0, sizeof(g.seen));
			g.next = 0;
			usage_init(&g.u);
			sse_init(p, NULL, gap_on_event, &g);
			assert_int_equal(feed(p, stream, a), (long)a);
			sse_gap(p);
			assert_int_equal(feed(p, stream + b, n - b), (long)(n - b));
			assert_int_equal(p->gaps, 1);
			for (size_t k = 0; k < g.nev; k++) {
				if (g.end[k] <= a)
					assert_true(g.seen[k]);
				if (g.start[k] < b && a < g.end[k])
					assert_false(g.seen[k]);
			}
			if (a >= g.end[ms] && b <= g.start[cbs]) {
				assert_true(g.seen[md] && g.seen[stop]);
				check_stream_usage(&g.u);
				assert_false(sse_pending(p));
				whole++;
			}
			checked++;
		}
	}
	assert_true(whole > 1000);
	assert_true(checked > whole);
	for (size_t k = 0; k < ref.nev; k++)
		free(ref.data[k]);
	free(p);
}

/* A gap right after a blank line, or between an event's lines, or inside a
 * \r\n, or at the very start (where no BOM can follow): the next event is
 * dropped or kept as the rules say, never merged. */
static void test_gap_boundaries(void **state)
{
	static const struct {
		const char *before, *after, *log;
	} cases[] = {
		/* The event after a blank line cannot be told from the rest
		 * of a cut one, so it is dropped; the next one is not. */
		{ "data: 1\n\n", "event: message_delta\ndata: 2\n\ndata: 3\n\n", "<|1><|3>" },
		/* Between the lines of an event: its later data is not taken. */
		{ "event: x\ndata: a\n", "data: b\n\ndata: c\n\n", "<|c>" },
		/* Inside \r\n: the \n after the gap ends the ignored line, the
		 * next blank line the cut event. */
		{ "data: a\r", "\n\r\ndata: b\r\n\r\n", "<|b>" },
		{ "", "\xef\xbb\xbf" "data: a\n\ndata: b\n\n", "<|b>" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct run r;
		struct sse_parser *p;

		run_init(&r, 1);
		p = parser_new(&r);
		feed(p, cases[i].before, strlen(cases[i].before));
		sse_gap(p);
		assert_true(sse_pending(p));
		feed(p, cases[i].after, strlen(cases[i].after));
		assert_string_equal(r.log, cases[i].log);
		assert_int_equal(p->dropped, 1);
		/* A gap at the end leaves the stream inside an event. */
		sse_gap(p);
		assert_true(sse_pending(p));
		free(p);
		run_free(&r);
	}
}

/* Meters s[0, head), a gap of `skip` bytes, then s[from, n) as a whole 200
 * answer of type ctype. */
static void meter_gapped(const char *ctype, const char *s, size_t n, size_t head,
                         size_t skip, size_t from, struct usage_record *rec)
{
	struct meter *m = meter_new(ctype);

	assert_non_null(m);
	meter_feed(m, s, head);
	meter_gap(m, skip);
	meter_feed(m, s + from, n - from);
	memset(rec, 0, sizeof(*rec));
	rec->status = 200;
	meter_finish(m, 1, 0, rec);
	meter_free(m);
}

/* The meter: a gapped stream is billed whole and complete; a gap in a
 * JSON answer makes it unreadable, and the record says so. */
static void test_meter_gap(void **state)
{
	size_t n = sizeof(stream) - 1, head = 1000, tail = n - 700;
	struct usage_record rec;
	static const char json[] =
		"{\"type\":\"message\",\"content\":[],\"usage\":{\"input_tokens\":3,"
		"\"output_tokens\":4}}";

	assert_true(strstr(stream, "event: content_block_stop") - stream > (long)tail);
	meter_gapped("text/event-stream; charset=utf-8", stream, n, head, tail - head, tail, &rec);
	check_stream_usage(&rec.u);
	assert_int_equal(rec.partial, USAGE_COMPLETE);
	assert_true(rec.stream);

	/* The tail started too late: message_delta is gone, and the record
	 * is partial rather than quietly short. */
	meter_gapped("text/event-stream", stream, n, head, 1, n - 20, &rec);
	assert_int_equal(rec.u.input, 472);
	assert_int_equal(rec.partial, USAGE_PARTIAL_TRUNCATED);

	meter_gapped("application/json", json, sizeof(json) - 1, 10, 5, 15, &rec);
	assert_int_equal(rec.u.input, 0);
	assert_int_equal(rec.partial, USAGE_PARTIAL_UNPARSED);
	assert_false(rec.stream);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_whole),
		cmocka_unit_test(test_stream_every_split),
		cmocka_unit_test(test_cr_across_feeds),
		cmocka_unit_test(test_multiline_data),
		cmocka_unit_test(test_comments_and_ignored_fields),
		cmocka_unit_test(test_event_renamed),
		cmocka_unit_test(test_unknown_events),
		cmocka_unit_test(test_big_delta_skipped),
		cmocka_unit_test(test_unnamed_events),
		cmocka_unit_test(test_name_limits),
		cmocka_unit_test(test_error_midstream),
		cmocka_unit_test(test_bom),
		cmocka_unit_test(test_cut_stream),
		cmocka_unit_test(test_callback_stop),
		cmocka_unit_test(test_gap_every_cut),
		cmocka_unit_test(test_gap_boundaries),
		cmocka_unit_test(test_meter_gap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
