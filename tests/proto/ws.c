/* tests/proto/ws.c — RFC 6455 framing: header round trips, streaming decode at every
 * split point, the protocol errors and their close codes, masking, Close payloads and
 * UTF-8 validation. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ws.h"

static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};

static const uint8_t all_ops[] = {WS_OP_CONT,  WS_OP_TEXT, WS_OP_BINARY,
                                  WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};

static bool is_control(uint8_t op)
{
	return op & 0x08;
}

/* Decode buf[0..len) from an exactly-sized heap copy, so that ASan reports any read
 * past len. */
static enum ws_status decode_exact(const uint8_t *buf, size_t len, enum ws_role role,
                                   uint64_t max_payload, struct ws_frame *f, enum ws_close *cc)
{
	uint8_t *copy = malloc(len ? len : 1);
	cr_assert_not_null(copy);
	memcpy(copy, buf, len);
	enum ws_status st = ws_decode_header(copy, len, role, max_payload, f, cc);
	free(copy);
	return st;
}

/* ---- header encode/decode ---- */

Test(ws_header, round_trip_every_opcode_and_length)
{
	static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, (1ull << 32) + 5};
	static const size_t want_hlen[] = {2, 2, 2, 4, 4, 4, 10, 10};

	for (size_t o = 0; o < sizeof(all_ops); o++) {
		for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
			for (int masked = 0; masked < 2; masked++) {
				for (int fin = 0; fin < 2; fin++) {
					uint8_t op = all_ops[o], hdr[WS_MAX_HEADER];
					enum ws_role role =
					        masked ? WS_ROLE_SERVER : WS_ROLE_CLIENT;
					struct ws_frame f;
					enum ws_close cc = WS_CLOSE_NONE;
					size_t n = ws_encode_header(
					        hdr, op, fin, masked ? key : NULL, lens[l]);
					cr_assert_eq(n, want_hlen[l] + (masked ? 4 : 0));
					enum ws_status st =
					        decode_exact(hdr, n, role, UINT64_MAX, &f, &cc);
					if (is_control(op) && (lens[l] > 125 || !fin)) {
						cr_assert_eq(st, WS_ERROR,
						             "op %u len %llu fin %d", op,
						             (unsigned long long)lens[l], fin);
						cr_assert_eq(cc, WS_CLOSE_PROTOCOL);
						continue;
					}
					cr_assert_eq(st, WS_OK, "op %u len %llu", op,
					             (unsigned long long)lens[l]);
					cr_assert_eq(f.opcode, op);
					cr_assert_eq(f.fin, (bool)fin);
					cr_assert_eq(f.masked, (bool)masked);
					cr_assert_eq(f.header_len, n);
					cr_assert_eq(f.payload_len, lens[l]);
					if (masked)
						cr_assert_arr_eq(f.mask, key, 4);
				}
			}
		}
	}
}

Test(ws_header, encodes_wire_bytes)
{
	uint8_t hdr[WS_MAX_HEADER];
	/* RFC 6455 section 5.7: a single-frame masked text message "Hello". */
	static const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d};
	cr_assert_eq(ws_encode_header(hdr, WS_OP_TEXT, true, key, 5), sizeof(hello));
	cr_assert_arr_eq(hdr, hello, sizeof(hello));

	static const uint8_t big[] = {0x82, 0x7f, 0, 0, 0, 1, 0, 0, 0, 5};
	cr_assert_eq(ws_encode_header(hdr, WS_OP_BINARY, true, NULL, (1ull << 32) + 5),
	             sizeof(big));
	cr_assert_arr_eq(hdr, big, sizeof(big));

	static const uint8_t mid[] = {0x02, 0x7e, 0x01, 0x00};
	cr_assert_eq(ws_encode_header(hdr, WS_OP_BINARY, false, NULL, 256), sizeof(mid));
	cr_assert_arr_eq(hdr, mid, sizeof(mid));
}

Test(ws_header, every_truncation_needs_more)
{
	static const uint64_t lens[] = {0, 125, 126, 65535, 65536, (1ull << 32) + 5};
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
		for (int masked = 0; masked < 2; masked++) {
			uint8_t hdr[WS_MAX_HEADER];
			enum ws_role role = masked ? WS_ROLE_SERVER : WS_ROLE_CLIENT;
			size_t n = ws_encode_header(hdr, WS_OP_BINARY, true,
			                            masked ? key : NULL, lens[l]);
			for (size_t k = 0; k < n; k++) {
				struct ws_frame f;
				enum ws_close cc = WS_CLOSE_NONE;
				cr_assert_eq(decode_exact(hdr, k, role, UINT64_MAX, &f, &cc),
				             WS_NEED_MORE, "len %llu masked %d cut %zu",
				             (unsigned long long)lens[l], masked, k);
				cr_assert_eq(cc, WS_CLOSE_NONE);
			}
		}
	}
}

Test(ws_header, payload_bytes_after_header_are_not_needed)
{
	uint8_t hdr[WS_MAX_HEADER];
	struct ws_frame f;
	enum ws_close cc;
	size_t n = ws_encode_header(hdr, WS_OP_TEXT, true, key, 1000);
	cr_assert_eq(decode_exact(hdr, n, WS_ROLE_SERVER, UINT64_MAX, &f, &cc), WS_OK);
	cr_assert_eq(f.header_len, 8);
	cr_assert_eq(f.payload_len, 1000);
}

/* ---- malformed headers, one case each ---- */

