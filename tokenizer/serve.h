/* serve.h - one generation request through the pipeline, whatever the API's shape.
 *
 * serve_generate() takes a validated request, encodes the prompt into a slot, submits it,
 * relays the text deltas to an api_out (the API's formatter: LightLLM's /generate, OpenAI's
 * completions and chat), frees the slot after the final delta and records the metrics.
 */
#ifndef CINDER_SERVE_H
#define CINDER_SERVE_H

#include "tokenizer.h"
#include "req_parse.h"

struct mg_connection;

typedef struct {
    const char *text;   /* all the text so far */
    size_t n_text;
    int finish;         /* finish_reason, FINISH_NONE before the end */
    int n_out;          /* output tokens so far */
    int n_prompt;
    int n_cached;       /* prompt tokens the router took from the prefix cache (at the end) */
} serve_state;

typedef struct api_out api_out;
struct api_out {
    int stream;
    /* stream: the headers and any opening event; 0 or -1 */
    int (*begin)(struct mg_connection *c, api_out *o);
    /* stream: one event per delta D (text = D's text); 0, or -1 if the client is gone */
    int (*event)(struct mg_connection *c, api_out *o, const delta_node *d, const serve_state *s);
    /* stream: after the final event */
    void (*end)(struct mg_connection *c, api_out *o, const serve_state *s);
    /* not streaming: the whole answer */
    void (*respond)(struct mg_connection *c, api_out *o, const serve_state *s);
    /* an error before anything was sent; returns STATUS */
    int (*error)(struct mg_connection *c, int status, const char *msg);
    /* stream: an error after the stream began (an error event, then the end) */
    void (*fail)(struct mg_connection *c, api_out *o, int status, const char *msg);
    void *ctx;          /* the API's own state */
};

/* Serves G with its prompt PROMPT (N bytes; ADD_SPECIAL: apply the post-processor, e.g.
 * BOS). Returns the HTTP status sent. */
int serve_generate(tokenizer *f, struct mg_connection *c, const gen_req *g, const char *prompt, size_t n,
                   int add_special, api_out *o);

#endif
