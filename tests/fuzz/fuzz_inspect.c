/*
 * libFuzzer target for body inspection. Each input is inspected as a whole
 * body and as the prefix of a longer one, and the results are checked
 * against invariants the rest of the agent relies on (the scanner itself
 * has fuzz_json):
 *  - every body is read whole, read as a valid prefix, or refused: a whole
 *    body is INVALID exactly when json_valid() refuses it and NOT_OBJECT
 *    exactly when it is valid JSON of another type;
 *  - a PRESENT model's token lies inside the input, is quoted, and decodes
 *    (with a separate, naive decoder) to the reported model;
 *  - json_quote of that model, spliced into {"model":...}, reads back the
 *    same (this is what the model rewrite does);
 *  - a reported metadata.user_id is a clean, bounded string;
 *  - a valid body is a valid prefix saying the same, and a shorter prefix of
 *    a valid prefix is valid and never says more (a duplicate key found in
 *    it stays found in the longer one);
 *  - a PRESENT max_tokens, written back as {"max_tokens":N}, reads the same;
 *  - json_quote of arbitrary bytes decodes back to them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <realms/inspect.h>
#include <realms/json.h>

#include "ref.h"

/* Not assert(): the fuzz build may define NDEBUG. */
static void need(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_inspect: invariant failed: %s\n", what);
		abort();
	}
}

/* The obvious decoder, one byte at a time, into out (room for n bytes:
 * decoding never lengthens). Returns the length, or -1 if the string is no
 * clean name (control char, lone surrogate, bad escape). */
static long ref_decode(const char *p, size_t n, char *out)
{
	size_t i = 0, o = 0;
	long cp, lo;

	while (i < n) {
		unsigned char c = p[i++];

		if (c < 0x20)
			return -1;
		if (c != '\\') {
			out[o++] = c;
			continue;
		}
		if (i >= n)
			return -1;
		c = p[i++];
		switch (c) {
		case '"': case '\\': case '/': out[o++] = c; continue;
		case 'b': case 'f': case 'n': case 'r': case 't': return -1;
		case 'u': break;
		default: return -1;
		}
		if (n - i < 4 || (cp = ref_hex4(p + i)) < 0)
			return -1;
		i += 4;
		if (cp >= 0xdc00 && cp <= 0xdfff)
			return -1;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			if (n - i < 6 || p[i] != '\\' || p[i + 1] != 'u')
				return -1;
			lo = ref_hex4(p + i + 2);
			if (lo < 0xdc00 || lo > 0xdfff)
				return -1;
			i += 6;
			cp = 0x10000 + (cp - 0xd800) * 1024 + (lo - 0xdc00);
		}
		if (cp < 0x20)
			return -1;
		o += ref_put_utf8((uint8_t *)out + o, cp);
	}
	return (long)o;
}

/* Decodes any json_quote output back, control chars included. */
static long unquote_any(const char *p, size_t n, char *out)
{
	size_t i = 0, o = 0;
	long cp;

	while (i < n) {
		unsigned char c = p[i++];

		if (c == '"' || c < 0x20)
			return -1;
		if (c != '\\') {
			out[o++] = c;
			continue;
		}
		if (i >= n)
			return -1;
		switch (p[i++]) {
		case '"':  out[o++] = '"';  break;
		case '\\': out[o++] = '\\'; break;
		case 'b':  out[o++] = '\b'; break;
		case 'f':  out[o++] = '\f'; break;
		case 'n':  out[o++] = '\n'; break;
		case 'r':  out[o++] = '\r'; break;
		case 't':  out[o++] = '\t'; break;
		case 'u':
			if (n - i < 4 || (cp = ref_hex4(p + i)) < 0 || cp >= 0x20)
				return -1;
			i += 4;
			out[o++] = cp;
			break;
		default:
			return -1;
		}
	}
	return (long)o;
}

