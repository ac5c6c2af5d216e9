#!/usr/bin/env bash
# The gate, attacked as the security review did, against real HAProxy,
# Redis and the agent:
# - a client with a valid token: a second top-level "model" (behind deep
#   nesting, past the 64 KB prefix, chunked, escaped), bodies past the
#   size limit, pass-through names that headers would split or trim;
# - retries that stay in the token's group and its tiers;
# - upstream headers that name the provider account;
# - a local user (nobody): the relay socket, the SPOP listener (which
#   hands out keys) and the mirror (which takes billing);
# - TCP listeners the agent refuses to open.
# Requests go through the relay (retried within the request,
# failover.max_body 1 MB), or, with GATE_DIRECT=1 (test_gate_direct.sh),
# straight to their channel: every property holds on both paths.
. "$(dirname "$0")/lib.sh"
if [ -n "${GATE_DIRECT:-}" ]; then RETRY_BODY=0; else RETRY_BODY=1048576; fi

start_redis || { fail "redis"; finish; }
start_mock a; PORT_A=$MOCK_PORT
start_mock s; PORT_S=$MOCK_PORT
start_mock i; PORT_I=$MOCK_PORT
ADMIN=$(free_port)
cat >"$T_DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 2, "mirror": "$T_DIR/mirror.sock", "admin": "$ADMIN",
             "spool": "$T_DIR/spool", "allow_unknown_models": true, "max_body": 200000 },
  "failover": { "attempts": 3, "failures": 100, "cooldown": 30, "timeout": 5, "avoid": 0, "max_body": $RETRY_BODY },
  "groups": ["staff", "interns"],
  "models": [ {"name": "claude-sonnet-4-5", "enabled": true},
              {"name": "claude-haiku-4-5", "enabled": true},
              {"name": "claude-opus-4-5", "enabled": false} ],
  "channels": [
    {"name": "pa", "base_url": "http://127.0.0.1:$PORT_A", "priority": 10,
     "groups": ["staff", "interns"],
     "credentials": [{"name": "k", "key": "sk-up-shared"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
                "claude-haiku-4-5": "claude-haiku-4-5-20251001", "*": "*"}},
    {"name": "ps", "base_url": "http://127.0.0.1:$PORT_S", "priority": 10, "groups": ["staff"],
     "credentials": [{"name": "k", "key": "sk-up-staff-only"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
                "claude-opus-4-5": "claude-opus-4-5-20251101"}},
    {"name": "pi", "base_url": "http://127.0.0.1:$PORT_I", "groups": ["interns"],
     "credentials": [{"name": "k", "key": "sk-up-interns"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}}
  ]
}
JSON
GW_MIRROR="$T_DIR/mirror.sock" start_gateway "$T_DIR/realms.json" || { fail "gateway"; finish; }
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"
STAFF=$("$REALMS_BIN/realmsctl" token add --name boss --group staff 2>/dev/null)
INTERN=$("$REALMS_BIN/realmsctl" token add --name intern --group interns 2>/dev/null)
URL="http://127.0.0.1:$GW_PORT/v1/messages"
DAY=$(date -u +%Y%m%d)

port_of() { case $1 in a) echo "$PORT_A" ;; s) echo "$PORT_S" ;; i) echo "$PORT_I" ;; esac; }
msgs() { curl -s --max-time 5 "http://127.0.0.1:$(port_of "$1")/mock/stats" | sed -n 's/.*"messages":\([0-9]*\).*/\1/p'; }
mfail() { curl -s -o /dev/null --max-time 5 -X POST "http://127.0.0.1:$(port_of "$1")/mock/fail" -d "$2"; }
metric() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
snap() { A0=$(msgs a); S0=$(msgs s); I0=$(msgs i); }
deltas() { echo "$(( $(msgs a) - A0 ))/$(( $(msgs s) - S0 ))/$(( $(msgs i) - I0 ))"; }
# post TOKEN FILE [curl args...]: status in $CODE, body in $T_DIR/out, headers in $T_DIR/hdr.
post() {
	local tok=$1 file=$2; shift 2
	CODE=$(curl -sS -o "$T_DIR/out" -D "$T_DIR/hdr" -w '%{http_code}' --max-time 20 \
		-H "x-api-key: $tok" -H 'content-type: application/json' "$@" --data-binary "@$file" "$URL")
}
body() { printf '%s' "$1" >"$T_DIR/body.json"; }
last_model() { sed -n 's/.*"model":"\([^"]*\)".*/\1/p' "$(ls "$T_DIR"/rec-"$1"/*.req | tail -1)" | head -1; }

