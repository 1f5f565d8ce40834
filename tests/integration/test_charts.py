#!/usr/bin/env python3
"""The Helm charts (tools/charts) with real helm (build/tools/helm, the official static
binary: tools/deps-k8s.sh): `helm lint` both; `helm template` with the seed's exact commands
(its custom.yaml, its --set flags) against the golden files in tests/charts/golden, and what
a user relies on in them asserted (Service names and ports, command and args, Secret mounts,
probes, security context, grace period); the optional parts (ServiceMonitor only with the
API, NetworkPolicy, low ports, the image as one string) and the refusals (grace period at or
below the drain timeout, no url); every rendered document valid against the OpenAPI schemas
of the oldest and the newest Kubernetes the charts claim (kubernetes-models, offline), with
unknown fields rejected; `ringlet --generate k8s_yaml` consistent with the charts; the
server's `tunnels:` (one release for many clusters): a three-tunnel render against its golden
file, one <tunnel>-inlets-pro-data-plane Service per tunnel, the ConfigMap and Secrets mounted
as directories, the refusals, and the rendered tunnels file loaded by the real binary.

UPDATE_GOLDEN=1 rewrites the golden files from this tree's charts."""
import json
import os
import re
import shutil
import subprocess

import ringlet_test as rt

CHARTS = os.path.join(rt.REPO, "tools", "charts")
TESTS = os.path.join(rt.REPO, "tests", "charts")
TOOLS = os.path.join(rt.REPO, os.environ.get("RINGLET_BUILD", "build"), "tools")
if not os.path.isdir(TOOLS):
    TOOLS = os.path.join(rt.REPO, "build", "tools")
HELM = os.path.join(TOOLS, "helm")
VALIDATE = os.path.join(TOOLS, "chart-validate")
# The Kubernetes versions the charts claim (Chart.yaml kubeVersion >=1.23) and the newest
# that kubernetes-models describes.
KUBE = ("1.23", "1.36")
SEED_SERVER = ["-n", "monitoring", "-f", os.path.join(TESTS, "seed-custom.yaml")]
SEED_CLIENT = ["-n", "monitoring", "--set", "url=wss://orion-aws.prometheus.example.com/connect",
               "--set", "upstream=prometheus", "--set", "ports=9090"]
SM_API = ["--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"]


def helm(h, *args):
    return h.run([HELM] + list(args), timeout=60)


def render(h, name, release, chart, *args, expect_ok=True):
    rc, out = helm(h, "template", release, os.path.join(CHARTS, chart), *args)
    if expect_ok and rc != 0:
        h.fail("helm template %s %s: %s" % (release, " ".join(args), out))
    path = os.path.join(h.dir, name + ".yaml")
    with open(path, "w") as f:
        f.write(out)
    return rc, out, path


