#!/usr/bin/env bash
# The data path end to end, as an operator runs it: haproxy/realms.cfg plus
# the part realmsctl renders, the agent, Redis, and the mock upstream.
# Claude Code's captured requests stream back; the upstream sees the
# rewritten model, the channel's key in both headers and nothing of the
# client's credentials; refusals, the setup page, /v1/models, /api/hello,
# count_tokens, a 2 MB body, a chunked body; the agent down gives 503.
. "$(dirname "$0")/lib.sh"

start_redis || { fail "redis"; finish; }
start_mock a; PORT_A=$MOCK_PORT
start_mock b; PORT_B=$MOCK_PORT
cat >"$T_DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 2 },
  "groups": ["default", "interns"],
  "models": [
    {"name": "claude-sonnet-4-5", "enabled": true},
    {"name": "claude-opus-5-5", "enabled": true},
    {"name": "claude-haiku-4-5", "enabled": true}
  ],
  "channels": [
    {"name": "mock-a", "base_url": "http://127.0.0.1:$PORT_A", "groups": ["default"],
     "credentials": [{"name": "a1", "key": "sk-up-a1"}, {"name": "a2", "key": "sk-up-a2"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
                "claude-opus-5-5": "vendor/\"opus\"-5.5"}},
    {"name": "mock-b", "base_url": "http://127.0.0.1:$PORT_B", "groups": ["default", "interns"],
     "credentials": [{"name": "b1", "key": "sk-up-b1"}],
     "models": {"claude-haiku-4-5": "claude-haiku-4-5"}}
  ]
}
JSON
start_gateway "$T_DIR/realms.json" || { fail "gateway did not start"; finish; }
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"
TOK=$("$REALMS_BIN/realmsctl" token add --name dev 2>/dev/null)
TOK_I=$("$REALMS_BIN/realmsctl" token add --name intern --group interns 2>/dev/null)
URL="http://127.0.0.1:$GW_PORT"

