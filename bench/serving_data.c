/* serving_data.c - bench-serving's workloads, as vLLM's benchmark_serving builds them:
 *
 *   sharegpt     [{"conversations": [{"from": "human", "value"}, {"from": "gpt", "value"}, ...]}]:
 *                the first human turn is the prompt, the turn after it (when there is one) sets
 *                the output length; records shuffled by the seed, filtered, the first N kept.
 *   instruction  [{"instruction", "input"?, "output"}]: instruction (+ input) is the prompt,
 *                the output's length the output length; shuffled and filtered the same way.
 *   random       N prompts of random vocabulary tokens decoded to text, lengths uniform in
 *                [len * (1 - r), len * (1 + r)].
 *   prefix_repetition  (vLLM's, alias "prefix"; SGLang's generated-shared-prefix) a few random
 *                prefixes, a system prompt each, shared by N / num_prefixes requests with their
 *                own random suffixes (questions), in shuffled order: prefix caching's case.
 *   multiturn    conversations of `turns` turns, each turn resending the whole history
 *                (question, answer, question, ...) with the next question: each request's
 *                prompt starts with the previous turn's prompt. A turn is sent when the
 *                previous one has been answered (sv_prompt.after). Questions and answers are
 *                random text (questions of --random-input-len, answers of --random-output-len
 *                tokens, which is also what each turn asks for); the history holds these
 *                fixed answers, not the server's, so the workload is the same for any server.
 *
 * Every length is counted with the model's tokenizer: prompts with its special tokens (the
 * BOS the server adds, so the count is the server's), replies without.
 * Also the arrival process (sv_arrivals).
 */
#include "serving.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json_util.h"

void sv_data_free(sv_dataset *d)
{
    for (int i = 0; i < d->n; i++)
        free(d->v[i].prompt);
    free(d->v);
    d->v = NULL;
    d->n = 0;
}

static int count_tokens(const tok *t, const char *s, int add_special)
{
    int64_t n = tok_encode(t, s, strlen(s), add_special, NULL, 0);
    return n < 0 ? -1 : (int)n;
}

static void shuffle(int *idx, int n, uint64_t seed)
{
    sv_rng r = {seed};
    for (int i = 0; i < n; i++)
        idx[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = sv_rng_int(&r, 0, i), tmp = idx[i];
        idx[i] = idx[j];
        idx[j] = tmp;
    }
}

/* One record's prompt (malloc'd) and reply (borrowed, NULL when none); -1 if it has no prompt. */
static int record_texts(const char *kind, const cJSON *rec, char **prompt, const char **reply)
{
    *prompt = NULL;
    *reply = NULL;
    if (!strcmp(kind, "sharegpt")) {
        const cJSON *turns = cJSON_GetObjectItemCaseSensitive(rec, "conversations"), *t;
        int found = 0;
        cJSON_ArrayForEach(t, turns) {
            const cJSON *from = cJSON_GetObjectItemCaseSensitive(t, "from");
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(t, "value");
            if (!cJSON_IsString(from) || !cJSON_IsString(v))
                return -1;
            int human = !strcmp(from->valuestring, "human") || !strcmp(from->valuestring, "user");
            if (!found && human) {
                *prompt = strdup(v->valuestring);
                found = 1;
            } else if (found) {
                if (!human)
                    *reply = v->valuestring;
                break;
            }
        }
        return found && *prompt ? 0 : -1;
    }
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(rec, "instruction");
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(rec, "input");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(rec, "output");
    if (!cJSON_IsString(ins))
        return -1;
    if (cJSON_IsString(in) && in->valuestring[0]) {
        size_t a = strlen(ins->valuestring), b = strlen(in->valuestring);
        if ((*prompt = malloc(a + b + 3)))
            sprintf(*prompt, "%s\n\n%s", ins->valuestring, in->valuestring);
    } else {
        *prompt = strdup(ins->valuestring);
    }
    if (cJSON_IsString(out))
        *reply = out->valuestring;
    return *prompt ? 0 : -1;
}

