/*
 * native_front.h - the endpoints of pollgate's own protocol (v1) under a
 * route's path P, beside sockjs.h's SockJS dialect:
 *
 *   POST   P/sessions               open (201 once the upstream accepted)
 *   GET    P/sessions/<id>/poll     long-poll   (transport_poll)
 *   GET    P/sessions/<id>/events   SSE stream  (transport_sse)
 *   POST   P/sessions/<id>/send     browser -> upstream messages
 *   POST   P/sessions/<id>/ack      acknowledge without polling
 *   POST   P/sessions/<id>/close, DELETE P/sessions/<id>   close
 *
 * The HTTP front has already matched the route, checked the body limit and
 * the route's CORS Origin; this answers preflights and everything else.
 * Response bodies are framing_native.h's.
 */
#ifndef NATIVE_FRONT_H
#define NATIVE_FRONT_H

#include "gw_config.h"

struct evhttp_request;
struct session_table;
struct transport_ctx;

struct native_ctx {
    const struct gw_config *cfg;          /* borrowed */
    struct session_table *sessions;       /* borrowed */
    const struct transport_ctx *tctx;     /* borrowed: the sinks keep it */
};

/* Answer a request on route r; rest is the path after the route's prefix
 * ("/sessions", "/sessions/<id>/poll", ...). 404 for anything else. */
void native_handle(const struct native_ctx *ctx, struct evhttp_request *req,
                   const struct gw_route *r, const char *rest);

/*
 * A request for an existing native session (path "<P>/sessions/<id>" or
 * "<P>/sessions/<id>/<action>") is served under the route the session
 * opened on, whatever the current config says of P: after a reload that
 * removed or changed that route, its sessions go on being reached (and
 * checked, CORS included) with the settings they opened with. Returns
 * that route (sets *rest to "/sessions/...") or NULL (not such a path, or
 * no such session: route it as usual).
 */
const struct gw_route *native_front_session_route(struct session_table *t,
                                                  const char *path,
                                                  const char **rest);

#endif
