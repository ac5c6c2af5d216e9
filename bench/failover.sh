#!/usr/bin/env bash
# Failover as the client sees it (docs/failover.md): a Claude Code request
# of 330 KB (tests/fixtures/claude-code/messages-1.json, its conversation
# enlarged, model first) through the whole gateway with two equal channels
# (two mock upstreams), one of which answers 529 from the start of each
# run. The request is too large for HAProxy's retry buffer, so a failed
# attempt reaches the client, which retries after 0.5 s as Claude Code's
# backoff does, until it gets a 200. Every run starts a fresh failing
# phase: a new session whose first choice is the failing mock, and the
# failing credential's avoidance over.
#
# Per run it prints the failures the client saw, the time from the first
# send to the 200 (retries and backoff included), and whether the answer
# was billed exactly once (one answer with its tokens, to the channel that
# answered; the failures recorded as errors without cost). Then the
# median and the maximum.
#
# Usage: bash bench/failover.sh   (or `make bench-failover`)
# Environment: BUILD, BENCH_RUNS (default 10), BENCH_AVOID (failover.avoid
# in seconds, default 3: the script waits it out between runs; the 0.5 s
# retry falls well within it, as within the default 30), TMPDIR,
# KEEP_BENCH_DIR=1.
# shellcheck disable=SC2034 # NAME is read by lib.sh
NAME=failover
NEEDS="haproxy redis-server redis-cli curl timeout python3"
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=${BENCH_RUNS:-10}
AVOID=${BENCH_AVOID:-3}
DAY=$(date -u +%Y%m%d)

build_tools realms-agent realmsctl mock_upstream
machine_line
start_redis

# Two mock upstreams, a and b.
declare -A MPORT
for m in a b; do
	MPORT[$m]=$(free_port) || die "no free port"
	spawn "mock-$m" "$BUILD/mock_upstream" -l "127.0.0.1:${MPORT[$m]}" -n "$m"
	wait_tcp "${MPORT[$m]}" || die "mock $m did not start"
done
msgs() { curl -sS --max-time 5 "http://127.0.0.1:${MPORT[$1]}/mock/stats" |
	sed -n 's/.*"messages":\([0-9]*\).*/\1/p'; }
mfail() { curl -sS -o /dev/null --max-time 5 -X POST "http://127.0.0.1:${MPORT[$1]}/mock/fail" \
	-d "$2" || die "mock $1: /mock/fail"; }

# The agent: two equal channels, one credential each.
MIRROR_ADDR=$DIR/mirror.sock
AGENT_SOCK=$DIR/agent.sock
mkdir -p "$DIR/spool"
cat >"$DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 1, "mirror": "$MIRROR_ADDR", "spool": "$DIR/spool" },
  "failover": { "avoid": $AVOID },
  "models": [ {"name": "$MODEL", "enabled": true} ],
  "channels": [
    {"name": "a", "base_url": "http://127.0.0.1:${MPORT[a]}",
     "credentials": [{"name": "k", "key": "sk-bench-a"}],
     "models": {"$MODEL": "$UPSTREAM_MODEL"}},
    {"name": "b", "base_url": "http://127.0.0.1:${MPORT[b]}",
     "credentials": [{"name": "k", "key": "sk-bench-b"}],
     "models": {"$MODEL": "$UPSTREAM_MODEL"}}
  ]
}
JSON
launch_agent
start_realms c "$SRC/haproxy/realms.cfg" "$MIRROR_ADDR"
URL="http://127.0.0.1:${HP_PORT[c]}/v1/messages"

# The 330 KB body, model first.
python3 - "$FIXTURE.json" "$DIR/big.json" <<'PY' || die "building the body"
import json, sys
d = json.load(open(sys.argv[1]))
turn = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 40
d["stream"] = True
while True:
    out = json.dumps(d, separators=(",", ":"))
    if len(out) >= 330000:
        break
    d["messages"] = [{"role": "user", "content": [{"type": "text", "text": turn}]},
                     {"role": "assistant", "content": [{"type": "text", "text": turn}]}] + d["messages"]