/* ShareGPT or instruction records, shuffled, filtered as vLLM does. */
static int load_records(const sv_data_cfg *c, const tok *t, sv_dataset *d, char *err, size_t n_err)
{
    cJSON *j = json_read_file(c->path, err, n_err);
    if (!j)
        return -1;
    int n_rec = cJSON_GetArraySize(j), rc = -1;
    if (!cJSON_IsArray(j) || n_rec == 0) {
        snprintf(err, n_err, "%s: not a non-empty JSON array", c->path);
        goto out;
    }
    const cJSON **recs = malloc((size_t)n_rec * sizeof *recs);
    int *idx = malloc((size_t)n_rec * sizeof *idx);
    d->v = calloc((size_t)c->num_prompts, sizeof *d->v);
    if (!recs || !idx || !d->v) {
        snprintf(err, n_err, "out of memory");
        goto free_idx;
    }
    int k = 0;
    const cJSON *rec;
    cJSON_ArrayForEach(rec, j) recs[k++] = rec;
    shuffle(idx, n_rec, c->seed);
    int n_bad = 0, n_no_reply = 0, n_short = 0, n_long = 0;
    for (int i = 0; i < n_rec && d->n < c->num_prompts; i++) {
        char *prompt;
        const char *reply;
        if (record_texts(c->name, recs[idx[i]], &prompt, &reply)) {
            free(prompt);
            n_bad++;
            continue;
        }
        int p_len = count_tokens(t, prompt, 1), o_len = c->fixed_output_len, from_reply = 0;
        if (o_len <= 0 && reply) {
            o_len = count_tokens(t, reply, 0);
            from_reply = 1;
        } else if (o_len <= 0) {
            o_len = c->output_len;
        }
        const char *why = NULL;
        if (p_len < 0 || o_len < 0)
            n_bad++, why = "bad";
        else if (o_len == 0)
            n_no_reply++, why = "no reply";
        else if (p_len < c->min_len || (from_reply && o_len < c->min_len))
            n_short++, why = "short";
        else if (p_len > c->max_prompt_len || p_len + o_len > c->max_total_len)
            n_long++, why = "long";
        if (why) {
            free(prompt);
            continue;
        }
        d->v[d->n++] = (sv_prompt){prompt, p_len, o_len, 0};
    }
    fprintf(stderr, "%s: %d records; %d prompts taken; skipped %d shorter than %d tokens, %d longer than "
                    "%d (prompt) or %d (prompt + output), %d without a reply (--output-len), %d malformed\n",
            c->path, n_rec, d->n, n_short, c->min_len, n_long, c->max_prompt_len, c->max_total_len,
            n_no_reply, n_bad);
    if (d->n == 0)
        snprintf(err, n_err, "%s: no record passes the filters", c->path);
    else {
        if (d->n < c->num_prompts)
            fprintf(stderr, "warning: only %d of the %d prompts asked for\n", d->n, c->num_prompts);
        rc = 0;
    }
free_idx:
    free(idx);
    free(recs);
out:
    cJSON_Delete(j);
    return rc;
}

/* Token ids that decode alone to clean text: not special, no replacement character. */
static int *clean_vocab(const tok *t, int *n_out)
{
    int n_vocab = tok_vocab_size(t), n = 0;
    int *ids = malloc((size_t)n_vocab * sizeof *ids);
    char buf[256];
    for (int32_t id = 0; ids && id < n_vocab; id++) {
        if (tok_is_special(t, id))
            continue;
        int64_t len = tok_decode(t, &id, 1, 1, buf, sizeof buf - 1);
        if (len <= 0 || len >= (int64_t)sizeof buf)
            continue;
        buf[len] = 0;
        if (!strstr(buf, "\xEF\xBF\xBD"))
            ids[n++] = id;
    }
    *n_out = n;
    return ids;
}

