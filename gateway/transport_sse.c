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
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "framing_native.h"
#include "gw_log.h"
#include "http_util.h"
#include "session.h"
#include "transport_stream.h"

struct sse_sink {
    struct transport_stream ts; /* first */
    uint64_t pos;   /* last seq this stream has written (or resumed after) */
};

static struct gw_buf scratch;

static struct sse_sink *sse_of(struct http_stream *st)
{
    return (struct sse_sink *)((char *)st - offsetof(struct sse_sink, ts.st));
}

/* http_stream: nothing in flight; write everything not yet written, the
 * lost notice, and the close. */
static void sse_flush(struct http_stream *st)
{
    struct sse_sink *k = sse_of(st);
    struct session *s = k->ts.k.session;
    if (!s)
        return;
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
     * and the next one replays from the last acknowledged message (so does
     * a chunk that cannot be queued). */
    bool ok = false;
    if (rc < 0) {
        log_warn("events: session %.*s: cannot build a chunk: %s",
                 GW_LOG_ID(session_id(s), strlen(session_id(s))), gw_strerror(rc));
        http_stream_end(st);
    } else {
        ok = http_stream_write(st, b->data, b->len);
    }
    gw_buf_trim(&scratch, GW_SCRATCH_KEEP);
    if (ok && closing) {
        session_detach(s, &k->ts.k);
        session_close_delivered(s);
        http_stream_end(st);
    }
}

static void sse_heartbeat(struct http_stream *st)
{
    static const char beat[] = ": heartbeat\n\n";
    http_stream_write(st, beat, sizeof beat - 1);
}

static void sse_gone(struct http_stream *st)
{
    struct sse_sink *k = sse_of(st);
    if (k->ts.k.session) {
        /* Nothing written is lost: it stays queued until acknowledged,
         * and the next stream replays from the last acknowledged seq. */
        struct session *s = k->ts.k.session;
        session_detach(s, &k->ts.k);
        session_queue_unmark_written(session_queue(s));
    }
}

static void sse_ended(struct http_stream *st)
{
    struct sse_sink *k = sse_of(st);
    session_detach(k->ts.k.session, &k->ts.k);
    free(k);
}

static const struct http_stream_ops sse_stream_ops = {
    .flush = sse_flush,
    .heartbeat = sse_heartbeat,
    .gone = sse_gone,
    .ended = sse_ended,
};

/* Deliver when writable; when the session lets go, end once the last
 * chunk has left. */
static const struct session_sink_ops sse_ops = {
    .wake = transport_stream_wake,
    .detach = transport_stream_detach,
};

void transport_sse_handle(const struct transport_ctx *ctx,
                          struct evhttp_request *req, struct session *s,
                          uint64_t pos)
{
    struct gw_buf b = { 0 };
    const struct gw_config *cfg = session_config(s); /* as it opened */
    if (framing_native_sse_preamble(&b, cfg->poll_timeout_ms < 2000 ? 1000 : 2000) < 0) {
        gw_buf_free(&b);
        http_reply_error(req, 503, "out_of_memory", "out of memory");
        return;
    }
    struct sse_sink *k = calloc(1, sizeof *k);
    if (!k || http_stream_init(&k->ts.st, req, &sse_stream_ops) < 0) {
        free(k);
        gw_buf_free(&b);
        http_reply_error(req, 503, "out_of_memory", "out of memory");
        return;
    }
    k->ts.k.ops = &sse_ops;
    k->ts.k.transport = "sse";
    k->pos = pos;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    http_add_common_headers(req);

    http_stream_begin(&k->ts.st, 200, b.data, b.len, UINT64_MAX);
    gw_buf_free(&b);

    /* A new stream replays everything not acknowledged. */
    session_attach(s, &k->ts.k);
    session_queue_unmark_written(session_queue(s));
    http_stream_heartbeat_start(&k->ts.st, transport_common_tv(ctx->base,
                                cfg->heartbeat_ms, ctx->tv_heartbeat));
    http_stream_wake(&k->ts.st); /* last: may end (and free) the stream */
}
