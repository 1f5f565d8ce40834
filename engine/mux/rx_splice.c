/* engine/mux/rx_splice.c — the splice path's receive side: inline reads on readiness
 * (always with --data-path splice; with auto while large frames arrive). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/mux/internal.h"

/* ---- splice path, receive side ------------------------------------------------------
 * A tunnel with rx_inline has no recv in flight: on readiness (OP_TUN_POLL) it reads
 * inline, so it always knows where the next byte goes. Frame and message headers (and
 * small payloads) are read into a buffer and parsed as above; a DATA payload of at least
 * RX_SPLICE_MIN bytes whose frame needs no unmasking goes by splice(2) from the socket
 * into its stream's pipe and on to the stream's socket, never copied into ringlet. */

#define RX_SPLICE_MIN 4096
#define RX_BUDGET (1024 * 1024) /* bytes read per readiness event before polling again */

/* Does the current frame's payload need no transformation? */
static bool frame_plain(const struct tunnel *t)
{
	const struct ws_frame *fr = &t->rx.fr;
	return !fr->masked || (fr->mask[0] | fr->mask[1] | fr->mask[2] | fr->mask[3]) == 0;
}

/* The stream the next payload bytes may be spliced into (and how many), or NULL when
 * they go through the buffer: headers, control messages, small or masked payloads, a
 * stream with bytes still in its pipe, dialling, or gone. */
static struct conn *rx_splice_target(struct shard *s, struct conn *c, uint32_t *len)
{
	struct tunnel *t = conn_tun(c);
	if (!reasm_in_data(&t->rx) || t->rx.fr_left < RX_SPLICE_MIN || !frame_plain(t) ||
	    t->dst_idx == NO_SLOT)
		return NULL;
	struct conn *sc = conn_get(s, t->dst_idx, t->dst_gen);
	if (!sc || sc->kind != CK_STREAM || sc->closing || sc->fd < 0)
		return NULL;
	struct stream *st = conn_st(sc);
	/* Bytes beyond the credit are for deliver() to refuse. */
	if (!dbuf_pipe_open(&st->down) || st->connecting || st->pre ||
	    t->rx.fr_left > st->outstanding)
		return NULL;
	if (!st->dpipe && !(st->dpipe = spipe_new(s)))
		return NULL;
	*len = (uint32_t)t->rx.fr_left;
	return sc;
}

/* How much to read into the buffer: right after a large plain DATA frame, only the next
 * frame's headers, assuming it is large too (64-bit length, a mask when we are the server),
 * so that none of its payload is read; otherwise as much as is there. */
static size_t rx_read_len(const struct tunnel *t, size_t cap)
{
	if (t->rx.state == RX_HEADER && t->rx.hlen == 0 && t->rx.fr.opcode < WS_OP_CLOSE &&
	    t->rx.fr.payload_len >= RX_SPLICE_MIN && frame_plain(t))
		return 2 + 8 + (t->role == WS_ROLE_SERVER ? 4 : 0) + TUN_HEADER_LEN;
	return cap;
}

/* ---- auto: inline reads while large frames arrive ------------------------------------
 * With --data-path auto a lane reads with its multishot recv (cheapest per small
 * message) until a large plain DATA frame arrives (RX_ADAPT_MIN or more): then the recv is
 * cancelled, and from its last completion on the lane reads inline as above, so the next
 * large frames' payloads are spliced. It goes back to the multishot recv as soon as what
 * comes next is not such a frame (a small message, a control frame, a stream that cannot
 * take a splice now) and the socket is empty, or a whole budget was read without a
 * splice. */

#define RX_ADAPT_MIN (128u * 1024) /* above a 64 KiB answer: those stay on the ring */

void tunnel_rx_adapt(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	const struct ws_frame *fr = &t->rx.fr;
	uint32_t len;
	if (t->rx_inline || c->closing || !cfg_adaptive(s->cfg->data_path) || !t->can_splice)
		return;
	if (fr->opcode >= WS_OP_CLOSE || fr->payload_len < RX_ADAPT_MIN || !frame_plain(t))
		return;
	/* Inside the frame: only when its stream can take the rest by splice now. */
	if (reasm_in_data(&t->rx) && !rx_splice_target(s, c, &len))
		return;
	t->rx_inline = true;
	STAT_ADD(s, splice_switches, 1);
	if (t->recv_armed) {
		struct tok rt = {.op = OP_TUN_RECV, .gen = c->gen, .idx = c->idx};
		struct io_uring_sqe *sqe = shard_sqe(s, c, OP_CANCEL, 0);
		io_uring_prep_cancel64(sqe, tok_encode(rt), 0);
	}
}

