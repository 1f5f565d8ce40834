#!/bin/sh
# The end-to-end federation scenario (tests/e2e/) at 10k series per client cluster: two
# client clusters and an observability host in network namespaces, Prometheus federating
# through ringlet tunnels, a client killed during a scrape, a cluster stopped.
# scrape_interval is 5s here instead of the seed's 15s only to keep `make test` short: the
# fault phases each wait for several scrapes; `make e2e` runs at the seed's 15s.
# The clients dial the servers' control ports directly (ws://); test_e2e_ingress.sh runs the
# same scenario behind an nginx ingress with wss://.
# Skips (77, with the reason) without root, network namespaces or an installable prometheus.
cd "$(dirname "$0")/../.." || exit 1
E2E_INGRESS=0 SERIES=10000 SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-5s} E2E_TIMEOUT=${E2E_TIMEOUT:-500} \
	exec sh tests/e2e/run.sh
