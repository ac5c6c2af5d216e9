/*
 * The mirror's frame decoder: every kind of frame, D payloads in runs of
 * what is at hand (mframe_next), a realistic stream fed whole, split at
 * every byte and one byte at a time (always the same frames), truncated
 * at every byte (never an error, the cursor untouched), one over each
 * limit, bad kinds, bad ids, bad lengths, and the meta reader: a payload
 * of exactly MIRROR_META_MAX bytes without a final newline (the old reader
 * wrote one byte past it), numbers with overflow, signs and garbage,
 * duplicated keys.
 *
 * Every decode reads from a heap copy of exactly the bytes at hand, so
 * that ASan catches any read past `end`, and the copy is compared with the
 * original afterwards: the decoder never writes into its input.
 */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <realms/mframe.h>

/* ------------------------------------------------------------------------ */
/* helpers                                                                  */
/* ------------------------------------------------------------------------ */

static char *dup_exact(const char *s, size_t n)
{
	char *c = malloc(n ? n : 1);

	assert_non_null(c);
	memcpy(c, s, n);
	return c;
}

/* What one mframe_get() call saw, copied out of the input. */
struct got {
	int r;
	size_t moved;            /* how far the cursor went */
	enum mframe_kind kind;
	char id[256];
	size_t len;
	char *payload;           /* a copy; NULL when f.payload was */
};

/* mframe_get() on an exactly-sized heap copy of s[0..n). Checks that the
 * cursor moved by the return value (or not at all), that every pointer of
 * the frame lies inside the input, and that the input is unchanged. */
static struct got get(const char *s, size_t n)
{
	char *c = dup_exact(s, n);
	const char *p = c;
	struct mframe f;
	struct got g;

	memset(&f, 0xa5, sizeof(f));
	memset(&g, 0, sizeof(g));
	g.r = mframe_get(&p, c + n, &f);
	assert_true(g.r >= -1);
	g.moved = (size_t)(p - c);
	assert_int_equal(g.moved, g.r > 0 ? (size_t)g.r : 0);
	if (g.r > 0) {
		g.kind = f.kind;
		assert_true(f.id.ptr >= c && f.id.len > 0 && f.id.ptr + f.id.len <= c + n);
		assert_true(f.id.len < sizeof(g.id));
		memcpy(g.id, f.id.ptr, f.id.len);
		g.len = f.len;
		if (f.payload) {
			assert_true(f.payload >= c && f.payload + f.len == c + g.r);
			g.payload = dup_exact(f.payload, f.len);
		} else {
			assert_true(f.kind == MFRAME_DATA || f.kind == MFRAME_SYNC);
		}
	}
	assert_memory_equal(c, s, n);
	free(c);
	return g;
}

#define GET_LIT(lit)  get((lit), sizeof(lit) - 1)

/* ------------------------------------------------------------------------ */
/* a stream, as mirror.c reads it                                           */
/* ------------------------------------------------------------------------ */

/* Feeds a stream in pieces the way the shell does: what is left of one
 * piece (an incomplete frame) goes before the next, a D payload streams
 * through in runs (mframe_next). The log names every frame, its meta
 * payload and the D bytes (joined, whatever the runs); it ends with "!" on
 * a protocol error (nothing more is read, as the connection closes) and
 * with "..." when the stream stops inside a frame. */
struct reader {
	FILE *log;
	char *log_buf;
	size_t log_len;
	struct mframe_rd rd;
	char *left;
	size_t left_len;
	int err;
};

static void reader_feed(struct reader *rd, const char *s, size_t n)
{
	size_t have = rd->left_len + n;
	char *buf, *c;
	const char *p, *end;
	struct mframe f;
	int r;

	if (rd->err)
		return;
	/* left + s, in one exactly-sized copy */
	buf = malloc(have ? have : 1);
	assert_non_null(buf);
	if (rd->left_len)
		memcpy(buf, rd->left, rd->left_len);
	if (n)
		memcpy(buf + rd->left_len, s, n);
	free(rd->left);
	c = dup_exact(buf, have);
	p = c;
	end = c + have;
	while ((r = mframe_next(&rd->rd, &p, end, &f)) > 0) {
		if (f.kind == MFRAME_BODY) {
			assert_true(f.payload + f.len == p && f.len == (size_t)r);
			fwrite(f.payload, 1, f.len, rd->log);
			continue;
		}
		fprintf(rd->log, "<%c %.*s %zu>", f.kind, (int)f.id.len, f.id.ptr, f.len);
		if (f.payload) {
			fputc('[', rd->log);
			fwrite(f.payload, 1, f.len, rd->log);
			fputc(']', rd->log);
		}
	}
	if (r < 0) {
		fputc('!', rd->log);
		rd->err = 1;
	}
	/* What a 0 left behind is an incomplete frame: never more than
	 * MFRAME_PENDING_MAX bytes, so the shell's buffer always has room. */
	assert_true(rd->err || (size_t)(end - p) < MFRAME_PENDING_MAX);
	rd->left_len = rd->err ? 0 : (size_t)(end - p);
	rd->left = dup_exact(p, rd->left_len);
	assert_memory_equal(c, buf, have);
	free(c);
	free(buf);
}

