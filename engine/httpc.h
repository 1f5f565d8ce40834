/* engine/httpc.h — one small blocking HTTP/1.1 client: a GET, its answer's status and body.
 * Used by `ringlet status` (plain HTTP) and the auto-TLS CA fetch (TLS). It blocks the
 * calling thread, up to the timeout, and allocates: not for the data path (the CA fetch
 * runs it once, before a client's first lane connects).
 *
 * The request is http_build_get's (Host, an optional Bearer token, Connection: close).
 * The body may be framed by Content-Length, by the chunked coding (proto/chunked.h) or by
 * the end of the connection; 1xx interim answers are skipped. One deadline bounds the
 * whole exchange: connect, TLS handshake, request, answer (the name resolution before it
 * is getaddrinfo's, and not bounded).
 */
#ifndef RINGLET_ENGINE_HTTPC_H
#define RINGLET_ENGINE_HTTPC_H

#include <stddef.h>
#include <stdint.h>

#define HTTPC_MAX_REQUEST 2048 /* the request head we build (host, path, token) */

enum httpc_transport {
	HTTPC_PLAIN,
	/* TLS WITHOUT authenticating the server: for trust on first use only, when there is
	 * nothing to verify the server with yet (the CA fetch). SNI is sent for names. */
	HTTPC_TLS_UNVERIFIED,
};

struct httpc_request {
	const char *host; /* name or address, IPv6 with or without brackets */
	uint16_t port;
	const char *path;  /* starts with '/' */
	const char *token; /* sent as "Authorization: Bearer <token>"; NULL for none */
	enum httpc_transport transport;
	int timeout_ms;  /* the whole exchange; > 0 */
	size_t max_body; /* a larger body is refused (-EFBIG) */
};

struct httpc_response {
	int status; /* the final answer's status code */
	char *body; /* malloc'd, NUL-terminated (the NUL is not in body_len); may hold NULs */
	size_t body_len;
};

/* GET req->path from req->host:req->port. Returns 0 when a whole answer arrived, whatever
 * its status code, and fills *resp (the caller frees it with httpc_response_free).
 * Otherwise returns -errno, with *resp empty and a reason naming the server in err:
 * -EINVAL the request cannot be written (a host, path or token with spaces or controls),
 * -ENXIO the name does not resolve, the connect's own errno, -ETIMEDOUT the deadline
 * passed, -EPROTO the TLS handshake failed, -EBADMSG the answer is not HTTP or ends early,
 * -EFBIG the body is over req->max_body, -ENOMEM. */
int httpc_get(const struct httpc_request *req, struct httpc_response *resp, char *err,
              size_t errlen);

/* Free a response's body and empty it. Accepts NULL and an empty response. */
void httpc_response_free(struct httpc_response *resp);

#endif
