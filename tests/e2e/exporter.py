#!/usr/bin/env python3
"""Synthetic exporters of one client cluster (python3, standard library only).

One process serves every exporter pod of a cluster on one address, one path per pod:

  /metrics/node-exporter/<i>    node-exporter on node i (a DaemonSet pod per node)
  /metrics/kube-state-metrics   kube-state-metrics (one Deployment pod)
  /metrics/kube-eagle           kube-eagle (one Deployment pod)

The client cluster's Prometheus scrapes each path as its own target with the labels
Kubernetes service discovery and the Dec-2020 prometheus chart's `kubernetes-pods` relabelling
would attach (app, kubernetes_namespace, kubernetes_pod_name, pod_template_hash or
controller_revision_hash, instance = pod IP:port). plan() says which targets exist and how many
series each exposes; together exactly SERIES per cluster (30 % node-exporter, ~1000 series per
node, at least 3 nodes; 50 % kube-state-metrics; 20 % kube-eagle). Everything is derived
from a seeded random generator, so plan() and the running exporter agree and every run of a
cluster exposes the same label sets. Counters grow with time; gauges hold still.

  exporter.py --cluster orion-aws --series 10000 --listen 127.0.0.1:9100
  exporter.py --cluster orion-aws --series 10000 --plan        # print the targets as JSON
"""
import argparse
import http.server
import itertools
import json
import random
import sys
import time

SHARES = (("node-exporter", 0.30), ("kube-state-metrics", 0.50), ("kube-eagle", 0.20))
SERIES_PER_NODE = 1000
PORTS = {"node-exporter": 9100, "kube-state-metrics": 8080, "kube-eagle": 8080}

# The pods the seed lists for its two client clusters, used for the first pods of each kind.
SEED_PODS = {
    "orion-aws": {
        "node-exporter": ["node-exporter-dh75f", "node-exporter-w6xx6", "node-exporter-p7dbv"],
        "kube-eagle": ["kube-eagle-6687579fd8-xcsns"],
        "kube-state-metrics": ["kube-state-metrics-7476dc6466-74642"],
    },
    "orion-equinix": {
        "node-exporter": ["node-exporter-mzbv2", "node-exporter-9m4nc", "node-exporter-fjjqv"],
        "kube-eagle": ["kube-eagle-546bd88874-p4wfd"],
        "kube-state-metrics": ["kube-state-metrics-cbfb75b4-kndwz"],
    },
}

ALNUM = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet Kubernetes uses for name suffixes
HEX = "0123456789abcdef"


def _suffix(rng, n):
    return "".join(rng.choice(ALNUM) for _ in range(n))


def _hex(rng, n):
    return "".join(rng.choice(HEX) for _ in range(n))


def _uid(rng):
    return "-".join(_hex(rng, n) for n in (8, 4, 4, 4, 12))


