/* engine/xprt/xprt.c — the plain and TLS transports (xprt.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "engine/tls.h"
#include "engine/xprt/xprt.h"

/* ---- plain TCP -------------------------------------------------------------------------- */

static int plain_recv(struct xprt *x, struct shard *s, const uint8_t *p, size_t n,
                      const struct xprt_up *up, void *ctx)
{
	(void)x;
	(void)s;
	return up->on_plain(ctx, p, n) ? XPRT_OK : XPRT_STOP;
}

static int plain_drain(struct xprt *x, struct shard *s, const struct xprt_up *up, void *ctx)
{
	(void)x;
	(void)s;
	(void)up;
	(void)ctx;
	return XPRT_OK;
}

static long plain_flush(struct xprt *x, struct iovec *iov, int n, struct iovec **wire,
                        int *nwire)
{
	(void)x;
	*wire = iov;
	*nwire = n;
	return 0;
}

static size_t plain_sent(struct xprt *x, size_t res)
{
	(void)x;
	return res;
}

static bool plain_busy(const struct xprt *x)
{
	(void)x;
	return false;
}

static bool plain_ready(const struct xprt *x)
{
	(void)x;
	return true;
}

static ssize_t plain_splice_out(struct xprt *x, int sock, int pipe_rd, size_t n)
{
	(void)x;
	return splice(pipe_rd, NULL, sock, NULL, n, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
}

static ssize_t plain_splice_in(struct xprt *x, int sock, int pipe_wr, size_t n)
{
	(void)x;
	return splice(sock, NULL, pipe_wr, NULL, n, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
}

const struct xprt_ops xprt_plain = {
        .name = "tcp",
        .can_splice = true,
        .recv = plain_recv,
        .drain = plain_drain,
        .flush = plain_flush,
        .sent = plain_sent,
        .busy = plain_busy,
        .ready = plain_ready,
        .splice_out = plain_splice_out,
        .splice_in = plain_splice_in,
};

/* ---- TLS (memory BIOs) ------------------------------------------------------------------ */

/* Decrypt and deliver what the session holds, a scratch buffer at a time: records are
 * gathered until the buffer is nearly full (a TLS record's plaintext is at most 16 KiB), so
 * the user gets large runs of plaintext (the mux sends a DATA payload on from where it lies:
 * one send per run, not one per record). The shard's scratch buffer is free here: what
 * reads it (the user's on_plain) never reads a socket inline on a TLS transport. */
#define TLS_RECORD_MAX (16u * 1024)
static int tls_drain(struct xprt *x, struct shard *s, const struct xprt_up *up, void *ctx)
{
	if (x->in_read)
		return XPRT_OK;
	x->in_read = true;
	int ret = XPRT_OK;
	size_t fill = 0;
	for (;;) {
		int r = tls_read(x->tls, s->scratch + fill, SHARD_SCRATCH - fill);
		if (r > 0) {
			fill += (size_t)r;
			if (SHARD_SCRATCH - fill >= TLS_RECORD_MAX)
				continue;
		} else if (r == -2) {
			ret = XPRT_CLOSED;
		} else if (r < 0) {
			ret = XPRT_FAILED;
		}
		if (fill && !up->on_plain(ctx, s->scratch, fill)) {
			ret = XPRT_STOP;
			break;
		}
		fill = 0;
		if (r <= 0)
			break;
	}
	x->in_read = false;
	return ret;
}

static int tls_recv(struct xprt *x, struct shard *s, const uint8_t *p, size_t n,
                    const struct xprt_up *up, void *ctx)
{
	if (tls_feed(x->tls, p, n))
		return XPRT_FAILED;
	if (!tls_done(x->tls)) {
		int r = tls_handshake(x->tls);
		if (r < 0) {
			x->hs_failed = true;
			return XPRT_FAILED;
		}
		if (r == 0)
			return XPRT_OK; /* the next flight is for the wire */
		if (up->on_ready && !up->on_ready(ctx))
			return XPRT_STOP;
	}
	return tls_drain(x, s, up, ctx);
}

static long tls_flush(struct xprt *x, struct iovec *iov, int n, struct iovec **wire, int *nwire)
{
	long took = 0;
	if (x->out_off == x->out_len) {
		/* The previous ciphertext is out: encrypt the next batch (whole entries, up to
		 * XPRT_TLS_BATCH), and take what the session has for the wire. */
		x->out_off = x->out_len = 0;
		size_t budget = XPRT_TLS_BATCH;
		for (int i = 0; i < n && budget && tls_done(x->tls); i++) {
			if (tls_write(x->tls, iov[i].iov_base, iov[i].iov_len))
				return -1;
			took += (long)iov[i].iov_len;
			budget = iov[i].iov_len > budget ? 0 : budget - iov[i].iov_len;
		}
		size_t pending = tls_out_pending(x->tls);
		if (pending > x->out_cap) {
			uint8_t *nb = realloc(x->out, pending);
			if (!nb)
				return -1;
			x->out = nb;
			x->out_cap = (uint32_t)pending;
		}
		if (pending)
			x->out_len = (uint32_t)tls_out_take(x->tls, x->out, pending);
	}
	x->wire.iov_base = x->out + x->out_off;
	x->wire.iov_len = x->out_len - x->out_off;
	*wire = &x->wire;
	*nwire = x->out_off < x->out_len;
	return took;
}

static size_t tls_sent(struct xprt *x, size_t res)
{
	x->out_off += (uint32_t)res;
	return 0;
}

static bool tls_busy(const struct xprt *x)
{
	return x->out_off < x->out_len || tls_out_pending(x->tls);
}

static bool tls_ready(const struct xprt *x)
{
	return tls_done(x->tls);
}

const struct xprt_ops xprt_tls = {
        .name = "tls",
        .can_splice = false,
        .recv = tls_recv,
        .drain = tls_drain,
        .flush = tls_flush,
        .sent = tls_sent,
        .busy = tls_busy,
        .ready = tls_ready,
};

/* ---- life ------------------------------------------------------------------------------- */

void xprt_init_plain(struct xprt *x)
{
	memset(x, 0, sizeof(*x));
	x->ops = &xprt_plain;
}

int xprt_init_tls(struct xprt *x, struct tls_ctx *ctx, const char *host)
{
	xprt_init_plain(x);
	x->tls = tls_new(ctx, host);
	if (!x->tls)
		return -ENOMEM;
	x->ops = &xprt_tls;
	return 0;
}

void xprt_adopt(struct xprt *x, struct tls *tls)
{
	xprt_init_plain(x);
	if (tls) {
		x->tls = tls;
		x->ops = &xprt_tls;
	}
}

struct tls *xprt_detach(struct xprt *x)
{
	struct tls *tls = x->tls;
	x->tls = NULL;
	x->ops = &xprt_plain;
	return tls;
}

void xprt_start(struct xprt *x)
{
	if (x->tls)
		tls_handshake(x->tls); /* produces the ClientHello */
}

void xprt_release(struct xprt *x)
{
	tls_free(x->tls);
	x->tls = NULL;
	free(x->out);
	x->out = NULL;
	x->out_len = x->out_off = x->out_cap = 0;
}

const char *xprt_error(const struct xprt *x)
{
	return x->tls ? tls_error(x->tls) : "transport error";
}
