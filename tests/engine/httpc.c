/* tests/engine/httpc.c — the blocking HTTP client against a one-connection loopback server
 * (a thread): the request it sends, every way a body can be framed, the limits, the
 * deadline, and TLS without verification. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ec_key.h>
#include <openssl/evp.h>
#include <openssl/nid.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/httpc.h"

/* One connection: read the request head, send the answer (in pieces of `piece` bytes when
 * not 0), close. With `hold`, send nothing and wait for the client to go away. The test
 * sets the options before srv_start. */
struct srv {
	int lfd;
	int family;
	uint16_t port;
	const char *answer;
	size_t answer_len;
	size_t piece;
	bool hold;
	bool greet; /* answer at once, without reading a request; close after the client */
	SSL_CTX *tls;
	char request[4096];
	size_t request_len;
	pthread_t th;
};

static struct srv srv;
static char err[256];
static struct httpc_response resp;

static int srv_read(SSL *ssl, int fd, char *p, size_t cap)
{
	if (ssl)
		return SSL_read(ssl, p, (int)cap);
	return (int)recv(fd, p, cap, 0);
}

static void srv_write(SSL *ssl, int fd, const char *p, size_t n)
{
	if (ssl)
		SSL_write(ssl, p, (int)n);
	else
		send(fd, p, n, MSG_NOSIGNAL);
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	int fd = accept(s->lfd, NULL, NULL), one = 1;
	SSL *ssl = NULL;
	if (fd == -1)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (s->tls) {
		ssl = SSL_new(s->tls);
		SSL_set_fd(ssl, fd);
		if (SSL_accept(ssl) != 1)
			goto out;
	}
	while (!s->greet && !memmem(s->request, s->request_len, "\r\n\r\n", 4) &&
	       s->request_len < sizeof(s->request)) {
		int k = srv_read(ssl, fd, s->request + s->request_len,
		                 sizeof(s->request) - s->request_len);
		if (k <= 0)
			goto out;
		s->request_len += (size_t)k;
	}
	if (s->hold) {
		char c;
		while (srv_read(ssl, fd, &c, 1) > 0)
			;
		goto out;
	}
	for (size_t at = 0; at < s->answer_len;) {
		size_t n = s->piece ? s->piece : s->answer_len;
		if (n > s->answer_len - at)
			n = s->answer_len - at;
		srv_write(ssl, fd, s->answer + at, n);
		at += n;
	}
	if (ssl)
		SSL_shutdown(ssl);
	if (s->greet) { /* and let the client find out */
		char c;
		while (srv_read(ssl, fd, &c, 1) > 0)
			;
	}
out:
	SSL_free(ssl);
	close(fd);
	return NULL;
}

static void srv_start_on(const char *ip, const char *answer, size_t len)
{
	struct sockaddr_storage ss = {0};
	socklen_t sl;
	if (strchr(ip, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		cr_assert_eq(inet_pton(AF_INET6, ip, &a->sin6_addr), 1);
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		cr_assert_eq(inet_pton(AF_INET, ip, &a->sin_addr), 1);
		sl = sizeof(*a);
	}
	srv.family = ss.ss_family;
	srv.lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_neq(srv.lfd, -1);
	if (bind(srv.lfd, (struct sockaddr *)&ss, sl) == -1) {
		close(srv.lfd);
		cr_skip_test("cannot bind %s: %s", ip, strerror(errno));
	}
	cr_assert_eq(listen(srv.lfd, 4), 0);
	cr_assert_eq(getsockname(srv.lfd, (struct sockaddr *)&ss, &sl), 0);
	srv.port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                          : ((struct sockaddr_in *)&ss)->sin_port);
	srv.answer = answer;
	srv.answer_len = len;
	cr_assert_eq(pthread_create(&srv.th, NULL, srv_main, &srv), 0);
}

static void srv_start(const char *answer)
{
	srv_start_on("127.0.0.1", answer, strlen(answer));
}

static void srv_join(void)
{
	pthread_join(srv.th, NULL);
	close(srv.lfd);
	srv.request[srv.request_len < sizeof(srv.request) ? srv.request_len
	                                                  : sizeof(srv.request) - 1] = 0;
}

static void teardown(void)
{
	httpc_response_free(&resp);
	SSL_CTX_free(srv.tls);
	memset(&srv, 0, sizeof(srv));
}

