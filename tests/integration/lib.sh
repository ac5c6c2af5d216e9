# shellcheck shell=bash
# Shared helpers for integration tests. Source it; never run it. The
# helpers the benchmarks share (ports, waits, processes, Redis) are in
# tests/lib/helpers.sh, sourced here.
#
# Every server a test needs is started here on loopback (or a unix socket in
# the test's own scratch directory), on a port found free at start, and is
# stopped by PID when the test exits. Every wait is bounded.
#
# Environment (set by CTest): REALMS_BIN (build dir), REALMS_SRC (source dir),
# REALMS_AGENT (agent binary: plain or ASan+UBSan), REALMS_FLAVOUR.

set -uo pipefail

: "${REALMS_SRC:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${REALMS_BIN:=$REALMS_SRC/build}"
: "${REALMS_AGENT:=$REALMS_BIN/realms-agent}"
: "${REALMS_FLAVOUR:=plain}"
FIXTURES="$REALMS_SRC/tests/fixtures/claude-code"

# shellcheck source=tests/lib/helpers.sh
. "$REALMS_SRC/tests/lib/helpers.sh"

T_DIR=$(mktemp -d "${TMPDIR:-/tmp}/realms-it.XXXXXX")
SCRATCH=$T_DIR   # helpers.sh: spawn's logs, Redis's directory
PIDS=()          # helpers.sh: stopped at exit
T_PASS=0
T_FAIL=0
T_NAME=$(basename "$0" .sh)

# Sanitizer reports of the ASan flavour land in files we check at the end.
export ASAN_OPTIONS="detect_leaks=1:log_path=$T_DIR/asan:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$T_DIR/ubsan"

t_stop_all() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		# bounded: 50 x 0.1 s, then KILL
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	PIDS=()
}

t_cleanup() {
	t_stop_all
	if [ -n "${KEEP_TEST_DIR:-}" ]; then echo "kept $T_DIR"; else rm -rf "$T_DIR"; fi
}
trap t_cleanup EXIT

log() { echo "[$T_NAME] $*"; }

ok() { T_PASS=$((T_PASS + 1)); echo "ok - $*"; }
fail() { T_FAIL=$((T_FAIL + 1)); echo "FAIL - $*"; }

# assert_eq ACTUAL EXPECTED WHAT
assert_eq() {
	if [ "$1" == "$2" ]; then ok "$3"; else fail "$3: got '$1', want '$2'"; fi
}

# assert_match ACTUAL REGEX WHAT
assert_match() {
	if [[ "$1" =~ $2 ]]; then ok "$3"; else fail "$3: '$1' does not match /$2/"; fi
}

# assert_no_match ACTUAL REGEX WHAT
assert_no_match() {
	if [[ "$1" =~ $2 ]]; then fail "$3: '$1' matches /$2/"; else ok "$3"; fi
}

# start_agent ARGS...: the agent in the foreground mode, in the background.
# Sets AGENT_PID. The caller waits for its listeners.
start_agent() {
	spawn "agent${GW_ID:-}" "$REALMS_AGENT" -f "$@"
	AGENT_PID=$SPAWNED
}

# start_haproxy CFG: Debian's HAProxy in the foreground (-db), in the
# background. Sets HAPROXY_PID. The caller waits for its listeners.
start_haproxy() {
	haproxy -c -f "$1" >"$T_DIR/haproxy-check.log" 2>&1 || {
		cat "$T_DIR/haproxy-check.log"; return 1; }
	spawn haproxy haproxy -db -f "$1"
	HAPROXY_PID=$SPAWNED
}

# fixture_headers FILE: curl -H arguments for the headers of a captured
# request (request line, Host, Content-Length and Connection left out:
# curl computes its own).
fixture_headers() {
	local line
	FIXTURE_H=()
	while IFS= read -r line || [ -n "$line" ]; do
		line=${line%$'\r'}
		[ -z "$line" ] && continue
		case "$line" in
			POST*|GET*|HEAD*|Host:*|Content-Length:*|Connection:*) continue ;;
		esac
		FIXTURE_H+=(-H "$line")
	done <"$1"
}

# Fails the test if a sanitizer wrote a report.
check_sanitizers() {
	local f found=0
	for f in "$T_DIR"/asan.* "$T_DIR"/ubsan.*; do
		[ -e "$f" ] || continue
		found=1
		echo "--- sanitizer report $f"; head -60 "$f"
	done
	if [ $found -eq 0 ]; then ok "no sanitizer findings"; else fail "sanitizer findings"; fi
}

