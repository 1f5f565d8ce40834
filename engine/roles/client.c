/* engine/roles/client.c — the tunnel client: lanes that connect to the server, upgrade to a
 * WebSocket, say HELLO, and dial the upstream for each stream the server opens.
 *
 * A lane reconnects forever with capped, jittered exponential backoff (250 ms doubling
 * to 4 s; each wait is drawn uniformly from [d/2, d]). The server's host and the upstream
 * are resolved off the loop (engine/resolve.h, names.c): a lane connects with the server's
 * last answer and waits while its first resolution runs; a stream dials the upstream's last
 * answer, waits while its first resolution runs, and is refused (and the name tried again)
 * when there is none.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ebpf/sockmap.h"
#include "engine/certs.h"
#include "engine/log.h"
#include "engine/roles/internal.h"
#include "engine/tls.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 4000
#define RETRY_AFTER_MAX_S 300 /* a server's Retry-After is honoured up to this long */

static const struct tunnel_cbs client_cbs;

static struct lane *lane_of(struct shard *s, struct tunnel *t)
{
	(void)s;
	return ((struct cli_conn *)t->owner)->lane;
}

static struct cli_conn *cc_of(struct tunnel *t)
{
	return t->owner;
}

/* Log a failed connection attempt with its reason: one line per attempt (the first
 * problem it met; more go to debug), at error level when the reason differs from the
 * previous attempt's, at warn level when it repeats. No rate limit of its own: the
 * reconnect back-off bounds it (a failing lane's waits double from [125, 250] ms to
 * [2, 4] s), so a server that stays down costs one line every 2 to 4 s per lane. */
static void lane_problem(struct lane *l, const char *msg, const char *detail)
{
	if (l->attempt_said) {
		log_debug(msg, "lane=%d detail=%s", l->id, log_q(detail));
		return;
	}
	l->attempt_said = true;
	char key[160];
	snprintf(key, sizeof(key), "%s: %s", msg, detail);
	l->failures++;
	bool again = strcmp(key, l->last_error) == 0;
	snprintf(l->last_error, sizeof(l->last_error), "%s", key);
	log_kv(again ? LOG_WARN : LOG_ERROR, msg, "lane=%d detail=%s attempt=%u", l->id,
	       log_q(detail), l->failures);
}

/* Why a lane's connection ended before WELCOME, from how far it got. */
static const char *closed_reason(struct shard *s, struct conn *c)
{
	bool late = s->now_ms - c->started_ms > (uint64_t)s->cfg->handshake_ms;
	switch (conn_tun(c)->state) {
	case TS_CONNECTING:
		return late ? "timed out" : "closed before the connection was made";
	case TS_TLS:
		return late ? "no TLS handshake within the handshake timeout"
		            : "closed by the server during the TLS handshake";
	case TS_UPGRADING:
		return late ? "no upgrade response within the handshake timeout"
		            : "closed by the server before the upgrade response";
	case TS_HELLO:
		return late ? "no WELCOME within the handshake timeout"
		            : "closed by the server before WELCOME";
	default:
		return "closed";
	}
}

static void lane_schedule(struct shard *s, struct lane *l)
{
	if (l->ready_ms && s->now_ms - l->ready_ms >= 10000)
		l->backoff_ms = BACKOFF_MIN_MS;
	uint32_t d = l->backoff_ms ? l->backoff_ms : BACKOFF_MIN_MS;
	uint8_t r[4];
	shard_random4(s, r);
	uint32_t rnd = (uint32_t)r[0] << 24 | (uint32_t)r[1] << 16 | (uint32_t)r[2] << 8 | r[3];
	uint32_t wait = d / 2 + rnd % (d / 2 + 1);
	if (l->hold_ms > wait)
		wait = l->hold_ms; /* the server asked for it (Retry-After) */
	l->hold_ms = 0;
	l->next_try_ms = s->now_ms + wait;
	l->backoff_ms = d * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d * 2;
	l->ready_ms = 0;
	log_debug("reconnecting", "lane=%d in_ms=%u", l->id, wait);
}

/* auto-TLS (wss:// without --ca-file): fetch the server's CA once and trust only it from
 * then on (trust on first use; see docs/DESIGN.md). */
