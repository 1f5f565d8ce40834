#!/usr/bin/env python3
"""Connection lifecycles in every order: nothing is left behind.

200 connections, 16 at a time, each ending in one of eight ways chosen at random (the seed
is printed; RINGLET_SEED=N repeats a run): both sides half-close in turn; the consumer
abandons a response after 8 bytes; the upstream answers and closes before the consumer
speaks; the consumer closes without reading; either side resets mid-transfer; the consumer
closes at once; the upstream closes at once. Payloads cross 256 KiB frames and the 1 MiB
window. Where a transfer completes, it must be byte-exact. Afterwards both ends must have
no stream open (ringlet_streams_active 0) and the client no more file descriptors than
before. Then 100 more over wss:// (auto-TLS) with two lanes, and 100 more with
--data-path splice on both ends (pipes both ways: none may be left open either).
"""
import os
import random
import re
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.request

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

N, CONC = 200, 16
WAYS = ("both-half-close", "abandon-after-8", "upstream-first", "close-unread",
        "consumer-reset", "upstream-reset", "consumer-quits", "upstream-quits")


def upstream(c, svc):
    """First 9 bytes: the way (1 byte) and the response size (8 bytes)."""
    c.settimeout(30)
    head = rt.recv_exact(c, 9)
    if len(head) < 9:
        return  # consumer-quits
    way, size = WAYS[head[0]], struct.unpack("!Q", head[1:])[0]
    try:
        if way in ("both-half-close", "abandon-after-8"):
            n, d = rt.recv_all(c)
            c.sendall(bytes.fromhex(d))
            rt.send_pattern(c, size, size)
            c.shutdown(socket.SHUT_WR)
            svc.add((way, n))
            rt.recv_all(c)
        elif way == "upstream-first":
            rt.send_pattern(c, size, size)
            c.close()
        elif way == "close-unread":
            rt.send_pattern(c, size, size)
        elif way == "consumer-reset":
            rt.recv_all(c)
        elif way == "upstream-reset":
            c.sendall(b"x" * (size % 300000))
            rt.rst_close(c)
        elif way == "upstream-quits":
            c.close()
    except OSError:
        pass  # the consumer's close or reset ends these early, by design


