/* engine/mux/stream_io.c — a stream's socket I/O: reads into the tunnel (copy or
 * splice), writes from its buffer and pipe, and the wait list for stream buffers. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/mux/internal.h"

/* Stream-ring buffers are free: let waiting streams read again, in the order they began
 * to wait, until n of them have a recv armed (each may take one buffer) or none waits. A
 * woken stream that cannot read now (no credit, a full queue) does not use up a wake-up. */
static void wake_waiters(struct shard *s, uint32_t n)
{
	while (n && MS(s)->wait_head != NO_SLOT) {
		struct conn *w = &s->conns[MS(s)->wait_head];
		MS(s)->wait_head = conn_st(w)->wait_next;
		if (MS(s)->wait_head == NO_SLOT)
			MS(s)->wait_tail = NO_SLOT;
		if (w->kind != CK_STREAM)
			continue;
		conn_st(w)->waiting_bufs = false;
		stream_maybe_recv(s, w);
		if (conn_st(w)->recv_armed)
			n--;
	}
}

void stream_wake_waiters(struct shard *s)
{
	const struct bufring *b = &s->rings[STREAM_RING_BGID];
	if (bufring_in_kernel(b))
		wake_waiters(s, bufring_in_kernel(b));
}

void stream_maybe_recv(struct shard *s, struct conn *sc)
{
	struct stream *st = conn_st(sc);
	if (sc->closing || st->recv_armed || st->eof || st->connecting || st->waiting_bufs ||
	    st->held || sc->fd < 0)
		return;
	if (st->credit == 0 || st->queued >= STREAM_QUEUE_LIMIT)
		return;
	struct conn *tc = stream_tunnel(s, sc);
	if (!tc)
		return;
	if (st->splice) {
		if (st->poll_armed)
			return;
		struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_STREAM_POLL, 0);
		io_uring_prep_poll_add(sqe, sc->fd, POLLIN | POLLRDHUP);
		st->poll_armed = true;
		return;
	}
	uint32_t cap = s->rings[STREAM_RING_BGID].bufsz;
	if (cap > conn_tun(tc)->peer_max_frame)
		cap = conn_tun(tc)->peer_max_frame;
	struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_STREAM_RECV, 0);
	uint32_t one = st->credit < cap ? st->credit : cap; /* what a single recv may read */
	if (uring_feat.recv_mshot_limit) {
		/* One recv for many reads (a request, then the next after its answer). It
		 * ends after the read that reaches `total`, and each read takes at most
		 * mcap, so it never reads past the credit, nor much past what the queue may
		 * take (STREAM_QUEUE_LIMIT, as one read at a time allows); then it is armed
		 * again here. mcap follows the reads (4 x the last, at least 64 KiB, at most
		 * what a single recv would read): small reads leave room for many more. */
		uint64_t want = 4ull * st->recv_last;
		uint32_t mcap = want < 65536 ? 65536 : want < one ? (uint32_t)want : one;
		if (mcap > one)
			mcap = one;
		uint32_t total = st->credit - mcap + 1;
		if (total > STREAM_QUEUE_LIMIT)
			total = STREAM_QUEUE_LIMIT;
		io_uring_prep_recv_multishot(sqe, sc->fd, NULL, mcap, 0);
		sqe->file_index = total; /* optlen in newer headers (IORING_RECV_MSHOT_LIM) */
	} else {
		io_uring_prep_recv(sqe, sc->fd, NULL, one, 0);
	}
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = STREAM_RING_BGID;
	st->recv_armed = true;
}

/* Move a stream's up side to splice(2); it stays on copy if no pipe can be had. */
void stream_use_splice(struct shard *s, struct stream *st)
{
	if (st->splice || st->no_pipe)
		return;
	if (!st->pipe)
		st->pipe = spipe_new(s);
	st->splice = st->pipe != NULL;
	st->no_pipe = !st->splice;
	st->small = 0;
}

/* auto (cfg_adaptive): a read of at least UP_SPLICE_READ bytes means bulk, and the stream
 * moves to splice(2); UP_RING_READS splice reads in a row under UP_SMALL_READ bytes move
 * it back to the ring (requests and answers). A 64 KiB answer is read in reads of at most
 * 64 KiB (each multishot read takes at most 4 x the last), so it stays on the ring.
 * Bulk beside small messages on the same lane (another stream read two in a row, the
 * last within UP_MIXED_MS) stays on, or goes back to, the ring: spliced payloads leave
 * in sends of their own, and answers queued behind them waited longer (bench scenario
 * 7: loaded p99 about a third higher than with the ring). */
