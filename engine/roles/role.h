/* engine/roles/role.h — the two roles on top of the mux: the server (exit node: registry,
 * HELLO/join, upgrades handed over by the control port, data-plane accept, PROXY in/out,
 * --local targets) and the client (lanes, backoff, upgrade, upstream dial, --local
 * listeners). Each keeps its process-wide state in its own struct, hung on e->role, and
 * its per-lane state on the tunnel's owner pointer; nothing role-specific lives in
 * struct tunnel or struct engine. The control port's HTTP service (engine/svc/) sits
 * above and calls in here; a role never calls up into it.
 *
 * Set-up: role_init() registers the roles' operations with the loop (once);
 * server_setup()/client_setup() fill a role's state from the configuration (listening
 * sockets opened, TLS contexts made, --sockmap loaded) and return its shard hooks;
 * *_teardown() frees it after engine_run(). */
#ifndef RINGLET_ENGINE_ROLES_ROLE_H
#define RINGLET_ENGINE_ROLES_ROLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/loop/engine.h"
#include "engine/mux/tunnel.h"
#include "engine/net.h"
#include "proto/http.h"

struct registry;
struct tls_ctx;
struct tls;
struct sockmap;
struct lane;
struct local_fwd;
struct tunnel_table;
struct tenant_port;
struct resolver;
struct names_shard;

/* Operations of the roles (numbered after the mux's). */
enum role_op {
	OP_TUN_CONNECT = OP_MUX_MAX, /* client: connect to the server */
	OP_STREAM_CONNECT,           /* dial of an upstream or --local target */
	OP_STREAM_PROXY,             /* server: recv of a load balancer's PROXY header */
	OP_XFER,                     /* from another shard: a data-plane fd for a tunnel here */
	OP_LISTEN,      /* from another shard: a data-plane listener to accept on */
	OP_HANDOFF,     /* from another shard: an upgraded connection for a lane */
	OP_NAMES,       /* the resolver's eventfd of this shard is readable (names.c) */
	OP_NAMES_TIMER, /* streams wait for a name: check their deadline (names.c) */
	OP_ROLE_MAX,
};

#define WS_SUBPROTOCOL "ringlet.v1"

/* What the layers above ask of the role that runs (role_of(e)->ops): the control port's
 * service never switches on the mode for these. */
struct role_ops {
	const char *name; /* "server", "client" */
	/* The control-port listener shard `shard` serves (the server's control port on every
	 * shard, the client's --metrics-addr on shard 0), taken once; -1 when none. */
	int (*take_control_fd)(struct engine *e, int shard);
	/* The control port's TLS context, or NULL for plain HTTP. */
	struct tls_ctx *(*control_tls)(const struct engine *e);
	/* Tunnel connections up: the server's clients, the client's lanes that got WELCOME. */
	int (*connected)(const struct engine *e);
	/* Which tunnel a /connect bearer token opens: a named tunnel's index (--tunnels),
	 * ROLE_TUNNEL_ANY (the server's one token, without --tunnels) or ROLE_TUNNEL_NONE
	 * (refused). NULL for a role that takes no tunnels. */
	int (*tunnel_for_token)(const struct engine *e, const char *tok, size_t len);
};
#define ROLE_TUNNEL_ANY (-1)
#define ROLE_TUNNEL_NONE (-2)

/* What both roles have: their ops, --sockmap steering. */
struct role_common {
	const struct role_ops *ops;
	struct sockmap *sm; /* the steering programs, NULL when not in use */
	char sm_why[256];   /* --sockmap auto: why it is not in use ("" when it is) */
	/* Names resolved off the loop (engine/resolve.h; one subscriber per shard) and each
	 * shard's side of it (heap, one per shard, each its shard's; names.c). on_resolved:
	 * a name this shard watches got an answer or a failure (NULL: nothing more to do). */
	struct resolver *res;
	struct names_shard *names;
	void (*on_resolved)(struct shard *s);
};

/* The server's process-wide state (e->role). */
struct server {
	struct role_common c;
	struct registry *reg;
	struct tunnel_table *tt; /* --tunnels: the named tunnels (roles/internal.h), or NULL */
	struct tls_ctx *tls_server; /* --auto-tls or --tls-cert */
	char *ca_pem;               /* auto-TLS: served at /.well-known/ca.crt */
	size_t ca_pem_len;
	struct cidr *allow; /* --allow-ips */
	size_t n_allow;
};

