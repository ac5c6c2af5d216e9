#!/usr/bin/env bash
# realms-test: no-agent
# Usage records end to end, against a private Redis:
# - spool lines (sealed by record_push -s) committed with the agent's argv
#   and script (record_push), and once through plain redis-cli EVAL
#   (record_push -n | xargs -0 redis-cli);
# - pushing everything again changes nothing (idempotent per req_id);
# - a record older than RECORD_MAX_AGE_MS is refused unless -A;
# - the key layout of docs/redis.md (hashes, indexes, stream, seen TTL);
# - realmsctl usage: exact table and --json sums across midnight and a leap
#   day, filters alone and combined, odd names, empty ranges (zeros), the
#   default range, usage errors (2) and Redis down (1).
. "$(dirname "$0")/lib.sh"

CTL="$REALMS_BIN/realmsctl"
PUSH="$REALMS_BIN/record_push"
[ -x "$CTL" ] || { fail "no realmsctl at $CTL"; finish; }
[ -x "$PUSH" ] || { fail "no record_push at $PUSH"; finish; }

start_redis || { fail "redis did not start"; finish; }
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"

# ctl ARGS...: runs realmsctl; sets OUT, ERR and RC.
ctl() {
	OUT=$("$CTL" "$@" 2>"$T_DIR/err")
	RC=$?
	ERR=$(cat "$T_DIR/err")
}

# dump_usage: every usage key with its contents (a stream by its name only:
# its entry ids are times), sorted.
dump_usage() {
	rcli --scan --pattern 'realms:usage:*' | sort | while read -r k; do
		case "$(rcli TYPE "$k")" in
			hash) echo "$k $(rcli HGETALL "$k" | paste -sd,)" ;;
			set) echo "$k $(rcli SMEMBERS "$k" | sort | paste -sd,)" ;;
			zset) echo "$k $(rcli ZRANGE "$k" 0 -1 WITHSCORES | paste -sd,)" ;;
			*) echo "$k" ;;
		esac
	done
}

# rec FIELD...: one spool line body (v1 and the 23 fields, no CRC).
rec() {
	local IFS=$'\t'
	printf 'v1\t%s\n' "$*"
}

# The records. Fields: req_id ts_ms token token_id group model
# upstream_model channel server status stream partial input output
# cache_write_5m cache_write_1h cache_read web_search service_tier flags
# cost_nusd ttfb_ms duration_ms. Days: it-1 2024-02-28 (last ms), it-2,
# it-3, it-5 2024-02-29 (leap day, first and last ms), it-4, it-6
# 2024-03-01.
{
	rec it-1 1709164799999 alice aaaaaaaaaaaa default claude-sonnet-4-5 \
		claude-sonnet-4-5-20250929 anthropic anthropic--k1 200 1 '' \
		1000 200 10 20 300 0 standard 7 4500000 500 3000
	rec it-2 1709164800000 alice aaaaaaaaaaaa default claude-haiku-4-5 \
		claude-haiku-4-5 anthropic anthropic--k2 200 0 '' \
		100 50 0 0 0 1 standard 1 1234567 200 900
	rec it-3 1709208000000 bob bbbbbbbbbbbb research claude-sonnet-4-5 \
		claude-sonnet-4-5 backup backup--main 529 1 upstream_error \
		10 1 0 0 0 0 '' 9 999 100 150
	rec it-4 1709251200000 bob bbbbbbbbbbbb research 'vendor/model[1m]' \
		vendor/model anthropic anthropic--k1 200 1 client_gone \
		7 3 0 0 2 0 standard 3 1500 50 60000
	rec it-5 1709251199999 '' '' '' claude-sonnet-4-5 '' '' '' 401 0 '' \
		0 0 0 0 0 0 '' 0 0 1 1
	rec it-6 1709251200001 'carol ops:1' cccccccccccc default claude-sonnet-4-5 \
		claude-sonnet-4-5 anthropic anthropic--k2 200 1 '' \
		5 5 5 5 5 5 priority 7 1000000000 10 20
} >"$T_DIR/body"
"$PUSH" -s <"$T_DIR/body" >"$T_DIR/spool"
assert_eq "$?" 0 "record_push -s seals the lines"
assert_eq "$(wc -l <"$T_DIR/spool")" 6 "six spool lines"

# ---- age check: without -A, 2024 is too old and nothing is written --------
OUT=$("$PUSH" <"$T_DIR/spool" 2>"$T_DIR/err")
assert_eq "$?" 0 "push of old records exits 0"
assert_eq "$(grep -c '^too-old it-' <<<"$OUT")" 6 "each old record is too old"
assert_eq "$(rcli DBSIZE)" 0 "too-old records wrote nothing"

