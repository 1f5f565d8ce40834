/* engine/mux/send.c — a tunnel's send queue: framing, batching into one sendmsg, TLS
 * encryption of the batch, and splice(2) of piped payloads. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/mux/internal.h"

#define SEND_BATCH_BYTES (1u << 20)

struct outitem *item_get(struct shard *s)
{
	struct outitem *it = MS(s)->item_free;
	if (it)
		MS(s)->item_free = it->next;
	else
		it = malloc(sizeof(*it));
	if (!it)
		return NULL;
	it->next = NULL;
	it->inl_len = 0;
	it->from_ring = false;
	it->bid = 0;
	it->heap = NULL;
	it->data = NULL;
	it->data_len = 0;
	it->off = 0;
	it->st_idx = UINT32_MAX;
	it->st_gen = 0;
	it->pipe = NULL;
	return it;
}

void item_put(struct shard *s, struct outitem *it)
{
	free(it->heap);
	it->heap = NULL;
	it->next = MS(s)->item_free;
	MS(s)->item_free = it;
}

/* Write a frame header for a binary frame of payload_len; in the client role also pick
 * the masking key. Returns the header length. */
size_t frame_header(struct shard *s, struct tunnel *t, uint8_t *out, uint8_t op,
                    uint64_t payload_len, uint8_t key[4])
{
	if (t->role == WS_ROLE_SERVER)
		return ws_encode_header(out, op, true, NULL, payload_len);
	if (t->zero_mask)
		memset(key, 0, 4);
	else
		shard_random4(s, key);
	return ws_encode_header(out, op, true, key, payload_len);
}

void queue_item(struct shard *s, struct conn *c, struct outitem *it)
{
	struct tunnel *t = conn_tun(c);
	if (t->close_sent || c->closing) {
		/* Nothing may follow a Close frame (RFC 6455 §5.5.1), nor go on a closing
		 * connection: this is the one place every queued item passes, so no caller
		 * can break it. */
		item_done(s, it);
		return;
	}
	it->next = NULL;
	if (t->q_tail)
		t->q_tail->next = it;
	else
		t->q_head = it;
	t->q_tail = it;
	t->q_items++;
	conn_defer(s, c);
}

static int send_frame(struct shard *s, struct conn *c, uint8_t op, const uint8_t *m, size_t len)
{
	struct tunnel *t = conn_tun(c);
	if (t->close_sent)
		return -EPIPE; /* dropped: a Close is queued (queue_item) */
	struct outitem *it = item_get(s);
	if (!it)
		return -ENOMEM;
	uint8_t key[4];
	size_t hl = frame_header(s, t, it->inl, op, len, key);
	if (hl + len <= sizeof(it->inl)) {
		memcpy(it->inl + hl, m, len);
		if (t->role == WS_ROLE_CLIENT && !t->zero_mask)
			ws_mask(it->inl + hl, len, key, 0);
		it->inl_len = (uint8_t)(hl + len);
	} else {
		it->heap = malloc(len);
		if (!it->heap) {
			item_put(s, it);
			return -ENOMEM;
		}
		memcpy(it->heap, m, len);
		if (t->role == WS_ROLE_CLIENT && !t->zero_mask)
			ws_mask(it->heap, len, key, 0);
		it->inl_len = (uint8_t)hl;
		it->data = it->heap;
		it->data_len = (uint32_t)len;
	}
	queue_item(s, c, it);
	if (op == WS_OP_CLOSE)
		t->close_sent = true;
	return 0;
}

int tunnel_send_msg(struct shard *s, struct conn *c, const uint8_t *m, size_t len)
{
	return send_frame(s, c, WS_OP_BINARY, m, len);
}

int tunnel_send_raw(struct shard *s, struct conn *c, const void *p, size_t len)
{
	struct outitem *it = item_get(s);
	if (!it)
		return -ENOMEM;
	it->heap = malloc(len);
	if (!it->heap) {
		item_put(s, it);
		return -ENOMEM;
	}
	memcpy(it->heap, p, len);
	it->data = it->heap;
	it->data_len = (uint32_t)len;
	queue_item(s, c, it);
	return 0;
}

void send_ws_control(struct shard *s, struct conn *c, uint8_t op, const uint8_t *p, size_t len)
{
	send_frame(s, c, op, p, len);
}

static void item_pop(struct shard *s, struct tunnel *t)
{
	struct outitem *it = t->q_head;
	t->q_head = it->next;
	if (!t->q_head)
		t->q_tail = NULL;
	t->q_items--;
	item_done(s, it);
}

/* The head item's header is sent; move its payload from the pipe to the socket, inline
 * (non-blocking splice(2); IORING_OP_SPLICE would go through io-wq workers). Returns true
 * when the item is done, false when the socket is full (POLLOUT armed) or failed. */
static bool splice_head(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	struct outitem *it = t->q_head;
	uint32_t done = it->off - it->inl_len;
	while (done < it->data_len) {
		ssize_t n = t->x.ops->splice_out(&t->x, c->fd, it->pipe->fd[0],
		                                 it->data_len - done);
		if (n > 0) {
			done += (uint32_t)n;
			it->off += (uint32_t)n;
			t->bytes_out += (uint64_t)n;
			if (t->ctr)
				__atomic_fetch_add(&t->ctr->bytes_out, (uint64_t)n,
				                   __ATOMIC_RELAXED);
			continue;
		}
		if (n == -1 && errno == EAGAIN) {
			struct io_uring_sqe *sqe = shard_sqe(s, c, OP_TUN_POLLOUT, 0);
			io_uring_prep_poll_add(sqe, c->fd, POLLOUT);
			t->pollout_armed = true;
			return false;
		}
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL,
		            n == 0 ? "splice: pipe empty" : strerror(errno));
		return false;
	}
	item_pop(s, t);
	return true;
}

