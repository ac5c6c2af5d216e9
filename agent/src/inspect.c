/*
 * Body inspection: what the prefix of a Messages API request body says about
 * its top-level "model" and "stream", and "metadata"."user_id" (contract in
 * realms/inspect.h).
 *
 * One jsmn pass tokenises the prefix, then one walk over the tokens checks
 * what strict jsmn still lets through and picks out the root object's keys.
 * jsmn checks escapes and refuses objects or primitives as keys, but it is
 * loose about separators ("[1 2]", {"a":1,}, {"a"::1} and {"a" "b"} all
 * parse), takes any run of printable ASCII as a primitive, and lets raw
 * control characters into strings. So the walk re-reads the bytes between
 * tokens (only whitespace and , : } ] may be there) with a small grammar
 * state machine, and checks every primitive and string token. Together they
 * accept RFC 8259 JSON (UTF-8 validity aside) or a prefix of it, and nothing
 * else. Both passes are linear; duplicate keys are found by sorting.
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

#include <realms/inspect.h>

/* Tokens of a fresh thread's array; it doubles up to INSPECT_MAX_TOKENS. A
 * 64 KB Claude Code prefix needs about 300. */
#define INSPECT_TOKS_INIT  512

/* jsmn keeps offsets in int and its cursor in unsigned int: a longer prefix
 * is inspected up to here only, as if the token budget had run out. */
#define INSPECT_LEN_MAX    ((size_t)INT_MAX - 1)

/* Nesting depth at most, checked every INSPECT_DEPTH_STEP tokens (so it
 * may overshoot by that much); deeper is handled like the token budget
 * running out. jsmn closes a bracket by walking parent links up from the
 * last token, so each close costs up to the depth: 32000 nested arrays
 * (64 KB) took 8 s, and blocks nested 250 deep still cost 20 ms per 64 KB.
 * At this bound the worst 64 KB costs a few ms. The Claude Code bodies nest
 * 10 deep; tool JSON schemas are what nests most. */
#define INSPECT_MAX_DEPTH  64
#define INSPECT_DEPTH_STEP 32

/* One top-level key as bytes to compare: raw from the body when it holds no
 * escape, else decoded into the scratch key buffer. */
struct inspect_key {
	const char *p;
	size_t len;
	int esc;
};

/* Per-thread scratch memory, kept between calls so that steady traffic
 * allocates nothing, and freed when the thread exits. */
struct inspect_scratch {
	jsmntok_t *toks;
	unsigned int ntoks;            /* tokens allocated */
	struct inspect_key *keys;      /* ntoks / 2 + 1 of them, see walk_key() */
	char *kbuf;                    /* decoded escaped keys */
	size_t kbuf_size;
	/* Open containers, one bit per level (1 = object). jsmn stops at a
	 * window boundary once past INSPECT_MAX_DEPTH, and a window opens at
	 * most INSPECT_DEPTH_STEP more. */
	unsigned char stack[(INSPECT_MAX_DEPTH + INSPECT_DEPTH_STEP) / 8 + 1];
};

static _Thread_local struct inspect_scratch scr;
static pthread_key_t scr_key;
static int scr_key_ok;
static pthread_once_t scr_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *arg)
{
	struct inspect_scratch *s = arg;

	free(s->toks);
	free(s->keys);
	free(s->kbuf);
	s->toks = NULL;
	s->keys = NULL;
	s->kbuf = NULL;
	s->ntoks = 0;
	s->kbuf_size = 0;
}

static void scratch_key_init(void)
{
	scr_key_ok = pthread_key_create(&scr_key, scratch_free) == 0;
}

/* Doubles the token array (and the key array with it) up to
 * INSPECT_MAX_TOKENS. Returns 0, or -1 at the cap or out of memory, leaving
 * what was there usable. */
static int scratch_grow(void)
{
	unsigned int n = scr.ntoks ? scr.ntoks * 2 : INSPECT_TOKS_INIT;
	struct inspect_key *keys;
	jsmntok_t *toks;

	if (n > INSPECT_MAX_TOKENS)
		n = INSPECT_MAX_TOKENS;
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
	keys = realloc(scr.keys, (n / 2 + 1) * sizeof(*keys));
	if (!keys)
		return -1;
	scr.keys = keys;
	scr.ntoks = n;
	return 0;
}

