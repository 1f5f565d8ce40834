#!/usr/bin/env python3
"""Bulk transfer through the tunnel, byte-exact: 1 GiB each way on one connection, then
200 concurrent connections each moving ~2 MiB both ways (through an echo upstream)."""
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

GIB = 1 << 30
STREAMS = 200
PER_STREAM = 2 * (1 << 20) + 12345


def body(h):
    up = "127.0.0.2"
    p_sink, p_src, p_echo = (rt.free_port_on("127.0.0.1", up) for _ in range(3))
    sink = h.service(up, p_sink, rt.sink_handler, "sink")
    src = h.service(up, p_src, rt.source_handler(7, GIB), "source")
    echo = h.service(up, p_echo, rt.echo_handler, "echo")
    srv = h.start_server()
    h.start_client(srv.control_port, [p_sink, p_src, p_echo], upstream=up)
    for p in (p_sink, p_src, p_echo):
        h.wait_data_port(srv, p)

    # 1 GiB data-plane client -> upstream sink.
    t0 = time.monotonic()
    s = rt.connect("127.0.0.1", p_sink, timeout=120)
    sent = rt.send_pattern(s, 11, GIB)
    s.shutdown(socket.SHUT_WR)
    if not sink.wait_results(1, 120):
        h.fail("the sink did not see EOF within 120 s after 1 GiB was sent")
    s.close()
    h.check(not sink.errors, "sink had no errors (%s)" % sink.errors[:1])
    kind, n, d = sink.results[0]
    h.check(n == GIB, "upstream sink received %d bytes, expected %d" % (n, GIB))
    h.check(d == sent, "1 GiB client -> upstream is byte-exact (sha256 %s...)" % d[:16])
    rt.log("   (1 GiB up in %.1f s)" % (time.monotonic() - t0))

    # 1 GiB upstream source -> data-plane client.
    t0 = time.monotonic()
    s = rt.connect("127.0.0.1", p_src, timeout=120)
    n, d = rt.recv_all(s)
    s.close()
    if not src.wait_results(1, 30):
        h.fail("the source did not finish")
    _, sn, sd = src.results[0]
    h.check(n == GIB and sn == GIB, "data-plane client received %d of %d bytes" % (n, GIB))
    h.check(d == sd, "1 GiB upstream -> client is byte-exact (sha256 %s...)" % d[:16])
    rt.log("   (1 GiB down in %.1f s)" % (time.monotonic() - t0))

    # 200 concurrent streams, ~2 MiB each way, every stream with its own data.
    results = {}
    lock = threading.Lock()
    # Each stream its own data: one pattern, a different offset per stream.
    digests = [rt.Pattern(1000, i * 7919).digest(PER_STREAM) for i in range(STREAMS)]

    def one(i):
        try:
            c = rt.connect("127.0.0.1", p_echo, timeout=120)
            got = {}

            def reader():
                try:
                    got["r"] = rt.recv_all(c)
                except Exception as e:
                    got["r"] = (-1, repr(e))
            rt_ = threading.Thread(target=reader)
            rt_.start()
            sent = rt.send_pattern(c, 1000, PER_STREAM, i * 7919)
            c.shutdown(socket.SHUT_WR)
            rt_.join(150)
            c.close()
            with lock:
                results[i] = (sent, got.get("r", (-1, "reader timed out")))
        except Exception as e:
            with lock:
                results[i] = (None, (-1, repr(e)))

    t0 = time.monotonic()
    ths = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(STREAMS)]
    for t in ths:
        t.start()
    deadline = time.monotonic() + 170
    for t in ths:
        t.join(max(0.1, deadline - time.monotonic()))
    h.check(len(results) == STREAMS, "%d of %d concurrent streams finished" %
            (len(results), STREAMS))
    bad = [(i, r) for i, r in results.items()
           if r[0] != digests[i] or r[1] != (PER_STREAM, digests[i])]
    h.check(not bad, "all %d concurrent streams byte-exact both ways (%d bytes each way); "
            "bad: %s" % (STREAMS, PER_STREAM, bad[:3]))
    h.check(echo.wait_results(STREAMS, 30) and not echo.errors,
            "the echo upstream saw %d connections end cleanly (errors: %s)" %
            (len(echo.results), echo.errors[:2]))
    rt.log("   (%d streams in %.1f s)" % (STREAMS, time.monotonic() - t0))


rt.main("bulk", body)
