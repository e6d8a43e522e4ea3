/* gw_server.c - event loop, listener, signals and orderly stop. */
#include "gw_server.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "access_log.h"
#include "admin.h"
#include "check_upstream.h"
#include "gw_log.h"
#include "gw_notify.h"
#include "gw_proxy.h"
#include "http_front.h"
#include "metrics.h"
#include "session.h"
#include "ws_client.h"

/* A browser that has no request open when the drain ends learns its
 * close on its next request: long-poll clients come back at once, so a
 * few seconds are enough. Past that the rest is stopped (and logged). */
#define CLOSE_GRACE_MS 5000
#define DRAIN_TICK_MS 100

/* SIGTERM/SIGINT: RUNNING -> DRAINING (no new sessions, old ones go on for
 * drain_timeout) -> CLOSING (closes handed to browsers and upstreams, a
 * grace for browsers to collect them) -> STOPPING (the loop ends). A
 * second signal jumps to STOPPING; a third breaks the loop at once. */
enum stop_phase { PHASE_RUNNING = 0, PHASE_DRAINING, PHASE_CLOSING, PHASE_STOPPING };

/* A route a reload removed: its sessions (opened under a generation below
 * `before`) are closed when drain_timeout has passed. */
struct route_drain {
    struct route_drain *next;
    struct gw_server *s;
    struct event *ev;
    uint64_t before;
    char name[];
};

struct gw_server {
    struct gw_config *cfg;          /* a reference: the current config */
    uint64_t generation;            /* the current config's */
    struct route_drain *drains;     /* removed routes still draining */
    uint64_t fd_cap;
    struct event_base *base;
    struct evdns_base *dns;
    struct http_front *front;
    struct session_table *sessions;
    struct admin *admin;
    struct metrics *metrics;        /* outlives reloads: counters never go down */
    struct upstream_check *startup_check;
    SSL_CTX *ssl_ctx;
    struct event *sigint, *sigterm, *sighup, *sigusr1;
    struct event *tick, *deadline;
    enum stop_phase phase;
    uint64_t drain_started_ms;
};

/* Not the loop's cached time: closing many sessions takes a while inside
 * one callback, and the log reports how long the drain took. */
