/* engine/loop/shard.c — the shard event loop, the registration tables and the completion
 * dispatcher. */
#include <errno.h>
#include <malloc.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/loop/loop.h"

/* Under ASan or TSan the sanitizer's allocator owns the heap: glibc's malloc_trim() would
 * walk arenas glibc never set up (a SEGV in mtrim, seen in test_log_limits). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HEAP_TRIM() ((void)0)
#else
#define HEAP_TRIM() ((void)malloc_trim(0))
#endif

#define SHARD_ENTRIES 1024
#define TICK_MS 250

/* ---- registration (filled by the main thread before any shard starts; read-only
 * afterwards, so the shards read them without locks) ------------------------------------ */

struct handler {
	loop_cqe_fn fn;
	bool shard_level;
	void (*undelivered)(struct shard *s, uint32_t value);
};
static struct handler handlers[OP_TABLE];
static const struct kind_ops *kinds[CK_TABLE];
static struct {
	uint32_t nbufs, bufsz;
} ring_spec[LOOP_RINGS];

void loop_on(uint8_t op, loop_cqe_fn fn)
{
	handlers[op].fn = fn;
	handlers[op].shard_level = false;
}

void loop_on_shard(uint8_t op, loop_cqe_fn fn)
{
	handlers[op].fn = fn;
	handlers[op].shard_level = true;
}

void loop_on_undelivered(uint8_t op, void (*fn)(struct shard *s, uint32_t value))
{
	handlers[op].undelivered = fn;
}

void loop_kind(uint8_t kind, const struct kind_ops *ops)
{
	if (kind < CK_TABLE)
		kinds[kind] = ops;
}

const struct kind_ops *loop_kind_ops(uint8_t k)
{
	return k < CK_TABLE ? kinds[k] : NULL;
}

void loop_ring(uint16_t bgid, uint32_t nbufs, uint32_t bufsz)
{
	if (bgid < LOOP_RINGS) {
		ring_spec[bgid].nbufs = nbufs;
		ring_spec[bgid].bufsz = bufsz;
	}
}

void loop_msg_undelivered(struct shard *s, uint8_t op, uint32_t value)
{
	if (handlers[op].undelivered)
		handlers[op].undelivered(s, value);
}

/* ---- time ------------------------------------------------------------------------------ */

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

/* ---- shard life ------------------------------------------------------------------------ */

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
	s->scratch = malloc(SHARD_SCRATCH);
	if (!s->conns || !s->scratch) {
		free(s->conns);
		free(s->scratch);
		return -ENOMEM;
	}
	s->free_head = UINT32_MAX;
	s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->wake_fd == -1) {
		free(s->conns);
		free(s->scratch);
		return -errno;
	}
	s->ring_fd = -1;
	/* Timeouts an SQE points at must outlive it: one constant per shard, never rewritten.
	 */
	s->tick_ts = ms_timespec(TICK_MS);
	s->dial_ts = ms_timespec((uint32_t)e->cfg->dial_ms);
	s->handshake_ts = ms_timespec((uint32_t)e->cfg->handshake_ms);
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
	connlist_free(&s->defer);
}

void shard_wake(struct shard *s)
{
	uint64_t one = 1;
	ssize_t r = write(s->wake_fd, &one, sizeof(one));
	(void)r; /* a full counter already means "wake" */
}

