/* tests/ebpf/loader.c — the sockmap loader and its programs: refusals with reasons, and a
 * loopback connection between two sockets of this process steered in the kernel. The
 * steering tests need root, cgroup v2 and a kernel with sockmap; elsewhere they skip with
 * the reason. Each test runs in its own process (criterion) inside its own cgroup. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ebpf/loader.h"

static char cg_dir[4400], cg_home[4400];

/* The cgroup-v2 mount point and this process's cgroup in it, or a skip. */
static void find_cgroups(void)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096], mnt[256] = "";
	while (f && fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - ");
		if (sep && strncmp(sep + 3, "cgroup2 ", 8) == 0 &&
		    sscanf(line, "%*s %*s %*s %*s %255s", mnt) == 1)
			break;
		mnt[0] = 0;
	}
	if (f)
		fclose(f);
	if (!mnt[0])
		cr_skip_test("no cgroup v2 hierarchy is mounted");
	f = fopen("/proc/self/cgroup", "r");
	cg_home[0] = 0;
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = 0;
			snprintf(cg_home, sizeof(cg_home), "%s%s", mnt,
			         strcmp(line + 3, "/") ? line + 3 : "");
		}
	if (f)
		fclose(f);
	snprintf(cg_dir, sizeof(cg_dir), "%s/ringlet-unit-%d", mnt, (int)getpid());
}

static void write_pid(const char *dir)
{
	char p[4500];
	snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
	FILE *f = fopen(p, "w");
	cr_assert(f, "open %s: %s", p, strerror(errno));
	fprintf(f, "%d\n", (int)getpid());
	cr_assert_eq(fclose(f), 0, "move into %s: %s", dir, strerror(errno));
}

/* Root, cgroup v2 and sockmap, or skip; then a fresh cgroup with this process in it. */
static struct sockmap *steering_setup(void)
{
	if (geteuid() != 0)
		cr_skip_test("loading BPF programs needs root (CAP_BPF and CAP_NET_ADMIN)");
	find_cgroups();
	cr_assert_eq(mkdir(cg_dir, 0755), 0, "mkdir %s: %s", cg_dir, strerror(errno));
	write_pid(cg_dir);
	struct sockmap *m = NULL;
	char why[256] = "";
	int err = sockmap_open(cg_dir, &m, why, sizeof(why));
	if (err == -EOPNOTSUPP)
		cr_skip_test("%s", why);
	cr_assert_eq(err, 0, "sockmap_open: %s", why);
	return m;
}

static void steering_teardown(struct sockmap *m)
{
	sockmap_close(m);
	write_pid(cg_home);
	rmdir(cg_dir);
}

static int listener(uint16_t *port)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(l, 8), 0);
	socklen_t al = sizeof(a);
	getsockname(l, (struct sockaddr *)&a, &al);
	*port = ntohs(a.sin_port);
	return l;
}

/* A connection to the listener l on 127.0.0.1:port; the dialling socket is marked as
 * ringlet's first when own is given. */
static void connect_pair_as(struct sockmap *own, int l, uint16_t port, int *c, int *s)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons(port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	*c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (own)
		cr_assert_eq(sockmap_mark_own(own, *c), 0);
	cr_assert_eq(connect(*c, (struct sockaddr *)&a, sizeof(a)), 0);
	*s = accept(l, NULL, NULL);
	cr_assert_geq(*s, 0);
}

static void connect_pair(int l, uint16_t port, int *c, int *s)
{
	connect_pair_as(NULL, l, port, c, s);
}

/* A listener on 127.0.0.1 registered as a listen endpoint on every address, and one
 * connection to it: *c the consumer's end, *s ringlet's accepted end. */
static void listen_pair(struct sockmap *m, int *l, int *c, int *s)
{
	uint16_t port;
	*l = listener(&port);
	cr_assert_eq(sockmap_add_endpoint(m, AF_INET, NULL, port, SM_EP_LISTEN), 0);
	connect_pair(*l, port, c, s);
}

/* Send n pattern bytes from one socket and read them on the other (non-blocking sends
 * interleaved with reads, so sizes beyond the socket buffers cannot deadlock); the bytes
 * must arrive whole and in order. */
static void transfer(int from, int to, size_t n, unsigned seed)
{
	unsigned char *out = malloc(n + 1), *in = malloc(n + 1);
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)(i * 31u + seed + (i >> 12));
	size_t sent = 0, got = 0;
	while (got < n) {
		if (sent < n) {
			ssize_t k =
			        send(from, out + sent, n - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (k > 0)
				sent += (size_t)k;
			else
				cr_assert(errno == EAGAIN, "send: %s", strerror(errno));
		}
		ssize_t r = recv(to, in + got, n - got, sent < n ? MSG_DONTWAIT : 0);
		if (r > 0)
			got += (size_t)r;
		else
			cr_assert(r == -1 && errno == EAGAIN, "recv after %zu of %zu: %zd %s",
			          got, n, r, strerror(errno));
	}
	cr_assert(memcmp(in, out, n) == 0, "%zu bytes arrived in another order", n);
	free(out);
	free(in);
}

