/* tests/proto/proxy.c — the PROXY protocol header codec (proto/proxy.c). */
#include "proto/proxy.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#define BUF 1024

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

static enum proxy_status parse(const void *buf, size_t len, struct proxy_hdr *h)
{
	const char *why = NULL;
	enum proxy_status st = proxy_parse(buf, len, h, &why);
	if (st == PROXY_ERROR)
		cr_assert(why != NULL && *why, "an error must say why");
	return st;
}

/* The parse error of buf[0..len), and its reason. */
static const char *parse_error(const void *buf, size_t len)
{
	struct proxy_hdr h;
	const char *why = NULL;
	cr_assert_eq(proxy_parse(buf, len, &h, &why), PROXY_ERROR, "%.*s", (int)len,
	             (const char *)buf);
	cr_assert(why != NULL && *why, "an error must say why");
	return why;
}

static void error_str(const char *s)
{
	parse_error(s, strlen(s));
}

/* *ss holds family/ip/port, as a sockaddr in network order. */
static void check_addr(const struct sockaddr_storage *ss, int family, const char *ip,
                       uint16_t port)
{
	cr_assert_eq(ss->ss_family, family);
	if (family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		struct in_addr want;
		cr_assert_eq(inet_pton(AF_INET, ip, &want), 1);
		cr_assert_eq(sin->sin_port, htons(port));
		cr_assert_eq(memcmp(&sin->sin_addr, &want, sizeof(want)), 0, "%s", ip);
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		struct in6_addr want;
		cr_assert_eq(inet_pton(AF_INET6, ip, &want), 1);
		cr_assert_eq(sin6->sin6_port, htons(port));
		cr_assert_eq(memcmp(&sin6->sin6_addr, &want, sizeof(want)), 0, "%s", ip);
	}
}

/* buf[0..n) is one complete header: every shorter prefix needs more, the whole parses
 * to exactly n bytes, and bytes after it (the connection's data) are left alone. */
static struct proxy_hdr check_complete(const uint8_t *buf, size_t n)
{
	uint8_t more[BUF];
	struct proxy_hdr h;
	cr_assert_lt(n + 64, sizeof(more));
	for (size_t k = 0; k < n; k++)
		cr_assert_eq(parse(buf, k, &h), PROXY_NEED_MORE, "prefix %zu of %zu", k, n);
	cr_assert_eq(parse(buf, n, &h), PROXY_OK);
	cr_assert_eq(h.len, n);

	struct proxy_hdr again;
	memcpy(more, buf, n);
	memcpy(more + n, "GET / HTTP/1.1\r\n\r\n\x0d\x0a\x0d\x0a", 22);
	for (size_t k = n; k <= n + 22; k++) {
		cr_assert_eq(parse(more, k, &again), PROXY_OK);
		cr_assert_eq(again.len, n, "trailing bytes are not the header's");
		cr_assert_eq(again.version, h.version);
		cr_assert_eq(again.local, h.local);
		cr_assert_eq(memcmp(&again.src, &h.src, sizeof(h.src)), 0);
		cr_assert_eq(memcmp(&again.dst, &h.dst, sizeof(h.dst)), 0);
	}
	return h;
}

static struct proxy_hdr check_complete_str(const char *s)
{
	return check_complete((const uint8_t *)s, strlen(s));
}

TestSuite(proxy);

/* ---- building, and parsing what was built ---- */

