#!/usr/bin/env bash
# Benchmarks of realms-agent, the numbers of docs/benchmarks.md:
#  1. spop_bench straight at the agent, at 1 and 2 worker threads: the 64 KB
#     prefix of a captured Claude Code request (85 KB) and a tiny body, with
#     4 connections x 16 NOTIFY in flight (throughput) and 1 x 1 (latency);
#  2. Debian's HAProxy driven by wrk with the same 85 KB request, through a
#     frontend that asks the agent (SPOE) and through the same frontend
#     without the agent call (baseline).
# Every server listens on loopback or on a unix socket in a scratch directory,
# on ports found free at start, and is stopped by PID at exit. Every wait and
# every run is bounded. Any protocol error, missing verdict, crash or error
# line of the agent stops the script with what was seen.
#
# Usage: bash bench/run.sh   (or `make bench`)
# Environment: BUILD (build directory, default ./build), BENCH_SECONDS (per
# run, default 10), BENCH_RUNS (runs of each throughput case, default 3: the
# medians are reported), WRK_THREADS (default 2), WRK_CONNS (default 32),
# TMPDIR (where the scratch directory goes), KEEP_BENCH_DIR=1 (keep it).
# shellcheck disable=SC2034 # NAME and NEEDS are read by lib.sh
NAME=bench NEEDS="haproxy wrk curl timeout"
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WRK_THREADS=${WRK_THREADS:-2}
WRK_CONNS=${WRK_CONNS:-32}
BODY=$SRC/tests/fixtures/claude-code/messages-1.json
PREFIX=65536                 # what inspect.spoe sends: bytes(0,65536)
SPOE_CONF=$SRC/tests/integration/inspect.spoe
HAPROXY_CFG=$SRC/bench/haproxy-bench.cfg

build_tools realms-agent spop_bench
AGENT_BIN=$BUILD/realms-agent
BENCH_BIN=$BUILD/spop_bench

# field NAME LINE: the number after "NAME=" in spop_bench's text line.
field() { grep -o "$1=[0-9.]*" <<<"$2" | head -1 | cut -d= -f2; }

# ---------------------------------------------------------------- agent ---

start_spoa_agent() {
	AGENT_THREADS=$1
	AGENT_SOCK=$DIR/agent.sock
	AGENT_TCP=$(free_port) || die "no free port"
	AGENT_LOG=$DIR/agent-t$1.log
	spawn "agent-t$1" "$AGENT_BIN" -f -T -l "unix:$AGENT_SOCK" -l "127.0.0.1:$AGENT_TCP" -t "$1"
	AGENT_PID=$SPAWNED
	wait_file "$AGENT_SOCK" && wait_tcp "$AGENT_TCP" || die "agent (-t $1) did not start"
}

# The agent must be alive and must not have logged an error. Warnings are
# shown in the summary, and are not failures.
check_spoa_agent() {
	kill -0 "$AGENT_PID" 2>/dev/null || die "agent (-t $AGENT_THREADS) died: $1"
	if grep -qE '\] error: ' "$AGENT_LOG"; then
		die "agent (-t $AGENT_THREADS) logged errors during: $1"
	fi
}

WARNINGS=()
stop_agent() {
	local rc line
	check_spoa_agent "the run"
	stop_pid "$AGENT_PID"
	rc=$?
	[ $rc -eq 0 ] || die "agent (-t $AGENT_THREADS) exited with status $rc on SIGTERM"
	while IFS= read -r line; do
		WARNINGS+=("agent -t $AGENT_THREADS: ${line#* warning: }")
	done < <(grep -E '\] warning: ' "$AGENT_LOG")
}

# ----------------------------------------------------------- spop_bench ---

ROWS=()
N=0

# spop_case LABEL ADDR RUNS CONNS PIPELINE ARGS...: RUNS runs of spop_bench,
# the medians of each figure as one row of the summary.
spop_case() {
	local label=$1 addr=$2 runs=$3 conns=$4 pipe=$5 out rc t0 t1 line
	local rates=() p50s=() p99s=() acpu=() ccpu=() aop=()
	shift 5
	for _ in $(seq "$runs"); do
		N=$((N + 1))
		out=$DIR/spop.$N
		t0=$(cpu_ticks "$AGENT_PID")
		timeout $((SECS + 60)) "$BENCH_BIN" -a "$addr" -s "$SECS" -c "$conns" -p "$pipe" \
			-e "$MODEL" "$@" >"$out.out" 2>"$out.err"
		rc=$?
		t1=$(cpu_ticks "$AGENT_PID")
		line=$(cat "$out.out")
		if [ $rc -ne 0 ]; then
			echo "$line"; cat "$out.err"
			die "spop_bench -a $addr -c $conns -p $pipe $* (agent -t $AGENT_THREADS) exited with $rc"
		fi
		check_spoa_agent "spop_bench $label"
		echo "  $label ($addr) conns=${line#* conns=} agent_cpu=$(cpu_pct "$t0" "$t1" "$SECS")%" \
			"agent_us/op=$(cpu_per_op "$t0" "$t1" "$(field acks "$line")")"
		rates+=("$(field rate "$line")")
		p50s+=("$(field p50 "$line")")
		p99s+=("$(field p99 "$line")")
		ccpu+=("$(field client_cpu "$line")")
		acpu+=("$(cpu_pct "$t0" "$t1" "$SECS")")
		aop+=("$(cpu_per_op "$t0" "$t1" "$(field acks "$line")")")
	done
	ROWS+=("$(printf '%-16s %2s %6s %4s %10s %9s %9s %6s%% %6s%% %8s' "$label" "$AGENT_THREADS" \
		"${conns}x$pipe" "$runs" "$(median "${rates[@]}")" "$(median "${p50s[@]}")" \
		"$(median "${p99s[@]}")" "$(median "${acpu[@]}")" "$(median "${ccpu[@]}")" \
		"$(median "${aop[@]}")")")
	LAST_RATE=$(median "${rates[@]}")
}

echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(loadavg), $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(haproxy -v | head -1 | cut -d' ' -f1-3)"
echo "== spop_bench: ${SECS}s per run, medians of $RUNS runs for 4x16"

RATE_64K_T2=
for threads in 1 2; do
	start_spoa_agent "$threads"
	echo "-- agent -t $threads"
	spop_case "64KB prefix" "unix:$AGENT_SOCK" "$RUNS" 4 16 --body "$BODY" --prefix "$PREFIX"
	[ "$threads" = 2 ] && RATE_64K_T2=$LAST_RATE
	spop_case "tiny" "unix:$AGENT_SOCK" "$RUNS" 4 16 --tiny
	spop_case "64KB prefix" "unix:$AGENT_SOCK" 1 1 1 --body "$BODY" --prefix "$PREFIX"
	spop_case "tiny" "unix:$AGENT_SOCK" 1 1 1 --tiny
	if [ "$threads" = 2 ]; then
		spop_case "64KB prefix tcp" "127.0.0.1:$AGENT_TCP" 1 4 16 --body "$BODY" --prefix "$PREFIX"
	fi
	stop_agent
done

# --------------------------------------------------------------- HAProxy ---

# us VALUE: wrk's "1.23ms" / "850.00us" / "1.01s" in microseconds.
us() {
	awk -v v="$1" 'BEGIN {
		n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
		if (u == "us") f = 1; else if (u == "ms") f = 1000; else if (u == "s") f = 1000000; else f = 0
		printf "%.0f", n * f }'
}

HROWS=()
# wrk_case LABEL PORT: RUNS wrk runs; rejects any non-2xx answer or socket
# error (with the SPOE frontend, a 502 means a missing verdict).
declare -A WRK_RPS WRK_P50 WRK_P99 WRK_ACPU WRK_HCPU WRK_HOP WRK_AOP WRK_CONNS_SPOE
wrk_run() {
	local label=$1 port=$2 out a0 a1 h0 h1 rps bad nreq nspoe
	N=$((N + 1))
	out=$DIR/wrk.$N.out
	a0=$(cpu_ticks "$AGENT_PID"); h0=$(cpu_ticks "$HAPROXY_PID")
	BENCH_BODY=$BODY timeout $((SECS + 60)) wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${SECS}s" \
		--latency -s "$SRC/bench/post.lua" "http://127.0.0.1:$port/v1/messages?beta=true" \
		>"$out" 2>&1 || { cat "$out"; die "wrk on $label"; }
	a1=$(cpu_ticks "$AGENT_PID"); h1=$(cpu_ticks "$HAPROXY_PID")
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
	bad=$(awk '/Non-2xx/ { print $NF }' "$out")
	if [ -n "$bad" ] || grep -q 'Socket errors' "$out" || [ -z "$rps" ]; then
		cat "$out"
		die "wrk on $label: errors"
	fi
	kill -0 "$HAPROXY_PID" 2>/dev/null || die "haproxy died during $label"
	check_spoa_agent "wrk $label"
	WRK_RPS[$label]+=" $rps"
	WRK_P50[$label]+=" $(us "$(awk '$1 == "50%" { print $2 }' "$out")")"
	WRK_P99[$label]+=" $(us "$(awk '$1 == "99%" { print $2 }' "$out")")"
	WRK_ACPU[$label]+=" $(cpu_pct "$a0" "$a1" "$SECS")"
	WRK_HCPU[$label]+=" $(cpu_pct "$h0" "$h1" "$SECS")"
	nreq=$(awk '/ requests in / { print $1 }' "$out")
	# HAProxy's SPOE connections to the agent (it opens more under load,
	# and its own cost per request depends on how many it has)
	if command -v ss >/dev/null; then
		nspoe=$(ss -xH state connected src "$AGENT_SOCK" 2>/dev/null | wc -l)
	else
		nspoe="?"
	fi
	WRK_CONNS_SPOE[$label]+=" $nspoe"
	WRK_HOP[$label]+=" $(cpu_per_op "$h0" "$h1" "$nreq")"
	WRK_AOP[$label]+=" $(cpu_per_op "$a0" "$a1" "$nreq")"
	echo "  $label: $rps req/s, p50 $(awk '$1 == "50%" { print $2 }' "$out"), p99 $(awk '$1 == "99%" { print $2 }' "$out")," \
		"haproxy_cpu=$(cpu_pct "$h0" "$h1" "$SECS")% ($(cpu_per_op "$h0" "$h1" "$nreq") us/req)" \
		"agent_cpu=$(cpu_pct "$a0" "$a1" "$SECS")% ($(cpu_per_op "$a0" "$a1" "$nreq") us/req)" \
		"spoe_conns=$nspoe"
}

