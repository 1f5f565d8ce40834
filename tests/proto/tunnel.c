/* tests/proto/tunnel.c — the tunnel message codec (proto/tunnel.c). */
#include "proto/tunnel.h"

#include <criterion/criterion.h>
#include <string.h>

#define BUF 4096

static char long_str[300]; /* 299 'x' and a NUL: truncated to TUN_MAX_STR */
static char max_str[TUN_MAX_STR + 1];
static char long_cut[TUN_MAX_STR + 1]; /* long_str as it goes on the wire */

static void init_strings(void)
{
	memset(long_str, 'x', sizeof(long_str) - 1);
	long_str[sizeof(long_str) - 1] = 0;
	memset(max_str, 'm', TUN_MAX_STR);
	max_str[TUN_MAX_STR] = 0;
	memcpy(long_cut, long_str, TUN_MAX_STR);
	long_cut[TUN_MAX_STR] = 0;
}

static bool str_eq(struct tun_str s, const char *want)
{
	return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static enum tun_status decode(const uint8_t *buf, size_t len, struct tun_msg *m)
{
	const char *why = NULL;
	enum tun_status st = tun_decode(buf, len, m, &why);
	if (st == TUN_ERROR)
		cr_assert(why != NULL && *why, "an error must say why");
	return st;
}

/* Sample messages, one per type, with content in every field. */
static struct tun_hello sample_hello(void)
{
	struct tun_hello h = {
	        .version_min = 1,
	        .version_max = 3,
	        .caps = TUN_CAP_ZERO_MASK | TUN_CAP_LANES,
	        .window = 256 * 1024,
	        .max_frame = 64 * 1024,
	        .lane = 2,
	        .session = 0x0123456789abcdefull,
	        .client_id = tun_str_from("client-a"),
	        .upstream = tun_str_from("127.0.0.1"),
	        .nports = 2,
	        .ports = {80, 443},
	};
	return h;
}

static struct tun_welcome sample_welcome(void)
{
	struct tun_welcome w = {
	        .version = 1,
	        .caps = TUN_CAP_LANES,
	        .window = 1 << 20,
	        .max_frame = 32 * 1024,
	        .lanes = 4,
	        .session = 42,
	        .nports = 2,
	        .ports = {{80, TUN_PORT_OK}, {443, TUN_PORT_IN_USE}},
	};
	return w;
}

static size_t enc_hello(uint8_t *o, size_t cap)
{
	struct tun_hello h = sample_hello();
	return tun_encode_hello(o, cap, &h);
}
static size_t enc_welcome(uint8_t *o, size_t cap)
{
	struct tun_welcome w = sample_welcome();
	return tun_encode_welcome(o, cap, &w);
}
static size_t enc_open(uint8_t *o, size_t cap)
{
	struct tun_open op = {.port = 80,
	                      .remote = tun_str_from("203.0.113.7:51234"),
	                      .local = tun_str_from("198.51.100.1:80")};
	return tun_encode_open(o, cap, 1, &op);
}
static size_t enc_data(uint8_t *o, size_t cap)
{
	return tun_encode_data_header(o, cap, 3);
}
static size_t enc_fin(uint8_t *o, size_t cap)
{
	return tun_encode_fin(o, cap, 5);
}
static size_t enc_rst(uint8_t *o, size_t cap)
{
	return tun_encode_rst(o, cap, 7, TUN_RST_REFUSED, "connection refused");
}
static size_t enc_window(uint8_t *o, size_t cap)
{
	return tun_encode_window(o, cap, 9, 65536);
}
static size_t enc_ping(uint8_t *o, size_t cap)
{
	return tun_encode_ping(o, cap, false, 123456789);
}
static size_t enc_pong(uint8_t *o, size_t cap)
{
	return tun_encode_ping(o, cap, true, 123456789);
}
static size_t enc_goaway(uint8_t *o, size_t cap)
{
	return tun_encode_goaway(o, cap, TUN_GOAWAY_NORMAL, "draining");
}

static const struct {
	uint8_t type;
	size_t (*enc)(uint8_t *out, size_t cap);
} samples[] = {
        {TUN_HELLO, enc_hello},   {TUN_WELCOME, enc_welcome}, {TUN_OPEN, enc_open},
        {TUN_DATA, enc_data},     {TUN_FIN, enc_fin},         {TUN_RST, enc_rst},
        {TUN_WINDOW, enc_window}, {TUN_PING, enc_ping},       {TUN_PONG, enc_pong},
        {TUN_GOAWAY, enc_goaway},
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

TestSuite(tunnel, .init = init_strings);

/* ---- round trips ---- */

static void check_hello(const struct tun_hello *h)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	size_t n = tun_encode_hello(buf, sizeof(buf), h);
	cr_assert_gt(n, 0);
	cr_assert_leq(n, TUN_MAX_CONTROL);
	cr_assert_eq(decode(buf, n, &m), TUN_OK);
	cr_assert_eq(m.type, TUN_HELLO);
	cr_assert_eq(m.flags, 0);
	cr_assert_eq(m.stream, 0);
	cr_assert_eq(m.u.hello.version_min, h->version_min);
	cr_assert_eq(m.u.hello.version_max, h->version_max);
	cr_assert_eq(m.u.hello.caps, h->caps);
	cr_assert_eq(m.u.hello.window, h->window);
	cr_assert_eq(m.u.hello.max_frame, h->max_frame);
	cr_assert_eq(m.u.hello.lane, h->lane);
	cr_assert_eq(m.u.hello.session, h->session);
	cr_assert_eq(m.u.hello.client_id.len, h->client_id.len);
	cr_assert_eq(memcmp(m.u.hello.client_id.p, h->client_id.p, h->client_id.len), 0);
	cr_assert_eq(m.u.hello.upstream.len, h->upstream.len);
	cr_assert_eq(memcmp(m.u.hello.upstream.p, h->upstream.p, h->upstream.len), 0);
	cr_assert_eq(m.u.hello.nports, h->nports);
	for (size_t i = 0; i < h->nports; i++)
		cr_assert_eq(m.u.hello.ports[i], h->ports[i]);
}

Test(tunnel, hello_round_trip)
{
	struct tun_hello h = sample_hello();
	check_hello(&h);

	struct tun_hello lo = {
	        .max_frame = 1, .client_id = tun_str_from(""), .upstream = tun_str_from(NULL)};
	check_hello(&lo);

	struct tun_hello hi = {
	        .version_min = UINT16_MAX,
	        .version_max = UINT16_MAX,
	        .caps = UINT32_MAX,
	        .window = UINT32_MAX,
	        .max_frame = UINT32_MAX,
	        .lane = UINT16_MAX,
	        .session = UINT64_MAX,
	        .client_id = tun_str_from(max_str),
	        .upstream = tun_str_from(long_str),
	        .nports = TUN_MAX_PORTS,
	};
	for (int i = 0; i < TUN_MAX_PORTS; i++)
		hi.ports[i] = (uint16_t)(UINT16_MAX - i);
	cr_assert_eq(hi.upstream.len, TUN_MAX_STR);
	check_hello(&hi);
}

static void check_welcome(const struct tun_welcome *w)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	size_t n = tun_encode_welcome(buf, sizeof(buf), w);
	cr_assert_gt(n, 0);
	cr_assert_leq(n, TUN_MAX_CONTROL);
	cr_assert_eq(decode(buf, n, &m), TUN_OK);
	cr_assert_eq(m.type, TUN_WELCOME);
	cr_assert_eq(m.stream, 0);
	cr_assert_eq(m.u.welcome.version, w->version);
	cr_assert_eq(m.u.welcome.caps, w->caps);
	cr_assert_eq(m.u.welcome.window, w->window);
	cr_assert_eq(m.u.welcome.max_frame, w->max_frame);
	cr_assert_eq(m.u.welcome.lanes, w->lanes);
	cr_assert_eq(m.u.welcome.session, w->session);
	cr_assert_eq(m.u.welcome.nports, w->nports);
	for (size_t i = 0; i < w->nports; i++) {
		cr_assert_eq(m.u.welcome.ports[i].port, w->ports[i].port);
		cr_assert_eq(m.u.welcome.ports[i].status, w->ports[i].status);
	}
}

