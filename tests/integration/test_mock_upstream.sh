#!/usr/bin/env bash
# realms-test: no-agent
# mock_upstream, the simulated Anthropic API other tests stand behind the
# gateway, exercised with curl alone:
# - non-streaming JSON shape, x-mock-usage forced usage, x-mock-name;
# - default usage derived from the body, a multi-MB body, a chunked body;
# - streaming event order, message_start output_tokens 1, cumulative
#   message_delta usage;
# - count_tokens, models, unknown path (404), keep-alive reuse;
# - fault headers: 429 + retry-after, 529, error-after, close-after=0
#   (empty reply), close-after mid-stream, first-byte delay, stall;
# - -k: 401 unless x-api-key and Bearer both match;
# - -r: recordings hold the head as received and the body;
# - /mock/fail, /mock/stats, /mock/reset; 431, 400; clean exit on TERM.
. "$(dirname "$0")/lib.sh"

MOCK="$REALMS_BIN/mock_upstream"
[ -x "$MOCK" ] || { fail "no mock_upstream at $MOCK"; finish; }

REC="$T_DIR/rec"
mkdir -p "$REC"
PORT=$(free_port) || { fail "no free port"; finish; }
spawn mock "$MOCK" -l "127.0.0.1:$PORT" -r "$REC" -n alpha
MOCK_PID=$SPAWNED
wait_tcp "$PORT" 10 || { fail "mock did not listen"; finish; }
assert_match "$(cat "$T_DIR/mock.log")" "listening on 127.0.0.1:$PORT" "listening line on stderr"
BASE="http://127.0.0.1:$PORT"

# post PATH BODY [curl args...]: sets CODE, HDRS (lower-cased), BODY, RC.
post() {
	local path=$1 data=$2; shift 2
	BODY=$(curl -sS --max-time 10 -o - -D "$T_DIR/h" -w '' "$@" \
		-H 'content-type: application/json' --data-binary "$data" "$BASE$path" \
		2>"$T_DIR/curl.err")
	RC=$?
	HDRS=$(tr -d '\r' <"$T_DIR/h" 2>/dev/null | tr 'A-Z' 'a-z')
	CODE=$(grep -a '^HTTP/' "$T_DIR/h" 2>/dev/null | grep -v ' 100 ' | tail -1 | awk '{print $2}')
}
hdr() { printf '%s\n' "$HDRS" | sed -n "s/^$1: //p" | tail -1; }
# events: the event names of an SSE body, space separated
events() { printf '%s\n' "$1" | sed -n 's/^event: //p' | tr '\n' ' ' | sed 's/ $//'; }
# data_of NAME: the data line of the last event NAME in $BODY
data_of() { printf '%s\n' "$BODY" | grep -A1 "^event: $1\$" | sed -n 's/^data: //p' | tail -1; }

REQ='{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}'
SREQ='{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"hi"}],"stream":true}'

# ---- non-streaming ----------------------------------------------------
post /v1/messages "$REQ" -H 'x-mock-usage: in=100,out=20,cw5=3,cw1=4,cr=50,ws=1' \
	-H 'x-test-marker: rec-plain'
assert_eq "$CODE" 200 "messages: 200"
assert_match "$(hdr content-type)" "^application/json" "messages: json content type"
assert_eq "$(hdr x-mock-usage)" "in=100,out=20,cw5=3,cw1=4,cr=50,ws=1" "messages: x-mock-usage echoes what was reported"
assert_eq "$(hdr x-mock-name)" "alpha" "messages: x-mock-name"
assert_match "$BODY" '^\{"id":"msg_mock_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":\[\{"type":"text","text":"[^"]+"\}\],"stop_reason":"end_turn","stop_sequence":null,' "messages: message shape"
assert_match "$BODY" '"usage":\{"input_tokens":100,"cache_creation_input_tokens":7,"cache_read_input_tokens":50,"cache_creation":\{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":4\},"output_tokens":20,"service_tier":"standard","server_tool_use":\{"web_search_requests":1\}\}\}$' "messages: forced usage in body"
PLAIN_USAGE=$(hdr x-mock-usage)

# default usage: input = body bytes / 4, output = text bytes / 4 (5 x 16)
post '/v1/messages?beta=true' "$REQ" -H 'x-mock-deltas: 5'
assert_eq "$(hdr x-mock-usage)" "in=$(( ${#REQ} / 4 )),out=20,cw5=0,cw1=0,cr=0,ws=0" "messages: default usage from body size and text size (query string ignored)"

