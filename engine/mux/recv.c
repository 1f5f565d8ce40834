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
#include "engine/tls.h"

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

/* Plaintext from the socket (or from TLS): the client's upgrade response, or frames. */
static void plain_input(struct shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	struct tunnel *t = conn_tun(c);
	if (t->state == TS_UPGRADING) {
		if (t->cbs->on_head_bytes)
			t->cbs->on_head_bytes(s, c, p, n);
	} else
		tunnel_input(s, c, p, n);
}

void tls_read_all(struct shard *s, struct conn *c)
{
	/* The scratch buffer is free: what reads it (frames of a TLS tunnel) never reads a
	 * tunnel socket inline. */
	uint8_t *plain = s->scratch;
	struct tunnel *t = conn_tun(c);
	t->in_tls_read = true;
	while (!c->closing) {
		int r = tls_read(t->tls, plain, SHARD_SCRATCH);
		if (r > 0) {
			plain_input(s, c, plain, (size_t)r);
			continue;
		}
		if (r == -2)
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "the peer closed the TLS session");
		else if (r < 0)
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, tls_error(t->tls));
		break;
	}
	if (c->kind == CK_TUNNEL && c->u.ctx)
		t->in_tls_read = false;
}

static void tls_input(struct shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	struct tunnel *t = conn_tun(c);
	if (tls_feed(t->tls, p, n)) {
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, tls_error(t->tls));
		return;
	}
	if (!tls_done(t->tls)) {
		int r = tls_handshake(t->tls);
		conn_defer(s, c); /* handshake records to send, or an alert */
		if (r < 0) {
			STAT_ADD(s, hs_fail[HS_TLS], 1);
			if (t->cbs->on_xprt_failed)
				t->cbs->on_xprt_failed(s, c, tls_error(t->tls));
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, tls_error(t->tls));
			return;
		}
		if (r == 0)
			return;
		if (t->cbs->on_xprt_ready)
			t->cbs->on_xprt_ready(s, c);
		if (c->closing)
			return;
	}
	tls_read_all(s, c);
}

/* ---- receive ---------------------------------------------------------------------- */

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

/* DATA payload bytes for the current message's stream. */
static void deliver(struct shard *s, struct conn *c, const uint8_t *p, size_t n,
                    uint64_t frame_off)
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
	uint32_t cap = t->my_window;
	if (credit_overrun(st->outstanding, n)) {
		log_warn("peer exceeded the stream's credit: resetting the stream",
		         "client_id=%s stream=%u", log_q(t->client_id), st->id);
		stream_reset(s, sc, TUN_RST_PROTOCOL, true);
		t->dst_idx = NO_SLOT;
		return;
	}
	if (!st->rbuf) {
		st->rbuf = malloc(cap);
		if (!st->rbuf) {
			stream_reset(s, sc, TUN_RST_INTERNAL, true);
			t->dst_idx = NO_SLOT;
			return;
		}
		st->rhead = 0;
	}
	st->outstanding -= (uint32_t)n;
	while (n) {
		uint32_t tail = (st->rhead + st->rlen) % cap;
		uint32_t room = tail >= st->rhead ? cap - tail : st->rhead - tail;
		if (st->rlen == cap)
			room = 0;
		size_t k = n < room ? n : room;
		if (t->fr.masked)
			ws_mask_copy(st->rbuf + tail, p, k, t->fr.mask, frame_off);
		else
			memcpy(st->rbuf + tail, p, k);
		st->rlen += (uint32_t)k;
		p += k;
		n -= k;
		frame_off += k;
	}
	stream_maybe_send(s, sc);
}

static bool payload_bytes(struct shard *s, struct conn *c, const uint8_t *p, size_t k)
{
	struct tunnel *t = conn_tun(c);
	uint64_t off = t->fr_off;
	while (k) {
		if (t->msg_pos < TUN_HEADER_LEN) {
			size_t take = TUN_HEADER_LEN - t->msg_pos;
			if (take > k)
				take = k;
			memcpy(t->msgh + t->msg_pos, p, take);
			if (t->fr.masked)
				ws_mask(t->msgh + t->msg_pos, take, t->fr.mask, off);
			t->msg_pos += (uint32_t)take;
			p += take;
			k -= take;
			off += take;
			if (t->msg_pos < TUN_HEADER_LEN)
				break;
			if (tun_decode_header(t->msgh, TUN_HEADER_LEN, &t->mh) != TUN_OK) {
				tunnel_fail(s, c, WS_CLOSE_PROTOCOL,
				            "bad tunnel message header");
				return false;
			}
			t->dst_idx = NO_SLOT;
			if (t->mh.type == TUN_DATA) {
				struct conn *sc;
				if (tunnel_lookup_stream(s, t, t->mh.stream, &sc)) {
					t->dst_idx = sc->idx;
					t->dst_gen = sc->gen;
				}
			} else {
				memcpy(t->ctl, t->msgh, TUN_HEADER_LEN);
				t->ctl_len = TUN_HEADER_LEN;
			}
			continue;
		}
		if (t->mh.type == TUN_DATA) {
			deliver(s, c, p, k, off);
			t->msg_pos += (uint32_t)k;
			return !c->closing;
		}
		if (t->ctl_len + k > sizeof(t->ctl)) {
			tunnel_fail(s, c, WS_CLOSE_TOO_BIG, "control message too large");
			return false;
		}
		memcpy(t->ctl + t->ctl_len, p, k);
		if (t->fr.masked)
			ws_mask(t->ctl + t->ctl_len, k, t->fr.mask, off);
		t->ctl_len += (uint32_t)k;
		t->msg_pos += (uint32_t)k;
		break;
	}
	return true;
}

