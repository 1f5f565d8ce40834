/* engine/mux/tunnel.c — a tunnel's life (start, goaway, fail, release, liveness) and
 * the control messages the mux handles itself; the mux's registration with the loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/loop/engine.h"
#include "engine/mux/credit.h"
#include "engine/mux/internal.h"

struct tunnel *tunnel_new(struct shard *s, struct conn *c, enum ws_role role,
                          const struct tunnel_cbs *cbs, void *owner)
{
	struct tunnel *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->role = role;
	t->state = TS_HELLO;
	t->st_head = NO_SLOT;
	t->cbs = cbs;
	t->owner = owner;
	xprt_init_plain(&t->x);
	t->my_window = s->cfg->window ? s->cfg->window : CFG_DEFAULT_WINDOW;
	t->peer_window = CFG_DEFAULT_WINDOW;
	t->peer_max_frame = CFG_DEFAULT_MAX_FRAME;
	t->next_id = role == WS_ROLE_SERVER ? 1 : 2;
	t->last_rx_ms = s->now_ms;
	t->last_ping_ms = s->now_ms;
	reasm_init(&t->rx, role, CFG_MAX_WS_PAYLOAD);
	t->dst_idx = NO_SLOT;
	c->kind = CK_TUNNEL;
	c->u.ctx = t;
	STAT_ADD(s, tunnels_total, 1);
	return t;
}

void tunnel_start(struct shard *s, struct conn *c, const uint8_t *early, size_t n)
{
	struct tunnel *t = conn_tun(c);
	t->state = TS_HELLO;
	t->last_rx_ms = s->now_ms;
	t->last_ping_ms = s->now_ms;
	/* Read inline on readiness, so that DATA payloads can be spliced straight from the
	 * socket: frames are then checked one by one (a payload needs no unmasking). */
	if (cfg_wants_splice(s->cfg->data_path) && t->can_splice) {
		/* A client's multishot recv (the upgrade response) ends first: its last
		 * completion starts the inline reads, so no byte is read out of order. */
		t->rx_inline = true;
		if (t->recv_armed) {
			struct tok rt = {.op = OP_TUN_RECV, .gen = c->gen, .idx = c->idx};
			struct io_uring_sqe *sqe = shard_sqe(s, c, OP_CANCEL, 0);
			io_uring_prep_cancel64(sqe, tok_encode(rt), 0);
		}
	}
	tunnel_arm_recv(s, c);
	if (n)
		tunnel_input(s, c, early, n);
	if (t->rx_inline && !t->recv_armed && !c->closing)
		tunnel_rx_inline(s, c);
	/* A server's TLS session may already hold decrypted frames that arrived with the
	 * request: read them now, no further bytes may come to trigger it. */
	if (!c->closing)
		tunnel_drain_xprt(s, c);
}

void notify_closed(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	if (t->closed_notified)
		return;
	t->closed_notified = true;
	t->closing_ms = s->now_ms;
	if (t->cbs->on_closed)
		t->cbs->on_closed(s, c);
}

void close_streams(struct shard *s, struct conn *c, uint16_t reason)
{
	struct tunnel *t = conn_tun(c);
	uint32_t i = t->st_head;
	while (i != NO_SLOT) {
		struct conn *sc = &s->conns[i];
		uint32_t next = conn_st(sc)->next;
		stream_reset(s, sc, reason, false);
		i = next;
	}
}

void tunnel_fail(struct shard *s, struct conn *c, enum ws_close code, const char *why)
{
	struct tunnel *t = conn_tun(c);
	if (c->closing)
		return;
	if (t->state == TS_READY || t->state == TS_HELLO)
		log_info("tunnel closed", "client_id=%s remote=%s reason=%s",
		         log_q(t->client_id[0] ? t->client_id : "-"), t->remote, log_q(why));
	notify_closed(s, c);
	close_streams(s, c, TUN_RST_SHUTDOWN);
	if (code != WS_CLOSE_ABNORMAL && code != WS_CLOSE_NONE && t->state != TS_CONNECTING &&
	    t->state != TS_UPGRADING) {
		/* Best effort: a close frame, flushed before the socket closes. */
		uint8_t p[WS_MAX_CONTROL_PAYLOAD];
		size_t pl = ws_close_payload(p, code, why);
		send_ws_control(s, c, WS_OP_CLOSE, p, pl);
		t->state = TS_CLOSING;
		tunnel_flush(s, c);
		if (t->send_inflight)
			return; /* on_tun_send closes once the queue is empty */
	}
	t->state = TS_CLOSING;
	conn_close(s, c);
}

