/* bench/maskbench.c — throughput of ws_mask (in place) and ws_mask_copy against a plain
 * memcpy of the same bytes, measured in the same run.
 *
 *   maskbench [size-bytes [reps]]     defaults: 64 MiB, 10 repetitions
 *
 * Cases: one large buffer (memory-bound), the same buffer in 1 KiB blocks walked with a
 * running payload offset (per-call overhead), and a 1 KiB block reused so it stays in
 * L1 (compute-bound). Each figure is the best of `reps` passes, in GB/s (10^9 bytes/s);
 * ratio = mask / memcpy.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/ws.h"

#define DEFAULT_SIZE (64u << 20)
#define DEFAULT_REPS 10
#define BLOCK 1024
#define MIN_SIZE (2 * BLOCK)

static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Keep the compiler from dropping or merging stores to buf. */
static inline void clobber(const void *buf)
{
	__asm__ volatile("" : : "r"(buf) : "memory");
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

enum op {
	OP_MASK,
	OP_MASK_COPY,
	OP_MEMCPY,
};

enum shape {
	SHAPE_WHOLE,  /* one call over the whole buffer */
	SHAPE_BLOCKS, /* BLOCK-sized calls walking the buffer */
	SHAPE_HOT,    /* BLOCK-sized calls on the same block */
};

static void run_once(enum op op, enum shape shape, uint8_t *dst, uint8_t *src, size_t size)
{
	size_t step = shape == SHAPE_WHOLE ? size : BLOCK;

	for (size_t off = 0; off < size; off += step) {
		size_t at = shape == SHAPE_HOT ? 0 : off;
		size_t n = size - off < step ? size - off : step;
		switch (op) {
		case OP_MASK:
			ws_mask(src + at, n, key, off);
			break;
		case OP_MASK_COPY:
			ws_mask_copy(dst + at, src + at, n, key, off);
			break;
		case OP_MEMCPY:
			memcpy(dst + at, src + at, n);
			break;
		}
		clobber(dst);
		clobber(src);
	}
}

/* Best-of-reps throughput in GB/s. */
static double measure(enum op op, enum shape shape, uint8_t *dst, uint8_t *src, size_t size,
                      unsigned reps)
{
	double best = 0;

	run_once(op, shape, dst, src, size); /* warm up: fault pages in, fill caches */
	for (unsigned r = 0; r < reps; r++) {
		double t0 = now();
		run_once(op, shape, dst, src, size);
		double dt = now() - t0;
		if (dt > 0 && (best == 0 || dt < best))
			best = dt;
	}
	return best > 0 ? (double)size / best / 1e9 : 0;
}

static int parse_arg(const char *s, unsigned long long *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || end == s || *end || v == 0)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long long size = DEFAULT_SIZE, reps = DEFAULT_REPS;
	static const struct {
		enum shape shape;
		const char *name;
	} cases[] = {
	        {SHAPE_WHOLE, "whole buffer"},
	        {SHAPE_BLOCKS, "1 KiB blocks"},
	        {SHAPE_HOT, "1 KiB hot"},
	};

	if (argc > 3 || (argc > 1 && parse_arg(argv[1], &size)) ||
	    (argc > 2 && parse_arg(argv[2], &reps)) || size < MIN_SIZE || reps > 100000) {
		fprintf(stderr, "usage: %s [size-bytes (>= %d) [reps]]\n", argv[0], MIN_SIZE);
		return 2;
	}

	/* Slack so the buffers can also be used misaligned; aligned_alloc wants a multiple
	 * of the alignment. */
	size_t alloc = (size_t)(size + 64 + 63) & ~(size_t)63;
	uint8_t *src = aligned_alloc(64, alloc), *dst = aligned_alloc(64, alloc);
	if (!src || !dst) {
		fprintf(stderr, "maskbench: cannot allocate 2 x %llu bytes\n", size);
		free(src);
		free(dst);
		return 1;
	}
	for (size_t i = 0; i < alloc; i++)
		src[i] = (uint8_t)(i * 131 + 7);
	memset(dst, 0, alloc);

	printf("maskbench: %llu bytes, best of %llu reps, GB/s\n", size, reps);
	printf("%-22s %10s %10s %10s %8s %8s\n", "case", "ws_mask", "mask_copy", "memcpy",
	       "mask/cp", "mcopy/cp");
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		for (int misalign = 0; misalign < 2; misalign++) {
			uint8_t *s = src + misalign * 3, *d = dst + misalign * 5;
			double m = measure(OP_MASK, cases[c].shape, d, s, size, (unsigned)reps);
			double mc = measure(OP_MASK_COPY, cases[c].shape, d, s, size,
			                    (unsigned)reps);
			double cp =
			        measure(OP_MEMCPY, cases[c].shape, d, s, size, (unsigned)reps);
			char label[40];
			snprintf(label, sizeof(label), "%s%s", cases[c].name,
			         misalign ? " (unal.)" : "");
			printf("%-22s %10.2f %10.2f %10.2f %8.2f %8.2f\n", label, m, mc, cp,
			       cp > 0 ? m / cp : 0, cp > 0 ? mc / cp : 0);
		}
	}
	free(src);
	free(dst);
	return 0;
}
