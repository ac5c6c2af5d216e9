/*
 * Usage records in Redis: the commit script and its argv, key segments,
 * UTC days, spool lines. Pure: no I/O (commit.c sends and spools them).
 * See record.h for the contracts and rkeys.h for the key layout.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <realms/budget.h>
#include <realms/limits.h>
#include <realms/record.h>
#include <realms/rkeys.h>

/* ---------------------------------------------------------------------- */
/* The script                                                             */
/* ---------------------------------------------------------------------- */

/*
 * Runs atomically in Redis (no other command in between) over a batch of
 * records. Redis does not roll a script back, so everything that can
 * refuse is checked for every record before the first write: age,
 * duplicate, key types, and that every counter to be incremented holds an
 * integer the sums cannot overflow. After that no write can fail. Field
 * names are spelled into the script's text from rkeys.h, the one place
 * that names them. Numbers come as strings and are summed in Lua's doubles
 * only while a sum stays at most RECORD_COUNT_MAX (2^53 - 1), where a
 * double is exact; past that the sum so far is written and a new one
 * starts. "%.0f" prints such a double exactly (tostring would round it to
 * 14 digits). Needs Redis >= 5 (streams, and scripts replicated by their
 * effects, which makes TIME and XADD * safe).
 *
 * The records of a batch share keys (the token's day hash, the day's
 * sets, the spend counters): each distinct key's type is checked once (a
 * counter's by the read that checks its value), and its increments are
 * summed and written once, which is what makes a
 * batch cheaper than its records one by one.
 *
 * KEYS  RECORD_NKEYS per record, record r's from (r - 1) * RECORD_NKEYS + 1:
 *       1 seen  2 token hash  3 model hash  4 channel hash  5 combo hash
 *       6 days  7 tokens:<day>  8 models:<day>  9 channels:<day>
 *       10 combos:<day>  11 events
 *       12 token's 5h spend  13 its day  14 week  15 month
 *       16 group's 5h spend  17 its day  18 week  19 month
 *       20 token's reservations  21 group's reservations  22 token in flight
 * ARGV  1 the number of records, then each record's section, where its
 *       j-th argument is:
 *       1 ts_ms  2 max age ms (0: no check)  3 seen TTL s  4 day
 *       5 token seg  6 model seg  7 channel seg  8 combo member
 *       9 events maxlen  10 cost nano-USD  11 minute bucket of ts_ms
 *       12 5h lifetime ms  13 day end  14 week end  15 month end (unix ms,
 *       grace included)  16 req_id  17-27 the counters of the day hashes,
 *       in CF's order (those at 0 are not written: an absent field reads as
 *       0)  28 token  29 token_id  30 group  31 model  32 upstream model
 *       33 channel  34 server  35 status  36 stream  37 partial  38 service
 *       tier  39 ttfb_ms  40 duration_ms (the names, as they are). The
 *       event's fields are EV's: names from rkeys.h, values from the
 *       section.
 * Reply: one RECORD_RC_* per record, in order; or an error, and then
 * nothing changed for any of them.
 * Settlement (docs/budgets.md): the cost goes to the spend counters of
 * the windows the request started in (a 5h bucket older than the window
 * is not written), and the request's reservations and in-flight slot,
 * which admission made under req_id, are dropped. A duplicate changes
 * nothing: its first copy did all of this. A req_id twice in one batch
 * counts once, like a duplicate.
 */
/* RECORD_COUNT_MAX as the script spells it. */
#define SCRIPT_COUNT_MAX 9007199254740991
_Static_assert(SCRIPT_COUNT_MAX == RECORD_COUNT_MAX, "the script's count limit");

/* Digits at most of a counter the script adds to: with what one batch can
 * add, it stays below int64's limit, so no HINCRBY or INCRBY fails. */
#define SCRIPT_COUNTER_DIGITS 18
_Static_assert(UINT64_C(999999999999999999) + RECORD_BATCH_MAX * RECORD_COUNT_MAX <= INT64_MAX,
               "a counter of SCRIPT_COUNTER_DIGITS digits takes a batch's sums");

