/*
 * libFuzzer target for the JSON scanner and its helpers. The first input
 * byte picks the options (bit 0: JSON_FL_UNICODE), the next two seed two
 * split points; the rest is the document. Checked, besides "no crash, no
 * sanitizer report":
 *  - fed whole, in three pieces cut at the seeded points, and (when short)
 *    one byte at a time, every run reports the same events with the same
 *    spans, ends in the same status, error and error offset;
 *  - the scanner agrees with a naive recursive reference validator on the
 *    status, and on invalid input on the offset of the first byte no
 *    continuation could fix;
 *  - a prefix reports a prefix of the whole's events, and is invalid only
 *    if the whole is, at the same byte;
 *  - the cursor stops at event boundaries: BEGIN at the token's first byte,
 *    KEY/VALUE/END right past its last, and the spans say so;
 *  - in a complete document, the root span and every member's span
 *    re-parse as valid JSON of the type reported, keys as strings, and
 *    json_each() reports the same members;
 *  - json_keys_dup() over the root keys agrees with a naive decoder and a
 *    pairwise comparison, and json_unescape() with that decoder.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <realms/json.h>

#include "ref.h"

/* Not assert(): the fuzz build may define NDEBUG. */
static void need(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_json: invariant failed: %s\n", what);
		abort();
	}
}

/* ------------------------------------------------------------------------ */
/* a reference validator                                                    */
/* ------------------------------------------------------------------------ */

/* Deliberately naive: recursive descent over the whole input, one byte at
 * a time. It reports what the scanner must: complete, truncated (the input
 * ran out where more could follow), or invalid at the first byte that no
 * continuation could make valid. */
enum ref_st { REF_OK, REF_MORE, REF_BAD, REF_DEEP };

struct ref {
	const uint8_t *s;
	size_t n, i;
	int unicode;
	size_t depth;
	enum ref_st st;
	size_t bad;
};

#define REF_DEPTH_MAX 3000

static int ref_fail(struct ref *r, enum ref_st st)
{
	if (r->st == REF_OK) {
		r->st = st;
		r->bad = r->i;
	}
	return -1;
}

/* The next byte, or -1 (and REF_MORE) at the end of the input. */
static int ref_peek(struct ref *r)
{
	if (r->i >= r->n) {
		ref_fail(r, REF_MORE);
		return -1;
	}
	return r->s[r->i];
}

static void ref_ws(struct ref *r)
{
	while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' ||
	                       r->s[r->i] == '\n' || r->s[r->i] == '\r'))
		r->i++;
}

/* Four hex digits of a \u escape; with `low` set (unicode), it must be a low
 * surrogate, else (unicode) it must not be one. Returns the code unit. */
static long ref_u4(struct ref *r, int low)
{
	long v = 0;
	int c, h;

	for (int k = 0; k < 4; k++) {
		if ((c = ref_peek(r)) < 0)
			return -1;
		if ((h = ref_hexval(c)) < 0)
			return ref_fail(r, REF_BAD);
		v = v * 16 + h;
		if (r->unicode && k == 1 && low != (v >= 0xdc && v <= 0xdf))
			return ref_fail(r, REF_BAD);
		r->i++;
	}
	return v;
}

/* The bytes after a UTF-8 lead byte c (already consumed). */
static int ref_utf8(struct ref *r, int c)
{
	int need, lo = 0x80, hi = 0xbf, b;

	if (c >= 0xc2 && c <= 0xdf)
		need = 1;
	else if (c >= 0xe0 && c <= 0xef)
		need = 2;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 3;
	else {
		r->i--;
		return ref_fail(r, REF_BAD);
	}
	if (c == 0xe0)
		lo = 0xa0;
	if (c == 0xed)
		hi = 0x9f;
	if (c == 0xf0)
		lo = 0x90;
	if (c == 0xf4)
		hi = 0x8f;
	while (need--) {
		if ((b = ref_peek(r)) < 0)
			return -1;
		if (b < lo || b > hi)
			return ref_fail(r, REF_BAD);
		r->i++;
		lo = 0x80;
		hi = 0xbf;
	}
	return 0;
}

