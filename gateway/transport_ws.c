/*
 * transport_ws.c - a browser WebSocket connection as a session sink (see
 * transport_ws.h).
 *
 * Ownership: the sink (struct tws) owns its ws_server and, until it ends
 * it, its session (a SESSION_ID_PRIVATE one: no URL reaches it). It is
 * freed in exactly two places: ws_server's on_close (after ending the
 * session) and, for raw connections not accepted yet, where the held
 * request is answered or went away.
 *
 * Why a held browser message is retried on a timer: the session core has
 * no "upstream drained" notification (session_upstream_ops has none);
 * reading from the browser is paused meanwhile, so the retry costs one
 * timer per stalled connection and nothing grows.
 */
#include "transport_ws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/http.h>

#include "envelope.h"
#include "envelope_batch.h"
#include "framing.h"
#include "framing_sockjs.h"
#include "access_log.h"
#include "gw_log.h"
#include "http_util.h"
#include "session.h"
#include "transport_stream.h"
#include "ws_server.h"

#define TWS_RETRY_MS 20            /* held browser message: next try */
#define TWS_OUTPUT_MIN (16 * 1024)
#define TWS_OUTPUT_MAX (1024 * 1024)
#define SJS_CLOSE_TRY_AGAIN 1013

struct tws {
    struct session_sink k;          /* first: the session's view */
    const struct transport_ws_ctx *ctx;
    const struct gw_config *cfg;    /* a reference: the config current at
                                       the upgrade (route is one of its) */
    const struct timeval *tv_heartbeat; /* its heartbeat (common) */
    const struct gw_route *route;
    enum transport_ws_kind kind;
    struct evhttp_request *req;     /* raw: held until the upstream opened */
    struct http_watch watch;        /* raw: while held */
    struct ws_server *ws;
    struct session *s;              /* ours until ended or detached */
    struct event *retry;            /* held message retry; deferred end */
    struct event *hb;               /* SockJS heartbeat */
    uint8_t *held;                  /* browser message the upstream could
                                       not take yet */
    size_t held_len;
    bool held_binary, has_held;
    bool opened;                    /* upstream open, "o" sent (SockJS) */
    bool close_sent;                /* the close went to the browser */
    bool end_pending;               /* accept failed: end from the loop */
};

/* Reused for every SockJS frame (single-threaded). */
static struct gw_buf frame_scratch, b64_scratch;

static void trim(struct gw_buf *b)
{
    if (b->cap > 1 << 20)
        gw_buf_free(b);
    else
        gw_buf_reset(b);
}

static void tws_free(struct tws *t)
{
    if (!t)
        return;
    if (t->retry)
        event_free(t->retry);
    if (t->hb)
        event_free(t->hb);
    ws_server_free(t->ws);
    gw_config_unref(t->cfg);
    free(t->held);
    free(t);
}

/* ----------------------------------------------------------- toward */

/* A close code the browser may receive for the session's close. */
static uint16_t browser_code(uint16_t code)
{
    if (code == WS_CLOSE_NO_STATUS)
        return 0;
    if (!ws_close_code_valid(code))
        return WS_CLOSE_INTERNAL; /* 1006 and the like: the upstream failed */
    return code;
}

/* Send the close (SockJS: c[code,reason] first); false if the output is
 * full (on_drained brings us back). */
static bool send_close(struct tws *t, uint16_t code, const char *reason)
{
    if (t->close_sent || !t->ws)
        return true;
    if (t->kind == TRANSPORT_WS_SOCKJS) {
        struct gw_buf *f = &frame_scratch;
        gw_buf_reset(f);
        framing_sockjs_frame_close(f, code, reason, strlen(reason));
        int rc = ws_server_send(t->ws, false, f->data, f->len);
        trim(f);
        if (rc == GW_EFULL)
            return false;
        code = WS_CLOSE_NORMAL;
        reason = "";
    } else {
        code = browser_code(code);
    }
    t->close_sent = true;
    if (t->hb)
        event_del(t->hb);
    ws_server_close(t->ws, code, reason);
    return true;
}

