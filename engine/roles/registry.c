/* engine/roles/registry.c — the server's registry of sessions and data-plane ports
 * (registry.h). */
#include <string.h>

#include "engine/roles/registry.h"

void registry_init(struct registry *r)
{
	pthread_mutex_init(&r->mu, NULL);
	for (int i = 0; i < CFG_MAX_SHARDS; i++)
		r->ctl_fds[i] = -1;
}

void registry_destroy(struct registry *r)
{
	pthread_mutex_destroy(&r->mu);
}

struct reg_port *registry_port_find(struct registry *r, uint16_t port)
{
	for (int i = 0; i < REG_MAX_PORTS; i++)
		if (r->ports[i].used && r->ports[i].port == port)
			return &r->ports[i];
	return NULL;
}

struct reg_port *registry_port_add(struct registry *r, uint16_t port)
{
	for (int i = 0; i < REG_MAX_PORTS; i++) {
		struct reg_port *rp = &r->ports[i];
		if (!rp->used) {
			rp->used = true;
			rp->port = port;
			rp->offer = port;
			rp->tunnel = 0;
			rp->rr = 0;
			return rp;
		}
	}
	return NULL;
}

int registry_session_slot(struct registry *r)
{
	for (int k = 0; k < REG_MAX_SESSIONS; k++) {
		int i = (r->next_slot + k) % REG_MAX_SESSIONS;
		if (!r->sess[i].used) {
			r->next_slot = (i + 1) % REG_MAX_SESSIONS;
			return i;
		}
	}
	return -1;
}

struct reg_session *registry_session_find(struct registry *r, uint64_t id)
{
	for (int i = 0; i < REG_MAX_SESSIONS; i++)
		if (r->sess[i].used && r->sess[i].id == id)
			return &r->sess[i];
	return NULL;
}

/* Does the session carry this port entry: the same tunnel, offering its client port? */
static bool offers(const struct reg_session *rs, const struct reg_port *rp)
{
	if (!rs->used || rs->tunnel != rp->tunnel)
		return false;
	for (int k = 0; k < rs->nports; k++)
		if (rs->ports[k] == rp->offer)
			return true;
	return false;
}

bool registry_pick(struct registry *r, uint16_t port, int here, struct pick *out)
{
	bool found = false;
	pthread_mutex_lock(&r->mu);
	struct reg_port *rp = registry_port_find(r, port);
	int n = 0;
	for (int i = 0; rp && i < REG_MAX_SESSIONS; i++)
		n += offers(&r->sess[i], rp);
	if (n) {
		int want = (int)(rp->rr++ % (uint32_t)n);
		struct reg_session *rs = NULL;
		for (int i = 0; i < REG_MAX_SESSIONS && !rs; i++)
			if (offers(&r->sess[i], rp) && want-- == 0)
				rs = &r->sess[i];
		/* The first lane in use from lane_rr on is the next in turn; lane_rr then
		 * moves past it (not by one: with fewer lanes than slots, a step of one would
		 * land on the same lane again and again). */
		struct reg_lane *pickl = NULL, *any = NULL;
		uint32_t next = rs->lane_rr;
		for (uint32_t k = 0; k < REG_MAX_LANES; k++) {
			uint32_t i = (rs->lane_rr + k) % REG_MAX_LANES;
			struct reg_lane *l = &rs->lanes[i];
			if (!l->used)
				continue;
			if (!any) {
				any = l;
				next = i + 1;
			}
			if (l->shard == here) {
				pickl = l;
				break;
			}
		}
		if (!pickl)
			pickl = any;
		rs->lane_rr = next % REG_MAX_LANES;
		if (pickl) {
			out->shard = pickl->shard;
			out->idx = pickl->idx;
			out->gen = pickl->gen;
			out->port_slot = (uint16_t)(rp - r->ports);
			out->offer = rp->offer;
			out->tunnel = rp->tunnel;
			found = true;
		}
	}
	pthread_mutex_unlock(&r->mu);
	return found;
}

void registry_remove(struct registry *r, int slot, uint64_t session, uint16_t lane,
                     uint32_t idx, uint16_t gen)
{
	if (slot < 0 || slot >= REG_MAX_SESSIONS || lane >= REG_MAX_LANES)
		return;
	pthread_mutex_lock(&r->mu);
	struct reg_session *rs = &r->sess[slot];
	/* The session may have ended (lane 0 left) and its slot gone to another client. */
	if (rs->used && rs->id == session) {
		if (lane == 0) {
			r->nclients--;
			rs->used = false;
		}
		struct reg_lane *l = &rs->lanes[lane];
		if (l->idx == idx && l->gen == gen)
			l->used = false;
	}
	pthread_mutex_unlock(&r->mu);
}

int registry_port_info(struct registry *r, uint16_t port, uint16_t *offer)
{
	pthread_mutex_lock(&r->mu);
	struct reg_port *rp = registry_port_find(r, port);
	int slot = rp ? (int)(rp - r->ports) : -1;
	if (rp)
		*offer = rp->offer;
	pthread_mutex_unlock(&r->mu);
	return slot;
}

int registry_port_slot(struct registry *r, uint16_t port)
{
	uint16_t offer;
	return registry_port_info(r, port, &offer);
}

int registry_lane0_shard(struct registry *r, uint64_t id)
{
	pthread_mutex_lock(&r->mu);
	struct reg_session *rs = registry_session_find(r, id);
	int shard = rs && rs->lanes[0].used ? rs->lanes[0].shard : -1;
	pthread_mutex_unlock(&r->mu);
	return shard;
}
