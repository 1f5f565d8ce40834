/* engine/mux/tunnel.h — the mux layer: a tunnel connection (one WebSocket lane) and the
 * streams it carries. Shared by the server and the client; what a role does (HELLO,
 * WELCOME, OPEN, what happens when a tunnel ends, the bytes before the WebSocket opens)
 * reaches it through the callbacks it gave tunnel_new() (struct tunnel_cbs). The mux knows
 * no role: it never calls into engine/roles/ or engine/svc/.
 *
 * Receive: multishot recv into the shard's tunnel buffer ring; frames are parsed across
 * buffer boundaries; DATA payloads are unmasked while copied into the stream's bounded
 * ring buffer (its size is the credit window we granted), so every tunnel buffer goes back
 * to the kernel as soon as its completion is handled. With --data-path splice a plain
 * tunnel reads inline on readiness instead, so that a large DATA payload that needs no
 * unmasking can go by splice(2) from the socket into its stream's pipe and on to the
 * stream's socket (tunnel.c, "splice path, receive side").
 *
 * Send: one out queue per tunnel; each item is a frame header (inline) plus a payload
 * that is either inline, on the heap, or a stream-ring buffer filled by a recv on the
 * stream's socket (sent without copying). At most one sendmsg is in flight per tunnel;
 * queued items are gathered into it (batching) at the end of each loop turn.
 */
#ifndef RINGLET_ENGINE_MUX_TUNNEL_H
#define RINGLET_ENGINE_MUX_TUNNEL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "engine/idmap.h"
#include "engine/loop/shard.h"
#include "engine/mux/dbuf.h"
#include "engine/mux/reasm.h"
#include "engine/net.h"
#include "engine/xprt/xprt.h"
#include "proto/tunnel.h"
#include "proto/ws.h"

/* Connection kinds and operations of the mux (numbered after the loop's). */
enum mux_kind {
	CK_TUNNEL = CK_LOOP_MAX, /* a WebSocket tunnel (lane) */
	CK_STREAM,               /* a data-plane (server) or upstream (client) socket */
	CK_MUX_MAX,
};
enum mux_op {
	OP_TUN_RECV = OP_LOOP_MAX, /* multishot recv on a tunnel (buffer ring) */
	OP_TUN_SEND,               /* sendmsg of the tunnel's out queue */
	OP_TUN_POLL,               /* splice path: the tunnel's socket is readable */
	OP_TUN_POLLOUT,            /* splice path: the tunnel's socket is writable again */
	OP_STREAM_RECV,            /* recv from a stream's socket (buffer ring) */
	OP_STREAM_SEND,            /* send to a stream's socket */
	OP_STREAM_POLL,            /* splice path: the stream's socket is readable */
	OP_STREAM_POLLOUT,         /* splice path: a stream's socket takes more of its pipe */
	OP_MUX_MAX,
};
enum {
	TUN_RING_BGID = 0,    /* tunnel reads */
	STREAM_RING_BGID = 1, /* stream reads */
};

#define TUN_IOV_MAX 64
#define STREAM_QUEUE_LIMIT                                                                     \
	(256 * 1024) /* up: bytes queued per stream before reading pauses                      \
	              */

/* A stream's pipe for the splice data path: the stream and every queued item whose
 * payload sits in it hold a reference; the fds close with the last one. */
struct spipe {
	int fd[2];
	int refs;
};

/* An item of a tunnel's send queue: a WebSocket frame header and tunnel message header
 * (or a whole small message) inline, plus optional payload from a stream buffer or heap. */
struct outitem {
	struct outitem *next;
	uint8_t inl[80];
	uint8_t inl_len;
	bool from_ring; /* data is a stream-ring buffer to return when sent */
	uint16_t bid;
	uint8_t *heap; /* owned payload (large control messages) */
	const uint8_t *data;
	uint32_t data_len;
	uint32_t off;    /* bytes of inl+data already sent */
	uint32_t st_idx; /* stream whose `queued` this counts against, or UINT32_MAX */
	uint16_t st_gen;
	struct spipe *pipe; /* splice path: the payload (data_len bytes) waits in this pipe */
};

