#!/usr/bin/env python3
"""kill -9 of the server during a transfer: the cut streams deliver an exact prefix (never
other bytes); the server is started again on the same control port and the client, which
reconnects with backoff (250 ms doubling to 4 s, PROTOCOL.md §7.3), carries a byte-exact
transfer within BOUND s of the server being back; the client's descriptors and memory do
not grow from the first kill to the second (the first sets the high-water mark)."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

BOUND = 6.0  # the backoff's 4 s ceiling, plus the reconnect and the port opening


def body(c):
    t = fl.Tunnel(c)
    t.warm_up()
    before = None
    for rnd in (1, 2):
        tr = [t.transfer() for _ in range(2)]
        for x in tr:
            c.check(x.started.wait(30), "a transfer is under way (%d bytes)" % x.n)
        t.server.signal(signal.SIGKILL)
        c.check(t.server.wait_exit(10) is not None, "the server is gone")
        fl.check_transfers(c, "server killed", tr)
        mark = t.client.mark()
        t.restart_server(name="server-%d" % (rnd + 1))
        t0 = time.monotonic()
        c.recovery("kill-9-server", BOUND, t.probe(), t0)
        c.check(t.client.wait_log(r'msg="connected to the server"', 1, after=mark),
                "the client reconnected to the new server")
        fl.check_transfers(c, "after recovery", [t.transfer(64 * fl.MIB, rate=1 << 40)],
                           must_complete=True)
        if before is None:
            before = c.usage([t.client])
    c.no_growth("kill-9-server", before)


fl.main("kill_server", body)
