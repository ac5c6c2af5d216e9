#!/usr/bin/env bash
# realms-test: no-agent
# Installing Realms, as make install and as the Debian package:
# - the man pages pass groff -ww, mandoc -T lint and man -l without a word;
# - make install's rules into a scratch DESTDIR: layout, modes, the prefix
#   given at install time written into the units, an existing realms.json
#   kept, the example configuration valid;
# - dpkg-buildpackage -b in a scratch copy of the tree (the tree itself is
#   left as it was): no compiler warning, the contents, Depends and
#   Recommends, lintian --pedantic silent;
# - as root, in a throwaway mount namespace (overlays on tmpfs over /etc,
#   /usr and /var, a tmpfs /run): dpkg -i, then the agent run as its unit
#   says and HAProxy with Debian's own haproxy.cfg (chroot, user haproxy)
#   plus the drop-in's files, environment and bind mounts: a request
#   reaches the mock upstream and is billed in Redis, nobody cannot reach
#   the sockets, the relay socket is haproxy:haproxy 0600, systemd-analyze
#   verify passes on the units; dpkg --purge. The host is as before.
. "$(dirname "$0")/lib.sh"

quiet_run() {   # quiet_run WHAT CMD...: ok when CMD succeeds silently
	local what=$1 out; shift
	out=$("$@" 2>&1)
	local rc=$?
	if [ $rc -eq 0 ] && [ -z "$out" ]; then ok "$what"; else fail "$what: $out"; fi
}
mode_of() { stat -c '%U:%G %a' "$1" 2>&1; }

