/* engine/mux/reasm.c — a lane's frame and message reassembly (reasm.h). */
#include <string.h>

#include "engine/mux/reasm.h"

void reasm_init(struct reasm *r, enum ws_role role, uint64_t max_payload)
{
	memset(r, 0, sizeof(*r));
	ws_decoder_init(&r->dec, role, max_payload, 0);
	r->state = RX_HEADER;
}

static bool fail(const struct reasm_ops *ops, void *ctx, enum ws_close code, const char *why)
{
	ops->on_error(ctx, code, why);
	return false;
}

/* Payload bytes of a data frame: the tunnel header, then DATA bytes or a control
 * message's body. */
static bool payload_bytes(struct reasm *r, const uint8_t *p, size_t k,
                          const struct reasm_ops *ops, void *ctx)
{
	uint64_t off = r->fr_off;
	while (k) {
		if (r->msg_pos < TUN_HEADER_LEN) {
			size_t take = TUN_HEADER_LEN - r->msg_pos;
			if (take > k)
				take = k;
			memcpy(r->msgh + r->msg_pos, p, take);
			if (r->fr.masked)
				ws_mask(r->msgh + r->msg_pos, take, r->fr.mask, off);
			r->msg_pos += (uint32_t)take;
			p += take;
			k -= take;
			off += take;
			if (r->msg_pos < TUN_HEADER_LEN)
				break;
			if (tun_decode_header(r->msgh, TUN_HEADER_LEN, &r->mh) != TUN_OK)
				return fail(ops, ctx, WS_CLOSE_PROTOCOL,
				            "bad tunnel message header");
			if (r->mh.type != TUN_DATA) {
				memcpy(r->ctl, r->msgh, TUN_HEADER_LEN);
				r->ctl_len = TUN_HEADER_LEN;
			}
			if (!ops->on_msg_start(ctx, &r->mh))
				return false;
			continue;
		}
		if (r->mh.type == TUN_DATA) {
			r->msg_pos += (uint32_t)k;
			return ops->on_data(ctx, p, k, &r->fr, off);
		}
		if (r->ctl_len + k > sizeof(r->ctl))
			return fail(ops, ctx, WS_CLOSE_TOO_BIG, "control message too large");
		memcpy(r->ctl + r->ctl_len, p, k);
		if (r->fr.masked)
			ws_mask(r->ctl + r->ctl_len, k, r->fr.mask, off);
		r->ctl_len += (uint32_t)k;
		r->msg_pos += (uint32_t)k;
		break;
	}
	return true;
}

static bool message_end(struct reasm *r, const struct reasm_ops *ops, void *ctx)
{
	if (r->msg_pos < TUN_HEADER_LEN)
		return fail(ops, ctx, WS_CLOSE_PROTOCOL,
		            "tunnel message shorter than its header");
	bool ok = true;
	if (r->mh.type != TUN_DATA)
		ok = ops->on_ctl(ctx, r->ctl, r->ctl_len);
	r->msg_pos = 0;
	r->ctl_len = 0;
	return ok;
}

/* The current frame's payload is all read (or skipped). */
static bool frame_end(struct reasm *r, const struct reasm_ops *ops, void *ctx)
{
	if (r->state == RX_CONTROL) {
		r->state = RX_HEADER;
		uint8_t len = r->wsctl_len;
		r->wsctl_len = 0;
		if (r->fr.masked)
			ws_mask(r->wsctl, len, r->fr.mask, 0);
		return ops->on_ws_control(ctx, r->fr.opcode, r->wsctl, len);
	}
	r->state = RX_HEADER;
	return r->fr_msg_end ? message_end(r, ops, ctx) : true;
}

/* Frame header bytes: decode once complete. Returns the bytes of p used, or -1 to stop. */
static long header_bytes(struct reasm *r, const uint8_t *p, size_t n,
                         const struct reasm_ops *ops, void *ctx)
{
	const uint8_t *h;
	size_t avail, add = 0;
	if (r->hlen == 0 && n >= WS_MAX_HEADER) {
		h = p;
		avail = n;
	} else {
		add = WS_MAX_HEADER - r->hlen;
		if (add > n)
			add = n;
		memcpy(r->hbuf + r->hlen, p, add);
		h = r->hbuf;
		avail = r->hlen + add;
	}
	enum ws_close cc = WS_CLOSE_NONE;
	enum ws_status st =
	        ws_decoder_next(&r->dec, h, avail, &r->fr, &r->fr_msg_op, &r->fr_msg_end, &cc);
	if (st == WS_ERROR)
		return fail(ops, ctx, cc, "bad WebSocket frame") ? 0 : -1;
	if (st == WS_NEED_MORE) {
		if (h == p) /* cannot happen: WS_MAX_HEADER bytes always decide */
			return fail(ops, ctx, WS_CLOSE_PROTOCOL, "frame header") ? 0 : -1;
		r->hlen = (uint8_t)avail;
		return (long)add;
	}
	size_t used = r->fr.header_len - r->hlen; /* bytes of p in the header */
	r->hlen = 0;
	r->fr_left = r->fr.payload_len;
	r->fr_off = 0;
	if (r->fr.opcode >= WS_OP_CLOSE) {
		r->state = RX_CONTROL;
		r->wsctl_len = 0;
	} else if (r->fr_msg_op == WS_OP_TEXT) {
		return fail(ops, ctx, WS_CLOSE_UNSUPPORTED, "text messages are not used") ? 0
		                                                                          : -1;
	} else {
		r->state = RX_PAYLOAD;
	}
	if (r->fr_left == 0 && !frame_end(r, ops, ctx))
		return -1;
	return (long)used;
}

bool reasm_feed(struct reasm *r, const uint8_t *p, size_t n, const struct reasm_ops *ops,
                void *ctx)
{
	while (n) {
		if (r->state == RX_HEADER) {
			long used = header_bytes(r, p, n, ops, ctx);
			if (used < 0)
				return false;
			p += used;
			n -= (size_t)used;
			continue;
		}
		size_t k = n < r->fr_left ? n : (size_t)r->fr_left;
		if (r->state == RX_CONTROL) {
			memcpy(r->wsctl + r->wsctl_len, p, k);
			r->wsctl_len = (uint8_t)(r->wsctl_len + k);
		} else if (!payload_bytes(r, p, k, ops, ctx)) {
			return false;
		}
		p += k;
		n -= k;
		r->fr_left -= k;
		r->fr_off += k;
		if (r->fr_left == 0 && !frame_end(r, ops, ctx))
			return false;
	}
	return true;
}

bool reasm_skip(struct reasm *r, size_t n, const struct reasm_ops *ops, void *ctx)
{
	if (n > r->fr_left)
		n = (size_t)r->fr_left;
	r->msg_pos += (uint32_t)n;
	r->fr_left -= n;
	r->fr_off += n;
	if (r->fr_left == 0)
		return frame_end(r, ops, ctx);
	return true;
}
