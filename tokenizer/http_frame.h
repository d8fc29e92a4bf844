/* http_frame.h - checks on a request's framing and target that civetweb 1.15 does not make
 * (it takes the first Content-Length, lets Transfer-Encoding win over Content-Length, ignores
 * header lines past its 64th, and drops an absolute-form request for another host without an
 * answer). Run from civetweb's callbacks (http.c); every refusal is a 4xx with a JSON message.
 */
#ifndef CINDER_HTTP_FRAME_H
#define CINDER_HTTP_FRAME_H

struct mg_connection;

/* begin_request: 0 when the request may proceed, else the status already answered: 400 for
 * Content-Length together with Transfer-Encoding, conflicting or malformed Content-Lengths,
 * several Transfer-Encodings, Transfer-Encoding in HTTP/1.0; 417 for an Expect other than
 * 100-continue; 431 for more header lines than civetweb keeps. */
int http_frame_check(struct mg_connection *c);

/* init_connection: a new connection on this thread. */
void http_frame_conn_begin(void);
/* civetweb answered the request itself (its http_error callback). */
void http_frame_answered(void);
/* connection_close: a request civetweb parsed but neither served nor answered (an
 * absolute-form target for another host or port, or "*") gets a 400 before the close. */
void http_frame_conn_end(const struct mg_connection *c);

/* Expect: 100-continue from an HTTP/1.1 client: sends the interim "100 Continue" (once),
 * just before the body is read. */
void http_frame_continue(struct mg_connection *c);

#endif
