#!/usr/bin/env python3
"""kill -9 of the client during a transfer: the cut streams deliver an exact prefix; the
server notices the lane is gone, and a client started again carries a byte-exact transfer
within BOUND s; the server's descriptors and memory do not grow (the dead session's
streams, lanes and listeners are all released) from the first kill to the second."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

BOUND = 3.0  # a first connect (no backoff) and the data-plane ports re-opened


def body(c):
    t = fl.Tunnel(c)
    t.warm_up()
    before = None
    for rnd in (1, 2):
        tr = [t.transfer() for _ in range(2)]
        for x in tr:
            c.check(x.started.wait(30), "a transfer is under way (%d bytes)" % x.n)
        mark = t.server.mark()
        t.client.signal(signal.SIGKILL)
        c.check(t.client.wait_exit(10) is not None, "the client is gone")
        fl.check_transfers(c, "client killed", tr)
        c.check(t.server.wait_log(r'msg="client disconnected"|msg="tunnel closed"', 10,
                                  after=mark), "the server notices the client is gone")
        t0 = time.monotonic()
        t.start_client(name="client-%d" % (rnd + 1), wait=False)
        c.recovery("kill-9-client", BOUND, t.probe(), t0)
        fl.check_transfers(c, "after recovery", [t.transfer(64 * fl.MIB, rate=1 << 40)],
                           must_complete=True)
        if before is None:
            before = c.usage([t.server])
    c.no_growth("kill-9-client", before)


fl.main("kill_client", body)
