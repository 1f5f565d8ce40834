#!/usr/bin/env python3
"""Build ringlet's OCI image without a Docker engine: stage a root filesystem from this
build and the Debian packages it links, write it as an OCI image layout (one gzip layer),
and tar that layout into an OCI archive (podman load and skopeo read it).

The image holds exactly:
  /usr/bin/ringlet              this build's binary, debug sections stripped
  /usr/bin/inlets-pro           a link to it (charts written for inlets PRO run unchanged)
  the shared libraries the binary loads, at the paths the dynamic loader finds them (the
  loader itself, the rpath'd BoringSSL under /usr/lib/x86_64-linux-gnu/android), with the
  symbolic links on the way (/lib -> usr/lib ...) as the build machine has them
  /etc/ssl/certs/ca-certificates.crt   Debian's CA bundle (the client's --auto-tls=false)
  /etc/passwd, /etc/group       root and the numeric user ringlet runs as (65532)
  /tmp                          1777, for --auto-tls-path when nothing is mounted there
  /usr/share/doc/*/copyright    the licences of the packages those files come from, and
                                ringlet's LICENSE
No shell, no package manager. Every file is owned by root with its mtime set to the commit's
time, so two builds of one commit give the same layer.

usage: image.py --build DIR --out ARCHIVE --version V --revision SHA --source URL
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

UID = GID = 65532
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run(*argv, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        sys.exit("image: %s failed:\n%s%s" % (" ".join(argv), r.stdout, r.stderr))
    return r.stdout


class Rootfs:
    def __init__(self, root):
        self.root = root
        self.sources = set()  # host files copied in (for their packages' copyright files)

    def _dst(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def add_path(self, path):
        """Copy path from the host, recreating every symbolic link met on the way (a
        component of a directory or the file itself) as the same link in the image."""
        parts = [p for p in path.split("/") if p]
        cur = "/"
        for i, p in enumerate(parts):
            nxt = os.path.join(cur, p)
            if os.path.islink(nxt):
                target = os.readlink(nxt)
                dst = self._dst(nxt)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                if not os.path.lexists(dst):
                    os.symlink(target, dst)
                # Follow the link, then the rest of the path.
                rest = "/".join(parts[i + 1:])
                resolved = os.path.normpath(os.path.join(cur, target))
                return self.add_path(os.path.join(resolved, rest) if rest else resolved)
            if i == len(parts) - 1:
                dst = self._dst(nxt)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                if not os.path.exists(dst):
                    shutil.copy2(nxt, dst)
                    self.sources.add(nxt)
            cur = nxt

    def write(self, path, content, mode=0o644):
        dst = self._dst(path)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "w") as f:
            f.write(content)
        os.chmod(dst, mode)

    def normalise(self, epoch):
        """Directories 0755 (/tmp 1777), owner root, mtime = epoch."""
        for d, dirs, files in os.walk(self.root, topdown=False):
            for n in files + dirs:
                p = os.path.join(d, n)
                os.lchown(p, 0, 0)
                if not os.path.islink(p) and os.path.isdir(p):
                    os.chmod(p, 0o1777 if p == self._dst("/tmp") else 0o755)
                os.utime(p, (epoch, epoch), follow_symlinks=False)
        os.utime(self.root, (epoch, epoch))


def loaded_libraries(binary):
    """The files the dynamic loader maps for binary: ldd's resolved paths and the loader."""
    out = run("ldd", binary)
    libs = []
    for line in out.splitlines():
        m = re.search(r"=>\s+(/\S+)", line) or re.match(r"\s*(/\S+)\s+\(", line)
        if m:
            libs.append(m.group(1))
    if not any("ld-linux" in p for p in libs):
        sys.exit("image: no dynamic loader in ldd's output:\n" + out)
    return libs


