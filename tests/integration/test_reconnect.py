#!/usr/bin/env python3
"""Reconnection and load balancing.

1. kill -9 the server, restart it on the same ports: the client reconnects within 5 s of the
   server's return and new data-plane connections flow.
2. kill -9 the client: the server closes the data-plane connections it carried within 5 s;
   a second client offering the same port takes the new connections.
3. Two clients for the same port (upstreams on different 127.x addresses, each answering its
   own name): 10 new connections alternate between them, 5 each.
4. One client leaves (SIGTERM): every new connection goes to the other.
5. None left: the port's connections are closed at once, with no data.
"""
import datetime
import os
import re
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

A, B, C = "127.0.0.2", "127.0.0.3", "127.0.0.4"


def log_time(line):
    """The wall-clock time (seconds since the epoch) of a logfmt line's time= field."""
    m = re.search(r"time=(\S+)", line or "")
    if not m:
        return None
    try:
        ts = m.group(1).replace("Z", "+00:00")
        return datetime.datetime.fromisoformat(ts).timestamp()
    except ValueError:
        return None


def ask(port, timeout=10):
    """Open a data-plane connection and read the upstream's name line ('' if the
    connection closed without data, 'reset' if it was reset)."""
    try:
        c = rt.connect("127.0.0.1", port, timeout=timeout)
    except ConnectionResetError:
        return "reset"
    try:
        c.settimeout(timeout)
        data = b""
        while not data.endswith(b"\n"):
            b = c.recv(100)
            if not b:
                break
            data += b
        return data.decode().strip()
    except ConnectionResetError:
        return "reset"
    finally:
        c.close()


def closed_without_data(port, timeout=5):
    """Connect to port; returns (outcome, seconds): 'refused', 'reset', 'eof', 'data' or
    'timeout'."""
    t0 = time.monotonic()
    try:
        c = rt.connect("127.0.0.1", port, timeout=timeout)
    except ConnectionRefusedError:
        return "refused", time.monotonic() - t0
    except ConnectionResetError:  # the reset came before connect() returned
        return "reset", time.monotonic() - t0
    c.settimeout(timeout)
    try:
        b = c.recv(100)
        out = "data" if b else "eof"
    except ConnectionResetError:
        out = "reset"
    except socket.timeout:
        out = "timeout"
    finally:
        c.close()
    return out, time.monotonic() - t0


def body(h):
    port = rt.free_port_on("127.0.0.1", A, B, C)
    ctl = rt.free_port("127.0.0.1")
    for addr, name in ((A, "A"), (B, "B"), (C, "C")):
        h.service(addr, port, rt.name_handler(name), name)

    srv = h.start_server(control_port=ctl, name="server1")
    ca = h.start_client(ctl, [port], upstream=A, name="clientA")
    h.wait_data_port(srv, port)
    h.check(ask(port) == "A", "a data-plane connection reaches upstream A")

    # 1. server kill -9 and restart on the same ports.
    mark = ca.mark()
    srv.kill()
    h.check(ca.wait_log(r'msg="disconnected from the server: reconnecting"', 5, after=mark),
            "client noticed the server's death within 5 s")
    time.sleep(6)  # let the client's backoff grow to its cap
    t_start = time.time()
    srv2 = h.start_server(control_port=ctl, name="server2")
    line = srv2.wait_log(r'msg="client connected"', 15)
    h.check(line is not None, "the restarted server logged 'client connected'")
    lt = log_time(line)
    dt = (lt if lt else time.time()) - t_start
    rt.log("   client back %.2f s after the server's restart" % dt)
    h.check(dt < 5, "client reconnected within 5 s of the server's return (%.2f s)" % dt)
    h.wait_data_port(srv2, port)
    h.check(ca.wait_log(r'msg="connected to the server"', 5, count=2),
            "client logged 'connected to the server' again")
    h.check(ask(port) == "A", "new data-plane connections flow after the restart")

    # 2. client kill -9: open data-plane connections close promptly.
    conns = []
    for _ in range(3):
        c = rt.connect("127.0.0.1", port)
        c.settimeout(10)
        h.check(rt.recv_exact(c, 2) == b"A\n", "an open data-plane connection through A")
        conns.append(c)
    mark = srv2.mark()
    t0 = time.monotonic()
    ca.kill()
    outs = []
    for c in conns:
        c.settimeout(max(0.1, t0 + 10 - time.monotonic()))
        try:
            b = c.recv(100)
            outs.append("eof" if not b else "data %r" % b)
        except ConnectionResetError:
            outs.append("reset")
        except socket.timeout:
            outs.append("timeout")
        c.close()
    dt = time.monotonic() - t0
    rt.log("   after kill -9 of the client the open connections saw %s in %.2f s" % (outs, dt))
    h.check(all(o in ("eof", "reset") for o in outs) and dt < 5,
            "the server closed the dead client's data-plane connections within 5 s")
    h.check(srv2.wait_log(r'msg="tunnel closed', 5, after=mark), "server logged the tunnel's "
            "end")
    cb = h.start_client(ctl, [port], upstream=B, name="clientB")
    got = [ask(port) for _ in range(4)]
    h.check(got == ["B"] * 4, "a second client for the same port takes the new connections "
            "(%s)" % got)

    # 3. two clients: round-robin.
    cc = h.start_client(ctl, [port], upstream=C, name="clientC")
    h.check(srv2.wait_log(r'msg="client connected"', 10, count=3),
            "server has the third client connected")
    got = [ask(port) for _ in range(10)]
    rt.log("   10 connections went to %s" % "".join(got))
    h.check(got.count("B") == 5 and got.count("C") == 5,
            "10 connections split 5/5 between two clients (%s)" % got)
    h.check(all(got[i] != got[i + 1] for i in range(9)),
            "connections alternate between the clients (round-robin)")

    # 4. one leaves.
    mark = srv2.mark()
    cc.stop(timeout=15)
    h.check(not cc.alive(), "client C stopped on SIGTERM (exit %s)" % cc.p.returncode)
    got = [ask(port) for _ in range(6)]
    h.check(got == ["B"] * 6, "after client C left, all new connections go to B (%s)" % got)

    # 5. none left.
    mark = srv2.mark()
    cb.kill()
    h.check(srv2.wait_log(r'msg="tunnel closed', 5, after=mark),
            "server noticed client B's death")
    outs = [closed_without_data(port) for _ in range(3)]
    rt.log("   with no client, connections to the port: %s" % outs)
    h.check(all(o in ("reset", "eof", "refused") and t < 2 for o, t in outs),
            "with no client left, connections are closed at once with no data")
    h.check(all(o != "refused" for o, _ in outs),
            "the data-plane listener stays open (connect succeeds, then is closed)")
    h.check(srv2.alive(), "server still running")


rt.main("reconnect", body)