class World:
    """The cluster's nodes and an endless, deterministic stream of workload pods."""

    def __init__(self, cluster, nnodes):
        self.cluster = cluster
        rng = random.Random("nodes/" + cluster)
        self.aws = "aws" in cluster
        self.nodes = []
        for i in range(nnodes):
            if self.aws:
                ip = "10.0.%d.%d" % (rng.randrange(0, 48), rng.randrange(4, 250))
                name = "ip-%s.eu-west-1.compute.internal" % ip.replace(".", "-")
            else:
                ip = "147.75.%d.%d" % (rng.randrange(32, 96), rng.randrange(2, 250))
                name = "orion-equinix-c3-small-x86-%02d" % (i + 1)
            self.nodes.append({"name": name, "ip": ip, "cpus": rng.choice((4, 8, 8, 16)),
                               "podcidr": "10.42.%d" % i})

    def pods(self):
        """Deployments and their pods, forever: (deployment dict, [pod dicts])."""
        rng = random.Random("pods/" + self.cluster)
        namespaces = ["default", "kube-system", "ingress-nginx", "cert-manager", "monitoring",
                      "shop-frontend", "shop-orders", "shop-payments", "search", "batch"]
        apps = ["api", "web", "worker", "cache", "gateway", "scheduler", "indexer", "auth",
                "cart", "checkout", "catalog", "mailer", "reports", "ledger", "events"]
        containers = [["app"], ["app", "envoy"], ["app", "fluent-bit"], ["server"]]
        podn = 0
        for k in itertools.count():
            ns = namespaces[k % len(namespaces)]
            name = "%s-%s" % (apps[(k // len(namespaces)) % len(apps)], k // (len(namespaces) * len(apps)))
            name = name[:-2] if name.endswith("-0") else name
            dep = {"namespace": ns, "name": name, "hash": _hex(rng, 10)[:rng.choice((8, 9, 10))],
                   "replicas": rng.choice((1, 2, 2, 3, 4)), "containers": rng.choice(containers),
                   "created": 1606000000 + rng.randrange(0, 3000000)}
            pods = []
            for _ in range(dep["replicas"]):
                node = self.nodes[podn % len(self.nodes)]
                podn += 1
                pods.append({
                    "name": "%s-%s-%s" % (name, dep["hash"], _suffix(rng, 5)),
                    "uid": _uid(rng), "node": node["name"], "host_ip": node["ip"],
                    "ip": "%s.%d" % (node["podcidr"], 2 + podn // len(self.nodes) % 250),
                    "qos": rng.choice(("Burstable", "Burstable", "Guaranteed", "BestEffort")),
                    "image_id": _hex(rng, 64), "container_id": _hex(rng, 64),
                    "restarts": rng.choice((0, 0, 0, 1, 3)),
                })
            yield dep, pods


# A series: (metric name, type, help, labels as a list of pairs, base value, rate per second).
def S(name, typ, labels=(), base=None, rate=0.0, rng=None):
    if base is None:
        base = float(rng.randrange(1, 1 << 20)) if rng else 1.0
    return (name, typ, list(labels), base, rate)


def node_exporter_series(world, node):
    rng = random.Random("ne/" + node["name"])
    n = node["name"]
    g = lambda name, labels=(), base=None: S(name, "gauge", labels, base, 0.0, rng)  # noqa: E731
    c = lambda name, labels=(), rate=None: S(name, "counter", labels, None,  # noqa: E731
                                             rng.uniform(0.01, 50) if rate is None else rate, rng)
    yield g("node_exporter_build_info", [("branch", "HEAD"), ("goversion", "go1.15.5"),
            ("revision", "3715be6ae899f2a9b9dbfd9c39f3e09a7bd4559f"), ("version", "1.0.1")], 1)
    yield g("node_uname_info", [("domainname", "(none)"), ("machine", "x86_64"), ("nodename", n),
            ("release", "5.4.0-1029-aws" if world.aws else "5.4.0-52-generic"),
            ("sysname", "Linux"), ("version", "#30-Ubuntu SMP Tue Oct 20 10:06:38 UTC 2020")], 1)
    for m in ("load1", "load5", "load15", "boot_time_seconds", "time_seconds", "procs_running",
              "procs_blocked", "entropy_available_bits", "filefd_allocated", "filefd_maximum"):
        yield g("node_" + m)
    for m in ("MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapTotal",
              "SwapFree", "Active", "Inactive", "Dirty", "Shmem", "Slab", "PageTables",
              "Committed_AS", "HugePages_Total"):
        yield g("node_memory_%s_bytes" % m)
    for m in ("context_switches_total", "intr_total", "forks_total"):
        yield c("node_" + m)
    root = "/dev/nvme0n1p1" if world.aws else "/dev/sda3"
    for dev, fs, mnt in ((root, "ext4", "/"), ("tmpfs", "tmpfs", "/run"),
                         ("tmpfs", "tmpfs", "/run/lock"), ("shm", "tmpfs", "/dev/shm"),
                         (root, "ext4", "/var/lib/kubelet")):
        lab = [("device", dev), ("fstype", fs), ("mountpoint", mnt)]
        for m in ("avail_bytes", "size_bytes", "free_bytes", "files", "files_free",
                  "readonly", "device_error"):
            yield g("node_filesystem_" + m, lab)
    for dev in (("nvme0n1",) if world.aws else ("sda", "sdb")):
        for m in ("reads_completed_total", "writes_completed_total", "read_bytes_total",
                  "written_bytes_total", "io_time_seconds_total", "read_time_seconds_total",
                  "write_time_seconds_total"):
            yield c("node_disk_" + m, [("device", dev)])
        yield g("node_disk_io_now", [("device", dev)])

    def netif(dev):
        for m in ("receive_bytes_total", "transmit_bytes_total", "receive_packets_total",
                  "transmit_packets_total", "receive_errs_total", "transmit_errs_total",
                  "receive_drop_total", "transmit_drop_total"):
            yield c("node_network_" + m, [("device", dev)])
        yield g("node_network_up", [("device", dev)], 1)
        yield g("node_network_mtu_bytes", [("device", dev)], 9001 if world.aws else 1500)

    for dev in ("lo", "eth0") if world.aws else ("lo", "bond0", "eth0", "eth1"):
        yield from netif(dev)
    modes = ("idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user")
    for cpu in range(node["cpus"]):
        for mode in modes:
            yield c("node_cpu_seconds_total", [("cpu", str(cpu)), ("mode", mode)])
        for mode in ("nice", "user"):
            yield c("node_cpu_guest_seconds_total", [("cpu", str(cpu)), ("mode", mode)], 0.0)
        yield g("node_cpu_scaling_frequency_hertz", [("cpu", str(cpu))], 2.5e9)
    # Then one virtual interface per pod the node runs, as the CNI creates them.
    for i in itertools.count():
        dev = ("eni" if world.aws else "cali") + _hex(rng, 11)
        yield from netif(dev)


def _pod_labels(dep, pod):
    return [("namespace", dep["namespace"]), ("pod", pod["name"])]


def ksm_series(world):
    rng = random.Random("ksm/" + world.cluster)
    g = lambda name, labels=(), base=None: S(name, "gauge", labels, base, 0.0, rng)  # noqa: E731
    yield g("kube_state_metrics_build_info", [("version", "v1.9.7")], 1)
    for node in world.nodes:
        nl = [("node", node["name"])]
        yield g("kube_node_info", nl + [("container_runtime_version", "containerd://1.4.1"),
                ("internal_ip", node["ip"]), ("kernel_version", "5.4.0-1029-aws"),
                ("kubelet_version", "v1.19.4"), ("os_image", "Ubuntu 20.04.1 LTS"),
                ("provider_id", "aws:///eu-west-1a/i-0" + _hex(rng, 16) if world.aws
                 else "equinixmetal://" + _uid(rng))], 1)
        for cond in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"):
            for st in ("true", "false", "unknown"):
                yield g("kube_node_status_condition", nl + [("condition", cond), ("status", st)],
                        1 if (cond == "Ready") == (st == "true") and st != "unknown" else 0)
        for kind in ("capacity", "allocatable"):
            for res, unit in (("cpu", "core"), ("memory", "byte"), ("pods", "integer")):
                yield g("kube_node_status_" + kind, nl + [("resource", res), ("unit", unit)])
    for dep, pods in world.pods():
        dl = [("namespace", dep["namespace"]), ("deployment", dep["name"])]
        for m in ("created", "spec_replicas", "status_replicas", "status_replicas_available",
                  "status_replicas_unavailable", "status_replicas_updated",
                  "metadata_generation", "status_observed_generation"):
            yield g("kube_deployment_" + m, dl, dep["created"] if m == "created" else dep["replicas"])
        rs = "%s-%s" % (dep["name"], dep["hash"])
        rl = [("namespace", dep["namespace"]), ("replicaset", rs)]
        for m in ("spec_replicas", "status_replicas", "status_ready_replicas"):
            yield g("kube_replicaset_" + m, rl, dep["replicas"])
        yield g("kube_replicaset_owner", rl + [("owner_kind", "Deployment"),
                ("owner_name", dep["name"]), ("owner_is_controller", "true")], 1)
        for pod in pods:
            pl = _pod_labels(dep, pod)
            yield g("kube_pod_info", pl + [("host_ip", pod["host_ip"]), ("pod_ip", pod["ip"]),
                    ("uid", pod["uid"]), ("node", pod["node"]), ("created_by_kind", "ReplicaSet"),
                    ("created_by_name", rs), ("priority_class", "")], 1)
            yield g("kube_pod_owner", pl + [("owner_kind", "ReplicaSet"), ("owner_name", rs),
                    ("owner_is_controller", "true")], 1)
            yield g("kube_pod_labels", pl + [("label_app", dep["name"]),
                    ("label_pod_template_hash", dep["hash"])], 1)
            yield g("kube_pod_created", pl, dep["created"])
            yield g("kube_pod_start_time", pl, dep["created"] + 5)
            for ph in ("Pending", "Running", "Succeeded", "Failed", "Unknown"):
                yield g("kube_pod_status_phase", pl + [("phase", ph)], 1 if ph == "Running" else 0)
            for m in ("ready", "scheduled"):
                for cond in ("true", "false", "unknown"):
                    yield g("kube_pod_status_" + m, pl + [("condition", cond)], 1 if cond == "true" else 0)
            for cont in dep["containers"]:
                cl = pl + [("container", cont)]
                yield g("kube_pod_container_info", cl + [
                    ("image", "registry.example.com/%s/%s:1.%d" % (dep["namespace"], cont, len(cont))),
                    ("image_id", "docker-pullable://registry.example.com/%s@sha256:%s" % (cont, pod["image_id"])),
                    ("container_id", "containerd://" + pod["container_id"])], 1)
                for m in ("ready", "running"):
                    yield g("kube_pod_container_status_" + m, cl, 1)
                yield S("kube_pod_container_status_restarts_total", "counter", cl, pod["restarts"], 0.0)
                for m in ("waiting", "terminated"):
                    yield g("kube_pod_container_status_" + m, cl, 0)
                for kind in ("requests", "limits"):
                    for res, unit in (("cpu", "core"), ("memory", "byte")):
                        yield g("kube_pod_container_resource_" + kind, cl + [("node", pod["node"]),
                                ("resource", res), ("unit", unit)])


def eagle_series(world):
    rng = random.Random("eagle/" + world.cluster)
    g = lambda name, labels=(): S(name, "gauge", labels, None, 0.0, rng)  # noqa: E731
    for node in world.nodes:
        for kind in ("allocatable", "requests", "limits", "usage"):
            for res in ("cpu_cores", "memory_bytes"):
                yield g("eagle_node_resource_%s_%s" % (kind, res), [("node", node["name"])])
    for dep, pods in world.pods():
        for pod in pods:
            for cont in dep["containers"]:
                lab = [("pod", pod["name"]), ("container", cont), ("qos", pod["qos"]),
                       ("phase", "Running"), ("namespace", dep["namespace"]), ("node", pod["node"])]
                for kind in ("requests", "limits", "usage"):
                    for res in ("cpu_cores", "memory_bytes"):
                        yield g("eagle_pod_container_resource_%s_%s" % (kind, res), lab)


def plan(cluster, series):
    """The exporter targets of one cluster with SERIES series in all: a list of dicts
    {app, path, pod, count, labels} (labels: the target labels, `instance` included)."""
    if series < 10:
        raise ValueError("SERIES must be at least 10")
    n_node = round(series * SHARES[0][1])
    n_ksm = round(series * SHARES[1][1])
    n_eagle = series - n_node - n_ksm
    nnodes = max(min(3, n_node), round(n_node / SERIES_PER_NODE))
    world = World(cluster, nnodes)
    rng = random.Random("plan/" + cluster)
    seed = SEED_PODS.get(cluster, {})
    ds_hash = _hex(rng, 10)[:9]
    targets = []
    for i, node in enumerate(world.nodes):
        count = n_node // nnodes + (1 if i < n_node % nnodes else 0)
        pods = seed.get("node-exporter", [])
        pod = pods[i] if i < len(pods) else "node-exporter-" + _suffix(rng, 5)
        targets.append({"app": "node-exporter", "path": "/metrics/node-exporter/%d" % i,
                        "pod": pod, "count": count, "node": i, "labels": {
                            "app": "node-exporter", "instance": "%s:9100" % node["ip"],
                            "kubernetes_namespace": "monitoring", "kubernetes_pod_name": pod,
                            "controller_revision_hash": ds_hash, "pod_template_generation": "1"}})
    for app, count in (("kube-state-metrics", n_ksm), ("kube-eagle", n_eagle)):
        pods = seed.get(app) or ["%s-%s-%s" % (app, _hex(rng, 9), _suffix(rng, 5))]
        pod = pods[0]
        node = world.nodes[len(targets) % len(world.nodes)]
        ip = "%s.%d" % (node["podcidr"], 200 + len(targets))
        targets.append({"app": app, "path": "/metrics/" + app, "pod": pod, "count": count, "labels": {
            "app": app, "instance": "%s:%d" % (ip, PORTS[app]), "kubernetes_namespace": "monitoring",
            "kubernetes_pod_name": pod, "pod_template_hash": pod.split("-")[-2]}})
    return world, targets


def _escape(v):
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Exposition:
    """The text exposition of one target: families in first-seen order, the label part of
    every line rendered once; only values are formatted per scrape."""

    def __init__(self, series_iter, count):
        self.families = {}
        for name, typ, labels, base, rate in itertools.islice(series_iter, count):
            fam = self.families.setdefault(name, (typ, []))
            lab = ",".join('%s="%s"' % (k, _escape(v)) for k, v in labels)
            fam[1].append(("%s{%s}" % (name, lab) if lab else name, base, rate))
        self.count = sum(len(f[1]) for f in self.families.values())
        if self.count != count:
            raise RuntimeError("generator ran dry at %d of %d series" % (self.count, count))

    def render(self, t):
        out = []
        for name, (typ, lines) in self.families.items():
            out.append("# HELP %s Synthetic %s.\n# TYPE %s %s\n" % (name, name, name, typ))
            out.extend(["%s %.17g\n" % (p, b + r * t) for p, b, r in lines])
        return "".join(out).encode()


def build(cluster, series):
    world, targets = plan(cluster, series)
    expo = {}
    for t in targets:
        if t["app"] == "node-exporter":
            it = node_exporter_series(world, world.nodes[t["node"]])
        elif t["app"] == "kube-state-metrics":
            it = ksm_series(world)
        else:
            it = eagle_series(world)
        expo[t["path"]] = Exposition(it, t["count"])
    return targets, expo


def serve(listen, cluster, series):
    targets, expo = build(cluster, series)
    start = time.time()
    host, port = listen.rsplit(":", 1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/-/healthy":
                body, ctype = b"ok\n", "text/plain"
            elif path in expo:
                body = expo[path].render(time.time() - start)
                ctype = "text/plain; version=0.0.4; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    http.server.ThreadingHTTPServer.daemon_threads = True
    srv = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    print("exporter %s: %d targets, %d series, listening on %s" % (
        cluster, len(targets), sum(e.count for e in expo.values()), listen), flush=True)
    srv.serve_forever()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--series", type=int, required=True)
    ap.add_argument("--listen", default="127.0.0.1:9100")
    ap.add_argument("--plan", action="store_true", help="print the targets as JSON and exit")
    a = ap.parse_args()
    if a.plan:
        json.dump(plan(a.cluster, a.series)[1], sys.stdout, indent=1)
        print()
        return
    serve(a.listen, a.cluster, a.series)


if __name__ == "__main__":
    main()
