/*
 * Usage extraction: the token counts an Anthropic Messages API answer
 * reports, from its SSE events or from its JSON body, read as it arrives.
 * Pure functions over bytes, no I/O.
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
 *  - message_start: message.usage is read, FL_START set; message.model
 *    goes to reported_model;
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

/* Prepares *r (caller-owned) to read one non-streamed answer. */
void usage_reader_init(struct usage_reader *r);

/* The next len bytes of the answer, split anywhere. The answer is scanned
 * (strict JSON, any depth, in linear time) and not stored: only the last
 * root "usage" object (up to USAGE_OBJ_MAX bytes) and the last root
 * "model" string are kept. Returns 0, or -1 once the answer is unreadable
 * (invalid JSON, a root that is not an object, out of memory); sticky. */
int usage_reader_feed(struct usage_reader *r, const char *buf, size_t len);

/* Bytes of the answer are missing here: it is unreadable. */
void usage_reader_gap(struct usage_reader *r);

/* The answer ended. Reads its last root "usage" object into *u, as
 * message_start would, and sets FL_START; its root "model" goes to
 * reported_model. Fields absent keep their value in *u (start from
 * usage_init()). Returns:
 *   1  usage read;
 *   0  valid JSON without a usage object (an error body, say; the last
 *      "usage" key decides, so "usage":null is none); only reported_model
 *      may have changed;
 *  -1  unreadable: invalid or truncated JSON, a gap, or a usage object past
 *      USAGE_OBJ_MAX; *u unchanged.
 * May be called once; usage_reader_release() follows. */
int usage_reader_finish(struct usage_reader *r, struct usage *u);

/* Frees what *r holds (not *r itself). */
void usage_reader_release(struct usage_reader *r);

/* Whether the model an upstream says it used (reported, from the answer;
 * "" when it said none) is the one it was asked for (upstream, the
 * channel's name of the model billed): the same name, or that name with
 * a date snapshot appended ("-YYYYMMDD"), as Anthropic answers for an
 * alias. An answer naming no model matches. */
int usage_model_matches(const char *upstream, const char *reported);

/* ---- Estimates --------------------------------------------------------- */

/* What an event stream delivered of its content, for estimating the output
 * of a stream cut before its final message_delta (the client hung up, the
 * upstream broke off). The tap sends a stream's head and tail and says how
 * many bytes it left out between them; the deltas it sends are measured,
 * the bytes left out are counted at the share of text the measured deltas
 * had. */
struct usage_content {
	uint64_t event_bytes;   /* bytes of the content_block_delta events seen,
	                           framing included */
	uint64_t text_bytes;    /* their text, thinking and partial_json, decoded */
	uint64_t skipped_bytes; /* bytes the tap left out */
};

/* One content_block_delta event's data (data[0..len)). Returns 1 when it
 * was one, 0 otherwise (not counted). */
int usage_content_event(struct usage_content *c, const char *data, size_t len);

/* The output tokens c amounts to: the text seen and the estimated text of
 * the bytes left out, at USAGE_EST_BYTES_PER_TOKEN bytes a token, rounded
 * up. */
uint64_t usage_content_tokens(const struct usage_content *c);

/* Tokens in `bytes` bytes of request or answer whose usage nobody
 * reported: the same rate, rounded up, at least 1 for a non-empty one. */
uint64_t usage_bytes_tokens(uint64_t bytes);

/* The same for a complete body held in body[0..len) (one JSON object with
 * only whitespace around it): usage_reader_finish()'s result. */
int usage_from_json(struct usage *u, const char *body, size_t len);

#endif /* REALMS_USAGE_H */
