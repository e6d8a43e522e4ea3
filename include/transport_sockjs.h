/*
 * transport_sockjs.h - the SockJS receiving transports (internal to the
 * SockJS front: sockjs_front.c creates a sink per receiving request).
 */
#ifndef TRANSPORT_SOCKJS_H
#define TRANSPORT_SOCKJS_H

#include <stdbool.h>
#include <stdint.h>
#include "framing_sockjs.h"

struct evhttp_request;
struct event_base;
struct session;
struct session_sink;
struct transport_sockjs_sink;

struct transport_sockjs_ctx {
    struct event_base *base;
    const struct timeval *tv_heartbeat;
};

struct transport_sockjs_kind {
    const char *name;          /* "xhr", "xhr_streaming", ... */
    const char *content_type;
    enum framing_sockjs_wrap wrap;
    bool streaming;
    bool post;                 /* POST (else GET) */
    bool callback;             /* needs ?c= */
};

/* New sink for a receiving request; streaming transports start the
 * response (headers + prelude) now. NULL on ENOMEM (nothing sent). */
struct transport_sockjs_sink *transport_sockjs_new(const struct transport_sockjs_ctx *ctx,
                         struct evhttp_request *req,
                         const struct transport_sockjs_kind *tr, const char *callback,
                         uint64_t limit);
struct session_sink *transport_sockjs_session_sink(struct transport_sockjs_sink *k);
/* Attach to s (opener: wait for the upstream handshake, then "o"). */
void transport_sockjs_start(const struct transport_sockjs_ctx *ctx, struct transport_sockjs_sink *k,
               struct session *s, bool opener);
/* SockJS's close code for a receiving request cut after "o". */
#define SJS_CLOSE_INTERRUPTED 1002

/* Answer one frame (a close, 2010, ...) and finish. */
void transport_sockjs_send_frame_and_end(struct transport_sockjs_sink *k, const struct gw_buf *frame);

#endif