Test(loader, refuses_a_directory_that_is_not_a_cgroup)
{
	struct sockmap *m = (struct sockmap *)1;
	char why[256] = "";
	cr_assert_eq(sockmap_open("/tmp", &m, why, sizeof(why)), -ENOTDIR);
	cr_assert_null(m);
	cr_assert(strstr(why, "/tmp is not a cgroup v2 directory"), "why: %s", why);
}

Test(loader, refuses_a_missing_cgroup)
{
	struct sockmap *m = NULL;
	char why[256] = "";
	cr_assert_eq(sockmap_open("/nonexistent/ringlet", &m, why, sizeof(why)), -ENOENT);
	cr_assert(strstr(why, "cannot open the cgroup /nonexistent/ringlet"), "why: %s", why);
	sockmap_close(NULL); /* NULL-tolerant */
}

Test(loader, steers_a_local_hop_both_ways_at_every_boundary)
{
	struct sockmap *m = steering_setup();
	uint16_t port;
	int l = listener(&port);
	struct in_addr lo = {htonl(INADDR_LOOPBACK)};
	cr_assert_eq(sockmap_add_endpoint(m, AF_INET, &lo, port, SM_EP_LISTEN), 0);
	int c, s;
	connect_pair(l, port, &c, &s);
	static const size_t sizes[] = {1,     125,   126,   127,    4095,   4096,   4097,
	                               65535, 65536, 65537, 262143, 262144, 262145, 4u << 20};
	uint64_t total = 0;
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		transfer(s, c, sizes[i], (unsigned)i);
		transfer(c, s, sizes[i], (unsigned)i + 100);
		total += 2 * sizes[i];
	}
	/* Half-close: the FIN arrives after every steered byte; the other way still works. */
	transfer(s, c, 1000, 7);
	cr_assert_eq(shutdown(s, SHUT_WR), 0);
	char b[16];
	cr_assert_eq(recv(c, b, sizeof(b), 0), 0, "EOF after the data");
	transfer(c, s, 70000, 9);
	total += 71000;

	uint64_t st[SM_STAT_MAX];
	sockmap_read_stats(m, st);
	cr_assert_eq(st[SM_STAT_SOCKETS], 2, "both ends in the map");
	cr_assert_eq(st[SM_STAT_HOPS_STEERED], 1, "ringlet's end (the accepting one) steered");
	cr_assert_eq(st[SM_STAT_PEER_STEERED], 1, "the peer's end steered");
	cr_assert_eq(st[SM_STAT_BYTES], total, "every byte moved in the kernel");
	cr_assert_eq(st[SM_STAT_FB_NO_PEER] + st[SM_STAT_FB_NOT_LOCAL] + st[SM_STAT_FB_INSERT],
	             0);
	close(c);
	close(s);
	close(l);
	steering_teardown(m);
}

Test(loader, leaves_other_connections_alone)
{
	struct sockmap *m = steering_setup();
	uint16_t hop, other;
	int lh = listener(&hop), lo = listener(&other);
	cr_assert_eq(sockmap_add_endpoint(m, AF_INET, NULL, hop, SM_EP_DIAL), 0);
	int c, s;
	connect_pair(lo, other, &c, &s);
	transfer(c, s, 100000, 1);
	uint64_t st[SM_STAT_MAX];
	sockmap_read_stats(m, st);
	cr_assert_eq(st[SM_STAT_SOCKETS], 0, "a connection to another port is not touched");
	cr_assert_eq(st[SM_STAT_BYTES], 0);
	close(c);
	close(s);
	/* A program that is not ringlet dialling ringlet's upstream is left alone. */
	connect_pair(lh, hop, &c, &s);
	transfer(c, s, 1000, 2);
	sockmap_read_stats(m, st);
	cr_assert_eq(st[SM_STAT_SOCKETS], 0, "another program's connection to the upstream");
	close(c);
	close(s);
	/* ringlet's own dialling socket (marked) and the upstream's end are steered; the
	 * wildcard endpoint (every address) matches 127.0.0.1:hop. */
	connect_pair_as(m, lh, hop, &c, &s);
	transfer(c, s, 1000, 2);
	transfer(s, c, 1000, 3);
	sockmap_read_stats(m, st);
	cr_assert_eq(st[SM_STAT_SOCKETS], 2);
	cr_assert_eq(st[SM_STAT_HOPS_STEERED], 1, "the dialling end is ringlet's");
	cr_assert_eq(st[SM_STAT_PEER_STEERED], 1, "the upstream's end found it");
	close(c);
	close(s);
	close(lh);
	close(lo);
	steering_teardown(m);
}

