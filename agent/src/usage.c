/*
 * Usage extraction (contract in realms/usage.h). Pure: no I/O; the heap
 * holds only a JSON answer's usage object while it is read.
 *
 * Everything goes through the JSON scanner. An SSE event's data is small
 * and whole: json_each() walks the root object's members once, validating
 * it as it goes, and the objects the usage hides in (message, usage,
 * cache_creation, server_tool_use, iterations) are walked the same way
 * from their spans. A non-streamed answer may be megabytes of content
 * nested at any depth and its usage comes last: usage_reader scans it as
 * it arrives and keeps only the bytes of the last root "usage" object and
 * "model" string, so memory is bounded by USAGE_OBJ_MAX whatever the size
 * of the answer.
 *
 * Keys are compared after unescaping, as the client's JSON parser would,
 * and the last occurrence of a key wins.
 */
#include <stdlib.h>
#include <string.h>

#include <realms/json.h>
#include <realms/limits.h>
#include <realms/usage.h>

/* ------------------------------------------------------------------------ */
/* usage objects                                                            */
/* ------------------------------------------------------------------------ */

enum usage_kind {
	UK_INPUT = 0,
	UK_OUTPUT,
	UK_CW_5M,
	UK_CW_1H,
	UK_READ,
	UK_WEB,
	UK_N
};

#define UK_BIT(k)  (1u << (k))
#define UK_CACHE   (UK_BIT(UK_CW_5M) | UK_BIT(UK_CW_1H))

/* What one usage object says, before it meets the record. */
struct usage_obj {
	uint64_t v[UK_N];
	unsigned int has;          /* UK_BIT(kind) for each count present; the
	                              two cache bits go together */
	uint64_t cw_total;         /* cache_creation_input_tokens ... */
	int has_cw_total;          /* ... when present without a split */
	const char *tier;          /* service_tier token, or NULL */
	size_t tier_len;
	const char *iter;          /* the "iterations" array, or NULL */
	size_t iter_len;
};

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* A member's value as a count (a number token that json_u64() takes), or
 * -1: the caller takes the field as absent. */
static int member_u64(const struct json_member *m, uint64_t *v)
{
	if (m->type != JSON_T_NUMBER)
		return -1;
	return json_u64(m->val, m->val_len, v);
}

/* Sets or clears a count: a key repeated with a bad value leaves the count
 * absent, as the last occurrence wins. */
static void obj_count(struct usage_obj *o, enum usage_kind k, const struct json_member *m)
{
	if (member_u64(m, &o->v[k]) == 0) {
		o->has |= UK_BIT(k);
	} else {
		o->v[k] = 0;
		o->has &= ~UK_BIT(k);
	}
}

/* A member of a cache_creation object: the split's two counts. */
static void split_member(void *arg, const struct json_member *m)
{
	struct usage_obj *o = arg;
	uint64_t x;

	if (json_str_is(m->key, m->key_len, "ephemeral_5m_input_tokens"))
		o->v[UK_CW_5M] = member_u64(m, &x) == 0 ? x : 0;
	else if (json_str_is(m->key, m->key_len, "ephemeral_1h_input_tokens"))
		o->v[UK_CW_1H] = member_u64(m, &x) == 0 ? x : 0;
}

/* A member of a server_tool_use object. */
static void tool_member(void *arg, const struct json_member *m)
{
	if (json_str_is(m->key, m->key_len, "web_search_requests"))
		obj_count(arg, UK_WEB, m);
}

/* A member of a usage object (no "iterations" handling here). */
static void usage_member(void *arg, const struct json_member *m)
{
	struct usage_obj *o = arg;
	uint64_t x;

	if (json_str_is(m->key, m->key_len, "input_tokens")) {
		obj_count(o, UK_INPUT, m);
	} else if (json_str_is(m->key, m->key_len, "output_tokens")) {
		obj_count(o, UK_OUTPUT, m);
	} else if (json_str_is(m->key, m->key_len, "cache_read_input_tokens")) {
		obj_count(o, UK_READ, m);
	} else if (json_str_is(m->key, m->key_len, "cache_creation_input_tokens")) {
		o->has_cw_total = member_u64(m, &x) == 0;
		o->cw_total = o->has_cw_total ? x : 0;
	} else if (json_str_is(m->key, m->key_len, "cache_creation")) {
		/* The split, as a whole: a TTL it leaves out had no writes.
		 * null (or anything but an object) is no split. */
		o->has &= ~UK_CACHE;
		o->v[UK_CW_5M] = o->v[UK_CW_1H] = 0;
		if (m->type == JSON_T_OBJECT) {
			o->has |= UK_CACHE;
			json_each(m->val, m->val_len, split_member, o);
		}
	} else if (json_str_is(m->key, m->key_len, "server_tool_use")) {
		o->has &= ~UK_BIT(UK_WEB);
		o->v[UK_WEB] = 0;
		if (m->type == JSON_T_OBJECT)
			json_each(m->val, m->val_len, tool_member, o);
	} else if (json_str_is(m->key, m->key_len, "service_tier")) {
		o->tier = m->type == JSON_T_STRING ? m->val : NULL;
		o->tier_len = m->val_len;
	} else if (json_str_is(m->key, m->key_len, "iterations")) {
		o->iter = m->type == JSON_T_ARRAY ? m->val : NULL;
		o->iter_len = m->val_len;
	}
}

