/*
 * sockjs.h - the SockJS dialect (protocol 0.3) of a route with sockjs = on:
 * greeting, /info, the iframe page, the receiving transports (xhr,
 * xhr_streaming, eventsource, htmlfile, jsonp) and the sending ones
 * (xhr_send, jsonp_send), all over the same session core as pollgate's
 * own protocol. Each SockJS session is one upstream WebSocket.
 */
#ifndef SOCKJS_FRONT_H
#define SOCKJS_FRONT_H

#include <stddef.h>
#include "gw_config.h"
#include "transport_sockjs.h"
#include "transport_ws.h"

struct evhttp_request;
struct event_base;
struct session_table;

struct sockjs_front_ctx {
    const struct gw_config *cfg;
    struct session_table *sessions;
    struct transport_sockjs_ctx tctx;   /* the loop and heartbeat the sinks use */
    struct transport_ws_ctx ws; /* the websocket transports' */
};

/* Is path under the SockJS base of a route? Sets *route_idx and *rest
 * (what follows the base: "", "/", "/info", ...). Longest base wins. */
const struct gw_route *sockjs_front_match(const struct gw_config *cfg,
                                    const char *path, size_t *route_idx,
                                    const char **rest);

/* A request for an existing SockJS session
 * ("<base>/<server>/<session>/<transport>", not websocket) is served under
 * the route the session opened on, even after a reload removed or changed
 * it (see native_front_session_route). Returns that route and sets *rest,
 * or NULL. */
const struct gw_route *sockjs_front_session_route(struct session_table *t,
                                                  const char *path,
                                                  const char **rest);

/* Answer a request under a route's SockJS base. */
void sockjs_front_handle(const struct sockjs_front_ctx *ctx, struct evhttp_request *req,
                   const struct gw_route *r, size_t route_idx,
                   const char *rest);

#endif
