#!/usr/bin/env bash
# Budgets, rate limits and per-token models, through two whole gateways
# (HAProxy and agent each) on one Redis, the way a team deploys them:
# - a spent budget: 403 permission_error naming the limit, the spend and the
#   reset at the configuration's UTC offset; count_tokens still answered and
#   never billed;
# - 20 parallel requests against a budget that covers 5: what is admitted
#   costs at most the budget plus one request, the rest is 429 (held by
#   requests in flight) with retry-after;
# - rpm and concurrency: 429 with retry-after, shared by both gateways;
# - a request HAProxy answers itself (its upstream is down) frees its slot
#   at once (the tap's X frame), not at its lease's end;
# - a gateway killed mid-stream: its slot is freed within the heartbeat's
#   life (ADMIT_GW_TTL_MS, 30 s);
# - a group's default limits and its shared total;
# - a token limited to some models: 403 for the others, /v1/models lists
#   only its own, an unknown model is still 404;
# - rotation with and without a grace: usage and limits stay with the name;
# - GET /api/usage answers a token about itself (401 without one), equal to
#   Redis; scripts/realms-statusline prints it, or a harmless line within a
#   second when the gateway cannot answer;
# - Redis down: a token with limits is refused (503), /api/usage too.
. "$(dirname "$0")/lib.sh"

start_redis || { fail "redis"; finish; }
start_mock up
UP=$MOCK_PORT
DEAD=$(free_port)    # nothing listens there
ADMIN1=$(free_port)
ADMIN2=$(free_port)
for i in 1 2; do
	admin=$ADMIN1; [ "$i" = 2 ] && admin=$ADMIN2
	cat >"$T_DIR/realms$i.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "timezone": "+08:00",
  "agent": { "threads": 2, "mirror": "$T_DIR/mirror$i.sock", "spool": "$T_DIR/spool$i",
             "admin": "127.0.0.1:$admin" },
  "groups": ["default",
             {"name": "interns", "limits": {"rpm": 2}},
             {"name": "team", "total": {"usd/day": 0.009}},
             "broken"],
  "models": [ {"name": "claude-sonnet-4-5", "enabled": true},
              {"name": "claude-haiku-4-5", "enabled": true},
              {"name": "claude-down", "enabled": true} ],
  "channels": [
    {"name": "up", "base_url": "http://127.0.0.1:$UP",
     "groups": ["default", "interns", "team"],
     "credentials": [{"name": "k1", "key": "sk-up-1"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
                "claude-haiku-4-5": "claude-haiku-4-5-20251001"}},
    {"name": "down", "base_url": "http://127.0.0.1:$DEAD",
     "groups": ["default", "broken"],
     "credentials": [{"name": "k1", "key": "sk-down-1"}],
     "models": {"claude-down": "claude-down"}}
  ]
}
JSON
done
GW_ID=1 GW_MIRROR="$T_DIR/mirror1.sock" start_gateway "$T_DIR/realms1.json" ||
	{ fail "gateway 1"; finish; }
GW1=$GW_PORT AGENT1=$AGENT_PID
GW_ID=2 GW_MIRROR="$T_DIR/mirror2.sock" start_gateway "$T_DIR/realms2.json" ||
	{ fail "gateway 2"; finish; }
