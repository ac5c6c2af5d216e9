/*
 * Named limits of the agent, in one place. Each says what a peer gets when it
 * crosses it.
 */
#ifndef REALMS_LIMITS_H
#define REALMS_LIMITS_H

/* SPOP: smallest max-frame-size the protocol allows. A HELLO announcing less
 * gets AGENT-DISCONNECT status 9 (bad frame size). */
#define SPOP_MIN_FRAME_SIZE        256u

/* SPOP: the largest frame the agent accepts (and so announces). HAProxy's own
 * value is tune.bufsize - 4; the AGENT-HELLO answers min(ours, HAProxy's).
 * A frame whose length prefix exceeds the negotiated value gets
 * AGENT-DISCONNECT status 3 (frame too big) and the connection is closed. */
#define SPOP_MAX_FRAME_SIZE        (1024u * 1024u)

/* SPOP: arguments of one message kept for its handler; further arguments are
 * still validated but not passed on (nb-args is one byte, so at most 255). */
#define SPOP_MSG_MAX_ARGS          32

/* Agent: bytes queued for writing on one connection before the agent stops
 * reading from it (back-pressure, not an error). */
#define SPOA_WBUF_HIGH             (256u * 1024u)

/* Agent: NOTIFY frames in flight (received, not yet acknowledged) on one
 * connection before the agent stops reading from it. */
#define SPOA_MAX_INFLIGHT          1024

/* Agent: a connection that has not completed its HELLO within this many
 * seconds is closed (a peer sending one byte per second cannot hold a slot). */
#define SPOA_HELLO_TIMEOUT_S       5.0

/* Agent: an idle connection (no byte received) is closed after this long.
 * HAProxy reconnects on demand, and its own "timeout idle" is shorter. */
#define SPOA_IDLE_TIMEOUT_S        300.0

/* Agent: how long SIGTERM waits for in-flight frames before exiting anyway. */
#define SPOA_STOP_GRACE_S          5.0

/* Agent: worker threads at most. */
#define SPOA_MAX_WORKERS           64

/* Body inspection: JSON tokens parsed from one body prefix at most. A prefix
 * that needs more is treated as truncated at the last complete token. */
#define INSPECT_MAX_TOKENS         65536

/* Body inspection: longest model name accepted (decoded bytes). Longer
 * values are "not a model name" and refused by the verdict. */
#define INSPECT_MODEL_MAX          256

#endif /* REALMS_LIMITS_H */
