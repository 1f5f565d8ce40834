#!/usr/bin/env python3
"""Name resolution off the loop (issue 17 item 4), in a network namespace this test makes:
server, clients, upstreams and a stub DNS server all on its loopback. The clients run under
`ip netns exec NS`, which bind-mounts /etc/netns/NS/hosts and resolv.conf over /etc's, so
writing that hosts file (in place) changes what they resolve; resolv.conf points at the stub
DNS server on 127.0.0.1:53 (in the namespace), which answers NXDOMAIN, except for one name
whose queries it holds until the test lets them go.

1. An upstream name that does not resolve at first: streams are refused at once; once the
   name is in the hosts file, new streams succeed byte-exact within 10 s (a refused stream
   asks for a retry, at most one a second: RESOLVE_RETRY_MIN_MS) without restarting the
   client, and the client logs "upstream resolves again" with the name and address once.
2. A slow resolution does not block the shard: while the upstream's first lookup is held
   by the stub DNS server, the client (one shard) connects, serves /metrics and carries a
   --local forward byte-exact; a stream that arrives meanwhile waits, and is dialled
   byte-exact when the answer comes."""
import ctypes
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

NAME = "upstream.ringlet-test"
SLOW = "slow.ringlet-test"
UP = "127.0.0.2"  # the upstreams (the data plane has 127.0.0.1)
CLONE_NEWNET = 0x40000000
MIB = 1 << 20


