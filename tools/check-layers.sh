#!/bin/sh
# The engine's one-way rule (docs/DESIGN.md, "Layers"): a file may include engine headers
# of its own layer and of the layers below it, never above; a layer's internal header
# (loop.h, internal.h) only from its own folder; and no .c file declares another file's
# symbols itself (extern). Prints each breach; exits 1 if there is any.
set -u
cd "$(dirname "$0")/.." || exit 1

# Rank of the layer a path belongs to: utilities (engine/*.[ch], ebpf/, proto/) 0, then
# loop, xprt, mux, roles, svc, and the entry points (engine/ringlet.c) on top.
rank() {
	case "$1" in
	engine/loop/*) echo 1 ;;
	engine/xprt/*) echo 2 ;;
	engine/mux/*) echo 3 ;;
	engine/roles/*) echo 4 ;;
	engine/svc/*) echo 5 ;;
	engine/ringlet.c) echo 6 ;;
	*) echo 0 ;;
	esac
}

bad=0
for f in engine/*.[ch] engine/*/*.[ch]; do
	[ -f "$f" ] || continue
	mine=$(rank "$f")
	dir=$(dirname "$f")
	for inc in $(sed -n 's/^#include "\(engine\/[^"]*\)".*/\1/p' "$f"); do
		theirs=$(rank "$inc")
		if [ "$theirs" -gt "$mine" ]; then
			echo "check-layers: $f includes $inc (a layer above it)"
			bad=1
		fi
		case "$inc" in
		*/loop.h | */internal.h)
			if [ "$(dirname "$inc")" != "$dir" ]; then
				echo "check-layers: $f includes $inc (internal to $(dirname "$inc"))"
				bad=1
			fi
			;;
		esac
	done
	case "$f" in
	*.c)
		if grep -n '^[[:space:]]*extern ' "$f" >/dev/null; then
			echo "check-layers: $f declares an extern symbol itself: $(grep -n '^[[:space:]]*extern ' "$f" | head -1)"
			bad=1
		fi
		;;
	esac
done
if [ "$bad" -eq 0 ]; then
	echo "check-layers: engine/ depends one way (utilities < loop < xprt < mux < roles < svc < ringlet.c)"
fi
exit "$bad"
