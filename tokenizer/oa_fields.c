/* oa_fields.c - every field of an OpenAI completions / chat-completions request is one of:
 * implemented (read by api_openai.c), accepted because its value changes nothing here (a
 * default, or a field that has no effect on any server, such as user), or refused with a 400
 * that names it. The table holds the fields of OpenAI's two request schemas and of vLLM's
 * extra parameters; a field in no row is refused as unknown, never ignored. README's API
 * section lists the same, with the reasons.
 */
#include "oa.h"
#include "../common/json_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { CMPL = 1, CHAT = 2, BOTH = 3 };

/* Whether value V is one that changes nothing (accepted); NULL in the table: implemented. */
typedef int (*accept_fn)(const cJSON *v);

static int is_null(const cJSON *v) { return 0; } /* any value given: refused (null is absent) */
static int is_false(const cJSON *v) { return cJSON_IsFalse(v); }
static int is_true(const cJSON *v) { return cJSON_IsTrue(v); }
static int is_bool(const cJSON *v) { return cJSON_IsBool(v); }
static int is_zero(const cJSON *v) { return cJSON_IsNumber(v) && v->valuedouble == 0; }
static int is_one(const cJSON *v) { return cJSON_IsNumber(v) && v->valuedouble == 1; }
static int is_string(const cJSON *v) { return cJSON_IsString(v); }
static int is_empty(const cJSON *v) /* "", [] or {} */
{
    return (cJSON_IsString(v) && !*v->valuestring) ||
           ((cJSON_IsArray(v) || cJSON_IsObject(v)) && !cJSON_GetArraySize(v));
}
static int is_metadata(const cJSON *v) /* OpenAI's: string values; nothing is stored here */
{
    const cJSON *e;
    if (!cJSON_IsObject(v))
        return 0;
    cJSON_ArrayForEach(e, v) if (!cJSON_IsString(e)) return 0;
    return 1;
}
static int is_text_format(const cJSON *v) /* {"type": "text"}: plain text, what is produced */
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(v, "type");
    return cJSON_IsObject(v) && cJSON_GetArraySize(v) == 1 && cJSON_IsString(t) && !strcmp(t->valuestring, "text");
}
static int is_plain_choice(const cJSON *v) /* tool_choice / function_call: the model's own text */
{
    return cJSON_IsString(v) && (!strcmp(v->valuestring, "none") || !strcmp(v->valuestring, "auto"));
}
static int is_default_tier(const cJSON *v)
{
    return cJSON_IsString(v) && (!strcmp(v->valuestring, "auto") || !strcmp(v->valuestring, "default"));
}
static int is_text_modality(const cJSON *v)
{
    return cJSON_IsArray(v) && cJSON_GetArraySize(v) == 1 && cJSON_IsString(v->child) &&
           !strcmp(v->child->valuestring, "text");
}

/* Fields that share where they belong and how their values are judged. */
typedef struct {
    int where;                 /* CMPL, CHAT or BOTH */
    accept_fn accept;          /* NULL: implemented */
    const char *why;           /* when the value is refused */
    const char *const *names;  /* NULL-terminated */
} oa_fields;

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

