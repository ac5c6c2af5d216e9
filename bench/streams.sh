#!/usr/bin/env bash
# Memory per concurrent stream: what HAProxy and the agent hold while N
# streams of the captured Claude Code request (tests/fixtures/claude-code/
# messages-1, its headers with a real token, its 85 KB streaming body) are
# held open by a slow upstream, in one run, cases alternating:
#   b. a plain HAProxy pass-through (bench/passthrough.cfg);
#   c. the whole Realms gateway: haproxy/realms.cfg with the rendered
#      channel part, realms-agent with its mirror, Redis, a token;
# and, with STREAMS_VARIANTS, the same gateway with one thing removed (a
# copy in the scratch directory, never the repository's files):
#   c-noretry  the rendered channels without the pools' `retry-on` line;
#   c-notap    realms.cfg with `filter lua.realms-guard-rewrite-outcome` (all but the tap)
#              for `filter lua.realms-guard-tap-rewrite-outcome` (nothing billed);
#   c-neither  both removed.
# A variant whose line is not there is skipped, and says so.
#
# Every run starts a fresh HAProxy (memory must not carry over), with a
# copy of its configuration that adds a global section: a maxconn sized for
# N and a stats socket (for `show pools`). It warms up with a few requests,
# reads the resident memory (VmRSS, and Pss from smaps_rollup) of HAProxy
# and of the agent, then opens N connections, one request each, started at
# STREAMS_RATE per second. The mock holds every stream in two phases:
#   1. waiting for the first byte (x-mock-first-byte-delay-ms): measured
#      once the mock has the N requests and memory is stable;
#   2. streaming slowly (x-mock-delay-ms between events): measured once
#      the mock has sent the N status lines and memory is stable, before
#      the first stream can end.
# Then every stream ends: each must be a whole 200 event stream, and Redis
# must bill exactly the answers the mock sent through the tap, each once,
# none partial. KB per stream = (RSS at the plateau - RSS before) / N;
# medians over BENCH_RUNS runs; the ratio is to the plain HAProxy's.
#
# The streams are HTTP/1.1 connections of bench/http_bench, one a stream,
# unless STREAMS_H2=1: then the client side is HTTP/2 with prior knowledge
# (h2c, which HAProxy detects on its clear-text bind), 100 streams on each
# connection (HAProxy's tune.h2.max-concurrent-streams), opened by one curl
# process per 100 streams (--parallel, a -K file with one entry a stream),
# each sending the same request, its answers written to files and checked.
# HAProxy then holds one descriptor a stream (upstream) and one per 100.
#
# The script raises the open-file limit to fit N (2 descriptors a stream in
# HAProxy on the gateway's straight path over HTTP/1.1: client, upstream; 1
# over HTTP/2); raising it above the hard limit needs CAP_SYS_RESOURCE.
# When N streams over HTTP/1.1 cannot fit under the hard limit, the script
# goes over HTTP/2 by itself, and says so.
#
# Usage: bash bench/streams.sh   (or `make bench-streams`)
# Environment: BUILD (build directory, default ./build), BENCH_RUNS (default
# 3), STREAMS_N (concurrent streams, default 1000), STREAMS_RATE (streams
# opened per second, default 200), STREAMS_SETTLE (seconds each phase lasts
# beyond the time the N streams take to open, default 15), STREAMS_DELTAS
# and STREAMS_DELTA_BYTES (the answer, default 20 x 24 bytes),
# STREAMS_VARIANTS (any of c-noretry c-notap c-neither, or "all"; default
# none), STREAMS_H2 (1: the client side over HTTP/2; default: only when
# HTTP/1.1 cannot fit), TMPDIR, KEEP_BENCH_DIR=1.
# shellcheck disable=SC2034 # NAME and NEEDS are read by lib.sh
NAME=streams
NEEDS="haproxy redis-server redis-cli curl timeout python3"
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N=${STREAMS_N:-1000}
RATE=${STREAMS_RATE:-200}
SETTLE=${STREAMS_SETTLE:-15}
DELTAS=${STREAMS_DELTAS:-20}
DBYTES=${STREAMS_DELTA_BYTES:-24}
VARIANTS=${STREAMS_VARIANTS:-}
[ "$VARIANTS" = all ] && VARIANTS="c-noretry c-notap c-neither"
for v in N:N RATE:RATE SETTLE:SETTLE DELTAS:DELTAS DBYTES:DELTA_BYTES; do
	var=${v%%:*}
	[[ "${!var}" =~ ^[1-9][0-9]*$ ]] || die "STREAMS_${v#*:} must be a positive integer"
