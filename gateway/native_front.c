/*
 * native_front.c - the endpoints of pollgate's own protocol (see
 * native_front.h): session ids, methods, acks and send bodies are checked
 * here, the held responses are handed to the transports, and every body
 * comes from framing_native.
 */
#include "native_front.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <jansson.h>

#include "access_log.h"
#include "envelope.h"
#include "envelope_batch.h"
#include "framing_native.h"
#include "gw_log.h"
#include "http_util.h"
#include "session.h"
#include "transport.h"

/* ------------------------------------------------------------- helpers */

/* Send a framing_native body, or a 500 when it could not be built (never
 * a partial one). */
static void reply_built(struct evhttp_request *req, int status, int rc,
                        const struct gw_buf *b)
{
    if (rc < 0)
        http_reply_error(req, 500, "internal_error",
                         "cannot build the response: %s", gw_strerror(rc));
    else
        http_reply_json_str(req, status, (const char *)b->data, b->len);
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
    struct framing_native_close cl = { session_close_code(s), r, strlen(r) };
    reply_built(req, 410, framing_native_gone(&b, &cl), &b);
    gw_buf_free(&b);
}

/* ---------------------------------------------------------------- open */

struct open_sink {
    struct session_sink k;
    struct http_watch watch;
    struct evhttp_request *req;
    struct session *s;
};

/* 201 with the session's id and timings (or 500 if it cannot be built:
 * then the browser never learns the id and the session idles out, since
 * closing it from inside the open callback is not safe). */
static void reply_opened(struct evhttp_request *req, struct session *s)
{
    const struct gw_config *cfg = session_config(s); /* as it opened */
    struct gw_buf b = {0};
    struct framing_native_open reply = {
        .session_id = session_id(s),
        .poll_timeout_s = cfg->poll_timeout_ms / 1000,
        .heartbeat_s = cfg->heartbeat_ms / 1000,
        .idle_timeout_s = cfg->idle_timeout_ms / 1000,
        .protocol = session_protocol(s),
    };
    int rc = framing_native_open_reply(&b, &reply);
    log_info("%s: session %.*s opened (route %s)", http_client_addr(req),
             GW_LOG_ID(session_id(s), strlen(session_id(s))),
             session_route(s)->name);
    reply_built(req, 201, rc, &b);
    gw_buf_free(&b);
}

static void open_opened(struct session_sink *k, const struct ws_close_info *f)
{
    struct open_sink *o = (struct open_sink *)k;
    struct evhttp_request *req = o->req;
    http_watch_stop(&o->watch);
    if (!f) {
        reply_opened(req, o->s);
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
    log_info("session %.*s open: browser went away before the upstream answered",
             GW_LOG_ID(session_id(o->s), strlen(session_id(o->s))));
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

static void handle_open(const struct native_ctx *ctx, struct evhttp_request *req,
                        const struct gw_route *r)
{
    char protocols[512];
    if (open_protocols(req, protocols, sizeof protocols) < 0)
        return;
    const char *addr = http_client_addr(req);

    struct open_sink *o = calloc(1, sizeof *o);
    if (!o) {
        http_reply_error(req, 503, "out_of_memory", "out of memory");
        return;
    }
    o->k.ops = &open_ops;
    o->req = req;
    struct session_open_params p = {
        .route = r,
        .protocols = protocols[0] ? protocols : NULL,
        .opener = &o->k,
    };
    struct session *s = NULL;
    enum session_open_err rc = http_session_open(req, ctx->sessions,
                                                 &session_policy_native, &p, &s);
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
    case SESSION_OPEN_DRAINING:
        free(o);
        http_out_header(req, "Retry-After", "5");
        log_info("%s: open refused: draining", addr);
        http_reply_error(req, 503, "draining",
                         "the gateway is shutting down; try again");
        return;
    case SESSION_OPEN_FAILED:
    default:
        free(o);
        http_reply_error(req, 502, "upstream_failed",
                         "cannot start the upstream connection");
        return;
    }
    o->s = s;
    access_log_note(req, NULL, session_id(s), strlen(session_id(s)), NULL);
    http_watch_start(&o->watch, req, open_gone);
}

/* ---------------------------------------------------------------- send */

/* The send body (a JSON envelope, or one text message as text/plain) into
 * env; false after answering 413 or 400 (env then cleared). */
static bool send_parse(struct evhttp_request *req, struct session *s,
                       struct envelope *env)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    const char *ct = http_in_header(req, "Content-Type");
    struct gw_error err = {0};
    int rc;
    if (ct && strncasecmp(ct, "text/plain", 10) == 0)
        rc = envelope_from_text(env, body, len, &err);
    else
        rc = envelope_parse(env, body, len, session_config(s)->max_batch, &err);
    if (rc == GW_ETOOBIG)
        http_reply_error(req, 413, "too_many_messages", "%s", err.msg);
    else if (rc < 0)
        http_reply_error(req, 400, rc == GW_EUTF8 ? "invalid_utf8" : "bad_request",
                         "%s", err.msg[0] ? err.msg : gw_strerror(rc));
    if (rc < 0)
        envelope_clear(env);
    return rc >= 0;
}

