/*
 * ws_client.h - one upstream WebSocket client connection: a state machine
 * on a plain TCP socket, or on TLS through bufferevent_openssl.
 *
 *   RESOLVING -> CONNECTING -> (TLS) -> HANDSHAKE -> OPEN -> CLOSING -> CLOSED
 *
 * Reports upward through struct ws_client_callbacks + void *arg (messages
 * one by one, then, optionally, on_read_end once a read's messages are all
 * delivered, so that a receiver can treat them as one batch). Exactly one
 * on_close is delivered per client that got past ws_client_connect(),
 * whatever the cause (clean close, protocol error, TCP drop as 1006,
 * connect failure). After on_close the client does no more I/O; the owner
 * then calls ws_client_free() (allowed inside any callback: the memory is
 * released later, from the event loop, never under the caller's feet).
 */
#ifndef WS_CLIENT_H
#define WS_CLIENT_H

#include "gw_common.h"
#include "ws_frame.h"
#include "ws_handshake.h"

struct event_base;
struct evdns_base;
typedef struct ssl_ctx_st SSL_CTX;

struct ws_client;

/* Why a connection ended, for reporting (check-upstream, 502/504). */
enum ws_client_fail {
    WS_FAIL_NONE = 0,     /* orderly close handshake */
    WS_FAIL_DNS,          /* name did not resolve */
    WS_FAIL_CONNECT,      /* TCP connect refused / unreachable */
    WS_FAIL_TIMEOUT,      /* connect/handshake did not finish in time */
    WS_FAIL_TLS,          /* TLS handshake or certificate verification */
    WS_FAIL_HTTP_STATUS,  /* server answered the upgrade with non-101 */
    WS_FAIL_HANDSHAKE,    /* bad 101 (accept key, upgrade, extension...) */
    WS_FAIL_PROTOCOL,     /* server broke RFC 6455 after opening */
    WS_FAIL_CLOSED,       /* TCP closed without close handshake (1006) */
    WS_FAIL_PING,         /* no pong within the pong timeout */
    WS_FAIL_IO,           /* other socket error */
};

struct ws_close_info {
    uint16_t code;             /* close code to report (1006 if none) */
    const char *reason;        /* borrowed, UTF-8, may be "" */
    size_t reason_len;
    enum ws_client_fail fail;  /* WS_FAIL_NONE for an orderly close */
    int http_status;           /* WS_FAIL_HTTP_STATUS: the status */
    const char *detail;        /* borrowed: human-readable cause */
    bool opened;               /* did on_open fire before this? */
};

struct ws_client_callbacks {
    /* Handshake done; the connection is open. */
    void (*on_open)(struct ws_client *c, void *arg);
    /* One complete message; data is borrowed for the call only. */
    void (*on_message)(struct ws_client *c, bool binary, const uint8_t *data,
                       size_t len, void *arg);
    /* The end, exactly once. */
    void (*on_close)(struct ws_client *c, const struct ws_close_info *info,
                     void *arg);
    /* Optional: every message of one read from the server has been
     * delivered (on_message since the last on_read_end), so a receiver
     * may treat them as one batch here. Not called when the client was
     * freed or closed meanwhile. */
    void (*on_read_end)(struct ws_client *c, void *arg);
};

struct ws_client_options {
    const char *url;              /* ws:// or wss:// (copied) */
    const char *protocols;        /* subprotocols to offer, or NULL (copied) */
    const struct ws_header *headers; /* extra request headers (copied) */
    size_t n_headers;
    uint64_t max_message;         /* bytes; 0 = 1 MiB default */
    uint32_t connect_timeout_ms;  /* DNS+TCP+TLS+handshake; 0 = 10 s */
    uint32_t ping_interval_ms;    /* 0 = no keepalive pings */
    uint32_t pong_timeout_ms;     /* 0 = ping_interval, or 10 s */
    uint32_t close_timeout_ms;    /* wait for server's close; 0 = 5 s */
    size_t max_handshake_bytes;   /* 0 = 16 KiB */
    SSL_CTX *ssl_ctx;             /* borrowed, for wss:// (NULL = error) */
};

/*
 * New client; nothing happens until ws_client_connect. dns may be NULL for
 * numeric hosts only. Returns NULL and fills err on a bad URL or ENOMEM.
 */
struct ws_client *ws_client_new(struct event_base *base,
                                struct evdns_base *dns,
                                const struct ws_client_options *opt,
                                const struct ws_client_callbacks *cb,
                                void *arg, struct gw_error *err);

/* Start resolving/connecting. 0, or a negative error (no on_close then). */
int ws_client_connect(struct ws_client *c);

/* Queue one message (masked with a fresh key). GW_ESTATE unless open. */
int ws_client_send(struct ws_client *c, bool binary, const void *data,
                   size_t len);

/*
 * Start the close handshake (code 0 = no status). Waits a bounded time for
 * the server's close frame, then drops the connection; on_close reports
 * the code we sent. Before open, aborts the connection attempt. Idempotent.
 */
int ws_client_close(struct ws_client *c, uint16_t code, const char *reason);

/* Bytes queued toward the upstream not yet written to the socket. */
size_t ws_client_pending_bytes(const struct ws_client *c);

/* Stop / resume reading from the upstream socket (back-pressure). */
void ws_client_pause_reading(struct ws_client *c, bool pause);

/* Subprotocol the server chose, or NULL; borrowed. */
const char *ws_client_protocol(const struct ws_client *c);

/* Release. Safe anytime, including inside the client's own callbacks (then
 * deferred); no callback fires after this call. ws_client_free(NULL) ok. */
void ws_client_free(struct ws_client *c);

/* Short name of a failure kind ("dns", "refused", "timeout", "tls", ...). */
const char *ws_client_fail_name(enum ws_client_fail f);

/*
 * TLS client context for upstreams: TLS 1.2 minimum, peer verification on
 * unless verify is false (the caller logs a warning), ca_file NULL/"" =
 * system store, optional client certificate and key (PEM). Returns NULL and
 * fills err on failure. Free with SSL_CTX_free.
 */
SSL_CTX *ws_client_ssl_ctx_new(const char *ca_file, bool verify,
                               const char *cert_file, const char *key_file,
                               struct gw_error *err);

#endif
