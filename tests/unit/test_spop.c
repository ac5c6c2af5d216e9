/*
 * Unit tests of the SPOP codec (agent/src/spop.c).
 *
 * Every decoder is run on exactly-sized heap copies of its input, so that
 * ASan reports any read past the end; every encoder writes into exactly-sized
 * heap buffers for the same reason on the write side.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include <realms/spop.h>

#define NV 13   /* values in fill_values() */

/* ---- helpers ------------------------------------------------------------ */

/* A heap copy of exactly n bytes: one byte further is an ASan report. The
 * caller frees it. */
static uint8_t *dup_exact(const void *b, size_t n)
{
	uint8_t *p = malloc(n);

	assert_non_null(p);
	if (n)
		memcpy(p, b, n);
	return p;
}

/* Every type, with the edge values of each integer. */
static void fill_values(struct spop_data v[NV])
{
	static const uint8_t bin[] = { 0x00, 0x01, 0xff, 0x00, 0x80 };
	int i = 0;

	memset(v, 0, sizeof(*v) * NV);
	v[i++].type = SPOP_DATA_T_NULL;
	v[i++] = spop_bool(1);
	v[i++] = spop_bool(0);
	v[i].type = SPOP_DATA_T_INT32;
	v[i++].u.s32 = -42;
	v[i].type = SPOP_DATA_T_INT32;
	v[i++].u.s32 = INT32_MIN;
	v[i].type = SPOP_DATA_T_UINT32;
	v[i++].u.u32 = UINT32_MAX;
	v[i++] = spop_sint(INT64_MIN);
	v[i++] = spop_sint(-1);
	v[i].type = SPOP_DATA_T_UINT64;
	v[i++].u.u64 = UINT64_MAX;
	v[i].type = SPOP_DATA_T_IPV4;
	assert_int_equal(inet_pton(AF_INET, "192.0.2.1", &v[i++].u.ipv4), 1);
	v[i].type = SPOP_DATA_T_IPV6;
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &v[i++].u.ipv6), 1);
	v[i++] = spop_str("claude-opus", 11);
	v[i++] = spop_bin(bin, sizeof(bin));
	assert_int_equal(i, NV);
}

static void assert_slice(const struct spop_slice *s, const char *lit, size_t len)
{
	assert_int_equal(s->len, len);
	if (len)
		assert_memory_equal(s->ptr, lit, len);
}

static void assert_slice_str(const struct spop_slice *s, const char *lit)
{
	assert_slice(s, lit, strlen(lit));
}

static void assert_data_eq(const struct spop_data *a, const struct spop_data *b)
{
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case SPOP_DATA_T_NULL:
		break;
	case SPOP_DATA_T_BOOL:
		assert_int_equal(!!a->u.boolean, !!b->u.boolean);
		break;
	case SPOP_DATA_T_INT32:
		assert_int_equal(a->u.s32, b->u.s32);
		break;
	case SPOP_DATA_T_UINT32:
		assert_int_equal(a->u.u32, b->u.u32);
		break;
	case SPOP_DATA_T_INT64:
		assert_true(a->u.s64 == b->u.s64);
		break;
	case SPOP_DATA_T_UINT64:
		assert_true(a->u.u64 == b->u.u64);
		break;
	case SPOP_DATA_T_IPV4:
		assert_memory_equal(&a->u.ipv4, &b->u.ipv4, 4);
		break;
	case SPOP_DATA_T_IPV6:
		assert_memory_equal(&a->u.ipv6, &b->u.ipv6, 16);
		break;
	case SPOP_DATA_T_STR:
	case SPOP_DATA_T_BIN:
		assert_slice(&a->u.str, b->u.str.ptr, b->u.str.len);
		break;
	default:
		fail_msg("unexpected type %d", a->type);
	}
}

/* ---- the frames under test ---------------------------------------------- */

/* Each builder writes one frame into [buf, buf+size) and returns its size or
 * -1, so that the same frame serves the round trip, the byte-by-byte feed,
 * the truncations and the encoder overflow tests. */
typedef ssize_t (*build_fn)(uint8_t *buf, size_t size);

static ssize_t b_haproxy_hello(uint8_t *buf, size_t size)
{
	return spop_build_haproxy_hello(buf, size, 16380, 0);
}

static ssize_t b_haproxy_hello_hc(uint8_t *buf, size_t size)
{
	return spop_build_haproxy_hello(buf, size, 65532, 1);
}

static ssize_t b_agent_hello(uint8_t *buf, size_t size)
{
	return spop_build_agent_hello(buf, size, 16380);
}

static ssize_t b_agent_disconnect(uint8_t *buf, size_t size)
{
	return spop_build_agent_disconnect(buf, size, SPOP_ERR_BAD_VSN,
	                                   spop_err_str(SPOP_ERR_BAD_VSN));
}

static ssize_t b_haproxy_disconnect(uint8_t *buf, size_t size)
{
	return spop_build_haproxy_disconnect(buf, size, SPOP_ERR_NONE, "bye");
}

#define NOTIFY_SID  1234567
#define NOTIFY_FID  240

/* Three messages: every type (and its edge values), two more arguments, and
 * one without arguments. */
static ssize_t b_notify(uint8_t *buf, size_t size)
{
	struct spop_data v[NV], d;
	struct spop_wr w;
	char name[16];
	int i;

	fill_values(v);
	spop_wr_init(&w, buf, size);
	spop_frame_begin(&w, SPOP_FRM_T_HAPROXY_NOTIFY, SPOP_FRM_FL_FIN,
	                 NOTIFY_SID, NOTIFY_FID);
	spop_put_msg(&w, "check-request", NV);
	for (i = 0; i < NV; i++) {
		snprintf(name, sizeof(name), "arg%d", i);
		spop_put_kv(&w, name, &v[i]);
	}
	spop_put_msg(&w, "check-response", 2);
	d.type = SPOP_DATA_T_INT32;
	d.u.s32 = INT32_MAX;
	spop_put_kv(&w, "status", &d);
	d = spop_str("", 0);
	spop_put_kv(&w, "", &d);
	spop_put_msg(&w, "empty", 0);
	return spop_frame_end(&w);
}

#define ACK_SID  UINT64_MAX
#define ACK_FID  ((uint64_t)UINT32_MAX)

/* set-var of every value in every scope, then unset-var in every scope. */
static ssize_t b_ack(uint8_t *buf, size_t size)
{
	struct spop_data v[NV];
	struct spop_wr w;
	char name[16];
	int scope, i, n;

	fill_values(v);
	spop_wr_init(&w, buf, size);
	spop_frame_begin(&w, SPOP_FRM_T_AGENT_ACK, SPOP_FRM_FL_FIN, ACK_SID,
	                 ACK_FID);
	for (scope = SPOP_SCOPE_PROC; scope <= SPOP_SCOPE_RES; scope++) {
		for (i = 0; i < NV; i++) {
			n = snprintf(name, sizeof(name), "v%d_%d", scope, i);
			spop_put_set_var(&w, scope, name, n, &v[i]);
		}
	}
	for (scope = SPOP_SCOPE_PROC; scope <= SPOP_SCOPE_RES; scope++)
		spop_put_unset_var(&w, scope, "gone", 4);
	return spop_frame_end(&w);
}

static const struct {
	const char *name;
	build_fn build;
	uint8_t type;
} frames[] = {
	{ "haproxy-hello",       b_haproxy_hello,      SPOP_FRM_T_HAPROXY_HELLO },
	{ "haproxy-hello-hc",    b_haproxy_hello_hc,   SPOP_FRM_T_HAPROXY_HELLO },
	{ "agent-hello",         b_agent_hello,        SPOP_FRM_T_AGENT_HELLO },
	{ "notify",              b_notify,             SPOP_FRM_T_HAPROXY_NOTIFY },
	{ "ack",                 b_ack,                SPOP_FRM_T_AGENT_ACK },
	{ "agent-disconnect",    b_agent_disconnect,   SPOP_FRM_T_AGENT_DISCON },
	{ "haproxy-disconnect",  b_haproxy_disconnect, SPOP_FRM_T_HAPROXY_DISCON },
};
#define NFRAMES (sizeof(frames) / sizeof(frames[0]))

