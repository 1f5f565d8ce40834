/* engine/loop/bufring.c — provided buffer rings sized by demand.
 *
 * A ring is registered with room for nbufs buffers (the maximum), but only `target` of
 * them circulate (in the kernel's ring or held by the layers above); the others are
 * parked here, their pages not resident. The kernel consumes a ring in FIFO order, so
 * every circulating buffer becomes resident under load: the target, not the maximum, is
 * what a busy shard costs.
 *
 *   - grow:   a recv that found the ring empty (-ENOBUFS) calls bufring_starved(): the
 *             target doubles (once per loop turn, up to nbufs) and parked buffers go to
 *             the kernel at once;
 *   - shrink: once a period (BUFRING_PERIOD_MS, from the shard's tick), a ring that was
 *             never starved and whose buffers in use stayed below half its target
 *             halves the target (never below its floor). Buffers are never taken back
 *             from the kernel: a returned buffer over the target is parked instead of
 *             given back, and its pages released with MADV_DONTNEED;
 *   - quiet:  a ring from which nothing was taken for a whole period releases the pages
 *             of the buffers the kernel holds (bufring_release_idle, called by the shard
 *             only where that is safe: see shard.c). They stay in the kernel's ring and
 *             are faulted in again when used.
 *
 * The layers above count the buffers they hold (b->out++ on a completion with a
 * buffer) and give each back with bufring_put(), as before.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/loop/shard.h"

/* Release the whole pages inside [p, p + len). */
static void zap(uint8_t *p, size_t len)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = ((uintptr_t)p + pg - 1) & ~(pg - 1);
	uintptr_t e = ((uintptr_t)p + len) & ~(pg - 1);
	if (e > a)
		madvise((void *)a, e - a, MADV_DONTNEED);
}

static void give(struct bufring *b, uint16_t bid, int off)
{
	io_uring_buf_ring_add(b->br, bufring_addr(b, bid), b->bufsz, bid, (int)b->mask, off);
}

/* Move parked buffers to the kernel until the target circulates. */
static void unpark(struct bufring *b)
{
	int n = 0;
	while (b->nparked && b->nbufs - b->nparked < b->target)
		give(b, b->parked[--b->nparked], n++);
	if (n)
		io_uring_buf_ring_advance(b->br, n);
}

int bufring_setup(struct bufring *b, struct io_uring_buf_ring *br, uint8_t *mem, uint16_t bgid,
                  uint32_t nbufs, uint32_t bufsz, uint32_t min)
{
	memset(b, 0, sizeof(*b));
	if (nbufs == 0 || nbufs > 32768 || (nbufs & (nbufs - 1)))
		return -EINVAL;
	b->parked = malloc(nbufs * sizeof(*b->parked));
	if (!b->parked)
		return -ENOMEM;
	b->br = br;
	b->mem = mem;
	b->nbufs = nbufs;
	b->bufsz = bufsz;
	b->bgid = bgid;
	b->mask = (uint32_t)io_uring_buf_ring_mask(nbufs);
	b->min = min == 0 ? 1 : min > nbufs ? nbufs : min;
	b->target = b->min;
	/* Parked highest first, so the lowest bids circulate: the resident part of the
	 * ring's memory stays at its start. */
	for (uint32_t i = nbufs; i-- > b->target;)
		b->parked[b->nparked++] = (uint16_t)i;
	io_uring_buf_ring_init(b->br);
	for (uint32_t i = 0; i < b->target; i++)
		give(b, (uint16_t)i, (int)i);
	io_uring_buf_ring_advance(b->br, (int)b->target);
	return 0;
}

void bufring_teardown(struct bufring *b)
{
	free(b->parked);
	b->parked = NULL;
	b->nparked = 0;
}