static const char script[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local NK = " LIMIT_STR(RECORD_NKEYS) "\n"
	"local LIM = " LIMIT_STR(SCRIPT_COUNT_MAX) "\n"
	/* the type of each key but seen, by its index in the record's KEYS;
	 * the counters' (nil here) are checked where they are read */
	"local want = {nil, nil, nil, nil, 'zset', 'set', 'set', 'set', 'set', 'stream',\n"
	"  nil, nil, nil, nil, nil, nil, nil, nil, 'hash', 'hash', 'hash'}\n"
	"local CF = {'" RKEY_UF_REQUESTS "', '" RKEY_UF_ERRORS "', '" RKEY_UF_PARTIAL "',\n"
	"  '" RKEY_UF_ESTIMATED "', '" RKEY_UF_INPUT "', '" RKEY_UF_OUTPUT "', '" RKEY_UF_CACHE_WRITE_5M "',\n"
	"  '" RKEY_UF_CACHE_WRITE_1H "', '" RKEY_UF_CACHE_READ "', '" RKEY_UF_WEB_SEARCH "',\n"
	"  '" RKEY_UF_COST_NUSD "'}\n"
	"local EV = {{'" RKEY_UE_REQ_ID "', 16}, {'" RKEY_UE_TOKEN "', 28}, {'" RKEY_UE_TOKEN_ID "', 29},\n"
	"  {'" RKEY_UE_GROUP "', 30}, {'" RKEY_UE_MODEL "', 31}, {'" RKEY_UE_UPSTREAM_MODEL "', 32},\n"
	"  {'" RKEY_UE_CHANNEL "', 33}, {'" RKEY_UE_SERVER "', 34}, {'" RKEY_UE_STATUS "', 35},\n"
	"  {'" RKEY_UE_STREAM "', 36}, {'" RKEY_UE_PARTIAL "', 37}, {'" RKEY_UF_ESTIMATED "', 20},\n"
	"  {'" RKEY_UF_INPUT "', 21}, {'" RKEY_UF_OUTPUT "', 22}, {'" RKEY_UF_CACHE_WRITE_5M "', 23},\n"
	"  {'" RKEY_UF_CACHE_WRITE_1H "', 24}, {'" RKEY_UF_CACHE_READ "', 25}, {'" RKEY_UF_WEB_SEARCH "', 26},\n"
	"  {'" RKEY_UE_SERVICE_TIER "', 38}, {'" RKEY_UF_COST_NUSD "', 27}, {'" RKEY_UE_TTFB_MS "', 39},\n"
	"  {'" RKEY_UE_DURATION_MS "', 40}, {'" RKEY_UE_TS_MS "', 1}}\n"
	"local n = tonumber(ARGV[1])\n"
	"local rc, fresh, marked, typed = {}, {}, {}, {}\n"
	"local a = 1\n"
	"for r = 1, n do\n"
	"  local k0 = (r - 1) * NK\n"
	"  local age = tonumber(ARGV[a + 2])\n"
	"  local seen = KEYS[k0 + 1]\n"
	"  if age > 0 and tonumber(ARGV[a + 1]) < now - age then\n"
	"    rc[r] = -1\n"
	"  elseif marked[seen] or redis.call('EXISTS', seen) == 1 then\n"
	"    rc[r] = 0\n"
	"  else\n"
	"    rc[r] = 1\n"
	"    marked[seen] = true\n"
	"    fresh[#fresh + 1] = {k0, a}\n"
	"    for i = 1, NK - 1 do\n"
	"      local k = KEYS[k0 + i + 1]\n"
	"      if want[i] and not typed[k] then\n"
	"        typed[k] = true\n"
	"        local ty = redis.call('TYPE', k).ok\n"
	"        if ty ~= 'none' and ty ~= want[i] then\n"
	"          return redis.error_reply('realms usage: ' .. k .. ' is a ' .. ty .. ', not a ' .. want[i])\n"
	"        end\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"  a = a + " LIMIT_STR(RECORD_SECTION_ARGS) "\n"
	"end\n"
	/* sums[k][f]: HINCRBY (f a field) or INCRBY (f == ''), in first-seen
	 * order; a sum that would pass LIM leaves its part in spill */
	"local sums, fields, order, spill = {}, {}, {}, {}\n"
	"local function write(k, f, v)\n"
	"  if f == '' then redis.call('INCRBY', k, string.format('%.0f', v))\n"
	"  else redis.call('HINCRBY', k, f, string.format('%.0f', v)) end\n"
	"end\n"
	"local function add(k, f, v)\n"
	"  local h = sums[k]\n"
	"  if not h then h = {}; sums[k] = h; fields[k] = {}; order[#order + 1] = k end\n"
	"  local s = h[f]\n"
	"  if not s then local fl = fields[k]; fl[#fl + 1] = f; s = 0 end\n"
	"  if s + v > LIM then spill[#spill + 1] = {k, f, s}; s = 0 end\n"
	"  h[f] = s + v\n"
	"end\n"
	"local members, morder = {}, {}\n"
	"local function member(k, m)\n"
	"  local s = members[k]\n"
	"  if not s then s = {}; members[k] = s; morder[#morder + 1] = k end\n"
	"  if not s[m] then s[m] = true; s[#s + 1] = m end\n"
	"end\n"
	"local expire, expire_at, dels, dorder = {}, {}, {}, {}\n"
	"local function del(k, f)\n"
	"  if not dels[k] then dels[k] = {}; dorder[#dorder + 1] = k end\n"
	"  local d = dels[k]\n"
	"  d[#d + 1] = f\n"
	"end\n"
	"local oldest = math.floor(now / 60000) - " LIMIT_STR(BUDGET_5H_BUCKETS) "\n"
	"for _, f in ipairs(fresh) do\n"
	"  local k0, a = f[1], f[2]\n"
	"  for c = 1, #CF do\n"
	"    local v = tonumber(ARGV[a + 16 + c])\n"
	"    if v ~= 0 then for k = 2, 5 do add(KEYS[k0 + k], CF[c], v) end end\n"
	"  end\n"
	"  member(KEYS[k0 + 6], ARGV[a + 4])\n"
	"  for k = 7, 10 do member(KEYS[k0 + k], ARGV[a + k - 2]) end\n"
	"  local cost = tonumber(ARGV[a + 10])\n"
	"  if cost ~= 0 then\n"
	"    if tonumber(ARGV[a + 11]) > oldest then\n"
	"      for _, k in ipairs({KEYS[k0 + 12], KEYS[k0 + 16]}) do\n"
	"        add(k, ARGV[a + 11], cost)\n"
	"        expire[k] = ARGV[a + 12]\n"
	"      end\n"
	"    end\n"
	"    for w = 0, 2 do\n"
	"      if tonumber(ARGV[a + 13 + w]) > now then\n"
	"        for _, k in ipairs({KEYS[k0 + 13 + w], KEYS[k0 + 17 + w]}) do\n"
	"          add(k, '', cost)\n"
	"          expire_at[k] = ARGV[a + 13 + w]\n"
	"        end\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"  for k = 20, 22 do del(KEYS[k0 + k], ARGV[a + 16]) end\n"
	"end\n"
	/* Every counter written must hold an integer that the sums cannot
	 * push past int64 (SCRIPT_COUNTER_DIGITS): each is read, and checked,
	 * before the first write, so that a refused batch changes nothing.
	 * The read is also the check of the key's type. A hash's fields are
	 * read with HMGET, or with HGETALL where an older ACL rule of
	 * docs/redis.md does not grant HMGET. */
	"local hmget = true\n"
	"local function read(k, fl)\n"
	"  local r\n"
	"  if fl[1] == '' then\n"
	"    r = redis.pcall('GET', k)\n"
	"    if type(r) ~= 'table' then return {r} end\n"
	"  else\n"
	"    if hmget then\n"
	"      r = redis.pcall('HMGET', k, unpack(fl))\n"
	"      if not r.err then return r end\n"
	"      if string.sub(r.err, 1, 9) ~= 'WRONGTYPE' then hmget = false end\n"
	"    end\n"
	"    if not hmget then\n"
	"      r = redis.pcall('HGETALL', k)\n"
	"      if not r.err then\n"
	"        local h, v = {}, {}\n"
	"        for i = 1, #r, 2 do h[r[i]] = r[i + 1] end\n"
	"        for i = 1, #fl do v[i] = h[fl[i]] or false end\n"
	"        return v\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"  local kind, ty = fl[1] == '' and 'string' or 'hash', redis.call('TYPE', k).ok\n"
	"  if ty ~= kind and ty ~= 'none' then\n"
	"    return nil, 'realms usage: ' .. k .. ' is a ' .. ty .. ', not a ' .. kind\n"
	"  end\n"
	"  return nil, r.err\n"
	"end\n"
	"local old = {}\n"
	"for _, k in ipairs(order) do\n"
	"  local fl = fields[k]\n"
	"  local vals, err = read(k, fl)\n"
	"  if not vals then return redis.error_reply(err) end\n"
	"  for i = 1, #fl do\n"
	"    local v = vals[i]\n"
	/* as Redis itself reads an integer: no leading zero, no "-0" (HSET
	 * would take one, INCRBY would refuse it after the first write) */
	"    if v and not (#v <= " LIMIT_STR(SCRIPT_COUNTER_DIGITS) " and (v == '0' or\n"
	"        string.match(v, '^%-?[1-9]%d*$'))) then\n"
	"      return redis.error_reply('realms usage: ' .. k .. (fl[i] == '' and '' or ' ' .. fl[i]) ..\n"
	"        ' does not hold an integer the gateway can add to')\n"
	"    end\n"
	"  end\n"
	"  old[k] = vals\n"
	"end\n"
	"for _, f in ipairs(fresh) do\n"
	"  redis.call('SET', KEYS[f[1] + 1], ARGV[f[2] + 4], 'NX', 'EX', ARGV[f[2] + 3])\n"
	"end\n"
	"for _, p in ipairs(spill) do write(p[1], p[2], p[3]) end\n"
	/* A hash's new values in one HSET where old value and sum stay
	 * within LIM (a double adds them exactly); HINCRBY, exact in Redis,
	 * for the rest and for every field a spill already wrote to. */
	"local spilt = {}\n"
	"for _, p in ipairs(spill) do spilt[p[1]] = true end\n"
	"for _, k in ipairs(order) do\n"
	"  local h, fl, vals = sums[k], fields[k], old[k]\n"
	"  local set = {}\n"
	"  for i, f in ipairs(fl) do\n"
	"    local o = tonumber(vals[i] or 0)\n"
	"    if f ~= '' and not spilt[k] and o >= -LIM and o <= LIM and o + h[f] <= LIM then\n"
	"      set[#set + 1] = f\n"
	"      set[#set + 1] = string.format('%.0f', o + h[f])\n"
	"    else\n"
	"      write(k, f, h[f])\n"
	"    end\n"
	"  end\n"
	"  if #set > 0 then redis.call('HSET', k, unpack(set)) end\n"
	"  if expire[k] then redis.call('PEXPIRE', k, expire[k]) end\n"
	"  if expire_at[k] then redis.call('PEXPIREAT', k, expire_at[k]) end\n"
	"end\n"
	"for _, k in ipairs(morder) do\n"
	"  local s = members[k]\n"
	"  if k == KEYS[6] then\n"
	"    for _, m in ipairs(s) do redis.call('ZADD', k, m, m) end\n"
	"  else\n"
	"    redis.call('SADD', k, unpack(s))\n"
	"  end\n"
	"end\n"
	"for _, k in ipairs(dorder) do redis.call('HDEL', k, unpack(dels[k])) end\n"
	"for _, f in ipairs(fresh) do\n"
	"  local k0, a = f[1], f[2]\n"
	"  local ev = {}\n"
	"  for i, e in ipairs(EV) do ev[2 * i - 1] = e[1]; ev[2 * i] = ARGV[a + e[2]] end\n"
	"  redis.call('XADD', KEYS[k0 + 11], 'MAXLEN', '~', ARGV[a + 9], '*', unpack(ev))\n"
	"end\n"
	"return rc\n";

const char *record_script(size_t *len)
{
	if (len)
		*len = sizeof(script) - 1;
	return script;
}

/* ---------------------------------------------------------------------- */
/* Records                                                                */
/* ---------------------------------------------------------------------- */

static const char *const partial_names[] = {
	[USAGE_COMPLETE] = "",
	[USAGE_PARTIAL_CLIENT_GONE] = "client_gone",
	[USAGE_PARTIAL_UPSTREAM_ERROR] = "upstream_error",
	[USAGE_PARTIAL_TRUNCATED] = "truncated",
	[USAGE_PARTIAL_UNPARSED] = "unparsed",
	[USAGE_PARTIAL_TAP_OVERFLOW] = "tap_overflow",
};
#define N_PARTIAL (sizeof(partial_names) / sizeof(partial_names[0]))
_Static_assert(N_PARTIAL == USAGE_PARTIAL_KINDS, "a name for every partial reason");

const char *record_partial_name(enum usage_partial p)
{
	if ((unsigned)p >= N_PARTIAL)
		return NULL;
	return partial_names[p];
}

int record_partial_parse(const char *s, size_t len, enum usage_partial *p)
{
	size_t i;

	/* The name "unparsed" had before: spool lines written by an older
	 * agent still replay. */
	if (len == 10 && memcmp(s, "unparsable", 10) == 0) {
		*p = USAGE_PARTIAL_UNPARSED;
		return 0;
	}
	for (i = 0; i < N_PARTIAL; i++) {
		if (strlen(partial_names[i]) == len && memcmp(partial_names[i], s, len) == 0) {
			*p = (enum usage_partial)i;
			return 0;
		}
	}
	return -1;
}

#define TERMINATED(arr) (memchr((arr), '\0', sizeof(arr)) != NULL)

static bool req_id_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-';
}