static uint64_t now_ms(struct gw_server *s)
{
    struct timeval tv;
    (void)s;
    evutil_gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static uint64_t live_sessions(struct gw_server *s)
{
    return session_table_stats(s->sessions)->sessions;
}

/* Last step: close what is left, let the close handshakes run a moment. */
static void final_stop(struct gw_server *s)
{
    s->phase = PHASE_STOPPING;
    event_del(s->tick);
    event_del(s->deadline);
    uint64_t left = live_sessions(s);
    if (left)
        log_warn("stopping with %llu sessions whose browser did not collect "
                 "its close: %llu queued messages not acknowledged, possibly "
                 "lost", (unsigned long long)left,
                 (unsigned long long)session_table_undelivered(s->sessions));
    log_info("drain over after %llu ms: stopping", (unsigned long long)
             (now_ms(s) - s->drain_started_ms));
    http_front_stop_accepting(s->front);
    admin_stop_accepting(s->admin);
    size_t closing = session_table_shutdown(s->sessions);
    struct timeval tv = { closing ? 1 : 0, 200000 };
    event_base_loopexit(s->base, &tv);
}

/* End of the drain: every browser is told (1001) after what is queued for
 * it, every upstream gets 1001. */
static void begin_close(struct gw_server *s)
{
    s->phase = PHASE_CLOSING;
    size_t n = session_table_drain_close(s->sessions);
    uint64_t left = live_sessions(s);
    log_info("drain: closing %zu sessions (1001 going away); %llu still to "
             "deliver their close", n, (unsigned long long)left);
    if (left == 0) {
        final_stop(s);
        return;
    }
    struct timeval tv;
    gw_ms_to_tv(CLOSE_GRACE_MS, &tv);
    event_add(s->deadline, &tv);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_server *s = arg;
    if (s->phase == PHASE_DRAINING)
        begin_close(s);
    else if (s->phase == PHASE_CLOSING)
        final_stop(s);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_server *s = arg;
    if ((s->phase == PHASE_DRAINING || s->phase == PHASE_CLOSING) &&
        live_sessions(s) == 0)
        final_stop(s);
}

static void start_drain(struct gw_server *s, int sig)
{
    s->phase = PHASE_DRAINING;
    s->drain_started_ms = now_ms(s);
    gw_notify("STOPPING=1\nSTATUS=stopping");
    session_table_set_draining(s->sessions);
    http_front_set_draining(s->front);
    admin_set_draining(s->admin, true);
    log_info("signal %d: stopping: draining %llu sessions for up to %llu ms (new "
             "sessions refused)", sig, (unsigned long long)live_sessions(s),
             (unsigned long long)s->cfg->drain_timeout_ms);
    if (s->cfg->drain_timeout_ms == 0 || live_sessions(s) == 0) {
        begin_close(s);
        return;
    }
    struct timeval tick, dl;
    gw_ms_to_tv(DRAIN_TICK_MS, &tick);
    gw_ms_to_tv(s->cfg->drain_timeout_ms, &dl);
    event_add(s->tick, &tick);
    event_add(s->deadline, &dl);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct gw_server *s = arg;
    switch (s->phase) {
    case PHASE_RUNNING:
        start_drain(s, (int)sig);
        break;
    case PHASE_DRAINING:
    case PHASE_CLOSING:
        log_info("signal %d again: cutting the drain short", (int)sig);
        if (s->phase == PHASE_DRAINING)
            session_table_drain_close(s->sessions);
        final_stop(s);
        break;
    case PHASE_STOPPING:
        log_info("signal %d again: stopping now", (int)sig);
        event_base_loopbreak(s->base);
        break;
    }
}

/* ------------------------------------------------------------- reload */

static void drain_free(struct route_drain *d)
{
    if (d->ev)
        event_free(d->ev);
    free(d);
}

static void drains_free(struct gw_server *s)
{
    while (s->drains) {
        struct route_drain *d = s->drains;
        s->drains = d->next;
        drain_free(d);
    }
}

/* drain_timeout after a reload removed the route: its sessions get the
 * close a drain gives (1001 both ways, after what is queued). Sessions
 * still opening then are closed once they have opened (checked again
 * every second). */
static void route_drain_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct route_drain *d = arg;
    struct gw_server *s = d->s;
    size_t opening = 0;
    size_t n = session_table_drain_route(s->sessions, d->name, d->before,
                                         &opening);
    if (n)
        log_info("reload: removed route %s: %zu sessions closed (1001 going "
                 "away)", d->name, n);
    if (opening) {
        struct timeval tv = { 1, 0 };
        event_add(d->ev, &tv);
        return;
    }
    for (struct route_drain **pp = &s->drains; *pp; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    }
    drain_free(d);
}

static int drain_route(struct gw_server *s, const char *name, uint64_t before,
                       uint64_t delay_ms)
{
    size_t n = strlen(name);
    struct route_drain *d = calloc(1, sizeof *d + n + 1);
    if (!d)
        return GW_ENOMEM;
    d->s = s;
    d->before = before;
    memcpy(d->name, name, n + 1);
    d->ev = evtimer_new(s->base, route_drain_cb, d);
    struct timeval tv;
    gw_ms_to_tv(delay_ms, &tv);
    if (!d->ev || event_add(d->ev, &tv) != 0) {
        drain_free(d);
        return GW_ENOMEM;
    }
    d->next = s->drains;
    s->drains = d;
    return 0;
}

/* What the reload does to routes, logged one line each: added, changed
 * (open sessions keep the old settings, new ones get the new), removed
 * (its sessions drain). Returns how many were removed. */
static size_t reload_routes(struct gw_server *s, const struct gw_config *old,
                            const struct gw_config *next)
{
    size_t removed = 0;
    for (size_t i = 0; i < next->n_routes; i++) {
        const struct gw_route *r = &next->routes[i];
        const struct gw_route *o = gw_config_route(old, r->name);
        if (!o)
            log_info("reload: route %s added (%s -> %s)", r->name, r->path,
                     r->upstream);
        else if (!gw_route_equal(o, r))
            log_info("reload: route %s changed: new sessions use %s -> %s, "
                     "open ones keep %s -> %s", r->name, r->path, r->upstream,
                     o->path, o->upstream);
    }
    for (size_t i = 0; i < old->n_routes; i++) {
        const struct gw_route *o = &old->routes[i];
        if (gw_config_route(next, o->name))
            continue;
        removed++;
        log_info("reload: route %s (%s) removed: its open sessions close in "
                 "%llu ms (drain_timeout)", o->name, o->path,
                 (unsigned long long)next->drain_timeout_ms);
        if (drain_route(s, o->name, next->generation, next->drain_timeout_ms) < 0)
            log_error("reload: route %s: cannot schedule its drain (out of "
                      "memory): its sessions end on their own", o->name);
    }
    return removed;
}

