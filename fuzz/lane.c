/* fuzz/lane.c — structure-aware libFuzzer driver for one lane of the mux (engine/mux/),
 * in-process: no ring; each stream's socket is one end of a local socket pair with a small
 * buffer whose other end the driver drains at the end of every turn, so DATA is forwarded
 * (sent from the lane's buffer) or, when the socket is full, buffered, as in the engine. The
 * shard is real (engine/loop/ slots, counted close, deferred flushes, ticks) but its submission
 * queue is a plain array the driver reads, playing the kernel: it completes the requests the
 * mux makes when the input says so. The lane's transport is a fake (struct xprt_ops) that takes
 * every byte the mux flushes and parses it back into WebSocket frames and tunnel messages.
 *
 * Input: byte 0 picks the lane's role (bit 0: server, else client); then records
 *   op (1) | flags (1) | stream selector (2, big-endian) | length L (1) | L payload bytes
 * op 0x01..0x0F is a tunnel message from the peer, framed validly (masked toward a
 * server), its body encoded from the payload (or the raw payload: flags bit 7); ops
 * 0xF0.. are events: a tick, completions, WebSocket control frames, the role opening or
 * resetting a stream, GOAWAY, failing the lane, raw bytes. See `step`.
 *
 * Invariants (abort on violation): every frame the lane sends is well formed and every
 * tunnel message in it decodes; nothing is sent after a Close frame, and at most one
 * Close and one GOAWAY; DATA stays within the credit the peer granted on its stream; a
 * stream's receive credit is conserved (outstanding + buffered + unacknowledged = window)
 * and the lane's stream count matches its list and its slots; the send queue is empty at
 * the end of every turn (bounded memory); at the end every slot is freed. ASan/UBSan
 * catch the rest (use after free, overflows). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/loop/engine.h"
#include "engine/mux/tunnel.h"

#define CHECK(x)                                                                               \
	do {                                                                                   \
		if (!(x))                                                                      \
			abort();                                                               \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CONNS 48
#define SQ_ENTRIES 4096
#define RING_BUFS 8
#define RING_BUFSZ 4096
#define TUN_BUFS 4
#define TUN_BUFSZ (32 * 1024)
#define WINDOW (64 * 1024)
#define TRACK 256 /* streams tracked on the wire */

struct track {
	uint32_t id;
	bool used;
	uint64_t granted, sent; /* credit the peer granted us on the stream; DATA we sent */
};

static struct {
	bool inited;
	bool trace; /* LANE_TRACE=1: print what the lane sends (to read a reproducer) */
	const struct loop_hooks *mux;
	struct engine e;
	struct cfg cfg;
	struct shard s;
	struct io_uring_sqe sqes[SQ_ENTRIES];
	unsigned khead;
	struct io_uring_buf_ring *br, *tbr;
	uint8_t *mem, *tmem;
	uint16_t tbr_head;
	uint16_t br_head;          /* buffers given back, read up to br->tail */
	uint16_t kfree[RING_BUFS]; /* buffers the "kernel" holds */
	int nkfree;
	int devnull;
	int sink[MAX_CONNS + 8]; /* the other ends of the streams' sockets, drained */
	int nsink;

	/* the lane */
	struct conn *c;
	uint32_t c_idx;
	uint16_t c_gen;
	enum ws_role role;
	uint32_t peer_win;
	/* what the lane sent, parsed */
	uint8_t drain[65536];
	uint8_t out[1 << 20];
	size_t out_len;
	bool close_out;
	int goaways_out;
	struct track tr[TRACK];
	uint8_t mask_ctr;
} G;

/* ---- the streams' sockets ---------------------------------------------------------- */

/* A stream's socket: one end of a pair with a small buffer (forwards often come up short);
 * the driver keeps the other end. */
