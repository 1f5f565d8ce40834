/* proto/cursor.h — bounds-checked byte cursors for reading and writing wire formats.
 *
 * A reader never moves past its end: every get returns false instead, and leaves the
 * cursor where it was. A writer never writes past its capacity: a put that does not fit
 * returns false and marks the writer failed, so a builder can check once at the end.
 * All integers are big-endian (network order).
 */
#ifndef RINGLET_PROTO_CURSOR_H
#define RINGLET_PROTO_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cur {
	const uint8_t *p;
	size_t len;
};

struct wcur {
	uint8_t *p;
	size_t cap, len;
	bool failed;
};

static inline struct cur cur_init(const void *p, size_t len)
{
	return (struct cur){.p = p, .len = len};
}

static inline bool cur_skip(struct cur *c, size_t n)
{
	if (c->len < n)
		return false;
	c->p += n;
	c->len -= n;
	return true;
}

static inline bool cur_bytes(struct cur *c, const uint8_t **out, size_t n)
{
	if (c->len < n)
		return false;
	*out = c->p;
	c->p += n;
	c->len -= n;
	return true;
}

static inline bool cur_u8(struct cur *c, uint8_t *v)
{
	if (c->len < 1)
		return false;
	*v = c->p[0];
	c->p++;
	c->len--;
	return true;
}

static inline bool cur_u16(struct cur *c, uint16_t *v)
{
	if (c->len < 2)
		return false;
	*v = (uint16_t)((uint16_t)c->p[0] << 8 | c->p[1]);
	c->p += 2;
	c->len -= 2;
	return true;
}

static inline bool cur_u32(struct cur *c, uint32_t *v)
{
	if (c->len < 4)
		return false;
	*v = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 |
	     c->p[3];
	c->p += 4;
	c->len -= 4;
	return true;
}

static inline bool cur_u64(struct cur *c, uint64_t *v)
{
	uint32_t hi, lo;
	if (c->len < 8)
		return false;
	cur_u32(c, &hi);
	cur_u32(c, &lo);
	*v = (uint64_t)hi << 32 | lo;
	return true;
}

static inline struct wcur wcur_init(void *p, size_t cap)
{
	return (struct wcur){.p = p, .cap = cap};
}

static inline bool wcur_bytes(struct wcur *w, const void *src, size_t n)
{
	if (w->failed || w->cap - w->len < n) {
		w->failed = true;
		return false;
	}
	if (n)
		memcpy(w->p + w->len, src, n);
	w->len += n;
	return true;
}

static inline bool wcur_u8(struct wcur *w, uint8_t v)
{
	return wcur_bytes(w, &v, 1);
}

static inline bool wcur_u16(struct wcur *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	return wcur_bytes(w, b, 2);
}

static inline bool wcur_u32(struct wcur *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	return wcur_bytes(w, b, 4);
}

static inline bool wcur_u64(struct wcur *w, uint64_t v)
{
	return wcur_u32(w, (uint32_t)(v >> 32)) && wcur_u32(w, (uint32_t)v);
}

/* Bytes written, or 0 if any put failed. */
static inline size_t wcur_done(const struct wcur *w)
{
	return w->failed ? 0 : w->len;
}

#endif
