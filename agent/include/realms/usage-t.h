/*
 * Usage and billing records: what one answered request consumed.
 */
#ifndef REALMS_USAGE_T_H
#define REALMS_USAGE_T_H

#include <stdint.h>

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
};

#define USAGE_FL_START   0x01  /* message_start (or a JSON body's usage) seen */
#define USAGE_FL_DELTA   0x02  /* a message_delta with usage seen */
#define USAGE_FL_STOP    0x04  /* message_stop seen */
#define USAGE_FL_ERROR   0x08  /* an SSE "error" event after the 200 */

/* Why a record is partial. */
enum usage_partial {
	USAGE_COMPLETE = 0,
	USAGE_PARTIAL_CLIENT_GONE,     /* the client went away mid-answer */
	USAGE_PARTIAL_UPSTREAM_ERROR,  /* an "error" event after the 200 */
	USAGE_PARTIAL_TRUNCATED,       /* the answer ended early (stall, cut) */
	USAGE_PARTIAL_UNPARSABLE,      /* no usage could be read */
	USAGE_PARTIAL_TAP_OVERFLOW,    /* the mirror gave up bytes (memory bound) */
};
/* Values of enum usage_partial, USAGE_COMPLETE included. */
#define USAGE_PARTIAL_KINDS  (USAGE_PARTIAL_TAP_OVERFLOW + 1)

/* One billed request. Strings are NUL-terminated and bounded. */
struct usage_record {
	char req_id[64];           /* HAProxy's unique-id: the idempotency key */
	char token[65];            /* token name */
	char token_id[16];         /* 12 hex digits of the token's hash */
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
};

#endif /* REALMS_USAGE_T_H */
