/* fuzz/tunnel_msg.c — libFuzzer driver for the tunnel message codec (proto/tunnel.c).
 *
 * Each input is one whole tunnel message. Whatever decodes is encoded again: for a known
 * type the encoding must be the input itself (with flags cleared, as senders send 0), and
 * decoding it again must give the same message.
 */
#include "proto/tunnel.h"

#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                                               \
	do {                                                                                   \
		if (!(x))                                                                      \
			abort();                                                               \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool str_eq(struct tun_str a, struct tun_str b)
{
	return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* Copy a tun_str into a C string for the RST/GOAWAY encoders; false if it holds a NUL
 * (the C-string encoders would cut it there). */
static bool c_string(char *dst, struct tun_str s)
{
	memcpy(dst, s.p, s.len);
	dst[s.len] = 0;
	return memchr(s.p, 0, s.len) == NULL;
}

static size_t reencode(const struct tun_msg *m, uint8_t *out, size_t cap, bool *exact)
{
	char text[TUN_MAX_STR + 1];
	size_t n;

	*exact = true;
	switch (m->type) {
	case TUN_HELLO:
		return tun_encode_hello(out, cap, &m->u.hello);
	case TUN_WELCOME:
		return tun_encode_welcome(out, cap, &m->u.welcome);
	case TUN_OPEN:
		return tun_encode_open(out, cap, m->stream, &m->u.open);
	case TUN_DATA:
		n = tun_encode_data_header(out, cap, m->stream);
		CHECK(n == TUN_HEADER_LEN && cap - n >= m->u.data.len);
		memcpy(out + n, m->u.data.p, m->u.data.len);
		return n + m->u.data.len;
	case TUN_FIN:
		return tun_encode_fin(out, cap, m->stream);
	case TUN_RST:
		*exact = c_string(text, m->u.rst.text);
		return tun_encode_rst(out, cap, m->stream, m->u.rst.reason, text);
	case TUN_GOAWAY:
		*exact = c_string(text, m->u.goaway.text);
		return tun_encode_goaway(out, cap, m->u.goaway.reason, text);
	case TUN_WINDOW:
		return tun_encode_window(out, cap, m->stream, m->u.window);
	case TUN_PING:
	case TUN_PONG:
		return tun_encode_ping(out, cap, m->type == TUN_PONG, m->u.ping);
	default:
		return 0;
	}
}

static void same(const struct tun_msg *a, const struct tun_msg *b)
{
	CHECK(a->type == b->type && a->stream == b->stream);
	CHECK(b->flags == (a->type == TUN_OPEN ? a->u.open.flags : 0));
	switch (a->type) {
	case TUN_HELLO: {
		const struct tun_hello *x = &a->u.hello, *y = &b->u.hello;
		CHECK(x->version_min == y->version_min && x->version_max == y->version_max);
		CHECK(x->caps == y->caps && x->window == y->window &&
		      x->max_frame == y->max_frame);
		CHECK(x->lane == y->lane && x->session == y->session);
		CHECK(str_eq(x->client_id, y->client_id) && str_eq(x->upstream, y->upstream));
		CHECK(x->nports == y->nports);
		CHECK(memcmp(x->ports, y->ports, x->nports * sizeof(x->ports[0])) == 0);
		break;
	}
	case TUN_WELCOME: {
		const struct tun_welcome *x = &a->u.welcome, *y = &b->u.welcome;
		CHECK(x->version == y->version && x->caps == y->caps && x->window == y->window);
		CHECK(x->max_frame == y->max_frame && x->lanes == y->lanes);
		CHECK(x->session == y->session && x->nports == y->nports);
		for (size_t i = 0; i < x->nports; i++)
			CHECK(x->ports[i].port == y->ports[i].port &&
			      x->ports[i].status == y->ports[i].status);
		break;
	}
	case TUN_OPEN:
		CHECK(a->u.open.port == b->u.open.port);
		CHECK(str_eq(a->u.open.remote, b->u.open.remote));
		CHECK(str_eq(a->u.open.local, b->u.open.local));
		CHECK(a->u.open.flags == b->u.open.flags);
		break;
	case TUN_DATA:
		CHECK(a->u.data.len == b->u.data.len);
		CHECK(memcmp(a->u.data.p, b->u.data.p, a->u.data.len) == 0);
		break;
	case TUN_RST:
	case TUN_GOAWAY:
		CHECK(a->u.rst.reason == b->u.rst.reason);
		CHECK(str_eq(a->u.rst.text, b->u.rst.text));
		break;
	case TUN_WINDOW:
		CHECK(a->u.window == b->u.window);
		break;
	case TUN_PING:
	case TUN_PONG:
		CHECK(a->u.ping == b->u.ping);
		break;
	default:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[1 << 20];
	struct tun_msg m, h, again;
	const char *why = NULL;
	enum tun_status hs, st;
	bool exact;
	size_t n;

	hs = tun_decode_header(data, size, &h);
	CHECK((hs == TUN_NEED_MORE) == (size < TUN_HEADER_LEN));
	st = tun_decode(data, size, &m, &why);
	if (st == TUN_ERROR) {
		CHECK(why != NULL && why[0] != 0);
		return 0;
	}
	CHECK(st == TUN_OK && hs == TUN_OK);
	CHECK(m.type == h.type && m.flags == h.flags && m.stream == h.stream);
	CHECK(m.type == TUN_DATA || size <= TUN_MAX_CONTROL);
	if (size > sizeof(out))
		return 0;

	n = reencode(&m, out, sizeof(out), &exact);
	if (n == 0) {
		CHECK(strcmp(tun_type_name(m.type), "unknown") == 0);
		return 0;
	}
	/* A known message has exactly one encoding: the input, flags aside (only OPEN defines
	 * flags; the encoder sends those and drops undefined bits). */
	if (exact) {
		CHECK(n == size);
		CHECK(out[0] == data[0]);
		CHECK(out[1] == (m.type == TUN_OPEN
		                         ? (data[1] & (TUN_OPEN_PROXY_V1 | TUN_OPEN_PROXY_V2))
		                         : 0));
		CHECK(memcmp(out + 2, data + 2, size - 2) == 0);
	}
	/* One byte less never fits (DATA's payload is the caller's to copy). */
	if (m.type != TUN_DATA) {
		bool ignored;
		CHECK(reencode(&m, out, n - 1, &ignored) == 0);
		reencode(&m, out, sizeof(out), &ignored);
	}
	if (exact) {
		CHECK(tun_decode(out, n, &again, NULL) == TUN_OK);
		same(&m, &again);
	}
	return 0;
}
