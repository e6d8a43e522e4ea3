/*
 * ws_server.c - one browser RFC 6455 connection, taken over from evhttp.
 *
 *   OPEN -> CLOSING -> CLOSED (on_close pending, then delivered)
 *
 * How it is put together, and why (see also ws_server.h):
 *  - The takeover keeps evhttp's bufferevent rather than dup()ing the
 *    socket: evhttp_connection_free() always calls shutdown(fd, SHUT_WR),
 *    which would half-close a duplicated descriptor too, and a TLS
 *    connection's state lives in the bufferevent anyway. evhttp disabled
 *    reading before calling the request callback and only touches the
 *    bufferevent from its own callbacks, which we replace; its timeouts
 *    are cleared. The evhttp_connection stays allocated (with the
 *    unanswered request) until we free it, which is what closes the socket.
 *    evhttp_free() can still free it under us: its close callback is ours,
 *    and reports the end.
 *  - One one-shot timer per connection, by state: pong deadline while
 *    open, close deadline while closing, delivery of on_close once closed,
 *    the real free after ws_server_free inside a callback. A persistent
 *    keepalive timer exists only with ping_interval. Both use libevent
 *    common timeouts.
 *  - Frames in: the input chain is fed to a server decoder (masked frames
 *    required) chunk by chunk; the decoder copies (unmasks) payloads, so
 *    input is drained as soon as it is fed. Frames out: unmasked, header
 *    and payload appended to the output evbuffer.
 *  - Back-pressure: a read high watermark (plain TCP only; libevent 2.1's
 *    OpenSSL bufferevent can strand decrypted bytes behind one) bounds the
 *    input; pause disables reading; sends are refused past output_limit;
 *    the write low watermark (output_limit / 2) drives on_drained.
 *
 * Known weaknesses: messages go out unfragmented; no permessage-deflate.
 */
#include "ws_server.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "access_log.h"
#include "gw_log.h"
#include "http_limits.h"
#include "http_util.h"

#define DEFAULT_MAX_MESSAGE (1024 * 1024)
#define DEFAULT_OUTPUT_LIMIT (1024 * 1024)
#define DEFAULT_CLOSE_MS 5000
#define READ_HIGH_WATERMARK (64 * 1024)
#define PROTOCOL_MAX 128

enum ws_server_state { ST_OPEN, ST_CLOSING, ST_CLOSED };

struct ws_server {
    struct event_base *base;
    struct evhttp_connection *evcon;  /* ours to free; NULL once gone */
    struct bufferevent *bev;          /* evcon's; NULL once gone */
    struct ws_decoder *dec;
    struct ws_server_callbacks cb;
    void *arg;
    char *protocol;
    uint64_t bytes_out, bytes_in;     /* frame bytes, for the access log */

    struct event *timer;              /* see the top of the file */
    struct event *ping_ev;            /* keepalive, only while open */
    uint32_t ping_ms, pong_ms, close_ms;
    size_t out_limit;

    /* what on_close will report */
    char *rep_reason;
    char *rep_detail;
    uint16_t rep_code;
    uint8_t rep_reason_len;

    uint8_t state;
    uint8_t in_cb;                    /* depth of user callbacks running */
    unsigned dead : 1;                /* ws_server_free called in a cb */
    unsigned paused : 1;
    unsigned close_sent : 1;
    unsigned close_rcvd : 1;
    unsigned by_browser : 1;
    unsigned drop_after_flush : 1;    /* drop once the output is written */
    unsigned awaiting_pong : 1;
    unsigned rx_seen : 1;             /* bytes arrived this ping interval */
    unsigned want_drained : 1;
    unsigned tls : 1;
};

static void timer_cb(evutil_socket_t fd, short what, void *arg);
static void process_input(struct ws_server *s);

/* ------------------------------------------------------------ utilities */

static void timer_arm(struct ws_server *s, uint32_t ms)
{
    struct timeval tmp;
    gw_ms_to_tv(ms, &tmp);
    const struct timeval *ct = event_base_init_common_timeout(s->base, &tmp);
    event_add(s->timer, ct ? ct : &tmp);
}

