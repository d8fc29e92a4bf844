/* log.h - logging and abort-with-location for programmer errors.
 *
 * LOG_* write one line to stderr with the time, the process name and the level.
 * DIE / CHECK abort with the file and line: for bugs and broken invariants only. Network and
 * IPC paths return negative codes instead, so one bad client cannot kill a process.
 */
#ifndef CINDER_LOG_H
#define CINDER_LOG_H

#include <stdio.h>
#include <stdlib.h>

extern const char *log_proc;   /* set once by main(), e.g. "router" */
extern int log_verbose;        /* 1: LOG_DEBUG lines too */

void log_line(const char *level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOG_INFO(...)  log_line("info", __FILE__, __LINE__, __VA_ARGS__)
#define LOG_WARN(...)  log_line("warn", __FILE__, __LINE__, __VA_ARGS__)
#define LOG_ERR(...)   log_line("error", __FILE__, __LINE__, __VA_ARGS__)
#define LOG_DEBUG(...) do { if (log_verbose) log_line("debug", __FILE__, __LINE__, __VA_ARGS__); } while (0)

#define DIE(...) do { log_line("fatal", __FILE__, __LINE__, __VA_ARGS__); abort(); } while (0)
#define CHECK(cond) do { if (!(cond)) DIE("check failed: %s", #cond); } while (0)

#endif
