#!/usr/bin/env bash
# A stream that keeps sending is never cut by a total time; a silent
# upstream is (docs/security.md, "A hostile or broken upstream";
# docs/configuration.md, failover.timeout: "seconds of upstream silence").
#
# failover.timeout is 2 s here. Through real HAProxy, the agent, Redis and
# the mock:
# 1. a streamed /v1/messages answer whose events come every 0.7 s for
#    about 7.7 s (close to 4 x failover.timeout) reaches the client whole
#    and is billed once, with the usage its message_delta reported;
# 2. every backend on the data path has failover.timeout as its server
#    timeout (rendered channels.cfg); every other timeout that HAProxy or
#    the shim could apply to the stream (defaults' timeout client and
#    timeout server, timeout tunnel, timeout http-request, SPOE's
#    processing timeout, tune.lua.session-timeout and service-timeout, the
#    tap's TAP_READ_TIMEOUT_S on the mirror) is made small in copies of
#    realms.cfg, realms.spoe and realms.lua for a second gateway, and the
#    same stream passes it whole and billed exactly; there timeout client
#    is 1 s, and a stream whose events are 1.5 s apart (longer than
#    timeout client, shorter than failover.timeout) passes too: the client
#    side's timeout does not bound the gaps of an answer;
# 3. the contrast: an upstream silent for failover.timeout IS cut. Before
#    the response started the attempt is retried on the other credential
#    (client: one clean 200, billed once, to the one that answered); when
#    every attempt is silent the client gets 504 with the configured body;
#    after the response started the stream ends where the upstream stopped,
#    is not retried, and the record is partial (truncated), estimated from
#    what was delivered, never less than message_start.
. "$(dirname "$0")/lib.sh"

TIMEOUT_S=2       # failover.timeout
GAP_MS=700        # the mock's pause between events
DELTAS=6          # 6 deltas + 6 other events = 12 events, 11 gaps: 7.7 s
USAGE='in=1200,out=345,cw5=10,cw1=20,cr=300'   # what message_delta reports

start_redis || { fail "redis"; finish; }
start_mock up; PORT_1=$MOCK_PORT
start_mock up2; PORT_2=$MOCK_PORT

# realms_json ID MOCK_PORT MAX_BODY: the configuration of gateway ID (its
# own mirror and admin listener; Redis, hence tokens and usage, shared).
# MAX_BODY is failover.max_body: gateway 1 retries within the request
# (through the relay), gateway 2 sends requests straight to their channel
# (the default), so a live stream is checked on both paths.
realms_json() {
	cat >"$T_DIR/realms$1.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 2, "mirror": "$T_DIR/mirror$1.sock",
             "admin": "127.0.0.1:$(free_port)", "spool": "$T_DIR/spool$1" },
  "failover": { "attempts": 2, "failures": 5, "cooldown": 30, "timeout": $TIMEOUT_S,
                "max_body": $3 },
  "models": [ {"name": "claude-sonnet-4-5", "enabled": true} ],
  "channels": [
    {"name": "up", "base_url": "http://127.0.0.1:$2",
     "credentials": [{"name": "k1", "key": "sk-up-1"}, {"name": "k2", "key": "sk-up-2"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}}
  ]
}
JSON
}

# Gateway 1: haproxy/realms.cfg as shipped.
realms_json "" "$PORT_1" 1048576
GW_MIRROR="$T_DIR/mirror.sock" start_gateway "$T_DIR/realms.json" || { fail "gateway"; finish; }
GW1=$GW_PORT

# Gateway 2: copies with every other timeout on the path made small: 2 s,
# 1 s for timeout client (shorter than failover.timeout, see 2c), for the
# Lua execution limits and the SPOE verdict (which take milliseconds). The
# rendered backends are failover.timeout (2 s) as above.
S="$T_DIR/small"
mkdir -p "$S"
sed -e 's/^\(    timeout client\) 10m$/\1 1s/' \
	-e 's/^\(    timeout server\) 600s$/\1 2s\n    timeout tunnel 2s/' \
	-e 's/^\(    timeout http-request\) 30s$/\1 2s/' \
	-e 's/^\(    tune.bufsize 131072\)$/\1\n    tune.lua.session-timeout 1s\n    tune.lua.service-timeout 1s/' \
	"$REALMS_SRC/haproxy/realms.cfg" >"$S/realms.cfg"
