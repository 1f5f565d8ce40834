/* engine/mux/tunnel.c — WebSocket tunnel lanes and the streams they carry (both roles). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ebpf/sockmap.h"
#include "engine/loop/engine.h"
#include "engine/log.h"
#include "engine/net.h"
#include "engine/tls.h"
#include "engine/mux/tunnel.h"
#include "proto/proxy.h"

#define NO_SLOT UINT32_MAX
#define SEND_BATCH_BYTES (1u << 20)

static void stream_maybe_recv(struct shard *s, struct conn *sc);
static void stream_maybe_send(struct shard *s, struct conn *sc);
static void stream_check_done(struct shard *s, struct conn *sc);
static void stream_reset(struct shard *s, struct conn *sc, uint16_t reason, bool tell_peer);
static void stream_use_splice(struct stream *st);
static void on_stream_pollout(struct shard *s, struct conn *sc, int res);
static void stream_grant(struct shard *s, struct conn *tc, struct stream *st);

void addr_format(const struct sockaddr *sa, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else {
		snprintf(out, cap, "unknown");
	}
}

static struct conn *stream_tunnel(struct shard *s, struct conn *sc)
{
	struct conn *tc = conn_get(s, sc->u.st.tun_idx, sc->u.st.tun_gen);
	if (!tc || tc->kind != CK_TUNNEL || tc->closing)
		return NULL;
	return tc;
}

static void mark_dirty(struct shard *s, struct conn *c);

struct tunnel *tunnel_new(struct shard *s, struct conn *c, enum ws_role role)
{
	struct tunnel *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->role = role;
	t->state = TS_HELLO;
	t->st_head = NO_SLOT;
	t->reg_slot = -1;
	t->lane_id = -1;
	t->my_window = s->cfg->window ? s->cfg->window : CFG_DEFAULT_WINDOW;
	t->peer_window = CFG_DEFAULT_WINDOW;
	t->peer_max_frame = CFG_DEFAULT_MAX_FRAME;
	t->next_id = role == WS_ROLE_SERVER ? 1 : 2;
	t->last_rx_ms = s->now_ms;
	t->last_ping_ms = s->now_ms;
	ws_decoder_init(&t->dec, role, CFG_MAX_WS_PAYLOAD, 0);
	c->kind = CK_TUNNEL;
	c->u.tun = t;
	STAT_ADD(s, tunnels_total, 1);
	return t;
}

/* ---- send queue ---------------------------------------------------------------- */

/* Write a frame header for a binary frame of payload_len; in the client role also pick
 * the masking key. Returns the header length. */