Test(tunnel, welcome_round_trip)
{
	struct tun_welcome w = sample_welcome();
	check_welcome(&w);

	struct tun_welcome lo = {.max_frame = 1};
	check_welcome(&lo);

	struct tun_welcome hi = {
	        .version = UINT16_MAX,
	        .caps = UINT32_MAX,
	        .window = UINT32_MAX,
	        .max_frame = UINT32_MAX,
	        .lanes = UINT16_MAX,
	        .session = UINT64_MAX,
	        .nports = TUN_MAX_PORTS,
	};
	for (int i = 0; i < TUN_MAX_PORTS; i++)
		hi.ports[i] =
		        (struct tun_port_result){(uint16_t)(i + 1), (uint16_t)(UINT16_MAX - i)};
	check_welcome(&hi);
}

static void check_open(uint32_t stream, uint16_t port, const char *remote, const char *local)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	struct tun_open o = {port, tun_str_from(remote), tun_str_from(local), 0};
	size_t n = tun_encode_open(buf, sizeof(buf), stream, &o);
	cr_assert_gt(n, 0);
	cr_assert_eq(decode(buf, n, &m), TUN_OK);
	cr_assert_eq(m.type, TUN_OPEN);
	cr_assert_eq(m.stream, stream);
	cr_assert_eq(m.u.open.port, port);
	cr_assert(str_eq(m.u.open.remote, remote));
	cr_assert_eq(m.u.open.local.len, o.local.len);
	cr_assert_eq(memcmp(m.u.open.local.p, o.local.p, o.local.len), 0);
}