sed -e 's/^\(    timeout processing\) 3s$/\1 1s/' \
	"$REALMS_SRC/haproxy/realms.spoe" >"$S/realms.spoe"
sed -e 's/^local TAP_READ_TIMEOUT_S = 30$/local TAP_READ_TIMEOUT_S = 1/' \
	"$REALMS_SRC/lua-shim/realms.lua" >"$S/realms.lua"
# Each change must have been made (a line that moved would make the copy
# test nothing).
assert_eq "$(grep -c -E '^    timeout (server|tunnel|http-request) 2s$|^    timeout client 1s$' "$S/realms.cfg")" 4 \
	"copy: defaults' timeout client 1 s; server, tunnel, http-request 2 s"
assert_eq "$(grep -c -E '^    tune\.lua\.(session|service)-timeout 1s$' "$S/realms.cfg")" 2 \
	"copy: Lua session and service timeouts are 1 s"
assert_eq "$(grep -c '^    timeout processing 1s$' "$S/realms.spoe")" 2 \
	"copy: both SPOE engines' processing timeout is 1 s"
assert_eq "$(grep -c '^local TAP_READ_TIMEOUT_S = 1$' "$S/realms.lua")" 1 \
	"copy: the tap's mirror read timeout is 1 s"
realms_json 2 "$PORT_2" 0
GW_ID=2 GW_MIRROR="$T_DIR/mirror2.sock" GW_REALMS_CFG="$S/realms.cfg" GW_REALMS_SPOE="$S/realms.spoe" \
	GW_REALMS_LUA="$S/realms.lua" start_gateway "$T_DIR/realms2.json" || { fail "gateway 2"; finish; }
GW2=$GW_PORT
# Gateway 2 runs the copies: an idle connection is answered 408 after
# timeout http-request (2 s; 30 s as shipped), and the files it reads are
# the changed ones.
idle=$( { exec 3<>"/dev/tcp/127.0.0.1/$GW2"; timeout 5 head -c 12 <&3; } 2>/dev/null)
assert_eq "$idle" "HTTP/1.1 408" "gateway 2 runs the copied realms.cfg (idle connection: 408 within 5 s)"
assert_eq "$(grep -c '^    timeout processing 1s$' "$T_DIR/hp2/realms.spoe")" 2 "gateway 2 reads the copied realms.spoe"
assert_eq "$(tr '\0' '\n' <"/proc/$HAPROXY_PID/environ" | grep -x "REALMS_LUA=$S/realms.lua")" \
	"REALMS_LUA=$S/realms.lua" "gateway 2 loads the copied shim"

export REALMS_REDIS="127.0.0.1:$REDIS_PORT"
DAY=$(date -u +%Y%m%d)
new_token() { "$REALMS_BIN/realmsctl" token add --name "$1" 2>/dev/null; }
# tok_field NAME FIELD: the token's day counter (absent reads 0).
tok_field() { local v; v=$(rcli HGET "realms:usage:token:$1:$DAY" "$2"); echo "${v:-0}"; }
# wait_tok NAME: until the token has a billed request (bounded: 15 s).
wait_tok() {
	for _ in $(seq 150); do
		[ "$(tok_field "$1" requests)" -ge 1 ] && return 0
		sleep 0.1
	done
	return 1
}
# ev_field TOKEN FIELD: FIELD of every usage event of TOKEN, one a line
# (redis-cli prints an entry as its id, then field and value lines).
ev_field() {
	rcli XRANGE realms:usage:events - + | awk -v t="$1" -v f="$2" '
		function flush() { if (tok == t) print val; tok = ""; val = "" }
		/^[0-9]+-[0-9]+$/ && k == "" { flush(); next }
		k == "" { k = $0; next }
		{ if (k == "token") tok = $0; if (k == f) val = $0; k = "" }
		END { flush() }'
}
msgs() { curl -s --max-time 5 "http://127.0.0.1:$1/mock/stats" | sed -n 's/.*"messages":\([0-9]*\).*/\1/p'; }
mfail() { curl -s -o /dev/null --max-time 5 -X POST "http://127.0.0.1:$1/mock/fail" -d "$2"; }

