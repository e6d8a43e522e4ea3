/*
 * session.h - the session core: one browser session <-> one upstream
 * WebSocket (ws_client, reached through session_upstream_ops). Owns the
 * session table (keyed by id kind, route and id), the queue toward the
 * browser with sequence numbers and acks, idempotent sends, timers,
 * limits, back-pressure, and the close/tombstone lifecycle. Knows nothing
 * of HTTP or of either dialect's wire format: transports reach a browser
 * through a "sink", and what differs between dialects (who names a
 * session, idle and failed-open rules, binary handling) is an explicit
 * struct session_policy given to session_open.
 *
 * Lifecycle:
 *   OPENING  upstream handshake under way; the opener sink waits
 *   OPEN     relaying both ways
 *   CLOSED   upstream gone (or closed by the gateway at max_lifetime);
 *            queued messages are still delivered, then the close itself
 *   FINISHED close delivered to the browser, or closed by the gateway
 *            (idle, DELETE): a tombstone answering 410 for the idle
 *            period, then freed (404). Under SESSION_IDLE_REAP an idle
 *            session leaves the table at once instead.
 *
 * Memory rule: a session is never freed inside a callback that may still
 * use it; session_release() unlinks it and frees it from the event loop
 * (the only path that frees a session once session_open returned it).
 */
#ifndef SESSION_H
#define SESSION_H

#include "gw_common.h"
#include "gw_config.h"
#include "session_queue.h"
#include "session_upstream.h"
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
/* A native id is "[instance.]" + SESSION_ID_LEN characters (instance: at
 * most 16, see [gateway] instance). */
#define SESSION_ID_MAX (16 + 1 + SESSION_ID_LEN)
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
    const char *transport;    /* static name for GET /sessions, or NULL */
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
    uint64_t memory_trims;      /* freed memory given back after a burst */
};

/* New table bound to base/dns; it takes a reference to cfg (the current
 * config, see session_table_set_config); ssl_ctx is borrowed for its
 * life. */
struct session_table *session_table_new(struct event_base *base,
                                        struct evdns_base *dns,
                                        const struct gw_config *cfg,
                                        SSL_CTX *ssl_ctx);
/* Orderly stop: every open upstream gets a close 1001 "gateway shutting
 * down", attached requests are completed. Returns how many upstream
 * connections are still closing (let the loop run a moment for them). */
size_t session_table_shutdown(struct session_table *t);
/* A reload: cfg (a reference is taken, the previous one dropped) is what
 * new sessions open with and what table-wide limits (max_sessions,
 * max_sessions_per_client, max_buffered_bytes, instance) are read from.
 * Open sessions keep the config they opened with (session_config).
 * GW_ENOMEM (logged; nothing changed) if its idle or lifetime timer
 * cannot be set up. */
int session_table_set_config(struct session_table *t,
                             const struct gw_config *cfg);
/* The current config (borrowed). */
const struct gw_config *session_table_config(const struct session_table *t);
/* A reload removed route `route` (by name): every open session of it
 * opened under a config of generation below `before` gets 1001 upstream
 * and its browser the close (the policy's drain_reason) after what is
 * queued, as at the end of a drain. *opening: how many of them are still
 * opening (ask again later). Returns how many it closed. */
size_t session_table_drain_route(struct session_table *t, const char *route,
                                 uint64_t before, size_t *opening);
/* Drain (SIGTERM): from now on session_open answers SESSION_OPEN_DRAINING;
 * existing sessions go on. */
void session_table_set_draining(struct session_table *t);
/* End of the drain: every open session's upstream gets 1001 and its
 * browser learns the close (1001, the policy's drain_reason) after the
 * messages already queued (opening ones are left to finish or fail).
 * Returns how many sessions it closed. */
size_t session_table_drain_close(struct session_table *t);
/* Messages still queued toward browsers in sessions that have not
 * delivered their close: not acknowledged, so a stop now may lose them
 * (some may have reached the browser in an answer it did not confirm). */
uint64_t session_table_undelivered(const struct session_table *t);
/* Reach upstreams through ops (borrowed for the table's life; NULL =
 * session_upstream_ws). Call before the first session_open. */
void session_table_set_upstream_ops(struct session_table *t,
                                    const struct session_upstream_ops *ops);