static int stream_sock(void)
{
	int sp[2];
	if (G.nsink == (int)(sizeof(G.sink) / sizeof(G.sink[0])) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp))
		return dup(G.devnull);
	int small = 4096;
	setsockopt(sp[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
	setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	G.sink[G.nsink++] = sp[1];
	return sp[0];
}

/* Read what the streams wrote; close the ends whose stream closed its socket. */
static void drain_sinks(void)
{
	for (int i = 0; i < G.nsink;) {
		ssize_t r;
		while ((r = recv(G.sink[i], G.drain, sizeof(G.drain), MSG_DONTWAIT)) > 0)
			;
		if (r == 0 || (r < 0 && errno != EAGAIN)) {
			close(G.sink[i]);
			G.sink[i] = G.sink[--G.nsink];
			continue;
		}
		i++;
	}
}

/* The mux counts RTTs in these buckets; they are defined with /metrics (engine/svc/),
 * which this driver does not link. */
const double stats_rtt_bounds[STATS_RTT_BUCKETS] = {0.001, 0.01, 0.1, 1};

/* ---- the wire the lane sends, checked ------------------------------------------------ */

static struct track *track(uint32_t id, bool add)
{
	for (int i = 0; i < TRACK; i++)
		if (G.tr[i].used && G.tr[i].id == id)
			return &G.tr[i];
	if (!add)
		return NULL;
	for (int i = 0; i < TRACK; i++)
		if (!G.tr[i].used) {
			G.tr[i] = (struct track){.id = id, .used = true};
			return &G.tr[i];
		}
	return NULL;
}

static void sent_msg(const uint8_t *m, size_t n)
{
	struct tun_msg msg;
	CHECK(tun_decode(m, n, &msg, NULL) == TUN_OK);
	if (G.trace)
		fprintf(stderr, "lane sends %s stream=%u len=%zu\n", tun_type_name(msg.type),
		        msg.stream, n);
	struct track *tr;
	switch (msg.type) {
	case TUN_OPEN:
		tr = track(msg.stream, true);
		if (tr) {
			tr->granted = conn_tun(G.c)->peer_window;
			tr->sent = 0;
		}
		break;
	case TUN_DATA:
		tr = track(msg.stream, false);
		if (tr) {
			tr->sent += msg.u.data.len;
			CHECK(tr->sent <= tr->granted);
		}
		break;
	case TUN_GOAWAY:
		CHECK(++G.goaways_out == 1);
		break;
	default:
		break;
	}
}

/* Parse whole frames from G.out; the lane masks toward a server (client role). */
static void parse_out(void)
{
	size_t pos = 0;
	while (G.out_len - pos >= 2) {
		const uint8_t *b = G.out + pos;
		uint8_t op = b[0] & 0x0f;
		bool masked = b[1] & 0x80;
		uint64_t len = b[1] & 0x7f;
		size_t h = 2;
		CHECK((b[0] & 0xf0) == 0x80); /* FIN, no RSV bits: the lane never fragments */
		CHECK(masked == (G.role == WS_ROLE_CLIENT));
		if (len == 126) {
			if (G.out_len - pos < 4)
				break;
			len = (uint64_t)b[2] << 8 | b[3];
			h = 4;
		} else if (len == 127) {
			if (G.out_len - pos < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = len << 8 | b[2 + i];
			h = 10;
		}
		size_t kh = masked ? 4 : 0;
		if (G.out_len - pos < h + kh + len)
			break;
		uint8_t *p = G.out + pos + h + kh;
		if (masked)
			ws_mask(p, (size_t)len, b + h, 0);
		CHECK(!G.close_out); /* RFC 6455 §5.5.1: nothing after a Close */
		if (op == WS_OP_CLOSE)
			G.close_out = true;
		if (G.trace && op != WS_OP_BINARY)
			fprintf(stderr, "lane sends WebSocket opcode %u\n", op);
		if (op == WS_OP_BINARY)
			sent_msg(p, (size_t)len);
		else
			CHECK(op == WS_OP_PONG || op == WS_OP_CLOSE);
		pos += h + kh + (size_t)len;
	}
	memmove(G.out, G.out + pos, G.out_len - pos);
	G.out_len -= pos;
}

/* ---- a fake transport: takes everything, keeps it for parse_out ------------------------- */

static int fx_recv(struct xprt *x, struct shard *s, const uint8_t *p, size_t n,
                   const struct xprt_up *up, void *ctx)
{
	(void)x, (void)s;
	return up->on_plain(ctx, p, n) ? XPRT_OK : XPRT_STOP;
}

static int fx_drain(struct xprt *x, struct shard *s, const struct xprt_up *up, void *ctx)
{
	(void)x, (void)s, (void)up, (void)ctx;
	return XPRT_OK;
}

static long fx_flush(struct xprt *x, struct iovec *iov, int n, struct iovec **wire, int *nwire)
{
	(void)x, (void)wire;
	long took = 0;
	for (int i = 0; i < n; i++) {
		CHECK(G.out_len + iov[i].iov_len <= sizeof(G.out));
		memcpy(G.out + G.out_len, iov[i].iov_base, iov[i].iov_len);
		G.out_len += iov[i].iov_len;
		took += (long)iov[i].iov_len;
	}
	*nwire = 0;
	parse_out();
	return took;
}

static size_t fx_sent(struct xprt *x, size_t res)
{
	(void)x;
	return res;
}

static bool fx_idle(const struct xprt *x)
{
	(void)x;
	return false;
}

static bool fx_ready(const struct xprt *x)
{
	(void)x;
	return true;
}

static const struct xprt_ops fake_xprt = {
        .name = "fuzz",
        .recv = fx_recv,
        .drain = fx_drain,
        .flush = fx_flush,
        .sent = fx_sent,
        .busy = fx_idle,
        .ready = fx_ready,
};

/* ---- the role: what server.c / client.c do with a lane, reduced ------------------------ */

static struct conn *lane(void)
{
	return conn_get(&G.s, G.c_idx, G.c_gen);
}

static void open_stream(struct shard *s, struct conn *c, uint32_t id, uint16_t port)
{
	struct conn *sc = stream_new(s, c, stream_sock(), id, port, 0);
	if (sc)
		stream_start(s, sc);
	else if (id)
		tunnel_send_rst(s, c, id, TUN_RST_INTERNAL, "no slots");
}

static void role_msg(struct shard *s, struct conn *c, const struct tun_msg *m)
{
	struct tunnel *t = conn_tun(c);
	switch (m->type) {
	case TUN_HELLO: {
		t->peer_window = m->u.hello.window ? m->u.hello.window : CFG_DEFAULT_WINDOW;
		t->peer_max_frame = m->u.hello.max_frame;
		t->caps = m->u.hello.caps & (TUN_CAP_WINDOW | TUN_CAP_LANES);
		if (m->u.hello.lane > 0 && m->u.hello.session != 7) {
			/* What the server does with an unknown session; then it goes on as a
			 * careless role would: the mux must drop what follows the Close. */
			tunnel_goaway(s, c, TUN_GOAWAY_PROTOCOL, "no such session");
			tunnel_fail(s, c, WS_CLOSE_POLICY, "no such session");
		}
		struct tun_welcome w = {.version = 1,
		                        .caps = t->caps,
		                        .window = t->my_window,
		                        .max_frame = 65536,
		                        .lanes = 1,
		                        .session = 7};
		uint8_t out[TUN_HEADER_LEN + 32 + 4 * TUN_MAX_PORTS];
		tunnel_send_msg(s, c, out, tun_encode_welcome(out, sizeof(out), &w));
		if (!tunnel_closing(c))
			t->state = TS_READY;
		return;
	}
	case TUN_WELCOME:
		t->peer_window = m->u.welcome.window ? m->u.welcome.window : CFG_DEFAULT_WINDOW;
		t->peer_max_frame = m->u.welcome.max_frame;
		t->caps = m->u.welcome.caps & (TUN_CAP_WINDOW | TUN_CAP_LANES);
		t->state = TS_READY;
		return;
	case TUN_OPEN:
		if (t->goaway_sent) {
			tunnel_send_rst(s, c, m->stream, TUN_RST_SHUTDOWN, "shutting down");
			return;
		}
		open_stream(s, c, m->stream, m->u.open.port);
		return;
	default:
		return;
	}
}

static const struct tunnel_cbs role_cbs = {.on_msg = role_msg};

/* ---- the kernel: submissions, completions, buffers -------------------------------------- */

static void complete(uint64_t ud, int res, uint32_t flags)
{
	struct io_uring_cqe cqe = {.user_data = ud, .res = res, .flags = flags};
	shard_dispatch(&G.s, &cqe);
}

/* Complete the queued request `ud` with res and flags (it stays queued with F_MORE). */
static void completions_of(uint64_t ud, int res, uint32_t flags)
{
	struct shard *s = &G.s;
	if (!(flags & IORING_CQE_F_MORE)) {
		/* Take it out of the queue first: the handler may queue a new one. */
		unsigned n = s->ring.sq.sqe_tail - s->ring.sq.sqe_head, w = 0;
		for (unsigned i = 0; i < n; i++) {
			struct io_uring_sqe *q =
			        &G.sqes[(s->ring.sq.sqe_head + i) & (SQ_ENTRIES - 1)];
			if (q->user_data != ud)
				G.sqes[(s->ring.sq.sqe_head + w++) & (SQ_ENTRIES - 1)] = *q;
		}
		s->ring.sq.sqe_tail = s->ring.sq.sqe_head + w;
	}
	complete(ud, res, flags);
}

/* Buffers the mux gave back (bufring_put) are the kernel's again. */
static void reclaim_bufs(void)
{
	uint16_t tail = __atomic_load_n(&G.br->tail, __ATOMIC_ACQUIRE);
	while (G.br_head != tail) {
		uint16_t bid = G.br->bufs[G.br_head & (RING_BUFS - 1)].bid;
		CHECK(bid < RING_BUFS && G.nkfree < RING_BUFS);
		G.kfree[G.nkfree++] = bid;
		G.br_head++;
	}
}

/* Complete what was submitted. Requests of closing connections are cancelled; of the
 * others, the stream requests of stream `sel` (0: all) complete as flags say:
 *   send: all written (bit 0 clear), half (bit 0), or a reset (bit 1);
 *   recv: `n` bytes of data (bit 2), EOF (bit 3), or stay in flight. */
static void completions(uint8_t flags, uint32_t sel, uint32_t n, bool all_cancel)
{
	struct shard *s = &G.s;
	unsigned cnt = s->ring.sq.sqe_tail - s->ring.sq.sqe_head;
	static struct io_uring_sqe pend[SQ_ENTRIES];
	CHECK(cnt < SQ_ENTRIES);
	for (unsigned i = 0; i < cnt; i++)
		pend[i] = G.sqes[(s->ring.sq.sqe_head + i) & (SQ_ENTRIES - 1)];
	s->ring.sq.sqe_tail = s->ring.sq.sqe_head;
	for (unsigned i = 0; i < cnt; i++) {
		struct io_uring_sqe *q = &pend[i];
		struct tok t = tok_decode(q->user_data);
		struct conn *c = conn_get(s, t.idx, t.gen);
		CHECK(c); /* counted close: a slot outlives its requests */
		if (t.op == OP_CANCEL) {
			complete(q->user_data, 0, 0);
			continue;
		}
		if (t.op == OP_TUN_RECV && !c->closing && !all_cancel) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
			CHECK(sqe);
			*sqe = *q; /* multishot: armed until cancelled */
			continue;
		}
		bool is_stream = c->kind == CK_STREAM;
		bool mine = is_stream && (sel == 0 || conn_st(c)->id == sel);
		if (c->closing || all_cancel) {
			complete(q->user_data, -ECANCELED, 0);
		} else if (mine && t.op == OP_STREAM_SEND) {
			int res = flags & 2   ? -ECONNRESET
			          : flags & 1 ? (int)(q->len / 2)
			                      : (int)q->len;
			complete(q->user_data, res, 0);
		} else if (mine && t.op == OP_STREAM_RECV && (flags & 4)) {
			reclaim_bufs();
			if (!G.nkfree) {
				complete(q->user_data, -ENOBUFS, 0);
				continue;
			}
			uint16_t bid = G.kfree[--G.nkfree];
			uint32_t k = n < q->len ? n : q->len;
			if (k == 0)
				k = 1;
			memset(G.mem + (size_t)bid * RING_BUFSZ, 'u', k);
			complete(q->user_data, (int)k,
			         IORING_CQE_F_BUFFER | (uint32_t)bid
			                                       << IORING_CQE_BUFFER_SHIFT);
		} else if (mine && t.op == OP_STREAM_RECV && (flags & 8)) {
			complete(q->user_data, 0, 0);
		} else {
			/* Still in flight: back into the queue. */
			struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);
			CHECK(sqe);
			*sqe = *q;
		}
	}
}

