/* engine/mux/stream.c — streams: link to their tunnel, reset, half-close, credit given
 * back. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/mux/credit.h"
#include "engine/mux/internal.h"

struct conn *stream_tunnel(struct shard *s, struct conn *sc)
{
	struct conn *tc = conn_get(s, conn_st(sc)->tun_idx, conn_st(sc)->tun_gen);
	if (!tc || tc->kind != CK_TUNNEL || tc->closing)
		return NULL;
	return tc;
}

/* ---- streams ---------------------------------------------------------------------- */

void stream_link(struct shard *s, struct conn *tc, struct conn *sc)
{
	struct tunnel *t = conn_tun(tc);
	struct stream *st = conn_st(sc);
	st->tun_idx = tc->idx;
	st->tun_gen = tc->gen;
	st->prev = NO_SLOT;
	st->next = t->st_head;
	if (t->st_head != NO_SLOT)
		conn_st(&s->conns[t->st_head])->prev = sc->idx;
	t->st_head = sc->idx;
	t->nstreams++;
	st->credit = t->peer_window;
	st->outstanding = t->my_window; /* what the peer may send before our first WINDOW */
	st->wait_next = NO_SLOT;
	STAT_ADD(s, streams_total, 1);
	STAT_ADD(s, streams_active, 1);
	STAT_ADD(s, port[st->port_slot].conns_total, 1);
	STAT_ADD(s, port[st->port_slot].conns_active, 1);
	/* auto moves a stream to splice when it reads bulk (stream_io.c). */
	if (cfg_wants_splice(s->cfg->data_path) && stream_may_splice(t))
		stream_use_splice(s, st);
}

bool stream_may_splice(const struct tunnel *t)
{
	/* Only bytes that need no transformation are spliced: a transport that can carry
	 * them as they are, and frames from a client only with the all-zero masking key. */
	return t->can_splice && (t->role == WS_ROLE_SERVER || t->zero_mask);
}

void stream_unlink(struct shard *s, struct conn *sc)
{
	struct stream *st = conn_st(sc);
	struct conn *tc = conn_get(s, st->tun_idx, st->tun_gen);
	if (tc && tc->kind == CK_TUNNEL && conn_tun(tc)) {
		struct tunnel *t = conn_tun(tc);
		if (st->prev != NO_SLOT)
			conn_st(&s->conns[st->prev])->next = st->next;
		else if (t->st_head == sc->idx)
			t->st_head = st->next;
		if (st->next != NO_SLOT)
			conn_st(&s->conns[st->next])->prev = st->prev;
		t->nstreams--;
		idmap_del(&t->ids, st->id);
	}
	st->prev = st->next = NO_SLOT;
	st->tun_gen = (uint16_t)(st->tun_gen + 0x8000);
}

void stream_release(struct shard *s, struct conn *sc)
{
	struct stream *st = conn_st(sc);
	if (st->on_release)
		st->on_release(s, sc);
	stream_unlink(s, sc);
	if (st->waiting_bufs) {
		/* Remove from the wait list (rare: linear walk). */
		uint32_t *pp = &MS(s)->wait_head, prev = NO_SLOT;
		while (*pp != NO_SLOT && *pp != sc->idx) {
			prev = *pp;
			pp = &conn_st(&s->conns[*pp])->wait_next;
		}
		if (*pp == sc->idx) {
			*pp = st->wait_next;
			if (MS(s)->wait_tail == sc->idx)
				MS(s)->wait_tail = prev;
		}
		st->waiting_bufs = false;
	}
	free(st->down.buf);
	st->down.buf = NULL;
	free(st->down_old);
	st->down_old = NULL;
	free(st->pre);
	st->pre = NULL;
	spipe_put(st->pipe);
	st->pipe = NULL;
	spipe_put(st->dpipe);
	st->dpipe = NULL;
	STAT_SUB(s, streams_active, 1);
	STAT_SUB(s, port[st->port_slot].conns_active, 1);
}

void stream_reset(struct shard *s, struct conn *sc, uint16_t reason, bool tell_peer)
{
	if (sc->closing)
		return;
	if (tell_peer) {
		struct conn *tc = stream_tunnel(s, sc);
		if (tc)
			tunnel_send_rst(s, tc, conn_st(sc)->id, reason,
			                tun_rst_reason_name(reason));
	}
	stream_unlink(s, sc);
	sc->rst = true;
	conn_close(s, sc);
}

void stream_check_done(struct shard *s, struct conn *sc)
{
	struct stream *st = conn_st(sc);
	if (sc->closing)
		return;
	if (st->peer_fin && dbuf_held(&st->down) == 0 && !st->sending && !st->shut_wr &&
	    !st->connecting && !st->pre && !st->held && sc->fd >= 0) {
		shutdown(sc->fd, SHUT_WR);
		st->shut_wr = true;
	}
	if (st->eof && st->shut_wr && st->queued == 0) {
		stream_unlink(s, sc);
		conn_close(s, sc);
	}
}

