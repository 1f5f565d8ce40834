/* bench/loadgen.c — io_uring load generator and upstream for the benchmark harness.
 *
 *   loadgen serve --listen HOST:PORT [--listen HOST:PORT ...]
 *   loadgen bulk  --connect HOST:PORT --dir up|down [--streams N] [--seconds S] [--verify]
 *   loadgen rr    --connect HOST:PORT --resp BYTES [--conc N] [--seconds S]
 *   loadgen churn --connect HOST:PORT [--conc N] [--seconds S]
 *   loadgen scale --connect HOST:PORT [--streams N] [--idle-seconds S] [--active-seconds S]
 *                 [--rate REQ_PER_S]
 *   loadgen slow  --connect HOST:PORT [--bytes N] [--pause S]
 *   loadgen http  --connect HOST:PORT [--bytes N] [--delay-ms MS]
 *
 * `serve` is the upstream: one thread, one io_uring, a multishot accept per listener and one
 * operation in flight per connection. Every other mode is a client that prints one JSON
 * object on stdout when it ends (and `phase ...` lines before it, which the harness uses to
 * sample memory at the right moments); exit status 0 when the run completed, 1 on error.
 *
 * Wire protocol between a client and `serve` (both on this machine, so host byte order): a
 * connection starts with a 64-byte message {magic "RLG1", op, flags, arg}:
 *   SINK    read and discard until EOF, then answer the byte count (8 bytes) and close;
 *   SOURCE  send arg bytes of the pattern (0: until the peer goes away), then close;
 *   RR      answer arg bytes of the pattern, then read the next 64-byte message (any op);
 *           with flag CLOSE, close after the answer instead (connection churn);
 *   ECHO    send back everything read until EOF.
 * A connection that starts with "GET " is HTTP: `GET /anything?bytes=N&delay_ms=D` gets a
 * 200 response whose N-byte body starts only after D milliseconds (a slow /federate).
 *
 * Payload bytes are a fixed pseudo-random pattern with a period of PAT_PERIOD bytes, so a
 * receiver can check every byte it gets (--verify, slow, http) with one memcmp per chunk.
 * The server closes first wherever the protocol lets it, so TIME_WAIT sockets sit on the
 * server side and client port numbers never run out during connection churn.
 *
 * Latencies go into a log-bucket histogram (64 sub-buckets per power of two: a value is
 * reported as its bucket's midpoint, within 0.8%), printed in full with the percentiles.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (1u << 20)          /* largest send or recv: 1 MiB keeps syscalls rare */
#define PAT_PERIOD 1000003u       /* pattern period: a prime, so no frame size divides it */
#define MSG_SIZE 64               /* every request message */
#define MAGIC 0x31474c52u         /* "RLG1" */
#define RING_ENTRIES 4096         /* submission queue entries */
#define HTTP_HEAD_MAX 4096        /* request or response head */
#define WAIT_SLICE_NS 50000000ull /* longest single wait for completions: 50 ms */
#define STALL_LIMIT_S 30.0        /* a client gives up when nothing completes for this long */
#define CONNECT_BATCH 256         /* connects in flight while opening many streams */

#define HIST_SUB_BITS 6
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_BUCKETS (64u * HIST_SUB)

enum msg_op {
	OP_SINK = 1,
	OP_SOURCE = 2,
	OP_RR = 3,
	OP_ECHO = 4,
};

#define FL_CLOSE 1u

struct msg {
	uint32_t magic;
	uint16_t op;
	uint16_t flags;
	uint64_t arg;
	uint8_t pad[MSG_SIZE - 16];
};
_Static_assert(sizeof(struct msg) == MSG_SIZE, "message size");

/* The pattern: PAT_PERIOD + CHUNK bytes, so pat + (offset % PAT_PERIOD) is valid for any
 * chunk. Read-only after init; shared by every connection. */
static uint8_t *pat;
/* Where received bytes nobody looks at go (concurrent recvs may share it). */
static uint8_t *discard;

static void die(const char *what, int err)
{
	fprintf(stderr, "loadgen: %s: %s\n", what, strerror(err));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double secs(uint64_t ns)
{
	return (double)ns / 1e9;
}

static void pattern_init(void)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;
	pat = malloc(PAT_PERIOD + CHUNK);
	discard = malloc(CHUNK);
	if (!pat || !discard)
		die("malloc", ENOMEM);
	for (size_t i = 0; i < PAT_PERIOD; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pat[i] = (uint8_t)(x >> 24);
	}
	for (size_t i = PAT_PERIOD; i < PAT_PERIOD + CHUNK; i++)
		pat[i] = pat[i - PAT_PERIOD];
}

static const uint8_t *pat_at(uint64_t off)
{
	return pat + off % PAT_PERIOD;
}

/* Raise RLIMIT_NOFILE to its hard limit; returns the soft limit now in force. */
static rlim_t raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return 1024;
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	getrlimit(RLIMIT_NOFILE, &rl);
	return rl.rlim_cur;
}

/* ---- histogram ---------------------------------------------------------------------- */

struct hist {
	uint64_t n, min, max;
	double sum;
	uint64_t b[HIST_BUCKETS];
};

static unsigned hist_idx(uint64_t v)
{
	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	unsigned shift = msb - HIST_SUB_BITS;
	return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

static uint64_t hist_lo(unsigned idx)
{
	if (idx < 2 * HIST_SUB)
		return idx;
	unsigned shift = idx / HIST_SUB - 1;
	return (uint64_t)(idx % HIST_SUB + HIST_SUB) << shift;
}

static uint64_t hist_width(unsigned idx)
{
	return idx < 2 * HIST_SUB ? 1 : 1ull << (idx / HIST_SUB - 1);
}

static void hist_add(struct hist *h, uint64_t v)
{
	if (h->n == 0 || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->n++;
	h->sum += (double)v;
	h->b[hist_idx(v)]++;
}

/* The value at quantile q (0..1): the midpoint of the bucket holding rank ceil(q*n). */
static uint64_t hist_q(const struct hist *h, double q)
{
	if (h->n == 0)
		return 0;
	uint64_t rank = (uint64_t)(q * (double)h->n + 0.999999);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t mid = hist_lo(i) + hist_width(i) / 2;
			if (mid > h->max)
				mid = h->max;
			if (mid < h->min)
				mid = h->min;
			return mid;
		}
	}
	return h->max;
}