hdr() { sed -n "s/^$1: //Ip" <<<"$2" | head -1; }
last_rec() { ls "$T_DIR/rec-$1"/*.req 2>/dev/null | tail -1; }
rec_hdr() { sed -n '1,/^\r\?$/p' "$1" | tr -d '\r' | sed -n "s/^$2: //Ip"; }
rec_body() { sed -n '/^\r\?$/,$p' "$1" | tail -n +2; }

# --- fixture 1: Bearer, as captured --------------------------------------------
fixture_headers "$FIXTURES/messages-1.http"
curl -sS -N --max-time 20 -D "$T_DIR/h1" -o "$T_DIR/b1" "${FIXTURE_H[@]/sk-realms-test/$TOK}" \
	-H 'Cookie: session=secret-cookie' -H 'X-Forwarded-For: 203.0.113.9' -H 'traceparent: 00-abc-def-01' \
	--data-binary "@$FIXTURES/messages-1.json" "$URL/v1/messages?beta=true"
h=$(tr -d '\r' <"$T_DIR/h1")
assert_match "$(head -1 <<<"$h")" '^HTTP/1.1 200' "fixture 1: 200"
assert_match "$(hdr content-type "$h")" '^text/event-stream' "fixture 1: streamed"
assert_match "$(hdr x-realms-request-id "$h")" '^req_[0-9a-f-]{36}$' "fixture 1: x-realms-request-id"
assert_eq "$(grep -c '^event: ' "$T_DIR/b1")" "$(grep -c '^data: ' "$T_DIR/b1")" "fixture 1: whole events"
assert_match "$(grep '^event:' "$T_DIR/b1" | tr '\n' ' ')" '^event: message_start .*event: ping .*event: message_stop $' "fixture 1: message_start ... message_stop"
r=$(last_rec a)
assert_match "$(head -1 "$r")" '^POST /v1/messages\?beta=true HTTP/1.1' "upstream: path and query kept"
assert_match "$(rec_hdr "$r" x-api-key)" '^sk-up-a[12]$' "upstream: channel key in x-api-key"
assert_eq "$(rec_hdr "$r" authorization)" "Bearer $(rec_hdr "$r" x-api-key)" "upstream: the same key as Bearer"
assert_eq "$(rec_hdr "$r" cookie)" "" "upstream: no client cookie"
assert_eq "$(rec_hdr "$r" x-forwarded-for)" "" "upstream: no X-Forwarded-For"
assert_eq "$(rec_hdr "$r" traceparent)" "" "upstream: no tracing header"
assert_eq "$(grep -c "$TOK" "$r")" 0 "upstream: never the client's token"
assert_eq "$(grep -ci '^x-realms-' "$r")" 0 "upstream: no internal header"
assert_eq "$(rec_hdr "$r" anthropic-beta)" "$(sed -n 's/^anthropic-beta: //p' "$FIXTURES/messages-1.http" | tr -d '\r')" "upstream: anthropic-beta unchanged"
assert_eq "$(rec_hdr "$r" anthropic-version)" 2023-06-01 "upstream: anthropic-version passed"
assert_eq "$(rec_hdr "$r" accept-encoding)" identity "upstream: identity encoding"
assert_eq "$(rec_hdr "$r" host)" "127.0.0.1:$PORT_A" "upstream: Host of the channel"
rec_body "$r" >"$T_DIR/up1.json"
sed 's/^{"model":"claude-sonnet-4-5"/{"model":"claude-sonnet-4-5-20250929"/' "$FIXTURES/messages-1.json" >"$T_DIR/want1.json"
cmp -s "$T_DIR/up1.json" "$T_DIR/want1.json" && ok "upstream: body identical but for the model" || fail "upstream body differs"
assert_eq "$(rec_hdr "$r" content-length)" "$(stat -c %s "$T_DIR/want1.json")" "upstream: Content-Length of the rewritten body"

# --- fixture 2: x-api-key, model with an escaped upstream name ------------------
fixture_headers "$FIXTURES/messages-2.http"
curl -sS -N --max-time 20 -D "$T_DIR/h2" -o "$T_DIR/b2" "${FIXTURE_H[@]/sk-realms-test2/$TOK}" \
	--data-binary "@$FIXTURES/messages-2.json" "$URL/v1/messages?beta=true"
assert_match "$(head -1 "$T_DIR/h2")" '^HTTP/1.1 200' "fixture 2 (x-api-key): 200"
assert_match "$(grep '^event:' "$T_DIR/b2" | tail -1)" 'message_stop' "fixture 2: stream complete"
r=$(last_rec a)
assert_match "$(rec_body "$r" | head -c 60)" '^\{"model":"vendor/\\"opus\\"-5\.5","messages"' "fixture 2: upstream got the JSON-escaped name"

# --- sizes and framing ------------------------------------------------------------
{ printf '{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":"'
  head -c 2000000 /dev/zero | tr '\0' x; printf '"}]}'; } >"$T_DIR/big.json"
code=$(curl -sS -o "$T_DIR/bigout" -w '%{http_code}' --max-time 30 -H "x-api-key: $TOK" \
	-H 'content-type: application/json' --data-binary "@$T_DIR/big.json" "$URL/v1/messages")
assert_eq "$code" 200 "2 MB body: 200"
r=$(last_rec b)
assert_eq "$(rec_hdr "$r" content-length)" "$(stat -c %s "$T_DIR/big.json")" "2 MB body: forwarded whole"
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 20 -H "x-api-key: $TOK" -H 'content-type: application/json' \
	-H 'Transfer-Encoding: chunked' --data-binary '{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}' "$URL/v1/messages")
assert_eq "$code" 200 "chunked body: 200"
r=$(last_rec a)
assert_match "$(rec_body "$r")" '^\{"model":"claude-sonnet-4-5-20250929","max_tokens":5' "chunked body: model rewritten"

# Streaming is not buffered: events spaced 400 ms apart arrive spaced.
curl -sS -N --max-time 20 -H "x-api-key: $TOK" -H 'content-type: application/json' \
	-H 'x-mock-delay-ms: 400' -H 'x-mock-deltas: 4' \
	--data-binary '{"model":"claude-haiku-4-5","max_tokens":5,"stream":true,"messages":[]}' "$URL/v1/messages" |
	while IFS= read -r line; do [[ $line == event:* ]] && echo "$(date +%s%3N) $line"; done >"$T_DIR/times"
t_first=$(head -1 "$T_DIR/times" | cut -d' ' -f1); t_last=$(tail -1 "$T_DIR/times" | cut -d' ' -f1)
assert_eq "$(( t_last - t_first >= 1600 ))" 1 "SSE events reach the client as they are sent ($(( t_last - t_first )) ms apart)"

# --- count_tokens, models, hello, setup page ---------------------------------------
out=$(curl -sS --max-time 10 -H "x-api-key: $TOK" -H 'content-type: application/json' \
	--data-binary '{"model":"claude-sonnet-4-5","messages":[]}' "$URL/v1/messages/count_tokens")
assert_match "$out" '^\{"input_tokens":[0-9]+\}$' "count_tokens answered by the upstream"
assert_match "$(head -1 "$(last_rec a)")" '^POST /v1/messages/count_tokens' "count_tokens forwarded"
n_before=$(ls "$T_DIR"/rec-*/ | wc -l)
out=$(curl -sS --max-time 10 -H "x-api-key: $TOK" "$URL/v1/models")
assert_match "$out" '^\{"data":\[\{"type":"model","id":"claude-sonnet-4-5"' "/v1/models from the agent"
h=$(curl -sS -I --max-time 10 "$URL/api/hello" | tr -d '\r')
assert_match "$(head -1 <<<"$h")" '^HTTP/1.1 200' "HEAD /api/hello: 200 without a token"
page=$(curl -sS --max-time 10 "$URL/")
assert_match "$page" 'ANTHROPIC_BASE_URL' "setup page: the variables"
assert_match "$page" '<code>claude-haiku-4-5</code>' "setup page: the models offered"
assert_no_match "$page" 'sk-up-|mock-a|127\.0\.0\.1' "setup page: no key, channel or address"
assert_eq "$(ls "$T_DIR"/rec-*/ | wc -l)" "$n_before" "models, hello and the page never touch an upstream"

