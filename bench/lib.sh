# shellcheck shell=bash
# Shared by the scripts of bench/ (run.sh, datapath.sh, tap.sh,
# admission.sh, streams.sh). Source it; never run it.
#
# Starts the whole gateway as an operator runs it (Redis, the mock upstream,
# realms-agent with its mirror, HAProxy with haproxy/realms.cfg and the
# channel part rendered by realmsctl), plus what the benchmarks compare it
# with. Everything listens on 127.0.0.1, on ports found free below the
# ephemeral range, or on a unix socket in a scratch directory; every process
# is stopped by PID at exit; every wait is bounded; any failure stops the
# script with the logs that tell why.
#
# The helpers it shares with the integration tests (free ports, waits,
# processes by PID, Redis) are in tests/lib/helpers.sh.
#
# The caller sets NAME (used in messages and the scratch directory's name)
# before sourcing, and NEEDS (the commands it runs) unless it starts the
# whole gateway.
set -uo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$SRC/build}
case $BUILD in /*) ;; *) BUILD=$SRC/$BUILD ;; esac
SECS=${BENCH_SECONDS:-10}
RUNS=${BENCH_RUNS:-3}
CONNS=${BENCH_CONNS:-16}
FIXTURE=$SRC/tests/fixtures/claude-code/messages-1
MODEL=claude-sonnet-4-5            # that fixture's model
UPSTREAM_MODEL=claude-sonnet-4-5-20250929
CLK_TCK=$(getconf CLK_TCK)

for t in ${NEEDS:-haproxy redis-server redis-cli curl timeout}; do
	command -v "$t" >/dev/null || { echo "$NAME: $t not found (make deps)" >&2; exit 1; }
done

# Free ports, bounded waits, processes by PID, Redis: shared with the
# integration tests.
# shellcheck source=tests/lib/helpers.sh
. "$SRC/tests/lib/helpers.sh"

DIR=$(mktemp -d "${TMPDIR:-/tmp}/realms-$NAME.XXXXXX") || exit 1
SCRATCH=$DIR   # helpers.sh: spawn's logs, Redis's directory
PIDS=()        # helpers.sh: stopped at exit, the last started first

# Stops everything, the last started first (HAProxy before the agent, the
# agent before Redis).
cleanup() {
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[$i]}"; done
	if [ -n "${KEEP_BENCH_DIR:-}" ]; then echo "kept $DIR"; else rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# die MESSAGE: stops everything, shows the logs that tell why.
die() {
	local f
	echo "$NAME: FAILED: $*" >&2
	for f in "$DIR"/*.log; do
		[ -s "$f" ] && { echo "--- $(basename "$f") (last 20 lines)" >&2; tail -20 "$f" >&2; }
	done
	exit 1
}

# build_tools [TARGET...]: in an existing build tree, the binaries used
# (by default those of the whole gateway and http_bench) are brought up to
# date; otherwise the Makefile configures and builds one.
build_tools() {
	local targets=("$@")
	[ $# -gt 0 ] || targets=(realms-agent realmsctl mock_upstream http_bench)
	if [ -f "$BUILD/CMakeCache.txt" ]; then
		cmake --build "$BUILD" -j2 --target "${targets[@]}" \
			>"$DIR/build.out" 2>&1 ||
			{ tail -30 "$DIR/build.out" >&2; echo "$NAME: build failed" >&2; exit 1; }
	else
		make -C "$SRC" build BUILD="$BUILD" || exit 1
	fi
}

# CPU time of a process so far, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# cpu_per_op T0 T1 OPS: CPU microseconds per operation. Unlike rates, this
# hardly moves when other processes take the cores.
cpu_per_op() { awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" -v n="$3" 'BEGIN { printf "%.1f", (n > 0 ? 1e6 * (b - a) / hz / n : 0) }'; }
# cpu_pct T0 T1 SECONDS: % of one core.
cpu_pct() { awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" -v s="$3" 'BEGIN { printf "%.0f", (s > 0 ? 100 * (b - a) / hz / s : 0) }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
# ratio A B: A / B with 2 decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

# hb FIELD LINE: a figure of http_bench's text line. FIELD is rate, ok,
# requests, body, wire, errors, non2xx, client_cpu, or ttfb_p50, ttfb_p99,
# total_p50, ... (the p* keys follow "ttfb_us" or "total_us" in the line).
hb() {
	awk -v want="$1" '{
		pre = ""
		for (i = 1; i <= NF; i++) {
			if ($i == "ttfb_us") { pre = "ttfb_"; continue }
			if ($i == "total_us") { pre = "total_"; continue }
			if ($i !~ /=/) continue
			k = substr($i, 1, index($i, "=") - 1)
			v = substr($i, index($i, "=") + 1)
			if (k !~ /^p[0-9]+$|^max$/) pre = ""
			if (pre k == want) { gsub(/[^0-9.]/, "", v); print v; exit }
		}
	}' <<<"$2"
}

machine_line() {
	echo "== $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(loadavg), $(nproc) cores" \
		"($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(haproxy -v | head -1 | cut -d' ' -f1-3)," \
		"$(redis-server --version | cut -d' ' -f1-3)"
}

# ------------------------------------------------------------ servers ---

# start_redis and rcli: tests/lib/helpers.sh.

# start_mock: the mock upstream. Sets MOCK_PORT, MOCK_PID.
start_mock() {
	MOCK_PORT=$(free_port) || die "no free port"
	spawn mock "$BUILD/mock_upstream" -l "127.0.0.1:$MOCK_PORT" -n bench
	MOCK_PID=$SPAWNED
	wait_tcp "$MOCK_PORT" || die "the mock upstream did not start"
}
# mock_stat KEY: a counter of the mock's /mock/stats: requests, 200 (the
# 200 answers to /v1/messages, streams included), out (output tokens it
# reported in those answers).
mock_stat() {
	local j
	j=$(curl -sS --max-time 5 "http://127.0.0.1:$MOCK_PORT/mock/stats") || die "mock stats"
	case $1 in
		200) sed -n 's/.*"by_status":{[^}]*"200":\([0-9]*\).*/\1/p' <<<"$j" | grep . || echo 0 ;;
		out) sed -n 's/.*"usage":{[^}]*"out":\([0-9]*\).*/\1/p' <<<"$j" ;;
		*) sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$j" | head -1 ;;
	esac
}

