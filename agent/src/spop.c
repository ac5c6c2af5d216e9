/*
 * SPOP 2.0 codec (HAProxy doc/SPOE.txt, section 3): pure functions over
 * bytes, no I/O and no allocation.
 *
 * Decoders work on a (p, end) cursor: they check the room before every read
 * and write the cursor back only once the whole item was decoded, so a caller
 * that gets 0 or -1 still points at the start of the item.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include <realms/spop.h>

/* ------------------------------------------------------------------------ */
/* varints                                                                  */
/* ------------------------------------------------------------------------ */

int spop_varint_len(uint64_t v)
{
	int n = 2;

	if (v < 240)
		return 1;
	v = (v - 240) >> 4;
	while (v >= 128) {
		n++;
		v = (v - 128) >> 7;
	}
	return n;
}

int spop_put_varint_raw(uint8_t *p, const uint8_t *end, uint64_t v)
{
	int n = spop_varint_len(v);

	if (p > end || end - p < n)
		return 0;

	if (v < 240) {
		*p = v;
		return 1;
	}
	*p++ = (v | 240) & 0xff;
	v = (v - 240) >> 4;
	while (v >= 128) {
		*p++ = (v | 128) & 0xff;
		v = (v - 128) >> 7;
	}
	*p = v;
	return n;
}

/* The first byte carries 8 bits, each following one is added at shifts 4,
 * 11, ..., 60: a 64-bit value needs at most 10 bytes, and the byte at shift
 * 60 must be below 16, hence final. Anything else is refused as soon as the
 * offending byte is seen, without waiting for more input, so a peer cannot
 * make us wait on an endless varint. */
int spop_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	const uint8_t *start = *p;
	const uint8_t *q = start;
	uint64_t val, add;
	unsigned int shift = 4;
	uint8_t b;

	if (q >= end)
		return 0;
	val = *q++;
	if (val >= 240) {
		do {
			if (q >= end)
				return 0;
			b = *q++;
			if (shift == 60 && b >= 16)
				return -1;
			add = (uint64_t)b << shift;
			if (val + add < val)
				return -1;
			val += add;
			shift += 7;
		} while (b >= 128);
	}
	*v = val;
	*p = q;
	return q - start;
}

/* ------------------------------------------------------------------------ */
/* typed data and lists                                                     */
/* ------------------------------------------------------------------------ */

int spop_get_str(const uint8_t **p, const uint8_t *end, struct spop_slice *s)
{
	const uint8_t *start = *p;
	const uint8_t *q = start;
	uint64_t len;
	int ret;

	ret = spop_get_varint(&q, end, &len);
	if (ret <= 0)
		return ret;
	if (len > SPOP_STR_MAX)
		return -1;
	/* compared as a length, never added to q: a 2^63 length must not wrap */
	if (len > (uint64_t)(end - q))
		return 0;
	s->ptr = (const char *)q;
	s->len = len;
	q += len;
	*p = q;
	return q - start;
}

/* Integers travel as varints of their 64-bit pattern. HAProxy sends signed
 * values sign-extended to 64 bits, while some agents send an INT32 as its
 * 32-bit unsigned pattern: both are read back. A value that fits in neither
 * reading is not a 32-bit integer, so the item is malformed. */
