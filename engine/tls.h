/* engine/tls.h — TLS over memory BIOs (BoringSSL), so every socket read and write stays
 * on the shard's io_uring: received ciphertext is fed in, plaintext comes out; plaintext
 * written is encrypted into an output buffer that the caller sends.
 *
 * Error convention: functions return 0 (or a count) on success and -1 on failure, with
 * the reason available from tls_error(). */
#ifndef RINGLET_ENGINE_TLS_H
#define RINGLET_ENGINE_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tls_ctx;
struct tls;

/* A client context. Trust: ca_pem (PEM text, e.g. a CA fetched by auto-TLS) if given,
 * else ca_file if given, else SSL_CERT_FILE, else the system store
 * (/etc/ssl/certs/ca-certificates.crt). TLS 1.3 preferred, 1.2 allowed, ALPN http/1.1,
 * client session cache for resumption. NULL on failure with a reason in err. */
struct tls_ctx *tls_ctx_client(const char *ca_pem, const char *ca_file, char *err,
                               size_t errlen);

/* A server context from PEM files (certificate chain, private key). */
struct tls_ctx *tls_ctx_server(const char *cert_file, const char *key_file, char *err,
                               size_t errlen);
void tls_ctx_free(struct tls_ctx *ctx);

/* A connection. host (client only) sets SNI (for names) and the name or address the
 * certificate must match. NULL when out of memory. */
struct tls *tls_new(struct tls_ctx *ctx, const char *host);
void tls_free(struct tls *t);

/* Received ciphertext. 0 or -1. */
int tls_feed(struct tls *t, const uint8_t *p, size_t n);

/* Drive the handshake: 1 done, 0 needs more input (send tls_out first), -1 failed. */
int tls_handshake(struct tls *t);
bool tls_done(const struct tls *t);

/* Decrypted bytes: > 0 bytes, 0 none available now, -1 error, -2 the peer closed. */
int tls_read(struct tls *t, uint8_t *buf, size_t cap);

/* Encrypt plaintext into the output buffer. 0 or -1. */
int tls_write(struct tls *t, const void *p, size_t n);

/* Ciphertext to send: bytes pending, and take up to cap of them. */
size_t tls_out_pending(struct tls *t);
size_t tls_out_take(struct tls *t, uint8_t *buf, size_t cap);

/* The last failure, e.g. "certificate verify failed: unable to get local issuer
 * certificate", "handshake: wrong version number". */
const char *tls_error(const struct tls *t);

/* "TLSv1.3" etc., and whether the session was resumed. */
const char *tls_version_name(const struct tls *t);
bool tls_resumed(const struct tls *t);

#endif
