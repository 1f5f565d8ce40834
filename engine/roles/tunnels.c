/* engine/roles/tunnels.c — the server's named tunnels (--tunnels): the loaded file, stable
 * ids across reloads, and live reload (SIGHUP, or a change of the file or of a token file
 * it names, seen with inotify on their directories: Kubernetes swaps a symlink when it
 * updates a mounted ConfigMap or Secret).
 *
 * A reload runs on the main thread: it parses the whole file; a file that does not parse
 * or validate changes nothing (logged with file:line, counted). Otherwise, under the
 * registry's lock, the new set replaces the old and each tunnel is compared by name: a
 * new one gets a new id; a removed one is marked to go (GOAWAY to its clients, its
 * streams drain up to --drain-timeout, then reset); one whose token changed is marked to be
 * disconnected; one whose bindings changed is marked to rebind; its data-plane ports that
 * no longer belong to a binding leave the registry. The shards are woken and apply what is
 * marked for their own connections (tunnels_on_wake): nothing else is touched. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/roles/internal.h"

#define TUNNEL_IDS_MAX 65535 /* distinct tunnel names since start */

/* Room for want ids (want <= TUNNEL_IDS_MAX): the table doubles until it holds them. */
static bool ids_reserve(struct tunnel_table *tt, uint32_t want)
{
	if (want <= tt->cap)
		return true;
	uint32_t cap = tt->cap ? tt->cap : 64;
	while (cap < want)
		cap *= 2;
	if (cap > TUNNEL_IDS_MAX)
		cap = TUNNEL_IDS_MAX;
	struct tunnel_id *ni = realloc(tt->ids, cap * sizeof(*ni));
	if (!ni)
		return false;
	memset(ni + tt->cap, 0, (cap - tt->cap) * sizeof(*ni));
	tt->ids = ni;
	tt->cap = cap;
	return true;
}

/* The id of the tunnel called name, or 0. */
static uint32_t id_by_name(const struct tunnel_table *tt, const char *name)
{
	for (uint32_t i = 0; i < tt->nids; i++)
		if (strcmp(tt->ids[i].name, name) == 0)
			return i + 1;
	return 0;
}

const struct tenant *tunnel_by_id(const struct server *srv, uint32_t id)
{
	const struct tunnel_table *tt = srv->tt;
	if (!tt || id == 0 || id > tt->nids || tt->ids[id - 1].index < 0)
		return NULL;
	return &tt->set->t[tt->ids[id - 1].index];
}

const char *server_tunnel_name(const struct server *srv, uint32_t id)
{
	const struct tunnel_table *tt = srv->tt;
	return tt && id && id <= tt->nids ? tt->ids[id - 1].name : NULL;
}

bool server_tunnels_stats(const struct server *srv, struct tunnels_stats *out)
{
	struct tunnel_table *tt = srv->tt;
	if (!tt)
		return false;
	pthread_mutex_lock(&srv->reg->mu);
	out->configured = tt->set->n;
	out->connected = 0;
	out->failed = 0;
	for (size_t i = 0; i < tt->set->n; i++)
		out->failed += tt->ids[tt->set->t[i].id - 1].bind_failed != 0;
	for (size_t i = 0; i < tt->set->n; i++) {
		uint32_t id = tt->set->t[i].id;
		for (int k = 0; k < REG_MAX_SESSIONS; k++)
			if (srv->reg->sess[k].used && srv->reg->sess[k].tunnel == id) {
				out->connected++;
				break;
			}
	}
	for (int i = 0; i < 32; i++)
		snprintf(out->sha256 + 2 * i, 3, "%02x", tt->set->sha256[i]);
	out->loaded_unix = tt->loaded_unix;
	pthread_mutex_unlock(&srv->reg->mu);
	out->reloads_ok = __atomic_load_n(&tt->reloads_ok, __ATOMIC_RELAXED);
	out->reloads_failed = __atomic_load_n(&tt->reloads_failed, __ATOMIC_RELAXED);
	return true;
}

