/* http.h - starts the HTTP API of the tokenizer process (routes in http.c). */
#ifndef CINDER_HTTP_H
#define CINDER_HTTP_H

#include "tokenizer.h"

typedef struct {
    const char *host;
    int port;
    int n_threads;          /* civetweb handler threads: concurrent connections */
    const char *model_dir;  /* for the model's chat template (chat.h) */
    const char *chat_template; /* --chat-template FILE, or NULL */
    const char *model_name; /* OpenAI's "model" */
    const char *api_key;    /* NULL: no authentication */
    const char *const *origins; /* CORS --allowed-origins ("*": any); none: "*" */
    int n_origins;
    const char *launch_id;  /* X-Cinder-Launch of /health answers (launch.sh's); NULL: none */
} http_opts;

struct mg_context;
/* Listens as O says; NULL on failure. mg_stop() ends it. */
struct mg_context *http_start(tokenizer *f, const http_opts *o);

#endif
