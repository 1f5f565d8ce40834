/* engine/resolve.c — see resolve.h. One thread; the table of watched names is its queue,
 * ordered by when each falls due. The lock is held while the table is read or written,
 * never across getaddrinfo. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/resolve.h"

#define HOST_MAX 256
#define WHAT_MAX 32

struct rname {
	int refs;       /* 0: a free slot */
	uint32_t epoch; /* bumped when the slot is freed: a late result for it is dropped */
	char host[HOST_MAX];
	uint16_t port;
	char what[WHAT_MAX]; /* "": the watchers log */
	uint64_t subs;       /* bit i: subscriber i watches it */
	struct addrlist al;
	uint32_t gen;
	bool inflight, failed;
	int err;
	uint64_t due_ms;   /* the next resolution */
	uint64_t tried_ms; /* when the last one began (0: never) */
	uint32_t retry_ms; /* the next back-off after a failure */
};

struct resolver {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	bool stop;
	int nsubs;
	int fds[RESOLVE_SUBS_MAX];
	struct rname names[RESOLVE_NAMES_MAX];
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool al_equal(const struct addrlist *a, const struct addrlist *b)
{
	if (a->n != b->n)
		return false;
	for (int i = 0; i < a->n; i++)
		if (a->len[i] != b->len[i] || memcmp(&a->addr[i], &b->addr[i], a->len[i]) != 0)
			return false;
	return true;
}

/* "ip,ip" (no ports) for a log line. */
static void al_format(const struct addrlist *al, char *out, size_t cap)
{
	size_t n = 0;
	out[0] = 0;
	for (int i = 0; i < al->n && n + 1 < cap; i++) {
		char ip[INET6_ADDRSTRLEN] = "?";
		const struct sockaddr *sa = (const struct sockaddr *)&al->addr[i];
		if (sa->sa_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip,
			          sizeof(ip));
		else
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
			          sizeof(ip));
		int k = snprintf(out + n, cap - n, "%s%s", i ? "," : "", ip);
		if (k < 0)
			break;
		n += (size_t)k;
	}
}

static void notify(struct resolver *r, uint64_t subs)
{
	uint64_t one = 1;
	for (int i = 0; i < r->nsubs; i++)
		if (subs & (1ull << i)) {
			ssize_t w = write(r->fds[i], &one, sizeof(one));
			(void)w; /* a full counter already means "readable" */
		}
}

/* A resolution of n ended (called with the lock held): keep the answer, schedule the
 * next, log a change of state. */
static void settle(struct rname *n, int err, const struct addrlist *al, uint64_t now)
{
	char msg[128], addrs[4 * (INET6_ADDRSTRLEN + 1)];
	if (err) {
		if (n->what[0] && !n->failed) {
			snprintf(msg, sizeof(msg), "cannot resolve the %s: %s", n->what,
			         n->al.n ? "its last addresses stay in use"
			                 : "streams are refused until it resolves");
			log_warn(msg, "name=%s err=%s retry_ms=%u", log_q(n->host),
			         log_q(gai_strerror(err)), n->retry_ms);
		}
		n->failed = true;
		n->err = err;
		n->due_ms = now + n->retry_ms;
		n->retry_ms = n->retry_ms * 2 > RESOLVE_RETRY_MAX_MS ? RESOLVE_RETRY_MAX_MS
		                                                     : n->retry_ms * 2;
		return;
	}
	bool changed = !al_equal(al, &n->al), had = n->al.n > 0, was_failing = n->failed;
	if (changed) {
		n->al = *al;
		n->gen++;
	}
	n->failed = false;
	n->err = 0;
	n->retry_ms = RESOLVE_RETRY_MIN_MS;
	n->due_ms = now + RESOLVE_REFRESH_MS;
	if (!n->what[0])
		return;
	al_format(&n->al, addrs, sizeof(addrs));
	if (was_failing) {
		snprintf(msg, sizeof(msg), "%s resolves again", n->what);
		log_info(msg, "name=%s addrs=%s", log_q(n->host), log_q(addrs));
	} else if (changed && had) {
		snprintf(msg, sizeof(msg), "%s resolves to new addresses", n->what);
		log_info(msg, "name=%s addrs=%s", log_q(n->host), log_q(addrs));
	} else if (changed) {
		snprintf(msg, sizeof(msg), "%s resolved", n->what);
		log_debug(msg, "name=%s addrs=%s", log_q(n->host), log_q(addrs));
	}
}

/* Resolve n (due; the lock held, released meanwhile). */
static void resolve_one(struct resolver *r, struct rname *n, uint64_t now)
{
	char host[HOST_MAX];
	memcpy(host, n->host, sizeof(host));
	uint16_t port = n->port;
	uint32_t epoch = n->epoch;
	n->inflight = true;
	n->tried_ms = now;
	pthread_mutex_unlock(&r->mu);
	struct addrlist al = {.n = 0};
	int err = net_resolve(host, port, &al);
	pthread_mutex_lock(&r->mu);
	if (n->epoch != epoch)
		return; /* unwatched meanwhile */
	n->inflight = false;
	settle(n, err, &al, now_ms());
	notify(r, n->subs);
}