/* The log of s[0..n) fed in the pieces cut at cuts[0..ncuts) (offsets). */
static char *read_cuts(const char *s, size_t n, const size_t *cuts, size_t ncuts)
{
	struct reader rd;
	size_t at = 0, to;

	memset(&rd, 0, sizeof(rd));
	rd.log = open_memstream(&rd.log_buf, &rd.log_len);
	assert_non_null(rd.log);
	for (size_t i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : n;
		reader_feed(&rd, s + at, to - at);
		at = to;
	}
	if (!rd.err && (rd.left_len || rd.rd.remain))
		fputs("...", rd.log);
	fclose(rd.log);
	free(rd.left);
	return rd.log_buf;
}

static char *read_whole(const char *s, size_t n)
{
	return read_cuts(s, n, NULL, 0);
}

/* Whole, cut in two at every byte, and one byte at a time: one log. */
static char *read_every_split(const char *s, size_t n)
{
	char *ref = read_whole(s, n), *o;
	size_t *cuts;

	for (size_t k = 0; k <= n; k++) {
		o = read_cuts(s, n, &k, 1);
		assert_string_equal(o, ref);
		free(o);
	}
	cuts = malloc((n ? n : 1) * sizeof(*cuts));
	assert_non_null(cuts);
	for (size_t k = 0; k < n; k++)
		cuts[k] = k + 1;
	o = read_cuts(s, n, cuts, n ? n - 1 : 0);
	assert_string_equal(o, ref);
	free(o);
	free(cuts);
	return ref;
}

/* ------------------------------------------------------------------------ */
/* the stream                                                               */
/* ------------------------------------------------------------------------ */

/* As the tap sends it (two requests interleaved, an attempt's outcome, a
 * head + tail stream with a gap, syncs). */
static const char stream[] =
	"O up--k1 25\nstatus=529\nretry_after=7\n"
	"B req_0a1b2c3d-4e5f-6789-abcd-ef0123456789 167\n"
	"status=200\nctype=text/event-stream; charset=utf-8\ntoken=alice\n"
	"token_id=0123456789ab\ngroup=team-a\nmodel=claude-sonnet-4-5\n"
	"server=up--k2\nts_ms=1750000000123\nttfb_ms=412\n"
	"D req_0a1b2c3d-4e5f-6789-abcd-ef0123456789 32\n"
	"event: message_start\ndata: {}\n\n\n"
	"B req_2 21\nstatus=200\nctype=json"
	"S 1\n"
	"D req_2 0\n"
	"D req_2 12\n{\"usage\":{}}"
	"G req_0a1b2c3d-4e5f-6789-abcd-ef0123456789 14\nskipped=81234\n"
	"D req_0a1b2c3d-4e5f-6789-abcd-ef0123456789 5\nD x 3"
	"E req_2 30\nreason=complete\nduration_ms=9\n"
	"E req_0a1b2c3d-4e5f-6789-abcd-ef0123456789 39\n"
	"reason=aborted\nduration_ms=5012\nlost=1\n"
	"E req_3 0\n"
	"S 18446744073709551615\n";

static const char stream_log[] =
	"<O up--k1 25>[status=529\nretry_after=7\n]"
	"<B req_0a1b2c3d-4e5f-6789-abcd-ef0123456789 167>["
	"status=200\nctype=text/event-stream; charset=utf-8\ntoken=alice\n"
	"token_id=0123456789ab\ngroup=team-a\nmodel=claude-sonnet-4-5\n"
	"server=up--k2\nts_ms=1750000000123\nttfb_ms=412\n]"
	"<D req_0a1b2c3d-4e5f-6789-abcd-ef0123456789 32>"
	"event: message_start\ndata: {}\n\n\n"
	"<B req_2 21>[status=200\nctype=json]"
	"<S 1 0>"
	"<D req_2 0>"
	"<D req_2 12>{\"usage\":{}}"
	"<G req_0a1b2c3d-4e5f-6789-abcd-ef0123456789 14>[skipped=81234\n]"
	"<D req_0a1b2c3d-4e5f-6789-abcd-ef0123456789 5>D x 3"
	"<E req_2 30>[reason=complete\nduration_ms=9\n]"
	"<E req_0a1b2c3d-4e5f-6789-abcd-ef0123456789 39>["
	"reason=aborted\nduration_ms=5012\nlost=1\n]"
	"<E req_3 0>[]"
	"<S 18446744073709551615 0>";

