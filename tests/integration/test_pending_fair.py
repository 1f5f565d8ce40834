#!/usr/bin/env python3
"""Idle connections from one address cannot lock others out of the control port (issue 17,
item 3): 600 connections from 127.0.0.2 that each send one byte and are reopened as soon
as they are closed, on the plain and on the TLS control port. Meanwhile /healthz from
127.0.0.1 answers every time, and a new tunnel client connects and carries a stream
byte-exact; the evictions are counted and the server's log says so a bounded number of
times. Then the client side: a client that cannot get in logs each failed attempt with its
reason (refused, closed by the server before the upgrade response, the upgrade's HTTP
status), one line per attempt."""
import errno
import os
import selectors
import socket
import ssl
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

ATTACKERS = 600
ATTACKER_ADDR = "127.0.0.2"
MIB = 1 << 20


class Attack:
    """ATTACKERS connections from ATTACKER_ADDR to 127.0.0.1:port, each sending one byte
    once connected and reopened when the server closes it, until stop()."""

    def __init__(self, port, first_byte):
        self.port, self.byte = port, first_byte
        self.made = self.closed = self.failed = 0  # made: the server accepted it
        self.live = 0
        self._stop = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _open(self, sel):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((ATTACKER_ADDR, 0))
            s.connect_ex(("127.0.0.1", self.port))
        except OSError:
            s.close()
            self.failed += 1
            return
        sel.register(s, selectors.EVENT_WRITE, "connecting")

    def _drop(self, sel, s):
        sel.unregister(s)
        s.close()

    def _run(self):
        sel = selectors.DefaultSelector()
        for _ in range(ATTACKERS):
            self._open(sel)
        while not self._stop.is_set():
            for key, _ in sel.select(timeout=0.2):
                s = key.fileobj
                if key.data == "connecting":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err == errno.ECONNRESET:
                        # Accepted, then closed by the server before we looked.
                        self._drop(sel, s)
                        self.made += 1
                        self.closed += 1
                        self._open(sel)
                        continue
                    if err:
                        self._drop(sel, s)
                        self.failed += 1
                        time.sleep(0.01)  # refused: do not spin
                        self._open(sel)
                        continue
                    try:
                        s.send(self.byte)
                    except OSError:
                        pass
                    sel.modify(s, selectors.EVENT_READ, "open")
                    self.made += 1
                    self.live += 1
                    continue
                try:
                    d = s.recv(4096)
                except OSError:
                    d = b""
                if not d:
                    self._drop(sel, s)
                    self.closed += 1
                    self.live -= 1
                    self._open(sel)
        for key in list(sel.get_map().values()):
            key.fileobj.close()
        sel.close()

    def stop(self):
        self._stop.set()
        self.t.join(timeout=10)


