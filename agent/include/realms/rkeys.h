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
 *       limits      the token's own limits, "usd/day=10000000000,rpm=30"
 *                   (budget_limits_encode(): nano-USD; absent or "" = none)
 *       models      public model names it may use, "m1,m2"; absent or ""
 *                   = every model of its group
 *       successor   <sha256hex> of the token that replaced it (rotate),
 *                   "" otherwise; a predecessor works until "expires"
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
#define RKEY_TF_LIMITS          "limits"
#define RKEY_TF_MODELS          "models"
#define RKEY_TF_SUCCESSOR       "successor"    /* rotated: the new secret's hash */
#define RKEY_TF_PREDECESSOR     "predecessor"  /* the secret it replaced, in its grace */

/* Values of the status field. */
#define RKEY_TS_ACTIVE          "active"
#define RKEY_TS_REVOKED         "revoked"

/* Name index: name -> <sha256hex>. */
#define RKEY_TOKENS             "realms:tokens"

/* Invalidation channel; the message is the <sha256hex>. */
#define RKEY_TOKEN_EVENTS       "realms:token-events"

/*
 * Usage records (record.c, realmsctl usage; docs/redis.md)
 * -------------
 * One answered request = one struct usage_record, counted once per req_id
 * by one Lua script (record_script()). Integers only; cost in nano-USD.
 * <day> is the UTC day of the request's start, "YYYYMMDD". <token>,
 * <model>, <channel> are key segments: the name percent-encoded (every byte
 * outside [A-Za-z0-9._@/+-] as %XX, uppercase hex), "(none)" for an empty
 * name; a segment never holds ':'. Index sets hold segments, not names.
 *
 *   realms:usage:seen:<req_id>      STRING <day>, TTL RECORD_SEEN_TTL_S: the
 *       idempotency mark. Present = this req_id is already counted.
 *   realms:usage:token:<token>:<day>      HASH of the RKEY_UF_* counters
 *   realms:usage:model:<model>:<day>      HASH, same fields
 *   realms:usage:channel:<channel>:<day>  HASH, same fields
 *   realms:usage:combo:<token>:<model>:<channel>:<day>  HASH, same fields:
 *       the cross of the three, so filters combine (realmsctl usage).
 *   realms:usage:days               ZSET, member <day>, score <day> as a
 *       number: ZRANGEBYSCORE realms:usage:days 20250101 20250131.
 *   realms:usage:tokens:<day>       SET of <token> segments used that day
 *   realms:usage:models:<day>       SET of <model> segments
 *   realms:usage:channels:<day>     SET of <channel> segments
 *   realms:usage:combos:<day>       SET of "<token>:<model>:<channel>"
 *   realms:usage:events             STREAM, one entry per counted request
 *       (fields RKEY_UE_*), capped near RECORD_EVENTS_MAXLEN entries.
 */

/* Key prefixes: prefix + segment(s) + ":" + <day>. */
#define RKEY_USAGE_SEEN_PREFIX      "realms:usage:seen:"
#define RKEY_USAGE_TOKEN_PREFIX     "realms:usage:token:"
#define RKEY_USAGE_MODEL_PREFIX     "realms:usage:model:"
#define RKEY_USAGE_CHANNEL_PREFIX   "realms:usage:channel:"
#define RKEY_USAGE_COMBO_PREFIX     "realms:usage:combo:"
#define RKEY_USAGE_DAYS             "realms:usage:days"
#define RKEY_USAGE_TOKENS_PREFIX    "realms:usage:tokens:"
#define RKEY_USAGE_MODELS_PREFIX    "realms:usage:models:"
#define RKEY_USAGE_CHANNELS_PREFIX  "realms:usage:channels:"
#define RKEY_USAGE_COMBOS_PREFIX    "realms:usage:combos:"
#define RKEY_USAGE_EVENTS           "realms:usage:events"

/*
 * Budgets and limits (admit.c; settled by the record script, record.c)
 * ------------------
 *   realms:spend:t:<token>:<win>  nano-USD spent by a token in a calendar
 *       window <win> ("d20261206", "w20261130" (its Monday), "m202612", in
 *       the configuration's timezone), STRING, expires 2 days after the
 *       window; realms:spend:t:<token>:5h is a HASH minute -> nano-USD of
 *       the rolling five hours (expires 5 h after its last write)
 *   realms:spend:g:<group>:<win>  the same for a group's shared totals
 *   realms:resv:t:<token>, realms:resv:g:<group>  HASH rid ->
 *       "<nano-USD> <gateway> <lease end ms>": reservations of requests
 *       in flight, removed by their record's commit
 *   realms:inflight:<token>       HASH rid -> "<gateway> <lease end ms>"
 *   realms:rpm:<token>            ZSET rid -> admission ms, last 60 s
 *   realms:gw:<gateway>           a gateway's heartbeat (PX): entries of a
 *       gateway whose heartbeat is gone are dropped when met
 */
#define RKEY_SPEND_PREFIX           "realms:spend:"
#define RKEY_RESV_PREFIX            "realms:resv:"
#define RKEY_INFLIGHT_PREFIX        "realms:inflight:"
#define RKEY_RPM_PREFIX             "realms:rpm:"
#define RKEY_GW_PREFIX              "realms:gw:"

/* The segment of an empty name. Never the encoding of a real name: '('
 * and ')' are always percent-encoded. */
#define RKEY_USAGE_NONE             "(none)"

/* Counter fields of the day hashes (HINCRBY; absent reads as 0). */
#define RKEY_UF_REQUESTS            "requests"
#define RKEY_UF_ERRORS              "errors"          /* status >= 400 or partial */
#define RKEY_UF_PARTIAL             "partial"
#define RKEY_UF_ESTIMATED           "estimated"       /* some counts estimated */
#define RKEY_UF_INPUT               "input"
#define RKEY_UF_OUTPUT              "output"
#define RKEY_UF_CACHE_WRITE_5M      "cache_write_5m"
#define RKEY_UF_CACHE_WRITE_1H      "cache_write_1h"
#define RKEY_UF_CACHE_READ          "cache_read"
#define RKEY_UF_WEB_SEARCH          "web_search"
#define RKEY_UF_COST_NUSD           "cost_nusd"

/* Fields of a realms:usage:events entry (plus the RKEY_UF_* token kinds
 * and cost_nusd, with the record's own values). */
#define RKEY_UE_REQ_ID              "req_id"
#define RKEY_UE_TOKEN               "token"           /* names as they are, */
#define RKEY_UE_TOKEN_ID            "token_id"        /* not segments */
#define RKEY_UE_GROUP               "group"
#define RKEY_UE_MODEL               "model"
#define RKEY_UE_UPSTREAM_MODEL      "upstream_model"
#define RKEY_UE_CHANNEL             "channel"
#define RKEY_UE_SERVER              "server"
#define RKEY_UE_STATUS              "status"
#define RKEY_UE_STREAM              "stream"          /* "1" SSE, "0" JSON */
#define RKEY_UE_PARTIAL             "partial"         /* reason name, or "" */
#define RKEY_UE_SERVICE_TIER        "service_tier"
#define RKEY_UE_TTFB_MS             "ttfb_ms"
#define RKEY_UE_DURATION_MS         "duration_ms"
#define RKEY_UE_TS_MS               "ts_ms"

#endif /* REALMS_RKEYS_H */