int spop_get_data(const uint8_t **p, const uint8_t *end, struct spop_data *d)
{
	const uint8_t *start = *p;
	const uint8_t *q = start;
	struct spop_data out;
	uint64_t v;
	int64_t sv;
	uint8_t tb;
	int ret;

	if (q >= end)
		return 0;
	tb = *q++;
	memset(&out, 0, sizeof(out));
	out.type = tb & SPOP_DATA_T_MASK;

	switch (out.type) {
	case SPOP_DATA_T_NULL:
		break;
	case SPOP_DATA_T_BOOL:
		out.u.boolean = !!(tb & SPOP_DATA_FL_TRUE);
		break;
	case SPOP_DATA_T_INT32:
	case SPOP_DATA_T_UINT32:
	case SPOP_DATA_T_INT64:
	case SPOP_DATA_T_UINT64:
		ret = spop_get_varint(&q, end, &v);
		if (ret <= 0)
			return ret;
		sv = (int64_t)v;
		if (out.type == SPOP_DATA_T_INT32) {
			if (v <= UINT32_MAX)
				out.u.s32 = (int32_t)(uint32_t)v;
			else if (sv >= INT32_MIN && sv < 0)
				out.u.s32 = (int32_t)sv;
			else
				return -1;
		}
		else if (out.type == SPOP_DATA_T_UINT32) {
			if (v > UINT32_MAX)
				return -1;
			out.u.u32 = v;
		}
		else if (out.type == SPOP_DATA_T_INT64)
			out.u.s64 = sv;
		else
			out.u.u64 = v;
		break;
	case SPOP_DATA_T_IPV4:
		if (end - q < 4)
			return 0;
		memcpy(&out.u.ipv4, q, 4);
		q += 4;
		break;
	case SPOP_DATA_T_IPV6:
		if (end - q < 16)
			return 0;
		memcpy(&out.u.ipv6, q, 16);
		q += 16;
		break;
	case SPOP_DATA_T_STR:
	case SPOP_DATA_T_BIN:
		ret = spop_get_str(&q, end, &out.u.str);
		if (ret <= 0)
			return ret;
		break;
	default:
		/* 10-15 are reserved: their size is unknown, nothing after
		 * them can be read */
		return -1;
	}
	*d = out;
	*p = q;
	return q - start;
}

/* Inside a list the end is known, so a short item is malformed: any 0 from
 * an item decoder becomes -1 here. */
int spop_kv_next(const uint8_t **p, const uint8_t *end, struct spop_kv *kv)
{
	const uint8_t *q = *p;
	struct spop_kv out;

	if (q >= end)
		return 0;
	if (spop_get_str(&q, end, &out.name) <= 0 ||
	    spop_get_data(&q, end, &out.value) <= 0)
		return -1;
	*kv = out;
	*p = q;
	return 1;
}

int spop_msg_next(const uint8_t **p, const uint8_t *end, struct spop_msg *m)
{
	const uint8_t *q = *p;
	struct spop_slice name;
	struct spop_kv skipped;
	unsigned int nb, i;

	if (q >= end)
		return 0;
	if (spop_get_str(&q, end, &name) <= 0 || q >= end)
		return -1;
	nb = *q++;

	/* Arguments past SPOP_MSG_MAX_ARGS are still decoded: the next message
	 * starts after them, and a malformed one spoils the frame. */
	for (i = 0; i < nb; i++) {
		struct spop_kv *kv = i < SPOP_MSG_MAX_ARGS ? &m->args[i] : &skipped;

		if (spop_kv_next(&q, end, kv) != 1)
			return -1;
	}
	m->name = name;
	m->nb_args = nb;
	m->nb_kept = nb < SPOP_MSG_MAX_ARGS ? nb : SPOP_MSG_MAX_ARGS;
	*p = q;
	return 1;
}

/* The scope is a raw byte and the name a length-prefixed string without a
 * type byte (SPOE.txt 3.4, and HAProxy's spoe_decode_action_set_var); only
 * the value is typed. Since two arguments are untyped, an action of unknown
 * type or argument count cannot be skipped: it is malformed. */
int spop_action_next(const uint8_t **p, const uint8_t *end, struct spop_action *a)
{
	const uint8_t *q = *p;
	struct spop_action out;
	uint8_t type, nb, scope;

	if (q >= end)
		return 0;
	if (end - q < 3)
		return -1;
	type = *q++;
	nb = *q++;
	scope = *q++;

	memset(&out, 0, sizeof(out));
	if (type == SPOP_ACT_T_SET_VAR && nb != 3)
		return -1;
	if (type == SPOP_ACT_T_UNSET_VAR && nb != 2)
		return -1;
	if (type != SPOP_ACT_T_SET_VAR && type != SPOP_ACT_T_UNSET_VAR)
		return -1;
	if (scope > SPOP_SCOPE_RES)
		return -1;
	out.type = type;
	out.scope = scope;
	if (spop_get_str(&q, end, &out.name) <= 0)
		return -1;
	if (type == SPOP_ACT_T_SET_VAR && spop_get_data(&q, end, &out.value) <= 0)
		return -1;
	*a = out;
	*p = q;
	return 1;
}

