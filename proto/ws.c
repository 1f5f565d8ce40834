/* proto/ws.c — WebSocket framing (RFC 6455): frame headers, masking, Close payloads,
 * UTF-8 validation and the per-connection message layer. Pure: no I/O, no allocation.
 */
#include "proto/ws.h"

#include <string.h>

#include "proto/cursor.h"

#define WS_FIN 0x80
#define WS_RSV 0x70
#define WS_OPCODE 0x0f
#define WS_MASK_BIT 0x80
#define WS_LEN7 0x7f
#define WS_LEN16_MARK 126
#define WS_LEN64_MARK 127

static bool ws_opcode_known(uint8_t op)
{
	switch (op) {
	case WS_OP_CONT:
	case WS_OP_TEXT:
	case WS_OP_BINARY:
	case WS_OP_CLOSE:
	case WS_OP_PING:
	case WS_OP_PONG:
		return true;
	default:
		return false;
	}
}

static bool ws_opcode_control(uint8_t op)
{
	return (op & 0x08) != 0;
}

static enum ws_status ws_fail(enum ws_close *close_code, enum ws_close code)
{
	*close_code = code;
	return WS_ERROR;
}

/* Every check runs as soon as the bytes it depends on are present, in wire order, so a
 * prefix of a header either needs more bytes or fails exactly as the whole header would. */
enum ws_status ws_decode_header(const uint8_t *buf, size_t len, enum ws_role role,
                                uint64_t max_payload, struct ws_frame *f,
                                enum ws_close *close_code)
{
	struct cur c = cur_init(buf, len);
	uint8_t b0, b1, op, len7;
	uint64_t plen;
	bool fin, masked;

	if (!cur_u8(&c, &b0))
		return WS_NEED_MORE;
	fin = (b0 & WS_FIN) != 0;
	op = b0 & WS_OPCODE;
	if (b0 & WS_RSV)
		return ws_fail(close_code, WS_CLOSE_PROTOCOL);
	if (!ws_opcode_known(op))
		return ws_fail(close_code, WS_CLOSE_PROTOCOL);
	if (ws_opcode_control(op) && !fin)
		return ws_fail(close_code, WS_CLOSE_PROTOCOL);

	if (!cur_u8(&c, &b1))
		return WS_NEED_MORE;
	masked = (b1 & WS_MASK_BIT) != 0;
	len7 = b1 & WS_LEN7;
	/* Clients must mask, servers must not (section 5.1). */
	if (masked != (role == WS_ROLE_SERVER))
		return ws_fail(close_code, WS_CLOSE_PROTOCOL);
	if (ws_opcode_control(op) && len7 > WS_MAX_CONTROL_PAYLOAD)
		return ws_fail(close_code, WS_CLOSE_PROTOCOL);

	if (len7 == WS_LEN16_MARK) {
		uint16_t l16;
		if (!cur_u16(&c, &l16))
			return WS_NEED_MORE;
		if (l16 < WS_LEN16_MARK)
			return ws_fail(close_code, WS_CLOSE_PROTOCOL);
		plen = l16;
	} else if (len7 == WS_LEN64_MARK) {
		uint64_t l64;
		if (!cur_u64(&c, &l64))
			return WS_NEED_MORE;
		if (l64 >> 63)
			return ws_fail(close_code, WS_CLOSE_PROTOCOL);
		if (l64 <= UINT16_MAX)
			return ws_fail(close_code, WS_CLOSE_PROTOCOL);
		plen = l64;
	} else {
		plen = len7;
	}
	if (plen > max_payload)
		return ws_fail(close_code, WS_CLOSE_TOO_BIG);

	if (masked) {
		const uint8_t *key;
		if (!cur_bytes(&c, &key, 4))
			return WS_NEED_MORE;
		memcpy(f->mask, key, 4);
	} else {
		memset(f->mask, 0, 4);
	}
	f->opcode = op;
	f->fin = fin;
	f->masked = masked;
	f->header_len = (uint8_t)(len - c.len);
	f->payload_len = plen;
	return WS_OK;
}

size_t ws_encode_header(uint8_t *out, enum ws_opcode op, bool fin, const uint8_t *mask,
                        uint64_t payload_len)
{
	struct wcur w = wcur_init(out, WS_MAX_HEADER);
	uint8_t mbit = mask ? WS_MASK_BIT : 0;

	wcur_u8(&w, (uint8_t)((fin ? WS_FIN : 0) | ((uint8_t)op & WS_OPCODE)));
	if (payload_len < WS_LEN16_MARK) {
		wcur_u8(&w, (uint8_t)(mbit | payload_len));
	} else if (payload_len <= UINT16_MAX) {
		wcur_u8(&w, mbit | WS_LEN16_MARK);
		wcur_u16(&w, (uint16_t)payload_len);
	} else {
		wcur_u8(&w, mbit | WS_LEN64_MARK);
		wcur_u64(&w, payload_len);
	}
	if (mask)
		wcur_bytes(&w, mask, 4);
	return wcur_done(&w);
}

