/* engine/mux/recv.c — a tunnel's receive side: WebSocket frames and tunnel messages
 * parsed across buffer boundaries, DATA payloads delivered to their streams. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/mux/credit.h"
#include "engine/mux/internal.h"

void tunnel_arm_recv(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	if (t->recv_armed || t->rx_inline || c->closing)
		return;
	struct io_uring_sqe *sqe = shard_sqe(s, c, OP_TUN_RECV, 0);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = TUN_RING_BGID;
	t->recv_armed = true;
}

/* The context of the transport's and reassembly's callbacks. */
struct rx_ctx {
	struct shard *s;
	struct conn *c;
};

/* Plaintext from the transport: the client's upgrade response, or frames. */
static bool on_plain(void *ctx, const uint8_t *p, size_t n)
{
	struct rx_ctx *x = ctx;
	struct tunnel *t = conn_tun(x->c);
	if (t->state == TS_UPGRADING) {
		if (t->cbs->on_head_bytes)
			t->cbs->on_head_bytes(x->s, x->c, p, n);
	} else {
		tunnel_input(x->s, x->c, p, n);
	}
	return !x->c->closing;
}

/* The transport's handshake completed. */
static bool on_xprt_ready(void *ctx)
{
	struct rx_ctx *x = ctx;
	struct tunnel *t = conn_tun(x->c);
	if (t->cbs->on_xprt_ready)
		t->cbs->on_xprt_ready(x->s, x->c);
	return !x->c->closing;
}

static const struct xprt_up tun_up = {.on_plain = on_plain, .on_ready = on_xprt_ready};

/* What the transport returned: a failure ends the tunnel. */
static void xprt_result(struct shard *s, struct conn *c, int r)
{
	struct tunnel *t = conn_tun(c);
	if (r == XPRT_CLOSED) {
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "the peer closed the TLS session");
	} else if (r == XPRT_FAILED && !c->closing) {
		if (t->x.hs_failed) {
			STAT_ADD(s, hs_fail[HS_TLS], 1);
			if (t->cbs->on_xprt_failed)
				t->cbs->on_xprt_failed(s, c, xprt_error(&t->x));
		}
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, xprt_error(&t->x));
	}
}

/* Bytes read from the tunnel's socket. */
static void xprt_input(struct shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	struct tunnel *t = conn_tun(c);
	struct rx_ctx x = {.s = s, .c = c};
	int r = t->x.ops->recv(&t->x, s, p, n, &tun_up, &x);
	if (!c->closing && t->x.ops->busy(&t->x))
		conn_defer(s, c); /* handshake records to send, or an alert */
	xprt_result(s, c, r);
}

void tunnel_drain_xprt(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	struct rx_ctx x = {.s = s, .c = c};
	xprt_result(s, c, t->x.ops->drain(&t->x, s, &tun_up, &x));
}

bool tunnel_lookup_stream(struct shard *s, struct tunnel *t, uint32_t id, struct conn **out)
{
	uint32_t idx;
	if (!idmap_get(&t->ids, id, &idx))
		return false;
	struct conn *sc = &s->conns[idx];
	if (sc->kind != CK_STREAM || conn_st(sc)->id != id)
		return false;
	*out = sc;
	return true;
}

/* Payloads below this are copied: the copy costs less than a send of their own, while
 * the ring's sends from the buffer are batched into the turn's one submission (bench/
 * README.md, "Data paths": forwarding every 1 KiB response cost 10 % of the rate). */
#define FORWARD_MIN (16u * 1024)

/* May DATA payload go from where it arrived straight to its stream's socket? Not when
 * it must be unmasked on the way (a masking key other than zero), nor on the copy path
 * (kept to measure against). */
static bool payload_plain(const struct shard *s, const struct ws_frame *fr)
{
	return s->cfg->data_path != CFG_DP_COPY &&
	       (!fr->masked || (fr->mask[0] | fr->mask[1] | fr->mask[2] | fr->mask[3]) == 0);
}

/* DATA payload bytes for the current message's stream: sent from where they lie when the
 * stream has nothing waiting and its socket takes them; what it does not take is copied
 * (unmasked) into the stream's buffer, which grows for it. */