# --- 1. one model, end to end ------------------------------------------------
# A second top-level model inside the prefix: the agent refuses it.
body '{"model":"claude-haiku-4-5","max_tokens":5,"messages":[],"model":"claude-sonnet-4-5"}'
snap
post "$STAFF" "$T_DIR/body.json"
assert_eq "$CODE" 400 "two models in a small body: 400"
assert_match "$(cat "$T_DIR/out")" '"type":"invalid_request_error".*duplicate top-level key' \
	"two models: invalid_request_error, duplicate key"

# The review's body: haiku, a tool schema nested 100 deep, then opus.
nest=$(printf '{"type":"object","properties":%.0s' $(seq 100))
close=$(printf '}%.0s' $(seq 100))
body "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":[],\"tools\":[{\"name\":\"t\",\"input_schema\":${nest}{}${close}}],\"model\":\"claude-sonnet-4-5\"}"
post "$STAFF" "$T_DIR/body.json"
assert_eq "$CODE" 400 "a second model behind a 100-deep schema: 400"
# Deeper than any inspector bound: 20,000 levels.
nest=$(head -c 20000 /dev/zero | sed 's/\x0/[/g'); close=$(head -c 20000 /dev/zero | sed 's/\x0/]/g')
body "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":[],\"x\":${nest}${close},\"model\":\"claude-sonnet-4-5\"}"
post "$STAFF" "$T_DIR/body.json"
assert_eq "$CODE" 400 "a second model behind 20,000 levels: 400"

# Past the 120 KB prefix: the body guard sees every byte.
pad=$(head -c 150000 /dev/zero | tr '\0' 'x')
body "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"$pad\"}],\"model\":\"claude-sonnet-4-5\"}"
post "$STAFF" "$T_DIR/body.json"
assert_eq "$CODE" 400 "a second model after 150 KB: 400"
assert_match "$(cat "$T_DIR/out")" '"message":"request body has a duplicate top-level key"' \
	"after 150 KB: the guard's message"
post "$STAFF" "$T_DIR/body.json" -H 'transfer-encoding: chunked'
assert_eq "$CODE" 400 "a second model after 150 KB, chunked: 400"
# Escaped, so that only a decoder sees "model".
body "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"$pad\"}],\"mod\\u0065l\":\"claude-sonnet-4-5\"}"
post "$STAFF" "$T_DIR/body.json"
assert_eq "$CODE" 400 "an escaped second model after 150 KB: 400"
sleep 0.5
assert_eq "$(deltas)" "0/0/0" "no upstream acted on any of these bodies"

# The same large bodies with one model, and a real Claude Code body, pass.
body "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"$pad\"}],\"stream\":false}"
post "$STAFF" "$T_DIR/body.json" -H 'transfer-encoding: chunked'
assert_eq "$CODE" 200 "one model after 150 KB, chunked: 200"
assert_eq "$(last_model a)" "claude-haiku-4-5-20251001" "chunked: the upstream got the rewritten model"
fixture_headers "$FIXTURES/messages-1.http"
CODE=$(curl -sS -o "$T_DIR/out" -w '%{http_code}' --max-time 20 "${FIXTURE_H[@]}" \
	-H "authorization: Bearer $STAFF" --data-binary "@$FIXTURES/messages-1.json" "$URL?beta=true")
assert_eq "$CODE" 200 "the 85 KB Claude Code request: 200"

