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

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "framing.h"
#include "framing_sockjs.h"
#include "gw_log.h"
#include "http_util.h"
#include "session.h"

struct sjs_sink {
    struct session_sink k;
    struct http_watch watch;
    struct evhttp_request *req;
    struct event heartbeat;
    const struct sockjs_tctx *ctx;
    const struct sjs_transport *tr;
    char callback[40];
    uint64_t sent;          /* bytes written to this response */
    uint64_t limit;         /* response_limit (streaming) */
    bool started;           /* reply_start done (streaming) */
    bool writing, pending, ending;
    bool opener;            /* waiting for the upstream handshake */
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

static void sjs_free(struct sjs_sink *k)
{
    event_del(&k->heartbeat);
    free(k);
}

/* ----------------------------------------------------------- writing */

static void sjs_finish(struct sjs_sink *k)
{
    http_watch_stop(&k->watch);
    if (k->k.session)
        session_detach(k->k.session, &k->k);
    if (k->tr->streaming)
        evhttp_send_reply_end(k->req);
    sjs_free(k);
}

static void sjs_flush(struct sjs_sink *k);

static void sjs_written_cb(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct sjs_sink *k = arg;
    k->writing = false;
    if (k->ending) {
        sjs_finish(k);
        return;
    }
    if (k->pending)
        sjs_flush(k);
}

/* Polling: the whole answer is b; send it and finish. */
static void sjs_reply_once(struct sjs_sink *k, const struct gw_buf *b)
{
    http_watch_stop(&k->watch);
    if (k->k.session)
        session_detach(k->k.session, &k->k);
    http_reply_bytes(k->req, 200, b->data, b->len);
    sjs_free(k);
}

/* Streaming: write b as one chunk (the next waits until it left). */
/* Queue b; false if it could not be (the caller ends the response). */
static bool sjs_write(struct sjs_sink *k, const struct gw_buf *b)
{
    k->sent += b->len;
    k->writing = http_stream_chunk(k->req, b->data, b->len, sjs_written_cb, k);
    return k->writing;
}

/* Finish once what was queued has left; at once if nothing was. */
static void sjs_end_after(struct sjs_sink *k, bool queued)
{
    if (queued)
        k->ending = true;
    else
        sjs_finish(k);
}

/* Wrap one frame for this transport into b. */
static void wrap(struct sjs_sink *k, struct gw_buf *b, const struct gw_buf *frame)
{
    sockjs_wrap(b, k->tr->wrap, k->callback, frame->data, frame->len);
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

/* Deliver what the session has: messages, then the close. */
static void sjs_flush(struct sjs_sink *k)
{
    struct session *s = k->k.session;
    if (!s || k->opener)
        return;
    if (k->writing) {
        k->pending = true;
        return;
    }
    k->pending = false;
    struct gw_buf *frame = &frame_scratch;
    gw_buf_reset(frame);
    trim_scratch(&scratch); /* a huge previous batch is let go here */
    bool closing = false;
    if (take_messages(s, frame)) {
        wrap(k, &scratch, frame);
    } else if (session_close_ready(s, false)) {
        close_frame(s, frame);
        wrap(k, &scratch, frame);
        closing = true;
    }
    trim_scratch(frame);
    if (!scratch.len)
        return;
    if (!k->tr->streaming) {
        if (closing) {
            /* let go first: finishing the session detaches its sink */
            session_detach(s, &k->k);
            session_close_delivered(s);
        }
        sjs_reply_once(k, &scratch);
        return;
    }
    if (!sjs_write(k, &scratch)) {
        sjs_finish(k);
        return;
    }
    if (closing) {
        session_detach(s, &k->k);
        session_close_delivered(s);
        k->ending = true;
    } else if (k->sent >= k->limit) {
        /* response_limit: end this response, the session lives on */
        session_detach(s, &k->k);
        k->ending = true;
    } else if (session_queue_count(session_queue(s)) ||
               session_close_ready(s, false)) {
        k->pending = true;
    }
}

/* --------------------------------------------------------- sink ops */

static void sjs_wake(struct session_sink *sk)
{
    sjs_flush((struct sjs_sink *)sk);
}

static void sjs_detach(struct session_sink *sk, enum session_detach_why why)
{
    (void)why;
    struct sjs_sink *k = (struct sjs_sink *)sk;
    if (!k->tr->streaming) {
        /* a polling request must answer something: a heartbeat frame */
        struct gw_buf f = {0}, b = {0};
        sockjs_frame_heartbeat(&f);
        wrap(k, &b, &f);
        sjs_reply_once(k, &b);
        gw_buf_free(&f);
        gw_buf_free(&b);
        return;
    }
    if (k->writing)
        k->ending = true;
    else
        sjs_finish(k);
}

static void sjs_opened(struct session_sink *sk, const struct ws_close_info *fail)
{
    struct sjs_sink *k = (struct sjs_sink *)sk;
    struct gw_buf frame = {0}, b = {0};
    k->opener = false;
    if (fail) {
        /* The session is a tombstone now (SESSION_FAILED_OPEN_TOMBSTONE) */
        const char *why = fail->detail && *fail->detail ? fail->detail
                                                        : "upstream failed";
        sockjs_frame_close(&frame, WS_CLOSE_INTERNAL, why, strlen(why));
        wrap(k, &b, &frame);
        k->k.session = NULL;
        if (k->tr->streaming)
            sjs_end_after(k, sjs_write(k, &b));
        else
            sjs_reply_once(k, &b);
    } else {
        sockjs_frame_open(&frame);
        wrap(k, &b, &frame);
        if (k->tr->streaming) {
            session_attach(k->k.session, &k->k);
            if (sjs_write(k, &b))
                k->pending = true; /* anything that came with the open */
            else
                sjs_finish(k);
        } else {
            sjs_reply_once(k, &b);
        }
    }
    gw_buf_free(&frame);
    gw_buf_free(&b);
}

static const struct session_sink_ops sjs_ops = {
    .wake = sjs_wake,
    .detach = sjs_detach,
    .opened = sjs_opened,
};

static void sjs_heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct sjs_sink *k = arg;
    if (k->opener) {
        event_add(&k->heartbeat, k->ctx->tv_heartbeat);
        return;
    }
    struct gw_buf f = {0}, b = {0};
    sockjs_frame_heartbeat(&f);
    wrap(k, &b, &f);
    gw_buf_free(&f);
    if (!k->tr->streaming) {
        sjs_reply_once(k, &b);
        gw_buf_free(&b);
        return;
    }
    bool ok = k->writing || sjs_write(k, &b);
    gw_buf_free(&b);
    if (!ok) {
        sjs_finish(k);
        return;
    }
    event_add(&k->heartbeat, k->ctx->tv_heartbeat);
}

static void sjs_gone(struct http_watch *w)
{
    struct sjs_sink *k = (struct sjs_sink *)((char *)w -
                                             offsetof(struct sjs_sink, watch));
    log_debug("sockjs %s: browser went away", k->tr->name);
    struct session *s = k->k.session;
    if (k->opener && s) {
        /* The opener went away before "o": nothing was queued yet, so
         * the session is simply abandoned (the upstream gets 1001). */
        session_abort_open(s);
    } else if (s) {
        session_detach(s, &k->k);
    }
    sjs_free(k);
}

/* ------------------------------------------------------------ start */

struct sjs_sink *sjs_new(const struct sockjs_tctx *ctx,
                         struct evhttp_request *req,
                         const struct sjs_transport *tr, const char *callback,
                         uint64_t limit)
{
    struct sjs_sink *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->k.ops = &sjs_ops;
    k->req = req;
    k->ctx = ctx;
    k->tr = tr;
    k->limit = limit;
    if (callback)
        snprintf(k->callback, sizeof k->callback, "%s", callback);
    event_assign(&k->heartbeat, ctx->base, -1, 0, sjs_heartbeat_cb, k);
    /* Watch from the start: whatever this request ends up doing (a stream,
     * one frame, a close frame), the browser may leave before it is done. */
    if (http_watch_start(&k->watch, req, sjs_gone) < 0) {
        free(k);
        return NULL;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", tr->content_type);
    if (tr->streaming) {
        http_stream_start(req, 200);
        struct gw_buf b = {0};
        switch (tr->wrap) {
        case SOCKJS_WRAP_EVENTSOURCE: sockjs_prelude_eventsource(&b); break;
        case SOCKJS_WRAP_HTMLFILE: sockjs_prelude_htmlfile(&b, k->callback); break;
        default: sockjs_prelude_xhr_streaming(&b); break;
        }
        sjs_write(k, &b);
        k->sent = 0; /* the prelude does not count toward the limit */
        gw_buf_free(&b);
    }
    return k;
}

struct session_sink *sjs_sink(struct sjs_sink *k) { return &k->k; }

void sjs_start(const struct sockjs_tctx *ctx, struct sjs_sink *k,
               struct session *s, bool opener)
{
    k->opener = opener;
    k->k.session = s;
    if (!opener)
        session_attach(s, &k->k);
    event_add(&k->heartbeat, ctx->tv_heartbeat);
    if (!opener)
        sjs_flush(k);
}

void sjs_send_frame_and_end(struct sjs_sink *k, const struct gw_buf *frame)
{
    struct gw_buf b = {0};
    wrap(k, &b, frame);
    if (k->tr->streaming)
        sjs_end_after(k, sjs_write(k, &b));
    else
        sjs_reply_once(k, &b);
    gw_buf_free(&b);
}
