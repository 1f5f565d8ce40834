/* fuzz/http_request.c — libFuzzer driver: request heads, the upgrade checks, the 101 reply. */
#include "proto/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {
        "host",          "Upgrade", "CONNECTION", "sec-websocket-key", "X-Forwarded-For",
        "authorization", "nope"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_request req;
	struct http_limits lim = http_default_limits;
	const char *buf;
	char *copy;

	/* An exact-size heap copy, so ASan catches any read past len. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	if (size)
		memcpy(copy, data, size);
	buf = copy;

	/* The first byte, when there is one, picks tight limits some of the time. */
	if (size && (data[0] & 0x80)) {
		lim.max_header_bytes = 64 + (data[0] & 0x3f) * 8;
		lim.max_headers = data[0] & 0x0f;
		lim.max_line = 16 + (data[0] & 0x1f);
	}

	enum http_status st = http_parse_request(buf, size, &lim, &req);
	if (st == HTTP_ERROR) {
		if (req.error_status < 400 || req.error_status > 505 || !req.error_reason)
			abort();
	} else if (st == HTTP_OK) {
		if (req.header_len == 0 || req.header_len > size ||
		    req.header_len > lim.max_header_bytes || req.nheaders > HTTP_MAX_KEEP)
			abort();
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			const struct http_slice *h = http_header_get(&req, names[i]);
			if (h && h->len && (h->p < buf || h->p + h->len > buf + req.header_len))
				abort();
		}
		int status = 0;
		const char *why = http_upgrade_problem(&req, &status);
		if (!why) {
			char out[512];
			size_t n = http_build_101(out, sizeof(out), req.ws_key, "ringlet");
			struct http_response resp;
			char key[25];
			if (!n || http_parse_response(out, n, NULL, &resp) != HTTP_OK)
				abort();
			memcpy(key, req.ws_key.p, 24);
			key[24] = '\0';
			if (http_upgrade_response_problem(&resp, key))
				abort();
		} else if (status != 400 && status != 426) {
			abort();
		}
		(void)http_token_equal(req.bearer, "fuzz-token", 10);
		/* Any prefix of a complete head is incomplete or (for limit checks) an error.
		 */
		if (http_parse_request(buf, req.header_len - 1, &lim, &req) == HTTP_OK)
			abort();
	}
	free(copy);
	return 0;
}