static void deliver(struct shard *s, struct conn *c, const uint8_t *p, size_t n,
                    const struct ws_frame *fr, uint64_t frame_off)
{
	struct tunnel *t = conn_tun(c);
	if (t->dst_idx == NO_SLOT)
		return;
	struct conn *sc = conn_get(s, t->dst_idx, t->dst_gen);
	if (!sc || sc->kind != CK_STREAM || sc->closing) {
		t->dst_idx = NO_SLOT;
		return;
	}
	struct stream *st = conn_st(sc);
	if (credit_overrun(st->outstanding, n)) {
		log_warn("peer exceeded the stream's credit: resetting the stream",
		         "client_id=%s stream=%u", log_q(t->client_id), st->id);
		stream_reset(s, sc, TUN_RST_PROTOCOL, true);
		t->dst_idx = NO_SLOT;
		return;
	}
	st->outstanding -= (uint32_t)n;
	if (n >= FORWARD_MIN && payload_plain(s, fr) && stream_can_forward(sc)) {
		size_t k = stream_forward(s, sc, c, p, n);
		if (sc->closing || c->closing)
			return;
		p += k;
		n -= k;
		frame_off += k;
		if (!n)
			return;
	}
	if (stream_down_reserve(st, (uint32_t)n, t->my_window)) {
		stream_reset(s, sc, TUN_RST_INTERNAL, true);
		t->dst_idx = NO_SLOT;
		return;
	}
	while (n) {
		uint32_t room;
		uint8_t *to = dbuf_tail(&st->down, &room);
		size_t k = n < room ? n : room;
		if (fr->masked)
			ws_mask_copy(to, p, k, fr->mask, frame_off);
		else
			memcpy(to, p, k);
		dbuf_wrote(&st->down, (uint32_t)k);
		p += k;
		n -= k;
		frame_off += k;
	}
	stream_maybe_send(s, sc);
}

/* ---- what reassembly reports (struct rx_ctx is the context) ----------------------------- */

/* What is wrong with a message the peer sent, from its header and the lane's state, or
 * NULL (docs/PROTOCOL.md §3.1, §2.1, §4.1): the first message on a lane is HELLO (to a
 * server) or WELCOME or GOAWAY (to a client), and neither comes again; DATA names a
 * stream; an OPEN carries its sender's id parity (odd: the server's, even: the client's)
 * and an id other than 0 and 4294967295. */
static const char *header_problem(const struct tunnel *t, const struct tun_msg *mh)
{
	bool server = t->role == WS_ROLE_SERVER;
	if (t->state == TS_HELLO) {
		if (server && mh->type != TUN_HELLO)
			return "first message is not HELLO";
		if (!server && mh->type != TUN_WELCOME && mh->type != TUN_GOAWAY)
			return "first message is not WELCOME";
		return NULL;
	}
	switch (mh->type) {
	case TUN_HELLO:
		return server ? "HELLO twice" : "HELLO from the server";
	case TUN_WELCOME:
		return server ? "WELCOME from a client" : "WELCOME twice";
	case TUN_DATA:
		return mh->stream == 0 ? "DATA on stream 0" : NULL;
	case TUN_OPEN:
		/* 0 is the lane's own, and the id map keeps UINT32_MAX for itself: an OPEN
		 * for either could never be found again (FIN, RST, WINDOW would miss it). */
		if (mh->stream == 0 || mh->stream == UINT32_MAX)
			return "OPEN with a reserved stream id (0 or 4294967295)";
		if (server && (mh->stream & 1))
			return "client OPEN with a server stream id (odd)";
		if (!server && !(mh->stream & 1))
			return "server OPEN with a client stream id (even)";
		return NULL;
	default:
		return NULL;
	}
}

/* Is the lane past its Close (ours queued, or the peer's answered)? What still arrives
 * is read and dropped: nothing may be sent in reply. */
static bool rx_closed(const struct tunnel *t)
{
	return t->close_sent || t->state == TS_CLOSING;
}

static bool rx_msg_start(void *ctx, const struct tun_msg *mh)
{
	struct rx_ctx *x = ctx;
	struct tunnel *t = conn_tun(x->c);
	t->dst_idx = NO_SLOT;
	if (rx_closed(t))
		return true;
	const char *why = header_problem(t, mh);
	if (why) {
		tunnel_protocol_error(x->s, x->c, why);
		return false;
	}
	struct conn *sc;
	if (mh->type == TUN_DATA && tunnel_lookup_stream(x->s, t, mh->stream, &sc)) {
		t->dst_idx = sc->idx;
		t->dst_gen = sc->gen;
	}
	/* DATA for a stream we no longer have (reset or closed) is dropped on purpose: the
	 * peer learns from the RST we sent. */
	return true;
}

static bool rx_data(void *ctx, const uint8_t *p, size_t n, const struct ws_frame *fr,
                    uint64_t off)
{
	struct rx_ctx *x = ctx;
	deliver(x->s, x->c, p, n, fr, off);
	return !x->c->closing;
}

