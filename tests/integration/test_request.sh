#!/usr/bin/env bash
# The policy core end to end: tokens made with realmsctl in a real Redis, the
# agent's verdict over SPOP through Debian's HAProxy, every refusal with its
# Anthropic-shaped body, the model list, the token cache through a Redis
# outage, revocation, and a configuration reload (good and bad).
. "$(dirname "$0")/lib.sh"

export FE_PORT=$(free_port)
export AGENT_SOCK="$T_DIR/agent.sock"
export SPOE_CONF="$REALMS_SRC/tests/integration/request.spoe"
CTL="$REALMS_BIN/realmsctl"

start_redis || { fail "redis did not start"; finish; }
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"

write_config() {   # $1: extra model entries appended to the catalogue
	cat >"$T_DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "listen": ["unix:$AGENT_SOCK"], "threads": 2 },
  "groups": ["default", "interns"],
  "models": [
    {"name": "claude-sonnet-4-5", "enabled": true},
    {"name": "claude-haiku-4-5", "enabled": true},
    {"name": "claude-opus-4-1", "enabled": false}$1
  ],
  "channels": [
    {"name": "primary", "base_url": "https://api.anthropic.com", "priority": 10,
     "weight": 1, "groups": ["default"],
     "credentials": [{"name": "k1", "key": "sk-upstream-one"},
                     {"name": "k2", "key": "sk-upstream-two"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
                "claude-opus-4-1": "claude-opus-4-1"}},
    {"name": "backup", "base_url": "http://127.0.0.1:9", "priority": 0,
     "weight": 1, "groups": ["default", "interns"],
     "credentials": [{"name": "b1", "key": "sk-upstream-three"}],
     "models": {"claude-haiku-4-5": "claude-haiku-4-5"}}
  ]
}
JSON
}
write_config ""

# --check: valid file, exit 0; it names the binding to a disabled model.
out=$("$REALMS_AGENT" -c "$T_DIR/realms.json" --check 2>&1); rc=$?
assert_eq "$rc" 0 "--check accepts the file"
assert_match "$out" "warning" "--check warns about the binding to a disabled model"

start_agent -c "$T_DIR/realms.json"
wait_file "$AGENT_SOCK" 10 || { fail "agent did not start"; finish; }
start_haproxy "$REALMS_SRC/tests/integration/request.cfg" || { fail "haproxy config"; finish; }
wait_tcp "$FE_PORT" 10 || { fail "haproxy did not start"; finish; }

TOK=$("$CTL" token add --name alice 2>/dev/null)
assert_match "$TOK" '^sk-realms-[0-9A-Za-z]{43}$' "realmsctl prints a token"
TOK_INTERN=$("$CTL" token add --name ivan --group interns 2>/dev/null)
TOK_SPARE=$("$CTL" token add --name spare 2>/dev/null)
TOK_OLD=$("$CTL" token add --name olga 2>/dev/null)
# Expired: set its expiry in the past directly in Redis.
h_old=$(printf '%s' "$TOK_OLD" | sha256sum | cut -d' ' -f1)
rcli HSET "realms:token:$h_old" expires 1000000000 >/dev/null

# req METHOD PATH [curl args...]: response headers.
req() {
	local m=$1 p=$2; shift 2
	if [ "$m" = HEAD ]; then set -- -I "$@"; else set -- -X "$m" "$@"; fi
	curl -sS -o /dev/null -D - --max-time 10 "$@" "http://127.0.0.1:$FE_PORT$p" | tr -d '\r'
}
hdr() { sed -n "s/^$1: //Ip" <<<"$2" | head -1; }
msg() {   # msg TOKEN BODYFILE [curl args]
	local t=$1 b=$2; shift 2
	req POST '/v1/messages?beta=true' -H "authorization: Bearer $t" \
		-H 'content-type: application/json' --data-binary "@$b" "$@"
}
expect_refusal() {   # expect_refusal "$h" STATUS TYPE MESSAGE-REGEX WHAT
	assert_eq "$(hdr x-verdict "$1")" deny "$5: denied"
	assert_eq "$(hdr x-status "$1")" "$2" "$5: status $2"
	assert_match "$(hdr x-err-body "$1")" "^\\{\"type\":\"error\",\"error\":\\{\"type\":\"$3\",\"message\":\"$4" "$5: $3 body"
}
body() { printf '%s' "$1" >"$T_DIR/b.json"; echo "$T_DIR/b.json"; }

