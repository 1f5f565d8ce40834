"""The fault matrix's library (python3, standard library only), on top of
tests/integration/ringlet_test.py (imported, not copied).

A case is a script tests/faults/case_*.py that builds a Case (a ringlet_test.Harness), starts
a server, a client and upstream services, and for each fault it injects:

- snapshots each end's descriptors (/proc/PID/fd) and resident memory (VmRSS) before the
  fault and checks, once it has recovered, that neither grew beyond a stated small bound
  (Case.no_growth);
- measures the recovery time, from the end of the fault to the first byte-exact transfer
  through the tunnel, and checks it against the documented bound (Case.recovery);
- checks every stream that completed byte-exact, and that a stream the fault cut short
  delivered an exact prefix of what was sent, never other bytes (Transfer);
- prints one machine-readable line per measured figure:
      FAULT-RESULT case=<name> bound=<bound> measured=<figure> unit=<unit>
  (tests/faults/run.sh collects them; docs/RELIABILITY.md's table is filled from them).

Exit codes (tests/faults/run.sh): 0 pass, 77 skip (the reason is the last line), 78 XFAIL
(a case waiting for a fix that is not merged yet failed, as expected: "XFAIL: waits for
..."), 79 XPASS (such a case passed: remove its mark), anything else a failure.
"""
import ctypes
import hashlib
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
import ringlet_test as rt  # noqa: E402

XFAIL_RC = 78
XPASS_RC = 79
MIB = 1 << 20
UP = "127.0.0.2"  # upstream services listen here; the data plane on 127.0.0.1

# Growth allowed between the snapshot before a fault and the one after recovery.
FD_SLACK = 2  # descriptors: a timer or a pipe pair in flight
RSS_SLACK_KB = 8192  # resident memory: allocator slack and buffers first touched


log = rt.log
skip = rt.skip


# ---- resource snapshots ---------------------------------------------------------------------


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else None
    except OSError:
        return None


class Usage:
    """Descriptors and resident memory of one process at one moment."""

    def __init__(self, name, pid):
        self.name, self.pid = name, pid
        self.fds, self.rss = fd_count(pid), rss_kb(pid)

    def __str__(self):
        return "%s: %s fds, %s kB" % (self.name, self.fds, self.rss)


# ---- the case -----------------------------------------------------------------------------------