static bool lane_tls_ready(struct shard *s, struct lane *l)
{
	const struct cfg *cfg = s->cfg;
	struct engine *e = s->eng;
	if (!cfg->url_tls || __atomic_load_n(&client_of(e)->tls_client, __ATOMIC_ACQUIRE))
		return true;
	char err[256], *pem = NULL;
	if (certs_fetch_ca(cfg->url_host, cfg->url_port, cfg->dial_ms, &pem, err,
	                   sizeof(err))) {
		lane_problem(l, "auto-TLS: cannot fetch the server's CA", err);
		return false;
	}
	struct tls_ctx *ctx = tls_ctx_client(pem, NULL, err, sizeof(err));
	free(pem);
	if (!ctx) {
		lane_problem(l, "auto-TLS: the server's CA is not usable", err);
		return false;
	}
	/* Lanes on other shards may fetch at the same time: the first context published
	 * stays (every lane then trusts the same CA), the others are dropped. */
	struct tls_ctx *none = NULL;
	if (!__atomic_compare_exchange_n(&client_of(e)->tls_client, &none, ctx, false,
	                                 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
		tls_ctx_free(ctx);
		return true;
	}
	log_info("auto-TLS: trusting the CA fetched from the server (trust on first use)",
	         "url=%s", log_q(cfg->url));
	return true;
}

/* Bring the lane's copy of the upstream's answer up to date (--sockmap: its addresses are
 * hop endpoints with every port). */
static void lane_sync_upstream(struct shard *s, struct lane *l, struct resolve_view *v)
{
	const struct cfg *cfg = s->cfg;
	if (!names_sync(s, &l->upstream, v))
		return;
	for (size_t i = 0; i < cfg->nports && l->upstream.al.n; i++)
		steer_endpoint(s->eng, &l->upstream.al, cfg->ports[i], SM_EP_DIAL);
}

static void lane_connect(struct shard *s, struct lane *l)
{
	const struct cfg *cfg = s->cfg;
	struct resolve_view v;
	names_sync(s, &l->server, &v);
	if (!l->server.al.n && v.busy)
		return; /* its first answer wakes this shard (OP_NAMES), or the tick tries again
		         */
	if (l->attempts++)
		STAT_ADD(s, reconnects, 1);
	l->attempt_said = false;
	if (!lane_tls_ready(s, l)) {
		lane_schedule(s, l);
		return;
	}
	if (!l->server.al.n) {
		lane_problem(l, "cannot resolve the server", gai_strerror(v.err));
		resolver_kick(role_of(s->eng)->res, l->server.id);
		lane_schedule(s, l);
		return;
	}
	lane_sync_upstream(s, l, &v);
	struct addrlist *srv = &l->server.al;
	int fd = socket(srv->addr[0].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		lane_problem(l, "cannot create a socket", strerror(errno));
		lane_schedule(s, l);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	struct conn *c = conn_alloc(s, CK_LISTEN, fd); /* a tunnel from tunnel_new() on */
	struct cli_conn *cc = c ? calloc(1, sizeof(*cc)) : NULL;
	struct tunnel *t = cc ? tunnel_new(s, c, WS_ROLE_CLIENT, &client_cbs, cc) : NULL;
	if (!t) {
		free(cc);
		if (c)
			conn_close(s, c);
		else
			close(fd);
		lane_schedule(s, l);
		return;
	}
	cc->lane = l;
	t->state = TS_CONNECTING;
	snprintf(t->client_id, sizeof(t->client_id), "%s",
	         cfg->client_id ? cfg->client_id : "");
	addr_format((struct sockaddr *)&srv->addr[0], t->remote, sizeof(t->remote));
	l->up = true;
	l->idx = c->idx;
	l->gen = c->gen;
	struct io_uring_sqe *sqe = shard_sqe(s, c, OP_TUN_CONNECT, 0);
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&srv->addr[0], srv->len[0]);
	sqe->flags |= IOSQE_IO_LINK;
	sqe = shard_sqe(s, c, OP_LINK_TIMEOUT, 0);
	io_uring_prep_link_timeout(sqe, &s->handshake_ts, 0);
}

static void send_upgrade(struct shard *s, struct conn *c)
{
	const struct cfg *cfg = s->cfg;
	struct tunnel *t = conn_tun(c);
	struct cli_conn *cc = cc_of(t);
	int lane_id = cc->lane->id;
	cc->head = malloc(HEAD_CAP);
	if (!cc->head) {
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "out of memory");
		return;
	}
	cc->head_cap = HEAD_CAP;
	cc->head_len = 0;
	char host[300];
	bool v6 = strchr(cfg->url_host, ':') != NULL;
	bool dflt = cfg->url_port == (cfg->url_tls ? 443 : 80);
	if (dflt)
		snprintf(host, sizeof(host), v6 ? "[%s]" : "%s", cfg->url_host);
	else
		snprintf(host, sizeof(host), v6 ? "[%s]:%u" : "%s:%u", cfg->url_host,
		         cfg->url_port);
	uint8_t nonce[16];
	RAND_bytes(nonce, sizeof(nonce));
	/* Lanes after the first say which they are, so the server can serve each on its own
	 * shard (?lane=i; path routing in ingresses ignores the query). */
	char path[600];
	if (lane_id > 0)
		snprintf(path, sizeof(path), "%s%slane=%d&session=%016llx", cfg->url_path,
		         strchr(cfg->url_path, '?') ? "&" : "?", lane_id,
		         (unsigned long long)__atomic_load_n(&client_of(s->eng)->session,
		                                             __ATOMIC_ACQUIRE));
	else
		snprintf(path, sizeof(path), "%s", cfg->url_path);
	size_t n = http_build_upgrade_request(cc->head, cc->head_cap, host, path, cfg->token,
	                                      WS_SUBPROTOCOL, nonce, cc->ws_key);
	if (!n) {
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "cannot build the upgrade request");
		return;
	}
	/* The request goes out through the tunnel's queue (and TLS, for wss://); the head
	 * buffer then collects the response. */
	if (tunnel_send_raw(s, c, cc->head, n)) {
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "out of memory");
		return;
	}
	t->state = TS_UPGRADING;
	tunnel_arm_recv(s, c);
}

