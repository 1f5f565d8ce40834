#!/usr/bin/env python3
"""Half-close and reset propagate end to end through the tunnel.

1. The data-plane client sends a request and shuts down its write side; the upstream sees
   EOF, then answers 10 MiB and closes; the client gets all of it, then EOF.
2. The reverse: the upstream sends 10 MiB and shuts down its write side first; the client
   gets all of it and EOF, then answers 10 MiB on the same connection; the upstream gets it.
3. The upstream resets its socket: the data-plane client sees the connection reset (or at
   least an abrupt close with no further data), promptly.
4. The data-plane client resets: the upstream sees a reset or close promptly.
5. Both ends close with data still queued in the tunnel (the load generator's "up" pattern:
   the client sends 64 MiB and half-closes, the upstream reads to EOF, answers 8 bytes and
   closes, the client reads them and closes at once): no stream is left open at either
   end afterwards (ringlet_streams_active returns to 0), five times over.
"""
import hashlib
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

RESP = 10 << 20
REQ = b"GET /big HTTP/1.0\r\n\r\n" + b"x" * 100000


def body(h):
    up = "127.0.0.2"
    ports = [rt.free_port_on("127.0.0.1", up) for _ in range(4)]
    p_req, p_rev, p_urst, p_crst = ports
    p_count = rt.free_port_on("127.0.0.1", up)
    ports = ports + [p_count]
    m_client = rt.free_port("127.0.0.1")

    # 1. client half-closes first.
    def req_handler(c, svc):
        n, d = rt.recv_all(c)  # until the client's FIN arrives through the tunnel
        svc.add(("request", n, d, time.monotonic()))
        sd = rt.send_pattern(c, 21, RESP)
        svc.add(("response", RESP, sd))
        c.close()

    # 2. upstream half-closes first.
    def rev_handler(c, svc):
        sd = rt.send_pattern(c, 22, RESP)
        c.shutdown(socket.SHUT_WR)
        svc.add(("sent", RESP, sd))
        n, d = rt.recv_all(c)
        svc.add(("received", n, d))

    # 3. upstream resets once the client has read its greeting and asked for the reset.
    def urst_handler(c, svc):
        c.sendall(b"hello\n")
        got = rt.recv_exact(c, 6)
        svc.add(("asked", got))
        rt.rst_close(c)

    # 4. the client resets; what does the upstream see, and when?
    def crst_handler(c, svc):
        c.sendall(b"hello\n")
        c.settimeout(30)
        try:
            b = c.recv(65536)
            what = "data %r" % b if b else "eof"
        except ConnectionResetError:
            what = "reset"
        except socket.timeout:
            what = "timeout"
        svc.add((what, time.monotonic()))

    s_req = h.service(up, p_req, req_handler, "req")
    s_rev = h.service(up, p_rev, rev_handler, "rev")
    s_urst = h.service(up, p_urst, urst_handler, "urst")
    s_crst = h.service(up, p_crst, crst_handler, "crst")

    # 5. count what arrived, answer with the count, close.
    def count_handler(c, svc):
        n, _ = rt.recv_all(c)
        c.sendall(n.to_bytes(8, "little"))
        svc.add(n)
        c.close()

    s_count = h.service(up, p_count, count_handler, "count")
    srv = h.start_server()
    h.start_client(srv.control_port, ports, upstream=up,
                   extra=["--metrics-addr", "127.0.0.1:%d" % m_client])
    for p in ports:
        h.wait_data_port(srv, p)

    # 1.
    c = rt.connect("127.0.0.1", p_req, timeout=30)
    c.sendall(REQ)
    c.shutdown(socket.SHUT_WR)
    n, d = rt.recv_all(c)
    c.close()
    h.check(s_req.wait_results(2, 10), "upstream saw the request's EOF and answered")
    _, rn, rd, _ = s_req.results[0]
    h.check(rn == len(REQ) and rd == hashlib.sha256(REQ).hexdigest(), "upstream got the whole request (%d of %d bytes) then EOF" %
            (rn, len(REQ)))
    _, _, sd = s_req.results[1]
    h.check(n == RESP and d == sd, "client half-closed first: got all %d response bytes "
            "byte-exact, then EOF (got %d)" % (RESP, n))

    # 2.
    c = rt.connect("127.0.0.1", p_rev, timeout=30)
    n, d = rt.recv_all(c)
    h.check(s_rev.wait_results(1, 10), "upstream sent its data and half-closed")
    _, _, sd = s_rev.results[0]
    h.check(n == RESP and d == sd, "upstream half-closed first: client got all %d bytes "
            "byte-exact, then EOF (got %d)" % (RESP, n))
    cd = rt.send_pattern(c, 23, RESP)
    c.shutdown(socket.SHUT_WR)
    h.check(s_rev.wait_results(2, 20), "upstream got the client's EOF after its answer")
    _, un, ud = s_rev.results[1]
    h.check(un == RESP and ud == cd, "after the upstream's half-close the client could still "
            "send: upstream got %d of %d bytes byte-exact" % (un, RESP))
    c.settimeout(10)
    try:
        tail = c.recv(10)
    except OSError as e:
        tail = repr(e)
    c.close()
    h.check(tail == b"", "then the connection closed cleanly (%r)" % (tail,))

    # 3. upstream RST -> data-plane client.
    c = rt.connect("127.0.0.1", p_urst, timeout=30)
    c.settimeout(10)
    greet = rt.recv_exact(c, 6)
    h.check(greet == b"hello\n", "got the upstream's greeting (%r)" % greet)
    c.sendall(b"reset\n")
    t0 = time.monotonic()
    outcome, extra = None, b""
    try:
        while True:
            b = c.recv(65536)
            if not b:
                outcome = "eof"
                break
            extra += b
    except ConnectionResetError:
        outcome = "reset"
    except socket.timeout:
        outcome = "timeout"
    dt = time.monotonic() - t0
    c.close()
    rt.log("   upstream reset -> data-plane client saw: %s after %.3f s" % (outcome, dt))
    h.check(not extra, "no data after the upstream's reset (%r)" % extra[:40])
    h.check(outcome in ("reset", "eof") and dt < 5,
            "the upstream's reset closed the data-plane connection promptly (%s, %.2f s)" %
            (outcome, dt))
    h.check(outcome == "reset", "the data-plane client saw ECONNRESET, not a clean EOF "
            "(got %s)" % outcome)

    # 4. data-plane client RST -> upstream.
    c = rt.connect("127.0.0.1", p_crst, timeout=30)
    c.settimeout(10)
    greet = rt.recv_exact(c, 6)
    h.check(greet == b"hello\n", "got the upstream's greeting (%r)" % greet)
    t0 = time.monotonic()
    rt.rst_close(c)
    h.check(s_crst.wait_results(1, 35), "upstream's read ended")
    what, t1 = s_crst.results[0]
    rt.log("   data-plane client reset -> upstream saw: %s after %.3f s" % (what, t1 - t0))
    h.check(what in ("reset", "eof") and t1 - t0 < 5,
            "the client's reset closed the upstream connection promptly (%s, %.2f s)" %
            (what, t1 - t0))
    h.check(what == "reset", "the upstream saw ECONNRESET, not a clean EOF (got %s)" % what)

    # 5.
    counts = []
    for i in range(5):
        c = rt.connect("127.0.0.1", p_count, timeout=30)
        rt.send_pattern(c, 30 + i, 64 << 20)
        c.shutdown(socket.SHUT_WR)
        c.settimeout(30)
        counts.append(int.from_bytes(rt.recv_exact(c, 8), "little"))
        c.close()
    h.check(counts == [64 << 20] * 5, "the upstream counted every byte of 5 x 64 MiB (%s)"
            % counts)

    both = rt.wait_streams_closed(h.token, m_client, srv.control_port, timeout=10)
    h.check(both == (0, 0),
            "after both ends closed with data still in the tunnel, no stream is left open "
            "(client %s, server %s)" % both)

    for s in (s_req, s_rev, s_urst, s_crst, s_count):
        h.check(not s.errors, "upstream %s had no errors (%s)" % (s.name, s.errors[:2]))


rt.main("halfclose", body)