void tunnel_protocol_error(struct shard *s, struct conn *c, const char *why)
{
	struct tunnel *t = conn_tun(c);
	if (c->closing || t->close_sent)
		return;
	log_warn("protocol error: closing the tunnel", "client_id=%s remote=%s why=%s",
	         log_q(t->client_id[0] ? t->client_id : "-"), t->remote, log_q(why));
	tunnel_goaway(s, c, TUN_GOAWAY_PROTOCOL, why);
	tunnel_fail(s, c, WS_CLOSE_PROTOCOL, why);
}

bool tunnel_closing(const struct conn *c)
{
	return c->closing || conn_tun(c)->close_sent || conn_tun(c)->state == TS_CLOSING;
}

void tunnel_goaway(struct shard *s, struct conn *c, uint16_t reason, const char *text)
{
	struct tunnel *t = conn_tun(c);
	if (t->goaway_sent || c->closing)
		return;
	uint8_t m[TUN_HEADER_LEN + 4 + TUN_MAX_STR];
	size_t len = tun_encode_goaway(m, sizeof(m), reason, text);
	if (len)
		tunnel_send_msg(s, c, m, len);
	t->goaway_sent = true;
}

static void tunnel_release(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	if (!t)
		return;
	notify_closed(s, c);
	/* Streams still linked are being closed; unlink them from us. */
	uint32_t i = t->st_head;
	while (i != NO_SLOT) {
		struct conn *sc = &s->conns[i];
		uint32_t next = conn_st(sc)->next;
		conn_st(sc)->tun_gen =
		        (uint16_t)(conn_st(sc)->tun_gen + 0x8000); /* never matches */
		conn_st(sc)->prev = conn_st(sc)->next = NO_SLOT;
		i = next;
	}
	queue_release(s, t);
	idmap_free(&t->ids);
	if (t->cbs->on_release)
		t->cbs->on_release(s, c);
	xprt_release(&t->x);
	free(t);
	c->u.ctx = NULL;
}

static void tunnel_tick(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	if (!t)
		return;
	if (t->state == TS_CLOSING) {
		/* The peer did not answer our close in time. */
		if (s->now_ms - t->closing_ms > 5000)
			conn_close(s, c);
		return;
	}
	if (t->state == TS_READY || t->state == TS_HELLO) {
		if (s->now_ms - t->last_rx_ms > (uint64_t)s->cfg->dead_ms) {
			log_warn("peer unresponsive: closing the tunnel",
			         "client_id=%s remote=%s "
			         "silent_ms=%llu",
			         log_q(t->client_id[0] ? t->client_id : "-"), t->remote,
			         (unsigned long long)(s->now_ms - t->last_rx_ms));
			tunnel_fail(s, c, WS_CLOSE_GOING_AWAY, "peer unresponsive");
			return;
		}
		if (t->state == TS_READY &&
		    s->now_ms - t->last_ping_ms >= (uint64_t)s->cfg->ping_ms) {
			uint8_t m[TUN_HEADER_LEN + 8];
			size_t len = tun_encode_ping(m, sizeof(m), false, mono_ns());
			tunnel_send_msg(s, c, m, len);
			t->last_ping_ms = s->now_ms;
		}
	}
	if (t->state != TS_READY && t->state != TS_CLOSING &&
	    s->now_ms - c->started_ms > (uint64_t)s->cfg->handshake_ms) {
		STAT_ADD(s, hs_fail[HS_TIMEOUT], 1);
		tunnel_fail(s, c, WS_CLOSE_POLICY, "handshake timeout");
		return;
	}
	/* Streams the owner still holds past the deadline (a load balancer's PROXY header
	 * that did not come); and credit still held back (the lane's share grew as streams
	 * ended, or a WINDOW could not be queued): give it back now. */
	uint32_t i = t->st_head;
	while (i != NO_SLOT) {
		struct conn *sc = &s->conns[i];
		i = conn_st(sc)->next;
		if (conn_st(sc)->held && !sc->closing &&
		    s->now_ms - sc->started_ms > (uint64_t)s->cfg->handshake_ms) {
			if (t->cbs->on_held_timeout)
				t->cbs->on_held_timeout(s, sc);
			stream_reset(s, sc, TUN_RST_TIMEOUT, false);
		} else if (conn_st(sc)->unacked && !sc->closing) {
			stream_grant(s, c, conn_st(sc));
		}
	}
	/* Drained: a GOAWAY'd tunnel with no streams left closes. */
	if (t->goaway_sent && t->nstreams == 0 && t->state == TS_READY && !t->q_head) {
		notify_closed(s, c);
		t->state = TS_CLOSING;
		uint8_t p[WS_MAX_CONTROL_PAYLOAD];
		size_t pl = ws_close_payload(p, WS_CLOSE_GOING_AWAY, "drained");
		send_ws_control(s, c, WS_OP_CLOSE, p, pl);
	}
}

