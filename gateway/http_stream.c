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

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/http_struct.h>
#include <event2/keyvalq_struct.h>

#include "access_log.h"
#include "gw_common.h"
#include "gw_log.h"

static void settle(struct http_stream *st);

/* ------------------------------------------------------ the write path */

static void written_cb(struct evhttp_connection *evcon, void *arg);

/* The chunk header ("<hex>\r\n") for len, without printf; returns its
 * length. out has room for 16 hex digits and the CRLF. */
static size_t chunk_head(char out[18], size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = hex[len & 15];
        len >>= 4;
    } while (len && n < sizeof tmp);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\r';
    out[n + 1] = '\n';
    return n + 2;
}

/* Hand the bytes of iov past the first skip to evhttp's bufferevent with
 * written_cb as the completion. raw: they are already framed (the tail of a
 * short direct write), so evhttp must not add chunk framing of its own:
 * libevent 2.1 frames a chunk only when req->chunked is set, which is
 * lifted for this one call. One evbuffer for every chunk (single-threaded):
 * evhttp moves its contents out, so it is empty again after each use. */
static bool queue_chunk(struct http_stream *st, const struct iovec *iov,
                        int cnt, size_t skip, bool raw)
{
    static struct evbuffer *b;
    if (!b)
        b = evbuffer_new();
    if (!b)
        return false;
    for (int i = 0; i < cnt; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        if (evbuffer_add(b, (const char *)iov[i].iov_base + skip,
                         iov[i].iov_len - skip) != 0) {
            evbuffer_drain(b, evbuffer_get_length(b));
            return false;
        }
        skip = 0;
    }
    struct evhttp_request *req = st->req;
    unsigned chunked = req->chunked;
    if (raw)
        req->chunked = 0;
    evhttp_send_reply_chunk_with_cb(req, b, written_cb, st);
    req->chunked = chunked;
    st->writing = true;
    return true;
}

/* Can this stream be written around evhttp's bufferevent? Decided once
 * per stream (evhttp keeps a connection's bufferevent for its life): only
 * on plain TCP (TLS keeps bufferevent_openssl) and only on the socket's own
 * bufferevent (http_limits watches its input, nothing sits under or over
 * it; should a layer ever sit on top, the stream takes the evhttp path). */
static bool direct_setup(struct http_stream *st)
{
    st->direct = HTTP_STREAM_DIRECT_NO;
    struct evhttp_connection *evcon = evhttp_request_get_connection(st->req);
    struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
    if (!bev || bufferevent_get_underlying(bev) != NULL ||
        bufferevent_openssl_get_ssl(bev) != NULL)
        return false;
    st->sock = bev;
    st->sock_out = bufferevent_get_output(bev);
    st->direct = HTTP_STREAM_DIRECT_YES;
    return true;
}

/* Try to send the chunk with one sendmsg() straight to the socket: only
 * when the stream may (direct_setup) and nothing is queued in the
 * bufferevent (bytes must not overtake each other). Returns how many
 * bytes of the framed chunk left (total: all of it, no completion callback
 * needed since nothing is in flight), or -1 when the direct path does not
 * apply or the socket failed (the caller queues everything and lets the
 * bufferevent meet and report the error). */
static ssize_t write_direct(struct http_stream *st, struct iovec *iov,
                            int iovcnt, size_t total)
{
    if (st->writing || st->direct == HTTP_STREAM_DIRECT_NO ||
        (st->direct == HTTP_STREAM_DIRECT_UNKNOWN && !direct_setup(st)))
        return -1;
    if (evbuffer_get_length(st->sock_out) != 0)
        return -1;
    /* st->sock is evhttp's for as long as the stream is not gone (evhttp
     * reports the connection's end, gone_cb, before freeing it, and then
     * forgets it here); the socket is asked each time, as a closed one
     * has -1 */
    evutil_socket_t fd = bufferevent_getfd(st->sock);
    if (fd < 0)
        return -1;
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
    ssize_t n;
    do {
        n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    return (size_t)n <= total ? n : (ssize_t)total;
}

/* The one place bytes leave for the browser: straight to the socket when
 * nothing is pending (no write event armed and disarmed, no evbuffer
 * copies, the chunk header built without printf), falling back to the
 * bufferevent on a short write. evhttp silently does nothing (and never
 * calls back) for an empty chunk or a request without a connection:
 * report that. */
static bool put_chunk(struct http_stream *st, const void *data, size_t len)
{
    if (!len)
        return false;
    /* the direct path touches neither the request nor the connection
     * (a browser that left is known by then: st->gone, no more writes) */
    access_log_bytes(st->req, len);
    char head[18];
    struct iovec iov[3];
    int cnt = 0;
    size_t total = 0;
    if (st->chunked) {
        iov[cnt++] = (struct iovec){ head, chunk_head(head, len) };
        total += iov[0].iov_len;
    }
    iov[cnt++] = (struct iovec){ (void *)data, len };
    total += len;
    if (st->chunked) {
        iov[cnt++] = (struct iovec){ (void *)"\r\n", 2 };
        total += 2;
    }
    ssize_t sent = write_direct(st, iov, cnt, total);
    if (sent < 0) { /* everything through evhttp, which frames it itself */
        if (!evhttp_request_get_connection(st->req))
            return false;
        return queue_chunk(st, &iov[cnt == 3 ? 1 : 0], 1, 0, false);
    }
    if ((size_t)sent == total)
        return true;
    /* short write: the framed rest goes behind, as raw bytes */
    return queue_chunk(st, iov, cnt, (size_t)sent, true);
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

/* Flush batches while one is due and nothing holds the stream back. A wake
 * from inside a callback only sets pending; with the direct write path a
 * batch usually leaves at once and no written_cb follows, so whoever holds
 * the outermost entry picks the pending batch up here. */
static void run_flush(struct http_stream *st)
{
    do {
        uint64_t before = st->sent;
        st->pending = false;
        st->depth++;
        st->ops->flush(st);
        st->depth--;
        /* response_limit is checked once a batch was written, as a whole */
        if (st->sent != before && st->sent >= st->limit)
            st->ending = true;
    } while (st->pending && !st->writing && !st->ending && st->depth == 0);
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
        if (st->pending && !st->writing && !st->ending)
            run_flush(st);
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
    st->direct = HTTP_STREAM_DIRECT_NO; /* its bufferevent goes away */
    st->sock = NULL;
    st->sock_out = NULL;
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
    st->chunked = req->chunked; /* evhttp chose: HTTP/1.1 and no length */
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