const struct spop_kv *spop_msg_arg(const struct spop_msg *m, const char *name)
{
	size_t len = strlen(name);
	unsigned int i;

	for (i = 0; i < m->nb_kept; i++) {
		const struct spop_slice *n = &m->args[i].name;

		if (n->len == len && memcmp(n->ptr, name, len) == 0)
			return &m->args[i];
	}
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* frames                                                                   */
/* ------------------------------------------------------------------------ */

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

ssize_t spop_frame_parse(const uint8_t *buf, size_t len, uint32_t max_frame,
                         struct spop_frame *f, enum spop_err *err)
{
	const uint8_t *p, *end;
	struct spop_frame out;
	uint32_t flen;

	*err = SPOP_ERR_NONE;
	if (len < 4)
		return 0;

	/* Everything that the 4 length bytes alone can refuse is refused
	 * before waiting for the payload: a peer announcing 4 GB must not
	 * keep the connection (and our buffer) waiting for it. */
	flen = get_be32(buf);
	if (flen > max_frame) {
		*err = SPOP_ERR_TOO_BIG;
		return -1;
	}
	if (flen < SPOP_FRM_HDR_MIN) {
		*err = SPOP_ERR_INVALID;
		return -1;
	}
	if (len - 4 < flen)
		return 0;

	p = buf + 4;
	end = p + flen;
	out.type = *p++;
	out.flags = get_be32(p);
	p += 4;
	if (spop_get_varint(&p, end, &out.stream_id) <= 0 ||
	    spop_get_varint(&p, end, &out.frame_id) <= 0) {
		*err = SPOP_ERR_INVALID;
		return -1;
	}
	out.payload = p;
	out.payload_len = end - p;
	*f = out;
	return (ssize_t)flen + 4;
}

/* "Spaces must be ignored" (SPOE.txt 3.2.4): the i-th comma-separated item of
 * [s, end) with the surrounding spaces trimmed. */
static const char *list_item(const char *s, const char *end, const char **item,
                             size_t *item_len)
{
	const char *comma, *b, *e;

	comma = memchr(s, ',', end - s);
	e = comma ? comma : end;
	b = s;
	while (b < e && (*b == ' ' || *b == '\t'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*item = b;
	*item_len = e - b;
	return comma ? comma + 1 : NULL;
}

/* True if the "Major.Minor" item has major 2: SPOP 2.x is all we speak, and
 * a major announced covers all its minors. */
static int version_is_2x(const char *s, size_t len)
{
	const char *end = s + len;
	unsigned int major = 0;
	int digits = 0;

	for (; s < end && *s >= '0' && *s <= '9'; s++, digits++) {
		if (major < 1000)
			major = major * 10 + (*s - '0');
	}
	if (!digits || s >= end || *s != '.')
		return 0;
	s++;
	for (digits = 0; s < end && *s >= '0' && *s <= '9'; s++)
		digits++;
	return digits && s == end && major == 2;
}

static int slice_eq(const struct spop_slice *s, const char *lit)
{
	size_t len = strlen(lit);

	return s->len == len && memcmp(s->ptr, lit, len) == 0;
}

/* A key whose value has the wrong type counts as absent: it then gets the
 * status of a missing key, which is what the peer most needs to hear. When a
 * key repeats, the last well-typed one wins. */
int spop_hello_parse(const uint8_t *payload, size_t len, struct spop_hello *h,
                     enum spop_err *err)
{
	const uint8_t *p = payload, *end = payload + len;
	struct spop_slice vsn = { NULL, 0 }, caps = { NULL, 0 };
	int have_vsn = 0, have_size = 0, have_caps = 0;
	const char *s, *item;
	size_t item_len;
	struct spop_kv kv;
	int ret, ok;

	memset(h, 0, sizeof(*h));
	h->engine_id.ptr = "";
	*err = SPOP_ERR_NONE;

	while ((ret = spop_kv_next(&p, end, &kv)) == 1) {
		if (slice_eq(&kv.name, "supported-versions")) {
			if (kv.value.type == SPOP_DATA_T_STR) {
				vsn = kv.value.u.str;
				have_vsn = 1;
			}
		}
		else if (slice_eq(&kv.name, "max-frame-size")) {
			if (kv.value.type == SPOP_DATA_T_UINT32) {
				h->max_frame_size = kv.value.u.u32;
				have_size = 1;
			}
		}
		else if (slice_eq(&kv.name, "capabilities")) {
			if (kv.value.type == SPOP_DATA_T_STR) {
				caps = kv.value.u.str;
				have_caps = 1;
			}
		}
		else if (slice_eq(&kv.name, "healthcheck")) {
			if (kv.value.type == SPOP_DATA_T_BOOL)
				h->healthcheck = kv.value.u.boolean;
		}
		else if (slice_eq(&kv.name, "engine-id")) {
			if (kv.value.type == SPOP_DATA_T_STR)
				h->engine_id = kv.value.u.str;
		}
	}
	if (ret < 0) {
		*err = SPOP_ERR_INVALID;
		return -1;
	}

	if (!have_vsn) {
		*err = SPOP_ERR_NO_VSN;
		return -1;
	}
	ok = 0;
	for (s = vsn.ptr; s; ) {
		s = list_item(s, vsn.ptr + vsn.len, &item, &item_len);
		if (version_is_2x(item, item_len))
			ok = 1;
	}
	if (!ok) {
		*err = SPOP_ERR_BAD_VSN;
		return -1;
	}

	if (!have_size) {
		*err = SPOP_ERR_NO_FRAME_SIZE;
		return -1;
	}
	if (h->max_frame_size < SPOP_MIN_FRAME_SIZE) {
		*err = SPOP_ERR_BAD_FRAME_SIZE;
		return -1;
	}

	if (!have_caps) {
		*err = SPOP_ERR_NO_CAP;
		return -1;
	}
	for (s = caps.ptr; s; ) {
		s = list_item(s, caps.ptr + caps.len, &item, &item_len);
		if (item_len == 10 && memcmp(item, "pipelining", 10) == 0)
			h->pipelining = 1;
	}
	return 0;
}

int spop_disconnect_parse(const uint8_t *payload, size_t len,
                          uint32_t *status, struct spop_slice *message)
{
	const uint8_t *p = payload, *end = payload + len;
	struct spop_kv kv;
	int ret;

	*status = SPOP_ERR_UNKNOWN;
	message->ptr = "";
	message->len = 0;
	while ((ret = spop_kv_next(&p, end, &kv)) == 1) {
		if (slice_eq(&kv.name, "status-code") &&
		    kv.value.type == SPOP_DATA_T_UINT32)
			*status = kv.value.u.u32;
		else if (slice_eq(&kv.name, "message") &&
		         kv.value.type == SPOP_DATA_T_STR)
			*message = kv.value.u.str;
	}
	return ret < 0 ? -1 : 0;
}

const char *spop_err_str(uint32_t status)
{
	static const char *const texts[] = {
		[SPOP_ERR_NONE]             = "normal",
		[SPOP_ERR_IO]               = "I/O error",
		[SPOP_ERR_TOUT]             = "a timeout occurred",
		[SPOP_ERR_TOO_BIG]          = "frame is too big",
		[SPOP_ERR_INVALID]          = "invalid frame received",
		[SPOP_ERR_NO_VSN]           = "version value not found",
		[SPOP_ERR_NO_FRAME_SIZE]    = "max-frame-size value not found",
		[SPOP_ERR_NO_CAP]           = "capabilities value not found",
		[SPOP_ERR_BAD_VSN]          = "unsupported version",
		[SPOP_ERR_BAD_FRAME_SIZE]   = "max-frame-size too big or too small",
		[SPOP_ERR_FRAG_NOT_SUPP]    = "payload fragmentation is not supported",
		[SPOP_ERR_INTERLACED]       = "invalid interlaced frames",
		[SPOP_ERR_FRAMEID_NOTFOUND] = "frame-id not found",
		[SPOP_ERR_RES]              = "resource allocation error",
	};

	if (status < sizeof(texts) / sizeof(texts[0]) && texts[status])
		return texts[status];
	return "an unknown error occurred";
}

/* ------------------------------------------------------------------------ */
/* encoding                                                                 */
/* ------------------------------------------------------------------------ */

void spop_wr_init(struct spop_wr *w, uint8_t *buf, size_t size)
{
	w->start = buf;
	w->p = buf;
	w->end = buf + size;
	w->frame = NULL;
	w->overflow = 0;
}

/* Reserves n bytes at w->p and returns them, or NULL after marking the
 * overflow: once set, nothing more is written, so a frame is either whole or
 * refused by spop_frame_end(). */
static uint8_t *wr_room(struct spop_wr *w, size_t n)
{
	uint8_t *p = w->p;

	if (w->overflow || (size_t)(w->end - w->p) < n) {
		w->overflow = 1;
		return NULL;
	}
	w->p += n;
	return p;
}

void spop_put_u8(struct spop_wr *w, uint8_t v)
{
	uint8_t *p = wr_room(w, 1);

	if (p)
		*p = v;
}

void spop_put_varint(struct spop_wr *w, uint64_t v)
{
	uint8_t *p = wr_room(w, spop_varint_len(v));

	if (p)
		spop_put_varint_raw(p, w->end, v);
}

void spop_put_str(struct spop_wr *w, const char *s, size_t len)
{
	uint8_t *p;

	/* the whole string or nothing; the length alone is checked first so
	 * that adding the varint's size cannot wrap */
	if (len > (size_t)(w->end - w->p)) {
		w->overflow = 1;
		return;
	}
	p = wr_room(w, spop_varint_len(len) + len);
	if (!p)
		return;
	p += spop_put_varint_raw(p, w->end, len);
	if (len)
		memcpy(p, s, len);
}

/* A type this codec does not know cannot be encoded: it marks the writer
 * overflowed so the frame is refused rather than sent half-made. */
void spop_put_data(struct spop_wr *w, const struct spop_data *d)
{
	uint8_t *p;

	switch (d->type) {
	case SPOP_DATA_T_NULL:
		spop_put_u8(w, SPOP_DATA_T_NULL);
		break;
	case SPOP_DATA_T_BOOL:
		spop_put_u8(w, SPOP_DATA_T_BOOL |
		               (d->u.boolean ? SPOP_DATA_FL_TRUE : 0));
		break;
	case SPOP_DATA_T_INT32:
		/* sign-extended, as HAProxy encodes its signed integers */
		spop_put_u8(w, d->type);
		spop_put_varint(w, (uint64_t)(int64_t)d->u.s32);
		break;
	case SPOP_DATA_T_UINT32:
		spop_put_u8(w, d->type);
		spop_put_varint(w, d->u.u32);
		break;
	case SPOP_DATA_T_INT64:
		spop_put_u8(w, d->type);
		spop_put_varint(w, (uint64_t)d->u.s64);
		break;
	case SPOP_DATA_T_UINT64:
		spop_put_u8(w, d->type);
		spop_put_varint(w, d->u.u64);
		break;
	case SPOP_DATA_T_IPV4:
		spop_put_u8(w, d->type);
		p = wr_room(w, 4);
		if (p)
			memcpy(p, &d->u.ipv4, 4);
		break;
	case SPOP_DATA_T_IPV6:
		spop_put_u8(w, d->type);
		p = wr_room(w, 16);
		if (p)
			memcpy(p, &d->u.ipv6, 16);
		break;
	case SPOP_DATA_T_STR:
	case SPOP_DATA_T_BIN:
		spop_put_u8(w, d->type);
		spop_put_str(w, d->u.str.ptr, d->u.str.len);
		break;
	default:
		w->overflow = 1;
		break;
	}
}

void spop_put_kv(struct spop_wr *w, const char *name, const struct spop_data *d)
{
	spop_put_str(w, name, strlen(name));
	spop_put_data(w, d);
}

void spop_frame_begin(struct spop_wr *w, uint8_t type, uint32_t flags,
                      uint64_t stream_id, uint64_t frame_id)
{
	uint8_t *p;

	w->frame = w->p;
	p = wr_room(w, 4 + 1 + 4);
	if (p) {
		p[4] = type;
		put_be32(p + 5, flags);
	}
	spop_put_varint(w, stream_id);
	spop_put_varint(w, frame_id);
}

ssize_t spop_frame_end(struct spop_wr *w)
{
	size_t len;

	if (w->overflow || !w->frame)
		return -1;
	len = w->p - w->frame - 4;
	if (len > UINT32_MAX)
		return -1;
	put_be32(w->frame, len);
	return len + 4;
}

ssize_t spop_build_agent_hello(uint8_t *buf, size_t size, uint32_t max_frame)
{
	struct spop_wr w;
	struct spop_data d;

	spop_wr_init(&w, buf, size);
	spop_frame_begin(&w, SPOP_FRM_T_AGENT_HELLO, SPOP_FRM_FL_FIN, 0, 0);
	d = spop_str("2.0", 3);
	spop_put_kv(&w, "version", &d);
	d.type = SPOP_DATA_T_UINT32;
	d.u.u32 = max_frame;
	spop_put_kv(&w, "max-frame-size", &d);
	d = spop_str("pipelining", 10);
	spop_put_kv(&w, "capabilities", &d);
	return spop_frame_end(&w);
}

static ssize_t build_disconnect(uint8_t *buf, size_t size, uint8_t type,
                                uint32_t status, const char *message)
{
	struct spop_wr w;
	struct spop_data d;

	if (!message)
		message = "";
	spop_wr_init(&w, buf, size);
	spop_frame_begin(&w, type, SPOP_FRM_FL_FIN, 0, 0);
	d.type = SPOP_DATA_T_UINT32;
	d.u.u32 = status;
	spop_put_kv(&w, "status-code", &d);
	d = spop_str(message, strlen(message));
	spop_put_kv(&w, "message", &d);
	return spop_frame_end(&w);
}

ssize_t spop_build_agent_disconnect(uint8_t *buf, size_t size,
                                    uint32_t status, const char *message)
{
	return build_disconnect(buf, size, SPOP_FRM_T_AGENT_DISCON, status,
	                        message);
}

ssize_t spop_build_haproxy_disconnect(uint8_t *buf, size_t size,
                                      uint32_t status, const char *message)
{
	return build_disconnect(buf, size, SPOP_FRM_T_HAPROXY_DISCON, status,
	                        message);
}

void spop_put_set_var(struct spop_wr *w, enum spop_scope scope,
                      const char *name, size_t name_len,
                      const struct spop_data *value)
{
	spop_put_u8(w, SPOP_ACT_T_SET_VAR);
	spop_put_u8(w, 3);
	spop_put_u8(w, scope);
	spop_put_str(w, name, name_len);
	spop_put_data(w, value);
}

void spop_put_unset_var(struct spop_wr *w, enum spop_scope scope,
                        const char *name, size_t name_len)
{
	spop_put_u8(w, SPOP_ACT_T_UNSET_VAR);
	spop_put_u8(w, 2);
	spop_put_u8(w, scope);
	spop_put_str(w, name, name_len);
}

/* HAProxy only sends "healthcheck" when it is true; so do we. */
ssize_t spop_build_haproxy_hello(uint8_t *buf, size_t size, uint32_t max_frame,
                                 int healthcheck)
{
	struct spop_wr w;
	struct spop_data d;

	spop_wr_init(&w, buf, size);
	spop_frame_begin(&w, SPOP_FRM_T_HAPROXY_HELLO, SPOP_FRM_FL_FIN, 0, 0);
	d = spop_str("2.0", 3);
	spop_put_kv(&w, "supported-versions", &d);
	d.type = SPOP_DATA_T_UINT32;
	d.u.u32 = max_frame;
	spop_put_kv(&w, "max-frame-size", &d);
	d = spop_str("pipelining", 10);
	spop_put_kv(&w, "capabilities", &d);
	if (healthcheck) {
		d = spop_bool(1);
		spop_put_kv(&w, "healthcheck", &d);
	}
	return spop_frame_end(&w);
}

void spop_put_msg(struct spop_wr *w, const char *name, uint8_t nb_args)
{
	spop_put_str(w, name, strlen(name));
	spop_put_u8(w, nb_args);
}
