/* tests/engine/idmap.c — the stream-id map. */
#include <criterion/criterion.h>

#include "engine/idmap.h"

Test(idmap, put_get_del)
{
	struct idmap m = {0};
	uint32_t v;
	cr_assert_not(idmap_get(&m, 1, &v), "empty map");
	cr_assert_eq(idmap_put(&m, 1, 10), 0);
	cr_assert_eq(idmap_put(&m, 3, 30), 0);
	cr_assert(idmap_get(&m, 1, &v) && v == 10);
	cr_assert(idmap_get(&m, 3, &v) && v == 30);
	cr_assert_eq(idmap_put(&m, 3, 31), 0, "overwrite");
	cr_assert(idmap_get(&m, 3, &v) && v == 31);
	cr_assert(idmap_del(&m, 1));
	cr_assert_not(idmap_get(&m, 1, &v));
	cr_assert_not(idmap_del(&m, 1), "deleting twice");
	cr_assert(idmap_get(&m, 3, &v) && v == 31, "others survive a delete");
	idmap_free(&m);
}

/* Many keys, deletes interleaved (tombstones), growth: every live key stays findable. */
Test(idmap, grow_and_churn)
{
	struct idmap m = {0};
	uint32_t v;
	for (uint32_t k = 1; k < 20000; k += 2)
		cr_assert_eq(idmap_put(&m, k, k * 7), 0);
	for (uint32_t k = 1; k < 20000; k += 4)
		cr_assert(idmap_del(&m, k));
	for (uint32_t round = 0; round < 5; round++)
		for (uint32_t k = 1; k < 20000; k += 4) {
			cr_assert_eq(idmap_put(&m, k + 20000 * (round + 1), round), 0);
			cr_assert(idmap_del(&m, k + 20000 * (round + 1)));
		}
	for (uint32_t k = 1; k < 20000; k += 2) {
		bool live = (k - 1) % 4 != 0;
		cr_assert_eq(idmap_get(&m, k, &v), live, "key %u", k);
		if (live)
			cr_assert_eq(v, k * 7);
	}
	cr_assert_eq(m.used, 5000);
	idmap_free(&m);
}
