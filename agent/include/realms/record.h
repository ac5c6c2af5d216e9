/*
 * Usage records in Redis: the one Lua script that counts a record exactly
 * once per req_id, the EVALSHA/EVAL argv that runs it, the key-safe form of
 * names, UTC days, and the spool line a record waits in while Redis is
 * down. Pure: no I/O, no allocation, no clock (time is passed in). The key
 * layout is in rkeys.h; docs/redis.md is the reader's guide.
 *
 * The committer (a hiredis adapter) does:
 *     SCRIPT LOAD record_script() once per connection, keep the SHA;
 *     record_batch_add() the records that are ready, record_batch_argv(b,
 *     sha), redisCommandArgv(.., b->argc, b->argv, b->argvlen), and on a
 *     NOSCRIPT error the same with record_batch_argv(b, NULL) (plain EVAL).
 *     record_redis_argv() is the call for one record alone.
 * The reply is an array of integers RECORD_RC_*, one per record, or an
 * error (nothing changed).
 * While Redis is unreachable, record_spool_encode() lines are appended to a
 * file and committed later, in order, the same way: a replayed line that
 * was already counted answers RECORD_RC_DUPLICATE.
 */
#ifndef REALMS_RECORD_H
#define REALMS_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include <realms/rargv.h>
#include <realms/usage-t.h>

/* ---- Limits ---------------------------------------------------------- */

/* Lifetime of realms:usage:seen:<req_id>, from the first commit. Must
 * exceed RECORD_MAX_AGE_MS: a record reaches Redis at most that long after
 * it started, so its mark is still there for every retry or replay. */
#define RECORD_SEEN_TTL_S       (30 * 86400)

/* Oldest record the script accepts, by Redis's clock (TIME) against the
 * record's ts_ms: older ones get RECORD_RC_TOO_OLD and change nothing, so a
 * spool replayed too late cannot count twice. Two days under the TTL leave
 * room for clock skew between agents and Redis. */
#define RECORD_MAX_AGE_MS       (28LL * 86400 * 1000)

/* Approximate cap of realms:usage:events (XADD MAXLEN ~): about a few
 * hundred bytes per entry, so a few hundred MB at the cap. The day hashes
 * are the billing truth; the stream is for recent detail. */
#define RECORD_EVENTS_MAXLEN    1000000

/* Largest token count, cost or duration in a record: 2^53 - 1, exact in a
 * double (JSON readers, Lua) and far below HINCRBY's int64 overflow. */
#define RECORD_COUNT_MAX        ((UINT64_C(1) << 53) - 1)

/* ts_ms range: the day must be written with 4 digits of year. */
#define RECORD_TS_MAX_MS        INT64_C(253402300799999)  /* 9999-12-31T23:59:59.999Z */

/* "YYYYMMDD" */
#define RECORD_DAY_LEN          8

/* A key segment of a name of up to 256 bytes, every byte encoded, NUL. */
#define RECORD_SEG_MAX          (3 * 256 + 1)

/* Longest spool line, '\n' and NUL included. Every string escaped twice
 * its size is about 1900 bytes, the numbers 300. */
#define RECORD_SPOOL_LINE_MAX   4096

/* Version tag, the first field of a spool line. */
#define RECORD_SPOOL_VERSION    "v1"

/* Shape of the script call for one record: EVALSHA sha numkeys KEYS[1..]
 * ARGV[1] ("1", the number of records) and the record's section. */
#define RECORD_ARGV_KEYS        3    /* argv index of KEYS[1] */
#define RECORD_NKEYS            22   /* keys per record */
#define RECORD_ARGV_ARGS        (RECORD_ARGV_KEYS + RECORD_NKEYS)  /* ARGV[1] */
/* argv index of the record's first section argument (its ts_ms) */
#define RECORD_ARGV_REC         (RECORD_ARGV_ARGS + 1)
/* argv index of the first usage counter's value (requests) */
#define RECORD_ARGV_COUNTERS    (RECORD_ARGV_REC + 16)
/* arguments in a record's section (record.c, above the script) */
#define RECORD_SECTION_ARGS     40

