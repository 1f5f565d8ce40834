#!/usr/bin/env python3
"""The soak (`make soak SOAK_MINUTES=N`; docs/RELIABILITY.md, "Soak").

One ringlet server and two clients forwarding the same four ports (so the server balances
streams over both tunnels) to upstreams on 127.0.0.2, all on loopback, under a mixed load:
  churn  short connections (256 bytes echoed, then closed), CHURN_THREADS at ~CHURN_RATE/s
  rr     request/response: 1 KiB echoed on RR_CONNS persistent connections
  bulk   an echo stream of 16-64 MiB both ways at once, one after another
  fed    federation-sized HTTP responses (100, 200 and 300 MiB) from an upstream HTTP server
(bulk and fed transfers each start at another offset into their pattern: no two
consecutive ones carry the same bytes)
Every transfer is checked byte-exact by sha256; one cut short by a client restart counts as
interrupted, and even then what arrived must be a prefix of what was sent (else: corrupt).
A client is restarted (SIGKILL and SIGTERM in turn, then started again) every
--restart-every seconds. Every second the RSS, open descriptors and CPU of the server and
both clients go to samples.csv; soak.svg plots them.

The first 20 % of the run is the warm-up; the load then pauses (quiesce) so the idle figures
can be read. Bounds, checked over the rest of the run (see BOUNDS):
  RSS       <= 1.5 x the process's warm-up maximum + 16 MiB
  fds       <= the warm-up maximum + 32
  CPU       every 60 s window's mean <= 2 x the warm-up mean + 20 points
  idle      at the final quiesce: descriptors <= the warm-up quiesce's + 8, CPU <= 5 %
and the soak fails on any corrupt transfer, on a process that died unasked, or when a kind
of load completed no transfer at all. Prints a summary (also summary.txt). Exit 0 pass,
1 fail. Python 3 standard library only; only loopback.
"""
import argparse
import hashlib
import os
import shutil
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
sys.path.insert(0, HERE)
import ringlet_test as rt  # noqa: E402
import svgplot  # noqa: E402

MIB = 1 << 20
CHURN_THREADS, CHURN_RATE, CHURN_BYTES = 2, 40, 256
RR_CONNS, RR_RATE, RR_BYTES = 4, 50, 1024
BULK_SIZES = [16 * MIB + 11, 32 * MIB + 13, 64 * MIB + 17]
FED_SIZES = [100 * MIB + 1, 200 * MIB + 3, 300 * MIB + 5]
BULK_PAUSE, FED_PAUSE = 2.0, 10.0
# Transfer i starts at OFFSETS[i % 4] into its pattern (and is SIZES[i % 3] long), so
# consecutive bulk or federation transfers never carry the same bytes.
OFFSETS = [0, 4099, 2 * 8191, 3 * 65537]
DRAIN_WAIT = 45  # a SIGTERM'd client drains for up to 30 s (its --drain-timeout default)
BOUNDS = dict(rss_factor=1.5, rss_slack_kib=16 * 1024, fd_slack=32, cpu_factor=2.0,
              cpu_slack=20.0, cpu_window=60, idle_fd_slack=8, idle_cpu=5.0)
ROLES = ("server", "client-a", "client-b")
TICK = os.sysconf("SC_CLK_TCK")


