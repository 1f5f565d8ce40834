/* tests/proto/chunked.c — the chunked transfer coding decoder (proto/chunked.c): valid
 * bodies fed whole, at every split point, byte by byte and in place; extensions, trailers,
 * limits, and every way the framing can be wrong. */
#include "proto/chunked.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_MAX (256 * 1024)

/* What a decode produced: the status, the data, the input bytes consumed. */
struct result {
	enum chunk_status st;
	size_t consumed;
	size_t len;
	const char *why;
	char data[OUT_MAX];
};

static struct result whole, split;

/* Feed one piece into d, appending to r (with plenty of room). */
static void feed(struct chunk_dec *d, struct result *r, const char *p, size_t n)
{
	size_t used = 0, made = 0;
	r->st = chunk_decode(d, p, n, r->data + r->len, sizeof(r->data) - r->len, &used, &made);
	cr_assert_leq(used, n);
	cr_assert_leq(made, used, "more data out than bytes in");
	if (r->st == CHUNK_NEED_MORE)
		cr_assert_eq(used, n, "NEED_MORE with room left must consume everything");
	if (r->st == CHUNK_ERROR) {
		cr_assert_not_null(d->error_reason, "an error must say why");
		r->why = d->error_reason;
	}
	r->consumed += used;
	r->len += made;
}

/* Forget a result (its data is overwritten as it is produced again). */
static void reset(struct result *r)
{
	r->st = CHUNK_NEED_MORE;
	r->consumed = r->len = 0;
	r->why = NULL;
}

static void decode(struct result *r, const char *p, size_t n)
{
	struct chunk_dec d;
	reset(r);
	chunk_init(&d);
	feed(&d, r, p, n);
}

static void same(const struct result *a, const struct result *b, const char *what)
{
	cr_assert_eq(a->st, b->st, "%s: status %d, want %d", what, b->st, a->st);
	cr_assert_eq(a->consumed, b->consumed, "%s: consumed %zu, want %zu", what, b->consumed,
	             a->consumed);
	cr_assert_eq(a->len, b->len, "%s: %zu bytes out, want %zu", what, b->len, a->len);
	cr_assert_eq(memcmp(a->data, b->data, a->len), 0, "%s: different data", what);
	if (a->st == CHUNK_ERROR)
		cr_assert_str_eq(a->why, b->why, "%s", what);
}

/* Decode s[0..n) in one call, then in two at every split point, in three at every pair of
 * split points (short inputs), byte by byte, and in place: every way gives the same
 * status, data, consumed count and error reason. Leaves the one-call result in `whole`. */
static void check_splits(const char *s, size_t n)
{
	struct chunk_dec d;
	char what[64];

	decode(&whole, s, n);
	for (size_t k = 0; k <= n; k++) {
		reset(&split);
		chunk_init(&d);
		feed(&d, &split, s, k);
		if (split.st == CHUNK_NEED_MORE)
			feed(&d, &split, s + k, n - k);
		snprintf(what, sizeof(what), "split at %zu", k);
		same(&whole, &split, what);
	}
	for (size_t j = 0; n <= 200 && j <= n; j++) {
		for (size_t k = j; k <= n; k++) {
			reset(&split);
			chunk_init(&d);
			feed(&d, &split, s, j);
			if (split.st == CHUNK_NEED_MORE)
				feed(&d, &split, s + j, k - j);
			if (split.st == CHUNK_NEED_MORE)
				feed(&d, &split, s + k, n - k);
			snprintf(what, sizeof(what), "splits at %zu and %zu", j, k);
			same(&whole, &split, what);
		}
	}
	reset(&split);
	chunk_init(&d);
	for (size_t k = 0; k < n && split.st == CHUNK_NEED_MORE; k++)
		feed(&d, &split, s + k, 1);
	same(&whole, &split, "byte by byte");

	/* In place: the data lands at the start of the very buffer it is read from. */
	char *buf = malloc(n ? n : 1);
	size_t used = 0, made = 0;
	cr_assert_not_null(buf);
	memcpy(buf, s, n);
	chunk_init(&d);
	enum chunk_status st = chunk_decode(&d, buf, n, buf, n, &used, &made);
	cr_assert_eq(st, whole.st, "in place");
	cr_assert_eq(used, whole.consumed, "in place");
	cr_assert_eq(made, whole.len, "in place");
	cr_assert_eq(memcmp(buf, whole.data, made), 0, "in place: different data");
	free(buf);
}

