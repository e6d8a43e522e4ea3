/* http_util.c - evhttp reply helpers and browser-gone detection. */
#include "http_util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>

#include "access_log.h"
#include "front_io.h"
#include "framing.h"
#include "gw_common.h"
#include "gw_config.h"
#include "gw_log.h"
#include "gw_proxy.h"
#include "http_limits.h"
#include "session.h"
#include "ws_handshake.h"

const char *http_in_header(struct evhttp_request *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

void http_out_header(struct evhttp_request *req, const char *name,
                     const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), name, value);
}

void http_add_common_headers(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

/* One evbuffer for every reply body (single-threaded): evhttp
 * moves its contents out, so it is empty again after each use and a
 * delivery allocates no evbuffer of its own. */
static struct evbuffer *out_scratch(const void *data, size_t len)
{
    static struct evbuffer *b;
    if (!b)
        b = evbuffer_new();
    if (b && len)
        evbuffer_add(b, data, len);
    return b;
}

void http_reply_bytes(struct evhttp_request *req, int status, const void *data,
                      size_t len)
{
    struct evbuffer *b = out_scratch(data, len);
    evhttp_send_reply(req, status, http_reason(status), b);
    if (b) /* an orphaned request is freed without taking the body */
        evbuffer_drain(b, evbuffer_get_length(b));
}

void http_reply_json_str(struct evhttp_request *req, int status,
                         const char *json, size_t len)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
    http_add_common_headers(req);
    http_reply_bytes(req, status, json, len);
}

void http_reply_error(struct evhttp_request *req, int status,
                      const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct gw_buf b = {0};
    gw_buf_appendf(&b, "{\"error\":\"%s\",\"message\":", code);
    framing_json_string(&b, (const uint8_t *)msg, strlen(msg),
                        FRAMING_JSON_STD);
    gw_buf_append(&b, "}", 1);
    char ub[256];
    log_debug("%s %s -> %d %s: %s", http_client_addr(req),
              http_log_uri(req, ub, sizeof ub), status, code, msg);
    http_reply_json_str(req, status, (const char *)b.data, b.len);
    gw_buf_free(&b);
}

/* Session ids in a request path are bearer secrets: the segment after
 * ".../sessions/" (native) and the one before a SockJS transport name are
 * cut to GW_LOG_ID's length, and the query is left out. */
const char *http_log_uri(struct evhttp_request *req, char *buf, size_t cap)
{
    static const char *const sjs[] = {
        "xhr", "xhr_send", "xhr_streaming", "eventsource", "htmlfile",
        "jsonp", "jsonp_send", "websocket",
    };
    const char *uri = evhttp_request_get_uri(req);
    if (!uri || !cap)
        return "?";
    size_t n = strcspn(uri, "?#");
    char path[1024];
    if (n >= sizeof path)
        n = sizeof path - 1;
    memcpy(path, uri, n);
    path[n] = 0;
    /* segments: start offsets and lengths */
    size_t st[32], ln[32], k = 0;
    for (size_t i = 0; i < n && k < 32;) {
        if (path[i] == '/') { i++; continue; }
        st[k] = i;
        while (i < n && path[i] != '/')
            i++;
        ln[k] = i - st[k];
        k++;
    }
    bool cut[32] = { false };
    for (size_t i = 0; i + 1 < k; i++)
        if (ln[i] == 8 && memcmp(path + st[i], "sessions", 8) == 0)
            cut[i + 1] = true;
    for (size_t j = 0; k >= 2 && j < sizeof sjs / sizeof *sjs; j++)
        if (ln[k - 1] == strlen(sjs[j]) &&
            memcmp(path + st[k - 1], sjs[j], ln[k - 1]) == 0)
            cut[k - 2] = true;
    size_t o = 0, prev = 0;
    for (size_t i = 0; i < k && o < cap; i++) {
        size_t keep = cut[i] ? (size_t)GW_LOG_ID_LEN(ln[i]) : ln[i];
        int w = snprintf(buf + o, cap - o, "%.*s%.*s%s", (int)(st[i] - prev),
                         path + prev, (int)keep, path + st[i],
                         keep < ln[i] ? "..." : "");
        if (w < 0)
            break;
        o += (size_t)w;
        prev = st[i] + ln[i];
    }
    if (o < cap)
        snprintf(buf + o, cap - o, "%s", path + prev);
    return buf;
}