/* ------------------------------------------------------------------------ */
/* tests: frames                                                            */
/* ------------------------------------------------------------------------ */

static void test_each_kind(void **state)
{
	static const struct {
		const char *in;         /* what is at hand */
		int r;                  /* bytes consumed */
		enum mframe_kind kind;
		const char *id;
		size_t len;
		const char *payload;    /* NULL: the frame has none here */
	} cases[] = {
		{ "B req_1 11\nstatus=200\nB next", 22, MFRAME_BEGIN, "req_1", 11, "status=200\n" },
		/* D: the header only; the payload is the caller's to stream */
		{ "D req_1 5\nhello", 10, MFRAME_DATA, "req_1", 5, NULL },
		{ "D req_1 67108864\n", 17, MFRAME_DATA, "req_1", MIRROR_FRAME_MAX, NULL },
		{ "G a.b:c-d_e 14\nskipped=16384\n", 29, MFRAME_GAP, "a.b:c-d_e", 14, "skipped=16384\n" },
		{ "E req_1 0\n", 10, MFRAME_END, "req_1", 0, "" },
		{ "O chan.1--cred_2 9\nstatus=0\n", 28, MFRAME_OUTCOME, "chan.1--cred_2", 9, "status=0\n" },
		{ "X req_1 22\ntoken=alice\ngroup=dev\n", 33, MFRAME_RELEASE, "req_1", 22,
		  "token=alice\ngroup=dev\n" },
		{ "S 42\nS 43\n", 5, MFRAME_SYNC, "42", 0, NULL },
		/* leading zeros are digits like any other */
		{ "D r 007\n", 8, MFRAME_DATA, "r", 7, NULL },
	};
	struct got g;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		g = get(cases[i].in, strlen(cases[i].in));
		assert_int_equal(g.r, cases[i].r);
		assert_int_equal(g.kind, cases[i].kind);
		assert_string_equal(g.id, cases[i].id);
		assert_int_equal(g.len, cases[i].len);
		if (cases[i].payload) {
			assert_non_null(g.payload);
			assert_memory_equal(g.payload, cases[i].payload, g.len);
		} else {
			assert_null(g.payload);
		}
		free(g.payload);
	}

	/* Nothing at hand: need more. */
	g = get("", 0);
	assert_int_equal(g.r, 0);
}

/* mframe_next: a D payload comes out in runs of what is at hand, up to its
 * end; a D of length 0 has none; with no byte at hand it needs more and
 * changes nothing. */
static void test_next_body_runs(void **state)
{
	static const char s[] = "D r 5\nabcdeD r 0\nS 1\n";
	struct mframe_rd rd = { 0 };
	const char *p = s, *end = s + sizeof(s) - 1;
	struct mframe f;

	assert_int_equal(mframe_next(&rd, &p, s + 6, &f), 6);
	assert_int_equal(f.kind, MFRAME_DATA);
	assert_int_equal(rd.remain, 5);
	/* nothing at hand yet */
	memset(&f, 0, sizeof(f));
	assert_int_equal(mframe_next(&rd, &p, s + 6, &f), 0);
	assert_true(p == s + 6 && rd.remain == 5 && f.payload == NULL);
	/* two bytes at hand: a run of two */
	assert_int_equal(mframe_next(&rd, &p, s + 8, &f), 2);
	assert_int_equal(f.kind, MFRAME_BODY);
	assert_true(f.payload == s + 6 && f.len == 2 && f.id.len == 0);
	assert_int_equal(rd.remain, 3);
	/* everything at hand: the run stops at the payload's end */
	assert_int_equal(mframe_next(&rd, &p, end, &f), 3);
	assert_true(f.kind == MFRAME_BODY && f.payload == s + 8 && f.len == 3);
	assert_int_equal(rd.remain, 0);
	assert_int_equal(mframe_next(&rd, &p, end, &f), 6);
	assert_true(f.kind == MFRAME_DATA && f.len == 0 && rd.remain == 0);
	assert_int_equal(mframe_next(&rd, &p, end, &f), 4);
	assert_int_equal(f.kind, MFRAME_SYNC);
	assert_int_equal(mframe_next(&rd, &p, end, &f), 0);
	assert_true(p == end);
}