struct io_uring_sqe *shard_sqe(struct shard *s, struct conn *c, uint8_t op, uint16_t aux)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
	while (!sqe) {
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	struct tok t = {.op = op, .aux = aux};
	if (c) {
		t.idx = c->idx;
		t.gen = c->gen;
		c->inflight++;
	}
	io_uring_sqe_set_data64(sqe, tok_encode(t));
	return sqe;
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

/* ---- tick and wake --------------------------------------------------------------------- */

#define FOR_HOOKS(e, h)                                                                        \
	for (int hi_ = 0; hi_ < (e)->nhooks; hi_++)                                            \
		for (const struct loop_hooks *h = (e)->hooks[hi_]; h; h = NULL)

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

/* Does any connection keep the draining shard running? */
static bool shard_busy(struct shard *s)
{
	for (uint32_t i = 0; i < s->hiwater; i++) {
		const struct kind_ops *k = loop_kind_ops(s->conns[i].kind);
		if (k && k->holds_drain)
			return true;
	}
	return false;
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
	FOR_HOOKS(e, h)
	if (h->wake)
		h->wake(s);
	if (__atomic_load_n(&e->drain, __ATOMIC_ACQUIRE) && !s->draining) {
		s->draining = true;
		s->drain_deadline_ms = s->now_ms + (uint64_t)s->cfg->drain_ms;
		FOR_HOOKS(e, h)
		if (h->drain)
			h->drain(s);
	}
}

/* The rings' period: shrink what demand left unused; a shard whose every ring went idle
 * releases memory once, at the end of the turn (rings_turn_end). */
static void rings_tick(struct shard *s)
{
	bool quiet = true;
	for (int i = 0; i < LOOP_RINGS; i++)
		if (s->rings[i].br && !bufring_tick(&s->rings[i], s->now_ms))
			quiet = false;
	if (quiet && !s->rings_quiet)
		s->rings_release = true;
	s->rings_quiet = quiet;
}

/* End of a loop turn: the rings' demand; on going quiet, the pages of the buffers the
 * kernel holds and the heap glibc keeps. The buffers may be released only while no request
 * can be writing into them: every completion is reaped (a buffer in an unreaped CQE is
 * in use) and, with IORING_SETUP_DEFER_TASKRUN, the kernel runs this ring's requests only
 * inside io_uring_enter. Without it, they stay (parked buffers are released regardless). */
static void rings_turn_end(struct shard *s, bool release)
{
	for (int i = 0; i < LOOP_RINGS; i++)
		if (s->rings[i].br)
			bufring_turn(&s->rings[i]);
	if (!release || !s->rings_release)
		return;
	s->rings_release = false;
	if (uring_feat.defer_taskrun && io_uring_cq_ready(&s->ring) == 0 &&
	    !io_uring_cq_has_overflow(&s->ring))
		for (int i = 0; i < LOOP_RINGS; i++)
			if (s->rings[i].br)
				bufring_release_idle(&s->rings[i]);
	HEAP_TRIM();
}

static void on_tick(struct shard *s)
{
	rings_tick(s);
	for (uint32_t i = 0; i < s->hiwater; i++) {
		struct conn *c = &s->conns[i];
		const struct kind_ops *k = loop_kind_ops(c->kind);
		if (k && k->tick && !c->closing)
			k->tick(s, c);
	}
	loop_resume_listeners(s);
	FOR_HOOKS(s->eng, h)
	if (h->tick)
		h->tick(s);
	if (!s->draining)
		return;
	if (!shard_busy(s)) {
		s->stop = true;
	} else if (s->now_ms >= s->drain_deadline_ms) {
		log_warn("drain timeout: closing the remaining connections", "shard=%d", s->id);
		for (uint32_t i = 0; i < s->hiwater; i++) {
			struct conn *c = &s->conns[i];
			const struct kind_ops *k = loop_kind_ops(c->kind);
			if (c->kind != CK_FREE && !c->closing) {
				c->rst = k && k->rst_on_abort;
				conn_close(s, c);
			}
		}
		s->stop = true;
	}
}

/* ---- the dispatcher -------------------------------------------------------------------- */

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
			log_error("cannot hand over to another shard", "shard=%d op=%u err=%s",
			          s->id, t.aux, strerror(-cqe->res));
			loop_msg_undelivered(s, (uint8_t)t.aux, t.idx);
		}
		return;
	default:
		break;
	}
	const struct handler *h = &handlers[t.op];
	if (h->shard_level) {
		h->fn(s, NULL, t, cqe);
		return;
	}
	if (t.idx >= s->hiwater) {
		log_error("completion for an unknown slot", "op=%u idx=%u", t.op, t.idx);
		return;
	}
	struct conn *c = &s->conns[t.idx];
	if (c->gen != t.gen || c->kind == CK_FREE) {
		/* Cannot happen with counted close. */
		log_error("stale completion", "op=%u idx=%u gen=%u/%u", t.op, t.idx, t.gen,
		          c->gen);
		return;
	}
	if (!(cqe->flags & IORING_CQE_F_MORE))
		c->inflight--;
	if (t.op == OP_ACCEPT)
		loop_on_accept(s, c, t, cqe);
	else if (h->fn)
		h->fn(s, c, t, cqe);
	/* OP_CANCEL, OP_LINK_TIMEOUT and unregistered ops only count. */
	if (c->kind != CK_FREE && c->closing && c->inflight == 0 && c->gen == t.gen)
		conn_finalize(s, c);
}

