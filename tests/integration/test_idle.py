#!/usr/bin/env python3
"""Liveness (about 2.3 minutes).

1. A tunnel with no traffic for 90 s stays up: no disconnect or close in either log, and a
   data-plane connection after 90 s works through the same client process without a
   reconnect (the pings keep it alive, well inside ingress-nginx's 60 s idle timeout).
2. SIGSTOP the server: the client logs "peer unresponsive" within 30 s + 2 s (nothing
   received for 30 s means gone; checked every 250 ms), not before 30 s of silence, and
   closes the upstream connections the tunnel carried. After SIGCONT the client
   reconnects.
"""
import os
import re
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

IDLE = 90
DEAD = 30
TOLERANCE = 2


def body(h):
    up = "127.0.0.2"
    port = rt.free_port_on("127.0.0.1", up)

    def handler(c, svc):
        c.sendall(b"up\n")
        c.settimeout(120)
        try:
            b = c.recv(100)
            what = "data" if b else "eof"
        except ConnectionResetError:
            what = "reset"
        except socket.timeout:
            what = "timeout"
        svc.add((what, time.monotonic()))

    svc = h.service(up, port, handler, "upstream")
    srv = h.start_server()
    cl = h.start_client(srv.control_port, [port], upstream=up)
    h.wait_data_port(srv, port)

    def ask():
        c = rt.connect("127.0.0.1", port, timeout=10)
        c.settimeout(10)
        got = rt.recv_exact(c, 3)
        return c, got

    c, got = ask()
    h.check(got == b"up\n", "a data-plane connection works at the start")
    c.close()
    h.check(svc.wait_results(1, 5), "its upstream connection ended with it")

    rt.log("   idling %d s..." % IDLE)
    time.sleep(IDLE)
    bad = re.compile(r"disconnected|closed|unresponsive|reconnecting|error")
    h.check(not [l for l in cl.lines() if bad.search(l)],
            "client log has no disconnect/close line after %d s idle" % IDLE)
    h.check(not [l for l in srv.lines() if bad.search(l)],
            "server log has no disconnect/close line after %d s idle" % IDLE)
    h.check(cl.alive() and cl.count(r'msg="connected to the server"') == 1,
            "the same client process, connected once")
    c, got = ask()
    h.check(got == b"up\n", "a data-plane connection after %d s idle works" % IDLE)
    h.check(srv.count(r'msg="client connected"') == 1, "without a reconnect")

    # Keep that connection open through the freeze: it must not be left hanging.
    n_before = len(svc.results)
    mark = cl.mark()
    t_stop = time.monotonic()
    srv.signal(signal.SIGSTOP)
    rt.log("   server stopped (SIGSTOP); waiting for the client to give up on it...")
    line = cl.wait_log(r'msg="peer unresponsive', DEAD + TOLERANCE + 10, after=mark)
    dt = time.monotonic() - t_stop
    h.check(line is not None, "client logged 'peer unresponsive' (%s)" % line)
    rt.log("   detected %.1f s after SIGSTOP: %s" % (dt, line))
    h.check(dt <= DEAD + TOLERANCE, "within %d s + %d s of the freeze (%.1f s)" %
            (DEAD, TOLERANCE, dt))
    m = re.search(r"silent_ms=(\d+)", line)
    h.check(m is None or DEAD * 1000 <= int(m.group(1)) <= (DEAD + TOLERANCE) * 1000,
            "declared dead after 30 s of silence, not before (%s)" %
            (m.group(0) if m else "no silent_ms"))
    # With several lanes, each lane is declared dead 30 s after it last heard anything, so
    # the lane carrying the stream may be found out after the first: wait up to the bound
    # counted from the freeze.
    h.check(svc.wait_results(n_before + 1, max(5.0, DEAD + TOLERANCE + 5 - dt)),
            "the upstream connection the dead tunnel carried was closed")
    what, t_end = svc.results[n_before]
    h.check(what in ("eof", "reset") and t_end - t_stop <= DEAD + TOLERANCE + 5,
            "closed (%s) %.1f s after the freeze, not left hanging" % (what, t_end - t_stop))
    c.close()

    mark = cl.mark()
    srv.signal(signal.SIGCONT)
    t_cont = time.monotonic()
    line = cl.wait_log(r'msg="connected to the server"', 25, after=mark)
    h.check(line is not None, "after SIGCONT the client reconnects (%.1f s)" %
            (time.monotonic() - t_cont))
    h.wait_data_port(srv, port)
    c, got = ask()
    h.check(got == b"up\n", "and data-plane connections work again")
    c.close()
    srv.kill()


rt.main("idle", body)
