#!/usr/bin/env python3
"""The OCI image (make image) as a container runtime runs it: its contents are the binary,
the inlets-pro link, exactly the shared libraries the running process maps, CA
certificates, a numeric user and licence texts, with no shell or package manager; its
config runs /usr/bin/ringlet as 65532:65532 with the OCI labels. Loaded into podman and run
as PID 1 with a read-only root filesystem, the server carries a stream from a client on
the host; `podman stop` (SIGTERM) drains it: /healthz stops answering 200, the open stream
finishes byte-exact, the container exits 0 before the stop timeout. With podman's default
seccomp profile (no io_uring) it refuses to start and says why."""
import os
import re
import socket
import stat
import threading
import time

import containers as ct
import ringlet_test as rt

MIB = 1 << 20


def check_contents(h):
    files, config, manifest, contents = ct.image_files()
    cfg = config["config"]
    h.check(cfg.get("User") == "65532:65532", "image user is numeric 65532:65532 (%s)" %
            cfg.get("User"))
    h.check(cfg.get("Entrypoint") == ["/usr/bin/ringlet"], "entry point /usr/bin/ringlet")
    labels = cfg.get("Labels") or {}
    for k in ("version", "revision", "source", "licenses"):
        h.check(labels.get("org.opencontainers.image." + k),
                "label org.opencontainers.image.%s = %s" % (k, labels.get(
                    "org.opencontainers.image." + k)))
    h.check(len(manifest["layers"]) == 1, "one layer")
    link = files.get("/usr/bin/inlets-pro")
    h.check(link is not None and link.issym() and link.linkname == "ringlet",
            "/usr/bin/inlets-pro links to ringlet")
    h.check(all(ti.uid == 0 and ti.gid == 0 for ti in files.values()),
            "every file is owned by root (the process cannot change them)")
    regular = sorted(p for p, ti in files.items() if ti.isfile())
    other = [p for p in regular if not (
        p in ("/usr/bin/ringlet", "/etc/passwd", "/etc/group",
              "/etc/ssl/certs/ca-certificates.crt") or
        re.match(r"^/usr/lib(64)?/.*\.so[.\d]*$", p) or
        re.match(r"^/usr/lib(64)?/.*ld-linux-x86-64\.so\.2$", p) or
        re.match(r"^/usr/share/doc/[^/]+/(copyright|LICENSE)$", p))]
    h.check(not other, "no files beyond binary, libraries, CA bundle, passwd/group, "
            "licences (%s)" % other)
    names = {os.path.basename(p) for p in files}
    h.check(not names & {"sh", "bash", "dash", "busybox", "apt", "apt-get", "dpkg"},
            "no shell, no package manager")
    tmp = files.get("/tmp")
    h.check(tmp is not None and tmp.isdir() and tmp.mode & 0o1777 == 0o1777, "/tmp is 1777")
    passwd = files.get("/etc/passwd")
    h.check(passwd is not None, "/etc/passwd present")
    rootfs = os.path.join(rt.REPO, os.environ.get("RINGLET_BUILD", "build"), "image", "rootfs")
    differ = [p for p in regular if open(rootfs + p, "rb").read() != contents[p]]
    h.check(not differ, "the layer is a complete tar: all %d files byte-equal to the staged "
            "root (%s)" % (len(regular), differ))
    libs = {p for p in regular if re.match(r"^/usr/lib", p)}
    return libs


