#!/bin/sh
# Install the Debian packages the benchmark harness uses (bench/run.sh calls this first).
# Idempotent and silent when everything is present: dpkg-query first, apt-get only for what
# is missing, and `apt-get update` only when an install fails (a fresh machine has no lists).
# Exit status 0 when everything is installed afterwards, 1 otherwise (reason on stderr).
set -eu

PKGS="haproxy socat gnuplot-nox iperf3 python3 procps"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "bench/deps: missing packages:$missing (run as root to install them)" >&2
	exit 1
fi
log=${TMPDIR:-/tmp}/ringlet-bench-deps.log
echo "bench/deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends $missing >"$log" 2>&1; then
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