# ---- first push --------------------------------------------------------
OUT=$("$PUSH" -A <"$T_DIR/spool" 2>"$T_DIR/err")
assert_eq "$?" 0 "push exits 0"
assert_eq "$OUT" "$(printf 'recorded it-%s\n' 1 2 3 4 5 6)" "every record recorded, in order"
DBSIZE1=$(rcli DBSIZE)
XLEN1=$(rcli XLEN realms:usage:events)
assert_eq "$XLEN1" 6 "one event per record"

# ---- second push: nothing changes ---------------------------------------
dump_usage >"$T_DIR/dump1"

# ---- the same records in batches: the same keys, fields and values --------
# (the agent commits the records that wait together in one script call)
rcli FLUSHALL >/dev/null
OUT=$("$PUSH" -A -b 4 <"$T_DIR/spool" 2>"$T_DIR/err")
assert_eq "$OUT" "$(printf 'recorded it-%s\n' 1 2 3 4 5 6)" \
	"batches of 4 and 2: every record recorded, in order"
dump_usage >"$T_DIR/dump-b"
assert_eq "$(cmp -s "$T_DIR/dump1" "$T_DIR/dump-b" && echo same)" same \
	"batched: every hash, set and zset as one by one"
assert_eq "$(rcli XLEN realms:usage:events)" "$XLEN1" "batched: one event per record"
assert_eq "$(rcli DBSIZE)" "$DBSIZE1" "batched: the same keys"
OUT=$("$PUSH" -A <"$T_DIR/spool" 2>"$T_DIR/err")
assert_eq "$?" 0 "second push exits 0"
assert_eq "$OUT" "$(printf 'duplicate it-%s\n' 1 2 3 4 5 6)" "every record a duplicate"
assert_eq "$(rcli DBSIZE)" "$DBSIZE1" "no new key"
assert_eq "$(rcli XLEN realms:usage:events)" "$XLEN1" "no new event"
dump_usage >"$T_DIR/dump2"
assert_eq "$(cmp -s "$T_DIR/dump1" "$T_DIR/dump2" && echo same)" same \
	"every hash, set and zset identical after the replay"
# a replay mixing old and new lines counts only the new one (it-7 and
# it-8 are on 2024-03-10, out of the ranges summed below)
rec it-7 1710028800000 alice aaaaaaaaaaaa default claude-haiku-4-5 \
	claude-haiku-4-5 anthropic anthropic--k1 200 0 '' 1 1 0 0 0 0 '' 0 2 1 1 \
	| "$PUSH" -s >"$T_DIR/it7"
OUT=$(cat "$T_DIR/spool" "$T_DIR/it7" | "$PUSH" -A 2>"$T_DIR/err")
assert_eq "$(grep -c '^duplicate' <<<"$OUT") $(grep -c '^recorded it-7$' <<<"$OUT")" "6 1" \
	"replay with one new line: six duplicates, one recorded"

# ---- plain redis-cli runs the same script with the same argv -------------
rec it-8 1710028800001 alice aaaaaaaaaaaa default claude-haiku-4-5 \
	claude-haiku-4-5 anthropic anthropic--k1 200 0 '' 1 1 0 0 0 0 '' 0 3 1 1 \
	| "$PUSH" -s >"$T_DIR/it8"
OUT=$("$PUSH" -n -A <"$T_DIR/it8" | xargs -0 redis-cli -p "$REDIS_PORT")
assert_eq "$OUT" 1 "redis-cli EVAL of the built argv records (1)"
OUT=$("$PUSH" -n -A <"$T_DIR/it8" | xargs -0 redis-cli -p "$REDIS_PORT")
assert_eq "$OUT" 0 "redis-cli EVAL again: duplicate (0)"
OUT=$("$PUSH" -A <"$T_DIR/it8")
assert_eq "$OUT" "duplicate it-8" "hiredis EVALSHA after redis-cli: duplicate"
DBSIZE2=$(rcli DBSIZE)
# ---- bad lines ---------------------------------------------------------
sed -n 1p "$T_DIR/spool" | sed 's/\talice\t/\talicf\t/' >"$T_DIR/bad"
"$PUSH" -A <"$T_DIR/bad" >/dev/null 2>"$T_DIR/err"
assert_eq "$?" 1 "a corrupted line exits 1"
assert_match "$(cat "$T_DIR/err")" "line 1: not a valid spool line" "and is named"
head -c 100 "$T_DIR/spool" | "$PUSH" -A >/dev/null 2>&1
assert_eq "$?" 1 "a truncated line exits 1"
sed -n 1p "$T_DIR/body" | sed 's/^v1/v9/' | "$PUSH" -s | "$PUSH" -A >/dev/null 2>&1
assert_eq "$?" 1 "an unknown version exits 1"
assert_eq "$(rcli DBSIZE)" "$DBSIZE2" "bad lines wrote nothing"

# ---- the layout --------------------------------------------------------
assert_eq "$(rcli HGET realms:usage:token:alice:20240228 input)" 1000 "token hash, day of it-1"
assert_eq "$(rcli HMGET realms:usage:token:alice:20240229 requests errors input cost_nusd | paste -sd,)" \
	"1,,100,1234567" "token hash after midnight: it-2 only (no error: no field)"
