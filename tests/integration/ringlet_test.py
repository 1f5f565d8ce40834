"""Shared helpers for ringlet's integration tests (python3, standard library only).

A test imports this module, builds a Harness, starts a server, clients and upstream services
on loopback, checks what a user relies on, and calls h.passed() (prints PASS, exits 0). A
failed check calls h.fail() (or raises), which prints the tails of every process log and
exits 1. Every process the harness started is killed (its whole process group) on exit,
normal or not. Every wait is bounded by a timeout.

Environment: RINGLET_BIN (set by tests/run-integration.sh) is the ringlet binary; without
it the test uses $RINGLET_BUILD/ringlet (default build/ringlet) from the repository.
RINGLET_SHARDS=N gives every ringlet server and client the harness starts `--shards N` (ahead
of the test's own flags, so a test that sets --shards keeps its value).

Sanitizer reports: when the harness ends (pass, fail, skip or exception), it reads the log of
every ringlet process it started (and the output of h.run) for a ThreadSanitizer report; one
fails the test, with the reports printed. TSan prints a report when it happens, so a process
killed at the end of the test still leaves it in its log.
"""
import atexit
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SKIP = 77
CHUNK = 1 << 20  # socket reads and writes: large, so Python keeps up with the tunnel

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def log(msg):
    print(msg, flush=True)


def skip(reason):
    """Skip the test: the reason is the last line of the output."""
    print(reason, flush=True)
    sys.exit(SKIP)


def ringlet_bin():
    b = os.environ.get("RINGLET_BIN")
    if not b:
        b = os.path.join(REPO, os.environ.get("RINGLET_BUILD", "build"), "ringlet")
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        skip("ringlet binary not found at %s (build it first)" % b)
    return b


# ---- ports ---------------------------------------------------------------------------------


def read_to_eof(s, got, err):
    """Append what socket s delivers to got until EOF; an error ends it and goes to err."""
    try:
        while True:
            b = s.recv(1 << 20)
            if not b:
                break
            got.extend(b)
    except OSError as e:
        err.append(e)


def echo_once(port, size, host="127.0.0.1"):
    """Send size random bytes through host:port to an echo upstream and half-close, read
    the echo to EOF (in a thread, as it arrives); True when it is byte-exact."""
    data = os.urandom(size)
    s = connect(host, port, timeout=30)
    s.settimeout(30)
    got = bytearray()
    err = []
    t = threading.Thread(target=read_to_eof, args=(s, got, err))
    t.start()
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        err.append(e)
    t.join(60)
    s.close()
    return not err and bytes(got) == data


def all_at_once(fn, args, timeout=120):
    """fn(a) for every a in args, each in its own thread, all at once: the results, in
    order (None for a call still running after timeout seconds)."""
    results = [None] * len(args)

    def one(i):
        results[i] = fn(args[i])

    ts = [threading.Thread(target=one, args=(i,)) for i in range(len(args))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout)
    return results


# Ports free_port handed out in this process: a port picked for a listener that binds
# later (a data-plane port opens only once the client connects) is still free, and must
# not be handed out again meanwhile (CI: a client's --metrics-addr took its own tunnel's
# data port).
_handed = set()


