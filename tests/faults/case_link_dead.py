#!/usr/bin/env python3
"""The link between client and server (a veth pair between two network namespaces the case
makes) goes down for DOWN_S s, longer than the dead-peer timeout (30 s, PROTOCOL.md §6),
during a transfer: both ends declare the lane dead, the transfer is cut at an exact prefix
(never other bytes), and once the link is back the client reconnects with backoff (ceiling
4 s, §7.3) and a new stream carries a byte-exact echo within BOUND s. Twice over; neither
end's descriptors or memory grow from the first outage to the second."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

DOWN_S = 36.0  # the 30 s dead-peer timeout and a PING interval's slack
BOUND = 6.0  # the backoff's 4 s ceiling, the reconnect, the echo


def body(c):
    if os.geteuid() != 0:
        fl.skip("needs root for network namespaces")
    n = fl.NetnsTunnel(c)
    n.warm_up()
    before = None
    for rnd in (1, 2):
        mark_c, mark_s = n.client.mark(), n.server.mark()
        tr = [n.transfer(size=256 * fl.MIB, rate=16 * fl.MIB)]
        c.check(tr[0].started.wait(30), "a transfer is under way (%d bytes)" % tr[0].n)
        n.link("down")
        time.sleep(DOWN_S)
        c.check(n.client.wait_log(r'disconnected from the server', 0, after=mark_c),
                "the client declared the lane dead during the outage")
        c.check(n.server.wait_log(r'peer unresponsive|msg="client disconnected"', 0,
                                  after=mark_s), "so did the server")
        n.link("up")
        t0 = time.monotonic()
        c.recovery("veth-down-%.0fs" % DOWN_S, BOUND, n.probe(), t0)
        fl.check_transfers(c, "link down %.0f s" % DOWN_S, tr)
        fl.check_transfers(c, "after recovery", [n.transfer(rate=1 << 40)],
                           must_complete=True)
        if before is None:
            before = c.usage([n.server, n.client])
    c.no_growth("veth-dead", before)


fl.main("link_dead", body)
