/*
 * Usage and billing records: what one answered request consumed, and the
 * state of reading it from a JSON answer as it arrives. Types only.
 */
#ifndef REALMS_USAGE_T_H
#define REALMS_USAGE_T_H

#include <stddef.h>
#include <stdint.h>

#include <realms/json-t.h>
#include <realms/limits.h>
#include <realms/token.h>

/* Token counts as the provider reported them. For streams, message_start
 * gives input and cache counts, message_delta.usage is cumulative (the
 * latest value wins, never a sum). */
struct usage {
	uint64_t input;            /* input_tokens (uncached) */
	uint64_t output;           /* output_tokens */
	uint64_t cache_write_5m;   /* cache_creation.ephemeral_5m_input_tokens,
	                              or all of cache_creation_input_tokens when
	                              the split is absent */
	uint64_t cache_write_1h;   /* cache_creation.ephemeral_1h_input_tokens */
	uint64_t cache_read;       /* cache_read_input_tokens */
	uint64_t web_search;       /* server_tool_use.web_search_requests */
	char service_tier[24];     /* "standard", "priority", "batch", or "" */
	unsigned int flags;        /* USAGE_FL_* */
	char reported_model[INSPECT_MODEL_MAX + 1];
	                           /* the model the upstream says it used: a JSON
	                              answer's root "model", or message_start's
	                              message.model; decoded, "" when none (a
	                              value longer than INSPECT_MODEL_MAX bytes or
	                              holding a control character is none). Not
	                              in records: for comparing with the model
	                              billed. */
};

#define USAGE_FL_START   0x01  /* message_start (or a JSON body's usage) seen */
#define USAGE_FL_DELTA   0x02  /* a message_delta with usage seen */
#define USAGE_FL_STOP    0x04  /* message_stop seen */
#define USAGE_FL_ERROR   0x08  /* an SSE "error" event after the 200 */
#define USAGE_FL_ESTIMATED 0x10 /* some counts are the gateway's estimate, not
                                   the provider's (an interrupted stream, an
                                   answer whose usage could not be read) */

/* Why a record is partial. */
enum usage_partial {
	USAGE_COMPLETE = 0,
	USAGE_PARTIAL_CLIENT_GONE,     /* the client went away mid-answer */
	USAGE_PARTIAL_UPSTREAM_ERROR,  /* an "error" event after the 200 */
	USAGE_PARTIAL_TRUNCATED,       /* the answer ended early (stall, cut) */
	USAGE_PARTIAL_UNPARSED,      /* no usage could be read */
	USAGE_PARTIAL_TAP_OVERFLOW,    /* the mirror gave up bytes (memory bound) */
};
/* Values of enum usage_partial, USAGE_COMPLETE included. */
#define USAGE_PARTIAL_KINDS  (USAGE_PARTIAL_TAP_OVERFLOW + 1)

/* One billed request. Strings are NUL-terminated and bounded. */
struct usage_record {
	char req_id[64];           /* HAProxy's unique-id: the idempotency key */
	char token[65];            /* token name */
	char token_id[TOKEN_ID_SIZE]; /* TOKEN_ID_LEN hex digits of the token's hash */
	char group[65];
	char model[257];           /* public model name */
	char upstream_model[257];  /* what the channel called it */
	char channel[65];
	char server[140];          /* HAProxy server = credential */
	int status;                /* HTTP status the client got */
	int stream;                /* 1 SSE, 0 JSON */
	enum usage_partial partial;
	struct usage u;
	uint64_t cost_nusd;        /* integer nano-USD */
	uint64_t ttfb_ms;          /* request start to first response byte */
	uint64_t duration_ms;      /* request start to the end of the answer */
	int64_t ts_ms;             /* unix milliseconds at request start */
	uint64_t req_bytes;        /* request body size the tap saw (for
	                              estimates; not stored) */
};

/* Raw bytes of a root key kept to tell "usage" and "model" (in any escaped
 * form: 32 bytes at most) from the others; longer keys are neither. */
#define USAGE_KEY_RAW_MAX    64
/* Raw bytes of the root "model" string kept: a longer token decodes to more
 * than INSPECT_MODEL_MAX bytes (6 raw bytes, \u0061, make one at most). */
#define USAGE_MODEL_RAW_MAX  (6 * INSPECT_MODEL_MAX + 2)

/* What the bytes consumed right now belong to (usage_reader.keep). */
enum usage_keep {
	USAGE_KEEP_NONE = 0,
	USAGE_KEEP_KEY,      /* a root key */
	USAGE_KEEP_USAGE,    /* the root "usage" object */
	USAGE_KEEP_MODEL,    /* the root "model" string */
};

/* A non-streamed JSON answer read as it arrives (usage_reader_*): it is
 * scanned, never stored; only the bytes of the last root "usage" object
 * (up to USAGE_OBJ_MAX) and of the last root "model" string are kept.
 * Caller-owned, any storage (about 2 KB); the usage bytes live on the heap. */
struct usage_reader {
	struct json_scanner js;
	int bad;                     /* unreadable: invalid JSON, a gap, a root
	                                that is not an object, out of memory */
	enum usage_keep keep;
	int key;                     /* the last root key: see usage.c */

	char key_raw[USAGE_KEY_RAW_MAX];
	size_t key_len;              /* bytes of the key token so far (may
	                                pass USAGE_KEY_RAW_MAX: then it is none) */

	enum json_type usage_type;   /* of the last "usage" value (NONE: none) */
	char *usage;                 /* its bytes, when an object */
	size_t usage_len, usage_size;
	int usage_over;              /* it passed USAGE_OBJ_MAX */

	enum json_type model_type;   /* of the last "model" value (NONE: none) */
	char model[USAGE_MODEL_RAW_MAX];
	size_t model_len;            /* may pass USAGE_MODEL_RAW_MAX: too long */
};

#endif /* REALMS_USAGE_T_H */
