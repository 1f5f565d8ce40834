/* engine/svc/httpd.c — control-port HTTP: read one request, route it, answer, close. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/svc/authlimit.h"
#include "engine/svc/httpd.h"
#include "engine/svc/metrics.h"
#include "engine/tls.h"
#include "engine/xprt/xprt.h"

const char *const httpd_path_names[RP_MAX] = {"other",   "/connect", "/healthz",
                                              "/status", "/metrics", "/.well-known/ca.crt"};

/* The service's per-shard state (s->svc). */
struct svc_shard {
	struct pending pend;      /* control connections reading a request or in a handshake */
	uint64_t evicted;         /* evictions not yet said in a warning */
	uint64_t evict_logged_ms; /* when the last warning was */
};
static inline struct svc_shard *SVC(struct shard *s)
{
	return (struct svc_shard *)s->svc;
}

/* The routes of this process (svc_init; read-only once the shards run). */
static const struct route *routes;
static size_t nroutes;

/* Free the request's state (the kind's finalize, and before a /connect becomes a
 * tunnel). */
void http_conn_release(struct shard *s, struct conn *c)
{
	struct http_conn *h = conn_http(c);
	if (h) {
		free(h->resp);
		free(h->cbuf);
		xprt_release(&h->x);
		pend_remove(&SVC(s)->pend, &h->pend);
		free(h);
		c->u.ctx = NULL;
	}
}

static void count_request(struct shard *s, uint8_t path, int code);

void httpd_count(struct shard *s, struct conn *c, int code)
{
	count_request(s, conn_http(c)->path, code);
}

static void count_request(struct shard *s, uint8_t path, int code)
{
	struct req_stat *r = s->stats.req;
	for (int i = 0; i < STATS_REQ_SLOTS; i++) {
		if (r[i].count && r[i].code == code && r[i].path == path) {
			STAT_ADD(s, req[i].count, 1);
			return;
		}
		if (!STAT_GET(r[i].count)) {
			r[i].code = (uint16_t)code;
			r[i].path = path;
			__atomic_store_n(&r[i].count, 1, __ATOMIC_RELEASE);
			return;
		}
	}
	/* Table full (48 distinct path/code pairs): the request goes uncounted. */
}

static void http_arm_recv(struct shard *s, struct conn *c)
{
	struct http_conn *h = conn_http(c);
	struct io_uring_sqe *sqe = shard_sqe(s, c, OP_HTTP_RECV, 0);
	/* A transport that transforms the bytes reads into cbuf, the plain one straight into
	 * the request buffer. */
	if (h->cbuf)
		io_uring_prep_recv(sqe, c->fd, h->cbuf, HTTP_BUF, 0);
	else
		io_uring_prep_recv(sqe, c->fd, h->buf + h->len, HTTP_BUF - h->len, 0);
}

/* Put on the wire what the transport makes of iov[0..n) (n 0: its own bytes, handshake
 * flights). final: it is the response, close once sent (aux 0); else aux 1. */
static void http_flush(struct shard *s, struct conn *c, bool final, struct iovec *iov, int n)
{
	struct http_conn *h = conn_http(c);
	if (h->sending)
		return;
	struct iovec *wire;
	int nwire = 0;
	if (h->x.ops->flush(&h->x, iov, n, &wire, &nwire) < 0) {
		conn_close(s, c);
		return;
	}
	if (nwire == 0)
		return;
	h->sending = true;
	struct io_uring_sqe *sqe = shard_sqe(s, c, OP_HTTP_SEND, final ? 0 : 1);
	io_uring_prep_send(sqe, c->fd, wire[0].iov_base, wire[0].iov_len,
	                   MSG_NOSIGNAL | MSG_WAITALL);
}

void httpd_respond(struct shard *s, struct conn *c, int status, const char *ctype,
                   const char *extra, const char *body, size_t body_len)
{
	struct http_conn *h = conn_http(c);
	pend_remove(&SVC(s)->pend, &h->pend); /* being answered: no longer evictable */
	count_request(s, h->path, status);
	size_t cap = body_len + 1024 + (extra ? strlen(extra) : 0);
	h->resp = malloc(cap);
	if (!h->resp) {
		conn_close(s, c);
		return;
	}
	h->resp_len =
	        http_build_response(h->resp, cap, status, ctype, extra, body, body_len, false);
	h->iov.iov_base = h->resp;
	h->iov.iov_len = h->resp_len;
	http_flush(s, c, true, &h->iov, 1);
}

void httpd_text(struct shard *s, struct conn *c, int status, const char *text)
{
	httpd_respond(s, c, status, "text/plain; charset=utf-8", NULL, text, strlen(text));
}

