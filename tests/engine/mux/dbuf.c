/* tests/engine/mux/dbuf.c — a stream's down side (engine/mux/dbuf.h): whatever mix of
 * buffered and piped bytes arrives, and however little the socket takes at a time, the
 * socket gets the bytes in the order the peer sent them, and no more are held than
 * arrived. */
#include <criterion/criterion.h>
#include <string.h>

#include "engine/mux/dbuf.h"

#define CAP 64

/* A model: bytes numbered in arrival order go either into the buffer or into the pipe
 * (when it is open); the socket takes at most `take` bytes per send. */
struct model {
	struct dbuf d;
	uint8_t mem[CAP];
	uint8_t pipe[CAP];
	uint32_t pipe_off;
	uint8_t sock[4096];
	uint32_t nsock;
	uint8_t next; /* the next byte value the peer sends */
	uint32_t sent;
};

static void init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	m->d.buf = m->mem;
	m->d.cap = CAP;
}

/* n bytes arrive and are buffered (as much as fits: the window keeps it within). */
static uint32_t buffer_in(struct model *m, uint32_t n)
{
	uint32_t done = 0;
	while (done < n) {
		uint32_t room;
		uint8_t *to = dbuf_tail(&m->d, &room);
		if (!room)
			break;
		uint32_t k = n - done < room ? n - done : room;
		for (uint32_t i = 0; i < k; i++)
			to[i] = m->next++;
		dbuf_wrote(&m->d, k);
		done += k;
	}
	m->sent += done;
	return done;
}

/* n bytes arrive and go into the pipe (only when it is open). */
static bool pipe_in(struct model *m, uint32_t n)
{
	if (!dbuf_pipe_open(&m->d))
		return false;
	for (uint32_t i = 0; i < n; i++)
		m->pipe[i] = m->next++;
	m->pipe_off = 0;
	dbuf_piped_in(&m->d, n);
	m->sent += n;
	return true;
}

/* The socket takes up to `take` bytes of what is next. */
static bool drain_once(struct model *m, uint32_t take)
{
	uint8_t *p;
	uint32_t len;
	switch (dbuf_next(&m->d, &p, &len)) {
	case DBUF_NONE:
		return false;
	case DBUF_PIPE: {
		uint32_t k = m->d.piped < take ? m->d.piped : take;
		memcpy(m->sock + m->nsock, m->pipe + m->pipe_off, k);
		m->pipe_off += k;
		m->nsock += k;
		dbuf_sent_pipe(&m->d, k);
		return true;
	}
	case DBUF_BUF: {
		cr_assert_gt(len, 0);
		cr_assert_leq(p + len, m->mem + CAP,
		              "a chunk never runs past the buffer's end");
		uint32_t k = len < take ? len : take;
		memcpy(m->sock + m->nsock, p, k);
		m->nsock += k;
		dbuf_sent_buf(&m->d, k);
		return true;
	}
	}
	return false;
}

static void check_order(const struct model *m)
{
	for (uint32_t i = 0; i < m->nsock; i++)
		cr_assert_eq(m->sock[i], (uint8_t)i, "socket byte %u is the peer's byte %u", i,
		             i);
}

Test(dbuf, buffered_before_the_pipe_go_first_then_the_pipe_then_the_rest)
{
	static struct model m;
	init(&m);
	buffer_in(&m, 10);
	cr_assert(pipe_in(&m, 5));
	buffer_in(&m, 7); /* arrived while the pipe holds bytes: behind it */
	cr_assert_eq(dbuf_held(&m.d), 22);
	cr_assert_not(pipe_in(&m, 1), "a pipe with bytes takes no more");
	while (drain_once(&m, 3))
		;
	cr_assert_eq(m.nsock, 22);
	check_order(&m);
	cr_assert_eq(dbuf_held(&m.d), 0);
	cr_assert(dbuf_pipe_open(&m.d));
}

Test(dbuf, pipe_alone_and_empty)
{
	static struct model m;
	init(&m);
	uint8_t *p;
	uint32_t len;
	cr_assert_eq(dbuf_next(&m.d, &p, &len), DBUF_NONE);
	cr_assert(pipe_in(&m, 9));
	cr_assert_eq(dbuf_next(&m.d, &p, &len), DBUF_PIPE);
	while (drain_once(&m, 4))
		;
	check_order(&m);
	cr_assert_eq(m.nsock, 9);
}

Test(dbuf, wraps_around_the_buffer)
{
	static struct model m;
	init(&m);
	buffer_in(&m, 50);
	while (m.nsock < 40)
		drain_once(&m, 40 - m.nsock);
	cr_assert_eq(buffer_in(&m, 54), 54, "freed space at the front is reused");
	cr_assert_eq(dbuf_held(&m.d), CAP);
	cr_assert_eq(buffer_in(&m, 1), 0, "never more than the buffer holds");
	while (drain_once(&m, 64))
		;
	cr_assert_eq(m.nsock, 104);
	check_order(&m);
}