/* The key as 8 bytes starting at payload offset `offset`: since 8 is a multiple of 4, the
 * same word applies to every 8-byte step that follows. Built bytewise and loaded with
 * memcpy so it is right on either endianness. */
static inline uint64_t ws_key64(const uint8_t mask[4], uint64_t offset, uint8_t k[8])
{
	uint64_t key;
	for (unsigned i = 0; i < 8; i++)
		k[i] = mask[(offset + i) & 3];
	memcpy(&key, k, 8);
	return key;
}

void ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t offset)
{
	uint8_t k[8];
	uint64_t key = ws_key64(mask, offset, k);
	size_t i = 0;

	/* Four independent words per step: memcpy keeps unaligned access defined and the
	 * compiler turns the group into vector loads/stores. */
	for (; len - i >= 32; i += 32) {
		uint64_t w0, w1, w2, w3;
		memcpy(&w0, buf + i, 8);
		memcpy(&w1, buf + i + 8, 8);
		memcpy(&w2, buf + i + 16, 8);
		memcpy(&w3, buf + i + 24, 8);
		w0 ^= key;
		w1 ^= key;
		w2 ^= key;
		w3 ^= key;
		memcpy(buf + i, &w0, 8);
		memcpy(buf + i + 8, &w1, 8);
		memcpy(buf + i + 16, &w2, 8);
		memcpy(buf + i + 24, &w3, 8);
	}
	for (; len - i >= 8; i += 8) {
		uint64_t w;
		memcpy(&w, buf + i, 8);
		w ^= key;
		memcpy(buf + i, &w, 8);
	}
	for (; i < len; i++)
		buf[i] ^= k[i & 7];
}

void ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4],
                  uint64_t offset)
{
	uint8_t k[8];
	uint64_t key = ws_key64(mask, offset, k);
	size_t i = 0;

	for (; len - i >= 32; i += 32) {
		uint64_t w0, w1, w2, w3;
		memcpy(&w0, src + i, 8);
		memcpy(&w1, src + i + 8, 8);
		memcpy(&w2, src + i + 16, 8);
		memcpy(&w3, src + i + 24, 8);
		w0 ^= key;
		w1 ^= key;
		w2 ^= key;
		w3 ^= key;
		memcpy(dst + i, &w0, 8);
		memcpy(dst + i + 8, &w1, 8);
		memcpy(dst + i + 16, &w2, 8);
		memcpy(dst + i + 24, &w3, 8);
	}
	for (; len - i >= 8; i += 8) {
		uint64_t w;
		memcpy(&w, src + i, 8);
		w ^= key;
		memcpy(dst + i, &w, 8);
	}
	for (; i < len; i++)
		dst[i] = src[i] ^ k[i & 7];
}

/* Codes a peer may put in a Close frame: the RFC's own (minus 1004, 1005, 1006 and 1015,
 * which are reserved or local-only), IANA's later registrations 1012-1014, and the
 * library/application ranges. */
static bool ws_close_code_valid(uint16_t code)
{
	if (code >= 1000 && code <= 1003)
		return true;
	if (code >= 1007 && code <= 1014)
		return true;
	return code >= 3000 && code <= 4999;
}

/* Length of the longest prefix of s[0..len) that does not end inside a UTF-8 sequence. */
static size_t ws_utf8_boundary(const uint8_t *s, size_t len)
{
	size_t i = len;
	unsigned back = 0;

	while (i > 0 && back < 4 && (s[i - 1] & 0xc0) == 0x80) {
		i--;
		back++;
	}
	if (i == 0)
		return len;
	uint8_t lead = s[i - 1];
	size_t need = lead < 0x80    ? 1
	              : lead >= 0xf0 ? 4
	              : lead >= 0xe0 ? 3
	              : lead >= 0xc0 ? 2
	                             : 1;
	/* A complete sequence (or a byte that cannot start one) stays; a cut one goes. */
	if (need == 1 || back + 1 >= need)
		return len;
	return i - 1;
}

size_t ws_close_payload(uint8_t *out, enum ws_close code, const char *reason)
{
	size_t rlen = reason ? strlen(reason) : 0;

	if (code == WS_CLOSE_NONE || code > UINT16_MAX || !ws_close_code_valid((uint16_t)code))
		return 0;
	out[0] = (uint8_t)((unsigned)code >> 8);
	out[1] = (uint8_t)code;
	if (rlen > WS_MAX_CONTROL_PAYLOAD - 2)
		rlen = ws_utf8_boundary((const uint8_t *)reason, WS_MAX_CONTROL_PAYLOAD - 2);
	if (rlen)
		memcpy(out + 2, reason, rlen);
	return 2 + rlen;
}

