/* proto/chunked.h — the chunked transfer coding (RFC 9112 section 7.1), decoding only.
 * Pure: bytes in, bytes out; no I/O, no allocation.
 *
 * A decoder is a small state struct fed the body's bytes as they arrive, split anywhere:
 * chunk data comes out, chunk-size lines, chunk extensions and the trailer section are
 * consumed and dropped. Framing is strict: every line ends in CRLF (a bare CR or LF is an
 * error), a chunk-size has 1 to CHUNK_MAX_HEX hex digits (so it never overflows), a
 * chunk-size line is at most max_line bytes and the trailer section at most max_trailer
 * (CHUNK_MAX_LINE and CHUNK_MAX_TRAILER unless lowered after chunk_init). Decoding is
 * tri-state (enum chunk_status); an error is sticky and names the problem in
 * error_reason.
 */
#ifndef RINGLET_PROTO_CHUNKED_H
#define RINGLET_PROTO_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

#define CHUNK_MAX_HEX 16        /* hex digits in a chunk-size, leading zeros included */
#define CHUNK_MAX_LINE 4096     /* a chunk-size line with its extensions, CRLF excluded */
#define CHUNK_MAX_TRAILER 16384 /* the trailer section after the last chunk, CRLFs included */

enum chunk_status {
	CHUNK_ERROR = -1,    /* malformed or over a limit; error_reason set */
	CHUNK_NEED_MORE = 0, /* the body is not complete yet: feed more bytes */
	CHUNK_OK = 1,        /* the last chunk and the trailer section have been consumed */
};

/* Where the decoder is; internal, but a test may look. */
enum chunk_state {
	CHUNK_S_SIZE_FIRST, /* expecting a chunk-size's first hex digit */
	CHUNK_S_SIZE,       /* in the hex digits */
	CHUNK_S_SIZE_BWS,   /* after whitespace after the size: more, or ';' */
	CHUNK_S_EXT,        /* in the extensions, up to CR */
	CHUNK_S_SIZE_LF,    /* after the chunk-size line's CR */
	CHUNK_S_DATA,       /* in chunk data */
	CHUNK_S_DATA_CR,    /* after chunk data: expecting CR */
	CHUNK_S_DATA_LF,    /* expecting the LF after chunk data */
	CHUNK_S_TRAILER,    /* at the start of a trailer line (or the final CRLF) */
	CHUNK_S_TR_NAME,    /* in a trailer field's name */
	CHUNK_S_TR_VALUE,   /* in a trailer field's value */
	CHUNK_S_TR_LF,      /* after a trailer line's CR */
	CHUNK_S_FINAL_LF,   /* after the CR of the empty line that ends the body */
	CHUNK_S_DONE,
	CHUNK_S_ERROR,
};

struct chunk_dec {
	enum chunk_state state;
	uint64_t remaining; /* data bytes left in the current chunk */
	size_t line;        /* bytes of the current chunk-size line so far */
	size_t trailer;     /* bytes of the trailer section so far */
	unsigned digits;    /* hex digits of the current chunk-size */
	size_t max_line;    /* limits: chunk_init sets the defaults, a caller may lower */
	size_t max_trailer;
	const char *error_reason; /* static text; set on CHUNK_ERROR */
};

/* Start decoding a new body, with the default limits. */
void chunk_init(struct chunk_dec *d);

/* Decode in[0..in_len) into out[0..out_cap), continuing where the previous call stopped.
 * *consumed receives the input bytes used and *produced the data bytes written by this
 * call. out may point into the same buffer as in, at or before it: the body is then decoded
 * in place (data only ever moves towards the buffer's start). Returns:
 *  - CHUNK_OK: the body ended; in[*consumed] is the first byte after it (left alone).
 *    Further calls consume nothing and return CHUNK_OK.
 *  - CHUNK_NEED_MORE: all of in was consumed, or out is full (then *consumed < in_len and
 *    the caller calls again with room and the rest of the input).
 *  - CHUNK_ERROR: d->error_reason says why; *consumed is where the problem was found.
 *    Further calls return CHUNK_ERROR. */
enum chunk_status chunk_decode(struct chunk_dec *d, const void *in, size_t in_len, void *out,
                               size_t out_cap, size_t *consumed, size_t *produced);

#endif
