/* engine/log.h — logfmt logging: one line per event, written with a single write(2) so
 * lines from different shards never interleave.
 *
 *   time=2026-11-24T21:40:00.123Z level=info msg="client connected" client_id=ab12 port=9090
 *
 * log_kv's format is printf-style and must produce `key=value` pairs separated by spaces;
 * values that may contain spaces or quotes go through %s with log_q() (quotes them). */
#ifndef RINGLET_ENGINE_LOG_H
#define RINGLET_ENGINE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_DEBUG = 0,
	LOG_INFO = 1,
	LOG_WARN = 2,
	LOG_ERROR = 3,
};

/* Set the threshold and the destination (NULL: stderr). Returns 0 or -errno. */
int log_open(enum log_level level, const char *path);

/* Reopen the log file (after rotation; for SIGHUP). Returns 0 or -errno. */
int log_reopen(void);

/* Parse "debug|info|warn|warning|error"; returns -1 if unknown. */
int log_level_parse(const char *s);

bool log_enabled(enum log_level level);

/* Or'ed into a level given to log_kv: the line is rate-limited as warnings and errors
 * always are (for info and debug lines a remote peer can make happen). */
#define LOG_LIMITED 0x100

/* Log one event. kv may be NULL. level: an enum log_level, optionally | LOG_LIMITED.
 * Warnings, errors and LOG_LIMITED lines go through the rate limit below. */
void log_kv(int level, const char *msg, const char *kv, ...)
        __attribute__((format(printf, 3, 4)));

/* The rate limit. A class is a message text (msg): at most `burst` lines of one class
 * are written per `interval_ms` (a window opened by the class's first line); the rest
 * are counted, not written. When the window has ended, one summary line at the class's
 * level tells how many were left out:
 *
 *   level=warn msg="suppressed similar lines" similar="upstream dial failed"
 *   suppressed=195 interval_ms=10000
 *
 * The summary is written before the class's next line, by log_rate_flush(), or at
 * exit (log_rate_flush(true)). Classes live in a fixed table of LOG_RATE_CLASSES
 * (messages are the code's literals, so their number is bounded by the code; when the
 * table is full, further classes share one overflow class, "other messages").
 * Thread-safe: one mutex guards the table; it is taken once per limited line, and held
 * across a write only for summary lines (so a summary precedes its class's next line).
 * Start-up and shutdown lines happen once per class and so are
 * never held back; info and debug lines are limited only when logged with LOG_LIMITED. */
#define LOG_RATE_BURST 5           /* lines per class per interval (default) */
#define LOG_RATE_INTERVAL_MS 10000 /* the interval (default) */
#define LOG_RATE_CLASSES 256

/* Set the limit (burst 0: no limit; interval_ms 0 is taken as 1). Resets the table.
 * Call before the threads that log start. */
void log_rate_set(unsigned burst, unsigned interval_ms);

/* Write the summary line of every class whose window has ended with lines suppressed
 * (all: also of windows still open, as at exit), and forget those counts. Called from
 * the service's tick (every 250 ms, shard 0) and at exit. Returns the number of summary
 * lines written. */
int log_rate_flush(bool all);

/* Quote a value for logfmt if it needs it. Returns a pointer to a thread-local buffer
 * that stays valid until the fourth next call on this thread (so up to four per line). */
const char *log_q(const char *s);

#define log_debug(msg, ...)                                                                    \
	do {                                                                                   \
		if (log_enabled(LOG_DEBUG))                                                    \
			log_kv(LOG_DEBUG, msg, __VA_ARGS__);                                   \
	} while (0)
#define log_info(msg, ...) log_kv(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_kv(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_kv(LOG_ERROR, msg, __VA_ARGS__)
/* Info and debug lines a remote peer can trigger at will: rate-limited. */
#define log_info_limited(msg, ...) log_kv(LOG_INFO | LOG_LIMITED, msg, __VA_ARGS__)
#define log_debug_limited(msg, ...)                                                            \
	do {                                                                                   \
		if (log_enabled(LOG_DEBUG))                                                    \
			log_kv(LOG_DEBUG | LOG_LIMITED, msg, __VA_ARGS__);                     \
	} while (0)

#endif
