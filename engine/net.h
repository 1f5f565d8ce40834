/* engine/net.h — socket set-up helpers (listeners, name resolution). These are called at
 * start-up, on a client's HELLO, or on a lane's (re)connect: never per byte. */
#ifndef RINGLET_ENGINE_NET_H
#define RINGLET_ENGINE_NET_H

#include <stdint.h>
#include <sys/socket.h>

#include "engine/tunnel.h"

/* A non-blocking listening TCP socket with SO_REUSEADDR and SO_REUSEPORT (one per shard)
 * on addr:port. addr NULL, "" or "0.0.0.0": all IPv4 interfaces; "::": all interfaces;
 * a trailing ':' (as in "127.0.0.1:") is accepted. 0 or -errno. */
int net_listen(const char *addr, uint16_t port, int *fd_out);

/* Resolve host (name or address; brackets allowed) to up to 4 addresses, IPv4 first,
 * with port. Blocking (getaddrinfo). 0, or a negative EAI_* code (see gai_strerror). */
int net_resolve(const char *host, uint16_t port, struct addrlist *out);

#endif
