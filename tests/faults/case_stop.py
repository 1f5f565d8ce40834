#!/usr/bin/env python3
"""SIGSTOP then SIGCONT of the server, then of the client, during transfers: a stop
shorter than the dead-peer timeout (30 s, PROTOCOL.md §6) loses nothing: every transfer
completes byte-exact after SIGCONT, a new one goes through within BOUND s of it, and
neither end's descriptors or memory grow from the first stop of an end to the second."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

STOP_S = 5.0
BOUND = 2.0  # nothing to reconnect: the first probe after SIGCONT


def body(c):
    t = fl.Tunnel(c)
    t.warm_up()
    for who in ("server", "client"):
        p = getattr(t, who)
        before = None
        for rnd in (1, 2):
            mark = t.client.mark()
            tr = [t.transfer() for _ in range(2)]
            for x in tr:
                c.check(x.started.wait(30), "a transfer is under way (%d bytes)" % x.n)
            p.signal(signal.SIGSTOP)
            time.sleep(STOP_S)
            p.signal(signal.SIGCONT)
            t0 = time.monotonic()
            c.recovery("sigstop-%s" % who, BOUND, t.probe(), t0)
            fl.check_transfers(c, "%s stopped %.0f s" % (who, STOP_S), tr,
                               must_complete=True)
            c.check(not t.client.wait_log(r'disconnected from the server', 0, after=mark),
                    "the tunnel stayed up through the stop")
            if before is None:
                before = c.usage([t.server, t.client])
        c.no_growth("sigstop-%s" % who, before)


fl.main("stop", body)
