/* check_upstream.c - handshake + clean close against every route upstream. */
#include "check_upstream.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <event2/event.h>

#include "gw_log.h"
#include "ws_client.h"

struct probe {
    const struct gw_route *route;
    struct ws_client *client;
    struct timespec start;
    double open_ms;      /* time to a completed handshake, < 0 if never */
    bool done;
    bool ok;
    char reason[GW_ERROR_MSG_MAX + 64];
    int *pending;
    struct event_base *base;
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
    p->open_ms = ms_since(&p->start);
    ws_client_close(c, WS_CLOSE_NORMAL, "pollgate check-upstream");
}

static void probe_message_cb(struct ws_client *c, bool binary,
                             const uint8_t *data, size_t len, void *arg)
{
    (void)c; (void)binary; (void)data; (void)len; (void)arg;
}

static void probe_close_cb(struct ws_client *c, const struct ws_close_info *ci,
                           void *arg)
{
    struct probe *p = arg;
    (void)c;
    p->done = true;
    if (ci->opened) {
        /* The handshake is what we check; a server that then drops the
         * connection instead of answering our close is still reachable,
         * but say so. */
        p->ok = true;
        if (ci->fail != WS_FAIL_NONE)
            snprintf(p->reason, sizeof p->reason, " (close: %s)",
                     ci->detail ? ci->detail : ws_client_fail_name(ci->fail));
    } else if (ci->fail == WS_FAIL_HTTP_STATUS) {
        snprintf(p->reason, sizeof p->reason,
                 "upgrade refused: HTTP %d", ci->http_status);
    } else {
        snprintf(p->reason, sizeof p->reason, "%s: %s",
                 ws_client_fail_name(ci->fail),
                 ci->detail ? ci->detail : "");
    }
    if (--*p->pending == 0)
        event_base_loopexit(p->base, NULL);
}

int check_upstream_run(struct event_base *base, struct evdns_base *dns,
                       const struct gw_config *cfg, SSL_CTX *ssl_ctx,
                       FILE *out)
{
    static const struct ws_client_callbacks cb = {
        .on_open = probe_open_cb,
        .on_message = probe_message_cb,
        .on_close = probe_close_cb,
    };
    struct probe *probes = calloc(cfg->n_routes, sizeof *probes);
    int pending = 0, failed = 0;
    if (!probes)
        return (int)cfg->n_routes;

    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct probe *p = &probes[i];
        struct gw_error err = {0};
        p->route = &cfg->routes[i];
        p->open_ms = -1;
        p->pending = &pending;
        p->base = base;
        struct ws_client_options opt = {
            .url = p->route->upstream,
            .protocols = p->route->protocols,
            .max_message = cfg->max_message,
            .connect_timeout_ms = (uint32_t)cfg->connect_timeout_ms,
            .ssl_ctx = ssl_ctx,
        };
        clock_gettime(CLOCK_MONOTONIC, &p->start);
        p->client = ws_client_new(base, dns, &opt, &cb, p, &err);
        if (!p->client || ws_client_connect(p->client) < 0) {
            p->done = true;
            snprintf(p->reason, sizeof p->reason, "%s",
                     err.msg[0] ? err.msg : "cannot start connection");
            continue;
        }
        pending++;
    }
    if (pending > 0)
        event_base_dispatch(base);

    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct probe *p = &probes[i];
        if (!p->done) {
            p->ok = false;
            snprintf(p->reason, sizeof p->reason, "interrupted");
        }
        if (p->ok) {
            if (out)
                fprintf(out, "%s %s ok %.1f ms%s\n", p->route->name,
                        p->route->upstream, p->open_ms, p->reason);
            else
                log_info("route %s: upstream %s reachable (%.1f ms)",
                         p->route->name, p->route->upstream, p->open_ms);
        } else {
            failed++;
            if (out)
                fprintf(out, "%s %s FAILED %s\n", p->route->name,
                        p->route->upstream, p->reason);
            else
                log_warn("route %s: upstream %s not reachable: %s",
                         p->route->name, p->route->upstream, p->reason);
        }
        ws_client_free(p->client);
    }
    if (out)
        fflush(out);
    /* Let deferred frees run. */
    event_base_loop(base, EVLOOP_NONBLOCK);
    free(probes);
    return failed;
}
