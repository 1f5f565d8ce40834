/* engine/mux/tunnel.h — a tunnel connection (one WebSocket lane) and the streams it carries.
 * Shared by the server and the client; the role-specific parts (HELLO/WELCOME/OPEN,
 * what happens when a tunnel ends) are hooks in server.c and client.c.
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
#ifndef RINGLET_ENGINE_TUNNEL_H
#define RINGLET_ENGINE_TUNNEL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "engine/idmap.h"
#include "engine/roles/registry.h"
#include "engine/loop/shard.h"
#include "proto/tunnel.h"
#include "proto/ws.h"

#define TUN_IOV_MAX 64
#define STREAM_QUEUE_LIMIT                                                                     \
	(256 * 1024) /* up: bytes queued per stream before reading pauses                      \
	              */

enum tunnel_state {
	TS_CONNECTING, /* client: TCP connect in flight */
	TS_TLS,        /* client: TLS handshake (wss://) */
	TS_UPGRADING,  /* client: upgrade request sent, reading the response */
	TS_HELLO,      /* server: waiting for HELLO; client: waiting for WELCOME */
	TS_READY,
	TS_CLOSING, /* flushing the out queue, then closing */
};

enum rx_state {
	RX_HEADER,
	RX_PAYLOAD,
	RX_CONTROL, /* WebSocket control frame payload (ping/pong/close) */
};

struct tunnel {
	enum ws_role role;
	uint8_t state;
	bool dirty;
	bool send_inflight;
	bool recv_armed;
	bool goaway_sent, goaway_received;
	bool zero_mask;       /* client: mask with the all-zero key (granted by the server) */
	bool closed_notified; /* the role hook heard that this tunnel is ending */
	bool pollout_armed;   /* splice path: waiting for the socket to take more */
	bool rx_inline;       /* splice path: read inline on readiness (no recv in flight) */
	bool rx_poll_armed;

	/* receive parser */
	struct ws_decoder dec;
	uint8_t rx_state;
	uint8_t hbuf[WS_MAX_HEADER];
	uint8_t hlen;
	struct ws_frame fr;
	uint8_t fr_msg_op;
	bool fr_msg_end;
	uint64_t fr_left, fr_off;
	uint32_t msg_pos; /* bytes of the current tunnel message seen */
	uint8_t msgh[TUN_HEADER_LEN];
	struct tun_msg mh; /* header of the current message */
	uint32_t dst_idx;  /* DATA: destination stream slot, UINT32_MAX: discard */
	uint16_t dst_gen;
	uint8_t ctl[TUN_MAX_CONTROL];
	uint32_t ctl_len;
	uint8_t wsctl[WS_MAX_CONTROL_PAYLOAD];
	uint8_t wsctl_len;

	/* send */
	struct outitem *q_head, *q_tail;
	uint32_t q_items;
	uint32_t sent_items; /* items covered by the sendmsg in flight */
	struct iovec iov[TUN_IOV_MAX];
	struct msghdr msg;

	/* negotiated */
	uint32_t my_window;   /* credit we grant per stream (size of each stream's rbuf) */
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
	uint64_t rtt_ns;

	/* identity */
	char client_id[TUN_MAX_STR + 1];
	char remote[72];
	char upstream[TUN_MAX_STR + 1];
	uint16_t ports[TUN_MAX_PORTS];
	uint16_t nports;
	int64_t since_unix;
	int reg_slot;        /* server: registry session slot, -1 if none */
	struct reg_lane *rl; /* server: this lane's counters shown by /status, /metrics */
	uint16_t lane;       /* lane index within the client's session */
	uint64_t session_id; /* server: the session this lane belongs to */
	uint32_t conn_idx;   /* server: this tunnel's slot, as the registry knows it */
	uint16_t conn_gen;
	int lane_id;                           /* client: which lane this is */
	const struct addrlist *upstream_addrs; /* client */
	struct fwd_target *fwd;                /* server: --local targets resolved so far */
	int nfwd;

	/* TLS (wss://, or a server with --auto-tls / --tls-cert): ciphertext to send */
	struct tls *tls;
	uint8_t *tls_out;
	uint32_t tls_out_len, tls_out_off, tls_out_cap;
	bool in_tls_read;

	/* client upgrade */
	char *head;
	uint32_t head_len, head_cap;
	char ws_key[25];

	uint64_t bytes_in, bytes_out;
};

/* Make c (a connected socket) a tunnel. Returns the tunnel or NULL (out of memory). */
struct tunnel *tunnel_new(struct shard *s, struct conn *c, enum ws_role role);

/* The WebSocket is open: start reading frames; `early` holds bytes that arrived after
 * the HTTP head and belong to the frame stream. */
void tunnel_start(struct shard *s, struct conn *c, const uint8_t *early, size_t n);

void tunnel_on_cqe(struct shard *s, struct conn *c, struct tok t, struct io_uring_cqe *cqe);
void tunnel_tick(struct shard *s, struct conn *c);
void tunnel_flush_dirty(struct shard *s);
void tunnel_release(struct shard *s, struct conn *c);
void stream_release(struct shard *s, struct conn *c);

/* Let streams waiting for stream-ring buffers read again, as many as buffers are free
 * (also from the shard's tick, so that no wake-up can be lost). */
void stream_wake_waiters(struct shard *s);

/* Queue one tunnel message (already encoded) as a binary frame. 0 or -ENOMEM. */
int tunnel_send_msg(struct shard *s, struct conn *c, const uint8_t *m, size_t len);

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

/* Server: carry a new data-plane connection fd on tunnel c. Takes ownership of fd. */
void stream_open_server(struct shard *s, struct conn *c, int fd, uint16_t port,
                        uint16_t port_slot);

/* Role hooks (server.c / client.c). *_on_tunnel_closed is called once, as soon as the
 * tunnel starts to close (it takes no new streams from then on). */
void server_on_tunnel_msg(struct shard *s, struct conn *c, const struct tun_msg *m);
void client_on_tunnel_msg(struct shard *s, struct conn *c, const struct tun_msg *m);
void server_on_tunnel_closed(struct shard *s, struct conn *c);
void client_on_tunnel_closed(struct shard *s, struct conn *c);

/* Client: TLS is up (send the upgrade request); bytes of the upgrade response. */
void client_on_tls_ready(struct shard *s, struct conn *c);
void client_on_head_bytes(struct shard *s, struct conn *c, const uint8_t *p, size_t n);
void client_on_tls_failed(struct shard *s, struct conn *c, const char *why);

/* Client: a connection accepted on a --local listener; carry it to target ("host:port",
 * dialled by the server). Takes ownership of fd. */
void stream_open_local(struct shard *s, struct conn *tc, int fd, const char *target,
                       uint16_t rport);

/* Server: a client-opened stream (--local): dial its target. */
void stream_open_forwarded(struct shard *s, struct conn *tc, const struct tun_msg *m);

/* Client: a server-opened stream arrived; dial upstream. */
void stream_open_client(struct shard *s, struct conn *c, uint32_t id, const struct tun_open *o);

/* Format a socket address as "ip:port" ("[ip6]:port"). */
void addr_format(const struct sockaddr *sa, char *out, size_t cap);

#endif
