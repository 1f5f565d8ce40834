#!/bin/sh
# Install the Debian packages the benchmark harness uses (bench/run.sh calls this first).
# Idempotent and silent when everything is present: dpkg-query first, apt-get only for what
# is missing, and `apt-get update` only when an install fails (a fresh machine has no lists).
# Exit status 0 when everything in PKGS is installed afterwards, 1 otherwise (reason on
# stderr). OPTIONAL packages are tried too, but the bench runs without them:
# android-boringssl provides `bssl-tool`, whose `speed` is the AES-128-GCM baseline of the
# ringlet-wss path (without it results.json records why and the ratio is left out).
set -eu

PKGS="haproxy socat gnuplot-nox iperf3 python3 procps"
OPTIONAL="android-boringssl"

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=""
for p in $PKGS; do
	installed "$p" || missing="$missing $p"
done
optional=""
for p in $OPTIONAL; do
	installed "$p" || optional="$optional $p"
done
[ -z "$missing$optional" ] && exit 0
if [ -z "$missing" ] && [ "$(id -u)" != 0 ]; then
	echo "bench/deps: optional package(s)$optional missing (run as root to install them)" >&2
	exit 0
fi

if [ "$(id -u)" != 0 ]; then
	echo "bench/deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
log=${TMPDIR:-/tmp}/ringlet-bench-deps.log
: >"$log"
export DEBIAN_FRONTEND=noninteractive
if [ -n "$optional" ]; then
	echo "bench/deps: installing$optional (optional)" >&2
	if ! apt-get install -y -qq --no-install-recommends $optional >>"$log" 2>&1; then
		apt-get update -qq >>"$log" 2>&1 || true
		apt-get install -y -qq --no-install-recommends $optional >>"$log" 2>&1 ||
			echo "bench/deps: could not install$optional; the bench runs without it (log: $log)" >&2
	fi
fi
[ -z "$missing" ] && exit 0
echo "bench/deps: installing$missing" >&2
if ! apt-get install -y -qq --no-install-recommends $missing >>"$log" 2>&1; then
	apt-get update -qq >>"$log" 2>&1 || true
	if ! apt-get install -y -qq --no-install-recommends $missing >>"$log" 2>&1; then
		tail -n 20 "$log" >&2
		echo "bench/deps: could not install$missing (log: $log)" >&2
		exit 1
	fi
fi
# haproxy's package enables and starts a system service; the bench runs its own instances.
if command -v systemctl >/dev/null 2>&1; then
	systemctl disable --now haproxy >/dev/null 2>&1 || true
fi
exit 0