/* ---- invariants at the end of a turn ------------------------------------------------------
 */

static void check_lane(void)
{
	struct shard *s = &G.s;
	struct conn *c = lane();
	if (!c)
		return;
	struct tunnel *t = conn_tun(c);
	CHECK(t->q_head == NULL && t->q_items == 0); /* all flushed: memory bounded */
	uint32_t n = 0;
	for (uint32_t i = t->st_head; i != UINT32_MAX; i = conn_st(&s->conns[i])->next) {
		struct conn *sc = &s->conns[i];
		struct stream *st = conn_st(sc);
		CHECK(sc->kind == CK_STREAM && !sc->closing);
		CHECK(st->tun_idx == c->idx && st->tun_gen == c->gen);
		CHECK((uint64_t)st->outstanding + dbuf_held(&st->down) + st->unacked ==
		      t->my_window);
		CHECK(st->queued <= STREAM_QUEUE_LIMIT + RING_BUFSZ);
		CHECK(++n <= MAX_CONNS);
	}
	CHECK(n == t->nstreams);
}

/* ---- the peer's messages --------------------------------------------------------------- */

static uint8_t byte(const uint8_t *p, size_t n, size_t i)
{
	return i < n ? p[i] : 0;
}

static uint32_t be32(const uint8_t *p, size_t n, size_t i)
{
	return (uint32_t)byte(p, n, i) << 24 | (uint32_t)byte(p, n, i + 1) << 16 |
	       (uint32_t)byte(p, n, i + 2) << 8 | byte(p, n, i + 3);
}

