/*
 * JSON: the strict push scanner and its helpers (contract in realms/json.h).
 * Pure: no I/O; the heap is touched only for nesting deeper than
 * JSON_STACK_INLINE bytes of bits and for key sets.
 *
 * The scanner is a byte-level state machine, so that a document may be
 * split anywhere. Across feeds it keeps the grammar state, one bit per open
 * container (to match '}' and ']'), and the few bytes of state of the
 * token being read (an escape, a \u code unit, a UTF-8 sequence, how far
 * into a number or literal). Nothing depends on the depth but that bit
 * stack, so any nesting costs linear time.
 *
 * String interiors, nearly all the bytes of a Claude Code body or answer,
 * are skipped eight bytes at a time up to the next quote, backslash or
 * control byte; everything else is one switch per byte in one loop, with
 * no function call per byte.
 */
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <realms/json.h>

/* State inside a string (json_scanner.sub). */
enum {
	STR_PLAIN = 0,      /* plain bytes */
	STR_ESC,            /* after a backslash */
	STR_HEX,            /* in the four hex digits of \u */
	STR_LO_BS,          /* after a high surrogate: its low half's '\' */
	STR_LO_U,           /* and its 'u' */
	STR_UTF8,           /* in a multi-byte UTF-8 sequence */
};

/* State inside a number (json_scanner.sub), after the bytes read so far. */
enum {
	NUM_MINUS = 1,      /* '-' */
	NUM_ZERO,           /* a leading 0 */
	NUM_INT,            /* integer digits */
	NUM_DOT,            /* '.' */
	NUM_FRAC,           /* fraction digits */
	NUM_E,              /* 'e' or 'E' */
	NUM_ESIGN,          /* the exponent's sign */
	NUM_EXP,            /* exponent digits */
};

static const struct {
	const char *s;
	unsigned char len;
	enum json_type type;
} lits[] = {
	{ "true",  4, JSON_T_TRUE },
	{ "false", 5, JSON_T_FALSE },
	{ "null",  4, JSON_T_NULL },
};

/* ------------------------------------------------------------------------ */
/* bytes                                                                    */
/* ------------------------------------------------------------------------ */

