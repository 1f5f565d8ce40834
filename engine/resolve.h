/* engine/resolve.h — names resolved off the shards' loops.
 *
 * One thread per resolver calls getaddrinfo (net_resolve) for the names it watches and keeps
 * their answers fresh: a good answer lives RESOLVE_REFRESH_MS, then the name is resolved
 * again while the old answer is still served; a failed resolution is retried after
 * RESOLVE_RETRY_MIN_MS, doubling to RESOLVE_RETRY_MAX_MS, and a failed refresh keeps the
 * last good answer. A watcher may ask for an earlier try (resolver_kick), never sooner than
 * RESOLVE_RETRY_MIN_MS after the last one began. At most RESOLVE_NAMES_MAX names are
 * watched at once; they wait their turn in the order they fall due (the queue is the table).
 *
 * Watchers are numbered subscribers (a shard each): when a resolution of a name ends, the
 * eventfd of every subscriber that watches it becomes readable (resolver_fd), and the
 * subscriber reads the answer with resolver_get. The resolver thread logs when a watched
 * name stops resolving and, once, when it resolves again.
 *
 * Thread-safety: every function may be called from any thread once resolver_new returned;
 * resolver_free only after every other user stopped. */
#ifndef RINGLET_ENGINE_RESOLVE_H
#define RINGLET_ENGINE_RESOLVE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/net.h"

#define RESOLVE_NAMES_MAX 64       /* names watched at once, per resolver */
#define RESOLVE_SUBS_MAX 64        /* subscribers (one per shard) */
#define RESOLVE_REFRESH_MS 30000   /* a good answer's lifetime */
#define RESOLVE_RETRY_MIN_MS 1000  /* first retry after a failure; least gap between tries */
#define RESOLVE_RETRY_MAX_MS 16000 /* retries back off to this */

struct resolver;

/* A name's answer as resolver_get sees it. */
struct resolve_view {
	struct addrlist al; /* the last good answer (n == 0: none yet) */
	uint32_t gen;       /* changes whenever al does */
	bool busy;          /* a resolution is in flight (or due now) */
	bool failed;        /* the last resolution failed (al keeps the answer before it) */
	int err;            /* its EAI_* code (gai_strerror) */
};

/* A resolver for nsubs subscribers (1..RESOLVE_SUBS_MAX), its thread started. NULL when out
 * of memory or descriptors (logged). */
struct resolver *resolver_new(int nsubs);

/* Stop the thread (a resolution in progress is waited for), close the eventfds, free.
 * NULL is fine. */
void resolver_free(struct resolver *r);

/* Subscriber sub's eventfd (non-blocking): readable when a name it watches got an answer
 * or a failure. Owned by the resolver. -1 for a bad sub. */
int resolver_fd(const struct resolver *r, int sub);

/* Empty sub's eventfd (after it was readable). */
void resolver_ack(struct resolver *r, int sub);

/* Watch host (a name or an address, brackets allowed) with port in every address, for
 * subscriber sub; what names it in the resolver's log lines ("upstream"), NULL: the
 * watcher logs failures itself. The same host and port watched again share one entry (one
 * more reference; sub is added). The first resolution starts at once. Returns the name's
 * id (>= 0), -ENOSPC when RESOLVE_NAMES_MAX names are watched, -EINVAL for a bad host or
 * sub. */
int resolver_watch(struct resolver *r, const char *what, const char *host, uint16_t port,
                   int sub);

/* Drop one reference to id; the last one forgets the name. */
void resolver_unwatch(struct resolver *r, int id);

/* id's answer now. */
void resolver_get(struct resolver *r, int id, struct resolve_view *out);

/* Resolve id again soon: now when its last try began at least RESOLVE_RETRY_MIN_MS ago,
 * otherwise then. Nothing if a resolution is in flight. */
void resolver_kick(struct resolver *r, int id);

#endif