void bufring_put(struct bufring *b, uint16_t bid)
{
	b->out--;
	b->turn_puts++;
	if (b->target && b->nbufs - b->nparked > b->target) {
		b->parked[b->nparked++] = bid;
		zap(bufring_addr(b, bid), b->bufsz);
		return;
	}
	give(b, bid, 0);
	io_uring_buf_ring_advance(b->br, 1);
}

void bufring_starved(struct bufring *b)
{
	b->starved = true;
	if (!b->target || b->grown || b->target >= b->nbufs)
		return;
	b->grown = true;
	b->target = b->target * 2 > b->nbufs ? b->nbufs : b->target * 2;
	unpark(b);
}

void bufring_turn(struct bufring *b)
{
	/* Held at the start of the turn plus taken during it (held now plus given back):
	 * at most that many were out of the kernel at once. */
	uint32_t used = b->out + b->turn_puts;
	if (used > b->hw)
		b->hw = used;
	b->taken += used - b->turn_out;
	b->turn_out = b->out;
	b->turn_puts = 0;
	b->grown = false;
}

bool bufring_tick(struct bufring *b, uint64_t now_ms)
{
	if (now_ms - b->period_ms < BUFRING_PERIOD_MS)
		return b->idle;
	b->period_ms = now_ms;
	if (b->target && !b->starved && b->hw * 2 < b->target && b->target > b->min)
		b->target = b->target / 2 < b->min ? b->min : b->target / 2;
	b->idle = b->taken == 0 && b->out == 0;
	if (!b->idle)
		b->released = false;
	b->hw = b->out;
	b->taken = 0;
	b->starved = false;
	return b->idle;
}

uint32_t bufring_release_idle(struct bufring *b)
{
	if (!b->target || b->released)
		return 0;
	b->released = true;
	/* The kernel consumes from the head, so the buffers it holds are the last k added
	 * before the tail. */
	uint32_t k = bufring_in_kernel(b);
	uint16_t tail = b->br->tail;
	for (uint32_t i = 0; i < k; i++) {
		uint16_t bid = b->br->bufs[(uint16_t)(tail - k + i) & b->mask].bid;
		zap(bufring_addr(b, bid), b->bufsz);
	}
	return k;
}

int bufring_init(struct io_uring *ring, struct bufring *b, uint16_t bgid, uint32_t nbufs,
                 uint32_t bufsz)
{
	memset(b, 0, sizeof(*b));
	size_t ring_sz = (size_t)nbufs * sizeof(struct io_uring_buf);
	void *rmem =
	        mmap(NULL, ring_sz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (rmem == MAP_FAILED)
		return -errno;
	void *mem = mmap(NULL, (size_t)nbufs * bufsz, PROT_READ | PROT_WRITE,
	                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		int err = -errno;
		munmap(rmem, ring_sz);
		return err;
	}
	struct io_uring_buf_reg reg = {
	        .ring_addr = (unsigned long)(uintptr_t)rmem,
	        .ring_entries = nbufs,
	        .bgid = bgid,
	};
	/* The kernel reads the ring's entries only from the tail we publish, so the
	 * entries may be written after the registration. */
	int ret = io_uring_register_buf_ring(ring, &reg, 0);
	if (ret == 0) {
		ret = bufring_setup(b, rmem, mem, bgid, nbufs, bufsz, BUFRING_MIN);
		if (ret)
			io_uring_unregister_buf_ring(ring, bgid);
	}
	if (ret) {
		munmap(mem, (size_t)nbufs * bufsz);
		munmap(rmem, ring_sz);
		return ret;
	}
	return 0;
}

void bufring_free(struct io_uring *ring, struct bufring *b)
{
	if (!b->br)
		return;
	io_uring_unregister_buf_ring(ring, b->bgid);
	munmap(b->mem, (size_t)b->nbufs * b->bufsz);
	munmap(b->br, (size_t)b->nbufs * sizeof(struct io_uring_buf));
	bufring_teardown(b);
	b->br = NULL;
	b->mem = NULL;
}
