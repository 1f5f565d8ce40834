/* tests/engine/mux/credit.c — a stream's credit arithmetic (engine/mux/credit.h,
 * docs/PROTOCOL.md §5): the lane share, what is granted back and when, and the two checks
 * that keep a broken peer from overrunning the receiver's buffer or the sender's counter. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "engine/mux/credit.h"

#define KIB 1024u
#define MIB (1024u * 1024)

/* ---- credit_target: the share a stream may hold ----------------------------------- */

Test(credit_target, alone_on_the_lane_gets_the_whole_window)
{
	cr_assert_eq(credit_target(MIB, 1), MIB);
	cr_assert_eq(credit_target(UINT32_MAX, 1), UINT32_MAX);
	cr_assert_eq(credit_target(4 * KIB, 1), 4 * KIB);
}

Test(credit_target, no_streams_counts_as_one)
{
	cr_assert_eq(credit_target(MIB, 0), MIB, "n = 0 must not divide by zero");
	cr_assert_eq(credit_target(4 * KIB, 0), 4 * KIB);
	cr_assert_eq(credit_target(0, 0), 0);
}

Test(credit_target, equal_share_above_the_floor)
{
	uint32_t w = 8 * MIB;
	cr_assert_eq(credit_target(w, 2), 4 * MIB);
	cr_assert_eq(credit_target(w, 3), w / 3, "rounds down, never over the window");
	cr_assert_eq(credit_target(w, 8), MIB);
	cr_assert_eq(credit_target(w, 32), CREDIT_SHARE_MIN, "8 MiB / 32 is the floor exactly");
}

/* The floor is min(window, CREDIT_SHARE_MIN): the share never drops below it however many
 * streams share the lane, and the boundary where window / n crosses it is exact. */
Test(credit_target, floor_at_every_boundary)
{
	uint32_t w = MIB; /* 4 * CREDIT_SHARE_MIN */
	cr_assert_eq(credit_target(w, 3), w / 3);
	cr_assert_gt(w / 3, CREDIT_SHARE_MIN);
	cr_assert_eq(credit_target(w, 4), CREDIT_SHARE_MIN, "window / n == floor");
	cr_assert_eq(credit_target(w, 5), CREDIT_SHARE_MIN, "window / n just under the floor");
	cr_assert_eq(credit_target(w, 1000), CREDIT_SHARE_MIN);
	cr_assert_eq(credit_target(w, UINT32_MAX), CREDIT_SHARE_MIN);

	/* One byte either side of the crossing: window / 4 is floor + 1, then floor. */
	w = 4 * CREDIT_SHARE_MIN + 4;
	cr_assert_eq(credit_target(w, 4), CREDIT_SHARE_MIN + 1);
	cr_assert_eq(credit_target(w - 1, 4), CREDIT_SHARE_MIN, "(4 * floor + 3) / 4 == floor");
	cr_assert_eq(credit_target(w, 5), CREDIT_SHARE_MIN);

	cr_assert_eq(credit_target(UINT32_MAX, 2), UINT32_MAX / 2);
	cr_assert_eq(credit_target(UINT32_MAX, UINT32_MAX), CREDIT_SHARE_MIN);
}

/* A window at or below CREDIT_SHARE_MIN is never split: every stream may hold all of it
 * (the floor is the window itself, never more than the window). */
Test(credit_target, window_at_or_under_the_floor_is_not_split)
{
	uint32_t ws[] = {0, 1, 4 * KIB, 100000, CREDIT_SHARE_MIN - 1, CREDIT_SHARE_MIN};
	uint32_t ns[] = {1, 2, 3, 7, 64, 1000, UINT32_MAX};
	for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++)
		for (size_t j = 0; j < sizeof(ns) / sizeof(ns[0]); j++)
			cr_assert_eq(credit_target(ws[i], ns[j]), ws[i],
			             "window %u, %u streams", ws[i], ns[j]);
	cr_assert_eq(credit_target(CREDIT_SHARE_MIN + 1, 2), CREDIT_SHARE_MIN,
	             "just over the floor: split, held at the floor");
}

/* The share is never above the window (the receiver's buffer is one window per stream)
 * and never rises as streams are added. */