assert_eq "$(rcli HGETALL 'realms:usage:model:vendor/model%5B1m%5D:20240301' | paste -sd,)" \
	"requests,1,errors,1,partial,1,input,7,output,3,cache_read,2,cost_nusd,1500" \
	"model hash with a percent-encoded name, every field not at 0"
assert_eq "$(rcli HGET 'realms:usage:token:carol%20ops%3A1:20240301' cost_nusd)" 1000000000 \
	"token name with ':' and space encoded"
assert_eq "$(rcli HGET 'realms:usage:channel:(none):20240229' errors)" 1 "empty channel is (none)"
assert_eq "$(rcli ZRANGE realms:usage:days 0 -1 WITHSCORES | paste -sd,)" \
	"20240228,20240228,20240229,20240229,20240301,20240301,20240310,20240310" \
	"days zset, scored by day"
assert_eq "$(rcli ZRANGEBYSCORE realms:usage:days 20240229 20240229)" 20240229 "days by range"
assert_eq "$(rcli SMEMBERS realms:usage:tokens:20240229 | sort | paste -sd,)" "(none),alice,bob" \
	"tokens of a day"
assert_eq "$(rcli SMEMBERS realms:usage:models:20240301 | sort | paste -sd,)" \
	"claude-sonnet-4-5,vendor/model%5B1m%5D" "models of a day (segments)"
assert_eq "$(rcli SMEMBERS realms:usage:channels:20240229 | sort | paste -sd,)" "(none),anthropic,backup" \
	"channels of a day"
assert_eq "$(rcli SMEMBERS realms:usage:combos:20240301 | sort | paste -sd,)" \
	"bob:vendor/model%5B1m%5D:anthropic,carol%20ops%3A1:claude-sonnet-4-5:anthropic" "combos of a day"
assert_eq "$(rcli GET realms:usage:seen:it-3)" 20240229 "seen holds the day"
ttl=$(rcli TTL realms:usage:seen:it-3)
assert_match "$(( ttl > 2592000 - 60 && ttl <= 2592000 ))" '^1$' "seen expires after 30 days"
ev=$(rcli XRANGE realms:usage:events - + COUNT 1 | tail -n +2 | paste -sd,)
assert_eq "$ev" "req_id,it-1,token,alice,token_id,aaaaaaaaaaaa,group,default,model,claude-sonnet-4-5,upstream_model,claude-sonnet-4-5-20250929,channel,anthropic,server,anthropic--k1,status,200,stream,1,partial,,estimated,0,input,1000,output,200,cache_write_5m,10,cache_write_1h,20,cache_read,300,web_search,0,service_tier,standard,cost_nusd,4500000,ttfb_ms,500,duration_ms,3000,ts_ms,1709164799999" \
	"event of it-1, every field"
assert_match "$(rcli XREVRANGE realms:usage:events + - COUNT 9 | paste -sd,)" \
	"req_id,it-4,token,bob,.*,partial,client_gone," "event of a partial names the reason"

# ---- realmsctl usage: table ----------------------------------------------
ctl usage --since 2024-02-28 --until 2024-03-01
assert_eq "$RC" 0 "usage exits 0"
EXP=$(cat <<'EOF'
usage from 2024-02-28 to 2024-03-01 (UTC days, inclusive); filters: none
KIND     NAME               REQUESTS  ERRORS  PARTIAL  INPUT  OUTPUT  CACHE_W5M  CACHE_W1H  CACHE_READ  WEB_SEARCH  COST_USD
total    all                       6       3        2   1122     259         15         25         307           6  1.005737
token    (none)                    1       1        0      0       0          0          0           0           0  0.000000
token    alice                     2       0        0   1100     250         10         20         300           1  0.005735
token    bob                       2       2        2     17       4          0          0           2           0  0.000002
token    carol ops:1               1       0        0      5       5          5          5           5           5  1.000000
model    claude-haiku-4-5          1       0        0    100      50          0          0           0           1  0.001235
model    claude-sonnet-4-5         4       2        1   1015     206         15         25         305           5  1.004501
model    vendor/model[1m]          1       1        1      7       3          0          0           2           0  0.000002
channel  (none)                    1       1        0      0       0          0          0           0           0  0.000000
channel  anthropic                 4       1        1   1112     258         15         25         307           6  1.005736
channel  backup                    1       1        1     10       1          0          0           0           0  0.000001
EOF
)
assert_eq "$OUT" "$EXP" "table: exact sums, rounding half up to the micro-dollar"