bool ws_parse_close(const uint8_t *p, size_t len, uint16_t *code, const uint8_t **reason,
                    size_t *reason_len, enum ws_close *close_code)
{
	*reason = p;
	*reason_len = 0;
	if (len == 0) {
		*code = WS_CLOSE_NO_STATUS;
		return true;
	}
	if (len == 1 || len > WS_MAX_CONTROL_PAYLOAD) {
		*code = 0;
		*close_code = WS_CLOSE_PROTOCOL;
		return false;
	}
	*code = (uint16_t)((uint16_t)p[0] << 8 | p[1]);
	if (!ws_close_code_valid(*code)) {
		*close_code = WS_CLOSE_PROTOCOL;
		return false;
	}
	if (!ws_utf8_valid(p + 2, len - 2)) {
		*close_code = WS_CLOSE_INVALID_DATA;
		return false;
	}
	*reason = p + 2;
	*reason_len = len - 2;
	return true;
}

#define WS_HIGH_BITS 0x8080808080808080ull

/* Well-formed sequences per RFC 3629 section 4: the second byte's range depends on the
 * lead byte, which is what rules out overlongs, surrogates and values past U+10FFFF. */
bool ws_utf8_valid(const uint8_t *buf, size_t len)
{
	size_t i = 0;

	while (i < len) {
		/* Text is mostly ASCII: skip it a word at a time. */
		while (len - i >= 16) {
			uint64_t a, b;
			memcpy(&a, buf + i, 8);
			memcpy(&b, buf + i + 8, 8);
			if ((a | b) & WS_HIGH_BITS)
				break;
			i += 16;
		}
		if (i == len)
			break;
		uint8_t c = buf[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		uint8_t lo = 0x80, hi = 0xbf;
		size_t n;
		if (c >= 0xc2 && c <= 0xdf) {
			n = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 3;
			if (c == 0xe0)
				lo = 0xa0; /* below: overlong */
			else if (c == 0xed)
				hi = 0x9f; /* above: surrogates */
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 4;
			if (c == 0xf0)
				lo = 0x90; /* below: overlong */
			else if (c == 0xf4)
				hi = 0x8f; /* above: past U+10FFFF */
		} else {
			return false; /* continuation, C0/C1 overlong lead, or F5..FF */
		}
		if (len - i < n)
			return false;
		if (buf[i + 1] < lo || buf[i + 1] > hi)
			return false;
		for (size_t j = 2; j < n; j++)
			if ((buf[i + j] & 0xc0) != 0x80)
				return false;
		i += n;
	}
	return true;
}

void ws_decoder_init(struct ws_decoder *d, enum ws_role role, uint64_t max_payload,
                     uint64_t max_message)
{
	*d = (struct ws_decoder){
	        .role = role,
	        .max_payload = max_payload,
	        .max_message = max_message,
	};
}

enum ws_status ws_decoder_next(struct ws_decoder *d, const uint8_t *buf, size_t len,
                               struct ws_frame *f, uint8_t *msg_opcode, bool *msg_end,
                               enum ws_close *close_code)
{
	enum ws_status st = ws_decode_header(buf, len, d->role, d->max_payload, f, close_code);
	uint64_t total;

	if (st != WS_OK)
		return st;

	if (ws_opcode_control(f->opcode)) {
		*msg_opcode = f->opcode;
		*msg_end = true;
		return WS_OK;
	}

	if (f->opcode == WS_OP_CONT) {
		if (d->msg_opcode == 0)
			return ws_fail(close_code, WS_CLOSE_PROTOCOL);
		total = d->msg_len + f->payload_len;
		if (total < d->msg_len)
			total = UINT64_MAX; /* saturate: only reachable without a limit */
	} else {
		if (d->msg_opcode != 0)
			return ws_fail(close_code, WS_CLOSE_PROTOCOL);
		total = f->payload_len;
	}
	if (d->max_message && total > d->max_message)
		return ws_fail(close_code, WS_CLOSE_TOO_BIG);

	*msg_opcode = f->opcode == WS_OP_CONT ? d->msg_opcode : f->opcode;
	*msg_end = f->fin;
	if (f->fin) {
		d->msg_opcode = 0;
		d->msg_len = 0;
	} else {
		d->msg_opcode = *msg_opcode;
		d->msg_len = total;
	}
	return WS_OK;
}
