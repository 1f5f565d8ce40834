/* tests/engine/mux/reasm.c — a lane's frame and message reassembly (engine/mux/reasm.c),
 * fed a stream of masked frames (as a server receives them) at every split point and byte
 * by byte: what it reports must not depend on how the bytes arrive. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/mux/reasm.h"

/* What the callbacks saw, as text, so runs compare with one strcmp. */
struct seen {
	char log[8192];
	size_t len;
	uint8_t data[4096]; /* DATA payload bytes, unmasked, in order */
	size_t ndata;
	int errors;
	enum ws_close code;
	int stop_after_ctl; /* stop (return false) at this control message (1-based), 0: never
	                     */
	int nctl;
};

__attribute__((format(printf, 2, 3))) static void logf_(struct seen *w, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	w->len += (size_t)vsnprintf(w->log + w->len, sizeof(w->log) - w->len, fmt, ap);
	va_end(ap);
}

static bool on_msg_start(void *ctx, const struct tun_msg *mh)
{
	logf_(ctx, "start %u/%u;", mh->type, mh->stream);
	return true;
}

static bool on_data(void *ctx, const uint8_t *p, size_t n, const struct ws_frame *fr,
                    uint64_t off)
{
	struct seen *w = ctx;
	cr_assert_leq(w->ndata + n, sizeof(w->data));
	if (fr->masked)
		ws_mask_copy(w->data + w->ndata, p, n, fr->mask, off);
	else
		memcpy(w->data + w->ndata, p, n);
	w->ndata += n;
	return true;
}

static bool on_ctl(void *ctx, const uint8_t *m, size_t len)
{
	struct seen *w = ctx;
	struct tun_msg msg;
	const char *why = NULL;
	cr_assert_eq(tun_decode(m, len, &msg, &why), TUN_OK, "control message decodes: %s",
	             why ? why : "");
	logf_(w, "ctl %u/%u;", msg.type, msg.stream);
	w->nctl++;
	return w->stop_after_ctl != w->nctl;
}

static bool on_ws_control(void *ctx, uint8_t opcode, uint8_t *p, size_t len)
{
	struct seen *w = ctx;
	logf_(w, "ws %u/%u;", opcode, (unsigned)len);
	if (len)
		logf_(w, "[%c%c]", p[0], len > 1 ? p[1] : '.');
	return true;
}

static void on_error(void *ctx, enum ws_close code, const char *why)
{
	struct seen *w = ctx;
	(void)why;
	w->errors++;
	w->code = code;
}

static const struct reasm_ops ops = {
        .on_msg_start = on_msg_start,
        .on_data = on_data,
        .on_ctl = on_ctl,
        .on_ws_control = on_ws_control,
        .on_error = on_error,
};

/* One masked frame appended to out. */
static size_t frame(uint8_t *out, uint8_t op, bool fin, const uint8_t *p, size_t n,
                    uint8_t seed)
{
	uint8_t key[4] = {seed, (uint8_t)(seed * 7 + 1), (uint8_t)(seed * 13 + 5), 0x5a};
	size_t hl = ws_encode_header(out, op, fin, key, n);
	memcpy(out + hl, p, n);
	ws_mask(out + hl, n, key, 0);
	return hl + n;
}

/* A stream a server may receive: a PING message; a DATA message for stream 2 in two
 * fragments with a WebSocket ping between them; a WINDOW; an empty DATA message; a DATA
 * message of 300 bytes (a 16-bit length); a WebSocket close. */