def package_of(path):
    """The Debian package that ships path (dpkg -S), or None."""
    for p in (path, os.path.realpath(path)):
        r = subprocess.run(["dpkg", "-S", p], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        if r.returncode == 0:
            return r.stdout.split(":", 1)[0].strip()
        # merged /usr: dpkg knows some files by their /lib path only
        alt = re.sub(r"^/usr/lib/", "/lib/", p)
        if alt != p:
            r = subprocess.run(["dpkg", "-S", alt], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
            if r.returncode == 0:
                return r.stdout.split(":", 1)[0].strip()
    return None


def blob(layout, data, media_type):
    """Store data as a blob of the layout; returns its descriptor."""
    digest = hashlib.sha256(data).hexdigest()
    d = os.path.join(layout, "blobs", "sha256")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, digest), "wb") as f:
        f.write(data)
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def layer_tar(root, epoch):
    """The root filesystem as an uncompressed tar: names sorted, owner root, mtime epoch."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        def norm(ti):
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.mtime = epoch
            ti.pax_headers = {}
            return ti
        for d, dirs, files in os.walk(root):
            dirs.sort()
            for n in sorted(dirs + files):
                p = os.path.join(d, n)
                t.add(p, arcname=os.path.relpath(p, root), recursive=False, filter=norm)
    return buf.getvalue()


def write_layout(layout, root, a, created, labels):
    """An OCI image layout (image-spec 1.0) with one gzip layer, written here rather than
    by umoci: umoci 0.4.7's insert leaves the layer's tar truncated (the last file's tail
    and the end-of-archive blocks are missing; Go's tar reader tolerates it, others don't)."""
    os.makedirs(layout)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    tar = layer_tar(root, a.epoch)
    gz = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz, mtime=0, compresslevel=9) as z:
        z.write(tar)
    layer = blob(layout, gz.getvalue(), "application/vnd.oci.image.layer.v1.tar+gzip")
    config = {
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": "%d:%d" % (UID, GID),
            "Env": ["PATH=" + PATH],
            "Entrypoint": ["/usr/bin/ringlet"],
            "WorkingDir": "/",
            "Labels": labels,
            "StopSignal": "SIGTERM",
        },
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
        "history": [{"created": created,
                     "created_by": "tools/image.py (ringlet %s)" % a.revision}],
    }
    cdesc = blob(layout, canonical(config), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": cdesc, "layers": [layer], "annotations": labels}
    mdesc = blob(layout, canonical(manifest), "application/vnd.oci.image.manifest.v1+json")
    # The reference `podman load` gives the image: localhost/ringlet:VERSION.
    mdesc["annotations"] = {"org.opencontainers.image.ref.name": "localhost/ringlet:" +
                            a.version}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [mdesc]}
    with open(os.path.join(layout, "index.json"), "wb") as f:
        f.write(canonical(index))
    for d, dirs, files in os.walk(layout):
        for n in dirs + files:
            os.utime(os.path.join(d, n), (a.epoch, a.epoch))


def tar_layout(layout, archive, epoch):
    """An OCI archive is the layout directory as a tar; sorted names, fixed owner and
    mtime, so the same layout gives the same archive."""
    def norm(ti):
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        ti.mtime = epoch
        return ti

    tmp = archive + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
        for d, dirs, files in os.walk(layout):
            dirs.sort()
            for n in sorted(dirs) + sorted(files):
                p = os.path.join(d, n)
                t.add(p, arcname=os.path.relpath(p, layout), recursive=False, filter=norm)
    os.replace(tmp, archive)


def du(root):
    total = 0
    for d, dirs, files in os.walk(root):
        for n in files:
            st = os.lstat(os.path.join(d, n))
            total += st.st_size
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--revision", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--epoch", type=int, required=True)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("image: run as root (the layer's files must be owned by root)")
    for tool in ("ldd", "objcopy", "dpkg"):
        if not shutil.which(tool):
            sys.exit("image: %s is not installed" % tool)

    work = os.path.join(a.build, "image")
    shutil.rmtree(work, ignore_errors=True)
    root = os.path.join(work, "rootfs")
    os.makedirs(root)
    fs = Rootfs(root)

    binary = os.path.join(a.build, "ringlet")
    os.makedirs(os.path.join(root, "usr/bin"))
    run("objcopy", "--strip-debug", binary, os.path.join(root, "usr/bin/ringlet"))
    os.chmod(os.path.join(root, "usr/bin/ringlet"), 0o755)
    os.symlink("ringlet", os.path.join(root, "usr/bin/inlets-pro"))
    for lib in loaded_libraries(binary):
        fs.add_path(lib)
    fs.add_path("/etc/ssl/certs/ca-certificates.crt")
    fs.write("/etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\n"
             "ringlet:x:%d:%d:ringlet:/tmp:/sbin/nologin\n" % (UID, GID))
    fs.write("/etc/group", "root:x:0:\nringlet:x:%d:\n" % GID)
    os.makedirs(os.path.join(root, "tmp"))
    pkgs = set()
    for src in sorted(fs.sources):
        pkg = package_of(src)
        if src.endswith("ca-certificates.crt"):
            pkg = "ca-certificates"  # generated by update-ca-certificates, not shipped
        if not pkg:
            sys.exit("image: no Debian package ships %s" % src)
        pkgs.add(pkg.split(":")[0])
    for pkg in sorted(pkgs):
        fs.add_path("/usr/share/doc/%s/copyright" % pkg)
    os.makedirs(os.path.join(root, "usr/share/doc/ringlet"), exist_ok=True)
    shutil.copy2("LICENSE", os.path.join(root, "usr/share/doc/ringlet/LICENSE"))
    fs.normalise(a.epoch)

    created = "%sZ" % __import__("datetime").datetime.utcfromtimestamp(a.epoch).isoformat()
    labels = {
        "org.opencontainers.image.title": "ringlet",
        "org.opencontainers.image.description":
            "io_uring TCP tunnel, a drop-in replacement for both ends of an inlets PRO tunnel",
        "org.opencontainers.image.version": a.version,
        "org.opencontainers.image.revision": a.revision,
        "org.opencontainers.image.source": a.source,
        "org.opencontainers.image.licenses": "MIT",
        "org.opencontainers.image.created": created,
    }
    layout = os.path.join(work, "oci")
    write_layout(layout, root, a, created, labels)
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tar_layout(layout, a.out, a.epoch)
    with open(os.path.join(layout, "index.json")) as f:
        mdesc = json.load(f)["manifests"][0]
    blob = lambda d: os.path.join(layout, "blobs", *d["digest"].split(":"))
    with open(blob(mdesc)) as f:
        manifest = json.load(f)
    compressed = sum(l["size"] for l in manifest["layers"])
    sizes = {"archive": os.path.getsize(a.out), "layers_compressed": compressed,
             "unpacked": du(root), "manifest": mdesc["digest"]}
    with open(os.path.join(work, "sizes.json"), "w") as f:
        json.dump(sizes, f, indent=1)
    print("  IMAGE   %s: %s, layer %.1f MiB compressed, %.1f MiB unpacked" %
          (a.out, mdesc["digest"][:19], compressed / 2**20, sizes["unpacked"] / 2**20))


if __name__ == "__main__":
    main()
