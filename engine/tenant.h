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
 * TUN_MAX_PORTS ports in one: each an error naming `file:line: what` (the 1-based line of
 * the offending node; `file: what` when nothing in it is to blame: it cannot be read, it is
 * too large, it is empty). The first error found is the one reported. A utility below
 * the engine's layers: it reads files (the tunnels file, token files) and the
 * environment, and knows nothing of shards.
 *
 * The finer points of the format:
 * - One YAML document, a mapping with the one key `tunnels`, a list (it may be empty: a
 *   server with no tunnels yet). Keys are case-sensitive. Aliases, anchors and tags
 *   (`!!str`, `!x`) are refused, as is any collection where the format has a scalar.
 * - Numbers (`port`, `maxStreams`) are plain decimal scalars: no quotes, sign, leading
 *   zero (YAML 1.1 would read 0755 as octal), fraction or exponent. `port: "9090"` is a
 *   string where a number is expected, as in a Kubernetes manifest.
 * - Strings may be plain or quoted; a missing or null value (`~`, `null`) is refused.
 * - `token:` is taken as written: it must have no white space or control character. A
 *   `tokenFile` (a regular file of at most TENANT_TOKEN_MAX bytes) and a `tokenEnv`
 *   variable lose the white space around them first, newlines included, exactly as
 *   --token-file and --token-env do, so one token file serves both. A relative
 *   tokenFile is relative to the working directory, not to the tunnels file.
 * - `listen` is "a.b.c.d:port", "[v6]:port" or ":port" (the --data-addr), port 1..65535,
 *   an address literal (listeners bind no names), stored canonical without brackets.
 *   `allowIPs`, when given, is a non-empty list; `ports` has 1..TUN_MAX_PORTS entries.
 * - Bindings clash when their ports are equal and so are their addresses, or one is a
 *   wildcard that covers the other ("0.0.0.0" an IPv4 address, "::" any): the listeners
 *   set SO_REUSEPORT, so the kernel would let both bind and share the connections. Here
 *   "" (the --data-addr) only clashes with ""; tenants_check_bindings() knows the
 *   --data-addr and the control port.
 * - Duplicate tokens are refused by comparing the tokens themselves (the messages never
 *   show a token). */
#ifndef RINGLET_ENGINE_TENANT_H
#define RINGLET_ENGINE_TENANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/net.h"
#include "proto/tunnel.h"

#define TENANT_NAME_MAX 63
#define TENANT_MAX 4096            /* tunnels in one file */
#define TENANT_FILE_MAX (4u << 20) /* bytes of the tunnels file */
#define TENANT_TOKEN_MAX 4096      /* bytes of one token (file or inline) */
#define TENANT_ALLOW_MAX 64        /* allowIPs entries of one tunnel */

/* One port a tunnel's clients may offer, and where the server exposes it. */
struct tenant_port {
	uint16_t port;        /* what the client offers (and dials on its upstream) */
	uint16_t listen_port; /* where this node listens for it */
	char listen_addr[64]; /* "" : the server's --data-addr */
	int line;             /* where its entry starts in the file */
};

struct tenant {
	char name[TENANT_NAME_MAX + 1];
	char *token;               /* heap, NUL-terminated */
	char *token_file;          /* heap, the tokenFile path (watched for changes), or NULL */
	struct tenant_port *ports; /* heap, nports (1..TUN_MAX_PORTS) */
	uint16_t nports;
	struct cidr *allow; /* heap, n_allow (0..TENANT_ALLOW_MAX); none: any address */
	size_t n_allow;
	uint32_t max_streams; /* 0: no limit */
	int line;             /* where its entry starts in the file */
	uint32_t token_hash;  /* the index's key: the first 4 bytes of SHA-256(token) */
	uint32_t id;          /* the server's stable id for this name (0 from the parser) */
};

/* A loaded file: its tunnels, and an index from token to tunnel. */
struct tenant_set {
	struct tenant *t; /* heap, n entries */
	size_t n;
	uint8_t sha256[32]; /* of the file's bytes (shown by /status and metrics) */
	/* token index: open addressing over a hash of each token (SHA-256 prefix) */
	uint32_t *slot; /* heap, nslot entries: tenant index + 1, 0 empty */
	uint32_t nslot; /* a power of two, at least 2 n (and 2) */
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

/* Do s's bindings clash (as tenants_parse checks them) once "" is read as data_addr (NULL
 * or "": all IPv4 interfaces, as net_listen) or with the control port at
 * control_addr:control_port (control_addr NULL: not checked)? 0, or -1 with err =
 * "path:line: what", line that of the port entry. For the server, once it knows its flags. */
int tenants_check_bindings(const struct tenant_set *s, const char *path, const char *data_addr,
                           const char *control_addr, uint16_t control_port, char *err,
                           size_t errlen);

/* The tunnel whose token is tok[0..len), or -1: an expected O(1) lookup in the index,
 * then a constant-time compare of the whole token. */
int tenants_find(const struct tenant_set *s, const char *tok, size_t len);

/* The tunnel's declared port `port`, or NULL. */
const struct tenant_port *tenant_port(const struct tenant *t, uint16_t port);

#endif