/* Reads the usage object obj[0..len) (no "iterations" handling) into *o.
 * Returns 0, or -1 if it cannot be walked (out of memory: the input was
 * validated before). */
static int obj_read(struct usage_obj *o, const char *obj, size_t len)
{
	memset(o, 0, sizeof(*o));
	return json_each(obj, len, usage_member, o) < 0 ? -1 : 0;
}

/* An element of "iterations": each object's counts are summed. */
struct iter_sum {
	struct usage_obj sum;
	int bad;
};

static void iter_member(void *arg, const struct json_member *m)
{
	struct iter_sum *is = arg;
	struct usage_obj it;
	int k;

	if (m->type != JSON_T_OBJECT)
		return;
	if (obj_read(&it, m->val, m->val_len) < 0) {
		is->bad = 1;
		return;
	}
	if (!(it.has & UK_CACHE) && it.has_cw_total) {
		it.v[UK_CW_5M] = it.cw_total;
		it.v[UK_CW_1H] = 0;
		it.has |= UK_CACHE;
	}
	for (k = 0; k < UK_N; k++) {
		if (!(it.has & UK_BIT(k)))
			continue;
		is->sum.v[k] = sat_add(is->sum.v[k], it.v[k]);
		is->sum.has |= UK_BIT(k);
	}
}

/* Reads the usage object obj[0..len), "iterations" included, into *o.
 * Returns 0 or -1 (see obj_read()).
 *
 * The iterations rule: with server-side compaction the API reports one
 * usage per sampling iteration (the compaction, then the message) in
 * usage.iterations, and the top-level counts cover the last iteration only.
 * Every iteration is billed, so when "iterations" is an array, each kind
 * that at least one of its objects reports is the SUM over the iterations
 * and replaces the top-level count; a kind no iteration reports (web
 * searches, say) keeps the top-level count. Within an iteration the cache
 * split follows the same rule as the top level (no cache_creation object:
 * all of cache_creation_input_tokens is 5-minute writes). Sums saturate at
 * UINT64_MAX. */
static int usage_read(struct usage_obj *o, const char *obj, size_t len)
{
	struct iter_sum is;
	int k;

	if (obj_read(o, obj, len) < 0)
		return -1;
	if (!o->iter)
		return 0;
	memset(&is, 0, sizeof(is));
	if (json_each(o->iter, o->iter_len, iter_member, &is) < 0 || is.bad)
		return -1;
	for (k = 0; k < UK_N; k++) {
		if (is.sum.has & UK_BIT(k)) {
			o->v[k] = is.sum.v[k];
			o->has |= UK_BIT(k);
		}
	}
	if (is.sum.has & UK_CACHE)
		o->has_cw_total = 0;   /* the split sums win over the total */
	return 0;
}

/* Copies service_tier when it is a plain short string; anything else
 * leaves the record's tier as it was. */
static void tier_copy(struct usage *u, const char *tok, size_t len)
{
	const char *s = tok + 1;
	size_t i, n = len - 2;

	if (n >= sizeof(u->service_tier))
		return;
	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '\\')
			return;
	memcpy(u->service_tier, s, n);
	u->service_tier[n] = 0;
}

/* Puts what a usage object says into the record: each count present
 * replaces the record's (usage is cumulative in an SSE stream, so the
 * latest value wins and nothing is added).
 *
 * The cache split: a cache_creation object gives the 5-minute and 1-hour
 * writes. Without one, cache_creation_input_tokens is the total: the 1-hour
 * part stays what the record knew (clamped to the total) and the rest is
 * 5-minute writes. On a first usage that puts all of it in 5m; for a
 * message_delta repeating message_start's total, it keeps the split. */