# finish: the plain summary line, and the exit status.
finish() {
	t_stop_all     # sanitizers report leaks at exit: stop everything first
	[ "$REALMS_FLAVOUR" = asan ] && check_sanitizers
	if [ $T_FAIL -ne 0 ]; then
		echo "--- logs in $T_DIR:"
		for f in "$T_DIR"/*.log; do [ -e "$f" ] && { echo "== $f"; tail -30 "$f"; }; done
	fi
	echo "$T_NAME: $T_PASS passed, $T_FAIL failed"
	[ $T_FAIL -eq 0 ]
	exit $?
}

# start_mock NAME [ARGS...]: the mock upstream on a free port, recording
# into $T_DIR/rec-NAME. Sets MOCK_PORT.
start_mock() {
	local name=$1; shift
	MOCK_PORT=$(free_port)
	mkdir -p "$T_DIR/rec-$name"
	spawn "mock-$name" "$REALMS_BIN/mock_upstream" -l "127.0.0.1:$MOCK_PORT" \
		-r "$T_DIR/rec-$name" -n "$name" "$@"
	wait_tcp "$MOCK_PORT" 10
}

# start_gateway CONFIG: the whole gateway as an operator runs it: the agent
# with CONFIG, and HAProxy with haproxy/realms.cfg plus the part rendered by
# realmsctl from the same CONFIG (and a stats socket for the test). Sets
# GW_PORT, GW_STATS_PORT, AGENT_PID, HAPROXY_PID. With GW_ID set, its files
# and logs carry that suffix, so that a test runs several gateways (each
# with its own CONFIG: mirror and admin addresses differ). GW_HAPROXY_ARGS
# adds HAProxy options (master-worker mode: "-W -S SOCKET"; HAPROXY_PID is
# then the master's). GW_REALMS_CFG, GW_REALMS_SPOE and GW_REALMS_LUA replace
# haproxy/realms.cfg, haproxy/realms.spoe and lua-shim/realms.lua with a
# test's own copies (a test changes a copy in its scratch directory, never
# the files shipped).
start_gateway() {
	local cfg=$1 id=${GW_ID:-}
	local hp="$T_DIR/hp$id"
	local rcfg=${GW_REALMS_CFG:-$REALMS_SRC/haproxy/realms.cfg}
	GW_PORT=$(free_port)
	GW_STATS_PORT=$(free_port)
	mkdir -p "$hp"
	cp "${GW_REALMS_SPOE:-$REALMS_SRC/haproxy/realms.spoe}" "$hp/realms.spoe"
	"$REALMS_BIN/realmsctl" -c "$cfg" render-haproxy -o "$hp/channels.cfg" \
		--setup-page "$hp/setup.html" || return 1
	printf 'global\n    stats socket ipv4@127.0.0.1:%s level admin\n' "$GW_STATS_PORT" \
		>"$hp/stats.cfg"
	export REALMS_LISTEN="127.0.0.1:$GW_PORT"
	export REALMS_AGENT_ADDR="unix@$T_DIR/agent$id.sock"
	export REALMS_HAPROXY_DIR="$hp"
	export REALMS_LUA="${GW_REALMS_LUA:-$REALMS_SRC/lua-shim/realms.lua}"
	# The relay: a unix socket in the test's own directory (mode 700).
	export REALMS_RELAY="$T_DIR/relay$id.sock"
	# The mock's control headers pass the header allow-list.
	export REALMS_PASS_HEADERS="x-mock-[a-z-]+|x-test-[a-z-]+"
	# The mirror, when the configuration has one (agent.mirror).
	export REALMS_MIRROR=${GW_MIRROR:-}
	start_agent -c "$cfg" -l "unix:$T_DIR/agent$id.sock" ${GW_AGENT_ARGS:-}
	wait_file "$T_DIR/agent$id.sock" 10 || return 1
	haproxy -c -f "$rcfg" -f "$hp/channels.cfg" \
		-f "$hp/stats.cfg" >"$T_DIR/haproxy-check$id.log" 2>&1 || {
		cat "$T_DIR/haproxy-check$id.log"; return 1; }
	# HAProxy with the allocator settings the drop-in gives it.
	local -a menv
	mapfile -t menv < <(env_file "$REALMS_SRC/haproxy/malloc.env")
	# shellcheck disable=SC2086 # GW_HAPROXY_ARGS: options, split on purpose
	spawn "haproxy$id" env "${menv[@]}" haproxy -db ${GW_HAPROXY_ARGS:-} -f "$rcfg" \
		-f "$hp/channels.cfg" -f "$hp/stats.cfg"
	HAPROXY_PID=$SPAWNED
	wait_tcp "$GW_PORT" 10
}

# haproxy_cmd CMD: a command on the gateway's stats socket.
haproxy_cmd() {
	local out
	exec 5<>"/dev/tcp/127.0.0.1/$GW_STATS_PORT" || return 1
	echo "$1" >&5
	out=$(timeout 5 cat <&5)
	exec 5<&-
	printf '%s\n' "$out"
}
