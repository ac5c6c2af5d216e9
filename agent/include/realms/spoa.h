/*
 * The agent side of SPOP. This layer makes no system call: the I/O layer
 * (spoa_io.c) reads into the connection's input buffer, calls
 * spoa_conn_process(), and writes what it finds in the output buffer. Tests
 * and fuzzers drive it the same way without sockets.
 */
#ifndef REALMS_SPOA_H
#define REALMS_SPOA_H

#include <realms/spoa-t.h>

/* ---- handler registry (filled before worker threads start, read-only
 * afterwards) ---- */

/* Registers fn for SPOE messages named `name` (the string is not copied).
 * Returns 0, or -1 if the registry is full or the name taken. */
int spoa_register(const char *name, spoa_handler_fn fn);
spoa_handler_fn spoa_handler_find(const char *name, size_t len);

/* ---- actions, for handlers ---- */

/* Each returns 0, or -1 when the action would make the ACK larger than the
 * negotiated frame size (the action is then dropped, the ACK still goes out
 * with the others, and the overflow is counted and logged). Names and values
 * are copied. */
int spoa_set_var(struct spoa_req *req, enum spop_scope scope, const char *name,
                 const struct spop_data *value);
int spoa_set_str(struct spoa_req *req, enum spop_scope scope, const char *name,
                 const char *s, size_t len);
int spoa_set_int(struct spoa_req *req, enum spop_scope scope, const char *name,
                 int64_t v);
int spoa_unset_var(struct spoa_req *req, enum spop_scope scope, const char *name);

/* Keeps the request open past the handler's return (answer SPOA_HDL_PENDING).
 * Every hold is matched by exactly one release, on the connection's worker
 * thread. The release that drops the last hold sends the ACK (or, if the
 * connection died meanwhile, just frees the request). */
void spoa_req_hold(struct spoa_req *req);
void spoa_req_release(struct spoa_req *req);

/* The worker context of the request's connection (opaque here). */
void *spoa_req_worker(const struct spoa_req *req);

/* ---- connections ---- */

/* A new connection in state HELLO, accepting frames up to our_max bytes.
 * Returns NULL on allocation failure. The caller holds one reference. */
struct spoa_conn *spoa_conn_new(uint32_t our_max, const struct spoa_conn_ops *ops,
                                void *owner, void *worker, uint64_t id);

/* Room to read into: makes at least some space and returns it. Returns NULL
 * if the input buffer is full (cannot happen while frames are consumed). */
uint8_t *spoa_conn_rspace(struct spoa_conn *c, size_t *room);
void spoa_conn_rcommit(struct spoa_conn *c, size_t n);

/* Handles every complete frame in the input buffer (while flow control
 * allows). Returns SPOA_IO_CLOSE once a final frame (AGENT-DISCONNECT, or the
 * AGENT-HELLO of a health check) is queued. */
enum spoa_io spoa_conn_process(struct spoa_conn *c);

/* Whether the I/O layer should read more: not closing, not too many frames
 * in flight, not too much output waiting. */
int spoa_conn_can_read(const struct spoa_conn *c);

/* Output: the bytes to write, and how many were written. */
const uint8_t *spoa_conn_wdata(const struct spoa_conn *c, size_t *len);
void spoa_conn_wconsume(struct spoa_conn *c, size_t n);

/* Queues AGENT-DISCONNECT with this status and moves to CLOSING. */
void spoa_conn_disconnect(struct spoa_conn *c, enum spop_err status,
                          const char *message);

/* Agent stopping: from now on, disconnect (status 0) as soon as nothing is in
 * flight and no input is pending. Returns what spoa_conn_process() would. */
enum spoa_io spoa_conn_drain(struct spoa_conn *c);

/* The socket is closed: drop the owner's reference. Requests in flight keep
 * the connection alive until they are released; their ACKs are discarded. */
void spoa_conn_close(struct spoa_conn *c);

/* Process-wide counters. */
void spoa_stats_get(struct spoa_stats *out);

#endif /* REALMS_SPOA_H */
