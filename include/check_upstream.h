/*
 * check_upstream.h - `pollgate --check-upstream`: open a WebSocket to every
 * route's upstream, complete the handshake, close it with 1000, and print
 * one line per route. Also used at start-up to log upstream reachability.
 */
#ifndef CHECK_UPSTREAM_H
#define CHECK_UPSTREAM_H

#include <stdio.h>
#include "gw_config.h"

struct event_base;
struct evdns_base;
typedef struct ssl_ctx_st SSL_CTX;

/*
 * Check every route concurrently on base (runs the loop until all are
 * done). Prints "NAME URL ok 3.1 ms" or "NAME URL FAILED reason" per route
 * to out (NULL: log instead). Returns the number of failed routes.
 */
int check_upstream_run(struct event_base *base, struct evdns_base *dns,
                       const struct gw_config *cfg, SSL_CTX *ssl_ctx,
                       FILE *out);

#endif
