#!/usr/bin/env bash
# realmsctl apply against the gateway as an operator runs it: HAProxy in
# master-worker mode (-W -S), the agent with a pid file and an admin
# listener. A slow stream in flight while a new channel and model are
# applied completes intact in the old worker and is billed once; the new
# model is served at once. Each failure (an invalid file, a haproxy -c
# failure, an agent that refuses the file) leaves channels.cfg, HAProxy's
# workers and the agent's configuration as they were.
. "$(dirname "$0")/lib.sh"

start_redis "" || { fail "redis"; finish; }
start_mock up
ADMIN=$(free_port)
CFG="$T_DIR/realms.json"
HP="$T_DIR/hp"
MASTER="$T_DIR/master.sock"

# write_config EXTRA_MODELS EXTRA_CHANNELS: realms.json with the channel
# "up" serving sonnet, plus what the arguments add (JSON fragments, each
# starting with a comma).
write_config() {
	cat >"$CFG.tmp" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 2, "mirror": "$T_DIR/mirror.sock", "spool": "$T_DIR/spool",
             "admin": "127.0.0.1:$ADMIN" },
  "models": [ {"name": "claude-sonnet-4-5", "enabled": true} $1 ],
  "channels": [
    {"name": "up", "base_url": "http://127.0.0.1:$MOCK_PORT",
     "credentials": [{"name": "k1", "key": "sk-up-1"}],
     "models": ["claude-sonnet-4-5"]} $2
  ]
}
JSON
	chmod 600 "$CFG.tmp"
	mv "$CFG.tmp" "$CFG"
}
write_config "" ""

GW_MIRROR="$T_DIR/mirror.sock" GW_AGENT_ARGS="-p $T_DIR/agent.pid" \
	GW_HAPROXY_ARGS="-W -S $MASTER" start_gateway "$CFG" || { fail "gateway"; finish; }
wait_file "$T_DIR/agent.pid" 10
wait_file "$MASTER" 10
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"
TOK=$("$REALMS_BIN/realmsctl" token add --name steady 2>/dev/null)
SLOW=$("$REALMS_BIN/realmsctl" token add --name inflight 2>/dev/null)
URL="http://127.0.0.1:$GW_PORT/v1/messages"
DAY=$(date -u +%Y%m%d)

apply() {
	"$REALMS_BIN/realmsctl" -c "$CFG" apply --channels "$HP/channels.cfg" \
		--setup-page "$HP/setup.html" -f "$REALMS_SRC/haproxy/realms.cfg" \
		-f "$HP/channels.cfg" -f "$HP/stats.cfg" --haproxy-master "$MASTER" \
		--agent-pidfile "$T_DIR/agent.pid" "$@"
}
ask() {   # ask MODEL: the status of one small request
	curl -sS -o /dev/null -w '%{http_code}' --max-time 10 -H "x-api-key: $TOK" \
		-H 'content-type: application/json' \
		--data-binary "{\"model\":\"$1\",\"max_tokens\":5,\"messages\":[]}" "$URL"
}
workers() { pgrep -P "$HAPROXY_PID" | sort | tr '\n' ' '; }
generation() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" |
	awk '$1 == "realms_config_generation" { print $2 }'; }
running_sha() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" |
	sed -n 's/^realms_config_info{sha256="\([0-9a-f]*\)"} 1$/\1/p'; }
tok_field() { v=$(rcli HGET "realms:usage:token:$1:$DAY" "$2"); echo "${v:-0}"; }

assert_eq "$(ask claude-sonnet-4-5)" 200 "before: sonnet is served"
assert_match "$(ask claude-haiku-4-5)" '^4' "before: haiku is not"
assert_eq "$(running_sha)" "$(sha256sum <"$CFG" | cut -d' ' -f1)" \
	"the agent's /metrics names the SHA-256 of its file"

# --- 1. apply under load: a stream in flight ----------------------------------
# 20 deltas 300 ms apart: about 6 s, in the first worker.
curl -sS -N -o "$T_DIR/slow.out" --max-time 40 -H "x-api-key: $SLOW" \
	-H 'content-type: application/json' -H 'x-mock-deltas: 20' -H 'x-mock-delay-ms: 300' \
	-H 'x-mock-usage: in=123,out=456' \
	--data-binary '{"model":"claude-sonnet-4-5","max_tokens":1000,"stream":true,"messages":[]}' \
	"$URL" 2>"$T_DIR/slow.err" &
slow=$!
for _ in $(seq 100); do grep -q content_block_delta "$T_DIR/slow.out" 2>/dev/null && break; sleep 0.1; done
assert_match "$(cat "$T_DIR/slow.out")" content_block_delta "the stream is under way"
w0=$(workers)
cp "$HP/channels.cfg" "$T_DIR/channels.before"