static int ref_string(struct ref *r)
{
	long cp;
	int c;

	r->i++;   /* the opening quote */
	for (;;) {
		if ((c = ref_peek(r)) < 0)
			return -1;
		if (c == '"') {
			r->i++;
			return 0;
		}
		if (c < 0x20)
			return ref_fail(r, REF_BAD);
		r->i++;
		if (c >= 0x80 && r->unicode) {
			if (ref_utf8(r, c) < 0)
				return -1;
			continue;
		}
		if (c != '\\')
			continue;
		if ((c = ref_peek(r)) < 0)
			return -1;
		if (c != 'u') {
			if (!strchr("\"\\/bfnrt", c) || c == 0)
				return ref_fail(r, REF_BAD);
			r->i++;
			continue;
		}
		r->i++;
		if ((cp = ref_u4(r, 0)) < 0)
			return -1;
		if (!r->unicode || cp < 0xd800 || cp > 0xdbff)
			continue;
		if ((c = ref_peek(r)) < 0)
			return -1;
		if (c != '\\')
			return ref_fail(r, REF_BAD);
		r->i++;
		if ((c = ref_peek(r)) < 0)
			return -1;
		if (c != 'u')
			return ref_fail(r, REF_BAD);
		r->i++;
		if (ref_u4(r, 1) < 0)
			return -1;
	}
}

static int ref_digits(struct ref *r)
{
	int c, k = 0;

	while ((c = ref_peek(r)) >= '0' && c <= '9') {
		r->i++;
		k++;
	}
	if (c < 0 && r->i >= r->n && r->st == REF_MORE) {
		/* Ran out inside digits: only truncated if none were read. */
		if (k) {
			r->st = REF_OK;
			return 0;
		}
		return -1;
	}
	return k ? 0 : ref_fail(r, REF_BAD);
}

/* After a number or literal: a letter, digit, '.' or '_' glued to it is a
 * bad byte (no continuation makes "01" or "truex" valid). */
static int ref_glued(struct ref *r)
{
	int c;

	if (r->i >= r->n)
		return 0;
	c = r->s[r->i];
	if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	    c == '.' || c == '_')
		return ref_fail(r, REF_BAD);
	return 0;
}

/* A number; at the end of the input it is whole or truncated as its
 * grammar says. A letter, digit or '.' glued to it is a bad byte. */
static int ref_number(struct ref *r)
{
	int c;

	if (r->s[r->i] == '-')
		r->i++;
	if ((c = ref_peek(r)) < 0)
		return -1;
	if (c == '0')
		r->i++;
	else if (ref_digits(r) < 0)
		return -1;
	if (r->i < r->n && r->s[r->i] == '.') {
		r->i++;
		if (ref_digits(r) < 0)
			return -1;
	}
	if (r->i < r->n && (r->s[r->i] | 0x20) == 'e') {
		r->i++;
		if ((c = ref_peek(r)) < 0)
			return -1;
		if (c == '+' || c == '-')
			r->i++;
		if (ref_digits(r) < 0)
			return -1;
	}
	return ref_glued(r);
}

static int ref_literal(struct ref *r, const char *lit)
{
	int c;

	for (; *lit; lit++) {
		if ((c = ref_peek(r)) < 0)
			return -1;
		if (c != (unsigned char)*lit)
			return ref_fail(r, REF_BAD);
		r->i++;
	}
	return ref_glued(r);
}

static int ref_value(struct ref *r);

static int ref_container(struct ref *r, int obj)
{
	char close = obj ? '}' : ']';
	int c, first = 1;

	if (++r->depth > REF_DEPTH_MAX)
		return ref_fail(r, REF_DEEP);
	r->i++;
	for (;;) {
		ref_ws(r);
		if ((c = ref_peek(r)) < 0)
			return -1;
		if (c == close && first) {
			r->i++;
			r->depth--;
			return 0;
		}
		if (obj) {
			if (c != '"')
				return ref_fail(r, REF_BAD);
			if (ref_string(r) < 0)
				return -1;
			ref_ws(r);
			if ((c = ref_peek(r)) < 0)
				return -1;
			if (c != ':')
				return ref_fail(r, REF_BAD);
			r->i++;
		}
		if (ref_value(r) < 0)
			return -1;
		ref_ws(r);
		if ((c = ref_peek(r)) < 0)
			return -1;
		if (c == close) {
			r->i++;
			r->depth--;
			return 0;
		}
		if (c != ',')
			return ref_fail(r, REF_BAD);
		r->i++;
		first = 0;
	}
}

static int ref_value(struct ref *r)
{
	int c;

	ref_ws(r);
	if ((c = ref_peek(r)) < 0)
		return -1;
	switch (c) {
	case '{': return ref_container(r, 1);
	case '[': return ref_container(r, 0);
	case '"': return ref_string(r);
	case 't': return ref_literal(r, "true");
	case 'f': return ref_literal(r, "false");
	case 'n': return ref_literal(r, "null");
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return ref_number(r);
		return ref_fail(r, REF_BAD);
	}
}