class StubDNS:
    """A UDP DNS server on 127.0.0.1:53: NXDOMAIN for every name but `held`, whose
    queries wait until release(), then get A = UP (AAAA: no answer)."""

    def __init__(self, held):
        self.held, self.released = held, threading.Event()
        self.lock = threading.Lock()
        self.waiting, self.queries, self.answered = [], [], 0
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 53))
        self.s.settimeout(0.2)
        self.stop = threading.Event()
        threading.Thread(target=self._loop, daemon=True).start()

    @staticmethod
    def _qname(q):
        labels, i = [], 12
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
            i += 1 + q[i]
        qtype = struct.unpack("!H", q[i + 1:i + 3])[0] if i + 3 <= len(q) else 0
        return ".".join(labels).lower(), i + 5, qtype

    def _answer(self, q, peer):
        name, qend, qtype = self._qname(q)
        if name != self.held:
            r = q[:2] + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + q[12:qend]
        elif qtype == 1:
            r = (q[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + q[12:qend] +
                 struct.pack("!HHHIH", 0xC00C, 1, 1, 5, 4) + socket.inet_aton(UP))
            with self.lock:
                self.answered += 1
        else:
            r = q[:2] + struct.pack("!HHHHH", 0x8180, 1, 0, 0, 0) + q[12:qend]
        self.s.sendto(r, peer)

    def _loop(self):
        while not self.stop.is_set():
            if self.released.is_set():
                with self.lock:
                    w, self.waiting = self.waiting, []
                for q, peer in w:
                    self._answer(q, peer)
            try:
                q, peer = self.s.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(q) < 17:
                continue
            name = self._qname(q)[0]
            with self.lock:
                self.queries.append(name)
            if name == self.held and not self.released.is_set():
                with self.lock:
                    self.waiting.append((q, peer))
            else:
                self._answer(q, peer)

    def asked(self, name):
        with self.lock:
            return name in self.queries

    def close(self):
        self.stop.set()
        self.s.close()


def enter_netns(h, ns):
    """Make the namespace, with lo up, /etc/netns/NS/{hosts,resolv.conf}, and move this
    process (before it starts any thread) into it. Skips when it cannot."""
    if not shutil.which("ip"):
        rt.skip("no ip(8): cannot make a network namespace")
    r = subprocess.run(["ip", "netns", "add", ns], stderr=subprocess.PIPE)
    if r.returncode != 0:
        rt.skip("cannot create a network namespace: %s" % r.stderr.decode().strip())
    etc = "/etc/netns/" + ns
    h.on_cleanup.append(lambda: subprocess.run(["ip", "netns", "del", ns],
                                               stderr=subprocess.DEVNULL))
    h.on_cleanup.append(lambda: shutil.rmtree(etc, ignore_errors=True))
    os.makedirs(etc, exist_ok=True)
    with open(etc + "/hosts", "w") as f:
        f.write("127.0.0.1 localhost\n")
    with open(etc + "/resolv.conf", "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:20 attempts:1\n")
    subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/run/netns/" + ns, os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        rt.skip("setns: %s" % os.strerror(ctypes.get_errno()))
    os.close(fd)
    return etc + "/hosts"


def echo_once(port, n, seed, addr="127.0.0.1", timeout=10):
    """n bytes through addr:port to an echo; True when they come back byte-exact."""
    try:
        s = rt.connect(addr, port, timeout=timeout)
    except OSError:  # refused: reset at once
        return False
    try:
        sent = rt.send_pattern(s, seed, n)
        s.shutdown(socket.SHUT_WR)
        got = rt.recv_all(s)
    except OSError:  # refused: reset
        return False
    finally:
        s.close()
    return got == (n, sent)


def refused(port):
    """A stream through the data plane ends without a byte (EOF or reset) within 10 s."""
    try:
        s = rt.connect("127.0.0.1", port)
    except ConnectionResetError:
        return True
    try:
        s.sendall(b"hello?")
        return s.recv(100) == b""
    except ConnectionResetError:
        return True
    except (socket.timeout, OSError):
        return False
    finally:
        s.close()


def client_argv(h, ns, ctl, port, upstream, extra=()):
    return ["ip", "netns", "exec", ns, h.bin, "client", "--url", "ws://127.0.0.1:%d" % ctl,
            "--token-file", h.token_file, "--upstream", upstream, "--ports", str(port),
            "--auto-tls=false"] + list(extra)


def recovers(h, ns, hosts, srv):
    port = rt.free_port_on("127.0.0.1", UP)
    h.service(UP, port, rt.echo_handler, "echo")
    cl = h.spawn("client", client_argv(h, ns, srv.control_port, port, NAME))
    h.check(cl.wait_log(r'msg="connected to the server"', 15) is not None,
            "the client connects while its upstream does not resolve")
    h.check(cl.wait_log(r'msg="cannot resolve the upstream: streams are refused until it '
                        r'resolves" name=%s' % NAME, 10) is not None,
            "the client logs that the upstream does not resolve")
    h.wait_data_port(srv, port)
    h.check(refused(port) and refused(port), "streams are refused while it does not resolve")
    with open(hosts, "a") as f:  # in place: the bind mount shows this file
        f.write("%s %s\n" % (UP, NAME))
    t0 = time.monotonic()
    ok = False
    while not ok and time.monotonic() - t0 < 10:
        ok = echo_once(port, 64 * 1024, 7)
        if not ok:
            time.sleep(0.2)
    dt = time.monotonic() - t0
    rt.log("   streams succeed %.2f s after the name became resolvable" % dt)
    h.check(ok, "within 10 s of the name becoming resolvable, a stream gets through")
    h.check(all(echo_once(port, 3 * MIB + 5, 8 + i) for i in range(3)),
            "three more streams echo 3 MiB byte-exact")
    line = cl.wait_log(r'msg="upstream resolves again"', 5)
    h.check(line is not None and "name=%s" % NAME in line and "addrs=%s" % UP in line,
            "the client logs 'upstream resolves again' with the name and address (%s)" % line)
    h.check(len([l for l in cl.lines() if "resolves again" in l]) == 1,
            "the recovery is logged once")
    h.check(cl.alive(), "the client was never restarted")
    cl.stop()


def slow_lookup(h, ns, dns, srv):
    port = rt.free_port_on("127.0.0.1", UP)
    fwd_port, lport, mport = (rt.free_port_on("127.0.0.1", UP), rt.free_port(),
                              rt.free_port())
    h.service(UP, port, rt.echo_handler, "echo2")
    h.service(UP, fwd_port, rt.echo_handler, "fwd-echo")
    cl = h.spawn("slow-client", client_argv(
        h, ns, srv.control_port, port, SLOW,
        ["--shards", "1", "--metrics-addr", "127.0.0.1:%d" % mport,
         "--local", "%d:%s:%d" % (lport, UP, fwd_port)]))
    deadline = time.monotonic() + 10
    while not dns.asked(SLOW) and time.monotonic() < deadline:
        time.sleep(0.05)
    h.check(dns.asked(SLOW), "the client asked the stub DNS server for %s (held)" % SLOW)
    h.check(cl.wait_log(r'msg="connected to the server"', 15) is not None,
            "the client connects while its upstream's lookup is pending")
    h.wait_data_port(srv, port)
    waiting = rt.connect("127.0.0.1", port, timeout=30)
    sent = rt.send_pattern(waiting, 21, MIB)
    waiting.shutdown(socket.SHUT_WR)
    code, _, _ = rt.http_get("127.0.0.1", mport, "/metrics")
    h.check(code in (200, 401), "the shard answers /metrics meanwhile (HTTP %s)" % code)
    h.check(rt.wait_port("127.0.0.1", lport, 10) and echo_once(lport, 2 * MIB, 22),
            "a --local forward through the same shard echoes 2 MiB byte-exact meanwhile")
    with dns.lock:
        pending = dns.answered == 0 and len(dns.waiting) > 0
    h.check(pending, "all that while the lookup was still unanswered")
    dns.released.set()
    got = rt.recv_all(waiting)
    waiting.close()
    h.check(got == (MIB, sent), "the stream that waited is dialled when the answer comes, "
            "and echoes 1 MiB byte-exact")
    cl.stop()


def body(h):
    ns = "rlres%d" % os.getpid()
    hosts = enter_netns(h, ns)
    dns = StubDNS(SLOW)
    h.on_cleanup.append(dns.close)
    srv = h.start_server(extra=["--client-forwarding"])
    recovers(h, ns, hosts, srv)
    slow_lookup(h, ns, dns, srv)


if __name__ == "__main__":
    rt.main("resolve", body)
