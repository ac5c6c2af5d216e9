#!/usr/bin/env bash
# realms-test: no-agent
# realmsctl token add|list|revoke against a private Redis:
# - add prints the token alone on stdout, stores only its SHA-256;
# - duplicate names are refused, malformed arguments are usage errors (2);
# - list as a table and as JSON, with "expired" for an active token past its
#   expiry;
# - revoke flips the status and PUBLISHes the hash on realms:token-events
#   (seen by a subscriber); an unknown name exits 1;
# - REALMS_REDIS with a unix socket, -c FILE for the address and the groups;
# - in the end no generated token appears anywhere in Redis or on stderr.
. "$(dirname "$0")/lib.sh"

CTL="$REALMS_BIN/realmsctl"
[ -x "$CTL" ] || { fail "no realmsctl at $CTL"; finish; }

start_redis || { fail "redis did not start"; finish; }
export REALMS_REDIS="127.0.0.1:$REDIS_PORT"

TOKENS=()    # every token created, checked for leaks at the end
ERRS="$T_DIR/stderr.all"
: >"$ERRS"

# ctl ARGS...: runs realmsctl; sets OUT, ERR and RC. stderr is also kept
# for the leak check.
ctl() {
	OUT=$("$CTL" "$@" 2>"$T_DIR/err")
	RC=$?
	ERR=$(cat "$T_DIR/err")
	cat "$T_DIR/err" >>"$ERRS"
}

sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }

# ---- help and usage errors --------------------------------------------
ctl --help
assert_eq "$RC" 0 "--help exits 0"
for s in NAME SYNOPSIS COMMANDS OPTIONS ENVIRONMENT "EXIT STATUS" REALMS_REDIS; do
	assert_match "$OUT" "$s" "--help has $s"
done
ctl -h
assert_eq "$RC" 0 "-h exits 0"
ctl token --help
assert_eq "$RC" 0 "token --help exits 0"
assert_match "$OUT" "token revoke NAME" "token --help describes revoke"
assert_match "$OUT" "EXIT STATUS" "token --help has EXIT STATUS"
ctl
assert_eq "$RC" 2 "no command: usage error"
ctl frobnicate
assert_eq "$RC" 2 "unknown command: usage error"
assert_match "$ERR" "unknown command" "unknown command is named"
ctl token
assert_eq "$RC" 2 "token without subcommand: usage error"
ctl token add
assert_eq "$RC" 2 "add without --name: usage error"
ctl token add --name 'bad name'
assert_eq "$RC" 2 "add with a bad name: usage error"
ctl token add --name "$(printf 'x%.0s' $(seq 65))"
assert_eq "$RC" 2 "add with a 65-char name: usage error"
ctl token add --name ok --expires tomorrow
assert_eq "$RC" 2 "add with bad --expires: usage error"
ctl token add --name ok --expires 2000-01-01
assert_eq "$RC" 2 "add with a past --expires: usage error"
ctl token add --name ok --bogus
assert_eq "$RC" 2 "add with an unknown option: usage error"
ctl token add --name
assert_eq "$RC" 2 "add with --name and no value: usage error"
ctl token revoke
assert_eq "$RC" 2 "revoke without NAME: usage error"
assert_eq "$(rcli DBSIZE)" 0 "usage errors wrote nothing"

# ---- add ---------------------------------------------------------------
ctl token add --name alice
assert_eq "$RC" 0 "add alice"
TOK_A=$OUT
TOKENS+=("$TOK_A")
assert_match "$TOK_A" '^sk-realms-[0-9A-Za-z]{43}$' "token alone on stdout, right shape"
assert_eq "$(printf '%s\n' "$OUT" | wc -l)" 1 "one line on stdout"
assert_match "$ERR" "shown only this once" "stderr warns it is shown once"
H_A=$(sha "$TOK_A")
assert_eq "$(rcli HGET realms:tokens alice)" "$H_A" "index holds sha256 of the token"
assert_eq "$(rcli HGET "realms:token:$H_A" name)" alice "record name"
assert_eq "$(rcli HGET "realms:token:$H_A" group)" default "default group"
assert_eq "$(rcli HGET "realms:token:$H_A" status)" active "status active"
assert_eq "$(rcli HGET "realms:token:$H_A" expires)" 0 "no expiry = 0"
assert_eq "$(rcli HGET "realms:token:$H_A" revoked_at)" 0 "revoked_at 0"
now=$(date +%s)
created=$(rcli HGET "realms:token:$H_A" created)
assert_match "$(( created >= now - 5 && created <= now ))" '^1$' "created is now"

