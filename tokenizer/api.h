/* api.h - the HTTP APIs of the tokenizer process; http.c routes paths to them. Each returns
 * the HTTP status it answered with. */
#ifndef CINDER_API_H
#define CINDER_API_H

#include "chat.h"
#include "tokenizer.h"

struct mg_connection;

typedef struct {
    tokenizer *f;
    const char *model_name;  /* the served model's name (OpenAI "model") */
    chat_template *chat;     /* the model's chat template; NULL: none */
    char chat_err[512];      /* why none, for /v1/chat/completions */
} api_ctx;

int api_generate(tokenizer *f, struct mg_connection *c, int stream);     /* LightLLM */
int api_completions(api_ctx *a, struct mg_connection *c, int chat); /* OpenAI */
int api_models(api_ctx *a, struct mg_connection *c);
int api_openai_error(struct mg_connection *c, int status, const char *msg);

#endif
