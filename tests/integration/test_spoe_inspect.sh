#!/usr/bin/env bash
# Foundation: Debian's HAProxy talks SPOP 2.0 to realms-agent.
# - the captured Claude Code requests come back with the right vars;
# - body inspection edge cases through the whole chain;
# - HAProxy's SPOP health check (option spop-check) sees the agent up, then
#   down when it stops, then up again;
# - garbage on the agent's TCP listener (random bytes, a 4 GB length prefix,
#   a client sending one byte per second) never stops it serving HAProxy.
. "$(dirname "$0")/lib.sh"

export FE_PORT=$(free_port) STATS_PORT=$(free_port)
AGENT_TCP=$(free_port)
export AGENT_SOCK="$T_DIR/agent.sock"
export SPOE_CONF="$REALMS_SRC/tests/integration/inspect.spoe"

start_agent -T -l "unix:$AGENT_SOCK" -l "127.0.0.1:$AGENT_TCP" -t 2
wait_file "$AGENT_SOCK" 10 || { fail "agent did not start"; finish; }
wait_tcp "$AGENT_TCP" 10
start_haproxy "$REALMS_SRC/tests/integration/inspect.cfg" || { fail "haproxy config"; finish; }
wait_tcp "$FE_PORT" 10 || { fail "haproxy did not start"; finish; }

# post BODYFILE [curl args...]: prints the response headers.
post() {
	local body=$1; shift
	curl -sS -o /dev/null -D - --max-time 10 "$@" --data-binary "@$body" \
		"http://127.0.0.1:$FE_PORT/v1/messages?beta=true" | tr -d '\r'
}
hdr() { sed -n "s/^$1: //Ip" <<<"$2" | head -1; }

# Wait until HAProxy's health check has seen the agent (bounded).
stat_line() {
	local out
	exec 5<>"/dev/tcp/127.0.0.1/$STATS_PORT" || return 1
	echo "show stat" >&5
	out=$(cat <&5)
	exec 5<&-
	grep '^spoe_agents,agent,' <<<"$out"
}
server_status() { stat_line | cut -d, -f18; }
wait_status() {
	for _ in $(seq 100); do
		[ "$(server_status)" = "$1" ] && return 0
		sleep 0.1
	done
	return 1
}
wait_status UP && ok "spop-check: agent seen UP" || fail "spop-check: agent not UP ($(server_status))"

# --- the captured Claude Code requests -----------------------------------
fixture_headers "$FIXTURES/messages-1.http"
h=$(post "$FIXTURES/messages-1.json" "${FIXTURE_H[@]}")
assert_eq "$(hdr x-body-status "$h")" ok "messages-1: body status"
assert_eq "$(hdr x-model "$h")" claude-sonnet-4-5 "messages-1: model"
assert_eq "$(hdr x-model-off "$h")" 9 "messages-1: model token offset"
assert_eq "$(hdr x-model-len "$h")" 19 "messages-1: model token length"
# 85 KB body, 64 KB prefix: "stream" (the last key) is not in the prefix.
assert_eq "$(hdr x-stream-state "$h")" absent "messages-1: stream beyond the prefix"
assert_eq "$(hdr x-spoe-error "$h")" "" "messages-1: no SPOE error"

fixture_headers "$FIXTURES/messages-2.http"
h=$(post "$FIXTURES/messages-2.json" "${FIXTURE_H[@]}")
assert_eq "$(hdr x-model "$h")" claude-opus-5-5 "messages-2: model"
assert_eq "$(hdr x-stream-state "$h")" present "messages-2: stream inside the whole body"
assert_eq "$(hdr x-stream "$h")" 1 "messages-2: stream true"
assert_eq "$(hdr x-body-status "$h")" ok "messages-2: complete body is valid"

# --- edge cases through the chain -----------------------------------------
body() { printf '%s' "$1" >"$T_DIR/body.json"; post "$T_DIR/body.json" -H 'content-type: application/json'; }
h=$(body '{"messages":[{"role":"user","content":"hi","model":"nested"}],"model":"real-one","stream":false}')
assert_eq "$(hdr x-model "$h")" real-one "nested model is not the model"
assert_eq "$(hdr x-stream "$h")" 0 "stream false"
h=$(body '{"model":"a","model":"b"}')
assert_eq "$(hdr x-body-status "$h")" duplicate_key "duplicate top-level model refused"
h=$(body '{"mod\u0065l":"x\u00e9y"}')
assert_eq "$(hdr x-model "$h")" "xéy" "escaped key and value decoded"
h=$(body '[{"model":"x"}]')
assert_eq "$(hdr x-body-status "$h")" not_object "array root"
h=$(body '{"model":"x",')
assert_eq "$(hdr x-body-status "$h")" invalid "complete but unterminated body"
h=$(body '{"max_tokens":10}')
assert_eq "$(hdr x-model-state "$h")" absent "model missing"
h=$(body '{"model":42}')
assert_eq "$(hdr x-model-state "$h")" wrong_type "model not a string"

