/* engine/roles/server.c — the tunnel server (exit node): control port, client registry and
 * data-plane listeners.
 *
 * The registry (clients and the ports they offer) is shared by the shards and guarded by
 * a mutex. It is touched when a client comes or goes and once per accepted data-plane
 * connection (to pick a client round-robin) — never per byte. A data-plane connection
 * accepted on one shard for a client served by another moves there with MSG_RING.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ebpf/sockmap.h"
#include "engine/certs.h"
#include "engine/loop/engine.h"
#include "engine/svc/httpd.h"
#include "engine/log.h"
#include "engine/net.h"
#include "engine/roles/registry.h"
#include "engine/ringlet.h"
#include "engine/roles/server.h"
#include "engine/tls.h"
#include "engine/mux/tunnel.h"
#include "proto/http.h"
#include <openssl/rand.h>

#define WS_SUBPROTOCOL "ringlet.v1"

/* ---- registry --------------------------------------------------------------------- */

static struct reg_port *port_find(struct registry *r, uint16_t port)
{
	for (int i = 0; i < REG_MAX_PORTS; i++)
		if (r->ports[i].used && r->ports[i].port == port)
			return &r->ports[i];
	return NULL;
}

/* --sockmap: the data-plane listeners' endpoints (net_listen's NULL is 0.0.0.0). */
static void steer_data_port(struct engine *e, const char *addr, uint16_t port)
{
	struct addrlist al;
	if (e->sm && net_resolve(addr ? addr : "0.0.0.0", port, &al) == 0)
		engine_steer(e, &al, port, SM_EP_LISTEN);
}

/* Open the data-plane listeners for port (one per shard) unless they exist. Called with
 * the registry lock held. */
static uint16_t port_open(struct shard *s, struct registry *r, uint16_t port)
{
	if (port_find(r, port))
		return TUN_PORT_OK;
	struct reg_port *rp = NULL;
	for (int i = 0; i < REG_MAX_PORTS; i++)
		if (!r->ports[i].used) {
			rp = &r->ports[i];
			break;
		}
	if (!rp)
		return TUN_PORT_ERROR;
	struct engine *e = s->eng;
	const char *addr = s->cfg->data_addr && s->cfg->data_addr[0] ? s->cfg->data_addr : NULL;
	int fds[CFG_MAX_SHARDS];
	for (int i = 0; i < e->nshards; i++) {
		int err = net_listen(addr, port, &fds[i]);
		if (err) {
			char a[80];
			snprintf(a, sizeof(a), "%s:%u", addr ? addr : "0.0.0.0", port);
			log_error("cannot open data-plane port", "addr=%s err=%s", a,
			          log_q(strerror(-err)));
			for (int j = 0; j < i; j++)
				close(fds[j]);
			return err == -EADDRINUSE ? TUN_PORT_IN_USE
			       : err == -EACCES   ? TUN_PORT_DENIED
			                          : TUN_PORT_ERROR;
		}
	}
	rp->used = true;
	rp->port = port;
	rp->rr = 0;
	for (int i = 0; i < e->nshards; i++) {
		rp->fds[i] = fds[i];
		if (i == s->id) {
			listen_here(s, fds[i], LR_DATA, port);
		} else {
			struct tok t = {.op = OP_LISTEN, .aux = port};
			if (engine_msg(s, i, t, fds[i]) != 0)
				close(fds[i]);
		}
	}
	steer_data_port(e, addr, port);
	log_info("data-plane port open", "port=%u addr=%s", port, addr ? addr : "0.0.0.0");
	return TUN_PORT_OK;
}

/* The tunnel is ending (or leaving): lane 0 takes its whole session with it (the client
 * re-opens every lane under a new session); another lane only itself. */
static void registry_remove(struct registry *r, struct tunnel *t)
{
	if (t->reg_slot < 0)
		return;
	pthread_mutex_lock(&r->mu);
	struct reg_session *rs = &r->sess[t->reg_slot];
	/* The session may have ended (lane 0 left) and its slot gone to another client. */
	if (rs->used && rs->id == t->session_id) {
		if (t->lane == 0) {
			r->nclients--;
			rs->used = false;
		}
		struct reg_lane *l = &rs->lanes[t->lane];
		if (l->idx == t->conn_idx && l->gen == t->conn_gen)
			l->used = false;
	}
	t->rl = NULL;
	pthread_mutex_unlock(&r->mu);
	t->reg_slot = -1;
}

