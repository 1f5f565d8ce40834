/* engine/net.h — socket set-up helpers (listeners, name resolution). These are called at
 * start-up, on a client's HELLO, on a lane's (re)connect or by the resolver's thread: never
 * per byte. */
#ifndef RINGLET_ENGINE_NET_H
#define RINGLET_ENGINE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <netinet/in.h>

/* Up to four addresses of a name, in the order to try. */
struct addrlist {
	struct sockaddr_storage addr[4];
	socklen_t len[4];
	int n;
};

/* A non-blocking listening TCP socket with SO_REUSEADDR and SO_REUSEPORT (one per shard)
 * on addr:port. addr NULL, "" or "0.0.0.0": all IPv4 interfaces; "::": all interfaces;
 * a trailing ':' (as in "127.0.0.1:") is accepted. 0 or -errno. */
int net_listen(const char *addr, uint16_t port, int *fd_out);

/* Is addr:port free for a listener of ours alone: nothing bound there, neither another
 * process (with or without SO_REUSEPORT) nor one of our own sockets? 0, -EADDRINUSE, or
 * another -errno. A probe: it binds and closes, so a race with another binder remains. */
int net_port_free(const char *addr, uint16_t port);

/* Resolve host (name or address; brackets allowed) to up to 4 addresses, IPv4 first,
 * with port. Blocking (getaddrinfo): called at start-up and by the resolver's thread
 * (engine/resolve.h), never on a shard. 0, or a negative EAI_* code (see gai_strerror). */
int net_resolve(const char *host, uint16_t port, struct addrlist *out);

/* Are all of al's addresses this host's: loopback, or assigned to one of its interfaces
 * (getifaddrs)? False for an empty list. */
bool net_addrs_local(const struct addrlist *al);

/* An IP network for --allow-ips: family, address, prefix length. */
struct cidr {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	int bits;
};

/* Parse "10.0.0.0/8", "2001:db8::/32" or a single address (a /32 or /128). 0 or -EINVAL. */
int net_cidr_parse(const char *s, struct cidr *out);

/* Is the address in any of the n networks? IPv4-mapped IPv6 addresses match IPv4 networks. */
bool net_cidr_match(const struct cidr *list, size_t n, const struct sockaddr *sa);

/* Format a socket address as "ip:port" ("[ip6]:port"), or "unknown". */
void addr_format(const struct sockaddr *sa, char *out, size_t cap);

#endif
