#!/usr/bin/env bash
# The data path, the numbers of docs/benchmarks.md ("Data path"): requests/s
# and time to first byte of the same streaming request, a captured Claude
# Code request (tests/fixtures/claude-code/messages-1, 85 KB body), answered
# by the same mock upstream, in one run:
#   a. straight to the mock;
#   b. through a plain HAProxy pass-through (bench/passthrough.cfg);
#   m. the same, HAProxy given haproxy/malloc.env as Realms's HAProxy is
#      (the ratios against b are the goal's; against m, like with like);
#   c. through the whole Realms gateway: haproxy/realms.cfg with the
#      rendered channel part, realms-agent (verdict, mirror), Redis, a real
#      client token whose group's channel has two credentials (a pool); the
#      answers are billed, and the script checks that Redis counted exactly
#      the requests the mock answered;
#   d. the same gateway, a token whose group's channel has one credential.
# Each case runs with BENCH_CONNS connections (throughput, and TTFB under
# load) and with 1 connection (TTFB of a lone request), BENCH_RUNS times,
# the cases alternating; medians are reported.
#
# Usage: bash bench/datapath.sh   (or `make bench-datapath`)
# Environment: BUILD (build directory, default ./build), BENCH_SECONDS (per
# run, default 10), BENCH_RUNS (default 3), BENCH_CONNS (default 50),
# DATAPATH_DELTAS and DATAPATH_DELTA_BYTES (the mock's answer: text deltas
# and bytes per delta, default 48 x 24, a 7.5 KB event stream), TMPDIR,
# KEEP_BENCH_DIR=1.
# shellcheck disable=SC2034 # NAME is read by lib.sh
NAME=datapath
BENCH_CONNS=${BENCH_CONNS:-50}
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
DELTAS=${DATAPATH_DELTAS:-48}
DBYTES=${DATAPATH_DELTA_BYTES:-24}

build_tools
machine_line
start_redis || die "redis did not start"
start_mock
start_agent
start_passthrough b
start_passthrough m "" "$SRC/haproxy/malloc.env"
start_realms c "$SRC/haproxy/realms.cfg" "$MIRROR_ADDR"
# The request of each case: d's carries the single-credential token.
T_MULTI=$TOKEN
TOKEN=$TOKEN_SINGLE
request_headers "x-mock-deltas: $DELTAS" "x-mock-delta-bytes: $DBYTES"
REQ_H_D=("${REQ_H[@]}")
CURL_H_D=("${CURL_H[@]}")
TOKEN=$T_MULTI
request_headers "x-mock-deltas: $DELTAS" "x-mock-delta-bytes: $DBYTES"
REQ_H_ABC=("${REQ_H[@]}")
CURL_H_ABC=("${CURL_H[@]}")
use_case() {
	if [ "$1" = d ]; then REQ_H=("${REQ_H_D[@]}"); CURL_H=("${CURL_H_D[@]}")
	else REQ_H=("${REQ_H_ABC[@]}"); CURL_H=("${CURL_H_ABC[@]}"); fi
}
CASES="a b m c d"
declare -A PORT=([a]=$MOCK_PORT [b]=${HP_PORT[b]} [m]=${HP_PORT[m]} [c]=${HP_PORT[c]} [d]=${HP_PORT[c]})
declare -A HPID=([b]=${HP_PID[b]} [m]=${HP_PID[m]} [c]=${HP_PID[c]} [d]=${HP_PID[c]})
declare -A LABEL=([a]="a. straight to the mock" [b]="b. HAProxy pass-through"
	[m]="m. b with malloc.env"
	[c]="c. Realms, 2-credential pool" [d]="d. Realms, 1 credential")
realms() { [ "$1" = c ] || [ "$1" = d ]; }

# One whole answer through each path first (bounded: HAProxy's health check
# must see the agent before the Realms path answers).
for k in $CASES; do
	use_case "$k"
	mk0=$(mock_stat 200)
	for _ in $(seq 50); do probe "${PORT[$k]}" "$DIR/probe-$k" 2>/dev/null && break; sleep 0.2; done
	probe "${PORT[$k]}" "$DIR/probe-$k" || die "no whole 200 event stream through ${LABEL[$k]}"
	realms "$k" && EXPECT_BILLED=$((EXPECT_BILLED + $(mock_stat 200) - mk0))