static enum ref_st ref_check(const uint8_t *s, size_t n, int unicode, size_t *bad)
{
	struct ref r = { s, n, 0, unicode, 0, REF_OK, 0 };

	if (ref_value(&r) == 0) {
		ref_ws(&r);
		if (r.i < n)
			ref_fail(&r, REF_BAD);
	}
	*bad = r.bad;
	return r.st;
}

/* ------------------------------------------------------------------------ */
/* naive keys                                                               */
/* ------------------------------------------------------------------------ */

/* Decodes a string token's inside as json_unescape() documents it: escapes
 * to UTF-8, a surrogate pair to one code point, a lone surrogate to its
 * 3-byte form. out has room for n bytes. */
static size_t naive_decode(const uint8_t *p, size_t n, uint8_t *out)
{
	size_t i = 0, o = 0;
	long cp, lo;

	while (i < n) {
		if (p[i] != '\\') {
			out[o++] = p[i++];
			continue;
		}
		switch (p[i + 1]) {
		case 'b': cp = '\b'; break;
		case 'f': cp = '\f'; break;
		case 'n': cp = '\n'; break;
		case 'r': cp = '\r'; break;
		case 't': cp = '\t'; break;
		case 'u': cp = -1;   break;
		default:  cp = p[i + 1]; break;
		}
		i += 2;
		if (cp < 0) {
			cp = ref_hex4((const char *)p + i);
			i += 4;
			if (cp >= 0xd800 && cp <= 0xdbff && i + 6 <= n && p[i] == '\\' &&
			    p[i + 1] == 'u') {
				lo = ref_hex4((const char *)p + i + 2);
				if (lo >= 0xdc00 && lo <= 0xdfff) {
					cp = 0x10000 + (cp - 0xd800) * 1024 + (lo - 0xdc00);
					i += 6;
				}
			}
		}
		o += ref_put_utf8(out + o, cp);
	}
	return o;
}

/* The first byte of a value of type t (or of a key). */
static int value_first_ok(uint8_t c, enum json_type t, int key)
{
	if (key)
		return c == '"';
	switch (t) {
	case JSON_T_OBJECT: return c == '{';
	case JSON_T_ARRAY:  return c == '[';
	case JSON_T_STRING: return c == '"';
	case JSON_T_TRUE:   return c == 't';
	case JSON_T_FALSE:  return c == 'f';
	case JSON_T_NULL:   return c == 'n';
	case JSON_T_NUMBER: return c == '-' || (c >= '0' && c <= '9');
	default:            return 0;
	}
}

/* ------------------------------------------------------------------------ */
/* a run                                                                    */
/* ------------------------------------------------------------------------ */

struct ev_rec {
	int ev;
	struct json_ev e;
};

struct run {
	struct ev_rec *ev;
	size_t nev;
	size_t nev_at_cut;          /* events when the first piece was fed */
	enum json_status st_at_cut; /* and the status then */
	int rc;
	enum json_status st;
	enum json_err err;
	uint64_t err_off;
	uint64_t off;
	size_t depth_max;
};

/* Feeds doc[0..n) in pieces ending at cuts[0..ncuts) and n, each from an
 * exactly-sized heap copy; checks the cursor at every event. */
