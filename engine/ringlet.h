/* engine/ringlet.h — the engine's entry points, called by the CLI (tools/). */
#ifndef RINGLET_ENGINE_RINGLET_H
#define RINGLET_ENGINE_RINGLET_H

#include "engine/config.h"

/* Run a tunnel server (exit node) until SIGTERM/SIGINT and the drain that follows.
 * Returns the process exit status. */
int ringlet_server_run(const struct cfg *c);

/* Run a tunnel client until SIGTERM/SIGINT. Returns the process exit status. */
int ringlet_client_run(const struct cfg *c);

/* Version strings (tools/version.c). */
extern const char ringlet_version[];
extern const char ringlet_sha[];

#endif
