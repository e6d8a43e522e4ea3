/*
 * http_front.c - the evhttp servers (plain and TLS, gw_listen.c binds
 * them; http_limits.c checks both): request limits, the route
 * table, route CORS and the static files (the operator's endpoints are
 * admin.c's, on their own listener). The two
 * dialects' endpoints are native_front.c's and sockjs_front.c's.
 */
#include "http_front.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/ssl.h>

#include "access_log.h"
#include "gw_listen.h"
#include "gw_log.h"
#include "gw_tls.h"
#include "http_limits.h"
#include "http_util.h"
#include "metrics.h"
#include "native_front.h"
#include "session.h"
#include "sockjs_front.h"
#include "transport.h"
#include "transport_ws.h"

#define MAX_HEADERS_SIZE (16 * 1024)
#define STATIC_MAX_FILE (16 * 1024 * 1024)

struct http_front {
    struct event_base *base;
    const struct gw_config *cfg;   /* a reference: the current config */
    struct session_table *sessions;
    struct evhttp *http;
    struct transport_ctx tctx;
    char *static_root;
    struct evhttp *https;          /* tls_listen, or NULL */
    SSL_CTX *tls_ctx;              /* current server context, or NULL */
    struct gw_listen_set *listeners;
    struct sockjs_front_ctx sjs;
    struct native_ctx native;
    struct transport_ws_ctx ws;
    struct http_limits *limits;
    struct metrics *metrics;  /* borrowed, or NULL */
    bool draining;            /* listeners closed: see http_front_set_draining */
};

/* ---------------------------------------------------------------- CORS */

/*
 * CORS for a route request. Adds the response headers for an allowed
 * Origin; answers 403 and returns false for a present but refused one.
 */
static bool cors_check(struct evhttp_request *req, const struct gw_route *r)
{
    const char *origin = http_in_header(req, "Origin");
    if (!origin)
        return true;
    if (!http_origin_allowed(r, origin, http_in_header(req, "Host"),
                             http_request_tls(req))) {
        log_info("%s: origin %s refused on route %s", http_client_addr(req),
                 origin, r->name);
        http_reply_error(req, 403, "origin_not_allowed",
                         "origin %s is not allowed on this route", origin);
        return false;
    }
    http_out_header(req, "Access-Control-Allow-Origin", origin);
    http_out_header(req, "Access-Control-Allow-Credentials", "true");
    http_out_header(req, "Access-Control-Expose-Headers", "Retry-After");
    http_out_header(req, "Vary", "Origin");
    return true;
}

/* ------------------------------------------------------------- routing */

static const struct gw_route *route_match(const struct gw_config *cfg,
                                          const char *path, const char **rest)
{
    const struct gw_route *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const struct gw_route *r = &cfg->routes[i];
        size_t n = strlen(r->path);
        if (strcmp(r->path, "/") == 0)
            n = 0;
        if (strncmp(path, r->path, n) == 0 && (path[n] == '/' || path[n] == 0) &&
            (!best || n > best_len)) {
            best = r;
            best_len = n;
        }
    }
    if (best)
        *rest = path + best_len;
    return best;
}

/* ---------------------------------------------------------- draining */

/* The length of the path segment at p (up to '/' or the end). */
static size_t seg_len(const char *p)
{
    const char *e = strchr(p, '/');
    return e ? (size_t)(e - p) : strlen(p);
}

/* Native "/sessions/<id>[/action]": the id, or NULL (an open, or not a
 * session request). */
static const char *native_id(const char *rest, size_t *len)
{
    if (strncmp(rest, "/sessions/", 10) != 0)
        return NULL;
    *len = seg_len(rest + 10);
    return *len ? rest + 10 : NULL;
}

/* Does this request belong to a session this process holds? During a
 * drain only those keep their connection: the session goes on over it.
 * SockJS: "/<server>/<session>/<transport>" under the SockJS path. */
static bool own_session(struct http_front *f, const struct gw_route *r,
                        bool sockjs, const char *rest)
{
    size_t n = 0;
    if (sockjs) {
        if (*rest != '/')
            return false;
        const char *key = rest + 1 + seg_len(rest + 1);
        if (*key != '/')
            return false;
        key++;
        n = seg_len(key);
        return n && session_find_client(f->sessions, r, key, n) != NULL;
    }
    const char *id = native_id(rest, &n);
    struct session *s = id ? session_find(f->sessions, id, n) : NULL;
    return s && session_route(s) == r;
}

/* While draining, every response except those of this process's own
 * sessions ends its connection, so that the browser's next request
 * (an open, a session of the successor) opens a new one, which reaches
 * the successor bound to the same address (binary upgrade). */
