#!/usr/bin/env bash
# The operator dashboard (issue 13, part 4), in Debian's headless Chromium:
# - traffic with known usage (the mock's x-mock-usage) through a whole
#   gateway: two tokens (one with budgets), two models, a refusal and a
#   stream cut by an error event;
# - the admin API over HTTP: 401 without the credential, 403 with a wrong
#   one, 400 for bad parameters or two Authorization headers, 405 for
#   other methods (a CORS preflight included), security headers, no CORS;
# - the client frontend (HAProxy's fe_realms) never serves the dashboard
#   or its API, with or without the credential;
# - the page in Chromium, driven through the DevTools protocol (cdp.py):
#   without the credential it asks for it and shows no number; a wrong one
#   is refused and shows none; the right one shows the numbers of
#   `realmsctl usage --json` exactly (every counter of the total, of each
#   token, model and channel), the budgets of `realmsctl token show`, the
#   chart and the last requests, with no console error;
# - Redis down: the API answers 503 with an error JSON, the page shows the
#   error and no number;
# - without agent.admin_token (after a reload) it is all 404.
# DASH_SCREENSHOT=PATH keeps the page's screenshot (docs/dashboard.png).
. "$(dirname "$0")/lib.sh"

CTL="$REALMS_BIN/realmsctl"
CDP="$REALMS_SRC/tests/integration/cdp.py"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
# Debian's python3 (standard library only); a version manager's shim in
# PATH costs a second a call.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
[ -n "$CHROMIUM" ] || { fail "no chromium (scripts/bootstrap.sh installs it)"; finish; }

start_redis || { fail "redis"; finish; }
start_mock up || { fail "mock upstream"; finish; }
ADMIN=$(free_port)
A="http://127.0.0.1:$ADMIN"
# The credential, as an operator keeps it: a file of mode 600.
ADMIN_TOKEN=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
( umask 077; echo "$ADMIN_TOKEN" >"$T_DIR/admin.token" )
write_config() {   # write_config ADMIN_TOKEN_MEMBER
	cat >"$T_DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 2, "mirror": "$T_DIR/mirror.sock", "spool": "$T_DIR/spool",
             "admin": "127.0.0.1:$ADMIN"$1 },
  "groups": ["default", {"name": "interns", "limits": {"usd/month": 50}}],
  "models": [ {"name": "claude-sonnet-4-5", "enabled": true},
              {"name": "claude-haiku-4-5", "enabled": true} ],
  "channels": [
    {"name": "up", "base_url": "http://127.0.0.1:$MOCK_PORT",
     "groups": ["default", "interns"],
     "credentials": [{"name": "k1", "key": "sk-up-1"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
                "claude-haiku-4-5": "claude-haiku-4-5-20251001"}}
  ]
}
JSON
}
write_config ", \"admin_token\": \"file:$T_DIR/admin.token\""
chmod 600 "$T_DIR/realms.json"
GW_MIRROR="$T_DIR/mirror.sock" start_gateway "$T_DIR/realms.json" || { fail "gateway"; finish; }
wait_tcp "$ADMIN" 10 || { fail "admin listener"; finish; }
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"
ALICE=$("$CTL" -c "$T_DIR/realms.json" token add --name alice --limit usd/day=10 --limit rpm=100 2>/dev/null)
BOB=$("$CTL" -c "$T_DIR/realms.json" token add --name bob --group interns 2>/dev/null)
if [ -z "$ALICE" ] || [ -z "$BOB" ]; then fail "tokens"; finish; fi