/* One stream half pair, kept inline in its connection slot (conn_st()). Direction names
 * are from this process's view: "up" = socket -> tunnel (we read the socket), "down" =
 * tunnel -> socket. */
struct stream {
	uint32_t id;      /* tunnel stream id */
	uint32_t tun_idx; /* owning tunnel connection */
	uint16_t tun_gen;
	uint16_t port;
	uint16_t port_slot;  /* index into shard_stats.port */
	uint32_t prev, next; /* the tunnel's stream list (slot indexes, UINT32_MAX ends) */

	/* up: socket -> tunnel */
	uint32_t credit; /* bytes the peer still accepts */
	uint32_t queued; /* bytes handed to the tunnel not yet sent */
	bool recv_armed;
	uint32_t recv_last; /* bytes of the last read (sizes the next multishot recv's reads) */
	bool waiting_bufs;  /* on the shard's wait list for stream buffers */
	uint32_t wait_next;
	bool eof;  /* socket EOF seen, FIN queued */
	bool held; /* the role reads the socket first (a PROXY header): not read, not sent */

	/* down: tunnel -> socket: a buffer that grows with what waits for the socket, up to
	 * the window (freed when it drains), and, on the splice path, dpipe, in one order
	 * (dbuf.h) */
	struct dbuf down;
	uint8_t *down_old; /* a buffer the send in flight still reads (it grew): freed then */
	uint32_t sending;  /* bytes of the send in flight */
	uint32_t unacked;  /* bytes written to the socket not yet granted back */
	uint32_t outstanding; /* credit granted and not yet used up by DATA received */
	bool peer_fin;        /* FIN received */
	bool shut_wr;         /* we shut the socket's write side */

	/* The socket is being connected (the mux neither reads nor writes it). */
	bool connecting;
	/* Owned by the role that dials (engine/roles/); the mux never reads them. */
	uint8_t addr_try;
	const struct addrlist *dial; /* NULL: the tunnel's upstream */

	/* A preamble the role put before the stream's bytes (a PROXY header for the
	 * upstream; heap), or the buffer a held stream's header is read into. */
	uint8_t *pre;
	uint16_t pre_len, pre_off;
	bool sending_pre;

	/* splice path (up): socket -> pipe -> tunnel socket */
	struct spipe *pipe;
	bool splice;    /* this stream reads with splice(2) */
	bool no_pipe;   /* no pipe could be had: it stays on the ring */
	uint32_t small; /* auto: small reads in a row, on the ring or by splice (stream_io.c) */
	bool poll_armed;

	/* splice path (down): tunnel socket -> dpipe -> socket (its bytes: down.piped) */
	struct spipe *dpipe;
	bool pollout_armed;

	uint64_t bytes_up, bytes_down;

	/* Who opened the stream hears when its slot is freed (a quota it counts against);
	 * tag is theirs. NULL: nobody. */
	void (*on_release)(struct shard *s, struct conn *sc);
	uint32_t tag;
};
_Static_assert(sizeof(struct stream) <= CONN_PRIV, "struct stream fits in a slot");

enum tunnel_state {
	TS_CONNECTING, /* client: TCP connect in flight */
	TS_TLS,        /* client: TLS handshake (wss://) */
	TS_UPGRADING,  /* client: upgrade request sent, reading the response */
	TS_HELLO,      /* server: waiting for HELLO; client: waiting for WELCOME */
	TS_READY,
	TS_CLOSING, /* flushing the out queue, then closing */
};

/* A lane's counters that other threads read (scrapes): the owner (a registry entry)
 * provides them; the tunnel's shard writes them with relaxed atomics. */
struct lane_ctr {
	uint64_t bytes_in, bytes_out; /* tunnel bytes */
	uint64_t rtt_ns;
};