static void test_stream_every_split(void **state)
{
	char *log = read_every_split(stream, sizeof(stream) - 1);

	assert_string_equal(log, stream_log);
	free(log);
}

/* A stream stopped at any byte: what was whole is read, the rest waits;
 * never an error. Each frame alone: 0 and the cursor untouched until its
 * last byte. */
static void test_truncated_every_byte(void **state)
{
	size_t n = sizeof(stream) - 1;
	const char *at = stream;
	struct got g;
	char *o;

	for (size_t k = 0; k <= n; k++) {
		o = read_whole(stream, k);
		assert_null(strchr(o, '!'));
		/* a prefix of the whole log, up to the last frame read */
		if (k < n && strlen(o) >= 3 && !strcmp(o + strlen(o) - 3, "..."))
			assert_memory_equal(o, stream_log, strlen(o) - 3);
		else
			assert_memory_equal(o, stream_log, strlen(o));
		free(o);
	}

	/* Frame by frame (a D header alone, its payload is not the frame's). */
	while (at < stream + n) {
		size_t rest = (size_t)(stream + n - at), whole, body;

		g = get(at, rest);
		assert_true(g.r > 0);
		whole = (size_t)g.r;
		body = g.kind == MFRAME_DATA ? g.len : 0;
		free(g.payload);
		for (size_t k = 0; k < whole; k++) {
			g = get(at, k);
			assert_int_equal(g.r, 0);
			assert_int_equal(g.moved, 0);
		}
		at += whole + body;
	}
}

/* Builds "<kind> <id> <n>\n" + n payload bytes (or "S <id>\n"). */
static char *frame_new(char kind, const char *id, size_t n, size_t *len)
{
	char *out;
	FILE *f = open_memstream(&out, len);

	assert_non_null(f);
	if (kind == 'S')
		fprintf(f, "S %s\n", id);
	else
		fprintf(f, "%c %s %zu\n", kind, id, n);
	if (kind != 'D' && kind != 'S')
		for (size_t i = 0; i < n; i++)
			fputc('x', f);
	fclose(f);
	return out;
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	assert_non_null(s);
	memset(s, c, n);
	s[n] = 0;
	return s;
}

static int frame_rc(char kind, const char *id, size_t n)
{
	size_t len;
	char *f = frame_new(kind, id, n, &len);
	struct got g = get(f, len);

	free(g.payload);
	free(f);
	return g.r;
}

/* At each limit: accepted; one over: refused. */
static void test_limits(void **state)
{
	static const char meta_kinds[] = { 'B', 'G', 'E', 'O', 'X' };
	char *rid = repeat('r', MIRROR_RID_MAX + 1);
	char *srv = repeat('s', MIRROR_SERVER_MAX + 1);
	char *seq = repeat('9', MIRROR_SEQ_MAX + 1);
	char hdr[MIRROR_HDR_MAX + 16];
	struct got g;
	int n;

	for (size_t i = 0; i < sizeof(meta_kinds); i++) {
		char k = meta_kinds[i];

		assert_true(frame_rc(k, "r", MIRROR_META_MAX) > 0);
		assert_int_equal(frame_rc(k, "r", MIRROR_META_MAX + 1), -1);
	}
	assert_true(frame_rc('D', "r", MIRROR_FRAME_MAX) > 0);
	assert_int_equal(frame_rc('D', "r", MIRROR_FRAME_MAX + 1), -1);
	assert_int_equal(frame_rc('D', "r", (size_t)MIRROR_FRAME_MAX * 10), -1);

	/* ids: request ids, server names, sync numbers */
	assert_int_equal(frame_rc('B', rid, 0), -1);
	assert_int_equal(frame_rc('D', rid, 0), -1);
	rid[MIRROR_RID_MAX] = 0;
	assert_true(frame_rc('B', rid, 0) > 0);
	assert_true(frame_rc('E', rid, 0) > 0);
	assert_int_equal(frame_rc('O', srv, 0), -1);
	srv[MIRROR_SERVER_MAX] = 0;
	assert_true(frame_rc('O', srv, MIRROR_META_MAX) > 0);
	assert_int_equal(frame_rc('S', seq, 0), -1);
	seq[MIRROR_SEQ_MAX] = 0;
	assert_true(frame_rc('S', seq, 0) > 0);

	/* The longest valid frame header fits MIRROR_HDR_MAX with room. */
	n = snprintf(hdr, sizeof(hdr), "O %s %u\n", srv, MIRROR_META_MAX);
	assert_true(n > 0 && n <= (int)MIRROR_HDR_MAX);

	/* A header of exactly MIRROR_HDR_MAX bytes ("\n" included, made
	 * long by leading zeros) is read; one more byte is refused, and
	 * so are MIRROR_HDR_MAX bytes without a "\n", without waiting. */
	n = snprintf(hdr, sizeof(hdr), "D r %0*d\n", (int)MIRROR_HDR_MAX - 5, 7);
	assert_int_equal(n, MIRROR_HDR_MAX);
	g = get(hdr, (size_t)n);
	assert_int_equal(g.r, MIRROR_HDR_MAX);
	assert_int_equal(g.len, 7);
	g = get(hdr, (size_t)n - 1);
	assert_int_equal(g.r, 0);
	n = snprintf(hdr, sizeof(hdr), "D r %0*d\n", (int)MIRROR_HDR_MAX - 4, 7);
	assert_int_equal(n, MIRROR_HDR_MAX + 1);
	g = get(hdr, (size_t)n);
	assert_int_equal(g.r, -1);
	g = get(hdr, MIRROR_HDR_MAX);
	assert_int_equal(g.r, -1);
	g = get(hdr, MIRROR_HDR_MAX - 1);
	assert_int_equal(g.r, 0);

	free(rid);
	free(srv);
	free(seq);
}

