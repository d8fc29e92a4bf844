/* http_pool.h - the handler threads of the HTTP front end (--http-threads): a fixed number
 * of threads that run requests the event loop (http_server.c) hands them, one at a time each.
 * The loop never waits on them: a request that finds every thread taken is refused at once.
 */
#ifndef CINDER_HTTP_POOL_H
#define CINDER_HTTP_POOL_H

#include "http_conn.h"

/* Each handler thread's stack. cJSON and the request parser recurse once per nesting level
 * within it (common/json_util.h; tests/fuzz/fuzz_req_parse.c checks with this size). */
#define HTTP_THREAD_STACK_BYTES (100 << 10)

typedef struct http_pool http_pool;

/* N threads that call RUN(C) for each submitted C, then DONE(C, ARG). NULL on failure. */
http_pool *http_pool_start(int n, void (*run)(http_conn *c), void (*done)(http_conn *c, void *arg), void *arg);
/* Hands C to a free thread: 0, or -1 when every thread is taken (C untouched). */
int http_pool_submit(http_pool *p, http_conn *c);
/* Every thread is taken. */
int http_pool_full(const http_pool *p);
/* Lets idle threads end and waits up to WAIT_MS for busy ones: 0, or -1 when some still run
 * (then P stays allocated: they use it). */
int http_pool_stop(http_pool *p, int wait_ms);

#endif