void server_tunnels_view(struct server *srv, void (*fn)(void *ctx, const struct tunnel_view *v),
                         void *ctx)
{
	struct tunnel_table *tt = srv->tt;
	if (!tt)
		return;
	pthread_mutex_lock(&srv->reg->mu);
	for (size_t i = 0; i < tt->set->n; i++) {
		const struct tenant *t = &tt->set->t[i];
		const struct tunnel_id *ti = &tt->ids[t->id - 1];
		struct tunnel_view v = {.name = t->name,
		                        .ports = t->ports,
		                        .nports = t->nports,
		                        .bind_failed = ti->bind_failed,
		                        .bind_status = ti->bind_status};
		for (int k = 0; k < REG_MAX_SESSIONS; k++) {
			const struct reg_session *rs = &srv->reg->sess[k];
			if (!rs->used || rs->tunnel != t->id)
				continue;
			v.clients++;
			for (int l = 0; l < REG_MAX_LANES; l++) {
				v.bytes_in += __atomic_load_n(&rs->lanes[l].ctr.bytes_in,
				                              __ATOMIC_RELAXED);
				v.bytes_out += __atomic_load_n(&rs->lanes[l].ctr.bytes_out,
				                               __ATOMIC_RELAXED);
			}
		}
		fn(ctx, &v);
	}
	pthread_mutex_unlock(&srv->reg->mu);
}

int tunnels_find_token(struct server *srv, const char *tok, size_t len)
{
	struct tunnel_table *tt = srv->tt;
	pthread_mutex_lock(&srv->reg->mu);
	int i = tenants_find(tt->set, tok, len);
	int id = ROLE_TUNNEL_NONE;
	if (i >= 0)
		id = (int)tt->set->t[i].id;
	pthread_mutex_unlock(&srv->reg->mu);
	return id;
}

/* What the server adds to the file's own checks: no binding on the control port or
 * clashing with --data-addr (tenants_check_bindings), and one tunnel per data-plane port
 * on this node (the registry keys its ports by number). 0, or -1 with err. */
static int check_set(const struct cfg *c, const struct tenant_set *set, char *err,
                     size_t errlen)
{
	const char *data = c->data_addr && c->data_addr[0] ? c->data_addr : NULL;
	if (tenants_check_bindings(set, c->tunnels_file, data, c->control_addr, c->control_port,
	                           err, errlen) != 0)
		return -1;
	for (size_t i = 0; i < set->n; i++)
		for (uint16_t k = 0; k < set->t[i].nports; k++)
			for (size_t j = 0; j < i; j++)
				for (uint16_t m = 0; m < set->t[j].nports; m++)
					if (set->t[j].ports[m].listen_port ==
					    set->t[i].ports[k].listen_port) {
						snprintf(err, errlen,
						         "%s:%d: port %u is also tunnel %s's "
						         "binding (one tunnel per port on a "
						         "node)",
						         c->tunnels_file,
						         set->t[i].ports[k].line,
						         set->t[i].ports[k].listen_port,
						         set->t[j].name);
						return -1;
					}
	return 0;
}

/* Do two tunnels expose the same ports at the same places? */
static bool same_bindings(const struct tenant *a, const struct tenant *b)
{
	if (a->nports != b->nports)
		return false;
	for (uint16_t i = 0; i < a->nports; i++) {
		const struct tenant_port *p = tenant_port(b, a->ports[i].port);
		if (!p || p->listen_port != a->ports[i].listen_port ||
		    strcmp(p->listen_addr, a->ports[i].listen_addr) != 0)
			return false;
	}
	return true;
}

/* Does set differ from the running one in anything a reload acts on (names, tokens,
 * bindings) or in the file's bytes? (Called with the lock held.) */
