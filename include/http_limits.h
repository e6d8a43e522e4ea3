/*
 * http_limits.h - connection limits and strict request framing under evhttp.
 *
 * libevent 2.1's evhttp has no connection limit, no header deadline and a
 * lenient parser (duplicate Content-Length, unknown Transfer-Encoding,
 * "+5" lengths, NUL in header values are all accepted). http_limits works
 * on evhttp's own bufferevent (evhttp_set_bevcb: a plain socket one, or
 * whatever the caller makes, e.g. bufferevent_openssl, whose input holds
 * the plaintext): a callback on its input buffer sees every byte as it
 * arrives, before evhttp's read callback, and frames the stream itself
 * (request heads, Content-Length and chunked bodies). A head reaches
 * evhttp only complete and checked (an incomplete one is held aside, off
 * the input buffer, until it is); body bytes stay where they are. No
 * extra bufferevent, no copy of bodies.
 *
 * A refused connection or request is answered through evhttp itself: at
 * the refused head's place evhttp gets a synthetic request for a secret
 * path (/.pollgate-refused-<random>/<status>) with "Connection: close",
 * and a refused chunked body is ended there with a last chunk holding a
 * secret mark;
 * everything the client sends after is dropped, and http_limits_request()
 * answers. When evhttp then closes a connection whose request was
 * refused, the socket lingers (nginx's lingering close): its write side
 * is shut after the answer, and what the client still sends is read and
 * discarded for at most [gateway] lingering_time / lingering_timeout /
 * lingering_bytes, so that a client still sending gets the answer rather
 * than a reset.
 *
 * The end of a connection is learnt from evhttp's close callback, which
 * http_limits therefore owns: other modules set theirs through
 * http_limits_set_closecb().
 */
#ifndef HTTP_LIMITS_H
#define HTTP_LIMITS_H

/* Path prefix of the synthetic refusals (a secret token follows). */
#define HTTP_LIMITS_REFUSE_PREFIX "/.pollgate-refused-"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evhttp;
struct evhttp_request;
struct gw_config;

/* Limits on one request head (the byte counts include the line ends). */
#define HTTP_LIMITS_HEAD_MAX (16 * 1024)   /* request line + headers */
#define HTTP_LIMITS_LINE_MAX (8 * 1024)    /* one header line */
#define HTTP_LIMITS_HEADERS_MAX 100        /* header lines */

/* What a request head says about the body that follows it. */
struct http_head_info {
    int status;          /* 0: acceptable; else the HTTP status to refuse with */
    const char *why;     /* static text for the log when status != 0 */
    bool http10;         /* HTTP/1.0 (else 1.1) */
    bool chunked;        /* Transfer-Encoding: chunked */
    bool upgrade;        /* has an Upgrade header: the rest is not HTTP */
    uint64_t length;     /* Content-Length (0 when absent) */
};

/*
 * Check one complete request head p[0..n) (request line, header lines, the
 * empty line; CRLF or bare LF line ends). Pure function; fills *out and
 * returns out->status.
 */
int http_limits_check_head(const char *p, size_t n, struct http_head_info *out);

/* Check a request line alone (no line end): 0, 400 or 505. */
int http_limits_check_request_line(const char *p, size_t n, bool *http10);

struct http_limits_stats {
    uint64_t connections;          /* open browser connections */
    uint64_t refused_max;          /* refused: max_connections */
    uint64_t refused_per_client;   /* refused: max_connections_per_client */
    uint64_t header_timeouts;      /* cut: head not complete in header_timeout */
    uint64_t body_timeouts;        /* cut: body slower than min_body_rate */
    uint64_t bad_requests;         /* heads and bodies refused by the framing */
};

struct http_limits;

/* New limits for evhttp's connections; NULL on allocation failure.
 * Takes a reference to cfg (http_limits_set_config replaces it). */
struct http_limits *http_limits_new(struct event_base *base,
                                    const struct gw_config *cfg);
/* A reload: connections are limited by cfg from now on (a reference is
 * taken, the previous one dropped): header_timeout, min_body_rate and
 * request_timeout for what they start next, max_connections* for new
 * connections. */
void http_limits_set_config(struct http_limits *lim, const struct gw_config *cfg);
/* Frees the counters and closes lingering sockets; connections still
 * open keep working unchecked, so free it after evhttp_free. NULL is a
 * no-op. */
void http_limits_free(struct http_limits *lim);

/* Check http's connections (evhttp_set_bevcb: plain sockets). */
void http_limits_attach(struct http_limits *lim, struct evhttp *http);

/* The same for connections whose bufferevent make(base, arg) creates
 * (e.g. TLS); make returning NULL lets evhttp make a plain one,
 * unchecked. At most 4 servers per limits object. */
struct bufferevent;
void http_limits_attach_with(struct http_limits *lim, struct evhttp *http,
                             struct bufferevent *(*make)(struct event_base *, void *),
                             void *arg);

/* evhttp_connection_set_closecb for connections http_limits checks (it
 * owns their close callback and calls this one first); for any other
 * connection it is evhttp_connection_set_closecb itself. */
struct evhttp_connection;
void http_limits_set_closecb(struct evhttp_connection *evcon,
                             void (*cb)(struct evhttp_connection *, void *),
                             void *arg);

/*
 * The request callback's first step: answers the synthetic refusals, maps
 * evhttp's errors to the right status (a corrupt chunked body is 400, not
 * 413), refuses request targets that are not origin- or absolute-form and
 * invalid percent-encoding (400), and repeated query parameters (400).
 * Returns true when it answered req.
 */
bool http_limits_request(struct http_limits *lim, struct evhttp_request *req);

/* The effective connection limit (max_connections or the derived one). */
uint64_t http_limits_max_connections(const struct http_limits *lim);

const struct http_limits_stats *http_limits_stats(const struct http_limits *lim);

#endif
