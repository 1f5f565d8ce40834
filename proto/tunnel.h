/* proto/tunnel.h — ringlet's tunnel protocol, carried in binary WebSocket messages.
 * Pure: bytes in, bytes out. The wire format is specified in docs/PROTOCOL.md.
 *
 * Every tunnel message is exactly one WebSocket binary message and starts with an 8-byte
 * header: type (u8), flags (u8), reserved (u16, zero), stream id (u32, big-endian).
 * All integers are big-endian. Strings are a u8 length followed by that many bytes.
 *
 * Decoders are tri-state (enum tun_status); encoders return the bytes written, or 0 if the
 * message does not fit in the buffer given.
 */
#ifndef RINGLET_PROTO_TUNNEL_H
#define RINGLET_PROTO_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TUN_VERSION 1     /* the version this code speaks */
#define TUN_VERSION_MIN 1 /* the oldest it still accepts */
#define TUN_HEADER_LEN 8
#define TUN_MAX_PORTS 64 /* ports one client may offer */
#define TUN_MAX_STR 255
#define TUN_MAX_CONTROL 2048 /* largest non-DATA message; bigger is a protocol error */

enum tun_type {
	TUN_HELLO = 0x01,   /* client -> server, first message on every lane */
	TUN_WELCOME = 0x02, /* server -> client, answer to HELLO */
	TUN_OPEN = 0x03,    /* server -> client: a data-plane connection arrived */
	TUN_DATA = 0x04,    /* either way: stream payload */
	TUN_FIN = 0x05,     /* either way: sender will send no more on this stream */
	TUN_RST = 0x06,     /* either way: abort the stream, with a reason */
	TUN_WINDOW = 0x07,  /* either way: grant the peer more credit on a stream */
	TUN_PING = 0x08,    /* either way: liveness and RTT */
	TUN_PONG = 0x09,    /* answer to PING, echoing its timestamp */
	TUN_GOAWAY = 0x0A,  /* either way: no new streams; drain and close */
};

/* Capability bits, offered in HELLO and granted in WELCOME. */
enum tun_cap {
	TUN_CAP_ZERO_MASK = 1u << 0,      /* client may mask its frames with the all-zero key */
	TUN_CAP_LANES = 1u << 1,          /* several WebSocket connections per client session */
	TUN_CAP_WINDOW = 1u << 2,         /* per-stream credit flow control */
	TUN_CAP_CLIENT_FORWARD = 1u << 3, /* client may open streams (--local) */
};

/* RST reasons. */
enum tun_rst_reason {
	TUN_RST_NONE = 0,
	TUN_RST_REFUSED = 1,     /* upstream refused the connection */
	TUN_RST_UNREACHABLE = 2, /* upstream unreachable or dial timed out */
	TUN_RST_RESET = 3,       /* peer socket was reset */
	TUN_RST_PROTOCOL = 4,    /* the stream broke the protocol (credit overrun ...) */
	TUN_RST_NO_STREAM = 5,   /* message for a stream that does not exist */
	TUN_RST_SHUTDOWN = 6,    /* the tunnel is going away */
	TUN_RST_INTERNAL = 7,    /* out of resources */
	TUN_RST_TIMEOUT = 8,     /* idle or drain timeout */
};

/* GOAWAY reasons. */
enum tun_goaway_reason {
	TUN_GOAWAY_NORMAL = 0,   /* drain: finish streams, open no new ones */
	TUN_GOAWAY_VERSION = 1,  /* no common protocol version */
	TUN_GOAWAY_PROTOCOL = 2, /* peer broke the protocol */
	TUN_GOAWAY_UNAUTHORIZED = 3,
	TUN_GOAWAY_LIMIT = 4, /* too many clients / streams */
};

/* WELCOME per-port status. */
enum tun_port_status {
	TUN_PORT_OK = 0,
	TUN_PORT_IN_USE = 1, /* bind failed: address in use */
	TUN_PORT_DENIED = 2, /* bind failed: permission */
	TUN_PORT_ERROR = 3,  /* any other bind failure */
	TUN_PORT_NOT_ALLOWED = 4, /* the client's tunnel does not declare this port */
};

enum tun_status {
	TUN_ERROR = -1,
	TUN_NEED_MORE = 0,
	TUN_OK = 1,
};

struct tun_str {
	const uint8_t *p; /* points into the decoded buffer; not NUL-terminated */
	uint8_t len;
};

