/*
 * ws_server.h - one browser WebSocket connection (server side of RFC 6455),
 * taken over from evhttp after a valid upgrade request.
 *
 *   (evhttp request) -> ws_server_accept: 101 sent -> OPEN -> CLOSING -> CLOSED
 *
 * libevent 2.1's evhttp has no server-side WebSocket. ws_server_accept
 * checks the request (ws_handshake_check_request) and, if it is valid,
 * steals the connection's bufferevent: it installs its own callbacks,
 * clears evhttp's timeouts and writes the 101 itself. evhttp keeps the
 * connection object with the request unanswered on it (evhttp then neither
 * reads, writes nor closes: it only acts on the bufferevent through its
 * callbacks, which are gone); bytes evhttp read past the request stay in
 * the bufferevent's input and are the first frame bytes. At the end the
 * connection object is freed with evhttp_connection_free, which frees the
 * request and the bufferevent and closes the socket. Works on plain and
 * TLS (bufferevent_openssl from evhttp_set_bevcb) bufferevents alike.
 *
 * Callbacks follow ws_client: exactly one on_close per accepted connection
 * (clean close, protocol error, TCP drop as 1006, pong timeout), always
 * delivered from the event loop, never from inside a ws_server_* call;
 * ws_server_free is allowed anywhere, including inside callbacks.
 *
 * Back-pressure: toward the browser, ws_server_send refuses with GW_EFULL
 * once output_limit bytes are queued and not yet written, and on_drained
 * fires when the queue falls to half of it; from the browser,
 * ws_server_pause_reading stops reading the socket (TCP then pushes back
 * on the browser). Input buffering is bounded by a read watermark (plain
 * TCP) and max_message; nothing grows without bound.
 *
 * Caveats: the caller must not answer the request or hold an
 * evhttp_connection close callback on it (http_watch) once accepting; the
 * request's headers stay readable (and allocated) until ws_server_free;
 * evhttp_free() of the server frees the connection too (reported as 1006,
 * "server shutting down"), so free ws_server objects before event_base_free.
 */
#ifndef WS_SERVER_H
#define WS_SERVER_H

#include "gw_common.h"
#include "ws_frame.h"
#include "ws_handshake.h"

struct evhttp_request;
struct ws_server;

struct ws_server_close_info {
    uint16_t code;          /* browser's close code (1005 if none), ours if
                               we closed, 1002/1007/1009 for a protocol
                               error, 1006 for a drop or pong timeout */
    const char *reason;     /* borrowed, UTF-8, may be "" */
    size_t reason_len;
    bool by_browser;        /* the browser sent the first close frame */
    bool clean;             /* close frames went both ways */
    const char *detail;     /* borrowed, human-readable cause */
};

struct ws_server_callbacks {
    /* One complete message; data is borrowed for the call only. */
    void (*on_message)(struct ws_server *s, bool binary, const uint8_t *data,
                       size_t len, void *arg);
    /* The output queue fell to output_limit / 2 after a send was refused
     * with GW_EFULL or left it above output_limit. May be NULL. */
    void (*on_drained)(struct ws_server *s, void *arg);
    /* The end, exactly once. */
    void (*on_close)(struct ws_server *s,
                     const struct ws_server_close_info *info, void *arg);
};

struct ws_server_options {
    uint64_t max_message;        /* bytes; 0 = 1 MiB; larger: 1009 */
    size_t output_limit;         /* bytes queued toward the browser; 0 =
                                    1 MiB */
    uint32_t ping_interval_ms;   /* ping after this long without input;
                                    0 = never */
    uint32_t pong_timeout_ms;    /* 0 = ping_interval */
    uint32_t close_timeout_ms;   /* bound on the close handshake; 0 = 5 s */
    const char *protocols;       /* acceptable subprotocols, comma list in
                                    order of preference, or NULL (copied
                                    as chosen) */
};

/*
 * Check req as an upgrade request without answering it (see
 * ws_handshake_check_request). 0 if valid, GW_EPROTO otherwise; *up is
 * always filled (its protocols point into req's headers).
 */
int ws_server_check(struct evhttp_request *req, struct ws_upgrade *up);

/* Answer req with the error up describes (status, extra header, body). */
void ws_server_reject(struct evhttp_request *req, const struct ws_upgrade *up);

/*
 * Take the connection of req over. Call it from the request callback or
 * later, while req is still unanswered. If req is not a valid upgrade
 * request, answers it with the right error (ws_server_reject) and returns
 * NULL with err GW_EPROTO; on another failure (GW_EINVAL without cb,
 * GW_ENOMEM, GW_ESTATE) answers 500 and returns NULL. Otherwise queues the 101 and returns the new
 * connection: from then on req belongs to it (do not answer or free it).
 */
struct ws_server *ws_server_accept(struct evhttp_request *req,
                                   const struct ws_server_options *opt,
                                   const struct ws_server_callbacks *cb,
                                   void *arg, struct gw_error *err);

/* Queue one unfragmented message. GW_ESTATE unless open (also after a
 * close started), GW_EFULL when output_limit bytes are already queued
 * (nothing queued then; on_drained follows), GW_ENOMEM. */
int ws_server_send(struct ws_server *s, bool binary, const void *data,
                   size_t len);

/* Start the close handshake with code (0 = no status; an invalid code is
 * sent as 1000) and reason (cut to fit on a UTF-8 boundary). Waits up to
 * close_timeout for the browser's close frame, then drops. Idempotent. */
int ws_server_close(struct ws_server *s, uint16_t code, const char *reason);

/* Stop / resume reading from the browser (back-pressure toward it). */
void ws_server_pause_reading(struct ws_server *s, bool pause);

/* Bytes queued toward the browser and not yet written. */
size_t ws_server_pending_bytes(const struct ws_server *s);

/* The chosen subprotocol or NULL; borrowed. */
const char *ws_server_protocol(const struct ws_server *s);
bool ws_server_is_open(const struct ws_server *s);

/* Release: closes the socket at once, discarding output not yet written
 * (use ws_server_close for an orderly end). Safe anytime, also inside the
 * connection's own callbacks (then deferred); no callback fires after it.
 * NULL ok. */
void ws_server_free(struct ws_server *s);

#endif
