#!/usr/bin/env python3
"""Run what the charts render: the seed's two helm commands (tools/charts, real helm) give a
server and a client Deployment; this test starts the image (make image) with podman exactly
as each rendered pod spec says - command and args (inlets-pro, found on the image's PATH),
environment, user, the Secret volumes mounted read-only where the spec puts them, the
emptyDir at /tmp, read-only root filesystem, all capabilities dropped, no new privileges,
the memory limit - and checks the seed's path through them.

Two network namespaces stand in for the two clusters: "obs" holds the server pod, the
ingress (Debian's nginx configured as test_ingress.py configures it: TLS, HTTP/1.1
upgrade, the ingress-nginx headers and timeouts) on 443, and the Prometheus that scrapes the
data plane; "cli" holds the client pod and the upstream "prometheus" on 9090. A veth pair
joins them (10.250.X.0/30, as test_sockmap.py picks it). 64 MiB cross byte-exact from
prometheus:9090 in "cli" to <release>-inlets-pro-data-plane:9090 in "obs"; both readiness
probes answer 200; `podman stop -t <terminationGracePeriodSeconds>` drains each pod and it
exits 0 within its grace period.

What differs from a cluster, each a stand-in: Services are the pods' own ports (one pod
each), the cluster's DNS is a hosts file mounted at /etc/hosts, the ingress certificate is
issued by a test CA mounted over the image's CA bundle (cert-manager's Let's Encrypt
certificate would verify against the bundle itself), and the seccomp profile is rendered
as Localhost: Kubernetes' RuntimeDefault is podman's default profile here, which blocks
io_uring (test_image.py shows the refusal), so the charts' README tells users of such
runtimes to install this profile (the default plus the io_uring syscalls)."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import containers as ct  # noqa: E402
import ringlet_test as rt  # noqa: E402
import test_charts as tc  # noqa: E402
import test_ingress as ti  # noqa: E402

MIB = 1 << 20
DOMAIN = "orion-aws.prometheus.example.com"
LOCALHOST_PROFILE = ["--set", "podSecurityContext.seccompProfile.type=Localhost",
                     "--set", "podSecurityContext.seccompProfile.localhostProfile="
                     "profiles/ringlet-io-uring.json"]


def netns(h, name, cleanup):
    r = subprocess.run(["ip", "netns", "add", name], stderr=subprocess.PIPE)
    if r.returncode != 0:
        rt.skip("cannot create a network namespace: %s" % r.stderr.decode().strip())
    cleanup.append(lambda: subprocess.run(["ip", "netns", "del", name],
                                          stderr=subprocess.DEVNULL))
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)


def pod_argv(h, dep, secrets, profile):
    """podman run arguments for the rendered Deployment's pod: its one container, as the
    kubelet would start it. secrets maps a Secret (or ConfigMap) name to a host folder of
    its keys."""
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    psc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
    argv = [*ct.ULIMITS, "--read-only-tmpfs=false"]
    if sc.get("readOnlyRootFilesystem"):
        argv.append("--read-only")
    uid = sc.get("runAsUser", psc.get("runAsUser"))
    gid = sc.get("runAsGroup", psc.get("runAsGroup"))
    if uid is not None:
        argv += ["--user", "%d:%d" % (uid, gid if gid is not None else uid)]
    for cap in sc.get("capabilities", {}).get("drop", []):
        argv += ["--cap-drop", cap]
    if sc.get("allowPrivilegeEscalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    sp = sc.get("seccompProfile", psc.get("seccompProfile", {}))
    if sp.get("type") == "Localhost":
        argv += ["--security-opt", "seccomp=" + profile]
    elif sp.get("type") != "RuntimeDefault":
        h.fail("unexpected seccomp profile %s" % sp)
    for s in psc.get("sysctls", []):
        argv += ["--sysctl", "%s=%s" % (s["name"], s["value"])]
    mem = c.get("resources", {}).get("limits", {}).get("memory")
    if mem:
        argv += ["--memory", mem.replace("Mi", "m").replace("Gi", "g")]
    for e in c.get("env", []):
        argv += ["--env", "%s=%s" % (e["name"], e["value"])]
    vols = {v["name"]: v for v in pod["volumes"]}
    for m in c.get("volumeMounts", []):
        v = vols[m["name"]]
        if "emptyDir" in v:
            size = v["emptyDir"].get("sizeLimit", "64Mi").replace("Mi", "m")
            argv += ["--mount", "type=tmpfs,destination=%s,tmpfs-size=%s,tmpfs-mode=1777" %
                     (m["mountPath"], size)]
        elif "secret" in v:
            src = secrets.get(v["secret"]["secretName"])
            if src is None:
                if not v["secret"].get("optional"):
                    h.fail("Secret %s is not optional and the test has none" %
                           v["secret"]["secretName"])
                src = os.path.join(h.dir, "empty-secret-" + m["name"])
                os.makedirs(src, mode=0o755, exist_ok=True)
            argv += ["-v", "%s:%s:%s" % (src, m["mountPath"], "ro" if m.get("readOnly") else "rw")]
        elif "configMap" in v and v["configMap"]["name"] in secrets:
            argv += ["-v", "%s:%s:%s" % (secrets[v["configMap"]["name"]], m["mountPath"],
                                         "ro" if m.get("readOnly") else "rw")]
        else:
            h.fail("unexpected volume %s" % v)
    argv += ["--entrypoint", json.dumps(c["command"])] if c.get("command") else []
    return argv, c.get("args", []), c, pod


def probe(h, ns, port, path):
    rc, out = h.run(["ip", "netns", "exec", ns, "curl", "-s", "-o", "/dev/null", "-w",
                     "%{http_code}", "--max-time", "3", "http://127.0.0.1:%d%s" % (port, path)])
    return out.strip()


def rss_kib(pm, name):
    pid = pm.inspect(name, "{{.State.Pid}}")
    try:
        st = open("/proc/%s/status" % pid).read()
    except (OSError, TypeError):
        return None
    m = re.search(r"VmHWM:\s+(\d+) kB", st)
    return int(m.group(1)) if m else None


def main():
    ct.require_podman()
    for tool in ("nginx", "openssl", "curl", "ip"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            rt.skip("%s is not installed (make deps installs it)" % tool)
    if not os.path.exists(tc.HELM) or not os.path.isdir(os.path.join(tc.VALIDATE, "node_modules")):
        rt.skip("no helm or kubernetes-models under %s (make deps: tools/deps-k8s.sh)" % tc.TOOLS)
    h = rt.Harness("k8srun")
    cleanup = []
    h.on_cleanup.append(lambda: [f() for f in reversed(cleanup)])

    # Render with the seed's commands (the seccomp profile as Localhost: see above).
    _, _, spath = tc.render(h, "server", "orion-aws", "ringlet-server", *tc.SEED_SERVER,
                            "--set", "ingress.domain=" + DOMAIN, *LOCALHOST_PROFILE)
    _, _, cpath = tc.render(h, "client", "prometheus-tunnel", "ringlet-client", *tc.SEED_CLIENT,
                            *LOCALHOST_PROFILE)
    sdocs, cdocs = tc.docs(h, spath), tc.docs(h, cpath)
    sdep, cdep = tc.find(sdocs, "Deployment"), tc.find(cdocs, "Deployment")
    data_svc = tc.find(sdocs, "Service", "orion-aws-inlets-pro-data-plane")
    cp_svc = tc.find(sdocs, "Service", "orion-aws-inlets-pro-control-plane")
    ing = tc.find(sdocs, "Ingress")
    data_port = data_svc["spec"]["ports"][0]["targetPort"]
    control_port = cp_svc["spec"]["ports"][0]["port"]
    h.check(ing["spec"]["rules"][0]["host"] == DOMAIN and data_port == 9090 and
            control_port == 8123, "rendered: Ingress %s, control 8123, data plane 9090" % DOMAIN)

    # Two "clusters" joined by a veth pair.
    tag = "%d" % (os.getpid() % 100000)
    obs, cli = "rl-obs-" + tag, "rl-cli-" + tag
    netns(h, obs, cleanup)
    netns(h, cli, cleanup)
    octet = 16 + os.getpid() % 200
    used = subprocess.run(["ip", "-4", "-o", "addr"], stdout=subprocess.PIPE).stdout.decode()
    while "10.250.%d." % octet in used:
        octet = 16 + (octet + 1) % 200
    obs_ip, cli_ip = "10.250.%d.1" % octet, "10.250.%d.2" % octet
    for cmd in (["ip", "link", "add", "rlk8s" + tag, "type", "veth", "peer", "name", "eth0",
                 "netns", cli],
                ["ip", "link", "set", "rlk8s" + tag, "netns", obs],
                ["ip", "-n", obs, "link", "set", "rlk8s" + tag, "name", "eth0"],
                ["ip", "-n", obs, "addr", "add", obs_ip + "/30", "dev", "eth0"],
                ["ip", "-n", cli, "addr", "add", cli_ip + "/30", "dev", "eth0"],
                ["ip", "-n", obs, "link", "set", "eth0", "up"],
                ["ip", "-n", cli, "link", "set", "eth0", "up"]):
        r = subprocess.run(cmd, stderr=subprocess.PIPE)
        if r.returncode != 0:
            h.fail("netns set-up: %s: %s" % (" ".join(cmd), r.stderr.decode().strip()))

    # Secrets as the seed creates them (the token file ends in a newline: echo $TOKEN >).
    tokdir = os.path.join(h.dir, "secret-inlets-pro-secret")
    os.makedirs(tokdir)
    with open(os.path.join(tokdir, "token"), "w") as f:
        f.write(h.token + "\n")
    os.chmod(tokdir, 0o755)
    os.chmod(os.path.join(tokdir, "token"), 0o644)
    os.chmod(h.dir, 0o755)
    secrets = {"inlets-pro-secret": tokdir}
    profile = ct.io_uring_profile(os.path.join(h.dir, "ringlet-io-uring.json"))

    pm = ct.Podman(h)
    ref = pm.load()
    h.check(tc.container(sdep)["image"] == ref,
            "the rendered image %s is the one make image built" % ref)

    # The server pod, in "obs".
    argv, args, c, pod = pod_argv(h, sdep, secrets, profile)
    srv = pm.start("server", ["--network", "ns:/run/netns/" + obs, *argv, ref, *args])
    if not pm.wait_log(srv, r'msg="server listening"', 20):
        pm.dump()
        h.fail("the server pod did not start")
    rt.log("server pod: podman run %s %s %s" % (" ".join(argv), ref, " ".join(args)))
    ready = c["readinessProbe"]["httpGet"]
    h.check(probe(h, obs, control_port, ready["path"]) == "200",
            "server readiness probe GET %s on the control port: 200" % ready["path"])

    # The ingress in "obs" on 443 (the URL in the client's args has no port).
    ca, certs = ti.make_certs(h)
    os.makedirs(os.path.join(h.dir, "tmp"))
    block = ti.SERVER_BLOCK.replace("127.0.0.1:{port} ssl", "{addr}:{port} ssl").format(
        addr=obs_ip, port=443, domain=DOMAIN, crt=certs[DOMAIN][0], key=certs[DOMAIN][1],
        upstream=control_port)
    conf = h.write("nginx.conf", ti.NGINX_CONF.format(dir=h.dir, servers=block))
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    h.spawn("nginx", ["ip", "netns", "exec", obs, nginx, "-c", conf, "-p", h.dir])

    # The upstream "prometheus" in "cli".
    size = 64 * MIB + 3
    src = h.spawn("prometheus", ["ip", "netns", "exec", cli, sys.executable,
                                 os.path.join(os.path.dirname(__file__), "k8s_peer.py"),
                                 "source", "127.0.0.1", "9090", "11", str(size)])
    if not src.wait_log("listening", 10):
        h.fail("the upstream did not start")

    # The client pod, in "cli": cluster DNS and the public CA are the two stand-ins.
    hosts = h.write("hosts", "127.0.0.1 localhost prometheus\n%s %s\n" % (obs_ip, DOMAIN))
    os.chmod(hosts, 0o644)
    os.chmod(ca, 0o644)
    argv, args, cc, cpod = pod_argv(h, cdep, secrets, profile)
    cl = pm.start("client", ["--network", "ns:/run/netns/" + cli,
                             "-v", hosts + ":/etc/hosts:ro",
                             "-v", ca + ":/etc/ssl/certs/ca-certificates.crt:ro",
                             *argv, ref, *args])
    rt.log("client pod: podman run %s %s %s" % (" ".join(argv), ref, " ".join(args)))
    if not pm.wait_log(cl, r'msg="connected to the server"', 30):
        pm.dump()
        h.fail("the client pod did not connect through the ingress")
    if not pm.wait_log(srv, r'msg="data-plane port open" port=%d ' % data_port, 15):
        pm.dump()
        h.fail("the data-plane port did not open")
    cready = cc["readinessProbe"]["httpGet"]
    h.check(probe(h, cli, 9091, cready["path"]) == "200",
            "client readiness probe GET %s on the metrics port: 200" % cready["path"])

    # Prometheus in "obs" reads the data plane: 64 MiB, byte-exact.
    rc, out = h.run(["ip", "netns", "exec", obs, sys.executable,
                     os.path.join(os.path.dirname(__file__), "k8s_peer.py"),
                     "sink", "127.0.0.1", str(data_port)], timeout=180)
    want = "%d %s" % (size, rt.Pattern(11).digest(size))
    h.check(rc == 0 and out.strip() == want,
            "64 MiB from prometheus:9090 (client cluster) to orion-aws-inlets-pro-data-plane:"
            "9090 through the ingress, byte-exact")
    srss, crss = rss_kib(pm, srv), rss_kib(pm, cl)
    rt.log("peak RSS: server %s KiB, client %s KiB (the charts' requests: 32Mi, limits 128Mi)"
           % (srss, crss))
    h.check(srss and crss and srss < 128 * 1024 and crss < 128 * 1024,
            "peak RSS within the charts' 128Mi limit")

    # podman stop: SIGTERM, SIGKILL after the pod's grace period.
    for name, p, grace in (("server", srv, pod["terminationGracePeriodSeconds"]),
                           ("client", cl, cpod["terminationGracePeriodSeconds"])):
        t0 = time.monotonic()
        rc, out = pm.run("stop", "-t", str(grace), p, timeout=grace + 30)
        secs = time.monotonic() - t0
        ec = pm.inspect(p, "{{.State.ExitCode}}")
        h.check(rc == 0 and ec == "0" and secs < grace,
                "%s: podman stop -t %d drains and it exits %s after %.1f s" %
                (name, grace, ec, secs))
    h.check(re.search(r'msg="shutting down: draining connections" signal=SIGTERM',
                      pm.logs(srv)), "the server logged its drain")
    h.passed()


if __name__ == "__main__":
    main()
