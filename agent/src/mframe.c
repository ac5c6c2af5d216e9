/*
 * The response mirror's frame decoder (wire format and contract in
 * realms/mframe.h). Pure: functions over the caller's bytes, no I/O, no
 * allocation, and nothing is ever written into the input.
 *
 * mframe_get() works on a (p, end) cursor like spop.c's decoders: it checks
 * the room before every read and writes the cursor back only once the
 * whole frame (or, for D, its header) was decoded. mframe_next() adds the
 * one piece of state a stream needs: how much of a D payload is still to
 * come, so that it is handed on in runs instead of being buffered.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <realms/mframe.h>

/* ------------------------------------------------------------------------ */
/* header line                                                              */
/* ------------------------------------------------------------------------ */

static int is_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9');
}

/* HAProxy unique-ids as Realms makes them ("req_<uuid>"), and any other
 * format made of these. */
static int rid_char(unsigned char c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
}

/* What the configuration allows in channel and credential names. */
static int server_char(unsigned char c)
{
	return is_alnum(c) || c == '.' || c == '_' || c == '-';
}

static int digit_char(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* What each kind's header holds. */
struct kind_rule {
	int (*id_char)(unsigned char c);
	size_t id_max;
	int has_len;              /* "<id> <n>\n", else "<id>\n" */
	size_t len_max;
};

static const struct kind_rule rule_req  = { rid_char, MIRROR_RID_MAX, 1, MIRROR_META_MAX };
static const struct kind_rule rule_data = { rid_char, MIRROR_RID_MAX, 1, MIRROR_FRAME_MAX };
static const struct kind_rule rule_out  = { server_char, MIRROR_SERVER_MAX, 1, MIRROR_META_MAX };
static const struct kind_rule rule_sync = { digit_char, MIRROR_SEQ_MAX, 0, 0 };

static const struct kind_rule *kind_rule(char k)
{
	switch (k) {
	case MFRAME_BEGIN:
	case MFRAME_GAP:
	case MFRAME_END:
	case MFRAME_RELEASE:
		return &rule_req;
	case MFRAME_DATA:
		return &rule_data;
	case MFRAME_OUTCOME:
		return &rule_out;
	case MFRAME_SYNC:
		return &rule_sync;
	}
	return NULL;
}

/* A header stopped at hend without its "\n": an error if hend is where
 * MIRROR_HDR_MAX cut the reading, else a wait for more bytes. */
static int hdr_more(const char *start, const char *hend)
{
	return hend - start == (ptrdiff_t)MIRROR_HDR_MAX ? -1 : 0;
}

int mframe_get(const char **p, const char *end, struct mframe *f)
{
	const char *start = *p;
	const char *q = start, *hend, *id;
	const struct kind_rule *r;
	struct mframe out;
	uint64_t n = 0;

	if (q >= end)
		return 0;
	/* The header is read no further than MIRROR_HDR_MAX bytes: reaching
	 * that point without its "\n" is an error, reaching end before it is
	 * a wait. */
	hend = end - q > (ptrdiff_t)MIRROR_HDR_MAX ? q + MIRROR_HDR_MAX : end;

	r = kind_rule(*q);
	if (!r)
		return -1;
	out.kind = (enum mframe_kind)*q++;
	if (q >= hend)
		return hdr_more(start, hend);
	if (*q++ != ' ')
		return -1;

	/* The id, up to the blank before <n> (or the "\n" of S). */
	id = q;
	for (;;) {
		if (q >= hend)
			return hdr_more(start, hend);
		if (*q == (r->has_len ? ' ' : '\n'))
			break;
		if (!r->id_char((unsigned char)*q) || (size_t)(q - id) == r->id_max)
			return -1;
		q++;
	}
	if (q == id)
		return -1;
	out.id.ptr = id;
	out.id.len = (size_t)(q - id);
	q++;

	out.len = 0;
	out.payload = NULL;
	if (r->has_len) {
		const char *digits = q;

		/* Refused as soon as the value passes the kind's limit: no
		 * overflow, no waiting for a length we will refuse anyway. */
		for (;;) {
			if (q >= hend)
				return hdr_more(start, hend);
			if (*q == '\n')
				break;
			if (!digit_char((unsigned char)*q))
				return -1;
			n = n * 10 + (uint64_t)(*q - '0');
			if (n > r->len_max)
				return -1;
			q++;
		}
		if (q == digits)
			return -1;
		q++;
		out.len = (size_t)n;
	}

	/* A meta payload is returned whole; compared as a length, never
	 * added to q before it is known to fit. */
	if (r->has_len && out.kind != MFRAME_DATA) {
		if (out.len > (size_t)(end - q))
			return 0;
		out.payload = q;
		q += out.len;
	}
	*f = out;
	*p = q;
	return (int)(q - start);
}

int mframe_next(struct mframe_rd *rd, const char **p, const char *end,
                struct mframe *f)
{
	const char *q = *p;
	size_t k;
	int r;

	if (!rd->remain) {
		r = mframe_get(p, end, f);
		if (r > 0 && f->kind == MFRAME_DATA)
			rd->remain = f->len;
		return r;
	}
	if (q >= end)
		return 0;
	k = (size_t)(end - q);
	if (k > rd->remain)
		k = rd->remain;
	if (k > INT_MAX)
		k = INT_MAX;   /* the run's length is returned as an int */
	f->kind = MFRAME_BODY;
	f->id.ptr = NULL;
	f->id.len = 0;
	f->len = k;
	f->payload = q;
	rd->remain -= k;
	*p = q + k;
	return (int)k;
}

int mframe_rid_ok(const char *s, size_t len)
{
	if (len == 0 || len > MIRROR_RID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!rid_char((unsigned char)s[i]))
			return 0;
	return 1;
}

/* ------------------------------------------------------------------------ */
/* meta payloads                                                            */
/* ------------------------------------------------------------------------ */

int mframe_meta_str(const char *meta, size_t len, const char *key,
                    struct mframe_str *v)
{
	const char *p = meta, *end;
	size_t klen = strlen(key);

	if (!len)
		return 0;
	end = meta + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;

		/* "key=" must fit in the line before it is compared */
		if ((size_t)(le - p) > klen && memcmp(p, key, klen) == 0 &&
		    p[klen] == '=') {
			v->ptr = p + klen + 1;
			v->len = (size_t)(le - v->ptr);
			return 1;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}

int mframe_meta_num(const char *meta, size_t len, const char *key,
                    uint64_t max, uint64_t *v)
{
	struct mframe_str s;
	uint64_t x = 0;

	if (!mframe_meta_str(meta, len, key, &s))
		return 0;
	if (s.len == 0)
		return -1;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.ptr[i];
		uint64_t d = (uint64_t)(c - '0');

		if (!digit_char(c))
			return -1;
		/* x * 10 + d <= max, asked without computing it */
		if (d > max || x > (max - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 1;
}

/* Copies key's value into dst[size] (cut, NUL-terminated) if present. */
static void meta_copy(const char *meta, size_t len, const char *key,
                      char *dst, size_t size)
{
	struct mframe_str s;

	/* %.*s stops at a NUL in the value, as a C string field must; the
	 * value is at most MIRROR_META_MAX bytes, so its length fits an int. */
	if (mframe_meta_str(meta, len, key, &s))
		snprintf(dst, size, "%.*s", (int)s.len, s.ptr);
}

void mframe_meta_record(const char *meta, size_t len, struct usage_record *rec)
{
	uint64_t v;

	meta_copy(meta, len, "token", rec->token, sizeof(rec->token));
	meta_copy(meta, len, "token_id", rec->token_id, sizeof(rec->token_id));
	meta_copy(meta, len, "group", rec->group, sizeof(rec->group));
	meta_copy(meta, len, "model", rec->model, sizeof(rec->model));
	meta_copy(meta, len, "server", rec->server, sizeof(rec->server));
	if (mframe_meta_num(meta, len, "status", MFRAME_STATUS_MAX, &v) == 1)
		rec->status = (int)v;
	if (mframe_meta_num(meta, len, "ts_ms", INT64_MAX, &v) == 1)
		rec->ts_ms = (int64_t)v;
	if (mframe_meta_num(meta, len, "ttfb_ms", UINT64_MAX, &v) == 1)
		rec->ttfb_ms = v;
	if (mframe_meta_num(meta, len, "duration_ms", UINT64_MAX, &v) == 1)
		rec->duration_ms = v;
	if (mframe_meta_num(meta, len, "req_bytes", UINT64_MAX, &v) == 1)
		rec->req_bytes = v;
}

void mframe_end_get(const char *meta, size_t len, struct mframe_end *e)
{
	struct mframe_str s;
	uint64_t v;

	e->complete = mframe_meta_str(meta, len, "reason", &s) &&
	              s.len == 8 && memcmp(s.ptr, "complete", 8) == 0;
	e->lost = mframe_meta_num(meta, len, "lost", UINT64_MAX, &v) == 1 && v > 0;
}

uint64_t mframe_gap_skipped(const char *meta, size_t len)
{
	uint64_t v;

	return mframe_meta_num(meta, len, "skipped", UINT64_MAX, &v) == 1 ? v : 0;
}

void mframe_outcome_get(const struct mframe *f, struct mframe_outcome *o)
{
	uint64_t v;

	o->server = f->id;
	o->status = 0;
	o->retry_after_s = -1;
	o->rid.ptr = NULL;
	o->rid.len = 0;
	if (mframe_meta_num(f->payload, f->len, "status", MFRAME_STATUS_MAX, &v) == 1)
		o->status = (int)v;
	if (mframe_meta_num(f->payload, f->len, "retry_after", INT64_MAX, &v) == 1)
		o->retry_after_s = (int64_t)v;
	/* Optional. Breaker failures will be counted per request: a value
	 * that is not a request id must not pass for one, so it is dropped,
	 * not cut. */
	if (mframe_meta_str(f->payload, f->len, "rid", &o->rid) &&
	    !mframe_rid_ok(o->rid.ptr, o->rid.len)) {
		o->rid.ptr = NULL;
		o->rid.len = 0;
	}
}

void mframe_release_get(const struct mframe *f, struct mframe_str *token,
                        struct mframe_str *group)
{
	static const struct mframe_str none = { NULL, 0 };

	if (!f->payload || !mframe_meta_str(f->payload, f->len, "token", token))
		*token = none;
	if (!f->payload || !mframe_meta_str(f->payload, f->len, "group", group))
		*group = none;
}