static size_t build(uint8_t *out, uint8_t *payload, size_t *npayload)
{
	size_t n = 0, np = 0;
	uint8_t m[600];
	size_t ml = tun_encode_ping(m, sizeof(m), false, 0x0102030405060708ull);
	n += frame(out + n, WS_OP_BINARY, true, m, ml, 1);

	ml = tun_encode_data_header(m, sizeof(m), 2);
	for (int i = 0; i < 40; i++)
		m[ml++] = payload[np++] = (uint8_t)('a' + i % 26);
	n += frame(out + n, WS_OP_BINARY, false, m, 20, 2); /* header and 11 bytes */
	n += frame(out + n, WS_OP_PING, true, (const uint8_t *)"hi", 2, 3);
	n += frame(out + n, WS_OP_CONT, true, m + 20, ml - 20, 4);

	ml = tun_encode_window(m, sizeof(m), 2, 65536);
	n += frame(out + n, WS_OP_BINARY, true, m, ml, 5);

	ml = tun_encode_data_header(m, sizeof(m), 4);
	n += frame(out + n, WS_OP_BINARY, true, m, ml, 6);

	ml = tun_encode_data_header(m, sizeof(m), 6);
	for (int i = 0; i < 300; i++)
		m[ml++] = payload[np++] = (uint8_t)(i * 31 + 7);
	n += frame(out + n, WS_OP_BINARY, true, m, ml, 7);

	uint8_t cp[WS_MAX_CONTROL_PAYLOAD];
	size_t cl = ws_close_payload(cp, WS_CLOSE_NORMAL, "ok");
	n += frame(out + n, WS_OP_CLOSE, true, cp, cl, 8);
	*npayload = np;
	return n;
}

static void feed_split(const uint8_t *s, size_t n, size_t at, struct seen *w)
{
	struct reasm r;
	reasm_init(&r, WS_ROLE_SERVER, 1 << 20);
	memset(w, 0, sizeof(*w));
	cr_assert(reasm_feed(&r, s, at, &ops, w));
	cr_assert(reasm_feed(&r, s + at, n - at, &ops, w));
}

Test(reasm, same_events_at_every_split_point)
{
	uint8_t s[4096], payload[1024];
	size_t np;
	size_t n = build(s, payload, &np);
	static struct seen whole, part;
	feed_split(s, n, n, &whole);
	/* types: PING 8, DATA 4, WINDOW 7; WebSocket ping 9, close 8 (code 1000) */
	cr_assert_str_eq(whole.log, "start 8/0;ctl 8/0;start 4/2;ws 9/2;[hi]"
	                            "start 7/2;ctl 7/2;start 4/4;start 4/6;ws 8/4;[\x03\xe8]");
	cr_assert_eq(whole.ndata, np);
	cr_assert_arr_eq(whole.data, payload, np, "DATA payload unmasked and in order");
	cr_assert_eq(whole.errors, 0);
	for (size_t at = 0; at <= n; at++) {
		feed_split(s, n, at, &part);
		cr_assert_str_eq(part.log, whole.log, "split at %zu", at);
		cr_assert_eq(part.ndata, np, "split at %zu", at);
		cr_assert_arr_eq(part.data, payload, np, "split at %zu", at);
	}
}

Test(reasm, byte_by_byte)
{
	uint8_t s[4096], payload[1024];
	size_t np;
	size_t n = build(s, payload, &np);
	static struct seen whole, w;
	feed_split(s, n, n, &whole);
	struct reasm r;
	reasm_init(&r, WS_ROLE_SERVER, 1 << 20);
	memset(&w, 0, sizeof(w));
	for (size_t i = 0; i < n; i++)
		cr_assert(reasm_feed(&r, s + i, 1, &ops, &w), "byte %zu", i);
	cr_assert_str_eq(w.log, whole.log);
	cr_assert_arr_eq(w.data, payload, np);
}

/* A caller that splices DATA payload past the buffer (reasm_skip) sees the same
 * messages afterwards. */