class Load:
    """Counters and the pause switch the load generators share."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.pause = threading.Event()
        self.active = 0
        self.count = {k: dict(ok=0, interrupted=0, corrupt=0, bytes=0)
                      for k in ("churn", "rr", "bulk", "fed")}
        self.corrupt = []

    def add(self, kind, what, n=0, detail=None):
        with self.lock:
            self.count[kind][what] += 1
            self.count[kind]["bytes"] += n
            if what == "corrupt":
                self.corrupt.append((time.monotonic(), kind, detail))

    def enter(self):
        """Wait while paused; False once stopped. Counts the caller as active."""
        while self.pause.is_set() and not self.stop.is_set():
            time.sleep(0.05)
        if self.stop.is_set():
            return False
        with self.lock:
            self.active += 1
        return True

    def leave(self):
        with self.lock:
            self.active -= 1


def recv_hash(sock, limit):
    """Like rt.recv_all, but a reset or timeout ends the read instead of raising: returns
    (count, sha256 hex digest) of what did arrive."""
    h, buf, n = hashlib.sha256(), bytearray(rt.CHUNK), 0
    mv = memoryview(buf)
    try:
        while n < limit:
            k = sock.recv_into(mv[:min(rt.CHUNK, limit - n)])
            if k == 0:
                break
            h.update(mv[:k])
            n += k
    except OSError:
        pass
    return n, h.hexdigest()


def prefix_ok(pattern, n, digest):
    """Whether n received bytes with this digest are the first n bytes of pattern."""
    return rt.Pattern(*pattern).digest(n) == digest if n else True


def churn(load, port, tid):
    i = 0
    while load.enter():
        i += 1
        seed = (31, (tid * 1000003 + i) % 4096)
        want = bytes(rt.Pattern(*seed).chunk(0, CHURN_BYTES))
        try:
            got = b""
            with rt.connect("127.0.0.1", port, timeout=20) as s:
                s.sendall(want)
                s.shutdown(socket.SHUT_WR)
                got = rt.recv_exact(s, CHURN_BYTES + 1)
            kind = "ok" if got == want else "interrupted"
        except OSError:
            kind = "interrupted"
        if not want.startswith(got):
            kind = "corrupt"
        load.add("churn", kind, len(got), "churn %d bytes differ" % len(got))
        load.leave()
        time.sleep(CHURN_THREADS / CHURN_RATE)


def rr(load, port, tid):
    s, i = None, 0
    while load.enter():
        i += 1
        want = bytes(rt.Pattern(37, (tid * 7919 + i) % 65536).chunk(0, RR_BYTES))
        got = b""
        try:
            if s is None:
                s = rt.connect("127.0.0.1", port, timeout=20)
            s.sendall(want)
            got = rt.recv_exact(s, RR_BYTES)
            kind = "ok" if got == want else "interrupted"
        except OSError:
            kind = "interrupted"
        if not want.startswith(got):
            kind = "corrupt"
        if kind != "ok" and s is not None:
            s.close()
            s = None
        load.add("rr", kind, len(got), "rr %d bytes differ" % len(got))
        load.leave()
        time.sleep(1.0 / RR_RATE)
    if s is not None:
        s.close()


class Expect:
    """sha256 of the first n bytes of Pattern(seed, offset), computed once each."""

    def __init__(self):
        self.lock, self.cache = threading.Lock(), {}

    def __call__(self, seed, off, n):
        with self.lock:
            if (seed, off, n) not in self.cache:
                self.cache[seed, off, n] = rt.Pattern(seed, off).digest(n)
            return self.cache[seed, off, n]


def bulk(load, port, expect):
    i = 0
    while load.enter():
        n, off = BULK_SIZES[i % len(BULK_SIZES)], OFFSETS[i % len(OFFSETS)]
        i += 1
        got = (0, "")
        try:
            with rt.connect("127.0.0.1", port, timeout=30) as s:
                def writer():
                    try:
                        rt.send_pattern(s, 41, n, off)
                        s.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                w = threading.Thread(target=writer, daemon=True)
                w.start()
                try:
                    got = recv_hash(s, n + 1)
                finally:
                    w.join(60)
        except OSError:
            pass
        verdict(load, "bulk", (41, off), n, got, expect(41, off, n))
        load.leave()
        time.sleep(BULK_PAUSE)


def fed_handler(c, svc):
    """The upstream HTTP server: GET /<size>/<offset> answers size bytes of
    Pattern(43, offset)."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 8192:
        b = c.recv(4096)
        if not b:
            return
        head += b
    n, off = (int(x) for x in head.split(b" ")[1].strip(b"/").split(b"/"))
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
              b"Content-Length: %d\r\nConnection: close\r\n\r\n" % n)
    rt.send_pattern(c, 43, n, off)
    c.shutdown(socket.SHUT_WR)
    c.settimeout(10)
    rt.recv_all(c)


def fed(load, port, expect):
    i = 0
    while load.enter():
        n, off = FED_SIZES[i % len(FED_SIZES)], OFFSETS[i % len(OFFSETS)]
        i += 1
        got = (0, "")
        try:
            with rt.connect("127.0.0.1", port, timeout=30) as s:
                s.sendall(b"GET /%d/%d HTTP/1.1\r\nHost: soak\r\nConnection: close\r\n\r\n"
                          % (n, off))
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 8192:
                    b = s.recv(1)
                    if not b:
                        break
                    head += b
                if head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: %d\r\n" % n in head:
                    got = recv_hash(s, n + 1)
        except OSError:
            pass
        verdict(load, "fed", (43, off), n, got, expect(43, off, n))
        load.leave()
        time.sleep(FED_PAUSE)


