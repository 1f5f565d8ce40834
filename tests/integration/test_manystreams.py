#!/usr/bin/env python3
"""Many streams at once, more than the shard has buffers for.

500 connections open through the tunnel; then all of them at once send 100 bytes (or 64 KiB)
plus a few to an echo upstream, half-close and read the echo to EOF. Each end's shard has 32 stream
buffers, so most reads find the buffer ring empty and the stream waits for one: every
stream must still complete byte-exact (none may wait forever for a wake-up that was lost),
and afterwards neither end has a stream open. Four waves, so that buffers go round.
"""
import asyncio
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

N = 500
SIZE = 64 * 1024


async def one(rw, i, size):
    r, w = rw
    data = bytes(rt.Pattern(1000 + i).chunk(0, size + i % 97))
    try:
        w.write(data)
        await w.drain()
        w.write_eof()
        got = await r.read()
    finally:
        w.close()
    return got == data


async def wave(port, size):
    """Open N connections first, then let all of them send at once: every response then
    competes for the same few buffers, and nothing else moves once they are done."""
    conns = await asyncio.gather(*[asyncio.open_connection("127.0.0.1", port)
                                   for _ in range(N)])
    t0 = time.monotonic()
    tasks = [asyncio.create_task(one(c, i, size)) for i, c in enumerate(conns)]
    done, pending = await asyncio.wait(tasks, timeout=30)
    for t in pending:
        t.cancel()
    ok = sum(1 for t in done if not t.cancelled() and t.exception() is None and t.result())
    return ok, len(pending), time.monotonic() - t0


def diagnose(h, srv, m_client):
    """Before failing: both ends' stream, lane and buffer figures (which end holds what)."""
    want = ("ringlet_streams_active", "ringlet_tunnels_active", "ringlet_bufring_exhausted",
            "ringlet_upstream", "ringlet_dataplane", "tcp_dataplane", "ringlet_stream",
            "ringlet_credit", "ringlet_lane", "ringlet_tunnel_")
    for name, port in (("client", m_client), ("server", srv.control_port)):
        try:
            code, _, text = rt.scrape(port, "/metrics", h.token)
        except OSError as e:
            rt.log("   %s /metrics: %r" % (name, e))
            continue
        for line in text.decode(errors="replace").splitlines():
            if line.startswith(want):
                rt.log("   %s: %s" % (name, line))
    code, _, text = rt.scrape(srv.control_port, "/status", h.token)
    rt.log("   server /status: %s" % text.decode(errors="replace")[:2000])


def body(h):
    up = "127.0.0.2"
    port = rt.free_port_on("127.0.0.1", up)
    m_client = rt.free_port("127.0.0.1")
    h.service(up, port, rt.echo_handler, "echo")
    srv = h.start_server()
    cl = h.start_client(srv.control_port, [port], upstream=up,
                        extra=["--metrics-addr", "127.0.0.1:%d" % m_client])
    h.wait_data_port(srv, port)
    for k, size in enumerate((100, SIZE, 100, SIZE)):
        ok, stuck, secs = asyncio.run(wave(port, size))
        if ok != N:
            diagnose(h, srv, m_client)
        h.check(ok == N, "wave %d: %d connections send %d+ bytes at once: %d echoed "
                "byte-exact, %d stuck after 30 s (%.1f s)" % (k + 1, N, size, ok, stuck, secs))

    # The same with the bench's load generator, which opens streams in batches of 64 and
    # makes one 64-byte request on each as soon as it is open (the pattern that first
    # showed a lost wake-up: some streams never read their response).
    lgs = [os.path.join(os.path.dirname(h.bin), "bench", "loadgen"),
           os.path.join(rt.REPO, "build", "bench", "loadgen")]
    lg = next((p for p in lgs if os.access(p, os.X_OK)), None)
    if lg:
        port2 = rt.free_port_on("127.0.0.1", up)
        h.spawn("loadgen-serve", [lg, "serve", "--listen", "%s:%d" % (up, port2)])
        rt.wait_port(up, port2)
        srv2 = h.start_server(name="server-lg")
        cl2 = h.start_client(srv2.control_port, [port2], upstream=up, name="client-lg")
        h.wait_data_port(srv2, port2)
        for k in range(5):
            rc, out = h.run([lg, "scale", "--connect", "127.0.0.1:%d" % port2, "--streams", "300",
                       "--idle-seconds", "0.2", "--active-seconds", "0.3", "--rate", "300"],
                      timeout=60)
            try:
                res = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                res = {"error": out.strip()[-200:]}
            h.check(rc == 0 and res.get("streams") == 300 and "error" not in res,
                    "loadgen scale run %d: 300 streams opened, each answered (%s streams%s)"
                    % (k + 1, res.get("streams"),
                       ", " + res["error"] if "error" in res else ""))
    else:
        rt.log("   (bench/loadgen not built: its scale pattern is not run here)")

    both = rt.wait_streams_closed(h.token, m_client, srv.control_port)
    h.check(both == (0, 0), "no stream is left open at either end (client %s, server %s)" % both)
    code, _, text = rt.scrape(m_client, "/metrics", h.token)
    empty = rt.metric(text.decode(), "ringlet_bufring_exhausted_total")
    rt.log("   the client found its buffer ring empty %s times" % empty)


if __name__ == "__main__":
    rt.main("manystreams", body)
