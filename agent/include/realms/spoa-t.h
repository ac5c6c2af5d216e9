/*
 * The agent side of SPOP: one connection's protocol state, the NOTIFY frames
 * in flight on it, and the registry of message handlers. Types.
 */
#ifndef REALMS_SPOA_T_H
#define REALMS_SPOA_T_H

#include <stddef.h>
#include <stdint.h>

#include <realms/spop-t.h>

/* Connection states. */
enum spoa_conn_st {
	SPOA_ST_HELLO = 0,   /* waiting for HAPROXY-HELLO */
	SPOA_ST_READY,       /* NOTIFY/ACK exchange */
	SPOA_ST_CLOSING,     /* last frame queued: flush, then close */
};

/* Connection flags. */
#define SPOA_FL_DRAINING   0x01  /* agent stopping: disconnect once idle */
#define SPOA_FL_DEAD       0x02  /* socket gone: completions are dropped */
#define SPOA_FL_HEALTHCHK  0x04  /* this was a health check connection */

/* What the I/O layer must do after spoa_conn_process(). */
enum spoa_io {
	SPOA_IO_CONTINUE = 0,  /* keep reading (if spoa_conn_can_read) */
	SPOA_IO_CLOSE,         /* flush the write buffer, then close */
};

struct spoa_conn;

/* Hooks from the protocol layer back to whoever owns the socket. */
struct spoa_conn_ops {
	/* New bytes were queued for writing outside of spoa_conn_process()
	 * (an asynchronous handler finished). */
	void (*want_write)(struct spoa_conn *c);
	/* The last reference is gone: the owner may free its own state.
	 * The connection is freed right after this returns. */
	void (*released)(struct spoa_conn *c);
};

/* A growable byte buffer with a hard ceiling. */
struct spoa_buf {
	uint8_t *data;
	size_t len;
	size_t off;      /* bytes already consumed from the front */
	size_t cap;
};

struct spoa_conn {
	enum spoa_conn_st state;
	unsigned int flags;
	uint32_t max_frame;        /* ours until HELLO, then the negotiated one */
	struct spoa_buf in;
	struct spoa_buf out;
	unsigned int inflight;     /* NOTIFYs received, not yet acknowledged */
	unsigned int refs;         /* owner (1) + requests in flight */
	const struct spoa_conn_ops *ops;
	void *owner;               /* the I/O layer's object */
	void *worker;              /* the worker thread's context, for handlers */
	uint64_t id;               /* for log lines */
};

/* One NOTIFY being answered. Its actions accumulate in `act`; the ACK goes
 * out when the last hold is released. */
struct spoa_req {
	struct spoa_conn *conn;
	uint64_t stream_id;
	uint64_t frame_id;
	unsigned int holds;
	int overflow;              /* an action did not fit in the frame */
	struct spoa_buf act;
};

/* What a handler tells the dispatcher. The dispatcher checks it against
 * the holds the handler left, and aborts the agent on a mismatch (a bug):
 * DONE leaves none (a hold released before returning counts as none),
 * PENDING leaves at least one. */
enum spoa_hdl_ret {
	SPOA_HDL_DONE = 0,     /* all actions are set */
	SPOA_HDL_PENDING,      /* handler called spoa_req_hold(); it will call
	                          spoa_req_release() later, on the same thread */
};

/* A message handler. `msg` and its arguments borrow the connection's input
 * buffer: they are valid during the call only; a handler that goes pending
 * copies what it needs. */
typedef enum spoa_hdl_ret (*spoa_handler_fn)(struct spoa_req *req,
                                             const struct spop_msg *msg);

/* Process-wide counters (relaxed atomics), for metrics. */
struct spoa_stats {
	uint64_t conns;
	uint64_t hellos;
	uint64_t healthchecks;
	uint64_t notifies;
	uint64_t acks;
	uint64_t messages;
	uint64_t unknown_messages;
	uint64_t proto_errors;
	uint64_t ack_overflows;
};

#endif /* REALMS_SPOA_T_H */
