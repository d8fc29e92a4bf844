/* http_util.h - small HTTP helpers shared by the API files: JSON answers, errors, the
 * request body, server-sent events, a growable text buffer. */
#ifndef CINDER_HTTP_UTIL_H
#define CINDER_HTTP_UTIL_H

#include <stddef.h>

#include "http_conn.h"

typedef struct cJSON cJSON;

#define HTTP_MAX_BODY (1 << 20)

/* Sends STATUS with a JSON body; EXTRA holds additional header lines ("Name: v\r\n"). */
void http_send_json(http_conn *c, int status, const char *body, const char *extra);
/* Sends J (then frees it). */
void http_send_cjson(http_conn *c, int status, cJSON *j);
/* {"error": MSG} with STATUS (Retry-After on 503); returns STATUS. */
int http_send_error(http_conn *c, int status, const char *msg);
/* The whole request body must arrive within this (not per read; the front end answers 408). */
#define HTTP_BODY_DEADLINE_MS 10000
/* The request's body (the front end read it whole, HTTP_MAX_BODY at most) as a malloc'd
 * NUL-terminated buffer the caller frees: its length, or -500 when out of memory. */
long http_read_body(http_conn *c, char **out);
/* The message for a body that could not be read, as minus its status: -400 (incomplete,
 * malformed chunks), -408 (not all of it within HTTP_BODY_DEADLINE_MS), -413 (over
 * HTTP_MAX_BODY), -500. */
const char *http_body_error(long rc);
/* Starts a text/event-stream answer: chunked, or raw to the close for an HTTP/1.0 client. */
void http_sse_begin(http_conn *c);
/* Sends "data:" PREFIX J "\n\n" as one chunk (J freed); 0, or -1 if the client is gone. */
int http_sse_send(http_conn *c, const char *prefix, cJSON *j);
/* Sends a raw chunk (raw bytes to HTTP/1.0); 0 or -1. Zero length ends the stream. */
int http_sse_raw(http_conn *c, const char *s, size_t n);

typedef struct {
    char *p;
    size_t n, cap;
} text_buf;

int text_append(text_buf *b, const char *s, size_t n);
void text_free(text_buf *b);

#endif
