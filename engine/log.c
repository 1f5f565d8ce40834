/* engine/log.c — logfmt logging (see log.h).
 *
 * Every line is built in a stack buffer and written with one write(2), so lines from
 * different shards never interleave. The destination is a descriptor number that never
 * changes while the process runs: log_reopen() opens the file again and dup3()s the new
 * description onto that number, so writers never see a closed or reused descriptor and
 * need no lock (and log_reopen stays async-signal-safe: open, dup3, close). */
#include "engine/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048 /* longest line written; longer ones are cut and marked */
#define LOG_Q_MAX 512     /* longest value log_q returns, quotes included */
#define LOG_Q_BUFS 4      /* log_q results that stay valid at once per thread */

static atomic_int log_threshold = LOG_INFO;
static atomic_int log_fd = STDERR_FILENO;
static char log_path[PATH_MAX]; /* empty: stderr */

static const char *const level_names[] = {"debug", "info", "warn", "error"};

static int open_log_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int log_open(enum log_level level, const char *path)
{
	int fd, old;

	if (level < LOG_DEBUG || level > LOG_ERROR)
		return -EINVAL;
	if (!path || !*path) {
		atomic_store(&log_threshold, level);
		log_path[0] = 0;
		old = atomic_exchange(&log_fd, STDERR_FILENO);
		if (old != STDERR_FILENO)
			close(old);
		return 0;
	}
	if (strlen(path) >= sizeof(log_path))
		return -ENAMETOOLONG;
	fd = open_log_file(path);
	if (fd == -1)
		return -errno;
	strcpy(log_path, path);
	atomic_store(&log_threshold, level);
	old = atomic_load(&log_fd);
	if (old != STDERR_FILENO) {
		/* Keep the descriptor number other threads may be writing to. */
		if (dup3(fd, old, O_CLOEXEC) == -1) {
			int e = errno;

			close(fd);
			return -e;
		}
		close(fd);
	} else {
		atomic_store(&log_fd, fd);
	}
	return 0;
}

int log_reopen(void)
{
	int fd, cur, e;

	cur = atomic_load(&log_fd);
	if (!log_path[0] || cur == STDERR_FILENO)
		return 0;
	fd = open_log_file(log_path);
	if (fd == -1)
		return -errno;
	if (dup3(fd, cur, O_CLOEXEC) == -1) {
		e = errno;
		close(fd);
		return -e;
	}
	close(fd);
	return 0;
}

int log_level_parse(const char *s)
{
	if (!s)
		return -1;
	if (!strcmp(s, "debug"))
		return LOG_DEBUG;
	if (!strcmp(s, "info"))
		return LOG_INFO;
	if (!strcmp(s, "warn") || !strcmp(s, "warning"))
		return LOG_WARN;
	if (!strcmp(s, "error"))
		return LOG_ERROR;
	return -1;
}

bool log_enabled(enum log_level level)
{
	return (int)level >= atomic_load_explicit(&log_threshold, memory_order_relaxed);
}

static bool needs_quotes(const char *s)
{
	if (!*s)
		return true;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch <= ' ' || ch == '"' || ch == '=' || ch == 0x7f)
			return true;
	}
	return false;
}

/* Write s into out[0..cap) as a logfmt value (quoted and escaped when needed), always
 * NUL-terminated. A value too long for out is cut, and a quoted one still ends in '"'.
 * Returns the length written. */
