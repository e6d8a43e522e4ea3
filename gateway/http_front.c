/* http_front.c - routes, CORS, limits and the protocol v1 endpoints. */
#include "http_front.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include <jansson.h>

#include "envelope.h"
#include "envelope_batch.h"
#include "framing.h"
#include "gw_log.h"
#include "http_util.h"
#include "session.h"
#include "sockjs.h"
#include "transport.h"

#define MAX_HEADERS_SIZE (16 * 1024)
#define MAX_FORWARDED 32
#define STATIC_MAX_FILE (16 * 1024 * 1024)

struct http_front {
    struct event_base *base;
    const struct gw_config *cfg;
    struct session_table *sessions;
    struct evhttp *http;
    struct transport_ctx tctx;
    char *static_root;
    struct evconnlistener *listener;
    struct event *resume_accept;
    struct sockjs_ctx sjs;
};

/* ------------------------------------------------------------- helpers */


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

static void cors_preflight(struct evhttp_request *req, const char *methods)
{
    const char *rh = http_in_header(req, "Access-Control-Request-Headers");
    http_out_header(req, "Access-Control-Allow-Methods", methods);
    http_out_header(req, "Access-Control-Allow-Headers",
               rh ? rh : "Content-Type, Last-Event-ID");
    http_out_header(req, "Access-Control-Max-Age", "600");
    http_reply_empty(req, 204);
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET: return "GET";
    case EVHTTP_REQ_POST: return "POST";
    case EVHTTP_REQ_HEAD: return "HEAD";
    case EVHTTP_REQ_PUT: return "PUT";
    case EVHTTP_REQ_DELETE: return "DELETE";
    case EVHTTP_REQ_OPTIONS: return "OPTIONS";
    default: return "other";
    }
}

static void method_not_allowed(struct evhttp_request *req, const char *allow)
{
    http_out_header(req, "Allow", allow);
    http_reply_error(req, 405, "method_not_allowed",
                     "%s is not allowed here (allowed: %s)",
                     method_name(evhttp_request_get_command(req)), allow);
}

/* Parse a seq/ack query or header value; answers 400 on a bad one. */
static bool parse_ack(struct evhttp_request *req, const char *v,
                      const char *what, uint64_t *out)
{
    if (envelope_parse_seq(v, out) < 0) {
        http_reply_error(req, 400, "bad_request",
                         "%s must be a non-negative integer", what);
        return false;
    }
    return true;
}

static void reply_session_gone(struct evhttp_request *req, struct session *s)
{
    struct gw_buf b = {0};
    const char *r = session_close_reason(s);
    gw_buf_appendf(&b, "{\"error\":\"session_closed\",\"message\":"
                   "\"the session has ended\",\"code\":%u,\"reason\":",
                   session_close_code(s));
    framing_json_string(&b, (const uint8_t *)r, strlen(r), FRAMING_JSON_STD);
    gw_buf_append(&b, "}", 1);
    http_reply_json_str(req, 410, (const char *)b.data, b.len);
    gw_buf_free(&b);
}

/* ---------------------------------------------------------------- open */

struct open_sink {
    struct session_sink k;
    struct http_watch watch;
    struct evhttp_request *req;
    struct session *s;
    const struct gw_config *cfg;
};

static void open_opened(struct session_sink *k, const struct ws_close_info *f)
{
    struct open_sink *o = (struct open_sink *)k;
    struct evhttp_request *req = o->req;
    http_watch_stop(&o->watch);
    if (!f) {
        struct session *s = o->s;
        const char *proto = session_protocol(s);
        const struct gw_config *cfg = o->cfg;
        struct gw_buf b = {0};
        gw_buf_appendf(&b, "{\"session\":\"%s\",\"poll_timeout\":%llu,"
                       "\"heartbeat\":%llu,\"idle_timeout\":%llu,\"protocol\":",
                       session_id(s),
                       (unsigned long long)(cfg->poll_timeout_ms / 1000),
                       (unsigned long long)(cfg->heartbeat_ms / 1000),
                       (unsigned long long)(cfg->idle_timeout_ms / 1000));
        if (proto)
            framing_json_string(&b, (const uint8_t *)proto, strlen(proto),
                                FRAMING_JSON_STD);
        else
            gw_buf_append(&b, "null", 4);
        gw_buf_append(&b, "}", 1);
        log_info("%s: session %s opened (route %s)", http_client_addr(req),
                 session_id(s), session_route(s)->name);
        http_reply_json_str(req, 201, (const char *)b.data, b.len);
        gw_buf_free(&b);
    } else if (f->fail == WS_FAIL_TIMEOUT) {
        http_reply_error(req, 504, "upstream_timeout",
                         "upstream did not answer in time: %s",
                         f->detail ? f->detail : "timeout");
    } else if (f->fail == WS_FAIL_HTTP_STATUS) {
        http_reply_error(req, 502, "upstream_refused",
                         "upstream refused the WebSocket upgrade: HTTP %d",
                         f->http_status);
    } else {
        http_reply_error(req, 502, "upstream_failed",
                         "upstream connection failed (%s): %s",
                         ws_client_fail_name(f->fail),
                         f->detail ? f->detail : "");
    }
    free(o);
}

