#!/usr/bin/env python3
"""The server under a hard open-file limit of 256 (prlimit) while 300 data-plane
connections are held during a transfer: the transfer under way completes byte-exact (its
descriptors are already open), the listener pauses instead of spinning (back-off 250 ms
doubling to 8 s, README "Limits"), and once the connections close, a new one carries a
byte-exact echo within BOUND s. Twice over; the server's descriptors and memory do not
grow from the first round to the second."""
import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

rt = fl.rt
LIMIT = 256
HELD = 300
HOLD_S = 3.0
BOUND = 9.0  # the listener's 8 s back-off ceiling, then the accept and the echo


def paused(c, ctl):
    """The server's ringlet_accept_paused_total (-1 when /metrics does not answer)."""
    try:
        code, _, text = rt.scrape(ctl, "/metrics", c.token)
    except OSError:
        return -1
    v = rt.metric(text.decode(), "ringlet_accept_paused_total") if code == 200 else None
    return -1 if v is None else v


def body(c):
    if not os.path.exists("/usr/bin/prlimit"):
        fl.skip("prlimit (util-linux) is missing")
    t = fl.Tunnel(c, start_client=False)
    # The same server, restarted under the limit (prlimit, then exec).
    t.server.stop()
    ctl = t.ctl
    srv = c.spawn("server-limited", [
        "/usr/bin/prlimit", "--nofile=%d:%d" % (LIMIT, LIMIT), c.bin, "server",
        "--auto-tls=false", "--token-file", c.token_file, "--control-port", str(ctl),
        "--control-addr", "127.0.0.1", "--data-addr", "127.0.0.1"])
    srv.control_port = ctl
    if not srv.wait_log(r'msg="server listening"', 15):
        c.fail("the limited server did not start")
    t.server = srv
    t.start_client()
    t.warm_up()
    before = None
    for rnd in (1, 2):
        paused0 = paused(c, ctl)
        bg = t.transfer(128 * fl.MIB, rate=64 * fl.MIB, start_at=0)
        held = []
        for _ in range(HELD):
            try:
                held.append(socket.create_connection(("127.0.0.1", t.p_echo), timeout=2))
            except OSError:
                break
        deadline = time.monotonic() + 10
        while paused(c, ctl) <= paused0 and time.monotonic() < deadline:
            time.sleep(0.2)
        # The data plane pauses at its descriptor reserve (or, failing that, at EMFILE);
        # counted every time, logged at most once per 10 s, so the counter is the witness.
        c.check(paused(c, ctl) > paused0, "out of descriptors, the server's listener "
                "pauses (%d held; ringlet_accept_paused_total %s -> %s)" %
                (len(held), paused0, paused(c, ctl)))
        time.sleep(HOLD_S)
        fl.check_transfers(c, "out of descriptors", [bg], must_complete=True)
        for s in held:
            s.close()
        t0 = time.monotonic()
        c.recovery("fd-limit", BOUND, t.probe(), t0, give_up=30)
        if before is None:
            # The held connections' streams close on both ends: let them settle first.
            time.sleep(1)
            before = c.usage([srv])
    c.no_growth("fd-limit", before)


fl.main("fd_limit", body)