static void check_result(const uint8_t *data, size_t size, size_t body_len,
                         const struct inspect_result *res)
{
	char dec[INSPECT_MODEL_MAX * 6 + 16];
	char body[INSPECT_MODEL_MAX * 6 + 32];
	struct inspect_result again;
	long n, q;
	size_t off, tl;

	need(res->status >= INSPECT_OK && res->status <= INSPECT_DUPLICATE_KEY, "status range");
	need((res->status == INSPECT_EMPTY) == (body_len == 0), "empty iff body_len 0");
	need(!res->complete || size >= body_len, "complete means whole");
	if (res->status == INSPECT_INVALID || res->status == INSPECT_EMPTY ||
	    res->status == INSPECT_NOT_OBJECT) {
		need(res->model_state == INSPECT_KEY_ABSENT, "no model on failure");
		need(res->stream_state == INSPECT_KEY_ABSENT, "no stream on failure");
		need(res->user_id_len == 0, "no user_id on failure");
	}
	need(res->user_id_len <= INSPECT_USER_ID_MAX, "user_id length");
	need(res->user_id[res->user_id_len] == 0, "user_id NUL-terminated");
	need(strlen(res->user_id) == res->user_id_len, "no NUL in user_id");
	need(!res->model_too_long || res->model_state == INSPECT_KEY_WRONG_TYPE, "too long");
	if (res->status == INSPECT_INVALID || res->status == INSPECT_EMPTY ||
	    res->status == INSPECT_NOT_OBJECT)
		need(res->max_tokens_state == INSPECT_KEY_ABSENT, "no max_tokens on failure");
	if (res->max_tokens_state == INSPECT_KEY_PRESENT) {
		char mt[64];
		int k = snprintf(mt, sizeof(mt), "{\"max_tokens\":%llu}",
		                 (unsigned long long)res->max_tokens);

		inspect_body(mt, (size_t)k, (size_t)k, &again);
		need(again.status == INSPECT_OK && again.max_tokens_state == INSPECT_KEY_PRESENT &&
		     again.max_tokens == res->max_tokens, "max_tokens round trip");
	} else {
		need(res->max_tokens == 0, "no max_tokens value unless present");
	}
	if (res->stream_state == INSPECT_KEY_PRESENT)
		need(res->stream == 0 || res->stream == 1, "stream bool");
	if (res->model_state != INSPECT_KEY_PRESENT) {
		need(res->model_len == 0 && res->model[0] == 0, "no model bytes");
		return;
	}

	off = res->model_off;
	tl = res->model_tok_len;
	need(tl >= 2 && off < size && tl <= size - off, "token inside input");
	need(data[off] == '"' && data[off + tl - 1] == '"', "token quoted");
	need(res->model_len <= INSPECT_MODEL_MAX, "model length");
	need(res->model[res->model_len] == 0, "model NUL-terminated");
	need(strlen(res->model) == res->model_len, "no NUL in model");
	need(tl - 2 <= sizeof(dec), "token fits the decoder");
	n = ref_decode((const char *)data + off + 1, tl - 2, dec);
	need(n == (long)res->model_len, "decoded length");
	need(memcmp(dec, res->model, res->model_len) == 0, "decoded bytes");

	/* The rewrite: a quoted name in place of the token reads back. */
	memcpy(body, "{\"model\":", 9);
	q = json_quote(res->model, res->model_len, body + 9, sizeof(body) - 10);
	need(q >= 2, "json_quote fits");
	body[9 + q] = '}';
	inspect_body(body, 9 + q + 1, 9 + q + 1, &again);
	need(again.status == INSPECT_OK, "requoted body ok");
	need(again.model_state == INSPECT_KEY_PRESENT, "requoted model present");
	need(again.model_len == res->model_len &&
	     memcmp(again.model, res->model, res->model_len) == 0, "requoted model same");
	need(again.model_off == 9 && again.model_tok_len == (size_t)q, "requoted offsets");
}

