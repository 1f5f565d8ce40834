/* tests/tools/flags.c — the pflag-style flag parser: every syntax form, slices, errors. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "tools/flags.h"

struct vals {
	char *s;
	bool b, b2;
	int i, ms;
	uint16_t port;
	uint32_t bytes;
	char **list;
	size_t nlist;
	uint16_t ports[4];
	size_t nports;
};

static size_t table(struct flag *t, struct vals *v)
{
	size_t n = 0;

	memset(t, 0, 9 * sizeof(*t));
	t[n++] = (struct flag){.name = "str", .type = FLAG_STRING, .dst = &v->s, .usage = "s"};
	t[n++] = (struct flag){.name = "bool",
	                       .shorthand = 'b',
	                       .type = FLAG_BOOL,
	                       .dst = &v->b,
	                       .usage = "b"};
	t[n++] = (struct flag){.name = "other",
	                       .shorthand = 'o',
	                       .type = FLAG_BOOL,
	                       .dst = &v->b2,
	                       .usage = "o"};
	t[n++] = (struct flag){.name = "int",
	                       .type = FLAG_INT,
	                       .dst = &v->i,
	                       .min = -5,
	                       .max = 100,
	                       .usage = "i"};
	t[n++] = (struct flag){
	        .name = "wait", .type = FLAG_DURATION, .dst = &v->ms, .usage = "w"};
	t[n++] = (struct flag){
	        .name = "control-port", .type = FLAG_PORT, .dst = &v->port, .usage = "c"};
	t[n++] = (struct flag){.name = "window",
	                       .type = FLAG_BYTES,
	                       .dst = &v->bytes,
	                       .min = 1,
	                       .max = 1 << 30,
	                       .usage = "w"};
	t[n++] = (struct flag){.name = "san",
	                       .type = FLAG_STRINGS,
	                       .dst = &v->list,
	                       .count = &v->nlist,
	                       .usage = "l"};
	t[n++] = (struct flag){.name = "port",
	                       .shorthand = 'p',
	                       .type = FLAG_PORTS,
	                       .dst = v->ports,
	                       .count = &v->nports,
	                       .cap = 4,
	                       .usage = "p"};
	return n;
}

static struct flag tab[9];
static struct vals v;
static size_t ntab;
static char *pos[16];
static int npos;
static char err[256];

static int run(int argc, char **argv)
{
	ntab = table(tab, &v);
	return flags_parse(tab, ntab, argc, argv, pos, &npos, err, sizeof(err));
}

#define RUN(...)                                                                               \
	({                                                                                     \
		char *a_[] = {__VA_ARGS__};                                                    \
		run((int)(sizeof(a_) / sizeof(a_[0])), a_);                                    \
	})

static void reset(void)
{
	free(v.s);
	flags_free_strings(&v.list, &v.nlist);
	memset(&v, 0, sizeof(v));
	err[0] = 0;
}

TestSuite(flags, .init = reset, .fini = reset);

Test(flags, long_equals_and_space)
{
	cr_assert_eq(RUN("--str=a=b", "--int", "42"), 0);
	cr_assert_str_eq(v.s, "a=b");
	cr_assert_eq(v.i, 42);
	cr_assert_eq(npos, 0);
}

Test(flags, last_scalar_wins)
{
	cr_assert_eq(RUN("--str", "one", "--str=two"), 0);
	cr_assert_str_eq(v.s, "two");
	cr_assert_eq(tab[0].seen, 2);
}

Test(flags, value_may_start_with_dash)
{
	cr_assert_eq(RUN("--str", "--int", "--int=-5"), 0);
	cr_assert_str_eq(v.s, "--int");
	cr_assert_eq(v.i, -5);
}

Test(flags, bool_forms)
{
	cr_assert_eq(RUN("--bool"), 0);
	cr_assert(v.b);
	cr_assert_eq(RUN("--bool=false"), 0);
	cr_assert_not(v.b);
	cr_assert_eq(RUN("--bool=1"), 0);
	cr_assert(v.b);
	cr_assert_eq(RUN("--bool=0"), 0);
	cr_assert_not(v.b);
	cr_assert_eq(RUN("--bool=true"), 0);
	cr_assert(v.b);
}

Test(flags, bool_never_takes_next_argument)
{
	v.b = true;
	cr_assert_eq(RUN("--bool", "false"), 0);
	cr_assert(v.b);
	cr_assert_eq(npos, 1);
	cr_assert_str_eq(pos[0], "false");
}

Test(flags, bool_bad_value_names_flag)
{
	cr_assert_eq(RUN("--bool=maybe"), -1);
	cr_assert(strstr(err, "\"maybe\""), "%s", err);
	cr_assert(strstr(err, "--bool"), "%s", err);
}

Test(flags, short_forms)
{
	cr_assert_eq(RUN("-p", "80", "-p=81", "-p82"), 0);
	cr_assert_eq(v.nports, 3);
	cr_assert_eq(v.ports[0], 80);
	cr_assert_eq(v.ports[1], 81);
	cr_assert_eq(v.ports[2], 82);
}

Test(flags, short_bool_run_then_value)
{
	cr_assert_eq(RUN("-bop443"), 0);
	cr_assert(v.b);
	cr_assert(v.b2);
	cr_assert_eq(v.nports, 1);
	cr_assert_eq(v.ports[0], 443);
}

Test(flags, short_bool_equals)
{
	v.b = true;
	cr_assert_eq(RUN("-b=false"), 0);
	cr_assert_not(v.b);
}

Test(flags, double_dash_ends_flags)
{
	cr_assert_eq(RUN("a", "--bool", "--", "--str=x", "-p", "-"), 0);
	cr_assert(v.b);
	cr_assert_null(v.s);
	cr_assert_eq(npos, 4);
	cr_assert_str_eq(pos[0], "a");
	cr_assert_str_eq(pos[1], "--str=x");
	cr_assert_str_eq(pos[2], "-p");
	cr_assert_str_eq(pos[3], "-");
}

Test(flags, string_list_repeatable_and_comma)
{
	cr_assert_eq(
	        RUN("--san", "a.example.com,b.example.com", "--san=10.0.0.1", "--san", " c , "),
	        0);
	cr_assert_eq(v.nlist, 4);
	cr_assert_str_eq(v.list[0], "a.example.com");
	cr_assert_str_eq(v.list[1], "b.example.com");
	cr_assert_str_eq(v.list[2], "10.0.0.1");
	cr_assert_str_eq(v.list[3], "c");
}

Test(flags, port_list_repeatable_comma_and_dedup)
{
	cr_assert_eq(RUN("--port", "80,443", "--port=8080", "-p", "80"), 0);
	cr_assert_eq(v.nports, 3);
	cr_assert_eq(v.ports[0], 80);
	cr_assert_eq(v.ports[1], 443);
	cr_assert_eq(v.ports[2], 8080);
}

Test(flags, port_list_bad_values)
{
	cr_assert_eq(RUN("--port", "80,x"), -1);
	cr_assert(strstr(err, "\"80,x\"") && strstr(err, "--port"), "%s", err);
	reset();
	cr_assert_eq(RUN("--port=0"), -1);
	reset();
	cr_assert_eq(RUN("--port=65536"), -1);
	reset();
	cr_assert_eq(RUN("--port=65535"), 0);
	reset();
	cr_assert_eq(RUN("--port=1,2,3,4,5"), -1);
	cr_assert(strstr(err, "too many"), "%s", err);
}

Test(flags, port_scalar)
{
	cr_assert_eq(RUN("--control-port=8123"), 0);
	cr_assert_eq(v.port, 8123);
	cr_assert_eq(RUN("--control-port", "80a"), -1);
	cr_assert_str_eq(err,
	                 "invalid argument \"80a\" for \"--control-port\" flag: not a port "
	                 "number (1-65535)");
	cr_assert_eq(RUN("--control-port=-1"), -1);
}

Test(flags, unknown_flags)
{
	cr_assert_eq(RUN("--nope"), -1);
	cr_assert_str_eq(err, "unknown flag: --nope");
	cr_assert_eq(RUN("--nope=3"), -1);
	cr_assert_str_eq(err, "unknown flag: --nope");
	cr_assert_eq(RUN("-x"), -1);
	cr_assert_str_eq(err, "unknown shorthand flag: 'x' in -x");
	cr_assert_eq(RUN("-bx"), -1);
	cr_assert_str_eq(err, "unknown shorthand flag: 'x' in -bx");
	cr_assert_eq(RUN("---str=a"), -1);
	cr_assert(strstr(err, "bad flag syntax"), "%s", err);
}

Test(flags, missing_values)
{
	cr_assert_eq(RUN("--str"), -1);
	cr_assert_str_eq(err, "flag needs an argument: --str");
	cr_assert_eq(RUN("-p"), -1);
	cr_assert_str_eq(err, "flag needs an argument: 'p' in -p");
}

Test(flags, int_bounds_and_syntax)
{
	cr_assert_eq(RUN("--int=101"), -1);
	cr_assert(strstr(err, "\"101\"") && strstr(err, "--int"), "%s", err);
	cr_assert_eq(RUN("--int=1x"), -1);
	cr_assert_eq(RUN("--int="), -1);
	cr_assert_eq(RUN("--int=100"), 0);
	cr_assert_eq(v.i, 100);
}

Test(flags, durations)
{
	static const struct {
		const char *s;
		long long ms;
	} ok[] = {{"30s", 30000}, {"500ms", 500}, {"2m", 120000}, {"1h30m", 5400000},
	          {"30", 30000},  {"1.5s", 1500}, {"0", 0},       {"1m30s", 90000},
	          {"250us", 0},   {"2h", 7200000}};
	static const char *const bad[] = {"", "s", "10x", "-1s", "1s2", "1 s", "abc"};
	long long ms;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_null(flags_parse_duration_ms(ok[i].s, &ms), "%s", ok[i].s);
		cr_assert_eq(ms, ok[i].ms, "%s: %lld", ok[i].s, ms);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_not_null(flags_parse_duration_ms(bad[i], &ms), "%s", bad[i]);
	cr_assert_eq(RUN("--wait", "2m"), 0);
	cr_assert_eq(v.ms, 120000);
	cr_assert_eq(RUN("--wait=soon"), -1);
	cr_assert(strstr(err, "\"soon\"") && strstr(err, "--wait"), "%s", err);
}

Test(flags, bytes)
{
	unsigned long long b;

	cr_assert_null(flags_parse_bytes("262144", &b));
	cr_assert_eq(b, 262144);
	cr_assert_null(flags_parse_bytes("256k", &b));
	cr_assert_eq(b, 262144);
	cr_assert_null(flags_parse_bytes("256KiB", &b));
	cr_assert_eq(b, 262144);
	cr_assert_null(flags_parse_bytes("1M", &b));
	cr_assert_eq(b, 1048576);
	cr_assert_null(flags_parse_bytes("2g", &b));
	cr_assert_eq(b, 2ull << 30);
	cr_assert_null(flags_parse_bytes("10b", &b));
	cr_assert_eq(b, 10);
	cr_assert_not_null(flags_parse_bytes("k", &b));
	cr_assert_not_null(flags_parse_bytes("10q", &b));
	cr_assert_not_null(flags_parse_bytes("10kx", &b));
	cr_assert_eq(RUN("--window=64k"), 0);
	cr_assert_eq(v.bytes, 65536);
	cr_assert_eq(RUN("--window=2g"), -1);
	cr_assert(strstr(err, "--window"), "%s", err);
}

Test(flags, help_listing)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	ntab = table(tab, &v);
	tab[0].def = "x y";
	tab[3].def = "7";
	tab[2].hidden = true;
	flags_print_help(f, tab, ntab, 80);
	fclose(f);
	cr_assert(strstr(buf, "  -b, --bool "), "%s", buf);
	cr_assert(strstr(buf, "      --str string "), "%s", buf);
	cr_assert(strstr(buf, "(default \"x y\")"), "%s", buf);
	cr_assert(strstr(buf, "(default 7)"), "%s", buf);
	cr_assert(strstr(buf, "-p, --port ports"), "%s", buf);
	cr_assert_null(strstr(buf, "--other"), "%s", buf);
	/* sorted by long name */
	cr_assert(strstr(buf, "--bool") < strstr(buf, "--control-port"));
	cr_assert(strstr(buf, "--window") > strstr(buf, "--wait"));
	free(buf);
}