# The size limit (agent.max_body 200000): by Content-Length, and chunked.
big=$(head -c 250000 /dev/zero | tr '\0' 'y')
body "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"$big\"}]}"
snap
post "$STAFF" "$T_DIR/body.json"
assert_eq "$CODE" 413 "250 KB with Content-Length: 413"
assert_match "$(cat "$T_DIR/out")" '"type":"request_too_large"' "250 KB: request_too_large"
post "$STAFF" "$T_DIR/body.json" -H 'transfer-encoding: chunked'
assert_eq "$CODE" 400 "250 KB chunked: stopped"
assert_match "$(cat "$T_DIR/out")" 'larger than the 200000 bytes' "250 KB chunked: the limit named"
sleep 0.3
assert_eq "$(deltas)" "0/0/0" "oversized bodies reach no upstream"

# Pass-through names obey the model-name charset; a disabled model is
# never served, passed through or not.
for m in 'x,claude-opus-4-5' 'claude-opus-4-5 ' ' claude-opus-4-5' 'claude-opus-4-5\n'; do
	body "{\"model\":\"$m\",\"max_tokens\":5,\"messages\":[]}"
	post "$STAFF" "$T_DIR/body.json"
	assert_eq "$CODE" 400 "pass-through '$m': 400"
done
body '{"model":"claude-opus-4-5","max_tokens":5,"messages":[]}'
post "$STAFF" "$T_DIR/body.json"
assert_eq "$CODE" 404 "a disabled model: 404, even with a \"*\" channel"
assert_eq "$(deltas)" "0/0/0" "none of them reached an upstream"
body '{"model":"claude-future-9","max_tokens":5,"messages":[]}'
post "$STAFF" "$T_DIR/body.json"
assert_eq "$CODE/$(last_model a)" "200/claude-future-9" "a well-formed unknown name is passed through"

# --- 2. groups hold on every attempt ------------------------------------------
# interns: pa (top tier, shared) then pi (their own lower tier); ps is
# staff's. pa failing, the retry goes to pi, never to ps.
body '{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}'
if [ -n "${GATE_DIRECT:-}" ]; then
	# Straight: one attempt, the client gets the failure; the first
	# choice is in the token's group and tier (pa), never ps.
	for n in 1 2 3; do
		mfail a '{"status":503}'
		snap
		post "$INTERN" "$T_DIR/body.json"
		assert_eq "$CODE/$(deltas)" "503/1/0/0" "interns, pa failing ($n), straight: one attempt, on pa"
	done
	mfail a '{"status":503,"count":0}'
	snap
	post "$INTERN" "$T_DIR/body.json"
	assert_eq "$CODE/$(deltas)" "200/1/0/0" "interns, straight: served by pa, never by ps"
fi
for n in 1 2 3; do
	[ -n "${GATE_DIRECT:-}" ] && break
	mfail a '{"status":503}'
	snap
	post "$INTERN" "$T_DIR/body.json"
	assert_eq "$CODE/$(deltas)" "200/1/0/1" "interns, pa failing ($n): served by pi, never by ps"
done
if [ -z "${GATE_DIRECT:-}" ]; then
# interns with their own channel down too: the client gets the failure,
# and still nothing reaches the staff-only key.
mfail a '{"status":529,"count":3}'
mfail i '{"status":529,"count":3}'
snap
post "$INTERN" "$T_DIR/body.json"
assert_eq "$CODE" 529 "interns, every channel of theirs failing: the last real status"
assert_eq "$(( $(msgs a) - A0 ))/$(( $(msgs s) - S0 ))/$(( $(msgs i) - I0 ))" "2/0/1" \
	"interns: 3 attempts on their own two credentials, the staff-only one never used"
mfail a '{"status":503,"count":0}'; mfail i '{"status":503,"count":0}'
# staff: pa and ps share the top tier; both failing once, the third
# attempt goes back to that tier, never down to pi (interns').
for n in 1 2; do
	mfail a '{"status":503}'
	mfail s '{"status":503}'
	snap
	post "$STAFF" "$T_DIR/body.json"
	assert_eq "$CODE/$(( $(msgs a) + $(msgs s) - A0 - S0 ))/$(( $(msgs i) - I0 ))" "200/3/0" \
		"staff, pa and ps failing once ($n): served in their tier, never by pi"
	mfail a '{"status":503,"count":0}'; mfail s '{"status":503,"count":0}'
