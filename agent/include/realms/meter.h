/*
 * Metering: one response's body bytes (SSE or JSON) in, a usage record out.
 * Pure: no I/O. One meter per mirrored response.
 */
#ifndef REALMS_METER_H
#define REALMS_METER_H

#include <stddef.h>

#include <realms/usage-t.h>

struct meter;

/* A meter for a response with this Content-Type ("text/event-stream..." is
 * SSE, anything else is read as one JSON document). NULL if out of memory. */
struct meter *meter_new(const char *ctype);

/* Body bytes, in order, split anywhere. */
void meter_feed(struct meter *m, const char *data, size_t len);

/* `skipped` body bytes are missing here: the tap left out the middle of an
 * event stream (see sse_gap()). In a JSON answer, the document is then
 * unreadable. */
void meter_gap(struct meter *m, unsigned long long skipped);

/* Ends the response and fills rec->u, rec->stream and rec->partial from
 * what was seen. `ended` says whether the response finished normally (the
 * tap saw its end) and `lost` whether the tap dropped bytes. */
void meter_finish(struct meter *m, int ended, int lost, struct usage_record *rec);

void meter_free(struct meter *m);

#endif /* REALMS_METER_H */
