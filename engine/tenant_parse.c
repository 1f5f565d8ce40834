/* engine/tenant_parse.c — reading the tunnels file (tenant.h). The file is read with libyaml's
 * event API by a recursive-descent parser that knows the format's shape: every event is either
 * what the format has at that place or an error, so nothing is ever skipped, and a collection
 * where the format has a scalar is refused at its first event: nesting never goes deeper than
 * the format's five collections (the root, `tunnels`, a tunnel, its `ports` or `allowIPs`,
 * a port), and libyaml, which makes events as they are asked for, never reads further. */
#include "engine/tenant_parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include <openssl/sha.h>

#include "proto/http.h"

#define TENANT_MAX_STREAMS 1000000u
#define STR_(x) #x
#define STR(x) STR_(x)

/* "path:line: what", or "path: what" for line 0 (nothing in the file to point at). */
void perr(struct parser *p, int line, const char *fmt, ...)
{
	char what[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (!p->err || !p->errlen)
		return;
	if (line > 0)
		snprintf(p->err, p->errlen, "%s:%d: %s", p->path, line, what);
	else
		snprintf(p->err, p->errlen, "%s: %s", p->path, what);
}

/* A scalar shown in a message: printable ASCII kept, anything else '?', long ones cut. */
static const char *show(const char *s, size_t n, char out[48])
{
	size_t k = 0;

	for (size_t i = 0; i < n && k < 40; i++)
		out[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (k < n)
		k += (size_t)snprintf(out + k, 48 - k, "...");
	out[k] = 0;
	return out;
}

static int line_of(const yaml_event_t *ev)
{
	return (int)ev->start_mark.line + 1;
}

static const char *kind_name(yaml_event_type_t t)
{
	switch (t) {
	case YAML_SCALAR_EVENT:
		return "a scalar";
	case YAML_SEQUENCE_START_EVENT:
		return "a list";
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	default:
		return "the end of the collection";
	}
}

/* The next event into p->ev, refusing what the format never has: aliases, anchors, tags.
 * 0 or -1 (message set). */
static int next(struct parser *p)
{
	if (p->have)
		yaml_event_delete(&p->ev);
	p->have = false;
	if (!yaml_parser_parse(&p->yp, &p->ev)) {
		int line = (int)p->yp.problem_mark.line + 1;
		/* A reader error (bad encoding) has an offset, not a mark. */
		if (p->yp.error == YAML_READER_ERROR) {
			size_t end =
			        p->yp.problem_offset < p->len ? p->yp.problem_offset : p->len;
			line = 1;
			for (const char *c = p->buf;
			     (c = memchr(c, '\n', end - (size_t)(c - p->buf))); c++)
				line++;
		}
		perr(p, line, "not valid YAML: %s%s%s",
		     p->yp.problem ? p->yp.problem : "parse error", p->yp.context ? " " : "",
		     p->yp.context ? p->yp.context : "");
		return -1;
	}
	p->have = true;

	const char *anchor = NULL, *tag = NULL;
	switch (p->ev.type) {
	case YAML_ALIAS_EVENT:
		perr(p, line_of(&p->ev), "aliases (*name) are not supported");
		return -1;
	case YAML_SCALAR_EVENT:
		anchor = (const char *)p->ev.data.scalar.anchor;
		tag = (const char *)p->ev.data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = (const char *)p->ev.data.sequence_start.anchor;
		tag = (const char *)p->ev.data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = (const char *)p->ev.data.mapping_start.anchor;
		tag = (const char *)p->ev.data.mapping_start.tag;
		break;
	default:
		break;
	}
	if (anchor) {
		perr(p, line_of(&p->ev), "anchors (&name) are not supported");
		return -1;
	}
	if (tag) {
		char b[48];
		perr(p, line_of(&p->ev), "tags (%s) are not supported",
		     show(tag, strlen(tag), b));
		return -1;
	}
	return 0;
}

/* The current event must be of type t (what names the node for the message). */
static int expect(struct parser *p, yaml_event_type_t t, const char *what)
{
	if (p->ev.type == t)
		return 0;
	perr(p, line_of(&p->ev), "%s: expected %s, found %s", what, kind_name(t),
	     kind_name(p->ev.type));
	return -1;
}

static const char *sval(const struct parser *p)
{
	return (const char *)p->ev.data.scalar.value;
}

static size_t slen(const struct parser *p)
{
	return p->ev.data.scalar.length;
}

/* A string value: any scalar style, but not an empty or null plain one, and no NUL. */
static int string_value(struct parser *p, const char *key)
{
	if (expect(p, YAML_SCALAR_EVENT, key))
		return -1;
	const char *v = sval(p);
	size_t n = slen(p);
	if (p->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (n == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
	     strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0)) {
		perr(p, line_of(&p->ev), "%s has no value", key);
		return -1;
	}
	if (memchr(v, 0, n)) {
		perr(p, line_of(&p->ev), "%s contains a NUL byte", key);
		return -1;
	}
	return 0;
}

/* An integer value: a plain (unquoted) decimal scalar, no sign, no leading zero, in
 * lo..hi. */
static int int_value(struct parser *p, const char *key, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char b[48];

	if (expect(p, YAML_SCALAR_EVENT, key))
		return -1;
	const char *v = sval(p);
	size_t n = slen(p);
	bool ok = p->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && n > 0 && n <= 10 &&
	          !(n > 1 && v[0] == '0');
	uint64_t x = 0;
	for (size_t i = 0; ok && i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			ok = false;
		else
			x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (!ok || x < lo || x > hi) {
		perr(p, line_of(&p->ev), "%s: expected %s%u..%u, found %s\"%s\"", key,
		     ok ? "" : "a plain decimal number ", lo, hi,
		     p->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? "" : "the quoted ",
		     show(v, n, b));
		return -1;
	}
	*out = (uint32_t)x;
	return 0;
}

/* The key of the next mapping entry: 1 with the key in p->ev, 0 at the mapping's end,
 * -1 on an error. */
static int next_key(struct parser *p, const char *where)
{
	if (next(p))
		return -1;
	if (p->ev.type == YAML_MAPPING_END_EVENT)
		return 0;
	if (p->ev.type != YAML_SCALAR_EVENT) {
		perr(p, line_of(&p->ev), "%s: a key must be a name, found %s", where,
		     kind_name(p->ev.type));
		return -1;
	}
	return 1;
}

/* Which of keys[] the current key is (its bit in *seen set); -1 with a message if it is
 * unknown or seen before. */
static int which_key(struct parser *p, const char *const *keys, int nkeys, unsigned *seen,
                     const char *where)
{
	char b[48], list[160] = "";
	size_t off = 0;

	for (int i = 0; i < nkeys; i++) {
		if (slen(p) == strlen(keys[i]) && memcmp(sval(p), keys[i], slen(p)) == 0) {
			if (*seen & (1u << i)) {
				perr(p, line_of(&p->ev), "%s: %s is given twice", where,
				     keys[i]);
				return -1;
			}
			*seen |= 1u << i;
			return i;
		}
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "",
		                        keys[i]);
		if (off >= sizeof(list))
			off = sizeof(list) - 1;
	}
	perr(p, line_of(&p->ev), "%s: unknown key \"%s\" (known: %s)", where,
	     show(sval(p), slen(p), b), list);
	return -1;
}

/* ---- tokens --------------------------------------------------------------------------- */

static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Remove white space around s[0..*n) in place (as --token-file and --token-env do). */
static void trim(char *s, size_t *n)
{
	size_t b = 0, e = *n;

	while (e > 0 && is_space((unsigned char)s[e - 1]))
		e--;
	while (b < e && is_space((unsigned char)s[b]))
		b++;
	memmove(s, s + b, e - b);
	s[e - b] = 0;
	*n = e - b;
}

/* A token is 1..TENANT_TOKEN_MAX bytes without white space or control characters. NULL, or
 * what is wrong with it. */
static const char *token_problem(const char *tok, size_t n)
{
	if (n == 0)
		return "is empty";
	if (n > TENANT_TOKEN_MAX)
		return "is longer than " STR(TENANT_TOKEN_MAX) " bytes";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)tok[i];
		if (c <= 0x20 || c == 0x7f)
			return "has white space or a control character";
	}
	return NULL;
}