write_config ', {"name": "claude-haiku-4-5", "enabled": true}' \
	', {"name": "second", "base_url": "http://127.0.0.1:'"$MOCK_PORT"'",
	    "credentials": [{"name": "k1", "key": "sk-up-2"}], "models": ["claude-haiku-4-5"]}'
apply --timeout 20 >"$T_DIR/apply1.out" 2>"$T_DIR/apply1.err"
rc=$?
assert_eq "$rc" 0 "apply: exit 0 ($(tr '\n' ' ' <"$T_DIR/apply1.err"))"
out=$(cat "$T_DIR/apply1.out")
assert_match "$out" 'haproxy -c: the configuration with the new channel part is valid' "apply: says haproxy -c passed"
assert_match "$out" 'HAProxy reloaded: new worker [0-9]+' "apply: names HAProxy's new worker"
assert_match "$out" "agent reloaded: generation [0-9]+ runs sha256 $(sha256sum <"$CFG" | cut -d' ' -f1)" \
	"apply: the agent runs the file checked"
assert_match "$(cat "$HP/channels.cfg")" 'backend up_second' "channels.cfg: the new channel's backend"
assert_eq "$(cmp -s "$HP/channels.cfg.bak" "$T_DIR/channels.before" && echo same)" same \
	"channels.cfg.bak: the previous channel part"
assert_eq "$(find "$HP" -name "*.new" | wc -l)" 0 "no .new file left"
assert_eq "$(ask claude-haiku-4-5)" 200 "after: the new model is served"
assert_match "$(curl -s --max-time 5 "http://127.0.0.1:$GW_PORT/")" claude-haiku-4-5 \
	"after: the setup page offers it"
assert_eq "$(ask claude-sonnet-4-5)" 200 "after: sonnet still is"
assert_match "$(workers)" "$(echo "$w0" | tr -d ' ')" "the old worker still runs its stream"

wait "$slow"
assert_eq "$?" 0 "the stream in flight completed ($(cat "$T_DIR/slow.err"))"
assert_eq "$(grep -c '^event: content_block_delta' "$T_DIR/slow.out")" 20 "all 20 deltas arrived"
assert_match "$(cat "$T_DIR/slow.out")" 'event: message_stop' "the stream ended cleanly"
for _ in $(seq 100); do [ "$(tok_field inflight requests)" -ge 1 ] && break; sleep 0.1; done
sleep 1   # a second record would come from the same tap, at once
assert_eq "$(tok_field inflight requests)" 1 "the stream is billed once"
assert_eq "$(tok_field inflight output)" 456 "with its usage"
assert_eq "$(rcli XRANGE realms:usage:events - + | grep -A1 -x token | grep -x -c inflight)" 1 \
	"one usage event for it"
t_old=$SECONDS
for _ in $(seq 300); do [ "$(workers | wc -w)" -eq 1 ] && break; sleep 0.1; done
log "old worker gone after $((SECONDS - t_old)) s"
assert_eq "$(workers | wc -w)" 1 "the old worker left once its stream ended"

# --- 2. nothing for HAProxy to change -----------------------------------------
w1=$(workers)
gen1=$(generation)
apply --timeout 20 >"$T_DIR/apply2.out" 2>&1
assert_eq "$?" 0 "apply, same file: exit 0"
assert_match "$(cat "$T_DIR/apply2.out")" 'unchanged, not reloaded' "apply, same file: HAProxy left alone"
assert_eq "$(workers)" "$w1" "apply, same file: same HAProxy worker"
assert_eq "$(generation)" $((gen1 + 1)) "apply, same file: the agent reloaded it"

# --- 3. failures leave everything as it was -----------------------------------
# snapshot; unchanged WHAT: channels.cfg, the workers, the agent's
# generation, and no .new file.
snapshot() { s_chan=$(sha256sum <"$HP/channels.cfg"); s_page=$(sha256sum <"$HP/setup.html");
	s_workers=$(workers); s_gen=$(generation); }
unchanged() {
	assert_eq "$(sha256sum <"$HP/channels.cfg")" "$s_chan" "$1: channels.cfg unchanged"
	assert_eq "$(sha256sum <"$HP/setup.html")" "$s_page" "$1: setup.html unchanged"
	assert_eq "$(workers)" "$s_workers" "$1: same HAProxy worker"
	assert_eq "$(generation)" "$s_gen" "$1: the agent not reloaded"
	assert_eq "$(find "$HP" -name "*.new" | wc -l)" 0 "$1: no .new file left"
	assert_eq "$(ask claude-haiku-4-5)" 200 "$1: the gateway still serves"
}
good_cfg=$(cat "$CFG")