static void *resolver_main(void *arg)
{
	struct resolver *r = arg;
	pthread_setname_np(pthread_self(), "ringlet-dns");
	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		uint64_t now = now_ms();
		struct rname *next = NULL;
		for (int i = 0; i < RESOLVE_NAMES_MAX; i++) {
			struct rname *n = &r->names[i];
			if (n->refs && !n->inflight && (!next || n->due_ms < next->due_ms))
				next = n;
		}
		if (next && next->due_ms <= now) {
			resolve_one(r, next, now);
			continue;
		}
		/* Until the next falls due (or an hour: a watch or kick signals sooner). */
		uint64_t until = next ? next->due_ms : now + 3600u * 1000u;
		struct timespec ts = {.tv_sec = (time_t)(until / 1000),
		                      .tv_nsec = (long)(until % 1000) * 1000000l};
		pthread_cond_timedwait(&r->cv, &r->mu, &ts);
	}
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

struct resolver *resolver_new(int nsubs)
{
	if (nsubs < 1 || nsubs > RESOLVE_SUBS_MAX)
		return NULL;
	struct resolver *r = calloc(1, sizeof(*r));
	if (!r) {
		log_error("cannot start the name resolver", "err=%s", log_q(strerror(ENOMEM)));
		return NULL;
	}
	r->nsubs = nsubs;
	for (int i = 0; i < RESOLVE_SUBS_MAX; i++)
		r->fds[i] = -1;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&r->mu, NULL);
	int err = 0;
	for (int i = 0; i < nsubs && !err; i++) {
		r->fds[i] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (r->fds[i] == -1)
			err = errno;
	}
	if (!err) {
		/* The thread takes no signals: the process handles them on its main thread
		 * (the engine blocks them there only later, and a thread inherits its mask). */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		err = pthread_create(&r->thread, NULL, resolver_main, r);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (err) {
		log_error("cannot start the name resolver", "err=%s", log_q(strerror(err)));
		for (int i = 0; i < nsubs; i++)
			if (r->fds[i] >= 0)
				close(r->fds[i]);
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		free(r);
		return NULL;
	}
	return r;
}

void resolver_free(struct resolver *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	for (int i = 0; i < r->nsubs; i++)
		close(r->fds[i]);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

int resolver_fd(const struct resolver *r, int sub)
{
	return sub >= 0 && sub < r->nsubs ? r->fds[sub] : -1;
}

void resolver_ack(struct resolver *r, int sub)
{
	uint64_t v;
	if (sub >= 0 && sub < r->nsubs) {
		ssize_t n = read(r->fds[sub], &v, sizeof(v));
		(void)n; /* EAGAIN: already empty */
	}
}

int resolver_watch(struct resolver *r, const char *what, const char *host, uint16_t port,
                   int sub)
{
	size_t hl = strlen(host);
	if (sub < 0 || sub >= r->nsubs || hl == 0 || hl >= HOST_MAX)
		return -EINVAL;
	int id = -ENOSPC;
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < RESOLVE_NAMES_MAX && id < 0; i++) {
		struct rname *n = &r->names[i];
		if (n->refs && n->port == port && strcmp(n->host, host) == 0) {
			n->refs++;
			n->subs |= 1ull << sub;
			id = i;
		}
	}
	for (int i = 0; i < RESOLVE_NAMES_MAX && id < 0; i++) {
		struct rname *n = &r->names[i];
		if (n->refs)
			continue;
		uint32_t epoch = n->epoch;
		memset(n, 0, sizeof(*n));
		n->epoch = epoch;
		n->refs = 1;
		memcpy(n->host, host, hl + 1);
		n->port = port;
		snprintf(n->what, sizeof(n->what), "%s", what ? what : "");
		n->subs = 1ull << sub;
		n->retry_ms = RESOLVE_RETRY_MIN_MS;
		n->due_ms = 0; /* now */
		pthread_cond_signal(&r->cv);
		id = i;
	}
	pthread_mutex_unlock(&r->mu);
	return id;
}

void resolver_unwatch(struct resolver *r, int id)
{
	if (id < 0 || id >= RESOLVE_NAMES_MAX)
		return;
	pthread_mutex_lock(&r->mu);
	struct rname *n = &r->names[id];
	if (n->refs && --n->refs == 0) {
		n->epoch++;
		n->inflight = false;
	}
	pthread_mutex_unlock(&r->mu);
}

void resolver_get(struct resolver *r, int id, struct resolve_view *out)
{
	memset(out, 0, sizeof(*out));
	if (id < 0 || id >= RESOLVE_NAMES_MAX) {
		out->failed = true;
		out->err = EAI_NONAME;
		return;
	}
	uint64_t now = now_ms();
	pthread_mutex_lock(&r->mu);
	const struct rname *n = &r->names[id];
	out->al = n->al;
	out->gen = n->gen;
	out->busy = n->refs && (n->inflight || n->due_ms <= now);
	out->failed = n->failed;
	out->err = n->err;
	pthread_mutex_unlock(&r->mu);
}

void resolver_kick(struct resolver *r, int id)
{
	if (id < 0 || id >= RESOLVE_NAMES_MAX)
		return;
	uint64_t now = now_ms();
	pthread_mutex_lock(&r->mu);
	struct rname *n = &r->names[id];
	if (n->refs && !n->inflight) {
		uint64_t t = n->tried_ms + RESOLVE_RETRY_MIN_MS;
		if (t < now)
			t = now;
		if (t < n->due_ms) {
			n->due_ms = t;
			pthread_cond_signal(&r->cv);
		}
	}
	pthread_mutex_unlock(&r->mu);
}