done
# Billed to the channel that answered, in the token's group.
sleep 1
assert_match "$(rcli HGET "realms:usage:channel:pi:$DAY" requests)" '^[3-9]$' \
	"interns' retries billed to pi"
fi

# --- 2b. a client leaving mid-upload is not the credential's failure -----------
# 100 KB of a 200 KB body, then the connection closed: no attempt result
# reaches the breakers (before, each counted as a failure of a distinct
# request, and any token could open every breaker of its group).
out0=$(metric realms_attempt_outcomes_total)
pad=$(head -c 100000 /dev/zero | tr '\0' 'z')
for n in 1 2 3 4 5; do
	{
		exec 7<>"/dev/tcp/127.0.0.1/$GW_PORT"
		printf 'POST /v1/messages HTTP/1.1\r\nhost: gw\r\nx-api-key: %s\r\ncontent-type: application/json\r\ncontent-length: 200000\r\n\r\n{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"%s' \
			"$INTERN" "$pad" >&7
		sleep 0.3
		exec 7<&-
	} 2>/dev/null
done
sleep 1
assert_eq "$(metric realms_attempt_outcomes_total)" "$out0" "5 uploads cut by their client: nothing counted against a credential"
post "$INTERN" "$T_DIR/body.json"
assert_eq "$CODE" 200 "after them, the interns are served"
# A whole request whose upstream closes without sending a byte is the
# credential's failure: its result (no response) reaches the breakers. The
# agent read this body whole, so the shim's outcome part knows it is all
# sent without watching it pass.
body '{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}'
sleep 1   # the results of the requests above are in
out0=$(metric realms_attempt_outcomes_total)
mfail a '{"status":200,"close_after":0}'
post "$INTERN" "$T_DIR/body.json"
if [ -n "${GATE_DIRECT:-}" ]; then want="502 1"; else want="200 2"; fi
for _ in $(seq 50); do
	got="$CODE $(( $(metric realms_attempt_outcomes_total) - out0 ))"
	[ "$got" = "$want" ] && break
	sleep 0.1
done
assert_eq "$got" "$want" "an upstream closing without a response: its result counted (status, results)"
# A body past the agent's 120 KB prefix but within HAProxy's buffer (so
# buffered whole before the backend sees it), refused by the body guard
# for a second "model" in its tail: the client's doing, nothing counted
# against the credential.
printf '{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"%s"}],"model":"claude-haiku-4-5"}' \
	"$(head -c 125000 /dev/zero | tr '\0' 'z')" >"$T_DIR/gap.json"
sleep 1
out0=$(metric realms_attempt_outcomes_total)
post "$INTERN" "$T_DIR/gap.json"
sleep 1
assert_eq "$CODE $(( $(metric realms_attempt_outcomes_total) - out0 ))" "400 0" \
	"a body refused by the guard past the agent's prefix: 400, nothing counted against a credential"

# --- 3. upstream headers that name the provider account stay behind -----------
post "$STAFF" "$T_DIR/body.json"
assert_eq "$CODE" 200 "headers: a plain request"
grep -qi '^anthropic-organization-id' "$T_DIR/hdr" && fail "anthropic-organization-id reached the client" ||
	ok "anthropic-organization-id does not reach the client"
grep -qi '^anthropic-ratelimit-' "$T_DIR/hdr" && fail "the account's rate limits reached the client" ||
	ok "the account's rate limits do not reach the client"
grep -qi '^request-id: req_mock_' "$T_DIR/hdr" && ok "request-id passes" || fail "request-id missing"
grep -qi '^x-realms-request-id: req_' "$T_DIR/hdr" && ok "x-realms-request-id passes" ||
	fail "x-realms-request-id missing"
