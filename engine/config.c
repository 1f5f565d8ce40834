/* engine/config.c — configuration defaults, tunnel URL parsing, shard count. */
#include "engine/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/log.h"

/* The defaults are set before anything can be reported, so running out of memory here
 * ends the process: there is nothing sensible to run without them. */
static char *dup_or_die(const char *s)
{
	char *d = strdup(s);

	if (!d) {
		fputs("ringlet: out of memory\n", stderr);
		abort();
	}
	return d;
}

void cfg_defaults(struct cfg *c, enum cfg_mode mode)
{
	memset(c, 0, sizeof(*c));
	c->mode = mode;
	c->shards = 0;
	c->log_level = LOG_INFO;
	c->window = CFG_DEFAULT_WINDOW;
	c->max_frame = CFG_DEFAULT_MAX_FRAME;
	c->max_conns = CFG_DEFAULT_MAX_CONNS;
	c->ping_ms = CFG_DEFAULT_PING_MS;
	c->dead_ms = CFG_DEFAULT_DEAD_MS;
	c->drain_ms = CFG_DEFAULT_DRAIN_MS;
	c->dial_ms = CFG_DEFAULT_DIAL_MS;
	c->handshake_ms = CFG_DEFAULT_HANDSHAKE_MS;
	c->log_rate_burst = LOG_RATE_BURST;
	c->log_rate_ms = LOG_RATE_INTERVAL_MS;
	/* The limit is the server's control port; a client's --metrics-addr has none. */
	c->auth_fail_max = mode == CFG_SERVER ? CFG_DEFAULT_AUTH_FAIL_MAX : 0;
	c->auth_fail_ms = CFG_DEFAULT_AUTH_FAIL_MS;

	c->control_addr = dup_or_die("0.0.0.0");
	c->control_port = CFG_DEFAULT_CONTROL_PORT;
	c->auto_tls = true;
	c->zero_mask = true;
	c->auto_tls_path = dup_or_die("/tmp/certs");
	c->proxy_protocol = dup_or_die("");
	c->lb_proxy_protocol = dup_or_die("");

	c->upstream = dup_or_die("localhost");
}

static void free_strv(char ***v, size_t *n)
{
	if (*v) {
		for (size_t i = 0; i < *n; i++)
			free((*v)[i]);
		free(*v);
	}
	*v = NULL;
	*n = 0;
}

void cfg_free(struct cfg *c)
{
	if (!c)
		return;
	free(c->token);
	free(c->log_file);
	free(c->control_addr);
	free(c->data_addr);
	free_strv(&c->tls_san, &c->n_tls_san);
	free(c->auto_tls_path);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->proxy_protocol);
	free(c->lb_proxy_protocol);
	free_strv(&c->allow_ips, &c->n_allow_ips);
	free(c->tunnels_file);
	free(c->url);
	free(c->url_host);
	free(c->url_path);
	free(c->sockmap_cgroup);
	free(c->upstream);
	free(c->ca_file);
	free(c->metrics_addr);
	free_strv(&c->local, &c->n_local);
	free(c->client_id);
	memset(c, 0, sizeof(*c));
}

/* Characters allowed in a host name or an address inside the authority. */
static bool host_char_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '%';
}