done
for v in $VARIANTS; do
	case $v in c-noretry|c-notap|c-neither) ;; *) die "STREAMS_VARIANTS: unknown '$v'" ;; esac
done

# Open files: over HTTP/1.1, HAProxy needs 2 a stream (client, upstream:
# the gateway sends a request straight to its channel; measured below, at
# the plateau) and about a thousand more to spare (listeners, agent,
# mirror, checks); the client and the mock one a stream each. Over HTTP/2,
# HAProxy needs one a stream (upstream) and one per H2_PER streams
# (client). They all inherit this limit. Raising the hard limit needs
# CAP_SYS_RESOURCE.
H2=${STREAMS_H2:-}
[[ "$H2" =~ ^[01]?$ ]] || die "STREAMS_H2 must be 0 or 1"
H2_PER=100
H2_NOTE=""
hard=$(ulimit -Hn)
fds_for() { if [ "$1" = 1 ]; then echo $((N + (N + H2_PER - 1) / H2_PER + 1024)); else echo $((2 * N + 1024)); fi; }
fits() { [ "$hard" = unlimited ] || [ "$hard" -ge "$1" ] || (ulimit -Hn "$1" 2>/dev/null); }
if [ -z "$H2" ]; then
	H2=0
	if ! fits "$(fds_for 0)"; then
		H2=1
		H2_NOTE="$N streams over HTTP/1.1 need $(fds_for 0) open files (2 a stream in HAProxy), above the hard limit $hard: the client side goes over HTTP/2"
	fi
fi
FDS=$(fds_for "$H2")
MAXCONN=$((2 * N + 500))
if [ "$hard" != unlimited ] && [ "$hard" -lt "$FDS" ]; then
	ulimit -Hn "$FDS" 2>/dev/null ||
		die "$N streams need $FDS open files ($([ "$H2" = 1 ] && echo "1 a stream in HAProxy over HTTP/2" || echo "2 a stream in HAProxy over HTTP/1.1; STREAMS_H2=1 needs 1"));" \
			"the hard limit is $hard and cannot be raised here (root without CAP_SYS_RESOURCE?):" \
			"at most $([ "$H2" = 1 ] && echo $(((hard - 1024) * H2_PER / (H2_PER + 1))) || echo $(((hard - 1024) / 2))) streams"