grep -qi '^x-realms-\(cred\|server\|orig\)' "$T_DIR/hdr" && fail "an internal header reached the client" ||
	ok "no internal header reaches the client"

# --- 3b. what a client sends that a provider must not see -------------------
# Only an allow-list of request headers reaches a provider; the request
# line is put in origin form (an absolute-form target would name another
# authority).
body '{"model":"claude-haiku-4-5","max_tokens":5,"messages":[]}'
CODE=$(curl -sS -o "$T_DIR/out" -w '%{http_code}' --max-time 10 -H "x-api-key: $STAFF" \
	-H 'content-type: application/json' -H 'proxy-authorization: Basic eHg6eXk=' \
	-H 'api-key: sk-client-own' -H 'cf-connecting-ip: 203.0.113.7' -H 'via: 1.1 elsewhere' \
	-H 'anthropic-organization-id: org-client-says' -H 'x-client-ip: 203.0.113.8' \
	-H 'anthropic-version: 2023-06-01' -H 'x-stainless-lang: js' \
	-H "host: evil.example:1" --request-target "http://evil.example:1/v1/messages?beta=true" \
	--data-binary "@$T_DIR/body.json" \
	"http://127.0.0.1:$GW_PORT/v1/messages")
assert_eq "$CODE" 200 "allow-list: served"
r=$(ls "$T_DIR"/rec-a/*.req | tail -1)
assert_eq "$(head -1 "$r" | tr -d '\r')" "POST /v1/messages?beta=true HTTP/1.1" \
	"an absolute-form target reaches the provider in origin form"
for h in proxy-authorization api-key cf-connecting-ip via anthropic-organization-id x-client-ip; do
	grep -qi "^$h:" "$r" && fail "client header $h reached the provider" ||
		ok "client header $h does not reach the provider"
done
grep -qi '^anthropic-version: 2023-06-01' "$r" && grep -qi '^x-stainless-lang: js' "$r" &&
	ok "what the Messages API and the SDKs send passes" || fail "allow-list: too strict"
# No credential: 401 at once, without waiting for the body the client
# never finishes (an anonymous client cannot hold buffers).
t0=$(date +%s%N)
exec 7<>"/dev/tcp/127.0.0.1/$GW_PORT"
printf 'POST /v1/messages HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{"model":' >&7
read -r -t 5 line <&7
exec 7<&-
assert_match "$line" '^HTTP/1.1 401' "no credential: 401 before the body"
assert_eq "$(( ($(date +%s%N) - t0) / 1000000 < 2000 ))" 1 "no credential: answered at once"

# --- 4. a local user is not let in --------------------------------------------
# The directory opened to everyone, so that only the sockets' own
# protection stands between nobody and the agent.
chmod 755 "$T_DIR"
as_nobody() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }

# The relay injects keys: mode 600, HAProxy's user only.
as_nobody curl -s -o /dev/null --max-time 5 --unix-socket "$T_DIR/relay.sock" \
	-H 'x-realms-server: ps--k' -H 'x-realms-model: claude-sonnet-4-5' -H 'x-realms-group: staff' \
	-H 'content-type: application/json' -d '{"model":"claude-sonnet-4-5"}' http://relay/v1/messages
rc=$?
assert_eq "$rc" 7 "nobody cannot connect to the relay (curl: couldn't connect)"
assert_match "$(stat -c %a "$T_DIR/relay.sock")" '^600$' "the relay socket is mode 600"

# The SPOP listener: even with the socket opened to all, the peer check
# refuses nobody, while HAProxy's user (here root) gets its answers.
chmod 666 "$T_DIR/agent.sock" "$T_DIR/mirror.sock"
refused0=$(metric realms_refused_peers_total)
as_nobody "$REALMS_BIN/spop_call" "$T_DIR/agent.sock" realms-attempt rid=req_x server=ps--k \
	model=claude-sonnet-4-5 group=staff model_off=9 model_len=19 clen=40 >"$T_DIR/nobody.out" 2>&1
assert_eq "$?" 1 "nobody speaking SPOP: no answer"
grep -q 'key=' "$T_DIR/nobody.out" && fail "nobody read a key over SPOP" || ok "nobody read no key over SPOP"
"$REALMS_BIN/spop_call" "$T_DIR/agent.sock" realms-attempt rid=req_x server=ps--k \
	model=claude-sonnet-4-5 group=staff model_off=9 model_len=19 clen=40 >"$T_DIR/root.out" 2>&1
grep -q '^key=sk-up-staff-only$' "$T_DIR/root.out" && ok "the same call as HAProxy's user gets the key (the check is what stops nobody)" ||
	fail "the allowed peer got no key: $(cat "$T_DIR/root.out")"
assert_eq "$(( $(metric realms_refused_peers_total) - refused0 ))" 1 "the refusal is counted"
grep -q 'refused a connection from uid 65534' "$T_DIR/agent.log" && ok "the refusal is logged" ||
	fail "no log line for the refused peer"

# The mirror: a forged usage record for someone else's token.
forge() {
	local meta="status=200
ctype=application/json
token=$2
token_id=
group=staff
model=claude-sonnet-4-5
server=pa--k
ts_ms=$(date +%s%3N)
ttfb_ms=1
" end="reason=complete
duration_ms=1
" body='{"usage":{"input_tokens":1000000,"output_tokens":1000000}}'
	printf 'B %s %d\n%sD %s %d\n%sE %s %d\n%sS 1\n' "$1" "${#meta}" "$meta" "$1" "${#body}" "$body" \
		"$1" "${#end}" "$end"
}
forge req_forged_by_nobody intern | as_nobody "$REALMS_BIN/spop_call" -r "$T_DIR/mirror.sock" \
	>"$T_DIR/nobody-mirror.out" 2>&1
assert_eq "$?" 1 "nobody writing to the mirror: closed without an answer"
forge req_forged_by_root forged | "$REALMS_BIN/spop_call" -r "$T_DIR/mirror.sock" >"$T_DIR/root-mirror.out" 2>&1
grep -q '^A req_forged_by_root$' "$T_DIR/root-mirror.out" && ok "the same frames from HAProxy's user are taken (the check is what stops nobody)" ||
	fail "the allowed peer's frames: $(cat "$T_DIR/root-mirror.out")"
sleep 0.3
assert_eq "$(rcli EXISTS realms:usage:seen:req_forged_by_nobody)" 0 "nobody's forged record is not in Redis"
chmod 700 "$T_DIR"

# --- 5. TCP listeners ------------------------------------------------------------
P=$(free_port)
"$REALMS_AGENT" -f -l "127.0.0.1:$P" >"$T_DIR/tcp1.log" 2>&1
assert_eq "$?" 1 "a TCP listener without allow_tcp: the agent refuses to start"
grep -q "refusing to listen on TCP 127.0.0.1:$P: any local user could connect" "$T_DIR/tcp1.log" &&
	ok "the refusal says why" || fail "tcp refusal: $(cat "$T_DIR/tcp1.log")"
"$REALMS_AGENT" -f -T -l "0.0.0.0:$P" >"$T_DIR/tcp2.log" 2>&1
assert_eq "$?" 1 "a non-loopback TCP listener: refused even with --allow-tcp"
grep -q "not a loopback address, and the agent's answers carry upstream keys in clear" "$T_DIR/tcp2.log" &&
	ok "non-loopback: the keys are the reason" || fail "non-loopback: $(cat "$T_DIR/tcp2.log")"
# The admin listener's bare port is loopback: its listening socket in
# /proc/net/tcp is bound to 127.0.0.1 (0100007F), not 0.0.0.0.
hex=$(printf '%04X' "$ADMIN")
assert_eq "$(awk -v p=":$hex" '$4 == "0A" && substr($2, 9) == p { print $2 }' /proc/net/tcp)" \
	"0100007F:$hex" "agent.admin \"$ADMIN\" listens on 127.0.0.1 only"

grep -q 'sk-up-' "$T_DIR/agent.log" "$T_DIR/haproxy.log" && fail "a key in a log" || ok "no key in the logs"
finish
