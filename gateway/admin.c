/*
 * admin.c - the admin listener: health from periodic upstream probes,
 * Prometheus metrics, JSON stats, the session list and admin close.
 *
 * The health answer never waits for a probe: a probe runs every
 * health_interval (the same asynchronous check as --check-upstream) and
 * GET /health answers from the last completed one, so a monitor polling
 * often causes no upstream traffic of its own.
 */
#include "admin.h"
#include "access_log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "check_upstream.h"
#include "gw_listen.h"
#include "gw_log.h"
#include "http_limits.h"
#include "http_util.h"
#include "metrics.h"
#include "session.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "dev"
#endif

struct admin {
    struct event_base *base;
    struct evdns_base *dns;
    const struct gw_config *cfg;     /* a reference: the current config */
    SSL_CTX *ssl_ctx;
    struct session_table *sessions;
    struct metrics *m;
    struct evhttp *http;
    struct gw_listen_set *listeners;
    struct event *probe_timer;
    struct upstream_check *running;  /* probe under way */
    struct upstream_check *last;     /* last completed probe, or NULL */
    const struct http_limits_stats *limits_stats; /* borrowed, or NULL */
    bool draining;
};

void admin_set_limits_stats(struct admin *a, const struct http_limits_stats *ls)
{
    if (a)
        a->limits_stats = ls;
}

/* ------------------------------------------------------------- probing */

static void probe_schedule(struct admin *a)
{
    struct timeval tv;
    gw_ms_to_tv(a->cfg->health_interval_ms, &tv);
    event_add(a->probe_timer, &tv);
}

static void probe_done_cb(struct upstream_check *c, void *arg)
{
    admin_take_check(arg, c);
}

void admin_take_check(struct admin *a, struct upstream_check *c)
{
    for (size_t i = 0; i < upstream_check_count(c); i++) {
        const struct upstream_check_result *r = upstream_check_result(c, i);
        struct metrics_route *mr = metrics_route(a->m, r->route->name);
        if (mr)
            mr->upstream_up = r->ok ? 1 : 0;
        if (!r->ok)
            log_warn("health: route %s: upstream %s not reachable: %s",
                     r->route->name, r->route->upstream, r->reason);
    }
    upstream_check_free(a->last);
    a->last = c;
    if (a->running == c)
        a->running = NULL;
    probe_schedule(a);
}

static void probe_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct admin *a = arg;
    if (a->running)
        return;
    a->running = upstream_check_start(a->base, a->dns, a->cfg, a->ssl_ctx,
                                      probe_done_cb, a);
    if (!a->running)
        probe_schedule(a); /* out of memory: try again later */
}

/* ------------------------------------------------------------- replies */

static void reply_json(struct admin *a, struct evhttp_request *req, int status,
                       json_t *j)
{
    (void)a;
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        http_reply_error(req, 500, "internal_error", "out of memory");
        return;
    }
    http_reply_json_str(req, status, s, strlen(s));
    free(s);
}

static void handle_health(struct admin *a, struct evhttp_request *req)
{
    if (a->draining) {
        http_reply_json_str(req, 503, "{\"status\":\"draining\"}", 21);
        return;
    }
    json_t *routes = json_object();
    bool all_ok = a->last != NULL;
    for (size_t i = 0; a->last && i < upstream_check_count(a->last); i++) {
        const struct upstream_check_result *r = upstream_check_result(a->last, i);
        json_t *o = r->ok
            ? json_pack("{s:b,s:f}", "ok", 1, "ms", r->ms)
            : json_pack("{s:b,s:s}", "ok", 0, "reason", r->reason);
        json_object_set_new(routes, r->route->name, o);
        all_ok = all_ok && r->ok;
    }
    /* Until the first probe completes nothing is known: not ok. */
    const char *status = all_ok ? "ok" : a->last ? "failing" : "starting";
    reply_json(a, req, all_ok ? 200 : 503,
               json_pack("{s:s,s:o}", "status", status, "routes", routes));
}

/* The gauges that live in the session table, copied in before rendering. */
static void metrics_refresh(struct admin *a, struct metrics_process *proc)
{
    const struct session_stats *st = session_table_stats(a->sessions);
    a->m->buffered_bytes = st->buffered_bytes;
    a->m->upstream_paused = st->paused;
    a->m->access_log_dropped = access_log_dropped();
    metrics_process_read(proc);
}

