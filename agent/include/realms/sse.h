/*
 * Server-sent events: an incremental push parser over the bytes of a
 * mirrored response. No I/O, no allocation: the only buffers are the fixed
 * ones in struct sse_parser.
 */
#ifndef REALMS_SSE_H
#define REALMS_SSE_H

#include <stddef.h>

#include <realms/sse-t.h>

/* Prepares *p (caller-owned, any storage; about 64 KB) for a new stream.
 * `want` and `on_event` may be NULL (see sse-t.h); `arg` is passed to both. */
void sse_init(struct sse_parser *p, sse_want_fn want, sse_event_fn on_event,
              void *arg);

/* Feeds len bytes of the stream, split anywhere (a \r ending one feed and a
 * \n starting the next are one line end). Lines end with \n, \r\n or \r;
 * "event:" names the event, "data:" lines are joined with \n, "id:",
 * "retry:", unknown fields and ":" comments are ignored, one space after
 * the colon is removed, a blank line dispatches the event (if it had at
 * least one data line), and a UTF-8 BOM starting the stream is skipped.
 *
 * An event whose name is known and not wanted has its data skipped; one
 * whose data would pass SSE_DATA_MAX (buffered because wanted or not named
 * yet) is dropped and counted. Neither fails the stream.
 *
 * Returns len (every byte is consumed; a partial line is kept in *p), or -1
 * once on_event has asked to stop; then every later call returns -1 too. */
long sse_feed(struct sse_parser *p, const char *buf, size_t len);

/* Bytes are missing from the stream here (the tap left out the middle of
 * a long answer). The event being received, if any, is dropped, the rest of
 * the current line is ignored, and parsing resumes with the next event: one
 * that starts after the next blank line. */
void sse_gap(struct sse_parser *p);

/* Whether the stream stopped inside an event: a partial line, or a name or
 * data line not ended by a blank line yet. At the end of a stream, that
 * event was cut off. */
static inline int sse_pending(const struct sse_parser *p)
{
	return p->data_lines || p->name_known || p->st != SSE_ST_FIELD ||
	       p->fname_len;
}

#endif /* REALMS_SSE_H */