#define UP_SPLICE_READ (128u * 1024)
#define UP_SMALL_READ (16u * 1024)
#define UP_RING_READS 4
#define UP_MIXED_MS 250

/* Did another stream of the lane read a small message lately? */
static bool lane_mixed(const struct shard *s, const struct tunnel *t, const struct conn *sc)
{
	return t->small_ms && t->small_idx != sc->idx && s->now_ms - t->small_ms < UP_MIXED_MS;
}

/* auto: a stream read n bytes on the ring. On a read of bulk it moves to splice: its
 * multishot recv is cancelled, and the recv's last completion arms the poll. */
static void up_adapt_ring(struct shard *s, struct conn *sc, struct conn *tc, uint32_t n)
{
	struct stream *st = conn_st(sc);
	if (!cfg_adaptive(s->cfg->data_path))
		return;
	struct tunnel *t = conn_tun(tc);
	/* A stream of small messages: two small reads in a row (a bulk sender's first read,
	 * a request before a download, is no sign of one). */
	st->small = n < UP_SMALL_READ ? st->small + 1 : 0;
	if (st->small >= 2) {
		t->small_ms = s->now_ms;
		t->small_idx = sc->idx;
	}
	if (n < UP_SPLICE_READ || st->splice || !stream_may_splice(t) || lane_mixed(s, t, sc))
		return;
	stream_use_splice(s, st);
	if (!st->splice)
		return;
	STAT_ADD(s, splice_switches, 1);
	if (st->recv_armed) {
		struct tok rt = {.op = OP_STREAM_RECV, .gen = sc->gen, .idx = sc->idx};
		struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_CANCEL, 0);
		io_uring_prep_cancel64(sqe, tok_encode(rt), 0);
	}
}

/* auto: a stream spliced n bytes; after a run of small reads, or when small messages
 * pass beside it, it goes back to the ring (its pipe is kept for the next bulk). */
static void up_adapt_splice(struct shard *s, struct conn *sc, struct conn *tc, size_t n)
{
	struct stream *st = conn_st(sc);
	if (!cfg_adaptive(s->cfg->data_path))
		return;
	st->small = n < UP_SMALL_READ ? st->small + 1 : 0;
	if (st->small >= UP_RING_READS || lane_mixed(s, conn_tun(tc), sc)) {
		st->splice = false;
		st->small = 0; /* the ring's count of small reads starts again */
	}
}

/* Splice path: the socket is readable; move what the credit allows into the pipe and
 * queue it (header inline, payload in the pipe). */