bool httpd_authorized(struct shard *s, const struct http_request *req)
{
	const char *tok = s->cfg->token ? s->cfg->token : "";
	return req->bearer.len && http_token_equal(req->bearer, tok, strlen(tok));
}

static bool path_is(const struct http_request *req, const char *p)
{
	return req->path.len == strlen(p) && memcmp(req->path.p, p, req->path.len) == 0;
}

void httpd_unauthorized(struct shard *s, struct conn *c, const struct http_request *req)
{
	struct http_conn *h = conn_http(c);
	log_warn(h->path == RP_CONNECT ? "unauthorized tunnel connection rejected"
	                               : "unauthorized request rejected",
	         "remote=%s path=%s why=%s", h->remote, httpd_path_names[h->path],
	         req->authorization.len ? "wrong-token" : "no-token");
	if (h->path == RP_CONNECT)
		STAT_ADD(s, hs_fail[HS_UNAUTHORIZED], 1);
	STAT_ADD(s, auth_failures, 1);
	const struct cfg *cf = s->cfg;
	uint32_t tok = authlimit_token(req->bearer.p, req->bearer.len);
	if (authlimit_failed(h->src, tok, s->now_ms, cf->auth_fail_max,
	                     (unsigned)cf->auth_fail_ms))
		log_warn("too many failed authentications: refusing the address",
		         "remote=%s failures=%u refused_ms=%d", h->remote, cf->auth_fail_max,
		         cf->auth_fail_ms);
	httpd_respond(s, c, 401, "text/plain; charset=utf-8",
	              "WWW-Authenticate: Bearer realm=\"ringlet\"\r\n", "unauthorized\n", 13);
}

bool httpd_auth_refused(struct shard *s, struct conn *c)
{
	struct http_conn *h = conn_http(c);
	uint32_t wait = authlimit_refused(h->src, s->now_ms, s->cfg->auth_fail_max);
	if (!wait)
		return false;
	STAT_ADD(s, auth_refused, 1);
	log_debug_limited("too many failed authentications: request refused",
	                  "remote=%s path=%s", h->remote, httpd_path_names[h->path]);
	char extra[48];
	snprintf(extra, sizeof(extra), "Retry-After: %u\r\n", wait);
	httpd_respond(s, c, 429, "text/plain; charset=utf-8", extra,
	              "too many failed authentications\n", 32);
	return true;
}

void httpd_serve_generated(struct shard *s, struct conn *c, const char *ctype,
                           size_t (*render)(struct engine *, char **))
{
	char *body = NULL;
	size_t len = render(s->eng, &body);
	if (!body) {
		httpd_text(s, c, 500, "out of memory\n");
		return;
	}
	httpd_respond(s, c, 200, ctype, NULL, body, len);
	free(body);
}

/* A complete request: find its route, check the method and the token, serve it. */
static void route(struct shard *s, struct conn *c, const struct http_request *req)
{
	struct http_conn *h = conn_http(c);
	size_t fwd = 0; /* the first X-Forwarded-For entry's length */
	while (fwd < req->forwarded_for.len && req->forwarded_for.p[fwd] != ',')
		fwd++;
	h->src = authlimit_key(h->remote, req->forwarded_for.p, fwd);
	if (req->forwarded_for.len) {
		/* Behind an ingress: the first X-Forwarded-For entry is the client. */
		size_t n = fwd < sizeof(h->remote) - 1 ? fwd : sizeof(h->remote) - 1;
		memcpy(h->remote, req->forwarded_for.p, n);
		h->remote[n] = 0;
	}
	const struct route *r = NULL;
	for (size_t i = 0; i < nroutes && !r; i++)
		if (path_is(req, httpd_path_names[routes[i].id]))
			r = &routes[i];
	h->path = r ? r->id : RP_OTHER;
	if (!r) {
		httpd_text(s, c, 404, "not found\n");
		return;
	}
	bool get = req->method.len == 3 && memcmp(req->method.p, "GET", 3) == 0;
	if (!get) {
		httpd_respond(s, c, 405, "text/plain; charset=utf-8", "Allow: GET\r\n",
		              "method not allowed\n", 19);
		return;
	}
	if (r->auth && httpd_auth_refused(s, c))
		return;
	if (r->auth && !httpd_authorized(s, req)) {
		httpd_unauthorized(s, c, req);
		return;
	}
	r->serve(s, c, req);
}

static void parse(struct shard *s, struct conn *c);

/* Plaintext from the transport: append it to the request. */
static bool http_on_plain(void *ctx, const uint8_t *p, size_t n)
{
	struct conn *c = ((void **)ctx)[1];
	struct http_conn *h = conn_http(c);
	if ((const char *)p == h->buf + h->len) { /* read in place (plain) */
		h->len += n;
		return true;
	}
	if (n > HTTP_BUF - h->len) {
		httpd_text(((void **)ctx)[0], c, 431, "request header fields too large\n");
		return false;
	}
	memcpy(h->buf + h->len, p, n);
	h->len += n;
	return true;
}

