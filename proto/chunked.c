/* proto/chunked.c — see chunked.h.
 *
 * One byte at a time through the framing (size lines, CRLFs, trailers), one memmove per
 * call and chunk through the data. The grammar (RFC 9112 7.1):
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *
 * Extensions are skipped without being parsed further than "whitespace, then ';', then
 * printable bytes up to CR": nothing here gives them a meaning. Trailer fields must look
 * like fields (a token, ':', printable bytes), so that a line fold or a stray byte cannot
 * make two readers disagree on where the body ends.
 */
#include "proto/chunked.h"

#include <stdbool.h>
#include <string.h>

void chunk_init(struct chunk_dec *d)
{
	memset(d, 0, sizeof(*d));
	d->state = CHUNK_S_SIZE_FIRST;
	d->max_line = CHUNK_MAX_LINE;
	d->max_trailer = CHUNK_MAX_TRAILER;
}

static int hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 9110 5.6.2 tchar. */
static bool is_tchar(uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* VCHAR, SP, HTAB or obs-text: what may appear in a field value or an extension. */
static bool is_text(uint8_t c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static enum chunk_status fail(struct chunk_dec *d, const char *why)
{
	d->state = CHUNK_S_ERROR;
	d->error_reason = why;
	return CHUNK_ERROR;
}

/* One framing byte (anything but chunk data). */
static enum chunk_status frame_byte(struct chunk_dec *d, uint8_t c)
{
	int v;
	switch (d->state) {
	case CHUNK_S_SIZE_FIRST:
	case CHUNK_S_SIZE:
		v = hex_value(c);
		if (v >= 0) {
			if (d->digits == CHUNK_MAX_HEX)
				return fail(d, "chunk size has too many digits");
			d->remaining = d->remaining << 4 | (uint64_t)v;
			d->digits++;
			d->line++;
			d->state = CHUNK_S_SIZE;
		} else if (d->state == CHUNK_S_SIZE_FIRST) {
			return fail(d, "chunk size is not a hex number");
		} else if (c == '\r') {
			d->state = CHUNK_S_SIZE_LF;
		} else if (c == ';') {
			d->line++;
			d->state = CHUNK_S_EXT;
		} else if (is_ws(c)) {
			d->line++;
			d->state = CHUNK_S_SIZE_BWS;
		} else {
			return fail(d, "invalid character after the chunk size");
		}
		break;
	case CHUNK_S_SIZE_BWS:
		if (c == ';')
			d->state = CHUNK_S_EXT;
		else if (!is_ws(c))
			return fail(d, "whitespace after the chunk size without an extension");
		d->line++;
		break;
	case CHUNK_S_EXT:
		if (c == '\r')
			d->state = CHUNK_S_SIZE_LF;
		else if (is_text(c))
			d->line++;
		else
			return fail(d, "invalid character in a chunk extension");
		break;
	case CHUNK_S_SIZE_LF:
		if (c != '\n')
			return fail(d, "chunk-size line not ended by CRLF");
		d->line = 0;
		d->digits = 0;
		d->state = d->remaining ? CHUNK_S_DATA : CHUNK_S_TRAILER;
		break;
	case CHUNK_S_DATA_CR:
		if (c != '\r')
			return fail(d, "chunk data not followed by CRLF");
		d->state = CHUNK_S_DATA_LF;
		break;
	case CHUNK_S_DATA_LF:
		if (c != '\n')
			return fail(d, "chunk data not followed by CRLF");
		d->state = CHUNK_S_SIZE_FIRST;
		break;
	case CHUNK_S_TRAILER:
		if (c == '\r')
			d->state = CHUNK_S_FINAL_LF;
		else if (is_tchar(c))
			d->state = CHUNK_S_TR_NAME;
		else
			return fail(d, "invalid trailer field");
		d->trailer++;
		break;
	case CHUNK_S_TR_NAME:
		if (c == ':')
			d->state = CHUNK_S_TR_VALUE;
		else if (!is_tchar(c))
			return fail(d, "invalid trailer field name");
		d->trailer++;
		break;
	case CHUNK_S_TR_VALUE:
		if (c == '\r')
			d->state = CHUNK_S_TR_LF;
		else if (!is_text(c))
			return fail(d, "invalid character in a trailer field");
		d->trailer++;
		break;
	case CHUNK_S_TR_LF:
		if (c != '\n')
			return fail(d, "trailer line not ended by CRLF");
		d->state = CHUNK_S_TRAILER;
		d->trailer++;
		break;
	case CHUNK_S_FINAL_LF:
		if (c != '\n')
			return fail(d, "chunked body not ended by CRLF");
		d->state = CHUNK_S_DONE;
		d->trailer++;
		break;
	case CHUNK_S_DATA:
	case CHUNK_S_DONE:
	case CHUNK_S_ERROR:
		return fail(d, "internal: not a framing state");
	}
	if (d->line > d->max_line)
		return fail(d, "chunk-size line too long");
	if (d->trailer > d->max_trailer)
		return fail(d, "trailer section too large");
	return d->state == CHUNK_S_DONE ? CHUNK_OK : CHUNK_NEED_MORE;
}

enum chunk_status chunk_decode(struct chunk_dec *d, const void *in, size_t in_len, void *out,
                               size_t out_cap, size_t *consumed, size_t *produced)
{
	const uint8_t *src = in;
	uint8_t *dst = out;
	size_t i = 0, o = 0;
	enum chunk_status st = CHUNK_NEED_MORE;

	if (d->state == CHUNK_S_DONE)
		st = CHUNK_OK;
	else if (d->state == CHUNK_S_ERROR)
		st = CHUNK_ERROR;
	while (st == CHUNK_NEED_MORE && i < in_len) {
		if (d->state != CHUNK_S_DATA) {
			st = frame_byte(d, src[i]);
			if (st != CHUNK_ERROR)
				i++;
			continue;
		}
		size_t n = in_len - i;
		if (n > out_cap - o)
			n = out_cap - o;
		if (n > d->remaining)
			n = (size_t)d->remaining;
		if (n == 0)
			break; /* out is full */
		/* In place, dst + o <= src + i: a forward overlapping copy. */
		memmove(dst + o, src + i, n);
		i += n;
		o += n;
		d->remaining -= n;
		if (!d->remaining)
			d->state = CHUNK_S_DATA_CR;
	}
	*consumed = i;
	*produced = o;
	return st;
}
