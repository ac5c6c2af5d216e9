/*
 * Body inspection: a pure function over the bytes HAProxy sent (no I/O),
 * on top of the JSON scanner.
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
 * literal touching the end of a truncated prefix is cut off too); a
 * container's type is known from its first byte. A top-level key given
 * twice anywhere in the prefix, however escaped, makes the whole result
 * INSPECT_DUPLICATE_KEY (the upstream keeps the last one, so the first
 * must not be the one routed); the last occurrence is reported.
 *
 * Every body is either read whole (complete), read as a valid truncated
 * prefix, or refused: the whole prefix is validated at any nesting depth
 * and size. On a complete body (len == body_len) the body must be exactly
 * one JSON object, optionally surrounded by whitespace, else
 * INSPECT_INVALID or INSPECT_NOT_OBJECT. A cut prefix not starting with '{'
 * is INSPECT_NOT_OBJECT at once.
 *
 * Fills *res entirely (it needs no initialisation) and returns res->status.
 * Thread-safe. Allocates only the root key set (and a stack for nesting past
 * 256 levels), freed before it returns; out of memory reads as
 * INSPECT_INVALID: refused, never guessed.
 */
enum inspect_status inspect_body(const char *buf, size_t len, size_t body_len,
                                 struct inspect_result *res);

/* Short lowercase name of a status, for logs and vars. */
const char *inspect_status_str(enum inspect_status st);

#endif /* REALMS_INSPECT_H */
