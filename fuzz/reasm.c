/* fuzz/reasm.c — libFuzzer driver for a lane's frame and message reassembly
 * (engine/mux/reasm.c), as a server receives it.
 *
 * The input after its first two bytes is fed once whole and once split where those two
 * bytes say: both feeds must report the same events (hashed) and stop at the same place,
 * and never overrun (the sanitizers check that).
 */
#include <stdlib.h>
#include <string.h>

#include "engine/mux/reasm.h"

#define CHECK(x)                                                                               \
	do {                                                                                   \
		if (!(x))                                                                      \
			abort();                                                               \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct trace {
	uint64_t h; /* FNV-1a over everything reported */
	uint64_t data_bytes;
	int errors;
};

static void mix(struct trace *t, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		t->h = (t->h ^ b[i]) * 0x100000001b3ull;
}

static bool on_msg_start(void *ctx, const struct tun_msg *mh)
{
	mix(ctx, &mh->type, sizeof(mh->type));
	mix(ctx, &mh->stream, sizeof(mh->stream));
	return true;
}

static bool on_data(void *ctx, const uint8_t *p, size_t n, const struct ws_frame *fr,
                    uint64_t off)
{
	struct trace *t = ctx;
	uint8_t buf[256];
	while (n) {
		size_t k = n < sizeof(buf) ? n : sizeof(buf);
		if (fr->masked)
			ws_mask_copy(buf, p, k, fr->mask, off);
		else
			memcpy(buf, p, k);
		mix(t, buf, k);
		t->data_bytes += k;
		p += k;
		n -= k;
		off += k;
	}
	return true;
}

static bool on_ctl(void *ctx, const uint8_t *m, size_t len)
{
	CHECK(len >= TUN_HEADER_LEN && len <= TUN_MAX_CONTROL);
	mix(ctx, m, len);
	struct tun_msg msg;
	const char *why;
	(void)tun_decode(m, len, &msg, &why);
	return true;
}

static bool on_ws_control(void *ctx, uint8_t opcode, uint8_t *p, size_t len)
{
	CHECK(len <= WS_MAX_CONTROL_PAYLOAD);
	mix(ctx, &opcode, 1);
	mix(ctx, p, len);
	return true;
}

static void on_error(void *ctx, enum ws_close code, const char *why)
{
	struct trace *t = ctx;
	(void)why;
	t->errors++;
	mix(t, &code, sizeof(code));
}

static const struct reasm_ops ops = {
        .on_msg_start = on_msg_start,
        .on_data = on_data,
        .on_ctl = on_ctl,
        .on_ws_control = on_ws_control,
        .on_error = on_error,
};

static bool feed(const uint8_t *p, size_t n, size_t at, struct trace *t)
{
	struct reasm r;
	reasm_init(&r, WS_ROLE_SERVER, 1 << 16);
	memset(t, 0, sizeof(*t));
	t->h = 0xcbf29ce484222325ull;
	if (!reasm_feed(&r, p, at, &ops, t))
		return false;
	return reasm_feed(&r, p + at, n - at, &ops, t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	size_t at = ((size_t)data[0] << 8 | data[1]);
	data += 2;
	size -= 2;
	if (at > size)
		at = size ? at % (size + 1) : 0;
	struct trace whole, split;
	bool a = feed(data, size, size, &whole);
	bool b = feed(data, size, at, &split);
	CHECK(a == b);
	CHECK(whole.h == split.h && whole.data_bytes == split.data_bytes);
	CHECK(whole.errors == split.errors && whole.errors <= 1);
	return 0;
}
