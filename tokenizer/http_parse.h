/* http_parse.h - reading a request off a connection's bytes with http_parser (Debian's
 * libhttp-parser), on the event loop thread: the request line and headers into the
 * connection's head[], the body into memory, the limits and framing rules of http_server.h.
 * Chunk extensions are ignored (RFC 9112 7.1.1) and each chunk's size is checked against
 * HTTP_MAX_BODY as soon as its size line arrives.
 */
#ifndef CINDER_HTTP_PARSE_H
#define CINDER_HTTP_PARSE_H

#include "http_server.h"

/* Forgets C's request (frees its head and body), ready for the next one; keeps C->in. */
void http_parse_reset(http_conn *c);
/* Parses the N bytes of DATA. Stops after a whole request (the rest kept in C->in) and calls
 * http_server_request_ready(), or answers a malformed request (http_server_answer_error). */
void http_parse_feed(http_conn *c, const char *data, size_t n);

#endif