/* Free everything (upstreams still open are dropped). */
void session_table_free(struct session_table *t);
/* Forget every session at once, tombstones included, as session_table_free
 * does, but keep the table (and its config, stats totals and metrics) for
 * new sessions: a session still opening has its opener told of the
 * failure, upstreams are dropped (freed now). Not from a callback of one
 * of its sessions. For tests and the fuzzer (an empty table between
 * inputs). */
void session_table_clear(struct session_table *t);
const struct session_stats *session_table_stats(const struct session_table *t);
struct metrics;
/* Count into m (borrowed for the table's life; it outlives reloads): each
 * session looks its route's entry up once, at open. Call before the first
 * session_open. */
void session_table_set_metrics(struct session_table *t, struct metrics *m);
/* Call fn for every session in the table (tombstones included) until it
 * returns false; fn must not open, close or free sessions. Returns how
 * many were visited. */
size_t session_table_foreach(struct session_table *t,
                             bool (*fn)(struct session *s, void *arg),
                             void *arg);
/* Most sessions the process's descriptors allow (two each): past it new
 * sessions are refused like at max_sessions. */
void session_table_set_fd_capacity(struct session_table *t, uint64_t n);

enum session_open_err {
    SESSION_OPEN_OK = 0,
    SESSION_OPEN_FULL,        /* max_sessions reached -> 503 */
    SESSION_OPEN_CLIENT_FULL, /* per-client cap -> 503 */
    SESSION_OPEN_FAILED,      /* could not start (bad URL, ENOMEM) -> 502 */
    SESSION_OPEN_DRAINING,    /* the gateway is draining (stopping) -> 503 */
};

/* ------------------------------------------------------------- policy */

/* Who names a session, and so which namespace of the table it lives in. */
enum session_id_kind {
    SESSION_ID_RANDOM = 0, /* the gateway: 128 random bits (native) */
    SESSION_ID_CLIENT,     /* the client, unique per route only (SockJS) */
    SESSION_ID_PRIVATE,    /* random, in a namespace no lookup reaches: a
                              session that lives and dies with one
                              connection (WebSocket browsers) */
};

/* What a session that nobody polls for idle_ms becomes. */
enum session_idle_rule {
    /* The upstream gets 1001 and the id answers 410 (a tombstone) for
     * another idle period; a close nobody fetched becomes a tombstone. */
    SESSION_IDLE_TOMBSTONE = 0,
    /* The upstream gets 1001 and the id is forgotten at once (a new
     * request with it opens a new session); a close nobody fetched is
     * forgotten too. */
    SESSION_IDLE_REAP,
};

/* What an upstream handshake that fails leaves behind. */
enum session_failed_open {
    SESSION_FAILED_OPEN_FORGET = 0, /* nothing: only the opener is told */
    SESSION_FAILED_OPEN_TOMBSTONE,  /* a tombstone closed 1011 (detail as
                                       reason) for later requests */
};

/* What happens to a binary upstream message. */
enum session_binary {
    SESSION_BINARY_PASS = 0, /* queued as binary (the sink encodes it) */
    SESSION_BINARY_DROP,     /* discarded, counted in binary_dropped */
    SESSION_BINARY_CLOSE,    /* the upstream is closed 1003 */
};

struct session_policy {
    enum session_id_kind id_kind;
    enum session_idle_rule idle;
    enum session_failed_open failed_open;
    enum session_binary binary;
    uint64_t idle_ms;          /* idle and tombstone period; 0 = idle_timeout */
    const char *drain_reason;  /* close reason when the gateway stops
                                  (session_table_drain_close); NULL =
                                  "going away" */
};

/* The native protocol's policy: random ids, tombstones, binary passed. */
extern const struct session_policy session_policy_native;

struct session_open_params {
    const struct gw_route *route;
    const char *client_addr;          /* copied */
    const char *protocols;            /* copied; NULL = route default */
    const struct ws_header *headers;  /* copied by the upstream */
    size_t n_headers;
    struct session_sink *opener;      /* told via ops->opened */
    const char *id;                   /* SESSION_ID_CLIENT: the key (copied),
                                         unique within route; else unused */
    size_t id_len;
};

/* Create a session under policy pol (copied) and start its upstream
 * connection. */
enum session_open_err session_open(struct session_table *t,
                                   const struct session_policy *pol,
                                   const struct session_open_params *p,
                                   struct session **out);

/* Look up a gateway-named (SESSION_ID_RANDOM) session by id, any state
 * (tombstones included), or NULL. */
struct session *session_find(struct session_table *t, const char *id,
                             size_t id_len);
