/* fuzz/ws_frame.c — libFuzzer driver for proto/ws.c.
 *
 * The input is read as a stream of WebSocket frames, once per role: decode a header,
 * unmask and inspect the payload bytes that are present, skip to the next header, repeat
 * until the input runs out or a header is rejected. Both the bare header decoder and the
 * message layer (struct ws_decoder) walk the stream; every step checks invariants that a
 * crash-only fuzzer would miss (re-encoding, prefix consistency, masking identities,
 * UTF-8 and Close parsing against simple reference code).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/ws.h"

#define CHECK(cond)                                                                            \
	do {                                                                                   \
		if (!(cond))                                                                   \
			__builtin_trap();                                                      \
	} while (0)

/* Limits for the message-layer pass, small enough that the fuzzer reaches them. */
#define FUZZ_MAX_PAYLOAD 4096
#define FUZZ_MAX_MESSAGE 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decode by bit pattern, then judge the code point: a different route from ws.c's. */
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

static bool close_code_ok(uint16_t c)
{
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

static void check_close(const uint8_t *p, size_t len)
{
	uint16_t code;
	const uint8_t *reason;
	size_t rlen;
	enum ws_close cc = WS_CLOSE_NONE;
	bool ok = ws_parse_close(p, len, &code, &reason, &rlen, &cc);

	if (len == 0) {
		CHECK(ok && code == WS_CLOSE_NO_STATUS && rlen == 0);
		return;
	}
	if (len == 1 || len > WS_MAX_CONTROL_PAYLOAD) {
		CHECK(!ok && cc == WS_CLOSE_PROTOCOL);
		return;
	}
	uint16_t want = (uint16_t)(p[0] << 8 | p[1]);
	bool reason_ok = utf8_ref(p + 2, len - 2);
	if (!close_code_ok(want)) {
		CHECK(!ok && cc == WS_CLOSE_PROTOCOL);
	} else if (!reason_ok) {
		CHECK(!ok && cc == WS_CLOSE_INVALID_DATA);
	} else {
		CHECK(ok && code == want && reason == p + 2 && rlen == len - 2);
	}
}

/* Unmask the present part of a payload three ways and check they agree. */
static void check_payload(const struct ws_frame *f, const uint8_t *wire, size_t avail,
                          uint8_t *a, uint8_t *b)
{
	memcpy(a, wire, avail);
	if (f->masked) {
		size_t cut = avail / 3;
		ws_mask(a, cut, f->mask, 0);
		ws_mask(a + cut, avail - cut, f->mask, cut);
		ws_mask_copy(b, wire, avail, f->mask, 0);
		CHECK(memcmp(a, b, avail) == 0);
		for (size_t i = 0; i < avail; i++)
			CHECK(a[i] == (uint8_t)(wire[i] ^ f->mask[i & 3]));
		ws_mask(b, avail, f->mask, 0);
		CHECK(memcmp(b, wire, avail) == 0);
	}
	CHECK(ws_utf8_valid(a, avail) == utf8_ref(a, avail));
	if (f->opcode == WS_OP_CLOSE && avail == f->payload_len)
		check_close(a, avail);
}

/* The header at p (which decoded to st/code from `len` bytes): every shorter prefix
 * must need more bytes or fail the same way, and a good header must re-encode to
 * exactly the same bytes, since only minimal encodings are accepted. */
static void check_header(const uint8_t *p, size_t len, enum ws_role role, uint64_t max,
                         enum ws_status st, const struct ws_frame *f, enum ws_close code)
{
	size_t upto = st == WS_OK ? f->header_len : len;
	if (upto > WS_MAX_HEADER)
		upto = WS_MAX_HEADER;
	for (size_t k = 0; k < upto; k++) {
		struct ws_frame g;
		enum ws_close c = WS_CLOSE_NONE;
		enum ws_status s = ws_decode_header(p, k, role, max, &g, &c);
		if (st == WS_OK)
			CHECK(s == WS_NEED_MORE);
		else
			CHECK(s == WS_NEED_MORE || (s == WS_ERROR && c == code));
	}
	if (st == WS_ERROR)
		CHECK(code == WS_CLOSE_PROTOCOL || code == WS_CLOSE_TOO_BIG);
	if (st != WS_OK)
		return;
	uint8_t out[WS_MAX_HEADER];
	size_t n = ws_encode_header(out, (enum ws_opcode)f->opcode, f->fin,
	                            f->masked ? f->mask : NULL, f->payload_len);
	CHECK(n == f->header_len && n <= len && memcmp(out, p, n) == 0);
	CHECK(f->payload_len <= max && f->payload_len < (1ull << 63));
	CHECK(f->masked == (role == WS_ROLE_SERVER));
	if (f->opcode & 0x08)
		CHECK(f->fin && f->payload_len <= WS_MAX_CONTROL_PAYLOAD);
}

static void walk_headers(const uint8_t *data, size_t size, enum ws_role role, uint8_t *a,
                         uint8_t *b)
{
	size_t pos = 0;
	while (pos < size) {
		struct ws_frame f;
		enum ws_close cc = WS_CLOSE_NONE;
		size_t left = size - pos;
		enum ws_status st =
		        ws_decode_header(data + pos, left, role, UINT64_MAX, &f, &cc);
		check_header(data + pos, left, role, UINT64_MAX, st, &f, cc);
		if (st != WS_OK)
			return;
		left -= f.header_len;
		size_t avail = f.payload_len < left ? (size_t)f.payload_len : left;
		check_payload(&f, data + pos + f.header_len, avail, a, b);
		if (f.payload_len > left)
			return;
		pos += f.header_len + (size_t)f.payload_len;
	}
}

static void walk_messages(const uint8_t *data, size_t size, enum ws_role role)
{
	struct ws_decoder d;
	uint8_t open = 0; /* the model: opcode of the open message */
	uint64_t open_len = 0;
	size_t pos = 0;

	ws_decoder_init(&d, role, FUZZ_MAX_PAYLOAD, FUZZ_MAX_MESSAGE);
	while (pos < size) {
		struct ws_frame f, h;
		uint8_t mop = 0xff;
		bool end = false;
		enum ws_close cc = WS_CLOSE_NONE, hc = WS_CLOSE_NONE;
		size_t left = size - pos;
		enum ws_status st = ws_decoder_next(&d, data + pos, left, &f, &mop, &end, &cc);
		enum ws_status hs =
		        ws_decode_header(data + pos, left, role, FUZZ_MAX_PAYLOAD, &h, &hc);

		if (hs != WS_OK) {
			CHECK(st == hs && (hs != WS_ERROR || cc == hc));
			CHECK(d.msg_opcode == open && d.msg_len == open_len);
			return;
		}
		CHECK(h.header_len <= left);
		bool control = h.opcode & 0x08;
		if (control) {
			CHECK(st == WS_OK && mop == h.opcode && end);
		} else if (h.opcode == WS_OP_CONT ? open == 0 : open != 0) {
			CHECK(st == WS_ERROR && cc == WS_CLOSE_PROTOCOL);
			return;
		} else {
			uint64_t total =
			        (h.opcode == WS_OP_CONT ? open_len : 0) + h.payload_len;
			if (total > FUZZ_MAX_MESSAGE) {
				CHECK(st == WS_ERROR && cc == WS_CLOSE_TOO_BIG);
				return;
			}
			CHECK(st == WS_OK && end == h.fin);
			CHECK(mop == (h.opcode == WS_OP_CONT ? open : h.opcode));
			open = h.fin ? 0 : mop;
			open_len = h.fin ? 0 : total;
		}
		CHECK(d.msg_opcode == open && d.msg_len == open_len);
		CHECK(f.header_len == h.header_len && f.payload_len == h.payload_len);
		if (h.payload_len > left - h.header_len)
			return;
		pos += h.header_len + (size_t)h.payload_len;
	}
}

/* Build a Close payload from the input's first bytes and parse it back. */
static void close_round_trip(const uint8_t *data, size_t size)
{
	char reason[200];
	uint8_t p[WS_MAX_CONTROL_PAYLOAD + 1];
	if (size < 2)
		return;
	uint16_t code = (uint16_t)(data[0] << 8 | data[1]);
	size_t rlen = size - 2 < sizeof(reason) - 1 ? size - 2 : sizeof(reason) - 1;
	memcpy(reason, data + 2, rlen);
	reason[rlen] = 0;
	rlen = strlen(reason);
	size_t n = ws_close_payload(p, (enum ws_close)code, reason);
	if (!close_code_ok(code)) {
		CHECK(n == 0);
		return;
	}
	CHECK(n >= 2 && n <= WS_MAX_CONTROL_PAYLOAD);
	CHECK(memcmp(p + 2, reason, n - 2) == 0);
	if (rlen <= WS_MAX_CONTROL_PAYLOAD - 2)
		CHECK(n == 2 + rlen);
	else
		CHECK(n + 3 >= WS_MAX_CONTROL_PAYLOAD); /* drops at most one partial char */
	if (utf8_ref((const uint8_t *)reason, rlen)) {
		uint16_t got;
		const uint8_t *r;
		size_t gl;
		enum ws_close cc;
		CHECK(ws_parse_close(p, n, &got, &r, &gl, &cc) && got == code);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *a = malloc(size ? size : 1), *b = malloc(size ? size : 1);
	if (!a || !b) {
		free(a);
		free(b);
		return 0;
	}
	walk_headers(data, size, WS_ROLE_SERVER, a, b);
	walk_headers(data, size, WS_ROLE_CLIENT, a, b);
	walk_messages(data, size, WS_ROLE_SERVER);
	walk_messages(data, size, WS_ROLE_CLIENT);
	CHECK(ws_utf8_valid(data, size) == utf8_ref(data, size));
	close_round_trip(data, size);
	free(a);
	free(b);
	return 0;
}
