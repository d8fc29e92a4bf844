/* chat.h - chat templates: a list of {role, content} messages to the prompt text a model was
 * trained on, as transformers' apply_chat_template renders the Jinja chat_template of
 * tokenizer_config.json - for the formats recognised from that template:
 *
 *   CHAT_LLAMA3   <|start_header_id|>role<|end_header_id|>\n\n{content|trim}<|eot_id|> per
 *                 message, BOS before the first; the assistant header as generation prompt
 *                 (always, when the template ignores add_generation_prompt, as the original
 *                 Meta-Llama-3 base template does)
 *   CHAT_LLAMA2   Meta's Llama-2-chat: <s>[INST] {<<SYS>> block +} user [/INST] assistant </s>,
 *                 contents stripped; roles must alternate user/assistant
 *   CHAT_MISTRAL  Mistral-Instruct v0.1/v0.2: <s>[INST] user [/INST]assistant</s>, no system
 *                 role; roles must alternate
 *   CHAT_PLAIN    no chat_template at all (e.g. the default stories15M model): the contents
 *                 joined with "\n\n", nothing added - a documented fallback, not a format
 *
 * Any other template (Llama-3.1 with tools and dates, ChatML, ...) is a load error. The text
 * holds special tokens as text (e.g. "<|begin_of_text|>"): encode it with tok_encode's
 * add_special = 0, the tokenizer recognises them.
 */
#ifndef CINDER_CHAT_H
#define CINDER_CHAT_H

#include <stddef.h>
#include <stdint.h>

enum { CHAT_PLAIN, CHAT_LLAMA3, CHAT_LLAMA2, CHAT_MISTRAL };

/* error codes of chat_apply */
enum { CHAT_EROLES = -2 /* roles not allowed or not alternating */, CHAT_ENOMEM = -3 };

typedef struct {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} chat_msg;

typedef struct {
    int kind;            /* CHAT_* */
    int gen_always;      /* LLAMA3: the generation prompt ignores add_generation_prompt */
    int trim;            /* LLAMA3: contents trimmed */
    int bos_first;       /* LLAMA3: BOS before the first message */
    int eos_space;       /* MISTRAL: a space after each EOS (v0.1's "eos_token + ' '") */
    char bos[64], eos[64];
} chat_template;

/* Recognises TEMPLATE (the Jinja source; NULL or "" for none) with the model's BOS / EOS
 * token strings. 0, or -1 with a message in ERR for an unrecognised template. */
int chat_template_parse(chat_template *ct, const char *template, const char *bos,
                        const char *eos, char *err, size_t n_err);

/* Reads chat_template (a string, or the "default" entry of a list of named templates),
 * bos_token and eos_token from PATH, a tokenizer_config.json. 0, or -1 with ERR. */
int chat_template_load(chat_template *ct, const char *path, char *err, size_t n_err);

/* Renders N messages into OUT (at most CAP bytes, NUL-terminated when the text fits, i.e.
 * when CAP > the returned length). Returns the text's length, or CHAT_E* (< 0). */
int64_t chat_apply(const chat_template *ct, const chat_msg *msgs, int n,
                   int add_generation_prompt, char *out, size_t cap);

#endif