/* One SockJS a[...] frame of every queued message; acknowledged only once
 * it is queued on the connection. */
static int send_sockjs_batch(struct tws *t, struct session_queue *q,
                             uint64_t *last)
{
    struct gw_buf *f = &frame_scratch, *b64 = &b64_scratch;
    size_t idx = 0, off = 0;
    struct sq_msg m;
    gw_buf_reset(f);
    framing_sockjs_frame_array_begin(f);
    while (session_queue_next(q, &idx, &off, &m)) {
        if (m.binary) { /* only the base64 policy queues binary */
            gw_buf_reset(b64);
            framing_base64_append(b64, m.data, m.len);
            framing_sockjs_frame_array_item(f, idx == 1, b64->data ? b64->data
                                    : (const uint8_t *)"", b64->len);
        } else {
            framing_sockjs_frame_array_item(f, idx == 1, m.data, m.len);
        }
        *last = m.seq;
    }
    framing_sockjs_frame_array_end(f);
    int rc = ws_server_send(t->ws, false, f->data, f->len);
    trim(f);
    trim(b64);
    return rc;
}

/* Write what the session has toward the browser, as far as the
 * connection's output limit allows; then the close once it is due. */
static void tws_flush(struct tws *t)
{
    struct session *s = t->s;
    if (!s || !t->ws || !t->opened || t->close_sent)
        return;
    struct session_queue *q = session_queue(s);
    uint64_t last = 0;
    int rc = 0;
    if (session_queue_count(q) == 0) {
        /* nothing */
    } else if (t->kind == TRANSPORT_WS_SOCKJS) {
        rc = send_sockjs_batch(t, q, &last);
        if (rc < 0)
            last = 0;
    } else {
        size_t idx = 0, off = 0;
        struct sq_msg m;
        while (session_queue_next(q, &idx, &off, &m)) {
            rc = ws_server_send(t->ws, m.binary, m.data, m.len);
            if (rc < 0)
                break;
            last = m.seq;
        }
    }
    if (last) /* written = delivered: no resume on this transport */
        session_ack(s, last);
    if (rc < 0 || t->s != s)
        return; /* full (on_drained follows) or closing */
    if (session_close_ready(s, false)) {
        if (!send_close(t, session_close_code(s), session_close_reason(s)))
            return;
        t->s = NULL;
        session_detach(s, &t->k);
        session_close_delivered(s);
        session_end(s, 0, NULL); /* nothing to keep: no URL reaches it */
    }
}

/* ------------------------------------------------------------- from */

/* "[...]" or a single JSON string (as sockjs-node takes it). */
static int parse_sockjs(struct envelope *env, const uint8_t *data, size_t len,
                        size_t max_batch)
{
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' ||
                       data[i] == '\r'))
        i++;
    if (i < len && data[i] == '"') {
        struct gw_buf b = {0};
        int rc = FRAMING_SOCKJS_SEND_NOMEM;
        if (gw_buf_append(&b, "[", 1) == 0 &&
            gw_buf_append(&b, data, len) == 0 &&
            gw_buf_append(&b, "]", 1) == 0)
            rc = framing_sockjs_parse_send(env, (const char *)b.data, b.len, max_batch);
        gw_buf_free(&b);
        return rc;
    }
    return framing_sockjs_parse_send(env, (const char *)data, len, max_batch);
}

enum fwd { FWD_OK, FWD_FULL, FWD_CLOSED };