/* Calendar spend counters live this long past their window's end (clock
 * skew between gateways and Redis; a record settling just after a turn). */
#define RECORD_SPEND_GRACE_MS   (3600LL * 1000)

/* Integer replies of the script. */
enum record_rc {
	RECORD_RC_TOO_OLD = -1,     /* ts_ms older than the max age: nothing changed */
	RECORD_RC_DUPLICATE = 0,    /* req_id already counted: nothing changed */
	RECORD_RC_RECORDED = 1,     /* counted now */
};

/* ---- The script and its argv ----------------------------------------- */

/* The Lua text, static. len may be NULL. */
const char *record_script(size_t *len);

/* Builds the script call for rec into *out: "EVALSHA" sha1 when sha1 (40
 * hex digits, as SCRIPT LOAD answered) is given, else "EVAL" and the script
 * text. max_age_ms is RECORD_MAX_AGE_MS for the agent; 0 turns the age
 * check off (backfills and tests only: the caller then vouches that no
 * copy of a record comes later than RECORD_SEEN_TTL_S after the first).
 * tz_min is the configuration's UTC offset (minutes): the record's cost
 * is settled into the spend counters of the windows its start falls in
 * (budget_window), and its reservations and in-flight slot (admit.c) are
 * released.
 * Every argv string is NUL-terminated and lives in out->buf (the script
 * text is static), valid while *out is neither changed nor freed; rec is
 * not referenced. Returns 0, or -1 if rec is invalid (record_validate) or
 * sha1 is malformed. */
int record_redis_argv(const struct usage_record *rec, const char *sha1,
                      int64_t max_age_ms, int tz_min, struct rargv *out);

/* Records in one script call at most. Their run blocks Redis for about
 * 20 us per record; a batch of records that share a token, model and
 * channel costs Redis about half what they cost one by one. */
#define RECORD_BATCH_MAX        16

/* A batch of records being built, then its script call: the records'
 * KEYS one after another, ARGV[1] = their number, then their sections (the
 * layout above record_script() in record.c). Large (more than 160 KB): one
 * per committer, not on a stack. */
struct record_batch {
	int n;                          /* records added */
	int argc;                       /* of argv, after record_batch_argv() */
	const char *argv[4 + RECORD_BATCH_MAX * (RECORD_NKEYS + RECORD_SECTION_ARGS)];
	size_t argvlen[4 + RECORD_BATCH_MAX * (RECORD_NKEYS + RECORD_SECTION_ARGS)];
	const char *keys[RECORD_BATCH_MAX * RECORD_NKEYS];
	size_t keylen[RECORD_BATCH_MAX * RECORD_NKEYS];
	const char *args[RECORD_BATCH_MAX * RECORD_SECTION_ARGS];
	size_t arglen[RECORD_BATCH_MAX * RECORD_SECTION_ARGS];
	char head[2][16];               /* numkeys, number of records */
	size_t used;
	char buf[4 * RARGV_BUF];
	struct rargv one;               /* scratch: one record's call */
};

/* Empties b. */
void record_batch_init(struct record_batch *b);

/* Adds rec to b (copied: rec is not referenced), with record_redis_argv()'s
 * max_age_ms and tz_min. Returns 0; 1 when b is full (RECORD_BATCH_MAX
 * records, or no room left for this one: send b, then add rec to the next
 * batch; an empty batch always has room); -1 if rec is invalid. */
int record_batch_add(struct record_batch *b, const struct usage_record *rec,
                     int64_t max_age_ms, int tz_min);

/* Builds the script call of b's records into b->argc, argv, argvlen: EVALSHA
 * sha1, or EVAL and the script text when sha1 is NULL. The reply is an
 * array of b->n integers RECORD_RC_*, in the order the records were added,
 * or an error (nothing changed for any of them). Returns 0, or -1 when b
 * is empty or sha1 malformed. */
