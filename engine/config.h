/* engine/config.h — the engine's configuration, filled by tools/ (the CLI) and read-only
 * once the engine starts. Strings are owned by the configuration (heap, NUL-terminated)
 * and freed by cfg_free(). */
#ifndef RINGLET_ENGINE_CONFIG_H
#define RINGLET_ENGINE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/tunnel.h"

enum cfg_mode {
	CFG_SERVER,
	CFG_CLIENT,
};

/* How stream payloads go from a socket into the tunnel (docs/DESIGN.md, "Data paths"). */
enum cfg_data_path {
	CFG_DP_AUTO,    /* forward, with bulk moved by splice(2) where it can be: a stream that
	                 * reads a whole buffer at once, and a lane receiving large DATA frames,
	                 * switch to splice until their reads are small again */
	CFG_DP_COPY,    /* recv into provided buffers, sendmsg from them; payloads from the
	                 * tunnel are copied into their stream's buffer */
	CFG_DP_FORWARD, /* as copy, but payloads from the tunnel go to their stream's socket
	                 * from where they arrived; only what it does not take is copied */
	CFG_DP_SPLICE,  /* splice(2) socket -> pipe -> tunnel socket, on plain tunnels */
};

/* Does the configuration ask for splice(2) at all times where the transport allows it? */
static inline bool cfg_wants_splice(int data_path)
{
	return data_path == CFG_DP_SPLICE;
}

/* Does it switch between forward and splice(2) by what the traffic looks like (auto)? */
static inline bool cfg_adaptive(int data_path)
{
	return data_path == CFG_DP_AUTO;
}

/* Whether local hops are steered through the kernel by the sockmap programs (ebpf/). */
enum cfg_sockmap {
	CFG_SM_OFF,  /* never (the default) */
	CFG_SM_AUTO, /* when the kernel, privileges and cgroup v2 allow; silently off otherwise
	              */
	CFG_SM_ON,   /* always: the process refuses to start when it cannot */
};

/* Defaults and limits (documented in docs/DESIGN.md and --help). */
#define CFG_DEFAULT_CONTROL_PORT 8123
#define CFG_DEFAULT_WINDOW (1024u * 1024)   /* per-stream credit, bytes */
#define CFG_DEFAULT_MAX_FRAME (256u * 1024) /* DATA payload per WebSocket frame */
#define CFG_MAX_WS_PAYLOAD (1u << 20)       /* largest frame payload accepted */
#define CFG_DEFAULT_PING_MS 10000
#define CFG_DEFAULT_DEAD_MS 30000 /* nothing received for this long: peer gone */
#define CFG_DEFAULT_DRAIN_MS 30000
#define CFG_DEFAULT_DIAL_MS 5000       /* upstream connect timeout */
#define CFG_DEFAULT_HANDSHAKE_MS 10000 /* tunnel connect + upgrade + HELLO */
#define CFG_DEFAULT_MAX_CONNS 16384    /* connection slots per shard */
#define CFG_MAX_SHARDS 64
#define CFG_DEFAULT_AUTH_FAIL_MAX 10   /* failed authentications per source ... */
#define CFG_DEFAULT_AUTH_FAIL_MS 60000 /* ... per this long, then refused as long */
#define CFG_MAX_PORT_RANGES 64         /* --allow-ports entries */
#define CFG_PRIVILEGED_PORTS 1024      /* below: only when --allow-ports names them */

/* An inclusive range of TCP ports (lo == hi: one port). */
struct cfg_port_range {
	uint16_t lo, hi;
};

struct cfg {
	enum cfg_mode mode;

	/* common */
	char *token;    /* shared secret, trimmed */
	int shards;     /* 0: number of online CPUs */
	int log_level;  /* enum log_level */
	char *log_file; /* NULL: stderr */
	uint32_t window;
	uint32_t max_frame;
	uint32_t max_conns; /* per shard */
	int ping_ms, dead_ms, drain_ms, dial_ms, handshake_ms;
	unsigned log_rate_burst; /* --log-rate: lines per message per interval (0: no limit) */
	int log_rate_ms;

	/* server */
	char *control_addr; /* default "0.0.0.0" */
	uint16_t control_port;
	char *data_addr; /* NULL or "": all interfaces */
	bool auto_tls;
	char **tls_san;
	size_t n_tls_san;
	char *auto_tls_path; /* default /tmp/certs */
	char *tls_cert, *tls_key;
	char *proxy_protocol;    /* "", "v1", "v2" */
	char *lb_proxy_protocol; /* "", "v1", "v2" */
	char **allow_ips;
	size_t n_allow_ips;
	/* --allow-ports: the data-plane ports a client without --tunnels may ask for; none
	 * given: every port from CFG_PRIVILEGED_PORTS up (cfg_port_allowed). */
	struct cfg_port_range allow_ports[CFG_MAX_PORT_RANGES];
	size_t n_allow_ports;
	bool client_forwarding;
	char *tunnels_file; /* --tunnels: named tunnels (engine/tenant.h); NULL or "": none */
	unsigned auth_fail_max; /* --auth-fail-limit: failures per source (0: no limit) */
	int auth_fail_ms;       /* ... within this long; the source is refused as long */

	/* client */
	char *url;      /* as given */
	bool url_tls;   /* wss:// */
	char *url_host; /* host name or address, without brackets */
	uint16_t url_port;
	char *url_path; /* default /connect */
	char *upstream; /* default localhost */
	uint16_t ports[TUN_MAX_PORTS];
	size_t nports;
	char *ca_file;
	char *metrics_addr;
	char **local; /* --local LOCALPORT:host:port */
	size_t n_local;
	char *local_addr;     /* --local-addr: where the --local listeners bind (127.0.0.1) */
	int lanes;            /* 0: as many as the server suggests */
	bool zero_mask;       /* offer TUN_CAP_ZERO_MASK (default true) */
	int data_path;        /* enum cfg_data_path */
	int sockmap;          /* enum cfg_sockmap */
	char *sockmap_cgroup; /* --sockmap-cgroup; NULL: the process's own cgroup */
	char *client_id;      /* generated when NULL */
};

/* Fill *c with the defaults for mode. */
void cfg_defaults(struct cfg *c, enum cfg_mode mode);

/* Free everything *c owns (NULL-tolerant). */
void cfg_free(struct cfg *c);

/* Parse a tunnel URL (ws:// or wss://, optional port, optional path) into c->url_*.
 * Returns NULL on success or a static message naming the problem. */
const char *cfg_parse_url(struct cfg *c, const char *url);

/* Add the ports of spec ("80", "9000-9100", comma-separated) to c->allow_ports. Returns
 * NULL on success or a static message naming the problem. */
const char *cfg_parse_allow_ports(struct cfg *c, const char *spec);

/* Whether the server's port policy lets a client open port: within --allow-ports when
 * given, else any port from CFG_PRIVILEGED_PORTS up. */
bool cfg_port_allowed(const struct cfg *c, uint16_t port);

/* Number of shards to run: c->shards, or the online CPUs when 0, capped. */
int cfg_shard_count(const struct cfg *c);

#endif