static void client_on_tls_ready(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	log_debug("TLS established", "url=%s version=%s resumed=%d", log_q(s->cfg->url),
	          tls_version_name(t->x.tls), tls_resumed(t->x.tls));
	send_upgrade(s, c);
}

static void client_on_tls_failed(struct shard *s, struct conn *c, const char *why)
{
	struct lane *l = lane_of(s, conn_tun(c));
	if (l)
		lane_problem(l, "TLS handshake with the server failed", why);
}

/* The capabilities this client offers in HELLO (a WELCOME grants a subset of them). */
static uint32_t client_caps(struct shard *s)
{
	return (s->cfg->zero_mask ? TUN_CAP_ZERO_MASK : 0) | TUN_CAP_WINDOW |
	       (client_of(s->eng)->nfwd ? TUN_CAP_CLIENT_FORWARD : 0) |
	       (client_of(s->eng)->nlanes > 1 ? TUN_CAP_LANES : 0);
}

static void send_hello(struct shard *s, struct conn *c)
{
	const struct cfg *cfg = s->cfg;
	struct tunnel *t = conn_tun(c);
	int lane_id = lane_of(s, t)->id;
	struct tun_hello h = {
	        .version_min = TUN_VERSION_MIN,
	        .version_max = TUN_VERSION,
	        .caps = client_caps(s),
	        .window = t->my_window,
	        .max_frame = CFG_DEFAULT_MAX_FRAME,
	        .lane = (uint16_t)lane_id,
	        .session = lane_id > 0 ? __atomic_load_n(&client_of(s->eng)->session,
	                                                 __ATOMIC_ACQUIRE)
	                               : 0,
	        .client_id = tun_str_from(cfg->client_id ? cfg->client_id : ""),
	        .upstream = tun_str_from(cfg->upstream ? cfg->upstream : "localhost"),
	};
	/* Only the primary lane offers the ports; the others join its session. */
	for (size_t i = 0; lane_id == 0 && i < cfg->nports && i < TUN_MAX_PORTS; i++)
		h.ports[h.nports++] = cfg->ports[i];
	uint8_t m[TUN_HEADER_LEN + 32 + 2 * TUN_MAX_STR + 2 * TUN_MAX_PORTS];
	size_t len = tun_encode_hello(m, sizeof(m), &h);
	tunnel_send_msg(s, c, m, len);
}