# ---- traffic with known usage --------------------------------------------
URL="http://127.0.0.1:$GW_PORT/v1/messages"
post() {   # post TOKEN MODEL USAGE [CURL ARGS...]
	local tok=$1 model=$2 usage=$3; shift 3
	curl -sS -o /dev/null -w '%{http_code}' --max-time 20 -H "x-api-key: $tok" \
		-H 'content-type: application/json' -H "x-mock-usage: $usage" "$@" \
		--data-binary "{\"model\":\"$model\",\"max_tokens\":64,\"messages\":[]}" "$URL"
}
codes=""
codes+=$(post "$ALICE" claude-sonnet-4-5 'in=1000,out=200,cr=300,cw5=10')
codes+=$(post "$ALICE" claude-sonnet-4-5 'in=2000,out=100')
codes+=$(post "$ALICE" claude-haiku-4-5 'in=500,out=50,cw1=20,ws=1')
codes+=$(post "$BOB" claude-sonnet-4-5 'in=123,out=45')
codes+=$(post "$BOB" claude-haiku-4-5 'in=7,out=3')
assert_eq "$codes" "200200200200200" "five answered requests"
# A refusal by the gateway itself leaves no record; an error from the
# upstream does (status 400: counted in errors).
assert_eq "$(post sk-nobody claude-sonnet-4-5 'in=1,out=1')" 401 "an unknown token is refused"
assert_eq "$(post "$ALICE" claude-haiku-4-5 'in=3,out=0' -H 'x-mock-status: 400')" 400 \
	"the upstream's 400 is passed on"
# A stream cut by an error event: a partial record.
curl -sS -o /dev/null --max-time 20 -H "x-api-key: $BOB" -H 'content-type: application/json' \
	-H 'x-mock-usage: in=40,out=9' -H 'x-mock-deltas: 5' -H 'x-mock-error-after: 3' \
	--data-binary '{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[]}' "$URL"
for _ in $(seq 100); do
	[ "$(rcli XLEN realms:usage:events)" -ge 7 ] && break
	sleep 0.1
done
assert_eq "$(rcli XLEN realms:usage:events)" 7 "seven records in the events stream"
"$CTL" usage --json >"$T_DIR/usage.json" 2>/dev/null
assert_eq "$?" 0 "realmsctl usage --json"
"$CTL" -c "$T_DIR/realms.json" token show alice --json >"$T_DIR/alice.json" 2>/dev/null
"$CTL" -c "$T_DIR/realms.json" token show bob --json >"$T_DIR/bob.json" 2>/dev/null

# ---- the admin API over HTTP ----------------------------------------------
code() { curl -s -o "$T_DIR/body" -D "$T_DIR/head" -w '%{http_code}' --max-time 10 "$@"; }
AUTH=(-H "Authorization: Bearer $ADMIN_TOKEN")
assert_eq "$(code "$A/api/admin/usage")" 401 "API without the credential: 401"
assert_match "$(cat "$T_DIR/body")" '"error": \{"status": 401' "401 with an error JSON"
assert_match "$(tr -d '\r' <"$T_DIR/head")" 'WWW-Authenticate: Bearer' "401 names the scheme"
assert_eq "$(code -H 'Authorization: Bearer wrong' "$A/api/admin/usage")" 403 "a wrong credential: 403"
assert_eq "$(code -H "Authorization: Bearer ${ADMIN_TOKEN}x" "$A/api/admin/events")" 403 \
	"the credential with one more character: 403"
assert_eq "$(code -H "Authorization: Basic $ADMIN_TOKEN" "$A/api/admin/usage")" 401 "another scheme: 401"
assert_eq "$(code -H "x-api-key: $ADMIN_TOKEN" "$A/api/admin/usage")" 401 "the credential as x-api-key: 401"
assert_eq "$(code -H "Authorization: Bearer $ALICE" "$A/api/admin/usage")" 403 "a client token: 403"
assert_eq "$(code "${AUTH[@]}" -H 'Authorization: Bearer wrong' "$A/api/admin/usage")" 400 \
	"two Authorization headers: 400"
