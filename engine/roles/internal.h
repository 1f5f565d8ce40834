/* engine/roles/internal.h — internal to engine/roles/: the roles' per-lane state and what
 * their files share. Nothing outside the roles includes it. */
#ifndef RINGLET_ENGINE_ROLES_INTERNAL_H
#define RINGLET_ENGINE_ROLES_INTERNAL_H

#include "engine/resolve.h"
#include "engine/roles/registry.h"
#include "engine/roles/role.h"
#include "engine/tenant.h"

#define FWD_MAX 16 /* distinct --local targets a server resolves per client lane */

/* ---- names (names.c): the shards' side of the resolver (engine/resolve.h) -------------- */

/* A shard's copy of a watched name's answer: what its streams dial. */
struct name_copy {
	int id;             /* the resolver's name id (-1: none) */
	uint32_t gen;       /* the answer's generation al holds */
	struct addrlist al; /* n == 0: no answer yet */
};

/* Set up the resolver for the role (nshards subscribers) and each shard's side. 0 or -1
 * (logged). names_stop frees both (after the shards are joined). */
int names_setup(struct engine *e);
void names_stop(struct engine *e);
/* Watch this shard's resolver eventfd on its ring (once; OP_NAMES). */
void names_arm(struct shard *s);
/* Bring nc up to date with the resolver; v gets the resolver's view. True when nc->al
 * changed. */
bool names_sync(struct shard *s, struct name_copy *nc, struct resolve_view *v);
/* Run for a parked stream once its name answered, just before it is dialled. */
typedef void (*names_ready_fn)(struct shard *s, struct conn *sc, struct name_copy *nc);
/* Hold stream sc (created with fd -1, `connecting`) until nc's name answers: then ready
 * (may be NULL) runs and it is dialled, or it is reset if the resolution failed or took
 * longer than the dial timeout. nc must outlive the stream (it belongs to the stream's
 * lane). */
void names_park(struct shard *s, struct conn *sc, struct name_copy *nc, names_ready_fn ready);
void names_init(void);

/* A --local target the server resolves for a lane (client forwarding). */
struct fwd_target {
	char name[TUN_MAX_STR + 1];
	struct name_copy nc;
	uint32_t steered; /* --sockmap: the answer (nc.gen) whose addresses were named */
};

/* The server's state of one tunnel (lane): the tunnel's owner. Freed with the tunnel. */
struct srv_lane {
	uint32_t tunnel;  /* the named tunnel its token named (its id), 0 without --tunnels */
	uint64_t gone_ms; /* its tunnel was removed: GOAWAY sent then (0: not) */
	int reg_slot;     /* registry session slot, -1 if none */
	struct reg_lane *rl; /* this lane's registry entry (its counters: t->ctr) */
	uint16_t lane;       /* lane index within the client's session */
	uint64_t session_id; /* the session this lane belongs to */
	uint32_t conn_idx;   /* this tunnel's slot, as the registry knows it */
	uint16_t conn_gen;
	struct fwd_target *fwd; /* --local targets watched so far (heap, FWD_MAX) */
	int nfwd;               /* each holds a resolver watch: fwd_release() drops them */
};

/* A --local forward of the client: connections to local_addr:lport go through the server
 * to target ("host:port"). */
struct local_fwd {
	uint16_t lport, rport;
	char target[TUN_MAX_STR + 1];
	int fd; /* the listener until shard 0 takes it (atomic exchange) */
};

#define HEAD_CAP 16384 /* the client's upgrade response head */

/* One of the client's lanes: a WebSocket to the server that it keeps up (the owner of
 * the lane's tunnel while one exists). */
struct lane {
	int id;
	int shard;
	int wanted; /* lanes > 0: set (atomically) by lane 0's shard when the session wants it
	             */
	bool up;    /* a connection exists (connecting or connected) */
	uint32_t idx;
	uint16_t gen;
	uint64_t next_try_ms;
	uint32_t backoff_ms;
	uint32_t
	        hold_ms; /* the server's Retry-After (429, 503): the next try waits this long */
	uint64_t ready_ms; /* when the current connection got WELCOME, 0 if it did not */
	struct name_copy upstream; /* this shard's copy of the upstream's answer */
	struct name_copy server;   /* of the server's */
	char last_error[160];
	unsigned failures;
	unsigned attempts;
	bool attempt_said; /* the current attempt's failure was logged */
};

/* The client's state of one connection of a lane (the tunnel's owner; freed with it). */
struct cli_conn {
	struct lane *lane;
	char *head; /* the upgrade request, then the response head (heap, HEAD_CAP) */
	uint32_t head_len, head_cap;
	char ws_key[25];
};

/* dial.c: dial sc's st->dial addresses in turn (the stream's port). */
void stream_dial(struct shard *s, struct conn *sc);
/* Client: a server-opened stream arrived; dial the upstream (when it has no address yet,
 * the stream is left `connecting`, for names_park). The stream, or NULL (refused). */
