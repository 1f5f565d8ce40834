/* tools/cli.c — command words, flag tables, validation and dispatch (see cli.h). */
#include "tools/cli.h"
#include "tools/k8s.h"
#include "tools/systemd.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/ringlet.h"
#include "tools/flags.h"

#define CLI_MAX_FLAGS 64
#define CLI_TOKEN_MAX 4096  /* longest token accepted, bytes */
#define CLI_HELP_WIDTH 96   /* help text wraps at this column */
#define CLI_WINDOW_MIN 4096 /* --window bounds, bytes */
#define CLI_WINDOW_MAX (1u << 30)
#define CLI_MAX_CONNS_MAX (1 << 22)
#define CLI_MAX_LANES 64

/* Values the flags fill that are not struct cfg fields, and are resolved after parsing. */
struct parse_state {
	bool help;
	char *token_file; /* --token-file, --token-from */
	char *token_env;
	char *log_level;
	char *data_path; /* --data-path */
	char *sockmap;   /* --sockmap */
	char *log_rate;  /* --log-rate */
	char *auth_fail; /* --auth-fail-limit */
	char *ignored;   /* --license, --license-file, --license-env */
	int max_conns;
	char **allow_ports; /* --allow-ports, parsed into cfg.allow_ports by validate_server */
	size_t n_allow_ports;
};