/* What a tunnel reports to its owner (the role that made it). Any member may be NULL. */
struct tunnel_cbs {
	/* A control message the mux does not handle itself: HELLO, WELCOME, OPEN, GOAWAY
	 * (after the mux noted it) and unknown types. */
	void (*on_msg)(struct shard *s, struct conn *c, const struct tun_msg *m);
	/* Once, as soon as the tunnel starts to close (it takes no new streams then). */
	void (*on_closed)(struct shard *s, struct conn *c);
	/* The slot is being freed: free what `owner` points at. */
	void (*on_release)(struct shard *s, struct conn *c);
	/* Plaintext that came before the WebSocket opened (state TS_UPGRADING). */
	void (*on_head_bytes)(struct shard *s, struct conn *c, const uint8_t *p, size_t n);
	/* The transport's handshake (TLS) completed / failed. */
	void (*on_xprt_ready)(struct shard *s, struct conn *c);
	void (*on_xprt_failed)(struct shard *s, struct conn *c, const char *why);
	/* A held stream (struct stream.held) was not released within the handshake
	 * timeout: say why (a log line); the mux then resets it. */
	void (*on_held_timeout)(struct shard *s, struct conn *sc);
};

struct tunnel {
	enum ws_role role;
	uint8_t state;
	bool send_inflight;
	bool recv_armed;
	bool goaway_sent, goaway_received;
	bool close_sent; /* a WebSocket Close is queued: nothing more is (RFC 6455 §5.5.1) */
	bool zero_mask;  /* client: mask with the all-zero key (granted by the server) */
	bool closed_notified; /* the owner heard that this tunnel is ending */
	bool pollout_armed;   /* splice path: waiting for the socket to take more */
	bool rx_inline;       /* read inline on readiness, no recv in flight (splice; auto
	                       * while large frames arrive: rx_splice.c) */
	bool rx_poll_armed;
	/* Payload bytes may move by splice(2): set by the owner before tunnel_start, when its
	 * transport can (x.ops->can_splice) and the sockets are not steered. */
	bool can_splice;

	/* receive: frames and messages (reasm.h); the stream DATA goes to */
	struct reasm rx;
	uint32_t dst_idx; /* DATA: destination stream slot, UINT32_MAX: discard */
	uint16_t dst_gen;

	/* send */
	struct outitem *q_head, *q_tail;
	uint32_t q_items;
	struct iovec iov[TUN_IOV_MAX];
	struct msghdr msg;

	/* negotiated */
	uint32_t my_window; /* credit we grant per stream (size of each stream's down buffer) */
	uint32_t peer_window; /* credit the peer grants per stream */
	uint32_t peer_max_frame;
	uint32_t caps;

	/* streams */
	struct idmap ids;
	uint32_t next_id;
	uint32_t st_head;
	uint32_t nstreams;

	/* liveness */
	uint64_t last_rx_ms, last_ping_ms, closing_ms;
	/* auto: when a stream of this lane last read a small message (and which): bulk
	 * beside such traffic stays on the ring (stream_io.c, "auto") */
	uint64_t small_ms;
	uint32_t small_idx;
	uint64_t rtt_ns;

	/* who the peer is, for logs */
	char client_id[TUN_MAX_STR + 1];
	char remote[72];

	/* the owner: its callbacks, its state, and the counters it shows (may be NULL) */
	const struct tunnel_cbs *cbs;
	void *owner;
	struct lane_ctr *ctr;

	/* the transport under the WebSocket: plain TCP, or TLS (wss://, or a server with
	 * --auto-tls / --tls-cert); set by the owner before the first flush */
	struct xprt x;

	uint64_t bytes_in, bytes_out;
};

static inline struct tunnel *conn_tun(const struct conn *c)
{
	return (struct tunnel *)c->u.ctx;
}
static inline struct stream *conn_st(struct conn *c)
{
	return (struct stream *)(void *)c->u.priv;
}

/* Register the mux's operations, kinds and buffer rings with the loop, and return its
 * shard hooks (for engine_hooks). Once, before the shards start. */
