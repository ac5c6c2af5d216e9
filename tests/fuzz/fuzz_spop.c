/*
 * libFuzzer target for the SPOP codec (agent/src/spop.c).
 *
 * The input is read as a stream of frames, as the agent reads a connection:
 * every frame's payload goes through every payload decoder, whatever its
 * type, and the messages of a payload are re-encoded into a NOTIFY that must
 * decode to the same thing. Any mismatch aborts, so libFuzzer keeps the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <realms/spop.h>

#define FUZZ_MAX_FRAME  65536u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Re-encoding sign-extends INT32 values sent as 32-bit patterns (1 + 5 bytes
 * become 1 + 10), so a payload can at most double. */
static uint8_t out[2 * FUZZ_MAX_FRAME + 64];

#define CHECK(c)  do { if (!(c)) abort(); } while (0)

static int slice_eq(const struct spop_slice *a, const struct spop_slice *b)
{
	return a->len == b->len && (!a->len || memcmp(a->ptr, b->ptr, a->len) == 0);
}

static int data_eq(const struct spop_data *a, const struct spop_data *b)
{
	if (a->type != b->type)
		return 0;
	switch (a->type) {
	case SPOP_DATA_T_NULL:   return 1;
	case SPOP_DATA_T_BOOL:   return !!a->u.boolean == !!b->u.boolean;
	case SPOP_DATA_T_INT32:  return a->u.s32 == b->u.s32;
	case SPOP_DATA_T_UINT32: return a->u.u32 == b->u.u32;
	case SPOP_DATA_T_INT64:  return a->u.s64 == b->u.s64;
	case SPOP_DATA_T_UINT64: return a->u.u64 == b->u.u64;
	case SPOP_DATA_T_IPV4:   return !memcmp(&a->u.ipv4, &b->u.ipv4, 4);
	case SPOP_DATA_T_IPV6:   return !memcmp(&a->u.ipv6, &b->u.ipv6, 16);
	case SPOP_DATA_T_STR:
	case SPOP_DATA_T_BIN:    return slice_eq(&a->u.str, &b->u.str);
	}
	return 0;
}

static void walk_payload(const uint8_t *p, size_t len)
{
	const uint8_t *q, *end = p + len;
	struct spop_hello h;
	struct spop_action a;
	struct spop_slice s;
	struct spop_kv kv;
	enum spop_err err;
	uint32_t st;
	int ret;

	ret = spop_hello_parse(p, len, &h, &err);
	CHECK((ret == 0) == (err == SPOP_ERR_NONE));
	CHECK(ret != 0 || h.max_frame_size >= SPOP_MIN_FRAME_SIZE);
	CHECK(spop_err_str(err) != NULL);

	ret = spop_disconnect_parse(p, len, &st, &s);
	CHECK(ret == 0 || ret == -1);
	CHECK(s.ptr != NULL);

	for (q = p; (ret = spop_kv_next(&q, end, &kv)) == 1; )
		CHECK(q <= end && kv.name.ptr >= (const char *)p);
	CHECK(ret == -1 || q == end);

	for (q = p; (ret = spop_action_next(&q, end, &a)) == 1; )
		CHECK(q <= end && a.scope <= SPOP_SCOPE_RES);
	CHECK(ret == -1 || q == end);
}

/* Decodes the messages of [p, p+len), writes the kept part of each into a
 * NOTIFY frame, then decodes that frame and compares message by message. */
static void notify_roundtrip(const struct spop_frame *f)
{
	static struct spop_msg m, m2;
	const uint8_t *p, *end = f->payload + f->payload_len;
	const uint8_t *q, *qend;
	struct spop_frame g;
	enum spop_err err;
	struct spop_wr w;
	unsigned int i;
	ssize_t n;
	int ret, ret2;

	spop_wr_init(&w, out, sizeof(out));
	spop_frame_begin(&w, SPOP_FRM_T_HAPROXY_NOTIFY, f->flags, f->stream_id,
	                 f->frame_id);
	for (p = f->payload; (ret = spop_msg_next(&p, end, &m)) == 1; ) {
		CHECK(m.nb_kept <= SPOP_MSG_MAX_ARGS && m.nb_kept <= m.nb_args);
		CHECK(m.nb_args <= 255);
		/* names may hold NULs: put_str, not the C-string helpers */
		spop_put_str(&w, m.name.ptr, m.name.len);
		spop_put_u8(&w, m.nb_kept);
		for (i = 0; i < m.nb_kept; i++) {
			spop_put_str(&w, m.args[i].name.ptr, m.args[i].name.len);
			spop_put_data(&w, &m.args[i].value);
		}
		CHECK(!w.overflow);
	}
	n = spop_frame_end(&w);
	CHECK(n > 0);

	g.payload = NULL;
	CHECK(spop_frame_parse(out, n, sizeof(out), &g, &err) == n);
	CHECK(g.type == SPOP_FRM_T_HAPROXY_NOTIFY);
	CHECK(g.flags == f->flags);
	CHECK(g.stream_id == f->stream_id && g.frame_id == f->frame_id);

	/* both lists in lockstep; the copy stops where the original failed */
	q = g.payload;
	qend = g.payload + g.payload_len;
	for (p = f->payload; ; ) {
		ret = spop_msg_next(&p, end, &m);
		ret2 = spop_msg_next(&q, qend, &m2);
		if (ret != 1) {
			CHECK(ret2 == 0);
			break;
		}
		CHECK(ret2 == 1);
		CHECK(slice_eq(&m.name, &m2.name));
		CHECK(m2.nb_args == m.nb_kept && m2.nb_kept == m.nb_kept);
		for (i = 0; i < m.nb_kept; i++) {
			CHECK(slice_eq(&m.args[i].name, &m2.args[i].name));
			CHECK(data_eq(&m.args[i].value, &m2.args[i].value));
		}
	}
	CHECK(q == qend);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	struct spop_frame f;
	struct spop_data d;
	struct spop_slice s;
	enum spop_err err;
	uint64_t v;
	ssize_t r;
	int ret;

	/* the item decoders straight on the input */
	p = data;
	ret = spop_get_varint(&p, end, &v);
	CHECK(ret >= -1 && ret <= 10 && p == data + (ret > 0 ? ret : 0));
	CHECK(ret <= 0 || spop_varint_len(v) <= ret);
	p = data;
	ret = spop_get_data(&p, end, &d);
	CHECK(p == data + (ret > 0 ? ret : 0));
	p = data;
	ret = spop_get_str(&p, end, &s);
	CHECK(p == data + (ret > 0 ? ret : 0));

	/* the encoders into a buffer of an input-chosen size */
	if (size) {
		size_t room = data[0] % 64;

		r = spop_build_agent_hello(out, room, FUZZ_MAX_FRAME);
		CHECK(r == -1 || (size_t)r <= room);
	}

	/* the input as a stream of frames */
	for (p = data; p < end; p += r) {
		r = spop_frame_parse(p, end - p, FUZZ_MAX_FRAME, &f, &err);
		if (r <= 0) {
			CHECK(r == 0 ? err == SPOP_ERR_NONE :
			      err == SPOP_ERR_TOO_BIG || err == SPOP_ERR_INVALID);
			break;
		}
		CHECK((size_t)r <= (size_t)(end - p));
		CHECK(f.payload >= p + 7 && f.payload + f.payload_len == p + r);
		walk_payload(f.payload, f.payload_len);
		notify_roundtrip(&f);
	}
	return 0;
}