/* The lane's armed multishot recv (its token), or 0. */
static uint64_t tun_recv_armed(void)
{
	struct shard *s = &G.s;
	for (unsigned i = s->ring.sq.sqe_head; i != s->ring.sq.sqe_tail; i++) {
		uint64_t ud = G.sqes[i & (SQ_ENTRIES - 1)].user_data;
		struct tok t = tok_decode(ud);
		if (t.op == OP_TUN_RECV && t.idx == G.c_idx && t.gen == G.c_gen)
			return ud;
	}
	return 0;
}

/* Bytes from the peer, as the kernel hands them to the lane's multishot recv: in pieces
 * of at most `piece` bytes, each in a buffer of the lane's ring. */
static void deliver(const uint8_t *p, size_t n, size_t piece)
{
	struct shard *s = &G.s;
	while (n && lane() && !lane()->closing) {
		uint64_t ud = tun_recv_armed();
		if (!ud)
			return; /* not reading (it stopped): the bytes wait in the socket */
		uint16_t tail = __atomic_load_n(&G.tbr->tail, __ATOMIC_ACQUIRE);
		if (G.tbr_head == tail) {
			/* No buffer: the multishot recv ends; the mux arms another. */
			completions_of(ud, -ENOBUFS, 0);
			continue;
		}
		uint16_t bid = G.tbr->bufs[G.tbr_head & (TUN_BUFS - 1)].bid;
		G.tbr_head++;
		size_t k = n < piece ? n : piece;
		if (k > TUN_BUFSZ)
			k = TUN_BUFSZ;
		memcpy(G.tmem + (size_t)bid * TUN_BUFSZ, p, k);
		completions_of(ud, (int)k,
		               IORING_CQE_F_MORE | IORING_CQE_F_BUFFER |
		                       (uint32_t)bid << IORING_CQE_BUFFER_SHIFT);
		shard_turn_end(s);
		p += k;
		n -= k;
	}
}

