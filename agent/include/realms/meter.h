/*
 * Metering: one response's body bytes (SSE or JSON) in, a usage record out.
 * Pure: no I/O. One meter per mirrored response.
 */
#ifndef REALMS_METER_H
#define REALMS_METER_H

#include <stddef.h>

#include <realms/usage-t.h>

struct meter;

/* What the meter made of a JSON answer (meter_finish()). */
enum meter_json {
	METER_JSON_NONE = 0,     /* an event stream, not a JSON answer */
	METER_JSON_USAGE,        /* its usage was read */
	METER_JSON_NO_USAGE,     /* valid JSON without a usage object (an error
	                            body) */
	METER_JSON_UNREADABLE,   /* invalid or truncated JSON, bytes missing, or
	                            a usage object past USAGE_OBJ_MAX */
};

/* A meter for a response with this Content-Type ("text/event-stream..." is
 * SSE, anything else is read as one JSON document, scanned as it arrives
 * and never stored). NULL if out of memory. */
struct meter *meter_new(const char *ctype);

/* Body bytes, in order, split anywhere. */
void meter_feed(struct meter *m, const char *data, size_t len);

/* `skipped` body bytes are missing here: the tap left out the middle of an
 * event stream (see sse_gap()). In a JSON answer, the document is then
 * unreadable. */
void meter_gap(struct meter *m, unsigned long long skipped);

/* Ends the response and fills rec->u, rec->stream and rec->partial from
 * what was seen. `ended` says whether the response finished normally (the
 * tap saw its end) and `lost` whether the tap dropped bytes. A 2xx answer
 * whose usage could not be read (METER_JSON_NO_USAGE or _UNREADABLE, or a
 * stream without message_start) is partial, unparsed.
 *
 * Nothing that delivered content is billed zero: a 2xx stream cut before
 * its final usage (message_delta) is billed the output its content
 * amounts to (usage_content_tokens), never less than message_start said;
 * a 2xx JSON answer whose usage could not be read, the output its size
 * amounts to (usage_bytes_tokens); and without message_start or a usage
 * object, the input rec->req_bytes amounts to. Either sets
 * USAGE_FL_ESTIMATED when the estimate is what counts. An error event
 * (the provider's own end: its usage is its bill) and bytes the tap gave
 * up leave the counts as seen. Returns what was
 * made of a JSON answer; call it once. */
enum meter_json meter_finish(struct meter *m, int ended, int lost,
                             struct usage_record *rec);

void meter_free(struct meter *m);

#endif /* REALMS_METER_H */