Test(proxy, v1_ipv4_round_trip)
{
	const char want[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\n";
	uint8_t buf[BUF];
	size_t n = proxy_build(buf, sizeof(buf), 1, "1.2.3.4:1111", "5.6.7.8:2222");
	cr_assert_eq(n, strlen(want));
	cr_assert_eq(memcmp(buf, want, n), 0);

	struct proxy_hdr h = check_complete(buf, n);
	cr_assert_eq(h.version, 1);
	cr_assert_not(h.local);
	check_addr(&h.src, AF_INET, "1.2.3.4", 1111);
	check_addr(&h.dst, AF_INET, "5.6.7.8", 2222);
}

Test(proxy, v1_ipv6_round_trip)
{
	const char want[] = "PROXY TCP6 2001:db8::1 ::ffff:10.0.0.1 0 65535\r\n";
	uint8_t buf[BUF];
	size_t n = proxy_build(buf, sizeof(buf), 1, "[2001:0db8:0:0::1]:0",
	                       "[::ffff:10.0.0.1]:65535");
	cr_assert_eq(n, strlen(want), "the addresses are written in canonical form");
	cr_assert_eq(memcmp(buf, want, n), 0);

	struct proxy_hdr h = check_complete(buf, n);
	cr_assert_eq(h.version, 1);
	cr_assert_not(h.local);
	check_addr(&h.src, AF_INET6, "2001:db8::1", 0);
	check_addr(&h.dst, AF_INET6, "::ffff:10.0.0.1", 65535);
}

Test(proxy, v2_ipv4_round_trip)
{
	const uint8_t tail[] = {0x21, 0x11, 0x00, 0x0c, /* PROXY, TCP over IPv4, 12 */
	                        1,    2,    3,    4,    5,    6,
	                        7,    8,    0x04, 0x57, 0x08, 0xae}; /* 1111, 2222 */
	uint8_t buf[BUF];
	size_t n = proxy_build(buf, sizeof(buf), 2, "1.2.3.4:1111", "5.6.7.8:2222");
	cr_assert_eq(n, 28);
	cr_assert_eq(memcmp(buf, sig, 12), 0);
	cr_assert_eq(memcmp(buf + 12, tail, sizeof(tail)), 0);

	struct proxy_hdr h = check_complete(buf, n);
	cr_assert_eq(h.version, 2);
	cr_assert_not(h.local);
	check_addr(&h.src, AF_INET, "1.2.3.4", 1111);
	check_addr(&h.dst, AF_INET, "5.6.7.8", 2222);
}

Test(proxy, v2_ipv6_round_trip)
{
	uint8_t buf[BUF];
	size_t n = proxy_build(buf, sizeof(buf), 2, "[2001:db8::1]:443", "[::1]:65535");
	cr_assert_eq(n, 52);
	cr_assert_eq(memcmp(buf, sig, 12), 0);
	cr_assert_eq(buf[12], 0x21);
	cr_assert_eq(buf[13], 0x21);
	cr_assert_eq(buf[14], 0);
	cr_assert_eq(buf[15], 36);
	cr_assert_eq(buf[16], 0x20);
	cr_assert_eq(buf[17], 0x01);
	cr_assert_eq(buf[31], 0x01);
	cr_assert_eq(buf[47], 0x01);
	cr_assert_eq(buf[48], 0x01);
	cr_assert_eq(buf[49], 0xbb);
	cr_assert_eq(buf[50], 0xff);
	cr_assert_eq(buf[51], 0xff);

	struct proxy_hdr h = check_complete(buf, n);
	cr_assert_eq(h.version, 2);
	cr_assert_not(h.local);
	check_addr(&h.src, AF_INET6, "2001:db8::1", 443);
	check_addr(&h.dst, AF_INET6, "::1", 65535);
}

Test(proxy, build_rejects_bad_addresses)
{
	uint8_t buf[BUF];
	const char *bad[] = {
	        "",
	        "1.2.3.4",
	        "1.2.3.4:",
	        "1.2.3.4:65536",
	        "1.2.3.4:-1",
	        "1.2.3.4:+80",
	        "1.2.3.4:080",
	        "1.2.3:80",
	        "01.2.3.4:80",
	        "::1:80",
	        "[::1]80",
	        "[::1:80",
	        "[1.2.3.4]:80",
	        "[]:80",
	        "host:80",
	        "1.2.3.4:80 ",
	};
	for (int v = 1; v <= 2; v++) {
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			cr_assert_eq(proxy_build(buf, sizeof(buf), v, bad[i], "5.6.7.8:80"), 0,
			             "%s", bad[i]);
			cr_assert_eq(proxy_build(buf, sizeof(buf), v, "5.6.7.8:80", bad[i]), 0,
			             "%s", bad[i]);
		}
		cr_assert_eq(proxy_build(buf, sizeof(buf), v, "1.2.3.4:80", "[::1]:80"), 0,
		             "mixed families");
		cr_assert_eq(proxy_build(buf, sizeof(buf), v, "[::1]:80", "1.2.3.4:80"), 0);
		cr_assert_eq(proxy_build(buf, sizeof(buf), v, NULL, "1.2.3.4:80"), 0);
	}
	cr_assert_eq(proxy_build(buf, sizeof(buf), 3, "1.2.3.4:1", "1.2.3.4:2"), 0);
	cr_assert_eq(proxy_build(buf, sizeof(buf), 0, "1.2.3.4:1", "1.2.3.4:2"), 0);
}

