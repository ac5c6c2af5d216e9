/*
 * Usage extraction (contract in realms/usage.h).
 *
 * Every input is one JSON object: an SSE event's data or a whole response
 * body. One jsmn pass (strict, parent links) tokenises it; lookups then
 * walk only the tokens of the object they search, by parent link, so a
 * body is walked a small constant number of times however large it is.
 *
 * jsmn checks brackets, strings and escapes but is loose about the rest:
 * separators ({"a" "b"}, [1 2], {"a":1,}), any printable run as a
 * primitive (tru, 01x), raw control characters in strings. A second linear
 * walk over the tokens (json_check) re-reads the bytes between them with a
 * small grammar state machine and checks every primitive and string, so a
 * body is taken only if it is RFC 8259 JSON (UTF-8 validity aside): a
 * damaged answer is unparsable, never half-read.
 *
 * Keys are compared raw, without unescaping: Anthropic writes them plain,
 * and the model's text can only ever land inside strings.
 */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS   /* closing brackets in O(depth), not O(tokens) */
#include <jsmn.h>

#include <realms/limits.h>
#include <realms/usage.h>

/* Tokens of a fresh thread's array; doubled up to USAGE_JSON_MAX_TOKENS.
 * A message_start needs about 30, a Claude Code answer body a few hundred. */
#define USAGE_TOKS_INIT   256

/* jsmn keeps offsets in int. */
#define USAGE_LEN_MAX     ((size_t)INT_MAX - 1)

/* Tokens parsed between two depth checks (see USAGE_JSON_MAX_DEPTH). */
#define USAGE_DEPTH_STEP  32

/* ------------------------------------------------------------------------ */
/* scratch                                                                  */
/* ------------------------------------------------------------------------ */

/* Per-thread token array, kept between calls so that steady traffic
 * allocates nothing, and freed when the thread exits. */
struct usage_scratch {
	jsmntok_t *toks;
	unsigned int ntoks;
};

static _Thread_local struct usage_scratch scr;
static pthread_key_t scr_key;
static int scr_key_ok;
static pthread_once_t scr_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *arg)
{
	struct usage_scratch *s = arg;

	free(s->toks);
	s->toks = NULL;
	s->ntoks = 0;
}

static void scratch_key_init(void)
{
	scr_key_ok = pthread_key_create(&scr_key, scratch_free) == 0;
}

/* Doubles the token array up to USAGE_JSON_MAX_TOKENS. Returns 0, or -1 at
 * the cap or out of memory, leaving what was there usable. */