/* Prints `"latency_us": {...}` (no trailing comma): percentiles in microseconds and the
 * non-empty buckets as [lower bound ns, width ns, count]. */
static void hist_print(const struct hist *h)
{
	static const struct {
		const char *name;
		double q;
	} qs[] = {{"p50", 0.5}, {"p90", 0.9}, {"p99", 0.99}, {"p999", 0.999}};

	printf("\"latency_us\": {\"count\": %" PRIu64, h->n);
	if (h->n) {
		printf(", \"min\": %.3f, \"mean\": %.3f, \"max\": %.3f", (double)h->min / 1e3,
		       h->sum / (double)h->n / 1e3, (double)h->max / 1e3);
		for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
			printf(", \"%s\": %.3f", qs[i].name, (double)hist_q(h, qs[i].q) / 1e3);
	}
	printf(", \"hist_ns\": [");
	bool first = true;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		if (!h->b[i])
			continue;
		printf("%s[%" PRIu64 ", %" PRIu64 ", %" PRIu64 "]", first ? "" : ", ",
		       hist_lo(i), hist_width(i), h->b[i]);
		first = false;
	}
	printf("]}");
}

/* ---- rings and sockets -------------------------------------------------------------- */

static struct io_uring ring;

static void ring_init(void)
{
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = RING_ENTRIES * 8;
	int ret = io_uring_queue_init_params(RING_ENTRIES, &ring, &p);
	if (ret < 0)
		die("io_uring_queue_init", -ret);
}

static struct io_uring_sqe *sqe_get(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
	while (!sqe) {
		int ret = io_uring_submit(&ring);
		if (ret < 0 && ret != -EAGAIN && ret != -EBUSY)
			die("io_uring_submit", -ret);
		sqe = io_uring_get_sqe(&ring);
	}
	return sqe;
}

/* user_data: a pointer (8-byte aligned) with a 3-bit tag in its low bits. */
static uint64_t ud(const void *p, unsigned tag)
{
	return (uint64_t)(uintptr_t)p | tag;
}

static void *ud_ptr(uint64_t u)
{
	return (void *)(uintptr_t)(u & ~7ull);
}

static unsigned ud_tag(uint64_t u)
{
	return (unsigned)(u & 7);
}

static void post_recv(int fd, void *buf, size_t len, uint64_t user)
{
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_recv(sqe, fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, user);
}

static void post_send(int fd, const void *buf, size_t len, uint64_t user)
{
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, user);
}

/* Submits what is queued and waits up to `ns` for at least one completion. Returns the
 * number of completions ready (0 on timeout). */
static unsigned ring_wait(uint64_t ns)
{
	struct io_uring_cqe *cqe = NULL;
	struct __kernel_timespec ts = {.tv_sec = (long long)(ns / 1000000000ull),
	                               .tv_nsec = (long long)(ns % 1000000000ull)};
	int ret = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		die("io_uring_submit_and_wait_timeout", -ret);
	return io_uring_cq_ready(&ring);
}

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = 0;
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port <= 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return -1;
	return 0;
}

static void sock_opts(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* A blocking connect bounded by a 5 s send timeout; returns the fd or -errno. */
static int dial(const struct sockaddr_in *sa)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -errno;
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == -1) {
		int err = errno;
		close(fd);
		return -err;
	}
	tv.tv_sec = 0;
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	sock_opts(fd);
	return fd;
}

static void msg_fill(struct msg *m, enum msg_op op, unsigned flags, uint64_t arg)
{
	memset(m, 0, sizeof(*m));
	m->magic = MAGIC;
	m->op = (uint16_t)op;
	m->flags = (uint16_t)flags;
	m->arg = arg;
}

/* Writes all of buf (blocking); 0 or -errno. */
static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- serve -------------------------------------------------------------------------- */

enum sstate {
	SS_MSG,       /* reading a 64-byte message */
	SS_SINK,      /* discarding until EOF */
	SS_COUNT,     /* sending the sink's byte count */
	SS_SEND,      /* sending pattern bytes (RR answer, SOURCE, HTTP body) */
	SS_HTTP_HEAD, /* reading an HTTP request head */
	SS_HTTP_WAIT, /* the response's pause */
	SS_HTTP_RESP, /* sending the response head */
	SS_ECHO_RECV,
	SS_ECHO_SEND,
	SS_DRAIN, /* after our FIN: reading until the peer's EOF, then close */
};

struct sconn {
	int fd;
	enum sstate state;
	enum msg_op op; /* what SS_SEND belongs to */
	unsigned flags;
	bool endless;       /* SOURCE with arg 0 */
	uint64_t remaining; /* SS_SEND bytes left */
	uint64_t off;       /* pattern offset of the next byte sent */
	uint64_t count;     /* SINK bytes */
	size_t got;         /* bytes of msg / head read; echo bytes pending */
	size_t sent;        /* of the head / echo bytes / count */
	union {
		struct msg msg;
		uint64_t count_le;
	} u;
	char *head;  /* HTTP head (HTTP_HEAD_MAX) or echo buffer (CHUNK), lazily */
	size_t hlen; /* HTTP response head length */
	uint64_t delay_ms;
	struct __kernel_timespec ts;
};

struct listener {
	int fd;
} __attribute__((aligned(8)));

static void s_close(struct sconn *c)
{
	close(c->fd);
	free(c->head);
	free(c);
}

static void s_drain(struct sconn *c)
{
	shutdown(c->fd, SHUT_WR);
	c->state = SS_DRAIN;
	post_recv(c->fd, discard, CHUNK, ud(c, 0));
}

static void s_read_msg(struct sconn *c)
{
	c->state = SS_MSG;
	c->got = 0;
	post_recv(c->fd, &c->u.msg, MSG_SIZE, ud(c, 0));
}

static void s_send_more(struct sconn *c)
{
	size_t n = CHUNK;
	if (!c->endless && c->remaining < n)
		n = (size_t)c->remaining;
	post_send(c->fd, pat_at(c->off), n, ud(c, 0));
}