/* Refused from the first byte that shows it, with no more input. */
static void test_bad_kinds(void **state)
{
	char c[2];
	struct got g;

	for (int b = 0; b < 256; b++) {
		c[0] = (char)b;
		c[1] = ' ';
		g = get(c, 1);
		if (strchr("BDGEOSX", b) && b) {
			assert_int_equal(g.r, 0);
			assert_int_equal(get(c, 2).r, 0);
		} else {
			assert_int_equal(g.r, -1);
		}
	}
	/* The agent's own answer is not a frame the tap sends. */
	assert_int_equal(GET_LIT("A req_1\n").r, -1);
	assert_int_equal(GET_LIT("b req_1 0\n").r, -1);
	/* The kind is one byte, followed by one blank. */
	assert_int_equal(GET_LIT("BB req_1 0\n").r, -1);
	assert_int_equal(GET_LIT("B\treq_1 0\n").r, -1);
	assert_int_equal(GET_LIT("B\n").r, -1);
}

static void test_bad_ids_and_lengths(void **state)
{
	static const char *const bad[] = {
		"B  5\n",                 /* empty id */
		"B req 1 5\n",            /* a blank in the id: "1" then " 5" */
		"B req/1 0\n",
		"B req\r 0\n",
		"B r\xc3\xa9q 0\n",
		"B req=1 0\n",
		"D req%1 0\n",
		"O up:k1 0\n",            /* ':' is a rid byte, not a server one */
		"O up k1 0\n",
		"O  0\n",
		"S \n",
		"S 1a\n",
		"S -1\n",
		"S 1 \n",
		"B req_1 \n",             /* empty length */
		"B req_1 -5\n",
		"B req_1 +5\n",
		"B req_1 5 \n",
		"B req_1  5\n",
		"B req_1 5\r\n",
		"B req_1 0x10\n",
		"B req_1 1e3\n",
		"D req_1 18446744073709551617\n",
		"D req_1 99999999999999999999999999\n",
	};
	struct got g;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		g = get(bad[i], strlen(bad[i]));
		if (g.r != -1)
			fail_msg("case %zu: %d", i, g.r);
	}
	assert_int_equal(GET_LIT("B req\0001 0\n").r, -1);
	assert_int_equal(GET_LIT("B req\0").r, -1);
	assert_true(mframe_rid_ok("req_1", 5));
	assert_false(mframe_rid_ok("req_1", 0));
	assert_false(mframe_rid_ok("req\0001", 5));

	/* Refused at the first bad byte, not at the line's end. */
	assert_int_equal(GET_LIT("B req/").r, -1);
	assert_int_equal(GET_LIT("O up:").r, -1);
	assert_int_equal(GET_LIT("D r 67108865").r, -1);
	assert_int_equal(GET_LIT("D r 6710886").r, 0);
	assert_int_equal(GET_LIT("B r 8193").r, -1);
	assert_int_equal(GET_LIT("B r 819").r, 0);

	/* After a protocol error the stream reads nothing more. */
	{
		static const char s[] = "S 1\nB r 0\nX\nS 2\n";
		char *o = read_every_split(s, sizeof(s) - 1);

		assert_string_equal(o, "<S 1 0><B r 0>[]!");
		free(o);
	}
}

/* ------------------------------------------------------------------------ */
/* tests: meta                                                              */
/* ------------------------------------------------------------------------ */