Test(credit_target, never_above_the_window_never_rises_with_n)
{
	uint32_t ws[] = {1,   4 * KIB,     CREDIT_SHARE_MIN, CREDIT_SHARE_MIN + 1,
	                 MIB, 3 * MIB + 7, UINT32_MAX};
	for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
		uint32_t prev = credit_target(ws[i], 1);
		for (uint32_t n = 1; n <= 4096; n++) {
			uint32_t t = credit_target(ws[i], n);
			cr_assert_leq(t, ws[i], "window %u, %u streams", ws[i], n);
			cr_assert_leq(t, prev, "window %u: %u streams get more than %u", ws[i],
			              n, n - 1);
			cr_assert_geq(t, ws[i] < CREDIT_SHARE_MIN ? ws[i] : CREDIT_SHARE_MIN);
			prev = t;
		}
	}
}

/* ---- credit_grant: what to give back now ------------------------------------------ */

/* A stream holding its share (or more, after other streams joined the lane) gets nothing,
 * even when drained: the peer then still has at least `target` of credit, so it is not
 * stalled. */
Test(credit_grant, nothing_at_or_over_the_target)
{
	uint32_t t = MIB;
	cr_assert_eq(credit_grant(t, t, 0, MIB), 0, "outstanding == target");
	cr_assert_eq(credit_grant(t, t - 10, 10, MIB), 0, "outstanding + buffered == target");
	cr_assert_eq(credit_grant(t, t + 1, 0, MIB), 0, "over the target");
	cr_assert_eq(credit_grant(t, 0, t + 1, MIB), 0, "buffered alone over the target");
	cr_assert_eq(credit_grant(t, t - 1, 0, MIB), 0,
	             "one byte under, the peer holding more than a batch: not yet");
	cr_assert_eq(credit_grant(t, t - t / 8, 0, MIB), t / 8, "a batch under: the batch");
}

Test(credit_grant, nothing_unacked_nothing_granted)
{
	cr_assert_eq(credit_grant(MIB, 0, 0, 0), 0);
	cr_assert_eq(credit_grant(MIB, 0, 100, 0), 0);
	cr_assert_eq(credit_grant(0, 0, 0, 100), 0, "a zero target grants nothing");
}

/* Never more than was written and not yet given back, never more than the room under the
 * target. */
Test(credit_grant, clamped_to_unacked_and_to_the_room)
{
	uint32_t t = MIB;
	cr_assert_eq(credit_grant(t, 0, 0, 5000), 5000, "all of unacked fits");
	cr_assert_eq(credit_grant(t, 100, 0, UINT32_MAX), t - 100, "room under the target");
	cr_assert_eq(credit_grant(t, 300 * KIB, 200 * KIB, UINT32_MAX), t - 500 * KIB);
	cr_assert_eq(credit_grant(t, 300 * KIB, 200 * KIB, 400 * KIB), 400 * KIB,
	             "unacked smaller than the room");
	cr_assert_eq(credit_grant(t, 300 * KIB, 200 * KIB, t - 500 * KIB), t - 500 * KIB,
	             "unacked == room");
}

/* With bytes still buffered, credit goes back in batches of at least target / 8 (fewer,
 * larger WINDOW messages). */
Test(credit_grant, batches_of_an_eighth_while_buffered)
{
	uint32_t t = MIB, b = t / 8; /* 131072 */
	uint32_t buffered = 64 * KIB;
	cr_assert_eq(credit_grant(t, 0, buffered, b - 1), 0, "k = target/8 - 1: wait");
	cr_assert_eq(credit_grant(t, 0, buffered, b), b, "k = target/8: grant");
	cr_assert_eq(credit_grant(t, 0, buffered, b + 1), b + 1, "k = target/8 + 1: grant");
	cr_assert_eq(credit_grant(t, 0, 1, 1), 0, "one byte buffered still batches");

	/* The batch is k after the clamp to the room, not unacked. */
	cr_assert_eq(credit_grant(t, t - buffered - (b - 1), buffered, MIB), 0,
	             "room of target/8 - 1: wait");
	cr_assert_eq(credit_grant(t, t - buffered - b, buffered, MIB), b, "room of target/8");

	/* A target not divisible by 8 rounds the batch down. */
	t = 1000003; /* t / 8 == 125000 */
	cr_assert_eq(credit_grant(t, 0, 1, 124999), 0);
	cr_assert_eq(credit_grant(t, 0, 1, 125000), 125000);

	/* A target under 8 bytes has no batch: anything due is granted. */
	cr_assert_eq(credit_grant(7, 0, 1, 1), 1);
}

/* The invariant that keeps a stream from stalling: when nothing is buffered and the peer's
 * remaining credit is under a batch (in particular when it is 0: the peer cannot send at
 * all), whatever is due is granted at once, however small. */