/* The tunnel message of a record, encoded; returns its length (0: none). */
static size_t build_msg(uint8_t *m, size_t cap, uint8_t type, uint8_t flags, uint32_t id,
                        const uint8_t *p, size_t n)
{
	if (flags & 0x80 || type > TUN_GOAWAY) { /* raw body (unknown types always) */
		size_t k = tun_encode_header(m, cap, type, id);
		m[1] = flags & 3;
		if (k + n > cap)
			return 0;
		memcpy(m + k, p, n);
		return k + n;
	}
	switch (type) {
	case TUN_HELLO: {
		struct tun_hello h = {.version_min = 1,
		                      .version_max = byte(p, n, 0) & 0x80 ? 0 : 1,
		                      .caps = byte(p, n, 1) & 0xf,
		                      .window = (uint32_t)byte(p, n, 2) << 10,
		                      .max_frame = ((uint32_t)byte(p, n, 3) << 8) + 1,
		                      .lane = byte(p, n, 4) & 3,
		                      .session = byte(p, n, 5),
		                      .client_id = tun_str_from("fuzz"),
		                      .upstream = tun_str_from("up"),
		                      .nports = byte(p, n, 6) % 3};
		for (uint16_t i = 0; i < h.nports; i++)
			h.ports[i] = (uint16_t)(1000 + i);
		return tun_encode_hello(m, cap, &h);
	}
	case TUN_WELCOME: {
		struct tun_welcome w = {.version = 1,
		                        .caps = byte(p, n, 1) & 0xf,
		                        .window = (uint32_t)byte(p, n, 2) << 10,
		                        .max_frame = ((uint32_t)byte(p, n, 3) << 8) + 1,
		                        .lanes = 1,
		                        .session = 7};
		return tun_encode_welcome(m, cap, &w);
	}
	case TUN_OPEN: {
		struct tun_open o = {.port = (uint16_t)(80 + byte(p, n, 0)),
		                     .remote = tun_str_from("192.0.2.1:5"),
		                     .local = tun_str_from("192.0.2.2:80"),
		                     .flags = flags & 3};
		size_t k = tun_encode_open(m, cap, id, &o);
		struct track *tr = k ? track(id, true) : NULL;
		if (tr) {
			tr->granted = conn_tun(G.c)->peer_window;
			tr->sent = 0;
		}
		return k;
	}
	case TUN_DATA: {
		size_t len = flags & 0x40 ? n * 512 : n;
		size_t k = tun_encode_data_header(m, cap, id);
		if (k + len > cap)
			return 0;
		for (size_t i = 0; i < len; i++)
			m[k + i] = n ? p[i % n] : 0;
		return k + len;
	}
	case TUN_FIN:
		return tun_encode_fin(m, cap, id);
	case TUN_RST:
		return tun_encode_rst(m, cap, id, byte(p, n, 0) % 10, "");
	case TUN_WINDOW: {
		uint32_t inc = n >= 4 ? be32(p, n, 0) : (uint32_t)(byte(p, n, 0) + 1) << 10;
		struct track *tr = track(id, false);
		if (tr)
			tr->granted += inc;
		return tun_encode_window(m, cap, id, inc);
	}
	case TUN_PING:
	case TUN_PONG:
		return tun_encode_ping(m, cap, type == TUN_PONG, be32(p, n, 0));
	case TUN_GOAWAY:
		return tun_encode_goaway(m, cap, byte(p, n, 0) % 6, "bye");
	default:
		return 0;
	}
}