static int good(enum inspect_status st)
{
	return st == INSPECT_OK || st == INSPECT_DUPLICATE_KEY;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct inspect_result whole, cut, shorter;
	const char *s = (const char *)data;
	char quoted[6 * 300 + 2], back[300];
	size_t half = size / 2, qn;
	long n;

	inspect_body(s, size, size, &whole);
	check_result(data, size, size, &whole);
	inspect_body(s, size, size + 1000, &cut);
	check_result(data, size, size + 1000, &cut);
	need(!cut.complete, "cut is not complete");
	need(!whole.complete || good(whole.status) || whole.status == INSPECT_NOT_OBJECT,
	     "complete means validated");
	need(whole.status != INSPECT_OK || whole.complete, "whole ok means complete");
	if (size) {
		enum json_type t = json_valid(s, size);

		need((whole.status == INSPECT_INVALID) == (t == JSON_T_NONE), "invalid iff json_valid");
		need((whole.status == INSPECT_NOT_OBJECT) == (t != JSON_T_NONE && t != JSON_T_OBJECT),
		     "not_object iff another type");
		need(whole.complete == (t != JSON_T_NONE), "complete iff valid");
	}

	/* A valid whole body is a valid prefix that says the same. */
	if (good(whole.status)) {
		need(cut.status == whole.status, "whole ok => prefix ok");
		need(cut.model_state == whole.model_state &&
		     cut.stream_state == whole.stream_state &&
		     cut.max_tokens_state == whole.max_tokens_state &&
		     cut.max_tokens == whole.max_tokens &&
		     cut.model_len == whole.model_len &&
		     memcmp(cut.model, whole.model, whole.model_len) == 0 &&
		     cut.model_off == whole.model_off && cut.stream == whole.stream &&
		     cut.user_id_len == whole.user_id_len &&
		     memcmp(cut.user_id, whole.user_id, whole.user_id_len) == 0,
		     "whole and prefix agree");
	}
	if (cut.status == INSPECT_INVALID)
		need(whole.status == INSPECT_INVALID, "bad prefix => bad body");

	/* A shorter prefix of a valid prefix is valid and knows no more. */
	inspect_body(s, half, size + 1000, &shorter);
	check_result(data, half, size + 1000, &shorter);
	if (good(cut.status)) {
		need(good(shorter.status), "prefix of ok prefix ok");
		need(shorter.status != INSPECT_DUPLICATE_KEY || cut.status == INSPECT_DUPLICATE_KEY,
		     "a duplicate stays found");
		if (shorter.model_state != INSPECT_KEY_ABSENT && cut.status == INSPECT_OK &&
		    shorter.status == INSPECT_OK) {
			need(cut.model_state == shorter.model_state, "model stays");
			need(cut.model_off == shorter.model_off &&
			     cut.model_tok_len == shorter.model_tok_len, "model token stays");
		}
		if (shorter.stream_state != INSPECT_KEY_ABSENT && cut.status == INSPECT_OK &&
		    shorter.status == INSPECT_OK)
			need(cut.stream_state == shorter.stream_state &&
			     cut.stream == shorter.stream, "stream stays");
		if (shorter.user_id_len && cut.status == INSPECT_OK && shorter.status == INSPECT_OK)
			need(cut.user_id_len == shorter.user_id_len &&
			     memcmp(cut.user_id, shorter.user_id, cut.user_id_len) == 0,
			     "user_id stays");
	}

	/* json_quote of any bytes decodes back to them. */
	qn = size < sizeof(back) ? size : sizeof(back);
	n = json_quote(s, qn, quoted, sizeof(quoted));
	need(n >= 2 && quoted[0] == '"' && quoted[n - 1] == '"', "quote shape");
	need(unquote_any(quoted + 1, n - 2, back) == (long)qn &&
	     memcmp(back, s, qn) == 0, "quote round trip");
	need(json_quote(s, qn, quoted, (size_t)n - 1) == -1, "quote one byte short");
	return 0;
}
