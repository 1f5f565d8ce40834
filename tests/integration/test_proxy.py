#!/usr/bin/env python3
"""Data-plane policy: --proxy-protocol v1/v2 (the upstream receives a PROXY header with the
data-plane client's address), --lb-proxy-protocol (a load balancer's PROXY header is read
and its source address is the one passed on and checked), and --allow-ips."""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def header_recorder(c, svc):
    """Record everything the upstream receives until EOF, then echo 'ok'."""
    data = b""
    c.settimeout(10)
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    c.sendall(b"ok")
    c.close()
    svc.add(("got", data, None))


def roundtrip(h, port, payload, src=None, expect_ok=True):
    s = socket.socket()
    if src:
        s.bind((src, 0))
    s.settimeout(10)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:  # reset before connect() returned
        s.close()
        return None, b""
    local = s.getsockname()
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        reply = s.recv(16)
    except OSError:  # reset (ECONNRESET, EPIPE, or ENOTCONN when it came first)
        reply = b""
    s.close()
    return local, reply


def main():
    h = rt.Harness("proxy")
    up = "127.0.0.2"

    # --proxy-protocol v1 and v2: two servers, one client each.
    for ver in ("v1", "v2"):
        port = rt.free_port_on("127.0.0.1", up)
        svc = h.service(up, port, header_recorder, "rec-" + ver)
        srv = h.start_server(name="server-" + ver, extra=["--proxy-protocol", ver])
        h.start_client(srv.control_port, [port], upstream=up, name="client-" + ver)
        h.wait_data_port(srv, port)
        local, reply = roundtrip(h, port, b"hello")
        h.check(reply == b"ok", "%s: the stream works end to end" % ver)
        svc.wait_results(1, 10)
        got = svc.results[0][1]
        if ver == "v1":
            want = ("PROXY TCP4 %s 127.0.0.1 %d %d\r\n" % (local[0], local[1], port)).encode()
            h.check(got == want + b"hello", "v1: the upstream got %r then the data" % want)
        else:
            h.check(got.startswith(V2_SIG) and got[12] == 0x21 and got[13] == 0x11,
                    "v2: the upstream got a v2 PROXY TCP4 header")
            ln = struct.unpack("!H", got[14:16])[0]
            src, dst, sp, dp = struct.unpack("!4s4sHH", got[16:28])
            h.check(ln == 12 and socket.inet_ntoa(src) == local[0] and sp == local[1] and
                    socket.inet_ntoa(dst) == "127.0.0.1" and dp == port,
                    "v2: addresses and ports are the data-plane client's (%s:%d)" % local)
            h.check(got[16 + ln:] == b"hello", "v2: the data follows the header")

    # --lb-proxy-protocol v1 with --proxy-protocol v2 and --allow-ips: the address a load
    # balancer reports is the one checked and passed on.
    port = rt.free_port_on("127.0.0.1", up)
    svc = h.service(up, port, header_recorder, "rec-lb")
    srv = h.start_server(name="server-lb", extra=["--lb-proxy-protocol", "v1",
                                                  "--proxy-protocol", "v2",
                                                  "--allow-ips", "198.51.100.0/24"])
    h.start_client(srv.control_port, [port], upstream=up, name="client-lb")
    h.wait_data_port(srv, port)
    lbhdr = b"PROXY TCP4 198.51.100.7 127.0.0.1 40000 %d\r\n" % port
    _, reply = roundtrip(h, port, lbhdr + b"payload")
    h.check(reply == b"ok", "lb-proxy: a connection with a PROXY header from an allowed "
            "address is carried")
    svc.wait_results(1, 10)
    got = svc.results[0][1]
    src, _, sp, _ = struct.unpack("!4s4sHH", got[16:28])
    h.check(got.startswith(V2_SIG) and socket.inet_ntoa(src) == "198.51.100.7" and sp == 40000,
            "lb-proxy: the upstream sees the load balancer's client address 198.51.100.7:40000")
    h.check(got.endswith(b"payload"), "lb-proxy: bytes after the header arrive intact")
    _, reply = roundtrip(h, port, b"PROXY TCP4 192.0.2.1 127.0.0.1 1 %d\r\nx" % port)
    h.check(reply == b"", "lb-proxy: a client address outside --allow-ips is refused")
    _, reply = roundtrip(h, port, b"GET / HTTP/1.1\r\n\r\n")
    h.check(reply == b"", "lb-proxy: a connection without a PROXY header is closed")
    h.check(srv.wait_log(r'bad PROXY header', timeout=5), "lb-proxy: the bad header is logged")

    # --allow-ips without a load balancer: the peer address decides.
    port = rt.free_port_on("127.0.0.1", up)
    svc = h.service(up, port, header_recorder, "rec-allow")
    srv = h.start_server(name="server-allow", extra=["--allow-ips", "127.0.0.3"])
    h.start_client(srv.control_port, [port], upstream=up, name="client-allow")
    h.wait_data_port(srv, port)
    _, reply = roundtrip(h, port, b"x", src="127.0.0.1")
    h.check(reply == b"", "allow-ips: a connection from 127.0.0.1 is refused")
    _, reply = roundtrip(h, port, b"x", src="127.0.0.3")
    h.check(reply == b"ok", "allow-ips: a connection from 127.0.0.3 is carried")
    code, _, body = rt.http_get("127.0.0.1", srv.control_port, "/metrics",
                                headers={"Authorization": "Bearer " + h.token})
    h.check(b"ringlet_dataplane_denied_total 1" in body, "the refusal is counted in /metrics")
    # --local: the client listens, the server dials the target (--client-forwarding).
    target = "127.0.0.4"
    rport = rt.free_port_on(target)
    h.service(target, rport, rt.echo_handler, "forward-target")
    for allowed in (True, False):
        lport = rt.free_port("127.0.0.1")
        tag = "allowed" if allowed else "refused"
        srv = h.start_server(name="server-fwd-" + tag,
                             extra=["--client-forwarding"] if allowed else [])
        dport = rt.free_port_on("127.0.0.1", up)
        cli = h.start_client(srv.control_port, [dport], upstream=up, name="client-fwd-" + tag,
                             extra=["--local", "%d:%s:%d" % (lport, target, rport)])
        payload = os.urandom(1 << 20)
        s = socket.socket()
        s.settimeout(10)
        try:
            s.connect(("127.0.0.1", lport))
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            back = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                back += b
        except OSError:
            back = None
        s.close()
        if allowed:
            h.check(back == payload, "--local: 1 MiB through the server to %s:%d and back, "
                    "byte-exact" % (target, rport))
        else:
            h.check(not back, "--local without --client-forwarding on the server: refused")
            h.check(cli.wait_log(r'--local connection refused.*client-forwarding', timeout=5),
                    "--local refusal is logged with the reason")
    rt.log("PASS (%d checks)" % h.checks)


if __name__ == "__main__":
    main()
