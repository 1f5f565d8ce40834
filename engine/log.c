/* engine/log.c — logfmt logging (see log.h).
 *
 * Every line is built in a stack buffer and written with one write(2), so lines from
 * different shards never interleave. The destination is a descriptor number that never
 * changes while the process runs: log_reopen() opens the file again and dup3()s the new
 * description onto that number, so writers never see a closed or reused descriptor and
 * need no lock (and log_reopen stays async-signal-safe: open, dup3, close).
 *
 * The rate limit (log.h) keeps a fixed table of classes under one mutex; summary lines
 * are written while it is held, so a class's summary comes before its next line. */
#include "engine/log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
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

#define LOG_RATE_MSG 96 /* bytes of a class's message kept for its summary line */

/* One class of the rate limit: a message text and its current window. */
struct rate_class {
	uint64_t hash; /* of the message text; 0: a free slot */
	char msg[LOG_RATE_MSG];
	int level;           /* of the class's lines, for its summary */
	bool open;           /* a window is running */
	uint64_t start_ms;   /* when it started (CLOCK_MONOTONIC) */
	uint32_t written;    /* lines written in it */
	uint64_t suppressed; /* lines left out in it, not yet summarised */
};

static pthread_mutex_t rate_mu = PTHREAD_MUTEX_INITIALIZER;
/* All below: under rate_mu. */
static unsigned rate_burst = LOG_RATE_BURST, rate_interval_ms = LOG_RATE_INTERVAL_MS;
static struct rate_class rate_tab[LOG_RATE_CLASSES];
static struct rate_class rate_other = {.hash = 1, .msg = "other messages"};

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

/* Format and write one line (no rate limit). lvl is a valid level. */
static void emit(int lvl, const char *msg, const char *kv, va_list ap)
{
	static const char cut_mark[] = " truncated=true\n";
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t n, room;
	int w;
	bool cut = false;

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
		line[n++] = ' ';
		w = vsnprintf(line + n, room - n, kv, ap);
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

static void emitf(int lvl, const char *msg, const char *kv, ...)
        __attribute__((format(printf, 3, 4)));

static void emitf(int lvl, const char *msg, const char *kv, ...)
{
	va_list ap;

	va_start(ap, kv);
	emit(lvl, msg, kv, ap);
	va_end(ap);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* FNV-1a of the text, never 0 (0 marks a free slot) nor 1 (the overflow class). */
static uint64_t msg_hash(const char *m)
{
	uint64_t h = 14695981039346656037ull;

	for (; *m; m++)
		h = (h ^ (unsigned char)*m) * 1099511628211ull;
	return h > 1 ? h : h + 2;
}

/* The class of msg: found, or a new one in a free slot, or the overflow class when the
 * table is full. Under rate_mu. */
static struct rate_class *rate_find(const char *msg, int lvl)
{
	uint64_t h = msg_hash(msg);
	size_t i = (size_t)(h % LOG_RATE_CLASSES);

	for (size_t k = 0; k < LOG_RATE_CLASSES; k++, i = (i + 1) % LOG_RATE_CLASSES) {
		struct rate_class *c = &rate_tab[i];

		if (c->hash == h)
			return c;
		if (!c->hash) {
			memset(c, 0, sizeof(*c));
			c->hash = h;
			snprintf(c->msg, sizeof(c->msg), "%s", msg);
			c->level = lvl;
			return c;
		}
	}
	if (lvl > rate_other.level)
		rate_other.level = lvl;
	return &rate_other;
}

/* Write c's summary if lines were left out, and forget them. Under rate_mu. */
static int rate_summary(struct rate_class *c)
{
	if (!c->suppressed)
		return 0;
	emitf(c->level, "suppressed similar lines", "similar=%s suppressed=%llu interval_ms=%u",
	      log_q(c->msg), (unsigned long long)c->suppressed, rate_interval_ms);
	c->suppressed = 0;
	return 1;
}

/* Whether a line of msg may be written now; counts it either way. */
static bool rate_admit(const char *msg, int lvl)
{
	uint64_t now = mono_ms();
	bool ok;

	pthread_mutex_lock(&rate_mu);
	if (!rate_burst) {
		pthread_mutex_unlock(&rate_mu);
		return true;
	}
	struct rate_class *c = rate_find(msg, lvl);

	if (c->open && now - c->start_ms >= rate_interval_ms) {
		rate_summary(c);
		c->open = false;
	}
	if (!c->open) {
		c->open = true;
		c->start_ms = now;
		c->written = 0;
	}
	ok = c->written < rate_burst;
	if (ok)
		c->written++;
	else
		c->suppressed++;
	pthread_mutex_unlock(&rate_mu);
	return ok;
}

void log_rate_set(unsigned burst, unsigned interval_ms)
{
	pthread_mutex_lock(&rate_mu);
	rate_burst = burst;
	rate_interval_ms = interval_ms ? interval_ms : 1;
	memset(rate_tab, 0, sizeof(rate_tab));
	rate_other.open = false;
	rate_other.suppressed = 0;
	rate_other.level = LOG_DEBUG;
	pthread_mutex_unlock(&rate_mu);
}

int log_rate_flush(bool all)
{
	uint64_t now = mono_ms();
	int n = 0;

	pthread_mutex_lock(&rate_mu);
	for (size_t i = 0; i <= LOG_RATE_CLASSES; i++) {
		struct rate_class *c = i < LOG_RATE_CLASSES ? &rate_tab[i] : &rate_other;
		bool ended = c->open && now - c->start_ms >= rate_interval_ms;

		if (!c->hash || !c->open)
			continue;
		if (ended || all)
			n += rate_summary(c);
		if (ended)
			c->open = false;
	}
	pthread_mutex_unlock(&rate_mu);
	return n;
}

void log_kv(int level, const char *msg, const char *kv, ...)
{
	int lvl = level & ~LOG_LIMITED;
	va_list ap;

	if (lvl < LOG_DEBUG || lvl > LOG_ERROR)
		lvl = LOG_ERROR;
	if (!log_enabled((enum log_level)lvl))
		return;
	if (!msg)
		msg = "";
	if ((lvl >= LOG_WARN || (level & LOG_LIMITED)) && !rate_admit(msg, lvl))
		return;
	va_start(ap, kv);
	emit(lvl, msg, kv, ap);
	va_end(ap);
}