static void len_range(int len, double ratio, int *lo, int *hi)
{
    *lo = (int)floor(len * (1 - ratio));
    *hi = (int)ceil(len * (1 + ratio));
    if (*lo < 1)
        *lo = 1;
    if (*hi < *lo)
        *hi = *lo;
}

/* A prompt of random clean tokens that encodes (with special tokens) to TARGET tokens, or
 * as close as a few rounds of trimming and extending get (decoding then encoding may merge or
 * split tokens at the seams). */
static char *random_prompt_try(const tok *t, sv_rng *r, const int *vocab, int n_vocab, int target,
                               int n_special, int *len_out)
{
    int cap = 2 * target + 16, k = target - n_special > 1 ? target - n_special : 1;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    char *text = NULL;
    int best_len = -1;
    if (!ids)
        return NULL;
    for (int i = 0; i < k; i++)
        ids[i] = vocab[sv_rng_int(r, 0, n_vocab - 1)];
    for (int round = 0; round < 8; round++) {
        int64_t n = tok_decode(t, ids, (size_t)k, 1, NULL, 0);
        char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (!s)
            break;
        tok_decode(t, ids, (size_t)k, 1, s, (size_t)n);
        s[n] = 0;
        int m = count_tokens(t, s, 1);
        if (m >= 0 && (best_len < 0 || abs(m - target) < abs(best_len - target))) {
            free(text);
            text = s;
            best_len = m;
        } else {
            free(s);
        }
        if (m < 0 || m == target)
            break;
        int old_k = k;
        k += target - m;
        k = k < 1 ? 1 : k > cap ? cap : k;
        for (int i = old_k; i < k; i++)
            ids[i] = vocab[sv_rng_int(r, 0, n_vocab - 1)];
    }
    free(ids);
    *len_out = best_len;
    return text;
}

/* The same, with its length inside [LO, HI]: fresh tokens while the rounds end outside (the
 * seams can keep a short prompt one token off its target). */
static char *random_prompt(const tok *t, sv_rng *r, const int *vocab, int n_vocab, int target,
                           int lo, int hi, int n_special, int *len_out)
{
    char *p = NULL;
    for (int attempt = 0; attempt < 16; attempt++) {
        free(p);
        p = random_prompt_try(t, r, vocab, n_vocab, target, n_special, len_out);
        if (!p || (*len_out >= lo && *len_out <= hi))
            break;
    }
    return p;
}

static int load_random(const sv_data_cfg *c, const tok *t, sv_dataset *d, char *err, size_t n_err)
{
    if (c->random_input_len < 1 || c->random_output_len < 1 || c->random_range_ratio < 0 ||
        c->random_range_ratio >= 1) {
        snprintf(err, n_err, "random: lengths must be >= 1 and --random-range-ratio in [0, 1)");
        return -1;
    }
    int n_vocab, in_lo, in_hi, out_lo, out_hi, n_special = count_tokens(t, "", 1);
    int *vocab = clean_vocab(t, &n_vocab);
    d->v = calloc((size_t)c->num_prompts, sizeof *d->v);
    if (!vocab || !d->v || n_vocab == 0) {
        free(vocab);
        snprintf(err, n_err, vocab && d->v ? "random: the vocabulary has no plain tokens" : "out of memory");
        return -1;
    }
    len_range(c->random_input_len, c->random_range_ratio, &in_lo, &in_hi);
    len_range(c->random_output_len, c->random_range_ratio, &out_lo, &out_hi);
    sv_rng r = {c->seed};
    for (int i = 0; i < c->num_prompts; i++) {
        int target = sv_rng_int(&r, in_lo, in_hi), out_len = sv_rng_int(&r, out_lo, out_hi), p_len;
        char *p = random_prompt(t, &r, vocab, n_vocab, target, in_lo, in_hi, n_special, &p_len);
        if (!p) {
            free(vocab);
            snprintf(err, n_err, "random: cannot make a prompt of %d tokens", target);
            return -1;
        }
        d->v[d->n++] = (sv_prompt){p, p_len, out_len, 0};
    }
    free(vocab);
    return 0;
}