# ---- realmsctl usage: JSON -------------------------------------------------
ctl usage --since 2024-02-28 --until 2024-03-01 --json
assert_eq "$RC" 0 "usage --json exits 0"
EXP=$(cat <<'EOF'
{
  "since": "2024-02-28",
  "until": "2024-03-01",
  "filters": {"token": null, "model": null, "channel": null},
  "total": {"requests": 6, "errors": 3, "partial": 2, "input": 1122, "output": 259, "cache_write_5m": 15, "cache_write_1h": 25, "cache_read": 307, "web_search": 6, "cost_nusd": 1005737066},
  "by_token": {
    "": {"requests": 1, "errors": 1, "partial": 0, "input": 0, "output": 0, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 0, "web_search": 0, "cost_nusd": 0},
    "alice": {"requests": 2, "errors": 0, "partial": 0, "input": 1100, "output": 250, "cache_write_5m": 10, "cache_write_1h": 20, "cache_read": 300, "web_search": 1, "cost_nusd": 5734567},
    "bob": {"requests": 2, "errors": 2, "partial": 2, "input": 17, "output": 4, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 2, "web_search": 0, "cost_nusd": 2499},
    "carol ops:1": {"requests": 1, "errors": 0, "partial": 0, "input": 5, "output": 5, "cache_write_5m": 5, "cache_write_1h": 5, "cache_read": 5, "web_search": 5, "cost_nusd": 1000000000}
  },
  "by_model": {
    "claude-haiku-4-5": {"requests": 1, "errors": 0, "partial": 0, "input": 100, "output": 50, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 0, "web_search": 1, "cost_nusd": 1234567},
    "claude-sonnet-4-5": {"requests": 4, "errors": 2, "partial": 1, "input": 1015, "output": 206, "cache_write_5m": 15, "cache_write_1h": 25, "cache_read": 305, "web_search": 5, "cost_nusd": 1004500999},
    "vendor/model[1m]": {"requests": 1, "errors": 1, "partial": 1, "input": 7, "output": 3, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 2, "web_search": 0, "cost_nusd": 1500}
  },
  "by_channel": {
    "": {"requests": 1, "errors": 1, "partial": 0, "input": 0, "output": 0, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 0, "web_search": 0, "cost_nusd": 0},
    "anthropic": {"requests": 4, "errors": 1, "partial": 1, "input": 1112, "output": 258, "cache_write_5m": 15, "cache_write_1h": 25, "cache_read": 307, "web_search": 6, "cost_nusd": 1005736067},
    "backup": {"requests": 1, "errors": 1, "partial": 1, "input": 10, "output": 1, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 0, "web_search": 0, "cost_nusd": 999}
  }
}
EOF
)
assert_eq "$OUT" "$EXP" "json: exact sums, integer cost_nusd"
if command -v jq >/dev/null; then
	assert_eq "$(jq -c '[.total.requests, .by_token.bob.cost_nusd, (.by_model | keys)]' <<<"$OUT")" \
		'[6,2499,["claude-haiku-4-5","claude-sonnet-4-5","vendor/model[1m]"]]' "json parses (jq)"
fi

# jt ARGS...: the compact "total" of realmsctl usage --json ARGS.
jt() {
	"$CTL" usage --json "$@" | sed -n 's/^  "total": //p' | sed 's/,$//'
}
# zero totals
Z='{"requests": 0, "errors": 0, "partial": 0, "input": 0, "output": 0, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 0, "web_search": 0, "cost_nusd": 0}'

# ---- filters -------------------------------------------------------------
R=(--since 2024-02-28 --until 2024-03-01)
assert_eq "$(jt "${R[@]}" --token alice)" \
	'{"requests": 2, "errors": 0, "partial": 0, "input": 1100, "output": 250, "cache_write_5m": 10, "cache_write_1h": 20, "cache_read": 300, "web_search": 1, "cost_nusd": 5734567}' \
	"--token alice"
assert_eq "$(jt "${R[@]}" --model claude-sonnet-4-5 --channel anthropic)" \
	'{"requests": 2, "errors": 0, "partial": 0, "input": 1005, "output": 205, "cache_write_5m": 15, "cache_write_1h": 25, "cache_read": 305, "web_search": 5, "cost_nusd": 1004500000}' \
	"--model and --channel combine"
assert_eq "$(jt "${R[@]}" --token bob --model 'vendor/model[1m]')" \
	'{"requests": 1, "errors": 1, "partial": 1, "input": 7, "output": 3, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 2, "web_search": 0, "cost_nusd": 1500}' \
	"--token and an odd --model"
assert_eq "$(jt "${R[@]}" --token 'carol ops:1' | grep -o '"cost_nusd": [0-9]*')" '"cost_nusd": 1000000000' \
	"--token with ':' and space"
assert_eq "$(jt "${R[@]}" --token '')" \
	'{"requests": 1, "errors": 1, "partial": 0, "input": 0, "output": 0, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 0, "web_search": 0, "cost_nusd": 0}' \
	"--token '' is the (none) token"