# stream GW_PORT TOKEN NAME [curl args...]: one streamed request; the body
# in $T_DIR/NAME.out, the headers in NAME.hdr, "status seconds" in
# NAME.res, curl's exit status in NAME.rc. Bounded: 20 s.
stream() {
	local port=$1 tok=$2 name=$3
	shift 3
	curl -sS -N -o "$T_DIR/$name.out" -D "$T_DIR/$name.hdr" -w '%{http_code} %{time_total}' \
		--max-time 20 -H "x-api-key: $tok" -H 'content-type: application/json' "$@" \
		--data-binary '{"model":"claude-sonnet-4-5","max_tokens":4000,"stream":true,"messages":[]}' \
		"http://127.0.0.1:$port/v1/messages" >"$T_DIR/$name.res" 2>"$T_DIR/$name.err"
	echo $? >"$T_DIR/$name.rc"
}
status_of() { cut -d' ' -f1 "$T_DIR/$1.res"; }
# ms_of NAME: the request's wall time in milliseconds.
ms_of() { awk '{ printf "%d\n", $2 * 1000 }' "$T_DIR/$1.res"; }
events() { grep -c "^event: $2\$" "$T_DIR/$1.out"; }
rid_of() { tr -d '\r' <"$T_DIR/$1.hdr" | sed -n 's/^x-realms-request-id: //Ip'; }

# --- 2a. the data path's server timeouts are failover.timeout ------------------
# Every backend the rendered part defines (the pool and each up_<channel>)
# sets timeout server to failover.timeout, and nothing else (no timeout
# tunnel or client of its own).
for hp in hp hp2; do
	bk=$(awk '/^backend /{ b = $2 } /^    timeout /{ print b " " $0 }' "$T_DIR/$hp/channels.cfg" | tr -s ' ')
	assert_eq "$bk" "realms_pool timeout server ${TIMEOUT_S}s
up_up timeout server ${TIMEOUT_S}s" "$hp: rendered backends: timeout server ${TIMEOUT_S}s, no other timeout"
done

# --- 1. and 2b. a live stream outlives every timeout --------------------------
# Both gateways at once (one stream each, on their own mock), to keep the
# test short: ~7.7 s of events, one every 0.7 s.
LIVE=(-H "x-mock-deltas: $DELTAS" -H "x-mock-delta-bytes: 40" -H "x-mock-delay-ms: $GAP_MS"
	-H "x-mock-usage: $USAGE")
T1=$(new_token live1)   # the token's name is the record's token field
T2=$(new_token live2)
m1=$(msgs "$PORT_1"); m2=$(msgs "$PORT_2")
stream "$GW1" "$T1" live1 "${LIVE[@]}" &
P1=$!
stream "$GW2" "$T2" live2 "${LIVE[@]}" &
P2=$!
# 2c. Events 1.5 s apart on gateway 2 (timeout client 1 s, failover.timeout
# 2 s): 7 events, 6 gaps, 9 s.
T3=$(new_token gaps)
stream "$GW2" "$T3" gaps -H 'x-mock-deltas: 1' -H 'x-mock-delta-bytes: 40' -H 'x-mock-delay-ms: 1500' \
	-H "x-mock-usage: $USAGE" &
P3=$!
wait "$P1" "$P2" "$P3"