static void expect_body(const char *s, const char *want)
{
	check_splits(s, strlen(s));
	cr_assert_eq(whole.st, CHUNK_OK, "%s: status %d (%s)", s, whole.st,
	             whole.why ? whole.why : "");
	cr_assert_eq(whole.consumed, strlen(s));
	cr_assert_eq(whole.len, strlen(want), "%s: %zu bytes, want %zu", s, whole.len,
	             strlen(want));
	cr_assert_eq(memcmp(whole.data, want, whole.len), 0);
}

/* s is malformed: an error, found at offset `at`, whatever the splits. */
static void expect_error_at(const char *s, size_t at)
{
	check_splits(s, strlen(s));
	cr_assert_eq(whole.st, CHUNK_ERROR, "accepted: %s", s);
	cr_assert_eq(whole.consumed, at, "%s: error at %zu, want %zu (%s)", s, whole.consumed,
	             at, whole.why);
}

static void expect_error(const char *s)
{
	check_splits(s, strlen(s));
	cr_assert_eq(whole.st, CHUNK_ERROR, "accepted: %s", s);
}

static void expect_need_more(const char *s, const char *data_so_far)
{
	check_splits(s, strlen(s));
	cr_assert_eq(whole.st, CHUNK_NEED_MORE, "%s: status %d (%s)", s, whole.st,
	             whole.why ? whole.why : "");
	cr_assert_eq(whole.consumed, strlen(s));
	cr_assert_eq(whole.len, strlen(data_so_far));
	cr_assert_eq(memcmp(whole.data, data_so_far, whole.len), 0);
}

Test(chunked, single_chunk)
{
	expect_body("5\r\nhello\r\n0\r\n\r\n", "hello");
}

Test(chunked, several_chunks)
{
	/* Data that looks like framing is data. */
	expect_body("4\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n",
	            "Wikipedia in \r\n\r\nchunks.");
	expect_body("1\r\na\r\n1\r\nb\r\n1\r\n\r\r\n1\r\n\n\r\n0\r\n\r\n", "ab\r\n");
}

Test(chunked, zero_length)
{
	expect_body("0\r\n\r\n", "");
	expect_body("000\r\n\r\n", "");
	expect_body("0000000000000000\r\n\r\n", "");
}

Test(chunked, hex_digits_either_case)
{
	char s[256], want[64];
	memset(want, 'x', 42);
	want[42] = 0;
	snprintf(s, sizeof(s), "2a\r\n%s\r\n0\r\n\r\n", want);
	expect_body(s, want);
	snprintf(s, sizeof(s), "2A\r\n%s\r\n0\r\n\r\n", want);
	expect_body(s, want);
	snprintf(s, sizeof(s), "00000000000002A\r\n%s\r\n0\r\n\r\n", want);
	expect_body(s, want);
	expect_body("a\r\n0123456789\r\nB\r\n0123456789a\r\n0\r\n\r\n",
	            "01234567890123456789a");
	expect_body("F\r\n0123456789abcde\r\nf\r\n0123456789abcde\r\n0\r\n\r\n",
	            "0123456789abcde0123456789abcde");
}

Test(chunked, extensions_are_skipped)
{
	expect_body("5;name=value\r\nhello\r\n0\r\n\r\n", "hello");
	expect_body("5;a;b=c;d=\"quoted ; \\\" string?\"\r\nhello\r\n0;last\r\n\r\n", "hello");
	expect_body("5 ;a\r\nhello\r\n0\t; b = c \r\n\r\n", "hello");
	expect_body("5;\xc3\xa9t\xc3\xa9\r\nhello\r\n0\r\n\r\n", "hello");
}

Test(chunked, trailers_are_skipped)
{
	expect_body("5\r\nhello\r\n0\r\nExpires: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
	            "X-Checksum:\t42 \r\nX-Empty:\r\n\r\n",
	            "hello");
	expect_body("0\r\nA:b\r\n\r\n", "");
}