# start_agent: realms-agent with the configuration below, its SPOP and
# mirror sockets in DIR. Sets AGENT_PID, AGENT_SOCK, MIRROR_ADDR, TOKEN (a
# token of the group "default": one channel with two credentials, a pool)
# and TOKEN_SINGLE (group "single": a channel with one credential). Both
# channels are the mock; their name for the model differs from the public
# one, so every body is rewritten, as with a real provider.
start_agent() {
	MIRROR_ADDR=$DIR/mirror.sock
	AGENT_SOCK=$DIR/agent.sock
	mkdir -p "$DIR/spool"
	cat >"$DIR/realms.json" <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "agent": { "threads": 1, "mirror": "$MIRROR_ADDR", "spool": "$DIR/spool" },
  "groups": ["default", "single"],
  "models": [ {"name": "$MODEL", "enabled": true} ],
  "channels": [
    {"name": "mock", "base_url": "http://127.0.0.1:$MOCK_PORT", "groups": ["default"],
     "credentials": [{"name": "k1", "key": "sk-bench-upstream"},
                     {"name": "k2", "key": "sk-bench-upstream-2"}],
     "models": {"$MODEL": "$UPSTREAM_MODEL"}},
    {"name": "mock1", "base_url": "http://127.0.0.1:$MOCK_PORT", "groups": ["single"],
     "credentials": [{"name": "s1", "key": "sk-bench-upstream-3"}],
     "models": {"$MODEL": "$UPSTREAM_MODEL"}}
  ]
}
JSON
	launch_agent
	TOKEN_SINGLE=$(REALMS_REDIS=127.0.0.1:$REDIS_PORT "$BUILD/realmsctl" token add \
		--name "bench-single-$$" --group single 2>"$DIR/token.err") ||
		{ cat "$DIR/token.err" >&2; die "realmsctl token add --group single"; }
}

# spawn_agent LABEL CONFIG SOCK MIRROR: realms-agent with CONFIG (checked
# first; its output in DIR/LABEL-check.out), its SPOP socket SOCK, its log
# DIR/LABEL.log; returns once SOCK and its mirror MIRROR exist. Sets
# SPAWNED.
spawn_agent() {
	local label=$1 cfg=$2 sock=$3 mirror=$4
	"$BUILD/realms-agent" -c "$cfg" --check >"$DIR/$label-check.out" 2>&1 ||
		{ cat "$DIR/$label-check.out" >&2; die "the agent ($label) refused its configuration"; }
	spawn "$label" "$BUILD/realms-agent" -f -c "$cfg" -l "unix:$sock"
	wait_file "$sock" && wait_file "$mirror" || die "the agent ($label) did not start"
}

