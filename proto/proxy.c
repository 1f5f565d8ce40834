/* proto/proxy.c — the PROXY protocol, versions 1 and 2. See proto/proxy.h and HAProxy's
 * proxy-protocol.txt.
 *
 * The parser checks a header as far as the bytes at hand go, so that a stream which can
 * never become a valid header fails at once instead of waiting for more: a prefix that
 * fails, fails however it continues, and a prefix that needs more only ever continues
 * into NEED_MORE, OK or ERROR.
 */
#include "proto/proxy.h"

#include "proto/cursor.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define V1_PREFIX "PROXY "
#define V2_SIG_LEN 12
#define V2_HDR_LEN 16     /* signature, version/command, family/protocol, length */
#define V2_IPV4_LEN 12    /* two IPv4 addresses and two ports */
#define V2_IPV6_LEN 36    /* two IPv6 addresses and two ports */
#define V1_PORT_DIGITS 5  /* "65535" */
#define V1_ADDR4_CHARS 15 /* "255.255.255.255" */
#define V1_ADDR6_CHARS 45 /* INET6_ADDRSTRLEN less the NUL: IPv6 with an IPv4 tail */
#define ADDR_TEXT_MAX 64  /* longest "[ip]:port" proxy_build looks at */

#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_TCP4 0x11 /* AF_INET, STREAM */
#define V2_TCP6 0x21 /* AF_INET6, STREAM */

static const uint8_t v2_sig[V2_SIG_LEN] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                           0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

_Static_assert(PROXY_V2_MAX >= V2_HDR_LEN + V2_IPV6_LEN, "a v2 TCP6 header must fit");

/* Set *why (if the caller wants it) and fail. */
static enum proxy_status fail(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return PROXY_ERROR;
}

/* Compare the start of c with lit[0..n): OK if c holds all of it, NEED_MORE if c is a
 * proper prefix of it, ERROR on a difference. Does not move c. */
static enum proxy_status match(const struct cur *c, const void *lit, size_t n)
{
	size_t m = c->len < n ? c->len : n;
	if (memcmp(c->p, lit, m) != 0)
		return PROXY_ERROR;
	return c->len < n ? PROXY_NEED_MORE : PROXY_OK;
}

/* ---- version 1 ---- */

/* The next field of a v1 line: one or more bytes from `chars` (at most max of them) up to
 * the delimiter `end`. OK sets *f and moves c past the delimiter; NEED_MORE when the data
 * ends first with every byte so far acceptable. */
static enum proxy_status v1_field(struct cur *c, uint8_t end, const char *chars, size_t max,
                                  struct cur *f)
{
	for (size_t i = 0; i < c->len; i++) {
		uint8_t ch = c->p[i];
		if (ch == end && i > 0) {
			*f = cur_init(c->p, i);
			cur_skip(c, i + 1);
			return PROXY_OK;
		}
		if (i == max || ch == 0 || !strchr(chars, ch))
			return PROXY_ERROR;
	}
	return PROXY_NEED_MORE;
}

/* Decimal 0..65535 without leading zeroes (the specification forbids them). */
static bool parse_port(const uint8_t *p, size_t n, uint16_t *port)
{
	uint32_t v = 0;
	if (n == 0 || n > V1_PORT_DIGITS || (n > 1 && p[0] == '0'))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (uint32_t)(p[i] - '0');
	}
	if (v > UINT16_MAX)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* Text address of the given family into addr (in_addr or in6_addr). inet_pton is strict:
 * four decimal octets without leading zeroes, or RFC 4291 IPv6. */
static bool parse_ip(int family, const uint8_t *p, size_t n, void *addr)
{
	char text[V1_ADDR6_CHARS + 1];
	if (n == 0 || n > V1_ADDR6_CHARS)
		return false;
	memcpy(text, p, n);
	text[n] = 0;
	return inet_pton(family, text, addr) == 1;
}

static void set_addr(struct sockaddr_storage *ss, int family, const void *ip, uint16_t port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, ip, sizeof(sin->sin_addr));
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, ip, sizeof(sin6->sin6_addr));
	}
}

/* "UNKNOWN" has been read: either CRLF, or a space and anything up to CRLF (the
 * specification says to ignore it). */
static enum proxy_status v1_unknown(struct cur *c, const char **why)
{
	for (size_t i = 0; i < c->len; i++) {
		uint8_t ch = c->p[i];
		if (i == 0 && ch != ' ' && ch != '\r')
			return fail(why, "malformed v1 line: bad protocol");
		if (ch == '\n')
			return fail(why, "malformed v1 line: LF without CR");
		if (ch != '\r')
			continue;
		if (i + 1 == c->len)
			return PROXY_NEED_MORE;
		if (c->p[i + 1] != '\n')
			return fail(why, "malformed v1 line: CR without LF");
		cur_skip(c, i + 2);
		return PROXY_OK;
	}
	return PROXY_NEED_MORE;
}

