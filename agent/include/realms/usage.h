/*
 * Usage extraction: the token counts an Anthropic Messages API answer
 * reports, from its SSE events or from its JSON body. Pure functions over
 * bytes; scratch memory is thread-local.
 */
#ifndef REALMS_USAGE_H
#define REALMS_USAGE_H

#include <stddef.h>
#include <string.h>

#include <realms/usage-t.h>

/* An empty record: every count 0, no tier, no flag. */
static inline void usage_init(struct usage *u)
{
	memset(u, 0, sizeof(*u));
}

/* Takes one dispatched SSE event into *u (see struct sse_parser's
 * on_event). `name` is NUL-terminated; NULL or "" means the event had no
 * name, and the root "type" of its data names it instead. data[0..len)
 * need not be NUL-terminated.
 *
 *  - message_start: message.usage is read, FL_START set;
 *  - message_delta: usage is read (FL_DELTA when it has one); its counts
 *    are cumulative, so each field present replaces the one before, never
 *    adds to it (output_tokens is the total so far);
 *  - message_stop: FL_STOP; error: FL_ERROR (counts so far are kept);
 *  - any other event is ignored without parsing its data.
 *
 * The fields read from a usage object, the cache split and the
 * "iterations" rule are described at usage_apply() in usage.c. A number
 * that is not a non-negative integer fitting 64 bits counts as absent.
 *
 * Returns 1 if the event was used, 0 if ignored, -1 if the data of a
 * message_start or message_delta is not one complete JSON object (*u is
 * then unchanged). */
int usage_on_sse_event(struct usage *u, const char *name, const char *data,
                       size_t len);

/* Reads the top-level "usage" object of a complete, non-streamed answer
 * body (body[0..len), one JSON object with only whitespace around it) into
 * *u, as message_start would, and sets FL_START. Fields absent from the body
 * keep their value in *u (start from usage_init()).
 *
 * One jsmn pass over the body plus a linear walk: the body may be large.
 * Returns 1 if a usage object was read, 0 for a valid body without one (an
 * error body, say), -1 for malformed or truncated JSON, or JSON past
 * USAGE_JSON_MAX_TOKENS or USAGE_JSON_MAX_DEPTH (*u unchanged). */
int usage_from_json(struct usage *u, const char *body, size_t len);

#endif /* REALMS_USAGE_H */
