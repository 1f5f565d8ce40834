/* tests/engine/log.c — logfmt line format, quoting, level filter, file and reopen, and
 * the rate limit (bursts, summary lines, rollover, exact totals from two threads). */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
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

	log_rate_set(LOG_RATE_BURST, LOG_RATE_INTERVAL_MS);
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

/* ---- rate limit ------------------------------------------------------------------------ */

/* The whole file, however long (NUL-terminated, caller frees). */
static char *slurp_all(const char *p)
{
	FILE *f = fopen(p, "r");
	size_t cap = 1 << 16, n = 0, r;
	char *buf = malloc(cap);

	cr_assert_not_null(f);
	while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (n + 1 == cap)
			buf = realloc(buf, cap *= 2);
	}
	buf[n] = 0;
	fclose(f);
	return buf;
}

/* Lines of s containing needle. */
static unsigned count_lines(const char *s, const char *needle)
{
	unsigned n = 0;

	for (const char *l = s; *l;) {
		const char *e = strchr(l, '\n');
		size_t len = e ? (size_t)(e - l) : strlen(l);

		if (memmem(l, len, needle, strlen(needle)))
			n++;
		l += len + (e ? 1 : 0);
	}
	return n;
}

/* The sum of suppressed=N over the summary lines of class msg (its log_q form). */
static unsigned long long suppressed_total(const char *s, const char *similar)
{
	char key[160];
	unsigned long long sum = 0;

	snprintf(key, sizeof(key), "similar=%s suppressed=", similar);
	for (const char *p = s; (p = strstr(p, key)); p += strlen(key))
		sum += strtoull(p + strlen(key), NULL, 10);
	return sum;
}

Test(log, rate_burst_then_summary_at_exit)
{
	char *s;

	cr_assert_eq(log_open(LOG_INFO, path), 0);
	log_rate_set(5, 60000);
	for (int i = 0; i < 20; i++)
		log_warn("wrong token", "n=%d", i);
	s = slurp_all(path);
	cr_assert_eq(count_lines(s, "msg=\"wrong token\""), 5, "%s", s);
	cr_assert(matches("n=4\n$", s), "the first five are written: %s", s);
	free(s);
	cr_assert_eq(log_rate_flush(false), 0, "the window has not ended: no summary yet");
	cr_assert_eq(log_rate_flush(true), 1);
	s = slurp_all(path);
	cr_assert(matches("level=warn msg=\"suppressed similar lines\" similar=\"wrong token\" "
	                  "suppressed=15 interval_ms=60000\n$",
	                  s),
	          "%s", s);
	free(s);
	cr_assert_eq(log_rate_flush(true), 0, "counts are summarised once");
}

Test(log, rate_classes_are_independent_and_errors_limited)
{
	char *s;

	cr_assert_eq(log_open(LOG_INFO, path), 0);
	log_rate_set(3, 60000);
	for (int i = 0; i < 10; i++) {
		log_warn("class a", NULL);
		log_error("class b", NULL);
	}
	s = slurp_all(path);
	cr_assert_eq(count_lines(s, "msg=\"class a\""), 3);
	cr_assert_eq(count_lines(s, "level=error msg=\"class b\""), 3);
	free(s);
	cr_assert_eq(log_rate_flush(true), 2);
	s = slurp_all(path);
	cr_assert_eq(suppressed_total(s, "\"class a\""), 7);
	cr_assert(matches("level=error msg=\"suppressed similar lines\" similar=\"class b\" "
	                  "suppressed=7",
	                  s),
	          "a summary has its class's level: %s", s);
	free(s);
}

Test(log, rate_info_only_when_asked)
{
	char *s;

	cr_assert_eq(log_open(LOG_DEBUG, path), 0);
	log_rate_set(2, 60000);
	for (int i = 0; i < 10; i++) {
		log_info("plain info", NULL);
		log_info_limited("remote info", NULL);
		log_debug_limited("remote debug", NULL);
	}
	s = slurp_all(path);
	cr_assert_eq(count_lines(s, "msg=\"plain info\""), 10);
	cr_assert_eq(count_lines(s, "msg=\"remote info\""), 2);
	cr_assert_eq(count_lines(s, "msg=\"remote debug\""), 2);
	free(s);
}