static void handle_send(struct evhttp_request *req, struct session *s)
{
    struct envelope env = {0};
    if (!send_parse(req, s, &env))
        return;
    struct envelope_batch eb;
    enum session_send_result res = envelope_batch_init(&eb, &env) < 0
        ? SESSION_SEND_FULL : session_send(s, &eb.b);
    envelope_batch_clear(&eb);
    struct gw_buf ack = {0};
    int rc = framing_native_send_ack(&ack, env.has_seq, env.seq);
    envelope_clear(&env);
    switch (res) {
    case SESSION_SEND_OK:
    case SESSION_SEND_DUPLICATE:
        reply_built(req, 200, rc, &ack);
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
    gw_buf_free(&ack);
}

/* ------------------------------------------------------------ dispatch */

/* The endpoints under P/sessions/<id>: the path's last segment ("" for
 * the session itself), its one method and its Allow list. */
enum native_action { NA_CLOSE_DELETE, NA_POLL, NA_EVENTS, NA_SEND, NA_ACK,
                     NA_CLOSE };

static const struct native_endpoint {
    const char *name;
    enum evhttp_cmd_type method;
    const char *allow;
} endpoints[] = {
    [NA_CLOSE_DELETE] = { "", EVHTTP_REQ_DELETE, "DELETE, OPTIONS" },
    [NA_POLL] = { "poll", EVHTTP_REQ_GET, "GET, OPTIONS" },
    [NA_EVENTS] = { "events", EVHTTP_REQ_GET, "GET, OPTIONS" },
    [NA_SEND] = { "send", EVHTTP_REQ_POST, "POST, OPTIONS" },
    [NA_ACK] = { "ack", EVHTTP_REQ_POST, "POST, OPTIONS" },
    [NA_CLOSE] = { "close", EVHTTP_REQ_POST, "POST, OPTIONS" },
};

/* The endpoint named action, or -1. */
static int endpoint_find(const char *action)
{
    for (size_t i = 0; i < sizeof endpoints / sizeof endpoints[0]; i++)
        if (strcmp(action, endpoints[i].name) == 0)
            return (int)i;
    return -1;
}

/*
 * The open session id names, or NULL after answering 404 (unknown, or
 * still opening) or 410 (ended). SockJS sessions live in another
 * namespace of the table and never match.
 */
static struct session *session_lookup(const struct native_ctx *ctx,
                                      struct evhttp_request *req,
                                      const struct gw_route *r,
                                      const char *id, size_t id_len)
{
    /* session_find only sees gateway-named (native) sessions; a session
     * of another route is not found under this one */
    struct session *s = session_find(ctx->sessions, id, id_len);
    if (s && session_route(s) != r && strcmp(session_route(s)->name, r->name))
        s = NULL;
    if (!s || session_state(s) == SESSION_OPENING) {
        http_reply_error(req, 404, "unknown_session", "no such session");
        return NULL;
    }
    if (session_state(s) == SESSION_FINISHED) {
        reply_session_gone(req, s);
        return NULL;
    }
    return s;
}

/*
 * Where the browser is (*pos): the ack it sends (?ack= on poll and ack;
 * ?last_event_id= or Last-Event-ID on events), applied to the session, or
 * what it acknowledged before. False after answering 400 for a missing,
 * malformed or impossible ack.
 */
static bool browser_position(struct evhttp_request *req, struct session *s,
                             enum native_action a, struct evkeyvalq *params,
                             uint64_t *pos)
{
    const char *v = NULL;
    if (a == NA_POLL || a == NA_ACK)
        v = http_query(req, params, "ack");
    else if (a == NA_EVENTS) {
        v = http_query(req, params, "last_event_id");
        if (!v)
            v = http_in_header(req, "Last-Event-ID");
    }
    if (a == NA_ACK && !v) {
        http_reply_error(req, 400, "bad_request", "ack is required");
        return false;
    }
    if (!v) {
        *pos = session_acked(s);
        return true;
    }
    if (!parse_ack(req, v, a == NA_EVENTS ? "last_event_id" : "ack", pos))
        return false;
    if (session_ack(s, *pos) < 0) {
        http_reply_error(req, 400, "bad_ack",
                         "ack %llu is beyond the last message sent",
                         (unsigned long long)*pos);
        return false;
    }
    return true;
}

/* An open session's endpoint, method already checked. */
static void session_dispatch(const struct native_ctx *ctx,
                             struct evhttp_request *req, struct session *s,
                             enum native_action a)
{
    session_touch(s);
    if (a == NA_CLOSE_DELETE || a == NA_CLOSE) {
        /* Already closed from the other side (upstream, max_lifetime,
         * overflow): the browser did not close it, so it learns the code
         * the upstream saw, not a 204 that reads as its own 1000. */
        bool closed = session_state(s) == SESSION_CLOSED;
        log_info("%s: session %.*s closed by the browser%s",
                 http_client_addr(req),
                 GW_LOG_ID(session_id(s), strlen(session_id(s))),
                 closed ? " (already closed)" : "");
        session_close_by_browser(s);
        if (closed)
            reply_session_gone(req, s);
        else
            http_reply_empty(req, 204);
        return;
    }
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    uint64_t pos;
    if (!browser_position(req, s, a, &params, &pos))
        goto out;
    /* An ack (also a poll's) of the last message after a stream wrote the
     * close ends it; a resumed stream is told the close again instead. */
    if (a == NA_ACK || a == NA_POLL)
        session_close_acked(s);
    if (a == NA_ACK)
        http_reply_empty(req, 204);
    else if (session_state(s) == SESSION_FINISHED)
        reply_session_gone(req, s);
    else if (a == NA_POLL)
        transport_poll_handle(ctx->tctx, req, s, pos);
    else if (a == NA_EVENTS)
        transport_sse_handle(ctx->tctx, req, s, pos);
    else
        handle_send(req, s);
out:
    evhttp_clear_headers(&params);
}

static void handle_session_request(const struct native_ctx *ctx,
                                   struct evhttp_request *req,
                                   const struct gw_route *r,
                                   const char *id, size_t id_len,
                                   const char *action)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    int a = endpoint_find(action);
    if (a < 0) {
        http_reply_error(req, 404, "not_found", "no such endpoint");
        return;
    }
    if (m == EVHTTP_REQ_OPTIONS) {
        http_cors_preflight(req, endpoints[a].allow);
        return;
    }
    if (m != endpoints[a].method) {
        http_method_not_allowed(req, endpoints[a].allow);
        return;
    }
    struct session *s = session_lookup(ctx, req, r, id, id_len);
    if (s)
        session_dispatch(ctx, req, s, (enum native_action)a);
}

