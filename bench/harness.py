#!/usr/bin/env python3
"""ringlet benchmark harness (python3, standard library only). Run through bench/run.sh.

Starts one upstream (`loadgen serve`, on 127.0.0.2), every path in front of it (direct,
haproxy one hop, socat one hop, and each tunnel of bench/tunnels/*.conf, ringlet among
them), then runs the scenarios with `loadgen` as the client. Within a scenario every figure
is measured for every path in turn, repetition after repetition (A B C A B C ...), so slow
drifts of the machine hit all paths alike. Writes results.json (every sample, the machine,
the exact commands), summary.md (one table per scenario, ratios to direct from the same
run) and PNG plots (gnuplot) into $BENCH_OUT/<timestamp>/.

Everything listens and connects on 127.0.0.0/8 only. Every wait has a deadline.
"""
import hashlib
import json
import os
import platform
import queue
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(REPO, "bench")
UPSTREAM_HOST = "127.0.0.2"
PUBLIC_HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MAGIC = 0x31474C52  # loadgen's "RLG1"
OP_RR = 3
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

SCENARIOS = {1: "bulk", 2: "rr", 3: "churn", 4: "scale", 5: "slow", 6: "federation",
             7: "hol", 8: "scaling", 9: "sockmap", 10: "fleet"}
FLEET = 10  # the fleet scenario: ringlet only, its own server, clients and upstream
# What BENCH_QUICK=1 runs when BENCH_SCENARIOS does not say: 7, 8 and 9 would take the quick
# profile well past its ~2 minute budget (it is at about 2 min with 1-6 alone).
QUICK_DEFAULT = [1, 2, 3, 4, 5, 6]
# BoringSSL's own AES-128-GCM speed (`bssl speed`), the baseline of the TLS paths: results.json
# scenario "crypto", this case, path "bssl".
BSSL_CASE = "AES-128-GCM 16 KiB seal"
BSSL_DESC = "AES-128-GCM (16384 bytes) seal"
TITLES = {
    "idle": "Idle memory (each fresh start of a path, before any stream)",
    "bulk": "1. Bulk throughput",
    "rr": "2. Request/response latency (64 B requests, fixed concurrency)",
    "churn": "3. Connection churn (connect, one request, close)",
    "scale": "4. Scale: idle streams, then a low request rate over all of them",
    "slow": "5. Slow consumer (reader stops while the upstream sends)",
    "federation": "6. Federation-shaped response (a pause, then a large body)",
    "hol": "7. Head-of-line: small requests while a bulk download shares the tunnel",
    "scaling": "8. Shard scaling: parallel bulk streams, 1 server shard vs 2",
    "sockmap": "9. Sockmap steering of the local hops: --sockmap on against off and direct",
    "fleet": "10. Fleet: N named tunnels on one server, N ringlet clients, a reload",
}
# BENCH_BASE=<rev>: path BASE_PATH is the BASE_OF template run with ringlet built at that git
# revision (into BASE_DIR/<commit>/), beside BASE_OF itself (a refactor's "no speed change").
BASE_PATH = "ringlet-base"
BASE_OF = "ringlet"
BASE_DIR = "build-base"
# Scenario 9's cgroup-v2 directories are named CGROUP_PREFIX + the harness's pid.
CGROUP_PREFIX = "ringlet-bench-"
# ringlet_sockmap_fallbacks_total reasons of a hop that was steered and moved to TCP later
# (its reader fell 4 MiB behind); every other reason is a hop that never was steered.
MID_FALLBACKS = {"slow_reader"}


# ---- configuration -----------------------------------------------------------------------


def env_flag(name):
    return os.environ.get(name, "") not in ("", "0", "no", "false")


def profile():
    """Durations and sizes of the run: default, BENCH_QUICK=1 or BENCH_TINY=1."""
    p = dict(
        name="default",
        reps=3,
        long_reps=3,  # scenarios 4-6, whose single runs take seconds by their nature
        bulk_s=2.0,
        bulk_cases=[("up", 1), ("down", 1), ("up", 8), ("down", 8)],
        iperf3_streams=[1, 8],  # the bulk cases iperf3 also runs (the calibration)
        rr_s=2.0,
        rr_conc=16,
        rr_sizes=[KIB, 64 * KIB, MIB],
        churn_s=2.0,
        churn_conc=16,
        scale_n=10000,
        scale_idle_s=2.0,
        scale_active_s=3.0,
        scale_rate=1000.0,
        slow_bytes=GIB,
        slow_pause_s=3.0,
        fed_bytes=250 * 1000 * 1000,
        fed_delay_ms=5000,
        bssl_timeout=1,  # `bssl speed -timeout` (whole seconds per test; 0: about 1000 calls)
        bssl_reps=3,  # `bssl speed` runs (about 3 s each), spread over the bulk repetitions
        # 7. head-of-line: rr (hol_conc connections, 64 B requests, hol_resp answers) for hol_s
        # idle, then hol_s again while one bulk download runs on the same tunnel lane; the
        # download starts hol_lead_s before the loaded rr and ends hol_tail_s after it.
        hol_s=2.0,
        hol_conc=4,
        hol_resp=KIB,
        hol_lead_s=0.5,
        hol_tail_s=0.5,
        # 8. shard scaling: scaling_streams bulk streams per direction, scaling_s each.
        scaling_s=2.0,
        scaling_streams=8,
        scaling_dirs=["down", "up"],
        # 9. sockmap steering: bulk (sockmap_bulk_cases) and request/response (sockmap_rr_sizes
        # answers, sockmap_rr_conc connections) for sockmap_s each, through direct, ringlet
        # (--sockmap off) and ringlet-sockmap (--sockmap on): 3 paths x 7 cases x 3 reps,
        # about 2 min 10 s on 2 CPUs.
        sockmap_s=2.0,
        sockmap_bulk_cases=[("up", 1), ("down", 1), ("up", 8), ("down", 8)],
        sockmap_rr_sizes=[KIB, 64 * KIB, MIB],
        sockmap_rr_conc=16,
        # 10. fleet: fleet_n tunnels (--tunnels), one real `ringlet client --lanes 1
        # --shards 1` each; fleet_probes /connect upgrades at 1 and at fleet_n connected
        # tunnels; fleet_sample paced streams (fleet_rate bytes/s each) carried while
        # fleet_reloads reloads change one other tunnel's token each. long_reps cold starts.
        fleet_n=1000,
        fleet_probes=200,
        fleet_sample=10,
        fleet_rate=4 * MIB,
        fleet_reloads=3,
        fleet_connect_timeout=60.0,
    )
    if env_flag("BENCH_QUICK"):
        p.update(name="quick", bulk_s=0.5, rr_s=0.5, churn_s=0.5, long_reps=1,
                 iperf3_streams=[1], bssl_reps=1,
                 scale_idle_s=1.0, scale_active_s=1.5, slow_pause_s=1.5,
                 hol_s=1.0, hol_lead_s=0.3, hol_tail_s=0.3, scaling_s=1.0,
                 scaling_dirs=["down"], sockmap_s=0.5, fleet_probes=100)
    if env_flag("BENCH_TINY"):
        p.update(name="tiny", reps=1, long_reps=1, bulk_s=0.3,
                 bulk_cases=[("up", 1), ("down", 1)], rr_s=0.3, rr_conc=4,
                 rr_sizes=[KIB, 64 * KIB], churn_s=0.3, churn_conc=4, scale_n=200,
                 scale_idle_s=0.3, scale_active_s=0.5, scale_rate=200.0,
                 slow_bytes=32 * MIB, slow_pause_s=0.5, fed_bytes=10 * 1000 * 1000,
                 fed_delay_ms=300, bssl_timeout=0, bssl_reps=1,
                 hol_s=0.3, hol_lead_s=0.2, hol_tail_s=0.2, scaling_s=0.3,
                 scaling_dirs=["down"], sockmap_s=0.3,
                 sockmap_bulk_cases=[("up", 1), ("down", 1)], sockmap_rr_sizes=[KIB],
                 sockmap_rr_conc=4, fleet_n=20, fleet_probes=30, fleet_sample=3,
                 fleet_rate=MIB, fleet_reloads=2)
    if os.environ.get("BENCH_REPS"):
        p["reps"] = p["long_reps"] = max(1, int(os.environ["BENCH_REPS"]))
    p["bssl_reps"] = min(p["bssl_reps"], p["reps"])
    return p


def size_name(n):
    if n >= MIB and n % MIB == 0:
        return "%d MiB" % (n // MIB)
    if n >= KIB and n % KIB == 0:
        return "%d KiB" % (n // KIB)
    return "%d B" % n


# ---- processes -----------------------------------------------------------------------------


class Proc:
    """A background process in its own process group, output to a log file."""

    def __init__(self, name, argv, logdir, stdout_to_log=True):
        self.name = name
        self.argv = argv
        self.log = os.path.join(logdir, re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".log")
        self.logf = open(self.log, "ab")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=self.logf if stdout_to_log else subprocess.DEVNULL,
                                  stderr=self.logf, start_new_session=True)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, grace=3.0):
        if self.alive():
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)  # the group: forked children too (socat)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.logf.close()

    def log_tail(self, n=5):
        try:
            with open(self.log, "rb") as f:
                lines = f.read()[-8192:].decode(errors="replace").splitlines()
            return lines[-n:]
        except OSError:
            return []


ALL_PROCS = []
AT_CLEANUP = []  # callables run after the processes are stopped (scenario 9's cgroup)


def cleanup(*_):
    for p in list(ALL_PROCS):
        p.stop(grace=1.0)
    ALL_PROCS.clear()
    while AT_CLEANUP:
        try:
            AT_CLEANUP.pop()()
        except Exception as e:  # cleanup goes on whatever one step raises
            sys.stderr.write("bench: cleanup: %s\n" % e)


def start(name, argv, logdir, **kw):
    p = Proc(name, argv, logdir, **kw)
    ALL_PROCS.append(p)
    return p


def stop(p):
    p.stop()
    if p in ALL_PROCS:
        ALL_PROCS.remove(p)


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    return s[s.rindex(")") + 2:].split()


