#!/usr/bin/env bash
# Usage and billing, exactly once: requests through HAProxy with the mock
# reporting random usage, streaming and not, in parallel; the Redis totals
# must equal the mock's own sums to the token, through a Redis outage and an
# agent restart in the middle of the traffic, and the agent down for 8 s while
# streams end; long streams sent as head and tail; a request HAProxy retried
# (first attempt 503) is billed once; count_tokens is never billed.
. "$(dirname "$0")/lib.sh"

# Redis persists every write: a restart must not lose what was committed.
start_redis "" --appendonly yes --appendfsync always || { fail "redis"; finish; }
RPORT=$REDIS_PORT
start_mock up
ADMIN=$(free_port)
cat >"$T_DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$RPORT",
  "agent": { "threads": 2, "mirror": "$T_DIR/mirror.sock", "spool": "$T_DIR/spool",
             "admin": "127.0.0.1:$ADMIN" },
  "models": [ {"name": "claude-sonnet-4-5", "enabled": true} ],
  "channels": [
    {"name": "up", "base_url": "http://127.0.0.1:$MOCK_PORT",
     "credentials": [{"name": "k1", "key": "sk-up-1"}, {"name": "k2", "key": "sk-up-2"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}}
  ]
}
JSON
GW_MIRROR="$T_DIR/mirror.sock" start_gateway "$T_DIR/realms.json" || { fail "gateway"; finish; }
export REALMS_REDIS="127.0.0.1:$RPORT"
TOK=$("$REALMS_BIN/realmsctl" token add --name biller 2>/dev/null)
URL="http://127.0.0.1:$GW_PORT/v1/messages"
DAY=$(date -u +%Y%m%d)
MKEY="realms:usage:model:claude-sonnet-4-5:$DAY"

# burst FIRST LAST: requests FIRST..LAST, 16 at a time; even ones stream.
burst() {
	seq "$1" "$2" | xargs -P 16 -I{} sh -c '
		s=false; [ $(({} % 2)) -eq 0 ] && s=true
		curl -sS -o /dev/null --max-time 30 -H "x-api-key: $0" -H "content-type: application/json" \
			-H "x-mock-random-usage: {}" -H "x-mock-deltas: $(({} % 5 + 1))" \
			--data-binary "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":64,\"stream\":$s,\"messages\":[]}" "$1"
	' "$TOK" "$URL" 2>/dev/null
}

mock_sum() { curl -s "http://127.0.0.1:$MOCK_PORT/mock/stats" | sed -n "s/.*\"usage\":{[^}]*\"$1\":\([0-9]*\).*/\1/p"; }
mock_ok() { curl -s "http://127.0.0.1:$MOCK_PORT/mock/stats" | sed -n 's/.*"by_status":{[^}]*"200":\([0-9]*\).*/\1/p'; }
redis_sum() { v=$(rcli HGET "$MKEY" "$1"); echo "${v:-0}"; }
metric_of() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# wait_billed N: until Redis counts N requests (bounded: 30 s).
wait_billed() {
	for _ in $(seq 150); do
		[ "$(redis_sum requests)" -ge "$1" ] && return 0
		sleep 0.2
	done
	return 1
}
check_totals() {   # check_totals WHAT
	local n; n=$(mock_ok)
	wait_billed "$n" || true
	assert_eq "$(redis_sum requests)" "$n" "$1: requests billed = answered by the upstream ($n)"
	assert_eq "$(redis_sum input)" "$(mock_sum in)" "$1: input tokens"
	assert_eq "$(redis_sum output)" "$(mock_sum out)" "$1: output tokens"
	assert_eq "$(redis_sum cache_write_5m)" "$(mock_sum cw5)" "$1: cache writes 5m"
	assert_eq "$(redis_sum cache_write_1h)" "$(mock_sum cw1)" "$1: cache writes 1h"
	assert_eq "$(redis_sum cache_read)" "$(mock_sum cr)" "$1: cache reads"
}

# --- 1. steady traffic --------------------------------------------------------
burst 1 400
check_totals "400 requests"
# Cost: sonnet 4.5 list prices, in nano-USD, summed over the events stream
# must equal the day's total (every event carries its own exact cost).
ev_cost=$(rcli XRANGE realms:usage:events - + | awk 'prev=="cost_nusd"{s+=$1} {prev=$1} END{printf "%.0f\n", s}')
assert_eq "$(redis_sum cost_nusd)" "$ev_cost" "cost: day total = sum of per-request costs"
assert_eq "$(rcli XLEN realms:usage:events)" "$(redis_sum requests)" "one event per billed request"