assert_eq "$(jt "${R[@]}" --token alice --channel backup)" "$Z" "filters matching nothing: zeros"
assert_eq "$(jt "${R[@]}" --token nobody)" "$Z" "unknown token: zeros"
ctl usage "${R[@]}" --token bob --json
assert_match "$OUT" '"filters": \{"token": "bob", "model": null, "channel": null\}' "json names the filters"
assert_match "$OUT" '"by_token": \{'$'\n''    "bob": ' "breakdown narrowed to bob"
assert_match "$OUT" '"by_channel": \{'$'\n''    "anthropic": \{"requests": 1, [^'$'\n'']*'$'\n''    "backup": \{"requests": 1,' \
	"bob's channels"
ctl usage "${R[@]}" --model claude-haiku-4-5
assert_eq "$(grep -c . <<<"$OUT")" 6 "table with a filter: header lines, total, one row per kind"
assert_match "$OUT" "filters: model=claude-haiku-4-5" "table names the filter"

# ---- ranges --------------------------------------------------------------
assert_eq "$(jt --since 2024-02-29 --until 2024-02-29 | grep -o '"requests": [0-9]*')" \
	'"requests": 3' "the leap day alone: it-2, it-3, it-5"
assert_eq "$(jt --since 2024-02-28 --until 2024-02-28 | grep -o '"input": [0-9]*')" \
	'"input": 1000' "the day before midnight: it-1 only"
assert_eq "$(jt --since 2024-03-01 --until 2024-12-31 | grep -o '"requests": [0-9]*')" \
	'"requests": 4' "a longer range: it-4, it-6, it-7, it-8"
assert_eq "$(jt --since 2023-01-01 --until 2023-12-31)" "$Z" "empty range: json zeros"
ctl usage --since 2023-01-01 --until 2023-12-31 --json
assert_match "$OUT" '"by_token": \{\},'$'\n''  "by_model": \{\},'$'\n''  "by_channel": \{\}' \
	"empty range: empty breakdowns"
ctl usage --since 2023-01-01 --until 2023-12-31
assert_eq "$RC" 0 "empty range exits 0"
assert_match "$OUT" $'\n''total +all +0 +0 +0 +0 +0 +0 +0 +0 +0 +0\.000000$' "empty range: table zeros"

# ---- the default range: 30 days ago to today ---------------------------
now_ms=$(( $(date +%s) * 1000 ))
rec it-now "$now_ms" alice aaaaaaaaaaaa default claude-haiku-4-5 claude-haiku-4-5 \
	anthropic anthropic--k1 200 1 '' 3 4 0 0 0 0 '' 0 42 1 1 | "$PUSH" -s >"$T_DIR/now"
assert_eq "$("$PUSH" <"$T_DIR/now")" "recorded it-now" "a current record passes the age check"
ctl usage --json
assert_match "$OUT" "\"since\": \"$(date -u -d '30 days ago' +%F)\", *"$'\n'"  \"until\": \"$(date -u +%F)\"" \
	"default range: 30 days ago to today"
assert_eq "$(jt)" \
	'{"requests": 1, "errors": 0, "partial": 0, "input": 3, "output": 4, "cache_write_5m": 0, "cache_write_1h": 0, "cache_read": 0, "web_search": 0, "cost_nusd": 42}' \
	"default range: only the current record"

# ---- reports: --by and --csv ----------------------------------------------
# csv_check CSV JSON: parses CSV (RFC 4180) with python's csv module and
# checks it against the --json output of the same query: CRLF line ends,
# the header, one row per group (equal to JSON's groups, in order), each
# cost_usd the exact decimal of its cost_nusd, and every column summed equal
# to JSON's total, to the nano-dollar. Prints "ok" or what differs.
csv_check() {
	python3 - "$1" "$2" <<'PY'
import csv, io, json, sys
from decimal import Decimal
raw = open(sys.argv[1], 'rb').read().decode()
j = json.load(open(sys.argv[2]))
C = ["requests", "errors", "partial", "input", "output", "cache_write_5m",
     "cache_write_1h", "cache_read", "web_search", "cost_nusd"]
rows = list(csv.reader(io.StringIO(raw, newline="")))
# every record ends with CRLF: the rows written back with that dialect are
# the same bytes (this also checks the quoting is the minimal RFC 4180 one)
out = io.StringIO(newline="")
csv.writer(out, lineterminator="\r\n").writerows(rows)
if out.getvalue() != raw:
    sys.exit(print("not RFC 4180 with CRLF:", repr(raw[:200])))
by = j.get("by", [])
if rows[0] != by + C + ["cost_usd"]:
    sys.exit(print("header", rows[0]))
body = rows[1:]
want = j["groups"] if by else [dict(j["total"])]
if len(body) != len(want):
    sys.exit(print("rows", len(body), "groups", len(want)))
tot = dict.fromkeys(C, 0)
usd = Decimal(0)
for r, g in zip(body, want):
    for i, d in enumerate(by):
        if r[i] != g[d]:
            sys.exit(print("group", r[:len(by)], "is not", g))
    for i, c in enumerate(C):
        v = int(r[len(by) + i])
        tot[c] += v
        if v != g[c]:
            sys.exit(print("row", r, "is not", g))
    if Decimal(r[-1]) != Decimal(int(r[-2])) / Decimal(10**9) or len(r[-1].split(".")[1]) != 9:
        sys.exit(print("cost_usd", r[-1], "is not", r[-2], "nano-USD"))
    usd += Decimal(r[-1])
if tot != j["total"] or usd * 10**9 != j["total"]["cost_nusd"]:
    sys.exit(print("sums", tot, usd, "total", j["total"]))
for k, d in (("by_token", "token"), ("by_model", "model"), ("by_channel", "channel")):
    if by == [d] and {g[d]: {c: g[c] for c in C} for g in j["groups"]} != j[k]:
        sys.exit(print("groups differ from", k))
print("ok")
PY
}
for by in token model channel day day,token token,day model,channel \
	channel,token,model day,token,model,channel; do
	"$CTL" usage "${R[@]}" --by "$by" --csv >"$T_DIR/csv"
	assert_eq "$?" 0 "--by $by --csv exits 0"
	"$CTL" usage "${R[@]}" --by "$by" --json >"$T_DIR/json"
	assert_eq "$(csv_check "$T_DIR/csv" "$T_DIR/json")" ok \
		"--by $by: CSV rows = JSON groups, sums = JSON total to the nano-dollar"