/* Builds frame i into a heap buffer of exactly its size. */
static uint8_t *build_exact(size_t i, size_t *len)
{
	static uint8_t tmp[8192] = { 0 };
	ssize_t n = frames[i].build(tmp, sizeof(tmp));

	assert_true(n > 0);
	*len = n;
	return dup_exact(tmp, n);
}

/* Runs every payload decoder over [p, p+len): they may refuse it, but must
 * never read outside it nor loop. */
static void walk_payload(const uint8_t *p, size_t len)
{
	const uint8_t *q, *end = p + len;
	struct spop_hello h;
	struct spop_msg m;
	struct spop_action a;
	struct spop_kv kv;
	struct spop_slice s;
	enum spop_err err;
	uint32_t st;
	int ret;

	(void)spop_hello_parse(p, len, &h, &err);
	(void)spop_disconnect_parse(p, len, &st, &s);
	for (q = p; (ret = spop_kv_next(&q, end, &kv)) == 1; )
		;
	for (q = p; (ret = spop_msg_next(&q, end, &m)) == 1; )
		;
	for (q = p; (ret = spop_action_next(&q, end, &a)) == 1; )
		;
}

/* ---- varints ------------------------------------------------------------ */

static void check_varint(uint64_t v, const uint8_t *enc, int n)
{
	uint8_t out[10];
	const uint8_t *p;
	uint8_t *cp;
	uint64_t got = 0;
	int k;

	assert_int_equal(spop_varint_len(v), n);
	memset(out, 0xaa, sizeof(out));
	assert_int_equal(spop_put_varint_raw(out, out + sizeof(out), v), n);
	if (enc)
		assert_memory_equal(out, enc, n);

	cp = dup_exact(out, n);
	p = cp;
	assert_int_equal(spop_get_varint(&p, cp + n, &got), n);
	assert_true(got == v);
	assert_ptr_equal(p, cp + n);
	free(cp);

	/* every truncation needs more, and leaves the cursor alone */
	for (k = 0; k < n; k++) {
		cp = dup_exact(out, k);
		p = cp;
		assert_int_equal(spop_get_varint(&p, cp + k, &got), 0);
		assert_ptr_equal(p, cp);
		free(cp);
	}
	/* no room: nothing written */
	for (k = 0; k < n; k++) {
		memset(out, 0xaa, sizeof(out));
		assert_int_equal(spop_put_varint_raw(out, out + k, v), 0);
		assert_int_equal(out[0], 0xaa);
	}
}

/* HAProxy's own vectors (include/haproxy/intops.h, spoe tests). */
static void test_varint_vectors(void **state)
{
	(void)state;
	check_varint(0, (const uint8_t[]){ 0x00 }, 1);
	check_varint(239, (const uint8_t[]){ 0xef }, 1);
	check_varint(240, (const uint8_t[]){ 0xf0, 0x00 }, 2);
	check_varint(1000, (const uint8_t[]){ 0xf8, 0x2f }, 2);
	check_varint(2287, NULL, 2);
	check_varint(2288, (const uint8_t[]){ 0xf0, 0x80, 0x00 }, 3);
	check_varint(16380, (const uint8_t[]){ 0xfc, 0xf0, 0x06 }, 3);
	check_varint(1048572, (const uint8_t[]){ 0xfc, 0xf0, 0xfe, 0x02 }, 4);
	check_varint(264431, NULL, 3);
	check_varint(264432, NULL, 4);
	check_varint(33818863, NULL, 4);
	check_varint(33818864, NULL, 5);
	check_varint(UINT32_MAX, NULL, 5);
	check_varint(UINT64_MAX, NULL, 10);
}

static void test_varint_roundtrip(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 64; i++) {
		uint64_t v = (uint64_t)1 << i;

		check_varint(v - 1, NULL, spop_varint_len(v - 1));
		check_varint(v, NULL, spop_varint_len(v));
		check_varint(v + 1, NULL, spop_varint_len(v + 1));
		check_varint(~v, NULL, spop_varint_len(~v));
	}
	check_varint(UINT64_MAX - 1, NULL, 10);
	check_varint((uint64_t)INT64_MIN, NULL, 10);
}

static void test_varint_bad(void **state)
{
	static const uint8_t cont11[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	                                  0xff, 0xff, 0xff, 0xff, 0xff, 0x00 };
	/* UINT64_MAX with its last byte one higher: 2^64 + something */
	uint8_t over[10];
	const uint8_t *p;
	uint8_t *cp;
	uint64_t v = 7;
	int n;

	(void)state;
	/* 11 continuation bytes: refused at the 10th, whatever follows */
	cp = dup_exact(cont11, sizeof(cont11));
	p = cp;
	assert_int_equal(spop_get_varint(&p, cp + sizeof(cont11), &v), -1);
	assert_ptr_equal(p, cp);
	assert_true(v == 7);
	free(cp);
	/* ... and even when the buffer stops right there */
	cp = dup_exact(cont11, 10);
	p = cp;
	assert_int_equal(spop_get_varint(&p, cp + 10, &v), -1);
	free(cp);
	/* but 9 of them may still be a value */
	cp = dup_exact(cont11, 9);
	p = cp;
	assert_int_equal(spop_get_varint(&p, cp + 9, &v), 0);
	free(cp);

	/* a 10th byte adding bits above bit 63 */
	n = spop_put_varint_raw(over, over + sizeof(over), UINT64_MAX);
	assert_int_equal(n, 10);
	over[9] = 0x10;
	cp = dup_exact(over, 10);
	p = cp;
	assert_int_equal(spop_get_varint(&p, cp + 10, &v), -1);
	free(cp);
	/* a 10th byte that fits but carries out of 64 bits */
	over[9] = 0x0f;
	over[0] = 0xff;
	cp = dup_exact(over, 10);
	p = cp;
	assert_int_equal(spop_get_varint(&p, cp + 10, &v), -1);
	free(cp);

	/* truncated: the first byte announces more */
	cp = dup_exact((const uint8_t[]){ 0xf0 }, 1);
	p = cp;
	assert_int_equal(spop_get_varint(&p, cp + 1, &v), 0);
	free(cp);
	cp = dup_exact((const uint8_t[]){ 0xf0, 0x80 }, 2);
	p = cp;
	assert_int_equal(spop_get_varint(&p, cp + 2, &v), 0);
	assert_ptr_equal(p, cp);
	free(cp);
	/* empty */
	cp = dup_exact("", 0);
	p = cp;
	assert_int_equal(spop_get_varint(&p, cp, &v), 0);
	free(cp);
}

/* ---- typed data --------------------------------------------------------- */

static void test_data_roundtrip(void **state)
{
	struct spop_data v[NV], got;
	uint8_t buf[64] = { 0 }, *cp;
	const uint8_t *p;
	struct spop_wr w;
	size_t n, k;
	int i;

	(void)state;
	fill_values(v);
	for (i = 0; i < NV; i++) {
		spop_wr_init(&w, buf, sizeof(buf));
		spop_put_data(&w, &v[i]);
		assert_false(w.overflow);
		n = w.p - buf;

		cp = dup_exact(buf, n);
		p = cp;
		assert_int_equal(spop_get_data(&p, cp + n, &got), n);
		assert_ptr_equal(p, cp + n);
		assert_data_eq(&got, &v[i]);
		free(cp);

		for (k = 0; k < n; k++) {
			cp = dup_exact(buf, k);
			p = cp;
			assert_int_equal(spop_get_data(&p, cp + k, &got), 0);
			assert_ptr_equal(p, cp);
			free(cp);
		}
	}
	/* the exact bytes of a few */
	spop_wr_init(&w, buf, sizeof(buf));
	spop_put_data(&w, &v[1]);   /* true */
	spop_put_data(&w, &v[2]);   /* false */
	spop_put_data(&w, &v[3]);   /* INT32 -42, sign-extended */
	assert_int_equal(w.p - buf, 1 + 1 + 1 + 10);
	assert_int_equal(buf[0], 0x11);
	assert_int_equal(buf[1], 0x01);
	assert_int_equal(buf[2], 0x02);
}