static void handle_metrics(struct admin *a, struct evhttp_request *req)
{
    struct metrics_process proc;
    struct gw_buf b = {0};
    metrics_refresh(a, &proc);
    if (metrics_render_prometheus(a->m, &proc, PACKAGE_VERSION, &b) < 0) {
        gw_buf_free(&b);
        http_reply_error(req, 500, "internal_error", "cannot render metrics");
        return;
    }
    http_out_header(req, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    http_reply_bytes(req, 200, b.data, b.len);
    gw_buf_free(&b);
}

static void handle_stats(struct admin *a, struct evhttp_request *req)
{
    struct metrics_process proc;
    struct gw_buf b = {0};
    metrics_refresh(a, &proc);
    const struct session_stats *st = session_table_stats(a->sessions);
    json_t *m = NULL;
    if (metrics_render_json(a->m, &proc, PACKAGE_VERSION, &b) == 0)
        m = json_loadb((const char *)b.data, b.len, 0, NULL);
    gw_buf_free(&b);
    if (!m) {
        http_reply_error(req, 500, "internal_error", "cannot render stats");
        return;
    }
    const struct http_limits_stats *ls = a->limits_stats;
    static const struct http_limits_stats none;
    if (!ls)
        ls = &none;
    json_t *j = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
                          "s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o}",
        "sessions", (json_int_t)st->sessions,
        "tombstones", (json_int_t)st->tombstones,
        "opened_total", (json_int_t)st->opened_total,
        "closed_total", (json_int_t)st->closed_total,
        "messages_to_browser", (json_int_t)st->messages_in,
        "messages_to_upstream", (json_int_t)st->messages_out,
        "dropped", (json_int_t)st->dropped,
        "binary_dropped", (json_int_t)st->binary_dropped,
        "buffered_bytes", (json_int_t)st->buffered_bytes,
        "paused", (json_int_t)st->paused,
        "connections", (json_int_t)ls->connections,
        "connections_refused", (json_int_t)ls->refused_max,
        "connections_refused_per_client", (json_int_t)ls->refused_per_client,
        "header_timeouts", (json_int_t)ls->header_timeouts,
        "body_timeouts", (json_int_t)ls->body_timeouts,
        "bad_requests", (json_int_t)ls->bad_requests,
        "access_log_dropped", (json_int_t)access_log_dropped(),
        "metrics", m);
    reply_json(a, req, 200, j);
}

/* ------------------------------------------------------------ sessions */

struct list_ctx {
    json_t *arr;
    size_t max, listed;
};

static const char *state_name(enum session_state st)
{
    switch (st) {
    case SESSION_OPENING: return "opening";
    case SESSION_OPEN: return "open";
    case SESSION_CLOSED: return "closed";
    case SESSION_FINISHED: return "finished";
    }
    return "?";
}

static bool list_one(struct session *s, void *arg)
{
    struct list_ctx *lc = arg;
    if (session_state(s) == SESSION_FINISHED)
        return true; /* tombstones are not sessions any more */
    if (lc->listed >= lc->max)
        return true; /* keep counting */
    struct session_queue *q = session_queue(s);
    const char *addr = session_client_addr(s);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:b,s:I,s:I,s:I,s:b}",
        "id", session_id(s),
        "route", session_route(s)->name,
        "dialect", session_is_native(s) ? "native" : "sockjs",
        "transport", session_transport(s),
        "last_transport", session_last_transport(s),
        "state", state_name(session_state(s)),
        "client", addr ? addr : "",
        "receiving", session_receiving(s),
        "age_ms", (json_int_t)session_age_ms(s),
        "buffered_messages", (json_int_t)session_queue_count(q),
        "buffered_bytes", (json_int_t)q->bytes,
        "paused", session_paused(s));
    if (o && json_array_append_new(lc->arr, o) == 0)
        lc->listed++;
    return true;
}