class Case(rt.Harness):
    """A fault case. xfail: the reason ("waits for <fix>") when the case is expected to fail
    until another branch is merged; a failure then exits XFAIL_RC, a pass XPASS_RC."""

    def __init__(self, name, xfail=None):
        super().__init__("fault-" + name)
        self.case = name
        self.xfail = xfail

    def fail(self, what):
        if not self.xfail:
            super().fail(what)
        log("FAIL: " + what)
        self.dump()
        self.cleanup()
        log("XFAIL: %s (%s)" % (self.xfail, what))
        sys.stdout.flush()
        os._exit(XFAIL_RC)

    def passed(self):
        if not self.xfail:
            super().passed()
        log("%d checks" % self.checks)
        self.cleanup()
        log("XPASS: %s: the case passes now; remove its xfail mark" % self.xfail)
        sys.stdout.flush()
        os._exit(XPASS_RC)

    def result(self, what, bound, measured, unit="s"):
        """The machine-readable line for one figure."""
        fmt = (lambda v: "%.2f" % v if isinstance(v, float) else str(v))
        log("FAULT-RESULT case=%s bound=%s measured=%s unit=%s" %
            (what, fmt(bound), fmt(measured), unit))

    def usage(self, procs):
        """Snapshots of [(name, pid)] or of Procs."""
        out = []
        for p in procs:
            name, pid = (p.name, p.pid) if isinstance(p, rt.Proc) else p
            out.append(Usage(name, pid))
        return out

    def no_growth(self, what, before, fd_slack=FD_SLACK, rss_slack_kb=RSS_SLACK_KB,
                  settle=15.0):
        """Check each process of `before` (Usage list) against a new snapshot: descriptors
        at most fd_slack more, RSS at most rss_slack_kb more. Descriptors of streams that
        are still closing may take a moment: waits (bounded) for them to settle."""
        deadline = time.monotonic() + settle
        while True:
            after = [Usage(b.name, b.pid) for b in before]
            ok = all(a.fds is not None and a.fds <= b.fds + fd_slack
                     for a, b in zip(after, before))
            if ok or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        for a, b in zip(after, before):
            self.check(a.fds is not None and a.fds <= b.fds + fd_slack,
                       "%s: %s's descriptors did not grow (%s before, %s after, slack %d)" %
                       (what, b.name, b.fds, a.fds, fd_slack))
            self.check(a.rss is not None and a.rss <= b.rss + rss_slack_kb,
                       "%s: %s's memory did not grow (%s kB before, %s kB after, slack %d kB)"
                       % (what, b.name, b.rss, a.rss, rss_slack_kb))
            self.result("%s/%s-fds" % (what, b.name), "+%d" % fd_slack,
                        "%+d" % (a.fds - b.fds), "fds")
            self.result("%s/%s-rss" % (what, b.name), "+%d" % rss_slack_kb,
                        "%+d" % (a.rss - b.rss), "kB")
        return after

    def recovery(self, what, bound, probe, t0=None, give_up=None):
        """Call probe() (True: a byte-exact transfer went through) until it succeeds; the
        time from t0 (default now: the fault's end) to that success is checked against
        bound (seconds) and printed. Gives up after give_up seconds (default 2 x bound +
        10)."""
        t0 = time.monotonic() if t0 is None else t0
        limit = t0 + (give_up if give_up is not None else 2 * bound + 10)
        tries = 0
        while True:
            tries += 1
            try:
                ok = probe()
            except (OSError, socket.timeout):
                ok = False
            if ok:
                break
            if time.monotonic() >= limit:
                self.result(what, bound, "never", "s")
                self.fail("%s: no byte-exact transfer within %.0f s of the fault's end "
                          "(%d tries)" % (what, limit - t0, tries))
            time.sleep(0.1)
        dt = time.monotonic() - t0
        self.result(what, float(bound), dt, "s")
        self.check(dt <= bound, "%s: recovered in %.2f s (bound %.1f s, %d tries)" %
                   (what, dt, bound, tries))
        return dt


def main(name, body, xfail=None):
    """Run body(case); an exception fails the case with the logs printed."""
    c = Case(name, xfail)
    try:
        body(c)
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        c.fail("unexpected exception")
    c.passed()


# ---- transfers ----------------------------------------------------------------------------------


def echo_exchange(sock, seed, n, timeout=10.0):
    """Send n bytes of Pattern(seed) on sock (a thread), half-close, read the echo until
    EOF: True when exactly those bytes came back."""
    sock.settimeout(timeout)
    sent = [None]

    def writer():
        try:
            sent[0] = rt.send_pattern(sock, seed, n)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        got, digest = rt.recv_all(sock)
    finally:
        t.join(timeout)
        sock.close()
    return got == n and sent[0] is not None and digest == sent[0]


