/* test_tok_basic.c - the tokenizer library's own rules, apart from the golden vectors:
 * the llama2.c converter on a small hand-made vocabulary (merge order worked out by hand from
 * HF's SentencePieceExtractor rules, ids from the BPE rules) and its input checks; load errors
 * that name the unsupported component; invalid UTF-8 and out-of-range ids; HF's decode of
 * broken byte sequences, skip_special and BOS; and known facts of the real default-model
 * tokenizer (Llama-2's vocabulary: 61249 merges, "Once upon a time" -> 1 9038 2501 263 931)
 * and of the Llama-3 one; one token's own bytes and text (tok_token_bytes / tok_token_text,
 * OpenAI's logprob tokens): the tokens of a text join up to its decoding.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../../common/tok/tok.h"

static char g_dir[] = "/tmp/cinder_tokbasic_XXXXXX";

/* ---- a small llama2.c tokenizer blob */
typedef struct {
    char *p;
    size_t n;
} blob;

static void blob_add(blob *b, const void *s, size_t n)
{
    b->p = realloc(b->p, b->n + n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void blob_piece(blob *b, float score, const char *s, size_t n)
{
    int32_t len = (int32_t)n;
    blob_add(b, &score, 4);
    blob_add(b, &len, 4);
    blob_add(b, s, n);
}

static const char *const EXTRA[] = {" t", "he", " the", "th", " ", "t", "h", "e", "  ", " th", "ee"};
static const float EXTRA_SCORE[] = {-1, -2, -3, -4, -5, -6, -7, -8, -1e9f, -0.5f, -2};
enum { N_EXTRA = 11, N_SMALL = 259 + N_EXTRA };

static blob small_blob(void)
{
    blob b = {0};
    int32_t max_len = 8;
    blob_add(&b, &max_len, 4);
    blob_piece(&b, 0, "<unk>", 5);
    blob_piece(&b, 0, "\n<s>\n", 5);
    blob_piece(&b, 0, "\n</s>\n", 6);
    for (int i = 0; i < 256; i++) { /* byte pieces: the UTF-8 of code point i */
        char u[2];
        size_t n = 1;
        if (i < 0x80)
            u[0] = (char)i;
        else {
            u[0] = (char)(0xC0 | i >> 6);
            u[1] = (char)(0x80 | (i & 0x3F));
            n = 2;
        }
        blob_piece(&b, 0, u, n);
    }
    for (int i = 0; i < N_EXTRA; i++)
        blob_piece(&b, EXTRA_SCORE[i], EXTRA[i], strlen(EXTRA[i]));
    return b;
}

static char *path_in(const char *sub, const char *name)
{
    static char p[2][512];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s/%s", g_dir, sub, name);
    return p[k];
}

static cJSON *read_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(s);
    free(s);
    assert_non_null(j);
    return j;
}

static void expect_ids(const tok *t, const char *text, int add_special, const int32_t *want, int n)
{
    int32_t ids[64];
    int64_t k = tok_encode(t, text, strlen(text), add_special, ids, 64);
    assert_int_equal(k, n);
    assert_memory_equal(ids, want, (size_t)n * sizeof *ids);
}

static void test_convert_small(void **state)
{
    (void)state;
    blob b = small_blob();
    char err[256], out[512];
    snprintf(out, sizeof out, "%s/small", g_dir);
    assert_int_equal(tok_convert_llama2c(b.p, b.n, N_SMALL, out, err, sizeof err), 0);
    free(b.p);

    cJSON *j = read_json(path_in("small", "tokenizer.json"));
    const cJSON *model = cJSON_GetObjectItem(j, "model");
    assert_string_equal(cJSON_GetObjectItem(model, "type")->valuestring, "BPE");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(model, "byte_fallback")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(model, "fuse_unk")));
    const cJSON *vocab = cJSON_GetObjectItem(model, "vocab");
    assert_int_equal(cJSON_GetArraySize(vocab), N_SMALL);
    assert_int_equal(cJSON_GetObjectItem(vocab, "<s>")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(vocab, "<0x0A>")->valueint, 13);
    assert_int_equal(cJSON_GetObjectItem(vocab, "\xE2\x96\x81the")->valueint, 261);
    /* by score, highest first; ties keep id order; one piece's splits by (id left, id right) */
    static const char *const want[][2] = {
        {"\xE2\x96\x81t", "h"}, {"\xE2\x96\x81", "th"},     /* "_th" -0.5 */
        {"\xE2\x96\x81", "t"},                              /* "_t" -1 */
        {"h", "e"}, {"e", "e"},                             /* "he", "ee" -2 (tie) */
        {"\xE2\x96\x81t", "he"}, {"\xE2\x96\x81th", "e"},   /* "_the" -3 */
        {"t", "h"},                                         /* "th" -4 */
        {"\xE2\x96\x81", "\xE2\x96\x81"},                   /* "__" -1e9 */
    };
    const cJSON *merges = cJSON_GetObjectItem(model, "merges");
    assert_int_equal(cJSON_GetArraySize(merges), 9);
    for (int i = 0; i < 9; i++) {
        const cJSON *m = cJSON_GetArrayItem(merges, i);
        assert_string_equal(cJSON_GetArrayItem(m, 0)->valuestring, want[i][0]);
        assert_string_equal(cJSON_GetArrayItem(m, 1)->valuestring, want[i][1]);
    }
    cJSON_Delete(j);
    cJSON *c = read_json(path_in("small", "tokenizer_config.json"));
    assert_string_equal(cJSON_GetObjectItem(c, "bos_token")->valuestring, "<s>");
    assert_string_equal(cJSON_GetObjectItem(c, "eos_token")->valuestring, "</s>");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(c, "add_bos_token")));
    cJSON_Delete(c);

    tok *t = tok_load(path_in("small", "tokenizer.json"), err, sizeof err);
    assert_non_null(t);
    assert_int_equal(tok_vocab_size(t), N_SMALL);
    assert_int_equal(tok_bos_id(t), 1);
    /* "_the": (_,t) rank 2 first, then (_t,h) rank 0, then (_th,e) rank 6 */
    expect_ids(t, "the the", 0, (const int32_t[]){261, 261}, 2);
    expect_ids(t, "the the", 1, (const int32_t[]){1, 261, 261}, 3);
    /* "_eee": (e,e) at both positions has one rank; the leftmost merges first */
    expect_ids(t, "eee", 0, (const int32_t[]){263, 269, 266}, 3);
    /* 'x' is not a piece: byte fallback <0x78> */
    expect_ids(t, "x", 0, (const int32_t[]){263, 3 + 0x78}, 2);
    expect_ids(t, "", 1, (const int32_t[]){1}, 1);
    tok_free(t);
}