Test(tunnel, open_round_trip)
{
	check_open(1, 80, "203.0.113.7:51234", "[2001:db8::1]:80");
	check_open(UINT32_MAX, UINT16_MAX, "", "");
	check_open(2, 1, max_str, long_str);
	cr_assert_eq(tun_str_from(long_str).len, TUN_MAX_STR, "local was cut to 255");
}

/* OPEN's header flags ask the client for a PROXY header; unknown flag bits are dropped. */
Test(tunnel, open_proxy_flags)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	const uint8_t flags[] = {0, TUN_OPEN_PROXY_V1, TUN_OPEN_PROXY_V2};
	for (size_t i = 0; i < sizeof(flags); i++) {
		struct tun_open o = {80, tun_str_from("1.2.3.4:5"), tun_str_from("6.7.8.9:80"),
		                     flags[i]};
		size_t n = tun_encode_open(buf, sizeof(buf), 7, &o);
		cr_assert_gt(n, 0);
		cr_assert_eq(buf[1], flags[i], "the flags travel in the header");
		cr_assert_eq(decode(buf, n, &m), TUN_OK);
		cr_assert_eq(m.u.open.flags, flags[i]);
	}
	struct tun_open o = {80, tun_str_from("a"), tun_str_from("b"), 0xff};
	size_t n = tun_encode_open(buf, sizeof(buf), 7, &o);
	cr_assert_eq(buf[1], TUN_OPEN_PROXY_V1 | TUN_OPEN_PROXY_V2,
	             "undefined bits are not sent");
	buf[1] = 0xff;
	cr_assert_eq(decode(buf, n, &m), TUN_OK);
	cr_assert_eq(m.u.open.flags, TUN_OPEN_PROXY_V1 | TUN_OPEN_PROXY_V2,
	             "undefined bits are ignored");
}

Test(tunnel, data_round_trip)
{
	static uint8_t buf[70000];
	struct tun_msg m;
	const size_t sizes[] = {0, 1, TUN_MAX_CONTROL, 65536};
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = tun_encode_data_header(buf, sizeof(buf), UINT32_MAX);
		cr_assert_eq(n, TUN_HEADER_LEN);
		for (size_t i = 0; i < sizes[k]; i++)
			buf[n + i] = (uint8_t)(i * 7);
		cr_assert_eq(decode(buf, n + sizes[k], &m), TUN_OK);
		cr_assert_eq(m.type, TUN_DATA);
		cr_assert_eq(m.stream, UINT32_MAX);
		cr_assert_eq(m.u.data.len, sizes[k]);
		cr_assert_eq(m.u.data.p, buf + TUN_HEADER_LEN,
		             "payload points into the buffer");
	}
}

