#!/usr/bin/env bash
# What the response mirror costs, the numbers of docs/benchmarks.md ("Response
# mirror"): requests/s and CPU per request of the whole Realms gateway with
# and without the tap, on event streams of about 5 KB and about 200 KB.
#   on:  haproxy/realms.cfg as shipped (`filter lua.realms-guard-tap-rewrite-outcome` in
#        fe_realms), REALMS_MIRROR set to the agent's mirror listener
#        (agent.mirror): every answer is copied to the agent, metered and
#        committed to Redis;
#   off: a copy of haproxy/realms.cfg in the scratch directory whose filter
#        runs the other parts only (`filter lua.realms-guard-rewrite-outcome`), REALMS_MIRROR
#        still set (the attempt reports for the agent's breakers keep using
#        the mirror connection): no answer is copied, nothing is billed.
# Both use the same agent, Redis and mock upstream. Each run starts its own
# HAProxy (long-lived ones drift apart: their SPOE connections and their
# CPU per request differ by more than the mirror costs on small answers),
# waits for a first whole answer, warms up with BENCH_CONNS x 10 requests,
# waits for their billing, then measures; the runs alternate (off, on, off,
# on...), BENCH_RUNS of each per answer size, and medians are reported. CPU
# per request is each process's CPU time (/proc/PID/stat) over the run
# divided by the requests answered; the run's window extends until Redis has
# counted every answer, so the work the mirror does after the last byte is
# included. HAProxy's peak memory (VmHWM) shows what the tap held.
#
# After every run, Redis must have billed exactly as many requests as the
# mock answered through the mirror (otherwise the script stops at once).
# Answers billed from a partial copy (the tap gave up bytes, reason
# tap_overflow, or any other reason) are counted as lost, shown in the
# summary, and make the script exit 1 at the end; when none is, the output
# tokens billed must equal those the mock reported.
#
# Usage: bash bench/tap.sh   (or `make bench-tap`)
# Environment: BUILD (build directory, default ./build), BENCH_SECONDS (per
# run, default 10), BENCH_RUNS (default 3), BENCH_CONNS (default 16),
# TAP_SIZES (the answers: DELTAS:BYTES for the mock's x-mock-deltas and
# x-mock-delta-bytes, run closed loop, or DELTAS:BYTES@RATE, paced at RATE
# requests/s; default "32:24 100:2048 100:2048@50": 5 KB and 217 KB event
# streams as fast as they go, and 217 KB at 50 requests/s), TMPDIR,
# KEEP_BENCH_DIR=1.
# shellcheck disable=SC2034 # NAME is read by lib.sh
NAME=tap
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZES=${TAP_SIZES:-32:24 100:2048 100:2048@50}

build_tools
machine_line
start_redis || die "redis did not start"
start_mock
start_agent
# The same file with fe_realms' filter running every part but the
# tap (exactly one line must change).
TAP_LINE='    filter lua.realms-guard-tap-rewrite-outcome'
[ "$(grep -cxF "$TAP_LINE" "$SRC/haproxy/realms.cfg")" -eq 1 ] ||
	die "haproxy/realms.cfg has no single '$TAP_LINE' line"
sed 's/^\(    filter lua\.realms-guard\)-tap\(-rewrite-outcome\)$/\1\2/' "$SRC/haproxy/realms.cfg" \
	>"$DIR/realms-nomirror.cfg"
declare -A LABEL=([off]="without the mirror" [on]="with the mirror")
declare -A CFG=([off]="$DIR/realms-nomirror.cfg" [on]="$SRC/haproxy/realms.cfg")
declare -A MIRROR=([off]="$MIRROR_ADDR" [on]="$MIRROR_ADDR")
echo "== ${SECS}s per run, $RUNS runs of each case, $CONNS connections, cases alternating"

N=0
BILL_RUNS=0
BILL_TOTAL=0
P_SEEN=0
LOST_TOTAL=0
declare -A R_RATE R_T50 R_T99 R_HAP R_AGENT R_REDIS R_MOCK R_HWM R_CLIENT R_LAG SIZE_OF EVENTS LOST RATE

# count_billing WHAT ANSWERS: after ANSWERS more answers through the mirror,
# waits for Redis to count them: a count that differs stops the script;
# answers recorded partial since the last call are returned in LOST_NOW.
count_billing() {
	local n p
	EXPECT_BILLED=$((EXPECT_BILLED + $2))
	n=$(wait_billed "$EXPECT_BILLED")
	[ "$n" -eq "$EXPECT_BILLED" ] ||
		die "$1: Redis billed $n requests, the mock answered $EXPECT_BILLED through the mirror"
	p=$(billed_field partial)
	LOST_NOW=$((p - P_SEEN))
	P_SEEN=$p
}