static void decode1(const uint8_t *enc, size_t n, int want, struct spop_data *d)
{
	uint8_t *cp = dup_exact(enc, n);
	const uint8_t *p = cp;

	assert_int_equal(spop_get_data(&p, cp + n, d), want);
	assert_ptr_equal(p, want > 0 ? cp + n : cp);
	free(cp);
}

/* A typed value with its type byte and its varint. */
static size_t enc_int(uint8_t *buf, uint8_t type, uint64_t v)
{
	buf[0] = type;
	return 1 + spop_put_varint_raw(buf + 1, buf + 11, v);
}

static void test_data_ints(void **state)
{
	struct spop_data d;
	uint8_t buf[16] = { 0 };
	size_t n;

	(void)state;
	/* INT32 as its 32-bit pattern, as some agents send it */
	n = enc_int(buf, SPOP_DATA_T_INT32, 0xfffffffbu);
	decode1(buf, n, n, &d);
	assert_int_equal(d.u.s32, -5);
	/* INT32 sign-extended, as HAProxy sends it */
	n = enc_int(buf, SPOP_DATA_T_INT32, (uint64_t)(int64_t)INT32_MIN);
	decode1(buf, n, n, &d);
	assert_int_equal(d.u.s32, INT32_MIN);
	/* INT32 out of range either way */
	n = enc_int(buf, SPOP_DATA_T_INT32, (uint64_t)UINT32_MAX + 1);
	decode1(buf, n, -1, &d);
	n = enc_int(buf, SPOP_DATA_T_INT32, (uint64_t)((int64_t)INT32_MIN - 1));
	decode1(buf, n, -1, &d);
	/* UINT32 */
	n = enc_int(buf, SPOP_DATA_T_UINT32, UINT32_MAX);
	decode1(buf, n, n, &d);
	assert_int_equal(d.u.u32, UINT32_MAX);
	n = enc_int(buf, SPOP_DATA_T_UINT32, (uint64_t)UINT32_MAX + 1);
	decode1(buf, n, -1, &d);
	/* a bad varint inside a value */
	memcpy(buf, (const uint8_t[]){ SPOP_DATA_T_INT64, 0xff, 0xff, 0xff, 0xff,
	       0xff, 0xff, 0xff, 0xff, 0xff, 0xff }, 11);
	decode1(buf, 11, -1, &d);
	/* flags on a non-boolean are ignored; other flags on a boolean too */
	n = enc_int(buf, SPOP_DATA_T_UINT64 | 0xf0, 7);
	decode1(buf, n, n, &d);
	assert_int_equal(d.type, SPOP_DATA_T_UINT64);
	assert_true(d.u.u64 == 7);
	buf[0] = SPOP_DATA_T_BOOL | 0xe0;
	decode1(buf, 1, 1, &d);
	assert_false(d.u.boolean);
	buf[0] = SPOP_DATA_T_BOOL | 0x30;
	decode1(buf, 1, 1, &d);
	assert_true(d.u.boolean);
}

static void test_data_unknown_types(void **state)
{
	struct spop_data d;
	uint8_t buf[4] = { 0, 0, 0, 0 };
	int t, fl;

	(void)state;
	for (t = 10; t <= 15; t++) {
		for (fl = 0; fl < 16; fl++) {
			buf[0] = (uint8_t)(fl << 4 | t);
			decode1(buf, sizeof(buf), -1, &d);
			decode1(buf, 1, -1, &d);
		}
	}
}

static void test_data_strings(void **state)
{
	struct spop_slice s;
	struct spop_data d;
	uint8_t buf[32] = { 0 }, *cp;
	const uint8_t *p;
	size_t n;

	(void)state;
	/* a length larger than the buffer needs more, whatever its size */
	buf[0] = SPOP_DATA_T_STR;
	n = 1 + spop_put_varint_raw(buf + 1, buf + sizeof(buf), 1000);
	memcpy(buf + n, "abc", 3);
	decode1(buf, n + 3, 0, &d);
	/* an absurd length is malformed, not a wait for 2^63 bytes */
	n = 1 + spop_put_varint_raw(buf + 1, buf + sizeof(buf), UINT64_MAX / 2);
	decode1(buf, n + 3, -1, &d);
	/* an empty string */
	buf[1] = 0;
	decode1(buf, 2, 2, &d);
	assert_int_equal(d.u.str.len, 0);

	/* spop_get_str: no type byte */
	cp = dup_exact((const uint8_t[]){ 3, 'a', 'b', 'c', 'd' }, 5);
	p = cp;
	assert_int_equal(spop_get_str(&p, cp + 5, &s), 4);
	assert_slice_str(&s, "abc");
	assert_ptr_equal(p, cp + 4);
	p = cp;
	assert_int_equal(spop_get_str(&p, cp + 3, &s), 0);
	assert_ptr_equal(p, cp);
	free(cp);
}

/* ---- frames: round trips ------------------------------------------------ */

static void parse_exact(const uint8_t *buf, size_t n, struct spop_frame *f)
{
	enum spop_err err = SPOP_ERR_UNKNOWN;

	assert_int_equal(spop_frame_parse(buf, n, SPOP_MAX_FRAME_SIZE, f, &err), n);
	assert_int_equal(err, SPOP_ERR_NONE);
	assert_ptr_equal(f->payload + f->payload_len, buf + n);
}

static void test_frame_haproxy_hello(void **state)
{
	struct spop_frame f;
	struct spop_hello h;
	enum spop_err err;
	uint8_t *buf;
	size_t n;

	(void)state;
	buf = build_exact(0, &n);
	parse_exact(buf, n, &f);
	assert_int_equal(f.type, SPOP_FRM_T_HAPROXY_HELLO);
	assert_int_equal(f.flags, SPOP_FRM_FL_FIN);
	assert_true(f.stream_id == 0 && f.frame_id == 0);
	assert_int_equal(spop_hello_parse(f.payload, f.payload_len, &h, &err), 0);
	assert_int_equal(err, SPOP_ERR_NONE);
	assert_int_equal(h.max_frame_size, 16380);
	assert_false(h.healthcheck);
	assert_true(h.pipelining);
	assert_int_equal(h.engine_id.len, 0);
	free(buf);

	buf = build_exact(1, &n);
	parse_exact(buf, n, &f);
	assert_int_equal(spop_hello_parse(f.payload, f.payload_len, &h, &err), 0);
	assert_int_equal(h.max_frame_size, 65532);
	assert_true(h.healthcheck);
	free(buf);
}

static void test_frame_agent_hello(void **state)
{
	const uint8_t *p, *end;
	struct spop_frame f;
	struct spop_kv kv;
	uint8_t *buf;
	size_t n;

	(void)state;
	buf = build_exact(2, &n);
	parse_exact(buf, n, &f);
	assert_int_equal(f.type, SPOP_FRM_T_AGENT_HELLO);
	assert_int_equal(f.flags, SPOP_FRM_FL_FIN);
	assert_true(f.stream_id == 0 && f.frame_id == 0);
	/* the wire bytes: length, type 101, FIN, ids 0 */
	assert_memory_equal(buf + 4, ((const uint8_t[]){ 101, 0, 0, 0, 1, 0, 0 }), 7);
	assert_int_equal(buf[0] << 24 | buf[1] << 16 | buf[2] << 8 | buf[3], n - 4);

	p = f.payload;
	end = p + f.payload_len;
	assert_int_equal(spop_kv_next(&p, end, &kv), 1);
	assert_slice_str(&kv.name, "version");
	assert_int_equal(kv.value.type, SPOP_DATA_T_STR);
	assert_slice_str(&kv.value.u.str, "2.0");
	assert_int_equal(spop_kv_next(&p, end, &kv), 1);
	assert_slice_str(&kv.name, "max-frame-size");
	assert_int_equal(kv.value.type, SPOP_DATA_T_UINT32);
	assert_int_equal(kv.value.u.u32, 16380);
	assert_int_equal(spop_kv_next(&p, end, &kv), 1);
	assert_slice_str(&kv.name, "capabilities");
	assert_int_equal(kv.value.type, SPOP_DATA_T_STR);
	assert_slice_str(&kv.value.u.str, "pipelining");
	assert_int_equal(spop_kv_next(&p, end, &kv), 0);
	assert_ptr_equal(p, end);
	free(buf);
}