static void errf(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- flag tables ------------------------------------------------------------------ */

static size_t add(struct flag *tab, size_t n, struct flag f)
{
	if (n < CLI_MAX_FLAGS)
		tab[n++] = f;
	return n;
}

static size_t token_flags(struct flag *tab, size_t n, struct cfg *c, struct parse_state *st)
{
	n = add(tab, n,
	        (struct flag){.name = "token",
	                      .type = FLAG_STRING,
	                      .dst = &c->token,
	                      .usage =
	                              "the shared secret (authentication token) of the tunnel; "
	                              "visible in `ps`, so prefer --token-file. Give exactly "
	                              "one of --token, --token-file (--token-from) or "
	                              "--token-env"});
	n = add(tab, n,
	        (struct flag){.name = "token-file",
	                      .type = FLAG_STRING,
	                      .dst = &st->token_file,
	                      .usage = "read the token from this file; white space and "
	                               "newlines around it are removed, so a token.txt written "
	                               "by echo works"});
	n = add(tab, n,
	        (struct flag){.name = "token-from",
	                      .type = FLAG_STRING,
	                      .dst = &st->token_file,
	                      .usage = "older name of --token-file, still used by the inlets "
	                               "PRO Helm charts"});
	n = add(tab, n,
	        (struct flag){.name = "token-env",
	                      .type = FLAG_STRING,
	                      .dst = &st->token_env,
	                      .usage = "read the token from the environment variable with this "
	                               "name (white space trimmed as for --token-file)"});
	return n;
}

/* Flags of every long-running command: logging, sharding, flow control. */
static size_t engine_flags(struct flag *tab, size_t n, struct cfg *c, struct parse_state *st)
{
	n = add(tab, n,
	        (struct flag){.name = "log-level",
	                      .type = FLAG_STRING,
	                      .dst = &st->log_level,
	                      .usage = "log events at this level and above: debug, info, warn "
	                               "or error",
	                      .def = "info"});
	n = add(tab, n,
	        (struct flag){.name = "log-file",
	                      .type = FLAG_STRING,
	                      .dst = &c->log_file,
	                      .usage = "append logfmt lines to this file (created with mode "
	                               "0640; reopened on SIGHUP, for log rotation) instead of "
	                               "standard error"});
	n = add(tab, n,
	        (struct flag){.name = "log-rate",
	                      .type = FLAG_STRING,
	                      .dst = &st->log_rate,
	                      .usage = "at most N warning or error lines with the same message "
	                               "per interval, as N/INTERVAL; the rest are counted and "
	                               "reported in one \"suppressed similar lines\" line when "
	                               "the interval ends; 0 or off: no limit",
	                      .def = "5/10s"});
	n = add(tab, n,
	        (struct flag){.name = "data-path",
	                      .type = FLAG_STRING,
	                      .dst = &st->data_path,
	                      .usage = "how payloads move between sockets and the tunnel: "
	                               "forward (through provided buffers; payloads from the "
	                               "tunnel are sent from where they arrived, copied only "
	                               "when the socket does not take them), copy (as forward, "
	                               "but always copied into the stream's buffer), splice "
	                               "(splice(2) through pipes, both ways, on plain ws:// "
	                               "tunnels; a client's payloads need the zero-mask "
	                               "capability), or auto (forward, with bulk moved to "
	                               "splice where it can go: a stream reading 128 KiB at "
	                               "once, a lane receiving frames of 128 KiB; small "
	                               "requests stay on forward; see bench/README.md)",
	                      .def = "auto"});
	n = add(tab, n,
	        (struct flag){.name = "sockmap",
	                      .type = FLAG_STRING,
	                      .dst = &st->sockmap,
	                      .usage =
	                              "steer local hops (upstream, data-plane consumer on this "
	                              "host) through the kernel with eBPF sockmap: off, auto "
	                              "(when the kernel, privileges and cgroup v2 allow, "
	                              "else off) or on (refuse to start without it); see "
	                              "ebpf/README.md",
	                      .def = "off"});
	n = add(tab, n,
	        (struct flag){.name = "sockmap-cgroup",
	                      .type = FLAG_STRING,
	                      .dst = &c->sockmap_cgroup,
	                      .usage =
	                              "the cgroup-v2 directory whose TCP sockets --sockmap may "
	                              "steer; both ends of a hop must be in it (in Kubernetes, "
	                              "the pod's cgroup). Default: ringlet's own cgroup"});
	n = add(tab, n,
	        (struct flag){.name = "shards",
	                      .type = FLAG_INT,
	                      .dst = &c->shards,
	                      .min = 0,
	                      .max = CFG_MAX_SHARDS,
	                      .usage = "number of io_uring event loops (threads); 0 means one "
	                               "per online CPU, at most 64",
	                      .def = "0"});
	n = add(tab, n,
	        (struct flag){.name = "window",
	                      .type = FLAG_BYTES,
	                      .dst = &c->window,
	                      .min = CLI_WINDOW_MIN,
	                      .max = CLI_WINDOW_MAX,
	                      .usage =
	                              "flow-control window per tunnelled connection: how many "
	                              "bytes may be in flight before the receiver acknowledges "
	                              "(a connection alone on its tunnel lane gets it whole, n "
	                              "connections on a lane window/n each, at least 256k); "
	                              "accepts k/m/g suffixes (powers of 1024)",
	                      .def = "1m"});
	return n;
}

static size_t help_flag(struct flag *tab, size_t n, struct parse_state *st, const char *usage)
{
	return add(tab, n,
	           (struct flag){.name = "help",
	                         .shorthand = 'h',
	                         .type = FLAG_BOOL,
	                         .dst = &st->help,
	                         .usage = usage});
}

static size_t server_flags(struct flag *tab, struct cli_cmd *cmd, struct parse_state *st)
{
	struct cfg *c = &cmd->cfg;
	size_t n = 0;

	n = token_flags(tab, n, c, st);
	n = add(tab, n,
	        (struct flag){.name = "control-port",
	                      .type = FLAG_PORT,
	                      .dst = &c->control_port,
	                      .usage = "port of the control plane: clients connect here "
	                               "(/connect), and /status, /metrics, /healthz and "
	                               "/.well-known/ca.crt are served here",
	                      .def = "8123"});
	n = add(tab, n,
	        (struct flag){.name = "control-addr",
	                      .type = FLAG_STRING,
	                      .dst = &c->control_addr,
	                      .usage = "IP address the control plane listens on",
	                      .def = "0.0.0.0"});
	n = add(tab, n,
	        (struct flag){.name = "data-addr",
	                      .type = FLAG_STRING,
	                      .dst = &c->data_addr,
	                      .usage = "IP address the data plane listens on, for the ports "
	                               "clients expose (\"127.0.0.1\" and \"127.0.0.1:\" both "
	                               "work); empty: all interfaces"});
	n = add(tab, n,
	        (struct flag){
	                .name = "auto-tls",
	                .type = FLAG_BOOL,
	                .dst = &c->auto_tls,
	                .usage = "generate a CA and a server certificate and serve TLS on "
	                         "the control port; use --auto-tls=false for plain "
	                         "HTTP/WebSocket behind an ingress or load balancer that "
	                         "terminates TLS (as the Helm charts do); files go to "
	                         "--auto-tls-path and are reused while valid, and the CA is "
	                         "served at /.well-known/ca.crt",
	                .def = "true"});
	n = add(tab, n,
	        (struct flag){
	                .name = "auto-tls-san",
	                .type = FLAG_STRINGS,
	                .dst = &c->tls_san,
	                .count = &c->n_tls_san,
	                .usage = "subject alternative name (DNS name or IP address) for "
	                         "the generated certificate; repeatable or comma-separated"});
	n = add(tab, n,
	        (struct flag){.name = "tls-san",
	                      .type = FLAG_STRINGS,
	                      .dst = &c->tls_san,
	                      .count = &c->n_tls_san,
	                      .usage = "older name of --auto-tls-san"});
	n = add(tab, n,
	        (struct flag){.name = "common-name",
	                      .type = FLAG_STRINGS,
	                      .dst = &c->tls_san,
	                      .count = &c->n_tls_san,
	                      .usage = "older name of --auto-tls-san"});
	n = add(tab, n,
	        (struct flag){.name = "auto-tls-path",
	                      .type = FLAG_STRING,
	                      .dst = &c->auto_tls_path,
	                      .usage = "directory where ca.crt, ca.key, server.crt and "
	                               "server.key are written (and reused on restart)",
	                      .def = "/tmp/certs"});
	n = add(tab, n,
	        (struct flag){.name = "tls-cert",
	                      .type = FLAG_STRING,
	                      .dst = &c->tls_cert,
	                      .usage = "PEM certificate (chain) to serve instead of auto-TLS; "
	                               "needs --tls-key"});
	n = add(tab, n,
	        (struct flag){.name = "tls-key",
	                      .type = FLAG_STRING,
	                      .dst = &c->tls_key,
	                      .usage = "PEM private key of --tls-cert"});
	n = add(tab, n,
	        (struct flag){.name = "proxy-protocol",
	                      .type = FLAG_STRING,
	                      .dst = &c->proxy_protocol,
	                      .usage = "send a PROXY protocol header (v1 or v2) carrying the "
	                               "original client address to the upstream of each "
	                               "data-plane connection; empty: none"});
	n = add(tab, n,
	        (struct flag){.name = "lb-proxy-protocol",
	                      .type = FLAG_STRING,
	                      .dst = &c->lb_proxy_protocol,
	                      .usage = "expect a PROXY protocol header (v1 or v2) from a load "
	                               "balancer in front of the data plane; empty: none"});
	n = add(tab, n,
	        (struct flag){
	                .name = "allow-ips",
	                .type = FLAG_STRINGS,
	                .dst = &c->allow_ips,
	                .count = &c->n_allow_ips,
	                .usage = "accept data-plane connections only from these IP "
	                         "addresses or CIDR ranges; repeatable or comma-separated; "
	                         "none: accept all"});
	n = add(tab, n,
	        (struct flag){
	                .name = "allow-ports",
	                .type = FLAG_STRINGS,
	                .dst = &st->allow_ports,
	                .count = &st->n_allow_ports,
	                .usage = "the data-plane ports clients may ask for: ports and "
	                         "ranges (80,443,9000-9100); repeatable or comma-separated; "
	                         "none: every port from 1024 up (a port below 1024 must be "
	                         "named here); never the server's own ports. With --tunnels "
	                         "the tunnels file decides instead"});
	n = add(tab, n,
	        (struct flag){.name = "tunnels",
	                      .type = FLAG_STRING,
	                      .dst = &c->tunnels_file,
	                      .usage = "serve many clusters: named tunnels, each with its own "
	                               "token and data-plane bindings, from this YAML file "
	                               "(docs/DESIGN.md, \"Many clusters, one exit node\"); "
	                               "--token is then the operator's"});
	n = add(tab, n,
	        (struct flag){.name = "client-forwarding",
	                      .type = FLAG_BOOL,
	                      .dst = &c->client_forwarding,
	                      .usage = "allow clients to forward local ports through the "
	                               "server (their --local flag)",
	                      .def = "false"});
	n = add(tab, n,
	        (struct flag){.name = "generate",
	                      .type = FLAG_STRING,
	                      .dst = &cmd->generate,
	                      .usage = "print a service definition for the other flags and "
	                               "exit: \"systemd\" (a unit) or \"k8s_yaml\" (Kubernetes "
	                               "manifests, as tools/charts renders them)"});
	n = add(tab, n,
	        (struct flag){
	                .name = "drain-timeout",
	                .type = FLAG_DURATION,
	                .dst = &c->drain_ms,
	                .usage = "on SIGTERM/SIGINT, stop accepting and wait this long for "
	                         "open connections to finish before closing them (e.g. "
	                         "30s, 500ms, 2m; a bare number is seconds)",
	                .def = "30s"});
	n = add(tab, n,
	        (struct flag){.name = "auth-fail-limit",
	                      .type = FLAG_STRING,
	                      .dst = &st->auth_fail,
	                      .usage = "after N failed authentications (wrong or missing token "
	                               "on /connect, /status or /metrics; a wrong token the "
	                               "address sent lately counts once) from one address "
	                               "within INTERVAL, answer that address 429 (Retry-After) "
	                               "without checking its token for INTERVAL, as "
	                               "N/INTERVAL; 0 or off: no limit",
	                      .def = "10/60s"});
	n = add(tab, n,
	        (struct flag){.name = "max-conns",
	                      .type = FLAG_INT,
	                      .dst = &st->max_conns,
	                      .min = 1,
	                      .max = CLI_MAX_CONNS_MAX,
	                      .usage = "connection slots per shard (tunnel clients plus "
	                               "data-plane connections); beyond it new connections are "
	                               "refused",
	                      .def = "16384"});
	n = engine_flags(tab, n, c, st);
	n = help_flag(tab, n, st, "help for server");
	return n;
}

static size_t client_flags(struct flag *tab, struct cli_cmd *cmd, struct parse_state *st)
{
	struct cfg *c = &cmd->cfg;
	size_t n = 0;

	n = add(tab, n,
	        (struct flag){.name = "url",
	                      .type = FLAG_STRING,
	                      .dst = &c->url,
	                      .usage = "the server's control plane, required: "
	                               "wss://host[:port][/path] or ws://...; no path means "
	                               "/connect, no port means 443 (wss) or 80 (ws); IPv6 in "
	                               "brackets: ws://[::1]:8123"});
	n = add(tab, n,
	        (struct flag){.name = "upstream",
	                      .type = FLAG_STRING,
	                      .dst = &c->upstream,
	                      .usage =
	                              "host (name or IP address) to dial for each tunnelled "
	                              "connection, on the same port number as the exposed port",
	                      .def = "localhost"});
	n = add(tab, n,
	        (struct flag){.name = "ports",
	                      .type = FLAG_PORTS,
	                      .dst = c->ports,
	                      .count = &c->nports,
	                      .cap = TUN_MAX_PORTS,
	                      .usage = "ports to expose on the server's data plane; "
	                               "comma-separated and repeatable (--ports 80,443 "
	                               "--ports 9090); at most 64"});
	n = add(tab, n,
	        (struct flag){
	                .name = "port",
	                .shorthand = 'p',
	                .type = FLAG_PORTS,
	                .dst = c->ports,
	                .count = &c->nports,
	                .cap = TUN_MAX_PORTS,
	                .usage = "a port to expose, as --ports; repeatable (-p 80 -p 443)"});
	n = token_flags(tab, n, c, st);
	n = add(tab, n,
	        (struct flag){.name = "auto-tls",
	                      .type = FLAG_BOOL,
	                      .dst = &c->auto_tls,
	                      .usage =
	                              "with a wss:// URL, fetch the server's CA from "
	                              "/.well-known/ca.crt and trust it; --auto-tls=false "
	                              "verifies the server against the system trust store (or "
	                              "--ca-file), as behind an ingress with a public "
	                              "certificate. The fetched CA is trusted on first use "
	                              "and pinned for the life of the process: where the first "
	                              "connection could be intercepted, give --ca-file instead",
	                      .def = "true"});
	n = add(tab, n,
	        (struct flag){.name = "ca-file",
	                      .type = FLAG_STRING,
	                      .dst = &c->ca_file,
	                      .usage =
	                              "PEM CA bundle to verify the server with, instead of the "
	                              "system trust store"});
	n = add(tab, n,
	        (struct flag){.name = "license",
	                      .type = FLAG_STRING,
	                      .dst = &st->ignored,
	                      .usage =
	                              "accepted for compatibility with inlets PRO and ignored: "
	                              "ringlet needs no licence"});
	n = add(tab, n,
	        (struct flag){.name = "license-file",
	                      .type = FLAG_STRING,
	                      .dst = &st->ignored,
	                      .usage = "accepted and ignored (the file is not read)"});
	n = add(tab, n,
	        (struct flag){.name = "license-env",
	                      .type = FLAG_STRING,
	                      .dst = &st->ignored,
	                      .usage = "accepted and ignored (the variable is not read)"});
	n = add(tab, n,
	        (struct flag){.name = "local",
	                      .type = FLAG_STRINGS,
	                      .dst = &c->local,
	                      .count = &c->n_local,
	                      .usage =
	                              "forward a local port through the server: "
	                              "LOCALPORT:host:port; repeatable or comma-separated; the "
	                              "server must run with --client-forwarding"});
	n = add(tab, n,
	        (struct flag){.name = "local-addr",
	                      .type = FLAG_STRING,
	                      .dst = &c->local_addr,
	                      .usage = "IP address the --local listeners bind to",
	                      .def = "127.0.0.1"});
	n = add(tab, n,
	        (struct flag){.name = "metrics-addr",
	                      .type = FLAG_STRING,
	                      .dst = &c->metrics_addr,
	                      .usage = "serve the client's Prometheus metrics on this "
	                               "host:port (e.g. 127.0.0.1:9091); empty: no metrics "
	                               "listener"});
	n = add(tab, n,
	        (struct flag){.name = "zero-mask",
	                      .type = FLAG_BOOL,
	                      .dst = &c->zero_mask,
	                      .usage = "mask frames with the all-zero key when the server "
	                               "allows it, so payloads need no transformation "
	                               "(docs/PROTOCOL.md 1.3); false: random keys",
	                      .def = "true"});
	n = add(tab, n,
	        (struct flag){.name = "lanes",
	                      .type = FLAG_INT,
	                      .dst = &c->lanes,
	                      .min = 0,
	                      .max = CLI_MAX_LANES,
	                      .usage =
	                              "parallel tunnel connections (WebSockets) to the server; "
	                              "0: as many as the server suggests",
	                      .def = "0"});
	n = add(tab, n,
	        (struct flag){.name = "generate",
	                      .type = FLAG_STRING,
	                      .dst = &cmd->generate,
	                      .usage = "print a service definition for the other flags and "
	                               "exit: \"systemd\" (a unit) or \"k8s_yaml\" (Kubernetes "
	                               "manifests, as tools/charts renders them)"});
	n = engine_flags(tab, n, c, st);
	n = help_flag(tab, n, st, "help for client");
	return n;
}

static size_t status_flags(struct flag *tab, struct cli_cmd *cmd, struct parse_state *st)
{
	struct cfg *c = &cmd->cfg;
	size_t n = 0;

	n = add(tab, n,
	        (struct flag){
	                .name = "url",
	                .type = FLAG_STRING,
	                .dst = &c->url,
	                .usage = "the server's control plane, required: ws://host[:port] "
	                         "or http://host[:port] (the path is replaced by /status); "
	                         "no port means 80"});
	n = token_flags(tab, n, c, st);
	n = add(tab, n,
	        (struct flag){.name = "json",
	                      .type = FLAG_BOOL,
	                      .dst = &cmd->json,
	                      .usage = "print the server's JSON answer as received",
	                      .def = "false"});
	n = add(tab, n,
	        (struct flag){.name = "timeout",
	                      .type = FLAG_DURATION,
	                      .dst = &c->handshake_ms,
	                      .min = 1,
	                      .max = 3600000,
	                      .usage = "give up when the server has not answered within this "
	                               "time",
	                      .def = "10s"});
	n = help_flag(tab, n, st, "help for status");
	return n;
}

/* ---- validation ------------------------------------------------------------------- */

/* Remove leading and trailing white space (newlines included) in place. */
static void trim(char *s)
{
	size_t len = strlen(s), b = 0;

	while (len > 0 && isspace((unsigned char)s[len - 1]))
		s[--len] = 0;
	while (b < len && isspace((unsigned char)s[b]))
		b++;
	memmove(s, s + b, len - b + 1);
}

static int read_token_file(const char *path, char **out, char *err, size_t errlen)
{
	char buf[CLI_TOKEN_MAX + 2];
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd == -1) {
		errf(err, errlen, "cannot read token file \"%s\": %s", path, strerror(errno));
		return -1;
	}
	for (;;) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			errf(err, errlen, "cannot read token file \"%s\": %s", path,
			     strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len == sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[len] = 0;
	if (len > CLI_TOKEN_MAX) {
		errf(err, errlen, "token file \"%s\" is larger than %d bytes", path,
		     CLI_TOKEN_MAX);
		return -1;
	}
	if (strlen(buf) != len) {
		errf(err, errlen, "token file \"%s\" contains a NUL byte", path);
		return -1;
	}
	*out = strdup(buf);
	if (!*out) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

/* Resolve the one token source given into c->token (trimmed, non-empty). */
static int resolve_token(struct flag *tab, size_t n, struct cfg *c, struct parse_state *st,
                         char *err, size_t errlen)
{
	bool literal = flags_find(tab, n, "token")->seen > 0;
	bool file = flags_find(tab, n, "token-file")->seen > 0;
	bool from = flags_find(tab, n, "token-from")->seen > 0;
	bool env = flags_find(tab, n, "token-env")->seen > 0;
	int sources = literal + file + from + env;
	const char *what;

	if (sources == 0) {
		errf(err, errlen,
		     "a token is required: give --token-file (or --token-from), --token-env "
		     "or --token");
		return -1;
	}
	if (sources > 1) {
		errf(err, errlen,
		     "give only one of --token, --token-file, --token-from and --token-env");
		return -1;
	}
	if (file || from) {
		free(c->token);
		c->token = NULL;
		if (read_token_file(st->token_file, &c->token, err, errlen))
			return -1;
	} else if (env) {
		const char *v = getenv(st->token_env);

		if (!v) {
			errf(err, errlen,
			     "environment variable \"%s\" (from --token-env) is not set",
			     st->token_env);
			return -1;
		}
		free(c->token);
		c->token = strdup(v);
		if (!c->token) {
			errf(err, errlen, "out of memory");
			return -1;
		}
	}
	trim(c->token);
	if (!*c->token) {
		if (file || from)
			what = "the token file is empty";
		else if (env)
			what = "the --token-env variable is empty";
		else
			what = "--token is empty";
		errf(err, errlen, "%s: the token must not be empty", what);
		return -1;
	}
	if (strlen(c->token) > CLI_TOKEN_MAX) {
		errf(err, errlen, "the token is longer than %d bytes", CLI_TOKEN_MAX);
		return -1;
	}
	return 0;
}

/* Parse an N/INTERVAL flag value ("5/10s"; "0" or "off": *n = 0). NULL s: unchanged. */
static int parse_rate(const char *s, const char *flag, unsigned *n, int *ms, char *err,
                      size_t errlen)
{
	const char *slash = s ? strchr(s, '/') : NULL;
	char *end = NULL;
	long long d;

	if (!s)
		return 0;
	if (!strcmp(s, "0") || !strcmp(s, "off")) {
		*n = 0;
		return 0;
	}
	errno = 0;
	unsigned long v = slash && isdigit((unsigned char)*s) ? strtoul(s, &end, 10) : 0;
	if (!slash || end != slash || errno || v < 1 || v > 1000000 ||
	    flags_parse_duration_ms(slash + 1, &d) || d < 1) {
		errf(err, errlen,
		     "invalid argument \"%s\" for \"--%s\" flag: want N/INTERVAL (e.g. "
		     "10/60s, N from 1 to 1000000) or 0 (off)",
		     s, flag);
		return -1;
	}
	*n = (unsigned)v;
	*ms = (int)d;
	return 0;
}

static int resolve_log_level(struct cfg *c, struct parse_state *st, char *err, size_t errlen)
{
	int lvl = log_level_parse(st->log_level);

	const char *dp = st->data_path ? st->data_path : "auto";
	if (strcmp(dp, "auto") == 0) {
		c->data_path = CFG_DP_AUTO;
	} else if (strcmp(dp, "copy") == 0) {
		c->data_path = CFG_DP_COPY;
	} else if (strcmp(dp, "forward") == 0) {
		c->data_path = CFG_DP_FORWARD;
	} else if (strcmp(dp, "splice") == 0) {
		c->data_path = CFG_DP_SPLICE;
	} else {
		errf(err, errlen,
		     "invalid argument \"%s\" for \"--data-path\" flag: use auto, forward, "
		     "copy or splice",
		     dp);
		return -1;
	}
	const char *sm = st->sockmap ? st->sockmap : "off";
	if (strcmp(sm, "off") == 0) {
		c->sockmap = CFG_SM_OFF;
	} else if (strcmp(sm, "auto") == 0) {
		c->sockmap = CFG_SM_AUTO;
	} else if (strcmp(sm, "on") == 0) {
		c->sockmap = CFG_SM_ON;
	} else {
		errf(err, errlen,
		     "invalid argument \"%s\" for \"--sockmap\" flag: use off, auto or on", sm);
		return -1;
	}
	if (lvl < 0) {
		errf(err, errlen,
		     "invalid argument \"%s\" for \"--log-level\" flag: use debug, info, warn "
		     "or error",
		     st->log_level);
		return -1;
	}
	c->log_level = lvl;
	if (parse_rate(st->log_rate, "log-rate", &c->log_rate_burst, &c->log_rate_ms, err,
	               errlen) ||
	    parse_rate(st->auth_fail, "auth-fail-limit", &c->auth_fail_max, &c->auth_fail_ms,
	               err, errlen))
		return -1;
	if (c->log_file && !*c->log_file) {
		free(c->log_file);
		c->log_file = NULL;
	}
	return 0;
}

/* Normalise an IP address flag in place ("[::1]" -> "::1", "127.0.0.1:" -> "127.0.0.1")
 * and check it is an IPv4 or IPv6 address. Empty stays empty when allow_empty. */
static int check_ip_flag(char *addr, const char *flag, bool allow_empty, char *err,
                         size_t errlen)
{
	char orig[INET6_ADDRSTRLEN + 8];
	unsigned char bin[sizeof(struct in6_addr)];
	size_t len = strlen(addr);
	const char *colon = strchr(addr, ':');

	snprintf(orig, sizeof(orig), "%s", addr);
	/* A trailing ':' with no port: "host:" as Go's net.Listen would be given it. */
	if (len >= 2 && addr[0] == '[' && addr[len - 1] == ':' && addr[len - 2] == ']')
		addr[--len] = 0;
	else if (len >= 1 && colon == addr + len - 1)
		addr[--len] = 0;
	if (len >= 2 && addr[0] == '[' && addr[len - 1] == ']') {
		memmove(addr, addr + 1, len - 2);
		len -= 2;
		addr[len] = 0;
	}
	if (len == 0 && allow_empty)
		return 0;
	if (inet_pton(AF_INET, addr, bin) != 1 && inet_pton(AF_INET6, addr, bin) != 1) {
		errf(err, errlen,
		     "invalid argument \"%s\" for \"--%s\" flag: not an IP address", orig,
		     flag);
		return -1;
	}
	return 0;
}

static bool valid_cidr(const char *s)
{
	char buf[INET6_ADDRSTRLEN + 8];
	unsigned char bin[sizeof(struct in6_addr)];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	int maxbits;

	if (alen == 0 || alen >= sizeof(buf))
		return false;
	memcpy(buf, s, alen);
	buf[alen] = 0;
	if (inet_pton(AF_INET, buf, bin) == 1)
		maxbits = 32;
	else if (inet_pton(AF_INET6, buf, bin) == 1)
		maxbits = 128;
	else
		return false;
	if (slash) {
		const char *p = slash + 1;
		int bits = 0;

		if (!*p || strlen(p) > 3)
			return false;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return false;
			bits = bits * 10 + (*p - '0');
		}
		if (bits > maxbits)
			return false;
	}
	return true;
}

static int check_proxy_protocol(const char *v, const char *flag, char *err, size_t errlen)
{
	if (!strcmp(v, "") || !strcmp(v, "v1") || !strcmp(v, "v2"))
		return 0;
	errf(err, errlen, "invalid argument \"%s\" for \"--%s\" flag: use v1, v2 or \"\"", v,
	     flag);
	return -1;
}

/* --generate takes "systemd" or "k8s_yaml" (server and client alike). */
static int check_generate(const struct cli_cmd *cmd, char *err, size_t errlen)
{
	if (cmd->generate && strcmp(cmd->generate, "systemd") &&
	    strcmp(cmd->generate, "k8s_yaml")) {
		errf(err, errlen,
		     "invalid argument \"%s\" for \"--generate\" flag: \"systemd\" or "
		     "\"k8s_yaml\"",
		     cmd->generate);
		return -1;
	}
	return 0;
}

static int validate_server(struct cli_cmd *cmd, struct parse_state *st, char *err,
                           size_t errlen)
{
	struct cfg *c = &cmd->cfg;

	if (check_ip_flag(c->control_addr, "control-addr", false, err, errlen))
		return -1;
	if (c->data_addr && check_ip_flag(c->data_addr, "data-addr", true, err, errlen))
		return -1;
	if (check_proxy_protocol(c->proxy_protocol, "proxy-protocol", err, errlen) ||
	    check_proxy_protocol(c->lb_proxy_protocol, "lb-proxy-protocol", err, errlen))
		return -1;
	for (size_t i = 0; i < c->n_allow_ips; i++) {
		if (!valid_cidr(c->allow_ips[i])) {
			errf(err, errlen,
			     "invalid argument \"%s\" for \"--allow-ips\" flag: not an IP "
			     "address or CIDR range",
			     c->allow_ips[i]);
			return -1;
		}
	}
	for (size_t i = 0; i < st->n_allow_ports; i++) {
		const char *why = cfg_parse_allow_ports(c, st->allow_ports[i]);
		if (why) {
			errf(err, errlen,
			     "invalid argument \"%s\" for \"--allow-ports\" flag: %s",
			     st->allow_ports[i], why);
			return -1;
		}
	}
	if (c->tls_cert && !*c->tls_cert) {
		free(c->tls_cert);
		c->tls_cert = NULL;
	}
	if (c->tls_key && !*c->tls_key) {
		free(c->tls_key);
		c->tls_key = NULL;
	}
	if (!c->tls_cert != !c->tls_key) {
		errf(err, errlen, "--tls-cert and --tls-key must be given together");
		return -1;
	}
	if (check_generate(cmd, err, errlen))
		return -1;
	c->max_conns = (uint32_t)st->max_conns;
	return 0;
}

static int validate_client(struct cli_cmd *cmd, char *err, size_t errlen)
{
	if (check_generate(cmd, err, errlen))
		return -1;
	struct cfg *c = &cmd->cfg;
	char *url = c->url;
	const char *why;

	if (!url || !*url) {
		errf(err, errlen,
		     "--url is required, e.g. --url=wss://exit.example.com/connect or "
		     "--url=ws://192.0.2.10:8123");
		return -1;
	}
	c->url = NULL; /* cfg_parse_url sets it again */
	why = cfg_parse_url(c, url);
	if (why) {
		errf(err, errlen, "invalid argument \"%s\" for \"--url\" flag: %s", url, why);
		c->url = url;
		return -1;
	}
	free(url);
	if (!c->upstream || !*c->upstream) {
		errf(err, errlen, "--upstream must not be empty");
		return -1;
	}
	if (c->nports == 0) {
		errf(err, errlen,
		     "no ports to expose: give --ports (e.g. --ports=9090 or --ports=80,443) "
		     "or --port/-p");
		return -1;
	}
	if (cmd->cfg.local_addr &&
	    check_ip_flag(cmd->cfg.local_addr, "local-addr", false, err, errlen))
		return -1;
	return 0;
}

static int validate_status(struct cli_cmd *cmd, char *err, size_t errlen)
{
	struct cfg *c = &cmd->cfg;
	char *url = c->url, *ws = NULL;
	const char *why;

	if (!url || !*url) {
		errf(err, errlen, "--url is required, e.g. --url=ws://192.0.2.10:8123");
		return -1;
	}
	/* The status endpoint is plain HTTP: accept http(s):// as well as ws(s)://. */
	if (!strncasecmp(url, "http://", 7)) {
		if (asprintf(&ws, "ws://%s", url + 7) == -1)
			ws = NULL;
	} else if (!strncasecmp(url, "https://", 8)) {
		if (asprintf(&ws, "wss://%s", url + 8) == -1)
			ws = NULL;
	} else {
		ws = strdup(url);
	}
	if (!ws) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	c->url = NULL;
	why = cfg_parse_url(c, ws);
	free(ws);
	if (why) {
		errf(err, errlen, "invalid argument \"%s\" for \"--url\" flag: %s", url,
		     strstr(why, "ws://") ? "the URL must start with ws://, wss://, http:// or "
		                            "https://"
		                          : why);
		c->url = url;
		return -1;
	}
	free(url);
	return 0;
}

/* ---- commands --------------------------------------------------------------------- */

static const char *prog_name(const char *argv0)
{
	const char *base;

	if (!argv0)
		return "ringlet";
	base = strrchr(argv0, '/');
	base = base ? base + 1 : argv0;
	return strcmp(base, "inlets-pro") ? "ringlet" : "inlets-pro";
}

static const char *topic_path(enum cli_topic t)
{
	switch (t) {
	case CLI_TOPIC_ROOT:
		return "";
	case CLI_TOPIC_TCP:
		return " tcp";
	case CLI_TOPIC_SERVER:
		return " tcp server";
	case CLI_TOPIC_CLIENT:
		return " tcp client";
	case CLI_TOPIC_STATUS:
		return " status";
	case CLI_TOPIC_VERSION:
		return " version";
	case CLI_TOPIC_HELP:
		return " help";
	}
	return "";
}

/* Map command words to a topic: "server", "tcp server", "status" ... -1 if unknown. */
static int topic_of(int nwords, char **words)
{
	if (nwords == 0)
		return CLI_TOPIC_ROOT;
	if (!strcmp(words[0], "tcp")) {
		if (nwords == 1)
			return CLI_TOPIC_TCP;
		return nwords == 2 ? topic_of(1, words + 1) : -1;
	}
	if (nwords != 1)
		return -1;
	if (!strcmp(words[0], "server"))
		return CLI_TOPIC_SERVER;
	if (!strcmp(words[0], "client"))
		return CLI_TOPIC_CLIENT;
	if (!strcmp(words[0], "status"))
		return CLI_TOPIC_STATUS;
	if (!strcmp(words[0], "version"))
		return CLI_TOPIC_VERSION;
	if (!strcmp(words[0], "help"))
		return CLI_TOPIC_HELP;
	return -1;
}

static size_t build_flags(struct flag *tab, enum cli_topic t, struct cli_cmd *cmd,
                          struct parse_state *st)
{
	switch (t) {
	case CLI_TOPIC_SERVER:
		return server_flags(tab, cmd, st);
	case CLI_TOPIC_CLIENT:
		return client_flags(tab, cmd, st);
	case CLI_TOPIC_STATUS:
		return status_flags(tab, cmd, st);
	case CLI_TOPIC_ROOT:
		return help_flag(tab, 0, st, "help for this command");
	case CLI_TOPIC_TCP:
		return help_flag(tab, 0, st, "help for tcp");
	case CLI_TOPIC_VERSION:
		return help_flag(tab, 0, st, "help for version");
	case CLI_TOPIC_HELP:
		return help_flag(tab, 0, st, "help for help");
	}
	return 0;
}

static void state_free(struct parse_state *st)
{
	free(st->token_file);
	free(st->token_env);
	free(st->log_level);
	free(st->data_path);
	free(st->sockmap);
	free(st->log_rate);
	free(st->auth_fail);
	free(st->ignored);
	for (size_t i = 0; i < st->n_allow_ports; i++)
		free(st->allow_ports[i]);
	free(st->allow_ports);
	memset(st, 0, sizeof(*st));
}

/* Parse the flags of a server, client or status command (args after the command words). */
static enum cli_kind parse_command(enum cli_topic t, int nargs, char **args,
                                   struct cli_cmd *out, char *err, size_t errlen)
{
	struct flag tab[CLI_MAX_FLAGS];
	struct parse_state st = {0};
	char **pos = NULL;
	int npos = 0, rc = -1;
	size_t n;

	cfg_defaults(&out->cfg, t == CLI_TOPIC_SERVER ? CFG_SERVER : CFG_CLIENT);
	st.log_level = strdup("info");
	st.max_conns = (int)out->cfg.max_conns;
	if (t == CLI_TOPIC_STATUS)
		out->cfg.handshake_ms = 10000;
	pos = calloc((size_t)nargs + 1, sizeof(*pos));
	if (!st.log_level || !pos) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	n = build_flags(tab, t, out, &st);
	if (flags_parse(tab, n, nargs, args, pos, &npos, err, errlen))
		goto out;
	if (st.help) {
		out->kind = CLI_HELP;
		rc = 0;
		goto out;
	}
	if (npos > 0) {
		if (!strcmp(pos[0], "true") || !strcmp(pos[0], "false"))
			errf(err, errlen,
			     "unexpected argument \"%s\": a boolean flag takes its value after "
			     "'=', e.g. --auto-tls=%s",
			     pos[0], pos[0]);
		else
			errf(err, errlen, "unexpected argument \"%s\"", pos[0]);
		goto out;
	}
	if (resolve_token(tab, n, &out->cfg, &st, err, errlen))
		goto out;
	if (t == CLI_TOPIC_STATUS) {
		if (validate_status(out, err, errlen))
			goto out;
		out->kind = CLI_STATUS;
		rc = 0;
		goto out;
	}
	if (resolve_log_level(&out->cfg, &st, err, errlen))
		goto out;
	if (t == CLI_TOPIC_SERVER) {
		if (validate_server(out, &st, err, errlen))
			goto out;
		out->kind = CLI_SERVER;
	} else {
		if (validate_client(out, err, errlen))
			goto out;
		out->kind = CLI_CLIENT;
	}
	rc = 0;
out:
	free(pos);
	state_free(&st);
	if (rc)
		out->kind = CLI_ERROR;
	return out->kind;
}

/* A command that takes no flags but --help, and no arguments. */
static enum cli_kind parse_simple(enum cli_topic t, enum cli_kind kind, int nargs, char **args,
                                  struct cli_cmd *out, char *err, size_t errlen)
{
	struct flag tab[1];
	struct parse_state st = {0};
	char **pos = calloc((size_t)nargs + 1, sizeof(*pos));
	int npos = 0;
	size_t n = build_flags(tab, t, out, &st);

	out->kind = CLI_ERROR;
	if (!pos) {
		errf(err, errlen, "out of memory");
	} else if (!flags_parse(tab, n, nargs, args, pos, &npos, err, errlen)) {
		if (st.help)
			out->kind = CLI_HELP;
		else if (npos)
			errf(err, errlen, "unexpected argument \"%s\"", pos[0]);
		else
			out->kind = kind;
	}
	free(pos);
	return out->kind;
}

static bool is_help_arg(const char *a)
{
	return !strcmp(a, "--help") || !strcmp(a, "-h");
}

enum cli_kind cli_parse(int argc, char **argv, struct cli_cmd *out, char *err, size_t errlen)
{
	int i = 1;
	enum cli_topic t;

	memset(out, 0, sizeof(*out));
	out->prog = prog_name(argc > 0 ? argv[0] : NULL);
	out->topic = CLI_TOPIC_ROOT;
	out->kind = CLI_ERROR;
	if (err && errlen)
		err[0] = 0;

	if (argc <= 1 || is_help_arg(argv[1])) {
		out->kind = CLI_HELP;
		return CLI_HELP;
	}
	if (!strcmp(argv[1], "--version")) {
		out->kind = CLI_VERSION;
		return CLI_VERSION;
	}
	if (!strcmp(argv[1], "help")) {
		int topic = topic_of(argc - 2, argv + 2);

		out->topic = CLI_TOPIC_HELP;
		if (topic < 0) {
			errf(err, errlen, "unknown help topic \"%s\"", argv[argc - 1]);
			return CLI_ERROR;
		}
		out->topic = (enum cli_topic)topic;
		out->kind = CLI_HELP;
		return CLI_HELP;
	}
	if (!strcmp(argv[1], "tcp")) {
		out->topic = CLI_TOPIC_TCP;
		i = 2;
		if (argc <= 2 || is_help_arg(argv[2])) {
			out->kind = CLI_HELP;
			return CLI_HELP;
		}
		if (strcmp(argv[2], "server") && strcmp(argv[2], "client")) {
			if (argv[2][0] == '-')
				errf(err, errlen,
				     "unknown flag: %s (the command comes first: "
				     "tcp server|client [flags])",
				     argv[2]);
			else
				errf(err, errlen, "unknown command \"%s\" for \"%s tcp\"",
				     argv[2], out->prog);
			return CLI_ERROR;
		}
	}
	if (!strcmp(argv[i], "server"))
		t = CLI_TOPIC_SERVER;
	else if (!strcmp(argv[i], "client"))
		t = CLI_TOPIC_CLIENT;
	else if (!strcmp(argv[i], "status"))
		t = CLI_TOPIC_STATUS;
	else if (!strcmp(argv[i], "version"))
		t = CLI_TOPIC_VERSION;
	else if (argv[i][0] == '-') {
		errf(err, errlen, "unknown flag: %s", argv[i]);
		return CLI_ERROR;
	} else {
		if (!strcmp(argv[i], "http"))
			errf(err, errlen,
			     "unknown command \"http\" for \"%s\": ringlet implements the TCP "
			     "tunnel only (tcp server, tcp client)",
			     out->prog);
		else
			errf(err, errlen, "unknown command \"%s\" for \"%s\"", argv[i],
			     out->prog);
		return CLI_ERROR;
	}
	out->topic = t;
	if (t == CLI_TOPIC_VERSION)
		return parse_simple(t, CLI_VERSION, argc - i - 1, argv + i + 1, out, err,
		                    errlen);
	return parse_command(t, argc - i - 1, argv + i + 1, out, err, errlen);
}

void cli_cmd_free(struct cli_cmd *cmd)
{
	if (!cmd)
		return;
	cfg_free(&cmd->cfg);
	free(cmd->generate);
	free(cmd->cfg.local_addr);
	cmd->generate = NULL;
	cmd->cfg.local_addr = NULL;
}

const char *cli_check_tls_supported(const struct cli_cmd *cmd)
{
	/* The server and the client speak TLS; `status` still talks plain HTTP only. */
	if (cmd->kind == CLI_STATUS && cmd->cfg.url_tls)
		return "`status` does not speak TLS yet: query the server over ws:// "
		       "(http://), "
		       "e.g. from inside the cluster or through a port-forward";
	return NULL;
}

/* ---- help ------------------------------------------------------------------------- */

static void print_flag_section(FILE *out, enum cli_topic t)
{
	struct flag tab[CLI_MAX_FLAGS];
	struct cli_cmd dummy = {0};
	struct parse_state st = {0};
	size_t n = build_flags(tab, t, &dummy, &st);

	fputs("\nFlags:\n", out);
	flags_print_help(out, tab, n, CLI_HELP_WIDTH);
}

void cli_print_help(FILE *out, const char *prog, enum cli_topic topic)
{
	const char *p = prog ? prog : "ringlet";

	switch (topic) {
	case CLI_TOPIC_ROOT:
	case CLI_TOPIC_HELP:
		fprintf(out,
		        "ringlet is an io_uring tunnel engine and a drop-in replacement for "
		        "both "
		        "ends of an\n"
		        "inlets PRO TCP tunnel: the server (exit node) exposes ports on its "
		        "data "
		        "plane, the\n"
		        "client (next to the private service) carries each connection to an "
		        "upstream.\n"
		        "Invoked through a link named inlets-pro, it behaves identically.\n\n"
		        "Usage:\n"
		        "  %s [command]\n\n"
		        "Available Commands:\n"
		        "  tcp server   Run the tunnel server (exit node); also \"%s server\"\n"
		        "  tcp client   Run the tunnel client; also \"%s client\"\n"
		        "  status       Show a server's info and its connected clients\n"
		        "  version      Print the version\n"
		        "  help         Help about any command\n\n"
		        "Flags:\n"
		        "  -h, --help      help for %s\n"
		        "      --version   print the version\n\n"
		        "Use \"%s [command] --help\" for more information about a command.\n",
		        p, p, p, p, p);
		return;
	case CLI_TOPIC_TCP:
		fprintf(out,
		        "Run either end of a TCP tunnel.\n\n"
		        "Usage:\n"
		        "  %s tcp [command]\n\n"
		        "Available Commands:\n"
		        "  server   Run the tunnel server (exit node)\n"
		        "  client   Run the tunnel client\n\n"
		        "Flags:\n"
		        "  -h, --help   help for tcp\n\n"
		        "Use \"%s tcp [command] --help\" for more information about a "
		        "command.\n",
		        p, p);
		return;
	case CLI_TOPIC_SERVER:
		fprintf(out,
		        "Run the tunnel server (exit node). Clients connect to the control "
		        "port\n"
		        "(/connect, authenticated with the token); the server then listens on "
		        "the ports\n"
		        "each client exposes, on --data-addr, and carries every accepted "
		        "connection to a\n"
		        "client, which dials its upstream. Several clients exposing the same "
		        "ports share\n"
		        "the connections. The control port also serves /status and /metrics "
		        "(with the\n"
		        "token), /healthz and /.well-known/ca.crt.\n\n"
		        "Usage:\n"
		        "  %s tcp server [flags]\n"
		        "  %s server [flags]\n\n"
		        "Examples:\n"
		        "  # Behind an ingress that terminates TLS (as the Helm chart runs "
		        "it):\n"
		        "  %s tcp server --auto-tls=false --token-from=/etc/inlets/token\n\n"
		        "  # Data plane on loopback only, token from the environment:\n"
		        "  %s tcp server --auto-tls=false --data-addr=127.0.0.1 "
		        "--token-env=TOKEN\n\n"
		        "  # TLS on the control port itself (a CA and certificate are "
		        "generated):\n"
		        "  %s tcp server --auto-tls-san=exit.example.com "
		        "--token-file=./token.txt\n",
		        p, p, p, p, p);
		print_flag_section(out, topic);
		fputs("\nSignals: SIGTERM/SIGINT drain and stop; SIGHUP reopens --log-file.\n",
		      out);
		return;
	case CLI_TOPIC_CLIENT:
		fprintf(out,
		        "Run the tunnel client. It connects to the server at --url, asks it to "
		        "expose\n"
		        "--ports on its data plane, and dials --upstream on the same port for "
		        "each\n"
		        "connection the server carries to it. It reconnects forever, with "
		        "backoff, when\n"
		        "the server or the ingress goes away.\n\n"
		        "Usage:\n"
		        "  %s tcp client [flags]\n"
		        "  %s client [flags]\n\n"
		        "Examples:\n"
		        "  # Expose Prometheus (prometheus:9090) on the server's port 9090:\n"
		        "  %s tcp client --url=ws://exit.example.com:8123 "
		        "--upstream=prometheus \\\n"
		        "      --ports=9090 --auto-tls=false --token-file=./token.txt\n\n"
		        "  # Several ports from the local machine:\n"
		        "  %s tcp client --url=ws://192.0.2.10:8123 --ports 80,443 -p 2222 "
		        "--token-env=TOKEN\n\n"
		        "  # Through an ingress with a public certificate (as the seed's "
		        "chart):\n"
		        "  %s tcp client --url=wss://orion-aws.prometheus.example.com/connect "
		        "\\\n"
		        "      --upstream=prometheus --ports=9090 --auto-tls=false "
		        "--token-file=./token.txt\n\n"
		        "  # To a server with auto-TLS (fetches and pins its CA):\n"
		        "  %s tcp client --url=wss://exit.example.com:8123 --ports=9090 "
		        "--token-file=./token.txt\n",
		        p, p, p, p, p, p);
		print_flag_section(out, topic);
		fputs("\nSignals: SIGTERM/SIGINT stop; SIGHUP reopens --log-file.\n", out);
		return;
	case CLI_TOPIC_STATUS:
		fprintf(out,
		        "Show a server's version, start time and host name, and the clients "
		        "connected to\n"
		        "it with the ports they expose (GET /status on the control port, "
		        "with the token).\n\n"
		        "Usage:\n"
		        "  %s status [flags]\n\n"
		        "Examples:\n"
		        "  %s status --url=ws://192.0.2.10:8123 --token-file=./token.txt\n"
		        "  %s status --url=http://127.0.0.1:8123 --token-env=TOKEN --json\n",
		        p, p, p);
		print_flag_section(out, topic);
		fputs("\nExit status: 0 on success, 1 when the server cannot be reached or "
		      "refuses the\nrequest, 2 on a usage error.\n",
		      out);
		return;
	case CLI_TOPIC_VERSION:
		fprintf(out,
		        "Print ringlet's version and git commit, and the inlets PRO commands "
		        "it "
		        "replaces.\n\n"
		        "Usage:\n"
		        "  %s version\n\n"
		        "Flags:\n"
		        "  -h, --help   help for version\n",
		        p);
		return;
	}
}

void cli_print_version(FILE *out)
{
	fprintf(out, "ringlet %s (%s)\ncompatible with: inlets-pro tcp\n", ringlet_version,
	        ringlet_sha);
}

/* ---- dispatch --------------------------------------------------------------------- */

static int usage_error(const struct cli_cmd *cmd, const char *msg)
{
	fprintf(stderr, "Error: %s\nRun '%s%s --help' for usage.\n", msg, cmd->prog,
	        topic_path(cmd->topic == CLI_TOPIC_HELP ? CLI_TOPIC_ROOT : cmd->topic));
	return 2;
}

int cli_main(int argc, char **argv)
{
	struct cli_cmd cmd;
	char err[1024];
	const char *why;
	int rc;

	switch (cli_parse(argc, argv, &cmd, err, sizeof(err))) {
	case CLI_ERROR:
		rc = usage_error(&cmd, err);
		break;
	case CLI_HELP:
		cli_print_help(stdout, cmd.prog, cmd.topic);
		rc = fflush(stdout) ? 1 : 0;
		break;
	case CLI_VERSION:
		cli_print_version(stdout);
		rc = fflush(stdout) ? 1 : 0;
		break;
	case CLI_STATUS:
		if ((why = cli_check_tls_supported(&cmd))) {
			rc = usage_error(&cmd, why);
			break;
		}
		rc = ringlet_status_run(&cmd.cfg, cmd.json);
		break;
	case CLI_SERVER:
	case CLI_CLIENT:
		if (cmd.generate) {
			rc = (strcmp(cmd.generate, "k8s_yaml") == 0
			              ? k8s_yaml(stdout, &cmd, argc, argv)
			              : systemd_unit(stdout, &cmd, argc, argv)) == 0 &&
			                     fflush(stdout) == 0
			             ? 0
			             : 1;
			break;
		}
		if ((why = cli_check_tls_supported(&cmd))) {
			rc = usage_error(&cmd, why);
			break;
		}
		rc = log_open((enum log_level)cmd.cfg.log_level, cmd.cfg.log_file);
		if (rc) {
			snprintf(err, sizeof(err), "cannot open log file \"%s\": %s",
			         cmd.cfg.log_file, strerror(-rc));
			rc = usage_error(&cmd, err);
			break;
		}
		log_rate_set(cmd.cfg.log_rate_burst, (unsigned)cmd.cfg.log_rate_ms);
		rc = cmd.kind == CLI_SERVER ? ringlet_server_run(&cmd.cfg)
		                            : ringlet_client_run(&cmd.cfg);
		log_rate_flush(true); /* what the last intervals left out */
		break;
	default:
		rc = 2;
	}
	cli_cmd_free(&cmd);
	return rc;
}