int record_validate(const struct usage_record *rec, const char **why)
{
	const char *w = NULL;
	const unsigned char *s;
	size_t n;

	if (!TERMINATED(rec->req_id) || !TERMINATED(rec->token) ||
	    !TERMINATED(rec->token_id) || !TERMINATED(rec->group) ||
	    !TERMINATED(rec->model) || !TERMINATED(rec->upstream_model) ||
	    !TERMINATED(rec->channel) || !TERMINATED(rec->server) ||
	    !TERMINATED(rec->u.service_tier)) {
		w = "a string is not NUL-terminated within its field";
		goto bad;
	}
	if (!rec->req_id[0]) {
		w = "empty req_id";
		goto bad;
	}
	for (s = (const unsigned char *)rec->req_id; *s; s++) {
		if (!req_id_char(*s)) {
			w = "req_id has a character outside [A-Za-z0-9._:-]";
			goto bad;
		}
	}
	n = strlen(rec->token_id);
	if (n != 0) {
		/* The messages name the length. */
		_Static_assert(TOKEN_ID_LEN == 12, "token_id messages say 12");
		if (n != TOKEN_ID_LEN) {
			w = "token_id is not 12 hex digits";
			goto bad;
		}
		for (s = (const unsigned char *)rec->token_id; *s; s++) {
			if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) {
				w = "token_id is not 12 lowercase hex digits";
				goto bad;
			}
		}
	}
	if (rec->status < 0 || rec->status > 999) {
		w = "status out of 0..999";
		goto bad;
	}
	if (rec->stream != 0 && rec->stream != 1) {
		w = "stream is neither 0 nor 1";
		goto bad;
	}
	if (!record_partial_name(rec->partial)) {
		w = "unknown partial reason";
		goto bad;
	}
	if (rec->u.input > RECORD_COUNT_MAX || rec->u.output > RECORD_COUNT_MAX ||
	    rec->u.cache_write_5m > RECORD_COUNT_MAX ||
	    rec->u.cache_write_1h > RECORD_COUNT_MAX ||
	    rec->u.cache_read > RECORD_COUNT_MAX || rec->u.web_search > RECORD_COUNT_MAX ||
	    rec->cost_nusd > RECORD_COUNT_MAX || rec->ttfb_ms > RECORD_COUNT_MAX ||
	    rec->duration_ms > RECORD_COUNT_MAX) {
		w = "a count, cost or duration is above 2^53-1";
		goto bad;
	}
	if (rec->ts_ms < 0 || rec->ts_ms > RECORD_TS_MAX_MS) {
		w = "ts_ms out of range";
		goto bad;
	}
	return 0;
