/*
 * http_stream.h - one long-lived HTTP response toward a browser (an SSE
 * stream, a SockJS receiving request; later a WebSocket). It owns what
 * every such response needs, so the transports only produce bytes:
 *
 *   - the evhttp request, and noticing the browser went away (http_watch);
 *   - a heartbeat timer (embedded event, the caller's common timeout);
 *   - flow control: one chunk in flight; a wake while it is on its way
 *     makes the owner's flush run once it has left, so a slow browser
 *     pushes back instead of growing our output buffer;
 *   - ending after a byte limit (SockJS response_limit);
 *   - one end path: ops->ended runs exactly once, never inside one of the
 *     stream's own callbacks (an end asked for there completes when the
 *     callback has returned; one asked for while a chunk is in flight
 *     completes when it has left).
 *
 * The stream is embedded in its owner (no allocation of its own); the
 * owner frees itself in ops->ended. All writes go through one function in
 * http_stream.c, so how bytes reach the socket can change in one place.
 *
 * A stream that was never begun (http_stream_begin) is a one-shot
 * response: its first write is the whole body of a 200 reply and ends it
 * (SockJS polling transports).
 */
#ifndef HTTP_STREAM_H
#define HTTP_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "http_util.h"

struct bufferevent;
struct evbuffer;
struct evhttp_request;
struct http_stream;

struct http_stream_ops {
    /* Nothing is in flight and a wake is due: write the next batch with
     * http_stream_write (or nothing). Required. */
    void (*flush)(struct http_stream *st);
    /* The heartbeat period passed with nothing in flight: write a
     * heartbeat (or answer a one-shot request). NULL: never armed. */
    void (*heartbeat)(struct http_stream *st);
    /* The browser went away; the request is gone (do not touch it).
     * ended follows. NULL: nothing extra to do. */
    void (*gone)(struct http_stream *st);
    /* The stream is over (ended, failed or gone): let go of everything
     * and free the owner, this stream included. Required; called once. */
    void (*ended)(struct http_stream *st);
};

/* Embed in the owner; fields are private to http_stream.c. */
struct http_stream {
    struct http_watch watch;
    struct event heartbeat;
    struct evhttp_request *req;
    const struct http_stream_ops *ops;
    const struct timeval *tv_heartbeat;
    struct bufferevent *sock;   /* evhttp's bufferevent, when direct */
    struct evbuffer *sock_out;  /* its output */
    uint64_t sent;     /* bytes written after the prelude */
    uint64_t limit;    /* end once sent reaches it (after a flush) */
    unsigned depth;    /* inside our callbacks: ends wait until 0 */
    bool begun;        /* streaming (else one-shot) */
    bool chunked;      /* streaming with chunked framing (HTTP/1.1) */
    bool replied;      /* one-shot: the reply is sent */
    bool writing;      /* a chunk is on its way out */
    bool pending;      /* flush again once it has left */
    bool ending;       /* end once nothing is in flight */
    bool gone;         /* the browser went away: end without replying */
    bool ended;
    uint8_t direct;    /* enum http_stream_direct: written around evhttp? */
};

enum http_stream_direct {
    HTTP_STREAM_DIRECT_UNKNOWN = 0, HTTP_STREAM_DIRECT_YES, HTTP_STREAM_DIRECT_NO
};

/*
 * Take over req (borrowed until ended) and watch it for the browser
 * leaving. ops is borrowed for the stream's life. GW_ESTATE if req has no
 * connection any more (then nothing is set up and ended is not called).
 */
int http_stream_init(struct http_stream *st, struct evhttp_request *req,
                     const struct http_stream_ops *ops);

/*
 * Start a streaming response (headers added before this call): status
 * line and headers, then prelude (len may be 0; padding and the like, not
 * counted toward limit). The response ends once limit bytes were written
 * by flushes (UINT64_MAX: never). An HTTP/1.0 stream has no chunking, so
 * it can only end by closing the connection: the response says so.
 */
void http_stream_begin(struct http_stream *st, int status,
                       const void *prelude, size_t len, uint64_t limit);

/* Arm the heartbeat: ops->heartbeat every tv (a common timeout, borrowed)
 * while nothing is in flight. */
void http_stream_heartbeat_start(struct http_stream *st,
                                 const struct timeval *tv);

/*
 * Queue len bytes (copied). Streaming: one chunk, normally written from
 * flush or heartbeat when nothing is in flight. One-shot: the whole reply,
 * and the stream ends. False if nothing was written (the stream is ending
 * or has no connection): the stream then ends. Never ends it before
 * returning; len 0 writes nothing and returns true.
 */
bool http_stream_write(struct http_stream *st, const void *data, size_t len);

/*
 * There is something to deliver: run ops->flush now if nothing is in
 * flight, else once it has left. Ignored once ending. Outside the
 * stream's callbacks this may end the stream (an end asked for earlier)
 * and so free the owner: call it last.
 */
void http_stream_wake(struct http_stream *st);

/*
 * End the response once what is in flight has left (a never-answered
 * one-shot request gets an empty 200). Idempotent. Outside the stream's
 * callbacks with nothing in flight, ops->ended runs before this returns.
 */
void http_stream_end(struct http_stream *st);

/* Is the stream ending (end asked for, write failed, limit reached)? */
bool http_stream_ending(const struct http_stream *st);

#endif