static const struct xprt_up http_up = {.on_plain = http_on_plain};

/* n bytes read: through the transport into the request buffer. Returns false when the
 * connection is done with (closed, answering, or a handshake still going). */
static bool http_input(struct shard *s, struct conn *c, size_t n)
{
	struct http_conn *h = conn_http(c);
	void *ctx[2] = {s, c};
	const uint8_t *p = h->cbuf ? h->cbuf : (const uint8_t *)h->buf + h->len;
	int r = h->x.ops->recv(&h->x, s, p, n, &http_up, ctx);
	if (r == XPRT_STOP)
		return false;
	if (r < 0) {
		if (h->x.hs_failed) {
			STAT_ADD(s, hs_fail[HS_TLS], 1);
			log_warn("TLS handshake failed", "remote=%s why=%s", h->remote,
			         log_q(xprt_error(&h->x)));
			http_flush(s, c, true, NULL, 0); /* the alert, if any, then close */
			if (!h->sending)
				conn_close(s, c);
			return false;
		}
		conn_close(s, c);
		return false;
	}
	http_flush(s, c, false, NULL, 0); /* handshake flights */
	if (!h->x.ops->ready(&h->x)) {
		http_arm_recv(s, c);
		return false;
	}
	return true;
}

static void on_http_recv(struct shard *s, struct conn *c, int res)
{
	struct http_conn *h = conn_http(c);
	if (c->closing)
		return;
	if (res <= 0) {
		conn_close(s, c);
		return;
	}
	if (!http_input(s, c, (size_t)res))
		return;
	if (h->sending) {
		/* A handshake flight is still being sent: answering must wait for it. */
		h->parse_after_send = true;
		return;
	}
	parse(s, c);
}

static void parse(struct shard *s, struct conn *c)
{
	struct http_conn *h = conn_http(c);
	struct http_request req;
	enum http_status st = http_parse_request(h->buf, h->len, &http_default_limits, &req);
	if (st == HTTP_NEED_MORE) {
		if (h->len == HTTP_BUF) {
			httpd_text(s, c, 431, "request header fields too large\n");
			return;
		}
		http_arm_recv(s, c);
		return;
	}
	if (st == HTTP_ERROR) {
		log_warn("malformed HTTP request", "remote=%s status=%d why=%s", h->remote,
		         req.error_status, log_q(req.error_reason ? req.error_reason : "?"));
		STAT_ADD(s, hs_fail[HS_BAD_REQUEST], 1);
		char body[160];
		snprintf(body, sizeof(body), "%s\n",
		         req.error_reason ? req.error_reason : http_reason(req.error_status));
		httpd_text(s, c, req.error_status ? req.error_status : 400, body);
		return;
	}
	route(s, c, &req);
}

#define HTTP_FD_MARGIN 8        /* descriptors below the limit: a control accept evicts */
#define HTTP_EVICT_LOG_MS 10000 /* at most one warning about evictions this often */

/* Say that pending connections are being evicted: a warning at most every
 * HTTP_EVICT_LOG_MS per shard (an attack would otherwise write a line per connection),
 * with how many since the last one; the rest at debug level. */
static void note_eviction(struct shard *s, const char *remote, uint32_t held)
{
	struct svc_shard *v = SVC(s);
	v->evicted++;
	if (v->evict_logged_ms && s->now_ms - v->evict_logged_ms < HTTP_EVICT_LOG_MS) {
		log_debug("pending control connection evicted", "remote=%s held=%u", remote,
		          held);
		return;
	}
	log_warn("control port: pending connections evicted to make room (a source over its "
	         "share, or the slots or descriptors used up)",
	         "shard=%d evicted=%llu last_remote=%s its_pending=%u", s->id,
	         (unsigned long long)v->evicted, remote, held);
	v->evicted = 0;
	v->evict_logged_ms = s->now_ms;
}

/* Make room for a control connection from src accepted as fd: close (reset) the pending
 * connection the table names, if any (pending.h says which). */
static void make_room(struct shard *s, const struct pend_key *src, int fd)
{
	struct pending *p = &SVC(s)->pend;
	struct pend_node *n = pend_victim(p, src, loop_fd_near_limit(s, fd, HTTP_FD_MARGIN));
	if (!n)
		return;
	struct http_conn *vh =
	        (struct http_conn *)((char *)n - offsetof(struct http_conn, pend));
	uint32_t held = p->src[n->src].n;
	pend_remove(p, n);
	STAT_ADD(s, control_evicted, 1);
	note_eviction(s, vh->remote, held);
	vh->conn->rst = true;
	conn_close(s, vh->conn);
}