Test(proxy, build_never_writes_past_cap)
{
	const char *pairs[][2] = {{"255.255.255.255:65535", "255.255.255.255:65535"},
	                          {"[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
	                           "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"}};
	for (int v = 1; v <= 2; v++) {
		for (size_t p = 0; p < 2; p++) {
			uint8_t buf[BUF];
			size_t n = proxy_build(buf, sizeof(buf), v, pairs[p][0], pairs[p][1]);
			cr_assert_gt(n, 0);
			cr_assert_leq(n, v == 1 ? PROXY_V1_MAX : 52);
			for (size_t cap = 0; cap < n; cap++) {
				memset(buf, 0xaa, sizeof(buf));
				cr_assert_eq(proxy_build(buf, cap, v, pairs[p][0], pairs[p][1]),
				             0);
				for (size_t i = cap; i < sizeof(buf); i++)
					cr_assert_eq(buf[i], 0xaa, "cap %zu, byte %zu", cap, i);
			}
			cr_assert_eq(proxy_build(buf, n, v, pairs[p][0], pairs[p][1]), n);
		}
	}
}

/* ---- literal headers, from the specification ---- */

Test(proxy, v1_specification_examples)
{
	struct proxy_hdr h;

	h = check_complete_str("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");
	check_addr(&h.src, AF_INET, "192.168.0.1", 56324);
	check_addr(&h.dst, AF_INET, "192.168.0.11", 443);

	h = check_complete_str("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");
	cr_assert_eq(h.len, 56);
	check_addr(&h.src, AF_INET, "255.255.255.255", 65535);

	h = check_complete_str("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	                       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");
	cr_assert_eq(h.len, 104);
	check_addr(&h.dst, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);

	h = check_complete_str("PROXY UNKNOWN\r\n");
	cr_assert_eq(h.len, 15);
	cr_assert(h.local);

	/* The worst case: UNKNOWN with the longest optional fields, 107 bytes. */
	h = check_complete_str("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	                       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");
	cr_assert_eq(h.len, PROXY_V1_MAX);
	cr_assert(h.local);
	cr_assert_eq(h.version, 1);

	h = check_complete_str("PROXY TCP4 0.0.0.0 10.0.0.1 0 1\r\n");
	check_addr(&h.src, AF_INET, "0.0.0.0", 0);
	h = check_complete_str("PROXY TCP6 ::FFFF:192.0.2.1 2001:DB8::A 1 2\r\n");
	check_addr(&h.src, AF_INET6, "::ffff:192.0.2.1", 1);
	check_addr(&h.dst, AF_INET6, "2001:db8::a", 2);
}

Test(proxy, v2_literal_headers)
{
	/* PROXY, TCP over IPv4, 192.0.2.1:56324 -> 198.51.100.7:443, with a PP2_TYPE_ALPN TLV
	 * ("h2") and a PP2_TYPE_NOOP one that the parser skips. */
	const uint8_t v4_tlv[] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
	                          0x54, 0x0a, 0x21, 0x11, 0x00, 0x15, 0xc0, 0x00, 0x02, 0x01,
	                          0xc6, 0x33, 0x64, 0x07, 0xdc, 0x04, 0x01, 0xbb, 0x01, 0x00,
	                          0x02, 'h',  '2',  0x04, 0x00, 0x01, 0x00};
	struct proxy_hdr h = check_complete(v4_tlv, sizeof(v4_tlv));
	cr_assert_eq(h.len, 16 + 0x15);
	cr_assert_not(h.local);
	check_addr(&h.src, AF_INET, "192.0.2.1", 56324);
	check_addr(&h.dst, AF_INET, "198.51.100.7", 443);

	/* LOCAL, AF_UNSPEC, no addresses: a health check. */
	uint8_t local[16];
	memcpy(local, sig, 12);
	memcpy(local + 12, "\x20\x00\x00\x00", 4);
	h = check_complete(local, sizeof(local));
	cr_assert(h.local);
	cr_assert_eq(h.version, 2);
	cr_assert_eq(h.len, 16);
}

