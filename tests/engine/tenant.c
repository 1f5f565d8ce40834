/* tests/engine/tenant.c — the tunnels file (engine/tenant.c): what a valid file gives,
 * every refusal with the line it names, token files and variables, and the token index. */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "engine/tenant.h"

static char dir[64];
static char err[512];

static void setup(void)
{
	strcpy(dir, "/tmp/ringlet-tenant-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(tenant, .init = setup, .fini = teardown);

/* dir/name with contents s[0..n); its path in a static buffer per call slot. */
static const char *write_file(const char *name, const void *s, size_t n)
{
	static char paths[4][128];
	static int k;
	char *path = paths[k++ % 4];
	snprintf(path, 128, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(s, 1, n, f), n);
	cr_assert_eq(fclose(f), 0);
	return path;
}

static void parse_ok(const char *yaml, struct tenant_set *s)
{
	int rc = tenants_parse(yaml, strlen(yaml), "t.yaml", s, err, sizeof(err));
	cr_assert_eq(rc, 0, "refused: %s", err);
}

/* yaml must be refused with "t.yaml:line: ..." containing what (line 0: "t.yaml: "). */
static void parse_err_n(const char *yaml, size_t len, int line, const char *what)
{
	struct tenant_set s;
	char want[32];

	memset(&s, 0x5a, sizeof(s));
	int rc = tenants_parse(yaml, len, "t.yaml", &s, err, sizeof(err));
	cr_assert_eq(rc, -1, "accepted:\n%s", yaml);
	if (line)
		snprintf(want, sizeof(want), "t.yaml:%d: ", line);
	else
		snprintf(want, sizeof(want), "t.yaml: ");
	cr_assert(strncmp(err, want, strlen(want)) == 0,
	          "want \"%s...\", got \"%s\" for:\n%.200s", want, err, yaml);
	cr_assert_not_null(strstr(err, what), "want \"%s\" in \"%s\"", what, err);
	cr_assert_eq(s.n, 0x5a5a5a5a5a5a5a5aull, "*out is left alone on an error");
}

static void parse_err(const char *yaml, int line, const char *what)
{
	parse_err_n(yaml, strlen(yaml), line, what);
}

static int find(const struct tenant_set *s, const char *tok)
{
	return tenants_find(s, tok, strlen(tok));
}

Test(tenant, three_tunnels_every_field)
{
	struct tenant_set s;
	char yaml[2048];
	const char *tf = write_file("orion.token", "s3cr3t-orion\n", 13);

	cr_assert_eq(setenv("LYRA_TOKEN", "lyra-token-from-env", 1), 0);
	snprintf(yaml, sizeof(yaml),
	         "# a fleet\n"                                         /* 1 */
	         "tunnels:\n"                                          /* 2 */
	         "  - name: orion-aws\n"                               /* 3 */
	         "    tokenFile: %s\n"                                 /* 4 */
	         "    ports:\n"                                        /* 5 */
	         "      - port: 9090\n"                                /* 6 */
	         "        listen: \"0.0.0.0:19001\"\n"                 /* 7 */
	         "      - port: 8080\n"                                /* 8 */
	         "        listen: \"[::1]:19002\"\n"                   /* 9 */
	         "    allowIPs: [\"10.0.0.0/8\", \"2001:db8::/32\"]\n" /* 10 */
	         "    maxStreams: 2000\n"                              /* 11 */
	         "  - name: lyra-gcp\n"                                /* 12 */
	         "    tokenEnv: LYRA_TOKEN\n"                          /* 13 */
	         "    ports:\n"                                        /* 14 */
	         "      - {port: 9090, listen: \":19003\"}\n"          /* 15 */
	         "    allowIPs:\n"                                     /* 16 */
	         "      - 192.168.1.7\n"                               /* 17 */
	         "    maxStreams: 0\n"                                 /* 18 */
	         "  - name: vega-0\n"                                  /* 19 */
	         "    token: 'inline+/=token'\n"                       /* 20 */
	         "    ports:\n"                                        /* 21 */
	         "      - port: 9090\n"                                /* 22 */
	         "        listen: 127.0.0.2:9090\n"                    /* 23 */
	         "      - port: 65535\n",                              /* 24 */
	         tf);
	parse_ok(yaml, &s);
	cr_assert_eq(s.n, 3);

	const struct tenant *a = &s.t[0], *b = &s.t[1], *c = &s.t[2];
	cr_assert_str_eq(a->name, "orion-aws");
	cr_assert_str_eq(a->token, "s3cr3t-orion", "the token file's newline is trimmed");
	cr_assert_str_eq(a->token_file, tf);
	cr_assert_eq(a->line, 3);
	cr_assert_eq(a->nports, 2);
	cr_assert_eq(a->ports[0].port, 9090);
	cr_assert_str_eq(a->ports[0].listen_addr, "0.0.0.0");
	cr_assert_eq(a->ports[0].listen_port, 19001);
	cr_assert_eq(a->ports[0].line, 6);
	cr_assert_eq(a->ports[1].port, 8080);
	cr_assert_str_eq(a->ports[1].listen_addr, "::1", "stored without brackets");
	cr_assert_eq(a->ports[1].listen_port, 19002);
	cr_assert_eq(a->ports[1].line, 8);
	cr_assert_eq(a->n_allow, 2);
	cr_assert_eq(a->allow[0].family, AF_INET);
	cr_assert_eq(a->allow[0].bits, 8);
	cr_assert_eq(a->allow[0].addr[0], 10);
	cr_assert_eq(a->allow[1].family, AF_INET6);
	cr_assert_eq(a->allow[1].bits, 32);
	cr_assert_eq(a->max_streams, 2000);

	cr_assert_str_eq(b->name, "lyra-gcp");
	cr_assert_str_eq(b->token, "lyra-token-from-env");
	cr_assert_null(b->token_file);
	cr_assert_eq(b->line, 12);
	cr_assert_eq(b->nports, 1);
	cr_assert_eq(b->ports[0].port, 9090);
	cr_assert_str_eq(b->ports[0].listen_addr, "", "\":port\" is the --data-addr");
	cr_assert_eq(b->ports[0].listen_port, 19003);
	cr_assert_eq(b->n_allow, 1);
	cr_assert_eq(b->allow[0].bits, 32);
	cr_assert_eq(b->max_streams, 0);

	cr_assert_str_eq(c->name, "vega-0");
	cr_assert_str_eq(c->token, "inline+/=token");
	cr_assert_eq(c->nports, 2);
	cr_assert_str_eq(c->ports[0].listen_addr, "127.0.0.2");
	cr_assert_eq(c->ports[0].listen_port, 9090);
	cr_assert_eq(c->ports[1].port, 65535);
	cr_assert_str_eq(c->ports[1].listen_addr, "");
	cr_assert_eq(c->ports[1].listen_port, 65535, "no listen: the same port");
	cr_assert_eq(c->n_allow, 0);
	cr_assert_null(c->allow);

	uint8_t md[32];
	SHA256((const uint8_t *)yaml, strlen(yaml), md);
	cr_assert_arr_eq(s.sha256, md, 32);
	cr_assert_geq(s.nslot, 2 * s.n);
	cr_assert_eq(s.nslot & (s.nslot - 1), 0, "a power of two");

	cr_assert_eq(find(&s, "s3cr3t-orion"), 0);
	cr_assert_eq(find(&s, "lyra-token-from-env"), 1);
	cr_assert_eq(find(&s, "inline+/=token"), 2);

	cr_assert_eq(tenant_port(a, 8080), &a->ports[1]);
	cr_assert_null(tenant_port(a, 19001), "a listen port is not a declared port");
	cr_assert_null(tenant_port(b, 8080));
	tenants_free(&s);
	cr_assert_null(s.t);
	tenants_free(&s);
	tenants_free(NULL);
}

Test(tenant, defaults)
{
	struct tenant_set s;
	parse_ok("tunnels:\n"
	         "- name: a\n"
	         "  token: x\n"
	         "  ports: [{port: 1}]\n",
	         &s);
	cr_assert_eq(s.n, 1);
	cr_assert_eq(s.t[0].nports, 1);
	cr_assert_eq(s.t[0].ports[0].port, 1);
	cr_assert_eq(s.t[0].ports[0].listen_port, 1);
	cr_assert_str_eq(s.t[0].ports[0].listen_addr, "");
	cr_assert_eq(s.t[0].max_streams, 0);
	cr_assert_eq(s.t[0].n_allow, 0);
	cr_assert_null(s.t[0].token_file);
	cr_assert_eq(find(&s, "x"), 0);
	tenants_free(&s);
}

Test(tenant, empty_list_and_layout)
{
	struct tenant_set s;
	parse_ok("tunnels: []\n", &s);
	cr_assert_eq(s.n, 0);
	cr_assert_eq(find(&s, "x"), -1);
	tenants_free(&s);

	/* An explicit document, a quoted key, flow style, comments, CRLF line ends. */
	parse_ok("%YAML 1.1\r\n---\r\n\"tunnels\": [ {name: \"b\", token: y, # c\r\n"
	         " ports: [ {port: 2, listen: \"[::]:3\"} ] } ]\r\n...\r\n",
	         &s);
	cr_assert_eq(s.n, 1);
	cr_assert_str_eq(s.t[0].ports[0].listen_addr, "::");
	tenants_free(&s);

	parse_ok("\xef\xbb\xbftunnels: []\n", &s);
	cr_assert_eq(s.n, 0, "a UTF-8 byte order mark is fine");
	tenants_free(&s);
}

Test(tenant, structure_errors)
{
	parse_err("", 0, "empty");
	parse_err("# only a comment\n", 0, "empty");
	parse_err("- a\n- b\n", 1, "expected a mapping, found a list");
	parse_err("tunnels\n", 1, "expected a mapping, found a scalar");
	parse_err("tunnels:\n", 1, "tunnels: expected a list, found a scalar");
	parse_err("tunnels: {}\n", 1, "tunnels: expected a list, found a mapping");
	parse_err("tunnel: []\n", 1, "unknown key \"tunnel\"");
	parse_err("{}\n", 1, "no tunnels");
	parse_err("tunnels: []\nextra: 1\n", 2, "unknown key \"extra\"");
	parse_err("tunnels: []\ntunnels: []\n", 2, "tunnels is given twice");
	parse_err("tunnels: []\n---\ntunnels: []\n", 2, "more than one document");
	parse_err("tunnels:\n  - 7\n", 2, "a tunnel: expected a mapping, found a scalar");
	parse_err("tunnels:\n  - [a]\n", 2, "a tunnel: expected a mapping, found a list");
	parse_err("tunnels:\n  - {[a]: 1}\n", 2, "a key must be a name");
	parse_err("tunnels: [\n", 2, "not valid YAML");
	parse_err("tunnels: []\n  - x\n", 2, "did not find expected key");
	parse_err("tunnels:\n- name: \"a\n", 3,
	          "not valid YAML: found unexpected end of stream");
	/* Over-indented: "a token" is one plain scalar, and the first error found is that. */
	parse_err("tunnels:\n- name: a\n   token: b\n", 2, "name \"a token\"");
}

Test(tenant, aliases_anchors_tags)
{
	parse_err("tunnels:\n"
	          "- &t {name: a, token: x, ports: [{port: 1}]}\n",
	          2, "anchors");
	parse_err("tunnels:\n"
	          "- name: a\n"
	          "  token: &tok x\n",
	          3, "anchors");
	parse_err("tunnels:\n"
	          "- name: a\n"
	          "  token: x\n"
	          "  ports: [{port: 1}]\n"
	          "- name: b\n"
	          "  token: *tok\n",
	          6, "aliases");
	parse_err("tunnels:\n"
	          "- name: !!str a\n",
	          2, "tags (tag:yaml.org,2002:str)");
	parse_err("tunnels: !x []\n", 1, "tags");
	parse_err("tunnels:\n"
	          "- name: a\n"
	          "  token: x\n"
	          "  ports:\n"
	          "  - port: !!int 9\n",
	          5, "tags");
	parse_err("%TAG !e! tag:example.com,2000:\n---\ntunnels: !e!x []\n", 3, "tags");
}

/* A tunnel with the given lines in its body (after "- name: a" on line 2). */
static const char *tunnel(const char *body)
{
	static char buf[1 << 16];
	snprintf(buf, sizeof(buf), "tunnels:\n- name: a\n%s", body);
	return buf;
}

Test(tenant, tunnel_errors)
{
	parse_err(tunnel("  token: x\n  ports: [{port: 1}]\n  Token: y\n"), 5,
	          "unknown key \"Token\"");
	parse_err(tunnel("  token: x\n  ports: [{port: 1}]\n  name: b\n"), 5,
	          "name is given twice");
	parse_err("tunnels:\n- token: x\n  ports: [{port: 1}]\n", 2, "name is required");
	parse_err(tunnel("  ports: [{port: 1}]\n"), 2,
	          "one of token, tokenFile and tokenEnv is required");
	parse_err(tunnel("  token: x\n"), 2, "ports is required");
	parse_err(tunnel("  token: x\n  tokenEnv: HOME\n  ports: [{port: 1}]\n"), 4,
	          "give only one of token, tokenFile and tokenEnv (token already given)");
	parse_err(tunnel("  tokenEnv: HOME\n  token: x\n"), 4, "give only one");

	parse_err("tunnels:\n- name: A\n", 2,
	          "name \"A\": 1 to 63 characters of a-z, 0-9 and -");
	parse_err("tunnels:\n- name: a_b\n", 2, "name \"a_b\"");
	parse_err("tunnels:\n- name: \"\"\n", 2, "name \"\"");
	parse_err("tunnels:\n- name:\n", 2, "name has no value");
	parse_err("tunnels:\n- name: ~\n", 2, "name has no value");
	parse_err("tunnels:\n- name: [a]\n", 2, "name: expected a scalar, found a list");
	parse_err("tunnels:\n- name: {a: b}\n", 2, "name: expected a scalar, found a mapping");
	parse_err("tunnels:\n"
	          "- name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
	          2, "1 to 63 characters");
	struct tenant_set s;
	parse_ok("tunnels:\n"
	         "- name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
	         "  token: x\n"
	         "  ports: [{port: 1}]\n",
	         &s);
	cr_assert_eq(strlen(s.t[0].name), 63);
	tenants_free(&s);

	parse_err(tunnel("  token: x\n  ports: [{port: 1}]\n  maxStreams: 1000001\n"), 5,
	          "maxStreams: expected 0..1000000, found \"1000001\"");
	parse_err(tunnel("  token: x\n  ports: [{port: 1}]\n  maxStreams: -1\n"), 5,
	          "maxStreams: expected a plain decimal number 0..1000000");
	parse_err(tunnel("  token: x\n  ports: [{port: 1}]\n  maxStreams: "
	                 "99999999999999999999\n"),
	          5, "maxStreams");
	parse_err(tunnel("  token: x\n  ports: [{port: 1}]\n  maxStreams: []\n"), 5,
	          "maxStreams: expected a scalar, found a list");
}

Test(tenant, token_errors)
{
	parse_err(tunnel("  token: \"\"\n"), 3, "token is empty");
	parse_err(tunnel("  token:\n"), 3, "token has no value");
	parse_err(tunnel("  token: \"a b\"\n"), 3,
	          "token has white space or a control character");
	parse_err(tunnel("  token: \" ab\"\n"), 3, "white space");
	parse_err(tunnel("  token: \"a\\tb\"\n"), 3, "white space");
	parse_err(tunnel("  token: \"a\\x7fb\"\n"), 3, "control character");
	parse_err(tunnel("  token: \"a\\x01b\"\n"), 3, "control character");
	parse_err(tunnel("  token: \"a\\0b\"\n"), 3, "token contains a NUL byte");
	parse_err(tunnel("  token: [x]\n"), 3, "token: expected a scalar, found a list");

	static char y[8192];
	char *tok = malloc(TENANT_TOKEN_MAX + 2);
	memset(tok, 'k', TENANT_TOKEN_MAX + 1);
	tok[TENANT_TOKEN_MAX + 1] = 0;
	snprintf(y, sizeof(y), "tunnels:\n- name: a\n  token: %s\n  ports: [{port: 1}]\n", tok);
	parse_err(y, 3, "token is longer than 4096 bytes");
	tok[TENANT_TOKEN_MAX] = 0;
	snprintf(y, sizeof(y), "tunnels:\n- name: a\n  token: %s\n  ports: [{port: 1}]\n", tok);
	struct tenant_set s;
	parse_ok(y, &s);
	cr_assert_eq(find(&s, tok), 0, "a token of TENANT_TOKEN_MAX bytes");
	tenants_free(&s);
	free(tok);

	unsetenv("RINGLET_NO_SUCH_VAR");
	parse_err(tunnel("  tokenEnv: RINGLET_NO_SUCH_VAR\n"), 3,
	          "tokenEnv: environment variable \"RINGLET_NO_SUCH_VAR\" is not set");
	setenv("RINGLET_EMPTY", " \n", 1);
	parse_err(tunnel("  tokenEnv: RINGLET_EMPTY\n"), 3,
	          "the token in \"RINGLET_EMPTY\" is empty");
	setenv("RINGLET_SPACE", "a b", 1);
	parse_err(tunnel("  tokenEnv: RINGLET_SPACE\n"), 3, "white space");
}

Test(tenant, token_files_and_env)
{
	struct tenant_set s;
	char yaml[1024];
	const char *f1 = write_file("t1", "one\n", 4);
	const char *f2 = write_file("t2", "  two \r\n\n", 9);
	const char *f3 = write_file("t3", "three", 5);

	setenv("T4", "four\n", 1);
	snprintf(yaml, sizeof(yaml),
	         "tunnels:\n"
	         "- {name: a, tokenFile: %s, ports: [{port: 1}]}\n"
	         "- {name: b, tokenFile: '%s', ports: [{port: 2}]}\n"
	         "- {name: c, tokenFile: \"%s\", ports: [{port: 3}]}\n"
	         "- {name: d, tokenEnv: T4, ports: [{port: 4}]}\n",
	         f1, f2, f3);
	parse_ok(yaml, &s);
	cr_assert_str_eq(s.t[0].token, "one", "one trailing newline trimmed");
	cr_assert_str_eq(s.t[1].token, "two", "white space around trimmed, as --token-file");
	cr_assert_str_eq(s.t[2].token, "three", "no newline at all");
	cr_assert_str_eq(s.t[3].token, "four", "as --token-env");
	cr_assert_str_eq(s.t[2].token_file, f3);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(find(&s, s.t[i].token), i);
	cr_assert_eq(find(&s, "one\n"), -1, "the file's bytes are not the token");
	tenants_free(&s);
}

Test(tenant, token_file_errors)
{
	char yaml[1024], path[160];

	snprintf(path, sizeof(path), "%s/missing-token", dir);
	snprintf(yaml, sizeof(yaml), "tunnels:\n- name: a\n  tokenFile: %s\n", path);
	parse_err(yaml, 3, path);
	cr_assert_not_null(strstr(err, "No such file or directory"), "%s", err);

	snprintf(yaml, sizeof(yaml), "tunnels:\n- name: a\n  tokenFile: %s\n", dir);
	parse_err(yaml, 3, "is not a regular file");

	const char *empty = write_file("empty", "\n", 1);
	snprintf(yaml, sizeof(yaml), "tunnels:\n- name: a\n  tokenFile: %s\n", empty);
	parse_err(yaml, 3, "the token is empty");

	const char *inner = write_file("inner", "a b\n", 4);
	snprintf(yaml, sizeof(yaml), "tunnels:\n- name: a\n  tokenFile: %s\n", inner);
	parse_err(yaml, 3, "the token has white space");

	const char *nul = write_file("nul", "a\0b", 3);
	snprintf(yaml, sizeof(yaml), "tunnels:\n- name: a\n  tokenFile: %s\n", nul);
	parse_err(yaml, 3, "contains a NUL byte");

	char *big = malloc(TENANT_TOKEN_MAX + 1);
	memset(big, 'k', TENANT_TOKEN_MAX + 1);
	const char *bigf = write_file("big", big, TENANT_TOKEN_MAX + 1);
	free(big);
	snprintf(yaml, sizeof(yaml), "tunnels:\n- name: a\n  tokenFile: %s\n", bigf);
	parse_err(yaml, 3, "is larger than 4096 bytes");
}

Test(tenant, port_errors)
{
	parse_err(tunnel("  token: x\n  ports: []\n"), 4, "ports is empty");
	parse_err(tunnel("  token: x\n  ports: 9090\n"), 4, "ports: expected a list");
	parse_err(tunnel("  token: x\n  ports: [9090]\n"), 4, "a port: expected a mapping");
	parse_err(tunnel("  token: x\n  ports:\n  - listen: :1\n"), 5, "port is required");
	parse_err(tunnel("  token: x\n  ports:\n  - port: 1\n    lisen: :1\n"), 6,
	          "unknown key \"lisen\" (known: port, listen)");
	parse_err(tunnel("  token: x\n  ports:\n  - port: 1\n    port: 2\n"), 6,
	          "port is given twice");

	static const char *const bad[] = {"0",  "65536", "9090.5", "0x10", "\"9090\"", "'9090'",
	                                  "-1", "+1",    "010",    "1e3",  "9_090",    "",
	                                  "~",  "abc",   "1 2",    "0o10"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char body[128];
		snprintf(body, sizeof(body), "  token: x\n  ports:\n  - port: %s\n", bad[i]);
		parse_err(tunnel(body), 5, "port: expected ");
	}
	parse_err(tunnel("  token: x\n  ports:\n  - port: \"9090\"\n"), 5,
	          "found the quoted \"9090\"");
	parse_err(
	        tunnel("  token: x\n  ports:\n  - port: 9090\n  - port: 80\n  - port: 9090\n"),
	        7, "port 9090 is declared twice in this tunnel (first at line 5)");

	static char y[8192];
	size_t off =
	        (size_t)snprintf(y, sizeof(y), "tunnels:\n- name: a\n  token: x\n  ports:\n");
	for (int i = 1; i <= TUN_MAX_PORTS + 1; i++)
		off += (size_t)snprintf(y + off, sizeof(y) - off, "  - port: %d\n", i);
	parse_err(y, 5 + TUN_MAX_PORTS, "more than 64 ports in one tunnel");
	y[off - strlen("  - port: 65\n")] = 0;
	struct tenant_set s;
	parse_ok(y, &s);
	cr_assert_eq(s.t[0].nports, TUN_MAX_PORTS);
	tenants_free(&s);
}

Test(tenant, listen_errors)
{
	static const char *const bad[] = {
	        "1.2.3.4",     "::1:80",      "[::1]",       "[::1]80",        ":0",
	        ":65536",      "1.2.3.4:",    "1.2.3.4:080", "[1.2.3.4]:80",   "host:80",
	        "1.2.3.4:80x", "1.2.3.400:1", "[]:80",       "[fe80::1%lo]:1", ":",
	        "19001",       "[::1]:-1",    "1.2.3.4:+80", ":99999999999",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char body[128];
		snprintf(body, sizeof(body),
		         "  token: x\n  ports:\n  - port: 1\n    listen: \"%s\"\n", bad[i]);
		parse_err(tunnel(body), 6, "listen \"");
	}
	parse_err(tunnel("  token: x\n  ports:\n  - port: 1\n    listen: [a]\n"), 6,
	          "listen: expected a scalar");
}

Test(tenant, allow_errors)
{
	parse_err(tunnel("  token: x\n  ports: [{port: 1}]\n  allowIPs: []\n"), 5,
	          "allowIPs is empty");
	parse_err(tunnel("  token: x\n  ports: [{port: 1}]\n  allowIPs: 10.0.0.0/8\n"), 5,
	          "allowIPs: expected a list");
	parse_err(tunnel("  token: x\n  ports: [{port: 1}]\n  allowIPs:\n  - 10.0.0.0/8\n"
	                 "  - 10.0.0.0/33\n"),
	          7, "allowIPs: \"10.0.0.0/33\" is not an address or a network");
	parse_err(tunnel("  token: x\n  ports: [{port: 1}]\n  allowIPs: [example.com]\n"), 5,
	          "\"example.com\"");
	parse_err(tunnel("  token: x\n  ports: [{port: 1}]\n  allowIPs: [[10.0.0.0/8]]\n"), 5,
	          "allowIPs: expected a scalar, found a list");

	static char y[8192];
	size_t off = (size_t)snprintf(y, sizeof(y),
	                              "tunnels:\n- name: a\n  token: x\n  ports: [{port: 1}]\n"
	                              "  allowIPs:\n");
	for (int i = 0; i <= TENANT_ALLOW_MAX; i++)
		off += (size_t)snprintf(y + off, sizeof(y) - off, "  - 10.0.%d.0/24\n", i);
	parse_err(y, 6 + TENANT_ALLOW_MAX, "more than 64 allowIPs");
}

Test(tenant, duplicates_across_tunnels)
{
	parse_err("tunnels:\n"
	          "- {name: a, token: x, ports: [{port: 1}]}\n"
	          "- {name: b, token: y, ports: [{port: 2}]}\n"
	          "- {name: a, token: z, ports: [{port: 3}]}\n",
	          4, "tunnel \"a\" is declared twice (first at line 2)");
	parse_err("tunnels:\n"
	          "- {name: a, token: same, ports: [{port: 1}]}\n"
	          "- {name: b, token: other, ports: [{port: 2}]}\n"
	          "- {name: c, token: same, ports: [{port: 3}]}\n",
	          4, "tunnel \"c\" has the same token as tunnel \"a\" (line 2)");
	cr_assert_null(strstr(err, "same,"), "the message never shows the token");

	/* Several clusters all offering 9090 need their own bindings. */
	parse_err("tunnels:\n"
	          "- name: a\n"
	          "  token: x\n"
	          "  ports: [{port: 9090}]\n"
	          "- name: b\n"
	          "  token: y\n"
	          "  ports: [{port: 9090}]\n",
	          7,
	          "tunnel \"b\" listens on :9090, which clashes with :9090 of tunnel \"a\" "
	          "(line 4)");
	parse_err("tunnels:\n"
	          "- {name: a, token: x, ports: [{port: 1, listen: \"10.0.0.1:80\"}]}\n"
	          "- {name: b, token: y, ports: [{port: 2, listen: \"10.0.0.1:80\"}]}\n",
	          3, "listens on 10.0.0.1:80, which clashes with 10.0.0.1:80 of tunnel \"a\"");
	parse_err("tunnels:\n"
	          "- {name: a, token: x, ports: [{port: 1, listen: \"[::0001]:80\"}]}\n"
	          "- {name: b, token: y, ports: [{port: 2, listen: \"[0::1]:80\"}]}\n",
	          3, "[::1]:80, which clashes with [::1]:80");
	parse_err("tunnels:\n"
	          "- {name: a, token: x, ports: [{port: 1, listen: \"10.0.0.1:80\"}]}\n"
	          "- {name: b, token: y, ports: [{port: 2, listen: \"0.0.0.0:80\"}]}\n",
	          3, "0.0.0.0:80, which clashes with 10.0.0.1:80");
	parse_err("tunnels:\n"
	          "- {name: a, token: x, ports: [{port: 1, listen: \"[::]:80\"}]}\n"
	          "- {name: b, token: y, ports: [{port: 2, listen: \"10.0.0.1:80\"}]}\n",
	          3, "10.0.0.1:80, which clashes with [::]:80");
	parse_err("tunnels:\n"
	          "- {name: a, token: x, ports: [{port: 1, listen: \":80\"}, {port: 2, listen: "
	          "\":80\"}]}\n",
	          2, "tunnel \"a\" listens on :80, which clashes with :80 of tunnel \"a\"");

	struct tenant_set s;
	parse_ok("tunnels:\n"
	         "- {name: a, token: x, ports: [{port: 9090, listen: \"10.0.0.1:80\"}]}\n"
	         "- {name: b, token: y, ports: [{port: 9090, listen: \"10.0.0.2:80\"}]}\n"
	         "- {name: c, token: z, ports: [{port: 9090, listen: \"[::1]:80\"}]}\n"
	         "- {name: d, token: w, ports: [{port: 9090, listen: \":80\"}]}\n"
	         "- {name: e, token: v, ports: [{port: 9090, listen: \"0.0.0.0:81\"}]}\n",
	         &s);
	cr_assert_eq(s.n, 5);

	/* With the server's flags: "" is the --data-addr, and the control port is taken. */
	cr_assert_eq(
	        tenants_check_bindings(&s, "t.yaml", "10.0.0.3", NULL, 0, err, sizeof(err)), 0,
	        "%s", err);
	cr_assert_eq(
	        tenants_check_bindings(&s, "t.yaml", "10.0.0.2", NULL, 0, err, sizeof(err)),
	        -1);
	cr_assert_str_eq(err, "t.yaml:5: tunnel \"d\" listens on 10.0.0.2:80, which clashes "
	                      "with 10.0.0.2:80 of tunnel \"b\" (line 3)");
	cr_assert_eq(tenants_check_bindings(&s, "t.yaml", NULL, NULL, 0, err, sizeof(err)), -1,
	             "no --data-addr: all IPv4 interfaces");
	cr_assert_not_null(strstr(err, "0.0.0.0:80"), "%s", err);
	cr_assert_eq(tenants_check_bindings(&s, "t.yaml", "[::1]", NULL, 0, err, sizeof(err)),
	             -1);
	cr_assert_not_null(strstr(err, "[::1]:80"), "%s", err);
	cr_assert_eq(tenants_check_bindings(&s, "t.yaml", "10.0.0.3", "0.0.0.0", 81, err,
	                                    sizeof(err)),
	             -1);
	cr_assert_str_eq(err, "t.yaml:6: tunnel \"e\" listens on 0.0.0.0:81: the control port "
	                      "is 0.0.0.0:81");
	cr_assert_eq(tenants_check_bindings(&s, "t.yaml", "10.0.0.3", "127.0.0.1", 80, err,
	                                    sizeof(err)),
	             0, "127.0.0.1:80 is apart from every binding: %s", err);
	tenants_free(&s);
}

Test(tenant, too_many_tunnels)
{
	size_t cap = (size_t)(TENANT_MAX + 1) * 64 + 64, off;
	char *y = malloc(cap);
	struct tenant_set s;

	off = (size_t)snprintf(y, cap, "tunnels:\n");
	for (int i = 0; i < TENANT_MAX; i++)
		off += (size_t)snprintf(y + off, cap - off,
		                        "- {name: t%d, token: k%d, ports: [{port: %d}]}\n", i,
		                        i, i + 1);
	parse_ok(y, &s);
	cr_assert_eq(s.n, TENANT_MAX);
	tenants_free(&s);
	snprintf(y + off, cap - off, "- {name: x, token: x, ports: [{port: 9999}]}\n");
	parse_err(y, TENANT_MAX + 2, "more than 4096 tunnels");
	free(y);
}

Test(tenant, thousand_tunnels_all_found)
{
	enum {
		N = 1000
	};
	size_t cap = N * 200, off;
	char *y = malloc(cap);
	struct tenant_set s;
	struct timespec a, b;

	off = (size_t)snprintf(y, cap, "tunnels:\n");
	for (int i = 0; i < N; i++)
		off += (size_t)snprintf(y + off, cap - off,
		                        "  - name: cluster-%04d\n"
		                        "    token: tok-%08x-%d\n"
		                        "    ports:\n"
		                        "      - port: 9090\n"
		                        "        listen: \":%d\"\n"
		                        "    maxStreams: %d\n",
		                        i, (unsigned)i * 2654435761u, i, 20000 + i, i);
	clock_gettime(CLOCK_MONOTONIC, &a);
	parse_ok(y, &s);
	clock_gettime(CLOCK_MONOTONIC, &b);
	cr_log_info("parsed %d tunnels (%zu bytes) in %.1f ms", N, off,
	            (double)(b.tv_sec - a.tv_sec) * 1e3 +
	                    (double)(b.tv_nsec - a.tv_nsec) / 1e6);
	cr_assert_eq(s.n, N);
	cr_assert_geq(s.nslot, 2 * N);
	cr_assert_eq(s.nslot & (s.nslot - 1), 0);
	for (int i = 0; i < N; i++) {
		char tok[64];
		snprintf(tok, sizeof(tok), "tok-%08x-%d", (unsigned)i * 2654435761u, i);
		cr_assert_eq(find(&s, tok), i, "%s", tok);
		cr_assert_eq(s.t[i].line, 2 + 6 * i);
		cr_assert_eq(s.t[i].ports[0].listen_port, 20000 + i);
		tok[strlen(tok) - 1] ^= 1;
		cr_assert_neq(find(&s, tok), i);
	}
	tenants_free(&s);
	free(y);
}

Test(tenant, find_refuses)
{
	struct tenant_set s;
	parse_ok("tunnels:\n"
	         "- {name: a, token: alpha-token, ports: [{port: 1}]}\n"
	         "- {name: b, token: beta-token, ports: [{port: 2}]}\n"
	         "- {name: c, token: gamma, ports: [{port: 3}]}\n",
	         &s);
	cr_assert_eq(find(&s, "alpha-token"), 0);
	cr_assert_eq(find(&s, "beta-token"), 1);
	cr_assert_eq(find(&s, "gamma"), 2);
	cr_assert_eq(find(&s, "alpha-toke"), -1, "a prefix");
	cr_assert_eq(find(&s, "alpha-tokenX"), -1, "an extension");
	cr_assert_eq(find(&s, "Alpha-token"), -1);
	cr_assert_eq(find(&s, "delta"), -1);
	cr_assert_eq(find(&s, ""), -1);
	cr_assert_eq(tenants_find(&s, NULL, 0), -1);
	cr_assert_eq(tenants_find(&s, "alpha-token", 5), -1, "only len bytes count");
	cr_assert_eq(tenants_find(&s, "gammaXYZ", 5), 2);
	cr_assert_eq(tenants_find(NULL, "gamma", 5), -1);
	struct tenant_set none = {0};
	cr_assert_eq(tenants_find(&none, "gamma", 5), -1);
	tenants_free(&s);
}

Test(tenant, deep_nesting)
{
	enum {
		DEEP = 100000
	};
	char *y = malloc(2 * DEEP + 64);
	size_t off;

	memset(y, '[', DEEP);
	memset(y + DEEP, ']', DEEP);
	y[2 * DEEP] = 0;
	parse_err(y, 1, "expected a mapping, found a list");

	off = (size_t)sprintf(y, "tunnels:\n- name: a\n  token: ");
	memset(y + off, '[', DEEP);
	y[off + DEEP] = 0;
	parse_err(y, 3, "token: expected a scalar, found a list");

	off = (size_t)sprintf(y, "tunnels:\n- name: a\n  token: x\n  ports:\n  - port: ");
	for (int i = 0; i < 1000; i++)
		off += (size_t)sprintf(y + off, "{a: ");
	y[off] = 0;
	parse_err(y, 5, "port: expected a scalar, found a mapping");

	/* Block style: each entry a list one step further in. */
	off = (size_t)sprintf(y, "tunnels:\n");
	for (int i = 0; i < 300; i++)
		off += (size_t)sprintf(y + off, "%*s- \n", i * 2, "");
	cr_assert_lt(off, 2 * DEEP);
	parse_err(y, 3, "a tunnel: expected a mapping, found a list");
	free(y);
}

Test(tenant, binary_garbage)
{
	/* UTF-8 only: a UTF-16 file is refused, not decoded. */
	static const char bom_utf16[] = "\xff\xfe"
	                                "t\0u\0n\0";
	parse_err_n(bom_utf16, sizeof(bom_utf16) - 1, 1,
	            "not valid YAML: invalid leading UTF-8");
	parse_err_n("tunnels: [\x01]\n", 12, 1, "not valid YAML");
	parse_err_n("tunnels: []\n\xc3\x28\n", 15, 2, "not valid YAML");
	parse_err_n("tunnels:\0 []\n", 12, 1, "not valid YAML");

	/* Random bytes: refused, never a crash (the fuzz driver goes further). */
	char buf[4096];
	unsigned x = 12345;
	for (int round = 0; round < 200; round++) {
		for (size_t i = 0; i < sizeof(buf); i++) {
			x = x * 1103515245u + 12345u;
			buf[i] = (char)(x >> 16);
		}
		struct tenant_set s;
		cr_assert_eq(tenants_parse(buf, sizeof(buf), "t.yaml", &s, err, sizeof(err)),
		             -1);
		cr_assert(strncmp(err, "t.yaml:", 7) == 0, "%s", err);
	}
}

Test(tenant, file_size_and_load)
{
	struct tenant_set s;
	const char *yaml = "tunnels:\n- {name: a, token: x, ports: [{port: 1}]}\n";
	const char *path = write_file("tunnels.yaml", yaml, strlen(yaml));

	cr_assert_eq(tenants_load(path, &s, err, sizeof(err)), 0, "%s", err);
	uint8_t md[32];
	SHA256((const uint8_t *)yaml, strlen(yaml), md);
	cr_assert_arr_eq(s.sha256, md, 32);
	cr_assert_eq(find(&s, "x"), 0);
	tenants_free(&s);

	/* 10 MB: refused by its size before anything is read. */
	char big[160];
	snprintf(big, sizeof(big), "%s/big.yaml", dir);
	int fd = open(big, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_neq(fd, -1);
	cr_assert_eq(ftruncate(fd, 10 << 20), 0);
	close(fd);
	cr_assert_eq(tenants_load(big, &s, err, sizeof(err)), -1);
	char want[256];
	snprintf(want, sizeof(want), "%s: the file is larger than 4194304 bytes", big);
	cr_assert_str_eq(err, want);

	char *ten = malloc(10 << 20);
	memset(ten, '#', 10 << 20);
	parse_err_n(ten, 10 << 20, 0, "the file is larger than 4194304 bytes");
	free(ten);

	snprintf(big, sizeof(big), "%s/nope.yaml", dir);
	cr_assert_eq(tenants_load(big, &s, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: cannot read it: No such file or directory", big);
	cr_assert_str_eq(err, want);
	cr_assert_eq(tenants_load(dir, &s, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "not a regular file"), "%s", err);

	const char *bad = write_file("bad.yaml", "tunnels:\n- name: a\n  tokn: x\n", 29);
	cr_assert_eq(tenants_load(bad, &s, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:3: a tunnel: unknown key \"tokn\"", bad);
	cr_assert(strncmp(err, want, strlen(want)) == 0, "%s", err);
}