static void s_start_send(struct sconn *c, enum msg_op op, uint64_t bytes, bool endless)
{
	c->state = SS_SEND;
	c->op = op;
	c->remaining = bytes;
	c->endless = endless;
	c->off = 0;
	if (!endless && bytes == 0) {
		if (op == OP_RR && !(c->flags & FL_CLOSE))
			s_read_msg(c);
		else
			s_drain(c);
		return;
	}
	s_send_more(c);
}

static uint64_t query_u64(const char *head, const char *key, uint64_t dflt)
{
	const char *eol = strstr(head, "\r\n");
	size_t klen = strlen(key);
	for (const char *p = strchr(head, '?'); p && (!eol || p < eol);
	     p = strchr(p + 1, '&')) {
		if (!strncmp(p + 1, key, klen) && p[1 + klen] == '=')
			return strtoull(p + 2 + klen, NULL, 10);
	}
	return dflt;
}

static void s_http_start(struct sconn *c)
{
	c->head[c->got] = 0;
	uint64_t bytes = query_u64(c->head, "bytes", 1000000);
	c->delay_ms = query_u64(c->head, "delay_ms", 0);
	c->remaining = bytes;
	int n = snprintf(c->head, HTTP_HEAD_MAX,
	                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
	                 "Content-Length: %" PRIu64 "\r\nConnection: close\r\n\r\n",
	                 bytes);
	c->hlen = (size_t)n;
	c->sent = 0;
	c->state = SS_HTTP_WAIT;
	c->ts.tv_sec = (long long)(c->delay_ms / 1000);
	c->ts.tv_nsec = (long long)(c->delay_ms % 1000) * 1000000;
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_timeout(sqe, &c->ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud(c, 0));
}

static void s_on_msg(struct sconn *c)
{
	if (c->u.msg.magic != MAGIC) {
		s_close(c);
		return;
	}
	c->flags = c->u.msg.flags;
	switch ((enum msg_op)c->u.msg.op) {
	case OP_SINK:
		c->state = SS_SINK;
		c->count = 0;
		post_recv(c->fd, discard, CHUNK, ud(c, 0));
		break;
	case OP_SOURCE:
		s_start_send(c, OP_SOURCE, c->u.msg.arg, c->u.msg.arg == 0);
		break;
	case OP_RR:
		s_start_send(c, OP_RR, c->u.msg.arg, false);
		break;
	case OP_ECHO:
		c->head = malloc(CHUNK);
		if (!c->head) {
			s_close(c);
			return;
		}
		c->state = SS_ECHO_RECV;
		post_recv(c->fd, c->head, CHUNK, ud(c, 0));
		break;
	default:
		s_close(c);
	}
}

/* One completion of connection c's single operation in flight. */
static void s_complete(struct sconn *c, int res)
{
	switch (c->state) {
	case SS_MSG:
		if (res <= 0) {
			s_close(c);
			return;
		}
		c->got += (size_t)res;
		if (c->got >= 4 && !memcmp(&c->u.msg, "GET ", 4)) {
			c->head = malloc(HTTP_HEAD_MAX + 1);
			if (!c->head) {
				s_close(c);
				return;
			}
			memcpy(c->head, &c->u.msg, c->got);
			c->head[c->got] = 0;
			c->state = SS_HTTP_HEAD;
			if (strstr(c->head, "\r\n\r\n")) {
				s_http_start(c);
				return;
			}
			post_recv(c->fd, c->head + c->got, HTTP_HEAD_MAX - c->got, ud(c, 0));
			return;
		}
		if (c->got < MSG_SIZE) {
			post_recv(c->fd, (uint8_t *)&c->u.msg + c->got, MSG_SIZE - c->got,
			          ud(c, 0));
			return;
		}
		s_on_msg(c);
		return;
	case SS_SINK:
		if (res > 0) {
			c->count += (uint64_t)res;
			post_recv(c->fd, discard, CHUNK, ud(c, 0));
			return;
		}
		if (res < 0) {
			s_close(c);
			return;
		}
		c->state = SS_COUNT;
		c->u.count_le = c->count;
		c->sent = 0;
		post_send(c->fd, &c->u.count_le, 8, ud(c, 0));
		return;
	case SS_COUNT:
		if (res <= 0) {
			s_close(c);
			return;
		}
		c->sent += (size_t)res;
		if (c->sent < 8) {
			post_send(c->fd, (uint8_t *)&c->u.count_le + c->sent, 8 - c->sent,
			          ud(c, 0));
			return;
		}
		s_close(c); /* the peer already sent EOF: nothing unread, a clean FIN */
		return;
	case SS_SEND:
		if (res <= 0) {
			s_close(c);
			return;
		}
		c->off += (uint64_t)res;
		if (!c->endless)
			c->remaining -= (uint64_t)res;
		if (c->endless || c->remaining) {
			s_send_more(c);
			return;
		}
		if (c->op == OP_RR && !(c->flags & FL_CLOSE))
			s_read_msg(c);
		else
			s_drain(c);
		return;
	case SS_HTTP_HEAD:
		if (res <= 0) {
			s_close(c);
			return;
		}
		c->got += (size_t)res;
		c->head[c->got] = 0;
		if (strstr(c->head, "\r\n\r\n")) {
			s_http_start(c);
		} else if (c->got >= HTTP_HEAD_MAX) {
			s_close(c);
		} else {
			post_recv(c->fd, c->head + c->got, HTTP_HEAD_MAX - c->got, ud(c, 0));
		}
		return;
	case SS_HTTP_WAIT:
		c->state = SS_HTTP_RESP;
		post_send(c->fd, c->head, c->hlen, ud(c, 0));
		return;
	case SS_HTTP_RESP:
		if (res <= 0) {
			s_close(c);
			return;
		}
		c->sent += (size_t)res;
		if (c->sent < c->hlen) {
			post_send(c->fd, c->head + c->sent, c->hlen - c->sent, ud(c, 0));
			return;
		}
		s_start_send(c, OP_SOURCE, c->remaining, false);
		return;
	case SS_ECHO_RECV:
		if (res <= 0) {
			if (res == 0)
				s_drain(c);
			else
				s_close(c);
			return;
		}
		c->got = (size_t)res;
		c->sent = 0;
		c->state = SS_ECHO_SEND;
		post_send(c->fd, c->head, c->got, ud(c, 0));
		return;
	case SS_ECHO_SEND:
		if (res <= 0) {
			s_close(c);
			return;
		}
		c->sent += (size_t)res;
		if (c->sent < c->got) {
			post_send(c->fd, c->head + c->sent, c->got - c->sent, ud(c, 0));
			return;
		}
		c->state = SS_ECHO_RECV;
		post_recv(c->fd, c->head, CHUNK, ud(c, 0));
		return;
	case SS_DRAIN:
		if (res > 0) {
			post_recv(c->fd, discard, CHUNK, ud(c, 0));
			return;
		}
		s_close(c);
		return;
	}
}

