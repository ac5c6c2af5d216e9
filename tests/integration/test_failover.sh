#!/usr/bin/env bash
# Failover and breakers, with the mock upstream on three channels: a is
# preferred (priority 10), b and c are the fallbacks. Each retryable failure
# of a moves the request to b or c and the client sees one clean answer; an
# error after the stream started is not retried; when every attempt fails
# the client gets the last upstream's real status and body; breakers open,
# go half-open, probe and close; a 429's retry-after keeps the credential
# out that long; a 401 takes it out until a reload; the retried request is
# billed once, to the channel that answered; a request larger than the
# retry buffer is not retried.
. "$(dirname "$0")/lib.sh"

start_redis || { fail "redis"; finish; }
start_mock a; PORT_A=$MOCK_PORT; MOCK_A_PID=$SPAWNED
start_mock b; PORT_B=$MOCK_PORT
start_mock c; PORT_C=$MOCK_PORT
MIRROR=$(free_port)
CHECK=$(free_port)
ADMIN=$(free_port)
cat >"$T_DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 2, "mirror": "127.0.0.1:$MIRROR", "check": "127.0.0.1:$CHECK",
             "admin": "127.0.0.1:$ADMIN", "spool": "$T_DIR/spool" },
  "failover": { "attempts": 3, "failures": 2, "cooldown": 3, "timeout": 2 },
  "models": [ {"name": "claude-sonnet-4-5", "enabled": true} ],
  "channels": [
    {"name": "a", "base_url": "http://127.0.0.1:$PORT_A", "priority": 10,
     "credentials": [{"name": "k", "key": "sk-up-a"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}},
    {"name": "b", "base_url": "http://127.0.0.1:$PORT_B",
     "credentials": [{"name": "k", "key": "sk-up-b"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}},
    {"name": "c", "base_url": "http://127.0.0.1:$PORT_C",
     "credentials": [{"name": "k", "key": "sk-up-c"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}}
  ]
}
JSON
GW_MIRROR="127.0.0.1:$MIRROR" start_gateway "$T_DIR/realms.json" || { fail "gateway"; finish; }
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"
TOK=$("$REALMS_BIN/realmsctl" token add --name dev 2>/dev/null)
URL="http://127.0.0.1:$GW_PORT/v1/messages"
DAY=$(date -u +%Y%m%d)

grep -q "agent-check agent-addr 127.0.0.1 agent-port $CHECK" "$T_DIR/hp/channels.cfg" &&
	ok "rendered: pool servers ask the agent (agent-check)" || fail "rendered: no agent-check"
grep -q "retries 2" "$T_DIR/hp/channels.cfg" && ok "rendered: attempts 3 = retries 2" ||
	fail "rendered: retries"

port_of() { case $1 in a) echo "$PORT_A" ;; b) echo "$PORT_B" ;; c) echo "$PORT_C" ;; esac; }
stats() { curl -s --max-time 5 "http://127.0.0.1:$(port_of "$1")/mock/stats"; }
msgs() { stats "$1" | sed -n 's/.*"messages":\([0-9]*\).*/\1/p'; }
mfail() { curl -s -o /dev/null --max-time 5 -X POST "http://127.0.0.1:$(port_of "$1")/mock/fail" -d "$2"; }
metric() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
bstate() { metric "realms_breaker_state{server=\"$1--k\"}"; }
# HAProxy's view of a pool server: its operational state in "show servers
# state" (0 down, 2 up).
hstate() {
	haproxy_cmd "show servers state" | awk -v s="$1--k" '$2 ~ /^pool_/ && $4 == s { print ($6 == 0 ? "DOWN" : $6 == 2 ? "UP" : $6) }'
}
# wait_until CMD EXPECTED [TENTHS]: until CMD prints EXPECTED (bounded).
wait_until() {
	for _ in $(seq "${3:-50}"); do
		[ "$($1)" = "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# req [curl args...]: one streamed request; status in $CODE, body in $T_DIR/out.
req() {
	CODE=$(curl -sS -o "$T_DIR/out" -w '%{http_code}' --max-time 20 -H "x-api-key: $TOK" \
		-H 'content-type: application/json' "$@" \
		--data-binary '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[]}' "$URL")
}
clean_stream() {
	[ "$CODE" = 200 ] && [ "$(grep -c '^event: message_start' "$T_DIR/out")" = 1 ] &&
		grep -q '^event: message_stop' "$T_DIR/out" && ! grep -q '^event: error' "$T_DIR/out"
}
snap() { A0=$(msgs a); B0=$(msgs b); C0=$(msgs c); }
# delta a|bc: messages the mock(s) received since snap.
delta() {
	if [ "$1" = a ]; then echo $(( $(msgs a) - A0 )); else echo $(( $(msgs b) + $(msgs c) - B0 - C0 )); fi
}

# --- 0. the preferred channel serves when healthy -------------------------
snap
req
clean_stream && ok "healthy: one clean stream" || fail "healthy: status $CODE"
assert_eq "$(delta a)/$(delta bc)" "1/0" "healthy: served by the preferred channel"

# --- 1. each retryable failure moves the request ------------------------------
# One failure at a each time; a success at a in between resets its count.
for f in '{"status":500}' '{"status":502}' '{"status":503}' '{"status":504}' \
	'{"status":529}' '{"status":200,"close_after":0}' \
	'{"status":200,"stall_after":0}'; do
	what=$(tr -d '{}"' <<<"$f")
	mfail a "$f"
	snap
	req
	clean_stream && ok "$what at a: the client sees one clean stream" ||
		fail "$what at a: status $CODE: $(head -c 300 "$T_DIR/out")"
	assert_eq "$(delta a)/$(delta bc)" "1/1" "$what at a: one attempt at a, then one at b or c"
	req
	assert_eq "$CODE/$(delta a)" "200/2" "$what: a answers again (one failure is under the threshold)"
done

# The connection refused: a is stopped.
stop_pid "$MOCK_A_PID"
snap
req
clean_stream && ok "a down (connection refused): one clean stream" || fail "a down: $CODE"
assert_eq "$(delta bc)" 1 "a down: b or c answered"
spawn mock-a2 "$REALMS_BIN/mock_upstream" -l "127.0.0.1:$PORT_A" -r "$T_DIR/rec-a" -n a
wait_tcp "$PORT_A" 10
req
assert_eq "$CODE/$(msgs a)" "200/1" "a back: it answers again"

# --- 2. an error after the stream started is not retried -----------------------
snap
req -H 'x-mock-error-after: 2'
assert_eq "$CODE" 200 "mid-stream error: the 200 already sent stands"
grep -q '^event: error' "$T_DIR/out" && ok "mid-stream error: the client sees the error event" ||
	fail "mid-stream error: no error event"
assert_eq "$(delta a)/$(delta bc)" "1/0" "mid-stream error: not retried"

# --- 3. every attempt fails: the last real status and body ------------------------
for st in 529 500; do
	for m in a b c; do mfail "$m" "{\"status\":$st,\"count\":10}"; done
	snap
	req
	assert_eq "$CODE" "$st" "all fail with $st: the client gets $st"
	if [ "$st" = 529 ]; then want='overloaded_error","message":"Overloaded"'; else
		want='api_error","message":"mock: injected 500"'; fi
	assert_eq "$(cat "$T_DIR/out")" "{\"type\":\"error\",\"error\":{\"type\":\"$want}}" \
		"all fail with $st: the upstream's own body"
	assert_eq "$(( $(delta a) + $(delta bc) ))" 3 "all fail with $st: exactly 3 attempts"
	for m in a b c; do mfail "$m" '{"status":503,"count":0}'; done
	# The third attempt may return to a (never twice in a row): a may
	# have opened. Let the cooldown pass and the probes close everything.
	sleep 3.2
	for _ in 1 2 3 4; do req -H "x-claude-code-session-id: s$RANDOM"; done
done
wait_until "bstate a" 0 20
assert_eq "$(bstate a)" 0 "after the rounds: a closed again"

# --- 4. breakers open, go half-open, probe, close ---------------------------------
mfail a '{"status":503,"count":100}'
req; req
# Attempt results reach the agent a few ms after the answer: wait for them.
wait_until "bstate a" 1 20
assert_eq "$(bstate a)" 1 "breaker: open after 2 consecutive failures"
grep -q 'credential a--k: 2 consecutive failures' "$T_DIR/agent.log" &&
	ok "breaker: the opening is logged" || fail "breaker: no log line"
wait_until "hstate a" DOWN 30 && ok "breaker: HAProxy sees the server down (agent-check)" ||
	fail "breaker: HAProxy says '$(hstate a)'"
snap
for _ in 1 2 3; do req; done
assert_eq "$(delta a)/$(delta bc)" "0/3" "breaker open: nothing reaches a"
sleep 3.2
assert_eq "$(bstate a)" 2 "breaker: half-open after the cooldown"
wait_until "hstate a" UP 30 && ok "breaker: HAProxy sees half-open as up" ||
	fail "breaker: HAProxy says '$(hstate a)' when half-open"
snap
req
clean_stream && ok "failed probe: the client still gets a clean stream" || fail "probe: $CODE"
wait_until "bstate a" 1 20
assert_eq "$(delta a)/$(bstate a)" "1/1" "failed probe: one request at a, open again"
grep -q 'credential a--k: probe failed' "$T_DIR/agent.log" && ok "failed probe: logged" ||
	fail "failed probe: no log line"
mfail a '{"status":503,"count":0}'
sleep 3.2
snap
req
wait_until "bstate a" 0 20
assert_eq "$CODE/$(delta a)/$(bstate a)" "200/1/0" "probe answered: breaker closed"
grep -q 'credential a--k: probe answered 200; closed' "$T_DIR/agent.log" &&
	ok "probe answered: logged" || fail "probe answered: no log line"
req
assert_eq "$(delta a)" 2 "closed: traffic is back at a"
assert_match "$(metric realms_breaker_opened_total)" '^[2-9]$' "metrics: breaker openings counted"

# --- 5. a 429's retry-after keeps the credential out that long --------------------
mfail a '{"status":429}'
snap
req -H 'x-mock-retry-after: 4'
clean_stream && ok "429 at a: the client sees one clean stream" || fail "429: $CODE"
t0=$(date +%s%N)
wait_until "bstate a" 1 20
assert_eq "$(delta a)/$(bstate a)" "1/1" "429: a is out"
sleep 2
req
assert_eq "$(delta a)" 1 "429: still out after 2 s of a 4 s retry-after"
while [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 4300 ]; do sleep 0.1; done
req
assert_eq "$CODE/$(delta a)" "200/2" "429: back after the retry-after"

# 429 when every attempt fails: the client gets 429, not the relay's 425.
for m in a b c; do mfail "$m" '{"status":429,"count":10}'; done
req
assert_eq "$CODE" 429 "all 429: the client gets 429"
assert_match "$(cat "$T_DIR/out")" '"type":"rate_limit_error"' "all 429: the upstream's body"
for m in a b c; do mfail "$m" '{"status":503,"count":0}'; done
sleep 1.5   # the mock's default retry-after is 1 s

# --- 6. no attempt possible: a clear overloaded_error ------------------------------
for m in a b c; do mfail "$m" '{"status":503,"count":100}'; done
allopen() { echo "$(bstate a)$(bstate b)$(bstate c)"; }
for _ in $(seq 12); do
	[ "$(allopen)" = 111 ] && break
	req -H "x-claude-code-session-id: o$RANDOM"
	sleep 0.1
done
assert_eq "$(allopen)" 111 "every breaker open"
snap
req
assert_eq "$CODE" 503 "all breakers open: 503"
assert_match "$(cat "$T_DIR/out")" '"type":"overloaded_error"' "all breakers open: overloaded_error"
assert_eq "$(( $(delta a) + $(delta bc) ))" 0 "all breakers open: no upstream touched"
for m in a b c; do mfail "$m" '{"status":503,"count":0}'; done
sleep 3.2
for _ in 1 2 3 4 5 6; do req -H "x-claude-code-session-id: p$RANDOM"; done
# a takes the traffic again; b and c wait half-open for their own probe.
wait_until "bstate a" 0 20
assert_eq "$(bstate a)" 0 "a's probe answered: closed"
assert_match "$(bstate b)$(bstate c)" '^[02][02]$' "b and c: no longer open"

# --- 7. a 401 takes the credential out until the configuration is reloaded --------
mfail a '{"status":401}'
snap
req
clean_stream && ok "401 at a: retried, one clean stream" || fail "401: $CODE"
wait_until "bstate a" 3 20
assert_eq "$(bstate a)" 3 "401: credential revoked"
grep -q 'credential a--k: the upstream answered 401 (key refused); out of service until the configuration is reloaded' \
	"$T_DIR/agent.log" && ok "401: logged" || fail "401: no log line"
sleep 3.5
req
assert_eq "$(delta a)" 1 "401: still out after the cooldown"
kill -HUP "$AGENT_PID"
wait_until "bstate a" 0 30 && ok "reload: the credential is back" || fail "reload: state $(bstate a)"
wait_until "hstate a" UP 30 || true
req
assert_eq "$CODE/$(delta a)" "200/2" "reload: a answers again"

# --- 8. the retried request is billed once, to the channel that answered -----------
bill() { v=$(rcli HGET "realms:usage:$1:$DAY" requests); echo "${v:-0}"; }
sleep 1
m0=$(bill model:claude-sonnet-4-5); a0=$(bill channel:a); bc0=$(( $(bill channel:b) + $(bill channel:c) ))
mfail a '{"status":503}'
CODE=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 20 -H "x-api-key: $TOK" -H 'content-type: application/json' \
	-H 'x-mock-usage: in=7,out=9' --data-binary '{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}' "$URL")
assert_eq "$CODE" 200 "billing: the retried request answered"
for _ in $(seq 50); do [ "$(bill model:claude-sonnet-4-5)" -gt "$m0" ] && break; sleep 0.1; done
sleep 0.5
assert_eq "$(( $(bill model:claude-sonnet-4-5) - m0 ))" 1 "billing: billed once"
assert_eq "$(( $(bill channel:a) - a0 ))/$(( $(bill channel:b) + $(bill channel:c) - bc0 ))" "0/1" \
	"billing: to the channel that answered"

# --- 9. a request larger than the retry buffer is not retried ----------------------
head -c 200000 /dev/zero | tr '\0' 'x' >"$T_DIR/pad"
printf '{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"%s"}]}' \
	"$(cat "$T_DIR/pad")" >"$T_DIR/big.json"
mfail a '{"status":503}'
snap
CODE=$(curl -sS -o "$T_DIR/out" -w '%{http_code}' --max-time 20 -H "x-api-key: $TOK" \
	-H 'content-type: application/json' --data-binary "@$T_DIR/big.json" "$URL")
assert_eq "$CODE" 503 "200 KB body: the upstream's 503 reaches the client"
assert_match "$(cat "$T_DIR/out")" '"message":"mock: ' "200 KB body: with the upstream's body"
assert_eq "$(delta a)/$(delta bc)" "1/0" "200 KB body: not retried"

grep -q 'sk-up-' "$T_DIR/agent.log" "$T_DIR/haproxy.log" && fail "key in a log" || ok "no key in the logs"
finish
