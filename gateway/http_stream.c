/*
 * http_stream.c - one long-lived HTTP response: write path, write-completion
 * flow control, heartbeat, end after a byte limit, browser gone, and the
 * single end path (see http_stream.h).
 *
 * Like Redis's freeClientAsync, nothing is freed where it was noticed:
 * every entry from the outside (evhttp's write callback, the heartbeat
 * timer, the watch, the owner's wake/end) counts depth, and an end asked
 * for at depth > 0 only sets `ending`; settle() completes it when the
 * outermost entry returns and nothing is in flight.
 */
#include "http_stream.h"
#include "http_util.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include "gw_common.h"
#include "gw_log.h"

static void settle(struct http_stream *st);

/* ------------------------------------------------------ the write path */

static void written_cb(struct evhttp_connection *evcon, void *arg);

/* The one place bytes leave for the browser (writing straight to the
 * socket when nothing is pending, falling back to the bufferevent on a
 * short write, would go here and nowhere else). One evbuffer for every chunk
 * (single-threaded): evhttp moves its contents out, so it is empty again
 * after each use. evhttp silently does nothing (and never calls back) for
 * an empty chunk or a request without a connection: report that. */
static bool put_chunk(struct http_stream *st, const void *data, size_t len)
{
    static struct evbuffer *b;
    if (!b)
        b = evbuffer_new();
    if (!b || !evhttp_request_get_connection(st->req) ||
        evbuffer_add(b, data, len) != 0) {
        if (b)
            evbuffer_drain(b, evbuffer_get_length(b));
        return false;
    }
    evhttp_send_reply_chunk_with_cb(st->req, b, written_cb, st);
    st->writing = true;
    return true;
}

/* ------------------------------------------------------- the end path */

static void finish(struct http_stream *st)
{
    st->ended = true;
    http_watch_stop(&st->watch);
    event_del(&st->heartbeat);
    if (st->gone) {
        if (st->ops->gone) /* the request is dead: no reply */
            st->ops->gone(st);
    } else if (st->begun) {
        evhttp_send_reply_end(st->req);
    } else if (!st->replied) {
        http_reply_bytes(st->req, 200, NULL, 0);
    }
    st->ops->ended(st); /* frees st */
}

/* Complete an end asked for, if nothing holds it back any more. */
static void settle(struct http_stream *st)
{
    if (st->depth == 0 && st->ending && !st->writing && !st->ended)
        finish(st);
}

static void run_flush(struct http_stream *st)
{
    uint64_t before = st->sent;
    st->pending = false;
    st->depth++;
    st->ops->flush(st);
    st->depth--;
    /* response_limit is checked once a batch was written, as a whole */
    if (st->sent != before && st->sent >= st->limit)
        st->ending = true;
}

/* ---------------------------------------------------------- callbacks */

static void written_cb(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct http_stream *st = arg;
    st->writing = false;
    if (st->pending && !st->ending)
        run_flush(st);
    settle(st);
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct http_stream *st = arg;
    if (!st->writing && !st->ending) {
        /* a chunk in flight already tells the browser we are here */
        st->depth++;
        st->ops->heartbeat(st);
        st->depth--;
    }
    if (st->ending)
        settle(st);
    else
        event_add(&st->heartbeat, st->tv_heartbeat);
}

static void gone_cb(struct http_watch *w)
{
    struct http_stream *st = (struct http_stream *)((char *)w -
                                   offsetof(struct http_stream, watch));
    char ub[256];
    log_debug("%s: browser went away", http_log_uri(st->req, ub, sizeof ub));
    /* The request is dead (the watch frees it after this returns): no
     * write completes any more and none may be started. */
    st->gone = true;
    st->ending = true;
    st->writing = false;
    settle(st); /* frees st; the watch does not touch w after */
}

/* ------------------------------------------------------------- public */

int http_stream_init(struct http_stream *st, struct evhttp_request *req,
                     const struct http_stream_ops *ops)
{
    *st = (struct http_stream){ .req = req, .ops = ops, .limit = UINT64_MAX };
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon)
        return GW_ESTATE;
    event_assign(&st->heartbeat, evhttp_connection_get_base(evcon), -1, 0,
                 heartbeat_cb, st);
    return http_watch_start(&st->watch, req, gone_cb);
}

void http_stream_begin(struct http_stream *st, int status,
                       const void *prelude, size_t len, uint64_t limit)
{
    struct evhttp_request *req = st->req;
    if (req->major < 1 || (req->major == 1 && req->minor < 1)) {
        /* libevent 2.1 answers an HTTP/1.0 keep-alive request with
         * "Content-Length: 0" for a stream: forget the keep-alive wish. */
        evhttp_remove_header(evhttp_request_get_input_headers(req), "Connection");
        evhttp_add_header(evhttp_request_get_output_headers(req), "Connection",
                          "close");
    }
    evhttp_send_reply_start(req, status, http_reason(status));
    st->begun = true;
    st->limit = limit;
    if (len && !put_chunk(st, prelude, len))
        st->ending = true;
}

void http_stream_heartbeat_start(struct http_stream *st,
                                 const struct timeval *tv)
{
    st->tv_heartbeat = tv;
    if (st->ops->heartbeat && !st->ended)
        event_add(&st->heartbeat, tv);
}

bool http_stream_write(struct http_stream *st, const void *data, size_t len)
{
    if (st->ending || st->ended)
        return false;
    if (!len)
        return true;
    if (!st->begun) {
        http_watch_stop(&st->watch);
        http_reply_bytes(st->req, 200, data, len);
        st->replied = true;
        st->ending = true;
        return true;
    }
    if (!put_chunk(st, data, len)) {
        st->ending = true;
        return false;
    }
    st->sent += len;
    return true;
}

void http_stream_wake(struct http_stream *st)
{
    if (st->ended)
        return;
    if (!st->ending) {
        if (st->writing || st->depth) {
            st->pending = true; /* once what is in flight has left */
            return;
        }
        run_flush(st);
    }
    settle(st);
}

void http_stream_end(struct http_stream *st)
{
    if (st->ended)
        return;
    st->ending = true;
    settle(st);
}

bool http_stream_ending(const struct http_stream *st)
{
    return st->ending || st->ended;
}