# The agent's own counters (admin HTTP, Prometheus text format).
metric() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
page=$(curl -s --max-time 5 -D "$T_DIR/mh" "http://127.0.0.1:$ADMIN/metrics")
assert_match "$(tr -d '\r' <"$T_DIR/mh")" 'Content-Type: text/plain; version=0.0.4' "metrics: Prometheus content type"
assert_match "$page" $'# TYPE realms_mirror_requests_total counter\nrealms_mirror_requests_total [0-9]+' "metrics: typed counters"
assert_eq "$(metric realms_mirror_requests_total)" "$(redis_sum requests)" "metrics: every billed response went through the mirror"
assert_eq "$(metric realms_mirror_acked_total)" "$(redis_sum requests)" "metrics: and was acknowledged"
assert_eq "$(metric realms_spop_protocol_errors_total)" 0 "metrics: no SPOP protocol error"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$ADMIN/healthz")" 200 "healthz: 200"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://127.0.0.1:$ADMIN/nope")" 404 "admin: unknown path 404"

# --- 1b. long streams: the tap sends their head and tail only -------------------
# 200 KB event streams (100 deltas of 2 KB): the tap copies the first and the
# last 8 KB and says how much it left out; the usage is still exact.
gaps0=$(metric realms_mirror_gaps_total)
seq 1 40 | xargs -P 8 -I{} curl -sS -o "$T_DIR/long.{}" --max-time 30 -H "x-api-key: $TOK" \
	-H "content-type: application/json" -H "x-mock-random-usage: {}" -H "x-mock-deltas: 100" \
	-H "x-mock-delta-bytes: 2048" \
	--data-binary '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[]}' "$URL" 2>/dev/null
assert_eq "$(grep -c '^event: content_block_delta' "$T_DIR/long.7")" 100 "long stream: the client got every delta"
check_totals "40 long streams"
# At least one gap per stream: a stream the tap had to send again on a new
# mirror connection (a reconnect under load) counts its gap twice, and is
# still billed once (check_totals above).
gaps=$(( $(metric realms_mirror_gaps_total) - gaps0 ))
[ "$gaps" -ge 40 ] && [ "$gaps" -le 80 ] && ok "long streams: each sent as head + tail ($gaps gaps)" ||
	fail "long streams: $gaps gaps for 40 streams"
skipped=$(metric realms_mirror_skipped_bytes_total)
assert_eq "$(( skipped > 40 * 150000 ))" 1 "long streams: the tap left out most bytes ($skipped)"
assert_eq "$(redis_sum partial)" 0 "long streams: no record partial"

# A long stream that ends with an error event: seen past the gap.
ev0=$(rcli XLEN realms:usage:events)
curl -sS -o /dev/null --max-time 30 -H "x-api-key: $TOK" -H "content-type: application/json" \
	-H "x-mock-deltas: 60" -H "x-mock-delta-bytes: 2048" -H "x-mock-error-after: 59" \
	--data-binary '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[]}' "$URL"
for _ in $(seq 50); do [ "$(rcli XLEN realms:usage:events)" -gt "$ev0" ] && break; sleep 0.2; done
assert_match "$(rcli XREVRANGE realms:usage:events + - COUNT 1 | tr '\n' ' ')" 'partial upstream_error' \
	"long stream ending in an error event: recorded partial, upstream_error"
assert_eq "$(metric 'realms_usage_partial_total{reason="upstream_error"}')" 1 "metrics: one partial record, upstream_error"
assert_eq "$(metric 'realms_usage_partial_total{reason="tap_overflow"}')" 0 "metrics: nothing given up by the tap"

# --- 2. Redis stopped in the middle and restarted ------------------------------
burst 401 700 &
bpid=$!
sleep 1
stop_pid "$REDIS_PID"
sleep 2
start_redis "$RPORT" --appendonly yes --appendfsync always || fail "redis restart"
wait "$bpid"
check_totals "Redis restarted mid-run"
[ -s "$T_DIR/spool/usage.spool" ] && fail "spool not emptied after replay" || ok "spool replayed and emptied"
app=$(metric realms_spool_appended_total)
assert_match "$app" '^[1-9][0-9]*$' "metrics: records spooled while Redis was down"
assert_eq "$(metric realms_spool_replayed_total)" "$app" "metrics: every spooled record replayed"
assert_eq "$(metric realms_spool_bytes)" 0 "metrics: spool empty"

