#!/usr/bin/env python3
"""The command line a user (or a Helm chart) types.

- A wrong or missing token: the server answers 401 before any upgrade and logs the attempt;
  a client with the wrong token logs a line about the token and retries with backoff.
- Unknown flags exit 2 with a message naming the flag (server and client).
- The Helm charts' exact argument lists work through a link named inlets-pro (the token file
  ends in a newline; the client passes --license-file), and traffic flows.
- `inlets-pro server` (implied tcp), `ringlet version`, `--help` exit 0.
"""
import fcntl
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt


def upgrade_request(port, token=None):
    hdr = {"Upgrade": "websocket", "Connection": "Upgrade",
           "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13",
           "Sec-WebSocket-Protocol": "ringlet.v1"}
    if token is not None:
        hdr["Authorization"] = "Bearer " + token
    req = "GET /connect HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
    req += "".join("%s: %s\r\n" % kv for kv in hdr.items()) + "\r\n"
    return rt.http_raw("127.0.0.1", port, req.encode())


def body(h):
    link = os.path.join(h.dir, "inlets-pro")
    os.symlink(h.bin, link)
    up = "127.0.0.2"

    # --- wrong token -----------------------------------------------------------------------
    srv = h.start_server(name="server")
    ctl = srv.control_port
    mark = srv.mark()
    st, _, _ = upgrade_request(ctl, "not-the-token")
    h.check(st == 401, "upgrade with a wrong token answered 401 (got %s)" % st)
    h.check(srv.wait_log(r'msg="unauthorized tunnel connection rejected".*why=wrong-token', 5,
                         after=mark), "server logged the wrong-token attempt")
    st, _, _ = upgrade_request(ctl, None)
    h.check(st == 401, "upgrade without a token answered 401 (got %s)" % st)
    h.check(srv.wait_log(r'msg="unauthorized tunnel connection rejected".*why=no-token', 5,
                         after=mark), "server logged the no-token attempt")
    st, _, rest = upgrade_request(ctl, h.token)
    h.check(st == 101, "upgrade with the right token answered 101 (got %s)" % st)

    bad = h.write("bad-token", "wrong-token\n")
    port = rt.free_port_on("127.0.0.1", up)
    mark = srv.mark()
    t0 = time.monotonic()
    cl = h.start_client(ctl, [port], upstream=up, name="badclient", token_file=bad,
                        wait=False)
    line = cl.wait_log(r"token", 5)
    h.check(line is not None and "server rejected the token" in line and
            "--token" in line and "401" in line,
            "client logs a clear line naming the token: %s" % line)
    time.sleep(max(0, t0 + 6 - time.monotonic()))
    n = sum(1 for l in srv.lines()[mark:]
            if 'msg="unauthorized tunnel connection rejected"' in l)
    rt.log("   the client with a wrong token tried %d times in 6 s" % n)
    h.check(2 <= n <= 8, "client retries with backoff: %d attempts in 6 s (2..8)" % n)
    h.check(cl.alive(), "client with a wrong token keeps running (retrying)")
    h.check(cl.count(r"connected to the server") == 0, "and never connected")
    cl.kill()

    # --- unknown flags ---------------------------------------------------------------------
    for argv in ([h.bin, "server", "--bogus-flag"], [h.bin, "client", "--bogus-flag=1"],
                 [link, "tcp", "server", "--bogus-flag"], [link, "tcp", "client",
                                                          "--bogus-flag"]):
        rc, out = h.run(argv)
        h.check(rc == 2 and "--bogus-flag" in out,
                "%s exits 2 naming the flag (rc %d: %s)" %
                (" ".join([os.path.basename(argv[0])] + argv[1:]), rc, out.strip()[:100]))

    # --- version and help ------------------------------------------------------------------
    rc, out = h.run([h.bin, "version"])
    h.check(rc == 0 and out.strip(), "ringlet version exits 0 (%s)" % out.strip()[:60])
    rc, out = h.run([link, "version"])
    h.check(rc == 0 and out.strip(), "inlets-pro version exits 0")
    for argv in ([h.bin, "--help"], [h.bin, "server", "--help"], [h.bin, "client", "--help"],
                 [link, "tcp", "server", "--help"], [link, "tcp", "client", "--help"]):
        rc, out = h.run(argv)
        h.check(rc == 0 and "Usage" in out, "%s exits 0 with usage" %
                " ".join([os.path.basename(argv[0])] + argv[1:]))

    # --- the charts' argument lists through the inlets-pro link ----------------------------
    tokf = h.write("chart-token", "chart-secret-123\n")  # as `echo $TOKEN > token`
    lic = h.write("license", "not-a-real-license\n")
    ctl2 = rt.free_port("127.0.0.1")
    port2 = rt.free_port_on("127.0.0.1", up)
    srv2 = h.spawn("chart-server", [link, "tcp", "server", "--auto-tls=false",
                                    "--token-from=%s" % tokf, "--control-port=%d" % ctl2,
                                    "--control-addr=127.0.0.1", "--data-addr=127.0.0.1"])
    h.check(srv2.wait_log(r'msg="server listening"', 10) is not None,
            "inlets-pro tcp server --auto-tls=false --token-from=FILE (+ loopback ports) "
            "starts")
    svc = h.service(up, port2, rt.http_handler("chart-upstream"), "chart-upstream")
    cl2 = h.spawn("chart-client", [link, "tcp", "client", "--url=ws://127.0.0.1:%d" % ctl2,
                                   "--upstream=%s" % up, "--ports=%d" % port2,
                                   "--auto-tls=false", "--token-from=%s" % tokf,
                                   "--license-file=%s" % lic])
    h.check(cl2.wait_log(r'msg="connected to the server"', 10) is not None,
            "inlets-pro tcp client with the chart's arguments connects (token file ends "
            "in a newline)")
    h.wait_data_port(srv2, port2)
    st, _, b = rt.http_get("127.0.0.1", port2, "/federate")
    h.check(st == 200 and b == b"chart-upstream", "traffic flows through the chart-shaped "
            "tunnel (%s %r)" % (st, b[:40]))
    cl2.kill()
    srv2.kill()

    # Implied tcp: `inlets-pro server ...` (the Dec-2020 charts).
    ctl3 = rt.free_port("127.0.0.1")
    srv3 = h.spawn("implied-server", [link, "server", "--auto-tls=false",
                                      "--token-from=%s" % tokf, "--control-port=%d" % ctl3,
                                      "--control-addr=127.0.0.1", "--data-addr=127.0.0.1"])
    h.check(srv3.wait_log(r'msg="server listening"', 10) is not None,
            "inlets-pro server (implied tcp) starts")
    cl3 = h.spawn("implied-client", [link, "client", "--url=ws://127.0.0.1:%d" % ctl3,
                                     "--upstream=%s" % up, "--ports=%d" % port2,
                                     "--auto-tls=false", "--token-from=%s" % tokf])
    h.check(cl3.wait_log(r'msg="connected to the server"', 10) is not None,
            "inlets-pro client (implied tcp) connects")
    h.wait_data_port(srv3, port2)
    st, _, b = rt.http_get("127.0.0.1", port2, "/")
    h.check(st == 200 and b == b"chart-upstream", "traffic flows (implied tcp)")
    cl3.kill()
    srv3.kill()

    # Literally the chart's two server flags: control port 8123 on 0.0.0.0, data plane on
    # all interfaces. The upstream is on ::1 so that the data plane's 0.0.0.0:PORT does not
    # clash with it.
    # ringlet listens with SO_REUSEPORT, so two of these sub-checks running at once could
    # both bind 8123: a lock file serializes them.
    lockf = open("/tmp/ringlet-integration-8123.lock", "a")
    try:
        fcntl.flock(lockf, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = True
    except OSError:
        locked = False
    if not locked:
        rt.log("   SKIPPED sub-check: another test holds port 8123 (lock file)")
    elif not (rt.port_free("0.0.0.0", 8123)):
        rt.log("   SKIPPED sub-check: port 8123 is in use, cannot run the server with only "
               "--auto-tls=false --token-from")
    else:
        srv4 = h.spawn("literal-server", [link, "tcp", "server", "--auto-tls=false",
                                          "--token-from=%s" % tokf])
        ok = srv4.wait_log(r'msg="server listening"', 10)
        if ok is None and "in use" in srv4.text().lower():
            rt.log("   SKIPPED sub-check: port 8123 was taken meanwhile")
        else:
            h.check(ok is not None and "8123" in ok,
                    "inlets-pro tcp server with only --auto-tls=false --token-from=FILE "
                    "listens on 8123 (%s)" % ok)
            st, _, _ = rt.http_get("127.0.0.1", 8123, "/healthz")
            h.check(st == 200, "its /healthz answers 200 on 127.0.0.1:8123")
            try:
                port4 = rt.free_port_on("0.0.0.0", "::1")
                have6 = True
            except OSError:
                have6 = False
            if have6:
                h.service("::1", port4, rt.http_handler("v6-upstream"), "v6-upstream")
                cl4 = h.spawn("literal-client",
                              [link, "tcp", "client", "--url=ws://127.0.0.1:8123",
                               "--upstream=::1", "--ports=%d" % port4, "--auto-tls=false",
                               "--token-from=%s" % tokf, "--license-file=%s" % lic])
                h.check(cl4.wait_log(r'msg="connected to the server"', 10) is not None,
                        "the chart-shaped client connects to it")
                h.wait_data_port(srv4, port4)
                st, _, b = rt.http_get("127.0.0.1", port4, "/")
                h.check(st == 200 and b == b"v6-upstream",
                        "traffic flows through the literal chart server (%s %r)" % (st, b))
                cl4.kill()
            else:
                rt.log("   SKIPPED traffic sub-check on the literal server: no ::1")
            srv4.kill()
    lockf.close()

    h.check(not svc.errors, "upstream had no errors (%s)" % svc.errors[:2])


rt.main("cli", body)