static void test_frame_notify(void **state)
{
	struct spop_data v[NV];
	const struct spop_kv *kv;
	const uint8_t *p, *end;
	struct spop_frame f;
	struct spop_msg m;
	char name[16];
	uint8_t *buf;
	size_t n;
	int i;

	(void)state;
	fill_values(v);
	buf = build_exact(3, &n);
	parse_exact(buf, n, &f);
	assert_int_equal(f.type, SPOP_FRM_T_HAPROXY_NOTIFY);
	assert_int_equal(f.flags, SPOP_FRM_FL_FIN);
	assert_true(f.stream_id == NOTIFY_SID);
	assert_true(f.frame_id == NOTIFY_FID);

	p = f.payload;
	end = p + f.payload_len;
	assert_int_equal(spop_msg_next(&p, end, &m), 1);
	assert_slice_str(&m.name, "check-request");
	assert_int_equal(m.nb_args, NV);
	assert_int_equal(m.nb_kept, NV);
	for (i = 0; i < NV; i++) {
		snprintf(name, sizeof(name), "arg%d", i);
		assert_slice_str(&m.args[i].name, name);
		assert_data_eq(&m.args[i].value, &v[i]);
		kv = spop_msg_arg(&m, name);
		assert_ptr_equal(kv, &m.args[i]);
	}
	assert_null(spop_msg_arg(&m, "arg"));
	assert_null(spop_msg_arg(&m, "arg13"));

	assert_int_equal(spop_msg_next(&p, end, &m), 1);
	assert_slice_str(&m.name, "check-response");
	assert_int_equal(m.nb_args, 2);
	assert_int_equal(m.args[0].value.type, SPOP_DATA_T_INT32);
	assert_int_equal(m.args[0].value.u.s32, INT32_MAX);
	assert_int_equal(m.args[1].name.len, 0);
	assert_int_equal(m.args[1].value.type, SPOP_DATA_T_STR);
	assert_int_equal(m.args[1].value.u.str.len, 0);
	assert_ptr_equal(spop_msg_arg(&m, ""), &m.args[1]);

	assert_int_equal(spop_msg_next(&p, end, &m), 1);
	assert_slice_str(&m.name, "empty");
	assert_int_equal(m.nb_args, 0);
	assert_int_equal(m.nb_kept, 0);
	assert_null(spop_msg_arg(&m, "status"));

	assert_int_equal(spop_msg_next(&p, end, &m), 0);
	assert_ptr_equal(p, end);
	free(buf);
}

static void test_frame_ack(void **state)
{
	struct spop_data v[NV];
	const uint8_t *p, *end;
	struct spop_action a;
	struct spop_frame f;
	char name[16];
	uint8_t *buf;
	size_t n;
	int scope, i, len;

	(void)state;
	fill_values(v);
	buf = build_exact(4, &n);
	parse_exact(buf, n, &f);
	assert_int_equal(f.type, SPOP_FRM_T_AGENT_ACK);
	assert_int_equal(f.flags, SPOP_FRM_FL_FIN);
	assert_true(f.stream_id == ACK_SID);
	assert_true(f.frame_id == ACK_FID);

	/* SPOE.txt 3.4: <1><3><scope byte><name: varint length + bytes>
	 * <typed value>; the scope and the name carry no type byte */
	assert_memory_equal(f.payload,
	    ((const uint8_t[]){ 1, 3, 0, 4, 'v', '0', '_', '0', SPOP_DATA_T_NULL }), 9);

	p = f.payload;
	end = p + f.payload_len;
	for (scope = SPOP_SCOPE_PROC; scope <= SPOP_SCOPE_RES; scope++) {
		for (i = 0; i < NV; i++) {
			len = snprintf(name, sizeof(name), "v%d_%d", scope, i);
			assert_int_equal(spop_action_next(&p, end, &a), 1);
			assert_int_equal(a.type, SPOP_ACT_T_SET_VAR);
			assert_int_equal(a.scope, scope);
			assert_slice(&a.name, name, len);
			assert_data_eq(&a.value, &v[i]);
		}
	}
	for (scope = SPOP_SCOPE_PROC; scope <= SPOP_SCOPE_RES; scope++) {
		assert_int_equal(spop_action_next(&p, end, &a), 1);
		assert_int_equal(a.type, SPOP_ACT_T_UNSET_VAR);
		assert_int_equal(a.scope, scope);
		assert_slice_str(&a.name, "gone");
	}
	assert_int_equal(spop_action_next(&p, end, &a), 0);
	assert_ptr_equal(p, end);

	/* unset-var on the wire */
	assert_memory_equal(end - 8, ((const uint8_t[]){ 2, 2, 4, 4, 'g', 'o', 'n', 'e' }), 8);
	free(buf);
}

static void test_frame_disconnect(void **state)
{
	struct spop_slice msg;
	struct spop_frame f;
	uint32_t st;
	uint8_t *buf;
	size_t n;

	(void)state;
	buf = build_exact(5, &n);
	parse_exact(buf, n, &f);
	assert_int_equal(f.type, SPOP_FRM_T_AGENT_DISCON);
	assert_int_equal(f.flags, SPOP_FRM_FL_FIN);
	assert_int_equal(spop_disconnect_parse(f.payload, f.payload_len, &st, &msg), 0);
	assert_int_equal(st, SPOP_ERR_BAD_VSN);
	assert_slice_str(&msg, "unsupported version");
	free(buf);

	buf = build_exact(6, &n);
	parse_exact(buf, n, &f);
	assert_int_equal(f.type, SPOP_FRM_T_HAPROXY_DISCON);
	assert_int_equal(spop_disconnect_parse(f.payload, f.payload_len, &st, &msg), 0);
	assert_int_equal(st, 0);
	assert_slice_str(&msg, "bye");
	free(buf);

	/* a NULL message is sent empty */
	{
		uint8_t tmp[64];
		ssize_t r = spop_build_agent_disconnect(tmp, sizeof(tmp), 13, NULL);

		assert_true(r > 0);
		parse_exact(tmp, r, &f);
		assert_int_equal(spop_disconnect_parse(f.payload, f.payload_len, &st, &msg), 0);
		assert_int_equal(st, 13);
		assert_int_equal(msg.len, 0);
	}
}

static void test_disconnect_defaults(void **state)
{
	struct spop_slice msg;
	struct spop_data d;
	struct spop_wr w;
	uint8_t buf[64] = { 0 };
	uint32_t st;

	(void)state;
	/* empty: the defaults */
	assert_int_equal(spop_disconnect_parse(buf, 0, &st, &msg), 0);
	assert_int_equal(st, SPOP_ERR_UNKNOWN);
	assert_non_null(msg.ptr);
	assert_int_equal(msg.len, 0);
	/* wrong types are ignored, unknown keys skipped */
	spop_wr_init(&w, buf, sizeof(buf));
	d = spop_sint(3);
	spop_put_kv(&w, "status-code", &d);
	d = spop_bool(1);
	spop_put_kv(&w, "message", &d);
	spop_put_kv(&w, "extra", &d);
	assert_int_equal(spop_disconnect_parse(buf, w.p - buf, &st, &msg), 0);
	assert_int_equal(st, SPOP_ERR_UNKNOWN);
	assert_int_equal(msg.len, 0);
	/* malformed */
	buf[0] = 200;
	assert_int_equal(spop_disconnect_parse(buf, w.p - buf, &st, &msg), -1);
}