static void handle_sessions_list(struct admin *a, struct evhttp_request *req)
{
    struct list_ctx lc = { .arr = json_array(), .max = a->cfg->sessions_list_max };
    session_table_foreach(a->sessions, list_one, &lc);
    const struct session_stats *st = session_table_stats(a->sessions);
    reply_json(a, req, 200, json_pack("{s:I,s:I,s:o}",
        "total", (json_int_t)st->sessions, "listed", (json_int_t)lc.listed,
        "sessions", lc.arr));
}

struct find_ctx {
    const char *id;
    struct session *found;
};

static bool find_one(struct session *s, void *arg)
{
    struct find_ctx *fc = arg;
    if (strcmp(session_id(s), fc->id) == 0 &&
        session_state(s) != SESSION_FINISHED) {
        fc->found = s;
        return false;
    }
    return true;
}

/* DELETE /sessions/ID?code=4000&reason=...: ID is either dialect's id
 * (SockJS ids are unique per route only: the first match is closed). */
static void handle_session_delete(struct admin *a, struct evhttp_request *req,
                                  const char *id)
{
    struct evkeyvalq params;
    TAILQ_INIT(&params);
    const char *code_s = http_query(req, &params, "code");
    const char *reason = http_query(req, &params, "reason");
    long code = 4000;
    if (code_s) {
        char *end;
        code = strtol(code_s, &end, 10);
        if (*code_s == 0 || *end || !((code >= 3000 && code <= 4999) ||
                                      code == 1000 || code == 1001)) {
            evhttp_clear_headers(&params);
            http_reply_error(req, 400, "bad_code",
                             "code must be 1000, 1001 or 3000-4999");
            return;
        }
    }
    if (reason && strlen(reason) > 123) {
        evhttp_clear_headers(&params);
        http_reply_error(req, 400, "bad_reason",
                         "reason is longer than 123 bytes");
        return;
    }
    struct find_ctx fc = { .id = id };
    session_table_foreach(a->sessions, find_one, &fc);
    if (!fc.found) {
        evhttp_clear_headers(&params);
        http_reply_error(req, 404, "unknown_session", "no such session");
        return;
    }
    session_close_by_admin(fc.found, (uint16_t)code,
                           reason ? reason : "closed by the operator");
    evhttp_clear_headers(&params);
    http_reply_empty(req, 204);
}

/* ------------------------------------------------------------ dispatch */

static void request_cb(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
    const char *path = u ? evhttp_uri_get_path(u) : NULL;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    if (!path) {
        http_out_header(req, "Connection", "close");
        http_reply_error(req, 400, "bad_request", "malformed request");
        return;
    }
    bool get = m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD;
    if (strcmp(path, "/health") == 0 || strcmp(path, "/metrics") == 0 ||
        strcmp(path, "/stats") == 0 || strcmp(path, "/sessions") == 0) {
        if (!get) {
            http_method_not_allowed(req, "GET, HEAD");
            return;
        }
        if (path[1] == 'h')
            handle_health(a, req);
        else if (path[1] == 'm')
            handle_metrics(a, req);
        else if (path[2] == 't')
            handle_stats(a, req);
        else
            handle_sessions_list(a, req);
        return;
    }
    if (strncmp(path, "/sessions/", 10) == 0 && path[10]) {
        if (m != EVHTTP_REQ_DELETE) {
            http_method_not_allowed(req, "DELETE");
            return;
        }
        char *id = evhttp_uridecode(path + 10, 0, NULL);
        if (!id) {
            http_reply_error(req, 500, "internal_error", "out of memory");
            return;
        }
        handle_session_delete(a, req, id);
        free(id);
        return;
    }
    http_reply_error(req, 404, "not_found", "no such admin endpoint");
}

static void complete_cb(struct evhttp_request *req, void *arg)
{
    struct admin *a = arg;
    metrics_http_request(a->m, evhttp_request_get_response_code(req));
}

static void gen_cb(struct evhttp_request *req, void *arg)
{
    evhttp_request_set_on_complete_cb(req, complete_cb, arg);
    request_cb(req, arg);
}