echo "== HAProxy + wrk: ${SECS}s per run, $RUNS runs each, wrk -t$WRK_THREADS -c$WRK_CONNS, 85 KB body"
start_spoa_agent 2
FE_SPOE_PORT=$(free_port) && FE_PLAIN_PORT=$(free_port) || die "no free port"
export FE_SPOE_PORT FE_PLAIN_PORT AGENT_SOCK SPOE_CONF
haproxy -c -f "$HAPROXY_CFG" >"$DIR/haproxy-check.log" 2>&1 || die "haproxy -c"
spawn haproxy haproxy -db -f "$HAPROXY_CFG"
HAPROXY_PID=$SPAWNED
wait_tcp "$FE_SPOE_PORT" && wait_tcp "$FE_PLAIN_PORT" || die "haproxy did not start"

# One verdict through the chain before measuring (bounded: the health check
# must first see the agent).
post() {
	curl -sS -o /dev/null -D - --max-time 5 -H 'content-type: application/json' \
		--data-binary "@$BODY" "http://127.0.0.1:$1/v1/messages?beta=true" 2>/dev/null | tr -d '\r'
}
for _ in $(seq 50); do
	post "$FE_SPOE_PORT" | grep -qix "x-model: $MODEL" && break
	sleep 0.2
done
post "$FE_SPOE_PORT" | grep -qix "x-model: $MODEL" || die "no verdict through the SPOE frontend"
post "$FE_PLAIN_PORT" | grep -q '^HTTP/1.1 200' || die "baseline frontend does not answer 200"

for _ in $(seq "$RUNS"); do
	wrk_run "without agent" "$FE_PLAIN_PORT"
	wrk_run "with agent" "$FE_SPOE_PORT"
done
for label in "without agent" "with agent"; do
	# shellcheck disable=SC2086 # word splitting of the collected values
	HROWS+=("$(printf '%-16s %10s %9s %9s %7s%% %6s%% %9s %8s %6s' "$label" \
		"$(median ${WRK_RPS[$label]})" "$(median ${WRK_P50[$label]})" \
		"$(median ${WRK_P99[$label]})" "$(median ${WRK_HCPU[$label]})" \
		"$(median ${WRK_ACPU[$label]})" "$(median ${WRK_HOP[$label]})" \
		"$(median ${WRK_AOP[$label]})" \
		"$([ "$label" = "with agent" ] && median ${WRK_CONNS_SPOE[$label]} || echo -)")")
done
RPS_SPOE=$(median ${WRK_RPS["with agent"]})
stop_pid "$HAPROXY_PID"
stop_agent

# ---------------------------------------------------------------- summary ---

echo
echo "== spop_bench -> realms-agent (unix socket unless noted; medians)"
printf '%-16s %2s %6s %4s %10s %9s %9s %7s %7s %8s\n' body thr CxP runs NOTIFY/s p50_us p99_us agent client agent_us
printf '%s\n' "${ROWS[@]}"
echo
echo "== wrk -> HAProxy (85 KB POST; agent -t 2; medians of $RUNS)"
printf '%-16s %10s %9s %9s %8s %7s %9s %8s %6s\n' frontend req/s p50_us p99_us haproxy agent hap_us agent_us spoe_c
printf '%s\n' "${HROWS[@]}"
echo
if [ ${#WARNINGS[@]} -gt 0 ]; then
	echo "agent warnings:"
	printf '  %s\n' "${WARNINGS[@]}"
else
	echo "agent warnings: none"
fi
echo "load average at the end: $(loadavg)"
echo "(agent, client, haproxy: % of one core; *_us: CPU microseconds per NOTIFY or request;"
echo " spoe_c: HAProxy's SPOE connections to the agent after the run)"
awk -v a="$RATE_64K_T2" -v h="$RPS_SPOE" 'BEGIN {
	printf "ratio: agent NOTIFY/s (64KB, -t 2, 4x16) / HAProxy req/s with agent = %.0f / %.0f = %.2f\n", a, h, (h > 0 ? a / h : 0) }'