/* Read the token file at path into a heap string (trimmed). 0, or -1 with what went wrong
 * in why. */
static int read_token_file(const char *path, char **out, size_t *outlen, char *why, size_t cap)
{
	char *buf = NULL;
	size_t len = 0;
	struct stat st;
	/* O_NONBLOCK: a FIFO named here must not block the open; it is then refused. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd == -1) {
		snprintf(why, cap, "cannot read it: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(why, cap, "cannot read it: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, cap, "is not a regular file");
		goto fail;
	}
	if (st.st_size > TENANT_TOKEN_MAX) {
		snprintf(why, cap, "is larger than %d bytes", TENANT_TOKEN_MAX);
		goto fail;
	}
	buf = malloc(TENANT_TOKEN_MAX + 2);
	if (!buf) {
		snprintf(why, cap, "out of memory");
		goto fail;
	}
	/* The file may grow between fstat and read: read one byte past the limit to see. */
	while (len < TENANT_TOKEN_MAX + 1) {
		ssize_t r = read(fd, buf + len, TENANT_TOKEN_MAX + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			snprintf(why, cap, "cannot read it: %s", strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len > TENANT_TOKEN_MAX) {
		snprintf(why, cap, "is larger than %d bytes", TENANT_TOKEN_MAX);
		goto fail;
	}
	buf[len] = 0;
	if (memchr(buf, 0, len)) {
		snprintf(why, cap, "contains a NUL byte");
		goto fail;
	}
	close(fd);
	trim(buf, &len);
	*out = buf;
	*outlen = len;
	return 0;
fail:
	free(buf);
	close(fd);
	return -1;
}

enum {
	K_NAME,
	K_TOKEN,
	K_TOKEN_FILE,
	K_TOKEN_ENV,
	K_PORTS,
	K_ALLOW,
	K_MAX_STREAMS,
	K_N
};
static const char *const tunnel_keys[K_N] = {"name",  "token",    "tokenFile", "tokenEnv",
                                             "ports", "allowIPs", "maxStreams"};

/* The current scalar is the value of token source key k: fill t->token (and token_file). */
static int token_value(struct parser *p, int k, struct tenant *t)
{
	char why[160], b[48];
	const char *bad;
	size_t n = 0;
	int line = line_of(&p->ev);

	if (string_value(p, tunnel_keys[k]))
		return -1;
	if (k == K_TOKEN) {
		n = slen(p);
		if ((bad = token_problem(sval(p), n))) {
			perr(p, line, "token %s", bad);
			return -1;
		}
		t->token = strndup(sval(p), n);
	} else if (k == K_TOKEN_FILE) {
		t->token_file = strndup(sval(p), slen(p));
		if (!t->token_file) {
			perr(p, line, "out of memory");
			return -1;
		}
		if (read_token_file(t->token_file, &t->token, &n, why, sizeof(why))) {
			perr(p, line, "tokenFile \"%s\" %s", show(sval(p), slen(p), b), why);
			return -1;
		}
		if ((bad = token_problem(t->token, n))) {
			perr(p, line, "tokenFile \"%s\": the token %s",
			     show(sval(p), slen(p), b), bad);
			return -1;
		}
		return 0;
	} else {
		const char *v = getenv(sval(p));
		if (!v) {
			perr(p, line, "tokenEnv: environment variable \"%s\" is not set",
			     show(sval(p), slen(p), b));
			return -1;
		}
		t->token = strdup(v);
		if (t->token) {
			n = strlen(t->token);
			trim(t->token, &n);
			if ((bad = token_problem(t->token, n))) {
				perr(p, line, "tokenEnv: the token in \"%s\" %s",
				     show(sval(p), slen(p), b), bad);
				return -1;
			}
		}
	}
	if (!t->token) {
		perr(p, line, "out of memory");
		return -1;
	}
	return 0;
}

/* ---- ports and allowIPs --------------------------------------------------------------- */

/* "host:port", "[v6]:port" or ":port": host an IP literal (net_listen binds no names),
 * stored in its canonical form; "" for none. */
static int parse_listen(struct parser *p, struct tenant_port *tp)
{
	char host[INET6_ADDRSTRLEN + 1], b[48];
	const char *v = sval(p), *colon;
	size_t n = slen(p), hn;
	uint8_t bin[16];
	int line = line_of(&p->ev);

	if (v[0] == '[') {
		const char *end = memchr(v, ']', n);
		if (!end || end[1] != ':')
			goto bad;
		hn = (size_t)(end - v - 1);
		colon = end + 1;
		v++;
	} else {
		colon = memrchr(v, ':', n);
		if (!colon || memchr(v, ':', (size_t)(colon - v)))
			goto bad; /* no port, or an IPv6 address without brackets */
		hn = (size_t)(colon - v);
	}
	if (hn >= sizeof(host))
		goto bad;
	memcpy(host, v, hn);
	host[hn] = 0;

	const char *ps = colon + 1;
	size_t pn = n - (size_t)(ps - sval(p));
	uint32_t port = 0;
	if (pn == 0 || pn > 5 || ps[0] == '0')
		goto bad;
	for (size_t i = 0; i < pn; i++) {
		if (ps[i] < '0' || ps[i] > '9')
			goto bad;
		port = port * 10 + (uint32_t)(ps[i] - '0');
	}
	if (port < 1 || port > 65535)
		goto bad;
	tp->listen_port = (uint16_t)port;

	if (hn == 0) {
		if (sval(p)[0] == '[')
			goto bad;
		tp->listen_addr[0] = 0;
	} else if (sval(p)[0] != '[' && inet_pton(AF_INET, host, bin) == 1) {
		inet_ntop(AF_INET, bin, tp->listen_addr, sizeof(tp->listen_addr));
	} else if (sval(p)[0] == '[' && inet_pton(AF_INET6, host, bin) == 1) {
		inet_ntop(AF_INET6, bin, tp->listen_addr, sizeof(tp->listen_addr));
	} else {
		perr(p, line,
		     "listen \"%s\": the host must be an IPv4 address or a bracketed IPv6 one",
		     show(sval(p), slen(p), b));
		return -1;
	}
	return 0;
bad:
	perr(p, line,
	     "listen \"%s\": expected \"host:port\", \"[v6]:port\" or \":port\", port 1..65535",
	     show(sval(p), slen(p), b));
	return -1;
}

/* A list filled in room for its most entries, cut to what it holds (a thousand tunnels
 * stay resident): kept as it is if that fails. */
static void shrink(void **p, size_t bytes)
{
	void *q = realloc(*p, bytes);

	if (q)
		*p = q;
}

/* One entry of `ports` (the mapping's start is the current event). */
static int port_entry(struct parser *p, struct tenant *t)
{
	static const char *const keys[] = {"port", "listen"};
	struct tenant_port *tp = &t->ports[t->nports];
	int line = line_of(&p->ev), r;
	bool has_listen = false;
	unsigned seen = 0;
	uint32_t port;

	memset(tp, 0, sizeof(*tp));
	tp->line = line;
	while ((r = next_key(p, "a port")) > 0) {
		int k = which_key(p, keys, 2, &seen, "a port");
		if (k < 0 || next(p))
			return -1;
		if (k == 0) {
			if (int_value(p, "port", 1, 65535, &port))
				return -1;
			tp->port = (uint16_t)port;
			for (uint16_t i = 0; i < t->nports; i++) {
				if (t->ports[i].port == tp->port) {
					perr(p, line_of(&p->ev),
					     "port %u is declared twice in this tunnel (first "
					     "at "
					     "line %d)",
					     port, t->ports[i].line);
					return -1;
				}
			}
		} else {
			has_listen = true;
			if (string_value(p, "listen") || parse_listen(p, tp))
				return -1;
		}
	}
	if (r < 0)
		return -1;
	if (!(seen & 1)) {
		perr(p, line, "a port: port is required");
		return -1;
	}
	if (!has_listen)
		tp->listen_port = tp->port;
	t->nports++;
	return 0;
}

/* A tunnel's list (ports, allowIPs): `what` is its key, *arr gets room for cap items of
 * size bytes, item() reads one element and counts it in *count (read through n(t)); an
 * empty list is refused with `empty`. */
struct seq_spec {
	const char *what, *empty;
	size_t cap, size;
	void **arr;
	size_t (*n)(const struct tenant *t);
	int (*item)(struct parser *p, struct tenant *t);
};

static int seq_value(struct parser *p, struct tenant *t, const struct seq_spec *q)
{
	int line = line_of(&p->ev);

	if (expect(p, YAML_SEQUENCE_START_EVENT, q->what))
		return -1;
	*q->arr = calloc(q->cap, q->size);
	if (!*q->arr) {
		perr(p, line, "out of memory");
		return -1;
	}
	for (;;) {
		if (next(p))
			return -1;
		if (p->ev.type == YAML_SEQUENCE_END_EVENT)
			break;
		if (q->n(t) == q->cap) {
			perr(p, line_of(&p->ev), "more than %zu %s in one tunnel", q->cap,
			     q->what);
			return -1;
		}
		if (q->item(p, t))
			return -1;
	}
	if (q->n(t) == 0) {
		perr(p, line, "%s is empty: %s", q->what, q->empty);
		return -1;
	}
	shrink(q->arr, q->n(t) * q->size);
	return 0;
}

static size_t n_ports(const struct tenant *t)
{
	return t->nports;
}

static size_t n_allow(const struct tenant *t)
{
	return t->n_allow;
}

static int port_item(struct parser *p, struct tenant *t)
{
	return expect(p, YAML_MAPPING_START_EVENT, "a port") || port_entry(p, t) ? -1 : 0;
}

static int allow_item(struct parser *p, struct tenant *t)
{
	char b[48];

	if (string_value(p, "allowIPs"))
		return -1;
	if (net_cidr_parse(sval(p), &t->allow[t->n_allow])) {
		perr(p, line_of(&p->ev),
		     "allowIPs: \"%s\" is not an address or a network (10.0.0.0/8, "
		     "2001:db8::/32)",
		     show(sval(p), slen(p), b));
		return -1;
	}
	t->n_allow++;
	return 0;
}

static int ports_value(struct parser *p, struct tenant *t)
{
	const struct seq_spec q = {.what = "ports",
	                           .empty = "a tunnel needs at least one",
	                           .cap = TUN_MAX_PORTS,
	                           .size = sizeof(*t->ports),
	                           .arr = (void **)&t->ports,
	                           .n = n_ports,
	                           .item = port_item};
	return seq_value(p, t, &q);
}

static int allow_value(struct parser *p, struct tenant *t)
{
	const struct seq_spec q = {.what = "allowIPs",
	                           .empty = "leave it out to allow any address",
	                           .cap = TENANT_ALLOW_MAX,
	                           .size = sizeof(*t->allow),
	                           .arr = (void **)&t->allow,
	                           .n = n_allow,
	                           .item = allow_item};
	return seq_value(p, t, &q);
}

/* ---- tunnels -------------------------------------------------------------------------- */

static bool name_ok(const char *s, size_t n)
{
	if (n < 1 || n > TENANT_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
		      s[i] == '-'))
			return false;
	}
	return true;
}