void http_reply_empty(struct evhttp_request *req, int status)
{
    http_add_common_headers(req);
    evhttp_send_reply(req, status, http_reason(status), NULL);
}

/* Length of authority a (host[:port]) without a trailing default port. */
static size_t authority_len(const char *a, const char *default_port)
{
    size_t n = strlen(a), d = strlen(default_port);
    if (n >= d && strcasecmp(a + n - d, default_port) == 0)
        return n - d;
    return n;
}

bool http_same_origin(const char *origin, const char *host, bool tls)
{
    if (!origin || !host)
        return false;
    const char *a, *dflt;
    if (strncasecmp(origin, "https://", 8) == 0) {
        a = origin + 8;
        dflt = ":443";
    } else if (!tls && strncasecmp(origin, "http://", 7) == 0) {
        a = origin + 7;
        dflt = ":80";
    } else {
        return false;
    }
    size_t la = authority_len(a, dflt), lh = authority_len(host, dflt);
    return la && la == lh && strncasecmp(a, host, la) == 0;
}

bool http_origin_allowed(const struct gw_route *r, const char *origin,
                         const char *host, bool tls)
{
    if (r->origins_any || http_same_origin(origin, host, tls))
        return true;
    for (size_t i = 0; i < r->n_origins; i++)
        if (strcasecmp(r->origins[i], origin) == 0)
            return true;
    return false;
}

bool http_referer_origin(const char *referer, char *out, size_t cap)
{
    if (cap)
        out[0] = 0;
    if (!referer)
        return false;
    const char *scheme;
    size_t sl;
    if (strncasecmp(referer, "https://", 8) == 0) {
        scheme = "https://";
        sl = 8;
    } else if (strncasecmp(referer, "http://", 7) == 0) {
        scheme = "http://";
        sl = 7;
    } else {
        return false;
    }
    const char *a = referer + sl;
    size_t n = strcspn(a, "/?#");
    if (n == 0 || sl + n + 1 > cap)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c <= ' ' || c >= 0x7f || c == '@' || c == '\\')
            return false; /* userinfo, spaces, controls: not an origin */
    }
    memcpy(out, scheme, sl);
    memcpy(out + sl, a, n);
    out[sl + n] = 0;
    return true;
}

bool http_request_tls(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    return bev && bufferevent_openssl_get_ssl(bev) != NULL;
}

const char *http_query(struct evhttp_request *req, struct evkeyvalq *params,
                       const char *key)
{
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *q = u ? evhttp_uri_get_query(u) : NULL;
    if (!q)
        return NULL;
    if (TAILQ_EMPTY(params) && evhttp_parse_query_str(q, params) != 0)
        return NULL;
    return evhttp_find_header(params, key);
}

const char *http_peer_addr(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (!evcon)
        return "-";
    evhttp_connection_get_peer(evcon, &addr, &port);
    return addr ? addr : "-";
}

#define CLIENT_SLOTS 8 /* results alive at once (see http_util.h) */
#define MAX_XFF_HEADERS 16

const char *http_client_addr(struct evhttp_request *req)
{
    static char slots[CLIENT_SLOTS][64];
    static unsigned next;
    const char *peer = http_peer_addr(req);
    if (!gw_proxy_trusted(peer))
        return peer;
    const char *xff[MAX_XFF_HEADERS];
    size_t n = 0;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, evhttp_request_get_input_headers(req), next) {
        if (n < MAX_XFF_HEADERS && evutil_ascii_strcasecmp(kv->key, "X-Forwarded-For") == 0)
            xff[n++] = kv->value;
    }
    char *out = slots[next++ % CLIENT_SLOTS];
    gw_proxy_client(peer, xff, n, out, sizeof slots[0]);
    return out;
}

