/* engine/httpc.c — see httpc.h.
 *
 * The socket is non-blocking and every wait is a poll() bounded by what is left of the
 * deadline. TLS runs over memory BIOs: ciphertext goes through the same send and recv as
 * plain bytes, so the deadline holds for it too and nothing can raise SIGPIPE (sends use
 * MSG_NOSIGNAL; a socket BIO would write(2)).
 *
 * The answer is read into one buffer: first the head (up to the HTTP parser's limit), then
 * the body, moved to the buffer's start, which becomes the response's body. A chunked body
 * is decoded in place as it arrives, so the buffer never holds more than the decoded body
 * and one read.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/httpc.h"
#include "engine/net.h"
#include "proto/chunked.h"
#include "proto/http.h"

#define HTTPC_BODY_SLACK 16384 /* room past max_body: see read_body */
#define HTTPC_TLS_CHUNK 16384  /* ciphertext moved per send or recv */

struct hconn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	bool eof;         /* the peer closed its side (TLS: under the TLS layer) */
	int64_t deadline; /* CLOCK_MONOTONIC, ms */
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int hconn_left_ms(const struct hconn *c)
{
	int64_t left = c->deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* Wait for events on the socket until the deadline: 0, -ETIMEDOUT or -errno. An error or
 * hang-up counts as ready: the call that follows reports it. */
static int hconn_wait(const struct hconn *c, short events)
{
	for (;;) {
		int left = hconn_left_ms(c);
		if (!left)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = c->fd, .events = events};
		int r = poll(&p, 1, left);
		if (r == 1)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

static int hconn_send(const struct hconn *c, const void *p, size_t n)
{
	const char *q = p;
	while (n) {
		ssize_t w = send(c->fd, q, n, MSG_NOSIGNAL);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			int r = hconn_wait(c, POLLOUT);
			if (r)
				return r;
			continue;
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

/* At least one byte, waiting for it: the count, 0 at the peer's EOF, or -errno. */
static ssize_t hconn_recv(struct hconn *c, void *p, size_t cap)
{
	for (;;) {
		ssize_t r = recv(c->fd, p, cap, 0);
		if (r == 0)
			c->eof = true;
		if (r >= 0)
			return r;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		int w = hconn_wait(c, POLLIN);
		if (w)
			return w;
	}
}

/* Connect to the first address that answers, within the deadline: 0 or -errno. */
static int hconn_dial(struct hconn *c, const struct addrlist *al)
{
	int err = -ECONNREFUSED;
	for (int i = 0; i < al->n; i++) {
		c->fd = socket(al->addr[i].ss_family,
		               SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->fd == -1) {
			err = -errno;
			continue;
		}
		if (connect(c->fd, (const struct sockaddr *)&al->addr[i], al->len[i]) == 0)
			return 0;
		err = -errno;
		if (err == -EINPROGRESS) {
			err = hconn_wait(c, POLLOUT);
			int soerr = 0;
			socklen_t sl = sizeof(soerr);
			if (!err && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
				err = -errno;
			else if (!err && soerr)
				err = -soerr;
			if (!err)
				return 0;
		}
		close(c->fd);
		c->fd = -1;
		if (!hconn_left_ms(c))
			return -ETIMEDOUT;
	}
	return err;
}

/* ---- TLS over memory BIOs ----------------------------------------------------------- */

/* Send the ciphertext the TLS layer has produced. 0 or -errno. */
static int hconn_flush(const struct hconn *c)
{
	uint8_t buf[HTTPC_TLS_CHUNK];
	int k;
	while ((k = BIO_read(c->wbio, buf, sizeof(buf))) > 0) {
		int r = hconn_send(c, buf, (size_t)k);
		if (r)
			return r;
	}
	return 0;
}

/* Hand the TLS layer more ciphertext (or the EOF). 0 or -errno. */
static int hconn_fill(struct hconn *c)
{
	uint8_t buf[HTTPC_TLS_CHUNK];
	ssize_t n = hconn_recv(c, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	if (n == 0) {
		BIO_set_mem_eof_return(c->rbio, 0); /* an empty read is now EOF, not retry */
		return 0;
	}
	return BIO_write(c->rbio, buf, (int)n) == (int)n ? 0 : -ENOMEM;
}

/* After an SSL call returned ret <= 0: move ciphertext as it asks. 0 to call it again,
 * 1 when it failed for a TLS reason (see the error queue), or -errno. */
static int hconn_tls_wait(struct hconn *c, int ret)
{
	int e = SSL_get_error(c->ssl, ret);
	int r = hconn_flush(c);
	if (r)
		return r;
	if (e == SSL_ERROR_WANT_READ && !c->eof)
		return hconn_fill(c);
	return 1;
}

/* "reason" of the TLS layer's first error, or what the transport did. */
static const char *hconn_tls_reason(const struct hconn *c)
{
	unsigned long e = ERR_peek_error();
	if (e)
		return ERR_reason_error_string(e);
	return c->eof ? "connection closed" : "protocol error";
}

static bool is_ip(const char *s)
{
	uint8_t b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

/* A TLS client session, handshake done, server not verified. 0, -ENOMEM, -EPROTO (reason
 * in the error queue) or -errno. */
static int hconn_tls_start(struct hconn *c, const char *host)
{
	ERR_clear_error(); /* what hconn_tls_reason reports must be this connection's */
	c->ctx = SSL_CTX_new(TLS_method());
	c->ssl = c->ctx ? SSL_new(c->ctx) : NULL;
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !c->rbio || !c->wbio) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		c->rbio = c->wbio = NULL;
		return -ENOMEM;
	}
	SSL_set_min_proto_version(c->ssl, TLS1_2_VERSION); /* as engine/tls.c */
	SSL_set_bio(c->ssl, c->rbio, c->wbio);             /* the SSL owns both BIOs now */
	SSL_set_connect_state(c->ssl);
	SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL); /* HTTPC_TLS_UNVERIFIED: see httpc.h */
	if (!is_ip(host))
		SSL_set_tlsext_host_name(c->ssl, host);
	for (;;) {
		int k = SSL_do_handshake(c->ssl);
		if (k == 1)
			return hconn_flush(c);
		int r = hconn_tls_wait(c, k);
		if (r)
			return r > 0 ? -EPROTO : r;
	}
}

/* ---- the connection, either transport ----------------------------------------------- */

static int hconn_write(struct hconn *c, const void *p, size_t n)
{
	if (!c->ssl)
		return hconn_send(c, p, n);
	for (;;) {
		int k = SSL_write(c->ssl, p, (int)n);
		if (k > 0)
			return hconn_flush(c);
		int r = hconn_tls_wait(c, k);
		if (r)
			return r > 0 ? -EPROTO : r;
	}
}

/* Body or head bytes: the count, 0 at the end of the connection, or -errno. */
static ssize_t hconn_read(struct hconn *c, void *p, size_t cap)
{
	if (!c->ssl)
		return hconn_recv(c, p, cap);
	for (;;) {
		int k = SSL_read(c->ssl, p, cap > INT_MAX ? INT_MAX : (int)cap);
		if (k > 0)
			return k;
		int e = SSL_get_error(c->ssl, k);
		/* A close without close_notify ends the connection too: the answer's framing
		 * says whether it was whole. */
		if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && c->eof))
			return 0;
		int r = hconn_tls_wait(c, k);
		if (r)
			return r > 0 ? -EPROTO : r;
	}
}

static void hconn_close(struct hconn *c)
{
	SSL_free(c->ssl);
	SSL_CTX_free(c->ctx);
	c->ssl = NULL;
	c->ctx = NULL;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	ERR_clear_error();
}

/* ---- the answer --------------------------------------------------------------------- */

struct answer {
	char *buf;
	size_t cap, n; /* buf holds n bytes; room for cap and a NUL */
	size_t limit;  /* cap never grows past this */
};

/* Room for at least one more byte: 0, -EFBIG at the limit, -ENOMEM. */
static int make_room(struct answer *a)
{
	if (a->n < a->cap)
		return 0;
	if (a->cap >= a->limit)
		return -EFBIG;
	size_t cap = a->cap * 2 < a->limit ? a->cap * 2 : a->limit;
	char *nb = realloc(a->buf, cap + 1);
	if (!nb)
		return -ENOMEM;
	a->buf = nb;
	a->cap = cap;
	return 0;
}

/* Read more of the answer into a->buf: the count, 0 at EOF, or -errno. */
static ssize_t read_more(struct hconn *c, struct answer *a)
{
	int r = make_room(a);
	if (r)
		return r;
	ssize_t k = hconn_read(c, a->buf + a->n, a->cap - a->n);
	if (k > 0)
		a->n += (size_t)k;
	return k;
}

/* Content-Length's value (llhttp has checked it is digits); false when it overflows. */
static bool content_length(struct http_slice s, uint64_t *out)
{
	uint64_t v = 0;
	for (size_t i = 0; i < s.len; i++) {
		if (s.p[i] < '0' || s.p[i] > '9' || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
	}
	*out = v;
	return true;
}

struct exchange {
	const struct httpc_request *req;
	const char *where; /* "host:port", for messages */
	char *err;
	size_t errlen;
};

static int failf(const struct exchange *x, int ret, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int failf(const struct exchange *x, int ret, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(x->err, x->errlen, fmt, ap);
	va_end(ap);
	return ret;
}

/* A read that did not deliver: k is 0 (EOF) or -errno. */
static int read_failed(const struct exchange *x, const struct hconn *c, ssize_t k,
                       const char *what)
{
	if (k == 0)
		return failf(x, -EBADMSG, "%s closed the connection before the end of %s",
		             x->where, what);
	if (k == -ETIMEDOUT)
		return failf(x, -ETIMEDOUT, "no complete answer from %s within %d ms", x->where,
		             x->req->timeout_ms);
	if (k == -EFBIG)
		return failf(x, -EFBIG, "the answer from %s is larger than %zu bytes", x->where,
		             x->req->max_body);
	if (k == -EPROTO)
		return failf(x, -EPROTO, "TLS error from %s: %s", x->where,
		             hconn_tls_reason(c));
	return failf(x, (int)k, "reading the answer from %s: %s", x->where, strerror((int)-k));
}

/* The head of the final answer (1xx interim answers are dropped): on 0, a->buf starts
 * with it and *head is parsed. The buffer is as large as the parser's head limit, so a
 * head that does not fit is the parser's error first. */
static int read_head(const struct exchange *x, struct hconn *c, struct answer *a,
                     struct http_response *head)
{
	for (;;) {
		enum http_status st =
		        a->n ? http_parse_response(a->buf, a->n, NULL, head) : HTTP_NEED_MORE;
		if (st == HTTP_ERROR)
			return failf(x, -EBADMSG, "%s did not answer with HTTP: %s", x->where,
			             head->error_reason);
		if (st == HTTP_OK && head->status == 101)
			return failf(x, -EBADMSG, "%s switched protocols unasked", x->where);
		if (st == HTTP_OK && head->status >= 200)
			return 0;
		if (st == HTTP_OK) {
			a->n -= head->header_len;
			memmove(a->buf, a->buf + head->header_len, a->n);
			continue;
		}
		ssize_t k = read_more(c, a);
		if (k <= 0)
			return read_failed(x, c, k, "the answer's head");
	}
}

/* a->buf[0..a->n) holds the start of a chunked body: decode it in place as it arrives. */
static int read_chunked(const struct exchange *x, struct hconn *c, struct answer *a,
                        size_t *len)
{
	struct chunk_dec d;
	size_t out = 0; /* decoded bytes at a->buf[0..out); encoded ones at [out..n) */
	chunk_init(&d);
	for (;;) {
		size_t used, made;
		enum chunk_status st = chunk_decode(&d, a->buf + out, a->n - out, a->buf + out,
		                                    a->n - out, &used, &made);
		out += made;
		if (st == CHUNK_ERROR)
			return failf(x, -EBADMSG, "bad chunked body from %s: %s", x->where,
			             d.error_reason);
		if (out > x->req->max_body)
			return read_failed(x, c, -EFBIG, "the body");
		if (st == CHUNK_OK) {
			*len = out;
			return 0;
		}
		a->n = out; /* NEED_MORE with room to spare: every byte was consumed */
		ssize_t k = read_more(c, a);
		if (k <= 0)
			return read_failed(x, c, k, "the body");
	}
}

/* After the head: the body, framed as the head says, at the start of a->buf. */
static int read_body(const struct exchange *x, struct hconn *c, struct answer *a,
                     const struct http_response *head, size_t *len)
{
	size_t max = x->req->max_body;
	uint64_t want = 0;
	/* The head's slices point into a->buf: read them before the body moves over them. */
	bool sized = !head->chunked && head->content_length.p;
	if (sized && !content_length(head->content_length, &want))
		return failf(x, -EBADMSG, "%s answered with a bad Content-Length", x->where);
	a->n -= head->header_len;
	memmove(a->buf, a->buf + head->header_len, a->n);
	/* Room for the largest body and one read past it: enough to see it is too large,
	 * and for the framing around a chunked body's last bytes. */
	a->limit = max > SIZE_MAX - HTTPC_BODY_SLACK ? SIZE_MAX - 1 : max + HTTPC_BODY_SLACK;
	if (head->status == 204 || head->status == 304) {
		*len = 0;
		return 0;
	}
	if (head->chunked)
		return read_chunked(x, c, a, len);
	if (sized) {
		if (want > max)
			return read_failed(x, c, -EFBIG, "the body");
		while (a->n < want) {
			ssize_t k = read_more(c, a);
			if (k <= 0)
				return read_failed(x, c, k, "the body");
		}
		*len = (size_t)want; /* bytes after it are not ours */
		return 0;
	}
	while (a->n <= max) { /* neither: the body ends with the connection */
		ssize_t k = read_more(c, a);
		if (k == 0) {
			*len = a->n;
			return 0;
		}
		if (k < 0)
			return read_failed(x, c, k, "the body");
	}
	return read_failed(x, c, -EFBIG, "the body");
}

/* host:port as a Host header would have it (IPv6 in brackets); the port is left out when
 * it is the scheme's default and default_port is true. */
static void host_port(char *out, size_t cap, const char *host, uint16_t port, bool default_port)
{
	bool v6 = strchr(host, ':') != NULL;
	if (default_port)
		snprintf(out, cap, v6 ? "[%s]" : "%s", host);
	else
		snprintf(out, cap, v6 ? "[%s]:%u" : "%s:%u", host, port);
}

int httpc_get(const struct httpc_request *req, struct httpc_response *resp, char *err,
              size_t errlen)
{
	char host[256], where[300], host_hdr[300], head_buf[HTTPC_MAX_REQUEST];
	bool tls = req->transport == HTTPC_TLS_UNVERIFIED;
	struct hconn c = {.fd = -1, .deadline = now_ms() + req->timeout_ms};
	/* First the head, as large as the parser takes; it doubles from there for the body. */
	struct answer a = {.cap = http_default_limits.max_header_bytes,
	                   .limit = http_default_limits.max_header_bytes};
	struct http_response head;
	const struct exchange x = {req, where, err, errlen};
	struct addrlist al;
	size_t len = 0;
	int ret;

	memset(resp, 0, sizeof(*resp));
	size_t hl = strlen(req->host);
	if (hl >= sizeof(host))
		return failf(&x, -EINVAL, "the host name %.40s... is too long", req->host);
	if (hl >= 2 && req->host[0] == '[' && req->host[hl - 1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)(hl - 2), req->host + 1);
	else
		snprintf(host, sizeof(host), "%s", req->host);
	host_port(where, sizeof(where), host, req->port, false);
	host_port(host_hdr, sizeof(host_hdr), host, req->port, req->port == (tls ? 443 : 80));
	size_t rl = http_build_get(head_buf, sizeof(head_buf), host_hdr, req->path, req->token);
	if (!rl)
		return failf(&x, -EINVAL, "cannot ask %s for %s: bad host, path or token",
		             where, req->path);
	int gai = net_resolve(host, req->port, &al);
	if (gai)
		return failf(&x, -ENXIO, "cannot resolve %s: %s", host, gai_strerror(gai));

	ret = hconn_dial(&c, &al);
	if (ret) {
		failf(&x, ret, "cannot connect to %s: %s", where, strerror(-ret));
		goto out;
	}
	if (tls) {
		ret = hconn_tls_start(&c, host);
		if (ret == -ETIMEDOUT)
			failf(&x, ret, "TLS handshake with %s failed: no answer within %d ms",
			      where, req->timeout_ms);
		else if (ret == -EPROTO)
			failf(&x, ret, "TLS handshake with %s failed: %s", where,
			      hconn_tls_reason(&c));
		else if (ret)
			failf(&x, ret, "TLS handshake with %s failed: %s", where,
			      strerror(-ret));
		if (ret)
			goto out;
	}
	ret = hconn_write(&c, head_buf, rl);
	if (ret) {
		failf(&x, ret, "cannot send the request to %s: %s", where,
		      ret == -EPROTO ? hconn_tls_reason(&c) : strerror(-ret));
		goto out;
	}

	a.buf = malloc(a.cap + 1);
	if (!a.buf) {
		ret = failf(&x, -ENOMEM, "out of memory");
		goto out;
	}
	ret = read_head(&x, &c, &a, &head);
	if (!ret)
		ret = read_body(&x, &c, &a, &head, &len);
	if (ret)
		goto out;
	a.buf[len] = 0;
	resp->status = head.status;
	resp->body = a.buf;
	resp->body_len = len;
	a.buf = NULL;
out:
	free(a.buf);
	hconn_close(&c);
	return ret;
}

void httpc_response_free(struct httpc_response *resp)
{
	if (!resp)
		return;
	free(resp->body);
	memset(resp, 0, sizeof(*resp));
}