# launch_agent: realms-agent with DIR/realms.json (its mirror MIRROR_ADDR,
# its SPOP socket AGENT_SOCK), the channel part rendered into DIR/hp, and a
# client token of the default group. Sets AGENT_PID and TOKEN.
launch_agent() {
	spawn_agent agent "$DIR/realms.json" "$AGENT_SOCK" "$MIRROR_ADDR"
	AGENT_PID=$SPAWNED
	mkdir -p "$DIR/hp"
	cp "$SRC/haproxy/realms.spoe" "$DIR/hp/"
	"$BUILD/realmsctl" -c "$DIR/realms.json" render-haproxy -o "$DIR/hp/channels.cfg" \
		--setup-page "$DIR/hp/setup.html" >"$DIR/render.out" 2>&1 ||
		{ cat "$DIR/render.out" >&2; die "realmsctl render-haproxy"; }
	TOKEN=$(REALMS_REDIS=127.0.0.1:$REDIS_PORT "$BUILD/realmsctl" token add --name "bench-$$" 2>"$DIR/token.err") ||
		{ cat "$DIR/token.err" >&2; die "realmsctl token add"; }
}

# The agent must be alive and must not have logged an error.
check_agent() {
	kill -0 "$AGENT_PID" 2>/dev/null || die "the agent died during $1"
	grep -qE '\] error: ' "$DIR/agent.log" && die "the agent logged errors during $1"
	return 0
}

# start_realms LABEL CFG MIRROR [CHANNELS]: HAProxy with CFG
# (haproxy/realms.cfg or a copy) and the rendered channels (DIR/hp/channels.cfg
# or the copy CHANNELS), as an operator runs it; MIRROR is the value of
# REALMS_MIRROR ("" leaves it unset). The agent it asks is AGENT_SOCK's
# (another for one call: AGENT_SOCK=PATH start_realms ...). Its stderr (the
# request log) is appended to DIR/haproxy-LABEL.log. Sets HP_PID[LABEL],
# HP_PORT[LABEL].
declare -A HP_PID HP_PORT
start_realms() {
	local label=$1 cfg=$2 mirror=$3 channels=${4:-$DIR/hp/channels.cfg} port
	port=$(free_port) || die "no free port"
	local -a env=(REALMS_LISTEN="127.0.0.1:$port" REALMS_AGENT_ADDR="unix@$AGENT_SOCK"
		REALMS_HAPROXY_DIR="$DIR/hp" REALMS_LUA="$SRC/lua-shim/realms.lua"
		REALMS_RELAY="$DIR/relay-$port.sock" REALMS_PASS_HEADERS="x-mock-[a-z-]+")
	if [ -n "$mirror" ]; then env+=(REALMS_MIRROR="$mirror"); fi
	# The allocator settings the haproxy.service drop-in gives HAProxy.
	mapfile -t -O "${#env[@]}" env < <(env_file "$SRC/haproxy/malloc.env")
	env -u REALMS_MIRROR "${env[@]}" haproxy -c -f "$cfg" -f "$channels" \
		>"$DIR/haproxy-$label-check.out" 2>&1 ||
		{ cat "$DIR/haproxy-$label-check.out" >&2; die "haproxy -c ($label)"; }
	env -u REALMS_MIRROR "${env[@]}" haproxy -db -f "$cfg" -f "$channels" \
		>>"$DIR/haproxy-$label.log" 2>&1 &
	HP_PID[$label]=$!
	HP_PORT[$label]=$port
	PIDS+=("$!")
	wait_tcp "$port" || die "haproxy ($label) did not start"
}

# start_passthrough LABEL [CFG] [ENVFILE]: bench/passthrough.cfg (or the copy
# CFG), a plain HTTP proxy to the mock; HAProxy gets ENVFILE's variables
# (haproxy/malloc.env, to compare like with like). Sets HP_PID[LABEL],
# HP_PORT[LABEL].
start_passthrough() {
	local label=$1 cfg=${2:-$SRC/bench/passthrough.cfg} port
	local -a env
	port=$(free_port) || die "no free port"
	env=(BENCH_LISTEN=127.0.0.1:$port BENCH_UPSTREAM=127.0.0.1:$MOCK_PORT)
	[ -z "${3:-}" ] || mapfile -t -O "${#env[@]}" env < <(env_file "$3")
	env "${env[@]}" haproxy -c -f "$cfg" >"$DIR/haproxy-$label-check.out" 2>&1 ||
		{ cat "$DIR/haproxy-$label-check.out" >&2; die "haproxy -c ($label)"; }
	env "${env[@]}" haproxy -db -f "$cfg" >>"$DIR/haproxy-$label.log" 2>&1 &
	HP_PID[$label]=$!
	HP_PORT[$label]=$port
	PIDS+=("$!")
	wait_tcp "$port" || die "haproxy ($label) did not start"
}

