#!/usr/bin/env bash
# Redis with ACL users: the agent and realmsctl each log in as their own
# user, under exactly the two rules docs/redis.md gives (read from it here),
# with passwords from "file:" secrets (mode 0600):
# - a token added by realmsctl is used through the whole gateway (HAProxy,
#   the mock upstream, the mirror), its usage is committed by the agent's
#   script and read back with realmsctl usage --json; a revoke reaches the
#   agent through its subscription at once;
# - neither user can run a command outside its rule (FLUSHALL, CONFIG, the
#   agent writing a token, realmsctl writing usage or running a script);
# - realmsctl with the password alone (requirepass form: the default user),
#   from REALMS_REDIS_PASSWORD_FILE;
# - a wrong password: the agent keeps running and answers 503 (token store
#   unreachable), logging the refusal with the user and not the password;
#   realmsctl exits 1 saying why; a right password again and all is well;
# - a configuration other users can read that holds an inline secret, and a
#   "file:" secret they can read: warned by --check, at start and by
#   realmsctl;
# - no password in any file of the test but its own, in the agent's or a
#   running realmsctl's /proc/PID/cmdline or environ, or in any process's
#   command line.
. "$(dirname "$0")/lib.sh"

CTL="$REALMS_BIN/realmsctl"
unset REALMS_REDIS REALMS_REDIS_USER REALMS_REDIS_PASSWORD_FILE REALMS_REDIS_PASSWORD
umask 077

rand_pw() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
AGENT_PW=$(rand_pw)
ADMIN_PW=$(rand_pw)
ROOT_PW=$(rand_pw)
WRONG_PW=$(rand_pw)
printf '%s\n' "$AGENT_PW" >"$T_DIR/agent.pw"
printf '%s\n' "$ADMIN_PW" >"$T_DIR/admin.pw"
printf '%s\n' "$ROOT_PW" >"$T_DIR/root.pw"
printf '%s\n' "$WRONG_PW" >"$T_DIR/wrong.pw"
# Every password, one per line: grep -f reads them from here, so that no
# grep command line holds one.
cat "$T_DIR"/{agent,admin,root,wrong}.pw >"$T_DIR/all.pw"
assert_eq "$(stat -c %a "$T_DIR/agent.pw")" 600 "password files are mode 0600"

# The two rules, word for word from the documentation.
AGENT_RULE=$(grep -m1 '^user realms-agent ' "$REALMS_SRC/docs/redis.md")
ADMIN_RULE=$(grep -m1 '^user realms-admin ' "$REALMS_SRC/docs/redis.md")
[ -n "$AGENT_RULE" ] && [ -n "$ADMIN_RULE" ] || { fail "no ACL rules in docs/redis.md"; finish; }
{
	echo "user default on #$(sha "$ROOT_PW") ~* &* +@all"
	echo "${AGENT_RULE/AGENT_PASSWORD_SHA256/$(sha "$AGENT_PW")}"
	echo "${ADMIN_RULE/ADMIN_PASSWORD_SHA256/$(sha "$ADMIN_PW")}"
} >"$T_DIR/users.acl"

# The test's own redis-cli logs in as the default user, the password in its
# environment only (never on a command line).
REDISCLI_AUTH=$ROOT_PW start_redis "" --aclfile "$T_DIR/users.acl" || { fail "redis"; finish; }
RPORT=$REDIS_PORT
rcli() { REDISCLI_AUTH=$ROOT_PW redis-cli --no-auth-warning -p "$RPORT" "$@"; }
# as USER PWFILE CMD...: a command as that ACL user.
as() {
	local user=$1 pw
	pw=$(cat "$2")
	shift 2
	REDISCLI_AUTH=$pw redis-cli --no-auth-warning -p "$RPORT" --user "$user" "$@"
}
assert_match "$(redis-cli -p "$RPORT" GET x 2>&1)" NOAUTH "Redis requires a login"
assert_match "$(rcli ACL GETUSER realms-agent | tr '\n' ' ')" '%R~realms:token:\*' "the agent's rule is loaded"

