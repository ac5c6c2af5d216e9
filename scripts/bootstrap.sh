#!/usr/bin/env bash
# Installs the Debian packages Realms builds, tests and runs with.
# Idempotent: asks apt only for what dpkg says is missing, so a machine that
# already has everything never touches the network.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config
  libev-dev libhiredis-dev libssl-dev libjsmn-dev libcmocka-dev libcurl4-openssl-dev
  haproxy redis-server lua5.3
  clang libclang-rt-dev
  curl wrk ca-certificates
  # tests that read JSON, CSV or hold a mute socket (standard library only)
  python3
  # test_packaging: the package build, its lint, the man pages, the units,
  # and what the package needs to install (adduser).
  debhelper dpkg-dev lintian groff mandoc man-db systemd adduser
  # test_prometheus: a real Prometheus scrapes the agent's /metrics
  # (promtool checks the exposition format).
  prometheus
  # The dashboard's charts (served by the agent, no CDN), and the headless
  # browser test_dashboard drives.
  libjs-chart.js chromium
)
# Debian 13 moved systemd.pc (the package's systemd directories) out of
# systemd into systemd-dev, which Debian 12 does not have.
if [ -r /etc/os-release ] && [ "$(. /etc/os-release && echo "${VERSION_ID:-}")" != 12 ]; then
  PKGS+=(systemd-dev)
fi

missing=()
for p in "${PKGS[@]}"; do
  st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "bootstrap: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "bootstrap: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