# 3a. realms.json invalid: a binding to a model that is not defined
snapshot
write_config ', {"name": "claude-haiku-4-5", "enabled": true}' \
	', {"name": "second", "base_url": "http://127.0.0.1:'"$MOCK_PORT"'",
	    "credentials": [{"name": "k1", "key": "sk-up-2"}], "models": ["claude-opus-4-5"]}'
apply >"$T_DIR/apply3.out" 2>"$T_DIR/apply3.err"
assert_eq "$?" 1 "invalid realms.json: exit 1"
assert_match "$(cat "$T_DIR/apply3.err")" 'claude-opus-4-5.*not defined' "invalid realms.json: says why"
unchanged "invalid realms.json"

# 3b. haproxy -c fails: an operator's own file with a syntax error
snapshot
write_config ', {"name": "claude-haiku-4-5", "enabled": true}, {"name": "claude-opus-4-5", "enabled": true}' \
	', {"name": "second", "base_url": "http://127.0.0.1:'"$MOCK_PORT"'",
	    "credentials": [{"name": "k1", "key": "sk-up-2"}], "models": ["claude-haiku-4-5", "claude-opus-4-5"]}'
printf 'frontend broken\n    no-such-keyword here\n' >"$HP/own.cfg"
apply -f "$HP/own.cfg" >"$T_DIR/apply4.out" 2>"$T_DIR/apply4.err"
assert_eq "$?" 1 "haproxy -c failure: exit 1"
assert_match "$(cat "$T_DIR/apply4.err")" 'haproxy -c refused.*no-such-keyword' "haproxy -c failure: HAProxy's words"
unchanged "haproxy -c failure"

# 3c. the agent refuses the file it gets (a secret only realmsctl can see):
# HAProxy had reloaded, and is reloaded back on the previous files.
snapshot
write_config ', {"name": "claude-haiku-4-5", "enabled": true}, {"name": "claude-opus-4-5", "enabled": true}' \
	', {"name": "second", "base_url": "http://127.0.0.1:'"$MOCK_PORT"'",
	    "credentials": [{"name": "k1", "key": "sk-up-2"}], "models": ["claude-haiku-4-5"]},
	  {"name": "third", "base_url": "http://127.0.0.1:'"$MOCK_PORT"'",
	    "credentials": [{"name": "k1", "key": "env:APPLY_TEST_KEY"}], "models": ["claude-opus-4-5"]}'
APPLY_TEST_KEY=sk-up-3 apply --timeout 4 >"$T_DIR/apply5.out" 2>"$T_DIR/apply5.err"
assert_eq "$?" 1 "agent refuses: exit 1"
assert_match "$(cat "$T_DIR/apply5.err")" 'did not take the new configuration' "agent refuses: says so"
assert_match "$(cat "$T_DIR/apply5.out")" 'rolled back: HAProxy reloaded on the previous files' \
	"agent refuses: HAProxy rolled back"
assert_eq "$(sha256sum <"$HP/channels.cfg")" "$s_chan" "agent refuses: channels.cfg is the previous one"
assert_eq "$(generation)" "$s_gen" "agent refuses: the agent keeps its configuration"
assert_eq "$(ask claude-opus-4-5 | cut -c1)" 4 "agent refuses: the refused model is not served"
assert_eq "$(ask claude-haiku-4-5)" 200 "agent refuses: the gateway still serves"

# 3d. HAProxy refuses the reload although the check passed: the check is a
# stand-in that always passes (--haproxy true) and a file HAProxy loads is
# broken. On 2.6 the master says nothing but counts a failed reload; the
# previous files go back in place, the agent is not reloaded.
snapshot
write_config ', {"name": "claude-haiku-4-5", "enabled": true}' \
	', {"name": "second", "base_url": "http://127.0.0.1:'"$MOCK_PORT"'",
	    "credentials": [{"name": "k1", "key": "sk-up-2"}], "models": ["claude-haiku-4-5"]},
	  {"name": "fifth", "base_url": "http://127.0.0.1:'"$MOCK_PORT"'",
	    "credentials": [{"name": "k1", "key": "sk-up-5"}], "models": ["claude-haiku-4-5"]}'
cp "$HP/stats.cfg" "$T_DIR/stats.good"
printf 'global\n    no-such-keyword\n' >>"$HP/stats.cfg"
apply --haproxy true --timeout 20 >"$T_DIR/apply8.out" 2>"$T_DIR/apply8.err"
assert_eq "$?" 1 "reload refused: exit 1"
assert_match "$(cat "$T_DIR/apply8.err")" 'HAProxy refused to reload' "reload refused: says so"
cp "$T_DIR/stats.good" "$HP/stats.cfg"
unchanged "reload refused"