static void run_doc(const uint8_t *doc, size_t n, const size_t *cuts, size_t ncuts,
                    unsigned int flags, struct run *r)
{
	struct json_scanner s;
	struct json_ev e;
	size_t at = 0, to, i;
	int rc = 0;

	/* At most a BEGIN and a VALUE (or KEY) per byte, plus ROOT and END. */
	memset(r, 0, sizeof(*r));
	r->ev = malloc((2 * n + 4) * sizeof(*r->ev));
	need(r->ev != NULL, "malloc");
	json_scan_init(&s, flags);
	for (i = 0; i <= ncuts && rc >= 0; i++) {
		const char *p, *end;
		char *copy;

		to = i < ncuts ? cuts[i] : n;
		copy = malloc(to - at ? to - at : 1);
		need(copy != NULL, "malloc");
		memcpy(copy, doc + at, to - at);
		p = copy;
		end = copy + (to - at);
		while ((rc = json_scan(&s, &p, end, &e)) > 0) {
			uint64_t here = at + (size_t)(p - copy);

			need(json_scan_offset(&s) == here, "offset follows the cursor");
			switch (rc) {
			case JSON_EV_ROOT:
			case JSON_EV_BEGIN:
				need(e.start == here, "BEGIN at the token");
				need(value_first_ok(doc[here], e.type, rc == JSON_EV_BEGIN && e.key),
				     "BEGIN type from its byte");
				break;
			default:
				need(e.end == here, "KEY/VALUE/END right past the token");
				need(e.start < e.end, "span not empty");
				break;
			}
			need(r->nev < 2 * n + 4, "events per byte");
			r->ev[r->nev].ev = rc;
			r->ev[r->nev].e = e;
			r->nev++;
		}
		if (rc == 0)
			need(p == end, "NONE means every byte consumed");
		free(copy);
		if (i == 0) {
			r->nev_at_cut = r->nev;
			r->st_at_cut = json_scan_status(&s);
		}
		at = to;
	}
	r->rc = rc;
	r->st = json_scan_status(&s);
	r->err = s.err;
	r->err_off = s.err_off;
	r->off = json_scan_offset(&s);
	r->depth_max = s.depth_max;
	json_scan_release(&s);
}

static void run_free(struct run *r)
{
	free(r->ev);
}

static void run_same(const struct run *a, const struct run *b, const char *what)
{
	need(a->nev == b->nev, what);
	for (size_t i = 0; i < a->nev; i++) {
		const struct ev_rec *x = &a->ev[i], *y = &b->ev[i];

		need(x->ev == y->ev && x->e.type == y->e.type && x->e.start == y->e.start &&
		     x->e.end == y->e.end && x->e.esc == y->e.esc && x->e.key == y->e.key, what);
	}
	need(a->rc == b->rc && a->st == b->st && a->err == b->err, what);
	need(a->err_off == b->err_off && a->off == b->off && a->depth_max == b->depth_max, what);
}

/* json_each() over a complete document: the members the events gave. */
struct each_check {
	const struct run *r;
	const uint8_t *doc;
	size_t i;          /* next event to match */
	int bad;
};

static void each_member(void *arg, const struct json_member *m)
{
	struct each_check *c = arg;
	const struct ev_rec *v = NULL;
	const char *key = NULL;
	size_t key_len = 0;

	/* The next VALUE, and the KEY before it if any. */
	for (; c->i < c->r->nev; c->i++) {
		const struct ev_rec *e = &c->r->ev[c->i];

		if (e->ev == JSON_EV_KEY) {
			key = (const char *)c->doc + e->e.start;
			key_len = (size_t)(e->e.end - e->e.start);
		} else if (e->ev == JSON_EV_VALUE) {
			v = e;
			c->i++;
			break;
		}
	}
	if (!v || m->type != v->e.type || m->val != (const char *)c->doc + v->e.start ||
	    m->val_len != (size_t)(v->e.end - v->e.start) || m->key != key ||
	    m->key_len != key_len)
		c->bad = 1;
}

/* A complete document: spans re-parse, json_each agrees, keys dedupe like
 * the naive comparison. */