const struct loop_hooks *mux_init(void);

/* Make c (a connected socket) a tunnel owned by `owner`, which hears of it through cbs.
 * Returns the tunnel or NULL (out of memory). */
struct tunnel *tunnel_new(struct shard *s, struct conn *c, enum ws_role role,
                          const struct tunnel_cbs *cbs, void *owner);

/* The WebSocket is open: start reading frames; `early` holds bytes that arrived after
 * the HTTP head and belong to the frame stream. */
void tunnel_start(struct shard *s, struct conn *c, const uint8_t *early, size_t n);

/* Queue one tunnel message (already encoded) as a binary frame. 0, -ENOMEM, or -EPIPE
 * when the tunnel's Close is queued already (nothing may follow it: dropped). */
int tunnel_send_msg(struct shard *s, struct conn *c, const uint8_t *m, size_t len);

/* Queue an RST for stream id (counted in the rst_sent metric). */
void tunnel_send_rst(struct shard *s, struct conn *c, uint32_t id, uint16_t reason,
                     const char *text);

/* Start reading the socket (multishot recv) if not already. */
void tunnel_arm_recv(struct shard *s, struct conn *c);

/* Mark the tunnel for a flush at the end of this loop turn. */
void tunnel_mark_dirty(struct shard *s, struct conn *c);

/* Queue raw bytes (no WebSocket framing): the server's 101 response. 0 or -ENOMEM. */
int tunnel_send_raw(struct shard *s, struct conn *c, const void *p, size_t len);

/* Queue a GOAWAY; the tunnel closes once its streams are done (or at once if none). */
void tunnel_goaway(struct shard *s, struct conn *c, uint16_t reason, const char *text);

/* End the tunnel now: reset its streams, send a WebSocket close (best effort), close. */
void tunnel_fail(struct shard *s, struct conn *c, enum ws_close code, const char *why);

/* The peer broke the protocol (docs/PROTOCOL.md §8): log why, queue GOAWAY(PROTOCOL, why)
 * (unless a GOAWAY went already), then fail the tunnel with close 1002. */
void tunnel_protocol_error(struct shard *s, struct conn *c, const char *why);

/* Is the tunnel ending (closed, or its WebSocket Close queued)? A role that failed the
 * tunnel in a callback checks this before it goes on. */
bool tunnel_closing(const struct conn *c);

/* Is c a tunnel that carries new streams (open, past HELLO/WELCOME, not closing)? */
bool tunnel_ready(const struct conn *c);

/* The stream with id on tunnel t, or false. */
bool tunnel_lookup_stream(struct shard *s, struct tunnel *t, uint32_t id, struct conn **out);

/* A new stream on tunnel tc for socket fd (-1: dialled later, `connecting` set by the
 * caller) with the given id (0: the next free id of this side). Takes ownership of fd
 * (closed with a reset on failure). Returns the stream's connection, or NULL (out of
 * slots or memory). The stream reads nothing until stream_start(). */
struct conn *stream_new(struct shard *s, struct conn *tc, int fd, uint32_t id, uint16_t port,
                        uint16_t port_slot);

/* Let the stream read and write its socket (after OPEN, or once dialled). */
void stream_start(struct shard *s, struct conn *sc);

/* The stream's socket is connected (dialled by the role): start it. */
void stream_connected(struct shard *s, struct conn *sc);

/* Reset the stream: close its socket with a reset; tell the peer (RST reason) when
 * tell_peer. */
void stream_reset(struct shard *s, struct conn *sc, uint16_t reason, bool tell_peer);

/* The stream's tunnel, or NULL when it is gone or closing. */
struct conn *stream_tunnel(struct shard *s, struct conn *sc);

/* Queue n bytes (copied) as DATA of stream sc, charged to its credit. 0 or -ENOMEM. */
int stream_send_copy(struct shard *s, struct conn *tc, struct conn *sc, const uint8_t *p,
                     size_t n);

#endif
