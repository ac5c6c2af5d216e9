#!/usr/bin/env bash
# make run: a local Realms gateway in the foreground.
#
#   REALMS_PORT    client port on 127.0.0.1 (default 8080)
#   REALMS_CONFIG  the agent's configuration (default: examples/anthropic.json
#                  when ANTHROPIC_API_KEY is set, else examples/mock.json with
#                  the mock upstream started here, so it works offline)
#   REALMS_REDIS   an existing Redis (HOST:PORT or socket path), with
#                  REALMS_REDIS_USER and REALMS_REDIS_PASSWORD_FILE if it
#                  wants a login; default: a private one on a unix socket in
#                  .run/<port>/, with a password made for this run (redis.pw,
#                  mode 0600) that the agent and realmsctl read from that
#                  file (REALMS_REDIS_PASSWORD_FILE)
#
#   REALMS_RUN_DIR where the runtime directories go (default .run/)
#
# Everything it starts stops on Ctrl-C or SIGTERM. Runtime files live in
# .run/<port>/ (ignored by git), readable by this user only, so several runs
# on different ports coexist; a second run on a port already served exits
# at once and leaves the first alone. The directory is removed on a clean
# stop, and kept for inspection when something failed, until the next run
# on that port.
set -euo pipefail
umask 077

top=$(cd "$(dirname "$0")/.." && pwd)
bin="${REALMS_BUILD_DIR:-$top/build}"
port=${REALMS_PORT:-8080}
run="${REALMS_RUN_DIR:-$top/.run}/$port"
pids=()
clean=0

# shellcheck disable=SC2317  # reached through the traps below
stop_all() {
	trap - INT TERM EXIT
	echo "realms: stopping" >&2
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	for pid in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	# Only a clean stop removes the directory: after a failure its logs
	# stay until the next run on this port.
	if [ "$clean" = 1 ]; then rm -rf "$run"; fi
}
trap 'clean=1; stop_all; exit 0' INT TERM
trap stop_all EXIT

