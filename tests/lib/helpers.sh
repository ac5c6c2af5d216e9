# shellcheck shell=bash
# Shell helpers shared by the integration tests (tests/integration/lib.sh)
# and the benchmarks (bench/lib.sh): free ports, bounded waits, processes
# started and stopped by PID, a private Redis. Source it; never run it.
#
# Sourcing it only defines functions: it sets no option, no trap and no
# variable, so each library keeps its own (the tests count passes and
# failures, the benchmarks stop at the first failure). The library that
# sources it provides:
#   SCRATCH  its scratch directory: spawn writes NAME.log there, Redis
#            runs there
#   PIDS     an array of the processes to stop at exit: spawn adds to it,
#            stop_pid removes from it

# tcp_open PORT: whether something accepts on 127.0.0.1:PORT right now.
tcp_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now,
# below the kernel's ephemeral range so that no outgoing connection holds
# it either.
free_port() {
	local p lo
	lo=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null)
	[[ "$lo" =~ ^[0-9]+$ ]] && [ "$lo" -gt 12000 ] || lo=32768
	for _ in $(seq 200); do
		p=$((10000 + RANDOM % (lo - 10000)))
		if ! tcp_open "$p"; then
			echo "$p"
			return 0
		fi
	done
	echo "no free port found" >&2
	return 1
}

# wait_for SECONDS WHAT CMD...: until CMD succeeds, polled every 0.1 s;
# after SECONDS, says WHAT on stderr and returns 1.
wait_for() {
	local n=$(( $1 * 10 )) what=$2
	shift 2
	for _ in $(seq "$n"); do
		"$@" && return 0
		sleep 0.1
	done
	echo "$what" >&2
	return 1
}

# wait_tcp PORT [SECONDS]: until something accepts on 127.0.0.1:PORT
# (10 s by default).
wait_tcp() { wait_for "${2:-10}" "nothing listens on port $1" tcp_open "$1"; }

# wait_file PATH [SECONDS]: until PATH exists (10 s by default). A unix
# socket exists once its server has bound it.
wait_file() { wait_for "${2:-10}" "$1 did not appear" test -e "$1"; }

# env_file FILE: the KEY=value lines of an environment file (systemd's
# EnvironmentFile= without quoting: comments and blank lines left out), one
# per line, for env(1). haproxy/malloc.env is one.
env_file() { grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$1"; }

# spawn NAME CMD...: runs CMD in the background, output to $SCRATCH/NAME.log,
# remembers its PID in PIDS and in SPAWNED.
spawn() {
	local name=$1; shift
	"$@" >"$SCRATCH/$name.log" 2>&1 &
	SPAWNED=$!
	PIDS+=("$SPAWNED")
}

# stop_pid PID: TERM, bounded wait (10 s), then KILL; forgets the PID.
# Returns the process's exit status.
stop_pid() {
	local pid=$1 rc keep=() p
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rc=$?
	for p in "${PIDS[@]}"; do [ "$p" != "$pid" ] && keep+=("$p"); done
	PIDS=("${keep[@]}")
	return $rc
}

# start_redis [PORT [ARGS...]]: a private Redis on a free port (or PORT when
# not empty), no persistence unless ARGS ask for it. Sets REDIS_PORT and
# REDIS_PID; returns 1 if it does not answer PING within 10 s.
start_redis() {
	local fixed=${1:-} try
	[ $# -gt 0 ] && shift
	# A port found free can be taken before Redis binds it: with no port
	# imposed, try another one.
	for try in 1 2 3; do
		REDIS_PORT=${fixed:-$(free_port)}
		spawn redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 \
			--save '' --appendonly no --dir "$SCRATCH" --daemonize no "$@"
		REDIS_PID=$SPAWNED
		for _ in $(seq 100); do
			[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
			kill -0 "$REDIS_PID" 2>/dev/null || break
			sleep 0.1
		done
		[ -n "$fixed" ] && break
		stop_pid "$REDIS_PID"
		cp "$SCRATCH/redis.log" "$SCRATCH/redis-try$try.log" 2>/dev/null
	done
	echo "redis did not start on port $REDIS_PORT" >&2
	return 1
}

# rcli ARGS...: redis-cli on the private Redis.
rcli() { redis-cli -p "$REDIS_PORT" "$@"; }