static const struct session_sink_ops open_ops = {
    .opened = open_opened,
};

static void open_gone(struct http_watch *w)
{
    struct open_sink *o = (struct open_sink *)((char *)w -
                                               offsetof(struct open_sink, watch));
    log_info("session open: browser went away before the upstream answered");
    session_abort_open(o->s);
    free(o);
}

/* Subprotocol list from an optional {"protocol": "a"} or ["a","b"] body. */
static int open_protocols(struct evhttp_request *req, char *out, size_t cap)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    out[0] = 0;
    if (len == 0)
        return 0;
    json_error_t jerr;
    json_t *root = json_loadb((const char *)evbuffer_pullup(in, -1), len,
                              JSON_REJECT_DUPLICATES, &jerr);
    if (!root || !json_is_object(root)) {
        http_reply_error(req, 400, "bad_request", "body must be a JSON object%s%s",
                         root ? "" : ": ", root ? "" : jerr.text);
        json_decref(root);
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "protocol") != 0) {
            http_reply_error(req, 400, "bad_request", "unknown field \"%s\"", key);
            json_decref(root);
            return -1;
        }
    }
    v = json_object_get(root, "protocol");
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; v && !json_is_null(v) && i < n; i++) {
        json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        const char *p = json_string_value(e);
        bool ok = p && *p && strlen(out) + strlen(p) + 3 < cap;
        for (const char *c = p; ok && *c; c++)
            ok = *c > 32 && *c < 127 && !strchr("()<>@,;:\\\"/[]?={}", *c);
        if (!ok) {
            http_reply_error(req, 400, "bad_request",
                             "protocol must be a token or a list of tokens");
            json_decref(root);
            return -1;
        }
        if (out[0])
            strcat(out, ", ");
        strcat(out, p);
    }
    json_decref(root);
    return 0;
}

static void handle_open(struct http_front *f, struct evhttp_request *req,
                        const struct gw_route *r)
{
    char protocols[512];
    if (open_protocols(req, protocols, sizeof protocols) < 0)
        return;
    const char *addr = http_client_addr(req);

    struct ws_header hdr[MAX_FORWARDED + 3];
    char xff[1024];
    size_t n = http_forward_headers(req, r, hdr, MAX_FORWARDED + 3, xff, sizeof xff);

    struct open_sink *o = calloc(1, sizeof *o);
    if (!o) {
        http_reply_error(req, 503, "out_of_memory", "out of memory");
        return;
    }
    o->k.ops = &open_ops;
    o->req = req;
    o->cfg = f->cfg;
    struct session_open_params p = {
        .route = r,
        .client_addr = addr,
        .protocols = protocols[0] ? protocols : NULL,
        .headers = hdr,
        .n_headers = n,
        .opener = &o->k,
    };
    struct session *s = NULL;
    enum session_open_err rc = session_open(f->sessions, &session_policy_native,
                                            &p, &s);
    switch (rc) {
    case SESSION_OPEN_OK:
        break;
    case SESSION_OPEN_FULL:
    case SESSION_OPEN_CLIENT_FULL: {
        bool mine = rc == SESSION_OPEN_CLIENT_FULL;
        free(o);
        http_out_header(req, "Retry-After", "5");
        log_warn("%s: %s reached", addr,
                 mine ? "max_sessions_per_client" : "max_sessions (or descriptors)");
        http_reply_error(req, 503, mine ? "too_many_sessions_for_client"
                                        : "too_many_sessions",
                         mine ? "too many sessions from your address"
                              : "the gateway is at its session limit");
        return;
    }
    case SESSION_OPEN_FAILED:
    default:
        free(o);
        http_reply_error(req, 502, "upstream_failed",
                         "cannot start the upstream connection");
        return;
    }
    o->s = s;
    http_watch_start(&o->watch, req, open_gone);
}

