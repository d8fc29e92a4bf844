/* load.h - concurrent generate requests against a real launch, for the end-to-end fault tests:
 * each job is one /generate or /generate_stream request on a thread of its own; the results
 * (status, text, token events, the error event's message) are kept for checking, and
 * load_wait_reclaimed() waits until the server holds no slot and every KV block is free.
 */
#ifndef CINDER_LOAD_H
#define CINDER_LOAD_H

#include "cluster.h"

typedef struct {
    const char *prompt;
    int max_new, stream;
    int status;     /* HTTP status; -2: a stream that ended in an error event; -1: no answer */
    char *text;     /* generated_text, or the stream's token texts joined */
    int n_events;   /* stream: token events */
    char *error;    /* the error message (JSON "error" of the answer or the error event) */
} load_job;

/* Runs the N jobs at once against C and waits for all of them. */
void load_run(const cluster *c, load_job *jobs, int n);
/* Starts the N jobs; load_join waits for them. */
void *load_start(const cluster *c, load_job *jobs, int n);
void load_join(void *handle);
void load_free(load_job *jobs, int n);
/* Waits (up to 6 s) for 0 active slots and all KV blocks free; 0, or -1 after printing
 * the server's state. */
int load_wait_reclaimed(const cluster *c);
/* Waits for 'worker_steps' to grow by N (up to 2 s). */
void load_wait_steps(const cluster *c, int n);

#endif