/* auto: is the lane past its large frames (the next bytes are neither the headers right
 * after one nor payload that can be spliced)? Then back to the multishot recv. */
static bool rx_adapt_done(struct shard *s, struct conn *c)
{
	uint32_t len;
	return cfg_adaptive(s->cfg->data_path) &&
	       rx_read_len(conn_tun(c), SHARD_SCRATCH) == SHARD_SCRATCH &&
	       !rx_splice_target(s, c, &len);
}

/* n bytes came from the tunnel's socket (read, or spliced): a sign of life, and counted. */
void rx_count(struct shard *s, struct tunnel *t, size_t n)
{
	t->last_rx_ms = s->now_ms;
	t->bytes_in += (uint64_t)n;
	if (t->ctr)
		__atomic_fetch_add(&t->ctr->bytes_in, (uint64_t)n, __ATOMIC_RELAXED);
}

/* n payload bytes went from the tunnel's socket into sc's pipe. */
static void rx_spliced(struct shard *s, struct conn *c, struct conn *sc, size_t n)
{
	struct tunnel *t = conn_tun(c);
	struct stream *st = conn_st(sc);
	rx_count(s, t, n);
	dbuf_piped_in(&st->down, (uint32_t)n);
	st->outstanding -= (uint32_t)n;
	STAT_ADD(s, bytes_spliced_down, (uint64_t)n);
	stream_maybe_send(s, sc);
	if (!c->closing)
		tunnel_rx_skip(s, c, n);
}

void tunnel_rx_inline(struct shard *s, struct conn *c)
{
	uint8_t *buf = s->scratch; /* a plain tunnel: no TLS read uses it meanwhile */
	struct tunnel *t = conn_tun(c);
	size_t budget = RX_BUDGET;
	bool copy_next = false; /* splice(2) stopped at TCP urgent data: recv() passes it */
	bool spliced = false;
	while (!c->closing && budget) {
		uint32_t len;
		ssize_t n;
		struct conn *sc = copy_next ? NULL : rx_splice_target(s, c, &len);
		copy_next = false;
		if (sc) {
			n = t->x.ops->splice_in(&t->x, c->fd, conn_st(sc)->dpipe->fd[1], len);
			if (n > 0) {
				rx_spliced(s, c, sc, (size_t)n);
				spliced = true;
				budget -= (size_t)n < budget ? (size_t)n : budget;
				continue;
			}
			if ((n == 0 || (n == -1 && errno == EAGAIN)) && at_urgent_mark(c->fd)) {
				STAT_ADD(s, splice_fallbacks, 1);
				copy_next = true;
				continue;
			}
		} else {
			n = recv(c->fd, buf, rx_read_len(t, SHARD_SCRATCH), MSG_DONTWAIT);
			if (n > 0) {
				rx_count(s, t, (size_t)n);
				tunnel_input(s, c, buf, (size_t)n);
				budget -= (size_t)n < budget ? (size_t)n : budget;
				continue;
			}
		}
		if (n == 0) {
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "connection closed by peer");
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) /* an empty pipe, so an empty socket */
			break;
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, strerror(errno));
		return;
	}
	if (c->closing || t->rx_poll_armed)
		return;
	/* auto: past the large frames, and the socket empty or a whole budget read without
	 * a splice: back to the multishot recv. Small messages between large frames (answers
	 * beside a download) are read inline, so the lane does not switch at each of them. */
	bool emptied = budget > 0; /* the loop ended on EAGAIN, not on the budget */
	if (rx_adapt_done(s, c) && (emptied || !spliced)) {
		t->rx_inline = false;
		tunnel_arm_recv(s, c);
		return;
	}
	struct io_uring_sqe *sqe = shard_sqe(s, c, OP_TUN_POLL, 0);
	io_uring_prep_poll_add(sqe, c->fd, POLLIN | POLLRDHUP);
	t->rx_poll_armed = true;
}
