#!/usr/bin/env python3
"""A sample upstream for `make demo`: a small HTTP server that answers like a Prometheus
server. /metrics and /federate return Prometheus text-format series (node-exporter-,
kube-state-metrics- and kube-eagle-style, with app labels); ?series=N sets how many.

Usage: demo_upstream.py ADDR PORT
"""
import http.server
import socketserver
import sys
import urllib.parse


_cache = {}


def series(n):
    if n in _cache:
        return _cache[n]
    apps = ("node-exporter", "kube-state-metrics", "kube-eagle")
    lines = []
    for i in range(n):
        app = apps[i % 3]
        if app == "node-exporter":
            name = "node_cpu_seconds_total"
            labels = 'cpu="%d",mode="idle",instance="10.0.%d.%d:9100"' % (i % 64, i // 250 % 250, i % 250)
        elif app == "kube-state-metrics":
            name = "kube_pod_container_status_restarts_total"
            labels = 'namespace="ns-%d",pod="web-%d",container="app"' % (i % 40, i)
        else:
            name = "eagle_pod_container_resource_usage_memory_bytes"
            labels = 'namespace="ns-%d",pod="api-%d",container="api",phase="Running"' % (i % 40, i)
        lines.append('%s{app="%s",job="kubernetes-pods",%s} %d.5 1700000000000\n'
                     % (name, app, labels, i))
    body = "".join(lines).encode()
    if len(_cache) < 8:
        _cache[n] = body
    return body


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(url.query)
        if url.path not in ("/metrics", "/federate"):
            self.send_error(404)
            return
        body = series(int(q.get("series", ["1000"])[0]))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    Server((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