static void drain_mark(struct http_front *f, struct evhttp_request *req,
                       const struct gw_route *r, bool sockjs, const char *rest)
{
    if (!f->draining || (r && own_session(f, r, sockjs, rest)))
        return;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_remove_header(h, "Connection");
    evhttp_add_header(h, "Connection", "close");
}

/* CORS for the route, then the native protocol's endpoints. */
static void handle_route(struct http_front *f, struct evhttp_request *req,
                         const struct gw_route *r, const char *rest)
{
    if (!cors_check(req, r))
        return;
    size_t n;
    if (f->draining && native_id(rest, &n) && !own_session(f, r, false, rest)) {
        /* Most likely a session of the successor whose browser reused a
         * connection to this process: a retry on a new connection
         * reaches it (pollgate.js retries "draining" at once). */
        http_out_header(req, "Retry-After", "1");
        http_reply_error(req, 503, "draining",
                         "the gateway is shutting down; try again");
        return;
    }
    if (strcmp(rest, "/ws") == 0 && r->websocket)
        transport_ws_handle(&f->ws, req, r, TRANSPORT_WS_RAW);
    else
        native_handle(&f->native, req, r, rest);
}

/* ------------------------------------------------------ health, static */

static const char *mime_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (!dot) return "application/octet-stream";
    if (!strcmp(dot, ".html")) return "text/html; charset=utf-8";
    if (!strcmp(dot, ".js")) return "text/javascript; charset=utf-8";
    if (!strcmp(dot, ".css")) return "text/css; charset=utf-8";
    if (!strcmp(dot, ".json")) return "application/json";
    if (!strcmp(dot, ".png")) return "image/png";
    if (!strcmp(dot, ".svg")) return "image/svg+xml";
    if (!strcmp(dot, ".ico")) return "image/x-icon";
    if (!strcmp(dot, ".txt")) return "text/plain; charset=utf-8";
    return "application/octet-stream";
}

/* Only [A-Za-z0-9._-] segments, none starting with '.', no empty ones:
 * "..", hidden files and encoded tricks (%2e, backslashes) never match. */
static bool static_path_ok(const char *p)
{
    if (*p != '/')
        return false;
    for (const char *seg = p + 1; *seg;) {
        const char *end = strchr(seg, '/');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);
        if (n == 0 || seg[0] == '.')
            return false;
        for (size_t i = 0; i < n; i++) {
            char c = seg[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
                return false;
        }
        seg += n + (end ? 1 : 0);
        if (end && !*seg)
            return false;
    }
    return true;
}

static void handle_static(struct http_front *f, struct evhttp_request *req,
                          const char *path)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
        http_method_not_allowed(req, "GET, HEAD");
        return;
    }
    if (strcmp(path, "/") == 0)
        path = "/index.html";
    if (!static_path_ok(path) || strlen(path) > 256) {
        http_reply_error(req, 404, "not_found", "no such file");
        return;
    }
    char full[4096];
    snprintf(full, sizeof full, "%s%s", f->static_root, path);
    int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size > STATIC_MAX_FILE) {
        if (fd >= 0)
            close(fd);
        http_reply_error(req, 404, "not_found", "no such file");
        return;
    }
    /* The segment owns fd (closes it when freed) whatever happens next;
     * evbuffer_add_file would leak it on some failures. */
    struct evbuffer_file_segment *seg =
        evbuffer_file_segment_new(fd, 0, st.st_size, EVBUF_FS_CLOSE_ON_FREE);
    struct evbuffer *b = seg ? evbuffer_new() : NULL;
    if (!seg)
        close(fd);
    if (!b || evbuffer_add_file_segment(b, seg, 0, st.st_size) != 0) {
        if (b)
            evbuffer_free(b);
        if (seg)
            evbuffer_file_segment_free(seg);
        http_reply_error(req, 500, "internal_error", "cannot read file");
        return;
    }
    evbuffer_file_segment_free(seg); /* b holds its own reference */
    http_out_header(req, "Content-Type", mime_type(path));
    http_out_header(req, "Cache-Control", "no-cache");
    http_out_header(req, "X-Content-Type-Options", "nosniff");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

/* ------------------------------------------------------------ dispatch */

/* Every response is counted by status once it has been sent (streams
 * when they end). */
static void request_complete_cb(struct evhttp_request *req, void *arg)
{
    struct http_front *f = arg;
    if (f->metrics)
        metrics_http_request(f->metrics, evhttp_request_get_response_code(req));
    access_log_done(req);
}