# --- 3. the agent restarted in the middle --------------------------------------
burst 701 1000 &
bpid=$!
sleep 1
stop_pid "$AGENT_PID"
start_agent -c "$T_DIR/realms.json" -l "unix:$T_DIR/agent.sock"
wait_file "$T_DIR/agent.sock" 10
wait "$bpid"
check_totals "agent restarted mid-run"

# --- 3b. the agent down for seconds while streams run -----------------------------
# 60 streams of about 6 s (20 deltas, 300 ms apart) all under way, then the
# agent stops; they end while it is down (the tap holds their copies and
# retries every 500 ms), and it comes back 8 s later: every one is billed,
# exactly.
before=$(mock_ok)
seq 2001 2060 | xargs -P 60 -I{} curl -sS -o /dev/null --max-time 40 -H "x-api-key: $TOK" \
	-H "content-type: application/json" -H "x-mock-random-usage: {}" -H "x-mock-deltas: 20" \
	-H "x-mock-delay-ms: 300" \
	--data-binary '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[]}' "$URL" \
	2>/dev/null &
bpid=$!
for _ in $(seq 100); do [ "$(mock_ok)" -ge $((before + 60)) ] && break; sleep 0.1; done
assert_eq "$(mock_ok)" $((before + 60)) "60 streams under way before the agent stops"
stop_pid "$AGENT_PID"
sleep 8
assert_eq "$(kill -0 "$bpid" 2>/dev/null && echo running || echo ended)" ended \
	"every stream ended while the agent was down"
start_agent -c "$T_DIR/realms.json" -l "unix:$T_DIR/agent.sock"
wait_file "$T_DIR/agent.sock" 10
wait "$bpid"
check_totals "agent down for 8 s"
# HAProxy takes the agent back at its next health check.
for _ in $(seq 100); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "x-api-key: $TOK" \
		"http://127.0.0.1:$GW_PORT/v1/models")" = 200 ] && break
	sleep 0.1
done

# --- 4. a request HAProxy retried is billed once ---------------------------------
# Within the request only for bodies up to failover.max_body (none by
# default): the agent restarts with it, the HAProxy part is the same.
sed 's/"models": \[/"failover": {"max_body": 131072},\n  "models": [/' "$T_DIR/realms.json" \
	>"$T_DIR/realms-retry.json"
stop_pid "$AGENT_PID"
start_agent -c "$T_DIR/realms-retry.json" -l "unix:$T_DIR/agent.sock"
wait_file "$T_DIR/agent.sock" 10
for _ in $(seq 100); do
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H "x-api-key: $TOK" \
		"http://127.0.0.1:$GW_PORT/v1/models")" = 200 ] && break
	sleep 0.1
done
before=$(redis_sum requests)
curl -s -o /dev/null -X POST "http://127.0.0.1:$MOCK_PORT/mock/fail" -d '{"status":503,"count":1}'
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 20 -H "x-api-key: $TOK" -H 'content-type: application/json' \
	-H 'x-mock-usage: in=11,out=22' --data-binary '{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}' "$URL")
assert_eq "$code" 200 "retried request: the client sees one clean 200"
wait_billed $((before + 1))
sleep 0.5
assert_eq "$(redis_sum requests)" $((before + 1)) "retried request: billed once"
assert_match "$(curl -s "http://127.0.0.1:$MOCK_PORT/mock/stats")" '"503":1' "the first attempt did fail"

# --- 5. count_tokens is never billed ---------------------------------------------
before=$(redis_sum requests)
curl -sS -o /dev/null --max-time 10 -H "x-api-key: $TOK" -H 'content-type: application/json' \
	--data-binary '{"model":"claude-sonnet-4-5","messages":[]}' "$URL/count_tokens"
sleep 1
assert_eq "$(redis_sum requests)" "$before" "count_tokens not billed"

