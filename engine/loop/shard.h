/* engine/loop/shard.h — one shard: a thread with its own io_uring, connection table, provided
 * buffer rings and timers. Shards share no mutable state on the data path; work that
 * belongs to another shard moves with IORING_OP_MSG_RING (engine/loop/engine.h).
 *
 * Every SQE carries a typed completion token (struct tok) naming the operation, the
 * connection slot and the slot's generation. One dispatcher decodes every CQE and hands it
 * to the handler registered for its operation. A connection counts its in-flight requests;
 * conn_close() only schedules, and the slot is freed when the last completion arrives
 * (counted close).
 *
 * The loop names no role, no tunnel and no HTTP. The layers above register, before any
 * shard starts (the tables are read-only from then on):
 *   - a handler per operation (loop_on, loop_on_shard, loop_on_undelivered);
 *   - ops per connection kind (loop_kind: finalize, tick, flush, and whether a connection
 *     of the kind keeps a draining shard alive);
 *   - the provided buffer rings each shard creates (loop_ring);
 *   - shard hooks (struct loop_hooks, on the engine: start, stop, tick, wake, drain);
 *   - an accept callback per listener (listen_here).
 */
#ifndef RINGLET_ENGINE_LOOP_SHARD_H
#define RINGLET_ENGINE_LOOP_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "engine/config.h"
#include "engine/stats.h"

struct engine;
struct shard;
struct conn;

/* Operations the loop itself handles. The layers above number theirs from OP_LOOP_MAX on,
 * each from the end of the layer below (mux: OP_MUX_*, roles: OP_ROLE_*, svc: OP_SVC_*),
 * so no two share a number. */
enum loop_op {
	OP_NONE = 0,
	OP_CANCEL,       /* cancel of a closing connection's requests (or a NOP that reaps) */
	OP_TIMER,        /* the shard's tick */
	OP_WAKE,         /* the shard's eventfd (the main thread wakes it) */
	OP_MSG_SENT,     /* our MSG_RING to another shard completed */
	OP_LINK_TIMEOUT, /* a linked timeout (of a connect) */
	OP_ACCEPT,       /* multishot accept on a listener */
	OP_LOOP_MAX,
};
#define OP_TABLE 256 /* op is 8 bits in a token */

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

/* Connection kinds: the loop's own, then those of the layers above (numbered from
 * CK_LOOP_MAX on, like the operations). */
enum loop_kind {
	CK_FREE = 0,
	CK_LISTEN, /* a listener (multishot accept) */
	CK_LOOP_MAX,
};
#define CK_TABLE 16

/* A listener's accept callback: fd is the accepted socket (non-blocking, close-on-exec),
 * the callback's to keep or close; aux is what listen_here() was given. */
typedef void (*listen_fn)(struct shard *s, uint16_t aux, int fd);

#define CONN_PRIV 248 /* bytes a kind may keep inline in its connections (u.priv) */

struct conn {
	uint32_t idx;
	uint16_t gen;
	uint8_t kind; /* enum loop_kind, or a kind of a layer above */
	bool closing;
	bool rst;      /* close with SO_LINGER 0 (reset) */
	bool deferred; /* on the shard's flush list for this turn */
	int fd;
	uint32_t inflight; /* submitted requests without their final CQE */
	uint32_t next_free;
	uint64_t started_ms;
	union {
		struct {
			listen_fn on_accept;
			uint16_t aux;
			uint16_t flags; /* LISTEN_* */
			bool armed;     /* the multishot accept is in flight */
			bool paused;    /* accept stopped for lack of descriptors or memory */
			bool yielded;   /* paused because descriptors reached the reserve */
			uint32_t backoff_ms; /* the current pause (doubles while it recurs) */
			uint64_t resume_ms;  /* when to accept again */
			uint64_t yield_logged_ms; /* the last warning about the reserve */
		} listen;
		void *ctx; /* the kind's state on the heap, owned by the kind's layer */
		_Alignas(8) unsigned char priv[CONN_PRIV]; /* or inline */
	} u;
};

/* Provided buffer ring, sized by demand (engine/loop/bufring.c): registered with room for
 * nbufs buffers, of which `target` circulate (in the kernel's ring or held above); the rest
 * are parked, their pages released. target 0: every buffer circulates (a ring a driver set
 * up by hand). */
struct bufring {
	struct io_uring_buf_ring *br;
	uint8_t *mem;
	uint32_t nbufs, bufsz;
	uint16_t bgid;
	uint32_t mask;
	uint32_t out; /* buffers currently held by user space (counted by their holder) */
	uint32_t min, target; /* the floor and the current number meant to circulate */
	uint32_t nparked;     /* parked[0..nparked): bids neither in the kernel nor out */
	uint16_t *parked;
	/* Demand, per loop turn and per period (bufring_turn, bufring_tick). */
	uint32_t turn_out, turn_puts; /* out when the turn began; puts during it */
	uint32_t hw;                  /* most buffers out of the kernel at once this period */
	uint32_t taken;               /* buffers taken from the kernel this period */
	uint64_t period_ms;           /* when the period began */
	bool starved;                 /* an -ENOBUFS this period */
	bool grown;                   /* grown this turn */
	bool idle;                    /* nothing taken in the last whole period */
	bool released;                /* the kernel's buffers were released since it was busy */
};
#define LOOP_RINGS 4 /* buffer group ids 0..3 */