# --- 4. through systemctl -----------------------------------------------------
# No systemd here: a stand-in systemctl on PATH does what Debian's units do
# on reload (SIGUSR2 to HAProxy's master, SIGHUP to the agent), and logs
# what it was asked. realmsctl runs without the variables realms.cfg reads,
# as from an operator's shell: haproxy -c takes HAProxy's own environment
# (the unit's MainPID).
mkdir -p "$T_DIR/bin"
cat >"$T_DIR/bin/systemctl" <<SH
#!/bin/sh
echo "\$*" >>"$T_DIR/systemctl.log"
case "\$*" in
	"is-active --quiet haproxy"|"is-active --quiet realms-agent") exit 0 ;;
	"show --property MainPID --value haproxy") echo $HAPROXY_PID ;;
	"reload haproxy") kill -USR2 $HAPROXY_PID ;;
	"reload realms-agent") kill -HUP \$(cat "$T_DIR/agent.pid") ;;
	*) echo "unit \$* not found" >&2; exit 5 ;;
esac
SH
chmod +x "$T_DIR/bin/systemctl"
write_config ', {"name": "claude-haiku-4-5", "enabled": true}' \
	', {"name": "second", "base_url": "http://127.0.0.1:'"$MOCK_PORT"'",
	    "credentials": [{"name": "k1", "key": "sk-up-2"}], "models": ["claude-haiku-4-5"]},
	  {"name": "fourth", "base_url": "http://127.0.0.1:'"$MOCK_PORT"'",
	    "credentials": [{"name": "k1", "key": "sk-up-4"}], "models": ["claude-haiku-4-5"]}'
w2=$(workers)
PATH="$T_DIR/bin:$PATH" env -u REALMS_LISTEN -u REALMS_RELAY -u REALMS_HAPROXY_DIR \
	"$REALMS_BIN/realmsctl" -c "$CFG" apply --channels "$HP/channels.cfg" \
	--setup-page "$HP/setup.html" -f "$REALMS_SRC/haproxy/realms.cfg" -f "$HP/channels.cfg" \
	-f "$HP/stats.cfg" --haproxy-unit haproxy --agent-unit realms-agent --timeout 20 \
	>"$T_DIR/apply6.out" 2>"$T_DIR/apply6.err"
assert_eq "$?" 0 "systemctl: exit 0 ($(tr '\n' ' ' <"$T_DIR/apply6.err"))"
assert_eq "$(tr '\n' ',' <"$T_DIR/systemctl.log")" \
	"is-active --quiet haproxy,is-active --quiet realms-agent,show --property MainPID --value haproxy,reload haproxy,reload realms-agent," \
	"systemctl: checked both units, then reloaded HAProxy, then the agent"
assert_match "$(cat "$T_DIR/apply6.out")" "agent reloaded: generation [0-9]+ runs sha256 $(sha256sum <"$CFG" | cut -d' ' -f1)" \
	"systemctl: the agent runs the file checked"
for _ in $(seq 100); do [ "$(workers)" != "$w2" ] && break; sleep 0.1; done
assert_match "$(cat "$HP/channels.cfg")" 'backend up_fourth' "systemctl: channels.cfg has the new channel"
assert_eq "$(ask claude-haiku-4-5)" 200 "systemctl: the gateway serves"
: >"$T_DIR/systemctl.log"
PATH="$T_DIR/bin:$PATH" "$REALMS_BIN/realmsctl" -c "$CFG" apply --channels "$HP/channels.cfg" \
	-f "$REALMS_SRC/haproxy/realms.cfg" -f "$HP/channels.cfg" -f "$HP/stats.cfg" \
	--haproxy-unit haproxy --agent-unit no-such-unit >/dev/null 2>"$T_DIR/apply7.err"
assert_eq "$?" 1 "systemctl: an inactive unit: exit 1"
assert_match "$(cat "$T_DIR/apply7.err")" 'no-such-unit is not active' "systemctl: an inactive unit: says so"
assert_eq "$(grep -c reload "$T_DIR/systemctl.log")" 0 "systemctl: an inactive unit: nothing reloaded"

# --- 5. usage errors -----------------------------------------------------------
echo "$good_cfg" >"$CFG"
"$REALMS_BIN/realmsctl" -c "$CFG" apply --channels "$HP/channels.cfg" >/dev/null 2>&1
assert_eq "$?" 2 "no -f file: usage error"
"$REALMS_BIN/realmsctl" -c "$CFG" apply --help >"$T_DIR/help.out"
assert_match "$(cat "$T_DIR/help.out")" 'haproxy-master SOCKET' "apply --help"

finish