Test(tunnel, fin_round_trip)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	const uint32_t ids[] = {1, 2, UINT32_MAX};
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(tun_encode_fin(buf, sizeof(buf), ids[i]), TUN_HEADER_LEN);
		cr_assert_eq(decode(buf, TUN_HEADER_LEN, &m), TUN_OK);
		cr_assert_eq(m.type, TUN_FIN);
		cr_assert_eq(m.stream, ids[i]);
	}
}

static void check_reason_text(bool rst, uint16_t reason, const char *text, const char *want)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	size_t n = rst ? tun_encode_rst(buf, sizeof(buf), 77, reason, text)
	               : tun_encode_goaway(buf, sizeof(buf), reason, text);
	cr_assert_eq(n, TUN_HEADER_LEN + 3 + strlen(want));
	cr_assert_eq(decode(buf, n, &m), TUN_OK);
	cr_assert_eq(m.type, rst ? TUN_RST : TUN_GOAWAY);
	cr_assert_eq(m.stream, rst ? 77u : 0u);
	cr_assert_eq(rst ? m.u.rst.reason : m.u.goaway.reason, reason);
	cr_assert(str_eq(rst ? m.u.rst.text : m.u.goaway.text, want));
}

Test(tunnel, rst_and_goaway_round_trip)
{
	for (int rst = 0; rst <= 1; rst++) {
		check_reason_text(rst, 0, NULL, "");
		check_reason_text(rst, 0, "", "");
		check_reason_text(rst, TUN_RST_NO_STREAM, "no such stream", "no such stream");
		check_reason_text(rst, UINT16_MAX, max_str, max_str);
		check_reason_text(rst, 3, long_str, long_cut);
	}
}

Test(tunnel, window_round_trip)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	const uint32_t incs[] = {1, 65536, UINT32_MAX};
	for (size_t i = 0; i < 3; i++) {
		size_t n = tun_encode_window(buf, sizeof(buf), 4, incs[i]);
		cr_assert_eq(n, TUN_HEADER_LEN + 4);
		cr_assert_eq(decode(buf, n, &m), TUN_OK);
		cr_assert_eq(m.type, TUN_WINDOW);
		cr_assert_eq(m.stream, 4);
		cr_assert_eq(m.u.window, incs[i]);
	}
}

Test(tunnel, ping_pong_round_trip)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	const uint64_t ts[] = {0, 1, UINT64_MAX};
	for (int pong = 0; pong <= 1; pong++)
		for (size_t i = 0; i < 3; i++) {
			size_t n = tun_encode_ping(buf, sizeof(buf), pong, ts[i]);
			cr_assert_eq(n, TUN_HEADER_LEN + 8);
			cr_assert_eq(decode(buf, n, &m), TUN_OK);
			cr_assert_eq(m.type, pong ? TUN_PONG : TUN_PING);
			cr_assert_eq(m.stream, 0);
			cr_assert_eq(m.u.ping, ts[i]);
		}
}

/* ---- exact bytes: pins the layout documented in docs/PROTOCOL.md ---- */

Test(tunnel, wire_bytes)
{
	uint8_t buf[BUF];
	const uint8_t window[] = {0x07, 0,    0,    0,    0x00, 0x00,
	                          0x01, 0x02, 0x00, 0x01, 0x00, 0x00};
	cr_assert_eq(tun_encode_window(buf, sizeof(buf), 0x102, 65536), sizeof(window));
	cr_assert_eq(memcmp(buf, window, sizeof(window)), 0);

	const uint8_t rst[] = {0x06, 0, 0, 0, 0x80, 0, 0, 0x01, 0x00, 0x05, 0x02, 'n', 'o'};
	cr_assert_eq(tun_encode_rst(buf, sizeof(buf), 0x80000001u, 5, "no"), sizeof(rst));
	cr_assert_eq(memcmp(buf, rst, sizeof(rst)), 0);

	struct tun_hello h = {.version_min = 1,
	                      .version_max = 1,
	                      .caps = 0x05,
	                      .window = 0x40000,
	                      .max_frame = 0x10000,
	                      .lane = 1,
	                      .session = 0x1122334455667788ull,
	                      .client_id = tun_str_from("c"),
	                      .upstream = tun_str_from(""),
	                      .nports = 1,
	                      .ports = {8080}};
	const uint8_t hello[] = {0x01, 0,    0,    0,    0,    0,    0,    0,    /* header */
	                         0x00, 0x01, 0x00, 0x01,                         /* versions */
	                         0x00, 0x00, 0x00, 0x05,                         /* caps */
	                         0x00, 0x04, 0x00, 0x00,                         /* window */
	                         0x00, 0x01, 0x00, 0x00,                         /* max_frame */
	                         0x00, 0x01,                                     /* lane */
	                         0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, /* session */
	                         0x01, 'c',  0x00,                               /* strings */
	                         0x00, 0x01, 0x1f, 0x90};                        /* ports */
	cr_assert_eq(tun_encode_hello(buf, sizeof(buf), &h), sizeof(hello));
	cr_assert_eq(memcmp(buf, hello, sizeof(hello)), 0);
}

