#!/usr/bin/env python3
"""A tunnels file of many tunnels (--tunnels): 300 tunnels load at start (more than the
tunnel-id table's first 64 entries; it used to spin forever growing it) and the last one's
client carries a stream, byte-exact; a reload to 700 tunnels (the table grows again) is
applied and the new last tunnel works too. bench/ scenario 10 runs 1000."""
import os
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

SIZE = 1 << 20
UP = "127.0.0.2"


def yaml_for(names, toks, binds, port):
    y = "tunnels:\n"
    for n in names:
        y += ("  - name: %s\n    tokenFile: %s\n    ports:\n      - port: %d\n"
              "        listen: \"127.0.0.1:%d\"\n" % (n, toks[n], port, binds[n]))
    return y


def fetch(bind):
    s = rt.connect("127.0.0.1", bind, timeout=30)
    got, d = rt.recv_all(s)
    s.close()
    return got == SIZE and d == rt.Pattern(71).digest(SIZE)


def body(h):
    port = rt.free_port_on(UP)
    h.service(UP, port, rt.source_handler(71, SIZE), "source")
    names = ["t%03d" % i for i in range(700)]
    toks = {n: h.write("token-%s" % n, "tok-%s-%d\n" % (n, os.getpid())) for n in names}
    # Bindings are only bound when a client offers the port: only the two used must be free.
    binds = {n: 1 for n in names}
    for n in ("t299", "t699"):
        binds[n] = rt.free_port_on("127.0.0.1")
    spare = (p for p in range(20000, 30000) if p not in binds.values())
    for n in names:
        if binds[n] == 1:
            binds[n] = next(spare)  # distinct, never bound in this test
    tfile = os.path.join(h.dir, "tunnels.yaml")
    with open(tfile, "w") as f:
        f.write(yaml_for(names[:300], toks, binds, port))
    srv = h.start_server(extra=["--tunnels", tfile])
    h.check(srv.wait_log(r'msg="named tunnels loaded".*tunnels=300', 10),
            "300 tunnels load at start")
    h.start_client(srv.control_port, [port], upstream=UP, name="client-t299",
                   token_file=toks["t299"])
    h.wait_data_port(srv, binds["t299"])
    h.check(fetch(binds["t299"]), "the 300th tunnel's client carries a stream, byte-exact")

    mark = srv.mark()
    with open(tfile + ".new", "w") as f:
        f.write(yaml_for(names, toks, binds, port))
    os.replace(tfile + ".new", tfile)
    srv.signal(signal.SIGHUP)
    h.check(srv.wait_log(r'msg="tunnels file reloaded".*tunnels=700 added=400', 10, after=mark),
            "a reload to 700 tunnels is applied")
    h.start_client(srv.control_port, [port], upstream=UP, name="client-t699",
                   token_file=toks["t699"])
    h.wait_data_port(srv, binds["t699"])
    h.check(fetch(binds["t699"]), "the 700th tunnel's client carries a stream, byte-exact")
    h.check(fetch(binds["t299"]), "and the 300th still does")


rt.main("tenants_many", body)