struct admin *admin_new(struct event_base *base, struct evdns_base *dns,
                        const struct gw_config *cfg, SSL_CTX *ssl_ctx,
                        struct session_table *sessions, struct metrics *m)
{
    struct admin *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    *a = (struct admin){ .base = base, .dns = dns, .cfg = gw_config_ref(cfg),
                         .ssl_ctx = ssl_ctx, .sessions = sessions, .m = m };
    a->http = evhttp_new(base);
    a->probe_timer = evtimer_new(base, probe_timer_cb, a);
    a->listeners = gw_listen_set_new(base);
    if (!a->http || !a->probe_timer || !a->listeners) {
        admin_free(a);
        return NULL;
    }
    evhttp_set_max_body_size(a->http, 4096);
    evhttp_set_max_headers_size(a->http, 16 * 1024);
    evhttp_set_timeout(a->http, 30);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD |
                               EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                               EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS);
    evhttp_set_default_content_type(a->http, "application/json");
    evhttp_set_gencb(a->http, gen_cb, a);
    /* SO_REUSEPORT like the public listeners: a successor binds the same
     * admin address during a binary upgrade. */
    struct gw_listen addr = { .host = cfg->admin_listen_host,
                              .port = cfg->admin_listen_port };
    if (gw_listen_set_bind(a->listeners, a->http, &addr, 1,
                           (int)cfg->listen_backlog, "admin") < 0) {
        log_error("[admin] listen = %s:%u: cannot listen", cfg->admin_listen_host,
                  cfg->admin_listen_port);
        admin_free(a);
        return NULL;
    }
    log_info("admin listening on %s%s%s:%u",
             strchr(cfg->admin_listen_host, ':') ? "[" : "", cfg->admin_listen_host,
             strchr(cfg->admin_listen_host, ':') ? "]" : "", cfg->admin_listen_port);
    /* The first result is the start-up check's (admin_take_check); the
     * periodic probes start after it. */
    return a;
}

/* Would a probe of b's routes answer differently from one of a's (route
 * names, upstreams or subprotocols differ)? */
static bool probes_differ(const struct gw_config *a, const struct gw_config *b)
{
    if (a->n_routes != b->n_routes)
        return true;
    for (size_t i = 0; i < a->n_routes; i++) {
        const struct gw_route *x = &a->routes[i], *y = &b->routes[i];
        if (strcmp(x->name, y->name) || strcmp(x->upstream, y->upstream) ||
            strcmp(x->protocols ? x->protocols : "", y->protocols ? y->protocols : ""))
            return true;
    }
    return false;
}

void admin_set_config(struct admin *a, const struct gw_config *cfg)
{
    if (!a)
        return;
    bool now = probes_differ(a->cfg, cfg);
    bool interval = a->cfg->health_interval_ms != cfg->health_interval_ms;
    gw_config_ref(cfg);
    gw_config_unref(a->cfg);
    a->cfg = cfg;
    /* Not before the first result (the start-up check's) nor during a
     * probe: their end schedules the next, with the new interval; not
     * while stopping (reloads are ignored then, this is belt and braces). */
    if (!a->last || a->running || a->draining)
        return;
    if (now) {
        /* other routes: probe them at once, /health answers for them */
        struct timeval zero = { 0, 0 };
        event_del(a->probe_timer);
        event_add(a->probe_timer, &zero);
    } else if (interval) {
        event_del(a->probe_timer);
        probe_schedule(a);
    }
}

/* The admin address is left at drain start like the public ones: a
 * successor's /health answers from then on (a monitor would otherwise
 * see the draining 503 and the successor's 200 by turns and take the
 * address out of rotation), or, with no successor, checks are refused.
 * Admin connections already open still get 503 draining. */
void admin_set_draining(struct admin *a, bool draining)
{
    if (!a)
        return;
    a->draining = draining;
    if (draining)
        gw_listen_set_close(a->listeners);
}

void admin_stop_accepting(struct admin *a)
{
    if (!a)
        return;
    gw_listen_set_close(a->listeners);
    if (a->probe_timer)
        event_del(a->probe_timer);
}

void admin_free(struct admin *a)
{
    if (!a)
        return;
    gw_listen_set_free(a->listeners);
    if (a->http)
        evhttp_free(a->http);
    if (a->probe_timer)
        event_free(a->probe_timer);
    upstream_check_free(a->running);
    upstream_check_free(a->last);
    gw_config_unref(a->cfg);
    free(a);
}
