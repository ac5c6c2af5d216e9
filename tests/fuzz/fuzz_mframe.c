/*
 * libFuzzer target for the mirror's frame decoder (agent/src/mframe.c).
 *
 * The first two input bytes seed the chunking; the rest is read as a
 * mirror connection's byte stream, the way mirror.c reads it: an
 * incomplete frame waits in front of the next piece, D payloads stream
 * through in runs (mframe_next), a protocol error ends the stream. Every piece is handed over
 * in a heap copy of exactly its size, so ASan catches any read past end.
 * The stream is read whole, in pseudo-random pieces and (when short) one
 * byte at a time, and checked:
 *  - the three runs see the same frames, the same D bytes, the same meta
 *    values (record fields, end state, gap, outcome with its rid, and
 *    every key's number) and end the same way (an error, or the same
 *    bytes pending): a stream may be split anywhere;
 *  - every decoded frame obeys the wire format: kind, id charset and
 *    length, payload length within its kind's limit, pointers inside the
 *    input, the cursor moved by exactly the return value;
 *  - 0 ("need more") only while fewer than MFRAME_PENDING_MAX bytes are at
 *    hand; any shorter prefix of a decoded frame gives 0, any prefix of a
 *    refused one 0 or -1 (refusal is monotonic);
 *  - mframe_meta_num agrees with a reference parser (128-bit, saturating),
 *    and the decoder never writes into its input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <realms/mframe.h>

/* Not assert(): the fuzz build may define NDEBUG. */
static void need(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_mframe: invariant failed: %s\n", what);
		abort();
	}
}

#define FNV_BASIS 0xcbf29ce484222325ULL

/* FNV-1a. */
static void hash_add(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++) {
		*h ^= s[i];
		*h *= 0x100000001b3ULL;
	}
}

static void hash_u64(uint64_t *h, uint64_t v)
{
	hash_add(h, &v, sizeof(v));
}

static void hash_str(uint64_t *h, const char *s, size_t n)
{
	hash_u64(h, n);
	hash_add(h, s, n);
}

/* ------------------------------------------------------------------------ */
/* per frame                                                                */
/* ------------------------------------------------------------------------ */

static int in_set(unsigned char c, const char *extra)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || (c && strchr(extra, c));
}

/* The wire format, checked on a decoded frame. */
static void check_frame(const struct mframe *f, int r, const char *p, const char *end)
{
	const char *extra = f->kind == MFRAME_OUTCOME ? "._-" :
	                    f->kind == MFRAME_SYNC ? "" : "._:-";
	size_t id_max = f->kind == MFRAME_OUTCOME ? MIRROR_SERVER_MAX :
	                f->kind == MFRAME_SYNC ? MIRROR_SEQ_MAX : MIRROR_RID_MAX;
	size_t hdr;

	need(r <= end - p, "consumed within the input");
	need(f->id.ptr == p + 2 && f->id.len >= 1 && f->id.len <= id_max, "id place and length");
	for (size_t i = 0; i < f->id.len; i++) {
		unsigned char c = (unsigned char)f->id.ptr[i];

		need(f->kind == MFRAME_SYNC ? c >= '0' && c <= '9' : in_set(c, extra), "id charset");
	}
	switch (f->kind) {
	case MFRAME_SYNC:
		need(f->len == 0 && !f->payload && r == (int)f->id.len + 3, "sync");
		return;
	case MFRAME_DATA:
		need(f->len <= MIRROR_FRAME_MAX && !f->payload, "data length");
		need(r <= (int)MIRROR_HDR_MAX && p[r - 1] == '\n', "data header");
		return;
	case MFRAME_BEGIN:
	case MFRAME_GAP:
	case MFRAME_END:
	case MFRAME_RELEASE:
	case MFRAME_OUTCOME:
		need(f->len <= MIRROR_META_MAX, "meta length");
		need(f->payload && f->payload + f->len == p + r, "meta payload is the frame's end");
		hdr = (size_t)(f->payload - p);
		need(hdr <= MIRROR_HDR_MAX && p[hdr - 1] == '\n', "meta header");
		return;
	case MFRAME_BODY:
		break;
	}
	need(0, "kind");
}

/* The reference for mframe_meta_num: saturating at 2^64 in 128 bits. */
static int ref_num(const struct mframe_str *s, uint64_t max, uint64_t *v)
{
	unsigned __int128 x = 0;

	if (!s->len)
		return -1;
	for (size_t i = 0; i < s->len; i++) {
		unsigned char c = (unsigned char)s->ptr[i];

		if (c < '0' || c > '9')
			return -1;
		x = x * 10 + (c - '0');
		if (x > (unsigned __int128)UINT64_MAX)
			x = (unsigned __int128)UINT64_MAX + 1;
	}
	if (x > max)
		return -1;
	*v = (uint64_t)x;
	return 1;
}