assert_no_match "$(cat "$T_DIR/body")" 'alice|requests' "no data in refusals"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/usage")" 200 "API with the credential: 200"
H=$(tr -d '\r' <"$T_DIR/head")
assert_match "$H" "Content-Security-Policy: default-src 'none'; script-src 'self';" "API: CSP"
assert_match "$H" 'X-Content-Type-Options: nosniff' "API: nosniff"
assert_match "$H" 'Cache-Control: no-store' "API: no-store"
assert_no_match "$H" 'Access-Control-' "API: no CORS header"
assert_no_match "$H" 'Set-Cookie' "API: no cookie"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/usage?since=2026-13-01")" 400 "a bad date: 400"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/usage?since=2026-01-01&until=2026-12-31")" 400 \
	"a range over 92 days: 400"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/usage?since=2026-01-02&until=2026-01-01")" 400 \
	"since after until: 400"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/usage?since=2026-01-01&since=2026-01-02")" 400 \
	"since twice: 400"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/events?count=0")" 400 "count 0: 400"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/events?count=201")" 400 "count over 200: 400"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/events?count=3")" 200 "events: 200"
assert_eq "$(grep -o '"req_id"' "$T_DIR/body" | wc -l)" 3 "events: count=3 gives three"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/nope")" 404 "an unknown admin API: 404"
assert_eq "$(code -X POST "${AUTH[@]}" "$A/api/admin/usage")" 405 "POST: 405"
assert_eq "$(code -X OPTIONS -H 'Origin: http://evil.example' \
	-H 'Access-Control-Request-Method: GET' -H 'Access-Control-Request-Headers: authorization' \
	"$A/api/admin/usage")" 405 "a CORS preflight: 405"
assert_no_match "$(tr -d '\r' <"$T_DIR/head")" 'Access-Control-' "the preflight gets no CORS header"
assert_eq "$(code "$A/dashboard")" 200 "the page loads without the credential"
assert_no_match "$(cat "$T_DIR/body")" 'alice|bob|claude' "the page itself holds no data"
assert_match "$(tr -d '\r' <"$T_DIR/head")" "Content-Security-Policy: default-src 'none'; script-src 'self';" \
	"the page: CSP without inline script"
assert_no_match "$(cat "$T_DIR/body")" '<script>|<style>| on[a-z]+=' "the page: no inline script or style"
assert_eq "$(code "$A/dashboard/chart.js")" 200 "Chart.js served from Debian's package"
assert_eq "$(code "$A/dashboard/../../etc/passwd")" 404 "no path from the request becomes a file"
assert_eq "$(code "$A/dashboard/chart.js/../../../etc/passwd")" 404 "nor through chart.js"
assert_eq "$(code "$A/metrics")" 200 "/metrics still answers"
assert_match "$(tr -d '\r' <"$T_DIR/head")" 'X-Content-Type-Options: nosniff' "/metrics: nosniff"

# Slow readers: 200 connections ask for Chart.js and never read. The agent
# sends the file from its one copy (never a copy per request): its memory
# grows by far less than 200 copies (40 MB). Plain build only: ASan's
# shadow memory makes RSS meaningless.
if [ "$REALMS_FLAVOUR" = plain ]; then
	rss() { awk '/^VmRSS/ { print $2 }' "/proc/$AGENT_PID/status"; }
	before=$(rss)
	after=$("$PY" - "$ADMIN" "$AGENT_PID" <<'PY'
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
socks = []
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /dashboard/chart.js HTTP/1.1\r\nHost: x\r\n\r\n")
    socks.append(s)
time.sleep(1)
print(next(l.split()[1] for l in open("/proc/%s/status" % pid) if l.startswith("VmRSS")))
for s in socks:
    s.close()
PY
)
	assert_eq "$(( after - before < 10240 ))" 1 "200 slow readers of Chart.js: the agent grew by $(( after - before )) KB, not 40 MB"
	assert_eq "$(code "$A/healthz")" 200 "and it still answers"
fi

# ---- the client frontend never serves it ------------------------------------
G="http://127.0.0.1:$GW_PORT"
for p in /dashboard /dashboard/ /dashboard/dash.js /dashboard/chart.js /api/admin/usage \
         /api/admin/events; do
	for h in "" "Authorization: Bearer $ADMIN_TOKEN" "x-api-key: $ALICE"; do
		c=$(curl -s -o "$T_DIR/body" -w '%{http_code}' --max-time 10 ${h:+-H "$h"} "$G$p")
		if [ "$c" = 200 ] || grep -qE 'Realms dashboard|by_token|realms-admin-token' "$T_DIR/body"; then
			fail "fe_realms served $p (${h%%:*}): $c"
		fi
	done