/* The route prefix len of r as a request path starts with it ("/" is
 * the empty prefix, as in the route match). */
static size_t route_prefix_len(const struct gw_route *r)
{
    return strcmp(r->path, "/") == 0 ? 0 : strlen(r->path);
}

/* path[0..end) ends with "/sessions/" + the segment at id..end: the
 * session it names, if its route's path is what comes before. */
static const struct gw_route *session_at(struct session_table *t,
                                         const char *path, const char *id,
                                         size_t id_len, const char **rest)
{
    static const char seg[] = "/sessions/";
    size_t n = sizeof seg - 1;
    if (id_len == 0 || (size_t)(id - path) < n || memcmp(id - n, seg, n) != 0)
        return NULL;
    struct session *s = session_find(t, id, id_len);
    if (!s)
        return NULL;
    const struct gw_route *r = session_route(s);
    size_t plen = (size_t)(id - n - path);
    if (route_prefix_len(r) != plen || strncmp(path, r->path, plen) != 0)
        return NULL;
    *rest = path + plen;
    return r;
}

const struct gw_route *native_front_session_route(struct session_table *t,
                                                  const char *path,
                                                  const char **rest)
{
    if (!strstr(path, "/sessions/"))
        return NULL;
    const char *last = strrchr(path, '/');
    /* "<P>/sessions/<id>" */
    const struct gw_route *r = session_at(t, path, last + 1, strlen(last + 1),
                                          rest);
    if (r || last == path)
        return r;
    /* "<P>/sessions/<id>/<action>" */
    const char *prev = last - 1;
    while (prev > path && *prev != '/')
        prev--;
    return session_at(t, path, prev + 1, (size_t)(last - prev - 1), rest);
}

void native_handle(const struct native_ctx *ctx, struct evhttp_request *req,
                   const struct gw_route *r, const char *rest)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (strcmp(rest, "/sessions") == 0) {
        if (m == EVHTTP_REQ_OPTIONS)
            http_cors_preflight(req, "POST, OPTIONS");
        else if (m == EVHTTP_REQ_POST) {
            access_log_note(req, NULL, NULL, 0, "open");
            handle_open(ctx, req, r);
        }
        else
            http_method_not_allowed(req, "POST, OPTIONS");
        return;
    }
    if (strncmp(rest, "/sessions/", 10) == 0) {
        const char *id = rest + 10;
        const char *slash = strchr(id, '/');
        size_t id_len = slash ? (size_t)(slash - id) : strlen(id);
        const char *action = slash ? slash + 1 : "";
        if (id_len > 0 && !strchr(action, '/')) {
            access_log_note(req, NULL, id, id_len, *action ? action : "close");
            handle_session_request(ctx, req, r, id, id_len, action);
            return;
        }
    }
    http_reply_error(req, 404, "not_found", "no such endpoint");
}
