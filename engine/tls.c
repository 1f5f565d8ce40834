/* engine/tls.c — see tls.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tls.h"

struct tls_ctx {
	SSL_CTX *ssl;
	bool client;
	pthread_mutex_t mu;   /* guards session */
	SSL_SESSION *session; /* the latest session for resumption (client) */
};

struct tls {
	struct tls_ctx *ctx;
	SSL *ssl;
	BIO *rbio, *wbio;
	bool done;
	char err[160];
};

static const uint8_t alpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

static void set_err(char *err, size_t len, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[120] = "";
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, len, "%s%s%s", what, e ? ": " : "", buf);
	ERR_clear_error();
}

static int new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_ctx *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	pthread_mutex_lock(&c->mu);
	if (c->session)
		SSL_SESSION_free(c->session);
	c->session = sess;
	pthread_mutex_unlock(&c->mu);
	return 1; /* we keep the reference */
}

static struct tls_ctx *ctx_new(bool client, char *err, size_t errlen)
{
	struct tls_ctx *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->client = client;
	pthread_mutex_init(&c->mu, NULL);
	c->ssl = SSL_CTX_new(TLS_method());
	if (!c->ssl) {
		set_err(err, errlen, "SSL_CTX_new");
		free(c);
		return NULL;
	}
	SSL_CTX_set_app_data(c->ssl, c);
	SSL_CTX_set_min_proto_version(c->ssl, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(c->ssl, TLS1_3_VERSION);
	return c;
}

struct tls_ctx *tls_ctx_client(const char *ca_pem, const char *ca_file, char *err,
                               size_t errlen)
{
	struct tls_ctx *c = ctx_new(true, err, errlen);
	if (!c)
		return NULL;
	SSL_CTX_set_verify(c->ssl, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_alpn_protos(c->ssl, alpn, sizeof(alpn));
	SSL_CTX_set_session_cache_mode(c->ssl, SSL_SESS_CACHE_CLIENT);
	SSL_CTX_sess_set_new_cb(c->ssl, new_session);
	if (ca_pem) {
		BIO *b = BIO_new_mem_buf(ca_pem, -1);
		X509_STORE *st = SSL_CTX_get_cert_store(c->ssl);
		int n = 0;
		X509 *x;
		while (b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
			n += X509_STORE_add_cert(st, x) == 1;
			X509_free(x);
		}
		BIO_free(b);
		ERR_clear_error();
		if (n == 0) {
			snprintf(err, errlen, "the CA certificate is not valid PEM");
			tls_ctx_free(c);
			return NULL;
		}
	} else {
		const char *file = ca_file;
		if (!file || !file[0])
			file = getenv("SSL_CERT_FILE");
		if (!file || !file[0])
			file = "/etc/ssl/certs/ca-certificates.crt";
		if (!SSL_CTX_load_verify_locations(c->ssl, file, NULL)) {
			char what[300];
			snprintf(what, sizeof(what), "cannot load trusted CAs from %s", file);
			set_err(err, errlen, what);
			tls_ctx_free(c);
			return NULL;
		}
	}
	return c;
}

static int alpn_select(SSL *ssl, const uint8_t **out, uint8_t *outlen, const uint8_t *in,
                       unsigned inlen, void *arg)
{
	(void)ssl;
	(void)arg;
	for (unsigned i = 0; i + 1 <= inlen;) {
		unsigned l = in[i];
		if (i + 1 + l > inlen)
			break;
		if (l == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
			*out = in + i + 1;
			*outlen = 8;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + l;
	}
	return SSL_TLSEXT_ERR_NOACK; /* no ALPN agreement: carry on without it */
}

struct tls_ctx *tls_ctx_server(const char *cert_file, const char *key_file, char *err,
                               size_t errlen)
{
	struct tls_ctx *c = ctx_new(false, err, errlen);
	if (!c)
		return NULL;
	char what[300];
	if (SSL_CTX_use_certificate_chain_file(c->ssl, cert_file) != 1) {
		snprintf(what, sizeof(what), "cannot load the certificate %s", cert_file);
		set_err(err, errlen, what);
		tls_ctx_free(c);
		return NULL;
	}
	if (SSL_CTX_use_PrivateKey_file(c->ssl, key_file, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c->ssl) != 1) {
		snprintf(what, sizeof(what), "cannot load the key %s (or it does not match)",
		         key_file);
		set_err(err, errlen, what);
		tls_ctx_free(c);
		return NULL;
	}
	SSL_CTX_set_alpn_select_cb(c->ssl, alpn_select, NULL);
	return c;
}

void tls_ctx_free(struct tls_ctx *c)
{
	if (!c)
		return;
	if (c->session)
		SSL_SESSION_free(c->session);
	SSL_CTX_free(c->ssl);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

struct tls *tls_new(struct tls_ctx *ctx, const char *host)
{
	struct tls *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ctx = ctx;
	t->ssl = SSL_new(ctx->ssl);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (!t->ssl || !t->rbio || !t->wbio) {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
		SSL_free(t->ssl);
		free(t);
		return NULL;
	}
	SSL_set_bio(t->ssl, t->rbio, t->wbio); /* the SSL owns both BIOs now */
	if (ctx->client) {
		SSL_set_connect_state(t->ssl);
		if (host && host[0]) {
			uint8_t ip[16];
			bool is_ip = inet_pton(AF_INET, host, ip) == 1 ||
			             inet_pton(AF_INET6, host, ip) == 1;
			if (is_ip) {
				X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
			} else {
				SSL_set_tlsext_host_name(t->ssl, host);
				SSL_set1_host(t->ssl, host);
			}
		}
		pthread_mutex_lock(&ctx->mu);
		if (ctx->session)
			SSL_set_session(t->ssl, ctx->session);
		pthread_mutex_unlock(&ctx->mu);
	} else {
		SSL_set_accept_state(t->ssl);
	}
	return t;
}

void tls_free(struct tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	free(t);
}

int tls_feed(struct tls *t, const uint8_t *p, size_t n)
{
	if (n && BIO_write(t->rbio, p, (int)n) != (int)n) {
		snprintf(t->err, sizeof(t->err), "out of memory");
		return -1;
	}
	return 0;
}

static void ssl_failure(struct tls *t, int ret, const char *stage)
{
	int e = SSL_get_error(t->ssl, ret);
	long v = SSL_get_verify_result(t->ssl);
	if (v != X509_V_OK) {
		snprintf(t->err, sizeof(t->err), "certificate verify failed: %s",
		         X509_verify_cert_error_string(v));
	} else if (e == SSL_ERROR_SSL) {
		unsigned long ee = ERR_peek_error();
		snprintf(t->err, sizeof(t->err), "%s: %s", stage,
		         ERR_reason_error_string(ee) ? ERR_reason_error_string(ee) : "error");
	} else if (e == SSL_ERROR_ZERO_RETURN) {
		snprintf(t->err, sizeof(t->err), "%s: the peer closed the TLS session", stage);
	} else {
		snprintf(t->err, sizeof(t->err), "%s: error %d", stage, e);
	}
	ERR_clear_error();
}

int tls_handshake(struct tls *t)
{
	if (t->done)
		return 1;
	int r = SSL_do_handshake(t->ssl);
	if (r == 1) {
		t->done = true;
		return 1;
	}
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	ssl_failure(t, r, "handshake");
	return -1;
}

bool tls_done(const struct tls *t)
{
	return t->done;
}

int tls_read(struct tls *t, uint8_t *buf, size_t cap)
{
	int r = SSL_read(t->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
	if (r > 0)
		return r;
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	if (e == SSL_ERROR_ZERO_RETURN)
		return -2;
	ssl_failure(t, r, "read");
	return -1;
}

int tls_write(struct tls *t, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		int k = n > (1u << 30) ? 1 << 30 : (int)n;
		int r = SSL_write(t->ssl, b, k);
		if (r <= 0) {
			ssl_failure(t, r, "write");
			return -1;
		}
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

size_t tls_out_pending(struct tls *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t tls_out_take(struct tls *t, uint8_t *buf, size_t cap)
{
	int r = BIO_read(t->wbio, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
	return r > 0 ? (size_t)r : 0;
}

const char *tls_error(const struct tls *t)
{
	return t->err[0] ? t->err : "unknown TLS error";
}

const char *tls_version_name(const struct tls *t)
{
	return SSL_get_version(t->ssl);
}

bool tls_resumed(const struct tls *t)
{
	return SSL_session_reused(t->ssl);
}