/* A completion of operation t.op. c is the connection the token names (live, its
 * generation checked, its in-flight count already decremented for a final CQE), or NULL
 * for an operation registered with loop_on_shard(). */
typedef void (*loop_cqe_fn)(struct shard *s, struct conn *c, struct tok t,
                            struct io_uring_cqe *cqe);

/* Handle op's completions on connections / on the shard (no connection: messages from
 * other shards, whose res carries a value). Call before the shards start. */
void loop_on(uint8_t op, loop_cqe_fn fn);
void loop_on_shard(uint8_t op, loop_cqe_fn fn);
/* A message of op sent to another shard could not be posted: value (what the message
 * carried) is the sender's again. Without one, nothing is done. */
void loop_on_undelivered(uint8_t op, void (*fn)(struct shard *s, uint32_t value));

/* Per-kind operations. */
struct kind_ops {
	/* The slot is being freed (last completion arrived after conn_close): free the
	 * kind's state. The loop closes the fd afterwards. */
	void (*finalize)(struct shard *s, struct conn *c);
	/* Every tick (250 ms) for each open connection of the kind. */
	void (*tick)(struct shard *s, struct conn *c);
	/* End of the loop turn, for connections that called conn_defer() during it. */
	void (*flush)(struct shard *s, struct conn *c);
	/* A connection of this kind keeps a draining shard running; at the drain deadline
	 * it is closed with a reset when rst_on_abort. */
	bool holds_drain;
	bool rst_on_abort;
};
void loop_kind(uint8_t kind, const struct kind_ops *ops);

/* Each shard creates a provided buffer ring bgid (< LOOP_RINGS) of nbufs x bufsz. */
void loop_ring(uint16_t bgid, uint32_t nbufs, uint32_t bufsz);

/* Shard life events for a layer above (registered on the engine, engine_hooks()). Any
 * member may be NULL. start runs in the shard's thread once its ring exists (0, or -errno:
 * the shard does not run and the process stops); stop when it leaves (after every
 * connection is finalized, also when a start failed); tick every 250 ms after the kinds'
 * ticks; wake when the main thread woke the shard; drain once when the drain begins. */
struct loop_hooks {
	int (*start)(struct shard *s);
	void (*stop)(struct shard *s);
	void (*tick)(struct shard *s);
	void (*wake)(struct shard *s);
	void (*drain)(struct shard *s);
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

	struct bufring rings[LOOP_RINGS]; /* those registered with loop_ring() */
	bool rings_quiet;                 /* every ring was idle for a whole period */
	bool rings_release; /* went quiet: release idle buffers and the heap at the turn end */

	/* Timeouts that SQEs point at until they complete: set at init, never rewritten. */
	struct __kernel_timespec tick_ts, dial_ts, handshake_ts;
	struct connlist reap;  /* closed with nothing in flight: finalized at turn end */
	struct connlist defer; /* conn_defer(): flushed at turn end */
	uint8_t *scratch;      /* SHARD_SCRATCH bytes for a read that is used at once */

	/* The layers' own per-shard state (set by their start hook, freed by their stop
	 * hook); the loop never looks inside. */
	void *mux, *role, *svc;

	uint8_t rnd[256]; /* random bytes for masking keys */
	uint32_t rnd_pos;

	struct shard_stats stats;
};

/* Features probed at start-up (engine/loop/uring.c). */
/* Optional ring set-up flags the kernel accepts (the required features are probed and
 * their absence stops the start with a message naming them). Written by uring_probe()
 * before the shards start, read-only afterwards. */
struct uring_features {
	bool single_issuer, defer_taskrun, coop_taskrun, submit_all;
	/* A multishot recv takes a per-completion length (sqe->len) and a total after which
	 * it ends (sqe->optlen, IORING_RECV_MSHOT_LIM; newer kernels: 6.18 has it). */
	bool recv_mshot_limit;
};
extern struct uring_features uring_feat;

/* Probe the kernel once (main thread, before the shards start). Returns 0 or -errno
 * when a required feature is missing; the message names it. */
int uring_probe(const char **missing);

/* Create a shard's ring with the best flags the kernel has. 0 or -errno. */
int uring_ring_init(struct io_uring *ring, unsigned entries);

/* Provided buffer rings (engine/loop/bufring.c). */
#define BUFRING_MIN 4          /* buffers a ring starts with and never shrinks below */
#define BUFRING_PERIOD_MS 1000 /* how often a ring may shrink */