# run_case MODE SIZE: one run on a fresh HAProxy, its figures appended to
# R_*[MODE SIZE]. Answers recorded partial are counted in LOST[SIZE] and
# make the script fail at the end, after the summary.
run_case() {
	local m=$1 size=$2 key="$1 $2" out line hp h0 h1 a0 a1 r0 r1 u0 u1 s0 s1 t1 ok mk0 mk1
	local o0 o1 bo0 bo1 secs hwm lost=0 rate_arg=() on=0
	[ -n "${RATE[$size]}" ] && rate_arg=(-r "${RATE[$size]}")
	[ "$m" = on ] && on=1
	N=$((N + 1))
	out=$DIR/hb.$N
	start_realms "$m" "${CFG[$m]}" "${MIRROR[$m]}"
	hp=${HP_PID[$m]}
	# A first whole answer (bounded: HAProxy's health check must see the
	# agent), then the warm-up, billed before the measure starts.
	mk0=$(mock_stat 200)
	for _ in $(seq 50); do probe "${HP_PORT[$m]}" "$DIR/probe-$m" 2>/dev/null && break; sleep 0.2; done
	probe "${HP_PORT[$m]}" "$DIR/probe-$m" || die "no whole 200 event stream ${LABEL[$m]}"
	hbench "${HP_PORT[$m]}" "$out.warm" -c "$CONNS" -n $((CONNS * 10)) "${rate_arg[@]}"
	count_billing "warm-up ${LABEL[$m]}" $((on * ($(mock_stat 200) - mk0)))
	lost=$LOST_NOW

	mk0=$(mock_stat 200); o0=$(mock_stat out); bo0=$(billed_field output)
	h0=$(cpu_ticks "$hp"); a0=$(cpu_ticks "$AGENT_PID"); r0=$(cpu_ticks "$REDIS_PID")
	u0=$(cpu_ticks "$MOCK_PID")
	s0=$(now_s)
	hbench "${HP_PORT[$m]}" "$out" -c "$CONNS" -s "$SECS" "${rate_arg[@]}"
	t1=$(now_s)
	line=$(cat "$out.out")
	ok=$(hb ok "$line")
	mk1=$(mock_stat 200)
	[ $((mk1 - mk0)) -eq "$ok" ] ||
		die "${LABEL[$m]}: the client got $ok answers, the mock sent $((mk1 - mk0))"
	count_billing "${LABEL[$m]}, run $N" $((on * ok))
	s1=$(now_s)
	h1=$(cpu_ticks "$hp"); a1=$(cpu_ticks "$AGENT_PID"); r1=$(cpu_ticks "$REDIS_PID")
	u1=$(cpu_ticks "$MOCK_PID")
	hwm=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$hp/status")
	kill -0 "$hp" 2>/dev/null || die "haproxy (${LABEL[$m]}) died"
	check_agent "${LABEL[$m]}"
	lost=$((lost + LOST_NOW))
	if [ "$lost" -gt 0 ]; then
		echo "  LOST: $lost answers recorded partial ($(partial_reasons "$((ok + CONNS * 10))"))" >&2
		LOST[$size]=$(( ${LOST[$size]:-0} + lost ))
		LOST_TOTAL=$((LOST_TOTAL + lost))
	elif [ "$m" = on ]; then
		o1=$(mock_stat out); bo1=$(billed_field output)
		[ $((bo1 - bo0)) -eq $((o1 - o0)) ] ||
			die "Redis billed $((bo1 - bo0)) output tokens, the mock reported $((o1 - o0))"
	fi
	if [ "$m" = on ]; then
		BILL_RUNS=$((BILL_RUNS + 1))
		BILL_TOTAL=$((BILL_TOTAL + ok))
	fi
	stop_pid "$hp"
	secs=$(elapsed "$s0" "$s1")
	SIZE_OF[$size]=$(stat -c %s "$DIR/probe-$m.b")
	EVENTS[$size]=$(grep -c '^event: ' "$DIR/probe-$m.b")
	R_RATE[$key]+=" $(hb rate "$line")"
	R_T50[$key]+=" $(hb ttfb_p50 "$line")"
	R_T99[$key]+=" $(hb ttfb_p99 "$line")"
	R_HAP[$key]+=" $(cpu_per_op "$h0" "$h1" "$ok")"
	R_AGENT[$key]+=" $(cpu_per_op "$a0" "$a1" "$ok")"
	R_REDIS[$key]+=" $(cpu_per_op "$r0" "$r1" "$ok")"
	R_MOCK[$key]+=" $(cpu_per_op "$u0" "$u1" "$ok")"
	R_HWM[$key]+=" $hwm"
	R_CLIENT[$key]+=" $(hb client_cpu "$line")"
	R_LAG[$key]+=" $(elapsed "$t1" "$s1")"
	printf '  %-19s %6s req/s  ttfb p50 %6s p99 %6s us  haproxy %s%% (%s us/req, peak %s MB) agent %s%% (%s us/req) redis %s us/req  mock %s us/req  billed %ss after the run  client %s%%\n' \
		"${LABEL[$m]}" "$(hb rate "$line")" "$(hb ttfb_p50 "$line")" "$(hb ttfb_p99 "$line")" \
		"$(cpu_pct "$h0" "$h1" "$secs")" "$(cpu_per_op "$h0" "$h1" "$ok")" "$hwm" \
		"$(cpu_pct "$a0" "$a1" "$secs")" "$(cpu_per_op "$a0" "$a1" "$ok")" \
		"$(cpu_per_op "$r0" "$r1" "$ok")" "$(cpu_per_op "$u0" "$u1" "$ok")" \
		"$(elapsed "$t1" "$s1")" "$(hb client_cpu "$line")"
}