/* ---- messages -------------------------------------------------------------------- */

/* Give k bytes of the stream's credit back to the peer. */
void send_window(struct shard *s, struct conn *tc, struct stream *st, uint32_t k)
{
	uint8_t m[TUN_HEADER_LEN + 4];
	size_t len = tun_encode_window(m, sizeof(m), st->id, k);
	if (!len || tunnel_send_msg(s, tc, m, len) != 0)
		return; /* out of memory: the next write or tick tries again */
	st->unacked -= k;
	st->outstanding += k;
}

void handle_msg(struct shard *s, struct conn *c, const struct tun_msg *m)
{
	struct tunnel *t = conn_tun(c);
	struct conn *sc = NULL;
	switch (m->type) {
	case TUN_FIN:
		if (!tunnel_lookup_stream(s, t, m->stream, &sc))
			return;
		conn_st(sc)->peer_fin = true;
		stream_maybe_send(s, sc);
		stream_check_done(s, sc);
		return;
	case TUN_RST:
		if (!tunnel_lookup_stream(s, t, m->stream, &sc))
			return;
		STAT_ADD(
		        s,
		        rst_received[m->u.rst.reason < STATS_RST_REASONS ? m->u.rst.reason : 0],
		        1);
		log_debug("stream reset by peer", "stream=%u reason=%s", m->stream,
		          tun_rst_reason_name(m->u.rst.reason));
		stream_reset(s, sc, m->u.rst.reason, false);
		return;
	case TUN_WINDOW:
		if (!tunnel_lookup_stream(s, t, m->stream, &sc))
			return;
		if (!credit_add(&conn_st(sc)->credit, m->u.window)) {
			stream_reset(s, sc, TUN_RST_PROTOCOL, true);
			return;
		}
		stream_maybe_recv(s, sc);
		return;
	case TUN_PING: {
		uint8_t out[TUN_HEADER_LEN + 8];
		size_t len = tun_encode_ping(out, sizeof(out), true, m->u.ping);
		tunnel_send_msg(s, c, out, len);
		return;
	}
	case TUN_PONG: {
		t->rtt_ns = mono_ns() - m->u.ping;
		double sec = (double)t->rtt_ns / 1e9;
		int b = 0;
		while (b < STATS_RTT_BUCKETS - 1 && sec > stats_rtt_bounds[b])
			b++;
		STAT_ADD(s, rtt_bucket[b], 1);
		STAT_ADD(s, rtt_count, 1);
		STAT_ADD(s, rtt_sum_ns, t->rtt_ns);
		if (t->ctr)
			__atomic_store_n(&t->ctr->rtt_ns, t->rtt_ns, __ATOMIC_RELAXED);
		return;
	}
	case TUN_OPEN:
		/* The id's parity was checked with the header (recv.c); an id still open
		 * here cannot be opened again (§4.1). */
		if (tunnel_lookup_stream(s, t, m->stream, &sc)) {
			tunnel_protocol_error(s, c, "OPEN for a stream id in use");
			return;
		}
		break;
	case TUN_GOAWAY:
		t->goaway_received = true;
		log_info("peer is going away", "client_id=%s reason=%u text=%s",
		         log_q(t->client_id[0] ? t->client_id : "-"), m->u.goaway.reason,
		         log_q(""));
		break;
	default:
		break;
	}
	/* HELLO, WELCOME, OPEN, GOAWAY and unknown types: the owner decides. */
	if (t->cbs->on_msg)
		t->cbs->on_msg(s, c, m);
}

/* ---- registration with the loop ------------------------------------------------------ */

/* A lane's buffers all come back within the loop turn that filled them (payloads are
 * forwarded or copied at once), so a few suffice; an empty ring only costs a re-arm. */