static bool rx_ctl(void *ctx, const uint8_t *m, size_t len)
{
	struct rx_ctx *x = ctx;
	struct tunnel *t = conn_tun(x->c);
	struct tun_msg msg;
	const char *why = NULL;
	if (rx_closed(t))
		return true;
	if (tun_decode(m, len, &msg, &why) != TUN_OK) {
		log_warn("malformed tunnel message", "client_id=%s type=%s why=%s",
		         log_q(t->client_id), tun_type_name(t->rx.mh.type),
		         log_q(why ? why : "?"));
		tunnel_protocol_error(x->s, x->c, why ? why : "malformed message");
		return false;
	}
	handle_msg(x->s, x->c, &msg);
	return !x->c->closing;
}

static bool rx_ws_control(void *ctx, uint8_t opcode, uint8_t *p, size_t len)
{
	struct rx_ctx *x = ctx;
	struct shard *s = x->s;
	struct conn *c = x->c;
	struct tunnel *t = conn_tun(c);
	if (opcode == WS_OP_PING) {
		send_ws_control(s, c, WS_OP_PONG, p, len);
		return true;
	}
	if (opcode != WS_OP_CLOSE)
		return true;
	uint16_t code;
	const uint8_t *reason;
	size_t rlen;
	enum ws_close cc;
	if (!ws_parse_close(p, len, &code, &reason, &rlen, &cc)) {
		tunnel_fail(s, c, cc, "bad close frame");
		return false;
	}
	if (rx_closed(t)) {
		conn_close(s, c); /* the answer to our close */
		return false;
	}
	notify_closed(s, c);
	close_streams(s, c, TUN_RST_SHUTDOWN);
	uint8_t out[2];
	size_t ol = ws_close_payload(
	        out, code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : (enum ws_close)code, NULL);
	log_info("tunnel closed by peer", "client_id=%s remote=%s code=%u",
	         log_q(t->client_id[0] ? t->client_id : "-"), t->remote, code);
	send_ws_control(s, c, WS_OP_CLOSE, out, ol);
	t->state = TS_CLOSING;
	return true;
}

static void rx_error(void *ctx, enum ws_close code, const char *why)
{
	struct rx_ctx *x = ctx;
	/* A tunnel-level protocol error is announced with GOAWAY(PROTOCOL) first (§8). */
	if (code == WS_CLOSE_PROTOCOL && !rx_closed(conn_tun(x->c)))
		tunnel_protocol_error(x->s, x->c, why);
	else
		tunnel_fail(x->s, x->c, code, why);
}

static const struct reasm_ops rx_ops = {
        .on_msg_start = rx_msg_start,
        .on_data = rx_data,
        .on_ctl = rx_ctl,
        .on_ws_control = rx_ws_control,
        .on_error = rx_error,
};

void tunnel_input(struct shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	struct rx_ctx x = {.s = s, .c = c};
	if (!c->closing)
		reasm_feed(&conn_tun(c)->rx, p, n, &rx_ops, &x);
}

void tunnel_rx_skip(struct shard *s, struct conn *c, size_t n)
{
	struct rx_ctx x = {.s = s, .c = c};
	reasm_skip(&conn_tun(c)->rx, n, &rx_ops, &x);
}

void on_tun_recv(struct shard *s, struct conn *c, struct io_uring_cqe *cqe)
{
	struct tunnel *t = conn_tun(c);
	int res = cqe->res;
	if (!(cqe->flags & IORING_CQE_F_MORE))
		t->recv_armed = false;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		s->rings[TUN_RING_BGID].out++;
		if (res > 0 && !c->closing) {
			rx_count(s, t, (size_t)res);
			xprt_input(s, c, bufring_addr(&s->rings[TUN_RING_BGID], bid),
			           (size_t)res);
			tunnel_rx_adapt(s, c);
		}
		bufring_put(&s->rings[TUN_RING_BGID], bid);
	}
	if (c->closing)
		return;
	if (res == 0) {
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "connection closed by peer");
		return;
	}
	if (res < 0) {
		if (res == -ENOBUFS) {
			STAT_ADD(s, bufring_empty, 1);
			bufring_starved(&s->rings[TUN_RING_BGID]);
		} else if (res != -ECANCELED) {
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, strerror(-res));
			return;
		}
	}
	if (t->recv_armed)
		return;
	if (t->rx_inline)
		tunnel_rx_inline(s, c);
	else
		tunnel_arm_recv(s, c);
}
