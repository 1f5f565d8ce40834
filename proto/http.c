/* proto/http.c — HTTP/1.1 request and response heads with llhttp; builders; the RFC 6455
 * handshake checks. Pure: no I/O, no allocation.
 *
 * Each parse call runs a fresh llhttp parser over the whole buffer from its start, so every
 * span llhttp reports is a contiguous slice of the caller's buffer. on_headers_complete
 * pauses the parser: the body (or the WebSocket frames pipelined after an upgrade) is never
 * consumed, and llhttp_get_error_pos() is exactly where the head ends.
 */
#include "proto/http.h"

#include <llhttp.h>
#include <openssl/base64.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

const struct http_limits http_default_limits = {
        .max_header_bytes = 16 * 1024,
        .max_headers = 64,
        .max_line = 8 * 1024,
};

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* ---- small string helpers ------------------------------------------------------------ */

static char ascii_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static bool ascii_caseeq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	return true;
}

static bool slice_is(struct http_slice s, const char *lit)
{
	size_t n = strlen(lit);
	return s.p && s.len == n && ascii_caseeq(s.p, lit, n);
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static struct http_slice slice_trim(struct http_slice s)
{
	while (s.len && is_ows(s.p[0])) {
		s.p++;
		s.len--;
	}
	while (s.len && is_ows(s.p[s.len - 1]))
		s.len--;
	return s;
}

bool http_has_token(struct http_slice list, const char *token)
{
	if (!list.p || !token)
		return false;
	size_t tlen = strlen(token);
	const char *p = list.p, *end = list.p + list.len;
	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *stop = comma ? comma : end;
		struct http_slice item = slice_trim((struct http_slice){p, (size_t)(stop - p)});
		if (item.len == tlen && ascii_caseeq(item.p, token, tlen))
			return true;
		p = comma ? comma + 1 : end;
	}
	return false;
}

bool http_token_equal(struct http_slice presented, const char *expected, size_t expected_len)
{
	/* Every byte of the expected token is visited whatever the presented bytes are, with no
	 * early exit; only the lengths steer control flow. An empty expected token never
	 * matches: it would authenticate anyone. */
	size_t plen = presented.p ? presented.len : 0;
	volatile unsigned char acc = 0;
	for (size_t i = 0; i < expected_len; i++) {
		unsigned char c = plen ? (unsigned char)presented.p[i < plen ? i : 0] : 0;
		acc |= (unsigned char)(c ^ (unsigned char)expected[i]);
	}
	return expected_len != 0 && plen == expected_len && acc == 0;
}

/* ---- shared llhttp glue ---------------------------------------------------------------- */

struct parse_ctx {
	const struct http_limits *lim;
	struct http_request *req; /* exactly one of req / resp */
	struct http_response *resp;
	struct http_header *keep;
	size_t *nkeep;
	size_t count; /* headers seen, kept or not */
	struct http_slice name, value, version;
	bool complete;
	bool seen_host, seen_clen, seen_auth, seen_key, seen_accept;
	int status; /* set by a callback that failed */
	const char *reason;
};

static struct parse_ctx *ctx_of(llhttp_t *p)
{
	return p->data;
}

static int fail(struct parse_ctx *c, int status, const char *reason)
{
	if (!c->status) {
		c->status = status;
		c->reason = reason;
	}
	return -1;
}

/* Extend a span; llhttp only splits a span across calls for obsolete line folding (the
 * pieces are then not adjacent), which is refused. */
static int span_add(struct parse_ctx *c, struct http_slice *s, const char *at, size_t n)
{
	if (!s->p) {
		s->p = at;
		s->len = n;
		return 0;
	}
	if (s->p + s->len != at)
		return fail(c, 400, "obsolete line folding");
	s->len += n;
	return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t n)
{
	struct parse_ctx *c = ctx_of(p);
	return span_add(c, &c->req->method, at, n);
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
	struct parse_ctx *c = ctx_of(p);
	return span_add(c, &c->req->target, at, n);
}

static int on_status(llhttp_t *p, const char *at, size_t n)
{
	struct parse_ctx *c = ctx_of(p);
	return span_add(c, &c->resp->reason, at, n);
}