done
ctl usage "${R[@]}" --by day,token
EXP=$(cat <<'EOF'
usage from 2024-02-28 to 2024-03-01 (UTC days, inclusive); filters: none; by: day,token
DAY         TOKEN        REQUESTS  ERRORS  PARTIAL  INPUT  OUTPUT  CACHE_W5M  CACHE_W1H  CACHE_READ  WEB_SEARCH  COST_USD
2024-02-28  alice               1       0        0   1000     200         10         20         300           0  0.004500
2024-02-29  (none)              1       1        0      0       0          0          0           0           0  0.000000
2024-02-29  alice               1       0        0    100      50          0          0           0           1  0.001235
2024-02-29  bob                 1       1        1     10       1          0          0           0           0  0.000001
2024-03-01  bob                 1       1        1      7       3          0          0           2           0  0.000002
2024-03-01  carol ops:1         1       0        0      5       5          5          5           5           5  1.000000
(total)                         6       3        2   1122     259         15         25         307           6  1.005737
EOF
)
assert_eq "$OUT" "$EXP" "--by day,token table: one row per day and token, then the total"
ctl usage "${R[@]}" --by model,day --json
assert_match "$OUT" '"by": \["model", "day"\],'$'\n''  "groups": \['$'\n''    \{"model": "claude-haiku-4-5", "day": "2024-02-29", "requests": 1, ' \
	"--by model,day --json: by and groups, in --by order"
assert_match "$OUT" '"total": \{"requests": 6, [^'$'\n'']*"cost_nusd": 1005737066\}' \
	"--by does not change the total"
ctl usage "${R[@]}" --csv
assert_eq "$OUT" "$(printf 'requests,errors,partial,input,output,cache_write_5m,cache_write_1h,cache_read,web_search,cost_nusd,cost_usd\r\n6,3,2,1122,259,15,25,307,6,1005737066,1.005737066\r')" \
	"--csv without --by: the header and the total, exact USD"
ctl usage "${R[@]}" --token bob --by channel --csv
assert_eq "$OUT" "$(printf 'channel,requests,errors,partial,input,output,cache_write_5m,cache_write_1h,cache_read,web_search,cost_nusd,cost_usd\r\nanthropic,1,1,1,7,3,0,0,2,0,1500,0.000001500\r\nbackup,1,1,1,10,1,0,0,0,0,999,0.000000999\r')" \
	"--token bob --by channel --csv: filters narrow the groups"
ctl usage --since 2023-01-01 --until 2023-12-31 --by day --json
assert_match "$OUT" '"by": \["day"\],'$'\n''  "groups": \[\]' "empty range: no group"
ctl usage --since 2023-01-01 --until 2023-12-31 --by day --csv
assert_eq "$(printf '%s' "$OUT" | grep -c .)" 1 "empty range --csv: the header alone"