/* ---------------------------------------------------------------- send */

static void handle_send(struct http_front *f, struct evhttp_request *req,
                        struct session *s)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    const char *ct = http_in_header(req, "Content-Type");
    struct envelope env = {0};
    struct gw_error err = {0};
    int rc;
    if (ct && strncasecmp(ct, "text/plain", 10) == 0)
        rc = envelope_from_text(&env, body, len, &err);
    else
        rc = envelope_parse(&env, body, len, f->cfg->max_batch, &err);
    if (rc == GW_ETOOBIG) {
        http_reply_error(req, 413, "too_many_messages", "%s", err.msg);
        envelope_clear(&env);
        return;
    }
    if (rc < 0) {
        http_reply_error(req, 400, rc == GW_EUTF8 ? "invalid_utf8" : "bad_request",
                         "%s", err.msg[0] ? err.msg : gw_strerror(rc));
        envelope_clear(&env);
        return;
    }
    struct envelope_batch eb;
    enum session_send_result res = envelope_batch_init(&eb, &env) < 0
        ? SESSION_SEND_FULL : session_send(s, &eb.b);
    envelope_batch_clear(&eb);
    char ack[48];
    if (env.has_seq)
        snprintf(ack, sizeof ack, "{\"ack\":%llu}", (unsigned long long)env.seq);
    else
        snprintf(ack, sizeof ack, "{\"ack\":null}");
    envelope_clear(&env);
    switch (res) {
    case SESSION_SEND_OK:
    case SESSION_SEND_DUPLICATE:
        http_reply_json_str(req, 200, ack, strlen(ack));
        break;
    case SESSION_SEND_FULL:
        http_out_header(req, "Retry-After", "1");
        http_reply_error(req, 429, "send_buffer_full",
                         "the upstream is not keeping up; retry the same batch");
        break;
    case SESSION_SEND_NOT_OPEN:
    default:
        reply_session_gone(req, s);
        break;
    }
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

static void handle_session_request(struct http_front *f,
                                   struct evhttp_request *req,
                                   const char *id, size_t id_len,
                                   const char *action)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    bool is_poll = !strcmp(action, "poll"), is_events = !strcmp(action, "events");
    bool is_send = !strcmp(action, "send"), is_ack = !strcmp(action, "ack");
    bool is_close = !strcmp(action, "close"), is_root = !*action;
    const char *allow = is_poll || is_events ? "GET, OPTIONS"
                      : is_root ? "DELETE, OPTIONS" : "POST, OPTIONS";
    if (!(is_poll || is_events || is_send || is_ack || is_close || is_root)) {
        http_reply_error(req, 404, "not_found", "no such endpoint");
        return;
    }
    if (m == EVHTTP_REQ_OPTIONS) {
        cors_preflight(req, allow);
        return;
    }
    if (((is_poll || is_events) && m != EVHTTP_REQ_GET) ||
        (is_root && m != EVHTTP_REQ_DELETE) ||
        ((is_send || is_ack || is_close) && m != EVHTTP_REQ_POST)) {
        method_not_allowed(req, allow);
        return;
    }
    /* session_find only sees gateway-named (native) sessions */
    struct session *s = session_find(f->sessions, id, id_len);
    if (!s || session_state(s) == SESSION_OPENING) {
        http_reply_error(req, 404, "unknown_session", "no such session");
        goto out;
    }
    if (session_state(s) == SESSION_FINISHED) {
        reply_session_gone(req, s);
        goto out;
    }
    session_touch(s);
    if (is_root || is_close) {
        log_info("%s: session %s closed by the browser", http_client_addr(req),
                 session_id(s));
        session_close_by_browser(s);
        http_reply_empty(req, 204);
        goto out;
    }
    uint64_t ack = 0;
    const char *v = NULL;
    if (is_poll || is_ack)
        v = http_query(req, &params, "ack");
    else if (is_events) {
        v = http_query(req, &params, "last_event_id");
        if (!v)
            v = http_in_header(req, "Last-Event-ID");
    }
    if (is_ack && !v) {
        http_reply_error(req, 400, "bad_request", "ack is required");
        goto out;
    }
    if (v) {
        if (!parse_ack(req, v, is_events ? "last_event_id" : "ack", &ack))
            goto out;
        if (session_ack(s, ack) < 0) {
            http_reply_error(req, 400, "bad_ack",
                             "ack %llu is beyond the last message sent",
                             (unsigned long long)ack);
            goto out;
        }
    }
    /* Where the browser is: its ack, or what it acknowledged before. */
    uint64_t pos = v ? ack : session_acked(s);
    if (is_ack)
        http_reply_empty(req, 204);
    else if (is_poll)
        transport_poll_handle(&f->tctx, req, s, pos);
    else if (is_events)
        transport_sse_handle(&f->tctx, req, s, pos);
    else if (is_send)
        handle_send(f, req, s);
