/* engine/loop/conn.c — connection slots, counted close, the turn-end lists (reap, defer)
 * and listeners. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/loop/loop.h"

struct conn *conn_alloc(struct shard *s, uint8_t kind, int fd)
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
	c->kind = kind;
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

void fd_reset_close(int fd)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

void conn_finalize(struct shard *s, struct conn *c)
{
	const struct kind_ops *k = loop_kind_ops(c->kind);
	if (k && k->finalize)
		k->finalize(s, c);
	if (c->fd >= 0) {
		if (c->rst)
			fd_reset_close(c->fd);
		else
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

/* Connections closed with nothing in flight are finalized at the end of the loop turn,
 * never inside the handler that closed them (it may still hold the pointer). The list
 * grows as needed: a tunnel that ends may close thousands of idle streams at once. */
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

void loop_reap(struct shard *s)
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

void conn_defer(struct shard *s, struct conn *c)
{
	if (c->deferred)
		return;
	if (!connlist_push(&s->defer, c)) {
		/* Out of memory for the list: flush now instead. */
		const struct kind_ops *k = loop_kind_ops(c->kind);
		if (k && k->flush)
			k->flush(s, c);
		return;
	}
	c->deferred = true;
}

void loop_flush_deferred(struct shard *s)
{
	/* A flush may defer other connections (they join the list behind). */
	for (uint32_t i = 0; i < s->defer.n; i++) {
		struct conn *c = conn_get(s, s->defer.ref[i].idx, s->defer.ref[i].gen);
		if (!c)
			continue;
		c->deferred = false;
		const struct kind_ops *k = loop_kind_ops(c->kind);
		if (k && k->flush)
			k->flush(s, c);
	}
	s->defer.n = 0;
}

/* ---- listeners ---------------------------------------------------------------------- */