for size in $SIZES; do
	spec=${size%@*}
	RATE[$size]=
	[[ "$size" == *@* ]] && RATE[$size]=${size#*@}
	deltas=${spec%%:*}
	dbytes=${spec#*:}
	[[ "$deltas" =~ ^[0-9]+$ && "$dbytes" =~ ^[0-9]+$ && "${RATE[$size]}" =~ ^[0-9]*$ ]] ||
		die "TAP_SIZES: bad item '$size' (DELTAS:BYTES or DELTAS:BYTES@RATE)"
	request_headers "x-mock-deltas: $deltas" "x-mock-delta-bytes: $dbytes"
	echo "-- answer: $deltas deltas x $dbytes B, $([ -n "${RATE[$size]}" ] &&
		echo "at most ${RATE[$size]} requests/s" || echo "closed loop")"
	for r in $(seq "$RUNS"); do
		echo "   round $r of $RUNS"
		for m in off on; do run_case "$m" "$size"; done
	done
	echo "   answer size: ${SIZE_OF[$size]} B event stream (${EVENTS[$size]} events), as the client got it"
done

# ---------------------------------------------------------------- summary ---
# shellcheck disable=SC2086 # word splitting of the collected values
med() { local -n arr=$1; median ${arr[$2]}; }
label() { echo "${SIZE_OF[$1]} B$([ -n "${RATE[$1]}" ] && echo " @${RATE[$1]}/s")"; }
echo
echo "== response mirror: 85 KB requests, $CONNS connections; medians of $RUNS runs of ${SECS}s"
printf '%-16s %-19s %7s %8s %8s %8s %6s %7s %7s %7s %6s %6s %6s\n' answer case req/s ttfb_p50 \
	ttfb_p99 haproxy peakMB agent redis mock client lag_s lost
for size in $SIZES; do
	for m in off on; do
		printf '%-16s %-19s %7s %8s %8s %8s %6s %7s %7s %7s %5s%% %6s %6s\n' "$(label "$size")" \
			"${LABEL[$m]}" "$(med R_RATE "$m $size")" "$(med R_T50 "$m $size")" \
			"$(med R_T99 "$m $size")" "$(med R_HAP "$m $size")" "$(med R_HWM "$m $size")" \
			"$(med R_AGENT "$m $size")" "$(med R_REDIS "$m $size")" "$(med R_MOCK "$m $size")" \
			"$(med R_CLIENT "$m $size")" "$(med R_LAG "$m $size")" \
			"$([ "$m" = on ] && echo "${LOST[$size]:-0}" || echo -)"
	done
done
echo "(ttfb_*: microseconds; haproxy, agent, redis, mock: CPU microseconds per request; peakMB:"
echo " HAProxy's peak resident memory; client: % of one core; lag_s: seconds from the end of the"
echo " run until Redis had counted every answer (0.5 s of it is the check itself); lost: answers"
echo " recorded partial, over all the runs with the mirror, warm-ups included)"
echo
for size in $SIZES; do
	awk -v s="$(label "$size")" -v r1="$(med R_RATE "on $size")" -v r0="$(med R_RATE "off $size")" \
		-v h1="$(med R_HAP "on $size")" -v h0="$(med R_HAP "off $size")" \
		-v a1="$(med R_AGENT "on $size")" -v a0="$(med R_AGENT "off $size")" \
		-v d1="$(med R_REDIS "on $size")" -v d0="$(med R_REDIS "off $size")" 'BEGIN {
		printf "%s: req/s on/off %.2f; CPU per request on - off: haproxy %+.0f us, agent %+.0f us, redis %+.0f us, total %+.0f us (%.0f -> %.0f)\n",
			s, (r0 > 0 ? r1 / r0 : 0), h1 - h0, a1 - a0, d1 - d0,
			(h1 + a1 + d1) - (h0 + a0 + d0), h0 + a0 + d0, h1 + a1 + d1 }'
done
echo "billing: $BILL_RUNS mirrored runs, $BILL_TOTAL answers measured, each counted once in Redis" \
	"($LOST_TOTAL recorded partial); nothing billed without the mirror"
if grep -qE '\] warning: ' "$DIR/agent.log"; then
	echo "agent warnings:"; grep -E '\] warning: ' "$DIR/agent.log" | sed 's/^/  /' | tail -5
else
	echo "agent warnings: none"
fi
echo "load average at the end: $(loadavg)"
if [ "$LOST_TOTAL" -gt 0 ]; then
	echo "tap: FAILED: $LOST_TOTAL answers were billed from a partial copy (the mirror could not keep up)" >&2
	exit 1
fi
