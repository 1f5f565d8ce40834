/* engine/loop/shard.h — one shard: a thread with its own io_uring, connection table, provided
 * buffer rings and timers. Shards share no mutable state on the data path; work that
 * belongs to another shard moves with IORING_OP_MSG_RING.
 *
 * Every SQE carries a typed completion token (struct tok) naming the operation, the
 * connection slot and the slot's generation. One dispatcher (shard_run) decodes every
 * CQE. A connection counts its in-flight requests; conn_close() only schedules, and the
 * slot is freed when the last completion arrives (counted close).
 */
#ifndef RINGLET_ENGINE_SHARD_H
#define RINGLET_ENGINE_SHARD_H

#include <liburing.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "engine/config.h"
#include "engine/stats.h"

struct tunnel;
struct engine;

/* A stream's pipe for the splice data path: the stream and every queued item whose
 * payload sits in it hold a reference; the fds close with the last one. */
struct spipe {
	int fd[2];
	int refs;
};

/* Up to four addresses of a name, in the order to try. */
struct addrlist {
	struct sockaddr_storage addr[4];
	socklen_t len[4];
	int n;
};

/* Completion token operations. */
enum op {
	OP_NONE = 0,
	OP_ACCEPT,      /* multishot accept on a listener */
	OP_HTTP_RECV,   /* control-port request bytes (server) */
	OP_HTTP_SEND,   /* control-port response (server) */
	OP_TUN_CONNECT, /* client: connect to the server */
	OP_TUN_RECV,    /* multishot recv on a tunnel (buffer ring) */
	OP_TUN_SEND,    /* sendmsg of the tunnel's out queue */
	OP_STREAM_CONNECT,
	OP_STREAM_RECV,    /* recv from a data-plane/upstream socket (buffer ring) */
	OP_STREAM_SEND,    /* send to a data-plane/upstream socket */
	OP_STREAM_PROXY,   /* server: recv of a load balancer's PROXY header */
	OP_STREAM_POLL,    /* splice path: the stream's socket is readable */
	OP_TUN_POLLOUT,    /* splice path: the tunnel's socket is writable again */
	OP_CANCEL,         /* cancel of a closing connection's requests */
	OP_TIMER,          /* the shard's tick */
	OP_WAKE,           /* the shard's eventfd (signals from the main thread) */
	OP_MSG_SENT,       /* our MSG_RING to another shard completed */
	OP_XFER,           /* from another shard: a data-plane fd for a tunnel here */
	OP_LISTEN,         /* from another shard: a data-plane listener fd to accept on */
	OP_LINK_TIMEOUT,   /* linked timeout of a connect */
	OP_HANDOFF,        /* from another shard: an upgraded connection for a lane here */
	OP_TUN_POLL,       /* splice path: the tunnel's socket is readable (inline reads) */
	OP_STREAM_POLLOUT, /* splice path: a stream's socket takes more of its pipe */
	OP_MAX,
};

/* user_data layout: op (8 bits) | aux (16) | gen (16) | idx (24). */
struct tok {
	uint8_t op;
	uint16_t aux;
	uint16_t gen;
	uint32_t idx;
};

static inline uint64_t tok_encode(struct tok t)
{
	return (uint64_t)t.op << 56 | (uint64_t)t.aux << 40 | (uint64_t)t.gen << 24 |
	       (t.idx & 0xffffffu);
}

static inline struct tok tok_decode(uint64_t u)
{
	return (struct tok){.op = (uint8_t)(u >> 56),
	                    .aux = (uint16_t)(u >> 40),
	                    .gen = (uint16_t)(u >> 24),
	                    .idx = (uint32_t)(u & 0xffffffu)};
}

enum conn_kind {
	CK_FREE = 0,
	CK_LISTEN, /* control or data-plane listener */
	CK_HTTP,   /* server: control-port request being read */
	CK_TUNNEL, /* a WebSocket tunnel (lane) */
	CK_STREAM, /* a data-plane (server) or upstream (client) socket */
};

enum listen_role {
	LR_CONTROL,
	LR_DATA,
	LR_LOCAL, /* client --local listener; port = index of the forward */
};

/* One stream half pair. Direction names are from this process's view:
 * "up" = socket -> tunnel (we read the socket), "down" = tunnel -> socket. */
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
	bool waiting_bufs; /* on the shard's wait list for stream buffers */
	uint32_t wait_next;
	bool eof; /* socket EOF seen, FIN queued */

	/* down: tunnel -> socket */
	uint8_t *rbuf; /* ring buffer of `window` bytes, allocated on first DATA */
	uint32_t rhead, rlen;
	uint32_t sending;     /* bytes of the send in flight */
	uint32_t unacked;     /* bytes written to the socket not yet granted back */
	uint32_t outstanding; /* credit granted and not yet used up by DATA received */
	bool peer_fin;        /* FIN received */
	bool shut_wr;         /* we shut the socket's write side */

	/* dialling: the client's upstream, or the server's --local target */
	bool connecting;
	uint8_t addr_try;
	const struct addrlist *dial; /* NULL: the tunnel's upstream */

	/* PROXY protocol: the header to send the upstream first (client), or the header
	 * being read from a load balancer before the stream is announced (server). */
	uint8_t *pre;
	uint16_t pre_len, pre_off;
	bool sending_pre;
	bool proxy_wait;

	/* splice path (up): socket -> pipe -> tunnel socket */
	struct spipe *pipe;
	bool splice; /* this stream reads with splice(2) */
	bool poll_armed;

	/* splice path (down): tunnel socket -> dpipe -> socket. The pipe's bytes follow the
	 * first rb_first bytes of rbuf and precede the rest (one order on the socket). */
	struct spipe *dpipe;
	uint32_t piped;    /* bytes in dpipe */
	uint32_t rb_first; /* rbuf bytes that go out before the pipe's (when piped) */
	bool pollout_armed;

	uint64_t bytes_up, bytes_down;
};

