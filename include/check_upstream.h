/*
 * check_upstream.h - open a WebSocket to every route's upstream, complete
 * the handshake, close it with 1000, and report per route. One
 * asynchronous check (callbacks on the caller's event loop, never a loop
 * of its own) serves three users: the start-up log line, the admin
 * listener's periodic health probe, and `pollgate --check-upstream`
 * (check_upstream_run, which owns its loop because nothing else runs).
 */
#ifndef CHECK_UPSTREAM_H
#define CHECK_UPSTREAM_H

#include <stdbool.h>
#include <stdio.h>
#include "gw_common.h"
#include "gw_config.h"

struct event_base;
struct evdns_base;
typedef struct ssl_ctx_st SSL_CTX;

struct upstream_check;

struct upstream_check_result {
    const struct gw_route *route;  /* in the cfg given (the check holds it) */
    bool ok;                       /* the handshake completed */
    double ms;                     /* time to the completed handshake */
    char reason[GW_ERROR_MSG_MAX + 64]; /* why not ok; or a note when ok */
};

/* Called once, from the event loop (not inside a client callback), when
 * every route has an answer. The check may be freed inside it. */
typedef void (*upstream_check_done_fn)(struct upstream_check *c, void *arg);

/*
 * Start probing every route of cfg concurrently on base. The check takes
 * a reference to cfg (a reload may replace the current one meanwhile);
 * dns and ssl_ctx are borrowed until the check is freed. Returns a new check
 * (free with upstream_check_free) or NULL on ENOMEM.
 */
struct upstream_check *upstream_check_start(struct event_base *base,
                                            struct evdns_base *dns,
                                            const struct gw_config *cfg,
                                            SSL_CTX *ssl_ctx,
                                            upstream_check_done_fn done,
                                            void *arg);
bool upstream_check_done(const struct upstream_check *c);
size_t upstream_check_count(const struct upstream_check *c);
/* Result of route i (cfg order); valid until the check is freed. A probe
 * still under way reads as failed with reason "interrupted". */
const struct upstream_check_result *upstream_check_result(
    const struct upstream_check *c, size_t i);
/* Cancel probes still under way (their connections are dropped) and
 * free. NULL ok. Not inside done's caller other than done itself. */
void upstream_check_free(struct upstream_check *c);

/* Log one line per route (info for reachable, warn for not). */
void upstream_check_log(const struct upstream_check *c);

/*
 * `--check-upstream`: run a check on base (its own loop: base must be
 * otherwise unused), print "NAME URL ok 3.1 ms" or "NAME URL FAILED
 * reason" per route to out. Returns the number of failed routes.
 */
int check_upstream_run(struct event_base *base, struct evdns_base *dns,
                       const struct gw_config *cfg, SSL_CTX *ssl_ctx,
                       FILE *out);

#endif
