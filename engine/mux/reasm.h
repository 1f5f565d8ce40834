/* engine/mux/reasm.h — a lane's receive-side reassembly, pure: WebSocket frames (proto/ws.h)
 * and the tunnel messages inside them (proto/tunnel.h), fed the byte stream in any split.
 * It owns no socket and no stream: what it finds goes to the callbacks it is given, and
 * a callback that returns false stops it (the lane is closing). Tested at every split
 * point in tests/engine/mux/reasm.c.
 *
 * Rules it enforces: frames are decoded by proto/ws (mask bit for the role, lengths,
 * RSV bits, control frames); text messages are refused (1003); a message must hold at
 * least a tunnel header; a control message is at most TUN_MAX_CONTROL bytes (1009). */
#ifndef RINGLET_ENGINE_MUX_REASM_H
#define RINGLET_ENGINE_MUX_REASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/tunnel.h"
#include "proto/ws.h"

enum rx_state {
	RX_HEADER,
	RX_PAYLOAD,
	RX_CONTROL, /* WebSocket control frame payload (ping/pong/close) */
};

struct reasm {
	struct ws_decoder dec;
	uint8_t state; /* enum rx_state */
	uint8_t hbuf[WS_MAX_HEADER];
	uint8_t hlen;
	struct ws_frame fr; /* the current frame */
	uint8_t fr_msg_op;  /* the opcode of the message it belongs to */
	bool fr_msg_end;    /* it is the message's last frame */
	uint64_t fr_left;   /* payload bytes of the frame still to come */
	uint64_t fr_off;    /* payload bytes of the frame seen (the masking offset) */
	uint32_t msg_pos;   /* bytes of the current tunnel message seen */
	uint8_t msgh[TUN_HEADER_LEN];
	struct tun_msg mh; /* header of the current message */
	uint8_t ctl[TUN_MAX_CONTROL];
	uint32_t ctl_len;
	uint8_t wsctl[WS_MAX_CONTROL_PAYLOAD];
	uint8_t wsctl_len;
};

/* What reassembly reports. Each returns false to stop (the caller closes the lane). */
struct reasm_ops {
	/* A message's header was read (mh->type, mh->stream); for DATA, its payload
	 * follows in on_data calls. */
	bool (*on_msg_start)(void *ctx, const struct tun_msg *mh);
	/* DATA payload bytes of the current message as they are on the wire: when fr->masked
	 * they still need unmasking with fr->mask from frame offset off (ws_mask_copy). */
	bool (*on_data)(void *ctx, const uint8_t *p, size_t n, const struct ws_frame *fr,
	                uint64_t off);
	/* A complete control message (its header included), unmasked. */
	bool (*on_ctl)(void *ctx, const uint8_t *m, size_t len);
	/* A WebSocket control frame (WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE), unmasked. */
	bool (*on_ws_control)(void *ctx, uint8_t opcode, uint8_t *p, size_t len);
	/* The peer broke the protocol: close the lane with code (reasm stops). */
	void (*on_error)(void *ctx, enum ws_close code, const char *why);
};

/* A reassembler for frames sent to `role` (a server expects masked frames), accepting
 * frame payloads up to max_payload. */
void reasm_init(struct reasm *r, enum ws_role role, uint64_t max_payload);

/* Feed n bytes of the stream. true when all were taken; false when a callback stopped it
 * or on_error was called. */
bool reasm_feed(struct reasm *r, const uint8_t *p, size_t n, const struct reasm_ops *ops,
                void *ctx);

/* n payload bytes of the current DATA message (at most fr_left) were taken from the
 * stream by the caller (spliced): account for them, and end the frame when it is done.
 * Returns as reasm_feed. */
bool reasm_skip(struct reasm *r, size_t n, const struct reasm_ops *ops, void *ctx);

/* Is the next byte part of a DATA payload (header read, frame payload pending)? */
static inline bool reasm_in_data(const struct reasm *r)
{
	return r->state == RX_PAYLOAD && r->msg_pos >= TUN_HEADER_LEN && r->mh.type == TUN_DATA;
}

#endif