/* Frame a message as the peer would (masked toward a server), in one or two frames,
 * and feed it in one or two pieces. */
static void feed_frames(uint8_t op, const uint8_t *m, size_t len, uint8_t flags)
{
	static uint8_t buf[(1 << 17) + 64];
	size_t pos = 0, split = flags & 0x20 ? len / 2 : len;
	bool masked = G.role == WS_ROLE_SERVER;
	for (int part = 0; part < 2; part++) {
		size_t from = part ? split : 0, to = part ? len : split;
		if (part && from == len)
			break;
		bool fin = to == len;
		uint8_t fop = part ? WS_OP_CONT : op;
		uint8_t key[4] = {G.mask_ctr, (uint8_t)(G.mask_ctr * 3), 0x5a, (uint8_t)to};
		G.mask_ctr++;
		size_t h =
		        ws_encode_header(buf + pos, fop, fin, masked ? key : NULL, to - from);
		memcpy(buf + pos + h, m + from, to - from);
		if (masked)
			ws_mask(buf + pos + h, to - from, key, 0);
		pos += h + (to - from);
	}
	deliver(buf, pos, flags & 0x10 ? pos / 3 : TUN_BUFSZ);
}
/* One record. Returns false when the lane is gone. */
static bool step(uint8_t op, uint8_t flags, uint16_t sel, const uint8_t *p, size_t n)
{
	struct shard *s = &G.s;
	struct conn *c = lane();
	uint32_t id = sel & 0x8000 ? (uint32_t)sel << 16 | sel : sel & 0x3f;
	static uint8_t m[(1 << 17) + 16];
	if (op >= 0x01 && op <= 0x0f) {
		size_t len = build_msg(m, sizeof(m), op, flags, id, p, n);
		if (len)
			feed_frames(WS_OP_BINARY, m, len, flags);
	} else if (op == 0xf0) {
		s->now_ms += n ? (uint64_t)p[0] * 100 : 250;
		shard_tick(s);
	} else if (op == 0xf1) {
		completions(flags, id, n ? (uint32_t)p[0] << 4 : 100, false);
	} else if (op == 0xf2) {
		/* WebSocket control frames: Ping, Pong, Close (code from the payload), text. */
		static const uint8_t ops[4] = {WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE, WS_OP_TEXT};
		uint8_t fop = ops[flags & 3];
		size_t k = n > 125 ? 125 : n;
		if (fop == WS_OP_CLOSE && k == 1)
			k = 0;
		feed_frames(fop, p, k, 0);
	} else if (op == 0xf3) {
		if (tunnel_ready(c) && !conn_tun(c)->goaway_received) {
			struct conn *sc = stream_new(s, c, stream_sock(), 0, 80, 0);
			if (sc) {
				struct tun_open o = {.port = 80,
				                     .remote = tun_str_from("192.0.2.1:5"),
				                     .local = tun_str_from("192.0.2.2:80")};
				tunnel_send_msg(
				        s, c, m,
				        tun_encode_open(m, sizeof(m), conn_st(sc)->id, &o));
				stream_start(s, sc);
			}
		}
	} else if (op == 0xf4) {
		struct conn *sc;
		if (tunnel_lookup_stream(s, conn_tun(c), id, &sc))
			stream_reset(s, sc, flags % 9, flags & 0x80);
	} else if (op == 0xf5) {
		tunnel_goaway(s, c, flags % 5, "drain");
	} else if (op == 0xf6) {
		tunnel_fail(s, c, flags & 1 ? WS_CLOSE_GOING_AWAY : WS_CLOSE_ABNORMAL, "fuzz");
	} else if (op == 0xf7) {
		deliver(p, n, flags ? flags : 1);
	}
	shard_turn_end(s);
	check_lane();
	drain_sinks();
	return lane() != NULL;
}

