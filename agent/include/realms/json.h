/*
 * JSON (RFC 8259): a strict push scanner that reports the root container's
 * own members, a set of decoded keys to find one given twice, and the
 * string helpers every user shares (unescape, quote, compare, count). Pure:
 * no I/O; the only allocations are stated at each function.
 */
#ifndef REALMS_JSON_H
#define REALMS_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <realms/json-t.h>

/* ------------------------------------------------------------------------ */
/* the scanner                                                              */
/* ------------------------------------------------------------------------ */

/* Prepares *s (caller-owned) for a new document. `flags` are JSON_FL_*. */
void json_scan_init(struct json_scanner *s, unsigned int flags);

/* Scans the next bytes of the document, [*p, end), split anywhere: feeding
 * one byte at a time gives the same events, offsets and result as feeding
 * all at once. Any nesting depth is accepted, in time linear in the input;
 * memory is one bit per open container (on the heap past
 * JSON_STACK_INLINE bytes of them).
 *
 * Returns at the first event (JSON_EV_*, see json-t.h) with *ev filled, or
 * JSON_EV_NONE (0) once *p reaches end with nothing to report: feed more.
 * The cursor stops exactly at event boundaries: for ROOT and BEGIN, *p
 * points at the token's first byte, not consumed yet; for KEY, VALUE and
 * END, it points right past the token's last byte. So the bytes consumed
 * between a BEGIN and its KEY or VALUE are exactly that token's, which lets
 * a caller keep one member of a document it never holds whole.
 *
 * A number or literal ends at the byte after it: one touching the end of
 * the bytes fed so far is cut off, not a value (its VALUE comes with the
 * next byte, or never).
 *
 * Returns -1 on invalid JSON, with *p at the offending byte, s->err and
 * s->err_off set; every later call returns -1 too. */
int json_scan(struct json_scanner *s, const char **p, const char *end, struct json_ev *ev);

/* What the bytes fed so far are if the input ends there (it does not
 * change *s: a prefix may be asked about and then fed more). A root number
 * or literal touching the end is whole here: "12" is a complete document,
 * though no END event came for it. */
enum json_status json_scan_status(const struct json_scanner *s);

/* Where a JSON_TRUNCATED document stopped; for JSON_CUT_STRING and
 * JSON_CUT_SCALAR, *start gets the token's first byte. */
enum json_cut json_scan_cut(const struct json_scanner *s, uint64_t *start);

/* Frees the heap stack, if any. *s may be initialised again after. */
void json_scan_release(struct json_scanner *s);

/* Short English text of an error, for logs and messages. */
const char *json_err_str(enum json_err err);

static inline uint64_t json_scan_offset(const struct json_scanner *s)
{
	return s->off;
}

/* Containers open right now (0 outside the root). */
static inline size_t json_scan_depth(const struct json_scanner *s)
{
	return s->depth;
}

/* ------------------------------------------------------------------------ */
/* whole documents                                                          */
/* ------------------------------------------------------------------------ */

/* The type of the root if buf[0..len) is exactly one valid JSON document
 * (whitespace around allowed), else JSON_T_NONE. */
enum json_type json_valid(const char *buf, size_t len);

/* Called by json_each() for each member. *m and its pointers are valid
 * during the call. */
typedef void (*json_member_fn)(void *arg, const struct json_member *m);

/* Walks the own members of the object or array in buf[0..len), in order:
 * keys (objects) and values, without their nested content. Meant for small
 * objects held whole (a usage object, metadata); it scans them once.
 *
 * Returns the container's type (JSON_T_OBJECT or JSON_T_ARRAY) when
 * buf[0..len) is exactly one valid document and every member was passed to
 * fn; -1 otherwise (a scalar root, invalid or truncated JSON, out of
 * memory), and then fn may already have been called for the members before
 * the fault: a caller collects into scratch and applies it only on success. */
int json_each(const char *buf, size_t len, json_member_fn fn, void *arg);

/* ------------------------------------------------------------------------ */
/* strings and numbers                                                      */
/* ------------------------------------------------------------------------ */

/* What json_unescape() met besides plain text (JSON_UNESC_* flags). */
#define JSON_UNESC_CTL        0x01  /* a control character (below 0x20),
                                       NUL included, raw or escaped */
#define JSON_UNESC_NUL        0x02  /* a NUL, escaped (\u0000) */
#define JSON_UNESC_SURROGATE  0x04  /* a lone surrogate, written as its
                                       3-byte WTF-8 form, so that keys
                                       holding one still compare alike */
#define JSON_UNESC_BAD        0x08  /* a broken escape: not valid JSON */

/* Decodes the inside of a string token (quotes excluded), p[0..n), into
 * out, writing at most `size` bytes and no NUL. Escapes become UTF-8,
 * surrogate pairs one 4-byte sequence. Returns the whole decoded length,
 * which may exceed `size` (the rest is counted, not written) and never
 * exceeds n. *flags gets JSON_UNESC_* (0: plain text). */
size_t json_unescape(const char *p, size_t n, char *out, size_t size, unsigned int *flags);

/* Writes `s` (len bytes, UTF-8) as a JSON string token, quotes included,
 * into out (size bytes). Returns the token's length, or -1 if it did not fit.
 * Used for the model rewrite: the new value must be a valid JSON string. */
long json_quote(const char *s, size_t len, char *out, size_t size);

/* Whether the string token tok[0..len) (quotes included, valid JSON)
 * decodes to exactly the NUL-terminated `name` (at most 63 bytes). */
int json_str_is(const char *tok, size_t len, const char *name);

/* The number token tok[0..len) as a count: a JSON integer, not negative,
 * fitting 64 bits. Returns 0 with *v set, or -1 (fraction, exponent, sign,
 * overflow, or not a number). */
int json_u64(const char *tok, size_t len, uint64_t *v);

/* ------------------------------------------------------------------------ */
/* key sets                                                                 */
/* ------------------------------------------------------------------------ */

/* An empty set; nothing is allocated until the first key. */
void json_keys_init(struct json_keys *k);

/* Adds the key token tok[0..len) (quotes included), decoded: "mod\u0065l"
 * and "model" are the same key. The set keeps its own copy (heap, at most
 * the token's size). Returns 0, or -1 out of memory (the set is unchanged). */
int json_keys_add(struct json_keys *k, const char *tok, size_t len);

/* Whether two of the keys added are equal once decoded: 1 or 0. Sorts
 * them (O(n log n) whatever the keys, so a body crafted against a hash
 * cannot make it quadratic); allocates nothing. */
int json_keys_dup(struct json_keys *k);

/* Frees what the set holds; it may be initialised again after. */
void json_keys_release(struct json_keys *k);

#endif /* REALMS_JSON_H */
