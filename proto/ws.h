/* proto/ws.h — WebSocket framing (RFC 6455), both roles. Pure: bytes in, bytes out.
 *
 * The decoder works on frame headers only: it reports where a frame's payload starts and
 * how long it is, so the engine can copy, unmask or splice the payload itself. A message
 * layer (struct ws_decoder) on top enforces the rules that span frames: fragmentation,
 * continuation, control-frame interleaving.
 *
 * Error convention: decoders are tri-state, see enum ws_status. When a decoder returns
 * WS_ERROR it sets a close code (enum ws_close) that the caller sends in its Close frame.
 */
#ifndef RINGLET_PROTO_WS_H
#define RINGLET_PROTO_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_opcode {
	WS_OP_CONT = 0x0,
	WS_OP_TEXT = 0x1,
	WS_OP_BINARY = 0x2,
	WS_OP_CLOSE = 0x8,
	WS_OP_PING = 0x9,
	WS_OP_PONG = 0xA,
};

/* Close status codes (RFC 6455 section 7.4.1). */
enum ws_close {
	WS_CLOSE_NONE = 0,
	WS_CLOSE_NORMAL = 1000,
	WS_CLOSE_GOING_AWAY = 1001,
	WS_CLOSE_PROTOCOL = 1002,
	WS_CLOSE_UNSUPPORTED = 1003,
	WS_CLOSE_NO_STATUS = 1005, /* never sent on the wire */
	WS_CLOSE_ABNORMAL = 1006,  /* never sent on the wire */
	WS_CLOSE_INVALID_DATA = 1007,
	WS_CLOSE_POLICY = 1008,
	WS_CLOSE_TOO_BIG = 1009,
	WS_CLOSE_EXTENSION = 1010,
	WS_CLOSE_INTERNAL = 1011,
};

enum ws_role {
	WS_ROLE_SERVER, /* receives masked frames, sends unmasked ones */
	WS_ROLE_CLIENT, /* receives unmasked frames, sends masked ones */
};

enum ws_status {
	WS_ERROR = -1,    /* malformed; close code set */
	WS_NEED_MORE = 0, /* not enough bytes yet; nothing consumed */
	WS_OK = 1,        /* a header was decoded */
};

#define WS_MAX_HEADER 14 /* 2 + 8 (length) + 4 (mask) */
#define WS_MAX_CONTROL_PAYLOAD 125

struct ws_frame {
	uint8_t opcode; /* enum ws_opcode */
	bool fin;
	bool masked;
	uint8_t mask[4];      /* valid when masked */
	uint8_t header_len;   /* bytes of header: the payload starts here */
	uint64_t payload_len; /* bytes of payload following the header */
};

/* Decode one frame header from buf[0..len). Checks everything the header alone can tell:
 * RSV bits (no extension is ever negotiated), reserved opcodes, non-minimal length
 * encodings, the 64-bit length's top bit, control frames over 125 bytes or without FIN,
 * the mask bit for the receiving role, and payload_len > max_payload (WS_CLOSE_TOO_BIG).
 * Returns WS_OK and fills *f, WS_NEED_MORE, or WS_ERROR and sets *close_code. Checks run
 * in wire order as soon as their bytes are present, so a truncated header that is already
 * malformed fails early, with the same code the whole header would get. */
enum ws_status ws_decode_header(const uint8_t *buf, size_t len, enum ws_role role,
                                uint64_t max_payload, struct ws_frame *f,
                                enum ws_close *close_code);

/* Encode a frame header into out (at least WS_MAX_HEADER bytes). mask is NULL for an
 * unmasked frame (server role) or the 4-byte masking key (client role).
 * Returns the header length. */
size_t ws_encode_header(uint8_t *out, enum ws_opcode op, bool fin, const uint8_t *mask,
                        uint64_t payload_len);

/* XOR buf[0..len) with the masking key, as if buf started at payload offset `offset`
 * (so a payload can be unmasked in pieces as it arrives). Word-at-a-time. In place. */
void ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], uint64_t offset);

/* Copy src to dst while masking (dst and src must not overlap). */
void ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4],
                  uint64_t offset);

/* Build a Close payload (2-byte code + reason, truncated to fit 125 bytes) into out
 * (at least WS_MAX_CONTROL_PAYLOAD bytes); truncation never splits a UTF-8 character.
 * Returns its length: 0 for WS_CLOSE_NONE and for codes that may not be sent on the wire
 * (1005, 1006, ...), so the Close frame goes out without a body. */
size_t ws_close_payload(uint8_t *out, enum ws_close code, const char *reason);

/* Parse a received Close payload. A 1-byte payload, a code that may not be sent on the
 * wire, or a reason that is not UTF-8 is a protocol error (returns false and sets
 * *close_code to the code to answer with). An empty payload yields WS_CLOSE_NO_STATUS. */
bool ws_parse_close(const uint8_t *p, size_t len, uint16_t *code, const uint8_t **reason,
                    size_t *reason_len, enum ws_close *close_code);

/* True if buf[0..len) is well-formed UTF-8 (for text messages and close reasons). */
bool ws_utf8_valid(const uint8_t *buf, size_t len);

/* Message layer: validates the frame sequence of one connection's receive direction.
 * Feed it each decoded header with ws_decoder_frame(); it tracks whether a fragmented
 * message is open and which opcode it carries, and the message size so far. */
struct ws_decoder {
	enum ws_role role;
	uint64_t max_payload; /* per frame */
	uint64_t max_message; /* per message (sum of fragments); 0 = no limit */
	uint8_t msg_opcode;   /* opcode of the open fragmented message, 0 if none */
	uint64_t msg_len;     /* bytes of the open message so far */
};

void ws_decoder_init(struct ws_decoder *d, enum ws_role role, uint64_t max_payload,
                     uint64_t max_message);

/* Decode the next frame header and check it against the message state: a continuation
 * with no open message, a new data frame while a message is open, or a message over
 * max_message is an error. Control frames may arrive between fragments. On WS_OK,
 * *msg_opcode is the opcode of the message the frame belongs to (TEXT/BINARY for data
 * and continuation frames, the frame's own for control frames) and *msg_end says whether
 * this frame completes that message. */
enum ws_status ws_decoder_next(struct ws_decoder *d, const uint8_t *buf, size_t len,
                               struct ws_frame *f, uint8_t *msg_opcode, bool *msg_end,
                               enum ws_close *close_code);

#endif
