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

/* Log one event. kv may be NULL. */
void log_kv(enum log_level level, const char *msg, const char *kv, ...)
        __attribute__((format(printf, 3, 4)));

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

#endif