static void test_convert_rejects(void **state)
{
    (void)state;
    blob b = small_blob();
    char err[256], out[512];
    snprintf(out, sizeof out, "%s/bad", g_dir);
    assert_int_equal(tok_convert_llama2c(b.p, b.n / 2, N_SMALL, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "ends at record"));
    assert_int_equal(tok_convert_llama2c(b.p, b.n, 100, out, err, sizeof err), -1);
    b.p[4 + 3 * 8 + 5 + 5 + 6 + 8] = 'Z'; /* id 3 should hold byte 0x00 */
    assert_int_equal(tok_convert_llama2c(b.p, b.n, N_SMALL, out, err, sizeof err), -1);
    assert_non_null(strstr(err, "byte piece"));
    free(b.p);
}

/* writes a tokenizer.json with one component replaced and expects a load error naming TYPE */
static void expect_load_error(const char *field, const char *json, const char *type)
{
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/err.json", g_dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"added_tokens\":[],\"%s\":%s,%s}", field, json,
            strcmp(field, "model") ? "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
                                     "\"merges\":[\"a b\"]}" : "\"normalizer\":null");
    fclose(f);
    tok *t = tok_load(path, err, sizeof err);
    assert_null(t);
    if (!strstr(err, type))
        fail_msg("load error \"%s\" does not name %s", err, type);
}