/* Socket EOF on the up side: FIN to the peer. */
void stream_eof(struct shard *s, struct conn *sc, struct conn *tc)
{
	struct stream *st = conn_st(sc);
	uint8_t m[TUN_HEADER_LEN];
	size_t len = tun_encode_fin(m, sizeof(m), st->id);
	tunnel_send_msg(s, tc, m, len);
	st->eof = true;
	stream_check_done(s, sc);
}

/* The next free id of this side's parity (odd: server, even: client), wrapping before
 * 2^31 and skipping ids still in use. */
static uint32_t next_stream_id(struct tunnel *t)
{
	uint32_t id, slot;
	do {
		id = t->next_id;
		t->next_id += 2;
		if (t->next_id >= 0x7ffffffe)
			t->next_id = t->role == WS_ROLE_SERVER ? 1 : 2;
	} while (idmap_get(&t->ids, id, &slot));
	return id;
}

void stream_grant(struct shard *s, struct conn *tc, struct stream *st)
{
	if (st->peer_fin || st->unacked == 0)
		return;
	struct tunnel *t = conn_tun(tc);
	uint32_t k = credit_grant(credit_target(t->my_window, t->nstreams), st->outstanding,
	                          dbuf_held(&st->down), st->unacked);
	if (k)
		send_window(s, tc, st, k);
}

void tunnel_send_rst(struct shard *s, struct conn *c, uint32_t id, uint16_t reason,
                     const char *text)
{
	uint8_t m[TUN_HEADER_LEN + 3 + TUN_MAX_STR];
	size_t len = tun_encode_rst(m, sizeof(m), id, reason, text);
	if (len && tunnel_send_msg(s, c, m, len) == 0)
		STAT_ADD(s, rst_sent[reason < STATS_RST_REASONS ? reason : 0], 1);
}

struct conn *stream_new(struct shard *s, struct conn *tc, int fd, uint32_t id, uint16_t port,
                        uint16_t port_slot)
{
	struct tunnel *t = conn_tun(tc);
	struct conn *sc = conn_alloc(s, CK_STREAM, fd);
	if (!sc) {
		if (fd >= 0)
			fd_reset_close(fd);
		return NULL;
	}
	struct stream *st = conn_st(sc);
	st->id = id ? id : next_stream_id(t);
	st->port = port;
	st->port_slot = port_slot;
	if (idmap_put(&t->ids, st->id, sc->idx) != 0) {
		sc->rst = true;
		conn_close(s, sc);
		return NULL;
	}
	stream_link(s, tc, sc);
	return sc;
}

void stream_start(struct shard *s, struct conn *sc)
{
	stream_maybe_send(s, sc);
	stream_maybe_recv(s, sc);
}

void stream_connected(struct shard *s, struct conn *sc)
{
	conn_st(sc)->connecting = false;
	stream_maybe_send(s, sc);
	stream_maybe_recv(s, sc);
	stream_check_done(s, sc);
}

void queue_data(struct shard *s, struct conn *tc, struct conn *sc, struct outitem *it,
                uint8_t *payload, size_t n)
{
	struct tunnel *t = conn_tun(tc);
	struct stream *st = conn_st(sc);
	uint8_t key[4];
	size_t hl =
	        frame_header(s, t, it->inl, WS_OP_BINARY, (uint64_t)n + TUN_HEADER_LEN, key);
	tun_encode_data_header(it->inl + hl, TUN_HEADER_LEN, st->id);
	if (payload && t->role == WS_ROLE_CLIENT && !t->zero_mask) {
		ws_mask(it->inl + hl, TUN_HEADER_LEN, key, 0);
		ws_mask(payload, n, key, TUN_HEADER_LEN);
	}
	it->inl_len = (uint8_t)(hl + TUN_HEADER_LEN);
	it->data = payload;
	it->data_len = (uint32_t)n;
	st->credit -= (uint32_t)n < st->credit ? (uint32_t)n : st->credit;
	st->bytes_up += (uint64_t)n;
	STAT_ADD(s, bytes_up, (uint64_t)n);
	STAT_ADD(s, port[st->port_slot].bytes_received, (uint64_t)n);
	queue_item(s, tc, it);
}

int stream_send_copy(struct shard *s, struct conn *tc, struct conn *sc, const uint8_t *p,
                     size_t n)
{
	struct outitem *it = item_get(s);
	uint8_t *copy = it ? malloc(n) : NULL;
	if (!copy) {
		if (it)
			item_put(s, it);
		return -ENOMEM;
	}
	memcpy(copy, p, n);
	it->heap = copy;
	queue_data(s, tc, sc, it, copy, n);
	return 0;
}
