/* proto/http.h — HTTP/1.1 requests and responses for the control port and the WebSocket
 * upgrade, parsed with llhttp. Pure: bytes in, bytes out.
 *
 * Parsed strings are slices pointing into the caller's buffer (no allocation): the buffer
 * must outlive the struct. Parsers are tri-state (enum http_status). On HTTP_ERROR the
 * request parser sets the status code to answer with (400, 404, 405, 431, 505 ...).
 */
#ifndef RINGLET_PROTO_HTTP_H
#define RINGLET_PROTO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum http_status {
	HTTP_ERROR = -1,
	HTTP_NEED_MORE = 0,
	HTTP_OK = 1,
};

struct http_slice {
	const char *p;
	size_t len;
};

struct http_limits {
	size_t max_header_bytes; /* request/status line + headers + CRLF; 431 beyond */
	size_t max_headers;      /* header count; 431 beyond */
	size_t max_line;         /* request line (method + target + version); 414/400 beyond */
};

/* Defaults: 16 KiB header block, 64 headers, 8 KiB request line. */
extern const struct http_limits http_default_limits;

#define HTTP_MAX_KEEP 64 /* headers kept for lookup by name */

struct http_header {
	struct http_slice name, value;
};

struct http_request {
	struct http_slice method, target, path, query;
	uint8_t version_major, version_minor;
	struct http_slice host, upgrade, connection, ws_key, ws_version, ws_protocol,
	        authorization, bearer, forwarded_for, content_length;
	bool upgrade_websocket; /* Upgrade contains token "websocket" and Connection "upgrade"
	                         */
	bool keep_alive;
	size_t header_len; /* bytes consumed: the body / WebSocket frames start here */
	size_t nheaders;
	struct http_header headers[HTTP_MAX_KEEP];
	int error_status;         /* set on HTTP_ERROR: the status to answer with */
	const char *error_reason; /* static text naming the problem */
};

/* Parse a request head from buf[0..len). HTTP_NEED_MORE when the head is incomplete
 * (and still within limits). On HTTP_OK, req->header_len bytes were consumed; anything
 * after them (e.g. WebSocket frames pipelined after an upgrade) is left to the caller. */
enum http_status http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                                    struct http_request *req);

/* Find a header by name (case-insensitive); NULL if absent. */
const struct http_slice *http_header_get(const struct http_request *req, const char *name);

/* Why an upgrade request is unacceptable, or NULL when it is a valid RFC 6455 upgrade
 * (GET, HTTP/1.1+, Upgrade: websocket, Connection: upgrade, a 16-byte base64 key,
 * Sec-WebSocket-Version: 13). *status is the HTTP status to answer with (400, or 426
 * with Sec-WebSocket-Version: 13 for a wrong version). */
const char *http_upgrade_problem(const struct http_request *req, int *status);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), via BoringSSL.
 * out receives 28 characters and a NUL. */
void http_ws_accept(const char *key, size_t key_len, char out[29]);

/* Does the comma-separated token list contain token (case-insensitive)? */
bool http_has_token(struct http_slice list, const char *token);

/* Constant-time comparison of a presented bearer token against the expected one. */
bool http_token_equal(struct http_slice presented, const char *expected, size_t expected_len);

/* Builders: each writes into out[0..cap), returns the length written, or 0 if it does not
 * fit. */

/* 101 Switching Protocols for a valid upgrade; protocol may be NULL. */
size_t http_build_101(char *out, size_t cap, struct http_slice ws_key, const char *protocol);

/* A complete response with a body (Content-Length, Connection: close unless keep_alive).
 * extra_headers (may be NULL) is inserted verbatim and must end in CRLF. */
size_t http_build_response(char *out, size_t cap, int status, const char *content_type,
                           const char *extra_headers, const void *body, size_t body_len,
                           bool keep_alive);

/* Response head only (Content-Length given), for bodies sent separately. */
size_t http_build_response_head(char *out, size_t cap, int status, const char *content_type,
                                const char *extra_headers, size_t body_len, bool keep_alive);

/* The reason phrase of a status code ("OK", "Unauthorized" ...). */
const char *http_reason(int status);

/* Client side: an upgrade request for path with Host, the bearer token (may be NULL),
 * the subprotocol (may be NULL) and a 16-byte nonce which is base64-encoded into
 * Sec-WebSocket-Key; the key is also written to key_out (24 chars + NUL). */
size_t http_build_upgrade_request(char *out, size_t cap, const char *host, const char *path,
                                  const char *token, const char *protocol,
                                  const uint8_t nonce[16], char key_out[25]);

/* A plain GET (for `ringlet status` and the CA fetch). token may be NULL. */
size_t http_build_get(char *out, size_t cap, const char *host, const char *path,
                      const char *token);

struct http_response {
	int status;
	uint8_t version_major, version_minor;
	struct http_slice reason, upgrade, connection, ws_accept, ws_protocol, content_length,
	        content_type;
	bool chunked;
	size_t header_len; /* bytes consumed */
	size_t nheaders;
	struct http_header headers[HTTP_MAX_KEEP];
	const char *error_reason;
};

/* Parse a response head. Same conventions as http_parse_request. */
enum http_status http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                                     struct http_response *resp);

/* A response's Retry-After in delta-seconds (RFC 9110 §10.2.3), capped at max: true and
 * *secs when present and a number; false otherwise (absent, or an HTTP-date). */
bool http_retry_after(const struct http_response *resp, uint32_t max, uint32_t *secs);

/* Why a response is not the 101 that answers our key, or NULL when it is. */
const char *http_upgrade_response_problem(const struct http_response *resp, const char *key);

#endif
