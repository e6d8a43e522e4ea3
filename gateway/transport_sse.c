/*
 * transport_sse.c - Server-Sent Events. Messages are written as they come,
 * one write per batch, with the next batch waiting until the previous one
 * left the socket buffer (so a slow browser pushes back instead of growing
 * our output buffer). Written messages stay queued until acknowledged
 * (Last-Event-ID on reconnect, or POST .../ack), so a dropped stream can
 * be resumed without a gap.
 */
#include "transport.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "framing_native.h"
#include "gw_log.h"
#include "http_util.h"
#include "session.h"

struct sse_sink {
    struct session_sink k;
    struct http_watch watch;
    struct evhttp_request *req;
    struct event heartbeat;
    const struct transport_ctx *ctx;
    bool writing;   /* a chunk is on its way out */
    bool pending;   /* more to write once it has left */
    bool ending;    /* finish once the current chunk has left */
    uint64_t pos;   /* last seq this stream has written (or resumed after) */
};

static struct gw_buf scratch;

static void sse_free(struct sse_sink *k)
{
    event_del(&k->heartbeat);
    free(k);
}

/* End the response and free the sink (detached from the session). */
static void sse_end(struct sse_sink *k)
{
    http_watch_stop(&k->watch);
    if (k->k.session)
        session_detach(k->k.session, &k->k);
    evhttp_send_reply_end(k->req);
    sse_free(k);
}

static void sse_flush(struct sse_sink *k);

static void sse_written_cb(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct sse_sink *k = arg;
    k->writing = false;
    if (k->ending) {
        sse_end(k);
        return;
    }
    if (k->pending)
        sse_flush(k);
}

/* Queue b; false if it could not be (the caller ends the stream). */
static bool sse_write(struct sse_sink *k, const struct gw_buf *b)
{
    k->writing = http_stream_chunk(k->req, b->data, b->len, sse_written_cb, k);
    return k->writing;
}

/* Write everything not yet written, the lost notice, and the close. */
static void sse_flush(struct sse_sink *k)
{
    struct session *s = k->k.session;
    if (!s)
        return;
    if (k->writing) {
        k->pending = true;
        return;
    }
    k->pending = false;
    struct session_queue *q = session_queue(s);
    struct gw_buf *b = &scratch;
    gw_buf_reset(b);
    struct framing_native_lost lost;
    int rc = 0;
    if (session_lost_since(s, k->pos, &lost.from, &lost.to)) {
        rc = framing_native_sse_lost(b, &lost);
        k->pos = lost.to;
    }
    size_t pos = q->written, off = q->written_bytes;
    struct sq_msg m;
    while (rc == 0 && session_queue_next(q, &pos, &off, &m)) {
        rc = framing_native_sse_message(b, m.seq, m.binary, m.data, m.len);
        k->pos = m.seq;
    }
    session_queue_mark_written(q);
    bool closing = session_close_ready(s, true);
    if (closing && rc == 0) {
        const char *r = session_close_reason(s);
        struct framing_native_close cl = { session_close_code(s), r, strlen(r) };
        rc = framing_native_sse_close(b, &cl);
    }
    /* A chunk that cannot be built is not sent in part: the stream ends
     * and the next one replays from the last acknowledged message. */
    if (rc < 0)
        log_warn("events: cannot build a chunk: %s", gw_strerror(rc));
    bool ok = rc == 0 && (!b->len || sse_write(k, b));
    if (scratch.cap > 1 << 20)
        gw_buf_free(&scratch);
    if (!ok) { /* written messages stay queued for the next stream */
        sse_end(k);
        return;
    }
    if (closing) {
        session_detach(s, &k->k);
        session_close_delivered(s);
        if (k->writing)
            k->ending = true;
        else
            sse_end(k);
    }
}

static void sse_wake(struct session_sink *sk)
{
    sse_flush((struct sse_sink *)sk);
}

static void sse_detach(struct session_sink *sk, enum session_detach_why why)
{
    (void)why;
    struct sse_sink *k = (struct sse_sink *)sk;
    if (k->writing)
        k->ending = true;  /* end once the last chunk has left */
    else
        sse_end(k);
}

static void sse_opened(struct session_sink *k, const struct ws_close_info *f)
{
    (void)k; (void)f;
}

static const struct session_sink_ops sse_ops = {
    .wake = sse_wake,
    .detach = sse_detach,
    .opened = sse_opened,
};

static void sse_heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct sse_sink *k = arg;
    static const struct gw_buf beat = {
        (uint8_t *)FRAMING_NATIVE_SSE_HEARTBEAT,
        sizeof FRAMING_NATIVE_SSE_HEARTBEAT - 1, 0, 0 };
    if (!k->writing && !sse_write(k, &beat)) {
        sse_end(k);
        return;
    }
    event_add(&k->heartbeat, k->ctx->tv_heartbeat);
}

static void sse_gone(struct http_watch *w)
{
    struct sse_sink *k = (struct sse_sink *)((char *)w -
                                             offsetof(struct sse_sink, watch));
    log_debug("events: browser went away");
    if (k->k.session) {
        /* Nothing written is lost: it stays queued until acknowledged,
         * and the next stream replays from the last acknowledged seq. */
        struct session *s = k->k.session;
        session_detach(s, &k->k);
        session_queue_unmark_written(session_queue(s));
    }
    sse_free(k);
}

void transport_sse_handle(const struct transport_ctx *ctx,
                          struct evhttp_request *req, struct session *s,
                          uint64_t pos)
{
    struct sse_sink *k = calloc(1, sizeof *k);
    if (!k) {
        http_reply_error(req, 503, "out_of_memory", "out of memory");
        return;
    }
    k->k.ops = &sse_ops;
    k->req = req;
    k->ctx = ctx;
    k->pos = pos;
    event_assign(&k->heartbeat, ctx->base, -1, 0, sse_heartbeat_cb, k);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    http_add_common_headers(req);
    http_stream_start(req, 200);

    /* A new stream replays everything not acknowledged. */
    session_attach(s, &k->k);
    session_queue_unmark_written(session_queue(s));

    struct gw_buf b = { 0 };
    bool started = framing_native_sse_preamble(
                       &b, ctx->cfg->poll_timeout_ms < 2000 ? 1000 : 2000) == 0 &&
                   sse_write(k, &b);
    gw_buf_free(&b);
    if (!started) {
        sse_detach(&k->k, SESSION_DETACH_CLOSING);
        return;
    }
    if (http_watch_start(&k->watch, req, sse_gone) < 0) {
        sse_detach(&k->k, SESSION_DETACH_CLOSING);
        return;
    }
    event_add(&k->heartbeat, ctx->tv_heartbeat);
    sse_flush(k);
}