/* One browser message to the upstream. */
static enum fwd forward(struct tws *t, bool binary, const uint8_t *data,
                        size_t len)
{
    struct session *s = t->s;
    if (!s || session_state(s) != SESSION_OPEN)
        return FWD_OK; /* the upstream is gone: dropped, the close follows */
    enum session_send_result res;
    if (t->kind == TRANSPORT_WS_RAW) {
        struct session_out_msg m = { data, len, binary };
        struct session_batch b = { .msgs = &m, .n = 1 };
        res = session_send(s, &b);
    } else {
        if (binary) {
            ws_server_close(t->ws, WS_CLOSE_UNSUPPORTED,
                            "SockJS takes text frames only");
            return FWD_CLOSED;
        }
        if (len == 0)
            return FWD_OK; /* an empty frame is ignored */
        struct envelope env = {0};
        int rc = parse_sockjs(&env, data, len, t->cfg->max_batch);
        if (rc != FRAMING_SOCKJS_SEND_OK) {
            envelope_clear(&env);
            if (rc == FRAMING_SOCKJS_SEND_EMPTY) {
                log_debug("SockJS websocket session %.*s: frame is not a "
                          "string or an array of strings, ignored",
                          GW_LOG_ID(session_id(s), strlen(session_id(s))));
                return FWD_OK;
            }
            log_info("SockJS websocket session %.*s: %s, closing",
                     GW_LOG_ID(session_id(s), strlen(session_id(s))),
                     framing_sockjs_send_strerror(rc));
            ws_server_close(t->ws, rc == FRAMING_SOCKJS_SEND_TOO_MANY
                                       ? WS_CLOSE_TOO_BIG : WS_CLOSE_PROTOCOL,
                            framing_sockjs_send_strerror(rc));
            return FWD_CLOSED;
        }
        struct envelope_batch eb;
        res = envelope_batch_init(&eb, &env) < 0 ? SESSION_SEND_FULL
                                                : session_send(s, &eb.b);
        envelope_batch_clear(&eb);
        envelope_clear(&env);
    }
    return res == SESSION_SEND_FULL ? FWD_FULL : FWD_OK;
}

static void arm_retry(struct tws *t)
{
    struct timeval tv = { 0, TWS_RETRY_MS * 1000 };
    event_add(t->retry, &tv);
}

static void ws_message_cb(struct ws_server *ws, bool binary,
                          const uint8_t *data, size_t len, void *arg)
{
    (void)ws;
    struct tws *t = arg;
    if (t->has_held) { /* cannot happen: reading is paused meanwhile */
        ws_server_close(t->ws, WS_CLOSE_INTERNAL, "message while paused");
        return;
    }
    if (forward(t, binary, data, len) != FWD_FULL)
        return;
    /* The upstream is not keeping up: hold this one, stop reading. */
    t->held = malloc(len ? len : 1);
    if (!t->held) {
        ws_server_close(t->ws, WS_CLOSE_INTERNAL, "out of memory");
        return;
    }
    memcpy(t->held, data, len);
    t->held_len = len;
    t->held_binary = binary;
    t->has_held = true;
    ws_server_pause_reading(t->ws, true);
    arm_retry(t);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct tws *t = arg;
    if (t->end_pending) {
        struct session *s = t->s;
        t->s = NULL;
        if (s) {
            session_detach(s, &t->k);
            session_end(s, WS_CLOSE_GOING_AWAY, "browser went away");
        }
        tws_free(t);
        return;
    }
    if (!t->has_held || !t->ws)
        return;
    enum fwd r = forward(t, t->held_binary, t->held, t->held_len);
    if (r == FWD_FULL) {
        arm_retry(t);
        return;
    }
    free(t->held);
    t->held = NULL;
    t->has_held = false;
    if (r == FWD_OK)
        ws_server_pause_reading(t->ws, false);
}

static void ws_drained_cb(struct ws_server *ws, void *arg)
{
    (void)ws;
    struct tws *t = arg;
    tws_flush(t);
    if (t->s && !t->close_sent && session_state(t->s) == SESSION_FINISHED)
        send_close(t, session_close_code(t->s), session_close_reason(t->s));
}