tok=$("$CTL" token add --name bob --group research --expires 2099-12-31 2>>"$ERRS")
assert_eq "$?" 0 "add bob with group and date expiry (tok=\$(...))"
TOK_B=$tok
TOKENS+=("$TOK_B")
H_B=$(sha "$TOK_B")
assert_eq "$(rcli HGET "realms:token:$H_B" group)" research "bob's group"
assert_eq "$(rcli HGET "realms:token:$H_B" expires)" 4102444800 \
	"a date expires at the next midnight UTC"

ctl token add --name carol@example.com --expires 30d
assert_eq "$RC" 0 "add carol with relative expiry"
TOKENS+=("$OUT")
TOK_C=$OUT
H_C=$(sha "$TOK_C")
exp=$(rcli HGET "realms:token:$H_C" expires)
now=$(date +%s)
assert_match "$(( exp > now + 30*86400 - 10 && exp <= now + 30*86400 ))" '^1$' "30d from now"

ctl token add --name dan --expires 2030-06-15T13:45:30Z
assert_eq "$RC" 0 "add dan with a full timestamp"
TOKENS+=("$OUT")
assert_eq "$(rcli HGET "realms:token:$(sha "$OUT")" expires)" 1907761530 "timestamp expiry"
assert_no_match "$TOK_A" "^$TOK_B\$" "tokens differ"

# ---- duplicate ----------------------------------------------------------
ctl token add --name alice --group research
assert_eq "$RC" 1 "duplicate name refused with 1"
assert_eq "$OUT" "" "nothing on stdout for a refused add"
assert_match "$ERR" "already exists" "duplicate is explained"
assert_eq "$(rcli HGET realms:tokens alice)" "$H_A" "index unchanged"
assert_eq "$(rcli HLEN realms:tokens)" 4 "still four names"
assert_eq "$(rcli --scan --pattern 'realms:token:*' | wc -l)" 4 "still four records"

# Ten concurrent adds of one new name: exactly one wins (WATCH/MULTI/EXEC).
racers=()
for i in $(seq 10); do
	timeout 20 "$CTL" token add --name racer >"$T_DIR/race.$i.out" 2>"$T_DIR/race.$i.err" &
	racers+=($!)
done
wait "${racers[@]}"    # only these: a bare wait would wait for Redis too
wins=0
for i in $(seq 10); do
	if [ -s "$T_DIR/race.$i.out" ]; then
		wins=$((wins + 1))
		RACE_TOK=$(cat "$T_DIR/race.$i.out")
	fi
	cat "$T_DIR/race.$i.err" >>"$ERRS"
done
assert_eq "$wins" 1 "concurrent adds of one name: one winner"
TOKENS+=("$RACE_TOK")
assert_eq "$(rcli HGET realms:tokens racer)" "$(sha "$RACE_TOK")" "the winner's hash is indexed"
assert_eq "$(rcli --scan --pattern 'realms:token:*' | wc -l)" 5 "no orphan record from the losers"

# ---- list ----------------------------------------------------------------
# carol: past her expiry while still active -> "expired"
rcli HSET "realms:token:$H_C" expires $(( $(date +%s) - 10 )) >/dev/null
ctl token list
assert_eq "$RC" 0 "list"
mapfile -t lines <<<"$OUT"
assert_match "${lines[0]}" '^NAME +GROUP +STATUS +CREATED +EXPIRES +ID$' "table header"
assert_eq "${#lines[@]}" 6 "header + 5 rows"
assert_match "${lines[1]}" "^alice +default +active +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z +never +${H_A:0:12}\$" "alice row"
assert_match "${lines[2]}" "^bob +research +active +[0-9T:Z-]{20} +2100-01-01T00:00:00Z +${H_B:0:12}\$" "bob row"
assert_match "${lines[3]}" "^carol@example.com +default +expired " "expired shows as expired"
assert_match "${lines[4]}" "^dan +default +active +[0-9T:Z-]{20} +2030-06-15T13:45:30Z " "dan row"

