/* engine/certs.h — auto-TLS certificates (server) and the CA fetch (client). These run at
 * start-up (server) or when a lane connects for the first time (client), never on the
 * data path. */
#ifndef RINGLET_ENGINE_CERTS_H
#define RINGLET_ENGINE_CERTS_H

#include <stddef.h>

#include "engine/config.h"

/* Make sure dir holds ca.crt, ca.key, server.crt and server.key for the SANs in c
 * (--auto-tls-san; IPs and DNS names). Existing files are reused when they are valid: the
 * CA and the server certificate parse, the server certificate is signed by the CA, covers
 * every requested SAN and is valid for at least 30 more days; otherwise the server
 * certificate (and, if the CA is unusable, the CA) is generated anew: ECDSA P-256, the
 * CA valid 10 years, the server certificate 1 year. Keys are written with mode 0600.
 * Returns 0, or -1 with a reason in err. *ca_pem receives the CA certificate (malloc'd). */
int certs_auto(const struct cfg *c, const char *dir, char **ca_pem, char *err, size_t errlen);

/* Read a whole file into a NUL-terminated malloc'd buffer. NULL on failure (errno set). */
char *certs_read_file(const char *path, size_t *len);

/* Trust on first use: fetch https://host:port/.well-known/ca.crt WITHOUT verifying the
 * server (there is nothing to verify it with yet) and return the PEM (malloc'd). Blocking
 * (engine/httpc.h), within timeout_ms in all. Returns 0, or -1 with a reason in err. */
int certs_fetch_ca(const char *host, unsigned port, int timeout_ms, char **pem, char *err,
                   size_t errlen);

#endif