/* Map, register and set up ring bgid of nbufs (a power of two) x bufsz; BUFRING_MIN of them
 * circulate at first. 0 or -errno. bufring_free() undoes it. */
int bufring_init(struct io_uring *ring, struct bufring *b, uint16_t bgid, uint32_t nbufs,
                 uint32_t bufsz);
void bufring_free(struct io_uring *ring, struct bufring *b);
/* The bookkeeping of bufring_init without the kernel: ring br (nbufs entries) and buffer
 * memory mem (nbufs x bufsz) are the caller's; the first min buffers go to the ring (its
 * tail is published), the others are parked. 0, -EINVAL or -ENOMEM. bufring_teardown()
 * frees what it allocated. */
int bufring_setup(struct bufring *b, struct io_uring_buf_ring *br, uint8_t *mem, uint16_t bgid,
                  uint32_t nbufs, uint32_t bufsz, uint32_t min);
void bufring_teardown(struct bufring *b);
/* Give buffer bid (counted in b->out) back: to the kernel, or parked (its pages released)
 * while more than the target circulate. Never fails. */
void bufring_put(struct bufring *b, uint16_t bid);
/* A request on the ring found it empty (-ENOBUFS): grow the target (doubling, at most once
 * per turn, up to nbufs); the buffers that brings go to the kernel now. */
void bufring_starved(struct bufring *b);
/* End of a loop turn: account the demand seen during it. */
void bufring_turn(struct bufring *b);
/* The shard's tick: once per BUFRING_PERIOD_MS, shrink a ring that was not starved and used
 * less than half its target. true when nothing was taken in the last whole period. */
bool bufring_tick(struct bufring *b, uint64_t now_ms);
/* Release the pages of the buffers the kernel holds, once per idle spell; returns how many.
 * Only when no request can be writing to them: the CQ is drained and the kernel runs no
 * work for this ring outside io_uring_enter (IORING_SETUP_DEFER_TASKRUN). */
uint32_t bufring_release_idle(struct bufring *b);
/* Buffers in the kernel's ring now. */
static inline uint32_t bufring_in_kernel(const struct bufring *b)
{
	return b->nbufs - b->nparked - b->out;
}
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
struct io_uring_sqe *shard_sqe(struct shard *s, struct conn *c, uint8_t op, uint16_t aux);

/* Connection slots. */
struct conn *conn_alloc(struct shard *s, uint8_t kind, int fd);
struct conn *conn_get(struct shard *s, uint32_t idx, uint16_t gen);
/* Schedule a close: cancels the connection's requests; the slot is freed (and the fd
 * closed, with a reset when c->rst) once the last completion arrives. */
void conn_close(struct shard *s, struct conn *c);
/* Close fd now with a reset (SO_LINGER 0): a connection refused before it had a slot. */
void fd_reset_close(int fd);
/* Call c's kind's flush op once at the end of this loop turn. */
void conn_defer(struct shard *s, struct conn *c);

/* A listener slot on this shard accepting with multishot accept; each accepted fd goes to
 * on_accept(s, aux, fd). Takes ownership of fd. */
void listen_here(struct shard *s, int fd, listen_fn on_accept, uint16_t aux);

/* Descriptors kept back for the listeners that do not yield (the control port) and for
 * the connections the process makes itself: a LISTEN_YIELD listener stops accepting while
 * the process's descriptors are within this many of the open-file limit (at most a
 * quarter of the limit). */
#define LOOP_FD_RESERVE 64
enum listen_flags {
	LISTEN_YIELD = 1, /* leave the reserve alone: pause at it (a data-plane listener) */
};
/* listen_here() with flags (LISTEN_*). A yielding listener that accepts a descriptor
 * within the reserve closes it with a reset, pauses, and resumes by itself (checked
 * every tick) once the process's descriptors are below the reserve again. */
void listen_here_flags(struct shard *s, int fd, listen_fn on_accept, uint16_t aux,
                       uint16_t flags);

/* Is fd (just allocated) within margin of the open-file limit? Descriptors are
 * allocated lowest first, so the process holds at least fd of them. false when the
 * limit is unknown. */
bool loop_fd_near_limit(const struct shard *s, int fd, int margin);

/* For a driver that runs a shard without its thread (fuzz/lane.c: no sockets, the driver
 * plays the kernel): deliver one completion as the loop does, run the 250 ms tick, end a
 * loop turn (flush the deferred connections, finalize the reaped ones). shard_main does
 * the same; these only expose it. */
void shard_dispatch(struct shard *s, struct io_uring_cqe *cqe);
void shard_tick(struct shard *s);
void shard_turn_end(struct shard *s);

/* Four random bytes (masking keys). */
void shard_random4(struct shard *s, uint8_t out[4]);

uint64_t mono_ms(void);
uint64_t mono_ns(void);

#endif
