/* session.c - the session core: table, queue policy, timers, lifecycle. */
#include "session.h"

#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/rand.h>

#include "gw_log.h"
#include "metrics.h"

/* Resume reading an upstream paused for a full buffer once its queue is
 * below this fraction of the limit (hysteresis: no pause/resume flapping). */
#define RESUME_NUM 1
#define RESUME_DEN 2
/* Sessions paused for the shared budget resume once all queues together
 * are below this fraction of max_buffered_bytes. */
#define RESUME_GLOBAL_NUM 9
#define RESUME_GLOBAL_DEN 10

const struct session_policy session_policy_native = {
    .id_kind = SESSION_ID_RANDOM,
    .idle = SESSION_IDLE_TOMBSTONE,
    .failed_open = SESSION_FAILED_OPEN_FORGET,
    .binary = SESSION_BINARY_PASS,
    .idle_ms = 0,
};

const struct session_upstream_ops session_upstream_ws = {
    .create = ws_client_new,
    .connect = ws_client_connect,
    .send = ws_client_send,
    .close = ws_client_close,
    .pending_bytes = ws_client_pending_bytes,
    .pause_reading = ws_client_pause_reading,
    .protocol = ws_client_protocol,
    .free = ws_client_free,
};

struct client_entry {
    struct client_entry *next;
    uint32_t count;
    char addr[];
};

struct session {
    struct session *next_id;       /* hash chain (only while in the table) */
    struct session_table *t;
    struct client_entry *client;   /* NULL once FINISHED */
    const struct gw_config *cfg;   /* a reference: the config it opened under */
    const struct gw_route *route;  /* in cfg */
    struct ws_client *up;
    struct session_sink *sink;     /* attached receiving request */
    struct session_sink *opener;   /* waiting POST /sessions */
    const char *last_transport;    /* static name, or NULL */
    enum session_state state;
    bool paused;                   /* upstream reading paused */
    bool on_pause_list;            /* paused by the global budget */
    bool on_wake_list;             /* its sink is woken once this turn */
    bool released;
    bool has_send_seq;
    bool unlinked;                 /* out of the table, upstream closing */
    bool was_opened;               /* counted in opened_total */
    bool counted_closed;           /* counted in closed_total */
    bool close_sent;               /* a stream wrote the close before all
                                    * its messages were acknowledged */
    uint8_t close_why;             /* enum metrics_close_reason */
    struct metrics_route *mr;      /* this route's counters, or NULL */
    struct timeval born;           /* session_open time (cached clock) */
    uint16_t close_code;
    struct session_policy pol;
    const struct timeval *tv_idle; /* idle and tombstone period */
    const struct timeval *tv_life; /* max_lifetime, or NULL */
    char *close_reason;
    char *protocol;
    uint64_t send_seq;
    uint64_t acked;                /* highest ack the browser sent */
    struct session_queue q;
    struct event timer;            /* idle, then tombstone */
    struct event *life;            /* max_lifetime, if set */
    TAILQ_ENTRY(session) pause_link;
    TAILQ_ENTRY(session) wake_link;
    LIST_ENTRY(session) unlinked_link;
    struct session *grave_next;
    size_t id_len;
    char id[];                     /* NUL-terminated */
};

TAILQ_HEAD(session_list, session);
LIST_HEAD(session_unlinked, session);

struct session_table {
    struct event_base *base;
    struct evdns_base *dns;
    /* The current config (a reference): table-wide limits (max_sessions,
     * max_sessions_per_client, max_buffered_bytes, instance) and what new
     * sessions open with. Each session reads its own limits from its own
     * config (s->cfg), so a reload leaves open sessions as they were. */
    const struct gw_config *cfg;
    SSL_CTX *ssl_ctx;
    const struct session_upstream_ops *up;
    struct session **buckets;
    size_t n_buckets, n_entries;
    struct client_entry **cbuckets;
    size_t n_cbuckets;
    uint64_t hash_seed;
    const struct timeval *tv_idle, *tv_life;
    struct session_list pause_list; /* paused for the global budget */
    /* Sessions whose sink is due a wake (upstream messages queued): woken
     * when the upstream read that queued them is over (on_read_end), else
     * by `waker`, an event made active, later in the same loop turn. */
    struct session_list wake_list;
    struct event *waker;
    struct session *graveyard;      /* released, freed from the loop */
    struct session_unlinked unlinked; /* reaped, upstream still closing */
    struct event *reaper;
    struct event *trimmer;          /* gives memory back after a burst */
    uint64_t trim_peak;             /* most live sessions since the last trim */
    struct session_stats stats;
    uint64_t fd_capacity;
    struct metrics *metrics;        /* borrowed; NULL = none */
    bool draining;                  /* stopping: no new sessions */
};

static void session_timer_cb(evutil_socket_t fd, short what, void *arg);
static void session_life_cb(evutil_socket_t fd, short what, void *arg);
static void session_unlink(struct session *s);

/* ------------------------------------------------------------- hashing */

/* FNV-1a with a per-process random seed, finished with a 64-bit mixer.
 * Session ids are random so their chains stay short by construction;
 * client addresses are chosen by clients, hence the secret seed. (Not a
 * proven DoS-resistant hash like SipHash; the per-client map holds at most
 * max_sessions entries.) */
