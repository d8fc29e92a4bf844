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

typedef struct {
    const char *name;
    int where;           /* CMPL, CHAT or BOTH */
    accept_fn accept;    /* NULL: implemented */
    const char *why;     /* when the value is refused */
} oa_field;

static const oa_field fields[] = {
    /* OpenAI, implemented */
    {"model", BOTH, NULL, NULL},
    {"prompt", CMPL, NULL, NULL},
    {"messages", CHAT, NULL, NULL},
    {"max_tokens", BOTH, NULL, NULL},
    {"max_completion_tokens", CHAT, NULL, NULL},
    {"temperature", BOTH, NULL, NULL},
    {"top_p", BOTH, NULL, NULL},
    {"n", BOTH, NULL, NULL},
    {"best_of", CMPL, NULL, NULL},
    {"stop", BOTH, NULL, NULL},
    {"seed", BOTH, NULL, NULL},
    {"stream", BOTH, NULL, NULL},
    {"stream_options", BOTH, NULL, NULL},
    {"presence_penalty", BOTH, NULL, NULL},
    {"frequency_penalty", BOTH, NULL, NULL},
    {"logit_bias", BOTH, NULL, NULL},
    {"logprobs", BOTH, NULL, NULL},
    {"top_logprobs", CHAT, NULL, NULL},
    {"echo", BOTH, NULL, NULL},
    /* OpenAI, accepted: no effect on any server's output */
    {"user", BOTH, is_string, "must be a string"},
    {"safety_identifier", CHAT, is_string, "must be a string"},
    {"prompt_cache_key", CHAT, is_string, "must be a string (the prefix cache needs no key)"},
    {"metadata", CHAT, is_metadata, "must be an object of strings (nothing is stored)"},
    {"store", CHAT, is_false, "is not supported: completions are not stored"},
    {"service_tier", CHAT, is_default_tier, "is not supported: one tier (\"auto\" or \"default\")"},
    {"parallel_tool_calls", CHAT, is_bool, "must be true or false (no tool calls are parsed)"},
    {"modalities", CHAT, is_text_modality, "is not supported: text output only ([\"text\"])"},
    /* OpenAI, refused unless a no-op value */
    {"suffix", CMPL, is_empty, "is not supported (no insertion)"},
    {"response_format", CHAT, is_text_format,
     "is not supported: only {\"type\": \"text\"} (no structured output)"},
    {"tool_choice", CHAT, is_plain_choice,
     "is not supported: only \"none\" or \"auto\" (no tool calls are forced or parsed)"},
    {"functions", CHAT, is_empty, "are not supported (no function calls)"},
    {"function_call", CHAT, is_plain_choice, "is not supported: only \"none\" or \"auto\""},
    {"audio", CHAT, is_empty, "is not supported (text output only)"},
    {"prediction", CHAT, is_empty, "is not supported (no predicted outputs)"},
    {"web_search_options", CHAT, is_empty, "is not supported (no web search)"},
    {"reasoning_effort", CHAT, is_empty, "is not supported (no reasoning controls)"},
    {"verbosity", CHAT, is_empty, "is not supported"},
    /* vLLM's extra parameters, implemented */
    {"top_k", BOTH, NULL, NULL},
    {"repetition_penalty", BOTH, NULL, NULL},
    {"stop_token_ids", BOTH, NULL, NULL},
    {"ignore_eos", BOTH, NULL, NULL},
    {"min_tokens", BOTH, NULL, NULL},
    {"include_stop_str_in_output", BOTH, NULL, NULL},
    {"skip_special_tokens", BOTH, NULL, NULL},
    {"truncate_prompt_tokens", BOTH, NULL, NULL},
    {"add_special_tokens", BOTH, NULL, NULL},
    {"add_generation_prompt", CHAT, NULL, NULL},
    /* passed to the model's chat template (chat.c) */
    {"tools", CHAT, NULL, NULL},
    {"continue_final_message", CHAT, NULL, NULL},
    {"documents", CHAT, NULL, NULL},
    {"chat_template_kwargs", CHAT, NULL, NULL},
    {"return_tokens_as_token_ids", BOTH, NULL, NULL},
    {"request_id", BOTH, NULL, NULL},
    /* vLLM's, accepted only at their defaults */
    {"best_of", CHAT, is_one, "is supported only as 1 in chat"},
    {"use_beam_search", BOTH, is_false, "is not supported (no beam search)"},
    {"length_penalty", BOTH, is_one, "is not supported (no beam search)"},
    {"min_p", BOTH, is_zero, "is not supported"},
    {"spaces_between_special_tokens", BOTH, is_true,
     "is not supported: special tokens are decoded as the fast tokenizers do"},
    {"include_reasoning", CHAT, is_true, "is not supported (no reasoning parser)"},
    {"priority", BOTH, is_zero, "is not supported: requests are admitted by --policy"},
    {"prompt_logprobs", BOTH, is_null, "is not supported (no prompt logprobs)"},
    {"allowed_token_ids", BOTH, is_empty, "is not supported"},
    {"bad_words", BOTH, is_empty, "is not supported"},
    {"guided_json", BOTH, is_null, "is not supported (no structured output)"},
    {"guided_regex", BOTH, is_null, "is not supported (no structured output)"},
    {"guided_choice", BOTH, is_null, "is not supported (no structured output)"},
    {"guided_grammar", BOTH, is_null, "is not supported (no structured output)"},
    {"structural_tag", BOTH, is_null, "is not supported (no structured output)"},
    {"structured_outputs", BOTH, is_null, "is not supported (no structured output)"},
    {"guided_decoding_backend", BOTH, is_null, "is not supported (no structured output)"},
    {"guided_whitespace_pattern", BOTH, is_null, "is not supported (no structured output)"},
    {"response_format", CMPL, is_text_format,
     "is not supported: only {\"type\": \"text\"} (no structured output)"},
    {"logits_processors", BOTH, is_null, "are not supported"},
    {"chat_template", CHAT, is_empty, "is not supported: the model's own template is used"},
    {"mm_processor_kwargs", CHAT, is_empty, "are not supported (text only)"},
    {"prompt_embeds", CMPL, is_null, "are not supported"},
    {"cache_salt", BOTH, is_null, "is not supported (the prefix cache is not salted)"},
    {"kv_transfer_params", BOTH, is_empty, "are not supported (no disaggregated serving)"},
    {"vllm_xargs", BOTH, is_empty, "are not supported"},
    {"return_token_ids", BOTH, is_false, "is not supported"},
};

int oa_fields_check(const cJSON *req, int chat, char *err, size_t n_err, const char **param)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, req) {
        const oa_field *f = NULL;
        for (size_t k = 0; k < sizeof fields / sizeof *fields && !f; k++)
            if (fields[k].where & (chat ? CHAT : CMPL) && !strcmp(fields[k].name, v->string))
                f = &fields[k];
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
            snprintf(err, n_err, "%s %s", f->name, f->why);
            return -1;
        }
    }
    *param = NULL;
    return 0;
}
