/* engine/registry.h — the server's registry of connected clients and data-plane ports,
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

#define REG_MAX_SESSIONS 1024
#define REG_MAX_PORTS 1024 /* == STATS_PORTS */

struct reg_session {
	bool used;
	int shard;
	uint32_t idx;
	uint16_t gen;
	uint16_t nports;
	uint16_t ports[TUN_MAX_PORTS];
	char client_id[TUN_MAX_STR + 1];
	char remote[72];
	char upstream[TUN_MAX_STR + 1];
	int64_t since_unix;
	uint64_t bytes_in, bytes_out; /* tunnel bytes, written by the owning shard */
	uint64_t rtt_ns;
};

struct reg_port {
	bool used;
	uint16_t port;
	uint32_t rr;
	int fds[CFG_MAX_SHARDS];
};

struct registry {
	pthread_mutex_t mu;
	int ctl_fds[CFG_MAX_SHARDS];
	struct reg_session sess[REG_MAX_SESSIONS];
	struct reg_port ports[REG_MAX_PORTS];
	int nclients;
};

#endif