/* ---- frames: byte by byte, truncated, too big --------------------------- */

static void test_frames_byte_by_byte(void **state)
{
	struct spop_frame f;
	enum spop_err err;
	uint8_t *full, *cp;
	size_t i, k, n;

	(void)state;
	for (i = 0; i < NFRAMES; i++) {
		full = build_exact(i, &n);
		for (k = 0; k < n; k++) {
			cp = dup_exact(full, k);
			err = SPOP_ERR_UNKNOWN;
			assert_int_equal(spop_frame_parse(cp, k, SPOP_MAX_FRAME_SIZE,
			                                  &f, &err), 0);
			assert_int_equal(err, SPOP_ERR_NONE);
			free(cp);
		}
		assert_int_equal(spop_frame_parse(full, n, SPOP_MAX_FRAME_SIZE,
		                                  &f, &err), n);
		assert_int_equal(f.type, frames[i].type);
		free(full);
	}
}

/* Each frame cut at every offset, two ways: the length prefix kept (the
 * frame parser must wait), and the length prefix rewritten to the cut (the
 * frame is whole but its payload is cut: the payload decoders must refuse it
 * or stop, without reading past it). */
static void test_frames_truncated(void **state)
{
	struct spop_frame f, ref;
	enum spop_err err;
	uint8_t *full, *cp;
	size_t i, k, n, hdr;
	ssize_t r;

	(void)state;
	for (i = 0; i < NFRAMES; i++) {
		full = build_exact(i, &n);
		parse_exact(full, n, &ref);
		hdr = ref.payload - full;
		for (k = 4; k < n; k++) {
			uint32_t flen = k - 4;

			cp = dup_exact(full, k);
			cp[0] = flen >> 24;
			cp[1] = flen >> 16;
			cp[2] = flen >> 8;
			cp[3] = flen;
			r = spop_frame_parse(cp, k, SPOP_MAX_FRAME_SIZE, &f, &err);
			if (k < hdr) {
				assert_int_equal(r, -1);
				assert_int_equal(err, SPOP_ERR_INVALID);
			}
			else {
				assert_int_equal(r, k);
				assert_int_equal(f.payload_len, k - hdr);
				walk_payload(f.payload, f.payload_len);
			}
			free(cp);

			/* the payload alone, in its own exact buffer */
			if (k >= hdr) {
				cp = dup_exact(full + hdr, k - hdr);
				walk_payload(cp, k - hdr);
				free(cp);
			}
		}
		free(full);
	}
}

/* Cut payloads are refused by the decoder made for them. */
static void test_payload_truncated_refused(void **state)
{
	struct spop_frame ref;
	struct spop_hello h;
	struct spop_msg m;
	struct spop_action a;
	enum spop_err err;
	const uint8_t *p;
	uint8_t *full, *cp;
	size_t n, k;
	int ret;

	(void)state;
	/* HELLO: any cut inside an item is INVALID; a cut between items loses
	 * a mandatory key */
	full = build_exact(0, &n);
	parse_exact(full, n, &ref);
	for (k = 0; k < ref.payload_len; k++) {
		cp = dup_exact(ref.payload, k);
		assert_int_equal(spop_hello_parse(cp, k, &h, &err), -1);
		assert_int_not_equal(err, SPOP_ERR_NONE);
		free(cp);
	}
	free(full);

	/* NOTIFY: the last message is then malformed, never shorter */
	full = build_exact(3, &n);
	parse_exact(full, n, &ref);
	for (k = 1; k < ref.payload_len; k++) {
		int msgs = 0;

		cp = dup_exact(ref.payload, k);
		p = cp;
		while ((ret = spop_msg_next(&p, cp + k, &m)) == 1)
			msgs++;
		/* a cut right after a whole message is a shorter list */
		if (ret == 0)
			assert_ptr_equal(p, cp + k);
		else
			assert_int_equal(ret, -1);
		assert_true(msgs < 3);
		free(cp);
	}
	free(full);

	full = build_exact(4, &n);
	parse_exact(full, n, &ref);
	for (k = 1; k < ref.payload_len; k++) {
		int acts = 0;

		cp = dup_exact(ref.payload, k);
		p = cp;
		while ((ret = spop_action_next(&p, cp + k, &a)) == 1)
			acts++;
		assert_true(ret == -1 || (ret == 0 && p == cp + k));
		assert_true(acts < 5 * NV + 5);
		free(cp);
	}
	free(full);
}

static void test_frame_too_big(void **state)
{
	static const uint32_t lens[] = { SPOP_MAX_FRAME_SIZE + 1, 0x7fffffff,
	                                 0x80000000, 0xfffffffe, 0xffffffff };
	struct spop_frame f;
	enum spop_err err;
	uint8_t *cp;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint8_t hdr[4] = { lens[i] >> 24, lens[i] >> 16, lens[i] >> 8, lens[i] };

		cp = dup_exact(hdr, 4);
		assert_int_equal(spop_frame_parse(cp, 4, SPOP_MAX_FRAME_SIZE, &f, &err), -1);
		assert_int_equal(err, SPOP_ERR_TOO_BIG);
		/* fewer than 4 bytes: not known yet */
		assert_int_equal(spop_frame_parse(cp, 3, SPOP_MAX_FRAME_SIZE, &f, &err), 0);
		free(cp);
	}
	/* against a negotiated size: exactly the max waits, one more is refused */
	cp = dup_exact((const uint8_t[]){ 0, 0, 0x3f, 0xfc }, 4);
	assert_int_equal(spop_frame_parse(cp, 4, 16380, &f, &err), 0);
	assert_int_equal(spop_frame_parse(cp, 4, 16379, &f, &err), -1);
	assert_int_equal(err, SPOP_ERR_TOO_BIG);
	assert_int_equal(spop_frame_parse(cp, 4, UINT32_MAX, &f, &err), 0);
	free(cp);
}

