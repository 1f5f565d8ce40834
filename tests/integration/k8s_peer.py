#!/usr/bin/env python3
"""A peer for test_k8s_run.py, run inside a test network namespace (ip netns exec):

  k8s_peer.py source ADDR PORT SEED SIZE   accept one connection, send SIZE bytes of
                                           Pattern(SEED), wait for the peer to close
  k8s_peer.py sink ADDR PORT               connect, read to EOF, print "COUNT SHA256"
"""
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt  # noqa: E402


def main():
    mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "source":
        seed, size = int(sys.argv[4]), int(sys.argv[5])
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((addr, port))
        ls.listen(16)
        print("listening", flush=True)
        while True:
            c, _ = ls.accept()
            c.settimeout(120)
            d = rt.send_pattern(c, seed, size)
            c.shutdown(socket.SHUT_WR)
            print("sent %d %s" % (size, d), flush=True)
            try:
                rt.recv_all(c)
            except OSError:
                pass
            c.close()
    else:
        s = rt.connect(addr, port, timeout=120)
        n, d = rt.recv_all(s)
        print("%d %s" % (n, d), flush=True)


if __name__ == "__main__":
    main()
