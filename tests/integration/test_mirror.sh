#!/usr/bin/env bash
# The mirror listener alone, spoken to over a raw socket as the tap does
# (the frames of agent/include/realms/mframe.h), against a private Redis:
# - a request (B, D, G, D, E) is acknowledged, sent whole and one byte per
#   write;
# - a B payload of exactly MIRROR_META_MAX bytes without a final newline
#   (the old reader wrote a byte past it) is read and acknowledged;
# - an O frame is counted for the breakers, with or without rid=;
# - an X frame releases a request's in-flight slot and reservations;
# - a framing error closes the connection and is counted;
# - the admin listener keeps at most ADMIN_CONNS_MAX idle peers;
# - MIRROR_OPEN_MAX requests may be open on one connection (a B sent again
#   and an E do not miscount them); one more closes it, logged once;
# - the mirror's listener opens beside the most SPOP listeners (8);
# - agent.record_wait_ms: records that come close share a script call.
. "$(dirname "$0")/lib.sh"

export LC_ALL=C   # ${#s} counts bytes
META_MAX=8192
OPEN_MAX=16384

start_redis || { fail "redis"; finish; }
MIRROR=$(free_port)
ADMIN=$(free_port)
# No channel: the mirror needs a configuration (prices, Redis), not routes.
# On loopback TCP (allow_tcp), so that bash can speak to it over /dev/tcp.
cat >"$T_DIR/realms.json" <<JSON
{ "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 1, "mirror": "127.0.0.1:$MIRROR", "admin": "127.0.0.1:$ADMIN",
             "allow_tcp": true,
             "spool": "$T_DIR/spool" } }
JSON
start_agent -c "$T_DIR/realms.json" -l "unix:$T_DIR/agent.sock"
wait_tcp "$MIRROR" 10 || { fail "mirror listener"; finish; }
wait_tcp "$ADMIN" 10 || { fail "admin listener"; finish; }

# The mirror's listener does not count against the SPOP listeners: with
# the most of them (8) the agent still opens it.
cat >"$T_DIR/full.json" <<JSON
{ "redis": "127.0.0.1:$REDIS_PORT", "agent": { "threads": 1, "spool": "$T_DIR/spool-full" } }
JSON
full=()
for i in 1 2 3 4 5 6 7 8; do full+=(-l "unix:$T_DIR/full$i.sock"); done
spawn agent-full "$REALMS_AGENT" -f -c "$T_DIR/full.json" "${full[@]}" -M "unix:$T_DIR/full-mirror.sock"
full_pid=$SPAWNED
if wait_file "$T_DIR/full-mirror.sock" 10; then
	ok "8 SPOP listeners and a mirror"
else
	fail "8 SPOP listeners and a mirror: $(tail -3 "$T_DIR/agent-full.log")"
fi
stop_pid "$full_pid"

metric() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

# mopen: fd 3 is a new connection to the mirror.
mopen() { exec 3<>"/dev/tcp/127.0.0.1/$MIRROR"; }
mclose() { exec 3<&- 3>&-; }

