#!/usr/bin/env python3
"""ringlet end-to-end scenario: Prometheus federation from two client clusters to an
observability cluster through ringlet tunnels (the seed's blog post, without Kubernetes).

Run through tests/e2e/run.sh (which checks the prerequisites, installs the packages and
cleans up after a crash of this driver); see tests/e2e/README.md for the topology, what is
asserted and the report. Environment:

  RINGLET_BIN      the ringlet binary (required); it is run through a link named inlets-pro
  SERIES           exporter series per client cluster (default 10000)
  SCRAPE_INTERVAL  scrape interval of every Prometheus, a Prometheus duration (default 15s,
                   the seed's value)
  E2E_INGRESS=1    the seed's full shape: an nginx ingress (TLS, a test CA made with
                   openssl) in the observability namespace in front of the ringlet servers;
                   the clients dial wss://<cluster>.prometheus.example.com/connect
  E2E_TENANTS=1    one multi-tenant exit node (--tunnels) for three client clusters
                   (orion-aws, orion-equinix, orion-gcp); a live reload of its tunnels file
                   (a symlink swap) adds a fourth (orion-azure); no fault phases
  E2E_RUN_ID       unique id of this run: namespaces are rle2e-<id>-{obs,aws,eqx}
                   (+ gcp, azr with E2E_TENANTS)
  E2E_REPORT       write the markdown report there as well as to stdout
  E2E_TIMEOUT      overall time limit in seconds (default 900)
  E2E_KEEP=1       keep the temporary directory (configs, logs, TSDBs) even on success
  E2E_PAUSE_ON_FAIL=SECS  on failure, wait that long before cleaning up (to look around)

Exit status: 0 every assertion held, 1 an assertion failed or something broke (the tails
of the logs are printed), 77 a prerequisite is missing (the reason is the last line).
Every process started here runs inside one of the run's namespaces; every one of them and
every namespace is gone when this exits, normally, on failure or on SIGTERM/SIGINT/SIGHUP.
"""
import ctypes
import datetime
import gzip
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # importing exporter.py must not leave __pycache__ in the tree
sys.path.insert(0, HERE)
import exporter  # noqa: E402

SKIP = 77
T0 = time.monotonic()
AUTO_SERIES = 5  # up, scrape_duration_seconds, scrape_samples_scraped,
#                  scrape_samples_post_metric_relabeling, scrape_series_added per target


def log(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, msg, detail=""):
    if not cond:
        raise Fail(msg + (": " + detail if detail else ""))
    log("ok    " + msg)


def parse_duration(s):
    m = re.fullmatch(r"(\d+)(ms|s|m)", s.strip())
    if not m:
        raise SystemExit("SCRAPE_INTERVAL must look like 5s, 15s or 1m, not %r" % s)
    n, unit = int(m.group(1)), m.group(2)
    return n / 1000.0 if unit == "ms" else n * (60 if unit == "m" else 1)


# ---- configuration -------------------------------------------------------------------------

SERIES = int(os.environ.get("SERIES", "10000"))
INTERVAL_STR = os.environ.get("SCRAPE_INTERVAL", "15s")
INTERVAL = parse_duration(INTERVAL_STR)
TIMEOUT = min(10.0, INTERVAL)  # Prometheus' scrape_timeout: its 10s default, at most the interval
RUN_ID = os.environ.get("E2E_RUN_ID") or secrets.token_hex(3)
PREFIX = "rle2e-" + RUN_ID
DEADLINE = T0 + float(os.environ.get("E2E_TIMEOUT", "900"))
VERBATIM = os.path.join(HERE, "federated-clusters.yml")
OBS_NS = PREFIX + "-obs"
OBS_PROM = "127.0.0.1:9090"  # the observability Prometheus (scrapes through the tunnels)
DIRECT_PROM = "127.0.0.1:9091"  # its twin scraping the client Prometheus servers directly
CONTROL_PORT = 8123
INGRESS = os.environ.get("E2E_INGRESS", "") not in ("", "0", "no", "false")
# With E2E_INGRESS: the ingress controller's "LoadBalancer IP", where the wildcard record
# *.prometheus.example.com points; reachable from the client clusters (a /32 route over their
# veth), unlike the servers' control planes, which are then "ClusterIP" addresses inside obs.
INGRESS_IP = "10.213.0.1"
INGRESS_PORT = 443

# With E2E_TENANTS: one multi-tenant exit node (`--tunnels`) for three client clusters, a
# fourth added by a live reload of its tunnels file. Its control plane (the "LoadBalancer IP"
# every *.prometheus.example.com name points at) and its data-plane bindings, one port per
# tunnel, are on addresses inside obs; each client cluster has a /32 route to the control
# plane only.
TENANTS = os.environ.get("E2E_TENANTS", "") not in ("", "0", "no", "false")
if TENANTS and INGRESS:
    raise SystemExit("E2E_TENANTS and E2E_INGRESS together are not supported (yet): pick one")
EXIT_IP = "10.213.0.1"  # control plane of the one exit node (TENANTS)
EXIT_DATA = "10.213.0.10"  # where it binds each tunnel's port 9090 (TENANTS)
BIND_BASE = 19000  # tunnel i (1-based) is bound at EXIT_DATA:BIND_BASE+i (TENANTS)

CLUSTERS = [
    {"name": "orion-aws", "short": "aws", "net": "10.213.1", "data": "10.213.0.11"},
    {"name": "orion-equinix", "short": "eqx", "net": "10.213.2", "data": "10.213.0.12"},
]
SEED_TARGETS = ["%s-inlets-pro-data-plane:9090" % c["name"] for c in CLUSTERS]
LATE = []  # client clusters whose tunnel is added by a reload (TENANTS)
if TENANTS:
    CLUSTERS.append({"name": "orion-gcp", "short": "gcp", "net": "10.213.3"})
    LATE.append({"name": "orion-azure", "short": "azr", "net": "10.213.4"})
for _i, _c in enumerate(CLUSTERS + LATE):
    if TENANTS:
        _c["data"], _c["data_port"] = EXIT_DATA, BIND_BASE + 1 + _i
    else:
        _c["data_port"] = 9090
    # Where the observability side reaches the cluster's Prometheus through ringlet: the
    # data-plane "ClusterIP" (plain, ingress) or the tunnel's binding on the exit node.
    _c["tunnel_addr"] = "%s:%d" % (_c["data"], _c["data_port"])
    _c["ns"] = "%s-%s" % (PREFIX, _c["short"])
    _c["obs_ip"] = _c["net"] + ".1"  # the observability end of the veth
    _c["ip"] = _c["net"] + ".2"  # the client cluster's end: its Prometheus
    _c["control_host"] = "%s.prometheus.example.com" % _c["name"]
    _c["data_host"] = "%s-inlets-pro-data-plane" % _c["name"]
    _c["direct_host"] = "%s-prometheus-direct" % _c["name"]
    _c["target"] = "%s:9090" % _c["data_host"]
    _c["direct_target"] = "%s:9090" % _c["direct_host"]
    # The ringlet server's control plane: on the veth without an ingress (the clients dial it
    # directly); behind the ingress the chart's control-plane ClusterIP service, obs only.
    _c["control_svc"] = "%s-inlets-pro-control-plane" % _c["name"]
    _c["control_ip"] = ("10.213.0.2%s" % _c["net"][-1]) if INGRESS else EXIT_IP if TENANTS else _c["obs_ip"]
AWS, EQX = CLUSTERS[:2]
ALL = CLUSTERS + LATE
NAMESPACES = [OBS_NS] + [c["ns"] for c in ALL]


# ---- network namespaces --------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
_ROOT_NS = os.open("/proc/thread-self/ns/net", os.O_RDONLY)


