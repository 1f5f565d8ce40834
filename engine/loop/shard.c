/* engine/loop/shard.c — the shard event loop, the completion dispatcher, connection slots and
 * counted close. */
#include <errno.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "engine/loop/engine.h"
#include "engine/svc/httpd.h"
#include "engine/log.h"
#include "engine/roles/server.h"
#include "engine/mux/tunnel.h"

#define SHARD_ENTRIES 1024
#define TICK_MS 250
#define TUN_RING_BUFS 16
#define TUN_RING_BUFSZ (256 * 1024)
#define STREAM_RING_BUFS 32
#define STREAM_RING_BUFSZ (256 * 1024) /* = CFG_DEFAULT_MAX_FRAME */

uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mono_ms(void)
{
	return mono_ns() / 1000000ull;
}

static struct __kernel_timespec ms_timespec(uint32_t ms)
{
	return (struct __kernel_timespec){.tv_sec = ms / 1000,
	                                  .tv_nsec = (long long)(ms % 1000) * 1000000ll};
}

int shard_init(struct shard *s, struct engine *e, int id)
{
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->eng = e;
	s->cfg = e->cfg;
	s->nconns = e->cfg->max_conns ? e->cfg->max_conns : CFG_DEFAULT_MAX_CONNS;
	if (s->nconns > 0xffffff)
		s->nconns = 0xffffff;
	/* calloc of a large table maps zero pages: untouched slots cost no memory. */
	s->conns = calloc(s->nconns, sizeof(*s->conns));
	if (!s->conns)
		return -ENOMEM;
	s->free_head = UINT32_MAX;
	s->wait_head = s->wait_tail = UINT32_MAX;
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->wake_fd == -1) {
		free(s->conns);
		return -errno;
	}
	s->ring_fd = -1;
	/* Timeouts an SQE points at must outlive it: one constant per shard, never rewritten.
	 */
	s->tick_ts = ms_timespec(TICK_MS);
	s->dial_ts = ms_timespec((uint32_t)e->cfg->dial_ms);
	s->handshake_ts = ms_timespec((uint32_t)e->cfg->handshake_ms);
	s->scratch = malloc(SHARD_SCRATCH);
	if (!s->scratch) {
		close(s->wake_fd);
		free(s->conns);
		return -ENOMEM;
	}
	return 0;
}

void shard_destroy(struct shard *s)
{
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	free(s->conns);
	s->conns = NULL;
	free(s->scratch);
	s->scratch = NULL;
	connlist_free(&s->reap);
	connlist_free(&s->dirty);
	while (s->item_free) {
		struct outitem *it = s->item_free;
		s->item_free = it->next;
		free(it);
	}
}

void shard_wake(struct shard *s)
{
	uint64_t one = 1;
	ssize_t r = write(s->wake_fd, &one, sizeof(one));
	(void)r; /* a full counter already means "wake" */
}

struct io_uring_sqe *shard_sqe(struct shard *s, struct conn *c, enum op op, uint16_t aux)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
	while (!sqe) {
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	struct tok t = {.op = (uint8_t)op, .aux = aux};
	if (c) {
		t.idx = c->idx;
		t.gen = c->gen;
		c->inflight++;
	}
	io_uring_sqe_set_data64(sqe, tok_encode(t));
	return sqe;
}

struct conn *conn_alloc(struct shard *s, enum conn_kind kind, int fd)
{
	struct conn *c;
	if (s->free_head != UINT32_MAX) {
		c = &s->conns[s->free_head];
		s->free_head = c->next_free;
	} else if (s->hiwater < s->nconns) {
		c = &s->conns[s->hiwater];
		c->idx = s->hiwater++;
	} else {
		return NULL;
	}
	uint16_t gen = c->gen;
	uint32_t idx = c->idx;
	memset(c, 0, sizeof(*c));
	c->idx = idx;
	c->gen = gen;
	c->kind = (uint8_t)kind;
	c->fd = fd;
	c->started_ms = s->now_ms;
	s->live++;
	return c;
}