/* Random text of LEN tokens within 10% (counted alone, special tokens aside), for composing
 * prompts; the seams where texts are joined may still merge or split a token or two. */
static char *random_text(const tok *t, sv_rng *r, const int *vocab, int n_vocab, int len, int n_special)
{
    int got, slack = len / 10 > 1 ? len / 10 : 1;
    return random_prompt(t, r, vocab, n_vocab, len + n_special, len + n_special - slack,
                         len + n_special + slack, n_special, &got);
}

/* A + SEP + B, malloc'd. */
static char *concat(const char *a, const char *sep, const char *b)
{
    size_t na = strlen(a), ns = strlen(sep), nb = strlen(b);
    char *s = malloc(na + ns + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, sep, ns);
        memcpy(s + na + ns, b, nb + 1);
    }
    return s;
}

static int load_prefix(const sv_data_cfg *c, const tok *t, sv_dataset *d, char *err, size_t n_err)
{
    if (c->prefix_len < 1 || c->suffix_len < 1 || c->num_prefixes < 1 || c->prefix_output_len < 1) {
        snprintf(err, n_err, "prefix_repetition: lengths and --prefix-repetition-num-prefixes must be >= 1");
        return -1;
    }
    int n_vocab, n_special = count_tokens(t, "", 1), rc = -1;
    int *vocab = clean_vocab(t, &n_vocab), *idx = malloc((size_t)c->num_prompts * sizeof *idx);
    char **prefixes = calloc((size_t)c->num_prefixes, sizeof *prefixes);
    d->v = calloc((size_t)c->num_prompts, sizeof *d->v);
    if (!vocab || !idx || !prefixes || !d->v || n_vocab == 0) {
        snprintf(err, n_err, "out of memory");
        goto out;
    }
    sv_rng r = {c->seed};
    for (int p = 0; p < c->num_prefixes; p++)
        if (!(prefixes[p] = random_text(t, &r, vocab, n_vocab, c->prefix_len, n_special))) {
            snprintf(err, n_err, "prefix_repetition: cannot make a prefix of %d tokens", c->prefix_len);
            goto out;
        }
    shuffle(idx, c->num_prompts, c->seed ^ 0x5bd1e995ULL);
    for (int i = 0; i < c->num_prompts; i++) { /* request idx[i] shares prefix i % num_prefixes */
        char *suffix = random_text(t, &r, vocab, n_vocab, c->suffix_len, n_special);
        char *p = suffix ? concat(prefixes[i % c->num_prefixes], " ", suffix) : NULL;
        free(suffix);
        if (!p) {
            snprintf(err, n_err, "out of memory");
            goto out;
        }
        d->v[idx[i]] = (sv_prompt){p, count_tokens(t, p, 1), c->prefix_output_len, 0};
        d->n++;
    }
    rc = 0;
out:
    for (int p = 0; prefixes && p < c->num_prefixes; p++)
        free(prefixes[p]);
    free(prefixes);
    free(idx);
    free(vocab);
    return rc;
}