out:
    evhttp_clear_headers(&params);
}

static void handle_route(struct http_front *f, struct evhttp_request *req,
                         const struct gw_route *r, const char *rest)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (!cors_check(req, r))
        return;
    if (strcmp(rest, "/sessions") == 0) {
        if (m == EVHTTP_REQ_OPTIONS)
            cors_preflight(req, "POST, OPTIONS");
        else if (m == EVHTTP_REQ_POST)
            handle_open(f, req, r);
        else
            method_not_allowed(req, "POST, OPTIONS");
        return;
    }
    if (strncmp(rest, "/sessions/", 10) == 0) {
        const char *id = rest + 10;
        const char *slash = strchr(id, '/');
        size_t id_len = slash ? (size_t)(slash - id) : strlen(id);
        const char *action = slash ? slash + 1 : "";
        if (id_len > 0 && !strchr(action, '/')) {
            handle_session_request(f, req, id, id_len, action);
            return;
        }
    }
    http_reply_error(req, 404, "not_found", "no such endpoint");
}

/* ------------------------------------------------------ health, static */

static void handle_health(struct http_front *f, struct evhttp_request *req)
{
    (void)f;
    http_reply_json_str(req, 200, "{\"status\":\"ok\"}", 15);
}

static void handle_stats(struct http_front *f, struct evhttp_request *req)
{
    const struct session_stats *st = session_table_stats(f->sessions);
    char b[512];
    int n = snprintf(b, sizeof b,
        "{\"sessions\":%llu,\"tombstones\":%llu,\"opened_total\":%llu,"
        "\"closed_total\":%llu,\"messages_to_browser\":%llu,"
        "\"messages_to_upstream\":%llu,\"dropped\":%llu,\"binary_dropped\":%llu,"
        "\"buffered_bytes\":%llu,\"paused\":%llu}",
        (unsigned long long)st->sessions, (unsigned long long)st->tombstones,
        (unsigned long long)st->opened_total, (unsigned long long)st->closed_total,
        (unsigned long long)st->messages_in, (unsigned long long)st->messages_out,
        (unsigned long long)st->dropped, (unsigned long long)st->binary_dropped,
        (unsigned long long)st->buffered_bytes,
        (unsigned long long)st->paused);
    http_reply_json_str(req, 200, b, (size_t)n);
}

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
        method_not_allowed(req, "GET, HEAD");
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

static void request_cb(struct evhttp_request *req, void *arg)
{
    struct http_front *f = arg;
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
    const struct gw_route *r = sockjs_match(f->cfg, path, &ridx, &rest);
    if (r) {
        sockjs_handle(&f->sjs, req, r, ridx, rest);
        return;
    }
    r = route_match(f->cfg, path, &rest);
    if (r && (strncmp(rest, "/sessions", 9) == 0 || !f->static_root)) {
        handle_route(f, req, r, rest);
        return;
    }
    if (strcmp(path, "/health") == 0) {
        handle_health(f, req);
        return;
    }
    if (strcmp(path, "/stats") == 0) {
        handle_stats(f, req);
        return;
    }
    if (f->static_root) {
        handle_static(f, req, path);
        return;
    }
    http_reply_error(req, 404, "not_found", "no such endpoint");
}

/* accept() failed hard (EMFILE/ENFILE: out of descriptors). libevent would
 * retry at once, forever: stop accepting for a moment instead, so the
 * pending connections wait in the backlog while sessions end. */
/* The listener's user pointer belongs to evhttp (evhttp_bind_listener sets
 * it to its own socket record), so the front is found here instead: one
 * HTTP front per process. */