Test(loader, refuses_an_unknown_family)
{
	struct sockmap *m = steering_setup();
	cr_assert_eq(sockmap_add_endpoint(m, AF_UNIX, NULL, 1, SM_EP_DIAL), -EAFNOSUPPORT);
	steering_teardown(m);
}

Test(loader, a_stalled_reader_stops_its_sender)
{
	struct sockmap *m = steering_setup();
	int l, c, s;
	listen_pair(m, &l, &c, &s);
	transfer(s, c, 10, 1); /* decided: redirect */
	static char buf[1 << 16];
	size_t queued = 0;
	for (int i = 0; i < 100000; i++) {
		ssize_t k = send(s, buf, sizeof(buf), MSG_DONTWAIT | MSG_NOSIGNAL);
		if (k == -1) {
			cr_assert(errno == EAGAIN || errno == ENOMEM, "send: %s",
			          strerror(errno));
			break;
		}
		queued += (size_t)k;
	}
	/* SM_INFLIGHT_MAX steered, one more message, then TCP's own buffers (the default
	 * tcp_wmem and tcp_rmem maxima are 4 and 6 MiB). */
	cr_log_info("queued behind a stalled reader: %zu bytes", queued);
	cr_assert_lt(queued, SM_INFLIGHT_MAX + (16u << 20),
	             "a reader that stopped holds a bounded amount: %zu bytes queued", queued);
	uint64_t st[SM_STAT_MAX];
	sockmap_read_stats(m, st);
	cr_assert_eq(st[SM_STAT_HOPS_STEERED], 1);
	cr_assert_eq(st[SM_STAT_FB_SLOW_READER], 1, "the sender moved to TCP once");
	/* The reader resumes and gets every byte. */
	size_t got = 0;
	while (got < queued) {
		ssize_t r = recv(c, buf, sizeof(buf), 0);
		cr_assert_gt(r, 0);
		got += (size_t)r;
	}
	cr_assert_eq(got, queued);
	close(c);
	close(s);
	close(l);
	steering_teardown(m);
}

Test(loader, steers_ipv4_through_a_dual_stack_listener)
{
	struct sockmap *m = steering_setup();
	int l = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), off = 0;
	setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_addr = in6addr_any};
	cr_assert_eq(bind(l, (struct sockaddr *)&a6, sizeof(a6)), 0);
	cr_assert_eq(listen(l, 8), 0);
	socklen_t al = sizeof(a6);
	getsockname(l, (struct sockaddr *)&a6, &al);
	uint16_t port = ntohs(a6.sin6_port);
	/* What the engine registers for a listener on every address: both families. */
	cr_assert_eq(sockmap_add_endpoint(m, AF_INET, NULL, port, SM_EP_LISTEN), 0);
	cr_assert_eq(sockmap_add_endpoint(m, AF_INET6, NULL, port, SM_EP_LISTEN), 0);
	int c, s;
	connect_pair(l, port, &c, &s); /* an IPv4 client; the accepted socket is IPv6 */
	transfer(s, c, 300000, 3);
	transfer(c, s, 300000, 4);
	uint64_t st[SM_STAT_MAX];
	sockmap_read_stats(m, st);
	cr_assert_eq(st[SM_STAT_SOCKETS], 2);
	cr_assert_eq(st[SM_STAT_HOPS_STEERED], 1, "the v4-mapped end found its IPv4 peer");
	cr_assert_eq(st[SM_STAT_PEER_STEERED], 1, "and the IPv4 end its v4-mapped peer");
	close(c);
	close(s);
	close(l);
	steering_teardown(m);
}

/* Documented in ebpf/README.md ("A close with unread steered bytes is a FIN"): steered
 * bytes wait beside TCP's queue, so a reader that closes without reading them sends a
 * FIN, where TCP would reset. If a kernel ever changes this, the README must too. */
Test(loader, a_close_with_unread_steered_bytes_is_a_fin)
{
	struct sockmap *m = steering_setup();
	int l, c, s;
	listen_pair(m, &l, &c, &s);
	transfer(c, s, 10, 1); /* both ends decided: redirect */
	transfer(s, c, 10, 2);
	char buf[1000] = {0};
	cr_assert_eq(send(s, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	close(c); /* 1000 steered bytes unread */
	struct timeval tv = {.tv_sec = 5};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ssize_t r = recv(s, buf, sizeof(buf), 0);
	cr_assert_eq(r, 0, "the sender sees EOF, not ECONNRESET (got %zd, %s)", r,
	             r < 0 ? strerror(errno) : "data");
	uint64_t st[SM_STAT_MAX];
	sockmap_read_stats(m, st);
	cr_assert_geq(st[SM_STAT_BYTES], 1020, "the 1000 bytes were steered");
	close(s);
	close(l);
	steering_teardown(m);
}
