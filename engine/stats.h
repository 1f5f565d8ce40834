/* engine/stats.h — per-shard counters. Each shard writes only its own (relaxed atomics,
 * no locks on the data path); a scrape sums them across shards (engine/metrics.c). */
#ifndef RINGLET_ENGINE_STATS_H
#define RINGLET_ENGINE_STATS_H

#include <stdint.h>

#define STATS_PORTS 1024 /* port slots: the registry's (server) or --ports index (client) */
#define STATS_RST_REASONS 16
#define STATS_RTT_BUCKETS 13
#define STATS_REQ_SLOTS 48

enum hs_fail {
	HS_UNAUTHORIZED, /* server: bad or missing token; client: 401 from the server */
	HS_BAD_REQUEST,  /* malformed HTTP or upgrade */
	HS_TIMEOUT,      /* connect + upgrade + HELLO/WELCOME took too long */
	HS_VERSION,      /* no common protocol version */
	HS_CONNECT,      /* client: cannot reach the server */
	HS_UPGRADE,      /* client: the server did not accept the upgrade */
	HS_TLS,          /* the TLS handshake failed (certificate, protocol, plain HTTP) */
	HS_MAX,
};

struct port_stats {
	uint64_t conns_total;
	uint64_t conns_active;
	uint64_t bytes_received; /* from the local socket (data-plane client / upstream) */
	uint64_t bytes_sent;     /* to the local socket */
};

struct req_stat {
	uint16_t code;
	uint8_t path; /* enum in httpd.c */
	uint64_t count;
};

struct shard_stats {
	uint64_t loops;              /* event-loop turns */
	uint64_t completions;        /* CQEs handled */
	uint64_t busy_ns;            /* time spent handling CQEs */
	uint64_t bytes_up;           /* socket -> tunnel payload bytes */
	uint64_t bytes_down;         /* tunnel -> socket payload bytes */
	uint64_t bytes_spliced;      /* of bytes_up, those moved by splice(2) */
	uint64_t bytes_spliced_down; /* of bytes_down, those moved by splice(2) */
	uint64_t splice_fallbacks;   /* splice(2) stopped at TCP urgent data: read by copy */
	uint64_t splice_switches;    /* auto: a stream's reads or a lane moved to splice */
	uint64_t bytes_forwarded;    /* of bytes_down, sent from where they arrived (no copy) */
	uint64_t forward_short; /* forwards the socket did not take whole (rest buffered) */
	uint64_t streams_total;
	uint64_t streams_active;
	uint64_t rst_sent[STATS_RST_REASONS];
	uint64_t rst_received[STATS_RST_REASONS];
	uint64_t bufring_empty; /* -ENOBUFS from a buffer ring */
	uint64_t tunnels_total;
	uint64_t reconnects; /* client: connection attempts after the first */
	uint64_t hs_fail[HS_MAX];
	uint64_t dial_failures;
	uint64_t dataplane_refused; /* data-plane connections with no client to carry them */
	uint64_t dataplane_denied;  /* data-plane connections from outside --allow-ips */
	uint64_t accept_paused;     /* listeners paused: out of descriptors or memory */
	uint64_t control_evicted;   /* pending control connections closed to make room */
	uint64_t auth_failures;     /* control requests with a wrong or missing token (401) */
	uint64_t auth_refused;      /* control requests refused unchecked (429, authlimit.h) */
	uint64_t rtt_bucket[STATS_RTT_BUCKETS]; /* cumulative counts are made at scrape time */
	uint64_t rtt_count;
	uint64_t rtt_sum_ns;
	struct port_stats port[STATS_PORTS];
	struct req_stat req[STATS_REQ_SLOTS];
};

/* Upper bounds of the RTT histogram buckets, in seconds (the last is +Inf). */
extern const double stats_rtt_bounds[STATS_RTT_BUCKETS];

#define STAT_ADD(s, field, n) __atomic_fetch_add(&(s)->stats.field, (n), __ATOMIC_RELAXED)
#define STAT_SUB(s, field, n) __atomic_fetch_sub(&(s)->stats.field, (n), __ATOMIC_RELAXED)
#define STAT_GET(p) __atomic_load_n(&(p), __ATOMIC_RELAXED)
/* A counter only its own shard writes: a plain (relaxed) store, no locked add. */
#define STAT_SET(s, field, v) __atomic_store_n(&(s)->stats.field, (v), __ATOMIC_RELAXED)

#endif