done
ok "fe_realms serves neither the dashboard nor its API (18 tries)"

# ---- the page in Chromium ---------------------------------------------------
# Its own profile; nothing leaves loopback: no DNS but 127.0.0.1, any other
# address through a proxy that does not exist, no background services.
spawn chromium "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
	--no-first-run --no-default-browser-check --disable-background-networking \
	--disable-component-update --disable-sync --disable-default-apps --disable-extensions \
	--disable-features=Translate,OptimizationHints,MediaRouter --metrics-recording-only \
	--password-store=basic --use-mock-keychain --proxy-server=http://127.0.0.1:9 \
	--host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
	--user-data-dir="$T_DIR/chrome" --remote-debugging-address=127.0.0.1 \
	--remote-debugging-port=0 about:blank
page() {   # page OUT [cdp.py options]: the page in a new tab, its report in OUT
	local out=$1; shift
	timeout 60 "$PY" "$CDP" "$T_DIR/chrome" "$A/dashboard" "$@" >"$T_DIR/$out" 2>"$T_DIR/$out.err" ||
		{ fail "cdp.py $out: $(tail -3 "$T_DIR/$out.err")"; return 1; }
}
# jq-less reads of a report: python3 prints what is asked.
report() { "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$T_DIR/$1" "$2"; }

if page none.json; then
	assert_eq "$(report none.json 'r["state"]')" login "no credential: the page asks for it"
	assert_eq "$(report none.json 'len(r["rows"])')" 0 "no credential: no number shown"
	assert_eq "$(report none.json 'r["console"]')" "[]" "no credential: no console error"
fi
if page wrong.json --token "not-$ADMIN_TOKEN"; then
	assert_eq "$(report wrong.json 'r["state"]')" login "a wrong credential: asked again"
	assert_match "$(report wrong.json 'r["error"]')" '^Refused: the admin credential is wrong' \
		"a wrong credential: the page says it was refused"
	assert_eq "$(report wrong.json 'len(r["rows"])')" 0 "a wrong credential: no number shown"
	assert_eq "$(report wrong.json '[c for c in r["console"] if c["kind"] != "log.network"]')" "[]" \
		"a wrong credential: nothing in the console but the refused fetches"