Test(chunked, bytes_after_the_body_are_left_alone)
{
	static const char s[] = "3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n";
	check_splits(s, strlen(s));
	cr_assert_eq(whole.st, CHUNK_OK);
	cr_assert_eq(whole.consumed, strlen("3\r\nabc\r\n0\r\n\r\n"));
	cr_assert_eq(whole.len, 3);

	/* Once done, a decoder takes nothing more. */
	struct chunk_dec d;
	size_t used = 1, made = 1;
	char out[8];
	chunk_init(&d);
	cr_assert_eq(chunk_decode(&d, "0\r\n\r\n", 5, out, sizeof(out), &used, &made),
	             CHUNK_OK);
	cr_assert_eq(chunk_decode(&d, "1\r\nx\r\n", 6, out, sizeof(out), &used, &made),
	             CHUNK_OK);
	cr_assert_eq(used, 0);
	cr_assert_eq(made, 0);
}

Test(chunked, missing_last_chunk_needs_more)
{
	expect_need_more("", "");
	expect_need_more("5", "");
	expect_need_more("5\r", "");
	expect_need_more("5\r\nhel", "hel");
	expect_need_more("5\r\nhello", "hello");
	expect_need_more("5\r\nhello\r\n", "hello");
	expect_need_more("5\r\nhello\r\n0", "hello");
	expect_need_more("5\r\nhello\r\n0\r\n", "hello");
	expect_need_more("5\r\nhello\r\n0\r\nA: b\r\n", "hello");
	expect_need_more("5\r\nhello\r\n0\r\n\r", "hello");
	expect_need_more("5;ext", "");
}

Test(chunked, size_limits)
{
	/* 16 digits is the most, whatever their value; 2^64 - 1 does not overflow. */
	struct chunk_dec d;
	size_t used, made;
	char out[4];
	chunk_init(&d);
	cr_assert_eq(
	        chunk_decode(&d, "ffffffffffffffff\r\nab", 20, out, sizeof(out), &used, &made),
	        CHUNK_NEED_MORE);
	cr_assert_eq(made, 2);
	cr_assert_eq(d.remaining, UINT64_MAX - 2);

	expect_error_at("10000000000000000\r\n", 16);
	expect_error_at("00000000000000001\r\n", 16);
	expect_error_at("5\r\nhello\r\nFFFFFFFFFFFFFFFFF\r\n", 26);
	cr_assert_str_eq(whole.why, "chunk size has too many digits");
}

Test(chunked, line_limit)
{
	/* The chunk-size line with its extensions, without CRLF, may be CHUNK_MAX_LINE long. */
	static char s[CHUNK_MAX_LINE + 64];
	memset(s, 0, sizeof(s));
	memcpy(s, "1;", 2);
	memset(s + 2, 'e', CHUNK_MAX_LINE - 2);
	strcat(s, "\r\nx\r\n0\r\n\r\n");
	expect_body(s, "x");

	memset(s, 0, sizeof(s));
	memcpy(s, "1;", 2);
	memset(s + 2, 'e', CHUNK_MAX_LINE - 1);
	strcat(s, "\r\nx\r\n0\r\n\r\n");
	expect_error_at(s, CHUNK_MAX_LINE);
	cr_assert_str_eq(whole.why, "chunk-size line too long");

	/* A caller may lower the limits. */
	struct chunk_dec d;
	size_t used, made;
	char out[8];
	chunk_init(&d);
	d.max_line = 4;
	cr_assert_eq(chunk_decode(&d, "1;ab\r\nx\r\n", 9, out, sizeof(out), &used, &made),
	             CHUNK_NEED_MORE);
	chunk_init(&d);
	d.max_line = 4;
	cr_assert_eq(chunk_decode(&d, "1;abc\r\nx\r\n", 10, out, sizeof(out), &used, &made),
	             CHUNK_ERROR);
	cr_assert_eq(used, 4);
	chunk_init(&d);
	d.max_trailer = 6;
	cr_assert_eq(chunk_decode(&d, "0\r\nA:\r\n\r\n", 9, out, sizeof(out), &used, &made),
	             CHUNK_OK);
	chunk_init(&d);
	d.max_trailer = 6;
	cr_assert_eq(chunk_decode(&d, "0\r\nA:b\r\n\r\n", 10, out, sizeof(out), &used, &made),
	             CHUNK_ERROR);
	cr_assert_eq(used, 9);
}