static uint64_t hash_bytes(uint64_t seed, const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/* The table's key: id kind, route (client-named ids only) and id. A
 * route is known by its name, which outlives reloads (the gw_route
 * objects do not: each config has its own); the name is compared, not
 * hashed, so a lookup can also ask for an id under any route. */
static bool key_route_match(enum session_id_kind kind, const struct session *s,
                            const struct gw_route *r)
{
    return kind != SESSION_ID_CLIENT || !r || s->route == r ||
           strcmp(s->route->name, r->name) == 0;
}

static size_t key_hash(const struct session_table *t, enum session_id_kind kind,
                       const char *id, size_t n, size_t n_buckets)
{
    uint64_t ns = (uint64_t)kind;
    return hash_bytes(t->hash_seed ^ (ns * 0x9e3779b97f4a7c15ULL), id, n) &
           (n_buckets - 1);
}

static size_t session_hash(const struct session_table *t,
                           const struct session *s, size_t n_buckets)
{
    return key_hash(t, s->pol.id_kind, s->id, s->id_len, n_buckets);
}

static int table_grow(struct session_table *t)
{
    size_t n = t->n_buckets ? t->n_buckets * 2 : 1024;
    struct session **b = calloc(n, sizeof *b);
    if (!b)
        return GW_ENOMEM;
    for (size_t i = 0; i < t->n_buckets; i++) {
        struct session *s = t->buckets[i], *next;
        for (; s; s = next) {
            next = s->next_id;
            size_t h = session_hash(t, s, n);
            s->next_id = b[h];
            b[h] = s;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = n;
    return 0;
}

static int table_insert(struct session_table *t, struct session *s)
{
    if (t->n_entries + 1 > t->n_buckets && table_grow(t) < 0)
        return GW_ENOMEM;
    size_t h = session_hash(t, s, t->n_buckets);
    s->next_id = t->buckets[h];
    t->buckets[h] = s;
    t->n_entries++;
    return 0;
}

static void table_remove(struct session_table *t, struct session *s)
{
    size_t h = session_hash(t, s, t->n_buckets);
    for (struct session **pp = &t->buckets[h]; *pp; pp = &(*pp)->next_id) {
        if (*pp == s) {
            *pp = s->next_id;
            t->n_entries--;
            return;
        }
    }
}

static struct session *find_key(struct session_table *t,
                                enum session_id_kind kind,
                                const struct gw_route *r, const char *id,
                                size_t id_len)
{
    if (id_len == 0 || id_len > SESSION_KEY_MAX || !t->n_buckets)
        return NULL;
    size_t h = key_hash(t, kind, id, id_len, t->n_buckets);
    for (struct session *s = t->buckets[h]; s; s = s->next_id)
        if (s->pol.id_kind == kind && s->id_len == id_len &&
            memcmp(s->id, id, id_len) == 0 && key_route_match(kind, s, r))
            return s;
    return NULL;
}

struct session *session_find(struct session_table *t, const char *id,
                             size_t id_len)
{
    return find_key(t, SESSION_ID_RANDOM, NULL, id, id_len);
}

struct session *session_find_client(struct session_table *t,
                                    const struct gw_route *r,
                                    const char *id, size_t id_len)
{
    return find_key(t, SESSION_ID_CLIENT, r, id, id_len);
}

struct session *session_find_client_where(struct session_table *t,
                                          const char *id, size_t id_len,
                                          bool (*route_ok)(const struct gw_route *r,
                                                           void *arg),
                                          void *arg)
{
    if (id_len == 0 || id_len > SESSION_KEY_MAX || !t->n_buckets)
        return NULL;
    size_t h = key_hash(t, SESSION_ID_CLIENT, id, id_len, t->n_buckets);
    for (struct session *s = t->buckets[h]; s; s = s->next_id)
        if (s->pol.id_kind == SESSION_ID_CLIENT && s->id_len == id_len &&
            memcmp(s->id, id, id_len) == 0 && route_ok(s->route, arg))
            return s;
    return NULL;
}

static struct client_entry *client_get(struct session_table *t,
                                       const char *addr, bool create)
{
    size_t n = strlen(addr);
    size_t h = hash_bytes(t->hash_seed, addr, n) & (t->n_cbuckets - 1);
    for (struct client_entry *c = t->cbuckets[h]; c; c = c->next)
        if (strcmp(c->addr, addr) == 0)
            return c;
    if (!create)
        return NULL;
    struct client_entry *c = calloc(1, sizeof *c + n + 1);
    if (!c)
        return NULL;
    memcpy(c->addr, addr, n + 1);
    c->next = t->cbuckets[h];
    t->cbuckets[h] = c;
    return c;
}

static void client_put(struct session_table *t, struct client_entry *c)
{
    if (!c || --c->count > 0)
        return;
    size_t h = hash_bytes(t->hash_seed, c->addr, strlen(c->addr)) &
               (t->n_cbuckets - 1);
    for (struct client_entry **pp = &t->cbuckets[h]; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            free(c);
            return;
        }
    }
}

/* --------------------------------------------------------------- table */

/* After a burst, give the freed memory back to the system: glibc keeps
 * freed heap pages mapped (RSS stays at the burst's peak) unless asked,
 * as HAProxy's pool_gc asks. Once the live sessions have fallen to half
 * of their peak since the last trim (and the peak was more than a
 * handful), one malloc_trim a second later, when the closing is over.
 * Each trim at least halves the count, so they stay rare. */
#define TRIM_MIN_PEAK 256
#define TRIM_DELAY_MS 1000

static void trim_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct session_table *t = arg;
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    t->stats.memory_trims++;
    t->trim_peak = t->stats.sessions;
}

static void maybe_trim(struct session_table *t)
{
    if (t->trimmer && t->trim_peak >= TRIM_MIN_PEAK &&
        t->stats.sessions * 2 < t->trim_peak &&
        !event_pending(t->trimmer, EV_TIMEOUT, NULL)) {
        struct timeval tv;
        gw_ms_to_tv(TRIM_DELAY_MS, &tv);
        event_add(t->trimmer, &tv);
    }
}

/*
 * Upstream messages wake the sink once per upstream read, not once per
 * message: a read that brings 20 messages for a session queues them all,
 * then its stream writes them in one batch (one send instead of 20). The
 * wake comes when the read is over (on_read_end); for an upstream that
 * does not report that, or a read cut short, from `waker`, an active
 * event later in the same loop turn, so nothing waits for a timer or the
 * next epoll_wait either way.
 */
static void waker_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct session_table *t = arg;
    struct session *s;
    /* a wake may detach (and unlist) other sessions: take one at a time */
    while ((s = TAILQ_FIRST(&t->wake_list))) {
        TAILQ_REMOVE(&t->wake_list, s, wake_link);
        s->on_wake_list = false;
        if (s->sink && s->sink->ops->wake)
            s->sink->ops->wake(s->sink);
    }
}

static void wake_later(struct session *s)
{
    struct session_table *t = s->t;
    if (!s->sink || !s->sink->ops->wake || s->on_wake_list)
        return;
    if (TAILQ_EMPTY(&t->wake_list))
        event_active(t->waker, EV_TIMEOUT, 0);
    TAILQ_INSERT_TAIL(&t->wake_list, s, wake_link);
    s->on_wake_list = true;
}

