/* http.h - starts the HTTP API of the tokenizer process (handlers in http.c). */
#ifndef CINDER_HTTP_H
#define CINDER_HTTP_H

#include "front.h"

struct mg_context;
/* Listens on HOST:PORT with N_THREADS handler threads; NULL on failure. mg_stop() ends it. */
struct mg_context *http_start(front *f, const char *host, int port, int n_threads);

#endif