static void test_load_errors(void **state)
{
    (void)state;
    expect_load_error("normalizer", "{\"type\":\"NFKC\"}", "NFKC");
    expect_load_error("pre_tokenizer", "{\"type\":\"Whitespace\"}", "Whitespace");
    expect_load_error("decoder", "{\"type\":\"WordPiece\"}", "WordPiece");
    expect_load_error("post_processor", "{\"type\":\"Weird\"}", "Weird");
    expect_load_error("model", "{\"type\":\"Unigram\",\"vocab\":[]}", "Unigram");
    expect_load_error("model", "{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}", "merge 1");
    /* an empty vocabulary encodes nothing: refused at load, not at every prompt */
    expect_load_error("model", "{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}", "vocab is empty");
    expect_load_error("pre_tokenizer", "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},"
                                       "\"behavior\":\"Isolated\"}", "regex");
    char err[256];
    assert_null(tok_load("/nonexistent/tokenizer.json", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent"));
}

/* the default model's tokenizer, converted by setup from the llama2.c file */
static tok *default_tok(void)
{
    char err[256];
    const char *p = getenv("CINDER_TOK_LLAMA2") ? getenv("CINDER_TOK_LLAMA2")
                                                 : "models/stories15M/tokenizer.json";
    if (access(p, R_OK) != 0)
        fail_msg("%s is missing (run scripts/setup.sh)", p);
    tok *t = tok_load(p, err, sizeof err);
    if (!t)
        fail_msg("%s: %s", p, err);
    return t;
}

static void test_default_model_facts(void **state)
{
    (void)state;
    tok *t = default_tok();
    assert_int_equal(tok_vocab_size(t), 32000);
    assert_int_equal(tok_bos_id(t), 1);
    expect_ids(t, "Once upon a time", 1, (const int32_t[]){1, 9038, 2501, 263, 931}, 5);
    expect_ids(t, "Hello world", 0, (const int32_t[]){15043, 3186}, 2);
    /* NUL is text like any other (HF: <0x00> by byte fallback) */
    int32_t ids[8];
    assert_int_equal(tok_encode(t, "a\0b \0", 5, 1, ids, 8), 6);
    assert_memory_equal(ids, ((const int32_t[]){1, 263, 3, 29890, 29871, 3}), 6 * sizeof *ids);
    assert_int_equal(tok_token_id(t, "<0x0A>"), 13);
    assert_int_equal(tok_token_id(t, "\xE2\x96\x81the"), 278);
    assert_true(tok_is_special(t, 1) && tok_is_special(t, 2) && !tok_is_special(t, 278));
    const char *dir = getenv("CINDER_TOK_LLAMA2") ? NULL : "models/stories15M/tokenizer.json";
    if (dir) {
        cJSON *j = read_json(dir);
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"),
                                                                "merges")), 61249);
        cJSON_Delete(j);
    }
    tok_free(t);
}

static void expect_decode(const tok *t, const int32_t *ids, int n, int skip, const char *want)
{
    char out[256];
    int64_t k = tok_decode(t, ids, (size_t)n, skip, out, sizeof out);
    assert_int_equal(k, (int64_t)strlen(want));
    assert_memory_equal(out, want, (size_t)k);
}

static void test_decode_rules(void **state)
{
    (void)state;
    tok *t = default_tok();
    /* <0xE2> <0x28>: an invalid run -> one U+FFFD per byte, the '(' included (as HF) */
    expect_decode(t, (const int32_t[]){229, 43}, 2, 0, "\xEF\xBF\xBD\xEF\xBF\xBD");
    expect_decode(t, (const int32_t[]){1, 15043, 2}, 3, 0, "<s> Hello</s>");
    expect_decode(t, (const int32_t[]){1, 15043, 2}, 3, 1, "Hello");
    expect_decode(t, (const int32_t[]){229, 165, 131, 29871, 29896}, 5, 0, "\xE2\xA2\x80 1");
    char out[8];
    assert_true(tok_decode(t, (const int32_t[]){32000}, 1, 0, out, sizeof out) < 0);
    assert_true(tok_decode(t, (const int32_t[]){-1}, 1, 0, out, sizeof out) < 0);
    /* needed length reported even when CAP is small */
    assert_int_equal(tok_decode(t, (const int32_t[]){15043, 3186}, 2, 0, out, 2), 11);
    assert_memory_equal(out, "He", 2);
    /* invalid UTF-8 input is refused */
    int32_t ids[8];
    assert_true(tok_encode(t, "a\xC3(", 3, 0, ids, 8) < 0);
    assert_true(tok_encode(t, "\xED\xA0\x80", 3, 0, ids, 8) < 0); /* a surrogate */
    assert_true(tok_encode(t, "\xC0\xAF", 2, 0, ids, 8) < 0);     /* overlong */
    tok_free(t);
}

