/* tools/status.c — `ringlet status`: GET /status from a server's control port (plain HTTP)
 * and print it. A blocking, one-shot client: this is a CLI command, not engine code. */
#include <errno.h>
#include <netdb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "engine/ringlet.h"
#include "tools/cli.h"

#define STATUS_MAX_RESPONSE (4u << 20) /* larger answers are refused */
#define STATUS_MAX_DEPTH 32            /* JSON nesting accepted */

/* ---- a small JSON reader, just enough for the /status document -------------------- */

enum jtype {
	J_NULL,
	J_BOOL,
	J_NUM,
	J_STR,
	J_ARR,
	J_OBJ,
};

struct jv {
	enum jtype type;
	char *str; /* J_STR; J_NUM: the number's text */
	bool b;
	struct jv *items; /* J_ARR, J_OBJ */
	char **keys;      /* J_OBJ */
	size_t n;
};

struct jparser {
	const char *p, *end;
};

static void jv_free(struct jv *v)
{
	if (!v)
		return;
	free(v->str);
	for (size_t i = 0; i < v->n; i++) {
		jv_free(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	memset(v, 0, sizeof(*v));
}

static void jskip(struct jparser *jp)
{
	while (jp->p < jp->end &&
	       (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
		jp->p++;
}

static int jstring(struct jparser *jp, char **out)
{
	size_t cap = 16, n = 0;
	char *s;

	if (jp->p >= jp->end || *jp->p != '"')
		return -1;
	jp->p++;
	s = malloc(cap);
	if (!s)
		return -1;
	while (jp->p < jp->end && *jp->p != '"') {
		char ch = *jp->p++;

		if (ch == '\\') {
			if (jp->p >= jp->end)
				goto bad;
			ch = *jp->p++;
			switch (ch) {
			case 'n':
				ch = '\n';
				break;
			case 't':
				ch = '\t';
				break;
			case 'r':
				ch = '\r';
				break;
			case 'b':
				ch = '\b';
				break;
			case 'f':
				ch = '\f';
				break;
			case 'u':
				/* Only for display: non-ASCII escapes become '?'. */
				if (jp->end - jp->p < 4)
					goto bad;
				{
					unsigned v = 0;

					for (int i = 0; i < 4; i++) {
						char h = *jp->p++;

						v <<= 4;
						if (h >= '0' && h <= '9')
							v |= (unsigned)(h - '0');
						else if (h >= 'a' && h <= 'f')
							v |= (unsigned)(h - 'a' + 10);
						else if (h >= 'A' && h <= 'F')
							v |= (unsigned)(h - 'A' + 10);
						else
							goto bad;
					}
					ch = v >= 0x20 && v < 0x7f ? (char)v : '?';
				}
				break;
			default:
				break; /* \" \\ \/ */
			}
		}
		if (n + 2 > cap) {
			char *ns = realloc(s, cap * 2);

			if (!ns)
				goto bad;
			s = ns;
			cap *= 2;
		}
		s[n++] = ch;
	}
	if (jp->p >= jp->end)
		goto bad;
	jp->p++;
	s[n] = 0;
	*out = s;
	return 0;
bad:
	free(s);
	return -1;
}

static int jvalue(struct jparser *jp, struct jv *v, int depth);

static int jcontainer(struct jparser *jp, struct jv *v, int depth, bool obj)
{
	char close = obj ? '}' : ']';

	v->type = obj ? J_OBJ : J_ARR;
	jp->p++;
	jskip(jp);
	if (jp->p < jp->end && *jp->p == close) {
		jp->p++;
		return 0;
	}
	for (;;) {
		struct jv *ni = realloc(v->items, (v->n + 1) * sizeof(*ni));
		char *key = NULL;

		if (!ni)
			return -1;
		v->items = ni;
		if (obj) {
			char **nk = realloc(v->keys, (v->n + 1) * sizeof(*nk));

			if (!nk)
				return -1;
			v->keys = nk;
			jskip(jp);
			if (jstring(jp, &key))
				return -1;
			jskip(jp);
			if (jp->p >= jp->end || *jp->p != ':') {
				free(key);
				return -1;
			}
			jp->p++;
			v->keys[v->n] = key;
		}
		memset(&v->items[v->n], 0, sizeof(v->items[0]));
		v->n++;
		if (jvalue(jp, &v->items[v->n - 1], depth + 1))
			return -1;
		jskip(jp);
		if (jp->p < jp->end && *jp->p == ',') {
			jp->p++;
			continue;
		}
		if (jp->p < jp->end && *jp->p == close) {
			jp->p++;
			return 0;
		}
		return -1;
	}
}

static int jvalue(struct jparser *jp, struct jv *v, int depth)
{
	if (depth > STATUS_MAX_DEPTH)
		return -1;
	jskip(jp);
	if (jp->p >= jp->end)
		return -1;
	switch (*jp->p) {
	case '{':
		return jcontainer(jp, v, depth, true);
	case '[':
		return jcontainer(jp, v, depth, false);
	case '"':
		v->type = J_STR;
		return jstring(jp, &v->str);
	case 't':
	case 'f':
	case 'n': {
		static const char *const words[] = {"true", "false", "null"};

		for (int i = 0; i < 3; i++) {
			size_t wl = strlen(words[i]);

			if ((size_t)(jp->end - jp->p) >= wl && !memcmp(jp->p, words[i], wl)) {
				jp->p += wl;
				v->type = i == 2 ? J_NULL : J_BOOL;
				v->b = i == 0;
				return 0;
			}
		}
		return -1;
	}
	default: {
		const char *b = jp->p;

		while (jp->p < jp->end && strchr("+-.0123456789eE", *jp->p))
			jp->p++;
		if (jp->p == b)
			return -1;
		v->type = J_NUM;
		v->str = strndup(b, (size_t)(jp->p - b));
		return v->str ? 0 : -1;
	}
	}
}

static const struct jv *jget(const struct jv *obj, const char *key)
{
	if (!obj || obj->type != J_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (!strcmp(obj->keys[i], key))
			return &obj->items[i];
	return NULL;
}

static const char *jtext(const struct jv *v)
{
	if (!v)
		return "-";
	if (v->type == J_STR || v->type == J_NUM)
		return v->str;
	if (v->type == J_BOOL)
		return v->b ? "true" : "false";
	return "-";
}

/* ---- HTTP --------------------------------------------------------------------------- */

static int dial(const struct cfg *c)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
	struct timeval tv = {.tv_sec = c->handshake_ms / 1000,
	                     .tv_usec = (c->handshake_ms % 1000) * 1000};
	char port[8];
	int fd = -1, rc, err = 0;

	snprintf(port, sizeof(port), "%u", c->url_port);
	rc = getaddrinfo(c->url_host, port, &hints, &res);
	if (rc) {
		fprintf(stderr, "Error: cannot resolve %s: %s\n", c->url_host,
		        gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1) {
			err = errno;
			continue;
		}
		/* On Linux the send timeout also bounds connect(). */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		fprintf(stderr, "Error: cannot connect to %s port %u: %s\n", c->url_host,
		        c->url_port, strerror(err == EINPROGRESS ? ETIMEDOUT : err));
	return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t w = send(fd, p, len, MSG_NOSIGNAL);

		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Read until EOF into a heap buffer (NUL-terminated). */
static char *recv_all(int fd, size_t *len)
{
	size_t cap = 16384, n = 0;
	char *buf = malloc(cap + 1);

	if (!buf)
		return NULL;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *nb;

			if (cap >= STATUS_MAX_RESPONSE) {
				errno = EFBIG;
				goto bad;
			}
			nb = realloc(buf, cap * 2 + 1);
			if (!nb)
				goto bad;
			buf = nb;
			cap *= 2;
		}
		r = recv(fd, buf + n, cap - n, 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			goto bad;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
	*len = n;
	return buf;
bad:
	free(buf);
	return NULL;
}

/* Find a header's value in head (CRLF lines); copies it into out. */
static bool header_value(const char *head, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *line = strstr(head, "\r\n");

	while (line && line[2] != '\r') {
		line += 2;
		if (!strncasecmp(line, name, nl) && line[nl] == ':') {
			const char *v = line + nl + 1, *e = strstr(v, "\r\n");
			size_t len;

			while (*v == ' ' || *v == '\t')
				v++;
			len = e ? (size_t)(e - v) : strlen(v);
			while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
				len--;
			snprintf(out, cap, "%.*s", (int)len, v);
			return true;
		}
		line = strstr(line, "\r\n");
	}
	return false;
}

/* Decode a chunked body in place; returns its length or -1. */
static long dechunk(char *body, size_t len)
{
	size_t in = 0, out = 0;

	for (;;) {
		char *end;
		unsigned long sz = strtoul(body + in, &end, 16);
		char *crlf = strstr(body + in, "\r\n");

		if (end == body + in || !crlf)
			return -1;
		in = (size_t)(crlf - body) + 2;
		if (sz == 0)
			return (long)out;
		if (sz > len - in)
			return -1;
		memmove(body + out, body + in, sz);
		out += sz;
		in += sz;
		if (len - in < 2 || body[in] != '\r' || body[in + 1] != '\n')
			return -1;
		in += 2;
	}
}

/* ---- output ------------------------------------------------------------------------- */

/* "3h2m", "5m10s", "42s" since an RFC 3339 time, or "" if it cannot be read. */
static void age_of(const char *rfc3339, char *out, size_t cap)
{
	struct tm tm = {0};
	const char *p;
	time_t t, now = time(NULL);
	long long d;
	int off = 0;

	out[0] = 0;
	if (!rfc3339 || !(p = strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm)))
		return;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	if ((*p == '+' || *p == '-') && strlen(p) >= 6)
		off = (*p == '-' ? -1 : 1) * ((atoi(p + 1) * 60) + atoi(p + 4)) * 60;
	else if (*p != 'Z' && *p != 'z')
		return;
	t = timegm(&tm) - off;
	d = (long long)(now - t);
	if (d < 0)
		d = 0;
	if (d >= 86400)
		snprintf(out, cap, "%lldd%lldh", d / 86400, d % 86400 / 3600);
	else if (d >= 3600)
		snprintf(out, cap, "%lldh%lldm", d / 3600, d % 3600 / 60);
	else if (d >= 60)
		snprintf(out, cap, "%lldm%llds", d / 60, d % 60);
	else
		snprintf(out, cap, "%llds", d);
}

static void print_status(const struct jv *doc)
{
	const struct jv *info = jget(doc, "info"), *clients = jget(doc, "clients");
	const char *start = jtext(jget(info, "startTime"));
	char age[32];

	age_of(start, age, sizeof(age));
	printf("Server info:\n");
	printf("  Hostname:  %s\n", jtext(jget(info, "hostname")));
	printf("  Version:   %s (%s)\n", jtext(jget(info, "version")),
	       jtext(jget(info, "sha")));
	printf("  Mode:      %s\n", jtext(jget(info, "mode")));
	printf("  Started:   %s%s%s%s\n", start, *age ? " (up " : "", age, *age ? ")" : "");
	const struct jv *sm = jget(jget(doc, "ringlet"), "sockmap");
	if (sm && strcmp(jtext(jget(sm, "mode")), "off") != 0) {
		const struct jv *active = jget(sm, "active");
		if (active && active->type == J_BOOL && active->b)
			printf("  Sockmap:   %s, active (%s hops steered, %s bytes in the "
			       "kernel)\n",
			       jtext(jget(sm, "mode")), jtext(jget(sm, "hopsSteered")),
			       jtext(jget(sm, "bytes")));
		else
			printf("  Sockmap:   %s, not in use: %s\n", jtext(jget(sm, "mode")),
			       jtext(jget(sm, "why")));
	}
	if (!clients || clients->type != J_ARR || clients->n == 0) {
		printf("\nNo clients connected.\n");
		return;
	}
	printf("\n%-36s  %-24s  %-10s  %s\n", "CLIENT ID", "REMOTE ADDRESS", "CONNECTED",
	       "UPSTREAMS");
	for (size_t i = 0; i < clients->n; i++) {
		const struct jv *cl = &clients->items[i], *ups = jget(cl, "upstreams");

		age_of(jtext(jget(cl, "since")), age, sizeof(age));
		printf("%-36s  %-24s  %-10s  ", jtext(jget(cl, "clientID")),
		       jtext(jget(cl, "remoteAddr")), *age ? age : "-");
		if (ups && ups->type == J_ARR) {
			for (size_t k = 0; k < ups->n; k++)
				printf("%s%s", k ? "," : "", jtext(&ups->items[k]));
			if (ups->n == 0)
				printf("-");
		} else {
			printf("%s", jtext(ups));
		}
		printf("\n");
	}
}

int ringlet_status_run(const struct cfg *c, bool json)
{
	char *req = NULL, *resp = NULL, *body, host[300], te[64], cl[32];
	size_t len = 0, blen;
	int fd, code = 0, rc = 1;
	bool v6 = strchr(c->url_host, ':') != NULL;
	struct jv doc = {0};
	struct jparser jp;

	if (c->url_port == 80)
		snprintf(host, sizeof(host), v6 ? "[%s]" : "%s", c->url_host);
	else
		snprintf(host, sizeof(host), v6 ? "[%s]:%u" : "%s:%u", c->url_host,
		         c->url_port);
	if (asprintf(&req,
	             "GET /status HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
	             "User-Agent: ringlet/%s\r\nAccept: application/json\r\n"
	             "Connection: close\r\n\r\n",
	             host, c->token, ringlet_version) == -1) {
		fputs("Error: out of memory\n", stderr);
		return 1;
	}
	fd = dial(c);
	if (fd == -1)
		goto out;
	if (send_all(fd, req, strlen(req)) || !(resp = recv_all(fd, &len))) {
		fprintf(stderr, "Error: request to %s failed: %s\n", host,
		        errno == EAGAIN ? "timed out" : strerror(errno));
		close(fd);
		goto out;
	}
	close(fd);
	if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1 || !(body = strstr(resp, "\r\n\r\n"))) {
		fprintf(stderr, "Error: %s did not answer with HTTP\n", host);
		goto out;
	}
	body[2] = 0; /* terminate the head for header_value; the body starts 2 bytes on */
	body += 4;
	blen = len - (size_t)(body - resp);
	if (header_value(resp, "Transfer-Encoding", te, sizeof(te)) &&
	    strcasestr(te, "chunked")) {
		long dl = dechunk(body, blen);

		if (dl < 0) {
			fprintf(stderr, "Error: bad chunked answer from %s\n", host);
			goto out;
		}
		blen = (size_t)dl;
	} else if (header_value(resp, "Content-Length", cl, sizeof(cl))) {
		unsigned long want = strtoul(cl, NULL, 10);

		if (want < blen)
			blen = want;
	}
	body[blen] = 0;
	if (code != 200) {
		fprintf(stderr, "Error: %s answered %d%s\n", host, code,
		        code == 401 || code == 403 ? " (is the token right?)" : "");
		goto out;
	}
	if (json) {
		fwrite(body, 1, blen, stdout);
		if (blen == 0 || body[blen - 1] != '\n')
			putchar('\n');
		rc = 0;
		goto out;
	}
	jp.p = body;
	jp.end = body + blen;
	if (jvalue(&jp, &doc, 0) || doc.type != J_OBJ) {
		fprintf(stderr, "Error: %s answered with a document that is not JSON\n", host);
		goto out;
	}
	print_status(&doc);
	rc = 0;
out:
	jv_free(&doc);
	free(req);
	free(resp);
	return rc;
}