class netns:
    """`with netns(name):` sockets created inside belong to that namespace (this thread only)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        fd = os.open("/run/netns/" + self.name, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "setns %s: %s" % (self.name, os.strerror(e)))
        finally:
            os.close(fd)

    def __exit__(self, *exc):
        if _libc.setns(_ROOT_NS, CLONE_NEWNET) != 0:
            os._exit(3)  # cannot get back to the root namespace: give up at once


def run(argv, timeout=30, check_rc=True, ns=None):
    if ns:
        argv = ["ip", "netns", "exec", ns] + list(argv)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise Fail("%s: exit %d: %s" % (" ".join(argv), r.returncode,
                                        r.stderr.decode(errors="replace").strip()[-400:]))
    return r


def setup_network():
    """Three namespaces, two veth links from the observability namespace, no default route
    anywhere: nothing can leave the namespaces. /etc/netns/<ns>/hosts is bind-mounted over
    /etc/hosts by `ip netns exec`, so the names of the seed resolve inside only."""
    for ns in NAMESPACES:
        run(["ip", "netns", "add", ns])
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        os.makedirs("/etc/netns/" + ns, exist_ok=True)
        with open("/etc/netns/%s/resolv.conf" % ns, "w") as f:
            f.write("nameserver 127.0.0.1\n")  # no DNS anywhere: lookups fail fast, locally
    if TENANTS:
        # The one exit node: its control plane and its tunnels' bindings, obs only.
        for a in (EXIT_IP, EXIT_DATA):
            run(["ip", "-n", OBS_NS, "addr", "add", a + "/32", "dev", "lo"])
    for c in ALL:
        run(["ip", "-n", OBS_NS, "link", "add", "v-" + c["short"], "type", "veth",
             "peer", "name", "v-obs", "netns", c["ns"]])
        run(["ip", "-n", OBS_NS, "addr", "add", c["obs_ip"] + "/24", "dev", "v-" + c["short"]])
        run(["ip", "-n", c["ns"], "addr", "add", c["ip"] + "/24", "dev", "v-obs"])
        run(["ip", "-n", OBS_NS, "link", "set", "v-" + c["short"], "up"])
        run(["ip", "-n", c["ns"], "link", "set", "v-obs", "up"])
        if TENANTS:
            # The client cluster reaches the exit node's control plane, nothing else of obs
            # but its veth's own subnet.
            run(["ip", "-n", c["ns"], "route", "add", EXIT_IP + "/32", "via", c["obs_ip"]])
        else:
            # The data-plane "ClusterIP" of this cluster's server, reachable only inside obs.
            run(["ip", "-n", OBS_NS, "addr", "add", c["data"] + "/32", "dev", "lo"])
        if INGRESS:
            # The control plane is a ClusterIP too; the client cluster reaches only the
            # ingress address, through its veth (no other route: no default route).
            run(["ip", "-n", OBS_NS, "addr", "add", c["control_ip"] + "/32", "dev", "lo"])
            run(["ip", "-n", c["ns"], "route", "add", INGRESS_IP + "/32", "via", c["obs_ip"]])
        with open("/etc/netns/%s/hosts" % c["ns"], "w") as f:
            f.write("127.0.0.1\tlocalhost\n%s\tprometheus prometheus.monitoring.svc.cluster.local\n"
                    "%s\t%s\n" % (c["ip"], INGRESS_IP if INGRESS else c["control_ip"], c["control_host"]))
    if INGRESS:
        run(["ip", "-n", OBS_NS, "addr", "add", INGRESS_IP + "/32", "dev", "lo"])
    with open("/etc/netns/%s/hosts" % OBS_NS, "w") as f:
        f.write("127.0.0.1\tlocalhost\n")
        for c in ALL:
            if not TENANTS:
                # With TENANTS the Service names do not resolve: the observability
                # Prometheus's relabelling alone maps them to the bindings.
                f.write("%s\t%s %s.monitoring.svc.cluster.local\n" % (c["data"], c["data_host"], c["data_host"]))
            f.write("%s\t%s\n" % (c["ip"], c["direct_host"]))
            if INGRESS:
                f.write("%s\t%s %s.monitoring.svc.cluster.local\n" % (
                    c["control_ip"], c["control_svc"], c["control_svc"]))


def teardown_network():
    """Kill whatever still runs in the run's namespaces, delete them and their /etc/netns."""
    ok = True
    for ns in NAMESPACES:
        if not os.path.exists("/run/netns/" + ns):
            shutil.rmtree("/etc/netns/" + ns, ignore_errors=True)
            continue
        for _ in range(3):
            r = run(["ip", "netns", "pids", ns], check_rc=False)
            pids = [int(p) for p in r.stdout.split()]
            if not pids:
                break
            log("cleanup: killing leftover pids %s in %s" % (pids, ns))
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.3)
        if run(["ip", "netns", "del", ns], check_rc=False).returncode != 0:
            ok = False
        shutil.rmtree("/etc/netns/" + ns, ignore_errors=True)
    left = [ns for ns in NAMESPACES if os.path.exists("/run/netns/" + ns)]
    if left:
        log("cleanup: namespaces left behind: %s" % left)
    return ok and not left


# ---- processes -----------------------------------------------------------------------------

PROCS = []


class Proc:
    """A process inside a namespace, in its own session (process group), output in a log."""

    def __init__(self, name, ns, argv, logdir):
        self.name, self.ns, self.argv = name, ns, argv
        self.logpath = os.path.join(logdir, name + ".log")
        self.start()

    def start(self):
        f = open(self.logpath, "ab")
        f.write(("---- %s: %s\n" % (datetime.datetime.now().isoformat(timespec="seconds"),
                                    " ".join(self.argv))).encode())
        f.flush()
        self.logstart = f.tell()
        self.p = subprocess.Popen(["ip", "netns", "exec", self.ns] + self.argv,
                                  stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        f.close()
        self.started = time.time()
        if self not in PROCS:
            PROCS.append(self)

    def alive(self):
        return self.p.poll() is None

    def send(self, sig):
        if self.alive():
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Signal the process group; SIGKILL after timeout. Returns the seconds it took."""
        t = time.monotonic()
        self.send(sig)
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log("%s did not exit within %.0f s of signal %d: SIGKILL" % (self.name, timeout, sig))
            self.send(signal.SIGKILL)
            self.p.wait(timeout=10)
        # No killpg after the leader is reaped: its number may belong to someone else by then.
        # Anything left in the namespace is killed by teardown_network() (ip netns pids).
        return time.monotonic() - t

    def text(self, since_start=True):
        with open(self.logpath, "rb") as f:
            if since_start:
                f.seek(self.logstart)
            return f.read().decode(errors="replace")

    def wait_log(self, needle, timeout):
        end = min(time.monotonic() + timeout, DEADLINE)
        while time.monotonic() < end:
            if needle in self.text():
                return True
            if not self.alive():
                raise Fail("%s exited (status %s) before logging %s" % (self.name, self.p.returncode, needle))
            time.sleep(0.1)
        raise Fail("%s did not log %s within %.0f s" % (self.name, needle, timeout))


def stop_all():
    for p in reversed(PROCS):
        p.send(signal.SIGTERM)
    end = time.monotonic() + 15
    for p in reversed(PROCS):
        try:
            p.p.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        p.send(signal.SIGKILL)
        try:
            p.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# ---- HTTP inside a namespace ---------------------------------------------------------------

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def http_get(ns, url, timeout=60, headers=None):
    """(status, headers, body) of a GET made from inside namespace ns."""
    req = urllib.request.Request(url, headers=headers or {})
    with netns(ns):
        try:
            with _opener.open(req, timeout=timeout) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()


def wait_until(what, fn, timeout, every=0.5):
    """Poll fn until it returns a true value (which is returned); Fail after timeout."""
    end = min(time.monotonic() + timeout, DEADLINE)
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
        except (OSError, ValueError, KeyError) as e:
            last = e
        if time.monotonic() >= end:
            raise Fail("timed out after %.0f s waiting for %s%s" % (
                timeout, what, " (last error: %s)" % last if last else ""))
        time.sleep(every)


class Prom:
    def __init__(self, name, ns, addr):
        self.name, self.ns, self.base = name, ns, "http://" + addr

    def api(self, path, params, timeout=120):
        st, _, body = http_get(self.ns, self.base + path + "?" + urllib.parse.urlencode(params, doseq=True),
                               timeout=timeout)
        d = json.loads(body)
        if st != 200 or d.get("status") != "success":
            raise Fail("%s %s %s: HTTP %d %s" % (self.name, path, params, st, body[:300]))
        return d["data"]

    def ready(self):
        try:
            return http_get(self.ns, self.base + "/-/ready", timeout=5)[0] == 200
        except OSError:
            return False

    def query(self, expr, t=None):
        p = {"query": expr}
        if t is not None:
            p["time"] = "%.3f" % t
        return self.api("/api/v1/query", p)["result"]

    def value(self, expr, t=None):
        """The value of a one-element instant vector, or None when it is empty."""
        r = self.query(expr, t)
        if not r:
            return None
        if len(r) > 1:
            raise Fail("%s: %s returned %d elements" % (self.name, expr, len(r)))
        return float(r[0]["value"][1])

    def samples(self, expr):
        """[(timestamp, value)] of a one-series range-vector selector."""
        r = self.query(expr)
        if not r:
            return []
        if len(r) > 1:
            raise Fail("%s: %s returned %d series" % (self.name, expr, len(r)))
        return [(float(t), float(v)) for t, v in r[0]["values"]]

    def series(self, matches):
        return self.api("/api/v1/series", [("match[]", m) for m in matches])


def labelset(d, extra=None):
    d = dict(d)
    if extra:
        d.update(extra)
    return frozenset(d.items())


def fmt_series(ls):
    d = dict(ls)
    name = d.pop("__name__", "")
    return name + "{" + ",".join('%s="%s"' % kv for kv in sorted(d.items())) + "}"


# ---- the ingress (E2E_INGRESS) -------------------------------------------------------------

# Debian's nginx configured the way ingress-nginx configures an Ingress of the inlets-pro
# chart (as tests/integration/test_ingress.py does): TLS per host, HTTP/1.1 to the upstream,
# Upgrade/Connection passed on, 60 s proxy_read_timeout, X-Forwarded-* headers. Every file it
# writes (pid, logs, temp) is in the run's temporary directory.
NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/logs/nginx-error.log warn;
worker_shutdown_timeout 10s;
events {{ worker_connections 1024; }}
http {{
  log_format ingress 'host=$ssl_server_name tls=$ssl_protocol request="$request" status=$status '
                     'secs=$request_time upstream=$upstream_addr bytes_to_client=$bytes_sent '
                     'bytes_from_upstream=$upstream_bytes_received bytes_to_upstream=$upstream_bytes_sent';
  access_log {dir}/logs/nginx-access.log ingress;
  client_body_temp_path {dir}/nginx-tmp; proxy_temp_path {dir}/nginx-tmp;
  fastcgi_temp_path {dir}/nginx-tmp; uwsgi_temp_path {dir}/nginx-tmp; scgi_temp_path {dir}/nginx-tmp;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
{servers}
}}
"""

NGINX_SERVER = """
  server {{
    listen {ip}:{port} ssl;
    server_name {domain};
    ssl_certificate {crt};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      proxy_pass http://{upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Request-ID $request_id;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port {port};
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Scheme https;
      proxy_connect_timeout 5s;
      proxy_send_timeout 60s;
      proxy_read_timeout 60s;
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
"""


def openssl(*args):
    r = subprocess.run(["openssl"] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise Fail("openssl %s: %s" % (args[0], r.stdout.decode(errors="replace")[-400:]))


def make_pki(d):
    """A test CA and one certificate per tunnel domain (what cert-manager's Issuer provides in
    the seed). Returns (ca.crt, {domain: (crt, key)})."""
    os.makedirs(d)
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", ca_key, "-out", ca_crt, "-days", "2", "-subj", "/CN=ringlet e2e test CA %s" % RUN_ID,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    certs = {}
    for c in CLUSTERS:
        dom = c["control_host"]
        key, csr, crt, ext = (os.path.join(d, dom + e) for e in (".key", ".csr", ".crt", ".ext"))
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=" + dom)
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % dom)
        openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
                "-out", crt, "-days", "2", "-extfile", ext)
        certs[dom] = (crt, key)
    return ca_crt, certs