static void report_set(struct ws_server *s, uint16_t code, const char *reason,
                       size_t reason_len, const char *detail)
{
    s->rep_code = code;
    free(s->rep_reason);
    s->rep_reason = NULL;
    s->rep_reason_len = 0;
    if (reason && reason_len) {
        if (reason_len > WS_CONTROL_MAX - 2)
            reason_len = WS_CONTROL_MAX - 2;
        if ((s->rep_reason = malloc(reason_len + 1))) {
            memcpy(s->rep_reason, reason, reason_len);
            s->rep_reason[reason_len] = 0;
            s->rep_reason_len = (uint8_t)reason_len;
        }
    }
    free(s->rep_detail);
    s->rep_detail = strdup(detail);
}

static void report_detail(struct ws_server *s, const char *detail)
{
    free(s->rep_detail);
    s->rep_detail = strdup(detail);
}

/* ------------------------------------------------------------- frames out */

static int write_frame(struct ws_server *s, enum ws_opcode op,
                       const void *data, size_t len)
{
    if (!s->bev)
        return GW_ESTATE;
    if (len > (size_t)EV_SSIZE_MAX - WS_FRAME_HEADER_MAX)
        return GW_ETOOBIG;
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    size_t hlen = ws_frame_write_header(hdr, true, op, len, NULL);
    struct evbuffer *out = bufferevent_get_output(s->bev);
    if (evbuffer_expand(out, hlen + len) < 0 ||
        evbuffer_add(out, hdr, hlen) < 0 ||
        (len && evbuffer_add(out, data, len) < 0))
        return GW_ENOMEM;
    s->bytes_out += hlen + len;
    return 0;
}

/* Queue our close frame; p[WS_CONTROL_MAX] receives the payload sent. */
static int write_close(struct ws_server *s, uint16_t code, const char *reason,
                       size_t reason_len, uint8_t *p, size_t *n)
{
    *n = ws_close_payload(p, code, reason, reason_len);
    s->close_sent = 1;
    return write_frame(s, WS_OP_CLOSE, p, *n);
}

/* --------------------------------------------------------------- teardown */

static void evcon_closed_cb(struct evhttp_connection *evcon, void *arg);

/* Give the connection back to evhttp to free (closes the socket). */
static void teardown_io(struct ws_server *s)
{
    if (s->ping_ev) {
        event_free(s->ping_ev);
        s->ping_ev = NULL;
    }
    if (s->timer)
        event_del(s->timer);
    if (s->evcon) {
        struct evhttp_connection *evcon = s->evcon;
        s->evcon = NULL;
        s->bev = NULL;
        http_limits_set_closecb(evcon, NULL, NULL);
        access_log_ws_end(evcon, s->bytes_out, s->bytes_in);
        evhttp_connection_free(evcon); /* frees req and bufferevent */
    }
    ws_decoder_free(s->dec);
    s->dec = NULL;
}

/* The end: drop the connection now, deliver on_close from the loop. */
static void finish(struct ws_server *s)
{
    if (s->state == ST_CLOSED)
        return;
    teardown_io(s);
    s->state = ST_CLOSED;
    event_active(s->timer, EV_TIMEOUT, 1);
}

static void fail_now(struct ws_server *s, const char *detail)
{
    if (s->state == ST_CLOSED)
        return;
    report_set(s, WS_CLOSE_ABNORMAL, NULL, 0, detail);
    finish(s);
}

static void deliver_close(struct ws_server *s)
{
    struct ws_server_close_info info = {
        .code = s->rep_code ? s->rep_code : WS_CLOSE_ABNORMAL,
        .reason = s->rep_reason ? s->rep_reason : "",
        .reason_len = s->rep_reason_len,
        .by_browser = s->by_browser,
        .clean = s->close_sent && s->close_rcvd,
        .detail = s->rep_detail ? s->rep_detail : "",
    };
    s->in_cb++;
    if (s->cb.on_close)
        s->cb.on_close(s, &info, s->arg);
    s->in_cb--;
    /* s is still valid here even if the owner freed it: that is deferred */
}

/* evhttp is freeing the connection (evhttp_free at shutdown). */
static void evcon_closed_cb(struct evhttp_connection *evcon, void *arg)
{
    struct ws_server *s = arg;
    access_log_ws_end(evcon, s->bytes_out, s->bytes_in);
    s->evcon = NULL;  /* evhttp frees it and the bufferevent */
    s->bev = NULL;
    if (s->state != ST_CLOSED) {
        report_set(s, WS_CLOSE_ABNORMAL, NULL, 0, "server shutting down");
        finish(s);
    }
}

