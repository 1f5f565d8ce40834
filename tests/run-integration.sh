#!/bin/bash
# Run the integration tests in tests/integration/ in parallel (each test picks its own
# ports), with a time limit each. A test exits 0 (pass), 77 (skip: prints the reason) or
# anything else (fail). Prints each result and a total line.
set -u
cd "$(dirname "$0")/.." || exit 1
: "${RINGLET_BUILD:=build}"
export RINGLET_BUILD
RINGLET_BIN=$(pwd)/$RINGLET_BUILD/ringlet
export RINGLET_BIN
: "${JOBS:=4}"
: "${TEST_TIMEOUT:=600}"
logdir=$(mktemp -d /tmp/ringlet-it.XXXXXX)
tests=$(ls tests/integration/test_*.sh tests/integration/test_*.py 2>/dev/null | sort)
[ -n "${ONLY:-}" ] && tests=$(printf '%s\n' $tests | grep -- "$ONLY")


# At most JOBS tests at once.
running=0
for t in $tests; do
	(
		name=$(basename "$t")
		case "$t" in
		*.py) set -- python3 "$t" ;;
		*) set -- bash "$t" ;;
		esac
		start=$(date +%s)
		timeout -k 10 "$TEST_TIMEOUT" "$@" >"$logdir/$name.log" 2>&1
		echo "$? $(($(date +%s) - start))" >"$logdir/$name.rc"
	) &
	running=$((running + 1))
	if [ "$running" -ge "$JOBS" ]; then
		wait -n 2>/dev/null || wait
		running=$((running - 1))
	fi
done
wait

pass=0 fail=0 skip=0
for t in $tests; do
	name=$(basename "$t")
	set -- $(cat "$logdir/$name.rc" 2>/dev/null || echo "1 0")
	rc=$1 secs=$2
	case $rc in
	0) pass=$((pass + 1)); printf '  ok      %s (%ss)\n' "$name" "$secs" ;;
	77) skip=$((skip + 1)); printf '  skip    %s: %s\n' "$name" "$(tail -n 1 "$logdir/$name.log")" ;;
	*)
		fail=$((fail + 1))
		printf '  FAIL    %s (exit %s, %ss); last lines of its log:\n' "$name" "$rc" "$secs"
		tail -n 30 "$logdir/$name.log" | sed 's/^/      /'
		;;
	esac
done
echo "integration: $pass passed, $fail failed, $skip skipped (logs in $logdir)"
[ "$fail" -eq 0 ]
