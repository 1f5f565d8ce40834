/* engine/roles/steer.c — --sockmap: the roles name their hop endpoints to the steering
 * programs (ebpf/), which they load at start-up and unload at exit. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "ebpf/loader.h"
#include "engine/log.h"
#include "engine/roles/role.h"

/* Is the address all zeros (a listener on every address)? */
static bool addr_any(const struct sockaddr *sa)
{
	static const uint8_t zero[16];
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == 0;
	return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, zero, 16) == 0;
}

void steer_endpoint(struct engine *e, const struct addrlist *al, uint16_t port, uint32_t role)
{
	struct role_common *rc = role_of(e);
	if (!rc->sm)
		return;
	int err = 0;
	for (int i = 0; al && i < al->n && !err; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&al->addr[i];
		if (addr_any(sa)) {
			/* 0.0.0.0 is every IPv4 address; :: every address (dual stack). */
			err = sockmap_add_endpoint(rc->sm, AF_INET, NULL, port, role);
			if (!err && sa->sa_family == AF_INET6)
				err = sockmap_add_endpoint(rc->sm, AF_INET6, NULL, port, role);
			continue;
		}
		const void *ip =
		        sa->sa_family == AF_INET
		                ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
		                : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		err = sockmap_add_endpoint(rc->sm, sa->sa_family, ip, port, role);
	}
	if (err) {
		/* Once at warn level (the endpoints map is full or refuses), then at debug. */
		static int warned;
		if (!__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
			log_warn("cannot steer a hop endpoint: its connections take TCP",
			         "port=%u err=%s", port, log_q(strerror(-err)));
		else
			log_debug("cannot steer a hop endpoint", "port=%u err=%s", port,
			          log_q(strerror(-err)));
	}
}

void steer_own(struct engine *e, int fd)
{
	if (role_of(e)->sm)
		sockmap_mark_own(role_of(e)->sm, fd); /* unmarked, the hop takes TCP */
}

/* --sockmap: load and attach the steering programs. Returns 0, or -errno when --sockmap
 * on cannot be had (auto records why in e->sm_why and goes on without). */
int steer_start(struct engine *e)
{
	struct role_common *rc = role_of(e);
	const struct cfg *c = e->cfg;
	if (c->sockmap == CFG_SM_OFF)
		return 0;
	char why[sizeof(rc->sm_why)];
	int err = sockmap_open(c->sockmap_cgroup, &rc->sm, why, sizeof(why));
	if (err) {
		if (c->sockmap == CFG_SM_ON) {
			log_error("--sockmap on: cannot steer local hops", "why=%s",
			          log_q(why));
			return err;
		}
		snprintf(rc->sm_why, sizeof(rc->sm_why), "%s", why);
		log_info("--sockmap auto: local hops take TCP", "why=%s", log_q(why));
		return 0;
	}
	log_info("steering local hops with sockmap", "cgroup=%s",
	         log_q(sockmap_cgroup(rc->sm)));
	if (cfg_wants_splice(c->data_path) || cfg_adaptive(c->data_path))
		log_info("tunnels do not splice with --sockmap: splice cannot read a steered "
		         "socket, so bulk stays on the ring path",
		         "data_path=%s", cfg_wants_splice(c->data_path) ? "splice" : "auto");
	return 0;
}

/* Detach and free the steering programs (steered sockets keep their path until they
 * close). */
void steer_stop(struct engine *e)
{
	sockmap_close(role_of(e)->sm);
	role_of(e)->sm = NULL;
}
