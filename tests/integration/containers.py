"""Helpers for the tests that run ringlet's OCI image (make image) with podman.

Each test gets its own podman storage in its temporary folder (vfs driver, cgroupfs, runc,
no events), loads build/ringlet-image.oci.tar into it and removes it all at the end, so
nothing outside the test is touched and two tests never share state.

Seccomp: podman's default profile (/usr/share/containers/seccomp.json, containers-common) is
what Kubernetes' RuntimeDefault is on CRI-O, and like containerd 2.x's it does not allow the
io_uring syscalls. io_uring_profile() writes that profile plus io_uring_setup, _enter and
_register: the Localhost profile tools/charts/README.md tells users to install.
"""
import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile

import ringlet_test as rt

IMAGE_REF = None  # set by Podman.load()
DEFAULT_SECCOMP = "/usr/share/containers/seccomp.json"
IO_URING = ["io_uring_setup", "io_uring_enter", "io_uring_register"]
# Within this machine's hard limits (nofile 20000): podman's defaults (1048576) are not.
ULIMITS = ["--ulimit", "nofile=16384:16384", "--ulimit", "nproc=4096:4096"]


def image_archive():
    return os.path.join(rt.REPO, os.environ.get("RINGLET_BUILD", "build"),
                        "ringlet-image.oci.tar")


def require_podman():
    """Skip (with the reason) unless root, podman, runc, conmon and the image are here."""
    if os.geteuid() != 0:
        rt.skip("needs root (podman with its own storage, network namespaces)")
    for tool in ("podman", "runc"):
        if not shutil.which(tool):
            rt.skip("%s is not installed (make deps installs it: tools/deps-k8s.sh)" % tool)
    if not os.path.exists(DEFAULT_SECCOMP):
        rt.skip("no %s (containers-common, installed with podman)" % DEFAULT_SECCOMP)
    if not os.path.exists(image_archive()):
        rt.skip("no %s (make image builds it)" % image_archive())


def io_uring_profile(path):
    """Write the default profile plus the io_uring syscalls to path; returns path."""
    with open(DEFAULT_SECCOMP) as f:
        prof = json.load(f)
    for rule in prof["syscalls"]:
        for n in IO_URING:
            if n in rule.get("names", []) and rule.get("action") == "SCMP_ACT_ALLOW":
                raise RuntimeError("the default profile already allows %s" % n)
    prof["syscalls"].append({"names": IO_URING, "action": "SCMP_ACT_ALLOW"})
    with open(path, "w") as f:
        json.dump(prof, f, indent=1)
    return path


def image_files():
    """({path: tarinfo}, config, manifest, {path: bytes}) of the image, read from the
    archive."""
    with tarfile.open(image_archive()) as t:
        def blob(desc):
            return t.extractfile("blobs/%s/%s" % tuple(desc["digest"].split(":")))
        index = json.load(t.extractfile("index.json"))
        manifest = json.load(blob(index["manifests"][0]))
        config = json.load(blob(manifest["config"]))
        files, contents = {}, {}
        for layer in manifest["layers"]:
            # Read strictly (random access): a truncated layer fails here.
            data = gzip.decompress(blob(layer).read())
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as lt:
                for ti in lt.getmembers():
                    name = "/" + ti.name.lstrip("./").rstrip("/")
                    files[name] = ti
                    if ti.isfile():
                        contents[name] = lt.extractfile(ti).read()
    return files, config, manifest, contents


class Podman:
    def __init__(self, h):
        self.h = h
        self.dir = os.path.join(h.dir, "podman")
        os.makedirs(self.dir)
        self.base = ["podman", "--root", os.path.join(self.dir, "storage"),
                     "--runroot", os.path.join(self.dir, "run"), "--storage-driver", "vfs",
                     "--cgroup-manager", "cgroupfs", "--runtime", "runc",
                     "--events-backend", "none", "--tmpdir", os.path.join(self.dir, "tmp")]
        self.names = []
        h.on_cleanup.append(self.cleanup)

    def run(self, *args, timeout=60):
        return self.h.run(self.base + list(args), timeout=timeout)

    def load(self):
        rc, out = self.run("load", "-q", "-i", image_archive(), timeout=120)
        if rc != 0:
            self.h.fail("podman load %s: %s" % (image_archive(), out))
        ref = out.strip().split()[-1]
        return ref

    def start(self, name, argv):
        """podman run -d ...argv; returns the container's name."""
        rc, out = self.run("run", "-d", "--name", name, *argv, timeout=60)
        if rc != 0:
            self.h.fail("podman run %s: %s" % (name, out))
        self.names.append(name)
        return name

    def inspect(self, name, fmt):
        rc, out = self.run("inspect", "--format", fmt, name)
        return out.strip() if rc == 0 else None

    def logs(self, name):
        return self.run("logs", name)[1]

    def wait_log(self, name, pattern, timeout=15):
        import re
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if re.search(pattern, self.logs(name)):
                return True
            time.sleep(0.2)
        return False

    def cleanup(self):
        for n in self.names:
            self.run("rm", "-f", "-t", "0", n)
        shutil.rmtree(self.dir, ignore_errors=True)

    def dump(self):
        for n in self.names:
            rt.log("---- container %s: %s" % (n, self.inspect(n, "{{.State.Status}} exit={{.State.ExitCode}}")))
            rt.log(self.logs(n)[-4000:])
