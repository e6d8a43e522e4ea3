/*
 * gw_server.h - the running gateway: event loop, DNS, upstream TLS context,
 * HTTP front, signals, orderly stop.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include "gw_config.h"

struct event_base;
struct evdns_base;

/* The resolver for upstream names: /etc/resolv.conf and /etc/hosts, or
 * cfg->resolv_conf. NULL (logged) if none could be set up. */
struct evdns_base *gw_dns_new(struct event_base *base,
                              const struct gw_config *cfg);

/* Run until SIGINT/SIGTERM; SIGHUP reloads cfg->file. Takes its own
 * reference to cfg (the caller keeps its own). Returns the process exit
 * code. */
int gw_server_run(const struct gw_config *cfg);

#endif
