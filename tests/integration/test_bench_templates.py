#!/usr/bin/env python3
"""The benchmark's tunnel templates (bench/tunnels/*.conf) and how bench/harness.py runs them.

1. Every template parses, names its commands, and uses only placeholders the harness fills;
   a multi-line value (`key = <<WORD`) without its closing line is refused.
2. PEER_BIN: its directories go in front of PATH (peer_bin_path), so a peer's `requires`
   is found there and nowhere else on this machine.
3. The peer templates (rathole, wstunnel, bore, chisel, frp) run by the harness's own Tunnel
   class against stand-ins found through PEER_BIN: small programs that read the command
   line and config files as the real tool would (rathole: the TOML files the harness writes
   from server_config / client_config; bore: the fixed control port 7835), check that
   server and client agree (ports, token), then carry the public port to the upstream with
   socat. The path must become ready (a request through it answered) and a 64 KiB
   request/response must come back byte for byte. The real tools are not installed here
   (bench/PEERS.md), so this checks the harness's side: substitution, the
   files, the ports it learns, and the lookup.
Everything listens on 127.0.0.1/127.0.0.2. Exit 77 when socat is missing.
"""
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "bench"))
sys.dont_write_bytecode = True
import harness  # noqa: E402

PEERS = ["bore", "chisel", "frp", "rathole", "wstunnel"]
KNOWN = {"control_port", "public_port", "upstream_host", "upstream_port", "token_file",
         "token", "ringlet", "state_dir", "cgroup", "metrics_port", "server_config",
         "client_config"}

# The stand-in: one program, named after the tool it plays by its file name.
FAKE = r'''#!/usr/bin/env python3
import os, re, socket, sys, time
tool, a = os.path.basename(sys.argv[0]), sys.argv[1:]
TOKEN = os.environ["FAKE_TOKEN"]
if a == ["--version"]:
    print(tool + " 0.0.0-standin"); sys.exit(0)
def ctl(port):  # the control listener: accepts, reads nothing
    os.execvp("socat", ["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % port,
                        "OPEN:/dev/null"])
def up(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close(); return
        except OSError:
            time.sleep(0.025)
    sys.exit("control port %d never answered" % port)
def fwd(pub, host, port, msg=""):
    print(msg or "forwarding", flush=True)
    os.execvp("socat", ["socat", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork" % pub,
                        "TCP:%s:%d" % (host, port)])
def opt(k):
    return a[a.index(k) + 1]
def toml(fn):
    d, sect = {}, None
    for l in open(fn):
        l = l.strip()
        m = re.fullmatch(r"\[(.+)\]", l)
        if m:
            sect = m.group(1)
        m = re.fullmatch(r'(\w+) = "(.*)"', l)
        if m:
            d[sect + "." + m.group(1)] = m.group(2)
    return d
def hp(s):
    h, p = s.rsplit(":", 1); return h, int(p)
if tool == "rathole":
    assert a[1].endswith((".toml")), a
    c = toml(a[1])
    s = toml(os.path.join(os.path.dirname(a[1]), "server.toml"))
    assert s["server.default_token"] == TOKEN and s["server.bind_addr"].startswith("127.0.0.1:")
    if a[0] == "--server":
        ctl(hp(s["server.bind_addr"])[1])
    assert a[0] == "--client" and c["client.default_token"] == TOKEN, a
    assert c["client.remote_addr"] == s["server.bind_addr"]
    up(hp(c["client.remote_addr"])[1])
    fwd(hp(s["server.services.bench.bind_addr"])[1], *hp(c["client.services.bench.local_addr"]))
if tool == "bore":
    assert opt("--secret") == TOKEN
    if a[0] == "server":
        assert opt("--bind-addr") == "127.0.0.1" and opt("--min-port") == opt("--max-port")
        open(os.environ["FAKE_DIR"] + "/bore-port", "w").write(opt("--min-port"))
        ctl(7835)
    assert a[0] == "local" and opt("--to") == "127.0.0.1", a
    up(7835)
    assert open(os.environ["FAKE_DIR"] + "/bore-port").read() == opt("--port")
    fwd(int(opt("--port")), opt("--local-host"), int(a[1]))
if tool == "wstunnel":
    if a[0] == "server":
        assert opt("--restrict-http-upgrade-path-prefix") == TOKEN
        ctl(int(re.fullmatch(r"ws://127\.0\.0\.1:(\d+)", a[-1]).group(1)))
    assert a[0] == "client" and opt("--http-upgrade-path-prefix") == TOKEN, a
    m = re.fullmatch(r"tcp://127\.0\.0\.1:(\d+):([\d.]+):(\d+)", opt("-R"))
    up(int(re.fullmatch(r"ws://127\.0\.0\.1:(\d+)", a[-1]).group(1)))
    fwd(int(m.group(1)), m.group(2), int(m.group(3)))
if tool == "chisel":
    assert opt("--auth") == "bench:" + TOKEN
    if a[0] == "server":
        assert opt("--host") == "127.0.0.1" and "--reverse" in a
        ctl(int(opt("--port")))
    m = re.fullmatch(r"R:127\.0\.0\.1:(\d+):([\d.]+):(\d+)", a[-1])
    up(int(re.fullmatch(r"http://127\.0\.0\.1:(\d+)", a[-2]).group(1)))
    fwd(int(m.group(1)), m.group(2), int(m.group(3)), "client: Connected (Latency 1ms)")
if tool == "frps":
    assert opt("--token") == TOKEN and opt("--proxy-bind-addr") == "127.0.0.1"
    ctl(int(opt("--bind-port")))
if tool == "frpc":
    assert a[0] == "tcp" and opt("--token") == TOKEN and opt("--server-addr") == "127.0.0.1"
    up(int(opt("--server-port")))
    fwd(int(opt("--remote-port")), opt("--local-ip"), int(opt("--local-port")))
sys.exit("unexpected: %s %s" % (tool, a))
'''