static int on_version(llhttp_t *p, const char *at, size_t n)
{
	struct parse_ctx *c = ctx_of(p);
	return span_add(c, &c->version, at, n);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool version_ok(const llhttp_t *p)
{
	return p->http_major == 1 && p->http_minor <= 1;
}

static int on_version_complete(llhttp_t *p)
{
	if (!version_ok(p))
		return fail(ctx_of(p), 505, "unsupported HTTP version");
	return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
	struct parse_ctx *c = ctx_of(p);
	return span_add(c, &c->name, at, n);
}

/* RFC 9110 5.6.2 tchar. */
static bool is_tchar(char ch)
{
	unsigned char u = (unsigned char)ch;
	if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9'))
		return true;
	return u && strchr("!#$%&'*+-.^_`|~", u) != NULL;
}

static int on_header_field_complete(llhttp_t *p)
{
	struct parse_ctx *c = ctx_of(p);
	/* llhttp tolerates "Name : value" and "Bad Name:"; RFC 9112 5.1 says reject, since
	 * proxies disagree on what such a field means. */
	if (!c->name.len)
		return fail(c, 400, "empty header name");
	for (size_t i = 0; i < c->name.len; i++)
		if (!is_tchar(c->name.p[i]))
			return fail(c, 400, "invalid header name");
	if (++c->count > c->lim->max_headers)
		return fail(c, 431, "too many headers");
	return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
	struct parse_ctx *c = ctx_of(p);
	return span_add(c, &c->value, at, n);
}

/* Upgrade and Connection are lists that may be split over several fields: keep the first
 * field, unless a later one carries the token the handshake looks for and it does not. */
static void keep_list(struct http_slice *dst, struct http_slice v, const char *token)
{
	if (!dst->p || (!http_has_token(*dst, token) && http_has_token(v, token)))
		*dst = v;
}

static void set_first(struct http_slice *dst, struct http_slice v)
{
	if (!dst->p)
		*dst = v;
}

static struct http_slice bearer_of(struct http_slice auth)
{
	static const char scheme[] = "Bearer";
	const size_t sl = sizeof(scheme) - 1;
	if (auth.len <= sl || !ascii_caseeq(auth.p, scheme, sl) || !is_ows(auth.p[sl]))
		return (struct http_slice){NULL, 0};
	return slice_trim((struct http_slice){auth.p + sl, auth.len - sl});
}

static int request_header(struct parse_ctx *c, struct http_slice n, struct http_slice v)
{
	struct http_request *r = c->req;
	if (slice_is(n, "Host")) {
		if (c->seen_host)
			return fail(c, 400, "duplicate Host");
		c->seen_host = true;
		r->host = v;
	} else if (slice_is(n, "Content-Length")) {
		if (c->seen_clen)
			return fail(c, 400, "duplicate Content-Length");
		c->seen_clen = true;
		r->content_length = v;
	} else if (slice_is(n, "Authorization")) {
		if (c->seen_auth)
			return fail(c, 400, "duplicate Authorization");
		c->seen_auth = true;
		r->authorization = v;
		r->bearer = bearer_of(v);
	} else if (slice_is(n, "Sec-WebSocket-Key")) {
		if (c->seen_key)
			return fail(c, 400, "duplicate Sec-WebSocket-Key");
		c->seen_key = true;
		r->ws_key = v;
	} else if (slice_is(n, "Upgrade")) {
		keep_list(&r->upgrade, v, "websocket");
	} else if (slice_is(n, "Connection")) {
		keep_list(&r->connection, v, "upgrade");
	} else if (slice_is(n, "Sec-WebSocket-Version")) {
		set_first(&r->ws_version, v);
	} else if (slice_is(n, "Sec-WebSocket-Protocol")) {
		set_first(&r->ws_protocol, v);
	} else if (slice_is(n, "X-Forwarded-For")) {
		/* The last field is the one the nearest proxy appended. */
		r->forwarded_for = v;
	}
	return 0;
}

static int response_header(struct parse_ctx *c, struct http_slice n, struct http_slice v)
{
	struct http_response *r = c->resp;
	if (slice_is(n, "Sec-WebSocket-Accept")) {
		if (c->seen_accept)
			return fail(c, 400, "duplicate Sec-WebSocket-Accept");
		c->seen_accept = true;
		r->ws_accept = v;
	} else if (slice_is(n, "Content-Length")) {
		if (c->seen_clen)
			return fail(c, 400, "duplicate Content-Length");
		c->seen_clen = true;
		r->content_length = v;
	} else if (slice_is(n, "Upgrade")) {
		keep_list(&r->upgrade, v, "websocket");
	} else if (slice_is(n, "Connection")) {
		keep_list(&r->connection, v, "upgrade");
	} else if (slice_is(n, "Sec-WebSocket-Protocol")) {
		set_first(&r->ws_protocol, v);
	} else if (slice_is(n, "Content-Type")) {
		set_first(&r->content_type, v);
	}
	return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
	struct parse_ctx *c = ctx_of(p);
	struct http_slice n = c->name, v = slice_trim(c->value);
	if (!v.p) /* empty value: point at an empty slice, never NULL */
		v = (struct http_slice){n.p + n.len, 0};
	c->name = (struct http_slice){NULL, 0};
	c->value = (struct http_slice){NULL, 0};
	if (*c->nkeep < HTTP_MAX_KEEP)
		c->keep[(*c->nkeep)++] = (struct http_header){n, v};
	return c->req ? request_header(c, n, v) : response_header(c, n, v);
}

static int on_headers_complete(llhttp_t *p)
{
	struct parse_ctx *c = ctx_of(p);
	if (!version_ok(p))
		return fail(c, 505, "unsupported HTTP version");
	if (c->req) {
		c->req->keep_alive = llhttp_should_keep_alive(p);
	} else {
		/* llhttp takes any number of digits; RFC 9112 4 says exactly three. The head is
		 * complete, so the status line's end bounds this scan. */
		const char *q = c->version.p ? c->version.p + c->version.len : NULL;
		size_t digits = 0;
		while (q && *q == ' ')
			q++;
		while (q && is_digit(q[digits]))
			digits++;
		if (digits != 3 || p->status_code < 100)
			return fail(c, 400, "invalid status code");
		c->resp->chunked = (p->flags & F_CHUNKED) != 0;
		c->resp->status = p->status_code;
	}
	c->complete = true;
	/* Stop here: whatever follows the head belongs to the caller. */
	return HPE_PAUSED;
}

static const llhttp_settings_t request_settings = {
        .on_method = on_method,
        .on_url = on_url,
        .on_version = on_version,
        .on_version_complete = on_version_complete,
        .on_header_field = on_header_field,
        .on_header_field_complete = on_header_field_complete,
        .on_header_value = on_header_value,
        .on_header_value_complete = on_header_value_complete,
        .on_headers_complete = on_headers_complete,
};

static const llhttp_settings_t response_settings = {
        .on_status = on_status,
        .on_version = on_version,
        .on_version_complete = on_version_complete,
        .on_header_field = on_header_field,
        .on_header_field_complete = on_header_field_complete,
        .on_header_value = on_header_value,
        .on_header_value_complete = on_header_value_complete,
        .on_headers_complete = on_headers_complete,
};

/* Map an llhttp failure to the status to answer with. */
static int llhttp_status(const struct parse_ctx *c, llhttp_errno_t e)
{
	if (c->status)
		return c->status;
	/* "HTTP/3.0": well-formed but unsupported. "HTTP/x", or "HTTP/1.1 junk": malformed. */
	const struct http_slice v = c->version;
	if (e == HPE_INVALID_VERSION && v.len == 3 && is_digit(v.p[0]) && v.p[1] == '.' &&
	    is_digit(v.p[2]) && !(v.p[0] == '1' && (v.p[2] == '0' || v.p[2] == '1')))
		return 505;
	return 400;
}

static const char *llhttp_reason(const struct parse_ctx *c, int status)
{
	if (c->reason)
		return c->reason;
	return status == 505 ? "unsupported HTTP version" : "malformed HTTP head";
}

enum run_result {
	RUN_DONE,
	RUN_MORE,
	RUN_FAIL,
};

/* Run llhttp over buf[0..n). On RUN_DONE *head_len is where the head ends; on RUN_FAIL
 * *err_off is where llhttp stopped. */
static enum run_result run(llhttp_t *p, const char *buf, size_t n, size_t *head_len,
                           size_t *err_off, llhttp_errno_t *err)
{
	struct parse_ctx *c = p->data;
	if (!n)
		return RUN_MORE;
	llhttp_errno_t e = llhttp_execute(p, buf, n);
	const char *pos = llhttp_get_error_pos(p);
	*err = e;
	*err_off = (pos && pos >= buf && pos <= buf + n) ? (size_t)(pos - buf) : n;
	if ((e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) && c->complete) {
		*head_len = *err_off;
		return RUN_DONE;
	}
	if (e == HPE_OK && !c->complete)
		return RUN_MORE;
	return RUN_FAIL;
}

static const struct http_limits *limits_or_default(const struct http_limits *lim)
{
	return lim ? lim : &http_default_limits;
}

/* Is the first line (without its CRLF) in buf[0..n) already longer than max? */
static bool line_too_long(const char *buf, size_t n, size_t max)
{
	const char *lf = memchr(buf, '\n', n);
	size_t l = lf ? (size_t)(lf - buf) : n;
	/* A CR before the LF, or last in an incomplete line, is not part of the line. */
	if (l && buf[l - 1] == '\r')
		l--;
	return l > max;
}

/* The part both parsers share: run llhttp of the given type over at most the header-block
 * limit of buf. */
struct head_run {
	llhttp_t p;
	size_t n;       /* bytes given to llhttp */
	size_t head;    /* bytes of the head, on RUN_DONE */
	size_t err_off; /* where llhttp failed, on RUN_FAIL */
	llhttp_errno_t e;
};

static enum run_result run_head(struct head_run *h, llhttp_type_t type,
                                const llhttp_settings_t *settings, struct parse_ctx *c,
                                const char *buf, size_t len)
{
	llhttp_init(&h->p, type, settings);
	h->p.data = c;
	h->n = len < c->lim->max_header_bytes ? len : c->lim->max_header_bytes;
	h->head = h->err_off = 0;
	h->e = HPE_OK;
	return run(&h->p, buf, h->n, &h->head, &h->err_off, &h->e);
}

enum http_status http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                                    struct http_request *req)
{
	lim = limits_or_default(lim);
	memset(req, 0, sizeof(*req));
	struct parse_ctx c = {
	        .lim = lim,
	        .req = req,
	        .keep = req->headers,
	        .nkeep = &req->nheaders,
	};
	struct head_run h;
	enum run_result r = run_head(&h, HTTP_REQUEST, &request_settings, &c, buf, len);