static void test_frame_invalid_meta(void **state)
{
	struct spop_frame f;
	enum spop_err err;
	uint8_t buf[32] = { 0 }, *cp;
	uint32_t l;
	ssize_t r;

	(void)state;
	/* too short to hold type, flags and two ids: refused at once */
	for (l = 0; l < 7; l++) {
		uint8_t hdr[4] = { 0, 0, 0, l };

		cp = dup_exact(hdr, 4);
		assert_int_equal(spop_frame_parse(cp, 4, SPOP_MAX_FRAME_SIZE, &f, &err), -1);
		assert_int_equal(err, SPOP_ERR_INVALID);
		free(cp);
	}
	/* a stream-id running past the frame (but not past the buffer) */
	memcpy(buf, (const uint8_t[]){ 0, 0, 0, 7, 3, 0, 0, 0, 1, 0xf0, 0x80, 0x00, 0 }, 13);
	r = spop_frame_parse(buf, 13, SPOP_MAX_FRAME_SIZE, &f, &err);
	assert_int_equal(r, -1);
	assert_int_equal(err, SPOP_ERR_INVALID);
	/* a frame-id running past the frame */
	memcpy(buf, (const uint8_t[]){ 0, 0, 0, 8, 3, 0, 0, 0, 1, 5, 0xf0, 0x80, 0 }, 13);
	r = spop_frame_parse(buf, 13, SPOP_MAX_FRAME_SIZE, &f, &err);
	assert_int_equal(r, -1);
	assert_int_equal(err, SPOP_ERR_INVALID);
	/* a frame-id with 11 continuation bytes */
	memset(buf, 0xff, sizeof(buf));
	memcpy(buf, (const uint8_t[]){ 0, 0, 0, 19, 3, 0, 0, 0, 1, 5 }, 10);
	buf[22] = 0;
	r = spop_frame_parse(buf, 23, SPOP_MAX_FRAME_SIZE, &f, &err);
	assert_int_equal(r, -1);
	assert_int_equal(err, SPOP_ERR_INVALID);

	/* unknown type, no FIN, ABORT: returned as is, the caller decides */
	memcpy(buf, (const uint8_t[]){ 0, 0, 0, 9, 42, 0x80, 0, 0, 2, 0xf0, 0x00, 7, 'x' }, 13);
	cp = dup_exact(buf, 13);
	r = spop_frame_parse(cp, 13, SPOP_MAX_FRAME_SIZE, &f, &err);
	assert_int_equal(r, 13);
	assert_int_equal(f.type, 42);
	assert_int_equal(f.flags, 0x80000002u);
	assert_true(f.stream_id == 240);
	assert_true(f.frame_id == 7);
	assert_int_equal(f.payload_len, 1);
	assert_int_equal(f.payload[0], 'x');
	/* trailing bytes of the next frame are not consumed */
	free(cp);
	buf[13] = 0;
	assert_int_equal(spop_frame_parse(buf, 14, SPOP_MAX_FRAME_SIZE, &f, &err), 13);
	/* the smallest frame: empty payload */
	memcpy(buf, (const uint8_t[]){ 0, 0, 0, 7, 0, 0, 0, 0, 1, 0, 0 }, 11);
	cp = dup_exact(buf, 11);
	assert_int_equal(spop_frame_parse(cp, 11, SPOP_MAX_FRAME_SIZE, &f, &err), 11);
	assert_int_equal(f.payload_len, 0);
	free(cp);
}

/* ---- HELLO validation --------------------------------------------------- */

enum {
	K_VSN = 1, K_SIZE = 2, K_CAPS = 4,
	K_VSN_BADTYPE = 8, K_SIZE_BADTYPE = 16, K_CAPS_BADTYPE = 32,
	K_UNKNOWN = 64,
};

/* A HELLO payload with the keys in `keys` and the given values. */
static size_t hello_payload(uint8_t *buf, size_t size, int keys,
                            const char *vsn, uint32_t fsize, const char *caps)
{
	struct spop_data d;
	struct spop_wr w;

	spop_wr_init(&w, buf, size);
	if (keys & K_UNKNOWN) {
		d = spop_sint(-1);
		spop_put_kv(&w, "x-future", &d);
		d = spop_bin("\0\1", 2);
		spop_put_kv(&w, "", &d);
	}
	if (keys & K_VSN) {
		d = spop_str(vsn, strlen(vsn));
		spop_put_kv(&w, "supported-versions", &d);
	}
	if (keys & K_VSN_BADTYPE) {
		d = spop_bin(vsn, strlen(vsn));
		spop_put_kv(&w, "supported-versions", &d);
	}
	if (keys & K_UNKNOWN) {
		d.type = SPOP_DATA_T_NULL;
		spop_put_kv(&w, "max-frame-sizes", &d);
	}
	if (keys & K_SIZE) {
		d.type = SPOP_DATA_T_UINT32;
		d.u.u32 = fsize;
		spop_put_kv(&w, "max-frame-size", &d);
	}
	if (keys & K_SIZE_BADTYPE) {
		d = spop_sint(fsize);
		spop_put_kv(&w, "max-frame-size", &d);
	}
	if (keys & K_CAPS) {
		d = spop_str(caps, strlen(caps));
		spop_put_kv(&w, "capabilities", &d);
	}
	if (keys & K_CAPS_BADTYPE) {
		d = spop_bool(1);
		spop_put_kv(&w, "capabilities", &d);
	}
	if (keys & K_UNKNOWN) {
		d = spop_str("pipelining", 10);
		spop_put_kv(&w, "capabilitiesx", &d);
	}
	assert_false(w.overflow);
	return w.p - buf;
}

static int hello_status(int keys, const char *vsn, uint32_t fsize,
                        const char *caps, struct spop_hello *h)
{
	uint8_t buf[512], *cp;
	enum spop_err err = SPOP_ERR_UNKNOWN;
	size_t n;
	int ret;

	n = hello_payload(buf, sizeof(buf), keys, vsn, fsize, caps);
	cp = dup_exact(buf, n);
	ret = spop_hello_parse(cp, n, h, &err);
	free(cp);
	assert_int_equal(ret, err == SPOP_ERR_NONE ? 0 : -1);
	return err;
}

#define ALL (K_VSN | K_SIZE | K_CAPS)

static void test_hello_keys(void **state)
{
	struct spop_hello h;

	(void)state;
	assert_int_equal(hello_status(ALL, "2.0", 256, "pipelining", &h), SPOP_ERR_NONE);
	assert_int_equal(h.max_frame_size, 256);
	assert_true(h.pipelining);

	/* each mandatory key missing gets its own status */
	assert_int_equal(hello_status(K_SIZE | K_CAPS, "2.0", 256, "", &h), SPOP_ERR_NO_VSN);
	assert_int_equal(hello_status(K_VSN | K_CAPS, "2.0", 256, "", &h), SPOP_ERR_NO_FRAME_SIZE);
	assert_int_equal(hello_status(K_VSN | K_SIZE, "2.0", 256, "", &h), SPOP_ERR_NO_CAP);
	assert_int_equal(hello_status(0, "", 0, "", &h), SPOP_ERR_NO_VSN);
	/* ... and so does a key of the wrong type */
	assert_int_equal(hello_status(K_VSN_BADTYPE | K_SIZE | K_CAPS, "2.0", 256, "", &h),
	                 SPOP_ERR_NO_VSN);
	assert_int_equal(hello_status(K_VSN | K_SIZE_BADTYPE | K_CAPS, "2.0", 256, "", &h),
	                 SPOP_ERR_NO_FRAME_SIZE);
	assert_int_equal(hello_status(K_VSN | K_SIZE | K_CAPS_BADTYPE, "2.0", 256, "", &h),
	                 SPOP_ERR_NO_CAP);
	/* unknown keys, of any type and anywhere, are skipped */
	assert_int_equal(hello_status(ALL | K_UNKNOWN, "2.0", 1024, "async", &h), SPOP_ERR_NONE);
	assert_int_equal(h.max_frame_size, 1024);
	assert_false(h.pipelining);
	/* an empty capability list is fine */
	assert_int_equal(hello_status(ALL, "2.0", 256, "", &h), SPOP_ERR_NONE);
	assert_false(h.pipelining);
}

static void test_hello_versions(void **state)
{
	static const char *const good[] = {
		"2.0", "2.1", " 2.0 ", "1.0,2.0", "2.0, 1.5", "3.0 ,  2.9", "02.0",
		"x,2.0", ",2.0,", "2.10",
	};
	static const char *const bad[] = {
		"", " ", "1.0", "3.0", "2", "2.", ".0", "2.0.1", "2.x", "20.0",
		"12.0", "1.0, 3.0", "2 .0", ",", "v2.0", "4294967298.0",
	};
	struct spop_hello h;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(hello_status(ALL, good[i], 256, "", &h), SPOP_ERR_NONE);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(hello_status(ALL, bad[i], 256, "", &h), SPOP_ERR_BAD_VSN);
	}
}

static void test_hello_frame_size(void **state)
{
	struct spop_hello h;

	(void)state;
	assert_int_equal(hello_status(ALL, "2.0", 255, "", &h), SPOP_ERR_BAD_FRAME_SIZE);
	assert_int_equal(hello_status(ALL, "2.0", 0, "", &h), SPOP_ERR_BAD_FRAME_SIZE);
	assert_int_equal(hello_status(ALL, "2.0", 256, "", &h), SPOP_ERR_NONE);
	assert_int_equal(hello_status(ALL, "2.0", UINT32_MAX, "", &h), SPOP_ERR_NONE);
	assert_int_equal(h.max_frame_size, UINT32_MAX);
}

