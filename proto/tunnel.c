/* proto/tunnel.c — ringlet's tunnel protocol codec. See proto/tunnel.h and docs/PROTOCOL.md.
 */
#include "proto/tunnel.h"

#include "proto/cursor.h"

#include <string.h>

/* Set *why (if the caller wants it) and fail. */
static enum tun_status fail(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return TUN_ERROR;
}

static bool is_connection_type(uint8_t type)
{
	switch (type) {
	case TUN_HELLO:
	case TUN_WELCOME:
	case TUN_PING:
	case TUN_PONG:
	case TUN_GOAWAY:
		return true;
	default:
		return false;
	}
}

static bool is_stream_type(uint8_t type)
{
	switch (type) {
	case TUN_OPEN:
	case TUN_DATA:
	case TUN_FIN:
	case TUN_RST:
	case TUN_WINDOW:
		return true;
	default:
		return false;
	}
}

static bool cur_str(struct cur *c, struct tun_str *s)
{
	uint8_t n;
	const uint8_t *p;
	if (!cur_u8(c, &n) || !cur_bytes(c, &p, n))
		return false;
	s->p = p;
	s->len = n;
	return true;
}

static bool wcur_str(struct wcur *w, struct tun_str s)
{
	return wcur_u8(w, s.len) && wcur_bytes(w, s.p, s.len);
}

static void put_header(struct wcur *w, uint8_t type, uint32_t stream)
{
	wcur_u8(w, type);
	wcur_u8(w, 0); /* flags: none defined; senders send 0 */
	wcur_u16(w, 0);
	wcur_u32(w, stream);
}

enum tun_status tun_decode_header(const uint8_t *buf, size_t len, struct tun_msg *m)
{
	struct cur c = cur_init(buf, len);
	uint16_t reserved;
	if (!cur_u8(&c, &m->type) || !cur_u8(&c, &m->flags) || !cur_u16(&c, &reserved) ||
	    !cur_u32(&c, &m->stream))
		return TUN_NEED_MORE;
	return reserved == 0 ? TUN_OK : TUN_ERROR;
}

static enum tun_status decode_hello(struct cur *c, struct tun_hello *h, const char **why)
{
	if (!cur_u16(c, &h->version_min) || !cur_u16(c, &h->version_max) ||
	    !cur_u32(c, &h->caps) || !cur_u32(c, &h->window) || !cur_u32(c, &h->max_frame) ||
	    !cur_u16(c, &h->lane) || !cur_u64(c, &h->session) || !cur_str(c, &h->client_id) ||
	    !cur_str(c, &h->upstream) || !cur_u16(c, &h->nports))
		return fail(why, "HELLO truncated");
	if (h->max_frame == 0)
		return fail(why, "HELLO max_frame is 0");
	if (h->nports > TUN_MAX_PORTS)
		return fail(why, "HELLO offers too many ports");
	for (size_t i = 0; i < h->nports; i++) {
		if (!cur_u16(c, &h->ports[i]))
			return fail(why, "HELLO truncated");
		if (h->ports[i] == 0)
			return fail(why, "HELLO offers port 0");
		for (size_t j = 0; j < i; j++)
			if (h->ports[j] == h->ports[i])
				return fail(why, "HELLO offers a port twice");
	}
	return TUN_OK;
}

static enum tun_status decode_welcome(struct cur *c, struct tun_welcome *w, const char **why)
{
	if (!cur_u16(c, &w->version) || !cur_u32(c, &w->caps) || !cur_u32(c, &w->window) ||
	    !cur_u32(c, &w->max_frame) || !cur_u16(c, &w->lanes) || !cur_u64(c, &w->session) ||
	    !cur_u16(c, &w->nports))
		return fail(why, "WELCOME truncated");
	if (w->max_frame == 0)
		return fail(why, "WELCOME max_frame is 0");
	if (w->nports > TUN_MAX_PORTS)
		return fail(why, "WELCOME reports too many ports");
	for (size_t i = 0; i < w->nports; i++) {
		if (!cur_u16(c, &w->ports[i].port) || !cur_u16(c, &w->ports[i].status))
			return fail(why, "WELCOME truncated");
		if (w->ports[i].port == 0)
			return fail(why, "WELCOME reports port 0");
	}
	return TUN_OK;
}

