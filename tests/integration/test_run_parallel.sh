#!/usr/bin/env bash
# realms-test: no-agent
# Several `make run` at once (scripts/run.sh, as a user starts it, without
# ANTHROPIC_API_KEY so the mock upstream answers):
# - two runs on two ports serve requests side by side, each from its own
#   runtime directory under REALMS_RUN_DIR;
# - a third run on a port already served exits 1 saying so, and the first
#   keeps serving with its files untouched;
# - a run that fails to start keeps its directory for inspection, until
#   the next run on that port clears it;
# - SIGTERM stops a run cleanly and removes its directory.
. "$(dirname "$0")/lib.sh"

RUN_DIR=$T_DIR/run
export REALMS_RUN_DIR=$RUN_DIR REALMS_BUILD_DIR=$REALMS_BIN
unset ANTHROPIC_API_KEY REALMS_CONFIG REALMS_REDIS REALMS_REDIS_USER \
	REALMS_REDIS_PASSWORD REALMS_REDIS_PASSWORD_FILE

# start_run NAME PORT: scripts/run.sh in the background. Sets RUN_PID.
start_run() {
	spawn "run-$1" env REALMS_PORT="$2" bash "$REALMS_SRC/scripts/run.sh"
	RUN_PID=$SPAWNED
}
# token_of NAME: the token the run printed (bounded wait: 20 s).
token_of() {
	local t
	for _ in $(seq 200); do
		t=$(sed -n 's/^ANTHROPIC_AUTH_TOKEN=//p' "$T_DIR/run-$1.log")
		[ -n "$t" ] && { echo "$t"; return 0; }
		sleep 0.1
	done
	return 1
}
ask() {   # ask PORT TOKEN: the status of one request through that gateway
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "x-api-key: $2" \
		-H 'content-type: application/json' \
		--data-binary '{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}' \
		"http://127.0.0.1:$1/v1/messages"
}

P1=$(free_port)
P2=$(free_port)
while [ "$P2" = "$P1" ]; do P2=$(free_port); done
start_run a "$P1"; PID_A=$RUN_PID
start_run b "$P2"; PID_B=$RUN_PID
TOK_A=$(token_of a) || { fail "run a did not start: $(tail -5 "$T_DIR/run-a.log")"; finish; }
TOK_B=$(token_of b) || { fail "run b did not start: $(tail -5 "$T_DIR/run-b.log")"; finish; }
assert_eq "$(ask "$P1" "$TOK_A")" 200 "run a answers on its port"
assert_eq "$(ask "$P2" "$TOK_B")" 200 "run b answers on its port, at the same time"
assert_eq "$(ask "$P2" "$TOK_A")" 401 "each run has its own Redis: a's token is unknown to b"
for p in "$P1" "$P2"; do
	if [ -S "$RUN_DIR/$p/agent.sock" ] && [ -S "$RUN_DIR/$p/redis.sock" ]; then
		ok "the run dir of port $p holds its sockets"
	else
		fail "no sockets in $RUN_DIR/$p"
	fi
	assert_eq "$(stat -c %a "$RUN_DIR/$p")" 700 "run dir $p is this user's only"
done

# A third on a's port: refused at once, a untouched.
before=$(cd "$RUN_DIR/$P1" && ls -l --time-style=+%s.%N agent.sock redis.sock hp)
out=$(REALMS_PORT=$P1 timeout 20 bash "$REALMS_SRC/scripts/run.sh" 2>&1)
assert_eq "$?" 1 "a run on a port in use exits 1"
assert_match "$out" "a gateway already runs on port $P1" "and says why"
assert_eq "$(cd "$RUN_DIR/$P1" && ls -l --time-style=+%s.%N agent.sock redis.sock hp)" "$before" \
	"the first run's files are untouched"
assert_eq "$(ask "$P1" "$TOK_A")" 200 "the first run still answers"

# A failed start keeps its directory until the next run on that port.
P3=$(free_port)
echo '{"models": [' >"$T_DIR/bad.json"
out=$(REALMS_PORT=$P3 REALMS_CONFIG=$T_DIR/bad.json timeout 30 bash "$REALMS_SRC/scripts/run.sh" 2>&1)
assert_eq "$?" 1 "a run with a bad configuration fails"
if [ -s "$RUN_DIR/$P3/check.log" ]; then ok "its directory is kept for inspection"; else fail "no $RUN_DIR/$P3/check.log"; fi
start_run c "$P3"; PID_C=$RUN_PID
TOK_C=$(token_of c) || fail "run c did not start: $(tail -5 "$T_DIR/run-c.log")"
assert_eq "$(ask "$P3" "$TOK_C")" 200 "the next run on that port starts"
if [ ! -e "$RUN_DIR/$P3/check.log" ] || ! grep -q 'bad.json' "$RUN_DIR/$P3/check.log"; then
	ok "and cleared what the failed one left"
else
	fail "the failed run's check.log is still there"
fi

# Clean stops remove each directory; the others keep running meanwhile.
stop_pid "$PID_A"
assert_eq "$?" 0 "run a stops cleanly on SIGTERM"
if [ ! -e "$RUN_DIR/$P1" ]; then ok "run a's directory is removed"; else fail "left $(ls -A "$RUN_DIR/$P1")"; fi
assert_eq "$(ask "$P2" "$TOK_B")" 200 "run b still answers after a stopped"
stop_pid "$PID_B"
assert_eq "$?" 0 "run b stops cleanly"
stop_pid "$PID_C"
assert_eq "$?" 0 "run c stops cleanly"
for p in "$P2" "$P3"; do
	if [ ! -e "$RUN_DIR/$p" ]; then ok "run dir $p removed"; else fail "left $RUN_DIR/$p: $(ls -A "$RUN_DIR/$p")"; fi
done
finish
