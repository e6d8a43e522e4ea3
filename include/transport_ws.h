/*
 * transport_ws.h - a browser WebSocket connection (ws_server) as a session
 * sink: one session, with its own upstream, per connection.
 *
 *   raw     <sockjs_path>/websocket, GET <path>/ws: each browser message
 *           is one upstream message and back, text and binary as they
 *           are, close code and reason passed through both ways. The 101
 *           is answered only once the upstream handshake succeeded (with
 *           the subprotocol the upstream chose among the browser's), else
 *           502 / 504 / 503 like POST <path>/sessions.
 *   sockjs  <sockjs_path>/<server>/<session>/websocket: SockJS framing in
 *           text frames ("o" once the upstream is open, "h", "a[...]",
 *           "c[code,reason]"); the 101 comes at once.
 *
 * Back-pressure both ways: messages toward the browser stay in the
 * session queue (bounded by buffer_bytes and the overflow policy) while
 * the connection's output holds more than its limit, so a browser that
 * does not read pauses its upstream; a browser message the upstream's
 * send buffer cannot take is held (one, at most max_message) and reading
 * from the browser stops until it went out. Messages written to the
 * connection count as delivered: there is no resume on this transport.
 */
#ifndef TRANSPORT_WS_H
#define TRANSPORT_WS_H

#include "gw_config.h"

struct evhttp_request;
struct event_base;
struct session_table;

struct transport_ws_ctx {
    struct event_base *base;
    const struct gw_config *cfg;          /* borrowed */
    struct session_table *sessions;       /* borrowed */
    const struct timeval *tv_heartbeat;   /* SockJS "h" period (common) */
};

enum transport_ws_kind {
    TRANSPORT_WS_RAW = 0,
    TRANSPORT_WS_SOCKJS,
};

/* Serve an upgrade request on route r (route, CORS and websocket = on
 * already checked): a bad upgrade gets the reference's 400 / 405 / 426. */
void transport_ws_handle(const struct transport_ws_ctx *ctx,
                         struct evhttp_request *req, const struct gw_route *r,
                         enum transport_ws_kind kind);

#endif
