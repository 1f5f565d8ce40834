#!/usr/bin/env python3
"""A client can never expose a port the server itself listens on, nor share a port with
another process: offered the server's control port, or a port another process listens on
with SO_REUSEPORT, the server answers IN_USE (the client logs why) and every connection
meant for the control port or for that process still reaches it; the client's other port
opens as usual."""
import os
import socket
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt


def body(h):
    up = "127.0.0.2"
    ok_port = rt.free_port_on("127.0.0.1", up)
    h.service(up, ok_port, rt.name_handler("upstream"), "upstream")
    # Another process of the same user listening with SO_REUSEPORT.
    other_port = rt.free_port_on("127.0.0.1", up)
    other = socket.socket()
    other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    other.bind(("127.0.0.1", other_port))
    other.listen(64)
    accepted = []

    def serve():
        while True:
            try:
                c, _ = other.accept()
            except OSError:
                return
            c.sendall(b"other\n")
            accepted.append(1)
            c.close()
    threading.Thread(target=serve, daemon=True).start()

    srv = h.start_server()
    cli = h.start_client(srv.control_port, [srv.control_port, other_port, ok_port], upstream=up)
    h.check(cli.wait_log(r'could not open a port.*port=%d reason=in-use' % srv.control_port, 5),
            "offered the server's own control port: refused in-use, and the client says so")
    h.check(cli.wait_log(r'could not open a port.*port=%d reason=in-use' % other_port, 5),
            "offered a port another process listens on (SO_REUSEPORT): refused in-use")
    h.wait_data_port(srv, ok_port)
    c = rt.connect("127.0.0.1", ok_port)
    h.check(c.recv(64) == b"upstream\n", "the client's free port opens and carries")
    c.close()

    codes = [rt.http_get("127.0.0.1", srv.control_port, "/healthz")[0] for _ in range(60)]
    h.check(codes.count(200) == 60, "all 60 /healthz requests reach the control port (%s)" %
            {x: codes.count(x) for x in set(codes)})
    got = []
    for _ in range(40):
        s = rt.connect("127.0.0.1", other_port)
        s.settimeout(5)
        try:
            got.append(s.recv(64))
        except OSError as e:
            got.append(repr(e).encode())
        s.close()
    h.check(got.count(b"other\n") == 40, "all 40 connections reach the other process (%d)" %
            got.count(b"other\n"))
    other.close()


rt.main("port_takeover", body)
