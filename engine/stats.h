/* engine/stats.h — per-shard counters. Each shard writes only its own (relaxed atomics,
 * no locks on the data path); a scrape sums them across shards. */
#ifndef RINGLET_ENGINE_STATS_H
#define RINGLET_ENGINE_STATS_H

#include <stdint.h>

struct shard_stats {
	uint64_t loops;          /* event-loop turns */
	uint64_t completions;    /* CQEs handled */
	uint64_t busy_ns;        /* time spent handling CQEs */
	uint64_t bytes_up;       /* socket -> tunnel payload bytes */
	uint64_t bytes_down;     /* tunnel -> socket payload bytes */
	uint64_t streams_total;
	uint64_t streams_active;
	uint64_t resets_sent;
	uint64_t resets_received;
	uint64_t bufring_empty;  /* -ENOBUFS from a buffer ring */
	uint64_t tunnels_total;
	uint64_t handshake_failures;
	uint64_t dial_failures;
	uint64_t dataplane_refused; /* data-plane connections with no client to carry them */
};

#define STAT_ADD(s, field, n) __atomic_fetch_add(&(s)->stats.field, (n), __ATOMIC_RELAXED)
#define STAT_SUB(s, field, n) __atomic_fetch_sub(&(s)->stats.field, (n), __ATOMIC_RELAXED)

#endif