static const oa_fields groups[] = {
    /* OpenAI, implemented */
    {BOTH, NULL, NULL,
     NAMES("model", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "stream",
           "stream_options", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs",
           "echo")},
    {CMPL, NULL, NULL, NAMES("prompt", "best_of")},
    {CHAT, NULL, NULL, NAMES("messages", "max_completion_tokens", "top_logprobs")},
    /* OpenAI, accepted: no effect on any server's output */
    {BOTH, is_string, "must be a string", NAMES("user")},
    {CHAT, is_string, "must be a string", NAMES("safety_identifier")},
    {CHAT, is_string, "must be a string (the prefix cache needs no key)", NAMES("prompt_cache_key")},
    {CHAT, is_metadata, "must be an object of strings (nothing is stored)", NAMES("metadata")},
    {CHAT, is_false, "is not supported: completions are not stored", NAMES("store")},
    {CHAT, is_default_tier, "is not supported: one tier (\"auto\" or \"default\")",
     NAMES("service_tier")},
    {CHAT, is_bool, "must be true or false (no tool calls are parsed)",
     NAMES("parallel_tool_calls")},
    {CHAT, is_text_modality, "is not supported: text output only ([\"text\"])",
     NAMES("modalities")},
    /* OpenAI (and vLLM's for completions), refused unless a no-op value */
    {CMPL, is_empty, "is not supported (no insertion)", NAMES("suffix")},
    {BOTH, is_text_format, "is not supported: only {\"type\": \"text\"} (no structured output)",
     NAMES("response_format")},
    {CHAT, is_plain_choice,
     "is not supported: only \"none\" or \"auto\" (no tool calls are forced or parsed)",
     NAMES("tool_choice")},
    {CHAT, is_empty, "are not supported (no function calls)", NAMES("functions")},
    {CHAT, is_plain_choice, "is not supported: only \"none\" or \"auto\"", NAMES("function_call")},
    {CHAT, is_empty, "is not supported (text output only)", NAMES("audio")},
    {CHAT, is_empty, "is not supported (no predicted outputs)", NAMES("prediction")},
    {CHAT, is_empty, "is not supported (no web search)", NAMES("web_search_options")},
    {CHAT, is_empty, "is not supported (no reasoning controls)", NAMES("reasoning_effort")},
    {CHAT, is_empty, "is not supported", NAMES("verbosity")},
    /* vLLM's extra parameters, implemented */
    {BOTH, NULL, NULL,
     NAMES("top_k", "repetition_penalty", "stop_token_ids", "ignore_eos", "min_tokens",
           "include_stop_str_in_output", "skip_special_tokens", "truncate_prompt_tokens",
           "add_special_tokens", "return_tokens_as_token_ids", "request_id")},
    {CHAT, NULL, NULL, NAMES("add_generation_prompt")},
    /* passed to the model's chat template (chat.c) */
    {CHAT, NULL, NULL,
     NAMES("tools", "continue_final_message", "documents", "chat_template_kwargs")},
    /* vLLM's, accepted only at their defaults */
    {CHAT, is_one, "is supported only as 1 in chat", NAMES("best_of")},
    {BOTH, is_false, "is not supported (no beam search)", NAMES("use_beam_search")},
    {BOTH, is_one, "is not supported (no beam search)", NAMES("length_penalty")},
    {BOTH, is_zero, "is not supported", NAMES("min_p")},
    {BOTH, is_true, "is not supported: special tokens are decoded as the fast tokenizers do",
     NAMES("spaces_between_special_tokens")},
    {CHAT, is_true, "is not supported (no reasoning parser)", NAMES("include_reasoning")},
    {BOTH, is_zero, "is not supported: requests are admitted by --policy", NAMES("priority")},
    {BOTH, is_null, "is not supported (no prompt logprobs)", NAMES("prompt_logprobs")},
    {BOTH, is_empty, "is not supported", NAMES("allowed_token_ids", "bad_words")},
    {BOTH, is_null, "is not supported (no structured output)",
     NAMES("guided_json", "guided_regex", "guided_choice", "guided_grammar", "structural_tag",
           "structured_outputs", "guided_decoding_backend", "guided_whitespace_pattern")},
    {BOTH, is_null, "are not supported", NAMES("logits_processors")},
    {CHAT, is_empty, "is not supported: the model's own template is used", NAMES("chat_template")},
    {CHAT, is_empty, "are not supported (text only)", NAMES("mm_processor_kwargs")},
    {CMPL, is_null, "are not supported", NAMES("prompt_embeds")},
    {BOTH, is_null, "is not supported (the prefix cache is not salted)", NAMES("cache_salt")},
    {BOTH, is_empty, "are not supported (no disaggregated serving)", NAMES("kv_transfer_params")},
    {BOTH, is_empty, "are not supported", NAMES("vllm_xargs")},
    {BOTH, is_false, "is not supported", NAMES("return_token_ids")},
};

int oa_fields_check(const cJSON *req, int chat, char *err, size_t n_err, const char **param)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, req) {
        const oa_fields *f = NULL;
        for (size_t k = 0; k < sizeof groups / sizeof *groups && !f; k++)
            for (const char *const *n = groups[k].names; *n && !f; n++)
                if (groups[k].where & (chat ? CHAT : CMPL) && !strcmp(*n, v->string))
                    f = &groups[k];
        *param = v->string;
        if (!f) {
            char name[65];
            snprintf(err, n_err, "%s: unknown parameter for %s (not supported)",
                     json_safe_name(v->string, name, sizeof name), chat ? "chat completions" : "completions");
            if (strcmp(name, v->string)) /* not plain ASCII: only in the message, made safe */
                *param = NULL;
            return -1;
        }
        if (f->accept && !cJSON_IsNull(v) && !f->accept(v)) {
            snprintf(err, n_err, "%s %s", v->string, f->why);
            return -1;
        }
    }
    *param = NULL;
    return 0;
}
