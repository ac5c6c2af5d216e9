/*
 * Client tokens: generation, hashing, the cheap shape check done before any
 * Redis lookup, and the expiry forms realmsctl accepts. Pure: no I/O but
 * the OS CSPRNG in token_generate(); time is always passed in.
 *
 * A token is "sk-realms-" followed by 32 random bytes written in base62 at a
 * fixed width of 43 digits (62^43 > 2^256 > 62^42), left-padded with '0'.
 * Only its SHA-256 is ever stored (see rkeys.h); the token itself is shown
 * once, when it is created.
 */
#ifndef REALMS_TOKEN_H
#define REALMS_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_PREFIX        "sk-realms-"
#define TOKEN_PREFIX_LEN    (sizeof(TOKEN_PREFIX) - 1)
#define TOKEN_RAND_BYTES    32                  /* 256 bits of entropy */
#define TOKEN_B62_LEN       43                  /* base62 digits of 32 bytes */
#define TOKEN_LEN           (TOKEN_PREFIX_LEN + TOKEN_B62_LEN)   /* 53 */
#define TOKEN_MAX           (TOKEN_LEN + 1)     /* with the NUL */

/* SHA-256, raw. The same value as tokcache-t.h's (an identical macro
 * redefinition is valid C), so either header may come first. */
#define TOKEN_HASH_LEN      32
#define TOKEN_HEX_LEN       (2 * TOKEN_HASH_LEN)               /* 64 */

/* Token ids: the first TOKEN_ID_LEN hex digits of the token's SHA-256,
 * how logs, usage records and realmsctl name a token without revealing
 * it. TOKEN_ID_SIZE is the field that holds one with its NUL (16 bytes, a
 * size the spool's record layout keeps). */
#define TOKEN_ID_LEN        12
#define TOKEN_ID_SIZE       16
_Static_assert(TOKEN_ID_LEN < TOKEN_ID_SIZE && TOKEN_ID_LEN <= TOKEN_HEX_LEN,
               "a token id and its NUL fit the field, and come from the hash");

/* Token names (and group names when no config is given): 1..TOKEN_NAME_MAX
 * bytes of [A-Za-z0-9._@-]. */
#define TOKEN_NAME_MAX      64

/* Relative expiries ("30d", "12h", "90m") are bounded to 100 years: larger
 * ones are refused rather than silently meaning "never". */
#define TOKEN_REL_MAX_S     (100LL * 366 * 86400)

/* ---- Encoding and generation --------------------------------------- */

/* Writes the n bytes at `in` (a big-endian number) as exactly `width`
 * base62 digits ("0-9A-Za-z", left-padded with '0') plus a NUL into `out`,
 * which must hold width + 1 bytes. Returns 0, or -1 (out set to "") when
 * the number needs more than `width` digits or n > 64. */
int token_base62(const uint8_t *in, size_t n, char *out, size_t width);

/* Builds the token for the given random bytes into out. Deterministic, for
 * tests; token_generate() is this over fresh CSPRNG bytes. */
void token_format(const uint8_t rnd[TOKEN_RAND_BYTES], char out[TOKEN_MAX]);

/* Fills out with a new token from getrandom(2). Returns 0, or -1 with errno
 * set (out set to "") if the OS could not give random bytes. The caller
 * should wipe out (OPENSSL_cleanse) when done with it. */
int token_generate(char out[TOKEN_MAX]);

/* Whether tok (len bytes, need not be NUL-terminated) has a token's shape:
 * the prefix, exactly TOKEN_LEN bytes, base62 digits after the prefix.
 * Says nothing of whether the token exists. */
bool token_looks_valid(const char *tok, size_t len);

/* ---- Hashing -------------------------------------------------------- */

/* SHA-256 of tok (len bytes) into out. Returns 0, or -1 if OpenSSL fails. */
int token_hash(const char *tok, size_t len, uint8_t out[TOKEN_HASH_LEN]);

/* Same as lowercase hex plus a NUL into out (65 bytes): the form used in
 * Redis keys and on the invalidation channel. Returns 0 or -1. */
int token_hash_hex(const char *tok, size_t len, char out[TOKEN_HEX_LEN + 1]);

/* Lowercase hex of a raw hash into out (65 bytes). */
void token_hex_encode(const uint8_t h[TOKEN_HASH_LEN],
                      char out[TOKEN_HEX_LEN + 1]);

/* Parses exactly TOKEN_HEX_LEN hex digits (either case) from hex (len
 * bytes) into out, e.g. a message of the invalidation channel. Returns 0,
 * or -1 if len is wrong or a byte is not a hex digit. */
int token_hex_decode(const char *hex, size_t len, uint8_t out[TOKEN_HASH_LEN]);

/* ---- Names and expiries --------------------------------------------- */

/* Whether s (len bytes) is a valid token or group name (see TOKEN_NAME_MAX). */
bool token_name_valid(const char *s, size_t len);

/* Parses an expiry given at `now` (unix seconds) into *out (unix seconds,
 * the first second at which the token is no longer valid):
 *   "YYYY-MM-DD"            valid through that whole day, UTC: the next
 *                           midnight UTC;
 *   "YYYY-MM-DDTHH:MM:SSZ"  that instant (UTC only, no offsets);
 *   "<N>d", "<N>h", "<N>m"  now + N days, hours or minutes, N >= 1, at
 *                           most TOKEN_REL_MAX_S in all;
 *   "never"                 0 (the stored "never expires").
 * Years 1970..9999; dates are checked (month lengths, leap years). The
 * whole string must match: no spaces, signs or trailing bytes. Whether the
 * result is already in the past is the caller's concern. Returns 0, or -1
 * (*out untouched). */
int token_parse_expiry(const char *s, int64_t now, int64_t *out);

#endif /* REALMS_TOKEN_H */