Test(chunked, trailer_limit)
{
	/* The trailer section, its CRLFs and the final CRLF included, may be
	 * CHUNK_MAX_TRAILER long. */
	static char s[CHUNK_MAX_TRAILER + 64];
	const size_t fixed = strlen("X: \r\n\r\n");
	memset(s, 0, sizeof(s));
	strcpy(s, "0\r\nX: ");
	memset(s + 6, 'v', CHUNK_MAX_TRAILER - fixed);
	strcat(s, "\r\n\r\n");
	cr_assert_eq(strlen(s), 3 + CHUNK_MAX_TRAILER);
	expect_body(s, "");

	memset(s, 0, sizeof(s));
	strcpy(s, "0\r\nX: ");
	memset(s + 6, 'v', CHUNK_MAX_TRAILER - fixed + 1);
	strcat(s, "\r\n\r\n");
	expect_error_at(s, 3 + CHUNK_MAX_TRAILER);
	cr_assert_str_eq(whole.why, "trailer section too large");
}

Test(chunked, bad_crlf)
{
	expect_error_at("5\nhello\r\n0\r\n\r\n", 1);
	expect_error_at("5\r\rhello\r\n0\r\n\r\n", 2);
	expect_error_at("5\r\nhello\n0\r\n\r\n", 8);
	expect_error_at("5\r\nhello\r\r\n0\r\n\r\n", 9);
	expect_error_at("5\r\nhelloX\r\n0\r\n\r\n", 8);
	expect_error_at("5\r\nhello!\r\n0\r\n\r\n", 8);
	expect_error_at("5\r\nhello\r\n0\n\r\n", 11);
	expect_error_at("5\r\nhello\r\n0\r\n\n", 13);
	expect_error_at("5\r\nhello\r\n0\r\n\rX", 14);
	expect_error_at("0\r\nA: b\n\r\n", 7);
	expect_error_at("0\r\nA: b\r\r\n\r\n", 8);
	expect_error_at("5;ext\n", 5);
	expect_error_at("5;ext\r\r\n", 6);
	expect_error_at("5;a=\"x\ry\"\r\n", 7); /* no CR, even quoted */
}

Test(chunked, garbage)
{
	expect_error_at("hello", 0);
	expect_error_at("\r\n", 0);
	expect_error_at(" 5\r\n", 0);
	expect_error_at("-5\r\n", 0);
	expect_error_at("+5\r\n", 0);
	expect_error_at("0x5\r\nhello\r\n", 1);
	expect_error_at(";ext\r\n", 0);
	expect_error_at("5 \r\nhello\r\n", 2);
	expect_error_at("5 x\r\n", 2);
	expect_error_at("5x\r\n", 1);
	expect_error_at("5,3\r\n", 1);
	expect_error_at("5;a\x01\r\n", 3);
	expect_error_at("5;a\x7f\r\n", 3);
	expect_error_at("\x16\x03\x01\x02\x00", 0);
	expect_error_at("G\r\n", 0);
	expect_error_at("5\r\nhello\r\nzz\r\n", 10);
	expect_error("HTTP/1.1 200 OK\r\n\r\n");
}

Test(chunked, bad_trailers)
{
	expect_error_at("0\r\n: empty name\r\n\r\n", 3);
	expect_error_at("0\r\n folded: x\r\n\r\n", 3);
	expect_error_at("0\r\nA: b\r\n c\r\n\r\n", 9);
	expect_error_at("0\r\nA b: c\r\n\r\n", 4);
	expect_error_at("0\r\nNoColon\r\n\r\n", 10);
	expect_error_at("0\r\nA: b\x01\r\n\r\n", 7);
	expect_error_at("0\r\n\x80: b\r\n\r\n", 3);
}

Test(chunked, errors_are_sticky)
{
	struct chunk_dec d;
	size_t used = 9, made = 9;
	char out[16];
	chunk_init(&d);
	cr_assert_eq(chunk_decode(&d, "5\r\nhelloX", 9, out, sizeof(out), &used, &made),
	             CHUNK_ERROR);
	cr_assert_eq(used, 8);
	cr_assert_eq(made, 5);
	const char *why = d.error_reason;
	cr_assert_not_null(why);
	cr_assert_eq(chunk_decode(&d, "\r\n0\r\n\r\n", 7, out, sizeof(out), &used, &made),
	             CHUNK_ERROR);
	cr_assert_eq(used, 0);
	cr_assert_eq(made, 0);
	cr_assert_eq(d.error_reason, why);
}