/* ---- set-up and tear-down ------------------------------------------------------------------
 */

static void init_once(void)
{
	G.trace = getenv("LANE_TRACE") != NULL;
	log_open(G.trace ? LOG_DEBUG : LOG_ERROR, G.trace ? NULL : "/dev/null");
	G.mux = mux_init();
	G.e.cfg = &G.cfg;
	G.e.nshards = 1;
	G.e.hooks[0] = G.mux;
	G.e.nhooks = 1;
	G.e.watch_fd = -1;
	G.cfg.window = WINDOW;
	G.cfg.max_conns = MAX_CONNS;
	G.cfg.ping_ms = 10000;
	G.cfg.dead_ms = 30000;
	G.cfg.drain_ms = 5000;
	G.cfg.dial_ms = 5000;
	G.cfg.handshake_ms = 10000;
	/* forward, and auto's bookkeeping (no splice: the transport is a fake) */
	G.cfg.data_path = CFG_DP_AUTO;
	G.devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	CHECK(G.devnull >= 0);

	CHECK(posix_memalign((void **)&G.br, 4096, RING_BUFS * sizeof(struct io_uring_buf)) ==
	      0);
	G.mem = malloc((size_t)RING_BUFS * RING_BUFSZ);
	CHECK(G.mem);
	CHECK(posix_memalign((void **)&G.tbr, 4096, TUN_BUFS * sizeof(struct io_uring_buf)) ==
	      0);
	G.tmem = malloc((size_t)TUN_BUFS * TUN_BUFSZ);
	CHECK(G.tmem);
	G.inited = true;
}

