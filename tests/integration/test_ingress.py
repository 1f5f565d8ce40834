#!/usr/bin/env python3
"""The seed's topology with a real ingress: Debian's nginx configured as ingress-nginx
configures it (TLS with a test CA, HTTP/1.1 to the upstream, Upgrade/Connection headers,
60 s proxy_read_timeout, one server block per tunnel domain) in front of two ringlet
servers running --auto-tls=false; two clients dial wss://DOMAIN/connect with
--auto-tls=false trusting the test CA. Each carries 256 MiB byte-exact; after
`nginx -s reload` both reconnect and traffic flows again; a tunnel idle for 90 s behind
nginx stays up.

The clients resolve the two domains to 127.0.0.1 through an /etc/hosts bind-mounted in a
private mount namespace (unshare -m), so nothing outside the test changes."""
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ringlet_test as rt

MIB = 1 << 20
DOMAINS = ("orion-aws.prometheus.example.com", "orion-equinix.prometheus.example.com")

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
# ingress-nginx: worker-shutdown-timeout (240 s there) bounds how long old workers keep
# upgraded connections after a reload; short here so the test sees the reconnect.
worker_shutdown_timeout 2s;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp;
  fastcgi_temp_path {dir}/tmp; uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
{servers}
}}
"""

SERVER_BLOCK = """
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name {domain};
    ssl_certificate {crt};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Request-ID $request_id;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port {port};
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Scheme https;
      proxy_connect_timeout 5s;
      proxy_send_timeout 60s;
      proxy_read_timeout 60s;
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
"""


def openssl(h, *args):
    r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60)
    if r.returncode != 0:
        h.fail("openssl failed: %s" % r.stdout.decode()[-400:])


def make_certs(h):
    d = os.path.join(h.dir, "pki")
    os.makedirs(d)
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    openssl(h, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", ca_key, "-out", ca_crt, "-days", "30", "-subj",
            "/CN=test ingress CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    certs = {}
    for dom in DOMAINS:
        key, csr, crt = (os.path.join(d, dom + e) for e in (".key", ".csr", ".crt"))
        openssl(h, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", key, "-out", csr, "-subj", "/CN=" + dom)
        ext = os.path.join(d, dom + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n" % dom)
        openssl(h, "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key,
                "-CAcreateserial", "-out", crt, "-days", "10", "-extfile", ext)
        certs[dom] = (crt, key)
    return ca_crt, certs


def main():
    for tool in ("nginx", "openssl", "unshare", "mount"):
        if not shutil.which(tool) and not os.path.exists("/usr/sbin/" + tool):
            rt.skip("%s is not installed (make deps installs nginx and openssl)" % tool)
    if os.geteuid() != 0:
        rt.skip("needs root for a private mount namespace (the clients' /etc/hosts)")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    h = rt.Harness("ingress")
    ca, certs = make_certs(h)
    hosts = h.write("hosts", "127.0.0.1 localhost\n" +
                    "".join("127.0.0.1 %s\n" % d for d in DOMAINS))

    # Two exit nodes (one per client cluster, as the seed installs them), plain behind nginx.
    up_addrs = ("127.0.0.2", "127.0.0.3")
    ports = [rt.free_port_on("127.0.0.1", a) for a in up_addrs]
    SIZE = 256 * MIB + 11
    servers = []
    for i, dom in enumerate(DOMAINS):
        h.service(up_addrs[i], ports[i], rt.source_handler(40 + i, SIZE), "source-%d" % i)
        servers.append(h.start_server(name="server-%d" % i))
    ingress_port = rt.free_port("127.0.0.1")
    os.makedirs(os.path.join(h.dir, "tmp"))
    blocks = "".join(SERVER_BLOCK.format(port=ingress_port, domain=dom, crt=certs[dom][0],
                                         key=certs[dom][1], upstream=servers[i].control_port)
                     for i, dom in enumerate(DOMAINS))
    conf = h.write("nginx.conf", NGINX_CONF.format(dir=h.dir, servers=blocks))
    ng = h.spawn("nginx", [nginx, "-c", conf, "-p", h.dir])
    if not rt.wait_port("127.0.0.1", ingress_port, timeout=15):
        h.fail("nginx did not start: %s" % open(os.path.join(h.dir, "nginx-error.log")).read())

    clients = []
    for i, dom in enumerate(DOMAINS):
        argv = ["unshare", "-m", "--", "sh", "-c",
                'mount --bind "$0" /etc/hosts && exec "$@"', hosts,
                h.bin, "tcp", "client", "--url=wss://%s:%d/connect" % (dom, ingress_port),
                "--upstream=%s" % up_addrs[i], "--ports=%d" % ports[i], "--auto-tls=false",
                "--ca-file=%s" % ca, "--token-from=%s" % h.token_file,
                "--license-file=/dev/null"]
        c = h.spawn("client-%d" % i, argv)
        if not c.wait_log(r'msg="connected to the server"', timeout=20):
            h.fail("client %d did not connect through nginx" % i)
        clients.append(c)
    for i, srv in enumerate(servers):
        h.check(srv.wait_log(r'msg="client connected".*remote=127\.0\.0\.1', timeout=10),
                "server %d sees its client through the ingress (X-Forwarded-For)" % i)
        h.wait_data_port(srv, ports[i])

    def both(tag):
        res = [None, None]

        def run(i):
            s = rt.connect("127.0.0.1", ports[i], timeout=60)
            n, d = rt.recv_all(s)
            s.close()
            res[i] = (n == SIZE and d == rt.Pattern(40 + i).digest(SIZE))

        import threading
        ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(240)
        h.check(res == [True, True], "%s: 256 MiB through each tunnel, byte-exact" % tag)

    both("through nginx")

    # nginx -s reload: the old worker closes the upgraded connections after
    # worker_shutdown_timeout; both clients reconnect and traffic flows again.
    marks = [c.count(r'msg="connected to the server"') for c in clients]
    rc, out = h.run([nginx, "-c", conf, "-p", h.dir, "-s", "reload"])
    h.check(rc == 0, "nginx -s reload")
    for i, c in enumerate(clients):
        h.check(c.wait_log(r'msg="connected to the server"', timeout=30, count=marks[i] + 1),
                "client %d reconnected after the reload" % i)
    for i, srv in enumerate(servers):
        h.wait_data_port(srv, ports[i])
    time.sleep(1)
    both("after the reload")

    # Idle for 90 s behind nginx (proxy_read_timeout 60 s): the tunnels stay up.
    marks = [c.count(r'msg="connected to the server"') for c in clients]
    time.sleep(90)
    for i, c in enumerate(clients):
        h.check(c.count(r'msg="connected to the server"') == marks[i] and
                c.count(r'disconnected from the server') == marks[i] - 1,
                "client %d stayed connected through 90 s idle behind nginx" % i)
    s = rt.connect("127.0.0.1", ports[0], timeout=30)
    n, _ = rt.recv_all(s, limit=MIB)
    s.close()
    h.check(n == MIB, "traffic flows after the idle period")
    rt.log("PASS (%d checks)" % h.checks)


if __name__ == "__main__":
    main()
