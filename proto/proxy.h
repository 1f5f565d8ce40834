/* proto/proxy.h — the PROXY protocol (HAProxy's, versions 1 and 2): building the header a
 * proxy sends before a connection's data, and parsing one received from a load balancer.
 * Pure: bytes in, bytes out.
 *
 * Addresses are exchanged as text "ip:port" (IPv6 as "[ip]:port"), as the tunnel's OPEN
 * message carries them. */
#ifndef RINGLET_PROTO_PROXY_H
#define RINGLET_PROTO_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_V1_MAX 107 /* the longest valid version 1 line, CRLF included */
#define PROXY_V2_MAX 536 /* the largest version 2 header we accept (TLVs included) */

enum proxy_status {
	PROXY_ERROR = -1,
	PROXY_NEED_MORE = 0,
	PROXY_OK = 1,
};

/* A parsed header. `local` is true for a v2 LOCAL command or a v1 "UNKNOWN" line: the
 * connection carries no client address (health checks), use the socket's own. */
struct proxy_hdr {
	uint8_t version; /* 1 or 2 */
	bool local;
	struct sockaddr_storage src, dst;
	size_t len; /* bytes of header consumed */
};

/* Build a header for a TCP connection from src to dst ("ip:port" strings; both must be
 * the same family). version 1 or 2. Returns the length written to out (at least
 * PROXY_V1_MAX bytes for v1, 52 for v2), or 0 when an address does not parse. */
size_t proxy_build(uint8_t *out, size_t cap, int version, const char *src, const char *dst);

/* Parse a header at the start of buf[0..len): PROXY_OK (fills *h, h->len = bytes to
 * consume), PROXY_NEED_MORE, or PROXY_ERROR (*why names the problem: bad signature,
 * malformed line, unsupported family or command, too long). Never reads past len. */
enum proxy_status proxy_parse(const uint8_t *buf, size_t len, struct proxy_hdr *h,
                              const char **why);

#endif