Test(credit_grant, drained_stream_whose_peer_runs_low_always_gets_credit)
{
	uint32_t t = MIB, b = t / 8;
	cr_assert_eq(credit_grant(t, 0, 0, 1), 1);
	cr_assert_eq(credit_grant(t, 0, 0, b - 1), b - 1);
	cr_assert_eq(credit_grant(t, b - 1, 0, 1), 1, "outstanding one byte under a batch");

	/* Every (target, outstanding under a batch, unacked) with unacked > 0 grants, and
	 * outstanding 0 with unacked > 0 grants for every target > 0. */
	uint32_t ts[] = {1, 7, 8, 9, 4 * KIB, CREDIT_SHARE_MIN, MIB, 3 * MIB + 7, UINT32_MAX};
	for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
		uint32_t bt = ts[i] / 8;
		uint32_t outs[] = {0, 1, bt / 2, bt ? bt - 1 : 0};
		uint32_t acks[] = {1, 2, bt > 1 ? bt - 1 : 1, bt + 1, ts[i], UINT32_MAX};
		for (size_t j = 0; j < sizeof(outs) / sizeof(outs[0]); j++) {
			if (outs[j] && outs[j] >= bt)
				continue;
			for (size_t k = 0; k < sizeof(acks) / sizeof(acks[0]); k++) {
				uint32_t g = credit_grant(ts[i], outs[j], 0, acks[k]);
				uint32_t room = ts[i] - outs[j];
				cr_assert_eq(g, acks[k] < room ? acks[k] : room,
				             "target %u outstanding %u unacked %u", ts[i],
				             outs[j], acks[k]);
				cr_assert_gt(g, 0);
			}
		}
	}
}

/* A drained stream whose peer still holds a batch of credit or more is not stalled (the
 * peer can send; what it sends comes back here once written): credit waits for a batch,
 * so small requests do not each cost a WINDOW message. */
Test(credit_grant, drained_stream_with_credit_left_waits_for_a_batch)
{
	uint32_t t = CREDIT_SHARE_MIN, b = t / 8;
	cr_assert_eq(credit_grant(t, t - KIB, 0, KIB), 0, "1 KiB written: not yet");
	cr_assert_eq(credit_grant(t, b, 0, b - 1), 0, "outstanding exactly a batch");
	cr_assert_eq(credit_grant(t, t - b, 0, b), b, "a batch written: granted");
	cr_assert_eq(credit_grant(t, t - b - 1, 0, b + 1), b + 1);
}

/* A request/response stream: the peer sends 1 KiB, the receiver writes it, again and
 * again. Alone on a lane of a 256 KiB window it gets one WINDOW per batch (32 KiB), not
 * one per request, and the peer's credit never runs out. */
Test(credit_grant, small_writes_one_window_per_batch)
{
	uint32_t target = CREDIT_SHARE_MIN, outstanding = target, unacked = 0, credit = target;
	uint32_t windows = 0, requests = 10000;
	for (uint32_t r = 0; r < requests; r++) {
		cr_assert_geq(credit, KIB, "request %u: the peer ran out of credit", r);
		credit -= KIB;
		outstanding -= KIB; /* DATA received */
		unacked += KIB;     /* ... and written */
		uint32_t k = credit_grant(target, outstanding, 0, unacked);
		if (k) {
			windows++;
			unacked -= k;
			outstanding += k;
			credit += k;
		}
	}
	cr_assert_leq(windows, requests / 32 + 1, "%u WINDOW messages for %u requests", windows,
	              requests);
	cr_assert_geq(windows, requests / 32 - 1);
}

/* outstanding + buffered is summed wide: a sum past 2^32 is over any target, never a
 * wrapped small number that would hand the peer gigabytes of credit. */
Test(credit_grant, no_overflow_past_32_bits)
{
	cr_assert_eq(credit_grant(UINT32_MAX, UINT32_MAX, 2, 1000), 0);
	cr_assert_eq(credit_grant(MIB, 0x80000000u, 0x80000000u, MIB), 0,
	             "sum is 2^32 exactly");
	cr_assert_eq(credit_grant(MIB, UINT32_MAX, UINT32_MAX, UINT32_MAX), 0);
	cr_assert_eq(credit_grant(UINT32_MAX, UINT32_MAX - 5, 5, 1), 0, "sum == target");
	cr_assert_eq(credit_grant(UINT32_MAX, UINT32_MAX - 1, 0, 7), 0,
	             "one byte of room, the peer holding more than a batch");
	cr_assert_eq(credit_grant(UINT32_MAX, 0, UINT32_MAX - 1, UINT32_MAX), 0,
	             "one byte of room with bytes buffered: under a batch");
	cr_assert_eq(credit_grant(UINT32_MAX, 1, 0, 7), 7, "the peer nearly out: all due");
	cr_assert_eq(credit_grant(UINT32_MAX, 0, 0, UINT32_MAX), UINT32_MAX);
}