bad:
	if (why)
		*why = w;
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Days                                                                   */
/* ---------------------------------------------------------------------- */

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
 * civil_from_days; z >= 0 here). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t era, yy;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = z / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	yy = (int64_t)yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = yy + (*m <= 2);
}

int record_day(int64_t ts_ms, char out[RECORD_DAY_LEN + 1])
{
	int64_t y;
	unsigned m, d;

	out[0] = '\0';
	if (ts_ms < 0 || ts_ms > RECORD_TS_MAX_MS)
		return -1;
	civil_from_days(ts_ms / 86400000, &y, &m, &d);
	/* y is 1970..9999 by the range check: exactly 4 digits */
	out[0] = (char)('0' + y / 1000);
	out[1] = (char)('0' + y / 100 % 10);
	out[2] = (char)('0' + y / 10 % 10);
	out[3] = (char)('0' + y % 10);
	out[4] = (char)('0' + m / 10);
	out[5] = (char)('0' + m % 10);
	out[6] = (char)('0' + d / 10);
	out[7] = (char)('0' + d % 10);
	out[8] = '\0';
	return 0;
}

static bool is_leap(unsigned y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int record_day_parse(const char *s, char out[RECORD_DAY_LEN + 1])
{
	static const unsigned mdays[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	unsigned y = 0, m, d, dim;
	int i;

	out[0] = '\0';
	for (i = 0; i < 10; i++) {
		if (i == 4 || i == 7) {
			if (s[i] != '-')
				return -1;
		} else if (s[i] < '0' || s[i] > '9') {
			return -1;      /* also stops at the NUL of a short string */
		}
	}
	if (s[10] != '\0')
		return -1;
	for (i = 0; i < 4; i++)
		y = y * 10 + (unsigned)(s[i] - '0');
	m = (unsigned)(s[5] - '0') * 10 + (unsigned)(s[6] - '0');
	d = (unsigned)(s[8] - '0') * 10 + (unsigned)(s[9] - '0');
	if (y < 1970 || m < 1 || m > 12)
		return -1;
	dim = mdays[m - 1] + (m == 2 && is_leap(y));
	if (d < 1 || d > dim)
		return -1;
	memcpy(out, s, 4);
	memcpy(out + 4, s + 5, 2);
	memcpy(out + 6, s + 8, 2);
	out[8] = '\0';
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Key segments                                                           */
/* ---------------------------------------------------------------------- */

static bool seg_safe(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' ||
	       c == '/' || c == '+' || c == '-';
}

static const char hexu[] = "0123456789ABCDEF";

int record_seg_encode(const char *name, char *out, size_t size)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t n = 0;

	if (!*p) {
		if (size < sizeof(RKEY_USAGE_NONE))
			return -1;
		memcpy(out, RKEY_USAGE_NONE, sizeof(RKEY_USAGE_NONE));
		return (int)sizeof(RKEY_USAGE_NONE) - 1;
	}
	for (; *p; p++) {
		if (seg_safe(*p)) {
			if (n + 1 >= size)
				return -1;
			out[n++] = (char)*p;
		} else {
			if (n + 3 >= size)
				return -1;
			out[n++] = '%';
			out[n++] = hexu[*p >> 4];
			out[n++] = hexu[*p & 15];
		}
	}
	if (n >= size)
		return -1;
	out[n] = '\0';
	return (int)n;
}

static int hexval_upper(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int record_seg_decode(const char *seg, size_t len, char *out, size_t size)
{
	const char *p = seg, *end = seg + len;
	size_t n = 0;
	int hi, lo;
	unsigned char c;

	if (len == sizeof(RKEY_USAGE_NONE) - 1 && memcmp(seg, RKEY_USAGE_NONE, len) == 0) {
		if (size < 1)
			return -1;
		out[0] = '\0';
		return 0;
	}
	if (len == 0)
		return -1;          /* "" is never a segment */
	while (p < end) {
		if (*p == '%') {
			if (end - p < 3)
				return -1;
			hi = hexval_upper(p[1]);
			lo = hexval_upper(p[2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			if (c == 0 || seg_safe(c))
				return -1;  /* not what encode writes */
			p += 3;
		} else {
			c = (unsigned char)*p;
			if (!seg_safe(c))
				return -1;
			p++;
		}
		if (n + 1 >= size)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return (int)n;
}

/* ---------------------------------------------------------------------- */
/* The script's argv                                                      */
/* ---------------------------------------------------------------------- */

/* Appends one argument: the bytes printed by fmt, copied into a->buf.
 * A failure (no room) is sticky in a->argc = -1. */
#define arg_add rargv_add

static void arg_u64(struct rargv *a, uint64_t v)
{
	arg_add(a, "%" PRIu64, v);
}

static bool is_sha1(const char *s)
{
	int i;

	for (i = 0; i < 40; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	return s[40] == '\0';
}


int record_redis_argv(const struct usage_record *rec, const char *sha1,
                      int64_t max_age_ms, int tz_min, struct rargv *out)
{
	char tok[RECORD_SEG_MAX], mod[RECORD_SEG_MAX], chan[RECORD_SEG_MAX];
	char grp[RECORD_SEG_MAX];
	char day[RECORD_DAY_LEN + 1];
	struct budget_window w[BUDGET_USD_KINDS];
	const char *pname;
	int errors, partial, estimated;

	rargv_init(out);
	if (record_validate(rec, NULL) < 0 || (sha1 && !is_sha1(sha1)) || max_age_ms < 0)
		return -1;
	for (int k = 0; k < BUDGET_USD_KINDS; k++)
		if (budget_window((enum budget_kind)k, rec->ts_ms, tz_min, &w[k]) < 0)
			return -1;
	/* bounded by the fields' sizes: cannot fail for a valid record */
	if (record_seg_encode(rec->token, tok, sizeof(tok)) < 0 ||
	    record_seg_encode(rec->model, mod, sizeof(mod)) < 0 ||
	    record_seg_encode(rec->channel, chan, sizeof(chan)) < 0 ||
	    record_seg_encode(rec->group, grp, sizeof(grp)) < 0 ||
	    record_day(rec->ts_ms, day) < 0)
		return -1;
	pname = record_partial_name(rec->partial);
	partial = rec->partial != USAGE_COMPLETE;
	errors = rec->status >= 400 || partial;
	estimated = (rec->u.flags & USAGE_FL_ESTIMATED) != 0;

	if (sha1) {
		arg_add(out, "EVALSHA");
		arg_add(out, "%s", sha1);
	} else {
		arg_add(out, "EVAL");
		rargv_ref(out, script, sizeof(script) - 1);   /* static: not copied */
	}
	arg_add(out, "%d", RECORD_NKEYS);

	/* KEYS */
	arg_add(out, "%s%s", RKEY_USAGE_SEEN_PREFIX, rec->req_id);
	arg_add(out, "%s%s:%s", RKEY_USAGE_TOKEN_PREFIX, tok, day);
	arg_add(out, "%s%s:%s", RKEY_USAGE_MODEL_PREFIX, mod, day);
	arg_add(out, "%s%s:%s", RKEY_USAGE_CHANNEL_PREFIX, chan, day);
	arg_add(out, "%s%s:%s:%s:%s", RKEY_USAGE_COMBO_PREFIX, tok, mod, chan, day);
	arg_add(out, "%s", RKEY_USAGE_DAYS);
	arg_add(out, "%s%s", RKEY_USAGE_TOKENS_PREFIX, day);
	arg_add(out, "%s%s", RKEY_USAGE_MODELS_PREFIX, day);
	arg_add(out, "%s%s", RKEY_USAGE_CHANNELS_PREFIX, day);
	arg_add(out, "%s%s", RKEY_USAGE_COMBOS_PREFIX, day);
	arg_add(out, "%s", RKEY_USAGE_EVENTS);
	for (int g = 0; g < 2; g++)
		for (int k = 0; k < BUDGET_USD_KINDS; k++)
			arg_add(out, "%s%s:%s:%s", RKEY_SPEND_PREFIX, g ? "g" : "t", g ? grp : tok,
			        w[k].id);
	arg_add(out, "%st:%s", RKEY_RESV_PREFIX, tok);
	arg_add(out, "%sg:%s", RKEY_RESV_PREFIX, grp);
	arg_add(out, "%s%s", RKEY_INFLIGHT_PREFIX, tok);

	/* ARGV: a batch of one */
	arg_add(out, "1");
	arg_add(out, "%" PRId64, rec->ts_ms);
	arg_add(out, "%" PRId64, max_age_ms);
	arg_add(out, "%d", RECORD_SEEN_TTL_S);
	arg_add(out, "%s", day);
	arg_add(out, "%s", tok);
	arg_add(out, "%s", mod);
	arg_add(out, "%s", chan);
	arg_add(out, "%s:%s:%s", tok, mod, chan);
	arg_add(out, "%d", RECORD_EVENTS_MAXLEN);
	arg_add(out, "%" PRIu64, rec->cost_nusd);
	arg_add(out, "%" PRId64, budget_bucket(rec->ts_ms));
	arg_add(out, "%d", (BUDGET_5H_BUCKETS + 1) * 60000);
	for (int k = BUDGET_USD_DAY; k <= BUDGET_USD_MONTH; k++)
		arg_add(out, "%" PRId64, (int64_t)(w[k].end_ms + RECORD_SPEND_GRACE_MS));
	arg_add(out, "%s", rec->req_id);
	/* the counters, in the script's CF order */
	arg_u64(out, 1);
	arg_u64(out, (uint64_t)errors);
	arg_u64(out, (uint64_t)partial);
	arg_u64(out, (uint64_t)estimated);
	arg_u64(out, rec->u.input);
	arg_u64(out, rec->u.output);
	arg_u64(out, rec->u.cache_write_5m);
	arg_u64(out, rec->u.cache_write_1h);
	arg_u64(out, rec->u.cache_read);
	arg_u64(out, rec->u.web_search);
	arg_u64(out, rec->cost_nusd);
	/* the rest of the event */
	arg_add(out, "%s", rec->token);
	arg_add(out, "%s", rec->token_id);
	arg_add(out, "%s", rec->group);
	arg_add(out, "%s", rec->model);
	arg_add(out, "%s", rec->upstream_model);
	arg_add(out, "%s", rec->channel);
	arg_add(out, "%s", rec->server);
	arg_u64(out, (uint64_t)rec->status);
	arg_u64(out, (uint64_t)rec->stream);
	arg_add(out, "%s", pname);
	arg_add(out, "%s", rec->u.service_tier);
	arg_u64(out, rec->ttfb_ms);
	arg_u64(out, rec->duration_ms);

	if (out->argc >= 0 && out->argc != RECORD_ARGV_REC + RECORD_SECTION_ARGS)
		out->argc = -1;     /* the section's layout is wrong: caught by the tests */
	if (out->argc < 0) {
		rargv_init(out);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Batches                                                                */
/* ---------------------------------------------------------------------- */

void record_batch_init(struct record_batch *b)
{
	b->n = 0;
	b->argc = 0;
	b->used = 0;
}

int record_batch_add(struct record_batch *b, const struct usage_record *rec,
                     int64_t max_age_ms, int tz_min)
{
	struct rargv *one = &b->one;
	const char **keys = b->keys + b->n * RECORD_NKEYS;
	const char **args = b->args + b->n * RECORD_SECTION_ARGS;
	size_t *keylen = b->keylen + b->n * RECORD_NKEYS;
	size_t *arglen = b->arglen + b->n * RECORD_SECTION_ARGS;
	char *base;

	if (record_redis_argv(rec, NULL, max_age_ms, tz_min, one) < 0)
		return -1;
	if (b->n == RECORD_BATCH_MAX || one->used > sizeof(b->buf) - b->used)
		return 1;
	/* One record's call: EVAL script numkeys, its keys, "1", its section
	 * (record_redis_argv() checked its size). Its strings move to b->buf;
	 * the pointers follow them. */
	base = b->buf + b->used;
	memcpy(base, one->buf, one->used);
	for (int i = 0; i < RECORD_NKEYS; i++) {
		keys[i] = base + (one->argv[RECORD_ARGV_KEYS + i] - one->buf);
		keylen[i] = one->argvlen[RECORD_ARGV_KEYS + i];
	}
	for (int i = 0; i < RECORD_SECTION_ARGS; i++) {
		args[i] = base + (one->argv[RECORD_ARGV_REC + i] - one->buf);
		arglen[i] = one->argvlen[RECORD_ARGV_REC + i];
	}
	b->used += one->used;
	b->n++;
	return 0;
}

/* Appends n arguments to b's call. */
static void batch_put(struct record_batch *b, const char *const *v, const size_t *len, int n)
{
	memcpy(&b->argv[b->argc], v, (size_t)n * sizeof(*v));
	memcpy(&b->argvlen[b->argc], len, (size_t)n * sizeof(*len));
	b->argc += n;
}

int record_batch_argv(struct record_batch *b, const char *sha1)
{
	const char *head[3];
	size_t len[3];

	b->argc = -1;
	if (b->n == 0 || (sha1 && !is_sha1(sha1)))
		return -1;
	snprintf(b->head[0], sizeof(b->head[0]), "%d", b->n * RECORD_NKEYS);
	snprintf(b->head[1], sizeof(b->head[1]), "%d", b->n);
	head[0] = sha1 ? "EVALSHA" : "EVAL";
	head[1] = sha1 ? sha1 : script;
	head[2] = b->head[0];
	len[0] = strlen(head[0]);
	len[1] = sha1 ? 40 : sizeof(script) - 1;
	len[2] = strlen(head[2]);
	b->argc = 0;
	batch_put(b, head, len, 3);
	batch_put(b, b->keys, b->keylen, b->n * RECORD_NKEYS);
	head[0] = b->head[1];
	len[0] = strlen(head[0]);
	batch_put(b, head, len, 1);
	batch_put(b, b->args, b->arglen, b->n * RECORD_SECTION_ARGS);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Spool lines                                                            */
/* ---------------------------------------------------------------------- */

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320), bitwise: a spool line is
 * written once per request and read once per replay. */
static uint32_t crc32_ieee(const char *p, size_t n)
{
	uint32_t c = 0xFFFFFFFFu;
	int k;

	while (n--) {
		c ^= (unsigned char)*p++;
		for (k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
	}
	return ~c;
}

/* Output cursor over the caller's buffer; a failure is sticky (n = -1). */
struct sp_out {
	char *buf;
	size_t size;
	long n;
};

static void sp_put(struct sp_out *o, const char *s, size_t len)
{
	if (o->n < 0)
		return;
	if ((size_t)o->n + len >= o->size) {    /* keep room for the NUL */
		o->n = -1;
		return;
	}
	memcpy(o->buf + o->n, s, len);
	o->n += (long)len;
}

/* TAB then the escaped string. */
static void sp_str(struct sp_out *o, const char *s)
{
	const char *run = s;

	sp_put(o, "\t", 1);
	for (; *s; s++) {
		const char *esc = NULL;

		switch (*s) {
		case '\\': esc = "\\\\"; break;
		case '\t': esc = "\\t"; break;
		case '\n': esc = "\\n"; break;
		case '\r': esc = "\\r"; break;
		default: continue;
		}
		sp_put(o, run, (size_t)(s - run));
		sp_put(o, esc, 2);
		run = s + 1;
	}
	sp_put(o, run, (size_t)(s - run));
}

static void sp_u64(struct sp_out *o, uint64_t v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "\t%" PRIu64, v);

	sp_put(o, tmp, (size_t)n);
}

int record_spool_encode(const struct usage_record *rec, char *buf, size_t size)
{
	struct sp_out o = { buf, size, 0 };
	char crc[16];

	if (size)
		buf[0] = '\0';
	if (record_validate(rec, NULL) < 0)
		return -1;
	sp_put(&o, RECORD_SPOOL_VERSION, sizeof(RECORD_SPOOL_VERSION) - 1);
	sp_str(&o, rec->req_id);
	sp_u64(&o, (uint64_t)rec->ts_ms);
	sp_str(&o, rec->token);
	sp_str(&o, rec->token_id);
	sp_str(&o, rec->group);
	sp_str(&o, rec->model);
	sp_str(&o, rec->upstream_model);
	sp_str(&o, rec->channel);
	sp_str(&o, rec->server);
	sp_u64(&o, (uint64_t)rec->status);
	sp_u64(&o, (uint64_t)rec->stream);
	sp_str(&o, record_partial_name(rec->partial));
	sp_u64(&o, rec->u.input);
	sp_u64(&o, rec->u.output);
	sp_u64(&o, rec->u.cache_write_5m);
	sp_u64(&o, rec->u.cache_write_1h);
	sp_u64(&o, rec->u.cache_read);
	sp_u64(&o, rec->u.web_search);
	sp_str(&o, rec->u.service_tier);
	sp_u64(&o, rec->u.flags);
	sp_u64(&o, rec->cost_nusd);
	sp_u64(&o, rec->ttfb_ms);
	sp_u64(&o, rec->duration_ms);
	if (o.n < 0)
		goto fail;
	snprintf(crc, sizeof(crc), "\t%08" PRIx32 "\n", crc32_ieee(buf, (size_t)o.n));
	sp_put(&o, crc, 10);
	if (o.n < 0)
		goto fail;
	buf[o.n] = '\0';
	return (int)o.n;
fail:
	if (size)
		buf[0] = '\0';
	return -1;
}

/* Input cursor: the next field is [p, next TAB or end). */
struct sp_in {
	const char *p, *end;
};

/* Takes the next field into [*fs, *fe). Returns 0, or -1 when none is
 * left. Moves the cursor past the field and its TAB. */
static int sp_field(struct sp_in *in, const char **fs, const char **fe)
{
	const char *t;

	if (!in->p)
		return -1;
	t = memchr(in->p, '\t', (size_t)(in->end - in->p));
	*fs = in->p;
	*fe = t ? t : in->end;
	in->p = t ? t + 1 : NULL;   /* NULL: the last field was taken */
	return 0;
}

/* Unescapes the next field into dst (size bytes, NUL included). */
static int sp_get_str(struct sp_in *in, char *dst, size_t size)
{
	const char *s, *e;
	size_t n = 0;
	char c;

	if (sp_field(in, &s, &e) < 0)
		return -1;
	while (s < e) {
		c = *s++;
		if (c == '\n' || c == '\r' || c == '\0')
			return -1;
		if (c == '\\') {
			if (s == e)
				return -1;
			switch (*s++) {
			case '\\': c = '\\'; break;
			case 't': c = '\t'; break;
			case 'n': c = '\n'; break;
			case 'r': c = '\r'; break;
			default: return -1;
			}
		}
		if (n + 1 >= size)
			return -1;
		dst[n++] = c;
	}
	dst[n] = '\0';
	return 0;
}

/* A canonical decimal (no sign, no leading zero) up to max. */
static int sp_get_u64(struct sp_in *in, uint64_t max, uint64_t *v)
{
	const char *s, *e;
	uint64_t x = 0;
	unsigned d;

	if (sp_field(in, &s, &e) < 0 || s == e || (*s == '0' && e - s > 1))
		return -1;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned)(*s - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	if (x > max)
		return -1;
	*v = x;
	return 0;
}

int record_spool_decode(const char *line, size_t len, struct usage_record *rec)
{
	struct sp_in in;
	const char *tab, *s, *e;
	char pname[32];
	uint64_t v, crc;
	size_t i;

	memset(rec, 0, sizeof(*rec));
	if (len && line[len - 1] == '\n')
		len--;
	/* the CRC: 8 hex digits after the last TAB, over all that precedes */
	if (len < 10 || line[len - 9] != '\t')
		return -1;
	tab = line + len - 9;
	crc = 0;
	for (i = 1; i <= 8; i++) {
		char c = tab[i];

		if (c >= '0' && c <= '9')
			crc = crc << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			crc = crc << 4 | (uint64_t)(c - 'a' + 10);
		else
			return -1;
	}
	if (crc != crc32_ieee(line, (size_t)(tab - line)))
		return -1;

	in.p = line;
	in.end = tab;
	if (sp_field(&in, &s, &e) < 0 || (size_t)(e - s) != sizeof(RECORD_SPOOL_VERSION) - 1 ||
	    memcmp(s, RECORD_SPOOL_VERSION, sizeof(RECORD_SPOOL_VERSION) - 1) != 0)
		goto bad;
	if (sp_get_str(&in, rec->req_id, sizeof(rec->req_id)) < 0 ||
	    sp_get_u64(&in, (uint64_t)RECORD_TS_MAX_MS, &v) < 0)
		goto bad;
	rec->ts_ms = (int64_t)v;
	if (sp_get_str(&in, rec->token, sizeof(rec->token)) < 0 ||
	    sp_get_str(&in, rec->token_id, sizeof(rec->token_id)) < 0 ||
	    sp_get_str(&in, rec->group, sizeof(rec->group)) < 0 ||
	    sp_get_str(&in, rec->model, sizeof(rec->model)) < 0 ||
	    sp_get_str(&in, rec->upstream_model, sizeof(rec->upstream_model)) < 0 ||
	    sp_get_str(&in, rec->channel, sizeof(rec->channel)) < 0 ||
	    sp_get_str(&in, rec->server, sizeof(rec->server)) < 0 ||
	    sp_get_u64(&in, 999, &v) < 0)
		goto bad;
	rec->status = (int)v;
	if (sp_get_u64(&in, 1, &v) < 0)
		goto bad;
	rec->stream = (int)v;
	if (sp_get_str(&in, pname, sizeof(pname)) < 0 ||
	    record_partial_parse(pname, strlen(pname), &rec->partial) < 0 ||
	    sp_get_u64(&in, RECORD_COUNT_MAX, &rec->u.input) < 0 ||
	    sp_get_u64(&in, RECORD_COUNT_MAX, &rec->u.output) < 0 ||
	    sp_get_u64(&in, RECORD_COUNT_MAX, &rec->u.cache_write_5m) < 0 ||
	    sp_get_u64(&in, RECORD_COUNT_MAX, &rec->u.cache_write_1h) < 0 ||
	    sp_get_u64(&in, RECORD_COUNT_MAX, &rec->u.cache_read) < 0 ||
	    sp_get_u64(&in, RECORD_COUNT_MAX, &rec->u.web_search) < 0 ||
	    sp_get_str(&in, rec->u.service_tier, sizeof(rec->u.service_tier)) < 0 ||
	    sp_get_u64(&in, UINT_MAX, &v) < 0)
		goto bad;
	rec->u.flags = (unsigned int)v;
	if (sp_get_u64(&in, RECORD_COUNT_MAX, &rec->cost_nusd) < 0 ||
	    sp_get_u64(&in, RECORD_COUNT_MAX, &rec->ttfb_ms) < 0 ||
	    sp_get_u64(&in, RECORD_COUNT_MAX, &rec->duration_ms) < 0)
		goto bad;
	if (in.p != NULL)       /* fields left over */
		goto bad;
	if (record_validate(rec, NULL) < 0)
		goto bad;
	return 0;
bad:
	memset(rec, 0, sizeof(*rec));
	return -1;
}
