#!/bin/sh
# The end-to-end federation scenario (tests/e2e/) in the seed's full shape, at 10k series per
# client cluster: as test_e2e_federation.sh, but with an nginx ingress (TLS with a test CA
# made by openssl) in the observability namespace in front of the two ringlet servers
# (--auto-tls=false), the clients dialling wss://<cluster>.prometheus.example.com/connect with
# --auto-tls=false --ca-file=<test CA>. Runs next to test_e2e_federation.sh: namespaces,
# nginx pid/log/temp files and the PKI are all per run.
# scrape_interval 5s as in test_e2e_federation.sh; `make e2e E2E_INGRESS=1` runs at 15s.
# Skips (77, with the reason) without root, network namespaces, or an installable prometheus,
# nginx or openssl.
cd "$(dirname "$0")/../.." || exit 1
E2E_INGRESS=1 SERIES=10000 SCRAPE_INTERVAL=${SCRAPE_INTERVAL:-5s} E2E_TIMEOUT=${E2E_TIMEOUT:-500} \
	exec sh tests/e2e/run.sh
