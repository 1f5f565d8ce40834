/* tests/engine/log.c — logfmt line format, quoting, level filter, file and reopen. */
#include <criterion/criterion.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/log.h"

static char dir[64], path[128];

static void setup(void)
{
	strcpy(dir, "/tmp/ringlet-log-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ringlet.log", dir);
}

static void teardown(void)
{
	char p2[160];

	log_open(LOG_INFO, NULL);
	unlink(path);
	snprintf(p2, sizeof(p2), "%s.1", path);
	unlink(p2);
	rmdir(dir);
}

/* The file's whole content (NUL-terminated, caller frees). */
static char *slurp(const char *p)
{
	FILE *f = fopen(p, "r");
	char *buf = calloc(1, 65536);
	size_t n;

	cr_assert_not_null(f);
	n = fread(buf, 1, 65535, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static bool matches(const char *re, const char *s)
{
	regex_t r;
	bool ok;

	cr_assert_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB), 0);
	ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

TestSuite(log, .init = setup, .fini = teardown);

Test(log, line_format)
{
	char *s;

	cr_assert_eq(log_open(LOG_INFO, path), 0);
	log_info("client connected", "client_id=%s port=%d", "ab12", 9090);
	s = slurp(path);
	cr_assert(matches("^time=[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{"
	                  "3}Z "
	                  "level=info msg=\"client connected\" client_id=ab12 port=9090\n$",
	                  s),
	          "%s", s);
	free(s);
}

Test(log, msg_without_kv_and_unquoted_msg)
{
	char *s;

	cr_assert_eq(log_open(LOG_DEBUG, path), 0);
	log_kv(LOG_WARN, "draining", NULL);
	s = slurp(path);
	cr_assert(matches(" level=warn msg=draining\n$", s), "%s", s);
	free(s);
}

Test(log, file_mode_and_append)
{
	struct stat st;
	char *s;

	umask(0);
	cr_assert_eq(log_open(LOG_INFO, path), 0);
	log_error("x", NULL);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0640);
	cr_assert_eq(log_open(LOG_INFO, path), 0);
	log_error("y", NULL);
	s = slurp(path);
	cr_assert(matches("msg=x\n.*msg=y\n$", s), "%s", s);
	free(s);
}

Test(log, level_filter)
{
	char *s;

	cr_assert_eq(log_open(LOG_WARN, path), 0);
	cr_assert_not(log_enabled(LOG_INFO));
	cr_assert(log_enabled(LOG_WARN));
	cr_assert(log_enabled(LOG_ERROR));
	log_debug("d", "k=%d", 1);
	log_info("i", NULL);
	log_warn("w", NULL);
	log_error("e", NULL);
	s = slurp(path);
	cr_assert_null(strstr(s, "msg=d"));
	cr_assert_null(strstr(s, "msg=i"));
	cr_assert_not_null(strstr(s, "level=warn msg=w\n"));
	cr_assert_not_null(strstr(s, "level=error msg=e\n"));
	free(s);
}

Test(log, level_parse)
{
	cr_assert_eq(log_level_parse("debug"), LOG_DEBUG);
	cr_assert_eq(log_level_parse("info"), LOG_INFO);
	cr_assert_eq(log_level_parse("warn"), LOG_WARN);
	cr_assert_eq(log_level_parse("warning"), LOG_WARN);
	cr_assert_eq(log_level_parse("error"), LOG_ERROR);
	cr_assert_eq(log_level_parse("loud"), -1);
	cr_assert_eq(log_level_parse(""), -1);
	cr_assert_eq(log_level_parse(NULL), -1);
}

Test(log, open_errors)
{
	cr_assert_eq(log_open(LOG_INFO, "/nonexistent-dir/ringlet.log"), -ENOENT);
	cr_assert_eq(log_open((enum log_level)9, NULL), -EINVAL);
}

Test(log, quoting)
{
	cr_assert_str_eq(log_q("plain"), "plain");
	cr_assert_str_eq(log_q(""), "\"\"");
	cr_assert_str_eq(log_q(NULL), "\"\"");
	cr_assert_str_eq(log_q("two words"), "\"two words\"");
	cr_assert_str_eq(log_q("a=b"), "\"a=b\"");
	cr_assert_str_eq(log_q("say \"hi\""), "\"say \\\"hi\\\"\"");
	cr_assert_str_eq(log_q("back\\slash x"), "\"back\\\\slash x\"");
	cr_assert_str_eq(log_q("line\nbreak"), "\"line\\nbreak\"");
	cr_assert_str_eq(log_q("tab\there"), "\"tab\\there\"");
	cr_assert_str_eq(log_q("bell\a"), "\"bell\\u0007\"");
	cr_assert_str_eq(log_q("caf\xc3\xa9"), "caf\xc3\xa9");
}

Test(log, quote_buffers_rotate)
{
	const char *a = log_q("one one"), *b = log_q("two two"), *c = log_q("three three"),
	           *d = log_q("four four");

	cr_assert_str_eq(a, "\"one one\"");
	cr_assert_str_eq(b, "\"two two\"");
	cr_assert_str_eq(c, "\"three three\"");
	cr_assert_str_eq(d, "\"four four\"");
}

Test(log, quote_long_value_is_cut_and_closed)
{
	char big[4096];
	const char *q;
	size_t len;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	big[10] = ' ';
	q = log_q(big);
	len = strlen(q);
	cr_assert_lt(len, 1024);
	cr_assert_eq(q[0], '"');
	cr_assert_eq(q[len - 1], '"');
}

Test(log, long_line_truncated_in_one_line)
{
	char big[5000], *s;
	size_t len;

	memset(big, 'y', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	cr_assert_eq(log_open(LOG_INFO, path), 0);
	log_info("big", "v=\"%s\"", big);
	log_info("after", NULL);
	s = slurp(path);
	len = strcspn(s, "\n");
	cr_assert_leq(len + 1, 2048);
	cr_assert(matches("yyy\" truncated=true\n", s), "%.100s", s + len - 60);
	cr_assert(matches("\n[^\n]*msg=after\n$", s));
	free(s);
}

Test(log, reopen_after_rotation)
{
	char rotated[160], *s;

	cr_assert_eq(log_open(LOG_INFO, path), 0);
	log_info("before", NULL);
	snprintf(rotated, sizeof(rotated), "%s.1", path);
	cr_assert_eq(rename(path, rotated), 0);
	log_info("still old", NULL);
	cr_assert_eq(log_reopen(), 0);
	log_info("new", NULL);
	s = slurp(rotated);
	cr_assert(matches("msg=before\n.*msg=\"still old\"\n$", s), "%s", s);
	free(s);
	s = slurp(path);
	cr_assert(matches("^[^\n]*msg=new\n$", s), "%s", s);
	free(s);
}

Test(log, reopen_on_stderr_is_noop)
{
	cr_assert_eq(log_open(LOG_INFO, NULL), 0);
	cr_assert_eq(log_reopen(), 0);
}
