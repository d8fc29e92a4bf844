/* serve.h - one generation request through the pipeline, whatever the API's shape.
 *
 * serve_generate() takes a validated request with its prompts (text, or token ids), takes one
 * slot per choice (n choices per prompt: the choices of a prompt share its tokens, and the
 * router's prefix cache lets them share its KV blocks), submits them, relays the text deltas
 * of all of them to an api_out (the API's formatter: LightLLM's /generate, OpenAI's
 * completions and chat), frees the slots after their final deltas and records the metrics.
 * The formatters read each choice's tokens, logprobs and top logprobs from its slot, which
 * stays theirs until serve_generate returns.
 */
#ifndef CINDER_SERVE_H
#define CINDER_SERVE_H

#include "tokenizer.h"
#include "req_parse.h"
#include "http_util.h"

typedef struct http_conn http_conn;

typedef struct {
    const char *text;       /* a text prompt, encoded here (N_TEXT bytes) ... */
    size_t n_text;
    const int32_t *ids;     /* ... or, when not NULL, its token ids as given [n_ids] */
    int n_ids;
} serve_prompt;

typedef struct {
    int index;              /* the choice's index: prompt * n + sample (OpenAI's order) */
    int prompt;             /* its prompt */
    int slot;               /* its slot: tokens, logprobs and top logprobs (store.h) */
    text_buf text;          /* all its text so far */
    int finish;             /* finish_reason, FINISH_NONE before its end */
    int n_out;              /* output tokens so far */
    int n_prompt;           /* its prompt tokens */
    int n_cached;           /* prompt tokens the router took from the prefix cache (at the end) */
    int n_seen;             /* output tokens whose delta came: tokens[n_prompt, + n_seen) of the
                               slot, the ones to report (not those after a stop string) */
    int n_shown;            /* of them, shown by a streaming formatter (its own counter) */
    int sent_first;         /* a streaming formatter's: this choice's first event went out */
    size_t *tok_end;        /* [n_seen] with return_details: where each token's text ends in
                               TEXT (text held back comes with a later token) */
    int cap_tok_end;
    uint64_t req_id;        /* its request (the slot's) */
    uint64_t last_us;       /* when its last token came */
    double ttft_s;          /* time to its first token; < 0 before */
    int status;             /* 0, or the HTTP status of its failure */
    int lost;               /* its router went away still holding it (tokenizer_slot_lost) */
} serve_choice;

typedef struct {
    tokenizer *f;
    const gen_req *g;
    int n_choices;
    serve_choice *ch;       /* [n_choices] in index order */
} serve_state;

typedef struct api_out api_out;
struct api_out {
    int stream;
    /* stream: the headers and any opening event; 0 or -1 */
    int (*begin)(http_conn *c, api_out *o);
    /* stream: one event per delta D of choice CH (text = D's text); 0, or -1 if the client is
       gone */
    int (*event)(http_conn *c, api_out *o, const delta_node *d, serve_choice *ch,
                 const serve_state *s);
    /* stream: after every choice's final event */
    void (*end)(http_conn *c, api_out *o, const serve_state *s);
    /* not streaming: the whole answer */
    void (*respond)(http_conn *c, api_out *o, const serve_state *s);
    /* an error before anything was sent; returns STATUS */
    int (*error)(http_conn *c, int status, const char *msg);
    /* stream: an error after the stream began (an error event, then the end) */
    void (*fail)(http_conn *c, api_out *o, int status, const char *msg);
    void *ctx;              /* the API's own state */
};

/* Serves G over its N_PROMPTS prompts (G->n choices each; ADD_SPECIAL: apply the
 * post-processor, e.g. BOS, to text prompts). Returns the HTTP status sent. */
int serve_generate(tokenizer *f, http_conn *c, const gen_req *g, const serve_prompt *prompts,
                   int n_prompts, int add_special, api_out *o);

/* The output tokens of choice CH so far (its slot's, valid while serving). */
static inline const int32_t *serve_out_tokens(const serve_state *s, const serve_choice *ch)
{
    return slot_tokens(&s->f->st, ch->slot) + ch->n_prompt;
}

#endif
