/* tok.h - the tokenizer library: HF tokenizer.json files of the LLaMA family.
 *
 * Loads a tokenizer.json (normalizer, pre-tokenizer, BPE model with merges and byte fallback
 * or byte-level, added/special tokens, post-processor, decoder) and encodes/decodes exactly as
 * the HF tokenizers library does. A loaded tokenizer is immutable: encode and decode are safe
 * to call from many threads at once.
 */
#ifndef CINDER_TOK_H
#define CINDER_TOK_H

#include <stddef.h>
#include <stdint.h>

typedef struct tok tok;

/* Loads PATH (a tokenizer.json). NULL with a message in ERR on failure, including any
 * component type the library does not implement. */
tok *tok_load(const char *path, char *err, size_t n_err);
void tok_free(tok *t);

/* Encodes LEN bytes of TEXT. ADD_SPECIAL applies the post-processor (e.g. BOS for Llama).
 * Writes at most CAP ids to IDS; returns the number of ids the text needs (which may exceed
 * CAP: call again with a larger array), or negative on error (e.g. invalid UTF-8). */
int64_t tok_encode(const tok *t, const char *text, size_t len, int add_special,
                   int32_t *ids, size_t cap);

/* Decodes N ids into OUT (at most CAP bytes, not NUL-terminated), as HF's decode. SKIP_SPECIAL
 * drops special tokens. Returns the byte length needed (may exceed CAP), or negative on error
 * (an id out of range). Invalid UTF-8 from byte tokens decodes to U+FFFD, as HF does. */
int64_t tok_decode(const tok *t, const int32_t *ids, size_t n, int skip_special,
                   char *out, size_t cap);

/* One token's own text as it reads inside a decoded text (no start-of-text stripping:
 * SentencePiece's "▁Lily" is " Lily"), into OUT (at most CAP bytes): tok_token_bytes gives its
 * raw bytes (part of a UTF-8 character for some byte tokens), tok_token_text the same as UTF-8
 * with such parts as U+FFFD. Both return the length needed (may exceed CAP), or negative for
 * an id out of range. Special tokens give their content. */
int64_t tok_token_bytes(const tok *t, int32_t id, char *out, size_t cap);
int64_t tok_token_text(const tok *t, int32_t id, char *out, size_t cap);

int tok_vocab_size(const tok *t);
int tok_is_special(const tok *t, int32_t id);
/* BOS: bos_token of the tokenizer_config.json beside the loaded file, else the one token the
 * post-processor puts first; -1 if none. (Llama-3's original file has no BOS in its
 * post-processor: tok_encode(add_special = 1) adds none there, as HF; its chat template does.) */
int tok_bos_id(const tok *t);
int32_t tok_token_id(const tok *t, const char *piece); /* -1 if not in the vocabulary */

/* Converts the tokenizer of a llama2.c checkpoint (DATA: LEN bytes starting at its int32
 * max_token_length, then VOCAB_SIZE records {float32 score, int32 len, bytes}) into the HF
 * files tokenizer.json and tokenizer_config.json in OUT_DIR (created if missing), as
 * transformers' LlamaConverter writes them for Llama-2. 0, or -1 with a message in ERR. */
int tok_convert_llama2c(const void *data, size_t len, int vocab_size, const char *out_dir,
                        char *err, size_t n_err);

#endif