struct conn *stream_open_client(struct shard *s, struct conn *tc, uint32_t id,
                                const struct tun_open *o, const struct addrlist *upstream);
void dial_init(void);

/* server_streams.c: carry a new data-plane connection fd on tunnel tc. Takes fd. */
void stream_open_server(struct shard *s, struct conn *tc, int fd, uint16_t port,
                        uint16_t port_slot);
void server_on_held_timeout(struct shard *s, struct conn *sc);
void server_streams_init(void);

/* local.c: --local. Client: a connection accepted on a --local listener, carried to
 * target (dialled by the server); takes fd. Server: a client-opened stream: dial its
 * target. */
void stream_open_local(struct shard *s, struct conn *tc, int fd, const char *target,
                       uint16_t rport);
void stream_open_forwarded(struct shard *s, struct conn *tc, const struct tun_msg *m);
/* Server: a lane goes: drop its --local targets' watches and free them. */
void fwd_release(struct engine *e, struct srv_lane *sl);

/* ---- named tunnels (tunnels.c) --------------------------------------------------------- */

/* A tunnel name's stable id (its index + 1 in ids[]), kept across reloads: what sessions,
 * ports and lanes carry. The gens say at which reload its clients were told to go
 * (removed), to be disconnected (token changed), to rebind (bindings changed). */
struct tunnel_id {
	char name[TENANT_NAME_MAX + 1];
	int32_t index; /* in the current set, -1: not in it (removed) */
	uint64_t kick_gen, goaway_gen, rebind_gen;
	uint32_t max_streams; /* its maxStreams (0: no limit; atomic: set by reloads) */
	uint16_t bind_failed; /* a binding of it that could not be bound (0: none) */
	uint16_t bind_status; /* why: enum tun_port_status */
	uint32_t streams;     /* its data-plane streams open now, all shards (atomic) */
};

/* The server's named tunnels. set, ids and gen change only on the main thread under the
 * registry's lock and are read under it (gen also atomically); seen[i] is shard i's. */
struct tunnel_table {
	struct tenant_set *set;
	struct tunnel_id *ids;
	uint32_t nids, cap;
	uint64_t gen;                  /* reloads applied */
	uint64_t seen[CFG_MAX_SHARDS]; /* the gen each shard has applied (its own element) */
	uint64_t reloads_ok, reloads_failed; /* atomics */
	int ino;                             /* inotify, -1: none */
	char last_err[512];  /* the last reload's error (main thread), "" after one */
	int64_t loaded_unix; /* when the running set was loaded (under the lock) */
};

/* Load --tunnels and watch it (set-up). 0, or the process exit status. */
int tunnels_start(struct engine *e, struct server *srv);
void tunnels_stop(struct server *srv);
/* (Re)watch the directories of the file and its token files. Main thread. */
void tunnels_watch(struct engine *e);
/* The tunnel with this id in the current set, or NULL (called with the lock held). */
const struct tenant *tunnel_by_id(const struct server *srv, uint32_t id);
/* The id of the tunnel this token names, or ROLE_TUNNEL_NONE. Takes the lock. */
int tunnels_find_token(struct server *srv, const char *tok, size_t len);
/* A binding of tunnel id was opened (TUN_PORT_OK) or could not be: remembered for
 * /status and /metrics until it opens (called with the lock held). */
void tunnel_note_binding(struct server *srv, uint32_t id, uint16_t port, uint16_t status);
/* Is the address within tunnel id's allowIPs (none, or id 0: any)? Takes the lock. */
bool tunnel_allows_addr(struct server *srv, uint32_t id, const struct sockaddr *sa);

/* maxStreams: a data-plane stream for tunnel id is about to open: false (nothing counted)
 * when the tunnel's maxStreams are open, else it is counted. Then either the stream was
 * made (tunnels_stream_opened: it is uncounted when its slot is freed) or it was not
 * (tunnels_stream_unadmit). */
bool tunnels_stream_admit(struct server *srv, uint32_t id);
void tunnels_stream_opened(struct server *srv, uint32_t id, struct conn *sc);
void tunnels_stream_unadmit(struct server *srv, uint32_t id);

/* Shard hooks: apply reloads (wake), close removed tunnels' lanes past the drain (tick). */
void tunnels_on_wake(struct shard *s);
void tunnels_tick(struct shard *s);

/* server.c: a data-plane listener's accept callback; open a session's new bindings (its
 * lane 0's shard, after a reload changed them). */
void server_on_data_accept(struct shard *s, uint16_t port, int fd);
void server_rebind(struct shard *s, struct conn *c);

/* Register each role's operations (role_init calls them). */
void server_init(void);
void client_init(void);

#endif