static void expect_error(const uint8_t *buf, size_t len, enum ws_role role, uint64_t max,
                         enum ws_close want)
{
	struct ws_frame f;
	enum ws_close cc = WS_CLOSE_NONE;
	cr_assert_eq(decode_exact(buf, len, role, max, &f, &cc), WS_ERROR);
	cr_assert_eq(cc, want, "close code %d, want %d", cc, want);
}

Test(ws_malformed, rsv_bits_set)
{
	for (uint8_t bit = 0x10; bit <= 0x40; bit <<= 1) {
		uint8_t b[] = {(uint8_t)(0x81 | bit), 0x00};
		expect_error(b, sizeof(b), WS_ROLE_CLIENT, UINT64_MAX, WS_CLOSE_PROTOCOL);
	}
}

Test(ws_malformed, reserved_opcodes)
{
	static const uint8_t ops[] = {3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf};
	for (size_t i = 0; i < sizeof(ops); i++) {
		uint8_t b[] = {(uint8_t)(0x80 | ops[i]), 0x80, 1, 2, 3, 4};
		expect_error(b, sizeof(b), WS_ROLE_SERVER, UINT64_MAX, WS_CLOSE_PROTOCOL);
	}
}

Test(ws_malformed, non_minimal_16bit_length)
{
	static const uint8_t short_lens[] = {0, 1, 125};
	for (size_t i = 0; i < sizeof(short_lens); i++) {
		uint8_t b[] = {0x82, 126, 0, short_lens[i]};
		expect_error(b, sizeof(b), WS_ROLE_CLIENT, UINT64_MAX, WS_CLOSE_PROTOCOL);
	}
	uint8_t ok[] = {0x82, 126, 0, 126};
	struct ws_frame f;
	enum ws_close cc;
	cr_assert_eq(decode_exact(ok, sizeof(ok), WS_ROLE_CLIENT, UINT64_MAX, &f, &cc), WS_OK);
	cr_assert_eq(f.payload_len, 126);
}

Test(ws_malformed, non_minimal_64bit_length)
{
	static const uint16_t short_lens[] = {0, 125, 126, 65535};
	for (size_t i = 0; i < sizeof(short_lens) / sizeof(short_lens[0]); i++) {
		uint8_t b[] = {0x82,
		               127,
		               0,
		               0,
		               0,
		               0,
		               0,
		               0,
		               (uint8_t)(short_lens[i] >> 8),
		               (uint8_t)short_lens[i]};
		expect_error(b, sizeof(b), WS_ROLE_CLIENT, UINT64_MAX, WS_CLOSE_PROTOCOL);
	}
	uint8_t ok[] = {0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0};
	struct ws_frame f;
	enum ws_close cc;
	cr_assert_eq(decode_exact(ok, sizeof(ok), WS_ROLE_CLIENT, UINT64_MAX, &f, &cc), WS_OK);
	cr_assert_eq(f.payload_len, 65536);
}

Test(ws_malformed, length_top_bit_set)
{
	uint8_t b[] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0};
	expect_error(b, sizeof(b), WS_ROLE_CLIENT, UINT64_MAX, WS_CLOSE_PROTOCOL);
	uint8_t b2[] = {0x82, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	expect_error(b2, sizeof(b2), WS_ROLE_CLIENT, UINT64_MAX, WS_CLOSE_PROTOCOL);
}

