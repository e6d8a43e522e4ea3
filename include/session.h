/*
 * session.h - the session core: one browser session <-> one upstream
 * WebSocket (ws_client). Owns the session table (unguessable ids), the
 * queue toward the browser with sequence numbers and acks, idempotent
 * sends, timers, limits, back-pressure, and the close/tombstone lifecycle.
 * Knows nothing of HTTP: transports reach a browser through a "sink".
 *
 * Lifecycle:
 *   OPENING  upstream handshake under way; the opener sink waits
 *   OPEN     relaying both ways
 *   CLOSED   upstream gone (or closed by the gateway at max_lifetime);
 *            queued messages are still delivered, then the close itself
 *   FINISHED close delivered to the browser, or closed by the gateway
 *            (idle, DELETE): a tombstone answering 410 for idle_timeout,
 *            then freed (404)
 *
 * Memory rule: a session is never freed inside a callback that may still
 * use it; session_release() unlinks it and frees it from the event loop.
 */
#ifndef SESSION_H
#define SESSION_H

#include "gw_common.h"
#include "gw_config.h"
#include "envelope.h"
#include "session_queue.h"
#include "ws_client.h"

struct event_base;
struct evdns_base;
struct session;
struct session_table;

enum session_state {
    SESSION_OPENING = 0,
    SESSION_OPEN,
    SESSION_CLOSED,
    SESSION_FINISHED,
};

#define SESSION_ID_LEN 22  /* 128 bits, base64url without padding */
#define SESSION_KEY_MAX 200 /* longest key (SockJS ids are the client's) */

/* ------------------------------------------------------------ the sink */

enum session_detach_why {
    SESSION_DETACH_REPLACED = 1, /* a newer request took over */
    SESSION_DETACH_CLOSING,      /* the session is going away */
};

struct session_sink;
/* Every op is optional: NULL means nothing to do. */
struct session_sink_ops {
    /* There is something to deliver (messages, a lost range or the close):
     * the sink reads it through session_* accessors. */
    void (*wake)(struct session_sink *k);
    /* The session lets go of this sink: finish the request now (empty poll
     * answer, end of stream). Do not call back into the session. */
    void (*detach)(struct session_sink *k, enum session_detach_why why);
    /* Opener only: the upstream handshake finished (fail == NULL) or
     * failed. On failure the session is already released. */
    void (*opened)(struct session_sink *k, const struct ws_close_info *fail);
};
struct session_sink {
    const struct session_sink_ops *ops;
    struct session *session;  /* set while attached */
};

/* --------------------------------------------------------------- table */

struct session_stats {
    uint64_t sessions;          /* live (not FINISHED) */
    uint64_t tombstones;
    uint64_t opened_total, closed_total;
    uint64_t messages_in, messages_out; /* upstream->browser, browser->upstream */
    uint64_t dropped;           /* evicted by drop-oldest / stream eviction */
    uint64_t binary_dropped;    /* binary messages discarded (SockJS binary = drop) */
    uint64_t buffered_bytes;    /* all queues together */
    uint64_t paused;            /* sessions whose upstream reading is paused */
};

/* New table bound to base/dns; cfg and ssl_ctx are borrowed for its life. */
struct session_table *session_table_new(struct event_base *base,
                                        struct evdns_base *dns,
                                        const struct gw_config *cfg,
                                        SSL_CTX *ssl_ctx);
/* Orderly stop: every open upstream gets a close 1001 "gateway shutting
 * down", attached requests are completed. Returns how many upstream
 * connections are still closing (let the loop run a moment for them). */
size_t session_table_shutdown(struct session_table *t);
/* Free everything (upstreams still open are dropped). */
void session_table_free(struct session_table *t);
const struct session_stats *session_table_stats(const struct session_table *t);
/* Most sessions the process's descriptors allow (two each): past it new
 * sessions are refused like at max_sessions. */
void session_table_set_fd_capacity(struct session_table *t, uint64_t n);

enum session_open_err {
    SESSION_OPEN_OK = 0,
    SESSION_OPEN_FULL,        /* max_sessions reached -> 503 */
    SESSION_OPEN_CLIENT_FULL, /* per-client cap -> 503 */
    SESSION_OPEN_FAILED,      /* could not start (bad URL, ENOMEM) -> 502 */
};