static void usage_apply(struct usage *u, const struct usage_obj *o)
{
	if (o->has & UK_BIT(UK_INPUT))
		u->input = o->v[UK_INPUT];
	if (o->has & UK_BIT(UK_OUTPUT))
		u->output = o->v[UK_OUTPUT];
	if (o->has & UK_BIT(UK_READ))
		u->cache_read = o->v[UK_READ];
	if (o->has & UK_BIT(UK_WEB))
		u->web_search = o->v[UK_WEB];
	if (o->has & UK_CACHE) {
		u->cache_write_5m = o->v[UK_CW_5M];
		u->cache_write_1h = o->v[UK_CW_1H];
	} else if (o->has_cw_total) {
		if (u->cache_write_1h > o->cw_total)
			u->cache_write_1h = o->cw_total;
		u->cache_write_5m = o->cw_total - u->cache_write_1h;
	}
	if (o->tier)
		tier_copy(u, o->tier, o->tier_len);
}

/* The model string token tok[0..len) into u->reported_model, when it is a
 * clean name of at most INSPECT_MODEL_MAX bytes; else nothing changes. */
static void model_copy(struct usage *u, const char *tok, size_t len)
{
	char name[INSPECT_MODEL_MAX + 1];
	unsigned int fl;
	size_t n;

	n = json_unescape(tok + 1, len - 2, name, INSPECT_MODEL_MAX, &fl);
	if (n > INSPECT_MODEL_MAX || fl)
		return;
	memcpy(u->reported_model, name, n);
	u->reported_model[n] = 0;
}

/* ------------------------------------------------------------------------ */
/* SSE events                                                               */
/* ------------------------------------------------------------------------ */

enum usage_ev {
	UE_OTHER = 0,
	UE_START,
	UE_DELTA,
	UE_STOP,
	UE_ERROR,
};

static enum usage_ev ev_of(const char *s, size_t n)
{
	if (n == 13 && memcmp(s, "message_start", 13) == 0)
		return UE_START;
	if (n == 13 && memcmp(s, "message_delta", 13) == 0)
		return UE_DELTA;
	if (n == 12 && memcmp(s, "message_stop", 12) == 0)
		return UE_STOP;
	if (n == 5 && memcmp(s, "error", 5) == 0)
		return UE_ERROR;
	return UE_OTHER;
}

/* The members of an event's root object, or of its "message", that matter:
 * the last of each key, any type (the caller checks it). */
struct ev_members {
	struct json_member type, message, usage, model;
};

static void ev_member(void *arg, const struct json_member *m)
{
	struct ev_members *e = arg;

	if (json_str_is(m->key, m->key_len, "type"))
		e->type = *m;
	else if (json_str_is(m->key, m->key_len, "message"))
		e->message = *m;
	else if (json_str_is(m->key, m->key_len, "usage"))
		e->usage = *m;
	else if (json_str_is(m->key, m->key_len, "model"))
		e->model = *m;
}

int usage_on_sse_event(struct usage *u, const char *name, const char *data,
                       size_t len)
{
	enum usage_ev ev = UE_OTHER;
	struct ev_members root, msg;
	struct usage_obj o;
	int named = name && *name;
	char tname[16];
	unsigned int fl;
	size_t n;

	if (named) {
		ev = ev_of(name, strlen(name));
		/* Most events are content: no need to parse them. */
		if (ev == UE_OTHER)
			return 0;
	}
	if (ev == UE_STOP) {
		u->flags |= USAGE_FL_STOP;
		return 1;
	}
	if (ev == UE_ERROR) {
		u->flags |= USAGE_FL_ERROR;
		return 1;
	}

	memset(&root, 0, sizeof(root));
	if (json_each(data, len, ev_member, &root) != JSON_T_OBJECT)
		return named ? -1 : 0;
	if (!named) {
		/* No "event:" line: the data's own type names it. */
		if (root.type.type != JSON_T_STRING)
			return 0;
		n = json_unescape(root.type.val + 1, root.type.val_len - 2, tname,
		                  sizeof(tname), &fl);
		ev = n <= sizeof(tname) ? ev_of(tname, n) : UE_OTHER;
	}

	/* Everything is read before anything is applied, so that a usage
	 * that cannot be walked leaves *u as it was. */
	switch (ev) {
	case UE_START:
		memset(&msg, 0, sizeof(msg));
		if (root.message.type == JSON_T_OBJECT &&
		    json_each(root.message.val, root.message.val_len, ev_member, &msg) < 0)
			return -1;
		if (msg.usage.type == JSON_T_OBJECT &&
		    usage_read(&o, msg.usage.val, msg.usage.val_len) < 0)
			return -1;
		if (msg.usage.type == JSON_T_OBJECT)
			usage_apply(u, &o);
		if (msg.model.type == JSON_T_STRING)
			model_copy(u, msg.model.val, msg.model.val_len);
		u->flags |= USAGE_FL_START;
		return 1;
	case UE_DELTA:
		if (root.usage.type == JSON_T_OBJECT) {
			if (usage_read(&o, root.usage.val, root.usage.val_len) < 0)
				return -1;
			usage_apply(u, &o);
			u->flags |= USAGE_FL_DELTA;
		}
		return 1;
	case UE_STOP:
		u->flags |= USAGE_FL_STOP;
		return 1;
	case UE_ERROR:
		u->flags |= USAGE_FL_ERROR;
		return 1;
	default:
		return 0;
	}
}

