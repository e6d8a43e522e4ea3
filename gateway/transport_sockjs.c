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
#include "gw_log.h"
#include "http_util.h"
#include "session.h"
#include "transport_stream.h"

struct transport_sockjs_sink {
    struct transport_stream ts; /* first; polling: a one-shot response */
    const struct transport_sockjs_kind *tr;
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
    gw_buf_trim(b, GW_SCRATCH_KEEP);
}

static struct transport_sockjs_sink *sjs_of(struct http_stream *st)
{
    return (struct transport_sockjs_sink *)((char *)st - offsetof(struct transport_sockjs_sink, ts.st));
}

/* ----------------------------------------------------------- writing */

/* Wrap one frame for this transport and write it (polling: as the whole
 * answer, which ends the request). False if it could not be wrapped or
 * written: the stream then ends. */
static bool write_frame(struct transport_sockjs_sink *k, const struct gw_buf *frame)
{
    gw_buf_reset(&scratch);
    bool ok = framing_sockjs_wrap(&scratch, k->tr->wrap, k->callback, frame->data,
                          frame->len) == 0 &&
              http_stream_write(&k->ts.st, scratch.data, scratch.len);
    trim_scratch(&scratch);
    if (!ok)
        http_stream_end(&k->ts.st);
    return ok;
}

/* Append one message to the a[...] frame (binary as base64: other binary
 * policies never queue it). */
static int add_message(struct gw_buf *frame, bool first, const struct sq_msg *m)
{
    if (!m->binary)
        return framing_sockjs_frame_array_item(frame, first, m->data, m->len);
    struct gw_buf *b64 = &b64_scratch;
    gw_buf_reset(b64);
    int rc = framing_base64_append(b64, m->data, m->len);
    if (rc == 0)
        rc = framing_sockjs_frame_array_item(frame, first, b64->data ? b64->data
                                     : (const uint8_t *)"", b64->len);
    return rc;
}

/*
 * Build the a[...] frame of every queued message into frame. Returns the
 * seq of the last one (0: nothing queued) or a negative gw_err: then frame
 * is not to be sent and the queue is as it was. The caller acknowledges
 * the messages once the frame is written (SockJS: written = delivered).
 */
static int64_t take_messages(struct session *s, struct gw_buf *frame)
{
    struct session_queue *q = session_queue(s);
    if (session_queue_count(q) == 0)
        return 0;
    size_t idx = 0, off = 0;
    struct sq_msg m;
    uint64_t last = 0;
    int rc = framing_sockjs_frame_array_begin(frame);
    while (rc == 0 && session_queue_next(q, &idx, &off, &m)) {
        rc = add_message(frame, idx == 1, &m);
        last = m.seq;
    }
    if (rc == 0)
        rc = framing_sockjs_frame_array_end(frame);
    trim_scratch(&b64_scratch);
    return rc < 0 ? rc : (int64_t)last;
}

static int close_frame(struct session *s, struct gw_buf *frame)
{
    const char *r = session_close_reason(s);
    return framing_sockjs_frame_close(frame, session_close_code(s), r, strlen(r));
}

/* http_stream: nothing in flight; deliver what the session has: messages,
 * then (in the next batch) the close. */
static void sjs_flush(struct http_stream *st)
{
    struct transport_sockjs_sink *k = sjs_of(st);
    struct session *s = k->ts.k.session;
    if (!s || k->opener)
        return;
    struct gw_buf *frame = &frame_scratch;
    gw_buf_reset(frame);
    bool closing = false;
    int64_t last = take_messages(s, frame);
    if (last == 0) {
        if (!session_close_ready(s, false))
            return;
        last = close_frame(s, frame);
        closing = true;
    }
    /* A frame that cannot be built is not sent in part: the request ends
     * and the messages stay queued for the next one. */
    bool ok = last >= 0 && write_frame(k, frame);
    if (last < 0) {
        log_warn("sockjs: session %.*s: cannot build a frame: %s",
                 GW_LOG_ID(session_id(s), strlen(session_id(s))), gw_strerror((int)last));
        http_stream_end(st);
    }
    trim_scratch(frame);
    if (!ok)
        return; /* the stream ends */
    if (closing) {
        session_detach(s, &k->ts.k);
        session_close_delivered(s);
        http_stream_end(st);
        return;
    }
    session_ack(s, (uint64_t)last);
    if (session_queue_count(session_queue(s)) || session_close_ready(s, false))
        http_stream_wake(st);
}

static void sjs_heartbeat(struct http_stream *st)
{
    struct transport_sockjs_sink *k = sjs_of(st);
    if (k->opener)
        return;
    struct gw_buf f = {0};
    if (framing_sockjs_frame_heartbeat(&f) == 0)
        write_frame(k, &f);
    else
        http_stream_end(st);
    gw_buf_free(&f);
}