static void test_hello_capabilities(void **state)
{
	static const char *const yes[] = {
		"pipelining", " pipelining ", "fragmentation,pipelining,async",
		"async , pipelining", "pipelining,", ",pipelining",
	};
	static const char *const no[] = {
		"", "async", "pipelining2", "pipe lining", "xpipelining",
		"fragmentation;pipelining", "PIPELINING",
	};
	struct spop_hello h;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		assert_int_equal(hello_status(ALL, "2.0", 256, yes[i], &h), SPOP_ERR_NONE);
		assert_true(h.pipelining);
	}
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		assert_int_equal(hello_status(ALL, "2.0", 256, no[i], &h), SPOP_ERR_NONE);
		assert_false(h.pipelining);
	}
}

static void test_hello_optional(void **state)
{
	struct spop_hello h;
	struct spop_data d;
	struct spop_wr w;
	enum spop_err err;
	uint8_t buf[256] = { 0 };
	size_t n;

	(void)state;
	n = hello_payload(buf, sizeof(buf), ALL, "2.0", 4096, "pipelining");
	spop_wr_init(&w, buf + n, sizeof(buf) - n);
	d = spop_str("0f2c-engine", 11);
	spop_put_kv(&w, "engine-id", &d);
	d = spop_bool(0);
	spop_put_kv(&w, "healthcheck", &d);
	n = w.p - buf;
	assert_int_equal(spop_hello_parse(buf, n, &h, &err), 0);
	assert_slice_str(&h.engine_id, "0f2c-engine");
	assert_false(h.healthcheck);

	/* a healthcheck or engine-id of the wrong type is ignored */
	n = hello_payload(buf, sizeof(buf), ALL, "2.0", 4096, "pipelining");
	spop_wr_init(&w, buf + n, sizeof(buf) - n);
	d = spop_sint(1);
	spop_put_kv(&w, "healthcheck", &d);
	spop_put_kv(&w, "engine-id", &d);
	n = w.p - buf;
	assert_int_equal(spop_hello_parse(buf, n, &h, &err), 0);
	assert_false(h.healthcheck);
	assert_int_equal(h.engine_id.len, 0);
}

static void test_hello_malformed(void **state)
{
	struct spop_hello h;
	enum spop_err err;
	uint8_t buf[256] = { 0 };
	size_t n;

	(void)state;
	n = hello_payload(buf, sizeof(buf), ALL, "2.0", 4096, "pipelining");
	/* an unknown data type after a valid list */
	buf[n] = 0x0c;
	buf[n + 1] = 0;
	assert_int_equal(spop_hello_parse(buf, n + 1, &h, &err), -1);
	assert_int_equal(err, SPOP_ERR_INVALID);
	/* a name without its value */
	buf[n] = 1;
	buf[n + 1] = 'k';
	assert_int_equal(spop_hello_parse(buf, n + 2, &h, &err), -1);
	assert_int_equal(err, SPOP_ERR_INVALID);
	/* a name longer than the payload */
	buf[n] = 100;
	assert_int_equal(spop_hello_parse(buf, n + 2, &h, &err), -1);
	assert_int_equal(err, SPOP_ERR_INVALID);
}

/* ---- messages and actions ----------------------------------------------- */

/* A message with nb arguments (x0, x1, ...), then a second message. */
static size_t many_args(uint8_t *buf, size_t size, unsigned int nb)
{
	struct spop_data d;
	struct spop_wr w;
	char name[16];
	unsigned int i;

	spop_wr_init(&w, buf, size);
	spop_put_msg(&w, "many", nb);
	for (i = 0; i < nb; i++) {
		snprintf(name, sizeof(name), "x%u", i);
		d = spop_sint(i);
		spop_put_kv(&w, name, &d);
	}
	spop_put_msg(&w, "next", 0);
	assert_false(w.overflow);
	return w.p - buf;
}

static void test_msg_many_args(void **state)
{
	static const unsigned int nbs[] = { SPOP_MSG_MAX_ARGS - 1, SPOP_MSG_MAX_ARGS,
	                                    SPOP_MSG_MAX_ARGS + 1, 40, 255 };
	static uint8_t buf[8192] = { 0 };
	const struct spop_kv *kv;
	const uint8_t *p;
	struct spop_msg m;
	char name[16];
	uint8_t *cp;
	unsigned int i, j, kept;
	size_t n;

	(void)state;
	for (j = 0; j < sizeof(nbs) / sizeof(nbs[0]); j++) {
		n = many_args(buf, sizeof(buf), nbs[j]);
		kept = nbs[j] < SPOP_MSG_MAX_ARGS ? nbs[j] : SPOP_MSG_MAX_ARGS;
		cp = dup_exact(buf, n);
		p = cp;
		assert_int_equal(spop_msg_next(&p, cp + n, &m), 1);
		assert_slice_str(&m.name, "many");
		assert_int_equal(m.nb_args, nbs[j]);
		assert_int_equal(m.nb_kept, kept);
		for (i = 0; i < kept; i++) {
			snprintf(name, sizeof(name), "x%u", i);
			kv = spop_msg_arg(&m, name);
			assert_non_null(kv);
			assert_true(kv->value.u.s64 == (int64_t)i);
		}
		/* skipped arguments are not found */
		snprintf(name, sizeof(name), "x%u", kept);
		assert_null(spop_msg_arg(&m, name));
		/* but they were walked over */
		assert_int_equal(spop_msg_next(&p, cp + n, &m), 1);
		assert_slice_str(&m.name, "next");
		assert_int_equal(spop_msg_next(&p, cp + n, &m), 0);
		free(cp);
	}

	/* a malformed argument past the kept ones still spoils the message */
	n = many_args(buf, sizeof(buf), 40);
	for (i = 0; i + 4 < n; i++) {
		/* find "x35" and break its value's type */
		if (memcmp(buf + i, "\x03x35", 4) == 0)
			break;
	}
	assert_true(i + 4 < n);
	buf[i + 4] = 0x0d;
	cp = dup_exact(buf, n);
	p = cp;
	assert_int_equal(spop_msg_next(&p, cp + n, &m), -1);
	assert_ptr_equal(p, cp);
	free(cp);
}

static void test_msg_malformed(void **state)
{
	struct spop_msg m;
	const uint8_t *p;
	uint8_t *cp;

	(void)state;
	/* a name without nb-args */
	cp = dup_exact("\x03" "abc", 4);
	p = cp;
	assert_int_equal(spop_msg_next(&p, cp + 4, &m), -1);
	assert_ptr_equal(p, cp);
	free(cp);
	/* more arguments announced than present */
	cp = dup_exact("\x03" "abc\x02\x01k\x00", 8);
	p = cp;
	assert_int_equal(spop_msg_next(&p, cp + 8, &m), -1);
	assert_ptr_equal(p, cp);
	free(cp);
	/* a name longer than the list */
	cp = dup_exact("\x09" "abc\x00", 5);
	p = cp;
	assert_int_equal(spop_msg_next(&p, cp + 5, &m), -1);
	free(cp);
	/* the end of the list */
	cp = dup_exact("", 0);
	p = cp;
	assert_int_equal(spop_msg_next(&p, cp, &m), 0);
	free(cp);
}

static void test_kv_list(void **state)
{
	struct spop_kv kv;
	const uint8_t *p;
	uint8_t *cp;

	(void)state;
	cp = dup_exact("\x01k\x11\x00\x00", 5);
	p = cp;
	assert_int_equal(spop_kv_next(&p, cp + 5, &kv), 1);
	assert_slice_str(&kv.name, "k");
	assert_true(kv.value.u.boolean);
	assert_int_equal(spop_kv_next(&p, cp + 5, &kv), 1);
	assert_int_equal(kv.name.len, 0);
	assert_int_equal(kv.value.type, SPOP_DATA_T_NULL);
	assert_int_equal(spop_kv_next(&p, cp + 5, &kv), 0);
	free(cp);
	/* a name alone */
	cp = dup_exact("\x01k", 2);
	p = cp;
	assert_int_equal(spop_kv_next(&p, cp + 2, &kv), -1);
	assert_ptr_equal(p, cp);
	free(cp);
}

