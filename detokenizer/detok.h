/* detok.h - incremental detokenization of one request, with stop strings.
 *
 * Each new token becomes one text delta. The text of a token is found by decoding a short
 * window of tokens twice (with and without it) and taking the difference, so SentencePiece's
 * leading spaces and byte-level merges come out right; text that ends in half a UTF-8
 * character, or that could be the start of a stop string, is held back until it is complete.
 * All state lives in the slot header (detok_* fields), so a restarted detokenizer resumes.
 */
#ifndef CINDER_DETOK_H
#define CINDER_DETOK_H

#include "../common/msg.h"
#include "../common/store.h"
#include "../common/tok/tok.h"

typedef void (*detok_emit_fn)(void *arg, const msg_text_delta *d);

/* Turns the tokens of E (up to E->n_tokens) into deltas passed to EMIT; on E->finish, emits
 * the final delta. FRESH: this process has not handled the request before (a restarted
 * detokenizer): its text is rebuilt from the first output token and only the deltas the
 * tokenizer has not received (the slot's n_delivered) are sent, so nothing is lost or
 * repeated. Returns 1 when a stop string has just matched (the caller asks the router to
 * stop the request), 0 otherwise, negative for a stale or invalid entry. */
int detok_advance(const tok *t, store *st, const detok_seq *e, int fresh, detok_emit_fn emit, void *arg);

#endif