static bool lane_start(enum ws_role role)
{
	struct shard *s = &G.s;
	CHECK(shard_init(s, &G.e, 0) == 0);
	/* A submission queue the driver reads (never submitted to a kernel). */
	G.khead = 0;
	s->ring.sq.khead = &G.khead;
	s->ring.sq.sqes = G.sqes;
	s->ring.sq.ring_mask = SQ_ENTRIES - 1;
	s->ring.sq.ring_entries = SQ_ENTRIES;
	s->ring.ring_fd = -1;
	io_uring_buf_ring_init(G.br);
	G.br_head = 0;
	G.nkfree = RING_BUFS;
	for (int i = 0; i < RING_BUFS; i++)
		G.kfree[i] = (uint16_t)i;
	struct bufring *b = &s->rings[STREAM_RING_BGID];
	b->br = G.br;
	b->mem = G.mem;
	b->nbufs = RING_BUFS;
	b->bufsz = RING_BUFSZ;
	b->bgid = STREAM_RING_BGID;
	b->mask = (uint32_t)io_uring_buf_ring_mask(RING_BUFS);
	/* The lane's ring: every buffer given to the "kernel" at once. */
	io_uring_buf_ring_init(G.tbr);
	G.tbr_head = 0;
	b = &s->rings[TUN_RING_BGID];
	b->br = G.tbr;
	b->mem = G.tmem;
	b->nbufs = TUN_BUFS;
	b->bufsz = TUN_BUFSZ;
	b->bgid = TUN_RING_BGID;
	b->mask = (uint32_t)io_uring_buf_ring_mask(TUN_BUFS);
	b->out = TUN_BUFS;
	for (uint16_t i = 0; i < TUN_BUFS; i++)
		bufring_put(b, i);
	s->now_ms = 1000000;
	CHECK(G.mux->start(s) == 0);
	G.role = role;
	G.out_len = 0;
	G.close_out = false;
	G.goaways_out = 0;
	memset(G.tr, 0, sizeof(G.tr));
	struct conn *c = conn_alloc(s, CK_LISTEN, dup(G.devnull));
	CHECK(c);
	struct tunnel *t = tunnel_new(s, c, role, &role_cbs, NULL);
	CHECK(t);
	t->x.ops = &fake_xprt;
	snprintf(t->remote, sizeof(t->remote), "fuzz");
	G.c = c;
	G.c_idx = c->idx;
	G.c_gen = c->gen;
	c->started_ms = s->now_ms;
	tunnel_start(s, c, NULL, 0); /* arms the multishot recv */
	shard_turn_end(s);
	return true;
}

static void lane_end(void)
{
	struct shard *s = &G.s;
	struct conn *c = lane();
	if (c)
		tunnel_fail(s, c, WS_CLOSE_GOING_AWAY, "end of input");
	for (int i = 0; i < 64 && s->live; i++) {
		completions(0, 0, 0, true);
		shard_turn_end(s);
	}
	CHECK(s->live == 0); /* every slot freed: nothing leaks past the lane */
	CHECK(s->ring.sq.sqe_tail == s->ring.sq.sqe_head);
	G.mux->stop(s);
	shard_destroy(s);
	drain_sinks();
	CHECK(G.nsink == 0); /* every stream's socket was closed */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!G.inited)
		init_once();
	if (size < 1)
		return 0;
	lane_start(data[0] & 1 ? WS_ROLE_SERVER : WS_ROLE_CLIENT);
	size_t pos = 1;
	while (size - pos >= 5) {
		uint8_t op = data[pos], flags = data[pos + 1];
		uint16_t sel = (uint16_t)(data[pos + 2] << 8 | data[pos + 3]);
		size_t n = data[pos + 4];
		pos += 5;
		if (n > size - pos)
			n = size - pos;
		bool alive = step(op, flags, sel, data + pos, n);
		pos += n;
		if (!alive)
			break;
	}
	lane_end();
	return 0;
}
