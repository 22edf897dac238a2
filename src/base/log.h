/*
 * Logging to stderr, one line per message with a UTC timestamp, level and
 * module. Thread-safe (a single write per line). Never pass access tokens,
 * passwords or key material to these functions.
 */
#ifndef MYELIN_BASE_LOG_H
#define MYELIN_BASE_LOG_H

enum log_level {
    LOG_DEBUG = 0,
    LOG_INFO = 1,
    LOG_WARN = 2,
    LOG_ERROR = 3,
};

/* Sets the minimum level printed; set once at start-up. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "debug", "info", "warn"/"warning", "error"; returns -1 if unknown. */
int log_level_parse(const char *name);

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_DEBUG(mod, ...) log_msg(LOG_DEBUG, mod, __VA_ARGS__)
#define LOG_INFO(mod, ...) log_msg(LOG_INFO, mod, __VA_ARGS__)
#define LOG_WARN(mod, ...) log_msg(LOG_WARN, mod, __VA_ARGS__)
#define LOG_ERROR(mod, ...) log_msg(LOG_ERROR, mod, __VA_ARGS__)

#endif
