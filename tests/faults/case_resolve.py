#!/usr/bin/env python3
"""The upstream's name does not resolve when the client starts, then does: while it does
not, every data-plane connection is closed promptly, without a byte (REFUSED_BOUND s), and
the tunnel stays up; once the name resolves, a byte-exact echo goes through within BOUND s,
without the client reconnecting. The client resolves names through an /etc/hosts and an
/etc/resolv.conf bind-mounted in a private mount namespace (unshare -m): the resolver asks
127.0.0.1 only (where no DNS server listens), so no query leaves the host."""
import os
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

rt = fl.rt
NAME = "upstream.ringlet-fault.test"
REFUSED_BOUND = 2.0
BOUND = 10.0  # a refused stream asks the resolver for a retry at most once a second


def body(c):
    for tool in ("unshare", "mount"):
        if not shutil.which(tool):
            fl.skip("%s is not installed" % tool)
    if os.geteuid() != 0:
        fl.skip("needs root for a private mount namespace (the client's /etc/hosts)")
    hosts = c.write("hosts", "127.0.0.1 localhost\n")
    resolv = c.write("resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    t = fl.Tunnel(c, start_client=False)
    argv = ["unshare", "-m", "--", "sh", "-c",
            'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && '
            'shift && exec "$@"', hosts, resolv,
            c.bin, "client", "--url", "ws://127.0.0.1:%d" % t.ctl, "--token-file",
            c.token_file, "--upstream", NAME, "--ports", "%d,%d" % (t.p_echo, t.p_src),
            "--auto-tls=false"]
    # sh -c: $0 is hosts, $1 resolv; after `shift`, "$@" is the client's argv.
    cl = c.spawn("client", argv)
    t.client = cl
    if not cl.wait_log(r'msg="connected to the server"', 15):
        c.fail("the client did not connect")
    t.ports_open()
    c.check(cl.wait_log(r'cannot resolve the upstream', 5),
            "the client says the upstream does not resolve yet")
    before = c.usage([t.server, cl])
    worst, junk = 0.0, 0
    for _ in range(20):
        t0 = time.monotonic()
        try:
            s = rt.connect("127.0.0.1", t.p_echo)
            s.settimeout(REFUSED_BOUND + 5)
            while True:
                b = s.recv(65536)
                if not b:
                    break
                junk += len(b)
            s.close()
        except ConnectionResetError:
            pass
        except socket.timeout:
            c.fail("a data-plane connection stayed open while the upstream does not resolve")
        worst = max(worst, time.monotonic() - t0)
    c.result("unresolvable-refused", REFUSED_BOUND, worst)
    c.check(worst <= REFUSED_BOUND and junk == 0, "unresolvable upstream: each connection "
            "closed within %.2f s, no bytes" % worst)
    mark = cl.mark()
    with open(hosts, "w") as f:  # the same inode: the bind mount sees it
        f.write("127.0.0.1 localhost\n%s %s\n" % (fl.UP, NAME))
    c.recovery("unresolvable-then-resolvable", BOUND, t.probe(), time.monotonic())
    c.check(not cl.wait_log(r'disconnected from the server', 0, after=mark),
            "the client did not need to reconnect for it")
    fl.check_transfers(c, "once it resolves", [t.transfer(32 * fl.MIB, rate=1 << 40)],
                       must_complete=True)
    # Descriptors: none kept from the refused streams. Memory: no transfer could run
    # before the fault to warm the buffers up (the name did not resolve), so its baseline
    # is taken after a warm-up once it resolves, and a second round must not grow it.
    after = c.usage([t.server, cl])
    for a, b in zip(after, before):
        c.check(a.fds is not None and a.fds <= b.fds + fl.FD_SLACK,
                "resolve: %s holds no descriptor of the refused streams (%s before, %s "
                "after)" % (b.name, b.fds, a.fds))
    t.warm_up()
    warm = c.usage([t.server, cl])
    fl.check_transfers(c, "second round", [t.transfer(32 * fl.MIB, rate=1 << 40)],
                       must_complete=True)
    c.no_growth("resolve", warm)


fl.main("resolve", body)