static void post_accept(struct listener *l)
{
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, ud(l, 1));
}

static int cmd_serve(int nlisten, char **listen_on)
{
	struct listener *ls = calloc((size_t)nlisten, sizeof(*ls));
	if (!ls)
		die("calloc", ENOMEM);
	for (int i = 0; i < nlisten; i++) {
		struct sockaddr_in sa;
		if (parse_hostport(listen_on[i], &sa))
			die(listen_on[i], EINVAL);
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd == -1)
			die("socket", errno);
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
			die(listen_on[i], errno);
		if (listen(fd, 4096) == -1)
			die("listen", errno);
		ls[i].fd = fd;
		post_accept(&ls[i]);
	}
	fprintf(stderr, "loadgen serve: listening (%d address%s)\n", nlisten,
	        nlisten == 1 ? "" : "es");
	for (;;) {
		ring_wait(1000000000ull);
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			seen++;
			if (ud_tag(cqe->user_data) == 1) {
				struct listener *l = ud_ptr(cqe->user_data);
				if (cqe->res >= 0) {
					struct sconn *c = calloc(1, sizeof(*c));
					if (!c) {
						close(cqe->res);
					} else {
						c->fd = cqe->res;
						sock_opts(c->fd);
						s_read_msg(c);
					}
				}
				if (!(cqe->flags & IORING_CQE_F_MORE))
					post_accept(l);
				continue;
			}
			s_complete(ud_ptr(cqe->user_data), cqe->res);
		}
		io_uring_cq_advance(&ring, seen);
	}
	return 0;
}

/* ---- clients: shared pieces --------------------------------------------------------- */

struct opts {
	struct sockaddr_in addr;
	const char *addr_s;
	int streams;
	double seconds;
	double warmup;
	bool up;
	bool verify;
	uint64_t resp;
	uint64_t bytes;
	double pause;
	uint64_t delay_ms;
	double idle_s, active_s, rate;
};

struct cconn {
	int fd;
	int state;
	bool send_busy, recv_busy;
	bool failed;   /* the current request failed; waiting for its operations to end */
	uint64_t t0;   /* start of the current request or connection */
	uint64_t got;  /* bytes of the current response / stream */
	uint64_t sent; /* bytes sent on the stream */
	uint64_t count_le;
	struct msg msg;
	uint8_t *buf; /* own receive buffer when verifying */
} __attribute__((aligned(8)));

static void json_head(const char *mode, const struct opts *o)
{
	printf("{\"mode\": \"%s\", \"connect\": \"%s\"", mode, o->addr_s);
}

static void phase(const char *what, long arg)
{
	printf("phase %s %ld\n", what, arg);
	fflush(stdout);
}

/* Checks n received bytes at stream offset off against the pattern; returns true if equal.
 * n may exceed CHUNK (it is checked in pieces). */
static bool pat_check(const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		size_t k = n < CHUNK ? n : CHUNK;
		if (memcmp(p, pat_at(off), k))
			return false;
		p += k;
		n -= k;
		off += k;
	}
	return true;
}

/* Offset of the first byte of p[0..n) that differs from the pattern at off. */
static uint64_t pat_first_diff(const uint8_t *p, size_t n, uint64_t off)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != pat_at(off + i)[0])
			return off + i;
	return off + n;
}

static struct cconn *conns_alloc(int n)
{
	struct cconn *cs = calloc((size_t)n, sizeof(*cs));
	if (!cs)
		die("calloc", ENOMEM);
	for (int i = 0; i < n; i++)
		cs[i].fd = -1;
	return cs;
}

/* ---- bulk --------------------------------------------------------------------------- */