struct conn {
	uint32_t idx;
	uint16_t gen;
	uint8_t kind; /* enum conn_kind */
	bool closing;
	bool rst; /* close with SO_LINGER 0 (reset) */
	int fd;
	uint32_t inflight; /* submitted requests without their final CQE */
	uint32_t next_free;
	uint64_t started_ms;
	union {
		struct {
			uint8_t role; /* enum listen_role */
			uint16_t port;
		} listen;
		struct http_conn *http;
		struct tunnel *tun;
		struct stream st;
	} u;
};

/* Provided buffer ring. */
struct bufring {
	struct io_uring_buf_ring *br;
	uint8_t *mem;
	uint32_t nbufs, bufsz;
	uint16_t bgid;
	uint32_t mask;
	uint32_t out; /* buffers currently held by user space */
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

enum {
	TUN_RING_BGID = 0,
	STREAM_RING_BGID = 1,
};

/* A list of connection references (slot and generation), grown as needed: a stale entry
 * (the slot was freed or reused) is recognised by its generation and skipped. */
struct connref {
	uint32_t idx;
	uint16_t gen;
};
struct connlist {
	struct connref *ref;
	uint32_t n, cap;
};
/* Append c. false when out of memory (the list is unchanged). */
bool connlist_push(struct connlist *l, const struct conn *c);
void connlist_free(struct connlist *l);

#define SHARD_SCRATCH (64 * 1024) /* bytes of s->scratch */

/* One shard. Everything here is touched only by the shard's own thread, except where a
 * field says otherwise. */
struct shard {
	int id;
	struct engine *eng;
	const struct cfg *cfg;
	struct io_uring ring;
	int ring_fd; /* set once by the shard's thread, read by the others (atomic) */
	int wake_fd;
	pthread_t thread;
	bool running; /* read by the main thread (atomic) */
	bool stop;
	bool draining;
	uint64_t drain_deadline_ms;
	uint64_t now_ms; /* monotonic, updated once per loop turn */

	struct conn *conns;
	uint32_t nconns, hiwater, free_head, live;

	struct bufring tun_ring, stream_ring;
	uint32_t wait_head, wait_tail; /* streams waiting for stream-ring buffers */

	struct outitem *item_free;
	uint32_t http_live; /* CK_HTTP connections (control requests being read) */
	/* Timeouts that SQEs point at until they complete: set at init, never rewritten. */
	struct __kernel_timespec tick_ts, dial_ts, handshake_ts;
	struct connlist reap;  /* closed with nothing in flight: finalized at turn end */
	struct connlist dirty; /* tunnels with new items: flushed at turn end */
	uint8_t *scratch;      /* SHARD_SCRATCH bytes for a read that is used at once */

	uint8_t rnd[256]; /* random bytes for masking keys */
	uint32_t rnd_pos;

	struct shard_stats stats;
};

/* Features probed at start-up (engine/uring.c). */
/* Optional ring set-up flags the kernel accepts (the required features are probed and
 * their absence stops the start with a message naming them). */
struct uring_features {
	bool single_issuer, defer_taskrun, coop_taskrun, submit_all;
};
extern struct uring_features uring_feat;

/* Probe the kernel once (main thread, before the shards start). Returns 0 or -errno
 * when a required feature is missing; the message names it. */
int uring_probe(const char **missing);

/* Create a shard's ring with the best flags the kernel has. 0 or -errno. */
int uring_ring_init(struct io_uring *ring, unsigned entries);

/* Set up / tear down a provided buffer ring. 0 or -errno. */
int bufring_init(struct io_uring *ring, struct bufring *b, uint16_t bgid, uint32_t nbufs,
                 uint32_t bufsz);
void bufring_free(struct io_uring *ring, struct bufring *b);
/* Give buffer bid back to the kernel. */
void bufring_put(struct bufring *b, uint16_t bid);
static inline uint8_t *bufring_addr(const struct bufring *b, uint16_t bid)
{
	return b->mem + (size_t)bid * b->bufsz;
}

/* Shard life. */
int shard_init(struct shard *s, struct engine *e, int id);
void shard_destroy(struct shard *s);
void *shard_main(void *arg);
void shard_wake(struct shard *s);

/* An SQE for conn c (counted in c->inflight) or for the shard (c NULL). Submits and
 * retries when the SQ is full; never returns NULL. */
struct io_uring_sqe *shard_sqe(struct shard *s, struct conn *c, enum op op, uint16_t aux);

/* Connection slots. */
struct conn *conn_alloc(struct shard *s, enum conn_kind kind, int fd);
struct conn *conn_get(struct shard *s, uint32_t idx, uint16_t gen);
/* Schedule a close: cancels the connection's requests; the slot is freed (and the fd
 * closed, with a reset when c->rst) once the last completion arrives. */
void conn_close(struct shard *s, struct conn *c);

/* Items of tunnel send queues (per-shard pool). */
struct outitem *item_get(struct shard *s);
void item_put(struct shard *s, struct outitem *it);

/* Four random bytes (masking keys). */
void shard_random4(struct shard *s, uint8_t out[4]);

uint64_t mono_ms(void);
uint64_t mono_ns(void);

#endif