Test(ws_malformed, control_payload_over_125)
{
	static const uint8_t ctl[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
	for (size_t i = 0; i < sizeof(ctl); i++) {
		uint8_t b16[] = {(uint8_t)(0x80 | ctl[i]), 126, 0, 126};
		expect_error(b16, sizeof(b16), WS_ROLE_CLIENT, UINT64_MAX, WS_CLOSE_PROTOCOL);
		uint8_t b64[] = {(uint8_t)(0x80 | ctl[i]), 127, 0, 0, 0, 0, 0, 1, 0, 0};
		expect_error(b64, sizeof(b64), WS_ROLE_CLIENT, UINT64_MAX, WS_CLOSE_PROTOCOL);
	}
}

Test(ws_malformed, control_without_fin)
{
	static const uint8_t ctl[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
	for (size_t i = 0; i < sizeof(ctl); i++) {
		uint8_t b[] = {ctl[i], 0x00};
		expect_error(b, sizeof(b), WS_ROLE_CLIENT, UINT64_MAX, WS_CLOSE_PROTOCOL);
	}
}

Test(ws_malformed, unmasked_frame_to_server)
{
	uint8_t b[] = {0x81, 0x05, 'H', 'e', 'l', 'l', 'o'};
	expect_error(b, sizeof(b), WS_ROLE_SERVER, UINT64_MAX, WS_CLOSE_PROTOCOL);
}

Test(ws_malformed, masked_frame_to_client)
{
	uint8_t b[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
	expect_error(b, sizeof(b), WS_ROLE_CLIENT, UINT64_MAX, WS_CLOSE_PROTOCOL);
}

Test(ws_malformed, payload_over_max_payload)
{
	uint8_t b[WS_MAX_HEADER];
	struct ws_frame f;
	enum ws_close cc;
	size_t n = ws_encode_header(b, WS_OP_BINARY, true, NULL, 1001);
	expect_error(b, n, WS_ROLE_CLIENT, 1000, WS_CLOSE_TOO_BIG);
	cr_assert_eq(decode_exact(b, n, WS_ROLE_CLIENT, 1001, &f, &cc), WS_OK);
	n = ws_encode_header(b, WS_OP_BINARY, true, key, 1ull << 40);
	expect_error(b, n, WS_ROLE_SERVER, 1ull << 32, WS_CLOSE_TOO_BIG);
}

Test(ws_malformed, error_detected_from_first_byte)
{
	/* A header that is already wrong does not wait for the rest of it. */
	uint8_t b[] = {0xc1};
	expect_error(b, sizeof(b), WS_ROLE_SERVER, UINT64_MAX, WS_CLOSE_PROTOCOL);
}

/* ---- message layer ---- */

static size_t put_frame(uint8_t *out, uint8_t op, bool fin, const uint8_t *mask,
                        const void *payload, size_t len)
{
	size_t n = ws_encode_header(out, op, fin, mask, len);
	memcpy(out + n, payload, len);
	if (mask)
		ws_mask(out + n, len, mask, 0);
	return n + len;
}

static enum ws_status decoder_frame(struct ws_decoder *d, uint8_t op, bool fin, uint64_t len,
                                    uint8_t *msg_op, bool *msg_end, enum ws_close *cc)
{
	uint8_t hdr[WS_MAX_HEADER];
	struct ws_frame f;
	size_t n = ws_encode_header(hdr, op, fin, d->role == WS_ROLE_SERVER ? key : NULL, len);
	return ws_decoder_next(d, hdr, n, &f, msg_op, msg_end, cc);
}

Test(ws_decoder, continuation_without_message)
{
	struct ws_decoder d;
	uint8_t mop;
	bool end;
	enum ws_close cc = WS_CLOSE_NONE;
	ws_decoder_init(&d, WS_ROLE_SERVER, UINT64_MAX, 0);
	cr_assert_eq(decoder_frame(&d, WS_OP_CONT, true, 3, &mop, &end, &cc), WS_ERROR);
	cr_assert_eq(cc, WS_CLOSE_PROTOCOL);

	/* Also after a message has been completed. */
	ws_decoder_init(&d, WS_ROLE_SERVER, UINT64_MAX, 0);
	cr_assert_eq(decoder_frame(&d, WS_OP_TEXT, false, 3, &mop, &end, &cc), WS_OK);
	cr_assert_eq(decoder_frame(&d, WS_OP_CONT, true, 3, &mop, &end, &cc), WS_OK);
	cr_assert(end);
	cc = WS_CLOSE_NONE;
	cr_assert_eq(decoder_frame(&d, WS_OP_CONT, false, 3, &mop, &end, &cc), WS_ERROR);
	cr_assert_eq(cc, WS_CLOSE_PROTOCOL);
}

Test(ws_decoder, new_data_frame_inside_message)
{
	static const uint8_t data[] = {WS_OP_TEXT, WS_OP_BINARY};
	for (size_t i = 0; i < 2; i++) {
		struct ws_decoder d;
		uint8_t mop;
		bool end;
		enum ws_close cc = WS_CLOSE_NONE;
		ws_decoder_init(&d, WS_ROLE_CLIENT, UINT64_MAX, 0);
		cr_assert_eq(decoder_frame(&d, WS_OP_BINARY, false, 10, &mop, &end, &cc),
		             WS_OK);
		cr_assert_eq(decoder_frame(&d, data[i], true, 10, &mop, &end, &cc), WS_ERROR);
		cr_assert_eq(cc, WS_CLOSE_PROTOCOL);
	}
}

Test(ws_decoder, message_over_max_message)
{
	struct ws_decoder d;
	uint8_t mop;
	bool end;
	enum ws_close cc = WS_CLOSE_NONE;

	ws_decoder_init(&d, WS_ROLE_SERVER, 1000, 2500);
	cr_assert_eq(decoder_frame(&d, WS_OP_TEXT, false, 1000, &mop, &end, &cc), WS_OK);
	cr_assert_eq(decoder_frame(&d, WS_OP_CONT, false, 1000, &mop, &end, &cc), WS_OK);
	cr_assert_eq(decoder_frame(&d, WS_OP_PING, true, 100, &mop, &end, &cc), WS_OK);
	cr_assert_eq(decoder_frame(&d, WS_OP_CONT, true, 501, &mop, &end, &cc), WS_ERROR);
	cr_assert_eq(cc, WS_CLOSE_TOO_BIG);

	/* Exactly at the limit is fine; the count restarts with the next message. */
	ws_decoder_init(&d, WS_ROLE_SERVER, 1000, 2500);
	cr_assert_eq(decoder_frame(&d, WS_OP_TEXT, false, 1000, &mop, &end, &cc), WS_OK);
	cr_assert_eq(decoder_frame(&d, WS_OP_CONT, false, 1000, &mop, &end, &cc), WS_OK);
	cr_assert_eq(decoder_frame(&d, WS_OP_CONT, true, 500, &mop, &end, &cc), WS_OK);
	cr_assert(end);
	cr_assert_eq(decoder_frame(&d, WS_OP_BINARY, false, 1000, &mop, &end, &cc), WS_OK);

	/* A single frame over max_message but within max_payload. */
	ws_decoder_init(&d, WS_ROLE_SERVER, 1000, 500);
	cc = WS_CLOSE_NONE;
	cr_assert_eq(decoder_frame(&d, WS_OP_BINARY, true, 501, &mop, &end, &cc), WS_ERROR);
	cr_assert_eq(cc, WS_CLOSE_TOO_BIG);
}

Test(ws_decoder, frame_over_max_payload)
{
	struct ws_decoder d;
	uint8_t mop;
	bool end;
	enum ws_close cc = WS_CLOSE_NONE;
	ws_decoder_init(&d, WS_ROLE_CLIENT, 100, 0);
	cr_assert_eq(decoder_frame(&d, WS_OP_BINARY, true, 101, &mop, &end, &cc), WS_ERROR);
	cr_assert_eq(cc, WS_CLOSE_TOO_BIG);
}

Test(ws_decoder, need_more_leaves_state_alone)
{
	struct ws_decoder d;
	uint8_t hdr[WS_MAX_HEADER], mop;
	struct ws_frame f;
	bool end;
	enum ws_close cc;
	ws_decoder_init(&d, WS_ROLE_SERVER, UINT64_MAX, 0);
	size_t n = ws_encode_header(hdr, WS_OP_TEXT, false, key, 300);
	for (size_t k = 0; k < n; k++)
		cr_assert_eq(ws_decoder_next(&d, hdr, k, &f, &mop, &end, &cc), WS_NEED_MORE);
	cr_assert_eq(d.msg_opcode, 0);
	cr_assert_eq(ws_decoder_next(&d, hdr, n, &f, &mop, &end, &cc), WS_OK);
	cr_assert_eq(d.msg_opcode, WS_OP_TEXT);
	cr_assert_eq(d.msg_len, 300);
}

/* ---- streaming: the same frames whatever the read boundaries ---- */

#define MAX_EVENTS 16
#define STREAM_CAP 2048

struct event {
	uint8_t opcode, msg_opcode;
	bool fin, msg_end;
	size_t len;
	uint8_t payload[512];
};

/* A receiver as the engine would run it: decode a header once it is complete, then
 * unmask the payload piecewise as bytes arrive. */
struct rx {
	struct ws_decoder d;
	uint8_t buf[STREAM_CAP];
	size_t have, pos;
	bool in_payload;
	struct ws_frame cur;
	uint64_t got;
	struct event ev[MAX_EVENTS];
	size_t nev;
	size_t need_more; /* NEED_MORE answers seen */
};

static void rx_init(struct rx *r, enum ws_role role)
{
	memset(r, 0, sizeof(*r));
	ws_decoder_init(&r->d, role, 1024, 4096);
}

static void rx_feed(struct rx *r, const uint8_t *p, size_t n)
{
	cr_assert_leq(r->have + n, STREAM_CAP);
	memcpy(r->buf + r->have, p, n);
	r->have += n;
	for (;;) {
		if (!r->in_payload) {
			struct event *e = &r->ev[r->nev];
			enum ws_close cc = WS_CLOSE_NONE;
			enum ws_status st =
			        ws_decoder_next(&r->d, r->buf + r->pos, r->have - r->pos,
			                        &r->cur, &e->msg_opcode, &e->msg_end, &cc);
			if (st == WS_NEED_MORE) {
				r->need_more++;
				return;
			}
			cr_assert_eq(st, WS_OK, "decoder error %d at %zu", cc, r->pos);
			cr_assert_lt(r->nev, MAX_EVENTS);
			cr_assert_leq(r->cur.payload_len, sizeof(e->payload));
			e->opcode = r->cur.opcode;
			e->fin = r->cur.fin;
			e->len = r->cur.payload_len;
			r->pos += r->cur.header_len;
			r->got = 0;
			r->in_payload = true;
		}
		struct event *e = &r->ev[r->nev];
		size_t avail = r->have - r->pos;
		size_t take = r->cur.payload_len - r->got;
		if (take > avail)
			take = avail;
		memcpy(e->payload + r->got, r->buf + r->pos, take);
		if (r->cur.masked)
			ws_mask(e->payload + r->got, take, r->cur.mask, r->got);
		r->got += take;
		r->pos += take;
		if (r->got < r->cur.payload_len)
			return;
		r->in_payload = false;
		r->nev++;
	}
}

static size_t build_stream(uint8_t *s, const uint8_t *mask)
{
	uint8_t close[WS_MAX_CONTROL_PAYLOAD], bin[300];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)(i * 7 + 1);
	n += put_frame(s + n, WS_OP_TEXT, false, mask, "Hel", 3);
	n += put_frame(s + n, WS_OP_PING, true, mask, "p", 1);
	n += put_frame(s + n, WS_OP_CONT, false, mask, "lo, ", 4);
	n += put_frame(s + n, WS_OP_PONG, true, mask, "", 0);
	n += put_frame(s + n, WS_OP_CONT, true, mask, "world", 5);
	n += put_frame(s + n, WS_OP_BINARY, true, mask, bin, sizeof(bin));
	n += put_frame(s + n, WS_OP_TEXT, true, mask, "", 0);
	n += put_frame(s + n, WS_OP_CLOSE, true, mask, close,
	               ws_close_payload(close, WS_CLOSE_NORMAL, "bye"));
	return n;
}

static void check_events(const struct rx *r)
{
	static const struct {
		uint8_t op, mop;
		bool fin, end;
		const char *payload;
		size_t len;
	} want[] = {
	        {WS_OP_TEXT, WS_OP_TEXT, false, false, "Hel", 3},
	        {WS_OP_PING, WS_OP_PING, true, true, "p", 1},
	        {WS_OP_CONT, WS_OP_TEXT, false, false, "lo, ", 4},
	        {WS_OP_PONG, WS_OP_PONG, true, true, "", 0},
	        {WS_OP_CONT, WS_OP_TEXT, true, true, "world", 5},
	        {WS_OP_BINARY, WS_OP_BINARY, true, true, NULL, 300},
	        {WS_OP_TEXT, WS_OP_TEXT, true, true, "", 0},
	        {WS_OP_CLOSE, WS_OP_CLOSE, true, true,
	         "\x03\xe8"
	         "bye",
	         5},
	};
	cr_assert_eq(r->nev, sizeof(want) / sizeof(want[0]));
	cr_assert_not(r->in_payload);
	cr_assert_eq(r->pos, r->have);
	for (size_t i = 0; i < r->nev; i++) {
		const struct event *e = &r->ev[i];
		cr_assert_eq(e->opcode, want[i].op, "event %zu", i);
		cr_assert_eq(e->msg_opcode, want[i].mop, "event %zu", i);
		cr_assert_eq(e->fin, want[i].fin, "event %zu", i);
		cr_assert_eq(e->msg_end, want[i].end, "event %zu", i);
		cr_assert_eq(e->len, want[i].len, "event %zu", i);
		if (want[i].payload) {
			cr_assert_arr_eq(e->payload, want[i].payload, want[i].len);
		} else {
			for (size_t j = 0; j < e->len; j++)
				cr_assert_eq(e->payload[j], (uint8_t)(j * 7 + 1));
		}
	}
}

static void same_events(const struct rx *a, const struct rx *b)
{
	cr_assert_eq(a->nev, b->nev);
	for (size_t i = 0; i < a->nev; i++) {
		cr_assert_eq(a->ev[i].opcode, b->ev[i].opcode);
		cr_assert_eq(a->ev[i].msg_opcode, b->ev[i].msg_opcode);
		cr_assert_eq(a->ev[i].fin, b->ev[i].fin);
		cr_assert_eq(a->ev[i].msg_end, b->ev[i].msg_end);
		cr_assert_eq(a->ev[i].len, b->ev[i].len);
		cr_assert_arr_eq(a->ev[i].payload, b->ev[i].payload, a->ev[i].len);
	}
}

static void split_everywhere(enum ws_role role, const uint8_t *mask)
{
	static uint8_t s[STREAM_CAP];
	static struct rx whole, split, bytewise;
	size_t n = build_stream(s, mask);

	rx_init(&whole, role);
	rx_feed(&whole, s, n);
	check_events(&whole);

	for (size_t k = 0; k <= n; k++) {
		rx_init(&split, role);
		rx_feed(&split, s, k);
		rx_feed(&split, s + k, n - k);
		check_events(&split);
		same_events(&whole, &split);
	}

	rx_init(&bytewise, role);
	for (size_t k = 0; k < n; k++)
		rx_feed(&bytewise, s + k, 1);
	check_events(&bytewise);
	same_events(&whole, &bytewise);
	/* Every header byte short of complete was answered with NEED_MORE. */
	cr_assert_gt(bytewise.need_more, whole.need_more);
}

Test(ws_stream, split_at_every_offset_server)
{
	split_everywhere(WS_ROLE_SERVER, key);
}

Test(ws_stream, split_at_every_offset_client)
{
	split_everywhere(WS_ROLE_CLIENT, NULL);
}

Test(ws_stream, growing_prefix_needs_more_until_header_complete)
{
	static uint8_t s[STREAM_CAP];
	size_t n = build_stream(s, key);
	size_t pos = 0;
	struct ws_decoder d;
	ws_decoder_init(&d, WS_ROLE_SERVER, 1024, 4096);
	while (pos < n) {
		struct ws_frame f;
		uint8_t mop;
		bool end;
		enum ws_close cc;
		size_t k = 0;
		enum ws_status st;
		while ((st = ws_decoder_next(&d, s + pos, k, &f, &mop, &end, &cc)) ==
		       WS_NEED_MORE)
			k++;
		cr_assert_eq(st, WS_OK);
		cr_assert_eq(k, f.header_len, "header complete at exactly its length");
		pos += f.header_len + f.payload_len;
	}
	cr_assert_eq(pos, n);
}

/* ---- masking ---- */

static void mask_ref(uint8_t *b, size_t len, const uint8_t m[4], uint64_t off)
{
	for (size_t i = 0; i < len; i++)
		b[i] ^= m[(off + i) % 4];
}

static void fill(uint8_t *b, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		b[i] = (uint8_t)(seed >> 16);
	}
}

Test(ws_mask, matches_bytewise_reference)
{
	static uint8_t src[4200], a[4200 + 8], b[4200 + 8];
	static const size_t lens[] = {0,  1,  2,  3,  4,  5,  7,  8,   9,   15,   16,   17,
	                              31, 32, 33, 39, 63, 64, 65, 100, 127, 1000, 4095, 4096};
	static const uint64_t offs[] = {0,         1, 2, 3, 4, 5, 6, 7, 1001, (1ull << 32) + 3,
	                                UINT64_MAX};
	fill(src, sizeof(src), 1);
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++)
		for (size_t oi = 0; oi < sizeof(offs) / sizeof(offs[0]); oi++)
			for (size_t al = 0; al < 8; al++) {
				size_t len = lens[li];
				memcpy(a + al, src, len);
				memcpy(b + al, src, len);
				ws_mask(a + al, len, key, offs[oi]);
				mask_ref(b + al, len, key, offs[oi]);
				cr_assert_arr_eq(a + al, b + al, len,
				                 "len %zu off %llu align %zu", len,
				                 (unsigned long long)offs[oi], al);
			}
}

