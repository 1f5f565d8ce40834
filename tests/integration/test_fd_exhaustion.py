#!/usr/bin/env python3
"""Out of descriptors, the server neither spins nor floods its log, and its control port
still answers: run with a hard open-file limit of 256 and 300 data-plane connections held,
its data-plane listeners pause at the descriptor reserve (64 of the limit's, a quarter at
most), its CPU stays near idle, a few log lines say so, the pause is counted; meanwhile
/healthz answers and a new tunnel client connects; once the connections close the data
plane accepts again by itself. Once with the copy data path, once with splice (whose
streams take pipes: none within the reserve). The client raises its soft limit to the hard one at
start-up and says so."""
import os
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

HELD = 300


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(h, data_path):
    """The whole check with --data-path data_path on both ends ("splice": each stream's
    pipes must not take the reserve either)."""
    dp = ["--data-path", data_path]
    tag = "" if data_path == "copy" else "-" + data_path
    label = "" if data_path == "copy" else data_path + ": "
    up = "127.0.0.2"
    port = rt.free_port_on("127.0.0.1", up)
    h.service(up, port, rt.name_handler("upstream"), "upstream")
    # The server under a hard limit of 256 descriptors (prlimit then exec).
    ctl = rt.free_port("127.0.0.1")
    argv = ["/usr/bin/prlimit", "--nofile=256:256", h.bin, "server", "--auto-tls=false",
            "--token-file", h.token_file, "--control-port", str(ctl), "--control-addr",
            "127.0.0.1", "--data-addr", "127.0.0.1"] + dp
    srv = h.spawn("server" + tag, argv)
    srv.control_port = ctl
    if not srv.wait_log(r'msg="server listening"', 15):
        h.fail("server did not start")
    cli = h.start_client(ctl, [port], upstream=up, name="client" + tag, extra=dp)
    h.check(cli.wait_log(r'msg="open-file limit raised"', 5) or
            cli.wait_log(r'msg="client starting"', 1),
            "the client starts (its soft open-file limit raised when below the hard one)")
    h.wait_data_port(srv, port)

    held = []
    for _ in range(HELD):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=2)
            held.append(s)
        except OSError:
            break
    h.check(srv.wait_log(r'descriptors low: pausing the listener to keep the reserve|'
                         r'cannot accept: pausing the listener.*Too many open files', 10),
            "near the open-file limit, the data-plane listener pauses and says why")
    for i in range(5):
        code, _, body = rt.http_get("127.0.0.1", ctl, "/healthz", timeout=5)
        h.check(code == 200, "/healthz answers while the data plane holds the descriptors "
                "(try %d: %s)" % (i + 1, code))
    cli2 = h.start_client(ctl, [port], upstream=up, name="client2" + tag, wait=False,
                          extra=dp)
    h.check(cli2.wait_log(r'msg="connected to the server"', 15),
            "a new tunnel client connects while the data plane holds the descriptors")
    h.check(srv.count(r'Too many open files') == 0,
            "the reserve kept the server from running out of descriptors")
    t0, c0 = time.monotonic(), cpu_s(srv.pid)
    time.sleep(3)
    used = (cpu_s(srv.pid) - c0) / (time.monotonic() - t0)
    h.check(used < 0.3, "the server does not spin while out of descriptors (%.0f %% CPU)" %
            (100 * used))
    lines = srv.count(r'cannot accept|accept failed|descriptors low')
    h.check(lines <= 20, "a bounded number of log lines about it (%d)" % lines)

    for s in held:
        s.close()
    held = []
    ok = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not ok:
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=3)
            c.settimeout(3)
            ok = c.recv(64) == b"upstream\n"
            c.close()
        except OSError:
            time.sleep(0.5)
    h.check(ok, "once descriptors are free again, the listener accepts by itself")
    code, _, m = rt.scrape(ctl, "/metrics", h.token)
    paused = rt.metric(m.decode(), "ringlet_accept_paused_total")
    h.check(code == 200 and paused and paused >= 1, "the pauses are counted (%s)" % paused)


def body(h):
    if not os.path.exists("/usr/bin/prlimit"):
        rt.skip("prlimit (util-linux) is missing")
    run(h, "copy")
    run(h, "splice")


rt.main("fd_exhaustion", body)
