/*
 * The response mirror's wire format, and its decoder: pure functions over
 * the caller's bytes, no I/O, no allocation. mirror.c is the socket side.
 *
 * This comment is the normative definition of the wire format: the Lua
 * shim (lua-shim/realms.lua, its tap and outcome parts) writes it, and
 * docs/architecture.md ("Wire format") repeats it word for word. A change
 * to the wire starts here.
 *
 * From the tap to the agent, frames one after another, each a header line
 * then exactly <n> payload bytes:
 *
 *   header             payload: <n> bytes of            sent
 *   "B <rid> <n>\n"    meta: status ctype token         response headers seen
 *                      token_id group model server
 *                      ts_ms ttfb_ms req_bytes
 *   "D <rid> <n>\n"    body bytes, as forwarded to the  as they come: one
 *                      client; a request's D payloads   or more per send
 *                      are its body, in order           round
 *   "G <rid> <n>\n"    meta: skipped                    where the middle of a
 *                                                       stream was left out
 *   "E <rid> <n>\n"    meta: reason duration_ms lost    response ended
 *   "O <server> <n>\n" meta: status retry_after rid     each upstream attempt
 *                                                       ended
 *   "X <rid> <n>\n"    meta: token group                the request ended
 *                                                       without an answer:
 *                                                       release its holds
 *   "S <seq>\n"        (none)                           end of a send round
 *
 * From the agent to the tap, lines:
 *
 *   "A <rid>\n"        the request's record is durable (in Redis, already
 *                      there, or in the spool): the tap may forget it
 *   "S <seq>\n"        echo of a sync, after every "A" line ready before it
 *
 * Header fields, one space between them and no other blank:
 *   <rid>     the request's id, HAProxy's unique-id: 1 to MIRROR_RID_MAX
 *             (63) bytes of [A-Za-z0-9._:-]
 *   <server>  the HAProxy server of the attempt, "<channel>--<credential>":
 *             1 to MIRROR_SERVER_MAX (130) bytes of [A-Za-z0-9._-]
 *   <seq>     1 to MIRROR_SEQ_MAX (20) decimal digits
 *   <n>       decimal digits: at most MIRROR_META_MAX (8192) for B G E O X,
 *             at most MIRROR_FRAME_MAX (64 MB) for D
 * A header line is at most MIRROR_HDR_MAX (160) bytes, its "\n" included.
 *
 * Meta payloads are lines "key=value\n"; the last "\n" may be missing, a
 * value runs to the end of its line and may hold "=". Lines without "="
 * and unknown keys are ignored; when a key repeats, its first line counts.
 * A number is decimal digits only (no sign, no blank) within the field's
 * range; a value that is not one counts as absent.
 *
 *   key          frame  value
 *   status       B      HTTP status the client got (0 to 999)
 *   status       O      the upstream's status (0 to 999); 0 or absent: no
 *                       response (connection failure, timeout, reset)
 *   ctype        B      the response's Content-Type: text/event-stream is
 *                       metered as SSE, anything else as one JSON document
 *   token        B X    token name (record fields, cut to their sizes)
 *   token_id     B      token id
 *   group        B X    the token's group
 *   model        B      public model name
 *   server       B      HAProxy server (credential) that answered
 *   ts_ms        B      unix milliseconds at the request's start
 *   ttfb_ms      B      request start to the first response byte (ms)
 *   req_bytes    B      the request body's size, for estimating the input
 *                       of an answer whose usage cannot be read
 *   skipped      G      body bytes left out at this point
 *   reason       E      "complete" (the tap saw the response's end) or
 *                       "aborted"
 *   duration_ms  E      request start to the response's end (ms)
 *   lost         E      1 (any number above 0) when the tap gave body
 *                       bytes up (its memory bound)
 *   retry_after  O      the upstream's Retry-After, in seconds
 *   rid          O      the request the attempt belonged to, a <rid>
 *                       (optional; a value that is not one is ignored, the
 *                       frame is not)
 * A record field in E (token ... ttfb_ms) overrides the one from B.
 *
 * Rules: B opens a request on this connection (a B for a request already
 * open starts it over); D, G and E for a request that is not open are
 * ignored (its B went to an earlier connection, and the tap resends the
 * request whole); E closes it. At most MIRROR_OPEN_MAX (4096) requests are
 * open at once. O and X frames are never acknowledged nor resent (an X
 * lost with its connection leaves the holds to their lease, admit.h). Any violation
 * (an unknown kind, a bad id, a length over its limit, a header too long,
 * one request too many) closes the connection; the tap then resends every
 * unacknowledged request from its B frame on a new one.
 */