Test(reasm, skip_spliced_payload)
{
	uint8_t s[4096], m[600];
	size_t n = 0, ml = tun_encode_data_header(m, sizeof(m), 6);
	memset(m + ml, 0x33, 200);
	ml += 200;
	n += frame(s + n, WS_OP_BINARY, true, m, ml, 9);
	size_t body = n - 200;
	ml = tun_encode_fin(m, sizeof(m), 6);
	n += frame(s + n, WS_OP_BINARY, true, m, ml, 10);
	struct reasm r;
	reasm_init(&r, WS_ROLE_SERVER, 1 << 20);
	static struct seen w;
	memset(&w, 0, sizeof(w));
	cr_assert(reasm_feed(&r, s, body, &ops, &w));
	cr_assert(reasm_in_data(&r));
	cr_assert_eq(r.fr_left, 200);
	cr_assert(reasm_skip(&r, 150, &ops, &w));
	cr_assert(reasm_in_data(&r));
	cr_assert(reasm_skip(&r, 50, &ops, &w));
	cr_assert_not(reasm_in_data(&r));
	cr_assert(reasm_feed(&r, s + body + 200, n - body - 200, &ops, &w));
	cr_assert_str_eq(w.log, "start 4/6;start 5/6;ctl 5/6;"); /* DATA 4, FIN 5 */
	cr_assert_eq(w.ndata, 0, "skipped bytes are not delivered");
}

static void expect_error(const uint8_t *s, size_t n, enum ws_close code)
{
	for (size_t at = 0; at <= n; at++) {
		struct reasm r;
		reasm_init(&r, WS_ROLE_SERVER, 1 << 20);
		static struct seen w;
		memset(&w, 0, sizeof(w));
		bool ok = reasm_feed(&r, s, at, &ops, &w) &&
		          reasm_feed(&r, s + at, n - at, &ops, &w);
		cr_assert_not(ok, "split at %zu: refused", at);
		cr_assert_eq(w.errors, 1, "split at %zu: one error", at);
		cr_assert_eq(w.code, code, "split at %zu: close code %d, got %d", at, code,
		             w.code);
	}
}

Test(reasm, text_message_refused)
{
	uint8_t s[64];
	size_t n = frame(s, WS_OP_TEXT, true, (const uint8_t *)"hello", 5, 1);
	expect_error(s, n, WS_CLOSE_UNSUPPORTED);
}

Test(reasm, message_shorter_than_its_header)
{
	uint8_t s[64], m[16];
	size_t ml = tun_encode_fin(m, sizeof(m), 2);
	size_t n = frame(s, WS_OP_BINARY, true, m, ml - 1, 1);
	expect_error(s, n, WS_CLOSE_PROTOCOL);
}

Test(reasm, control_message_too_large)
{
	static uint8_t s[8192], m[TUN_MAX_CONTROL + 64];
	size_t ml = tun_encode_window(m, sizeof(m), 2, 1);
	m[0] = TUN_HELLO; /* a control type whose body grows past the limit */
	memset(m + ml, 0, sizeof(m) - ml);
	size_t n = frame(s, WS_OP_BINARY, true, m, sizeof(m), 1);
	expect_error(s, n, WS_CLOSE_TOO_BIG);
}

Test(reasm, unmasked_frame_to_a_server_refused)
{
	uint8_t s[64], m[16];
	size_t ml = tun_encode_fin(m, sizeof(m), 2);
	size_t hl = ws_encode_header(s, WS_OP_BINARY, true, NULL, ml);
	memcpy(s + hl, m, ml);
	expect_error(s, hl + ml, WS_CLOSE_PROTOCOL);
}

/* A callback that stops (the lane closed) stops the feed: nothing after it is reported. */
Test(reasm, stop_from_a_callback)
{
	uint8_t s[4096], payload[1024];
	size_t np;
	size_t n = build(s, payload, &np);
	struct reasm r;
	reasm_init(&r, WS_ROLE_SERVER, 1 << 20);
	static struct seen w;
	memset(&w, 0, sizeof(w));
	w.stop_after_ctl = 1;
	cr_assert_not(reasm_feed(&r, s, n, &ops, &w));
	cr_assert_str_eq(w.log, "start 8/0;ctl 8/0;");
	cr_assert_eq(w.errors, 0);
}