# Names that need quoting: a passed-through model may hold a comma or a
# quote (the agent refuses control bytes in a model name; record_push can
# still write CR and LF, which CSV must quote as well).
{
	rec it-9 1710115200000 bob bbbbbbbbbbbb research 'vendor,"x"' vendor anthropic \
		anthropic--k1 200 0 '' 11 12 0 0 0 0 '' 0 123456789 1 1
	rec it-10 1710115200001 alice aaaaaaaaaaaa default 'two\r\nlines' two anthropic \
		anthropic--k1 200 0 '' 1 2 0 0 0 0 '' 0 1 1 1
	rec it-11 1710115200002 bob bbbbbbbbbbbb research 'vendor,"x"' vendor backup \
		backup--main 200 0 '' 1 1 0 0 0 0 '' 0 1000000001 1 1
} | "$PUSH" -s | "$PUSH" -A >/dev/null
Q=(--since 2024-03-11 --until 2024-03-11)
ctl usage "${Q[@]}" --by model,token --csv
assert_eq "$OUT" "$(printf 'model,token,requests,errors,partial,input,output,cache_write_5m,cache_write_1h,cache_read,web_search,cost_nusd,cost_usd\r\n"two\r\nlines",alice,1,0,0,1,2,0,0,0,0,1,0.000000001\r\n"vendor,""x""",bob,2,0,0,12,13,0,0,0,0,1123456790,1.123456790\r')" \
	"--csv quotes a comma, a quote, CR and LF (RFC 4180)"
"$CTL" usage "${Q[@]}" --by model,token --csv >"$T_DIR/csv"
"$CTL" usage "${Q[@]}" --by model,token --json >"$T_DIR/json"
assert_eq "$(csv_check "$T_DIR/csv" "$T_DIR/json")" ok "quoted names parse back to the JSON names"
ctl usage "${Q[@]}" --model 'vendor,"x"' --by channel
assert_match "$OUT" $'\n''anthropic +1 [^'$'\n'']*'$'\n''backup +1 [^'$'\n'']*'$'\n''\(total\) +2 ' \
	"--model with a comma and a quote, --by channel table"

for bad in "--by" "--by nope" "--by day,day" "--by day," "--by ,day" "--by Token" \
	"--json --csv"; do
	# shellcheck disable=SC2086
	ctl usage $bad
	assert_eq "$RC" 2 "usage $bad: usage error"
done
ctl usage --by ''
assert_eq "$RC" 2 "usage --by '': usage error"

# ---- errors ---------------------------------------------------------------
ctl usage --help
assert_eq "$RC" 0 "usage --help"
assert_match "$OUT" "--since YYYY-MM-DD" "help describes the range"
ctl --help
assert_match "$OUT" "usage +show the usage" "command list has usage"
for bad in "--since 2024-02-30" "--until 2023-02-29" "--since 24-01-01" "--since" \
	"--since 2024-03-02 --until 2024-03-01" "--bogus" "extra"; do
	# shellcheck disable=SC2086
	ctl usage $bad
	assert_eq "$RC" 2 "usage $bad: usage error"
done
ctl usage --token "$(printf 'x%.0s' $(seq 300))"
assert_eq "$RC" 2 "an over-long filter: usage error"
REALMS_REDIS="127.0.0.1:$(free_port)" ctl usage
assert_eq "$RC" 1 "Redis down: exit 1"
assert_match "$ERR" "cannot connect to Redis" "Redis down is explained"

# ---- batches: what one script call must get right ---------------------------
rcli FLUSHALL >/dev/null
BIG=9007199254740991     # RECORD_COUNT_MAX, 2^53 - 1
rec it-b1 1710028800000 dana dddddddddddd default claude-haiku-4-5 claude-haiku-4-5 \
	anthropic anthropic--k1 200 0 '' "$BIG" 1 0 0 0 0 '' 0 5 1 1 | "$PUSH" -s >"$T_DIR/b1"
rec it-b2 1710028800001 dana dddddddddddd default claude-haiku-4-5 claude-haiku-4-5 \
	anthropic anthropic--k1 200 0 '' "$BIG" 2 0 0 0 0 '' 0 7 1 1 | "$PUSH" -s >"$T_DIR/b2"
rec it-b3 1710028800002 dana dddddddddddd default claude-haiku-4-5 claude-haiku-4-5 \
	anthropic anthropic--k1 200 0 '' 3 0 0 0 0 0 '' 0 0 1 1 | "$PUSH" -s >"$T_DIR/b3"
# a req_id twice in one call counts once
OUT=$(cat "$T_DIR/b1" "$T_DIR/b1" "$T_DIR/b3" | "$PUSH" -A -b 3 2>"$T_DIR/err")
assert_eq "$OUT" "$(printf 'recorded it-b1\nduplicate it-b1\nrecorded it-b3')" \
	"the same req_id twice in one call: recorded, then a duplicate"
assert_eq "$(rcli HGET realms:usage:token:dana:20240310 requests)" 2 "counted once"
assert_eq "$(rcli XLEN realms:usage:events)" 2 "one event each"
# sums past 2^53 stay exact (a double would round them)
OUT=$(cat "$T_DIR/b1" "$T_DIR/b2" | "$PUSH" -A -b 2 2>"$T_DIR/err")
assert_eq "$OUT" "$(printf 'duplicate it-b1\nrecorded it-b2')" "a duplicate and a new one"
assert_eq "$(rcli HGET realms:usage:token:dana:20240310 input)" "$((BIG * 2 + 3))" \
	"input past 2^53, exact"
rcli FLUSHALL >/dev/null
OUT=$(cat "$T_DIR/b1" "$T_DIR/b2" | "$PUSH" -A -b 2 2>"$T_DIR/err")
assert_eq "$(rcli HGET realms:usage:model:claude-haiku-4-5:20240310 input)" "$((BIG * 2))" \
	"two counts of 2^53 - 1 in one call, exact"
assert_eq "$(rcli HGET realms:usage:model:claude-haiku-4-5:20240310 cost_nusd)" 12 \
	"costs summed in one call"
assert_eq "$(rcli HGET realms:usage:model:claude-haiku-4-5:20240310 errors)" "" \
	"a counter at 0 is not written (absent reads as 0)"
# a key of the wrong type refuses the whole call: nothing changes
rcli FLUSHALL >/dev/null
rcli SET realms:usage:channel:other:20240310 x >/dev/null
rec it-b4 1710028800003 erin eeeeeeeeeeee default claude-haiku-4-5 claude-haiku-4-5 \
	other other--k1 200 0 '' 1 1 0 0 0 0 '' 0 1 1 1 | "$PUSH" -s >"$T_DIR/b4"
cat "$T_DIR/b3" "$T_DIR/b4" | "$PUSH" -A -b 2 >"$T_DIR/out" 2>"$T_DIR/err"
assert_eq "$?" 1 "a key of the wrong type: exit 1"
assert_match "$(cat "$T_DIR/err")" "realms:usage:channel:other:20240310 is a string, not a hash" \
	"the key is named"
assert_eq "$(rcli DBSIZE)" 1 "nothing written for either record"
assert_eq "$("$PUSH" -A <"$T_DIR/b3")" "recorded it-b3" "the other one alone is recorded"
# a counter that is not an integer refuses the whole call before any write
rcli FLUSHALL >/dev/null
rcli HSET realms:usage:model:claude-haiku-4-5:20240310 output 12x >/dev/null
cat "$T_DIR/b4" "$T_DIR/b3" | "$PUSH" -A -b 2 >"$T_DIR/out" 2>"$T_DIR/err"
assert_eq "$?" 1 "a counter that is not an integer: exit 1"
assert_match "$(cat "$T_DIR/err")" "model:claude-haiku-4-5:20240310 output does not hold an integer" \
	"the key and field are named"
assert_eq "$(rcli DBSIZE)" 1 "nothing written for either record, not even their seen marks"
# an integer Redis itself would not add to (a leading zero, "-0"), in a
# hash or in a string counter: refused before any write too
for v in 007 -0; do
	rcli FLUSHALL >/dev/null
	rcli HSET realms:usage:model:claude-haiku-4-5:20240310 output "$v" >/dev/null
	cat "$T_DIR/b4" "$T_DIR/b3" | "$PUSH" -A -b 2 >"$T_DIR/out" 2>"$T_DIR/err"
	assert_eq "$?/$(rcli DBSIZE)" 1/1 "a hash counter holding $v: refused, nothing written"
	rcli FLUSHALL >/dev/null
	rcli SET "realms:spend:t:frank:$(date -u +d%Y%m%d)" "$v" >/dev/null
	rec it-s1 "$(( $(date +%s) * 1000 ))" frank ffffffffffff default claude-haiku-4-5 \
		claude-haiku-4-5 anthropic anthropic--k1 200 0 '' 1 1 0 0 0 0 '' 0 5 1 1 |
		"$PUSH" -s | "$PUSH" >"$T_DIR/out" 2>"$T_DIR/err"
	assert_eq "$?/$(rcli DBSIZE)" 1/1 "a spend counter holding $v: refused, nothing written"
	assert_match "$(cat "$T_DIR/err")" "realms:spend:t:frank:d[0-9]{8} does not hold an integer" \
		"the spend counter is named"
done
# sixteen of the longest records do not fit one call: record_push splits them
rcli FLUSHALL >/dev/null
# (names at their longest, every byte percent-encoded in the keys)
pct() { printf '%%%.0s' $(seq "$1"); }
for i in $(seq 10 25); do
	rec "$(printf ':%.0s' $(seq 57))it-l$i" 1710028800000 "$(pct 64)" '' "$(pct 64)" \
		"$(pct 256)" "$(pct 256)" "$(pct 64)" "$(pct 139)" 200 0 '' 1 1 0 0 0 0 '' 0 1 1 1
done | "$PUSH" -s >"$T_DIR/long"
rcli CONFIG RESETSTAT >/dev/null
OUT=$("$PUSH" -A -b 16 <"$T_DIR/long" 2>"$T_DIR/err")
assert_eq "$(grep -c '^recorded :*it-l' <<<"$OUT")" 16 "16 of the longest records in calls that fit: all recorded"
assert_eq "$(rcli XLEN realms:usage:events)" 16 "one event each"
assert_eq "$(rcli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p')" 2 \
	"in two calls"

finish