/* Every meta value the agent reads, folded into h. */
static void hash_meta(uint64_t *h, const struct mframe *f)
{
	static const char *const keys[] = {
		"status", "ctype", "token", "token_id", "group", "model", "server",
		"ts_ms", "ttfb_ms", "skipped", "reason", "duration_ms", "lost",
		"retry_after", "rid", "",
	};
	static const uint64_t maxes[] = { 0, 999, INT64_MAX, UINT64_MAX };
	const char *m = f->payload, *mend = f->payload + f->len;
	struct usage_record rec;
	struct mframe_end e;
	struct mframe_outcome o;
	struct mframe_str s;
	uint64_t v, rv;
	int r, rr;

	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		r = mframe_meta_str(m, f->len, keys[k], &s);
		need(r == 0 || r == 1, "meta_str rc");
		hash_u64(h, (uint64_t)r);
		if (r == 1) {
			need(s.ptr >= m + strlen(keys[k]) + 1 && s.ptr + s.len <= mend,
			     "value inside the payload");
			need(s.ptr[-1] == '=' && !memchr(s.ptr, '\n', s.len), "value is one line");
			need(s.ptr + s.len == mend || s.ptr[s.len] == '\n', "value runs to its line end");
			hash_str(h, s.ptr, s.len);
		}
		for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
			v = rv = 7;
			r = mframe_meta_num(m, f->len, keys[k], maxes[i], &v);
			need(r >= -1 && r <= 1, "meta_num rc");
			need(r != 0 || mframe_meta_str(m, f->len, keys[k], &s) == 0, "absent");
			if (r != 0) {
				mframe_meta_str(m, f->len, keys[k], &s);
				rr = ref_num(&s, maxes[i], &rv);
				need(r == rr && v == (r == 1 ? rv : 7), "meta_num = reference");
			}
			hash_u64(h, (uint64_t)r);
			hash_u64(h, v);
		}
	}

	memset(&rec, 0, sizeof(rec));
	mframe_meta_record(m, f->len, &rec);
	need(memchr(rec.token, 0, sizeof(rec.token)) && memchr(rec.token_id, 0, sizeof(rec.token_id)) &&
	     memchr(rec.group, 0, sizeof(rec.group)) && memchr(rec.model, 0, sizeof(rec.model)) &&
	     memchr(rec.server, 0, sizeof(rec.server)), "record strings terminated");
	need(rec.status >= 0 && rec.status <= 999 && rec.ts_ms >= 0, "record numbers");
	hash_add(h, &rec, sizeof(rec));

	mframe_end_get(m, f->len, &e);
	need((e.complete == 0 || e.complete == 1) && (e.lost == 0 || e.lost == 1), "end flags");
	hash_u64(h, (uint64_t)e.complete << 1 | (uint64_t)e.lost);
	hash_u64(h, mframe_gap_skipped(m, f->len));

	if (f->kind == MFRAME_OUTCOME) {
		mframe_outcome_get(f, &o);
		need(o.server.ptr == f->id.ptr && o.server.len == f->id.len, "outcome server");
		need(o.status >= 0 && o.status <= 999 && o.retry_after_s >= -1, "outcome numbers");
		need(o.rid.len == 0 ? o.rid.ptr == NULL :
		     mframe_rid_ok(o.rid.ptr, o.rid.len) && o.rid.ptr >= m && o.rid.ptr + o.rid.len <= mend,
		     "outcome rid");
		hash_u64(h, (uint64_t)o.status);
		hash_u64(h, (uint64_t)o.retry_after_s);
		hash_str(h, o.rid.len ? o.rid.ptr : "", o.rid.len);
	}
}

/* Shorter prefixes of what was decoded (or refused) at p. */
static void check_prefix(const char *p, const char *end, int r, uint32_t *seed)
{
	size_t have = (size_t)(end - p), k;
	const char *q;
	struct mframe f;
	char *c;
	int r2;

	if (!have)
		return;
	*seed = *seed * 1103515245u + 12345u;
	k = (*seed >> 8) % have;          /* 0 .. have - 1 */
	if (r > 0)
		k = k % (size_t)r;            /* strictly inside the frame */
	c = malloc(k ? k : 1);
	need(c != NULL, "malloc");
	memcpy(c, p, k);
	q = c;
	r2 = mframe_get(&q, c + k, &f);
	/* A prefix of a frame (r > 0) or of a wait (r == 0) is a wait; a
	 * prefix of a refusal is a wait or already a refusal. */
	need(r >= 0 ? r2 == 0 : r2 <= 0, "prefix: need more, or refused as the whole");
	need(q == c, "prefix: cursor untouched");
	free(c);
}