Test(ws_mask, every_length_and_offset_small)
{
	uint8_t a[80], b[80], src[80];
	fill(src, sizeof(src), 2);
	for (size_t len = 0; len <= 70; len++)
		for (uint64_t off = 0; off < 8; off++) {
			memcpy(a + 3, src, len);
			memcpy(b + 3, src, len);
			ws_mask(a + 3, len, key, off);
			mask_ref(b + 3, len, key, off);
			cr_assert_arr_eq(a + 3, b + 3, len);
		}
}

Test(ws_mask, leaves_bytes_outside_range_alone)
{
	uint8_t b[64];
	memset(b, 0xaa, sizeof(b));
	ws_mask(b + 5, 37, key, 2);
	for (size_t i = 0; i < 5; i++)
		cr_assert_eq(b[i], 0xaa);
	for (size_t i = 42; i < sizeof(b); i++)
		cr_assert_eq(b[i], 0xaa);
}

Test(ws_mask, twice_is_identity)
{
	static uint8_t src[5000], b[5000];
	fill(src, sizeof(src), 3);
	for (uint64_t off = 0; off < 4; off++)
		for (size_t al = 0; al < 8; al++) {
			size_t len = sizeof(b) - al;
			memcpy(b + al, src, len);
			ws_mask(b + al, len, key, off);
			cr_assert(memcmp(b + al, src, len) != 0);
			ws_mask(b + al, len, key, off);
			cr_assert_arr_eq(b + al, src, len);
		}
}