static void request_cb(struct evhttp_request *req, void *arg)
{
    struct http_front *f = arg;
    evhttp_request_set_on_complete_cb(req, request_complete_cb, f);
    access_log_begin(req);
    if (http_limits_request(f->limits, req))
        return;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    if (!path) {
        /* evhttp calls us without a URI when it rejected the request:
         * a body over max_body, or malformed headers. */
        http_out_header(req, "Connection", "close");
        if (evhttp_request_get_response_code(req) == 413) {
            log_info("%s: request body over max_body (%llu bytes)",
                     http_client_addr(req), (unsigned long long)f->cfg->max_body);
            http_reply_error(req, 413, "body_too_large",
                             "request body is larger than %llu bytes",
                             (unsigned long long)f->cfg->max_body);
        } else {
            http_reply_error(req, 400, "bad_request", "malformed request");
        }
        return;
    }
    if (*path == 0)
        path = "/";
    size_t body_len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    if (body_len > f->cfg->max_body) {
        http_out_header(req, "Connection", "close");
        log_info("%s: request body of %zu bytes over max_body (%llu)",
                 http_client_addr(req), body_len,
                 (unsigned long long)f->cfg->max_body);
        http_reply_error(req, 413, "body_too_large",
                         "request body is larger than %llu bytes",
                         (unsigned long long)f->cfg->max_body);
        return;
    }
    const char *rest = NULL;
    size_t ridx = 0;
    /* An existing session's requests go to the route it opened on, as it
     * was then (a reload may have changed or removed it since). */
    const struct gw_route *r = sockjs_front_session_route(f->sessions, path, &rest);
    if (!r)
        r = sockjs_front_match(f->cfg, path, &ridx, &rest);
    if (r) {
        drain_mark(f, req, r, true, rest);
        access_log_note(req, r->name, NULL, 0, NULL);
        sockjs_front_handle(&f->sjs, req, r, ridx, rest);
        return;
    }
    r = native_front_session_route(f->sessions, path, &rest);
    if (r) {
        handle_route(f, req, r, rest);
        return;
    }
    r = route_match(f->cfg, path, &rest);
    drain_mark(f, req, r, false, rest);
    if (r && (strncmp(rest, "/sessions", 9) == 0 || strcmp(rest, "/ws") == 0 ||
              !f->static_root)) {
        access_log_note(req, r->name, NULL, 0, NULL);
        handle_route(f, req, r, rest);
        return;
    }
    if (f->static_root) {
        handle_static(f, req, path);
        return;
    }
    http_reply_error(req, 404, "not_found", "no such endpoint");
}

/* A connection accepted on tls_listen: TLS server side, with the context
 * current at accept time (a reload replaces f->tls_ctx; the SSL keeps a
 * reference to the one it was made from). */