static void unlist_wake(struct session *s)
{
    if (s->on_wake_list) {
        TAILQ_REMOVE(&s->t->wake_list, s, wake_link);
        s->on_wake_list = false;
    }
}

static void reaper_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct session_table *t = arg;
    while (t->graveyard) {
        struct session *s = t->graveyard;
        t->graveyard = s->grave_next;
        t->up->free(s->up);
        session_queue_clear(&s->q);
        gw_config_unref(s->cfg);
        free(s->close_reason);
        free(s->protocol);
        free(s);
    }
}

struct session_table *session_table_new(struct event_base *base,
                                        struct evdns_base *dns,
                                        const struct gw_config *cfg,
                                        SSL_CTX *ssl_ctx)
{
    struct session_table *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->base = base;
    t->dns = dns;
    t->ssl_ctx = ssl_ctx;
    t->up = &session_upstream_ws;
    TAILQ_INIT(&t->pause_list);
    TAILQ_INIT(&t->wake_list);
    LIST_INIT(&t->unlinked);
    if (RAND_bytes((unsigned char *)&t->hash_seed, sizeof t->hash_seed) != 1) {
        free(t);
        return NULL;
    }
    t->n_cbuckets = 1024;
    t->cbuckets = calloc(t->n_cbuckets, sizeof *t->cbuckets);
    t->reaper = event_new(base, -1, 0, reaper_cb, t);
    t->trimmer = event_new(base, -1, 0, trim_cb, t);
    t->waker = event_new(base, -1, 0, waker_cb, t);
    if (!t->cbuckets || !t->reaper || !t->trimmer || !t->waker || session_table_set_config(t, cfg) < 0 ||
        table_grow(t) < 0) {
        session_table_free(t);
        return NULL;
    }
    return t;
}

int session_table_set_config(struct session_table *t,
                             const struct gw_config *cfg)
{
    struct timeval tv, lt;
    gw_ms_to_tv(cfg->idle_timeout_ms, &tv);
    const struct timeval *idle = event_base_init_common_timeout(t->base, &tv);
    const struct timeval *life = NULL;
    if (cfg->max_lifetime_ms) {
        gw_ms_to_tv(cfg->max_lifetime_ms, &lt);
        life = event_base_init_common_timeout(t->base, &lt);
    }
    /* Without its common timeout a timer would silently never be armed
     * (no idle period, no max_lifetime): refuse the config instead. */
    if (!idle || (cfg->max_lifetime_ms && !life)) {
        log_error("session: cannot set up the idle/lifetime timers");
        return GW_ENOMEM;
    }
    gw_config_ref(cfg);
    gw_config_unref(t->cfg);
    t->cfg = cfg;
    t->tv_idle = idle;
    t->tv_life = life;
    return 0;
}

const struct gw_config *session_table_config(const struct session_table *t)
{
    return t->cfg;
}

void session_table_set_upstream_ops(struct session_table *t,
                                    const struct session_upstream_ops *ops)
{
    t->up = ops ? ops : &session_upstream_ws;
}

void session_table_set_fd_capacity(struct session_table *t, uint64_t n)
{
    t->fd_capacity = n;
}

void session_table_set_metrics(struct session_table *t, struct metrics *m)
{
    t->metrics = m;
}

static enum metrics_dialect dialect_of(const struct session *s)
{
    return s->pol.id_kind == SESSION_ID_CLIENT ? METRICS_SOCKJS : METRICS_NATIVE;
}

const struct session_stats *session_table_stats(const struct session_table *t)
{
    return &t->stats;
}

/* ------------------------------------------------------------- helpers */

static void detach_sink(struct session *s, enum session_detach_why why)
{
    struct session_sink *k = s->sink;
    unlist_wake(s); /* the wake was for k */
    if (!k)
        return;
    s->sink = NULL;
    k->session = NULL;
    if (k->ops->detach)
        k->ops->detach(k, why);
}

static void arm_timer(struct session *s)
{
    event_add(&s->timer, s->tv_idle);
}

static void set_close(struct session *s, uint16_t code, const char *reason,
                      size_t reason_len)
{
    if (s->close_code)
        return; /* the first close wins */
    s->close_code = code;
    free(s->close_reason);
    s->close_reason = strndup(reason ? reason : "", reason ? reason_len : 0);
}

static void set_close_str(struct session *s, uint16_t code, const char *reason)
{
    set_close(s, code, reason, strlen(reason));
}

/* The gateway closes the upstream: the browser will learn this code and
 * reason (unless an earlier close won). */
static void close_up(struct session *s, uint16_t code, const char *reason)
{
    set_close_str(s, code, reason);
    s->t->up->close(s->up, code, reason);
}

/* Let go of the upstream connection (allowed inside its own callbacks). */
static void drop_upstream(struct session *s)
{
    s->t->up->free(s->up);
    s->up = NULL;
}

static void stop_lifetime(struct session *s)
{
    if (s->life) {
        event_free(s->life);
        s->life = NULL;
    }
}

static void unpause_global(struct session *s)
{
    if (s->on_pause_list) {
        TAILQ_REMOVE(&s->t->pause_list, s, pause_link);
        s->on_pause_list = false;
    }
}

static void set_paused(struct session *s, bool pause)
{
    if (s->paused == pause)
        return;
    s->paused = pause;
    if (pause)
        s->t->stats.paused++;
    else
        s->t->stats.paused--;
    if (s->up)
        s->t->up->pause_reading(s->up, pause);
}

/* closed_total counts sessions that opened, once each. */
static void count_closed(struct session *s)
{
    if (s->was_opened && !s->counted_closed) {
        s->counted_closed = true;
        s->t->stats.closed_total++;
        if (s->mr) {
            s->mr->closed_total[s->close_why]++;
            s->mr->sessions_open[dialect_of(s)]--;
        }
    }
}

/* What ending a live session lets go of, whether it becomes a tombstone
 * or is released: its request, pauses, client slot, queue and lifetime
 * timer. Idempotent. */
static void let_go(struct session *s)
{
    struct session_table *t = s->t;
    detach_sink(s, SESSION_DETACH_CLOSING);
    unpause_global(s);
    if (s->paused)
        set_paused(s, false);
    count_closed(s);
    if (s->client) {
        client_put(t, s->client);
        s->client = NULL;
    }
    t->stats.buffered_bytes -= s->q.bytes;
    session_queue_clear(&s->q);
    stop_lifetime(s);
}