/* Open containers around jsmn's current position, counted up to just past
 * INSPECT_MAX_DEPTH. The chain from toksuper holds open containers and the
 * keys between them. */
static unsigned int parse_depth(const jsmn_parser *parser)
{
	unsigned int d = 0;
	int i = parser->toksuper;

	while (i >= 0 && d <= INSPECT_MAX_DEPTH) {
		if (scr.toks[i].type == JSMN_OBJECT || scr.toks[i].type == JSMN_ARRAY)
			d++;
		i = scr.toks[i].parent;
	}
	return d;
}

/* ------------------------------------------------------------------------ */
/* scalars                                                                  */
/* ------------------------------------------------------------------------ */

/* Whether p[0..n) holds a byte below 0x20 (raw control characters, NUL
 * included, may not appear in JSON strings). Eight bytes at a time: the
 * expression has a high bit set somewhere iff some byte is below 0x20. */
static int has_ctl(const char *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101ULL;
	const uint64_t high = 0x8080808080808080ULL;
	uint64_t x;

	for (; n >= 8; p += 8, n -= 8) {
		memcpy(&x, p, 8);
		if ((x - ones * 0x20) & ~x & high)
			return 1;
	}
	for (; n; p++, n--)
		if ((unsigned char)*p < 0x20)
			return 1;
	return 0;
}

/* Matches p[0..n) against the JSON grammar of a literal or of a number,
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. Returns 1 for a whole one,
 * 0 for a proper prefix of one (so it may still be cut off), -1 when no
 * continuation can make it one. */
static int prim_check(const char *p, size_t n)
{
	const char *lit = NULL;
	size_t i, ll;
	int s = 0;

	if (n == 0)
		return 0;
	switch (p[0]) {
	case 't': lit = "true";  break;
	case 'f': lit = "false"; break;
	case 'n': lit = "null";  break;
	}
	if (lit) {
		ll = strlen(lit);
		if (n > ll || memcmp(p, lit, n) != 0)
			return -1;
		return n == ll;
	}

	/* States: 0 start, 1 after '-', 2 after a leading 0, 3 in the integer,
	 * 4 after '.', 5 in the fraction, 6 after 'e', 7 after its sign, 8 in
	 * the exponent. 2, 3, 5 and 8 end a number. */
	for (i = 0; i < n; i++) {
		char c = p[i];
		int dig = c >= '0' && c <= '9';
		int e = (c | 0x20) == 'e';

		switch (s) {
		case 0:  s = c == '-' ? 1 : c == '0' ? 2 : dig ? 3 : -1; break;
		case 1:  s = c == '0' ? 2 : dig ? 3 : -1; break;
		case 2:  s = c == '.' ? 4 : e ? 6 : -1; break;
		case 3:  s = dig ? 3 : c == '.' ? 4 : e ? 6 : -1; break;
		case 4:  s = dig ? 5 : -1; break;
		case 5:  s = dig ? 5 : e ? 6 : -1; break;
		case 6:  s = c == '+' || c == '-' ? 7 : dig ? 8 : -1; break;
		default: s = dig ? 8 : -1; break;   /* 7 and 8 */
		}
		if (s < 0)
			return -1;
	}
	return s == 2 || s == 3 || s == 5 || s == 8;
}

/* Four hex digits, or -1. */
static long hex4(const char *p)
{
	long v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v |= (c | 0x20) - 'a' + 10;
		else
			return -1;
	}
	return v;
}

/* Decodes the inside of a JSON string token, p[0..n), into out, writing at
 * most size bytes (no NUL). Returns the whole decoded length, which may be
 * more than size: the rest is counted, not written. Never longer than n.
 *
 * Sets *bad when the value is not a clean name: a control character (raw or
 * escaped, NUL included), a lone surrogate (written as its 3-byte WTF-8
 * form, so that keys holding one still compare consistently) or a broken
 * escape (which jsmn would not have let through). */
