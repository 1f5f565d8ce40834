#!/usr/bin/env python3
"""A wrong-token flood on the control port: FLOOD upgrade requests with a wrong token from
one source, 8 at a time. None is upgraded (each gets 401 or is closed); the server's log
about them stays bounded (LOG_BOUND lines, not one per attempt); meanwhile a new tunnel
client (another source) connects within CONNECT_BOUND s, /healthz answers, and the
tunnel's transfer under way completes byte-exact; afterwards the server's descriptors and
memory are back within the slack."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl  # first: it keeps __pycache__ out of the tree
import attack

FLOOD = 3000
LOG_BOUND = 20  # 5 lines of a message per 10 s, its summary, the 429 limit's warning
CONNECT_BOUND = 6.0
HEALTH_BOUND = 2.0


def body(c):
    t = fl.Tunnel(c)
    t.warm_up()
    before = c.usage([t.server])
    mark = t.server.mark()
    bg = t.transfer(128 * fl.MIB, rate=32 * fl.MIB, start_at=0)
    fl_ = attack.TokenFlood(t.ctl, FLOOD)
    fl_.start()
    time.sleep(0.5)
    dt = attack.legit_client(c, t, "client-during", CONNECT_BOUND + 10)
    t0 = time.monotonic()
    ok = attack.healthz(t.ctl, timeout=HEALTH_BOUND + 3)
    hdt = time.monotonic() - t0
    fl_.join(120)
    c.check(not fl_.is_alive(), "the flood ended (%d requests)" % fl_.sent)
    c.check(fl_.statuses.get(101, 0) == 0, "no wrong-token request was upgraded (%s)" %
            fl_.statuses)
    c.result("wrong-token-connect", CONNECT_BOUND, dt if dt else "never")
    c.check(dt is not None and dt <= CONNECT_BOUND, "during the flood a new tunnel client "
            "connects within %s s (bound %.1f s)" %
            ("%.2f" % dt if dt else "never", CONNECT_BOUND))
    c.result("wrong-token-healthz", HEALTH_BOUND, hdt if ok else "never")
    c.check(ok and hdt <= HEALTH_BOUND, "during the flood /healthz answers (%.2f s)" % hdt)
    fl.check_transfers(c, "during the flood", [bg], must_complete=True)
    lines = len([l for l in t.server.lines()[mark:] if "unauthorized" in l or "token" in l])
    c.result("wrong-token-log-lines", LOG_BOUND, lines, "lines")
    c.check(lines <= LOG_BOUND, "the server logged %d lines about %d wrong tokens (bound %d)"
            % (lines, fl_.sent, LOG_BOUND))
    c.check(t.probe()(), "after the flood, a byte-exact echo goes through")
    c.no_growth("wrong-token", before)


fl.main("wrong_token", body)
