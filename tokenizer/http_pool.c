/* http_pool.c - handler threads and the queue of requests waiting for one (see
 * http_pool.h). N_BUSY counts requests submitted and not yet done, running or queued: the
 * loop, the only submitter, compares it with the thread count and the queue bound without a
 * lock; the threads take from the queue, and lower it when a request is done. */
#include "http_pool.h"
#include "http_server.h"
#include "../common/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct http_pool {
    pthread_mutex_t mu;
    pthread_cond_t work, gone;       /* a request queued; a thread ended */
    http_conn *head, *tail;          /* submitted, not yet taken (linked by queue_next) */
    atomic_int n_busy;               /* submitted and not yet done: at most n + max_waiting */
    int n, max_waiting, n_live;
    int stopping;                    /* closed: nothing more is taken or submitted */
    void (*run)(http_conn *c);
    void (*done)(http_conn *c, void *arg);
    void *arg;
};

static void *pool_main(void *arg)
{
    http_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stopping)
            break;
        http_conn *c = p->head;
        p->head = c->queue_next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        p->run(c);
        atomic_fetch_sub(&p->n_busy, 1);
        p->done(c, p->arg);
        pthread_mutex_lock(&p->mu);
    }
    p->n_live--;
    pthread_cond_broadcast(&p->gone);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

http_pool *http_pool_start(int n, int max_waiting, void (*run)(http_conn *c),
                           void (*done)(http_conn *c, void *arg), void *arg)
{
    http_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->gone, &ca);
    pthread_condattr_destroy(&ca);
    p->n = n;
    p->max_waiting = max_waiting;
    p->run = run;
    p->done = done;
    p->arg = arg;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, HTTP_THREAD_STACK_BYTES);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_mutex_lock(&p->mu);
        int rc = pthread_create(&t, &a, pool_main, p);
        p->n_live += rc == 0;
        pthread_mutex_unlock(&p->mu);
        if (rc) {
            LOG_ERR("cannot start HTTP handler thread %d of %d", i + 1, n);
            pthread_attr_destroy(&a);
            http_pool_stop(p, 1000);
            return NULL;
        }
    }
    pthread_attr_destroy(&a);
    return p;
}

int http_pool_full(const http_pool *p) { return atomic_load(&p->n_busy) >= p->n + p->max_waiting; }

int http_pool_has_free(const http_pool *p) { return atomic_load(&p->n_busy) < p->n; }

int http_pool_waiting(const http_pool *p)
{
    int k = atomic_load(&p->n_busy) - p->n;
    return k > 0 ? k : 0;
}

int http_pool_submit(http_pool *p, http_conn *c)
{
    if (http_pool_full(p)) /* only the loop adds: this holds until it submits */
        return -1;
    c->queue_next = NULL;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        pthread_mutex_unlock(&p->mu);
        return -1;
    }
    atomic_fetch_add(&p->n_busy, 1);
    if (p->tail)
        p->tail->queue_next = c;
    else
        p->head = c;
    p->tail = c;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

http_conn *http_pool_close(http_pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    http_conn *q = p->head;
    for (http_conn *c = q; c; c = c->queue_next)
        atomic_fetch_sub(&p->n_busy, 1);
    p->head = p->tail = NULL;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    return q;
}

int http_pool_stop(http_pool *p, int wait_ms)
{
    http_pool_close(p);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while (p->n_live > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&p->gone, &p->mu, &until);
    int left = p->n_live;
    pthread_mutex_unlock(&p->mu);
    if (left)
        return -1;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->gone);
    free(p);
    return 0;
}