/* A control listener accepted fd. Every connection gets in: when its source holds its
 * share, or the shard's pending slots (or the descriptors) are used up, an older pending
 * one makes room. Each has until the handshake timeout to complete its request. */
static void on_ctl_accept(struct shard *s, uint16_t aux, int fd)
{
	(void)aux;
	if (s->draining) {
		close(fd);
		return;
	}
	struct sockaddr_storage ra;
	socklen_t rl = sizeof(ra);
	if (getpeername(fd, (struct sockaddr *)&ra, &rl) != 0)
		ra.ss_family = AF_UNSPEC;
	struct pend_key src;
	pend_key_from(&src, (struct sockaddr *)&ra);
	make_room(s, &src, fd);
	struct conn *c = conn_alloc(s, CK_HTTP, fd);
	struct http_conn *h = c ? malloc(sizeof(*h)) : NULL;
	if (!h) {
		if (c)
			conn_close(s, c);
		else
			close(fd);
		return;
	}
	h->len = 0;
	h->resp = NULL;
	h->resp_len = 0;
	h->path = RP_OTHER;
	h->sending = h->parse_after_send = false;
	xprt_init_plain(&h->x);
	h->cbuf = NULL;
	h->conn = c;
	h->pend.linked = false;
	if (ra.ss_family != AF_UNSPEC)
		addr_format((struct sockaddr *)&ra, h->remote, sizeof(h->remote));
	else
		snprintf(h->remote, sizeof(h->remote), "unknown");
	c->u.ctx = h;
	pend_add(&SVC(s)->pend, &h->pend, &src); /* make_room made room */
	struct tls_ctx *tctx = role_of(s->eng)->ops->control_tls(s->eng);
	if (tctx) {
		h->cbuf = malloc(HTTP_BUF);
		if (xprt_init_tls(&h->x, tctx, NULL) || !h->cbuf) {
			conn_close(s, c);
			return;
		}
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	http_arm_recv(s, c);
}

/* ---- registration with the loop -------------------------------------------------------- */

static void op_http_recv(struct shard *s, struct conn *c, struct tok t,
                         struct io_uring_cqe *cqe)
{
	(void)t;
	on_http_recv(s, c, cqe->res);
}

static void op_http_send(struct shard *s, struct conn *c, struct tok t,
                         struct io_uring_cqe *cqe)
{
	struct http_conn *h = conn_http(c);
	h->sending = false;
	if (t.aux == 0 || cqe->res < 0 || c->closing) {
		/* One request per connection: the response is sent (or failed), close. */
		conn_close(s, c);
		return;
	}
	h->x.ops->sent(&h->x, (size_t)cqe->res);
	http_flush(s, c, false, NULL, 0);
	if (h->parse_after_send && !h->sending) {
		h->parse_after_send = false;
		parse(s, c);
	}
}

/* Close a control connection that has not completed a request (and TLS handshake)
 * within the handshake timeout. */
static void http_tick(struct shard *s, struct conn *c)
{
	if (s->now_ms - c->started_ms > (uint64_t)s->cfg->handshake_ms) {
		STAT_ADD(s, hs_fail[HS_TIMEOUT], 1);
		log_debug_limited("control connection timed out before a complete request",
		                  "remote=%s", conn_http(c)->remote);
		conn_close(s, c);
	}
}

/* The shard takes its control listener: the server one per shard, the client's
 * --metrics-addr on shard 0. */
static int svc_shard_start(struct shard *s)
{
	struct svc_shard *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->svc = v;
	int fd = role_of(s->eng)->ops->take_control_fd(s->eng, s->id);
	if (fd >= 0)
		listen_here(s, fd, on_ctl_accept, 0);
	return 0;
}

/* Shard 0 writes the summary lines of the log's rate limit (log.h) whose interval has
 * ended, so they come even when their message is not logged again. */
static void svc_shard_tick(struct shard *s)
{
	if (s->id == 0)
		log_rate_flush(false);
}

static void svc_shard_stop(struct shard *s)
{
	free(s->svc);
	s->svc = NULL;
}

static const struct kind_ops http_kind = {
        .finalize = http_conn_release,
        .tick = http_tick,
};
static const struct loop_hooks svc_hooks = {
        .start = svc_shard_start,
        .stop = svc_shard_stop,
        .tick = svc_shard_tick,
};

const struct loop_hooks *svc_init(enum cfg_mode mode)
{
	loop_on(OP_HTTP_RECV, op_http_recv);
	loop_on(OP_HTTP_SEND, op_http_send);
	loop_kind(CK_HTTP, &http_kind);
	routes = svc_routes(mode, &nroutes);
	authlimit_init();
	return &svc_hooks;
}