/* --------------------------------------------------------------- reading */

static void update_reading(struct ws_server *s)
{
    if (!s->bev || s->state == ST_CLOSED)
        return;
    if (s->paused && s->state == ST_OPEN)
        bufferevent_disable(s->bev, EV_READ);
    else
        bufferevent_enable(s->bev, EV_READ);
}

/* Run the read callback again from the loop for bytes already buffered. */
static void kick_input(struct ws_server *s)
{
    if (s->bev && evbuffer_get_length(bufferevent_get_input(s->bev)) > 0)
        bufferevent_trigger(s->bev, EV_READ,
                            BEV_TRIG_IGNORE_WATERMARKS |
                                BEV_TRIG_DEFER_CALLBACKS);
}

static void enter_closing(struct ws_server *s)
{
    bool first = s->state != ST_CLOSING;
    s->state = ST_CLOSING;
    s->awaiting_pong = 0;
    if (s->ping_ev) {
        event_free(s->ping_ev);
        s->ping_ev = NULL;
    }
    if (first) {
        event_del(s->timer);
        timer_arm(s, s->close_ms);
    }
    update_reading(s);
    kick_input(s);
}

/* Close handshake done, or a failed connection's close frame written:
 * drop once the output is flushed. */
static bool maybe_drop_flushed(struct ws_server *s)
{
    if (s->state == ST_CLOSING && s->bev &&
        (s->drop_after_flush || (s->close_sent && s->close_rcvd)) &&
        evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        finish(s);
        return true;
    }
    return false;
}

/* The decoder failed: answer with its close code, then drop. */
static void protocol_error(struct ws_server *s)
{
    uint16_t code = ws_decoder_close_code(s->dec);
    const char *why = ws_decoder_error(s->dec);
    if (s->close_sent) {
        report_detail(s, why);
        finish(s);
        return;
    }
    uint8_t p[WS_CONTROL_MAX];
    size_t n;
    int rc = write_close(s, code, why, strlen(why), p, &n);
    report_set(s, code, n > 2 ? (const char *)p + 2 : NULL, n > 2 ? n - 2 : 0,
               why);
    s->drop_after_flush = 1;
    evbuffer_drain(bufferevent_get_input(s->bev), EV_SIZE_MAX);
    enter_closing(s);
    if (rc < 0)
        finish(s);
    else
        maybe_drop_flushed(s);
}

/* A close frame arrived from the browser. */
static void browser_close(struct ws_server *s, const struct ws_event *ev)
{
    s->close_rcvd = 1;
    if (s->close_sent) {
        /* The answer to our close: the report keeps the code we sent. */
        enter_closing(s);
        maybe_drop_flushed(s);
        return;
    }
    s->by_browser = 1;
    uint16_t echo = ev->close_code == WS_CLOSE_NO_STATUS ? 0 : ev->close_code;
    uint8_t p[WS_CONTROL_MAX];
    size_t n;
    int rc = write_close(s, echo, NULL, 0, p, &n);
    report_set(s, ev->close_code, ev->close_reason, ev->close_reason_len,
               "closed by browser");
    enter_closing(s);
    if (rc < 0)
        finish(s);
    else
        maybe_drop_flushed(s);
}

/* One decoder event; false when processing must stop. */
static bool handle_event(struct ws_server *s, const struct ws_event *ev)
{
    switch (ev->type) {
    case WS_EV_TEXT:
    case WS_EV_BINARY:
        if (s->state == ST_OPEN && !s->close_sent && s->cb.on_message) {
            s->in_cb++;
            s->cb.on_message(s, ev->type == WS_EV_BINARY, ev->data, ev->len,
                             s->arg);
            s->in_cb--;
        }
        break;
    case WS_EV_PING:
        if (!s->close_sent && write_frame(s, WS_OP_PONG, ev->data, ev->len) < 0) {
            fail_now(s, "cannot queue pong: out of memory");
            return false;
        }
        break;
    case WS_EV_PONG:
        if (s->awaiting_pong) {
            s->awaiting_pong = 0;
            event_del(s->timer);
        }
        break;
    case WS_EV_CLOSE:
        browser_close(s, ev);
        break;
    }
    return !s->dead && s->state != ST_CLOSED;
}

