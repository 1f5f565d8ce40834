/* engine/tenant.c — see tenant.h: the checks across a file's tunnels, the token index
 * and the API; the YAML itself is read by tenant_parse.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "engine/tenant_parse.h"
#include "proto/http.h"

/* ---- checks across tunnels ------------------------------------------------------------ */

static int cmp_name(const void *a, const void *b)
{
	const struct tenant *x = *(struct tenant *const *)a, *y = *(struct tenant *const *)b;
	int c = strcmp(x->name, y->name);
	return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int check_names(struct parser *p)
{
	struct tenant_set *s = p->set;
	struct tenant **v;

	if (s->n < 2)
		return 0;
	v = malloc(s->n * sizeof(*v));
	if (!v) {
		perr(p, 0, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < s->n; i++)
		v[i] = &s->t[i];
	qsort(v, s->n, sizeof(*v), cmp_name);
	for (size_t i = 1; i < s->n; i++) {
		if (strcmp(v[i]->name, v[i - 1]->name) == 0) {
			perr(p, v[i]->line,
			     "tunnel \"%s\" is declared twice (first at line %d)", v[i]->name,
			     v[i - 1]->line);
			free(v);
			return -1;
		}
	}
	free(v);
	return 0;
}

enum bind_kind {
	B_DATA,
	B_V4,
	B_V4_ANY,
	B_V6,
	B_V6_ANY
};

struct binding {
	const char *addr; /* canonical; "" the data address */
	uint16_t port;
	uint8_t kind;
	int line;           /* 0: the control port */
	const char *tunnel; /* NULL: the control port */
};

static int cmp_binding(const void *a, const void *b)
{
	const struct binding *x = a, *y = b;
	int c;

	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	if ((c = strcmp(x->addr, y->addr)))
		return c;
	return (x->line > y->line) - (x->line < y->line);
}

static uint8_t bind_kind(const char *addr)
{
	uint8_t bin[16];

	if (!addr[0])
		return B_DATA;
	if (inet_pton(AF_INET, addr, bin) == 1)
		return strcmp(addr, "0.0.0.0") == 0 ? B_V4_ANY : B_V4;
	if (inet_pton(AF_INET6, addr, bin) == 1)
		return strcmp(addr, "::") == 0 ? B_V6_ANY : B_V6;
	return B_DATA; /* a name: only an equal one is known to clash */
}

/* Can a and b (same port) not both be bound? The same address, or a wildcard that covers
 * the other: the listeners set SO_REUSEPORT, so the kernel would not refuse either and
 * would share the port's connections between them. */
static bool clash(const struct binding *a, const struct binding *b)
{
	if (strcmp(a->addr, b->addr) == 0)
		return true;
	if (a->kind == B_DATA || b->kind == B_DATA)
		return false;
	if (a->kind == B_V6_ANY || b->kind == B_V6_ANY)
		return true; /* "::" takes IPv4 too (the listeners are dual-stack) */
	return (a->kind == B_V4_ANY && b->kind == B_V4) ||
	       (b->kind == B_V4_ANY && a->kind == B_V4);
}

static void say_binding(const struct binding *b, char *out, size_t cap)
{
	if (!b->addr[0])
		snprintf(out, cap, ":%u", b->port);
	else if (strchr(b->addr, ':'))
		snprintf(out, cap, "[%s]:%u", b->addr, b->port);
	else
		snprintf(out, cap, "%s:%u", b->addr, b->port);
}

/* Report the first clash among v[0..n) (sorted by cmp_binding). */
static int check_bindings(struct parser *p, struct binding *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_binding);
	for (size_t g = 0; g < n;) {
		size_t e = g;
		while (e < n && v[e].port == v[g].port)
			e++;
		/* In a port's group: equal addresses are adjacent; a wildcard clashes with the
		 * first entry of the group that is not itself. */
		const struct binding *x = NULL, *y = NULL;
		for (size_t i = g + 1; i < e && !x; i++) {
			if (strcmp(v[i].addr, v[i - 1].addr) == 0)
				x = &v[i - 1], y = &v[i];
		}
		for (size_t i = g; i < e && !x; i++) {
			if (v[i].kind != B_V4_ANY && v[i].kind != B_V6_ANY)
				continue;
			for (size_t j = g; j < e; j++) {
				if (j != i && clash(&v[i], &v[j])) {
					x = &v[i], y = &v[j];
					break;
				}
			}
		}
		if (x) {
			char bx[80], by[80];
			if (x->line > y->line || !y->tunnel) {
				const struct binding *t = x;
				x = y, y = t;
			}
			say_binding(x, bx, sizeof(bx));
			say_binding(y, by, sizeof(by));
			if (!x->tunnel)
				perr(p, y->line,
				     "tunnel \"%s\" listens on %s: the control port is %s",
				     y->tunnel, by, bx);
			else
				perr(p, y->line,
				     "tunnel \"%s\" listens on %s, which clashes with %s of "
				     "tunnel "
				     "\"%s\" (line %d)",
				     y->tunnel, by, bx, x->tunnel, x->line);
			return -1;
		}
		g = e;
	}
	return 0;
}

/* An address as the listens of the file are stored: without brackets, canonical. */
static void canon_addr(char a[INET6_ADDRSTRLEN + 1])
{
	uint8_t bin[16];
	size_t l = strlen(a);

	if (l > 2 && a[0] == '[' && a[l - 1] == ']') {
		memmove(a, a + 1, l - 2);
		a[l - 2] = 0;
	}
	if (inet_pton(AF_INET, a, bin) == 1)
		inet_ntop(AF_INET, bin, a, INET6_ADDRSTRLEN + 1);
	else if (inet_pton(AF_INET6, a, bin) == 1)
		inet_ntop(AF_INET6, bin, a, INET6_ADDRSTRLEN + 1);
}

/* Every binding of s (with "" read as data_addr when it is not NULL), and the control
 * port when control_addr is not NULL, checked for clashes. */
static int check_all_bindings(struct parser *p, const char *data_addr, const char *control_addr,
                              uint16_t control_port)
{
	const struct tenant_set *s = p->set;
	size_t n = control_addr ? 1 : 0, k = 0;
	struct binding *v;
	char data[INET6_ADDRSTRLEN + 1] = "", ctl[INET6_ADDRSTRLEN + 1] = "";
	int rc;

	for (size_t i = 0; i < s->n; i++)
		n += s->t[i].nports;
	if (n < 2)
		return 0;
	v = malloc(n * sizeof(*v));
	if (!v) {
		perr(p, 0, "out of memory");
		return -1;
	}
	/* net_listen reads "" (and NULL) as all IPv4 interfaces. */
	if (data_addr)
		snprintf(data, sizeof(data), "%s", data_addr[0] ? data_addr : "0.0.0.0");
	if (control_addr)
		snprintf(ctl, sizeof(ctl), "%s", control_addr[0] ? control_addr : "0.0.0.0");
	canon_addr(data);
	canon_addr(ctl);
	for (size_t i = 0; i < s->n; i++) {
		for (uint16_t j = 0; j < s->t[i].nports; j++) {
			const struct tenant_port *tp = &s->t[i].ports[j];
			const char *a =
			        tp->listen_addr[0] || !data_addr ? tp->listen_addr : data;
			v[k++] = (struct binding){.addr = a,
			                          .port = tp->listen_port,
			                          .kind = bind_kind(a),
			                          .line = tp->line,
			                          .tunnel = s->t[i].name};
		}
	}
	if (control_addr)
		v[k++] = (struct binding){
		        .addr = ctl, .port = control_port, .kind = bind_kind(ctl), .line = 0};
	rc = check_bindings(p, v, k);
	free(v);
	return rc;
}

/* ---- the token index ------------------------------------------------------------------ */

static uint32_t token_hash(const char *tok, size_t len)
{
	uint8_t md[SHA256_DIGEST_LENGTH];

	SHA256((const uint8_t *)tok, len, md);
	return (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 | (uint32_t)md[2] << 8 | md[3];
}

static int build_index(struct parser *p)
{
	struct tenant_set *s = p->set;
	uint32_t nslot = 2;

	while (nslot < 2 * s->n)
		nslot *= 2;
	s->slot = calloc(nslot, sizeof(*s->slot));
	if (!s->slot) {
		perr(p, 0, "out of memory");
		return -1;
	}
	s->nslot = nslot;
	for (size_t i = 0; i < s->n; i++) {
		struct tenant *t = &s->t[i];
		uint32_t j;
		t->token_hash = token_hash(t->token, strlen(t->token));
		for (j = t->token_hash & (nslot - 1); s->slot[j]; j = (j + 1) & (nslot - 1)) {
			const struct tenant *o = &s->t[s->slot[j] - 1];
			if (o->token_hash == t->token_hash && strcmp(o->token, t->token) == 0) {
				perr(p, t->line,
				     "tunnel \"%s\" has the same token as tunnel \"%s\" (line "
				     "%d)",
				     t->name, o->name, o->line);
				return -1;
			}
		}
		s->slot[j] = (uint32_t)i + 1;
	}
	return 0;
}

/* ---- the API -------------------------------------------------------------------------- */

int tenants_parse(const char *buf, size_t len, const char *path, struct tenant_set *out,
                  char *err, size_t errlen)
{
	struct tenant_set s;
	struct parser p = {.path = path ? path : "(tunnels)",
	                   .buf = buf,
	                   .len = len,
	                   .err = err,
	                   .errlen = errlen};
	int rc = -1;

	memset(&s, 0, sizeof(s));
	p.set = &s;
	if (err && errlen)
		err[0] = 0;
	if (len > TENANT_FILE_MAX) {
		perr(&p, 0, "the file is larger than %u bytes", TENANT_FILE_MAX);
		return -1;
	}
	if (!yaml_parser_initialize(&p.yp)) {
		perr(&p, 0, "out of memory");
		return -1;
	}
	yaml_parser_set_input_string(&p.yp, (const unsigned char *)buf, len);
	/* UTF-8 only (a UTF-16 file is refused, not decoded), so a reader error's offset is
	 * one into buf. */
	yaml_parser_set_encoding(&p.yp, YAML_UTF8_ENCODING);
	if (parse_stream(&p) == 0 && check_names(&p) == 0 &&
	    check_all_bindings(&p, NULL, NULL, 0) == 0 && build_index(&p) == 0) {
		SHA256((const uint8_t *)buf, len, s.sha256);
		*out = s;
		rc = 0;
	}
	if (p.have)
		yaml_event_delete(&p.ev);
	yaml_parser_delete(&p.yp);
	if (rc)
		tenants_free(&s);
	return rc;
}

int tenants_load(const char *path, struct tenant_set *out, char *err, size_t errlen)
{
	struct parser p = {.path = path, .err = err, .errlen = errlen};
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK), rc = -1;

	if (fd == -1) {
		perr(&p, 0, "cannot read it: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		perr(&p, 0, "cannot read it: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		perr(&p, 0, "not a regular file");
		goto out;
	}
	if (st.st_size > (off_t)TENANT_FILE_MAX) {
		perr(&p, 0, "the file is larger than %u bytes", TENANT_FILE_MAX);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		perr(&p, 0, "out of memory");
		goto out;
	}
	/* Read one byte past the size seen: a file that grew since is read again at the
	 * next change, not half now. */
	while (len <= (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			perr(&p, 0, "cannot read it: %s", strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	if (len != (size_t)st.st_size) {
		perr(&p, 0, "the file changed while it was read");
		goto out;
	}
	rc = tenants_parse(buf, len, path, out, err, errlen);
out:
	free(buf);
	close(fd);
	return rc;
}

void tenants_free(struct tenant_set *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		tenant_clear(&s->t[i]);
	free(s->t);
	free(s->slot);
	memset(s, 0, sizeof(*s));
}

int tenants_check_bindings(const struct tenant_set *s, const char *path, const char *data_addr,
                           const char *control_addr, uint16_t control_port, char *err,
                           size_t errlen)
{
	struct parser p = {.path = path ? path : "(tunnels)",
	                   .err = err,
	                   .errlen = errlen,
	                   .set = (struct tenant_set *)s};

	if (err && errlen)
		err[0] = 0;
	return check_all_bindings(&p, data_addr ? data_addr : "", control_addr, control_port);
}

int tenants_find(const struct tenant_set *s, const char *tok, size_t len)
{
	uint32_t h, mask;

	if (!s || !s->slot || !tok || len == 0 || len > TENANT_TOKEN_MAX)
		return -1;
	h = token_hash(tok, len);
	mask = s->nslot - 1;
	/* At most n of the nslot >= 2n slots are full: the probe meets an empty one. */
	for (uint32_t j = h & mask; s->slot[j]; j = (j + 1) & mask) {
		const struct tenant *t = &s->t[s->slot[j] - 1];
		if (t->token_hash == h &&
		    http_token_equal((struct http_slice){.p = tok, .len = len}, t->token,
		                     strlen(t->token)))
			return (int)(s->slot[j] - 1);
	}
	return -1;
}

const struct tenant_port *tenant_port(const struct tenant *t, uint16_t port)
{
	for (uint16_t i = 0; t && i < t->nports; i++) {
		if (t->ports[i].port == port)
			return &t->ports[i];
	}
	return NULL;
}