# --- refusals as the client sees them ---------------------------------------------
refusal() {   # refusal WHAT STATUS TYPE curl-args...
	local what=$1 st=$2 ty=$3; shift 3
	local body code
	body=$(curl -sS --max-time 10 -w '\n%{http_code}' -H 'content-type: application/json' "$@")
	code=${body##*$'\n'}; body=${body%$'\n'*}
	assert_eq "$code" "$st" "$what: status"
	assert_match "$body" "^\\{\"type\":\"error\",\"error\":\\{\"type\":\"$ty\",\"message\":\"[^\"]" "$what: $ty body"
}
B='{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}'
refusal "no token" 401 authentication_error --data-binary "$B" "$URL/v1/messages"
refusal "bad token" 401 authentication_error -H 'x-api-key: sk-realms-nope' --data-binary "$B" "$URL/v1/messages"
refusal "unknown model" 404 not_found_error -H "x-api-key: $TOK" --data-binary '{"model":"gpt-4"}' "$URL/v1/messages"
refusal "group" 403 permission_error -H "x-api-key: $TOK_I" --data-binary "$B" "$URL/v1/messages"
refusal "path" 404 not_found_error -H "x-api-key: $TOK" "$URL/v1/complete"
refusal "method" 405 invalid_request_error -H "x-api-key: $TOK" "$URL/v1/messages"
refusal "content type" 400 invalid_request_error -H "x-api-key: $TOK" -H 'content-type: text/plain' --data-binary "$B" "$URL/v1/messages"
refusal "bad JSON" 400 invalid_request_error -H "x-api-key: $TOK" --data-binary '{"model":' "$URL/v1/messages"
refusal "no model" 400 invalid_request_error -H "x-api-key: $TOK" --data-binary '{"max_tokens":5}' "$URL/v1/messages"
# An upstream error passes through untouched (status and Anthropic body).
refusal "upstream 429" 429 rate_limit_error -H "x-api-key: $TOK" -H 'x-mock-status: 429' --data-binary "$B" "$URL/v1/messages"

# --- agent down: 503, never a pass ---------------------------------------------------
stop_pid "$AGENT_PID"
n_before=$(ls "$T_DIR"/rec-*/ | wc -l)
refusal "agent down" 503 api_error -H "x-api-key: $TOK" --data-binary "$B" "$URL/v1/messages"
assert_eq "$(ls "$T_DIR"/rec-*/ | wc -l)" "$n_before" "agent down: nothing reaches an upstream"

leak=0
for s in sk-up-a1 sk-up-a2 sk-up-b1 "$TOK"; do grep -q -- "$s" "$T_DIR/haproxy.log" "$T_DIR/agent.log" && leak=1; done
assert_eq "$leak" 0 "no key or token in HAProxy's or the agent's log"
finish