/* ---- credit_overrun: a peer sending past its credit -------------------------------- */

Test(credit_overrun, exactly_the_credit_is_fine_one_more_overruns)
{
	cr_assert_not(credit_overrun(MIB, MIB));
	cr_assert(credit_overrun(MIB, (size_t)MIB + 1));
	cr_assert_not(credit_overrun(MIB, 0));
	cr_assert_not(credit_overrun(MIB, 1));
	cr_assert_not(credit_overrun(0, 0), "an empty DATA with no credit left");
	cr_assert(credit_overrun(0, 1), "one byte with no credit left");
	cr_assert_not(credit_overrun(UINT32_MAX, UINT32_MAX));
}

/* A payload length is a size_t: one past 32 bits must not wrap to a small number. */
Test(credit_overrun, no_truncation_of_the_length)
{
	cr_assert(credit_overrun(UINT32_MAX, (size_t)UINT32_MAX + 1));
	cr_assert(credit_overrun(0, (size_t)1 << 32), "2^32 truncated would be 0");
	cr_assert(credit_overrun(5, ((size_t)1 << 32) + 5), "2^32 + 5 truncated would be 5");
	cr_assert(credit_overrun(MIB, SIZE_MAX));
}

/* ---- credit_add: a WINDOW increment at the sender ---------------------------------- */

Test(credit_add, sum_up_to_uint32_max)
{
	uint32_t c = 0;
	cr_assert(credit_add(&c, UINT32_MAX));
	cr_assert_eq(c, UINT32_MAX);

	c = 1000;
	cr_assert(credit_add(&c, UINT32_MAX - 1000), "sum exactly UINT32_MAX");
	cr_assert_eq(c, UINT32_MAX);

	c = 1000;
	cr_assert(credit_add(&c, 24));
	cr_assert_eq(c, 1024);

	cr_assert(credit_add(&c, 0), "a zero increment");
	cr_assert_eq(c, 1024);
	c = UINT32_MAX;
	cr_assert(credit_add(&c, 0));
	cr_assert_eq(c, UINT32_MAX);
}

Test(credit_add, past_uint32_max_refused_credit_unchanged)
{
	uint32_t c = 1000;
	cr_assert_not(credit_add(&c, UINT32_MAX - 999), "sum UINT32_MAX + 1");
	cr_assert_eq(c, 1000, "credit unchanged");

	c = UINT32_MAX;
	cr_assert_not(credit_add(&c, 1));
	cr_assert_eq(c, UINT32_MAX);

	c = UINT32_MAX;
	cr_assert_not(credit_add(&c, UINT32_MAX));
	cr_assert_eq(c, UINT32_MAX);

	c = 0x80000000u;
	cr_assert_not(credit_add(&c, 0x80000000u), "sum 2^32 would wrap to 0");
	cr_assert_eq(c, 0x80000000u);
}

/* ---- a sender and a receiver exchanging DATA and WINDOW ---------------------------- */

/* One lane, one direction: the sender sends bulk DATA on every stream within its credit,
 * the receiver buffers it, writes it to its sockets (some fast, some slow) and grants credit
 * back with credit_grant as the engine does (after each write, and on a tick). Messages
 * travel in order, each after a delay. Deterministic: a fixed-seed generator. */

#define SIM_MAX_STREAMS 64
#define SIM_MAX_MSGS 4096
#define SIM_STEPS 2000000

struct sim_msg {
	bool window; /* else DATA */
	uint32_t stream;
	uint32_t n;
};

struct sim_queue {
	struct sim_msg m[SIM_MAX_MSGS];
	uint32_t head, len;
};

struct sim_stream {
	/* sender */
	uint64_t to_send; /* bytes left to send */
	uint32_t credit;
	/* receiver */
	uint32_t outstanding; /* what the receiver knows the peer may still send */
	uint32_t buffered;    /* received, not yet written to the socket */
	uint32_t unacked;     /* written, not yet granted back */
	uint64_t written;
	uint32_t drain; /* the socket takes up to this many bytes per write */
	bool open;      /* counted in nstreams */
	/* in flight, both ways */
	uint32_t inflight;
};

