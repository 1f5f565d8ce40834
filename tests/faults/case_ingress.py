#!/usr/bin/env python3
"""An nginx ingress in front of the server's control port (configured as ingress-nginx
configures a WebSocket Ingress: HTTP/1.1, Upgrade/Connection headers, 60 s read timeout;
plain HTTP here, TLS is tests/integration/test_ingress.py's), reloaded and then restarted
during transfers:

- `nginx -s reload`: the old worker keeps the upgraded lane until worker_shutdown_timeout
  (2 s here), then closes it; the client reconnects through the new worker and carries a
  byte-exact transfer within RELOAD_BOUND s of losing the lane;
- nginx stopped (SIGTERM) and started again: the client reconnects with backoff (ceiling
  4 s, PROTOCOL.md §7.3) within RESTART_BOUND s of nginx listening again.

Streams cut by either are an exact prefix; each fault runs twice, and neither end's
descriptors or memory grow from the first to the second."""
import os
import shutil
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib as fl

rt = fl.rt
RELOAD_BOUND = 3.0  # lane lost -> first reconnect (250 ms backoff) and a byte-exact probe
RESTART_BOUND = 6.0  # nginx back -> the backoff's 4 s ceiling and a byte-exact probe

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
worker_shutdown_timeout 2s;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {dir}/tmp; proxy_temp_path {dir}/tmp;
  fastcgi_temp_path {dir}/tmp; uwsgi_temp_path {dir}/tmp; scgi_temp_path {dir}/tmp;
  map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://127.0.0.1:{upstream};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_connect_timeout 5s;
      proxy_send_timeout 60s;
      proxy_read_timeout 60s;
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"""


def body(c):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.access(nginx, os.X_OK):
        fl.skip("nginx is not installed (make deps installs it)")
    t = fl.Tunnel(c, start_client=False)
    port = rt.free_port("127.0.0.1")
    os.makedirs(os.path.join(c.dir, "tmp"))
    conf = c.write("nginx.conf", NGINX_CONF.format(dir=c.dir, port=port, upstream=t.ctl))
    state = {"ng": None, "n": 0}

    def start_nginx():
        state["n"] += 1
        state["ng"] = c.spawn("nginx-%d" % state["n"], [nginx, "-c", conf, "-p", c.dir])
        if not rt.wait_port("127.0.0.1", port, timeout=15):
            c.fail("nginx did not start: %s" % open(os.path.join(c.dir, "nginx-error.log")).read())

    start_nginx()
    t.url = "ws://127.0.0.1:%d/connect" % port
    t.start_client()
    t.warm_up()

    def fault(kind):
        tr = [t.transfer() for _ in range(2)]
        for x in tr:
            c.check(x.started.wait(30), "a transfer is under way (%d bytes)" % x.n)
        mark = t.client.mark()
        if kind == "reload":
            rc, out = c.run([nginx, "-c", conf, "-p", c.dir, "-s", "reload"])
            c.check(rc == 0, "nginx -s reload (%s)" % out.strip()[-200:])
            c.check(t.client.wait_log(r'disconnected from the server', 15, after=mark),
                    "the old worker closes the lane after worker_shutdown_timeout")
            t0 = time.monotonic()
            bound = RELOAD_BOUND
        else:
            state["ng"].signal(signal.SIGTERM)
            c.check(state["ng"].wait_exit(10) is not None, "nginx stopped")
            time.sleep(1)  # down for a moment: the client's attempts fail and back off
            start_nginx()
            t0 = time.monotonic()
            bound = RESTART_BOUND
        c.recovery("nginx-%s" % kind, bound, t.probe(), t0)
        c.check(t.client.wait_log(r'msg="connected to the server"', 1, after=mark),
                "the client reconnected through nginx")
        fl.check_transfers(c, "nginx %s" % kind, tr)

    for kind in ("reload", "restart"):
        before = None
        for rnd in (1, 2):
            fault(kind)
            fl.check_transfers(c, "after recovery", [t.transfer(64 * fl.MIB, rate=1 << 40)],
                               must_complete=True)
            if before is None:
                before = c.usage([t.server, t.client])
        c.no_growth("nginx-%s" % kind, before)


fl.main("ingress", body)
