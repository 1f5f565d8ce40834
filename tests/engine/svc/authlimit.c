/* tests/engine/svc/authlimit.c — failed authentications per source: the limit, the
 * window, the refusal's length, sources apart, the bounded table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/svc/authlimit.h"

static void setup(void)
{
	authlimit_init();
}

/* The fingerprint of a distinct wrong token, "guess-<i>". */
static uint32_t guess(int i)
{
	char t[32];

	snprintf(t, sizeof(t), "guess-%d", i);
	return authlimit_token(t, strlen(t));
}

TestSuite(authlimit, .init = setup);

Test(authlimit, refused_after_max_failures_for_the_interval)
{
	uint64_t a = authlimit_key("127.0.0.1:5000", NULL, 0);

	for (int i = 0; i < 9; i++) {
		cr_assert_not(authlimit_failed(a, guess(i), 1000 + i, 10, 60000));
		cr_assert_eq(authlimit_refused(a, 1000 + i, 10), 0);
	}
	cr_assert(authlimit_failed(a, guess(9), 2000, 10, 60000), "the tenth failure refuses");
	cr_assert_eq(authlimit_refused(a, 2000, 10), 60);
	cr_assert_eq(authlimit_refused(a, 2000 + 59500, 10), 1, "Retry-After rounds up");
	cr_assert_eq(authlimit_refused(a, 2000 + 60000, 10), 0, "until the interval passes");
	cr_assert_not(authlimit_failed(a, guess(10), 62001, 10, 60000), "then it starts over");
}

Test(authlimit, failures_spread_over_intervals_do_not_add_up)
{
	uint64_t a = authlimit_key("10.0.0.1", NULL, 0);

	/* 30 failures 7 s apart: a window (opened by a failure) holds at most 9. */
	for (int i = 0; i < 30; i++)
		cr_assert_not(authlimit_failed(a, guess(i), (uint64_t)i * 7000, 10, 60000),
		              "failure %d", i);
	cr_assert_eq(authlimit_refused(a, 30 * 7000, 10), 0);
}

Test(authlimit, sources_apart)
{
	uint64_t a = authlimit_key("127.0.0.1", NULL, 0),
	         b = authlimit_key("127.0.0.2", NULL, 0);
	uint64_t f1 = authlimit_key("10.1.1.1", "203.0.113.5", 11);
	uint64_t f2 = authlimit_key("10.1.1.1", "203.0.113.6", 11);

	cr_assert_neq(a, b);
	cr_assert_eq(a, authlimit_key("127.0.0.1:41000", NULL, 0),
	             "the port is not the source");
	cr_assert_eq(a, authlimit_key("[::ffff:127.0.0.1]:9", NULL, 0), "nor the family");
	cr_assert_eq(authlimit_key("[2001:db8:1:2::5]:80", NULL, 0),
	             authlimit_key("[2001:db8:1:2:ffff::9]:81", NULL, 0), "an IPv6 /64 is one");
	cr_assert_neq(authlimit_key("[2001:db8:1:2::5]:80", NULL, 0),
	              authlimit_key("[2001:db8:1:3::5]:80", NULL, 0));
	cr_assert_neq(f1, f2, "behind one ingress, forwarded clients are told apart");
	cr_assert_neq(f1, authlimit_key("10.1.1.1", NULL, 0));
	for (int i = 0; i < 3; i++)
		authlimit_failed(a, guess(i), 100, 3, 1000);
	cr_assert_gt(authlimit_refused(a, 100, 3), 0);
	cr_assert_eq(authlimit_refused(b, 100, 3), 0);
	cr_assert_eq(authlimit_refused(a, 100, 0), 0, "max 0: off");
	cr_assert_not(authlimit_failed(b, guess(0), 100, 0, 1000));
}

Test(authlimit, table_is_bounded_and_forgets_the_oldest)
{
	char addr[32];
	uint64_t first = authlimit_key("192.0.2.1", NULL, 0);

	for (int i = 0; i < 2; i++)
		authlimit_failed(first, guess(i), 10, 3, 100000);
	/* Many more sources than entries, each failing later than the first. */
	for (int i = 0; i < 16 * AUTHLIMIT_SETS * AUTHLIMIT_WAYS; i++) {
		snprintf(addr, sizeof(addr), "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255,
		         i & 255);
		authlimit_failed(authlimit_key(addr, NULL, 0), guess(0), 20, 3, 100000);
	}
	/* first's two failures were forgotten: two more do not refuse it. */
	cr_assert_not(authlimit_failed(first, guess(10), 30, 3, 100000));
	cr_assert_not(authlimit_failed(first, guess(11), 30, 3, 100000));
	cr_assert(authlimit_failed(first, guess(12), 30, 3, 100000));
}

/* A client with a stale token repeats it: not a guess, never refused; new ones count. */
Test(authlimit, a_repeated_wrong_token_counts_once)
{
	uint64_t a = authlimit_key("127.0.0.1:7", NULL, 0);
	uint32_t stale = authlimit_token("old-secret", 10), none = authlimit_token(NULL, 0);

	for (int i = 0; i < 100; i++) {
		cr_assert_not(authlimit_failed(a, stale, (uint64_t)i * 250, 4, 60000));
		cr_assert_not(authlimit_failed(a, none, (uint64_t)i * 250, 4, 60000));
	}
	cr_assert_eq(authlimit_refused(a, 25000, 4), 0);
	cr_assert_neq(stale, none);
	cr_assert_neq(stale, authlimit_token("old-secreT", 10));
	cr_assert_not(authlimit_failed(a, guess(1), 25000, 4, 60000),
	              "the stale token and no token were counted once each");
	cr_assert(authlimit_failed(a, guess(2), 25000, 4, 60000));
	/* More distinct tokens than remembered: cycling through them counts every time. */
	uint64_t b = authlimit_key("127.0.0.9", NULL, 0);
	for (int i = 0; i < 9; i++)
		authlimit_failed(b, guess(i % (AUTHLIMIT_TOKENS + 1)), 100, 9, 60000);
	cr_assert_gt(authlimit_refused(b, 100, 9), 0);
}