# random usage: same seed and counter position give the same answer
post /mock/reset '{}'
post /v1/messages "$REQ" -H 'x-mock-random-usage: 42'; R1=$(hdr x-mock-usage)
post /mock/reset '{}'
post /v1/messages "$REQ" -H 'x-mock-random-usage: 42'; R2=$(hdr x-mock-usage)
assert_eq "$R1" "$R2" "random usage is deterministic for a seed"
assert_match "$R1" '^in=[1-9][0-9]*,out=[1-9][0-9]*,cw5=[0-9]+,cw1=[0-9]+,cr=[0-9]+,ws=[0-9]+$' "random usage is sane"

# a 5 MB body, model first and stream last
BIG="$T_DIR/big.json"
{ printf '{"model":"claude-big","messages":[{"role":"user","content":"'
  head -c 5000000 /dev/zero | tr '\0' 'a'
  printf '"}],"stream":false}'; } >"$BIG"
BIGSZ=$(stat -c %s "$BIG")
post /v1/messages "@$BIG"
assert_eq "$CODE" 200 "5 MB body: 200"
assert_eq "$(hdr x-mock-usage | cut -d, -f1)" "in=$((BIGSZ / 4))" "5 MB body: input from size"
assert_match "$BODY" '"model":"claude-big"' "5 MB body: model read"

# chunked request body
post /v1/messages "$REQ" -H 'transfer-encoding: chunked' -H 'x-test-marker: rec-chunked'
assert_eq "$CODE" 200 "chunked body: 200"
assert_eq "$(hdr x-mock-usage | cut -d, -f1)" "in=$(( ${#REQ} / 4 ))" "chunked body: de-chunked size"

post /v1/messages '{"messages":[]}'
assert_eq "$CODE" 400 "no model: 400"
assert_match "$BODY" '"type":"invalid_request_error"' "no model: invalid_request_error"
post /v1/messages 'not json'
assert_eq "$CODE" 400 "not JSON: 400"

# ---- streaming --------------------------------------------------------
post /v1/messages "$SREQ" -N -H 'x-mock-deltas: 4' -H 'x-mock-usage: in=500,cw5=10,cw1=20,cr=300'
assert_eq "$CODE" 200 "stream: 200"
assert_match "$(hdr content-type)" "^text/event-stream" "stream: event-stream content type"
assert_eq "$(events "$BODY")" "message_start content_block_start ping content_block_delta content_block_delta content_block_delta content_block_delta content_block_stop message_delta message_stop" "stream: event order"
assert_match "$(data_of message_start)" '"usage":\{"input_tokens":500,"cache_creation_input_tokens":30,"cache_read_input_tokens":300,"cache_creation":\{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20\},"output_tokens":1,' "stream: message_start usage (5m/1h split, output 1)"
assert_match "$(data_of message_delta)" '"stop_reason":"end_turn".*"usage":\{"input_tokens":500,"cache_creation_input_tokens":30,"cache_read_input_tokens":300,"output_tokens":16\}' "stream: message_delta cumulative usage"
assert_eq "$(hdr x-mock-usage)" "in=500,out=16,cw5=10,cw1=20,cr=300,ws=0" "stream: x-mock-usage"
assert_eq "$(printf '%s\n' "$BODY" | grep -c '"text_delta"')" 4 "stream: 4 text deltas"