	/* An llhttp error inside the first max_line bytes is the request's real problem;
	 * beyond that, an over-long request line is. */
	if (!(r == RUN_FAIL && h.err_off <= lim->max_line) &&
	    line_too_long(buf, h.n, lim->max_line)) {
		req->error_status = 414;
		req->error_reason = "request line too long";
		return HTTP_ERROR;
	}
	if (r == RUN_FAIL) {
		req->error_status = llhttp_status(&c, h.e);
		req->error_reason = llhttp_reason(&c, req->error_status);
		return HTTP_ERROR;
	}
	if (r == RUN_MORE) {
		if (len >= lim->max_header_bytes) {
			req->error_status = 431;
			req->error_reason = "header block too large";
			return HTTP_ERROR;
		}
		return HTTP_NEED_MORE;
	}

	req->version_major = h.p.http_major;
	req->version_minor = h.p.http_minor;
	req->header_len = h.head;
	req->path = req->target;
	if (req->target.p) {
		const char *q = memchr(req->target.p, '?', req->target.len);
		if (q) {
			req->path.len = (size_t)(q - req->target.p);
			req->query.p = q + 1;
			req->query.len = req->target.len - req->path.len - 1;
		}
	}
	req->upgrade_websocket = http_has_token(req->upgrade, "websocket") &&
	                         http_has_token(req->connection, "upgrade");
	return HTTP_OK;
}