static void client_on_head_bytes(struct shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	struct tunnel *t = conn_tun(c);
	struct lane *l = lane_of(s, t);
	struct cli_conn *cc = cc_of(t);
	if (c->closing)
		return;
	if (n > cc->head_cap - cc->head_len) {
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "upgrade response too large");
		return;
	}
	memcpy(cc->head + cc->head_len, p, n);
	cc->head_len += (uint32_t)n;
	struct http_response resp;
	enum http_status st =
	        http_parse_response(cc->head, cc->head_len, &http_default_limits, &resp);
	if (st == HTTP_NEED_MORE) {
		if (cc->head_len == cc->head_cap)
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "upgrade response too large");
		return;
	}
	if (st == HTTP_ERROR) {
		if (l)
			lane_problem(l, "malformed upgrade response from the server",
			             resp.error_reason ? resp.error_reason : "?");
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "upgrade failed");
		return;
	}
	if (resp.status == 401 || resp.status == 403) {
		if (l)
			lane_problem(l,
			             "server rejected the token: check --token/--token-file "
			             "against the server's",
			             resp.status == 401 ? "401 Unauthorized" : "403 Forbidden");
		STAT_ADD(s, hs_fail[HS_UNAUTHORIZED], 1);
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "unauthorized");
		return;
	}
	const char *problem = http_upgrade_response_problem(&resp, cc->ws_key);
	if (problem) {
		char detail[160];
		uint32_t secs = 0;
		bool hold = (resp.status == 429 || resp.status == 503) &&
		            http_retry_after(&resp, RETRY_AFTER_MAX_S, &secs);
		int k = snprintf(detail, sizeof(detail), "%s (HTTP %d)", problem, resp.status);
		if (hold && k > 0 && (size_t)k < sizeof(detail))
			snprintf(detail + k, sizeof(detail) - (size_t)k,
			         "; the server asks to retry in %u s", secs);
		if (hold && l)
			l->hold_ms = secs * 1000;
		if (l)
			lane_problem(l, "the server did not accept the WebSocket upgrade",
			             detail);
		STAT_ADD(s, hs_fail[HS_UPGRADE], 1);
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "upgrade failed");
		return;
	}
	size_t early = cc->head_len - resp.header_len;
	char *head = cc->head;
	cc->head = NULL;
	c->started_ms = s->now_ms; /* the HELLO/WELCOME exchange has its own deadline */
	tunnel_start(s, c, (const uint8_t *)head + resp.header_len, early);
	free(head);
	if (!c->closing)
		send_hello(s, c);
}

static void on_welcome(struct shard *s, struct conn *c, const struct tun_welcome *w)
{
	struct tunnel *t = conn_tun(c);
	struct lane *l = lane_of(s, t);
	if (w->version < TUN_VERSION_MIN || w->version > TUN_VERSION) {
		tunnel_protocol_error(s, c,
		                      "WELCOME with a version this client does not speak");
		return;
	}
	t->state = TS_READY;
	/* Only what was offered counts: a bit granted beyond the offer is ignored (§3.3). */
	t->caps = w->caps & client_caps(s);
	t->zero_mask = t->caps & TUN_CAP_ZERO_MASK;
	t->peer_window = w->window ? w->window : CFG_DEFAULT_WINDOW;
	t->peer_max_frame = w->max_frame;
	char ports[TUN_MAX_PORTS * 6 + 1] = "";
	size_t pl = 0;
	for (uint16_t i = 0; i < w->nports; i++) {
		if (w->ports[i].status == TUN_PORT_OK)
			pl += (size_t)snprintf(ports + pl, sizeof(ports) - pl, "%s%u",
			                       pl ? "," : "", w->ports[i].port);
		else
			log_error(w->ports[i].status == TUN_PORT_NOT_ALLOWED
			                  ? "the server refused a port: its port policy does "
			                    "not allow it (the server's --allow-ports, or this "
			                    "client's tunnel in its --tunnels file)"
			                  : "the server could not open a port",
			          "port=%u reason=%s", w->ports[i].port,
			          w->ports[i].status == TUN_PORT_IN_USE   ? "in-use"
			          : w->ports[i].status == TUN_PORT_DENIED ? "permission-denied"
			          : w->ports[i].status == TUN_PORT_NOT_ALLOWED ? "not-allowed"
			                                                       : "error");
	}
	struct engine *e = s->eng;
	if (l->id > 0) {
		log_debug("lane connected", "lane=%d", l->id);
	} else {
		/* The primary lane: open the others the server suggests (or --lanes), each on
		 * its own shard; their shards start them on their next tick. */
		int want = s->cfg->lanes > 0 ? s->cfg->lanes
		                             : (t->caps & TUN_CAP_LANES ? w->lanes : 1);
		if (!(t->caps & TUN_CAP_LANES))
			want = 1;
		if (want > client_of(e)->nlanes)
			want = client_of(e)->nlanes;
		__atomic_store_n(&client_of(e)->session, w->session, __ATOMIC_RELEASE);
		for (int i = 1; i < client_of(e)->nlanes; i++) {
			__atomic_store_n(&client_of(e)->lanes[i].wanted, i < want,
			                 __ATOMIC_RELEASE);
			if (i < want && client_of(e)->lanes[i].shard != s->id)
				shard_wake(&e->shards[client_of(e)->lanes[i].shard]);
		}
		log_info("connected to the server",
		         "url=%s client_id=%s ports=%s upstream=%s lanes=%d mask=%s",
		         log_q(s->cfg->url), log_q(t->client_id), ports[0] ? ports : "-",
		         log_q(s->cfg->upstream), want, t->zero_mask ? "zero" : "random");
	}
	__atomic_fetch_add(&client_of(s->eng)->connected, 1, __ATOMIC_RELAXED);
	if (l) {
		l->ready_ms = s->now_ms;
		l->last_error[0] = 0;
		l->failures = 0;
	}
	if (s->draining)
		tunnel_goaway(s, c, TUN_GOAWAY_NORMAL, "client is shutting down");
}

