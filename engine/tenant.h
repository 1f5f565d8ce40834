/* engine/tenant.h — named tunnels (tenants) of a multi-tenant server, from the file given
 * with `ringlet tcp server --tunnels FILE` (YAML, parsed with libyaml):
 *
 *   tunnels:
 *     - name: orion-aws                       # [a-z0-9-], 1..63, unique
 *       tokenFile: /etc/ringlet/tokens/orion-aws   # or token: "...", or tokenEnv: NAME
 *       ports:
 *         - port: 9090                        # what the client offers and dials upstream
 *           listen: "0.0.0.0:19001"           # where this node exposes it (optional:
 *                                             #  the server's --data-addr, same port)
 *       allowIPs: ["10.0.0.0/8"]              # optional, as --allow-ips
 *       maxStreams: 2000                      # optional, 0 or absent: no limit
 *
 * Strict: an unknown key, a wrong type, a missing required key, a duplicate name, token
 * or binding, a token that is empty or has whitespace or control characters, a file over
 * TENANT_FILE_MAX, nesting deeper than the format has, more than TENANT_MAX tunnels or
 * TUN_MAX_PORTS ports in one: each an error naming `file:line: what`. A utility below
 * the engine's layers: it reads files (the tunnels file, token files) and the
 * environment, and knows nothing of shards. */
#ifndef RINGLET_ENGINE_TENANT_H
#define RINGLET_ENGINE_TENANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/net.h"
#include "proto/tunnel.h"

#define TENANT_NAME_MAX 63
#define TENANT_MAX 4096                 /* tunnels in one file */
#define TENANT_FILE_MAX (4u << 20)      /* bytes of the tunnels file */
#define TENANT_TOKEN_MAX 4096           /* bytes of one token (file or inline) */
#define TENANT_ALLOW_MAX 64             /* allowIPs entries of one tunnel */

/* One port a tunnel's clients may offer, and where the server exposes it. */
struct tenant_port {
	uint16_t port;       /* what the client offers (and dials on its upstream) */
	uint16_t listen_port; /* where this node listens for it */
	char listen_addr[64]; /* "" : the server's --data-addr */
};

struct tenant {
	char name[TENANT_NAME_MAX + 1];
	char *token;      /* heap, NUL-terminated */
	char *token_file; /* heap, the tokenFile path (watched for changes), or NULL */
	struct tenant_port *ports; /* heap, nports (1..TUN_MAX_PORTS) */
	uint16_t nports;
	struct cidr *allow; /* heap, n_allow (0..TENANT_ALLOW_MAX); none: any address */
	size_t n_allow;
	uint32_t max_streams; /* 0: no limit */
	int line;             /* where its entry starts in the file */
};

/* A loaded file: its tunnels, and an index from token to tunnel. */
struct tenant_set {
	struct tenant *t; /* heap, n entries */
	size_t n;
	uint8_t sha256[32]; /* of the file's bytes (shown by /status and metrics) */
	/* token index: open addressing over a hash of each token (SHA-256 prefix) */
	uint32_t *slot; /* heap, nslot entries: tenant index + 1, 0 empty */
	uint32_t nslot; /* a power of two, at least 2 n */
};

/* Parse buf[0..len) (the contents of a file called `path`, for messages and for
 * resolving nothing else); token files and environment variables it names are read now.
 * 0, or -1 with err = "path:line: what". *out is filled only on success (free it with
 * tenants_free). */
int tenants_parse(const char *buf, size_t len, const char *path, struct tenant_set *out,
                  char *err, size_t errlen);

/* Read and parse the file at path (at most TENANT_FILE_MAX bytes). As tenants_parse. */
int tenants_load(const char *path, struct tenant_set *out, char *err, size_t errlen);

void tenants_free(struct tenant_set *s);

/* The tunnel whose token is tok[0..len), or -1: an expected O(1) lookup in the index,
 * then a constant-time compare of the whole token. */
int tenants_find(const struct tenant_set *s, const char *tok, size_t len);

/* The tunnel's declared port `port`, or NULL. */
const struct tenant_port *tenant_port(const struct tenant *t, uint16_t port);

#endif
