#!/usr/bin/env python3
"""TLS: auto-TLS server + auto-TLS client with no other configuration (byte-exact traffic),
certificate files and reuse, a client that refuses a server whose certificate is not
signed by the CA it fetched, openssl s_client (TLS 1.3, SANs), Python websockets over
wss://, session resumption on reconnect, operator certificates with --tls-cert and
--ca-file, and bad input (plain HTTP on the TLS port, a truncated ClientHello, a stalled
handshake, wrong-host and expired certificates) that leaves other tunnels untouched."""
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

MIB = 1 << 20


def openssl(h, *args):
    r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
    if r.returncode != 0:
        h.fail("openssl %s failed: %s" % (" ".join(args[:3]), r.stdout.decode()[-400:]))
    return r.stdout.decode()


def make_ca(h, name):
    d = os.path.join(h.dir, name)
    os.makedirs(d, exist_ok=True)
    key, crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    openssl(h, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=" + name,
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign")
    return d


def make_cert(h, ca_dir, name, san, expired=False):
    """A server certificate signed by the CA in ca_dir; expired=True makes one whose
    validity ended in 2021."""
    d = ca_dir
    key, csr, crt = (os.path.join(d, name + ext) for ext in (".key", ".csr", ".crt"))
    openssl(h, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", key, "-out", csr, "-subj", "/CN=" + name)
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
                % san)
    if not expired:
        openssl(h, "x509", "-req", "-in", csr, "-CA", os.path.join(d, "ca.crt"), "-CAkey",
                os.path.join(d, "ca.key"), "-CAcreateserial", "-out", crt, "-days", "10",
                "-extfile", ext)
    else:
        cnf = os.path.join(d, "ca.cnf")
        os.makedirs(os.path.join(d, "new"), exist_ok=True)
        open(os.path.join(d, "index.txt"), "w").close()
        with open(cnf, "w") as f:
            f.write("""[ca]
default_ca = t
[t]
dir = %s
database = $dir/index.txt
new_certs_dir = $dir/new
serial = $dir/serial
default_md = sha256
policy = p
copy_extensions = none
[p]
commonName = supplied
""" % d)
        with open(os.path.join(d, "serial"), "w") as f:
            f.write("1000\n")
        openssl(h, "ca", "-batch", "-config", cnf, "-cert", os.path.join(d, "ca.crt"),
                "-keyfile", os.path.join(d, "ca.key"), "-in", csr, "-out", crt,
                "-startdate", "20200101000000Z", "-enddate", "20210101000000Z",
                "-extfile", ext)
    return crt, key


def transfer(h, port, size, seed):
    """Download size bytes from a source upstream through the data plane; returns True
    when byte-exact."""
    s = rt.connect("127.0.0.1", port, timeout=60)
    n, d = rt.recv_all(s)
    s.close()
    return n == size and d == rt.Pattern(seed).digest(size)


class Forwarder:
    """A TCP forwarder on 127.0.0.1 that can cut every connection it carries (to make a
    client reconnect to the same server process)."""

    def __init__(self, port, target):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", port))
        self.ls.listen(16)
        self.target = target
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.conns += [c, u]
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    def cut(self):
        with self.lock:
            for x in self.conns:
                try:
                    x.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.conns = []


def main():
    if not shutil.which("openssl"):
        rt.skip("the openssl command (Debian package openssl) is not installed")
    h = rt.Harness("tls")
    up = "127.0.0.2"
    p_src = rt.free_port_on("127.0.0.1", up)
    SIZE = 64 * MIB + 5
    h.service(up, p_src, rt.source_handler(21, SIZE), "source")

    # -- auto-TLS on both ends, nothing else configured --
    cert_dir = os.path.join(h.dir, "certs-a")
    cp = rt.free_port("127.0.0.1")
    srv = h.start_server(control_port=cp, name="server-a",
                         extra=["--auto-tls=true", "--auto-tls-san", "127.0.0.1",
                                "--auto-tls-path", cert_dir])
    # start_server adds --auto-tls=false first; the later --auto-tls=true wins.
    srv.wait_log(r'tls=auto', timeout=5) or h.fail("server-a did not start with auto-TLS")
    for f, secret in (("ca.crt", False), ("ca.key", True), ("server.crt", False),
                      ("server.key", True)):
        p = os.path.join(cert_dir, f)
        h.check(os.path.exists(p), "auto-TLS wrote %s" % f)
        if secret:
            h.check(stat.S_IMODE(os.stat(p).st_mode) == 0o600, "%s has mode 0600" % f)
    argv = [h.bin, "client", "--url", "wss://127.0.0.1:%d" % cp, "--token-file", h.token_file,
            "--upstream", up, "--ports", str(p_src), "--log-level", "debug"]
    cli = h.spawn("client-a", argv)
    h.check(cli.wait_log(r'msg="connected to the server"', timeout=20),
            "an auto-TLS client connects to an auto-TLS server with no other configuration")
    h.check(cli.count(r'trusting the CA fetched from the server') == 1,
            "the client fetched and pinned the server's CA")
    h.check(transfer(h, p_src, SIZE, 21), "64 MiB through wss:// byte-exact")

    # openssl s_client: TLS 1.3 and the SANs.
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % cp, "-brief",
                        "-CAfile", os.path.join(cert_dir, "ca.crt")],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20)
    out = r.stdout.decode()
    h.check("Protocol version: TLSv1.3" in out, "openssl s_client negotiates TLS 1.3")
    h.check("Verification: OK" in out, "openssl s_client verifies the chain with ca.crt")
    sans = openssl(h, "x509", "-in", os.path.join(cert_dir, "server.crt"), "-noout", "-ext",
                   "subjectAltName")
    h.check("IP Address:127.0.0.1" in sans, "the server certificate names 127.0.0.1 (%s)"
            % sans.strip().splitlines()[-1])
    ca_served = subprocess.run(["curl", "-s", "--cacert", os.path.join(cert_dir, "ca.crt"),
                                "https://127.0.0.1:%d/.well-known/ca.crt" % cp],
                               stdout=subprocess.PIPE, timeout=20).stdout
    with open(os.path.join(cert_dir, "ca.crt"), "rb") as f:
        h.check(ca_served == f.read(), "/.well-known/ca.crt serves the CA")

    # Python websockets over wss://.
    wsres = subprocess.run(["/usr/bin/python3", "-c", """
import asyncio, ssl, sys, websockets
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    async with websockets.connect(sys.argv[1], ssl=ctx, subprotocols=["ringlet.v1"],
                                  extra_headers={"Authorization": "Bearer " + sys.argv[3]}) as ws:
        print("OPEN", ws.subprotocol)
asyncio.run(main())
""", "wss://127.0.0.1:%d/connect" % cp, os.path.join(cert_dir, "ca.crt"), h.token],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    h.check(b"OPEN ringlet.v1" in wsres.stdout,
            "Python websockets completes a wss:// upgrade (%s)" % wsres.stdout[-200:])

    # Session resumption: cut the connection under a client that goes through a forwarder.
    fwd_port = rt.free_port("127.0.0.1")
    fwd = Forwarder(fwd_port, cp)
    argv = [h.bin, "client", "--url", "wss://127.0.0.1:%d" % fwd_port, "--token-file",
            h.token_file, "--upstream", up, "--ports", str(p_src), "--log-level", "debug",
            "--ca-file", os.path.join(cert_dir, "ca.crt")]
    cli_r = h.spawn("client-resume", argv)
    h.check(cli_r.wait_log(r'msg="connected to the server"', timeout=20),
            "a client with --ca-file connects")
    time.sleep(0.5)
    fwd.cut()
    h.check(cli_r.wait_log(r'msg="connected to the server"', timeout=20, count=2),
            "the client reconnects after the connection is cut")
    resumed = re.findall(r'msg="TLS established".* resumed=(\d)', cli_r.text())
    h.check(len(resumed) >= 2 and resumed[0] == "0" and resumed[-1] == "1",
            "the reconnect resumes the TLS session (no full handshake): %s" % resumed)
    cli_r.stop()

    # Bad input on the TLS port; the tunnel of client-a must keep working meanwhile.
    s = socket.create_connection(("127.0.0.1", cp), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(10)
    try:
        data = s.recv(4096)
    except ConnectionResetError:
        data = b""
    s.close()
    h.check(not data.startswith(b"HTTP/1.1 200"), "plain HTTP to the TLS port is not served")
    h.check(srv.wait_log(r'msg="TLS handshake failed"', timeout=10),
            "the server logs the failed handshake with its reason")
    # A truncated ClientHello: a record header promising more than is sent, then close.
    s = socket.create_connection(("127.0.0.1", cp), timeout=10)
    s.sendall(bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
    s.close()
    # A stalled handshake: connect and send nothing. The server closes it after 10 s.
    # Alongside it, a flood of 600 more half-open connections (more than the 256 pending
    # control connections a shard accepts): the existing tunnel must not notice. The
    # stalled one comes from another address (127.0.0.3): the flood's own oldest make
    # room for it once the flood's address holds its share of the pending slots.
    stalled = socket.create_connection(("127.0.0.1", cp), timeout=20,
                                       source_address=("127.0.0.3", 0))
    t0 = time.monotonic()
    flood = []
    for _ in range(600):
        try:
            flood.append(socket.create_connection(("127.0.0.1", cp), timeout=5))
        except OSError:
            break
    h.check(len(flood) >= 300, "opened a flood of %d half-open TLS connections" % len(flood))
    h.check(transfer(h, p_src, SIZE, 21), "traffic still flows through the existing tunnel "
            "while bad handshakes are pending")
    stalled.settimeout(20)
    try:
        got = stalled.recv(1)
    except (ConnectionResetError, socket.timeout):
        got = b"?"
    waited = time.monotonic() - t0
    h.check(got == b"" and waited < 16, "a stalled handshake is closed by the server after "
            "the handshake timeout (%.1f s)" % waited)
    stalled.close()
    for f in flood:
        f.close()
    h.check(srv.alive() and cli.alive() and cli.count(r'disconnected') == 0,
            "the server and the existing tunnel are untouched")
    # After the flood, a new client connects (the half-open ones timed out or were refused).
    cli_new = h.spawn("client-after-flood", [h.bin, "client", "--url", "wss://127.0.0.1:%d" % cp,
                                             "--token-file", h.token_file, "--upstream", up,
                                             "--ports", str(p_src), "--ca-file",
                                             os.path.join(cert_dir, "ca.crt")])
    h.check(cli_new.wait_log(r'msg="connected to the server"', timeout=20),
            "a new client connects once the flood is gone")
    cli_new.kill()
    # The certificates are reused when valid: a second server on the same directory.
    cp2 = rt.free_port("127.0.0.1")
    srv2 = h.start_server(control_port=cp2, name="server-a2",
                          extra=["--auto-tls=true", "--auto-tls-san", "127.0.0.1",
                                 "--auto-tls-path", cert_dir])
    h.check(srv2.wait_log(r'auto-TLS: reusing the certificates', timeout=5),
            "auto-TLS reuses valid certificates from --auto-tls-path")
    srv2.kill()
    cp3 = rt.free_port("127.0.0.1")
    srv3 = h.start_server(control_port=cp3, name="server-a3",
                          extra=["--auto-tls=true", "--auto-tls-san", "127.0.0.1,tunnel.example",
                                 "--auto-tls-path", cert_dir])
    h.check(srv3.wait_log(r'auto-TLS: generated a server certificate.*DNS:tunnel.example',
                          timeout=5) and srv3.count(r'generated a new CA') == 0,
            "a new SAN makes a new server certificate under the same CA")
    srv3.kill()

    # A server with a different CA on the same address: the client refuses it.
    srv.kill()
    cert_dir_b = os.path.join(h.dir, "certs-b")
    srv_b = h.start_server(control_port=cp, name="server-b",
                           extra=["--auto-tls=true", "--auto-tls-san", "127.0.0.1",
                                  "--auto-tls-path", cert_dir_b])
    h.check(cli.wait_log(r'TLS handshake with the server failed.*certificate verify failed',
                         timeout=20),
            "the client refuses a server whose certificate is not signed by the CA it "
            "fetched, with a clear log line")
    time.sleep(2)
    h.check(cli.count(r'msg="connected to the server"') == 1 and
            srv_b.count(r'msg="client connected"') == 0,
            "and it does not connect to that server")
    srv_b.kill()
    cli.kill()

    # Operator certificates: --tls-cert/--tls-key; the client trusts a --ca-file. Wrong host
    # and expired certificates are refused with the reason.
    ca = make_ca(h, "op-ca")
    good = make_cert(h, ca, "good", "IP:127.0.0.1,DNS:localhost")
    wrong = make_cert(h, ca, "wrong", "DNS:other.example.com")
    expired = make_cert(h, ca, "expired", "IP:127.0.0.1", expired=True)
    for name, (crt, key), expect in (("good", good, None),
                                     ("wrong-host", wrong, r'certificate verify failed'),
                                     ("expired", expired, r'certificate verify failed: '
                                                          r'certificate has expired')):
        cpx = rt.free_port("127.0.0.1")
        sx = h.start_server(control_port=cpx, name="server-" + name,
                            extra=["--tls-cert", crt, "--tls-key", key])
        cx = h.spawn("client-" + name, [h.bin, "client", "--url", "wss://127.0.0.1:%d" % cpx,
                                        "--token-file", h.token_file, "--upstream", up,
                                        "--ports", str(p_src), "--ca-file",
                                        os.path.join(ca, "ca.crt")])
        if expect is None:
            h.check(cx.wait_log(r'msg="connected to the server"', timeout=20),
                    "--tls-cert server and --ca-file client connect")
            h.check(transfer(h, p_src, SIZE, 21), "traffic through the operator-cert tunnel")
        else:
            h.check(cx.wait_log(expect, timeout=20),
                    "%s certificate: the client logs why it refuses (%s)" %
                    (name, [l for l in cx.lines() if "TLS" in l][:1]))
            h.check(cx.count(r'msg="connected to the server"') == 0,
                    "%s certificate: no tunnel" % name)
        cx.kill()
        sx.kill()
    rt.log("PASS (%d checks)" % h.checks)


if __name__ == "__main__":
    main()
