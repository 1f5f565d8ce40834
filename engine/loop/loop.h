/* engine/loop/loop.h — internal to engine/loop/: what its files share. Nothing outside the
 * loop includes it. */
#ifndef RINGLET_ENGINE_LOOP_LOOP_H
#define RINGLET_ENGINE_LOOP_LOOP_H

#include "engine/loop/engine.h"
#include "engine/loop/shard.h"

/* The registered ops of kind k, or NULL. */
const struct kind_ops *loop_kind_ops(uint8_t k);

/* Free c's slot now (its last completion has arrived): kind finalize, close the fd. */
void conn_finalize(struct shard *s, struct conn *c);

/* End of a loop turn: flush the deferred connections, finalize the reaped ones. */
void loop_flush_deferred(struct shard *s);
void loop_reap(struct shard *s);

/* Re-arm the listeners whose pause is over (every tick). */
void loop_resume_listeners(struct shard *s);

/* OP_ACCEPT on a listener. */
void loop_on_accept(struct shard *s, struct conn *c, struct tok t, struct io_uring_cqe *cqe);

/* OP_MSG_SENT: a message to another shard failed: hand its value back (engine.c). */
void loop_msg_undelivered(struct shard *s, uint8_t op, uint32_t value);

#endif