/* Unlink and queue for freeing from the event loop. */
static void session_release(struct session *s)
{
    if (s->released)
        return;
    s->released = true;
    struct session_table *t = s->t;
    if (s->state != SESSION_FINISHED) {
        t->stats.sessions--;
        maybe_trim(t);
    } else {
        t->stats.tombstones--;
    }
    let_go(s);
    if (s->unlinked)
        LIST_REMOVE(s, unlinked_link);
    else
        table_remove(t, s);
    event_del(&s->timer);
    s->grave_next = t->graveyard;
    t->graveyard = s;
    event_active(t->reaper, EV_TIMEOUT, 0);
}

/* Become a tombstone: no upstream use, no queue, 410 for idle_timeout. */
static void session_finish(struct session *s)
{
    if (s->state == SESSION_FINISHED)
        return;
    struct session_table *t = s->t;
    let_go(s);
    s->state = SESSION_FINISHED;
    t->stats.sessions--;
    t->stats.tombstones++;
    maybe_trim(t);
    arm_timer(s);
}

/* ---------------------------------------------------- upstream callbacks */

static void up_open_cb(struct ws_client *c, void *arg)
{
    struct session *s = arg;
    if (s->released)
        return;
    if (s->unlinked) {
        /* abandoned while opening (session_abort_open) */
        s->state = SESSION_OPEN;
        close_up(s, WS_CLOSE_GOING_AWAY, "browser went away");
        session_finish(s);
        event_del(&s->timer); /* up_close_cb releases it */
        return;
    }
    struct session_sink *op = s->opener;
    const char *proto = s->t->up->protocol(c);
    s->state = SESSION_OPEN;
    s->was_opened = true;
    s->t->stats.opened_total++;
    if (s->mr) {
        struct timeval now, d;
        event_base_gettimeofday_cached(s->t->base, &now);
        timersub(&now, &s->born, &d);
        s->mr->opened_total[dialect_of(s)]++;
        s->mr->sessions_open[dialect_of(s)]++;
        metrics_hist_observe(&s->t->metrics->upstream_connect_seconds,
                             (double)d.tv_sec + (double)d.tv_usec / 1e6);
    }
    if (proto)
        s->protocol = strdup(proto);
    if (s->tv_life) {
        s->life = event_new(s->t->base, -1, 0, session_life_cb, s);
        if (!s->life || event_add(s->life, s->tv_life) != 0)
            log_warn("session %.*s: cannot arm max_lifetime (out of memory)",
                     GW_LOG_ID(s->id, s->id_len));
    }
    arm_timer(s);
    s->opener = NULL;
    if (op) {
        op->session = s;
        if (op->ops->opened)
            op->ops->opened(op, NULL);
    }
}

/* Is this session's queue (or the global budget) over its limit if a
 * message of len bytes is added? */
static bool over_limit(const struct session *s, size_t len, bool *global)
{
    const struct gw_config *cfg = s->cfg;
    *global = s->t->stats.buffered_bytes + len > s->t->cfg->max_buffered_bytes;
    return *global || s->q.bytes + len > cfg->buffer_bytes ||
           session_queue_count(&s->q) + 1 > cfg->buffer_messages;
}

/* Evict the oldest message. Nothing to remember: a browser whose position
 * is before the oldest message kept is told of the gap when it next asks
 * (session_lost_since). */
static void drop_front(struct session *s)
{
    size_t before = s->q.bytes;
    if (session_queue_drop_front(&s->q)) {
        s->t->stats.dropped++;
        if (s->mr)
            s->mr->evicted_total++;
    }
    s->t->stats.buffered_bytes -= before - s->q.bytes;
}

/* The upstream side is over: queued messages are still delivered, then
 * the close. */
static void become_closed(struct session *s)
{
    s->state = SESSION_CLOSED;
    unpause_global(s);
    stop_lifetime(s);
    unlist_wake(s); /* this wake covers the messages queued before */
    if (s->sink && s->sink->ops->wake)
        s->sink->ops->wake(s->sink);
}

/* The gateway ends the upstream side (policy, lifetime, out of memory):
 * remember why, send the close frame, and let the browser learn the close
 * after everything queued before it. */
static void close_upstream(struct session *s, uint16_t code, const char *reason)
{
    close_up(s, code, reason);
    become_closed(s);
}

/* Stop reading this upstream because the budget shared by all sessions is
 * spent: listed, so that whoever frees budget resumes it. */
static void pause_for_budget(struct session *s)
{
    set_paused(s, true);
    if (!s->on_pause_list) {
        TAILQ_INSERT_TAIL(&s->t->pause_list, s, pause_link);
        s->on_pause_list = true;
    }
}

static void up_message_cb(struct ws_client *c, bool binary,
                          const uint8_t *data, size_t len, void *arg)
{
    (void)c;
    struct session *s = arg;
    struct session_table *t = s->t;
    if (s->state != SESSION_OPEN || s->released)
        return;
    if (binary) {
        switch (s->pol.binary) {
        case SESSION_BINARY_DROP:
            t->stats.binary_dropped++;
            return;
        case SESSION_BINARY_CLOSE:
            log_info("session %.*s: binary upstream message, closing (binary = close)",
                     GW_LOG_ID(s->id, s->id_len));
            close_upstream(s, WS_CLOSE_UNSUPPORTED, "binary message not supported");
            return;
        case SESSION_BINARY_PASS:
        default:
            break; /* queued as binary; the sink encodes it */
        }
    }
    bool global;
    enum gw_overflow ov = (enum gw_overflow)s->cfg->overflow;
    /* 1. Unless overflow = pause: messages already written to a stream go
     *    first: they were sent and are only kept for a resume. Evicting
     *    them is reported as lost if the browser later resumes from before
     *    them. Under pause nothing is ever evicted, not even these (a
     *    stream that drops would lose them): the upstream waits until the
     *    browser's acks free room. */
    while (ov != GW_OVERFLOW_PAUSE && s->q.written &&
           over_limit(s, len, &global) && !global)
        drop_front(s);
    if (over_limit(s, len, &global)) {
        switch (ov) {
        case GW_OVERFLOW_DROP_OLDEST:
            while (session_queue_count(&s->q) && over_limit(s, len, &global) &&
                   !global)
                drop_front(s);
            if (global) /* the budget is shared: never evict for others'
                         * sake, push back on this upstream instead */
                pause_for_budget(s);
            break;
        case GW_OVERFLOW_CLOSE:
            log_info("session %.*s: buffer overflow, closing", GW_LOG_ID(s->id, s->id_len));
            s->close_why = METRICS_CLOSE_OVERFLOW;
            close_upstream(s, WS_CLOSE_POLICY, "buffer overflow");
            return;
        case GW_OVERFLOW_PAUSE:
        default:
            /* Keep this message (nothing is dropped) and stop reading. */
            if (global)
                pause_for_budget(s);
            else
                set_paused(s, true);
            break;
        }
    }
    size_t before = s->q.bytes;
    if (session_queue_push(&s->q, binary, data, len) < 0) {
        log_error("session %.*s: out of memory queuing a message", GW_LOG_ID(s->id, s->id_len));
        close_upstream(s, WS_CLOSE_INTERNAL, "out of memory");
        return;
    } else {
        t->stats.buffered_bytes += s->q.bytes - before;
        t->stats.messages_in++;
        if (s->mr) {
            s->mr->messages_total[METRICS_TO_BROWSER]++;
            s->mr->bytes_total[METRICS_TO_BROWSER] += len;
        }
    }
    wake_later(s); /* once the read that brought it is over */
}

