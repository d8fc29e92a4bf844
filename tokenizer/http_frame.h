/* http_frame.h - checks on a request's framing, version and target that the parser
 * (http_parse.c) leaves to us, made on the loop once the headers are in (http.c). RFC 9112
 * section 6 is the reference: a request whose body length is ambiguous is refused, so that no
 * proxy in front of us reads it differently (request smuggling). http_parser itself refuses
 * Content-Length with Transfer-Encoding, a repeated Content-Length and a Transfer-Encoding
 * other than chunked. Every refusal is a 4xx/5xx with a JSON message, and the connection
 * closes after it.
 */
#ifndef CINDER_HTTP_FRAME_H
#define CINDER_HTTP_FRAME_H

#include "http_conn.h"

/* 0 when the request may proceed, else the status already answered: 400 for several
 * Transfer-Encodings, Transfer-Encoding in HTTP/1.0, HTTP/0.9, a target that is not a path
 * on this server (another host or port in absolute form, "*"); 505 for an HTTP version
 * other than 1.x; 417 for an Expect other than 100-continue. */
int http_frame_check(http_conn *c);

/* Expect: 100-continue from an HTTP/1.1 client whose body will be read: "100 Continue". */
void http_frame_continue(http_conn *c);

#endif
