/* engine/mux/credit.h — a stream's credit arithmetic (docs/PROTOCOL.md §5), as pure
 * functions: no state but what is passed in, so every boundary is tested on its own
 * (tests/engine/mux/credit.c).
 *
 * The receiving end grants a stream the whole window while it is alone on its lane, an
 * equal share when the lane carries several, never less than CREDIT_SHARE_MIN; it does so
 * by giving back less than was written. It gives credit back in batches (an eighth of the
 * share), so a stream carrying small requests does not cost a WINDOW message per request,
 * and at once whenever the peer is about to run out with nothing buffered, so no stream
 * stalls. The sender sees only fewer, smaller WINDOW increments. */
#ifndef RINGLET_ENGINE_MUX_CREDIT_H
#define RINGLET_ENGINE_MUX_CREDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CREDIT_SHARE_MIN (256u * 1024)

/* The credit a stream may hold (granted and unused, plus what is buffered for it) when
 * nstreams share a lane whose per-stream window is `window`: window / nstreams, at least
 * min(window, CREDIT_SHARE_MIN). nstreams 0 counts as 1. */
static inline uint32_t credit_target(uint32_t window, uint32_t nstreams)
{
	uint32_t floor = window < CREDIT_SHARE_MIN ? window : CREDIT_SHARE_MIN;
	uint32_t share = window / (nstreams ? nstreams : 1);
	return share > floor ? share : floor;
}

/* How much credit to give back now, of `unacked` bytes written to the stream's socket and
 * not yet granted back, when the peer may still send `outstanding` and `buffered` bytes
 * wait to be written: up to the target, in batches of at least target / 8; or whatever is
 * due when nothing is buffered and the peer's credit is low (under target / 8: a drained
 * stream whose peer has run out always gets credit). 0: not now.
 *
 * A drained stream whose peer still holds target / 8 or more is not stalled: the peer can
 * send, and the bytes it sends come back through here once written. Waiting for a batch
 * spares a WINDOW message (often its own send and a wake-up of the peer) per small write. */
static inline uint32_t credit_grant(uint32_t target, uint32_t outstanding, uint32_t buffered,
                                    uint32_t unacked)
{
	uint64_t hold = (uint64_t)outstanding + buffered;
	uint32_t k = target > hold ? (uint32_t)(target - hold) : 0;
	if (k > unacked)
		k = unacked;
	uint32_t batch = target / 8;
	if (k && (k >= batch || (buffered == 0 && outstanding < batch)))
		return k;
	return 0;
}

/* Does a DATA payload of n bytes exceed the credit the peer still has (`outstanding`)? A
 * peer that overruns gets its stream reset. */
static inline bool credit_overrun(uint32_t outstanding, size_t n)
{
	return n > outstanding;
}

/* Add a WINDOW increment to the sender's credit. false (credit unchanged) when the sum
 * would not fit 32 bits: the peer is broken and the stream is reset. */
static inline bool credit_add(uint32_t *credit, uint32_t inc)
{
	if ((uint64_t)*credit + inc > UINT32_MAX)
		return false;
	*credit += inc;
	return true;
}

#endif
