/* tests/tools/cli.c — command forms, the Helm charts' exact arguments, token handling. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/log.h"
#include "engine/ringlet.h"
#include "tools/cli.h"

static char tokfile[64];
static struct cli_cmd cmd;
static char err[512];

static void setup(void)
{
	FILE *f;

	strcpy(tokfile, "/tmp/ringlet-cli-token-XXXXXX");
	cr_assert_neq(mkstemp(tokfile), -1);
	f = fopen(tokfile, "w");
	cr_assert_not_null(f);
	fputs("s3cr3t-t0ken\n", f); /* as `echo $TOKEN > token.txt` writes it */
	fclose(f);
	memset(&cmd, 0, sizeof(cmd));
}

static void teardown(void)
{
	cli_cmd_free(&cmd);
	unlink(tokfile);
}

static void write_token(const char *text)
{
	FILE *f = fopen(tokfile, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

/* Run cli_parse on a NULL-free list of arguments; "@TOK" becomes the token file path, and
 * "--x=@TOK" gets it after '='. */
static enum cli_kind parse_v(int argc, const char **in)
{
	char *argv[64], bufs[64][256];

	cr_assert(argc < 64);
	for (int i = 0; i < argc; i++) {
		const char *at = strstr(in[i], "@TOK");

		if (at)
			snprintf(bufs[i], sizeof(bufs[i]), "%.*s%s", (int)(at - in[i]), in[i],
			         tokfile);
		else
			snprintf(bufs[i], sizeof(bufs[i]), "%s", in[i]);
		argv[i] = bufs[i];
	}
	argv[argc] = NULL;
	cli_cmd_free(&cmd);
	return cli_parse(argc, argv, &cmd, err, sizeof(err));
}

#define PARSE(...)                                                                             \
	({                                                                                     \
		const char *a_[] = {__VA_ARGS__};                                              \
		parse_v((int)(sizeof(a_) / sizeof(a_[0])), a_);                                \
	})

TestSuite(cli, .init = setup, .fini = teardown);

Test(cli, helm_server_chart_args)
{
	cr_assert_eq(
	        PARSE("inlets-pro", "tcp", "server", "--auto-tls=false", "--token-from=@TOK"),
	        CLI_SERVER, "%s", err);
	cr_assert_str_eq(cmd.prog, "inlets-pro");
	cr_assert_str_eq(cmd.cfg.token, "s3cr3t-t0ken");
	cr_assert_not(cmd.cfg.auto_tls);
	cr_assert_eq(cmd.cfg.mode, CFG_SERVER);
	cr_assert_eq(cmd.cfg.control_port, 8123);
	cr_assert_str_eq(cmd.cfg.control_addr, "0.0.0.0");
	cr_assert_str_eq(cmd.cfg.auto_tls_path, "/tmp/certs");
	cr_assert_str_eq(cmd.cfg.proxy_protocol, "");
	cr_assert_eq(cmd.cfg.drain_ms, 30000);
	cr_assert_eq(cmd.cfg.window, CFG_DEFAULT_WINDOW);
	cr_assert_eq(cmd.cfg.log_level, LOG_INFO);
	cr_assert_null(cmd.cfg.log_file);
	cr_assert_null(cli_check_tls_supported(&cmd));
}

Test(cli, helm_client_chart_args)
{
	cr_assert_eq(PARSE("/usr/bin/inlets-pro", "tcp", "client",
	                   "--url=wss://orion-aws.prometheus.example.com/connect",
	                   "--upstream=prometheus", "--ports=9090", "--auto-tls=false",
	                   "--token-from=@TOK", "--license-file=/etc/inlets-license/license"),
	             CLI_CLIENT, "%s", err);
	cr_assert_str_eq(cmd.prog, "inlets-pro");
	cr_assert_eq(cmd.cfg.mode, CFG_CLIENT);
	cr_assert_str_eq(cmd.cfg.token, "s3cr3t-t0ken");
	cr_assert_str_eq(cmd.cfg.url, "wss://orion-aws.prometheus.example.com/connect");
	cr_assert(cmd.cfg.url_tls);
	cr_assert_str_eq(cmd.cfg.url_host, "orion-aws.prometheus.example.com");
	cr_assert_eq(cmd.cfg.url_port, 443);
	cr_assert_str_eq(cmd.cfg.url_path, "/connect");
	cr_assert_str_eq(cmd.cfg.upstream, "prometheus");
	cr_assert_eq(cmd.cfg.nports, 1);
	cr_assert_eq(cmd.cfg.ports[0], 9090);
	cr_assert_not(cmd.cfg.auto_tls);
	cr_assert_null(cli_check_tls_supported(&cmd));
}

Test(cli, implied_tcp_forms)
{
	cr_assert_eq(PARSE("inlets-pro", "server", "--auto-tls=false", "--token-file", "@TOK",
	                   "--control-port", "9000", "--data-addr=127.0.0.1:"),
	             CLI_SERVER, "%s", err);
	cr_assert_eq(cmd.cfg.control_port, 9000);
	cr_assert_str_eq(cmd.cfg.data_addr, "127.0.0.1");
	cr_assert_eq(PARSE("ringlet", "client", "--url", "ws://10.0.0.1:8123", "-p", "80",
	                   "--token", "abc"),
	             CLI_CLIENT, "%s", err);
	cr_assert_str_eq(cmd.prog, "ringlet");
	cr_assert_eq(cmd.cfg.url_port, 8123);
	cr_assert_null(cli_check_tls_supported(&cmd));
}

Test(cli, server_all_flags)
{
	cr_assert_eq(PARSE("ringlet", "tcp", "server", "--token=abc", "--auto-tls=false",
	                   "--control-addr=[::1]", "--data-addr", "10.1.2.3",
	                   "--auto-tls-san=a.example.com,b.example.com", "--tls-san", "c",
	                   "--common-name=d", "--auto-tls-path=/var/certs",
	                   "--proxy-protocol=v2", "--lb-proxy-protocol", "v1",
	                   "--allow-ips=10.0.0.0/8,192.168.1.1", "--allow-ips", "::1/128",
	                   "--client-forwarding", "--shards=4", "--log-level=debug",
	                   "--log-file=/tmp/x.log", "--drain-timeout=5s", "--window=1m",
	                   "--max-conns=1000", "--allow-ports=80,443", "--allow-ports",
	                   "9000-9100"),
	             CLI_SERVER, "%s", err);
	cr_assert_eq(cmd.cfg.n_allow_ports, 3);
	cr_assert_eq(cmd.cfg.allow_ports[2].lo, 9000);
	cr_assert_eq(cmd.cfg.allow_ports[2].hi, 9100);
	cr_assert_str_eq(cmd.cfg.control_addr, "::1");
	cr_assert_str_eq(cmd.cfg.data_addr, "10.1.2.3");
	cr_assert_eq(cmd.cfg.n_tls_san, 4);
	cr_assert_str_eq(cmd.cfg.tls_san[3], "d");
	cr_assert_str_eq(cmd.cfg.auto_tls_path, "/var/certs");
	cr_assert_str_eq(cmd.cfg.proxy_protocol, "v2");
	cr_assert_str_eq(cmd.cfg.lb_proxy_protocol, "v1");
	cr_assert_eq(cmd.cfg.n_allow_ips, 3);
	cr_assert(cmd.cfg.client_forwarding);
	cr_assert_eq(cmd.cfg.shards, 4);
	cr_assert_eq(cmd.cfg.log_level, LOG_DEBUG);
	cr_assert_str_eq(cmd.cfg.log_file, "/tmp/x.log");
	cr_assert_eq(cmd.cfg.drain_ms, 5000);
	cr_assert_eq(cmd.cfg.window, 1u << 20);
	cr_assert_eq(cmd.cfg.max_conns, 1000);
}

Test(cli, server_bad_values)
{
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--proxy-protocol=v3"), CLI_ERROR);
	cr_assert(strstr(err, "--proxy-protocol") && strstr(err, "v3"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--lb-proxy-protocol=yes"),
	             CLI_ERROR);
	cr_assert(strstr(err, "--lb-proxy-protocol"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--allow-ips=10.0.0.0/33"),
	             CLI_ERROR);
	cr_assert(strstr(err, "--allow-ips"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--allow-ports=9100-9000"),
	             CLI_ERROR);
	cr_assert(strstr(err, "--allow-ports") && strstr(err, "9100-9000"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--control-port=0"), CLI_ERROR);
	cr_assert(strstr(err, "--control-port"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--log-level=loud"), CLI_ERROR);
	cr_assert(strstr(err, "--log-level") && strstr(err, "loud"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--data-addr=nowhere"), CLI_ERROR);
	cr_assert(strstr(err, "--data-addr"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--tls-cert=/c.pem"), CLI_ERROR);
	cr_assert(strstr(err, "--tls-key"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--generate=k8s"), CLI_ERROR);
	cr_assert(strstr(err, "--generate"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--shards=65"), CLI_ERROR);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--drain-timeout=soon"),
	             CLI_ERROR);
	cr_assert(strstr(err, "--drain-timeout"), "%s", err);
}

/* --log-rate and --auth-fail-limit: N/INTERVAL, 0 or off, the defaults, the errors. */
Test(cli, rate_limit_flags)
{
	cr_assert_eq(PARSE("ringlet", "server", "--token=a"), CLI_SERVER);
	cr_assert_eq(cmd.cfg.log_rate_burst, LOG_RATE_BURST);
	cr_assert_eq(cmd.cfg.log_rate_ms, LOG_RATE_INTERVAL_MS);
	cr_assert_eq(cmd.cfg.auth_fail_max, 10);
	cr_assert_eq(cmd.cfg.auth_fail_ms, 60000);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--log-rate=20/1m",
	                   "--auth-fail-limit", "3/500ms"),
	             CLI_SERVER);
	cr_assert_eq(cmd.cfg.log_rate_burst, 20);
	cr_assert_eq(cmd.cfg.log_rate_ms, 60000);
	cr_assert_eq(cmd.cfg.auth_fail_max, 3);
	cr_assert_eq(cmd.cfg.auth_fail_ms, 500);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--log-rate=0",
	                   "--auth-fail-limit=off"),
	             CLI_SERVER);
	cr_assert_eq(cmd.cfg.log_rate_burst, 0);
	cr_assert_eq(cmd.cfg.auth_fail_max, 0);
	const char *bad[] = {"5", "5/", "/10s", "0/10s", "x/10s", "5/soon", "-1/1s", "5/0s"};
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		char arg[64];

		snprintf(arg, sizeof(arg), "--auth-fail-limit=%s", bad[k]);
		cr_assert_eq(PARSE("ringlet", "server", "--token=a", arg), CLI_ERROR, "%s",
		             arg);
		cr_assert(strstr(err, "--auth-fail-limit"), "%s", err);
	}
	cr_assert_eq(PARSE("ringlet", "client", "--url=ws://h:8123", "--token=a", "--ports=80",
	                   "--log-rate=1/1s"),
	             CLI_CLIENT);
	cr_assert_eq(cmd.cfg.log_rate_burst, 1);
	cr_assert_eq(cmd.cfg.auth_fail_max, 0, "a client's --metrics-addr has no limit");
	cr_assert_eq(PARSE("ringlet", "client", "--url=ws://h:8123", "--token=a", "--ports=80",
	                   "--auth-fail-limit=1/1s"),
	             CLI_ERROR);
}

Test(cli, server_generate_parsed)
{
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--generate=systemd"), CLI_SERVER);
	cr_assert_str_eq(cmd.generate, "systemd");
}

Test(cli, tls_check)
{
	/* Servers and clients run with TLS; only `status` refuses https:// and wss://. */
	cr_assert_eq(PARSE("ringlet", "server", "--token=a"), CLI_SERVER);
	cr_assert(cmd.cfg.auto_tls);
	cr_assert_null(cli_check_tls_supported(&cmd));
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--auto-tls=false",
	                   "--tls-cert=/c", "--tls-key=/k"),
	             CLI_SERVER);
	cr_assert_null(cli_check_tls_supported(&cmd));
	cr_assert_eq(PARSE("ringlet", "client", "--token=a", "--url=wss://h", "-p1"),
	             CLI_CLIENT);
	cr_assert_null(cli_check_tls_supported(&cmd));
	cr_assert_eq(PARSE("ringlet", "status", "--token=a", "--url=wss://h"), CLI_STATUS);
	cr_assert_not_null(cli_check_tls_supported(&cmd));
}

Test(cli, client_ports_forms)
{
	cr_assert_eq(PARSE("ringlet", "client", "--token=a", "--url=ws://h", "--ports",
	                   "80,443", "--ports=8080", "--port", "22", "-p", "23", "-p=24",
	                   "-p25"),
	             CLI_CLIENT, "%s", err);
	cr_assert_eq(cmd.cfg.nports, 7);
	cr_assert_eq(cmd.cfg.ports[0], 80);
	cr_assert_eq(cmd.cfg.ports[6], 25);
	cr_assert_eq(cmd.cfg.url_port, 80);
	cr_assert_str_eq(cmd.cfg.upstream, "localhost");
	cr_assert(cmd.cfg.auto_tls);
}

Test(cli, client_other_flags)
{
	cr_assert_eq(PARSE("ringlet", "client", "--token=a", "--url=ws://h:1/tun", "-p1",
	                   "--license=x", "--license-env=NOPE", "--local=8080:db:5432",
	                   "--local", "9000:x:1", "--local-addr=127.0.0.1",
	                   "--metrics-addr=127.0.0.1:9091", "--lanes=2", "--shards=1",
	                   "--ca-file=/ca.pem", "--window=128k", "--log-file=/tmp/l"),
	             CLI_CLIENT, "%s", err);
	cr_assert_str_eq(cmd.cfg.url_path, "/tun");
	cr_assert_eq(cmd.cfg.n_local, 2);
	cr_assert_str_eq(cmd.cfg.local_addr, "127.0.0.1");
	cr_assert_str_eq(cmd.cfg.metrics_addr, "127.0.0.1:9091");
	cr_assert_eq(cmd.cfg.lanes, 2);
	cr_assert_str_eq(cmd.cfg.ca_file, "/ca.pem");
	cr_assert_eq(cmd.cfg.window, 131072);
}

Test(cli, client_requirements)
{
	cr_assert_eq(PARSE("ringlet", "client", "--token=a", "--url=ws://h"), CLI_ERROR);
	cr_assert(strstr(err, "--ports"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "client", "--token=a", "-p", "80"), CLI_ERROR);
	cr_assert(strstr(err, "--url"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "client", "--token=a", "-p", "80", "--url=http://h"),
	             CLI_ERROR);
	cr_assert(strstr(err, "--url") && strstr(err, "http://h"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "client", "--token=a", "-p", "80", "--url=ws://h:99999"),
	             CLI_ERROR);
	cr_assert_eq(PARSE("ringlet", "client", "--token=a", "-p", "x", "--url=ws://h"),
	             CLI_ERROR);
	cr_assert(strstr(err, "\"x\"") && strstr(err, "--port"), "%s", err);
}

Test(cli, token_required_and_exclusive)
{
	cr_assert_eq(PARSE("ringlet", "server"), CLI_ERROR);
	cr_assert(strstr(err, "--token-file") && strstr(err, "--token-env"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--token-file=@TOK"), CLI_ERROR);
	cr_assert(strstr(err, "only one"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token-from=@TOK", "--token-file=@TOK"),
	             CLI_ERROR);
	cr_assert_eq(PARSE("ringlet", "client", "--url=ws://h", "-p1"), CLI_ERROR);
	cr_assert(strstr(err, "token"), "%s", err);
}

Test(cli, token_trimming)
{
	write_token("  \t tok with inner space \r\n\n ");
	cr_assert_eq(PARSE("ringlet", "server", "--token-file=@TOK"), CLI_SERVER, "%s", err);
	cr_assert_str_eq(cmd.cfg.token, "tok with inner space");
	cr_assert_eq(PARSE("ringlet", "server", "--token", " lit\n"), CLI_SERVER, "%s", err);
	cr_assert_str_eq(cmd.cfg.token, "lit");
	setenv("RINGLET_TEST_TOKEN", "envtok\n", 1);
	cr_assert_eq(PARSE("ringlet", "server", "--token-env=RINGLET_TEST_TOKEN"), CLI_SERVER,
	             "%s", err);
	cr_assert_str_eq(cmd.cfg.token, "envtok");
}

Test(cli, token_errors)
{
	write_token(" \n");
	cr_assert_eq(PARSE("ringlet", "server", "--token-file=@TOK"), CLI_ERROR);
	cr_assert(strstr(err, "empty"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token="), CLI_ERROR);
	cr_assert(strstr(err, "empty"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token-file=/nonexistent/ringlet/token"),
	             CLI_ERROR);
	cr_assert(strstr(err, "/nonexistent/ringlet/token") && strstr(err, "cannot read"), "%s",
	          err);
	unsetenv("RINGLET_TEST_NOPE");
	cr_assert_eq(PARSE("ringlet", "server", "--token-env=RINGLET_TEST_NOPE"), CLI_ERROR);
	cr_assert(strstr(err, "RINGLET_TEST_NOPE"), "%s", err);
}

Test(cli, unknown_things)
{
	cr_assert_eq(PARSE("ringlet", "tcp", "server", "--nope"), CLI_ERROR);
	cr_assert_str_eq(err, "unknown flag: --nope");
	cr_assert_eq(cmd.topic, CLI_TOPIC_SERVER);
	cr_assert_eq(PARSE("ringlet", "frobnicate"), CLI_ERROR);
	cr_assert(strstr(err, "unknown command \"frobnicate\""), "%s", err);
	cr_assert_eq(PARSE("ringlet", "tcp", "proxy"), CLI_ERROR);
	cr_assert(strstr(err, "unknown command \"proxy\""), "%s", err);
	cr_assert_eq(PARSE("ringlet", "--nope"), CLI_ERROR);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "extra"), CLI_ERROR);
	cr_assert(strstr(err, "extra"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "server", "--token=a", "--auto-tls", "false"), CLI_ERROR);
	cr_assert(strstr(err, "--auto-tls=false"), "%s", err);
}

Test(cli, help_everywhere)
{
	cr_assert_eq(PARSE("ringlet"), CLI_HELP);
	cr_assert_eq(cmd.topic, CLI_TOPIC_ROOT);
	cr_assert_eq(PARSE("ringlet", "--help"), CLI_HELP);
	cr_assert_eq(PARSE("ringlet", "-h"), CLI_HELP);
	cr_assert_eq(PARSE("ringlet", "tcp"), CLI_HELP);
	cr_assert_eq(cmd.topic, CLI_TOPIC_TCP);
	/* --help wins over missing required flags */
	cr_assert_eq(PARSE("ringlet", "tcp", "client", "--help"), CLI_HELP);
	cr_assert_eq(cmd.topic, CLI_TOPIC_CLIENT);
	cr_assert_eq(PARSE("inlets-pro", "server", "-h"), CLI_HELP);
	cr_assert_eq(cmd.topic, CLI_TOPIC_SERVER);
	cr_assert_eq(PARSE("ringlet", "status", "--help"), CLI_HELP);
	cr_assert_eq(cmd.topic, CLI_TOPIC_STATUS);
	cr_assert_eq(PARSE("ringlet", "version", "--help"), CLI_HELP);
	cr_assert_eq(cmd.topic, CLI_TOPIC_VERSION);
	cr_assert_eq(PARSE("ringlet", "help", "tcp", "client"), CLI_HELP);
	cr_assert_eq(cmd.topic, CLI_TOPIC_CLIENT);
	cr_assert_eq(PARSE("ringlet", "help", "server"), CLI_HELP);
	cr_assert_eq(cmd.topic, CLI_TOPIC_SERVER);
	cr_assert_eq(PARSE("ringlet", "help", "nope"), CLI_ERROR);
}

Test(cli, version_forms)
{
	cr_assert_eq(PARSE("ringlet", "version"), CLI_VERSION);
	cr_assert_eq(PARSE("inlets-pro", "version"), CLI_VERSION);
	cr_assert_eq(PARSE("ringlet", "--version"), CLI_VERSION);
	cr_assert_eq(PARSE("ringlet", "version", "x"), CLI_ERROR);
}

Test(cli, status_forms)
{
	cr_assert_eq(PARSE("ringlet", "status", "--url=http://127.0.0.1:8123",
	                   "--token-file=@TOK", "--json"),
	             CLI_STATUS, "%s", err);
	cr_assert(cmd.json);
	cr_assert_eq(cmd.cfg.url_port, 8123);
	cr_assert_str_eq(cmd.cfg.token, "s3cr3t-t0ken");
	cr_assert_null(cli_check_tls_supported(&cmd));
	cr_assert_eq(PARSE("ringlet", "status", "--url=ws://h", "--token=a", "--timeout=2s"),
	             CLI_STATUS, "%s", err);
	cr_assert_eq(cmd.cfg.handshake_ms, 2000);
	cr_assert_eq(PARSE("ringlet", "status", "--url=https://h", "--token=a"), CLI_STATUS);
	cr_assert_not_null(cli_check_tls_supported(&cmd));
	cr_assert_eq(PARSE("ringlet", "status", "--token=a"), CLI_ERROR);
	cr_assert(strstr(err, "--url"), "%s", err);
}

static int main_v(int argc, const char **in)
{
	char *argv[16];

	for (int i = 0; i < argc; i++)
		argv[i] = (char *)in[i];
	argv[argc] = NULL;
	return cli_main(argc, argv);
}

#define MAIN(...)                                                                              \
	({                                                                                     \
		const char *a_[] = {__VA_ARGS__};                                              \
		main_v((int)(sizeof(a_) / sizeof(a_[0])), a_);                                 \
	})

Test(cli_main, version_output, .init = cr_redirect_stdout)
{
	char want[256];

	cr_assert_eq(MAIN("inlets-pro", "version"), 0);
	fflush(stdout);
	snprintf(want, sizeof(want), "ringlet %s (%s)\ncompatible with: inlets-pro tcp\n",
	         ringlet_version, ringlet_sha);
	cr_assert_stdout_eq_str(want);
}

Test(cli_main, unknown_flag_exits_2, .init = cr_redirect_stderr)
{
	cr_assert_eq(MAIN("inlets-pro", "tcp", "server", "--nope"), 2);
	fflush(stderr);
	cr_assert_stderr_eq_str("Error: unknown flag: --nope\n"
	                        "Run 'inlets-pro tcp server --help' for usage.\n");
}

Test(cli_main, unknown_command_exits_2, .init = cr_redirect_stderr)
{
	cr_assert_eq(MAIN("ringlet", "bogus"), 2);
}

Test(cli_main, help_exits_0, .init = cr_redirect_stdout)
{
	cr_assert_eq(MAIN("ringlet", "tcp", "server", "--help"), 0);
	cr_assert_eq(MAIN("ringlet", "client", "-h"), 0);
	cr_assert_eq(MAIN("ringlet", "help", "status"), 0);
	cr_assert_eq(MAIN("ringlet", "help"), 0);
}

Test(cli_main, status_over_tls_refused_exits_2, .init = cr_redirect_stderr)
{
	cr_assert_eq(MAIN("ringlet", "status", "--token=a", "--url=wss://h"), 2);
}

/* --generate systemd prints a unit that runs the same command and flags; the unit's
 * validity is checked with systemd-analyze verify by tests/integration/test_ops.py. */
Test(cli_main, generate_systemd_unit, .init = cr_redirect_stdout)
{
	cr_assert_eq(MAIN("ringlet", "server", "--token=a", "--auto-tls=false",
	                  "--control-port=443", "--generate=systemd"),
	             0);
	fflush(stdout);
	FILE *f = cr_get_redirected_stdout();
	char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	cr_assert(strstr(buf, " tcp server \"--token=a\" \"--auto-tls=false\" "
	                      "\"--control-port=443\"\n") != NULL,
	          "%s", buf);
	char *exec = strstr(buf, "ExecStart=");
	cr_assert(exec != NULL);
	*strchr(exec, '\n') = 0;
	cr_assert(strstr(exec, "--generate") == NULL, "%s", exec);
	exec[strlen(exec)] = '\n';
	cr_assert(strstr(buf, "DynamicUser=yes\n") != NULL);
	cr_assert(strstr(buf, "NoNewPrivileges=yes\n") != NULL);
	cr_assert(strstr(buf, "ProtectSystem=strict\n") != NULL);
	cr_assert(strstr(buf, "Restart=always\n") != NULL);
	cr_assert(strstr(buf, "AmbientCapabilities=CAP_NET_BIND_SERVICE\n") != NULL);
}

Test(cli_main, generate_systemd_no_capability_above_1024, .init = cr_redirect_stdout)
{
	cr_assert_eq(MAIN("ringlet", "client", "--token=a", "--auto-tls=false",
	                  "--url=ws://h:8123", "--ports=80", "--generate", "systemd"),
	             0);
	fflush(stdout);
	FILE *f = cr_get_redirected_stdout();
	char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	cr_assert(strstr(buf, " tcp client ") != NULL, "%s", buf);
	cr_assert(strstr(buf, "CAP_NET_BIND_SERVICE") == NULL);
	cr_assert(strstr(buf, "CapabilityBoundingSet=\n") != NULL);
}

/* --generate k8s_yaml prints a Deployment running the same flags from the image, the token
 * from Secret inlets-pro-secret (never the token itself), a grace period above the drain
 * timeout, and the control-plane Service; tests/integration/test_charts.py checks it against
 * the chart and the Kubernetes schemas. */
Test(cli_main, generate_k8s_yaml_server, .init = cr_redirect_stdout)
{
	cr_assert_eq(MAIN("ringlet", "tcp", "server", "--token=s3cret", "--auto-tls=false",
	                  "--drain-timeout=10s", "--generate", "k8s_yaml"),
	             0);
	fflush(stdout);
	FILE *f = cr_get_redirected_stdout();
	char buf[16384];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	cr_assert(strstr(buf, "s3cret") == NULL, "the token leaked: %s", buf);
	cr_assert(strstr(buf, "kind: Deployment\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "            - --token-from=/etc/inlets/token\n") != NULL, "%s",
	          buf);
	cr_assert(strstr(buf, "            - \"--drain-timeout=10s\"\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "terminationGracePeriodSeconds: 25\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "secretName: inlets-pro-secret\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "readOnlyRootFilesystem: true\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "name: ringlet-server-control-plane\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "--generate") == NULL || strstr(buf, "- \"--generate") == NULL,
	          "%s", buf);
}

Test(cli_main, generate_k8s_yaml_client_metrics, .init = cr_redirect_stdout)
{
	cr_assert_eq(MAIN("ringlet", "client", "--token", "s3cret", "--url=wss://h/connect",
	                  "--ports=9090", "--license-file", "/l", "--metrics-addr=0.0.0.0:9091",
	                  "--generate=k8s_yaml"),
	             0);
	fflush(stdout);
	FILE *f = cr_get_redirected_stdout();
	char buf[16384];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = 0;
	cr_assert(strstr(buf, "s3cret") == NULL && strstr(buf, "\"/l\"") == NULL, "%s", buf);
	cr_assert(strstr(buf, "            - --license-file=/etc/inlets-license/license\n") !=
	                  NULL,
	          "%s", buf);
	cr_assert(strstr(buf, "              port: metrics\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "name: ringlet-client-metrics\n") != NULL, "%s", buf);
	cr_assert(strstr(buf, "optional: true\n") != NULL, "%s", buf);
}

Test(cli, client_generate_checked)
{
	cr_assert_eq(PARSE("ringlet", "client", "--token=a", "--url=ws://h", "--ports=1",
	                   "--generate=k8s"),
	             CLI_ERROR);
	cr_assert(strstr(err, "--generate") && strstr(err, "k8s_yaml"), "%s", err);
	cr_assert_eq(PARSE("ringlet", "client", "--token=a", "--url=ws://h", "--ports=1",
	                   "--generate=k8s_yaml"),
	             CLI_CLIENT);
}

/* Collapse each run of white space to one space, so a check does not depend on where the
 * help text wraps. */
static void squeeze(char *s)
{
	char *o = s;
	for (const char *p = s; *p; p++)
		if (!(*p == ' ' || *p == '\n') || (o > s && o[-1] != ' '))
			*o++ = *p == '\n' ? ' ' : *p;
	*o = 0;
}

Test(cli_help, every_flag_documented)
{
	static const char *const server[] = {"--token ",
	                                     "--token-file ",
	                                     "--token-from ",
	                                     "--token-env ",
	                                     "--control-port ",
	                                     "--control-addr ",
	                                     "--data-addr ",
	                                     "--auto-tls ",
	                                     "--auto-tls-san ",
	                                     "--tls-san ",
	                                     "--common-name ",
	                                     "--auto-tls-path ",
	                                     "--tls-cert ",
	                                     "--tls-key ",
	                                     "--proxy-protocol ",
	                                     "--lb-proxy-protocol ",
	                                     "--allow-ips ",
	                                     "--allow-ports ",
	                                     "--client-forwarding ",
	                                     "--generate ",
	                                     "--shards ",
	                                     "--log-level ",
	                                     "--log-file ",
	                                     "--drain-timeout ",
	                                     "--window ",
	                                     "--max-conns ",
	                                     "--sockmap ",
	                                     "--sockmap-cgroup ",
	                                     "(default 8123)",
	                                     "(default \"0.0.0.0\")",
	                                     "(default true)",
	                                     "(default \"/tmp/certs\")",
	                                     "(default 30s)",
	                                     "(default \"info\")"};
	static const char *const client[] = {
	        "--url ",           "--upstream ",       "--ports ",
	        "-p, --port ",      "--token-from ",     "--auto-tls ",
	        "--ca-file ",       "--license ",        "--license-file ",
	        "--license-env ",   "--local ",          "--local-addr ",
	        "--metrics-addr ",  "--lanes ",          "--shards ",
	        "--log-level ",     "--log-file ",       "--window ",
	        "--sockmap ",       "--sockmap-cgroup ", "(default \"localhost\")",
	        "(default \"off\")"};
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cli_print_help(f, "inlets-pro", CLI_TOPIC_SERVER);
	fflush(f);
	squeeze(buf);
	for (size_t i = 0; i < sizeof(server) / sizeof(server[0]); i++)
		cr_assert(strstr(buf, server[i]), "server help lacks %s", server[i]);
	cr_assert(strstr(buf, "inlets-pro tcp server"));
	fclose(f);
	free(buf);
	buf = NULL;
	f = open_memstream(&buf, &len);
	cli_print_help(f, "ringlet", CLI_TOPIC_CLIENT);
	fflush(f);
	squeeze(buf);
	for (size_t i = 0; i < sizeof(client) / sizeof(client[0]); i++)
		cr_assert(strstr(buf, client[i]), "client help lacks %s", client[i]);
	fclose(f);
	free(buf);
}
