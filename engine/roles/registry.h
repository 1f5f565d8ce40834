/* engine/roles/registry.h — the server's registry of connected clients and data-plane ports,
 * shared by the shards and guarded by `mu`. Touched when a client comes or goes, once per
 * accepted data-plane connection (to pick a client) and by scrapes — never per byte. A
 * session's byte counters are written only by the shard that owns its tunnel (relaxed
 * atomics) and read by scrapes. */
#ifndef RINGLET_ENGINE_REGISTRY_H
#define RINGLET_ENGINE_REGISTRY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/config.h"
#include "engine/mux/tunnel.h"
#include "proto/tunnel.h"

struct tls;

#define REG_MAX_SESSIONS 1024
#define REG_MAX_PORTS 1024 /* == STATS_PORTS */
#define REG_MAX_LANES 16
#define REG_HANDOFFS 256

/* One WebSocket connection of a session, and its counters (written only by the shard that
 * serves it). */
struct reg_lane {
	bool used;
	int shard;
	uint32_t idx;
	uint16_t gen;
	struct lane_ctr ctr; /* the tunnel's counters (its t->ctr) */
};

/* A client: its primary lane (0) and the lanes that joined it. */
struct reg_session {
	bool used;
	uint64_t id;
	uint16_t tunnel; /* the named tunnel it belongs to: index + 1; 0 without --tunnels */
	struct reg_lane lanes[REG_MAX_LANES];
	uint32_t lane_rr;
	uint16_t nports;
	uint16_t ports[TUN_MAX_PORTS];
	char client_id[TUN_MAX_STR + 1];
	char remote[72];
	char upstream[TUN_MAX_STR + 1];
	int64_t since_unix;
};

struct reg_port {
	bool used;
	uint16_t port;   /* the data-plane port this node listens on */
	uint16_t offer;  /* the port the clients offer (and dial upstream) for it */
	uint16_t tunnel; /* whose: a named tunnel's index + 1; 0 without --tunnels */
	uint32_t rr;
	int fds[CFG_MAX_SHARDS];
};

/* An upgraded control connection moving to the shard that serves its lane: filled by the
 * accepting shard, taken by the target (claimed and released with `busy`). */
struct handoff {
	int busy;  /* claimed by a sender (atomic: CAS acquire, store release when released) */
	int ready; /* filled: release by the sender before MSG_RING, acquire by the target */
	int fd;
	struct tls *tls;
	uint8_t *early;
	size_t early_len;
	char remote[72];
	char resp[512];
	size_t resp_len;
	int tenant; /* the named tunnel the upgrade's token names, -1 without --tunnels */
};

struct registry {
	pthread_mutex_t mu;
	struct handoff handoffs[REG_HANDOFFS];
	int ctl_fds[CFG_MAX_SHARDS];
	struct reg_session sess[REG_MAX_SESSIONS];
	struct reg_port ports[REG_MAX_PORTS];
	int nclients;
	int next_slot;
};

/* The client picked for a new data-plane connection: its lane's shard and slot, and the
 * port's counters slot. */
struct pick {
	int shard;
	uint32_t idx;
	uint16_t gen;
	uint16_t port_slot;
	uint16_t offer;  /* the port to name in OPEN (the client's) */
	uint16_t tunnel; /* the port's tunnel (index + 1, 0 without --tunnels) */
};

/* r is zeroed memory (calloc): the tables are large (about 1.8 MiB) and a slot never
 * used costs nothing then. */
void registry_init(struct registry *r);
void registry_destroy(struct registry *r);

/* Called with r->mu held. The open port entry for port, or NULL. A free port entry for
 * port (marked used; it carries port itself for tunnel 0 until the caller says
 * otherwise), or NULL when all REG_MAX_PORTS are. A free session slot, taken in
 * turn (not first-free: lanes of an ended session may still count bytes into their old
 * slot for a moment), or -1. The session with id, or NULL. */
struct reg_port *registry_port_find(struct registry *r, uint16_t port);
struct reg_port *registry_port_add(struct registry *r, uint16_t port);
int registry_session_slot(struct registry *r);
struct reg_session *registry_session_find(struct registry *r, uint64_t id);

/* Pick the client for a new connection on data-plane port `port` — round-robin over the
 * sessions of the port's tunnel offering its client-side port — and the lane to carry it: one
 * served by shard `here` when the client has one (the stream then stays on the shard that
 * accepted it), else the client's lanes in turn. false when no session offers the port. Takes
 * the lock. */
bool registry_pick(struct registry *r, uint16_t port, int here, struct pick *out);

/* A lane is gone (or leaving): lane 0 takes its whole session with it (the client re-opens
 * every lane under a new session); another lane only itself, and only if the registry
 * still knows it as (idx, gen). Nothing when the session slot went to another session.
 * Takes the lock. */
void registry_remove(struct registry *r, int slot, uint64_t session, uint16_t lane,
                     uint32_t idx, uint16_t gen);

/* The counters slot of an open port, or -1. Takes the lock. */
int registry_port_slot(struct registry *r, uint16_t port);
/* The same, and the client-side port it carries (*offer). Takes the lock. */
int registry_port_info(struct registry *r, uint16_t port, uint16_t *offer);

/* The shard serving lane 0 of session id, or -1. Takes the lock. */
int registry_lane0_shard(struct registry *r, uint64_t id);

#endif
