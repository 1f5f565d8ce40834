#!/bin/sh
# Install what the end-to-end federation scenario needs from Debian: prometheus (the binary
# only: the test runs its own prometheus processes inside network namespaces; the package's
# own service, if it starts, listens on :9090 in the root namespace and never collides),
# iproute2 (ip netns, veth, tc), curl and python3; for the ingress variant (E2E_INGRESS=1)
# nginx and openssl (the test runs its own nginx in the observability namespace with a config
# in its temporary directory; the package's own service, if it starts, listens on :80 in the
# root namespace and is never used).
# Idempotent and quiet: prints nothing when everything is already installed.
set -eu

PKGS="prometheus iproute2 curl python3 procps nginx openssl"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "e2e deps: missing packages:$missing (run as root)" >&2
	exit 1
fi
echo "e2e deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/ringlet-e2e-deps.XXXXXX)
# Only refresh the package lists when the install needs it.
if ! apt-get install -y -qq --no-install-recommends $missing >"$log" 2>&1; then
	apt-get update -qq >>"$log" 2>&1 || true
	if ! apt-get install -y -qq --no-install-recommends $missing >>"$log" 2>&1; then
		tail -n 20 "$log" >&2
		rm -f "$log"
		exit 1
	fi
fi
rm -f "$log"
