#!/bin/sh
# The end-to-end federation scenario (tests/e2e/) with one multi-tenant exit node: three
# client clusters, each a named tunnel of one ringlet server (--tunnels, a token file each,
# port 9090 bound at its own port), the observability Prometheus keeping the seed's job
# verbatim with relabel_configs mapping each Service name to its binding; then a live reload
# (a symlink swap of the tunnels file, seen by inotify) adds a fourth cluster while the other
# three must not fail a scrape. SERIES=5000 and scrape_interval 5s keep it at about a minute
# next to the other e2e tests; `make e2e E2E_TENANTS=1` runs it at the seed's 15s.
# Skips (77, with the reason) without root, network namespaces or an installable prometheus.
cd "$(dirname "$0")/../.." || exit 1
E2E_INGRESS=0 E2E_TENANTS=1 SERIES=5000 SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-5s} \
	E2E_TIMEOUT=${E2E_TIMEOUT:-400} exec sh tests/e2e/run.sh
