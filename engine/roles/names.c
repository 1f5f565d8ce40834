/* engine/roles/names.c — the shards' side of the resolver (engine/resolve.h): each shard
 * polls its subscriber eventfd on its ring, brings the copies of answers its lanes hold up
 * to date when asked, and holds the streams whose far end's name is being resolved for the
 * first time until it answers (at most the dial timeout). Nothing here blocks. */
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "engine/log.h"
#include "engine/roles/internal.h"

/* A stream waiting for a name. */
struct name_wait {
	uint32_t idx;
	uint16_t gen;
	uint64_t since_ms;
	struct name_copy *nc;
	names_ready_fn ready; /* NULL: none */
};

/* One shard's side (touched only by its shard). */
struct names_shard {
	bool armed; /* OP_NAMES is in flight */
	bool timer; /* OP_NAMES_TIMER is in flight */
	struct name_wait *w;
	uint32_t n, cap;
};

int names_setup(struct engine *e)
{
	struct role_common *rc = role_of(e);
	rc->names = calloc((size_t)e->nshards, sizeof(*rc->names));
	rc->res = rc->names ? resolver_new(e->nshards) : NULL;
	if (!rc->res) {
		free(rc->names);
		rc->names = NULL;
		return -1;
	}
	return 0;
}

void names_stop(struct engine *e)
{
	struct role_common *rc = role_of(e);
	resolver_free(rc->res);
	rc->res = NULL;
	for (int i = 0; rc->names && i < e->nshards; i++)
		free(rc->names[i].w);
	free(rc->names);
	rc->names = NULL;
}

static struct names_shard *ns_of(struct shard *s)
{
	return &role_of(s->eng)->names[s->id];
}

void names_arm(struct shard *s)
{
	struct names_shard *ns = ns_of(s);
	if (ns->armed || s->stop)
		return;
	struct io_uring_sqe *sqe = shard_sqe(s, NULL, OP_NAMES, 0);
	io_uring_prep_poll_add(sqe, resolver_fd(role_of(s->eng)->res, s->id), POLLIN);
	ns->armed = true;
}

bool names_sync(struct shard *s, struct name_copy *nc, struct resolve_view *v)
{
	resolver_get(role_of(s->eng)->res, nc->id, v);
	if (v->gen == nc->gen)
		return false;
	nc->al = v->al;
	nc->gen = v->gen;
	return true;
}

static void arm_timer(struct shard *s, struct names_shard *ns)
{
	if (ns->timer || s->stop)
		return;
	struct io_uring_sqe *sqe = shard_sqe(s, NULL, OP_NAMES_TIMER, 0);
	io_uring_prep_timeout(sqe, &s->tick_ts, 0, 0);
	ns->timer = true;
}

void names_park(struct shard *s, struct conn *sc, struct name_copy *nc, names_ready_fn ready)
{
	struct names_shard *ns = ns_of(s);
	if (ns->n == ns->cap) {
		uint32_t cap = ns->cap ? ns->cap * 2 : 16;
		struct name_wait *w = realloc(ns->w, cap * sizeof(*w));
		if (!w) {
			stream_reset(s, sc, TUN_RST_INTERNAL, true);
			return;
		}
		ns->w = w;
		ns->cap = cap;
	}
	ns->w[ns->n++] = (struct name_wait){.idx = sc->idx,
	                                    .gen = sc->gen,
	                                    .since_ms = s->now_ms,
	                                    .nc = nc,
	                                    .ready = ready};
	names_arm(s);
	arm_timer(s, ns);
}

/* Dial or reset w's stream if its name answered, failed or took too long. True when w is
 * done (the stream went on, or is gone). */
static bool settle(struct shard *s, struct name_wait *w)
{
	struct conn *sc = conn_get(s, w->idx, w->gen);
	if (!sc || sc->closing || sc->kind != CK_STREAM || !stream_tunnel(s, sc))
		return true; /* reset meanwhile: its lane's copy may be gone, do not look */
	struct resolve_view v;
	names_sync(s, w->nc, &v);
	struct stream *st = conn_st(sc);
	if (w->nc->al.n) {
		st->dial = &w->nc->al;
		st->addr_try = 0;
		if (w->ready)
			w->ready(s, sc, w->nc);
		stream_dial(s, sc);
		return true;
	}
	bool late = s->now_ms - w->since_ms >= (uint64_t)s->cfg->dial_ms;
	if (v.busy && !late)
		return false;
	log_warn("a stream's far end has no address: reset", "port=%u stream=%u why=%s",
	         st->port, st->id,
	         late ? "name resolution timed out" : "name does not resolve");
	STAT_ADD(s, dial_failures, 1);
	stream_reset(s, sc, TUN_RST_UNREACHABLE, true);
	return true;
}

static void settle_all(struct shard *s)
{
	struct names_shard *ns = ns_of(s);
	uint32_t keep = 0;
	/* settle() may reset a stream, which never parks another: the list only shrinks. */
	for (uint32_t i = 0; i < ns->n; i++)
		if (!settle(s, &ns->w[i]))
			ns->w[keep++] = ns->w[i];
	ns->n = keep;
}

/* OP_NAMES: a name this shard watches got an answer or a failure. */
static void on_names(struct shard *s, struct conn *c, struct tok t, struct io_uring_cqe *cqe)
{
	(void)c;
	(void)t;
	(void)cqe;
	struct names_shard *ns = ns_of(s);
	ns->armed = false;
	resolver_ack(role_of(s->eng)->res, s->id);
	names_arm(s);
	settle_all(s);
	if (role_of(s->eng)->on_resolved)
		role_of(s->eng)->on_resolved(s);
}

/* OP_NAMES_TIMER: streams wait for names; reset those past the dial timeout. */
static void on_names_timer(struct shard *s, struct conn *c, struct tok t,
                           struct io_uring_cqe *cqe)
{
	(void)c;
	(void)t;
	(void)cqe;
	struct names_shard *ns = ns_of(s);
	ns->timer = false;
	settle_all(s);
	if (ns->n)
		arm_timer(s, ns);
}

void names_init(void)
{
	loop_on_shard(OP_NAMES, on_names);
	loop_on_shard(OP_NAMES_TIMER, on_names_timer);
}
