#!/usr/bin/env python3
"""A client asking for the server's control port as a data-plane port: WELCOME answers it
IN_USE (PROTOCOL.md §2.3) and the server opens no listener there (its data-plane listeners
use SO_REUSEPORT, which could otherwise share the control port and take its connections).
Asked twice over, by a raw lane and by a real client (which logs the refusal): the control
port keeps answering every connection (each new connection is the server's HTTP, never a
tunnelled stream), the existing tunnel keeps carrying byte-exact transfers, a new client
connects, and the server's descriptors and memory do not grow."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

rt = fl.rt
IN_USE = 1
CONNS = 50


def control_port_answers(c, ctl, what):
    """CONNS fresh connections to the control port, each answered by the server's HTTP."""
    good = 0
    for _ in range(CONNS):
        code, _, body = rt.http_get("127.0.0.1", ctl, "/healthz", timeout=5)
        good += code == 200
    c.check(good == CONNS, "%s: %d of %d connections to the control port answered by the "
            "server (/healthz 200)" % (what, good, CONNS))


def body(c):
    t = fl.Tunnel(c)
    t.warm_up()
    # The same second port both rounds: the server keeps a port's listeners for the next
    # client (PROTOCOL.md §3.4), so a new port each round would add two.
    extra = rt.free_port_on("127.0.0.1", fl.UP)
    c.service(fl.UP, extra, rt.echo_handler, "echo-extra")
    before = None
    for rnd in (1, 2):
        s, fr, w = fl.raw_lane(t.ctl, c.token, ports=[t.ctl])
        c.check(w["ports"] == [(t.ctl, IN_USE)], "a HELLO asking for the control port %d is "
                "answered IN_USE (%s)" % (t.ctl, w["ports"]))
        control_port_answers(c, t.ctl, "while that lane is up")
        c.check(t.probe()(), "the real tunnel still carries a byte-exact echo")
        s.close()
        # A real client asking for it (and for a free port beside it).
        cl = c.spawn("client-ctl-%d" % rnd, [
            c.bin, "client", "--url", "ws://127.0.0.1:%d" % t.ctl, "--token-file",
            c.token_file, "--upstream", fl.UP, "--ports", "%d,%d" % (t.ctl, extra),
            "--auto-tls=false"])
        c.check(cl.wait_log(r'msg="connected to the server"', 15),
                "a client asking for the control port still connects")
        c.check(cl.wait_log(r'in-use|in use', 5) is not None,
                "the client logs that the control port is in use")
        c.check(t.server.wait_log(r'msg="data-plane port open" port=%d ' % extra, 10),
                "its other port opens")
        c.check(not t.server.wait_log(r'msg="data-plane port open" port=%d ' % t.ctl, 0),
                "no data-plane listener on the control port")
        control_port_answers(c, t.ctl, "with that client connected")
        c.check(fl.echo_probe(extra)(), "that client's other port carries a byte-exact echo")
        fl.check_transfers(c, "the first tunnel", [t.transfer(32 * fl.MIB, rate=1 << 40)],
                           must_complete=True)
        cl.stop()
        if before is None:
            before = c.usage([t.server])
    c.no_growth("control-port", before)


fl.main("control_port", body)