def parse_access_log(path):
    """The lines of the ingress access log (log_format ingress) as dicts."""
    out = []
    try:
        text = open(path, errors="replace").read()
    except OSError:
        return out
    for ln in text.splitlines():
        out.append({k: v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', ln)})
    return out


def num(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


# ---- the scenario --------------------------------------------------------------------------


class Scenario:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="ringlet-e2e-%s." % RUN_ID)
        self.logdir = os.path.join(self.tmp, "logs")
        os.makedirs(self.logdir)
        self.rep = {"events": []}
        self.ringlet = os.environ.get("RINGLET_BIN", "")
        if not (os.path.isfile(self.ringlet) and os.access(self.ringlet, os.X_OK)):
            raise Skip("ringlet binary not found at %r (set RINGLET_BIN)" % self.ringlet)
        self.prometheus = shutil.which("prometheus")
        if not self.prometheus:
            raise Skip("no prometheus binary (tests/e2e/deps.sh installs Debian's package)")
        self.prom_version = run([self.prometheus, "--version"]).stdout.decode().split("\n")[0]
        # The binary is run as inlets-pro, the name the seed's charts use.
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(bindir)
        self.inlets = os.path.join(bindir, "inlets-pro")
        os.symlink(self.ringlet, self.inlets)
        self.ringlet_version = run([self.inlets, "version"]).stdout.decode().split("\n")[0]
        self.nginx_version = None
        if INGRESS:
            self.nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
            if not self.nginx or not shutil.which("openssl"):
                raise Skip("E2E_INGRESS: needs nginx and openssl (tests/e2e/deps.sh installs Debian's packages)")
            r = run([self.nginx, "-v"])
            self.nginx_version = (r.stderr or r.stdout).decode().strip().split("\n")[0].replace("nginx version: nginx/", "")

        text = open(VERBATIM).read()
        self.selectors = re.findall(r"^ +- '(\{app=\"[a-z-]+\"\})'$", text, re.M)
        targets = re.findall(r"^ +- '([a-z0-9-]+:9090)'$", text, re.M)
        if len(self.selectors) != 3 or targets != SEED_TARGETS:
            raise Fail("%s is not the seed's federated-clusters job" % VERBATIM)
        self.job_text = text
        if INTERVAL_STR != "15s":
            if text.count("  scrape_interval: 15s\n") != 1:
                raise Fail("cannot find the scrape_interval line in %s" % VERBATIM)
            self.job_text = text.replace("  scrape_interval: 15s\n", "  scrape_interval: %s\n" % INTERVAL_STR)
        self.seed_job_text = self.job_text
        if TENANTS:
            self.job_text = self.tenants_job(CLUSTERS)
        self.direct_job_text = self.seed_job_text + self.more_targets(CLUSTERS)
        for c in CLUSTERS:
            self.direct_job_text = self.direct_job_text.replace("'%s'" % c["target"], "'%s'" % c["direct_target"])

        for c in ALL:
            _, c["targets"] = exporter.plan(c["name"], SERIES)
            c["expected"] = SERIES + AUTO_SERIES * len(c["targets"])

    @staticmethod
    def more_targets(clusters):
        """The clusters the seed's job does not list, as one more static_configs entry (the
        job's last key is static_configs, so appended lines continue its list)."""
        extra = [c for c in clusters if c["target"] not in SEED_TARGETS]
        if not extra:
            return ""
        return ("  # the exit node's further tunnels, one target per Service as the seed's\n"
                "  - targets:\n" + "".join("    - '%s'\n" % c["target"] for c in extra))

    def tenants_job(self, clusters):
        """The seed's job byte for byte, then the further clusters' targets, then the
        relabelling that does what the chart's per-tunnel Services do on Kubernetes: each
        `<cluster>-inlets-pro-data-plane:9090` goes to its tunnel's binding on the exit
        node. `instance` keeps the Service name (set before __address__ is rewritten)."""
        t = self.seed_job_text + self.more_targets(clusters)
        t += ("  # one exit node (--tunnels): Service name -> the tunnel's binding\n"
              "  relabel_configs:\n"
              "  - source_labels: [__address__]\n"
              "    target_label: instance\n")
        for c in clusters:
            t += ("  - source_labels: [__address__]\n"
                  "    regex: '%s'\n"
                  "    target_label: __address__\n"
                  "    replacement: '%s'\n" % (c["target"], c["tunnel_addr"]))
        return t

    # -- start-up --

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def prom_argv(self, name, cfg, listen, extra=()):
        db = os.path.join(self.tmp, "tsdb-" + name)
        os.makedirs(db)
        return [self.prometheus, "--config.file=" + cfg, "--storage.tsdb.path=" + db,
                "--web.listen-address=" + listen, "--storage.tsdb.retention.time=1d",
                "--web.console.templates=" + os.path.join(self.tmp, "none"),
                "--web.console.libraries=" + os.path.join(self.tmp, "none")] + list(extra)

    def global_yaml(self, external=None):
        s = "global:\n  scrape_interval: %s\n  scrape_timeout: %gs\n  evaluation_interval: %s\n" % (
            INTERVAL_STR, TIMEOUT, INTERVAL_STR)
        if external:
            s += "  external_labels:\n" + "".join("    %s: %s\n" % kv for kv in external.items())
        return s

    def start(self):
        self.token = secrets.token_hex(20)
        token = self.write("token.txt", self.token + "\n")  # `echo $TOKEN > token.txt`
        licence = self.write("inlets-license", "not-a-licence-ringlet-ignores-it\n")
        ex = os.path.join(HERE, "exporter.py")
        for c in ALL:  # with TENANTS the late cluster runs from the start, only its tunnel is not there yet
            c["token_file"] = token
            c["exporter_argv"] = [sys.executable, ex, "--cluster", c["name"], "--series", str(SERIES),
                                  "--listen", "127.0.0.1:9100"]
            c["exporter"] = Proc(c["short"] + "-exporter", c["ns"], c["exporter_argv"], self.logdir)
            scrape = [{"job_name": "prometheus", "static_configs": [{"targets": ["localhost:9090"]}]},
                      {"job_name": "kubernetes-pods", "static_configs": [
                          {"targets": ["127.0.0.1:9100"],
                           "labels": dict(t["labels"], __metrics_path__=t["path"])} for t in c["targets"]]}]
            cfg = self.write("prometheus-%s.yml" % c["name"], self.global_yaml({"cluster": c["name"]}) +
                             "scrape_configs: " + json.dumps(scrape, indent=1) + "\n")
            c["prom_argv"] = self.prom_argv(c["name"], cfg, "0.0.0.0:9090")
            c["prom"] = Proc(c["short"] + "-prometheus", c["ns"], c["prom_argv"], self.logdir)
            c["api"] = Prom(c["name"] + " prometheus", c["ns"], c["ip"] + ":9090")
        if TENANTS:
            self.start_exit_node(token)
        for c in ([] if TENANTS else CLUSTERS):
            # One exit node per client cluster (the seed's helm install per cluster), each on
            # its own addresses: the control plane on the veth (or, behind the ingress, on its
            # "ClusterIP"), the data plane on its "ClusterIP". Plain HTTP either way: the
            # chart's server runs --auto-tls=false behind the ingress, which terminates TLS.
            c["server"] = Proc(c["short"] + "-ringlet-server", OBS_NS, [
                self.inlets, "tcp", "server", "--auto-tls=false", "--token-from=" + token,
                "--control-addr=" + c["control_ip"], "--control-port=%d" % CONTROL_PORT,
                "--data-addr=" + c["data"]], self.logdir)
        for c in CLUSTERS:
            c["server"].wait_log("msg=", 10)
        if INGRESS:
            self.start_ingress()
        for c in ALL:
            # The client chart's arguments. Behind the ingress exactly the seed's URL,
            # verified against the test CA (--auto-tls=false: no CA fetched from the server);
            # without it ws:// straight to the server's control port.
            if INGRESS:
                url = ["--url=wss://%s/connect" % c["control_host"]]
                tls = ["--ca-file=" + self.ca]
            else:
                url, tls = ["--url=ws://%s:%d/connect" % (c["control_host"], CONTROL_PORT)], []
            c["client_argv"] = [self.inlets, "tcp", "client"] + url + [
                "--upstream=prometheus", "--ports=9090", "--auto-tls=false",
                "--token-from=" + c["token_file"], "--license-file=" + licence] + tls
        for c in CLUSTERS:
            c["client"] = Proc(c["short"] + "-ringlet-client", c["ns"], c["client_argv"], self.logdir)
        obs_cfg = self.write("prometheus-observability.yml", self.global_yaml() + self.job_text)
        direct_cfg = self.write("prometheus-observability-direct.yml", self.global_yaml() + self.direct_job_text)
        feat = ["--enable-feature=extra-scrape-metrics"]  # scrape_body_size_bytes
        self.obs = Proc("obs-prometheus", OBS_NS, self.prom_argv("obs", obs_cfg, OBS_PROM, feat), self.logdir)
        self.direct = Proc("obs-prometheus-direct", OBS_NS,
                           self.prom_argv("obs-direct", direct_cfg, DIRECT_PROM, feat), self.logdir)
        self.obs_api = Prom("observability prometheus", OBS_NS, OBS_PROM)
        self.direct_api = Prom("observability prometheus (direct twin)", OBS_NS, DIRECT_PROM)

        for c in CLUSTERS:
            c["server"].wait_log('msg="client connected"' + (" tunnel=%s " % c["name"] if TENANTS else ""), 20)
            c["client"].wait_log('msg="connected to the server"', 20)
        for c in ALL:
            wait_until("%s exporter" % c["name"], lambda c=c: http_get(
                c["ns"], "http://127.0.0.1:9100/-/healthy", timeout=5)[0] == 200, 60)
        for p in [c["api"] for c in ALL] + [self.obs_api, self.direct_api]:
            wait_until(p.name + " ready", p.ready, 60)
        for c in CLUSTERS:
            self.wait_data_plane(c)
        log("started: %d namespaces, %d processes; ringlet %s; %s%s" % (
            len(NAMESPACES), len(PROCS), self.ringlet_version, self.prom_version,
            "; nginx %s" % self.nginx_version if INGRESS else ""))
        if INGRESS:
            self.check_ingress_path()

    def wait_data_plane(self, c):
        def dp_open():
            with netns(OBS_NS):
                socket.create_connection((c["data"], c["data_port"]), timeout=2).close()
            return True
        wait_until("%s data plane %s" % (c["name"], c["tunnel_addr"]), dp_open, 20)

    def tunnels_yaml(self, clusters):
        """The exit node's tunnels file (engine/tenant.h): one tunnel per client cluster,
        named after it, its own token file, port 9090 bound at its own port."""
        y = "tunnels:\n"
        for c in clusters:
            y += ("  - name: %s\n    tokenFile: %s\n    ports:\n      - port: 9090\n"
                  "        listen: \"%s\"\n" % (c["name"], c["token_file"], c["tunnel_addr"]))
        return y

    def swap_tunnels(self, version, clusters):
        """Write tunnels-v<version>.yaml and point the tunnels.yaml symlink at it atomically,
        as the kubelet swaps a mounted ConfigMap's ..data: the server sees it with inotify."""
        path = os.path.join(self.tunnels_dir, "tunnels-v%d.yaml" % version)
        with open(path, "w") as f:
            f.write(self.tunnels_yaml(clusters))
        tmp = self.tunnels_file + ".tmp"
        os.symlink(os.path.basename(path), tmp)
        os.replace(tmp, self.tunnels_file)
        return path

    def start_exit_node(self, operator_token):
        """One ringlet server for every client cluster: --tunnels, each cluster a named tunnel
        with its own token file; the operator token only reads /status and /metrics."""
        self.tunnels_dir = os.path.join(self.tmp, "tunnels")
        tokdir = os.path.join(self.tmp, "tokens")
        os.makedirs(self.tunnels_dir)
        os.makedirs(tokdir)
        for c in ALL:
            c["token_file"] = os.path.join(tokdir, c["name"])
            with open(c["token_file"], "w") as f:
                f.write(secrets.token_hex(20) + "\n")
        self.tunnels_file = os.path.join(self.tunnels_dir, "tunnels.yaml")
        self.swap_tunnels(1, CLUSTERS)
        self.exit_node = Proc("exit-ringlet-server", OBS_NS, [
            self.inlets, "tcp", "server", "--auto-tls=false", "--token-from=" + operator_token,
            "--control-addr=" + EXIT_IP, "--control-port=%d" % CONTROL_PORT,
            "--data-addr=" + EXIT_DATA, "--tunnels=" + self.tunnels_file], self.logdir)
        for c in ALL:
            c["server"] = self.exit_node
        self.exit_node.wait_log("msg=", 10)

    def start_ingress(self):
        """nginx in the observability namespace on INGRESS_IP:443, one TLS server block per
        tunnel domain proxying to that cluster's control-plane service."""
        self.ca, certs = make_pki(os.path.join(self.tmp, "pki"))
        os.makedirs(os.path.join(self.tmp, "nginx-tmp"))
        blocks = "".join(NGINX_SERVER.format(
            ip=INGRESS_IP, port=INGRESS_PORT, domain=c["control_host"], crt=certs[c["control_host"]][0],
            key=certs[c["control_host"]][1], upstream="%s:%d" % (c["control_svc"], CONTROL_PORT))
            for c in CLUSTERS)
        conf = self.write("nginx.conf", NGINX_CONF.format(dir=self.tmp, servers=blocks))
        self.access_log = os.path.join(self.logdir, "nginx-access.log")
        argv = [self.nginx, "-p", self.tmp, "-e", os.path.join(self.logdir, "nginx-error.log"), "-c", conf]
        run(argv + ["-t"], ns=OBS_NS)
        self.ingress = Proc("obs-nginx", OBS_NS, argv, self.logdir)

        def listening():
            if not self.ingress.alive():
                raise Fail("nginx exited (status %s): %s" % (self.ingress.p.returncode, self.ingress.text()[-400:]))
            with netns(OBS_NS):
                socket.create_connection((INGRESS_IP, INGRESS_PORT), timeout=2).close()
            return True
        wait_until("nginx listening on %s:%d" % (INGRESS_IP, INGRESS_PORT), listening, 15, every=0.2)
        log("ingress: nginx %s on %s:%d (TLS for %s; test CA %s)" % (
            self.nginx_version, INGRESS_IP, INGRESS_PORT, ", ".join(c["control_host"] for c in CLUSTERS), self.ca))

    def check_ingress_path(self):
        """The tunnels go through the ingress and nothing else: the servers see the client
        clusters' addresses in X-Forwarded-For, the control planes are unreachable from the
        client clusters, and the ingress serves each domain with a certificate that verifies
        against the test CA only."""
        for c in CLUSTERS:
            check(re.search(r'msg="client connected".* remote=%s ' % re.escape(c["ip"]), c["server"].text()),
                  "%s: its ringlet server sees the client as %s (X-Forwarded-For from the ingress)" % (
                      c["name"], c["ip"]))
            try:
                with netns(c["ns"]):
                    socket.create_connection((c["control_ip"], CONTROL_PORT), timeout=2).close()
                reach = "connected"
            except OSError as e:
                reach = None if e.errno in (101, 113, 110) or isinstance(e, socket.timeout) else str(e)
            check(reach is None, "%s: the server's control plane %s:%d is not reachable from the client "
                  "cluster, only the ingress is" % (c["name"], c["control_ip"], CONTROL_PORT), str(reach))
            url = "https://%s/healthz" % c["control_host"]
            base = ["curl", "-sS", "--noproxy", "*", "--max-time", "10", "-o", "/dev/null",
                    "-w", "%{http_code} %{ssl_verify_result} %{remote_ip}:%{remote_port}", url]
            r = run(base[:1] + ["--cacert", self.ca] + base[1:], check_rc=False, ns=c["ns"])
            out = r.stdout.decode().split()
            check(r.returncode == 0 and out[:2] == ["200", "0"] and out[2] == "%s:%d" % (INGRESS_IP, INGRESS_PORT),
                  "%s: %s answers 200 from %s:%d through the ingress, certificate verified against the test CA" % (
                      c["name"], url, INGRESS_IP, INGRESS_PORT), "%s %s" % (out, r.stderr.decode()[-200:]))
            r = run(base, check_rc=False, ns=c["ns"])
            check(r.returncode == 60, "%s: without the test CA the certificate is rejected (curl exit %d)" % (
                c["name"], r.returncode))

    def check_ingress_log(self, c, before):
        """After c's tunnel WebSockets closed, nginx logged them (one per lane, as the server
        logged at the connect): GET /connect upgraded (101) over TLS for c's domain, proxied to
        its control-plane service. Returns the new lines."""
        lanes = [int(n) for n in re.findall(r'msg="client connected".* lanes=(\d+)', c["server"].text())]
        lanes = lanes[-1] if lanes else 1

        def got():
            ls = [e for e in parse_access_log(self.access_log)[before:]
                  if e.get("host") == c["control_host"] and e.get("request", "").startswith("GET /connect")]
            return ls if len(ls) >= lanes else None
        ls = wait_until("nginx access log lines for %s's %d tunnel WebSocket(s)" % (c["name"], lanes), got, 20, every=0.2)
        ok = all(e.get("status") == "101" and e.get("tls", "").startswith("TLSv1.") and
                 e.get("upstream") == "%s:%d" % (c["control_ip"], CONTROL_PORT) for e in ls)
        check(ok, "%s: the ingress logged its tunnel: %d WebSocket(s) (lanes) GET /connect 101 over %s for %s "
              "to %s:%d, %d bytes client -> ringlet server" % (
                  c["name"], len(ls), "/".join(sorted({e.get("tls") for e in ls})), c["control_host"],
                  c["control_svc"], CONTROL_PORT, sum(num(e.get("bytes_to_upstream")) for e in ls)), str(ls))
        return ls

    # -- helpers --

    def up_samples(self, api, c, window):
        return api.samples('up{job="federated-clusters",instance="%s"}[%ds]' % (api_target(api, self, c), window))

    def last_scrape(self, api, c):
        s = self.up_samples(api, c, int(3 * INTERVAL + 30))
        return s[-1] if s else (None, None)

    def wait_scrapes(self, c, after, n, what, api=None):
        """Wait until the observability Prometheus has n scrapes of c with timestamp > after;
        returns their (timestamp, up) samples."""
        api = api or self.obs_api

        def got():
            window = int(time.time() - after + 2 * INTERVAL + 5)
            s = [x for x in self.up_samples(api, c, window) if x[0] > after]
            return s if len(s) >= n else None
        return wait_until(what, got, n * INTERVAL + TIMEOUT + 20)

    def fed_count(self, c, api=None):
        return (api or self.obs_api).value('count({cluster="%s"})' % c["name"]) or 0

    def fresh_count(self, c, after):
        """How many federated series of c have their latest sample after `after`. timestamp()
        returns a sample's own timestamp only for a plain selector, and drops the metric name
        (series of different metrics would collide), so it is asked once per metric name."""
        total = 0
        for name in c["metric_names"]:
            v = self.obs_api.value('count(timestamp({__name__="%s",cluster="%s"}) > %.3f)' % (name, c["name"], after))
            total += int(v or 0)
        return total or None

    def durations(self, api, c, start, end):
        target = api_target(api, self, c)
        w = max(1, int(end - start))
        q = '%%s{job="federated-clusters",instance="%s"}[%ds]' % (target, w)
        d = api.query(q % "scrape_duration_seconds", end)
        b = api.query(q % "scrape_body_size_bytes", end)
        return ([float(v) for _, v in d[0]["values"]] if d else [],
                [float(v) for _, v in b[0]["values"]] if b else [])

    def curl(self, url, extra, outfile="/dev/null"):
        argv = ["curl", "-sS", "--noproxy", "*", "--max-time", "120", "-G"]
        for s in self.selectors:
            argv += ["--data-urlencode", "match[]=" + s]
        argv += extra + ["-o", outfile, "-w", "%{http_code} %{size_download} %{time_total}", url]
        r = run(argv, timeout=130, ns=OBS_NS)
        code, size, secs = r.stdout.decode().split()
        if code != "200":
            raise Fail("curl %s: HTTP %s" % (url, code))
        return int(size), float(secs)

    def ringlet_metrics(self, c):
        """Best effort: the samples of c's ringlet server /metrics ({series: value}), or None
        when this build does not serve it. Nothing is asserted on them (yet)."""
        try:
            st, _, body = http_get(OBS_NS, "http://%s:%d/metrics" % (c["control_ip"], CONTROL_PORT), timeout=10,
                                   headers={"Authorization": "Bearer " + self.token})
        except OSError:
            return None
        if st != 200:
            return None
        out = {}
        for ln in body.decode(errors="replace").splitlines():
            if ln and not ln.startswith("#"):
                k, _, v = ln.rpartition(" ")
                try:
                    out[k] = float(v)
                except ValueError:
                    pass
        return out

    def curl_parallel(self, jobs):
        """Start one curl per (url, extra args, outfile) at once; wait for all."""
        procs = []
        for url, extra, outfile in jobs:
            argv = ["ip", "netns", "exec", OBS_NS, "curl", "-sS", "--noproxy", "*", "--max-time", "120", "-G"]
            for s in self.selectors:
                argv += ["--data-urlencode", "match[]=" + s]
            argv += extra + ["-o", outfile, "-w", "%{http_code}", url]
            procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE))
        for (url, _, _), p in zip(jobs, procs):
            out, err = p.communicate(timeout=130)
            if p.returncode != 0 or out.decode() != "200":
                raise Fail("curl %s: exit %d, HTTP %s %s" % (url, p.returncode, out.decode(), err.decode()[-200:]))

    def check_series(self, c):
        """The observability Prometheus holds exactly c's series matched by the selectors,
        their own labels kept (honor_labels) plus cluster=<name>; none outside them."""
        obs, n = self.obs_api, c["name"]
        src = c["api"].series(self.selectors)
        check(len(src) == c["expected"], "%s: its Prometheus holds %d series matched by %s" % (
            n, c["expected"], ", ".join(self.selectors)), "it holds %d" % len(src))
        want = {labelset(s, {"cluster": n}) for s in src}
        got = {labelset(s) for s in obs.series(['{cluster="%s"}' % n])}
        missing, extra = want - got, got - want
        check(not missing and not extra,
              "%s: the observability Prometheus holds exactly those %d series, original labels "
              "(job, instance, app, pod...) and cluster=\"%s\"" % (n, len(want), n),
              "%d missing (e.g. %s), %d unexpected (e.g. %s)" % (
                  len(missing), [fmt_series(x) for x in list(missing)[:3]],
                  len(extra), [fmt_series(x) for x in list(extra)[:3]]))
        c["metric_names"] = sorted({dict(s)["__name__"] for s in got})
        apps = {dict(s)["app"] for s in got}
        jobs = {dict(s)["job"] for s in got}
        check(apps == {"node-exporter", "kube-state-metrics", "kube-eagle"} and jobs == {"kubernetes-pods"},
              "%s: honor_labels kept job=\"kubernetes-pods\" and the app labels" % n, "apps %s jobs %s" % (apps, jobs))
        notfed = c["api"].value('count({job="prometheus"})') or 0
        check(notfed > 0 and obs.value('count({cluster="%s",job="prometheus"})' % n) is None,
              "%s: the %d series outside the selectors (job=\"prometheus\") were not federated" % (n, notfed))

    # -- phase A: federation in steady state --

    def steady(self):
        log("waiting for every federated series to arrive (expected per cluster: %d exporter + %d "
            "scrape series)" % (SERIES, AUTO_SERIES * len(AWS["targets"])))
        for c in CLUSTERS:
            wait_until("%s: %d series matched by the match[] selectors in its own Prometheus" % (c["name"], c["expected"]),
                       lambda c=c: c["api"].value("count(%s)" % " or ".join(self.selectors)) == c["expected"],
                       3 * INTERVAL + 60, every=1)
            wait_until("%s: %d federated series at the observability Prometheus" % (c["name"], c["expected"]),
                       lambda c=c: self.fed_count(c) == c["expected"], 4 * INTERVAL + 60, every=1)
        t_start = time.time()
        m0 = {c["name"]: self.ringlet_metrics(c) for c in CLUSTERS}
        log("complete; steady state for %d scrape intervals" % 4)
        for c in CLUSTERS:
            self.wait_scrapes(c, t_start, 4, "4 federation scrapes of %s" % c["name"])
            self.wait_scrapes(c, t_start, 3, "3 direct scrapes of %s" % c["name"], api=self.direct_api)
        t_end = time.time()
        for c in CLUSTERS:
            m1 = self.ringlet_metrics(c)
            if m0[c["name"]] is not None and m1 is not None:
                c["ringlet_delta"] = {k: v - m0[c["name"]].get(k, 0) for k, v in m1.items()
                                      if ("bytes_total" in k or k.startswith("tcp_dataplane_connections_total"))
                                      and (not TENANTS or 'tunnel="%s"' % c["name"] in k)}
        window = int(t_end - t_start)
        obs = self.obs_api
        for c in CLUSTERS:
            n = c["name"]
            self.check_series(c)
            fresh = self.fresh_count(c, t_start)
            check(fresh == c["expected"], "%s: all %d federated series have samples newer than the steady-state start" % (
                n, c["expected"]), "%s fresh" % fresh)
            sel = 'job="federated-clusters",instance="%s"' % c["target"]
            check(obs.value("min_over_time(up{%s}[%ds])" % (sel, window)) == 1.0,
                  "%s: every federation scrape through ringlet in %d s was up (%d scrapes)" % (
                      n, window, obs.value("count_over_time(up{%s}[%ds])" % (sel, window))))
            check(obs.value("scrape_samples_scraped{%s}" % sel) == c["expected"],
                  "%s: the last scrape through ringlet carried %d samples" % (n, c["expected"]))
            dsel = 'job="federated-clusters",instance="%s"' % c["direct_target"]
            check(self.direct_api.value("min_over_time(up{%s}[%ds])" % (dsel, window)) == 1.0,
                  "%s: every direct federation scrape (the baseline) was up" % n)
            c["tunnel_durations"], c["tunnel_bytes"] = self.durations(obs, c, t_start, t_end)
            c["direct_durations"], c["direct_bytes"] = self.durations(self.direct_api, c, t_start, t_end)
        self.rep["steady_window"] = window
        self.fetches()

    def fetches(self):
        """/federate through the tunnel and direct, with curl from the observability namespace."""
        for c in CLUSTERS:
            tun = "http://%s/federate" % c["tunnel_addr"]
            dir_ = "http://%s/federate" % c["direct_target"]
            f = {}
            f["plain"], _ = self.curl(tun, [])
            f["plain_direct"], _ = self.curl(dir_, [])
            # Prometheus scrapes with Accept-Encoding: gzip; the tunnel must carry the gzip
            # stream untouched. The client Prometheus's output is deterministic for one state
            # of its head, so three fetches started together (direct, tunnel, direct) usually
            # see the same state; the tunnel's raw bytes equal to either direct body prove the
            # pass-through. A scrape landing among them only means another try.
            hdr = ["-H", "Accept-Encoding: gzip", "-D"]
            paths = [os.path.join(self.tmp, "federate-%s-%s.gz" % (c["short"], k)) for k in ("d1", "t", "d2")]
            same, stable = None, 0
            for attempt in range(10):
                self.curl_parallel([(url, hdr + [p + ".headers"], p) for url, p in zip((dir_, tun, dir_), paths)])
                d1, t, d2 = (open(p, "rb").read() for p in paths)
                if t in (d1, d2):
                    same, d = True, (d1 if t == d1 else d2)
                    break
                stable += d1 == d2  # the tunnel's request may still have come after an ingestion
                time.sleep(0.3)
            if same is None and stable >= 3:
                same, d = False, d1
            heads = open(paths[1] + ".headers").read().lower()
            check("content-encoding: gzip" in heads and t[:2] == b"\x1f\x8b",
                  "%s: /federate through ringlet answers gzip to Accept-Encoding: gzip" % c["name"])
            if same is None:
                log("note  %s: the client Prometheus ingested during every fetch (10 tries); byte comparison "
                    "skipped, comparing the decompressed series instead" % c["name"])
                ls = lambda b: {ln.rsplit(" ", 2)[0] for ln in gzip.decompress(b).decode().splitlines()  # noqa: E731
                                if ln and not ln.startswith("#")}
                check(ls(t) == ls(d1), "%s: the gunzipped series through ringlet equal the direct ones" % c["name"])
                d = d1
            else:
                check(same, "%s: the raw gzip body through ringlet is byte-identical to the direct one "
                      "(%d bytes, sha256 %s)" % (c["name"], len(t), hashlib.sha256(t).hexdigest()[:16]),
                      "in %d tries with both direct fetches equal, the tunnel's body differed (tunnel %d bytes, "
                      "direct %d bytes)" % (stable, len(t), len(d1)))
            c["identical"] = same
            d1 = d
            lines = [ln for ln in gzip.decompress(t).decode().splitlines() if ln and not ln.startswith("#")]
            check(len(lines) == c["expected"], "%s: the gunzipped /federate body has %d samples" % (
                c["name"], c["expected"]), "it has %d" % len(lines))
            f["gzip"], f["gzip_direct"] = len(t), len(d1)
            tt, td = [], []
            for _ in range(3):
                tt.append(self.curl(tun, ["--compressed"])[1])
                td.append(self.curl(dir_, ["--compressed"])[1])
            f["curl_tunnel"], f["curl_direct"] = statistics.median(tt), statistics.median(td)
            c["fetch"] = f
            log("      %s: /federate %d bytes plain, %d gzip; curl --compressed median %.3f s through "
                "ringlet, %.3f s direct" % (c["name"], f["plain"], f["gzip"], f["curl_tunnel"], f["curl_direct"]))

    def check_bindings(self, clusters):
        """TENANTS: the observability Prometheus scrapes each cluster at its tunnel's binding on
        the exit node, under the seed's Service name (relabel_configs)."""
        ts = self.obs_api.api("/api/v1/targets", {"state": "active"})["activeTargets"]
        by = {t["labels"].get("instance"): t for t in ts if t["labels"].get("job") == "federated-clusters"}
        for c in clusters:
            t = by.get(c["target"])
            url = t and t.get("scrapeUrl", "")
            check(t is not None and url.startswith("http://%s/federate?" % c["tunnel_addr"]),
                  "%s: its target %s (instance label kept) is scraped at the tunnel's binding %s" % (
                      c["name"], c["target"], c["tunnel_addr"]), "target %s" % t)

    # -- phase T (E2E_TENANTS): a live reload of the exit node adds a fourth cluster --

    def add_cluster(self):
        c = LATE[0]
        obs = self.obs_api
        # The observability side first, as an operator would: the fourth Service's target is
        # added to the job (rewritten config, SIGHUP to Prometheus). Until the tunnel exists
        # nothing listens at its binding: the target is down. The window in which the other
        # three must not fail starts after this, so a glitch of Prometheus' own reload cannot
        # count against ringlet.
        self.write("prometheus-observability.yml", self.global_yaml() + self.tenants_job(ALL))
        self.obs.send(signal.SIGHUP)
        t_prom = time.time()
        sel4 = 'job="federated-clusters",instance="%s"' % c["target"]
        s = self.wait_scrapes(c, t_prom, 1, "a scrape of %s's new target" % c["name"])
        check(all(u == 0 for _, u in s), "%s: the observability Prometheus reloaded with its target %s; it is down "
              "(up=0) while the exit node has no such tunnel" % (c["name"], c["target"]))
        t_after = time.time()
        for o in CLUSTERS:
            self.wait_scrapes(o, t_after, 1, "a scrape of %s after Prometheus' reload" % o["name"])
        connects = {o["name"]: self.exit_node.text().count('msg="client connected" tunnel=%s ' % o["name"])
                    for o in CLUSTERS}

        # The reload: a new version of the tunnels file with the fourth tunnel, swapped in as
        # the kubelet swaps a ConfigMap (no signal: the server sees it with inotify).
        t0 = time.time()
        mark = len(self.exit_node.text())
        self.swap_tunnels(2, ALL)
        reloaded = 'msg="tunnels file reloaded" why=file-changed tunnels=%d added=1 removed=0 token_changed=0 rebound=0' % len(ALL)
        wait_until("the exit node's reload", lambda: reloaded in self.exit_node.text()[mark:], 15, every=0.1)
        t_reload = time.time()
        check(True, "the exit node saw the swapped tunnels file (inotify) and reloaded it %.2f s later: %d tunnels, "
              "one added, nothing removed, no token changed, nothing rebound" % (t_reload - t0, len(ALL)))
        c["client"] = Proc(c["short"] + "-ringlet-client", c["ns"], c["client_argv"], self.logdir)
        c["client"].wait_log('msg="connected to the server"', 30)
        self.exit_node.wait_log('msg="client connected" tunnel=%s ' % c["name"], 10)
        t_conn = time.time()
        self.wait_data_plane(c)
        log("      %s's ringlet client connected %.2f s after the reload; waiting for its series" % (
            c["name"], t_conn - t_reload))
        wait_until("%s: %d series matched by the selectors in its own Prometheus" % (c["name"], c["expected"]),
                   lambda: c["api"].value("count(%s)" % " or ".join(self.selectors)) == c["expected"], 60, every=1)
        wait_until("%s: %d federated series at the observability Prometheus" % (c["name"], c["expected"]),
                   lambda: self.fed_count(c) == c["expected"], 3 * INTERVAL + 30, every=1)
        t_series = time.time()
        # Three more scrapes of everyone, so the window is closed by scrapes after the fourth's
        # series arrived.
        for o in ALL:
            self.wait_scrapes(o, t_series, 3, "3 scrapes of %s after %s's series arrived" % (o["name"], c["name"]))
        t1 = time.time()
        w = int(t1 - t0) + 1

        self.check_bindings(ALL)
        self.check_series(c)
        check(obs.value("scrape_samples_scraped{%s}" % sel4) == c["expected"] and obs.value("up{%s}" % sel4) == 1,
              "%s: up, its last scrape through the new tunnel carried all %d samples" % (c["name"], c["expected"]))
        fresh = self.fresh_count(c, t_series)
        check(fresh == c["expected"], "%s: all %d series fresh" % (c["name"], c["expected"]), "%s fresh" % fresh)
        others = {}
        for o in CLUSTERS:
            sel = 'job="federated-clusters",instance="%s"' % o["target"]
            n_scr = int(obs.value("count_over_time(up{%s}[%ds])" % (sel, w)) or 0)
            lo = obs.value("min_over_time(up{%s}[%ds])" % (sel, w))
            smin = obs.value("min_over_time(scrape_samples_scraped{%s}[%ds])" % (sel, w))
            smax = obs.value("max_over_time(scrape_samples_scraped{%s}[%ds])" % (sel, w))
            check(lo == 1.0 and n_scr >= int(w / INTERVAL) - 1,
                  "%s: no failed scrape across the reload: %d scrapes in %d s, every one up" % (o["name"], n_scr, w),
                  "min up %s, %d scrapes (expected at least %d)" % (lo, n_scr, int(w / INTERVAL) - 1))
            check(smin == smax == o["expected"], "%s: every one of them carried all %d samples (scrape_samples_scraped)" % (
                o["name"], o["expected"]), "min %s max %s" % (smin, smax))
            fresh = self.fresh_count(o, t_series)
            check(fresh == o["expected"], "%s: all %d series still fresh" % (o["name"], o["expected"]), "%s fresh" % fresh)
            again = self.exit_node.text().count('msg="client connected" tunnel=%s ' % o["name"]) - connects[o["name"]]
            drops = o["client"].text().count("disconnected from the server")
            check(again == 0 and drops == 0 and o["client"].alive(),
                  "%s: its ringlet client stayed connected (no reconnect, no disconnect)" % o["name"],
                  "%d new connects at the server, %d disconnects logged by the client" % (again, drops))
            others[o["name"]] = n_scr
        check("tunnels file not reloaded" not in self.exit_node.text()[mark:], "no failed reload at the exit node")
        counts = {r["metric"].get("cluster", ""): int(float(r["value"][1]))
                  for r in obs.query('count by (cluster) ({job="kubernetes-pods"})')}
        want = {x["name"]: x["expected"] for x in ALL}
        check(counts == want, "the observability Prometheus: %s, every series of the clusters with its cluster label" % (
            ", ".join("%s %d" % kv for kv in sorted(counts.items()))), "want %s" % want)
        self.rep["reload"] = {"reload_secs": t_reload - t0, "connect_secs": t_conn - t_reload,
                              "series_secs": t_series - t_conn, "window": w, "scrapes": others}

    # -- phase B: kill a ringlet client during a scrape, restart it --

    def kill_during_scrape(self):
        c, other = AWS, EQX
        obs = self.obs_api
        t_phase = time.time()
        dev = ["dev", "v-obs"]
        # Stretch the scrape on the client cluster's uplink so that a kill lands inside it:
        # a token bucket on the veth (egress of the client namespace: the tunnel's direction
        # to the server) sized from this cluster's gzip body, aiming at ~1/2 scrape_timeout.
        # The bucket is kept small (a few packets) so that every scrape, not only the first
        # after an idle spell, is paced at the rate.
        target_secs = min(4.0, TIMEOUT / 2)
        rate = max(16000, int(c["fetch"]["gzip"] * 8 / target_secs))
        result, kills = None, 0
        for attempt in range(1, 7):
            if kills >= 3:
                break
            burst = max(3200, rate // 8 // 100)
            run(["tc", "qdisc", "replace"] + dev + ["root", "tbf", "rate", "%dbit" % rate,
                 "burst", str(burst), "limit", "16mb"], ns=c["ns"])
            t_shape = time.time()
            (ts, up), = self.wait_scrapes(c, t_shape, 1, "a shaped scrape of %s" % c["name"])[-1:]
            d, _ = self.durations(obs, c, ts - 1, ts + 0.5)
            shaped = d[-1] if d else 0
            log("      shaped uplink %d kbit/s: scrape of %s took %.2f s (up=%d)" % (rate // 1000, c["name"], shaped, up))
            if up != 1 or shaped < 0.6 or shaped > TIMEOUT * 0.8:
                rate = max(8000, rate // 3) if shaped < 0.6 else rate * 2
                continue
            # Prometheus starts a target's scrapes on a fixed grid: the next one is due at ts + k*interval.
            nxt = ts + INTERVAL
            while nxt < time.time() + 0.5:
                nxt += INTERVAL
            kill_at = nxt + shaped / 2
            time.sleep(max(0, kill_at - time.time()))
            log_mark = len(parse_access_log(self.access_log)) if INGRESS else 0
            # The kill, made deterministic. First the shaping goes, with its backlog (~100 KB,
            # over a second at the shaped rate: at 10k series often the whole rest of the
            # response, which would otherwise still arrive after the kill); the packets lost
            # with it leave a hole no one retransmits once the client is dead. Then SIGKILL.
            # Then ss -K resets the dead client's tunnel connections: the kernel closes a
            # killed process's sockets with a RST only if they hold unread data, otherwise it
            # keeps them (orphaned) to retransmit and send a FIN later. Without the qdisc in
            # the way the RSTs reach the peer (the server, or the ingress) at once; before,
            # they sat behind the backlog and were dropped with it, and behind nginx the
            # interrupted scrape failed only when nginx next sent to the client, 0.8-2.3 s later.
            peer = (INGRESS_IP, INGRESS_PORT) if INGRESS else (c["control_ip"], CONTROL_PORT)
            run(["tc", "qdisc", "del"] + dev + ["root"], ns=c["ns"])
            c["client"].stop(signal.SIGKILL, timeout=5)
            t_kill = time.time()
            kills += 1
            run(["ss", "-K", "dst", peer[0], "dport", "=", ":%d" % peer[1]], ns=c["ns"], check_rc=False)
            log("      SIGKILL %s's ringlet client %.2f s into the scrape due at %s" % (
                c["name"], t_kill - nxt, time.strftime("%H:%M:%S", time.localtime(nxt))))
            s = self.wait_scrapes(c, nxt - 0.5, 1, "the outcome of the interrupted scrape")
            ts2, up2 = s[0]
            d, _ = self.durations(obs, c, ts2 - 1, ts2 + 0.5)
            dur = d[-1] if d else float("nan")
            if up2 == 1:
                log("      the scrape finished before the kill (%.2f s); restarting and trying again" % dur)
                self.restart_client(c)
                continue
            result = {"attempt": kills, "kill_offset": t_kill - nxt, "failed_scrape_secs": dur,
                      "scrape_ts": ts2, "shaped_secs": shaped}
            break
        if result is None:
            raise Fail("could not land a client kill inside a scrape (%d kills, %d shaping rounds)" % (kills, attempt))
        check(abs(result["scrape_ts"] - nxt) < 1.0 and dur < TIMEOUT - 0.25,
              "%s: the scrape in flight when its ringlet client was killed failed (up=0) after %.2f s, "
              "%.2f s after the kill, not at the %gs scrape timeout: the server reset the connection" % (
                  c["name"], dur, nxt + dur - t_kill, TIMEOUT),
              "scrape at %.3f (expected %.3f), lasted %.2f s" % (result["scrape_ts"], nxt, dur))
        if INGRESS:
            ls = self.check_ingress_log(c, log_mark)
            result["ingress"] = {"lines": len(ls), "tls": sorted({e.get("tls") for e in ls}),
                                 "bytes_to_client": sum(num(e.get("bytes_to_client")) for e in ls),
                                 "bytes_from_upstream": sum(num(e.get("bytes_from_upstream")) for e in ls),
                                 "bytes_to_upstream": sum(num(e.get("bytes_to_upstream")) for e in ls),
                                 "secs": max(float(e.get("secs", 0)) for e in ls)}
        result["after_kill_secs"] = nxt + dur - t_kill
        t_conn = self.restart_client(c)
        result["reconnect_secs"] = t_conn
        t_restart = time.time()
        s = self.wait_scrapes(c, t_restart, 2, "two scrapes of %s after the restart" % c["name"])
        check(all(u == 1 for _, u in s[:2]), "%s: the next scrapes after the restart are up again (%s)" % (
            c["name"], ", ".join("up=%d" % u for _, u in s[:2])))
        check(obs.value('scrape_samples_scraped{job="federated-clusters",instance="%s"}' % c["target"]) == c["expected"],
              "%s: they carry all %d samples" % (c["name"], c["expected"]))
        w = int(time.time() - t_phase)
        sel = 'job="federated-clusters",instance="%s"' % other["target"]
        check(obs.value("min_over_time(up{%s}[%ds])" % (sel, w)) == 1.0,
              "%s: its federation stayed up meanwhile (%d scrapes)" % (
                  other["name"], obs.value("count_over_time(up{%s}[%ds])" % (sel, w))))
        self.rep["kill"] = result

    def restart_client(self, c):
        t = time.monotonic()
        c["client"].start()
        c["client"].wait_log('msg="connected to the server"', 30)
        secs = time.monotonic() - t
        log("      restarted %s's ringlet client: connected to the server in %.2f s" % (c["name"], secs))
        return secs

    # -- phase C: one client cluster goes away entirely --

    def stop_cluster(self):
        c, other = EQX, AWS
        obs = self.obs_api
        t_stop = time.time()
        log_mark = len(parse_access_log(self.access_log)) if INGRESS else 0
        took = {}
        for k in ("prom", "client", "exporter"):
            took[k] = c[k].stop(signal.SIGTERM, timeout=40)
        log("      stopped %s: prometheus in %.1f s, ringlet client in %.1f s, exporter in %.1f s" % (
            c["name"], took["prom"], took["client"], took["exporter"]))
        t_gone = time.time()
        if INGRESS:
            self.check_ingress_log(c, log_mark)
        self.wait_scrapes(other, t_gone, 3, "3 scrapes of %s after %s went away" % (other["name"], c["name"]))
        s = self.wait_scrapes(c, t_gone, 2, "2 scrapes of %s after it went away" % c["name"])
        w = int(time.time() - t_stop) + 1
        sel = 'job="federated-clusters",instance="%s"' % other["target"]
        check(obs.value("min_over_time(up{%s}[%ds])" % (sel, w)) == 1.0,
              "%s: every federation scrape stayed up while %s was gone (%d scrapes)" % (
                  other["name"], c["name"], obs.value("count_over_time(up{%s}[%ds])" % (sel, w))))
        fresh = self.fresh_count(other, t_gone)
        check(fresh == other["expected"], "%s: all %d series still fresh (samples newer than the stop)" % (
            other["name"], other["expected"]), "%s fresh" % fresh)
        check(obs.value("scrape_samples_scraped{%s}" % sel) == other["expected"],
              "%s: its last scrape carried all %d samples" % (other["name"], other["expected"]))
        check(all(u == 0 for _, u in s), "%s: its federation target is down (up=0) once the cluster is gone" % c["name"])
        d, _ = self.durations(obs, c, s[0][0] - 1, s[-1][0] + 0.5)
        stale = self.fresh_count(c, t_stop)
        check(stale is None, "%s: no sample of it is newer than the stop" % c["name"])
        self.rep["stop"] = {"took": took, "down_scrape_secs": max(d) if d else float("nan"),
                            "other_scrapes": obs.value("count_over_time(up{%s}[%ds])" % (sel, w))}

    # -- the report --

    def report(self, status):
        def st(v):
            return ("%.3f / %.3f / %.3f s (n=%d)" % (min(v), statistics.median(v), max(v), len(v))) if v else "n/a"
        r = []
        r.append("# ringlet e2e: Prometheus federation through ringlet tunnels%s\n" % (
            " behind an nginx ingress (wss://, TLS)" if INGRESS else ""))
        r.append("- result: **%s**" % status)
        if INGRESS:
            r.append("- variant: **ingress** (E2E_INGRESS=1): nginx %s in the observability namespace on %s:%d, "
                     "TLS with a test CA (openssl), one server block per domain proxying to the server's control "
                     "plane; clients `--url=wss://<cluster>.prometheus.example.com/connect --auto-tls=false "
                     "--ca-file=<test CA>`" % (self.nginx_version, INGRESS_IP, INGRESS_PORT))
        elif TENANTS:
            r.append("- variant: **tenants** (E2E_TENANTS=1): one exit node `tcp server --tunnels` for %d client clusters "
                     "(%s), then a fourth; each a named tunnel with its own token file, port 9090 bound at %s:%d.. ; the seed's job "
                     "verbatim plus the further targets and relabel_configs mapping each Service name to its binding; "
                     "%s added by a live reload (symlink swap seen by inotify)" % (
                         len(CLUSTERS), ", ".join(c["name"] for c in CLUSTERS), EXIT_DATA, BIND_BASE + 1, LATE[0]["name"]))
        else:
            r.append("- variant: plain (clients `--url=ws://<cluster>.prometheus.example.com:%d/connect` straight "
                     "to the server's control port; E2E_INGRESS=1 runs the ingress variant)" % CONTROL_PORT)
        r.append("- date: %s, host: %s, %d CPUs, kernel %s" % (
            datetime.datetime.now().isoformat(timespec="seconds"), platform.node(), os.cpu_count(), platform.release()))
        r.append("- ringlet: %s; %s" % (self.ringlet_version, self.prom_version))
        r.append("- series per cluster: %d exporter series in %d targets (+%d per-target scrape series) = %d federated"
                 % (SERIES, len(AWS["targets"]), AUTO_SERIES, AWS["expected"]))
        r.append("- scrape_interval: %s (seed: 15s), scrape_timeout %gs; steady-state window %s s; run time %.0f s"
                 % (INTERVAL_STR, TIMEOUT, self.rep.get("steady_window", "?"), time.monotonic() - T0))
        if all("fetch" in c for c in CLUSTERS):
            r.append("\n## /federate bytes (the seed's three match[] selectors; curl from the observability namespace)\n")
            r.append("| cluster | plain, through ringlet | plain, direct | gzip, through ringlet | gzip, direct | "
                     "gzip byte-identical | curl --compressed, ringlet | curl --compressed, direct |")
            r.append("|---|---:|---:|---:|---:|---|---:|---:|")
            for c in CLUSTERS:
                f = c["fetch"]
                ident = {True: "yes", False: "NO", None: "not compared (data changed)"}[c.get("identical")]
                r.append("| %s | %d | %d | %d | %d | %s | %.3f s | %.3f s |" % (
                    c["name"], f["plain"], f["plain_direct"], f["gzip"], f["gzip_direct"], ident,
                    f["curl_tunnel"], f["curl_direct"]))
        if all("tunnel_durations" in c for c in CLUSTERS):
            r.append("\n## Scrape durations, steady state (scrape_duration_seconds: min / median / max)\n")
            r.append("Both scrapers are identical Prometheus servers in the observability namespace with the same "
                     "job; one scrapes through the ringlet data plane, the other the client Prometheus directly "
                     "over the same veth.\n")
            r.append("| cluster | through ringlet | direct | median ratio | body bytes (scrape_body_size_bytes) |")
            r.append("|---|---|---|---:|---:|")
            for c in CLUSTERS:
                t, d = c["tunnel_durations"], c["direct_durations"]
                ratio = statistics.median(t) / statistics.median(d) if t and d else float("nan")
                r.append("| %s | %s | %s | %.2f | %s |" % (c["name"], st(t), st(d), ratio,
                                                         "%d" % c["tunnel_bytes"][-1] if c["tunnel_bytes"] else "n/a"))
        if any(c.get("ringlet_delta") for c in CLUSTERS):
            r.append("\n## ringlet's own /metrics on each server, steady-state window (best effort, not asserted)\n")
            r.append("| cluster | series | increase |")
            r.append("|---|---|---:|")
            for c in CLUSTERS:
                for k_, v in sorted((c.get("ringlet_delta") or {}).items()):
                    if v:
                        r.append("| %s | `%s` | %d |" % (c["name"], k_, v))
        k = self.rep.get("kill")
        if k:
            r.append("\n## Fault: ringlet client of orion-aws killed (SIGKILL) during a scrape\n")
            r.append("- uplink shaped so a scrape takes %.2f s; killed %.2f s into the scrape (kill %d)" % (
                k["shaped_secs"], k["kill_offset"], k["attempt"]))
            r.append("- that scrape failed (up=0) after %.2f s, %.2f s after the kill (scrape timeout %gs)" % (
                k["failed_scrape_secs"], k["after_kill_secs"], TIMEOUT))
            r.append("- restarted client connected to the server in %.2f s; the next two scrapes were up=1 with all samples; "
                     "orion-equinix stayed up throughout" % k["reconnect_secs"])
            ing = k.get("ingress")
            if ing:
                r.append("- nginx access log for the killed client's tunnel: %d WebSocket(s) (lanes) `GET /connect` 101 over %s, "
                         "up to %.1f s long; %d bytes to the client (%d from the ringlet server), %d bytes to the "
                         "ringlet server" % (ing["lines"], "/".join(ing["tls"]), ing["secs"], ing["bytes_to_client"],
                                             ing["bytes_from_upstream"], ing["bytes_to_upstream"]))
        rl = self.rep.get("reload")
        if rl:
            r.append("\n## Reload: %s added to the exit node\n" % LATE[0]["name"])
            r.append("- the server applied the swapped tunnels file %.2f s after the swap; the new client connected "
                     "%.2f s later; its %d series were all at the observability Prometheus %.1f s after that" % (
                         rl["reload_secs"], rl["connect_secs"], LATE[0]["expected"], rl["series_secs"]))
            r.append("- over the %d s from the swap to three scrapes after that: %s; every scrape up with all samples, "
                     "no client reconnected" % (rl["window"], ", ".join("%s %d scrapes" % kv for kv in rl["scrapes"].items())))
        s = self.rep.get("stop")
        if s:
            r.append("\n## Fault: orion-equinix stopped entirely (prometheus, ringlet client, exporter)\n")
            r.append("- SIGTERM to exit: prometheus %.1f s, ringlet client %.1f s, exporter %.1f s" % (
                s["took"]["prom"], s["took"]["client"], s["took"]["exporter"]))
            r.append("- its federation target went down (up=0; failed scrapes took at most %.3f s)" % s["down_scrape_secs"])
            r.append("- orion-aws: %d scrapes, all up, all %d series fresh" % (s["other_scrapes"], AWS["expected"]))
        return "\n".join(r) + "\n"

    def dump_logs(self):
        logs = [(p.name, p.logpath) for p in PROCS]
        if INGRESS:
            logs += [("nginx error log", os.path.join(self.logdir, "nginx-error.log")),
                     ("nginx access log", os.path.join(self.logdir, "nginx-access.log"))]
        for name, path in logs:
            try:
                lines = open(path, errors="replace").read().splitlines()[-25:]
            except OSError:
                continue
            print("---- last lines of %s (%s)" % (name, path))
            for ln in lines:
                print("     " + ln)


def api_target(api, sc, c):
    return c["direct_target"] if api is sc.direct_api else c["target"]


def _on_signal(sig, frame):
    raise SystemExit(128 + sig)


def main():
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)
    if os.geteuid() != 0:
        print("e2e: needs root (network namespaces)")
        return SKIP
    status, rc, sc = "FAIL", 1, None
    try:
        sc = Scenario()
        log("run %s: SERIES=%d per cluster, scrape_interval %s, namespaces %s, files in %s" % (
            RUN_ID, SERIES, INTERVAL_STR, " ".join(NAMESPACES), sc.tmp))
        setup_network()
        sc.start()
        log("phase 1: federation through the tunnels")
        sc.steady()
        if TENANTS:
            sc.check_bindings(CLUSTERS)
            log("phase 2: a live reload of the exit node's tunnels file adds %s" % LATE[0]["name"])
            sc.add_cluster()
        else:
            log("phase 2: kill orion-aws's ringlet client during a scrape, restart it")
            sc.kill_during_scrape()
            log("phase 3: stop orion-equinix entirely")
            sc.stop_cluster()
        status, rc = "PASS", 0
    except Skip as e:
        print(str(e))
        rc = SKIP
    except Fail as e:
        status = "FAIL: %s" % e
        log("FAIL  %s" % e)
    except SystemExit as e:
        status = "FAIL: interrupted (signal %s)" % (e.code - 128 if isinstance(e.code, int) else e.code)
        log(status)
    except Exception as e:  # a bug here or an unexpected answer: still clean up and fail
        import traceback
        traceback.print_exc()
        status = "FAIL: %s: %s" % (type(e).__name__, e)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        if sc is not None and rc != SKIP:
            if rc != 0:
                sc.dump_logs()
                pause = float(os.environ.get("E2E_PAUSE_ON_FAIL", "0"))
                if pause > 0:
                    log("pausing %.0f s before cleanup (E2E_PAUSE_ON_FAIL): namespaces %s" % (pause, " ".join(NAMESPACES)))
                    time.sleep(pause)
            text = sc.report(status)
            print("\n" + text)
            path = os.environ.get("E2E_REPORT")
            if path:
                with open(path, "w") as f:
                    f.write(text)
                log("report written to %s" % path)
        stop_all()
        clean = teardown_network()
        if not clean:
            log("FAIL  cleanup left something behind")
            rc = rc or 1
        else:
            log("cleanup: every process and namespace of run %s is gone" % RUN_ID)
        if sc is not None:
            if rc == 0 and not os.environ.get("E2E_KEEP"):
                shutil.rmtree(sc.tmp, ignore_errors=True)
            else:
                log("kept %s (configs, logs, TSDBs)" % sc.tmp)
    return rc


if __name__ == "__main__":
    sys.exit(main())
