#!/usr/bin/env bash
# Avoidance at once and stickiness through failures, with two equal
# channels (two mock upstreams). A Claude Code request of 330 KB does not
# fit HAProxy's retry buffer (tune.bufsize), so its failed attempt reaches
# the client as is; the client retries by itself (Claude Code's backoff:
# about 0.5 s). The failing credential must be avoided by that retry at
# once: the client sees at most one 529, then a 200 from the other
# channel, within 2 s, billed once to the channel that answered. A session
# whose first credential failed stays on its second one after the first
# recovers (its prompt cache lives there now); a session that saw no
# failure keeps its own first choice.
. "$(dirname "$0")/lib.sh"

start_redis || { fail "redis"; finish; }
start_mock a; PORT_A=$MOCK_PORT
start_mock b; PORT_B=$MOCK_PORT
ADMIN=$(free_port)
# failures at its default (3): the breaker alone would let three 529s
# through. avoid: 3 s rather than the default 30, so that the test can
# wait for a recovered credential's avoidance to end (no request goes to
# an avoided credential while the other one serves, so no 2xx ends it
# early here).
cat >"$T_DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 2, "mirror": "$T_DIR/mirror.sock",
             "admin": "127.0.0.1:$ADMIN", "spool": "$T_DIR/spool" },
  "failover": { "attempts": 3, "cooldown": 30, "timeout": 5, "avoid": 3, "max_body": 131072 },
  "models": [ {"name": "claude-sonnet-4-5", "enabled": true} ],
  "channels": [
    {"name": "a", "base_url": "http://127.0.0.1:$PORT_A",
     "credentials": [{"name": "k", "key": "sk-up-a"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}},
    {"name": "b", "base_url": "http://127.0.0.1:$PORT_B",
     "credentials": [{"name": "k", "key": "sk-up-b"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}}
  ]
}
JSON
GW_MIRROR="$T_DIR/mirror.sock" start_gateway "$T_DIR/realms.json" || { fail "gateway"; finish; }
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"
TOK=$("$REALMS_BIN/realmsctl" token add --name dev 2>/dev/null)
URL="http://127.0.0.1:$GW_PORT/v1/messages"
DAY=$(date -u +%Y%m%d)

port_of() { case $1 in a) echo "$PORT_A" ;; b) echo "$PORT_B" ;; esac; }
msgs() { curl -s --max-time 5 "http://127.0.0.1:$(port_of "$1")/mock/stats" |
	sed -n 's/.*"messages":\([0-9]*\).*/\1/p'; }
mfail() { curl -s -o /dev/null --max-time 5 -X POST "http://127.0.0.1:$(port_of "$1")/mock/fail" -d "$2"; }
metric() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
# bill KEY [FIELD]: a usage counter of today (requests by default).
bill() { v=$(rcli HGET "realms:usage:$1:$DAY" "${2:-requests}"); echo "${v:-0}"; }
# paid KEY: answers billed (requests that were not errors), input tokens,
# cost, as "answers/input/cost".
paid() {
	echo "$(( $(bill "$1") - $(bill "$1" errors) ))/$(bill "$1" input)/$(bill "$1" cost_nusd)"
}
# delta BEFORE AFTER: "a/b/c" minus "a/b/c".
delta() { awk -F/ -v a="$1" -v b="$2" 'BEGIN { split(a, x, "/"); split(b, y, "/");
	printf "%d/%d/%s\n", y[1] - x[1], y[2] - x[2], (y[3] - x[3] > 0 ? "paid" : "0") }'; }
snap() { A0=$(msgs a); B0=$(msgs b); }
# served: which mock took the requests since snap ("a", "b", "a+b", "").
served() {
	local da=$(( $(msgs a) - A0 )) db=$(( $(msgs b) - B0 ))
	echo "$da/$db"
}

# The 330 KB body: the captured Claude Code request, its conversation
# enlarged (earlier turns), model first as Claude Code sends it.
python3 - "$FIXTURES/messages-1.json" "$T_DIR/big.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
turn = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 40
first = d["messages"]
d["stream"] = True
while True:
    out = json.dumps(d, separators=(",", ":"))
    if len(out) >= 330000:
        break
    d["messages"] = [{"role": "user", "content": [{"type": "text", "text": turn}]},
                     {"role": "assistant", "content": [{"type": "text", "text": turn}]}] + d["messages"]
assert out.startswith('{"model":')
open(sys.argv[2], "w").write(out)
PY
SIZE=$(stat -c %s "$T_DIR/big.json")
[ "$SIZE" -ge 330000 ] && [ "$SIZE" -le 340000 ] && ok "the request is $SIZE bytes (about 330 KB)" ||
	fail "the request is $SIZE bytes"

# turn SESSION [FILE]: one streamed turn of a session; status in CODE.
turn() {
	local body=${2:-$T_DIR/small.json}
	CODE=$(curl -sS -o "$T_DIR/out" -w '%{http_code}' --max-time 20 -H "x-api-key: $TOK" \
		-H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
		-H "x-claude-code-session-id: $1" -H 'x-mock-usage: in=11,out=7' \
		--data-binary "@$body" "$URL")
}
printf '%s' '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}' \
	>"$T_DIR/small.json"