static struct bufferevent *tls_bevcb(struct event_base *base, void *arg)
{
    struct http_front *f = arg;
    SSL *ssl = SSL_new(f->tls_ctx);
    if (!ssl)
        return NULL;
    struct bufferevent *bev = bufferevent_openssl_socket_new(base, -1, ssl,
        BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        SSL_free(ssl);
        return NULL;
    }
    /* A browser closing without close_notify is not an error. */
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* Limits and callbacks shared by the plain and the TLS server. */
static void http_setup(struct http_front *f, struct evhttp *http)
{
    const struct gw_config *cfg = f->cfg;
    /* Bodies over max_body get our JSON 413 from request_cb. evhttp's own
     * limit sits above it (twice max_body) so that only grossly oversized
     * requests meet libevent 2.1's built-in 413, which is an HTML page it
     * sends as soon as the declared Content-Length passes it (libevent 2.1
     * has no hook to replace that page). Every method evhttp knows reaches
     * us, so a wrong one gets a JSON 405 rather than libevent's HTML 501. */
    evhttp_set_max_body_size(http, (ev_ssize_t)(cfg->max_body > INT64_MAX / 2
                                                   ? INT64_MAX : cfg->max_body * 2));
    evhttp_set_max_headers_size(http, MAX_HEADERS_SIZE);
    /* Reading a request (and idling between keep-alive requests) and a
     * write that makes no progress (a browser that stopped reading a
     * stream) are both bounded; a held poll or an idle stream reads and
     * writes nothing, so this does not cut them. */
    struct timeval io;
    gw_ms_to_tv(cfg->request_timeout_ms, &io);
    evhttp_set_timeout_tv(http, &io);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                               EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                               EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
                               EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(http, "application/json");
    evhttp_set_gencb(http, request_cb, f);
}

static int listen_start(struct http_front *f)
{
    const struct gw_config *cfg = f->cfg;
    f->listeners = gw_listen_set_new(f->base);
    if (!f->listeners)
        return GW_ENOMEM;
    int rc = gw_listen_set_bind(f->listeners, f->http, cfg->listen,
                                cfg->n_listen, (int)cfg->listen_backlog, "http");
    if (rc < 0 || !cfg->n_tls_listen)
        return rc;
    struct gw_error err = {0};
    f->tls_ctx = gw_tls_server_ctx_new(cfg->front_tls_cert_file,
                                       cfg->front_tls_key_file, &err);
    if (!f->tls_ctx) {
        log_error("tls_listen: %s", err.msg);
        return GW_EINVAL;
    }
    f->https = evhttp_new(f->base);
    if (!f->https)
        return GW_ENOMEM;
    http_setup(f, f->https);
    /* The same limits and framing as plain connections: http_limits
     * reads bufferevent_openssl's input, which is the plaintext. */
    http_limits_attach_with(f->limits, f->https, tls_bevcb, f);
    return gw_listen_set_bind(f->listeners, f->https, cfg->tls_listen,
                              cfg->n_tls_listen, (int)cfg->listen_backlog,
                              "https");
}

int http_front_reload_tls(struct http_front *f)
{
    if (!f || !f->tls_ctx)
        return 0;
    struct gw_error err = {0};
    SSL_CTX *ctx = gw_tls_server_ctx_new(f->cfg->front_tls_cert_file,
                                         f->cfg->front_tls_key_file, &err);
    if (!ctx) {
        log_error("reload: tls_cert_file/tls_key_file: %s; keeping the "
                  "current certificate", err.msg);
        return GW_EINVAL;
    }
    SSL_CTX_free(f->tls_ctx); /* open connections hold their own reference */
    f->tls_ctx = ctx;
    log_info("reload: TLS certificate %s re-read", f->cfg->front_tls_cert_file);
    return 0;
}

/* The contexts the dialects and transports read the current config from
 * (sessions read their own: session_config). */
static void contexts_set(struct http_front *f)
{
    const struct gw_config *cfg = f->cfg;
    f->sjs = (struct sockjs_front_ctx){ .cfg = cfg, .sessions = f->sessions,
                                  .tctx = { f->base, f->tctx.tv_heartbeat } };
    f->ws = (struct transport_ws_ctx){ .base = f->base, .cfg = cfg,
                                       .sessions = f->sessions,
                                       .tv_heartbeat = f->tctx.tv_heartbeat };
    f->sjs.ws = f->ws;
    f->native = (struct native_ctx){ .cfg = cfg, .sessions = f->sessions,
                                     .tctx = &f->tctx };
}

int http_front_set_config(struct http_front *f, const struct gw_config *cfg)
{
    struct transport_ctx tctx;
    char *root = cfg->static_root ? strdup(cfg->static_root) : NULL;
    if ((cfg->static_root && !root) ||
        transport_ctx_init(&tctx, f->base, cfg) < 0) {
        free(root);
        log_error("reload: cannot set up the new timeouts (too many distinct "
                  "values since the start?)");
        return GW_ENOMEM;
    }
    gw_config_ref(cfg);
    gw_config_unref(f->cfg);
    f->cfg = cfg;
    f->tctx = tctx;
    free(f->static_root);
    f->static_root = root;
    contexts_set(f);
    /* new connections get the new request_timeout and body limit */
    http_setup(f, f->http);
    if (f->https)
        http_setup(f, f->https);
    http_limits_set_config(f->limits, cfg);
    return 0;
}

struct http_front *http_front_new(struct event_base *base,
                                  const struct gw_config *cfg,
                                  struct session_table *sessions,
                                  const char *static_root)
{
    struct http_front *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->base = base;
    f->cfg = gw_config_ref(cfg);
    f->sessions = sessions;
    f->static_root = static_root ? strdup(static_root) : NULL;
    f->http = evhttp_new(base);
    f->limits = http_limits_new(base, cfg);
    if (!f->http || !f->limits || transport_ctx_init(&f->tctx, base, cfg) < 0) {
        http_front_free(f);
        return NULL;
    }
    contexts_set(f);
    http_setup(f, f->http);
    http_limits_attach(f->limits, f->http);
    if (listen_start(f) < 0) {
        http_front_free(f);
        return NULL;
    }
    return f;
}

void http_front_set_metrics(struct http_front *f, struct metrics *m)
{
    f->metrics = m;
}

void http_front_set_draining(struct http_front *f)
{
    if (!f)
        return;
    f->draining = true;
    gw_listen_set_close(f->listeners);
}

void http_front_stop_accepting(struct http_front *f)
{
    if (f)
        gw_listen_set_disable(f->listeners);
}

const struct http_limits_stats *http_front_limits_stats(const struct http_front *f)
{
    return http_limits_stats(f->limits);
}

void http_front_free(struct http_front *f)
{
    if (!f)
        return;
    gw_listen_set_free(f->listeners);
    if (f->http)
        evhttp_free(f->http);  /* frees the bound listeners too */
    if (f->https)
        evhttp_free(f->https);
    SSL_CTX_free(f->tls_ctx);
    http_limits_free(f->limits); /* after evhttp_free: no connection left */
    gw_config_unref(f->cfg);
    free(f->static_root);
    free(f);
}
