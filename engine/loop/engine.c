/* engine/loop/engine.c — start the shards, handle signals, drain, join. */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ebpf/loader.h"
#include "engine/loop/engine.h"
#include "engine/log.h"

int engine_msg(struct shard *from, int to, struct tok t, int32_t value)
{
	struct engine *e = from->eng;
	int rfd = to < 0 || to >= e->nshards
	                  ? -1
	                  : __atomic_load_n(&e->shards[to].ring_fd, __ATOMIC_ACQUIRE);
	if (rfd < 0)
		return -EINVAL;
	struct io_uring_sqe *sqe = shard_sqe(from, NULL, OP_MSG_SENT, 0);
	io_uring_prep_msg_ring(sqe, rfd, (unsigned)value, tok_encode(t), 0);
	/* If the message cannot be posted, the completion hands the fd back to us. */
	struct tok back = {.op = OP_MSG_SENT, .aux = 1, .idx = (uint32_t)value};
	io_uring_sqe_set_data64(sqe, tok_encode(back));
	return 0;
}

int engine_msg_handoff(struct shard *from, int to, struct tok t)
{
	struct engine *e = from->eng;
	int rfd = to < 0 || to >= e->nshards
	                  ? -1
	                  : __atomic_load_n(&e->shards[to].ring_fd, __ATOMIC_ACQUIRE);
	if (rfd < 0)
		return -EINVAL;
	struct io_uring_sqe *sqe = shard_sqe(from, NULL, OP_MSG_SENT, 0);
	io_uring_prep_msg_ring(sqe, rfd, 0, tok_encode(t), 0);
	struct tok back = {.op = OP_MSG_SENT, .aux = 2, .idx = t.idx};
	io_uring_sqe_set_data64(sqe, tok_encode(back));
	return 0;
}

static bool all_stopped(struct engine *e)
{
	for (int i = 0; i < e->nshards; i++)
		if (__atomic_load_n(&e->shards[i].running, __ATOMIC_ACQUIRE))
			return false;
	return true;
}

static void wake_all(struct engine *e)
{
	for (int i = 0; i < e->nshards; i++)
		shard_wake(&e->shards[i]);
}

/* Is the address all zeros (a listener on every address)? */
static bool addr_any(const struct sockaddr *sa)
{
	static const uint8_t zero[16];
	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == 0;
	return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, zero, 16) == 0;
}

