#!/usr/bin/env python3
"""Logs stay bounded under abuse while every event is still counted (docs/RELIABILITY.md,
"Abuse and limits").

- 1000 wrong-token upgrades to a server without the per-address limit: its log grows by a
  bounded number of lines (at most 5 per 10 s window of the message, plus one summary per
  window), a "suppressed similar lines" summary accounts for the rest (lines written plus
  suppressed = 1000 exactly), and /metrics counts all 1000 failures.
- The same against a server with the default --auth-fail-limit (10/60s): the first 10 get
  401, the other 990 get 429 with Retry-After, unchecked; /metrics counts 10 failures and
  990 refusals. The right token from that address is refused too, while another source
  address (127.0.0.2) authenticates and upgrades with it. One wrong token repeated (a
  client with a stale token) is counted once: 30 of them from one address all get 401,
  and the right token still upgrades from there.
- A client whose upstream refuses every dial, 200 streams: its log grows by a bounded
  number of lines, and ringlet_upstream_dial_failures_total counts all 200.
"""
import math
import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

ATTEMPTS = 1000
STREAMS = 200
BURST, WINDOW_S = 5, 10  # the default --log-rate
AUTH_MAX = 10            # the default --auth-fail-limit


def upgrade(port, token, source="127.0.0.1"):
    """One /connect upgrade from source; returns (status, headers, sock or None). The socket
    is returned open when the answer is 101."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10,
                                 source_address=(source, 0))
    req = ("GET /connect HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ringlet.v1\r\n" % port)
    if token is not None:
        req += "Authorization: Bearer %s\r\n" % token
    s.sendall((req + "\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(4096)
        if not b:
            break
        data += b
    m = re.match(rb"HTTP/1\.1 (\d+)[^\r\n]*\r\n(.*?)\r\n\r\n", data, re.S)
    status = int(m.group(1)) if m else None
    headers = m.group(2).decode("latin-1") if m else ""
    if status == 101:
        return status, headers, s
    s.close()
    return status, headers, None


def scrape_from(port, token, source):
    s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    s.sendall(("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Connection: close\r\n\r\n" % token).encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.1 (\d+)", head)
    return (int(m.group(1)) if m else None), body.decode()


def accounted(proc, msg_re, similar):
    """(lines of the message written, their sum with the summaries' suppressed counts)."""
    text = proc.text()
    written = len(re.findall(r'msg=%s' % msg_re, text))
    left = sum(int(x) for x in re.findall(r'similar=%s suppressed=(\d+)' % re.escape(similar),
                                          text))
    return written, written + left


def wait_accounted(proc, msg_re, similar, total, timeout):
    deadline = time.monotonic() + timeout
    got = accounted(proc, msg_re, similar)
    while got[1] < total and time.monotonic() < deadline:
        time.sleep(0.25)
        got = accounted(proc, msg_re, similar)
    return got


def bound(elapsed):
    """Lines of one message a limited log may hold after elapsed seconds: BURST per window
    plus one summary per window (the windows it spans, and one more for a boundary)."""
    windows = math.ceil(elapsed / WINDOW_S) + 1
    return (BURST + 1) * windows


def wrong_token_floods(h):
    # Without the per-address limit: every attempt is checked and fails.
    srv = h.start_server(name="server-nolimit", extra=["--auth-fail-limit=off"])
    ctl = srv.control_port
    before = len(srv.lines())
    t0 = time.monotonic()
    codes = [upgrade(ctl, "wrong-token-%d" % i)[0] for i in range(ATTEMPTS)]
    h.check(codes.count(401) == ATTEMPTS, "%d wrong-token upgrades all answered 401 (%s)" %
            (ATTEMPTS, {c: codes.count(c) for c in set(codes)}))
    msg, similar = r'"unauthorized tunnel connection rejected"', \
        '"unauthorized tunnel connection rejected"'
    written, total = wait_accounted(srv, msg, similar, ATTEMPTS, WINDOW_S + 5)
    elapsed = time.monotonic() - t0
    grown = len(srv.lines()) - before
    h.check(written <= bound(elapsed) and grown <= bound(elapsed),
            "the log grew by a bounded number of lines: %d written of %d, %d in all, "
            "bound %d for %.0f s" % (written, ATTEMPTS, grown, bound(elapsed), elapsed))
    h.check(srv.count(r'msg="suppressed similar lines" similar=%s' % re.escape(similar)) >= 1,
            "a 'suppressed similar lines' summary names the message")
    h.check(total == ATTEMPTS, "lines written plus suppressed account for every attempt "
            "exactly (%d)" % total)
    code, _, m = rt.scrape(ctl, "/metrics", h.token)
    m = m.decode()
    h.check(code == 200 and rt.metric(m, "ringlet_auth_failures_total") == ATTEMPTS and
            rt.metric(m, "ringlet_handshake_failures_total", reason="unauthorized") ==
            ATTEMPTS,
            "/metrics counts all %d failures (%s, %s)" %
            (ATTEMPTS, rt.metric(m, "ringlet_auth_failures_total"),
             rt.metric(m, "ringlet_handshake_failures_total", reason="unauthorized")))
    h.check(rt.metric(m, "ringlet_auth_refused_total") == 0, "nothing refused unchecked")
    srv.stop()


def per_address_limit(h):
    srv = h.start_server(name="server")
    ctl = srv.control_port
    before = len(srv.lines())
    # Each attempt a different token, as guessing would be.
    res = [upgrade(ctl, "wrong-token-%d" % i) for i in range(ATTEMPTS)]
    codes = [r[0] for r in res]
    h.check(codes[:AUTH_MAX] == [401] * AUTH_MAX, "the first %d wrong tokens get 401" %
            AUTH_MAX)
    h.check(codes[AUTH_MAX:] == [429] * (ATTEMPTS - AUTH_MAX),
            "after %d failures the address gets 429 (%s)" %
            (AUTH_MAX, {c: codes[AUTH_MAX:].count(c) for c in set(codes[AUTH_MAX:])}))
    ra = re.search(r'(?im)^retry-after: *(\d+)', res[-1][1])
    h.check(ra and 1 <= int(ra.group(1)) <= 60, "with Retry-After (%s)" %
            (ra.group(1) if ra else None))
    st, _, _ = upgrade(ctl, h.token)
    h.check(st == 429, "the right token from that address is refused too, unchecked (%s)" %
            st)
    st, _, sock = upgrade(ctl, h.token, source="127.0.0.2")
    h.check(st == 101, "another source address upgrades with the right token (%s)" % st)
    sock.close()
    code, m = scrape_from(ctl, h.token, "127.0.0.2")
    h.check(code == 200, "/metrics from the other address: 200 (%s)" % code)
    fails = rt.metric(m, "ringlet_auth_failures_total")
    refused = rt.metric(m, "ringlet_auth_refused_total")
    h.check(fails == AUTH_MAX and refused == ATTEMPTS - AUTH_MAX + 1,
            "every attempt is counted: %s failures, %s refused" % (fails, refused))
    h.check(rt.metric(m, "tcp_controlplane_requests_total", code="429", path="/connect") ==
            ATTEMPTS - AUTH_MAX + 1, "and as 429 requests")
    h.check(srv.wait_log(r'msg="too many failed authentications: refusing the address" '
                         r'remote=127\.0\.0\.1', 5),
            "the refusal is logged once, with the address")
    grown = len(srv.lines()) - before
    h.check(grown <= 20, "the log grew by %d lines for %d attempts" % (grown, ATTEMPTS))
    st, _, _ = upgrade(ctl, None, source="127.0.0.3")
    h.check(st == 401, "a third address is not refused (%s)" % st)
    # A client left with a stale token repeats it: that is not guessing, and must not get
    # its address (and the clients behind it) refused.
    codes = [upgrade(ctl, "stale-token", source="127.0.0.4")[0] for _ in range(3 * AUTH_MAX)]
    h.check(codes == [401] * (3 * AUTH_MAX), "the same wrong token %d times: 401 each (%s)" %
            (3 * AUTH_MAX, {c: codes.count(c) for c in set(codes)}))
    st, _, sock = upgrade(ctl, h.token, source="127.0.0.4")
    h.check(st == 101, "and the right token from that address still upgrades (%s)" % st)
    sock.close()


def refused_dials(h):
    up = "127.0.0.2"
    port = rt.free_port_on("127.0.0.1", up)  # nothing listens on up:port
    srv = h.start_server(name="server-dial")
    mport = rt.free_port("127.0.0.1")
    cli = h.start_client(srv.control_port, [port], upstream=up, name="client-dial",
                         extra=["--metrics-addr", "127.0.0.1:%d" % mport])
    h.wait_data_port(srv, port)
    sbefore, cbefore = len(srv.lines()), len(cli.lines())
    t0 = time.monotonic()
    for _ in range(STREAMS):
        try:
            s = rt.connect("127.0.0.1", port, timeout=10)
            s.settimeout(10)
            s.recv(16)  # the refused stream is closed or reset (maybe before this)
            s.close()
        except OSError:
            pass
    written, total = wait_accounted(cli, r'"upstream dial failed"', '"upstream dial failed"',
                                    STREAMS, WINDOW_S + 5)
    elapsed = time.monotonic() - t0
    h.check(total == STREAMS, "every refused dial is logged or counted in a summary (%d)" %
            total)
    cgrown, sgrown = len(cli.lines()) - cbefore, len(srv.lines()) - sbefore
    h.check(cgrown <= bound(elapsed) + 5 and sgrown <= bound(elapsed) + 5,
            "%d refused dials: the client's log grew by %d lines (%d of them the dial's), "
            "the server's by %d (bound %d)" % (STREAMS, cgrown, written, sgrown,
                                               bound(elapsed) + 5))
    code, _, m = rt.scrape(mport, "/metrics", h.token)
    n = rt.metric(m.decode(), "ringlet_upstream_dial_failures_total")
    h.check(code == 200 and n == STREAMS, "the client counts all %d refused dials (%s)" %
            (STREAMS, n))


def client_honours_retry_after(h):
    """A ringlet client answered 429 waits the Retry-After the server gave before its next
    try (instead of its 250 ms back-off, which would make several refused tries)."""
    srv = h.start_server(name="server-short", extra=["--auth-fail-limit=2/6s"])
    ctl = srv.control_port
    codes = [upgrade(ctl, "guess-%d" % i)[0] for i in range(3)]
    h.check(codes == [401, 401, 429], "two wrong tokens, then 429 (%s)" % codes)
    port = rt.free_port_on("127.0.0.1", "127.0.0.2")
    t0 = time.monotonic()
    cl = h.start_client(ctl, [port], name="client-held", wait=False)
    line = cl.wait_log(r'HTTP 429\).*retry in (\d+) s', 10)
    h.check(line, "the client logs the 429 and the server's Retry-After (%s)" % line)
    secs = int(re.search(r'retry in (\d+) s', line).group(1))
    h.check(cl.wait_log(r'msg="connected to the server"', secs + 10),
            "it connects once the server's interval has passed")
    took = time.monotonic() - t0
    tries = len([x for x in cl.lines() if "did not accept the WebSocket upgrade" in x])
    h.check(tries == 1 and took >= secs - 1, "one refused try, then it waited %d s as asked "
            "(%d refused tries, connected after %.1f s)" % (secs, tries, took))
    cl.stop()


def body(h):
    wrong_token_floods(h)
    per_address_limit(h)
    client_honours_retry_after(h)
    refused_dials(h)


if __name__ == "__main__":
    rt.main("log_limits", body)