/* ------------------------------------------------------------------------ */
/* JSON answers, as they arrive                                             */
/* ------------------------------------------------------------------------ */

/* The root keys the reader keeps a value of (usage_reader.key). */
enum {
	UR_KEY_OTHER = 0,
	UR_KEY_USAGE,
	UR_KEY_MODEL,
};

void usage_reader_init(struct usage_reader *r)
{
	memset(r, 0, sizeof(*r));
	json_scan_init(&r->js, 0);
}

void usage_reader_release(struct usage_reader *r)
{
	json_scan_release(&r->js);
	free(r->usage);
	r->usage = NULL;
	r->usage_size = 0;
}

void usage_reader_gap(struct usage_reader *r)
{
	r->bad = 1;
}

/* Appends the usage bytes p[0..n): past USAGE_OBJ_MAX they are counted, not
 * kept. Returns 0, or -1 out of memory. */
static int keep_usage(struct usage_reader *r, const char *p, size_t n)
{
	size_t size;
	char *b;

	if (r->usage_over || n > USAGE_OBJ_MAX - r->usage_len) {
		r->usage_over = 1;
		return 0;
	}
	if (n > r->usage_size - r->usage_len) {
		size = r->usage_size ? r->usage_size : 1024;
		while (size - r->usage_len < n)
			size *= 2;
		if (size > USAGE_OBJ_MAX)
			size = USAGE_OBJ_MAX;
		b = realloc(r->usage, size);
		if (!b)
			return -1;
		r->usage = b;
		r->usage_size = size;
	}
	memcpy(r->usage + r->usage_len, p, n);
	r->usage_len += n;
	return 0;
}

/* Appends p[0..n) to buf (`size` bytes, `*len` used); past size the bytes
 * are counted only, which says the token was too long. */
static void keep_small(char *buf, size_t size, size_t *len, const char *p, size_t n)
{
	if (*len < size)
		memcpy(buf + *len, p, n < size - *len ? n : size - *len);
	*len += n;
}

/* The bytes p[0..n) were consumed by the scanner: kept if they belong to
 * the token being kept (see json_scan(): the bytes between BEGIN and its
 * KEY or VALUE are exactly the token's). Returns 0 or -1. */
static int keep(struct usage_reader *r, const char *p, size_t n)
{
	switch (r->keep) {
	case USAGE_KEEP_KEY:
		keep_small(r->key_raw, sizeof(r->key_raw), &r->key_len, p, n);
		return 0;
	case USAGE_KEEP_MODEL:
		keep_small(r->model, sizeof(r->model), &r->model_len, p, n);
		return 0;
	case USAGE_KEEP_USAGE:
		return keep_usage(r, p, n);
	default:
		return 0;
	}
}

/* A root key was kept whole. */
static int key_of(const struct usage_reader *r)
{
	if (r->key_len > sizeof(r->key_raw))
		return UR_KEY_OTHER;
	if (json_str_is(r->key_raw, r->key_len, "usage"))
		return UR_KEY_USAGE;
	if (json_str_is(r->key_raw, r->key_len, "model"))
		return UR_KEY_MODEL;
	return UR_KEY_OTHER;
}

/* A value of the root object starts: kept if it is the one of "usage" (an
 * object) or "model" (a string). The last of repeated keys wins, so each
 * one starts over. */
