/* chat.c - the chat formats of chat.h: recognising a tokenizer_config.json chat_template and
 * rendering messages exactly as its Jinja source does under transformers (Python's str.strip
 * for `trim` / `.strip()`, the raise_exception cases as CHAT_EROLES).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "chat.h"
#include "../common/tok/tok_impl.h"

/* Python's str.isspace for one code point */
static int py_space(uint32_t c)
{
    return tok_is_white(c) || (c >= 0x1C && c <= 0x1F);
}

/* S without leading and trailing Python white space: [*a, *b) */
static void py_strip(const char *s, size_t *a, size_t *b)
{
    size_t i = 0, n = strlen(s), j = n;
    int l;
    while (i < n && py_space(tok_utf8_decode(s + i, &l)))
        i += (size_t)l;
    while (j > i) {
        size_t k = j - 1;
        while (k > i && ((unsigned char)s[k] & 0xC0) == 0x80)
            k--;
        if (!py_space(tok_utf8_decode(s + k, &l)))
            break;
        j = k;
    }
    *a = i;
    *b = j;
}

static int put(tok_buf *b, const char *s)
{
    return strbuf_add(b, s, strlen(s));
}

static int put_stripped(tok_buf *b, const char *s)
{
    size_t i, j;
    py_strip(s, &i, &j);
    return strbuf_add(b, s + i, j - i);
}

static int render_llama3(const chat_template *ct, const chat_msg *m, int n, int gen, tok_buf *b)
{
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        if (i == 0 && ct->bos_first)
            rc |= put(b, ct->bos);
        rc |= put(b, "<|start_header_id|>");
        rc |= put(b, m[i].role);
        rc |= put(b, "<|end_header_id|>\n\n");
        rc |= ct->trim ? put_stripped(b, m[i].content) : put(b, m[i].content);
        rc |= put(b, "<|eot_id|>");
    }
    if (rc == 0 && (gen || ct->gen_always))
        rc = put(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return rc ? CHAT_ENOMEM : 0;
}

static int render_llama2(const chat_template *ct, const chat_msg *m, int n, tok_buf *b)
{
    if (n == 0)
        return CHAT_EROLES; /* the template reads messages[0] */
    const char *sys = NULL;
    if (!strcmp(m[0].role, "system")) {
        sys = m[0].content;
        m++;
        n--;
    }
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int user = !strcmp(m[i].role, "user");
        if (user != (i % 2 == 0))
            return CHAT_EROLES;
        tok_buf content = {0};
        if (i == 0 && sys) {
            rc |= put(&content, "<<SYS>>\n");
            rc |= put(&content, sys);
            rc |= put(&content, "\n<</SYS>>\n\n");
        }
        rc |= put(&content, m[i].content);
        rc |= strbuf_add(&content, "", 1);
        if (rc == 0 && user) {
            rc |= put(b, ct->bos);
            rc |= put(b, "[INST] ");
            rc |= put_stripped(b, content.p);
            rc |= put(b, " [/INST]");
        } else if (rc == 0 && !strcmp(m[i].role, "assistant")) {
            rc |= put(b, " ");
            rc |= put_stripped(b, content.p);
            rc |= put(b, " ");
            rc |= put(b, ct->eos);
        }
        free(content.p);
    }
    return rc ? CHAT_ENOMEM : 0;
}

static int render_mistral(const chat_template *ct, const chat_msg *m, int n, tok_buf *b)
{
    int rc = put(b, ct->bos);
    for (int i = 0; i < n && rc == 0; i++) {
        int user = !strcmp(m[i].role, "user");
        if (user != (i % 2 == 0))
            return CHAT_EROLES;
        if (user) {
            rc |= put(b, "[INST] ");
            rc |= put(b, m[i].content);
            rc |= put(b, " [/INST]");
        } else if (!strcmp(m[i].role, "assistant")) {
            rc |= put(b, m[i].content);
            rc |= put(b, ct->eos);
            if (ct->eos_space)
                rc |= put(b, " ");
        } else
            return CHAT_EROLES;
    }
    return rc ? CHAT_ENOMEM : 0;
}

static int render_plain(const chat_msg *m, int n, tok_buf *b)
{
    int rc = 0;
    for (int i = 0; i < n; i++)
        rc |= (i ? put(b, "\n\n") : 0) | put(b, m[i].content);
    return rc ? CHAT_ENOMEM : 0;
}