# Pipelining: 40 requests in parallel over the same agent connections.
seq 40 | xargs -P 20 -I{} curl -sS -o /dev/null -D - --max-time 10 \
	-H 'content-type: application/json' --data-binary '{"model":"m-{}"}' \
	"http://127.0.0.1:$FE_PORT/v1/messages" >"$T_DIR/par.txt" 2>&1
n=$(grep -ci '^x-model: m-' "$T_DIR/par.txt")
assert_eq "$n" 40 "40 parallel requests all answered"
mism=0
for i in $(seq 40); do grep -qi "^x-model: m-$i"$'\r'"\?$" "$T_DIR/par.txt" || mism=1; done
assert_eq "$mism" 0 "each parallel request got its own ACK"

# --- garbage on the agent's TCP listener ---------------------------------
# A 4 GB length prefix: AGENT-DISCONNECT status 3 (frame too big), closed.
reply=$(timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$AGENT_TCP; printf '\xff\xff\xff\xff' >&3; cat <&3" | od -An -tx1 | tr -d ' \n')
# frame: len(4), type 0x66, flags 00000001, stream-id 00, frame-id 00,
# "status-code" (len 0x0b) as uint32 (0x03) = 3
assert_match "$reply" '^[0-9a-f]{8}660000000100000b7374617475732d636f64650303' "4 GB length prefix: DISCONNECT status 3"

# Random bytes, several times.
for i in 1 2 3; do
	head -c 4096 /dev/urandom | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$AGENT_TCP; cat >&3; cat <&3 >/dev/null" 2>/dev/null
done
# NOTIFY before HELLO: invalid frame.
reply=$(timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$AGENT_TCP; printf '\x00\x00\x00\x07\x03\x00\x00\x00\x01\x01\x01' >&3; cat <&3" | od -An -tx1 | tr -d ' \n')
assert_match "$reply" '^[0-9a-f]{8}660000000100000b7374617475732d636f64650304' "NOTIFY before HELLO: DISCONNECT status 4"

# One byte per second: the agent closes it at its HELLO deadline, and serves
# HAProxy meanwhile.
(
	exec 3<>"/dev/tcp/127.0.0.1/$AGENT_TCP"
	for b in 00 00 00 40 01 00 00 00; do printf "\\x$b" >&3 2>/dev/null || exit 0; sleep 1; done
) &
slow=$!
sleep 1.5
h=$(post "$FIXTURES/messages-1.json" -H 'content-type: application/json')
assert_eq "$(hdr x-model "$h")" claude-sonnet-4-5 "served while a slow client dribbles"
wait $slow
kill -0 "$AGENT_PID" 2>/dev/null && ok "agent alive after garbage" || fail "agent died"
h=$(post "$FIXTURES/messages-1.json" -H 'content-type: application/json')
assert_eq "$(hdr x-model "$h")" claude-sonnet-4-5 "served after garbage"
grep -q 'no HELLO within' "$T_DIR/agent.log" && ok "slow client cut at the HELLO deadline" || fail "slow client not cut"

# --- health check follows the agent's life --------------------------------
stop_pid "$AGENT_PID"
assert_eq "$?" 0 "agent exits 0 on SIGTERM"
wait_status DOWN && ok "spop-check: agent seen DOWN when stopped" || fail "still $(server_status)"
h=$(post "$FIXTURES/messages-1.json" -H 'content-type: application/json')
assert_eq "$(hdr x-model "$h")" "" "no vars while the agent is down"
start_agent -T -l "unix:$AGENT_SOCK" -l "127.0.0.1:$AGENT_TCP" -t 1
wait_status UP && ok "spop-check: agent UP again after restart" || fail "not UP after restart"
h=$(post "$FIXTURES/messages-1.json" -H 'content-type: application/json')
assert_eq "$(hdr x-model "$h")" claude-sonnet-4-5 "served after agent restart"

finish
