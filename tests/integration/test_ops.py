#!/usr/bin/env python3
"""Operations: /metrics (promtool-clean, counters exact, scraped by a real Prometheus with a
Bearer token), /status (JSON with the inlets keys, 401 without the token), graceful drain on
SIGTERM with a transfer in flight, SIGHUP reopening --log-file, and a generated systemd unit
that passes systemd-analyze verify."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

MIB = 1 << 20


def check_metrics_and_status(h):
    up = "127.0.0.2"
    p_sink, p_src = rt.free_port_on("127.0.0.1", up), rt.free_port_on("127.0.0.1", up)
    metrics_port = rt.free_port("127.0.0.1")
    sink = h.service(up, p_sink, rt.sink_handler, "sink")
    DOWN = 24 * MIB + 7
    h.service(up, p_src, rt.source_handler(3, DOWN), "source")
    srv = h.start_server()
    cli = h.start_client(srv.control_port, [p_sink, p_src], upstream=up,
                         extra=["--metrics-addr", "127.0.0.1:%d" % metrics_port])
    h.wait_data_port(srv, p_sink)
    h.wait_data_port(srv, p_src)

    UP = 10 * MIB + 3
    s = rt.connect("127.0.0.1", p_sink)
    rt.send_pattern(s, 5, UP)
    s.shutdown(socket.SHUT_WR)
    h.check(sink.wait_results(1, 60), "the upstream sink got EOF")
    s.close()
    s = rt.connect("127.0.0.1", p_src)
    got, _ = rt.recv_all(s)
    s.close()
    h.check(got == DOWN, "the data-plane client received %d bytes from the source" % DOWN)
    time.sleep(0.5)  # let the streams' last completions land

    code, _, body = rt.scrape(srv.control_port, "/metrics", h.token)
    h.check(code == 200, "/metrics with the token answers 200")
    text = body.decode()
    # promtool's lint objects to the inlets names ending in _gauge; those names are the
    # compatibility contract, so they are the only problems allowed.
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=body,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        problems = [l for l in r.stdout.decode().splitlines() if l.strip()]
        bad = [l for l in problems if "should not include type 'gauge'" not in l]
        h.check(not bad, "promtool check metrics finds no problem beyond the inlets "
                "_gauge names (%s)" % bad[:3])
    else:
        rt.skip("promtool (Debian package prometheus) is not installed")

    v = lambda name, **kw: rt.metric(text, name, **kw)
    h.check(v("tcp_controlplane_connected_gauge") == 1, "tcp_controlplane_connected_gauge 1")
    h.check(v("tcp_dataplane_connections_total", port=p_sink) == 1 and
            v("tcp_dataplane_connections_total", port=p_src) == 1,
            "tcp_dataplane_connections_total counts one connection per port")
    h.check(v("tcp_dataplane_connections_gauge", port=p_sink) == 0,
            "tcp_dataplane_connections_gauge back to 0 after the connection closed")
    h.check(v("ringlet_port_bytes_total", port=p_sink, direction="received") == UP,
            "server: bytes received on the sink port == bytes sent (%d)" % UP)
    h.check(v("ringlet_port_bytes_total", port=p_src, direction="sent") == DOWN,
            "server: bytes sent on the source port == bytes received (%d)" % DOWN)
    upgrades = v("tcp_controlplane_requests_total", code=101, path="/connect")
    client_rx = [float(x) for x in re.findall(
        r'^ringlet_client_bytes_total\{client_id="[^"]+",direction="received"\} (\S+)$',
        text, re.M)]
    h.check(client_rx and client_rx[0] >= UP, "per-client tunnel bytes include the upload")

    code, _, cbody = rt.scrape(metrics_port, "/metrics", h.token)
    h.check(code == 200, "the client's --metrics-addr serves /metrics")
    ct = cbody.decode()
    lanes = rt.metric(ct, "tcp_controlplane_connected_gauge")
    h.check(lanes and upgrades == lanes, "tcp_controlplane_requests_total counts one upgrade "
            "per lane (%s upgrades, %s lanes)" % (upgrades, lanes))
    h.check(rt.metric(ct, "ringlet_port_bytes_total", port=p_sink, direction="sent") == UP and
            rt.metric(ct, "ringlet_port_bytes_total", port=p_src, direction="received") == DOWN,
            "client: upstream byte counters equal the bytes moved")
    h.check(rt.scrape(metrics_port, "/metrics", None)[0] == 401,
            "the client's /metrics without the token: 401")

    for path in ("/metrics", "/status"):
        h.check(rt.scrape(srv.control_port, path, None)[0] == 401, path + " without a token: 401")
        h.check(rt.scrape(srv.control_port, path, "wrong")[0] == 401,
                path + " with a wrong token: 401")
    code, _, body = rt.scrape(srv.control_port, "/status", h.token)
    h.check(code == 200, "/status with the token answers 200")
    st = json.loads(body)
    info = st.get("info", {})
    h.check(all(k in info for k in ("version", "sha", "mode", "startTime", "hostname"))
            and info["mode"] == "tcp", "/status info has version, sha, mode=tcp, startTime, "
            "hostname")
    cl = st.get("clients", [])
    h.check(len(cl) == 1 and all(k in cl[0] for k in ("clientID", "remoteAddr", "since",
                                                        "upstreams")),
            "/status lists the client with clientID, remoteAddr, since, upstreams")
    h.check(sorted(cl[0]["upstreams"]) == sorted("%s:%d" % (up, p) for p in (p_sink, p_src)),
            "/status upstreams are upstream:port (%s)" % cl[0]["upstreams"])
    rc, out = h.run([h.bin, "status", "--url", "ws://127.0.0.1:%d" % srv.control_port,
                     "--token-file", h.token_file])
    h.check(rc == 0 and cl[0]["clientID"] in out, "`ringlet status` prints the client table")
    rc, out = h.run([h.bin, "status", "--url", "ws://127.0.0.1:%d" % srv.control_port,
                     "--token", "wrong"])
    h.check(rc == 1, "`ringlet status` with a wrong token exits 1")
    return srv, cli, up


def check_prometheus_scrape(h):
    prom = shutil.which("prometheus")
    if not prom:
        rt.skip("prometheus (Debian package) is not installed")
    up = "127.0.0.2"
    p_src = rt.free_port_on("127.0.0.1", up)
    # A source that trickles: 48 MiB over ~8 s, so several scrapes see the counter move.
    total = 48 * MIB

    def trickle(c, svc):
        sent = 0
        chunk = b"x" * (256 * 1024)
        while sent < total:
            c.sendall(chunk)
            sent += len(chunk)
            time.sleep(0.04)
        c.close()
        svc.add(("trickle", sent, None))

    h.service(up, p_src, trickle, "trickle")
    srv = h.start_server(name="server-prom")
    h.start_client(srv.control_port, [p_src], upstream=up, name="client-prom")
    h.wait_data_port(srv, p_src)
    prom_port = rt.free_port("127.0.0.1")
    cfg = h.write("prometheus.yml", """
