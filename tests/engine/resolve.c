/* tests/engine/resolve.c — the resolver thread: answers reach the watching subscriber's
 * eventfd, one entry per name, bounded table, a kick resolves again. Addresses and
 * "localhost" only (no DNS traffic). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>

#include "engine/resolve.h"

/* Wait (bounded) until sub's eventfd is readable, then empty it. */
static bool wait_answer(struct resolver *r, int sub)
{
	struct pollfd p = {.fd = resolver_fd(r, sub), .events = POLLIN};
	bool ok = poll(&p, 1, 5000) == 1;
	resolver_ack(r, sub);
	return ok;
}

Test(resolve, answer_reaches_its_subscriber)
{
	struct resolver *r = resolver_new(2);
	cr_assert_not_null(r);
	int id = resolver_watch(r, NULL, "127.0.0.1", 8080, 1);
	cr_assert_geq(id, 0);
	cr_assert(wait_answer(r, 1), "subscriber 1 is told the answer");
	struct resolve_view v;
	resolver_get(r, id, &v);
	cr_assert(!v.failed && v.al.n == 1);
	const struct sockaddr_in *a = (const struct sockaddr_in *)&v.al.addr[0];
	cr_assert_eq(a->sin_family, AF_INET);
	cr_assert_eq(ntohs(a->sin_port), 8080);
	cr_assert_eq(ntohl(a->sin_addr.s_addr), 0x7f000001u);
	struct pollfd p = {.fd = resolver_fd(r, 0), .events = POLLIN};
	cr_assert_eq(poll(&p, 1, 0), 0, "subscriber 0 watches nothing: not told");
	resolver_free(r);
}

Test(resolve, same_name_shares_an_entry)
{
	struct resolver *r = resolver_new(2);
	int a = resolver_watch(r, "upstream", "localhost", 0, 0);
	int b = resolver_watch(r, "upstream", "localhost", 0, 1);
	int c = resolver_watch(r, NULL, "localhost", 1, 1);
	cr_assert(a >= 0 && a == b, "one entry for one name and port");
	cr_assert(c >= 0 && c != a, "another port is another entry");
	cr_assert(wait_answer(r, 0) && wait_answer(r, 1), "both subscribers are told");
	struct resolve_view v;
	resolver_get(r, a, &v);
	cr_assert(v.al.n >= 1 && !v.failed, "localhost resolves (/etc/hosts)");
	resolver_unwatch(r, a);
	resolver_get(r, a, &v);
	cr_assert(v.al.n >= 1, "still watched once");
	resolver_free(r);
}

Test(resolve, bounded_table)
{
	struct resolver *r = resolver_new(1);
	for (int i = 0; i < RESOLVE_NAMES_MAX; i++)
		cr_assert_geq(resolver_watch(r, NULL, "127.0.0.1", (uint16_t)(i + 1), 0), 0);
	cr_assert_eq(resolver_watch(r, NULL, "127.0.0.1", 999, 0), -ENOSPC);
	resolver_unwatch(r, 3);
	cr_assert_eq(resolver_watch(r, NULL, "127.0.0.1", 999, 0), 3, "a freed slot is reused");
	cr_assert_eq(resolver_watch(r, NULL, "127.0.0.1", 1, 7), -EINVAL, "no subscriber 7");
	cr_assert_eq(resolver_watch(r, NULL, "", 1, 0), -EINVAL);
	resolver_free(r);
}

Test(resolve, kick_resolves_again)
{
	struct resolver *r = resolver_new(1);
	int id = resolver_watch(r, NULL, "::1", 443, 0);
	cr_assert(wait_answer(r, 0));
	struct resolve_view v;
	resolver_get(r, id, &v);
	cr_assert(v.al.n == 1 && !v.busy, "answered; the next try is RESOLVE_REFRESH_MS away");
	resolver_kick(r, id);
	cr_assert(wait_answer(r, 0), "a kick resolves it again (after RESOLVE_RETRY_MIN_MS)");
	struct resolve_view w;
	resolver_get(r, id, &w);
	cr_assert_eq(w.gen, v.gen, "the same answer is not a new one");
	resolver_free(r);
}
