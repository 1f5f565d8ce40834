/* engine/mux/dbuf.h — a stream's down side (tunnel -> socket): a ring buffer of `cap`
 * bytes and, on the splice path, a pipe, with one order on the socket. Pure bookkeeping:
 * the caller moves the bytes (copy into dbuf_tail(), send from dbuf_next(), splice from
 * the pipe) and reports what moved. Tested in tests/engine/mux/dbuf.c.
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

struct dbuf {
	uint8_t *buf;   /* cap bytes (heap, allocated by the owner on first use) */
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
static inline uint8_t *dbuf_tail(const struct dbuf *d, uint32_t cap, uint32_t *room)
{
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
static inline enum dbuf_next dbuf_next(const struct dbuf *d, uint32_t cap, uint8_t **p,
                                       uint32_t *len)
{
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
static inline void dbuf_sent_buf(struct dbuf *d, uint32_t cap, uint32_t n)
{
	d->head = (d->head + n) % cap;
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

#endif