enum http_status http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                                     struct http_response *resp)
{
	lim = limits_or_default(lim);
	memset(resp, 0, sizeof(*resp));
	struct parse_ctx c = {
	        .lim = lim,
	        .resp = resp,
	        .keep = resp->headers,
	        .nkeep = &resp->nheaders,
	};
	struct head_run h;
	enum run_result r = run_head(&h, HTTP_RESPONSE, &response_settings, &c, buf, len);
	if (r == RUN_FAIL) {
		resp->error_reason = llhttp_reason(&c, llhttp_status(&c, h.e));
		return HTTP_ERROR;
	}
	if (r == RUN_MORE) {
		if (len >= lim->max_header_bytes) {
			resp->error_reason = "header block too large";
			return HTTP_ERROR;
		}
		return HTTP_NEED_MORE;
	}
	resp->version_major = h.p.http_major;
	resp->version_minor = h.p.http_minor;
	resp->header_len = h.head;
	if (!resp->reason.p)
		resp->reason = (struct http_slice){buf, 0};
	return HTTP_OK;
}

const struct http_slice *http_header_get(const struct http_request *req, const char *name)
{
	if (!req || !name)
		return NULL;
	size_t n = req->nheaders < HTTP_MAX_KEEP ? req->nheaders : HTTP_MAX_KEEP;
	for (size_t i = 0; i < n; i++)
		if (slice_is(req->headers[i].name, name))
			return &req->headers[i].value;
	return NULL;
}

