/*
 * transport_sockjs.c - the SockJS receiving transports as one session sink
 * with per-transport framing:
 *
 *   polling   (xhr, jsonp)                 one frame per response
 *   streaming (xhr_streaming, eventsource,
 *              htmlfile)                   a prelude, then frames, until
 *                                          response_limit bytes
 *
 * SockJS has no acknowledgements: a message written to a response counts as
 * delivered (it is acknowledged in the session queue as it is written), so
 * only what was never written survives an aborted request. The first
 * receiving request of a session is its opener and answers "o" once the
 * upstream handshake is done.
 */
#include "transport_sockjs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "framing.h"
#include "framing_sockjs.h"
#include "http_util.h"
#include "session.h"
#include "transport_stream.h"

struct sjs_sink {
    struct transport_stream ts; /* first; polling: a one-shot response */
    const struct sjs_transport *tr;
    char callback[40];
    bool opener;            /* waiting for the upstream handshake */
    bool gone;              /* cut by the browser or the network */
};

/* Reused for every delivery (single-threaded): the wrapped response,
 * the bare frame, and base64 of binary messages. Released when a huge
 * batch made them grow. */
static struct gw_buf scratch, frame_scratch, b64_scratch;

static void trim_scratch(struct gw_buf *b)
{
    if (b->cap > 1 << 20)
        gw_buf_free(b);
    else
        gw_buf_reset(b);
}

static struct sjs_sink *sjs_of(struct http_stream *st)
{
    return (struct sjs_sink *)((char *)st - offsetof(struct sjs_sink, ts.st));
}

/* ----------------------------------------------------------- writing */

/* Wrap one frame for this transport and write it (polling: as the whole
 * answer, which ends the request). */
static bool write_frame(struct sjs_sink *k, const struct gw_buf *frame)
{
    gw_buf_reset(&scratch);
    sockjs_wrap(&scratch, k->tr->wrap, k->callback, frame->data, frame->len);
    bool ok = http_stream_write(&k->ts.st, scratch.data, scratch.len);
    trim_scratch(&scratch);
    return ok;
}

/* Build the a[...] frame of every queued message and acknowledge them
 * (SockJS: written = delivered). Returns false if nothing was queued. */
static bool take_messages(struct session *s, struct gw_buf *frame)
{
    struct session_queue *q = session_queue(s);
    if (session_queue_count(q) == 0)
        return false;
    size_t idx = 0, off = 0;
    struct sq_msg m;
    uint64_t last = 0;
    struct gw_buf *b64 = &b64_scratch;
    sockjs_frame_array_begin(frame);
    while (session_queue_next(q, &idx, &off, &m)) {
        if (m.binary) { /* binary = base64 (other policies never queue it) */
            gw_buf_reset(b64);
            framing_base64_append(b64, m.data, m.len);
            sockjs_frame_array_item(frame, idx == 1, b64->data ? b64->data
                                    : (const uint8_t *)"", b64->len);
        } else {
            sockjs_frame_array_item(frame, idx == 1, m.data, m.len);
        }
        last = m.seq;
    }
    sockjs_frame_array_end(frame);
    trim_scratch(b64);
    session_ack(s, last);
    return true;
}

static void close_frame(struct session *s, struct gw_buf *frame)
{
    const char *r = session_close_reason(s);
    sockjs_frame_close(frame, session_close_code(s), r, strlen(r));
}

/* http_stream: nothing in flight; deliver what the session has: messages,
 * then (in the next batch) the close. */
static void sjs_flush(struct http_stream *st)
{
    struct sjs_sink *k = sjs_of(st);
    struct session *s = k->ts.k.session;
    if (!s || k->opener)
        return;
    struct gw_buf *frame = &frame_scratch;
    gw_buf_reset(frame);
    bool closing = false;
    if (!take_messages(s, frame)) {
        if (!session_close_ready(s, false))
            return;
        close_frame(s, frame);
        closing = true;
    }
    bool ok = write_frame(k, frame);
    trim_scratch(frame);
    if (!ok)
        return; /* the stream ends */
    if (closing) {
        session_detach(s, &k->ts.k);
        session_close_delivered(s);
        http_stream_end(st);
    } else if (session_queue_count(session_queue(s)) ||
               session_close_ready(s, false)) {
        http_stream_wake(st);
    }
}

static void sjs_heartbeat(struct http_stream *st)
{
    struct sjs_sink *k = sjs_of(st);
    if (k->opener)
        return;
    struct gw_buf f = {0};
    sockjs_frame_heartbeat(&f);
    write_frame(k, &f);
    gw_buf_free(&f);
}

static void sjs_gone(struct http_stream *st)
{
    sjs_of(st)->gone = true;
}