static void up_close_cb(struct ws_client *c, const struct ws_close_info *ci,
                        void *arg)
{
    struct session *s = arg;
    (void)c;
    if (s->state == SESSION_OPENING) {
        struct session_sink *op = s->opener;
        s->opener = NULL;
        log_info("session %.*s: upstream %s failed: %s", GW_LOG_ID(s->id, s->id_len),
                 s->route->upstream, ci->detail ? ci->detail : "");
        if (s->pol.failed_open == SESSION_FAILED_OPEN_TOMBSTONE &&
            !s->released && !s->unlinked) {
            /* later requests get the close until the tombstone expires */
            const char *why = ci->detail && *ci->detail ? ci->detail
                                                        : "upstream failed";
            set_close_str(s, WS_CLOSE_INTERNAL, why);
            drop_upstream(s);
            session_finish(s);
        } else {
            session_release(s);
        }
        if (op && op->ops->opened)
            op->ops->opened(op, ci);
        return;
    }
    if (s->state == SESSION_OPEN) {
        log_debug("session %.*s: upstream closed %u", GW_LOG_ID(s->id, s->id_len), ci->code);
        if (ci->fail != WS_FAIL_NONE && ci->detail && !ci->reason_len)
            set_close(s, ci->code, ci->detail, strlen(ci->detail));
        else
            set_close(s, ci->code, ci->reason, ci->reason_len);
        become_closed(s);
    }
    if (s->unlinked) {
        session_release(s);  /* reaped already: its upstream is closed now */
        return;
    }
    /* The connection is over: let go of it now (freeing inside its own
     * callback is allowed, ws_client defers it). */
    if (!s->released)
        drop_upstream(s);
}

/* The upstream read that queued messages is over: wake the sink now
 * rather than at the end of the loop turn (the waker stays for
 * upstreams that do not report this). */
static void up_read_end_cb(struct ws_client *c, void *arg)
{
    (void)c;
    struct session *s = arg;
    if (!s->on_wake_list)
        return;
    unlist_wake(s);
    if (TAILQ_EMPTY(&s->t->wake_list))
        event_del(s->t->waker); /* nothing left for it this turn */
    if (s->sink && s->sink->ops->wake)
        s->sink->ops->wake(s->sink);
}

static const struct ws_client_callbacks up_callbacks = {
    .on_open = up_open_cb,
    .on_message = up_message_cb,
    .on_close = up_close_cb,
    .on_read_end = up_read_end_cb,
};

/* -------------------------------------------------------------- timers */

/* Forget the id now (a new request with it starts a new session); the
 * struct lives, off the table, until its upstream's close handshake ends
 * and up_close_cb releases it. */
static void session_unlink(struct session *s)
{
    event_del(&s->timer);
    table_remove(s->t, s);
    s->unlinked = true;
    LIST_INSERT_HEAD(&s->t->unlinked, s, unlinked_link);
}

static void session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct session *s = arg;
    switch (s->state) {
    case SESSION_OPENING:
        break; /* bounded by connect_timeout */
    case SESSION_OPEN:
        log_info("session %.*s: idle timeout, closing upstream", GW_LOG_ID(s->id, s->id_len));
        s->close_why = METRICS_CLOSE_IDLE;
        close_up(s, WS_CLOSE_GOING_AWAY, "idle timeout");
        session_finish(s);
        if (s->pol.idle == SESSION_IDLE_REAP)
            session_unlink(s);
        break;
    case SESSION_CLOSED:
        if (s->pol.idle == SESSION_IDLE_REAP)
            session_release(s);
        else
            session_finish(s);
        break;
    case SESSION_FINISHED:
        /* An upstream still in its close handshake finishes it off the
         * table (freeing it now would cut the close frame short). */
        if (s->up)
            session_unlink(s);
        else
            session_release(s);
        break;
    }
}

static void session_life_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct session *s = arg;
    if (s->state != SESSION_OPEN)
        return;
    log_info("session %.*s: max_lifetime reached, closing upstream", GW_LOG_ID(s->id, s->id_len));
    s->close_why = METRICS_CLOSE_LIFETIME;
    close_upstream(s, WS_CLOSE_GOING_AWAY, "session lifetime reached");
}

/* ---------------------------------------------------------------- open */

/* A fresh random id after "<instance>." if an instance is set; GW_EIO if
 * the CSPRNG fails (never a guessable id). out holds SESSION_ID_MAX + 1. */
