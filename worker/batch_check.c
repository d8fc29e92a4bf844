/* batch_check.c - the checks every backend runs on a batch before touching memory with it
 * (see fwd_batch_check in backend.h): one place, so the CPU and CUDA backends agree. */
#include "../common/log.h"
#include "backend.h"

#include <errno.h>

/* The sampling inputs of a sequence that samples: logit_bias and suppressed ids within the
 * vocabulary, the top-logprobs count within what backends return and somewhere to put it. */
static int sample_check(const fwd_seq *s, const fwd_limits *l, const char *who)
{
    const sampling_params *p = s->params;
    int ok = p->n_logit_bias >= 0 && p->n_logit_bias <= SAMPLING_MAX_LOGIT_BIAS &&
             s->n_suppress >= 0 && (s->n_suppress == 0 || s->suppress) &&
             p->n_top_logprobs >= 0 && p->n_top_logprobs <= FWD_MAX_TOP_LOGPROBS &&
             (p->n_top_logprobs == 0 || (s->out_top_ids && s->out_top_lps));
    for (int i = 0; ok && i < p->n_logit_bias; i++)
        ok = p->bias_ids[i] >= 0 && p->bias_ids[i] < l->vocab_size;
    for (int i = 0; ok && i < s->n_suppress; i++)
        ok = s->suppress[i] >= 0 && s->suppress[i] < l->vocab_size;
    if (!ok)
        LOG_ERR("%s forward: slot %d: bad sampling inputs (logit bias, suppressed ids or top "
                "logprobs)", who, s->slot);
    return ok ? 0 : -EINVAL;
}

int fwd_batch_check(const fwd_batch *batch, const fwd_limits *l, const char *who)
{
    if (batch->n_seqs < 0 || batch->n_seqs > l->max_seqs) {
        LOG_ERR("%s forward: %d sequences (at most %d)", who, batch->n_seqs, l->max_seqs);
        return -EINVAL;
    }
    int n_tok = 0;
    for (int i = 0; i < batch->n_seqs; i++) {
        const fwd_seq *s = &batch->seqs[i];
        int n = s->n_cached + s->n_new;
        if (s->n_cached < 0 || s->n_new < 1 || n > l->max_ctx || !s->tokens || !s->block_table ||
            (s->sample && !s->params)) {
            LOG_ERR("%s forward: seq %d (slot %d): bad n_cached %d / n_new %d (context %d)", who, i,
                    s->slot, s->n_cached, s->n_new, l->max_ctx);
            return -EINVAL;
        }
        if (s->sample && sample_check(s, l, who))
            return -EINVAL;
        n_tok += s->n_new;
        if (n_tok > l->max_tokens) {
            LOG_ERR("%s forward: more than %d tokens in one batch", who, l->max_tokens);
            return -EINVAL;
        }
        for (int j = s->sample ? 0 : s->n_cached; j < n; j++) /* penalties read them all */
            if (s->tokens[j] < 0 || s->tokens[j] >= l->vocab_size) {
                LOG_ERR("%s forward: slot %d: token %d out of the vocabulary", who, s->slot, s->tokens[j]);
                return -EINVAL;
            }
        for (int j = 0; j < (n + l->block_size - 1) / l->block_size; j++)
            if (s->block_table[j] < 0 || s->block_table[j] >= l->n_kv_blocks) {
                LOG_ERR("%s forward: slot %d: KV block %d out of range", who, s->slot, s->block_table[j]);
                return -EINVAL;
            }
    }
    return 0;
}