def healthz_tls(port, cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                b = s.recv(4096)
                if not b:
                    break
                data += b
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else None


def echo_exact(port, seed, n):
    """n bytes through the tunnel to the echo upstream and back; True when byte-exact."""
    s = rt.connect("127.0.0.1", port, timeout=30)
    s.settimeout(30)
    result = {}

    def reader():
        result["got"] = rt.recv_all(s)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    sent = rt.send_pattern(s, seed, n)
    s.shutdown(socket.SHUT_WR)
    t.join(timeout=60)
    s.close()
    return result.get("got") == (n, sent)


def under_attack(h, name, srv, ctl, port, first_byte, healthz, start_client):
    attack = Attack(ctl, first_byte)
    h.on_cleanup.append(attack.stop)
    deadline = time.monotonic() + 15
    while attack.made < 2 * ATTACKERS and time.monotonic() < deadline:
        time.sleep(0.1)
    h.check(attack.made >= 2 * ATTACKERS,
            "%s: the attack is on: %d connections from %s made (%d of them closed by the "
            "server)" % (name, attack.made, ATTACKER_ADDR, attack.closed))
    codes = []
    for _ in range(10):
        try:
            codes.append(healthz())
        except OSError as e:
            codes.append(repr(e))
    h.check(codes == [200] * 10, "%s: /healthz from 127.0.0.1 answers every time during the "
            "attack (%s)" % (name, codes))
    cli = start_client()
    h.check(cli.wait_log(r'msg="connected to the server"', 20),
            "%s: a new tunnel client connects during the attack" % name)
    h.check(echo_exact(port, 17, MIB + 3),
            "%s: the new client carries a stream byte-exact during the attack" % name)
    h.check(attack.closed > 0 and attack.live < ATTACKERS,
            "%s: the server closed the attacker's surplus connections (%d closed, %d open "
            "now)" % (name, attack.closed, attack.live))
    attack.stop()
    cli.kill()
    lines = srv.count(r'pending connections evicted')
    h.check(1 <= lines <= 10, "%s: the server says so, a bounded number of times (%d)" %
            (name, lines))


def attack_plain(h, up, port):
    ctl = rt.free_port("127.0.0.1")
    srv = h.start_server(control_port=ctl, name="server-plain")
    under_attack(
        h, "ws://", srv, ctl, port, b"G",
        lambda: rt.http_get("127.0.0.1", ctl, "/healthz", timeout=10)[0],
        lambda: h.start_client(ctl, [port], upstream=up, name="client-plain", wait=False))
    code, _, m = rt.scrape(ctl, "/metrics", h.token)
    ev = rt.metric(m.decode(), "ringlet_control_evicted_total") if code == 200 else None
    h.check(ev is not None and ev > 0, "ws://: the evictions are counted (%s)" % ev)
    srv.stop()


def attack_tls(h, up, port):
    ctl = rt.free_port("127.0.0.1")
    cert_dir = os.path.join(h.dir, "certs")
    srv = h.start_server(control_port=ctl, name="server-tls",
                         extra=["--auto-tls=true", "--auto-tls-san", "127.0.0.1",
                                "--auto-tls-path", cert_dir])
    srv.wait_log(r'tls=auto', timeout=5) or h.fail("server-tls did not start with auto-TLS")
    ca = os.path.join(cert_dir, "ca.crt")

    def client():
        return h.spawn("client-tls", [h.bin, "client", "--url", "wss://127.0.0.1:%d" % ctl,
                                      "--token-file", h.token_file, "--upstream", up,
                                      "--ports", str(port), "--ca-file", ca])

    # One byte of a TLS record header (a handshake record): the handshake stays pending.
    under_attack(h, "wss://", srv, ctl, port, b"\x16", lambda: healthz_tls(ctl, ca), client)
    srv.stop()


def closer(c, svc):
    c.close()


def answer_503(c, svc):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        b = c.recv(4096)
        if not b:
            break
        data += b
    c.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
              b"Connection: close\r\n\r\n")


def client_logs(h, up, port):
    # Nothing listens: each attempt is refused, and each says so.
    dead = rt.free_port("127.0.0.1")
    mport = rt.free_port("127.0.0.1")
    cli = h.start_client(dead, [port], upstream=up, name="client-refused", wait=False,
                         extra=["--metrics-addr", "127.0.0.1:%d" % mport])
    pat = r'level=(warn|error) msg="cannot connect to the server".*Connection refused'
    h.check(cli.wait_log(pat, 15, count=4),
            "a refused client logs its failed attempts with the reason")
    r1 = rt.metric(rt.scrape(mport, "/metrics", h.token)[2].decode(), "ringlet_reconnects_total")
    lines = cli.count(r'level=(warn|error) msg=')
    r2 = rt.metric(rt.scrape(mport, "/metrics", h.token)[2].decode(), "ringlet_reconnects_total")
    h.check(r1 is not None and r2 is not None and r1 <= lines <= r2 + 1,
            "one line per attempt, no more (%d lines, attempts %s..%s)" %
            (lines, r1 + 1 if r1 is not None else r1, r2 + 1 if r2 is not None else r2))
    cli.kill()
    # A server that closes the connection before answering the upgrade.
    sp = rt.free_port("127.0.0.1")
    h.service("127.0.0.1", sp, closer, "closer")
    cli = h.start_client(sp, [port], upstream=up, name="client-closed", wait=False)
    h.check(cli.wait_log(r'level=(warn|error) msg="connection to the server failed".*'
                         r'closed by the server before the upgrade response', 15, count=2),
            "a client whose connection is closed before the upgrade response says so, "
            "each attempt")
    cli.kill()
    # A server that answers the upgrade with 503.
    sp = rt.free_port("127.0.0.1")
    h.service("127.0.0.1", sp, answer_503, "503")
    cli = h.start_client(sp, [port], upstream=up, name="client-503", wait=False)
    h.check(cli.wait_log(r'level=(warn|error) msg="the server did not accept the WebSocket '
                         r'upgrade".*HTTP 503', 15, count=2),
            "a client whose upgrade is answered 503 says so with the status, each attempt")
    cli.kill()


def body(h):
    up = "127.0.0.2"
    port = rt.free_port_on("127.0.0.1", up)
    h.service(up, port, rt.echo_handler, "echo")
    attack_plain(h, up, port)
    attack_tls(h, up, port)
    client_logs(h, up, port)


rt.main("pending_fair", body)
