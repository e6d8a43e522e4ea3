/*
 * admin.h - the operator's listener ([admin] listen): GET /health (from
 * the last periodic upstream probe), GET /metrics (Prometheus text
 * 0.0.4), GET /stats (the same figures as JSON), GET /sessions and
 * DELETE /sessions/ID. Nothing of it is reachable on the public port.
 */
#ifndef ADMIN_H
#define ADMIN_H

#include <stdbool.h>
#include "gw_config.h"

struct event_base;
struct evdns_base;
struct metrics;
struct session_table;
struct admin;
typedef struct ssl_ctx_st SSL_CTX;

/*
 * New admin listener on cfg->admin_listen_host:port that starts probing
 * the upstreams at once and every cfg->health_interval_ms. Everything is
 * borrowed for the admin's life (the metrics registry outlives reloads).
 * NULL (logged) if it cannot listen.
 */
struct admin *admin_new(struct event_base *base, struct evdns_base *dns,
                        const struct gw_config *cfg, SSL_CTX *ssl_ctx,
                        struct session_table *sessions, struct metrics *m);
struct upstream_check;
/* A completed check (the start-up one) becomes the health answer; the
 * admin owns it from now on and probes again after health_interval. */
void admin_take_check(struct admin *a, struct upstream_check *c);
/* The HTTP front's connection counters (borrowed for the admin's life),
 * shown in /stats. */
struct http_limits_stats;
void admin_set_limits_stats(struct admin *a, const struct http_limits_stats *ls);
/* A reload: the health probe uses cfg's routes (probed at once when
 * their names or upstreams changed) and health_interval (the timer is
 * re-armed), GET /sessions its sessions_list_max. A reference to cfg is
 * taken, the previous one dropped. The listener stays where it is. */
void admin_set_config(struct admin *a, const struct gw_config *cfg);
/* While draining, GET /health answers 503 {"status":"draining"} on admin
 * connections already open; draining also closes the admin listening
 * socket (SO_REUSEPORT: a successor on the same address answers new
 * connections, see gw_listen_set_close). */
void admin_set_draining(struct admin *a, bool draining);
/* Accept no new admin connections (orderly stop). */
void admin_stop_accepting(struct admin *a);
void admin_free(struct admin *a);

#endif