Test(ws_mask, piecewise_equals_whole)
{
	static uint8_t src[1000], whole[1000], piece[1000];
	fill(src, sizeof(src), 4);
	memcpy(whole, src, sizeof(src));
	ws_mask(whole, sizeof(whole), key, 0);
	for (size_t cut = 0; cut <= sizeof(src); cut += 7) {
		memcpy(piece, src, sizeof(src));
		ws_mask(piece, cut, key, 0);
		ws_mask(piece + cut, sizeof(src) - cut, key, cut);
		cr_assert_arr_eq(piece, whole, sizeof(src), "cut %zu", cut);
	}
}

Test(ws_mask, copy_equals_in_place)
{
	static uint8_t src[3000], in_place[3000], dst[3000 + 8], srcu[3000 + 8];
	static const size_t lens[] = {0, 1, 3, 8, 13, 32, 33, 100, 2999};
	fill(src, sizeof(src), 5);
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++)
		for (uint64_t off = 0; off < 6; off++)
			for (size_t da = 0; da < 8; da += 3)
				for (size_t sa = 0; sa < 8; sa++) {
					size_t len = lens[li];
					memcpy(in_place, src, len);
					ws_mask(in_place, len, key, off);
					memcpy(srcu + sa, src, len);
					memset(dst, 0x55, sizeof(dst));
					ws_mask_copy(dst + da, srcu + sa, len, key, off);
					cr_assert_arr_eq(dst + da, in_place, len);
					cr_assert_arr_eq(srcu + sa, src, len,
					                 "source untouched");
					if (da + len < sizeof(dst))
						cr_assert_eq(dst[da + len], 0x55);
				}
}

