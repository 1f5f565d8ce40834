#!/bin/sh
# make demo: a ringlet server, a client and a sample upstream (a Prometheus-like HTTP
# server) on loopback; fetch /federate through the tunnel's data plane and print a summary.
# Everything started here is stopped on exit.
set -u
cd "$(dirname "$0")/.."
BIN=${RINGLET_BUILD:-build}/ringlet
dir=$(mktemp -d /tmp/ringlet-demo.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# Free ports: the control port, and the tunnelled port (the same number on the upstream's
# address 127.0.0.2 and on the data plane's 127.0.0.1, as with inlets).
port() { python3 -c 'import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])' "$1"; }
CTL=$(port 127.0.0.1)
PORT=$(port 127.0.0.2)
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/token"
echo >>"$dir/token"

python3 tools/demo_upstream.py 127.0.0.2 "$PORT" & pids="$pids $!"
"$BIN" server --auto-tls=false --token-file "$dir/token" --control-addr 127.0.0.1 \
	--control-port "$CTL" --data-addr 127.0.0.1 2>"$dir/server.log" & pids="$pids $!"
sleep 0.3
"$BIN" client --url "ws://127.0.0.1:$CTL" --token-file "$dir/token" --upstream 127.0.0.2 \
	--ports "$PORT" --auto-tls=false 2>"$dir/client.log" & pids="$pids $!"

i=0
until grep -q 'connected to the server' "$dir/client.log" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -gt 50 ]; then
		echo "demo: the client did not connect; logs:" >&2
		cat "$dir/server.log" "$dir/client.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "ringlet demo: server on 127.0.0.1:$CTL, client carrying port $PORT to the upstream 127.0.0.2:$PORT"
echo

fetch() { # series -> prints "bytes seconds"
	curl -s -S --max-time 120 -o /dev/null -w '%{size_download} %{time_total} %{http_code}\n' \
		"http://127.0.0.1:$PORT/federate?series=$1"
}
total=0
printf '  %-34s %12s %9s %12s\n' "request (through the tunnel)" "bytes" "seconds" "MB/s"
for n in 1000 100000 1000000; do
	fetch $n >/dev/null # warm the upstream's cache: time the tunnel, not Python
	set -- $(fetch $n)
	if [ "${3:-0}" != 200 ]; then
		echo "demo: fetch failed (HTTP ${3:-none}); logs:" >&2
		cat "$dir/server.log" "$dir/client.log" >&2
		exit 1
	fi
	mbs=$(awk -v b="$1" -v t="$2" 'BEGIN { printf "%.1f", (t > 0 ? b / t / 1e6 : 0) }')
	printf '  %-34s %12s %9s %12s\n' "GET /federate?series=$n" "$1" "$2" "$mbs"
	total=$((total + $1))
done
echo
echo "moved $total bytes through the tunnel; server log:"
sed 's/^/  /' "$dir/server.log"
echo "client log:"
sed 's/^/  /' "$dir/client.log"