ctl token list --json
assert_eq "$RC" 0 "list --json"
JSON=$OUT
assert_match "$JSON" "^\[" "json starts with ["
assert_match "$JSON" "\{\"name\": \"alice\", \"group\": \"default\", \"status\": \"active\", \"created\": [0-9]+, \"expires\": 0, \"revoked_at\": 0, \"id\": \"${H_A:0:12}\"\}" "alice object"
assert_match "$JSON" "\"name\": \"bob\", \"group\": \"research\", \"status\": \"active\", \"created\": [0-9]+, \"expires\": 4102444800" "bob object"
if command -v python3 >/dev/null; then
	names=$(python3 -c 'import json,sys; a=json.load(sys.stdin); print(",".join(o["name"] for o in a))' <<<"$JSON")
	assert_eq "$names" "alice,bob,carol@example.com,dan,racer" "json parses, sorted by name"
fi
ctl token list --json
assert_eq "$OUT" "$JSON" "json is stable"

# ---- revoke ------------------------------------------------------------
spawn sub timeout 10 redis-cli -p "$REDIS_PORT" SUBSCRIBE realms:token-events
SUB_PID=$SPAWNED
for _ in $(seq 50); do
	[ "$(rcli PUBSUB NUMSUB realms:token-events | tail -1)" = 1 ] && break
	sleep 0.1
done
assert_eq "$(rcli PUBSUB NUMSUB realms:token-events | tail -1)" 1 "subscriber ready"
ctl token revoke alice
assert_eq "$RC" 0 "revoke alice"
assert_match "$OUT" "1 subscriber notified" "revoke reports the subscriber"
seen=0
for _ in $(seq 50); do
	grep -qx "$H_A" "$T_DIR/sub.log" && { seen=1; break; }
	sleep 0.1
done
assert_eq "$seen" 1 "subscriber saw the hash on realms:token-events"
stop_pid "$SUB_PID"
assert_eq "$(rcli HGET "realms:token:$H_A" status)" revoked "status revoked"
ra=$(rcli HGET "realms:token:$H_A" revoked_at)
now=$(date +%s)
assert_match "$(( ra >= now - 5 && ra <= now ))" '^1$' "revoked_at is now"
ctl token list
assert_match "$OUT" $'\n'"alice +default +revoked " "list shows revoked"

ctl token revoke alice
assert_eq "$RC" 0 "revoking again is fine"
assert_match "$OUT" "already revoked" "says already revoked"
assert_eq "$(rcli HGET "realms:token:$H_A" revoked_at)" "$ra" "first revoked_at kept"
ctl token revoke nobody
assert_eq "$RC" 1 "revoke unknown exits 1"
assert_match "$ERR" "no token named 'nobody'" "unknown name explained"
ctl token revoke 'bad name'
assert_eq "$RC" 2 "revoke with a malformed name: usage error"
ctl token add --name alice
assert_eq "$RC" 1 "a revoked token keeps its name"

# ---- configuration and addresses -------------------------------------
cat >"$T_DIR/realms.json" <<EOF
{"redis": "127.0.0.1:$REDIS_PORT", "groups": ["default", "research"]}
EOF
ctl_noenv() { REALMS_REDIS= ctl "$@"; }
ctl_noenv -c "$T_DIR/realms.json" token add --name erin --group research
assert_eq "$RC" 0 "-c: address from the config, group from its list"
TOKENS+=("$OUT")
assert_eq "$(rcli HGET realms:tokens erin)" "$(sha "$OUT")" "erin stored via the config's address"
ctl_noenv -c "$T_DIR/realms.json" token add --name frank --group nosuch
assert_eq "$RC" 1 "-c: unknown group refused"
assert_match "$ERR" "group 'nosuch' is not defined" "unknown group explained"
ctl token add --name frank --group nosuch
assert_eq "$RC" 0 "without -c any well-formed group is taken"
TOKENS+=("$OUT")

