/*
 * transport_poll.c - JSON long-poll. Everything queued goes out in one
 * response; messages stay queued until the browser acknowledges them with
 * the next poll's ?ack=, so a lost response loses nothing.
 */
#include "transport.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <event2/http.h>

#include "framing_native.h"
#include "gw_log.h"
#include "http_util.h"
#include "session.h"
#include "transport_stream.h"

struct poll_sink {
    struct session_sink k;
    struct http_watch watch;
    struct evhttp_request *req;
    struct event timer;   /* poll_timeout (embedded: one allocation per poll) */
    uint64_t pos;   /* the browser's ack: messages after it are owed */
};

/* One scratch buffer for every response (single-threaded), so building a
 * batch allocates nothing in steady state. */
static struct gw_buf scratch;

int transport_ctx_init(struct transport_ctx *ctx, struct event_base *base,
                       const struct gw_config *cfg)
{
    struct timeval p, h;
    gw_ms_to_tv(cfg->poll_timeout_ms, &p);
    gw_ms_to_tv(cfg->heartbeat_ms, &h);
    ctx->base = base;
    ctx->cfg = cfg;
    ctx->tv_poll = event_base_init_common_timeout(base, &p);
    ctx->tv_heartbeat = event_base_init_common_timeout(base, &h);
    return ctx->tv_poll && ctx->tv_heartbeat ? 0 : GW_ENOMEM;
}

static bool poll_ready(struct session *s, uint64_t pos)
{
    uint64_t from, to;
    return session_queue_count(session_queue(s)) > 0 ||
           session_lost_since(s, pos, &from, &to) ||
           session_close_ready(s, false);
}

/* The batch for the browser at pos into b (reset first): what is queued,
 * evicted messages it missed, and the close once everything else is out.
 * s may be NULL (empty batch). Returns 0 or the builder's error (b then
 * holds nothing to send); *closed says whether the close was included. */
static int build_batch(struct session *s, uint64_t pos, struct gw_buf *b,
                       bool *closed)
{
    struct framing_native_batch bt;
    struct framing_native_lost lost, *lp = NULL;
    struct framing_native_close cl, *cp = NULL;
    gw_buf_reset(b);
    *closed = false;
    framing_native_batch_begin(&bt, b);
    if (s) {
        struct session_queue *q = session_queue(s);
        size_t idx = 0, off = 0;
        struct sq_msg m;
        while (session_queue_next(q, &idx, &off, &m))
            framing_native_batch_add(&bt, m.seq, m.binary, m.data, m.len);
        if (session_lost_since(s, pos, &lost.from, &lost.to))
            lp = &lost;
        if (session_close_ready(s, false)) {
            const char *r = session_close_reason(s);
            cl = (struct framing_native_close){ session_close_code(s), r,
                                                strlen(r) };
            cp = &cl;
        }
    }
    /* errors are sticky: end reports the first one */
    int rc = framing_native_batch_end(&bt, lp, cp);
    *closed = rc == 0 && cp;
    return rc;
}

static void poll_free(struct poll_sink *p)
{
    event_del(&p->timer);
    free(p);
}

/* Answer and finish. s: the session to read from, or NULL (empty). */
static void poll_respond(struct poll_sink *p, struct session *s)
{
    bool closed;
    int rc = build_batch(s, p->pos, &scratch, &closed);
    http_watch_stop(&p->watch);
    if (s)
        session_detach(s, &p->k);
    if (closed)
        session_close_delivered(s);
    /* Nothing was taken from the queue: the next poll gets it all. */
    if (rc < 0)
        http_reply_error(p->req, 500, "internal_error",
                         "cannot build the response: %s", gw_strerror(rc));
    else
        http_reply_json_str(p->req, 200, (const char *)scratch.data,
                            scratch.len);
    gw_buf_trim(&scratch, GW_SCRATCH_KEEP);
    poll_free(p);
}

static void poll_wake(struct session_sink *k)
{
    struct poll_sink *p = (struct poll_sink *)k;
    if (k->session && poll_ready(k->session, p->pos))
        poll_respond(p, k->session);
}

static void poll_detach(struct session_sink *k, enum session_detach_why why)
{
    (void)why;
    /* Replaced by a newer request, or the session is going away: complete
     * with an empty batch; the next request learns the rest. */
    poll_respond((struct poll_sink *)k, NULL);
}

static const struct session_sink_ops poll_ops = {
    .wake = poll_wake,
    .detach = poll_detach,
};

static void poll_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct poll_sink *p = arg;
    poll_respond(p, p->k.session);
}

static void poll_gone(struct http_watch *w)
{
    struct poll_sink *p = (struct poll_sink *)((char *)w -
                                               offsetof(struct poll_sink, watch));
    if (p->k.session)
        log_debug("poll: session %.*s: browser went away",
                  GW_LOG_ID(session_id(p->k.session),
                            strlen(session_id(p->k.session))));
    if (p->k.session)
        session_detach(p->k.session, &p->k);
    poll_free(p);
}

void transport_poll_handle(const struct transport_ctx *ctx,
                           struct evhttp_request *req, struct session *s,
                           uint64_t pos)
{
    struct poll_sink *p = calloc(1, sizeof *p);
    if (!p) {
        http_reply_error(req, 503, "out_of_memory", "out of memory");
        return;
    }
    p->k.ops = &poll_ops;
    p->k.transport = "poll";
    p->req = req;
    p->pos = pos;
    event_assign(&p->timer, ctx->base, -1, 0, poll_timeout_cb, p);
    session_attach(s, &p->k);
    if (poll_ready(s, pos)) {
        poll_respond(p, s);
        return;
    }
    if (http_watch_start(&p->watch, req, poll_gone) < 0) {
        poll_respond(p, s);
        return;
    }
    /* the session's own poll_timeout: a reload leaves it as it opened */
    event_add(&p->timer, transport_common_tv(ctx->base,
              session_config(s)->poll_timeout_ms, ctx->tv_poll));
}
