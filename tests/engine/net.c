/* tests/engine/net.c — --allow-ips networks and name resolution of literals. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <unistd.h>

#include "engine/net.h"

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *a = (struct sockaddr_in *)&ss;
	a->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &a->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
	a->sin6_family = AF_INET6;
	inet_pton(AF_INET6, ip, &a->sin6_addr);
	return ss;
}

Test(net, cidr_parse)
{
	struct cidr c;
	cr_assert_eq(net_cidr_parse("10.0.0.0/8", &c), 0);
	cr_assert(c.family == AF_INET && c.bits == 8);
	cr_assert_eq(net_cidr_parse("192.168.1.7", &c), 0);
	cr_assert_eq(c.bits, 32, "a single address is a /32");
	cr_assert_eq(net_cidr_parse("2001:db8::/32", &c), 0);
	cr_assert(c.family == AF_INET6 && c.bits == 32);
	cr_assert_eq(net_cidr_parse("::1", &c), 0);
	cr_assert_eq(c.bits, 128);
	cr_assert_neq(net_cidr_parse("10.0.0.0/33", &c), 0);
	cr_assert_neq(net_cidr_parse("2001:db8::/129", &c), 0);
	cr_assert_neq(net_cidr_parse("10.0.0.0/", &c), 0);
	cr_assert_neq(net_cidr_parse("10.0.0.0/-1", &c), 0);
	cr_assert_neq(net_cidr_parse("example.com", &c), 0);
	cr_assert_neq(net_cidr_parse("", &c), 0);
}

Test(net, cidr_match)
{
	struct cidr list[3];
	cr_assert_eq(net_cidr_parse("10.1.0.0/16", &list[0]), 0);
	cr_assert_eq(net_cidr_parse("192.168.5.5", &list[1]), 0);
	cr_assert_eq(net_cidr_parse("2001:db8:1::/48", &list[2]), 0);
	struct sockaddr_storage a;
	a = v4("10.1.255.3");
	cr_assert(net_cidr_match(list, 3, (struct sockaddr *)&a));
	a = v4("10.2.0.1");
	cr_assert_not(net_cidr_match(list, 3, (struct sockaddr *)&a));
	a = v4("192.168.5.5");
	cr_assert(net_cidr_match(list, 3, (struct sockaddr *)&a));
	a = v4("192.168.5.6");
	cr_assert_not(net_cidr_match(list, 3, (struct sockaddr *)&a));
	a = v6("2001:db8:1:ffff::1");
	cr_assert(net_cidr_match(list, 3, (struct sockaddr *)&a));
	a = v6("2001:db8:2::1");
	cr_assert_not(net_cidr_match(list, 3, (struct sockaddr *)&a));
	a = v6("::ffff:10.1.2.3");
	cr_assert(net_cidr_match(list, 3, (struct sockaddr *)&a), "IPv4-mapped matches IPv4");
	cr_assert_not(net_cidr_match(list, 0, (struct sockaddr *)&a),
	              "an empty list matches none");
	struct cidr odd;
	cr_assert_eq(net_cidr_parse("10.0.0.0/13", &odd), 0);
	a = v4("10.7.255.255");
	cr_assert(net_cidr_match(&odd, 1, (struct sockaddr *)&a), "a prefix not on a byte");
	a = v4("10.8.0.0");
	cr_assert_not(net_cidr_match(&odd, 1, (struct sockaddr *)&a));
}

Test(net, resolve_literals)
{
	struct addrlist al;
	cr_assert_eq(net_resolve("127.0.0.1", 80, &al), 0);
	cr_assert_eq(al.n, 1);
	cr_assert_eq(al.addr[0].ss_family, AF_INET);
	cr_assert_eq(ntohs(((struct sockaddr_in *)&al.addr[0])->sin_port), 80);
	cr_assert_eq(net_resolve("[::1]", 443, &al), 0);
	cr_assert_eq(al.addr[0].ss_family, AF_INET6);
	cr_assert_neq(net_resolve("", 80, &al), 0);
}

Test(net, listen_forms)
{
	int fd;
	cr_assert_eq(net_listen("127.0.0.1:", 0, &fd), 0, "a trailing colon is accepted");
	close(fd);
	cr_assert_eq(net_listen("[::1]", 0, &fd), 0);
	close(fd);
	cr_assert_neq(net_listen("not-an-ip", 0, &fd), 0);
}

Test(net, addrs_local)
{
	struct addrlist al = {0};
	cr_assert_not(net_addrs_local(&al), "an empty list is not local");
	cr_assert_eq(net_resolve("127.0.0.2", 80, &al), 0);
	cr_assert(net_addrs_local(&al), "127.0.0.0/8 is this host's");
	cr_assert_eq(net_resolve("::1", 80, &al), 0);
	cr_assert(net_addrs_local(&al), "::1 is this host's");
	cr_assert_eq(net_resolve("192.0.2.1", 80, &al), 0);
	cr_assert_not(net_addrs_local(&al), "TEST-NET-1 is nobody's");
}