# home_of SESSION: the mock that serves the session when all is well.
home_of() {
	snap
	turn "$1"
	case $(served) in 1/0) echo a ;; 0/1) echo b ;; *) echo "?" ;; esac
}
# session_on M PREFIX: a session id whose first choice is mock M.
session_on() {
	local i s
	for i in $(seq 40); do
		s="$2-$$-$i"
		[ "$(home_of "$s")" = "$1" ] && { echo "$s"; return 0; }
	done
	return 1
}
S1=$(session_on a big) && ok "a session whose first choice is a" || fail "no session homed on a"
S2=$(session_on a calm) && ok "another session whose first choice is a" || fail "no second session on a"

# --- 1. a 330 KB request meets a 529: one 529, the client's retry answered ----
sleep 1   # the records of the probing turns are in
m0=$(paid model:claude-sonnet-4-5); pa0=$(paid channel:a); pb0=$(paid channel:b)
r0=$(bill model:claude-sonnet-4-5)
mfail a '{"status":529,"count":100}'
snap
t0=$(date +%s%N)
n529=0
for try in 1 2 3 4; do
	turn "$S1" "$T_DIR/big.json"
	[ "$CODE" = 529 ] && n529=$((n529 + 1))
	[ "$CODE" = 200 ] && break
	sleep 0.5   # Claude Code's first backoff
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
assert_eq "$CODE" 200 "330 KB: the client's retry is answered 200"
[ "$n529" -le 1 ] && ok "330 KB: the client saw $n529 529 (at most one)" ||
	fail "330 KB: the client saw $n529 529s"
[ "$ms" -lt 2000 ] && ok "330 KB: answered within 2 s ($ms ms)" || fail "330 KB: took $ms ms"
grep -q '^event: message_stop' "$T_DIR/out" && ok "330 KB: a whole stream" || fail "330 KB: cut stream"
assert_eq "$(served)" "$n529/1" "330 KB: a took the failed attempt, b the answer"
for _ in $(seq 50); do
	[ "$(bill model:claude-sonnet-4-5)" -ge $(( r0 + n529 + 1 )) ] && break; sleep 0.1; done
sleep 0.5
# The 529 the client saw is recorded as an error (no tokens, no cost);
# the answer is billed once, to b.
assert_eq "$(delta "$m0" "$(paid model:claude-sonnet-4-5)")" "1/11/paid" \
	"330 KB: billed exactly once (one answer, its 11 input tokens)"
assert_eq "$(delta "$pa0" "$(paid channel:a)")|$(delta "$pb0" "$(paid channel:b)")" \
	"0/0/0|1/11/paid" "330 KB: billed to the channel that answered (b), nothing to a"
assert_match "$(metric realms_credential_avoided_total)" '^[1-9]' "metrics: the avoidance is counted"
grep -q 'credential a--k: attempt failed (status 529); passed over for 3000 ms' "$T_DIR/agent.log" &&
	ok "the avoidance is logged" || fail "no avoidance log line"

# --- 2. the session stays on its second choice after a recovers -----------------
# a answers again and its avoidance ends (S2, homed on a, must not run
# before: while a is avoided it would move too).
mfail a '{"status":529,"count":0}'
sleep 3.2
assert_eq "$(metric 'realms_breaker_state{server="a--k"}')" 0 "a: the breaker stayed closed"
snap
for _ in 1 2 3; do turn "$S1"; done
assert_eq "$CODE/$(served)" "200/0/3" "S1: its next turns stay on b after a recovered"
snap
for _ in 1 2 3; do turn "$S2"; done
assert_eq "$CODE/$(served)" "200/3/0" "S2 (no failure): keeps its own first choice, a"
snap
turn "$S1" "$T_DIR/big.json"
assert_eq "$CODE/$(served)" "200/0/1" "S1: its next big turn stays on b too"
assert_match "$(metric realms_session_moves_total)" '^[1-9]' "metrics: the session's move is counted"

# --- 3. an in-request retry moves a session too ---------------------------------
# A small request fits the retry buffer: HAProxy retries it inside the
# request, the agent sends the retry to b and remembers the move.
S3=$(session_on a small) && ok "a third session homed on a" || fail "no third session on a"
mfail a '{"status":503,"count":1}'
snap
turn "$S3"
assert_eq "$CODE/$(served)" "200/1/1" "S3: a failed, retried in the request on b"
# a recovers (its one failure is used up) and its avoidance ends.
sleep 3.2
snap
for _ in 1 2 3; do turn "$S3"; done
assert_eq "$CODE/$(served)" "200/0/3" "S3: its next turns stay on b"

grep -q 'sk-up-' "$T_DIR/agent.log" "$T_DIR/haproxy.log" && fail "key in a log" || ok "no key in the logs"
finish
