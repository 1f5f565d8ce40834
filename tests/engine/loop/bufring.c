/* tests/engine/loop/bufring.c — a provided buffer ring sized by demand
 * (engine/loop/bufring.c): it starts small, grows when a recv finds it empty, parks and
 * releases what it no longer needs once the shard is quiet, and never loses a buffer. The
 * test plays the kernel: it takes buffers from the ring's head as a recv would. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/loop/shard.h"

#define NBUFS 32
#define BUFSZ (64 * 1024)

static struct bufring B;
static struct io_uring_buf_ring *br;
static uint8_t *mem;
static uint16_t khead; /* the "kernel's" head */

static void setup(void)
{
	br = mmap(NULL, NBUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE,
	          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mem = mmap(NULL, (size_t)NBUFS * BUFSZ, PROT_READ | PROT_WRITE,
	           MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(br != MAP_FAILED && mem != MAP_FAILED);
	khead = 0;
	cr_assert_eq(bufring_setup(&B, br, mem, 1, NBUFS, BUFSZ, 4), 0);
}

static void teardown(void)
{
	bufring_teardown(&B);
	munmap(mem, (size_t)NBUFS * BUFSZ);
	munmap(br, NBUFS * sizeof(struct io_uring_buf));
}

TestSuite(bufring, .init = setup, .fini = teardown);

/* Buffers the kernel could take now (published tail minus its head). */
static uint32_t kernel_has(void)
{
	return (uint16_t)(__atomic_load_n(&br->tail, __ATOMIC_ACQUIRE) - khead);
}

/* A recv completes with a buffer, filled with n bytes of c: -1 when the ring is empty
 * (the caller then reports -ENOBUFS). The holder counts it, as the mux does. */
static int take(uint8_t c)
{
	if (kernel_has() == 0)
		return -1;
	struct io_uring_buf *e = &br->bufs[khead & (NBUFS - 1)];
	khead++;
	cr_assert_eq(e->len, BUFSZ);
	cr_assert_eq((uint8_t *)(uintptr_t)e->addr, bufring_addr(&B, e->bid));
	memset((uint8_t *)(uintptr_t)e->addr, c, BUFSZ);
	B.out++;
	return e->bid;
}

static size_t resident_pages(uint16_t bid)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char vec[BUFSZ / 4096 + 1];
	cr_assert_eq(mincore(bufring_addr(&B, bid), BUFSZ, vec), 0);
	size_t n = 0;
	for (long i = 0; i < BUFSZ / pg; i++)
		n += vec[i] & 1;
	return n;
}

static void conserved(void)
{
	cr_assert_eq(kernel_has() + B.out + B.nparked, NBUFS,
	             "every buffer is in the kernel, held or parked: %u + %u + %u",
	             kernel_has(), B.out, B.nparked);
	cr_assert_eq(bufring_in_kernel(&B), kernel_has());
}

Test(bufring, starts_with_the_floor_and_the_lowest_buffers)
{
	cr_assert_eq(B.target, 4);
	cr_assert_eq(kernel_has(), 4);
	cr_assert_eq(B.nparked, NBUFS - 4);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(take('a'), i, "buffer %d circulates first", i);
	cr_assert_eq(take('a'), -1, "the rest is parked, not the kernel's");
	conserved();
}

Test(bufring, rejects_a_size_the_kernel_would)
{
	struct bufring b;
	cr_assert_eq(bufring_setup(&b, br, mem, 1, 0, BUFSZ, 4), -EINVAL);
	cr_assert_eq(bufring_setup(&b, br, mem, 1, 24, BUFSZ, 4), -EINVAL, "not a power of 2");
	cr_assert_eq(bufring_setup(&b, br, mem, 1, 2, BUFSZ, 8), 0);
	cr_assert_eq(b.target, 2, "the floor is at most the ring");
	bufring_teardown(&b);
}

Test(bufring, grows_by_doubling_once_per_turn_up_to_the_ring)
{
	uint32_t want[] = {8, 16, 32, 32};
	for (int round = 0; round < 4; round++) {
		while (take('g') >= 0)
			;
		bufring_starved(&B);
		bufring_starved(&B); /* a second ENOBUFS in the same turn */
		cr_assert_eq(B.target, want[round]);
		conserved();
		bufring_turn(&B);
	}
	cr_assert_eq(B.nparked, 0);
	cr_assert_eq(B.out, NBUFS, "all 32 were handed out");
}

Test(bufring, gives_back_to_the_kernel_while_at_target)
{
	int a = take('x');
	bufring_put(&B, (uint16_t)a);
	cr_assert_eq(kernel_has(), 4);
	cr_assert_eq(B.nparked, NBUFS - 4);
	conserved();
}

/* Grow to 32, go quiet: the target halves once per period down to the floor, and the
 * buffers that come back over it are parked with their pages released. */
Test(bufring, shrinks_when_quiet_and_parks_what_comes_back)
{
	int held[NBUFS];
	int n = 0;
	for (int round = 0; round < 3; round++) {
		int b;
		while ((b = take('s')) >= 0)
			held[n++] = b;
		bufring_starved(&B);
		bufring_turn(&B);
	}
	while (n < NBUFS)
		held[n++] = take('s');
	cr_assert_eq(B.target, 32);
	bufring_turn(&B);
	uint64_t now = 1000000;
	bufring_tick(&B, now);
	cr_assert_eq(B.target, 32, "a starved period never shrinks");

	/* Everything comes back. */
	for (int i = 0; i < NBUFS; i++)
		bufring_put(&B, (uint16_t)held[i]);
	bufring_turn(&B);
	cr_assert_eq(kernel_has(), 32, "at target: all go back to the kernel");
	bufring_tick(&B, now + 10);
	cr_assert_eq(B.target, 32, "not before the period ends");
	now += BUFRING_PERIOD_MS;
	bufring_tick(&B, now);
	cr_assert_eq(B.target, 32, "32 were in use in that period");
	now += BUFRING_PERIOD_MS;
	bufring_tick(&B, now);
	cr_assert_eq(B.target, 16, "a quiet period halves");
	now += BUFRING_PERIOD_MS;
	bufring_tick(&B, now);
	now += BUFRING_PERIOD_MS;
	bufring_tick(&B, now);
	now += BUFRING_PERIOD_MS;
	bufring_tick(&B, now);
	cr_assert_eq(B.target, 4, "never below the floor");

	/* The kernel's 32 are taken and returned one by one: 28 are parked. */
	for (int i = 0; i < NBUFS; i++) {
		int b = take('p');
		cr_assert_geq(b, 0);
		cr_assert_eq(resident_pages((uint16_t)b), BUFSZ / 4096);
		bufring_put(&B, (uint16_t)b);
		conserved();
		if (B.nparked && B.parked[B.nparked - 1] == b)
			cr_assert_eq(resident_pages((uint16_t)b), 0,
			             "a parked buffer is released");
	}
	cr_assert_eq(B.nparked, NBUFS - 4);
	cr_assert_eq(kernel_has(), 4);
	bufring_turn(&B);
	/* Demand again: the parked buffers come back and are usable. */
	while (take('q') >= 0)
		;
	bufring_starved(&B);
	cr_assert_eq(B.target, 8);
	cr_assert_eq(kernel_has(), 4);
	int b = take('r');
	cr_assert_geq(b, 0);
	cr_assert_eq(bufring_addr(&B, (uint16_t)b)[BUFSZ - 1], 'r');
}

Test(bufring, a_busy_period_keeps_its_target)
{
	int held[NBUFS], n = 0, b;
	for (int round = 0; round < 2; round++) {
		while ((b = take('b')) >= 0)
			held[n++] = b;
		bufring_starved(&B);
		bufring_turn(&B);
	}
	cr_assert_eq(B.target, 16);
	while ((b = take('b')) >= 0)
		held[n++] = b;
	cr_assert_eq(n, 16);
	for (int i = 0; i < n; i++)
		bufring_put(&B, (uint16_t)held[i]);
	uint64_t now = 5000000;
	bufring_turn(&B);
	bufring_tick(&B, now);
	/* A period in which 9 of the 16 are in use at once. */
	n = 0;
	for (int i = 0; i < 9; i++)
		held[n++] = take('b');
	for (int i = 0; i < n; i++)
		bufring_put(&B, (uint16_t)held[i]);
	bufring_turn(&B);
	now += BUFRING_PERIOD_MS;
	cr_assert_not(bufring_tick(&B, now), "the ring was used");
	cr_assert_eq(B.target, 16, "9 of 16 in use is more than half");
	now += BUFRING_PERIOD_MS;
	cr_assert(bufring_tick(&B, now), "nothing taken for a whole period: idle");
	cr_assert_eq(B.target, 8);
	conserved();
}

Test(bufring, releases_the_kernels_buffers_once_when_idle)
{
	for (int i = 0; i < 4; i++)
		bufring_put(&B, (uint16_t)take('k'));
	bufring_turn(&B);
	for (uint16_t i = 0; i < 4; i++)
		cr_assert_gt(resident_pages(i), 0);
	cr_assert_eq(bufring_release_idle(&B), 4);
	for (uint16_t i = 0; i < 4; i++)
		cr_assert_eq(resident_pages(i), 0, "buffer %u released", i);
	cr_assert_eq(bufring_release_idle(&B), 0, "once per idle spell");
	conserved();
	/* They are still the kernel's and work as before. */
	int b = take('z');
	cr_assert_geq(b, 0);
	cr_assert_eq(bufring_addr(&B, (uint16_t)b)[0], 'z');
	bufring_put(&B, (uint16_t)b);
	bufring_turn(&B);
	uint64_t now = 7000000;
	cr_assert_not(bufring_tick(&B, now), "a buffer was taken: busy");
	cr_assert(bufring_tick(&B, now + BUFRING_PERIOD_MS));
	cr_assert_eq(bufring_release_idle(&B), 4, "a new idle spell releases again");
}

/* Random takes, puts, starvation, turns and periods: no buffer is lost or duplicated. */
Test(bufring, never_loses_a_buffer)
{
	srand(12345);
	int held[NBUFS], n = 0;
	uint64_t now = 9000000;
	for (int step = 0; step < 20000; step++) {
		int op = rand() % 10;
		if (op < 4) {
			int b = take('r');
			if (b < 0)
				bufring_starved(&B);
			else
				held[n++] = b;
		} else if (op < 8 && n) {
			int i = rand() % n;
			bufring_put(&B, (uint16_t)held[i]);
			held[i] = held[--n];
		} else if (op == 8) {
			bufring_turn(&B);
		} else {
			now += 300;
			bufring_tick(&B, now);
		}
		conserved();
		cr_assert_geq(B.target, 4);
		cr_assert_leq(B.target, NBUFS);
	}
	while (n)
		bufring_put(&B, (uint16_t)held[--n]);
	bool seen[NBUFS] = {0};
	for (uint32_t i = 0; i < B.nparked; i++) {
		cr_assert_not(seen[B.parked[i]]);
		seen[B.parked[i]] = true;
	}
	for (uint16_t h = khead; h != (uint16_t)br->tail; h++) {
		uint16_t bid = br->bufs[h & (NBUFS - 1)].bid;
		cr_assert_not(seen[bid], "buffer %u twice", bid);
		seen[bid] = true;
	}
	for (int i = 0; i < NBUFS; i++)
		cr_assert(seen[i], "buffer %d lost", i);
}

/* A ring a driver set up by hand (target 0) circulates every buffer, as before. */
Test(bufring, a_hand_built_ring_never_parks)
{
	struct bufring b;
	memset(&b, 0, sizeof(b));
	b.br = br;
	b.mem = mem;
	b.nbufs = NBUFS;
	b.bufsz = BUFSZ;
	b.mask = NBUFS - 1;
	io_uring_buf_ring_init(br);
	b.out = NBUFS;
	for (uint16_t i = 0; i < NBUFS; i++)
		bufring_put(&b, i);
	cr_assert_eq(b.nparked, 0);
	cr_assert_eq((uint16_t)br->tail, NBUFS);
	bufring_starved(&b);
	cr_assert_eq(b.target, 0);
	cr_assert_eq(bufring_release_idle(&b), 0);
}
