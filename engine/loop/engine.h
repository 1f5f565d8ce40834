/* engine/loop/engine.h — the process-wide engine: configuration, shards, and the hooks the
 * shard dispatcher calls for the server or the client role. */
#ifndef RINGLET_ENGINE_ENGINE_H
#define RINGLET_ENGINE_ENGINE_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/config.h"
#include "engine/loop/shard.h"

struct registry;
struct tls_ctx;
struct cidr;
struct local_fwd;
struct lane;
struct sockmap;

struct engine {
	const struct cfg *cfg;
	int nshards;
	struct shard *shards;
	int drain;            /* set by the main thread on the first SIGTERM/SIGINT */
	int stop;             /* set when every shard must leave at once */
	uint64_t start_unix;  /* seconds since the epoch */
	struct registry *reg; /* server */
	/* client: one lane per shard that runs one (heap, until the shards are joined). A
	 * lane's fields are its shard's, but `wanted`, written by lane 0's shard (atomic). */
	struct lane *lanes;
	int nlanes;
	uint64_t session; /* client: the session id WELCOME gave (atomic) */
	int connected;    /* client: lanes that got WELCOME (atomic) */
	int metrics_fd;   /* client: --metrics-addr listener until shard 0 takes it (atomic) */
	/* client with a wss:// URL: set before the shards start, or published once by the
	 * first lane that fetched the CA (auto-TLS; atomic, compare-and-swap). */
	struct tls_ctx *tls_client;
	struct tls_ctx *tls_server; /* server with --auto-tls or --tls-cert */
	char *ca_pem;               /* server auto-TLS: served at /.well-known/ca.crt */
	struct local_fwd *fwd;      /* client --local (heap; `fd` taken by shard 0, atomic) */
	int nfwd;
	struct cidr *allow; /* server --allow-ips */
	size_t n_allow;
	size_t ca_pem_len;
	struct sockmap *sm; /* --sockmap: the steering programs, NULL when not in use */
	char sm_why[256];   /* --sockmap auto: why it is not in use ("" when it is) */
	bool prepared;      /* engine_prepare() ran */
};

/* Role hooks called by the shard. Each role file implements its side. */
void server_on_cqe(struct shard *s, struct tok t, struct io_uring_cqe *cqe);
void server_on_tick(struct shard *s);
void server_on_drain(struct shard *s);
bool server_shard_idle(struct shard *s);
void client_on_cqe(struct shard *s, struct tok t, struct io_uring_cqe *cqe);
void client_on_tick(struct shard *s);
void client_on_drain(struct shard *s);
bool client_shard_idle(struct shard *s);

/* Client: register the --local listeners as hop endpoints with e->sm (the upstream's
 * endpoints are registered when a lane resolves it). */
void client_steer_listeners(struct engine *e);

/* Make each address of al with port a hop endpoint of e->sm (an all-zero address: every
 * address of its family, and of both for ::); nothing when steering is off. role:
 * SM_EP_LISTEN or SM_EP_DIAL (ebpf/sockmap.h). Failures are logged: those hops take TCP. */
void engine_steer(struct engine *e, const struct addrlist *al, uint16_t port, uint32_t role);

/* Mark fd, about to connect() to a SM_EP_DIAL endpoint, as ringlet's (nothing when steering
 * is off): only ringlet's own dialled connections are steered there. */
void engine_steer_own(struct engine *e, int fd);

/* What may refuse the start, before the role says it is listening or starting: loads the
 * --sockmap programs. Returns 0 or -errno (logged). engine_run() calls it if the role did
 * not. */
int engine_prepare(struct engine *e);

/* Start the shards (threads), wait for signals and the drain, join. Returns 0 or -errno. */
int engine_run(struct engine *e);

/* Send an fd (or any 32-bit value) to another shard: it arrives there as a CQE with
 * user_data = tok and res = value. 0 or -errno (the caller keeps ownership on error). */
int engine_msg(struct shard *from, int to_shard, struct tok t, int32_t value);

/* Send handoff slot t.idx to another shard; if the message cannot be posted, the slot is
 * released through server_handoff_failed() on this shard. 0 or -errno. */
int engine_msg_handoff(struct shard *from, int to_shard, struct tok t);
void server_handoff_failed(struct shard *s, uint32_t slot);

#endif