/* What the upstream learns of the browser's close. */
static void ws_close_cb(struct ws_server *ws,
                        const struct ws_server_close_info *ci, void *arg)
{
    (void)ws;
    struct tws *t = arg;
    struct session *s = t->s;
    t->s = NULL;
    if (s) {
        session_detach(s, &t->k);
        uint16_t code = WS_CLOSE_GOING_AWAY;
        char reason[WS_CONTROL_MAX];
        snprintf(reason, sizeof reason, "%s", "browser went away");
        if (t->kind == TRANSPORT_WS_SOCKJS) {
            if (ci->by_browser)
                snprintf(reason, sizeof reason, "%s", "closed by browser");
            code = ci->by_browser ? WS_CLOSE_NORMAL : WS_CLOSE_GOING_AWAY;
        } else if (ci->code == WS_CLOSE_NO_STATUS) {
            code = 0;
            reason[0] = 0;
        } else if (ws_close_code_valid(ci->code)) {
            /* the browser's (or a protocol error's) code, passed on */
            code = ci->code;
            snprintf(reason, sizeof reason, "%.*s", (int)ci->reason_len,
                     ci->reason);
        }
        log_debug("websocket session %.*s: browser closed %u (%s)",
                  GW_LOG_ID(session_id(s), strlen(session_id(s))), ci->code,
                  ci->detail);
        session_end(s, code, reason);
    }
    tws_free(t); /* ws_server_free is deferred: we are inside its callback */
}

static const struct ws_server_callbacks ws_callbacks = {
    .on_message = ws_message_cb,
    .on_drained = ws_drained_cb,
    .on_close = ws_close_cb,
};

/* ---------------------------------------------------------- session */

static void sink_wake(struct session_sink *k)
{
    tws_flush((struct tws *)k);
}

/* The session lets go (shutdown, table freed): the browser gets the
 * session's close. Not a place to call back into the session: what is
 * still queued is not delivered (only shutdown gets here with a queue). */
static void sink_detach(struct session_sink *k, enum session_detach_why why)
{
    (void)why;
    struct tws *t = (struct tws *)k;
    struct session *s = t->s;
    if (!s)
        return;
    t->s = NULL;
    if (!t->close_sent && t->ws) {
        uint16_t code = session_close_code(s);
        const char *reason = session_close_reason(s);
        if (!code) {
            code = WS_CLOSE_GOING_AWAY;
            reason = "session closed";
        }
        if (!send_close(t, code, reason) && !t->close_sent) {
            t->close_sent = true; /* output full: the close frame alone */
            ws_server_close(t->ws, t->kind == TRANSPORT_WS_SOCKJS
                                       ? WS_CLOSE_NORMAL : browser_code(code),
                            reason);
        }
    }
}

static struct ws_server_options server_options(const struct tws *t,
                                               const char *protocols)
{
    const struct gw_config *cfg = t->cfg;
    uint64_t lim = cfg->buffer_bytes / 4;
    if (lim < TWS_OUTPUT_MIN)
        lim = TWS_OUTPUT_MIN;
    if (lim > TWS_OUTPUT_MAX)
        lim = TWS_OUTPUT_MAX;
    return (struct ws_server_options){
        .max_message = cfg->max_message,
        .output_limit = (size_t)lim,
        /* [upstream] ping_interval serves browsers too */
        .ping_interval_ms = (uint32_t)cfg->ping_interval_ms,
        .protocols = protocols,
    };
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct tws *t = arg;
    if (t->ws && t->opened && !t->close_sent &&
        ws_server_pending_bytes(t->ws) == 0)
        ws_server_send(t->ws, false, "h", 1);
}