/* ---- malformed input ---- */

Test(tunnel, header_needs_eight_bytes)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	size_t n = tun_encode_window(buf, sizeof(buf), 0xdeadbeef, 1);
	for (size_t len = 0; len < TUN_HEADER_LEN; len++)
		cr_assert_eq(tun_decode_header(buf, len, &m), TUN_NEED_MORE, "len %zu", len);
	for (size_t len = TUN_HEADER_LEN; len <= n; len++) {
		cr_assert_eq(tun_decode_header(buf, len, &m), TUN_OK);
		cr_assert_eq(m.type, TUN_WINDOW);
		cr_assert_eq(m.flags, 0);
		cr_assert_eq(m.stream, 0xdeadbeef);
	}
}

Test(tunnel, every_truncation_is_an_error)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	for (size_t s = 0; s < NSAMPLES; s++) {
		size_t n = samples[s].enc(buf, sizeof(buf));
		cr_assert_gt(n, 0);
		cr_assert_eq(decode(buf, n, &m), TUN_OK, "%s", tun_type_name(samples[s].type));
		cr_assert_eq(m.type, samples[s].type);
		for (size_t len = 0; len < n; len++)
			cr_assert_eq(decode(buf, len, &m), TUN_ERROR, "%s cut to %zu",
			             tun_type_name(samples[s].type), len);
	}
	/* A DATA message's payload is the rest of the message: any prefix from the header on
	 * is a shorter, valid DATA message; shorter than the header is an error. */
	size_t n = tun_encode_data_header(buf, sizeof(buf), 3);
	memset(buf + n, 0xab, 100);
	for (size_t len = 0; len < TUN_HEADER_LEN; len++)
		cr_assert_eq(decode(buf, len, &m), TUN_ERROR);
	for (size_t len = TUN_HEADER_LEN; len <= n + 100; len++) {
		cr_assert_eq(decode(buf, len, &m), TUN_OK);
		cr_assert_eq(m.u.data.len, len - TUN_HEADER_LEN);
	}
}

Test(tunnel, trailing_bytes_are_an_error)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	for (size_t s = 0; s < NSAMPLES; s++) {
		if (samples[s].type == TUN_DATA)
			continue;
		size_t n = samples[s].enc(buf, sizeof(buf));
		buf[n] = 0;
		cr_assert_eq(decode(buf, n + 1, &m), TUN_ERROR, "%s",
		             tun_type_name(samples[s].type));
		memset(buf + n, 0, 16);
		cr_assert_eq(decode(buf, n + 16, &m), TUN_ERROR);
	}
}

Test(tunnel, reserved_must_be_zero)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	for (size_t s = 0; s < NSAMPLES; s++) {
		size_t n = samples[s].enc(buf, sizeof(buf));
		for (int byte = 2; byte <= 3; byte++) {
			uint8_t save = buf[byte];
			buf[byte] = 0x01;
			cr_assert_eq(tun_decode_header(buf, n, &m), TUN_ERROR);
			cr_assert_eq(decode(buf, n, &m), TUN_ERROR);
			buf[byte] = 0x80;
			cr_assert_eq(decode(buf, n, &m), TUN_ERROR);
			buf[byte] = save;
		}
		cr_assert_eq(decode(buf, n, &m), TUN_OK);
	}
}