static size_t frame_header(struct shard *s, struct tunnel *t, uint8_t *out, uint8_t op,
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

static void queue_item(struct shard *s, struct conn *c, struct outitem *it)
{
	struct tunnel *t = c->u.tun;
	it->next = NULL;
	if (t->q_tail)
		t->q_tail->next = it;
	else
		t->q_head = it;
	t->q_tail = it;
	t->q_items++;
	mark_dirty(s, c);
}

static int send_frame(struct shard *s, struct conn *c, uint8_t op, const uint8_t *m, size_t len)
{
	struct tunnel *t = c->u.tun;
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

static void send_ws_control(struct shard *s, struct conn *c, uint8_t op, const uint8_t *p,
                            size_t len)
{
	send_frame(s, c, op, p, len);
}

static void tunnel_flush(struct shard *s, struct conn *c);

static void mark_dirty(struct shard *s, struct conn *c)
{
	struct tunnel *t = c->u.tun;
	if (t->dirty)
		return;
	if (!connlist_push(&s->dirty, c)) {
		tunnel_flush(s, c); /* out of memory for the list: flush now instead */
		return;
	}
	t->dirty = true;
}

void tunnel_flush_dirty(struct shard *s)
{
	/* A flush may mark other tunnels dirty (they join the list behind). */
	for (uint32_t i = 0; i < s->dirty.n; i++) {
		struct conn *c = conn_get(s, s->dirty.ref[i].idx, s->dirty.ref[i].gen);
		if (!c || c->kind != CK_TUNNEL)
			continue;
		c->u.tun->dirty = false;
		tunnel_flush(s, c);
	}
	s->dirty.n = 0;
}

#define TLS_BATCH (256u * 1024)

static void item_done(struct shard *s, struct outitem *it);

/* TLS: encrypt queued items (up to TLS_BATCH of plaintext) once the previous ciphertext
 * is sent, and send the ciphertext. Items are released as soon as they are encrypted. */
static void tls_flush(struct shard *s, struct conn *c)
{
	struct tunnel *t = c->u.tun;
	if (t->tls_out_off == t->tls_out_len) {
		t->tls_out_off = t->tls_out_len = 0;
		size_t budget = TLS_BATCH;
		while (tls_done(t->tls) && t->q_head && budget) {
			struct outitem *it = t->q_head;
			uint32_t off = it->off;
			int r = 0;
			if (off < it->inl_len) {
				r = tls_write(t->tls, it->inl + off, it->inl_len - off);
				off = 0;
			} else {
				off -= it->inl_len;
			}
			if (r == 0 && it->data_len > off)
				r = tls_write(t->tls, it->data + off, it->data_len - off);
			if (r) {
				tunnel_fail(s, c, WS_CLOSE_ABNORMAL, tls_error(t->tls));
				return;
			}
			size_t k = (size_t)it->inl_len + it->data_len - it->off;
			budget = k > budget ? 0 : budget - k;
			t->q_head = it->next;
			if (!t->q_head)
				t->q_tail = NULL;
			t->q_items--;
			item_done(s, it);
		}
		size_t n = tls_out_pending(t->tls);
		if (!n)
			return;
		if (n > t->tls_out_cap) {
			uint8_t *nb = realloc(t->tls_out, n);
			if (!nb) {
				tunnel_fail(s, c, WS_CLOSE_ABNORMAL, "out of memory");
				return;
			}
			t->tls_out = nb;
			t->tls_out_cap = (uint32_t)n;
		}
		t->tls_out_len = (uint32_t)tls_out_take(t->tls, t->tls_out, n);
		if (!t->tls_out_len)
			return;
	}
	t->send_inflight = true;
	struct io_uring_sqe *sqe = shard_sqe(s, c, OP_TUN_SEND, 0);
	io_uring_prep_send(sqe, c->fd, t->tls_out + t->tls_out_off,
	                   t->tls_out_len - t->tls_out_off, MSG_NOSIGNAL);
}

/* ---- splice path ----------------------------------------------------------------- */

#define PIPE_SIZE (256 * 1024) /* >= STREAM_QUEUE_LIMIT + one read */

static struct spipe *spipe_new(void)
{
	struct spipe *p = malloc(sizeof(*p));
	if (!p)
		return NULL;
	if (pipe2(p->fd, O_NONBLOCK | O_CLOEXEC) == -1) {
		free(p);
		return NULL;
	}
	/* A pipe smaller than what a stream may queue would stall it: then copy instead. */
	if (fcntl(p->fd[1], F_SETPIPE_SZ, PIPE_SIZE) < PIPE_SIZE) {
		close(p->fd[0]);
		close(p->fd[1]);
		free(p);
		return NULL;
	}
	p->refs = 1;
	return p;
}

/* Is the socket's next byte TCP urgent data? splice(2) stops there (returning 0 when
 * more is queued behind it, else EAGAIN); recv() reads past it. */
static bool at_urgent_mark(int fd)
{
	int at = 0;
	return ioctl(fd, SIOCATMARK, &at) == 0 && at;
}

static void spipe_put(struct spipe *p)
{
	if (p && --p->refs == 0) {
		close(p->fd[0]);
		close(p->fd[1]);
		free(p);
	}
}

/* Can this tunnel carry spliced payloads? Only bytes that need no transformation: no
 * TLS, and frames from a client only with the all-zero masking key. Not with --sockmap:
 * splice(2) reads only TCP's receive queue, never what steering put beside it. */
static bool splice_ok(struct shard *s, const struct tunnel *t)
{
	return s->cfg->data_path != CFG_DP_COPY && !t->tls && !s->eng->sm &&
	       (t->role == WS_ROLE_SERVER || t->zero_mask);
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
	struct tunnel *t = c->u.tun;
	struct outitem *it = t->q_head;
	uint32_t done = it->off - it->inl_len;
	while (done < it->data_len) {
		ssize_t n = splice(it->pipe->fd[0], NULL, c->fd, NULL, it->data_len - done,
		                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			done += (uint32_t)n;
			it->off += (uint32_t)n;
			t->bytes_out += (uint64_t)n;
			if (t->rl)
				__atomic_fetch_add(&t->rl->bytes_out, (uint64_t)n,
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

static void tunnel_flush(struct shard *s, struct conn *c)
{
	struct tunnel *t = c->u.tun;
	if (t->send_inflight || c->fd < 0 || c->closing || t->state == TS_CONNECTING)
		return;
	if (t->tls) {
		tls_flush(s, c);
		return;
	}
	/* Spliced payloads whose headers are out go first, in queue order. */
	while (t->q_head && t->q_head->pipe && t->q_head->off >= t->q_head->inl_len) {
		if (t->pollout_armed || !splice_head(s, c))
			return;
	}
	if (!t->q_head)
		return;
	int n = 0;
	uint32_t items = 0;
	size_t bytes = 0;
	for (struct outitem *it = t->q_head; it && n + 2 <= TUN_IOV_MAX; it = it->next) {
		uint32_t off = it->off;
		if (it->pipe) {
			/* Only the header goes in the batch; the payload follows by splice. */
			t->iov[n].iov_base = it->inl + off;
			t->iov[n].iov_len = it->inl_len - off;
			n++;
			items++;
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
		items++;
		if (bytes >= SEND_BATCH_BYTES)
			break;
	}
	if (n == 0)
		return;
	memset(&t->msg, 0, sizeof(t->msg));
	t->msg.msg_iov = t->iov;
	t->msg.msg_iovlen = (size_t)n;
	t->sent_items = items;
	t->send_inflight = true;
	struct io_uring_sqe *sqe = shard_sqe(s, c, OP_TUN_SEND, 0);
	io_uring_prep_sendmsg(sqe, c->fd, &t->msg, MSG_NOSIGNAL);
}

/* Stream-ring buffers are free: let waiting streams read again, in the order they began
 * to wait, until n of them have a recv armed (each may take one buffer) or none waits. A
 * woken stream that cannot read now (no credit, a full queue) does not use up a wake-up. */
static void wake_waiters(struct shard *s, uint32_t n)
{
	while (n && s->wait_head != NO_SLOT) {
		struct conn *w = &s->conns[s->wait_head];
		s->wait_head = w->u.st.wait_next;
		if (s->wait_head == NO_SLOT)
			s->wait_tail = NO_SLOT;
		if (w->kind != CK_STREAM)
			continue;
		w->u.st.waiting_bufs = false;
		stream_maybe_recv(s, w);
		if (w->u.st.recv_armed)
			n--;
	}
}

void stream_wake_waiters(struct shard *s)
{
	const struct bufring *b = &s->stream_ring;
	if (b->out < b->nbufs)
		wake_waiters(s, b->nbufs - b->out);
}

/* An item left the queue: give its stream buffer back and let its stream read again. */
static void item_done(struct shard *s, struct outitem *it)
{
	if (it->from_ring) {
		bufring_put(&s->stream_ring, it->bid);
		stream_wake_waiters(s); /* as many waiting streams as buffers are free */
	}
	if (it->st_idx != NO_SLOT) {
		struct conn *sc = conn_get(s, it->st_idx, it->st_gen);
		if (sc && sc->kind == CK_STREAM) {
			sc->u.st.queued -= it->data_len;
			stream_maybe_recv(s, sc);
			/* The last queued bytes of a stream whose both halves have ended. */
			if (sc->u.st.queued == 0)
				stream_check_done(s, sc);
		}
	}
	spipe_put(it->pipe);
	it->pipe = NULL;
	item_put(s, it);
}

static void on_tun_send(struct shard *s, struct conn *c, int res)
{
	struct tunnel *t = c->u.tun;
	t->send_inflight = false;
	if (res < 0) {
		if (!c->closing)
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, strerror(-res));
		return;
	}
	if (t->tls) {
		t->tls_out_off += (uint32_t)res;
		t->bytes_out += (uint64_t)res;
		if (t->rl)
			__atomic_fetch_add(&t->rl->bytes_out, (uint64_t)res, __ATOMIC_RELAXED);
		if (c->closing)
			return;
		if (t->state == TS_CLOSING && !t->q_head && t->tls_out_off == t->tls_out_len &&
		    !tls_out_pending(t->tls)) {
			conn_close(s, c);
			return;
		}
		mark_dirty(s, c);
		return;
	}
	size_t left = (size_t)res;
	t->bytes_out += left;
	if (t->rl)
		__atomic_fetch_add(&t->rl->bytes_out, (uint64_t)left, __ATOMIC_RELAXED);
	while (t->q_head) {
		struct outitem *it = t->q_head;
		if (it->pipe) { /* the batch ended with this header; its payload is spliced */
			it->off += (uint32_t)left;
			break;
		}
		size_t total = (size_t)it->inl_len + it->data_len;
		size_t rem = total - it->off;
		if (left < rem) {
			it->off += (uint32_t)left;
			break;
		}
		left -= rem;
		item_pop(s, t);
	}
	if (c->closing)
		return;
	if (t->state == TS_CLOSING && !t->q_head) {
		conn_close(s, c);
		return;
	}
	mark_dirty(s, c);
}

static void queue_release(struct shard *s, struct tunnel *t)
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
	mark_dirty(s, c);
}

void tunnel_arm_recv(struct shard *s, struct conn *c)
{
	struct tunnel *t = c->u.tun;
	if (t->recv_armed || t->rx_inline || c->closing)
		return;
	struct io_uring_sqe *sqe = shard_sqe(s, c, OP_TUN_RECV, 0);
	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = TUN_RING_BGID;
	t->recv_armed = true;
}

static void tunnel_input(struct shard *s, struct conn *c, const uint8_t *p, size_t n);
static void tunnel_rx_inline(struct shard *s, struct conn *c);
static void rx_count(struct shard *s, struct tunnel *t, size_t n);

static void tls_read_all(struct shard *s, struct conn *c);

/* Does this tunnel read inline on readiness, so that DATA payloads can be spliced
 * straight from its socket? Only on plain tunnels with --data-path splice; frames are
 * then checked one by one (a payload needs no unmasking to be spliced). */
static bool rx_inline_ok(struct shard *s, const struct tunnel *t)
{
	return s->cfg->data_path == CFG_DP_SPLICE && !t->tls && !s->eng->sm;
}

void tunnel_start(struct shard *s, struct conn *c, const uint8_t *early, size_t n)
{
	struct tunnel *t = c->u.tun;
	t->state = TS_HELLO;
	t->last_rx_ms = s->now_ms;
	t->last_ping_ms = s->now_ms;
	if (rx_inline_ok(s, t)) {
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
	if (t->tls && !t->in_tls_read && !c->closing)
		tls_read_all(s, c);
}

/* Plaintext from the socket (or from TLS): the client's upgrade response, or frames. */
static void plain_input(struct shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	if (c->u.tun->state == TS_UPGRADING)
		client_on_head_bytes(s, c, p, n);
	else
		tunnel_input(s, c, p, n);
}

static void tls_read_all(struct shard *s, struct conn *c)
{
	/* The scratch buffer is free: what reads it (frames of a TLS tunnel) never reads a
	 * tunnel socket inline. */
	uint8_t *plain = s->scratch;
	struct tunnel *t = c->u.tun;
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
	if (c->kind == CK_TUNNEL && c->u.tun)
		t->in_tls_read = false;
}

static void tls_input(struct shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	struct tunnel *t = c->u.tun;
	if (tls_feed(t->tls, p, n)) {
		tunnel_fail(s, c, WS_CLOSE_ABNORMAL, tls_error(t->tls));
		return;
	}
	if (!tls_done(t->tls)) {
		int r = tls_handshake(t->tls);
		mark_dirty(s, c); /* handshake records to send, or an alert */
		if (r < 0) {
			STAT_ADD(s, hs_fail[HS_TLS], 1);
			if (t->role == WS_ROLE_CLIENT)
				client_on_tls_failed(s, c, tls_error(t->tls));
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, tls_error(t->tls));
			return;
		}
		if (r == 0)
			return;
		if (t->role == WS_ROLE_CLIENT)
			client_on_tls_ready(s, c);
		if (c->closing)
			return;
	}
	tls_read_all(s, c);
}

static void notify_closed(struct shard *s, struct conn *c)
{
	struct tunnel *t = c->u.tun;
	if (t->closed_notified)
		return;
	t->closed_notified = true;
	t->closing_ms = s->now_ms;
	if (s->cfg->mode == CFG_SERVER)
		server_on_tunnel_closed(s, c);
	else
		client_on_tunnel_closed(s, c);
}

static void close_streams(struct shard *s, struct conn *c, uint16_t reason)
{
	struct tunnel *t = c->u.tun;
	uint32_t i = t->st_head;
	while (i != NO_SLOT) {
		struct conn *sc = &s->conns[i];
		uint32_t next = sc->u.st.next;
		stream_reset(s, sc, reason, false);
		i = next;
	}
}

void tunnel_fail(struct shard *s, struct conn *c, enum ws_close code, const char *why)
{
	struct tunnel *t = c->u.tun;
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

void tunnel_goaway(struct shard *s, struct conn *c, uint16_t reason, const char *text)
{
	struct tunnel *t = c->u.tun;
	if (t->goaway_sent || c->closing)
		return;
	uint8_t m[TUN_HEADER_LEN + 4 + TUN_MAX_STR];
	size_t len = tun_encode_goaway(m, sizeof(m), reason, text);
	if (len)
		tunnel_send_msg(s, c, m, len);
	t->goaway_sent = true;
}

void tunnel_release(struct shard *s, struct conn *c)
{
	struct tunnel *t = c->u.tun;
	if (!t)
		return;
	notify_closed(s, c);
	/* Streams still linked are being closed; unlink them from us. */
	uint32_t i = t->st_head;
	while (i != NO_SLOT) {
		struct conn *sc = &s->conns[i];
		uint32_t next = sc->u.st.next;
		sc->u.st.tun_gen = (uint16_t)(sc->u.st.tun_gen + 0x8000); /* never matches */
		sc->u.st.prev = sc->u.st.next = NO_SLOT;
		i = next;
	}
	queue_release(s, t);
	idmap_free(&t->ids);
	free(t->head);
	free(t->fwd);
	tls_free(t->tls);
	free(t->tls_out);
	free(t);
	c->u.tun = NULL;
}

void tunnel_tick(struct shard *s, struct conn *c)
{
	struct tunnel *t = c->u.tun;
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
	/* Streams still waiting for a load balancer's PROXY header past the deadline; and
	 * credit still held back (the lane's share grew as streams ended, or a WINDOW could
	 * not be queued): give it back now. */
	bool lb = s->cfg->lb_proxy_protocol && s->cfg->lb_proxy_protocol[0];
	uint32_t i = t->st_head;
	while (i != NO_SLOT) {
		struct conn *sc = &s->conns[i];
		i = sc->u.st.next;
		if (lb && sc->u.st.proxy_wait &&
		    s->now_ms - sc->started_ms > (uint64_t)s->cfg->handshake_ms) {
			log_warn("no PROXY header from the load balancer in time: closing",
			         "port=%u", sc->u.st.port);
			stream_reset(s, sc, TUN_RST_TIMEOUT, false);
		} else if (sc->u.st.unacked && !sc->closing) {
			stream_grant(s, c, &sc->u.st);
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

/* ---- receive ---------------------------------------------------------------------- */

static void handle_msg(struct shard *s, struct conn *c, const struct tun_msg *m);

static bool lookup_stream(struct shard *s, struct tunnel *t, uint32_t id, struct conn **out)
{
	uint32_t idx;
	if (!idmap_get(&t->ids, id, &idx))
		return false;
	struct conn *sc = &s->conns[idx];
	if (sc->kind != CK_STREAM || sc->u.st.id != id)
		return false;
	*out = sc;
	return true;
}

/* DATA payload bytes for the current message's stream. */
static void deliver(struct shard *s, struct conn *c, const uint8_t *p, size_t n,
                    uint64_t frame_off)
{
	struct tunnel *t = c->u.tun;
	if (t->dst_idx == NO_SLOT)
		return;
	struct conn *sc = conn_get(s, t->dst_idx, t->dst_gen);
	if (!sc || sc->kind != CK_STREAM || sc->closing) {
		t->dst_idx = NO_SLOT;
		return;
	}
	struct stream *st = &sc->u.st;
	uint32_t cap = t->my_window;
	if (n > st->outstanding) {
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
	struct tunnel *t = c->u.tun;
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
				if (lookup_stream(s, t, t->mh.stream, &sc)) {
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
	struct tunnel *t = c->u.tun;
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
	struct tunnel *t = c->u.tun;
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
static void frame_end(struct shard *s, struct conn *c)
{
	struct tunnel *t = c->u.tun;
	if (t->rx_state == RX_CONTROL) {
		t->rx_state = RX_HEADER;
		ws_control_end(s, c);
	} else {
		t->rx_state = RX_HEADER;
		if (t->fr_msg_end)
			message_end(s, c);
	}
}

static void tunnel_input(struct shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	struct tunnel *t = c->u.tun;
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

static void on_tun_recv(struct shard *s, struct conn *c, struct io_uring_cqe *cqe)
{
	struct tunnel *t = c->u.tun;
	int res = cqe->res;
	if (!(cqe->flags & IORING_CQE_F_MORE))
		t->recv_armed = false;
	if (cqe->flags & IORING_CQE_F_BUFFER) {
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
		s->tun_ring.out++;
		if (res > 0 && !c->closing) {
			rx_count(s, t, (size_t)res);
			if (t->tls)
				tls_input(s, c, bufring_addr(&s->tun_ring, bid), (size_t)res);
			else
				plain_input(s, c, bufring_addr(&s->tun_ring, bid), (size_t)res);
		}
		bufring_put(&s->tun_ring, bid);
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
	return !t->fr.masked ||
	       (t->fr.mask[0] | t->fr.mask[1] | t->fr.mask[2] | t->fr.mask[3]) == 0;
}

/* The stream the next payload bytes may be spliced into (and how many), or NULL when
 * they go through the buffer: headers, control messages, small or masked payloads, a
 * stream with bytes still in its pipe, dialling, or gone. */
static struct conn *rx_splice_target(struct shard *s, struct conn *c, uint32_t *len)
{
	struct tunnel *t = c->u.tun;
	if (t->rx_state != RX_PAYLOAD || t->msg_pos < TUN_HEADER_LEN ||
	    t->mh.type != TUN_DATA || t->fr_left < RX_SPLICE_MIN || !frame_plain(t) ||
	    t->dst_idx == NO_SLOT)
		return NULL;
	struct conn *sc = conn_get(s, t->dst_idx, t->dst_gen);
	if (!sc || sc->kind != CK_STREAM || sc->closing || sc->fd < 0)
		return NULL;
	struct stream *st = &sc->u.st;
	/* Bytes beyond the credit are for deliver() to refuse. */
	if (st->piped || st->connecting || st->pre || t->fr_left > st->outstanding)
		return NULL;
	if (!st->dpipe && !(st->dpipe = spipe_new()))
		return NULL;
	*len = (uint32_t)t->fr_left;
	return sc;
}

/* How much to read into the buffer: right after a large plain DATA frame, only the next
 * frame's headers, assuming it is large too (64-bit length, a mask when we are the server),
 * so that none of its payload is read; otherwise as much as is there. */
static size_t rx_read_len(const struct tunnel *t, size_t cap)
{
	if (t->rx_state == RX_HEADER && t->hlen == 0 && t->fr.opcode < WS_OP_CLOSE &&
	    t->fr.payload_len >= RX_SPLICE_MIN && frame_plain(t))
		return 2 + 8 + (t->role == WS_ROLE_SERVER ? 4 : 0) + TUN_HEADER_LEN;
	return cap;
}

/* n bytes came from the tunnel's socket (read, or spliced): a sign of life, and counted. */
static void rx_count(struct shard *s, struct tunnel *t, size_t n)
{
	t->last_rx_ms = s->now_ms;
	t->bytes_in += (uint64_t)n;
	if (t->rl)
		__atomic_fetch_add(&t->rl->bytes_in, (uint64_t)n, __ATOMIC_RELAXED);
}

/* n payload bytes went from the tunnel's socket into sc's pipe. */
static void rx_spliced(struct shard *s, struct conn *c, struct conn *sc, size_t n)
{
	struct tunnel *t = c->u.tun;
	struct stream *st = &sc->u.st;
	rx_count(s, t, n);
	t->msg_pos += (uint32_t)n;
	t->fr_left -= n;
	t->fr_off += n;
	st->rb_first = st->rlen;
	st->piped = (uint32_t)n;
	st->outstanding -= (uint32_t)n;
	STAT_ADD(s, bytes_spliced_down, (uint64_t)n);
	stream_maybe_send(s, sc);
	if (t->fr_left == 0 && !c->closing)
		frame_end(s, c);
}

static void tunnel_rx_inline(struct shard *s, struct conn *c)
{
	uint8_t *buf = s->scratch; /* a plain tunnel: no TLS read uses it meanwhile */
	struct tunnel *t = c->u.tun;
	size_t budget = RX_BUDGET;
	bool copy_next = false; /* splice(2) stopped at TCP urgent data: recv() passes it */
	while (!c->closing && budget) {
		uint32_t len;
		ssize_t n;
		struct conn *sc = copy_next ? NULL : rx_splice_target(s, c, &len);
		copy_next = false;
		if (sc) {
			n = splice(c->fd, NULL, sc->u.st.dpipe->fd[1], NULL, len,
			           SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
			if (n > 0) {
				rx_spliced(s, c, sc, (size_t)n);
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
	struct io_uring_sqe *sqe = shard_sqe(s, c, OP_TUN_POLL, 0);
	io_uring_prep_poll_add(sqe, c->fd, POLLIN | POLLRDHUP);
	t->rx_poll_armed = true;
}

/* ---- messages -------------------------------------------------------------------- */

/* Give k bytes of the stream's credit back to the peer. */
static void send_window(struct shard *s, struct conn *tc, struct stream *st, uint32_t k)
{
	uint8_t m[TUN_HEADER_LEN + 4];
	size_t len = tun_encode_window(m, sizeof(m), st->id, k);
	if (!len || tunnel_send_msg(s, tc, m, len) != 0)
		return; /* out of memory: the next write or tick tries again */
	st->unacked -= k;
	st->outstanding += k;
}

/* The credit a stream may hold (granted and unused, plus what we buffer for it): the whole
 * window when it is alone on its lane, an equal share of the window when the lane carries
 * several, never less than LANE_SHARE_MIN. A lane then holds about one window in flight
 * whatever the number of streams, so a small response does not queue behind several
 * windows of bulk data in the kernel's buffers (bench scenario 7), while one stream alone
 * still fills a long link (docs/PROTOCOL.md §5.2). */
#define LANE_SHARE_MIN (256u * 1024)
static uint32_t stream_target_window(const struct tunnel *t)
{
	uint32_t w = t->my_window;
	uint32_t floor = w < LANE_SHARE_MIN ? w : LANE_SHARE_MIN;
	uint32_t share = w / (t->nstreams ? t->nstreams : 1);
	return share > floor ? share : floor;
}

/* Grant back what the stream's share allows of the bytes written to its socket: in
 * batches of an eighth of the share, or at once when the stream holds nothing buffered.
 * A stream whose buffers are empty always gets credit (its share is never 0), so no
 * stream can stall on withheld credit. */
static void stream_grant(struct shard *s, struct conn *tc, struct stream *st)
{
	if (st->peer_fin || st->unacked == 0)
		return;
	uint32_t target = stream_target_window(tc->u.tun);
	uint32_t hold = st->outstanding + st->rlen + st->piped;
	uint32_t k = target > hold ? target - hold : 0;
	if (k > st->unacked)
		k = st->unacked;
	if (k && (k >= target / 8 || (st->rlen == 0 && st->piped == 0)))
		send_window(s, tc, st, k);
}

static void handle_msg(struct shard *s, struct conn *c, const struct tun_msg *m)
{
	struct tunnel *t = c->u.tun;
	struct conn *sc = NULL;
	switch (m->type) {
	case TUN_FIN:
		if (!lookup_stream(s, t, m->stream, &sc))
			return;
		sc->u.st.peer_fin = true;
		stream_maybe_send(s, sc);
		stream_check_done(s, sc);
		return;
	case TUN_RST:
		if (!lookup_stream(s, t, m->stream, &sc))
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
		if (!lookup_stream(s, t, m->stream, &sc))
			return;
		if ((uint64_t)sc->u.st.credit + m->u.window > UINT32_MAX) {
			stream_reset(s, sc, TUN_RST_PROTOCOL, true);
			return;
		}
		sc->u.st.credit += m->u.window;
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
		if (t->rl)
			__atomic_store_n(&t->rl->rtt_ns, t->rtt_ns, __ATOMIC_RELAXED);
		return;
	}
	case TUN_GOAWAY:
		t->goaway_received = true;
		log_info("peer is going away", "client_id=%s reason=%u text=%s",
		         log_q(t->client_id[0] ? t->client_id : "-"), m->u.goaway.reason,
		         log_q(""));
		break;
	default:
		break;
	}
	/* HELLO, WELCOME, OPEN, GOAWAY and unknown types: the role decides. */
	if (s->cfg->mode == CFG_SERVER)
		server_on_tunnel_msg(s, c, m);
	else
		client_on_tunnel_msg(s, c, m);
}

/* ---- streams ---------------------------------------------------------------------- */

static void stream_link(struct shard *s, struct conn *tc, struct conn *sc)
{
	struct tunnel *t = tc->u.tun;
	struct stream *st = &sc->u.st;
	st->tun_idx = tc->idx;
	st->tun_gen = tc->gen;
	st->prev = NO_SLOT;
	st->next = t->st_head;
	if (t->st_head != NO_SLOT)
		s->conns[t->st_head].u.st.prev = sc->idx;
	t->st_head = sc->idx;
	t->nstreams++;
	st->credit = t->peer_window;
	st->outstanding = t->my_window; /* what the peer may send before our first WINDOW */
	st->wait_next = NO_SLOT;
	STAT_ADD(s, streams_total, 1);
	STAT_ADD(s, streams_active, 1);
	STAT_ADD(s, port[st->port_slot].conns_total, 1);
	STAT_ADD(s, port[st->port_slot].conns_active, 1);
	if (s->cfg->data_path == CFG_DP_SPLICE && splice_ok(s, t))
		stream_use_splice(st);
}

static void stream_unlink(struct shard *s, struct conn *sc)
{
	struct stream *st = &sc->u.st;
	struct conn *tc = conn_get(s, st->tun_idx, st->tun_gen);
	if (tc && tc->kind == CK_TUNNEL && tc->u.tun) {
		struct tunnel *t = tc->u.tun;
		if (st->prev != NO_SLOT)
			s->conns[st->prev].u.st.next = st->next;
		else if (t->st_head == sc->idx)
			t->st_head = st->next;
		if (st->next != NO_SLOT)
			s->conns[st->next].u.st.prev = st->prev;
		t->nstreams--;
		idmap_del(&t->ids, st->id);
	}
	st->prev = st->next = NO_SLOT;
	st->tun_gen = (uint16_t)(st->tun_gen + 0x8000);
}

void stream_release(struct shard *s, struct conn *sc)
{
	struct stream *st = &sc->u.st;
	stream_unlink(s, sc);
	if (st->waiting_bufs) {
		/* Remove from the wait list (rare: linear walk). */
		uint32_t *pp = &s->wait_head, prev = NO_SLOT;
		while (*pp != NO_SLOT && *pp != sc->idx) {
			prev = *pp;
			pp = &s->conns[*pp].u.st.wait_next;
		}
		if (*pp == sc->idx) {
			*pp = st->wait_next;
			if (s->wait_tail == sc->idx)
				s->wait_tail = prev;
		}
		st->waiting_bufs = false;
	}
	free(st->rbuf);
	st->rbuf = NULL;
	free(st->pre);
	st->pre = NULL;
	spipe_put(st->pipe);
	st->pipe = NULL;
	spipe_put(st->dpipe);
	st->dpipe = NULL;
	STAT_SUB(s, streams_active, 1);
	STAT_SUB(s, port[st->port_slot].conns_active, 1);
}

static void stream_reset(struct shard *s, struct conn *sc, uint16_t reason, bool tell_peer)
{
	if (sc->closing)
		return;
	if (tell_peer) {
		struct conn *tc = stream_tunnel(s, sc);
		if (tc) {
			uint8_t m[TUN_HEADER_LEN + 3 + 32];
			size_t len = tun_encode_rst(m, sizeof(m), sc->u.st.id, reason,
			                            tun_rst_reason_name(reason));
			if (len)
				tunnel_send_msg(s, tc, m, len);
			STAT_ADD(s, rst_sent[reason < STATS_RST_REASONS ? reason : 0], 1);
		}
	}
	stream_unlink(s, sc);
	sc->rst = true;
	conn_close(s, sc);
}

static void stream_check_done(struct shard *s, struct conn *sc)
{
	struct stream *st = &sc->u.st;
	if (sc->closing)
		return;
	if (st->peer_fin && st->rlen == 0 && st->piped == 0 && !st->sending && !st->shut_wr &&
	    !st->connecting && !st->pre && sc->fd >= 0) {
		shutdown(sc->fd, SHUT_WR);
		st->shut_wr = true;
	}
	if (st->eof && st->shut_wr && st->queued == 0) {
		stream_unlink(s, sc);
		conn_close(s, sc);
	}
}

static void stream_maybe_recv(struct shard *s, struct conn *sc)
{
	struct stream *st = &sc->u.st;
	if (sc->closing || st->recv_armed || st->eof || st->connecting || st->waiting_bufs ||
	    st->proxy_wait || sc->fd < 0)
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
	uint32_t len = st->credit;
	if (len > s->stream_ring.bufsz)
		len = s->stream_ring.bufsz;
	if (len > tc->u.tun->peer_max_frame)
		len = tc->u.tun->peer_max_frame;
	struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_STREAM_RECV, 0);
	io_uring_prep_recv(sqe, sc->fd, NULL, len, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = STREAM_RING_BGID;
	st->recv_armed = true;
}

/* Socket EOF on the up side: FIN to the peer. */
static void stream_eof(struct shard *s, struct conn *sc, struct conn *tc)
{
	struct stream *st = &sc->u.st;
	uint8_t m[TUN_HEADER_LEN];
	size_t len = tun_encode_fin(m, sizeof(m), st->id);
	tunnel_send_msg(s, tc, m, len);
	st->eof = true;
	stream_check_done(s, sc);
}

/* Move a stream's up side to splice(2); it stays on copy if no pipe can be had. */
static void stream_use_splice(struct stream *st)
{
	if (st->splice)
		return;
	if (!st->pipe)
		st->pipe = spipe_new();
	st->splice = st->pipe != NULL;
}

/* Splice path: the socket is readable; move what the credit allows into the pipe and
 * queue it (header inline, payload in the pipe). */
static void on_stream_poll(struct shard *s, struct conn *sc, int res)
{
	struct stream *st = &sc->u.st;
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
	if (len > tc->u.tun->peer_max_frame)
		len = tc->u.tun->peer_max_frame;
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
	struct tunnel *t = tc->u.tun;
	struct outitem *it = item_get(s);
	if (!it) {
		stream_reset(s, sc, TUN_RST_INTERNAL, true);
		return;
	}
	uint8_t key[4];
	size_t hl =
	        frame_header(s, t, it->inl, WS_OP_BINARY, (uint64_t)n + TUN_HEADER_LEN, key);
	tun_encode_data_header(it->inl + hl, TUN_HEADER_LEN, st->id);
	it->inl_len = (uint8_t)(hl + TUN_HEADER_LEN);
	it->pipe = st->pipe;
	st->pipe->refs++;
	it->data_len = (uint32_t)n;
	it->st_idx = sc->idx;
	it->st_gen = sc->gen;
	st->credit -= (uint32_t)n;
	st->queued += (uint32_t)n;
	st->bytes_up += (uint64_t)n;
	STAT_ADD(s, bytes_up, (uint64_t)n);
	STAT_ADD(s, bytes_spliced, (uint64_t)n);
	STAT_ADD(s, port[st->port_slot].bytes_received, (uint64_t)n);
	queue_item(s, tc, it);
	stream_maybe_recv(s, sc);
}

static void on_stream_recv(struct shard *s, struct conn *sc, struct io_uring_cqe *cqe)
{
	struct stream *st = &sc->u.st;
	int res = cqe->res;
	st->recv_armed = false;
	bool have_buf = cqe->flags & IORING_CQE_F_BUFFER;
	uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	if (have_buf)
		s->stream_ring.out++;
	struct conn *tc = sc->closing ? NULL : stream_tunnel(s, sc);
	if (!tc) {
		if (have_buf)
			bufring_put(&s->stream_ring, bid);
		if (!sc->closing)
			stream_reset(s, sc, TUN_RST_SHUTDOWN, false);
		return;
	}
	if (res > 0 && have_buf) {
		struct tunnel *t = tc->u.tun;
		struct outitem *it = item_get(s);
		if (!it) {
			bufring_put(&s->stream_ring, bid);
			stream_reset(s, sc, TUN_RST_INTERNAL, true);
			return;
		}
		uint8_t key[4];
		uint8_t *data = bufring_addr(&s->stream_ring, bid);
		size_t hl = frame_header(s, t, it->inl, WS_OP_BINARY,
		                         (uint64_t)res + TUN_HEADER_LEN, key);
		tun_encode_data_header(it->inl + hl, TUN_HEADER_LEN, st->id);
		if (t->role == WS_ROLE_CLIENT && !t->zero_mask) {
			ws_mask(it->inl + hl, TUN_HEADER_LEN, key, 0);
			ws_mask(data, (size_t)res, key, TUN_HEADER_LEN);
		}
		it->inl_len = (uint8_t)(hl + TUN_HEADER_LEN);
		it->from_ring = true;
		it->bid = bid;
		it->data = data;
		it->data_len = (uint32_t)res;
		it->st_idx = sc->idx;
		it->st_gen = sc->gen;
		st->credit -= (uint32_t)res;
		st->queued += (uint32_t)res;
		st->bytes_up += (uint64_t)res;
		STAT_ADD(s, bytes_up, (uint64_t)res);
		STAT_ADD(s, port[st->port_slot].bytes_received, (uint64_t)res);
		queue_item(s, tc, it);
		stream_maybe_recv(s, sc);
		return;
	}
	if (have_buf)
		bufring_put(&s->stream_ring, bid);
	if (res == 0) {
		stream_eof(s, sc, tc);
		return;
	}
	if (res == -ENOBUFS) {
		STAT_ADD(s, bufring_empty, 1);
		st->waiting_bufs = true;
		st->wait_next = NO_SLOT;
		if (s->wait_tail != NO_SLOT)
			s->conns[s->wait_tail].u.st.wait_next = sc->idx;
		else
			s->wait_head = sc->idx;
		s->wait_tail = sc->idx;
		/* Buffers may have come back since the kernel found the ring empty (earlier
		 * completions of this batch): then nothing else would wake the waiters. */
		stream_wake_waiters(s);
		return;
	}
	if (res == -ECANCELED)
		return;
	stream_reset(s, sc, TUN_RST_RESET, true);
}

/* n stream bytes reached the socket: grant them back to the peer. */
static void stream_sent(struct shard *s, struct conn *sc, struct conn *tc, uint32_t n)
{
	struct stream *st = &sc->u.st;
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
	struct stream *st = &sc->u.st;
	while (st->piped) {
		ssize_t n = splice(st->dpipe->fd[0], NULL, sc->fd, NULL, st->piped,
		                   SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
		if (n > 0) {
			st->piped -= (uint32_t)n;
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

static void on_stream_pollout(struct shard *s, struct conn *sc, int res)
{
	sc->u.st.pollout_armed = false;
	if (sc->closing || res == -ECANCELED)
		return;
	if (res < 0) {
		stream_reset(s, sc, TUN_RST_RESET, true);
		return;
	}
	stream_maybe_send(s, sc);
	stream_check_done(s, sc);
}

static void stream_maybe_send(struct shard *s, struct conn *sc)
{
	struct stream *st = &sc->u.st;
	if (sc->closing || st->sending || st->pollout_armed || st->connecting || sc->fd < 0)
		return;
	if (st->pre && !st->proxy_wait && st->pre_off < st->pre_len) {
		/* The PROXY header goes to the upstream before any stream byte. */
		st->sending = st->pre_len - st->pre_off;
		st->sending_pre = true;
		struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_STREAM_SEND, 0);
		io_uring_prep_send(sqe, sc->fd, st->pre + st->pre_off, st->sending,
		                   MSG_NOSIGNAL);
		return;
	}
	if (st->rlen == 0 && st->piped == 0)
		return;
	struct conn *tc = stream_tunnel(s, sc);
	uint32_t cap = tc ? tc->u.tun->my_window : 0;
	if (!cap)
		return;
	/* Order on the socket: rb_first bytes of rbuf, the pipe, the rest of rbuf. */
	if (st->piped && st->rb_first == 0 && !stream_splice_out(s, sc, tc))
		return;
	if (st->rlen == 0)
		return;
	uint32_t chunk = st->rlen;
	if (st->piped && chunk > st->rb_first)
		chunk = st->rb_first;
	if (st->rhead + chunk > cap)
		chunk = cap - st->rhead;
	st->sending = chunk;
	struct io_uring_sqe *sqe = shard_sqe(s, sc, OP_STREAM_SEND, 0);
	io_uring_prep_send(sqe, sc->fd, st->rbuf + st->rhead, chunk, MSG_NOSIGNAL);
}

static void on_stream_send(struct shard *s, struct conn *sc, int res)
{
	struct stream *st = &sc->u.st;
	st->sending = 0;
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
	uint32_t cap = tc->u.tun->my_window;
	st->rhead = (st->rhead + (uint32_t)res) % cap;
	st->rlen -= (uint32_t)res;
	if (st->piped)
		st->rb_first -= (uint32_t)res;
	if (st->rlen == 0)
		st->rhead = 0;
	stream_sent(s, sc, tc, (uint32_t)res);
	stream_maybe_send(s, sc);
	stream_check_done(s, sc);
}

/* Server: send OPEN for a stream (asking for a PROXY header when --proxy-protocol). */
static void stream_announce(struct shard *s, struct conn *tc, struct conn *sc,
                            const char *remote, const char *local)
{
	struct tunnel *t = tc->u.tun;
	struct stream *st = &sc->u.st;
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
	stream_maybe_recv(s, sc);
}

/* Server: bytes of a load balancer's PROXY header. */
static void on_stream_proxy(struct shard *s, struct conn *sc, int res)
{
	struct stream *st = &sc->u.st;
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
	struct engine *e = s->eng;
	if (e->n_allow && !net_cidr_match(e->allow, e->n_allow, (struct sockaddr *)&ra)) {
		STAT_ADD(s, dataplane_denied, 1);
		stream_reset(s, sc, TUN_RST_REFUSED, false);
		return;
	}
	char rs[72] = "", ls[72] = "";
	addr_format((struct sockaddr *)&ra, rs, sizeof(rs));
	addr_format((struct sockaddr *)&la, ls, sizeof(ls));
	st->proxy_wait = false;
	stream_announce(s, tc, sc, rs, ls);
	/* Bytes after the header are the client's first data: they follow OPEN. */
	size_t extra = st->pre_len - h.len;
	if (extra && !sc->closing) {
		struct outitem *it = item_get(s);
		uint8_t *copy = it ? malloc(extra) : NULL;
		if (!copy) {
			if (it)
				item_put(s, it);
			stream_reset(s, sc, TUN_RST_INTERNAL, true);
			return;
		}
		memcpy(copy, st->pre + h.len, extra);
		struct tunnel *t = tc->u.tun;
		uint8_t key[4];
		size_t hl =
		        frame_header(s, t, it->inl, WS_OP_BINARY, extra + TUN_HEADER_LEN, key);
		tun_encode_data_header(it->inl + hl, TUN_HEADER_LEN, st->id);
		it->inl_len = (uint8_t)(hl + TUN_HEADER_LEN);
		it->heap = copy;
		it->data = copy;
		it->data_len = (uint32_t)extra;
		st->credit -= (uint32_t)extra < st->credit ? (uint32_t)extra : st->credit;
		st->bytes_up += extra;
		STAT_ADD(s, bytes_up, extra);
		STAT_ADD(s, port[st->port_slot].bytes_received, extra);
		queue_item(s, tc, it);
	}
	free(st->pre);
	st->pre = NULL;
	st->pre_len = 0;
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

void stream_open_server(struct shard *s, struct conn *tc, int fd, uint16_t port,
                        uint16_t port_slot)
{
	struct tunnel *t = tc->u.tun;
	struct conn *sc = conn_alloc(s, CK_STREAM, fd);
	if (!sc) {
		log_warn("connection table full: refusing a data-plane connection", "port=%u",
		         port);
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(fd);
		return;
	}
	struct stream *st = &sc->u.st;
	st->port = port;
	st->port_slot = port_slot;
	st->id = next_stream_id(t);
	if (idmap_put(&t->ids, st->id, sc->idx) != 0) {
		sc->rst = true;
		conn_close(s, sc);
		return;
	}
	stream_link(s, tc, sc);
	const char *lb = s->cfg->lb_proxy_protocol;
	if (lb && lb[0]) {
		/* A load balancer in front sends a PROXY header first: read it before the
		 * stream is announced, so OPEN carries the real client's address. */
		st->pre = malloc(PROXY_V2_MAX);
		if (!st->pre) {
			stream_reset(s, sc, TUN_RST_INTERNAL, false);
			return;
		}
		st->proxy_wait = true;
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
}

static void stream_dial(struct shard *s, struct conn *sc)
{
	struct stream *st = &sc->u.st;
	struct conn *tc = stream_tunnel(s, sc);
	const struct addrlist *al = st->dial ? st->dial : tc ? tc->u.tun->upstream_addrs : NULL;
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
	engine_steer_own(s->eng, fd);
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

void stream_open_client(struct shard *s, struct conn *tc, uint32_t id, const struct tun_open *o)
{
	struct tunnel *t = tc->u.tun;
	uint16_t port = o->port;
	struct conn *sc = conn_alloc(s, CK_STREAM, -1);
	if (!sc) {
		uint8_t m[TUN_HEADER_LEN + 3 + 32];
		size_t len = tun_encode_rst(m, sizeof(m), id, TUN_RST_INTERNAL, "no slots");
		tunnel_send_msg(s, tc, m, len);
		return;
	}
	sc->u.st.id = id;
	sc->u.st.port = port;
	for (size_t i = 0; i < s->cfg->nports; i++)
		if (s->cfg->ports[i] == port)
			sc->u.st.port_slot = (uint16_t)i;
	if (idmap_put(&t->ids, id, sc->idx) != 0) {
		conn_close(s, sc);
		return;
	}
	stream_link(s, tc, sc);
	if (o->flags & (TUN_OPEN_PROXY_V1 | TUN_OPEN_PROXY_V2)) {
		char rs[TUN_MAX_STR + 1], ls[TUN_MAX_STR + 1];
		snprintf(rs, sizeof(rs), "%.*s", o->remote.len, (const char *)o->remote.p);
		snprintf(ls, sizeof(ls), "%.*s", o->local.len, (const char *)o->local.p);
		sc->u.st.pre = malloc(PROXY_V1_MAX + 1);
		size_t n = sc->u.st.pre
		                   ? proxy_build(sc->u.st.pre, PROXY_V1_MAX + 1,
		                                 o->flags & TUN_OPEN_PROXY_V2 ? 2 : 1, rs, ls)
		                   : 0;
		if (!n) {
			log_warn("cannot build a PROXY header for the upstream",
			         "remote=%s local=%s", log_q(rs), log_q(ls));
			stream_reset(s, sc, TUN_RST_INTERNAL, true);
			return;
		}
		sc->u.st.pre_len = (uint16_t)n;
	}
	stream_dial(s, sc);
}

static void on_stream_connect(struct shard *s, struct conn *sc, int res)
{
	struct stream *st = &sc->u.st;
	if (sc->closing)
		return;
	if (res < 0) {
		struct conn *tc = stream_tunnel(s, sc);
		const struct addrlist *al = st->dial ? st->dial
		                            : tc     ? tc->u.tun->upstream_addrs
		                                     : NULL;
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
	st->connecting = false;
	stream_maybe_send(s, sc);
	stream_maybe_recv(s, sc);
	stream_check_done(s, sc);
}

void tunnel_on_cqe(struct shard *s, struct conn *c, struct tok t, struct io_uring_cqe *cqe)
{
	switch (t.op) {
	case OP_TUN_RECV:
		on_tun_recv(s, c, cqe);
		break;
	case OP_TUN_SEND:
		on_tun_send(s, c, cqe->res);
		break;
	case OP_STREAM_CONNECT:
		on_stream_connect(s, c, cqe->res);
		break;
	case OP_STREAM_RECV:
		on_stream_recv(s, c, cqe);
		break;
	case OP_STREAM_SEND:
		on_stream_send(s, c, cqe->res);
		break;
	case OP_STREAM_PROXY:
		on_stream_proxy(s, c, cqe->res);
		break;
	case OP_STREAM_POLL:
		on_stream_poll(s, c, cqe->res);
		break;
	case OP_TUN_POLL:
		c->u.tun->rx_poll_armed = false;
		if (c->closing || cqe->res == -ECANCELED)
			break;
		if (cqe->res < 0)
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, strerror(-cqe->res));
		else
			tunnel_rx_inline(s, c);
		break;
	case OP_STREAM_POLLOUT:
		on_stream_pollout(s, c, cqe->res);
		break;
	case OP_TUN_POLLOUT:
		c->u.tun->pollout_armed = false;
		if (cqe->res < 0 && cqe->res != -ECANCELED && !c->closing)
			tunnel_fail(s, c, WS_CLOSE_ABNORMAL, strerror(-cqe->res));
		else if (!c->closing)
			mark_dirty(s, c);
		break;
	default:
		break;
	}
}

/* ---- --local forwarding ------------------------------------------------------------ */

#define FWD_MAX 16

struct fwd_target {
	char name[TUN_MAX_STR + 1];
	struct addrlist al;
};

void stream_open_local(struct shard *s, struct conn *tc, int fd, const char *target,
                       uint16_t rport)
{
	struct tunnel *t = tc->u.tun;
	struct conn *sc = conn_alloc(s, CK_STREAM, fd);
	if (!sc) {
		close(fd);
		return;
	}
	struct stream *st = &sc->u.st;
	st->port = rport;
	st->port_slot = STATS_PORTS - 1; /* not a tunnelled port: not in the port metrics */
	st->id = next_stream_id(t);
	if (idmap_put(&t->ids, st->id, sc->idx) != 0) {
		sc->rst = true;
		conn_close(s, sc);
		return;
	}
	stream_link(s, tc, sc);
	struct sockaddr_storage ra;
	socklen_t rl = sizeof(ra);
	char rs[72] = "";
	if (getpeername(fd, (struct sockaddr *)&ra, &rl) == 0)
		addr_format((struct sockaddr *)&ra, rs, sizeof(rs));
	/* A client-opened OPEN carries the target "host:port" in its local field. */
	struct tun_open o = {
	        .port = rport, .remote = tun_str_from(rs), .local = tun_str_from(target)};
	uint8_t m[TUN_HEADER_LEN + 2 + 2 + 2 * TUN_MAX_STR];
	size_t len = tun_encode_open(m, sizeof(m), st->id, &o);
	tunnel_send_msg(s, tc, m, len);
	stream_maybe_recv(s, sc);
}

/* The target's addresses, resolved on first use on this tunnel (blocking: once per distinct
 * target per client connection). NULL if it does not resolve. */
static const struct addrlist *fwd_resolve(struct engine *e, struct tunnel *t,
                                          const char *target)
{
	for (int i = 0; i < t->nfwd; i++)
		if (strcmp(t->fwd[i].name, target) == 0)
			return &t->fwd[i].al;
	if (!t->fwd) {
		t->fwd = calloc(FWD_MAX, sizeof(*t->fwd));
		if (!t->fwd)
			return NULL;
	}
	const char *colon = strrchr(target, ':');
	if (!colon || t->nfwd == FWD_MAX)
		return NULL;
	char host[TUN_MAX_STR + 1];
	snprintf(host, sizeof(host), "%.*s", (int)(colon - target), target);
	long port = strtol(colon + 1, NULL, 10);
	if (port <= 0 || port > 65535)
		return NULL;
	struct fwd_target *f = &t->fwd[t->nfwd];
	if (net_resolve(host, (uint16_t)port, &f->al) != 0)
		return NULL;
	snprintf(f->name, sizeof(f->name), "%s", target);
	t->nfwd++;
	if (net_addrs_local(&f->al))
		engine_steer(e, &f->al, (uint16_t)port, SM_EP_DIAL);
	return &f->al;
}

void stream_open_forwarded(struct shard *s, struct conn *tc, const struct tun_msg *m)
{
	struct tunnel *t = tc->u.tun;
	const struct tun_open *o = &m->u.open;
	char target[TUN_MAX_STR + 1];
	snprintf(target, sizeof(target), "%.*s", o->local.len, (const char *)o->local.p);
	uint8_t out[TUN_HEADER_LEN + 3 + 64];
	struct conn *dup;
	if ((m->stream & 1) || lookup_stream(s, t, m->stream, &dup)) {
		tunnel_fail(s, tc, WS_CLOSE_PROTOCOL,
		            "client OPEN with a server stream id or "
		            "an id in use");
		return;
	}
	const struct addrlist *al = fwd_resolve(s->eng, t, target);
	struct conn *sc = al ? conn_alloc(s, CK_STREAM, -1) : NULL;
	if (!sc) {
		log_warn("cannot forward a client connection (--local)",
		         "client_id=%s target=%s "
		         "why=%s",
		         log_q(t->client_id), log_q(target),
		         al ? "no slots" : "does not resolve");
		size_t len = tun_encode_rst(out, sizeof(out), m->stream, TUN_RST_UNREACHABLE,
		                            "target does not resolve");
		tunnel_send_msg(s, tc, out, len);
		return;
	}
	struct stream *st = &sc->u.st;
	st->id = m->stream;
	st->port = o->port;
	st->port_slot = STATS_PORTS - 1;
	st->dial = al;
	if (idmap_put(&t->ids, st->id, sc->idx) != 0) {
		conn_close(s, sc);
		return;
	}
	stream_link(s, tc, sc);
	log_debug("forwarding a client connection", "client_id=%s stream=%u target=%s",
	          log_q(t->client_id), st->id, log_q(target));
	stream_dial(s, sc);
}