/* A meta payload of exactly MIRROR_META_MAX bytes without a final "\n":
 * the old mirror.c turned every "\n" and "=" of the payload into NULs in
 * place and wrote one more NUL at meta[len], one byte past the buffer. The
 * reader must read the last line whole and write nothing. */
static void test_meta_exactly_max_no_newline(void **state)
{
	static const char head[] = "status=201\nmodel=";
	const size_t n = MIRROR_META_MAX;
	struct usage_record rec;
	struct mframe_str v;
	char *meta = malloc(n), *frame;
	size_t flen;
	struct got g;
	uint64_t x;

	assert_non_null(meta);
	memcpy(meta, head, sizeof(head) - 1);
	memset(meta + sizeof(head) - 1, 'm', n - (sizeof(head) - 1) - 9);
	memcpy(meta + n - 9, "\nlost=987", 9);
	/* the reader on exactly these bytes, straight from the heap */
	assert_int_equal(mframe_meta_num(meta, n, "lost", UINT64_MAX, &x), 1);
	assert_int_equal(x, 987);
	assert_int_equal(mframe_meta_str(meta, n, "model", &v), 1);
	assert_int_equal(v.len, n - (sizeof(head) - 1) - 9);
	memset(&rec, 0, sizeof(rec));
	mframe_meta_record(meta, n, &rec);
	assert_int_equal(rec.status, 201);
	assert_int_equal(strlen(rec.model), sizeof(rec.model) - 1);
	assert_int_equal(rec.model[0], 'm');

	/* and as a frame: B, E, G and O through the stream reader */
	frame = malloc(32 + n);
	assert_non_null(frame);
	flen = (size_t)sprintf(frame, "E req_1 %zu\n", n);
	memcpy(frame + flen, meta, n);
	flen += n;
	g = get(frame, flen);
	assert_int_equal(g.r, (int)flen);
	assert_memory_equal(g.payload, meta, n);
	free(g.payload);
	{
		struct mframe_end e;

		mframe_end_get(meta, n, &e);
		assert_true(e.lost);
		assert_false(e.complete);
	}
	free(frame);

	/* A last line that is a key alone, touching the end. */
	memcpy(meta + n - 9, "\nreason=", 8);
	meta[n - 1] = 'x';
	assert_int_equal(mframe_meta_str(meta, n, "reason", &v), 1);
	assert_int_equal(v.len, 1);
	memcpy(meta + n - 7, "\nreason", 7);
	assert_int_equal(mframe_meta_str(meta, n, "reason", &v), 0);
	free(meta);
}

/* mframe_meta_num on a heap copy of "key=<value>" (no final "\n"). */
static int num(const char *value, uint64_t max, uint64_t *v)
{
	char line[128];
	int n = snprintf(line, sizeof(line), "k=%s", value);
	char *c = dup_exact(line, (size_t)n);
	int r;

	*v = 12345;
	r = mframe_meta_num(c, (size_t)n, "k", max, v);
	if (r != 1)
		assert_int_equal(*v, 12345);   /* untouched */
	assert_memory_equal(c, line, (size_t)n);
	free(c);
	return r;
}

static void test_meta_numbers(void **state)
{
	static const char *const garbage[] = {
		"", "-1", "+1", " 1", "1 ", "1\r", "0x10", "1e3", "12abc", "1.5",
		"١", "\t7", "-0",
	};
	uint64_t v;

	assert_int_equal(num("200", 999, &v), 1);
	assert_int_equal(v, 200);
	assert_int_equal(num("0", 999, &v), 1);
	assert_int_equal(v, 0);
	assert_int_equal(num("007", 999, &v), 1);
	assert_int_equal(v, 7);
	assert_int_equal(num("999", 999, &v), 1);
	assert_int_equal(num("1000", 999, &v), -1);
	assert_int_equal(num("9", 8, &v), -1);
	assert_int_equal(num("8", 8, &v), 1);

	/* INT64_MAX (ts_ms, retry_after) and UINT64_MAX, and one over each */
	assert_int_equal(num("9223372036854775807", INT64_MAX, &v), 1);
	assert_int_equal(v, INT64_MAX);
	assert_int_equal(num("9223372036854775808", INT64_MAX, &v), -1);
	assert_int_equal(num("18446744073709551615", UINT64_MAX, &v), 1);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(num("18446744073709551616", UINT64_MAX, &v), -1);
	assert_int_equal(num("18446744073709551620", UINT64_MAX, &v), -1);
	assert_int_equal(num("99999999999999999999999999999", UINT64_MAX, &v), -1);
	assert_int_equal(num("00000000000000000000000000001", UINT64_MAX, &v), 1);
	assert_int_equal(v, 1);

	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
		if (num(garbage[i], UINT64_MAX, &v) != -1)
			fail_msg("\"%s\" read as a number", garbage[i]);

	/* absent */
	assert_int_equal(mframe_meta_num("x=1\n", 4, "k", 9, &v), 0);
	assert_int_equal(mframe_meta_num("", 0, "k", 9, &v), 0);
}

