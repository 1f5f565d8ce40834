/* engine/mux/dbuf.h — a stream's down side (tunnel -> socket): a ring buffer of `cap`
 * bytes and, on the splice path, a pipe, with one order on the socket. Pure bookkeeping:
 * the caller moves the bytes (copy into dbuf_tail(), send from dbuf_next(), splice from
 * the pipe) and reports what moved, and allocates the buffer: it grows with what is held
 * (dbuf_grow_to, dbuf_move) and may be freed whenever nothing is buffered (dbuf_drop).
 * Tested in tests/engine/mux/dbuf.c.
 *
 * The ordering rule (haproxy's channel has the same one): a pipe takes new bytes only
 * while it is empty; the buffer's bytes that were there when it was filled go out first
 * (`first` of them), then the pipe, then the rest of the buffer. So bytes that arrive
 * while the pipe still holds some (a slow reader) are buffered *behind* the pipe, and the
 * socket sees the peer's byte order whatever path each byte took. Pipe bytes count
 * against the window like buffered ones (dbuf_held). */
#ifndef RINGLET_ENGINE_MUX_DBUF_H
#define RINGLET_ENGINE_MUX_DBUF_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct dbuf {
	uint8_t *buf;   /* cap bytes (heap, allocated by the owner on demand), or NULL */
	uint32_t cap;   /* 0 while buf is NULL */
	uint32_t head;  /* offset of the oldest buffered byte */
	uint32_t len;   /* buffered bytes */
	uint32_t piped; /* bytes in the pipe */
	uint32_t first; /* buffered bytes that go out before the pipe's (when piped) */
};

/* Bytes held for the socket: buffered and piped. */
static inline uint32_t dbuf_held(const struct dbuf *d)
{
	return d->len + d->piped;
}

/* Where the next k <= *room buffered bytes go: *room is the contiguous free space from
 * there (0 when the buffer is full). Follow with dbuf_wrote(k). */
static inline uint8_t *dbuf_tail(const struct dbuf *d, uint32_t *room)
{
	uint32_t cap = d->cap;
	if (!cap) {
		*room = 0;
		return d->buf;
	}
	uint32_t tail = (d->head + d->len) % cap;
	*room = d->len == cap ? 0 : tail >= d->head ? cap - tail : d->head - tail;
	return d->buf + tail;
}
static inline void dbuf_wrote(struct dbuf *d, uint32_t k)
{
	d->len += k;
}

/* May the pipe take bytes now (it is empty)? Then n bytes went into it: they follow the
 * bytes buffered so far. */
static inline bool dbuf_pipe_open(const struct dbuf *d)
{
	return d->piped == 0;
}
static inline void dbuf_piped_in(struct dbuf *d, uint32_t n)
{
	d->first = d->len;
	d->piped = n;
}

enum dbuf_next {
	DBUF_NONE, /* nothing held */
	DBUF_PIPE, /* the pipe's bytes are next (all of d->piped) */
	DBUF_BUF,  /* buffered bytes are next: *len from *p, contiguous */
};

/* What goes to the socket next. */
static inline enum dbuf_next dbuf_next(const struct dbuf *d, uint8_t **p, uint32_t *len)
{
	uint32_t cap = d->cap;
	if (d->piped && d->first == 0)
		return DBUF_PIPE;
	if (d->len == 0) /* then first is 0 too: the pipe went above */
		return DBUF_NONE;
	uint32_t n = d->len;
	if (d->piped && n > d->first)
		n = d->first;
	if (d->head + n > cap)
		n = cap - d->head;
	*p = d->buf + d->head;
	*len = n;
	return DBUF_BUF;
}

/* n buffered bytes (from dbuf_next's DBUF_BUF) reached the socket. */
static inline void dbuf_sent_buf(struct dbuf *d, uint32_t n)
{
	d->head = (d->head + n) % d->cap;
	d->len -= n;
	if (d->piped)
		d->first -= n;
	if (d->len == 0)
		d->head = 0;
}

/* n piped bytes reached the socket. */
static inline void dbuf_sent_pipe(struct dbuf *d, uint32_t n)
{
	d->piped -= n;
}

/* ---- sized by demand ----------------------------------------------------------------- */

#define DBUF_MIN (16u * 1024) /* the smallest buffer allocated */

/* The capacity to allocate so that n more bytes fit, never above max (the window: the
 * credit keeps what is held within it), or 0 when they fit already. Powers of two from
 * DBUF_MIN, so a stream that backs up grows in a few steps. */
static inline uint32_t dbuf_grow_to(const struct dbuf *d, uint32_t n, uint32_t max)
{
	uint64_t need = (uint64_t)d->len + n;
	if (need <= d->cap)
		return 0;
	uint64_t c = DBUF_MIN;
	while (c < need)
		c *= 2;
	if (c > max)
		c = max > need ? max : need;
	return (uint32_t)c;
}

/* Move the buffered bytes, in order, to the start of to (cap bytes, >= d->len) and make it
 * the buffer. Returns the old buffer, for the owner to free. */
static inline uint8_t *dbuf_move(struct dbuf *d, uint8_t *to, uint32_t cap)
{
	uint8_t *old = d->buf;
	uint32_t a = d->len;
	if (a && d->head + a > d->cap)
		a = d->cap - d->head;
	if (a)
		memcpy(to, d->buf + d->head, a);
	if (d->len > a)
		memcpy(to + a, d->buf, d->len - a);
	d->buf = to;
	d->cap = cap;
	d->head = 0;
	return old;
}

/* The capacity to move to when the buffer is mostly empty (at most a quarter used) and
 * what it holds plus `room` more bytes (the credit the peer still has) fit in half of it
 * or less, or 0 to keep it: a stream that backed up in a burst gives the memory back as
 * its share of the window settles. */
static inline uint32_t dbuf_shrink_to(const struct dbuf *d, uint32_t room)
{
	if (d->cap <= DBUF_MIN || d->len > d->cap / 4)
		return 0;
	uint64_t need = (uint64_t)d->len + room, c = DBUF_MIN;
	while (c < need)
		c *= 2;
	return c <= d->cap / 2 ? (uint32_t)c : 0;
}

/* Nothing is buffered (pipe bytes may be): the buffer can go. Returns it, for the owner to
 * free, or NULL. */
static inline uint8_t *dbuf_drop(struct dbuf *d)
{
	if (d->len)
		return NULL;
	uint8_t *old = d->buf;
	d->buf = NULL;
	d->cap = d->head = 0;
	return old;
}

#endif