def echo_probe(port, n=256 << 10, addr="127.0.0.1", sockf=None, timeout=5.0):
    """A probe for Case.recovery: one byte-exact echo of n bytes through the data port."""
    seq = [0]

    def probe():
        seq[0] += 1
        s = (sockf or socket.socket)(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(timeout)
        try:
            s.connect((addr, port))
        except OSError:
            s.close()
            raise
        return echo_exchange(s, 1000 + seq[0], n, timeout)
    return probe


def source_handler(c, svc):
    """Upstream: read a request line "SEED SIZE\\n", send SIZE bytes of Pattern(SEED), then
    drain until the peer closes. Errors (a fault cut the stream) end the handler quietly."""
    try:
        line = b""
        while not line.endswith(b"\n") and len(line) < 64:
            b = c.recv(1)
            if not b:
                return
            line += b
        seed, size = (int(x) for x in line.split())
        rt.send_pattern(c, seed, size)
        c.shutdown(socket.SHUT_WR)
        svc.add(("sent", size))
        rt.recv_all(c)
    except (OSError, ValueError) as e:
        svc.add(("cut", repr(e)))


class Transfer(threading.Thread):
    """A paced download of `size` bytes of Pattern(seed) from a source upstream through the
    data port, in a thread. outcome: "complete" (every byte, byte-exact, then EOF), "short"
    (EOF early), "reset", "timeout", "connect" (could not connect), "corrupt" (bytes that
    are not the pattern's). prefix_ok: the bytes received are exactly the pattern's first
    n. started is set once `start_at` bytes have arrived (inject the fault then)."""

    def __init__(self, port, seed, size, rate=64 * MIB, start_at=4 * MIB, addr="127.0.0.1",
                 sockf=None, timeout=60.0):
        super().__init__(daemon=True)
        self.port, self.seed, self.size, self.rate = port, seed, size, rate
        self.start_at, self.addr, self.sockf, self.timeout = start_at, addr, sockf, timeout
        self.started = threading.Event()
        self.n = 0
        self.outcome = None
        self.prefix_ok = None
        self.t_end = None

    def run(self):
        h = hashlib.sha256()
        try:
            s = (self.sockf or socket.socket)(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(self.timeout)
            s.connect((self.addr, self.port))
            s.sendall(b"%d %d\n" % (self.seed, self.size))
        except OSError:
            self.outcome = "connect"
            self.started.set()
            return
        buf = bytearray(256 << 10)
        mv = memoryview(buf)
        t0 = time.monotonic()
        try:
            while True:
                k = s.recv_into(mv)
                if k == 0:
                    break
                h.update(mv[:k])
                self.n += k
                if self.n >= self.start_at:
                    self.started.set()
                ahead = self.n / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)
            self.outcome = "complete" if self.n == self.size else "short"
        except ConnectionResetError:
            self.outcome = "reset"
        except socket.timeout:
            self.outcome = "timeout"
        except OSError as e:
            self.outcome = "error %s" % e
        finally:
            s.close()
            self.t_end = time.monotonic()
            self.started.set()
        want = rt.Pattern(self.seed).digest(self.n) if self.n <= self.size else None
        self.prefix_ok = want == h.hexdigest()
        if not self.prefix_ok:
            self.outcome = "corrupt"

    def finish(self, timeout):
        self.join(timeout)
        return not self.is_alive()


def warm_up(c, tun):
    """Touch the buffers transfers use before the first snapshot, so that a later growth
    means something: a 4 MiB echo, an unpaced 64 MiB download, and SLOW_N slow readers at
    once (each stream's queue fills up to its credit window), all byte-exact."""
    c.check(tun.probe(4 * MIB)(), "a 4 MiB echo through the tunnel is byte-exact")
    check_transfers(c, "warm-up", [tun.transfer(64 * MIB, rate=1 << 40)], must_complete=True,
                    timeout=60)
    slow = [tun.transfer(8 * MIB, rate=4 * MIB, start_at=0) for _ in range(SLOW_N)]
    check_transfers(c, "warm-up, slow readers", slow, must_complete=True, timeout=60)


SLOW_N = 16


def check_transfers(c, what, transfers, must_complete=False, timeout=120):
    """Every transfer ended (bounded); every one that completed is byte-exact and every one
    cut short delivered an exact prefix; must_complete: all of them completed."""
    for t in transfers:
        c.check(t.finish(timeout), "%s: transfer on port %d ended" % (what, t.port))
    done = sum(1 for t in transfers if t.outcome == "complete")
    for t in transfers:
        c.check(t.prefix_ok, "%s: stream of %d bytes: %s after %d bytes, and every byte "
                "received is the one sent" % (what, t.size, t.outcome, t.n))
    if must_complete:
        c.check(done == len(transfers), "%s: all %d transfers completed byte-exact" %
                (what, len(transfers)))
    log("   %s: %d of %d transfers completed byte-exact, the rest cut at an exact prefix" %
        (what, done, len(transfers)))
    return done


# ---- a standard tunnel ----------------------------------------------------------------------


class Tunnel:
    """One server, one client and two upstreams on loopback: an echo (the probe port) and a
    source that sends what a Transfer asks for (the transfer port)."""

    def __init__(self, c, server_extra=(), client_extra=(), url=None, start_client=True):
        self.c = c
        self.p_echo = rt.free_port_on("127.0.0.1", UP)
        self.p_src = rt.free_port_on("127.0.0.1", UP)
        c.service(UP, self.p_echo, rt.echo_handler, "echo")
        self.src = c.service(UP, self.p_src, source_handler, "source")
        self.server = c.start_server(extra=list(server_extra))
        self.ctl = self.server.control_port
        self.url = url
        self.client_extra = list(client_extra)
        self.client = self.start_client() if start_client else None
        self.seed = 100

    def start_client(self, name="client", wait=True):
        url = self.url or "ws://127.0.0.1:%d" % self.ctl
        argv = [self.c.bin, "client", "--url", url, "--token-file", self.c.token_file,
                "--upstream", UP, "--ports", "%d,%d" % (self.p_echo, self.p_src),
                "--auto-tls=false"] + self.client_extra
        cl = self.c.spawn(name, argv)
        self.client = cl
        if wait:
            if not cl.wait_log(r'msg="connected to the server"', timeout=15):
                self.c.fail("%s did not log 'connected to the server'" % name)
            self.ports_open()
        return cl

    def restart_server(self, name="server"):
        self.server = self.c.start_server(control_port=self.ctl, name=name)
        return self.server

    def ports_open(self, after=0):
        for p in (self.p_echo, self.p_src):
            if not self.server.wait_log(r'msg="data-plane port open" port=%d ' % p, 15,
                                        after=after):
                self.c.fail("data-plane port %d did not open" % p)

    def probe(self, n=256 << 10):
        return echo_probe(self.p_echo, n)

    def transfer(self, size=128 * MIB, rate=64 * MIB, start_at=4 * MIB):
        """A paced download started in a thread (a new seed each time)."""
        self.seed += 1
        t = Transfer(self.p_src, self.seed, size, rate=rate, start_at=start_at)
        t.start()
        return t

    def warm_up(self):
        warm_up(self.c, self)


# ---- network namespaces -------------------------------------------------------------------------

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class in_netns:
    """with in_netns(name): sockets created by this thread inside live in that namespace
    (setns(2) moves only the calling thread; a socket keeps its namespace for life)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fd = os.open("/run/netns/%s" % self.name, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns %s" % self.name)
        finally:
            os.close(fd)
        return self

    def __exit__(self, *exc):
        try:
            if _libc.setns(self.home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(self.home)


def netns_socket(name):
    """A socket factory (for echo_probe, Transfer) making sockets in namespace name."""
    def make(*args):
        with in_netns(name):
            return socket.socket(*args)
    return make


def make_netns(c, tag):
    """A new network namespace with lo up, removed when the case ends. Skips the case when
    namespaces cannot be made."""
    if os.geteuid() != 0:
        skip("needs root for network namespaces")
    ns = "rlf%s%d" % (tag, os.getpid())
    r = subprocess.run(["ip", "netns", "add", ns], stderr=subprocess.PIPE)
    if r.returncode != 0:
        skip("cannot create a network namespace: %s" % r.stderr.decode().strip())
    # Run at cleanup, after the processes are killed, even when the case fails.
    c.on_cleanup.append(lambda: subprocess.run(["ip", "netns", "del", ns],
                                               stderr=subprocess.DEVNULL))
    sh(c, "ip", "-n", ns, "link", "set", "lo", "up")
    return ns


def sh(c, *cmd):
    r = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        c.fail("%s: %s" % (" ".join(cmd), r.stdout.decode().strip()))
    return r.stdout.decode()


def remove_stale_netns():
    """Namespaces of earlier runs whose process is gone (a killed run could not remove
    them)."""
    out = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout.decode()
    for m in re.finditer(r"^(rlf[a-z]+(\d+))\b", out, re.M):
        if not os.path.exists("/proc/%s" % m.group(2)):
            subprocess.run(["ip", "netns", "del", m.group(1)], stderr=subprocess.DEVNULL)


# ---- a raw WebSocket lane (PROTOCOL.md §1, §2) ----------------------------------------------------


def ws_upgrade(port, token, addr="127.0.0.1", path="/connect", timeout=10.0):
    """Open a lane by hand: the upgrade request with the token; returns (socket, bytes
    after the 101's head) or raises when the answer is not 101."""
    s = socket.create_connection((addr, port), timeout=timeout)
    s.sendall(("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ringlet.v1\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (path, addr, port, token)).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        b = s.recv(4096)
        if not b:
            raise OSError("the server closed the upgrade (%r)" % data[:80])
        data += b
    head, rest = data.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 101"):
        s.close()
        raise OSError("upgrade refused: %r" % head[:80])
    return s, rest


def ws_frame(opcode, payload, fin=True, rsv=0, mask=b"\x11\x22\x33\x44", length=None):
    """One client frame (masked unless mask is None); length overrides the length field."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    mbit = 0x80 if mask is not None else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask is None:
        return head + payload
    body = bytes(x ^ mask[i % 4] for i, x in enumerate(payload))
    return head + mask + body


class FrameReader:
    def __init__(self, sock, rest=b""):
        self.s, self.buf = sock, bytearray(rest)

    def _need(self, n):
        while len(self.buf) < n:
            b = self.s.recv(65536)
            if not b:
                raise EOFError("connection closed")
            self.buf += b

    def next(self):
        """(opcode, payload) of the next server frame (server frames are unmasked)."""
        self._need(2)
        op, ln = self.buf[0] & 0x0F, self.buf[1] & 0x7F
        hl = 2
        if ln == 126:
            self._need(4)
            ln, hl = struct.unpack("!H", self.buf[2:4])[0], 4
        elif ln == 127:
            self._need(10)
            ln, hl = struct.unpack("!Q", self.buf[2:10])[0], 10
        self._need(hl + ln)
        payload = bytes(self.buf[hl:hl + ln])
        del self.buf[:hl + ln]
        return op, payload

    def until_close(self, limit=64):
        """Frames until a Close: returns (close code or None, the binary payloads before
        it). EOF without a Close gives (None, ...)."""
        msgs = []
        for _ in range(limit):
            try:
                op, p = self.next()
            except (EOFError, ConnectionResetError):
                return None, msgs
            if op == 0x8:
                return (struct.unpack("!H", p[:2])[0] if len(p) >= 2 else 1005), msgs
            if op == 0x2:
                msgs.append(p)
        return None, msgs


def tun_str(b):
    return struct.pack("!B", len(b)) + b


def hello(ports, client_id=b"fault-raw", lane=0, session=0, caps=0x6):
    """A HELLO (PROTOCOL.md §2.2)."""
    return (struct.pack("!BBHIHHIIIHQ", 1, 0, 0, 0, 1, 1, caps, 1 << 20, 256 << 10, lane,
                        session) + tun_str(client_id) + tun_str(b"127.0.0.2") +
            struct.pack("!H", len(ports)) + b"".join(struct.pack("!H", p) for p in ports))


def parse_welcome(m):
    """A WELCOME's fields (§2.3) as a dict, or None if m is not a WELCOME."""
    if len(m) < 34 or m[0] != 0x02:
        return None
    version, caps, window, max_frame, lanes, session, nports = struct.unpack(
        "!HIIIHQH", m[8:34])
    ports = [struct.unpack("!HH", m[34 + 4 * i:38 + 4 * i]) for i in range(nports)]
    return {"version": version, "session": session, "ports": ports}


def raw_lane(port, token, ports=(), addr="127.0.0.1"):
    """Upgrade, send HELLO, read WELCOME: returns (socket, FrameReader, welcome dict)."""
    s, rest = ws_upgrade(port, token, addr)
    s.sendall(ws_frame(0x2, hello(list(ports))))
    fr = FrameReader(s, rest)
    for _ in range(8):
        op, p = fr.next()
        if op == 0x2:
            w = parse_welcome(p)
            if w is None:
                raise OSError("first message is not WELCOME: %r" % p[:40])
            return s, fr, w
    raise OSError("no WELCOME")


class NetnsTunnel:
    """The client (and its upstreams) in one network namespace, the server (and the
    data-plane users) in another, a veth pair between them (10.77.0.1/30 on the client's
    side "va", 10.77.0.2/30 on the server's "vb"): the link can be taken down, or slowed,
    without touching the host's network. Nothing leaves the two namespaces."""

    CTL = 8123
    P_ECHO, P_SRC = 9001, 9002

    def __init__(self, c):
        self.c = c
        remove_stale_netns()
        self.ns_a = make_netns(c, "a")
        self.ns_b = make_netns(c, "b")
        sh(c, "ip", "-n", self.ns_a, "link", "add", "va", "type", "veth", "peer", "name",
           "vb", "netns", self.ns_b)
        sh(c, "ip", "-n", self.ns_a, "addr", "add", "10.77.0.1/30", "dev", "va")
        sh(c, "ip", "-n", self.ns_b, "addr", "add", "10.77.0.2/30", "dev", "vb")
        sh(c, "ip", "-n", self.ns_a, "link", "set", "va", "up")
        sh(c, "ip", "-n", self.ns_b, "link", "set", "vb", "up")
        with in_netns(self.ns_a):
            c.service(UP, self.P_ECHO, rt.echo_handler, "echo")
            c.service(UP, self.P_SRC, source_handler, "source")
        self.server = c.spawn("server", [
            "ip", "netns", "exec", self.ns_b, c.bin, "server", "--auto-tls=false",
            "--token-file", c.token_file, "--control-port", str(self.CTL),
            "--control-addr", "10.77.0.2", "--data-addr", "127.0.0.1"])
        if not self.server.wait_log(r'msg="server listening"', 15):
            c.fail("the server (in %s) did not start" % self.ns_b)
        self.client = c.spawn("client", [
            "ip", "netns", "exec", self.ns_a, c.bin, "client", "--url",
            "ws://10.77.0.2:%d" % self.CTL, "--token-file", c.token_file, "--upstream", UP,
            "--ports", "%d,%d" % (self.P_ECHO, self.P_SRC), "--auto-tls=false"])
        if not self.client.wait_log(r'msg="connected to the server"', 15):
            c.fail("the client (in %s) did not connect" % self.ns_a)
        for p in (self.P_ECHO, self.P_SRC):
            c.wait_data_port(self.server, p)
        self.sockf = netns_socket(self.ns_b)
        self.seed = 200

    def probe(self, n=256 << 10):
        return echo_probe(self.P_ECHO, n, sockf=self.sockf)

    def warm_up(self):
        warm_up(self.c, self)

    def transfer(self, size=64 * MIB, rate=32 * MIB, start_at=2 * MIB):
        self.seed += 1
        t = Transfer(self.P_SRC, self.seed, size, rate=rate, start_at=start_at,
                     sockf=self.sockf)
        t.start()
        return t

    def link(self, state):
        """Take the veth pair's client side down or up."""
        sh(self.c, "ip", "-n", self.ns_a, "link", "set", "va", state)