Test(tunnel, unknown_flags_are_ignored)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	for (size_t s = 0; s < NSAMPLES; s++) {
		size_t n = samples[s].enc(buf, sizeof(buf));
		cr_assert_eq(buf[1], 0, "senders send flags 0");
		buf[1] = 0xff;
		cr_assert_eq(decode(buf, n, &m), TUN_OK);
		cr_assert_eq(m.type, samples[s].type);
		cr_assert_eq(m.flags, 0xff);
	}
}

static void set_stream(uint8_t *buf, uint32_t id)
{
	buf[4] = (uint8_t)(id >> 24);
	buf[5] = (uint8_t)(id >> 16);
	buf[6] = (uint8_t)(id >> 8);
	buf[7] = (uint8_t)id;
}

Test(tunnel, stream_id_rules)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	for (size_t s = 0; s < NSAMPLES; s++) {
		uint8_t t = samples[s].type;
		bool conn = t == TUN_HELLO || t == TUN_WELCOME || t == TUN_PING ||
		            t == TUN_PONG || t == TUN_GOAWAY;
		size_t n = samples[s].enc(buf, sizeof(buf));
		set_stream(buf, 0);
		cr_assert_eq(decode(buf, n, &m), conn ? TUN_OK : TUN_ERROR, "%s stream 0",
		             tun_type_name(t));
		const uint32_t ids[] = {1, 2, 0x80000000u, UINT32_MAX};
		for (size_t i = 0; i < 4; i++) {
			set_stream(buf, ids[i]);
			cr_assert_eq(decode(buf, n, &m), conn ? TUN_ERROR : TUN_OK,
			             "%s stream %u", tun_type_name(t), ids[i]);
		}
	}
}

/* Build a HELLO or WELCOME by hand with a given port count (the encoders refuse >max). */
static size_t raw_ports_msg(uint8_t *buf, bool welcome, uint16_t nports, uint16_t first)
{
	uint8_t *p = buf;
	size_t fixed = welcome ? 2 + 4 + 4 + 4 + 2 + 8 : 2 + 2 + 4 + 4 + 4 + 2 + 8;
	memset(p, 0, TUN_HEADER_LEN + fixed);
	p[0] = welcome ? TUN_WELCOME : TUN_HELLO;
	p += TUN_HEADER_LEN;
	p[welcome ? 13 : 15] = 1; /* max_frame = 1 */
	p += fixed;
	if (!welcome) {
		*p++ = 0; /* client_id */
		*p++ = 0; /* upstream */
	}
	*p++ = (uint8_t)(nports >> 8);
	*p++ = (uint8_t)nports;
	for (uint16_t i = 0; i < nports; i++) {
		uint16_t port = (uint16_t)(first + i);
		*p++ = (uint8_t)(port >> 8);
		*p++ = (uint8_t)port;
		if (welcome) {
			*p++ = 0;
			*p++ = 0;
		}
	}
	return (size_t)(p - buf);
}

Test(tunnel, port_lists)
{
	static uint8_t buf[64 + 4 * (size_t)UINT16_MAX];
	struct tun_msg m;
	for (int welcome = 0; welcome <= 1; welcome++) {
		size_t n = raw_ports_msg(buf, welcome, TUN_MAX_PORTS, 1);
		cr_assert_eq(decode(buf, n, &m), TUN_OK);
		n = raw_ports_msg(buf, welcome, TUN_MAX_PORTS + 1, 1);
		cr_assert_eq(decode(buf, n, &m), TUN_ERROR, "nports over TUN_MAX_PORTS");
		n = raw_ports_msg(buf, welcome, UINT16_MAX, 1);
		cr_assert_eq(decode(buf, n, &m), TUN_ERROR);
		n = raw_ports_msg(buf, welcome, 3, 0);
		cr_assert_eq(decode(buf, n, &m), TUN_ERROR, "port 0");
		n = raw_ports_msg(buf, welcome, 1, 0);
		cr_assert_eq(decode(buf, n, &m), TUN_ERROR, "port 0");
	}

	/* a HELLO may not offer the same port twice */
	struct tun_hello h = sample_hello();
	h.nports = 3;
	h.ports[2] = h.ports[0];
	size_t n = tun_encode_hello(buf, sizeof(buf), &h);
	cr_assert_eq(decode(buf, n, &m), TUN_ERROR);

	/* encoders refuse lists they cannot hold */
	h.nports = TUN_MAX_PORTS + 1;
	cr_assert_eq(tun_encode_hello(buf, sizeof(buf), &h), 0);
	struct tun_welcome w = sample_welcome();
	w.nports = TUN_MAX_PORTS + 1;
	cr_assert_eq(tun_encode_welcome(buf, sizeof(buf), &w), 0);
}