fi
[ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$FDS" ] && ulimit -Sn "$FDS"
# HAProxy sizes its descriptor table (and raises its own limit, or refuses
# to start) at twice maxconn and some: over HTTP/2, maxconn (client
# connections) need not be near N, so it is lowered to fit the limit.
soft=$(ulimit -Sn)
if [ "$H2" = 1 ] && [ "$soft" != unlimited ] && [ $((2 * MAXCONN + 1100)) -gt "$soft" ]; then
	MAXCONN=$(((soft - 1100) / 2))
fi

# Timing: the streams open in OPEN_S seconds; each phase lasts HOLD_S (the
# time to open them all and STREAMS_SETTLE more to measure) from the moment
# the mock has the request. The mock's limits: MU_DELAY_MAX_MS 600 s, idle
# 120 s (not counted while a stream is held).
OPEN_S=$(((N + RATE - 1) / RATE))
HOLD_S=$((OPEN_S + SETTLE))
[ "$HOLD_S" -le 110 ] || die "each phase would last ${HOLD_S}s: raise STREAMS_RATE or lower STREAMS_SETTLE"
FB_MS=$((HOLD_S * 1000))
DELAY_MS=$((HOLD_S * 1000 / (DELTAS + 5)))   # DELTAS + 6 events, DELTAS + 5 pauses

# shellcheck disable=SC2119 # the defaults: no arguments
build_tools
machine_line
# shellcheck disable=SC2119
start_redis || die "redis did not start"
start_mock
start_agent

# ------------------------------------------------------------ configs ---
# global_extra LABEL: the section appended to every copy.
global_extra() {
	printf '\n# Added by bench/streams.sh\nglobal\n    maxconn %d\n    stats socket "%s" mode 600 level admin\n' \
		"$MAXCONN" "$DIR/stats-$1.sock"
}
# drop_line FILE REGEX OUT: FILE without the lines matching REGEX; fails
# (without writing OUT) unless exactly one line went.
drop_line() {
	local n
	n=$(grep -cE "$2" "$1")
	[ "$n" -eq 1 ] || return 1
	grep -vE "$2" "$1" >"$3"
}
# drop_tap FILE OUT: FILE with its filter running every part but
# the tap; fails (without writing OUT) unless exactly one line changed.
drop_tap() {
	[ "$(grep -cxF '    filter lua.realms-guard-tap-rewrite-outcome' "$1")" -eq 1 ] || return 1
	sed 's/^\(    filter lua\.realms-guard\)-tap\(-rewrite-outcome\)$/\1\2/' "$1" >"$2"
}
RETRY_RE='^[[:space:]]*retry-on[[:space:]]'
declare -A CFG CHAN LABEL TAP
CASES="b c"
LABEL=([b]="b. HAProxy pass-through" [c]="c. Realms (agent, mirror)"
	[c-noretry]="c-noretry. without retry-on" [c-notap]="c-notap. without the tap"
	[c-neither]="c-neither. without both")
{ cat "$SRC/bench/passthrough.cfg"; global_extra b; } >"$DIR/passthrough-b.cfg"
CFG[b]=$DIR/passthrough-b.cfg
{ cat "$SRC/haproxy/realms.cfg"; global_extra c; } >"$DIR/realms-c.cfg"
CFG[c]=$DIR/realms-c.cfg
CHAN[c]=$DIR/hp/channels.cfg
TAP[c]=1
for v in $VARIANTS; do
	chan=$DIR/hp/channels.cfg
	cfg=$DIR/realms-$v.cfg
	TAP[$v]=1
	if [ "$v" != c-notap ]; then
		chan=$DIR/hp/channels-$v.cfg
		drop_line "$DIR/hp/channels.cfg" "$RETRY_RE" "$chan" ||
			{ echo "== $v skipped: the rendered channels.cfg has no single retry-on line"; continue; }
	fi
	if [ "$v" = c-noretry ]; then
		cp "$SRC/haproxy/realms.cfg" "$cfg.tmp"
	else
		drop_tap "$SRC/haproxy/realms.cfg" "$cfg.tmp" ||
			{ echo "== $v skipped: haproxy/realms.cfg has no single 'filter lua.realms-guard-tap-rewrite-outcome' line"; continue; }
		TAP[$v]=0
	fi
	{ cat "$cfg.tmp"; global_extra "$v"; } >"$cfg"
	CFG[$v]=$cfg
	CHAN[$v]=$chan
	CASES+=" $v"
done
# HTTP/2 on the client side: with prior knowledge (h2c) on the existing
# bind when curl can multiplex so; curl before 8.0 (Debian 12's 7.88.1)
# fails every stream but the first on a reused prior-knowledge connection
# ("Error in the HTTP2 framing layer", curl issue 10634, fixed in 8.0), so
# then the streams go over TLS with ALPN h2 to a second bind added to each
# copy (a self-signed certificate in the scratch directory, port
# STREAMS_TLS_LISTEN), the first bind left for the warm-up.
H2_TLS=0
if [ "$H2" = 1 ]; then
	cv=$(curl --version | awk 'NR == 1 { print $2 }')
	if [ "${cv%%.*}" -lt 8 ]; then
		H2_TLS=1
		command -v openssl >/dev/null || die "openssl not found (HTTP/2 over TLS with curl $cv)"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/tls.key" -out "$DIR/tls.crt" -days 2 \
			-subj /CN=127.0.0.1 >"$DIR/openssl.out" 2>&1 || { cat "$DIR/openssl.out" >&2; die "openssl req"; }
		cat "$DIR/tls.crt" "$DIR/tls.key" >"$DIR/tls.pem"
		for k in $CASES; do
			n=$(grep -cE '^[[:space:]]*bind "\$\{(BENCH|REALMS)_LISTEN\}"' "${CFG[$k]}")
			[ "$n" -eq 1 ] || die "${CFG[$k]}: not one client bind line to add the TLS bind after"
			# shellcheck disable=SC2016 # ${STREAMS_TLS_LISTEN} is for HAProxy to expand
			sed -E -i '/^[[:space:]]*bind "\$\{(BENCH|REALMS)_LISTEN\}"/a\    bind "${STREAMS_TLS_LISTEN}" ssl crt "'"$DIR/tls.pem"'" alpn h2' "${CFG[$k]}"
		done
	fi
fi
HOLD_H=("x-mock-first-byte-delay-ms: $FB_MS" "x-mock-delay-ms: $DELAY_MS"
	"x-mock-deltas: $DELTAS" "x-mock-delta-bytes: $DBYTES")
echo "== $N streams opened at $RATE/s (${OPEN_S}s), held ${HOLD_S}s before the first byte, then" \
	"$DELTAS deltas x $DBYTES B at one event every ${DELAY_MS} ms (${HOLD_S}s); $RUNS runs of each" \
	"case, cases alternating: $CASES"
echo "== open files: $(ulimit -Sn) (soft), HAProxy maxconn $MAXCONN (added to copies of the configs)"
[ -n "$H2_NOTE" ] && echo "== $H2_NOTE"
if [ "$H2" = 1 ]; then
	[ "$H2_TLS" = 1 ] && echo "== curl $cv cannot multiplex HTTP/2 with prior knowledge (curl issue 10634, fixed in 8.0):" \
		"the streams go over TLS with ALPN h2 to a second bind (self-signed), the warm-up to the clear one"
	echo "== client side: HTTP/2 $([ "$H2_TLS" = 1 ] && echo "over TLS (ALPN h2)" || echo "with prior knowledge (h2c)"), $H2_PER streams a connection, one curl" \
		"process a connection ($(((N + H2_PER - 1) / H2_PER)) of them), one started every" \
		"$(awk -v p="$H2_PER" -v r="$RATE" 'BEGIN { printf "%.2f", p / r }')s; upstream side HTTP/1.1"
else
	echo "== client side: HTTP/1.1 (http_bench), one connection a stream"
fi

# ------------------------------------------------------------- memory ---
# proc_kb FIELD FILE PID: FIELD (kB) of /proc/PID/FILE for PID and its
# children (HAProxy may run as a master and its workers).
proc_kb() {
	local f=$1 file=$2 pid=$3 sum=0 p v
	for p in $pid $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
		v=$(awk -v k="$f:" '$1 == k { print $2; exit }' "/proc/$p/$file" 2>/dev/null)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}
rss() { proc_kb VmRSS status "$1"; }
pss() { proc_kb Pss smaps_rollup "$1"; }
# nfd PID: open descriptors of PID and its children.
nfd() {
	local p sum=0
	for p in "$1" $(cat /proc/"$1"/task/*/children 2>/dev/null); do
		sum=$((sum + $(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)))
	done
	echo "$sum"
}
# stable PID...: polls the summed RSS of the processes every second until
# two readings differ by at most 0.5% (bounded: STREAMS_SETTLE - 5 s, at
# least 2, so that the phase is not over). Sets STABLE (1 or 0).
stable() {
	local a b _i
	STABLE=0
	a=$(for p in "$@"; do rss "$p"; done | awk '{ s += $1 } END { print s }')
	for _i in $(seq $((SETTLE > 7 ? SETTLE - 5 : 2))); do
		sleep 1
		b=$(for p in "$@"; do rss "$p"; done | awk '{ s += $1 } END { print s }')
		if awk -v a="$a" -v b="$b" 'BEGIN { d = b - a; if (d < 0) d = -d; exit !(d <= a * 0.005) }'; then
			STABLE=1
			return 0
		fi
		a=$b
	done
}
# hap_cmd SOCKET COMMAND: a command on HAProxy's stats socket.
hap_cmd() {
	python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
out = b""
while True:
    d = s.recv(65536)
    if not d:
        break
    out += d
sys.stdout.write(out.decode(errors="replace"))
PY
}
# pools_delta BEFORE AFTER: the pools that grew most between two `show
# pools`, in bytes per stream, and the total.
pools_delta() {
	awk -v n="$N" '
		/^  - Pool / {
			name = $3; sz = $4; gsub(/[(]/, "", sz)
			match($0, /allocated \([0-9]+ bytes\)/); b = substr($0, RSTART + 11, RLENGTH - 18)
			match($0, /: [0-9]+ allocated/); a = substr($0, RSTART + 2, RLENGTH - 12)
			key = name "/" sz "B"
			if (FILENAME == ARGV[1]) { b0[key] = b; a0[key] = a } else { b1[key] = b; a1[key] = a }
		}
		END {
			for (k in b1) { d = b1[k] - b0[k]; tot += d; if (d > 0) printf "%.2f %s +%d\n", d / n / 1024, k, a1[k] - a0[k] }
			printf "%.2f TOTAL\n", tot / n / 1024
		}' "$1" "$2" | sort -rn |
		awk '$2 == "TOTAL" { t = $1; next } n++ < 5 { s = s sprintf("%s%s %s KB/stream (%s objects)", (n > 1 ? ", " : ""), $2, $1, $3) }
		     END { printf "pools %+.1f KB/stream; grew most: %s", t, s }'
}

# ---------------------------------------------------------------- run ---
RUN=0
BILL_TOTAL=0
declare -A R_FD R_H1 R_H2 R_A1 R_A2 R_P1 R_P2 R_BASE R_POOL1 R_POOL2
# kbps BEFORE AFTER: KB per stream, one decimal.
kbps() { awk -v a="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.1f", (b - a) / n }'; }
# mock_json: the mock's /mock/stats.
mock_json() { curl -sS --max-time 5 "http://127.0.0.1:$MOCK_PORT/mock/stats" || die "mock stats"; }
jfield() {
	case $1 in
		200) sed -n 's/.*"by_status":{[^}]*"200":\([0-9]*\).*/\1/p' <<<"$2" | grep . || echo 0 ;;
		*) sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$2" | head -1 ;;
	esac
}

# measure K PHASE: memory of HAProxy and the agent now (once stable), the
# pools, in R_*[K] and the run's line.
measure() {
	local k=$1 ph=$2 hp=${HP_PID[$1]} h p a
	stable "$hp" "$AGENT_PID"
	h=$(rss "$hp"); p=$(pss "$hp"); a=$(rss "$AGENT_PID")
	hap_cmd "$DIR/stats-$k.sock" "show pools" >"$DIR/pools-$k-$RUN-$ph.txt" 2>&1
	M_H[$ph]=$h M_P[$ph]=$p M_A[$ph]=$a M_S[$ph]=$STABLE M_F[$ph]=$(nfd "$hp")
}

# h2_clients PORT OUT: the N streams over HTTP/2 with prior knowledge, one
# curl process per H2_PER streams (one connection, --parallel), a process
# started every H2_PER / RATE seconds. Each stream sends the request of
# http_bench (REQ_H as CURL_H: the fixture's headers, the 85 KB body, POST
# /v1/messages?beta=true) and writes its answer to OUT.h2/I; curl writes
# "I STATUS BYTES" a stream to OUT.h2/G.out. Each curl is bounded (timeout
# on the process, --max-time on each stream); the exit status of each is
# in OUT.rc. Returns 0 if every curl exited 0.
h2_clients() {
	local port=$1 out=$2 g i cfg gap rc=0 pids=() n_g
	n_g=$(((N + H2_PER - 1) / H2_PER))
	gap=$(awk -v p="$H2_PER" -v r="$RATE" 'BEGIN { printf "%.3f", p / r }')
	mkdir -p "$out.h2"
	printf '%s\n' "${CURL_H[@]}" | grep -v '^-H$' >"$out.h2/headers"
	: >"$out.rc"
	trap 'kill "${pids[@]}" 2>/dev/null; exit 143' TERM
	for ((g = 0; g < n_g; g++)); do
		cfg=$out.h2/$g.cfg
		for ((i = g * H2_PER; i < (g + 1) * H2_PER && i < N; i++)); do
			[ "$i" -gt $((g * H2_PER)) ] && echo next
			if [ "$H2_TLS" = 1 ]; then
				printf 'url = "https://%s/v1/messages?beta=true"\nhttp2\ninsecure\n' "$STREAMS_TLS_LISTEN"
			else
				printf 'url = "http://127.0.0.1:%s/v1/messages?beta=true"\nhttp2-prior-knowledge\n' "$port"
			fi
			printf 'header = "@%s"\ndata-binary = "@%s"\n' "$out.h2/headers" "$FIXTURE.json"
			printf 'output = "%s"\nmax-time = %d\n' "$out.h2/$i" $((2 * HOLD_S + OPEN_S + 90))
			printf 'write-out = "%d %%{http_code} %%{size_download}\\n"\n' "$i"
		done >"$cfg"
		timeout $((3 * HOLD_S + 2 * OPEN_S + 120)) curl -sS --no-progress-meter --parallel --parallel-max "$H2_PER" \
			-K "$cfg" >"$out.h2/$g.out" 2>"$out.h2/$g.err" &
		pids+=("$!")
		[ $((g + 1)) -lt "$n_g" ] && sleep "$gap"
	done
	for g in "${!pids[@]}"; do
		wait "${pids[$g]}"
		echo "$g:$?" >>"$out.rc"
	done
	! grep -qv ':0$' "$out.rc"
}
# h2_check OUT: prints how many of the N streams of h2_clients were whole
# 200 event streams (status 200, message_stop in the last 256 bytes);
# fails, printing why, if any was not.
h2_check() {
	python3 - "$1.h2" "$N" <<'PY'
import glob, os, sys
d, n = sys.argv[1], int(sys.argv[2])
status = {}
for f in glob.glob(os.path.join(d, "*.out")):
    for line in open(f):
        p = line.split()
        if len(p) == 3:
            status[int(p[0])] = p[1]
bad = {}
ok = 0
for i in range(n):
    st = status.get(i, "none")
    whole = False
    try:
        with open(os.path.join(d, str(i)), "rb") as fh:
            fh.seek(0, 2)
            fh.seek(max(0, fh.tell() - 256))
            whole = b"message_stop" in fh.read()
    except OSError:
        pass
    if st == "200" and whole:
        ok += 1
    else:
        key = "status %s%s" % (st, "" if whole else ", not whole")
        bad.setdefault(key, []).append(i)
if bad:
    print("%d whole streams of %d; the others: %s" % (ok, n, "; ".join(
        "%s: %d (e.g. #%d)" % (k, len(v), v[0]) for k, v in sorted(bad.items()))))
    sys.exit(1)
print(ok)
PY
}

run_case() {
	local k=$1 hp port out mk0 m j req c200 t_first="" t0 rc line ok deadline pools
	local -A M_H M_P M_A M_S M_F
	RUN=$((RUN + 1))
	out=$DIR/hb.$RUN
	if [ "$H2_TLS" = 1 ]; then
		STREAMS_TLS_PORT=$(free_port) || die "no free port"
		export STREAMS_TLS_LISTEN=127.0.0.1:$STREAMS_TLS_PORT
	fi
	if [ "$k" = b ]; then
		start_passthrough "$k" "${CFG[$k]}"
	else
		start_realms "$k" "${CFG[$k]}" "$MIRROR_ADDR" "${CHAN[$k]}"
	fi
	hp=${HP_PID[$k]}
	port=${HP_PORT[$k]}
	# A first whole answer (bounded: HAProxy's health check must see the
	# agent), then a few more, billed before the measure starts.
	request_headers
	mk0=$(mock_stat 200)
	for _ in $(seq 50); do probe "$port" "$DIR/probe-$k" 2>/dev/null && break; sleep 0.2; done
	probe "$port" "$DIR/probe-$k" || die "no whole 200 event stream through ${LABEL[$k]}"
	hbench "$port" "$out.warm" -c 4 -n 20
	if [ "$H2" = 1 ]; then
		# HAProxy must take HTTP/2 with prior knowledge on this bind.
		curl -sS --http2-prior-knowledge --max-time 20 -o "$DIR/probe-$k.h2" -w '%{http_version} %{http_code}' \
			"${CURL_H[@]}" --data-binary "@$FIXTURE.json" "http://127.0.0.1:$port/v1/messages?beta=true" \
			>"$DIR/probe-$k.h2.w" 2>&1
		if [ "$H2_TLS" = 1 ]; then
			curl -sS --http2 -k --max-time 20 -o "$DIR/probe-$k.h2" -w '%{http_version} %{http_code}' \
				"${CURL_H[@]}" --data-binary "@$FIXTURE.json" "https://$STREAMS_TLS_LISTEN/v1/messages?beta=true" \
				>"$DIR/probe-$k.h2.w" 2>&1
		fi
		if [ "$(cat "$DIR/probe-$k.h2.w")" != "2 200" ] || ! tail -c 256 "$DIR/probe-$k.h2" | grep -q message_stop; then
			die "${LABEL[$k]}: no whole 200 event stream over HTTP/2 with prior knowledge ($(cat "$DIR/probe-$k.h2.w"))"
		fi
	fi
	if [ "$k" != b ] && [ "${TAP[$k]}" = 1 ]; then
		EXPECT_BILLED=$((EXPECT_BILLED + $(mock_stat 200) - mk0))
		settle_billing "warm-up ${LABEL[$k]}"
	fi
	measure "$k" 0

	# The N streams.
	request_headers "${HOLD_H[@]}"
	j=$(mock_json)
	req=$(jfield requests "$j")
	c200=$(jfield 200 "$j")
	t0=$(now_s)
	if [ "$H2" = 1 ]; then
		h2_clients "$port" "$out" &
	else
		timeout $((3 * HOLD_S + 2 * OPEN_S + 120)) "$BUILD/http_bench" -a "127.0.0.1:$port" \
			-P '/v1/messages?beta=true' "${REQ_H[@]}" -b "$FIXTURE.json" -e message_stop \
			-c "$N" -n "$N" -r "$RATE" -t $((HOLD_S + 60)) >"$out.out" 2>"$out.err" &
	fi
	CLIENT=$!
	PIDS+=("$CLIENT")
	# Phase 1: every request reached the mock, none answered yet.
	deadline=$((SECONDS + 2 * OPEN_S + 60))
	while :; do
		j=$(mock_json)
		[ $(($(jfield requests "$j") - req)) -ge "$N" ] && break
		[ $(($(jfield 200 "$j") - c200)) -eq 0 ] ||
			die "${LABEL[$k]}: the first answers started before the $N requests reached the mock" \
				"($(($(jfield requests "$j") - req)) did after $(elapsed "$t0" "$(now_s)")s; raise STREAMS_SETTLE or lower STREAMS_RATE)"
		kill -0 "$CLIENT" 2>/dev/null || { cat "$out.out" "$out.err" >&2; die "http_bench ended early (${LABEL[$k]})"; }
		kill -0 "$hp" 2>/dev/null || die "haproxy (${LABEL[$k]}) died"
		[ "$SECONDS" -lt "$deadline" ] ||
			die "${LABEL[$k]}: after $((2 * OPEN_S + 60))s only $(($(jfield requests "$j") - req)) of $N requests reached the mock"
		sleep 0.5
	done
	OPENED=$(elapsed "$t0" "$(now_s)")
	measure "$k" 1
	[ $(($(mock_stat 200) - c200)) -eq 0 ] ||
		die "${LABEL[$k]}: phase 1 ended before its memory was read (raise STREAMS_SETTLE)"
	# Phase 2: every stream has its status line and is streaming.
	deadline=$((SECONDS + HOLD_S + OPEN_S + 60))
	while :; do
		m=$(($(mock_stat 200) - c200))
		[ -z "$t_first" ] && [ "$m" -gt 0 ] && t_first=$(now_s)
		[ "$m" -ge "$N" ] && break
		[ "$SECONDS" -lt "$deadline" ] || die "${LABEL[$k]}: only $m of $N streams started"
		sleep 0.2
	done
	measure "$k" 2
	# The first stream to start ends HOLD_S after its first byte.
	awk -v a="$(elapsed "$t_first" "$(now_s)")" -v h="$HOLD_S" 'BEGIN { exit !(a < h - 1) }' ||
		die "${LABEL[$k]}: streams may have ended before phase 2's memory was read (raise STREAMS_SETTLE)"

	wait "$CLIENT"
	rc=$?
	forget_pid "$CLIENT"
	if [ "$H2" = 1 ]; then
		ok=$(h2_check "$out") || die "${LABEL[$k]}: $ok"
		[ "$rc" -eq 0 ] || die "${LABEL[$k]}: the curl processes did not all exit 0 ($(tr '\n' ' ' <"$out.rc"))"
	else
		line=$(cat "$out.out")
		[ "$rc" -eq 0 ] || { cat "$out.out" "$out.err" >&2; die "${LABEL[$k]}: http_bench exited with $rc"; }
		ok=$(hb ok "$line")
	fi
	[ "$ok" -eq "$N" ] || die "${LABEL[$k]}: $ok whole streams of $N"
	[ $(($(mock_stat 200) - c200)) -eq "$N" ] || die "${LABEL[$k]}: the mock answered $(($(mock_stat 200) - c200)) of $N"
	if [ "$k" != b ] && [ "${TAP[$k]}" = 1 ]; then
		EXPECT_BILLED=$((EXPECT_BILLED + N))
		settle_billing "${LABEL[$k]}, run $RUN"
		BILL_TOTAL=$((BILL_TOTAL + N))
	fi
	kill -0 "$hp" 2>/dev/null || die "haproxy (${LABEL[$k]}) died"
	[ "$k" = b ] || check_agent "${LABEL[$k]}"
	stop_pid "$hp"

	R_BASE[$k]+=" $((M_H[0] / 1024))"
	R_H1[$k]+=" $(kbps "${M_H[0]}" "${M_H[1]}")"
	R_H2[$k]+=" $(kbps "${M_H[0]}" "${M_H[2]}")"
	R_P1[$k]+=" $(kbps "${M_P[0]}" "${M_P[1]}")"
	R_P2[$k]+=" $(kbps "${M_P[0]}" "${M_P[2]}")"
	R_A1[$k]+=" $(kbps "${M_A[0]}" "${M_A[1]}")"
	R_A2[$k]+=" $(kbps "${M_A[0]}" "${M_A[2]}")"
	pools=$(pools_delta "$DIR/pools-$k-$RUN-0.txt" "$DIR/pools-$k-$RUN-2.txt")
	R_POOL2[$k]=$pools
	R_POOL1[$k]=$(pools_delta "$DIR/pools-$k-$RUN-0.txt" "$DIR/pools-$k-$RUN-1.txt")
	printf '  %-30s opened in %ss; haproxy %s MB before, +%s KB/stream waiting, +%s streaming (Pss +%s, +%s); agent +%s, +%s KB/stream%s\n' \
		"${LABEL[$k]}" "$OPENED" "$((M_H[0] / 1024))" "$(kbps "${M_H[0]}" "${M_H[1]}")" \
		"$(kbps "${M_H[0]}" "${M_H[2]}")" "$(kbps "${M_P[0]}" "${M_P[1]}")" \
		"$(kbps "${M_P[0]}" "${M_P[2]}")" "$(kbps "${M_A[0]}" "${M_A[1]}")" \
		"$(kbps "${M_A[0]}" "${M_A[2]}")" \
		"$([ "${M_S[1]}${M_S[2]}" = 11 ] || echo " (memory still moving when read)")"
	R_FD[$k]+=" $(awk -v a="${M_F[0]}" -v b="${M_F[2]}" -v n="$N" 'BEGIN { printf "%.2f", (b - a) / n }')"
	echo "     haproxy descriptors: ${M_F[0]} before, ${M_F[1]} waiting, ${M_F[2]} streaming" \
		"($(awk -v a="${M_F[0]}" -v b="${M_F[2]}" -v n="$N" 'BEGIN { printf "%.2f", (b - a) / n }') a stream)"
	echo "     waiting:   ${R_POOL1[$k]}"
	echo "     streaming: $pools"
}

# forget_pid PID: a process already waited for leaves the list of those to
# stop.
forget_pid() {
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
	PIDS=("${keep[@]}")
}

for r in $(seq "$RUNS"); do
	echo "-- round $r of $RUNS"
	for k in $CASES; do run_case "$k"; done
done

# ---------------------------------------------------------------- summary ---
# shellcheck disable=SC2086 # word splitting of the collected values
med() { local -n arr=$1; median ${arr[$2]}; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a + b }'; }
echo
echo "== memory per stream: $N streams of an 85 KB request held open (client side" \
	"$([ "$H2" = 1 ] && echo "HTTP/2, $H2_PER streams a connection" || echo "HTTP/1.1, a connection a stream"));" \
	"KB per stream over the RSS after warm-up; medians of $RUNS runs"
printf '%-30s %7s | %8s %8s %8s %6s | %8s %8s %8s %6s\n' case "hap MB" \
	haproxy agent both "x b" haproxy agent both "x b"
printf '%-30s %7s | %-35s | %-35s\n' "" before "waiting for the first byte" "streaming"
for k in $CASES; do
	h1=$(med R_H1 "$k"); a1=$(med R_A1 "$k"); h2=$(med R_H2 "$k"); a2=$(med R_A2 "$k")
	[ "$k" = b ] && a1=0 && a2=0
	printf '%-30s %7s | %8s %8s %8s %6s | %8s %8s %8s %6s\n' "${LABEL[$k]}" "$(med R_BASE "$k")" \
		"$h1" "$([ "$k" = b ] && echo - || echo "$a1")" "$(sum "$h1" "$a1")" \
		"$(ratio "$(sum "$h1" "$a1")" "$(med R_H1 b)")" \
		"$h2" "$([ "$k" = b ] && echo - || echo "$a2")" "$(sum "$h2" "$a2")" \
		"$(ratio "$(sum "$h2" "$a2")" "$(med R_H2 b)")"
done
echo "(haproxy, agent: VmRSS growth in KB per stream; x b: both over the plain HAProxy's)"
echo
echo "HAProxy Pss growth, KB per stream (waiting, streaming):"
for k in $CASES; do printf '  %-30s %s, %s\n' "${LABEL[$k]}" "$(med R_P1 "$k")" "$(med R_P2 "$k")"; done
echo "HAProxy open descriptors added a stream while streaming ($([ "$H2" = 1 ] && echo "client side HTTP/2, $H2_PER streams a connection" || echo "client side HTTP/1.1")):"
for k in $CASES; do printf '  %-30s %s\n' "${LABEL[$k]}" "$(med R_FD "$k")"; done
echo "HAProxy pools that grew (show pools, the last run), while streaming (pools of one size are"
echo "merged in HAProxy 2.6: a pool is named after one of its users; buffer/131072B is tune.bufsize):"
for k in $CASES; do printf '  %-30s %s\n' "${LABEL[$k]}" "${R_POOL2[$k]}"; done
echo "streams: every one a whole 200 event stream; billing: $BILL_TOTAL held streams through the tap," \
	"each counted once in Redis, none partial"
if grep -qE '\] warning: ' "$DIR/agent.log"; then
	echo "agent warnings: $(grep -cE '\] warning: ' "$DIR/agent.log"), the last 5:"
	grep -E '\] warning: ' "$DIR/agent.log" | sed 's/^/  /' | tail -5
else
	echo "agent warnings: none"
fi
echo "load average at the end: $(loadavg)"