#define TUN_RING_BUFS 4
#define TUN_RING_BUFSZ (256 * 1024)
#define STREAM_RING_BUFS 8
#define STREAM_RING_BUFSZ (256 * 1024) /* = CFG_DEFAULT_MAX_FRAME */

static void op_tun_recv(struct shard *s, struct conn *c, struct tok t, struct io_uring_cqe *cqe)
{
	(void)t;
	on_tun_recv(s, c, cqe);
}

static void op_tun_send(struct shard *s, struct conn *c, struct tok t, struct io_uring_cqe *cqe)
{
	(void)t;
	on_tun_send(s, c, cqe->res);
}

static void op_tun_poll(struct shard *s, struct conn *c, struct tok t, struct io_uring_cqe *cqe)
{
	(void)t;
	conn_tun(c)->rx_poll_armed = false;
	if (c->closing || cqe->res == -ECANCELED || !conn_tun(c)->rx_inline)
		return;
	if (cqe->res < 0)
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, strerror(-cqe->res));
	else
		tunnel_rx_inline(s, c);
}

static void op_tun_pollout(struct shard *s, struct conn *c, struct tok t,
                           struct io_uring_cqe *cqe)
{
	(void)t;
	conn_tun(c)->pollout_armed = false;
	if (cqe->res < 0 && cqe->res != -ECANCELED && !c->closing)
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, strerror(-cqe->res));
	else if (!c->closing)
		conn_defer(s, c);
}

static void op_stream_recv(struct shard *s, struct conn *c, struct tok t,
                           struct io_uring_cqe *cqe)
{
	(void)t;
	on_stream_recv(s, c, cqe);
}

static void op_stream_send(struct shard *s, struct conn *c, struct tok t,
                           struct io_uring_cqe *cqe)
{
	(void)t;
	on_stream_send(s, c, cqe->res);
}

static void op_stream_poll(struct shard *s, struct conn *c, struct tok t,
                           struct io_uring_cqe *cqe)
{
	(void)t;
	on_stream_poll(s, c, cqe->res);
}

static void op_stream_pollout(struct shard *s, struct conn *c, struct tok t,
                              struct io_uring_cqe *cqe)
{
	(void)t;
	on_stream_pollout(s, c, cqe->res);
}

static int mux_shard_start(struct shard *s)
{
	struct mux_shard *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->wait_head = m->wait_tail = NO_SLOT;
	s->mux = m;
	return 0;
}

static void mux_shard_stop(struct shard *s)
{
	struct mux_shard *m = s->mux;
	while (m && m->item_free) {
		struct outitem *it = m->item_free;
		m->item_free = it->next;
		free(it);
	}
	free(m);
	s->mux = NULL;
}

/* Every tick: wake streams waiting for buffers, so that no wake-up can be lost. */
static void mux_shard_tick(struct shard *s)
{
	stream_wake_waiters(s);
}

static const struct kind_ops tunnel_kind = {
        .finalize = tunnel_release,
        .tick = tunnel_tick,
        .flush = tunnel_flush,
        .holds_drain = true,
};
static const struct kind_ops stream_kind = {
        .finalize = stream_release,
        .holds_drain = true,
        .rst_on_abort = true,
};
static const struct loop_hooks mux_hooks = {
        .start = mux_shard_start,
        .stop = mux_shard_stop,
        .tick = mux_shard_tick,
};

const struct loop_hooks *mux_init(void)
{
	loop_on(OP_TUN_RECV, op_tun_recv);
	loop_on(OP_TUN_SEND, op_tun_send);
	loop_on(OP_TUN_POLL, op_tun_poll);
	loop_on(OP_TUN_POLLOUT, op_tun_pollout);
	loop_on(OP_STREAM_RECV, op_stream_recv);
	loop_on(OP_STREAM_SEND, op_stream_send);
	loop_on(OP_STREAM_POLL, op_stream_poll);
	loop_on(OP_STREAM_POLLOUT, op_stream_pollout);
	loop_kind(CK_TUNNEL, &tunnel_kind);
	loop_kind(CK_STREAM, &stream_kind);
	loop_ring(TUN_RING_BGID, TUN_RING_BUFS, TUN_RING_BUFSZ);
	loop_ring(STREAM_RING_BGID, STREAM_RING_BUFS, STREAM_RING_BUFSZ);
	return &mux_hooks;
}

bool tunnel_ready(const struct conn *c)
{
	return c && c->kind == CK_TUNNEL && !c->closing && conn_tun(c)->state == TS_READY;
}
