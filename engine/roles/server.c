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
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ebpf/sockmap.h"
#include "engine/certs.h"
#include "engine/log.h"
#include "engine/roles/internal.h"
#include "engine/tls.h"

/* ---- data-plane ports --------------------------------------------------------------- */

/* --sockmap: the data-plane listeners' endpoints (net_listen's NULL is 0.0.0.0). */
static void steer_data_port(struct engine *e, const char *addr, uint16_t port)
{
	struct addrlist al;
	if (role_of(e)->sm && net_resolve(addr ? addr : "0.0.0.0", port, &al) == 0)
		steer_endpoint(e, &al, port, SM_EP_LISTEN);
}

/* Open the data-plane listeners for client port `offer` of tunnel `tunnel` (its index + 1,
 * 0 without --tunnels) at addr:port (addr NULL: every IPv4 address), one per shard,
 * unless they exist. Called with the registry lock held. */
static uint16_t port_open(struct shard *s, struct registry *r, uint16_t tunnel, uint16_t offer,
                          const char *addr, uint16_t port)
{
	struct reg_port *rp = registry_port_find(r, port);
	if (rp) {
		if (rp->tunnel == tunnel && rp->offer == offer)
			return TUN_PORT_OK;
		/* Another tunnel's (or another client port's) binding: never shared. */
		log_error("data-plane port taken by another tunnel's binding", "port=%u", port);
		return TUN_PORT_IN_USE;
	}
	struct engine *e = s->eng;
	/* The listeners share the port among our shards (SO_REUSEPORT), which would also let
	 * them share it with another process that set it, or with our own control port: a
	 * client could take connections meant for those. Only a free port is opened. */
	int busy = net_port_free(addr, port);
	if (busy) {
		char a[80];
		snprintf(a, sizeof(a), "%s:%u", addr ? addr : "0.0.0.0", port);
		log_error("cannot open data-plane port: something listens there already",
		          "addr=%s err=%s", a, log_q(strerror(-busy)));
		return busy == -EADDRINUSE ? TUN_PORT_IN_USE
		       : busy == -EACCES   ? TUN_PORT_DENIED
		                           : TUN_PORT_ERROR;
	}
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
	rp = registry_port_add(r, port);
	if (!rp) {
		for (int i = 0; i < e->nshards; i++)
			close(fds[i]);
		return TUN_PORT_ERROR;
	}
	rp->offer = offer;
	rp->tunnel = tunnel;
	for (int i = 0; i < e->nshards; i++) {
		rp->fds[i] = fds[i];
		if (i == s->id) {
			listen_here_flags(s, fds[i], server_on_data_accept, port, LISTEN_YIELD);
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

/* Open what a client offers on its tunnel: without --tunnels, port itself at --data-addr
 * when --allow-ports lets it; with, the tunnel's binding for it. TUN_PORT_NOT_ALLOWED for a
 * port the policy refuses or the tunnel does not declare. */
static uint16_t port_offer(struct shard *s, struct registry *r, uint32_t tunnel, uint16_t port)
{
	const char *dflt = s->cfg->data_addr && s->cfg->data_addr[0] ? s->cfg->data_addr : NULL;
	if (tunnel == 0)
		return cfg_port_allowed(s->cfg, port) ? port_open(s, r, 0, port, dflt, port)
		                                      : TUN_PORT_NOT_ALLOWED;
	const struct tenant *t = tunnel_by_id(server_of(s->eng), tunnel);
	const struct tenant_port *tp = t ? tenant_port(t, port) : NULL;
	if (!tp)
		return TUN_PORT_NOT_ALLOWED;
	uint16_t st = port_open(s, r, (uint16_t)tunnel, port,
	                        tp->listen_addr[0] ? tp->listen_addr : dflt, tp->listen_port);
	tunnel_note_binding(server_of(s->eng), tunnel, tp->listen_port, st);
	return st;
}

/* ---- data plane -------------------------------------------------------------------- */

static void refuse(struct shard *s, int fd, uint16_t port)
{
	STAT_ADD(s, dataplane_refused, 1);
	log_debug("no client for data-plane connection: refused", "port=%u", port);
	fd_reset_close(fd);
}

bool tunnel_allows_addr(struct server *srv, uint32_t tunnel, const struct sockaddr *sa)
{
	if (!tunnel)
		return true;
	pthread_mutex_lock(&srv->reg->mu);
	const struct tenant *t = tunnel_by_id(srv, tunnel);
	bool ok = !t || !t->n_allow || net_cidr_match(t->allow, t->n_allow, sa);
	pthread_mutex_unlock(&srv->reg->mu);
	return ok;
}

/* Is fd's peer within the tunnel's allowIPs (none: any address)? */
static bool tunnel_allows(struct server *srv, uint32_t tunnel, int fd)
{
	struct sockaddr_storage ra;
	socklen_t rl = sizeof(ra);
	if (getpeername(fd, (struct sockaddr *)&ra, &rl) != 0)
		return false;
	return tunnel_allows_addr(srv, tunnel, (struct sockaddr *)&ra);
}

/* A data-plane listener accepted fd on port: carry it on a client's lane. */
void server_on_data_accept(struct shard *s, uint16_t port, int fd)
{
	if (s->draining) {
		refuse(s, fd, port);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct server *srv = server_of(s->eng);
	bool lb = s->cfg->lb_proxy_protocol && s->cfg->lb_proxy_protocol[0];
	if (srv->n_allow && !lb) { /* behind a PROXY-speaking balancer: checked on its header */
		struct sockaddr_storage ra;
		socklen_t rl = sizeof(ra);
		if (getpeername(fd, (struct sockaddr *)&ra, &rl) != 0 ||
		    !net_cidr_match(srv->allow, srv->n_allow, (struct sockaddr *)&ra)) {
			STAT_ADD(s, dataplane_denied, 1);
			char a[72] = "?";
			addr_format((struct sockaddr *)&ra, a, sizeof(a));
			log_debug("data-plane connection from outside --allow-ips: refused",
			          "port=%u remote=%s", port, a);
			fd_reset_close(fd);
			return;
		}
	}
	struct pick rs;
	if (!registry_pick(srv->reg, port, s->id, &rs)) {
		refuse(s, fd, port);
		return;
	}
	if (rs.tunnel && !lb && !tunnel_allows(srv, rs.tunnel, fd)) {
		STAT_ADD(s, dataplane_denied, 1);
		log_debug("data-plane connection from outside the tunnel's allowIPs: refused",
		          "port=%u", port);
		fd_reset_close(fd);
		return;
	}
	if (rs.shard == s->id) {
		struct conn *tc = conn_get(s, rs.idx, rs.gen);
		if (!tunnel_ready(tc)) {
			refuse(s, fd, port);
			return;
		}
		stream_open_server(s, tc, fd, rs.offer, rs.port_slot);
		return;
	}
	/* The token carries the port; its counters' slot is looked up again there. */
	struct tok t = {.op = OP_XFER, .aux = port, .idx = rs.idx, .gen = rs.gen};
	if (engine_msg(s, rs.shard, t, fd) != 0)
		refuse(s, fd, port);
}

/* OP_XFER: a data-plane fd accepted by another shard for a lane of ours. */
static void on_xfer(struct shard *s, struct conn *none, struct tok t, struct io_uring_cqe *cqe)
{
	(void)none;
	int fd = cqe->res;
	uint16_t port = t.aux, offer = 0;
	int slot = registry_port_info(server_of(s->eng)->reg, port, &offer);
	struct conn *tc = conn_get(s, t.idx, t.gen);
	if (slot < 0 || !tunnel_ready(tc)) {
		refuse(s, fd, port);
		return;
	}
	stream_open_server(s, tc, fd, offer, (uint16_t)slot);
}

static void xfer_undelivered(struct shard *s, uint32_t fd)
{
	(void)s;
	fd_reset_close((int)fd);
}

/* OP_LISTEN: a data-plane listener another shard opened for us all. */
static void on_listen(struct shard *s, struct conn *none, struct tok t,
                      struct io_uring_cqe *cqe)
{
	(void)none;
	listen_here_flags(s, cqe->res, server_on_data_accept, t.aux, LISTEN_YIELD);
}

static void listen_undelivered(struct shard *s, uint32_t fd)
{
	(void)s;
	close((int)fd);
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
int server_lane_shard(struct shard *s, const struct http_request *req)
{
	uint64_t lane, id;
	if (!query_num(req->query, "lane", 10, &lane) ||
	    !query_num(req->query, "session", 16, &id))
		return s->id;
	int base = registry_lane0_shard(server_of(s->eng)->reg, id);
	if (base < 0)
		return s->id; /* unknown session: its HELLO will be refused here */
	return (int)(((uint64_t)base + lane) % (uint64_t)s->eng->nshards);
}

/* Move an upgraded connection to shard `to`: its fd, TLS session, the 101 to send and
 * the frames that came with the request travel in a registry handoff slot; the target
 * shard makes it a tunnel (OP_HANDOFF). Returns false when no slot is free (the
 * connection then stays here). On true, c is closed here without closing the fd. */
static bool handoff(struct shard *s, struct conn *c, int to, int tenant, struct tls *tls,
                    uint8_t *early, size_t early_len, const char *remote, const char *resp,
                    size_t resp_len)
{
	struct registry *r = server_of(s->eng)->reg;
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
		ho->tenant = tenant;
		/* The kernel orders the MSG_RING after these writes; say so to the target (and
		 * to ThreadSanitizer) as well: it reads the slot after an acquire of `ready`.
		 */
		__atomic_store_n(&ho->ready, 1, __ATOMIC_RELEASE);
		struct tok t = {.op = OP_HANDOFF, .idx = (uint32_t)i};
		if (engine_msg(s, to, t, (uint32_t)i) != 0) {
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

/* A handoff that could not be posted: release the slot. */
static void handoff_undelivered(struct shard *s, uint32_t slot)
{
	struct handoff *ho = &server_of(s->eng)->reg->handoffs[slot % REG_HANDOFFS];
	__atomic_load_n(&ho->ready, __ATOMIC_ACQUIRE);
	close(ho->fd);
	tls_free(ho->tls);
	free(ho->early);
	__atomic_store_n(&ho->ready, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&ho->busy, 0, __ATOMIC_RELEASE);
}

static const struct tunnel_cbs server_cbs;

/* Make c (an upgraded control connection) a server tunnel carrying on tls (may be NULL):
 * the 101 is queued first, then the frames that came with the request are read. Takes
 * tls and early. false when out of memory (c is closed). */
static bool server_tunnel(struct shard *s, struct conn *c, int tenant, struct tls *tls,
                          const char *remote, const char *resp, size_t resp_len, uint8_t *early,
                          size_t early_len)
{
	struct srv_lane *sl = calloc(1, sizeof(*sl));
	struct tunnel *t = sl ? tunnel_new(s, c, WS_ROLE_SERVER, &server_cbs, sl) : NULL;
	if (!t) {
		free(sl);
		free(early);
		tls_free(tls);
		conn_close(s, c);
		return false;
	}
	sl->reg_slot = -1;
	sl->tunnel = tenant > 0 ? (uint32_t)tenant : 0;
	xprt_adopt(&t->x, tls); /* TLS carries on under the tunnel, or plain TCP */
	/* Payloads can be spliced only over a transport that carries them unchanged, and
	 * not when steering moved the bytes beside TCP's queue. */
	t->can_splice = t->x.ops->can_splice && !role_of(s->eng)->sm;
	snprintf(t->remote, sizeof(t->remote), "%s", remote);
	c->started_ms = s->now_ms;
	tunnel_send_raw(s, c, resp, resp_len);
	tunnel_start(s, c, early, early_len);
	free(early);
	return true;
}

/* OP_HANDOFF: an upgraded connection another shard accepted for a lane served here. */
static void on_handoff(struct shard *s, struct conn *none, struct tok tk,
                       struct io_uring_cqe *cqe)
{
	(void)none;
	(void)cqe;
	uint32_t slot = tk.idx;
	struct handoff *ho = &server_of(s->eng)->reg->handoffs[slot % REG_HANDOFFS];
	if (!__atomic_load_n(&ho->ready, __ATOMIC_ACQUIRE)) {
		log_error("handoff slot not filled", "slot=%u", slot);
		return;
	}
	__atomic_store_n(&ho->ready, 0, __ATOMIC_RELAXED);
	/* Copied out, so that the slot is free again before the tunnel starts. */
	int fd = ho->fd;
	struct tls *tls = ho->tls;
	uint8_t *early = ho->early;
	size_t early_len = ho->early_len, resp_len = ho->resp_len;
	int tenant = ho->tenant;
	char remote[sizeof(ho->remote)], resp[sizeof(ho->resp)];
	memcpy(remote, ho->remote, sizeof(remote));
	memcpy(resp, ho->resp, resp_len);
	__atomic_store_n(&ho->busy, 0, __ATOMIC_RELEASE);
	struct conn *c = conn_alloc(s, CK_LISTEN, fd); /* a tunnel from server_tunnel() on */
	if (!c) {
		close(fd);
		tls_free(tls);
		free(early);
		return;
	}
	server_tunnel(s, c, tenant, tls, remote, resp, resp_len, early, early_len);
}

void server_on_upgrade(struct shard *s, struct conn *c, int to, int tenant, struct tls *tls,
                       uint8_t *early, size_t early_len, const char *remote, const char *resp,
                       size_t resp_len)
{
	if (to != s->id &&
	    handoff(s, c, to, tenant, tls, early, early_len, remote, resp, resp_len))
		return;
	server_tunnel(s, c, tenant, tls, remote, resp, resp_len, early, early_len);
}

/* ---- the server's tunnels ------------------------------------------------------------ */

static uint64_t new_session_id(void)
{
	uint64_t id = 0;
	while (!id)
		RAND_bytes((uint8_t *)&id, sizeof(id));
	return id;
}

/* The lane joins session rs as lane `lane` (called with the registry's lock held). */
static void lane_register(struct shard *s, struct conn *c, struct registry *r,
                          struct reg_session *rs, uint16_t lane)
{
	struct tunnel *t = conn_tun(c);
	struct srv_lane *sl = t->owner;
	/* A lane that re-joins while its old connection is still known replaces it; its
	 * byte counters carry on (they are the session's). */
	struct reg_lane *l = &rs->lanes[lane];
	l->used = true;
	l->shard = s->id;
	l->idx = c->idx;
	l->gen = c->gen;
	sl->rl = l;
	sl->lane = lane;
	sl->session_id = rs->id;
	sl->conn_idx = c->idx;
	sl->conn_gen = c->gen;
	sl->reg_slot = (int)(rs - r->sess);
	t->ctr = &l->ctr;
}

/* The lane leaves the registry (it is closing, or said GOAWAY). */
static void lane_unregister(struct server *srv, struct tunnel *t)
{
	struct srv_lane *sl = t->owner;
	if (sl->reg_slot < 0)
		return;
	registry_remove(srv->reg, sl->reg_slot, sl->session_id, sl->lane, sl->conn_idx,
	                sl->conn_gen);
	sl->reg_slot = -1;
	sl->rl = NULL;
	t->ctr = NULL;
}

/* A lane joining an existing session (HELLO with lane > 0 and the session's id). */
static void on_join(struct shard *s, struct conn *c, const struct tun_hello *h,
                    struct tun_welcome *w)
{
	struct tunnel *t = conn_tun(c);
	struct registry *r = server_of(s->eng)->reg;
	pthread_mutex_lock(&r->mu);
	struct reg_session *rs = registry_session_find(r, h->session);
	struct srv_lane *sl = t->owner;
	/* A lane joins only a session of the tunnel its own token names. */
	if (rs && rs->tunnel != sl->tunnel)
		rs = NULL;
	if (!rs || h->lane >= REG_MAX_LANES || !(t->caps & TUN_CAP_LANES)) {
		pthread_mutex_unlock(&r->mu);
		log_info_limited("lane refused: no such session", "remote=%s lane=%u",
		                 t->remote, h->lane);
		tunnel_goaway(s, c, TUN_GOAWAY_PROTOCOL, "no such session");
		tunnel_fail(s, c, WS_CLOSE_POLICY, "no such session");
		return;
	}
	lane_register(s, c, r, rs, h->lane);
	snprintf(t->client_id, sizeof(t->client_id), "%s", rs->client_id);
	w->session = rs->id;
	pthread_mutex_unlock(&r->mu);
	log_debug("lane joined", "client_id=%s lane=%u shard=%d", log_q(t->client_id), h->lane,
	          s->id);
}

/* A new session (HELLO of lane 0): open its ports, answer WELCOME. */
static void on_session(struct shard *s, struct conn *c, const struct tun_hello *h,
                       struct tun_welcome *w)
{
	struct tunnel *t = conn_tun(c);
	struct registry *r = server_of(s->eng)->reg;
	snprintf(t->client_id, sizeof(t->client_id), "%.*s", h->client_id.len,
	         (const char *)h->client_id.p);
	char upstream[TUN_MAX_STR + 1];
	snprintf(upstream, sizeof(upstream), "%.*s", h->upstream.len,
	         (const char *)h->upstream.p);
	pthread_mutex_lock(&r->mu);
	int slot = registry_session_slot(r);
	if (slot < 0) {
		pthread_mutex_unlock(&r->mu);
		log_warn("too many clients: rejecting", "remote=%s", t->remote);
		tunnel_goaway(s, c, TUN_GOAWAY_LIMIT, "too many clients");
		tunnel_fail(s, c, WS_CLOSE_POLICY, "too many clients");
		return;
	}
	struct reg_session *rs = &r->sess[slot];
	memset(rs, 0, sizeof(*rs));
	char ports[TUN_MAX_PORTS * 6 + 1] = "";
	size_t pl = 0;
	struct srv_lane *sl = t->owner;
	rs->tunnel = (uint16_t)sl->tunnel;
	/* A copy: a reload may move the names once the lock is released. */
	char tname_buf[TENANT_NAME_MAX + 1] = "";
	const char *tname = server_tunnel_name(server_of(s->eng), sl->tunnel);
	if (tname)
		snprintf(tname_buf, sizeof(tname_buf), "%s", tname);
	tname = tname ? tname_buf : NULL;
	for (uint16_t i = 0; i < h->nports; i++) {
		uint16_t st = port_offer(s, r, sl->tunnel, h->ports[i]);
		if (st == TUN_PORT_NOT_ALLOWED && sl->tunnel)
			log_warn("client offered a port its tunnel does not declare: refused",
			         "tunnel=%s client_id=%s port=%u", log_q(tname ? tname : "-"),
			         log_q(t->client_id), h->ports[i]);
		else if (st == TUN_PORT_NOT_ALLOWED)
			log_warn("client offered a port --allow-ports does not allow: refused",
			         "client_id=%s port=%u hint=%s", log_q(t->client_id),
			         h->ports[i],
			         h->ports[i] < CFG_PRIVILEGED_PORTS
			                 ? log_q("a port below 1024 must be named in "
			                         "--allow-ports")
			                 : "-");
		w->ports[w->nports].port = h->ports[i];
		w->ports[w->nports].status = st;
		w->nports++;
		if (st == TUN_PORT_OK)
			rs->ports[rs->nports++] = h->ports[i];
		pl += (size_t)snprintf(ports + pl, sizeof(ports) - pl, "%s%u", i ? "," : "",
		                       h->ports[i]);
	}
	snprintf(rs->client_id, sizeof(rs->client_id), "%s", t->client_id);
	snprintf(rs->remote, sizeof(rs->remote), "%s", t->remote);
	snprintf(rs->upstream, sizeof(rs->upstream), "%s", upstream);
	rs->since_unix = time(NULL);
	rs->id = new_session_id();
	rs->used = true;
	lane_register(s, c, r, rs, 0);
	w->session = rs->id;
	r->nclients++;
	pthread_mutex_unlock(&r->mu);
	log_info("client connected",
	         "tunnel=%s client_id=%s remote=%s upstream=%s ports=%s lanes=%u",
	         tname ? log_q(tname) : "-", log_q(t->client_id), t->remote, log_q(upstream),
	         ports[0] ? ports : "-", w->lanes);
}

static void on_hello(struct shard *s, struct conn *c, const struct tun_hello *h)
{
	struct tunnel *t = conn_tun(c);
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
	int nlanes = s->eng->nshards < REG_MAX_LANES ? s->eng->nshards : REG_MAX_LANES;
	struct tun_welcome w = {
	        .version = TUN_VERSION,
	        .caps = t->caps,
	        .window = t->my_window,
	        .max_frame = CFG_DEFAULT_MAX_FRAME,
	        .lanes = (uint16_t)(t->caps & TUN_CAP_LANES ? nlanes : 1),
	};
	if (h->lane > 0)
		on_join(s, c, h, &w);
	else
		on_session(s, c, h, &w);
	if (tunnel_closing(c))
		return; /* refused: GOAWAY and Close are queued, nothing may follow */
	uint8_t m[TUN_HEADER_LEN + 32 + 4 * TUN_MAX_PORTS];
	tunnel_send_msg(s, c, m, tun_encode_welcome(m, sizeof(m), &w));
	t->state = TS_READY;
	if (s->draining)
		tunnel_goaway(s, c, TUN_GOAWAY_NORMAL, "server is shutting down");
}

void server_rebind(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	struct srv_lane *sl = t->owner;
	struct registry *r = server_of(s->eng)->reg;
	pthread_mutex_lock(&r->mu);
	struct reg_session *rs = &r->sess[sl->reg_slot];
	if (rs->used && rs->id == sl->session_id) {
		uint16_t n = rs->nports;
		rs->nports = 0;
		for (uint16_t i = 0; i < n; i++)
			if (port_offer(s, r, sl->tunnel, rs->ports[i]) == TUN_PORT_OK)
				rs->ports[rs->nports++] = rs->ports[i];
	}
	const char *name = server_tunnel_name(server_of(s->eng), sl->tunnel);
	char nm[TENANT_NAME_MAX + 1];
	snprintf(nm, sizeof(nm), "%s", name ? name : "-");
	pthread_mutex_unlock(&r->mu);
	log_info("tunnel bindings changed: reopened", "tunnel=%s client_id=%s", log_q(nm),
	         log_q(t->client_id));
}

/* The mux checked the order already (recv.c): HELLO comes first and once, no WELCOME
 * comes from a client, a client OPEN carries an even id that is not in use. */
static void server_on_tunnel_msg(struct shard *s, struct conn *c, const struct tun_msg *m)
{
	struct tunnel *t = conn_tun(c);
	switch (m->type) {
	case TUN_HELLO:
		on_hello(s, c, &m->u.hello);
		return;
	case TUN_GOAWAY:
		/* The client is leaving: no new streams for it. */
		lane_unregister(server_of(s->eng), t);
		return;
	case TUN_OPEN:
		if (!(t->caps & TUN_CAP_CLIENT_FORWARD)) {
			tunnel_send_rst(s, c, m->stream, TUN_RST_REFUSED,
			                "client forwarding is disabled on the server");
			return;
		}
		stream_open_forwarded(s, c, m);
		return;
	default:
		return; /* unknown types are ignored */
	}
}

static void server_on_tunnel_closed(struct shard *s, struct conn *c)
{
	lane_unregister(server_of(s->eng), conn_tun(c));
}

static void server_on_tunnel_release(struct shard *s, struct conn *c)
{
	struct srv_lane *sl = conn_tun(c)->owner;
	if (sl)
		fwd_release(s->eng, sl);
	free(sl);
}

static const struct tunnel_cbs server_cbs = {
        .on_msg = server_on_tunnel_msg,
        .on_closed = server_on_tunnel_closed,
        .on_release = server_on_tunnel_release,
        .on_held_timeout = server_on_held_timeout,
};

/* ---- shard hooks and set-up ------------------------------------------------------------ */

/* Drain: stop accepting (listeners close), GOAWAY to every client. */
static void server_on_drain(struct shard *s)
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

static const struct loop_hooks server_hooks = {
        .drain = server_on_drain,
        .wake = tunnels_on_wake,
        .tick = tunnels_tick,
};

static int server_take_control_fd(struct engine *e, int shard)
{
	struct registry *r = server_of(e)->reg;
	if (shard < 0 || shard >= CFG_MAX_SHARDS)
		return -1;
	return __atomic_exchange_n(&r->ctl_fds[shard], -1, __ATOMIC_ACQ_REL);
}

static struct tls_ctx *server_control_tls(const struct engine *e)
{
	return server_of(e)->tls_server;
}

static int server_connected(const struct engine *e)
{
	struct registry *r = server_of(e)->reg;
	pthread_mutex_lock(&r->mu);
	int n = r->nclients;
	pthread_mutex_unlock(&r->mu);
	return n;
}

static int server_tunnel_for_token(const struct engine *e, const char *tok, size_t len)
{
	const struct server *srv = server_of(e);
	if (srv->tt) /* the operator's token (--token) opens no tunnel */
		return tunnels_find_token((struct server *)srv, tok, len);
	const char *mine = e->cfg->token ? e->cfg->token : "";
	struct http_slice t = {.p = tok, .len = len};
	return len && http_token_equal(t, mine, strlen(mine)) ? ROLE_TUNNEL_ANY
	                                                      : ROLE_TUNNEL_NONE;
}

static const struct role_ops server_ops = {
        .name = "server",
        .tunnel_for_token = server_tunnel_for_token,
        .take_control_fd = server_take_control_fd,
        .control_tls = server_control_tls,
        .connected = server_connected,
};

/* --allow-ips and TLS from the configuration. 0, or the process exit status. */
static int server_config(struct server *srv, const struct cfg *c)
{
	char err[512] = "";
	if (c->n_allow_ips) {
		srv->allow = calloc(c->n_allow_ips, sizeof(*srv->allow));
		if (!srv->allow)
			return 1;
		for (size_t i = 0; i < c->n_allow_ips; i++) {
			if (net_cidr_parse(c->allow_ips[i], &srv->allow[srv->n_allow]) != 0) {
				log_error("bad --allow-ips entry", "value=%s",
				          log_q(c->allow_ips[i]));
				return 2;
			}
			srv->n_allow++;
		}
	}
	if (c->tls_cert && c->tls_cert[0]) {
		srv->tls_server = tls_ctx_server(c->tls_cert, c->tls_key, err, sizeof(err));
	} else if (c->auto_tls) {
		const char *dir = c->auto_tls_path && c->auto_tls_path[0] ? c->auto_tls_path
		                                                          : "/tmp/certs";
		char cert[4096], key[4096];
		snprintf(cert, sizeof(cert), "%s/server.crt", dir);
		snprintf(key, sizeof(key), "%s/server.key", dir);
		if (certs_auto(c, dir, &srv->ca_pem, err, sizeof(err)) == 0) {
			srv->ca_pem_len = strlen(srv->ca_pem);
			srv->tls_server = tls_ctx_server(cert, key, err, sizeof(err));
		}
	}
	if (((c->tls_cert && c->tls_cert[0]) || c->auto_tls) && !srv->tls_server) {
		log_error("cannot set up TLS on the control port", "err=%s", log_q(err));
		return 1;
	}
	return 0;
}

const struct loop_hooks *server_setup(struct engine *e, struct server *srv, int *status)
{
	const struct cfg *c = e->cfg;
	memset(srv, 0, sizeof(*srv));
	srv->c.ops = &server_ops;
	e->role = srv;
	*status = 1;
	srv->reg = calloc(1, sizeof(*srv->reg));
	if (!srv->reg)
		return NULL;
	registry_init(srv->reg);
	for (int i = 0; i < e->nshards; i++) {
		int err = net_listen(c->control_addr, c->control_port, &srv->reg->ctl_fds[i]);
		if (err) {
			log_error("cannot listen on the control port", "addr=%s port=%u err=%s",
			          c->control_addr, c->control_port, log_q(strerror(-err)));
			server_teardown(e);
			return NULL;
		}
	}
	*status = server_config(srv, c);
	if (*status == 0 && c->tunnels_file && c->tunnels_file[0])
		*status = tunnels_start(e, srv);
	if (*status == 0 && steer_start(e) != 0)
		*status = 1;
	if (*status == 0 && names_setup(e) != 0)
		*status = 1; /* --local targets are resolved off the loop */
	if (*status) {
		server_teardown(e);
		return NULL;
	}
	return &server_hooks;
}

void server_teardown(struct engine *e)
{
	struct server *srv = server_of(e);
	names_stop(e);
	steer_stop(e);
	if (srv->reg) {
		for (int i = 0; i < CFG_MAX_SHARDS; i++)
			if (srv->reg->ctl_fds[i] >= 0)
				close(srv->reg->ctl_fds[i]);
		registry_destroy(srv->reg);
		free(srv->reg);
		srv->reg = NULL;
	}
	tls_ctx_free(srv->tls_server);
	srv->tls_server = NULL;
	free(srv->ca_pem);
	srv->ca_pem = NULL;
	free(srv->allow);
	srv->allow = NULL;
	tunnels_stop(srv);
}

void server_init(void)
{
	loop_on_shard(OP_XFER, on_xfer);
	loop_on_undelivered(OP_XFER, xfer_undelivered);
	loop_on_shard(OP_LISTEN, on_listen);
	loop_on_undelivered(OP_LISTEN, listen_undelivered);
	loop_on_shard(OP_HANDOFF, on_handoff);
	loop_on_undelivered(OP_HANDOFF, handoff_undelivered);
	server_streams_init();
}
