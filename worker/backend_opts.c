/* backend_opts.c - the backend's flags (the CUDA switches among them), parsed in one place for
 * the worker, the holder and the forward benchmark (kernels and backends never read the
 * environment). */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char backend_opts_usage[] =
    "[--backend auto|cpu|cuda] [--kv-tokens N] [--max-batch-tokens N] [--threads N] "
    "[--gpu-memory-utilization F] [--load-format auto|dummy] "
    "[--dtype bf16|fp16] [--enforce-eager] [--gemv-max-tokens 0..8] [--gemv-warps N] "
    "[--pdl MASK] [--prefill-attn auto|portable] [--quantization fp8] "
    "[--kv-cache-dtype auto|bf16|fp8]";

void backend_opts_init(backend_opts *o)
{
    memset(o, 0, sizeof *o);
    o->backend = "auto";
    o->max_batch_tokens = 2048;
    o->mem_util = 0.9f;
}

void backend_opts_layout(backend_opts *o, int block_size, int max_seq_len, int n_slots)
{
    o->block_size = block_size;
    o->max_seq_len = max_seq_len;
    o->max_seqs = MSG_MAX_SEQS < n_slots ? MSG_MAX_SEQS : n_slots;
}

static int parse_int(const char *name, const char *v, int lo, int hi, int *out)
{
    char *end;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || x < lo || x > hi) {
        fprintf(stderr, "--%s: expected an integer in [%d, %d], got '%s'\n", name, lo, hi,
                v ? v : "");
        return -1;
    }
    *out = (int)x;
    return 1;
}

/* The backend, its memory and its threads, and the weights' source. */
static int parse_general(backend_opts *o, const char *name, const char *value)
{
    if (!strcmp(name, "backend")) {
        if (!value || (strcmp(value, "auto") && strcmp(value, "cpu") && strcmp(value, "cuda"))) {
            fprintf(stderr, "--backend: auto, cpu or cuda, got '%s'\n", value ? value : "");
            return -1;
        }
        o->backend = value;
        return 1;
    }
    if (!strcmp(name, "kv-tokens")) {
        o->kv_tokens = value ? atoll(value) : 0;
        return 1;
    }
    if (!strcmp(name, "max-batch-tokens"))
        return parse_int(name, value, 1, 1 << 30, &o->max_batch_tokens);
    if (!strcmp(name, "threads"))
        return parse_int(name, value, 0, 4096, &o->n_threads);
    if (!strcmp(name, "gpu-memory-utilization")) {
        o->mem_util = value ? (float)atof(value) : 0.f;
        return 1;
    }
    if (!strcmp(name, "load-format")) {
        o->dummy_weights = value && !strcmp(value, "dummy");
        return 1;
    }
    return 0;
}

/* The weights', activations' and KV cache's number formats. */
static int parse_dtypes(backend_opts *o, const char *name, const char *value)
{
    if (!strcmp(name, "dtype")) {
        if (value && (!strcmp(value, "bf16") || !strcmp(value, "bfloat16")))
            o->fp16 = 0;
        else if (value && (!strcmp(value, "fp16") || !strcmp(value, "float16")))
            o->fp16 = 1;
        else {
            fprintf(stderr, "--dtype: bf16 or fp16, got '%s'\n", value ? value : "");
            return -1;
        }
        return 1;
    }
    if (!strcmp(name, "quantization")) {   /* absent: as the checkpoint (FP8 if it is) */
        if (!value || strcmp(value, "fp8")) {
            fprintf(stderr, "--quantization: only fp8 is supported, got '%s'\n", value ? value : "");
            return -1;
        }
        o->quant_fp8 = 1;
        return 1;
    }
    if (!strcmp(name, "kv-cache-dtype")) {
        if (value && (!strcmp(value, "fp8") || !strcmp(value, "fp8_e4m3")))
            o->kv_fp8 = 1;
        else if (value && (!strcmp(value, "auto") || !strcmp(value, "bf16")))
            o->kv_fp8 = 0;
        else {
            fprintf(stderr, "--kv-cache-dtype: auto, bf16, fp8 or fp8_e4m3 (fp8_e5m2 is not "
                    "supported), got '%s'\n", value ? value : "");
            return -1;
        }
        return 1;
    }
    return 0;
}

/* The CUDA backend's switches: graphs, the GEMV path, early launches, prefill attention. */
static int parse_cuda_switches(backend_opts *o, const char *name, const char *value)
{
    if (!strcmp(name, "enforce-eager")) {
        o->no_graphs = 1;
        return 1;
    }
    if (!strcmp(name, "gemv-max-tokens")) {
        int n;
        if (parse_int(name, value, 0, 8, &n) < 0)
            return -1;
        o->gemv_max_tokens = n ? n : -1;   /* 0 here: never */
        return 1;
    }
    if (!strcmp(name, "gemv-warps"))
        return parse_int(name, value, 1, 64, &o->gemv_warps);
    if (!strcmp(name, "pdl")) {
        int m;
        if (parse_int(name, value, 0, 3, &m) < 0)
            return -1;
        o->pdl = m ? m : -1;   /* 0 here: no site */
        return 1;
    }
    if (!strcmp(name, "prefill-attn")) {
        if (!value || (strcmp(value, "auto") && strcmp(value, "portable"))) {
            fprintf(stderr, "--prefill-attn: auto or portable, got '%s'\n", value ? value : "");
            return -1;
        }
        o->portable_attn = !strcmp(value, "portable");
        return 1;
    }
    return 0;
}

int backend_opts_parse(backend_opts *o, const char *name, const char *value)
{
    int r = parse_general(o, name, value);
    if (!r)
        r = parse_dtypes(o, name, value);
    return r ? r : parse_cuda_switches(o, name, value);
}
