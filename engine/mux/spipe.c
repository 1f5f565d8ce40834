/* engine/mux/spipe.c — pipes for the splice data path. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/loop/engine.h"
#include "engine/mux/internal.h"

/* ---- splice path ----------------------------------------------------------------- */

#define PIPE_SIZE (256 * 1024) /* >= STREAM_QUEUE_LIMIT + one read */

struct spipe *spipe_new(const struct shard *s)
{
	struct spipe *p = malloc(sizeof(*p));
	if (!p)
		return NULL;
	if (pipe2(p->fd, O_NONBLOCK | O_CLOEXEC) == -1) {
		free(p);
		return NULL;
	}
	/* The descriptors kept for the control port are not the splice path's to take: a
	 * stream without a pipe still moves its bytes by copying. */
	if (loop_fd_near_limit(s, p->fd[1], s->eng->fd_reserve)) {
		close(p->fd[0]);
		close(p->fd[1]);
		free(p);
		return NULL;
	}
	/* A pipe smaller than what a stream may queue would stall it: then copy instead. */
	if (fcntl(p->fd[1], F_SETPIPE_SZ, PIPE_SIZE) < PIPE_SIZE) {
		close(p->fd[0]);
		close(p->fd[1]);
		free(p);
		return NULL;
	}
	p->refs = 1;
	return p;
}

/* Is the socket's next byte TCP urgent data? splice(2) stops there (returning 0 when
 * more is queued behind it, else EAGAIN); recv() reads past it. */
bool at_urgent_mark(int fd)
{
	int at = 0;
	return ioctl(fd, SIOCATMARK, &at) == 0 && at;
}

void spipe_put(struct spipe *p)
{
	if (p && --p->refs == 0) {
		close(p->fd[0]);
		close(p->fd[1]);
		free(p);
	}
}
