/* engine/net.c — see net.h. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
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

int net_listen(const char *addr, uint16_t port, int *fd_out)
{
	char host[INET6_ADDRSTRLEN + 1];
	if (parse_host(addr, host, sizeof(host)))
		return -EINVAL;
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		len = sizeof(*a4);
	} else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		len = sizeof(*a6);
	} else {
		return -EINVAL;
	}
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