static struct http_front *accept_front;

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)arg;
    struct http_front *f = accept_front;
    int err = EVUTIL_SOCKET_ERROR();
    log_warn("accept failed: %s; pausing accepts for 250 ms",
             evutil_socket_error_to_string(err));
    evconnlistener_disable(l);
    struct timeval tv = { 0, 250000 };
    event_add(f->resume_accept, &tv);
}

static void resume_accept_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct http_front *f = arg;
    evconnlistener_enable(f->listener);
}

static int listen_start(struct http_front *f)
{
    const struct gw_config *cfg = f->cfg;
    char text[300];
    struct sockaddr_storage ss;
    int sslen = sizeof ss;
    snprintf(text, sizeof text, strchr(cfg->listen_host, ':') ? "[%s]:%u" : "%s:%u",
             cfg->listen_host, cfg->listen_port);
    if (evutil_parse_sockaddr_port(text, (struct sockaddr *)&ss, &sslen) != 0) {
        log_error("listen = %s: not a numeric address", text);
        return GW_EINVAL;
    }
    f->resume_accept = evtimer_new(f->base, resume_accept_cb, f);
    f->listener = evconnlistener_new_bind(f->base, NULL, NULL,
        LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        1024, (struct sockaddr *)&ss, sslen);
    if (!f->listener || !f->resume_accept) {
        log_error("cannot listen on %s: %s", text, strerror(errno));
        return GW_EIO;
    }
    accept_front = f;
    evconnlistener_set_error_cb(f->listener, accept_error_cb);
    if (!evhttp_bind_listener(f->http, f->listener)) {
        log_error("cannot listen on %s", text);
        return GW_EIO;
    }
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
    f->cfg = cfg;
    f->sessions = sessions;
    f->static_root = static_root ? strdup(static_root) : NULL;
    f->http = evhttp_new(base);
    if (!f->http || transport_ctx_init(&f->tctx, base, cfg) < 0) {
        http_front_free(f);
        return NULL;
    }
    f->sjs = (struct sockjs_ctx){ .base = base, .cfg = cfg, .sessions = sessions,
                                  .tv_heartbeat = f->tctx.tv_heartbeat };
    f->sjs.tctx = (struct sockjs_tctx){ base, f->tctx.tv_heartbeat };
    /* Bodies over max_body get our JSON 413 from request_cb. evhttp's own
     * limit sits above it (twice max_body) so that only grossly oversized
     * requests meet libevent 2.1's built-in 413, which is an HTML page it
     * sends as soon as the declared Content-Length passes it (libevent 2.1
     * has no hook to replace that page). Every method evhttp knows reaches
     * us, so a wrong one gets a JSON 405 rather than libevent's HTML 501. */
    evhttp_set_max_body_size(f->http, (ev_ssize_t)(cfg->max_body > INT64_MAX / 2
                                                   ? INT64_MAX : cfg->max_body * 2));
    evhttp_set_max_headers_size(f->http, MAX_HEADERS_SIZE);
    /* Reading a request (and idling between keep-alive requests) and a
     * write that makes no progress (a browser that stopped reading a
     * stream) are both bounded; a held poll or an idle stream reads and
     * writes nothing, so this does not cut them. */
    struct timeval io;
    gw_ms_to_tv(cfg->request_timeout_ms, &io);
    evhttp_set_timeout_tv(f->http, &io);
    evhttp_set_allowed_methods(f->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
                               EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                               EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                               EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
                               EVHTTP_REQ_PATCH);
    evhttp_set_default_content_type(f->http, "application/json");
    evhttp_set_gencb(f->http, request_cb, f);
    if (listen_start(f) < 0) {
        http_front_free(f);
        return NULL;
    }
    return f;
}

void http_front_stop_accepting(struct http_front *f)
{
    if (f && f->listener)
        evconnlistener_disable(f->listener);
    if (f && f->resume_accept)
        event_del(f->resume_accept);
}

void http_front_free(struct http_front *f)
{
    if (!f)
        return;
    if (f->http)
        evhttp_free(f->http);  /* frees the bound listener too */
    else if (f->listener)
        evconnlistener_free(f->listener);
    if (f->resume_accept)
        event_free(f->resume_accept);
    if (accept_front == f)
        accept_front = NULL;
    free(f->static_root);
    free(f);
}