/* A stream the server opened: dial the upstream's last answer; while its first resolution
 * runs, the stream waits for it (names_park); with no answer and none coming, it is refused
 * at once and the name tried again soon. */
static void client_open_stream(struct shard *s, struct conn *c, const struct tun_msg *m)
{
	struct lane *l = lane_of(s, conn_tun(c));
	struct resolve_view v;
	lane_sync_upstream(s, l, &v);
	if (!l->upstream.al.n && !v.busy) {
		resolver_kick(role_of(s->eng)->res, l->upstream.id);
		log_debug("stream refused: the upstream does not resolve", "stream=%u err=%s",
		          m->stream, log_q(gai_strerror(v.err)));
		tunnel_send_rst(s, c, m->stream, TUN_RST_UNREACHABLE,
		                "the upstream does not resolve");
		return;
	}
	struct conn *sc = stream_open_client(s, c, m->stream, &m->u.open, &l->upstream.al);
	if (sc && !l->upstream.al.n)
		names_park(s, sc, &l->upstream, NULL);
}

static void client_on_tunnel_msg(struct shard *s, struct conn *c, const struct tun_msg *m)
{
	struct tunnel *t = conn_tun(c);
	switch (m->type) {
	case TUN_WELCOME:
		if (t->state != TS_HELLO) {
			tunnel_fail(s, c, WS_CLOSE_PROTOCOL, "WELCOME twice");
			return;
		}
		on_welcome(s, c, &m->u.welcome);
		return;
	case TUN_OPEN: {
		bool offered = false;
		for (size_t i = 0; i < s->cfg->nports; i++)
			offered |= s->cfg->ports[i] == m->u.open.port;
		if (t->state != TS_READY || !offered || s->draining || t->goaway_sent) {
			tunnel_send_rst(s, c, m->stream,
			                offered ? TUN_RST_SHUTDOWN : TUN_RST_REFUSED,
			                offered ? "shutting down" : "port not offered");
			return;
		}
		client_open_stream(s, c, m);
		return;
	}
	case TUN_GOAWAY:
		if (m->u.goaway.reason == TUN_GOAWAY_VERSION ||
		    m->u.goaway.reason == TUN_GOAWAY_UNAUTHORIZED) {
			struct lane *l = lane_of(s, t);
			if (l)
				lane_problem(l, "the server refused this client",
				             m->u.goaway.reason == TUN_GOAWAY_VERSION
				                     ? "no common protocol version"
				                     : "unauthorized");
		}
		return;
	case TUN_HELLO:
		tunnel_fail(s, c, WS_CLOSE_PROTOCOL, "unexpected HELLO from server");
		return;
	default:
		return; /* unknown types are ignored */
	}
}

static void client_on_tunnel_closed(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	struct lane *l = lane_of(s, t);
	if (!l || !l->up || l->idx != c->idx || l->gen != c->gen)
		return;
	l->up = false;
	if (l->ready_ms)
		__atomic_fetch_sub(&client_of(s->eng)->connected, 1, __ATOMIC_RELAXED);
	else if (!s->draining && (l->id == 0 || __atomic_load_n(&l->wanted, __ATOMIC_ACQUIRE)))
		lane_problem(l, "connection to the server failed", closed_reason(s, c));
	if (l->id == 0) {
		/* The session ends with its primary lane: the other lanes close and rejoin the
		 * next session. */
		struct engine *e = s->eng;
		__atomic_store_n(&client_of(e)->session, 0, __ATOMIC_RELEASE);
		for (int i = 1; i < client_of(e)->nlanes; i++) {
			__atomic_store_n(&client_of(e)->lanes[i].wanted, 0, __ATOMIC_RELEASE);
			if (client_of(e)->lanes[i].shard != s->id)
				shard_wake(&e->shards[client_of(e)->lanes[i].shard]);
		}
		if (l->ready_ms)
			log_warn("disconnected from the server: reconnecting", "url=%s",
			         log_q(s->cfg->url));
	} else if (l->ready_ms) {
		log_info("lane disconnected", "lane=%d", l->id);
	}
	if (!s->draining)
		lane_schedule(s, l);
}

