#!/usr/bin/env python3
"""Many clusters, one exit node (--tunnels): three client "clusters" each offer the same
port to their own upstream and are exposed at their own binding; each binding reaches the
right upstream, byte-exact; a wrong token gets 401; a client offering a port its tunnel
does not declare is refused with the reason and keeps its declared port; the operator's
token sees /status with every tunnel, a tunnel's token does not."""
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

N = 8 << 20
SMALL = 1 << 20
UPSTREAMS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
NAMES = ["orion-aws", "vega-gcp", "lyra-onprem"]


def body(h):
    # The port every cluster offers (as 9090 in the seed), free on each upstream address;
    # the bindings on this node, and one undeclared port.
    port = rt.free_port_on(*UPSTREAMS)
    binds = [rt.free_port_on("127.0.0.1") for _ in NAMES]
    extra = rt.free_port_on(*UPSTREAMS)
    srcs = [h.service(u, port, rt.source_handler(40 + i, N), "source-%s" % NAMES[i])
            for i, u in enumerate(UPSTREAMS)]
    toks = ["tok-%s-%d" % (n, os.getpid()) for n in NAMES]
    files = [h.write("token-%s" % n, t + "\n") for n, t in zip(NAMES, toks)]
    yaml = "tunnels:\n"
    for n, f, b in zip(NAMES, files, binds):
        yaml += ("  - name: %s\n    tokenFile: %s\n    ports:\n"
                 "      - port: %d\n        listen: \"127.0.0.1:%d\"\n" % (n, f, port, b))
    # A fourth tunnel that may carry at most two streams at once (maxStreams).
    cap_up, cap_bind = "127.0.0.6", rt.free_port_on("127.0.0.1")
    cap_port = rt.free_port_on(cap_up)
    h.service(cap_up, cap_port, rt.name_handler("capped"), "named-capped")
    cap_tok = h.write("token-capped", "tok-capped-%d\n" % os.getpid())
    yaml += ("  - name: capped\n    tokenFile: %s\n    maxStreams: 2\n    ports:\n"
             "      - port: %d\n        listen: \"127.0.0.1:%d\"\n" % (cap_tok, cap_port, cap_bind))
    # A fifth tunnel whose binding is taken by another process: reported failed, the
    # others serve.
    taken = rt.free_port_on("127.0.0.1")
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", taken))
    squatter.listen(1)
    blk_up = "127.0.0.7"
    blk_port = rt.free_port_on(blk_up)
    blk_tok = h.write("token-blocked", "tok-blocked-%d\n" % os.getpid())
    yaml += ("  - name: blocked\n    tokenFile: %s\n    ports:\n"
             "      - port: %d\n        listen: \"127.0.0.1:%d\"\n" % (blk_tok, blk_port, taken))
    tfile = h.write("tunnels.yaml", yaml)
    srv = h.start_server(extra=["--tunnels", tfile])
    h.check(srv.wait_log(r'msg="named tunnels loaded".*tunnels=5', 5),
            "the server loaded five named tunnels")
    clients = []
    for i, (n, f) in enumerate(zip(NAMES, files)):
        offered = [port, extra] if i == 0 else [port]
        clients.append(h.start_client(srv.control_port, offered, upstream=UPSTREAMS[i],
                                      name="client-%s" % n, token_file=f))
    for b in binds:
        h.wait_data_port(srv, b)

    # Each binding reaches its own cluster's upstream, byte-exact.
    for i, b in enumerate(binds):
        s = rt.connect("127.0.0.1", b, timeout=30)
        n, d = rt.recv_all(s)
        s.close()
        h.check(n == N and d == rt.Pattern(40 + i).digest(N),
                "binding 127.0.0.1:%d reaches %s's upstream, %d bytes byte-exact" %
                (b, NAMES[i], n))
    for i, src in enumerate(srcs):
        h.check(src.wait_results(1, 10) and len(src.results) == 1,
                "%s's upstream served exactly one connection (%d)" %
                (NAMES[i], len(src.results)))

    # maxStreams: two streams at once on "capped", a third is refused, then one more fits.
    h.start_client(srv.control_port, [cap_port], upstream=cap_up, name="client-capped",
                   token_file=cap_tok)
    h.wait_data_port(srv, cap_bind)

    def named(timeout=5):
        """A connection to the capped binding and what it read first (b"": refused - the
        reset may come before or after connect() returns)."""
        try:
            c = rt.connect("127.0.0.1", cap_bind, timeout=timeout)
        except ConnectionError:
            return socket.socket(), b""
        try:
            line = c.recv(64)
        except OSError:
            line = b""
        return c, line
    held = [named(), named()]
    h.check(all(l == b"capped\n" for _, l in held), "two streams open on the capped tunnel")
    c3, l3 = named()
    c3.close()
    h.check(l3 == b"", "a third stream beyond maxStreams 2 is refused (got %r)" % l3)
    held[0][0].close()
    time.sleep(0.5)
    c4, l4 = named()
    h.check(l4 == b"capped\n", "after one closes, a new stream fits again (got %r)" % l4)
    c4.close()
    held[1][0].close()

    # The undeclared port: refused with the reason, the declared one kept.
    h.check(clients[0].wait_log(r'port policy does not allow it.*port=%d reason=not-allowed' % extra, 5),
            "the client offering an undeclared port is told why")
    h.check(srv.wait_log(r'does not declare: refused.*tunnel="?%s"?.*port=%d' %
                         (NAMES[0], extra), 5),
            "the server logs the refused port with its tunnel")
    h.check(not srv.count(r'msg="data-plane port open" port=%d ' % extra),
            "no listener was opened for the undeclared port")

    # A wrong token is refused (401) and the client says so.
    bad = h.write("token-bad", "not-a-tunnel-token\n")
    cb = h.start_client(srv.control_port, [port], upstream=UPSTREAMS[0], name="client-bad",
                        token_file=bad, wait=False)
    h.check(cb.wait_log(r'server rejected the token', 10), "a wrong token gets 401")
    code, _, _ = rt.http_get("127.0.0.1", srv.control_port, "/connect",
                             headers={"Authorization": "Bearer " + h.token,
                                      "Connection": "Upgrade", "Upgrade": "websocket",
                                      "Sec-WebSocket-Version": "13",
                                      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    h.check(code == 401, "the operator's token opens no tunnel (got %s)" % code)

    # The tunnel whose binding cannot be bound: its client is told, the server logs it.
    cblk = h.start_client(srv.control_port, [blk_port], upstream=blk_up, name="client-blocked",
                          token_file=blk_tok)
    h.check(cblk.wait_log(r'could not open a port.*port=%d reason=in-use' % blk_port, 5),
            "the client of a tunnel whose binding is taken is told why (in-use)")
    h.check(srv.wait_log(r'cannot open data-plane port.*127.0.0.1:%d' % taken, 5),
            "the server logs the binding it could not open")

    # /metrics: every per-port and per-client figure names its tunnel.
    code, _, m = rt.scrape(srv.control_port, "/metrics", h.token)
    text = m.decode()
    for i, (n, b) in enumerate(zip(NAMES, binds)):
        h.check(rt.metric(text, "tcp_dataplane_connections_total", port=str(b), tunnel=n) == 1,
                "metrics count %s's connection at its binding with its tunnel label" % n)
    h.check(rt.metric(text, "ringlet_tunnels", state="configured") == 5 and
            rt.metric(text, "ringlet_tunnels", state="connected") == 5 and
            rt.metric(text, "ringlet_tunnels", state="failed") == 1,
            "ringlet_tunnels: 5 configured, 5 connected, 1 with a failed binding")
    code, _, _ = rt.scrape(srv.control_port, "/metrics", toks[1])
    h.check(code == 401, "a tunnel's token cannot read /metrics (got %s)" % code)

    # /status: everything for the operator, nothing for a tunnel's token.
    code, _, st = rt.scrape(srv.control_port, "/status", h.token)
    text = st.decode()
    h.check(code == 200 and all('"tunnel":"%s"' % n in text for n in NAMES),
            "the operator's /status shows every client with its tunnel")
    code, _, _ = rt.scrape(srv.control_port, "/status", toks[0])
    h.check(code == 401, "a tunnel's token cannot read /status (got %s)" % code)
    h.check('"tunnels":[' in text and all('"binding":"127.0.0.1:%d"' % b in text for b in binds),
            "/status lists the tunnels with their bindings")
    h.check(('"bindFailed":{"port":%d,"reason":"in-use"}' % taken) in text,
            "/status names the binding that could not be bound: %s" %
            text[text.find('"name":"blocked"'):][:300])
    squatter.close()
    rc, out = h.run([h.bin, "status", "--url", "ws://127.0.0.1:%d" % srv.control_port,
                     "--token", h.token])
    rows = [l for l in out.splitlines() if l.split()[:1] and l.split()[0] in NAMES]
    h.check(rc == 0 and len(rows) == 3 and all(" 1 " in r for r in rows) and "capped" in out,
            "ringlet status prints the tunnel table, one client each:\n%s" % out)


    # Replicas: a second client of orion-aws (its own upstream) shares the binding;
    # connections alternate between the two, and never reach another tunnel's upstream.
    rep_up = "127.0.0.8"
    h.service(rep_up, port, rt.source_handler(140, SMALL), "source-orion-replica")
    h.start_client(srv.control_port, [port], upstream=rep_up, name="client-orion-replica",
                   token_file=files[0])
    seen = {"primary": 0, "replica": 0, "other": 0}

    for _ in range(4):
        s = rt.connect("127.0.0.1", binds[0], timeout=30)
        n, d = rt.recv_all(s)
        s.close()
        if d == rt.Pattern(140).digest(SMALL):
            seen["replica"] += 1
        elif n == N and d == rt.Pattern(40).digest(N):
            seen["primary"] += 1
        else:
            seen["other"] += 1
    h.check(seen["primary"] == 2 and seen["replica"] == 2 and seen["other"] == 0,
            "orion-aws's two replicas share its binding round-robin (%s)" % seen)
    h.check(all(len(src.results) == 1 for src in srcs[1:]),
            "no other tunnel's upstream saw those connections")

    # Listener lifetime: a tunnel whose client left keeps its binding, and a connection
    # there fails fast (reset at once), as a Service in front expects - it does not hang.
    clients[1].stop()
    h.check(srv.wait_log(r'msg="tunnel closed by peer"', 10), "vega-gcp's client left")
    time.sleep(0.5)
    t0 = time.monotonic()
    try:
        c = rt.connect("127.0.0.1", binds[1], timeout=5)
        c.settimeout(5)
        got = c.recv(1)
        c.close()
    except ConnectionError:
        got = b""
    h.check(got == b"" and time.monotonic() - t0 < 2,
            "with no client, the tunnel's binding resets a connection at once (%.2f s)" %
            (time.monotonic() - t0))

rt.main("tenants", body)
