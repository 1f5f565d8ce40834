/* engine/ringlet.c — the engine's entry points (ringlet.h): each assembles the layers for
 * its role — the loop, the mux, the role and the control port's service register their
 * operations and shard hooks — and runs the engine. This file sits above every layer. */
#include <openssl/rand.h>
#include <stdio.h>
#include <sys/resource.h>

#include "engine/log.h"
#include "engine/loop/engine.h"
#include "engine/mux/tunnel.h"
#include "engine/ringlet.h"
#include "engine/roles/role.h"
#include "engine/svc/httpd.h"

/* Raise the soft open-file limit to the hard one: every connection is a descriptor, and
 * a default soft limit of 1024 runs out long before the connection table does. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("open-file limit raised", "from=%llu to=%llu", (unsigned long long)was,
		         (unsigned long long)rl.rlim_max);
}

/* Register every layer's operations, and hang their shard hooks on e in layer order
 * (mux, role, service: each starts after the one below it and stops before it). */
static void assemble(struct engine *e, const struct loop_hooks *role_hooks)
{
	engine_hooks(e, mux_init());
	role_init();
	engine_hooks(e, role_hooks);
	engine_hooks(e, svc_init(e->cfg->mode));
}

int ringlet_server_run(const struct cfg *c)
{
	raise_nofile();
	struct engine e = {.cfg = c, .nshards = cfg_shard_count(c), .watch_fd = -1};
	struct server srv;
	int status = 1;
	const struct loop_hooks *hooks = server_setup(&e, &srv, &status);
	if (!hooks)
		return status;
	assemble(&e, hooks);
	log_info("server listening", "control=%s:%u tls=%s data_addr=%s shards=%d version=%s",
	         c->control_addr, c->control_port,
	         !srv.tls_server                 ? "off"
	         : c->tls_cert && c->tls_cert[0] ? "cert"
	                                         : "auto",
	         c->data_addr && c->data_addr[0] ? c->data_addr : "0.0.0.0", e.nshards,
	         ringlet_version);
	int ret = engine_run(&e);
	server_teardown(&e);
	return ret == 0 ? 0 : 1;
}

int ringlet_client_run(const struct cfg *conf)
{
	raise_nofile();
	/* A client id that stays the same across reconnects of this process. */
	struct cfg local = *conf;
	const struct cfg *c = &local;
	char id[33];
	if (!local.client_id || !local.client_id[0]) {
		uint8_t r[16];
		RAND_bytes(r, sizeof(r));
		for (int i = 0; i < 16; i++)
			snprintf(id + 2 * i, 3, "%02x", r[i]);
		local.client_id = id;
	}
	/* One shard per lane; lanes: --lanes, else as many as the server suggests, at most
	 * one per shard here (--shards, or the online CPUs). */
	struct engine e = {.cfg = c, .nshards = cfg_shard_count(c), .watch_fd = -1};
	if (c->lanes > 0 && c->lanes < e.nshards)
		e.nshards = c->lanes;
	struct client cli;
	int status = 1;
	const struct loop_hooks *hooks = client_setup(&e, &cli, &status);
	if (!hooks)
		return status;
	assemble(&e, hooks);
	char ports[TUN_MAX_PORTS * 6 + 1] = "";
	size_t pl = 0;
	for (size_t i = 0; i < c->nports; i++)
		pl += (size_t)snprintf(ports + pl, sizeof(ports) - pl, "%s%u", i ? "," : "",
		                       c->ports[i]);
	log_info("client starting", "url=%s upstream=%s ports=%s client_id=%s version=%s",
	         log_q(c->url), log_q(c->upstream), ports, log_q(c->client_id),
	         ringlet_version);
	int ret = engine_run(&e);
	client_teardown(&e);
	return ret == 0 ? 0 : 1;
}