die() { echo "realms: $*" >&2; exit 1; }
wait_for() {   # wait_for TEST-COMMAND WHAT
	for _ in $(seq 100); do eval "$1" && return 0; sleep 0.1; done
	die "$2 did not start (logs in $run)"
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Below the kernel's ephemeral range, so no outgoing connection holds it.
pick_port() { local p; for _ in $(seq 100); do p=$((10000 + RANDOM % 20000)); port_free "$p" && { echo "$p"; return; }; done; die "no free port"; }

[[ "$port" =~ ^[0-9]+$ ]] || die "REALMS_PORT must be a port number, not '$port'"
# One run per port: the runtime directory itself is the lock (flock on
# its descriptor, held until this script and what it started exit). It is
# emptied, never replaced, so that a second run locks the same directory.
mkdir -p "$run"
exec 9<"$run"
flock -n 9 || { echo "realms: a gateway already runs on port $port (see $run)" >&2; trap - EXIT; exit 1; }
find "$run" -mindepth 1 -delete
port_free "$port" || die "port $port is in use: set REALMS_PORT"
mkdir -p "$run/hp"

# Redis
if [ -n "${REALMS_REDIS:-}" ]; then
	redis_addr=$REALMS_REDIS
else
	# A fresh password per run, in a file only this user can read. Redis
	# reads it as configuration on its standard input ("-"), and printf is
	# a shell builtin: it is on no command line.
	redis_pw=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf '%s\n' "$redis_pw" >"$run/redis.pw"
	redis-server - --port 0 --unixsocket "$run/redis.sock" --unixsocketperm 700 \
		--save '' --appendonly no --dir "$run" >"$run/redis.log" 2>&1 \
		<<<"requirepass $redis_pw" &
	pids+=($!)
	unset redis_pw
	redis_addr="$run/redis.sock"
	wait_for "[ -S '$run/redis.sock' ]" "Redis"
	# The agent and realmsctl log in as the default user (requirepass),
	# whatever the calling shell had set.
	unset REALMS_REDIS_USER REALMS_REDIS_PASSWORD
	export REALMS_REDIS_PASSWORD_FILE="$run/redis.pw"
fi
export REALMS_REDIS=$redis_addr

# Configuration (and the mock upstream when offline)
if [ -n "${REALMS_CONFIG:-}" ]; then
	config=$REALMS_CONFIG
elif [ -n "${ANTHROPIC_API_KEY:-}" ]; then
	config="$top/examples/anthropic.json"
	echo "realms: routing to api.anthropic.com with ANTHROPIC_API_KEY" >&2
else
	mock_port=$(pick_port)
	"$bin/mock_upstream" -l "127.0.0.1:$mock_port" -n mock >"$run/mock.log" 2>&1 &
	pids+=($!)
	sed "s|@MOCK_URL@|http://127.0.0.1:$mock_port|" "$top/examples/mock.json" >"$run/realms.json"
	config="$run/realms.json"
	wait_for "! port_free $mock_port" "the mock upstream"
	echo "realms: no ANTHROPIC_API_KEY: answering from the mock upstream" >&2
fi
"$bin/realms-agent" -c "$config" --check >"$run/check.log" 2>&1 || { cat "$run/check.log" >&2; die "invalid configuration $config"; }

# The agent, with the response mirror so that usage is recorded
# (`realmsctl usage`) and attempt results reach the breakers. Both listen
# on unix sockets in .run/<port>/ (mode 700): the agent admits only this user
# and root on them, as it would admit only HAProxy's user in production.
chmod 700 "$run"
"$bin/realms-agent" -f -c "$config" -l "unix:$run/agent.sock" -M "unix:$run/mirror.sock" \
	-s "$run/spool" >"$run/agent.log" 2>&1 &
pids+=($!)
wait_for "[ -S '$run/agent.sock' ] && [ -S '$run/mirror.sock' ]" "realms-agent"

# HAProxy
cp "$top/haproxy/realms.spoe" "$run/hp/"
"$bin/realmsctl" -c "$config" render-haproxy -o "$run/hp/channels.cfg" --setup-page "$run/hp/setup.html"
export REALMS_LISTEN="127.0.0.1:$port" REALMS_AGENT_ADDR="unix@$run/agent.sock"
export REALMS_HAPROXY_DIR="$run/hp" REALMS_LUA="$top/lua-shim/realms.lua"
export REALMS_RELAY="$run/relay.sock" REALMS_MIRROR="$run/mirror.sock"
haproxy -c -q -f "$top/haproxy/realms.cfg" -f "$run/hp/channels.cfg" || die "HAProxy refused the configuration"
# The allocator settings the haproxy.service drop-in gives HAProxy.
mapfile -t menv < <(grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$top/haproxy/malloc.env")
env "${menv[@]}" haproxy -db -f "$top/haproxy/realms.cfg" -f "$run/hp/channels.cfg" >"$run/haproxy.log" 2>&1 &
pids+=($!)
wait_for "! port_free $port" "HAProxy"

# A demo token, shown once.
token=$("$bin/realmsctl" token add --name "demo-$(date +%Y%m%d-%H%M%S)-$$" 2>/dev/null) || die "cannot create a token in Redis at $redis_addr"

cat <<INFO

Realms is running on http://127.0.0.1:$port (setup page at /). Paste into your shell:

ANTHROPIC_BASE_URL=http://127.0.0.1:$port
ANTHROPIC_AUTH_TOKEN=$token

then run claude. Logs are in $run/. Ctrl-C stops everything.
Usage so far, from another shell:

  REALMS_REDIS=$REALMS_REDIS REALMS_REDIS_PASSWORD_FILE=${REALMS_REDIS_PASSWORD_FILE:-} $bin/realmsctl usage
INFO

# Foreground until a signal, or until one of the processes dies.
wait -n "${pids[@]}" || true
echo "realms: a process exited; see $run/*.log" >&2
exit 1