bool http_retry_after(const struct http_response *resp, uint32_t max, uint32_t *secs)
{
	size_t n = resp->nheaders < HTTP_MAX_KEEP ? resp->nheaders : HTTP_MAX_KEEP;
	for (size_t i = 0; i < n; i++) {
		if (!slice_is(resp->headers[i].name, "retry-after"))
			continue;
		struct http_slice v = resp->headers[i].value;
		if (!v.len)
			return false;
		uint64_t x = 0;
		for (size_t k = 0; k < v.len; k++) {
			if (v.p[k] < '0' || v.p[k] > '9')
				return false;
			if (x <= max)
				x = x * 10 + (uint64_t)(v.p[k] - '0');
		}
		*secs = x > max ? max : (uint32_t)x;
		return true;
	}
	return false;
}

/* ---- the RFC 6455 handshake ------------------------------------------------------------ */

static bool ws_key_valid(struct http_slice key)
{
	uint8_t raw[18];
	size_t out = 0;
	/* 16 bytes encode to exactly 24 characters ending in "==". */
	if (!key.p || key.len != 24)
		return false;
	if (!EVP_DecodeBase64(raw, &out, sizeof(raw), (const uint8_t *)key.p, key.len))
		return false;
	return out == 16;
}

const char *http_upgrade_problem(const struct http_request *req, int *status)
{
	int st = 400;
	const char *why = NULL;
	if (req->method.len != 3 || memcmp(req->method.p, "GET", 3) != 0)
		why = "upgrade requires GET";
	else if (req->version_major != 1 || req->version_minor < 1)
		why = "upgrade requires HTTP/1.1";
	else if (!http_has_token(req->upgrade, "websocket"))
		why = "missing Upgrade: websocket";
	else if (!http_has_token(req->connection, "upgrade"))
		why = "missing Connection: upgrade";
	else if (!req->ws_key.p)
		why = "missing Sec-WebSocket-Key";
	else if (!ws_key_valid(req->ws_key))
		why = "invalid Sec-WebSocket-Key";
	else if (!req->ws_version.p || req->ws_version.len != 2 ||
	         memcmp(req->ws_version.p, "13", 2) != 0) {
		st = 426;
		why = "unsupported Sec-WebSocket-Version";
	}
	if (status)
		*status = why ? st : 101;
	return why;
}

void http_ws_accept(const char *key, size_t key_len, char out[29])
{
	uint8_t md[SHA_DIGEST_LENGTH];
	SHA_CTX sha;
	SHA1_Init(&sha);
	if (key && key_len)
		SHA1_Update(&sha, key, key_len);
	SHA1_Update(&sha, ws_guid, sizeof(ws_guid) - 1);
	SHA1_Final(md, &sha);
	EVP_EncodeBlock((uint8_t *)out, md, sizeof(md));
}

const char *http_upgrade_response_problem(const struct http_response *resp, const char *key)
{
	char want[29];
	if (resp->status != 101)
		return "not a 101 response";
	if (!http_has_token(resp->upgrade, "websocket"))
		return "missing Upgrade: websocket";
	if (!http_has_token(resp->connection, "upgrade"))
		return "missing Connection: upgrade";
	if (!resp->ws_accept.p)
		return "missing Sec-WebSocket-Accept";
	if (!key)
		return "no Sec-WebSocket-Key to check against";
	http_ws_accept(key, strlen(key), want);
	if (resp->ws_accept.len != 28 || memcmp(resp->ws_accept.p, want, 28) != 0)
		return "wrong Sec-WebSocket-Accept";
	return NULL;
}

/* ---- builders -------------------------------------------------------------------------- */

struct out {
	char *p;
	size_t cap, len;
	bool full;
};

static void put(struct out *o, const void *s, size_t n)
{
	if (o->full || n == 0)
		return;
	if (n > o->cap - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void put_str(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_uint(struct out *o, unsigned long long v)
{
	char tmp[24];
	int n = snprintf(tmp, sizeof(tmp), "%llu", v);
	put(o, tmp, (size_t)n);
}

static void put_header(struct out *o, const char *name, const char *value)
{
	put_str(o, name);
	put(o, ": ", 2);
	put_str(o, value);
	put(o, "\r\n", 2);
}

static size_t finish(const struct out *o)
{
	return o->full ? 0 : o->len;
}

/* A field value we write must not be able to end the line or the head. */
static bool value_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return false;
	return true;
}

/* Hosts, paths and tokens are single words: no spaces or controls. */
static bool word_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s == 0x7f)
			return false;
	return true;
}