static size_t quote_into(char *out, size_t cap, const char *s)
{
	size_t n = 0;

	if (cap < 4) {
		if (cap)
			out[0] = 0;
		return 0;
	}
	if (!needs_quotes(s)) {
		size_t len = strlen(s);

		if (len > cap - 1)
			len = cap - 1;
		memcpy(out, s, len);
		out[len] = 0;
		return len;
	}
	out[n++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		char esc[8];
		size_t el;

		switch (ch) {
		case '"':
			el = (size_t)snprintf(esc, sizeof(esc), "\\\"");
			break;
		case '\\':
			el = (size_t)snprintf(esc, sizeof(esc), "\\\\");
			break;
		case '\n':
			el = (size_t)snprintf(esc, sizeof(esc), "\\n");
			break;
		case '\r':
			el = (size_t)snprintf(esc, sizeof(esc), "\\r");
			break;
		case '\t':
			el = (size_t)snprintf(esc, sizeof(esc), "\\t");
			break;
		default:
			if (ch < ' ' || ch == 0x7f) {
				el = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", ch);
			} else {
				esc[0] = (char)ch;
				el = 1;
			}
		}
		/* Room for this character, the closing quote and the NUL. */
		if (n + el + 2 > cap)
			break;
		memcpy(out + n, esc, el);
		n += el;
	}
	out[n++] = '"';
	out[n] = 0;
	return n;
}

const char *log_q(const char *s)
{
	static __thread char bufs[LOG_Q_BUFS][LOG_Q_MAX];
	static __thread unsigned next;
	char *b = bufs[next++ % LOG_Q_BUFS];

	quote_into(b, LOG_Q_MAX, s ? s : "");
	return b;
}

enum quote_state {
	OUTSIDE,
	INSIDE,
	INSIDE_ESCAPE, /* inside a quoted value, right after a backslash */
};

/* Where line[0..end) ends relative to logfmt quoting. */
static enum quote_state quote_state_at(const char *line, size_t end)
{
	enum quote_state st = OUTSIDE;

	for (size_t i = 0; i < end; i++) {
		if (st == INSIDE_ESCAPE)
			st = INSIDE;
		else if (st == INSIDE && line[i] == '\\')
			st = INSIDE_ESCAPE;
		else if (line[i] == '"')
			st = st == OUTSIDE ? INSIDE : OUTSIDE;
	}
	return st;
}

void log_kv(enum log_level level, const char *msg, const char *kv, ...)
{
	static const char cut_mark[] = " truncated=true\n";
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t n, room;
	int w, lvl = (int)level;
	bool cut = false;

	if (!log_enabled(level))
		return;
	if (lvl < LOG_DEBUG || lvl > LOG_ERROR)
		lvl = LOG_ERROR;
	/* Everything but the cut mark must fit in room bytes (plus the NUL). */
	room = sizeof(line) - sizeof(cut_mark);

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, room, "time=%Y-%m-%dT%H:%M:%S", &tm);
	w = snprintf(line + n, room - n, ".%03ldZ level=%s msg=", ts.tv_nsec / 1000000,
	             level_names[lvl]);
	n += (size_t)w;
	n += quote_into(line + n, room - n, msg ? msg : "");
	if (n + 1 >= room)
		cut = true;
	if (kv && !cut) {
		va_list ap;

		line[n++] = ' ';
		va_start(ap, kv);
		w = vsnprintf(line + n, room - n, kv, ap);
		va_end(ap);
		if (w < 0) {
			n--;
		} else if ((size_t)w >= room - n) {
			n = room - 1;
			cut = true;
		} else {
			n += (size_t)w;
		}
	}
	if (cut) {
		/* Keep the line parseable: close a value cut inside its quotes. */
		enum quote_state st = quote_state_at(line, n);

		if (st == INSIDE_ESCAPE)
			n--;
		if (st != OUTSIDE)
			line[n++] = '"';
		memcpy(line + n, cut_mark, sizeof(cut_mark) - 1);
		n += sizeof(cut_mark) - 1;
	} else {
		line[n++] = '\n';
	}

	{
		int fd = atomic_load_explicit(&log_fd, memory_order_relaxed);
		size_t off = 0;

		while (off < n) {
			ssize_t r = write(fd, line + off, n - off);

			if (r == -1) {
				if (errno == EINTR)
					continue;
				break;
			}
			off += (size_t)r;
		}
	}
}