Test(ws_mask, rfc_example)
{
	/* RFC 6455 section 5.7: "Hello" masked with 37 fa 21 3d. */
	uint8_t b[] = {'H', 'e', 'l', 'l', 'o'};
	static const uint8_t want[] = {0x7f, 0x9f, 0x4d, 0x51, 0x58};
	ws_mask(b, sizeof(b), key, 0);
	cr_assert_arr_eq(b, want, sizeof(want));
}

/* ---- Close payloads ---- */

Test(ws_close, round_trip)
{
	uint8_t p[WS_MAX_CONTROL_PAYLOAD];
	uint16_t code;
	const uint8_t *reason;
	size_t rlen;
	enum ws_close cc = WS_CLOSE_NONE;

	size_t n = ws_close_payload(p, WS_CLOSE_GOING_AWAY, "server shutting down");
	cr_assert_eq(n, 2 + strlen("server shutting down"));
	cr_assert_eq(p[0], 0x03);
	cr_assert_eq(p[1], 0xe9);
	cr_assert(ws_parse_close(p, n, &code, &reason, &rlen, &cc));
	cr_assert_eq(code, 1001);
	cr_assert_eq(rlen, strlen("server shutting down"));
	cr_assert_arr_eq(reason, "server shutting down", rlen);

	n = ws_close_payload(p, WS_CLOSE_NORMAL, NULL);
	cr_assert_eq(n, 2);
	cr_assert(ws_parse_close(p, n, &code, &reason, &rlen, &cc));
	cr_assert_eq(code, 1000);
	cr_assert_eq(rlen, 0);

	n = ws_close_payload(p, (enum ws_close)4321, "app \xc3\xa9");
	cr_assert(ws_parse_close(p, n, &code, &reason, &rlen, &cc));
	cr_assert_eq(code, 4321);
	cr_assert_eq(rlen, 6);
}

Test(ws_close, none_builds_empty_payload)
{
	uint8_t p[WS_MAX_CONTROL_PAYLOAD];
	cr_assert_eq(ws_close_payload(p, WS_CLOSE_NONE, "ignored"), 0);
	/* Codes that may not be sent on the wire never get into a payload. */
	cr_assert_eq(ws_close_payload(p, WS_CLOSE_NO_STATUS, "x"), 0);
	cr_assert_eq(ws_close_payload(p, WS_CLOSE_ABNORMAL, "x"), 0);
}

Test(ws_close, empty_payload_is_no_status)
{
	uint16_t code = 0;
	const uint8_t *reason;
	size_t rlen = 99;
	enum ws_close cc = WS_CLOSE_NONE;
	cr_assert(ws_parse_close((const uint8_t *)"", 0, &code, &reason, &rlen, &cc));
	cr_assert_eq(code, WS_CLOSE_NO_STATUS);
	cr_assert_eq(rlen, 0);
}