static size_t json_unescape(const char *p, size_t n, char *out, size_t size, int *bad)
{
	const char *bs;
	size_t i = 0, o = 0, run;
	unsigned char u[4];
	long cp, lo;
	int k, nu;

	*bad = 0;
	while (i < n) {
		bs = memchr(p + i, '\\', n - i);
		run = (bs ? (size_t)(bs - p) : n) - i;
		if (has_ctl(p + i, run))
			*bad = 1;
		if (o < size)
			memcpy(out + o, p + i, run < size - o ? run : size - o);
		o += run;
		i += run;
		if (!bs)
			break;

		if (n - i < 2) {
			*bad = 1;
			break;
		}
		i += 2;
		switch (p[i - 1]) {
		case '"':  cp = '"';  break;
		case '\\': cp = '\\'; break;
		case '/':  cp = '/';  break;
		case 'b':  cp = '\b'; break;
		case 'f':  cp = '\f'; break;
		case 'n':  cp = '\n'; break;
		case 'r':  cp = '\r'; break;
		case 't':  cp = '\t'; break;
		case 'u':
			if (n - i < 4 || (cp = hex4(p + i)) < 0) {
				*bad = 1;
				return o;
			}
			i += 4;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				/* A high surrogate counts only with a low one next. */
				if (n - i >= 6 && p[i] == '\\' && p[i + 1] == 'u' &&
				    (lo = hex4(p + i + 2)) >= 0xdc00 && lo <= 0xdfff) {
					cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
					i += 6;
				} else {
					*bad = 1;
				}
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				*bad = 1;
			}
			break;
		default:
			*bad = 1;
			return o;
		}

		if (cp < 0x20)
			*bad = 1;
		if (cp < 0x80) {
			u[0] = cp;
			nu = 1;
		} else if (cp < 0x800) {
			u[0] = 0xc0 | cp >> 6;
			u[1] = 0x80 | (cp & 0x3f);
			nu = 2;
		} else if (cp < 0x10000) {
			u[0] = 0xe0 | cp >> 12;
			u[1] = 0x80 | (cp >> 6 & 0x3f);
			u[2] = 0x80 | (cp & 0x3f);
			nu = 3;
		} else {
			u[0] = 0xf0 | cp >> 18;
			u[1] = 0x80 | (cp >> 12 & 0x3f);
			u[2] = 0x80 | (cp >> 6 & 0x3f);
			u[3] = 0x80 | (cp & 0x3f);
			nu = 4;
		}
		for (k = 0; k < nu; k++, o++)
			if (o < size)
				out[o] = u[k];
	}
	return o;
}

/* ------------------------------------------------------------------------ */
/* the walk                                                                 */
/* ------------------------------------------------------------------------ */

/* What may come next, given what the walk has seen. */
enum walk_st {
	WS_VALUE,       /* a value: the root, or after ':', or after ',' in an array */
	WS_ARR_FIRST,   /* after '[': a value or ']' */
	WS_OBJ_FIRST,   /* after '{': a key or '}' */
	WS_KEY,         /* after ',' in an object: a key */
	WS_COLON,       /* after a key: ':' */
	WS_AFTER,       /* after a value in a container: ',' or its closing bracket */
	WS_DONE,        /* after the root value: whitespace only */
};

/* The root keys we look for. */
enum root_key {
	RK_OTHER,
	RK_MODEL,
	RK_STREAM,
	RK_METADATA,
};

struct walk {
	const char *buf;
	size_t p;                 /* first byte not consumed yet */
	enum walk_st st;
	unsigned int depth;       /* open containers */
	enum root_key key;        /* the last root key: the next root value is its */
	size_t nkeys;             /* root keys seen, in scr.keys */
	size_t kmax;              /* room in scr.keys */
	int in_meta;              /* the open depth-2 object is the root's "metadata" */
	int meta_uid;             /* and its last key is "user_id" */
	const jsmntok_t *uid;     /* the string value of its last "user_id", or NULL */
	struct inspect_result *res;
};

static inline int walk_in_obj(const struct walk *w)
{
	unsigned int d = w->depth - 1;

	return scr.stack[d >> 3] >> (d & 7) & 1;
}

