/* engine/svc/httpd.h — the HTTP endpoints of a control port: the server's (8123: /connect,
 * /healthz, /status, /metrics) and the client's optional --metrics-addr (/healthz,
 * /metrics). One request per connection (responses carry Connection: close), except
 * /connect, which the server turns into a tunnel. */
#ifndef RINGLET_ENGINE_SVC_HTTPD_H
#define RINGLET_ENGINE_SVC_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "engine/roles/role.h"
#include "engine/svc/pending.h"
#include "engine/xprt/xprt.h"
#include "proto/http.h"

/* The service's connection kind and operations (numbered after the layers below). */
enum svc_kind {
	CK_HTTP = CK_MUX_MAX, /* a control-port request being read or answered */
	CK_SVC_MAX,
};
enum svc_op {
	OP_HTTP_RECV = OP_ROLE_MAX, /* control-port request bytes */
	OP_HTTP_SEND,               /* control-port response */
	OP_SVC_MAX,
};

#define HTTP_BUF 16384

/* How many control connections per shard may still be reading a request or be in a TLS
 * handshake, and the share one source may hold: engine/svc/pending.h. */

struct http_conn {
	char buf[HTTP_BUF]; /* the request (plaintext) */
	size_t len;
	char *resp; /* what is being sent: a response, or TLS records */
	size_t resp_len;
	uint8_t path; /* for tcp_controlplane_requests_total */
	bool sending;
	bool parse_after_send;
	char remote[72];
	uint64_t src;          /* the source, for failed authentications (authlimit.h) */
	struct xprt x;         /* plain, or TLS (the server terminates TLS itself) */
	uint8_t *cbuf;         /* received bytes to decrypt (TLS), NULL for plain */
	struct iovec iov;      /* the response, as the transport's flush takes it */
	struct conn *conn;     /* the connection this is the state of */
	struct pend_node pend; /* linked while pending (until it is answered or upgraded) */
};

static inline struct http_conn *conn_http(const struct conn *c)
{
	return (struct http_conn *)c->u.ctx;
}

/* A route: requests for `path` go to `serve` (method and auth checked before, as the
 * flags say). The table a process serves is chosen by its role (svc_init). */
enum req_path {
	RP_OTHER,
	RP_CONNECT,
	RP_HEALTHZ,
	RP_STATUS,
	RP_METRICS,
	RP_CA,
	RP_MAX,
};
/* The paths' names, as the requests metric labels them ("other" for any other path). */
extern const char *const httpd_path_names[RP_MAX];

struct route {
	uint8_t id; /* enum req_path */
	bool auth;  /* needs the bearer token */
	void (*serve)(struct shard *s, struct conn *c, const struct http_request *req);
};

/* Register the service's operations and kind with the loop, pick the routes for the
 * configured role, and return its shard hooks (they take the control listeners). Once,
 * before the shards start. */
const struct loop_hooks *svc_init(enum cfg_mode mode);

/* The routes a role serves (engine/svc/routes.c). */
const struct route *svc_routes(enum cfg_mode mode, size_t *n);

/* Does the request carry the configured bearer token (constant-time compare)? */
bool httpd_authorized(struct shard *s, const struct http_request *req);

/* Answer 401 (and log it, counted as a handshake failure for /connect); count the failure
 * against the request's source (authlimit.h). */
void httpd_unauthorized(struct shard *s, struct conn *c, const struct http_request *req);

/* Is the request's source refused for failed authentications? Then answer 429 (with
 * Retry-After) and return true; the token must not be checked. */
bool httpd_auth_refused(struct shard *s, struct conn *c);

/* Count a response sent outside httpd_respond (the 101 of an upgrade). */
void httpd_count(struct shard *s, struct conn *c, int code);

/* Free the request's state; c stays open (a /connect becomes a tunnel on it). */
void http_conn_release(struct shard *s, struct conn *c);

/* Answer 200 with the body render() makes (500 when out of memory). */
void httpd_serve_generated(struct shard *s, struct conn *c, const char *ctype,
                           size_t (*render)(struct engine *, char **));

/* Send a response and close; a plain-text one. */
void httpd_respond(struct shard *s, struct conn *c, int status, const char *ctype,
                   const char *extra, const char *body, size_t body_len);
void httpd_text(struct shard *s, struct conn *c, int status, const char *text);

#endif