# collect SEQ N: reads the agent's lines until it has seen the echo of
# "S SEQ" and N acknowledgements (a commit may end after the echo), and
# prints the acknowledged ids, sorted, joined with ";". Status 1 if the
# connection ended (or 10 s passed) first.
collect() {
	local line acks=() rc=1 synced=0
	while IFS= read -r -t 10 line <&3; do
		case "$line" in
			"S $1") synced=1 ;;
			"A "*) acks+=("${line#A }") ;;
			*) acks+=("unexpected: $line") ;;
		esac
		if [ $synced -eq 1 ] && [ ${#acks[@]} -ge "$2" ]; then rc=0; break; fi
	done
	[ ${#acks[@]} -gt 0 ] && printf '%s\n' "${acks[@]}" | sort | paste -sd';'
	return $rc
}

# closed: whether the agent closed the connection (EOF or reset within 10 s).
closed() {
	local line rc
	IFS= read -r -t 10 line <&3
	rc=$?
	[ $rc -ne 0 ] && [ $rc -le 128 ]
}

# frame KIND ID PAYLOAD
frame() { printf '%s %s %d\n%s' "$1" "$2" "${#3}" "$3"; }

NOW=$(($(date +%s) * 1000))
B_META="status=200
ctype=text/event-stream
token=mirror-test
token_id=0123456789ab
group=default
model=claude-sonnet-4-5
server=up--k1
ts_ms=$NOW
ttfb_ms=12
"
SSE=$(printf 'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":10,"output_tokens":1}}}\n\nevent: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":5}}\n\nevent: message_stop\ndata: {"type":"message_stop"}')
SSE+=$'\n\n'   # $(...) took them off
E_META="reason=complete
duration_ms=40
"
# request RID: one whole request as the tap sends it (head, gap, tail).
request() {
	frame B "$1" "$B_META"
	frame D "$1" "${SSE:0:100}"
	frame G "$1" "skipped=0
"
	frame D "$1" "${SSE:100}"
	frame E "$1" "$E_META"
}

proto0=$(metric realms_mirror_protocol_errors_total)
acked0=$(metric realms_mirror_acked_total)

# --- a request, whole, then one byte per write ---------------------------
mopen
{ request req_whole-1; printf 'S 1\n'; } >&3
assert_eq "$(collect 1 1)" "req_whole-1" "a whole request is acknowledged"
msg="$(request req_bytes.2; printf 'S 2\n')"
for ((i = 0; i < ${#msg}; i++)); do printf '%s' "${msg:i:1}" >&3; done
printf '\n' >&3   # the \n that $(...) took off the end of "S 2\n"
assert_eq "$(collect 2 1)" "req_bytes.2" "one byte per write: the same"

# --- a meta payload of exactly MIRROR_META_MAX bytes, no final newline ---
pad=$((META_MAX - ${#B_META} - 6))
big="${B_META}x=$(head -c "$pad" /dev/zero | tr '\0' 'y')"
big+=$'\nz=1'
assert_eq "${#big}" "$META_MAX" "the payload is $META_MAX bytes"
{ frame B req_big "$big"; frame D req_big "$SSE"; frame E req_big "$E_META"; printf 'S 3\n'; } >&3
assert_eq "$(collect 3 1)" "req_big" "a $META_MAX-byte payload without a final newline is read"

# --- O frames --------------------------------------------------------------
out0=$(metric realms_attempt_outcomes_total)
{ frame O up--k1 "status=200
"; frame O up--k1 "status=529
retry_after=1
rid=req_whole-1
"; frame O up--k1 "status=x
rid=not a rid
"; printf 'S 4\n'; } >&3
assert_eq "$(collect 4 0)" "" "outcomes are not acknowledged"
assert_eq "$(( $(metric realms_attempt_outcomes_total) - out0 ))" 3 "outcomes counted"

# --- X frames: an admitted request that got no answer releases its holds ----
rcli HSET realms:inflight:alice req_gone "gw 1" req_other "gw 1" >/dev/null
rcli HSET realms:resv:t:alice req_gone "5 gw 1" >/dev/null
rcli HSET realms:resv:g:dev req_gone "5 gw 1" >/dev/null
{ frame X req_gone "token=alice
group=dev
"; frame X req_other "group=dev
"; printf 'S 6\n'; } >&3
assert_eq "$(collect 6 0)" "" "releases are not acknowledged"
assert_eq "$(metric realms_admission_releases_total)" 1 "a release with a token counted, one without ignored"
for _ in $(seq 50); do [ "$(rcli HEXISTS realms:resv:g:dev req_gone)" = 0 ] && break; sleep 0.1; done
assert_eq "$(rcli HKEYS realms:inflight:alice)" "req_other" "the in-flight slot released, the other kept"
assert_eq "$(rcli HEXISTS realms:resv:t:alice req_gone)$(rcli HEXISTS realms:resv:g:dev req_gone)" "00" \
	"the token's and the group's reservations released"
mclose

# --- a framing error closes the connection ---------------------------------
mopen
{ frame B req_x ""; printf 'S 5\n'; } >&3
assert_eq "$(collect 5 0)" "" "connection up"
printf 'Q req_x 0\n' >&3
closed && ok "an unknown frame kind closes the connection" || fail "still open after a bad frame"
mclose
mopen
printf 'D req_x 67108865\n' >&3
closed && ok "a D length over MIRROR_FRAME_MAX closes the connection" || fail "still open after a long D"
mclose
assert_eq "$(( $(metric realms_mirror_protocol_errors_total) - proto0 ))" 2 "protocol errors counted"

# --- MIRROR_OPEN_MAX ---------------------------------------------------------
mopen
{
	for ((i = 1; i < OPEN_MAX; i++)); do printf 'B open-%d 0\n' "$i"; done
	printf 'B open-1 0\n'         # sent again: starts over, still one
	printf 'B open-last 0\n'      # OPEN_MAX open
	frame E open-2 "ts_ms=$NOW"   # one fewer
	printf 'B open-again 0\n'     # OPEN_MAX again
	printf 'S 6\n'
} >&3
assert_eq "$(collect 6 1)" "open-2" "$OPEN_MAX requests open on one connection"
printf 'B open-over 0\nS 7\n' >&3
closed && ok "one more closes the connection" || fail "still open past MIRROR_OPEN_MAX"
mclose
assert_eq "$(( $(metric realms_mirror_protocol_errors_total) - proto0 ))" 3 "the overload is counted"
assert_eq "$(grep -c 'MIRROR_OPEN_MAX' "$T_DIR/agent.log")" 1 "and logged once"

# The agent still serves, and acknowledged exactly what it should have.
mopen
{ request req_after; printf 'S 8\n'; } >&3
assert_eq "$(collect 8 1)" "req_after" "the listener still serves"
mclose
assert_eq "$(( $(metric realms_mirror_acked_total) - acked0 ))" 5 "acknowledgements counted"

# --- the admin listener: idle peers cannot take the agent's descriptors ------
fds0=$(find "/proc/$AGENT_PID/fd" -mindepth 1 | wc -l)
python3 - "$ADMIN" <<'PY' &
import socket, sys, time
held = []
for _ in range(300):
    try:
        held.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        pass
time.sleep(1.5)
PY
IDLE=$!
sleep 0.8
fds1=$(find "/proc/$AGENT_PID/fd" -mindepth 1 | wc -l)
[ $((fds1 - fds0)) -le 66 ] &&
	ok "300 idle admin connections hold at most ADMIN_CONNS_MAX descriptors (+$((fds1 - fds0)))" ||
	fail "300 idle admin connections took $((fds1 - fds0)) descriptors"
mopen
{ request req_busy; printf 'S 9\n'; } >&3
assert_eq "$(collect 9 1)" "req_busy" "the mirror serves meanwhile"
mclose
wait "$IDLE"
for _ in $(seq 50); do [ -n "$(metric realms_mirror_acked_total)" ] && break; sleep 0.1; done
assert_eq "$(( $(metric realms_mirror_acked_total) - acked0 ))" 6 "/metrics answers again once they are gone"

# --- agent.record_wait_ms: records that come close share a script call ------
# A first request, alone on an idle agent, goes at once. Nine more, 30 ms
# apart, each whole in its own write: with a wait of 1000 ms they wait
# for one call together; with no wait each goes alone.
script_calls() {
	rcli INFO commandstats | tr -d '\r' |
		awk -F'[:=,]' '$1 == "cmdstat_evalsha" || $1 == "cmdstat_eval" { n += $3 } END { print n + 0 }'
}
for wait in 1000 0; do
	port=$(free_port)
	cat >"$T_DIR/wait$wait.json" <<JSON
{ "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 1, "mirror": "127.0.0.1:$port", "allow_tcp": true,
             "record_wait_ms": $wait, "spool": "$T_DIR/spool-wait$wait" } }
JSON
	spawn "agent-wait$wait" "$REALMS_AGENT" -f -c "$T_DIR/wait$wait.json" -l "unix:$T_DIR/wait$wait.sock"
	wpid=$SPAWNED
	if ! wait_tcp "$port" 10; then
		fail "record_wait_ms $wait: mirror listener"
		stop_pid "$wpid"
		continue
	fi
	calls0=$(script_calls)
	exec 3<>"/dev/tcp/127.0.0.1/$port"
	{ request "req_w${wait}_0"; printf 'S 1\n'; } >&3
	assert_eq "$(collect 1 1)" "req_w${wait}_0" "record_wait_ms $wait: a record alone is acknowledged"
	want=()
	for i in 1 2 3 4 5 6 7 8 9; do
		request "req_w${wait}_$i" >&3
		want+=("req_w${wait}_$i")
		sleep 0.03
	done
	printf 'S 2\n' >&3
	got=$(collect 2 9)
	mclose
	assert_eq "$got" "$(printf '%s\n' "${want[@]}" | sort | paste -sd';')" \
		"record_wait_ms $wait: nine more acknowledged"
	seen=0
	for r in "req_w${wait}_0" "${want[@]}"; do
		seen=$((seen + $(rcli EXISTS "realms:usage:seen:$r")))
	done
	assert_eq "$seen" 10 "record_wait_ms $wait: every record counted in Redis"
	calls=$(( $(script_calls) - calls0 ))
	if [ "$wait" -gt 0 ]; then
		assert_eq "$calls" 2 "record_wait_ms $wait: 10 records in 2 script calls"
	else
		[ "$calls" -ge 6 ] &&
			ok "record_wait_ms 0: 10 records in $calls script calls" ||
			fail "record_wait_ms 0: 10 records in $calls script calls (want 6 or more)"
	fi
	stop_pid "$wpid"
done

finish