# live_checks NAME WHAT (NAME: the request's and its token's)
live_checks() {
	local n=$1 what=$2 rid ms
	assert_eq "$(status_of "$n")/$(cat "$T_DIR/$n.rc")" "200/0" "$what: status 200, the transfer ended cleanly"
	ms=$(ms_of "$n")
	[ "$ms" -ge $(( 3 * TIMEOUT_S * 1000 )) ] && ok "$what: it lasted ${ms} ms, over 3 x failover.timeout" ||
		fail "$what: it lasted ${ms} ms, under 3 x failover.timeout (the mock did not pace it?)"
	assert_eq "$(events "$n" message_start)/$(events "$n" content_block_delta)/$(events "$n" message_stop)/$(events "$n" error)" \
		"1/$DELTAS/1/0" "$what: message_start, every delta, message_stop, no error event"
	wait_tok "$n" || fail "$what: not billed within 15 s"
	sleep 0.5   # a second record would land now
	assert_eq "$(tok_field "$n" requests)/$(tok_field "$n" partial)/$(tok_field "$n" estimated)/$(tok_field "$n" errors)" \
		"1/0/0/0" "$what: billed once, not partial, not estimated"
	assert_eq "$(tok_field "$n" input)/$(tok_field "$n" output)/$(tok_field "$n" cache_write_5m)/$(tok_field "$n" cache_write_1h)/$(tok_field "$n" cache_read)" \
		"1200/345/10/20/300" "$what: billed the usage the stream reported ($USAGE)"
	rid=$(rid_of "$n")
	assert_eq "$(ev_field "$n" req_id)" "$rid" "$what: one usage event, for this request ($rid)"
}
live_checks live1 "live stream, realms.cfg as shipped"
live_checks live2 "live stream, every other timeout small"
DELTAS=1 live_checks gaps "events 1.5 s apart, timeout client 1 s"
assert_eq "$(( $(msgs "$PORT_1") - m1 ))/$(( $(msgs "$PORT_2") - m2 ))" "1/2" \
	"live streams: one attempt upstream each (none retried)"

# --- 3. the contrast: silence is cut ------------------------------------------
# 3a. The first attempt gets no byte at all: after failover.timeout it is
# retried on the other credential, and the client sees one clean stream,
# billed once, to the credential that answered.
TR=$(new_token retried)
m=$(msgs "$PORT_1")
first=$(find "$T_DIR/rec-up" -name '*.req' | wc -l)
mfail "$PORT_1" '{"status":200,"stall_after":0}'
stream "$GW1" "$TR" retried -H 'x-mock-usage: in=100,out=7'
assert_eq "$(status_of retried)/$(cat "$T_DIR/retried.rc")" "200/0" "silent first attempt: the client gets 200"
assert_eq "$(events retried message_start)/$(events retried message_stop)" "1/1" "silent first attempt: one whole stream"
ms=$(ms_of retried)
[ "$ms" -ge $(( TIMEOUT_S * 1000 - 100 )) ] && [ "$ms" -lt $(( 2 * TIMEOUT_S * 1000 + 1500 )) ] &&
	ok "silent first attempt: retried after failover.timeout (${ms} ms)" ||
	fail "silent first attempt: answered after ${ms} ms"
assert_eq "$(( $(msgs "$PORT_1") - m ))" 2 "silent first attempt: two attempts upstream"
keys=$(find "$T_DIR/rec-up" -name '*.req' | sort | tail -n +$((first + 1)) |
	xargs -r sed -n 's/^x-api-key: \(sk-up-[12]\)\r\{0,1\}$/\1/Ip' | tr '\n' ' ')
assert_match "$keys" '^sk-up-(1 sk-up-2|2 sk-up-1) $' "silent first attempt: the retry used the other credential"
wait_tok retried || fail "silent first attempt: not billed"
sleep 0.5
assert_eq "$(tok_field retried requests)/$(tok_field retried partial)/$(tok_field retried input)/$(tok_field retried output)" \
	"1/0/100/7" "silent first attempt: billed once, whole"
