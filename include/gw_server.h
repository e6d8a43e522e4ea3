/*
 * gw_server.h - the running gateway: event loop, DNS, upstream TLS context,
 * HTTP front, signals, orderly stop.
 */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include "gw_config.h"

/* Run until SIGINT/SIGTERM. Borrowed cfg. Returns the process exit code. */
int gw_server_run(const struct gw_config *cfg);

#endif