void tenant_clear(struct tenant *t)
{
	free(t->token);
	free(t->token_file);
	free(t->ports);
	free(t->allow);
	memset(t, 0, sizeof(*t));
}

/* One entry of `tunnels` (its mapping's start is the current event), appended to the set. */
static int tunnel_entry(struct parser *p)
{
	struct tenant_set *s = p->set;
	struct tenant *t;
	int line = line_of(&p->ev), r, src = -1;
	unsigned seen = 0;
	char b[48];

	if (s->n == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 16;
		struct tenant *nt = realloc(s->t, cap * sizeof(*nt));
		if (!nt) {
			perr(p, line, "out of memory");
			return -1;
		}
		s->t = nt;
		p->cap = cap;
	}
	t = &s->t[s->n++];
	memset(t, 0, sizeof(*t));
	t->line = line;

	while ((r = next_key(p, "a tunnel")) > 0) {
		int k = which_key(p, tunnel_keys, K_N, &seen, "a tunnel");
		if (k < 0)
			return -1;
		if (k == K_TOKEN || k == K_TOKEN_FILE || k == K_TOKEN_ENV) {
			if (src >= 0) {
				perr(p, line_of(&p->ev),
				     "give only one of token, tokenFile and tokenEnv (%s "
				     "already "
				     "given)",
				     tunnel_keys[src]);
				return -1;
			}
			src = k;
		}
		if (next(p))
			return -1;
		switch (k) {
		case K_NAME:
			if (string_value(p, "name"))
				return -1;
			if (!name_ok(sval(p), slen(p))) {
				perr(p, line_of(&p->ev),
				     "name \"%s\": 1 to %d characters of a-z, 0-9 and -",
				     show(sval(p), slen(p), b), TENANT_NAME_MAX);
				return -1;
			}
			memcpy(t->name, sval(p), slen(p));
			t->name[slen(p)] = 0;
			break;
		case K_TOKEN:
		case K_TOKEN_FILE:
		case K_TOKEN_ENV:
			if (token_value(p, k, t))
				return -1;
			break;
		case K_PORTS:
			if (ports_value(p, t))
				return -1;
			break;
		case K_ALLOW:
			if (allow_value(p, t))
				return -1;
			break;
		default: {
			uint32_t v;
			if (int_value(p, "maxStreams", 0, TENANT_MAX_STREAMS, &v))
				return -1;
			t->max_streams = v;
		}
		}
	}
	if (r < 0)
		return -1;
	if (!(seen & (1u << K_NAME))) {
		perr(p, line, "a tunnel: name is required");
		return -1;
	}
	if (src < 0) {
		perr(p, line, "tunnel \"%s\": one of token, tokenFile and tokenEnv is required",
		     t->name);
		return -1;
	}
	if (!(seen & (1u << K_PORTS))) {
		perr(p, line, "tunnel \"%s\": ports is required", t->name);
		return -1;
	}
	return 0;
}