static void message_end(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	if (t->msg_pos < TUN_HEADER_LEN) {
		tunnel_fail(s, c, WS_CLOSE_PROTOCOL, "tunnel message shorter than its header");
		return;
	}
	if (t->mh.type != TUN_DATA) {
		struct tun_msg m;
		const char *why = NULL;
		if (tun_decode(t->ctl, t->ctl_len, &m, &why) != TUN_OK) {
			log_warn("malformed tunnel message", "client_id=%s type=%s why=%s",
			         log_q(t->client_id), tun_type_name(t->mh.type),
			         log_q(why ? why : "?"));
			tunnel_fail(s, c, WS_CLOSE_PROTOCOL, why ? why : "malformed message");
			return;
		}
		handle_msg(s, c, &m);
	} else if (t->dst_idx == NO_SLOT && t->mh.stream) {
		/* DATA for a stream we no longer have (reset or closed): dropped on purpose,
		 * the peer learns from the RST we sent. */
	}
	t->msg_pos = 0;
	t->ctl_len = 0;
	t->dst_idx = NO_SLOT;
}

static void ws_control_end(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	uint8_t *p = t->wsctl;
	size_t len = t->wsctl_len;
	if (t->fr.masked)
		ws_mask(p, len, t->fr.mask, 0);
	switch (t->fr.opcode) {
	case WS_OP_PING:
		send_ws_control(s, c, WS_OP_PONG, p, len);
		break;
	case WS_OP_PONG:
		break;
	case WS_OP_CLOSE: {
		uint16_t code;
		const uint8_t *reason;
		size_t rlen;
		enum ws_close cc;
		if (!ws_parse_close(p, len, &code, &reason, &rlen, &cc)) {
			tunnel_fail(s, c, cc, "bad close frame");
			return;
		}
		char why[64];
		snprintf(why, sizeof(why), "peer closed (%u)", code);
		if (t->state != TS_CLOSING) {
			notify_closed(s, c);
			close_streams(s, c, TUN_RST_SHUTDOWN);
			uint8_t out[2];
			size_t ol = ws_close_payload(out,
			                             code == WS_CLOSE_NO_STATUS
			                                     ? WS_CLOSE_NORMAL
			                                     : (enum ws_close)code,
			                             NULL);
			log_info("tunnel closed by peer", "client_id=%s remote=%s code=%u",
			         log_q(t->client_id[0] ? t->client_id : "-"), t->remote, code);
			send_ws_control(s, c, WS_OP_CLOSE, out, ol);
			t->state = TS_CLOSING;
		} else {
			conn_close(s, c);
		}
		break;
	}
	}
	t->wsctl_len = 0;
}

/* The current frame's payload is all read (or spliced). */
void frame_end(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	if (t->rx_state == RX_CONTROL) {
		t->rx_state = RX_HEADER;
		ws_control_end(s, c);
	} else {
		t->rx_state = RX_HEADER;
		if (t->fr_msg_end)
			message_end(s, c);
	}
}

void tunnel_input(struct shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	struct tunnel *t = conn_tun(c);
	while (n && !c->closing) {
		if (t->rx_state == RX_HEADER) {
			const uint8_t *h;
			size_t avail;
			size_t add = 0;
			if (t->hlen == 0 && n >= WS_MAX_HEADER) {
				h = p;
				avail = n;
			} else {
				add = WS_MAX_HEADER - t->hlen;
				if (add > n)
					add = n;
				memcpy(t->hbuf + t->hlen, p, add);
				h = t->hbuf;
				avail = t->hlen + add;
			}
			enum ws_close cc = WS_CLOSE_NONE;
			enum ws_status st = ws_decoder_next(&t->dec, h, avail, &t->fr,
			                                    &t->fr_msg_op, &t->fr_msg_end, &cc);
			if (st == WS_ERROR) {
				tunnel_fail(s, c, cc, "bad WebSocket frame");
				return;
			}
			if (st == WS_NEED_MORE) {
				if (h == p) { /* cannot happen: 14 bytes always decide */
					tunnel_fail(s, c, WS_CLOSE_PROTOCOL, "frame header");
					return;
				}
				t->hlen = (uint8_t)avail;
				p += add;
				n -= add;
				continue;
			}
			size_t used = t->fr.header_len - t->hlen; /* bytes of p in the header */
			t->hlen = 0;
			p += used;
			n -= used;
			t->fr_left = t->fr.payload_len;
			t->fr_off = 0;
			if (t->fr.opcode >= WS_OP_CLOSE) {
				t->rx_state = RX_CONTROL;
				t->wsctl_len = 0;
			} else if (t->fr_msg_op == WS_OP_TEXT) {
				tunnel_fail(s, c, WS_CLOSE_UNSUPPORTED,
				            "text messages are not used");
				return;
			} else {
				t->rx_state = RX_PAYLOAD;
			}
			if (t->fr_left == 0)
				frame_end(s, c);
			continue;
		}
		size_t k = n < t->fr_left ? n : (size_t)t->fr_left;
		if (t->rx_state == RX_CONTROL) {
			memcpy(t->wsctl + t->wsctl_len, p, k);
			t->wsctl_len = (uint8_t)(t->wsctl_len + k);
		} else if (!payload_bytes(s, c, p, k)) {
			return;
		}
		p += k;
		n -= k;
		t->fr_left -= k;
		t->fr_off += k;
		if (t->fr_left == 0)
			frame_end(s, c);
	}
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
			if (t->tls)
				tls_input(s, c, bufring_addr(&s->rings[TUN_RING_BGID], bid),
				          (size_t)res);
			else
				plain_input(s, c, bufring_addr(&s->rings[TUN_RING_BGID], bid),
				            (size_t)res);
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
