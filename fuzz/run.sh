#!/bin/sh
# Run each libFuzzer driver for N seconds on its seed corpus (fuzz/corpus/<name>/).
# Fails on the first crash or sanitizer report.
set -eu
secs=$1
shift
for f in "$@"; do
	name=$(basename "$f")
	work=$(mktemp -d /tmp/ringlet-fuzz-$name.XXXXXX)
	[ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$work/"
	echo "  FUZZ    $name for ${secs}s"
	"$f" -max_total_time="$secs" -print_final_stats=0 -artifact_prefix="$work/" "$work" \
		>"$work.log" 2>&1 || { tail -n 40 "$work.log"; echo "fuzz: $name failed (artifacts in $work)"; exit 1; }
	rm -rf "$work" "$work.log"
done
echo "fuzz: all drivers ran clean"