void on_stream_poll(struct shard *s, struct conn *sc, int res)
{
	struct stream *st = conn_st(sc);
	st->poll_armed = false;
	struct conn *tc = sc->closing ? NULL : stream_tunnel(s, sc);
	if (!tc) {
		if (!sc->closing)
			stream_reset(s, sc, TUN_RST_SHUTDOWN, false);
		return;
	}
	if (res < 0) {
		if (res != -ECANCELED)
			stream_reset(s, sc, TUN_RST_RESET, true);
		return;
	}
	uint32_t room = STREAM_QUEUE_LIMIT > st->queued ? STREAM_QUEUE_LIMIT - st->queued : 0;
	uint32_t len = st->credit < room ? st->credit : room;
	if (len > conn_tun(tc)->peer_max_frame)
		len = conn_tun(tc)->peer_max_frame;
	if (len == 0)
		return; /* WINDOW or a drained queue re-arms the poll */
	ssize_t n = splice(sc->fd, NULL, st->pipe->fd[1], NULL, len,
	                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
	if ((n == 0 || (n == -1 && errno == EAGAIN)) && at_urgent_mark(sc->fd)) {
		/* splice(2) stops at TCP urgent data (0 when more is queued behind it, else
		 * EAGAIN); recv() reads past it: this stream goes on by copy. */
		st->splice = false;
		STAT_ADD(s, splice_fallbacks, 1);
		stream_maybe_recv(s, sc);
		return;
	}
	if (n == 0) {
		stream_eof(s, sc, tc);
		return;
	}
	if (n == -1) {
		if (errno != EAGAIN) {
			stream_reset(s, sc, TUN_RST_RESET, true);
			return;
		}
		/* An empty socket, or a full pipe (it counts slots, not bytes): then the queued
		 * items' completions re-arm the poll. */
		if (!st->queued)
			stream_maybe_recv(s, sc);
		return;
	}
	struct outitem *it = item_get(s);
	if (!it) {
		stream_reset(s, sc, TUN_RST_INTERNAL, true);
		return;
	}
	it->pipe = st->pipe;
	st->pipe->refs++;
	it->st_idx = sc->idx;
	it->st_gen = sc->gen;
	st->queued += (uint32_t)n;
	STAT_ADD(s, bytes_spliced, (uint64_t)n);
	queue_data(s, tc, sc, it, NULL, (size_t)n);
	up_adapt_splice(s, sc, tc, (size_t)n);
	stream_maybe_recv(s, sc);
}

void on_stream_recv(struct shard *s, struct conn *sc, struct io_uring_cqe *cqe)
{
	struct stream *st = conn_st(sc);
	int res = cqe->res;
	st->recv_armed = cqe->flags & IORING_CQE_F_MORE; /* a multishot recv goes on */
	bool have_buf = cqe->flags & IORING_CQE_F_BUFFER;
	uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	if (have_buf)
		s->rings[STREAM_RING_BGID].out++;
	struct conn *tc = sc->closing ? NULL : stream_tunnel(s, sc);
	if (!tc) {
		if (have_buf)
			bufring_put(&s->rings[STREAM_RING_BGID], bid);
		if (!sc->closing)
			stream_reset(s, sc, TUN_RST_SHUTDOWN, false);
		return;
	}
	if (res > 0 && have_buf) {
		st->recv_last = (uint32_t)res;
		struct outitem *it = item_get(s);
		if (!it) {
			bufring_put(&s->rings[STREAM_RING_BGID], bid);
			stream_reset(s, sc, TUN_RST_INTERNAL, true);
			return;
		}
		it->from_ring = true;
		it->bid = bid;
		it->st_idx = sc->idx;
		it->st_gen = sc->gen;
		st->queued += (uint32_t)res;
		queue_data(s, tc, sc, it, bufring_addr(&s->rings[STREAM_RING_BGID], bid),
		           (size_t)res);
		if (!sc->closing)
			up_adapt_ring(s, sc, tc, (uint32_t)res);
		stream_maybe_recv(s, sc);
		return;
	}
	if (have_buf)
		bufring_put(&s->rings[STREAM_RING_BGID], bid);
	if (res == 0) {
		stream_eof(s, sc, tc);
		return;
	}
	if (res == -ENOBUFS) {
		STAT_ADD(s, bufring_empty, 1);
		bufring_starved(&s->rings[STREAM_RING_BGID]);
		st->waiting_bufs = true;
		st->wait_next = NO_SLOT;
		if (MS(s)->wait_tail != NO_SLOT)
			conn_st(&s->conns[MS(s)->wait_tail])->wait_next = sc->idx;
		else
			MS(s)->wait_head = sc->idx;
		MS(s)->wait_tail = sc->idx;
		/* Buffers may have come back since the kernel found the ring empty (earlier
		 * completions of this batch): then nothing else would wake the waiters. */
		stream_wake_waiters(s);
		return;
	}
	if (res == -ECANCELED) {
		/* auto moved the stream to splice (up_adapt_ring): now its poll */
		if (!st->recv_armed)
			stream_maybe_recv(s, sc);
		return;
	}
	stream_reset(s, sc, TUN_RST_RESET, true);
}

/* n stream bytes reached the socket: grant them back to the peer. */
static void stream_sent(struct shard *s, struct conn *sc, struct conn *tc, uint32_t n)
{
	struct stream *st = conn_st(sc);
	st->unacked += n;
	st->bytes_down += n;
	STAT_ADD(s, bytes_down, n);
	STAT_ADD(s, port[st->port_slot].bytes_sent, n);
	stream_grant(s, tc, st);
}

/* Splice path: move the stream's pipe to its socket, inline. Returns true when the pipe
 * is empty, false when the socket is full (POLLOUT armed) or the stream was reset. */
static bool stream_splice_out(struct shard *s, struct conn *sc, struct conn *tc)
{
	struct stream *st = conn_st(sc);
	while (st->down.piped) {
		ssize_t n = splice(st->dpipe->fd[0], NULL, sc->fd, NULL, st->down.piped,
		                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			dbuf_sent_pipe(&st->down, (uint32_t)n);
			stream_sent(s, sc, tc, (uint32_t)n);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_STREAM_POLLOUT, 0);
			io_uring_prep_poll_add(sqe, sc->fd, POLLOUT);
			st->pollout_armed = true;
			return false;
		}
		stream_reset(s, sc, TUN_RST_RESET, true);
		return false;
	}
	return true;
}

void on_stream_pollout(struct shard *s, struct conn *sc, int res)
{
	conn_st(sc)->pollout_armed = false;
	if (sc->closing || res == -ECANCELED)
		return;
	if (res < 0) {
		stream_reset(s, sc, TUN_RST_RESET, true);
		return;
	}
	stream_maybe_send(s, sc);
	stream_check_done(s, sc);
}

