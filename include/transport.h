/*
 * transport.h - ways of reaching a browser. Each takes over an evhttp
 * request, attaches it to a session as a sink and writes in its own format.
 * The HTTP front has already checked the route, CORS and the session state.
 */
#ifndef TRANSPORT_H
#define TRANSPORT_H

#include <stdint.h>
#include "gw_config.h"

struct evhttp_request;
struct event_base;
struct session;

/* Shared per-process context: the loop, the configuration and the common
 * timeouts of poll_timeout and heartbeat. */
struct transport_ctx {
    struct event_base *base;
    const struct gw_config *cfg;
    const struct timeval *tv_poll;       /* poll_timeout */
    const struct timeval *tv_heartbeat;  /* heartbeat */
};

int transport_ctx_init(struct transport_ctx *ctx, struct event_base *base,
                       const struct gw_config *cfg);

/* GET P/sessions/<id>/poll: answer now or hold until data or timeout.
 * pos: the browser's position (its ack), for reporting evicted messages. */
void transport_poll_handle(const struct transport_ctx *ctx,
                           struct evhttp_request *req, struct session *s,
                           uint64_t pos);

/* GET P/sessions/<id>/events: a Server-Sent Events stream resuming after
 * pos (Last-Event-ID, or the last ack). */
void transport_sse_handle(const struct transport_ctx *ctx,
                          struct evhttp_request *req, struct session *s,
                          uint64_t pos);

#endif
