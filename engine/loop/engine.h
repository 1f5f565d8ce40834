/* engine/loop/engine.h — the process-wide engine: configuration, shards, the main thread's
 * signal handling and drain, and messages between shards. The layers above hang their
 * process-wide state on `role` and their shard hooks on `hooks`. */
#ifndef RINGLET_ENGINE_LOOP_ENGINE_H
#define RINGLET_ENGINE_LOOP_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/config.h"
#include "engine/loop/shard.h"

#define ENGINE_HOOKS 4

struct engine {
	const struct cfg *cfg;
	int nshards;
	struct shard *shards;
	int drain;           /* set by the main thread on the first SIGTERM/SIGINT (atomic) */
	int stop;            /* set when every shard must leave at once (atomic) */
	int rings_up;        /* shards whose ring exists (atomic): they start work at nshards */
	uint64_t start_unix; /* seconds since the epoch */
	/* Shard hooks of the layers above, called in this order (stop in reverse). Set
	 * before engine_run(). */
	const struct loop_hooks *hooks[ENGINE_HOOKS];
	int nhooks;
	void *role; /* the role's process-wide state (engine/roles/); the loop never looks */
	/* The main thread's own work for the layers above (set before engine_run): on_hup
	 * after SIGHUP (the log file is reopened first); on_watch whenever watch_fd (-1:
	 * none; a zeroed engine must set it) is readable. They run on the main thread; what
	 * they hand the shards goes through engine_wake_all(). */
	void (*on_hup)(struct engine *e);
	int watch_fd;
	void (*on_watch)(struct engine *e);
	/* The open-file limit (soft) and the descriptors kept back from the listeners that
	 * yield (LISTEN_YIELD): read by engine_run() before the shards start, read-only
	 * afterwards. fd_limit 0: unknown (nothing is kept back). */
	int fd_limit, fd_reserve;
};

/* Wake every shard (its loop hooks' wake run). Main thread. */
void engine_wake_all(struct engine *e);

/* Add a layer's shard hooks (before engine_run). 0, or -ENOSPC. */
int engine_hooks(struct engine *e, const struct loop_hooks *h);

/* Probe io_uring, start the shards (threads), wait for signals and the drain, join.
 * Returns 0, -EINTR when a second signal cut the drain short, or -errno. */
int engine_run(struct engine *e);

/* Send a value (an fd, a slot number) to another shard: it arrives there as a completion
 * of t.op (registered with loop_on_shard) with res = value. If the message cannot be
 * posted, the value comes back on this shard to t.op's loop_on_undelivered handler.
 * 0, or -EINVAL when the shard does not exist (the caller keeps the value). */
int engine_msg(struct shard *from, int to_shard, struct tok t, uint32_t value);

#endif