static void process_input(struct ws_server *s)
{
    while (!s->dead && s->bev && !s->close_rcvd && !s->drop_after_flush &&
           !(s->paused && s->state == ST_OPEN)) {
        struct evbuffer *in = bufferevent_get_input(s->bev);
        struct evbuffer_iovec v;
        if (evbuffer_get_length(in) == 0)
            return;
        if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0) {
            v.iov_len = evbuffer_get_length(in);
            v.iov_base = evbuffer_pullup(in, -1);
            if (!v.iov_base)
                return;
        }
        struct ws_event ev;
        size_t used = 0;
        int rc = ws_decoder_feed(s->dec, v.iov_base, v.iov_len, &used, &ev);
        /* Server decoders copy every payload: the input can go now. */
        evbuffer_drain(in, used);
        s->bytes_in += used;
        if (rc == 1) {
            if (!handle_event(s, &ev))
                return;
        } else if (rc != GW_EAGAIN) {
            protocol_error(s);
            return;
        }
    }
    /* After the browser's close, or a protocol error, input is ignored. */
    if (!s->dead && s->bev && (s->close_rcvd || s->drop_after_flush))
        evbuffer_drain(bufferevent_get_input(s->bev), EV_SIZE_MAX);
}

/* --------------------------------------------------- bufferevent callbacks */

static void bev_read_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct ws_server *s = arg;
    if (s->dead)
        return;
    s->rx_seen = 1;
    process_input(s);
}

static void bev_write_cb(struct bufferevent *bev, void *arg)
{
    (void)bev;
    struct ws_server *s = arg;
    if (s->dead || maybe_drop_flushed(s))
        return;
    if (s->want_drained && s->state == ST_OPEN && s->bev &&
        evbuffer_get_length(bufferevent_get_output(s->bev)) <=
            s->out_limit / 2) {
        s->want_drained = 0;
        if (s->cb.on_drained) {
            s->in_cb++;
            s->cb.on_drained(s, s->arg);
            s->in_cb--;
        }
    }
}

static void bev_event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct ws_server *s = arg;
    if (s->dead || !(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    if (s->state == ST_CLOSING) {
        /* The browser closed TCP after (or instead of) its close frame. */
        if (!s->close_rcvd && !s->drop_after_flush)
            report_detail(s, "connection closed before the browser's close "
                             "frame");
        finish(s);
        return;
    }
    fail_now(s, what & BEV_EVENT_EOF
                    ? "connection closed by browser without a close frame"
                    : "connection error");
}

/* ----------------------------------------------------------------- timers */

/* Keepalive: ping a connection that sent nothing for a whole interval
 * (one ping at a time, none while paused: no pong could be read). */
static void ping_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct ws_server *s = arg;
    if (s->dead || s->state != ST_OPEN)
        return;
    bool idle = !s->rx_seen;
    s->rx_seen = 0;
    if (!idle || s->paused || s->awaiting_pong)
        return;
    ws_decoder_trim(s->dec);
    if (write_frame(s, WS_OP_PING, NULL, 0) < 0) {
        fail_now(s, "cannot queue ping: out of memory");
        return;
    }
    s->awaiting_pong = 1;
    timer_arm(s, s->pong_ms);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct ws_server *s = arg;
    if (s->dead)
        return;
    switch (s->state) {
    case ST_OPEN:
        if (s->awaiting_pong) {
            char d[64];
            snprintf(d, sizeof d, "no pong within %u ms", s->pong_ms);
            fail_now(s, d);
        }
        break;
    case ST_CLOSING:
        if (!s->close_rcvd && !s->drop_after_flush) {
            char d[80];
            snprintf(d, sizeof d, "no close frame from browser within %u ms",
                     s->close_ms);
            report_detail(s, d);
        }
        finish(s);
        break;
    default:
        deliver_close(s);
        break;
    }
}

/* ------------------------------------------------------------ accepting */

static const char *req_header(void *arg, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(arg), name);
}

int ws_server_check(struct evhttp_request *req, struct ws_upgrade *up)
{
    return ws_handshake_check_request(
        http_method_name(evhttp_request_get_command(req)), req_header, req, up);
}

