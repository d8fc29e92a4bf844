/* encode_pool.c - prompt encoding on a small thread pool (see encode_pool.h). */
#include "encode_pool.h"

#include <pthread.h>
#include <stdlib.h>

typedef struct job {
    struct job *next;
    const char *text;
    size_t len, cap;
    int add_special, done;
    int32_t *ids;
    int64_t result;
    pthread_cond_t cv;     /* signalled when done */
} job;

struct encode_pool {
    const tok *t;
    pthread_mutex_t mu;
    pthread_cond_t cv;     /* work queued, or stopping */
    job *head, *tail;
    int stopping, n_threads;
    pthread_t *threads;
};

static void *encoder_main(void *arg)
{
    encode_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        if (!p->head)
            break;
        job *j = p->head;
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        int64_t r = tok_encode(p->t, j->text, j->len, j->add_special, j->ids, j->cap);
        pthread_mutex_lock(&p->mu);
        j->result = r;
        j->done = 1;
        pthread_cond_signal(&j->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

encode_pool *encode_pool_init(const tok *t, int n_threads)
{
    encode_pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->t = t;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->threads)
        goto fail;
    for (; p->n_threads < n_threads; p->n_threads++)
        if (pthread_create(&p->threads[p->n_threads], NULL, encoder_main, p))
            goto fail;
    return p;
fail:
    encode_pool_free(p);
    return NULL;
}

void encode_pool_free(encode_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    free(p);
}

int64_t encode_pool_run(encode_pool *p, const char *text, size_t len, int add_special, int32_t *ids, size_t cap)
{
    job j = {.text = text, .len = len, .cap = cap, .add_special = add_special, .ids = ids};
    pthread_cond_init(&j.cv, NULL);
    pthread_mutex_lock(&p->mu);
    if (p->tail)
        p->tail->next = &j;
    else
        p->head = &j;
    p->tail = &j;
    pthread_cond_signal(&p->cv);
    while (!j.done)
        pthread_cond_wait(&j.cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_cond_destroy(&j.cv);
    return j.result;
}
