/* req_parse.c - /generate body validation (see req_parse.h). */
#include "req_parse.h"
#include "../common/json_util.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads number field NAME into *OUT if present; checks [lo, hi]. */
static int get_num(const cJSON *p, const char *name, double lo, double hi, double *out, char *err, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return fail(err, n, "parameters.%s must be a finite number", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return fail(err, n, "parameters.%s must be between %g and %g", name, lo, hi);
    *out = v->valuedouble;
    return 0;
}

static int get_int(const cJSON *p, const char *name, double lo, double hi, double *out, char *err, size_t n)
{
    double x = *out;
    if (get_num(p, name, lo, hi, &x, err, n))
        return -1;
    if (x != floor(x))
        return fail(err, n, "parameters.%s must be an integer", name);
    *out = x;
    return 0;
}

static int get_bool(const cJSON *p, const char *name, int *out, char *err, size_t n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, name);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsBool(v))
        return fail(err, n, "parameters.%s must be true or false", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int add_stop(gen_req *r, const cJSON *s, size_t *used, char *err, size_t n)
{
    if (!cJSON_IsString(s))
        return fail(err, n, "parameters.stop_sequences must be a string or a list of strings");
    size_t len = strlen(s->valuestring);
    if (len == 0)
        return fail(err, n, "parameters.stop_sequences must not contain empty strings");
    if (*used + len + 1 > sizeof r->stop)
        return fail(err, n, "parameters.stop_sequences: at most %zu bytes in all", sizeof r->stop - 1);
    memcpy(r->stop + *used, s->valuestring, len + 1);
    *used += len + 1;
    r->n_stop++;
    return 0;
}

/* Every parameter this API knows; any other is refused by name, never ignored. */
static const char *const known[] = {
    "max_new_tokens", "min_new_tokens", "do_sample", "temperature", "top_p", "top_k", "seed",
    "ignore_eos", "stop_sequences", "stop_token_ids", "repetition_penalty", "frequency_penalty",
    "presence_penalty", "skip_special_tokens", "n", "best_of", "return_details",
};

static int check_known(const cJSON *p, char *err, size_t n)
{
    const cJSON *v;
    cJSON_ArrayForEach(v, p) {
        size_t k = 0;
        while (k < sizeof known / sizeof *known && strcmp(v->string, known[k]))
            k++;
        char name[65];
        if (k == sizeof known / sizeof *known)
            return fail(err, n, "parameters.%s is not supported", json_safe_name(v->string, name, sizeof name));
    }
    return 0;
}

/* n and best_of: choices per prompt; best_of (ranking candidates) only as n itself. */
static int get_choices(gen_req *r, const cJSON *p, char *err, size_t n)
{
    double choices = 1, best_of = -1;
    if (get_int(p, "n", 1, REQ_MAX_CHOICES, &choices, err, n) ||
        get_int(p, "best_of", 1, REQ_MAX_CHOICES, &best_of, err, n))
        return -1;
    if (best_of >= 0 && best_of != choices)
        return fail(err, n, "parameters.best_of is supported only equal to n (%g): no candidates "
                    "are ranked", choices);
    r->n = (int)choices;
    return 0;
}

int gen_req_parse_logit_bias(gen_req *r, const cJSON *v, int vocab, char *err, size_t n)
{
    sampling_params *sp = &r->params;
    const cJSON *e;
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsObject(v))
        return fail(err, n, "logit_bias must be an object mapping token ids to biases");
    cJSON_ArrayForEach(e, v) {
        char *end;
        long id = strtol(e->string, &end, 10);
        if (!*e->string || *end || id < 0 || id >= vocab)
            return fail(err, n, "logit_bias: \"%.32s\" is not a token id of this model (0..%d)",
                        e->string, vocab - 1);
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || e->valuedouble < -100 ||
            e->valuedouble > 100)
            return fail(err, n, "logit_bias: the bias of token %ld must be a number between -100 "
                        "and 100", id);
        int k = 0;
        while (k < sp->n_logit_bias && sp->bias_ids[k] != id)
            k++;
        if (k == sp->n_logit_bias) {
            if (k == SAMPLING_MAX_LOGIT_BIAS)
                return fail(err, n, "logit_bias: at most %d entries", SAMPLING_MAX_LOGIT_BIAS);
            sp->n_logit_bias++;
        }
        sp->bias_ids[k] = (int32_t)id;
        sp->bias[k] = (float)e->valuedouble;
    }
    /* a zero bias changes nothing: dropped (also the last value of a repeated id) */
    int m = 0;
    for (int k = 0; k < sp->n_logit_bias; k++)
        if (sp->bias[k] != 0) {
            sp->bias_ids[m] = sp->bias_ids[k];
            sp->bias[m++] = sp->bias[k];
        }
    sp->n_logit_bias = m;
    return 0;
}

