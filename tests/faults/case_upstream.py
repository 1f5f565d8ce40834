#!/usr/bin/env python3
"""Upstream faults, each behind its own tunnelled port, twice over:

- refusing (nothing listens): every data-plane connection is closed, without a byte, within
  REFUSED_BOUND s (RST REFUSED through the tunnel);
- resetting mid-response: the data-plane connection gets an exact prefix of what the
  upstream sent, then ends within RESET_BOUND s of the upstream's reset;
- never answering (its SYNs are dropped: a full accept queue): the client's dial times out
  (5 s, the default dial timeout) and the data-plane connection is closed within
  HANG_BOUND s;
- accepting and never sending: the stream stays open (ringlet invents no timeout of its
  own), and when the data-plane side closes, the upstream sees it within SILENT_BOUND s.

Meanwhile the tunnel's other ports carry byte-exact transfers, and neither end's descriptors
or memory grow from the first round to the second."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

rt = fl.rt
REFUSED_BOUND = 2.0
RESET_BOUND = 2.0
HANG_BOUND = 8.0  # the 5 s dial timeout (CFG_DEFAULT_DIAL_MS), the RST, the close
SILENT_BOUND = 2.0
REFUSED_N = 100
HANG_N = 4


def closed_within(sock, bound):
    """Wait up to bound + 5 s for sock to end: (seconds, bytes received, how)."""
    sock.settimeout(bound + 5)
    t0 = time.monotonic()
    got = b""
    try:
        while True:
            b = sock.recv(65536)
            if not b:
                how = "eof"
                break
            got += b
    except ConnectionResetError:
        how = "reset"
    except socket.timeout:
        how = "open"
    sock.close()
    return time.monotonic() - t0, got, how


def body(c):
    up = fl.UP
    p_ref, p_rst, p_hang, p_sil = (rt.free_port_on("127.0.0.1", up) for _ in range(4))
    resets = []

    def reset_handler(conn, svc):
        line = b""
        while not line.endswith(b"\n"):
            b = conn.recv(1)
            if not b:
                return
            line += b
        seed, size = (int(x) for x in line.split())
        rt.send_pattern(conn, seed, size // 2)
        with svc.lock:
            resets.append(time.monotonic())
        rt.rst_close(conn)

    silent_end = []

    def silent_handler(conn, svc):
        conn.settimeout(60)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass
        t = time.monotonic()
        with svc.lock:
            silent_end.append(t)

    c.service(up, p_rst, reset_handler, "resetter")
    c.service(up, p_sil, silent_handler, "silent")
    # Never answering: backlog 0, never accepted, its queue filled by one connection.
    hang = socket.socket()
    hang.bind((up, p_hang))
    hang.listen(0)
    filler = socket.create_connection((up, p_hang), timeout=2)
    c.on_cleanup.append(lambda: (filler.close(), hang.close()))
    probe = socket.socket()
    probe.setblocking(False)
    probe.connect_ex((up, p_hang))
    time.sleep(1.0)
    try:
        probe.getpeername()
        dropped = False
    except OSError:
        dropped = True
    probe.close()
    c.check(dropped, "the never-answering upstream drops SYNs (a full accept queue)")

    t = fl.Tunnel(c, client_extra=["--ports", "%d,%d,%d,%d" % (p_ref, p_rst, p_hang, p_sil)])
    for p in (p_ref, p_rst, p_hang, p_sil):
        c.wait_data_port(t.server, p)
    t.warm_up()

    def round_():
        bg = t.transfer(64 * fl.MIB, rate=32 * fl.MIB, start_at=0)
        # Refusing.
        worst, junk = 0.0, 0
        for _ in range(REFUSED_N):
            t0 = time.monotonic()
            try:
                s = rt.connect("127.0.0.1", p_ref)
            except ConnectionResetError:  # reset before connect() returned
                worst = max(worst, time.monotonic() - t0)
                continue
            dt, got, how = closed_within(s, REFUSED_BOUND)
            worst, junk = max(worst, dt), junk + len(got)
            if how == "open":
                c.fail("refused upstream: the data-plane connection stayed open")
        c.result("upstream-refused", REFUSED_BOUND, worst)
        c.check(worst <= REFUSED_BOUND and junk == 0,
                "refused upstream: %d connections each closed within %.2f s, no bytes (%d)" %
                (REFUSED_N, worst, junk))
        # Resetting mid-response.
        n0 = len(resets)
        x = fl.Transfer(p_rst, 9, 8 * fl.MIB, rate=1 << 40, start_at=0)
        x.start()
        c.check(x.finish(30), "reset upstream: the data-plane connection ended")
        c.check(x.prefix_ok and x.outcome != "complete" and x.n <= 4 * fl.MIB,
                "reset upstream: %s after %d bytes, an exact prefix of the %d sent" %
                (x.outcome, x.n, 4 * fl.MIB))
        c.check(len(resets) > n0, "the upstream reset its connection")
        dt = x.t_end - resets[-1]
        c.result("upstream-reset", RESET_BOUND, dt)
        c.check(dt <= RESET_BOUND, "reset upstream: the data-plane side ended %.2f s after "
                "the reset (bound %.1f s)" % (dt, RESET_BOUND))
        # Never answering.
        res = []

        def one():
            t0 = time.monotonic()
            try:
                s = rt.connect("127.0.0.1", p_hang)
            except ConnectionResetError:
                res.append((time.monotonic() - t0, b"", "reset"))
                return
            res.append(closed_within(s, HANG_BOUND))
        ts = [threading.Thread(target=one) for _ in range(HANG_N)]
        for th in ts:
            th.start()
        for th in ts:
            th.join(HANG_BOUND + 10)
        worst = max(r[0] for r in res) if res else 99
        c.result("upstream-never-answers", HANG_BOUND, worst)
        c.check(len(res) == HANG_N and all(r[2] != "open" and not r[1] for r in res) and
                worst <= HANG_BOUND, "never-answering upstream: %d connections closed "
                "within %.2f s (bound %.1f s): %s" % (HANG_N, worst, HANG_BOUND,
                                                      [r[2] for r in res]))
        # Accepting, never sending.
        n0 = len(silent_end)
        s = rt.connect("127.0.0.1", p_sil)
        s.sendall(b"GET / HTTP/1.1\r\n\r\n")
        s.settimeout(2)
        try:
            b = s.recv(1)
            still = False
        except socket.timeout:
            still = True
        c.check(still, "silent upstream: the stream stays open, nothing invented (2 s)")
        t0 = time.monotonic()
        s.close()
        deadline = t0 + SILENT_BOUND + 5
        while len(silent_end) == n0 and time.monotonic() < deadline:
            time.sleep(0.02)
        dt = (silent_end[-1] - t0) if len(silent_end) > n0 else 99.0
        c.result("upstream-silent-close", SILENT_BOUND, dt)
        c.check(dt <= SILENT_BOUND, "silent upstream: it sees the close %.2f s after the "
                "data-plane side closed (bound %.1f s)" % (dt, SILENT_BOUND))
        fl.check_transfers(c, "beside the upstream faults", [bg], must_complete=True)
        c.check(t.probe()(), "the tunnel carries a byte-exact echo after the faults")

    round_()
    before = c.usage([t.server, t.client])
    round_()
    c.no_growth("upstream-faults", before)


fl.main("upstream", body)