Test(ws_close, reason_truncated_to_fit_125)
{
	char reason[300];
	uint8_t p[WS_MAX_CONTROL_PAYLOAD + 16];
	uint16_t code;
	const uint8_t *r;
	size_t rlen;
	enum ws_close cc;

	memset(reason, 'r', sizeof(reason) - 1);
	reason[sizeof(reason) - 1] = 0;
	memset(p, 0xee, sizeof(p));
	size_t n = ws_close_payload(p, WS_CLOSE_POLICY, reason);
	cr_assert_eq(n, WS_MAX_CONTROL_PAYLOAD);
	cr_assert_eq(p[WS_MAX_CONTROL_PAYLOAD], 0xee, "nothing written past 125 bytes");
	cr_assert(ws_parse_close(p, n, &code, &r, &rlen, &cc));
	cr_assert_eq(code, WS_CLOSE_POLICY);
	cr_assert_eq(rlen, 123);

	/* Exactly 123 bytes of reason fit unchanged. */
	reason[123] = 0;
	cr_assert_eq(ws_close_payload(p, WS_CLOSE_POLICY, reason), 125);
}

Test(ws_close, truncation_keeps_utf8_whole)
{
	/* 'a' then two-byte characters: a cut at 123 bytes would split one in half. */
	char reason[260] = "a";
	for (size_t i = 1; i + 2 < sizeof(reason); i += 2)
		memcpy(reason + i, "\xc3\xa9", 2);
	reason[sizeof(reason) - 1] = 0;
	reason[sizeof(reason) - 2] = 0;
	uint8_t p[WS_MAX_CONTROL_PAYLOAD];
	uint16_t code;
	const uint8_t *r;
	size_t rlen;
	enum ws_close cc;
	size_t n = ws_close_payload(p, WS_CLOSE_NORMAL, reason);
	cr_assert_eq(n, 2 + 123);
	cr_assert(ws_parse_close(p, n, &code, &r, &rlen, &cc));

	/* With two-byte characters from the start, 123 bytes end mid-character. */
	char even[260];
	for (size_t i = 0; i + 2 < sizeof(even); i += 2)
		memcpy(even + i, "\xc3\xa9", 2);
	even[sizeof(even) - 2] = 0;
	n = ws_close_payload(p, WS_CLOSE_NORMAL, even);
	cr_assert_eq(n, 2 + 122);
	cr_assert(ws_parse_close(p, n, &code, &r, &rlen, &cc));

	/* Four-byte characters: 123 = 30 * 4 + 3, so the last one is dropped whole. */
	char four[260];
	for (size_t i = 0; i + 4 < sizeof(four); i += 4)
		memcpy(four + i, "\xf0\x9f\x98\x80", 4);
	four[sizeof(four) - 4] = 0;
	n = ws_close_payload(p, WS_CLOSE_NORMAL, four);
	cr_assert_eq(n, 2 + 120);
	cr_assert(ws_parse_close(p, n, &code, &r, &rlen, &cc));
}

Test(ws_close, one_byte_payload)
{
	uint8_t p[] = {0x03};
	uint16_t code;
	const uint8_t *r;
	size_t rlen;
	enum ws_close cc = WS_CLOSE_NONE;
	cr_assert_not(ws_parse_close(p, 1, &code, &r, &rlen, &cc));
	cr_assert_eq(cc, WS_CLOSE_PROTOCOL);
}

Test(ws_close, invalid_codes)
{
	static const uint16_t bad[] = {0,    1,    999,  1004, 1005, 1006, 1015,
	                               1016, 1100, 2000, 2999, 5000, 6000, 65535};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t p[] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i], 'x'};
		uint16_t code;
		const uint8_t *r;
		size_t rlen;
		enum ws_close cc = WS_CLOSE_NONE;
		cr_assert_not(ws_parse_close(p, sizeof(p), &code, &r, &rlen, &cc), "code %u",
		              bad[i]);
		cr_assert_eq(cc, WS_CLOSE_PROTOCOL, "code %u", bad[i]);
		uint8_t out[WS_MAX_CONTROL_PAYLOAD];
		cr_assert_eq(ws_close_payload(out, (enum ws_close)bad[i], "x"), 0);
	}
}

Test(ws_close, valid_codes)
{
	static const uint16_t good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
	                                1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		uint8_t p[] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i]};
		uint16_t code = 0;
		const uint8_t *r;
		size_t rlen;
		enum ws_close cc = WS_CLOSE_NONE;
		cr_assert(ws_parse_close(p, sizeof(p), &code, &r, &rlen, &cc), "code %u",
		          good[i]);
		cr_assert_eq(code, good[i]);
		uint8_t out[WS_MAX_CONTROL_PAYLOAD];
		cr_assert_eq(ws_close_payload(out, (enum ws_close)good[i], NULL), 2);
	}
}

Test(ws_close, reason_not_utf8)
{
	static const char *bad[] = {"\xff", "ok\xc0\xaf", "\xed\xa0\x80", "trunc\xe2\x82"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t p[WS_MAX_CONTROL_PAYLOAD] = {0x03, 0xe8};
		size_t n = 2 + strlen(bad[i]);
		memcpy(p + 2, bad[i], n - 2);
		uint16_t code;
		const uint8_t *r;
		size_t rlen;
		enum ws_close cc = WS_CLOSE_NONE;
		cr_assert_not(ws_parse_close(p, n, &code, &r, &rlen, &cc), "case %zu", i);
		cr_assert_eq(cc, WS_CLOSE_INVALID_DATA, "case %zu", i);
	}
}

/* ---- UTF-8 ---- */

static bool utf8(const char *s)
{
	return ws_utf8_valid((const uint8_t *)s, strlen(s));
}

