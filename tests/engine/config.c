/* tests/engine/config.c — defaults, tunnel URL parsing, --allow-ports, shard count. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/config.h"
#include "engine/log.h"

static struct cfg c;

static void setup(void)
{
	cfg_defaults(&c, CFG_CLIENT);
}

static void teardown(void)
{
	cfg_free(&c);
}

TestSuite(config, .init = setup, .fini = teardown);

Test(config, defaults)
{
	cr_assert_eq(c.mode, CFG_CLIENT);
	cr_assert_eq(c.control_port, CFG_DEFAULT_CONTROL_PORT);
	cr_assert_str_eq(c.control_addr, "0.0.0.0");
	cr_assert_str_eq(c.upstream, "localhost");
	cr_assert_str_eq(c.auto_tls_path, "/tmp/certs");
	cr_assert(c.auto_tls);
	cr_assert_eq(c.window, CFG_DEFAULT_WINDOW);
	cr_assert_eq(c.drain_ms, CFG_DEFAULT_DRAIN_MS);
	cr_assert_eq(c.log_level, LOG_INFO);
	cr_assert_null(c.token);
	cr_assert_eq(c.nports, 0);
}

Test(config, free_is_null_tolerant_and_idempotent)
{
	cfg_free(NULL);
	cfg_free(&c);
	cfg_free(&c);
	cr_assert_null(c.upstream);
}

struct url_case {
	const char *url;
	bool tls;
	const char *host;
	uint16_t port;
	const char *path;
};

Test(config, url_ok)
{
	static const struct url_case cases[] = {
	        {"wss://orion-aws.prometheus.example.com/connect", true,
	         "orion-aws.prometheus.example.com", 443, "/connect"},
	        {"ws://10.0.0.1:8123", false, "10.0.0.1", 8123, "/connect"},
	        {"ws://host", false, "host", 80, "/connect"},
	        {"wss://host", true, "host", 443, "/connect"},
	        {"ws://host/", false, "host", 80, "/connect"},
	        {"ws://[::1]:8123/connect", false, "::1", 8123, "/connect"},
	        {"wss://[2001:db8::1]/x/y", true, "2001:db8::1", 443, "/x/y"},
	        {"WSS://Host.Example:9443/tunnel?x=1#frag", true, "Host.Example", 9443,
	         "/tunnel?x=1"},
	        {"ws://host?x=1", false, "host", 80, "/connect?x=1"},
	        {"ws://h:65535", false, "h", 65535, "/connect"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct url_case *k = &cases[i];
		const char *why = cfg_parse_url(&c, k->url);

		cr_assert_null(why, "%s: %s", k->url, why);
		cr_assert_str_eq(c.url, k->url);
		cr_assert_eq(c.url_tls, k->tls, "%s", k->url);
		cr_assert_str_eq(c.url_host, k->host, "%s", k->url);
		cr_assert_eq(c.url_port, k->port, "%s", k->url);
		cr_assert_str_eq(c.url_path, k->path, "%s", k->url);
	}
}

Test(config, url_errors)
{
	static const char *const bad[] = {
	        "",
	        "http://host",
	        "https://host",
	        "host:8123",
	        "ws://",
	        "ws://:8123",
	        "ws://host:",
	        "ws://host:0",
	        "ws://host:65536",
	        "ws://host:80x",
	        "ws://::1:8123",
	        "ws://[::1",
	        "ws://[::1]x",
	        "ws://user:pw@host",
	        "ws://ho st",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not_null(cfg_parse_url(&c, bad[i]), "accepted %s", bad[i]);
	cr_assert_null(c.url);
	cr_assert_null(c.url_host);
}

Test(config, url_error_messages_name_the_problem)
{
	cr_assert(strstr(cfg_parse_url(&c, "http://h"), "ws://"));
	cr_assert(strstr(cfg_parse_url(&c, "ws://h:99999"), "port"));
	cr_assert(strstr(cfg_parse_url(&c, "ws://:1"), "host"));
	cr_assert(strstr(cfg_parse_url(&c, "ws://::1"), "brackets"));
}

Test(config, url_reparse_replaces)
{
	cr_assert_null(cfg_parse_url(&c, "ws://a:1/p"));
	cr_assert_null(cfg_parse_url(&c, "wss://b"));
	cr_assert_str_eq(c.url_host, "b");
	cr_assert_eq(c.url_port, 443);
	cr_assert_str_eq(c.url_path, "/connect");
}

Test(config, shard_count)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	c.shards = 3;
	cr_assert_eq(cfg_shard_count(&c), 3);
	c.shards = 1000;
	cr_assert_eq(cfg_shard_count(&c), CFG_MAX_SHARDS);
	c.shards = 0;
	cr_assert_eq(cfg_shard_count(&c),
	             cpus < 1 ? 1 : (cpus > CFG_MAX_SHARDS ? CFG_MAX_SHARDS : (int)cpus));
	cr_assert_geq(cfg_shard_count(&c), 1);
}

Test(config, allow_ports_default_refuses_privileged_ports)
{
	cr_assert_not(cfg_port_allowed(&c, 1));
	cr_assert_not(cfg_port_allowed(&c, 80));
	cr_assert_not(cfg_port_allowed(&c, 1023));
	cr_assert(cfg_port_allowed(&c, 1024));
	cr_assert(cfg_port_allowed(&c, 9090));
	cr_assert(cfg_port_allowed(&c, 65535));
}

Test(config, allow_ports_lists_and_ranges)
{
	cr_assert_null(cfg_parse_allow_ports(&c, "80, 443,9000-9002"));
	cr_assert_null(cfg_parse_allow_ports(&c, "65535"));
	cr_assert_eq(c.n_allow_ports, 4);
	const uint16_t yes[] = {80, 443, 9000, 9001, 9002, 65535};
	const uint16_t no[] = {1, 79, 81, 442, 444, 1024, 8999, 9003, 65534};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		cr_assert(cfg_port_allowed(&c, yes[i]), "refused %u", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		cr_assert_not(cfg_port_allowed(&c, no[i]), "allowed %u", no[i]);
}

Test(config, allow_ports_errors)
{
	const char *bad[] = {"",       "0",   "65536", "80-", "-80",   "90-80",
	                     "80,,81", "80,", "abc",   "80x", "1-2-3", "99999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct cfg d;
		cfg_defaults(&d, CFG_SERVER);
		cr_assert_not_null(cfg_parse_allow_ports(&d, bad[i]), "accepted \"%s\"",
		                   bad[i]);
		cfg_free(&d);
	}
	cr_assert(strstr(cfg_parse_allow_ports(&c, "90-80"), "lower"));
}

Test(config, allow_ports_capacity_is_bounded)
{
	char spec[16];
	for (unsigned i = 0; i < CFG_MAX_PORT_RANGES; i++) {
		snprintf(spec, sizeof(spec), "%u", 2000 + i);
		cr_assert_null(cfg_parse_allow_ports(&c, spec));
	}
	cr_assert(strstr(cfg_parse_allow_ports(&c, "3000"), "too many"));
	cr_assert_eq(c.n_allow_ports, CFG_MAX_PORT_RANGES);
}