void stream_maybe_send(struct shard *s, struct conn *sc)
{
	struct stream *st = conn_st(sc);
	if (sc->closing || st->sending || st->pollout_armed || st->connecting || sc->fd < 0)
		return;
	if (st->held)
		return;
	if (st->pre && st->pre_off < st->pre_len) {
		/* The PROXY header goes to the upstream before any stream byte. */
		st->sending = st->pre_len - st->pre_off;
		st->sending_pre = true;
		struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_STREAM_SEND, 0);
		io_uring_prep_send(sqe, sc->fd, st->pre + st->pre_off, st->sending,
		                   MSG_NOSIGNAL);
		return;
	}
	if (dbuf_held(&st->down) == 0)
		return;
	struct conn *tc = stream_tunnel(s, sc);
	if (!tc)
		return;
	uint8_t *p = NULL;
	uint32_t chunk = 0;
	enum dbuf_next next = dbuf_next(&st->down, &p, &chunk);
	if (next == DBUF_PIPE) {
		if (!stream_splice_out(s, sc, tc))
			return;
		next = dbuf_next(&st->down, &p, &chunk);
	}
	if (next != DBUF_BUF)
		return;
	st->sending = chunk;
	struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_STREAM_SEND, 0);
	io_uring_prep_send(sqe, sc->fd, p, chunk, MSG_NOSIGNAL);
}

/* No send in flight: move a mostly empty buffer into a smaller one (dbuf_shrink_to). */
static void down_shrink(struct stream *st)
{
	uint32_t cap = dbuf_shrink_to(&st->down, st->outstanding);
	uint8_t *to = cap ? malloc(cap) : NULL;
	if (to)
		free(dbuf_move(&st->down, to, cap));
}

void on_stream_send(struct shard *s, struct conn *sc, int res)
{
	struct stream *st = conn_st(sc);
	st->sending = 0;
	free(st->down_old); /* the send that read it is done */
	st->down_old = NULL;
	if (sc->closing)
		return;
	struct conn *tc = stream_tunnel(s, sc);
	if (!tc) {
		stream_reset(s, sc, TUN_RST_SHUTDOWN, false);
		return;
	}
	if (res < 0) {
		stream_reset(s, sc, TUN_RST_RESET, true);
		return;
	}
	if (st->sending_pre) {
		/* Our own header: not stream bytes, no credit to give back. */
		st->sending_pre = false;
		st->pre_off = (uint16_t)(st->pre_off + res);
		if (st->pre_off == st->pre_len) {
			free(st->pre);
			st->pre = NULL;
		}
		stream_maybe_send(s, sc);
		stream_check_done(s, sc);
		return;
	}
	dbuf_sent_buf(&st->down, (uint32_t)res);
	free(dbuf_drop(&st->down)); /* drained: the memory goes back until it backs up again */
	stream_sent(s, sc, tc, (uint32_t)res);
	down_shrink(st);
	stream_maybe_send(s, sc);
	stream_check_done(s, sc);
}

/* ---- the down side's buffer, and forwarding past it ------------------------------------ */

bool stream_can_forward(struct conn *sc)
{
	const struct stream *st = conn_st(sc);
	return dbuf_held(&st->down) == 0 && !st->sending && !st->pollout_armed &&
	       !st->connecting && !st->held && !st->pre && sc->fd >= 0;
}

size_t stream_forward(struct shard *s, struct conn *sc, struct conn *tc, const uint8_t *p,
                      size_t n)
{
	ssize_t k = send(sc->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (k <= 0) {
		/* A full socket (EAGAIN), or an error the send from the buffer will meet and
		 * report: either way the bytes are buffered. */
		STAT_ADD(s, forward_short, 1);
		return 0;
	}
	STAT_ADD(s, bytes_forwarded, (uint64_t)k);
	if ((size_t)k < n)
		STAT_ADD(s, forward_short, 1);
	stream_sent(s, sc, tc, (uint32_t)k);
	return (size_t)k;
}

int stream_down_reserve(struct stream *st, uint32_t n, uint32_t window)
{
	uint32_t cap = dbuf_grow_to(&st->down, n, window);
	if (!cap)
		return 0;
	uint8_t *to = malloc(cap);
	if (!to)
		return -ENOMEM;
	uint8_t *old = dbuf_move(&st->down, to, cap);
	if (st->sending && !st->sending_pre && !st->down_old)
		st->down_old = old; /* the send in flight reads it: freed when it completes */
	else
		free(old);
	return 0;
}