# --- the captured Claude Code requests --------------------------------------
fixture_headers "$FIXTURES/messages-1.http"
h=$(req POST '/v1/messages?beta=true' "${FIXTURE_H[@]/sk-realms-test/$TOK}" --data-binary "@$FIXTURES/messages-1.json")
assert_eq "$(hdr x-verdict "$h")" allow "fixture 1 (Bearer): allowed"
assert_eq "$(hdr x-pool "$h")" up_primary "fixture 1: straight to the credential's channel (failover.max_body 0)"
assert_match "$(hdr x-server "$h")" '^primary--k[12]$' "fixture 1: a credential of the top-priority channel"
assert_eq "$(hdr x-token "$h")" alice "fixture 1: token name"
assert_eq "$(hdr x-token-id "$h")" "${h_alice:=$(printf '%s' "$TOK" | sha256sum | cut -c1-12)}" "fixture 1: token id is the hash prefix"
assert_eq "$(hdr x-model-off "$h")" 9 "fixture 1: model offset for the rewrite"
assert_eq "$(hdr x-session "$h")" b9bcf3bd-9fde-4a09-aba9-441d0a1b493d "fixture 1: session from the Claude Code header"
first_server=$(hdr x-server "$h")
same=1
for _ in $(seq 10); do
	h=$(req POST '/v1/messages?beta=true' "${FIXTURE_H[@]/sk-realms-test/$TOK}" --data-binary "@$FIXTURES/messages-1.json")
	[ "$(hdr x-server "$h")" = "$first_server" ] || same=0
done
assert_eq "$same" 1 "same session, same credential (10 requests)"

# Fixture 2 uses x-api-key and a model this gateway does not offer.
fixture_headers "$FIXTURES/messages-2.http"
h=$(req POST '/v1/messages?beta=true' "${FIXTURE_H[@]/sk-realms-test2/$TOK}" --data-binary "@$FIXTURES/messages-2.json")
expect_refusal "$h" 404 not_found_error "model: claude-opus-5-5" "fixture 2 (x-api-key), unknown model"
sed 's/"model":"claude-opus-5-5"/"model":"claude-haiku-4-5"/' "$FIXTURES/messages-2.json" >"$T_DIR/m2.json"
h=$(req POST '/v1/messages?beta=true' "${FIXTURE_H[@]/sk-realms-test2/$TOK}" --data-binary "@$T_DIR/m2.json")
assert_eq "$(hdr x-verdict "$h")" allow "fixture 2 with an offered model: allowed"
assert_eq "$(hdr x-server "$h")" backup--b1 "fixture 2: the only channel binding haiku"
assert_eq "$(hdr x-stream "$h")" 1 "fixture 2: stream flag (whole body in the prefix)"

# --- refusals -----------------------------------------------------------------
ok_body=$(body '{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}')
expect_refusal "$(req POST /v1/messages -H 'content-type: application/json' --data-binary "@$ok_body")" \
	401 authentication_error "an API token is required" "no token"
expect_refusal "$(msg sk-realms-0000000000000000000000000000000000000000000 "$ok_body")" \
	401 authentication_error "invalid API token" "unknown token"
expect_refusal "$(msg not-a-realms-token "$ok_body")" 401 authentication_error "invalid API token" "malformed token"
expect_refusal "$(req POST /v1/messages -H 'authorization: Basic abc' -H 'content-type: application/json' --data-binary "@$ok_body")" \
	401 authentication_error "Authorization header must be" "Basic auth"
expect_refusal "$(msg "$TOK_OLD" "$ok_body")" 401 authentication_error "this API token expired on 2001-09-09" "expired token"
expect_refusal "$(req GET /v1/messages -H "x-api-key: $TOK")" 405 invalid_request_error "Method GET is not allowed" "wrong method"
expect_refusal "$(req GET /v1/complete -H "x-api-key: $TOK")" 404 not_found_error "Not found: /v1/complete" "unknown path"
expect_refusal "$(msg "$TOK" "$ok_body" -H 'content-type: text/plain')" 400 invalid_request_error "Content-Type must be application/json" "text/plain body"
expect_refusal "$(msg "$TOK" "$(body '{"model":"claude-sonnet-4-5",')")" 400 invalid_request_error "request body is not valid JSON" "broken JSON"
expect_refusal "$(msg "$TOK" "$(body '["claude-sonnet-4-5"]')")" 400 invalid_request_error "request body must be a JSON object" "array body"
expect_refusal "$(msg "$TOK" "$(body '{"max_tokens":1}')")" 400 invalid_request_error "model: Field required" "model missing"
expect_refusal "$(msg "$TOK" "$(body '{"model":7}')")" 400 invalid_request_error "model: must be a string" "model not a string"
expect_refusal "$(msg "$TOK" "$(body '{"model":"a","model":"b"}')")" 400 invalid_request_error "request body has a duplicate top-level key" "duplicate model"
# model beyond the 64 KB prefix
{ printf '{"messages":[{"role":"user","content":"'; head -c 70000 /dev/zero | tr '\0' a; printf '"}],"model":"claude-sonnet-4-5"}'; } >"$T_DIR/late.json"
expect_refusal "$(msg "$TOK" "$T_DIR/late.json")" 400 invalid_request_error "model: not found in the first 65536 bytes" "model outside the prefix"
expect_refusal "$(msg "$TOK" "$(body '{"model":"claude-opus-4-1"}')")" 404 not_found_error "model: claude-opus-4-1" "disabled model"
expect_refusal "$(msg "$TOK_INTERN" "$(body '{"model":"claude-sonnet-4-5"}')")" 403 permission_error "model claude-sonnet-4-5 is not available to this API token" "model outside the token's group"
h=$(msg "$TOK_INTERN" "$(body '{"model":"claude-haiku-4-5","stream":false}')")
assert_eq "$(hdr x-verdict "$h")" allow "interns may use haiku"
assert_eq "$(hdr x-stream "$h")" 0 "stream false"
no_secret=1
for s in sk-upstream-one sk-upstream-two sk-upstream-three primary backup 127.0.0.1:9 api.anthropic.com; do
	grep -q -- "$s" <<<"$(msg "$TOK_INTERN" "$(body '{"model":"claude-sonnet-4-5"}')" | grep -i x-err-body)" && no_secret=0
