/* engine/svc/metrics.c — /metrics (Prometheus text format 0.0.4) and /status (JSON).
 *
 * Each shard counts into its own struct shard_stats with relaxed atomics; a scrape sums
 * the shards' counters without stopping them, so a scrape is a consistent-enough
 * snapshot (each counter is exact; counters are not taken at one instant). */
#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ebpf/loader.h"
#include "engine/loop/engine.h"
#include "engine/ringlet.h"
#include "engine/roles/registry.h"
#include "engine/roles/role.h"
#include "engine/svc/httpd.h"
#include "engine/svc/metrics.h"
#include "engine/tenant.h"

const double stats_rtt_bounds[STATS_RTT_BUCKETS] = {
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 0 /* +Inf */};

struct sb {
	char *p;
	size_t len, cap;
	bool failed;
};

static void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sb *b, const char *fmt, ...)
{
	if (b->failed)
		return;
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap * 2 + (size_t)n + 1;
		char *np = realloc(b->p, ncap);
		if (!np) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

static bool sb_init(struct sb *b)
{
	b->cap = 8192;
	b->len = 0;
	b->failed = false;
	b->p = malloc(b->cap);
	if (b->p)
		b->p[0] = 0;
	return b->p != NULL;
}

static size_t sb_done(struct sb *b, char **out)
{
	if (b->failed) {
		free(b->p);
		*out = NULL;
		return 0;
	}
	*out = b->p;
	return b->len;
}

/* Sum a field over the shards. */
#define SUM(e, field)                                                                          \
	({                                                                                     \
		uint64_t __sum = 0;                                                            \
		for (int __i = 0; __i < (e)->nshards; __i++)                                   \
			__sum += STAT_GET((e)->shards[__i].stats.field);                       \
		__sum;                                                                         \
	})

static void head(struct sb *b, const char *name, const char *type, const char *help)
{
	sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One unlabelled sample with its HELP and TYPE lines. */
static void scalar(struct sb *b, const char *name, const char *type, const char *help,
                   uint64_t v)
{
	head(b, name, type, help);
	sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* Write s as a Prometheus label value (escape backslash, quote, newline). */
static void label_value(struct sb *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			sb_printf(b, "\\%c", *s);
		else if (*s == '\n')
			sb_printf(b, "\\n");
		else
			sb_printf(b, "%c", *s);
	}
}

static uint64_t process_rss(void)
{
	FILE *f = fopen("/proc/self/statm", "re");
	unsigned long size = 0, rss = 0;
	if (f) {
		if (fscanf(f, "%lu %lu", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static unsigned process_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned n = 0;
	if (!d)
		return 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n > 3 ? n - 3 : 0; /* ".", "..", and the directory's own fd */
}

static const char *const hs_names[HS_MAX] = {
        "unauthorized", "bad_request", "timeout", "version", "connect", "upgrade", "tls"};

/* The labels of port slot `slot` ('port="19001"', and ',tunnel="name"' for a named
 * tunnel's port), or NULL when the slot is not in use. */
static const char *port_label(struct engine *e, int slot, char *buf, size_t cap)
{
	if (e->cfg->mode == CFG_SERVER) {
		/* Shards open ports under the registry's lock (and reloads rename tunnels). */
		struct server *srv = server_of(e);
		pthread_mutex_lock(&srv->reg->mu);
		bool used = srv->reg->ports[slot].used;
		uint16_t port = srv->reg->ports[slot].port;
		const char *tunnel = server_tunnel_name(srv, srv->reg->ports[slot].tunnel);
		if (tunnel)
			snprintf(buf, cap, "port=\"%u\",tunnel=\"%s\"", port, tunnel);
		else
			snprintf(buf, cap, "port=\"%u\"", port);
		pthread_mutex_unlock(&srv->reg->mu);
		if (!used)
			return NULL;
	} else {
		if ((size_t)slot >= e->cfg->nports)
			return NULL;
		snprintf(buf, cap, "port=\"%u\"", e->cfg->ports[slot]);
	}
	return buf;
}

/* --sockmap: whether it is in use, and the steering programs' counters. */
static void sockmap_metrics(struct sb *b, struct engine *e)
{
	uint64_t st[SM_STAT_MAX] = {0};
	if (role_of(e)->sm)
		sockmap_read_stats(role_of(e)->sm, st);
	scalar(b, "ringlet_sockmap_active", "gauge",
	       "1 when local hops are steered through the kernel (--sockmap), else 0.",
	       role_of(e)->sm != NULL);
	scalar(b, "ringlet_sockmap_hops_steered_total", "counter",
	       "Hops (upstream or local data-plane connections) whose end on ringlet's side "
	       "sent "
	       "through the kernel; counted at its first redirected send.",
	       st[SM_STAT_HOPS_STEERED]);
	scalar(b, "ringlet_sockmap_sockets_total", "counter",
	       "Sockets put into the hop map, both ends of each hop.", st[SM_STAT_SOCKETS]);
	scalar(b, "ringlet_sockmap_bytes_total", "counter",
	       "Bytes moved from a sender straight into its local peer's receive queue, both "
	       "ends of every steered hop.",
	       st[SM_STAT_BYTES]);
	scalar(b, "ringlet_sockmap_messages_total", "counter",
	       "Send calls redirected in the kernel (both ends of every steered hop).",
	       st[SM_STAT_MSGS]);
	head(b, "ringlet_sockmap_fallbacks_total", "counter",
	     "Hops that took TCP although --sockmap was asked for, by reason (slow_reader: a "
	     "steered sender moved to TCP when its reader fell 4 MiB behind).");
	static const struct {
		const char *name;
		int stat;
	} reasons[] = {
	        {"not_local", SM_STAT_FB_NOT_LOCAL},     {"no_peer", SM_STAT_FB_NO_PEER},
	        {"map_refused", SM_STAT_FB_INSERT},      {"peer_sent_first", SM_STAT_FB_LATE},
	        {"slow_reader", SM_STAT_FB_SLOW_READER},
	};
	for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		sb_printf(b, "ringlet_sockmap_fallbacks_total{reason=\"%s\"} %llu\n",
		          reasons[i].name, (unsigned long long)st[reasons[i].stat]);
	sb_printf(b, "ringlet_sockmap_fallbacks_total{reason=\"unavailable\"} %d\n",
	          role_of(e)->sm_why[0] != 0);
}

/* inlets PRO's names: the control plane and the data-plane ports. */
static void inlets_metrics(struct sb *b, struct engine *e)
{
	bool server = e->cfg->mode == CFG_SERVER;
	/* inlets PRO's names */
	int connected = role_of(e)->ops->connected(e);
	head(b, "tcp_controlplane_connected_gauge", "gauge",
	     server ? "Tunnel clients connected to this server."
	            : "Tunnel connections of this client that are up.");
	sb_printf(b, "tcp_controlplane_connected_gauge %d\n", connected);

	head(b, "tcp_controlplane_requests_total", "counter",
	     "HTTP requests to the control port, by status code and path.");
	/* Merge the shards' (path, code) tables. */
	struct {
		uint16_t code;
		uint8_t path;
		uint64_t n;
	} reqs[STATS_REQ_SLOTS * CFG_MAX_SHARDS];
	size_t nreq = 0;
	for (int i = 0; i < e->nshards; i++) {
		struct req_stat *r = e->shards[i].stats.req;
		for (int k = 0; k < STATS_REQ_SLOTS; k++) {
			uint64_t n = __atomic_load_n(&r[k].count, __ATOMIC_ACQUIRE);
			if (!n)
				break;
			size_t j = 0;
			while (j < nreq &&
			       (reqs[j].code != r[k].code || reqs[j].path != r[k].path))
				j++;
			if (j == nreq) {
				reqs[j].code = r[k].code;
				reqs[j].path = r[k].path;
				reqs[j].n = 0;
				nreq++;
			}
			reqs[j].n += n;
		}
	}
	for (size_t j = 0; j < nreq; j++)
		sb_printf(b, "tcp_controlplane_requests_total{code=\"%u\",path=\"%s\"} %llu\n",
		          reqs[j].code, httpd_path_names[reqs[j].path],
		          (unsigned long long)reqs[j].n);

	char pl[128];
	head(b, "tcp_dataplane_connections_gauge", "gauge",
	     "Tunnelled connections open now, by port.");
	for (int slot = 0; slot < STATS_PORTS; slot++)
		if (port_label(e, slot, pl, sizeof(pl)))
			sb_printf(b, "tcp_dataplane_connections_gauge{%s} %llu\n", pl,
			          (unsigned long long)SUM(e, port[slot].conns_active));
	head(b, "tcp_dataplane_connections_total", "counter",
	     "Tunnelled connections since start, by port.");
	for (int slot = 0; slot < STATS_PORTS; slot++)
		if (port_label(e, slot, pl, sizeof(pl)))
			sb_printf(b, "tcp_dataplane_connections_total{%s} %llu\n", pl,
			          (unsigned long long)SUM(e, port[slot].conns_total));
}

/* Unlabelled counters that are one shard_stats field summed over the shards. */
struct stat_metric {
	const char *name, *help;
	size_t off; /* offsetof(struct shard_stats, field) */
};

#define STAT_METRIC(n, field, h)                                                               \
	{                                                                                      \
		.name = n, .help = h, .off = offsetof(struct shard_stats, field)               \
	}

static const struct stat_metric data_path_metrics[] = {
        STAT_METRIC("ringlet_payload_bytes_total", bytes_up,
                    "Stream payload bytes read from local sockets into the tunnel (all data "
                    "paths)."),
        STAT_METRIC("ringlet_spliced_bytes_total", bytes_spliced,
                    "Of ringlet_payload_bytes_total, the bytes moved by splice(2) "
                    "(--data-path)."),
        STAT_METRIC("ringlet_tunnel_spliced_bytes_total", bytes_spliced_down,
                    "Stream payload bytes moved from the tunnel's socket to local sockets by "
                    "splice(2), never copied into ringlet (--data-path splice, and auto for "
                    "bulk)."),
        STAT_METRIC("ringlet_forwarded_bytes_total", bytes_forwarded,
                    "Stream payload bytes sent to local sockets straight from where they "
                    "arrived from the tunnel, never copied in ringlet (--data-path auto, "
                    "forward)."),
        STAT_METRIC("ringlet_forward_short_total", forward_short,
                    "Forwards the local socket did not take whole: the rest waited in the "
                    "stream's buffer (a slow reader)."),
        STAT_METRIC("ringlet_splice_switches_total", splice_switches,
                    "Times --data-path auto moved bulk to splice(2): a stream that read a "
                    "whole buffer at once, a lane receiving a large DATA frame."),
        STAT_METRIC("ringlet_splice_urgent_fallbacks_total", splice_fallbacks,
                    "Times splice(2) stopped at TCP urgent data and the bytes were read by "
                    "copy instead (--data-path splice)."),
};

/* Each metric of the table as a counter, its field summed over the shards. */
static void stat_counters(struct sb *b, const struct engine *e, const struct stat_metric *m,
                          size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t sum = 0;
		for (int k = 0; k < e->nshards; k++) {
			const uint64_t *f =
			        (const uint64_t *)((const char *)&e->shards[k].stats +
			                           m[i].off);
			sum += STAT_GET(*f);
		}
		scalar(b, m[i].name, "counter", m[i].help, sum);
	}
}

/* ringlet's own: bytes by port and by client, data paths, tunnels and streams. */
static void traffic_metrics(struct sb *b, struct engine *e)
{
	char pl[128];
	bool server = e->cfg->mode == CFG_SERVER;
	head(b, "ringlet_port_bytes_total", "counter",
	     server ? "Payload bytes received from and sent to data-plane connections, by port."
	            : "Payload bytes received from and sent to upstream connections, by port.");
	for (int slot = 0; slot < STATS_PORTS; slot++) {
		if (!port_label(e, slot, pl, sizeof(pl)))
			continue;
		sb_printf(b, "ringlet_port_bytes_total{%s,direction=\"received\"} %llu\n", pl,
		          (unsigned long long)SUM(e, port[slot].bytes_received));
		sb_printf(b, "ringlet_port_bytes_total{%s,direction=\"sent\"} %llu\n", pl,
		          (unsigned long long)SUM(e, port[slot].bytes_sent));
	}
	if (server) {
		head(b, "ringlet_client_bytes_total", "counter",
		     "Tunnel (WebSocket) bytes received from and sent to each connected "
		     "client.");
		pthread_mutex_lock(&server_of(e)->reg->mu);
		for (int i = 0; i < REG_MAX_SESSIONS; i++) {
			struct reg_session *rs = &server_of(e)->reg->sess[i];
			if (!rs->used)
				continue;
			uint64_t in = 0, outb = 0;
			for (int k = 0; k < REG_MAX_LANES; k++) {
				in += STAT_GET(rs->lanes[k].ctr.bytes_in);
				outb += STAT_GET(rs->lanes[k].ctr.bytes_out);
			}
			for (int d = 0; d < 2; d++) {
				sb_printf(b, "ringlet_client_bytes_total{");
				const char *tn = server_tunnel_name(server_of(e), rs->tunnel);
				if (tn)
					sb_printf(b, "tunnel=\"%s\",", tn);
				sb_printf(b, "client_id=\"");
				label_value(b, rs->client_id);
				sb_printf(b, "\",direction=\"%s\"} %llu\n",
				          d ? "sent" : "received",
				          (unsigned long long)(d ? outb : in));
			}
		}
		pthread_mutex_unlock(&server_of(e)->reg->mu);
	}
	stat_counters(b, e, data_path_metrics,
	              sizeof(data_path_metrics) / sizeof(data_path_metrics[0]));
	sockmap_metrics(b, e);
	scalar(b, "ringlet_tunnels_total", "counter",
	       "Tunnel (WebSocket) connections made or accepted since start, all lanes.",
	       SUM(e, tunnels_total));
	scalar(b, "ringlet_streams_active", "gauge", "Streams open now.",
	       SUM(e, streams_active));
	scalar(b, "ringlet_streams_total", "counter", "Streams opened since start.",
	       SUM(e, streams_total));
}

/* --tunnels: the named tunnels and their file's reloads. */
static void tunnels_metrics(struct sb *b, struct engine *e)
{
	struct tunnels_stats ts;
	if (e->cfg->mode != CFG_SERVER || !server_tunnels_stats(server_of(e), &ts))
		return;
	head(b, "ringlet_tunnels", "gauge",
	     "Named tunnels (--tunnels) in the loaded file, and those with a client "
	     "connected.");
	sb_printf(b, "ringlet_tunnels{state=\"configured\"} %zu\n", ts.configured);
	sb_printf(b, "ringlet_tunnels{state=\"connected\"} %zu\n", ts.connected);
	sb_printf(b, "ringlet_tunnels{state=\"failed\"} %zu\n", ts.failed);
	head(b, "ringlet_config_reloads_total", "counter",
	     "Reloads of the tunnels file (SIGHUP or a change seen), by result; a failed one "
	     "changes nothing.");
	sb_printf(b, "ringlet_config_reloads_total{result=\"ok\"} %llu\n",
	          (unsigned long long)ts.reloads_ok);
	sb_printf(b, "ringlet_config_reloads_total{result=\"failed\"} %llu\n",
	          (unsigned long long)ts.reloads_failed);
	head(b, "ringlet_tunnels_file_info", "gauge",
	     "The loaded tunnels file's SHA-256 (always 1).");
	sb_printf(b, "ringlet_tunnels_file_info{sha256=\"%s\"} 1\n", ts.sha256);
	head(b, "ringlet_tunnels_file_loaded_timestamp_seconds", "gauge",
	     "When the running tunnels file was loaded (start or last applied reload), Unix "
	     "time.");
	sb_printf(b, "ringlet_tunnels_file_loaded_timestamp_seconds %lld\n",
	          (long long)ts.loaded_unix);
}

/* Resets, round trips, handshake failures, and the client's reconnects. */
static void health_metrics(struct sb *b, struct engine *e)
{
	bool server = e->cfg->mode == CFG_SERVER;
	head(b, "ringlet_stream_resets_total", "counter",
	     "Stream resets sent to and received from the peer, by reason.");
	for (int r = 0; r < STATS_RST_REASONS; r++) {
		uint64_t sent = SUM(e, rst_sent[r]), recv = SUM(e, rst_received[r]);
		const char *name = tun_rst_reason_name((uint16_t)r);
		if (sent || (r > 0 && r <= TUN_RST_TIMEOUT))
			sb_printf(
			        b,
			        "ringlet_stream_resets_total{reason=\"%s\",direction=\"sent\"} "
			        "%llu\n",
			        name, (unsigned long long)sent);
		if (recv || (r > 0 && r <= TUN_RST_TIMEOUT))
			sb_printf(b,
			          "ringlet_stream_resets_total{reason=\"%s\",direction="
			          "\"received\"} "
			          "%llu\n",
			          name, (unsigned long long)recv);
	}
	head(b, "ringlet_tunnel_rtt_seconds", "histogram",
	     "Round-trip time of tunnel pings (PING/PONG).");
	uint64_t cum = 0;
	for (int k = 0; k < STATS_RTT_BUCKETS; k++) {
		cum += SUM(e, rtt_bucket[k]);
		if (k < STATS_RTT_BUCKETS - 1)
			sb_printf(b, "ringlet_tunnel_rtt_seconds_bucket{le=\"%g\"} %llu\n",
			          stats_rtt_bounds[k], (unsigned long long)cum);
		else
			sb_printf(b, "ringlet_tunnel_rtt_seconds_bucket{le=\"+Inf\"} %llu\n",
			          (unsigned long long)cum);
	}
	sb_printf(b, "ringlet_tunnel_rtt_seconds_sum %.9f\n", (double)SUM(e, rtt_sum_ns) / 1e9);
	sb_printf(b, "ringlet_tunnel_rtt_seconds_count %llu\n",
	          (unsigned long long)SUM(e, rtt_count));
	head(b, "ringlet_handshake_failures_total", "counter",
	     "Tunnel handshakes that failed, by reason.");
	for (int k = 0; k < HS_MAX; k++)
		sb_printf(b, "ringlet_handshake_failures_total{reason=\"%s\"} %llu\n",
		          hs_names[k], (unsigned long long)SUM(e, hs_fail[k]));
	if (!server) {
		scalar(b, "ringlet_reconnects_total", "counter",
		       "Connection attempts to the server after the first.",
		       SUM(e, reconnects));
	}
	scalar(b, "ringlet_auth_failures_total", "counter",
	       "Control-port requests with a wrong or missing token (answered 401).",
	       SUM(e, auth_failures));
	if (server)
		scalar(b, "ringlet_auth_refused_total", "counter",
		       "Control-port requests refused without checking the token (429): their "
		       "address failed to authenticate too often (--auth-fail-limit).",
		       SUM(e, auth_refused));
	scalar(b, "ringlet_upstream_dial_failures_total", "counter",
	       "Upstream connections that could not be made (client).", SUM(e, dial_failures));
	scalar(b, "ringlet_dataplane_refused_total", "counter",
	       "Data-plane connections closed because no client offered the port.",
	       SUM(e, dataplane_refused));
	scalar(b, "ringlet_accept_paused_total", "counter",
	       "Times a listener paused accepting for lack of descriptors or memory (it "
	       "resumes "
	       "by itself, after a pause that doubles while it recurs).",
	       SUM(e, accept_paused));
	scalar(b, "ringlet_control_evicted_total", "counter",
	       "Pending control connections (no complete request or TLS handshake yet) closed "
	       "to make room for a new one: their source held its share, or the shard's "
	       "pending slots or the descriptors were used up.",
	       SUM(e, control_evicted));
	scalar(b, "ringlet_dataplane_denied_total", "counter",
	       "Data-plane connections refused because their address is not in --allow-ips.",
	       SUM(e, dataplane_denied));
	scalar(b, "ringlet_bufring_exhausted_total", "counter",
	       "Receives that found a provided-buffer ring empty (back-pressure).",
	       SUM(e, bufring_empty));
}

/* The shards' loops and the process. */
static void process_metrics(struct sb *b, struct engine *e)
{
	bool server = e->cfg->mode == CFG_SERVER;
	head(b, "ringlet_shard_loop_iterations_total", "counter",
	     "Event-loop turns, by shard.");
	for (int i = 0; i < e->nshards; i++)
		sb_printf(b, "ringlet_shard_loop_iterations_total{shard=\"%d\"} %llu\n", i,
		          (unsigned long long)STAT_GET(e->shards[i].stats.loops));
	head(b, "ringlet_shard_completions_total", "counter",
	     "io_uring completions handled, by shard.");
	for (int i = 0; i < e->nshards; i++)
		sb_printf(b, "ringlet_shard_completions_total{shard=\"%d\"} %llu\n", i,
		          (unsigned long long)STAT_GET(e->shards[i].stats.completions));
	head(b, "ringlet_shard_busy_seconds_total", "counter",
	     "Time spent handling completions, by shard.");
	for (int i = 0; i < e->nshards; i++)
		sb_printf(b, "ringlet_shard_busy_seconds_total{shard=\"%d\"} %.6f\n", i,
		          (double)STAT_GET(e->shards[i].stats.busy_ns) / 1e9);
	scalar(b, "ringlet_process_resident_memory_bytes", "gauge", "Resident set size.",
	       process_rss());
	head(b, "ringlet_process_open_fds", "gauge", "Open file descriptors.");
	sb_printf(b, "ringlet_process_open_fds %u\n", process_fds());
	scalar(b, "ringlet_process_start_time_seconds", "gauge",
	       "Start time of the process since the Unix epoch.", e->start_unix);
	head(b, "ringlet_build_info", "gauge", "Version of this build (always 1).");
	sb_printf(b, "ringlet_build_info{version=\"%s\",sha=\"%s\",mode=\"%s\"} 1\n",
	          ringlet_version, ringlet_sha, server ? "server" : "client");
}

size_t metrics_render(struct engine *e, char **out)
{
	struct sb b;
	if (!sb_init(&b)) {
		*out = NULL;
		return 0;
	}
	inlets_metrics(&b, e);
	traffic_metrics(&b, e);
	tunnels_metrics(&b, e);
	health_metrics(&b, e);
	process_metrics(&b, e);
	return sb_done(&b, out);
}

static void json_str(struct sb *b, const char *s)
{
	sb_printf(b, "\"");
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			sb_printf(b, "\\%c", ch);
		else if (ch < 0x20)
			sb_printf(b, "\\u%04x", ch);
		else
			sb_printf(b, "%c", ch);
	}
	sb_printf(b, "\"");
}

static void rfc3339(int64_t t, char *out, size_t cap)
{
	struct tm tm;
	time_t tt = (time_t)t;
	gmtime_r(&tt, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A tunnel in /status's "tunnels" list. */
struct tview_ctx {
	struct sb *b;
	int n;
	const char *data_addr;
};
static void tunnel_json(void *ctx, const struct tunnel_view *v)
{
	struct tview_ctx *x = ctx;
	sb_printf(x->b, "%s{\"name\":", x->n++ ? "," : "");
	json_str(x->b, v->name);
	sb_printf(x->b, ",\"clients\":%zu,\"ports\":[", v->clients);
	for (uint16_t i = 0; i < v->nports; i++) {
		const struct tenant_port *p = &v->ports[i];
		char bind[96];
		const char *addr = p->listen_addr[0] ? p->listen_addr : x->data_addr;
		snprintf(bind, sizeof(bind), strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr,
		         p->listen_port);
		sb_printf(x->b, "%s{\"port\":%u,\"binding\":", i ? "," : "", p->port);
		json_str(x->b, bind);
		sb_printf(x->b, "}");
	}
	sb_printf(x->b, "],\"bytesIn\":%llu,\"bytesOut\":%llu,\"bindFailed\":",
	          (unsigned long long)v->bytes_in, (unsigned long long)v->bytes_out);
	if (v->bind_failed)
		sb_printf(x->b, "{\"port\":%u,\"reason\":\"%s\"}", v->bind_failed,
		          v->bind_status == TUN_PORT_IN_USE   ? "in-use"
		          : v->bind_status == TUN_PORT_DENIED ? "permission-denied"
		                                              : "error");
	else
		sb_printf(x->b, "null");
	sb_printf(x->b, "}");
}

size_t status_render(struct engine *e, char **out)
{
	struct sb b;
	if (!sb_init(&b)) {
		*out = NULL;
		return 0;
	}
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	char ts[32];
	rfc3339((int64_t)e->start_unix, ts, sizeof(ts));
	sb_printf(&b, "{\"info\":{\"version\":");
	json_str(&b, ringlet_version);
	sb_printf(&b, ",\"sha\":");
	json_str(&b, ringlet_sha);
	sb_printf(&b, ",\"mode\":\"tcp\",\"startTime\":\"%s\",\"hostname\":", ts);
	json_str(&b, host);
	sb_printf(&b, "},\"clients\":[");
	int n = 0;
	pthread_mutex_lock(&server_of(e)->reg->mu);
	for (int i = 0; i < REG_MAX_SESSIONS; i++) {
		struct reg_session *rs = &server_of(e)->reg->sess[i];
		if (!rs->used)
			continue;
		rfc3339(rs->since_unix, ts, sizeof(ts));
		sb_printf(&b, "%s{\"clientID\":", n++ ? "," : "");
		json_str(&b, rs->client_id);
		sb_printf(&b, ",\"remoteAddr\":");
		json_str(&b, rs->remote);
		sb_printf(&b, ",\"since\":\"%s\",\"upstreams\":[", ts);
		for (int k = 0; k < rs->nports; k++) {
			char up[TUN_MAX_STR + 8];
			snprintf(up, sizeof(up), "%s:%u", rs->upstream, rs->ports[k]);
			sb_printf(&b, "%s", k ? "," : "");
			json_str(&b, up);
		}
		sb_printf(&b, "],\"ports\":[");
		for (int k = 0; k < rs->nports; k++)
			sb_printf(&b, "%s%u", k ? "," : "", rs->ports[k]);
		uint64_t in = 0, outb = 0;
		int lanes = 0;
		sb_printf(&b, "],\"ringlet\":{\"tunnel\":");
		const char *tname = server_tunnel_name(server_of(e), rs->tunnel);
		if (tname)
			json_str(&b, tname);
		else
			sb_printf(&b, "null");
		sb_printf(&b, ",\"laneShards\":[");
		for (int k = 0; k < REG_MAX_LANES; k++) {
			in += STAT_GET(rs->lanes[k].ctr.bytes_in);
			outb += STAT_GET(rs->lanes[k].ctr.bytes_out);
			if (rs->lanes[k].used)
				sb_printf(&b, "%s%d", lanes++ ? "," : "", rs->lanes[k].shard);
		}
		sb_printf(&b,
		          "],\"lanes\":%d,\"bytesIn\":%llu,\"bytesOut\":%llu,\"rttSeconds\":%."
		          "6f}}",
		          lanes, (unsigned long long)in, (unsigned long long)outb,
		          (double)STAT_GET(rs->lanes[0].ctr.rtt_ns) / 1e9);
	}
	pthread_mutex_unlock(&server_of(e)->reg->mu);
	sb_printf(&b,
	          "],\"ringlet\":{\"shards\":%d,\"streamsActive\":%llu,\"streamsTotal\":%llu",
	          e->nshards, (unsigned long long)SUM(e, streams_active),
	          (unsigned long long)SUM(e, streams_total));
	static const char *const sm_modes[] = {"off", "auto", "on"};
	uint64_t st[SM_STAT_MAX] = {0};
	if (role_of(e)->sm)
		sockmap_read_stats(role_of(e)->sm, st);
	sb_printf(&b, ",\"sockmap\":{\"mode\":\"%s\",\"active\":%s,\"cgroup\":",
	          sm_modes[e->cfg->sockmap], role_of(e)->sm ? "true" : "false");
	json_str(&b, role_of(e)->sm ? sockmap_cgroup(role_of(e)->sm) : "");
	sb_printf(&b, ",\"why\":");
	json_str(&b, role_of(e)->sm_why);
	sb_printf(&b, ",\"hopsSteered\":%llu,\"bytes\":%llu}}",
	          (unsigned long long)st[SM_STAT_HOPS_STEERED],
	          (unsigned long long)st[SM_STAT_BYTES]);
	if (server_of(e)->tt) {
		struct tview_ctx x = {.b = &b,
		                      .data_addr = e->cfg->data_addr && e->cfg->data_addr[0]
		                                           ? e->cfg->data_addr
		                                           : "0.0.0.0"};
		sb_printf(&b, ",\"tunnels\":[");
		server_tunnels_view(server_of(e), tunnel_json, &x);
		sb_printf(&b, "]");
	}
	sb_printf(&b, "}\n");
	return sb_done(&b, out);
}
