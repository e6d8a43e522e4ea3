/*
 * http_util.h - small helpers over libevent's evhttp shared by the HTTP
 * front and the transports: JSON replies and errors with the common
 * headers, the client address, and noticing that a browser went away while
 * its request is held (evhttp itself stops reading once a request is read,
 * so it would only notice at the next write).
 */
#ifndef HTTP_UTIL_H
#define HTTP_UTIL_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event_struct.h>
#include <event2/http.h>

#include "session.h"

struct gw_route;
struct evhttp_request;
struct evhttp_connection;
struct evbuffer;
struct event;

/* A request header (borrowed), or NULL; add a response header. */
const char *http_in_header(struct evhttp_request *req, const char *name);
void http_out_header(struct evhttp_request *req, const char *name,
                     const char *value);

/* Cache-Control: no-store, X-Content-Type-Options: nosniff. */
void http_add_common_headers(struct evhttp_request *req);
/* Standard reason phrase for a status. */
const char *http_reason(int status);

/* Reply with a JSON body given as a string. */
void http_reply_json_str(struct evhttp_request *req, int status,
                         const char *json, size_t len);
/* {"error":"<code>","message":"<printf>"} with status; logged at debug. */
void http_reply_error(struct evhttp_request *req, int status,
                      const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Send len bytes as the whole body (status reason from http_reason). */
void http_reply_bytes(struct evhttp_request *req, int status, const void *data,
                      size_t len);
/* 204 No Content. */
void http_reply_empty(struct evhttp_request *req, int status);
/* Answer a CORS preflight (204): methods, the requested headers (or
 * Content-Type and Last-Event-ID), max age 600 s. */
void http_cors_preflight(struct evhttp_request *req, const char *methods);
/* 405 with an Allow header and a JSON error naming the method. */
void http_method_not_allowed(struct evhttp_request *req, const char *allow);

/*
 * Is origin the request's own origin? Its host[:port] must equal the Host
 * header, default ports (":80" for http, ":443" for https) being the same
 * as none. On a TLS connection only an https origin can be; on a plain one
 * both schemes are accepted, because a TLS-terminating proxy in front
 * (nginx, HAProxy) makes the browser's https page arrive as plain HTTP.
 */
bool http_same_origin(const char *origin, const char *host, bool tls);

/*
 * May a page from origin use route r? Its own origin always may (the iframe
 * transports and pages served from static_root); "*" allows any other, a
 * list allows its entries, an empty list nothing else.
 */
bool http_origin_allowed(const struct gw_route *r, const char *origin,
                         const char *host, bool tls);

/*
 * The origin ("scheme://host[:port]", scheme in lower case) of a Referer
 * value: an http or https URL whose authority is non-empty and carries no
 * userinfo, cut at its path, query or fragment. Fills out (cap bytes) and
 * returns true; false for anything else (out is then "").
 */
bool http_referer_origin(const char *referer, char *out, size_t cap);

/* Did the request arrive over TLS (a tls_listen listener)? */
bool http_request_tls(struct evhttp_request *req);

/* A query-string parameter, decoded; params is filled on first use (init
 * it with TAILQ_INIT, free with evhttp_clear_headers). NULL if absent. */
struct evkeyvalq;
const char *http_query(struct evhttp_request *req, struct evkeyvalq *params,
                       const char *key);

/* Peer address as text ("127.0.0.1", "::1"); borrowed from libevent. */
const char *http_peer_addr(struct evhttp_request *req);
/* The client's address: the peer's, or, from a [gateway] trusted_proxies
 * peer, the last X-Forwarded-For entry not itself trusted (gw_proxy.h).
 * Borrowed: valid until 8 more calls (a small ring), so use or copy it
 * at once. */
const char *http_client_addr(struct evhttp_request *req);

/* "GET", "POST"... for a log line or an answer; "-" for anything else. */
const char *http_method_name(enum evhttp_cmd_type m);

/* The request's path for a log line: session ids cut to GW_LOG_ID_LEN
 * characters, no query. Returns buf (or a constant). */
const char *http_log_uri(struct evhttp_request *req, char *buf, size_t cap);

/*
 * session_open for a browser request: p's route, protocols, opener and id
 * as the caller set them; its client address (http_client_addr) and the
 * headers of the upstream handshake are filled from req: the route's
 * forward_headers present in the request (every configured name),
 * X-Forwarded-For (the incoming value with the peer address appended, like
 * nginx's $proxy_add_x_forwarded_for), X-Real-IP (the client address), and
 * Origin if forward_origin. Returns session_open's answer;
 * SESSION_OPEN_FAILED when out of memory too.
 */
enum session_open_err http_session_open(struct evhttp_request *req,
                                        struct session_table *t,
                                        const struct session_policy *pol,
                                        struct session_open_params *p,
                                        struct session **out);

/*
 * Watch a held request for the browser going away. gone() is called at
 * most once; after it the request must not be used (it is freed or
 * orphaned-and-freed by the watch). Stop the watch before replying.
 */
struct http_watch {
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event closed_ev;   /* embedded: no allocation per request */
    bool closed_ev_added;
    bool front_watched;       /* front_io's close watch instead (see front_io.h) */
    void (*gone)(struct http_watch *w);
    bool active;
};
int http_watch_start(struct http_watch *w, struct evhttp_request *req,
                     void (*gone)(struct http_watch *w));
void http_watch_stop(struct http_watch *w);

#endif
