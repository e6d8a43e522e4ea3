/*
 * gw_listen.h - the listening sockets of the browser-facing front: every
 * address of [gateway] listen / tls_listen, bound with SO_REUSEPORT (a new
 * pollgate binds the same addresses while the old one drains: binary
 * upgrade) and handed to an evhttp server.
 *
 * Ownership: the evconnlistener of each address belongs to the evhttp it
 * was bound to (evhttp_free closes it). The set only keeps borrowed
 * pointers to them, to pause accepts when descriptors run out and to close
 * them on drain (evhttp_del_accept_socket), and owns its timers. Free the
 * set before the evhttp servers. At most 4 sets per process (the front's
 * and the admin's).
 */
#ifndef GW_LISTEN_H
#define GW_LISTEN_H

#include <stddef.h>

#include "gw_config.h"

struct event_base;
struct evhttp;
struct gw_listen_set;

/* New empty set. NULL on allocation failure. */
struct gw_listen_set *gw_listen_set_new(struct event_base *base);

/* Bind every address of addrs (borrowed) and attach it to http (borrowed),
 * each with an accept queue of backlog connections ([gateway]
 * listen_backlog; a warning is logged, once, when it is above the kernel's
 * net.core.somaxconn, which caps it). what ("http", "https", "admin") is
 * used in log lines. 0, or GW_EINVAL (not a numeric address) / GW_EIO
 * (bind failed), logged. */
int gw_listen_set_bind(struct gw_listen_set *ls, struct evhttp *http,
                       const struct gw_listen *addrs, size_t n, int backlog,
                       const char *what);

/* Accept no new connections (orderly stop); the sockets stay bound. */
void gw_listen_set_disable(struct gw_listen_set *ls);

/* Drain start: leave every address, so that the kernel sends new
 * connections to a successor bound to the same addresses (binary
 * upgrade), or refuses them. Connections already queued are accepted
 * first (Linux resets those left in a closed SO_REUSEPORT listener's
 * queue): each listener closes on the first loop turn its queue is empty,
 * after 2 s at most. Connections already accepted are not touched. */
void gw_listen_set_close(struct gw_listen_set *ls);

/* "127.0.0.1:8080" / "[::1]:8080" into buf. */
void gw_listen_fmt(const struct gw_listen *a, char *buf, size_t n);

void gw_listen_set_free(struct gw_listen_set *ls);

#endif