/* Make next current everywhere, or change nothing (GW_ENOMEM, logged). */
static int reload_apply(struct gw_server *s, struct gw_config *next)
{
    if (session_table_set_config(s->sessions, next) < 0)
        return GW_ENOMEM;
    if (http_front_set_config(s->front, next) < 0) {
        session_table_set_config(s->sessions, s->cfg); /* its timers exist */
        return GW_ENOMEM;
    }
    admin_set_config(s->admin, next);
    if (gw_proxy_set(next->trusted_proxies, next->n_trusted_proxies) < 0)
        log_error("reload: trusted_proxies: out of memory: trusting no proxy");
    http_front_reload_tls(s->front);
    return 0;
}

/* Log a loader's messages, one line each ("FILE:LINE: ..." as -t prints
 * them). */
static void log_diag(const struct gw_diag *d, bool error)
{
    for (size_t i = 0; i < d->n; i++) {
        if (error)
            log_error("%s", d->msgs[i]);
        else
            log_warn("%s", d->msgs[i]);
    }
}

/* SIGHUP: read the INI file again. A file with errors changes nothing.
 * Otherwise new sessions and requests get the new configuration, open
 * sessions keep the one they opened with (they hold a reference to it),
 * keys read once at start keep their running value (one warning each),
 * and the sessions of removed routes drain. */
static void reload(struct gw_server *s)
{
    uint64_t t0 = now_ms(s);
    struct gw_diag diag = {0};
    log_info("SIGHUP: reloading %s", s->cfg->file);
    struct gw_config *next = gw_config_load(s->cfg->file, &diag);
    if (!next) {
        log_diag(&diag, true);
        gw_diag_free(&diag);
        log_error("reload: %s has errors: the running configuration stays",
                  s->cfg->file);
        if (s->metrics)
            s->metrics->config_reloads_failed++;
        return;
    }
    gw_diag_free(&diag);
    next->generation = s->generation + 1;
    gw_config_keep_restart_keys(next, s->cfg, &diag);
    if (reload_apply(s, next) < 0) {
        gw_config_keep_restart_keys(s->cfg, next, NULL); /* as they were */
        gw_diag_free(&diag);
        gw_config_unref(next);
        log_error("reload: cannot apply %s: the running configuration stays",
                  s->cfg->file);
        if (s->metrics)
            s->metrics->config_reloads_failed++;
        return;
    }
    log_diag(&diag, false);
    gw_diag_free(&diag);
    s->generation = next->generation;
    size_t removed = reload_routes(s, s->cfg, next);
    gw_config_unref(s->cfg);
    s->cfg = next;
    if (s->fd_cap && s->fd_cap < next->max_sessions)
        log_warn("max_sessions = %llu but descriptors allow about %llu: "
                 "sessions past that get 503", (unsigned long long)next->max_sessions,
                 (unsigned long long)s->fd_cap);
    if (s->metrics)
        s->metrics->config_reloads_ok++;
    log_info("reload: configuration %s reloaded in %llu ms (generation %llu, "
             "%zu routes, %zu removed; %llu sessions open keep theirs)",
             next->file, (unsigned long long)(now_ms(s) - t0),
             (unsigned long long)next->generation, next->n_routes, removed,
             (unsigned long long)live_sessions(s));
    /* last: the lines of this reload are written whatever the new level */
    gw_log_level = next->log_level;
}

static void sighup_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig; (void)what;
    struct gw_server *s = arg;
    if (s->phase != PHASE_RUNNING) {
        log_info("SIGHUP while stopping: ignored");
        return;
    }
    gw_notify("RELOADING=1\nSTATUS=reloading");
    reload(s);
    gw_notify("READY=1\nSTATUS=listening");
}

/* SIGUSR1: reopen the error log and the access log (logrotate). */
static void sigusr1_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)sig; (void)what; (void)arg;
    gw_log_reopen();
    access_log_reopen();
}

