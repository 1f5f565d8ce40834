/* engine/net.c — see net.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/net.h"

static int parse_host(const char *addr, char *out, size_t cap)
{
	if (!addr || !addr[0]) {
		snprintf(out, cap, "0.0.0.0");
		return 0;
	}
	size_t n = strlen(addr);
	if (addr[0] == '[') {
		const char *end = strchr(addr, ']');
		if (!end)
			return -EINVAL;
		n = (size_t)(end - addr - 1);
		addr++;
	} else if (addr[n - 1] == ':' && memchr(addr, ':', n - 1) == NULL) {
		n--; /* "127.0.0.1:" */
	}
	if (n == 0 || n >= cap)
		return -EINVAL;
	memcpy(out, addr, n);
	out[n] = 0;
	return 0;
}

/* addr:port as a socket address (net_listen's forms of addr). 0 or -EINVAL. */
static int listen_addr(const char *addr, uint16_t port, struct sockaddr_storage *ss,
                       socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	if (parse_host(addr, host, sizeof(host)))
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*len = sizeof(*a6);
	} else {
		return -EINVAL;
	}
	return 0;
}

int net_port_free(const char *addr, uint16_t port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int err = listen_addr(addr, port, &ss, &len);
	if (err)
		return err;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	/* SO_REUSEADDR only passes TIME_WAIT; without SO_REUSEPORT the bind fails on any
	 * socket bound there, ours (the control port) or another process's. */
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	err = bind(fd, (struct sockaddr *)&ss, len) == -1 ? -errno : 0;
	close(fd);
	return err;
}

int net_listen(const char *addr, uint16_t port, int *fd_out)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int perr = listen_addr(addr, port, &ss, &len);
	if (perr)
		return perr;
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) == -1 || listen(fd, 4096) == -1) {
		int err = -errno;
		close(fd);
		return err;
	}
	*fd_out = fd;
	return 0;
}

int net_resolve(const char *host, uint16_t port, struct addrlist *out)
{
	char h[256];
	size_t n = strlen(host);
	if (n && host[0] == '[' && host[n - 1] == ']') {
		host++;
		n -= 2;
	}
	if (n == 0 || n >= sizeof(h))
		return EAI_NONAME;
	memcpy(h, host, n);
	h[n] = 0;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char ps[8];
	snprintf(ps, sizeof(ps), "%u", port);
	int err = getaddrinfo(h, ps, &hints, &res);
	if (err)
		return err;
	out->n = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (struct addrinfo *ai = res; ai && out->n < 4; ai = ai->ai_next) {
			if ((pass == 0) != (ai->ai_family == AF_INET))
				continue;
			memcpy(&out->addr[out->n], ai->ai_addr, ai->ai_addrlen);
			out->len[out->n] = ai->ai_addrlen;
			out->n++;
		}
	}
	freeaddrinfo(res);
	return out->n ? 0 : EAI_NONAME;
}

int net_cidr_parse(const char *s, struct cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8];
	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	char *slash = strchr(buf, '/');
	int bits = -1;
	if (slash) {
		*slash = 0;
		char *end;
		long b = strtol(slash + 1, &end, 10);
		if (*end || end == slash + 1 || b < 0)
			return -EINVAL;
		bits = (int)b;
	}
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		out->bits = bits < 0 ? 32 : bits;
		return out->bits <= 32 ? 0 : -EINVAL;
	}
	if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		out->bits = bits < 0 ? 128 : bits;
		return out->bits <= 128 ? 0 : -EINVAL;
	}
	return -EINVAL;
}

static bool prefix_eq(const uint8_t *a, const uint8_t *b, int bits)
{
	int full = bits / 8, rest = bits % 8;
	if (memcmp(a, b, (size_t)full) != 0)
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

bool net_cidr_match(const struct cidr *list, size_t n, const struct sockaddr *sa)
{
	uint8_t a4[4], a6[16];
	bool has4 = false, has6 = false;
	if (sa->sa_family == AF_INET) {
		memcpy(a4, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		has4 = true;
	} else if (sa->sa_family == AF_INET6) {
		memcpy(a6, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		has6 = true;
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (memcmp(a6, mapped, 12) == 0) {
			memcpy(a4, a6 + 12, 4);
			has4 = true;
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (list[i].family == AF_INET && has4 &&
		    prefix_eq(a4, list[i].addr, list[i].bits))
			return true;
		if (list[i].family == AF_INET6 && has6 &&
		    prefix_eq(a6, list[i].addr, list[i].bits))
			return true;
	}
	return false;
}

static bool addr_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static bool addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family)
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
	              &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

bool net_addrs_local(const struct addrlist *al)
{
	struct ifaddrs *ifs = NULL;
	bool all = al->n > 0;
	for (int i = 0; i < al->n && all; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&al->addr[i];
		if (addr_loopback(sa))
			continue;
		if (!ifs && getifaddrs(&ifs) == -1)
			return false;
		bool found = false;
		for (struct ifaddrs *f = ifs; f && !found; f = f->ifa_next)
			found = f->ifa_addr && addr_equal(f->ifa_addr, sa);
		all = found;
	}
	if (ifs)
		freeifaddrs(ifs);
	return all;
}

void addr_format(const struct sockaddr *sa, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "?";
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else {
		snprintf(out, cap, "unknown");
	}
}