def verdict(load, kind, pattern, n, got, want):
    cnt, digest = got
    if (cnt, digest) == (n, want):
        load.add(kind, "ok", cnt)
    elif cnt <= n and prefix_ok(pattern, cnt, digest):
        load.add(kind, "interrupted", cnt)
    else:
        load.add(kind, "corrupt", cnt, "%s: %d of %d bytes, not the pattern" % (kind, cnt, n))


# ---- processes and samples -----------------------------------------------------------------


def proc_sample(pid):
    """(RSS KiB, open descriptors, CPU ticks) of pid, or None if it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
        fds = len(os.listdir("/proc/%d/fd" % pid))
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        return rss, fds, int(st[11]) + int(st[12])
    except (OSError, StopIteration, ValueError, IndexError):
        return None


class Soak:
    def __init__(self, h, a):
        self.h, self.a = h, a
        self.load = Load()
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.samples = []  # (t, role, pid, rss KiB, fds, cpu %)
        self.restarts = []  # (t, role, signal name)
        self.quiesce = {}  # name -> {role: (fds, cpu %)}
        self.unasked = []  # processes that died without being asked
        self.procs = {}
        self.me = type("Me", (), dict(pid=os.getpid(), alive=lambda self: True, name="load"))()
        self.gen = {r: 0 for r in ROLES}
        self.restarting = set()
        self.exits = []

    def now(self):
        return time.monotonic() - self.t0

    def start_client(self, role):
        self.gen[role] += 1
        p = self.h.start_client(self.srv.control_port, self.ports, upstream="127.0.0.2",
                                name="%s-%d" % (role, self.gen[role]))
        with self.lock:
            self.procs[role] = p

    def sampler(self):
        """Every second: a row per process into self.samples and samples.csv (written as
        it goes, so a run that breaks off keeps its samples)."""
        last = {}
        nxt = time.monotonic()
        csvf = open(os.path.join(self.a.out, "samples.csv"), "w")
        csvf.write("t_s,role,pid,rss_kib,fds,cpu_pct\n")
        while not self.load.stop.is_set():
            csvf.flush()
            nxt += 1.0
            time.sleep(max(0.0, nxt - time.monotonic()))
            t = self.now()
            with self.lock:
                procs = dict(self.procs, load=self.me)
            for role, p in procs.items():
                s = proc_sample(p.pid)
                if s is None or not p.alive():
                    if role not in self.restarting and p is self.procs.get(role) and \
                            p not in self.unasked:
                        self.unasked.append(p)
                    continue
                prev = last.get(role)
                cpu = None
                if prev and prev[0] == p.pid:
                    cpu = 100.0 * (s[2] - prev[2]) / TICK / max(1e-3, t - prev[1])
                last[role] = (p.pid, t, s[2])
                if cpu is not None:
                    self.samples.append((t, role, p.pid, s[0], s[1], cpu))
                    csvf.write("%.1f,%s,%d,%d,%d,%.1f\n" % self.samples[-1])
        csvf.close()

    def restarter(self):
        i = 0
        nxt = self.a.restart_every
        while not self.load.stop.wait(1.0):
            role = ("client-a", "client-b")[i % 2]
            with self.lock:  # against quiesce_point: a restart starts before a pause or not
                if self.now() < nxt or self.load.pause.is_set():
                    continue
                self.restarting.add(role)
            sig = "SIGKILL" if i % 2 == 0 else "SIGTERM"
            i += 1
            p = self.procs[role]
            t, at = time.monotonic(), self.now()
            if sig == "SIGKILL":
                p.kill()
            else:
                p.stop(timeout=DRAIN_WAIT)
            self.restarts.append((at, role, sig))
            self.exits.append("%s %s: exit %s after %.1f s" % (
                p.name, sig, p.p.returncode, time.monotonic() - t))
            self.start_client(role)
            self.restarting.discard(role)
            nxt = self.now() + self.a.restart_every

    def quiesce_point(self, name):
        """Pause the load, wait for in-flight transfers to end (bounded), then read each
        process's descriptors and its CPU over 3 idle seconds."""
        with self.lock:
            self.load.pause.set()
        deadline = time.monotonic() + 180
        while (self.load.active or self.restarting) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        before = {r: (p, proc_sample(p.pid)) for r, p in self.procs.items()}
        time.sleep(3)
        out = {}
        for r, (p, s0) in before.items():
            s1 = proc_sample(p.pid)
            if s0 and s1:
                out[r] = (s1[1], 100.0 * (s1[2] - s0[2]) / TICK / 3.0, s1[0])
        self.quiesce[name] = out
        self.load.pause.clear()
        return out