/* ---- LOCAL and UNKNOWN: no client address ---- */

Test(proxy, local_and_unknown_are_local)
{
	uint8_t buf[BUF];
	struct proxy_hdr h;

	/* LOCAL takes any family (and its address block, if any, is skipped). */
	const uint8_t fams[] = {0x00, 0x11, 0x21, 0x31, 0x12, 0x22, 0xff};
	for (size_t i = 0; i < sizeof(fams); i++) {
		memset(buf, 0x55, sizeof(buf));
		memcpy(buf, sig, 12);
		buf[12] = 0x20;
		buf[13] = fams[i];
		buf[14] = 0;
		buf[15] = 40;
		h = check_complete(buf, 56);
		cr_assert(h.local);
		cr_assert_eq(h.version, 2);
	}
	h = check_complete_str("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n");
	cr_assert(h.local);
	h = check_complete_str("PROXY UNKNOWN anything at all\r\n");
	cr_assert(h.local);
}

/* ---- malformed input ---- */

Test(proxy, not_a_header_fails_at_once)
{
	struct proxy_hdr h;
	cr_assert_eq(parse("", 0, &h), PROXY_NEED_MORE);
	cr_assert_str_eq(parse_error("GET / HTTP/1.1\r\n", 16), "no PROXY header");
	cr_assert_str_eq(parse_error("G", 1), "no PROXY header");
	cr_assert_str_eq(parse_error("PROXz", 5), "no PROXY header");
	cr_assert_str_eq(parse_error("proxy ", 6), "no PROXY header");
	cr_assert_str_eq(parse_error("\x16\x03\x01", 3), "no PROXY header");
	cr_assert_str_eq(parse_error("\r\n\r\n\x00\r\nQUIX", 11), "no PROXY header");
	cr_assert_str_eq(parse_error("\r\n\r\n\r\n", 6), "no PROXY header");
	cr_assert_eq(parse("PROX", 4, &h), PROXY_NEED_MORE);
	cr_assert_eq(parse("\r\n\r\n\x00\r\nQUI", 10, &h), PROXY_NEED_MORE);
}

