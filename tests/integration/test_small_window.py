#!/usr/bin/env python3
"""Flow control with small windows (docs/PROTOCOL.md §5): a stream reads its socket only
as far as the peer's credit allows (one multishot recv across many reads where the kernel
has its byte limit, a single-shot recv of at most the credit elsewhere), and the receiver
gives credit back in batches, at once when the peer runs low. Through a tunnel whose
windows are a few KiB on both ends: bulk echoes byte-exact at sizes around the window,
several at once; a long run of small requests and answers on one connection (many times
the window each way, so the credit is given back hundreds of times, in batches); and no
stream reset by either end (a sender that overran the credit would get RST protocol)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

WINDOW = 5000  # not a power of two: an eighth, a quarter, the limits fall between bytes
SIZES = [0, 1, 624, 625, 1249, 1250, 1251, 4999, 5000, 5001, 65536, 300007]
ROUNDS = 3000  # request/answer round trips on one connection
REQ, ANS = 64, 1000  # 3000 x 64 B = 38 windows up, 3000 x 1000 B = 600 windows down


def rr_handler(c, svc):
    """Answer every REQ bytes with ANS bytes derived from the request, until EOF."""
    n = 0
    try:
        while True:
            req = rt.recv_exact(c, REQ)
            if len(req) < REQ:
                break
            c.sendall((req * (ANS // REQ + 1))[:ANS])
            n += 1
    except OSError:
        pass
    c.close()
    svc.add(("answered", n))


def rr_run(port):
    """ROUNDS requests on one connection, each answer checked; returns how many matched."""
    s = rt.connect("127.0.0.1", port, timeout=30)
    s.settimeout(30)
    ok = 0
    try:
        for i in range(ROUNDS):
            req = (b"%08d" % i) * (REQ // 8)
            s.sendall(req)
            ans = rt.recv_exact(s, ANS)
            if ans != (req * (ANS // REQ + 1))[:ANS]:
                break
            ok += 1
    except OSError:
        pass
    s.close()
    return ok


def resets(port, token):
    body = rt.scrape(port, "/metrics", token)[2].decode()
    total = 0.0
    for line in body.splitlines():
        if line.startswith("ringlet_stream_resets_total{"):
            total += float(line.rsplit(None, 1)[1])
    return total


def main():
    h = rt.Harness("small_window")
    up = "127.0.0.2"
    echo_port = rt.free_port_on("127.0.0.1", up)
    rr_port = rt.free_port_on("127.0.0.1", up)
    h.service(up, echo_port, rt.echo_handler, "echo")
    h.service(up, rr_port, rr_handler, "rr")
    win = ["--window", str(WINDOW)]
    srv = h.start_server(extra=win)
    m_client = rt.free_port()
    h.start_client(srv.control_port, [echo_port, rr_port], upstream=up,
                   extra=win + ["--metrics-addr", "127.0.0.1:%d" % m_client])
    h.wait_data_port(srv, echo_port)
    h.wait_data_port(srv, rr_port)

    bad = [n for n in SIZES if not rt.echo_once(echo_port, n)]
    h.check(not bad, "window %d both ways: echo byte-exact at %d sizes up to %d" %
            (WINDOW, len(SIZES), SIZES[-1]) + ("" if not bad else "; wrong at %s" % bad))

    results = rt.all_at_once(lambda n: rt.echo_once(echo_port, n), SIZES)
    h.check(all(results), "the same sizes at once, each on its own stream, byte-exact")

    got = rr_run(rr_port)
    h.check(got == ROUNDS, "%d of %d request/answer round trips on one connection (%d B up, "
            "%d B down: %d and %d windows), every answer right" %
            (got, ROUNDS, REQ, ANS, ROUNDS * REQ // WINDOW, ROUNDS * ANS // WINDOW))

    s_rst, c_rst = resets(srv.control_port, h.token), resets(m_client, h.token)
    h.check(s_rst == 0 and c_rst == 0,
            "no stream reset by either end (server %d, client %d)" % (s_rst, c_rst))
    h.passed()


if __name__ == "__main__":
    main()
