/*
 * http_front.h - the browser-facing HTTP server (evhttp): route table,
 * request limits, route CORS and the static demo files.
 * Requests for a dialect go to native_front.h or sockjs.h.
 */
#ifndef HTTP_FRONT_H
#define HTTP_FRONT_H

#include "gw_config.h"

struct event_base;
struct session_table;
struct http_front;

/* New front bound to cfg->listen and cfg->tls_listen; NULL (logged) on
 * failure. It takes a reference to cfg (see http_front_set_config);
 * sessions is borrowed. static_root: directory served at "/", or NULL. */
struct http_front *http_front_new(struct event_base *base,
                                  const struct gw_config *cfg,
                                  struct session_table *sessions,
                                  const char *static_root);
struct metrics;
/* Count every response by status into m (borrowed). */
void http_front_set_metrics(struct http_front *f, struct metrics *m);
/* Drain started: close the listening sockets (after accepting what the
 * kernel queued), so that a successor bound to the same addresses gets
 * every new connection (binary upgrade); from now on every response that
 * is not for a session of this process carries Connection: close, and a
 * native request for a session this process does not hold gets 503
 * "draining" (it is most likely the successor's). */
void http_front_set_draining(struct http_front *f);
/* Orderly stop, first step: accept no new connections. */
void http_front_stop_accepting(struct http_front *f);
/* SIGHUP: re-read [gateway] tls_cert_file/tls_key_file for new TLS
 * connections (open ones keep theirs). 0 (also without tls_listen), or
 * GW_EINVAL (logged; the current certificate stays). */
int http_front_reload_tls(struct http_front *f);
/* A reload: new requests are routed and limited by cfg (a reference is
 * taken, the previous one dropped): routes, origins, max_body,
 * request_timeout, header_timeout, min_body_rate, max_connections*,
 * static_root. Listeners stay. Requests for existing sessions go to the
 * route they opened on (native_front_session_route). GW_ENOMEM (logged;
 * nothing changed) if the new timeouts cannot be set up. */
int http_front_set_config(struct http_front *f, const struct gw_config *cfg);
void http_front_free(struct http_front *f);

/* Connection counters of the front's http_limits (borrowed). */
struct http_limits_stats;
const struct http_limits_stats *http_front_limits_stats(const struct http_front *f);

#endif