done
RESP_BYTES=$(stat -c %s "$DIR/probe-c.b")
echo "== answer: $DELTAS deltas x $DBYTES B = $RESP_BYTES B event stream (body, as the client gets it)"
echo "== ${SECS}s per run, $RUNS runs of each case, $CONNS connections and 1, cases alternating"

N=0
BILL_RUNS=0
BILL_TOTAL=0
# One run of case K with C connections, its figures appended to R_*[KC].
declare -A R_RATE R_T50 R_T99 R_L50 R_L99 R_HAP R_AGENT R_REDIS R_MOCK R_CLIENT R_BODY
run_case() {
	local k=$1 c=$2 key=$1$2 out line hp h0 h1 a0 a1 r0 r1 m0 m1 s0 s1 ok mk0 mk1 secs
	N=$((N + 1))
	out=$DIR/hb.$N
	hp=${HPID[$k]:-}
	use_case "$k"
	mk0=$(mock_stat 200)
	h0=$([ -n "$hp" ] && cpu_ticks "$hp" || echo 0)
	a0=$(cpu_ticks "$AGENT_PID"); r0=$(cpu_ticks "$REDIS_PID"); m0=$(cpu_ticks "$MOCK_PID")
	s0=$(now_s)
	hbench "${PORT[$k]}" "$out" -c "$c" -s "$SECS"
	line=$(cat "$out.out")
	ok=$(hb ok "$line")
	mk1=$(mock_stat 200)
	[ $((mk1 - mk0)) -eq "$ok" ] ||
		die "${LABEL[$k]}: the client got $ok answers, the mock sent $((mk1 - mk0))"
	if realms "$k"; then
		# Every answer is billed once: the mirror's records reach Redis
		# shortly after the answers end; the CPU they cost is counted.
		EXPECT_BILLED=$((EXPECT_BILLED + ok))
		settle_billing "${LABEL[$k]}, run $N"
		BILL_RUNS=$((BILL_RUNS + 1))
		BILL_TOTAL=$((BILL_TOTAL + ok))
	fi
	s1=$(now_s)
	h1=$([ -n "$hp" ] && cpu_ticks "$hp" || echo 0)
	a1=$(cpu_ticks "$AGENT_PID"); r1=$(cpu_ticks "$REDIS_PID"); m1=$(cpu_ticks "$MOCK_PID")
	[ -z "$hp" ] || kill -0 "$hp" 2>/dev/null || die "haproxy (${LABEL[$k]}) died"
	check_agent "${LABEL[$k]}"
	secs=$(elapsed "$s0" "$s1")
	R_RATE[$key]+=" $(hb rate "$line")"
	R_T50[$key]+=" $(hb ttfb_p50 "$line")"
	R_T99[$key]+=" $(hb ttfb_p99 "$line")"
	R_L50[$key]+=" $(hb total_p50 "$line")"
	R_L99[$key]+=" $(hb total_p99 "$line")"
	R_HAP[$key]+=" $(cpu_per_op "$h0" "$h1" "$ok")"
	R_AGENT[$key]+=" $(cpu_per_op "$a0" "$a1" "$ok")"
	R_REDIS[$key]+=" $(cpu_per_op "$r0" "$r1" "$ok")"
	R_MOCK[$key]+=" $(cpu_per_op "$m0" "$m1" "$ok")"
	R_CLIENT[$key]+=" $(hb client_cpu "$line")"
	R_BODY[$key]+=" $(hb body "$line")"
	printf '  %-28s c=%-3s %7s req/s  ttfb p50 %6s p99 %6s us  total p50 %6s p99 %6s us  haproxy %s%% (%s us/req) agent %s%% (%s us/req) redis %s us/req mock %s us/req client %s%%\n' \
		"${LABEL[$k]}" "$c" "$(hb rate "$line")" "$(hb ttfb_p50 "$line")" "$(hb ttfb_p99 "$line")" \
		"$(hb total_p50 "$line")" "$(hb total_p99 "$line")" \
		"$(cpu_pct "$h0" "$h1" "$secs")" "$(cpu_per_op "$h0" "$h1" "$ok")" \
		"$(cpu_pct "$a0" "$a1" "$secs")" "$(cpu_per_op "$a0" "$a1" "$ok")" \
		"$(cpu_per_op "$r0" "$r1" "$ok")" "$(cpu_per_op "$m0" "$m1" "$ok")" "$(hb client_cpu "$line")"
}