/* Look up a client-named (SESSION_ID_CLIENT) session of route r (by
 * name: a reload's new version of the route finds the old one's). */
struct session *session_find_client(struct session_table *t,
                                    const struct gw_route *r,
                                    const char *id, size_t id_len);

/* A client-named session with this id under any route for which
 * route_ok(route, arg) says yes (the SockJS URL of a route a reload
 * removed or changed), or NULL. */
struct session *session_find_client_where(struct session_table *t,
                                          const char *id, size_t id_len,
                                          bool (*route_ok)(const struct gw_route *r,
                                                           void *arg),
                                          void *arg);

/* ------------------------------------------------------------- session */

const char *session_id(const struct session *s);
enum session_state session_state(const struct session *s);
const struct gw_route *session_route(const struct session *s);
/* The config the session opened with (borrowed; the session holds a
 * reference until it is freed): its per-session limits and timeouts, and
 * the route (session_route) is one of its routes. */
const struct gw_config *session_config(const struct session *s);
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
/* The close has been written to the browser: become a tombstone, or, if
 * messages written before it are still unacknowledged (a stream), stay
 * CLOSED with them replayable until the browser acknowledges the last one
 * (session_close_acked, or a resume at the last seq whose stream writes
 * the close again) or idle_timeout passes. */
void session_close_delivered(struct session *s);
/* An explicit ack (not a resume, which is told the close on its stream):
 * a CLOSED session whose close a stream already wrote, with nothing left
 * unacknowledged, becomes a tombstone. */
void session_close_acked(struct session *s);
/* The browser has acknowledged or been given messages: maybe resume the
 * upstream (after acks or eviction). Called internally by ack. */
void session_check_resume(struct session *s);

/* Sends toward the upstream: a batch of messages (borrowed), neutral to
 * whichever parser produced it. */
struct session_out_msg {
    const uint8_t *data;
    size_t len;
    bool binary;
};
struct session_batch {
    const struct session_out_msg *msgs; /* n entries */
    size_t n;
    bool has_seq;     /* seq makes the send idempotent */
    uint64_t seq;
};


enum session_send_result {
    SESSION_SEND_OK = 0,
    SESSION_SEND_DUPLICATE,   /* seq not above the highest applied: acked, not sent */
    SESSION_SEND_FULL,        /* send_buffer_bytes would be exceeded -> 429 */
    SESSION_SEND_NOT_OPEN,    /* upstream closed -> 410 */
};
/*
 * Forward a browser batch (borrowed) in order; its seq, if any, makes the
 * send idempotent. All or nothing: either every message is queued
 * upstream or none.
 */
enum session_send_result session_send(struct session *s,
                                      const struct session_batch *b);

/* The operator closes it (admin DELETE /sessions/ID): the browser gets
 * code and reason (after what is queued), the upstream gets 1000. */
void session_close_by_admin(struct session *s, uint16_t code,
                            const char *reason);
/* For the admin listing. */
bool session_is_native(const struct session *s);
/* The transport of the request attached now (the receiving request, or
 * the opener while the upstream opens): "poll", "sse", "ws",
 * "xhr-polling", "xhr-streaming", "eventsource", "htmlfile", "jsonp",
 * "websocket"; "none" between requests. Static strings. */
const char *session_transport(const struct session *s);
/* The transport of the last receiving request attached, or "none". */
const char *session_last_transport(const struct session *s);
const char *session_client_addr(const struct session *s); /* NULL once over */
uint64_t session_age_ms(const struct session *s);
bool session_paused(const struct session *s);

/* Browser asked to close (DELETE / POST close): upstream gets 1000. */
void session_close_by_browser(struct session *s);

/*
 * The browser's connection is over for good (a WebSocket browser
 * connection ended; detach its sink first): an open upstream gets
 * code/reason (0 = no status), a session still opening is aborted, and
 * the session is forgotten under SESSION_IDLE_REAP (a tombstone
 * otherwise). Safe in any state.
 */
void session_end(struct session *s, uint16_t code, const char *reason);

/*
 * A receiving request was cut by the browser or the network (SockJS: the
 * session cannot go on losslessly): the upstream gets up_code/up_reason
 * and later requests learn code/reason from a tombstone kept for the idle
 * period (a close the upstream sent first is kept instead). Opening
 * sessions are aborted.
 */
void session_interrupt(struct session *s, uint16_t code, const char *reason,
                       uint16_t up_code, const char *up_reason);

#endif
