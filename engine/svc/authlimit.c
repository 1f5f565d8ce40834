/* engine/svc/authlimit.c — failed authentications per source address (see authlimit.h). */
#include "engine/svc/authlimit.h"

#include <arpa/inet.h>
#include <openssl/rand.h>
#include <openssl/siphash.h>
#include <pthread.h>
#include <string.h>

struct authlimit_entry {
	uint64_t src;                    /* 0: free */
	uint64_t start_ms;               /* the window: opened by the first failure */
	uint64_t last_ms;                /* the last failure (which entry a new source takes) */
	uint64_t refused_until;          /* 0: not refused */
	uint32_t failures;               /* in the window */
	uint32_t toks[AUTHLIMIT_TOKENS]; /* the last wrong tokens' fingerprints */
	uint32_t ntoks;                  /* how many were seen (the next goes to ntoks % N) */
};

static pthread_mutex_t al_mu = PTHREAD_MUTEX_INITIALIZER;
/* Under al_mu (the key: written once by authlimit_init, before the shards). */
static struct authlimit_entry al_tab[AUTHLIMIT_SETS][AUTHLIMIT_WAYS];
static uint64_t al_key[2];
static bool al_used; /* an entry was written: the table is not all zeros (under al_mu) */

void authlimit_init(void)
{
	pthread_mutex_lock(&al_mu);
	RAND_bytes((uint8_t *)al_key, sizeof(al_key));
	/* Zero already unless used: clearing it would make all its pages resident. */
	if (al_used)
		memset(al_tab, 0, sizeof(al_tab));
	al_used = false;
	pthread_mutex_unlock(&al_mu);
}

/* The address of peer ("1.2.3.4:port", "[v6]:port", or without the port) as bytes: an
 * IPv4 address (also IPv4-mapped) its 4 bytes, an IPv6 address its /64 (one host's
 * usual share); anything else its text. Returns the length written to out[0..64). */
static size_t peer_bytes(const char *peer, uint8_t out[64])
{
	char host[64];
	const char *end = NULL;
	uint8_t a6[16];

	if (peer[0] == '[') {
		peer++;
		end = strchr(peer, ']');
	} else if ((end = strchr(peer, ':')) && strchr(end + 1, ':')) {
		end = NULL; /* a bare IPv6 address */
	}
	size_t n = end ? (size_t)(end - peer) : strnlen(peer, sizeof(host) - 1);
	if (n > sizeof(host) - 1)
		n = sizeof(host) - 1;
	memcpy(host, peer, n);
	host[n] = 0;
	if (inet_pton(AF_INET, host, out) == 1)
		return 4;
	if (inet_pton(AF_INET6, host, a6) == 1) {
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (!memcmp(a6, mapped, sizeof(mapped))) {
			memcpy(out, a6 + 12, 4);
			return 4;
		}
		memcpy(out, a6, 8);
		return 8;
	}
	memcpy(out, host, n);
	return n;
}

uint64_t authlimit_key(const char *peer, const char *fwd, size_t fwd_len)
{
	uint8_t buf[192];
	size_t n = peer_bytes(peer, buf);

	if (fwd_len) {
		if (fwd_len > sizeof(buf) - n - 1)
			fwd_len = sizeof(buf) - n - 1;
		buf[n++] = '|';
		memcpy(buf + n, fwd, fwd_len);
		n += fwd_len;
	}
	uint64_t h = SIPHASH_24(al_key, buf, n);
	return h ? h : 1;
}

uint32_t authlimit_token(const char *tok, size_t len)
{
	uint64_t h = SIPHASH_24(al_key, (const uint8_t *)(len ? tok : ""), len);
	return (uint32_t)(h ^ (h >> 32));
}

/* Is tok among e's last wrong tokens? If not, remember it. */
static bool seen_token(struct authlimit_entry *e, uint32_t tok)
{
	uint32_t n = e->ntoks < AUTHLIMIT_TOKENS ? e->ntoks : AUTHLIMIT_TOKENS;

	for (uint32_t i = 0; i < n; i++)
		if (e->toks[i] == tok)
			return true;
	e->toks[e->ntoks++ % AUTHLIMIT_TOKENS] = tok;
	return false;
}

/* src's entry, or NULL when it has none. Under al_mu. */
static struct authlimit_entry *find(uint64_t src)
{
	struct authlimit_entry *set = al_tab[src % AUTHLIMIT_SETS];

	for (int i = 0; i < AUTHLIMIT_WAYS; i++)
		if (set[i].src == src)
			return &set[i];
	return NULL;
}

uint32_t authlimit_refused(uint64_t src, uint64_t now_ms, unsigned max)
{
	uint32_t wait = 0;

	if (!max)
		return 0;
	pthread_mutex_lock(&al_mu);
	struct authlimit_entry *e = find(src);
	if (e && e->refused_until > now_ms)
		wait = (uint32_t)((e->refused_until - now_ms + 999) / 1000);
	pthread_mutex_unlock(&al_mu);
	return wait;
}

bool authlimit_failed(uint64_t src, uint32_t tok, uint64_t now_ms, unsigned max,
                      unsigned interval_ms)
{
	bool now_refused = false;

	if (!max)
		return false;
	pthread_mutex_lock(&al_mu);
	struct authlimit_entry *e = find(src);
	if (!e) {
		/* A free entry, else the one whose last failure is oldest. */
		struct authlimit_entry *set = al_tab[src % AUTHLIMIT_SETS];

		e = &set[0];
		for (int i = 0; i < AUTHLIMIT_WAYS && e->src; i++)
			if (!set[i].src || set[i].last_ms < e->last_ms)
				e = &set[i];
		memset(e, 0, sizeof(*e));
		e->src = src;
		al_used = true;
	}
	e->last_ms = now_ms;
	if (seen_token(e, tok))
		goto out;
	if (!e->failures || now_ms - e->start_ms >= interval_ms) {
		e->start_ms = now_ms;
		e->failures = 0;
	}
	if (++e->failures >= max && e->refused_until <= now_ms) {
		e->refused_until = now_ms + interval_ms;
		e->failures = 0;
		now_refused = true;
	}
out:
	pthread_mutex_unlock(&al_mu);
	return now_refused;
}
