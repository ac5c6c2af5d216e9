#!/usr/bin/env bash
# The agent's worker threads, one against two, side by side: the numbers of
# docs/benchmarks.md ("One agent thread"). Two gateways share Redis and the
# mock upstream: HAProxy (haproxy/realms.cfg) with an agent of one worker
# thread (the default), and the same HAProxy with an agent of two. Each run
# sends the data path's request (85 KB, a 7.5 KB event stream) with the
# single-credential token and BENCH_CONNS connections through one of them;
# runs go in pairs, in the order A B, B A, A B, ... so that neither side
# always comes second on a host whose speed drifts. Reported: every run, the
# medians, and the median of the pairs' ratios (two threads over one).
# Every answer is billed once, as in datapath.sh.
#
# Usage: bash bench/threads.sh
# Environment: BUILD (build directory, default ./build), BENCH_SECONDS (per
# run, default 10), BENCH_RUNS (pairs, default 3), BENCH_CONNS (default
# 50), TMPDIR, KEEP_BENCH_DIR=1.
# shellcheck disable=SC2034 # NAME is read by lib.sh
NAME=threads
BENCH_CONNS=${BENCH_CONNS:-50}
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build_tools
machine_line
start_redis || die "redis did not start"
start_mock
start_agent
grep -q '"threads": 1,' "$DIR/realms.json" || die "the first agent is not the one-thread default"
start_realms one "$SRC/haproxy/realms.cfg" "$MIRROR_ADDR"
declare -A AGENT=([one]=$AGENT_PID)

# The second agent: the same configuration with two worker threads, its own
# sockets and spool. The tokens are in the shared Redis.
sed -e 's/"threads": 1,/"threads": 2,/' -e "s|$MIRROR_ADDR|$DIR/mirror2.sock|" \
	-e "s|\"$DIR/spool\"|\"$DIR/spool2\"|" "$DIR/realms.json" >"$DIR/realms2.json"
mkdir -p "$DIR/spool2"
spawn_agent agent2 "$DIR/realms2.json" "$DIR/agent2.sock" "$DIR/mirror2.sock"
AGENT[two]=$SPAWNED
AGENT_SOCK=$DIR/agent2.sock start_realms two "$SRC/haproxy/realms.cfg" "$DIR/mirror2.sock"

TOKEN=$TOKEN_SINGLE
request_headers "x-mock-deltas: 48" "x-mock-delta-bytes: 24"
for g in one two; do
	mk0=$(mock_stat 200)
	for _ in $(seq 50); do probe "${HP_PORT[$g]}" "$DIR/probe-$g" 2>/dev/null && break; sleep 0.2; done
	probe "${HP_PORT[$g]}" "$DIR/probe-$g" || die "no whole 200 event stream through the gateway ($g)"
	hbench "${HP_PORT[$g]}" "$DIR/warm-$g" -c "$CONNS" -s 2
	EXPECT_BILLED=$((EXPECT_BILLED + $(mock_stat 200) - mk0))
done
settle_billing "warm-up"
echo "== ${SECS}s per run, $RUNS pairs, $CONNS connections, the single-credential token"

declare -A R_RATE R_HAP R_AGENT R_REDIS R_CALLS
# The record script's calls so far (every batch of records is one EVALSHA).
evalsha_calls() { rcli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),.*/\1/p'; }
PAIR_RATIOS=()
N=0
# run G: one run through gateway G (one or two); prints its line, sets RATE.
run() {
	local g=$1 out line h0 h1 a0 a1 r0 r1 e0 e1 ok mk0
	N=$((N + 1))
	out=$DIR/hb.$N
	mk0=$(mock_stat 200)
	e0=$(evalsha_calls)
	h0=$(cpu_ticks "${HP_PID[$g]}"); a0=$(cpu_ticks "${AGENT[$g]}"); r0=$(cpu_ticks "$REDIS_PID")
	hbench "${HP_PORT[$g]}" "$out" -c "$CONNS" -s "$SECS"
	line=$(cat "$out.out")
	ok=$(hb ok "$line")
	[ $(($(mock_stat 200) - mk0)) -eq "$ok" ] || die "$g: the client and the mock disagree"
	EXPECT_BILLED=$((EXPECT_BILLED + ok))
	settle_billing "agent threads: $g, run $N"
	h1=$(cpu_ticks "${HP_PID[$g]}"); a1=$(cpu_ticks "${AGENT[$g]}"); r1=$(cpu_ticks "$REDIS_PID")
	e1=$(evalsha_calls)
	kill -0 "${AGENT[$g]}" 2>/dev/null || die "the agent ($g) died"
	RATE=$(hb rate "$line")
	R_RATE[$g]+=" $RATE"
	R_HAP[$g]+=" $(cpu_per_op "$h0" "$h1" "$ok")"
	R_AGENT[$g]+=" $(cpu_per_op "$a0" "$a1" "$ok")"
	R_REDIS[$g]+=" $(cpu_per_op "$r0" "$r1" "$ok")"
	R_CALLS[$g]+=" $(ratio "$((e1 - e0))" "$ok")"
	printf '  agent threads: %-3s %7s req/s  ttfb p50 %6s p99 %6s us  haproxy %s agent %s redis %s us/req  script calls %s/req\n' \
		"$g" "$RATE" "$(hb ttfb_p50 "$line")" "$(hb ttfb_p99 "$line")" \
		"$(cpu_per_op "$h0" "$h1" "$ok")" "$(cpu_per_op "$a0" "$a1" "$ok")" "$(cpu_per_op "$r0" "$r1" "$ok")" \
		"$(ratio "$((e1 - e0))" "$ok")"
}
for p in $(seq "$RUNS"); do
	if [ $((p % 2)) -eq 1 ]; then run one; r1=$RATE; run two; r2=$RATE
	else run two; r2=$RATE; run one; r1=$RATE; fi
	PAIR_RATIOS+=("$(ratio "$r2" "$r1")")
done

# shellcheck disable=SC2086 # word splitting of the collected values
med() { local -n arr=$1; median ${arr[$2]}; }
echo
echo "== agent threads, one against two: medians of $RUNS runs each of ${SECS}s, $CONNS connections"
printf '%-14s %9s %9s %9s %9s %12s\n' threads req/s haproxy agent redis calls/req
for g in one two; do
	printf '%-14s %9s %9s %9s %9s %12s\n' "$g" "$(med R_RATE "$g")" "$(med R_HAP "$g")" \
		"$(med R_AGENT "$g")" "$(med R_REDIS "$g")" "$(med R_CALLS "$g")"
done
echo "(haproxy, agent, redis: CPU microseconds per request; calls/req: the record script's calls,"
echo " one a batch of records)"
echo "pairs, req/s two/one: ${PAIR_RATIOS[*]}; median $(median "${PAIR_RATIOS[@]}")"
echo "billing: $EXPECT_BILLED answers, each counted once in Redis, none partial"
echo "load average at the end: $(loadavg)"