# Warm-up (not reported): connections opened, SPOE connections established,
# the agent's token cache filled.
for k in $CASES; do
	N=$((N + 1))
	use_case "$k"
	mk0=$(mock_stat 200)
	hbench "${PORT[$k]}" "$DIR/warm.$N" -c "$CONNS" -s 2
	realms "$k" && EXPECT_BILLED=$((EXPECT_BILLED + $(mock_stat 200) - mk0))
done
settle_billing "warm-up"

for r in $(seq "$RUNS"); do
	echo "-- round $r of $RUNS"
	for k in $CASES; do run_case "$k" "$CONNS"; done
	for k in $CASES; do run_case "$k" 1; done
done

# ---------------------------------------------------------------- summary ---
# shellcheck disable=SC2086 # word splitting of the collected values
med() { local -n arr=$1; median ${arr[$2]}; }
echo
echo "== data path: ${RESP_BYTES} B event stream for an 85 KB request; medians of $RUNS runs of ${SECS}s"
printf '%-28s %5s %9s %9s %9s %9s %9s %9s %9s %9s %9s %7s\n' case conns req/s ttfb_p50 ttfb_p99 \
	total_p50 total_p99 haproxy agent redis mock client
for c in "$CONNS" 1; do
	for k in $CASES; do
		printf '%-28s %5s %9s %9s %9s %9s %9s %9s %9s %9s %9s %6s%%\n' "${LABEL[$k]}" "$c" \
			"$(med R_RATE "$k$c")" "$(med R_T50 "$k$c")" "$(med R_T99 "$k$c")" \
			"$(med R_L50 "$k$c")" "$(med R_L99 "$k$c")" "$(med R_HAP "$k$c")" \
			"$(med R_AGENT "$k$c")" "$(med R_REDIS "$k$c")" "$(med R_MOCK "$k$c")" \
			"$(med R_CLIENT "$k$c")"
	done
done
echo "(ttfb_*, total_*: microseconds from the request's first byte to the answer's first and last"
echo " byte; haproxy, agent, redis, mock: CPU microseconds per request; client: % of one core)"
echo
for c in "$CONNS" 1; do
	for k in c d; do
		echo "ratios at $c connection(s), $k: req/s $k/b $(ratio "$(med R_RATE "$k$c")" "$(med R_RATE "b$c")")," \
			"$k/m $(ratio "$(med R_RATE "$k$c")" "$(med R_RATE "m$c")")," \
			"$k/a $(ratio "$(med R_RATE "$k$c")" "$(med R_RATE "a$c")");" \
			"TTFB p50 $k/b $(ratio "$(med R_T50 "$k$c")" "$(med R_T50 "b$c")");" \
			"TTFB p99 $k/b $(ratio "$(med R_T99 "$k$c")" "$(med R_T99 "b$c")"), added" \
			"$(awk -v x="$(med R_T99 "$k$c")" -v y="$(med R_T99 "b$c")" 'BEGIN { print x - y }') us"
	done
done
echo "billing: $BILL_RUNS Realms runs, $BILL_TOTAL answers, each counted once in Redis, none partial"
if grep -qE '\] warning: ' "$DIR/agent.log"; then
	echo "agent warnings:"; grep -E '\] warning: ' "$DIR/agent.log" | sed 's/^/  /' | tail -5
else
	echo "agent warnings: none"
fi
echo "load average at the end: $(loadavg)"
