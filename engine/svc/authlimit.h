/* engine/svc/authlimit.h — failed authentications per source address on the server's
 * control port (the /connect upgrade and the Bearer-protected routes).
 *
 * After `max` failures from one source within `interval_ms` (a window opened by the
 * source's first failure), the source is refused — answered 429 with Retry-After, its
 * token not checked — for `interval_ms` from its max-th failure. Default 10 per 60 s
 * (--auth-fail-limit); max 0 turns the limit off.
 *
 * A failure counts only when its token differs from the source's last AUTHLIMIT_TOKENS
 * wrong ones (no token is one token too): guessing needs new tokens, while a client left
 * with a stale token (a rotated secret, a removed tunnel) repeats its own, and ringlet's
 * client retrying every 4 s would otherwise have its address — and every other client
 * behind it — refused within a minute. Every failure is still answered 401 and counted.
 *
 * A source is the peer's address (an IPv6 peer: its /64, what one host usually has), and
 * with an X-Forwarded-For header (behind an ingress) the pair (peer, first entry of the
 * header): clients behind one ingress are told apart, and an attacker there cannot lock
 * the others out without knowing their addresses (but can dodge the limit by varying the
 * header; the tokens' entropy, not this limit, is what keeps them unguessable).
 *
 * The table is fixed: AUTHLIMIT_SETS sets of AUTHLIMIT_WAYS entries (4096 sources, 192
 * KiB), a source placed by a keyed hash (SipHash with a random key, so an attacker cannot
 * aim many addresses at one set); a new source takes the set's least recently failed
 * entry. Memory does not grow with the number of addresses; with more than 4096 sources
 * failing at once, the oldest are forgotten (and start over).
 *
 * Thread-safe: one mutex guards the table (every shard's control requests use it; it is
 * taken only by requests that need a token). */
#ifndef RINGLET_ENGINE_SVC_AUTHLIMIT_H
#define RINGLET_ENGINE_SVC_AUTHLIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTHLIMIT_SETS 1024
#define AUTHLIMIT_WAYS 4
#define AUTHLIMIT_TOKENS 4 /* a source's last wrong tokens, remembered to count new ones */

/* Pick the hash key and empty the table. Once, before the shards start. */
void authlimit_init(void);

/* The source of a request: peer is the peer's address as text (addr_format's
 * "1.2.3.4:port" or "[v6]:port"; the port is ignored); fwd[0..fwd_len) the first
 * X-Forwarded-For entry (fwd_len 0: none). Never 0. */
uint64_t authlimit_key(const char *peer, const char *fwd, size_t fwd_len);

/* Is source refused now (max 0: never)? Returns 0 (no), or the seconds until it is not
 * (at least 1). */
uint32_t authlimit_refused(uint64_t src, uint64_t now_ms, unsigned max);

/* The fingerprint of a presented token tok[0..len) (len 0: none), for authlimit_failed. */
uint32_t authlimit_token(const char *tok, size_t len);

/* A failed authentication of src with token fingerprint tok at now_ms: counted when tok is
 * not among src's last wrong ones. Returns true when this failure is the one that gets the
 * source refused. max 0: counts nothing, returns false. */
bool authlimit_failed(uint64_t src, uint32_t tok, uint64_t now_ms, unsigned max,
                      unsigned interval_ms);

#endif