/* The browser closed or reset its connection while we hold its request. */
static void watch_closed(struct http_watch *w)
{
    struct evhttp_connection *evcon = w->evcon;
    void (*gone)(struct http_watch *) = w->gone;
    access_log_gone(evcon, w->req);
    http_watch_stop(w);
    gone(w);  /* may free w */
    /* Frees the request too: it is still on the connection. */
    evhttp_connection_free(evcon);
}

/* A FIN arrives as EV_CLOSED (EPOLLRDHUP). A reset (RST) does not: it
 * sets the socket's error, and libevent 2.1 turns EPOLLERR into
 * EV_READ|EV_WRITE, never EV_CLOSED, so a watch on EV_CLOSED alone missed
 * it (and epoll reported it at every loop turn) until a write failed,
 * which for a held poll is its answer: the session's idle timer started
 * only then. Hence EV_READ too, and a look at the socket. */
static void watch_closed_cb(evutil_socket_t fd, short what, void *arg)
{
    struct http_watch *w = arg;
    bool bytes = false;
    if (!(what & EV_CLOSED) && !gw_sock_peer_gone(fd, &bytes)) {
        if (bytes) {
            /* Unread bytes (pipelining) would wake a level-triggered
             * EV_READ at every loop turn: from now on only a FIN (or the
             * write that meets a reset) tells. */
            event_del(&w->closed_ev);
            event_assign(&w->closed_ev, event_get_base(&w->closed_ev), fd,
                         EV_CLOSED, watch_closed_cb, w);
            w->closed_ev_added = event_add(&w->closed_ev, NULL) == 0;
        }
        return;
    }
    watch_closed(w);
}

static void watch_front_closed_cb(void *arg)
{
    watch_closed(arg);
}

/* evhttp gave up on the connection (write error, timeout, shutdown). */
static void watch_evcon_closed_cb(struct evhttp_connection *evcon, void *arg)
{
    struct http_watch *w = arg;
    struct evhttp_request *req = w->req;
    void (*gone)(struct http_watch *) = w->gone;
    access_log_gone(evcon, req);
    http_watch_stop(w);
    /* An unfinished request is orphaned by evhttp (no connection) and is
     * ours to free; one still on the connection is freed by evhttp. */
    bool orphaned = evhttp_request_get_connection(req) == NULL;
    gone(w);
    if (orphaned)
        evhttp_request_free(req);
}

int http_watch_start(struct http_watch *w, struct evhttp_request *req,
                     void (*gone)(struct http_watch *w))
{
    w->req = req;
    w->evcon = evhttp_request_get_connection(req);
    w->gone = gone;
    w->active = false;
    w->closed_ev_added = false;
    w->front_watched = false;
    if (!w->evcon)
        return GW_ESTATE;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(w->evcon);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    struct event_base *base = evhttp_connection_get_base(w->evcon);
    if (front_io_is(bev)) {
        /* its socket is registered edge-triggered, with EPOLLRDHUP */
        w->front_watched = front_io_watch_closed(bev, watch_front_closed_cb, w);
    } else if (fd >= 0 && (event_base_get_features(base) & EV_FEATURE_EARLY_CLOSE)) {
        event_assign(&w->closed_ev, base, fd, EV_READ | EV_CLOSED | EV_PERSIST,
                     watch_closed_cb, w);
        w->closed_ev_added = event_add(&w->closed_ev, NULL) == 0;
    }
    http_limits_set_closecb(w->evcon, watch_evcon_closed_cb, w);
    w->active = true;
    return 0;
}

