/* fuzz/chunked.c — libFuzzer driver for the chunked transfer coding decoder
 * (proto/chunked.c).
 *
 * The input is a chunked body. It is decoded in one call, byte by byte, in two pieces
 * split where the input says, and in place; every way must give the same status, data,
 * consumed count and error reason. A reference decoder written the other way round (whole
 * lines at a time, over a complete buffer) must agree on all of it, error offsets
 * included. A body that decodes is encoded again with other chunk sizes and must decode to
 * the same data. The line and trailer limits are lowered so that the fuzzer reaches them.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/chunked.h"

#define CHECK(cond)                                                                            \
	do {                                                                                   \
		if (!(cond))                                                                   \
			__builtin_trap();                                                      \
	} while (0)

#define FUZZ_MAX_LINE 40
#define FUZZ_MAX_TRAILER 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void init(struct chunk_dec *d)
{
	chunk_init(d);
	d->max_line = FUZZ_MAX_LINE;
	d->max_trailer = FUZZ_MAX_TRAILER;
}

struct res {
	enum chunk_status st;
	size_t consumed, len;
	const char *why;
};

/* ---- the reference: whole lines over a complete buffer ------------------------------ */

static int hexv(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool tchar(uint8_t c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool text(uint8_t c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* Where an outcome at index `at` stands against a counter of valid bytes that started at
 * `from` and may count `max`: the byte at from + max overflows it if it is reached first. */
static bool over(size_t from, size_t max, size_t at)
{
	return at > from + max;
}

static struct res ref_error(size_t at, size_t len)
{
	return (struct res){CHUNK_ERROR, at, len, NULL};
}

static struct res ref_decode(const uint8_t *s, size_t n, uint8_t *out)
{
	size_t p = 0, o = 0;
	for (;;) {
		/* chunk-size [ BWS ";" ext ] CR LF; `e` ends up at the first byte that does
		 * not belong to the line (its CR, a bad byte, or n). */
		size_t e = p, digits = 0;
		uint64_t sz = 0;
		bool ok_cr = true;
		while (e < n && hexv(s[e]) >= 0 && digits < CHUNK_MAX_HEX) {
			sz = sz << 4 | (uint64_t)hexv(s[e]);
			digits++;
			e++;
		}
		if (digits == 0 || (e < n && hexv(s[e]) >= 0)) {
			ok_cr = false; /* no digit, or one too many: stop at it */
		} else {
			size_t w = e;
			while (w < n && (s[w] == ' ' || s[w] == '\t'))
				w++;
			if (w < n && s[w] == ';') {
				e = w + 1;
				while (e < n && s[e] != '\r' && text(s[e]))
					e++;
			} else if (w > e) {
				e = w;
				ok_cr = false;
			}
		}
		if (over(p, FUZZ_MAX_LINE, e))
			return ref_error(p + FUZZ_MAX_LINE, o);
		if (e == n)
			return (struct res){CHUNK_NEED_MORE, n, o, NULL};
		if (!ok_cr || s[e] != '\r')
			return ref_error(e, o);
		if (e + 1 == n)
			return (struct res){CHUNK_NEED_MORE, n, o, NULL};
		if (s[e + 1] != '\n')
			return ref_error(e + 1, o);
		p = e + 2;
		if (sz == 0)
			break;
		if (n - p < sz) {
			memcpy(out + o, s + p, n - p);
			return (struct res){CHUNK_NEED_MORE, n, o + (n - p), NULL};
		}
		memcpy(out + o, s + p, (size_t)sz);
		o += (size_t)sz;
		p += (size_t)sz;
		for (int k = 0; k < 2; k++, p++) {
			if (p == n)
				return (struct res){CHUNK_NEED_MORE, n, o, NULL};
			if (s[p] != "\r\n"[k])
				return ref_error(p, o);
		}
	}
	/* trailer-section CRLF: each line a token, ':', text, CRLF. */
	const size_t t0 = p;
	for (;;) {
		size_t e = p;
		bool blank = e < n && s[e] == '\r';
		if (!blank) {
			while (e < n && tchar(s[e]))
				e++;
			if (e < n && e > p && s[e] == ':') {
				e++;
				while (e < n && s[e] != '\r' && text(s[e]))
					e++;
			} else if (e < n) {
				/* no name, or a name not followed by ':' */
				if (over(t0, FUZZ_MAX_TRAILER, e))
					return ref_error(t0 + FUZZ_MAX_TRAILER, o);
				return ref_error(e, o);
			}
		}
		/* e is at the line's CR, a bad byte, or n */
		size_t last = e < n && s[e] == '\r' ? (e + 1 < n ? e + 1 : n) : e;
		if (over(t0, FUZZ_MAX_TRAILER, last))
			return ref_error(t0 + FUZZ_MAX_TRAILER, o);
		if (e == n)
			return (struct res){CHUNK_NEED_MORE, n, o, NULL};
		if (s[e] != '\r')
			return ref_error(e, o);
		if (e + 1 == n)
			return (struct res){CHUNK_NEED_MORE, n, o, NULL};
		if (s[e + 1] != '\n')
			return ref_error(e + 1, o);
		if (over(t0, FUZZ_MAX_TRAILER, e + 2))
			return ref_error(t0 + FUZZ_MAX_TRAILER, o);
		p = e + 2;
		if (blank)
			return (struct res){CHUNK_OK, p, o, NULL};
	}
}

/* ---- the decoder under test --------------------------------------------------------- */

static void feed(struct chunk_dec *d, struct res *r, const uint8_t *p, size_t n, uint8_t *out,
                 size_t cap)
{
	size_t used = 0, made = 0;
	if (r->st != CHUNK_NEED_MORE)
		return;
	r->st = chunk_decode(d, p, n, out + r->len, cap - r->len, &used, &made);
	CHECK(used <= n && made <= used);
	if (r->st == CHUNK_NEED_MORE)
		CHECK(used == n);
	if (r->st == CHUNK_ERROR) {
		CHECK(d->error_reason && d->error_reason[0]);
		r->why = d->error_reason;
	}
	r->consumed += used;
	r->len += made;
}

static void same(const struct res *a, const uint8_t *da, const struct res *b, const uint8_t *db)
{
	CHECK(a->st == b->st);
	CHECK(a->consumed == b->consumed);
	CHECK(a->len == b->len);
	CHECK(a->len == 0 || memcmp(da, db, a->len) == 0);
	if (a->why && b->why)
		CHECK(strcmp(a->why, b->why) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const size_t cap = size + 1;
	uint8_t *one = malloc(cap), *other = malloc(cap), *ref = malloc(cap);
	struct chunk_dec d;
	struct res r1 = {0}, r2;
	CHECK(one && other && ref);

	/* In one call. */
	init(&d);
	feed(&d, &r1, data, size, one, cap);

	/* The reference. */
	struct res rr = ref_decode(data, size, ref);
	same(&r1, one, &rr, ref);

	/* Byte by byte: NEED_MORE up to the byte that ends or breaks the body. */
	r2 = (struct res){0};
	init(&d);
	for (size_t k = 0; k < size && r2.st == CHUNK_NEED_MORE; k++)
		feed(&d, &r2, data + k, 1, other, cap);
	same(&r1, one, &r2, other);

	/* In two pieces, where the input's first byte says. */
	size_t cut = size ? (data[0] * 2654435761u) % (size + 1) : 0;
	r2 = (struct res){0};
	init(&d);
	feed(&d, &r2, data, cut, other, cap);
	feed(&d, &r2, data + cut, size - cut, other, cap);
	same(&r1, one, &r2, other);

	/* In place. */
	memcpy(other, data, size);
	r2 = (struct res){0};
	init(&d);
	feed(&d, &r2, other, size, other, size);
	same(&r1, one, &r2, other);

	/* Done means done. */
	if (r1.st != CHUNK_NEED_MORE) {
		size_t used = 1, made = 1;
		CHECK(chunk_decode(&d, "0\r\n\r\n", 5, other, cap, &used, &made) == r1.st);
		CHECK(used == 0 && made == 0);
	}

	/* Encode the data again, in chunks sized by the input, and decode it. */
	if (r1.st == CHUNK_OK) {
		size_t ecap = r1.len * 2 + 20 * (r1.len + 1) + 16, elen = 0;
		uint8_t *enc = malloc(ecap), *dec = malloc(r1.len + 1);
		CHECK(enc && dec);
		for (size_t at = 0, k = 0; at < r1.len; k++) {
			size_t n = 1 + data[k % size] % 64;
			if (n > r1.len - at)
				n = r1.len - at;
			elen += (size_t)snprintf((char *)enc + elen, ecap - elen,
			                         k % 2 ? "%zx\r\n" : "%zX\r\n", n);
			memcpy(enc + elen, one + at, n);
			elen += n;
			memcpy(enc + elen, "\r\n", 2);
			elen += 2;
			at += n;
		}
		memcpy(enc + elen, "0\r\n\r\n", 5);
		elen += 5;
		r2 = (struct res){0};
		init(&d);
		feed(&d, &r2, enc, elen, dec, r1.len + 1);
		CHECK(r2.st == CHUNK_OK && r2.consumed == elen && r2.len == r1.len);
		CHECK(r1.len == 0 || memcmp(dec, one, r1.len) == 0);
		free(enc);
		free(dec);
	}
	free(one);
	free(other);
	free(ref);
	return 0;
}
