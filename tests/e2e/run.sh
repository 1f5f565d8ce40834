#!/bin/sh
# End-to-end scenario: Prometheus federation from two client clusters through ringlet
# tunnels, each host in its own network namespace (see tests/e2e/README.md).
#
#   SERIES=10000 RINGLET_BUILD=build sh tests/e2e/run.sh
#   E2E_INGRESS=1 sh tests/e2e/run.sh      (or: sh tests/e2e/run.sh --ingress)
#   E2E_TENANTS=1 sh tests/e2e/run.sh      (or: sh tests/e2e/run.sh --tenants)
#
# E2E_INGRESS=1 / --ingress: the clients connect through an nginx ingress (TLS, test CA) in
# the observability namespace with wss://<cluster>.prometheus.example.com/connect, the seed's
# exact URL; without it they dial ws://<cluster>.prometheus.example.com:8123/connect.
# E2E_TENANTS=1 / --tenants: three client clusters behind one multi-tenant exit node
# (--tunnels), a fourth added by a live reload of its tunnels file.
# Environment: SERIES (exporter series per client cluster, default 10000), RINGLET_BUILD
# (build directory, default build) or RINGLET_BIN (the binary itself, wins), SCRAPE_INTERVAL
# (default 15s, the seed's), E2E_REPORT (report file; default $RINGLET_BUILD/e2e-report.md,
# or e2e-ingress-report.md / e2e-tenants-report.md with E2E_INGRESS / E2E_TENANTS, when
# RINGLET_BIN is not given), E2E_TIMEOUT
# (seconds, default 900), E2E_KEEP=1.
# Exit status: 0 pass, 77 skipped (the reason is the last line), anything else: fail.
set -u
for arg in "$@"; do
	case $arg in
	--ingress) E2E_INGRESS=1 ;;
	--plain) E2E_INGRESS=0 E2E_TENANTS=0 ;;
	--tenants) E2E_TENANTS=1 ;;
	*) echo "usage: $0 [--ingress|--tenants|--plain]" >&2; exit 2 ;;
	esac
done
: "${E2E_INGRESS:=0}" "${E2E_TENANTS:=0}"
case $E2E_INGRESS in '' | 0 | no | false) E2E_INGRESS=0 ;; *) E2E_INGRESS=1 ;; esac
case $E2E_TENANTS in '' | 0 | no | false) E2E_TENANTS=0 ;; *) E2E_TENANTS=1 ;; esac
if [ "$E2E_INGRESS" = 1 ] && [ "$E2E_TENANTS" = 1 ]; then
	echo "$0: E2E_INGRESS and E2E_TENANTS together are not supported (yet): pick one" >&2
	exit 2
fi
export E2E_INGRESS E2E_TENANTS
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
: "${SERIES:=10000}"
: "${RINGLET_BUILD:=build}"
case "$RINGLET_BUILD" in /*) build=$RINGLET_BUILD ;; *) build=$repo/$RINGLET_BUILD ;; esac
if [ -z "${RINGLET_BIN:-}" ]; then
	RINGLET_BIN=$build/ringlet
	if [ "$E2E_INGRESS" = 1 ]; then
		: "${E2E_REPORT:=$build/e2e-ingress-report.md}"
	elif [ "$E2E_TENANTS" = 1 ]; then
		: "${E2E_REPORT:=$build/e2e-tenants-report.md}"
	else
		: "${E2E_REPORT:=$build/e2e-report.md}"
	fi
fi
export SERIES RINGLET_BIN
[ -n "${E2E_REPORT:-}" ] && export E2E_REPORT

skip() {
	echo "$*"
	exit 77
}
[ "$(id -u)" = 0 ] || skip "e2e: needs root (network namespaces, veth links)"
[ -x "$RINGLET_BIN" ] || skip "e2e: ringlet binary not found at $RINGLET_BIN (build it first)"
if ! sh "$here/deps.sh"; then
	command -v prometheus >/dev/null 2>&1 || skip "e2e: no prometheus binary and apt-get could not install Debian's prometheus package"
fi
for cmd in prometheus ip tc curl python3; do
	command -v "$cmd" >/dev/null 2>&1 || skip "e2e: $cmd not found"
done
if [ "$E2E_INGRESS" = 1 ]; then
	# Debian installs nginx in /usr/sbin, which a non-login root PATH may lack.
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] ||
		skip "e2e (ingress): no nginx and apt-get could not install Debian's nginx package"
	command -v openssl >/dev/null 2>&1 || skip "e2e (ingress): openssl not found"
fi

RUN_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
export E2E_RUN_ID=$RUN_ID
probe=rle2e-$RUN_ID-probe
if ! ip netns add "$probe" 2>/dev/null; then
	skip "e2e: cannot create network namespaces here (ip netns add failed)"
fi
if ! ip -n "$probe" link add pa type veth peer name pb 2>/dev/null; then
	ip netns del "$probe" 2>/dev/null
	skip "e2e: cannot create veth links here"
fi
ip netns del "$probe"

# The driver cleans up after itself; this is the fallback if it dies hard (SIGKILL, OOM):
# kill whatever still runs in this run's namespaces and delete them.
cleanup() {
	trap - EXIT
	if [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		i=0
		while kill -0 "$pid" 2>/dev/null && [ $i -lt 60 ]; do
			sleep 0.5
			i=$((i + 1))
		done
		kill -KILL "$pid" 2>/dev/null
	fi
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^rle2e-$RUN_ID-"); do
		echo "e2e cleanup: removing leftover namespace $ns"
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
		sleep 0.2
		ip netns del "$ns" 2>/dev/null
		rm -rf "/etc/netns/$ns"
	done
	rm -rf /etc/netns/rle2e-"$RUN_ID"-* 2>/dev/null
}
trap cleanup EXIT
trap 'cleanup; exit 143' TERM
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 129' HUP

python3 "$here/e2e.py" &
pid=$!
wait "$pid"
rc=$?
pid=
exit $rc
