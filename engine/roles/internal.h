/* engine/roles/internal.h — internal to engine/roles/: the roles' per-lane state and what
 * their files share. Nothing outside the roles includes it. */
#ifndef RINGLET_ENGINE_ROLES_INTERNAL_H
#define RINGLET_ENGINE_ROLES_INTERNAL_H

#include "engine/roles/registry.h"
#include "engine/roles/role.h"

#define FWD_MAX 16 /* distinct --local targets a server resolves per client lane */

/* A --local target the server resolved for a lane (client forwarding). */
struct fwd_target {
	char name[TUN_MAX_STR + 1];
	struct addrlist al;
};

/* The server's state of one tunnel (lane): the tunnel's owner. Freed with the tunnel. */
struct srv_lane {
	int reg_slot;        /* registry session slot, -1 if none */
	struct reg_lane *rl; /* this lane's registry entry (its counters: t->ctr) */
	uint16_t lane;       /* lane index within the client's session */
	uint64_t session_id; /* the session this lane belongs to */
	uint32_t conn_idx;   /* this tunnel's slot, as the registry knows it */
	uint16_t conn_gen;
	struct fwd_target *fwd; /* --local targets resolved so far (heap, FWD_MAX) */
	int nfwd;
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
	uint64_t ready_ms; /* when the current connection got WELCOME, 0 if it did not */
	struct addrlist upstream;
	struct addrlist server;
	char last_error[160];
	unsigned failures;
	unsigned attempts;
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
/* Client: a server-opened stream arrived; dial the upstream. */
void stream_open_client(struct shard *s, struct conn *tc, uint32_t id, const struct tun_open *o,
                        const struct addrlist *upstream);
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

/* Register each role's operations (role_init calls them). */
void server_init(void);
void client_init(void);

#endif