answered=$(sed -n 's/ $//; s/.* sk-up-\([12]\)$/k\1/p' <<<"$keys")
assert_eq "$(ev_field retried server)" "up--$answered" "silent first attempt: billed to the credential that answered"

# 3b. Every attempt silent: 504, the configured body, after attempts x
# failover.timeout.
TS=$(new_token silent)
m=$(msgs "$PORT_1")
stream "$GW1" "$TS" silent -H "x-mock-first-byte-delay-ms: $(( TIMEOUT_S * 1000 + 1500 ))"
assert_eq "$(status_of silent)" 504 "silent upstream: 504"
assert_eq "$(cat "$T_DIR/silent.out")" '{"type":"error","error":{"type":"api_error","message":"the upstream did not answer in time"}}' \
	"silent upstream: the configured 504 body"
ms=$(ms_of silent)
[ "$ms" -ge $(( 2 * TIMEOUT_S * 1000 - 200 )) ] && [ "$ms" -lt $(( 2 * TIMEOUT_S * 1000 + 2000 )) ] &&
	ok "silent upstream: 504 after 2 attempts x failover.timeout (${ms} ms)" ||
	fail "silent upstream: 504 after ${ms} ms"
assert_eq "$(( $(msgs "$PORT_1") - m ))" 2 "silent upstream: both attempts made"
sleep 1
assert_eq "$(tok_field silent input)/$(tok_field silent output)" "0/0" "silent upstream: no token billed"

# 3c. The upstream stops mid-stream (after message_start, content_block_start,
# ping and 5 deltas of 40 bytes): the stream ends failover.timeout later,
# is not retried, and is billed partial (truncated), estimated from the 5
# deltas delivered (10 tokens each), input from message_start.
TC=$(new_token stalled)
m=$(msgs "$PORT_1")
stream "$GW1" "$TC" stalled -H 'x-mock-deltas: 20' -H 'x-mock-delta-bytes: 40' -H 'x-mock-stall-after: 8' \
	-H 'x-mock-delay-ms: 50' -H "x-mock-usage: $USAGE"
assert_eq "$(status_of stalled)" 200 "stall mid-stream: the 200 already sent stands"
assert_eq "$(cat "$T_DIR/stalled.rc")" 18 "stall mid-stream: the client sees the transfer cut (curl: partial file)"
assert_eq "$(events stalled content_block_delta)/$(events stalled message_stop)" "5/0" \
	"stall mid-stream: the 5 deltas sent, no message_stop"
ms=$(ms_of stalled)
[ "$ms" -ge $(( TIMEOUT_S * 1000 )) ] && [ "$ms" -lt $(( TIMEOUT_S * 1000 + 2000 )) ] &&
	ok "stall mid-stream: cut after failover.timeout of silence (${ms} ms)" ||
	fail "stall mid-stream: cut after ${ms} ms"
assert_eq "$(( $(msgs "$PORT_1") - m ))" 1 "stall mid-stream: not retried"
wait_tok stalled || fail "stall mid-stream: not billed"
sleep 0.5
assert_eq "$(tok_field stalled requests)/$(tok_field stalled partial)/$(tok_field stalled estimated)" "1/1/1" \
	"stall mid-stream: billed once, partial, estimated"
assert_eq "$(ev_field stalled partial)" truncated "stall mid-stream: the record's reason is truncated"
assert_eq "$(tok_field stalled input)/$(tok_field stalled cache_read)" "1200/300" \
	"stall mid-stream: input and cache from message_start"
out=$(tok_field stalled output)
[ "$out" -ge 40 ] && [ "$out" -le 80 ] && ok "stall mid-stream: billed $out output tokens for 5 deltas delivered" ||
	fail "stall mid-stream: billed $out output tokens for 5 deltas delivered (10 tokens each)"

grep -q 'sk-up-' "$T_DIR"/agent*.log "$T_DIR"/haproxy*.log && fail "a key in a log" || ok "no key in the logs"
finish
