/* tests/proto/http.c — request/response heads, the RFC 6455 handshake, builders. */
#include "proto/http.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static bool eq(struct http_slice s, const char *want)
{
	return s.p && s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

#define cr_assert_slice(s, want)                                                               \
	cr_assert(eq((s), (want)), "%s: got \"%.*s\", want \"%s\"", #s, (int)(s).len,          \
	          (s).p ? (s).p : "", (want))

static struct http_request req;
static struct http_response resp;

static enum http_status parse(const char *s)
{
	return http_parse_request(s, strlen(s), NULL, &req);
}

static void expect_error(const char *s, int status)
{
	cr_assert_eq(parse(s), HTTP_ERROR, "accepted: %s", s);
	cr_assert_eq(req.error_status, status, "status %d (%s), want %d", req.error_status,
	             req.error_reason ? req.error_reason : "?", status);
	cr_assert_not_null(req.error_reason);
}

static void expect_problem(const char *s, int status)
{
	int st = 0;
	cr_assert_eq(parse(s), HTTP_OK, "rejected: %s (%s)", s, req.error_reason);
	cr_assert_not_null(http_upgrade_problem(&req, &st), "no problem found in %s", s);
	cr_assert_eq(st, status);
}

/* What ingress-nginx's template sends upstream for a WebSocket location: the
 * proxy_set_header lines in template order (Host, Upgrade, Connection "upgrade" from the
 * $connection_upgrade map, X-Request-ID ... X-Scheme; empty ones such as Proxy and
 * X-Original-Forwarded-For are dropped by nginx), proxy_http_version 1.1, then the
 * client's own headers that were not overridden. */
static const char ingress_request[] = "GET /connect HTTP/1.1\r\n"
                                      "Host: tunnel.example.com\r\n"
                                      "Upgrade: websocket\r\n"
                                      "Connection: upgrade\r\n"
                                      "X-Request-ID: 3f2a9c1e7b5d4e08a6c2f19d0b7e4a53\r\n"
                                      "X-Real-IP: 203.0.113.45\r\n"
                                      "X-Forwarded-For: 203.0.113.45\r\n"
                                      "X-Forwarded-Host: tunnel.example.com\r\n"
                                      "X-Forwarded-Port: 443\r\n"
                                      "X-Forwarded-Proto: https\r\n"
                                      "X-Forwarded-Scheme: https\r\n"
                                      "X-Scheme: https\r\n"
                                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                      "Sec-WebSocket-Version: 13\r\n"
                                      "Sec-WebSocket-Protocol: ringlet\r\n"
                                      "Authorization: Bearer tok-3c9f0a7e52b1\r\n"
                                      "User-Agent: ringlet\r\n"
                                      "\r\n";

/* Captured from python3-websockets 10.4 (websockets.connect("ws://127.0.0.1:42831/connect",
 * subprotocols=["ringlet"], extra_headers={"Authorization": "Bearer s3cr3t-token"})) by a
 * loopback listener dumping the bytes it received. */
static const char python_request[] =
        "GET /connect HTTP/1.1\r\n"
        "Host: 127.0.0.1:42831\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Key: ByYHKNxBR9bpy1EGqZKsjQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
        "Sec-WebSocket-Protocol: ringlet\r\n"
        "Authorization: Bearer s3cr3t-token\r\n"
        "User-Agent: Python/3.11 websockets/10.4\r\n"
        "\r\n";

static const char good_101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "Sec-WebSocket-Protocol: ringlet\r\n"
                               "\r\n";

static const char rfc_key[] = "dGhlIHNhbXBsZSBub25jZQ==";

Test(http_request, ingress_nginx_upgrade)
{
	int st = 0;
	cr_assert_eq(parse(ingress_request), HTTP_OK, "%s", req.error_reason);
	cr_assert_eq(req.header_len, strlen(ingress_request));
	cr_assert_slice(req.method, "GET");
	cr_assert_slice(req.path, "/connect");
	cr_assert_eq(req.query.len, 0);
	cr_assert_eq(req.version_major, 1);
	cr_assert_eq(req.version_minor, 1);
	cr_assert_slice(req.host, "tunnel.example.com");
	cr_assert_slice(req.bearer, "tok-3c9f0a7e52b1");
	cr_assert_slice(req.authorization, "Bearer tok-3c9f0a7e52b1");
	cr_assert_slice(req.forwarded_for, "203.0.113.45");
	cr_assert_slice(req.ws_protocol, "ringlet");
	cr_assert_slice(req.ws_key, rfc_key);
	cr_assert(req.upgrade_websocket);
	cr_assert(req.keep_alive);
	cr_assert_eq(req.nheaders, 16);
	cr_assert_null(http_upgrade_problem(&req, &st));
	cr_assert_eq(st, 101);

	const struct http_slice *h = http_header_get(&req, "x-forwarded-proto");
	cr_assert_not_null(h);
	cr_assert_slice(*h, "https");
	h = http_header_get(&req, "X-REQUEST-ID");
	cr_assert_not_null(h);
	cr_assert_slice(*h, "3f2a9c1e7b5d4e08a6c2f19d0b7e4a53");
	cr_assert_null(http_header_get(&req, "X-Original-Forwarded-For"));
}

Test(http_request, ingress_nginx_full_forwarded_for)
{
	/* use-forwarded-headers + compute-full-forwarded-for: a client-side chain, and the
	 * chain as the client sent it in X-Original-Forwarded-For. */
	static const char s[] = "GET /connect HTTP/1.1\r\n"
	                        "Host: tunnel.example.com\r\n"
	                        "Upgrade: websocket\r\n"
	                        "Connection: upgrade\r\n"
	                        "X-Request-ID: 0c8e1f7a2b3d4c5e6f708192a3b4c5d6\r\n"
	                        "X-Real-IP: 198.51.100.7\r\n"
	                        "X-Forwarded-For: 198.51.100.7, 203.0.113.45\r\n"
	                        "X-Forwarded-Host: tunnel.example.com\r\n"
	                        "X-Forwarded-Port: 443\r\n"
	                        "X-Forwarded-Proto: https\r\n"
	                        "X-Forwarded-Scheme: https\r\n"
	                        "X-Scheme: https\r\n"
	                        "X-Original-Forwarded-For: 198.51.100.7\r\n"
	                        "Sec-WebSocket-Key: ByYHKNxBR9bpy1EGqZKsjQ==\r\n"
	                        "Sec-WebSocket-Version: 13\r\n"
	                        "authorization: bearer   spaced-token  \r\n"
	                        "\r\n";
	cr_assert_eq(parse(s), HTTP_OK, "%s", req.error_reason);
	cr_assert_slice(req.forwarded_for, "198.51.100.7, 203.0.113.45");
	cr_assert_slice(req.bearer, "spaced-token");
	cr_assert_null(http_upgrade_problem(&req, NULL));
}

Test(http_request, python_websockets_upgrade)
{
	int st = 0;
	cr_assert_eq(parse(python_request), HTTP_OK, "%s", req.error_reason);
	cr_assert_eq(req.header_len, strlen(python_request));
	cr_assert_slice(req.host, "127.0.0.1:42831");
	cr_assert_slice(req.bearer, "s3cr3t-token");
	cr_assert_slice(req.ws_key, "ByYHKNxBR9bpy1EGqZKsjQ==");
	cr_assert_slice(req.ws_version, "13");
	cr_assert_slice(req.ws_protocol, "ringlet");
	cr_assert_slice(req.connection, "Upgrade");
	cr_assert_eq(req.forwarded_for.p, NULL);
	cr_assert(req.upgrade_websocket);
	cr_assert_null(http_upgrade_problem(&req, &st));
	const struct http_slice *ext = http_header_get(&req, "sec-websocket-extensions");
	cr_assert_not_null(ext);
	cr_assert_slice(*ext, "permessage-deflate; client_max_window_bits");
}

static void check_split(const char *full)
{
	size_t len = strlen(full);
	struct http_request whole;
	cr_assert_eq(http_parse_request(full, len, NULL, &whole), HTTP_OK);
	for (size_t cut = 0; cut < len; cut++) {
		enum http_status st = http_parse_request(full, cut, NULL, &req);
		cr_assert_eq(st, HTTP_NEED_MORE, "cut at %zu gave %d (%s)", cut, st,
		             req.error_reason ? req.error_reason : "");
	}
	/* Frames pipelined after the head stay with the caller. */
	char buf[4096];
	cr_assert_lt(len + 6, sizeof(buf));
	memcpy(buf, full, len);
	memcpy(buf + len, "\x82\x84\x01\x02\x03\x04", 6);
	for (size_t extra = 0; extra <= 6; extra++) {
		cr_assert_eq(http_parse_request(buf, len + extra, NULL, &req), HTTP_OK);
		cr_assert_eq(req.header_len, len);
		cr_assert_eq(req.nheaders, whole.nheaders);
		cr_assert_eq(req.ws_key.len, whole.ws_key.len);
		cr_assert_eq(req.bearer.len, whole.bearer.len);
		cr_assert_eq(req.bearer.p - buf, whole.bearer.p - full);
		cr_assert_eq(req.upgrade_websocket, whole.upgrade_websocket);
		cr_assert_null(http_upgrade_problem(&req, NULL));
	}
}

Test(http_request, split_at_every_offset)
{
	check_split(ingress_request);
	check_split(python_request);
}

Test(http_request, body_is_not_consumed)
{
	static const char s[] = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
	cr_assert_eq(parse(s), HTTP_OK);
	cr_assert_eq(req.header_len, strlen(s) - 5);
	cr_assert_slice(req.content_length, "5");
	static const char c[] =
	        "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	        "5\r\nhello\r\n0\r\n\r\n";
	cr_assert_eq(parse(c), HTTP_OK);
	cr_assert_eq(memcmp(c + req.header_len, "5\r\n", 3), 0);
}

Test(http_request, plain_gets)
{
	cr_assert_eq(parse("GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_OK);
	cr_assert_slice(req.path, "/healthz");
	cr_assert_eq(req.query.len, 0);
	cr_assert_not(req.upgrade_websocket);
	cr_assert(req.keep_alive);
	cr_assert_eq(parse("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), HTTP_OK);
	cr_assert_slice(req.target, "/metrics?x=1");
	cr_assert_slice(req.path, "/metrics");
	cr_assert_slice(req.query, "x=1");
	cr_assert_eq(req.version_minor, 0);
	cr_assert_not(req.keep_alive);
	cr_assert_eq(parse("GET /.well-known/ca.crt? HTTP/1.1\r\nConnection: close\r\n\r\n"),
	             HTTP_OK);
	cr_assert_slice(req.path, "/.well-known/ca.crt");
	cr_assert_eq(req.query.len, 0);
	cr_assert_not(req.keep_alive);
	cr_assert_eq(parse("GET /status HTTP/1.1\r\nX-Empty:\r\nX-Pad:   v  \r\n\r\n"),
	             HTTP_OK);
	cr_assert_eq(http_header_get(&req, "x-empty")->len, 0);
	cr_assert_slice(*http_header_get(&req, "x-pad"), "v");
	int st;
	cr_assert_not_null(http_upgrade_problem(&req, &st));
	cr_assert_eq(st, 400);
}

Test(http_request, need_more)
{
	cr_assert_eq(http_parse_request("", 0, NULL, &req), HTTP_NEED_MORE);
	cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: x\r\n"), HTTP_NEED_MORE);
}

Test(http_request, malformed)
{
	expect_error("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	             400); /* TLS to plaintext */
	expect_error("HELLO WORLD\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1 extra\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\nBad Header: x\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\nX: a\r\n folded\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400);
	expect_error("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400);
	expect_error(
	        "GET / HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
	        400);
	expect_error(
	        "GET / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
	        400);
}

Test(http_request, versions)
{
	int st = parse("GET / HTTP/2.0\r\n\r\n") == HTTP_ERROR ? req.error_status : 0;
	cr_assert(st == 505 || st == 400, "HTTP/2.0 gave %d", st);
	expect_error("GET / HTTP/3.0\r\n\r\n", 505);
	expect_error("GET / HTTP/1.2\r\n\r\n", 505);
	expect_error("GET / HTTP/x.1\r\n\r\n", 400);
	cr_assert_eq(parse("GET / HTTP/1.0\r\n\r\n"), HTTP_OK);
}

Test(http_request, too_many_headers)
{
	struct http_limits lim = http_default_limits;
	char buf[8192];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\n");
	for (size_t i = 0; i < lim.max_headers; i++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "X-H%zu: v\r\n", i);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "\r\n");
	cr_assert_eq(http_parse_request(buf, n, &lim, &req), HTTP_OK);
	cr_assert_eq(req.nheaders, lim.max_headers);
	lim.max_headers--;
	cr_assert_eq(http_parse_request(buf, n, &lim, &req), HTTP_ERROR);
	cr_assert_eq(req.error_status, 431);
	/* Over the limit is over the limit even before the head is complete. */
	cr_assert_eq(http_parse_request(buf, n - 2, &lim, &req), HTTP_ERROR);
	cr_assert_eq(req.error_status, 431);
}

Test(http_request, header_block_too_big)
{
	static char buf[20000];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX-Big: ");
	memset(buf + n, 'a', 17000);
	n += 17000;
	/* Incomplete and already over 16 KiB. */
	cr_assert_eq(http_parse_request(buf, n, NULL, &req), HTTP_ERROR);
	cr_assert_eq(req.error_status, 431);
	memcpy(buf + n, "\r\n\r\n", 4);
	cr_assert_eq(http_parse_request(buf, n + 4, NULL, &req), HTTP_ERROR);
	cr_assert_eq(req.error_status, 431);
	/* Under the limit while incomplete: wait. */
	cr_assert_eq(http_parse_request(buf, 8000, NULL, &req), HTTP_NEED_MORE);

	struct http_limits lim = {.max_header_bytes = 64, .max_headers = 8, .max_line = 32};
	static const char ok[] = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
	cr_assert_eq(http_parse_request(ok, strlen(ok), &lim, &req), HTTP_OK);
	lim.max_header_bytes = strlen(ok);
	cr_assert_eq(http_parse_request(ok, strlen(ok), &lim, &req), HTTP_OK);
	lim.max_header_bytes--;
	cr_assert_eq(http_parse_request(ok, strlen(ok), &lim, &req), HTTP_ERROR);
	cr_assert_eq(req.error_status, 431);
}

Test(http_request, request_line_too_long)
{
	static char buf[12000];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "GET /");
	memset(buf + n, 'a', 9000);
	n += 9000;
	cr_assert_eq(http_parse_request(buf, n, NULL, &req), HTTP_ERROR);
	cr_assert_eq(req.error_status, 414);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, " HTTP/1.1\r\nHost: h\r\n\r\n");
	cr_assert_eq(http_parse_request(buf, n, NULL, &req), HTTP_ERROR);
	cr_assert_eq(req.error_status, 414);

	struct http_limits lim = {.max_header_bytes = 1024, .max_headers = 8, .max_line = 14};
	cr_assert_eq(http_parse_request("GET / HTTP/1.1\r\n\r\n", 18, &lim, &req), HTTP_OK);
	cr_assert_eq(http_parse_request("GET /a HTTP/1.1\r\n\r\n", 19, &lim, &req), HTTP_ERROR);
	cr_assert_eq(req.error_status, 414);
}

Test(http_request, upgrade_problems)
{
	char buf[1024];
#define REQ(method, ver, rest)                                                                 \
	(snprintf(buf, sizeof(buf), "%s /connect HTTP/%s\r\nHost: h\r\n%s\r\n", method, ver,   \
	          rest),                                                                       \
	 buf)
	const char *std = "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
	char rest[512];

	snprintf(rest, sizeof(rest), "%sSec-WebSocket-Version: 13\r\n", std);
	cr_assert_eq(parse(REQ("GET", "1.1", rest)), HTTP_OK);
	cr_assert_null(http_upgrade_problem(&req, NULL));
	expect_problem(REQ("POST", "1.1", rest), 400);
	expect_problem(REQ("GET", "1.0", rest), 400);

	snprintf(rest, sizeof(rest), "%sSec-WebSocket-Version: 8\r\n", std);
	expect_problem(REQ("GET", "1.1", rest), 426);
	expect_problem(REQ("GET", "1.1", std), 426);

	expect_problem(REQ("GET", "1.1",
	                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	                   "Sec-WebSocket-Version: 13\r\n"),
	               400);
	expect_problem(REQ("GET", "1.1",
	                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	                   "Sec-WebSocket-Key: c2hvcnQ=\r\nSec-WebSocket-Version: 13\r\n"),
	               400);
	/* 24 characters, but 17 bytes' worth of base64 padding rules broken. */
	expect_problem(REQ("GET", "1.1",
	                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ!=\r\n"
	                   "Sec-WebSocket-Version: 13\r\n"),
	               400);
	expect_problem(REQ("GET", "1.1",
	                   "Upgrade: h2c\r\nConnection: Upgrade\r\n"
	                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                   "Sec-WebSocket-Version: 13\r\n"),
	               400);
	expect_problem(REQ("GET", "1.1",
	                   "Upgrade: websocket\r\nConnection: keep-alive\r\n"
	                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                   "Sec-WebSocket-Version: 13\r\n"),
	               400);
	/* Token lists, any case, split over fields. */
	cr_assert_eq(parse(REQ("GET", "1.1",
	                       "Upgrade: WebSocket\r\nConnection: keep-alive\r\n"
	                       "Connection: keep-alive, UPGRADE\r\n"
	                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                       "Sec-WebSocket-Version: 13\r\n")),
	             HTTP_OK);
	cr_assert(req.upgrade_websocket);
	cr_assert_null(http_upgrade_problem(&req, NULL));
#undef REQ
}

Test(http_tokens, has_token)
{
	struct http_slice l = {"keep-alive, Upgrade", 19};
	cr_assert(http_has_token(l, "upgrade"));
	cr_assert(http_has_token(l, "KEEP-ALIVE"));
	cr_assert_not(http_has_token(l, "upgrad"));
	cr_assert_not(http_has_token(l, "alive"));
	cr_assert(http_has_token((struct http_slice){" ,\tupgrade\t,", 12}, "upgrade"));
	cr_assert_not(http_has_token((struct http_slice){"upgrades", 8}, "upgrade"));
	cr_assert_not(http_has_token((struct http_slice){NULL, 0}, "upgrade"));
}

Test(http_tokens, constant_time_equal)
{
	static const char want[] = "s3cr3t-token";
	size_t wl = strlen(want);
	cr_assert(http_token_equal((struct http_slice){"s3cr3t-token", 12}, want, wl));
	cr_assert_not(http_token_equal((struct http_slice){"s3cr3t-tokeN", 12}, want, wl));
	cr_assert_not(http_token_equal((struct http_slice){"X3cr3t-token", 12}, want, wl));
	cr_assert_not(http_token_equal((struct http_slice){"s3cr3t", 6}, want, wl));
	cr_assert_not(http_token_equal((struct http_slice){"s3cr3t-token2", 13}, want, wl));
	cr_assert_not(http_token_equal((struct http_slice){"", 0}, want, wl));
	cr_assert_not(http_token_equal((struct http_slice){NULL, 0}, want, wl));
	/* An empty expected token never authenticates anyone. */
	cr_assert_not(http_token_equal((struct http_slice){"", 0}, "", 0));
	cr_assert_not(http_token_equal((struct http_slice){"x", 1}, "", 0));
}

Test(http_ws, accept_rfc6455_example)
{
	char out[29];
	http_ws_accept(rfc_key, strlen(rfc_key), out);
	cr_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static void parse_resp_ok(const char *s)
{
	cr_assert_eq(http_parse_response(s, strlen(s), NULL, &resp), HTTP_OK, "%s",
	             resp.error_reason);
}

Test(http_response, valid_101)
{
	parse_resp_ok(good_101);
	cr_assert_eq(resp.status, 101);
	cr_assert_slice(resp.reason, "Switching Protocols");
	cr_assert_eq(resp.header_len, strlen(good_101));
	cr_assert_slice(resp.ws_protocol, "ringlet");
	cr_assert_null(http_upgrade_response_problem(&resp, rfc_key));
}

Test(http_response, retry_after)
{
	uint32_t secs = 1234;
	parse_resp_ok("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\n"
	              "Content-Length: 0\r\n\r\n");
	cr_assert(http_retry_after(&resp, 300, &secs));
	cr_assert_eq(secs, 7);
	parse_resp_ok("HTTP/1.1 503 Unavailable\r\nretry-after:   99999999999999\r\n\r\n");
	cr_assert(http_retry_after(&resp, 300, &secs));
	cr_assert_eq(secs, 300, "capped: %u", secs);
	parse_resp_ok("HTTP/1.1 503 Unavailable\r\n"
	              "Retry-After: Fri, 31 Dec 1999 23:59:59 GMT\r\n\r\n");
	cr_assert_not(http_retry_after(&resp, 300, &secs), "an HTTP-date is not delta-seconds");
	parse_resp_ok("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 5x\r\n\r\n");
	cr_assert_not(http_retry_after(&resp, 300, &secs));
	parse_resp_ok("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n");
	cr_assert_not(http_retry_after(&resp, 300, &secs));
}

Test(http_response, rejected)
{
	const char *why;
	parse_resp_ok("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	              "Connection: Upgrade\r\nSec-WebSocket-Accept: "
	              "AAAAMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
	why = http_upgrade_response_problem(&resp, rfc_key);
	cr_assert_str_eq(why, "wrong Sec-WebSocket-Accept");

	parse_resp_ok("HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\n"
	              "Content-Type: text/plain\r\n\r\nunauthorized\n");
	cr_assert_eq(resp.status, 401);
	cr_assert_slice(resp.reason, "Unauthorized");
	cr_assert_slice(resp.content_length, "13");
	cr_assert_slice(resp.content_type, "text/plain");
	cr_assert_str_eq(http_upgrade_response_problem(&resp, rfc_key), "not a 101 response");

	parse_resp_ok("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
	              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
	cr_assert_str_eq(http_upgrade_response_problem(&resp, rfc_key),
	                 "missing Upgrade: websocket");

	parse_resp_ok("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	              "Connection: Upgrade\r\n\r\n");
	cr_assert_str_eq(http_upgrade_response_problem(&resp, rfc_key),
	                 "missing Sec-WebSocket-Accept");

	cr_assert_eq(http_parse_response("HTTP/1.1 abc\r\n\r\n", 16, NULL, &resp), HTTP_ERROR);
	cr_assert_not_null(resp.error_reason);
	cr_assert_eq(http_parse_response("HTTP/3.0 101 X\r\n\r\n", 18, NULL, &resp),
	             HTTP_ERROR);
}

Test(http_response, split_at_every_offset)
{
	char buf[512];
	size_t len = strlen(good_101);
	memcpy(buf, good_101, len);
	memcpy(buf + len, "\x81\x02hi", 4);
	for (size_t cut = 0; cut < len; cut++)
		cr_assert_eq(http_parse_response(buf, cut, NULL, &resp), HTTP_NEED_MORE,
		             "cut %zu", cut);
	for (size_t extra = 0; extra <= 4; extra++) {
		cr_assert_eq(http_parse_response(buf, len + extra, NULL, &resp), HTTP_OK);
		cr_assert_eq(resp.header_len, len);
		cr_assert_null(http_upgrade_response_problem(&resp, rfc_key));
	}
}

Test(http_response, too_big)
{
	struct http_limits lim = {.max_header_bytes = 40, .max_headers = 2, .max_line = 40};
	cr_assert_eq(http_parse_response(good_101, strlen(good_101), &lim, &resp), HTTP_ERROR);
	lim.max_header_bytes = 4096;
	cr_assert_eq(http_parse_response(good_101, strlen(good_101), &lim, &resp), HTTP_ERROR);
}

Test(http_build, upgrade_round_trip)
{
	static const uint8_t nonce[16] = {0x74, 0x68, 0x65, 0x20, 0x73, 0x61, 0x6d, 0x70,
	                                  0x6c, 0x65, 0x20, 0x6e, 0x6f, 0x6e, 0x63, 0x65};
	char out[1024], key[25], reply[512];
	size_t n = http_build_upgrade_request(out, sizeof(out), "tunnel.example.com",
	                                      "/connect", "tok", "ringlet", nonce, key);
	cr_assert_gt(n, 0);
	cr_assert_str_eq(key, rfc_key);
	static const char want[] = "GET /connect HTTP/1.1\r\n"
	                           "Host: tunnel.example.com\r\n"
	                           "Upgrade: websocket\r\n"
	                           "Connection: Upgrade\r\n"
	                           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	                           "Sec-WebSocket-Version: 13\r\n"
	                           "Sec-WebSocket-Protocol: ringlet\r\n"
	                           "Authorization: Bearer tok\r\n"
	                           "User-Agent: ringlet\r\n"
	                           "\r\n";
	cr_assert_eq(n, strlen(want));
	cr_assert_eq(memcmp(out, want, n), 0);
	for (size_t cap = 0; cap < n; cap++)
		cr_assert_eq(http_build_upgrade_request(out, cap, "tunnel.example.com",
		                                        "/connect", "tok", "ringlet", nonce,
		                                        key),
		             0);
	n = http_build_upgrade_request(out, sizeof(out), "tunnel.example.com", "/connect",
	                               "tok", "ringlet", nonce, key);

	cr_assert_eq(http_parse_request(out, n, NULL, &req), HTTP_OK);
	cr_assert_null(http_upgrade_problem(&req, NULL));
	cr_assert_slice(req.bearer, "tok");
	cr_assert(http_token_equal(req.bearer, "tok", 3));

	size_t r = http_build_101(reply, sizeof(reply), req.ws_key, "ringlet");
	cr_assert_eq(r, strlen(good_101));
	cr_assert_eq(memcmp(reply, good_101, r), 0);
	cr_assert_eq(http_build_101(reply, r - 1, req.ws_key, "ringlet"), 0);
	cr_assert_eq(http_parse_response(reply, r, NULL, &resp), HTTP_OK);
	cr_assert_null(http_upgrade_response_problem(&resp, key));
	cr_assert_not_null(http_upgrade_response_problem(&resp, "ByYHKNxBR9bpy1EGqZKsjQ=="));

	r = http_build_101(reply, sizeof(reply), req.ws_key, NULL);
	cr_assert_eq(http_parse_response(reply, r, NULL, &resp), HTTP_OK);
	cr_assert_eq(resp.ws_protocol.p, NULL);

	/* No token, no protocol; values that could end a line are refused. */
	n = http_build_upgrade_request(out, sizeof(out), "h", "/", NULL, NULL, nonce, key);
	cr_assert_eq(http_parse_request(out, n, NULL, &req), HTTP_OK);
	cr_assert_eq(req.authorization.p, NULL);
	cr_assert_eq(http_build_upgrade_request(out, sizeof(out), "h", "/", "a\r\nX: y", NULL,
	                                        nonce, key),
	             0);
	cr_assert_eq(http_build_upgrade_request(out, sizeof(out), "h\r\n", "/", NULL, NULL,
	                                        nonce, key),
	             0);
}

Test(http_build, responses)
{
	char out[512];
	size_t n =
	        http_build_response(out, sizeof(out), 200, "text/plain", NULL, "ok\n", 3, true);
	static const char want[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	                           "Content-Length: 3\r\n\r\nok\n";
	cr_assert_eq(n, strlen(want));
	cr_assert_eq(memcmp(out, want, n), 0);
	cr_assert_eq(http_build_response(out, n - 1, 200, "text/plain", NULL, "ok\n", 3, true),
	             0);
	cr_assert_eq(http_parse_response(out, n, NULL, &resp), HTTP_OK);
	cr_assert_eq(resp.status, 200);
	cr_assert_eq(resp.header_len, n - 3);

	n = http_build_response(out, sizeof(out), 426, NULL, "Sec-WebSocket-Version: 13\r\n",
	                        "", 0, false);
	static const char want426[] = "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n"
	                              "Connection: close\r\nSec-WebSocket-Version: 13\r\n\r\n";
	cr_assert_eq(n, strlen(want426));
	cr_assert_eq(memcmp(out, want426, n), 0);

	n = http_build_response_head(out, sizeof(out), 204, NULL, NULL, 0, true);
	cr_assert_eq(n, strlen("HTTP/1.1 204 No Content\r\n\r\n"));
	cr_assert_eq(memcmp(out, "HTTP/1.1 204 No Content\r\n\r\n", n), 0);

	n = http_build_response_head(out, sizeof(out), 431, "text/plain", NULL, 1000000, false);
	cr_assert_eq(http_parse_response(out, n, NULL, &resp), HTTP_OK);
	cr_assert_slice(resp.content_length, "1000000");
	cr_assert_slice(resp.reason, "Request Header Fields Too Large");
}

Test(http_build, get_round_trip)
{
	char out[512];
	size_t n = http_build_get(out, sizeof(out), "127.0.0.1:8123", "/status?v=1", "t0k");
	static const char want[] = "GET /status?v=1 HTTP/1.1\r\nHost: 127.0.0.1:8123\r\n"
	                           "Authorization: Bearer t0k\r\nUser-Agent: ringlet\r\n"
	                           "Accept: */*\r\nConnection: close\r\n\r\n";
	cr_assert_eq(n, strlen(want));
	cr_assert_eq(memcmp(out, want, n), 0);
	cr_assert_eq(http_parse_request(out, n, NULL, &req), HTTP_OK);
	cr_assert_slice(req.path, "/status");
	cr_assert_slice(req.query, "v=1");
	cr_assert_slice(req.bearer, "t0k");
	cr_assert_not(req.keep_alive);
	cr_assert_eq(http_build_get(out, 10, "h", "/", NULL), 0);
	cr_assert_eq(http_build_get(out, sizeof(out), "h", "no-slash", NULL), 0);
}

Test(http_build, reasons)
{
	static const int codes[] = {101, 200, 204, 400, 401, 403, 404, 405, 408,
	                            413, 414, 426, 429, 431, 500, 502, 503, 505};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		cr_assert_str_neq(http_reason(codes[i]), "Unknown", "%d", codes[i]);
	cr_assert_str_eq(http_reason(401), "Unauthorized");
	cr_assert_str_eq(http_reason(799), "Unknown");
}