/* GET path from the test server, plain HTTP, 5 s, 1 MiB. */
static int get(const char *path, const char *token, size_t max_body)
{
	struct httpc_request req = {
	        .host = srv.family == AF_INET6 ? "::1" : "127.0.0.1",
	        .port = srv.port,
	        .path = path,
	        .token = token,
	        .transport = srv.tls ? HTTPC_TLS_UNVERIFIED : HTTPC_PLAIN,
	        .timeout_ms = 5000,
	        .max_body = max_body,
	};
	err[0] = 0;
	int r = httpc_get(&req, &resp, err, sizeof(err));
	srv_join();
	if (r)
		cr_assert_null(resp.body, "a failure leaves no body");
	return r;
}

static void expect_body(const char *want)
{
	cr_assert_not_null(resp.body);
	cr_assert_eq(resp.body_len, strlen(want), "body %zu bytes, want %zu: %s", resp.body_len,
	             strlen(want), resp.body);
	cr_assert_str_eq(resp.body, want);
}

static void setup(void)
{
	signal(SIGPIPE, SIG_IGN); /* the TLS test server writes with write(2) */
}

TestSuite(httpc, .init = setup, .fini = teardown, .timeout = 30);

Test(httpc, request_and_content_length)
{
	srv_start("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
	          "\r\n{\"a\": true}and bytes after the body");
	cr_assert_eq(get("/status", "s3cr3t", 1 << 20), 0, "%s", err);
	cr_assert_eq(resp.status, 200);
	expect_body("{\"a\": true}");
	char want[128];
	snprintf(want, sizeof(want), "GET /status HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n",
	         srv.port);
	cr_assert(strncmp(srv.request, want, strlen(want)) == 0, "%s", srv.request);
	cr_assert_not_null(strstr(srv.request, "\r\nAuthorization: Bearer s3cr3t\r\n"));
	cr_assert_not_null(strstr(srv.request, "\r\nConnection: close\r\n"));
}

