/* engine/loop/engine.c — start the shards, handle signals, drain, join; messages between
 * shards. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/loop/loop.h"

int engine_hooks(struct engine *e, const struct loop_hooks *h)
{
	if (e->nhooks == ENGINE_HOOKS)
		return -ENOSPC;
	e->hooks[e->nhooks++] = h;
	return 0;
}

int engine_msg(struct shard *from, int to, struct tok t, uint32_t value)
{
	struct engine *e = from->eng;
	int rfd = to < 0 || to >= e->nshards
	                  ? -1
	                  : __atomic_load_n(&e->shards[to].ring_fd, __ATOMIC_ACQUIRE);
	if (rfd < 0)
		return -EINVAL;
	struct io_uring_sqe *sqe = shard_sqe(from, NULL, OP_MSG_SENT, 0);
	io_uring_prep_msg_ring(sqe, rfd, value, tok_encode(t), 0);
	/* If the message cannot be posted, our completion hands the value back. */
	struct tok back = {.op = OP_MSG_SENT, .aux = t.op, .idx = value};
	io_uring_sqe_set_data64(sqe, tok_encode(back));
	return 0;
}

/* Wait up to ms for one of the signals in set (blocked, and read from sfd); meanwhile run
 * e->on_watch whenever the watched fd is readable. The signal, or -1 when none came. */
static int wait_signal(struct engine *e, int sfd, int ms)
{
	struct pollfd pfd[2] = {{.fd = sfd, .events = POLLIN},
	                        {.fd = e->watch_fd, .events = POLLIN}};
	int n = poll(pfd, e->watch_fd >= 0 ? 2 : 1, ms);
	if (n <= 0)
		return -1;
	if (pfd[1].revents & POLLIN && e->on_watch)
		e->on_watch(e);
	struct signalfd_siginfo si;
	if (pfd[0].revents & POLLIN && read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		return (int)si.ssi_signo;
	return -1;
}

void engine_wake_all(struct engine *e)
{
	for (int i = 0; i < e->nshards; i++)
		shard_wake(&e->shards[i]);
}

static bool all_stopped(struct engine *e)
{
	for (int i = 0; i < e->nshards; i++)
		if (__atomic_load_n(&e->shards[i].running, __ATOMIC_ACQUIRE))
			return false;
	return true;
}

/* Read the open-file limit (after the entry points raised it) and size the reserve the
 * yielding listeners leave: LOOP_FD_RESERVE, at most a quarter of the limit. */
static void fd_budget(struct engine *e)
{
	struct rlimit rl;
	e->fd_limit = e->fd_reserve = 0;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur > INT_MAX)
		return;
	e->fd_limit = (int)rl.rlim_cur;
	e->fd_reserve = e->fd_limit / 4 < LOOP_FD_RESERVE ? e->fd_limit / 4 : LOOP_FD_RESERVE;
}

int engine_run(struct engine *e)
{
	const char *missing = NULL;
	int ret = uring_probe(&missing);
	if (ret) {
		log_error("this kernel lacks an io_uring feature ringlet needs", "missing=%s",
		          log_q(missing));
		return ret;
	}
	log_debug("io_uring features",
	          "single_issuer=%d defer_taskrun=%d coop_taskrun=%d recv_mshot_limit=%d",
	          uring_feat.single_issuer, uring_feat.defer_taskrun, uring_feat.coop_taskrun,
	          uring_feat.recv_mshot_limit);
	e->start_unix = (uint64_t)time(NULL);
	fd_budget(e);
	e->shards = calloc((size_t)e->nshards, sizeof(*e->shards));
	if (!e->shards)
		return -ENOMEM;
	for (int i = 0; i < e->nshards; i++) {
		ret = shard_init(&e->shards[i], e, i);
		if (ret) {
			for (int j = 0; j < i; j++)
				shard_destroy(&e->shards[j]);
			free(e->shards);
			e->shards = NULL;
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
	/* The blocked signals are read from a descriptor, so that the main thread can wait
	 * for them and for the layers' watched fd at once. */
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd == -1) {
		ret = -errno;
		for (int i = 0; i < e->nshards; i++)
			shard_destroy(&e->shards[i]);
		free(e->shards);
		e->shards = NULL;
		return ret;
	}

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
			engine_wake_all(e);
			break;
		}
		int sig = wait_signal(e, sfd, 200);
		if (sig == -1) {
			if (signals && all_stopped(e))
				break;
			continue;
		}
		if (sig == SIGHUP) {
			log_reopen();
			log_info("log file reopened", NULL);
			if (e->on_hup)
				e->on_hup(e);
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
		engine_wake_all(e);
	}
	close(sfd);
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
	if (!failed)
		log_info("stopped", NULL);
	return failed ? -EIO : exit_now ? -EINTR : 0;
}
