#!/usr/bin/env python3
"""The control port speaks HTTP/WebSocket as a third-party client expects.

- Python websockets (asyncio API, Debian's python3-websockets) completes the upgrade on
  /connect with the right Bearer token; without a token or with a wrong one it gets 401.
- /healthz answers 200, an unknown path 404, a malformed request 400, an oversized header
  block 431 (raw sockets).
"""
import os
import sys

# Debian's python3-websockets lives in the system interpreter's dist-packages; the
# python3 on PATH may be another one.
try:
    import websockets
except ImportError:
    if os.environ.get("RINGLET_REEXEC") is None and os.path.exists("/usr/bin/python3") and \
            os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.environ["RINGLET_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    print("python3-websockets is not installed (apt-get install python3-websockets)")
    sys.exit(77)

import asyncio
import socket

import websockets.exceptions

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt


async def ws_try(url, token, subprotocols=("ringlet.v1",)):
    """Returns ('open', subprotocol, close code after a text message) or ('status', code)
    or ('error', repr)."""
    headers = {"Authorization": "Bearer " + token} if token is not None else {}
    try:
        ws = await asyncio.wait_for(
            websockets.connect(url, extra_headers=headers,
                               subprotocols=list(subprotocols) or None,
                               open_timeout=10, close_timeout=5), 15)
    except websockets.exceptions.InvalidStatusCode as e:
        return ("status", e.status_code)
    except Exception as e:  # noqa: BLE001
        return ("error", repr(e))
    proto = ws.subprotocol
    # A text message is not part of the tunnel protocol: the server should close (1003).
    code = None
    try:
        await ws.send("hello")
        await asyncio.wait_for(ws.recv(), 15)
    except websockets.exceptions.ConnectionClosed as e:
        code = e.code
    except asyncio.TimeoutError:
        code = "no close within 15 s"
    except Exception as e:  # noqa: BLE001
        code = repr(e)
    finally:
        await ws.close()
    return ("open", proto, code)


def raw(port, data, read_timeout=10):
    """Send data on a raw connection and read the status line's code (None if none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as s:
        s.sendall(data)
        got = b""
        try:
            while b"\r\n" not in got:
                b = s.recv(4096)
                if not b:
                    break
                got += b
        except (ConnectionResetError, socket.timeout):
            pass
    parts = got.split(b" ", 2)
    if len(parts) >= 2 and parts[0].startswith(b"HTTP/1."):
        return int(parts[1]), got
    return None, got


def body(h):
    rt.log("   websockets %s on python %s" % (websockets.__version__, sys.version.split()[0]))
    srv = h.start_server()
    ctl = srv.control_port
    url = "ws://127.0.0.1:%d/connect" % ctl

    r = asyncio.run(ws_try(url, h.token))
    h.check(r[0] == "open", "websockets completes the upgrade with the right token (%s)" %
            (r,))
    h.check(r[1] == "ringlet.v1", "the server selected the subprotocol ringlet.v1 (%r)" %
            (r[1],))
    rt.log("   after a text message the server closed with %s" % (r[2],))
    h.check(r[2] == 1003, "a text message is answered with close code 1003 (PROTOCOL.md "
            "1.2) (got %s)" % (r[2],))

    r = asyncio.run(ws_try(url, h.token, subprotocols=()))
    rt.log("   upgrade without offering a subprotocol: %s (informational)" % (r,))

    mark = srv.mark()
    r = asyncio.run(ws_try(url, None))
    h.check(r == ("status", 401), "without a token websockets gets 401 (%s)" % (r,))
    r = asyncio.run(ws_try(url, "wrong-" + h.token))
    h.check(r == ("status", 401), "with a wrong token websockets gets 401 (%s)" % (r,))
    h.check(srv.wait_log(r'msg="unauthorized tunnel connection rejected"', 5, after=mark,
                         count=2), "server logged both rejected attempts")

    st, _, b = rt.http_get("127.0.0.1", ctl, "/healthz")
    h.check(st == 200, "/healthz answers 200 (%s %r)" % (st, b[:20]))
    st, _, _ = rt.http_get("127.0.0.1", ctl, "/no/such/path")
    h.check(st == 404, "an unknown path answers 404 (%s)" % st)
    st, got = raw(ctl, b"THIS IS NOT HTTP\r\n\r\n")
    h.check(st == 400, "a malformed request answers 400 (%s %r)" % (st, got[:40]))
    st, got = raw(ctl, b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n")
    h.check(st == 400, "a header line without a colon answers 400 (%s %r)" % (st, got[:40]))
    # Exactly 16 KiB of header block with no end: the server has read all of it when it
    # answers, so its close is a clean FIN and the answer cannot be lost to a reset.
    big = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "
    big += b"a" * (16384 - len(big))
    st, got = raw(ctl, big)
    h.check(st == 431, "an oversized header block answers 431 (%s %r)" % (st, got[:40]))
    st, _, _ = rt.http_get("127.0.0.1", ctl, "/healthz")
    h.check(st == 200 and srv.alive(), "server still healthy after the bad requests")


rt.main("websockets", body)
