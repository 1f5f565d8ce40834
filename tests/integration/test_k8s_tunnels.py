#!/usr/bin/env python3
"""One release for many clusters, run from the image: the server chart rendered with three
tunnels (tests/charts/tunnels.yaml) is started with podman as its pod spec says
(test_k8s_run.pod_argv), its ConfigMap and each tunnel's Secret laid out as the kubelet
lays out a volume - the keys are symlinks to ..data/<key>, ..data a symlink to a
timestamped folder - and mounted as directories where the Deployment puts them. Two
clients (the host's binary, in the pod's network namespace) connect with two tunnels'
tokens and their listen ports open. Then the kubelet's update is done by hand: a new
version of the ConfigMap (orion-equinix removed) swapped in by renaming ..data, and the
server reloads by itself (inotify, no signal): orion-equinix is removed, orion-aws's
client stays. A new token in orion-aws's Secret, swapped in the same way, disconnects only
that tunnel's client, which is then refused."""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import containers as ct  # noqa: E402
import ringlet_test as rt  # noqa: E402
import test_charts as tc  # noqa: E402
import test_k8s_run as tk  # noqa: E402


class Volume:
    """A folder as the kubelet writes a ConfigMap or Secret volume (atomic_writer.go)."""

    def __init__(self, path):
        self.path, self.n = path, 0
        os.makedirs(path, mode=0o755)
        os.chmod(path, 0o755)

    def update(self, files):
        self.n += 1
        ts = os.path.join(self.path, "..2026_12_05_00_00_%02d.%d" % (self.n, os.getpid()))
        os.makedirs(ts, mode=0o755)
        os.chmod(ts, 0o755)
        for k, v in files.items():
            with open(os.path.join(ts, k), "w") as f:
                f.write(v)
            os.chmod(os.path.join(ts, k), 0o644)
        tmp = os.path.join(self.path, "..data_tmp")
        os.symlink(os.path.basename(ts), tmp)
        os.rename(tmp, os.path.join(self.path, "..data"))
        for k in files:
            link = os.path.join(self.path, k)
            if not os.path.lexists(link):
                os.symlink(os.path.join("..data", k), link)


def main():
    ct.require_podman()
    if not os.path.exists(tc.HELM) or not os.path.isdir(os.path.join(tc.VALIDATE, "node_modules")):
        rt.skip("no helm or kubernetes-models under %s (make deps: tools/deps-k8s.sh)" % tc.TOOLS)
    h = rt.Harness("k8stunnels")
    cleanup = []
    h.on_cleanup.append(lambda: [f() for f in reversed(cleanup)])
    os.chmod(h.dir, 0o755)

    _, _, path = tc.render(h, "server", "obs", "ringlet-server", *tc.TUNNELS,
                           *tk.LOCALHOST_PROFILE)
    ds = tc.docs(h, path)
    dep = tc.find(ds, "Deployment")
    cm = tc.find(ds, "ConfigMap", "obs-inlets-pro-tunnels")
    v1 = cm["data"]["tunnels.yaml"]

    # The volumes, as the kubelet writes them.
    vols = {"obs-inlets-pro-tunnels": Volume(os.path.join(h.dir, "cm-tunnels")),
            "inlets-pro-secret": Volume(os.path.join(h.dir, "secret-operator"))}
    vols["obs-inlets-pro-tunnels"].update({"tunnels.yaml": v1})
    vols["inlets-pro-secret"].update({"token": h.token})
    toks = {}
    for v in dep["spec"]["template"]["spec"]["volumes"]:
        sec = v.get("secret", {}).get("secretName")
        if v["name"].startswith("token-"):
            name = v["name"][len("token-"):]
            toks[name] = "tok-%s-%d" % (name, os.getpid())
            vols[sec] = Volume(os.path.join(h.dir, "secret-" + name))
            vols[sec].update({"token": toks[name]})
    h.check(sorted(toks) == ["orion-aws", "orion-equinix", "vega-gcp"],
            "the pod mounts three tunnels' Secrets")
    srcs = {k: v.path for k, v in vols.items()}

    ns = "rl-tun-%d" % (os.getpid() % 100000)
    tk.netns(h, ns, cleanup)
    profile = ct.io_uring_profile(os.path.join(h.dir, "ringlet-io-uring.json"))
    pm = ct.Podman(h)
    ref = pm.load()
    argv, args, c, pod = tk.pod_argv(h, dep, srcs, profile)
    srv = pm.start("server", ["--network", "ns:/run/netns/" + ns, *argv, ref, *args])
    rt.log("server pod: podman run %s %s %s" % (" ".join(argv), ref, " ".join(args)))
    if not pm.wait_log(srv, r'msg="server listening"', 20):
        pm.dump()
        h.fail("the server pod did not start")
    h.check(pm.wait_log(srv, r'msg="named tunnels loaded" file="?/etc/ringlet/tunnels/'
                        r'tunnels.yaml"? tunnels=3', 5),
            "the pod loaded the mounted ConfigMap's tunnels.yaml: three tunnels")

    # Two clusters' clients, with their tunnels' tokens (the Secrets' values).
    clients = {}
    for name, port in (("orion-aws", 19001), ("orion-equinix", 19002)):
        tf = h.write("client-token-" + name, toks[name] + "\n")
        clients[name] = h.spawn("client-" + name, [
            "ip", "netns", "exec", ns, h.bin, "client", "--url", "ws://127.0.0.1:8123",
            "--token-file", tf, "--upstream", "127.0.0.1", "--ports", "9090",
            "--auto-tls=false"])
        h.check(clients[name].wait_log(r'msg="connected to the server"', 15) and
                pm.wait_log(srv, r'msg="data-plane port open" port=%d ' % port, 10),
                "%s's client connects with its token; the pod listens on %d" % (name, port))

    # The kubelet's update of the ConfigMap: a new version, ..data swapped.
    v2 = v1[:v1.index("  - name: orion-equinix")] + v1[v1.index("  - name: vega-gcp"):]
    vols["obs-inlets-pro-tunnels"].update({"tunnels.yaml": v2})
    h.check(pm.wait_log(srv, r'msg="tunnels file reloaded" why=file-changed tunnels=2 '
                        r'added=0 removed=1', 10),
            "the ..data swap of the ConfigMap is seen: reloaded, orion-equinix removed")
    h.check(not clients["orion-aws"].count(r'disconnected from the server'),
            "orion-aws's client stays connected")

    # A new token in orion-aws's Secret: only that tunnel's client is disconnected.
    vols["orion-aws-token"].update({"token": toks["orion-aws"] + "-new"})
    h.check(pm.wait_log(srv, r'msg="tunnels file reloaded" why=file-changed .*'
                        r'token_changed=1', 10),
            "the ..data swap of orion-aws's Secret is seen: its token changed")
    h.check(clients["orion-aws"].wait_log(r'server rejected the token', 15),
            "orion-aws's client with the old token is disconnected and refused")
    h.check("tunnels file not reloaded" not in pm.logs(srv), "no failed reload")
    h.passed()


if __name__ == "__main__":
    main()