start_mock up
printf 'sk-up-key-1\n' >"$T_DIR/upstream.key"
# The agent's configuration: no secret inline, the password from a file.
cat >"$T_DIR/realms.json" <<JSON
{
  "redis": {"address": "127.0.0.1:$RPORT", "user": "realms-agent", "password": "file:agent.pw"},
  "agent": {"threads": 2, "mirror": "$T_DIR/mirror.sock", "spool": "$T_DIR/spool"},
  "models": [{"name": "claude-sonnet-4-5", "enabled": true}],
  "channels": [
    {"name": "up", "base_url": "http://127.0.0.1:$MOCK_PORT",
     "credentials": [{"name": "k1", "key": "file:upstream.key"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}}
  ]
}
JSON
# realmsctl's: its own user and password file.
cat >"$T_DIR/ctl.json" <<JSON
{"redis": {"address": "127.0.0.1:$RPORT", "user": "realms-admin", "password": "file:admin.pw"}}
JSON
assert_eq "$(stat -c %a "$T_DIR/realms.json")" 600 "configuration is mode 0600"

out=$("$REALMS_AGENT" -c "$T_DIR/realms.json" --check 2>&1)
assert_eq "$?" 0 "--check accepts the configuration"
assert_no_match "$out" warning "--check: no warning for a private file"

GW_MIRROR="$T_DIR/mirror.sock" start_gateway "$T_DIR/realms.json" || { fail "gateway"; finish; }
URL="http://127.0.0.1:$GW_PORT/v1/messages"
DAY=$(date -u +%Y%m%d)
ERRS="$T_DIR/ctl-stderr.log"    # every realmsctl stderr, for the leak check
: >"$ERRS"

# ctl ARGS...: realmsctl as the admin user; sets OUT, ERR, RC.
ctl() {
	OUT=$("$CTL" -c "$T_DIR/ctl.json" "$@" 2>"$T_DIR/err")
	RC=$?
	ERR=$(cat "$T_DIR/err")
	cat "$T_DIR/err" >>"$ERRS"
}
# ask TOKEN: one request through the gateway; prints the status code, keeps
# the body in $T_DIR/body.
ask() {
	curl -sS -o "$T_DIR/body" -w '%{http_code}' --max-time 20 -H "x-api-key: $1" \
		-H 'content-type: application/json' -H 'x-mock-usage: in=11,out=22' \
		--data-binary '{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[]}' "$URL"
}
# wait_agent_logged_in: the agent (re)started: until HAProxy reaches it and
# it answers from Redis (an unknown token gets 401, not 503), at most 10 s.
UNKNOWN="sk-realms-$(printf '0%.0s' $(seq 43))"
wait_agent_logged_in() {
	for _ in $(seq 100); do
		[ "$(ask "$UNKNOWN")" = 401 ] && return 0
		sleep 0.1
	done
	return 1
}

# ---- tokens and usage through the gateway, as the ACL users --------------
ctl token add --name alice
assert_eq "$RC" 0 "realmsctl (ACL user realms-admin) adds a token"
TOK=$OUT
ctl token add --name bob
BOB=$OUT
wait_agent_logged_in || fail "the agent answers from Redis"
assert_match "$(grep -c 'AUTH as user' "$T_DIR/agent.log")" '^0$' "the agent's AUTH was never refused"
assert_match "$(cat "$T_DIR/agent.log")" "redis tokens: connected to 127.0.0.1:$RPORT as user realms-agent" \
	"the agent logged in as realms-agent"
assert_match "$(cat "$T_DIR/agent.log")" "redis token-events: connected to 127.0.0.1:$RPORT as user realms-agent" \
	"its subscription logged in too"
for i in 1 2 3; do
	assert_eq "$(ask "$TOK")" 200 "request $i through the gateway with alice's token"
done
for _ in $(seq 100); do
	[ "$(rcli HGET "realms:usage:token:alice:$DAY" requests)" = 3 ] && break
	sleep 0.1
done
ctl usage --token alice --json
assert_eq "$RC" 0 "realmsctl usage --json"
assert_match "$OUT" '"total": \{"requests": 3, "errors": 0, "partial": 0, "input": 33, "output": 66,' \
	"usage recorded by the agent's script, read back by realmsctl"
assert_match "$OUT" '"by_channel": \{[^}]*"up": \{"requests": 3' "usage by channel"
assert_eq "$(rcli XLEN realms:usage:events)" 3 "one event per request"
[ -s "$T_DIR/spool/usage.spool" ] && fail "records went to the spool" || ok "no record spooled"

# An agent rule written before +hmget was added: the script reads a hash's
# counters with HGETALL instead, and records the same.
rcli ACL SETUSER realms-agent -hmget >/dev/null
assert_match "$(as realms-agent "$T_DIR/agent.pw" HMGET "realms:usage:token:alice:$DAY" requests)" \
	NOPERM "the older rule: no HMGET"
for i in 1 2; do
	assert_eq "$(ask "$BOB")" 200 "request $i with bob's token, under the older rule"
done
assert_eq "$(ask "$TOK")" 200 "and alice's fourth"
for _ in $(seq 100); do
	[ "$(rcli HGET "realms:usage:token:alice:$DAY" requests)" = 4 ] &&
		[ "$(rcli HGET "realms:usage:token:bob:$DAY" requests)" = 2 ] && break
	sleep 0.1
done
ctl usage --json
assert_match "$OUT" '"total": \{"requests": 6, "errors": 0, "partial": 0, "input": 66, "output": 132,' \
	"the older rule: every request recorded, added to what was there"
[ -s "$T_DIR/spool/usage.spool" ] && fail "records went to the spool" || ok "no record spooled"
rcli ACL SETUSER realms-agent +hmget >/dev/null

ctl token list --json
assert_match "$OUT" '"name": "alice", "group": "default", "status": "active"' "realmsctl token list"
ctl token revoke alice
assert_eq "$RC" 0 "realmsctl token revoke"
assert_match "$OUT" "1 subscriber notified" "the agent's subscription (ACL channel) got it"
assert_eq "$(ask "$TOK")" 401 "revoked token refused at once, not after the cache TTL"

# ---- each user is held to its rule ----------------------------------------
assert_match "$(as realms-agent "$T_DIR/agent.pw" FLUSHALL)" NOPERM "agent: FLUSHALL refused"
assert_match "$(as realms-agent "$T_DIR/agent.pw" CONFIG GET requirepass)" NOPERM "agent: CONFIG refused"
assert_match "$(as realms-agent "$T_DIR/agent.pw" KEYS '*')" NOPERM "agent: KEYS refused"
assert_match "$(as realms-agent "$T_DIR/agent.pw" HSET "realms:token:$(sha "$TOK")" status active)" \
	NOPERM "agent: cannot revive a token (read-only token keys)"
assert_match "$(as realms-agent "$T_DIR/agent.pw" HGETALL realms:tokens)" NOPERM \
	"agent: cannot read the name index"
assert_match "$(as realms-agent "$T_DIR/agent.pw" GET other:key)" NOPERM "agent: no key outside realms:"
assert_match "$(as realms-admin "$T_DIR/admin.pw" FLUSHALL)" NOPERM "realmsctl's user: FLUSHALL refused"
assert_match "$(as realms-admin "$T_DIR/admin.pw" CONFIG SET requirepass x)" NOPERM "realmsctl's user: CONFIG refused"
assert_match "$(as realms-admin "$T_DIR/admin.pw" HINCRBY "realms:usage:token:alice:$DAY" requests -3)" \
	NOPERM "realmsctl's user: cannot forge usage (read-only usage keys)"
assert_match "$(as realms-admin "$T_DIR/admin.pw" EVAL 'return 1' 0)" NOPERM "realmsctl's user: no scripts"
assert_eq "$(rcli HGET "realms:token:$(sha "$TOK")" status)" revoked "alice is still revoked"

# ---- requirepass form: the password alone, from REALMS_REDIS_PASSWORD_FILE --
OUT=$(REALMS_REDIS="127.0.0.1:$RPORT" REALMS_REDIS_PASSWORD_FILE="$T_DIR/root.pw" \
	"$CTL" token list 2>>"$ERRS")
assert_eq "$?" 0 "realmsctl with a password and no user (AUTH password: the default user)"
assert_match "$OUT" $'\n'"bob +default +active " "the default user sees bob"

# ---- wrong or missing passwords ---------------------------------------------
OUT=$(REALMS_REDIS_PASSWORD_FILE="$T_DIR/wrong.pw" "$CTL" -c "$T_DIR/ctl.json" token list 2>"$T_DIR/err")
RC=$?
ERR=$(cat "$T_DIR/err"); cat "$T_DIR/err" >>"$ERRS"
assert_eq "$RC" 1 "realmsctl with a wrong password exits 1"
assert_match "$ERR" "refused AUTH as user realms-admin: WRONGPASS" "and says so, naming the user"
assert_eq "$OUT" "" "and prints nothing on stdout"
OUT=$(REALMS_REDIS="127.0.0.1:$RPORT" "$CTL" token list 2>"$T_DIR/err")
RC=$?
ERR=$(cat "$T_DIR/err"); cat "$T_DIR/err" >>"$ERRS"
assert_eq "$RC" 1 "realmsctl without a password exits 1"
assert_match "$ERR" "NOAUTH.*REALMS_REDIS_PASSWORD_FILE" "and says where the password goes"

# The agent with a wrong password: it runs on, refusing unknown tokens with
# 503 rather than answering without Redis.
stop_pid "$AGENT_PID"
sed 's/file:agent.pw/file:wrong.pw/' "$T_DIR/realms.json" >"$T_DIR/wrong.json"
spawn agent-wrongpw "$REALMS_AGENT" -f -c "$T_DIR/wrong.json" -l "unix:$T_DIR/agent.sock"
AGENT_PID=$SPAWNED
code=""
for _ in $(seq 100); do
	code=$(ask "$BOB")
	[ "$code" = 503 ] && grep -q 'token store unreachable' "$T_DIR/body" && break
	sleep 0.1
done
assert_eq "$code" 503 "wrong password: a client gets 503"
assert_match "$(cat "$T_DIR/body")" 'token store unreachable' "503: token store unreachable"
sleep 1
assert_eq "$(kill -0 "$AGENT_PID" 2>/dev/null && echo alive)" alive "the agent did not crash"
refused=$(grep -c "AUTH as user realms-agent refused: WRONGPASS" "$T_DIR/agent-wrongpw.log")
assert_match "$refused" '^[1-9][0-9]*$' "the refusal is logged, naming the user ($refused lines)"
assert_eq "$(grep -c 'as user realms-agent$' "$T_DIR/agent-wrongpw.log")" 0 "never logged in"
assert_eq "$(ask "$BOB")" 503 "still 503 a second later (backing off, retrying)"
stop_pid "$AGENT_PID"
spawn agent-again "$REALMS_AGENT" -f -c "$T_DIR/realms.json" -l "unix:$T_DIR/agent.sock"
AGENT_PID=$SPAWNED
wait_agent_logged_in || fail "the agent is back with the right password"
assert_eq "$(ask "$BOB")" 200 "right password again: bob gets 200"

# ---- secrets other users can read: warned -----------------------------------
# An inline key in a file others can read, and a Redis password file they
# can read.
printf '%s\n' "$AGENT_PW" >"$T_DIR/open.pw"
chmod 644 "$T_DIR/open.pw"
sed -e 's|"file:upstream.key"|"sk-inline-key-1"|' -e 's|file:agent.pw|file:open.pw|' \
	-e 's|"agent": {[^}]*}|"agent": {"threads": 1}|' "$T_DIR/realms.json" >"$T_DIR/open.json"
chmod 644 "$T_DIR/open.json"
out=$("$REALMS_AGENT" -c "$T_DIR/open.json" --check 2>&1)
assert_eq "$?" 0 "--check: a warning, not an error"
assert_match "$out" "open.json: warning: readable by other users \(mode 0644\) and holds 1 secret written inline: chmod o-r" \
	"--check warns about the file, by name"
assert_match "$out" "warning: redis.password: file $T_DIR/open.pw is readable by other users \(mode 0644\)" \
	"--check warns about the password file, by name"
"$CTL" -c "$T_DIR/open.json" render-haproxy -o /dev/null 2>"$T_DIR/err"
assert_eq "$?" 0 "realmsctl: a warning, not an error"
assert_eq "$(stat -c %F /dev/null)" "character special file" "render-haproxy -o /dev/null leaves the device in place"
assert_match "$(cat "$T_DIR/err")" "open.json: warning: readable by other users" "realmsctl prints it with the file name"
spawn agent-open "$REALMS_AGENT" -f -c "$T_DIR/open.json" -l "unix:$T_DIR/agent-open.sock"
OPEN_PID=$SPAWNED
wait_file "$T_DIR/agent-open.sock" 10
assert_match "$(cat "$T_DIR/agent-open.log")" "warn.*open.json: warning: readable by other users \(mode 0644\)" \
	"the agent logs it at start"
assert_match "$(cat "$T_DIR/agent-open.log")" "warn.*file $T_DIR/open.pw is readable by other users" \
	"and the password file's too"
stop_pid "$OPEN_PID"
rm -f "$T_DIR/open.pw"

# ---- the passwords appear nowhere ------------------------------------------
# A realmsctl caught while it waits for its AUTH answer (Redis paused).
rcli CLIENT PAUSE 1500 ALL >/dev/null
"$CTL" -c "$T_DIR/ctl.json" token list >/dev/null 2>>"$ERRS" &
ctl_pid=$!
sleep 0.3
if kill -0 "$ctl_pid" 2>/dev/null; then
	ok "realmsctl is running, waiting for Redis"
	grep -qFf "$T_DIR/all.pw" "/proc/$ctl_pid/cmdline" && fail "a password in realmsctl's command line" \
		|| ok "no password in realmsctl's /proc/PID/cmdline"
	grep -qFf "$T_DIR/all.pw" "/proc/$ctl_pid/environ" && fail "a password in realmsctl's environment" \
		|| ok "no password in realmsctl's environment"
	assert_no_match "$(ps -o args= -p "$ctl_pid")" "$ADMIN_PW" "no password in ps"
else
	fail "realmsctl did not wait for Redis"
fi
wait "$ctl_pid"
assert_eq "$?" 0 "realmsctl went on once Redis answered"
grep -qFf "$T_DIR/all.pw" "/proc/$AGENT_PID/cmdline" && fail "a password in the agent's command line" \
	|| ok "no password in the agent's /proc/PID/cmdline"
grep -qFf "$T_DIR/all.pw" "/proc/$AGENT_PID/environ" && fail "a password in the agent's environment" \
	|| ok "no password in the agent's environment"
found=$(grep -lFf "$T_DIR/all.pw" /proc/[0-9]*/cmdline 2>/dev/null)
assert_eq "$found" "" "no password in any process's command line"
# Every file of the test but the password files themselves: logs, realmsctl's
# stderr, the spool, the mock's recordings, the configurations, the ACL file.
found=$(grep -rlFf "$T_DIR/all.pw" "$T_DIR" --exclude='*.pw' 2>/dev/null)
assert_eq "$found" "" "no password in any log or file"
assert_match "$(ls "$T_DIR"/*.log | wc -l)" '^([5-9]|[1-9][0-9])$' "the logs were looked at"
finish