static bool differs(const struct tunnel_table *tt, const struct tenant_set *set)
{
	if (memcmp(tt->set->sha256, set->sha256, sizeof(set->sha256)) != 0 ||
	    tt->set->n != set->n)
		return true;
	for (size_t i = 0; i < set->n; i++) {
		const struct tenant *a = &set->t[i], *b = NULL;
		for (size_t j = 0; j < tt->set->n && !b; j++)
			if (strcmp(tt->set->t[j].name, a->name) == 0)
				b = &tt->set->t[j];
		if (!b || strcmp(a->token, b->token) != 0 || !same_bindings(a, b))
			return true;
	}
	return false;
}

/* Give every tunnel of the new set its id (called with the lock held). false: out of ids
 * or memory (nothing changed). */
static bool assign_ids(struct tunnel_table *tt, struct tenant_set *set)
{
	uint32_t need = 0;
	for (size_t i = 0; i < set->n; i++)
		need += id_by_name(tt, set->t[i].name) == 0;
	if (tt->nids + need > TUNNEL_IDS_MAX)
		return false;
	if (!ids_reserve(tt, tt->nids + need))
		return false;
	for (size_t i = 0; i < set->n; i++) {
		uint32_t id = id_by_name(tt, set->t[i].name);
		if (!id) {
			id = ++tt->nids;
			snprintf(tt->ids[id - 1].name, sizeof(tt->ids[id - 1].name), "%s",
			         set->t[i].name);
			tt->ids[id - 1].index = -1;
		}
		set->t[i].id = id;
	}
	return true;
}

/* Replace the set (lock held): mark what each shard must do, drop ports of bindings that
 * are gone. Returns the counts for the log line. */
static void apply(struct server *srv, struct tenant_set *set, uint64_t gen, int *added,
                  int *removed, int *retoken, int *rebound)
{
	struct tunnel_table *tt = srv->tt;
	struct registry *r = srv->reg;
	for (uint32_t id = 1; id <= tt->nids; id++) {
		struct tunnel_id *ti = &tt->ids[id - 1];
		const struct tenant *old = ti->index >= 0 ? &tt->set->t[ti->index] : NULL;
		const struct tenant *neu = NULL;
		for (size_t i = 0; i < set->n && !neu; i++)
			if (set->t[i].id == id)
				neu = &set->t[i];
		if (!old && neu) {
			(*added)++;
		} else if (old && !neu) {
			ti->goaway_gen = gen;
			(*removed)++;
		} else if (old && neu) {
			if (strcmp(old->token, neu->token) != 0) {
				ti->kick_gen = gen;
				(*retoken)++;
			}
			if (!same_bindings(old, neu)) {
				ti->rebind_gen = gen;
				(*rebound)++;
			}
		}
		ti->index = -1;
	}
	for (size_t i = 0; i < set->n; i++) {
		tt->ids[set->t[i].id - 1].index = (int32_t)i;
		__atomic_store_n(&tt->ids[set->t[i].id - 1].max_streams, set->t[i].max_streams,
		                 __ATOMIC_RELAXED);
	}
	/* Data-plane ports whose tunnel is gone, or that are no longer one of its
	 * bindings, leave the registry; their listeners close on every shard. */
	for (int k = 0; k < REG_MAX_PORTS; k++) {
		struct reg_port *rp = &r->ports[k];
		if (!rp->used || rp->tunnel == 0)
			continue;
		uint32_t id = rp->tunnel;
		const struct tenant *t = NULL;
		for (size_t i = 0; i < set->n && !t; i++)
			if (set->t[i].id == id)
				t = &set->t[i];
		const struct tenant_port *tp = t ? tenant_port(t, rp->offer) : NULL;
		if (!tp || tp->listen_port != rp->port)
			rp->used = false;
	}
	tenants_free(tt->set);
	free(tt->set);
	tt->set = set;
	tt->loaded_unix = time(NULL);
}