void ws_server_reject(struct evhttp_request *req, const struct ws_upgrade *up)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evbuffer_new();
    if (up->extra_name)
        evhttp_add_header(h, up->extra_name, up->extra_value);
    evhttp_add_header(h, "Content-Type", "text/plain; charset=UTF-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    if (body && up->body[0])
        evbuffer_add(body, up->body, strlen(up->body));
    evhttp_send_reply(req, up->status, up->reason, body);
    if (body)
        evbuffer_free(body);
}

static void reject_internal(struct evhttp_request *req)
{
    evhttp_send_error(req, 500, "Internal Server Error");
}

/* Fill s from the options; 0 or GW_ENOMEM. */
static int server_init(struct ws_server *s, const struct ws_upgrade *up,
                       const struct ws_server_options *opt)
{
    s->ping_ms = opt->ping_interval_ms;
    s->pong_ms = opt->pong_timeout_ms ? opt->pong_timeout_ms : s->ping_ms;
    s->close_ms = opt->close_timeout_ms ? opt->close_timeout_ms
                                        : DEFAULT_CLOSE_MS;
    s->out_limit = opt->output_limit ? opt->output_limit
                                     : DEFAULT_OUTPUT_LIMIT;
    char proto[PROTOCOL_MAX];
    if (ws_handshake_select_protocol(up->protocols, opt->protocols, proto,
                                     sizeof proto) == 1 &&
        !(s->protocol = strdup(proto)))
        return GW_ENOMEM;
    s->dec = ws_decoder_new_server(opt->max_message ? opt->max_message
                                                    : DEFAULT_MAX_MESSAGE);
    s->timer = event_new(s->base, -1, 0, timer_cb, s);
    if (s->ping_ms)
        s->ping_ev = event_new(s->base, -1, EV_PERSIST, ping_cb, s);
    if (!s->dec || !s->timer || (s->ping_ms && !s->ping_ev))
        return GW_ENOMEM;
    return 0;
}

static void server_release(struct ws_server *s)
{
    if (!s)
        return;
    teardown_io(s);
    if (s->timer)
        event_free(s->timer);
    free(s->protocol);
    free(s->rep_reason);
    free(s->rep_detail);
    free(s);
}

/* Steal evcon's bufferevent: our callbacks, no evhttp timeouts, 101. */
static int take_over(struct ws_server *s, struct evhttp_connection *evcon,
                     const char *key)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    if (!bev)
        return GW_ESTATE;
    struct gw_buf resp = {0};
    int rc = ws_handshake_build_response(&resp, key, s->protocol);
    if (rc == 0 &&
        evbuffer_add(bufferevent_get_output(bev), resp.data, resp.len) < 0)
        rc = GW_ENOMEM;
    gw_buf_free(&resp);
    if (rc < 0)
        return rc;
    s->evcon = evcon;
    s->bev = bev;
    s->tls = bufferevent_openssl_get_ssl(bev) != NULL;
    http_limits_set_closecb(evcon, evcon_closed_cb, s);
    bufferevent_set_timeouts(bev, NULL, NULL);
    bufferevent_setcb(bev, bev_read_cb, bev_write_cb, bev_event_cb, s);
    bufferevent_setwatermark(bev, EV_WRITE, s->out_limit / 2, 0);
    if (!s->tls)
        bufferevent_setwatermark(bev, EV_READ, 0, READ_HIGH_WATERMARK);
    evutil_socket_t fd = bufferevent_getfd(bev);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
    if (s->ping_ev) {
        struct timeval tmp;
        gw_ms_to_tv(s->ping_ms, &tmp);
        const struct timeval *ct =
            event_base_init_common_timeout(s->base, &tmp);
        event_add(s->ping_ev, ct ? ct : &tmp);
    }
    kick_input(s); /* frames pipelined behind the request */
    return 0;
}