/* Raw: the 502 / 504 POST P/sessions gives for the same failure. */
static void reply_failed(struct evhttp_request *req,
                         const struct ws_close_info *f)
{
    if (f->fail == WS_FAIL_TIMEOUT)
        http_reply_error(req, 504, "upstream_timeout",
                         "upstream did not answer in time: %s",
                         f->detail ? f->detail : "timeout");
    else if (f->fail == WS_FAIL_HTTP_STATUS)
        http_reply_error(req, 502, "upstream_refused",
                         "upstream refused the WebSocket upgrade: HTTP %d",
                         f->http_status);
    else
        http_reply_error(req, 502, "upstream_failed",
                         "upstream connection failed (%s): %s",
                         ws_client_fail_name(f->fail),
                         f->detail ? f->detail : "");
}

static void sink_opened(struct session_sink *k, const struct ws_close_info *fail)
{
    struct tws *t = (struct tws *)k;
    if (t->kind == TRANSPORT_WS_RAW) {
        struct evhttp_request *req = t->req;
        t->req = NULL;
        http_watch_stop(&t->watch);
        if (fail) {
            t->s = NULL; /* released by the session core */
            reply_failed(req, fail);
            tws_free(t);
            return;
        }
        struct ws_server_options opt = server_options(t, session_protocol(t->s));
        struct gw_error err = {0};
        t->ws = ws_server_accept(req, &opt, &ws_callbacks, t, &err);
        if (!t->ws) {
            /* answered already; end the session from the loop, not inside
             * the upstream's open callback */
            log_warn("websocket session %.*s: %s",
                     GW_LOG_ID(session_id(t->s), strlen(session_id(t->s))), err.msg);
            t->end_pending = true;
            event_active(t->retry, EV_TIMEOUT, 1);
            return;
        }
    } else if (fail) {
        t->s = NULL; /* released by the session core */
        const char *why = fail->detail && *fail->detail ? fail->detail
                                                        : "upstream failed";
        send_close(t, WS_CLOSE_INTERNAL, why);
        return;
    } else {
        ws_server_send(t->ws, false, "o", 1);
        event_add(t->hb, t->tv_heartbeat);
    }
    t->opened = true;
    session_attach(t->s, &t->k);
    tws_flush(t); /* anything that came with the open */
}

static const struct session_sink_ops tws_ops = {
    .wake = sink_wake,
    .detach = sink_detach,
    .opened = sink_opened,
};

/* Raw: the browser left while the upstream handshake was under way. */
static void held_gone(struct http_watch *w)
{
    struct tws *t = (struct tws *)((char *)w - offsetof(struct tws, watch));
    log_info("websocket session %.*s: browser went away before the upstream "
             "answered", GW_LOG_ID(session_id(t->s), strlen(session_id(t->s))));
    t->req = NULL;
    session_abort_open(t->s);
    t->s = NULL;
    tws_free(t);
}

/* ------------------------------------------------------------ entry */

static enum session_binary binary_policy(const struct gw_route *r,
                                         enum transport_ws_kind kind)
{
    if (kind == TRANSPORT_WS_RAW)
        return SESSION_BINARY_PASS;
    switch ((enum gw_sockjs_binary)r->sockjs_binary) {
    case GW_SOCKJS_BINARY_DROP: return SESSION_BINARY_DROP;
    case GW_SOCKJS_BINARY_CLOSE: return SESSION_BINARY_CLOSE;
    default: return SESSION_BINARY_PASS;
    }
}

/* Could not open a session: raw answers the request, SockJS a c[] frame. */
static void open_refused(struct tws *t, struct evhttp_request *req,
                         enum session_open_err rc)
{
    bool full = rc == SESSION_OPEN_FULL || rc == SESSION_OPEN_CLIENT_FULL;
    if (t->kind == TRANSPORT_WS_SOCKJS) {
        send_close(t, full ? SJS_CLOSE_TRY_AGAIN : WS_CLOSE_INTERNAL,
                   full ? "Too many sessions, try again later"
                        : "Cannot start the upstream connection");
        return; /* freed when the connection has closed */
    }
    if (full) {
        http_out_header(req, "Retry-After", "5");
        http_reply_error(req, 503, rc == SESSION_OPEN_CLIENT_FULL
                                       ? "too_many_sessions_for_client"
                                       : "too_many_sessions",
                         "the gateway is at its session limit");
    } else {
        http_reply_error(req, 502, "upstream_failed",
                         "cannot start the upstream connection");
    }
    tws_free(t);
}

