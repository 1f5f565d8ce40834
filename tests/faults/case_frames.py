#!/usr/bin/env python3
"""Oversized and malformed frames after a valid upgrade: a raw lane upgrades with the token,
sends HELLO, gets WELCOME, then sends one bad frame or message. The server closes that lane
with the Close code PROTOCOL.md §8 names (1009 too big, 1002 protocol error, 1003 text),
the connection ends within CLOSE_BOUND s of the Close being answered (and within
UNANSWERED_BOUND s when it is not, §8's 5 s), and the server keeps serving the real
tunnel: a transfer running meanwhile completes byte-exact. Twice over; the server's
descriptors and memory do not grow from the first round to the second."""
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

rt = fl.rt
CLOSE_BOUND = 2.0
UNANSWERED_BOUND = 6.0


def ping(reserved=0, length=16):
    m = struct.pack("!BBHIQ", 0x08, 0, reserved, 0, 12345)
    return m[:length]


# (name, the bytes to send after WELCOME, expected Close code)
VARIANTS = [
    ("oversized frame (2 MiB > 1 MiB)",
     fl.ws_frame(0x2, b"\x04" + b"\0" * 64, length=2 << 20)[:14 + 65], 1009),
    ("oversized control message (3000 > 2048 bytes)",
     fl.ws_frame(0x2, struct.pack("!BBHIH", 0x0A, 0, 0, 0, 0) + b"x" * 2990), 1009),
    ("reserved bits in the tunnel header", fl.ws_frame(0x2, ping(reserved=1)), 1002),
    ("truncated PING", fl.ws_frame(0x2, ping(length=12)), 1002),
    ("message shorter than its header", fl.ws_frame(0x2, b"\x08\0\0\0"), 1002),
    ("second HELLO", fl.ws_frame(0x2, fl.hello([])), 1002),
    ("text frame", fl.ws_frame(0x1, b"hello"), 1003),
    ("unmasked client frame", fl.ws_frame(0x2, ping(), mask=None), 1002),
    ("RSV1 set (no extension negotiated)", fl.ws_frame(0x2, ping(), rsv=4), 1002),
    ("reserved opcode 0x3", fl.ws_frame(0x3, ping()), 1002),
    ("fragmented Ping", fl.ws_frame(0x9, b"x", fin=False), 1002),
    ("continuation without a start", fl.ws_frame(0x0, ping()), 1002),
]


def one(c, ctl, name, bad, want, answer=True):
    s, fr, w = fl.raw_lane(ctl, c.token)
    s.settimeout(UNANSWERED_BOUND + 5)
    s.sendall(bad)
    code, msgs = fr.until_close()
    goaway = [m for m in msgs if m[:1] == b"\x0a"]
    c.check(code == want, "%s: the server closes the lane with %s (got %s%s)" %
            (name, want, code, ", after GOAWAY" if goaway else ""))
    t0 = time.monotonic()
    if answer:
        try:
            s.sendall(fl.ws_frame(0x8, struct.pack("!H", code)))
        except OSError:
            pass
    end = "open"
    try:
        while s.recv(65536):
            pass
        end = "eof"
    except ConnectionResetError:
        end = "reset"
    except socket.timeout:
        pass
    s.close()
    return time.monotonic() - t0, end, bool(goaway)


def body(c):
    t = fl.Tunnel(c)
    t.warm_up()
    before = None
    for rnd in (1, 2):
        bg = t.transfer(256 * fl.MIB, rate=64 * fl.MIB, start_at=0)
        worst, no_goaway = 0.0, []
        for name, bad, want in VARIANTS:
            dt, end, ga = one(c, t.ctl, name, bad, want)
            c.check(end != "open", "%s: the connection ends once the Close is answered "
                    "(%s after %.2f s)" % (name, end, dt))
            worst = max(worst, dt)
            if want == 1002 and not ga:
                no_goaway.append(name)
        c.result("bad-frame-close", CLOSE_BOUND, worst)
        c.check(worst <= CLOSE_BOUND, "every bad lane ended within %.2f s of its Close being "
                "answered (bound %.1f s)" % (worst, CLOSE_BOUND))
        c.check(not no_goaway, "every lane closed with 1002 got GOAWAY(PROTOCOL) first "
                "(PROTOCOL.md §8.1)%s" % (": not %s" % "; ".join(no_goaway) if no_goaway
                                          else ""))
        dt, end, _ = one(c, t.ctl, "oversized frame, Close not answered", VARIANTS[0][1],
                         1009, answer=False)
        c.result("bad-frame-unanswered-close", UNANSWERED_BOUND, dt)
        c.check(end != "open" and dt <= UNANSWERED_BOUND, "a Close not answered: the "
                "server ends the connection within %.2f s (bound %.1f s)" %
                (dt, UNANSWERED_BOUND))
        fl.check_transfers(c, "beside the bad lanes", [bg], must_complete=True)
        c.check(t.probe()(), "the real tunnel carries a byte-exact echo afterwards")
        c.check(t.client.wait_log(r'disconnected from the server', 0) is None,
                "the real client was never disconnected")
        if before is None:
            before = c.usage([t.server])
    c.no_growth("bad-frames", before)


fl.main("frames", body)