# The request: the captured Claude Code request (its headers, with the
# token created above, and its 85 KB streaming body) to /v1/messages.
# Sets REQ_H (http_bench -H arguments) and CURL_H (curl's).
request_headers() {
	local line
	REQ_H=()
	CURL_H=()
	while IFS= read -r line || [ -n "$line" ]; do
		line=${line%$'\r'}
		[ -z "$line" ] && continue
		case "$line" in
			POST*|GET*|Host:*|Content-Length:*|Connection:*) continue ;;
			Authorization:*) line="Authorization: Bearer $TOKEN" ;;
		esac
		REQ_H+=(-H "$line")
		CURL_H+=(-H "$line")
	done <"$FIXTURE.http"
	for line in "$@"; do
		REQ_H+=(-H "$line")
		CURL_H+=(-H "$line")
	done
}

# probe PORT OUT: one request with curl; the answer's head and body land in
# OUT.h and OUT.b. Fails unless it is a whole 200 event stream.
probe() {
	curl -sS -N --max-time 20 -D "$2.h" -o "$2.b" "${CURL_H[@]}" \
		--data-binary "@$FIXTURE.json" "http://127.0.0.1:$1/v1/messages?beta=true" \
		2>"$2.err" || { cat "$2.err" >&2; return 1; }
	head -1 "$2.h" | grep -q '^HTTP/1.1 200' || { cat "$2.h" "$2.b" >&2; return 1; }
	grep -qi '^content-type: text/event-stream' "$2.h" || { cat "$2.h" >&2; return 1; }
	tail -c 200 "$2.b" | grep -q 'message_stop' || { tail -c 300 "$2.b" >&2; return 1; }
}

# hbench PORT OUT ARGS...: http_bench with the request above, bounded; its
# line in OUT.out. Any non-2xx answer, error, or stream without its final
# event fails the script.
hbench() {
	local port=$1 out=$2 rc
	shift 2
	timeout $((SECS + 90)) "$BUILD/http_bench" -a "127.0.0.1:$port" -P '/v1/messages?beta=true' \
		"${REQ_H[@]}" -b "$FIXTURE.json" -e message_stop "$@" >"$out.out" 2>"$out.err"
	rc=$?
	if [ $rc -ne 0 ]; then
		cat "$out.out" "$out.err" >&2
		die "http_bench on port $port exited with $rc"
	fi
}

# billed: requests counted in Redis for the model, today (UTC) and the day
# before (a run across midnight).
billed_field() {
	local d v sum=0
	for d in "$(date -u -d yesterday +%Y%m%d)" "$(date -u +%Y%m%d)"; do
		v=$(rcli HGET "realms:usage:model:$MODEL:$d" "$1")
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

# wait_billed N: until Redis counts N requests (bounded: 120 s), then a
# moment more to catch a double count. Prints the count.
wait_billed() {
	local n
	for _ in $(seq 600); do
		n=$(billed_field requests)
		[ "$n" -ge "$1" ] && break
		sleep 0.2
	done
	sleep 0.5
	billed_field requests
}

# Billing: every answer the mock sends through the gateway must be counted
# once in Redis. EXPECT_BILLED is the number of such answers so far (the
# callers add each run's); settle_billing waits for Redis to reach it and
# fails if it counts more or less, or if any record is partial.
EXPECT_BILLED=0
settle_billing() {
	local n p
	n=$(wait_billed "$EXPECT_BILLED")
	[ "$n" -eq "$EXPECT_BILLED" ] ||
		die "$1: Redis billed $n requests, the mock answered $EXPECT_BILLED through the gateway"
	p=$(billed_field partial)
	[ "$p" -eq 0 ] || die "$1: Redis recorded $p partial answers ($(partial_reasons))"
}

# partial_reasons [N]: why records were partial, the count of each reason
# among the last N events (default 1000), and what the tap logged.
partial_reasons() {
	rcli XREVRANGE realms:usage:events + - COUNT "${1:-1000}" |
		awk 'prev == "partial" && $0 != "" { n[$0]++ } { prev = $0 }
		     END { for (r in n) printf "%s%s: %d", (s++ ? ", " : ""), r, n[r] }'
	grep -h 'realms-tap: mirror buffer full' "$DIR"/haproxy-*.log 2>/dev/null | wc -l |
		awk '$1 > 0 { printf "; HAProxy logged \"mirror buffer full\" %d times", $1 }'
}
