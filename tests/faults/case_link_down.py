#!/usr/bin/env python3
"""The link between client and server (a veth pair between two network namespaces the case
makes) goes down for DOWN_S s during transfers, then up: shorter than the dead-peer timeout
(30 s, PROTOCOL.md §6), so the lane survives, every transfer completes byte-exact, and a
new stream carries a byte-exact echo within BOUND s of the link coming back (TCP's
retransmission back-off: at most about the outage's length). Twice over; neither end's
descriptors or memory grow from the first outage to the second."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

DOWN_S = 3.0
BOUND = DOWN_S + 3.0


def body(c):
    if os.geteuid() != 0:
        fl.skip("needs root for network namespaces")
    n = fl.NetnsTunnel(c)
    n.warm_up()
    before = None
    for rnd in (1, 2):
        mark = n.client.mark()
        tr = [n.transfer() for _ in range(2)]
        for x in tr:
            c.check(x.started.wait(30), "a transfer is under way (%d bytes)" % x.n)
        n.link("down")
        time.sleep(DOWN_S)
        n.link("up")
        t0 = time.monotonic()
        c.recovery("veth-down-%.0fs" % DOWN_S, BOUND, n.probe(), t0)
        fl.check_transfers(c, "link down %.0f s" % DOWN_S, tr, must_complete=True)
        c.check(not n.client.wait_log(r'disconnected from the server', 0, after=mark),
                "the lane survived the outage")
        if before is None:
            before = c.usage([n.server, n.client])
    c.no_growth("veth-down", before)


fl.main("link_down", body)