const char *cfg_parse_url(struct cfg *c, const char *url)
{
	const char *p, *auth_end, *host, *host_end, *port_s = NULL, *path;
	bool tls;
	unsigned long port;
	size_t plen;
	char *n_url = NULL, *n_host = NULL, *n_path = NULL;

	if (!url || !*url)
		return "the URL is empty";
	if (!strncasecmp(url, "wss://", 6)) {
		tls = true;
		p = url + 6;
	} else if (!strncasecmp(url, "ws://", 5)) {
		tls = false;
		p = url + 5;
	} else {
		return "the URL must start with ws:// or wss://";
	}

	auth_end = p + strcspn(p, "/?#");
	if (memchr(p, '@', (size_t)(auth_end - p)))
		return "user names and passwords in the URL are not supported";
	if (*p == '[') {
		host = p + 1;
		host_end = memchr(host, ']', (size_t)(auth_end - host));
		if (!host_end)
			return "missing ']' after the IPv6 address in the URL";
		for (const char *q = host; q < host_end; q++)
			if (!host_char_ok(*q) && *q != ':')
				return "invalid character in the URL's IPv6 address";
		if (host_end[1] == ':')
			port_s = host_end + 2;
		else if (host_end + 1 != auth_end)
			return "unexpected text after ']' in the URL";
	} else {
		host = p;
		host_end = memchr(p, ':', (size_t)(auth_end - p));
		if (host_end) {
			port_s = host_end + 1;
			if (memchr(port_s, ':', (size_t)(auth_end - port_s)))
				return "IPv6 addresses in the URL must be in brackets, "
				       "e.g. ws://[::1]:8123";
		} else {
			host_end = auth_end;
		}
		for (const char *q = host; q < host_end; q++)
			if (!host_char_ok(*q))
				return "invalid character in the URL's host name";
	}
	if (host_end == host)
		return "the URL has no host";

	if (port_s) {
		port = 0;
		if (port_s == auth_end)
			return "the URL has an empty port after ':'";
		for (const char *q = port_s; q < auth_end; q++) {
			if (*q < '0' || *q > '9')
				return "the URL's port is not a number";
			port = port * 10 + (unsigned long)(*q - '0');
			if (port > 65535)
				return "the URL's port is out of range (1-65535)";
		}
		if (port == 0)
			return "the URL's port is out of range (1-65535)";
	} else {
		port = tls ? 443 : 80;
	}

	/* The request target is the path plus any query; a fragment is never sent. */
	path = auth_end;
	plen = strcspn(path, "#");
	if (plen == 0 || (plen == 1 && path[0] == '/')) {
		n_path = strdup("/connect");
	} else if (path[0] == '?') {
		if (asprintf(&n_path, "/connect%.*s", (int)plen, path) == -1)
			n_path = NULL;
	} else {
		n_path = strndup(path, plen);
	}
	n_url = strdup(url);
	n_host = strndup(host, (size_t)(host_end - host));
	if (!n_url || !n_host || !n_path) {
		free(n_url);
		free(n_host);
		free(n_path);
		return "out of memory";
	}
	free(c->url);
	free(c->url_host);
	free(c->url_path);
	c->url = n_url;
	c->url_host = n_host;
	c->url_path = n_path;
	c->url_tls = tls;
	c->url_port = (uint16_t)port;
	return NULL;
}

/* One port number at *p (1..65535); advances *p. Returns 0 when there is none. */
static uint32_t parse_port_num(const char **p)
{
	uint32_t v = 0;
	const char *q = *p;
	while (*q >= '0' && *q <= '9' && v <= 65535)
		v = v * 10 + (uint32_t)(*q++ - '0');
	if (q == *p || v > 65535)
		return 0;
	*p = q;
	return v;
}

const char *cfg_parse_allow_ports(struct cfg *c, const char *spec)
{
	const char *p = spec;
	for (;;) {
		while (*p == ' ')
			p++;
		uint32_t lo = parse_port_num(&p), hi = lo;
		if (!lo)
			return "not a port (1-65535) or a range of ports (LOW-HIGH)";
		if (*p == '-') {
			p++;
			hi = parse_port_num(&p);
			if (!hi)
				return "not a port (1-65535) or a range of ports (LOW-HIGH)";
			if (hi < lo)
				return "a range must go from the lower port to the higher";
		}
		while (*p == ' ')
			p++;
		if (*p && *p != ',')
			return "not a port (1-65535) or a range of ports (LOW-HIGH)";
		if (c->n_allow_ports == CFG_MAX_PORT_RANGES)
			return "too many ports or ranges (at most 64)";
		c->allow_ports[c->n_allow_ports++] =
		        (struct cfg_port_range){.lo = (uint16_t)lo, .hi = (uint16_t)hi};
		if (!*p)
			return NULL;
		p++;
	}
}

bool cfg_port_allowed(const struct cfg *c, uint16_t port)
{
	if (!c->n_allow_ports)
		return port >= CFG_PRIVILEGED_PORTS;
	for (size_t i = 0; i < c->n_allow_ports; i++)
		if (port >= c->allow_ports[i].lo && port <= c->allow_ports[i].hi)
			return true;
	return false;
}

int cfg_shard_count(const struct cfg *c)
{
	long n;

	if (c->shards > 0)
		return c->shards > CFG_MAX_SHARDS ? CFG_MAX_SHARDS : c->shards;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > CFG_MAX_SHARDS ? CFG_MAX_SHARDS : (int)n;
}
