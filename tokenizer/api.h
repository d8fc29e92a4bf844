/* api.h - the HTTP APIs of the tokenizer process; http.c routes paths to them. Each returns
 * the HTTP status it answered with. */
#ifndef CINDER_API_H
#define CINDER_API_H

#include "chat.h"
#include "tokenizer.h"

typedef struct http_conn http_conn;
typedef struct cJSON cJSON;

typedef struct {
    tokenizer *f;
    const char *model_name;  /* the served model's name (OpenAI "model") */
    chat_template *chat;     /* the model's chat template; NULL: none */
    char chat_err[512];      /* why none, for /v1/chat/completions */
} api_ctx;

/* answered by GET /version */
#define CINDER_VERSION "0.1.0"

int api_generate(tokenizer *f, http_conn *c, int stream);     /* LightLLM */
int api_completions(api_ctx *a, http_conn *c, int chat); /* OpenAI */
int api_openai_error(http_conn *c, int status, const char *msg);

/* api_models.c */
int api_models(api_ctx *a, http_conn *c);             /* GET /v1/models */
int api_model(api_ctx *a, http_conn *c, const char *id); /* GET /v1/models/ID */
int api_version(http_conn *c);                        /* GET /version */
/* REQ's "model", when given, names the served model: 0, else 404 with ERR */
int api_check_model(const api_ctx *a, const cJSON *req, char *err, size_t n_err);

/* api_tokenize.c: vLLM's POST /tokenize and /detokenize */
int api_tokenize(api_ctx *a, http_conn *c);
int api_detokenize(api_ctx *a, http_conn *c);

#endif
