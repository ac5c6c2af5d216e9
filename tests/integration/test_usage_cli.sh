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
rcli --scan --pattern 'realms:usage:*' | sort | while read -r k; do
	case "$(rcli TYPE "$k")" in
		hash) echo "$k $(rcli HGETALL "$k" | paste -sd,)" ;;
		set) echo "$k $(rcli SMEMBERS "$k" | sort | paste -sd,)" ;;
		zset) echo "$k $(rcli ZRANGE "$k" 0 -1 WITHSCORES | paste -sd,)" ;;
		*) echo "$k" ;;
	esac
done >"$T_DIR/dump1"
OUT=$("$PUSH" -A <"$T_DIR/spool" 2>"$T_DIR/err")
assert_eq "$?" 0 "second push exits 0"
assert_eq "$OUT" "$(printf 'duplicate it-%s\n' 1 2 3 4 5 6)" "every record a duplicate"
assert_eq "$(rcli DBSIZE)" "$DBSIZE1" "no new key"
assert_eq "$(rcli XLEN realms:usage:events)" "$XLEN1" "no new event"
rcli --scan --pattern 'realms:usage:*' | sort | while read -r k; do
	case "$(rcli TYPE "$k")" in
		hash) echo "$k $(rcli HGETALL "$k" | paste -sd,)" ;;
		set) echo "$k $(rcli SMEMBERS "$k" | sort | paste -sd,)" ;;
		zset) echo "$k $(rcli ZRANGE "$k" 0 -1 WITHSCORES | paste -sd,)" ;;
		*) echo "$k" ;;
	esac
done >"$T_DIR/dump2"
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
	"1,0,100,1234567" "token hash after midnight: it-2 only"
assert_eq "$(rcli HGETALL 'realms:usage:model:vendor/model%5B1m%5D:20240301' | paste -sd,)" \
	"requests,1,errors,1,partial,1,estimated,0,input,7,output,3,cache_write_5m,0,cache_write_1h,0,cache_read,2,web_search,0,cost_nusd,1500" \
	"model hash with a percent-encoded name, every field"
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

finish
