#!/usr/bin/env python3
"""A slow reader never grows memory without bound: the upstream sends 1 GiB while the
data-plane reader stops; the server's and the client's resident memory stay bounded (a
stream costs at most its credit window on each side), and when the reader resumes the
whole GiB arrives byte-exact. Once for each data path: copy (the default), and splice,
where the server moves payloads from the tunnel into a pipe and the pipe into the stalled
socket, and what the pipe cannot take waits in the stream's buffer behind it."""
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

GIB = 1 << 30
LIMIT_MIB = 64  # the documented bound for one stalled stream, with ample margin


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return -1.0


def run(h, path):
    up = "127.0.0.2"
    port = rt.free_port_on("127.0.0.1", up)
    h.service(up, port, rt.source_handler(33, GIB), "source-" + path)
    dp = ["--data-path", path]
    srv = h.start_server(name="server-" + path, extra=dp)
    cli = h.start_client(srv.control_port, [port], upstream=up, name="client-" + path,
                         extra=dp)
    h.wait_data_port(srv, port)

    s = rt.connect("127.0.0.1", port, timeout=60)
    s.setsockopt(rt.socket.SOL_SOCKET, rt.socket.SO_RCVBUF, 64 * 1024)
    hsh = hashlib.sha256()
    first = rt.recv_exact(s, 1 << 20)
    hsh.update(first)
    got = len(first)
    # The reader stops; the upstream keeps sending. Sample memory for 5 s.
    peak = {"server": 0.0, "client": 0.0}
    t_end = time.monotonic() + 5
    while time.monotonic() < t_end:
        peak["server"] = max(peak["server"], rss_mib(srv.pid))
        peak["client"] = max(peak["client"], rss_mib(cli.pid))
        time.sleep(0.1)
    h.check(peak["server"] < LIMIT_MIB and peak["client"] < LIMIT_MIB,
            "%s: while the reader is stopped, peak RSS stays bounded: server %.1f MiB, "
            "client %.1f MiB (< %d MiB)" % (path, peak["server"], peak["client"], LIMIT_MIB))
    # Resume: everything arrives, byte-exact.
    s.settimeout(120)
    while got < GIB:
        b = s.recv(1 << 20)
        if not b:
            break
        hsh.update(b)
        got += len(b)
    s.close()
    h.check(got == GIB and hsh.hexdigest() == rt.Pattern(33).digest(GIB),
            "%s: after the stall the 1 GiB completes byte-exact" % path)
    if path == "splice":
        body = rt.scrape(srv.control_port, "/metrics", h.token)[2].decode()
        spliced = rt.metric(body, "ringlet_tunnel_spliced_bytes_total")
        # While the reader is stopped its pipe stays full and what arrives waits in the
        # buffer behind it (by design), so the spliced share depends on how much of the
        # transfer the stall covers: on a loaded machine about half. A quarter is far above
        # what a path that never splices shows (0).
        h.check(spliced and spliced > GIB // 4,
                "splice: the server spliced a large share from the tunnel (%s bytes of %d)" %
                (spliced, GIB))
    srv.stop()
    cli.stop()


def main():
    h = rt.Harness("slowreader")
    for path in ("copy", "splice"):
        run(h, path)
    rt.log("PASS (%d checks)" % h.checks)


if __name__ == "__main__":
    main()
