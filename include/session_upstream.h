/*
 * session_upstream.h - the seam between a session and its upstream
 * connection. session.c reaches its upstream only through this table, so
 * tests can script the upstream (open, messages, close) in memory instead
 * of running a WebSocket server. The default, session_upstream_ws, is
 * ws_client; the signatures are ws_client's, and the handle is the opaque
 * struct ws_client * (a fake may hand out any pointer of its own).
 *
 * The contract is ws_client's (see ws_client.h): after a successful
 * connect exactly one on_close is delivered; free is allowed inside any
 * callback and no callback fires after it.
 */
#ifndef SESSION_UPSTREAM_H
#define SESSION_UPSTREAM_H

#include "ws_client.h"

struct session_upstream_ops {
    /* New upstream (nothing happens before connect); NULL + err on failure. */
    struct ws_client *(*create)(struct event_base *base,
                                struct evdns_base *dns,
                                const struct ws_client_options *opt,
                                const struct ws_client_callbacks *cb,
                                void *arg, struct gw_error *err);
    int (*connect)(struct ws_client *c);
    /* Queue one message; negative once the upstream is not open. */
    int (*send)(struct ws_client *c, bool binary, const void *data,
                size_t len);
    /* Start the closing handshake (on_close follows). */
    int (*close)(struct ws_client *c, uint16_t code, const char *reason);
    /* Bytes queued toward the upstream and not yet written. */
    size_t (*pending_bytes)(const struct ws_client *c);
    void (*pause_reading)(struct ws_client *c, bool pause);
    /* Subprotocol chosen by the upstream, or NULL. */
    const char *(*protocol)(const struct ws_client *c);
    /* Free (NULL ok). */
    void (*free)(struct ws_client *c);
};

/* The real upstream: ws_client. */
extern const struct session_upstream_ops session_upstream_ws;

#endif