static void sjs_ended(struct http_stream *st)
{
    struct sjs_sink *k = sjs_of(st);
    struct session *s = k->ts.k.session;
    if (k->opener && s) {
        /* The opener went away before "o": nothing was queued yet, so
         * the session is simply abandoned (the upstream gets 1001). */
        session_abort_open(s);
    } else if (k->gone && s) {
        /* Cut after "o": what was on its way may be lost and SockJS has
         * no way to resend it, so the session ends as the protocol says
         * (later requests get c[1002,...]; sockjs-client never reuses
         * such a session anyway). Lossless delivery is the native
         * protocol's promise. */
        session_detach(s, &k->ts.k);
        session_interrupt(s, SJS_CLOSE_INTERRUPTED, "Connection interrupted",
                          WS_CLOSE_GOING_AWAY, "browser connection interrupted");
    } else {
        session_detach(s, &k->ts.k);
    }
    free(k);
}

static const struct http_stream_ops sjs_stream_ops = {
    .flush = sjs_flush,
    .heartbeat = sjs_heartbeat,
    .gone = sjs_gone,
    .ended = sjs_ended,
};

/* --------------------------------------------------------- sink ops */

static void sjs_detach(struct session_sink *sk, enum session_detach_why why)
{
    (void)why;
    struct sjs_sink *k = (struct sjs_sink *)sk;
    if (!k->tr->streaming) {
        /* a polling request must answer something: a heartbeat frame */
        struct gw_buf f = {0};
        sockjs_frame_heartbeat(&f);
        write_frame(k, &f);
        gw_buf_free(&f);
    }
    http_stream_end(&k->ts.st);
}

static void sjs_opened(struct session_sink *sk, const struct ws_close_info *fail)
{
    struct sjs_sink *k = (struct sjs_sink *)sk;
    struct gw_buf frame = {0};
    k->opener = false;
    if (fail) {
        /* The session is a tombstone now (SESSION_FAILED_OPEN_TOMBSTONE) */
        const char *why = fail->detail && *fail->detail ? fail->detail
                                                        : "upstream failed";
        sockjs_frame_close(&frame, WS_CLOSE_INTERNAL, why, strlen(why));
        k->ts.k.session = NULL;
        write_frame(k, &frame);
        gw_buf_free(&frame);
        http_stream_end(&k->ts.st);
        return;
    }
    sockjs_frame_open(&frame);
    session_attach(k->ts.k.session, &k->ts.k);
    write_frame(k, &frame);
    gw_buf_free(&frame);
    http_stream_wake(&k->ts.st); /* anything that came with the open */
}

static const struct session_sink_ops sjs_ops = {
    .wake = transport_stream_wake,
    .detach = sjs_detach,
    .opened = sjs_opened,
};

/* ------------------------------------------------------------ start */

struct sjs_sink *sjs_new(const struct sockjs_tctx *ctx,
                         struct evhttp_request *req,
                         const struct sjs_transport *tr, const char *callback,
                         uint64_t limit)
{
    (void)ctx;
    struct sjs_sink *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->ts.k.ops = &sjs_ops;
    k->tr = tr;
    if (callback)
        snprintf(k->callback, sizeof k->callback, "%s", callback);
    /* Watch from the start: whatever this request ends up doing (a stream,
     * one frame, a close frame), the browser may leave before it is done. */
    if (http_stream_init(&k->ts.st, req, &sjs_stream_ops) < 0) {
        free(k);
        return NULL;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", tr->content_type);
    if (tr->streaming) {
        struct gw_buf b = {0};
        switch (tr->wrap) {
        case SOCKJS_WRAP_EVENTSOURCE: sockjs_prelude_eventsource(&b); break;
        case SOCKJS_WRAP_HTMLFILE: sockjs_prelude_htmlfile(&b, k->callback); break;
        default: sockjs_prelude_xhr_streaming(&b); break;
        }
        /* the prelude does not count toward the limit */
        http_stream_begin(&k->ts.st, 200, b.data, b.len, limit);
        gw_buf_free(&b);
    }
    return k;
}

struct session_sink *sjs_sink(struct sjs_sink *k) { return &k->ts.k; }

void sjs_start(const struct sockjs_tctx *ctx, struct sjs_sink *k,
               struct session *s, bool opener)
{
    k->opener = opener;
    k->ts.k.session = s;
    if (!opener)
        session_attach(s, &k->ts.k);
    http_stream_heartbeat_start(&k->ts.st, ctx->tv_heartbeat);
    http_stream_wake(&k->ts.st); /* last: may end (and free) the sink */
}

void sjs_send_frame_and_end(struct sjs_sink *k, const struct gw_buf *frame)
{
    write_frame(k, frame);
    http_stream_end(&k->ts.st);
}