static void check_complete(const uint8_t *doc, size_t n, const struct run *r)
{
	struct json_keys keys;
	struct each_check ec;
	uint8_t *dec[512];
	size_t dlen[512], nk = 0, i, j;
	int naive_dup = 0, type = JSON_T_NONE;

	json_keys_init(&keys);
	for (i = 0; i < r->nev; i++) {
		const struct ev_rec *e = &r->ev[i];
		const char *tok = (const char *)doc + e->e.start;
		size_t len = (size_t)(e->e.end - e->e.start);

		switch (e->ev) {
		case JSON_EV_ROOT:
			type = e->e.type;
			break;
		case JSON_EV_END:
		case JSON_EV_VALUE:
			need(json_valid(tok, len) == e->e.type, "value span re-parses");
			if (e->e.type == JSON_T_STRING)
				need(e->e.esc == (memchr(tok, '\\', len) != NULL), "esc flag");
			break;
		case JSON_EV_KEY:
			need(json_valid(tok, len) == JSON_T_STRING, "key span re-parses");
			need(e->e.esc == (memchr(tok, '\\', len) != NULL), "key esc flag");
			need(json_keys_add(&keys, tok, len) == 0, "keys add");
			if (nk < 512) {
				uint8_t *d = malloc(len ? len : 1);
				char out[64];
				unsigned int fl;
				size_t k;

				need(d != NULL, "malloc");
				dec[nk] = d;
				dlen[nk] = naive_decode((const uint8_t *)tok + 1, len - 2, d);
				k = json_unescape(tok + 1, len - 2, out, sizeof(out), &fl);
				need(k == dlen[nk], "unescape length agrees");
				need(memcmp(out, d, k < sizeof(out) ? k : sizeof(out)) == 0,
				     "unescape bytes agree");
				need(!(fl & JSON_UNESC_BAD), "no bad escape in valid JSON");
				nk++;
			}
			break;
		default:
			break;
		}
	}
	need(r->nev && r->ev[r->nev - 1].ev == JSON_EV_END ? 1 :
	     (type == JSON_T_NUMBER || type == JSON_T_TRUE || type == JSON_T_FALSE ||
	      type == JSON_T_NULL), "a complete document ends with END, or a scalar");
	need(json_valid((const char *)doc, n) == type, "json_valid agrees");

	/* Duplicates: naive pairwise comparison of the decoded keys. */
	for (i = 0; i < nk && !naive_dup; i++)
		for (j = i + 1; j < nk && !naive_dup; j++)
			naive_dup = dlen[i] == dlen[j] && memcmp(dec[i], dec[j], dlen[i]) == 0;
	if (nk < 512)
		need(json_keys_dup(&keys) == naive_dup, "duplicates agree");
	for (i = 0; i < nk; i++)
		free(dec[i]);
	json_keys_release(&keys);

	/* json_each reports the same members. */
	if (type == JSON_T_OBJECT || type == JSON_T_ARRAY) {
		memset(&ec, 0, sizeof(ec));
		ec.r = r;
		ec.doc = doc;
		need(json_each((const char *)doc, n, each_member, &ec) == type, "json_each type");
		need(!ec.bad, "json_each members");
	} else {
		need(json_each((const char *)doc, n, each_member, NULL) == -1, "json_each scalar");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run whole, split, bytes;
	const uint8_t *doc;
	unsigned int flags;
	size_t n, cuts[2], *all, bad, k;
	enum ref_st ref;

	if (size < 3)
		return 0;
	flags = data[0] & 1 ? JSON_FL_UNICODE : 0;
	doc = data + 3;
	n = size - 3;
	cuts[0] = n ? data[1] * 257u % (n + 1) : 0;
	cuts[1] = cuts[0] + (n - cuts[0] ? data[2] * 263u % (n - cuts[0] + 1) : 0);

	run_doc(doc, n, NULL, 0, flags, &whole);
	need((whole.rc < 0) == (whole.st == JSON_INVALID), "rc and status agree");
	need(whole.st != JSON_INVALID || whole.err_off < n, "error inside the input");

	/* Split: the same run; the first piece is a prefix. */
	run_doc(doc, n, cuts, 2, flags, &split);
	run_same(&whole, &split, "split run differs");
	need(split.nev_at_cut <= whole.nev, "prefix events");
	if (split.st_at_cut == JSON_INVALID)
		need(whole.st == JSON_INVALID && whole.err_off < cuts[0], "bad prefix => bad whole");
	else if (whole.st == JSON_INVALID && whole.err_off < cuts[0])
		need(0, "bad whole before the cut => bad prefix");
	run_free(&split);

	/* One byte at a time. */
	if (n <= 2048) {
		all = malloc((n ? n : 1) * sizeof(*all));
		need(all != NULL, "malloc");
		for (k = 0; k < n; k++)
			all[k] = k + 1;
		run_doc(doc, n, all, n ? n - 1 : 0, flags, &bytes);
		run_same(&whole, &bytes, "byte-at-a-time run differs");
		run_free(&bytes);
		free(all);
	}

	/* The reference validator. */
	ref = ref_check(doc, n, flags & JSON_FL_UNICODE, &bad);
	if (ref != REF_DEEP && !(whole.st == JSON_INVALID && whole.err == JSON_ERR_NOMEM)) {
		switch (whole.st) {
		case JSON_COMPLETE:
			need(ref == REF_OK, "complete, reference agrees");
			break;
		case JSON_TRUNCATED:
			need(ref == REF_MORE, "truncated, reference agrees");
			break;
		case JSON_INVALID:
			need(ref == REF_BAD, "invalid, reference agrees");
			need(bad == whole.err_off, "first bad byte agrees");
			break;
		}
	}

	if (whole.st == JSON_COMPLETE)
		check_complete(doc, n, &whole);
	run_free(&whole);
	return 0;
}