enum tun_status tun_decode(const uint8_t *buf, size_t len, struct tun_msg *m, const char **why)
{
	struct cur c = cur_init(buf, len);
	enum tun_status st;

	st = tun_decode_header(buf, len, m);
	if (st == TUN_NEED_MORE)
		return fail(why, "message shorter than the header");
	if (st == TUN_ERROR)
		return fail(why, "reserved header field is not zero");
	cur_skip(&c, TUN_HEADER_LEN);

	if (m->type != TUN_DATA && len > TUN_MAX_CONTROL)
		return fail(why, "control message over TUN_MAX_CONTROL");
	if (is_connection_type(m->type) && m->stream != 0)
		return fail(why, "connection message with a non-zero stream id");
	if (is_stream_type(m->type) && m->stream == 0)
		return fail(why, "stream message with stream id 0");

	switch (m->type) {
	case TUN_HELLO:
		st = decode_hello(&c, &m->u.hello, why);
		if (st != TUN_OK)
			return st;
		break;
	case TUN_WELCOME:
		st = decode_welcome(&c, &m->u.welcome, why);
		if (st != TUN_OK)
			return st;
		break;
	case TUN_OPEN:
		if (!cur_u16(&c, &m->u.open.port) || !cur_str(&c, &m->u.open.remote) ||
		    !cur_str(&c, &m->u.open.local))
			return fail(why, "OPEN truncated");
		if (m->u.open.port == 0)
			return fail(why, "OPEN for port 0");
		m->u.open.flags = m->flags & (TUN_OPEN_PROXY_V1 | TUN_OPEN_PROXY_V2);
		break;
	case TUN_DATA:
		m->u.data.p = c.p;
		m->u.data.len = c.len;
		cur_skip(&c, c.len);
		break;
	case TUN_FIN:
		break;
	case TUN_RST:
		if (!cur_u16(&c, &m->u.rst.reason) || !cur_str(&c, &m->u.rst.text))
			return fail(why, "RST truncated");
		break;
	case TUN_GOAWAY:
		if (!cur_u16(&c, &m->u.goaway.reason) || !cur_str(&c, &m->u.goaway.text))
			return fail(why, "GOAWAY truncated");
		break;
	case TUN_WINDOW:
		if (!cur_u32(&c, &m->u.window))
			return fail(why, "WINDOW truncated");
		if (m->u.window == 0)
			return fail(why, "WINDOW increment is 0");
		break;
	case TUN_PING:
	case TUN_PONG:
		if (!cur_u64(&c, &m->u.ping))
			return fail(why, "PING/PONG truncated");
		break;
	default:
		/* Unknown type: the receiver ignores it, whatever its body. */
		return TUN_OK;
	}
	if (c.len != 0)
		return fail(why, "trailing bytes after the message body");
	return TUN_OK;
}

size_t tun_encode_header(uint8_t *out, size_t cap, uint8_t type, uint32_t stream)
{
	struct wcur w = wcur_init(out, cap);
	put_header(&w, type, stream);
	return wcur_done(&w);
}

size_t tun_encode_hello(uint8_t *out, size_t cap, const struct tun_hello *h)
{
	struct wcur w = wcur_init(out, cap);
	if (h->nports > TUN_MAX_PORTS)
		return 0;
	put_header(&w, TUN_HELLO, 0);
	wcur_u16(&w, h->version_min);
	wcur_u16(&w, h->version_max);
	wcur_u32(&w, h->caps);
	wcur_u32(&w, h->window);
	wcur_u32(&w, h->max_frame);
	wcur_u16(&w, h->lane);
	wcur_u64(&w, h->session);
	wcur_str(&w, h->client_id);
	wcur_str(&w, h->upstream);
	wcur_u16(&w, h->nports);
	for (size_t i = 0; i < h->nports; i++)
		wcur_u16(&w, h->ports[i]);
	return wcur_done(&w);
}