/* Lanes after the first follow the session: open when wanted, closed when not. */
static void lanes_follow(struct shard *s)
{
	struct engine *e = s->eng;
	for (int i = 1; i < client_of(e)->nlanes; i++) {
		struct lane *l = &client_of(e)->lanes[i];
		if (l->shard != s->id)
			continue;
		bool wanted = __atomic_load_n(&l->wanted, __ATOMIC_ACQUIRE) &&
		              __atomic_load_n(&client_of(e)->session, __ATOMIC_ACQUIRE);
		if (!wanted && l->up) {
			/* Streams in flight finish first (GOAWAY: no new ones; the lane closes
			 * when they are done). */
			struct conn *c = conn_get(s, l->idx, l->gen);
			if (c && c->kind == CK_TUNNEL && !c->closing) {
				if (conn_tun(c)->state == TS_READY && conn_tun(c)->nstreams)
					tunnel_goaway(s, c, TUN_GOAWAY_NORMAL,
					              "the session ended");
				else
					tunnel_fail(s, c, WS_CLOSE_GOING_AWAY,
					            "the session ended");
			}
		} else if (wanted && !l->up && s->now_ms >= l->next_try_ms && !s->draining) {
			lane_connect(s, l);
		}
	}
}

static void client_on_tunnel_release(struct shard *s, struct conn *c)
{
	(void)s;
	struct cli_conn *cc = cc_of(conn_tun(c));
	if (cc)
		free(cc->head);
	free(cc);
}

static const struct tunnel_cbs client_cbs = {
        .on_msg = client_on_tunnel_msg,
        .on_closed = client_on_tunnel_closed,
        .on_release = client_on_tunnel_release,
        .on_head_bytes = client_on_head_bytes,
        .on_xprt_ready = client_on_tls_ready,
        .on_xprt_failed = client_on_tls_failed,
};

/* OP_TUN_CONNECT: the lane's TCP connect completed. */
static void on_tun_connect(struct shard *s, struct conn *c, struct tok tk,
                           struct io_uring_cqe *cqe)
{
	(void)tk;
	if (c->kind != CK_TUNNEL || c->closing)
		return;
	struct tunnel *tn = conn_tun(c);
	struct lane *l = lane_of(s, tn);
	if (cqe->res < 0) {
		STAT_ADD(s, hs_fail[HS_CONNECT], 1);
		lane_problem(l, "cannot connect to the server",
		             cqe->res == -ECANCELED ? "timed out" : strerror(-cqe->res));
		/* The name may point elsewhere by now: resolve it again before long. */
		resolver_kick(role_of(s->eng)->res, l->server.id);
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "connect failed");
		return;
	}
	struct tls_ctx *tctx =
	        __atomic_load_n(&client_of(s->eng)->tls_client, __ATOMIC_ACQUIRE);
	if (tctx) {
		if (xprt_init_tls(&tn->x, tctx, s->cfg->url_host)) {
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "out of memory");
			return;
		}
		tn->state = TS_TLS;
		tunnel_arm_recv(s, c);
		xprt_start(&tn->x); /* the ClientHello goes with the next flush */
		tunnel_mark_dirty(s, c);
	} else {
		/* Payloads can be spliced only over a transport that carries them unchanged,
		 * and not when steering moved the bytes beside TCP's queue. */
		tn->can_splice = tn->x.ops->can_splice && !client_of(s->eng)->c.sm;
		send_upgrade(s, c);
	}
}