/* The whole stream: one document, a mapping with `tunnels`, a list of tunnels. */
int parse_stream(struct parser *p)
{
	static const char *const keys[] = {"tunnels"};
	unsigned seen = 0;
	int r;

	if (next(p) || expect(p, YAML_STREAM_START_EVENT, "the file") || next(p))
		return -1;
	if (p->ev.type == YAML_STREAM_END_EVENT) {
		perr(p, 0, "the file is empty: it needs a tunnels: list");
		return -1;
	}
	if (expect(p, YAML_DOCUMENT_START_EVENT, "the file") || next(p))
		return -1;
	if (expect(p, YAML_MAPPING_START_EVENT, "the file (tunnels: ...)"))
		return -1;
	while ((r = next_key(p, "the file")) > 0) {
		if (which_key(p, keys, 1, &seen, "the file") < 0 || next(p) ||
		    expect(p, YAML_SEQUENCE_START_EVENT, "tunnels"))
			return -1;
		for (;;) {
			if (next(p))
				return -1;
			if (p->ev.type == YAML_SEQUENCE_END_EVENT)
				break;
			if (p->set->n == TENANT_MAX) {
				perr(p, line_of(&p->ev), "more than %d tunnels", TENANT_MAX);
				return -1;
			}
			if (expect(p, YAML_MAPPING_START_EVENT, "a tunnel") || tunnel_entry(p))
				return -1;
		}
	}
	if (r < 0)
		return -1;
	if (!seen) {
		perr(p, line_of(&p->ev), "the file has no tunnels: list");
		return -1;
	}
	if (next(p) || expect(p, YAML_DOCUMENT_END_EVENT, "the file") || next(p))
		return -1;
	if (p->ev.type != YAML_STREAM_END_EVENT) {
		perr(p, line_of(&p->ev), "more than one document (---): give one");
		return -1;
	}
	return 0;
}
