#!/usr/bin/env python3
"""An upstream for test_sockmap.py, runnable as its own process (so that it can live in
another cgroup or network namespace than the test).

    sockmap_upstream.py ADDR PORT

Per connection: read an 8-byte big-endian length N, then the request until EOF (the
client's half-close); answer the SHA-256 of the request (32 bytes) followed by N bytes of
ringlet_test.Pattern(N), shut down the write side, and wait for the client to close.
"""
import os
import socket
import struct
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt


def serve(c):
    try:
        c.settimeout(120)
        want = struct.unpack("!Q", rt.recv_exact(c, 8))[0]
        _, digest = rt.recv_all(c)
        c.sendall(bytes.fromhex(digest))
        rt.send_pattern(c, want, want)
        c.shutdown(socket.SHUT_WR)
        rt.recv_all(c)
    except OSError as e:
        print("upstream: %r" % e, flush=True)
    finally:
        c.close()


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(128)
    print("upstream listening on %s:%d" % (addr, port), flush=True)
    while True:
        c, _ = ls.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == "__main__":
    main()