void engine_steer(struct engine *e, const struct addrlist *al, uint16_t port, uint32_t role)
{
	if (!e->sm)
		return;
	int err = 0;
	for (int i = 0; al && i < al->n && !err; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&al->addr[i];
		if (addr_any(sa)) {
			/* 0.0.0.0 is every IPv4 address; :: every address (dual stack). */
			err = sockmap_add_endpoint(e->sm, AF_INET, NULL, port, role);
			if (!err && sa->sa_family == AF_INET6)
				err = sockmap_add_endpoint(e->sm, AF_INET6, NULL, port, role);
			continue;
		}
		const void *ip =
		        sa->sa_family == AF_INET
		                ? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
		                : (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		err = sockmap_add_endpoint(e->sm, sa->sa_family, ip, port, role);
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

void engine_steer_own(struct engine *e, int fd)
{
	if (e->sm)
		sockmap_mark_own(e->sm, fd); /* unmarked, the hop takes TCP */
}

/* --sockmap: load and attach the steering programs. Returns 0, or -errno when --sockmap
 * on cannot be had (auto records why in e->sm_why and goes on without). */
static int sockmap_start(struct engine *e)
{
	const struct cfg *c = e->cfg;
	if (c->sockmap == CFG_SM_OFF)
		return 0;
	char why[sizeof(e->sm_why)];
	int err = sockmap_open(c->sockmap_cgroup, &e->sm, why, sizeof(why));
	if (err) {
		if (c->sockmap == CFG_SM_ON) {
			log_error("--sockmap on: cannot steer local hops", "why=%s",
			          log_q(why));
			return err;
		}
		snprintf(e->sm_why, sizeof(e->sm_why), "%s", why);
		log_info("--sockmap auto: local hops take TCP", "why=%s", log_q(why));
		return 0;
	}
	log_info("steering local hops with sockmap", "cgroup=%s", log_q(sockmap_cgroup(e->sm)));
	if (c->data_path == CFG_DP_SPLICE)
		log_info(
		        "--data-path splice: steered hops are read by copy (splice cannot read "
		        "a steered socket)",
		        NULL);
	if (c->mode == CFG_CLIENT)
		client_steer_listeners(e);
	return 0;
}

/* Detach and free the steering programs (steered sockets keep their path until they
 * close). */
static void sockmap_stop(struct engine *e)
{
	sockmap_close(e->sm);
	e->sm = NULL;
}

int engine_prepare(struct engine *e)
{
	if (e->prepared)
		return 0;
	e->prepared = true;
	return sockmap_start(e);
}

int engine_run(struct engine *e)
{
	const char *missing = NULL;
	int ret = uring_probe(&missing);
	if (ret) {
		sockmap_stop(e);
		log_error("this kernel lacks an io_uring feature ringlet needs", "missing=%s",
		          log_q(missing));
		return ret;
	}
	log_debug("io_uring features", "single_issuer=%d defer_taskrun=%d coop_taskrun=%d",
	          uring_feat.single_issuer, uring_feat.defer_taskrun, uring_feat.coop_taskrun);
	e->start_unix = (uint64_t)time(NULL);
	ret = engine_prepare(e);
	if (ret)
		return ret;
	e->shards = calloc((size_t)e->nshards, sizeof(*e->shards));
	if (!e->shards) {
		sockmap_stop(e);
		return -ENOMEM;
	}
	for (int i = 0; i < e->nshards; i++) {
		ret = shard_init(&e->shards[i], e, i);
		if (ret) {
			for (int j = 0; j < i; j++)
				shard_destroy(&e->shards[j]);
			free(e->shards);
			sockmap_stop(e);
			return ret;
		}
	}

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Shards create their rings in their own threads (SINGLE_ISSUER); the others need
	 * every ring fd before the first MSG_RING, so wait until all are running. */
	for (int i = 0; i < e->nshards; i++)
		pthread_create(&e->shards[i].thread, NULL, shard_main, &e->shards[i]);
	for (int tries = 0; tries < 5000; tries++) {
		int ready = 0;
		for (int i = 0; i < e->nshards; i++)
			ready +=
			        __atomic_load_n(&e->shards[i].ring_fd, __ATOMIC_ACQUIRE) >= 0 ||
			        __atomic_load_n(&e->stop, __ATOMIC_ACQUIRE);
		if (ready == e->nshards)
			break;
		usleep(1000);
	}

	int signals = 0;
	while (!all_stopped(e) || signals == 0) {
		if (__atomic_load_n(&e->stop, __ATOMIC_ACQUIRE)) {
			wake_all(e);
			break;
		}
		struct timespec to = {.tv_sec = 0, .tv_nsec = 200 * 1000000L};
		int sig = sigtimedwait(&set, NULL, &to);
		if (sig == -1) {
			if (signals && all_stopped(e))
				break;
			continue;
		}
		if (sig == SIGHUP) {
			log_reopen();
			log_info("log file reopened", NULL);
			continue;
		}
		signals++;
		if (signals == 1) {
			log_info("shutting down: draining connections",
			         "signal=%s drain_timeout_ms=%d",
			         sig == SIGTERM ? "SIGTERM" : "SIGINT", e->cfg->drain_ms);
			__atomic_store_n(&e->drain, 1, __ATOMIC_RELEASE);
		} else {
			log_warn("second signal: exiting now", NULL);
			__atomic_store_n(&e->stop, 1, __ATOMIC_RELEASE);
		}
		wake_all(e);
	}
	int failed = 0;
	for (int i = 0; i < e->nshards; i++) {
		void *rv = NULL;
		pthread_join(e->shards[i].thread, &rv);
		failed |= rv != NULL;
	}
	int exit_now = __atomic_load_n(&e->stop, __ATOMIC_ACQUIRE) && signals > 1;
	for (int i = 0; i < e->nshards; i++)
		shard_destroy(&e->shards[i]);
	free(e->shards);
	e->shards = NULL;
	sockmap_stop(e);
	if (!failed)
		log_info("stopped", NULL);
	return failed ? -EIO : exit_now ? -EINTR : 0;
}