static int scratch_grow(void)
{
	unsigned int n = scr.ntoks ? scr.ntoks * 2 : USAGE_TOKS_INIT;
	jsmntok_t *toks;

	if (n > USAGE_JSON_MAX_TOKENS)
		n = USAGE_JSON_MAX_TOKENS;
	if (n <= scr.ntoks)
		return -1;
	if (!scr.toks) {
		/* First allocation of this thread: have it freed at exit. */
		pthread_once(&scr_once, scratch_key_init);
		if (scr_key_ok)
			pthread_setspecific(scr_key, &scr);
	}
	toks = realloc(scr.toks, n * sizeof(*toks));
	if (!toks)
		return -1;
	scr.toks = toks;
	scr.ntoks = n;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */
/* ------------------------------------------------------------------------ */

/* One tokenised input. */
struct json {
	const char *buf;
	size_t len;
	const jsmntok_t *t;
	int n;
};

/* Open containers around jsmn's position, counted up to just past
 * USAGE_JSON_MAX_DEPTH (the chain from toksuper holds open containers and
 * the keys between them). */
static unsigned int parse_depth(const jsmn_parser *parser)
{
	unsigned int d = 0;
	int i = parser->toksuper;

	while (i >= 0 && d <= USAGE_JSON_MAX_DEPTH) {
		if (scr.toks[i].type == JSMN_OBJECT || scr.toks[i].type == JSMN_ARRAY)
			d++;
		i = scr.toks[i].parent;
	}
	return d;
}

/* ------------------------------------------------------------------------ */
/* grammar check                                                            */
/* ------------------------------------------------------------------------ */

/* What may come next, given what the check has seen. */
enum jc_st {
	JC_VALUE,       /* a value: the root, or after ':', or after ',' in an array */
	JC_ARR_FIRST,   /* after '[': a value or ']' */
	JC_OBJ_FIRST,   /* after '{': a key or '}' */
	JC_KEY,         /* after ',' in an object: a key */
	JC_COLON,       /* after a key: ':' */
	JC_AFTER,       /* after a value in a container: ',' or its closing bracket */
	JC_DONE,        /* after the root value: whitespace only */
};

struct jcheck {
	const char *buf;
	size_t p;                 /* first byte not checked yet */
	enum jc_st st;
	unsigned int depth;       /* open containers */
	unsigned char obj[USAGE_JSON_MAX_DEPTH / 8 + 1];  /* bit per level: 1 object */
};

static int jc_in_obj(const struct jcheck *c)
{
	unsigned int d = c->depth - 1;

	return c->obj[d >> 3] >> (d & 7) & 1;
}

static int jc_wants_value(const struct jcheck *c)
{
	return c->st == JC_VALUE || c->st == JC_ARR_FIRST;
}

static void jc_value_done(struct jcheck *c)
{
	c->st = c->depth ? JC_AFTER : JC_DONE;
}

/* Whether p[0..n) is a whole JSON literal or number,
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. */
static int prim_ok(const char *p, size_t n)
{
	size_t i = 0;

	if ((n == 4 && (memcmp(p, "true", 4) == 0 || memcmp(p, "null", 4) == 0)) ||
	    (n == 5 && memcmp(p, "false", 5) == 0))
		return 1;
	if (i < n && p[i] == '-')
		i++;
	if (i < n && p[i] == '0')
		i++;
	else if (i < n && p[i] >= '1' && p[i] <= '9')
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	else
		return 0;
	if (i < n && p[i] == '.') {
		if (++i >= n || p[i] < '0' || p[i] > '9')
			return 0;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		if (++i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= n || p[i] < '0' || p[i] > '9')
			return 0;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	}
	return i == n;
}

/* Checks buf[c->p .. stop), the bytes between two tokens: whitespace and
 * the separators and closing brackets the grammar allows there. */
static int jc_gap(struct jcheck *c, size_t stop)
{
	int obj;

	for (; c->p < stop; c->p++) {
		switch (c->buf[c->p]) {
		case ' ': case '\t': case '\n': case '\r':
			break;
		case ':':
			if (c->st != JC_COLON)
				return -1;
			c->st = JC_VALUE;
			break;
		case ',':
			if (c->st != JC_AFTER)
				return -1;
			c->st = jc_in_obj(c) ? JC_KEY : JC_VALUE;
			break;
		case '}':
		case ']':
			obj = c->buf[c->p] == '}';
			if (c->depth == 0 || jc_in_obj(c) != obj)
				return -1;
			if (c->st != JC_AFTER && c->st != (obj ? JC_OBJ_FIRST : JC_ARR_FIRST))
				return -1;
			c->depth--;
			jc_value_done(c);
			break;
		default:
			return -1;   /* a NUL where jsmn stopped lands here too */
		}
	}
	return 0;
}

/* Checks one token, with the gap before it. */
static int jc_tok(struct jcheck *c, const jsmntok_t *t)
{
	/* A string token starts after its opening quote. */
	size_t b = (size_t)t->start - (t->type == JSMN_STRING), i;
	unsigned int d;

	if (t->start < 0 || t->end < t->start || b < c->p || jc_gap(c, b) < 0)
		return -1;
	switch (t->type) {
	case JSMN_STRING:
		for (i = (size_t)t->start; i < (size_t)t->end; i++)
			if ((unsigned char)c->buf[i] < 0x20)
				return -1;
		if (c->st == JC_OBJ_FIRST || c->st == JC_KEY)
			c->st = JC_COLON;
		else if (jc_wants_value(c))
			jc_value_done(c);
		else
			return -1;
		c->p = (size_t)t->end + 1;
		return 0;
	case JSMN_PRIMITIVE:
		if (!jc_wants_value(c) ||
		    !prim_ok(c->buf + t->start, (size_t)(t->end - t->start)))
			return -1;
		jc_value_done(c);
		c->p = (size_t)t->end;
		return 0;
	case JSMN_OBJECT:
	case JSMN_ARRAY:
		if (!jc_wants_value(c) || c->depth >= USAGE_JSON_MAX_DEPTH)
			return -1;
		d = c->depth++;
		if (t->type == JSMN_OBJECT)
			c->obj[d >> 3] |= 1u << (d & 7);
		else
			c->obj[d >> 3] &= ~(1u << (d & 7));
		c->st = t->type == JSMN_OBJECT ? JC_OBJ_FIRST : JC_ARR_FIRST;
		c->p = (size_t)t->start + 1;
		return 0;
	default:
		return -1;
	}
}

/* Whether buf[0..len), tokenised in toks[0..n), is exactly one JSON value
 * with only whitespace around it (the caller checks it is an object). */
static int json_check(const char *buf, size_t len, const jsmntok_t *toks, int n)
{
	struct jcheck c;
	int i;

	c.buf = buf;
	c.p = 0;
	c.st = JC_VALUE;
	c.depth = 0;
	for (i = 0; i < n; i++)
		if (jc_tok(&c, &toks[i]) < 0)
			return -1;
	if (jc_gap(&c, len) < 0 || c.st != JC_DONE)
		return -1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* look-ups                                                                 */
/* ------------------------------------------------------------------------ */

/* Tokenises buf[0..len), which must be exactly one complete JSON object with
 * only whitespace around it. Returns 0 with *j filled (tokens in scr, valid
 * until the next call on this thread), or -1. */
static int json_parse(struct json *j, const char *buf, size_t len)
{
	jsmn_parser parser;
	unsigned int lim;
	int r;

	if (len == 0 || len > USAGE_LEN_MAX)
		return -1;
	if (!scr.ntoks && scratch_grow() < 0)
		return -1;
	jsmn_init(&parser);
	for (;;) {
		/* A few tokens at a time, to watch the depth. After NOMEM jsmn
		 * resumes where it stopped: at most one string is read twice
		 * per window. */
		lim = parser.toknext + USAGE_DEPTH_STEP;
		if (lim > scr.ntoks)
			lim = scr.ntoks;
		r = jsmn_parse(&parser, buf, len, scr.toks, lim);
		if (r != JSMN_ERROR_NOMEM)
			break;
		if (parse_depth(&parser) > USAGE_JSON_MAX_DEPTH)
			return -1;
		if (parser.toknext == scr.ntoks && scratch_grow() < 0)
			return -1;
	}
	/* JSMN_ERROR_PART: truncated, a cut number included (strict jsmn
	 * wants a delimiter after a primitive). jsmn also stops at a NUL and
	 * takes "{} {}" as two roots: json_check() refuses both. */
	if (r < 0 || parser.toknext == 0 || scr.toks[0].type != JSMN_OBJECT)
		return -1;
	if (json_check(buf, len, scr.toks, (int)parser.toknext) < 0)
		return -1;
	j->buf = buf;
	j->len = len;
	j->t = scr.toks;
	j->n = (int)parser.toknext;
	return 0;
}

/* Whether token k is the string key `s` (n bytes), compared raw. */
static int json_key_is(const struct json *j, int k, const char *s, size_t n)
{
	const jsmntok_t *t = &j->t[k];

	return (size_t)(t->end - t->start) == n && memcmp(j->buf + t->start, s, n) == 0;
}

#define KEY_IS(j, k, lit)  json_key_is((j), (k), (lit), sizeof(lit) - 1)

/* The next key of object o after token k (start with k = o), or -1. Its
 * value is the token after it. Only the object's own keys are returned,
 * and only those with a value (see the file's header). */
static int json_next_key(const struct json *j, int o, int k)
{
	int end = j->t[o].end;

	for (k++; k < j->n && j->t[k].start < end; k++) {
		if (j->t[k].parent != o || j->t[k].type != JSMN_STRING)
			continue;
		if (k + 1 < j->n && j->t[k + 1].parent == k)
			return k;
	}
	return -1;
}

/* The value of the last key `s` of object o with a value of type `type`,
 * or -1. The last one: what the client's JSON parser will see. */
static int json_find(const struct json *j, int o, const char *s, size_t n,
                     jsmntype_t type)
{
	int k, v = -1;

	for (k = json_next_key(j, o, o); k >= 0; k = json_next_key(j, o, k))
		if (json_key_is(j, k, s, n))
			v = j->t[k + 1].type == type ? k + 1 : -1;
	return v;
}

#define FIND(j, o, lit, type)  json_find((j), (o), (lit), sizeof(lit) - 1, (type))

/* Token v as a count: a JSON integer, non-negative, fitting 64 bits, and
 * not touching the end of the input (a cut number is no number). Returns 0
 * with *out set, or -1 (the caller takes the field as absent). */
static int json_u64(const struct json *j, int v, uint64_t *out)
{
	const jsmntok_t *t = &j->t[v];
	const char *s = j->buf + t->start;
	size_t i, n = (size_t)(t->end - t->start);
	uint64_t x = 0;
	unsigned int d;

	if (t->type != JSMN_PRIMITIVE || n == 0 || (size_t)t->end >= j->len)
		return -1;
	if (n > 1 && s[0] == '0')
		return -1;   /* a leading zero is not JSON */
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;   /* sign, fraction, exponent, literal */
		d = (unsigned int)(s[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

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
	int tier;                  /* service_tier token, or -1 */
};

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Sets or clears a count from value token v: a key repeated with a bad
 * value leaves the count absent, as the last occurrence wins. */
static void obj_count(struct usage_obj *o, enum usage_kind k, const struct json *j, int v)
{
	if (json_u64(j, v, &o->v[k]) == 0) {
		o->has |= UK_BIT(k);
	} else {
		o->v[k] = 0;
		o->has &= ~UK_BIT(k);
	}
}

/* Reads usage object `obj` (no "iterations" handling) into *o. */
static void obj_read(struct usage_obj *o, const struct json *j, int obj)
{
	uint64_t x;
	int k, v, c;

	memset(o, 0, sizeof(*o));
	o->tier = -1;
	for (k = json_next_key(j, obj, obj); k >= 0; k = json_next_key(j, obj, k)) {
		v = k + 1;
		if (KEY_IS(j, k, "input_tokens")) {
			obj_count(o, UK_INPUT, j, v);
		} else if (KEY_IS(j, k, "output_tokens")) {
			obj_count(o, UK_OUTPUT, j, v);
		} else if (KEY_IS(j, k, "cache_read_input_tokens")) {
			obj_count(o, UK_READ, j, v);
		} else if (KEY_IS(j, k, "cache_creation_input_tokens")) {
			o->has_cw_total = json_u64(j, v, &x) == 0;
			o->cw_total = o->has_cw_total ? x : 0;
		} else if (KEY_IS(j, k, "cache_creation")) {
			/* The split, as a whole: a TTL it leaves out had no
			 * writes. null (or anything but an object) is no split. */
			o->has &= ~UK_CACHE;
			o->v[UK_CW_5M] = o->v[UK_CW_1H] = 0;
			if (j->t[v].type != JSMN_OBJECT)
				continue;
			o->has |= UK_CACHE;
			if ((c = FIND(j, v, "ephemeral_5m_input_tokens", JSMN_PRIMITIVE)) >= 0 &&
			    json_u64(j, c, &x) == 0)
				o->v[UK_CW_5M] = x;
			if ((c = FIND(j, v, "ephemeral_1h_input_tokens", JSMN_PRIMITIVE)) >= 0 &&
			    json_u64(j, c, &x) == 0)
				o->v[UK_CW_1H] = x;
		} else if (KEY_IS(j, k, "server_tool_use")) {
			o->has &= ~UK_BIT(UK_WEB);
			o->v[UK_WEB] = 0;
			if (j->t[v].type == JSMN_OBJECT &&
			    (c = FIND(j, v, "web_search_requests", JSMN_PRIMITIVE)) >= 0)
				obj_count(o, UK_WEB, j, c);
		} else if (KEY_IS(j, k, "service_tier")) {
			o->tier = j->t[v].type == JSMN_STRING ? v : -1;
		}
	}
}

/* Reads usage object `obj`, "iterations" included, into *o.
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
static void usage_read(struct usage_obj *o, const struct json *j, int obj)
{
	struct usage_obj it, sum;
	int arr, e, end, k;

	obj_read(o, j, obj);
	arr = FIND(j, obj, "iterations", JSMN_ARRAY);
	if (arr < 0)
		return;
	memset(&sum, 0, sizeof(sum));
	end = j->t[arr].end;
	for (e = arr + 1; e < j->n && j->t[e].start < end; e++) {
		if (j->t[e].parent != arr || j->t[e].type != JSMN_OBJECT)
			continue;
		obj_read(&it, j, e);
		if (!(it.has & UK_CACHE) && it.has_cw_total) {
			it.v[UK_CW_5M] = it.cw_total;
			it.v[UK_CW_1H] = 0;
			it.has |= UK_CACHE;
		}
		for (k = 0; k < UK_N; k++) {
			if (!(it.has & UK_BIT(k)))
				continue;
			sum.v[k] = sat_add(sum.v[k], it.v[k]);
			sum.has |= UK_BIT(k);
		}
	}
	for (k = 0; k < UK_N; k++) {
		if (sum.has & UK_BIT(k)) {
			o->v[k] = sum.v[k];
			o->has |= UK_BIT(k);
		}
	}
	if (sum.has & UK_CACHE)
		o->has_cw_total = 0;   /* the split sums win over the total */
}

/* Copies service_tier when it is a plain short string; anything else
 * leaves the record's tier as it was. */
static void tier_copy(struct usage *u, const struct json *j, int v)
{
	const jsmntok_t *t = &j->t[v];
	const char *s = j->buf + t->start;
	size_t i, n = (size_t)(t->end - t->start);

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
static void usage_apply(struct usage *u, const struct usage_obj *o, const struct json *j)
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
	if (o->tier >= 0)
		tier_copy(u, j, o->tier);
}

/* Reads usage object `obj` of j into *u. */
static void usage_take(struct usage *u, const struct json *j, int obj)
{
	struct usage_obj o;

	usage_read(&o, j, obj);
	usage_apply(u, &o, j);
}

/* ------------------------------------------------------------------------ */
/* API                                                                      */
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

int usage_on_sse_event(struct usage *u, const char *name, const char *data,
                       size_t len)
{
	enum usage_ev ev = UE_OTHER;
	struct json j;
	int named = name && *name, t, o;

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

	if (json_parse(&j, data, len) < 0)
		return named ? -1 : 0;
	if (!named) {
		/* No "event:" line: the data's own type names it. */
		t = FIND(&j, 0, "type", JSMN_STRING);
		if (t < 0)
			return 0;
		ev = ev_of(j.buf + j.t[t].start, (size_t)(j.t[t].end - j.t[t].start));
	}

	switch (ev) {
	case UE_START:
		o = FIND(&j, 0, "message", JSMN_OBJECT);
		if (o >= 0 && (o = FIND(&j, o, "usage", JSMN_OBJECT)) >= 0)
			usage_take(u, &j, o);
		u->flags |= USAGE_FL_START;
		return 1;
	case UE_DELTA:
		o = FIND(&j, 0, "usage", JSMN_OBJECT);
		if (o >= 0) {
			usage_take(u, &j, o);
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

int usage_from_json(struct usage *u, const char *body, size_t len)
{
	struct json j;
	int o;

	if (json_parse(&j, body, len) < 0)
		return -1;
	o = FIND(&j, 0, "usage", JSMN_OBJECT);
	if (o < 0)
		return 0;
	usage_take(u, &j, o);
	u->flags |= USAGE_FL_START;
	return 1;
}
