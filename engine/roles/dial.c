/* engine/roles/dial.c — dialling a stream's far end: the client's upstream for a stream
 * the server opened, or the server's --local target for one a client opened. Up to four
 * addresses are tried in order when a dial is refused; each dial has --dial-timeout. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/roles/internal.h"
#include "proto/proxy.h"

void stream_dial(struct shard *s, struct conn *sc)
{
	struct stream *st = conn_st(sc);
	const struct addrlist *al = st->dial;
	if (!al || st->addr_try >= al->n) {
		stream_reset(s, sc, TUN_RST_UNREACHABLE, true);
		return;
	}
	struct sockaddr_storage *a = (struct sockaddr_storage *)&al->addr[st->addr_try];
	int fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		stream_reset(s, sc, TUN_RST_INTERNAL, true);
		return;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	steer_own(s->eng, fd);
	sc->fd = fd;
	/* The port is the stream's, the host the upstream's. */
	struct sockaddr_storage dst = *a;
	if (dst.ss_family == AF_INET)
		((struct sockaddr_in *)&dst)->sin_port = htons(st->port);
	else
		((struct sockaddr_in6 *)&dst)->sin6_port = htons(st->port);
	/* The kernel copies the address when the SQE is submitted: submit before dst goes. */
	struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_STREAM_CONNECT, 0);
	io_uring_prep_connect(sqe, fd, (struct sockaddr *)&dst, al->len[st->addr_try]);
	sqe->flags |= IOSQE_IO_LINK;
	sqe = shard_sqe(s, sc, OP_LINK_TIMEOUT, 0);
	io_uring_prep_link_timeout(sqe, &s->dial_ts, 0);
	io_uring_submit(&s->ring);
	st->connecting = true;
}

struct conn *stream_open_client(struct shard *s, struct conn *tc, uint32_t id,
                                const struct tun_open *o, const struct addrlist *upstream)
{
	uint16_t port = o->port;
	uint16_t slot = 0;
	for (size_t i = 0; i < s->cfg->nports; i++)
		if (s->cfg->ports[i] == port)
			slot = (uint16_t)i;
	struct conn *sc = stream_new(s, tc, -1, id, port, slot);
	if (!sc) {
		tunnel_send_rst(s, tc, id, TUN_RST_INTERNAL, "no slots");
		return NULL;
	}
	struct stream *st = conn_st(sc);
	st->dial = upstream;
	if (o->flags & (TUN_OPEN_PROXY_V1 | TUN_OPEN_PROXY_V2)) {
		char rs[TUN_MAX_STR + 1], ls[TUN_MAX_STR + 1];
		snprintf(rs, sizeof(rs), "%.*s", o->remote.len, (const char *)o->remote.p);
		snprintf(ls, sizeof(ls), "%.*s", o->local.len, (const char *)o->local.p);
		st->pre = malloc(PROXY_V1_MAX + 1);
		size_t n = st->pre ? proxy_build(st->pre, PROXY_V1_MAX + 1,
		                                 o->flags & TUN_OPEN_PROXY_V2 ? 2 : 1, rs, ls)
		                   : 0;
		if (!n) {
			log_warn("cannot build a PROXY header for the upstream",
			         "remote=%s local=%s", log_q(rs), log_q(ls));
			stream_reset(s, sc, TUN_RST_INTERNAL, true);
			return NULL;
		}
		st->pre_len = (uint16_t)n;
	}
	if (!upstream->n) {
		st->connecting = true; /* its name is being resolved: names_park() */
		return sc;
	}
	stream_dial(s, sc);
	return sc->closing ? NULL : sc;
}

/* OP_STREAM_CONNECT. */
static void on_stream_connect(struct shard *s, struct conn *sc, struct tok t,
                              struct io_uring_cqe *cqe)
{
	(void)t;
	int res = cqe->res;
	struct stream *st = conn_st(sc);
	if (sc->closing)
		return;
	if (res < 0) {
		const struct addrlist *al = st->dial;
		if (res != -ECANCELED && al && st->addr_try + 1 < al->n) {
			close(sc->fd);
			sc->fd = -1;
			st->addr_try++;
			stream_dial(s, sc);
			return;
		}
		STAT_ADD(s, dial_failures, 1);
		char err[64];
		snprintf(err, sizeof(err), "%s",
		         res == -ECANCELED ? "timed out" : strerror(-res));
		log_warn("upstream dial failed", "port=%u stream=%u err=%s", st->port, st->id,
		         log_q(err));
		stream_reset(s, sc,
		             res == -ECONNREFUSED ? TUN_RST_REFUSED : TUN_RST_UNREACHABLE,
		             true);
		return;
	}
	stream_connected(s, sc);
}

void dial_init(void)
{
	loop_on(OP_STREAM_CONNECT, on_stream_connect);
}