Test(httpc, no_token_no_authorization)
{
	srv_start("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
	cr_assert_eq(get("/.well-known/ca.crt", NULL, 100), 0, "%s", err);
	expect_body("");
	cr_assert_null(strstr(srv.request, "Authorization"));
	cr_assert(strncmp(srv.request, "GET /.well-known/ca.crt HTTP/1.1\r\n", 34) == 0);
}

Test(httpc, chunked_in_small_pieces)
{
	srv.piece = 3;
	srv_start(
	        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	        "5;ext=1\r\nhello\r\n1\r\n,\r\nA\r\n chunked!\n\r\n0\r\nX-Trailer: t\r\n\r\n");
	cr_assert_eq(get("/", NULL, 1 << 20), 0, "%s", err);
	cr_assert_eq(resp.status, 200);
	expect_body("hello, chunked!\n");
}

Test(httpc, chunked_large)
{
	/* More than the first buffer, in chunks of every size up to 300. */
	size_t cap = 1 << 20, n = 0, want_len = 0;
	char *ans = malloc(cap), *want = malloc(cap);
	cr_assert(ans && want);
	n += (size_t)snprintf(ans, cap,
	                      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (size_t k = 1; k <= 300; k++) {
		n += (size_t)snprintf(ans + n, cap - n, "%zx\r\n", k);
		for (size_t i = 0; i < k; i++)
			ans[n++] = want[want_len++] = (char)('a' + (k + i) % 26);
		memcpy(ans + n, "\r\n", 2);
		n += 2;
	}
	n += (size_t)snprintf(ans + n, cap - n, "0\r\n\r\n");
	want[want_len] = 0;
	srv.piece = 1000;
	srv_start_on("127.0.0.1", ans, n);
	cr_assert_eq(get("/", NULL, 1 << 20), 0, "%s", err);
	cr_assert_eq(resp.body_len, want_len);
	cr_assert_eq(memcmp(resp.body, want, want_len), 0);
	free(ans);
	free(want);
}

Test(httpc, content_length_large)
{
	/* A body longer than the head: it moves over the head's bytes. */
	static char ans[100100];
	int h = snprintf(ans, sizeof(ans), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n",
	                 sizeof(ans) - 100);
	memset(ans + h, 'x', sizeof(ans) - (size_t)h);
	srv.piece = 5000;
	srv_start_on("127.0.0.1", ans, sizeof(ans));
	cr_assert_eq(get("/", NULL, 1 << 20), 0, "%s", err);
	cr_assert_eq(resp.body_len, sizeof(ans) - 100);
	for (size_t i = 0; i < resp.body_len; i++)
		cr_assert_eq(resp.body[i], 'x');
}

Test(httpc, body_until_close)
{
	srv.piece = 7;
	srv_start("HTTP/1.0 200 OK\r\n\r\nall of it,\r\nuntil the end");
	cr_assert_eq(get("/", NULL, 1 << 20), 0, "%s", err);
	expect_body("all of it,\r\nuntil the end");
}

Test(httpc, status_codes_are_returned)
{
	srv_start("HTTP/1.1 401 Unauthorized\r\nContent-Length: 13\r\n\r\nunauthorized\n");
	cr_assert_eq(get("/status", "wrong", 1 << 20), 0, "%s", err);
	cr_assert_eq(resp.status, 401);
	expect_body("unauthorized\n");
}

Test(httpc, interim_answers_are_skipped)
{
	srv.piece = 5;
	srv_start("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
	          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
	cr_assert_eq(get("/", NULL, 100), 0, "%s", err);
	cr_assert_eq(resp.status, 200);
	expect_body("ok");
}

Test(httpc, no_content)
{
	srv_start("HTTP/1.1 204 No Content\r\n\r\n");
	cr_assert_eq(get("/", NULL, 100), 0, "%s", err);
	cr_assert_eq(resp.status, 204);
	expect_body("");
}

Test(httpc, body_limit)
{
	srv_start("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n0123456789a");
	cr_assert_eq(get("/", NULL, 10), -EFBIG);
	cr_assert_not_null(strstr(err, "larger than 10 bytes"), "%s", err);
	teardown();

	srv_start("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789");
	cr_assert_eq(get("/", NULL, 10), 0, "%s", err);
	expect_body("0123456789");
	teardown();

	srv_start("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	          "5\r\n01234\r\n6\r\n56789a\r\n0\r\n\r\n");
	cr_assert_eq(get("/", NULL, 10), -EFBIG);
	teardown();

	srv_start("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	          "5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n");
	cr_assert_eq(get("/", NULL, 10), 0, "%s", err);
	expect_body("0123456789");
	teardown();

	srv_start("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n0123456789a");
	cr_assert_eq(get("/", NULL, 10), -EFBIG);
	teardown();

	srv_start("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n0123456789");
	cr_assert_eq(get("/", NULL, 10), 0, "%s", err);
	expect_body("0123456789");
	teardown();

	/* A body much larger than the limit is refused before it is all read. */
	static char big[200000];
	int h = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\n\r\n");
	memset(big + h, 'x', sizeof(big) - (size_t)h);
	srv_start_on("127.0.0.1", big, sizeof(big));
	cr_assert_eq(get("/", NULL, 1000), -EFBIG);
}

Test(httpc, truncated_answers)
{
	srv_start("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234");
	cr_assert_eq(get("/", NULL, 100), -EBADMSG);
	cr_assert_not_null(strstr(err, "closed the connection before the end of the body"),
	                   "%s", err);
	teardown();

	srv_start("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
	cr_assert_eq(get("/", NULL, 100), -EBADMSG);
	teardown();

	srv_start("HTTP/1.1 200 OK\r\nContent-Le");
	cr_assert_eq(get("/", NULL, 100), -EBADMSG);
	cr_assert_not_null(strstr(err, "before the end of the answer's head"), "%s", err);
	teardown();

	srv_start("");
	cr_assert_eq(get("/", NULL, 100), -EBADMSG);
}

Test(httpc, not_http)
{
	srv_start("SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n");
	cr_assert_eq(get("/", NULL, 100), -EBADMSG);
	cr_assert_not_null(strstr(err, "did not answer with HTTP"), "%s", err);
	teardown();

	srv_start("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n");
	cr_assert_eq(get("/", NULL, 100), -EBADMSG);
	cr_assert_not_null(strstr(err, "bad chunked body"), "%s", err);
	teardown();

	srv_start("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	          "Connection: Upgrade\r\n\r\n");
	cr_assert_eq(get("/", NULL, 100), -EBADMSG);
	teardown();

	/* A head over the parser's limit. */
	static char big[40000];
	int h = snprintf(big, sizeof(big), "HTTP/1.1 200 OK\r\nX-Big: ");
	memset(big + h, 'x', sizeof(big) - (size_t)h - 4);
	memcpy(big + sizeof(big) - 4, "\r\n\r\n", 4);
	srv_start_on("127.0.0.1", big, sizeof(big));
	cr_assert_eq(get("/", NULL, 100), -EBADMSG);
	cr_assert_not_null(strstr(err, "too large"), "%s", err);
}

Test(httpc, deadline)
{
	srv.hold = true;
	srv_start("");
	struct httpc_request req = {.host = "127.0.0.1",
	                            .port = srv.port,
	                            .path = "/",
	                            .timeout_ms = 200,
	                            .max_body = 100};
	cr_assert_eq(httpc_get(&req, &resp, err, sizeof(err)), -ETIMEDOUT);
	cr_assert_not_null(strstr(err, "within 200 ms"), "%s", err);
	srv_join();
}

Test(httpc, refused_and_bad_requests)
{
	/* A port nobody listens on: bound, never listened to. */
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof(a);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sl), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &sl), 0);
	struct httpc_request req = {.host = "127.0.0.1",
	                            .port = ntohs(a.sin_port),
	                            .path = "/",
	                            .timeout_ms = 2000,
	                            .max_body = 100};
	cr_assert_eq(httpc_get(&req, &resp, err, sizeof(err)), -ECONNREFUSED);
	cr_assert_not_null(strstr(err, "cannot connect to 127.0.0.1:"), "%s", err);
	close(fd);

	req.token = "two words";
	cr_assert_eq(httpc_get(&req, &resp, err, sizeof(err)), -EINVAL);
	req.token = "ok\r\nX-Injected: 1";
	cr_assert_eq(httpc_get(&req, &resp, err, sizeof(err)), -EINVAL);
	req.token = NULL;
	req.path = "no-slash";
	cr_assert_eq(httpc_get(&req, &resp, err, sizeof(err)), -EINVAL);
	cr_assert_null(resp.body);
}

Test(httpc, ipv6_host_header)
{
	srv_start_on("::1", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6",
	             strlen("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nv6"));
	cr_assert_eq(get("/", NULL, 100), 0, "%s", err);
	expect_body("v6");
	char want[64];
	snprintf(want, sizeof(want), "\r\nHost: [::1]:%u\r\n", srv.port);
	cr_assert_not_null(strstr(srv.request, want), "%s", srv.request);
}

/* A throwaway self-signed P-256 certificate for the TLS server. */
static SSL_CTX *tls_server_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
	EVP_PKEY *pk = EVP_PKEY_new();
	X509 *x = X509_new();
	cr_assert(ctx && ec && pk && x);
	cr_assert(EC_KEY_generate_key(ec) && EVP_PKEY_assign_EC_KEY(pk, ec));
	X509_NAME *name = X509_get_subject_name(x);
	cr_assert(X509_set_version(x, X509_VERSION_3) &&
	          ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
	          X509_gmtime_adj(X509_getm_notBefore(x), -60) &&
	          X509_gmtime_adj(X509_getm_notAfter(x), 3600) && X509_set_pubkey(x, pk) &&
	          X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                     (const uint8_t *)"httpc test", -1, -1, 0) &&
	          X509_set_issuer_name(x, name) && X509_sign(x, pk, EVP_sha256()));
	cr_assert(SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, pk) == 1);
	X509_free(x);
	EVP_PKEY_free(pk);
	return ctx;
}

Test(httpc, tls_unverified)
{
	srv.tls = tls_server_ctx();
	srv.piece = 4;
	srv_start("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	          "1b\r\n-----BEGIN CERTIFICATE-----\r\n0\r\n\r\n");
	cr_assert_eq(get("/.well-known/ca.crt", NULL, 65536), 0, "%s", err);
	cr_assert_eq(resp.status, 200);
	expect_body("-----BEGIN CERTIFICATE-----");
	cr_assert(strncmp(srv.request, "GET /.well-known/ca.crt HTTP/1.1\r\n", 34) == 0);
	teardown();

	/* Read-to-close over TLS: the close_notify ends the body. */
	srv.tls = tls_server_ctx();
	srv_start("HTTP/1.1 200 OK\r\n\r\nuntil close_notify");
	cr_assert_eq(get("/", NULL, 100), 0, "%s", err);
	expect_body("until close_notify");
}

Test(httpc, tls_to_a_plain_server)
{
	srv.greet = true;
	srv_start("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
	struct httpc_request req = {.host = "127.0.0.1",
	                            .port = srv.port,
	                            .path = "/",
	                            .transport = HTTPC_TLS_UNVERIFIED,
	                            .timeout_ms = 5000,
	                            .max_body = 100};
	int r = httpc_get(&req, &resp, err, sizeof(err));
	cr_assert_eq(r, -EPROTO, "%d: %s", r, err);
	cr_assert_not_null(strstr(err, "TLS handshake with 127.0.0.1:"), "%s", err);
	srv_join();
}
