/* chat.h - chat templates: an OpenAI chat request to the prompt text the model was trained
 * on, rendered from the model's own Jinja chat_template by the interpreter of jinja.h, as
 * transformers' apply_chat_template renders it and with the request handling of vLLM.
 *
 * Where the template comes from, first found: --chat-template FILE (the Jinja source),
 * MODEL_DIR/chat_template.jinja, tokenizer_config.json's chat_template (a string, or a list
 * of {"name", "template"}: "tool_use" when the request has tools and the list has one, else
 * "default"). A model with none has no chat API (the request gets 400 saying so), as vLLM
 * without --chat-template.
 *
 * Template variables: messages, tools (None without), documents (None without),
 * add_generation_prompt, the special tokens of tokenizer_config.json (bos_token, eos_token,
 * unk_token, pad_token, sep_token, cls_token, mask_token, additional_special_tokens; those
 * set), then chat_template_kwargs (e.g. enable_thinking), which override all but messages.
 *
 * Messages go to the template as the client sent them (every field, every role), but for
 * two normalisations vLLM makes: a tool call's function.arguments, a JSON string in OpenAI's
 * API, becomes the object it encodes (what templates expect); content follows the template:
 * one that loops over a message's content gets a list of {"type": "text", "text"} parts
 * (a string becomes one part, null none), any other gets a string (text parts joined with
 * "\n", null ""). Only text parts are accepted. continue_final_message cuts the prompt after
 * the last message's text as transformers does. Message content is data: it is never parsed
 * as template code.
 *
 * The text holds special tokens as text (e.g. "<|im_start|>"): encode it with tok_encode's
 * add_special = 0, the tokenizer recognises them.
 */
#ifndef CINDER_CHAT_H
#define CINDER_CHAT_H

#include <stddef.h>

typedef struct chat_template chat_template;

/* Loads the chat template of MODEL_DIR, or FILE when not NULL. 0 with *T set (NULL when the
 * model has none; WHY then says so), or -1 with ERR (unreadable file, bad JSON, a template
 * that does not parse). */
int chat_template_load(chat_template **t, const char *model_dir, const char *file, char *err,
                       size_t n_err);
void chat_template_free(chat_template *t);
/* A template from its Jinja source SRC, without special tokens (tools, tests). NULL with
 * ERR when it does not parse. */
chat_template *chat_template_parse(const char *src, char *err, size_t n_err);

/* Renders the chat request BODY [N] (JSON: messages, tools, tool_choice,
 * add_generation_prompt, continue_final_message, chat_template_kwargs, documents). The
 * prompt (malloc'd, NUL-terminated, *LEN bytes), or NULL with the reason for a 400 answer in
 * ERR: a bad field, or the template's error (raise_exception's message as it is). */
char *chat_render(const chat_template *t, const char *body, size_t n, size_t *len, char *err,
                  size_t n_err);

/* Renders the template with the variables VARS (a JSON object) as they are, without the
 * request handling above (the oracle tests compare this with Jinja2). NOW: strftime_now's
 * clock (0: the real one). Same result as chat_render. */
char *chat_render_vars(const chat_template *t, const char *vars, size_t n, long long now,
                       size_t *len, char *err, size_t n_err);

#endif
