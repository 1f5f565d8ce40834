"""Abusive control-port clients for the fault matrix, from a source address of their own
(127.0.0.5) so per-source limits can tell them from the tunnel clients (127.0.0.1):
a slowloris that keeps N connections each trickling an unfinished request (or TLS
handshake), and a wrong-token flood. Every loop is bounded by a stop event and a deadline."""
import os
import select
import socket
import ssl
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

rt = fl.rt
SRC = "127.0.0.5"
PLAIN_START = b"GET /connect HTTP/1.1\r\nHost: x\r\n"
TLS_START = b"\x16\x03\x01\x02\x00"  # a TLS record header announcing a 512-byte ClientHello


def src_connect(port, timeout=2.0):
    s = socket.socket()
    s.bind((SRC, 0))
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return s


class Slowloris(threading.Thread):
    """Keeps n connections to port open, each having sent `start` and then one more byte
    every `trickle` s; a connection the server closes is opened again at once. opened
    counts connections made, closed_by_server those the server ended."""

    def __init__(self, port, n, start, trickle=1.0, limit_s=120):
        super().__init__(daemon=True)
        self.port, self.n, self.start_bytes, self.trickle = port, n, start, trickle
        self.stop = threading.Event()
        self.deadline = time.monotonic() + limit_s
        self.opened = self.closed_by_server = 0
        self.socks = []

    def _open(self):
        try:
            s = src_connect(self.port)
            s.sendall(self.start_bytes)
            s.setblocking(False)
            self.opened += 1
            return [s, time.monotonic()]
        except OSError:
            return None

    def run(self):
        self.socks = [None] * self.n
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            for i in range(self.n):
                if self.stop.is_set():
                    break
                if self.socks[i] is None:
                    self.socks[i] = self._open()
            live = [x[0] for x in self.socks if x]
            try:
                readable, _, _ = select.select(live, [], [], 0.2) if live else ([], [], [])
            except (OSError, ValueError):
                readable = []
            now = time.monotonic()
            for i, x in enumerate(self.socks):
                if not x:
                    continue
                dead = x[0] in readable
                if not dead and now - x[1] >= self.trickle:
                    try:
                        x[0].send(b"X")
                        x[1] = now
                    except OSError:
                        dead = True
                if dead:
                    self.closed_by_server += 1
                    x[0].close()
                    self.socks[i] = None
        for x in self.socks:
            if x:
                x[0].close()

    def halt(self):
        self.stop.set()
        self.join(30)


class TokenFlood(threading.Thread):
    """`workers` threads sending upgrade requests with a wrong token, n in all; counts the
    answers by status (None: closed without one)."""

    def __init__(self, port, n, workers=8, limit_s=120, tls=False):
        super().__init__(daemon=True)
        self.port, self.n, self.workers, self.tls = port, n, workers, tls
        self.deadline = time.monotonic() + limit_s
        self.lock = threading.Lock()
        self.statuses = {}
        self.sent = 0

    def one(self):
        req = ("GET /connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer wrong-token\r\n\r\n")
        st = None
        try:
            s = src_connect(self.port, timeout=5)
            if self.tls:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                s = ctx.wrap_socket(s)
            s.sendall(req.encode())
            data = b""
            while b"\r\n" not in data:
                b = s.recv(4096)
                if not b:
                    break
                data += b
            s.close()
            if data.startswith(b"HTTP/1.1 "):
                st = int(data[9:12])
        except (OSError, ValueError):
            pass
        with self.lock:
            self.statuses[st] = self.statuses.get(st, 0) + 1

    def worker(self):
        while time.monotonic() < self.deadline:
            with self.lock:
                if self.sent >= self.n:
                    return
                self.sent += 1
            self.one()

    def run(self):
        ts = [threading.Thread(target=self.worker, daemon=True) for _ in range(self.workers)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(max(1, self.deadline - time.monotonic() + 5))


def healthz(port, tls=False, timeout=2.0):
    """GET /healthz from 127.0.0.1: True when answered 200."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = s.recv(4096)
        s.close()
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def legit_client(c, t, name, timeout):
    """Start one more client of the same tunnel's ports; returns seconds until it logged
    'connected' (None: not within timeout). It is stopped again (its lanes would count as
    the server's descriptors) and t.client stays the first one."""
    first = t.client
    t0 = time.monotonic()
    cl = t.start_client(name=name, wait=False)
    t.client = first
    ok = cl.wait_log(r'msg="connected to the server"', timeout)
    dt = time.monotonic() - t0
    cl.stop()
    return dt if ok else None
