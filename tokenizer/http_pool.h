/* http_pool.h - the handler threads of the HTTP front end (--http-threads): a fixed number
 * of threads that run requests the event loop (http_server.c) hands them, one at a time each.
 * The loop never waits on them: a request that finds every thread taken waits in the pool's
 * FIFO queue, at most MAX_WAITING of them (--http-queue); past that it is refused at once.
 */
#ifndef CINDER_HTTP_POOL_H
#define CINDER_HTTP_POOL_H

#include "http_conn.h"

/* Each handler thread's stack. cJSON and the request parser recurse once per nesting level
 * within it (common/json_util.h; tests/fuzz/fuzz_req_parse.c checks with this size). */
#define HTTP_THREAD_STACK_BYTES (100 << 10)

typedef struct http_pool http_pool;

/* N threads that call RUN(C) for each submitted C, in the order submitted, then DONE(C, ARG);
 * up to MAX_WAITING submitted requests wait for a thread. NULL on failure. */
http_pool *http_pool_start(int n, int max_waiting, void (*run)(http_conn *c),
                           void (*done)(http_conn *c, void *arg), void *arg);
/* Hands C to a free thread or queues it: 0, or -1 when the queue is full or the pool is
 * closed (C untouched). Only one thread (the loop) submits. */
int http_pool_submit(http_pool *p, http_conn *c);
/* A submit would be refused now (every thread taken and MAX_WAITING wait). */
int http_pool_full(const http_pool *p);
/* A submit now gets a thread at once. */
int http_pool_has_free(const http_pool *p);
/* Submitted requests that no thread has taken yet (beyond those a free thread takes now). */
int http_pool_waiting(const http_pool *p);
/* No thread takes another request (those running go on), submits are refused: returns the
 * requests still queued, linked by queue_next in their order, no longer the pool's. */
http_conn *http_pool_close(http_pool *p);
/* Closes P (what is still queued is dropped: close it first when requests may wait), lets
 * idle threads end and waits up to WAIT_MS for busy ones: 0, or -1 when some still run (then
 * P stays allocated: they use it). */
int http_pool_stop(http_pool *p, int wait_ms);

#endif
