/* check_upstream.c - handshake + clean close against every route upstream,
 * asynchronously on the caller's loop. */
#include "check_upstream.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>

#include "gw_log.h"
#include "ws_client.h"

struct probe {
    struct upstream_check *check;
    struct ws_client *client;
    struct timespec start;
    bool done;
    struct upstream_check_result res;
};

struct upstream_check {
    struct probe *probes;
    const struct gw_config *cfg; /* a reference: results point into it */
    size_t n, pending;
    struct event *done_ev;   /* done is reported from the loop */
    upstream_check_done_fn done;
    void *arg;
};

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 +
           (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void probe_open_cb(struct ws_client *c, void *arg)
{
    struct probe *p = arg;
    p->res.ms = ms_since(&p->start);
    ws_client_close(c, WS_CLOSE_NORMAL, "pollgate check-upstream");
}

static void probe_message_cb(struct ws_client *c, bool binary,
                             const uint8_t *data, size_t len, void *arg)
{
    (void)c; (void)binary; (void)data; (void)len; (void)arg;
}

static void probe_finished(struct probe *p)
{
    p->done = true;
    if (--p->check->pending == 0)
        event_active(p->check->done_ev, EV_TIMEOUT, 0);
}

static void probe_close_cb(struct ws_client *c, const struct ws_close_info *ci,
                           void *arg)
{
    struct probe *p = arg;
    char *reason = p->res.reason;
    size_t n = sizeof p->res.reason;
    (void)c;
    if (ci->opened) {
        /* The handshake is what we check; a server that then drops the
         * connection instead of answering our close is still reachable,
         * but say so. */
        p->res.ok = true;
        reason[0] = 0;
        if (ci->fail != WS_FAIL_NONE)
            snprintf(reason, n, " (close: %s)",
                     ci->detail ? ci->detail : ws_client_fail_name(ci->fail));
    } else if (ci->fail == WS_FAIL_HTTP_STATUS) {
        snprintf(reason, n, "upgrade refused: HTTP %d", ci->http_status);
    } else {
        snprintf(reason, n, "%s: %s", ws_client_fail_name(ci->fail),
                 ci->detail ? ci->detail : "");
    }
    probe_finished(p);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct upstream_check *c = arg;
    if (c->done)
        c->done(c, c->arg);   /* may free c: nothing after this */
}

struct upstream_check *upstream_check_start(struct event_base *base,
                                            struct evdns_base *dns,
                                            const struct gw_config *cfg,
                                            SSL_CTX *ssl_ctx,
                                            upstream_check_done_fn done,
                                            void *arg)
{
    static const struct ws_client_callbacks cb = {
        .on_open = probe_open_cb,
        .on_message = probe_message_cb,
        .on_close = probe_close_cb,
    };
    struct upstream_check *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->probes = calloc(cfg->n_routes ? cfg->n_routes : 1, sizeof *c->probes);
    c->done_ev = event_new(base, -1, 0, done_cb, c);
    if (!c->probes || !c->done_ev) {
        upstream_check_free(c);
        return NULL;
    }
    c->n = cfg->n_routes;
    c->cfg = gw_config_ref(cfg);
    c->done = done;
    c->arg = arg;
    c->pending = c->n + 1; /* +1 held until every probe has started */
    for (size_t i = 0; i < c->n; i++) {
        struct probe *p = &c->probes[i];
        struct gw_error err = {0};
        p->check = c;
        p->res.route = &cfg->routes[i];
        p->res.ms = -1;
        snprintf(p->res.reason, sizeof p->res.reason, "interrupted");
        struct ws_client_options opt = {
            .url = p->res.route->upstream,
            .protocols = p->res.route->protocols,
            .max_message = cfg->max_message,
            .connect_timeout_ms = (uint32_t)cfg->connect_timeout_ms,
            .ssl_ctx = ssl_ctx,
        };
        clock_gettime(CLOCK_MONOTONIC, &p->start);
        p->client = ws_client_new(base, dns, &opt, &cb, p, &err);
        if (!p->client || ws_client_connect(p->client) < 0) {
            if (!p->done)
                snprintf(p->res.reason, sizeof p->res.reason, "%s",
                         err.msg[0] ? err.msg : "cannot start connection");
            if (!p->done)
                probe_finished(p);
        }
    }
    probe_finished(&(struct probe){ .check = c });
    return c;
}

bool upstream_check_done(const struct upstream_check *c)
{
    return c->pending == 0;
}

size_t upstream_check_count(const struct upstream_check *c)
{
    return c->n;
}

const struct upstream_check_result *upstream_check_result(
    const struct upstream_check *c, size_t i)
{
    return i < c->n ? &c->probes[i].res : NULL;
}

void upstream_check_free(struct upstream_check *c)
{
    if (!c)
        return;
    for (size_t i = 0; c->probes && i < c->n; i++)
        ws_client_free(c->probes[i].client);
    free(c->probes);
    if (c->done_ev)
        event_free(c->done_ev);
    gw_config_unref(c->cfg);
    free(c);
}

void upstream_check_log(const struct upstream_check *c)
{
    for (size_t i = 0; i < c->n; i++) {
        const struct probe *p = &c->probes[i];
        if (p->done && p->res.ok)
            log_info("route %s: upstream %s reachable (%.1f ms)",
                     p->res.route->name, p->res.route->upstream, p->res.ms);
        else
            log_warn("route %s: upstream %s not reachable: %s",
                     p->res.route->name, p->res.route->upstream,
                     p->done ? p->res.reason : "interrupted");
    }
}

static void run_done_cb(struct upstream_check *c, void *arg)
{
    (void)c;
    event_base_loopexit(arg, NULL);
}

int check_upstream_run(struct event_base *base, struct evdns_base *dns,
                       const struct gw_config *cfg, SSL_CTX *ssl_ctx,
                       FILE *out)
{
    struct upstream_check *c = upstream_check_start(base, dns, cfg, ssl_ctx,
                                                    run_done_cb, base);
    if (!c)
        return (int)cfg->n_routes;
    event_base_dispatch(base);
    int failed = 0;
    for (size_t i = 0; i < c->n; i++) {
        const struct probe *p = &c->probes[i];
        bool ok = p->done && p->res.ok;
        failed += !ok;
        if (ok)
            fprintf(out, "%s %s ok %.1f ms%s\n", p->res.route->name,
                    p->res.route->upstream, p->res.ms, p->res.reason);
        else
            fprintf(out, "%s %s FAILED %s\n", p->res.route->name,
                    p->res.route->upstream,
                    p->done ? p->res.reason : "interrupted");
    }
    fflush(out);
    upstream_check_free(c);
    /* Let deferred frees run. */
    event_base_loop(base, EVLOOP_NONBLOCK);
    return failed;
}
