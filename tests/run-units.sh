#!/bin/sh
# Run criterion unit-test binaries; print one line per binary and a total.
# Exit status 1 if any binary fails.
set -u
pass=0 fail=0 failed=""
for t in "$@"; do
	# A hung test must not hang CI: each binary gets UNIT_TIMEOUT seconds.
	out=$(timeout -k 5 "${UNIT_TIMEOUT:-300}" "$t" --jobs 2 2>&1)
	rc=$?
	syn=$(printf '%s\n' "$out" | grep 'Synthesis:' | tail -n 1)
	tested=$(printf '%s' "$syn" | sed -n 's/.*Tested: \([0-9]*\).*/\1/p')
	passing=$(printf '%s' "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
	tested=${tested:-0} passing=${passing:-0}
	if [ $rc -ne 0 ] || [ "$tested" -eq 0 ]; then
		printf '%s\n' "$out" | grep -v '^\[----\]' | tail -n 40
		printf '  FAIL    %s (%s/%s)\n' "$t" "$passing" "$tested"
		failed="$failed $t"
	else
		printf '  ok      %s (%s tests)\n' "$t" "$tested"
	fi
	pass=$((pass + passing))
	fail=$((fail + tested - passing))
	[ $rc -ne 0 ] && [ "$tested" -eq "$passing" ] && fail=$((fail + 1))
done
echo "units: $pass passed, $fail failed"
[ -z "$failed" ]
