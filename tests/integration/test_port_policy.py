#!/usr/bin/env python3
"""The server's port policy (--allow-ports): without it a client may open any port from
1024 up and none below; with it, exactly the listed ports and ranges. A refused port is
answered NOT_ALLOWED: the server never listens on it, both ends log why, and the client's
allowed ports open and carry as usual."""
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt


def low_free_port(*addrs):
    """A port below 1024 free on every one of addrs (binding it needs root)."""
    for p in range(1023, 899, -1):
        if all(rt.port_free(a, p) for a in addrs):
            return p
    return None


def body(h):
    if os.geteuid() != 0:
        rt.skip("binding a port below 1024 needs root")
    up = "127.0.0.2"
    low = low_free_port("127.0.0.1", up)
    if low is None:
        rt.skip("no port below 1024 free on 127.0.0.1 and 127.0.0.2")
    ok = rt.free_port_on("127.0.0.1", up)
    out = rt.free_port_on("127.0.0.1", up)
    for p in (low, ok, out):
        h.service(up, p, rt.name_handler("upstream-%d" % p), "upstream-%d" % p)

    # Default policy: every port from 1024 up, none below.
    srv = h.start_server(name="server-default")
    cli = h.start_client(srv.control_port, [low, ok], upstream=up, name="client-default")
    h.check(cli.wait_log(r'port policy does not allow it.*port=%d reason=not-allowed' % low, 5),
            "default policy: port %d (below 1024) refused, and the client says why" % low)
    h.check(srv.wait_log(r'--allow-ports does not allow: refused.*port=%d ' % low, 5),
            "the server logs the refusal with the port")
    h.wait_data_port(srv, ok)
    c = rt.connect("127.0.0.1", ok)
    h.check(c.recv(64) == b"upstream-%d\n" % ok, "the allowed port opens and carries")
    c.close()
    h.check(rt.port_free("127.0.0.1", low),
            "nothing listens on the refused port %d" % low)
    cli.stop()
    srv.stop()

    # An explicit policy: the low port and a range around ok, not `out`.
    srv = h.start_server(name="server-policy",
                         extra=["--allow-ports", "%d,%d-%d" % (low, ok - 1, ok + 1)])
    cli = h.start_client(srv.control_port, [low, ok, out], upstream=up, name="client-policy")
    h.check(cli.wait_log(r'port policy does not allow it.*port=%d reason=not-allowed' % out, 5),
            "--allow-ports: port %d outside the list refused" % out)
    for p in (low, ok):
        h.wait_data_port(srv, p)
        c = rt.connect("127.0.0.1", p)
        h.check(c.recv(64) == b"upstream-%d\n" % p, "port %d named by --allow-ports carries" % p)
        c.close()
    h.check(rt.port_free("127.0.0.1", out), "nothing listens on the refused port %d" % out)
    codes = [rt.http_get("127.0.0.1", srv.control_port, "/healthz")[0] for _ in range(5)]
    h.check(codes == [200] * 5, "the control port still answers (%s)" % codes)


rt.main("port_policy", body)