def free_port(addr="127.0.0.1"):
    """A TCP port that is free on addr right now and not handed out before by this
    process, picked at random below the kernel's ephemeral range (32768 up here): a port
    the kernel hands out itself (bind to 0) may be taken by another test's outgoing
    connection before the listener meant for it binds."""
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    rnd = random.SystemRandom()
    for _ in range(100):
        # 10000-19999: below any usual ephemeral range, and clear of 20000-29999, where
        # tests pick ports of their own (test_tenants_many's spare ports).
        p = rnd.randrange(10000, 20000)
        if p not in _handed and port_free(addr, p):
            _handed.add(p)
            return p
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def port_free(addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        try:
            s.bind((addr, port))
        except OSError:
            return False
    return True


def free_port_on(*addrs):
    """A port number free on every one of addrs (the data plane on 127.0.0.1 and the
    upstream on 127.0.0.2 use the same number)."""
    for _ in range(200):
        p = free_port(addrs[0])
        if all(port_free(a, p) for a in addrs[1:]):
            return p
    raise RuntimeError("no port free on all of %s" % (addrs,))


def wait_port(addr, port, timeout=10.0):
    """Wait until something accepts connections on addr:port (a TCP self-connect, the
    kernel picking the port itself as the dial's source, does not count)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((addr, port), timeout=1) as s:
                if s.getsockname() != s.getpeername():
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def connect(addr, port, timeout=10.0):
    s = socket.create_connection((addr, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def rst_close(sock):
    """Close with SO_LINGER 0: the peer gets a RST instead of a FIN."""
    import struct
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# ---- deterministic data ------------------------------------------------------------------


class Pattern:
    """An endless deterministic pseudo-random byte stream for a seed: byte p is
    buf[p % L] with L = 4 MiB + 7, so reordered or repeated 1 MiB chunks change the hash."""

    _cache = {}

    def __init__(self, seed, offset=0):
        self.offset = offset
        if seed not in Pattern._cache:
            L = (4 << 20) + 7
            b = random.Random(seed).randbytes(L)
            Pattern._cache[seed] = (L, memoryview(b + b[:CHUNK]))
        self.L, self.mv = Pattern._cache[seed]

    def chunk(self, pos, n):
        """Bytes [pos, pos+n) of the stream, n <= CHUNK, as a memoryview (no copy)."""
        o = (pos + self.offset) % self.L
        return self.mv[o:o + n]

    def digest(self, n):
        h = hashlib.sha256()
        pos = 0
        while pos < n:
            k = min(CHUNK, n - pos)
            h.update(self.chunk(pos, k))
            pos += k
        return h.hexdigest()


def send_pattern(sock, seed, n, offset=0):
    """Send n bytes of Pattern(seed, offset); returns the sha256 hex digest of what was
    sent."""
    p = Pattern(seed, offset)
    h = hashlib.sha256()
    pos = 0
    while pos < n:
        c = p.chunk(pos, min(CHUNK, n - pos))
        sock.sendall(c)
        h.update(c)
        pos += len(c)
    return h.hexdigest()


def recv_all(sock, limit=None):
    """Read until EOF (or limit bytes); returns (count, sha256 hex digest). Exceptions
    (ECONNRESET, timeouts) propagate."""
    h = hashlib.sha256()
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    n = 0
    while limit is None or n < limit:
        want = CHUNK if limit is None else min(CHUNK, limit - n)
        k = sock.recv_into(mv[:want])
        if k == 0:
            break
        h.update(mv[:k])
        n += k
    return n, h.hexdigest()


def recv_exact(sock, n):
    out = bytearray()
    while len(out) < n:
        b = sock.recv(n - len(out))
        if not b:
            break
        out += b
    return bytes(out)


# ---- upstream services (threads in the test process) --------------------------------------


class Service:
    """A TCP server on addr:port whose handler(conn, service) runs in a thread per
    connection. results is a list handlers may append to (under lock); accepted counts
    connections."""

    def __init__(self, addr, port, handler, name="service"):
        self.addr, self.port, self.handler, self.name = addr, port, handler, name
        self.lock = threading.Lock()
        self.results = []
        self.accepted = 0
        self.errors = []
        self._stop = threading.Event()
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.ls = socket.socket(fam, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((addr, port))
        self.ls.listen(1024)
        self.ls.settimeout(0.2)
        self.port = self.ls.getsockname()[1]
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c.settimeout(120)
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            self.handler(c, self)
        except Exception as e:  # recorded, the test decides
            with self.lock:
                self.errors.append(repr(e))
        finally:
            try:
                c.close()
            except OSError:
                pass

    def add(self, r):
        with self.lock:
            self.results.append(r)

    def wait_results(self, n, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.results) + len(self.errors) >= n:
                    return True
            time.sleep(0.02)
        return False

    def stop(self):
        self._stop.set()
        try:
            self.ls.close()
        except OSError:
            pass


def source_handler(seed, n):
    """Send n bytes of Pattern(seed), then close; records ('sent', n, digest)."""
    def h(c, svc):
        d = send_pattern(c, seed, n)
        c.shutdown(socket.SHUT_WR)
        svc.add(("sent", n, d))
        # Drain until the peer closes so the close is a FIN, never a RST.
        recv_all(c)
    return h


def sink_handler(c, svc):
    """Hash everything received until EOF; records ('received', count, digest)."""
    n, d = recv_all(c)
    svc.add(("received", n, d))


def echo_handler(c, svc):
    buf = bytearray(CHUNK)
    mv = memoryview(buf)
    n = 0
    while True:
        k = c.recv_into(mv)
        if k == 0:
            break
        c.sendall(mv[:k])
        n += k
    c.shutdown(socket.SHUT_WR)
    svc.add(("echoed", n))


def http_handler(name):
    """An HTTP-ish responder: reads a request head, answers 200 with body name, closes."""
    def h(c, svc):
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            b = c.recv(4096)
            if not b:
                break
            data += b
        body = name.encode()
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                  % (len(body), body))
        c.shutdown(socket.SHUT_WR)
        svc.add(("served", name))
        try:
            c.settimeout(5)
            recv_all(c)
        except OSError:
            pass
    return h


def name_handler(name):
    """Sends name and a newline at once, then waits for the peer to close."""
    def h(c, svc):
        c.sendall(name.encode() + b"\n")
        svc.add(("named", name))
        c.settimeout(30)
        try:
            recv_all(c)
        except OSError:
            pass
    return h


def http_get(addr, port, path="/", timeout=10.0, headers=None):
    """A raw HTTP/1.1 GET; returns (status, headers text, body bytes)."""
    req = "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n" % (path, addr, port)
    for k, v in (headers or {}).items():
        req += "%s: %s\r\n" % (k, v)
    req += "\r\n"
    return http_raw(addr, port, req.encode(), timeout)


def scrape(port, path, token, addr="127.0.0.1"):
    """GET path with the token as a Bearer credential (None: no credential); returns
    (status, headers, body) as http_get does."""
    headers = {"Authorization": "Bearer " + token} if token is not None else None
    return http_get(addr, port, path, headers=headers)


def metric(text, name, **labels):
    """Value of the Prometheus sample name{labels...} in text (labels must match exactly
    those given), or None."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$', line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(3))
    return None


def streams_open(token, *ports, addr="127.0.0.1"):
    """ringlet_streams_active of the /metrics listener on each port (None where it does not
    answer 200), as a tuple."""
    out = []
    for p in ports:
        code, _, text = scrape(p, "/metrics", token, addr)
        out.append(metric(text.decode(), "ringlet_streams_active") if code == 200 else None)
    return tuple(out)


def wait_streams_closed(token, *ports, timeout=15.0):
    """Wait until every port's ringlet_streams_active is 0; returns the last readings."""
    deadline = time.monotonic() + timeout
    got = streams_open(token, *ports)
    while time.monotonic() < deadline and any(v != 0 for v in got):
        time.sleep(0.1)
        got = streams_open(token, *ports)
    return got


def http_raw(addr, port, raw, timeout=10.0):
    with socket.create_connection((addr, port), timeout=timeout) as s:
        s.sendall(raw)
        data = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
                m = re.match(rb"HTTP/1\.[01] \d+.*?\r\n\r\n", data, re.S)
                if m and re.match(rb"HTTP/1\.[01] 101", data):
                    break  # upgraded: the connection stays open
                if m:
                    cl = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", m.group(0))
                    if cl and len(data) >= m.end() + int(cl.group(1)):
                        break
        except ConnectionResetError:
            pass
    m = re.match(rb"HTTP/1\.[01] (\d+)[^\r\n]*\r\n(.*?)\r\n\r\n(.*)", data, re.S)
    if not m:
        return None, "", data
    return int(m.group(1)), m.group(2).decode("latin-1"), m.group(3)


# ---- processes -----------------------------------------------------------------------------


def with_shards(argv):
    """argv with `--shards $RINGLET_SHARDS` right after the server/client command word when
    the variable is set and argv runs a ringlet server or client."""
    n = os.environ.get("RINGLET_SHARDS")
    argv = list(argv)
    if not n or os.path.basename(argv[0]) not in ("ringlet", "inlets-pro"):
        return argv
    for i, a in enumerate(argv[1:3], 1):
        if a in ("server", "client"):
            return argv[:i + 1] + ["--shards", n] + argv[i + 1:]
    return argv


TSAN_RE = re.compile(r"(WARNING|ERROR|FATAL): ThreadSanitizer")
TSAN_RULE = "=================="


def tsan_reports(text):
    """The ThreadSanitizer reports in a process's output, each as its lines (from the
    WARNING line to the closing rule; a FATAL/ERROR line alone with what follows it)."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if TSAN_RE.search(lines[i]):
            j = i + 1
            while j < len(lines) and lines[j].strip() != TSAN_RULE and not \
                    TSAN_RE.search(lines[j]):
                j += 1
            out.append(lines[i:j])
            i = j
        else:
            i += 1
    return out


class Proc:
    """A ringlet process in its own process group, stdout+stderr in a log file."""

    def __init__(self, name, argv, logpath, env=None):
        self.name, self.argv, self.logpath = name, argv, logpath
        self.logf = open(logpath, "ab")
        self.p = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, start_new_session=True,
                                  env=env)
        self.started = time.monotonic()
        self.sent_signals = []

    @property
    def pid(self):
        return self.p.pid

    def text(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def lines(self):
        return self.text().splitlines()

    def count(self, pattern):
        return sum(1 for l in self.lines() if re.search(pattern, l))

    def mark(self):
        """The current number of log lines: pass to wait_log(after=) to see only new ones."""
        return len(self.lines())

    def wait_log(self, pattern, timeout=10.0, after=0, count=1):
        """Wait until the log has count lines (after line index `after`) matching pattern;
        returns the last such line or None on timeout (or if the process died first)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [l for l in self.lines()[after:] if re.search(pattern, l)]
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() >= deadline:
                return None
            if self.p.poll() is not None:
                # One more look: the line may have been written just before exiting.
                found = [l for l in self.lines()[after:] if re.search(pattern, l)]
                return found[count - 1] if len(found) >= count else None
            time.sleep(0.05)

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        self.sent_signals.append(sig)
        if self.alive():
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self):
        """SIGKILL the process group and reap it."""
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGKILL)
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL if it lingers."""
        self.signal(signal.SIGTERM)
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def wait_exit(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def tail(self, n=40):
        return "\n".join(self.lines()[-n:])


_harnesses = []


def _cleanup_all():
    for h in list(_harnesses):
        h.cleanup()


atexit.register(_cleanup_all)


def _on_term(signum, frame):
    _cleanup_all()
    os._exit(1)


signal.signal(signal.SIGTERM, _on_term)


class Harness:
    def __init__(self, name):
        self.name = name
        self.bin = ringlet_bin()
        self.dir = tempfile.mkdtemp(prefix="ringlet-%s." % name)
        self.procs = []
        self.services = []
        self.token = "tok-%s-%d" % (name, os.getpid())
        self.token_file = self.write("token", self.token + "\n")
        self.checks = 0
        self.on_cleanup = []  # callables run (last first) when the test ends, even by fail()
        self.run_reports = []  # (command, report lines): ThreadSanitizer reports seen by run()
        _harnesses.append(self)

    def write(self, fname, content):
        path = os.path.join(self.dir, fname)
        with open(path, "w") as f:
            f.write(content)
        return path

    # -- processes --

    def spawn(self, name, argv, env=None):
        logpath = os.path.join(self.dir, "%s.log" % name)
        p = Proc(name, with_shards(argv), logpath, env=env)
        self.procs.append(p)
        return p

    def run(self, argv, timeout=20, env=None):
        """Run a short command to completion; returns (exit code, combined output)."""
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, timeout=timeout, env=env,
                           start_new_session=True)
        out = r.stdout.decode("utf-8", "replace")
        for rep in tsan_reports(out):
            self.run_reports.append(("run: " + " ".join(argv)[:100], rep))
        return r.returncode, out

    def start_server(self, control_port=None, name="server", token_file=None, extra=(),
                     wait=True, argv0=None):
        if control_port is None:
            control_port = free_port("127.0.0.1")
        argv = [argv0 or self.bin, "server", "--auto-tls=false",
                "--token-file", token_file or self.token_file,
                "--control-port", str(control_port), "--control-addr", "127.0.0.1",
                "--data-addr", "127.0.0.1"] + list(extra)
        p = self.spawn(name, argv)
        p.control_port = control_port
        if wait:
            if not p.wait_log(r'msg="server listening"', timeout=15):
                self.fail("%s did not log 'server listening'" % name)
            if not wait_port("127.0.0.1", control_port, timeout=10):
                self.fail("%s: control port %d not accepting" % (name, control_port))
        return p

    def start_client(self, control_port, ports, upstream="127.0.0.2", name="client",
                     token_file=None, extra=(), wait=True, argv0=None):
        argv = [argv0 or self.bin, "client", "--url", "ws://127.0.0.1:%d" % control_port,
                "--token-file", token_file or self.token_file, "--upstream", upstream,
                "--ports", ",".join(str(x) for x in ports), "--auto-tls=false"] + list(extra)
        p = self.spawn(name, argv)
        if wait and not p.wait_log(r'msg="connected to the server"', timeout=15):
            self.fail("%s did not log 'connected to the server'" % name)
        return p

    def wait_data_port(self, server, port, timeout=10):
        """Wait for the server's "data-plane port open" line for port (connecting to probe
        would carry a connection to the upstream)."""
        if not server.wait_log(r'msg="data-plane port open" port=%d ' % port, timeout):
            self.fail("data-plane port %d did not open" % port)

    def service(self, addr, port, handler, name="service"):
        s = Service(addr, port, handler, name)
        self.services.append(s)
        return s

    # -- results --

    def check(self, cond, what):
        """Print one line per check; a false condition fails the test."""
        if cond:
            self.checks += 1
            log("ok: " + what)
        else:
            self.fail(what)

    def fail(self, what):
        log("FAIL: " + what)
        self.dump()
        self.cleanup()
        sys.stdout.flush()
        os._exit(1)

    def dump(self, n=40):
        for p in self.procs:
            log("---- %s (pid %d, %s) log tail: %s" %
                (p.name, p.pid, "running" if p.alive() else "exit %s" % p.p.returncode,
                 " ".join(p.argv)))
            log(p.tail(n))
            if re.search(r"signal=SIG(TERM|INT)", p.text()) and not any(
                    sg in (signal.SIGTERM, signal.SIGINT) for sg in p.sent_signals):
                log("NOTE: %s got a SIGTERM/SIGINT this test did not send (something "
                    "outside the test signalled it)" % p.name)
        for s in self.services:
            if s.errors:
                log("---- service %s errors: %s" % (s.name, s.errors[:5]))

    def cleanup(self):
        for s in self.services:
            s.stop()
        for p in self.procs:
            p.kill()
            try:
                p.logf.close()
            except OSError:
                pass
        self.services = []
        reports = self.run_reports + [(p.name, r) for p in self.procs
                                      for r in tsan_reports(p.text())]
        while self.on_cleanup:
            try:
                self.on_cleanup.pop()()
            except Exception:  # best effort: the rest must still run
                pass
        if self in _harnesses:
            _harnesses.remove(self)
        if os.environ.get("KEEP_LOGS") is None:
            shutil.rmtree(self.dir, ignore_errors=True)
        if reports:
            self.fail_sanitizer(reports)

    def fail_sanitizer(self, reports):
        """Print every report (the full text, then one summary line each) and exit 1."""
        for who, rep in reports:
            log("---- ThreadSanitizer report in %s:" % who)
            log("\n".join(rep[:300]))
        log("---- ThreadSanitizer summary:")
        for who, rep in reports:
            summ = [l for l in rep if l.startswith("SUMMARY:")]
            log("  %s: %s" % (who, (summ or rep)[0].strip()))
        log("FAIL: %d ThreadSanitizer report(s) from the processes this test started" %
            len(reports))
        sys.stdout.flush()
        os._exit(1)

    def passed(self):
        log("%d checks" % self.checks)
        self.cleanup()
        log("PASS")
        sys.stdout.flush()
        os._exit(0)


def main(name, body):
    """Run body(harness); an exception fails the test with the logs printed."""
    h = Harness(name)
    try:
        body(h)
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        h.fail("unexpected exception")
    h.passed()


def _selftest():
    """Run directly (the runner runs every *.py here): check the library's own pieces, so
    that an "ok" for this file means something."""
    a = Pattern(5).digest(3 * CHUNK + 17)
    b = Pattern(5).digest(3 * CHUNK + 17)
    c = Pattern(5, 1).digest(3 * CHUNK + 17)
    assert a == b and a != c, "Pattern is deterministic and offsets differ"
    log("ok: Pattern is deterministic")
    p = free_port_on("127.0.0.1", "127.0.0.2")
    svc = Service("127.0.0.2", p, echo_handler, "echo")
    try:
        s = connect("127.0.0.2", p)
        d = send_pattern(s, 5, 3 * CHUNK + 17)
        s.shutdown(socket.SHUT_WR)
        n, e = recv_all(s)
        s.close()
        assert (n, e) == (3 * CHUNK + 17, d) == (3 * CHUNK + 17, a), "echo round trip"
        assert svc.wait_results(1, 5) and svc.results[0] == ("echoed", n)
    finally:
        svc.stop()
    log("ok: services, send_pattern and recv_all round-trip byte-exact")
    log("PASS")


if __name__ == "__main__":
    _selftest()