/* ------------------------------------------------------------------------ */
/* a stream, as mirror.c reads it                                           */
/* ------------------------------------------------------------------------ */

struct run {
	uint64_t hash;            /* every frame, D byte and meta value */
	uint64_t frames;
	int err;
	char left[MFRAME_PENDING_MAX];
	size_t left_len;
	struct mframe_rd rd;      /* the D payload being streamed */
	uint32_t seed;            /* for check_prefix */
};

static void run_init(struct run *r, uint32_t seed)
{
	r->hash = FNV_BASIS;
	r->frames = 0;
	r->err = 0;
	r->left_len = 0;
	r->rd.remain = 0;
	r->seed = seed;
}

/* A run of a D payload: the bytes at hand, up to the payload's end. */
static void check_body(const struct mframe *f, int ret, const char *at, const char *end,
                       size_t remain_before, size_t remain_after)
{
	need(f->kind == MFRAME_BODY && f->payload == at && f->len == (size_t)ret, "body run");
	need(!f->id.ptr && !f->id.len, "body run has no id");
	need(remain_before - remain_after == f->len, "body run counted");
	need(remain_after == 0 || at + ret == end, "body run takes all at hand");
}

static void feed(struct run *r, const char *s, size_t n)
{
	size_t have = r->left_len + n;
	const char *p, *end;
	struct mframe f;
	char *buf, *orig;
	int ret;

	if (r->err)
		return;
	buf = malloc(have ? have : 1);
	orig = malloc(have ? have : 1);
	need(buf && orig, "malloc");
	memcpy(buf, r->left, r->left_len);
	if (n)
		memcpy(buf + r->left_len, s, n);
	memcpy(orig, buf, have);
	p = buf;
	end = buf + have;
	for (;;) {
		const char *at = p;
		size_t remain = r->rd.remain;

		ret = mframe_next(&r->rd, &p, end, &f);
		need(ret >= -1 && p == at + (ret > 0 ? ret : 0), "cursor moves by the return");
		need(ret > 0 || r->rd.remain == remain, "state moves only on success");
		if (remain) {
			/* inside a D payload: a run, or nothing at hand */
			need(ret >= 0, "a body run is never an error");
			if (ret == 0) {
				need(at == end, "need more only with nothing at hand");
				break;
			}
			check_body(&f, ret, at, end, remain, r->rd.remain);
			hash_add(&r->hash, f.payload, f.len);
			continue;
		}
		check_prefix(at, end, ret, &r->seed);
		if (ret == 0) {
			need((size_t)(end - p) < MFRAME_PENDING_MAX, "need more only when short");
			break;
		}
		if (ret < 0) {
			r->err = 1;
			hash_u64(&r->hash, UINT64_MAX);
			break;
		}
		check_frame(&f, ret, at, end);
		need(r->rd.remain == (f.kind == MFRAME_DATA ? f.len : 0), "a D header starts its payload");
		r->frames++;
		hash_u64(&r->hash, (uint64_t)f.kind);
		hash_str(&r->hash, f.id.ptr, f.id.len);
		hash_u64(&r->hash, f.len);
		if (f.payload) {
			hash_str(&r->hash, f.payload, f.len);
			hash_meta(&r->hash, &f);
		}
	}
	need(memcmp(buf, orig, have) == 0, "input unchanged");
	r->left_len = r->err ? 0 : (size_t)(end - p);
	memcpy(r->left, p, r->left_len);
	free(buf);
	free(orig);
}

static void same(const struct run *a, const struct run *b)
{
	need(a->hash == b->hash && a->frames == b->frames, "same frames and values");
	need(a->err == b->err, "same end");
	need(a->err || (a->left_len == b->left_len && a->rd.remain == b->rd.remain &&
	                memcmp(a->left, b->left, a->left_len) == 0), "same bytes pending");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run whole, chunked, bytes;
	const char *s;
	uint32_t seed;
	size_t i, n;

	if (size < 2)
		return 0;
	seed = (uint32_t)(data[0] << 8 | data[1]) * 2654435761u + 1;
	s = (const char *)data + 2;
	size -= 2;

	run_init(&whole, seed);
	feed(&whole, s, size);

	/* Pieces from 0 to 300 bytes: around the header and meta sizes. */
	run_init(&chunked, seed ^ 0x5bd1e995u);
	for (i = 0; i < size; i += n) {
		seed = seed * 1103515245u + 12345u;
		n = (seed >> 16) % 301;
		if (n > size - i)
			n = size - i;
		feed(&chunked, s + i, n);
	}
	same(&whole, &chunked);

	if (size <= 2048) {
		run_init(&bytes, seed);
		for (i = 0; i < size; i++)
			feed(&bytes, s + i, 1);
		same(&whole, &bytes);
	}
	return 0;
}