static int make_id(const char *instance, char *out)
{
    if (instance && *instance) {
        size_t n = strlen(instance);
        memcpy(out, instance, n);
        out[n] = '.';
        out += n + 1;
    }
    static const char b64url[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint8_t r[16];
    if (RAND_bytes(r, sizeof r) != 1)
        return GW_EIO;
    /* 128 bits -> 22 characters (the last one carries 2 bits) */
    uint32_t acc = 0;
    int bits = 0, j = 0;
    for (int i = 0; i < 16; i++) {
        acc = (acc << 8) | r[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[j++] = b64url[(acc >> bits) & 63];
        }
    }
    if (bits)
        out[j++] = b64url[(acc << (6 - bits)) & 63];
    out[j] = 0;
    return 0;
}

enum session_open_err session_open(struct session_table *t,
                                   const struct session_policy *pol,
                                   const struct session_open_params *p,
                                   struct session **out)
{
    const struct gw_config *cfg = t->cfg;
    bool client_id = pol->id_kind == SESSION_ID_CLIENT;
    *out = NULL;
    if (client_id && !p->id)
        return SESSION_OPEN_FAILED;
    if (t->draining)
        return SESSION_OPEN_DRAINING;
    if (t->stats.sessions >= cfg->max_sessions ||
        (t->fd_capacity && t->stats.sessions >= t->fd_capacity))
        return SESSION_OPEN_FULL;
    struct client_entry *ce = client_get(t, p->client_addr, true);
    if (!ce)
        return SESSION_OPEN_FAILED;
    if (ce->count >= cfg->max_sessions_per_client)
        return SESSION_OPEN_CLIENT_FULL;
    ce->count++;

    size_t prefix = cfg->instance ? strlen(cfg->instance) + 1 : 0;
    size_t id_len = client_id ? p->id_len : prefix + SESSION_ID_LEN;
    if (client_id && (id_len == 0 || id_len > SESSION_KEY_MAX ||
                      session_find_client(t, p->route, p->id, id_len))) {
        client_put(t, ce);
        return SESSION_OPEN_FAILED;
    }
    struct session *s = calloc(1, sizeof *s + id_len + 1);
    if (!s) {
        client_put(t, ce);
        return SESSION_OPEN_FAILED;
    }
    s->t = t;
    s->client = ce;
    s->cfg = gw_config_ref(cfg);
    s->route = p->route;
    s->opener = p->opener;
    if (p->opener && p->opener->transport)
        s->last_transport = p->opener->transport;
    s->id_len = id_len;
    s->pol = *pol;
    s->tv_idle = t->tv_idle;
    s->tv_life = t->tv_life;
    if (pol->idle_ms) {
        struct timeval tv;
        gw_ms_to_tv(pol->idle_ms, &tv);
        const struct timeval *ctv = event_base_init_common_timeout(t->base, &tv);
        if (!ctv) {
            /* never silently the wrong idle period */
            log_error("session: cannot set up a %llu ms idle timer",
                      (unsigned long long)pol->idle_ms);
            client_put(t, ce);
            gw_config_unref(s->cfg);
            free(s);
            return SESSION_OPEN_FAILED;
        }
        s->tv_idle = ctv;
    }
    session_queue_init(&s->q);
    if (client_id) {
        memcpy(s->id, p->id, id_len);
        s->id[id_len] = 0;
    } else {
        do {
            if (make_id(cfg->instance, s->id) < 0) {
                log_error("session: the CSPRNG failed, refusing to open");
                client_put(t, ce);
                gw_config_unref(s->cfg);
                free(s);
                return SESSION_OPEN_FAILED;
            }
        } while (find_key(t, pol->id_kind, NULL, s->id, id_len));
    }
    s->close_why = METRICS_CLOSE_UPSTREAM;
    if (t->metrics)
        s->mr = metrics_route(t->metrics, p->route->name);
    event_base_gettimeofday_cached(t->base, &s->born);
    event_assign(&s->timer, t->base, -1, 0, session_timer_cb, s);

    struct gw_error err = {0};
    struct ws_client_options opt = {
        .url = p->route->upstream,
        .protocols = p->protocols ? p->protocols : p->route->protocols,
        .headers = p->headers,
        .n_headers = p->n_headers,
        .max_message = cfg->max_message,
        .connect_timeout_ms = (uint32_t)cfg->connect_timeout_ms,
        .ping_interval_ms = (uint32_t)cfg->ping_interval_ms,
        .ssl_ctx = t->ssl_ctx,
    };
    s->up = t->up->create(t->base, t->dns, &opt, &up_callbacks, s, &err);
    if (!s->up || table_insert(t, s) < 0) {
        log_warn("session: cannot create upstream client: %s", err.msg);
        t->up->free(s->up);
        client_put(t, ce);
        gw_config_unref(s->cfg);
        free(s);
        return SESSION_OPEN_FAILED;
    }
    t->stats.sessions++;
    if (t->stats.sessions > t->trim_peak)
        t->trim_peak = t->stats.sessions;
    if (t->up->connect(s->up) < 0) {
        s->opener = NULL;
        session_release(s);
        return SESSION_OPEN_FAILED;
    }
    *out = s;
    return SESSION_OPEN_OK;
}

bool session_receiving(const struct session *s)
{
    return s->sink != NULL || s->opener != NULL;
}

void session_abort_open(struct session *s)
{
    if (s->state != SESSION_OPENING || s->unlinked)
        return;
    s->opener = NULL;
    /* No close frame can be sent before the 101, and cutting the TCP
     * connection then leaves an upstream that has already accepted with
     * 1006. So the id is forgotten now, and the connection finishes
     * opening off the table (bounded by connect_timeout): up_open_cb then
     * closes it with 1001, a failed open just releases it. */
    session_unlink(s);
}

/* ------------------------------------------------------------ accessors */

const char *session_id(const struct session *s) { return s->id; }
enum session_state session_state(const struct session *s) { return s->state; }
const struct gw_route *session_route(const struct session *s) { return s->route; }
const struct gw_config *session_config(const struct session *s) { return s->cfg; }
const char *session_protocol(const struct session *s) { return s->protocol; }
uint16_t session_close_code(const struct session *s) { return s->close_code; }
const char *session_close_reason(const struct session *s)
{
    return s->close_reason ? s->close_reason : "";
}
struct session_queue *session_queue(struct session *s) { return &s->q; }

bool session_lost_since(const struct session *s, uint64_t pos,
                        uint64_t *from, uint64_t *to)
{
    uint64_t lo = (pos > s->acked ? pos : s->acked) + 1;
    if (lo >= s->q.head_seq)
        return false;
    *from = lo;
    *to = s->q.head_seq - 1;
    return true;
}

uint64_t session_acked(const struct session *s)
{
    return s->acked;
}

bool session_close_ready(const struct session *s, bool stream)
{
    if (s->state != SESSION_CLOSED)
        return false;
    size_t pending = session_queue_count(&s->q);
    return stream ? s->q.written == pending : pending == 0;
}

void session_close_delivered(struct session *s)
{
    if (s->state != SESSION_CLOSED)
        return;
    /* A stream writes the close right after messages the browser has not
     * acknowledged yet: if the stream drops, they and the close must be
     * replayable, so the session stays CLOSED (its idle timer running)
     * until the browser acknowledges the last seq or idle_timeout passes. */
    if (session_queue_count(&s->q) == 0)
        session_finish(s);
    else
        s->close_sent = true;
}

void session_close_acked(struct session *s)
{
    /* The browser has everything, and a stream wrote the close after it:
     * what is left is a tombstone. */
    if (s->state == SESSION_CLOSED && s->close_sent &&
        session_queue_count(&s->q) == 0)
        session_finish(s);
}

/* ---------------------------------------------------------------- flow */

void session_check_resume(struct session *s)
{
    const struct gw_config *cfg = s->cfg;
    struct session_table *t = s->t;
    uint64_t budget = t->cfg->max_buffered_bytes;
    if (s->paused && s->state == SESSION_OPEN &&
        s->q.bytes <= cfg->buffer_bytes / RESUME_DEN * RESUME_NUM &&
        session_queue_count(&s->q) <= cfg->buffer_messages / RESUME_DEN) {
        if (t->stats.buffered_bytes < budget) {
            unpause_global(s);
            set_paused(s, false);
        } else {
            pause_for_budget(s); /* only the shared budget holds it now */
        }
    }
    /* Freed budget: let sessions paused by the global limit go on. */
    while (!TAILQ_EMPTY(&t->pause_list) &&
           t->stats.buffered_bytes <
               budget / RESUME_GLOBAL_DEN * RESUME_GLOBAL_NUM) {
        struct session *o = TAILQ_FIRST(&t->pause_list);
        unpause_global(o);
        if (o->q.bytes <= o->cfg->buffer_bytes / RESUME_DEN * RESUME_NUM)
            set_paused(o, false);
    }
}

int session_ack(struct session *s, uint64_t ack)
{
    if (ack >= s->q.next_seq)
        return GW_EINVAL;
    size_t before = s->q.bytes;
    session_queue_ack(&s->q, ack);
    s->t->stats.buffered_bytes -= before - s->q.bytes;
    if (ack > s->acked)
        s->acked = ack;
    if (!s->sink && s->state != SESSION_FINISHED)
        arm_timer(s);
    session_check_resume(s);
    return 0;
}

void session_touch(struct session *s)
{
    if (!s->sink && !s->released && s->state != SESSION_FINISHED &&
        s->state != SESSION_OPENING)
        arm_timer(s);
}

void session_attach(struct session *s, struct session_sink *k)
{
    if (s->sink && s->sink != k)
        detach_sink(s, SESSION_DETACH_REPLACED);
    s->sink = k;
    k->session = s;
    if (k->transport)
        s->last_transport = k->transport;
    if (s->state != SESSION_FINISHED)
        event_del(&s->timer);
}

void session_detach(struct session *s, struct session_sink *k)
{
    if (!s || s->sink != k)
        return;
    unlist_wake(s); /* the wake was for k */
    s->sink = NULL;
    k->session = NULL;
    if (s->state != SESSION_FINISHED && !s->released)
        arm_timer(s);
}

enum session_send_result session_send(struct session *s,
                                      const struct session_batch *b)
{
    const struct session_upstream_ops *up = s->t->up;
    if (s->state != SESSION_OPEN)
        return SESSION_SEND_NOT_OPEN;
    if (b->has_seq && s->has_send_seq && b->seq <= s->send_seq)
        return SESSION_SEND_DUPLICATE;
    size_t total = 0;
    for (size_t i = 0; i < b->n; i++)
        total += b->msgs[i].len + WS_FRAME_HEADER_MAX;
    size_t pending = up->pending_bytes(s->up);
    /* An empty buffer always takes one batch, so a batch larger than the
     * limit cannot be refused forever. */
    if (pending && pending + total > s->cfg->send_buffer_bytes)
        return SESSION_SEND_FULL;
    for (size_t i = 0; i < b->n; i++) {
        const struct session_out_msg *m = &b->msgs[i];
        if (up->send(s->up, m->binary, m->data, m->len) < 0)
            return SESSION_SEND_NOT_OPEN;
        s->t->stats.messages_out++;
        if (s->mr) {
            s->mr->messages_total[METRICS_TO_UPSTREAM]++;
            s->mr->bytes_total[METRICS_TO_UPSTREAM] += m->len;
        }
    }
    if (b->has_seq) {
        s->has_send_seq = true;
        s->send_seq = b->seq;
    }
    if (!s->sink)
        arm_timer(s);
    return SESSION_SEND_OK;
}

void session_close_by_admin(struct session *s, uint16_t code,
                            const char *reason)
{
    if (s->state == SESSION_OPENING) {
        session_abort_open(s);
        return;
    }
    if (s->state != SESSION_OPEN)
        return;
    log_info("session %.*s: closed by admin (%u)", GW_LOG_ID(s->id, s->id_len), code);
    s->close_why = METRICS_CLOSE_ADMIN;
    set_close_str(s, code, reason ? reason : "");
    s->t->up->close(s->up, WS_CLOSE_NORMAL, "closed by admin");
    become_closed(s);
}

size_t session_table_foreach(struct session_table *t,
                             bool (*fn)(struct session *s, void *arg), void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (struct session *s = t->buckets[i], *next; s; s = next) {
            next = s->next_id;
            n++;
            if (!fn(s, arg))
                return n;
        }
    }
    return n;
}