def docs(h, path):
    r = subprocess.run(["node", os.path.join(TESTS, "validate.mjs"),
                        os.path.join(VALIDATE, "node_modules", "k8s-" + KUBE[-1]), "--json", path],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    if r.returncode != 0:
        h.fail("could not parse %s: %s" % (path, r.stderr.decode()))
    return json.loads(r.stdout)


def find(ds, kind, name=None):
    for d in ds:
        if d["kind"] == kind and (name is None or d["metadata"]["name"] == name):
            return d
    return None


def golden(h, name, text):
    path = os.path.join(TESTS, "golden", name)
    if os.environ.get("UPDATE_GOLDEN"):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        rt.log("golden file %s rewritten" % path)
    want = open(path).read() if os.path.exists(path) else None
    if want != text:
        import difflib
        rt.log("".join(difflib.unified_diff((want or "").splitlines(True),
                                            text.splitlines(True), "golden/" + name,
                                            "rendered")))
    h.check(want == text, "rendered output equals golden/%s" % name)


def container(dep):
    return dep["spec"]["template"]["spec"]["containers"][0]


def check_pod_security(h, dep, what):
    pod = dep["spec"]["template"]["spec"]
    c = container(dep)
    psc, sc = pod["securityContext"], c["securityContext"]
    h.check(psc.get("runAsNonRoot") and psc.get("runAsUser") == 65532 and
            psc.get("seccompProfile") == {"type": "RuntimeDefault"},
            "%s: pod runs as non-root 65532, seccomp RuntimeDefault" % what)
    h.check(sc == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                   "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
            "%s: read-only root, no privilege escalation, all capabilities dropped" % what)
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    h.check("/tmp" in mounts and "emptyDir" in vols[mounts["/tmp"]["name"]],
            "%s: an emptyDir at /tmp" % what)
    tok = mounts.get("/etc/inlets")
    h.check(tok and tok.get("readOnly") and
            vols[tok["name"]]["secret"]["secretName"] == "inlets-pro-secret",
            "%s: Secret inlets-pro-secret read-only at /etc/inlets" % what)
    h.check(pod.get("automountServiceAccountToken") is False,
            "%s: no service account token mounted" % what)
    h.check(c["resources"]["requests"] and c["resources"]["limits"]["memory"],
            "%s: resource requests and a memory limit" % what)
    return c, pod, mounts, vols


def check_server(h, ds, release):
    full = release + "-inlets-pro"
    cp = find(ds, "Service", full + "-control-plane")
    dp = find(ds, "Service", full + "-data-plane")
    h.check(cp and cp["spec"]["type"] == "ClusterIP" and
            [(p["port"], p["targetPort"]) for p in cp["spec"]["ports"]] == [(8123, "control")],
            "Service %s-control-plane, ClusterIP, port 8123 (the seed's name)" % full)
    h.check(dp and dp["spec"]["type"] == "ClusterIP" and
            [(p["name"], p["port"], p["targetPort"], p["protocol"]) for p in dp["spec"]["ports"]]
            == [("prom-http", 9090, 9090, "TCP")],
            "Service %s-data-plane, ClusterIP, prom-http 9090->9090 (the seed's Prometheus "
            "job target %s-data-plane:9090)" % (full, full))
    dep = find(ds, "Deployment", full)
    c, pod, mounts, vols = check_pod_security(h, dep, "server")
    h.check(c["command"] == ["inlets-pro"] and c["args"][:4] ==
            ["tcp", "server", "--auto-tls=false", "--token-from=/etc/inlets/token"],
            "server: inlets-pro tcp server --auto-tls=false --token-from=/etc/inlets/token "
            "(%s)" % " ".join(c["args"]))
    drain = [a for a in c["args"] if a.startswith("--drain-timeout=")]
    h.check(drain == ["--drain-timeout=30s"] and pod["terminationGracePeriodSeconds"] == 45,
            "server: grace period 45 s above --drain-timeout=30s")
    for kind in ("readinessProbe", "livenessProbe"):
        p = c.get(kind, {}).get("httpGet", {})
        h.check(p.get("path") == "/healthz" and p.get("port") == "control",
                "server: %s GET /healthz on the control port" % kind)
    h.check(dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"]["type"] == "Recreate",
            "server: one replica, Recreate (never two exit nodes for one tunnel)")
    ing = find(ds, "Ingress")
    rule = ing["spec"]["rules"][0]
    h.check(rule["host"] == release + ".prometheus.example.com" and
            rule["http"]["paths"][0]["backend"]["service"] == {
                "name": full + "-control-plane", "port": {"number": 8123}} and
            ing["spec"]["tls"][0]["hosts"] == [release + ".prometheus.example.com"],
            "Ingress %s.prometheus.example.com (TLS) -> the control plane" % release)
    h.check(find(ds, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1,
            "a PodDisruptionBudget that lets a drain evict the one pod")
    h.check(find(ds, "Service", full + "-metrics") is not None, "a metrics Service")
    h.check(find(ds, "ServiceMonitor") is None, "no ServiceMonitor without the API")
    h.check(find(ds, "NetworkPolicy") is None, "no NetworkPolicy unless enabled")


def check_client(h, ds):
    dep = find(ds, "Deployment", "prometheus-tunnel-ringlet-client")
    c, pod, mounts, vols = check_pod_security(h, dep, "client")
    h.check(c["command"] == ["inlets-pro"] and c["args"] == [
        "tcp", "client", "--url=wss://orion-aws.prometheus.example.com/connect",
        "--upstream=prometheus", "--ports=9090", "--auto-tls=false",
        "--token-from=/etc/inlets/token", "--license-file=/etc/inlets-license/license",
        "--metrics-addr=0.0.0.0:9091"],
        "client: the inlets chart's arguments, plus --metrics-addr (%s)" % " ".join(c["args"]))
    lic = mounts.get("/etc/inlets-license")
    h.check(lic and lic.get("readOnly") and vols[lic["name"]]["secret"] == {
        "secretName": "inlets-license", "optional": True},
        "client: Secret inlets-license at /etc/inlets-license, optional")
    for kind in ("readinessProbe", "livenessProbe"):
        p = c.get(kind, {}).get("httpGet", {})
        h.check(p.get("path") == "/healthz" and p.get("port") == "metrics",
                "client: %s GET /healthz on the metrics port" % kind)


def validate(h, label, paths, kube):
    r = subprocess.run(["node", os.path.join(TESTS, "validate.mjs"),
                        os.path.join(VALIDATE, "node_modules", "k8s-" + kube)] + paths,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = r.stdout.decode()
    if r.returncode != 0:
        rt.log(out)
    h.check(r.returncode == 0, "Kubernetes %s schemas: %s (%s)" %
            (kube, label, out.strip().splitlines()[-1] if out.strip() else "no output"))
    return out


def check_generate(h, rendered):
    """--generate k8s_yaml against the chart rendered as release "ringlet-server" (or
    "ringlet-client") with nameOverride
    "": the same pod (security contexts, volumes, grace period), container (command, args,
    ports, probes, mounts, resources) and Service ports, and valid for both schemas."""
    tok = h.write("gen-token", "t\n")
    cases = (
        ("server", ["tcp", "server", "--auto-tls=false", "--token-from=" + tok,
                    "--control-port=8123", "--drain-timeout=30s", "--allow-ports=9090"],
         ["--set", "nameOverride=", "--set", "ingress.enabled=false"],
         "ringlet-server-control-plane"),
        ("client", ["tcp", "client", "--url=wss://orion-aws.prometheus.example.com/connect",
                    "--upstream=prometheus", "--ports=9090", "--auto-tls=false",
                    "--token-from=" + tok, "--license-file=/l", "--metrics-addr=0.0.0.0:9091"],
         SEED_CLIENT, "ringlet-client-metrics"))
    for what, flags, chart_args, svc in cases:
        rc, out = h.run([rt.ringlet_bin()] + flags + ["--generate", "k8s_yaml"])
        h.check(rc == 0, "%s --generate k8s_yaml runs" % what)
        gen = h.write("generated-%s.yaml" % what, out)
        _, _, ch = render(h, "chart-" + what, "ringlet-" + what, "ringlet-" + what,
                          *chart_args)
        g, c = docs(h, gen), docs(h, ch)
        gd, cd = find(g, "Deployment"), find(c, "Deployment")
        gp, cp = gd["spec"]["template"]["spec"], cd["spec"]["template"]["spec"]
        for k in ("securityContext", "volumes", "terminationGracePeriodSeconds",
                  "automountServiceAccountToken"):
            h.check(gp.get(k) == cp.get(k), "%s: generated pod %s = the chart's" % (what, k))
        for k in ("image", "command", "args", "ports", "readinessProbe", "livenessProbe",
                  "securityContext", "resources", "volumeMounts"):
            want = container(cd).get(k)
            if k == "ports" and what == "server":
                want = want[:1]  # the data-plane ports come from the clients, not the flags
            h.check(container(gd).get(k) == want,
                    "%s: generated container %s = the chart's (%s)" %
                    (what, k, json.dumps(container(gd).get(k))[:120]))
        gs, cs = find(g, "Service", svc), find(c, "Service", svc)
        h.check(gs and cs and gs["spec"]["ports"] == cs["spec"]["ports"] and
                gs["spec"]["selector"] == cs["spec"]["selector"] ==
                cd["spec"]["selector"]["matchLabels"],
                "%s: Service %s as the chart's, selecting its pod" % (what, svc))
        rendered.append(gen)


TUNNELS = ["-n", "monitoring", "-f", os.path.join(TESTS, "tunnels.yaml")]


def check_tunnels(h, rendered):
    """One release for three clusters (tests/charts/tunnels.yaml)."""
    _, out, path = render(h, "tunnels", "obs", "ringlet-server", *TUNNELS)
    golden(h, "server-tunnels.yaml", out)
    rendered.append(path)
    ds = docs(h, path)
    want = {"orion-aws": [("prom-http", 9090, 19001)],
            "orion-equinix": [("prom-http", 9090, 19002)],
            "vega-gcp": [("prom-http", 9090, 19003), ("tcp-3000", 3000, 19004)]}
    for name, ports in want.items():
        svc = find(ds, "Service", name + "-inlets-pro-data-plane")
        h.check(svc and [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]]
                == ports and svc["spec"]["selector"] ==
                find(ds, "Deployment")["spec"]["selector"]["matchLabels"],
                "Service %s-inlets-pro-data-plane -> the tunnel's listen ports %s (the seed's "
                "Prometheus target %s-inlets-pro-data-plane:9090)" % (name, ports, name))
    h.check(find(ds, "Service", "obs-inlets-pro-data-plane") is None,
            "no release-wide data-plane Service with tunnels")
    dep = find(ds, "Deployment", "obs-inlets-pro")
    c, pod, mounts, vols = check_pod_security(h, dep, "server with tunnels")
    h.check(c["args"][:4] == ["tcp", "server", "--auto-tls=false",
                              "--token-from=/etc/inlets/token"] and
            "--tunnels=/etc/ringlet/tunnels/tunnels.yaml" in c["args"],
            "server: --tunnels=/etc/ringlet/tunnels/tunnels.yaml, the operator's token from "
            "/etc/inlets/token")
    tm = mounts.get("/etc/ringlet/tunnels")
    h.check(tm and tm.get("readOnly") and "subPath" not in tm and
            vols[tm["name"]] == {"name": tm["name"], "configMap": {"name": "obs-inlets-pro-tunnels"}},
            "the ConfigMap obs-inlets-pro-tunnels as a directory at /etc/ringlet/tunnels (no "
            "subPath: updates arrive by symlink swap)")
    secrets = {"orion-aws": "orion-aws-token", "orion-equinix": "orion-equinix-inlets-pro-secret",
               "vega-gcp": "vega-gcp-token"}
    ok = True
    for name, secret in secrets.items():
        m = mounts.get("/etc/ringlet/tokens/" + name)
        ok = ok and m and m.get("readOnly") and "subPath" not in m and \
            vols[m["name"]]["secret"] == {"secretName": secret}
    h.check(ok, "each tunnel's Secret (key token) read-only at /etc/ringlet/tokens/<name>/, "
            "the default name <name>-inlets-pro-secret")
    h.check(sorted(p["containerPort"] for p in c["ports"]) == [8123, 19001, 19002, 19003, 19004],
            "container ports: control and the four listen ports")
    cm = find(ds, "ConfigMap", "obs-inlets-pro-tunnels")
    text = cm["data"]["tunnels.yaml"]
    parsed = docs(h, h.write("cm-tunnels.yaml", text))[0]["tunnels"]
    h.check([(t["name"], t["tokenFile"], [(p["port"], p["listen"]) for p in t["ports"]])
             for t in parsed] ==
            [("orion-aws", "/etc/ringlet/tokens/orion-aws/token", [(9090, ":19001")]),
             ("orion-equinix", "/etc/ringlet/tokens/orion-equinix/token", [(9090, ":19002")]),
             ("vega-gcp", "/etc/ringlet/tokens/vega-gcp/token", [(9090, ":19003"),
                                                                   (3001, ":19004")])] and
            parsed[2]["allowIPs"] == ["10.0.0.0/8", "192.168.0.0/16"] and
            parsed[2]["maxStreams"] == 1000000 and "maxStreams" not in parsed[0],
            "tunnels.yaml: each tunnel's tokenFile in its Secret's mount, port -> \":listenPort\"")

    # The real binary loads the rendered file (token paths moved to this test's folder).
    tokdir = os.path.join(h.dir, "tokens")
    toks = {}
    for name in secrets:
        os.makedirs(os.path.join(tokdir, name))
        toks[name] = h.write(os.path.join("tokens", name, "token"),
                             "tok-%s-%d\n" % (name, os.getpid()))
    tfile = h.write("rendered-tunnels.yaml",
                    text.replace("/etc/ringlet/tokens/", tokdir + "/"))
    srv = h.start_server(name="server-tunnels", extra=["--tunnels", tfile])
    h.check(srv.wait_log(r'msg="named tunnels loaded".*tunnels=3', 5),
            "ringlet tcp server --tunnels <the rendered tunnels.yaml> loads three tunnels")
    cl = h.start_client(srv.control_port, [3001], name="client-vega", token_file=toks["vega-gcp"],
                        wait=False)
    h.check(cl.wait_log(r'msg="connected to the server"', 15),
            "a client with vega-gcp's token (from its tokenFile) connects")
    code, _, st = rt.scrape(srv.control_port, "/status", h.token)
    h.check(code == 200 and all('"name":"%s"' % n in st.decode() for n in secrets),
            "/status (the operator's token) lists the three tunnels")

    # Refusals, each with a message naming the entry.
    for what, args, msg in (
            ("a shared listen port", ["--set", "tunnels[1].ports[0].listenPort=19001"],
             "listenPort 19001 is also orion-aws's"),
            ("a name that cannot name a Service", ["--set", "tunnels[0].name=Orion_AWS"],
             'tunnels[0].name "Orion_AWS": use a-z, 0-9'),
            ("a duplicate name", ["--set", "tunnels[1].name=orion-aws"], "used twice"),
            ("the control port", ["--set", "tunnels[0].ports[0].listenPort=8123"],
             "is the control port"),
            ("no listenPort", ["--set", "tunnels[0].ports[0].listenPort=null"],
             "port and listenPort are required")):
        rc, out, _ = render(h, "bad-tunnels", "obs", "ringlet-server", *TUNNELS, *args,
                            expect_ok=False)
        h.check(rc != 0 and msg in out, "refused: %s (%s)" % (
            what, (re.findall(r"tunnels\[.*", out) or [out.strip()])[0][:110]))


def main():
    if not (os.path.exists(HELM) and os.access(HELM, os.X_OK)):
        rt.skip("no helm at %s (make deps fetches it: tools/deps-k8s.sh)" % HELM)
    if not shutil.which("node") or not os.path.isdir(os.path.join(VALIDATE, "node_modules")):
        rt.skip("no node or no kubernetes-models in %s (make deps: tools/deps-k8s.sh)" %
                VALIDATE)
    h = rt.Harness("charts")
    rc, out = helm(h, "version", "--short")
    rt.log("helm " + out.strip())

    rc, out = helm(h, "lint", "--strict", os.path.join(CHARTS, "ringlet-server"))
    h.check(rc == 0, "helm lint --strict ringlet-server")
    rc, out = helm(h, "lint", "--strict", os.path.join(CHARTS, "ringlet-client"),
                   "--set", "url=wss://x.example.com/connect", "--set", "upstream=svc")
    h.check(rc == 0, "helm lint --strict ringlet-client")

    # The seed's commands, exactly (helm install -> helm template).
    rendered = []
    for release in ("orion-aws", "orion-equinix"):
        _, out, path = render(h, "seed-" + release, release, "ringlet-server", *SEED_SERVER,
                              "--set", "ingress.domain=%s.prometheus.example.com" % release)
        golden(h, "server-%s.yaml" % release, out)
        check_server(h, docs(h, path), release)
        rendered.append(path)
    _, out, path = render(h, "seed-client", "prometheus-tunnel", "ringlet-client", *SEED_CLIENT)
    golden(h, "client-prometheus-tunnel.yaml", out)
    check_client(h, docs(h, path))
    rendered.append(path)

    # The optional parts.
    _, _, full_s = render(h, "server-all", "orion-aws", "ringlet-server", *SEED_SERVER, *SM_API,
                          "--set", "networkPolicy.enabled=true",
                          "--set", "dataPlane.ports[0].targetPort=80",
                          "--set", "dataPlane.ports[0].port=80",
                          "--set", "image=registry.example.com/ringlet:9.9.9")
    ds = docs(h, full_s)
    sm = find(ds, "ServiceMonitor")
    h.check(sm and sm["spec"]["endpoints"][0]["authorization"]["credentials"] ==
            {"name": "inlets-pro-secret", "key": "token"},
            "with the monitoring.coreos.com/v1 API: a ServiceMonitor scraping /metrics with "
            "the token")
    np_ = find(ds, "NetworkPolicy")
    h.check(np_ and np_["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] ==
            {"kubernetes.io/metadata.name": "ingress-nginx"} and
            np_["spec"]["ingress"][0]["ports"] == [{"port": 8123, "protocol": "TCP"}],
            "NetworkPolicy: the control port only from the ingress-nginx namespace")
    dep = find(ds, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    h.check(pod["securityContext"].get("sysctls") == [
        {"name": "net.ipv4.ip_unprivileged_port_start", "value": "80"}],
        "data-plane port 80: the unprivileged-port sysctl, not a capability")
    h.check(container(dep)["image"] == "registry.example.com/ringlet:9.9.9",
            "image as one string (the inlets-tcp-server chart's form)")
    _, _, full_c = render(h, "client-all", "prometheus-tunnel", "ringlet-client", *SEED_CLIENT,
                          *SM_API, "--set", "networkPolicy.enabled=true")
    h.check(find(docs(h, full_c), "ServiceMonitor") is not None, "client: ServiceMonitor with the API")
    _, _, nomet = render(h, "client-nometrics", "t", "ringlet-client", *SEED_CLIENT,
                         "--set", "metrics.enabled=false", "--set", "license.enabled=false")
    c = container(find(docs(h, nomet), "Deployment"))
    h.check("readinessProbe" not in c and not any("--metrics-addr" in a or "license" in a
                                                   for a in c["args"]),
            "client without metrics: no listener, no probes; without the licence: no mount")
    rendered += [full_s, full_c, nomet]

    # Refusals.
    rc, out, _ = render(h, "bad-grace", "x", "ringlet-server", "--set",
                        "terminationGracePeriodSeconds=30", expect_ok=False)
    h.check(rc != 0 and "must be above drainTimeoutSeconds" in out,
            "a grace period at or below the drain timeout is refused")
    rc, out, _ = render(h, "bad-client", "x", "ringlet-client", expect_ok=False)
    h.check(rc != 0 and "url is required" in out, "the client chart requires url")
    rc, out, _ = render(h, "old-kube", "x", "ringlet-server", "--kube-version", "1.22.0",
                        expect_ok=False)
    h.check(rc != 0 and "kubeVersion" in out, "Kubernetes 1.22 is refused (kubeVersion >=1.23)")

    check_generate(h, rendered)
    check_tunnels(h, rendered)

    # Schemas, oldest and newest; rendered for that version.
    for kube in KUBE:
        paths = []
        for name, release, chart, args in (
                ("s", "orion-aws", "ringlet-server", SEED_SERVER + SM_API +
                 ["--set", "networkPolicy.enabled=true", "--set", "dataPlane.ports[0].targetPort=80"]),
                ("c", "prometheus-tunnel", "ringlet-client", SEED_CLIENT + SM_API +
                 ["--set", "networkPolicy.enabled=true"])):
            _, _, p = render(h, "kube-%s-%s" % (kube, name), release, chart, *args,
                             "--kube-version", kube + ".0")
            paths.append(p)
        validate(h, "every document of the seed renders and of every option", rendered + paths, kube)
    # The unknown-field check is live: a misspelt field fails.
    with open(os.path.join(h.dir, "seed-orion-aws.yaml")) as f:
        text = f.read()
    bad = os.path.join(h.dir, "misspelt.yaml")
    with open(bad, "w") as f:
        f.write(text.replace("readOnlyRootFilesystem", "readOnlyRootFileSystem"))
    r = subprocess.run(["node", os.path.join(TESTS, "validate.mjs"),
                        os.path.join(VALIDATE, "node_modules", "k8s-" + KUBE[0]), bad],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    h.check(r.returncode != 0 and b"unknown field(s) /spec/template/spec/containers/0/"
            b"securityContext/readOnlyRootFileSystem" in r.stdout,
            "a misspelt field (readOnlyRootFileSystem) is rejected as unknown")
    h.passed()


if __name__ == "__main__":
    main()