/* Keys are whole, values run to the line's end, the first line counts. */
static void test_meta_keys(void **state)
{
	static const char m[] =
		"tokens=no\n"            /* a longer key is another key */
		"toke=no\n"
		"token\n"                /* no "=": ignored */
		"=orphan\n"
		"token=alice\n"
		"token=bob\n"            /* repeated: the first counts */
		"status=abc\n"
		"status=200\n"           /* the first counts even when invalid */
		"ctype=a=b; c\n"
		"group=\n"
		"model=x\0y\n";
	struct usage_record rec;
	struct mframe_str v;
	char *c = dup_exact(m, sizeof(m) - 1);
	uint64_t x;

	assert_int_equal(mframe_meta_str(c, sizeof(m) - 1, "token", &v), 1);
	assert_int_equal(v.len, 5);
	assert_memory_equal(v.ptr, "alice", 5);
	assert_int_equal(mframe_meta_num(c, sizeof(m) - 1, "status", 999, &x), -1);
	assert_int_equal(mframe_meta_str(c, sizeof(m) - 1, "ctype", &v), 1);
	assert_int_equal(v.len, 6);
	assert_memory_equal(v.ptr, "a=b; c", 6);
	assert_int_equal(mframe_meta_str(c, sizeof(m) - 1, "group", &v), 1);
	assert_int_equal(v.len, 0);
	assert_int_equal(mframe_meta_str(c, sizeof(m) - 1, "", &v), 1);
	assert_memory_equal(v.ptr, "orphan", 6);
	assert_int_equal(mframe_meta_str(c, sizeof(m) - 1, "tok", &v), 0);

	memset(&rec, 0, sizeof(rec));
	strcpy(rec.group, "keep");
	rec.status = 7;
	mframe_meta_record(c, sizeof(m) - 1, &rec);
	assert_string_equal(rec.token, "alice");
	assert_int_equal(rec.status, 7);       /* invalid: left as it was */
	assert_string_equal(rec.group, "");    /* present and empty */
	assert_string_equal(rec.model, "x");   /* cut at the NUL */
	assert_memory_equal(c, m, sizeof(m) - 1);
	free(c);
}

/* The meta of B, then E, as the tap writes them, into one record. */
static void test_meta_record(void **state)
{
	static const char b[] =
		"status=200\nctype=text/event-stream\ntoken=alice\n"
		"token_id=0123456789abcdef\ngroup=team-a\nmodel=claude-sonnet-4-5\n"
		"server=up--k2\nts_ms=1750000000123\nttfb_ms=412\nduration_ms=-3\n";
	static const char e[] = "reason=complete\nduration_ms=5012\nstatus=529";
	struct usage_record rec;
	struct mframe_end end;

	memset(&rec, 0, sizeof(rec));
	mframe_meta_record(b, sizeof(b) - 1, &rec);
	assert_int_equal(rec.status, 200);
	assert_string_equal(rec.token, "alice");
	assert_string_equal(rec.token_id, "0123456789abcde");   /* cut to 15 */
	assert_string_equal(rec.group, "team-a");
	assert_string_equal(rec.model, "claude-sonnet-4-5");
	assert_string_equal(rec.server, "up--k2");
	assert_int_equal(rec.ts_ms, 1750000000123LL);
	assert_int_equal(rec.ttfb_ms, 412);
	assert_int_equal(rec.duration_ms, 0);    /* a negative duration is none */

	mframe_meta_record(e, sizeof(e) - 1, &rec);
	assert_int_equal(rec.duration_ms, 5012);
	assert_int_equal(rec.status, 529);       /* E's fields win */
	assert_string_equal(rec.token, "alice");

	mframe_end_get(e, sizeof(e) - 1, &end);
	assert_true(end.complete);
	assert_false(end.lost);
	mframe_end_get("reason=completed\nlost=0\n", 24, &end);
	assert_false(end.complete);
	assert_false(end.lost);
	mframe_end_get("reason=aborted\nlost=1", 21, &end);
	assert_false(end.complete);
	assert_true(end.lost);
	mframe_end_get("lost=yes", 8, &end);
	assert_false(end.lost);

	assert_int_equal(mframe_gap_skipped("skipped=81234\n", 14), 81234);
	assert_int_equal(mframe_gap_skipped("skipped=-1\n", 11), 0);
	assert_int_equal(mframe_gap_skipped("", 0), 0);
}

