/* fuzz/http_response.c — libFuzzer driver: response heads and the 101 check. */
#include "proto/http.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_response resp;
	char *copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	if (size)
		memcpy(copy, data, size);

	enum http_status st = http_parse_response(copy, size, NULL, &resp);
	if (st == HTTP_ERROR && !resp.error_reason)
		abort();
	if (st == HTTP_OK) {
		if (resp.header_len == 0 || resp.header_len > size || resp.status < 100 ||
		    resp.status > 999 || resp.nheaders > HTTP_MAX_KEEP)
			abort();
		if (resp.ws_accept.p && (resp.ws_accept.p < copy ||
		                         resp.ws_accept.p + resp.ws_accept.len > copy + size))
			abort();
		const char *why =
		        http_upgrade_response_problem(&resp, "dGhlIHNhbXBsZSBub25jZQ==");
		if (resp.status != 101 && !why)
			abort();
	}
	free(copy);
	return 0;
}
