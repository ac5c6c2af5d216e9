/*
 * Body inspection with jsmn (strict mode, parent links): a pure function over
 * the bytes HAProxy sent, no I/O.
 */
#ifndef REALMS_INSPECT_H
#define REALMS_INSPECT_H

#include <stddef.h>

#include <realms/inspect-t.h>

/* Inspects `len` bytes of a request body whose full length is `body_len`
 * (len < body_len means the prefix is truncated; len > body_len is treated
 * as len == body_len).
 *
 * Only the root object's own keys count: a "model" nested in messages or
 * tools is not the model. Keys and the model's value are compared and
 * returned after JSON unescaping (\uXXXX, surrogate pairs to UTF-8). A value
 * that the end of the prefix cuts off is ABSENT, never guessed (a number or
 * literal touching the end of a truncated prefix is cut off too). Duplicate
 * top-level keys make the whole result INSPECT_DUPLICATE_KEY.
 *
 * On a complete body (len == body_len) the body must be exactly one JSON
 * object, optionally surrounded by whitespace, else INSPECT_INVALID or
 * INSPECT_NOT_OBJECT.
 *
 * Fills *res entirely (it needs no initialisation) and returns res->status.
 * Thread-safe: scratch memory is thread-local, bounded by INSPECT_MAX_TOKENS.
 */
enum inspect_status inspect_body(const char *buf, size_t len, size_t body_len,
                                 struct inspect_result *res);

/* Short lowercase name of a status, for logs and vars. */
const char *inspect_status_str(enum inspect_status st);

#endif /* REALMS_INSPECT_H */