# The token's and the channel's day hashes agree with the model's.
assert_eq "$(rcli HGET "realms:usage:token:biller:$DAY" output)" "$(redis_sum output)" "per-token hash agrees"
assert_eq "$(rcli HGET "realms:usage:channel:up:$DAY" input)" "$(redis_sum input)" "per-channel hash agrees"
# --- 6. billing that cannot be dodged ------------------------------------------
# Each case under its own token, so its day hash holds that request alone.
tok_field() { v=$(rcli HGET "realms:usage:token:$1:$DAY" "$2"); echo "${v:-0}"; }
wait_tok() { for _ in $(seq 100); do [ "$(tok_field "$1" requests)" -ge 1 ] && return 0; sleep 0.1; done; return 1; }
# A client hangs up mid-stream (Claude Code's Esc): 200 deltas of 40
# bytes (2,000 output tokens for the whole stream), one every 10 ms, the
# client gone after about 1.3 s.
ESC=$("$REALMS_BIN/realmsctl" token add --name esc 2>/dev/null)
curl -sS -N -o "$T_DIR/esc.out" --max-time 1.3 -H "x-api-key: $ESC" -H 'content-type: application/json' \
	-H 'x-mock-deltas: 200' -H 'x-mock-delta-bytes: 40' -H 'x-mock-delay-ms: 10' \
	--data-binary '{"model":"claude-sonnet-4-5","max_tokens":4000,"stream":true,"messages":[]}' "$URL" 2>/dev/null
got=$(grep -c '^event: content_block_delta' "$T_DIR/esc.out")
wait_tok esc
out=$(tok_field esc output)
assert_match "$got" '^[0-9]+$' "hang-up: the client received $got of 200 deltas"
if [ "$got" -gt 20 ] && [ "$got" -lt 200 ] && [ "$out" -ge $(( got * 10 * 8 / 10 )) ] && [ "$out" -le $(( got * 10 * 12 / 10 + 20 )) ]; then
	ok "hang-up: billed $out output tokens for $got deltas delivered (10 tokens each)"
else
	fail "hang-up: billed $out output tokens for $got deltas delivered"
fi
assert_eq "$(tok_field esc estimated)" 1 "hang-up: the record says it is estimated"
assert_eq "$(rcli XREVRANGE realms:usage:events + - COUNT 50 | grep -A1 -x token | grep -x -c esc)" 1 \
	"hang-up: one event for it"
# A 200 whose usage cannot be read: recorded unparsed, with an estimate.
UNP=$("$REALMS_BIN/realmsctl" token add --name unparsed 2>/dev/null)
curl -sS -o /dev/null --max-time 10 -H "x-api-key: $UNP" -H 'content-type: application/json' \
	-H 'x-mock-deltas: 50' -H 'x-mock-delta-bytes: 100' -H 'x-mock-no-usage: 1' \
	--data-binary '{"model":"claude-sonnet-4-5","max_tokens":4000,"messages":[]}' "$URL" 2>/dev/null
wait_tok unparsed
assert_match "$(tok_field unparsed output)" '^[1-9][0-9]*$' "unreadable answer: output estimated, not zero"
assert_match "$(tok_field unparsed input)" '^[1-9][0-9]*$' "unreadable answer: input estimated from the request"
assert_eq "$(tok_field unparsed estimated)" 1 "unreadable answer: marked estimated"
assert_match "$(metric_of realms_usage_estimated_total)" '^[2-9]$|^[1-9][0-9]+$' "metrics: estimated records counted"
# An upstream that says it served another model: billed as decided, counted.
MM=$("$REALMS_BIN/realmsctl" token add --name mismatch 2>/dev/null)
curl -sS -o /dev/null --max-time 10 -H "x-api-key: $MM" -H 'content-type: application/json' \
	-H 'x-mock-model: claude-opus-4-5-20251101' \
	--data-binary '{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}' "$URL"
wait_tok mismatch
assert_eq "$(rcli SISMEMBER "realms:usage:models:$DAY" claude-opus-4-5-20251101)" 0 \
	"another model reported: billed as the model decided"
assert_eq "$(metric_of realms_usage_model_mismatch_total)" 1 "another model reported: counted"
grep -q 'was asked for claude-sonnet-4-5-20250929 and says it used claude-opus-4-5-20251101' \
	"$T_DIR/agent.log" && ok "another model reported: logged" || fail "mismatch: no log line"

grep -q 'sk-up-' "$T_DIR/agent.log" "$T_DIR/haproxy.log" && fail "key in a log" || ok "no key in the logs"
finish
