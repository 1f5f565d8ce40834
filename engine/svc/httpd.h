/* engine/svc/httpd.h — the HTTP endpoints of a control port: the server's (8123: /connect,
 * /healthz, /status, /metrics) and the client's optional --metrics-addr (/healthz,
 * /metrics). One request per connection (responses carry Connection: close), except
 * /connect, which the server turns into a tunnel. */
#ifndef RINGLET_ENGINE_HTTPD_H
#define RINGLET_ENGINE_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "engine/loop/shard.h"
#include "proto/http.h"

#define HTTP_BUF 16384

#define HTTP_MAX_PENDING 256 /* control connections per shard still reading a request */

struct http_conn {
	char buf[HTTP_BUF]; /* the request (plaintext) */
	size_t len;
	char *resp; /* what is being sent: a response, or TLS records */
	size_t resp_len;
	uint8_t path; /* for tcp_controlplane_requests_total */
	bool sending;
	bool parse_after_send;
	char remote[72];
	struct tls *tls; /* the server terminates TLS itself */
	uint8_t *cbuf;   /* TLS: received ciphertext */
};

/* Called on each tick for each open CK_HTTP connection: close it if it has not completed
 * a request (and TLS handshake) within the handshake timeout. */
void httpd_tick(struct shard *s, struct conn *c);

/* A listener slot on this shard accepting with multishot accept. Takes ownership of fd. */
void listen_here(struct shard *s, int fd, enum listen_role role, uint16_t port);

/* OP_ACCEPT, and OP_HTTP_RECV/OP_HTTP_SEND on CK_HTTP connections. */
void httpd_on_cqe(struct shard *s, struct conn *c, struct tok t, struct io_uring_cqe *cqe);
void http_conn_release(struct shard *s, struct conn *c);

/* Send a plain-text response and close. */
void httpd_text(struct shard *s, struct conn *c, int status, const char *text);
void httpd_respond(struct shard *s, struct conn *c, int status, const char *ctype,
                   const char *extra, const char *body, size_t body_len);

/* Count a response sent outside httpd_respond (the 101 of an upgrade). */
void httpd_count_request(struct shard *s, struct conn *c, int code);

/* Role hooks. */
void server_on_connect(struct shard *s, struct conn *c, const struct http_request *req);
void server_on_data_accept(struct shard *s, uint16_t port, int fd);
void client_on_local_accept(struct shard *s, uint16_t fwd_index, int fd);

#endif