/* Parse a v1 line in c (already cut to PROXY_V1_MAX bytes); on OK c is past the CRLF. */
static enum proxy_status v1_line(struct cur *c, struct proxy_hdr *h, const char **why)
{
	static const char digits[] = "0123456789";
	static const char chars4[] = "0123456789.";
	static const char chars6[] = "0123456789abcdefABCDEF:.";
	enum proxy_status st, s4, s6, su;
	struct cur f[4];
	uint8_t ip[2][sizeof(struct in6_addr)];
	uint16_t port[2];
	const char *chars;
	size_t max;
	int family;

	st = match(c, V1_PREFIX, strlen(V1_PREFIX));
	if (st != PROXY_OK)
		return st == PROXY_ERROR ? fail(why, "no PROXY header") : st;
	cur_skip(c, strlen(V1_PREFIX));

	s4 = match(c, "TCP4 ", 5);
	s6 = match(c, "TCP6 ", 5);
	su = match(c, "UNKNOWN", 7);
	if (s4 == PROXY_OK) {
		family = AF_INET;
		chars = chars4;
		max = V1_ADDR4_CHARS;
	} else if (s6 == PROXY_OK) {
		family = AF_INET6;
		chars = chars6;
		max = V1_ADDR6_CHARS;
	} else if (su == PROXY_OK) {
		cur_skip(c, 7);
		st = v1_unknown(c, why);
		if (st != PROXY_OK)
			return st;
		h->local = true;
		memset(&h->src, 0, sizeof(h->src));
		memset(&h->dst, 0, sizeof(h->dst));
		return PROXY_OK;
	} else if (s4 == PROXY_NEED_MORE || s6 == PROXY_NEED_MORE || su == PROXY_NEED_MORE) {
		return PROXY_NEED_MORE;
	} else {
		return fail(why, "malformed v1 line: unsupported protocol");
	}
	cur_skip(c, 5);

	for (int i = 0; i < 4; i++) {
		bool is_port = i >= 2;
		st = v1_field(c, i == 3 ? '\r' : ' ', is_port ? digits : chars,
		              is_port ? V1_PORT_DIGITS : max, &f[i]);
		if (st == PROXY_NEED_MORE)
			return st;
		if (st == PROXY_ERROR)
			return fail(why, is_port ? "malformed v1 line: bad port"
			                         : "malformed v1 line: bad address");
		if (!is_port && !parse_ip(family, f[i].p, f[i].len, ip[i]))
			return fail(why, "malformed v1 line: bad address");
		if (is_port && !parse_port(f[i].p, f[i].len, &port[i - 2]))
			return fail(why, "malformed v1 line: bad port");
	}
	st = match(c, "\n", 1);
	if (st != PROXY_OK)
		return st == PROXY_ERROR ? fail(why, "malformed v1 line: CR without LF") : st;
	cur_skip(c, 1);

	h->local = false;
	set_addr(&h->src, family, ip[0], port[0]);
	set_addr(&h->dst, family, ip[1], port[1]);
	return PROXY_OK;
}

static enum proxy_status parse_v1(const uint8_t *buf, size_t len, struct proxy_hdr *h,
                                  const char **why)
{
	struct cur c = cur_init(buf, len < PROXY_V1_MAX ? len : PROXY_V1_MAX);
	enum proxy_status st = v1_line(&c, h, why);
	if (st == PROXY_NEED_MORE && len >= PROXY_V1_MAX)
		return fail(why, "v1 line too long");
	if (st == PROXY_OK) {
		h->version = 1;
		h->len = (size_t)(c.p - buf);
	}
	return st;
}

/* ---- version 2 ---- */