Test(log, rate_filtered_lines_are_not_counted)
{
	cr_assert_eq(log_open(LOG_ERROR, path), 0);
	log_rate_set(1, 60000);
	for (int i = 0; i < 10; i++)
		log_warn("below the threshold", NULL);
	cr_assert_eq(log_rate_flush(true), 0);
}

Test(log, rate_disabled)
{
	char *s;

	cr_assert_eq(log_open(LOG_INFO, path), 0);
	log_rate_set(0, 60000);
	for (int i = 0; i < 50; i++)
		log_warn("unlimited", NULL);
	s = slurp_all(path);
	cr_assert_eq(count_lines(s, "msg=unlimited"), 50);
	free(s);
	cr_assert_eq(log_rate_flush(true), 0);
}

Test(log, rate_rollover_summary_before_next_line)
{
	char *s;

	cr_assert_eq(log_open(LOG_INFO, path), 0);
	log_rate_set(2, 100);
	for (int i = 0; i < 10; i++)
		log_warn("rolling", "n=%d", i);
	usleep(150 * 1000);
	log_warn("rolling", "n=%d", 10);
	s = slurp_all(path);
	cr_assert_eq(count_lines(s, "msg=rolling"), 3, "%s", s);
	cr_assert(matches("n=1\n[^\n]*msg=\"suppressed similar lines\" similar=rolling "
	                  "suppressed=8 interval_ms=100\n[^\n]*msg=rolling n=10\n$",
	                  s),
	          "%s", s);
	free(s);
}

Test(log, rate_flush_after_the_interval)
{
	char *s;

	cr_assert_eq(log_open(LOG_INFO, path), 0);
	log_rate_set(1, 100);
	for (int i = 0; i < 4; i++)
		log_warn("quiet later", NULL);
	usleep(150 * 1000);
	cr_assert_eq(log_rate_flush(false), 1, "a window that ended is summarised by the tick");
	cr_assert_eq(log_rate_flush(false), 0);
	log_warn("quiet later", NULL);
	s = slurp_all(path);
	cr_assert_eq(suppressed_total(s, "\"quiet later\""), 3);
	cr_assert_eq(count_lines(s, "msg=\"quiet later\""), 2, "a new window writes again");
	free(s);
}

Test(log, rate_table_is_bounded)
{
	char msg[32], *s;

	cr_assert_eq(log_open(LOG_INFO, path), 0);
	log_rate_set(5, 60000);
	for (int i = 0; i < LOG_RATE_CLASSES + 44; i++) {
		snprintf(msg, sizeof(msg), "class %d", i);
		log_warn(msg, NULL);
	}
	s = slurp_all(path);
	cr_assert_eq(count_lines(s, "msg=\"class "), LOG_RATE_CLASSES + 5,
	             "each class that has a slot writes its line; the rest share one");
	free(s);
	cr_assert_eq(log_rate_flush(true), 1);
	s = slurp_all(path);
	cr_assert_eq(suppressed_total(s, "\"other messages\""), 39);
	free(s);
}

#define RATE_THREAD_LINES 20000

static void *rate_worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < RATE_THREAD_LINES; i++)
		log_warn("from two threads", "i=%d", i);
	return NULL;
}

Test(log, rate_exact_totals_from_two_threads)
{
	pthread_t t[2];
	char *s;

	cr_assert_eq(log_open(LOG_INFO, path), 0);
	/* A short interval, so windows roll over while both threads log. */
	log_rate_set(3, 1);
	for (int i = 0; i < 2; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, rate_worker, NULL), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	log_rate_flush(true);
	s = slurp_all(path);
	unsigned written = count_lines(s, "msg=\"from two threads\"");
	unsigned long long left_out = suppressed_total(s, "\"from two threads\"");
	cr_assert_eq(written + left_out, 2 * RATE_THREAD_LINES,
	             "every line is written or counted: %u + %llu", written, left_out);
	cr_assert_gt(left_out, 0);
	free(s);
}