int record_batch_argv(struct record_batch *b, const char *sha1);

/* ---- Records --------------------------------------------------------- */

/* Whether rec can be committed: every string NUL-terminated within its
 * array; req_id 1 to 63 of [A-Za-z0-9._:-]; token_id empty or 12 lowercase
 * hex digits; status 0..999 (0: no answer reached the client); stream 0 or
 * 1; partial a known reason; counts, cost and durations at most
 * RECORD_COUNT_MAX; ts_ms 0..RECORD_TS_MAX_MS. Names may hold any byte:
 * they are percent-encoded in keys. Returns 0, or -1 with *why (if why is
 * not NULL) set to a static reason. */
int record_validate(const struct usage_record *rec, const char **why);

/* The name of a partial reason: "" (complete), "client_gone",
 * "upstream_error", "truncated", "unparsed", "tap_overflow"; NULL if
 * unknown. */
const char *record_partial_name(enum usage_partial p);

/* The reason named by s (len bytes). Returns 0, or -1 if unknown. */
int record_partial_parse(const char *s, size_t len, enum usage_partial *p);

/* ---- Days ------------------------------------------------------------ */

/* The UTC day of ts_ms as "YYYYMMDD" into out. Returns 0, or -1 (out "")
 * when ts_ms is outside 0..RECORD_TS_MAX_MS. */
int record_day(int64_t ts_ms, char out[RECORD_DAY_LEN + 1]);

/* Parses "YYYY-MM-DD" (exactly, a real calendar date, year 1970..9999)
 * into "YYYYMMDD". Returns 0, or -1 (out ""). */
int record_day_parse(const char *s, char out[RECORD_DAY_LEN + 1]);

/* ---- Key segments ---------------------------------------------------- */

/* Writes the key segment of name: bytes of [A-Za-z0-9._@/+-] as they are,
 * every other byte as %XX (uppercase hex), RKEY_USAGE_NONE for "".
 * Returns the length (NUL not counted), or -1 if size is too small. */
int record_seg_encode(const char *name, char *out, size_t size);

/* Inverse of record_seg_encode over seg (len bytes): only its canonical
 * output is accepted (%XX uppercase and only for bytes that need it, no
 * %00). Returns the name's length (NUL-terminated in out), or -1. */
int record_seg_decode(const char *seg, size_t len, char *out, size_t size);

/* ---- Spool lines ----------------------------------------------------- */

/* Writes rec as one spool line, '\n' included, NUL after it:
 *   v1 TAB req_id TAB ts_ms TAB token TAB token_id TAB group TAB model TAB
 *   upstream_model TAB channel TAB server TAB status TAB stream TAB partial
 *   TAB input TAB output TAB cache_write_5m TAB cache_write_1h TAB
 *   cache_read TAB web_search TAB service_tier TAB flags TAB cost_nusd TAB
 *   ttfb_ms TAB duration_ms TAB crc32 LF
 * Strings escape '\\' '\t' '\n' '\r' as \\ \t \n \r; numbers are plain
 * decimal; partial is its name; crc32 is 8 lowercase hex digits of the
 * CRC-32 (IEEE) of every byte before its TAB. Returns the length (NUL not
 * counted), or -1 if rec is invalid or size too small
 * (RECORD_SPOOL_LINE_MAX always suffices). */
int record_spool_encode(const struct usage_record *rec, char *buf, size_t size);

/* Parses one spool line (len bytes, with or without its final '\n'; need
 * not be NUL-terminated) into *rec, which is zeroed first. Refuses an
 * unknown version, a wrong field count, a bad escape, a raw control byte
 * '\n' '\r' or NUL, a string too long for its field, a non-canonical or
 * overflowing number, a CRC mismatch (corruption, truncation) and a record
 * that fails record_validate(). Returns 0, or -1. */
int record_spool_decode(const char *line, size_t len, struct usage_record *rec);

#endif /* REALMS_RECORD_H */
