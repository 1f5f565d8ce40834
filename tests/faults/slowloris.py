"""The slowloris cases' body (plain and TLS control ports)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attack
import faultlib as fl

CONNS = 600  # more than the 256 pending control connections a shard accepts
HEALTH_BOUND = 2.0
CONNECT_BOUND = 6.0  # the client's 4 s backoff ceiling, the upgrade, HELLO/WELCOME
SETTLE = 15.0  # the 10 s handshake timeout closes what the attack left behind


def attack_round(c, t, tls, kind, rnd):
    """One slowloris round: the checks of this case, with a transfer under way."""
    sl = attack.Slowloris(t.ctl, CONNS, attack.TLS_START if tls else attack.PLAIN_START)
    sl.start()
    c.on_cleanup.append(sl.halt)
    try:
        deadline = time.monotonic() + 20
        while sl.opened < CONNS and time.monotonic() < deadline:
            time.sleep(0.1)
        c.check(sl.opened >= CONNS, "slowloris (%s): %d connections opened from %s" %
                (kind, sl.opened, attack.SRC))
        bg = t.transfer(128 * fl.MIB, rate=32 * fl.MIB, start_at=0)
        worst, answered = 0.0, 0
        for _ in range(5):
            t0 = time.monotonic()
            answered += attack.healthz(t.ctl, tls, timeout=HEALTH_BOUND + 3)
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.5)
        c.result("slowloris-%s-healthz" % kind, HEALTH_BOUND,
                 worst if answered == 5 else "never")
        c.check(answered == 5 and worst <= HEALTH_BOUND, "slowloris (%s): /healthz from "
                "another source answered %d of 5 times, within %.2f s (bound %.1f s)" %
                (kind, answered, worst, HEALTH_BOUND))
        dt = attack.legit_client(c, t, "client-during-%d" % rnd, CONNECT_BOUND + 10)
        c.result("slowloris-%s-connect" % kind, CONNECT_BOUND, dt if dt else "never")
        c.check(dt is not None and dt <= CONNECT_BOUND, "slowloris (%s): a new tunnel client "
                "connects within %s s (bound %.1f s)" %
                (kind, "%.2f" % dt if dt else "never", CONNECT_BOUND))
        fl.check_transfers(c, "during slowloris (%s)" % kind, [bg], must_complete=True)
    finally:
        sl.halt()
    c.check(t.probe()(), "after the slowloris, a byte-exact echo goes through")


def run(c, tls):
    kind = "tls" if tls else "plain"
    extra = []
    if tls:
        certs = os.path.join(c.dir, "certs")
        extra = ["--auto-tls=true", "--auto-tls-san", "127.0.0.1", "--auto-tls-path", certs]
    t = fl.Tunnel(c, server_extra=extra, start_client=False)
    if tls:
        t.url = "wss://127.0.0.1:%d" % t.ctl
        t.client_extra = ["--ca-file", os.path.join(certs, "ca.crt")]
    t.start_client()
    t.warm_up()
    # Twice: the first attack sets the high-water mark of what a flood of handshakes costs
    # (TLS sessions, request buffers: memory the allocator keeps for reuse), the second
    # must not grow it.
    first = c.usage([t.server])
    before = None
    for rnd in (1, 2):
        attack_round(c, t, tls, kind, rnd)
        if before is None:
            deadline = time.monotonic() + SETTLE
            while time.monotonic() < deadline and \
                    fl.Usage(t.server.name, t.server.pid).fds > first[0].fds + fl.FD_SLACK:
                time.sleep(0.2)
            before = c.usage([t.server])
    c.no_growth("slowloris-%s" % kind, before, settle=SETTLE)
