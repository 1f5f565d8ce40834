/* engine/roles/local.c — --local (client forwarding): the client carries connections
 * accepted on its --local listeners to targets that the server dials. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "ebpf/sockmap.h"
#include "engine/log.h"
#include "engine/roles/internal.h"

void stream_open_local(struct shard *s, struct conn *tc, int fd, const char *target,
                       uint16_t rport)
{
	struct conn *sc = stream_new(s, tc, fd, 0, rport, STATS_PORTS - 1);
	if (!sc)
		return;
	struct stream *st = conn_st(sc);
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
	stream_start(s, sc);
}

/* The target's copy of its answer on lane t, watched (off the loop) on first use: once
 * per distinct target per client connection. NULL when the target is malformed or no more
 * can be watched. */
static struct fwd_target *fwd_find(struct shard *s, struct srv_lane *t, const char *target)
{
	for (int i = 0; i < t->nfwd; i++)
		if (strcmp(t->fwd[i].name, target) == 0)
			return &t->fwd[i];
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
	memset(f, 0, sizeof(*f));
	f->nc.id = resolver_watch(role_of(s->eng)->res, "--local target", host, (uint16_t)port,
	                          s->id);
	if (f->nc.id < 0)
		return NULL;
	snprintf(f->name, sizeof(f->name), "%s", target);
	t->nfwd++;
	names_arm(s);
	return f;
}

void fwd_release(struct engine *e, struct srv_lane *sl)
{
	for (int i = 0; sl->fwd && i < sl->nfwd; i++)
		resolver_unwatch(role_of(e)->res, sl->fwd[i].nc.id);
	free(sl->fwd);
	sl->fwd = NULL;
	sl->nfwd = 0;
}

/* --sockmap: name the target's current addresses as dial endpoints of port, once per
 * answer, so the hop to a local target is steered from its first stream on. */
static void fwd_steer(struct shard *s, struct fwd_target *f, uint16_t port)
{
	if (f->nc.al.n && f->steered != f->nc.gen) {
		f->steered = f->nc.gen;
		if (net_addrs_local(&f->nc.al))
			steer_endpoint(s->eng, &f->nc.al, port, SM_EP_DIAL);
	}
}

/* A stream that waited for its target's first answer: steer it before the dial. */
static void fwd_ready(struct shard *s, struct conn *sc, struct name_copy *nc)
{
	struct fwd_target *f =
	        (struct fwd_target *)((char *)nc - offsetof(struct fwd_target, nc));
	fwd_steer(s, f, conn_st(sc)->port);
}

void stream_open_forwarded(struct shard *s, struct conn *tc, const struct tun_msg *m)
{
	struct tunnel *t = conn_tun(tc);
	const struct tun_open *o = &m->u.open;
	char target[TUN_MAX_STR + 1];
	snprintf(target, sizeof(target), "%.*s", o->local.len, (const char *)o->local.p);
	struct conn *dup;
	if ((m->stream & 1) || tunnel_lookup_stream(s, t, m->stream, &dup)) {
		tunnel_fail(s, tc, WS_CLOSE_PROTOCOL,
		            "client OPEN with a server stream id or "
		            "an id in use");
		return;
	}
	struct fwd_target *f = fwd_find(s, t->owner, target);
	struct resolve_view v = {.busy = false};
	if (f)
		names_sync(s, &f->nc, &v);
	if (f)
		fwd_steer(s, f, o->port);
	const char *why = NULL;
	struct conn *sc = NULL;
	if (!f) {
		why = "cannot watch the target's name";
	} else if (!f->nc.al.n && !v.busy) {
		why = "target does not resolve";
		resolver_kick(role_of(s->eng)->res, f->nc.id); /* try it again soon */
	} else {
		sc = stream_new(s, tc, -1, m->stream, o->port, STATS_PORTS - 1);
		why = sc ? NULL : "no slots";
	}
	if (why) {
		log_warn("cannot forward a client connection (--local)",
		         "client_id=%s target=%s why=%s", log_q(t->client_id), log_q(target),
		         log_q(why));
		tunnel_send_rst(s, tc, m->stream, TUN_RST_UNREACHABLE, why);
		return;
	}
	struct stream *st = conn_st(sc);
	st->dial = &f->nc.al;
	log_debug("forwarding a client connection", "client_id=%s stream=%u target=%s",
	          log_q(t->client_id), st->id, log_q(target));
	if (f->nc.al.n) {
		stream_dial(s, sc);
		return;
	}
	st->connecting = true; /* its first resolution runs: wait for it */
	names_park(s, sc, &f->nc, fwd_ready);
}