/* A deterministic random mix of arrivals and partial sends, many rounds. */
Test(dbuf, any_mix_keeps_the_order)
{
	static struct model m;
	for (uint32_t seed = 1; seed <= 300; seed++) {
		init(&m);
		uint32_t x = seed;
		for (int step = 0; step < 200 && m.sent < 3000; step++) {
			x = x * 1103515245u + 12345u;
			uint32_t r = (x >> 16) % 100;
			uint32_t n = 1 + (x >> 8) % 20;
			if (r < 40)
				buffer_in(&m, n);
			else if (r < 55)
				pipe_in(&m, n);
			else
				drain_once(&m, 1 + (x >> 4) % 17);
			cr_assert_leq(m.d.len, CAP);
			cr_assert_leq(m.d.first, m.d.len, "seed %u: first <= buffered", seed);
			cr_assert_eq(m.nsock + dbuf_held(&m.d), m.sent,
			             "seed %u: nothing lost, nothing made up", seed);
		}
		while (drain_once(&m, 7))
			;
		cr_assert_eq(m.nsock, m.sent, "seed %u", seed);
		check_order(&m);
	}
}

/* ---- sized by demand ---------------------------------------------------------------- */

Test(dbuf, grows_in_powers_of_two_from_the_minimum_never_past_the_window)
{
	struct dbuf d = {0};
	cr_assert_eq(dbuf_grow_to(&d, 1, 1u << 20), DBUF_MIN, "the first allocation");
	cr_assert_eq(dbuf_grow_to(&d, DBUF_MIN + 1, 1u << 20), 2 * DBUF_MIN);
	cr_assert_eq(dbuf_grow_to(&d, 300 * 1024, 1u << 20), 512 * 1024);
	cr_assert_eq(dbuf_grow_to(&d, 700 * 1024, 1u << 20), 1u << 20, "capped at the window");
	cr_assert_eq(dbuf_grow_to(&d, 5000, 6000), 6000, "a window below the minimum");
	d.cap = DBUF_MIN;
	d.len = 100;
	cr_assert_eq(dbuf_grow_to(&d, DBUF_MIN - 100, 1u << 20), 0, "fits: no growth");
	cr_assert_eq(dbuf_grow_to(&d, DBUF_MIN - 99, 1u << 20), 2 * DBUF_MIN);
}

/* Growing a wrapped buffer keeps every byte, in order, and the pipe's place. */
Test(dbuf, moving_a_wrapped_buffer_keeps_order_and_the_pipe_in_its_place)
{
	static struct model m;
	init(&m);
	buffer_in(&m, 50);
	while (m.nsock < 40)
		drain_once(&m, 40 - m.nsock);
	buffer_in(&m, 40); /* wraps: head 40, 50 bytes held */
	cr_assert(pipe_in(&m, 5));
	buffer_in(&m, 4); /* behind the pipe */
	cr_assert_gt(m.d.head + m.d.len, CAP, "the buffered bytes wrap");
	static uint8_t big[4 * CAP];
	uint32_t cap = dbuf_grow_to(&m.d, 100, 4 * CAP);
	cr_assert_eq(cap, 4 * CAP);
	uint8_t *old = dbuf_move(&m.d, big, cap);
	cr_assert_eq(old, m.mem, "the old buffer is handed back to free");
	cr_assert_eq(m.d.head, 0);
	cr_assert_eq(m.d.cap, cap);
	/* drain_once checks chunks against m->mem: point the model at the new buffer. */
	uint32_t before = m.nsock;
	uint8_t *p;
	uint32_t len;
	while (dbuf_held(&m.d)) {
		enum dbuf_next nx = dbuf_next(&m.d, &p, &len);
		if (nx == DBUF_PIPE) {
			memcpy(m.sock + m.nsock, m.pipe + m.pipe_off, m.d.piped);
			m.nsock += m.d.piped;
			dbuf_sent_pipe(&m.d, m.d.piped);
		} else {
			cr_assert_eq(nx, DBUF_BUF);
			cr_assert_leq(p + len, big + cap);
			memcpy(m.sock + m.nsock, p, len);
			m.nsock += len;
			dbuf_sent_buf(&m.d, len);
		}
	}
	cr_assert_eq(m.nsock - before, 59);
	check_order(&m);
}

Test(dbuf, dropped_only_when_nothing_is_buffered)
{
	static struct model m;
	init(&m);
	buffer_in(&m, 3);
	cr_assert_null(dbuf_drop(&m.d), "bytes are buffered: the buffer stays");
	cr_assert(pipe_in(&m, 2));
	while (m.d.len)
		drain_once(&m, 1);
	cr_assert_eq(dbuf_drop(&m.d), m.mem, "empty buffer goes, pipe bytes stay counted");
	cr_assert_eq(m.d.cap, 0);
	cr_assert_eq(dbuf_held(&m.d), 2);
	uint32_t room;
	dbuf_tail(&m.d, &room);
	cr_assert_eq(room, 0, "no buffer, no room: the owner grows it first");
	uint8_t *p;
	uint32_t len;
	cr_assert_eq(dbuf_next(&m.d, &p, &len), DBUF_PIPE);
}

Test(dbuf, shrinks_when_mostly_empty_to_what_it_holds_plus_the_credit)
{
	struct dbuf d = {.cap = 1u << 20, .len = 1000};
	cr_assert_eq(dbuf_shrink_to(&d, 200 * 1024), 256 * 1024,
	             "held + credit, a power of two");
	cr_assert_eq(dbuf_shrink_to(&d, 0), DBUF_MIN, "never below the minimum");
	cr_assert_eq(dbuf_shrink_to(&d, 600 * 1024), 0,
	             "the credit needs more than half: keep");
	d.len = (1u << 18) + 1;
	cr_assert_eq(dbuf_shrink_to(&d, 0), 0, "more than a quarter used: keep");
	d.cap = DBUF_MIN;
	d.len = 0;
	cr_assert_eq(dbuf_shrink_to(&d, 0), 0, "the minimum stays");
}
