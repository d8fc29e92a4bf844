/* tok_encode.c - the encode pipeline, in HF's order: split out added tokens that are matched
 * in the raw text, normalize each remaining piece, split out added tokens matched in normalized
 * text, pre-tokenize into words, BPE each word; then the post-processor's ids (e.g. BOS).
 */
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

typedef struct {
    const tok *t;
    tok_ids ids;
    tok_buf norm;       /* the current piece, normalized */
    const char *text;   /* start of the input (offset 0) */
    int piece_at_start; /* the raw piece being processed starts at offset 0 */
} enc_ctx;

static int on_word(void *ctx, const char *s, size_t n, int added)
{
    enc_ctx *c = ctx;
    (void)added;
    return tok_bpe_word(c->t, s, n, &c->ids);
}

static int on_normalized_piece(void *ctx, const char *s, size_t n, int added)
{
    enc_ctx *c = ctx;
    if (added >= 0)
        return tok_ids_add(&c->ids, c->t->added[added].id);
    int at_start = c->piece_at_start && (c->t->n_norm ? s == c->norm.p : 1);
    return tok_pretokenize(c->t, s, n, at_start, on_word, c);
}

static int on_raw_piece(void *ctx, const char *s, size_t n, int added)
{
    enc_ctx *c = ctx;
    const tok *t = c->t;
    if (added >= 0)
        return tok_ids_add(&c->ids, t->added[added].id);
    c->piece_at_start = s == c->text;
    if (t->n_norm) {
        c->norm.n = 0;
        if (tok_normalize(t, s, n, &c->norm) < 0)
            return -1;
        s = c->norm.p;
        n = c->norm.n;
        if (!n)
            return 0;
    }
    return tok_added_split(t, s, n, 1, on_normalized_piece, c);
}

int64_t tok_encode(const tok *t, const char *text, size_t len, int add_special, int32_t *ids,
                   size_t cap)
{
    if (!tok_utf8_valid(text, len))
        return -1;
    enc_ctx c = {.t = t, .text = text};
    int64_t rc = -1;
    if (add_special)
        for (int i = 0; i < t->post.n_pre; i++)
            if (tok_ids_add(&c.ids, t->post.pre[i]) < 0)
                goto out;
    if (len && tok_added_split(t, text, len, 0, on_raw_piece, &c) < 0)
        goto out;
    if (add_special)
        for (int i = 0; i < t->post.n_post; i++)
            if (tok_ids_add(&c.ids, t->post.post[i]) < 0)
                goto out;
    if (c.ids.n && cap)
        memcpy(ids, c.ids.p, (c.ids.n < cap ? c.ids.n : cap) * sizeof *ids);
    rc = (int64_t)c.ids.n;
out:
    free(c.ids.p);
    free(c.norm.p);
    return rc;
}