static int load_multiturn(const sv_data_cfg *c, const tok *t, sv_dataset *d, char *err, size_t n_err)
{
    if (c->turns < 1 || c->random_input_len < 1 || c->random_output_len < 1) {
        snprintf(err, n_err, "multiturn: --multiturn-turns and the random lengths must be >= 1");
        return -1;
    }
    int n_vocab, n_special = count_tokens(t, "", 1), rc = -1;
    int *vocab = clean_vocab(t, &n_vocab);
    d->v = calloc((size_t)c->num_prompts, sizeof *d->v);
    char *history = NULL;
    if (!vocab || !d->v || n_vocab == 0) {
        snprintf(err, n_err, "out of memory");
        goto out;
    }
    sv_rng r = {c->seed};
    while (d->n < c->num_prompts) { /* one conversation */
        free(history);
        history = NULL;
        for (int turn = 0; turn < c->turns && d->n < c->num_prompts; turn++) {
            char *q = random_text(t, &r, vocab, n_vocab, c->random_input_len, n_special);
            char *p = q ? history ? concat(history, "\n", q) : strdup(q) : NULL;
            free(q);
            if (!p) {
                snprintf(err, n_err, "out of memory");
                goto out;
            }
            int len = count_tokens(t, p, 1);
            if (len + c->random_output_len > c->max_total_len) { /* the context is full: next one */
                free(p);
                if (turn == 0) {
                    snprintf(err, n_err, "multiturn: one turn needs %d tokens, more than --max-total-len %d",
                             len + c->random_output_len, c->max_total_len);
                    goto out;
                }
                break;
            }
            d->v[d->n] = (sv_prompt){p, len, c->random_output_len, turn ? d->n : 0};
            d->n++;
            char *a = random_text(t, &r, vocab, n_vocab, c->random_output_len, n_special);
            char *h = a ? concat(p, "\n", a) : NULL;
            free(a);
            free(history);
            if (!(history = h)) {
                snprintf(err, n_err, "out of memory");
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(history);
    free(vocab);
    return rc;
}

int sv_data_load(const sv_data_cfg *c, const tok *t, sv_dataset *d, char *err, size_t n_err)
{
    memset(d, 0, sizeof *d);
    int rc;
    if (c->num_prompts < 1) {
        snprintf(err, n_err, "--num-prompts must be >= 1");
        return -1;
    }
    if (!strcmp(c->name, "random"))
        rc = load_random(c, t, d, err, n_err);
    else if (!strcmp(c->name, "prefix_repetition") || !strcmp(c->name, "prefix"))
        rc = load_prefix(c, t, d, err, n_err);
    else if (!strcmp(c->name, "multiturn"))
        rc = load_multiturn(c, t, d, err, n_err);
    else if (!strcmp(c->name, "sharegpt") || !strcmp(c->name, "instruction")) {
        if (!c->path) {
            snprintf(err, n_err, "--dataset-name %s needs --dataset-path", c->name);
            return -1;
        }
        rc = load_records(c, t, d, err, n_err);
    } else {
        snprintf(err, n_err, "unknown dataset '%s' (sharegpt, instruction, random, prefix_repetition, "
                 "multiturn)", c->name);
        return -1;
    }
    if (rc)
        sv_data_free(d);
    return rc;
}

static double normal(sv_rng *r)
{
    double u = 1.0 - sv_rng_uniform(r), v = sv_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v);
}

/* Gamma(SHAPE, 1) by Marsaglia and Tsang (shape < 1 boosted through shape + 1). */
static double gamma_unit(sv_rng *r, double shape)
{
    if (shape == 1.0)
        return -log(1.0 - sv_rng_uniform(r));
    if (shape < 1.0)
        return gamma_unit(r, shape + 1.0) * pow(1.0 - sv_rng_uniform(r), 1.0 / shape);
    double dd = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * dd);
    for (;;) {
        double x = normal(r), v = 1.0 + c * x;
        if (v <= 0)
            continue;
        v = v * v * v;
        double u = 1.0 - sv_rng_uniform(r);
        if (log(u) < 0.5 * x * x + dd - dd * v + dd * log(v))
            return dd * v;
    }
}

void sv_arrivals(int n, double rate, double burstiness, uint64_t seed, double *t_ms)
{
    sv_rng r = {seed ^ 0xa5a5a5a5ULL};
    double t = 0;
    for (int i = 0; i < n; i++) {
        t_ms[i] = t;
        if (isfinite(rate)) /* mean gap 1/rate whatever the shape */
            t += 1000.0 * gamma_unit(&r, burstiness) / (rate * burstiness);
    }
}