#ifndef REALMS_MFRAME_H
#define REALMS_MFRAME_H

#include <stddef.h>
#include <stdint.h>

#include <realms/limits.h>
#include <realms/mframe-t.h>
#include <realms/usage-t.h>

/* The most bytes mframe_get() can need at once: a meta frame whole. A
 * caller whose buffer holds this many always makes progress. */
#define MFRAME_PENDING_MAX   (MIRROR_HDR_MAX + MIRROR_META_MAX)

/* Decodes the frame at *p, reading no further than end.
 *
 * Returns the bytes consumed (> 0) and fills *f; *p moves past them: the
 * header and the payload for B G E O, the header only for D (f->len body
 * bytes follow: the caller streams them, any number at a time, and calls
 * again after the last one), the line for S. Returns 0 when [*p, end) is
 * a valid beginning of a frame that needs more bytes, and -1 when it
 * cannot begin a valid frame; in both cases *p and *f are left alone.
 *
 * Everything the bytes at hand can refuse is refused at once (a wrong
 * kind, a bad id byte, a length over its limit, a header over
 * MIRROR_HDR_MAX): -1 never waits for more input. So 0 is only returned
 * while fewer than MFRAME_PENDING_MAX bytes are at hand.
 *
 * f's pointers point into [*p, end): valid while the caller's buffer is. */
int mframe_get(const char **p, const char *end, struct mframe *f);

/* The next item of a connection's byte stream at *p: while the payload of
 * a D frame is being streamed, a run of it (f->kind MFRAME_BODY; f->payload
 * the f->len bytes at hand, at most up to the payload's end; f->id empty),
 * else the next frame, as mframe_get() decodes it; a D frame's payload then
 * follows as MFRAME_BODY runs (none for a D of length 0). So a D payload of
 * any size streams through, and never has to be buffered. Returns the bytes
 * consumed, 0 for need more, -1 for a protocol error, as mframe_get();
 * *rd, *p and *f change only on success. f's pointers point into
 * [*p, end). */
int mframe_next(struct mframe_rd *rd, const char **p, const char *end,
                struct mframe *f);

/* Whether s[0..len) is a valid request id (a header's <rid>). */
int mframe_rid_ok(const char *s, size_t len);

/* ---- meta payloads: never written to, read in place ---- */

/* The value of key in the meta lines meta[0..len): the rest of the first
 * line "key=...", without its "\n". Returns 1 and sets *v (pointing into
 * meta; possibly empty), or 0 when no line names key. */
int mframe_meta_str(const char *meta, size_t len, const char *key,
                    struct mframe_str *v);

/* The value of key as a number: decimal digits only, at most max. Returns
 * 1 and sets *v, 0 when key is absent, -1 when its value is not such a
 * number (empty, a sign, a blank, any other byte, or more than max; the
 * check happens digit by digit, so nothing overflows). *v is only written
 * on 1. */
int mframe_meta_num(const char *meta, size_t len, const char *key,
                    uint64_t max, uint64_t *v);

/* The usage record's fields a B or E payload carries (token, token_id,
 * group, model, server, status, ts_ms, ttfb_ms, duration_ms): each one
 * present and valid overwrites rec's, the others are left as they were.
 * Strings are cut to their field's size (and at a NUL), always
 * NUL-terminated. */
void mframe_meta_record(const char *meta, size_t len, struct usage_record *rec);

/* An E payload's end state. */
void mframe_end_get(const char *meta, size_t len, struct mframe_end *e);

/* A G payload's skipped=<bytes>; 0 when absent or invalid. */
uint64_t mframe_gap_skipped(const char *meta, size_t len);

/* An X frame's token and group (strings pointing into f's buffer; len 0
 * when absent). */
void mframe_release_get(const struct mframe *f, struct mframe_str *token,
                        struct mframe_str *group);

/* An O frame (f->kind == MFRAME_OUTCOME), decoded; o's strings point into
 * f's buffer. */
void mframe_outcome_get(const struct mframe *f, struct mframe_outcome *o);

#endif /* REALMS_MFRAME_H */
