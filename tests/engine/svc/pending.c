/* tests/engine/svc/pending.c — fair shares of the control port's pending connections
 * (engine/svc/pending.c): one source holds at most its share, a full table makes room by
 * evicting the busiest source's oldest, memory does not grow with the number of sources. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/svc/pending.h"

static struct pending *p;
static struct pend_node nodes[4 * PEND_MAX];

static void setup(void)
{
	p = calloc(1, sizeof(*p));
	cr_assert_not_null(p);
	memset(nodes, 0, sizeof(nodes));
}

static void teardown(void)
{
	free(p);
	p = NULL;
}

TestSuite(pending, .init = setup, .fini = teardown);

static struct pend_key v4(const char *a)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	cr_assert_eq(inet_pton(AF_INET, a, &sa.sin_addr), 1);
	struct pend_key k;
	pend_key_from(&k, (struct sockaddr *)&sa);
	return k;
}

static struct pend_key v6(const char *a)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
	cr_assert_eq(inet_pton(AF_INET6, a, &sa.sin6_addr), 1);
	struct pend_key k;
	pend_key_from(&k, (struct sockaddr *)&sa);
	return k;
}

/* Admit node i from k as the control port does: evict what the table names, then add. */
static struct pend_node *admit(int i, struct pend_key k)
{
	struct pend_node *victim = pend_victim(p, &k, false);
	if (victim)
		pend_remove(p, victim);
	cr_assert(pend_add(p, &nodes[i], &k), "node %d gets in", i);
	return victim;
}

Test(pending, one_source_holds_at_most_its_share)
{
	struct pend_key a = v4("127.0.0.2");
	int evicted = 0;
	for (int i = 0; i < 600; i++) {
		struct pend_node *v = admit(i, a);
		if (v) {
			/* its own oldest: the first still linked */
			cr_assert_eq(v, &nodes[evicted]);
			evicted++;
		}
	}
	cr_assert_eq(pend_count(p, &a), PEND_PER_SOURCE);
	cr_assert_eq(p->n, PEND_PER_SOURCE);
	cr_assert_eq(evicted, 600 - PEND_PER_SOURCE);
	/* Another address gets in without evicting anyone. */
	struct pend_key b = v4("127.0.0.1");
	cr_assert_null(pend_victim(p, &b, false));
}

Test(pending, full_table_evicts_the_busiest_sources_oldest)
{
	/* 8 sources fill the table, each with its share. */
	char a[32];
	int i = 0;
	for (int s = 0; s < PEND_MAX / PEND_PER_SOURCE; s++) {
		snprintf(a, sizeof(a), "10.0.0.%d", s + 1);
		for (int j = 0; j < PEND_PER_SOURCE; j++)
			cr_assert_null(admit(i++, v4(a)));
	}
	cr_assert_eq(p->n, PEND_MAX);
	/* A newcomer evicts the oldest of the busiest (all equal: the oldest overall). */
	struct pend_key n = v4("192.0.2.1");
	cr_assert_eq(admit(i++, n), &nodes[0]);
	/* Source 10.0.0.1 now holds one fewer; the busiest are the others: 10.0.0.2's
	 * oldest goes next, never the newcomer's. */
	cr_assert_eq(admit(i++, v4("192.0.2.2")), &nodes[PEND_PER_SOURCE]);
	cr_assert_eq(pend_count(p, &n), 1);
	cr_assert_eq(p->n, PEND_MAX);
}

Test(pending, many_sources_each_with_one_stay_bounded)
{
	/* 1000 distinct addresses, one connection each: the table stays at PEND_MAX, the
	 * oldest go first, every newcomer gets in. */
	char a[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(a, sizeof(a), "10.%d.%d.1", i / 256, i % 256);
		struct pend_key k = v4(a);
		struct pend_node *v = admit(i, k);
		if (i < PEND_MAX)
			cr_assert_null(v);
		else
			cr_assert_eq(v, &nodes[i - PEND_MAX]);
	}
	cr_assert_eq(p->n, PEND_MAX);
}

Test(pending, short_of_descriptors_evicts_even_below_the_limit)
{
	struct pend_key a = v4("127.0.0.2"), b = v4("127.0.0.1");
	cr_assert_null(pend_victim(p, &a, true), "nothing pending: nothing to evict");
	admit(0, a);
	admit(1, a);
	admit(2, b);
	cr_assert_null(pend_victim(p, &b, false));
	cr_assert_eq(pend_victim(p, &b, true), &nodes[0], "the busiest source's oldest");
}

Test(pending, removal_frees_the_source)
{
	struct pend_key a = v4("127.0.0.2");
	admit(0, a);
	admit(1, a);
	pend_remove(p, &nodes[0]);
	pend_remove(p, &nodes[0]); /* twice: nothing */
	cr_assert_eq(pend_count(p, &a), 1);
	pend_remove(p, &nodes[1]);
	cr_assert_eq(pend_count(p, &a), 0);
	cr_assert_eq(p->n, 0);
	cr_assert_null(p->oldest);
	cr_assert_null(p->newest);
}

Test(pending, ipv6_counts_per_64_and_mapped_v4_as_v4)
{
	struct pend_key a = v6("2001:db8:1:2::1"), b = v6("2001:db8:1:2:ffff::9"),
	                c = v6("2001:db8:1:3::1");
	cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0, "one /64 is one source");
	cr_assert_neq(memcmp(&a, &c, sizeof(a)), 0, "another /64 is another");
	struct pend_key m = v6("::ffff:127.0.0.2"), d = v4("127.0.0.2");
	cr_assert_eq(memcmp(&m, &d, sizeof(m)), 0, "a mapped IPv4 peer is its IPv4 address");
}

Test(pending, add_refuses_without_room)
{
	struct pend_key a = v4("127.0.0.2");
	for (int i = 0; i < PEND_PER_SOURCE; i++)
		admit(i, a);
	cr_assert_not(pend_add(p, &nodes[PEND_PER_SOURCE], &a), "over the share");
	cr_assert_eq(pend_count(p, &a), PEND_PER_SOURCE);
	cr_assert_not(pend_add(p, &nodes[0], &a), "already linked");
}
