/* engine/svc/routes.c — what the control port serves: the server's routes (/connect,
 * /healthz, /status, /metrics, /.well-known/ca.crt) and the client's --metrics-addr
 * (/healthz, /metrics). /connect does the HTTP half of an upgrade here and hands the
 * connection to the server role. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "engine/svc/httpd.h"
#include "engine/svc/metrics.h"

static void serve_healthz(struct shard *s, struct conn *c, const struct http_request *req)
{
	(void)req;
	httpd_text(s, c, s->draining ? 503 : 200, s->draining ? "draining\n" : "ok\n");
}

static void serve_status(struct shard *s, struct conn *c, const struct http_request *req)
{
	(void)req;
	httpd_serve_generated(s, c, "application/json", status_render);
}

static void serve_metrics(struct shard *s, struct conn *c, const struct http_request *req)
{
	(void)req;
	httpd_serve_generated(s, c, "text/plain; version=0.0.4; charset=utf-8", metrics_render);
}

static void serve_ca(struct shard *s, struct conn *c, const struct http_request *req)
{
	(void)req;
	struct server *srv = server_of(s->eng);
	if (!srv->ca_pem) {
		httpd_text(s, c, 404, "this server does not use auto-TLS: no CA to serve\n");
		return;
	}
	httpd_respond(s, c, 200, "application/x-pem-file", NULL, srv->ca_pem, srv->ca_pem_len);
}

/* /connect: check the upgrade, answer what is wrong with it, else hand the connection
 * (with its TLS session and the bytes that came after the request) to the server. */
static void serve_connect(struct shard *s, struct conn *c, const struct http_request *req)
{
	struct http_conn *h = conn_http(c);
	if (httpd_auth_refused(s, c))
		return;
	/* The token names the tunnel (the server's one token without --tunnels). */
	int tenant =
	        role_of(s->eng)->ops->tunnel_for_token(s->eng, req->bearer.p, req->bearer.len);
	if (tenant == ROLE_TUNNEL_NONE) {
		httpd_unauthorized(s, c, req);
		return;
	}
	int status = 400;
	const char *problem = http_upgrade_problem(req, &status);
	if (problem) {
		log_warn("bad upgrade request", "remote=%s why=%s", h->remote, log_q(problem));
		STAT_ADD(s, hs_fail[HS_BAD_REQUEST], 1);
		char body[160];
		snprintf(body, sizeof(body), "%s\n", problem);
		httpd_respond(s, c, status, "text/plain; charset=utf-8",
		              status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL, body,
		              strlen(body));
		return;
	}
	if (s->draining) {
		httpd_text(s, c, 503, "server is shutting down\n");
		return;
	}
	const char *proto =
	        http_has_token(req->ws_protocol, WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : NULL;
	char resp[512];
	size_t rl = http_build_101(resp, sizeof(resp), req->ws_key, proto);
	httpd_count(s, c, 101);
	size_t early = h->len - req->header_len;
	uint8_t *rest = NULL;
	if (early) {
		rest = malloc(early);
		if (!rest) {
			conn_close(s, c);
			return;
		}
		memcpy(rest, h->buf + req->header_len, early);
	}
	char remote[72];
	snprintf(remote, sizeof(remote), "%s", h->remote);
	int shard = server_lane_shard(s, req); /* before the request's buffer goes */
	/* the TLS session, if any, carries on under the tunnel */
	struct tls *tls = xprt_detach(&h->x);
	http_conn_release(s, c);
	server_on_upgrade(s, c, shard, tenant, tls, rest, early, remote, resp, rl);
}

static const struct route server_routes[] = {
        {.id = RP_CONNECT, .auth = false, .serve = serve_connect}, /* its own check */
        {.id = RP_HEALTHZ, .auth = false, .serve = serve_healthz},
        {.id = RP_STATUS, .auth = true, .serve = serve_status},
        {.id = RP_METRICS, .auth = true, .serve = serve_metrics},
        {.id = RP_CA, .auth = false, .serve = serve_ca},
};
static const struct route client_routes[] = {
        {.id = RP_HEALTHZ, .auth = false, .serve = serve_healthz},
        {.id = RP_METRICS, .auth = true, .serve = serve_metrics},
};

const struct route *svc_routes(enum cfg_mode mode, size_t *n)
{
	if (mode == CFG_SERVER) {
		*n = sizeof(server_routes) / sizeof(server_routes[0]);
		return server_routes;
	}
	*n = sizeof(client_routes) / sizeof(client_routes[0]);
	return client_routes;
}