void http_watch_stop(struct http_watch *w)
{
    if (!w->active)
        return;
    w->active = false;
    if (w->closed_ev_added) {
        event_del(&w->closed_ev);
        w->closed_ev_added = false;
    }
    if (w->front_watched) {
        front_io_watch_closed(evhttp_connection_get_bufferevent(w->evcon), NULL, NULL);
        w->front_watched = false;
    }
    http_limits_set_closecb(w->evcon, NULL, NULL);
}

/* The upstream handshake's headers (see http_session_open) into hdr (at
 * most max entries, pointers borrowed from req and xff; xff holds xff_cap
 * bytes). Returns how many. */
static size_t forward_headers(struct evhttp_request *req, const struct gw_route *r,
                              struct ws_header *hdr, size_t max, char *xff,
                              size_t xff_cap)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *addr = http_peer_addr(req);      /* appended to X-Forwarded-For */
    const char *client = http_client_addr(req);  /* X-Real-IP */
    size_t n = 0;
    if (max < 3)
        return 0;
    for (size_t i = 0; i < r->n_forward_headers && n < max - 3; i++) {
        const char *v = evhttp_find_header(in, r->forward_headers[i]);
        if (v)
            hdr[n++] = (struct ws_header){ r->forward_headers[i], v };
    }
    const char *prev = evhttp_find_header(in, "X-Forwarded-For");
    size_t pl = prev ? strlen(prev) : 0, al = strlen(addr);
    if (prev && pl + al + 3 <= xff_cap) {
        memcpy(xff, prev, pl);
        memcpy(xff + pl, ", ", 2);
        memcpy(xff + pl + 2, addr, al + 1);
    } else {
        /* no (or an absurdly long) incoming value: just the client */
        snprintf(xff, xff_cap, "%s", addr);
    }
    hdr[n++] = (struct ws_header){ "X-Forwarded-For", xff };
    hdr[n++] = (struct ws_header){ "X-Real-IP", client };
    const char *origin = evhttp_find_header(in, "Origin");
    if (r->forward_origin && origin)
        hdr[n++] = (struct ws_header){ "Origin", origin };
    return n;
}

enum session_open_err http_session_open(struct evhttp_request *req,
                                        struct session_table *t,
                                        const struct session_policy *pol,
                                        struct session_open_params *p,
                                        struct session **out)
{
    const struct gw_route *r = p->route;
    size_t max = r->n_forward_headers + 3;
    struct ws_header *hdr = calloc(max, sizeof *hdr);
    if (!hdr) {
        log_error("%s: session open: out of memory", http_client_addr(req));
        return SESSION_OPEN_FAILED;
    }
    char xff[1024];
    p->client_addr = http_client_addr(req);
    p->headers = hdr;
    p->n_headers = forward_headers(req, r, hdr, max, xff, sizeof xff);
    enum session_open_err rc = session_open(t, pol, p, out);
    free(hdr); /* copied by the upstream client */
    p->headers = NULL;
    p->n_headers = 0;
    return rc;
}

void http_cors_preflight(struct evhttp_request *req, const char *methods)
{
    const char *rh = http_in_header(req, "Access-Control-Request-Headers");
    http_out_header(req, "Access-Control-Allow-Methods", methods);
    http_out_header(req, "Access-Control-Allow-Headers",
                    rh ? rh : "Content-Type, Last-Event-ID");
    http_out_header(req, "Access-Control-Max-Age", "600");
    http_reply_empty(req, 204);
}

const char *http_method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    case EVHTTP_REQ_TRACE: return "TRACE";
    case EVHTTP_REQ_CONNECT: return "CONNECT";
    case EVHTTP_REQ_PATCH: return "PATCH";
    }
    return "-";
}

void http_method_not_allowed(struct evhttp_request *req, const char *allow)
{
    http_out_header(req, "Allow", allow);
    http_reply_error(req, 405, "method_not_allowed",
                     "%s is not allowed here (allowed: %s)",
                     http_method_name(evhttp_request_get_command(req)), allow);
}