/* After binding: become [gateway] user/group (started as root to bind a
 * low port). Root without user is allowed, with a warning. */
static int drop_privileges(const struct gw_config *cfg)
{
    if (!cfg->user) {
        if (geteuid() == 0)
            log_warn("running as root: set [gateway] user to drop privileges "
                     "after binding");
        return 0;
    }
    struct passwd *pw = getpwnam(cfg->user);
    struct group *gr = cfg->group ? getgrnam(cfg->group) : NULL;
    if (!pw || (cfg->group && !gr)) {
        log_error("user %s / group %s: not found", cfg->user,
                  cfg->group ? cfg->group : "-");
        return GW_EINVAL;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = gr ? gr->gr_gid : pw->pw_gid;
    if (geteuid() != 0) {
        if (geteuid() == uid && getegid() == gid)
            return 0;
        log_error("user = %s: only root can change user", cfg->user);
        return GW_EINVAL;
    }
    if (initgroups(cfg->user, gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
        log_error("cannot become user %s: %s", cfg->user, strerror(errno));
        return GW_EIO;
    }
    if (uid != 0 && setuid(0) == 0) {
        log_error("could regain root after dropping privileges");
        return GW_EIO;
    }
    log_info("running as user %s (uid %u, gid %u)", cfg->user, (unsigned)uid,
             (unsigned)gid);
    return 0;
}

/* Raise the soft descriptor limit to the hard one; log the capacity and
 * return how many sessions the descriptors allow (two each, plus room for
 * the listener, logs and a few browser connections in flight). */
static uint64_t raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise RLIMIT_NOFILE: %s", strerror(errno));
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    uint64_t cap = rl.rlim_cur > 100 ? (uint64_t)(rl.rlim_cur - 100) / 2 : 1;
    log_info("open files limit %llu: room for about %llu sessions "
             "(two descriptors each)", (unsigned long long)rl.rlim_cur,
             (unsigned long long)cap);
    return cap;
}

struct evdns_base *gw_dns_new(struct event_base *base,
                              const struct gw_config *cfg)
{
    if (!cfg->resolv_conf)
        return evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    struct evdns_base *dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (!dns)
        return NULL;
    int rc = evdns_base_resolv_conf_parse(dns, DNS_OPTIONS_ALL, cfg->resolv_conf);
    if (rc != 0) {
        log_error("resolv_conf %s: cannot use it (evdns error %d)",
                  cfg->resolv_conf, rc);
        evdns_base_free(dns, 0);
        return NULL;
    }
    evdns_base_load_hosts(dns, NULL);
    return dns;
}

/* The start-up check ran on the server's own loop (no nested loop, so a
 * signal during it stops the server): log the result and let go. */
static void startup_check_done_cb(struct upstream_check *c, void *arg)
{
    struct gw_server *s = arg;
    upstream_check_log(c);
    s->startup_check = NULL;
    if (s->admin)
        admin_take_check(s->admin, c);   /* the first health answer */
    else
        upstream_check_free(c);
}

int gw_server_run(const struct gw_config *cfg)
{
    struct gw_server s = { .cfg = gw_config_ref(cfg), .generation = 1 };
    s.cfg->generation = 1;
    struct gw_error err = {0};
    int rc = 1;

    if (gw_log_open(cfg->error_log) < 0)
        return 1;
    uint64_t fd_cap = raise_nofile();
    s.fd_cap = fd_cap;
    if (gw_proxy_set(cfg->trusted_proxies, cfg->n_trusted_proxies) < 0)
        goto out;
    s.base = event_base_new();
    if (!s.base)
        goto out;
    if (access_log_open(s.base, cfg->access_log, cfg->access_log_buffer) < 0)
        goto out;
    s.dns = gw_dns_new(s.base, cfg);
    if (!s.dns)
        log_warn("no DNS resolver: only numeric upstream hosts will work");
    s.ssl_ctx = ws_client_ssl_ctx_new(cfg->tls_ca_file, cfg->tls_verify,
                                      cfg->tls_cert_file, cfg->tls_key_file,
                                      &err);
    if (!s.ssl_ctx) {
        log_error("upstream TLS: %s", err.msg);
        goto out;
    }
    if (!cfg->tls_verify)
        log_warn("tls_verify = off: upstream certificates are NOT checked");

    s.metrics = metrics_new();
    s.sessions = s.metrics ? session_table_new(s.base, s.dns, cfg, s.ssl_ctx)
                           : NULL;
    if (!s.sessions)
        goto out;
    session_table_set_metrics(s.sessions, s.metrics);
    session_table_set_fd_capacity(s.sessions, fd_cap);
    if (fd_cap < cfg->max_sessions)
        log_warn("max_sessions = %llu but descriptors allow about %llu: "
                 "sessions past that get 503", (unsigned long long)cfg->max_sessions,
                 (unsigned long long)fd_cap);
    s.front = http_front_new(s.base, cfg, s.sessions, cfg->static_root);
    if (!s.front)
        goto out;
    http_front_set_metrics(s.front, s.metrics);
    if (cfg->admin_listen_host) {
        s.admin = admin_new(s.base, s.dns, cfg, s.ssl_ctx, s.sessions, s.metrics);
        if (!s.admin)
            goto out;
        admin_set_limits_stats(s.admin, http_front_limits_stats(s.front));
    }
    if (drop_privileges(cfg) < 0)   /* every listener is bound by now */
        goto out;
    s.sigint = evsignal_new(s.base, SIGINT, signal_cb, &s);
    s.sigterm = evsignal_new(s.base, SIGTERM, signal_cb, &s);
    s.sighup = evsignal_new(s.base, SIGHUP, sighup_cb, &s);
    s.sigusr1 = evsignal_new(s.base, SIGUSR1, sigusr1_cb, &s);
    s.tick = event_new(s.base, -1, EV_PERSIST, tick_cb, &s);
    s.deadline = evtimer_new(s.base, deadline_cb, &s);
    if (!s.tick || !s.deadline) {
        log_error("out of memory");
        goto out;
    }
    if (!s.sigusr1 || event_add(s.sigusr1, NULL) != 0) {
        log_error("cannot install the SIGUSR1 handler");
        goto out;
    }
    if (!s.sigint || !s.sigterm || !s.sighup || event_add(s.sigint, NULL) != 0 ||
        event_add(s.sigterm, NULL) != 0 || event_add(s.sighup, NULL) != 0) {
        log_error("cannot install signal handlers");
        goto out;
    }

    /* Startup check: log whether each route's upstream answers (a failure
     * is not fatal: the upstream may come up later). Asynchronous, on the
     * server's loop: we accept connections meanwhile. */
    s.startup_check = upstream_check_start(s.base, s.dns, cfg, s.ssl_ctx,
                                           startup_check_done_cb, &s);

    log_info("pollgate listening on %s%s%s:%u%s", strchr(cfg->listen_host, ':') ? "[" : "",
             cfg->listen_host, strchr(cfg->listen_host, ':') ? "]" : "",
             cfg->listen_port, cfg->n_listen + cfg->n_tls_listen > 1 ?
             " and more (above)" : "");
    /* systemd Type=notify: started once we accept connections. */
    if (gw_notify("READY=1\nSTATUS=listening") < 0)
        log_warn("NOTIFY_SOCKET is set but the service manager could not be told we are ready");
    event_base_dispatch(s.base);
    log_info("stopped");
    rc = 0;
out:
    if (s.sigint)
        event_free(s.sigint);
    if (s.sigterm)
        event_free(s.sigterm);
    if (s.sighup)
        event_free(s.sighup);
    if (s.sigusr1)
        event_free(s.sigusr1);
    if (s.tick)
        event_free(s.tick);
    if (s.deadline)
        event_free(s.deadline);
    drains_free(&s);
    upstream_check_free(s.startup_check);
    admin_free(s.admin);
    http_front_free(s.front);
    session_table_free(s.sessions);
    metrics_free(s.metrics);
    /* let deferred frees (upstream clients) run */
    if (s.base)
        event_base_loop(s.base, EVLOOP_NONBLOCK);
    if (s.dns)
        evdns_base_free(s.dns, 0);
    access_log_close(); /* the last lines: connections closed above */
    SSL_CTX_free(s.ssl_ctx);
    if (s.base)
        event_base_free(s.base);
    gw_proxy_set(NULL, 0);
    gw_config_unref(s.cfg);
    gw_log_close();
    return rc;
}
