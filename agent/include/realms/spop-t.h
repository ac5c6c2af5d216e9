/*
 * SPOP 2.0 (HAProxy Stream Processing Offload Protocol): types.
 * Wire format: HAProxy's doc/SPOE.txt, section 3.
 */
#ifndef REALMS_SPOP_T_H
#define REALMS_SPOP_T_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>

#include <realms/limits.h>

/* Frame types (one byte after the 4-byte length). */
enum spop_frm_type {
	SPOP_FRM_T_UNSET          = 0,
	SPOP_FRM_T_HAPROXY_HELLO  = 1,
	SPOP_FRM_T_HAPROXY_DISCON = 2,
	SPOP_FRM_T_HAPROXY_NOTIFY = 3,
	SPOP_FRM_T_AGENT_HELLO    = 101,
	SPOP_FRM_T_AGENT_DISCON   = 102,
	SPOP_FRM_T_AGENT_ACK      = 103,
};

/* Smallest frame (length prefix excluded): type, flags, and two 1-byte ids.
 * A shorter one is invalid: AGENT-DISCONNECT status 4. */
#define SPOP_FRM_HDR_MIN  (1 + 4 + 1 + 1)

/* Room an ACK needs besides its actions: length, type, flags, two varints. */
#define SPOA_ACK_HDR_MAX  (4 + 1 + 4 + 10 + 10)

/* Longest string a decoder accepts. Decoders return their size as an int;
 * this keeps a string plus its type byte and length below INT_MAX. No frame
 * we accept (SPOP_MAX_FRAME_SIZE) comes anywhere near it. */
#define SPOP_STR_MAX      ((uint64_t)INT_MAX - 32)

/* Frame flags (4 bytes, network order, bit 0 = LSB). */
#define SPOP_FRM_FL_FIN   0x00000001u
#define SPOP_FRM_FL_ABRT  0x00000002u

/* Typed data: low nibble of the type byte is the type, high nibble flags. */
enum spop_data_type {
	SPOP_DATA_T_NULL   = 0,
	SPOP_DATA_T_BOOL   = 1,
	SPOP_DATA_T_INT32  = 2,
	SPOP_DATA_T_UINT32 = 3,
	SPOP_DATA_T_INT64  = 4,
	SPOP_DATA_T_UINT64 = 5,
	SPOP_DATA_T_IPV4   = 6,
	SPOP_DATA_T_IPV6   = 7,
	SPOP_DATA_T_STR    = 8,
	SPOP_DATA_T_BIN    = 9,
};
#define SPOP_DATA_T_MASK     0x0f
#define SPOP_DATA_FL_TRUE    0x10   /* boolean value, in the flags nibble */

/* Status codes carried by HAPROXY-DISCONNECT / AGENT-DISCONNECT. */
enum spop_err {
	SPOP_ERR_NONE             = 0,
	SPOP_ERR_IO               = 1,
	SPOP_ERR_TOUT             = 2,
	SPOP_ERR_TOO_BIG          = 3,
	SPOP_ERR_INVALID          = 4,
	SPOP_ERR_NO_VSN           = 5,
	SPOP_ERR_NO_FRAME_SIZE    = 6,
	SPOP_ERR_NO_CAP           = 7,
	SPOP_ERR_BAD_VSN          = 8,
	SPOP_ERR_BAD_FRAME_SIZE   = 9,
	SPOP_ERR_FRAG_NOT_SUPP    = 10,
	SPOP_ERR_INTERLACED       = 11,
	SPOP_ERR_FRAMEID_NOTFOUND = 12,
	SPOP_ERR_RES              = 13,
	SPOP_ERR_UNKNOWN          = 99,
};

/* Variable scopes of set-var / unset-var actions. */
enum spop_scope {
	SPOP_SCOPE_PROC = 0,
	SPOP_SCOPE_SESS = 1,
	SPOP_SCOPE_TXN  = 2,
	SPOP_SCOPE_REQ  = 3,
	SPOP_SCOPE_RES  = 4,
};

/* Action types in ACK frames. */
enum spop_act_type {
	SPOP_ACT_T_SET_VAR   = 1,
	SPOP_ACT_T_UNSET_VAR = 2,
};

/* A borrowed byte range: points into the caller's buffer, never owned. */
struct spop_slice {
	const char *ptr;
	size_t len;
};

/* One typed value. STR and BIN borrow from the frame being decoded: they stay
 * valid as long as that buffer does. */
struct spop_data {
	enum spop_data_type type;
	union {
		int boolean;
		int32_t s32;
		uint32_t u32;
		int64_t s64;
		uint64_t u64;
		struct in_addr ipv4;
		struct in6_addr ipv6;
		struct spop_slice str;   /* STR and BIN */
	} u;
};

/* A KV-LIST item or a message argument. */
struct spop_kv {
	struct spop_slice name;
	struct spop_data value;
};

/* One decoded frame. The payload borrows from the input buffer. */
struct spop_frame {
	uint8_t type;
	uint32_t flags;
	uint64_t stream_id;
	uint64_t frame_id;
	const uint8_t *payload;
	size_t payload_len;
};

/* One message of a NOTIFY. Arguments beyond SPOP_MSG_MAX_ARGS are validated
 * and skipped; nb_args tells how many the frame carried. */
struct spop_msg {
	struct spop_slice name;
	unsigned int nb_args;
	unsigned int nb_kept;
	struct spop_kv args[SPOP_MSG_MAX_ARGS];
};

/* One action of an ACK (decoded side, used by tests and the bench client). */
struct spop_action {
	enum spop_act_type type;
	enum spop_scope scope;
	struct spop_slice name;
	struct spop_data value;   /* SET_VAR only */
};

/* What a HAPROXY-HELLO said, after validation. */
struct spop_hello {
	uint32_t max_frame_size;   /* HAProxy's */
	int healthcheck;           /* "healthcheck" was true */
	int pipelining;            /* HAProxy announced "pipelining" */
	struct spop_slice engine_id;
};

/* A bounded writer. Every put checks the room left; on overflow it sets
 * `overflow` and writes nothing more, so a caller checks once at the end. */
struct spop_wr {
	uint8_t *start;
	uint8_t *p;
	uint8_t *end;
	uint8_t *frame;      /* start of the frame being built (its length) */
	int overflow;
};

#endif /* REALMS_SPOP_T_H */
