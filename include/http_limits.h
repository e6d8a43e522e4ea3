/*
 * http_limits.h - connection limits and strict request framing under evhttp.
 *
 * libevent 2.1's evhttp has no connection limit, no header deadline and a
 * lenient parser (duplicate Content-Length, unknown Transfer-Encoding,
 * "+5" lengths, NUL in header values are all accepted). http_limits sits
 * between the socket and evhttp: evhttp's bufferevent for every accepted
 * connection is a filter (evhttp_set_bevcb) whose input side frames the raw
 * byte stream itself (request heads, Content-Length and chunked bodies) and
 * checks every head before evhttp sees a byte of it, and whose output side
 * writes straight to the socket (so evhttp's "written" still means "in the
 * kernel", as with a plain socket bufferevent).
 *
 * A refused connection or request is answered through evhttp itself: the
 * filter hands evhttp a synthetic request for a secret path
 * (/.pollgate-refused-<random>/<status>) with "Connection: close" and drops
 * everything the client sends after it; http_limits_request() answers it.
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
 * cfg is borrowed (must outlive the object). */
struct http_limits *http_limits_new(struct event_base *base,
                                    const struct gw_config *cfg);
/* Frees the counters; connections still open keep working unchecked, so
 * free it after evhttp_free. NULL is a no-op. */
void http_limits_free(struct http_limits *lim);

/* Install the connection filter on http (evhttp_set_bevcb). Plain TCP
 * only: the filter writes to the socket itself. */
void http_limits_attach(struct http_limits *lim, struct evhttp *http);

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
