#!/bin/sh
# Install the Debian packages that ringlet's build, tests, demo and benchmarks use.
# Idempotent and quiet: prints nothing when everything is already installed. Then
# tools/deps-k8s.sh: podman, helm and the Kubernetes schemas (a failure there only skips
# the tests that need them).
set -eu

PKGS="make gcc clang llvm libclang-rt-14-dev pkg-config git ca-certificates
liburing-dev android-libboringssl-dev node-llhttp libcriterion-dev libbpf-dev bpftool libyaml-dev
python3 python3-websockets iproute2 procps curl psmisc openssl prometheus systemd nginx"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exec sh "$(dirname "$0")/deps-k8s.sh"

if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing (run 'make deps' as root)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; refresh them once when an install needs it.
if ! apt-get install -y -qq --no-install-recommends $missing >/tmp/ringlet-deps.log 2>&1; then
	apt-get update -qq >>/tmp/ringlet-deps.log 2>&1
	apt-get install -y -qq --no-install-recommends $missing >>/tmp/ringlet-deps.log 2>&1 || {
		cat /tmp/ringlet-deps.log >&2
		exit 1
	}
fi

sh "$(dirname "$0")/deps-k8s.sh"