void shard_dispatch(struct shard *s, struct io_uring_cqe *cqe)
{
	dispatch(s, cqe);
}

void shard_tick(struct shard *s)
{
	on_tick(s);
}

void shard_turn_end(struct shard *s)
{
	loop_flush_deferred(s);
	loop_reap(s);
	rings_turn_end(s, false);
}

static int shard_setup(struct shard *s)
{
	int ret = uring_ring_init(&s->ring, SHARD_ENTRIES);
	if (ret)
		return ret;
	__atomic_store_n(&s->ring_fd, s->ring.ring_fd, __ATOMIC_RELEASE);
	for (uint16_t i = 0; i < LOOP_RINGS && ret == 0; i++)
		if (ring_spec[i].nbufs)
			ret = bufring_init(&s->ring, &s->rings[i], i, ring_spec[i].nbufs,
			                   ring_spec[i].bufsz);
	return ret;
}

static void shard_teardown(struct shard *s)
{
	for (uint16_t i = 0; i < LOOP_RINGS; i++)
		if (s->rings[i].br)
			bufring_free(&s->ring, &s->rings[i]);
	io_uring_queue_exit(&s->ring);
}

void *shard_main(void *arg)
{
	struct shard *s = arg;
	struct engine *e = s->eng;
	char name[16];
	snprintf(name, sizeof(name), "ringlet-s%d", s->id);
	pthread_setname_np(pthread_self(), name);

	int ret = shard_setup(s);
	if (ret) {
		log_error("shard start failed", "shard=%d err=%s", s->id, strerror(-ret));
		__atomic_store_n(&s->running, false, __ATOMIC_RELEASE);
		__atomic_store_n(&e->stop, 1, __ATOMIC_RELEASE);
		return (void *)(intptr_t)ret;
	}
	/* Every shard's ring exists before any starts work: a listener may otherwise accept
	 * a connection whose handling messages a shard that has no ring yet. */
	__atomic_fetch_add(&e->rings_up, 1, __ATOMIC_ACQ_REL);
	for (int tries = 0; tries < 10000; tries++) {
		if (__atomic_load_n(&e->rings_up, __ATOMIC_ACQUIRE) == e->nshards ||
		    __atomic_load_n(&e->stop, __ATOMIC_ACQUIRE))
			break;
		usleep(500);
	}
	s->now_ms = mono_ms();
	__atomic_store_n(&s->running, true, __ATOMIC_RELEASE);
	arm_tick(s);
	arm_wake(s);
	FOR_HOOKS(e, h)
	if (h->start && ret == 0)
		ret = h->start(s);
	if (ret) {
		log_error("shard start failed", "shard=%d err=%s", s->id, strerror(-ret));
		__atomic_store_n(&e->stop, 1, __ATOMIC_RELEASE);
		s->stop = true;
	}

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
		loop_flush_deferred(s);
		loop_reap(s);
		rings_turn_end(s, true);
		/* Only this thread writes them; scrapes read them (relaxed). */
		STAT_SET(s, loops, s->stats.loops + 1);
		STAT_SET(s, completions, s->stats.completions + n);
		STAT_SET(s, busy_ns, s->stats.busy_ns + (mono_ns() - t0));
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
	for (int i = e->nhooks - 1; i >= 0; i--)
		if (e->hooks[i]->stop)
			e->hooks[i]->stop(s);
	connlist_free(&s->reap);
	connlist_free(&s->defer);
	shard_teardown(s);
	__atomic_store_n(&s->running, false, __ATOMIC_RELEASE);
	return ret ? (void *)(intptr_t)ret : NULL;
}