# ---------------------------------------------------------------------------
# Inside the namespace (the second half of this script, run by the first).
# ---------------------------------------------------------------------------
in_namespace() {
	local deb=$1 ns=$T_DIR/ns d unit dropin

	# Every path the package, dpkg and the services write goes to a tmpfs.
	mkdir -p "$ns"
	mount -t tmpfs realms-test "$ns" || { fail "tmpfs"; finish; }
	for d in etc usr var; do
		mkdir -p "$ns/$d-up" "$ns/$d-work"
		mount -t overlay realms-test -o "lowerdir=/$d,upperdir=$ns/$d-up,workdir=$ns/$d-work" "/$d" ||
			{ fail "overlay on /$d"; finish; }
	done
	mount -t tmpfs -o mode=0755 realms-test /run || { fail "tmpfs on /run"; finish; }
	# What boot would have made for HAProxy (/run/haproxy).
	systemd-tmpfiles --create haproxy.conf >/dev/null 2>&1

	# dpkg -i, the maintainer scripts included (no systemd runs here:
	# /run/systemd/system is absent, so nothing is started or reloaded).
	if dpkg -i "$deb" >"$T_DIR/dpkg.log" 2>&1; then ok "dpkg -i"; else fail "dpkg -i: $(tail -5 "$T_DIR/dpkg.log")"; finish; fi
	if getent passwd realms >/dev/null; then ok "postinst created the user realms"; else fail "no user realms"; fi
	assert_eq "$(mode_of /etc/realms)" "root:realms 750" "/etc/realms"
	assert_eq "$(mode_of /etc/realms/realms.json)" "root:realms 640" "/etc/realms/realms.json"
	assert_eq "$(mode_of /run/realms)" "realms:haproxy 750" "/run/realms (tmpfiles.d)"
	assert_eq "$(mode_of /run/haproxy/realms)" "haproxy:haproxy 700" "/run/haproxy/realms (tmpfiles.d)"
	assert_eq "$(mode_of /var/lib/realms/spool)" "realms:haproxy 750" "the spool"

	unit=$(dpkg -L realms | grep '/systemd/system/realms-agent.service$')
	dropin=/usr/share/realms/systemd/haproxy-realms.conf
	quiet_run "systemd-analyze verify realms-agent.service" systemd-analyze verify --man=no "$unit"
	mkdir -p "$T_DIR/units/haproxy.service.d"
	cp "$(dpkg -L haproxy | grep '/systemd/system/haproxy.service$')" "$T_DIR/units/"
	cp "$dropin" "$T_DIR/units/haproxy.service.d/realms.conf"
	quiet_run "systemd-analyze verify haproxy.service with the drop-in" \
		systemd-analyze verify --man=no "$T_DIR/units/haproxy.service"
	assert_match "$(systemd-analyze security --offline=true "$unit" 2>&1 | tail -1)" \
		"Overall exposure level .* OK" "systemd-analyze security: OK"

	# A configuration with a mock channel, written over the example (its
	# owner and mode stay).
	start_redis "" || { fail "redis"; finish; }
	start_mock up || { fail "mock"; finish; }
	cat >/etc/realms/realms.json <<JSON
{
  "redis": "127.0.0.1:$REDIS_PORT",
  "models": [{"name": "claude-sonnet-4-5", "enabled": true}],
  "channels": [
    {"name": "up", "base_url": "http://127.0.0.1:$MOCK_PORT",
     "credentials": [{"name": "k1", "key": "sk-up-1"}],
     "models": {"claude-sonnet-4-5": "claude-sonnet-4-5-20250929"}}
  ]
}
JSON
	realmsctl -c /etc/realms/realms.json render-haproxy -o /etc/realms/haproxy/channels.cfg \
		--setup-page /etc/realms/haproxy/setup.html || fail "render-haproxy"

	# The agent as its unit runs it: user, groups, umask, no privileges.
	local user group sgroups umask pre start as_unit
	unit_val() { sed -n "s/^$1=//p" "$unit" | tail -1; }
	user=$(unit_val User); group=$(unit_val Group); sgroups=$(unit_val SupplementaryGroups)
	umask=$(unit_val UMask); pre=$(unit_val ExecStartPre); start=$(unit_val ExecStart)
	# setpriv and bash exec in turn: the PID spawned is the agent's.
	# shellcheck disable=SC2016  # "$0" and "$@" belong to that bash
	as_unit=(setpriv --reuid="$user" --regid="$group" --groups="$sgroups" --no-new-privs
		--inh-caps=-all --bounding-set=-all -- bash -c 'umask "$0"; exec "$@"' "$umask")
	# shellcheck disable=SC2086  # the unit's command lines, split as systemd does
	if "${as_unit[@]}" $pre >"$T_DIR/check.log" 2>&1; then ok "ExecStartPre (--check) as $user"; else fail "ExecStartPre: $(cat "$T_DIR/check.log")"; fi
	# shellcheck disable=SC2086
	spawn agent "${as_unit[@]}" $start
	if ! wait_file /run/realms/spop.sock 10 || ! wait_file /run/realms/mirror.sock 10; then fail "agent sockets"; fi
	assert_eq "$(mode_of /run/realms/spop.sock)" "realms:haproxy 770" "spop.sock (UMask=0007: the group reads and writes)"
	assert_eq "$(mode_of /run/realms/mirror.sock)" "realms:haproxy 770" "mirror.sock"

	# HAProxy as the drop-in runs it: Debian's haproxy.cfg (chroot
	# /var/lib/haproxy, user haproxy), the drop-in's environment and bind
	# mounts, its ExecStart with Debian's variables.
	local line src dst cmd gw
	while IFS= read -r line; do
		line=${line#Environment=}; line=${line#\"}; line=${line%\"}
		export "${line?}"
	done < <(grep '^Environment=' "$dropin")
	local envfile kv tunables
	# As systemd reads them: in order, a later file's value winning, a
	# file named with "-" optional.
	while IFS= read -r envfile; do
		if [ -r "${envfile#-}" ]; then
			while IFS= read -r kv; do export "${kv?}"; done < <(env_file "${envfile#-}")
		elif [ "${envfile#-}" = "$envfile" ]; then
			fail "the drop-in's EnvironmentFile $envfile is not installed"
		fi
	done < <(sed -n 's/^EnvironmentFile=//p' "$dropin")
	assert_eq "$(sed -n 's/^EnvironmentFile=//p' "$dropin" | tr '\n' ' ')" \
		"/usr/share/realms/haproxy/malloc.env -/etc/realms/haproxy/malloc.env " \
		"the drop-in reads malloc.env, then the operator's own (optional)"
	# What HAProxy gets from the drop-in, files read as above.
	tunables=${GLIBC_TUNABLES:-}
	assert_match "$tunables" "glibc.malloc.mmap_threshold=" "the drop-in gives HAProxy malloc.env's allocator settings"
	# glibc ignores a tunable it does not know, silently: each must be in
	# effect with its value (ld.so prints them as the program would get them).
	local t
	for t in ${tunables//:/ }; do
		assert_match "$(GLIBC_TUNABLES=$tunables ld.so --list-tunables | grep "^${t%%=*}:")" \
			"^${t%%=*}: $(printf '0x%x' "${t#*=}") " "glibc applies ${t%%=*}"
	done
	gw=$(free_port)
	export REALMS_LISTEN="127.0.0.1:$gw"   # not the drop-in's 8080: it may be in use here
	# TLS on the client side, as docs/deploy.md says (an absolute crt path:
	# Debian's haproxy.cfg has a crt-base).
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
		-addext subjectAltName=DNS:localhost -keyout "$T_DIR/gw.key" -out "$T_DIR/gw.crt" 2>/dev/null
	cat "$T_DIR/gw.crt" "$T_DIR/gw.key" >"$T_DIR/gw.pem"
	export REALMS_LISTEN_OPTS="ssl crt $T_DIR/gw.pem alpn h2,http/1.1"
	while read -r src dst; do
		mkdir -p "$dst"
		mount --bind "$src" "$dst" || fail "bind mount $src"
	done < <(sed -n 's/^BindPaths=\(.*\):\(.*\)$/\1 \2/p' "$dropin")
	# Debian's values of the unit's variables.
	debian_cmd() {
		local c
		c=$(grep "^$1=/usr/sbin/haproxy" "$dropin" | tail -1)
		c=${c#*=}
		c=${c//\$CONFIG//etc/haproxy/haproxy.cfg}
		c=${c//\$PIDFILE//run/haproxy.pid}
		echo "${c//\$EXTRAOPTS/-S /run/haproxy-master.sock}"
	}
	cmd=$(debian_cmd ExecReload)
	# shellcheck disable=SC2086
	if $cmd >"$T_DIR/haproxy-check.log" 2>&1; then ok "ExecReload's check, with Debian's haproxy.cfg"; else fail "haproxy -c: $(cat "$T_DIR/haproxy-check.log")"; fi
	cmd=$(debian_cmd ExecStart)

	# An https channel's rendered backend loads next to Debian's
	# haproxy.cfg, whose ca-base would break "ca-file @system-ca" on 2.6.
	# (An address, not a name: the check resolves nothing off this host.)
	sed 's|"base_url": "http://127.0.0.1:[0-9]*"|"base_url": "https://127.0.0.1:9443/anthropic"|' \
		/etc/realms/realms.json >"$T_DIR/https.json"
	realmsctl -c "$T_DIR/https.json" render-haproxy -o "$T_DIR/https.cfg" 2>/dev/null
	assert_match "$(grep ' ssl ' "$T_DIR/https.cfg")" 'ca-file /etc/ssl/certs/ca-certificates.crt' \
		"an https channel verifies with Debian's CA bundle"
	# shellcheck disable=SC2086
	local chan=/etc/realms/haproxy/channels.cfg out
	out=$(${cmd/"$chan"/$T_DIR/https.cfg} -c -q 2>&1)
	assert_eq "$?:$out" "0:" "haproxy -c: an https channel with Debian's haproxy.cfg"
	# shellcheck disable=SC2086
	spawn haproxy $cmd
	wait_tcp "$gw" 10 || fail "HAProxy did not listen"
	wait_file /run/haproxy/realms/relay.sock 5
	assert_eq "$(mode_of /run/haproxy/realms/relay.sock)" "haproxy:haproxy 600" "relay.sock"

	# A request through the gateway, billed once.
	local tok code day n
	tok=$(realmsctl -c /etc/realms/realms.json token add --name pkg 2>"$T_DIR/token.log") || fail "token add: $(cat "$T_DIR/token.log")"
	code=$(curl -s -o "$T_DIR/answer" -w '%{http_code} %{http_version}' --max-time 10 \
		--cacert "$T_DIR/gw.crt" --connect-to "localhost:$gw:127.0.0.1:$gw" -H "x-api-key: $tok" \
		-H 'content-type: application/json' \
		--data-binary '{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}' \
		"https://localhost:$gw/v1/messages")
	assert_eq "$code" "200 2" "a request over TLS (h2) through HAProxy and the agent"
	assert_match "$(cat "$T_DIR/answer")" '"usage"' "the mock's answer came back"
	assert_eq "$(find "$T_DIR/rec-up" -name '*.req' | wc -l)" 1 "the mock upstream saw it"
	day=$(date -u +%Y%m%d)
	for _ in $(seq 50); do
		n=$(rcli HGET "realms:usage:model:claude-sonnet-4-5:$day" requests)
		[ "${n:-0}" -ge 1 ] && break
		sleep 0.2
	done
	assert_eq "${n:-0}" 1 "usage recorded in Redis"

	# Only HAProxy's user reaches the sockets (curl exits 7: no connection).
	local sock rc
	for sock in /run/realms/spop.sock /run/realms/mirror.sock /run/haproxy/realms/relay.sock; do
		setpriv --reuid=nobody --regid=nogroup --clear-groups -- \
			curl -s -o /dev/null --max-time 3 --unix-socket "$sock" http://x/ 2>/dev/null
		assert_eq "$?" 7 "nobody cannot connect to $sock"
	done
	setpriv --reuid=haproxy --regid=haproxy --init-groups -- \
		curl -s -o /dev/null --max-time 3 --unix-socket /run/realms/spop.sock http://x/ 2>/dev/null
	rc=$?
	if [ "$rc" -ne 7 ]; then ok "haproxy's user can connect to spop.sock"; else fail "haproxy's user cannot connect to spop.sock"; fi
	setpriv --reuid=nobody --regid=nogroup --clear-groups -- cat /etc/realms/realms.json >/dev/null 2>&1
	assert_eq "$?" 1 "nobody cannot read /etc/realms/realms.json"

	t_stop_all
	for dst in /var/lib/haproxy/run/realms /var/lib/haproxy/run/haproxy/realms; do umount "$dst"; done
	if dpkg --purge realms >>"$T_DIR/dpkg.log" 2>&1; then ok "dpkg --purge"; else fail "dpkg --purge: $(tail -5 "$T_DIR/dpkg.log")"; fi
	if [ ! -e /var/lib/realms ] && [ ! -e /etc/realms ]; then ok "purge removed /var/lib/realms and /etc/realms"
	else fail "purge left $(ls -d /var/lib/realms /etc/realms 2>/dev/null)"; fi
	# Detached now, so that the scratch directory can go.
	umount -l /etc /usr /var /run "$ns"
	finish
}
if [ "${1:-}" = --in-namespace ]; then in_namespace "$2"; fi

# ---------------------------------------------------------------------------
# 1. Man pages
# ---------------------------------------------------------------------------
for page in "$REALMS_SRC"/packaging/man/*.[58]; do
	name=$(basename "$page")
	quiet_run "groff -ww $name" groff -ww -man -Tutf8 -z "$page"
	quiet_run "mandoc -T lint $name" mandoc -T lint "$page"
	out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
	assert_eq "$out" "" "man -l $name"
done

# ---------------------------------------------------------------------------
# 2. make install into a scratch DESTDIR, with the prefix given at install
# ---------------------------------------------------------------------------
D=$T_DIR/destdir
DESTDIR=$D cmake --install "$REALMS_BIN" --prefix /opt/realms >"$T_DIR/install.log" 2>&1 ||
	fail "cmake --install: $(tail -5 "$T_DIR/install.log")"
assert_eq "$(make -s -n -C "$REALMS_SRC" install BUILD=/b PREFIX=/p DESTDIR=/d 2>/dev/null | tail -1)" \
	'DESTDIR="/d" cmake --install /b --prefix "/p"' "make install passes PREFIX and DESTDIR on"
while read -r want path; do
	assert_eq "$(stat -c %a "$D$path" 2>&1)" "$want" "installed $path ($want)"
done <<EOF
755 /opt/realms/sbin/realms-agent
755 /opt/realms/sbin/realmsctl
644 /opt/realms/share/realms/haproxy/realms.cfg
644 /opt/realms/share/realms/haproxy/realms.spoe
644 /opt/realms/share/realms/haproxy/malloc.env
644 /opt/realms/share/realms/lua-shim/realms.lua
644 /opt/realms/share/man/man8/realms-agent.8
644 /opt/realms/share/man/man8/realmsctl.8
644 /opt/realms/share/man/man5/realms.json.5
644 /opt/realms/lib/systemd/system/realms-agent.service
644 /opt/realms/lib/tmpfiles.d/realms.conf
644 /opt/realms/share/realms/systemd/haproxy-realms.conf
750 /etc/realms
750 /etc/realms/haproxy
640 /etc/realms/realms.json
EOF
assert_eq "$(readlink "$D/etc/realms/haproxy/realms.spoe")" /opt/realms/share/realms/haproxy/realms.spoe \
	"realms.spoe next to the rendered files"
assert_match "$(grep '^ExecStart=' "$D/opt/realms/lib/systemd/system/realms-agent.service")" \
	'^ExecStart=/opt/realms/sbin/realms-agent ' "the unit names the prefix given at install time"
assert_match "$(grep '^ExecStart=.' "$D/opt/realms/share/realms/systemd/haproxy-realms.conf")" \
	'-f /opt/realms/share/realms/haproxy/realms.cfg -f /etc/realms/haproxy/channels.cfg' \
	"the drop-in loads realms.cfg from the prefix"
"$REALMS_BIN/realms-agent" -c "$D/etc/realms/realms.json" --check >"$T_DIR/check.log" 2>&1
assert_eq "$?" 0 "the example configuration passes --check"
echo '{"models": []}' >"$D/etc/realms/realms.json"
DESTDIR=$D cmake --install "$REALMS_BIN" --prefix /opt/realms >"$T_DIR/install2.log" 2>&1
assert_eq "$(cat "$D/etc/realms/realms.json")" '{"models": []}' "a second install keeps realms.json"
assert_match "$(cat "$T_DIR/install2.log")" "Keeping: .*/etc/realms/realms.json" "and says so"

# ---------------------------------------------------------------------------
# 3. The Debian package, built in a scratch copy
# ---------------------------------------------------------------------------
before=$(git -C "$REALMS_SRC" status --porcelain --ignored 2>/dev/null)
mkdir -p "$T_DIR/pkg/realms"
tar -C "$REALMS_SRC" --exclude=./build --exclude='./build-*' --exclude=./.git --exclude=./.run \
	--exclude=./fuzz-out -cf - . | tar -C "$T_DIR/pkg/realms" -xf -
(cd "$T_DIR/pkg/realms" && DEB_BUILD_OPTIONS="parallel=2 noddebs" \
	dpkg-buildpackage -b -us -uc) >"$T_DIR/pkg-build.log" 2>&1
assert_eq "$?" 0 "dpkg-buildpackage -b -us -uc"
after=$(git -C "$REALMS_SRC" status --porcelain --ignored 2>/dev/null)
assert_eq "$after" "$before" "the source tree is untouched"
assert_eq "$(grep -c 'warning:' "$T_DIR/pkg-build.log")" 0 "no compiler warning in the package build"
DEB=$(find "$T_DIR/pkg" -maxdepth 1 -name 'realms_*.deb' | head -1)
contents=$(dpkg-deb -c "$DEB" 2>/dev/null | awk '{print $1, $2, $6}')
for want in \
	"-rwxr-xr-x root/root ./usr/sbin/realms-agent" \
	"-rwxr-xr-x root/root ./usr/sbin/realmsctl" \
	"-rw-r----- root/root ./etc/realms/realms.json" \
	"drwxr-x--- root/root ./etc/realms/" \
	"-rw-r--r-- root/root ./usr/share/realms/haproxy/realms.cfg" \
	"-rw-r--r-- root/root ./usr/share/realms/haproxy/realms.spoe" \
	"-rw-r--r-- root/root ./usr/share/realms/haproxy/malloc.env" \
	"-rw-r--r-- root/root ./usr/share/realms/lua-shim/realms.lua" \
	"-rw-r--r-- root/root ./usr/share/realms/systemd/haproxy-realms.conf" \
	"-rw-r--r-- root/root ./usr/lib/tmpfiles.d/realms.conf" \
	"-rw-r--r-- root/root ./usr/share/man/man8/realms-agent.8.gz" \
	"-rw-r--r-- root/root ./usr/share/man/man8/realmsctl.8.gz" \
	"-rw-r--r-- root/root ./usr/share/man/man5/realms.json.5.gz" \
	"-rw-r--r-- root/root ./usr/share/doc/realms/deploy.md.gz" \
	"-rw-r--r-- root/root ./usr/share/doc/realms/examples/anthropic.json"; do
	if grep -qxF -- "$want" <<<"$contents"; then ok "package holds ${want##* }"; else fail "package lacks $want"; fi
done
assert_match "$contents" "systemd/system/realms-agent.service" "package holds the unit"
deps=$(dpkg-deb -f "$DEB" Depends)
for want in 'haproxy \(>= 2\.6\)' 'libhiredis' 'libev4' 'libssl3' 'libcurl4' 'adduser'; do
	assert_match "$deps" "$want" "Depends: $want"
done
assert_eq "$(dpkg-deb -f "$DEB" Recommends)" "redis-server, libjs-chart.js" \
	"Recommends: redis-server, and libjs-chart.js for the dashboard's charts"
# Debian 12's lintian says package-supports-alternative-init-but-no-init.d-script
# (overridden, debian/realms.lintian-overrides); Debian 13's no longer knows
# that tag and calls its override an alien tag.
lint=$(lintian --pedantic -E "$T_DIR"/pkg/realms_*.changes 2>&1 | grep -v 'running with root privileges' |
	grep -v 'alien-tag package-supports-alternative-init-but-no-init.d-script')
assert_eq "$lint" "" "lintian --pedantic"

# ---------------------------------------------------------------------------
# 4. A real install, in a throwaway mount namespace
# ---------------------------------------------------------------------------
host_state() {
	getent passwd realms; getent group realms
	dpkg-query -W -f='${Status}\n' realms 2>&1
	ls -ld /etc/realms /var/lib/realms /run/realms /run/haproxy/realms 2>&1
}
if [ "$(id -u)" -ne 0 ]; then
	fail "the install test needs root (unshare -m, dpkg -i)"
else
	host_before=$(host_state)
	# Its scratch directory inside ours: the tmpfs mounted there goes with the
	# namespace, and the directory with ours.
	# In a chroot (a bare Debian root made with debootstrap), / is not a
	# mount point and its propagation cannot be changed: run with it as
	# it is, which is safe only when no mount is shared with the host.
	prop=private
	if ! mountpoint -q /; then
		grep -q ' shared:' /proc/self/mountinfo &&
			fail "in a chroot whose mounts are shared: the install would leak to the host"
		prop=unchanged
	fi
	unshare -m --propagation "$prop" env REALMS_BIN="$REALMS_BIN" REALMS_SRC="$REALMS_SRC" TMPDIR="$T_DIR" \
		bash "$0" --in-namespace "$DEB" >"$T_DIR/ns.log" 2>&1
	rc=$?
	sed 's/^/    /' "$T_DIR/ns.log"
	assert_eq "$rc" 0 "the install in a namespace"
	assert_eq "$(host_state)" "$host_before" "the host is as before"
fi
finish