GW2=$GW_PORT AGENT2=$AGENT_PID
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"
CTL="$REALMS_BIN/realmsctl"
add() { "$CTL" -c "$T_DIR/realms1.json" token add "$@" 2>/dev/null; }
metric() { curl -s --max-time 5 "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m { print $2 }'; }

# post PORT TOKEN MODEL [CURL ARGS...]: one message; CODE, RETRY and the body
# in $T_DIR/out. Usage 1000 in, 100 out: sonnet costs $0.0045, haiku $0.0015.
post() {
	local port=$1 tok=$2 model=$3; shift 3
	CODE=$(curl -sS -o "$T_DIR/out" -D "$T_DIR/hdr" -w '%{http_code}' --max-time 30 \
		-H "x-api-key: $tok" -H 'content-type: application/json' \
		-H 'x-mock-usage: in=1000,out=100' "$@" \
		--data-binary "{\"model\":\"$model\",\"max_tokens\":300,\"messages\":[]}" \
		"http://127.0.0.1:$port/v1/messages")
	RETRY=$(tr -d '\r' <"$T_DIR/hdr" | sed -n 's/^retry-after: //Ip')
}
errtype() { sed -n 's/.*"error":{"type":"\([a-z_]*\)".*/\1/p' "$T_DIR/out"; }
errmsg() { sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$T_DIR/out"; }
# wait_inflight NAME N: until N requests of token NAME are in flight (10 s).
wait_inflight() {
	for _ in $(seq 100); do
		[ "$(rcli HLEN "realms:inflight:$1")" -eq "$2" ] && return 0
		sleep 0.1
	done
	return 1
}
spent_day() { rcli GET "realms:spend:t:$1:d$(TZ=Etc/GMT-8 date +%Y%m%d)"; }
TOMORROW=$(TZ=Etc/GMT-8 date -d tomorrow +%Y-%m-%dT00:00:00+08:00)
TOMORROW_RE=${TOMORROW//+/\\+}

# --- 1. 20 parallel requests against a budget that covers 5 ----------------
# $0.0225 = 5 x $0.0045; each request reserves more than it costs (300
# max_tokens at $15/M), so at most 5 fit at once.
PAR=$(add --name par --limit usd/day=0.0225)
seq 20 | xargs -P 20 -I{} curl -sS -o /dev/null -w '%{http_code}\n' --max-time 30 \
	-H "x-api-key: $PAR" -H 'content-type: application/json' \
	-H 'x-mock-usage: in=1000,out=100' -H 'x-mock-first-byte-delay-ms: 1500' \
	--data-binary '{"model":"claude-sonnet-4-5","max_tokens":300,"messages":[]}' \
	"http://127.0.0.1:$GW1/v1/messages" >"$T_DIR/par.codes"
n200=$(grep -c '^200$' "$T_DIR/par.codes")
n429=$(grep -c '^429$' "$T_DIR/par.codes")
assert_eq "$((n200 + n429))" 20 "parallel: every answer is 200 or 429 ($n200 + $n429)"
[ "$n200" -ge 1 ] && [ "$n200" -le 6 ] && ok "parallel: $n200 admitted (budget covers 5, plus one at most)" ||
	fail "parallel: $n200 admitted"
for _ in $(seq 50); do [ "$(rcli HLEN realms:resv:t:par)" = 0 ] && break; sleep 0.1; done
spent=$(spent_day par)
[ "${spent:-0}" -le $((22500000 + 4500000)) ] &&
	ok "parallel: spent $spent nano-USD <= budget + one request" || fail "parallel: spent $spent"
assert_eq "$spent" "$((n200 * 4500000))" "parallel: spend settled = the admitted requests' cost"
assert_eq "$(rcli HLEN realms:resv:t:par)" 0 "parallel: no reservation left after settlement"

# --- 2. a spent budget --------------------------------------------------------
post "$GW1" "$PAR" claude-sonnet-4-5
if [ "$spent" -ge 22500000 ]; then
	assert_eq "$CODE" 403 "spent: 403"
	assert_eq "$(errtype)" permission_error "spent: permission_error"
	assert_eq "$(errmsg)" "daily budget of \$0.0225 spent (\$$(awk -v n="$spent" \
		'BEGIN { printf "%.4f", n / 1e9 }')); resets $TOMORROW" \
		"spent: the message names the limit, the spend and the reset at +08:00"
	assert_eq "$RETRY" "" "spent: no retry-after (it will not come back in minutes)"
else
	fail "spent: the parallel run spent only $spent"
fi
billed=$(rcli HGET "realms:usage:token:par:$(date -u +%Y%m%d)" requests)
ct=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -H "x-api-key: $PAR" \
	-H 'content-type: application/json' \
	--data-binary '{"model":"claude-sonnet-4-5","messages":[]}' \
	"http://127.0.0.1:$GW1/v1/messages/count_tokens")
assert_eq "$ct" 200 "spent: count_tokens is still answered"
sleep 0.5
assert_eq "$(rcli HGET "realms:usage:token:par:$(date -u +%Y%m%d)" requests)" "$billed" \
	"spent: count_tokens is not billed"
show=$("$CTL" -c "$T_DIR/realms1.json" token show par --json)
assert_match "$show" "\"remaining_usd\": \\{\"usd/day\": 0.00\\}" "token show: nothing remains"
assert_match "$show" "\"resets\": \\{\"usd/day\": \"$TOMORROW_RE\"\\}" "token show: the reset at +08:00"

# --- 3. rpm, shared by both gateways -----------------------------------------
RPM=$(add --name rpm --limit rpm=4)
codes=""
for port in "$GW1" "$GW2" "$GW1" "$GW2"; do post "$port" "$RPM" claude-haiku-4-5; codes+="$CODE "; done
assert_eq "$codes" "200 200 200 200 " "rpm: 4 requests over two gateways"
post "$GW2" "$RPM" claude-haiku-4-5
assert_eq "$CODE" 429 "rpm: the 5th in the minute is 429"
assert_eq "$(errtype)" rate_limit_error "rpm: rate_limit_error"
[[ "$RETRY" =~ ^[0-9]+$ ]] && [ "$RETRY" -ge 1 ] && [ "$RETRY" -le 60 ] &&
	ok "rpm: retry-after $RETRY s (1 to 60)" || fail "rpm: retry-after '$RETRY'"
assert_match "$(errmsg)" "4 requests per minute" "rpm: the message names the limit"

# --- 4. concurrency, shared by both gateways ----------------------------------
CONC=$(add --name conc --limit concurrency=2)
post "$GW1" "$CONC" claude-haiku-4-5 -H 'x-mock-first-byte-delay-ms: 3000' &
P1=$!
post "$GW2" "$CONC" claude-haiku-4-5 -H 'x-mock-first-byte-delay-ms: 3000' &
P2=$!
wait_inflight conc 2 && ok "concurrency: two in flight, one per gateway" || fail "concurrency: in flight"
post "$GW1" "$CONC" claude-haiku-4-5
assert_eq "$CODE" 429 "concurrency: a third is 429"
[[ "$RETRY" =~ ^[0-9]+$ ]] && [ "$RETRY" -ge 1 ] && [ "$RETRY" -le 60 ] &&
	ok "concurrency: retry-after $RETRY s" || fail "concurrency: retry-after '$RETRY'"
wait "$P1" "$P2"
wait_inflight conc 0 && ok "concurrency: both slots freed by their records" ||
	fail "concurrency: slots left: $(rcli HKEYS realms:inflight:conc)"
post "$GW2" "$CONC" claude-haiku-4-5
assert_eq "$CODE" 200 "concurrency: served again once they finished"
assert_eq "$(metric "$ADMIN1" realms_admission_releases_total)" 0 \
	"concurrency: answered requests are settled, not released"

# --- 5. a request that ends without an answer frees its slot at once -------
# A second "model" key past the 120 KB the agent reads: admitted on its
# prefix, then cut by the body guard (400 from HAProxy itself). No answer
# reached the tap: its X frame releases the slot.
DOWN=$(add --name cut --limit concurrency=1)
{
	printf '{"model":"claude-haiku-4-5","max_tokens":5,"messages":[],"metadata":{"pad":"'
	head -c 150000 /dev/zero | tr '\0' 'a'
	printf '"},"model":"claude-sonnet-4-5"}'
} >"$T_DIR/cut.json"
CODE=$(curl -sS -o "$T_DIR/out" -w '%{http_code}' --max-time 30 -H "x-api-key: $DOWN" \
	-H 'content-type: application/json' --data-binary @"$T_DIR/cut.json" \
	"http://127.0.0.1:$GW1/v1/messages")
assert_eq "$CODE" 400 "cut by the guard: 400"
wait_inflight cut 0 && ok "cut by the guard: the slot is released at once (X frame)" ||
	fail "cut by the guard: slot held: $(rcli HGETALL realms:inflight:cut)"
[ "$(metric "$ADMIN1" realms_admission_releases_total)" -ge 1 ] &&
	ok "cut by the guard: the release is counted" || fail "cut by the guard: no release counted"
post "$GW1" "$DOWN" claude-haiku-4-5
assert_eq "$CODE" 200 "cut by the guard: the token is served again"
# An upstream that cannot be reached: the relay answers 503; its record
# settles the slot.
BR=$(add --name down --group broken --limit concurrency=1)
post "$GW1" "$BR" claude-down
[ "$CODE" -ge 500 ] && ok "upstream down: $CODE" || fail "upstream down: $CODE"
wait_inflight down 0 && ok "upstream down: the slot is freed" ||
	fail "upstream down: slot held: $(rcli HGETALL realms:inflight:down)"

# --- 6. a group's defaults and its shared total ------------------------------
I1=$(add --name intern1 --group interns)
I2=$(add --name intern2 --group interns --limit rpm=3)
codes=""
for _ in 1 2 3; do post "$GW1" "$I1" claude-haiku-4-5; codes+="$CODE "; done
assert_eq "$codes" "200 200 429 " "group defaults: rpm 2 from the group"
codes=""
for _ in 1 2 3 4; do post "$GW1" "$I2" claude-haiku-4-5; codes+="$CODE "; done
assert_eq "$codes" "200 200 200 429 " "group defaults: the token's own rpm 3 replaces it"
T1=$(add --name team1 --group team)
T2=$(add --name team2 --group team)
codes=""
# $0.009 = 2 sonnet requests; one at a time, so reservations never refuse.
for tok in "$T1" "$T2"; do post "$GW1" "$tok" claude-sonnet-4-5; codes+="$CODE "; done
post "$GW2" "$T2" claude-sonnet-4-5
codes+="$CODE"
assert_eq "$codes" "200 200 403" "group total: two requests of two tokens spend it, the third is 403"
assert_match "$(errmsg)" "^group team's daily budget of \\\$0.009 spent \\(\\\$0.009\\); resets $TOMORROW_RE" \
	"group total: the message names the group"
assert_eq "$(rcli GET "realms:spend:g:team:d$(TZ=Etc/GMT-8 date +%Y%m%d)")" 9000000 \
	"group total: the group's counter holds both tokens' spend"

# --- 7. per-token models ------------------------------------------------------
HK=$(add --name haikuonly --models claude-haiku-4-5)
post "$GW1" "$HK" claude-haiku-4-5
assert_eq "$CODE" 200 "models: its model is served"
post "$GW1" "$HK" claude-sonnet-4-5
assert_eq "$CODE $(errtype)" "403 permission_error" "models: another is 403 permission_error"
assert_match "$(errmsg)" "token's models" "models: a message of its own"
post "$GW1" "$HK" claude-nonexistent-9
assert_eq "$CODE" 404 "models: an unknown name is still 404"
list=$(curl -sS --max-time 10 -H "x-api-key: $HK" "http://127.0.0.1:$GW1/v1/models")
assert_match "$list" '"id":"claude-haiku-4-5"' "models: /v1/models lists its model"
assert_no_match "$list" 'claude-sonnet' "models: and not the others"
"$CTL" token set haikuonly --all-models >/dev/null
post "$GW2" "$HK" claude-sonnet-4-5
assert_eq "$CODE" 200 "models: --all-models lifts the list on every gateway at once"

# --- 8. rotation ---------------------------------------------------------------
OLD=$(add --name rot --limit usd/day=1)
post "$GW1" "$OLD" claude-haiku-4-5
NEW=$("$CTL" token rotate rot 2>/dev/null)
post "$GW1" "$OLD" claude-haiku-4-5
assert_eq "$CODE" 401 "rotate: the old secret is refused at once"
post "$GW2" "$NEW" claude-haiku-4-5
assert_eq "$CODE" 200 "rotate: the new one is served"
NEWER=$("$CTL" token rotate rot --grace 1h 2>/dev/null)
post "$GW1" "$NEW" claude-haiku-4-5
assert_eq "$CODE" 200 "rotate --grace: the old secret works during its grace"
post "$GW1" "$NEWER" claude-haiku-4-5
assert_eq "$CODE" 200 "rotate --grace: and the new one"
assert_eq "$(spent_day rot)" 6000000 "rotate: four requests' spend on one name"
assert_match "$("$CTL" token show rot --json)" '"usd/day": 1.00' "rotate: the limits stay with the name"
"$CTL" token revoke rot >/dev/null
post "$GW1" "$NEW" claude-haiku-4-5
c1=$CODE
post "$GW1" "$NEWER" claude-haiku-4-5
assert_eq "$c1 $CODE" "401 401" "revoke: both secrets of a rotated name are refused"

# --- 10. GET /api/usage and Claude Code's status line --------------------------
usage() { curl -sS -o "$T_DIR/out" -w '%{http_code}' --max-time 10 "$@" "http://127.0.0.1:$GW2/api/usage"; }
assert_eq "$(usage)" 401 "api/usage: no token, 401"
assert_eq "$(usage -H 'x-api-key: sk-realms-notatoken')" 401 "api/usage: a wrong token, 401"
assert_eq "$(usage -H "Authorization: Bearer $PAR")" 200 "api/usage: its own token (Bearer)"
u=$(cat "$T_DIR/out")
python3 - "$u" "$spent" "$n200" "$TOMORROW" <<'PY' && ok "api/usage: spend, limits, remaining, resets and today equal Redis" || fail "api/usage: $u"
import json, sys
from decimal import Decimal
u = json.loads(sys.argv[1], parse_float=Decimal)
spent, n, tomorrow = Decimal(sys.argv[2]) / 10**9, int(sys.argv[3]), sys.argv[4]
assert u["token"] == "par" and u["group"] == "default", u
assert u["spent_usd"]["day"] == spent and u["spent_usd"]["5h"] == spent, u
assert u["limits"] == {"usd/day": Decimal("0.0225")}, u
assert u["remaining_usd"] == {"usd/day": Decimal("0.0225") - spent}, u
assert u["resets"] == {"usd/day": tomorrow}, u
t = u["today"]
assert t["requests"] == n and t["input"] == 1000 * n and t["output"] == 100 * n, t
assert t["cost_usd"] == spent, t
assert t["by_model"] == {"claude-sonnet-4-5": {"requests": n, "cost_usd": spent}}, t
PY
assert_eq "$(usage -X POST -H "x-api-key: $PAR")" 405 "api/usage: POST is 405"
assert_eq "$(usage -H "x-api-key: $T1")" 200 "api/usage: a token of a group with a total"
assert_match "$(cat "$T_DIR/out")" '"group_total": \{"spent_usd": \{"5h": 0.009, "day": 0.009' \
	"api/usage: the group's total and its spend"
SL="$REALMS_SRC/scripts/realms-statusline"
curl -sS --max-time 10 -o "$T_DIR/sl" "http://127.0.0.1:$GW1/realms-statusline"
cmp -s "$T_DIR/sl" "$SL" && ok "statusline: the gateway serves the script" ||
	fail "statusline: /realms-statusline differs from scripts/realms-statusline"
page=$(curl -sS --max-time 10 "http://127.0.0.1:$GW1/")
assert_match "$page" '"statusLine": \{"type": "command", "command": "~/.claude/realms-statusline"\}' \
	"statusline: the setup page shows the settings.json snippet"
line=$(ANTHROPIC_BASE_URL="http://127.0.0.1:$GW1" ANTHROPIC_AUTH_TOKEN="$PAR" ANTHROPIC_API_KEY= sh "$SL")
assert_eq "$line" "realms · \$$(awk -v n="$spent" 'BEGIN { printf "%.2f", n / 1e9 }') today of \$0.02 · \$$(awk -v n="$spent" 'BEGIN { printf "%.2f", n / 1e9 }') this month" \
	"statusline: today, its daily budget, the month"
line=$(ANTHROPIC_BASE_URL="http://127.0.0.1:$GW1/" ANTHROPIC_API_KEY="$RPM" ANTHROPIC_AUTH_TOKEN= sh "$SL")
assert_match "$line" '^realms · \$0\.0[0-9] today · \$0\.0[0-9] this month$' "statusline: no daily budget, ANTHROPIC_API_KEY"
t0=$(date +%s%N)
line=$(ANTHROPIC_BASE_URL="http://127.0.0.1:$DEAD" ANTHROPIC_AUTH_TOKEN="$PAR" sh "$SL")
ms=$((($(date +%s%N) - t0) / 1000000))
assert_eq "$line" "realms · usage unavailable" "statusline: a gateway that is down, a harmless line"
[ "$ms" -le 1500 ] && ok "statusline: and within ${ms} ms" || fail "statusline: took $ms ms"
# A gateway that accepts and never answers: the line still comes in time.
MUTE=$(free_port)
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
c = s.accept()[0]; time.sleep(15)' "$MUTE" &
MUTE_PID=$!
PIDS+=("$MUTE_PID")
wait_tcp "$MUTE" 10
t0=$(date +%s%N)
line=$(ANTHROPIC_BASE_URL="http://127.0.0.1:$MUTE" ANTHROPIC_AUTH_TOKEN="$PAR" sh "$SL")
ms=$((($(date +%s%N) - t0) / 1000000))
assert_eq "$line" "realms · usage unavailable" "statusline: a gateway that never answers, a harmless line"
[ "$ms" -le 1500 ] && ok "statusline: and within ${ms} ms" || fail "statusline: took $ms ms"
line=$(ANTHROPIC_BASE_URL="http://127.0.0.1:$GW1" ANTHROPIC_AUTH_TOKEN=sk-realms-wrong sh "$SL")
assert_eq "$line" "realms · usage unavailable" "statusline: a refused token, the same"
assert_eq "$(ANTHROPIC_BASE_URL= ANTHROPIC_AUTH_TOKEN= ANTHROPIC_API_KEY= sh "$SL")" \
	"realms · no gateway configured" "statusline: nothing configured"

# --- 9. a gateway killed mid-stream --------------------------------------------
CR=$(add --name crash --limit concurrency=1)
post "$GW2" "$CR" claude-haiku-4-5 -H 'x-mock-first-byte-delay-ms: 20000' &
P3=$!
wait_inflight crash 1 || fail "crash: no slot taken"
kill -KILL "$AGENT2"
t0=$(date +%s)
post "$GW1" "$CR" claude-haiku-4-5
assert_eq "$CODE" 429 "crash: the dead gateway's slot still counts at first"
for _ in $(seq 45); do
	sleep 1
	post "$GW1" "$CR" claude-haiku-4-5
	[ "$CODE" = 200 ] && break
done
waited=$(($(date +%s) - t0))
assert_eq "$CODE" 200 "crash: served again once the dead gateway's heartbeat expired"
[ "$waited" -le 40 ] && ok "crash: freed after $waited s (heartbeat lives 30 s)" ||
	fail "crash: freed after $waited s"
kill "$P3" 2>/dev/null
wait "$P3" 2>/dev/null

# --- 11. Redis down: limits are never skipped, usage is not made up ------------
stop_pid "$REDIS_PID" >/dev/null
post "$GW1" "$RPM" claude-haiku-4-5
assert_eq "$CODE $(errtype)" "503 api_error" "redis down: a token with limits is refused (503)"
assert_match "$(errmsg)" "limits store unreachable" "redis down: the message says why"
assert_eq "$(usage -H "x-api-key: $PAR")" 503 "redis down: api/usage is 503, not zeros"

finish