struct tun_hello {
	uint16_t version_min, version_max;
	uint32_t caps;
	uint32_t window;    /* initial per-stream credit the client grants the server */
	uint32_t max_frame; /* largest DATA payload per message the client accepts */
	uint16_t lane;      /* 0 for the primary connection */
	uint64_t session;   /* 0 on the primary; WELCOME's session id on further lanes */
	struct tun_str client_id, upstream;
	uint16_t nports;
	uint16_t ports[TUN_MAX_PORTS];
};

struct tun_port_result {
	uint16_t port;
	uint16_t status; /* enum tun_port_status */
};

struct tun_welcome {
	uint16_t version;
	uint32_t caps;
	uint32_t window; /* initial per-stream credit the server grants the client */
	uint32_t max_frame;
	uint16_t lanes; /* lanes the server suggests (its shard count) */
	uint64_t session;
	uint16_t nports;
	struct tun_port_result ports[TUN_MAX_PORTS];
};

/* OPEN header flags: the client sends a PROXY protocol header (v1 text or v2 binary)
 * carrying `remote` and `local` to the upstream before any data (server --proxy-protocol). */
enum tun_open_flag {
	TUN_OPEN_PROXY_V1 = 1u << 0,
	TUN_OPEN_PROXY_V2 = 1u << 1,
};

struct tun_open {
	uint16_t port;
	struct tun_str remote; /* "ip:port" of the data-plane peer */
	struct tun_str local;  /* "ip:port" the data-plane peer connected to; for a
	                        * client-opened stream (--local), the target "host:port" */
	uint8_t flags;         /* enum tun_open_flag, carried in the message header */
};

struct tun_msg {
	uint8_t type;
	uint8_t flags;
	uint32_t stream;
	union {
		struct tun_hello hello;
		struct tun_welcome welcome;
		struct tun_open open;
		struct {
			const uint8_t *p;
			size_t len;
		} data;
		struct {
			uint16_t reason;
			struct tun_str text;
		} rst, goaway;
		uint32_t window;
		uint64_t ping; /* PING and PONG: the sender's timestamp */
	} u;
};

/* Decode the 8-byte header: TUN_NEED_MORE below 8 bytes, TUN_ERROR if the reserved field
 * is not zero. Fills type, flags and stream of *m only. */
enum tun_status tun_decode_header(const uint8_t *buf, size_t len, struct tun_msg *m);

/* Decode a complete message buf[0..len) (one whole WebSocket message). Unknown types
 * decode as TUN_OK with only the header filled: the receiver ignores them (see
 * docs/PROTOCOL.md). Truncated or trailing bytes, strings over their bounds, non-zero
 * stream ids on connection messages and zero stream ids on stream messages are
 * TUN_ERROR; *why (may be NULL) names the problem. */
enum tun_status tun_decode(const uint8_t *buf, size_t len, struct tun_msg *m, const char **why);

/* Encoders. Each returns the bytes written to out[0..cap), 0 if it does not fit (the hello
 * and welcome encoders also return 0 for nports > TUN_MAX_PORTS). Nothing is written at or
 * past out[cap]. */
size_t tun_encode_header(uint8_t *out, size_t cap, uint8_t type, uint32_t stream);
size_t tun_encode_hello(uint8_t *out, size_t cap, const struct tun_hello *h);
size_t tun_encode_welcome(uint8_t *out, size_t cap, const struct tun_welcome *w);
size_t tun_encode_open(uint8_t *out, size_t cap, uint32_t stream, const struct tun_open *o);
size_t tun_encode_fin(uint8_t *out, size_t cap, uint32_t stream);
size_t tun_encode_rst(uint8_t *out, size_t cap, uint32_t stream, uint16_t reason,
                      const char *text);
size_t tun_encode_window(uint8_t *out, size_t cap, uint32_t stream, uint32_t increment);
size_t tun_encode_ping(uint8_t *out, size_t cap, bool pong, uint64_t timestamp);
size_t tun_encode_goaway(uint8_t *out, size_t cap, uint16_t reason, const char *text);
/* DATA: just the header; the payload follows it in the same WebSocket message. */
size_t tun_encode_data_header(uint8_t *out, size_t cap, uint32_t stream);

/* Build a tun_str from a C string (truncated to TUN_MAX_STR). */
struct tun_str tun_str_from(const char *s);

/* Human-readable names for logs. */
const char *tun_type_name(uint8_t type);
const char *tun_rst_reason_name(uint16_t reason);

#endif
