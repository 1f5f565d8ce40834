/* tools/status.c — `ringlet status`: GET /status from a server's control port (plain HTTP,
 * with engine/httpc) and print it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/httpc.h"
#include "engine/ringlet.h"
#include "tools/cli.h"

#define STATUS_MAX_RESPONSE (4u << 20) /* a larger body is refused */
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

/* The named tunnels (a server with --tunnels): one line each. */
static void print_tunnels(const struct jv *tunnels)
{
	if (!tunnels || tunnels->type != J_ARR)
		return;
	printf("\n%-24s  %-7s  %-12s  %-12s  %s\n", "TUNNEL", "CLIENTS", "BYTES IN",
	       "BYTES OUT", "PORTS (offered -> bound here)");
	for (size_t i = 0; i < tunnels->n; i++) {
		const struct jv *t = &tunnels->items[i], *ports = jget(t, "ports");
		printf("%-24s  %-7s  %-12s  %-12s  ", jtext(jget(t, "name")),
		       jtext(jget(t, "clients")), jtext(jget(t, "bytesIn")),
		       jtext(jget(t, "bytesOut")));
		for (size_t k = 0; ports && ports->type == J_ARR && k < ports->n; k++)
			printf("%s%s -> %s", k ? ", " : "",
			       jtext(jget(&ports->items[k], "port")),
			       jtext(jget(&ports->items[k], "binding")));
		printf("\n");
	}
	if (tunnels->n == 0)
		printf("(none configured)\n");
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
	print_tunnels(jget(doc, "tunnels"));
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
	const struct httpc_request req = {
	        .host = c->url_host,
	        .port = c->url_port,
	        .path = "/status",
	        .token = c->token,
	        .transport = HTTPC_PLAIN,
	        .timeout_ms = c->handshake_ms,
	        .max_body = STATUS_MAX_RESPONSE,
	};
	struct httpc_response resp = {0};
	char err[512], host[300];
	bool v6 = strchr(c->url_host, ':') != NULL;
	struct jv doc = {0};
	struct jparser jp;
	int rc = 1;

	if (c->url_port == 80)
		snprintf(host, sizeof(host), v6 ? "[%s]" : "%s", c->url_host);
	else
		snprintf(host, sizeof(host), v6 ? "[%s]:%u" : "%s:%u", c->url_host,
		         c->url_port);
	if (httpc_get(&req, &resp, err, sizeof(err))) {
		fprintf(stderr, "Error: %s\n", err);
		return 1;
	}
	if (resp.status != 200) {
		fprintf(stderr, "Error: %s answered %d%s\n", host, resp.status,
		        resp.status == 401 || resp.status == 403 ? " (is the token right?)"
		                                                 : "");
		goto out;
	}
	if (json) {
		fwrite(resp.body, 1, resp.body_len, stdout);
		if (resp.body_len == 0 || resp.body[resp.body_len - 1] != '\n')
			putchar('\n');
		rc = 0;
		goto out;
	}
	jp.p = resp.body;
	jp.end = resp.body + resp.body_len;
	if (jvalue(&jp, &doc, 0) || doc.type != J_OBJ) {
		fprintf(stderr, "Error: %s answered with a document that is not JSON\n", host);
		goto out;
	}
	print_status(&doc);
	rc = 0;
out:
	jv_free(&doc);
	httpc_response_free(&resp);
	return rc;
}