# ---- the run and its verdict ---------------------------------------------------------------


def setup(h, soak):
    up = "127.0.0.2"
    names = ("churn", "rr", "bulk", "fed")
    ports = {k: rt.free_port_on("127.0.0.1", up) for k in names}
    for k in names:
        h.service(up, ports[k], fed_handler if k == "fed" else rt.echo_handler, k)
    soak.srv = h.start_server()
    soak.procs["server"] = soak.srv
    soak.ports = [ports[k] for k in names]
    soak.start_client("client-a")
    soak.start_client("client-b")
    for p in soak.ports:
        h.wait_data_port(soak.srv, p)
    return ports


def run(h, a):
    soak = Soak(h, a)
    ports = setup(h, soak)
    expect = Expect()
    soak.t0 = time.monotonic()
    load = soak.load
    threads = [threading.Thread(target=soak.sampler), threading.Thread(target=soak.restarter)]
    threads += [threading.Thread(target=churn, args=(load, ports["churn"], i))
                for i in range(CHURN_THREADS)]
    threads += [threading.Thread(target=rr, args=(load, ports["rr"], i))
                for i in range(RR_CONNS)]
    threads += [threading.Thread(target=bulk, args=(load, ports["bulk"], expect)),
                threading.Thread(target=fed, args=(load, ports["fed"], expect))]
    for t in threads:
        t.daemon = True
        t.start()
    total = a.minutes * 60.0
    warm = total * a.warmup
    rt.log("soak: %.0f s, warm-up %.0f s, a client restarted every %.0f s; samples in %s" %
           (total, warm, a.restart_every, a.out))
    while soak.now() < warm:
        time.sleep(0.5)
    soak.warm_end = soak.now()
    rt.log("soak: warm-up over; idle: %s" % fmt_idle(soak.quiesce_point("warm-up")))
    soak.warm_resume = soak.now()
    last = 0
    while soak.now() < total:
        time.sleep(0.5)
        if soak.now() - last >= 60:
            last = soak.now()
            rt.log("soak: %3.0f min  %s" % (last / 60, fmt_counts(load)))
    rt.log("soak: load done; idle: %s" % fmt_idle(soak.quiesce_point("end")))
    load.stop.set()
    for t in threads:
        t.join(60)
    return soak


def fmt_idle(q):
    return ", ".join("%s %d fds %.1f %% CPU" % (r, v[0], v[1]) for r, v in sorted(q.items()))


def fmt_counts(load):
    with load.lock:
        return "  ".join("%s %d ok %d int %d bad" % (k, c["ok"], c["interrupted"], c["corrupt"])
                         for k, c in load.count.items())


