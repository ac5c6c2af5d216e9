/*
 * Redis key names, in one place. Everything the agent and realmsctl read or
 * write in Redis is named here; docs/redis.md describes the same layout for
 * dashboards and scripts.
 *
 * Client tokens
 * -------------
 * A token itself is never stored, logged or published: only its SHA-256 in
 * lowercase hex (token_hash_hex(), 64 chars), written <sha256hex> below.
 *
 *   realms:token:<sha256hex>   HASH, one per token ever issued:
 *       name        the token's name (unique, [A-Za-z0-9._@-]{1,64})
 *       group       the group it belongs to (config "groups")
 *       status      "active" | "revoked"
 *       created     unix seconds
 *       expires     unix seconds, first second it is no longer valid;
 *                   "0" = never. An active token past it is expired (no
 *                   separate status: expiry needs no write).
 *       revoked_at  unix seconds; "0" while not revoked
 *
 *   realms:tokens              HASH, the name index: name -> <sha256hex>.
 *       Written together with the record (MULTI/EXEC under WATCH), so a
 *       name is taken by exactly one token. A revoked token keeps its name
 *       (its usage history stays attached to it).
 *
 *   realms:token-events        pub/sub channel. realmsctl PUBLISHes the
 *       <sha256hex> of a token when it changes (revoked), so every agent
 *       drops it from its cache at once instead of after the cache TTL. An
 *       agent that lost its subscription must assume it missed events and
 *       clear its whole cache.
 */
#ifndef REALMS_RKEYS_H
#define REALMS_RKEYS_H

/* Token record: RKEY_TOKEN_PREFIX + <sha256hex>. */
#define RKEY_TOKEN_PREFIX       "realms:token:"
/* Longest token record key, with its NUL. */
#define RKEY_TOKEN_KEY_MAX      (sizeof(RKEY_TOKEN_PREFIX) - 1 + 64 + 1)

/* Fields of the token record. */
#define RKEY_TF_NAME            "name"
#define RKEY_TF_GROUP           "group"
#define RKEY_TF_STATUS          "status"
#define RKEY_TF_CREATED         "created"
#define RKEY_TF_EXPIRES         "expires"
#define RKEY_TF_REVOKED_AT      "revoked_at"

/* Values of the status field. */
#define RKEY_TS_ACTIVE          "active"
#define RKEY_TS_REVOKED         "revoked"

/* Name index: name -> <sha256hex>. */
#define RKEY_TOKENS             "realms:tokens"

/* Invalidation channel; the message is the <sha256hex>. */
#define RKEY_TOKEN_EVENTS       "realms:token-events"

#endif /* REALMS_RKEYS_H */