int64_t chat_apply(const chat_template *ct, const chat_msg *msgs, int n,
                   int add_generation_prompt, char *out, size_t cap)
{
    tok_buf b = {0};
    int rc;
    switch (ct->kind) {
    case CHAT_LLAMA3: rc = render_llama3(ct, msgs, n, add_generation_prompt, &b); break;
    case CHAT_LLAMA2: rc = render_llama2(ct, msgs, n, &b); break;
    case CHAT_MISTRAL: rc = render_mistral(ct, msgs, n, &b); break;
    default: rc = render_plain(msgs, n, &b); break;
    }
    int64_t len = rc < 0 ? rc : (int64_t)b.n;
    if (rc == 0 && cap > 0) {
        size_t k = b.n < cap ? b.n : cap - 1;
        if (k)
            memcpy(out, b.p, k);
        out[k] = 0;
    }
    free(b.p);
    return len;
}

static int set_token(char *dst, const char *src, const char *what, char *err, size_t n_err)
{
    if (strlen(src) >= 64) {
        snprintf(err, n_err, "%s token longer than 63 bytes", what);
        return -1;
    }
    strcpy(dst, src);
    return 0;
}

int chat_template_parse(chat_template *ct, const char *tpl, const char *bos, const char *eos,
                        char *err, size_t n_err)
{
    memset(ct, 0, sizeof *ct);
    if (set_token(ct->bos, bos ? bos : "", "BOS", err, n_err) < 0 ||
        set_token(ct->eos, eos ? eos : "", "EOS", err, n_err) < 0)
        return -1;
    if (!tpl || !*tpl) {
        ct->kind = CHAT_PLAIN;
        return 0;
    }
    if (strstr(tpl, "<|start_header_id|>")) {
        if (strstr(tpl, "Cutting Knowledge Date") || strstr(tpl, "tools")) {
            snprintf(err, n_err, "chat template: the Llama-3.1+ format (tools, dates) is not "
                                 "implemented");
            return -1;
        }
        ct->kind = CHAT_LLAMA3;
        ct->gen_always = !strstr(tpl, "add_generation_prompt");
        ct->trim = strstr(tpl, "| trim") || strstr(tpl, "|trim");
        ct->bos_first = strstr(tpl, "bos_token") != NULL;
        return 0;
    }
    if (strstr(tpl, "[INST]")) {
        if (strstr(tpl, "<<SYS>>")) {
            ct->kind = CHAT_LLAMA2;
            return 0;
        }
        if (!strstr(tpl, "system") && !strstr(tpl, "[AVAILABLE_TOOLS]")) {
            ct->kind = CHAT_MISTRAL;
            ct->eos_space = strstr(tpl, "eos_token + ' '") || strstr(tpl, "eos_token + \" \"");
            return 0;
        }
    }
    snprintf(err, n_err, "unrecognised chat template (known: Llama-3, Llama-2 [INST] <<SYS>>, "
                         "Mistral v0.1/v0.2 [INST])");
    return -1;
}

/* a token of tokenizer_config.json: "text" or {"content": "text"} */
static const char *config_token(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsObject(v))
        v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int chat_template_load(chat_template *ct, const char *path, char *err, size_t n_err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, n_err, "cannot read %s", path);
        return -1;
    }
    tok_buf b = {0};
    char chunk[65536];
    size_t k;
    int rc = 0;
    while (rc == 0 && (k = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = strbuf_add(&b, chunk, k);
    fclose(f);
    cJSON *j = rc == 0 ? cJSON_ParseWithLength(b.p, b.n) : NULL;
    free(b.p);
    if (!j) {
        snprintf(err, n_err, "%s is not valid JSON", path);
        return -1;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "chat_template"), *e;
    const char *tpl = cJSON_IsString(t) ? t->valuestring : NULL;
    const cJSON *named = cJSON_IsArray(t) ? t : NULL; /* [{"name", "template"}, ...] */
    cJSON_ArrayForEach(e, named) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(e, "template");
        if (cJSON_IsString(name) && !strcmp(name->valuestring, "default") && cJSON_IsString(src))
            tpl = src->valuestring;
    }
    rc = chat_template_parse(ct, tpl, config_token(j, "bos_token"), config_token(j, "eos_token"),
                             err, n_err);
    cJSON_Delete(j);
    return rc;
}