static void value_begins(struct usage_reader *r, enum json_type t)
{
	if (r->key == UR_KEY_USAGE) {
		r->usage_type = t;
		r->usage_len = 0;
		r->usage_over = 0;
		if (t == JSON_T_OBJECT)
			r->keep = USAGE_KEEP_USAGE;
	} else if (r->key == UR_KEY_MODEL) {
		r->model_type = t;
		r->model_len = 0;
		if (t == JSON_T_STRING)
			r->keep = USAGE_KEEP_MODEL;
	}
}

int usage_reader_feed(struct usage_reader *r, const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len, *q;
	struct json_ev ev;
	int e;

	while (!r->bad && p < end) {
		q = p;
		e = json_scan(&r->js, &p, end, &ev);
		if (e < 0 || keep(r, q, (size_t)(p - q)) < 0) {
			r->bad = 1;
			break;
		}
		switch (e) {
		case JSON_EV_ROOT:
			/* An answer that is no object has no usage to read. */
			if (ev.type != JSON_T_OBJECT)
				r->bad = 1;
			break;
		case JSON_EV_BEGIN:
			if (ev.key) {
				r->keep = USAGE_KEEP_KEY;
				r->key_len = 0;
			} else {
				value_begins(r, ev.type);
			}
			break;
		case JSON_EV_KEY:
			r->keep = USAGE_KEEP_NONE;
			r->key = key_of(r);
			break;
		case JSON_EV_VALUE:
			r->keep = USAGE_KEEP_NONE;
			break;
		default:
			break;
		}
	}
	return r->bad ? -1 : 0;
}

int usage_reader_finish(struct usage_reader *r, struct usage *u)
{
	struct usage_obj o;

	if (r->bad || json_scan_status(&r->js) != JSON_COMPLETE)
		return -1;
	if (r->usage_type == JSON_T_OBJECT &&
	    (r->usage_over || usage_read(&o, r->usage, r->usage_len) < 0))
		return -1;
	if (r->model_type == JSON_T_STRING && r->model_len <= sizeof(r->model))
		model_copy(u, r->model, r->model_len);
	if (r->usage_type != JSON_T_OBJECT)
		return 0;
	usage_apply(u, &o);
	u->flags |= USAGE_FL_START;
	return 1;
}

int usage_from_json(struct usage *u, const char *body, size_t len)
{
	struct usage_reader r;
	int rc;

	usage_reader_init(&r);
	usage_reader_feed(&r, body, len);
	rc = usage_reader_finish(&r, u);
	usage_reader_release(&r);
	return rc;
}

int usage_model_matches(const char *upstream, const char *reported)
{
	size_t n = strlen(upstream), r = strlen(reported);

	if (!r || !strcmp(upstream, reported))
		return 1;
	if (r != n + 9 || memcmp(reported, upstream, n) || reported[n] != '-')
		return 0;
	for (size_t i = n + 1; i < r; i++)
		if (reported[i] < '0' || reported[i] > '9')
			return 0;
	return 1;
}

/* ---------------------------------------------------------------------- */
/* Estimates                                                              */
/* ---------------------------------------------------------------------- */

/* "event: content_block_delta\n", "data: " and the blank line: what a
 * delta's data is framed in on the wire (the SSE parser hands over the
 * data alone). */
#define USAGE_DELTA_FRAMING  35u

struct content_walk {
	int is_delta;            /* root "type" is content_block_delta */
	const char *delta;       /* the root "delta" object */
	size_t delta_len;
	uint64_t text;
};

static void content_root(void *arg, const struct json_member *m)
{
	struct content_walk *w = arg;

	if (!m->key)
		return;
	if (json_str_is(m->key, m->key_len, "type") && m->type == JSON_T_STRING)
		w->is_delta = json_str_is(m->val, m->val_len, "content_block_delta");
	else if (json_str_is(m->key, m->key_len, "delta") && m->type == JSON_T_OBJECT) {
		w->delta = m->val;
		w->delta_len = m->val_len;
	}
}

/* The generated content of a delta: text, thinking, or a tool's input as
 * it is written (partial_json). Signatures are not the model's output. */
static void content_delta(void *arg, const struct json_member *m)
{
	struct content_walk *w = arg;
	unsigned int fl;

	if (!m->key || m->type != JSON_T_STRING || m->val_len < 2)
		return;
	if (json_str_is(m->key, m->key_len, "text") ||
	    json_str_is(m->key, m->key_len, "thinking") ||
	    json_str_is(m->key, m->key_len, "partial_json"))
		w->text += json_unescape(m->val + 1, m->val_len - 2, NULL, 0, &fl);
}

