/*
 * Token cache: what the agent remembers of client tokens it looked up.
 */
#ifndef REALMS_TOKCACHE_T_H
#define REALMS_TOKCACHE_T_H

#include <stdint.h>

#define TOKCACHE_KEY_LEN    32     /* a token's SHA-256 */
#define TOKEN_FIELD_MAX     64     /* name and group, bytes */

enum tok_status {
	TOK_UNKNOWN = 0,   /* no such token (negative entry) */
	TOK_ACTIVE,
	TOK_REVOKED,
};

struct tok_info {
	enum tok_status status;
	char name[TOKEN_FIELD_MAX + 1];
	char group[TOKEN_FIELD_MAX + 1];
	int64_t expires;               /* unix seconds, 0 = never */
};

enum tokcache_res {
	TOKCACHE_MISS = 0,   /* nothing usable: ask Redis */
	TOKCACHE_FRESH,      /* within its TTL: use it */
	TOKCACHE_STALE,      /* past its TTL: ask Redis, use it if Redis fails */
};

#endif /* REALMS_TOKCACHE_T_H */