fi
if page ok.json --token "$ADMIN_TOKEN" --screenshot "$T_DIR/dashboard.png"; then
	assert_eq "$(report ok.json 'r["state"]')" ready "the credential: the page shows the data"
	assert_eq "$(report ok.json 'r["console"]')" "[]" "the page loads without console error or warning"
	assert_eq "$(report ok.json 'r["chart"]')" True "the spend per day is drawn as a chart"
	# Every counter of realmsctl usage --json, exactly, against the DOM.
	cmp=$("$PY" - "$T_DIR/ok.json" "$T_DIR/usage.json" <<'PY'
import json, sys
page, cli = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
rows = {}
for r in page["rows"]:
    rows.setdefault(r["kind"], {})[r["name"]] = r["fields"]
bad, n = [], 0
def same(what, dom, want):
    global n
    if dom is None:
        bad.append("%s: not shown" % what); return
    for f, v in want.items():
        n += 1
        if dom.get(f) != str(v):
            bad.append("%s.%s: page %r, realmsctl %r" % (what, f, dom.get(f), v))
same("total", rows.get("total", {}).get("all"), cli["total"])
for kind in ("token", "model", "channel"):
    want = cli["by_" + kind]
    got = rows.get(kind, {})
    if sorted(got) != sorted(want):
        bad.append("%s names: page %s, realmsctl %s" % (kind, sorted(got), sorted(want)))
    for name, v in want.items():
        same("%s %r" % (kind, name), got.get(name), v)
days = rows.get("day", {})
if len(days) != 1:
    bad.append("days: %s" % sorted(days))
else:
    same("the day", list(days.values())[0], cli["total"])
print("; ".join(bad) if bad else "equal %d" % n)
PY
)
	assert_match "$cmp" '^equal [0-9]+$' "the page's numbers equal realmsctl usage --json ($cmp)"
	assert_eq "$(report ok.json '[x["fields"]["cost_nusd"] for x in r["rows"] if x["kind"] == "total"][0]')" \
		"$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["total"]["cost_nusd"])' "$T_DIR/usage.json")" \
		"total cost, nano-USD"
	# The total cost as shown, in dollars: exact, no float.
	want_usd=$("$PY" -c 'import json,sys; n=json.load(open(sys.argv[1]))["total"]["cost_nusd"]; s=str(n).rjust(10,"0"); f=s[-9:].rstrip("0").ljust(2,"0"); print("$"+s[:-9]+"."+f)' "$T_DIR/usage.json")
	assert_match "$(report ok.json 'r["text"]')" "cost"$'\n'"\\$want_usd" "total cost shown as $want_usd"
	# Budgets: alice's daily limit and spend, bob's group default.
	assert_eq "$(report ok.json '[(b["limit"], b["spent"]) for b in r["budgets"] if b["token"] == "alice" and b["kind"] == "usd/day"]')" \
		"$("$PY" -c 'import json,sys; from decimal import Decimal as D; j=json.load(open(sys.argv[1])); print([(str(int(D(str(j["limits"]["usd/day"]))*10**9)), str(int(D(str(j["spent_usd"]["day"]))*10**9)))])' "$T_DIR/alice.json")" \
		"alice's usd/day budget: limit and spend as realmsctl token show"
	assert_eq "$(report ok.json '[b["limit"] for b in r["budgets"] if b["token"] == "alice" and b["kind"] == "rpm"]')" \
		"['100']" "alice's rpm limit"
	assert_eq "$(report ok.json '[(b["limit"], b["spent"]) for b in r["budgets"] if b["token"] == "bob"]')" \
		"$("$PY" -c 'import json,sys; from decimal import Decimal as D; j=json.load(open(sys.argv[1])); print([(str(int(D(str(j["limits"]["usd/month"]))*10**9)), str(int(D(str(j["spent_usd"]["month"]))*10**9)))])' "$T_DIR/bob.json")" \
		"bob's budget is his group's usd/month, with his month's spend"
	assert_eq "$(report ok.json 'len([x for x in r["rows"] if x["kind"] == "event"])')" 7 \
		"the last requests: seven"
	assert_match "$(report ok.json 'r["text"]')" 'upstream_error' "the partial record is shown"
	[ -n "${DASH_SCREENSHOT:-}" ] && cp "$T_DIR/dashboard.png" "$DASH_SCREENSHOT"
fi

# ---- Redis down ------------------------------------------------------------
stop_pid "$REDIS_PID"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/usage")" 503 "Redis down: the API answers 503"
assert_match "$(cat "$T_DIR/body")" '^\{"error": \{"status": 503, "message": "Redis' "Redis down: an error JSON"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/events")" 503 "Redis down: events 503"
if page down.json --token "$ADMIN_TOKEN"; then
	assert_eq "$(report down.json 'r["state"]')" error "Redis down: the page shows an error"
	assert_match "$(report down.json 'r["error"]')" 'error, no data shown: Redis' "Redis down: the error names Redis"
	assert_eq "$(report down.json 'len(r["rows"])')" 0 "Redis down: no number shown"
	assert_eq "$(report down.json '[c for c in r["console"] if c["kind"] != "log.network"]')" "[]" \
		"Redis down: nothing in the console but the failed fetches"
fi

# ---- without agent.admin_token: off ---------------------------------------------
write_config ""
chmod 600 "$T_DIR/realms.json"
kill -HUP "$AGENT_PID"
for _ in $(seq 50); do
	[ "$(code "$A/dashboard")" = 404 ] && break
	sleep 0.1
done
assert_eq "$(code "$A/dashboard")" 404 "no admin_token after a reload: the page is 404"
assert_eq "$(code "${AUTH[@]}" "$A/api/admin/usage")" 404 "no admin_token: the API is 404"
assert_eq "$(code "$A/metrics")" 200 "no admin_token: /metrics still answers"
finish