const char *session_transport(const struct session *s)
{
    const struct session_sink *k = s->sink ? s->sink : s->opener;
    return k && k->transport ? k->transport : "none";
}

const char *session_last_transport(const struct session *s)
{
    return s->last_transport ? s->last_transport : "none";
}

bool session_is_native(const struct session *s)
{
    return s->pol.id_kind == SESSION_ID_RANDOM;
}

const char *session_client_addr(const struct session *s)
{
    return s->client ? s->client->addr : NULL;
}

uint64_t session_age_ms(const struct session *s)
{
    struct timeval now, d;
    event_base_gettimeofday_cached(s->t->base, &now);
    timersub(&now, &s->born, &d);
    return (uint64_t)d.tv_sec * 1000u + (uint64_t)d.tv_usec / 1000u;
}

bool session_paused(const struct session *s)
{
    return s->paused || s->on_pause_list;
}

void session_close_by_browser(struct session *s)
{
    if (s->state == SESSION_FINISHED)
        return;
    if (s->state == SESSION_OPENING) {
        session_abort_open(s);
        return;
    }
    if (s->state == SESSION_OPEN) {
        s->close_why = METRICS_CLOSE_BROWSER;
        close_up(s, WS_CLOSE_NORMAL, "closed by browser");
    }
    session_finish(s);
}