void tunnel_flush(struct shard *s, struct conn *c)
{
	struct tunnel *t = conn_tun(c);
	if (t->send_inflight || c->fd < 0 || c->closing || t->state == TS_CONNECTING)
		return;
	/* Spliced payloads whose headers are out go first, in queue order. */
	while (t->q_head && t->q_head->pipe && t->q_head->off >= t->q_head->inl_len) {
		if (t->pollout_armed || !splice_head(s, c))
			return;
	}
	int n = 0;
	size_t bytes = 0;
	for (struct outitem *it = t->q_head; it && n + 2 <= TUN_IOV_MAX; it = it->next) {
		uint32_t off = it->off;
		if (it->pipe) {
			/* Only the header goes in the batch; the payload follows by splice. */
			t->iov[n].iov_base = it->inl + off;
			t->iov[n].iov_len = it->inl_len - off;
			n++;
			break;
		}
		if (off < it->inl_len) {
			t->iov[n].iov_base = it->inl + off;
			t->iov[n].iov_len = it->inl_len - off;
			bytes += t->iov[n].iov_len;
			n++;
			off = 0;
		} else {
			off -= it->inl_len;
		}
		if (it->data_len > off) {
			t->iov[n].iov_base = (void *)(it->data + off);
			t->iov[n].iov_len = it->data_len - off;
			bytes += t->iov[n].iov_len;
			n++;
		}
		if (bytes >= SEND_BATCH_BYTES)
			break;
	}
	/* The transport says what goes on the wire (TLS: a batch encrypted now, whose items
	 * are done with at once). Even with nothing queued it may have its own bytes. */
	struct iovec *wire;
	int nwire = 0;
	long took = t->x.ops->flush(&t->x, t->iov, n, &wire, &nwire);
	if (took < 0) {
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, xprt_error(&t->x));
		return;
	}
	if (took)
		queue_consumed(s, t, (size_t)took);
	if (nwire == 0)
		return;
	memset(&t->msg, 0, sizeof(t->msg));
	t->msg.msg_iov = wire;
	t->msg.msg_iovlen = (size_t)nwire;
	t->send_inflight = true;
	struct io_uring_sqe *sqe = shard_sqe(s, c, OP_TUN_SEND, 0);
	io_uring_prep_sendmsg(sqe, c->fd, &t->msg, MSG_NOSIGNAL);
}

/* n plaintext bytes of the queue are sent (or taken by the transport): release the
 * items they cover. A batch that ended with a piped item's header leaves the item at the
 * head, its payload to go by splice. */
void queue_consumed(struct shard *s, struct tunnel *t, size_t n)
{
	while (t->q_head) {
		struct outitem *it = t->q_head;
		if (it->pipe) {
			it->off += (uint32_t)n;
			break;
		}
		size_t rem = (size_t)it->inl_len + it->data_len - it->off;
		if (n < rem) {
			it->off += (uint32_t)n;
			break;
		}
		n -= rem;
		item_pop(s, t);
	}
}

/* An item left the queue: give its stream buffer back and let its stream read again. */
void item_done(struct shard *s, struct outitem *it)
{
	if (it->from_ring) {
		bufring_put(&s->rings[STREAM_RING_BGID], it->bid);
		stream_wake_waiters(s); /* as many waiting streams as buffers are free */
	}
	if (it->st_idx != NO_SLOT) {
		struct conn *sc = conn_get(s, it->st_idx, it->st_gen);
		if (sc && sc->kind == CK_STREAM) {
			conn_st(sc)->queued -= it->data_len;
			stream_maybe_recv(s, sc);
			/* The last queued bytes of a stream whose both halves have ended. */
			if (conn_st(sc)->queued == 0)
				stream_check_done(s, sc);
		}
	}
	spipe_put(it->pipe);
	it->pipe = NULL;
	item_put(s, it);
}

void on_tun_send(struct shard *s, struct conn *c, int res)
{
	struct tunnel *t = conn_tun(c);
	t->send_inflight = false;
	if (res < 0) {
		if (!c->closing)
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, strerror(-res));
		return;
	}
	t->bytes_out += (uint64_t)res;
	if (t->ctr)
		__atomic_fetch_add(&t->ctr->bytes_out, (uint64_t)res, __ATOMIC_RELAXED);
	size_t done = t->x.ops->sent(&t->x, (size_t)res);
	if (done)
		queue_consumed(s, t, done);
	if (c->closing)
		return;
	if (t->state == TS_CLOSING && !t->q_head && !t->x.ops->busy(&t->x)) {
		conn_close(s, c);
		return;
	}
	conn_defer(s, c);
}

void queue_release(struct shard *s, struct tunnel *t)
{
	while (t->q_head) {
		struct outitem *it = t->q_head;
		t->q_head = it->next;
		item_done(s, it);
	}
	t->q_tail = NULL;
	t->q_items = 0;
}

/* ---- tunnel life ---------------------------------------------------------------- */

void tunnel_mark_dirty(struct shard *s, struct conn *c)
{
	conn_defer(s, c);
}