def main():
    ct.require_podman()
    h = rt.Harness("image")
    libs = check_contents(h)
    pm = ct.Podman(h)
    ref = pm.load()
    h.check(ref.endswith("ringlet:" + open(os.path.join(rt.REPO, "VERSION")).read().strip()),
            "podman load names it %s" % ref)
    prof = ct.io_uring_profile(os.path.join(h.dir, "seccomp-io_uring.json"))
    secret = os.path.join(h.dir, "secret")
    os.makedirs(secret)
    with open(os.path.join(secret, "token"), "w") as f:
        f.write(h.token + "\n")
    os.chmod(secret, 0o755)
    os.chmod(os.path.join(secret, "token"), 0o644)

    # The failure mode on runtimes whose default seccomp profile blocks io_uring.
    rc, out = pm.run("run", "--rm", "--network", "host", "--read-only", *ct.ULIMITS,
                     "-v", secret + ":/etc/inlets:ro", ref, "tcp", "server",
                     "--auto-tls=false", "--token-from=/etc/inlets/token",
                     "--control-addr=127.0.0.1", "--control-port=%d" % rt.free_port())
    h.check(rc != 0 and "seccomp" in out,
            "with podman's default seccomp profile it exits %d naming seccomp" % rc)

    port = rt.free_port_on("127.0.0.1", "127.0.0.2")
    cport = rt.free_port()
    size = 64 * MIB + 5
    h.service("127.0.0.2", port, rt.source_handler(7, size), "source")
    name = pm.start("server", [
        "--network", "host", "--read-only", "--security-opt", "seccomp=" + prof,
        *ct.ULIMITS, "-v", secret + ":/etc/inlets:ro", "--stop-timeout", "40", ref,
        "tcp", "server", "--auto-tls=false", "--token-from=/etc/inlets/token",
        "--control-addr=127.0.0.1", "--control-port=%d" % cport, "--data-addr=127.0.0.1",
        "--drain-timeout=20s"])
    if not pm.wait_log(name, r'msg="server listening"'):
        pm.dump()
        h.fail("the server in the container did not start")
    pid = int(pm.inspect(name, "{{.State.Pid}}"))
    nspid = [l for l in open("/proc/%d/status" % pid).read().splitlines()
             if l.startswith("NSpid:")]
    h.check(nspid and nspid[0].split()[-1] == "1", "ringlet is PID 1 in the container (%s)" %
            (nspid[0] if nspid else "?"))
    status = open("/proc/%d/status" % pid).read()
    h.check(re.search(r"^Uid:\s+65532\s", status, re.M), "runs as uid 65532")
    mapped = set()
    for line in open("/proc/%d/maps" % pid):
        f = line.split()[-1] if len(line.split()) >= 6 else ""
        if ".so" in f:
            mapped.add(f)
    # The process sees the image's paths; the image holds each library under its real
    # path (the loader's /lib64 name is a link to it).
    h.check(mapped == libs, "the libraries it maps are exactly the image's libraries "
            "(%d: %s)" % (len(mapped), ", ".join(sorted(os.path.basename(m) for m in mapped))))
    code, _, _ = rt.http_get("127.0.0.1", cport, "/healthz")
    h.check(code == 200, "/healthz answers 200")

    h.start_client(cport, [port])
    time.sleep(0.5)
    s = rt.connect("127.0.0.1", port, timeout=60)
    first = rt.recv_exact(s, MIB)
    h.check(len(first) == MIB, "a stream is open through the container")

    stopped = {}

    def stop():
        t0 = time.monotonic()
        stopped["rc"] = pm.run("stop", "-t", "40", name, timeout=90)[0]
        stopped["secs"] = time.monotonic() - t0

    th = threading.Thread(target=stop)
    th.start()
    if not pm.wait_log(name, r'msg="shutting down: draining connections" signal=SIGTERM'):
        h.fail("no drain logged after podman stop")
    try:
        code = rt.http_get("127.0.0.1", cport, "/healthz", timeout=3)[0]
    except OSError:
        code = "refused"
    h.check(code != 200, "while draining /healthz is not 200 (%s): the pod leaves the "
            "Service" % code)
    import hashlib
    hh = hashlib.sha256(first)
    n = len(first)
    while True:
        b = s.recv(rt.CHUNK)
        if not b:
            break
        hh.update(b)
        n += len(b)
    s.close()
    h.check(n == size and hh.hexdigest() == rt.Pattern(7).digest(size),
            "the open stream finished during the drain, byte-exact (%d bytes)" % n)
    th.join(120)
    h.check(stopped.get("rc") == 0, "podman stop returned 0")
    ec = pm.inspect(name, "{{.State.ExitCode}}")
    h.check(ec == "0", "the container exited 0 (exit code %s) in %.1f s, under the 40 s "
            "stop timeout" % (ec, stopped.get("secs", -1)))
    h.check(stopped.get("secs", 99) < 40, "stopped before SIGKILL")
    h.check(re.search(r'msg=stopped', pm.logs(name)), "logged 'stopped'")
    h.passed()


if __name__ == "__main__":
    main()