struct sim {
	uint32_t window, nstreams, total;
	uint64_t rng;
	struct sim_stream st[SIM_MAX_STREAMS];
	struct sim_queue fwd, back; /* DATA to the receiver, WINDOW to the sender */
	uint64_t max_grant_hold;    /* the largest hold right after a grant */
};

static uint32_t sim_rand(struct sim *s, uint32_t below)
{
	s->rng = s->rng * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)((s->rng >> 33) % below);
}

static void sim_push(struct sim_queue *q, struct sim_msg m)
{
	cr_assert_lt(q->len, SIM_MAX_MSGS, "simulation queue full");
	q->m[(q->head + q->len++) % SIM_MAX_MSGS] = m;
}

static struct sim_msg sim_pop(struct sim_queue *q)
{
	struct sim_msg m = q->m[q->head];
	q->head = (q->head + 1) % SIM_MAX_MSGS;
	q->len--;
	return m;
}

/* The receiver's hold on a stream: what the peer may still send plus what waits in its
 * buffer. Its buffer is one window (engine/mux/recv.c), so this must never pass it. */
static uint64_t sim_hold(const struct sim_stream *st)
{
	return (uint64_t)st->outstanding + st->buffered;
}

static void sim_check_hold(struct sim *s, uint32_t i)
{
	uint64_t hold = sim_hold(&s->st[i]);
	cr_assert_leq(hold, s->window, "stream %u holds %llu of a %u window", i,
	              (unsigned long long)hold, s->window);
}

/* The receiver's stream_grant. */
static void sim_grant(struct sim *s, uint32_t i)
{
	struct sim_stream *st = &s->st[i];
	if (!st->unacked)
		return;
	uint32_t target = credit_target(s->window, s->nstreams);
	uint32_t k = credit_grant(target, st->outstanding, st->buffered, st->unacked);
	if (!k)
		return;
	cr_assert_leq(k, st->unacked, "granted more than was written");
	/* The share as docs/PROTOCOL.md §5.3 states it, worked out here, not by credit.h. */
	uint32_t share = s->window / s->nstreams;
	uint32_t floor = s->window < 256 * KIB ? s->window : 256 * KIB;
	uint32_t limit = share > floor ? share : floor;
	cr_assert_leq(sim_hold(st) + k, limit,
	              "a grant lifted stream %u (of %u) over its share %u", i, s->nstreams,
	              limit);
	st->unacked -= k;
	st->outstanding += k;
	st->inflight++;
	sim_push(&s->back, (struct sim_msg){.window = true, .stream = i, .n = k});
	sim_check_hold(s, i);
	if (sim_hold(st) > s->max_grant_hold)
		s->max_grant_hold = sim_hold(st);
}

static void sim_send(struct sim *s, uint32_t i)
{
	struct sim_stream *st = &s->st[i];
	if (!st->credit || !st->to_send || s->fwd.len >= SIM_MAX_MSGS / 2)
		return;
	uint32_t quantum = 256 * KIB;
	uint32_t n = 1 + sim_rand(s, quantum);
	if (n > st->credit)
		n = st->credit;
	if (n > st->to_send)
		n = (uint32_t)st->to_send;
	st->credit -= n;
	st->to_send -= n;
	st->inflight++;
	sim_push(&s->fwd, (struct sim_msg){.stream = i, .n = n});
}

static void sim_deliver_data(struct sim *s)
{
	struct sim_msg m = sim_pop(&s->fwd);
	struct sim_stream *st = &s->st[m.stream];
	st->inflight--;
	cr_assert_not(credit_overrun(st->outstanding, m.n),
	              "an honest sender overran stream %u: %u with %u outstanding", m.stream,
	              m.n, st->outstanding);
	st->outstanding -= m.n;
	st->buffered += m.n;
	sim_check_hold(s, m.stream);
}

static void sim_deliver_window(struct sim *s)
{
	struct sim_msg m = sim_pop(&s->back);
	struct sim_stream *st = &s->st[m.stream];
	st->inflight--;
	cr_assert(credit_add(&st->credit, m.n), "an honest receiver's WINDOW refused");
	cr_assert_leq(st->credit, s->window, "sender credit above one window");
}

static void sim_write(struct sim *s, uint32_t i)
{
	struct sim_stream *st = &s->st[i];
	if (!st->buffered)
		return;
	uint32_t n = 1 + sim_rand(s, st->drain);
	if (n > st->buffered)
		n = st->buffered;
	st->buffered -= n;
	st->unacked += n;
	st->written += n;
	sim_grant(s, i);
}

