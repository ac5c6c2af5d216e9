/*
 * Token cache: a fixed-size table of token lookups (positive and negative),
 * shared by the worker threads under one mutex (lookups are a few hundred
 * nanoseconds; Redis round trips are what it saves). Time is passed in, so
 * tests are deterministic.
 */
#ifndef REALMS_TOKCACHE_H
#define REALMS_TOKCACHE_H

#include <realms/tokcache-t.h>

/* Looks up a token by its SHA-256. Copies the entry into *out on FRESH or
 * STALE. A negative entry is FRESH with status TOK_UNKNOWN while its
 * (shorter) TTL runs, then a MISS. Stale positive entries are offered for
 * TOKCACHE_STALE_MS past their TTL, then MISS. */
enum tokcache_res tokcache_get(const uint8_t hash[TOKCACHE_KEY_LEN],
                               struct tok_info *out, uint64_t now_ms);

/* The invalidation epoch: it moves on every tokcache_invalidate() and
 * tokcache_clear(). A lookup reads it before asking Redis. */
uint64_t tokcache_epoch(void);

/* Stores what Redis said (status TOK_UNKNOWN for "no such token"), unless
 * an invalidation happened since `epoch` (read before the lookup was
 * sent): the answer may predate a revoke whose event already arrived, and
 * caching it would serve a revoked token for the whole TTL. Returns 1 if
 * stored, 0 if not. */
int tokcache_put(const uint8_t hash[TOKCACHE_KEY_LEN], const struct tok_info *info,
                 uint64_t now_ms, uint64_t epoch);

/* Forgets one token (revoked elsewhere) or all of them (the invalidation
 * channel was down: events may have been missed). */
void tokcache_invalidate(const uint8_t hash[TOKCACHE_KEY_LEN]);
void tokcache_clear(void);

/* Entries in use, for metrics and tests. */
unsigned int tokcache_count(void);

#endif /* REALMS_TOKCACHE_H */