static inline void walk_push(struct walk *w, int obj)
{
	unsigned int d = w->depth++;

	if (obj)
		scr.stack[d >> 3] |= 1u << (d & 7);
	else
		scr.stack[d >> 3] &= ~(1u << (d & 7));
}

static inline int walk_wants_value(const struct walk *w)
{
	return w->st == WS_VALUE || w->st == WS_ARR_FIRST;
}

static inline int walk_wants_key(const struct walk *w)
{
	return w->st == WS_OBJ_FIRST || w->st == WS_KEY;
}

/* A value in the root object: the one of the last root key. */
static inline int walk_at_root(const struct walk *w)
{
	return w->depth == 1 && walk_in_obj(w);
}

static inline void walk_value_done(struct walk *w)
{
	w->st = w->depth ? WS_AFTER : WS_DONE;
}

/* The name of a key token: its raw bytes when it has no escape, else its
 * first bytes decoded into tmp (enough to tell the names we look for).
 * Returns the (decoded) length and points *name at the bytes. */
static size_t key_name(const char *buf, const jsmntok_t *t, int esc, char tmp[8],
                       const char **name)
{
	size_t n = (size_t)(t->end - t->start);
	int bad;

	*name = buf + t->start;
	if (!esc)
		return n;
	*name = tmp;
	return json_unescape(buf + t->start, n, tmp, 8, &bad);
}

/* The root's "metadata" object just closed: its last "user_id" counts, if
 * it is a clean string short enough. An object the prefix cuts off never
 * gets here, so its user_id is never reported. */
static void walk_meta_done(struct walk *w)
{
	struct inspect_result *res = w->res;
	const jsmntok_t *t = w->uid;
	size_t n;
	int bad;

	w->in_meta = 0;
	res->user_id[0] = 0;
	res->user_id_len = 0;
	if (!t)
		return;
	n = json_unescape(w->buf + t->start, (size_t)(t->end - t->start), res->user_id,
	                  INSPECT_USER_ID_MAX, &bad);
	if (n > INSPECT_USER_ID_MAX || bad) {
		res->user_id[0] = 0;
		return;
	}
	res->user_id[n] = 0;
	res->user_id_len = n;
}

/* Consumes buf[w->p .. stop), the bytes between two tokens: whitespace and
 * the separators and closing brackets the grammar allows there. Returns 0,
 * or -1 on anything else. */
static int walk_gap(struct walk *w, size_t stop)
{
	int obj;

	for (; w->p < stop; w->p++) {
		switch (w->buf[w->p]) {
		case ' ': case '\t': case '\n': case '\r':
			break;
		case ':':
			if (w->st != WS_COLON)
				return -1;
			w->st = WS_VALUE;
			break;
		case ',':
			if (w->st != WS_AFTER)
				return -1;
			w->st = walk_in_obj(w) ? WS_KEY : WS_VALUE;
			break;
		case '}':
		case ']':
			obj = w->buf[w->p] == '}';
			if (w->depth == 0 || walk_in_obj(w) != obj)
				return -1;
			if (w->st != WS_AFTER && w->st != (obj ? WS_OBJ_FIRST : WS_ARR_FIRST))
				return -1;
			if (w->depth == 2 && w->in_meta)
				walk_meta_done(w);
			w->depth--;
			walk_value_done(w);
			break;
		default:
			return -1;
		}
	}
	return 0;
}

/* A root key: kept for the duplicate check, and recognised. The last of
 * duplicated keys wins, as it would upstream, hence the reset. */
static int walk_key(struct walk *w, const jsmntok_t *t)
{
	struct inspect_result *res = w->res;
	struct inspect_key *k;
	const char *name;
	char tmp[8];
	size_t n;

	/* Every root key but the last is followed by a value token, and the
	 * root is a token too: a walk of ntoks tokens meets at most
	 * ntoks / 2 + 1 root keys. */
	if (w->nkeys >= w->kmax)
		return -1;
	k = &scr.keys[w->nkeys++];
	k->p = w->buf + t->start;
	k->len = (size_t)(t->end - t->start);
	k->esc = memchr(k->p, '\\', k->len) != NULL;

	n = key_name(w->buf, t, k->esc, tmp, &name);
	w->key = RK_OTHER;
	if (n == 5 && memcmp(name, "model", 5) == 0) {
		w->key = RK_MODEL;
		res->model_state = INSPECT_KEY_ABSENT;
		res->model[0] = 0;
		res->model_len = 0;
		res->model_off = 0;
		res->model_tok_len = 0;
		res->model_too_long = 0;
	} else if (n == 6 && memcmp(name, "stream", 6) == 0) {
		w->key = RK_STREAM;
		res->stream_state = INSPECT_KEY_ABSENT;
		res->stream = 0;
	} else if (n == 8 && memcmp(name, "metadata", 8) == 0) {
		w->key = RK_METADATA;
		res->user_id[0] = 0;
		res->user_id_len = 0;
	}
	return 0;
}

