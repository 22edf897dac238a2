/*
 * Line-oriented stderr logger. The level is process-wide and set once at
 * start-up before any thread starts, so reading it needs no lock; each line
 * is formatted into a stack buffer and written with one write(2).
 */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_INFO;

void log_set_level(enum log_level level) { min_level = level; }
enum log_level log_get_level(void) { return min_level; }

int log_level_parse(const char *name)
{
    if (strcasecmp(name, "debug") == 0) {
        return LOG_DEBUG;
    }
    if (strcasecmp(name, "info") == 0) {
        return LOG_INFO;
    }
    if (strcasecmp(name, "warn") == 0 || strcasecmp(name, "warning") == 0) {
        return LOG_WARN;
    }
    if (strcasecmp(name, "error") == 0) {
        return LOG_ERROR;
    }
    return -1;
}

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (level < min_level) {
        return;
    }
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level], module);
    if (n < 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2) {
        len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