global:
  scrape_interval: 1s
scrape_configs:
- job_name: ringlet
  metrics_path: /metrics
  authorization:
    type: Bearer
    credentials_file: %s
  static_configs:
  - targets: ['127.0.0.1:%d']
""" % (h.token_file, srv.control_port))
    h.spawn("prometheus", [prom, "--config.file=" + cfg,
                           "--storage.tsdb.path=" + os.path.join(h.dir, "tsdb"),
                           "--web.listen-address=127.0.0.1:%d" % prom_port,
                           "--log.level=warn"])
    rt.wait_port("127.0.0.1", prom_port, timeout=30)

    reader_done = threading.Event()

    def reader():
        s = rt.connect("127.0.0.1", p_src)
        rt.recv_all(s)
        s.close()
        reader_done.set()

    threading.Thread(target=reader, daemon=True).start()

    def query(q):
        code, _, body = rt.http_get("127.0.0.1", prom_port,
                                    "/api/v1/query?query=" + urllib.parse.quote(q))
        if code != 200:
            return None
        res = json.loads(body)["data"]["result"]
        return float(res[0]["value"][1]) if res else None

    seen = []
    q = 'ringlet_port_bytes_total{port="%d",direction="sent"}' % p_src
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and not (reader_done.is_set() and seen and
                                               seen[-1] == total):
        val = query(q)
        if val is not None and (not seen or val != seen[-1]):
            seen.append(val)
        time.sleep(0.5)
    h.check(query('up{job="ringlet"}') == 1, "Prometheus scrapes /metrics with the Bearer token "
            "(up == 1)")
    growing = [b for a, b in zip(seen, seen[1:]) if b > a]
    h.check(len(growing) >= 2, "Prometheus saw the byte counter grow while traffic flowed "
            "(%d distinct values: %s)" % (len(seen), [int(x) for x in seen][:8]))
    h.check(seen and seen[-1] == total, "the last scraped value equals the bytes moved")


def check_drain(h):
    up = "127.0.0.2"
    p_src = rt.free_port_on("127.0.0.1", up)
    SIZE = 100 * MIB
    src = h.service(up, p_src, rt.source_handler(9, SIZE), "drain-source")
    log_path = os.path.join(h.dir, "server-drain.logfile")
    srv = h.start_server(name="server-drain", extra=["--drain-timeout", "60s",
                                                     "--log-file", log_path], wait=False)
    rt.wait_port("127.0.0.1", srv.control_port, timeout=10)
    cli = h.start_client(srv.control_port, [p_src], upstream=up, name="client-drain")
    time.sleep(0.3)

    # SIGHUP reopens the log file: move it away, signal, a new file appears.
    os.rename(log_path, log_path + ".1")
    srv.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not os.path.exists(log_path):
        time.sleep(0.05)
    h.check(os.path.exists(log_path), "SIGHUP reopens --log-file (a new file after rotation)")

    # A slow reader: 100 MiB read at ~25 MiB/s, so the transfer spans the SIGTERM.
    s = rt.connect("127.0.0.1", p_src)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    import hashlib
    hsh = hashlib.sha256()
    got = 0
    t_end = time.monotonic() + 60
    first = s.recv(1 << 20)
    hsh.update(first)
    got += len(first)
    srv.signal(signal.SIGTERM)
    time.sleep(0.5)
    # New data-plane connections are refused while draining.
    refused = False
    try:
        c2 = socket.create_connection(("127.0.0.1", p_src), timeout=3)
        c2.settimeout(3)
        refused = c2.recv(1) == b""
        c2.close()
    except (ConnectionRefusedError, ConnectionResetError):
        refused = True
    h.check(refused, "a new data-plane connection during the drain is refused")
    while time.monotonic() < t_end:
        b = s.recv(1 << 20)
        if not b:
            break
        hsh.update(b)
        got += len(b)
        time.sleep(0.03)
    s.close()
    h.check(got == SIZE and hsh.hexdigest() == rt.Pattern(9).digest(SIZE),
            "the 100 MiB transfer in flight finished byte-exact during the drain")
    rc = srv.wait_exit(30)
    h.check(rc == 0, "the server exited 0 after the drain (exit %s)" % rc)
    with open(log_path) as f:
        text = f.read()
    h.check("shutting down: draining" in text, "the drain is logged")
    cli.stop()


def check_systemd(h):
    if not shutil.which("systemd-analyze"):
        log_skip = "systemd-analyze is not installed: unit verification skipped"
        rt.skip(log_skip)
    rc, unit = h.run([h.bin, "tcp", "server", "--auto-tls=false", "--token-file", h.token_file,
                      "--control-port", "443", "--generate", "systemd"])
    h.check(rc == 0 and "ExecStart=" in unit, "--generate systemd prints a unit")
    path = h.write("ringlet-test.service", unit)
    rc, out = h.run(["systemd-analyze", "verify", path], timeout=60)
    h.check(rc == 0, "systemd-analyze verify accepts the server unit (%s)" % out.strip()[-300:])
    h.check("CAP_NET_BIND_SERVICE" in unit, "a control port below 1024 gets CAP_NET_BIND_SERVICE")
    h.check("CAP_BPF" not in unit, "without --sockmap the unit grants no BPF capability")
    rc, unit = h.run([h.bin, "tcp", "client", "--url", "ws://127.0.0.1:8123", "--token-file",
                      h.token_file, "--ports", "9090", "--sockmap", "auto", "--generate",
                      "systemd"])
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M)
    h.check(rc == 0 and caps and set(caps.group(1).split()) ==
            {"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"},
            "a client unit with --sockmap gets CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN only (%s)"
            % (caps.group(1) if caps else "none"))
    path = h.write("ringlet-client.service", unit)
    rc, out = h.run(["systemd-analyze", "verify", path], timeout=60)
    h.check(rc == 0, "systemd-analyze verify accepts the client unit (%s)" % out.strip()[-300:])


def main():
    h = rt.Harness("ops")
    check_metrics_and_status(h)
    check_drain(h)
    check_systemd(h)
    check_prometheus_scrape(h)
    rt.log("PASS (%d checks)" % h.checks)


if __name__ == "__main__":
    main()
