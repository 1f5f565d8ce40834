#!/usr/bin/env python3
"""Live reload of the tunnels file (--tunnels), under load: while 256 MiB run through
tunnel A, a reload adds tunnel D, removes C and changes B's token. A's transfer completes
byte-exact with no reset; D's client connects and its binding works; C's binding refuses;
B's old client is disconnected (and refused when it comes back) and B's new token works.
The same reload with a broken file changes nothing and the log says where and why; a change
of the file seen by inotify (a symlink swap, as Kubernetes does) reloads it too."""
import os
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

BIG = 256 << 20
SMALL = 1 << 20
NAMES = ["alpha", "bravo", "charlie", "delta"]
UP = {"alpha": "127.0.0.2", "bravo": "127.0.0.3", "charlie": "127.0.0.4", "delta": "127.0.0.5"}
SEED = {"alpha": 61, "bravo": 62, "charlie": 63, "delta": 64}


def yaml_for(h, names, toks, binds, port):
    y = "tunnels:\n"
    for n in names:
        y += ("  - name: %s\n    tokenFile: %s\n    ports:\n      - port: %d\n"
              "        listen: \"127.0.0.1:%d\"\n" % (n, toks[n], port, binds[n]))
    return y


def swap(link, target):
    """Point the symlink at target atomically (as Kubernetes swaps ..data)."""
    tmp = link + ".tmp"
    os.symlink(target, tmp)
    os.replace(tmp, link)


def fetch(h, bind, name, n):
    s = rt.connect("127.0.0.1", bind, timeout=60)
    got, d = rt.recv_all(s)
    s.close()
    return got == n and d == rt.Pattern(SEED[name]).digest(n)


def refuses(addr, port, timeout=10):
    """Does addr:port refuse connections (its listener closed) within timeout?"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((addr, port), timeout=2).close()
            time.sleep(0.1)
        except ConnectionRefusedError:
            return True
    return False


def body(h):
    port = rt.free_port_on(*UP.values())
    binds = {n: rt.free_port_on("127.0.0.1") for n in NAMES}
    for n in NAMES:
        size = BIG if n == "alpha" else SMALL
        h.service(UP[n], port, rt.source_handler(SEED[n], size), "source-%s" % n)
    toks = {n: h.write("token-%s" % n, "tok-%s-%d\n" % (n, os.getpid())) for n in NAMES}
    # The file is a symlink to a versioned file, as a mounted ConfigMap is.
    v1 = h.write("tunnels-v1.yaml", yaml_for(h, NAMES[:3], toks, binds, port))
    tfile = os.path.join(h.dir, "tunnels.yaml")
    os.symlink(v1, tfile)
    srv = h.start_server(extra=["--tunnels", tfile])
    clients = {n: h.start_client(srv.control_port, [port], upstream=UP[n], name="client-" + n,
                                 token_file=toks[n]) for n in NAMES[:3]}
    for n in NAMES[:3]:
        h.wait_data_port(srv, binds[n])

    # 256 MiB on A, in the background.
    result = {}

    def transfer():
        try:
            result["ok"] = fetch(h, binds["alpha"], "alpha", BIG)
        except Exception as e:
            result["err"] = repr(e)
    th = threading.Thread(target=transfer, daemon=True)
    th.start()
    time.sleep(0.3)

    # The reload: D added, C removed, B's token changed.
    mark = srv.mark()
    with open(toks["bravo"], "w") as f:
        f.write("tok-bravo-new-%d\n" % os.getpid())
    v2 = h.write("tunnels-v2.yaml", yaml_for(h, ["alpha", "bravo", "delta"], toks, binds, port))
    swap(tfile, v2)
    srv.signal(signal.SIGHUP)
    # The token file and the file change apart: inotify may apply them in two reloads.
    h.check(srv.wait_log(r'msg="tunnels file reloaded".*added=1 removed=1', 10, after=mark)
            and srv.wait_log(r'msg="tunnels file reloaded".*token_changed=1', 10, after=mark),
            "the reload applies: one tunnel added, one removed, one token changed")
    h.check(not srv.wait_log(r'tunnels file not reloaded', 0.1, after=mark),
            "no failed reload on the way")
    th.join(120)
    h.check(result.get("ok") is True,
            "A's 256 MiB completed byte-exact through the reload (%s)" % result)
    code, _, m = rt.scrape(srv.control_port, "/metrics", h.token)
    rst = sum(v for v in [rt.metric(m.decode(), "ringlet_stream_resets_total",
                                    direction="sent", reason=r) or 0
                          for r in ("shutdown", "reset", "protocol", "timeout")])
    h.check(rst == 0, "no stream was reset on the server (%s)" % rst)

    # C: its binding refuses.
    h.check(refuses("127.0.0.1", binds["charlie"]),
            "the removed tunnel's binding refuses connections")
    # B: the old client is disconnected and refused when it comes back.
    h.check(clients["bravo"].wait_log(r'server rejected the token', 15),
            "B's client with the old token is disconnected and refused")
    nb = h.write("token-bravo-2", "tok-bravo-new-%d\n" % os.getpid())
    h.start_client(srv.control_port, [port], upstream=UP["bravo"], name="client-bravo-new",
                   token_file=nb)
    h.check(fetch(h, binds["bravo"], "bravo", SMALL), "B's new token works, byte-exact")
    # D: connects, its binding works.
    h.start_client(srv.control_port, [port], upstream=UP["delta"], name="client-delta",
                   token_file=toks["delta"])
    h.wait_data_port(srv, binds["delta"])
    h.check(fetch(h, binds["delta"], "delta", SMALL), "D's client connects and its binding "
            "works, byte-exact")

    # A broken file changes nothing and says where.
    mark = srv.mark()
    v3 = h.write("tunnels-v3.yaml", "tunnels:\n  - name: alpha\n    bogus: 1\n")
    swap(tfile, v3)
    srv.signal(signal.SIGHUP)
    h.check(srv.wait_log(r'tunnels file not reloaded.*tunnels.yaml:3: .*unknown key', 10, after=mark),
            "a broken file is refused with file:line")
    h.check(fetch(h, binds["delta"], "delta", SMALL), "and D still works")
    code, _, m = rt.scrape(srv.control_port, "/metrics", h.token)
    failed = rt.metric(m.decode(), "ringlet_config_reloads_total", result="failed")
    h.check(failed and failed >= 1, "the failed reload is counted (%s)" % failed)

    # inotify: a new version with D's binding moved (no signal) is seen and applied; D's
    # client is rebound without reconnecting, the old binding refuses.
    mark = srv.mark()
    old_bind = binds["delta"]
    binds["delta"] = rt.free_port_on("127.0.0.1")
    v4 = h.write("tunnels-v4.yaml", yaml_for(h, ["alpha", "bravo", "delta"], toks, binds, port))
    swap(tfile, v4)
    h.check(srv.wait_log(r'msg="tunnels file reloaded" why=file-changed.*rebound=1', 10,
                         after=mark),
            "a change of the file is seen and reloaded without a signal")
    h.wait_data_port(srv, binds["delta"])
    h.check(fetch(h, binds["delta"], "delta", SMALL),
            "D's new binding works, byte-exact, without its client reconnecting")
    h.check(not h.procs[-1].count(r'disconnected from the server'),
            "D's client was not disconnected by the rebinding")
    h.check(refuses("127.0.0.1", old_bind), "D's old binding refuses connections")


rt.main("tenants_reload", body)