Test(proxy, v1_malformed)
{
	/* Each of these fails on its own, whatever follows it. */
	const char *bad[] = {
	        "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",       /* double space */
	        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",       /* double space */
	        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",       /* double space */
	        "PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",       /* double space */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",       /* double space */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",       /* trailing space */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",          /* LF alone */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",         /* CR alone */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",          /* a port missing */
	        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",        /* protocol */
	        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",        /* protocol */
	        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",        /* protocol */
	        "PROXY UNKNOWNX\r\n",                        /* protocol */
	        "PROXY UNKNOWN\n",                           /* LF alone */
	        "PROXY UNKNOWN\rX",                          /* CR alone */
	        "PROXY UNKNOWN junk\n",                      /* LF alone */
	        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",          /* bad IP */
	        "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",      /* bad IP */
	        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",      /* bad IP */
	        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",       /* leading zero */
	        "PROXY TCP4 1.2.3.4 5.6..8 1 2\r\n",         /* bad IP */
	        "PROXY TCP4 ::1 ::2 1 2\r\n",                /* IPv6 with TCP4 */
	        "PROXY TCP4 ::ffff:1.2.3.4 1.2.3.4 1 2\r\n", /* IPv6 with TCP4 */
	        "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",        /* IPv4 with TCP6 */
	        "PROXY TCP6 ::1::2 ::1 1 2\r\n",             /* bad IP */
	        "PROXY TCP6 ::g ::1 1 2\r\n",                /* bad IP */
	        "PROXY TCP6 [::1] ::1 1 2\r\n",              /* brackets */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",    /* port out of range */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",    /* port out of range */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",    /* port out of range */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",   /* port too long */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",       /* sign */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",       /* sign */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",       /* leading zero */
	        "PROXY TCP4 1.2.3.4 5.6.7.8 1 0x2\r\n",      /* hex */
	        "PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",       /* tab */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		error_str(bad[i]);
	static const char nul1[] = "PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n";
	static const char nul2[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\0\r\n";
	parse_error(nul1, sizeof(nul1) - 1);
	parse_error(nul2, sizeof(nul2) - 1);
}

Test(proxy, v1_too_long)
{
	char line[BUF];
	struct proxy_hdr h;

	/* A valid prefix without CRLF needs more up to 106 bytes, and fails at 107. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	for (size_t k = 14; k < PROXY_V1_MAX; k++)
		cr_assert_eq(parse(line, k, &h), PROXY_NEED_MORE, "%zu", k);
	for (size_t k = PROXY_V1_MAX; k < sizeof(line); k++)
		cr_assert_str_eq(parse_error(line, k), "v1 line too long");

	/* 108 bytes with CRLF is one too many; 107 is fine. */
	memcpy(line + PROXY_V1_MAX - 2, "\r\n", 2);
	cr_assert_eq(parse(line, PROXY_V1_MAX, &h), PROXY_OK);
	cr_assert_eq(h.len, PROXY_V1_MAX);
	memset(line, 'x', sizeof(line));
	memcpy(line, "PROXY UNKNOWN ", 14);
	memcpy(line + PROXY_V1_MAX - 1, "\r\n", 2);
	cr_assert_str_eq(parse_error(line, PROXY_V1_MAX + 1), "v1 line too long");
}

/* A v2 header: signature, then ver_cmd, fam, length, then body bytes. */
static size_t v2(uint8_t *buf, uint8_t ver_cmd, uint8_t fam, uint16_t len)
{
	memset(buf, 0, BUF);
	memcpy(buf, sig, 12);
	buf[12] = ver_cmd;
	buf[13] = fam;
	buf[14] = (uint8_t)(len >> 8);
	buf[15] = (uint8_t)len;
	return 16 + (size_t)len;
}

Test(proxy, v2_malformed)
{
	uint8_t buf[BUF];
	struct proxy_hdr h;

	/* Each fails as soon as the bad byte is in, before the body arrives. */
	v2(buf, 0x11, 0x11, 12);
	cr_assert_str_eq(parse_error(buf, 13), "unsupported v2 version");
	v2(buf, 0x31, 0x11, 12);
	parse_error(buf, 13);
	v2(buf, 0x01, 0x11, 12);
	parse_error(buf, 13);
	v2(buf, 0x22, 0x11, 12);
	cr_assert_str_eq(parse_error(buf, 13), "unsupported v2 command");
	v2(buf, 0x2f, 0x11, 12);
	parse_error(buf, 13);

	const uint8_t fams[] = {0x00, 0x01, 0x10, 0x12, 0x20, 0x22, 0x31, 0x32, 0x41, 0xff};
	for (size_t i = 0; i < sizeof(fams); i++) {
		v2(buf, 0x21, fams[i], 216);
		cr_assert_str_eq(parse_error(buf, 14), "unsupported family", "fam %#x",
		                 fams[i]);
		parse_error(buf, 16 + 216);
	}

	/* The address block must hold the family's addresses and ports. */
	v2(buf, 0x21, 0x11, 11);
	cr_assert_str_eq(parse_error(buf, 16), "v2 address block too short for the family");
	v2(buf, 0x21, 0x11, 0);
	parse_error(buf, 16);
	v2(buf, 0x21, 0x21, 35);
	parse_error(buf, 16);
	v2(buf, 0x21, 0x21, 12);
	parse_error(buf, 16 + 12);
	v2(buf, 0x21, 0x21, 36);
	cr_assert_eq(parse(buf, 16 + 36, &h), PROXY_OK);

	/* The whole header may not exceed PROXY_V2_MAX. */
	size_t n = v2(buf, 0x21, 0x11, PROXY_V2_MAX - 16);
	cr_assert_eq(n, PROXY_V2_MAX);
	cr_assert_eq(parse(buf, n, &h), PROXY_OK);
	cr_assert_eq(h.len, PROXY_V2_MAX);
	cr_assert_eq(parse(buf, n - 1, &h), PROXY_NEED_MORE);
	v2(buf, 0x21, 0x11, PROXY_V2_MAX - 15);
	cr_assert_str_eq(parse_error(buf, 16), "v2 header too long");
	v2(buf, 0x20, 0x00, 0xffff);
	parse_error(buf, 16);
}