/* A connection accepted on --local listener idx. */
static void client_on_local_accept(struct shard *s, uint16_t idx, int fd)
{
	struct client *cli = client_of(s->eng);
	struct lane *l = &cli->lanes[0];
	struct conn *tc = l->up ? conn_get(s, l->idx, l->gen) : NULL;
	const char *why = NULL;
	if (!tunnel_ready(tc))
		why = "the tunnel is down";
	else if (!(conn_tun(tc)->caps & TUN_CAP_CLIENT_FORWARD))
		why = "the server does not allow it (run it with --client-forwarding)";
	else if (s->draining)
		why = "shutting down";
	if (why || idx >= cli->nfwd) {
		log_warn("--local connection refused", "port=%u why=%s",
		         idx < cli->nfwd ? cli->fwd[idx].lport : 0, log_q(why ? why : "?"));
		fd_reset_close(fd);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	stream_open_local(s, tc, fd, cli->fwd[idx].target, cli->fwd[idx].rport);
}

/* Parse "LOCALPORT:host:port" (host may be [v6]). */
static bool parse_local(const char *spec, struct local_fwd *f)
{
	char *end;
	long lp = strtol(spec, &end, 10);
	if (*end != ':' || lp <= 0 || lp > 65535)
		return false;
	const char *target = end + 1;
	const char *colon = strrchr(target, ':');
	if (!colon || colon == target)
		return false;
	long rp = strtol(colon + 1, &end, 10);
	if (*end || rp <= 0 || rp > 65535 || strlen(target) > TUN_MAX_STR)
		return false;
	f->lport = (uint16_t)lp;
	f->rport = (uint16_t)rp;
	snprintf(f->target, sizeof(f->target), "%s", target);
	f->fd = -1;
	return true;
}

/* ---- shard hooks and set-up ------------------------------------------------------------ */

static int client_shard_start(struct shard *s)
{
	struct client *cli = client_of(s->eng);
	/* Shard 0 takes the --local listeners the main thread opened (it closes what is
	 * left after the shards are joined). */
	for (int i = 0; s->id == 0 && i < cli->nfwd; i++) {
		int fd = __atomic_exchange_n(&cli->fwd[i].fd, -1, __ATOMIC_ACQ_REL);
		if (fd >= 0)
			listen_here(s, fd, client_on_local_accept, (uint16_t)i);
	}
	names_arm(s);
	if (cli->lanes[0].shard == s->id)
		lane_connect(s, &cli->lanes[0]); /* the others follow its WELCOME */
	return 0;
}

/* Every tick, and when woken (lanes may have been asked to open or close). */
static void client_on_tick(struct shard *s)
{
	lanes_follow(s);
	if (s->draining)
		return;
	struct lane *l = &client_of(s->eng)->lanes[0];
	if (l->shard == s->id && !l->up && s->now_ms >= l->next_try_ms)
		lane_connect(s, l);
}

static void client_on_drain(struct shard *s)
{
	for (uint32_t i = 0; i < s->hiwater; i++) {
		struct conn *c = &s->conns[i];
		if (c->kind != CK_TUNNEL || c->closing)
			continue;
		if (conn_tun(c)->state == TS_READY)
			tunnel_goaway(s, c, TUN_GOAWAY_NORMAL, "client is shutting down");
		else
			tunnel_fail(s, c, WS_CLOSE_GOING_AWAY, "shutting down");
	}
}

static const struct loop_hooks client_hooks = {
        .start = client_shard_start,
        .tick = client_on_tick,
        .wake = client_on_tick,
        .drain = client_on_drain,
};

/* --sockmap: the --local listeners are hop endpoints (the upstream's are named when a
 * lane resolves it). */
static void steer_listeners(struct engine *e)
{
	struct client *cli = client_of(e);
	const struct cfg *c = e->cfg;
	const char *la = c->local_addr && c->local_addr[0] ? c->local_addr : "127.0.0.1";
	struct addrlist al;
	for (int i = 0; i < cli->nfwd; i++)
		if (net_resolve(la, cli->fwd[i].lport, &al) == 0)
			steer_endpoint(e, &al, cli->fwd[i].lport, SM_EP_LISTEN);
}

static int client_take_metrics_fd(struct engine *e, int shard)
{
	if (shard != 0)
		return -1;
	return __atomic_exchange_n(&client_of(e)->metrics_fd, -1, __ATOMIC_ACQ_REL);
}

static struct tls_ctx *client_control_tls(const struct engine *e)
{
	(void)e;
	return NULL; /* --metrics-addr is plain HTTP */
}

static int client_connected(const struct engine *e)
{
	return __atomic_load_n(&client_of(e)->connected, __ATOMIC_RELAXED);
}

static const struct role_ops client_ops = {
        .name = "client",
        .take_control_fd = client_take_metrics_fd,
        .control_tls = client_control_tls,
        .connected = client_connected,
};

/* --metrics-addr (HOST:PORT, [IPv6]:PORT or :PORT): its listener. 0, or the exit status. */
static int open_metrics(struct client *cli, const struct cfg *c)
{
	if (!c->metrics_addr || !c->metrics_addr[0])
		return 0;
	char host[80];
	const char *colon = strrchr(c->metrics_addr, ':');
	long port = colon ? strtol(colon + 1, NULL, 10) : 0;
	size_t hl = colon ? (size_t)(colon - c->metrics_addr) : 0;
	if (!colon || port <= 0 || port > 65535 || hl >= sizeof(host)) {
		log_error("bad --metrics-addr: want HOST:PORT", "metrics_addr=%s",
		          log_q(c->metrics_addr));
		return 2;
	}
	memcpy(host, c->metrics_addr, hl);
	host[hl] = 0;
	int err = net_listen(hl ? host : "0.0.0.0", (uint16_t)port, &cli->metrics_fd);
	if (err) {
		log_error("cannot listen on --metrics-addr", "metrics_addr=%s err=%s",
		          log_q(c->metrics_addr), log_q(strerror(-err)));
		return 1;
	}
	log_info("metrics listening", "metrics_addr=%s", log_q(c->metrics_addr));
	return 0;
}

/* --local: parse each forward and open its listener. 0, or the exit status. */
static int open_local(struct client *cli, const struct cfg *c)
{
	if (c->n_local > 16) {
		log_error("too many --local forwards (at most 16)", NULL);
		return 2;
	}
	for (size_t i = 0; i < c->n_local; i++) {
		struct local_fwd *f = &cli->fwd[i];
		if (!parse_local(c->local[i], f)) {
			log_error("bad --local: want LOCALPORT:host:port", "value=%s",
			          log_q(c->local[i]));
			return 2;
		}
		const char *la =
		        c->local_addr && c->local_addr[0] ? c->local_addr : "127.0.0.1";
		int err = net_listen(la, f->lport, &f->fd);
		if (err) {
			f->fd = -1;
			log_error("cannot listen for --local", "addr=%s port=%u err=%s", la,
			          f->lport, log_q(strerror(-err)));
			return 1;
		}
		cli->nfwd++;
		log_info("forwarding a local port through the server", "listen=%s:%u target=%s",
		         la, f->lport, log_q(f->target));
	}
	return 0;
}

/* The server's host and the upstream, watched by each lane's shard: their first
 * resolutions start now, on the resolver's thread. 0 or -1 (logged). */
static int watch_names(struct engine *e, struct client *cli)
{
	const struct cfg *c = e->cfg;
	if (names_setup(e) != 0)
		return -1;
	role_of(e)->on_resolved = client_on_tick;
	for (int i = 0; i < cli->nlanes; i++) {
		struct lane *l = &cli->lanes[i];
		l->server.id = resolver_watch(role_of(e)->res, NULL, c->url_host, c->url_port,
		                              l->shard);
		l->upstream.id =
		        resolver_watch(role_of(e)->res, "upstream",
		                       c->upstream ? c->upstream : "localhost", 0, l->shard);
		if (l->server.id < 0 || l->upstream.id < 0) {
			log_error("cannot watch the server's or the upstream's name",
			          "server=%s upstream=%s", log_q(c->url_host),
			          log_q(c->upstream));
			return -1;
		}
	}
	return 0;
}

const struct loop_hooks *client_setup(struct engine *e, struct client *cli, int *status)
{
	const struct cfg *c = e->cfg;
	memset(cli, 0, sizeof(*cli));
	cli->c.ops = &client_ops;
	cli->metrics_fd = -1;
	e->role = cli;
	*status = 1;
	/* On the heap, not a stack: the shards use them until they are joined. */
	cli->fwd = calloc(16, sizeof(*cli->fwd));
	cli->lanes = calloc(CFG_MAX_SHARDS, sizeof(*cli->lanes));
	if (!cli->fwd || !cli->lanes) {
		log_error("out of memory", NULL);
		client_teardown(e);
		return NULL;
	}
	*status = open_metrics(cli, c);
	if (*status == 0)
		*status = open_local(cli, c);
	if (*status == 0 && c->url_tls && (!c->auto_tls || (c->ca_file && c->ca_file[0]))) {
		char err[256];
		cli->tls_client = tls_ctx_client(NULL, c->ca_file, err, sizeof(err));
		if (!cli->tls_client) {
			log_error("cannot set up TLS", "err=%s", log_q(err));
			*status = 1;
		}
	}
	if (*status == 0 && steer_start(e) != 0)
		*status = 1;
	if (*status) {
		client_teardown(e);
		return NULL;
	}
	steer_listeners(e);
	/* One lane per shard (e->nshards is already --lanes when that is fewer). */
	cli->nlanes = e->nshards;
	for (int i = 0; i < cli->nlanes; i++) {
		cli->lanes[i].id = i;
		cli->lanes[i].shard = i;
		cli->lanes[i].backoff_ms = BACKOFF_MIN_MS;
	}
	if (watch_names(e, cli) != 0) {
		*status = 1;
		client_teardown(e);
		return NULL;
	}
	return &client_hooks;
}

void client_teardown(struct engine *e)
{
	struct client *cli = client_of(e);
	names_stop(e);
	steer_stop(e);
	tls_ctx_free(cli->tls_client);
	cli->tls_client = NULL;
	if (cli->metrics_fd >= 0)
		close(cli->metrics_fd);
	cli->metrics_fd = -1;
	for (int i = 0; cli->fwd && i < cli->nfwd; i++)
		if (cli->fwd[i].fd >= 0)
			close(cli->fwd[i].fd);
	free(cli->fwd);
	free(cli->lanes);
	cli->fwd = NULL;
	cli->lanes = NULL;
	cli->nfwd = 0;
}

void client_init(void)
{
	loop_on(OP_TUN_CONNECT, on_tun_connect);
}