post /v1/messages "$SREQ" -N -H 'x-mock-deltas: 50' -H 'x-mock-delta-bytes: 4096'
assert_eq "$(printf '%s\n' "$BODY" | grep -c '"text_delta"')" 50 "big stream: 50 deltas"
assert_eq "$(printf '%s\n' "$BODY" | grep '"text_delta"' | head -1 | sed 's/.*"text":"\([^"]*\)".*/\1/' | tr -d '\n' | wc -c)" 4096 "big stream: 4096 bytes per delta"

# ---- count_tokens, models, 404, keep-alive ----------------------------
post /v1/messages/count_tokens "$REQ"
assert_eq "$CODE" 200 "count_tokens: 200"
assert_eq "$BODY" "{\"input_tokens\":$(( ${#REQ} / 4 ))}" "count_tokens: input_tokens"
BODY=$(curl -sS --max-time 5 "$BASE/v1/models")
assert_match "$BODY" '^\{"data":\[\{"type":"model","id":"claude-' "models: list"
post /v1/nope '{}'
assert_eq "$CODE" 404 "unknown path: 404"
assert_match "$BODY" '"type":"not_found_error"' "unknown path: not_found_error"
CONNS=$(curl -sS --max-time 5 -o /dev/null -o /dev/null -w '%{num_connects}\n' \
	"$BASE/v1/models" "$BASE/v1/models" | tr '\n' ' ')
assert_eq "$CONNS" "1 0 " "keep-alive: second request reuses the connection"

# ---- fault headers ----------------------------------------------------
post /v1/messages "$REQ" -H 'x-mock-status: 429' -H 'x-mock-retry-after: 7'
assert_eq "$CODE" 429 "429: status"
assert_eq "$(hdr retry-after)" 7 "429: retry-after from x-mock-retry-after"
assert_match "$BODY" '^\{"type":"error","error":\{"type":"rate_limit_error","message":' "429: rate_limit_error body"
assert_eq "$(hdr x-mock-usage)" "in=0,out=0,cw5=0,cw1=0,cr=0,ws=0" "429: zero usage reported"
post /v1/messages "$REQ" -H 'x-mock-status: 429'
assert_eq "$(hdr retry-after)" 1 "429: retry-after defaults to 1"
post /v1/messages "$SREQ" -H 'x-mock-status: 529'
assert_eq "$CODE" 529 "529: status (even for a stream)"
assert_match "$BODY" '"type":"overloaded_error"' "529: overloaded_error"
post /v1/messages "$REQ" -H 'x-mock-status: 401'
assert_match "$BODY" '"type":"authentication_error"' "401: authentication_error"
post /v1/messages "$REQ" -H 'x-mock-deltas: many'
assert_eq "$CODE" 400 "bad x-mock header: 400"

post /v1/messages "$SREQ" -N -H 'x-mock-error-after: 2'
assert_eq "$RC" 0 "error-after: response ends cleanly"
assert_eq "$(events "$BODY")" "message_start content_block_start ping content_block_delta content_block_delta error" "error-after: 2 deltas then error"
assert_eq "$(data_of error)" '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}' "error-after: error event"

post /v1/messages "$REQ" -H 'x-mock-close-after: 0'
assert_eq "$RC" 52 "close-after=0: curl sees an empty reply"
post /v1/messages "$SREQ" -N -H 'x-mock-close-after: 3'
assert_eq "$RC" 18 "close-after=3: transfer cut short"
assert_eq "$(events "$BODY")" "message_start content_block_start ping" "close-after=3: three events"

T=$(curl -sS --max-time 10 -o /dev/null -w '%{time_starttransfer}' \
	-H 'x-mock-first-byte-delay-ms: 600' --data-binary "$REQ" "$BASE/v1/messages")
assert_match "$(awk -v t="$T" 'BEGIN{print (t >= 0.55 && t < 5) ? "yes" : "no:" t}')" '^yes$' "first-byte delay ~600 ms"
T=$(curl -sS --max-time 10 -o /dev/null -w '%{time_total}' -N \
	-H 'x-mock-delay-ms: 100' -H 'x-mock-deltas: 3' --data-binary "$SREQ" "$BASE/v1/messages")
assert_match "$(awk -v t="$T" 'BEGIN{print (t >= 0.7 && t < 5) ? "yes" : "no:" t}')" '^yes$' "delay between events (8 gaps x 100 ms)"

START=$(date +%s%N)
post /v1/messages "$SREQ" -N --max-time 2 -H 'x-mock-stall-after: 2'
ELAPSED=$(( ($(date +%s%N) - START) / 1000000 ))
assert_eq "$RC" 28 "stall: curl times out"
assert_eq "$(events "$BODY")" "message_start content_block_start" "stall: two events arrived"
assert_match "$(( ELAPSED >= 1900 && ELAPSED < 5000 ))" '^1$' "stall: held until the client left (${ELAPSED} ms)"

# ---- stats and /mock/fail ---------------------------------------------
post /mock/reset ''
assert_eq "$BODY" '{"ok":true}' "reset"
post /mock/fail '{"status":503,"count":2}'
assert_eq "$CODE" 200 "fail: accepted"
post /v1/messages "$REQ"; C1=$CODE; B1=$BODY
post /v1/messages "$REQ"; C2=$CODE
post /v1/messages "$REQ" -H 'x-mock-usage: in=11,out=22,cw5=33,cw1=44,cr=55,ws=6'; C3=$CODE
post /v1/messages/count_tokens "$REQ"
assert_eq "$C1 $C2 $C3" "503 503 200" "fail: next two messages get 503"
assert_match "$B1" '"type":"overloaded_error"' "fail: 503 is overloaded_error"
STATS=$(curl -sS --max-time 5 "$BASE/mock/stats")
assert_match "$STATS" '"requests":4,"messages":3,"count_tokens":1,' "stats: request counters"
assert_match "$STATS" '"by_status":\{"200":2,"503":2\}' "stats: by_status"
assert_match "$STATS" '"usage":\{"in":11,"out":22,"cw5":33,"cw1":44,"cr":55,"ws":6\}' "stats: usage sums of 200 responses"
post /mock/fail '{"count":2}'
assert_eq "$CODE" 400 "fail: status required"

# ---- recording ---------------------------------------------------------
sleep 0.2
assert_eq "$(ls -A "$REC" | grep -c '^\.')" 0 "record: no temp files left"
F=$(grep -l '^x-test-marker: rec-plain' "$REC"/*.req | head -1)
if [ -n "$F" ]; then
	assert_eq "$(head -1 "$F" | tr -d '\r')" "POST /v1/messages HTTP/1.1" "record: request line"
	assert_match "$(tr -d '\r' <"$F")" $'x-mock-usage: in=100,out=20,cw5=3,cw1=4,cr=50,ws=1\n' "record: headers as received"
	assert_eq "$(sed '1,/^\r$/d' "$F")" "$REQ" "record: body after the blank line"
else
	fail "record: no file with the marker header"
fi
F=$(grep -l '^x-test-marker: rec-chunked' "$REC"/*.req | head -1)
assert_eq "$( [ -n "$F" ] && sed '1,/^\r$/d' "$F")" "$REQ" "record: chunked body stored de-chunked"
assert_no_match "$(cat "$REC"/*.req | grep -a '^GET /mock\|^POST /mock' || true)" . "record: control requests not recorded"

# ---- framing limits ---------------------------------------------------
HUGE=$(head -c 70000 /dev/zero | tr '\0' 'x')
CODE=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' -H "x-huge: $HUGE" "$BASE/v1/models" 2>/dev/null)
assert_eq "$CODE" 431 "headers over 64 KB: 431"
RESP=$(exec 3<>"/dev/tcp/127.0.0.1/$PORT"; printf 'GARBAGE\r\n\r\n' >&3; timeout 5 cat <&3)
assert_match "$RESP" '^HTTP/1.1 400 ' "malformed request line: 400"

# ---- many concurrent connections --------------------------------------
for i in $(seq 40); do
	curl -sS --max-time 10 -o /dev/null -w '%{http_code}\n' -N \
		--data-binary "$SREQ" -H 'x-mock-delay-ms: 20' "$BASE/v1/messages" &
done >"$T_DIR/par" 2>&1
wait_n=0
while [ "$(grep -c . "$T_DIR/par")" -lt 40 ] && [ $wait_n -lt 100 ]; do sleep 0.1; wait_n=$((wait_n + 1)); done
assert_eq "$(grep -c '^200$' "$T_DIR/par")" 40 "40 concurrent streams: all 200"

# ---- -k ----------------------------------------------------------------
KPORT=$(free_port) || { fail "no free port"; finish; }
spawn mockk "$MOCK" -l "127.0.0.1:$KPORT" -k sk-test-key -n beta
wait_tcp "$KPORT" 10 || { fail "keyed mock did not listen"; finish; }
kpost() { BASE="http://127.0.0.1:$KPORT" post "$@"; }
kpost /v1/messages "$REQ"
assert_eq "$CODE" 401 "-k: no key: 401"
assert_match "$BODY" '"type":"authentication_error"' "-k: authentication_error"
kpost /v1/messages "$REQ" -H 'x-api-key: sk-test-key'
assert_eq "$CODE" 401 "-k: x-api-key alone: 401"
kpost /v1/messages "$REQ" -H 'x-api-key: sk-test-key' -H 'authorization: Bearer sk-wrong'
assert_eq "$CODE" 401 "-k: wrong bearer: 401"
kpost /v1/messages "$REQ" -H 'x-api-key: sk-test-key' -H 'authorization: Bearer sk-test-key'
assert_eq "$CODE" 200 "-k: both match: 200"
assert_eq "$(hdr x-mock-name)" beta "-k: x-mock-name of the second mock"
CODE=$(curl -sS --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$KPORT/mock/stats")
assert_eq "$CODE" 200 "-k: control endpoints need no key"

# ---- clean exit ---------------------------------------------------------
stop_pid "$MOCK_PID"
assert_eq "$?" 0 "exit status 0 on SIGTERM"
assert_match "$(cat "$T_DIR/mock.log")" "exiting" "exit logged"

finish