Test(chunked, small_output_buffer)
{
	/* With one byte of room per call, the decoder stops when out is full and resumes
	 * with the rest of the input. */
	static const char s[] = "3;x\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\nrest";
	const char *p = s;
	size_t left = strlen(s), got = 0, calls = 0;
	char out[8];
	struct chunk_dec d;
	enum chunk_status st = CHUNK_NEED_MORE;
	chunk_init(&d);
	while (st == CHUNK_NEED_MORE && left) {
		size_t used, made;
		st = chunk_decode(&d, p, left, out + got, 1, &used, &made);
		cr_assert_leq(made, 1);
		p += used;
		left -= used;
		got += made;
		cr_assert_lt(++calls, 100);
	}
	cr_assert_eq(st, CHUNK_OK);
	cr_assert_eq(got, 5);
	cr_assert_eq(memcmp(out, "abcde", 5), 0);
	cr_assert_str_eq(p, "rest");

	/* No room at all: framing is still consumed, data waits. */
	chunk_init(&d);
	size_t used, made;
	cr_assert_eq(chunk_decode(&d, "3\r\nabc", 6, NULL, 0, &used, &made), CHUNK_NEED_MORE);
	cr_assert_eq(used, 3);
	cr_assert_eq(made, 0);
}

/* A deterministic generator for the large bodies below. */
static uint32_t rnd_state = 12345;
static uint32_t rnd(void)
{
	rnd_state = rnd_state * 1103515245u + 12345u;
	return rnd_state >> 8;
}

Test(chunked, large_body_random_chunks_and_splits)
{
	static char data[200000], body[sizeof(data) + 64 * 1024];
	static struct result r;
	size_t blen = 0;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)rnd();
	for (size_t at = 0; at < sizeof(data);) {
		size_t n = 1 + rnd() % 9000;
		if (n > sizeof(data) - at)
			n = sizeof(data) - at;
		if (rnd() % 2)
			blen += (size_t)snprintf(body + blen, sizeof(body) - blen, "%zx\r\n",
			                         n);
		else
			blen += (size_t)snprintf(body + blen, sizeof(body) - blen,
			                         "%zX;n=%zu\r\n", n, n);
		memcpy(body + blen, data + at, n);
		blen += n;
		memcpy(body + blen, "\r\n", 2);
		blen += 2;
		at += n;
	}
	blen += (size_t)snprintf(body + blen, sizeof(body) - blen, "0\r\nDigest: x\r\n\r\n");

	for (int round = 0; round < 50; round++) {
		struct chunk_dec d;
		reset(&r);
		chunk_init(&d);
		for (size_t at = 0; at < blen && r.st == CHUNK_NEED_MORE;) {
			size_t n = 1 + rnd() % (round < 25 ? 64 : 20000);
			if (n > blen - at)
				n = blen - at;
			feed(&d, &r, body + at, n);
			at += n;
		}
		cr_assert_eq(r.st, CHUNK_OK, "round %d: %s", round, r.why ? r.why : "");
		cr_assert_eq(r.consumed, blen);
		cr_assert_eq(r.len, sizeof(data));
		cr_assert_eq(memcmp(r.data, data, sizeof(data)), 0);
	}

	/* In place, in pieces, as the HTTP client does it: the data moves to the front. */
	static char buf[sizeof(body)];
	memcpy(buf, body, blen);
	struct chunk_dec d;
	size_t out = 0, in = 0;
	enum chunk_status st = CHUNK_NEED_MORE;
	chunk_init(&d);
	while (st == CHUNK_NEED_MORE && in < blen) {
		size_t n = 1 + rnd() % 5000, used, made;
		if (n > blen - in)
			n = blen - in;
		st = chunk_decode(&d, buf + in, n, buf + out, in + n - out, &used, &made);
		in += used;
		out += made;
	}
	cr_assert_eq(st, CHUNK_OK);
	cr_assert_eq(out, sizeof(data));
	cr_assert_eq(memcmp(buf, data, out), 0);
}
