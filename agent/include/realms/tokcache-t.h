/*
 * Token cache: what the agent remembers of client tokens it looked up.
 */
#ifndef REALMS_TOKCACHE_T_H
#define REALMS_TOKCACHE_T_H

#include <stdint.h>

#include <realms/budget-t.h>

#define TOKCACHE_KEY_LEN    32     /* a token's SHA-256 */
#define TOKEN_FIELD_MAX     64     /* name and group, bytes */
#define TOKEN_MODELS_MAX    512    /* a token's model list, bytes */

enum tok_status {
	TOK_UNKNOWN = 0,   /* no such token (negative entry) */
	TOK_ACTIVE,
	TOK_REVOKED,
	TOK_DAMAGED,       /* its record cannot be read (its limits, say):
	                      refused, never served without its limits */
};

struct tok_info {
	enum tok_status status;
	char name[TOKEN_FIELD_MAX + 1];
	char group[TOKEN_FIELD_MAX + 1];
	int64_t expires;               /* unix seconds, 0 = never */
	struct budget_limits limits;   /* the token's own (not its group's) */
	/* Public model names the token may use, comma-separated; "" = all.
	 * realmsctl refuses a longer list than this holds. */
	char models[TOKEN_MODELS_MAX + 1];
};

enum tokcache_res {
	TOKCACHE_MISS = 0,   /* nothing usable: ask Redis */
	TOKCACHE_FRESH,      /* within its TTL: use it */
	TOKCACHE_STALE,      /* past its TTL: ask Redis, use it if Redis fails */
};

#endif /* REALMS_TOKCACHE_T_H */