static inline int is_ws(unsigned char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static inline int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static inline int is_alpha(unsigned char c)
{
	return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

/* A value cannot start with it, and it glued to a number or literal makes
 * a malformed one ("01x", "truex") rather than two tokens. */
static inline int is_word(unsigned char c)
{
	return is_digit(c) || is_alpha(c) || c == '.' || c == '_';
}

static inline int hexval(unsigned char c)
{
	if (is_digit(c))
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The first byte at or after p, before end, that ends a run of plain string
 * bytes: '"', '\\', a byte below 0x20, or (ascii_only) one of 0x80 and up.
 * Sixteen bytes at a time with SSE2 (every x86-64 has it): a byte stops the
 * run if it equals '"' or '\\', or if, taken as signed, it is below 0x20
 * (which takes in 0x80 and up, stopped at only with ascii_only). Elsewhere,
 * eight bytes at a time: for each test, the expression has a high bit set
 * somewhere iff some byte passes it (borrows only spill above a byte that
 * passed), then the word is searched byte by byte. */
static inline const char *str_run(const char *p, const char *end, int ascii_only)
{
	unsigned char c;
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
	const __m128i ctl = _mm_set1_epi8(0x20), neg = _mm_set1_epi8(-1);

	while (end - p >= 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i stop = _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash));
		unsigned int m;

		/* signed, below 0x20 is 0x00-0x1f and 0x80-0xff; above -1,
		 * 0x00-0x7f */
		__m128i low = _mm_cmplt_epi8(x, ctl);

		if (!ascii_only)
			low = _mm_and_si128(low, _mm_cmpgt_epi8(x, neg));
		stop = _mm_or_si128(stop, low);
		m = (unsigned int)_mm_movemask_epi8(stop);
		if (m)
			return p + __builtin_ctz(m);
		p += 16;
	}
#else
	const uint64_t ones = 0x0101010101010101ULL;
	const uint64_t high = 0x8080808080808080ULL;
	uint64_t x, q, b, t;

	while (end - p >= 8) {
		memcpy(&x, p, 8);
		q = x ^ (ones * '"');
		b = x ^ (ones * '\\');
		t = ((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x);
		if (ascii_only)
			t |= x;
		if (t & high)
			break;
		p += 8;
	}
#endif
	for (; p < end; p++) {
		c = (unsigned char)*p;
		if (c == '"' || c == '\\' || c < 0x20 || (ascii_only && c >= 0x80))
			break;
	}
	return p;
}

/* The number state after byte c, or 0 if c does not continue the number. */
static inline unsigned char num_next(unsigned char st, unsigned char c)
{
	int dig = is_digit(c), e = (c | 0x20) == 'e';

	switch (st) {
	case NUM_MINUS: return c == '0' ? NUM_ZERO : dig ? NUM_INT : 0;
	case NUM_ZERO:  return c == '.' ? NUM_DOT : e ? NUM_E : 0;
	case NUM_INT:   return dig ? NUM_INT : c == '.' ? NUM_DOT : e ? NUM_E : 0;
	case NUM_DOT:   return dig ? NUM_FRAC : 0;
	case NUM_FRAC:  return dig ? NUM_FRAC : e ? NUM_E : 0;
	case NUM_E:     return c == '+' || c == '-' ? NUM_ESIGN : dig ? NUM_EXP : 0;
	default:        return dig ? NUM_EXP : 0;   /* NUM_ESIGN, NUM_EXP */
	}
}

/* Whether a number may end in this state. */
static inline int num_whole(unsigned char st)
{
	return st == NUM_ZERO || st == NUM_INT || st == NUM_FRAC || st == NUM_EXP;
}

/* The type of the value whose first byte is c, or JSON_T_NONE. */
static inline enum json_type value_type(unsigned char c)
{
	switch (c) {
	case '{': return JSON_T_OBJECT;
	case '[': return JSON_T_ARRAY;
	case '"': return JSON_T_STRING;
	case 't': return JSON_T_TRUE;
	case 'f': return JSON_T_FALSE;
	case 'n': return JSON_T_NULL;
	case '-': return JSON_T_NUMBER;
	default:  return is_digit(c) ? JSON_T_NUMBER : JSON_T_NONE;
	}
}

/* ------------------------------------------------------------------------ */
/* the nesting stack                                                        */
/* ------------------------------------------------------------------------ */

static inline unsigned char *stack_bits(struct json_scanner *s)
{
	return s->heap ? s->heap : s->bits;
}

static inline int in_object(struct json_scanner *s)
{
	size_t d = s->depth - 1;

	return stack_bits(s)[d >> 3] >> (d & 7) & 1;
}

/* Opens a container. Returns 0, or -1 when the stack cannot grow. The stack
 * doubles, so it never holds more than a byte per 4 bytes fed. */
static int push(struct json_scanner *s, int obj)
{
	size_t d = s->depth, size = s->heap ? s->heap_size : sizeof(s->bits);
	unsigned char *bits;

	if (d >> 3 >= size) {
		bits = realloc(s->heap, size * 2);
		if (!bits)
			return -1;
		if (!s->heap)
			memcpy(bits, s->bits, sizeof(s->bits));
		s->heap = bits;
		s->heap_size = size * 2;
	}
	bits = stack_bits(s);
	if (obj)
		bits[d >> 3] |= 1u << (d & 7);
	else
		bits[d >> 3] &= ~(1u << (d & 7));
	s->depth = d + 1;
	if (s->depth > s->depth_max)
		s->depth_max = s->depth;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* the scanner                                                              */
/* ------------------------------------------------------------------------ */

void json_scan_init(struct json_scanner *s, unsigned int flags)
{
	memset(s, 0, sizeof(*s));
	s->flags = flags;
	s->st = JSON_ST_VALUE;
}

void json_scan_release(struct json_scanner *s)
{
	free(s->heap);
	s->heap = NULL;
	s->heap_size = 0;
}

/* A value just ended at `at`, in the container now open (depth 0: it was
 * the root). Returns the event it makes, if any. */
static inline int value_end(struct json_scanner *s, uint64_t at, struct json_ev *ev)
{
	if (s->depth > 1) {
		s->st = JSON_ST_AFTER;
		return JSON_EV_NONE;
	}
	ev->end = at;
	ev->key = 0;
	if (s->depth == 1) {
		s->st = JSON_ST_AFTER;
		ev->type = s->mem_type;
		ev->start = s->mem_start;
		ev->esc = s->mem_type == JSON_T_STRING && s->tok_esc;
		return JSON_EV_VALUE;
	}
	s->st = JSON_ST_DONE;
	ev->type = s->root_type;
	ev->start = s->root_start;
	ev->esc = s->root_type == JSON_T_STRING && s->tok_esc;
	return JSON_EV_END;
}

/* A token of the root container (depth 1: BEGIN) or the root value itself
 * (depth 0: ROOT) starts at `at`. It is reported before its first byte is
 * consumed; `begun` keeps the next call from reporting it again. */
static inline int token_begins(struct json_scanner *s, enum json_type t, int key,
                               uint64_t at, struct json_ev *ev)
{
	s->begun = 1;
	ev->type = t;
	ev->start = at;
	ev->end = at;
	ev->esc = 0;
	ev->key = key;
	if (s->depth) {
		s->mem_start = at;
		s->mem_type = t;
		return JSON_EV_BEGIN;
	}
	s->root_start = at;
	s->root_type = t;
	return JSON_EV_ROOT;
}

/* A string closed at `at` (right past its quote). */
static inline int string_end(struct json_scanner *s, uint64_t at, struct json_ev *ev)
{
	if (!s->tok_key)
		return value_end(s, at, ev);
	s->st = JSON_ST_COLON;
	if (s->depth != 1)
		return JSON_EV_NONE;
	ev->type = JSON_T_STRING;
	ev->start = s->mem_start;
	ev->end = at;
	ev->esc = s->tok_esc;
	ev->key = 1;
	return JSON_EV_KEY;
}

/* The first byte of a multi-byte UTF-8 sequence: sets what must follow.
 * Returns 0, or -1 for a byte that starts no valid sequence (a stray
 * continuation, an overlong C0/C1 lead, or past U+10FFFF). */
static inline int utf8_lead(struct json_scanner *s, unsigned char c)
{
	s->u8_lo = 0x80;
	s->u8_hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf) {
		s->u8_need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		s->u8_need = 2;
		if (c == 0xe0)
			s->u8_lo = 0xa0;    /* overlong below U+0800 */
		else if (c == 0xed)
			s->u8_hi = 0x9f;    /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		s->u8_need = 3;
		if (c == 0xf0)
			s->u8_lo = 0x90;    /* overlong below U+10000 */
		else if (c == 0xf4)
			s->u8_hi = 0x8f;    /* past U+10FFFF */
	} else {
		return -1;
	}
	return 0;
}

/* A hex digit of a \u escape was read into s->cp. Returns 0 or a
 * JSON_ERR_*. Surrogates are only checked with JSON_FL_UNICODE (the grammar
 * alone allows lone ones), and as early as the second digit decides: DC-DF
 * is a low half, needed after a high one and wrong anywhere else. */
static inline enum json_err uescape_digit(struct json_scanner *s)
{
	int unicode = s->flags & JSON_FL_UNICODE;

	if (unicode && s->hex_n == 2 && s->surr != (s->cp >= 0xdc && s->cp <= 0xdf))
		return JSON_ERR_SURROGATE;
	if (s->hex_n < 4)
		return JSON_ERR_NONE;
	s->sub = STR_PLAIN;
	if (!unicode)
		return JSON_ERR_NONE;
	if (s->surr)
		s->surr = 0;
	else if (s->cp >= 0xd800 && s->cp <= 0xdbff)
		s->sub = STR_LO_BS;
	return JSON_ERR_NONE;
}

/* Starts the value whose first byte, of type t, is at `at`. Returns 0, or
 * -1 when a container's stack cannot grow. */
static inline int value_begin(struct json_scanner *s, enum json_type t, unsigned char c,
                              uint64_t at)
{
	s->tok_start = at;
	switch (t) {
	case JSON_T_OBJECT:
	case JSON_T_ARRAY:
		if (push(s, t == JSON_T_OBJECT) < 0)
			return -1;
		s->st = t == JSON_T_OBJECT ? JSON_ST_OBJ_FIRST : JSON_ST_ARR_FIRST;
		break;
	case JSON_T_STRING:
		s->st = JSON_ST_STRING;
		s->sub = STR_PLAIN;
		s->tok_key = 0;
		s->tok_esc = 0;
		break;
	case JSON_T_NUMBER:
		s->st = JSON_ST_NUMBER;
		s->sub = c == '-' ? NUM_MINUS : c == '0' ? NUM_ZERO : NUM_INT;
		break;
	default:
		s->st = JSON_ST_LITERAL;
		s->lit = t == JSON_T_TRUE ? 0 : t == JSON_T_FALSE ? 1 : 2;
		s->sub = 1;
		break;
	}
	return 0;
}

int json_scan(struct json_scanner *s, const char **pp, const char *end, struct json_ev *ev)
{
	const char *const p0 = *pp;
	const char *p = p0;
	enum json_err err = JSON_ERR_NONE;
	enum json_type t;
	unsigned char c, n;
	int r = JSON_EV_NONE, h, obj;

	if (s->st == JSON_ST_ERROR)
		return -1;

	while (p < end) {
		c = (unsigned char)*p;
		switch (s->st) {
		case JSON_ST_STRING:
			switch (s->sub) {
			case STR_PLAIN:
				p = str_run(p, end, s->flags & JSON_FL_UNICODE);
				if (p == end)
					break;
				c = (unsigned char)*p;
				if (c == '"') {
					p++;
					r = string_end(s, s->off + (uint64_t)(p - p0), ev);
					if (r)
						goto out;
				} else if (c == '\\') {
					s->tok_esc = 1;
					s->sub = STR_ESC;
					p++;
				} else if (c < 0x20) {
					err = JSON_ERR_CTL;
					goto fail;
				} else {
					/* 0x80 and up, only stopped at with
					 * JSON_FL_UNICODE */
					if (utf8_lead(s, c) < 0) {
						err = JSON_ERR_UTF8;
						goto fail;
					}
					s->sub = STR_UTF8;
					p++;
				}
				break;
			case STR_UTF8:
				if (c < s->u8_lo || c > s->u8_hi) {
					err = JSON_ERR_UTF8;
					goto fail;
				}
				s->u8_lo = 0x80;
				s->u8_hi = 0xbf;
				if (--s->u8_need == 0)
					s->sub = STR_PLAIN;
				p++;
				break;
			case STR_ESC:
				if (c == 'u') {
					s->sub = STR_HEX;
					s->hex_n = 0;
					s->cp = 0;
				} else if (c && strchr("\"\\/bfnrt", c)) {
					s->sub = STR_PLAIN;
				} else {
					err = JSON_ERR_ESCAPE;
					goto fail;
				}
				p++;
				break;
			case STR_HEX:
				if ((h = hexval(c)) < 0) {
					err = JSON_ERR_UESCAPE;
					goto fail;
				}
				s->cp = s->cp << 4 | (unsigned int)h;
				s->hex_n++;
				if ((err = uescape_digit(s)) != JSON_ERR_NONE)
					goto fail;
				p++;
				break;
			case STR_LO_BS:
			case STR_LO_U:
				if (c != (s->sub == STR_LO_BS ? '\\' : 'u')) {
					err = JSON_ERR_SURROGATE;
					goto fail;
				}
				if (s->sub == STR_LO_U) {
					s->sub = STR_HEX;
					s->hex_n = 0;
					s->cp = 0;
					s->surr = 1;
				} else {
					s->sub = STR_LO_U;
				}
				p++;
				break;
			}
			break;

		case JSON_ST_NUMBER:
			while ((n = num_next(s->sub, c)) != 0) {
				s->sub = n;
				if (++p == end)
					goto out;
				c = (unsigned char)*p;
			}
			err = JSON_ERR_NUMBER;
			if (!num_whole(s->sub))
				goto fail;
			goto scalar_end;

		case JSON_ST_LITERAL:
			err = JSON_ERR_LITERAL;
			if (s->sub < lits[s->lit].len) {
				if (c != (unsigned char)lits[s->lit].s[s->sub])
					goto fail;
				s->sub++;
				p++;
				break;
			}
		scalar_end:
			/* c, not consumed, is the first byte after the number
			 * or literal; glued to it, a word byte makes it
			 * malformed ("01x", "truex") rather than two tokens. */
			if (is_word(c))
				goto fail;
			err = JSON_ERR_NONE;
			r = value_end(s, s->off + (uint64_t)(p - p0), ev);
			if (r)
				goto out;
			break;

		case JSON_ST_ERROR:
			return -1;

		default:
			if (is_ws(c)) {
				while (++p < end && is_ws((unsigned char)*p))
					;
				break;
			}
			switch (s->st) {
			case JSON_ST_VALUE:
			case JSON_ST_ARR_FIRST:
			case JSON_ST_ARR_NEXT:
				if (c == ']' && s->st != JSON_ST_VALUE) {
					if (s->st == JSON_ST_ARR_NEXT) {
						err = JSON_ERR_TRAILING;
						goto fail;
					}
					goto close;
				}
				t = value_type(c);
				if (t == JSON_T_NONE) {
					/* A bare word: an unquoted string or a
					 * misspelt literal. */
					err = is_alpha(c) ? JSON_ERR_LITERAL : JSON_ERR_VALUE;
					goto fail;
				}
				if (s->depth <= 1 && !s->begun) {
					r = token_begins(s, t, 0, s->off + (uint64_t)(p - p0), ev);
					goto out;
				}
				s->begun = 0;
				if (value_begin(s, t, c, s->off + (uint64_t)(p - p0)) < 0) {
					err = JSON_ERR_NOMEM;
					goto fail;
				}
				p++;
				break;

			case JSON_ST_OBJ_FIRST:
			case JSON_ST_KEY:
				if (c == '}') {
					if (s->st == JSON_ST_KEY) {
						err = JSON_ERR_TRAILING;
						goto fail;
					}
					goto close;
				}
				if (c != '"') {
					err = JSON_ERR_KEY;
					goto fail;
				}
				if (s->depth == 1 && !s->begun) {
					r = token_begins(s, JSON_T_STRING, 1,
					                 s->off + (uint64_t)(p - p0), ev);
					goto out;
				}
				s->begun = 0;
				s->tok_start = s->off + (uint64_t)(p - p0);
				s->st = JSON_ST_STRING;
				s->sub = STR_PLAIN;
				s->tok_key = 1;
				s->tok_esc = 0;
				p++;
				break;

			case JSON_ST_COLON:
				if (c != ':') {
					err = JSON_ERR_COLON;
					goto fail;
				}
				s->st = JSON_ST_VALUE;
				p++;
				break;

			case JSON_ST_AFTER:
				obj = in_object(s);
				if (c == ',') {
					s->st = obj ? JSON_ST_KEY : JSON_ST_ARR_NEXT;
					p++;
					break;
				}
				if (c != (obj ? '}' : ']')) {
					err = obj ? JSON_ERR_OBJ_NEXT : JSON_ERR_ARR_NEXT;
					goto fail;
				}
				goto close;

			default:   /* JSON_ST_DONE */
				err = JSON_ERR_AFTER;
				goto fail;
			}
			break;

		close:
			/* The bracket at p closes the innermost container,
			 * checked to be of its kind. */
			p++;
			s->depth--;
			r = value_end(s, s->off + (uint64_t)(p - p0), ev);
			if (r)
				goto out;
			break;
		}
	}
out:
	s->off += (uint64_t)(p - p0);
	*pp = p;
	return r;

fail:
	s->err = err;
	s->err_off = s->off + (uint64_t)(p - p0);
	s->st = JSON_ST_ERROR;
	s->off = s->err_off;
	*pp = p;
	return -1;
}

enum json_status json_scan_status(const struct json_scanner *s)
{
	switch (s->st) {
	case JSON_ST_ERROR:
		return JSON_INVALID;
	case JSON_ST_DONE:
		return JSON_COMPLETE;
	case JSON_ST_NUMBER:
		return s->depth == 0 && num_whole(s->sub) ? JSON_COMPLETE : JSON_TRUNCATED;
	case JSON_ST_LITERAL:
		return s->depth == 0 && s->sub == lits[s->lit].len ? JSON_COMPLETE
		                                                   : JSON_TRUNCATED;
	default:
		return JSON_TRUNCATED;
	}
}

enum json_cut json_scan_cut(const struct json_scanner *s, uint64_t *start)
{
	if (json_scan_status(s) != JSON_TRUNCATED)
		return JSON_CUT_NONE;
	switch (s->st) {
	case JSON_ST_STRING:
		*start = s->tok_start;
		return JSON_CUT_STRING;
	case JSON_ST_NUMBER:
	case JSON_ST_LITERAL:
		*start = s->tok_start;
		return JSON_CUT_SCALAR;
	case JSON_ST_VALUE:
	case JSON_ST_ARR_NEXT:
		return JSON_CUT_VALUE;
	default:
		return JSON_CUT_CONTAINER;
	}
}

const char *json_err_str(enum json_err err)
{
	switch (err) {
	case JSON_ERR_NONE:      return "no error";
	case JSON_ERR_VALUE:     return "unexpected character";
	case JSON_ERR_KEY:       return "expected a key in double quotes";
	case JSON_ERR_COLON:     return "expected ':' after the key";
	case JSON_ERR_OBJ_NEXT:  return "expected ',' or '}'";
	case JSON_ERR_ARR_NEXT:  return "expected ',' or ']'";
	case JSON_ERR_TRAILING:  return "trailing comma";
	case JSON_ERR_NUMBER:    return "invalid number";
	case JSON_ERR_LITERAL:   return "invalid literal (strings need double quotes; "
	                                "literals are true, false and null)";
	case JSON_ERR_CTL:       return "control character in a string (write it as an escape)";
	case JSON_ERR_ESCAPE:    return "invalid escape sequence in a string";
	case JSON_ERR_UESCAPE:   return "invalid \\u escape in a string";
	case JSON_ERR_SURROGATE: return "unpaired UTF-16 surrogate in a \\u escape";
	case JSON_ERR_UTF8:      return "invalid UTF-8 in a string";
	case JSON_ERR_AFTER:     return "unexpected data after the end of the JSON value";
	case JSON_ERR_NOMEM:     return "out of memory";
	}
	return "unknown error";
}

/* ------------------------------------------------------------------------ */
/* whole documents                                                          */
/* ------------------------------------------------------------------------ */

enum json_type json_valid(const char *buf, size_t len)
{
	const char *p = buf, *end = buf + len;
	struct json_scanner s;
	struct json_ev ev;
	enum json_type t = JSON_T_NONE;
	int r;

	json_scan_init(&s, 0);
	while ((r = json_scan(&s, &p, end, &ev)) > 0)
		if (r == JSON_EV_ROOT)
			t = ev.type;
	if (r < 0 || json_scan_status(&s) != JSON_COMPLETE)
		t = JSON_T_NONE;
	json_scan_release(&s);
	return t;
}

int json_each(const char *buf, size_t len, json_member_fn fn, void *arg)
{
	const char *p = buf, *end = buf + len;
	struct json_member m;
	struct json_scanner s;
	struct json_ev ev;
	int r, type = -1;

	json_scan_init(&s, 0);
	memset(&m, 0, sizeof(m));
	while ((r = json_scan(&s, &p, end, &ev)) > 0) {
		switch (r) {
		case JSON_EV_ROOT:
			if (ev.type != JSON_T_OBJECT && ev.type != JSON_T_ARRAY)
				goto out;
			type = ev.type;
			break;
		case JSON_EV_KEY:
			m.key = buf + ev.start;
			m.key_len = (size_t)(ev.end - ev.start);
			m.key_esc = ev.esc;
			break;
		case JSON_EV_VALUE:
			m.type = ev.type;
			m.val = buf + ev.start;
			m.val_len = (size_t)(ev.end - ev.start);
			m.val_esc = ev.esc;
			fn(arg, &m);
			break;
		default:
			break;
		}
	}
out:
	if (r != 0 || json_scan_status(&s) != JSON_COMPLETE)
		type = -1;
	json_scan_release(&s);
	return type;
}

/* ------------------------------------------------------------------------ */
/* strings and numbers                                                      */
/* ------------------------------------------------------------------------ */

/* Four hex digits, or -1. */
static long hex4(const char *p)
{
	long v = 0;
	int i, h;

	for (i = 0; i < 4; i++) {
		if ((h = hexval((unsigned char)p[i])) < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* Whether p[0..n) holds a byte below 0x20, eight bytes at a time (see
 * str_run()). */
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

size_t json_unescape(const char *p, size_t n, char *out, size_t size, unsigned int *flags)
{
	const char *bs;
	size_t i = 0, o = 0, run;
	unsigned char u[4];
	long cp, lo;
	int k, nu;

	*flags = 0;
	while (i < n) {
		bs = memchr(p + i, '\\', n - i);
		run = (bs ? (size_t)(bs - p) : n) - i;
		if (has_ctl(p + i, run))
			*flags |= JSON_UNESC_CTL;
		if (o < size)
			memcpy(out + o, p + i, run < size - o ? run : size - o);
		o += run;
		i += run;
		if (!bs)
			break;

		if (n - i < 2) {
			*flags |= JSON_UNESC_BAD;
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
				*flags |= JSON_UNESC_BAD;
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
					*flags |= JSON_UNESC_SURROGATE;
				}
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				*flags |= JSON_UNESC_SURROGATE;
			}
			break;
		default:
			*flags |= JSON_UNESC_BAD;
			return o;
		}

		if (cp < 0x20)
			*flags |= JSON_UNESC_CTL;
		if (cp == 0)
			*flags |= JSON_UNESC_NUL;
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

long json_quote(const char *s, size_t len, char *out, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0, need;
	unsigned char c;
	char esc;

	if (size < 2)
		return -1;
	out[o++] = '"';
	for (i = 0; i < len; i++) {
		c = s[i];
		switch (c) {
		case '"':  esc = '"';  break;
		case '\\': esc = '\\'; break;
		case '\n': esc = 'n';  break;
		case '\r': esc = 'r';  break;
		case '\t': esc = 't';  break;
		case '\b': esc = 'b';  break;
		case '\f': esc = 'f';  break;
		default:   esc = 0;    break;
		}
		need = esc ? 2 : c < 0x20 ? 6 : 1;
		/* keep one byte for the closing quote */
		if (size - o < need + 1)
			return -1;
		if (esc) {
			out[o++] = '\\';
			out[o++] = esc;
		} else if (c < 0x20) {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[c >> 4];
			out[o + 5] = hex[c & 15];
			o += 6;
		} else {
			out[o++] = c;
		}
	}
	out[o++] = '"';
	return (long)o;
}

int json_str_is(const char *tok, size_t len, const char *name)
{
	size_t nl = strlen(name), n;
	unsigned int fl;
	char buf[64];

	if (len < 2)
		return 0;
	tok++;
	len -= 2;
	if (!memchr(tok, '\\', len))
		return len == nl && memcmp(tok, name, nl) == 0;
	/* Decoding never lengthens: a token this short cannot match. */
	if (len < nl || nl >= sizeof(buf))
		return 0;
	n = json_unescape(tok, len, buf, sizeof(buf), &fl);
	return n == nl && memcmp(buf, name, nl) == 0;
}

int json_u64(const char *tok, size_t len, uint64_t *v)
{
	uint64_t x = 0;
	unsigned int d;
	size_t i;

	if (len == 0 || (len > 1 && tok[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (!is_digit((unsigned char)tok[i]))
			return -1;   /* sign, fraction, exponent, literal */
		d = (unsigned int)(tok[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* key sets                                                                 */
/* ------------------------------------------------------------------------ */

void json_keys_init(struct json_keys *k)
{
	memset(k, 0, sizeof(*k));
}

void json_keys_release(struct json_keys *k)
{
	free(k->key);
	free(k->bytes);
	json_keys_init(k);
}

int json_keys_add(struct json_keys *k, const char *tok, size_t len)
{
	size_t n = len >= 2 ? len - 2 : 0, size;
	struct json_key_ref *key;
	unsigned int fl;
	char *bytes;

	/* Room first, so that a failure leaves the set as it was. Decoding
	 * never lengthens, so the raw size is enough. */
	if (n > k->bytes_size - k->bytes_len) {
		size = k->bytes_size ? k->bytes_size : 256;
		while (size - k->bytes_len < n)
			size *= 2;
		bytes = realloc(k->bytes, size);
		if (!bytes)
			return -1;
		k->bytes = bytes;
		k->bytes_size = size;
	}
	if (k->n == k->size) {
		size = k->size ? k->size * 2 : 16;
		key = realloc(k->key, size * sizeof(*key));
		if (!key)
			return -1;
		k->key = key;
		k->size = size;
	}
	key = &k->key[k->n++];
	key->off = k->bytes_len;
	key->len = n ? json_unescape(tok + 1, n, k->bytes + k->bytes_len, n, &fl) : 0;
	key->p = NULL;
	k->bytes_len += key->len;
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	const struct json_key_ref *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = n ? memcmp(x->p, y->p, n) : 0;

	if (c)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

int json_keys_dup(struct json_keys *k)
{
	size_t i;

	if (k->n < 2)
		return 0;
	/* No bytes at all when every key is "". */
	for (i = 0; i < k->n; i++)
		k->key[i].p = k->bytes ? k->bytes + k->key[i].off : "";
	qsort(k->key, k->n, sizeof(*k->key), key_cmp);
	for (i = 1; i < k->n; i++)
		if (key_cmp(&k->key[i - 1], &k->key[i]) == 0)
			return 1;
	return 0;
}
