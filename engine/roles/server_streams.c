/* engine/roles/server_streams.c — the server's data-plane streams: a connection accepted
 * for a client becomes a stream on one of its lanes, announced with OPEN (after a load
 * balancer's PROXY header when --lb-proxy-protocol). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "engine/log.h"
#include "engine/roles/internal.h"
#include "proto/proxy.h"

/* Send OPEN for a stream (asking the client for a PROXY header when --proxy-protocol). */
static void stream_announce(struct shard *s, struct conn *tc, struct conn *sc,
                            const char *remote, const char *local)
{
	struct tunnel *t = conn_tun(tc);
	struct stream *st = conn_st(sc);
	const char *pp = s->cfg->proxy_protocol;
	struct tun_open o = {
	        .port = st->port, .remote = tun_str_from(remote), .local = tun_str_from(local)};
	if (pp && strcmp(pp, "v1") == 0)
		o.flags = TUN_OPEN_PROXY_V1;
	else if (pp && strcmp(pp, "v2") == 0)
		o.flags = TUN_OPEN_PROXY_V2;
	uint8_t m[TUN_HEADER_LEN + 2 + 2 + 2 * TUN_MAX_STR];
	size_t len = tun_encode_open(m, sizeof(m), st->id, &o);
	tunnel_send_msg(s, tc, m, len);
	log_debug("stream opened", "client_id=%s stream=%u port=%u remote=%s",
	          log_q(t->client_id), st->id, st->port, remote);
}

/* OP_STREAM_PROXY: bytes of a load balancer's PROXY header. */
static void on_stream_proxy(struct shard *s, struct conn *sc, struct tok t,
                            struct io_uring_cqe *cqe)
{
	(void)t;
	int res = cqe->res;
	struct stream *st = conn_st(sc);
	struct conn *tc = sc->closing ? NULL : stream_tunnel(s, sc);
	if (!tc)
		return;
	if (res <= 0) {
		stream_reset(s, sc, TUN_RST_RESET, false);
		return;
	}
	st->pre_len = (uint16_t)(st->pre_len + res);
	struct proxy_hdr h;
	const char *why = "truncated";
	enum proxy_status ps = proxy_parse(st->pre, st->pre_len, &h, &why);
	if (ps == PROXY_NEED_MORE && st->pre_len < PROXY_V2_MAX) {
		struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_STREAM_PROXY, 0);
		io_uring_prep_recv(sqe, sc->fd, st->pre + st->pre_len,
		                   PROXY_V2_MAX - st->pre_len, 0);
		return;
	}
	if (ps != PROXY_OK) {
		log_warn("bad PROXY header on a data-plane connection (--lb-proxy-protocol)",
		         "port=%u why=%s", st->port, log_q(why));
		stream_reset(s, sc, TUN_RST_PROTOCOL, false);
		return;
	}
	struct sockaddr_storage ra, la;
	socklen_t rl = sizeof(ra), ll = sizeof(la);
	if (h.local) {
		getpeername(sc->fd, (struct sockaddr *)&ra, &rl);
		getsockname(sc->fd, (struct sockaddr *)&la, &ll);
	} else {
		ra = h.src;
		la = h.dst;
	}
	struct server *srv = server_of(s->eng);
	uint32_t tunnel = ((struct srv_lane *)conn_tun(tc)->owner)->tunnel;
	if ((srv->n_allow &&
	     !net_cidr_match(srv->allow, srv->n_allow, (struct sockaddr *)&ra)) ||
	    !tunnel_allows_addr(srv, tunnel, (struct sockaddr *)&ra)) {
		STAT_ADD(s, dataplane_denied, 1);
		stream_reset(s, sc, TUN_RST_REFUSED, false);
		return;
	}
	char rs[72] = "", ls[72] = "";
	addr_format((struct sockaddr *)&ra, rs, sizeof(rs));
	addr_format((struct sockaddr *)&la, ls, sizeof(ls));
	/* The header buffer goes before the stream runs (it would be sent as a preamble);
	 * bytes after the header are the client's first data: they follow OPEN. */
	uint8_t *buf = st->pre;
	size_t extra = st->pre_len - h.len;
	st->pre = NULL;
	st->pre_len = 0;
	st->held = false;
	stream_announce(s, tc, sc, rs, ls);
	if (extra && stream_send_copy(s, tc, sc, buf + h.len, extra) != 0) {
		free(buf);
		stream_reset(s, sc, TUN_RST_INTERNAL, true);
		return;
	}
	free(buf);
	stream_start(s, sc);
}

void stream_open_server(struct shard *s, struct conn *tc, int fd, uint16_t port,
                        uint16_t port_slot)
{
	struct server *srv = server_of(s->eng);
	uint32_t id = ((struct srv_lane *)conn_tun(tc)->owner)->tunnel;
	if (!tunnels_stream_admit(srv, id)) {
		STAT_ADD(s, dataplane_refused, 1);
		log_debug("tunnel at its maxStreams: data-plane connection refused", "port=%u",
		          port);
		fd_reset_close(fd);
		return;
	}
	struct conn *sc = stream_new(s, tc, fd, 0, port, port_slot);
	if (!sc) {
		tunnels_stream_unadmit(srv, id);
		log_warn("connection table full: refusing a data-plane connection", "port=%u",
		         port);
		return;
	}
	tunnels_stream_opened(srv, id, sc);
	struct stream *st = conn_st(sc);
	const char *lb = s->cfg->lb_proxy_protocol;
	if (lb && lb[0]) {
		/* A load balancer in front sends a PROXY header first: read it before the
		 * stream is announced, so OPEN carries the real client's address. */
		st->pre = malloc(PROXY_V2_MAX);
		if (!st->pre) {
			stream_reset(s, sc, TUN_RST_INTERNAL, false);
			return;
		}
		st->held = true;
		struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_STREAM_PROXY, 0);
		io_uring_prep_recv(sqe, fd, st->pre, PROXY_V2_MAX, 0);
		return;
	}
	struct sockaddr_storage ra, la;
	socklen_t rl = sizeof(ra), ll = sizeof(la);
	char rs[72] = "", ls[72] = "";
	if (getpeername(fd, (struct sockaddr *)&ra, &rl) == 0)
		addr_format((struct sockaddr *)&ra, rs, sizeof(rs));
	if (getsockname(fd, (struct sockaddr *)&la, &ll) == 0)
		addr_format((struct sockaddr *)&la, ls, sizeof(ls));
	stream_announce(s, tc, sc, rs, ls);
	stream_start(s, sc);
}

/* A held stream whose PROXY header did not come in time (the mux resets it). */
void server_on_held_timeout(struct shard *s, struct conn *sc)
{
	(void)s;
	log_warn("no PROXY header from the load balancer in time: closing", "port=%u",
	         conn_st(sc)->port);
}

void server_streams_init(void)
{
	loop_on(OP_STREAM_PROXY, on_stream_proxy);
}