size_t tun_encode_welcome(uint8_t *out, size_t cap, const struct tun_welcome *wl)
{
	struct wcur w = wcur_init(out, cap);
	if (wl->nports > TUN_MAX_PORTS)
		return 0;
	put_header(&w, TUN_WELCOME, 0);
	wcur_u16(&w, wl->version);
	wcur_u32(&w, wl->caps);
	wcur_u32(&w, wl->window);
	wcur_u32(&w, wl->max_frame);
	wcur_u16(&w, wl->lanes);
	wcur_u64(&w, wl->session);
	wcur_u16(&w, wl->nports);
	for (size_t i = 0; i < wl->nports; i++) {
		wcur_u16(&w, wl->ports[i].port);
		wcur_u16(&w, wl->ports[i].status);
	}
	return wcur_done(&w);
}

size_t tun_encode_open(uint8_t *out, size_t cap, uint32_t stream, const struct tun_open *o)
{
	struct wcur w = wcur_init(out, cap);
	put_header(&w, TUN_OPEN, stream);
	if (!w.failed)
		out[1] = o->flags & (TUN_OPEN_PROXY_V1 | TUN_OPEN_PROXY_V2);
	wcur_u16(&w, o->port);
	wcur_str(&w, o->remote);
	wcur_str(&w, o->local);
	return wcur_done(&w);
}

size_t tun_encode_fin(uint8_t *out, size_t cap, uint32_t stream)
{
	return tun_encode_header(out, cap, TUN_FIN, stream);
}

size_t tun_encode_rst(uint8_t *out, size_t cap, uint32_t stream, uint16_t reason,
                      const char *text)
{
	struct wcur w = wcur_init(out, cap);
	put_header(&w, TUN_RST, stream);
	wcur_u16(&w, reason);
	wcur_str(&w, tun_str_from(text));
	return wcur_done(&w);
}

size_t tun_encode_window(uint8_t *out, size_t cap, uint32_t stream, uint32_t increment)
{
	struct wcur w = wcur_init(out, cap);
	put_header(&w, TUN_WINDOW, stream);
	wcur_u32(&w, increment);
	return wcur_done(&w);
}

size_t tun_encode_ping(uint8_t *out, size_t cap, bool pong, uint64_t timestamp)
{
	struct wcur w = wcur_init(out, cap);
	put_header(&w, pong ? TUN_PONG : TUN_PING, 0);
	wcur_u64(&w, timestamp);
	return wcur_done(&w);
}

size_t tun_encode_goaway(uint8_t *out, size_t cap, uint16_t reason, const char *text)
{
	struct wcur w = wcur_init(out, cap);
	put_header(&w, TUN_GOAWAY, 0);
	wcur_u16(&w, reason);
	wcur_str(&w, tun_str_from(text));
	return wcur_done(&w);
}

size_t tun_encode_data_header(uint8_t *out, size_t cap, uint32_t stream)
{
	return tun_encode_header(out, cap, TUN_DATA, stream);
}

struct tun_str tun_str_from(const char *s)
{
	size_t n;
	if (!s)
		return (struct tun_str){.p = (const uint8_t *)"", .len = 0};
	n = strnlen(s, TUN_MAX_STR);
	return (struct tun_str){.p = (const uint8_t *)s, .len = (uint8_t)n};
}

const char *tun_type_name(uint8_t type)
{
	switch (type) {
	case TUN_HELLO:
		return "HELLO";
	case TUN_WELCOME:
		return "WELCOME";
	case TUN_OPEN:
		return "OPEN";
	case TUN_DATA:
		return "DATA";
	case TUN_FIN:
		return "FIN";
	case TUN_RST:
		return "RST";
	case TUN_WINDOW:
		return "WINDOW";
	case TUN_PING:
		return "PING";
	case TUN_PONG:
		return "PONG";
	case TUN_GOAWAY:
		return "GOAWAY";
	default:
		return "unknown";
	}
}

const char *tun_rst_reason_name(uint16_t reason)
{
	switch (reason) {
	case TUN_RST_NONE:
		return "none";
	case TUN_RST_REFUSED:
		return "refused";
	case TUN_RST_UNREACHABLE:
		return "unreachable";
	case TUN_RST_RESET:
		return "reset";
	case TUN_RST_PROTOCOL:
		return "protocol";
	case TUN_RST_NO_STREAM:
		return "no-stream";
	case TUN_RST_SHUTDOWN:
		return "shutdown";
	case TUN_RST_INTERNAL:
		return "internal";
	case TUN_RST_TIMEOUT:
		return "timeout";
	default:
		return "unknown";
	}
}