static void test_llama3_facts(void **state)
{
    (void)state;
    char err[256];
    const char *p = getenv("CINDER_TOK_LLAMA3") ? getenv("CINDER_TOK_LLAMA3")
                                                 : "build/assets/llama3/tokenizer.json";
    if (access(p, R_OK) != 0)
        fail_msg("%s is missing (run scripts/fetch_assets.sh)", p);
    tok *t = tok_load(p, err, sizeof err);
    assert_non_null(t);
    assert_int_equal(tok_vocab_size(t), 128256);
    assert_int_equal(tok_bos_id(t), 128000); /* from tokenizer_config.json */
    assert_int_equal(tok_token_id(t, "<|eot_id|>"), 128009);
    assert_true(tok_is_special(t, 128009) && !tok_is_special(t, 9906));
    /* this file's post-processor is ByteLevel only: no BOS even with add_special */
    expect_ids(t, "Hello", 1, (const int32_t[]){9906}, 1);
    expect_ids(t, "<|begin_of_text|>Hello", 0, (const int32_t[]){128000, 9906}, 2);
    int32_t ids[8];
    assert_int_equal(tok_encode(t, "a\0b \0", 5, 0, ids, 8), 5);
    assert_memory_equal(ids, ((const int32_t[]){64, 188, 65, 220, 188}), 5 * sizeof *ids);
    char text[8];
    assert_int_equal(tok_decode(t, ids, 5, 0, text, sizeof text), 5);
    assert_memory_equal(text, "a\0b \0", 5);
    /* byte-level decode: invalid UTF-8 -> U+FFFD per maximal invalid part (from_utf8_lossy) */
    expect_decode(t, (const int32_t[]){127, 7}, 2, 0, "\xEF\xBF\xBD(");
    expect_decode(t, (const int32_t[]){128000, 9906, 128009}, 3, 1, "Hello");
    tok_free(t);
}

static void expect_piece(const tok *t, int32_t id, const char *bytes, size_t n_bytes, const char *text)
{
    char out[64];
    assert_int_equal(tok_token_bytes(t, id, out, sizeof out), (int64_t)n_bytes);
    assert_memory_equal(out, bytes, n_bytes);
    assert_int_equal(tok_token_text(t, id, out, sizeof out), (int64_t)strlen(text));
    assert_memory_equal(out, text, strlen(text));
}

/* Each token's bytes, joined, are the text's: for a text that starts with a space (nothing
 * to strip at the start) and holds multi-byte characters split over byte tokens. */
static void expect_pieces_join(const tok *t, const char *text)
{
    int32_t ids[64];
    int64_t n = tok_encode(t, text, strlen(text), 0, ids, 64);
    assert_true(n > 0 && n <= 64);
    char joined[512], piece[64];
    size_t len = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t k = tok_token_bytes(t, ids[i], piece, sizeof piece);
        assert_true(k >= 0 && len + (size_t)k <= sizeof joined);
        memcpy(joined + len, piece, (size_t)k);
        len += (size_t)k;
    }
    char *lead = strstr(joined, text) == joined ? "" : " "; /* SentencePiece prepends one */
    assert_int_equal(len, strlen(lead) + strlen(text));
    assert_memory_equal(joined + strlen(lead), text, strlen(text));
}

static void test_token_pieces(void **state)
{
    (void)state;
    tok *t = default_tok();
    expect_piece(t, 278, " the", 4, " the");          /* "▁the": the word-start mark as a space */
    expect_piece(t, 13, "\n", 1, "\n");                /* <0x0A> */
    expect_piece(t, 229, "\xE2", 1, "\xEF\xBF\xBD");    /* <0xE2>: part of a character */
    expect_piece(t, 2, "</s>", 4, "</s>");            /* special: its content */
    expect_piece(t, 29892, ",", 1, ",");
    assert_true(tok_token_bytes(t, 32000, NULL, 0) < 0);
    assert_true(tok_token_text(t, -1, NULL, 0) < 0);
    expect_pieces_join(t, " Once upon a time, \xE2\x9C\x93 caf\xC3\xA9 \xF0\x9F\x98\x80!");
    tok_free(t);
    char err[256];
    const char *p = getenv("CINDER_TOK_LLAMA3") ? getenv("CINDER_TOK_LLAMA3")
                                                 : "build/assets/llama3/tokenizer.json";
    t = tok_load(p, err, sizeof err);
    assert_non_null(t);
    expect_piece(t, 9906, "Hello", 5, "Hello");
    expect_piece(t, 128009, "<|eot_id|>", 10, "<|eot_id|>");
    expect_piece(t, 127, "\xC3", 1, "\xEF\xBF\xBD");     /* byte-level: one byte of a character */
    expect_pieces_join(t, " Once upon a time, \xE2\x9C\x93 caf\xC3\xA9 \xF0\x9F\x98\x80!");
    tok_free(t);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convert_small),
        cmocka_unit_test(test_convert_rejects),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_default_model_facts),
        cmocka_unit_test(test_decode_rules),
        cmocka_unit_test(test_llama3_facts),
        cmocka_unit_test(test_token_pieces),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