static void arm_accept(struct shard *s, struct conn *c)
{
	struct io_uring_sqe *sqe = shard_sqe(s, c, OP_ACCEPT, 0);
	io_uring_prep_multishot_accept(sqe, c->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	c->u.listen.armed = true;
}

void listen_here_flags(struct shard *s, int fd, listen_fn on_accept, uint16_t aux,
                       uint16_t flags)
{
	struct conn *c = conn_alloc(s, CK_LISTEN, fd);
	if (!c) {
		close(fd);
		return;
	}
	c->u.listen.on_accept = on_accept;
	c->u.listen.aux = aux;
	c->u.listen.flags = flags;
	arm_accept(s, c);
}

void listen_here(struct shard *s, int fd, listen_fn on_accept, uint16_t aux)
{
	listen_here_flags(s, fd, on_accept, aux, 0);
}

bool loop_fd_near_limit(const struct shard *s, int fd, int margin)
{
	int lim = s->eng->fd_limit;
	return lim > 0 && fd >= lim - margin;
}

/* The lowest free descriptor number right now (INT_MAX when none is free): a lower bound
 * of the descriptors the process holds, and what the next accept would get. */
static int fd_level(int any_fd)
{
	int fd = fcntl(any_fd, F_DUPFD_CLOEXEC, 0);
	if (fd == -1)
		return INT_MAX;
	close(fd);
	return fd;
}

#define ACCEPT_PAUSE_MIN_MS 250  /* one tick */
#define ACCEPT_PAUSE_MAX_MS 8000 /* the pause doubles up to this while it recurs */
#define YIELD_LOG_MS 10000       /* at most one warning per listener this often */

/* accept failed for lack of descriptors or memory: re-arming at once would fail again at
 * once (a spin, and a log line each time). Pause this listener instead, with a growing
 * back-off; the tick resumes it (loop_resume_listeners). Said once per pause at warn
 * level (they are rare and bounded by the back-off), counted. */
static void pause_accept(struct shard *s, struct conn *c, int err)
{
	uint32_t d = c->u.listen.backoff_ms ? c->u.listen.backoff_ms * 2 : ACCEPT_PAUSE_MIN_MS;
	c->u.listen.backoff_ms = d > ACCEPT_PAUSE_MAX_MS ? ACCEPT_PAUSE_MAX_MS : d;
	c->u.listen.paused = true;
	c->u.listen.resume_ms = s->now_ms + c->u.listen.backoff_ms;
	STAT_ADD(s, accept_paused, 1);
	log_warn("cannot accept: pausing the listener", "aux=%u err=%s pause_ms=%u",
	         c->u.listen.aux, log_q(strerror(-err)), c->u.listen.backoff_ms);
}

/* A yielding listener got fd within the descriptor reserve: refuse it (reset) and stop
 * accepting (cancel the multishot accept) until the tick sees descriptors below the
 * reserve again. Counted as a pause; a warning at most every YIELD_LOG_MS. */
static void yield_accept(struct shard *s, struct conn *c, int fd)
{
	fd_reset_close(fd);
	if (c->u.listen.paused)
		return; /* already; the cancel is on its way */
	c->u.listen.paused = c->u.listen.yielded = true;
	c->u.listen.resume_ms = s->now_ms;
	STAT_ADD(s, accept_paused, 1);
	if (c->u.listen.armed) {
		struct io_uring_sqe *sqe = shard_sqe(s, c, OP_CANCEL, 0);
		io_uring_prep_cancel_fd(sqe, c->fd, 0);
	}
	bool say = !c->u.listen.yield_logged_ms ||
	           s->now_ms - c->u.listen.yield_logged_ms >= YIELD_LOG_MS;
	if (say)
		c->u.listen.yield_logged_ms = s->now_ms;
	if (say || log_enabled(LOG_DEBUG))
		log_kv(say ? LOG_WARN : LOG_DEBUG,
		       "descriptors low: pausing the listener to keep the reserve",
		       "aux=%u fd=%d limit=%d reserve=%d", c->u.listen.aux, fd,
		       s->eng->fd_limit, s->eng->fd_reserve);
}

/* May a yielding listener accept again? Not until the next descriptor is a quarter of
 * the reserve below it (so that one freed descriptor does not resume it to pause again). */
static bool yield_over(struct shard *s, struct conn *c)
{
	const struct engine *e = s->eng;
	if (!(c->u.listen.flags & LISTEN_YIELD) || e->fd_limit <= 0)
		return true;
	return fd_level(c->fd) < e->fd_limit - e->fd_reserve - e->fd_reserve / 4;
}

void loop_resume_listeners(struct shard *s)
{
	for (uint32_t i = 0; i < s->hiwater; i++) {
		struct conn *c = &s->conns[i];
		if (c->kind != CK_LISTEN || c->closing || !c->u.listen.paused ||
		    c->u.listen.armed || s->now_ms < c->u.listen.resume_ms)
			continue;
		if (!yield_over(s, c))
			continue; /* looked at again next tick */
		if (c->u.listen.yielded)
			log_debug("descriptors below the reserve: the listener accepts again",
			          "aux=%u", c->u.listen.aux);
		c->u.listen.paused = c->u.listen.yielded = false;
		arm_accept(s, c);
	}
}

void loop_on_accept(struct shard *s, struct conn *c, struct tok t, struct io_uring_cqe *cqe)
{
	(void)t;
	int res = cqe->res;
	bool starved = res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM;
	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		c->u.listen.armed = false;
		if (!c->closing && !c->u.listen.paused) {
			if (starved)
				pause_accept(s, c, res);
			else
				arm_accept(s, c);
		}
	}
	if (res < 0) {
		if (res != -ECANCELED && !starved)
			log_warn("accept failed", "aux=%u err=%s", c->u.listen.aux,
			         log_q(strerror(-res)));
		return;
	}
	c->u.listen.backoff_ms = 0; /* accepting again: the next pause starts short */
	if (c->closing) {
		close(res);
		return;
	}
	if ((c->u.listen.flags & LISTEN_YIELD) &&
	    loop_fd_near_limit(s, res, s->eng->fd_reserve)) {
		yield_accept(s, c, res);
		return;
	}
	c->u.listen.on_accept(s, c->u.listen.aux, res);
}
