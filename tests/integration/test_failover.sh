#!/usr/bin/env bash
# Failover and breakers, with the mock upstream on three channels: a is
# preferred (priority 10), b and c are the fallbacks. Each retryable failure
# of a moves the request to b or c and the client sees one clean answer; an
# error after the stream started is not retried; when every attempt fails
# the client gets the last upstream's real status and body, each credential
# tried once; breakers open, go half-open, probe and close; a 429's
# retry-after keeps the credential out that long; a 403 belongs to the
# request (not retried, not counted: no outage); a 401 only makes the key
# suspect until a probe with the key alone says whether the provider
# refuses it, and a passing probe puts it back without a reload; an OAuth
# anthropic-beta never reaches the provider; the retried request is billed
# once, to the channel that answered; a request larger than the retry
# buffer is not retried.
. "$(dirname "$0")/lib.sh"

start_redis || { fail "redis"; finish; }
start_mock a; PORT_A=$MOCK_PORT; MOCK_A_PID=$SPAWNED
start_mock b; PORT_B=$MOCK_PORT
start_mock c; PORT_C=$MOCK_PORT
ADMIN=$(free_port)
cat >"$T_DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 2, "mirror": "$T_DIR/mirror.sock",
             "admin": "127.0.0.1:$ADMIN", "spool": "$T_DIR/spool" },
  "failover": { "attempts": 3, "failures": 2, "cooldown": 3, "timeout": 2, "avoid": 0, "max_body": 1048576 },
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
GW_MIRROR="$T_DIR/mirror.sock" start_gateway "$T_DIR/realms.json" || { fail "gateway"; finish; }
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"
TOK=$("$REALMS_BIN/realmsctl" token add --name dev 2>/dev/null)
URL="http://127.0.0.1:$GW_PORT/v1/messages"
DAY=$(date -u +%Y%m%d)

grep -q "retries 2" "$T_DIR/hp/channels.cfg" && ok "rendered: attempts 3 = retries 2" ||
	fail "rendered: retries"
grep -q "agent-check" "$T_DIR/hp/channels.cfg" && fail "rendered: an agent-check" ||
	ok "rendered: no agent-check (the agent chooses every attempt's credential)"
grep -q "retry-on .* 403" "$T_DIR/hp/channels.cfg" && fail "rendered: 403 is retried" ||
	ok "rendered: a 403 is never retried"

port_of() { case $1 in a) echo "$PORT_A" ;; b) echo "$PORT_B" ;; c) echo "$PORT_C" ;; esac; }
stats() { curl -s --max-time 5 "http://127.0.0.1:$(port_of "$1")/mock/stats"; }
msgs() { stats "$1" | sed -n 's/.*"messages":\([0-9]*\).*/\1/p'; }
mfail() { curl -s -o /dev/null --max-time 5 -X POST "http://127.0.0.1:$(port_of "$1")/mock/fail" -d "$2"; }
mauth() { curl -s -o /dev/null --max-time 5 -X POST "http://127.0.0.1:$(port_of "$1")/mock/auth" -d "{\"refuse\":$2}"; }
models() { stats "$1" | sed -n 's/.*"by_status":{\([^}]*\)}.*/\1/p'; }
metric() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
bstate() { metric "realms_breaker_state{server=\"$1--k\"}"; }
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
	assert_eq "$(delta a)/$(( $(msgs b) - B0 ))/$(( $(msgs c) - C0 ))" "1/1/1" \
		"all fail with $st: each credential tried once (the agent remembers the request's tries)"
	for m in a b c; do mfail "$m" '{"status":503,"count":0}'; done
	# Let the cooldown pass and the probes close everything.
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
grep -q 'credential a--k: 2 requests failed in a row' "$T_DIR/agent.log" &&
	ok "breaker: the opening is logged" || fail "breaker: no log line"
snap
for _ in 1 2 3; do req; done
assert_eq "$(delta a)/$(delta bc)" "0/3" "breaker open: nothing reaches a"
sleep 3.2
assert_eq "$(bstate a)" 2 "breaker: half-open after the cooldown"
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