const char *http_reason(int status)
{
	switch (status) {
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 426:
		return "Upgrade Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Unknown";
	}
}

size_t http_build_101(char *out, size_t cap, struct http_slice ws_key, const char *protocol)
{
	struct out o = {out, cap, 0, false};
	char accept[29];
	if (protocol && !word_ok(protocol))
		return 0;
	http_ws_accept(ws_key.p, ws_key.len, accept);
	put_str(&o, "HTTP/1.1 101 Switching Protocols\r\n");
	put_header(&o, "Upgrade", "websocket");
	put_header(&o, "Connection", "Upgrade");
	put_header(&o, "Sec-WebSocket-Accept", accept);
	if (protocol)
		put_header(&o, "Sec-WebSocket-Protocol", protocol);
	put(&o, "\r\n", 2);
	return finish(&o);
}

size_t http_build_response_head(char *out, size_t cap, int status, const char *content_type,
                                const char *extra_headers, size_t body_len, bool keep_alive)
{
	struct out o = {out, cap, 0, false};
	if (status < 100 || status > 999 || (content_type && !value_ok(content_type)))
		return 0;
	put_str(&o, "HTTP/1.1 ");
	put_uint(&o, (unsigned)status);
	put(&o, " ", 1);
	put_str(&o, http_reason(status));
	put(&o, "\r\n", 2);
	if (content_type)
		put_header(&o, "Content-Type", content_type);
	/* RFC 9110 8.6: no Content-Length in 1xx and 204 responses. */
	if (status >= 200 && status != 204) {
		put_str(&o, "Content-Length: ");
		put_uint(&o, body_len);
		put(&o, "\r\n", 2);
	}
	if (!keep_alive)
		put_header(&o, "Connection", "close");
	if (extra_headers)
		put_str(&o, extra_headers);
	put(&o, "\r\n", 2);
	return finish(&o);
}

size_t http_build_response(char *out, size_t cap, int status, const char *content_type,
                           const char *extra_headers, const void *body, size_t body_len,
                           bool keep_alive)
{
	size_t head = http_build_response_head(out, cap, status, content_type, extra_headers,
	                                       body_len, keep_alive);
	if (!head)
		return 0;
	struct out o = {out, cap, head, false};
	if (body_len && !body)
		return 0;
	put(&o, body, body_len);
	return finish(&o);
}

static bool client_args_ok(const char *host, const char *path, const char *token)
{
	return host && word_ok(host) && path && word_ok(path) && path[0] == '/' &&
	       (!token || word_ok(token));
}

size_t http_build_upgrade_request(char *out, size_t cap, const char *host, const char *path,
                                  const char *token, const char *protocol,
                                  const uint8_t nonce[16], char key_out[25])
{
	struct out o = {out, cap, 0, false};
	EVP_EncodeBlock((uint8_t *)key_out, nonce, 16);
	if (!client_args_ok(host, path, token) || (protocol && !word_ok(protocol)))
		return 0;
	put_str(&o, "GET ");
	put_str(&o, path);
	put_str(&o, " HTTP/1.1\r\n");
	put_header(&o, "Host", host);
	put_header(&o, "Upgrade", "websocket");
	put_header(&o, "Connection", "Upgrade");
	put_header(&o, "Sec-WebSocket-Key", key_out);
	put_header(&o, "Sec-WebSocket-Version", "13");
	if (protocol)
		put_header(&o, "Sec-WebSocket-Protocol", protocol);
	if (token) {
		put_str(&o, "Authorization: Bearer ");
		put_str(&o, token);
		put(&o, "\r\n", 2);
	}
	put_header(&o, "User-Agent", "ringlet");
	put(&o, "\r\n", 2);
	return finish(&o);
}

size_t http_build_get(char *out, size_t cap, const char *host, const char *path,
                      const char *token)
{
	struct out o = {out, cap, 0, false};
	if (!client_args_ok(host, path, token))
		return 0;
	put_str(&o, "GET ");
	put_str(&o, path);
	put_str(&o, " HTTP/1.1\r\n");
	put_header(&o, "Host", host);
	if (token) {
		put_str(&o, "Authorization: Bearer ");
		put_str(&o, token);
		put(&o, "\r\n", 2);
	}
	put_header(&o, "User-Agent", "ringlet");
	put_header(&o, "Accept", "*/*");
	put_header(&o, "Connection", "close");
	put(&o, "\r\n", 2);
	return finish(&o);
}
