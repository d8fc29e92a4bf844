/* http.h - starts the HTTP API of the tokenizer process (routes in http.c). */
#ifndef CINDER_HTTP_H
#define CINDER_HTTP_H

#include "tokenizer.h"

typedef struct {
    const char *host;
    int port;
    int n_threads;          /* handler threads: generation/tokenize requests at once */
    int max_waiting;        /* requests that wait for a handler thread at most (FIFO) */
    const char *model_dir;  /* for the model's chat template (chat.h) */
    const char *chat_template; /* --chat-template FILE, or NULL */
    const char *model_name; /* OpenAI's "model" */
    const char *api_key;    /* NULL: no authentication */
    const char *const *origins; /* CORS --allowed-origins ("*": any); none: "*" */
    int n_origins;
    const char *launch_id;  /* X-Cinder-Launch of /health answers (launch.sh's); NULL: none */
} http_opts;

typedef struct http_server http_server;
/* Listens as O says; NULL on failure. */
http_server *http_start(tokenizer *f, const http_opts *o);
/* Stops it: 0, or -1 when handlers still run after a few seconds (keep what they use). */
int http_stop(http_server *s);

#endif