Test(tunnel, open_port_zero)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	struct tun_open o = {0, tun_str_from("a"), tun_str_from("b"), 0};
	size_t n = tun_encode_open(buf, sizeof(buf), 1, &o);
	cr_assert_eq(decode(buf, n, &m), TUN_ERROR);
}

Test(tunnel, window_zero)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	size_t n = tun_encode_window(buf, sizeof(buf), 1, 0);
	cr_assert_eq(n, TUN_HEADER_LEN + 4);
	cr_assert_eq(decode(buf, n, &m), TUN_ERROR);
}

Test(tunnel, max_frame_zero)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	struct tun_hello h = sample_hello();
	h.max_frame = 0;
	cr_assert_eq(decode(buf, tun_encode_hello(buf, sizeof(buf), &h), &m), TUN_ERROR);
	struct tun_welcome w = sample_welcome();
	w.max_frame = 0;
	cr_assert_eq(decode(buf, tun_encode_welcome(buf, sizeof(buf), &w), &m), TUN_ERROR);
}

Test(tunnel, string_past_end)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	size_t n = tun_encode_rst(buf, sizeof(buf), 1, 0, "abc");
	buf[TUN_HEADER_LEN + 2] = 4; /* claims one byte more than there is */
	cr_assert_eq(decode(buf, n, &m), TUN_ERROR);
	buf[TUN_HEADER_LEN + 2] = 2; /* one byte less: a trailing byte */
	cr_assert_eq(decode(buf, n, &m), TUN_ERROR);
}

Test(tunnel, control_size_limit)
{
	static uint8_t buf[2 * TUN_MAX_CONTROL];
	struct tun_msg m;
	/* largest possible HELLO fits the limit */
	struct tun_hello h = {.max_frame = 1,
	                      .client_id = tun_str_from(max_str),
	                      .upstream = tun_str_from(max_str),
	                      .nports = TUN_MAX_PORTS};
	for (int i = 0; i < TUN_MAX_PORTS; i++)
		h.ports[i] = (uint16_t)(i + 1);
	size_t n = tun_encode_hello(buf, sizeof(buf), &h);
	cr_assert_gt(n, 0);
	cr_assert_leq(n, TUN_MAX_CONTROL);

	/* unknown types up to the limit are ignored, over it are an error */
	memset(buf, 0x5a, sizeof(buf));
	n = tun_encode_header(buf, sizeof(buf), 0x7f, 9);
	cr_assert_eq(decode(buf, TUN_MAX_CONTROL, &m), TUN_OK);
	cr_assert_eq(decode(buf, TUN_MAX_CONTROL + 1, &m), TUN_ERROR);
	n = tun_encode_ping(buf, sizeof(buf), false, 1);
	cr_assert_eq(decode(buf, TUN_MAX_CONTROL + 1, &m), TUN_ERROR);
	n = tun_encode_data_header(buf, sizeof(buf), 1);
	cr_assert_eq(decode(buf, sizeof(buf), &m), TUN_OK);
}

Test(tunnel, unknown_types_are_ignored)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	const uint8_t types[] = {0x00, 0x0B, 0x42, 0xFF};
	for (size_t i = 0; i < sizeof(types); i++) {
		cr_assert_str_eq(tun_type_name(types[i]), "unknown");
		size_t n = tun_encode_header(buf, sizeof(buf), types[i], 0x01020304);
		cr_assert_eq(n, TUN_HEADER_LEN);
		cr_assert_eq(decode(buf, n, &m), TUN_OK);
		cr_assert_eq(m.type, types[i]);
		cr_assert_eq(m.stream, 0x01020304);
		memset(buf + n, 0xee, 100);
		buf[1] = 0x33;
		cr_assert_eq(decode(buf, n + 100, &m), TUN_OK);
		cr_assert_eq(m.flags, 0x33);
		set_stream(buf, 0);
		cr_assert_eq(decode(buf, n + 100, &m), TUN_OK);
	}
}