/* The client's process-wide state (e->role). */
struct client {
	struct role_common c;
	/* One lane per shard that runs one (heap, until the shards are joined). A lane's
	 * fields are its shard's, but `wanted`, written by lane 0's shard (atomic). */
	struct lane *lanes;
	int nlanes;
	uint64_t session; /* the session id WELCOME gave (atomic) */
	int connected;    /* lanes that got WELCOME (atomic) */
	int metrics_fd;   /* --metrics-addr listener until shard 0 takes it (atomic) */
	/* wss://: set before the shards start, or published once by the first lane that
	 * fetched the CA (auto-TLS; atomic, compare-and-swap). */
	struct tls_ctx *tls_client;
	struct local_fwd *fwd; /* --local (heap; `fd` taken by shard 0, atomic) */
	int nfwd;
};

static inline struct role_common *role_of(const struct engine *e)
{
	return (struct role_common *)e->role;
}
static inline struct server *server_of(const struct engine *e)
{
	return (struct server *)e->role;
}
static inline struct client *client_of(const struct engine *e)
{
	return (struct client *)e->role;
}

/* Register the roles' operations with the loop. Once, before the shards start. */
void role_init(void);

/* --tunnels: the name of tunnel id (the registry's `tunnel`), or NULL; called with the
 * registry's lock held. */
const char *server_tunnel_name(const struct server *srv, uint32_t id);

/* --tunnels: what /metrics shows of the named tunnels. false without --tunnels. */
struct tunnels_stats {
	size_t configured; /* tunnels in the loaded file */
	size_t connected;  /* of them, with a client connected */
	size_t failed;     /* of them, with a binding that could not be bound */
	uint64_t reloads_ok, reloads_failed; /* since start */
	char sha256[65];                     /* of the loaded file, hex */
	int64_t loaded_unix;                 /* when it was loaded (start or last reload) */
};
bool server_tunnels_stats(const struct server *srv, struct tunnels_stats *out);

/* One configured tunnel as /status shows it. */
struct tunnel_view {
	const char *name;
	const struct tenant_port *ports; /* nports: the port clients offer, and its binding */
	uint16_t nports;
	size_t clients;               /* sessions connected */
	uint64_t bytes_in, bytes_out; /* tunnel bytes of its connected sessions */
	uint16_t bind_failed;         /* a binding that could not be bound (0: none) */
	uint16_t bind_status;         /* why (enum tun_port_status) */
};
/* Call fn for each configured tunnel, in the file's order, with the registry's lock held
 * (fn must not take it). Nothing without --tunnels. */
void server_tunnels_view(struct server *srv, void (*fn)(void *ctx, const struct tunnel_view *v),
                         void *ctx);

/* Fill the server's state from e->cfg: control listeners (one per shard, taken by the
 * control port's service), --allow-ips, TLS, --sockmap. Returns the server's shard hooks,
 * or NULL with *status the process exit status (the reason is logged). */
const struct loop_hooks *server_setup(struct engine *e, struct server *srv, int *status);
void server_teardown(struct engine *e);

/* The client's, likewise (--metrics-addr, --local listeners, TLS, --sockmap). */
const struct loop_hooks *client_setup(struct engine *e, struct client *cli, int *status);
void client_teardown(struct engine *e);

/* Server: the shard that should serve the lane an upgrade request asks for. Lane i of a
 * session asks with ?lane=i&session=ID; it goes to the shard i places after the one
 * serving the session's lane 0 (this shard for lane 0 or an unknown session). */
int server_lane_shard(struct shard *s, const struct http_request *req);

/* Server: an upgraded /connect request whose token named `tenant` (tunnel_for_token):
 * make connection c (its HTTP state already freed) a tunnel, here or on shard `to`. The
 * control port has answered nothing yet: resp (the 101) is queued first. Takes tls (may be
 * NULL) and early (heap, may be NULL: bytes after the request head). On failure c is closed. */
void server_on_upgrade(struct shard *s, struct conn *c, int to, int tenant, struct tls *tls,
                       uint8_t *early, size_t early_len, const char *remote, const char *resp,
                       size_t resp_len);

/* --sockmap (engine/roles/steer.c): load the programs (a no-op when off). 0 or -errno. */
int steer_start(struct engine *e);
void steer_stop(struct engine *e);
/* Make each address of al with port a hop endpoint (an all-zero address: every address
 * of its family, and of both for ::); nothing when steering is off. role: SM_EP_LISTEN or
 * SM_EP_DIAL (ebpf/sockmap.h). Failures are logged: those hops take TCP. */
void steer_endpoint(struct engine *e, const struct addrlist *al, uint16_t port, uint32_t role);
/* Mark fd, about to connect() to a SM_EP_DIAL endpoint, as ringlet's. */
void steer_own(struct engine *e, int fd);

#endif
