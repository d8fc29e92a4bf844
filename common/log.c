/* log.c - one-line log records on stderr (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

const char *log_proc = "cinder";
int log_verbose = 0;

void log_line(const char *level, const char *file, int line, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    const char *base = strrchr(file, '/');
    fprintf(stderr, "%02d:%02d:%02d.%03ld %s %s %s:%d: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, log_proc, level, base ? base + 1 : file, line, msg);
}