/* Skips the bytes of p[0..n) that are in `set` (NUL-terminated). */
static size_t span(const char *p, size_t n, const char *set)
{
	size_t i = 0;

	while (i < n && p[i] && strchr(set, p[i]))
		i++;
	return i;
}

/* Every content_block_delta of the Messages API has one shape:
 *     {"type":"content_block_delta","index":<n>,"delta":{"type":"<t>","<k>":<s>}}
 * with no whitespace. Such an event is read here in one pass, not by the
 * scanner (twice, since the delta is an object in the root): the agent
 * gets tens of them per answer. Returns 1 with *text what content_delta()
 * would count, or 0 when data is not exactly that shape, to be read by the
 * general path (which then reaches the same result for what is valid). */
static int content_fast(const char *p, size_t n, uint64_t *text)
{
	static const char head[] = "{\"type\":\"content_block_delta\",\"index\":";
	static const char mid[] = ",\"delta\":{\"type\":\"";
	static const char lower[] = "abcdefghijklmnopqrstuvwxyz_";
	const char *k, *v;
	size_t i, d, kl, vl, len;
	unsigned int fl;

	if (n < sizeof(head) - 1 || memcmp(p, head, sizeof(head) - 1) != 0)
		return 0;
	i = sizeof(head) - 1;
	d = span(p + i, n - i, "0123456789");
	if (d == 0 || (d > 1 && p[i] == '0'))
		return 0;
	i += d;
	if (n - i < sizeof(mid) - 1 || memcmp(p + i, mid, sizeof(mid) - 1) != 0)
		return 0;
	i += sizeof(mid) - 1;
	d = span(p + i, n - i, lower);
	if (d == 0 || n - i - d < 3 || memcmp(p + i + d, "\",\"", 3) != 0)
		return 0;
	i += d + 3;
	k = p + i;
	kl = span(k, n - i, lower);
	if (kl == 0 || n - i - kl < 3 || memcmp(k + kl, "\":\"", 3) != 0)
		return 0;
	i += kl + 3;
	/* the value: to its closing quote (an escaped byte skipped), no raw
	 * control byte; its escapes are json_unescape()'s to judge */
	v = p + i;
	for (vl = 0; i + vl < n && v[vl] != '"'; vl++) {
		if ((unsigned char)v[vl] < 0x20)
			return 0;
		if (v[vl] == '\\' && ++vl >= n - i)
			return 0;
	}
	if (n - i - vl != 3 || memcmp(v + vl, "\"}}", 3) != 0)
		return 0;
	len = json_unescape(v, vl, NULL, 0, &fl);
	if (fl & JSON_UNESC_BAD)
		return 0;
	*text = 0;
	if ((kl == 4 && memcmp(k, "text", 4) == 0) ||
	    (kl == 8 && memcmp(k, "thinking", 8) == 0) ||
	    (kl == 12 && memcmp(k, "partial_json", 12) == 0))
		*text = len;
	return 1;
}

int usage_content_event(struct usage_content *c, const char *data, size_t len)
{
	struct content_walk w = { 0 };

	if (content_fast(data, len, &w.text))
		goto counted;
	if (json_each(data, len, content_root, &w) != JSON_T_OBJECT || !w.is_delta)
		return 0;
	if (w.delta && json_each(w.delta, w.delta_len, content_delta, &w) != JSON_T_OBJECT)
		w.text = 0;
counted:
	c->event_bytes += len + USAGE_DELTA_FRAMING;
	c->text_bytes += w.text;
	return 1;
}

static uint64_t div_up(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

uint64_t usage_content_tokens(const struct usage_content *c)
{
	uint64_t text = c->text_bytes;

	/* The bytes left out are deltas too (the tap keeps the first and
	 * last ones): the text share of the ones seen, or, with none seen,
	 * that of a typical small text delta. */
	if (c->skipped_bytes) {
		if (c->event_bytes)
			text += (uint64_t)((double)c->skipped_bytes * (double)c->text_bytes /
			                   (double)c->event_bytes);
		else
			text += c->skipped_bytes / USAGE_EST_DELTA_BYTES_PER_TEXT_BYTE;
	}
	return div_up(text, USAGE_EST_BYTES_PER_TOKEN);
}

uint64_t usage_bytes_tokens(uint64_t bytes)
{
	return div_up(bytes, USAGE_EST_BYTES_PER_TOKEN);
}
