/* tok_piece.c - one token's own bytes and text, as it contributes to a decoded text in the
 * middle of a sequence: what OpenAI's logprobs call a token (and its "bytes").
 *
 * The decoder chain (tok_decode.c) applied to that token alone, but without the steps that
 * act only at the start of a text (Strip, and Metaspace's dropping of the first token's
 * leading space), so "▁Lily" is " Lily" and the tokens of a text join up to the text; and
 * without turning a partial UTF-8 character (a byte token that holds part of one) into U+FFFD,
 * which only the text form does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

/* Replaces every A [na] in B's bytes by R [nr]. */
static int replace_all(tok_buf *b, const char *a, size_t na, const char *r, size_t nr)
{
    if (!na || b->n < na)
        return 0;
    tok_buf out = {0};
    size_t i = 0;
    int rc = 0;
    while (i < b->n && rc == 0) {
        if (i + na <= b->n && !memcmp(b->p + i, a, na)) {
            rc = strbuf_add(&out, r, nr);
            i += na;
        } else {
            rc = strbuf_add(&out, b->p + i++, 1);
        }
    }
    free(b->p);
    *b = out;
    return rc;
}

/* ByteLevel on one token: each character the byte it stands for, or the token's own bytes
 * when one of them stands for none (an added token such as "<|eot_id|>"). */
static int bytelevel(tok_buf *b)
{
    tok_buf out = {0};
    for (size_t k = 0; k < b->n;) {
        int l, c = tok_char_byte(tok_utf8_decode(b->p + k, &l));
        k += (size_t)l;
        char byte = (char)c;
        if (c < 0 || strbuf_add(&out, &byte, 1) < 0) {
            free(out.p);
            return c < 0 ? 0 : -1;
        }
    }
    free(b->p);
    *b = out;
    return 0;
}

/* The raw bytes of token ID into B; 0, or -1 (out of range, out of memory). */
static int token_bytes(const tok *t, int32_t id, tok_buf *b)
{
    if (id < 0 || id >= t->n_total)
        return -1;
    int32_t a = t->added_of_id[id];
    const char *s = a >= 0 ? t->added[a].content : id < t->n_vocab ? t->piece[id] : NULL;
    size_t n = a >= 0 ? t->added[a].n_content : s ? t->piece_len[id] : 0;
    if (strbuf_add(b, s ? s : "", n) < 0)
        return -1;
    for (int k = 0; k < t->n_dec; k++) {
        const tok_dec *d = &t->dec[k];
        char rep[4];
        int rc = 0;
        switch (d->type) {
        case TOK_DEC_REPLACE: rc = replace_all(b, d->a, d->na, d->b, d->nb); break;
        case TOK_DEC_BYTEFALLBACK: { /* "<0xHH>": that byte */
            int v = tok_byte_token(b->p, b->n);
            if (v >= 0) {
                b->p[0] = (char)v;
                b->n = 1;
            }
            break;
        }
        case TOK_DEC_BYTELEVEL: rc = bytelevel(b); break;
        case TOK_DEC_METASPACE: rc = replace_all(b, rep, (size_t)tok_utf8_encode(d->repl, rep), " ", 1); break;
        default: break; /* Fuse joins tokens; Strip acts at the ends of the whole text */
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

int64_t tok_token_bytes(const tok *t, int32_t id, char *out, size_t cap)
{
    tok_buf b = {0};
    int64_t rc = token_bytes(t, id, &b) < 0 ? -1 : (int64_t)b.n;
    if (rc > 0 && cap)
        memcpy(out, b.p, b.n < cap ? b.n : cap);
    free(b.p);
    return rc;
}

int64_t tok_token_text(const tok *t, int32_t id, char *out, size_t cap)
{
    tok_buf b = {0}, text = {0};
    int64_t rc = token_bytes(t, id, &b) < 0 || tok_utf8_lossy(&text, b.p, b.n) < 0 ? -1 : (int64_t)text.n;
    if (rc > 0 && cap)
        memcpy(out, text.p, text.n < cap ? text.n : cap);
    free(b.p);
    free(text.p);
    return rc;
}