/* A stream is starved when it has bytes to send but no credit, nothing of it is in flight
 * either way and the receiver has nothing buffered to write for it: nothing will ever
 * move it again. */
static void sim_check_starved(struct sim *s)
{
	for (uint32_t i = 0; i < s->total; i++) {
		struct sim_stream *st = &s->st[i];
		bool stuck = st->to_send && !st->credit && !st->inflight && !st->buffered;
		cr_assert_not(st->open && stuck, "stream %u starved: %llu to send, unacked %u",
		              i, (unsigned long long)st->to_send, st->unacked);
	}
}

/* Run `total` streams of `bytes` each over a `window` lane. Streams open one by one over
 * the first steps when `staggered` (each with a whole window, as the engine opens them, so
 * shares shrink under streams already holding more); a stream that has delivered all its
 * bytes leaves the lane (the others' shares grow, the tick gives them what was held back).
 * Every stream must deliver all its bytes; no hold may pass the window, no grant the share. */
static void sim_run(uint32_t window, uint32_t total, uint64_t bytes, bool staggered)
{
	struct sim *s = calloc(1, sizeof(*s));
	cr_assert_not_null(s);
	s->window = window;
	s->total = total;
	s->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)window << 8) ^ total;
	for (uint32_t i = 0; i < total; i++) {
		struct sim_stream *st = &s->st[i];
		st->to_send = bytes;
		st->credit = st->outstanding = window;
		/* Every fourth stream's socket is slow: a few bytes per write. */
		st->drain = i % 4 == 3 ? 1 + window / 64 : 1 + window / 2;
	}
	uint32_t opened = 0, finished = 0;
	uint64_t step;
	for (step = 0; step < SIM_STEPS && finished < total; step++) {
		if (opened < total && (!staggered || step % 50 == 0)) {
			s->st[opened++].open = true;
			s->nstreams++;
			continue;
		}
		uint32_t i = sim_rand(s, opened);
		if (!s->st[i].open)
			continue;
		switch (sim_rand(s, 8)) {
		case 0:
		case 1:
			sim_send(s, i);
			break;
		case 2:
		case 3:
			if (s->fwd.len)
				sim_deliver_data(s);
			break;
		case 4:
		case 5:
			if (s->back.len)
				sim_deliver_window(s);
			break;
		case 6:
			sim_write(s, i);
			break;
		case 7: /* the tick: credit held back is given when it is due */
			if (step % 97 == 0)
				for (uint32_t j = 0; j < opened; j++)
					if (s->st[j].open)
						sim_grant(s, j);
			break;
		}
		if (s->st[i].open && s->st[i].written == bytes) {
			s->st[i].open = false;
			s->nstreams--;
			finished++;
		}
		if (step % 64 == 0)
			sim_check_starved(s);
	}
	for (uint32_t i = 0; i < total; i++)
		cr_assert_eq(s->st[i].written, bytes,
		             "window %u, %u streams: stream %u delivered %llu of %llu in %llu "
		             "steps",
		             window, total, i, (unsigned long long)s->st[i].written,
		             (unsigned long long)bytes, (unsigned long long)step);
	/* Alone on the lane a drained stream is given the whole window back, not a share. */
	if (total == 1)
		cr_assert_eq(s->max_grant_hold, window);
	free(s);
}

static const uint32_t sim_windows[] = {4 * KIB, CREDIT_SHARE_MIN, MIB, 3 * MIB + 7};
static const uint32_t sim_counts[] = {1, 2, 3, 4, 5, 8, 16, 64};

Test(credit_sim, receiver_never_holds_more_than_the_window_no_stream_starves)
{
	for (size_t w = 0; w < sizeof(sim_windows) / sizeof(sim_windows[0]); w++)
		for (size_t n = 0; n < sizeof(sim_counts) / sizeof(sim_counts[0]); n++)
			sim_run(sim_windows[w], sim_counts[n], 3ull * sim_windows[w] + 12345,
			        false);
}

Test(credit_sim, streams_joining_and_leaving_a_busy_lane)
{
	for (size_t w = 0; w < sizeof(sim_windows) / sizeof(sim_windows[0]); w++)
		for (size_t n = 1; n < sizeof(sim_counts) / sizeof(sim_counts[0]); n++)
			sim_run(sim_windows[w], sim_counts[n], 3ull * sim_windows[w] + 12345,
			        true);
}