static void test_action_malformed(void **state)
{
	static const char *const bad[] = {
		"\x01\x02\x02\x01v\x00",        /* set-var with 2 args */
		"\x01\x04\x02\x01v\x00",        /* set-var with 4 args */
		"\x02\x03\x02\x01v",            /* unset-var with 3 args */
		"\x03\x02\x02\x01v",            /* unknown action */
		"\x00\x02\x02\x01v",            /* action 0 */
		"\x01\x03\x05\x01v\x00",        /* scope 5 */
		"\x01\x03\xff\x01v\x00",        /* scope 255 */
		"\x01\x03\x02\x01v",            /* set-var without a value */
		"\x01\x03\x02\x01v\x0a",        /* set-var with a reserved type */
		"\x01\x03\x02\x05v\x00",        /* a name past the end */
		"\x02\x02\x02",                 /* unset-var without a name */
		"\x02\x02",                     /* no scope */
		"\x02",                         /* no nb-args */
	};
	static const size_t lens[] = { 6, 6, 5, 5, 5, 6, 6, 5, 6, 6, 3, 2, 1 };
	struct spop_action a;
	const uint8_t *p;
	uint8_t *cp;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cp = dup_exact(bad[i], lens[i]);
		p = cp;
		assert_int_equal(spop_action_next(&p, cp + lens[i], &a), -1);
		assert_ptr_equal(p, cp);
		free(cp);
	}
	/* the smallest valid ones */
	cp = dup_exact("\x02\x02\x04\x00\x01\x03\x00\x00\x00", 9);
	p = cp;
	assert_int_equal(spop_action_next(&p, cp + 9, &a), 1);
	assert_int_equal(a.type, SPOP_ACT_T_UNSET_VAR);
	assert_int_equal(a.scope, SPOP_SCOPE_RES);
	assert_int_equal(a.name.len, 0);
	assert_int_equal(spop_action_next(&p, cp + 9, &a), 1);
	assert_int_equal(a.type, SPOP_ACT_T_SET_VAR);
	assert_int_equal(a.scope, SPOP_SCOPE_PROC);
	assert_int_equal(a.value.type, SPOP_DATA_T_NULL);
	assert_int_equal(spop_action_next(&p, cp + 9, &a), 0);
	free(cp);
}

/* ---- encoders ----------------------------------------------------------- */

/* Every frame into every buffer size below its own: -1 and no byte written
 * past the end (the buffers are exact heap blocks); at its size, the same
 * bytes as with room to spare. */
static void test_encoder_overflow(void **state)
{
	uint8_t *ref, *buf;
	size_t i, size, n;

	(void)state;
	for (i = 0; i < NFRAMES; i++) {
		ref = build_exact(i, &n);
		for (size = 0; size < n; size++) {
			buf = malloc(size);
			assert_true(size == 0 || buf);
			assert_int_equal(frames[i].build(buf, size), -1);
			free(buf);
		}
		buf = malloc(n);
		assert_int_equal(frames[i].build(buf, n), n);
		assert_memory_equal(buf, ref, n);
		free(buf);
		free(ref);
	}
}

static void test_encoder_misc(void **state)
{
	struct spop_data d;
	struct spop_wr w;
	uint8_t buf[32] = { 0 };

	(void)state;
	/* no frame begun */
	spop_wr_init(&w, buf, sizeof(buf));
	assert_int_equal(spop_frame_end(&w), -1);
	/* an unknown type refuses the frame */
	spop_frame_begin(&w, SPOP_FRM_T_AGENT_ACK, SPOP_FRM_FL_FIN, 1, 1);
	memset(&d, 0, sizeof(d));
	d.type = 10;
	spop_put_data(&w, &d);
	assert_true(w.overflow);
	assert_int_equal(spop_frame_end(&w), -1);
	/* once overflowed, nothing more is written, even what would fit */
	spop_wr_init(&w, buf, 4);
	spop_put_str(&w, "abcdef", 6);
	assert_true(w.overflow);
	assert_ptr_equal(w.p, buf);
	spop_put_u8(&w, 1);
	assert_ptr_equal(w.p, buf);
	/* a string whose length cannot fit is refused without wrapping */
	spop_wr_init(&w, buf, sizeof(buf));
	spop_put_str(&w, "x", SIZE_MAX);
	assert_true(w.overflow);
	assert_ptr_equal(w.p, buf);
	/* two frames in one buffer: each frame_end returns its own size */
	spop_wr_init(&w, buf, sizeof(buf));
	spop_frame_begin(&w, SPOP_FRM_T_AGENT_ACK, SPOP_FRM_FL_FIN, 1, 2);
	assert_int_equal(spop_frame_end(&w), 11);
	spop_frame_begin(&w, SPOP_FRM_T_AGENT_ACK, SPOP_FRM_FL_FIN, 3, 4);
	spop_put_unset_var(&w, SPOP_SCOPE_TXN, "a", 1);
	assert_int_equal(spop_frame_end(&w), 16);
	assert_memory_equal(buf, ((const uint8_t[]){ 0, 0, 0, 7, 103, 0, 0, 0, 1, 1, 2,
	                    0, 0, 0, 12, 103, 0, 0, 0, 1, 3, 4, 2, 2, 2, 1, 'a' }), 27);
}

static void test_err_str(void **state)
{
	static const char *const want[] = {
		"normal", "I/O error", "a timeout occurred", "frame is too big",
		"invalid frame received", "version value not found",
		"max-frame-size value not found", "capabilities value not found",
		"unsupported version", "max-frame-size too big or too small",
		"payload fragmentation is not supported", "invalid interlaced frames",
		"frame-id not found", "resource allocation error",
	};
	uint32_t i;

	(void)state;
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_string_equal(spop_err_str(i), want[i]);
	assert_string_equal(spop_err_str(14), "an unknown error occurred");
	assert_string_equal(spop_err_str(SPOP_ERR_UNKNOWN), "an unknown error occurred");
	assert_string_equal(spop_err_str(UINT32_MAX), "an unknown error occurred");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_varint_vectors),
		cmocka_unit_test(test_varint_roundtrip),
		cmocka_unit_test(test_varint_bad),
		cmocka_unit_test(test_data_roundtrip),
		cmocka_unit_test(test_data_ints),
		cmocka_unit_test(test_data_unknown_types),
		cmocka_unit_test(test_data_strings),
		cmocka_unit_test(test_frame_haproxy_hello),
		cmocka_unit_test(test_frame_agent_hello),
		cmocka_unit_test(test_frame_notify),
		cmocka_unit_test(test_frame_ack),
		cmocka_unit_test(test_frame_disconnect),
		cmocka_unit_test(test_disconnect_defaults),
		cmocka_unit_test(test_frames_byte_by_byte),
		cmocka_unit_test(test_frames_truncated),
		cmocka_unit_test(test_payload_truncated_refused),
		cmocka_unit_test(test_frame_too_big),
		cmocka_unit_test(test_frame_invalid_meta),
		cmocka_unit_test(test_hello_keys),
		cmocka_unit_test(test_hello_versions),
		cmocka_unit_test(test_hello_frame_size),
		cmocka_unit_test(test_hello_capabilities),
		cmocka_unit_test(test_hello_optional),
		cmocka_unit_test(test_hello_malformed),
		cmocka_unit_test(test_msg_many_args),
		cmocka_unit_test(test_msg_malformed),
		cmocka_unit_test(test_kv_list),
		cmocka_unit_test(test_action_malformed),
		cmocka_unit_test(test_encoder_overflow),
		cmocka_unit_test(test_encoder_misc),
		cmocka_unit_test(test_err_str),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