# --- 7. a 403 belongs to the request: not retried, not counted, no outage ------
snap
for _ in 1 2 3 4 5 6; do req -H 'x-mock-status: 403'; done
assert_eq "$CODE" 403 "403: the client gets the upstream's 403"
assert_match "$(cat "$T_DIR/out")" '"type":"permission_error"' "403: with its body"
assert_eq "$(delta a)/$(delta bc)" "6/0" "403: never retried on another credential"
assert_eq "$(bstate a)" 0 "403: the credential stays closed"
req
assert_eq "$CODE/$(delta a)" "200/7" "403: the next request is served by a (no outage)"

# --- 8. a 401 makes the key suspect; a probe with the key alone decides ----------
# The request was odd (the provider refused it, not the key): the probe
# passes and the credential never leaves service.
mfail a '{"status":401}'
snap
req
clean_stream && ok "401 to one request at a: retried, one clean stream" || fail "401: $CODE"
assert_eq "$(delta a)/$(delta bc)" "1/1" "401: one attempt at a, then b or c"
grep -q 'credential a--k: the upstream answered 401 to a request; probing the key' \
	"$T_DIR/agent.log" && ok "401: the suspicion is logged" || fail "401: no log line"
wait_until "metric realms_key_probes_ok_total" 1 50 && ok "401: the key probe passed" ||
	fail "401: probes ok=$(metric realms_key_probes_ok_total)"
assert_eq "$(bstate a)" 0 "401 to a request: the key is fine, the credential closed"
rec=$(grep -l '^GET /v1/models' "$T_DIR"/rec-a/*.req | tail -1)
[ -n "$rec" ] && grep -qi '^x-api-key: sk-up-a' "$rec" && grep -qi '^authorization: Bearer sk-up-a' "$rec" &&
	ok "401: the probe used a's key alone (GET /v1/models)" || fail "401: no probe at a"
req
assert_eq "$CODE/$(delta a)" "200/2" "401 to a request: a keeps serving"

# The key is really refused: the probe confirms, the credential leaves
# service, is probed every cooldown, and comes back when the key works.
mauth a true
snap
req
clean_stream && ok "refused key: the client still gets a clean stream" || fail "refused key: $CODE"
wait_until "bstate a" 3 50
assert_eq "$(bstate a)" 3 "refused key: revoked after the probe's 401"
grep -q 'credential a--k: the upstream refuses the key (401 to a probe); out of service' \
	"$T_DIR/agent.log" && ok "refused key: logged" || fail "refused key: no log line"
snap
for _ in 1 2 3; do req; done
assert_eq "$(delta a)/$(delta bc)" "0/3" "refused key: nothing reaches a"
mauth a false
wait_until "bstate a" 0 60 && ok "key accepted again: back in service after a probe, without a reload" ||
	fail "key accepted again: state $(bstate a)"
req
assert_eq "$CODE/$(delta a)" "200/1" "key accepted again: a serves"
# A reload forgives a revoked key at once.
mauth a true
req
wait_until "bstate a" 3 50
mauth a false
kill -HUP "$AGENT_PID"
wait_until "bstate a" 0 30 && ok "reload: a revoked key is back" || fail "reload: state $(bstate a)"

# --- 9. an OAuth anthropic-beta never reaches the provider -----------------------
# Such a beta makes the provider read the injected Bearer key as an OAuth
# token (401 on every credential): the agent removes it.
snap
req -H 'anthropic-beta: claude-code-20250219,oauth-2025-04-20'
assert_eq "$CODE" 200 "oauth beta: the request is served"
rec=$(ls "$T_DIR"/rec-a/*.req | tail -1)
grep -qi '^anthropic-beta: claude-code-20250219' "$rec" && ! grep -qi 'oauth-' "$rec" &&
	ok "oauth beta: removed, the others passed on" || fail "oauth beta: $(grep -i anthropic-beta "$rec")"
assert_eq "$(bstate a)" 0 "oauth beta: no credential is suspected"

# --- 10. the retried request is billed once, to the channel that answered -----------
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

# --- 11. a request larger than the retry buffer is not retried ----------------------
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