assert out.startswith('{"model":')
open(sys.argv[2], "w").write(out)
PY
printf '{"model":"%s","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}' \
	"$MODEL" >"$DIR/small.json"

# send SESSION FILE: one streamed request; prints its status.
send() {
	curl -sS -o "$DIR/out" -w '%{http_code}' --max-time 30 -H "x-api-key: $TOKEN" \
		-H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \
		-H "x-claude-code-session-id: $1" -H 'x-mock-usage: in=1000,out=50' \
		--data-binary "@$2" "$URL"
}
# session_on_a RUN: a new session id whose first choice is a.
session_on_a() {
	local i s a0
	for i in $(seq 40); do
		s="bench-$$-$1-$i"
		a0=$(msgs a)
		[ "$(send "$s" "$DIR/small.json")" = 200 ] || die "probe request failed"
		[ "$(msgs a)" -gt "$a0" ] && { echo "$s"; return 0; }
	done
	die "no session homed on a"
}
usage() { local v; v=$(rcli HGET "realms:usage:$1:$DAY" "$2"); echo "${v:-0}"; }
# billed KEY: "requests errors input" of today.
billed() { echo "$(usage "$1" requests) $(usage "$1" errors) $(usage "$1" input)"; }

printf '%-4s %-10s %-12s %s\n' run failures ms_to_200 billed
declare -a FAILS TIMES
ONCE=0
for r in $(seq "$RUNS"); do
	S=$(session_on_a "$r")
	sleep 0.5   # the probes' records are in
	read -r q0 e0 i0 <<<"$(billed model:$MODEL)"
	read -r qa0 ea0 ia0 <<<"$(billed channel:a)"
	mfail a '{"status":529,"count":1000}'
	t0=$(date +%s%N)
	n=0
	code=
	for _ in $(seq 10); do
		code=$(send "$S" "$DIR/big.json")
		[ "$code" = 200 ] && break
		n=$((n + 1))
		sleep 0.5   # Claude Code's first backoff
	done
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	mfail a '{"status":529,"count":0}'
	[ "$code" = 200 ] || die "run $r: no 200 after $n failures"
	# Billed once: the answer and each failure are records; only the
	# answer carries tokens, and none went to a.
	for _ in $(seq 50); do
		read -r q1 e1 i1 <<<"$(billed model:$MODEL)"
		[ $((q1 - q0)) -ge $((n + 1)) ] && break
		sleep 0.1
	done
	sleep 0.3
	read -r q1 e1 i1 <<<"$(billed model:$MODEL)"
	read -r qa1 ea1 ia1 <<<"$(billed channel:a)"
	if [ $((q1 - q0 - (e1 - e0))) -eq 1 ] && [ $((i1 - i0)) -eq 1000 ] && [ $((ia1 - ia0)) -eq 0 ]; then
		b=once; ONCE=$((ONCE + 1))
	else
		b="NO (answers $((q1 - q0 - (e1 - e0))), input $((i1 - i0)), input at a $((ia1 - ia0)))"
	fi
	FAILS+=("$n"); TIMES+=("$ms")
	printf '%-4s %-10s %-12s %s\n' "$r" "$n" "$ms" "$b"
	check_agent "run $r"
	sleep "$(awk -v a="$AVOID" 'BEGIN { print a + 0.3 }')"   # a's avoidance over
done
maxf=$(printf '%s\n' "${FAILS[@]}" | sort -g | tail -1)
maxt=$(printf '%s\n' "${TIMES[@]}" | sort -g | tail -1)
echo "-- $RUNS runs: failures seen median $(median "${FAILS[@]}") max $maxf;" \
	"ms to the 200 median $(median "${TIMES[@]}") max $maxt; billed once $ONCE/$RUNS"
[ "$ONCE" -eq "$RUNS" ] || die "an answer was not billed exactly once"
