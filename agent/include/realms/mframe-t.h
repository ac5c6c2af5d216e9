/*
 * The response mirror's frames, decoded (see realms/mframe.h). Types.
 * Every pointer in them points into the caller's buffer: nothing is
 * copied, nothing is allocated.
 */
#ifndef REALMS_MFRAME_T_H
#define REALMS_MFRAME_T_H

#include <stddef.h>
#include <stdint.h>

/* Frame kinds: the header line's first byte. */
enum mframe_kind {
	MFRAME_BEGIN   = 'B',   /* a response begins: meta */
	MFRAME_DATA    = 'D',   /* body bytes */
	MFRAME_GAP     = 'G',   /* body bytes left out here: meta */
	MFRAME_END     = 'E',   /* the response ended: meta */
	MFRAME_OUTCOME = 'O',   /* one upstream attempt's result: meta */
	MFRAME_RELEASE = 'X',   /* a request ended without an answer: meta */
	MFRAME_SYNC    = 'S',   /* end of a send round: echoed */
	/* Not a frame of the wire: a run of the payload of the D frame being
	 * streamed (mframe_next). */
	MFRAME_BODY    = 'd',
};

/* The largest status of a B or O frame: an HTTP status has three digits.
 * A larger value counts as absent. */
#define MFRAME_STATUS_MAX  999u

/* Bytes of the caller's buffer; not NUL-terminated. */
struct mframe_str {
	const char *ptr;
	size_t len;
};

/* One decoded frame (mframe_get), or a run of a D payload (mframe_next). */
struct mframe {
	enum mframe_kind kind;
	/* B D G E X: the request id; O: the server name; S: the sync number;
	 * BODY: empty (NULL). */
	struct mframe_str id;
	/* The payload length announced by the header (0 for S); BODY: the
	 * run's length. */
	size_t len;
	/* B G E O X: the whole payload, len bytes, right after the header.
	 * D: NULL, the len payload bytes are still to come. S: NULL.
	 * BODY: the run's bytes. */
	const char *payload;
};

/* A connection's reading state between mframe_next() calls: the D frame
 * whose payload is being streamed. All zero to start. */
struct mframe_rd {
	size_t remain;           /* its payload bytes still to come */
};

/* E meta: how the response ended. */
struct mframe_end {
	int complete;            /* reason=complete (else aborted, or not said) */
	int lost;                /* lost=<n>, n > 0: the tap gave bytes up */
};

/* O frame: one attempt on a credential, for its breaker. */
struct mframe_outcome {
	struct mframe_str server;     /* the header's id */
	int status;                   /* upstream HTTP status; 0: no response,
	                                 or no valid status= line */
	int64_t retry_after_s;        /* retry_after=<s>; -1: none or invalid */
	struct mframe_str rid;        /* rid=<request id>: the request the
	                                 attempt belonged to; len 0 (ptr NULL)
	                                 when absent or not a valid id */
};

#endif /* REALMS_MFRAME_T_H */