Test(tunnel, why_is_optional)
{
	uint8_t buf[BUF];
	struct tun_msg m;
	size_t n = tun_encode_window(buf, sizeof(buf), 1, 0);
	cr_assert_eq(tun_decode(buf, n, &m, NULL), TUN_ERROR);
	const char *why = NULL;
	cr_assert_eq(tun_decode(buf, n, &m, &why), TUN_ERROR);
	cr_assert_not_null(why);
}

/* ---- encoders and small buffers ---- */

Test(tunnel, encoders_refuse_short_buffers)
{
	uint8_t full[BUF], buf[BUF + 16];
	for (size_t s = 0; s < NSAMPLES; s++) {
		size_t n = samples[s].enc(full, sizeof(full));
		cr_assert_gt(n, 0);
		cr_assert_eq(samples[s].enc(buf, n), n, "exact fit");
		cr_assert_eq(memcmp(buf, full, n), 0);
		for (size_t cap = 0; cap < n; cap++) {
			memset(buf, 0xcc, sizeof(buf));
			cr_assert_eq(samples[s].enc(buf, cap), 0, "%s cap %zu of %zu",
			             tun_type_name(samples[s].type), cap, n);
			for (size_t i = cap; i < sizeof(buf); i++)
				cr_assert_eq(buf[i], 0xcc, "%s wrote past cap %zu",
				             tun_type_name(samples[s].type), cap);
		}
	}
	cr_assert_eq(tun_encode_fin(NULL, 0, 1), 0);
}

/* ---- helpers ---- */

Test(tunnel, str_from)
{
	struct tun_str s = tun_str_from(NULL);
	cr_assert_eq(s.len, 0);
	cr_assert_not_null(s.p);
	cr_assert_eq(tun_str_from("").len, 0);
	cr_assert(str_eq(tun_str_from("abc"), "abc"));
	cr_assert_eq(tun_str_from(max_str).len, TUN_MAX_STR);
	s = tun_str_from(long_str);
	cr_assert_eq(s.len, TUN_MAX_STR);
	cr_assert_eq(s.p, (const uint8_t *)long_str);
}

Test(tunnel, names)
{
	cr_assert_str_eq(tun_type_name(TUN_HELLO), "HELLO");
	cr_assert_str_eq(tun_type_name(TUN_WELCOME), "WELCOME");
	cr_assert_str_eq(tun_type_name(TUN_OPEN), "OPEN");
	cr_assert_str_eq(tun_type_name(TUN_DATA), "DATA");
	cr_assert_str_eq(tun_type_name(TUN_FIN), "FIN");
	cr_assert_str_eq(tun_type_name(TUN_RST), "RST");
	cr_assert_str_eq(tun_type_name(TUN_WINDOW), "WINDOW");
	cr_assert_str_eq(tun_type_name(TUN_PING), "PING");
	cr_assert_str_eq(tun_type_name(TUN_PONG), "PONG");
	cr_assert_str_eq(tun_type_name(TUN_GOAWAY), "GOAWAY");
	cr_assert_str_eq(tun_type_name(0), "unknown");
	cr_assert_str_eq(tun_rst_reason_name(TUN_RST_NONE), "none");
	cr_assert_str_eq(tun_rst_reason_name(TUN_RST_REFUSED), "refused");
	cr_assert_str_eq(tun_rst_reason_name(TUN_RST_UNREACHABLE), "unreachable");
	cr_assert_str_eq(tun_rst_reason_name(TUN_RST_RESET), "reset");
	cr_assert_str_eq(tun_rst_reason_name(TUN_RST_PROTOCOL), "protocol");
	cr_assert_str_eq(tun_rst_reason_name(TUN_RST_NO_STREAM), "no-stream");
	cr_assert_str_eq(tun_rst_reason_name(TUN_RST_SHUTDOWN), "shutdown");
	cr_assert_str_eq(tun_rst_reason_name(TUN_RST_INTERNAL), "internal");
	cr_assert_str_eq(tun_rst_reason_name(TUN_RST_TIMEOUT), "timeout");
	cr_assert_str_eq(tun_rst_reason_name(9), "unknown");
	cr_assert_str_eq(tun_rst_reason_name(UINT16_MAX), "unknown");
}