static void sjs_gone(struct http_stream *st)
{
    sjs_of(st)->gone = true;
}

static void sjs_ended(struct http_stream *st)
{
    struct transport_sockjs_sink *k = sjs_of(st);
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
    struct transport_sockjs_sink *k = (struct transport_sockjs_sink *)sk;
    if (!k->tr->streaming) {
        /* a polling request must answer something: a heartbeat frame */
        struct gw_buf f = {0};
        if (framing_sockjs_frame_heartbeat(&f) == 0)
            write_frame(k, &f);
        gw_buf_free(&f);
    }
    http_stream_end(&k->ts.st);
}

static void sjs_opened(struct session_sink *sk, const struct ws_close_info *fail)
{
    struct transport_sockjs_sink *k = (struct transport_sockjs_sink *)sk;
    struct gw_buf frame = {0};
    k->opener = false;
    if (fail) {
        /* The session is a tombstone now (SESSION_FAILED_OPEN_TOMBSTONE) */
        const char *why = fail->detail && *fail->detail ? fail->detail
                                                        : "upstream failed";
        k->ts.k.session = NULL;
        if (framing_sockjs_frame_close(&frame, WS_CLOSE_INTERNAL, why, strlen(why)) == 0)
            write_frame(k, &frame);
        gw_buf_free(&frame);
        http_stream_end(&k->ts.st);
        return;
    }
    session_attach(k->ts.k.session, &k->ts.k);
    bool ok = framing_sockjs_frame_open(&frame) == 0 && write_frame(k, &frame);
    gw_buf_free(&frame);
    if (!ok) {
        http_stream_end(&k->ts.st);
        return;
    }
    http_stream_wake(&k->ts.st); /* anything that came with the open */
}

static const struct session_sink_ops sjs_ops = {
    .wake = transport_stream_wake,
    .detach = sjs_detach,
    .opened = sjs_opened,
};

/* ------------------------------------------------------------ start */

struct transport_sockjs_sink *transport_sockjs_new(const struct transport_sockjs_ctx *ctx,
                         struct evhttp_request *req,
                         const struct transport_sockjs_kind *tr, const char *callback,
                         uint64_t limit)
{
    (void)ctx;
    /* The prelude first: if it cannot be built nothing is set up yet and
     * the caller can still answer the request. */
    struct gw_buf b = {0};
    int rc = 0;
    if (tr->streaming) {
        switch (tr->wrap) {
        case FRAMING_SOCKJS_WRAP_EVENTSOURCE: rc = framing_sockjs_prelude_eventsource(&b); break;
        case FRAMING_SOCKJS_WRAP_HTMLFILE: rc = framing_sockjs_prelude_htmlfile(&b, callback); break;
        default: rc = framing_sockjs_prelude_xhr_streaming(&b); break;
        }
    }
    struct transport_sockjs_sink *k = rc == 0 ? calloc(1, sizeof *k) : NULL;
    if (!k) {
        gw_buf_free(&b);
        return NULL;
    }
    k->ts.k.ops = &sjs_ops;
    /* GET /sessions names them as sockjs-client does */
    k->ts.k.transport = !strcmp(tr->name, "xhr") ? "xhr-polling"
                      : !strcmp(tr->name, "xhr_streaming") ? "xhr-streaming"
                      : tr->name;
    k->tr = tr;
    if (callback)
        snprintf(k->callback, sizeof k->callback, "%s", callback);
    /* Watch from the start: whatever this request ends up doing (a stream,
     * one frame, a close frame), the browser may leave before it is done. */
    if (http_stream_init(&k->ts.st, req, &sjs_stream_ops) < 0) {
        gw_buf_free(&b);
        free(k);
        return NULL;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", tr->content_type);
    if (tr->streaming) /* the prelude does not count toward the limit */
        http_stream_begin(&k->ts.st, 200, b.data, b.len, limit);
    gw_buf_free(&b);
    return k;
}

struct session_sink *transport_sockjs_session_sink(struct transport_sockjs_sink *k) { return &k->ts.k; }

void transport_sockjs_start(const struct transport_sockjs_ctx *ctx, struct transport_sockjs_sink *k,
               struct session *s, bool opener)
{
    k->opener = opener;
    k->ts.k.session = s;
    if (!opener)
        session_attach(s, &k->ts.k);
    http_stream_heartbeat_start(&k->ts.st, transport_common_tv(ctx->base,
                                session_config(s)->heartbeat_ms, ctx->tv_heartbeat));
    http_stream_wake(&k->ts.st); /* last: may end (and free) the sink */
}

void transport_sockjs_send_frame_and_end(struct transport_sockjs_sink *k, const struct gw_buf *frame)
{
    write_frame(k, frame);
    http_stream_end(&k->ts.st);
}