void transport_ws_handle(const struct transport_ws_ctx *ctx,
                         struct evhttp_request *req, const struct gw_route *r,
                         enum transport_ws_kind kind)
{
    struct ws_upgrade up;
    const char *addr = http_client_addr(req);
    if (ws_server_check(req, &up) < 0) {
        log_info("%s: websocket upgrade refused: %d %s", addr, up.status,
                 up.body[0] ? up.body : up.reason);
        ws_server_reject(req, &up);
        return;
    }
    struct tws *t = calloc(1, sizeof *t);
    if (t) {
        t->retry = event_new(ctx->base, -1, 0, retry_cb, t);
        if (kind == TRANSPORT_WS_SOCKJS)
            t->hb = event_new(ctx->base, -1, EV_PERSIST, heartbeat_cb, t);
    }
    if (!t || !t->retry || (kind == TRANSPORT_WS_SOCKJS && !t->hb)) {
        tws_free(t);
        http_reply_error(req, 503, "out_of_memory", "out of memory");
        return;
    }
    t->k.ops = &tws_ops;
    t->k.transport = kind == TRANSPORT_WS_RAW ? "ws" : "websocket";
    t->ctx = ctx;
    t->cfg = gw_config_ref(ctx->cfg);
    t->tv_heartbeat = transport_common_tv(ctx->base, ctx->cfg->heartbeat_ms,
                                          ctx->tv_heartbeat);
    t->route = r;
    t->kind = kind;

    /* Raw: the browser's subprotocols are offered upstream (copied by
     * session_open, so they may point into the request). */
    char protocols[512] = "";
    if (kind == TRANSPORT_WS_RAW && up.protocols)
        snprintf(protocols, sizeof protocols, "%s", up.protocols);
    if (kind == TRANSPORT_WS_SOCKJS) {
        /* SockJS answers 101 at once and says "o" once the upstream is
         * open. */
        struct ws_server_options opt = server_options(t, NULL);
        struct gw_error err = {0};
        t->ws = ws_server_accept(req, &opt, &ws_callbacks, t, &err);
        if (!t->ws) {
            log_warn("%s: websocket: %s", addr, err.msg);
            tws_free(t);
            return;
        }
    }
    struct session_open_params p = {
        .route = r,
        .protocols = protocols[0] ? protocols : NULL,
        .opener = &t->k,
    };
    const struct session_policy pol = {
        .id_kind = SESSION_ID_PRIVATE,
        .idle = SESSION_IDLE_REAP,
        .failed_open = SESSION_FAILED_OPEN_FORGET,
        .binary = binary_policy(r, kind),
    };
    enum session_open_err rc = http_session_open(req, ctx->sessions, &pol, &p,
                                                 &t->s);
    if (rc != SESSION_OPEN_OK) {
        log_warn("%s: websocket on route %s refused (%s)", addr, r->name,
                 rc == SESSION_OPEN_FAILED ? "upstream cannot start"
                                           : "session limit");
        open_refused(t, req, rc);
        return;
    }
    log_info("%s: websocket session %.*s opening (route %s, %s)", addr,
             GW_LOG_ID(session_id(t->s), strlen(session_id(t->s))), r->name,
             kind == TRANSPORT_WS_RAW ? "raw" : "SockJS");
    access_log_note(req, NULL, session_id(t->s), strlen(session_id(t->s)),
                    kind == TRANSPORT_WS_RAW ? "ws" : "websocket");
    if (kind == TRANSPORT_WS_RAW) {
        t->req = req;
        if (http_watch_start(&t->watch, req, held_gone) < 0) {
            session_abort_open(t->s);
            t->s = NULL;
            tws_free(t);
        }
    }
}