done
assert_eq "$no_secret" 1 "refusals name no channel, key or address"

# count_tokens and the routes answered without an upstream
h=$(req POST /v1/messages/count_tokens -H "x-api-key: $TOK" -H 'content-type: application/json' --data-binary "@$ok_body")
assert_eq "$(hdr x-verdict "$h")" allow "count_tokens allowed"
h=$(req GET /v1/models -H "x-api-key: $TOK")
assert_eq "$(hdr x-verdict "$h")" models "GET /v1/models"
assert_match "$(hdr x-models-body "$h")" '^\{"data":\[\{"type":"model","id":"claude-sonnet-4-5".*"id":"claude-haiku-4-5".*\],"has_more":false' "model list for the default group"
h=$(req GET /v1/models -H "x-api-key: $TOK_INTERN")
assert_no_match "$(hdr x-models-body "$h")" 'claude-sonnet-4-5' "interns do not see sonnet"
h=$(req HEAD /api/hello)
assert_eq "$(hdr x-verdict "$h")" hello "HEAD /api/hello without auth"

# --- revocation reaches the agent at once (pub/sub), cache notwithstanding ------
h=$(msg "$TOK_SPARE" "$ok_body"); assert_eq "$(hdr x-verdict "$h")" allow "spare token works"
"$CTL" token revoke spare >/dev/null 2>&1
sleep 0.3
expect_refusal "$(msg "$TOK_SPARE" "$ok_body")" 401 authentication_error "this API token has been revoked" "revoked token refused at once"

# --- Redis outage: known tokens keep working, unknown ones get 503 --------------
TOK_NEW=$("$CTL" token add --name nina 2>/dev/null)
rcli SAVE >/dev/null
stop_pid "$REDIS_PID"
h=$(msg "$TOK" "$ok_body")
assert_eq "$(hdr x-verdict "$h")" allow "cached token served while Redis is down"
t0=$(date +%s%N)
h=$(msg "$TOK_NEW" "$ok_body")
t1=$(date +%s%N)
expect_refusal "$h" 503 api_error "the gateway cannot verify API tokens right now" "uncached token while Redis is down"
assert_eq "$(( (t1 - t0) / 1000000 < 2000 ))" 1 "refused fast while Redis is down"
sleep 2
start_redis "$REDIS_PORT" || fail "redis restart"
ok=0
for _ in $(seq 40); do
	[ "$(hdr x-verdict "$(msg "$TOK_NEW" "$ok_body")")" = allow ] && { ok=1; break; }
	sleep 0.25
done
assert_eq "$ok" 1 "new token works once Redis is back"

# --- reload: a bad file keeps the old config; a good one applies -------------
cp "$T_DIR/realms.json" "$T_DIR/good.json"
echo '{"models": [' >"$T_DIR/realms.json"
kill -HUP "$AGENT_PID"
sleep 0.5
assert_eq "$(hdr x-verdict "$(msg "$TOK" "$ok_body")")" allow "bad reload keeps serving"
grep -q 'keeping the running configuration' "$T_DIR/agent.log" && ok "bad reload logged" || fail "bad reload not logged"
write_config ', {"name": "claude-3-5-haiku", "enabled": true}'
sed -i 's/"claude-haiku-4-5": "claude-haiku-4-5"}/"claude-haiku-4-5": "claude-haiku-4-5", "claude-3-5-haiku": "claude-3-5-haiku-20241022"}/' "$T_DIR/realms.json"
kill -HUP "$AGENT_PID"
ok=0
for _ in $(seq 20); do
	[ "$(hdr x-verdict "$(msg "$TOK" "$(body '{"model":"claude-3-5-haiku"}')")")" = allow ] && { ok=1; break; }
	sleep 0.2
done
assert_eq "$ok" 1 "good reload adds a model"

# No token, key or secret in the agent's log.
leak=0
for s in "$TOK" "$TOK_NEW" sk-upstream-one sk-upstream-two sk-upstream-three; do
	grep -q -- "$s" "$T_DIR/agent.log" && leak=1
done
assert_eq "$leak" 0 "no secret in the agent log"

finish