def check(cond, msg):
    if not cond:
        print("FAIL: " + msg)
        sys.exit(1)


def upstream():
    """A stand-in for `loadgen serve`'s request/response mode on 127.0.0.2: reads the
    64-byte request, answers the length its header asks for (a counting pattern)."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((harness.UPSTREAM_HOST, 0))
    ls.listen(64)

    def serve(c):
        with c:
            req = b""
            while len(req) < 64:
                b = c.recv(64 - len(req))
                if not b:
                    return
                req += b
            n = struct.unpack("<IHHQ", req[:16])[3]
            c.sendall(bytes(i % 251 for i in range(n)))

    def loop():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(c,), daemon=True).start()
    threading.Thread(target=loop, daemon=True).start()
    return ls, ls.getsockname()[1]


def request(port, n):
    with socket.create_connection((harness.PUBLIC_HOST, port), timeout=5) as s:
        s.settimeout(5)
        s.sendall(struct.pack("<IHHQ", harness.MAGIC, harness.OP_RR, 0, n) + bytes(48))
        got = b""
        while len(got) < n:
            b = s.recv(n - len(got))
            if not b:
                break
            got += b
        return got


def main():
    tdir = os.path.join(REPO, "bench", "tunnels")
    tpls = {}
    # 1. Every template parses and uses only known placeholders.
    for fn in sorted(os.listdir(tdir)):
        if not fn.endswith(".conf"):
            continue
        t = harness.parse_template(os.path.join(tdir, fn))
        for k in ("name", "requires", "server", "client"):
            check(t.get(k), "%s: no %s" % (fn, k))
        used = set()
        for k, v in t.items():
            used |= set(re.findall(r"\{(\w+)\}", v))
        check(used <= KNOWN, "%s: unknown placeholders %s" % (fn, sorted(used - KNOWN)))
        tpls[t["name"]] = t
    check(set(PEERS) <= set(tpls), "peer templates missing: %s" % sorted(set(tpls)))
    rh = tpls["rathole"]
    check(rh["server_config"].startswith("[server]\n") and "\n\n[server.services.bench]\n"
          in rh["server_config"], "rathole's server_config lost its lines: %r"
          % rh["server_config"])
    check(tpls["bore"].get("control_port") == "7835", "bore's control port is not 7835")
    with tempfile.TemporaryDirectory(prefix="ringlet-bench-tpl.") as tmp:
        bad = os.path.join(tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write("name = bad\nserver_config = <<END\n[server]\n")
        try:
            harness.parse_template(bad)
            check(False, "a <<END value without its END line was accepted")
        except ValueError:
            pass
        run(tmp, tpls)
    print("PASS")


def run(tmp, tpls):
    # 2. PEER_BIN goes in front of PATH.
    fake = os.path.join(tmp, "peers")
    os.makedirs(fake)
    check(harness.peer_bin_path({"PATH": "/usr/bin"}) is None, "PATH changed without PEER_BIN")
    check(harness.peer_bin_path({"PEER_BIN": fake + ":/opt/x", "PATH": "/usr/bin:/bin"})
          == fake + ":/opt/x:/usr/bin:/bin", "PEER_BIN not in front of PATH")
    if not shutil.which("socat"):
        print("socat not found (apt-get install socat)")
        sys.exit(77)
    prog = os.path.join(fake, "standin.py")
    with open(prog, "w") as f:
        f.write(FAKE)
    os.chmod(prog, 0o755)
    for tool in ("rathole", "bore", "wstunnel", "chisel", "frps", "frpc"):
        os.symlink("standin.py", os.path.join(fake, tool))
    before = {n: harness.Tunnel(tpls[n], 1, "/nonexistent").missing() for n in PEERS}
    os.environ["PATH"] = harness.peer_bin_path({"PEER_BIN": fake, "PATH": os.environ["PATH"]})

    # 3. Each peer template through the harness, against the stand-ins.
    ctx = harness.Ctx()
    ctx.logdir, ctx.workdir = os.path.join(tmp, "logs"), os.path.join(tmp, "work")
    os.makedirs(ctx.logdir)
    os.makedirs(ctx.workdir)
    ctx.token = "%032x" % int.from_bytes(os.urandom(16), "big")
    ctx.token_file = os.path.join(ctx.workdir, "token")
    with open(ctx.token_file, "w") as f:
        f.write(ctx.token)
    os.environ["FAKE_TOKEN"], os.environ["FAKE_DIR"] = ctx.token, tmp
    ls, up_port = upstream()
    try:
        for name in PEERS:
            p = harness.Tunnel(tpls[name], up_port, "/nonexistent")
            check(p.missing() is None, "%s: not found through PEER_BIN" % name)
            if before[name] is None:
                print("note: %s is installed on this machine; PEER_BIN still came first"
                      % name)
            try:
                p.start(ctx)
                ok = p.ready(timeout=15)
                check(ok, "%s: not ready: %s" % (name, p.error))
                check(not any("{" in a for a in p.commands["server"] + p.commands["client"]),
                      "%s: a placeholder left in %s" % (name, p.commands))
                got = request(p.port, 65536)
                check(got == bytes(i % 251 for i in range(65536)),
                      "%s: the 64 KiB answer came back wrong (%d bytes)" % (name, len(got)))
                if name == "bore":
                    check(p.control_port == 7835, "bore: control port %s" % p.control_port)
                if name == "rathole":
                    for key in harness.CONFIG_KEYS:
                        fn = p.configs.get(key, "")
                        check(fn.startswith(os.path.join(ctx.workdir, "rathole-state")) and
                              fn.endswith(".toml") and os.stat(fn).st_mode & 0o077 == 0,
                              "rathole: %s written as %r" % (key, fn))
                        check(p.commands.get(key) == open(fn).read() and "{" not in
                              p.commands[key], "rathole: %s not recorded as written" % key)
                        check(fn in p.commands[key.split("_")[0]],
                              "rathole: %s not on its command line" % fn)
            finally:
                p.stop()
            print("ok: %s (public port %d, control port %d)" % (name, p.port, p.control_port))
            time.sleep(0.1)
    finally:
        ls.close()
        harness.cleanup()


if __name__ == "__main__":
    main()
