/* engine/roles/server.h — the server role: control port (HTTP, /connect upgrades), the client
 * registry, and data-plane listeners. */
#ifndef RINGLET_ENGINE_SERVER_H
#define RINGLET_ENGINE_SERVER_H

#include "engine/loop/shard.h"

void http_conn_release(struct shard *s, struct conn *c);
void server_shard_start(struct shard *s);
void client_shard_start(struct shard *s);

#endif