/* Re-read the file and apply it. Main thread. */
static void reload(struct engine *e, const char *why, bool explicit)
{
	struct server *srv = server_of(e);
	struct tunnel_table *tt = srv->tt;
	char err[512];
	struct tenant_set *set = calloc(1, sizeof(*set));
	int bad = !set || tenants_load(e->cfg->tunnels_file, set, err, sizeof(err)) != 0;
	if (!bad && check_set(e->cfg, set, err, sizeof(err)) != 0) {
		tenants_free(set);
		bad = 1;
	}
	if (bad) {
		if (!set)
			snprintf(err, sizeof(err), "out of memory");
		free(set);
		/* A broken file is said once per distinct error unless asked again (SIGHUP):
		 * other files' changes in the directory must not repeat it. */
		if (!explicit && strcmp(err, tt->last_err) == 0) {
			log_debug("tunnels file still not loadable", "err=%s", log_q(err));
			return;
		}
		snprintf(tt->last_err, sizeof(tt->last_err), "%s", err);
		__atomic_fetch_add(&tt->reloads_failed, 1, __ATOMIC_RELAXED);
		log_error("tunnels file not reloaded: the running tunnels stay",
		          "why=%s err=%s", why, log_q(err));
		return;
	}
	const char *op = e->cfg->token ? e->cfg->token : "";
	if (op[0] && tenants_find(set, op, strlen(op)) >= 0) {
		tenants_free(set);
		free(set);
		__atomic_fetch_add(&tt->reloads_failed, 1, __ATOMIC_RELAXED);
		log_error("tunnels file not reloaded: a tunnel uses the server's own --token",
		          "why=%s", why);
		return;
	}
	int added = 0, removed = 0, retoken = 0, rebound = 0;
	pthread_mutex_lock(&srv->reg->mu);
	if (!explicit && !differs(tt, set)) {
		/* Something else changed in a watched directory (another file, a log). */
		pthread_mutex_unlock(&srv->reg->mu);
		tenants_free(set);
		free(set);
		return;
	}
	bool ok = assign_ids(tt, set);
	uint64_t gen = tt->gen + 1;
	if (ok) {
		apply(srv, set, gen, &added, &removed, &retoken, &rebound);
		__atomic_store_n(&tt->gen, gen, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&srv->reg->mu);
	if (!ok) {
		tenants_free(set);
		free(set);
		__atomic_fetch_add(&tt->reloads_failed, 1, __ATOMIC_RELAXED);
		log_error(
		        "tunnels file not reloaded: too many distinct tunnel names since start",
		        "why=%s max=%d", why, TUNNEL_IDS_MAX);
		return;
	}
	__atomic_fetch_add(&tt->reloads_ok, 1, __ATOMIC_RELAXED);
	tt->last_err[0] = 0;
	tunnels_watch(e);
	log_info("tunnels file reloaded",
	         "why=%s tunnels=%zu added=%d removed=%d token_changed=%d "
	         "rebound=%d",
	         why, set->n, added, removed, retoken, rebound);
	engine_wake_all(e);
}

static void on_hup(struct engine *e)
{
	reload(e, "SIGHUP", true);
}

/* inotify: something changed in a watched directory. Drain the events, then reload once
 * if any was about the file or a token file. */
static void on_watch(struct engine *e)
{
	struct tunnel_table *tt = server_of(e)->tt;
	_Alignas(struct inotify_event) char buf[4096];
	bool hit = false;
	for (;;) {
		ssize_t n = read(tt->ino, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			hit |= ev->len > 0 || (ev->mask & IN_IGNORED) == 0;
			p += sizeof(*ev) + ev->len;
		}
	}
	if (hit)
		reload(e, "file-changed", false);
}

/* Watch the directories of the file and of its token files (a symlink swap in a directory
 * shows as a create or move there). */
void tunnels_watch(struct engine *e)
{
	struct tunnel_table *tt = server_of(e)->tt;
	if (tt->ino < 0)
		return;
	const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_ATTRIB;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", e->cfg->tunnels_file);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	if (inotify_add_watch(tt->ino, slash ? (dir[0] ? dir : "/") : ".", mask) == -1)
		log_warn("cannot watch the tunnels file's directory: reload with SIGHUP",
		         "dir=%s err=%s", log_q(dir), log_q(strerror(errno)));
	for (size_t i = 0; i < tt->set->n; i++) {
		const char *f = tt->set->t[i].token_file;
		if (!f)
			continue;
		snprintf(dir, sizeof(dir), "%s", f);
		slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
		inotify_add_watch(tt->ino, slash ? (dir[0] ? dir : "/") : ".", mask);
	}
}

int tunnels_start(struct engine *e, struct server *srv)
{
	const struct cfg *c = e->cfg;
	char err[512];
	struct tunnel_table *tt = calloc(1, sizeof(*tt));
	if (!tt)
		return 1;
	tt->ino = -1;
	srv->tt = tt;
	tt->set = calloc(1, sizeof(*tt->set));
	if (!tt->set)
		return 1;
	if (tenants_load(c->tunnels_file, tt->set, err, sizeof(err)) != 0 ||
	    check_set(c, tt->set, err, sizeof(err)) != 0) {
		log_error("cannot load the tunnels file", "err=%s", log_q(err));
		return 2;
	}
	/* The operator's token gives /status and /metrics; no tunnel may use it. */
	const char *op = c->token ? c->token : "";
	if (op[0] && tenants_find(tt->set, op, strlen(op)) >= 0) {
		log_error("a tunnel uses the server's own --token (the operator's): refused",
		          "file=%s", log_q(c->tunnels_file));
		return 2;
	}
	if (!assign_ids(tt, tt->set))
		return 1;
	tt->loaded_unix = time(NULL);
	for (size_t i = 0; i < tt->set->n; i++) {
		tt->ids[tt->set->t[i].id - 1].index = (int32_t)i;
		tt->ids[tt->set->t[i].id - 1].max_streams = tt->set->t[i].max_streams;
	}
	tt->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (tt->ino == -1)
		log_warn("no inotify: reload the tunnels file with SIGHUP", "err=%s",
		         log_q(strerror(errno)));
	tunnels_watch(e);
	e->on_hup = on_hup;
	e->watch_fd = tt->ino;
	e->on_watch = on_watch;
	log_info("named tunnels loaded", "file=%s tunnels=%zu", log_q(c->tunnels_file),
	         tt->set->n);
	return 0;
}

void tunnels_stop(struct server *srv)
{
	struct tunnel_table *tt = srv->tt;
	if (!tt)
		return;
	if (tt->ino >= 0)
		close(tt->ino);
	if (tt->set)
		tenants_free(tt->set);
	free(tt->set);
	free(tt->ids);
	free(tt);
	srv->tt = NULL;
}

void tunnel_note_binding(struct server *srv, uint32_t id, uint16_t port, uint16_t status)
{
	struct tunnel_table *tt = srv->tt;
	if (!tt || id == 0 || id > tt->nids)
		return;
	struct tunnel_id *ti = &tt->ids[id - 1];
	if (status != TUN_PORT_OK) {
		ti->bind_failed = port;
		ti->bind_status = status;
	} else if (ti->bind_failed == port) {
		ti->bind_failed = 0;
	}
}

/* ---- on the shards --------------------------------------------------------------------- */

/* Count a data-plane stream of tunnel id in (+1, refused beyond its maxStreams when
 * check) or out (-1). Under the lock: a reload may move the ids. */
static bool count_stream(struct server *srv, uint32_t id, int delta, bool check)
{
	struct tunnel_table *tt = srv->tt;
	bool ok = true;
	pthread_mutex_lock(&srv->reg->mu);
	if (id && id <= tt->nids) {
		struct tunnel_id *ti = &tt->ids[id - 1];
		uint32_t n = __atomic_load_n(&ti->streams, __ATOMIC_RELAXED);
		if (delta > 0 && check && ti->max_streams && n >= ti->max_streams)
			ok = false;
		else
			__atomic_store_n(&ti->streams, delta > 0 ? n + 1 : n - 1,
			                 __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&srv->reg->mu);
	return ok;
}

static void stream_released(struct shard *s, struct conn *sc)
{
	count_stream(server_of(s->eng), conn_st(sc)->tag, -1, false);
}

bool tunnels_stream_admit(struct server *srv, uint32_t id)
{
	return !srv->tt || id == 0 || count_stream(srv, id, +1, true);
}

void tunnels_stream_opened(struct server *srv, uint32_t id, struct conn *sc)
{
	if (!srv->tt || id == 0)
		return;
	conn_st(sc)->tag = id;
	conn_st(sc)->on_release = stream_released;
}

void tunnels_stream_unadmit(struct server *srv, uint32_t id)
{
	if (srv->tt && id)
		count_stream(srv, id, -1, false);
}

/* Apply the reloads this shard has not seen: its lanes of removed tunnels get GOAWAY (and
 * a deadline), of tunnels whose token changed are closed, lane 0 of each session of a
 * rebound tunnel opens its new bindings; data-plane listeners whose port left the
 * registry close. */
void tunnels_on_wake(struct shard *s)
{
	struct server *srv = server_of(s->eng);
	struct tunnel_table *tt = srv->tt;
	if (!tt)
		return;
	uint64_t gen = __atomic_load_n(&tt->gen, __ATOMIC_ACQUIRE);
	uint64_t seen = tt->seen[s->id];
	if (gen == seen)
		return;
	tt->seen[s->id] = gen;
	for (uint32_t i = 0; i < s->hiwater; i++) {
		struct conn *c = &s->conns[i];
		if (c->closing)
			continue;
		if (c->kind == CK_LISTEN && c->u.listen.on_accept == server_on_data_accept) {
			if (registry_port_slot(srv->reg, c->u.listen.aux) < 0)
				conn_close(s, c);
			continue;
		}
		if (c->kind != CK_TUNNEL)
			continue;
		struct srv_lane *sl = conn_tun(c)->owner;
		if (!sl || sl->tunnel == 0)
			continue;
		pthread_mutex_lock(&srv->reg->mu);
		struct tunnel_id ti = tt->ids[sl->tunnel - 1];
		pthread_mutex_unlock(&srv->reg->mu);
		if (ti.kick_gen > seen) {
			log_info("tunnel token changed: disconnecting its client", "tunnel=%s",
			         log_q(ti.name));
			tunnel_fail(s, c, WS_CLOSE_POLICY, "the tunnel's token changed");
		} else if (ti.goaway_gen > seen) {
			log_info("tunnel removed: its client goes away", "tunnel=%s",
			         log_q(ti.name));
			tunnel_goaway(s, c, TUN_GOAWAY_NORMAL, "the tunnel was removed");
			sl->gone_ms = s->now_ms;
		} else if (ti.rebind_gen > seen && sl->lane == 0 && sl->reg_slot >= 0) {
			server_rebind(s, c);
		}
	}
}

/* A removed tunnel's lanes that still carry streams after --drain-timeout are closed
 * (their streams reset). */
void tunnels_tick(struct shard *s)
{
	if (!server_of(s->eng)->tt)
		return;
	for (uint32_t i = 0; i < s->hiwater; i++) {
		struct conn *c = &s->conns[i];
		if (c->kind != CK_TUNNEL || c->closing)
			continue;
		struct srv_lane *sl = conn_tun(c)->owner;
		if (sl && sl->gone_ms && s->now_ms - sl->gone_ms > (uint64_t)s->cfg->drain_ms)
			tunnel_fail(s, c, WS_CLOSE_GOING_AWAY, "the tunnel was removed");
	}
}