/* The value of a root key; primitives were checked already. A container
 * value may be unfinished, but its type is known. */
static void walk_root_value(struct walk *w, const jsmntok_t *t)
{
	struct inspect_result *res = w->res;
	const char *p = w->buf + t->start;
	size_t n;
	int bad;

	switch (w->key) {
	case RK_MODEL:
		if (t->type != JSMN_STRING) {
			res->model_state = INSPECT_KEY_WRONG_TYPE;
			break;
		}
		n = json_unescape(p, (size_t)(t->end - t->start), res->model,
		                  INSPECT_MODEL_MAX, &bad);
		if (n > INSPECT_MODEL_MAX || bad) {
			res->model_state = INSPECT_KEY_WRONG_TYPE;
			res->model_too_long = n > INSPECT_MODEL_MAX;
			res->model[0] = 0;
			break;
		}
		res->model_state = INSPECT_KEY_PRESENT;
		res->model[n] = 0;
		res->model_len = n;
		res->model_off = (size_t)t->start - 1;
		res->model_tok_len = (size_t)(t->end - t->start) + 2;
		break;
	case RK_STREAM:
		if (t->type == JSMN_PRIMITIVE && (*p == 't' || *p == 'f')) {
			res->stream_state = INSPECT_KEY_PRESENT;
			res->stream = *p == 't';
		} else {
			res->stream_state = INSPECT_KEY_WRONG_TYPE;
		}
		break;
	default:
		break;
	}
}

/* A key of the root's "metadata" object. */
static void walk_meta_key(struct walk *w, const jsmntok_t *t)
{
	const char *name;
	char tmp[8];
	size_t n;
	int esc = memchr(w->buf + t->start, '\\', (size_t)(t->end - t->start)) != NULL;

	n = key_name(w->buf, t, esc, tmp, &name);
	w->meta_uid = n == 7 && memcmp(name, "user_id", 7) == 0;
}

/* A value right inside the root's "metadata": the last user_id wins, as it
 * would upstream; one of another type cancels an earlier one. */
static inline void walk_meta_value(struct walk *w, const jsmntok_t *t)
{
	if (w->meta_uid)
		w->uid = t->type == JSMN_STRING ? t : NULL;
}

/* Consumes one token, with the gap before it. Returns 0 or -1 (malformed). */
static int walk_tok(struct walk *w, const jsmntok_t *t)
{
	/* A string token starts after its opening quote. */
	size_t b = (size_t)t->start - (t->type == JSMN_STRING);
	int meta;

	if (t->start < 0 || b < w->p || walk_gap(w, b) < 0)
		return -1;
	/* Values at depth 2 inside "metadata" are its own (keys come only in
	 * WS_OBJ_FIRST or WS_KEY, checked below). */
	if (w->in_meta && w->depth == 2 && walk_wants_value(w))
		walk_meta_value(w, t);

	switch (t->type) {
	case JSMN_STRING:
		if (has_ctl(w->buf + t->start, (size_t)(t->end - t->start)))
			return -1;
		if (walk_wants_key(w)) {
			if (w->depth == 1 && walk_key(w, t) < 0)
				return -1;
			if (w->depth == 2 && w->in_meta)
				walk_meta_key(w, t);
			w->st = WS_COLON;
		} else if (walk_wants_value(w)) {
			if (walk_at_root(w))
				walk_root_value(w, t);
			walk_value_done(w);
		} else {
			return -1;
		}
		w->p = (size_t)t->end + 1;
		return 0;

	case JSMN_PRIMITIVE:
		if (!walk_wants_value(w) ||
		    prim_check(w->buf + t->start, (size_t)(t->end - t->start)) != 1)
			return -1;
		if (walk_at_root(w))
			walk_root_value(w, t);
		walk_value_done(w);
		w->p = (size_t)t->end;
		return 0;

	case JSMN_OBJECT:
	case JSMN_ARRAY:
		/* Cannot happen, see scr.stack. */
		if (!walk_wants_value(w) || w->depth >= sizeof(scr.stack) * 8)
			return -1;
		meta = 0;
		if (walk_at_root(w)) {
			walk_root_value(w, t);
			meta = w->key == RK_METADATA && t->type == JSMN_OBJECT;
		}
		walk_push(w, t->type == JSMN_OBJECT);
		if (meta) {
			w->in_meta = 1;
			w->meta_uid = 0;
			w->uid = NULL;
		}
		w->st = t->type == JSMN_OBJECT ? WS_OBJ_FIRST : WS_ARR_FIRST;
		w->p = (size_t)t->start + 1;
		return 0;

	default:
		return -1;
	}
}

