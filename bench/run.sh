#!/bin/sh
# ringlet benchmark runner: `make bench` calls this as RINGLET_BUILD=$(BUILD) sh bench/run.sh.
# Installs what the harness needs (bench/deps.sh), raises the open-file limit, then runs the
# harness (bench/harness.py). Environment (all optional; see bench/README.md):
#   BENCH_QUICK=1          short run (about 2 minutes)
#   BENCH_TINY=1           seconds-long smoke configuration (tests/integration/test_bench_smoke.sh)
#   BENCH_SCENARIOS=1,2,…  scenarios to run (default: all ten; BENCH_QUICK=1: 1-6)
#   BENCH_PATHS=direct,…   paths to measure (default: every one available)
#   BENCH_REPS=N           repetitions per figure (default 3)
#   BENCH_OUT=DIR          where results/<timestamp>/ goes (default bench/results)
#   BENCH_BASE=REV         also measure path ringlet-base: ringlet built at git revision
#                          REV (once, into build-base/<commit>/)
#   RINGLET_BIN, LOADGEN_BIN   binaries (default $RINGLET_BUILD/ringlet, $RINGLET_BUILD/bench/loadgen)
#   PEER_BIN=DIR[:DIR…]    directories with other tunnels' binaries (rathole, wstunnel, bore,
#                          chisel, frps/frpc), searched before PATH: their bench/tunnels/*.conf
#                          paths run when their binaries are found ("Peer tunnels")
# Exit status: 0 when every measurement ran, 1 when some failed (see summary.md), 77 when a
# dependency is missing and cannot be installed.
set -u
# PEER_BIN's directories as absolute paths (the harness runs from the repository's root).
if [ -n "${PEER_BIN:-}" ]; then
	abs=
	for d in $(printf '%s' "$PEER_BIN" | tr ':' ' '); do
		a=$(cd "$d" 2>/dev/null && pwd) || { echo "bench: PEER_BIN: no directory $d" >&2; exit 2; }
		abs=${abs:+$abs:}$a
	done
	export PEER_BIN="$abs"
fi
cd "$(dirname "$0")/.." || exit 1

# 10k streams need more descriptors than the default; without CAP_SYS_RESOURCE only up to
# the hard limit (the harness records the limit it got and sizes the scale test to it).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if ! sh bench/deps.sh; then
	echo "bench: missing dependencies that could not be installed (see above)" >&2
	exit 77
fi
for t in python3 haproxy socat iperf3 gnuplot; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "bench: $t not found after bench/deps.sh" >&2
		exit 77
	fi
done
exec python3 bench/harness.py "$@"
