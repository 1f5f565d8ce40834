/* fuzz/proxy_hdr.c — libFuzzer driver for the PROXY protocol codec (proto/proxy.c).
 *
 * Each input is the start of a connection. The parser must agree with itself on every
 * prefix (a header needs more until its last byte, then parses to the same length
 * whatever follows), and a header with addresses, built again from them with the same
 * version, must parse back to the same addresses.
 */
#include "proto/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(x)                                                                               \
	do {                                                                                   \
		if (!(x))                                                                      \
			abort();                                                               \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_hdr(const struct proxy_hdr *a, const struct proxy_hdr *b)
{
	return a->version == b->version && a->local == b->local && a->len == b->len &&
	       memcmp(&a->src, &b->src, sizeof(a->src)) == 0 &&
	       memcmp(&a->dst, &b->dst, sizeof(a->dst)) == 0;
}

/* A parsed address as "ip:port" / "[ip]:port", the form proxy_build takes. */
static void endpoint(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN];
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
		CHECK(inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip)));
		snprintf(out, cap, "%s:%u", ip, ntohs(sin->sin_port));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
		CHECK(ss->ss_family == AF_INET6);
		CHECK(inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip)));
		snprintf(out, cap, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr h, p, again;
	const char *why = NULL;
	enum proxy_status st;
	char src[64], dst[64];
	uint8_t out[PROXY_V2_MAX];
	size_t n, limit;

	st = proxy_parse(data, size, &h, &why);
	if (st == PROXY_ERROR)
		CHECK(why != NULL && why[0] != 0);
	if (st == PROXY_NEED_MORE)
		CHECK(size < PROXY_V2_MAX);

	/* Prefixes: an error stays an error, a header needs more until it is whole. */
	limit = size < PROXY_V2_MAX + 1 ? size : PROXY_V2_MAX + 1;
	for (size_t k = 0; k < limit; k++) {
		enum proxy_status ps = proxy_parse(data, k, &p, NULL);
		if (st == PROXY_NEED_MORE || (st == PROXY_OK && k < h.len))
			CHECK(ps == PROXY_NEED_MORE);
		else if (st == PROXY_OK)
			CHECK(ps == PROXY_OK && same_hdr(&h, &p));
		else
			CHECK(ps != PROXY_OK);
	}
	if (st != PROXY_OK)
		return 0;

	CHECK(h.version == 1 || h.version == 2);
	CHECK(h.len > 0 && h.len <= size);
	CHECK(h.len <= (h.version == 1 ? PROXY_V1_MAX : PROXY_V2_MAX));
	if (h.local)
		return 0;
	CHECK(h.src.ss_family == h.dst.ss_family);

	endpoint(&h.src, src, sizeof(src));
	endpoint(&h.dst, dst, sizeof(dst));
	n = proxy_build(out, sizeof(out), h.version, src, dst);
	CHECK(n > 0);
	CHECK(proxy_parse(out, n, &again, NULL) == PROXY_OK);
	CHECK(again.len == n && again.version == h.version && !again.local);
	CHECK(memcmp(&again.src, &h.src, sizeof(h.src)) == 0);
	CHECK(memcmp(&again.dst, &h.dst, sizeof(h.dst)) == 0);
	/* v2 without TLVs has a single encoding: the input's. */
	if (h.version == 2 && h.len == n)
		CHECK(memcmp(out, data, n) == 0);

	/* What proxy_build writes is canonical: building from its parse gives it again. */
	uint8_t out2[PROXY_V2_MAX];
	endpoint(&again.src, src, sizeof(src));
	endpoint(&again.dst, dst, sizeof(dst));
	CHECK(proxy_build(out2, sizeof(out2), h.version, src, dst) == n);
	CHECK(memcmp(out, out2, n) == 0);
	return 0;
}