static int key_cmp(const void *a, const void *b)
{
	const struct inspect_key *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->p, y->p, n);

	if (c)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

/* Whether two of the n root keys in scr.keys are equal once decoded: sorted,
 * so equal keys end up next to each other. Returns 1, 0, or -1 out of
 * memory. Reorders scr.keys. */
static int keys_dup(size_t n)
{
	struct inspect_key *k;
	size_t i, need = 0, o = 0;
	char *kbuf;
	int bad;

	if (n < 2)
		return 0;
	for (i = 0; i < n; i++)
		if (scr.keys[i].esc)
			need += scr.keys[i].len;
	if (need > scr.kbuf_size) {
		kbuf = realloc(scr.kbuf, need);
		if (!kbuf)
			return -1;
		scr.kbuf = kbuf;
		scr.kbuf_size = need;
	}
	for (i = 0; i < n; i++) {
		k = &scr.keys[i];
		if (!k->esc)
			continue;
		/* Decoding never lengthens a string: it fits in its raw size. */
		k->len = json_unescape(k->p, k->len, scr.kbuf + o, need - o, &bad);
		k->p = scr.kbuf + o;
		o += k->len;
	}
	qsort(scr.keys, n, sizeof(*scr.keys), key_cmp);
	for (i = 1; i < n; i++)
		if (key_cmp(&scr.keys[i - 1], &scr.keys[i]) == 0)
			return 1;
	return 0;
}

static void result_forget(struct inspect_result *res)
{
	res->model_state = INSPECT_KEY_ABSENT;
	res->model[0] = 0;
	res->model_len = 0;
	res->model_off = 0;
	res->model_tok_len = 0;
	res->model_too_long = 0;
	res->stream_state = INSPECT_KEY_ABSENT;
	res->stream = 0;
	res->user_id[0] = 0;
	res->user_id_len = 0;
}

/* ------------------------------------------------------------------------ */
/* API                                                                      */
/* ------------------------------------------------------------------------ */

/* Besides what the header says: when the token budget runs out (or the
 * nesting goes past INSPECT_MAX_DEPTH), the prefix is inspected as if it
 * ended after the last token read, so `complete` is 0 then, and a complete
 * body gets INSPECT_TOO_COMPLEX (it could not be validated) with model and
 * stream filled from the part that was read.
 * Results are cleared for every status but OK, DUPLICATE_KEY (where the
 * last occurrence of a key is reported) and TOO_COMPLEX. */
enum inspect_status inspect_body(const char *buf, size_t len, size_t body_len,
                                 struct inspect_result *res)
{
	jsmn_parser parser;
	struct walk w;
	size_t i, stop;
	int whole, capped = 0, dup, r;
	unsigned int t, lim;

	memset(res, 0, sizeof(*res));
	if (len > body_len)
		len = body_len;
	if (body_len == 0)
		return res->status = INSPECT_EMPTY;
	whole = len == body_len;
	if (len > INSPECT_LEN_MAX) {
		len = INSPECT_LEN_MAX;
		capped = 1;
	}