void session_end(struct session *s, uint16_t code, const char *reason)
{
    if (s->released || s->unlinked)
        return;
    switch (s->state) {
    case SESSION_OPENING:
        session_abort_open(s);
        break;
    case SESSION_OPEN:
        close_up(s, code, reason);
        session_finish(s);
        if (s->pol.idle == SESSION_IDLE_REAP)
            session_unlink(s); /* released once the upstream has closed */
        break;
    case SESSION_CLOSED:
    case SESSION_FINISHED:
        if (s->pol.idle == SESSION_IDLE_REAP && s->up) {
            /* The gateway closed the upstream (drain, lifetime) and its
             * close frame may not be written yet: freeing it now would
             * cut the connection (1006). Released once it has closed. */
            session_finish(s);
            session_unlink(s);
        } else if (s->pol.idle == SESSION_IDLE_REAP) {
            session_release(s);
        } else {
            session_finish(s);
        }
        break;
    }
}

void session_interrupt(struct session *s, uint16_t code, const char *reason,
                       uint16_t up_code, const char *up_reason)
{
    if (s->released || s->unlinked || s->state == SESSION_FINISHED)
        return;
    if (s->state == SESSION_OPENING) {
        session_abort_open(s);
        return;
    }
    if (s->state == SESSION_OPEN) {
        set_close_str(s, code, reason);
        s->t->up->close(s->up, up_code, up_reason);
    }
    session_finish(s); /* the tombstone answers the close for idle_ms */
}

/* ---------------------------------------------------------------- free */

void session_table_set_draining(struct session_table *t)
{
    t->draining = true;
}

size_t session_table_drain_close(struct session_table *t)
{
    size_t closed = 0;
    t->draining = true;
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (struct session *s = t->buckets[i], *next; s; s = next) {
            next = s->next_id;
            const char *why = s->pol.drain_reason ? s->pol.drain_reason
                                                  : "going away";
            /* (opening ones finish or fail within connect_timeout; a stop
             * after the drain answers their opener) */
            log_debug("session %.*s: drain ends (state %d)", GW_LOG_ID(s->id, s->id_len),
                      (int)s->state);
            if (s->state == SESSION_OPEN) {
                close_upstream(s, WS_CLOSE_GOING_AWAY, why);
                closed++;
            }
        }
    }
    return closed;
}

size_t session_table_drain_route(struct session_table *t, const char *route,
                                 uint64_t before, size_t *opening)
{
    size_t closed = 0;
    *opening = 0;
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (struct session *s = t->buckets[i], *next; s; s = next) {
            next = s->next_id;
            if (s->cfg->generation >= before || strcmp(s->route->name, route))
                continue;
            if (s->state == SESSION_OPENING) {
                (*opening)++;
            } else if (s->state == SESSION_OPEN) {
                log_debug("session %.*s: route %s removed, closing",
                          GW_LOG_ID(s->id, s->id_len), route);
                s->close_why = METRICS_CLOSE_SHUTDOWN;
                close_upstream(s, WS_CLOSE_GOING_AWAY, s->pol.drain_reason
                               ? s->pol.drain_reason : "going away");
                closed++;
            }
        }
    }
    return closed;
}

uint64_t session_table_undelivered(const struct session_table *t)
{
    uint64_t n = 0;
    for (size_t i = 0; i < t->n_buckets; i++)
        for (const struct session *s = t->buckets[i]; s; s = s->next_id)
            if (s->state == SESSION_OPEN || s->state == SESSION_CLOSED)
                n += session_queue_count(&s->q);
    return n;
}

size_t session_table_shutdown(struct session_table *t)
{
    size_t closing = 0;
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (struct session *s = t->buckets[i], *next; s; s = next) {
            next = s->next_id;
            if (s->state == SESSION_OPEN) {
                s->close_why = METRICS_CLOSE_SHUTDOWN;
                close_up(s, WS_CLOSE_GOING_AWAY, "gateway shutting down");
                session_finish(s);
            } else if (s->state == SESSION_CLOSED) {
                session_finish(s);
            }
            if (s->up)
                closing++;
        }
    }
    return closing;
}

void session_table_clear(struct session_table *t)
{
    for (size_t i = 0; i < t->n_buckets; i++) {
        while (t->buckets && t->buckets[i]) {
            struct session *s = t->buckets[i];
            if (s->state == SESSION_OPENING && s->opener) {
                struct session_sink *op = s->opener;
                s->opener = NULL;
                struct ws_close_info ci = { .code = WS_CLOSE_GOING_AWAY,
                    .fail = WS_FAIL_IO, .detail = "gateway shutting down" };
                session_release(s);
                if (op->ops->opened)
                    op->ops->opened(op, &ci);
            } else {
                session_release(s);
            }
        }
    }
    while (!LIST_EMPTY(&t->unlinked))
        session_release(LIST_FIRST(&t->unlinked));
    reaper_cb(-1, 0, t);
}

void session_table_free(struct session_table *t)
{
    if (!t)
        return;
    session_table_clear(t);
    if (t->reaper)
        event_free(t->reaper);
    if (t->trimmer)
        event_free(t->trimmer);
    if (t->waker)
        event_free(t->waker);
    for (size_t i = 0; i < t->n_cbuckets && t->cbuckets; i++) {
        while (t->cbuckets[i]) {
            struct client_entry *c = t->cbuckets[i];
            t->cbuckets[i] = c->next;
            free(c);
        }
    }
    free(t->cbuckets);
    free(t->buckets);
    gw_config_unref(t->cfg);
    free(t);
}