struct conn *conn_get(struct shard *s, uint32_t idx, uint16_t gen)
{
	if (idx >= s->hiwater)
		return NULL;
	struct conn *c = &s->conns[idx];
	if (c->kind == CK_FREE || c->gen != gen)
		return NULL;
	return c;
}

static void conn_finalize(struct shard *s, struct conn *c)
{
	switch (c->kind) {
	case CK_TUNNEL:
		tunnel_release(s, c);
		break;
	case CK_STREAM:
		stream_release(s, c);
		break;
	case CK_HTTP:
		http_conn_release(s, c);
		break;
	default:
		break;
	}
	if (c->fd >= 0) {
		if (c->rst) {
			struct linger lg = {.l_onoff = 1, .l_linger = 0};
			setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(c->fd);
	}
	c->fd = -1;
	c->kind = CK_FREE;
	c->gen++;
	c->closing = false;
	c->next_free = s->free_head;
	s->free_head = c->idx;
	s->live--;
}

/* Connections closed with nothing in flight are finalized at the end of the loop turn,
 * never inside the handler that closed them (it may still hold the pointer). The list
 * grows as needed: a tunnel that ends may close thousands of idle streams at once. */
bool connlist_push(struct connlist *l, const struct conn *c)
{
	if (l->n == l->cap) {
		uint32_t ncap = l->cap ? l->cap * 2 : 1024;
		struct connref *nr = realloc(l->ref, ncap * sizeof(*nr));
		if (!nr)
			return false;
		l->ref = nr;
		l->cap = ncap;
	}
	l->ref[l->n].idx = c->idx;
	l->ref[l->n].gen = c->gen;
	l->n++;
	return true;
}

void connlist_free(struct connlist *l)
{
	free(l->ref);
	l->ref = NULL;
	l->n = l->cap = 0;
}

void conn_close(struct shard *s, struct conn *c)
{
	if (c->closing || c->kind == CK_FREE)
		return;
	c->closing = true;
	if (c->inflight > 0 && c->fd >= 0) {
		struct io_uring_sqe *sqe = shard_sqe(s, c, OP_CANCEL, 0);
		io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
	} else if (c->inflight == 0 && !connlist_push(&s->reap, c)) {
		/* Out of memory for the list: a NOP's completion finalizes it instead. */
		struct io_uring_sqe *sqe = shard_sqe(s, c, OP_CANCEL, 0);
		io_uring_prep_nop(sqe);
	}
}

static void reap(struct shard *s)
{
	/* Finalizing may close more (a tunnel's streams): they join the list behind. */
	for (uint32_t i = 0; i < s->reap.n; i++) {
		struct conn *c = &s->conns[s->reap.ref[i].idx];
		if (c->gen == s->reap.ref[i].gen && c->kind != CK_FREE && c->closing &&
		    c->inflight == 0)
			conn_finalize(s, c);
	}
	s->reap.n = 0;
}

struct outitem *item_get(struct shard *s)
{
	struct outitem *it = s->item_free;
	if (it)
		s->item_free = it->next;
	else
		it = malloc(sizeof(*it));
	if (!it)
		return NULL;
	memset(it, 0, offsetof(struct outitem, inl));
	it->inl_len = 0;
	it->from_ring = false;
	it->heap = NULL;
	it->data = NULL;
	it->data_len = 0;
	it->off = 0;
	it->st_idx = UINT32_MAX;
	it->pipe = NULL;
	return it;
}

void item_put(struct shard *s, struct outitem *it)
{
	free(it->heap);
	it->heap = NULL;
	it->next = s->item_free;
	s->item_free = it;
}

void shard_random4(struct shard *s, uint8_t out[4])
{
	if (s->rnd_pos == 0 || s->rnd_pos + 4 > sizeof(s->rnd)) {
		RAND_bytes(s->rnd, sizeof(s->rnd));
		s->rnd_pos = 0;
	}
	memcpy(out, s->rnd + s->rnd_pos, 4);
	s->rnd_pos += 4;
}

static void arm_tick(struct shard *s)
{
	struct io_uring_sqe *sqe = shard_sqe(s, NULL, OP_TIMER, 0);
	io_uring_prep_timeout(sqe, &s->tick_ts, 0, 0);
}

static void arm_wake(struct shard *s)
{
	struct io_uring_sqe *sqe = shard_sqe(s, NULL, OP_WAKE, 0);
	io_uring_prep_poll_add(sqe, s->wake_fd, POLLIN);
}

static bool shard_idle(struct shard *s)
{
	return s->cfg->mode == CFG_SERVER ? server_shard_idle(s) : client_shard_idle(s);
}

static void on_wake(struct shard *s)
{
	uint64_t n;
	ssize_t r = read(s->wake_fd, &n, sizeof(n));
	(void)r; /* the count does not matter, only that the main thread woke us */
	struct engine *e = s->eng;
	if (__atomic_load_n(&e->stop, __ATOMIC_ACQUIRE)) {
		s->stop = true;
		return;
	}
	if (s->cfg->mode == CFG_CLIENT)
		client_on_tick(s); /* lanes may have been asked to open or close */
	if (__atomic_load_n(&e->drain, __ATOMIC_ACQUIRE) && !s->draining) {
		s->draining = true;
		s->drain_deadline_ms = s->now_ms + (uint64_t)s->cfg->drain_ms;
		if (s->cfg->mode == CFG_SERVER)
			server_on_drain(s);
		else
			client_on_drain(s);
	}
}

static void on_tick(struct shard *s)
{
	for (uint32_t i = 0; i < s->hiwater; i++) {
		struct conn *c = &s->conns[i];
		if (c->kind == CK_TUNNEL && !c->closing)
			tunnel_tick(s, c);
		else if (c->kind == CK_HTTP && !c->closing)
			httpd_tick(s, c);
	}
	stream_wake_waiters(s);
	if (s->cfg->mode == CFG_SERVER)
		server_on_tick(s);
	else
		client_on_tick(s);
	if (s->draining) {
		if (shard_idle(s)) {
			s->stop = true;
		} else if (s->now_ms >= s->drain_deadline_ms) {
			log_warn("drain timeout: closing the remaining connections", "shard=%d",
			         s->id);
			for (uint32_t i = 0; i < s->hiwater; i++) {
				struct conn *c = &s->conns[i];
				if (c->kind != CK_FREE && !c->closing) {
					c->rst = c->kind == CK_STREAM;
					conn_close(s, c);
				}
			}
			s->stop = true;
		}
	}
}

static void dispatch(struct shard *s, struct io_uring_cqe *cqe)
{
	struct tok t = tok_decode(io_uring_cqe_get_data64(cqe));
	switch (t.op) {
	case OP_TIMER:
		on_tick(s);
		if (!s->stop)
			arm_tick(s);
		return;
	case OP_WAKE:
		on_wake(s);
		if (!s->stop)
			arm_wake(s);
		return;
	case OP_MSG_SENT:
		if (cqe->res < 0) {
			log_error("cannot hand over to another shard", "shard=%d err=%s", s->id,
			          strerror(-cqe->res));
			if (t.aux == 1) /* idx carries an fd that is now ours to close */
				close((int)t.idx);
			else if (t.aux == 2) /* idx is a handoff slot to release */
				server_handoff_failed(s, t.idx);
		}
		return;
	case OP_XFER:
	case OP_LISTEN:
	case OP_HANDOFF:
		server_on_cqe(s, t, cqe);
		return;
	default:
		break;
	}

	if (t.idx >= s->hiwater) {
		log_error("completion for an unknown slot", "op=%u idx=%u", t.op, t.idx);
		return;
	}
	struct conn *c = &s->conns[t.idx];
	if (c->gen != t.gen || c->kind == CK_FREE) {
		/* Cannot happen with counted close; if it does, give a buffer back. */
		log_error("stale completion", "op=%u idx=%u gen=%u/%u", t.op, t.idx, t.gen,
		          c->gen);
		return;
	}
	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->inflight--;

	switch (t.op) {
	case OP_CANCEL:
	case OP_LINK_TIMEOUT:
		break;
	case OP_TUN_RECV:
	case OP_TUN_SEND:
	case OP_STREAM_CONNECT:
	case OP_STREAM_RECV:
	case OP_STREAM_SEND:
	case OP_STREAM_PROXY:
	case OP_STREAM_POLL:
	case OP_TUN_POLLOUT:
	case OP_TUN_POLL:
	case OP_STREAM_POLLOUT:
		tunnel_on_cqe(s, c, t, cqe);
		break;
	default:
		if (c->kind == CK_HTTP || c->kind == CK_LISTEN)
			httpd_on_cqe(s, c, t, cqe);
		else if (s->cfg->mode == CFG_SERVER)
			server_on_cqe(s, t, cqe);
		else
			client_on_cqe(s, t, cqe);
		break;
	}
	if (c->kind != CK_FREE && c->closing && c->inflight == 0 && c->gen == t.gen)
		conn_finalize(s, c);
}

void *shard_main(void *arg)
{
	struct shard *s = arg;
	struct engine *e = s->eng;
	char name[16];
	snprintf(name, sizeof(name), "ringlet-s%d", s->id);
	pthread_setname_np(pthread_self(), name);

	int ret = uring_ring_init(&s->ring, SHARD_ENTRIES);
	if (ret == 0) {
		__atomic_store_n(&s->ring_fd, s->ring.ring_fd, __ATOMIC_RELEASE);
		ret = bufring_init(&s->ring, &s->tun_ring, TUN_RING_BGID, TUN_RING_BUFS,
		                   TUN_RING_BUFSZ);
	}
	if (ret == 0)
		ret = bufring_init(&s->ring, &s->stream_ring, STREAM_RING_BGID,
		                   STREAM_RING_BUFS, STREAM_RING_BUFSZ);
	if (ret) {
		log_error("shard start failed", "shard=%d err=%s", s->id, strerror(-ret));
		__atomic_store_n(&s->running, false, __ATOMIC_RELEASE);
		__atomic_store_n(&e->stop, 1, __ATOMIC_RELEASE);
		return (void *)(intptr_t)ret;
	}
	s->now_ms = mono_ms();
	__atomic_store_n(&s->running, true, __ATOMIC_RELEASE);
	arm_tick(s);
	arm_wake(s);
	if (s->cfg->mode == CFG_SERVER)
		server_shard_start(s);
	else
		client_shard_start(s);

	while (!s->stop) {
		io_uring_submit_and_wait(&s->ring, 1);
		uint64_t t0 = mono_ns();
		s->now_ms = t0 / 1000000ull;
		unsigned head, n = 0;
		struct io_uring_cqe *cqe;
		io_uring_for_each_cqe(&s->ring, head, cqe)
		{
			dispatch(s, cqe);
			n++;
			if (s->stop)
				break;
		}
		io_uring_cq_advance(&s->ring, n);
		tunnel_flush_dirty(s);
		reap(s);
		s->stats.loops++;
		s->stats.completions += n;
		s->stats.busy_ns += mono_ns() - t0;
	}

	/* Leaving: close what is left, without waiting for completions (the ring goes). */
	for (uint32_t i = 0; i < s->hiwater; i++) {
		struct conn *c = &s->conns[i];
		if (c->kind == CK_FREE)
			continue;
		c->inflight = 0;
		c->closing = true;
		conn_finalize(s, c);
	}
	connlist_free(&s->reap);
	connlist_free(&s->dirty);
	bufring_free(&s->ring, &s->stream_ring);
	bufring_free(&s->ring, &s->tun_ring);
	io_uring_queue_exit(&s->ring);
	__atomic_store_n(&s->running, false, __ATOMIC_RELEASE);
	return NULL;
}
