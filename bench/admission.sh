#!/usr/bin/env bash
# The cost of limits (docs/benchmarks.md, "Admission"): the same captured
# Claude Code request (85 KB body, streamed answer) through the whole
# gateway, in one run, with two tokens:
#   u. a token without limits (no Redis round trip for admission);
#   l. a token with every limit (usd/5h, day, week, month, rpm, concurrency,
#      set far above what the run spends): one admission script per request
#      before the verdict, and its settlement in the record's commit.
# Each case runs with BENCH_CONNS connections and with 1, BENCH_RUNS times,
# alternating; medians are reported, with the differences l - u in time to
# first byte and in agent and Redis CPU per request. Every answer must be
# billed once, and the limited token's spend counter must equal its cost.
#
# Usage: bash bench/admission.sh   (or `make bench-admission`)
# Environment: BUILD, BENCH_SECONDS (per run, default 10), BENCH_RUNS
# (default 3), BENCH_CONNS (default 16), TMPDIR, KEEP_BENCH_DIR=1.
# shellcheck disable=SC2034 # NAME is read by lib.sh
NAME=admission
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build_tools
machine_line
start_redis
start_mock
start_agent
start_realms c "$SRC/haproxy/realms.cfg" "$MIRROR_ADDR"
TOKEN_U=$TOKEN
TOKEN_L=$(REALMS_REDIS=127.0.0.1:$REDIS_PORT "$BUILD/realmsctl" token add --name "bench-lim-$$" \
	--limit usd/5h=100000 --limit usd/day=100000 --limit usd/week=100000 \
	--limit usd/month=100000 --limit rpm=100000000 --limit concurrency=100000 \
	2>"$DIR/token.err") || { cat "$DIR/token.err" >&2; die "realmsctl token add (limits)"; }
declare -A TOK=([u]=$TOKEN_U [l]=$TOKEN_L)
declare -A LABEL=([u]="u. token without limits" [l]="l. token with every limit")
PORT=${HP_PORT[c]}

# headers_for K: the request's headers with case K's token.
headers_for() { TOKEN=${TOK[$1]}; request_headers; }

for k in u l; do
	headers_for "$k"
	mk0=$(mock_stat 200)
	for _ in $(seq 50); do probe "$PORT" "$DIR/probe-$k" 2>/dev/null && break; sleep 0.2; done
	probe "$PORT" "$DIR/probe-$k" || die "no whole 200 event stream for ${LABEL[$k]}"
	EXPECT_BILLED=$((EXPECT_BILLED + $(mock_stat 200) - mk0))
done
echo "== ${SECS}s per run, $RUNS runs of each case, $CONNS connections and 1, cases alternating"

N=0
declare -A R_RATE R_T50 R_T99 R_AGENT R_REDIS
run_case() {
	local k=$1 c=$2 key=$1$2 out line ok mk0 mk1 a0 a1 r0 r1
	N=$((N + 1))
	out=$DIR/hb.$N
	headers_for "$k"
	mk0=$(mock_stat 200)
	a0=$(cpu_ticks "$AGENT_PID"); r0=$(cpu_ticks "$REDIS_PID")
	hbench "$PORT" "$out" -c "$c" -s "$SECS"
	line=$(cat "$out.out")
	ok=$(hb ok "$line")
	mk1=$(mock_stat 200)
	[ $((mk1 - mk0)) -eq "$ok" ] ||
		die "${LABEL[$k]}: the client got $ok answers, the mock sent $((mk1 - mk0))"
	EXPECT_BILLED=$((EXPECT_BILLED + ok))
	settle_billing "${LABEL[$k]}, run $N"
	a1=$(cpu_ticks "$AGENT_PID"); r1=$(cpu_ticks "$REDIS_PID")
	check_agent "${LABEL[$k]}"
	R_RATE[$key]+=" $(hb rate "$line")"
	R_T50[$key]+=" $(hb ttfb_p50 "$line")"
	R_T99[$key]+=" $(hb ttfb_p99 "$line")"
	R_AGENT[$key]+=" $(cpu_per_op "$a0" "$a1" "$ok")"
	R_REDIS[$key]+=" $(cpu_per_op "$r0" "$r1" "$ok")"
	printf '  %-26s c=%-3s %7s req/s  ttfb p50 %6s p99 %6s us  agent %s us/req redis %s us/req\n' \
		"${LABEL[$k]}" "$c" "$(hb rate "$line")" "$(hb ttfb_p50 "$line")" "$(hb ttfb_p99 "$line")" \
		"$(cpu_per_op "$a0" "$a1" "$ok")" "$(cpu_per_op "$r0" "$r1" "$ok")"
}

for k in u l; do
	N=$((N + 1))
	headers_for "$k"
	mk0=$(mock_stat 200)
	hbench "$PORT" "$DIR/warm.$N" -c "$CONNS" -s 2
	EXPECT_BILLED=$((EXPECT_BILLED + $(mock_stat 200) - mk0))
done
settle_billing "warm-up"

for r in $(seq "$RUNS"); do
	echo "-- round $r of $RUNS"
	for k in u l; do run_case "$k" "$CONNS"; done
	for k in u l; do run_case "$k" 1; done
done

# The limited token's spend equals what its records cost, and nothing is
# left reserved or in flight.
seg="bench-lim-$$"
spent=$(rcli GET "realms:spend:t:$seg:d$(date -u +%Y%m%d)")
cost=$(rcli HGET "realms:usage:token:$seg:$(date -u +%Y%m%d)" cost_nusd)
[ -n "$spent" ] && [ "$spent" = "$cost" ] ||
	die "the limited token's day spend ($spent) differs from its billed cost ($cost)"
[ "$(rcli HLEN "realms:inflight:$seg")" = 0 ] && [ "$(rcli HLEN "realms:resv:t:$seg")" = 0 ] ||
	die "holds left after the run"

# shellcheck disable=SC2086 # word splitting of the collected values
med() { local -n arr=$1; median ${arr[$2]}; }
diff_of() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", a - b }'; }
echo
echo "== admission: medians of $RUNS runs of ${SECS}s"
printf '%-26s %5s %9s %9s %9s %9s %9s\n' case conns req/s ttfb_p50 ttfb_p99 agent redis
for c in "$CONNS" 1; do
	for k in u l; do
		printf '%-26s %5s %9s %9s %9s %9s %9s\n' "${LABEL[$k]}" "$c" "$(med R_RATE "$k$c")" \
			"$(med R_T50 "$k$c")" "$(med R_T99 "$k$c")" "$(med R_AGENT "$k$c")" \
			"$(med R_REDIS "$k$c")"
	done
done
echo "(ttfb: microseconds; agent, redis: CPU microseconds per request)"
for c in "$CONNS" 1; do
	echo "limits at $c connection(s): req/s l/u $(ratio "$(med R_RATE "l$c")" "$(med R_RATE "u$c")")," \
		"TTFB p50 $(diff_of "$(med R_T50 "l$c")" "$(med R_T50 "u$c")") us," \
		"p99 $(diff_of "$(med R_T99 "l$c")" "$(med R_T99 "u$c")") us," \
		"agent $(diff_of "$(med R_AGENT "l$c")" "$(med R_AGENT "u$c")") us/req," \
		"redis $(diff_of "$(med R_REDIS "l$c")" "$(med R_REDIS "u$c")") us/req"
done
echo "billing: every answer counted once; the limited token's spend = its cost ($spent nano-USD)"
echo "load average at the end: $(loadavg)"