static enum proxy_status parse_v2(const uint8_t *buf, size_t len, struct proxy_hdr *h,
                                  const char **why)
{
	struct cur c = cur_init(buf, len);
	const uint8_t *ip[2];
	uint8_t ver_cmd, fam;
	uint16_t body, port[2];
	size_t iplen, total;
	enum proxy_status st;
	int family;

	st = match(&c, v2_sig, V2_SIG_LEN);
	if (st != PROXY_OK)
		return st == PROXY_ERROR ? fail(why, "no PROXY header") : st;
	cur_skip(&c, V2_SIG_LEN);

	if (!cur_u8(&c, &ver_cmd))
		return PROXY_NEED_MORE;
	if (ver_cmd >> 4 != 2)
		return fail(why, "unsupported v2 version");
	if ((ver_cmd & 0xf) != V2_CMD_LOCAL && (ver_cmd & 0xf) != V2_CMD_PROXY)
		return fail(why, "unsupported v2 command");

	if (!cur_u8(&c, &fam))
		return PROXY_NEED_MORE;
	if ((ver_cmd & 0xf) == V2_CMD_PROXY && fam != V2_TCP4 && fam != V2_TCP6)
		return fail(why, "unsupported family");

	if (!cur_u16(&c, &body))
		return PROXY_NEED_MORE;
	if (body > PROXY_V2_MAX - V2_HDR_LEN)
		return fail(why, "v2 header too long");

	total = V2_HDR_LEN + (size_t)body;
	if ((ver_cmd & 0xf) == V2_CMD_LOCAL) {
		if (len < total)
			return PROXY_NEED_MORE;
		h->version = 2;
		h->len = total;
		h->local = true;
		memset(&h->src, 0, sizeof(h->src));
		memset(&h->dst, 0, sizeof(h->dst));
		return PROXY_OK;
	}

	family = fam == V2_TCP4 ? AF_INET : AF_INET6;
	iplen = family == AF_INET ? sizeof(struct in_addr) : sizeof(struct in6_addr);
	if (body < (family == AF_INET ? V2_IPV4_LEN : V2_IPV6_LEN))
		return fail(why, "v2 address block too short for the family");
	if (len < total)
		return PROXY_NEED_MORE;
	/* Whatever follows the addresses (TLVs) is skipped: h->len covers it. */
	if (!cur_bytes(&c, &ip[0], iplen) || !cur_bytes(&c, &ip[1], iplen) ||
	    !cur_u16(&c, &port[0]) || !cur_u16(&c, &port[1]))
		return PROXY_NEED_MORE; /* not reached: body holds them and len holds body */
	h->version = 2;
	h->len = total;
	h->local = false;
	set_addr(&h->src, family, ip[0], port[0]);
	set_addr(&h->dst, family, ip[1], port[1]);
	return PROXY_OK;
}

enum proxy_status proxy_parse(const uint8_t *buf, size_t len, struct proxy_hdr *h,
                              const char **why)
{
	if (len == 0)
		return PROXY_NEED_MORE;
	if (buf[0] == v2_sig[0])
		return parse_v2(buf, len, h, why);
	return parse_v1(buf, len, h, why);
}

/* ---- building ---- */

/* "a.b.c.d:port" or "[ipv6]:port" into family, address (network order) and port. */
static bool parse_endpoint(const char *s, int *family, uint8_t ip[16], uint16_t *port)
{
	size_t n = strnlen(s, ADDR_TEXT_MAX + 1);
	const char *colon;

	if (n > ADDR_TEXT_MAX)
		return false;
	colon = memrchr(s, ':', n);
	if (!colon)
		return false;
	if (!parse_port((const uint8_t *)colon + 1, n - (size_t)(colon + 1 - s), port))
		return false;
	if (s[0] == '[') {
		if (colon - s < 2 || colon[-1] != ']')
			return false;
		*family = AF_INET6;
		return parse_ip(AF_INET6, (const uint8_t *)s + 1, (size_t)(colon - s - 2), ip);
	}
	*family = AF_INET;
	return parse_ip(AF_INET, (const uint8_t *)s, (size_t)(colon - s), ip);
}

size_t proxy_build(uint8_t *out, size_t cap, int version, const char *src, const char *dst)
{
	struct wcur w = wcur_init(out, cap);
	uint8_t ip[2][16];
	uint16_t port[2];
	int fam[2];

	if (!src || !dst || !parse_endpoint(src, &fam[0], ip[0], &port[0]) ||
	    !parse_endpoint(dst, &fam[1], ip[1], &port[1]) || fam[0] != fam[1])
		return 0;

	if (version == 1) {
		char text[2][INET6_ADDRSTRLEN], line[PROXY_V1_MAX + 1];
		int n;
		/* Re-printed rather than copied so that the line carries the canonical form. */
		if (!inet_ntop(fam[0], ip[0], text[0], sizeof(text[0])) ||
		    !inet_ntop(fam[0], ip[1], text[1], sizeof(text[1])))
			return 0;
		n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
		             fam[0] == AF_INET ? "TCP4" : "TCP6", text[0], text[1], port[0],
		             port[1]);
		if (n < 0 || (size_t)n >= sizeof(line))
			return 0;
		wcur_bytes(&w, line, (size_t)n);
		return wcur_done(&w);
	}
	if (version != 2)
		return 0;

	size_t iplen = fam[0] == AF_INET ? 4 : 16;
	wcur_bytes(&w, v2_sig, V2_SIG_LEN);
	wcur_u8(&w, 0x20 | V2_CMD_PROXY);
	wcur_u8(&w, fam[0] == AF_INET ? V2_TCP4 : V2_TCP6);
	wcur_u16(&w, fam[0] == AF_INET ? V2_IPV4_LEN : V2_IPV6_LEN);
	wcur_bytes(&w, ip[0], iplen);
	wcur_bytes(&w, ip[1], iplen);
	wcur_u16(&w, port[0]);
	wcur_u16(&w, port[1]);
	return wcur_done(&w);
}