struct session_open_params {
    const struct gw_route *route;
    const char *client_addr;          /* copied */
    const char *protocols;            /* copied; NULL = route default */
    const struct ws_header *headers;  /* copied by ws_client */
    size_t n_headers;
    struct session_sink *opener;      /* told via ops->opened */
    /* SockJS sessions: */
    const char *id;                   /* key chosen by the caller (copied);
                                         NULL = a new random id */
    size_t id_len;
    uint64_t idle_ms;                 /* idle and tombstone period;
                                         0 = idle_timeout */
    bool keep_failed;                 /* a failed open leaves a tombstone
                                         (close 1011) instead of nothing */
    int binary_policy;                /* -1 = deliver binary as binary, else
                                         enum gw_sockjs_binary */
};

/* Create a session and start its upstream connection. */
enum session_open_err session_open(struct session_table *t,
                                   const struct session_open_params *p,
                                   struct session **out);

/* Look up by id (any state, tombstones included), or NULL. */
struct session *session_find(struct session_table *t, const char *id,
                             size_t id_len);

/* ------------------------------------------------------------- session */

const char *session_id(const struct session *s);
enum session_state session_state(const struct session *s);
const struct gw_route *session_route(const struct session *s);
const char *session_protocol(const struct session *s);
/* Close code/reason once CLOSED or FINISHED. */
uint16_t session_close_code(const struct session *s);
const char *session_close_reason(const struct session *s);

/* Is a receiving request attached (or the opener still waiting)? */
bool session_receiving(const struct session *s);

/* The opener's request went away before the upstream opened: abort. */
void session_abort_open(struct session *s);

/*
 * Acknowledge every message with seq <= ack. GW_EINVAL if ack is beyond
 * the last seq handed out. Counts as browser activity.
 */
int session_ack(struct session *s, uint64_t ack);

/* Attach a receiving request (replacing, and detaching, any other).
 * Stops the idle timer. */
void session_attach(struct session *s, struct session_sink *k);
/* The sink's request ended; starts the idle timer. Safe if not attached. */
void session_detach(struct session *s, struct session_sink *k);

/* Queue access for sinks. */
struct session_queue *session_queue(struct session *s);
/* A browser whose position is pos (last seq it has, or acked) asks: were
 * messages after it evicted before it got them? Fills from..to (the gap
 * before the oldest message kept) and returns true if so. Messages the
 * browser acknowledged are never reported. Pure: ask as often as needed. */
bool session_lost_since(const struct session *s, uint64_t pos,
                        uint64_t *from, uint64_t *to);
/* Highest ack the browser sent (0 if none). */
uint64_t session_acked(const struct session *s);
/* Counts as browser activity: restarts the idle timer if nothing is
 * attached. */
void session_touch(struct session *s);
/* True when the close may be delivered: CLOSED with nothing unacked
 * (poll) / nothing unwritten (stream). */
bool session_close_ready(const struct session *s, bool stream);
/* The browser has been told of the close: become a tombstone. */
void session_close_delivered(struct session *s);
/* The browser has acknowledged or been given messages: maybe resume the
 * upstream (after acks or eviction). Called internally by ack. */
void session_check_resume(struct session *s);

/* Sends toward the upstream. */
enum session_send_result {
    SESSION_SEND_OK = 0,
    SESSION_SEND_DUPLICATE,   /* seq not above the highest applied: acked, not sent */
    SESSION_SEND_FULL,        /* send_buffer_bytes would be exceeded -> 429 */
    SESSION_SEND_NOT_OPEN,    /* upstream closed -> 410 */
};
/*
 * Forward a parsed browser batch (borrowed) in order; its seq, if any,
 * makes the send idempotent. All or nothing: either every message is
 * queued upstream or none.
 */
enum session_send_result session_send(struct session *s,
                                      const struct envelope *env);
uint64_t session_send_acked(const struct session *s);

/* Browser asked to close (DELETE / POST close): upstream gets 1000. */
void session_close_by_browser(struct session *s);

#endif