int gen_req_parse_params(gen_req *r, const cJSON *p, int max_new_cap, char *err, size_t n)
{
    sampling_params *sp = &r->params;
    double max_new = REQ_DEFAULT_MAX_NEW, temperature = 1.0, top_p = 1.0, top_k = 0, seed = -1;
    double rep = 1.0, freq = 0.0, pres = 0.0, min_new = 0;
    int do_sample = 0, ignore_eos = 0, skip_special = 1;
    if (p && !cJSON_IsNull(p) && !cJSON_IsObject(p))
        return fail(err, n, "parameters must be an object");
    if (check_known(p, err, n) || get_choices(r, p, err, n) ||
        get_int(p, "max_new_tokens", 1, max_new_cap, &max_new, err, n) ||
        get_int(p, "min_new_tokens", 0, max_new_cap, &min_new, err, n) ||
        get_bool(p, "skip_special_tokens", &skip_special, err, n) ||
        get_bool(p, "return_details", &r->return_details, err, n) ||
        get_bool(p, "do_sample", &do_sample, err, n) ||
        get_num(p, "temperature", 0, 100, &temperature, err, n) ||
        get_num(p, "top_p", 1e-6, 1, &top_p, err, n) ||
        get_int(p, "top_k", -1, 1 << 30, &top_k, err, n) ||
        get_int(p, "seed", 0, 9007199254740991.0, &seed, err, n) ||
        get_bool(p, "ignore_eos", &ignore_eos, err, n) ||
        get_num(p, "repetition_penalty", 1e-3, 100, &rep, err, n) ||
        get_num(p, "frequency_penalty", -2, 2, &freq, err, n) ||
        get_num(p, "presence_penalty", -2, 2, &pres, err, n))
        return -1;
    const cJSON *stops = p ? cJSON_GetObjectItemCaseSensitive(p, "stop_sequences") : NULL;
    size_t used = 0;
    if (cJSON_IsArray(stops)) {
        const cJSON *s;
        cJSON_ArrayForEach(s, stops) if (add_stop(r, s, &used, err, n)) return -1;
    } else if (stops && !cJSON_IsNull(stops) && add_stop(r, stops, &used, err, n)) {
        return -1;
    }
    const cJSON *ids = p ? cJSON_GetObjectItemCaseSensitive(p, "stop_token_ids") : NULL;
    if (ids && !cJSON_IsNull(ids)) {
        const cJSON *id;
        if (!cJSON_IsArray(ids))
            return fail(err, n, "parameters.stop_token_ids must be a list of token ids");
        cJSON_ArrayForEach(id, ids) {
            if (!cJSON_IsNumber(id) || id->valuedouble != floor(id->valuedouble) || id->valuedouble < 0 ||
                id->valuedouble >= (1 << 30))
                return fail(err, n, "parameters.stop_token_ids must be a list of token ids");
            if (r->n_stop_ids == STORE_MAX_STOP_IDS)
                return fail(err, n, "parameters.stop_token_ids: at most %d ids", STORE_MAX_STOP_IDS);
            r->stop_ids[r->n_stop_ids++] = (int32_t)id->valuedouble;
        }
    }
    if (min_new > max_new)
        return fail(err, n, "parameters.min_new_tokens (%g) must not exceed max_new_tokens (%g)",
                    min_new, max_new);
    sp->max_new_tokens = (int32_t)max_new;
    sp->min_tokens = (int32_t)min_new;
    r->keep_special = !skip_special;
    sp->temperature = do_sample ? (float)temperature : 0.0f; /* greedy unless sampling is asked */
    sp->top_p = (float)top_p;
    sp->top_k = top_k > 0 ? (int32_t)top_k : 0;
    sp->repetition_penalty = (float)rep;
    sp->frequency_penalty = (float)freq;
    sp->presence_penalty = (float)pres;
    sp->ignore_eos = (uint8_t)ignore_eos;
    r->seed_given = seed >= 0;
    sp->seed = seed >= 0 ? (uint64_t)seed : 0;
    return 0;
}

int gen_req_parse(gen_req *r, const char *body, size_t len, int max_new_cap, char *err, size_t n_err)
{
    memset(r, 0, sizeof *r);
    cJSON *root = json_parse_body(body, len, err, n_err);
    int rc = -1;
    if (!root)
        goto done;
    if (!cJSON_IsObject(root)) {
        fail(err, n_err, "request body must be a JSON object");
        goto done;
    }
    json_drop_nulls(root); /* every optional field given as null is absent */
    json_drop_nulls(cJSON_GetObjectItemCaseSensitive(root, "parameters"));
    const cJSON *f;
    cJSON_ArrayForEach(f, root) if (strcmp(f->string, "inputs") && strcmp(f->string, "parameters")) {
        char name[65];
        fail(err, n_err, "%s is not supported (only \"inputs\" and \"parameters\")",
             json_safe_name(f->string, name, sizeof name));
        goto done;
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "inputs");
    if (!cJSON_IsString(in)) {
        fail(err, n_err, "\"inputs\" must be a string");
        goto done;
    }
    if (gen_req_parse_params(r, cJSON_GetObjectItemCaseSensitive(root, "parameters"), max_new_cap, err, n_err))
        goto done;
    r->n_inputs = strlen(in->valuestring);
    r->inputs = strdup(in->valuestring);
    rc = r->inputs ? 0 : fail(err, n_err, "out of memory");
done:
    cJSON_Delete(root);
    return rc;
}

void gen_req_free(gen_req *r)
{
    free(r->inputs);
    r->inputs = NULL;
}
