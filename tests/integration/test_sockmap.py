#!/usr/bin/env python3
"""--sockmap: local hops steered through the kernel by eBPF (ebpf/README.md).

The test makes its own cgroup-v2 directory and moves itself into it, so the server, the
clients, the in-process consumer and the upstreams it starts are all in it; the ringlet
processes get --sockmap on --sockmap-cgroup <it>.

1. Steered: for every message-size boundary (0, 1, 125, 126, 127, 4 KiB +-1, 64 KiB +-1,
   the 256 KiB frame +-1, the 1 MiB window +-1, 4 MiB) a consumer sends a request of that size and half-closes;
   the upstream hashes it to EOF, answers the hash and a response of the same size, and
   half-closes; the consumer checks both. Both ringlet processes count one steered hop per
   connection and at least the payload bytes as moved in the kernel, with no fallback.
   Also over IPv6 (upstream on ::1), and with --data-path splice (which must fall back to
   copy for steered sockets). Another program's connection to the same upstream is not
   touched.
   A reader that stops for 3 s while 512 MiB are on their way: its steered queue holds at
   most 4 MiB and a message, both steered senders move to TCP (slow_reader), and
   everything arrives when the reader resumes.
2. Fallbacks, byte-exact all the same: an upstream outside the cgroup (no_peer) and an
   upstream in another network namespace across a veth pair (not_local). Then 100
   connections ending in the eight ways of test_lifecycle.py through steered hops:
   byte-exact where complete, nothing left open. --local: the client's listener hop and
   the server's hop to the target are steered too.
3. --sockmap on that cannot work refuses to start with the reason; auto starts without it
   and reports why in /metrics.
   A crash (SIGKILL of every ringlet process) leaves nothing attached or loaded.
4. When every process has stopped, no ringlet BPF program or map that appeared during the
   test is left (bpftool prog/map show), and nothing is attached to its cgroup (bpftool
   cgroup show).
"""
import fcntl
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import termios
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt
import test_lifecycle

HERE = os.path.dirname(os.path.abspath(__file__))
FRAME = 256 << 10
WINDOW = 1 << 20
LIMIT = 4 << 20  # SM_INFLIGHT_MAX: unread steered bytes before the sender moves to TCP
SIZES = [0, 1, 125, 126, 127, 4095, 4096, 4097, 65535, 65536, 65537, FRAME - 1, FRAME,
         FRAME + 1, WINDOW - 1, WINDOW, WINDOW + 1, 4 << 20]


def bpftool():
    return shutil.which("bpftool") or ("/usr/sbin/bpftool"
                                       if os.access("/usr/sbin/bpftool", os.X_OK) else None)


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.startswith("cgroup2 "):
                return left.split()[4]
    return None


def own_cgroup(mnt):
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                p = line[3:].strip()
                return mnt if p == "/" else mnt + p
    return None


