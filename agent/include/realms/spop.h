/*
 * SPOP 2.0 codec: a pure module, no I/O and no allocation.
 *
 * Decoders take a (p, end) cursor, check bounds before reading, and move the
 * cursor only on success. They return the number of bytes consumed (> 0),
 * 0 when more input is needed, or -1 on malformed input. Inside a frame whose
 * length is known, "need more" is itself malformed: list iterators therefore
 * return 1 for an item, 0 at the end of the list and -1 on error.
 *
 * Encoders write through a struct spop_wr; a frame is built between
 * spop_frame_begin() and spop_frame_end(), which returns the frame's total
 * size (length prefix included) or -1 when it did not fit.
 */
#ifndef REALMS_SPOP_H
#define REALMS_SPOP_H

#include <sys/types.h>
#include <realms/spop-t.h>

/* ---- varints (HAProxy "peers" encoding) ---- */

/* Decodes a varint at *p. Returns bytes consumed (> 0) and moves *p, 0 if the
 * buffer ends inside the varint, -1 if it does not fit in 64 bits. */
int spop_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* Encodes v. Returns the bytes written, 0 if there was no room (nothing is
 * written then). */
int spop_put_varint_raw(uint8_t *p, const uint8_t *end, uint64_t v);

/* Size of v's encoding, 1 to 10 bytes. */
int spop_varint_len(uint64_t v);

/* ---- typed data and KV lists ---- */

/* Decodes one typed value. Same return convention as spop_get_varint; -1
 * also for an unknown type (10-15). STR/BIN borrow from the buffer. */
int spop_get_data(const uint8_t **p, const uint8_t *end, struct spop_data *d);

/* Decodes a length-prefixed string (no type byte). */
int spop_get_str(const uint8_t **p, const uint8_t *end, struct spop_slice *s);

/* Next item of a KV-LIST ending at `end`: 1 and fills kv, 0 at the end of the
 * list, -1 if malformed. */
int spop_kv_next(const uint8_t **p, const uint8_t *end, struct spop_kv *kv);

/* Next message of a NOTIFY's LIST-OF-MESSAGES: 1, 0 at the end, -1. */
int spop_msg_next(const uint8_t **p, const uint8_t *end, struct spop_msg *m);

/* Next action of an ACK's LIST-OF-ACTIONS: 1, 0 at the end, -1. */
int spop_action_next(const uint8_t **p, const uint8_t *end, struct spop_action *a);

/* Finds an argument of a message by name; NULL if absent. */
const struct spop_kv *spop_msg_arg(const struct spop_msg *m, const char *name);

/* ---- frames ---- */

/* Extracts one frame from buf. Returns the bytes it occupies (4 + length)
 * when complete, 0 when more bytes are needed, -1 on error with *err set:
 * SPOP_ERR_TOO_BIG when the length prefix exceeds max_frame (decided as soon
 * as the 4 length bytes are in, so a huge prefix is refused at once),
 * SPOP_ERR_INVALID when the metadata is malformed. The frame borrows buf. */
ssize_t spop_frame_parse(const uint8_t *buf, size_t len, uint32_t max_frame,
                         struct spop_frame *f, enum spop_err *err);

/* Validates a HAPROXY-HELLO payload. Returns 0, or -1 with *err set to the
 * status an AGENT-DISCONNECT must carry: NO_VSN, NO_FRAME_SIZE, NO_CAP (a
 * mandatory key missing), BAD_VSN (no 2.x offered), BAD_FRAME_SIZE (below
 * SPOP_MIN_FRAME_SIZE), INVALID (malformed list). Unknown keys are skipped. */
int spop_hello_parse(const uint8_t *payload, size_t len, struct spop_hello *h,
                     enum spop_err *err);

/* Reads status-code and message from a DISCONNECT payload (either side).
 * Returns 0, or -1 if malformed. A missing key leaves its default
 * (status 99, empty message). */
int spop_disconnect_parse(const uint8_t *payload, size_t len,
                          uint32_t *status, struct spop_slice *message);

/* Human text for a status code (never NULL). */
const char *spop_err_str(uint32_t status);

/* ---- encoding ---- */

void spop_wr_init(struct spop_wr *w, uint8_t *buf, size_t size);
void spop_put_u8(struct spop_wr *w, uint8_t v);
void spop_put_varint(struct spop_wr *w, uint64_t v);
void spop_put_str(struct spop_wr *w, const char *s, size_t len);
void spop_put_data(struct spop_wr *w, const struct spop_data *d);
void spop_put_kv(struct spop_wr *w, const char *name, const struct spop_data *d);

/* Starts a frame at w->p: reserves the length, writes type, flags and ids. */
void spop_frame_begin(struct spop_wr *w, uint8_t type, uint32_t flags,
                      uint64_t stream_id, uint64_t frame_id);
/* Ends it: writes the length. Returns the frame's size with its prefix, or -1
 * on overflow. */
ssize_t spop_frame_end(struct spop_wr *w);

/* AGENT-HELLO with version "2.0", the given max-frame-size and capabilities
 * "pipelining". Returns the frame size or -1. */
ssize_t spop_build_agent_hello(uint8_t *buf, size_t size, uint32_t max_frame);

/* AGENT-DISCONNECT with a status code and message. Returns size or -1. */
ssize_t spop_build_agent_disconnect(uint8_t *buf, size_t size,
                                    uint32_t status, const char *message);

/* ACK actions, between spop_frame_begin(w, SPOP_FRM_T_AGENT_ACK, FIN, sid,
 * fid) and spop_frame_end(w). */
void spop_put_set_var(struct spop_wr *w, enum spop_scope scope,
                      const char *name, size_t name_len,
                      const struct spop_data *value);
void spop_put_unset_var(struct spop_wr *w, enum spop_scope scope,
                        const char *name, size_t name_len);

/* HAProxy's side, for tests and the bench client. */
ssize_t spop_build_haproxy_hello(uint8_t *buf, size_t size, uint32_t max_frame,
                                 int healthcheck);
ssize_t spop_build_haproxy_disconnect(uint8_t *buf, size_t size,
                                      uint32_t status, const char *message);
/* Within a NOTIFY frame: a message header; then nb_args spop_put_kv(). */
void spop_put_msg(struct spop_wr *w, const char *name, uint8_t nb_args);

/* Convenience constructors for struct spop_data. */
static inline struct spop_data spop_str(const char *s, size_t len)
{
	struct spop_data d = { .type = SPOP_DATA_T_STR };
	d.u.str.ptr = s;
	d.u.str.len = len;
	return d;
}

static inline struct spop_data spop_bin(const void *s, size_t len)
{
	struct spop_data d = { .type = SPOP_DATA_T_BIN };
	d.u.str.ptr = s;
	d.u.str.len = len;
	return d;
}

static inline struct spop_data spop_sint(int64_t v)
{
	struct spop_data d = { .type = SPOP_DATA_T_INT64 };
	d.u.s64 = v;
	return d;
}

static inline struct spop_data spop_bool(int v)
{
	struct spop_data d = { .type = SPOP_DATA_T_BOOL };
	d.u.boolean = !!v;
	return d;
}

#endif /* REALMS_SPOP_H */