/* O frames: status, retry_after, rid, and what the breaker gets when they
 * are missing or garbled. */
/* X: the token and group to release under; absent ones are empty. */
static void test_release(void **state)
{
	static const char in[] = "X req_9 34\ngroup=ops team\ntoken=bob\ntoken=eve\n";
	struct mframe_str tok, grp;
	struct got g = get(in, strlen(in));
	struct mframe f = { .kind = MFRAME_RELEASE, .len = g.len, .payload = g.payload };

	assert_int_equal(g.kind, MFRAME_RELEASE);
	mframe_release_get(&f, &tok, &grp);
	assert_int_equal(tok.len, 3);
	assert_memory_equal(tok.ptr, "bob", 3);     /* the first line counts */
	assert_int_equal(grp.len, 8);
	assert_memory_equal(grp.ptr, "ops team", 8);
	free(g.payload);

	f.payload = "other=1\n";
	f.len = 8;
	mframe_release_get(&f, &tok, &grp);
	assert_int_equal(tok.len, 0);
	assert_null(tok.ptr);
	assert_int_equal(grp.len, 0);
}

static void test_outcome(void **state)
{
	static const struct {
		const char *meta;
		int status;
		int64_t retry_after;
		const char *rid;        /* NULL: none decoded */
	} cases[] = {
		{ "status=429\nretry_after=30", 429, 30, NULL },
		{ "status=0\n", 0, -1, NULL },
		{ "", 0, -1, NULL },
		{ "status=1000", 0, -1, NULL },
		{ "status=-1\n", 0, -1, NULL },
		{ "status=503\nretry_after=99999999999999999999", 503, -1, NULL },
		{ "status=503\nstatus=200\n", 503, -1, NULL },
		{ "retry_after=9223372036854775807\nstatus=429", 429, INT64_MAX, NULL },
		/* rid=: a request id, or nothing */
		{ "status=529\nrid=req_0a1b-2c3d\n", 529, -1, "req_0a1b-2c3d" },
		{ "rid=a.b:c-d_E9", 0, -1, "a.b:c-d_E9" },
		{ "rid=req_1\nrid=req_2\n", 0, -1, "req_1" },
		{ "rid=bad/id\nrid=req_2\n", 0, -1, NULL },
		{ "rid=\nstatus=500\n", 500, -1, NULL },
		{ "rid=req 1\n", 0, -1, NULL },
		{ "rid=req_1\r\n", 0, -1, NULL },
		{ "rid=" "123456789012345678901234567890123456789012345678901234567890123",
		  0, -1, "123456789012345678901234567890123456789012345678901234567890123" },
		{ "rid=" "1234567890123456789012345678901234567890123456789012345678901234",
		  0, -1, NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char frame[128];
		int n = snprintf(frame, sizeof(frame), "O up--k1 %zu\n%s",
		                 strlen(cases[i].meta), cases[i].meta);
		char *c = dup_exact(frame, (size_t)n);
		const char *p = c;
		struct mframe_outcome o;
		struct mframe f;

		assert_int_equal(mframe_get(&p, c + n, &f), n);
		mframe_outcome_get(&f, &o);
		assert_int_equal(o.server.len, 6);
		assert_memory_equal(o.server.ptr, "up--k1", 6);
		assert_int_equal(o.status, cases[i].status);
		assert_int_equal(o.retry_after_s, cases[i].retry_after);
		if (cases[i].rid) {
			assert_int_equal(o.rid.len, strlen(cases[i].rid));
			assert_memory_equal(o.rid.ptr, cases[i].rid, o.rid.len);
			assert_true(o.rid.ptr > c && o.rid.ptr + o.rid.len <= c + n);
		} else {
			assert_null(o.rid.ptr);
			assert_int_equal(o.rid.len, 0);
		}
		free(c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_kind),
		cmocka_unit_test(test_next_body_runs),
		cmocka_unit_test(test_stream_every_split),
		cmocka_unit_test(test_truncated_every_byte),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_bad_kinds),
		cmocka_unit_test(test_bad_ids_and_lengths),
		cmocka_unit_test(test_meta_exactly_max_no_newline),
		cmocka_unit_test(test_meta_numbers),
		cmocka_unit_test(test_meta_keys),
		cmocka_unit_test(test_meta_record),
		cmocka_unit_test(test_outcome),
		cmocka_unit_test(test_release),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