static int cmd_bulk(const struct opts *o)
{
	int n = o->streams;
	struct cconn *cs = conns_alloc(n);
	for (int i = 0; i < n; i++) {
		int fd = dial(&o->addr);
		if (fd < 0)
			die("connect", -fd);
		cs[i].fd = fd;
		msg_fill(&cs[i].msg, o->up ? OP_SINK : OP_SOURCE, 0, 0);
		if (o->verify && !o->up) {
			cs[i].buf = malloc(CHUNK);
			if (!cs[i].buf)
				die("malloc", ENOMEM);
		}
	}
	uint64_t t_start = now_ns();
	uint64_t warm_end = t_start + (uint64_t)(o->warmup * 1e9);
	uint64_t deadline = t_start + (uint64_t)(o->seconds * 1e9);
	uint64_t t_last = t_start, last_progress = t_start;
	uint64_t counted = 0, total = 0;
	int done = 0;
	const char *err = NULL;
	bool bad_bytes = false;

	for (int i = 0; i < n; i++) {
		struct cconn *c = &cs[i];
		if (write_all(c->fd, &c->msg, MSG_SIZE))
			die("send hello", errno);
		if (o->up)
			post_send(c->fd, pat_at(0), CHUNK, ud(c, 0));
		else
			post_recv(c->fd, c->buf ? c->buf : discard, CHUNK, ud(c, 0));
	}
	while (done < n) {
		if (!ring_wait(WAIT_SLICE_NS)) {
			if (secs(now_ns() - last_progress) > STALL_LIMIT_S) {
				err = "stalled";
				break;
			}
			continue;
		}
		uint64_t t = now_ns();
		last_progress = t;
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			seen++;
			struct cconn *c = ud_ptr(cqe->user_data);
			int res = cqe->res;
			if (o->up && c->state == 0) { /* sending */
				if (res <= 0) {
					err = "send failed";
					c->state = 2;
					done++;
					continue;
				}
				c->sent += (uint64_t)res;
				if (t < deadline) {
					post_send(c->fd, pat_at(c->sent), CHUNK, ud(c, 0));
				} else {
					shutdown(c->fd, SHUT_WR);
					c->state = 1;
					post_recv(c->fd, &c->count_le, 8, ud(c, 0));
				}
			} else if (o->up) { /* the sink's count */
				if (res != 8) {
					err = "no byte count from the sink";
				} else {
					total += c->count_le;
					counted += c->count_le;
					t_last = t;
				}
				c->state = 2;
				done++;
			} else {
				if (res <= 0) {
					err = res == 0 ? "source closed early" : "recv failed";
					done++;
					continue;
				}
				if (c->buf && !pat_check(c->buf, (size_t)res, c->got))
					bad_bytes = true;
				c->got += (uint64_t)res;
				total += (uint64_t)res;
				if (t > warm_end && t <= deadline)
					counted += (uint64_t)res;
				if (t < deadline)
					post_recv(c->fd, c->buf ? c->buf : discard, CHUNK,
					          ud(c, 0));
				else
					done++;
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	double window = o->up ? secs(t_last - t_start) : o->seconds - o->warmup;
	json_head("bulk", o);
	printf(", \"dir\": \"%s\", \"streams\": %d, \"seconds\": %.6f, \"bytes\": %" PRIu64
	       ", \"bytes_total\": %" PRIu64 ", \"gbps\": %.4f",
	       o->up ? "up" : "down", n, window, counted, total,
	       window > 0 ? (double)counted * 8 / window / 1e9 : 0.0);
	if (o->verify && !o->up)
		printf(", \"verified\": %s", bad_bytes ? "false" : "true");
	if (err)
		printf(", \"error\": \"%s\"", err);
	printf("}\n");
	return err || bad_bytes ? 1 : 0;
}

/* ---- request/response --------------------------------------------------------------- */

enum {
	RR_TAG_SEND = 1,
	RR_TAG_RECV = 2
};

static void rr_start(struct cconn *c, uint64_t resp, unsigned flags)
{
	msg_fill(&c->msg, OP_RR, flags, resp);
	c->got = 0;
	c->sent = 0;
	c->failed = false;
	c->t0 = now_ns();
	c->send_busy = c->recv_busy = true;
	post_send(c->fd, &c->msg, MSG_SIZE, ud(c, RR_TAG_SEND));
	post_recv(c->fd, discard, resp < CHUNK ? resp : CHUNK, ud(c, RR_TAG_RECV));
}

/* Handles a send or recv completion of a request started with rr_start. Returns 1 when the
 * whole response has arrived (and the send completed), 0 while in progress, -1 on error once
 * neither operation is in flight any more (so the caller may close and reuse c). */
static int rr_complete(struct cconn *c, unsigned tag, int res, uint64_t resp)
{
	if (tag == RR_TAG_SEND) {
		c->send_busy = false;
		if (res < 0) {
			c->failed = true;
		} else if (res < MSG_SIZE - (int)c->sent && !c->failed) {
			c->sent += (uint64_t)res; /* short send: finish the message */
			c->send_busy = true;
			post_send(c->fd, (uint8_t *)&c->msg + c->sent, MSG_SIZE - c->sent,
			          ud(c, RR_TAG_SEND));
		}
	} else {
		c->recv_busy = false;
		if (res <= 0) {
			c->failed = true;
		} else {
			c->got += (uint64_t)res;
			if (c->got < resp && !c->failed) {
				uint64_t left = resp - c->got;
				c->recv_busy = true;
				post_recv(c->fd, discard, left < CHUNK ? left : CHUNK,
				          ud(c, RR_TAG_RECV));
			}
		}
	}
	if (c->failed) {
		if (!c->send_busy && !c->recv_busy)
			return -1;
		shutdown(c->fd, SHUT_RDWR); /* completes what is still in flight */
		return 0;
	}
	return !c->send_busy && !c->recv_busy && c->got >= resp;
}

static int cmd_rr(const struct opts *o)
{
	int n = o->streams;
	struct cconn *cs = conns_alloc(n);
	struct hist *h = calloc(1, sizeof(*h));
	if (!h)
		die("calloc", ENOMEM);
	for (int i = 0; i < n; i++) {
		int fd = dial(&o->addr);
		if (fd < 0)
			die("connect", -fd);
		cs[i].fd = fd;
	}
	uint64_t t_start = now_ns(), last_progress = t_start;
	uint64_t warm_end = t_start + (uint64_t)(o->warmup * 1e9);
	uint64_t deadline = t_start + (uint64_t)(o->seconds * 1e9);
	uint64_t counted = 0, all = 0;
	int active = n;
	const char *err = NULL;

	for (int i = 0; i < n; i++)
		rr_start(&cs[i], o->resp, 0);
	while (active > 0) {
		if (!ring_wait(WAIT_SLICE_NS)) {
			if (secs(now_ns() - last_progress) > STALL_LIMIT_S) {
				err = "stalled";
				break;
			}
			continue;
		}
		uint64_t t = now_ns();
		last_progress = t;
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			seen++;
			struct cconn *c = ud_ptr(cqe->user_data);
			if (c->state)
				continue;
			int r = rr_complete(c, ud_tag(cqe->user_data), cqe->res, o->resp);
			if (r < 0) {
				err = "request failed";
				c->state = 1;
				active--;
				continue;
			}
			if (r == 0)
				continue;
			all++;
			if (t > warm_end && t <= deadline) {
				counted++;
				hist_add(h, t - c->t0);
			}
			if (t < deadline) {
				rr_start(c, o->resp, 0);
			} else {
				c->state = 1;
				active--;
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	double window = o->seconds - o->warmup;
	json_head("rr", o);
	printf(", \"conc\": %d, \"req_bytes\": %d, \"resp_bytes\": %" PRIu64
	       ", \"seconds\": %.6f, \"requests\": %" PRIu64 ", \"requests_total\": %" PRIu64
	       ", \"rps\": %.2f, ",
	       n, MSG_SIZE, o->resp, window, counted, all, (double)counted / window);
	hist_print(h);
	if (err)
		printf(", \"error\": \"%s\"", err);
	printf("}\n");
	return err ? 1 : 0;
}

/* ---- connection churn ----------------------------------------------------------------- */

enum {
	CH_CONNECT = 3,
	CH_EOF = 4
};

static void churn_start(struct cconn *c, const struct sockaddr_in *sa)
{
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd == -1)
		die("socket", errno);
	c->t0 = now_ns();
	c->state = CH_CONNECT;
	struct io_uring_sqe *sqe = sqe_get();
	io_uring_prep_connect(sqe, c->fd, (const struct sockaddr *)sa, sizeof(*sa));
	io_uring_sqe_set_data64(sqe, ud(c, CH_CONNECT));
}

static int cmd_churn(const struct opts *o)
{
	const uint64_t resp = MSG_SIZE;
	int n = o->streams;
	struct cconn *cs = conns_alloc(n);
	struct hist *h = calloc(1, sizeof(*h));
	if (!h)
		die("calloc", ENOMEM);
	uint64_t t_start = now_ns(), last_progress = t_start;
	uint64_t warm_end = t_start + (uint64_t)(o->warmup * 1e9);
	uint64_t deadline = t_start + (uint64_t)(o->seconds * 1e9);
	uint64_t counted = 0, all = 0, errors = 0;
	int active = n, last_err = 0;
	const char *err = NULL;

	for (int i = 0; i < n; i++)
		churn_start(&cs[i], &o->addr);
	while (active > 0) {
		if (!ring_wait(WAIT_SLICE_NS)) {
			if (secs(now_ns() - last_progress) > STALL_LIMIT_S) {
				err = "stalled";
				break;
			}
			continue;
		}
		uint64_t t = now_ns();
		last_progress = t;
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			seen++;
			struct cconn *c = ud_ptr(cqe->user_data);
			unsigned tag = ud_tag(cqe->user_data);
			int res = cqe->res;
			bool finished = false, failed = false;
			if (tag == CH_CONNECT) {
				if (res < 0) {
					failed = true;
					last_err = -res;
				} else {
					sock_opts(c->fd);
					c->state = 0;
					uint64_t t0 = c->t0;
					rr_start(c, resp, FL_CLOSE);
					c->t0 = t0;
				}
			} else if (tag == CH_EOF) {
				if (res > 0) {
					failed = true; /* more bytes than asked for */
					last_err = EPROTO;
				} else {
					finished = res == 0;
					failed = res < 0;
					if (res < 0)
						last_err = -res;
				}
			} else {
				int r = rr_complete(c, tag, res, resp);
				if (r < 0) {
					failed = true;
					last_err = res < 0 ? -res : ECONNRESET;
				} else if (r == 1) {
					c->state = CH_EOF;
					post_recv(c->fd, discard, CHUNK, ud(c, CH_EOF));
				}
			}
			if (!finished && !failed)
				continue;
			close(c->fd);
			c->fd = -1;
			all++;
			if (failed)
				errors++;
			else if (t > warm_end && t <= deadline) {
				counted++;
				hist_add(h, t - c->t0);
			}
			if (t < deadline)
				churn_start(c, &o->addr);
			else
				active--;
		}
		io_uring_cq_advance(&ring, seen);
	}
	double window = o->seconds - o->warmup;
	json_head("churn", o);
	printf(", \"conc\": %d, \"seconds\": %.6f, \"streams\": %" PRIu64
	       ", \"streams_total\": %" PRIu64 ", \"errors\": %" PRIu64
	       ", \"streams_per_s\": %.2f, ",
	       n, window, counted, all, errors, (double)counted / window);
	hist_print(h);
	if (last_err)
		printf(", \"last_error\": \"%s\"", strerror(last_err));
	if (err)
		printf(", \"error\": \"%s\"", err);
	printf("}\n");
	/* A few failures under churn are a finding to report, not a harness error. */
	return err || (errors && errors * 100 > all) ? 1 : 0;
}

/* ---- scale: many idle streams, then a low request rate over all of them ------------- */

static int cmd_scale(const struct opts *o)
{
	const uint64_t resp = MSG_SIZE;
	int n = o->streams;
	rlim_t lim = raise_nofile();
	if ((rlim_t)n + 64 > lim) {
		fprintf(stderr, "loadgen scale: RLIMIT_NOFILE %llu is too low for %d streams\n",
		        (unsigned long long)lim, n);
		return 1;
	}
	struct cconn *cs = conns_alloc(n);
	struct hist *h = calloc(1, sizeof(*h));
	if (!h)
		die("calloc", ENOMEM);
	uint64_t t_start = now_ns(), last_progress = t_start;
	int next = 0, ready = 0, inflight = 0, failed = 0, last_err = 0;
	const char *err = NULL;

	/* Open: CONNECT_BATCH connects in flight; each stream then makes one request so it
	 * exists end to end (through a tunnel, up to the upstream) before it counts. */
	while (ready + failed < n) {
		while (inflight < CONNECT_BATCH && next < n) {
			churn_start(&cs[next++], &o->addr);
			inflight++;
		}
		if (!ring_wait(WAIT_SLICE_NS)) {
			if (secs(now_ns() - last_progress) > STALL_LIMIT_S) {
				err = "stalled while opening streams";
				break;
			}
			continue;
		}
		last_progress = now_ns();
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			seen++;
			struct cconn *c = ud_ptr(cqe->user_data);
			unsigned tag = ud_tag(cqe->user_data);
			int res = cqe->res, r;
			if (tag == CH_CONNECT) {
				if (res < 0) {
					r = -1;
					last_err = -res;
				} else {
					sock_opts(c->fd);
					c->state = 0;
					rr_start(c, resp, 0);
					r = 0;
				}
			} else {
				r = rr_complete(c, tag, res, resp);
				if (r < 0)
					last_err = res < 0 ? -res : ECONNRESET;
			}
			if (r == 0)
				continue;
			inflight--;
			if (r < 0) {
				failed++;
				close(c->fd);
				c->fd = -1;
				c->state = 9;
			} else {
				ready++;
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	double setup_s = secs(now_ns() - t_start);
	phase("idle", ready);

	/* Idle: nothing in flight, nothing to wait for. */
	struct timespec idle = {.tv_sec = (time_t)o->idle_s,
	                        .tv_nsec =
	                                (long)((o->idle_s - (double)(time_t)o->idle_s) * 1e9)};
	if (!err)
		nanosleep(&idle, NULL);

	/* Active: o->rate requests per second in total, spread over the open streams
	 * round-robin, each stream at most one request in flight. */
	phase("active", ready);
	uint64_t a_start = now_ns(), a_end = a_start + (uint64_t)(o->active_s * 1e9);
	uint64_t issued = 0, completed = 0, req_errors = 0, skipped = 0;
	int rr_next = 0;
	inflight = 0;
	last_progress = a_start;
	while (!err) {
		uint64_t t = now_ns();
		if (t >= a_end && inflight == 0)
			break;
		if (t >= a_end + (uint64_t)(STALL_LIMIT_S * 1e9)) {
			err = "requests still in flight after the active phase";
			break;
		}
		uint64_t due = t < a_end ? (uint64_t)(secs(t - a_start) * o->rate) : issued;
		while (issued < due) {
			struct cconn *c = NULL;
			for (int k = 0; k < n && !c; k++) {
				struct cconn *cand = &cs[rr_next];
				rr_next = (rr_next + 1) % n;
				if (cand->state == 0 && cand->fd >= 0 && !cand->send_busy &&
				    !cand->recv_busy)
					c = cand;
			}
			issued++;
			if (!c) {
				skipped++;
				continue;
			}
			rr_start(c, resp, 0);
			inflight++;
		}
		if (!ring_wait(1000000ull)) /* 1 ms: the pacing tick */
			continue;
		t = now_ns();
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		io_uring_for_each_cqe(&ring, head, cqe)
		{
			seen++;
			struct cconn *c = ud_ptr(cqe->user_data);
			if (c->state != 0)
				continue;
			int r = rr_complete(c, ud_tag(cqe->user_data), cqe->res, resp);
			if (r == 0)
				continue;
			inflight--;
			if (r < 0) {
				req_errors++;
				c->state = 9;
				c->send_busy = c->recv_busy = false;
			} else {
				completed++;
				hist_add(h, t - c->t0);
			}
		}
		io_uring_cq_advance(&ring, seen);
	}
	double active_s = secs(now_ns() - a_start);
	phase("done", ready);
	json_head("scale", o);
	printf(", \"streams_wanted\": %d, \"streams\": %d, \"failed\": %d, \"setup_seconds\": "
	       "%.3f, \"idle_seconds\": %.3f, \"active_seconds\": %.3f, \"rate\": %.1f, "
	       "\"requests\": %" PRIu64 ", \"request_errors\": %" PRIu64
	       ", \"skipped\": %" PRIu64 ", \"rps\": %.2f, ",
	       n, ready, failed, setup_s, o->idle_s, active_s, o->rate, completed, req_errors,
	       skipped, active_s > 0 ? (double)completed / active_s : 0.0);
	hist_print(h);
	if (last_err)
		printf(", \"last_error\": \"%s\"", strerror(last_err));
	if (err)
		printf(", \"error\": \"%s\"", err);
	printf("}\n");
	for (int i = 0; i < n; i++)
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	return err || failed || req_errors ? 1 : 0;
}

/* ---- single-stream readers: slow consumer and HTTP ---------------------------------- */

/* One recv on fd into buf, bounded by STALL_LIMIT_S; returns its result or -ETIME. */
static int recv_one(int fd, void *buf, size_t len)
{
	post_recv(fd, buf, len, 0);
	uint64_t t0 = now_ns();
	for (;;) {
		if (ring_wait(WAIT_SLICE_NS)) {
			struct io_uring_cqe *cqe;
			io_uring_peek_cqe(&ring, &cqe);
			int res = cqe->res;
			io_uring_cqe_seen(&ring, cqe);
			return res;
		}
		if (secs(now_ns() - t0) > STALL_LIMIT_S)
			return -ETIME;
	}
}

static int cmd_slow(const struct opts *o)
{
	uint8_t *buf = malloc(CHUNK);
	if (!buf)
		die("malloc", ENOMEM);
	int fd = dial(&o->addr);
	if (fd < 0)
		die("connect", -fd);
	struct msg m;
	msg_fill(&m, OP_SOURCE, 0, o->bytes);
	if (write_all(fd, &m, MSG_SIZE))
		die("send", errno);
	/* Stop reading: the upstream keeps sending; whatever buffers it on the way shows in
	 * the memory the harness samples now. */
	phase("paused", 0);
	struct timespec ts = {.tv_sec = (time_t)o->pause,
	                      .tv_nsec = (long)((o->pause - (double)(time_t)o->pause) * 1e9)};
	nanosleep(&ts, NULL);
	phase("reading", 0);
	uint64_t t0 = now_ns(), got = 0, bad_at = UINT64_MAX;
	int res = 0;
	while (got < o->bytes) {
		res = recv_one(fd, buf, CHUNK);
		if (res <= 0)
			break;
		if (bad_at == UINT64_MAX && !pat_check(buf, (size_t)res, got))
			bad_at = pat_first_diff(buf, (size_t)res, got);
		got += (uint64_t)res;
	}
	/* The source closes after the last byte: an EOF now, not more bytes. */
	int eof = got == o->bytes ? recv_one(fd, buf, CHUNK) : -1;
	double read_s = secs(now_ns() - t0);
	close(fd);
	bool ok = got == o->bytes && bad_at == UINT64_MAX && eof == 0;
	json_head("slow", o);
	printf(", \"bytes_wanted\": %" PRIu64 ", \"bytes\": %" PRIu64
	       ", \"pause_seconds\": %.3f, \"read_seconds\": %.3f, \"byte_exact\": %s, "
	       "\"eof\": %s",
	       o->bytes, got, o->pause, read_s, ok ? "true" : "false",
	       eof == 0 ? "true" : "false");
	if (bad_at != UINT64_MAX)
		printf(", \"first_bad_byte\": %" PRIu64, bad_at);
	if (res < 0)
		printf(", \"error\": \"%s\"", strerror(-res));
	printf("}\n");
	return ok ? 0 : 1;
}

static int cmd_http(const struct opts *o)
{
	uint8_t *buf = malloc(CHUNK);
	char headbuf[HTTP_HEAD_MAX + 1];
	if (!buf)
		die("malloc", ENOMEM);
	int fd = dial(&o->addr);
	if (fd < 0)
		die("connect", -fd);
	char req[256];
	int rl = snprintf(req, sizeof(req),
	                  "GET /federate?bytes=%" PRIu64 "&delay_ms=%" PRIu64
	                  " HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\n\r\n",
	                  o->bytes, o->delay_ms, o->addr_s);
	uint64_t t0 = now_ns(), t_first = 0;
	if (write_all(fd, req, (size_t)rl))
		die("send", errno);
	size_t hlen = 0;
	uint64_t body = 0, clen = UINT64_MAX;
	int status = 0, res = 0;
	bool bad = false;
	const char *err = NULL;
	for (;;) {
		res = recv_one(fd, buf, CHUNK);
		if (res <= 0)
			break;
		if (!t_first)
			t_first = now_ns();
		size_t n = (size_t)res;
		const uint8_t *p = buf;
		if (clen == UINT64_MAX) {
			size_t k = n < HTTP_HEAD_MAX - hlen ? n : HTTP_HEAD_MAX - hlen;
			memcpy(headbuf + hlen, p, k);
			headbuf[hlen + k] = 0;
			char *end = strstr(headbuf, "\r\n\r\n");
			if (!end) {
				hlen += k;
				if (hlen >= HTTP_HEAD_MAX) {
					err = "response head too long";
					break;
				}
				continue;
			}
			size_t used = (size_t)(end + 4 - headbuf) - hlen;
			sscanf(headbuf, "HTTP/1.%*d %d", &status);
			char *cl = strcasestr(headbuf, "\r\ncontent-length:");
			clen = cl ? strtoull(cl + 17, NULL, 10) : 0;
			p += used;
			n -= used;
		}
		if (!pat_check(p, n, body))
			bad = true;
		body += n;
		if (body >= clen)
			break;
	}
	uint64_t t_end = now_ns();
	close(fd);
	if (!err && res < 0)
		err = strerror(-res);
	if (!err && body != clen)
		err = "short body";
	bool ok = !err && !bad && status == 200;
	json_head("http", o);
	printf(", \"status\": %d, \"bytes\": %" PRIu64 ", \"delay_ms\": %" PRIu64
	       ", \"ttfb_s\": %.6f, \"total_s\": %.6f, \"body_s\": %.6f, \"byte_exact\": %s",
	       status, body, o->delay_ms, t_first ? secs(t_first - t0) : 0.0, secs(t_end - t0),
	       t_first ? secs(t_end - t_first) : 0.0, !bad && body == clen ? "true" : "false");
	if (err)
		printf(", \"error\": \"%s\"", err);
	printf("}\n");
	return ok ? 0 : 1;
}

/* ---- command line ------------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
	        "usage: loadgen serve --listen HOST:PORT [--listen HOST:PORT ...]\n"
	        "       loadgen bulk  --connect HOST:PORT --dir up|down [--streams N] "
	        "[--seconds S] [--warmup S] [--verify]\n"
	        "       loadgen rr    --connect HOST:PORT --resp BYTES [--conc N] [--seconds "
	        "S] "
	        "[--warmup S]\n"
	        "       loadgen churn --connect HOST:PORT [--conc N] [--seconds S] [--warmup "
	        "S]\n"
	        "       loadgen scale --connect HOST:PORT [--streams N] [--idle-seconds S] "
	        "[--active-seconds S] [--rate R]\n"
	        "       loadgen slow  --connect HOST:PORT [--bytes N] [--pause S]\n"
	        "       loadgen http  --connect HOST:PORT [--bytes N] [--delay-ms MS]\n");
	exit(2);
}

static double num(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || v < 0)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	struct opts o = {
	        .streams = 1,
	        .seconds = 2,
	        .warmup = -1,
	        .up = true,
	        .resp = 1024,
	        .bytes = 1ull << 30,
	        .pause = 3,
	        .delay_ms = 5000,
	        .idle_s = 2,
	        .active_s = 3,
	        .rate = 1000,
	};
	char **listen_on = calloc((size_t)argc, sizeof(char *));
	int nlisten = 0;
	bool have_addr = false;
	if (!listen_on)
		die("calloc", ENOMEM);

	signal(SIGPIPE, SIG_IGN);
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--verify")) {
			o.verify = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--listen")) {
			listen_on[nlisten++] = argv[i];
		} else if (!strcmp(a, "--connect")) {
			if (parse_hostport(v, &o.addr))
				usage();
			o.addr_s = v;
			have_addr = true;
		} else if (!strcmp(a, "--dir")) {
			if (strcmp(v, "up") && strcmp(v, "down"))
				usage();
			o.up = !strcmp(v, "up");
		} else if (!strcmp(a, "--streams") || !strcmp(a, "--conc")) {
			o.streams = (int)num(v);
		} else if (!strcmp(a, "--seconds")) {
			o.seconds = num(v);
		} else if (!strcmp(a, "--warmup")) {
			o.warmup = num(v);
		} else if (!strcmp(a, "--resp")) {
			o.resp = (uint64_t)num(v);
		} else if (!strcmp(a, "--bytes")) {
			o.bytes = (uint64_t)num(v);
		} else if (!strcmp(a, "--pause")) {
			o.pause = num(v);
		} else if (!strcmp(a, "--delay-ms")) {
			o.delay_ms = (uint64_t)num(v);
		} else if (!strcmp(a, "--idle-seconds")) {
			o.idle_s = num(v);
		} else if (!strcmp(a, "--active-seconds")) {
			o.active_s = num(v);
		} else if (!strcmp(a, "--rate")) {
			o.rate = num(v);
		} else {
			usage();
		}
	}
	if (o.streams < 1 || o.streams > 1000000 || o.seconds <= 0)
		usage();
	if (o.warmup < 0)
		o.warmup = o.seconds / 10;
	if (o.warmup >= o.seconds)
		usage();
	pattern_init();
	ring_init();
	if (!strcmp(mode, "serve")) {
		if (!nlisten)
			usage();
		raise_nofile();
		return cmd_serve(nlisten, listen_on);
	}
	if (!have_addr)
		usage();
	if (!strcmp(mode, "bulk"))
		return cmd_bulk(&o);
	if (!strcmp(mode, "rr"))
		return cmd_rr(&o);
	if (!strcmp(mode, "churn"))
		return cmd_churn(&o);
	if (!strcmp(mode, "scale"))
		return cmd_scale(&o);
	if (!strcmp(mode, "slow"))
		return cmd_slow(&o);
	if (!strcmp(mode, "http"))
		return cmd_http(&o);
	usage();
	return 2;
}