def capability():
    """Skip (with the reason) on a machine that cannot run sockmap steering."""
    if os.geteuid() != 0:
        rt.skip("sockmap: needs root (CAP_BPF and CAP_NET_ADMIN) to load BPF programs")
    tool = bpftool()
    if not tool:
        rt.skip("sockmap: bpftool is not installed (make deps installs it)")
    mnt = cgroup2_mount()
    if not mnt:
        rt.skip("sockmap: no cgroup v2 hierarchy is mounted")
    out = subprocess.run([tool, "feature", "probe", "kernel"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, timeout=60).stdout.decode()
    missing = [w for w in ("program_type sock_ops", "program_type sk_msg",
                           "map_type sockhash", "map_type sk_storage")
               if "%s is available" % w not in out]
    if missing:
        rt.skip("sockmap: this kernel lacks " + ", ".join(missing))
    if not shutil.which("ip"):
        rt.skip("sockmap: the ip command (iproute2) is missing, needed for the netns hop")
    return tool, mnt


def ringlet_objects(tool):
    """{(kind, id): name} of the ringlet BPF programs and maps loaded now."""
    found = {}
    for what in ("prog", "map"):
        out = subprocess.run([tool, "-j", what, "show"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL).stdout.decode()
        for o in json.loads(out or "[]"):
            if o.get("name", "").startswith("ringlet_"):
                found[(what, o["id"])] = o["name"]
    return found


def exchange(addr, port, size):
    """One connection through the tunnel: returns None if both directions arrived whole
    and in order, else what went wrong."""
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    c = socket.socket(fam, socket.SOCK_STREAM)
    c.settimeout(60)
    try:
        c.connect((addr, port))
        c.sendall(struct.pack("!Q", size))
        sent = rt.send_pattern(c, size + 1, size)
        c.shutdown(socket.SHUT_WR)
        got_digest = rt.recv_exact(c, 32).hex()
        n, d = rt.recv_all(c)
    except OSError as e:
        return "size %d: %r" % (size, e)
    finally:
        c.close()
    if got_digest != sent:
        return "size %d: the upstream received other bytes than were sent" % size
    if n != size or d != rt.Pattern(size).digest(size):
        return "size %d: got %d response bytes (or other bytes) instead of %d" % (size, n, size)
    return None


def unread(sock):
    """Bytes waiting in sock's receive queue (FIONREAD; for a steered socket the kernel
    reports its sockmap queue)."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]


def slow_reader(h, port, size=512 << 20, stall=3.0):
    """Ask for size bytes, read nothing for stall seconds, then read all. Returns (error or
    None, description)."""
    c = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        c.sendall(struct.pack("!Q", size))
        c.shutdown(socket.SHUT_WR)
        peak = 0
        end = time.monotonic() + stall
        while time.monotonic() < end:
            peak = max(peak, unread(c))
            time.sleep(0.05)
        if peak == 0:
            return ("nothing was ever steered into the stalled reader's queue", "")
        if peak > LIMIT + (4 << 20):
            return ("%d MiB waited in the stalled reader's queue (bound: 4 MiB and one "
                    "message)" % (peak >> 20), "")
        got_digest = rt.recv_exact(c, 32).hex()
        n, d = rt.recv_all(c)
    finally:
        c.close()
    if got_digest != hashlib.sha256(b"").hexdigest():
        return ("the upstream saw request bytes", "")
    if n != size or d != rt.Pattern(size).digest(size):
        return ("got %d bytes (or other bytes) instead of %d after resuming" % (n, size), "")
    return (None, "at most %.1f MiB waited in the reader's queue while %d MiB were on their "
            "way for %.0f s; all of it arrived byte-exact on resuming" %
            (peak / (1 << 20), size >> 20, stall))


def body(h):
    tool, mnt = capability()
    # Objects that exist before the test are not its own (another ringlet may be running).
    before = ringlet_objects(tool)
    home = own_cgroup(mnt)
    cg = os.path.join(mnt, "ringlet-test-sockmap-%d" % os.getpid())
    for d in os.listdir(mnt):  # directories of earlier runs that ended abruptly
        if d.startswith("ringlet-test-sockmap-"):
            try:
                os.rmdir(os.path.join(mnt, d))
            except OSError:
                pass
    os.mkdir(cg)
    remove_stale_netns()
    ns = "rlsm%d" % os.getpid()
    cleanup = []
    # fail() ends the process at once: the harness then undoes what this test set up.
    h.on_cleanup.append(lambda: (undo(), os.path.isdir(cg) and os.rmdir(cg)))

    def undo():
        while cleanup:
            cleanup.pop()()
    try:
        with open(os.path.join(cg, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        cleanup.append(lambda: open(os.path.join(home, "cgroup.procs"), "w").write(
            str(os.getpid())))
        run_all(h, tool, cg, home, ns, cleanup, before)
    finally:
        for p in h.procs:
            p.kill()
        for p in h.procs:
            p.wait_exit(10)
        attached = None
        for _ in range(50):
            attached = subprocess.run([tool, "cgroup", "show", cg], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL).stdout.decode().strip()
            if not attached:
                break
            time.sleep(0.1)
        undo()
        try:
            os.rmdir(cg)
        except OSError:
            pass
    # 4. Nothing left behind: the kernel frees the objects when the last fd and the last
    # steered socket are gone (deferred work: allow it a few seconds).
    deadline = time.monotonic() + 15
    left = {k: v for k, v in ringlet_objects(tool).items() if k not in before}
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = {k: v for k, v in ringlet_objects(tool).items() if k not in before}
    h.check(not left, "no ringlet BPF program or map of this test is left once its processes "
            "have stopped (%s)" % (", ".join("%s %d %s" % (k[0], k[1], v)
                                             for k, v in sorted(left.items()))
                                   or "bpftool prog/map show: none"))
    h.check(not attached, "nothing is left attached to the test's cgroup once its processes "
            "have stopped (bpftool cgroup show: %r)" % attached)


def upstream_proc(h, name, addr, port, prefix=()):
    p = h.spawn(name, list(prefix) + [sys.executable, os.path.join(HERE, "sockmap_upstream.py"),
                                       addr, str(port)])
    if not p.wait_log(r"upstream listening", timeout=15):
        h.fail("%s did not start" % name)
    return p


def steer_metrics(h, port):
    code, _, text = rt.scrape(port, "/metrics", h.token)
    if code != 200:
        h.fail("/metrics on port %d answered %s" % (port, code))
    text = text.decode()
    v = lambda name, **kw: rt.metric(text, name, **kw) or 0
    return {
        "active": v("ringlet_sockmap_active"),
        "hops": v("ringlet_sockmap_hops_steered_total"),
        "bytes": v("ringlet_sockmap_bytes_total"),
        "not_local": v("ringlet_sockmap_fallbacks_total", reason="not_local"),
        "no_peer": v("ringlet_sockmap_fallbacks_total", reason="no_peer"),
        "unavailable": v("ringlet_sockmap_fallbacks_total", reason="unavailable"),
        "slow_reader": v("ringlet_sockmap_fallbacks_total", reason="slow_reader"),
        "sockets": v("ringlet_sockmap_sockets_total"),
    }


def remove_stale_netns():
    """Namespaces (and their veth ends) of earlier runs whose process is gone: a run that
    was killed could not remove them, and their routes would shadow this run's."""
    out = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout.decode()
    for m in re.finditer(r"^rlsm(\d+)\b", out, re.M):
        pid = int(m.group(1))
        if os.path.exists("/proc/%d" % pid):
            continue
        subprocess.run(["ip", "netns", "del", "rlsm%d" % pid], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "link", "del", "rlsm%dh" % (pid % 100000)],
                       stderr=subprocess.DEVNULL)


def free_octet():
    """An X for 10.250.X.0/30 that no address on the host uses yet."""
    out = subprocess.run(["ip", "-4", "-o", "addr"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL).stdout.decode()
    used = {int(x) for x in re.findall(r"\b10\.250\.(\d+)\.", out)}
    for k in range(200):
        octet = 16 + (os.getpid() + k) % 200
        if octet not in used:
            return octet
    rt.skip("sockmap: no free 10.250.X.0/30 for the netns hop")


def run_all(h, tool, cg, home, ns, cleanup, before):
    up = "127.0.0.2"
    steer = ["--sockmap", "on", "--sockmap-cgroup", cg]
    p_main, p_v6, p_out, p_ns = (rt.free_port_on("127.0.0.1", up) for _ in range(4))
    m_main, m_v6, m_out, m_ns = (rt.free_port("127.0.0.1") for _ in range(4))

    # The upstreams: in the cgroup (steered), outside it, and in a network namespace.
    upstream_proc(h, "upstream", up, p_main)
    upstream_proc(h, "upstream6", "::1", p_v6)
    upstream_proc(h, "upstream-out", up, p_out,
                  prefix=["sh", "-c", 'echo $$ >"$0/cgroup.procs" && exec "$@"', home])
    r = subprocess.run(["ip", "netns", "add", ns], stderr=subprocess.PIPE)
    if r.returncode != 0:
        rt.skip("sockmap: cannot create a network namespace: %s" % r.stderr.decode().strip())
    cleanup.append(lambda: subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL))
    octet = free_octet()
    host_ip, ns_ip = "10.250.%d.1" % octet, "10.250.%d.2" % octet
    veth = "rlsm%dh" % (os.getpid() % 100000)
    for cmd in (["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0",
                 "netns", ns],
                ["ip", "addr", "add", host_ip + "/30", "dev", veth],
                ["ip", "link", "set", veth, "up"],
                ["ip", "-n", ns, "addr", "add", ns_ip + "/30", "dev", "eth0"],
                ["ip", "-n", ns, "link", "set", "eth0", "up"],
                ["ip", "-n", ns, "link", "set", "lo", "up"]):
        r = subprocess.run(cmd, stderr=subprocess.PIPE)
        if r.returncode != 0:
            h.fail("netns set-up: %s: %s" % (" ".join(cmd), r.stderr.decode().strip()))
    cleanup.append(lambda: subprocess.run(["ip", "link", "del", veth],
                                          stderr=subprocess.DEVNULL))
    upstream_proc(h, "upstream-ns", ns_ip, p_ns, prefix=["ip", "netns", "exec", ns])

    srv = h.start_server(extra=steer)
    h.check(srv.wait_log(r'msg="steering local hops with sockmap"', 10),
            "the server attaches its steering programs to the test's cgroup")
    h.check(srv.wait_log(r'tunnels do not splice with --sockmap.*data_path=auto', 10),
            "--sockmap on with the default data path (auto) says tunnels do not splice")
    clients = {}
    for name, upstream, port, mport in (("main", up, p_main, m_main), ("v6", "::1", p_v6, m_v6),
                                        ("out", up, p_out, m_out), ("ns", ns_ip, p_ns, m_ns)):
        clients[name] = h.start_client(srv.control_port, [port], upstream=upstream,
                                       name="client-" + name,
                                       extra=steer + ["--metrics-addr",
                                                      "127.0.0.1:%d" % mport])
        h.wait_data_port(srv, port)

    # 1. Steered, at every boundary, both directions, half-closed both ways.
    bad = [e for e in (exchange("127.0.0.1", p_main, n) for n in SIZES) if e]
    h.check(not bad, "steered hops: %d sizes byte-exact both ways, half-close seen both "
            "ways (%s)" % (len(SIZES), "; ".join(bad[:3]) or "0 .. 4 MiB"))
    total = sum(SIZES)
    sm_s, sm_c = steer_metrics(h, srv.control_port), steer_metrics(h, m_main)
    h.check(sm_s["active"] == 1 and sm_c["active"] == 1,
            "both ends report ringlet_sockmap_active 1")
    h.check(sm_c["hops"] >= len(SIZES),
            "the client steered its upstream hop for every connection (%d >= %d)" %
            (sm_c["hops"], len(SIZES)))
    h.check(sm_s["hops"] >= len(SIZES),
            "the server steered its data-plane hop for every connection (%d >= %d)" %
            (sm_s["hops"], len(SIZES)))
    h.check(sm_c["bytes"] >= 2 * total and sm_s["bytes"] >= 2 * total,
            "each end moved at least the payload of both directions in the kernel "
            "(client %d, server %d, payload %d)" % (sm_c["bytes"], sm_s["bytes"], 2 * total))
    h.check(sm_c["no_peer"] == 0 and sm_c["not_local"] == 0,
            "no fallback on the steered client's hops")
    # Another program of the cgroup talking to the same upstream is not ringlet's hop.
    before_c = steer_metrics(h, m_main)["sockets"]
    direct = exchange(up, p_main, 1 << 20)
    after_c = steer_metrics(h, m_main)["sockets"]
    h.check(direct is None and after_c == before_c,
            "a connection of another program to the client's upstream is left alone "
            "(sockets in the map %d -> %d; %s)" % (before_c, after_c, direct or "byte-exact"))
    code, text = h.run([h.bin, "status", "--url", "http://127.0.0.1:%d" % srv.control_port,
                        "--token-file", h.token_file])
    h.check(code == 0 and re.search(r"Sockmap: +on, active \(\d+ hops steered", text),
            "ringlet status reports the server's steering (%r)" %
            [l for l in text.splitlines() if "Sockmap" in l])

    # A reader that stops: the steered hops hold a bounded amount (each sender moves to
    # TCP 4 MiB behind its reader, and TCP's window then stops it), and the transfer
    # completes byte-exact when the reader resumes.
    stall_bad = slow_reader(h, p_main)
    h.check(not stall_bad[0], "a stalled reader: %s" % (stall_bad[0] or stall_bad[1]))
    sm_s2, sm_c2 = steer_metrics(h, srv.control_port), steer_metrics(h, m_main)
    h.check(sm_s2["slow_reader"] >= 1 and sm_c2["slow_reader"] >= 1,
            "both steered hops moved to TCP behind the stalled reader (server %d, client %d)"
            % (sm_s2["slow_reader"], sm_c2["slow_reader"]))

    v6 = [e for e in (exchange("127.0.0.1", p_v6, n) for n in (0, 126, 65537, 1 << 20)) if e]
    sm6 = steer_metrics(h, m_v6)
    h.check(not v6 and sm6["hops"] >= 4,
            "an IPv6 upstream hop (::1) is steered and byte-exact (%d hops; %s)" %
            (sm6["hops"], "; ".join(v6) or "ok"))

    # 2. Fallbacks.
    out = [e for e in (exchange("127.0.0.1", p_out, n) for n in (1, 65536, 1 << 20)) if e]
    smo = steer_metrics(h, m_out)
    h.check(not out and smo["no_peer"] >= 3 and smo["hops"] == 0,
            "an upstream outside the cgroup falls back to TCP, byte-exact (no_peer %d, "
            "steered %d; %s)" % (smo["no_peer"], smo["hops"], "; ".join(out) or "ok"))
    nsr = [e for e in (exchange("127.0.0.1", p_ns, n) for n in (1, 65536, 1 << 20)) if e]
    smn = steer_metrics(h, m_ns)
    h.check(not nsr and smn["not_local"] >= 3 and smn["hops"] == 0,
            "an upstream in another network namespace (not local) falls back to TCP, "
            "byte-exact (not_local %d; %s)" % (smn["not_local"], "; ".join(nsr) or "ok"))

    # Connection lifecycles in every order through steered hops: nothing left behind.
    p_life, m_life = rt.free_port_on("127.0.0.1", up), rt.free_port("127.0.0.1")
    h.service(up, p_life, test_lifecycle.upstream, "upstream-life")
    cl_life = h.start_client(srv.control_port, [p_life], upstream=up, name="client-life",
                             extra=steer + ["--metrics-addr", "127.0.0.1:%d" % m_life])
    h.wait_data_port(srv, p_life)
    test_lifecycle.run(h, srv, cl_life, p_life, m_life, 100, label="steered: ")
    h.check(steer_metrics(h, m_life)["hops"] > 0, "steered: the lifecycle hops were steered")
    clients["life"] = cl_life

    # --local: the client's listener and the server's dial to the target are hops too.
    p_fwd_target = rt.free_port_on(up)
    upstream_proc(h, "upstream-fwd", up, p_fwd_target)
    srv_fwd = h.start_server(name="server-fwd", extra=steer + ["--client-forwarding"])
    lport, m_fwd = rt.free_port("127.0.0.1"), rt.free_port("127.0.0.1")
    p_unused = rt.free_port_on("127.0.0.1", up)
    cl_fwd = h.start_client(srv_fwd.control_port, [p_unused], upstream=up, name="client-fwd",
                            extra=steer + ["--local", "%d:%s:%d" % (lport, up, p_fwd_target),
                                           "--metrics-addr", "127.0.0.1:%d" % m_fwd])
    fwd = [e for e in (exchange("127.0.0.1", lport, n) for n in (1, 65537, 1 << 20)) if e]
    smf_s, smf_c = steer_metrics(h, srv_fwd.control_port), steer_metrics(h, m_fwd)
    h.check(not fwd and smf_c["hops"] >= 3 and smf_s["hops"] >= 3,
            "--local: the client's listener hop and the server's target hop are steered, "
            "byte-exact (client %d, server %d hops; %s)" %
            (smf_c["hops"], smf_s["hops"], "; ".join(fwd) or "ok"))
    clients["fwd"], clients["fwd-server"] = cl_fwd, srv_fwd

    # A crash: SIGKILL every ringlet process. The kernel releases what they held: no
    # program stays attached to the cgroup and no program or map of theirs stays loaded,
    # so the next start (below) begins clean.
    for p in [srv] + list(clients.values()):
        p.kill()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        attached = subprocess.run([tool, "cgroup", "show", cg], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL).stdout.decode().strip()
        left = {k: v for k, v in ringlet_objects(tool).items() if k not in before}
        if not attached and not left:
            break
        time.sleep(0.2)
    h.check(not attached and not left, "after SIGKILL of every ringlet process nothing is "
            "left attached or loaded (cgroup: %r, objects: %s)" % (attached, sorted(left.values())))

    # --data-path splice with steering: the steered sockets are read by copy.
    srv = h.start_server(name="server-splice", extra=steer + ["--data-path", "splice"])
    h.check(srv.wait_log(r'tunnels do not splice with --sockmap.*data_path=splice', 10),
            "--data-path splice with --sockmap says tunnels do not splice")
    cl = h.start_client(srv.control_port, [p_main], upstream=up, name="client-splice",
                        extra=steer + ["--data-path", "splice"])
    h.wait_data_port(srv, p_main)
    sp = [e for e in (exchange("127.0.0.1", p_main, n) for n in (65535, 1 << 20, 4 << 20)) if e]
    h.check(not sp, "--data-path splice --sockmap on: byte-exact (%s)" % ("; ".join(sp) or "ok"))
    srv.stop()
    cl.stop()

    # 3. on refuses to start when it cannot work; auto goes on without and says why.
    notcg = h.dir  # a directory, but not a cgroup
    code, text = h.run([h.bin, "server", "--token", "x", "--control-port",
                        str(rt.free_port()), "--control-addr", "127.0.0.1", "--sockmap", "on",
                        "--sockmap-cgroup", notcg], timeout=20)
    h.check(code != 0 and "is not a cgroup v2 directory" in text and
            "server listening" not in text,
            "--sockmap on with a directory that is not a cgroup: exit %d, %r" %
            (code, text.strip().splitlines()[-1:]))
    srv = h.start_server(name="server-auto", extra=["--sockmap", "auto", "--sockmap-cgroup",
                                                    notcg])
    h.check(srv.wait_log(r'--sockmap auto: local hops take TCP" why=', 10),
            "--sockmap auto logs why it is not in use")
    code, text = h.run([h.bin, "status", "--url", "http://127.0.0.1:%d" % srv.control_port,
                        "--token-file", h.token_file])
    h.check("Sockmap:   auto, not in use: %s is not a cgroup v2 directory" % notcg in text,
            "ringlet status says why --sockmap auto is not in use")
    sma = steer_metrics(h, srv.control_port)
    h.check(sma["active"] == 0 and sma["unavailable"] == 1,
            "--sockmap auto: ringlet_sockmap_active 0, fallbacks{reason=unavailable} 1")
    srv.stop()


if __name__ == "__main__":
    rt.main("sockmap", body)