	for (i = 0; i < len; i++)
		if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r')
			break;
	if (i == len) /* nothing yet, or a blank body */
		return res->status = whole ? INSPECT_INVALID : INSPECT_OK;
	if (buf[i] != '{' && !whole)
		return res->status = INSPECT_NOT_OBJECT;

	if (!scr.ntoks && scratch_grow() < 0)
		return res->status = whole ? INSPECT_TOO_COMPLEX : INSPECT_OK;
	jsmn_init(&parser);
	for (;;) {
		/* A few tokens at a time, to watch the depth. After NOMEM jsmn
		 * resumes where it stopped: nothing is read twice. */
		lim = parser.toknext + INSPECT_DEPTH_STEP;
		if (lim > scr.ntoks)
			lim = scr.ntoks;
		r = jsmn_parse(&parser, buf, len, scr.toks, lim);
		if (r != JSMN_ERROR_NOMEM)
			break;
		if (parse_depth(&parser) > INSPECT_MAX_DEPTH ||
		    (parser.toknext == scr.ntoks && scratch_grow() < 0)) {
			capped = 1;
			break;
		}
	}
	if (r == JSMN_ERROR_INVAL)
		goto invalid;
	/* A prefix that ends too deep is cut there too, as it would be had
	 * it held one more token: a longer prefix then never looks better. */
	if (!whole && !capped && parse_depth(&parser) > INSPECT_MAX_DEPTH)
		capped = 1;

	/* parser.pos is where jsmn stopped: the end, a NUL, the start of a
	 * string or primitive the end cut off, or the item that did not fit. */
	stop = parser.pos;
	w.buf = buf;
	w.p = 0;
	w.st = WS_VALUE;
	w.depth = 0;
	w.key = RK_OTHER;
	w.nkeys = 0;
	w.kmax = scr.ntoks / 2 + 1;
	w.in_meta = 0;
	w.meta_uid = 0;
	w.uid = NULL;
	w.res = res;
	for (t = 0; t < parser.toknext; t++)
		if (walk_tok(&w, &scr.toks[t]) < 0)
			goto invalid;
	if (walk_gap(&w, stop) < 0)
		goto invalid;

	if (stop < len && !capped) {
		if (whole) {
			/* Only a root number or literal with nothing after it:
			 * strict jsmn waits for a delimiter that never comes. */
			if (w.depth || w.st != WS_VALUE || prim_check(buf + stop, len - stop) != 1)
				goto invalid;
			w.st = WS_DONE;
		} else if (buf[stop] == '"') {
			/* Cut off: a key or a value, but no control char in it. */
			if ((!walk_wants_key(&w) && !walk_wants_value(&w)) ||
			    has_ctl(buf + stop + 1, len - stop - 1))
				goto invalid;
		} else {
			/* Cut off primitive; a NUL lands here too, and fails. */
			if (!walk_wants_value(&w) || prim_check(buf + stop, len - stop) < 0)
				goto invalid;
		}
	}
	if (whole && !capped && w.st != WS_DONE)
		goto invalid;

	res->complete = whole && !capped;
	dup = keys_dup(w.nkeys);
	if (buf[i] != '{')
		res->status = INSPECT_NOT_OBJECT;   /* valid as far as it was read */
	else if (dup > 0)
		res->status = INSPECT_DUPLICATE_KEY;
	else if (dup < 0 || (whole && capped))
		res->status = INSPECT_TOO_COMPLEX;
	else
		res->status = INSPECT_OK;
	return res->status;

invalid:
	result_forget(res);
	res->complete = 0;
	return res->status = INSPECT_INVALID;
}

const char *inspect_status_str(enum inspect_status st)
{
	switch (st) {
	case INSPECT_OK:            return "ok";
	case INSPECT_EMPTY:         return "empty";
	case INSPECT_NOT_OBJECT:    return "not_object";
	case INSPECT_INVALID:       return "invalid";
	case INSPECT_DUPLICATE_KEY: return "duplicate_key";
	case INSPECT_TOO_COMPLEX:   return "too_complex";
	}
	return "unknown";
}
