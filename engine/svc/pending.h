/* engine/svc/pending.h — the control port's pending connections on one shard (still
 * reading a request or in a TLS handshake), shared fairly between source addresses.
 *
 * The table has a fixed size and never grows: at most PEND_MAX connections, each counted
 * against its source (an IPv4 address, or an IPv6 /64), and one source may hold at most
 * PEND_PER_SOURCE of them. A new connection always gets in; to make room it evicts one:
 *   - when its own source already holds its share: that source's oldest;
 *   - when the table is full (or the caller is short of something else, descriptors):
 *     the oldest connection of the busiest source (the one holding the most; among
 *     equals, the one whose connection is oldest).
 * So 600 connections from one address hold at most PEND_PER_SOURCE slots, and a new
 * connection from an address under its share never waits for a free one: it takes a slot
 * from whoever holds the most. Memory is the same whatever the attacker's address count:
 * the source table has PEND_MAX entries (no more sources than connections).
 *
 * Pure bookkeeping: no sockets, no shard; the caller (engine/svc/httpd.c) embeds a
 * struct pend_node in each connection's state and closes what pend_victim() names. */
#ifndef RINGLET_ENGINE_SVC_PENDING_H
#define RINGLET_ENGINE_SVC_PENDING_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define PEND_MAX 256                   /* pending control connections per shard */
#define PEND_PER_SOURCE (PEND_MAX / 8) /* of them, from one source address */

/* A source: an IPv4 address (as ::ffff:a.b.c.d) or an IPv6 /64 (the rest zero). */
struct pend_key {
	uint8_t b[16];
};

/* One pending connection (embedded in the caller's state). */
struct pend_node {
	struct pend_node *prev, *next; /* accept order, oldest first */
	uint16_t src;                  /* its entry in the source table */
	bool linked;
};

struct pend_src {
	struct pend_key key;
	uint32_t n; /* its pending connections; 0: the entry is free */
};

struct pending {
	struct pend_node *oldest, *newest;
	uint32_t n; /* linked nodes */
	struct pend_src src[PEND_MAX];
};

/* The source of a peer address (any other family: one shared key, all zero). */
void pend_key_from(struct pend_key *k, const struct sockaddr *sa);

/* Before admitting a connection from k: the pending connection to evict first (unlink it
 * with pend_remove and close it), or NULL when there is room. short_of_other: the caller
 * has no room for another reason (descriptors): evict as if the table were full (NULL
 * only when nothing is pending). */
struct pend_node *pend_victim(const struct pending *p, const struct pend_key *k,
                              bool short_of_other);

/* Admit node (not linked) from k, as the newest. There must be room (pend_victim
 * returned NULL, or its victim was removed). false when there is none (nothing changes). */
bool pend_add(struct pending *p, struct pend_node *node, const struct pend_key *k);

/* Unlink node (nothing when it is not linked). */
void pend_remove(struct pending *p, struct pend_node *node);

/* How many connections source k holds. */
uint32_t pend_count(const struct pending *p, const struct pend_key *k);

#endif