def check(soak):
    """The verdict: a list of (ok, line) and the limits per role for the plot."""
    b, out, limits = BOUNDS, [], {}
    warm = [x for x in soak.samples if x[0] < soak.warm_end]
    post = [x for x in soak.samples if x[0] >= soak.warm_resume]
    for role in ROLES:
        w = [x for x in warm if x[1] == role]
        p = [x for x in post if x[1] == role]
        if not w or not p:
            out.append((False, "%s: no samples (warm-up %d, after %d)" % (role, len(w), len(p))))
            continue
        rss_lim = max(x[3] for x in w) * b["rss_factor"] + b["rss_slack_kib"]
        fd_lim = max(x[4] for x in w) + b["fd_slack"]
        wcpu = sum(x[5] for x in w) / len(w)
        cpu_lim = wcpu * b["cpu_factor"] + b["cpu_slack"]
        limits[role] = (rss_lim, fd_lim)
        rss_max, fd_max = max(x[3] for x in p), max(x[4] for x in p)
        out.append((rss_max <= rss_lim, "%s RSS: warm-up max %.1f MiB, after %.1f MiB, bound "
                    "%.1f MiB" % (role, max(x[3] for x in w) / 1024, rss_max / 1024,
                                  rss_lim / 1024)))
        out.append((fd_max <= fd_lim, "%s fds: warm-up max %d, after %d, bound %d" %
                    (role, max(x[4] for x in w), fd_max, fd_lim)))
        wins = {}
        for x in p:
            wins.setdefault(int((x[0] - soak.warm_resume) // b["cpu_window"]), []).append(x[5])
        worst = max(sum(v) / len(v) for v in wins.values())
        out.append((worst <= cpu_lim, "%s CPU: warm-up mean %.1f %%, worst %d s window after "
                    "%.1f %%, bound %.1f %%" % (role, wcpu, b["cpu_window"], worst, cpu_lim)))
        q0, q1 = soak.quiesce.get("warm-up", {}).get(role), soak.quiesce.get("end", {}).get(role)
        if not q0 or not q1:
            out.append((False, "%s: no idle reading (warm-up %s, end %s)" % (role, q0, q1)))
            continue
        out.append((q1[0] <= q0[0] + b["idle_fd_slack"] and q1[1] <= b["idle_cpu"],
                    "%s idle: %d fds (warm-up idle %d, bound +%d), %.1f %% CPU (bound %.0f %%), "
                    "RSS %.1f MiB (warm-up idle %.1f MiB)" %
                    (role, q1[0], q0[0], b["idle_fd_slack"], q1[1], b["idle_cpu"],
                     q1[2] / 1024, q0[2] / 1024)))
    c = soak.load.count
    out.append((not soak.load.corrupt, "corrupt transfers: %d %s" %
                (len(soak.load.corrupt), soak.load.corrupt[:3])))
    for k, v in c.items():
        out.append((v["ok"] > 0, "%s: %d ok, %d interrupted, %d corrupt, %.1f MiB" %
                    (k, v["ok"], v["interrupted"], v["corrupt"], v["bytes"] / MIB)))
    out.append((not soak.unasked, "processes that died unasked: %s" %
                ([p.name for p in soak.unasked] or "none")))
    out.append((True, "client restarts: %d (%s)" % (len(soak.restarts), "; ".join(
        "at %.0f s %s" % (r[0], e) for r, e in zip(soak.restarts, soak.exits)))))
    load_cpu = [x[5] for x in soak.samples if x[1] == "load"]
    out.append((True, "load generator (this script): mean CPU %.0f %%" %
                (sum(load_cpu) / max(1, len(load_cpu)))))
    return out, limits


def write_outputs(soak, verdict, limits, a):
    svgplot.write(os.path.join(a.out, "soak.svg"), soak.samples, ROLES + ("load",),
                  soak.restarts,
                  (soak.warm_end, soak.warm_resume), limits,
                  "ringlet soak: %g min, %s" % (a.minutes, time.strftime("%Y-%m-%d %H:%M UTC",
                                                                         time.gmtime())))
    ok = all(v for v, _ in verdict)
    text = "ringlet soak, %g minutes, %s, git %s\nbounds: %s\n" % (
        a.minutes, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), rt_git(), BOUNDS)
    text += "".join("%s %s\n" % ("ok  " if v else "FAIL", line) for v, line in verdict)
    text += "soak: %s (samples.csv, soak.svg and the process logs in %s)\n" % (
        "PASS" if ok else "FAIL", a.out)
    with open(os.path.join(a.out, "summary.txt"), "w") as f:
        f.write(text)
    return ok, text


def rt_git():
    import subprocess
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=rt.REPO,
                              stdout=subprocess.PIPE, check=True).stdout.decode().strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description="ringlet soak (see the module comment)")
    ap.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", 30)))
    ap.add_argument("--restart-every", type=float, default=0,
                    help="seconds between client restarts (default: 180, at most a 1/4 run)")
    ap.add_argument("--warmup", type=float, default=0.2, help="warm-up share of the run")
    ap.add_argument("--out", default="", help="output directory (default build/soak/<time>)")
    a = ap.parse_args()
    if a.minutes < 1:
        ap.error("--minutes: at least 1")
    a.restart_every = a.restart_every or min(180.0, a.minutes * 60 / 4)
    a.out = os.path.abspath(a.out or os.path.join(
        rt.REPO, os.environ.get("RINGLET_BUILD", "build"), "soak",
        time.strftime("%Y%m%d-%H%M%S", time.gmtime())))
    os.makedirs(a.out, exist_ok=True)
    h = rt.Harness("soak")
    try:
        soak = run(h, a)
    except Exception:
        import traceback
        traceback.print_exc()
        h.fail("the soak broke off")
    verdict, limits = check(soak)
    for p in h.procs:
        try:
            shutil.copyfile(p.logpath, os.path.join(a.out, os.path.basename(p.logpath)))
        except OSError:
            pass
    ok, text = write_outputs(soak, verdict, limits, a)
    rt.log(text.rstrip())
    h.cleanup()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