Test(ws_utf8, valid_sequences)
{
	cr_assert(ws_utf8_valid(NULL, 0));
	cr_assert(utf8("plain ascii, long enough to take the word-at-a-time path"));
	cr_assert(utf8("\xc2\x80"));                                     /* U+0080 */
	cr_assert(utf8("\xdf\xbf"));                                     /* U+07FF */
	cr_assert(utf8("\xe0\xa0\x80"));                                 /* U+0800 */
	cr_assert(utf8("\xed\x9f\xbf"));                                 /* U+D7FF */
	cr_assert(utf8("\xee\x80\x80"));                                 /* U+E000 */
	cr_assert(utf8("\xef\xbf\xbf"));                                 /* U+FFFF */
	cr_assert(utf8("\xf0\x90\x80\x80"));                             /* U+10000 */
	cr_assert(utf8("\xf4\x8f\xbf\xbf"));                             /* U+10FFFF */
	cr_assert(utf8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")); /* κόσμε */
	cr_assert(utf8("0123456789abcdef0123456789abcdef\xf0\x9f\x98\x80 and more ascii"));
	uint8_t nul[20] = {0};
	cr_assert(ws_utf8_valid(nul, sizeof(nul)));
}

Test(ws_utf8, overlong)
{
	cr_assert_not(utf8("\xc0\x80"));
	cr_assert_not(utf8("\xc1\xbf"));
	cr_assert_not(utf8("\xe0\x80\x80"));
	cr_assert_not(utf8("\xe0\x9f\xbf"));
	cr_assert_not(utf8("\xf0\x80\x80\x80"));
	cr_assert_not(utf8("\xf0\x8f\xbf\xbf"));
	cr_assert_not(utf8("\xc0\xaf"));
}

Test(ws_utf8, surrogates)
{
	cr_assert_not(utf8("\xed\xa0\x80"));
	cr_assert_not(utf8("\xed\xad\xbf"));
	cr_assert_not(utf8("\xed\xb0\x80"));
	cr_assert_not(utf8("\xed\xbf\xbf"));
	cr_assert_not(utf8("\xed\xa0\x80\xed\xb0\x80")); /* a CESU-8 pair */
}

Test(ws_utf8, out_of_range)
{
	cr_assert_not(utf8("\xf4\x90\x80\x80")); /* U+110000 */
	cr_assert_not(utf8("\xf5\x80\x80\x80"));
	cr_assert_not(utf8("\xf7\xbf\xbf\xbf"));
	cr_assert_not(utf8("\xf8\x88\x80\x80\x80"));
	cr_assert_not(utf8("\xfe"));
	cr_assert_not(utf8("\xff"));
}

Test(ws_utf8, truncated_and_stray)
{
	cr_assert_not(utf8("\xc3"));
	cr_assert_not(utf8("\xe2\x82"));
	cr_assert_not(utf8("\xf0\x9f\x98"));
	cr_assert_not(utf8("\xe2\x82"
	                   "A"));
	cr_assert_not(utf8("\xf0\x9f\x98"
	                   "A"));
	cr_assert_not(utf8("\x80"));
	cr_assert_not(utf8("a\xbf"));
	cr_assert_not(utf8("\xc3\xa9\xa9"));
}

Test(ws_utf8, bad_byte_at_every_position_of_ascii_run)
{
	uint8_t b[70];
	for (size_t pos = 0; pos < sizeof(b); pos++) {
		memset(b, 'a', sizeof(b));
		b[pos] = 0x80;
		cr_assert_not(ws_utf8_valid(b, sizeof(b)), "pos %zu", pos);
		cr_assert(ws_utf8_valid(b, pos), "prefix %zu", pos);
		b[pos] = 0xe2; /* truncated when it is the last byte */
		if (pos + 2 < sizeof(b)) {
			b[pos + 1] = 0x82;
			b[pos + 2] = 0xac; /* € */
			cr_assert(ws_utf8_valid(b, sizeof(b)), "pos %zu", pos);
		} else {
			cr_assert_not(ws_utf8_valid(b, sizeof(b)), "pos %zu", pos);
		}
	}
}

/* Reference: decode by bit pattern, then judge the code point. */
static bool utf8_ref(const uint8_t *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		uint8_t c = s[i];
		size_t n;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 2, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 3, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 4, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (len - i < n)
			return false;
		for (size_t j = 1; j < n; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

Test(ws_utf8, exhaustive_up_to_three_bytes)
{
	uint8_t b[3];
	for (unsigned v = 0; v < 256; v++) {
		b[0] = (uint8_t)v;
		cr_assert_eq(ws_utf8_valid(b, 1), utf8_ref(b, 1), "%02x", v);
	}
	for (unsigned v = 0; v < 1u << 16; v++) {
		b[0] = (uint8_t)(v >> 8), b[1] = (uint8_t)v;
		cr_assert_eq(ws_utf8_valid(b, 2), utf8_ref(b, 2), "%04x", v);
	}
	for (unsigned v = 0; v < 1u << 24; v++) {
		b[0] = (uint8_t)(v >> 16), b[1] = (uint8_t)(v >> 8), b[2] = (uint8_t)v;
		if (ws_utf8_valid(b, 3) != utf8_ref(b, 3))
			cr_assert_fail("%06x", v);
	}
}

Test(ws_utf8, four_byte_leads)
{
	static const uint8_t tails[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0xbf, 0xc0, 0xff};
	uint8_t b[4];
	for (unsigned lead = 0xe0; lead < 0x100; lead++)
		for (unsigned s = 0; s < 256; s++)
			for (size_t t = 0; t < sizeof(tails); t++)
				for (size_t u = 0; u < sizeof(tails); u++) {
					b[0] = (uint8_t)lead, b[1] = (uint8_t)s;
					b[2] = tails[t], b[3] = tails[u];
					if (ws_utf8_valid(b, 4) != utf8_ref(b, 4))
						cr_assert_fail("%02x%02x%02x%02x", b[0], b[1],
						               b[2], b[3]);
				}
}
