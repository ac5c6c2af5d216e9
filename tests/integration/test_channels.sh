#!/usr/bin/env bash
# Channel options, through the whole gateway: a provider behind a path
# (base_url https://host/prefix, as DeepSeek, Moonshot, Zhipu or OpenRouter
# publish theirs), the key in x-api-key only or in Authorization: Bearer
# only, and extra headers fixed by the operator (a secret from a file among
# them) that no client can override, that never appear in the rendered
# configuration or a log, and that the key probe sends too.
. "$(dirname "$0")/lib.sh"

start_redis || { fail "redis"; finish; }
start_mock deep -p /anthropic; PORT_D=$MOCK_PORT
start_mock bear; PORT_B=$MOCK_PORT
ADMIN=$(free_port)
printf 'org-secret-4f1e\n' >"$T_DIR/org.secret"
chmod 600 "$T_DIR/org.secret"
cat >"$T_DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 2, "mirror": "$T_DIR/mirror.sock", "admin": "$ADMIN",
             "spool": "$T_DIR/spool" },
  "models": [ {"name": "m-deep", "enabled": true}, {"name": "m-bear", "enabled": true} ],
  "channels": [
    {"name": "deep", "base_url": "http://127.0.0.1:$PORT_D/anthropic/", "auth": "x-api-key",
     "headers": {"X-Org-Tag": "file:$T_DIR/org.secret", "X-Provider-Project": "proj-7"},
     "credentials": [{"name": "k", "key": "sk-up-deep"}],
     "models": {"m-deep": "deepseek-chat"}},
    {"name": "bear", "base_url": "http://127.0.0.1:$PORT_B", "auth": "bearer",
     "credentials": [{"name": "k", "key": "sk-up-bear"}],
     "models": {"m-bear": "m-bear"}}
  ]
}
JSON
GW_MIRROR="$T_DIR/mirror.sock" start_gateway "$T_DIR/realms.json" || { fail "gateway"; finish; }
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"
TOK=$("$REALMS_BIN/realmsctl" token add --name chan 2>/dev/null)
BASE="http://127.0.0.1:$GW_PORT"
last() { ls "$T_DIR"/rec-"$1"/*.req | tail -1; }
# hdrs FILE NAME: the values of header NAME in a recorded request, one a line.
hdrs() { sed -n '/^\r\{0,1\}$/q; p' "$1" | tr -d '\r' | grep -i "^$2:" | sed 's/^[^:]*: //'; }
post() {
	CODE=$(curl -sS -o "$T_DIR/out" -w '%{http_code}' --max-time 20 -H "x-api-key: $TOK" \
		-H 'content-type: application/json' "${@:2}" \
		--data-binary "{\"model\":\"$1\",\"max_tokens\":5,\"messages\":[]}" "$URL")
}

grep -q 'set-path "/anthropic%\[path\]"' "$T_DIR/hp/channels.cfg" &&
	ok "rendered: up_deep puts its requests under /anthropic" || fail "rendered: no set-path"
grep -q -e org-secret -e sk-up- "$T_DIR/hp/channels.cfg" && fail "rendered: a secret in channels.cfg" ||
	ok "rendered: no key and no header value in channels.cfg"

# --- a provider behind a path, the key in x-api-key only, its headers ---------
URL="$BASE/v1/messages?beta=true"
post m-deep -H 'X-Org-Tag: forged-by-client'
assert_eq "$CODE" 200 "prefix: served"
r=$(last deep)
assert_eq "$(head -1 "$r" | tr -d '\r')" "POST /anthropic/v1/messages?beta=true HTTP/1.1" \
	"prefix: the provider got /anthropic/v1/messages, query string kept"
assert_eq "$(hdrs "$r" x-api-key)" "sk-up-deep" "auth x-api-key: the key in x-api-key"
assert_eq "$(hdrs "$r" authorization)" "" "auth x-api-key: no Authorization header"
assert_eq "$(hdrs "$r" x-org-tag)" "org-secret-4f1e" \
	"headers: the operator's value from the file, the client's replaced (one header)"
assert_eq "$(hdrs "$r" x-provider-project)" "proj-7" "headers: an inline value"
assert_match "$(cat "$r")" '"model":"deepseek-chat"' "prefix: the body's model rewritten"
URL="$BASE/v1/messages/count_tokens"
post m-deep
assert_eq "$CODE/$(head -1 "$(last deep)" | tr -d '\r')" \
	"200/POST /anthropic/v1/messages/count_tokens HTTP/1.1" "prefix: count_tokens under it too"
CODE=$(curl -s -o "$T_DIR/out" -w '%{http_code}' --max-time 5 -H "x-api-key: $TOK" "$BASE/v1/models")
assert_eq "$CODE" 200 "/v1/models: answered by the gateway as before"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/")" 200 "setup page as before"

# --- the key in Authorization: Bearer only ----------------------------------------
URL="$BASE/v1/messages"
post m-bear
assert_eq "$CODE" 200 "auth bearer: served"
r=$(last bear)
assert_eq "$(hdrs "$r" authorization)" "Bearer sk-up-bear" "auth bearer: the key as a Bearer token"
assert_eq "$(hdrs "$r" x-api-key)" "" "auth bearer: no x-api-key header"
assert_eq "$(hdrs "$r" x-org-tag)" "" "another channel's headers stay with it"

# --- the key probe speaks like the relay --------------------------------------------
curl -s -o /dev/null -X POST "http://127.0.0.1:$PORT_D/mock/fail" -d '{"status":401}'
post m-deep
for _ in $(seq 50); do ls "$T_DIR"/rec-deep/*.req | xargs grep -l '^GET /anthropic/v1/models' >/dev/null 2>&1 && break; sleep 0.1; done
p=$(grep -l '^GET /anthropic/v1/models' "$T_DIR"/rec-deep/*.req | tail -1)
[ -n "$p" ] && ok "probe: GET /anthropic/v1/models" || fail "probe: none under the prefix"
if [ -n "$p" ]; then
	assert_eq "$(hdrs "$p" x-api-key)/$(hdrs "$p" authorization)" "sk-up-deep/" "probe: the key as auth says"
	assert_eq "$(hdrs "$p" x-org-tag)" "org-secret-4f1e" "probe: the channel's headers"
fi

# --- a realms.cfg older than the rendered channels ---------------------------------
# Its fe_realms filter has no rewrite and no outcome part (up_<channel> no
# longer has a filter): every request to a channel is refused, a body to be
# rewritten never sent under a Content-Length it does not have, no attempt
# left unreported to the breakers.
sed -e 's/^\(    filter lua\.realms-guard-tap\)-rewrite-outcome$/\1/' \
	-e '/set-var(txn\.realms_attempt_filter)/d' "$REALMS_SRC/haproxy/realms.cfg" >"$T_DIR/old-realms.cfg"
assert_eq "$(diff "$REALMS_SRC/haproxy/realms.cfg" "$T_DIR/old-realms.cfg" | grep -c '^<')" 3 \
	"the older realms.cfg: its filter line and the two marks"
sed -e "s|$T_DIR/mirror.sock|$T_DIR/mirror2.sock|" -e "s|\"$ADMIN\"|\"$(free_port)\"|" \
	-e "s|$T_DIR/spool|$T_DIR/spool2|" "$T_DIR/realms.json" >"$T_DIR/realms2.json"
if GW_ID=2 GW_MIRROR="$T_DIR/mirror2.sock" GW_REALMS_CFG="$T_DIR/old-realms.cfg" \
	start_gateway "$T_DIR/realms2.json"; then
	BASE="http://127.0.0.1:$GW_PORT"
	URL="$BASE/v1/messages"
	posts() { grep -l '^POST' "$T_DIR"/rec-deep/*.req | wc -l; }
	n0=$(posts)
	post m-deep
	assert_eq "$CODE" 500 "older realms.cfg: a body to be rewritten is refused"
	assert_match "$(cat "$T_DIR/out")" '"type":"api_error".*no Realms attempt filter \(update haproxy/realms.cfg\)' \
		"and the operator is told why"
	assert_eq "$(posts)" "$n0" "nothing reached the provider"
	post m-bear
	assert_eq "$CODE" 500 "older realms.cfg: a model that keeps its name is refused too"
else
	fail "a gateway with the older realms.cfg"
fi

grep -rq -e 'org-secret' -e 'sk-up-' "$T_DIR"/*.log && fail "a secret in a log" ||
	ok "no key and no header value in any log"
finish