struct pick {
	int shard;
	uint32_t idx;
	uint16_t gen;
	uint16_t port_slot;
};

static bool offers(const struct reg_session *rs, uint16_t port)
{
	for (int k = 0; k < rs->nports; k++)
		if (rs->ports[k] == port)
			return true;
	return false;
}

/* Pick the client for a new connection on port — round-robin over the clients offering
 * it — and the lane to carry it: one served by this shard (`here`) when the client has
 * one, so the stream stays on the shard that accepted it; else the client's lanes in
 * turn. Returns false when no client offers the port. */
static bool registry_pick(struct registry *r, uint16_t port, int here, struct pick *out)
{
	bool found = false;
	pthread_mutex_lock(&r->mu);
	struct reg_port *rp = port_find(r, port);
	int n = 0;
	for (int i = 0; rp && i < REG_MAX_SESSIONS; i++)
		n += r->sess[i].used && offers(&r->sess[i], port);
	if (n) {
		int want = (int)(rp->rr++ % (uint32_t)n);
		struct reg_session *rs = NULL;
		for (int i = 0; i < REG_MAX_SESSIONS && !rs; i++)
			if (r->sess[i].used && offers(&r->sess[i], port) && want-- == 0)
				rs = &r->sess[i];
		struct reg_lane *pickl = NULL, *any = NULL;
		for (int k = 0; k < REG_MAX_LANES; k++) {
			struct reg_lane *l =
			        &rs->lanes[(rs->lane_rr + (uint32_t)k) % REG_MAX_LANES];
			if (!l->used)
				continue;
			if (!any)
				any = l;
			if (l->shard == here) {
				pickl = l;
				break;
			}
		}
		if (!pickl)
			pickl = any;
		rs->lane_rr++;
		if (pickl) {
			out->shard = pickl->shard;
			out->idx = pickl->idx;
			out->gen = pickl->gen;
			out->port_slot = (uint16_t)(rp - r->ports);
			found = true;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return found;
}

/* ---- data plane -------------------------------------------------------------------- */

static void refuse(struct shard *s, int fd, uint16_t port)
{
	STAT_ADD(s, dataplane_refused, 1);
	log_debug("no client for data-plane connection: refused", "port=%u", port);
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

void server_on_data_accept(struct shard *s, uint16_t port, int fd)
{
	if (s->draining) {
		refuse(s, fd, port);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct engine *e = s->eng;
	bool lb = s->cfg->lb_proxy_protocol && s->cfg->lb_proxy_protocol[0];
	if (e->n_allow && !lb) { /* behind a PROXY-speaking balancer: checked on its header */
		struct sockaddr_storage ra;
		socklen_t rl = sizeof(ra);
		if (getpeername(fd, (struct sockaddr *)&ra, &rl) != 0 ||
		    !net_cidr_match(e->allow, e->n_allow, (struct sockaddr *)&ra)) {
			STAT_ADD(s, dataplane_denied, 1);
			char a[72] = "?";
			addr_format((struct sockaddr *)&ra, a, sizeof(a));
			log_debug("data-plane connection from outside --allow-ips: refused",
			          "port=%u remote=%s", port, a);
			struct linger lg = {.l_onoff = 1, .l_linger = 0};
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			close(fd);
			return;
		}
	}
	struct pick rs;
	if (!registry_pick(s->eng->reg, port, s->id, &rs)) {
		refuse(s, fd, port);
		return;
	}
	if (rs.shard == s->id) {
		struct conn *tc = conn_get(s, rs.idx, rs.gen);
		if (!tc || tc->kind != CK_TUNNEL || tc->closing ||
		    tc->u.tun->state != TS_READY) {
			refuse(s, fd, port);
			return;
		}
		stream_open_server(s, tc, fd, port, rs.port_slot);
		return;
	}
	/* The token carries the port; its counters' slot is looked up again there. */
	struct tok t = {.op = OP_XFER, .aux = port, .idx = rs.idx, .gen = rs.gen};
	if (engine_msg(s, rs.shard, t, fd) != 0)
		refuse(s, fd, port);
}

/* The registry slot of an open data-plane port (its counters' index), or -1. */
static int port_slot(struct registry *r, uint16_t port)
{
	pthread_mutex_lock(&r->mu);
	struct reg_port *rp = port_find(r, port);
	int slot = rp ? (int)(rp - r->ports) : -1;
	pthread_mutex_unlock(&r->mu);
	return slot;
}

static void on_xfer(struct shard *s, struct tok t, int fd)
{
	uint16_t port = t.aux;
	int slot = port_slot(s->eng->reg, port);
	struct conn *tc = conn_get(s, t.idx, t.gen);
	if (slot < 0 || !tc || tc->kind != CK_TUNNEL || tc->closing ||
	    tc->u.tun->state != TS_READY) {
		refuse(s, fd, port);
		return;
	}
	stream_open_server(s, tc, fd, port, (uint16_t)slot);
}

/* ---- /connect ---------------------------------------------------------------------- */

/* The value of key in a query string ("a=1&b=2"), as an unsigned number in base; false
 * when absent or not a number. */
static bool query_num(struct http_slice q, const char *key, int base, uint64_t *out)
{
	size_t kl = strlen(key);
	for (size_t i = 0; q.p && i + kl + 1 <= q.len;) {
		size_t end = i;
		while (end < q.len && q.p[end] != '&')
			end++;
		if (end - i > kl && memcmp(q.p + i, key, kl) == 0 && q.p[i + kl] == '=') {
			char buf[24];
			size_t n = end - i - kl - 1;
			if (n == 0 || n >= sizeof(buf))
				return false;
			memcpy(buf, q.p + i + kl + 1, n);
			buf[n] = 0;
			char *e;
			*out = strtoull(buf, &e, base);
			return *e == 0;
		}
		i = end + 1;
	}
	return false;
}

/* The shard that should serve a lane. Lane i of a session asks with
 * ?lane=i&session=ID on its upgrade request; it goes to the shard i places after the
 * one serving the session's lane 0, so the lanes spread over the shards whichever shard
 * the kernel handed each connection to. */
static int lane_shard(struct shard *s, const struct http_request *req)
{
	uint64_t lane, id;
	if (!query_num(req->query, "lane", 10, &lane) ||
	    !query_num(req->query, "session", 16, &id))
		return s->id;
	struct registry *r = s->eng->reg;
	int base = -1;
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < REG_MAX_SESSIONS && base < 0; i++)
		if (r->sess[i].used && r->sess[i].id == id && r->sess[i].lanes[0].used)
			base = r->sess[i].lanes[0].shard;
	pthread_mutex_unlock(&r->mu);
	if (base < 0)
		return s->id; /* unknown session: its HELLO will be refused here */
	return (int)(((uint64_t)base + lane) % (uint64_t)s->eng->nshards);
}

/* Move an upgraded connection to shard `to`: its fd, TLS session, the 101 to send and
 * the frames that came with the request travel in a registry handoff slot; the target
 * shard makes it a tunnel (OP_HANDOFF). Returns false when no slot is free (the
 * connection then stays here). On true, c is closed here without closing the fd. */
static bool handoff(struct shard *s, struct conn *c, int to, struct tls *tls, uint8_t *early,
                    size_t early_len, const char *remote, const char *resp, size_t resp_len)
{
	struct registry *r = s->eng->reg;
	for (int i = 0; i < REG_HANDOFFS; i++) {
		int zero = 0;
		struct handoff *ho = &r->handoffs[i];
		if (!__atomic_compare_exchange_n(&ho->busy, &zero, 1, false, __ATOMIC_ACQUIRE,
		                                 __ATOMIC_RELAXED))
			continue;
		ho->fd = c->fd;
		ho->tls = tls;
		ho->early = early;
		ho->early_len = early_len;
		snprintf(ho->remote, sizeof(ho->remote), "%s", remote);
		memcpy(ho->resp, resp, resp_len);
		ho->resp_len = resp_len;
		/* The kernel orders the MSG_RING after these writes; say so to the target (and
		 * to ThreadSanitizer) as well: it reads the slot after an acquire of `ready`.
		 */
		__atomic_store_n(&ho->ready, 1, __ATOMIC_RELEASE);
		struct tok t = {.op = OP_HANDOFF, .idx = (uint32_t)i};
		if (engine_msg_handoff(s, to, t) != 0) {
			__atomic_store_n(&ho->ready, 0, __ATOMIC_RELAXED);
			__atomic_store_n(&ho->busy, 0, __ATOMIC_RELEASE);
			return false;
		}
		c->fd = -1; /* the fd is the target's now */
		conn_close(s, c);
		return true;
	}
	return false;
}

/* The failed or completed end of a handoff: release the slot. */
void server_handoff_failed(struct shard *s, uint32_t slot)
{
	struct handoff *ho = &s->eng->reg->handoffs[slot % REG_HANDOFFS];
	__atomic_load_n(&ho->ready, __ATOMIC_ACQUIRE);
	close(ho->fd);
	tls_free(ho->tls);
	free(ho->early);
	__atomic_store_n(&ho->ready, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&ho->busy, 0, __ATOMIC_RELEASE);
}

static void on_handoff(struct shard *s, uint32_t slot)
{
	struct handoff *ho = &s->eng->reg->handoffs[slot % REG_HANDOFFS];
	if (!__atomic_load_n(&ho->ready, __ATOMIC_ACQUIRE)) {
		log_error("handoff slot not filled", "slot=%u", slot);
		return;
	}
	__atomic_store_n(&ho->ready, 0, __ATOMIC_RELAXED);
	struct conn *c = conn_alloc(s, CK_TUNNEL, ho->fd);
	struct tunnel *t = c ? tunnel_new(s, c, WS_ROLE_SERVER) : NULL;
	if (!t) {
		if (c) {
			c->kind = CK_LISTEN; /* nothing to release but the fd */
			conn_close(s, c);
		} else {
			close(ho->fd);
		}
		tls_free(ho->tls);
		free(ho->early);
		__atomic_store_n(&ho->busy, 0, __ATOMIC_RELEASE);
		return;
	}
	t->tls = ho->tls;
	snprintf(t->remote, sizeof(t->remote), "%s", ho->remote);
	tunnel_send_raw(s, c, ho->resp, ho->resp_len);
	uint8_t *early = ho->early;
	size_t early_len = ho->early_len;
	__atomic_store_n(&ho->busy, 0, __ATOMIC_RELEASE);
	tunnel_start(s, c, early, early_len);
	free(early);
}

void server_on_connect(struct shard *s, struct conn *c, const struct http_request *req)
{
	struct http_conn *h = c->u.http;
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
	httpd_count_request(s, c, 101);
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
	struct tls *tls = h->tls; /* the TLS session carries on under the tunnel */
	h->tls = NULL;
	int target = lane_shard(s, req);
	if (target != s->id && handoff(s, c, target, tls, rest, early, remote, resp, rl))
		return;
	http_conn_release(s, c);
	struct tunnel *t = tunnel_new(s, c, WS_ROLE_SERVER);
	if (!t) {
		free(rest);
		tls_free(tls);
		c->kind = CK_HTTP;
		conn_close(s, c);
		return;
	}
	t->tls = tls;
	snprintf(t->remote, sizeof(t->remote), "%s", remote);
	c->started_ms = s->now_ms;
	tunnel_send_raw(s, c, resp, rl);
	tunnel_start(s, c, rest, early);
	free(rest);
}

/* ---- tunnel hooks ---------------------------------------------------------------- */

static uint64_t new_session_id(void)
{
	uint64_t id = 0;
	while (!id)
		RAND_bytes((uint8_t *)&id, sizeof(id));
	return id;
}

/* A lane joining an existing session (HELLO with lane > 0 and the session's id). */
static void on_join(struct shard *s, struct conn *c, const struct tun_hello *h,
                    struct tun_welcome *w)
{
	struct tunnel *t = c->u.tun;
	struct registry *r = s->eng->reg;
	pthread_mutex_lock(&r->mu);
	struct reg_session *rs = NULL;
	for (int i = 0; i < REG_MAX_SESSIONS && !rs; i++)
		if (r->sess[i].used && r->sess[i].id == h->session)
			rs = &r->sess[i];
	if (!rs || h->lane >= REG_MAX_LANES || !(t->caps & TUN_CAP_LANES)) {
		pthread_mutex_unlock(&r->mu);
		log_info("lane refused: no such session", "remote=%s lane=%u", t->remote,
		         h->lane);
		tunnel_goaway(s, c, TUN_GOAWAY_PROTOCOL, "no such session");
		tunnel_fail(s, c, WS_CLOSE_POLICY, "no such session");
		return;
	}
	struct reg_lane *l = &rs->lanes[h->lane];
	/* A lane that re-joins while its old connection is still known replaces it; its
	 * byte counters carry on (they are the session's). */
	l->used = true;
	l->shard = s->id;
	l->idx = c->idx;
	l->gen = c->gen;
	t->rl = l;
	t->lane = h->lane;
	t->session_id = rs->id;
	t->conn_idx = c->idx;
	t->conn_gen = c->gen;
	t->reg_slot = (int)(rs - r->sess);
	snprintf(t->client_id, sizeof(t->client_id), "%s", rs->client_id);
	w->session = rs->id;
	pthread_mutex_unlock(&r->mu);
	log_debug("lane joined", "client_id=%s lane=%u shard=%d", log_q(t->client_id), h->lane,
	          s->id);
}

static void on_hello(struct shard *s, struct conn *c, const struct tun_hello *h)
{
	struct tunnel *t = c->u.tun;
	struct registry *r = s->eng->reg;
	if (h->version_min > TUN_VERSION || h->version_max < TUN_VERSION_MIN) {
		log_warn("client speaks no common protocol version", "remote=%s min=%u max=%u",
		         t->remote, h->version_min, h->version_max);
		STAT_ADD(s, hs_fail[HS_VERSION], 1);
		tunnel_goaway(s, c, TUN_GOAWAY_VERSION, "no common protocol version");
		tunnel_fail(s, c, WS_CLOSE_PROTOCOL, "no common protocol version");
		return;
	}
	t->peer_window = h->window ? h->window : CFG_DEFAULT_WINDOW;
	t->peer_max_frame = h->max_frame;
	t->caps = h->caps & (TUN_CAP_ZERO_MASK | TUN_CAP_WINDOW | TUN_CAP_LANES);
	if (s->cfg->client_forwarding)
		t->caps |= h->caps & TUN_CAP_CLIENT_FORWARD;
	t->since_unix = time(NULL);
	int nlanes = s->eng->nshards < REG_MAX_LANES ? s->eng->nshards : REG_MAX_LANES;
	struct tun_welcome w = {
	        .version = TUN_VERSION,
	        .caps = t->caps,
	        .window = t->my_window,
	        .max_frame = CFG_DEFAULT_MAX_FRAME,
	        .lanes = (uint16_t)(t->caps & TUN_CAP_LANES ? nlanes : 1),
	};
	uint8_t m[TUN_HEADER_LEN + 32 + 4 * TUN_MAX_PORTS];
	if (h->lane > 0) {
		on_join(s, c, h, &w);
		if (c->closing)
			return;
		tunnel_send_msg(s, c, m, tun_encode_welcome(m, sizeof(m), &w));
		t->state = TS_READY;
		if (s->draining)
			tunnel_goaway(s, c, TUN_GOAWAY_NORMAL, "server is shutting down");
		return;
	}
	snprintf(t->client_id, sizeof(t->client_id), "%.*s", h->client_id.len,
	         (const char *)h->client_id.p);
	snprintf(t->upstream, sizeof(t->upstream), "%.*s", h->upstream.len,
	         (const char *)h->upstream.p);
	pthread_mutex_lock(&r->mu);
	/* Slots are taken in turn, not first-free: lanes of an ended session may still count
	 * bytes into their old slot for a moment, so it is not handed out again at once. */
	int slot = -1;
	for (int k = 0; k < REG_MAX_SESSIONS; k++) {
		int i = (r->next_slot + k) % REG_MAX_SESSIONS;
		if (!r->sess[i].used) {
			slot = i;
			r->next_slot = (i + 1) % REG_MAX_SESSIONS;
			break;
		}
	}
	if (slot < 0) {
		pthread_mutex_unlock(&r->mu);
		log_warn("too many clients: rejecting", "remote=%s", t->remote);
		tunnel_goaway(s, c, TUN_GOAWAY_LIMIT, "too many clients");
		tunnel_fail(s, c, WS_CLOSE_POLICY, "too many clients");
		return;
	}
	struct reg_session *rs = &r->sess[slot];
	memset(rs, 0, sizeof(*rs));
	for (uint16_t i = 0; i < h->nports; i++) {
		uint16_t st = port_open(s, r, h->ports[i]);
		w.ports[w.nports].port = h->ports[i];
		w.ports[w.nports].status = st;
		w.nports++;
		if (st == TUN_PORT_OK)
			rs->ports[rs->nports++] = h->ports[i];
		t->ports[t->nports++] = h->ports[i];
	}
	snprintf(rs->client_id, sizeof(rs->client_id), "%s", t->client_id);
	snprintf(rs->remote, sizeof(rs->remote), "%s", t->remote);
	snprintf(rs->upstream, sizeof(rs->upstream), "%s", t->upstream);
	rs->since_unix = t->since_unix;
	rs->id = new_session_id();
	rs->used = true;
	struct reg_lane *l = &rs->lanes[0];
	l->used = true;
	l->shard = s->id;
	l->idx = c->idx;
	l->gen = c->gen;
	t->rl = l;
	t->lane = 0;
	t->session_id = rs->id;
	t->conn_idx = c->idx;
	t->conn_gen = c->gen;
	w.session = rs->id;
	r->nclients++;
	t->reg_slot = slot;
	pthread_mutex_unlock(&r->mu);

	size_t len = tun_encode_welcome(m, sizeof(m), &w);
	tunnel_send_msg(s, c, m, len);
	t->state = TS_READY;
	char ports[TUN_MAX_PORTS * 6 + 1] = "";
	size_t pl = 0;
	for (uint16_t i = 0; i < t->nports; i++)
		pl += (size_t)snprintf(ports + pl, sizeof(ports) - pl, "%s%u", i ? "," : "",
		                       t->ports[i]);
	log_info("client connected", "client_id=%s remote=%s upstream=%s ports=%s lanes=%u",
	         log_q(t->client_id), t->remote, log_q(t->upstream), ports[0] ? ports : "-",
	         w.lanes);
	if (s->draining)
		tunnel_goaway(s, c, TUN_GOAWAY_NORMAL, "server is shutting down");
}

void server_on_tunnel_msg(struct shard *s, struct conn *c, const struct tun_msg *m)
{
	struct tunnel *t = c->u.tun;
	switch (m->type) {
	case TUN_HELLO:
		if (t->state != TS_HELLO) {
			tunnel_fail(s, c, WS_CLOSE_PROTOCOL, "HELLO twice");
			return;
		}
		on_hello(s, c, &m->u.hello);
		return;
	case TUN_GOAWAY:
		/* The client is leaving: no new streams for it. */
		registry_remove(s->eng->reg, t);
		return;
	case TUN_OPEN:
		if (t->state != TS_READY) {
			tunnel_fail(s, c, WS_CLOSE_PROTOCOL, "OPEN before HELLO");
			return;
		}
		if (!(t->caps & TUN_CAP_CLIENT_FORWARD)) {
			uint8_t out[TUN_HEADER_LEN + 3 + 64];
			size_t len =
			        tun_encode_rst(out, sizeof(out), m->stream, TUN_RST_REFUSED,
			                       "client forwarding is disabled on the server");
			tunnel_send_msg(s, c, out, len);
			return;
		}
		stream_open_forwarded(s, c, m);
		return;
	case TUN_WELCOME:
		tunnel_fail(s, c, WS_CLOSE_PROTOCOL, "unexpected message from client");
		return;
	default:
		if (t->state != TS_READY && m->type != TUN_PING && m->type != TUN_PONG)
			tunnel_fail(s, c, WS_CLOSE_PROTOCOL, "message before HELLO");
		return; /* unknown types are ignored */
	}
}

void server_on_tunnel_closed(struct shard *s, struct conn *c)
{
	struct tunnel *t = c->u.tun;
	registry_remove(s->eng->reg, t);
}

/* ---- shard hooks ------------------------------------------------------------------ */

void server_on_cqe(struct shard *s, struct tok t, struct io_uring_cqe *cqe)
{
	switch (t.op) {
	case OP_XFER:
		on_xfer(s, t, cqe->res);
		return;
	case OP_LISTEN:
		listen_here(s, cqe->res, LR_DATA, t.aux);
		return;
	case OP_HANDOFF:
		on_handoff(s, t.idx);
		return;
	default:
		break;
	}
}

void server_shard_start(struct shard *s)
{
	struct registry *r = s->eng->reg;
	int fd = __atomic_exchange_n(&r->ctl_fds[s->id], -1, __ATOMIC_ACQ_REL);
	if (fd >= 0)
		listen_here(s, fd, LR_CONTROL, s->cfg->control_port);
}

void server_on_tick(struct shard *s)
{
	(void)s;
}

void server_on_drain(struct shard *s)
{
	for (uint32_t i = 0; i < s->hiwater; i++) {
		struct conn *c = &s->conns[i];
		if (c->closing)
			continue;
		if (c->kind == CK_LISTEN)
			conn_close(s, c);
		else if (c->kind == CK_TUNNEL)
			tunnel_goaway(s, c, TUN_GOAWAY_NORMAL, "server is shutting down");
	}
}

bool server_shard_idle(struct shard *s)
{
	for (uint32_t i = 0; i < s->hiwater; i++) {
		uint8_t k = s->conns[i].kind;
		if (k == CK_STREAM || k == CK_TUNNEL)
			return false;
	}
	return true;
}

int ringlet_server_run(const struct cfg *c)
{
	struct engine e = {.cfg = c};
	struct registry *r = calloc(1, sizeof(*r));
	if (!r)
		return 1;
	pthread_mutex_init(&r->mu, NULL);
	e.reg = r;
	e.nshards = cfg_shard_count(c);
	for (int i = 0; i < e.nshards; i++) {
		int err = net_listen(c->control_addr, c->control_port, &r->ctl_fds[i]);
		if (err) {
			log_error("cannot listen on the control port", "addr=%s port=%u err=%s",
			          c->control_addr, c->control_port, log_q(strerror(-err)));
			for (int j = 0; j < i; j++)
				close(r->ctl_fds[j]);
			free(r);
			return 1;
		}
	}
	char err[512];
	if (c->n_allow_ips) {
		e.allow = calloc(c->n_allow_ips, sizeof(*e.allow));
		for (size_t i = 0; e.allow && i < c->n_allow_ips; i++) {
			if (net_cidr_parse(c->allow_ips[i], &e.allow[e.n_allow]) == 0) {
				e.n_allow++;
			} else {
				log_error("bad --allow-ips entry", "value=%s",
				          log_q(c->allow_ips[i]));
				return 2;
			}
		}
	}
	if (c->tls_cert && c->tls_cert[0]) {
		e.tls_server = tls_ctx_server(c->tls_cert, c->tls_key, err, sizeof(err));
	} else if (c->auto_tls) {
		const char *dir = c->auto_tls_path && c->auto_tls_path[0] ? c->auto_tls_path
		                                                          : "/tmp/certs";
		char cert[4096], key[4096];
		snprintf(cert, sizeof(cert), "%s/server.crt", dir);
		snprintf(key, sizeof(key), "%s/server.key", dir);
		if (certs_auto(c, dir, &e.ca_pem, err, sizeof(err)) == 0) {
			e.ca_pem_len = strlen(e.ca_pem);
			e.tls_server = tls_ctx_server(cert, key, err, sizeof(err));
		}
	}
	if ((c->tls_cert && c->tls_cert[0]) || c->auto_tls) {
		if (!e.tls_server) {
			log_error("cannot set up TLS on the control port", "err=%s",
			          log_q(err));
			for (int i = 0; i < e.nshards; i++)
				close(r->ctl_fds[i]);
			free(e.ca_pem);
			free(r);
			return 1;
		}
	}
	int ret = engine_prepare(&e);
	if (ret == 0) {
		log_info("server listening",
		         "control=%s:%u tls=%s data_addr=%s shards=%d version=%s",
		         c->control_addr, c->control_port,
		         !e.tls_server                   ? "off"
		         : c->tls_cert && c->tls_cert[0] ? "cert"
		                                         : "auto",
		         c->data_addr && c->data_addr[0] ? c->data_addr : "0.0.0.0", e.nshards,
		         ringlet_version);
		ret = engine_run(&e);
	}
	tls_ctx_free(e.tls_server);
	free(e.ca_pem);
	free(e.allow);
	for (int i = 0; i < REG_MAX_PORTS; i++)
		r->ports[i].used = false;
	pthread_mutex_destroy(&r->mu);
	free(r);
	return ret == 0 ? 0 : 1;
}
