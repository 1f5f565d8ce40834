/* engine/xprt/xprt.h — transports: what carries a connection's bytes under the lane's
 * WebSocket (the mux) and under the control port's HTTP (the service). Each is an ops
 * table (haproxy's xprt_ops, h2o's socket): plain TCP, and TLS through BoringSSL's memory
 * BIOs (engine/tls.h), the one TLS driver both users share. The user keeps its socket and
 * its io_uring requests; the transport turns received bytes into plaintext and plaintext
 * into what to put on the wire:
 *
 *   received bytes --recv--> on_plain(plaintext)         (TLS: handshake on the way)
 *   plaintext iov  --flush--> wire iov to send            (TLS: encrypted in batches)
 *   wire sent      --sent---> plaintext bytes now done
 *
 * Whether payloads may move by splice(2) is the transport's property: only a transport
 * that puts bytes on the wire unchanged has the pipe operations (can_splice). */
#ifndef RINGLET_ENGINE_XPRT_XPRT_H
#define RINGLET_ENGINE_XPRT_XPRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "engine/loop/shard.h"

struct tls;
struct tls_ctx;

#define XPRT_TLS_BATCH (256u * 1024) /* plaintext encrypted per flush */

/* What a transport reports to its user. on_plain: plaintext arrived (false: stop, the
 * user is closing). on_ready: the handshake completed (false: stop); may be NULL. */
struct xprt_up {
	bool (*on_plain)(void *ctx, const uint8_t *p, size_t n);
	bool (*on_ready)(void *ctx);
};

enum xprt_status {
	XPRT_OK = 0,      /* all taken (a TLS handshake may still be in progress) */
	XPRT_STOP = 1,    /* a callback said stop */
	XPRT_FAILED = -1, /* the transport failed: xprt_error() says why */
	XPRT_CLOSED = -2, /* the peer closed the TLS session */
};

struct xprt;

struct xprt_ops {
	const char *name;
	bool can_splice; /* bytes go on the wire unchanged: splice(2) may carry payloads */
	/* n bytes read from the socket. Returns enum xprt_status. */
	int (*recv)(struct xprt *x, struct shard *s, const uint8_t *p, size_t n,
	            const struct xprt_up *up, void *ctx);
	/* Deliver plaintext the transport already holds (TLS records that came before the
	 * user took over). Returns enum xprt_status. */
	int (*drain)(struct xprt *x, struct shard *s, const struct xprt_up *up, void *ctx);
	/* Plaintext to send: iov[0..n) (n may be 0: only what the transport has of its
	 * own, a handshake flight). Sets *wire and *nwire to what goes on the wire now (plain:
	 * iov itself; TLS: its ciphertext buffer; *nwire 0: nothing). Returns the plaintext
	 * bytes taken now, which the caller may release (TLS), or -1 (xprt_error). */
	long (*flush)(struct xprt *x, struct iovec *iov, int n, struct iovec **wire,
	              int *nwire);
	/* res bytes of the wire went out: returns the plaintext bytes now done (plain). */
	size_t (*sent)(struct xprt *x, size_t res);
	/* Does the transport still hold bytes for the wire? */
	bool (*busy)(const struct xprt *x);
	/* Is the handshake done (always, for plain)? */
	bool (*ready)(const struct xprt *x);
	/* Pipe operations, only where can_splice: move up to n bytes from the pipe's read
	 * end to the socket / from the socket to the pipe's write end, non-blocking.
	 * splice(2)'s return (-1 with errno). */
	ssize_t (*splice_out)(struct xprt *x, int sock, int pipe_rd, size_t n);
	ssize_t (*splice_in)(struct xprt *x, int sock, int pipe_wr, size_t n);
};

/* A connection's transport state (inside the user's connection state). */
struct xprt {
	const struct xprt_ops *ops;
	struct tls *tls;
	uint8_t *out; /* TLS: ciphertext taken from the session, being sent */
	uint32_t out_len, out_off, out_cap;
	struct iovec wire; /* TLS: the rest of out, as flush's wire */
	bool in_read;      /* TLS: inside a read loop (a nested drain does nothing) */
	bool hs_failed;    /* TLS: the failure was in the handshake */
};

extern const struct xprt_ops xprt_plain, xprt_tls;

/* Plain TCP. */
void xprt_init_plain(struct xprt *x);
/* TLS with a new session of ctx (host: a client's SNI and name to verify, NULL on a
 * server). 0, or -ENOMEM. */
int xprt_init_tls(struct xprt *x, struct tls_ctx *ctx, const char *host);
/* TLS carrying on an existing session (taken over; may be NULL: then plain). */
void xprt_adopt(struct xprt *x, struct tls *tls);
/* Give the session away (it carries on elsewhere); the transport becomes plain. */
struct tls *xprt_detach(struct xprt *x);
/* Client: begin the handshake (the ClientHello waits for the next flush). */
void xprt_start(struct xprt *x);
/* Free what the transport holds. */
void xprt_release(struct xprt *x);
/* The last failure ("certificate verify failed: ...", "out of memory"). */
const char *xprt_error(const struct xprt *x);

#endif
