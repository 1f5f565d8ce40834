#!/usr/bin/env python3
"""Memory is given back when the tunnel goes quiet: bulk through the tunnel (4 streams each
way) makes both processes' buffer rings grow; once the transfers end and the tunnel idles,
each process's resident memory (VmRSS) falls back most of the way to where it was before
the bulk. A second bulk transfer after the shrink still arrives byte-exact."""
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

MIB = 1 << 20
STREAMS = 4  # each way
PER_STREAM = 96 * MIB
QUIET_WAIT = 30  # s: the bound on waiting for the memory to come back


def status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s in /proc/%d/status" % (key, pid))


def bulk(h, p_sink, p_src, sink, src, round_):
    """STREAMS uploads into the sink and STREAMS downloads from the source at once; every
    one byte-exact."""
    results = {}
    lock = threading.Lock()

    def up(i):
        try:
            s = rt.connect("127.0.0.1", p_sink, timeout=120)
            d = rt.send_pattern(s, 100 + i, PER_STREAM)
            s.shutdown(socket.SHUT_WR)
            rt.recv_all(s)
            s.close()
            r = ("up", d)
        except Exception as e:
            r = ("up", repr(e))
        with lock:
            results[("up", i)] = r

    def down(i):
        try:
            s = rt.connect("127.0.0.1", p_src, timeout=120)
            r = ("down", rt.recv_all(s))
            s.close()
        except Exception as e:
            r = ("down", repr(e))
        with lock:
            results[("down", i)] = r

    n_sink, n_src = len(sink.results), len(src.results)
    ths = [threading.Thread(target=f, args=(i,), daemon=True)
           for i in range(STREAMS) for f in (up, down)]
    for t in ths:
        t.start()
    deadline = time.monotonic() + 240
    for t in ths:
        t.join(max(0.1, deadline - time.monotonic()))
    h.check(len(results) == 2 * STREAMS, "bulk %d: %d of %d transfers finished" %
            (round_, len(results), 2 * STREAMS))
    h.check(sink.wait_results(n_sink + STREAMS, 60) and src.wait_results(n_src + STREAMS, 60),
            "bulk %d: the upstreams saw every transfer end" % round_)
    h.check(not sink.errors and not src.errors, "bulk %d: upstream errors %s %s" %
            (round_, sink.errors[:1], src.errors[:1]))
    got = sorted(r[2] for r in sink.results[n_sink:])
    want = sorted(rt.Pattern(100 + i).digest(PER_STREAM) for i in range(STREAMS))
    sent = sorted(results[("up", i)][1] for i in range(STREAMS))
    h.check(got == want == sent, "bulk %d: %d uploads of %d MiB byte-exact (sha256)" %
            (round_, STREAMS, PER_STREAM // MIB))
    d_src = rt.Pattern(7).digest(PER_STREAM)
    downs = [results[("down", i)][1] for i in range(STREAMS)]
    h.check(all(d == (PER_STREAM, d_src) for d in downs),
            "bulk %d: %d downloads of %d MiB byte-exact (sha256); got %s" %
            (round_, STREAMS, PER_STREAM // MIB, [d for d in downs if d != (PER_STREAM, d_src)][:1]))


def body(h):
    up = "127.0.0.2"
    p_sink, p_src = (rt.free_port_on("127.0.0.1", up) for _ in range(2))
    sink = h.service(up, p_sink, rt.sink_handler, "sink")
    src = h.service(up, p_src, rt.source_handler(7, PER_STREAM), "source")
    srv = h.start_server()
    cl = h.start_client(srv.control_port, [p_sink, p_src], upstream=up)
    for p in (p_sink, p_src):
        h.wait_data_port(srv, p)
    procs = (srv, cl)
    time.sleep(1)
    before = {p.name: status_kb(p.pid, "VmRSS") for p in procs}

    bulk(h, p_sink, p_src, sink, src, 1)
    peak = {p.name: status_kb(p.pid, "VmHWM") for p in procs}
    for p in procs:
        grew = peak[p.name] - before[p.name]
        rt.log("   (%s: %d kB before, %d kB peak)" % (p.name, before[p.name], peak[p.name]))
        # Otherwise the check below would prove nothing.
        h.check(grew >= 4096, "%s: the bulk made its memory grow (by %d kB)" % (p.name, grew))

    # Quiet: each process gives back at least half of what the bulk added (a binary that
    # keeps its rings and buffers resident gives back none of it; what stays is heap the
    # allocator keeps and the rings' minimum, about 3 MiB of a 9 MiB peak here).
    def returned(p):
        rss = status_kb(p.pid, "VmRSS")
        return rss - before[p.name] <= (peak[p.name] - before[p.name]) / 2, rss

    deadline = time.monotonic() + QUIET_WAIT
    while time.monotonic() < deadline and not all(returned(p)[0] for p in procs):
        time.sleep(0.5)
    for p in procs:
        ok, rss = returned(p)
        rt.log("   (%s: %d kB when quiet)" % (p.name, rss))
        h.check(ok, "%s: quiet, its memory went back down (%d kB before the bulk, %d kB at "
                "the peak, %d kB when quiet)" % (p.name, before[p.name], peak[p.name], rss))

    # After the shrink, the rings grow again and carry everything intact.
    bulk(h, p_sink, p_src, sink, src, 2)
    for p in procs:
        h.check(p.alive(), "%s still running" % p.name)


rt.main("memory", body)
