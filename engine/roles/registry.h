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
	uint64_t bytes_in, bytes_out; /* tunnel bytes */
	uint64_t rtt_ns;
};

/* A client: its primary lane (0) and the lanes that joined it. */
struct reg_session {
	bool used;
	uint64_t id;
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
	uint16_t port;
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

#endif