BAD_PORT=$(free_port)
cat >"$T_DIR/bad-redis.json" <<EOF
{"redis": "127.0.0.1:$BAD_PORT", "groups": ["default"]}
EOF
ctl -c "$T_DIR/bad-redis.json" token list
assert_eq "$RC" 0 "REALMS_REDIS overrides the config's address"
ctl_noenv -c "$T_DIR/bad-redis.json" token list
assert_eq "$RC" 1 "Redis down: exit 1"
assert_match "$ERR" "cannot connect to Redis" "Redis down explained"
echo '{"redis": 5}' >"$T_DIR/broken.json"
ctl -c "$T_DIR/broken.json" token add --name x
assert_eq "$RC" 1 "invalid config: exit 1"
assert_match "$ERR" "broken.json" "invalid config names the file"
ctl -c "$T_DIR/broken.json" token list
assert_eq "$RC" 1 "invalid config: exit 1 even when REALMS_REDIS is set"

# A second Redis on a unix socket only.
SOCK="$T_DIR/redis.sock"
spawn redis-unix redis-server --port 0 --unixsocket "$SOCK" --unixsocketperm 700 \
	--save '' --appendonly no --dir "$T_DIR" --daemonize no
wait_file "$SOCK" 10 || fail "unix redis did not start"
REALMS_REDIS="$SOCK" ctl token add --name gina
assert_eq "$RC" 0 "REALMS_REDIS=/path (unix socket)"
TOKENS+=("$OUT")
assert_eq "$(redis-cli -s "$SOCK" HGET realms:tokens gina)" "$(sha "$OUT")" "gina in the unix Redis"
assert_eq "$(rcli HEXISTS realms:tokens gina)" 0 "gina not in the TCP Redis"
REALMS_REDIS="unix:$SOCK" ctl token list
assert_eq "$RC" 0 "REALMS_REDIS=unix:/path"
assert_match "$OUT" $'\n'"gina +default +active " "listed from the unix Redis"
REALMS_REDIS="$SOCK" ctl token revoke gina
assert_eq "$RC" 0 "revoke over the unix socket"

# ---- no secret anywhere -------------------------------------------------
# Every key, its type, and every value (hash fields and values, strings,
# lists, sets) of both Redis instances.
dump() {
	local k
	"$@" --scan | while IFS= read -r k; do
		echo "KEY $k"
		case "$("$@" TYPE "$k")" in
			hash) "$@" HGETALL "$k" ;;
			string) "$@" GET "$k" ;;
			list) "$@" LRANGE "$k" 0 -1 ;;
			set) "$@" SMEMBERS "$k" ;;
			zset) "$@" ZRANGE "$k" 0 -1 WITHSCORES ;;
			stream) "$@" XRANGE "$k" - + ;;
		esac
	done
}
{ dump redis-cli -p "$REDIS_PORT"; dump redis-cli -s "$SOCK"; } >"$T_DIR/dump.txt"
assert_eq "$(grep -c '^KEY ' "$T_DIR/dump.txt")" 10 "dump covers the keys (2 indexes, 8 records)"
assert_eq "${#TOKENS[@]}" 8 "eight tokens created"
leaks=0
for t in "${TOKENS[@]}"; do
	[ -n "$t" ] || { leaks=$((leaks + 1)); continue; }
	# the whole token, and its random part alone
	grep -qF -- "$t" "$T_DIR/dump.txt" && leaks=$((leaks + 1))
	grep -qF -- "${t#sk-realms-}" "$T_DIR/dump.txt" && leaks=$((leaks + 1))
	grep -qF -- "${t#sk-realms-}" "$ERRS" && leaks=$((leaks + 1))
	# and its hash is what the index holds
	grep -qx -- "$(sha "$t")" "$T_DIR/dump.txt" || leaks=$((leaks + 1))
done
assert_eq "$leaks" 0 "no token in Redis or on stderr; every hash is sha256(token)"
assert_eq "$(grep -c 'sk-realms-' "$T_DIR/dump.txt")" 0 "no token prefix in Redis"

finish