struct ws_server *ws_server_accept(struct evhttp_request *req,
                                   const struct ws_server_options *opt,
                                   const struct ws_server_callbacks *cb,
                                   void *arg, struct gw_error *err)
{
    static const struct ws_server_options defaults;
    struct ws_upgrade up;
    if (!req || !cb) {
        gw_error_set(err, GW_EINVAL, "ws_server_accept: missing argument");
        if (req)
            reject_internal(req);
        return NULL;
    }
    if (ws_server_check(req, &up) < 0) {
        gw_error_set(err, GW_EPROTO, "upgrade refused: %d %s", up.status,
                     up.body[0] ? up.body : up.reason);
        ws_server_reject(req, &up);
        return NULL;
    }
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct ws_server *s = calloc(1, sizeof *s);
    int rc = !evcon ? GW_ESTATE : !s ? GW_ENOMEM : 0;
    if (rc == 0) {
        s->base = evhttp_connection_get_base(evcon);
        s->cb = *cb;
        s->arg = arg;
        rc = server_init(s, &up, opt ? opt : &defaults);
    }
    if (rc == 0)
        rc = take_over(s, evcon, up.key);
    if (rc < 0) {
        gw_error_set(err, rc, "cannot take the connection over: %s",
                     gw_strerror(rc));
        server_release(s);
        if (evcon)
            reject_internal(req);
        return NULL;
    }
    return s;
}

/* ------------------------------------------------------------ public API */

int ws_server_send(struct ws_server *s, bool binary, const void *data,
                   size_t len)
{
    if (!s || s->dead || s->state != ST_OPEN || s->close_sent || !s->bev)
        return GW_ESTATE;
    if (len && !data)
        return GW_EINVAL;
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) >= s->out_limit) {
        s->want_drained = 1;
        return GW_EFULL;
    }
    int rc = write_frame(s, binary ? WS_OP_BINARY : WS_OP_TEXT, data, len);
    if (rc == 0 &&
        evbuffer_get_length(bufferevent_get_output(s->bev)) > s->out_limit)
        s->want_drained = 1;
    return rc;
}

int ws_server_close(struct ws_server *s, uint16_t code, const char *reason)
{
    if (!s || s->dead)
        return GW_ESTATE;
    if (s->state != ST_OPEN || s->close_sent)
        return 0;
    if (code && !ws_close_code_valid(code)) {
        log_warn("ws_server_close: code %u may not be sent, using 1000", code);
        code = WS_CLOSE_NORMAL;
    }
    size_t rlen = reason && code ? strlen(reason) : 0;
    if (rlen && !ws_utf8_valid((const uint8_t *)reason, rlen)) {
        log_warn("ws_server_close: reason is not UTF-8, sending none");
        rlen = 0;
    }
    uint8_t p[WS_CONTROL_MAX];
    size_t n;
    int rc = write_close(s, code, reason, rlen, p, &n);
    report_set(s, code ? code : WS_CLOSE_NO_STATUS,
               n > 2 ? (const char *)p + 2 : NULL, n > 2 ? n - 2 : 0,
               "closed by server");
    enter_closing(s);
    if (rc < 0) {
        /* Could not queue it: drop from the loop, not under the caller. */
        s->drop_after_flush = 1;
        report_detail(s, "cannot queue the close frame");
        event_del(s->timer);
        event_active(s->timer, EV_TIMEOUT, 1);
    }
    return 0;
}

void ws_server_pause_reading(struct ws_server *s, bool pause)
{
    if (!s || s->dead || (bool)s->paused == pause)
        return;
    s->paused = pause;
    update_reading(s);
    if (pause) {
        if (s->state == ST_OPEN && s->awaiting_pong) {
            s->awaiting_pong = 0;
            event_del(s->timer);
        }
    } else if (s->state == ST_OPEN) {
        kick_input(s);
    }
}

size_t ws_server_pending_bytes(const struct ws_server *s)
{
    return s && s->bev ? evbuffer_get_length(bufferevent_get_output(s->bev))
                       : 0;
}

const char *ws_server_protocol(const struct ws_server *s)
{
    return s ? s->protocol : NULL;
}

bool ws_server_is_open(const struct ws_server *s)
{
    return s && !s->dead && s->state == ST_OPEN && !s->close_sent;
}

static void free_deferred_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    server_release(arg);
}

void ws_server_free(struct ws_server *s)
{
    if (!s)
        return;
    if (s->in_cb == 0) {
        server_release(s);
        return;
    }
    if (s->dead)
        return;
    /* Inside one of our callbacks: silence everything now, free later. */
    s->dead = 1;
    if (s->bev) {
        bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
        bufferevent_disable(s->bev, EV_READ | EV_WRITE);
    }
    if (s->ping_ev)
        event_del(s->ping_ev);
    event_del(s->timer);
    event_assign(s->timer, s->base, -1, 0, free_deferred_cb, s);
    event_active(s->timer, EV_TIMEOUT, 1);
}
