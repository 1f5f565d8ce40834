/* engine/mux/internal.h — internal to engine/mux/: what its files share. Nothing outside
 * the mux includes it. */
#ifndef RINGLET_ENGINE_MUX_INTERNAL_H
#define RINGLET_ENGINE_MUX_INTERNAL_H

#include "engine/loop/shard.h"
#include "engine/mux/tunnel.h"

#define NO_SLOT UINT32_MAX

/* The mux's per-shard state (s->mux). */
struct mux_shard {
	struct outitem *item_free;     /* pool of send-queue items */
	uint32_t wait_head, wait_tail; /* streams waiting for stream-ring buffers */
};
static inline struct mux_shard *MS(struct shard *s)
{
	return (struct mux_shard *)s->mux;
}

/* ---- send.c: the send queue --------------------------------------------------------- */

/* Items of tunnel send queues (the shard's pool). NULL when out of memory. */
struct outitem *item_get(struct shard *s);
void item_put(struct shard *s, struct outitem *it);
/* Write a frame header for a frame of payload_len; in the client role also pick the
 * masking key. Returns the header length. */
size_t frame_header(struct shard *s, struct tunnel *t, uint8_t *out, uint8_t op,
                    uint64_t payload_len, uint8_t key[4]);
/* Append it to c's queue and mark c for a flush. */
void queue_item(struct shard *s, struct conn *c, struct outitem *it);
/* An item left the queue: give its stream buffer back, let its stream read again. */
void item_done(struct shard *s, struct outitem *it);
void send_ws_control(struct shard *s, struct conn *c, uint8_t op, const uint8_t *p, size_t len);
/* Send what the queue holds (one send in flight at a time): the loop's flush op. */
void tunnel_flush(struct shard *s, struct conn *c);
void on_tun_send(struct shard *s, struct conn *c, int res);
/* n plaintext bytes of the queue went out (or to the transport): release what they cover. */
void queue_consumed(struct shard *s, struct tunnel *t, size_t n);
/* Free every queued item (the tunnel is being released). */
void queue_release(struct shard *s, struct tunnel *t);

/* ---- spipe.c: pipes for splice(2) ----------------------------------------------------- */

/* A pipe of PIPE_SIZE bytes, one reference; NULL when none can be had, or when its two
 * descriptors would eat into the process's descriptor reserve (then copy). */
struct spipe *spipe_new(const struct shard *s);
void spipe_put(struct spipe *p);
/* Is the socket's next byte TCP urgent data? splice(2) stops there. */
bool at_urgent_mark(int fd);

/* ---- recv.c: frames and messages ------------------------------------------------------ */

/* Plaintext frames from the peer: reassembled, delivered, handled. */
void tunnel_input(struct shard *s, struct conn *c, const uint8_t *p, size_t n);
/* n payload bytes of the current DATA message were spliced past the buffer. */
void tunnel_rx_skip(struct shard *s, struct conn *c, size_t n);
/* Deliver plaintext the transport already holds (frames that came with the request). */
void tunnel_drain_xprt(struct shard *s, struct conn *c);
void on_tun_recv(struct shard *s, struct conn *c, struct io_uring_cqe *cqe);

/* ---- rx_splice.c: inline reads and the splice receive path ---------------------------- */

void rx_count(struct shard *s, struct tunnel *t, size_t n);
void tunnel_rx_inline(struct shard *s, struct conn *c);
/* auto: after a multishot read, move the lane to inline reads if a large frame arrives. */
void tunnel_rx_adapt(struct shard *s, struct conn *c);

/* ---- tunnel.c: lane life and control messages ----------------------------------------- */

/* The owner hears once that the tunnel is ending. */
void notify_closed(struct shard *s, struct conn *c);
/* Reset every stream of the tunnel (the peer is not told: the tunnel is going). */
void close_streams(struct shard *s, struct conn *c, uint16_t reason);
/* A complete control message. */
void handle_msg(struct shard *s, struct conn *c, const struct tun_msg *m);
/* Give k bytes of the stream's credit back to the peer. */
void send_window(struct shard *s, struct conn *tc, struct stream *st, uint32_t k);

/* ---- stream.c, stream_io.c: streams ---------------------------------------------------- */

void stream_link(struct shard *s, struct conn *tc, struct conn *sc);
void stream_unlink(struct shard *s, struct conn *sc);
void stream_release(struct shard *s, struct conn *sc);
void stream_check_done(struct shard *s, struct conn *sc);
void stream_eof(struct shard *s, struct conn *sc, struct conn *tc);
void stream_grant(struct shard *s, struct conn *tc, struct stream *st);
void stream_maybe_recv(struct shard *s, struct conn *sc);
void stream_maybe_send(struct shard *s, struct conn *sc);
void stream_use_splice(struct shard *s, struct stream *st);
/* May a stream of this tunnel read its socket by splice(2) (stream_use_splice)? */
bool stream_may_splice(const struct tunnel *t);
void stream_wake_waiters(struct shard *s);
void on_stream_poll(struct shard *s, struct conn *sc, int res);
void on_stream_recv(struct shard *s, struct conn *sc, struct io_uring_cqe *cqe);
void on_stream_pollout(struct shard *s, struct conn *sc, int res);
void on_stream_send(struct shard *s, struct conn *sc, int res);
/* The down side (tunnel -> socket). May payload go straight to the socket (nothing
 * waits before it)? Then stream_forward sends what the socket takes now, without
 * waiting, and returns how much (0..n; the rest is for the buffer). stream_down_reserve
 * grows the buffer so that n more bytes fit (-ENOMEM). */
bool stream_can_forward(struct conn *sc);
size_t stream_forward(struct shard *s, struct conn *sc, struct conn *tc, const uint8_t *p,
                      size_t n);
int stream_down_reserve(struct stream *st, uint32_t n, uint32_t window);
/* Queue a DATA item for stream sc: header inline, payload as the item already holds. */
void queue_data(struct shard *s, struct conn *tc, struct conn *sc, struct outitem *it,
                uint8_t *payload, size_t n);

#endif