def consumer(port, way, size, seed, errors):
    c = socket.socket()
    c.settimeout(30)
    try:
        c.connect(("127.0.0.1", port))
        if way == "consumer-quits":
            c.close()
            return
        c.sendall(bytes([WAYS.index(way)]) + struct.pack("!Q", size))
        if way == "both-half-close":
            sent = rt.send_pattern(c, seed, size)
            c.shutdown(socket.SHUT_WR)
            got = rt.recv_exact(c, 32).hex()
            n, d = rt.recv_all(c)
            if got != sent or n != size or d != rt.Pattern(size).digest(size):
                errors.append("%s %d: bytes differ (request %s, response %d of %d)" %
                              (way, size, got == sent, n, size))
        elif way == "abandon-after-8":
            rt.send_pattern(c, seed, size)
            c.shutdown(socket.SHUT_WR)
            rt.recv_exact(c, 8)
        elif way == "upstream-first":
            n, d = rt.recv_all(c)
            if n != size or d != rt.Pattern(size).digest(size):
                errors.append("%s %d: got %d bytes or other bytes" % (way, size, n))
        elif way == "close-unread":
            time.sleep(0.01)
        elif way == "consumer-reset":
            rt.send_pattern(c, seed, size // 2)
            rt.rst_close(c)
            return
        elif way in ("upstream-reset", "upstream-quits"):
            try:
                rt.recv_all(c)
            except OSError:
                pass
        c.close()
    except OSError as e:
        if way not in ("upstream-reset", "upstream-quits", "close-unread"):
            errors.append("%s %d: %r" % (way, size, e))
        c.close()


def body(h):
    up = "127.0.0.2"
    port = rt.free_port_on("127.0.0.1", up)
    m_client = rt.free_port("127.0.0.1")
    h.service(up, port, upstream, "upstream")
    srv = h.start_server()
    cl = h.start_client(srv.control_port, [port], upstream=up,
                        extra=["--metrics-addr", "127.0.0.1:%d" % m_client])
    h.wait_data_port(srv, port)
    run(h, srv, cl, port, m_client, N)

    # The same over wss:// (auto-TLS), with several lanes.
    port = rt.free_port_on("127.0.0.1", up)
    m_client = rt.free_port("127.0.0.1")
    h.service(up, port, upstream, "upstream-tls")
    cp = rt.free_port("127.0.0.1")
    srv = h.start_server(control_port=cp, name="server-tls",
                         extra=["--auto-tls=true", "--auto-tls-san", "127.0.0.1",
                                "--auto-tls-path", os.path.join(h.dir, "certs")])
    cl = h.spawn("client-tls", [h.bin, "client", "--url", "wss://127.0.0.1:%d" % cp,
                                "--token-file", h.token_file, "--upstream", up, "--ports",
                                str(port), "--lanes", "2", "--metrics-addr",
                                "127.0.0.1:%d" % m_client])
    if not cl.wait_log(r'msg="connected to the server"', timeout=20):
        h.fail("the wss client did not connect")
    h.wait_data_port(srv, port)
    ca = os.path.join(h.dir, "certs", "ca.crt")
    # The descriptor baseline is taken once both lanes are up (the second connects after
    # the first's WELCOME): a lane arriving later would count as a leak.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and status_lanes(h, cp, ca) != 2:
        time.sleep(0.1)
    h.check(status_lanes(h, cp, ca) == 2, "wss: the client's two lanes are up")
    run(h, srv, cl, port, m_client, N // 2, label="wss: ", ca=ca)

    # The same with --data-path splice on both ends.
    port = rt.free_port_on("127.0.0.1", up)
    m_client = rt.free_port("127.0.0.1")
    h.service(up, port, upstream, "upstream-splice")
    srv = h.start_server(name="server-splice", extra=["--data-path", "splice"])
    cl = h.start_client(srv.control_port, [port], upstream=up, name="client-splice",
                        extra=["--data-path", "splice", "--metrics-addr",
                               "127.0.0.1:%d" % m_client])
    h.wait_data_port(srv, port)
    run(h, srv, cl, port, m_client, N // 2, label="splice: ")
    code, _, text = rt.scrape(srv.control_port, "/metrics", h.token)
    spliced = rt.metric(text.decode(), "ringlet_tunnel_spliced_bytes_total")
    h.check(code == 200 and spliced and spliced > 0,
            "splice: the server spliced payloads out of the tunnel (%s bytes)" % spliced)


def status_lanes(h, port, ca):
    """The lanes the TLS server's /status counts over all its clients (None: no answer)."""
    ctx = ssl.create_default_context(cafile=ca)
    req = urllib.request.Request("https://127.0.0.1:%d/status" % port,
                                 headers={"Authorization": "Bearer " + h.token})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            text = r.read().decode()
    except (OSError, ValueError):
        return None
    return sum(int(x) for x in re.findall(r'"lanes":(\d+)', text))


def fd_targets(pid):
    """{fd: what it points to} of process pid."""
    out = {}
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            out[fd] = os.readlink(os.path.join(d, fd))
        except OSError:
            pass
    return out


def run(h, srv, cl, port, m_client, n_conns, label="", ca=None):
    """n_conns connections through srv and cl (whose --metrics-addr port is m_client) to an
    upstream() service behind port; the checks of this test, prefixed with label. ca: the
    CA file when the server's control port speaks TLS."""
    seed = int(os.environ.get("RINGLET_SEED") or random.randrange(1 << 30))
    rt.log("seed %d (RINGLET_SEED=%d repeats this run)" % (seed, seed))
    rnd = random.Random(seed)
    fds_before = fd_targets(cl.pid)
    sfds_before = fd_targets(srv.pid)

    sizes = [0, 1, 65535, 65537, 262143, 262145, (1 << 20) - 1, (1 << 20) + 1, 3 << 20]
    plan = [(rnd.choice(WAYS), rnd.choice(sizes), i) for i in range(n_conns)]
    errors = []
    for k in range(0, n_conns, CONC):
        ts = [threading.Thread(target=consumer, args=(port, w, n, 1000 + i, errors))
              for w, n, i in plan[k:k + CONC]]
        for t in ts:
            t.start()
        for t in ts:
            t.join(90)
    counts = {w: sum(1 for p in plan if p[0] == w) for w in WAYS}
    rt.log("   ways: %s" % ", ".join("%s %d" % kv for kv in counts.items()))
    h.check(not errors, "%s%d connections in 8 ways: every completed transfer byte-exact "
            "(%s)" % (label, n_conns, "; ".join(errors[:3]) or "ok"))

    def active(p, tls=False):
        if tls:
            ctx = ssl.create_default_context(cafile=ca)
            req = urllib.request.Request("https://127.0.0.1:%d/metrics" % p,
                                         headers={"Authorization": "Bearer " + h.token})
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                code, text = r.status, r.read()
        else:
            code, _, text = rt.scrape(p, "/metrics", h.token)
        return rt.metric(text.decode(), "ringlet_streams_active") if code == 200 else None

    def both():
        return active(m_client), active(srv.control_port, tls=ca is not None)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and both() != (0, 0):
        time.sleep(0.2)
    h.check(both() == (0, 0), label + "no stream is left open at either end (client %s, "
            "server %s)" % both())
    # The metrics scrapes' own connections may still be closing: allow them 5 s.
    for _ in range(50):
        fds_after, sfds_after = fd_targets(cl.pid), fd_targets(srv.pid)
        if len(fds_after) <= len(fds_before) and len(sfds_after) <= len(sfds_before):
            break
        time.sleep(0.1)
    extra = sorted(set(fds_after.items()) - set(fds_before.items())) + \
        sorted(set(sfds_after.items()) - set(sfds_before.items()))
    h.check(len(fds_after) <= len(fds_before) and len(sfds_after) <= len(sfds_before),
            label + "neither end holds more descriptors than before (client %d, was %d; "
            "server %d, was %d%s)" % (len(fds_after), len(fds_before), len(sfds_after),
                                      len(sfds_before), "; new: %s" % extra if extra else ""))
    h.check(srv.alive() and cl.alive(), label + "both ends are still running")


if __name__ == "__main__":
    rt.main("lifecycle", body)
