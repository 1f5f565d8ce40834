#!/usr/bin/env python3
"""A lossy and slow link between client and server (tc netem on both sides of a veth pair
between two network namespaces the case makes: LOSS loss, DELAY delay each way): the lane
stays up, transfers both ways complete byte-exact within BOUND s, and once the qdisc is
removed a new stream carries a byte-exact echo within RECOVERY_BOUND s. Neither end's
descriptors or memory grow. Skips when the kernel has no sch_netem."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

LOSS, DELAY = "5%", "20ms"
SIZE = 8 * fl.MIB
BOUND = 60.0  # 8 MiB at 5 % loss and 40 ms RTT: a few seconds here; the bound is generous
RECOVERY_BOUND = 2.0


def body(c):
    if os.geteuid() != 0:
        fl.skip("needs root for network namespaces")
    n = fl.NetnsTunnel(c)
    for ns, dev in ((n.ns_a, "va"), (n.ns_b, "vb")):
        r = subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev,
                            "root", "netem", "loss", LOSS, "delay", DELAY],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            fl.skip("tc netem is not available here (the kernel's sch_netem): %s" %
                    r.stdout.decode().strip())
    fl.check_transfers(c, "warm-up", [n.transfer(SIZE, rate=1 << 40)], must_complete=True)
    before = c.usage([n.server, n.client])
    mark = n.client.mark()
    t0 = time.monotonic()
    tr = [n.transfer(SIZE, rate=1 << 40, start_at=0) for _ in range(2)]
    up_ok = n.probe(SIZE)()  # the other direction: an echo of SIZE bytes
    fl.check_transfers(c, "lossy link", tr, must_complete=True, timeout=BOUND + 30)
    dt = time.monotonic() - t0
    c.check(up_ok, "an echo of %d bytes across the lossy link is byte-exact" % SIZE)
    c.result("netem-loss-%s-delay-%s" % (LOSS, DELAY), BOUND, dt)
    c.check(dt <= BOUND, "%d MiB down twice and echoed once across the lossy link in %.1f s "
            "(bound %.0f s)" % (SIZE >> 20, dt, BOUND))
    c.check(not n.client.wait_log(r'disconnected from the server', 0, after=mark),
            "the lane stayed up on the lossy link")
    for ns, dev in ((n.ns_a, "va"), (n.ns_b, "vb")):
        fl.sh(c, "ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root")
    c.recovery("netem-removed", RECOVERY_BOUND, n.probe(), time.monotonic())
    c.no_growth("netem", before)


fl.main("link_netem", body)