def _children(pid):
    """Descendants of pid (one /proc scan)."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(d))[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pids, tree=False):
    """utime+stime of pids (all their threads) plus reaped children (cutime+cstime), and of
    their live descendants when tree is set (socat forks one child per connection)."""
    total = 0
    for pid in pids:
        procs = [pid] + (_children(pid) if tree else [])
        for i, q in enumerate(procs):
            try:
                f = _stat_fields(q)
            except (OSError, IndexError):
                continue
            total += int(f[11]) + int(f[12])
            if i == 0:
                total += int(f[13]) + int(f[14])
    return total / CLK_TCK


def status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_kib(pid, tree=False):
    pids = [pid] + (_children(pid) if tree else [])
    vals = [status_kib(p, "VmRSS") for p in pids]
    vals = [v for v in vals if v is not None]
    return sum(vals) if vals else None


def reset_peak(pid, tree=False):
    """Start a new peak-RSS measurement: writing 5 to /proc/PID/clear_refs resets VmHWM
    (proc(5)). False when it cannot be (then no peak is reported)."""
    ok = True
    for q in [pid] + (_children(pid) if tree else []):
        try:
            with open("/proc/%d/clear_refs" % q, "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def peak_kib(pid, tree=False):
    """VmHWM of pid (and its children with tree): the peak RSS since reset_peak."""
    pids = [pid] + (_children(pid) if tree else [])
    vals = [status_kib(p, "VmHWM") for p in pids]
    vals = [v for v in vals if v is not None]
    return sum(vals) if vals else None


def thread_cpu(pid):
    """utime+stime seconds of each shard thread of a ringlet process: {shard: seconds}
    (threads named ringlet-sN, /proc/PID/task/*/comm)."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for t in tids:
        try:
            with open("/proc/%d/task/%s/comm" % (pid, t)) as f:
                m = re.search(r"-s(\d+)$", f.read().strip())
            if m:
                with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                    st = f.read()
                fl = st[st.rindex(")") + 2:].split()
                out[int(m.group(1))] = (int(fl[11]) + int(fl[12])) / CLK_TCK
        except (OSError, ValueError, IndexError):
            continue
    return out


def shard_counters(text):
    """ringlet's per-shard /metrics counters: {metric: {shard: value}} for
    ringlet_shard_busy_seconds_total and ringlet_shard_completions_total."""
    out = {}
    for line in (text or "").splitlines():
        m = re.match(r'(ringlet_shard_(?:busy_seconds|completions)_total)\{shard="(\d+)"\}'
                     r"\s+(\S+)", line)
        if m:
            out.setdefault(m.group(1), {})[int(m.group(2))] = float(m.group(3))
    return out


def delta(after, before):
    return {k: after[k] - before.get(k, 0) for k in after}


def sockmap_counters(text):
    """ringlet's --sockmap figures from /metrics: {active, hops_steered, sockets, bytes,
    messages, fallbacks: {reason: n}}, or None when the text has none."""
    out, fb = {}, {}
    for line in (text or "").splitlines():
        m = re.match(r'ringlet_sockmap_(\w+?)(?:_total)?(?:\{reason="(\w+)"\})?\s+(\S+)$', line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        if m.group(1) == "fallbacks" and m.group(2):
            fb[m.group(2)] = v
        else:
            out[m.group(1)] = v
    if not out:
        return None
    out["fallbacks"] = fb
    return out


# ---- cgroups (scenario 9) -------------------------------------------------------------------


def cgroup2_mount():
    """Where the cgroup-v2 hierarchy is mounted (/proc/self/mountinfo), or None."""
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                if right.startswith("cgroup2 "):
                    return left.split()[4]
    except (OSError, IndexError):
        pass
    return None


def in_cgroup(cg, argv=()):
    """argv run inside the cgroup-v2 directory cg: a shell writes its pid to cg/cgroup.procs,
    then execs argv (the same pid, so the harness measures and stops the program itself)."""
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg] + list(argv)


def cgroup_pids(cg):
    try:
        with open(os.path.join(cg, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        return []


def remove_cgroup(cg, timeout=10.0):
    """Removes a cgroup directory the harness made. Only the harness puts processes in it,
    so whatever is still there (a load generator left by an interrupted run) is its own:
    those pids are killed one by one first. Returns None or why it could not."""
    if not os.path.isdir(cg):
        return None
    end = time.monotonic() + timeout
    while True:
        for pid in cgroup_pids(cg):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            os.rmdir(cg)
            return None
        except FileNotFoundError:
            return None
        except OSError as e:
            if time.monotonic() > end:
                return "cannot remove %s: %s (pids %s)" % (cg, e, cgroup_pids(cg))
        time.sleep(0.05)


# ---- ports and probes ----------------------------------------------------------------------


def _bindable(host, port):
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


def free_port(*hosts, taken=set()):
    """A port free on every host (ringlet's data plane and its upstream share the number)."""
    for _ in range(500):
        with socket.socket() as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        if port not in taken and all(_bindable(h, port) for h in hosts[1:]):
            taken.add(port)
            return port
    raise RuntimeError("no free port")


def _accepts(host, port):
    """Something listens on host:port. A TCP self-connect (the kernel picking port itself as
    the source of a dial to a free loopback port) is not a listener."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            return s.getsockname() != s.getpeername()
    except OSError:
        return False


def probe(host, port, timeout=2.0):
    """One loadgen request through the path: 64-byte RR message, 16-byte answer."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(struct.pack("<IHHQ", MAGIC, OP_RR, 0, 16) + bytes(48))
            got = b""
            while len(got) < 16:
                b = s.recv(16 - len(got))
                if not b:
                    return False
                got += b
            return True
    except OSError:
        return False


def wait_until(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


# ---- paths -----------------------------------------------------------------------------------


class Path:
    """Something between the load generator and the upstream. kind: direct, proxy (one hop:
    haproxy, socat) or tunnel (a template). procs are the processes whose CPU and memory
    are measured: role -> Proc."""

    def __init__(self, name, kind, upstream_port):
        self.name = name
        self.kind = kind
        self.upstream_port = upstream_port
        self.host, self.port = UPSTREAM_HOST, upstream_port
        self.procs = {}
        self.commands = {}
        self.tree = False  # count forked children (socat)
        self.scale = True
        self.error = None
        self.starts = 0
        self.tls = False  # carries TLS: the run also measures `bssl speed` as its baseline
        # Prefix of the load generator's command line through this path (scenario 9's
        # ringlet-sockmap: in_cgroup, so the consumer's sockets are seen by the programs).
        self.client_wrap = []

    def runs(self, scenario, prof_name):
        """Whether the path takes part in the scenario under this profile."""
        return scenario != FLEET  # 10 measures ringlet's own fleet, no other path

    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def pids(self):
        return [p.pid for p in self.procs.values()]

    def start(self, ctx):
        self.starts += 1

    def stop(self):
        for p in self.procs.values():
            stop(p)
        self.procs = {}

    def healthy(self):
        return all(p.alive() for p in self.procs.values())

    def ready(self, timeout=15.0):
        if not wait_until(lambda: not self.healthy() or probe(self.host, self.port),
                          timeout, 0.1) or not self.healthy():
            tails = {r: p.log_tail() for r, p in self.procs.items()}
            why = "exited" if not self.healthy() else "no request went through in %.0fs" % timeout
            self.error = "%s: %s" % (why, json.dumps(tails))
            return False
        return True


class Direct(Path):
    def __init__(self, upstream_port):
        super().__init__("direct", "direct", upstream_port)


class Haproxy(Path):
    def __init__(self, upstream_port, nofile):
        super().__init__("haproxy", "proxy", upstream_port)
        # Two descriptors per stream, two per splice pipe, some of haproxy's own: haproxy
        # refuses to start when maxconn needs more than the open-file limit.
        self.maxpipes = 256
        self.maxconn = max(100, min(30000, (nofile - 300 - 2 * self.maxpipes) // 2))

    def runs(self, scenario, prof_name):
        return scenario not in (8, 9, FLEET)  # 8-10 are about ringlet's own configurations

    def start(self, ctx):
        super().start(ctx)
        self.host, self.port = PUBLIC_HOST, free_port(PUBLIC_HOST)
        cfg = os.path.join(ctx.workdir, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("""global
    maxconn %d
    maxpipes %d
    nbthread %d
defaults
    mode tcp
    option splice-auto
    timeout connect 5s
    timeout client 300s
    timeout server 300s
frontend bench
    bind %s:%d
    maxconn %d
    default_backend upstream
backend upstream
    server upstream %s:%d maxconn %d
""" % (self.maxconn, self.maxpipes, os.cpu_count() or 1, self.host, self.port, self.maxconn, UPSTREAM_HOST,
                self.upstream_port, self.maxconn))
        argv = ["haproxy", "-db", "-f", cfg]
        self.commands = {"proxy": argv, "config": open(cfg).read()}
        self.procs = {"proxy": start("haproxy", argv, ctx.logdir)}


class Socat(Path):
    def __init__(self, upstream_port):
        super().__init__("socat", "proxy", upstream_port)
        self.tree = True
        self.scale = False  # a process per connection: 10k streams would be 10k processes

    def runs(self, scenario, prof_name):
        # The one-hop reference of 7 and 8 is haproxy; 9 compares ringlet with direct only.
        return scenario not in (7, 8, 9, FLEET)

    def start(self, ctx):
        super().start(ctx)
        self.host, self.port = PUBLIC_HOST, free_port(PUBLIC_HOST)
        # 128 KiB transfers and TCP_NODELAY on both sockets: with its defaults (8 KiB,
        # Nagle) socat stalls 40 ms on every multi-segment response (delayed ACK).
        argv = ["socat", "-b", "131072",
                "TCP-LISTEN:%d,bind=%s,reuseaddr,fork,backlog=4096,nodelay" % (self.port,
                                                                              self.host),
                "TCP:%s:%d,nodelay" % (UPSTREAM_HOST, self.upstream_port)]
        self.commands = {"proxy": argv}
        self.procs = {"proxy": start("socat", argv, ctx.logdir)}


def parse_template(fn):
    """A tunnel template (bench/tunnels/*.conf; format at the top of ringlet.conf) -> dict.
    `key = <<WORD` starts a multi-line value: the lines up to one that is WORD alone, kept
    as they are (a config file's body: server_config, client_config)."""
    t = {}
    with open(fn) as f:
        lines = iter(f.read().splitlines())
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        k, v = (x.strip() for x in line.split("=", 1))
        m = re.fullmatch(r"<<\s*(\w+)", v)
        if m:
            body = []
            for b in lines:
                if b.strip() == m.group(1):
                    break
                body.append(b)
            else:
                raise ValueError("%s: %s: no line %r ends its value" % (fn, k, m.group(1)))
            v = "\n".join(body) + "\n"
        t[k] = v
    t.setdefault("name", os.path.splitext(os.path.basename(fn))[0])
    t["file"] = os.path.relpath(fn, REPO)
    return t


# Template keys whose value is a config file's body, written into the path's {state_dir}
# (placeholders substituted) before its server and client start; the placeholder of the
# same name is that file's path. config_ext (default conf) is the files' extension.
CONFIG_KEYS = ("server_config", "client_config")


def peer_bin_path(env=None):
    """PEER_BIN=dir[:dir...]: directories holding other tunnels' binaries (bench/README.md,
    "Peer tunnels"), put in front of PATH for the templates' `requires` and commands.
    Returns the new PATH, or None when PEER_BIN is unset."""
    env = os.environ if env is None else env
    dirs = [os.path.abspath(d) for d in env.get("PEER_BIN", "").split(":") if d]
    if not dirs:
        return None
    return ":".join(dirs + [d for d in env.get("PATH", os.defpath).split(":") if d])


def split_args(spec):
    """A template's `server args | client args` value -> (server argv, client argv)."""
    srv, _, cli = (spec or "").partition("|")
    return shlex.split(srv), shlex.split(cli)


class Tunnel(Path):
    def __init__(self, tpl, upstream_port, ringlet):
        super().__init__(tpl["name"], "tunnel", upstream_port)
        self.tpl = tpl
        self.ringlet = ringlet
        self.scale = tpl.get("scale", "yes").lower() not in ("no", "false", "0")
        self.tls = tpl.get("tls", "no").lower() in ("yes", "true", "1")
        self.extra = ([], [])  # arguments appended to the server's and the client's command
        self.variant_of = None
        self.variant_scenario = None  # the scenario a variant is measured in
        self.control_port = self.state_dir = None
        self.wrap = []  # prefix of the server's and client's command lines (in_cgroup)
        self.cgroup = None  # {cgroup} of the template (scenario 9)
        self.client_metrics_port = None  # {metrics_port}: the client's --metrics-addr port
        self.configs = {}  # server_config / client_config key -> the file written for it

    def scaling_configs(self):
        """Scenario 8's configurations: [(label, server args, client args)] from the
        template's `scaling_LABEL = server args | client args` keys, in key order."""
        return [(k[len("scaling_"):],) + split_args(v) for k, v in self.tpl.items()
                if k.startswith("scaling_")]

    def variant(self, label, srv_args, cli_args, scenario="scaling"):
        """The same tunnel with extra arguments, measured as path NAME-LABEL (scenario 8;
        scenario 9: NAME-sockmap)."""
        v = Tunnel(self.tpl, self.upstream_port, self.ringlet)
        v.name = "%s-%s" % (self.name, label)
        v.extra = (list(srv_args), list(cli_args))
        v.variant_of = self.name
        v.variant_scenario = scenario
        return v

    def sockmap_config(self):
        """Scenario 9's steered configuration: (server args, client args) from the
        template's `sockmap = server args | client args` key, or None."""
        return split_args(self.tpl["sockmap"]) if self.tpl.get("sockmap") else None

    def metrics_text(self, path="/metrics", timeout=2.0, port=None):
        """GET path on the tunnel server's control port (or on port: the client's
        --metrics-addr) with the run's token (ringlet's /metrics and /status); None when
        it does not answer."""
        import ssl
        import urllib.request
        if port:
            req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                         headers={"Authorization": "Bearer " + self.token})
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    return r.read().decode(errors="replace")
            except (OSError, ValueError):
                return None
        if not self.control_port:
            return None
        ctx = None
        if self.tls:  # ringlet-wss: auto-TLS, verified against the CA in its state dir
            ca = os.path.join(self.state_dir or "", "ca.crt")
            if not os.path.exists(ca):
                return None
            ctx = ssl.create_default_context(cafile=ca)
        req = urllib.request.Request("%s://127.0.0.1:%d%s" % (
            "https" if self.tls else "http", self.control_port, path),
            headers={"Authorization": "Bearer " + self.token})
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                return r.read().decode(errors="replace")
        except (OSError, ValueError):
            return None

    def scenario_list(self, prof_name):
        spec = (self.tpl.get({"quick": "quick_scenarios",
                              "tiny": "tiny_scenarios"}.get(prof_name, ""))
                or self.tpl.get("scenarios"))
        if not spec:
            return sorted(SCENARIOS)
        return sorted({int(x) for x in re.split(r"[ ,]+", spec) if x})

    def runs(self, scenario, prof_name):
        if scenario == FLEET:  # the fleet scenario starts ringlet itself (s_fleet)
            return self.name == "ringlet" and FLEET in self.scenario_list(prof_name)
        if scenario == 8 and not self.scaling_configs():
            return False
        if scenario == 9 and not self.sockmap_config():
            return False
        return scenario in self.scenario_list(prof_name)

    def subst(self, s, vals):
        return re.sub(r"\{(\w+)\}", lambda m: str(vals[m.group(1)]), s)

    def missing(self):
        for req in self.tpl.get("requires", "").split():
            req = req.replace("{ringlet}", self.ringlet)
            if not (shutil.which(req) or (os.path.isfile(req) and os.access(req, os.X_OK))):
                return req
        return None

    def start(self, ctx):
        super().start(ctx)
        vals = dict(control_port=None, upstream_host=UPSTREAM_HOST,
                    upstream_port=self.upstream_port, token_file=ctx.token_file,
                    token=ctx.token, ringlet=self.ringlet,
                    state_dir=os.path.join(ctx.workdir, re.sub(r"[^A-Za-z0-9_.-]", "_",
                                                               self.name) + "-state"),
                    cgroup=self.cgroup or "", metrics_port="")
        if any("{metrics_port}" in a for a in
               [self.tpl["server"], self.tpl["client"]] + self.extra[0] + self.extra[1]):
            vals["metrics_port"] = free_port(PUBLIC_HOST)
        self.client_metrics_port = vals["metrics_port"] or None
        os.makedirs(vals["state_dir"], mode=0o700, exist_ok=True)
        # control_port = N: a tunnel whose control port is fixed (bore: 7835).
        vals["control_port"] = (int(self.subst(self.tpl["control_port"], vals))
                                if "control_port" in self.tpl else free_port(PUBLIC_HOST))
        vals["public_port"] = (int(self.subst(self.tpl["public_port"], vals))
                               if "public_port" in self.tpl else free_port(PUBLIC_HOST))
        self.write_configs(vals)
        self.host = self.subst(self.tpl.get("public_host", PUBLIC_HOST), vals)
        self.port = vals["public_port"]
        srv = self.wrap + shlex.split(self.subst(self.tpl["server"], vals)) + [
            self.subst(a, vals) for a in self.extra[0]]
        cli = self.wrap + shlex.split(self.subst(self.tpl["client"], vals)) + [
            self.subst(a, vals) for a in self.extra[1]]
        self.control_port, self.token = vals["control_port"], ctx.token
        self.state_dir = vals["state_dir"]
        self.commands = {"server": srv, "client": cli, "template": self.tpl["file"]}
        for key, fn in self.configs.items():
            with open(fn) as f:
                self.commands[key] = f.read()
        if self.variant_of:
            self.commands["variant_of"] = self.variant_of
        if self.cgroup:
            self.commands["cgroup"] = self.cgroup
        self.procs = {"server": start(self.name + "-server", srv, ctx.logdir)}
        # Start the client once the server accepts on the control port, so it does not
        # begin with a refused dial and a reconnect back-off, and (TLS) once the server's
        # CA file exists: the client loads it at start and refuses to run without it. A
        # connect alone is not proof (a parallel test can briefly hold a port free_port
        # handed out). (If it never does, the readiness check below reports it.)
        ctl = vals["control_port"]
        ca = os.path.join(self.state_dir, "ca.crt")

        def server_up():
            if not _accepts(PUBLIC_HOST, ctl):
                return False
            return not self.tls or os.path.exists(ca)
        wait_until(lambda: not self.procs["server"].alive() or server_up(), 10, 0.02)
        self.procs["client"] = start(self.name + "-client", cli, ctx.logdir)

    def write_configs(self, vals):
        """server_config / client_config: each written (placeholders substituted) into
        {state_dir} as server.EXT / client.EXT; vals[key] becomes the file's path."""
        ext = self.tpl.get("config_ext", "conf")
        for key in CONFIG_KEYS:
            vals[key] = ""
        for key in CONFIG_KEYS:
            if key not in self.tpl:
                continue
            fn = os.path.join(vals["state_dir"], "%s.%s" % (key.split("_")[0], ext))
            fd = os.open(fn, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.subst(self.tpl[key], vals))
            vals[key] = fn
            self.configs[key] = fn

    def ready(self, timeout=15.0):
        pat = self.tpl.get("ready")
        if pat:
            cli = self.procs["client"]

            def seen():
                try:
                    with open(cli.log, "rb") as f:
                        return pat.encode() in f.read()
                except OSError:
                    return False

            if not wait_until(lambda: not self.healthy() or seen(), timeout, 0.05) or \
                    not self.healthy():
                tails = {r: p.log_tail() for r, p in self.procs.items()}
                why = "exited" if not self.healthy() else "no %r from the client in %.0fs" % (
                    pat, timeout)
                self.error = "%s: %s" % (why, json.dumps(tails))
                return False
        return super().ready(timeout)


# ---- scenario 10 (fleet) helpers -------------------------------------------------------------


def fleet_get(port, token, path, timeout=2.0):
    """GET path on a plain ws:// server's control port with the Bearer token: the text,
    or None."""
    import urllib.request
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path),
                                 headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read().decode(errors="replace")
    except (OSError, ValueError):
        return None


def prom_value(text, name, **labels):
    """The value of the Prometheus series name{labels} (exactly those labels), or None."""
    for line in (text or "").splitlines():
        mt = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if not mt or mt.group(1) != name:
            continue
        if dict(re.findall(r'(\w+)="([^"]*)"', mt.group(2) or "")) == {
                k: str(v) for k, v in labels.items()}:
            return float(mt.group(3))
    return None


def resets_sent(text):
    """Sum of ringlet_stream_resets_total{direction="sent",...} (every reason), or None
    when there is no /metrics text."""
    if text is None:
        return None
    tot = 0.0
    for line in text.splitlines():
        mt = re.match(r"^ringlet_stream_resets_total\{([^}]*)\} (\S+)$", line)
        if mt and 'direction="sent"' in mt.group(1):
            tot += float(mt.group(2))
    return tot


def pct(sorted_vals, p):
    """Nearest-rank percentile of a sorted list."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


def connect_probes(port, token, count, timeout=5.0):
    """count sequential /connect WebSocket upgrades with the token, each on a new TCP
    connection closed once the answer's status line is in: microseconds from connect() to
    the 101, or None when one is answered otherwise."""
    req = ("GET /connect HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n" % (port, token)
           ).encode()
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(req)
            got = b""
            while b"\r\n" not in got:
                b = s.recv(4096)
                if not b:
                    break
                got += b
            t1 = time.perf_counter()
        if not got.startswith(b"HTTP/1.1 101"):
            return None
        out.append((t1 - t0) * 1e6)
        time.sleep(0.002)  # let the server drop the abandoned session
    return out


def wait_log(fn, offset, patterns, timeout):
    """Polls fn (from byte offset) every millisecond until every pattern has matched a line:
    [(monotonic time first seen, the line) or None per pattern]."""
    found = [None] * len(patterns)
    rx = [re.compile(p) for p in patterns]
    end = time.monotonic() + timeout
    buf = ""
    with open(fn, "rb") as f:
        f.seek(offset)
        while True:
            chunk = f.read()
            now = time.monotonic()
            if chunk:
                buf += chunk.decode(errors="replace")
                lines = buf.split("\n")
                buf = lines.pop()
                for line in lines:
                    for i, r in enumerate(rx):
                        if found[i] is None and r.search(line):
                            found[i] = (now, line)
            if all(found) or now > end:
                return found
            time.sleep(0.001)


def fleet_stop(procs, timeout=10.0):
    """Stops many processes at once: SIGTERM to every group, a shared deadline, SIGKILL to
    the groups still there."""
    for p in procs:
        if p.alive():
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
    end = time.monotonic() + timeout
    for p in procs:
        try:
            p.p.wait(timeout=max(0.01, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for p in procs:
        stop(p)  # SIGKILL to what is left of the group, the log closed


class PacedSink(threading.Thread):
    """One stream through a tunnel binding to `loadgen serve`'s SINK: sends rate bytes/s
    in 32 KiB chunks until stop is set, then half-closes and reads the upstream's count of
    the bytes it received. sent, counted (None if never answered), error (a reset, ...)."""

    def __init__(self, host, port, rate):
        super().__init__(daemon=True)
        self.addr, self.rate = (host, port), rate
        self.stop = threading.Event()
        self.sent, self.counted, self.error = 0, None, None

    def run(self):
        chunk = bytes(range(256)) * 128
        try:
            with socket.create_connection(self.addr, timeout=10) as s:
                s.sendall(struct.pack("<IHHQ", MAGIC, 1, 0, 0) + bytes(48))  # OP_SINK
                t0 = time.monotonic()
                while not self.stop.is_set():
                    s.sendall(chunk)
                    self.sent += len(chunk)
                    ahead = self.sent / self.rate - (time.monotonic() - t0)
                    if ahead > 0:
                        self.stop.wait(ahead)
                s.shutdown(socket.SHUT_WR)
                got = b""
                while len(got) < 8:
                    b = s.recv(8 - len(got))
                    if not b:
                        break
                    got += b
                if len(got) == 8:
                    self.counted = struct.unpack("<Q", got)[0]
                else:
                    self.error = "no byte count from the upstream"
        except OSError as e:
            self.error = "%s: %s" % (type(e).__name__, e)


# ---- the run -------------------------------------------------------------------------------


def median_stats(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return None
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "n": len(vals)}


def host_busy_s():
    """Busy seconds of all CPUs since boot (everything but idle and iowait), from
    /proc/stat; None where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return None


def cpu_busy(seconds=1.0):
    """Share of all CPUs busy (not idle or iowait) over `seconds`, from /proc/stat: what
    else runs on the machine when sampled while the harness itself is quiet."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    try:
        t0, i0 = snap()
        time.sleep(seconds)
        t1, i1 = snap()
    except (OSError, ValueError, IndexError):
        return None
    return round(100.0 * (1 - (i1 - i0) / (t1 - t0)), 1) if t1 > t0 else None


def cmd_version(argv, pattern=None):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (out.stdout + out.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    if pattern:
        m = re.search(pattern, text)
        return m.group(0) if m else text.splitlines()[0] if text else None
    return text.splitlines()[0] if text else None


def dpkg_version(pkg):
    v = cmd_version(["dpkg-query", "-W", "-f=${Version}", pkg])
    return "%s %s" % (pkg, v) if v and "no packages" not in v else None


def owner_package(path):
    """The Debian package (and version) a file belongs to, or None."""
    out = cmd_version(["dpkg-query", "-S", os.path.realpath(path)])
    m = re.match(r"([^:\s]+)(:\S+)?: ", out or "")
    return dpkg_version(m.group(1)) if m else None


def linked_libcrypto(binary):
    """The libcrypto a dynamically linked binary loads (from ldd), or None."""
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"libcrypto\S*\s*=>\s*(\S+)", out)
    return os.path.realpath(m.group(1)) if m else None


def find_bssl():
    """BoringSSL's command-line tool: $BSSL_BIN, else `bssl` or Debian's `bssl-tool`
    (package android-boringssl). Returns (path or None, reason when None)."""
    env = os.environ.get("BSSL_BIN")
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return os.path.abspath(env), None
        return None, "BSSL_BIN=%s is not an executable file" % env
    for name in ("bssl", "bssl-tool"):
        p = shutil.which(name)
        if p:
            return p, None
    return None, ("neither bssl nor bssl-tool found on PATH (Debian: apt-get install "
                  "android-boringssl, which bench/deps.sh tries)")


def parse_bssl_speed(text):
    """The AES-128-GCM 16 KiB seal figure of `bssl speed` output, JSON (-json: a list of
    {description, numCalls, microseconds (its -help says timeInMicroseconds), bytesPerCall})
    or text ("Did N AES-128-GCM (16384 bytes) seal operations in Tus ..."). Returns
    {calls, us, bytes_per_call, bytes_per_s} or None."""
    try:
        rows = json.loads(text)
    except ValueError:
        rows = None
    if isinstance(rows, list):
        for r in rows:
            if isinstance(r, dict) and r.get("description") == BSSL_DESC:
                us = r.get("microseconds", r.get("timeInMicroseconds"))
                calls, per = r.get("numCalls"), r.get("bytesPerCall")
                if us and calls and per:
                    return {"calls": calls, "us": us, "bytes_per_call": per,
                            "bytes_per_s": calls * per / (us / 1e6)}
    m = re.search(r"Did (\d+) %s operations in (\d+)us" % re.escape(BSSL_DESC), text)
    if m and int(m.group(2)):
        calls, us = int(m.group(1)), int(m.group(2))
        return {"calls": calls, "us": us, "bytes_per_call": 16384,
                "bytes_per_s": calls * 16384 / (us / 1e6)}
    return None


def machine_info(ringlet, nofile):
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = status = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except OSError:
        pass
    try:
        with open("/etc/os-release") as f:
            status = dict(l.rstrip().split("=", 1) for l in f if "=" in l).get(
                "PRETTY_NAME", "").strip('"')
    except OSError:
        pass
    git = cmd_version(["git", "-C", REPO, "rev-parse", "--short=12", "HEAD"])
    dirty = cmd_version(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "os": status,
        "mem_mib": mem,
        "nofile_limit": nofile,
        "versions": {
            "ringlet": cmd_version([ringlet, "version"]),
            "haproxy": cmd_version(["haproxy", "-v"], r"HAProxy version \S+"),
            "socat": cmd_version(["socat", "-V"], r"socat version \S+"),
            "iperf3": cmd_version(["iperf3", "--version"], r"iperf \S+"),
            "gnuplot": cmd_version(["gnuplot", "--version"]),
            "boringssl": dpkg_version("android-libboringssl"),
            "python": platform.python_version(),
        },
        "git": {"head": git, "dirty": bool(dirty)},
    }


def file_sha256(fn):
    h = hashlib.sha256()
    try:
        with open(fn, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def wanted_paths():
    """The path names BENCH_PATHS selects, or None (every available path)."""
    want = os.environ.get("BENCH_PATHS", "").strip()
    return [w for w in re.split(r"[ ,]+", want) if w] if want else None


def build_base(rev):
    """ringlet built at git revision rev (BENCH_BASE), the binary of the ringlet-base path:
    the revision's tree is exported with `git archive` into a temporary directory and built
    there with its own Makefile (`make build/ringlet`; GIT_SHA set to the commit, so
    `ringlet version` names it), with this environment's CC and CFLAGS. The binary goes to
    BASE_DIR/<commit, 12 digits>/ringlet with the build's log beside it; a binary already
    there is reused, so each revision is built once (remove the directory to rebuild).
    Returns {rev, commit, binary, log, reused, build_s}; exits (status 1) when rev names no
    commit or the build fails."""
    r = subprocess.run(["git", "-C", REPO, "rev-parse", "--verify", "--quiet",
                        rev + "^{commit}"], capture_output=True, text=True)
    commit = r.stdout.strip()
    if r.returncode != 0 or not commit:
        sys.exit("bench: BENCH_BASE=%s names no commit of this repository" % rev)
    d = os.path.join(REPO, BASE_DIR, commit[:12])
    info = {"rev": rev, "commit": commit, "binary": os.path.join(d, "ringlet"),
            "log": os.path.join(d, "build.log"), "reused": True, "build_s": None}
    if os.access(info["binary"], os.X_OK):
        return info
    os.makedirs(d, exist_ok=True)
    sys.stderr.write("bench: building %s at %s (%s) for path %s; log %s\n" % (
        BASE_OF, rev, commit[:12], BASE_PATH, os.path.relpath(info["log"], REPO)))
    sys.stderr.flush()
    t0 = time.monotonic()
    # Outside the repository, so nothing in the build finds this checkout's .git.
    src = tempfile.mkdtemp(prefix="ringlet-base-%s-" % commit[:12])
    # The make that runs `make bench` passes its own flags and jobserver down; the base
    # build is a make of its own (its command-line variables still reach it as environment).
    env = {k: v for k, v in os.environ.items()
           if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    argv = ["make", "-C", src, "-j%d" % (os.cpu_count() or 1), "BUILD=build",
            "GIT_SHA=" + commit[:12], "build/ringlet"]
    try:
        with open(info["log"], "wb") as log:
            arch = subprocess.Popen(["git", "-C", REPO, "archive", "--format=tar", commit],
                                    stdout=subprocess.PIPE, stderr=log)
            untar = subprocess.run(["tar", "-x", "-C", src], stdin=arch.stdout, stderr=log)
            arch.stdout.close()
            if arch.wait() != 0 or untar.returncode != 0:
                rc = "git archive | tar failed"
            else:
                log.write(("$ %s\n" % " ".join(shlex.quote(a) for a in argv)).encode())
                log.flush()
                try:
                    rc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=log, env=env, timeout=1800).returncode
                except subprocess.TimeoutExpired:
                    rc = "timeout"
        built = os.path.join(src, "build", "ringlet")
        if rc != 0 or not os.access(built, os.X_OK):
            try:
                with open(info["log"], "rb") as f:
                    tail = f.read()[-2000:].decode(errors="replace").splitlines()[-8:]
            except OSError:
                tail = []
            sys.exit("bench: building %s at %s failed (%s; %s):\n  %s" % (
                BASE_OF, rev, "exit %s" % rc if rc != 0 else "no build/ringlet",
                os.path.relpath(info["log"], REPO), "\n  ".join(tail)))
        shutil.copy2(built, info["binary"] + ".tmp")
        os.replace(info["binary"] + ".tmp", info["binary"])  # whole or not at all
    finally:
        shutil.rmtree(src, ignore_errors=True)
    info.update(reused=False, build_s=round(time.monotonic() - t0, 1))
    sys.stderr.write("bench: built %s in %.0fs\n" % (os.path.relpath(info["binary"], REPO),
                                                     info["build_s"]))
    return info


class Ctx:
    pass


class Runner:
    def __init__(self):
        self.prof = profile()
        build = os.environ.get("RINGLET_BUILD", "build")
        self.ringlet = os.path.abspath(os.environ.get("RINGLET_BIN") or
                                       os.path.join(REPO, build, "ringlet"))
        lg = os.environ.get("LOADGEN_BIN")
        if not lg:
            lg = os.path.join(os.path.dirname(self.ringlet), "bench", "loadgen")
            if not os.path.exists(lg):
                lg = os.path.join(REPO, build, "bench", "loadgen")
        self.loadgen = os.path.abspath(lg)
        for b in (self.ringlet, self.loadgen):
            if not os.access(b, os.X_OK):
                print("bench: %s not found (run `make bench`, or set RINGLET_BIN/LOADGEN_BIN)"
                      % b, file=sys.stderr)
                sys.exit(77)
        sel = os.environ.get("BENCH_SCENARIOS", "").strip()
        self.scenarios = sorted({int(x) for x in re.split(r"[ ,]+", sel) if x} if sel
                                else QUICK_DEFAULT if self.prof["name"] == "quick"
                                else SCENARIOS)
        bad = [s for s in self.scenarios if s not in SCENARIOS]
        if bad:
            sys.exit("bench: unknown scenario(s) %s (1-%d)" % (bad, max(SCENARIOS)))
        # BENCH_BASE=<rev>: path ringlet-base, ringlet built at that revision; built (or
        # found built) before the run starts, and only when the run measures the path.
        self.base = None
        rev = os.environ.get("BENCH_BASE", "").strip()
        want = wanted_paths()
        if rev and (want is None or BASE_PATH in want):
            self.base = build_base(rev)
            self.base["version"] = cmd_version([self.base["binary"], "version"])
            self.base["sha256"] = file_sha256(self.base["binary"])
            self.base["ringlet_sha256"] = file_sha256(self.ringlet)
        elif want and BASE_PATH in want:
            sys.exit("bench: path %s is %s built at a git revision: name it with "
                     "BENCH_BASE=<rev>" % (BASE_PATH, BASE_OF))
        ts = time.strftime("%Y%m%d-%H%M%S")
        base = os.path.abspath(os.environ.get("BENCH_OUT") or os.path.join(BENCH, "results"))
        self.out = os.path.join(base, ts)
        n = 1
        while os.path.exists(self.out):
            n += 1
            self.out = os.path.join(base, "%s-%d" % (ts, n))
        self.ctx = Ctx()
        self.ctx.logdir = os.path.join(self.out, "logs")
        self.ctx.workdir = os.path.join(self.out, "work")
        os.makedirs(self.ctx.logdir)
        os.makedirs(self.ctx.workdir)
        self.ctx.token = "%032x" % random.getrandbits(128)
        self.ctx.token_file = os.path.join(self.ctx.workdir, "token")
        with open(self.ctx.token_file, "w") as f:
            f.write(self.ctx.token + "\n")
        import resource
        self.nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.samples = []
        self.skipped = []
        self.t0 = time.monotonic()
        self.step = 0
        self.steps = 0
        self.tty = sys.stderr.isatty()
        self.variants = []  # scenario 8's and 9's tunnel configurations (Tunnel.variant)
        self.skipped_scenarios = []  # [{scenario, reason}]: scenarios this machine cannot run
        # Scenario 9: its cgroup, upstream and steered paths, and what results.json says.
        self.sm_cgroup = self.sm_serve = None
        self.sm_paths = []
        self.sockmap_info = {}
        self.fleet_info = None  # scenario 10: its size and upstream, or why it did not run

    # -- progress ------------------------------------------------------------------------

    def progress(self, what):
        self.step += 1
        el = time.monotonic() - self.t0
        line = "bench: [%3d/%d] %s  (%d:%02d elapsed)" % (self.step, self.steps, what,
                                                          el // 60, el % 60)
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def note(self, msg):
        sys.stderr.write(("\r\033[K" if self.tty else "") + "bench: " + msg + "\n")
        sys.stderr.flush()

    # -- paths -----------------------------------------------------------------------------

    def build_paths(self):
        want = wanted_paths()
        ups = lambda: free_port(UPSTREAM_HOST, PUBLIC_HOST)
        cands = [Direct(ups()), Haproxy(ups(), self.nofile), Socat(ups())]
        # By name without ".conf", so ringlet comes before ringlet-wss.
        for fn in sorted(os.listdir(os.path.join(BENCH, "tunnels")),
                         key=lambda f: os.path.splitext(f)[0]):
            if fn.endswith(".conf"):
                tpl = parse_template(os.path.join(BENCH, "tunnels", fn))
                cands.append(Tunnel(tpl, ups(), self.ringlet))
                if self.base and tpl["name"] == BASE_OF:
                    # The same template and arguments, only the binary differs; right after
                    # ringlet, so every repetition measures the two back to back.
                    cands.append(Tunnel(dict(tpl, name=BASE_PATH), ups(),
                                        self.base["binary"]))
        self.paths = []
        for p in cands:
            if want is not None and p.name not in want:
                continue
            miss = p.missing() if isinstance(p, Tunnel) else (
                None if p.kind == "direct" or shutil.which(p.name) else p.name)
            if miss:
                self.skipped.append({"path": p.name, "reason": "%s not found" % miss})
                self.note("skipping path %s: %s not found" % (p.name, miss))
                continue
            self.paths.append(p)
        if want:
            unknown = set(want) - {p.name for p in cands}
            if unknown:
                sys.exit("bench: unknown path(s) %s" % ", ".join(sorted(unknown)))
        if not any(p.name == "direct" for p in self.paths):
            sys.exit("bench: the direct path is the baseline; keep it in BENCH_PATHS")
        # TLS paths are compared with BoringSSL's single-core AES-128-GCM speed, measured in
        # the bulk scenario of this run; without the tool that comparison is left out.
        self.bssl = None
        tls = [p.name for p in self.paths if p.tls and p.runs(1, self.prof["name"])]
        if not tls or 1 not in self.scenarios:
            self.bssl_reason = "no TLS path in the bulk scenario of this run"
        else:
            self.bssl, self.bssl_reason = find_bssl()
            if not self.bssl:
                self.note("no BoringSSL speed baseline: %s; %s run without their ratio to it"
                          % (self.bssl_reason, ", ".join(tls)))

    def start_paths(self, scenario):
        """(Re)start every path so each scenario begins from fresh processes; records each
        fresh process's idle memory. Returns the paths that are ready."""
        ready = []
        for p in self.paths:
            if not p.runs(scenario, self.prof["name"]):
                if p.procs:
                    p.stop()
                continue
            if p.kind == "direct":
                ready.append(p)
                continue
            if p.procs:
                p.stop()
            if scenario == 8:  # s_scaling starts each configuration itself
                ready.append(p)
                continue
            # Scenario 7 puts every stream on one tunnel connection (ringlet: `hol = |
            # --lanes 1` in its template); every other scenario runs the template as is.
            p.extra = split_args(p.tpl.get("hol")) if scenario == 7 and isinstance(
                p, Tunnel) else ([], [])
            p.error = None
            try:
                p.start(self.ctx)
                ok = p.ready()
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                p.error, ok = "start failed: %s" % e, False
            if not ok:
                self.note("path %s failed to start: %s" % (p.name, p.error))
                self.samples.append(dict(scenario="start", case=SCENARIOS.get(scenario, "?"),
                                         path=p.name, ok=False, error=p.error))
                p.stop()
                continue
            time.sleep(0.2)
            m = {}
            for role, proc in p.procs.items():
                r = rss_kib(proc.pid, p.tree)
                if r is not None:
                    m["%s_rss_mib" % ("server" if role == "proxy" else role)] = r / 1024
            self.samples.append(dict(scenario="idle", case="fresh start", path=p.name,
                                     ok=True, metrics=m, before=SCENARIOS.get(scenario)))
            ready.append(p)
        return ready

    # -- running one client ------------------------------------------------------------------

    def run_client(self, argv, timeout, on_line=None, sample=None):
        """Runs a client to completion (bounded by timeout). on_line(line) sees each stdout
        line as it comes; sample() is called every 50 ms while it runs. Returns (rc, last
        JSON object or None, stderr tail, wall seconds)."""
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True, text=True)
        lines = queue.Queue()

        def reader():
            for line in p.stdout:
                lines.put(line)
            lines.put(None)

        th = threading.Thread(target=reader, daemon=True)
        th.start()
        errbuf = []
        eth = threading.Thread(target=lambda: errbuf.append(p.stderr.read()), daemon=True)
        eth.start()
        result, done, rc = None, False, None
        deadline = t0 + timeout
        while not done:
            if time.monotonic() > deadline:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                rc = "timeout"
                break
            try:
                line = lines.get(timeout=0.05)
            except queue.Empty:
                line = ""
            if sample:
                sample()
            if line is None:
                done = True
            elif line:
                line = line.strip()
                if line.startswith("{"):
                    try:
                        result = json.loads(line)
                    except ValueError:
                        pass
                elif on_line:
                    on_line(line)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=5)
        eth.join(timeout=2)
        if rc is None:
            rc = p.returncode
        err = (errbuf[0] if errbuf else "").strip().splitlines()[-3:]
        return rc, result, err, time.monotonic() - t0

    def record(self, scen, case, path, rep, argv, rc, res, err, wall, metrics, extra=None):
        ok = rc == 0 and res is not None and "error" not in res
        s = dict(scenario=scen, case=case, path=path.name if isinstance(path, Path) else path,
                 rep=rep, ok=ok, cmd=argv, wall_s=round(wall, 3), result=res,
                 metrics=metrics)
        if not ok:
            s["error"] = (res or {}).get("error") or ("exit %s: %s" % (rc, " | ".join(err)))
            self.note("%s %s %s rep %d failed: %s" % (scen, case, s["path"], rep + 1,
                                                       s["error"]))
        if extra:
            s.update(extra)
        self.samples.append(s)
        return s

    def lg(self, mode, path, *args):
        return path.client_wrap + [self.loadgen, mode, "--connect", path.addr()] + [
            str(a) for a in args]

    # -- scenarios ---------------------------------------------------------------------------

    def interleave(self, cases, reps, paths):
        for case in cases:
            for rep in range(reps):
                for p in paths:
                    yield case, rep, p

    def s_bulk(self, paths):
        P = self.prof
        extra = ["iperf3"] + (["bssl"] if self.bssl else [])
        for (d, n), rep, p in self.interleave(P["bulk_cases"], P["reps"], paths + extra):
            case = "%s x%d" % (d, n)
            if p == "iperf3" and n not in P["iperf3_streams"]:
                continue
            if p == "bssl" and ((d, n) != tuple(P["bulk_cases"][0]) or
                                rep not in self.bssl_reps()):
                continue  # with the first case, in bssl_reps of its repetitions
            if p == "bssl":
                self.progress("1 bulk: bssl speed %s  run %d/%d" % (
                    BSSL_CASE, sorted(self.bssl_reps()).index(rep) + 1, P["bssl_reps"]))
                self.bssl_speed(rep)
                continue
            self.progress("1 bulk %s  %s  rep %d/%d" % (case, getattr(p, "name", p), rep + 1,
                                                        P["reps"]))
            if p == "iperf3":
                self.iperf3(case, d, n, rep)
                continue
            if not p.healthy():
                self.dead(p, "bulk", case, rep)
                continue
            argv, rc, res, err, wall, m = self.bulk_one(p, d, n, P["bulk_s"])
            self.record("bulk", case, p, rep, argv, rc, res, err, wall, m)

    def run_measured(self, p, argv, secs):
        """Run a load generator command against p: run_client's (rc, result, stderr tail,
        wall seconds) and the CPU seconds p's processes used meanwhile. The busy seconds of
        the whole machine meanwhile (load generator and upstream included) are kept in
        self.last_host_s (None when unknown)."""
        c0 = cpu_seconds(p.pids(), p.tree)
        h0 = host_busy_s()
        rc, res, err, wall = self.run_client(argv, secs + 60)
        h1 = host_busy_s()
        self.last_host_s = h1 - h0 if h0 is not None and h1 is not None else None
        return rc, res, err, wall, cpu_seconds(p.pids(), p.tree) - c0

    def bulk_one(self, p, d, n, secs):
        """One `loadgen bulk` run through p (scenarios 1 and 9): (argv, rc, result, stderr
        tail, wall seconds, metrics)."""
        argv = self.lg("bulk", p, "--dir", d, "--streams", n, "--seconds", secs)
        procs = getattr(p, "procs", {}) or {}
        peaks = {r: reset_peak(q.pid, p.tree) for r, q in procs.items()}
        rc, res, err, wall, cpu = self.run_measured(p, argv, secs)
        m = {}
        for r, q in procs.items():
            v = peak_kib(q.pid, p.tree) if peaks.get(r) else None
            if v is not None:  # the process's peak RSS while it carried this case
                m["%s_peak_rss_mib" % ("server" if r == "proxy" else r)] = v / 1024
        if res and "gbps" in res:
            m["gbps"] = res["gbps"]
            if res.get("bytes") and res.get("seconds"):
                m["bytes_per_s"] = res["bytes"] / res["seconds"]  # payload, as gbps
            if p.kind != "direct" and res.get("bytes_total"):
                m["cpu_s"] = round(cpu, 3)
                m["cpu_s_per_gb"] = cpu / (res["bytes_total"] / 1e9)
            if self.last_host_s is not None and res.get("bytes_total") and wall:
                # Everything the machine did to carry the bytes: load generator, upstream
                # and path. With every CPU busy, a path carries at most ncpu / this.
                m["host_cpu_s_per_gb"] = self.last_host_s / (res["bytes_total"] / 1e9)
                m["host_busy_pct"] = 100.0 * self.last_host_s / (wall * (os.cpu_count() or 1))
        return argv, rc, res, err, wall, m

    def bssl_reps(self):
        """The bulk repetitions `bssl speed` runs in: all, or bssl_reps of them evenly
        spread (one of three: the middle one)."""
        n, k = self.prof["reps"], self.prof["bssl_reps"]
        return {int((i + 0.5) * n / k) for i in range(k)} if k < n else set(range(n))

    def bssl_speed(self, rep):
        """One `bssl speed` run: BoringSSL's AES-128-GCM seal of 16 KiB records (a full TLS
        record) on one thread, while the paths are idle. The same libcrypto ringlet links
        when both come from Debian's android-libboringssl (results.json records both)."""
        P = self.prof
        argv = [self.bssl, "speed", "-filter", "AES-128-GCM", "-chunks", "16384",
                "-timeout", str(P["bssl_timeout"]), "-json"]
        t0 = time.monotonic()
        rc, out, err = None, "", []
        for attempt in (argv, argv[:-1]):  # builds without -json print text only
            try:
                r = subprocess.run(attempt, capture_output=True, text=True, timeout=120)
                rc, out = r.returncode, r.stdout
                err = r.stderr.strip().splitlines()[-3:]
            except subprocess.TimeoutExpired:
                rc, out, err = "timeout", "", []
            except OSError as e:
                rc, out, err = "cannot run", "", [str(e)]
            argv = attempt
            if rc == 0 and parse_bssl_speed(out):
                break
        fig = parse_bssl_speed(out) if rc == 0 else None
        m = {}
        if fig:
            m = {"bytes_per_s": fig["bytes_per_s"], "mb_per_s": fig["bytes_per_s"] / 1e6,
                 "gbps": fig["bytes_per_s"] * 8 / 1e9}
        elif rc == 0:
            rc = "no %r line in its output" % BSSL_DESC
        self.record("crypto", BSSL_CASE, "bssl", rep, argv, rc, fig, err,
                    time.monotonic() - t0, m, {"raw_output": out[-4000:]})

    def iperf3(self, case, d, n, rep):
        P = self.prof
        # iperf3 takes whole seconds: at least 1 s, never shorter than loadgen's run (a
        # longer run only helps iperf3, whose figure then includes less start-up).
        secs = max(1, int(P["bulk_s"] + 0.999))
        argv = ["iperf3", "-c", UPSTREAM_HOST, "-p", str(self.iperf_port), "-t", str(secs),
                "-J", "-P", str(n)] + (["-R"] if d == "down" else [])
        t0 = time.monotonic()
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=P["bulk_s"] + 30)
            rc, res = out.returncode, json.loads(out.stdout) if out.stdout.strip() else None
            err = out.stderr.strip().splitlines()[-3:]
        except subprocess.TimeoutExpired:
            rc, res, err = "timeout", None, []
        except ValueError:
            rc, res, err = "bad json", None, []
        m = {}
        if res and "end" in res and "sum_received" in res["end"]:
            m["gbps"] = res["end"]["sum_received"]["bits_per_second"] / 1e9
            summary = {"gbps": m["gbps"], "bytes": res["end"]["sum_received"]["bytes"],
                       "seconds": res["end"]["sum_received"]["seconds"]}
        else:
            summary = None
            if res and "error" in res:
                err = [res["error"]]
        self.record("bulk", case, "iperf3", rep, argv, rc, summary, err,
                    time.monotonic() - t0, m, {"note": "iperf3 client and server, direct "
                                                      "loopback: calibrates loadgen"})

    def s_rr(self, paths):
        P = self.prof
        for size, rep, p in self.interleave(P["rr_sizes"], P["reps"], paths):
            case = size_name(size)
            self.progress("2 rr %s  %s  rep %d/%d" % (case, p.name, rep + 1, P["reps"]))
            if not p.healthy():
                self.dead(p, "rr", case, rep)
                continue
            argv, rc, res, err, wall, m = self.rr_one(p, size, P["rr_conc"], P["rr_s"])
            self.record("rr", case, p, rep, argv, rc, res, err, wall, m)

    def rr_one(self, p, size, conc, secs):
        """One `loadgen rr` run through p (scenarios 2 and 9): as bulk_one."""
        argv = self.lg("rr", p, "--resp", size, "--conc", conc, "--seconds", secs)
        rc, res, err, wall, cpu = self.run_measured(p, argv, secs)
        m = {}
        if res and "rps" in res:
            m["rps"] = res["rps"]
            lat = res.get("latency_us", {})
            for q in ("p50", "p90", "p99", "p999"):
                if q in lat:
                    m[q + "_us"] = lat[q]
            if p.kind != "direct" and res.get("requests_total"):
                m["cpu_us_per_req"] = cpu / res["requests_total"] * 1e6
        return argv, rc, res, err, wall, m

    def s_churn(self, paths):
        P = self.prof
        for case, rep, p in self.interleave(["conc %d" % P["churn_conc"]], P["reps"], paths):
            self.progress("3 churn  %s  rep %d/%d" % (p.name, rep + 1, P["reps"]))
            if not p.healthy():
                self.dead(p, "churn", case, rep)
                continue
            argv = self.lg("churn", p, "--conc", P["churn_conc"], "--seconds", P["churn_s"])
            rc, res, err, wall = self.run_client(argv, P["churn_s"] + 60)
            m = {}
            if res and "streams_per_s" in res:
                m["streams_per_s"] = res["streams_per_s"]
                m["errors"] = res.get("errors")
                lat = res.get("latency_us", {})
                for q in ("p50", "p99"):
                    if q in lat:
                        m[q + "_us"] = lat[q]
            self.record("churn", case, p, rep, argv, rc, res, err, wall, m)

    def s_scale(self, paths):
        P = self.prof
        paths = [p for p in paths if p.scale]
        for rep in range(P["long_reps"]):
            for p in paths:
                n = P["scale_n"]
                if isinstance(p, Haproxy):
                    n = min(n, p.maxconn - 10)
                n = min(n, self.nofile - 100)
                case = "%d streams" % P["scale_n"]
                self.progress("4 scale %d streams  %s  rep %d/%d" % (n, p.name, rep + 1,
                                                                     P["long_reps"]))
                if p.kind != "direct":  # fresh processes: memory from earlier runs is not ours
                    p.stop()
                    p.start(self.ctx)
                    if not p.ready():
                        self.record("scale", case, p, rep, [], "start failed", None,
                                    [p.error or ""], 0, {})
                        continue
                    time.sleep(0.3)
                base = {r: rss_kib(q.pid, p.tree) for r, q in p.procs.items()}
                idle, peak, phases = {}, {}, {}

                def on_line(line, p=p, idle=idle, phases=phases):
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] == "phase":
                        phases[parts[1]] = time.monotonic()
                        if parts[1] == "idle":
                            # Let the last streams settle, then read idle memory.
                            time.sleep(min(0.5, P["scale_idle_s"] / 2))
                            for r, q in p.procs.items():
                                idle[r] = rss_kib(q.pid, p.tree)

                def sample(p=p, peak=peak, phases=phases):
                    if "active" in phases and "done" not in phases:
                        for r, q in p.procs.items():
                            v = rss_kib(q.pid, p.tree)
                            if v is not None and v > peak.get(r, 0):
                                peak[r] = v

                argv = self.lg("scale", p, "--streams", n, "--idle-seconds", P["scale_idle_s"],
                               "--active-seconds", P["scale_active_s"], "--rate", P["scale_rate"])
                rc, res, err, wall = self.run_client(
                    argv, P["scale_idle_s"] + P["scale_active_s"] + 120, on_line, sample)
                m = {}
                streams = (res or {}).get("streams") or n
                for r in p.procs:
                    role = "server" if r == "proxy" else r
                    if base.get(r) is None:
                        continue
                    m["%s_base_rss_mib" % role] = base[r] / 1024
                    if idle.get(r) is not None:
                        m["%s_idle_rss_mib" % role] = idle[r] / 1024
                        m["%s_kib_per_idle_stream" % role] = (idle[r] - base[r]) / streams
                    if peak.get(r) is not None:
                        m["%s_active_rss_mib" % role] = peak[r] / 1024
                        m["%s_kib_per_active_stream" % role] = (peak[r] - base[r]) / streams
                if res:
                    m["streams"] = res.get("streams")
                    m["setup_s"] = res.get("setup_seconds")
                    m["active_rps"] = res.get("rps")
                    lat = res.get("latency_us", {})
                    if "p99" in lat:
                        m["active_p99_us"] = lat["p99"]
                self.record("scale", case, p, rep, argv, rc, res, err, wall, m,
                            {"rss_base_kib": base, "rss_idle_kib": idle, "rss_peak_kib": peak})

    def s_slow(self, paths):
        P = self.prof
        case = "%s, %.1fs pause" % (size_name(P["slow_bytes"]) if P["slow_bytes"] % MIB == 0
                                    else "%d B" % P["slow_bytes"], P["slow_pause_s"])
        for rep in range(P["long_reps"]):
            for p in paths:
                self.progress("5 slow consumer  %s  rep %d/%d" % (p.name, rep + 1,
                                                                  P["long_reps"]))
                if p.kind != "direct":
                    p.stop()
                    p.start(self.ctx)
                    if not p.ready():
                        self.record("slow", case, p, rep, [], "start failed", None,
                                    [p.error or ""], 0, {})
                        continue
                peak, paused = {}, {}
                series = []

                def sample(p=p, peak=peak, series=series):
                    row = {}
                    for r, q in p.procs.items():
                        v = rss_kib(q.pid, p.tree)
                        row[r] = v
                        if v is not None and v > peak.get(r, 0):
                            peak[r] = v
                    if len(series) < 4000:
                        series.append([round(time.monotonic() - t_start, 3), row])

                def on_line(line, p=p, paused=paused):
                    if line.startswith("phase paused"):
                        paused["t"] = time.monotonic()
                    elif line.startswith("phase reading"):
                        # The peak while nobody reads: what the stall costs.
                        paused["peak"] = dict(peak)

                t_start = time.monotonic()
                argv = self.lg("slow", p, "--bytes", P["slow_bytes"], "--pause",
                               P["slow_pause_s"])
                rc, res, err, wall = self.run_client(argv, P["slow_pause_s"] + 120, on_line,
                                                     sample)
                m = {}
                if res:
                    m["byte_exact"] = bool(res.get("byte_exact"))
                    m["read_s"] = res.get("read_seconds")
                for r, q in p.procs.items():
                    role = "server" if r == "proxy" else r
                    # VmHWM: the process's own peak since its start (it was restarted
                    # just before), which a 50 ms sampler could miss.
                    hwm = None if p.tree else status_kib(q.pid, "VmHWM")
                    pk = max((v for v in (peak.get(r), hwm) if v is not None), default=None)
                    if pk is not None:
                        m["%s_peak_rss_mib" % role] = pk / 1024
                    if paused.get("peak", {}).get(r) is not None:
                        m["%s_paused_rss_mib" % role] = paused["peak"][r] / 1024
                self.record("slow", case, p, rep, argv, rc, res, err, wall, m,
                            {"rss_series_kib": series[::5]})

    def s_federation(self, paths):
        P = self.prof
        case = "%d MB after %.1fs" % (P["fed_bytes"] // 1000000, P["fed_delay_ms"] / 1000)
        for rep in range(P["long_reps"]):
            for p in paths:
                self.progress("6 federation  %s  rep %d/%d" % (p.name, rep + 1,
                                                               P["long_reps"]))
                if not p.healthy():
                    self.dead(p, "federation", case, rep)
                    continue
                argv = self.lg("http", p, "--bytes", P["fed_bytes"], "--delay-ms",
                               P["fed_delay_ms"])
                rc, res, err, wall = self.run_client(argv, P["fed_delay_ms"] / 1000 + 120)
                m = {}
                if res and "ttfb_s" in res:
                    m["ttfb_s"] = res["ttfb_s"]
                    m["total_s"] = res["total_s"]
                    m["body_s"] = res["body_s"]
                    m["byte_exact"] = bool(res.get("byte_exact"))
                self.record("federation", case, p, rep, argv, rc, res, err, wall, m)

    def tunnel_status(self, p):
        """(lanes, laneShards, server shards) of the first client in ringlet's /status, or
        None (another tunnel, or no answer)."""
        if not isinstance(p, Tunnel):
            return None
        try:
            j = json.loads(p.metrics_text("/status") or "")
            c = j["clients"][0]["ringlet"]
            return c.get("lanes"), c.get("laneShards"), j.get("ringlet", {}).get("shards")
        except (ValueError, KeyError, IndexError, TypeError):
            return None

    def s_hol(self, paths):
        """7. One bulk download and rr traffic on the same path (ringlet: one lane, `--lanes
        1`): the rr latency alone, then while the download runs, in each repetition."""
        P = self.prof
        case = "%s x%d + 1 bulk down" % (size_name(P["hol_resp"]), P["hol_conc"])
        bulk_s = P["hol_lead_s"] + P["hol_s"] + P["hol_tail_s"]
        for rep in range(P["reps"]):
            for p in paths:
                self.progress("7 head-of-line  %s  rep %d/%d" % (p.name, rep + 1, P["reps"]))
                if not p.healthy():
                    self.dead(p, "hol", case, rep)
                    continue
                rr = self.lg("rr", p, "--resp", P["hol_resp"], "--conc", P["hol_conc"],
                             "--seconds", P["hol_s"])
                bulk = self.lg("bulk", p, "--dir", "down", "--streams", 1, "--seconds", bulk_s)
                idle = self.run_client(rr, P["hol_s"] + 60)
                out = {}

                def run_bulk(out=out, bulk=bulk):
                    out["t0"] = time.monotonic()
                    out["r"] = self.run_client(bulk, bulk_s + 60)
                    out["t1"] = time.monotonic()

                th = threading.Thread(target=run_bulk, daemon=True)
                th.start()
                time.sleep(P["hol_lead_s"])
                loaded = self.run_client(rr, P["hol_s"] + 60)
                t_rr_end = time.monotonic()
                th.join(bulk_s + 90)
                bres = out.get("r") or ("timeout", None, ["bulk did not end"], 0.0)
                parts = {"idle": idle, "loaded": loaded, "bulk": bres}
                rc = next((r[0] for r in parts.values() if r[0] != 0), 0)
                res = {k: r[1] for k, r in parts.items()}
                errs = ["%s: %s" % (k, (r[1] or {}).get("error") or " | ".join(r[2]))
                        for k, r in parts.items() if r[0] != 0 or not r[1] or "error" in r[1]]
                if errs:
                    res["error"] = "; ".join(errs)
                m = {}
                for k in ("idle", "loaded"):
                    r = res[k] or {}
                    lat = r.get("latency_us", {})
                    for q in ("p50", "p90", "p99", "p999"):
                        if q in lat:
                            m["%s_%s_us" % (k, q)] = lat[q]
                    if "rps" in r:
                        m[k + "_rps"] = r["rps"]
                for q in ("p50", "p99"):
                    if m.get("idle_%s_us" % q) and m.get("loaded_%s_us" % q):
                        m[q + "_ratio"] = m["loaded_%s_us" % q] / m["idle_%s_us" % q]
                if res["bulk"] and "gbps" in res["bulk"]:
                    m["bulk_gbps"] = res["bulk"]["gbps"]
                # The download must span the whole loaded rr run.
                m["bulk_spanned"] = bool(out.get("t1") and out["t1"] >= t_rr_end)
                st = self.tunnel_status(p)
                extra = {"cmd_bulk": bulk, "lead_s": P["hol_lead_s"],
                         "path_commands": p.commands}
                if st:
                    m["lanes"] = st[0]
                    extra["lane_shards"], extra["server_shards"] = st[1], st[2]
                wall = sum(r[3] for r in (idle, loaded))
                self.record("hol", case, p, rep, rr, rc, res, [], wall, m, extra)

    def s_scaling(self, paths):
        """8. scaling_streams parallel bulk streams through each of a tunnel's scenario-8
        configurations (ringlet: 1 server shard + 1 lane, 2 shards + the default lanes),
        restarted fresh for every repetition, and direct as the reference. Per-shard work
        from ringlet's /metrics and from the shard threads' CPU time."""
        P = self.prof
        n = P["scaling_streams"]
        runs = []
        for p in paths:
            if p.kind == "direct":
                runs.append(p)
            elif isinstance(p, Tunnel):
                for label, sa, ca in p.scaling_configs():
                    v = p.variant(label, sa, ca)
                    self.variants.append(v)
                    runs.append(v)
        for rep in range(P["reps"]):
            for p in runs:
                cases = ["%s x%d" % (d, n) for d in P["scaling_dirs"]]
                if p.kind == "tunnel":
                    p.error = None
                    try:
                        p.start(self.ctx)
                        ok = p.ready()
                    except (OSError, ValueError, KeyError, RuntimeError) as e:
                        p.error, ok = "start failed: %s" % e, False
                    if not ok:
                        for case in cases:
                            self.progress("8 scaling %s  %s  rep %d/%d" % (
                                case, p.name, rep + 1, P["reps"]))
                            self.record("scaling", case, p, rep, [], "start failed", None,
                                        [p.error or ""], 0, {})
                        p.stop()
                        continue
                    # Every lane joined before the streams open (lanes join after lane 0).
                    cli = p.extra[1]
                    want = (int(cli[cli.index("--lanes") + 1]) if "--lanes" in cli
                            else None)
                    wait_until(lambda: (lambda st: st is not None and st[0] is not None and
                                        st[0] >= (want or min(st[2] or 1,
                                                              os.cpu_count() or 1)))(
                        self.tunnel_status(p)), 5.0, 0.05)
                for d, case in zip(P["scaling_dirs"], cases):
                    self.progress("8 scaling %s  %s  rep %d/%d" % (case, p.name, rep + 1,
                                                                   P["reps"]))
                    if not p.healthy():
                        self.dead(p, "scaling", case, rep)
                        continue
                    self.scaling_one(p, d, n, case, rep)
                if p.kind == "tunnel":
                    p.stop()

    def scaling_one(self, p, d, n, case, rep):
        P = self.prof
        argv = self.lg("bulk", p, "--dir", d, "--streams", n, "--seconds", P["scaling_s"])
        tun = p.kind == "tunnel"
        srv = p.procs.get("server")
        cl = p.procs.get("client")
        m0 = shard_counters(p.metrics_text()) if tun else {}
        s0 = thread_cpu(srv.pid) if srv else {}
        k0 = thread_cpu(cl.pid) if cl else {}
        c0 = cpu_seconds(p.pids())
        rc, res, err, wall = self.run_client(argv, P["scaling_s"] + 60)
        cpu = cpu_seconds(p.pids()) - c0
        m, extra = {}, {}
        if res and "gbps" in res:
            m["gbps"] = res["gbps"]
            if res.get("bytes") and res.get("seconds"):
                m["bytes_per_s"] = res["bytes"] / res["seconds"]
            if tun and res.get("bytes_total"):
                m["cpu_s"] = round(cpu, 3)
                m["cpu_s_per_gb"] = cpu / (res["bytes_total"] / 1e9)
        if tun:
            m1 = shard_counters(p.metrics_text())
            busy = delta(m1.get("ringlet_shard_busy_seconds_total", {}),
                         m0.get("ringlet_shard_busy_seconds_total", {}))
            comp = delta(m1.get("ringlet_shard_completions_total", {}),
                         m0.get("ringlet_shard_completions_total", {}))
            scpu = delta(thread_cpu(srv.pid), s0) if srv else {}
            kcpu = delta(thread_cpu(cl.pid), k0) if cl else {}
            for sh, v in busy.items():
                m["server_s%d_busy_s" % sh] = v
            for sh, v in comp.items():
                m["server_s%d_completions" % sh] = v
            for sh, v in scpu.items():
                m["server_s%d_cpu_s" % sh] = v
            for sh, v in kcpu.items():
                m["client_s%d_cpu_s" % sh] = v
            total = sum(busy.values())
            if busy:
                m["server_shards"] = len(busy)
                # A shard "worked" when it did at least 10% of the server's busy time.
                m["server_shards_working"] = sum(1 for v in busy.values()
                                                 if total > 0 and v >= 0.1 * total)
            st = self.tunnel_status(p)
            if st:
                m["lanes"] = st[0]
                extra["lane_shards"] = st[1]
            extra.update(shard_busy_s=busy, shard_completions=comp, server_thread_cpu_s=scpu,
                         client_thread_cpu_s=kcpu)
        self.record("scaling", case, p, rep, argv, rc, res, err, wall, m, extra)

    # -- 9. sockmap steering --------------------------------------------------------------

    def sockmap_setup(self):
        """Scenario 9's steered path: a cgroup-v2 directory of the run's own, an upstream
        (`loadgen serve`) inside it, and each tunnel with a `sockmap` template key started
        as NAME-sockmap with those arguments, its server and client inside the cgroup too.
        Returns (status, why): "ok", "skip" (this machine cannot steer: not root, no
        cgroup v2, or `ringlet --sockmap on` refuses to start, with the reason it prints)
        or "failed" (a start that went wrong otherwise: a failed measurement)."""
        info = self.sockmap_info
        tunnels = [p for p in self.paths if isinstance(p, Tunnel) and
                   p.runs(9, self.prof["name"])]
        if not tunnels:
            return "skip", "no tunnel of this run has a `sockmap` template key"
        if os.geteuid() != 0:
            return "skip", ("not root: loading the BPF programs and attaching them to a "
                            "cgroup needs CAP_BPF and CAP_NET_ADMIN")
        mnt = cgroup2_mount()
        info["cgroup2_mount"] = mnt
        if not mnt:
            return "skip", "no cgroup v2 hierarchy is mounted (/proc/self/mountinfo)"
        for d in os.listdir(mnt):  # left by runs that were killed before their cleanup
            if d.startswith(CGROUP_PREFIX) and d[len(CGROUP_PREFIX):].isdigit() and \
                    not os.path.exists("/proc/" + d[len(CGROUP_PREFIX):]):
                try:
                    os.rmdir(os.path.join(mnt, d))
                except OSError:
                    pass
        cg = os.path.join(mnt, CGROUP_PREFIX + str(os.getpid()))
        try:
            os.mkdir(cg)
        except FileExistsError:
            pass
        except OSError as e:
            return "skip", "cannot create a cgroup under %s: %s" % (mnt, e)
        self.sm_cgroup = info["cgroup"] = cg
        AT_CLEANUP.append(self.sockmap_teardown)
        port = free_port(UPSTREAM_HOST, PUBLIC_HOST)
        argv = in_cgroup(cg, [self.loadgen, "serve", "--listen", "%s:%d" % (UPSTREAM_HOST,
                                                                           port)])
        info["upstream_command"] = argv
        self.sm_serve = start("upstream-sockmap", argv, self.ctx.logdir)
        if not wait_until(lambda: not self.sm_serve.alive() or
                          not _bindable(UPSTREAM_HOST, port), 10) or \
                not self.sm_serve.alive():
            why = "its upstream (loadgen serve in the cgroup) did not start: %s" % (
                self.sm_serve.log_tail())
            self.samples.append(dict(scenario="start", case="sockmap", path="upstream-sockmap",
                                     ok=False, error=why))
            return "failed", why
        self.sm_paths = []
        for base in tunnels:
            sa, ca = base.sockmap_config()
            v = base.variant("sockmap", sa, ca, scenario="sockmap")
            v.upstream_port = port
            v.cgroup = cg
            v.wrap = v.client_wrap = in_cgroup(cg)
            self.variants.append(v)
            try:
                v.start(self.ctx)
                ok = v.ready()
            except (OSError, ValueError, KeyError, RuntimeError) as e:
                v.error, ok = "start failed: %s" % e, False
            if not ok:
                refused = self.sockmap_refusal(v)
                v.stop()
                if refused:
                    info["refused"] = refused
                    return "skip", "`%s --sockmap on` refuses to start here: %s" % (
                        v.name, refused)
                self.samples.append(dict(scenario="start", case="sockmap", path=v.name,
                                         ok=False, error=v.error))
                return "failed", "%s failed to start: %s" % (v.name, v.error)
            st = {r: sockmap_counters(t) for r, t in self.steer_texts(v).items()}
            off = ["%s (%s)" % (r, "no /metrics" if not c else "ringlet_sockmap_active %g"
                                % c.get("active", 0)) for r, c in st.items()
                   if not c or c.get("active") != 1]
            if off:
                why = "%s started, but steering is not active at its %s" % (
                    v.name, ", ".join(off))
                self.samples.append(dict(scenario="start", case="sockmap", path=v.name,
                                         ok=False, error=why))
                return "failed", why
            time.sleep(0.2)  # idle memory of the fresh processes, as start_paths records it
            m = {"%s_rss_mib" % r: rss_kib(q.pid) / 1024 for r, q in v.procs.items()
                 if rss_kib(q.pid) is not None}
            self.samples.append(dict(scenario="idle", case="fresh start", path=v.name,
                                     ok=True, metrics=m, before="sockmap"))
            self.sm_paths.append(v)
        return "ok", None

    def sockmap_refusal(self, p):
        """The reason ringlet printed when `--sockmap on` could not steer (it exits), or
        None when the path failed for another reason."""
        for role, proc in p.procs.items():
            if proc.alive():
                continue
            try:
                with open(proc.log, "rb") as f:
                    text = f.read()[-16384:].decode(errors="replace")
            except OSError:
                continue
            for line in text.splitlines():
                if "cannot steer local hops" in line:
                    m = re.search(r'why="((?:[^"\\]|\\.)*)"', line)
                    return "%s: %s" % (role, m.group(1) if m else line.strip())
        return None

    def sockmap_teardown(self):
        """Stops scenario 9's own processes and removes its cgroup (also at exit, from
        cleanup(), when the run is interrupted)."""
        for v in getattr(self, "sm_paths", []):
            v.stop()
        if getattr(self, "sm_serve", None):
            stop(self.sm_serve)
            self.sm_serve = None
        cg = getattr(self, "sm_cgroup", None)
        if cg:
            why = remove_cgroup(cg)
            self.sockmap_info["cgroup_removed"] = why is None
            if why:
                self.note("scenario 9: %s" % why)
            self.sm_cgroup = None
        if self.sockmap_teardown in AT_CLEANUP:
            AT_CLEANUP.remove(self.sockmap_teardown)

    def steer_texts(self, p):
        """The /metrics text of p's server and, when it has one, of its client's
        --metrics-addr listener: {role: text or None}."""
        out = {"server": p.metrics_text()}
        if p.client_metrics_port:
            out["client"] = p.metrics_text(port=p.client_metrics_port)
        return out

    def s_sockmap(self, paths):
        """9. direct (plain loopback TCP, nothing in the steering cgroup), ringlet (--sockmap
        off) and ringlet-sockmap (--sockmap on; consumer, server, client and upstream in the
        run's cgroup) interleaved: bulk in each direction with 1 and 8 streams, and
        request/response rate and latency. Every ringlet-sockmap measurement checks from
        both ends' /metrics that each of its connections was steered on both hops; one that
        was not is a failed measurement, never a sockmap figure."""
        P = self.prof
        cases = [("bulk %s x%d" % (d, n), "bulk", d, n) for d, n in P["sockmap_bulk_cases"]]
        cases += [("rr %s" % size_name(z), "rr", z, P["sockmap_rr_conc"])
                  for z in P["sockmap_rr_sizes"]]
        runs = list(paths) + self.sm_paths
        for (case, kind, a, n), rep, p in self.interleave(cases, P["reps"], runs):
            self.progress("9 sockmap %s  %s  rep %d/%d" % (case, p.name, rep + 1, P["reps"]))
            if not p.healthy():
                self.dead(p, "sockmap", case, rep)
                continue
            tun = isinstance(p, Tunnel)
            before = self.steer_texts(p) if tun else {}
            if kind == "bulk":
                argv, rc, res, err, wall, m = self.bulk_one(p, a, n, P["sockmap_s"])
            else:
                argv, rc, res, err, wall, m = self.rr_one(p, a, n, P["sockmap_s"])
            extra = {"connections": n}
            if tun:
                after = self.steer_texts(p)
                sm = {}
                for role in after:
                    b, c = sockmap_counters(before.get(role)), sockmap_counters(after[role])
                    if not c:
                        sm[role] = None
                        continue
                    b = b or {}
                    sm[role] = {
                        "active": c.get("active"),
                        "hops_steered": c.get("hops_steered", 0) - b.get("hops_steered", 0),
                        "bytes": c.get("bytes", 0) - b.get("bytes", 0),
                        "messages": c.get("messages", 0) - b.get("messages", 0),
                        "fallbacks": {k: v - (b.get("fallbacks") or {}).get(k, 0)
                                      for k, v in (c.get("fallbacks") or {}).items()
                                      if k != "unavailable"},
                        "unavailable": (c.get("fallbacks") or {}).get("unavailable"),
                    }
                    r = sm[role]
                    m["%s_sockmap_active" % role] = r["active"]
                    m["%s_hops_steered" % role] = r["hops_steered"]
                    m["%s_kernel_bytes" % role] = r["bytes"]
                    m["%s_fallbacks" % role] = sum(v for k, v in r["fallbacks"].items()
                                                   if k not in MID_FALLBACKS)
                    m["%s_slow_reader" % role] = sum(v for k, v in r["fallbacks"].items()
                                                     if k in MID_FALLBACKS)
                    # What share of the payload this end's hop moved in the kernel (bulk:
                    # the load generator's bytes; rr: requests x (request + response)).
                    pay = (res or {}).get("bytes_total") if kind == "bulk" else (
                        (res or {}).get("requests_total", 0) * (64 + a))
                    if pay and p in self.sm_paths:
                        m["%s_kernel_share" % role] = r["bytes"] / pay
                extra["sockmap"] = sm
            s = self.record("sockmap", case, p, rep, argv, rc, res, err, wall, m, extra)
            if p in self.sm_paths and s["ok"]:
                why = self.unsteered(s.get("sockmap") or {}, n)
                s["steered"] = why is None
                m["steered"] = why is None
                if why:
                    s["ok"] = False
                    s["error"] = "sockmap steering did not happen: %s" % why
                    self.note("sockmap %s %s rep %d: NOT a sockmap result: %s" % (
                        case, p.name, rep + 1, why))

    @staticmethod
    def unsteered(sm, conns):
        """Why a ringlet-sockmap measurement is not a steered one (None when every one of
        its conns connections had both hops steered, bytes moved in the kernel at both ends
        and no hop took TCP from its start). A hop that started steered and moved to TCP
        later (MID_FALLBACKS: slow_reader, its reader fell behind) still counts; how much
        the kernel carried is the kernel_share metric."""
        bad = []
        for role in ("server", "client"):
            r = sm.get(role)
            if not r:
                bad.append("no %s /metrics" % role)
                continue
            if r.get("active") != 1:
                bad.append("%s ringlet_sockmap_active %s" % (role, r.get("active")))
            if r["hops_steered"] < conns:
                bad.append("%s steered %d of %d hops" % (role, r["hops_steered"], conns))
            if r["bytes"] <= 0:
                bad.append("%s moved no bytes in the kernel" % role)
            fb = {k: v for k, v in r["fallbacks"].items() if v and k not in MID_FALLBACKS}
            if fb:
                bad.append("%s fallbacks %s" % (role, fb))
        return "; ".join(bad) or None

    def bssl_info(self):
        """What results.json says about the BoringSSL baseline: whether it was measured,
        and if not, why (no number is made up)."""
        ok = [s for s in self.samples if s.get("scenario") == "crypto" and s.get("ok")]
        bad = [s for s in self.samples if s.get("scenario") == "crypto" and not s.get("ok")]
        info = {"tool": self.bssl, "case": BSSL_CASE, "available": bool(ok),
                "package": owner_package(self.bssl) if self.bssl else None,
                "libcrypto": linked_libcrypto(self.bssl) if self.bssl else None,
                "ringlet_libcrypto": linked_libcrypto(self.ringlet),
                "what": "one thread, AES-128-GCM seal of 16384-byte inputs (a full TLS "
                        "record), `bssl speed -timeout %s`; bytes/s" % self.prof["bssl_timeout"]}
        if not self.bssl:
            info["reason"] = self.bssl_reason
        elif not ok:
            info["reason"] = "bssl speed failed: %s" % (bad[-1].get("error") if bad else
                                                        "not run (bulk scenario skipped?)")
        return info

    def sockmap_summary(self):
        """What results.json says about scenario 9: whether it ran and if not why, its
        cgroup, and how many ringlet-sockmap measurements were steered (every connection,
        both hops) and how many were not (failed measurements, not sockmap figures)."""
        if 9 not in self.scenarios:
            return {"available": False, "reason": "scenario 9 not selected in this run"}
        info = dict(self.sockmap_info)
        smp = [s for s in self.samples if s.get("scenario") == "sockmap" and
               s.get("path") in {v.name for v in self.variants
                                 if v.variant_scenario == "sockmap"}]
        info["steered_measurements"] = sum(1 for s in smp if s.get("steered"))
        info["unsteered_measurements"] = sum(1 for s in smp if s.get("steered") is False)
        info["failed_measurements"] = sum(1 for s in smp if not s.get("ok"))
        info["available"] = info.get("status") == "ok"
        info["what"] = ("ringlet-sockmap: server and client with the template's `sockmap` "
                        "arguments (--sockmap on --sockmap-cgroup CGROUP), they, its "
                        "upstream and the load generator inside CGROUP; a measurement "
                        "counts only when both ends' /metrics show every connection's hop "
                        "steered, bytes moved in the kernel and no fallback")
        return info

    def dead(self, p, scen, case, rep):
        tails = {r: q.log_tail() for r, q in p.procs.items() if not q.alive()}
        self.samples.append(dict(scenario=scen, case=case, path=p.name, rep=rep, ok=False,
                                 error="path processes exited: %s" % json.dumps(tails)))
        self.note("%s %s %s: path processes exited" % (scen, case, p.name))

    # -- 10. fleet ------------------------------------------------------------------------------

    def fleet_ringlet(self):
        """The ringlet path scenario 10 measures (its binary), or None."""
        for p in self.paths:
            if isinstance(p, Tunnel) and p.runs(FLEET, self.prof["name"]):
                return p
        return None

    def s_fleet(self, _paths=None):
        """10. A fleet: fleet_n named tunnels on one server (--tunnels), each with its own
        token file and binding, and one real ringlet client per tunnel (`--lanes 1 --shards
        1`, upstream a `loadgen serve`). Per repetition (a cold start each): the server's RSS
        before any client, /connect latency with 1 tunnel connected, the time for all
        fleet_n clients to connect from their start, RSS with all connected and idle,
        /connect latency at fleet_n, then paced streams on fleet_sample tunnels while
        fleet_reloads reloads each change one other tunnel's token."""
        P = self.prof
        rp = self.fleet_ringlet()
        n = P["fleet_n"]
        # Each tunnel costs the server two descriptors (its WebSocket, its listener) and the
        # harness one (the client's log file): stay inside the open-file limit.
        cap = max(2, (self.nofile - 300) // 3)
        if n > cap:
            self.note("fleet: %d tunnels need more descriptors than the limit %d allows; "
                      "running %d" % (n, self.nofile, cap))
            n = cap
        case = "%d tunnels" % n
        d = os.path.join(self.ctx.workdir, "fleet")
        os.makedirs(os.path.join(d, "tokens"), exist_ok=True)
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        up_port = free_port(UPSTREAM_HOST)
        serve_argv = [self.loadgen, "serve", "--listen", "%s:%d" % (UPSTREAM_HOST, up_port)]
        serve = start("fleet-upstream", serve_argv, self.ctx.logdir)
        if not wait_until(lambda: not _bindable(UPSTREAM_HOST, up_port), 10):
            self.fleet_info = {"reason": "its upstream (loadgen serve) did not start"}
            stop(serve)
            return
        try:
            self.fleet_info = {"tunnels": n, "upstream": serve_argv}
            for rep in range(P["long_reps"]):
                self.progress("10 fleet %s  rep %d/%d" % (case, rep + 1, P["long_reps"]))
                s = self.fleet_once(rp, n, d, up_port, rep)
                s.update(scenario="fleet", case=case, path=rp.name, rep=rep)
                if not s["ok"]:
                    self.note("fleet %s rep %d failed: %s" % (case, rep + 1, s["error"]))
                self.samples.append(s)
        finally:
            stop(serve)

    def fleet_files(self, n, d, up_port, rep):
        """The tunnels file (n tunnels t0000..., plus `probe`, whose token the /connect
        probes use and which has no client) and one token file each. Bindings are
        127.0.0.1 ports below the ephemeral range, so no client's source port can take one
        before its listener opens. Returns (file, tokens {name: path}, bindings {name:
        port}, probe token)."""
        try:
            lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
        except (OSError, ValueError, IndexError):
            lo = 32768
        names = ["t%04d" % i for i in range(n)] + ["probe"]
        binds, port = {}, lo - 1
        for name in names:
            while port > 1024 and (port == up_port or not _bindable(PUBLIC_HOST, port)):
                port -= 1
            if port <= 1024:
                raise RuntimeError("no free ports below %d for %d bindings" % (lo, n))
            binds[name] = port
            port -= 1
        toks, y = {}, ["tunnels:"]
        for name in names:
            toks[name] = os.path.join(d, "tokens", name)
            with open(toks[name], "w") as f:
                f.write("%s-%d-%032x\n" % (name, rep, random.getrandbits(128)))
            y.append('  - name: %s\n    tokenFile: %s\n    ports:\n      - port: %d\n'
                     '        listen: "%s:%d"' % (name, toks[name], up_port, PUBLIC_HOST,
                                                  binds[name]))
        fn = os.path.join(d, "tunnels.yaml")
        with open(fn, "w") as f:
            f.write("\n".join(y) + "\n")
        probe_tok = open(toks["probe"]).read().strip()
        return fn, toks, binds, probe_tok

    def fleet_once(self, rp, n, d, up_port, rep):
        P = self.prof
        m = {}
        out = {"ok": False, "metrics": m}
        tfile, toks, binds, probe_tok = self.fleet_files(n, d, up_port, rep)
        ctl = free_port(PUBLIC_HOST)
        srv_argv = [rp.ringlet, "server", "--auto-tls=false", "--token-file",
                    self.ctx.token_file, "--control-addr", "127.0.0.1", "--control-port",
                    str(ctl), "--data-addr", "127.0.0.1", "--tunnels", tfile]

        def cli_argv(name):
            return [rp.ringlet, "client", "--url", "ws://127.0.0.1:%d" % ctl, "--token-file",
                    toks[name], "--upstream", UPSTREAM_HOST, "--ports", str(up_port),
                    "--auto-tls=false", "--lanes", "1", "--shards", "1"]

        out["cmd"] = {"server": srv_argv, "client": cli_argv("t0000"), "tunnels_file": tfile}
        names = ["t%04d" % i for i in range(n)]
        srv = start("fleet-server-%d" % rep, srv_argv, self.ctx.logdir)
        clients = {}

        def metrics():
            return fleet_get(ctl, self.ctx.token, "/metrics")

        def connected():
            return prom_value(metrics(), "ringlet_tunnels", state="connected")

        def fail(why):
            out["error"] = "%s; server log: %s" % (why, " | ".join(srv.log_tail(3)))
            return out

        try:
            if not wait_until(lambda: not srv.alive() or connected() is not None, 10, 0.02) \
                    or not srv.alive():
                return fail("the server did not start")
            m["configured"] = prom_value(metrics(), "ringlet_tunnels", state="configured")
            time.sleep(0.3)
            rss0 = rss_kib(srv.pid)
            m["server_rss_before_mib"] = rss0 / 1024
            # /connect at 1 tunnel: t0000's client alone, then it goes away again.
            clients["t0000"] = start("fleet-client-t0000-%d" % rep, cli_argv("t0000"),
                                     self.ctx.logdir)
            if not wait_until(lambda: connected() == 1, 15, 0.02):
                return fail("the first client did not connect (connected=%s)" % connected())
            lat1 = connect_probes(ctl, probe_tok, P["fleet_probes"])
            if lat1 is None:
                return fail("a /connect probe got no 101")
            self.fleet_put(m, "connect", lat1, "_1")
            fleet_stop([clients.pop("t0000")])
            if not wait_until(lambda: connected() == 0, 15, 0.05):
                return fail("the first client's tunnel did not go away")
            # Cold start: every client at once.
            t0 = time.monotonic()
            for name in names:
                clients[name] = start("fleet-client-%s-%d" % (name, rep), cli_argv(name),
                                      self.ctx.logdir)
            m["spawn_s"] = time.monotonic() - t0
            seen = [0]

            def all_in():
                c = connected()
                seen[0] = c if c is not None else seen[0]
                return c == n
            if not wait_until(all_in, P["fleet_connect_timeout"], 0.01):
                return fail("%s of %d clients connected in %.0f s" % (
                    seen[0], n, P["fleet_connect_timeout"]))
            m["connect_all_s"] = time.monotonic() - t0
            # The part after the last client was started (spawning 1000 processes from
            # Python is most of the cold start on 2 CPUs).
            m["connect_after_spawn_s"] = m["connect_all_s"] - m["spawn_s"]
            time.sleep(0.5)  # idle
            rssn = rss_kib(srv.pid)
            m["server_rss_connected_mib"] = rssn / 1024
            m["server_kib_per_tunnel"] = (rssn - rss0) / n
            crss = [rss_kib(c.pid) for c in clients.values()]
            crss = [v for v in crss if v is not None]
            if crss:
                m["client_rss_mib"] = statistics.median(crss) / 1024
            latn = connect_probes(ctl, probe_tok, P["fleet_probes"])
            if latn is None:
                return fail("a /connect probe at %d tunnels got no 101" % n)
            self.fleet_put(m, "connect", latn, "_n")
            if not wait_until(lambda: connected() == n, 5, 0.05):
                return fail("clients went away after the probes (connected=%s)" % connected())
            # Traffic on the sample while reloads change other tunnels' tokens.
            sample = names[:min(P["fleet_sample"], max(1, n - P["fleet_reloads"]))]
            changed = names[::-1][:min(P["fleet_reloads"], n - len(sample))]
            r0 = resets_sent(metrics())
            streams = [PacedSink(PUBLIC_HOST, binds[t], P["fleet_rate"]) for t in sample]
            for st in streams:
                st.start()
            time.sleep(0.5)
            reloads = []
            for name in changed:
                mark = os.path.getsize(srv.log)
                tmp = os.path.join(d, "tmp", name)
                with open(tmp, "w") as f:
                    f.write("%s-changed-%d-%032x\n" % (name, rep, random.getrandbits(128)))
                t0 = time.monotonic()
                os.replace(tmp, toks[name])  # seen by inotify in the token files' directory
                os.kill(srv.pid, signal.SIGHUP)
                got = wait_log(srv.log, mark, [
                    r'msg="tunnels file reloaded".*token_changed=1',
                    r'msg="tunnel token changed: disconnecting its client" tunnel="?%s\b'
                    % name], 5.0)
                if None in got:
                    return fail("reload for %s: %s" % (name, got))
                why = re.search(r"why=(\S+)", got[0][1])
                reloads.append({"tunnel": name, "applied_ms": (got[0][0] - t0) * 1000,
                                "disconnected_ms": (got[1][0] - t0) * 1000,
                                "why": why.group(1) if why else None})
                time.sleep(0.5)
            time.sleep(0.5)
            for st in streams:
                st.stop.set()
            for st in streams:
                st.join(30)
            r1 = resets_sent(metrics())
            # The changed tunnels' clients are refused when they come back; the others stay.
            stayed = wait_until(lambda: connected() == n - len(changed), 10, 0.05)
            m["reload_ms"] = max(r["applied_ms"] for r in reloads) if reloads else None
            m["reload_disconnect_ms"] = (max(r["disconnected_ms"] for r in reloads)
                                         if reloads else None)
            m["sample_mib"] = sum(st.sent for st in streams) / MIB
            m["sample_bytes_lost"] = sum(max(0, st.sent - (st.counted or 0)) for st in streams)
            m["sample_streams_failed"] = sum(1 for st in streams if st.error)
            m["server_resets_sent"] = (r1 - r0) if r0 is not None and r1 is not None else None
            m["untouched_stayed"] = stayed
            out["reloads"] = reloads
            out["sample"] = [{"tunnel": t, "binding": binds[t], "sent": st.sent,
                              "counted": st.counted, "error": st.error}
                             for t, st in zip(sample, streams)]
            out["ok"] = True
            return out
        except (OSError, RuntimeError, ValueError) as e:
            return fail("%s: %s" % (type(e).__name__, e))
        finally:
            fleet_stop(list(clients.values()) + [srv])

    @staticmethod
    def fleet_put(m, key, lat, suffix):
        lat = sorted(lat)
        m["%s_p50_us%s" % (key, suffix)] = pct(lat, 50)
        m["%s_p99_us%s" % (key, suffix)] = pct(lat, 99)

    # -- orchestration -------------------------------------------------------------------------

    def count_steps_of(self, scenario):
        scen, self.scenarios = self.scenarios, [scenario]
        try:
            return self.count_steps()
        finally:
            self.scenarios = scen

    def count_steps(self):
        P = self.prof
        n = 0
        for s in self.scenarios:
            np = len([p for p in self.paths if p.runs(s, P["name"])])
            if s == 1:
                n += sum(np + (n_ in P["iperf3_streams"]) for _, n_ in P["bulk_cases"]) * P["reps"]
                n += len(self.bssl_reps()) if self.bssl else 0
            elif s == 2:
                n += len(P["rr_sizes"]) * P["reps"] * np
            elif s == 3:
                n += P["reps"] * np
            elif s == 4:
                n += P["long_reps"] * len([p for p in self.paths if p.scale and
                                           p.runs(s, P["name"])])
            elif s == 7:
                n += P["reps"] * np
            elif s == 8:
                nv = sum(len(p.scaling_configs()) if isinstance(p, Tunnel) else 1
                         for p in self.paths if p.runs(s, P["name"]))
                n += P["reps"] * len(P["scaling_dirs"]) * nv
            elif s == 9:  # each tunnel twice: --sockmap off and on
                nv = sum(2 if isinstance(p, Tunnel) else 1
                         for p in self.paths if p.runs(s, P["name"]))
                n += P["reps"] * (len(P["sockmap_bulk_cases"]) +
                                  len(P["sockmap_rr_sizes"])) * nv
            elif s == FLEET:
                n += P["long_reps"] * np
            else:
                n += P["long_reps"] * np
        return n

    def run(self):
        self.build_paths()
        self.steps = self.count_steps()
        up_ports = [p.upstream_port for p in self.paths]
        self.iperf_port = free_port(UPSTREAM_HOST)
        serve_argv = [self.loadgen, "serve"] + sum(
            (["--listen", "%s:%d" % (UPSTREAM_HOST, u)] for u in up_ports), [])
        self.serve = start("upstream", serve_argv, self.ctx.logdir)
        if 1 in self.scenarios:
            start("iperf3-server", ["iperf3", "-s", "-B", UPSTREAM_HOST, "-p",
                                    str(self.iperf_port)], self.ctx.logdir)
        if not wait_until(lambda: all(not _bindable(UPSTREAM_HOST, u) for u in up_ports), 10):
            sys.exit("bench: the upstream (loadgen serve) did not start: %s"
                     % self.serve.log_tail())
        self.note("results in %s (%s profile, scenarios %s, paths %s)" % (
            self.out, self.prof["name"], ",".join(map(str, self.scenarios)),
            ",".join(p.name for p in self.paths)))
        self.busy_before = cpu_busy()
        if self.busy_before is not None and self.busy_before > 10:
            self.note("the machine is %.0f%% busy before the run: other workloads share the "
                      "CPUs, figures will be noisier" % self.busy_before)
        started = time.time()
        if FLEET not in self.scenarios:
            self.fleet_info = {"reason": "scenario 10 not selected in this run"}
        for s in self.scenarios:
            if s == 9:
                status, why = self.sockmap_setup()
                self.sockmap_info.update(status=status, reason=why)
                if status != "ok":
                    self.sockmap_teardown()
                    if status == "skip":
                        self.skipped_scenarios.append({"scenario": SCENARIOS[s],
                                                       "reason": why})
                    self.note("%s scenario 9 (sockmap): %s" % (
                        "skipping" if status == "skip" else "FAILED:", why))
                    self.steps -= self.count_steps_of(9)
                    continue
            if s == FLEET:  # its own server, clients and upstream; no other path runs
                for p in self.paths:
                    p.stop()
                if not self.fleet_ringlet():
                    why = "the ringlet path is not in this run (BENCH_PATHS)"
                    self.fleet_info = {"reason": why}
                    self.skipped_scenarios.append({"scenario": SCENARIOS[s], "reason": why})
                    self.note("skipping scenario 10 (fleet): " + why)
                    continue
                self.s_fleet()
                continue
            paths = self.start_paths(s)
            getattr(self, "s_" + SCENARIOS[s])(paths)
            if s == 9:
                self.sockmap_teardown()
        for p in self.paths:
            p.stop()
        self.busy_after = cpu_busy()
        if self.tty:
            sys.stderr.write("\n")
        self.finish(started)

    def finish(self, started):
        P = self.prof
        agg = {}
        for s in self.samples:
            if not s.get("ok") or not s.get("metrics"):
                continue
            for k, v in s["metrics"].items():
                if isinstance(v, bool):
                    v = 1.0 if v else 0.0
                if v is None:
                    continue
                (agg.setdefault(s["scenario"], {}).setdefault(s["case"], {})
                 .setdefault(s["path"], {}).setdefault(k, []).append(v))
        aggregates = {sc: {case: {path: {k: median_stats(v) for k, v in ms.items()}
                                  for path, ms in cases.items()}
                           for case, cases in byc.items()}
                      for sc, byc in agg.items()}
        results = {
            "tool": "ringlet bench/harness.py",
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "duration_s": round(time.monotonic() - self.t0, 1),
            "profile": P,
            "scenarios": [SCENARIOS[s] for s in self.scenarios],
            "machine": dict(machine_info(self.ringlet, self.nofile),
                            cpu_busy_pct_before=self.busy_before,
                            cpu_busy_pct_after=self.busy_after,
                            loadavg_end=open("/proc/loadavg").read().split()[:3]),
            "binaries": dict({"ringlet": self.ringlet, "loadgen": self.loadgen},
                             **({BASE_PATH: self.base["binary"]} if self.base else {})),
            "base": self.base,
            "upstream": {"command": self.serve.argv},
            "paths": [{"name": p.name, "kind": p.kind, "address": p.addr(),
                       "upstream_port": p.upstream_port, "commands": p.commands,
                       "binary": getattr(p, "ringlet", None) if p.kind == "tunnel" else None,
                       "starts": p.starts, "tls": p.tls,
                       "scenarios": [SCENARIOS[s] for s in self.scenarios
                                     if p.runs(s, P["name"])]}
                      for p in self.paths] + [
                {"name": v.name, "kind": v.kind, "address": v.addr(),
                 "upstream_port": v.upstream_port, "commands": v.commands, "starts": v.starts,
                 "tls": v.tls, "variant_of": v.variant_of, "binary": v.ringlet,
                 "scenarios": [v.variant_scenario or "scaling"]}
                for v in self.variants],
            "skipped_paths": self.skipped,
            "skipped_scenarios": self.skipped_scenarios,
            "aggregates": aggregates,
            "bssl": self.bssl_info(),
            "sockmap": self.sockmap_summary(),
            "fleet": self.fleet_info,
            "samples": self.samples,
        }
        if self.base:
            results["machine"]["versions"][BASE_PATH] = self.base["version"]
        # A template's `version = command` (the peer tunnels): its first output line.
        for p in self.paths:
            if isinstance(p, Tunnel) and p.tpl.get("version"):
                results["machine"]["versions"][p.name] = cmd_version(
                    shlex.split(p.tpl["version"]))
        results["machine"]["peer_bin"] = os.environ.get("PEER_BIN") or None
        import report  # bench/report.py: summary.md and plots
        results["tls_vs_bssl"] = report.tls_rows(results)
        results["base_comparison"] = report.base_rows(results)
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
        report.write_all(self.out, results)
        failed = [s for s in self.samples if not s.get("ok")]
        self.note("done in %.0fs: %s/summary.md (%d samples, %d failed)" % (
            results["duration_s"], self.out, len(self.samples), len(failed)))
        return 1 if failed else 0


def main():
    sys.path.insert(0, BENCH)
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    path = peer_bin_path()
    if path:  # PEER_BIN: the peer tunnels' binaries, found before anything on PATH
        os.environ["PATH"] = path
    r = Runner()
    rc = 1
    try:
        rc = r.run() or 0
        failed = [s for s in r.samples if not s.get("ok")]
        rc = 1 if failed else 0
    except KeyboardInterrupt:
        rc = 130
    finally:
        cleanup()
    sys.exit(rc)


if __name__ == "__main__":
    main()
